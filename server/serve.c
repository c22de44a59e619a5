/*
 * serve.c - `tokend serve`: load everything once, start the database pool,
 * the notification listener and the workers, then wait for a signal.
 */
#include "serve.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tokend/crypto.h>
#include <tokend/signer.h>

#include "cli.h"
#include "db.h"
#include "log.h"
#include "conn.h"
#include "memtrim.h"
#include "migrate.h"
#include "peppercheck.h"
#include "pidcache.h"
#include "portowner.h"
#include "admin.h"
#include "console.h"
#include "oauth.h"
#include "ops.h"
#include "sdnotify.h"
#include "server.h"

static const char serve_usage[] =
	"usage: tokend serve [--config FILE]\n"
	"\n"
	"Run the token server: POST /oauth2/token, GET /.well-known/jwks.json,\n"
	"GET /.well-known/oauth-authorization-server, /healthz, /readyz, /metrics.\n"
	"Listens on listen_address:listen_port with `workers` threads. Stops on\n"
	"SIGTERM or SIGINT after finishing the requests in progress. SIGHUP reads\n"
	"the configuration file again and loads its signing keys (signing_keys,\n"
	"signing_key_active) without a restart; other settings take a restart.\n"
	"With signing_key_source = database the signing keys come from PostgreSQL\n"
	"(tokend signing-key --help), are followed without SIGHUP and rotate on the\n"
	"signing_key_rotation schedule.\n"
	"Under systemd (Type=notify) it says READY=1 on $NOTIFY_SOCKET once it\n"
	"serves, RELOADING=1 around a SIGHUP reload and STOPPING=1 on the way out.\n";

/* Tell systemd (when it asked: $NOTIFY_SOCKET); a failure is logged, never fatal. */
static void notify(const char *state)
{
	if (tk_sd_notify(state) < 0)
		tk_log(TK_LOG_WARNING, "server.notify_failed", "detail", strerror(errno),
		       "hint", "NOTIFY_SOCKET names no unix datagram socket tokend can send to", NULL);
}

/* RELOADING=1 carries the monotonic time (Type=notify-reload wants it). */
static void notify_reloading(void)
{
	struct timespec ts;
	char msg[80];
	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
	         (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL);
	notify(msg);
}

static void on_scopes_changed(void *arg)
{
	tk_server *srv = arg;
	atomic_store(&srv->meta_stale, 1);
}

static void on_signing_keys_changed(void *arg)
{
	tk_server *srv = arg;
	atomic_store(&srv->signing_keys_changed, 1);
}

/* signing_key_source = database: the keys come from PostgreSQL (dbkeys.c). */
static int keys_from_db(const tk_config *cfg)
{
	return strcmp(cfg->signing_key_source, "database") == 0;
}

/* A key changed state (or may have, while the listener was down): the status
 * list is built again at its next request. */
static void on_keys_changed(void *arg)
{
	tk_server *srv = arg;
	atomic_store(&srv->sl_stale, 1);
}

/*
 * SIGHUP: read the configuration file again and load its signing keys
 * (signing_keys, signing_key_active) into a new key set: the JWKS, the
 * metadata and the signing key change without a restart, and tokens signed by
 * keys still listed keep verifying. Other settings take a restart (logged).
 * Any failure keeps the running set.
 */
static void reload_keys(tk_server *srv)
{
	tk_config fresh;
	char err[1024];
	if (srv->dbkeys) {
		/* The keys live in the database: read them again now. */
		atomic_store(&srv->signing_keys_changed, 1);
		tk_log(TK_LOG_INFO, "server.reloaded", "detail", "signing keys are read again from the database "
		       "(signing_key_source = database); other settings take a restart", NULL);
		return;
	}
	if (!srv->cfg->path) {
		tk_log(TK_LOG_WARNING, "server.reload_failed", "detail", "no configuration file to read again", NULL);
		return;
	}
	if (tk_config_load(&fresh, srv->cfg->path, err, sizeof(err)) != 0) {
		tk_log(TK_LOG_ERROR, "server.reload_failed", "detail", err, NULL);
		return;
	}
	tk_config keys_cfg = *srv->cfg;                /* the running issuer and paths */
	keys_cfg.signing_keys = fresh.signing_keys;
	keys_cfg.signing_key_active = fresh.signing_key_active;
	tk_keyset *ks = tk_keyset_load(&keys_cfg, err, sizeof(err));
	if (!ks) {
		tk_config_free(&fresh);
		tk_log(TK_LOG_ERROR, "server.reload_failed", "detail", err, "kept", "the running signing keys", NULL);
		return;
	}
	char n[16];
	snprintf(n, sizeof(n), "%zu", tk_signer_count(ks->signer));
	tk_log(TK_LOG_INFO, "server.reloaded", "signing_kid", tk_signer_active_kid(ks->signer),
	       "alg", tk_signer_active_alg(ks->signer), TK_LOG_NUM "published_keys", n,
	       "detail", "signing keys reloaded; other settings take a restart", NULL);
	/* Settings changed in the file that SIGHUP does not apply: named, so the
	 * operator knows a restart is needed (values never logged). */
	char changed[512];
	if (tk_config_restart_needed(srv->cfg, &fresh, changed, sizeof(changed)) > 0)
		tk_log(TK_LOG_WARNING, "server.restart_needed", "settings", changed,
		       "detail", "changed in the configuration file; they apply at the next restart", NULL);
	tk_config_free(&fresh);
	tk_server_set_keys(srv, ks);
}

/* Compare the pepper's check value with the database's (writing it on a
 * database that has none) and set srv->pepper_ok. 0 (match, written, or the
 * check could not run: pepper_ok stays 0 and serve retries), or -1 with err:
 * the database holds another pepper's value. */
static int check_pepper(tk_server *srv, PGconn *c, char *err, size_t errlen)
{
	char why[512];
	switch (tk_pepper_check(c, srv->pepper_check, why, sizeof(why))) {
	case TK_PEPPER_MATCH:
		atomic_store(&srv->pepper_ok, 1);
		return 0;
	case TK_PEPPER_WRITTEN:
		atomic_store(&srv->pepper_ok, 1);
		tk_log(TK_LOG_INFO, "db.pepper_check_written",
		       "detail", "the database had no pepper check value: this pepper's is stored now", NULL);
		return 0;
	case TK_PEPPER_MISMATCH:
		atomic_store(&srv->pepper_ok, -1);
		snprintf(err, errlen, "%s", why);
		return -1;
	case TK_PEPPER_ERROR:
		break;
	}
	tk_log(TK_LOG_WARNING, "db.pepper_check_failed", "detail", why,
	       "hint", "not ready until the pepper is checked", NULL);
	return 0;
}

/* While the pepper is unchecked (the database was down at start): one try,
 * from the main thread (never an event loop). A mismatch found now cannot
 * refuse the start any more: it is logged and /readyz stays 503. */
static void recheck_pepper(tk_server *srv)
{
	char cerr[512], err[600];
	if (atomic_load(&srv->pepper_ok) != 0)
		return;
	PGconn *c = tk_db_connect(srv->cfg->database_url, "tokend", cerr, sizeof(cerr));
	if (!c)
		return;
	if (check_pepper(srv, c, err, sizeof(err)) != 0)
		tk_log(TK_LOG_ERROR, "db.pepper_mismatch", "detail", err,
		       "hint", "not ready: restart with the right pepper", NULL);
	PQfinish(c);
}

/* At startup: refuse an old schema, a privileged database role and another
 * pepper than the database's; tolerate an unreachable database (the server
 * answers 503 until it returns and the pepper is checked; the role is then
 * not checked). */
static int check_schema(tk_server *srv, char *err, size_t errlen)
{
	tk_config *cfg = srv->cfg;
	char cerr[512];
	PGconn *c = tk_db_connect(cfg->database_url, "tokend", cerr, sizeof(cerr));
	if (!c) {
		tk_log(TK_LOG_WARNING, "db.unavailable_at_start", "detail", cerr, NULL);
		return 0;
	}
	int cur = tk_migrate_current(c);
	if (cur >= 0 && cur < tk_migrate_latest()) {
		PQfinish(c);
		snprintf(err, errlen, "the database schema is at version %d, this tokend needs %d: run `tokend migrate`",
		         cur, tk_migrate_latest());
		return -1;
	}
	/* A role that could disable the triggers or drop the tables would make
	 * every rule the schema enforces optional: refuse it unless told. A check
	 * that cannot run refuses too. */
	char why[512];
	int priv = tk_migrate_role_check(c, why, sizeof(why));
	if (priv < 0) {
		PQfinish(c);
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	int pep = check_pepper(srv, c, err, errlen);
	PQfinish(c);
	if (pep != 0)
		return -1;
	if (priv > 0 && !cfg->allow_privileged_database_role) {
		snprintf(err, errlen, "%s: it could switch off the rules the schema enforces. Connect as a "
		         "member of tokend_app (see README, Database roles), or set "
		         "allow_privileged_database_role = yes", why);
		return -1;
	}
	if (priv > 0)
		tk_log(TK_LOG_WARNING, "db.privileged_role", "detail", why,
		       "hint", "allow_privileged_database_role = yes: the schema's rules are not enforced against tokend", NULL);
	return 0;
}

/*
 * Before binding: another process listening on `addr`:`port` would share the
 * connections with this one (SO_REUSEPORT; wanted for a rolling restart):
 * warn and name it, or with listen_exclusive refuse. 0, or -1 with err.
 */
static int check_port(const tk_config *cfg, const char *setting, const char *addr, int port,
                      int *shared, char *err, size_t errlen)
{
	char who[256], where[80];
	if (tk_port_listener(addr, port, who, sizeof(who)) != 1)
		return 0;
	*shared = 1;
	snprintf(where, sizeof(where), "%s:%d", addr, port);
	if (cfg->listen_exclusive) {
		snprintf(err, errlen, "another process already listens on %s (%s): %s; listen_exclusive = yes "
		         "refuses to share the port. Stop it, or choose another %s",
		         where, setting, who, setting);
		return -1;
	}
	tk_log(TK_LOG_WARNING, "server.port_shared", "address", where, "other", who,
	       "detail", "another process already listens here: the kernel will split new connections "
	       "between it and this tokend (fine for a rolling restart; otherwise stop it, or set "
	       "listen_exclusive = yes to refuse)", NULL);
	return 0;
}

int tk_serve_main(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		fputs(serve_usage, stdout);
		return CLI_OK;
	}
	if (argc > 1)
		cli_fail(CLI_USAGE, "serve: unexpected argument '%.40s'", argv[1]);
	tk_config *cfg = cli_config();
	tk_log_init(cfg->log_level, cfg->log_format);
	if (!*cfg->database_url)
		cli_fail(CLI_REFUSED, "no database configured: set database_url (or TOKEND_DATABASE_URL)");

	static tk_server srv;
	static tk_listener_hook signing_keys_hook = { on_signing_keys_changed, &srv };
	char err[1024];
	srv.cfg = cfg;
	srv.nworkers = cfg->workers;
	srv.started_at = (int64_t)time(NULL);
	if (tk_config_pepper(cfg, srv.pepper, &srv.pepper_len, err, sizeof(err)) != 0)
		cli_fail(CLI_REFUSED, "%s", err);
	if (tk_pepper_check_value(srv.pepper, srv.pepper_len, srv.pepper_check) != 0) {
		tk_wipe(srv.pepper, sizeof(srv.pepper));
		cli_fail(CLI_REFUSED, "cannot compute the pepper's check value");
	}
	if (!keys_from_db(cfg) && tk_server_keys_load(&srv, err, sizeof(err)) != 0) {
		tk_wipe(srv.pepper, sizeof(srv.pepper));
		cli_fail(CLI_REFUSED, "%s", err);
	}
	if (check_schema(&srv, err, sizeof(err)) != 0) {
		tk_wipe(srv.pepper, sizeof(srv.pepper));
		if (!keys_from_db(cfg))
			tk_server_keys_free(&srv);
		cli_fail(CLI_REFUSED, "%s", err);
	}
	/* Keys in the database: after the schema check (their table must exist). */
	if (keys_from_db(cfg) && tk_server_dbkeys_start(&srv, err, sizeof(err)) != 0) {
		tk_wipe(srv.pepper, sizeof(srv.pepper));
		tk_server_dbkeys_stop(&srv);
		cli_fail(CLI_REFUSED, "%s", err);
	}
	srv.default_audience = *cfg->default_audience ? cfg->default_audience : cfg->issuer;
	if (cfg->status_list) {
		/* Where the Token Status List is served (oauth/statuslist.c). */
		size_t ilen = strlen(cfg->issuer);
		while (ilen && cfg->issuer[ilen - 1] == '/')
			ilen--;
		if (asprintf(&srv.status_uri, "%.*s/oauth2/status-list", (int)ilen, cfg->issuer) < 0)
			cli_fail(CLI_REFUSED, "out of memory");
	}
	/* The dummy digest for unknown keys: random, so no secret can match it. */
	if (tk_random_bytes(srv.dummy_hash, sizeof(srv.dummy_hash)) != 0)
		cli_fail(CLI_REFUSED, "the random number generator failed");

	/* Every connection is a descriptor: raise the soft limit to the hard one. */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		setrlimit(RLIMIT_NOFILE, &nofile);
	}
	if (getrlimit(RLIMIT_NOFILE, &nofile) != 0 ||
	    tk_conn_table_init((size_t)nofile.rlim_cur, cfg->max_connections_per_address,
	                       cfg->max_connections) != 0)
		cli_fail(CLI_REFUSED, "out of memory");

	/* Signals are handled by this thread alone, through sigwait. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The composition: every endpoint module's routes in one router. */
	static const tk_route *const routes[] = { tk_oauth_routes, tk_ops_routes, tk_admin_routes,
	                                          tk_console_routes };
	size_t nroutes = sizeof(routes) / sizeof(routes[0]) - (cfg->console ? 0 : 1);   /* console last */
	srv.router = tk_router_new(routes, nroutes, cfg->admin_listen_port != 0, cfg->ops_listen_port != 0);
	srv.cache = tk_keycache_new((size_t)cfg->key_cache_size, cfg->cache_ttl);
	/* Free heap pages handed back after bursts of key records (memtrim.h);
	 * without the thread the server runs as before, holding more memory. */
	if (tk_memtrim_start(TK_MEMTRIM_INTERVAL_MS) != 0)
		tk_log(TK_LOG_WARNING, "memory.trim_unavailable", "detail",
		       "could not start the thread that hands free memory back", NULL);
	srv.rl_addr = tk_ratelimit_new(cfg->auth_failures_per_address, cfg->rate_limit_table_size);
	srv.rl_key = tk_ratelimit_new(cfg->auth_failures_per_key, cfg->rate_limit_table_size);
	srv.rl_issue = tk_ratelimit_new(0, cfg->rate_limit_table_size);
	srv.rl_public = tk_ratelimit_new(0, cfg->rate_limit_table_size);
	if (cfg->metrics_per_account)
		srv.acct_tokens = tk_acctcount_new(TK_METRICS_ACCOUNTS_MAX);
	int rc = -1;
	if ((cfg->metrics_per_account && !srv.acct_tokens) || !srv.router || !srv.cache || !srv.rl_addr || !srv.rl_key || !srv.rl_issue ||
	    !srv.rl_public) {
		snprintf(err, sizeof(err), "out of memory while setting up the server");
	} else if (!(srv.db = tk_dbpool_start(cfg->database_url, cfg->db_pool_size,
	                                      cfg->db_timeout * 1000,
	                                      (size_t)cfg->db_queue_size,
	                                      strcmp(cfg->database_pool_mode, "transaction") == 0))) {
		snprintf(err, sizeof(err), "cannot start the database pool");
	} else if (!(srv.listener = tk_listener_start(*cfg->listen_database_url ? cfg->listen_database_url
	                                              : cfg->database_url, srv.cache, cfg->db_timeout * 1000,
	                                              on_scopes_changed, on_keys_changed, &srv))) {
		snprintf(err, sizeof(err), "cannot start the notification listener");
	} else if (check_port(cfg, "listen_port", cfg->listen_address, cfg->listen_port, &srv.port_shared,
	                      err, sizeof(err)) != 0 ||
	           (cfg->admin_listen_port &&
	            check_port(cfg, "admin_listen_port", cfg->admin_listen_address, cfg->admin_listen_port,
	                       &(int){ 0 }, err, sizeof(err)) != 0)) {
		rc = -1;
	} else {
		tk_listener_watch_signing_keys(srv.listener, &signing_keys_hook);
		rc = tk_workers_start(&srv, err, sizeof(err));
	}
	/* The workers' hashers hold the pepper now: no other copy stays. */
	tk_wipe(srv.pepper, sizeof(srv.pepper));
	if (cfg->pepper)
		tk_wipe(cfg->pepper, strlen(cfg->pepper));
	if (rc != 0) {
		tk_log(TK_LOG_ERROR, "server.start_failed", "detail", err, NULL);
		fprintf(stderr, "tokend: %s\n", err);
	} else {
		char port[16], workers[16];
		snprintf(port, sizeof(port), "%d", cfg->listen_port);
		snprintf(workers, sizeof(workers), "%d", cfg->workers);
		const char *akid = tk_signer_active_kid(srv.keys->signer);
		tk_log(TK_LOG_INFO, "server.started", "version", TOKEND_VERSION, "address", cfg->listen_address,
		       TK_LOG_NUM "port", port, TK_LOG_NUM "workers", workers, "issuer", cfg->issuer, "signing_kid",
		       akid ? akid : "(none may sign yet)", "alg", akid ? tk_signer_active_alg(srv.keys->signer) : "-",
		       "signing_key_source", cfg->signing_key_source,
		       "pid_cache", tk_pidcache_active() ? "on" : "off", NULL);
		if (cfg->ops_listen_port) {
			snprintf(port, sizeof(port), "%d", cfg->ops_listen_port);
			tk_log(TK_LOG_INFO, "server.ops_listener", "address", cfg->ops_listen_address,
			       TK_LOG_NUM "port", port, "detail", "/metrics, /healthz and /readyz answer here only", NULL);
		}
		/* Every listener is bound and served: systemd may start what depends on us. */
		char status[160];
		snprintf(status, sizeof(status), "READY=1\nSTATUS=serving on %.80s:%d\nMAINPID=%ld",
		         cfg->listen_address, cfg->listen_port, (long)getpid());
		notify(status);
		for (;;) {
			/* While the pepper is unchecked, try again every 2 s; with the
			 * signing keys in the database, look at them 5 times a second. */
			struct timespec every = { 2, 0 }, tick = { 0, 200 * 1000000L };
			int sig = 0;
			if (srv.dbkeys)
				sig = sigtimedwait(&set, NULL, &tick);
			else if (atomic_load(&srv.pepper_ok) == 0)
				sig = sigtimedwait(&set, NULL, &every);
			else if (sigwait(&set, &sig) != 0)
				sig = -1;
			if (sig <= 0) {
				recheck_pepper(&srv);
				tk_server_dbkeys_tick(&srv);
				continue;
			}
			if (sig == SIGHUP) {
				notify_reloading();
				reload_keys(&srv);
				notify("READY=1");
				continue;
			}
			tk_log(TK_LOG_INFO, "server.stopping", "signal", sig == SIGTERM ? "TERM" : "INT", NULL);
			notify("STOPPING=1");
			break;
		}
	}
	tk_workers_stop(&srv);
	tk_workers_flush(&srv);          /* the last last-used marks are written, not lost */
	tk_listener_stop(srv.listener);
	tk_dbpool_stop(srv.db);
	tk_memtrim_stop();
	tk_workers_free(&srv);
	tk_conn_table_free();
	tk_dbpool_free(srv.db);
	tk_keycache_free(srv.cache);
	tk_ratelimit_free(srv.rl_addr);
	tk_ratelimit_free(srv.rl_key);
	tk_ratelimit_free(srv.rl_issue);
	tk_ratelimit_free(srv.rl_public);
	tk_acctcount_free(srv.acct_tokens);
	tk_router_free(srv.router);
	tk_server_dbkeys_stop(&srv);
	tk_server_keys_free(&srv);
	tk_log(TK_LOG_INFO, "server.stopped", NULL);
	return rc == 0 ? CLI_OK : CLI_REFUSED;
}
