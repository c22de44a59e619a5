/*
 * config.h - tokend's configuration: one file of `key = value` lines.
 *
 * The table in config.c defines every key (type, default, flags, bounds).
 * Every key can also come from the environment as TOKEND_<KEY> (the key in
 * upper case, e.g. TOKEND_LISTEN_PORT): the environment overrides the file,
 * the file overrides the defaults; an empty variable counts as unset.
 * Errors read "FILE:LINE: KEY: reason". Relative paths resolve against the
 * directory of the config file.
 */
#ifndef TOKEND_CONFIG_H
#define TOKEND_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <tokend/crypto.h>

#include "cpus.h"
#include "proxy.h"

#define TK_WORKERS_MAX 64                /* workers at most */
#define TK_SEND_BATCH_MAX 256            /* send_batch at most */

/* Where a setting's value came from (tk_config.source, by table order). */
#define TK_CONFIG_FROM_DEFAULT 0
#define TK_CONFIG_FROM_FILE    1
#define TK_CONFIG_FROM_ENV     2
#define TK_CONFIG_MAX_KEYS     96

typedef struct tk_config {
	char *path;               /* the file read, or NULL when none */
	char *database_url;       /* serve and the CLI: the application role (password masked) */
	char *migrate_database_url; /* `tokend migrate`: the schema owner; "": database_url */
	char *listen_database_url; /* serve's LISTEN connection (direct or session-pooled); "": database_url */
	char *database_pool_mode; /* what database_url reaches: session (PostgreSQL, or a session
	                           * pooler) or transaction (PgBouncer pool_mode = transaction) */
	int allow_privileged_database_role; /* serve may run as a superuser or schema owner */
	char *pepper;             /* SENSITIVE: never printed */
	char *pepper_file;
	char *listen_address;
	int listen_port;
	char *admin_listen_address;
	int admin_listen_port;    /* 0: the admin API shares the main listener */
	int admin_api_key_auth;   /* the admin API also takes an API key directly (api.c) */
	char *ops_listen_address;
	int ops_listen_port;      /* 0: /metrics, /healthz, /readyz on the main listener */
	int metrics_per_account;  /* tokend_account_tokens_issued_total{account=...} (cardinality) */
	int workers;
	char *worker_cpus;               /* auto, off, or CPUs: where each worker runs (cpus.h) */
	tk_cpulist cpus;                 /* worker_cpus, parsed by the load */
	int console;              /* the web console at /console/ (server/console/) */
	char *issuer;
	char *key_id_prefix_live; /* prefixes of new keys (keyfmt.h); old prefixes keep working */
	char *key_id_prefix_test;
	char *secret_prefix;
	char *key_id_prefix_publishable;      /* publishable keys' IDs, live and test */
	char *key_id_prefix_publishable_test;
	char *signing_keys;       /* space-separated paths */
	char *signing_key_active;
	char *signing_key_source;         /* "files" (signing_keys) or "database" (README) */
	char *signing_key_encryption_key; /* SENSITIVE: the KEK of database-held keys */
	char *signing_key_encryption_key_file;
	int64_t signing_key_rotation;     /* seconds; 0: manual (tokend signing-key generate) */
	char *signing_key_alg;            /* of generated keys: ES256, EdDSA, RS256 */
	int64_t signing_key_margin;       /* seconds added to every waiting time of a rotation */
	int64_t token_lifetime;   /* seconds */
	int64_t token_lifetime_max;
	int64_t publishable_token_lifetime;   /* seconds: publishable keys' tokens live at most this */
	int publishable_tokens_per_key;       /* per minute per publishable key; 0: no limit */
	int publishable_tokens_per_address;   /* per minute per client address (publishable keys) */
	char *default_audience;
	int64_t jwks_max_age;
	int status_list;          /* tokens carry "status"; /oauth2/status-list is served */
	int64_t status_list_ttl;  /* the list's "ttl" and max-age; rebuilt when this old */
	int max_connections;
	int max_connections_per_address;   /* 0: no per-address cap */
	int max_body_size;
	int max_header_size;
	int64_t header_timeout;
	int64_t body_timeout;
	int64_t idle_timeout;
	int64_t write_timeout;
	int64_t shutdown_timeout;
	int db_pool_size;
	int64_t db_timeout;
	int64_t last_used_flush_interval;
	int64_t last_used_precision;     /* a use newer than the last one recorded by less: not written */
	int64_t cache_ttl;
	int auth_failures_per_address;   /* per minute, then 429; 0: no limit */
	int auth_failures_per_key;
	char *trusted_proxies;           /* CIDRs whose X-Forwarded-For is believed (proxy.h) */
	tk_proxies proxies;              /* trusted_proxies, parsed by the load */
	char *log_level;          /* debug, info, warning, error */
	char *log_format;         /* text, json */
	int listen_backlog;       /* listen() backlog of each listening socket */
	int db_queue_size;        /* database jobs waiting for a pool thread, at most (503 beyond) */
	int key_cache_size;       /* API-key records cached, at most */
	int rate_limit_table_size; /* addresses or keys each rate limiter follows, at most */
	int listen_exclusive;     /* refuse to start when another process listens on the port */
	int http_fast_lane;            /* POST /oauth2/token read and answered by conn.c (README) */
	int send_batch;                /* fast-lane answers of a loop pass sent together, at most (conn.c) */
	int send_uring;                /* such a group in one io_uring_enter, where io_uring works (conn.c) */
	unsigned char source[TK_CONFIG_MAX_KEYS]; /* TK_CONFIG_FROM_* of each key, in table order */
} tk_config;

/*
 * Load `path` (NULL: defaults and environment only). Returns 0, or -1 with a
 * "FILE:LINE: KEY: reason" message in err. On failure *cfg holds nothing.
 */
int tk_config_load(tk_config *cfg, const char *path, char *err, size_t errlen);

/*
 * The same for a configuration held in memory: `len` bytes at `text` (no NUL
 * needed; NUL bytes are read as a file's would be), named `name` in messages
 * and used as the path relative paths resolve against (NULL: "(text)").
 * tk_config_load and this function share one implementation (the text is
 * read through fmemopen), so a file and its text give the same result; the
 * environment overrides apply to both. For tests and fuzzing.
 */
int tk_config_load_text(tk_config *cfg, const char *name, const char *text, size_t len,
                        char *err, size_t errlen);
void tk_config_free(tk_config *cfg);

/* Resolve a path from the config against the config file's directory.
 * Returns a malloc'd string. */
char *tk_config_resolve(const tk_config *cfg, const char *path);

/*
 * The pepper: TOKEND_PEPPER, else `pepper`, else the contents of `pepper_file`
 * (which must not be readable by group or others). Refuses a missing pepper or
 * one under 32 bytes. 0 on success; -1 with a reason in err (never the value).
 */
int tk_config_pepper(const tk_config *cfg, unsigned char out[TK_PEPPER_MAX], size_t *len,
                     char *err, size_t errlen);

/* The key-encryption key of database-held signing keys:
 * TOKEND_SIGNING_KEY_ENCRYPTION_KEY, else signing_key_encryption_key, else the
 * contents of signing_key_encryption_key_file (group/others checked as the
 * pepper file's); 32 bytes as base64 or 64 hex digits. 0, or -1 with a reason
 * in err (never the value). */
#define TK_KEK_LEN 32
int tk_config_kek(const tk_config *cfg, unsigned char out[TK_KEK_LEN], char *err, size_t errlen);

/* Whether SIGHUP applies setting `name` (0: it takes a restart, or no such key). */
int tk_config_reloadable(const char *name);

/* The settings SIGHUP does not apply whose values differ between `running`
 * and `fresh`: their names, space-separated, in buf (cut at len); returns how
 * many. Values are never written; the SENSITIVE ones (the pepper, wiped
 * from the running configuration at startup) are not compared. */
size_t tk_config_restart_needed(const tk_config *running, const tk_config *fresh, char *buf, size_t len);

/* Print every key with its effective value (SENSITIVE ones masked, database
 * passwords masked), as `key = value` lines a config file could hold; a key
 * set by the file or the environment is preceded by a `# from ...` line.
 * json: one JSON object instead ({"config_file", "precedence", "settings":
 * {key: {"value", "source", "env"}}}, typed values). 0, or -1 (out of memory). */
int tk_config_dump(const tk_config *cfg, void *file, int json);

#endif
