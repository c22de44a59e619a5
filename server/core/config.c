/*
 * config.c - table-driven configuration.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>
#include <tokend/keyfmt.h>

#include <tokend/timefmt.h>

typedef enum { CF_STRING, CF_INT, CF_DURATION, CF_BOOL } cf_type;

#define CF_SENSITIVE 0x1   /* never printed, never logged */
#define CF_RELOAD    0x2   /* SIGHUP applies it (serve.c reload_keys); others take a restart */
#define CF_CONNINFO  0x4   /* a libpq URL or conninfo: printed with its password masked */
/* Paths (pepper_file, signing_keys) are resolved where they are used, by
 * tk_config_resolve: signing_keys is a list, so no per-key flag could. */

typedef struct cf_param {
	const char *name;
	cf_type type;
	size_t offset;
	const char *def;          /* default, as it would be written in the file */
	int flags;
	int64_t min, max;         /* bounds for CF_INT and CF_DURATION (seconds) */
	const char *const *choices; /* CF_STRING: the allowed values (NULL-ended), or NULL: any */
} cf_param;

static const char *const log_levels[] = { "debug", "info", "warning", "error", NULL };
static const char *const log_formats[] = { "text", "json", NULL };
static const char *const pool_modes[] = { "session", "transaction", NULL };
static const char *const key_sources[] = { "files", "database", NULL };
static const char *const key_algs[] = { "ES256", "EdDSA", "RS256", NULL };

#define S(field) CF_STRING, offsetof(tk_config, field)
#define I(field) CF_INT, offsetof(tk_config, field)
#define D(field) CF_DURATION, offsetof(tk_config, field)
#define B(field) CF_BOOL, offsetof(tk_config, field)

static const cf_param params[] = {
	{ "database_url",             S(database_url),           "",            CF_CONNINFO, 0, 0, NULL },
	{ "migrate_database_url",     S(migrate_database_url),   "",            CF_CONNINFO, 0, 0, NULL },
	{ "listen_database_url",      S(listen_database_url),    "",            CF_CONNINFO, 0, 0, NULL },
	{ "database_pool_mode",       S(database_pool_mode),     "session",     0, 0, 0, pool_modes },
	{ "allow_privileged_database_role", B(allow_privileged_database_role), "no", 0, 0, 1, NULL },
	{ "pepper",                   S(pepper),                 "",            CF_SENSITIVE, 0, 0, NULL },
	{ "pepper_file",              S(pepper_file),            "",            0, 0, 0, NULL },
	{ "listen_address",           S(listen_address),         "127.0.0.1",   0, 0, 0, NULL },
	{ "listen_port",              I(listen_port),            "8080",        0, 0, 65535, NULL },
	{ "admin_listen_address",     S(admin_listen_address),   "127.0.0.1",   0, 0, 0, NULL },
	{ "admin_listen_port",        I(admin_listen_port),      "0",           0, 0, 65535, NULL },
	{ "admin_api_key_auth",       B(admin_api_key_auth),     "on",          0, 0, 1, NULL },
	{ "ops_listen_address",       S(ops_listen_address),     "127.0.0.1",   0, 0, 0, NULL },
	{ "ops_listen_port",          I(ops_listen_port),        "0",           0, 0, 65535, NULL },
	{ "metrics_per_account",      B(metrics_per_account),    "no",          0, 0, 1, NULL },
	{ "workers",                  I(workers),                "2",           0, 1, TK_WORKERS_MAX, NULL },
	{ "worker_cpus",              S(worker_cpus),            "auto",        0, 0, 0, NULL },
	{ "console",                  B(console),                "on",          0, 0, 1, NULL },
	{ "issuer",                   S(issuer),                 "http://127.0.0.1:8080", 0, 0, 0, NULL },
	{ "key_id_prefix_live",       S(key_id_prefix_live),     "tk_",         0, 0, 0, NULL },
	{ "key_id_prefix_test",       S(key_id_prefix_test),     "tk_test_",    0, 0, 0, NULL },
	{ "secret_prefix",            S(secret_prefix),          "tks_",        0, 0, 0, NULL },
	{ "key_id_prefix_publishable", S(key_id_prefix_publishable), "tk_pk_",  0, 0, 0, NULL },
	{ "key_id_prefix_publishable_test", S(key_id_prefix_publishable_test), "tk_pk_test_", 0, 0, 0, NULL },
	{ "signing_keys",             S(signing_keys),           "",            CF_RELOAD, 0, 0, NULL },
	{ "signing_key_active",       S(signing_key_active),     "",            CF_RELOAD, 0, 0, NULL },
	{ "signing_key_source",       S(signing_key_source),     "files",       0, 0, 0, key_sources },
	{ "signing_key_encryption_key", S(signing_key_encryption_key), "",      CF_SENSITIVE, 0, 0, NULL },
	{ "signing_key_encryption_key_file", S(signing_key_encryption_key_file), "", 0, 0, 0, NULL },
	{ "signing_key_rotation",     D(signing_key_rotation),   "off",         0, 0, 315360000, NULL },
	{ "signing_key_alg",          S(signing_key_alg),        "ES256",       0, 0, 0, key_algs },
	{ "signing_key_margin",       D(signing_key_margin),     "1m",          0, 0, 86400, NULL },
	{ "token_lifetime",           D(token_lifetime),         "10m",         0, 1, 86400, NULL },
	{ "token_lifetime_max",       D(token_lifetime_max),     "1h",          0, 1, 86400, NULL },
	{ "publishable_token_lifetime", D(publishable_token_lifetime), "5m",    0, 1, 86400, NULL },
	{ "publishable_tokens_per_key", I(publishable_tokens_per_key), "60",    0, 0, 1000000, NULL },
	{ "publishable_tokens_per_address", I(publishable_tokens_per_address), "20", 0, 0, 1000000, NULL },
	{ "default_audience",         S(default_audience),       "",            0, 0, 0, NULL },
	{ "jwks_max_age",             D(jwks_max_age),           "10m",         0, 1, 86400, NULL },
	{ "status_list",              B(status_list),            "on",          0, 0, 1, NULL },
	{ "status_list_ttl",          D(status_list_ttl),        "60s",         0, 1, 86400, NULL },
	{ "max_connections",          I(max_connections),        "10000",       0, 1, 1000000, NULL },
	{ "max_connections_per_address", I(max_connections_per_address), "256", 0, 0, 1000000, NULL },
	{ "max_body_size",            I(max_body_size),          "8192",        0, 256, 1048576, NULL },
	{ "max_header_size",          I(max_header_size),        "8192",        0, 1024, 65536, NULL },
	{ "header_timeout",           D(header_timeout),         "10s",         0, 1, 3600, NULL },
	{ "body_timeout",             D(body_timeout),           "10s",         0, 1, 3600, NULL },
	{ "idle_timeout",             D(idle_timeout),           "60s",         0, 1, 86400, NULL },
	{ "write_timeout",            D(write_timeout),          "10s",         0, 1, 3600, NULL },
	{ "http_fast_lane",           B(http_fast_lane),         "on",          0, 0, 1, NULL },
	{ "send_batch",               I(send_batch),             "8",           0, 1, TK_SEND_BATCH_MAX, NULL },
	{ "send_uring",               B(send_uring),             "on",          0, 0, 1, NULL },
	{ "shutdown_timeout",         D(shutdown_timeout),       "10s",         0, 0, 3600, NULL },
	{ "db_pool_size",             I(db_pool_size),           "4",           0, 1, 256, NULL },
	{ "db_timeout",               D(db_timeout),             "1s",          0, 1, 60, NULL },
	{ "last_used_flush_interval", D(last_used_flush_interval), "5s",        0, 1, 3600, NULL },
	{ "last_used_precision",      D(last_used_precision),    "60s",         0, 0, 3600, NULL },
	{ "cache_ttl",                D(cache_ttl),              "5m",          0, 1, 86400, NULL },
	{ "auth_failures_per_address", I(auth_failures_per_address), "20",     0, 0, 1000000, NULL },
	{ "auth_failures_per_key",    I(auth_failures_per_key),  "20",          0, 0, 1000000, NULL },
	{ "trusted_proxies",          S(trusted_proxies),        "",            0, 0, 0, NULL },
	{ "log_level",                S(log_level),              "info",        0, 0, 0, log_levels },
	{ "log_format",               S(log_format),             "text",        0, 0, 0, log_formats },
	{ "listen_backlog",           I(listen_backlog),         "1024",        0, 1, 65535, NULL },
	{ "db_queue_size",            I(db_queue_size),          "4096",        0, 1, 1000000, NULL },
	{ "key_cache_size",           I(key_cache_size),         "1000000",     0, 1, 100000000, NULL },
	{ "rate_limit_table_size",    I(rate_limit_table_size),  "100000",      0, 1, 10000000, NULL },
	{ "listen_exclusive",         B(listen_exclusive),       "no",          0, 0, 1, NULL },
};
#undef S
#undef I
#undef D
#undef B

#define NPARAMS (sizeof(params) / sizeof(params[0]))
_Static_assert(NPARAMS <= TK_CONFIG_MAX_KEYS, "tk_config.source is too small for the table");

static char **str_field(tk_config *cfg, const cf_param *p)
{
	return (char **)((char *)cfg + p->offset);
}

static const cf_param *find_param(const char *name)
{
	for (size_t i = 0; i < NPARAMS; i++)
		if (strcmp(params[i].name, name) == 0)
			return &params[i];
	return NULL;
}

/* "must be one of: a, b, c" for a parameter with choices (a static buffer
 * per parameter: the text is built once, on the loading thread). */
static const char *choices_text(const cf_param *p)
{
	static char buf[sizeof(params) / sizeof(params[0])][160];
	char *b = buf[p - params];
	if (!*b) {
		size_t n = (size_t)snprintf(b, sizeof(buf[0]), "must be one of:");
		for (size_t i = 0; p->choices[i] && n < sizeof(buf[0]); i++)
			n += (size_t)snprintf(b + n, sizeof(buf[0]) - n, "%s %s", i ? "," : "", p->choices[i]);
	}
	return b;
}

/* Set one parameter from its text. Returns 0, or -1 with a reason. */
static int set_param(tk_config *cfg, const cf_param *p, const char *value, const char **why)
{
	switch (p->type) {
	case CF_STRING: {
		if (p->choices) {
			size_t i = 0;
			while (p->choices[i] && strcmp(p->choices[i], value) != 0)
				i++;
			if (!p->choices[i]) {
				*why = choices_text(p);
				return -1;
			}
		}
		char **dst = str_field(cfg, p);
		char *copy = strdup(value);
		if (!copy) { *why = "out of memory"; return -1; }
		if (*dst) {
			if (p->flags & CF_SENSITIVE)
				tk_wipe(*dst, strlen(*dst));
			free(*dst);
		}
		*dst = copy;
		return 0;
	}
	case CF_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno || end == value || *end != '\0' || !isdigit((unsigned char)value[0])) {
			*why = "not a whole number";
			return -1;
		}
		if (v < p->min || v > p->max) { *why = "out of range"; return -1; }
		*(int *)((char *)cfg + p->offset) = (int)v;
		return 0;
	}
	case CF_DURATION: {
		int64_t secs;
		/* Where 0 is allowed: "off", "0", "0s" (what `tokend config` prints). */
		size_t z = strspn(value, "0");
		if (p->min == 0 && (strcmp(value, "off") == 0 ||
		                    (z > 0 && (value[z] == '\0' || (strchr("smhd", value[z]) && value[z + 1] == '\0'))))) {
			*(int64_t *)((char *)cfg + p->offset) = 0;
			return 0;
		}
		if (tk_duration_parse(value, &secs, why) != 0)
			return -1;
		if (secs < p->min || secs > p->max) { *why = "out of range"; return -1; }
		*(int64_t *)((char *)cfg + p->offset) = secs;
		return 0;
	}
	case CF_BOOL:
		if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "on") || !strcmp(value, "1"))
			*(int *)((char *)cfg + p->offset) = 1;
		else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "off") || !strcmp(value, "0"))
			*(int *)((char *)cfg + p->offset) = 0;
		else {
			*why = "must be yes or no";
			return -1;
		}
		return 0;
	}
	*why = "bad parameter type";
	return -1;
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	return s;
}

/* Read `key = value` lines from `f`; `path` names it in messages. The caller
 * opens and closes `f` (a file, or the text of tk_config_load_text through
 * fmemopen: both take this very code, fgets included). */
static int parse_stream(tk_config *cfg, FILE *f, const char *path, char *err, size_t errlen)
{
	char line[4096];
	int lineno = 0, rc = 0;
	unsigned char seen[NPARAMS] = { 0 };
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			rc = -1;
			break;
		}
		char *s = trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		char *eq = strchr(s, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected `key = value`", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *key = trim(s), *value = trim(eq + 1);
		size_t vlen = strlen(value);
		if (vlen >= 2 && ((value[0] == '"' && value[vlen - 1] == '"') ||
		                  (value[0] == '\'' && value[vlen - 1] == '\''))) {
			value[vlen - 1] = '\0';
			value++;
		}
		const cf_param *p = find_param(key);
		if (!p) {
			snprintf(err, errlen, "%s:%d: %.64s: unknown key", path, lineno, key);
			rc = -1;
			break;
		}
		size_t idx = (size_t)(p - params);
		if (seen[idx]) {
			snprintf(err, errlen, "%s:%d: %s: set twice", path, lineno, key);
			rc = -1;
			break;
		}
		seen[idx] = 1;
		const char *why = NULL;
		if (set_param(cfg, p, value, &why) != 0) {
			snprintf(err, errlen, "%s:%d: %s: %s", path, lineno, key, why);
			rc = -1;
			break;
		}
		cfg->source[idx] = TK_CONFIG_FROM_FILE;
	}
	tk_wipe(line, sizeof(line));
	return rc;
}

static int validate(tk_config *cfg, char *err, size_t errlen)
{
	const char *where = cfg->path ? cfg->path : "(defaults)";
	if (cfg->token_lifetime > cfg->token_lifetime_max) {
		snprintf(err, errlen, "%s: token_lifetime: above token_lifetime_max", where);
		return -1;
	}
	if (strncmp(cfg->issuer, "https://", 8) != 0 && strncmp(cfg->issuer, "http://", 7) != 0) {
		snprintf(err, errlen, "%s: issuer: must be an http(s) URL", where);
		return -1;
	}
	/* Key prefixes (keyfmt.h): each valid, and all distinct, so that an ID
	 * tells its environment and kind and a secret never reads as a key ID. */
	const char *const prefixes[] = { cfg->key_id_prefix_live, cfg->key_id_prefix_test, cfg->secret_prefix,
	                                  cfg->key_id_prefix_publishable, cfg->key_id_prefix_publishable_test };
	const char *const pnames[] = { "key_id_prefix_live", "key_id_prefix_test", "secret_prefix",
	                               "key_id_prefix_publishable", "key_id_prefix_publishable_test" };
	for (int i = 0; i < 5; i++) {
		if (!tk_prefix_valid(prefixes[i])) {
			snprintf(err, errlen, "%s: %s: 2-%d characters [a-z0-9_], starting with a letter and ending with '_'",
			         where, pnames[i], TK_PREFIX_MAX);
			return -1;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(prefixes[i], prefixes[j]) == 0) {
				snprintf(err, errlen, "%s: %s: must differ from %s", where, pnames[i], pnames[j]);
				return -1;
			}
	}
	/* LISTEN through a transaction pooler succeeds and then hears nothing: the
	 * cache would keep serving keys disabled elsewhere. */
	if (strcmp(cfg->database_pool_mode, "transaction") == 0 && !*cfg->listen_database_url) {
		snprintf(err, errlen, "%s: database_pool_mode: transaction needs listen_database_url: a direct "
		         "(or session-pooled) connection for LISTEN, which a transaction pooler does not carry", where);
		return -1;
	}
	if (strcmp(cfg->signing_key_source, "database") == 0 && cfg->signing_key_rotation > 0 &&
	    cfg->signing_key_rotation <= cfg->jwks_max_age + cfg->signing_key_margin) {
		snprintf(err, errlen, "%s: signing_key_rotation: must be longer than jwks_max_age + "
		         "signing_key_margin (a next key is published that long before it signs)", where);
		return -1;
	}
	char why[160];
	if (tk_proxies_parse(cfg->trusted_proxies, &cfg->proxies, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: trusted_proxies: %s", where, why);
		return -1;
	}
	if (tk_cpulist_parse(cfg->worker_cpus, &cfg->cpus, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: worker_cpus: %s", where, why);
		return -1;
	}
	_Static_assert(TK_CPUS_LIST_MAX >= TK_WORKERS_MAX, "a list names one CPU per worker");
	if (tk_cpulist_fits(&cfg->cpus, cfg->workers, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s: worker_cpus: %s", where, why);
		return -1;
	}
	return 0;
}

/* The environment variable of a key: TOKEND_ and the key in upper case. */
static void env_name(const cf_param *p, char out[80])
{
	size_t n = (size_t)snprintf(out, 80, "TOKEND_%s", p->name);
	for (size_t i = 7; i < n && i < 79; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/* Every key at its default. 0, or -1 with err set and *cfg freed. */
static int set_defaults(tk_config *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NPARAMS; i++) {
		const char *why = NULL;
		if (set_param(cfg, &params[i], params[i].def, &why) != 0) {
			snprintf(err, errlen, "(defaults): %s: %s", params[i].name, why);
			tk_config_free(cfg);
			return -1;
		}
	}
	return 0;
}

/* Defaults, then the lines of `f` (named `name`; NULL f: none), then the
 * environment, then the checks across keys. `f` is left open. */
static int load_stream(tk_config *cfg, const char *name, FILE *f, char *err, size_t errlen)
{
	if (set_defaults(cfg, err, errlen) != 0)
		return -1;
	if (name) {
		cfg->path = strdup(name);
		if (!cfg->path || (f && parse_stream(cfg, f, name, err, errlen) != 0)) {
			tk_config_free(cfg);
			return -1;
		}
	}
	/* Then the environment: TOKEND_<KEY> for every key, over the file. */
	for (size_t i = 0; i < NPARAMS; i++) {
		char var[80];
		env_name(&params[i], var);
		const char *env = getenv(var);
		if (!env || !*env)
			continue;
		const char *why = NULL;
		if (set_param(cfg, &params[i], env, &why) != 0) {
			snprintf(err, errlen, "%s: %s", var, why);
			tk_config_free(cfg);
			return -1;
		}
		cfg->source[i] = TK_CONFIG_FROM_ENV;
	}
	/* The pepper's file (a path, not the secret: a container passes this, so
	 * the pepper itself never sits in the process environment): set above as
	 * TOKEND_PEPPER_FILE, it also beats a `pepper` from the file, which would
	 * otherwise win over any pepper_file; TOKEND_PEPPER still wins over it. */
	const char *pf = getenv("TOKEND_PEPPER_FILE"), *pv = getenv("TOKEND_PEPPER");
	if (pf && *pf && !(pv && *pv)) {
		const char *why = NULL;
		if (set_param(cfg, find_param("pepper"), "", &why) != 0) {
			snprintf(err, errlen, "TOKEND_PEPPER_FILE: %s", why);
			tk_config_free(cfg);
			return -1;
		}
	}
	if (validate(cfg, err, errlen) != 0) {
		tk_config_free(cfg);
		return -1;
	}
	return 0;
}

int tk_config_load(tk_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = NULL;
	if (path && !(f = fopen(path, "r"))) {
		int e = errno;
		/* As before the split: defaults set and freed, then the message. */
		if (set_defaults(cfg, err, errlen) == 0)
			tk_config_free(cfg);
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -1;
	}
	int rc = load_stream(cfg, path, f, err, errlen);
	if (f)
		fclose(f);
	return rc;
}

int tk_config_load_text(tk_config *cfg, const char *name, const char *text, size_t len,
                        char *err, size_t errlen)
{
	FILE *f = NULL;
	if (!name)
		name = "(text)";
	/* fmemopen only reads the buffer in "r" mode; the cast drops const
	 * without -Wcast-qual noise. An empty text is an empty file. */
	if (len > 0 && !(f = fmemopen((void *)(uintptr_t)text, len, "r"))) {
		int e = errno;
		/* As tk_config_load does for a file it cannot open. */
		if (set_defaults(cfg, err, errlen) == 0)
			tk_config_free(cfg);
		snprintf(err, errlen, "%s: cannot read: %s", name, strerror(e));
		return -1;
	}
	int rc = load_stream(cfg, name, f, err, errlen);
	if (f)
		fclose(f);
	return rc;
}

void tk_config_free(tk_config *cfg)
{
	for (size_t i = 0; i < NPARAMS; i++) {
		if (params[i].type != CF_STRING)
			continue;
		char **s = str_field(cfg, &params[i]);
		if (*s) {
			if (params[i].flags & CF_SENSITIVE)
				tk_wipe(*s, strlen(*s));
			free(*s);
			*s = NULL;
		}
	}
	free(cfg->path);
	cfg->path = NULL;
}

char *tk_config_resolve(const tk_config *cfg, const char *path)
{
	if (path[0] == '/' || !cfg->path)
		return strdup(path);
	const char *slash = strrchr(cfg->path, '/');
	if (!slash)
		return strdup(path);
	size_t dirlen = (size_t)(slash - cfg->path);
	char *out = malloc(dirlen + 1 + strlen(path) + 1);
	if (!out)
		return NULL;
	memcpy(out, cfg->path, dirlen);
	out[dirlen] = '/';
	strcpy(out + dirlen + 1, path);
	return out;
}

/* Read a secret from the file `file` (setting `setting`, resolved against the
 * config's folder) into buf, trailing newlines and spaces cut. The file must
 * pass tk_secret_file_mode_ok (not world-readable; group-readable only when
 * owned by root or by us). -1 with err set (nothing of the file's content in
 * it); buf is the caller's to wipe. */
static int read_secret_file(const tk_config *cfg, const char *setting, const char *file, const char *what,
                            char *buf, size_t bufsize, char *err, size_t errlen)
{
	char *path = tk_config_resolve(cfg, file);
	struct stat st = { 0 };
	FILE *f = path ? fopen(path, "r") : NULL;
	char mwhy[300];
	if (!f) {
		snprintf(err, errlen, "%s: %s: cannot open: %s", setting, path ? path : "?", strerror(errno));
		free(path);
		return -1;
	}
	if (fstat(fileno(f), &st) != 0 ||
	    tk_secret_file_mode_ok((unsigned int)st.st_mode, (long)st.st_uid, what, mwhy, sizeof(mwhy)) != 0) {
		snprintf(err, errlen, "%s: %s: %s", setting, path, st.st_mode ? mwhy : "cannot stat");
		fclose(f);
		free(path);
		return -1;
	}
	size_t n = fread(buf, 1, bufsize - 1, f);
	fclose(f);
	free(path);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

int tk_config_pepper(const tk_config *cfg, unsigned char out[TK_PEPPER_MAX], size_t *len,
                     char *err, size_t errlen)
{
	const char *why = NULL;
	char buf[512];
	const char *text = NULL, *source = NULL;
	int rc = -1;

	if (cfg->pepper && *cfg->pepper) {
		text = cfg->pepper;
		source = getenv("TOKEND_PEPPER") && *getenv("TOKEND_PEPPER") ? "TOKEND_PEPPER" : "pepper";
	} else if (cfg->pepper_file && *cfg->pepper_file) {
		if (read_secret_file(cfg, "pepper_file", cfg->pepper_file, "the pepper file", buf, sizeof(buf),
		                     err, errlen) != 0)
			return -1;
		text = buf;
		source = "pepper_file";
	} else {
		snprintf(err, errlen, "no pepper configured: set pepper_file (or TOKEND_PEPPER) to a "
		         "base64 value of at least 32 random bytes, e.g. from `openssl rand -base64 32`");
		return -1;
	}
	if (tk_pepper_decode(text, out, len, &why) != 0)
		snprintf(err, errlen, "%s: %s", source, why);
	else
		rc = 0;
	tk_wipe(buf, sizeof(buf));
	return rc;
}

int tk_config_kek(const tk_config *cfg, unsigned char out[TK_KEK_LEN], char *err, size_t errlen)
{
	char buf[512];
	const char *text = NULL, *source = NULL, *why = NULL;
	unsigned char tmp[TK_PEPPER_MAX];
	size_t len = 0;
	int rc = -1;

	memset(out, 0, TK_KEK_LEN);
	if (cfg->signing_key_encryption_key && *cfg->signing_key_encryption_key) {
		text = cfg->signing_key_encryption_key;
		source = getenv("TOKEND_SIGNING_KEY_ENCRYPTION_KEY") && *getenv("TOKEND_SIGNING_KEY_ENCRYPTION_KEY")
		         ? "TOKEND_SIGNING_KEY_ENCRYPTION_KEY" : "signing_key_encryption_key";
	} else if (cfg->signing_key_encryption_key_file && *cfg->signing_key_encryption_key_file) {
		if (read_secret_file(cfg, "signing_key_encryption_key_file", cfg->signing_key_encryption_key_file,
		                     "the key-encryption key file", buf, sizeof(buf), err, errlen) != 0)
			return -1;
		text = buf;
		source = "signing_key_encryption_key_file";
	} else {
		snprintf(err, errlen, "no key-encryption key configured (signing_key_source = database): set "
		         "signing_key_encryption_key_file (or TOKEND_SIGNING_KEY_ENCRYPTION_KEY) to 32 random "
		         "bytes in base64 or hex, e.g. from `openssl rand -base64 32`");
		return -1;
	}
	/* 64 hex digits, or base64 / "hex:..." (the pepper's forms) of exactly 32 bytes. */
	size_t tl = strlen(text), i;
	for (i = 0; i < tl && tk_hex_digit((unsigned char)text[i]) >= 0; i++)
		;
	if (tl == 2 * TK_KEK_LEN && i == tl) {
		for (i = 0; i < TK_KEK_LEN; i++)
			out[i] = (unsigned char)(tk_hex_digit((unsigned char)text[2 * i]) * 16 +
			                         tk_hex_digit((unsigned char)text[2 * i + 1]));
		rc = 0;
	} else if (tk_pepper_decode(text, tmp, &len, &why) != 0 || len != TK_KEK_LEN) {
		snprintf(err, errlen, "%s: %s", source,
		         why ? why : "must be exactly 32 bytes (base64 of 32 bytes, or 64 hex digits)");
	} else {
		memcpy(out, tmp, TK_KEK_LEN);
		rc = 0;
	}
	tk_wipe(tmp, sizeof(tmp));
	tk_wipe(buf, sizeof(buf));
	return rc;
}

/* A key of a libpq query string or conninfo whose value is a secret (any
 * spelling of "password", and any percent-encoded key, which could be one). */
static int secret_key(const char *k, size_t n)
{
	return (n == 8 && strncasecmp(k, "password", 8) == 0) || memchr(k, '%', n) != NULL;
}

/*
 * Print a libpq connection string with every password replaced by ********:
 * postgresql://user:PASSWORD@host/db?password=PASSWORD&... and
 * `key=value key='quoted value'` conninfo. What it cannot parse is masked whole.
 */
static void dump_conninfo(FILE *f, const char *v)
{
	if (strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0) {
		/* The user information ends at the last '@' anywhere: a password
		 * holding '/', '?' or '@' unencoded is masked all the same. */
		const char *auth = strstr(v, "://") + 3;
		const char *at = strrchr(auth, '@');
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			fprintf(f, "%.*s********", (int)(colon + 1 - v), v);
			auth = at;
		} else {
			fprintf(f, "%.*s", (int)(auth - v), v);
		}
		size_t alen = strcspn(auth, "/?#");
		fprintf(f, "%.*s", (int)alen, auth);
		const char *rest = auth + alen;
		const char *qm = strchr(rest, '?');
		if (!qm) {
			fputs(rest, f);
			return;
		}
		fprintf(f, "%.*s", (int)(qm + 1 - rest), rest);
		for (const char *p = qm + 1; *p;) {
			size_t plen = strcspn(p, "&#"), klen = strcspn(p, "=&#");
			if (klen < plen && secret_key(p, klen))
				fprintf(f, "%.*s=********", (int)klen, p);
			else
				fprintf(f, "%.*s", (int)plen, p);
			p += plen;
			if (*p) {
				fputc(*p, f);
				p++;
			}
		}
		return;
	}
	/* key = value pairs; values bare or in single quotes with \\ escapes. */
	const char *p = v;
	int first = 1;
	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		if (!*p)
			break;
		const char *k = p;
		while (*p && *p != '=' && !isspace((unsigned char)*p))
			p++;
		size_t klen = (size_t)(p - k);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '=' || klen == 0)
			goto whole;
		p++;
		while (isspace((unsigned char)*p))
			p++;
		const char *val = p;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p != '\'')
				goto whole;
			p++;
		} else {
			while (*p && !isspace((unsigned char)*p))
				p++;
		}
		fprintf(f, "%s%.*s=", first ? "" : " ", (int)klen, k);
		if (secret_key(k, klen))
			fputs("********", f);
		else
			fprintf(f, "%.*s", (int)(p - val), val);
		first = 0;
	}
	return;
whole:
	if (!first)
		fputc(' ', f);
	fputs("********", f);
}

/* The value of `p` as text, as the file would hold it (secrets masked):
 * a malloc'd string, or NULL (out of memory). */
static char *value_text(const tk_config *cfg, const cf_param *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	const void *field = (const char *)cfg + p->offset;
	switch (p->type) {
	case CF_STRING: {
		const char *v = *(char *const *)field;
		if ((p->flags & CF_SENSITIVE) && v && *v)
			fputs("********", f);
		else if ((p->flags & CF_CONNINFO) && v && *v)
			dump_conninfo(f, v);
		else
			fputs(v ? v : "", f);
		break;
	}
	case CF_BOOL:
		fputs(*(const int *)field ? "yes" : "no", f);
		break;
	case CF_INT:
		fprintf(f, "%d", *(const int *)field);
		break;
	case CF_DURATION: {
		char d[32];
		tk_duration_format(*(const int64_t *)field, d);
		fputs(d, f);
		break;
	}
	}
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static const char precedence[] =
	"environment (TOKEND_<KEY>) over the configuration file over the defaults";

static int dump_json(const tk_config *cfg, FILE *f)
{
	int rc = -1;
	json_t *settings = json_object();
	json_t *o = json_pack("{s:s?, s:s, s:o}", "config_file", cfg->path, "precedence", precedence,
	                      "settings", settings);
	if (!o)
		return -1;
	for (size_t i = 0; i < NPARAMS; i++) {
		const cf_param *p = &params[i];
		const void *field = (const char *)cfg + p->offset;
		json_t *v;
		char var[80];
		env_name(p, var);
		if (p->type == CF_INT)
			v = json_integer(*(const int *)field);
		else if (p->type == CF_BOOL)
			v = json_boolean(*(const int *)field);
		else {
			char *t = value_text(cfg, p);
			v = t ? json_string(t) : NULL;
			if (t && !v) {
				/* Not UTF-8 (a file may hold any byte): shown with each
				 * byte above 0x7f as '?', never dropped from the output. */
				for (char *c = t; *c; c++)
					if ((unsigned char)*c > 0x7f)
						*c = '?';
				v = json_string(t);
			}
			free(t);
		}
		const char *src = cfg->source[i] == TK_CONFIG_FROM_ENV ? "environment"
		                  : cfg->source[i] == TK_CONFIG_FROM_FILE ? "file" : "default";
		json_t *entry = v ? json_pack("{s:o, s:s, s:s}", "value", v, "source", src, "env", var) : NULL;
		if (!entry || json_object_set_new(settings, p->name, entry) != 0)
			goto out;
	}
	char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (!text)
		goto out;
	fprintf(f, "%s\n", text);
	free(text);
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int tk_config_dump(const tk_config *cfg, void *file, int json)
{
	FILE *f = file;
	if (json)
		return dump_json(cfg, f);
	fprintf(f, "# precedence: %s\n", precedence);
	for (size_t i = 0; i < NPARAMS; i++) {
		const cf_param *p = &params[i];
		char *t = value_text(cfg, p);
		if (!t)
			return -1;
		if (cfg->source[i] == TK_CONFIG_FROM_ENV) {
			char var[80];
			env_name(p, var);
			fprintf(f, "# from the environment: %s\n", var);
		} else if (cfg->source[i] == TK_CONFIG_FROM_FILE) {
			fprintf(f, "# from %s\n", cfg->path ? cfg->path : "the file");
		}
		fprintf(f, "%s = %s\n", p->name, t);
		free(t);
	}
	return 0;
}

int tk_config_reloadable(const char *name)
{
	const cf_param *p = find_param(name);
	return p && (p->flags & CF_RELOAD);
}

size_t tk_config_restart_needed(const tk_config *running, const tk_config *fresh, char *buf, size_t len)
{
	size_t count = 0, n = 0;
	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < NPARAMS; i++) {
		const cf_param *p = &params[i];
		/* The running pepper is wiped once the hashers hold it: not comparable. */
		if (p->flags & (CF_RELOAD | CF_SENSITIVE))
			continue;
		const char *a = (const char *)running + p->offset, *b = (const char *)fresh + p->offset;
		int same;
		switch (p->type) {
		case CF_STRING: {
			const char *sa = *(char *const *)a, *sb = *(char *const *)b;
			same = (!sa && !sb) || (sa && sb && strcmp(sa, sb) == 0);
			break;
		}
		case CF_DURATION:
			same = *(const int64_t *)a == *(const int64_t *)b;
			break;
		default:
			same = *(const int *)a == *(const int *)b;
			break;
		}
		if (same)
			continue;
		count++;
		if (n < len) {
			int w = snprintf(buf + n, len - n, "%s%s", n ? " " : "", p->name);
			n += w > 0 ? (size_t)w : 0;
		}
	}
	return count;
}
