/*
 * cli_key.h - `tokend key ...`: the request each command is parsed into once
 * (cli_key.c), and the backend interface that carries it out, implemented
 * twice: locally against PostgreSQL (cli_key_local.c) and remotely over the
 * admin REST API (cli_key_remote.c).
 *
 * Only the dispatcher (cli_key.c) knows both backends; the backends know this
 * header and nothing of each other. A backend never prints: it answers with
 * the admin API's key objects (the local one builds them with the same SQL
 * function, tokend_key_json), and cli_key_print.c prints them once, so both
 * modes print identically.
 */
#ifndef TOKEND_CLI_KEY_H
#define TOKEND_CLI_KEY_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <tokend/keyfmt.h>

#include "keylist.h"

/* One parsed `tokend key` command. Strings point into argv. */
typedef struct tk_key_request {
	const char *verb;             /* "create", "list", "show", ... */
	const char *id;               /* the key ID (every command but create and list) */
	/* create */
	const char *account;          /* NULL: the credentials' own (remote only) */
	const char *name;             /* also rename's new name */
	const char *subject;          /* NULL: the key ID */
	const char *idem;             /* --idempotency-key (remote only), or NULL */
	json_t *scopes;               /* array of strings, parsed and checked (owned) */
	json_t *audiences;            /* array of strings, possibly empty (owned) */
	char expires_at[32];          /* RFC 3339, or "" for never */
	const char *lifetime_arg;     /* --token-lifetime as given, or NULL */
	int64_t lifetime;             /* its seconds (when lifetime_arg) */
	int rate_limit;               /* create and set-rate-limit: per minute, 0 = none */
	const char *role;             /* --role: scopes copied from the role (then scopes is empty) */
	const char *member;           /* --member: a member key (tokens' sub is the member) */
	const char *environment;      /* --environment live|test, NULL: live */
	json_t *claims;               /* --claims: a JSON object (owned), or NULL */
	int publishable;              /* --publishable: no secret, browser origins (sql/010) */
	json_t *origins;              /* --origin (repeatable): array of strings (owned) */
	/* list */
	const char *state;            /* NULL or enabled|disabled|revoked|expired */
	/* The listing's filters by db/keylist.h's table: filters[i] is the value
	 * of tk_keyfilters[i] (NULL: not given; state is one of them), checked. */
	const char *filters[TK_KEYLIST_FILTERS_MAX];
	const char *sort;             /* NULL (the default order) or a tk_keysorts name */
	int desc;                     /* --order desc */
	int page_size;                /* --page-size (remote only), 0 = the server's */
	/* rotate-secret */
	const char *overlap_arg;      /* --overlap as given (required) */
	int64_t overlap;              /* its seconds, 0..TK_ROTATE_OVERLAP_MAX */
	/* revoke, delete */
	const char *reason;           /* NULL or non-empty */
	int force;
	/* remote mode */
	const char *url, *token_url;
} tk_key_request;

/* Why a backend refused: the admin API's error code (the SQL HINT locally:
 * not_found, revoked, recently_used, forbidden, ...) and its description. */
typedef struct tk_key_refusal {
	char kind[32];
	char why[512];
} tk_key_refusal;

/*
 * A backend. Every operation returns 0 with its answer, or 1 (CLI_REFUSED)
 * with `ref` filled; a failure that is no refusal of the request (no database,
 * no server, an unexpected answer) exits 1 itself with its reason.
 * Key objects returned are new references the caller releases.
 */
typedef struct tk_keys_backend {
	const char *name;                 /* "local" or "remote" */
	int remote_options;               /* accepts --url, --token-url, --idempotency-key, --page-size */
	int account_required;             /* create needs --account */
	/* Before any operation (URLs, credentials, configuration); exits on error. */
	void (*open)(const tk_key_request *rq);
	/* After the last one: wipe what must not outlive the run. */
	void (*close)(void);
	/* `secret` receives the new key's secret; "" when the answer is an
	 * idempotent replay of an earlier create (the secret was shown then),
	 * or a publishable key (it has none). */
	int (*create)(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_MAX + 1], tk_key_refusal *ref);
	int (*list)(const tk_key_request *rq, json_t **keys, tk_key_refusal *ref);
	int (*show)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
	int (*rename)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
	int (*set_rate_limit)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
	int (*disable)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
	int (*enable)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
	int (*revoke)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
	/* A new secret for the key (`secret`, shown once); the previous one
	 * works until rq->overlap seconds from now. Never retried remotely. */
	int (*rotate_secret)(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_MAX + 1],
	                     tk_key_refusal *ref);
	/* *key may stay NULL: a deleted key is printed by its ID. */
	int (*delete_key)(const tk_key_request *rq, json_t **key, tk_key_refusal *ref);
} tk_keys_backend;

/* The two implementations. */
extern const tk_keys_backend tk_keys_local;
extern const tk_keys_backend tk_keys_remote;

/* Fill `ref` (printf-style description, made one printable line).
 * Returns 1 (CLI_REFUSED). */
static inline __attribute__((format(printf, 3, 4)))
int cli_key_refuse(tk_key_refusal *ref, const char *kind, const char *fmt, ...)
{
	va_list ap;
	snprintf(ref->kind, sizeof(ref->kind), "%s", kind ? kind : "");
	va_start(ap, fmt);
	vsnprintf(ref->why, sizeof(ref->why), fmt, ap);
	va_end(ap);
	for (char *p = ref->why; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return 1;
}

#endif
