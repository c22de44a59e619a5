/*
 * keycache.h - the in-memory cache of API keys, shared by the workers.
 *
 * Filled on demand from PostgreSQL, invalidated by LISTEN/NOTIFY (listener.c).
 * While the notification connection is down the cache is bypassed: get()
 * finds nothing and put() keeps nothing, so every request reads the database
 * (correctness over speed).
 *
 * Races between a lookup in flight and an invalidation are closed by a global
 * invalidation sequence: a lookup reads tk_keycache_seq() before going to the
 * database, and put() keeps the result only if no invalidation happened since.
 *
 * Sharded (64 shards, a mutex each): the hot path takes one uncontended lock.
 */
#ifndef TOKEND_KEYCACHE_H
#define TOKEND_KEYCACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>

#define TK_MAX_AUDIENCES 16

/* An API key as the token endpoint needs it (not a signing key: those are
 * lib/src/signer_int.h struct signing_key). Immutable once built; refcounted. */
typedef struct tk_apikey {
	_Atomic int refs;
	int found;                        /* 0: a negative entry (no such key) */
	char id[TK_KEY_ID_MAX + 1];
	char account[64];
	unsigned char hash[TK_HASH_LEN];
	int pepper_id;
	/* A rotated key's previous secret (sql/008): accepted while the clock is
	 * before prev_until (epoch seconds; 0: no previous secret). */
	unsigned char prev_hash[TK_HASH_LEN];
	int64_t prev_until;
	int usable;                       /* enabled, not revoked/deleted, account enabled */
	const char *unusable_reason;      /* static: why not usable (for the log only) */
	int64_t expires_at;               /* epoch seconds; 0: never */
	int lifetime;                     /* seconds; 0: server default */
	int rate_limit;                   /* tokens per minute; 0: none */
	char *subject;                    /* NULL: the key ID (a member key: its member) */
	const char *environment;          /* static "live" or "test": the token's "env" */
	char *claims;                     /* custom claims, a JSON object's text; NULL: none */
	int64_t status_idx;               /* index in the Token Status List (sql/012) */
	tk_scopes scopes;
	size_t naud;
	char *aud[TK_MAX_AUDIENCES];
	int64_t loaded_at;                /* monotonic seconds */
	/* The one field that changes after build: last use known to this process
	 * (epoch seconds; 0: never), loaded from the database and moved forward
	 * by tk_lastused_mark when it writes a first use of the day at once. */
	_Atomic int64_t last_used_at;
} tk_apikey;

/* A new key with one reference (fields to be filled by the caller). */
tk_apikey *tk_apikey_new(void);
tk_apikey *tk_apikey_ref(tk_apikey *k);
void tk_apikey_release(tk_apikey *k);

typedef struct tk_keycache tk_keycache;

tk_keycache *tk_keycache_new(size_t max_entries, int64_t ttl_seconds);
void tk_keycache_free(tk_keycache *c);

/* A referenced key (release it), or NULL on a miss, an expired entry, or bypass. */
tk_apikey *tk_keycache_get(tk_keycache *c, const char *id);
uint64_t tk_keycache_seq(tk_keycache *c);
/* Keep `k` (takes its own reference) unless an invalidation happened since `seq`. */
void tk_keycache_put(tk_keycache *c, tk_apikey *k, uint64_t seq);

void tk_keycache_invalidate(tk_keycache *c, const char *id);
void tk_keycache_invalidate_account(tk_keycache *c, const char *account);
void tk_keycache_flush(tk_keycache *c);
/* While on, the cache is empty and keeps nothing. */
void tk_keycache_set_bypass(tk_keycache *c, int on);
int tk_keycache_bypassed(tk_keycache *c);
size_t tk_keycache_size(tk_keycache *c);

#endif
