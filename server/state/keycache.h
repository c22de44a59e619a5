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

#include "intern.h"

#define TK_MAX_AUDIENCES TK_STRLIST_MAX

/* Why a found key is not usable (tk_apikey.reason); the text of each is
 * tk_apikey_unusable_reason's (for the log only). */
enum tk_apikey_unusable {
	TK_UNUSABLE_NONE = 0,             /* usable */
	TK_UNUSABLE_DELETED,              /* "key_deleted" */
	TK_UNUSABLE_REVOKED,              /* "key_revoked" */
	TK_UNUSABLE_DISABLED,             /* "key_disabled" */
	TK_UNUSABLE_ACCOUNT_DISABLED,     /* "account_disabled" */
	TK_UNUSABLE_OTHER,                /* "key_not_usable": a reason this build does not know */
	TK_UNUSABLE_CORRUPT               /* "key_corrupt": a value could not be read */
};

/* A key's environment (sql/007; tk_apikey.env): the token's "env" claim. */
enum tk_apikey_env {
	TK_ENV_UNKNOWN = 0,               /* none this build knows: the key is unusable */
	TK_ENV_LIVE,                      /* "live" */
	TK_ENV_TEST                       /* "test" */
};

/* The values few keys carry, in one side record that only they allocate
 * (tk_apikey.x): a member key's subject, custom claims, a publishable key's
 * origins, a rotated key's previous secret. Owned by its key; immutable once
 * the key is built; the previous secret's digest is wiped with it. */
typedef struct tk_apikey_extra {
	const char *subject;              /* interned; NULL: the key ID (a member key: its member) */
	const char *claims;               /* interned custom claims, a JSON object's text; NULL: none */
	/* A publishable key (sql/010): no secret (hash unused), its exact allowed
	 * browser origins, space-separated (origins never hold a space); interned.
	 * NULL: none (every key that is not publishable). */
	const char *origins;
	/* A rotated key's previous secret (sql/008): accepted while the clock is
	 * before prev_until (epoch seconds; 0: no previous secret, prev_hash unset). */
	int64_t prev_until;
	unsigned char prev_hash[TK_HASH_LEN];
} tk_apikey_extra;

/* An API key as the token endpoint needs it (not a signing key: those are
 * lib/src/signer_int.h struct signing_key). Immutable once built; refcounted.
 *
 * Compact (a million of them are cached): 119 bytes and then the ID, sized
 * to it (a 31-character ID: a 160-byte malloc chunk), with the strings, scope
 * set and audience list interned (intern.h), shared with every other key
 * holding the same value and released with the record; the values few keys
 * have in the side record `x` (NULL without them); the reason and the
 * environment as codes; the flags as bits. Every field keeps the database's
 * range (the 64-bit times and index stay 64-bit). The digests are wiped when
 * the record is freed. Read the side values through the accessors below. */
typedef struct tk_apikey {
	struct tk_apikey *next;           /* the cache's chain (keycache.c) */
	const char *account;              /* interned; NULL only in a negative entry */
	const tk_scopes *scopes;          /* interned; never NULL in a found key */
	const char *const *aud;           /* naud audiences: the v of an interned tk_strlist */
	tk_apikey_extra *x;               /* NULL: none of its values (tk_apikey_set_*) */
	int64_t expires_at;               /* epoch seconds; 0: never */
	int64_t status_idx;               /* index in the Token Status List (sql/012) */
	/* The one field that changes after build: last use known to this process
	 * (epoch seconds; 0: never), loaded from the database and moved forward
	 * by tk_lastused_mark to each use it records (last_used_precision). */
	_Atomic int64_t last_used_at;
	_Atomic int refs;
	int lifetime;                     /* seconds; 0: server default */
	int rate_limit;                   /* tokens per minute; 0: none */
	int32_t loaded_at;                /* monotonic seconds (keycache) */
	unsigned char hash[TK_HASH_LEN];
	int16_t pepper_id;
	uint8_t naud;                     /* <= TK_MAX_AUDIENCES */
	/* Set while the record is built, before any other thread sees it. */
	unsigned char found : 1;          /* 0: a negative entry (no such key) */
	unsigned char usable : 1;         /* enabled, not revoked/deleted, account enabled */
	unsigned char publishable : 1;    /* sql/010: a publishable key (origins in x) */
	unsigned char reason : 3;         /* enum tk_apikey_unusable: why not usable */
	unsigned char env : 2;            /* enum tk_apikey_env */
	unsigned char cached;             /* in a cache's chain (under that shard's lock; its own
	                                     byte: the flags above are read meanwhile) */
	char id[];                        /* the key ID, NUL-terminated (<= TK_KEY_ID_MAX) */
} tk_apikey;

/* The side values (NULL / 0 when the key has none). */
static inline const char *tk_apikey_subject(const tk_apikey *k)
{
	return k->x ? k->x->subject : NULL;
}
static inline const char *tk_apikey_claims(const tk_apikey *k)
{
	return k->x ? k->x->claims : NULL;
}
static inline const char *tk_apikey_origins(const tk_apikey *k)
{
	return k->x ? k->x->origins : NULL;
}
static inline int64_t tk_apikey_prev_until(const tk_apikey *k)
{
	return k->x ? k->x->prev_until : 0;
}
/* The previous secret's digest, NULL without one (prev_until 0). */
static inline const unsigned char *tk_apikey_prev_hash(const tk_apikey *k)
{
	return k->x && k->x->prev_until != 0 ? k->x->prev_hash : NULL;
}

/* The text of a reason code ("key_revoked", ...); NULL for TK_UNUSABLE_NONE
 * (and an out-of-range code reads "key_not_usable", never NULL). */
const char *tk_apikey_unusable_reason(const tk_apikey *k);
/* The reason code of the database's text (dbjobs: "" gives TK_UNUSABLE_NONE,
 * an unknown text TK_UNUSABLE_OTHER). */
enum tk_apikey_unusable tk_apikey_reason_code(const char *text);
/* "live", "test", or NULL (TK_ENV_UNKNOWN). */
const char *tk_apikey_environment(const tk_apikey *k);
/* The code of an environment's text (anything but "live" and "test": TK_ENV_UNKNOWN). */
enum tk_apikey_env tk_apikey_env_code(const char *text);

/* Set a rotated key's previous secret (digest of TK_HASH_LEN bytes, accepted
 * before `until`, epoch seconds, not 0) / a publishable key's origins (the
 * space-separated text, interned). 0, or -1 out of memory: the record must
 * not be used (its holder would be refused, or worse). Once each, while the
 * record is built. */
int tk_apikey_set_prev(tk_apikey *k, const unsigned char *digest, int64_t until);
int tk_apikey_set_origins(tk_apikey *k, const char *origins);

/* Set the interned values of `k` (a new record, none set yet) from their
 * texts: account, subject (NULL: none), claims (NULL: none), the scope string
 * and the space-separated audiences. 0; -1 out of memory (the record must not
 * be used); 1 the scope string is invalid (scopes is then the empty set). */
int tk_apikey_set_values(tk_apikey *k, const char *account, const char *subject, const char *claims,
                         const char *scopes, const char *audiences);
/* 1 when `origin` (a request's Origin header, exactly as sent) is one of a
 * publishable key's allowed origins; 0 otherwise (NULL or empty: 0). */
int tk_apikey_allows_origin(const tk_apikey *k, const char *origin);

/* A new key record of ID `id` with one reference (the other fields to be
 * filled by the caller), or NULL: out of memory, or `id` NULL or longer than
 * TK_KEY_ID_MAX (never cut: a shorter ID would name another key). */
tk_apikey *tk_apikey_new(const char *id);
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
