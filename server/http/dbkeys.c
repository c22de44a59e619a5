/*
 * dbkeys.c - the server's signing keys when they live in PostgreSQL
 * (signing_key_source = database; server.h tk_server_dbkeys_*, db/signkeys.h).
 *
 * Runs on the main thread only (between sigtimedwait calls), on its own
 * blocking connection named "tokend-rotation-<pid>": reading the rows,
 * decrypting them into a key set (workers move to it at their next request),
 * and the rotation steps under the advisory lock. The key-encryption key is
 * held here for the life of the process and wiped at stop; it is never
 * logged. A failure keeps the running set and is retried.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tokend/crypto.h>

#include "db.h"
#include "log.h"
#include "server.h"
#include "signkeys.h"

#define FETCH_EVERY_MS 5000   /* a missed NOTIFY is caught up this fast */
#define RETRY_MS       1000

struct tk_dbkeys {
	unsigned char kek[TK_KEK_LEN];
	PGconn *c;
	char appname[48];
	unsigned char digest[32];
	int64_t next_fetch, next_change, next_step;
	int64_t delay_ms;             /* tests: TOKEND_TEST_ROTATION_STEP_DELAY_MS */
	char active[TK_THUMBPRINT_LEN + 1];
	int down_logged;
};

static PGconn *conn(tk_server *srv, char *err, size_t errlen)
{
	struct tk_dbkeys *d = srv->dbkeys;
	if (d->c && PQstatus(d->c) != CONNECTION_OK) {
		PQfinish(d->c);
		d->c = NULL;
	}
	if (!d->c) {
		d->c = tk_db_connect(srv->cfg->database_url, d->appname, err, errlen);
		/* Who acts, for the audit log of the rotation steps. */
		const char *p[] = { d->appname };
		if (d->c)
			PQclear(tk_db_exec(d->c, "SELECT set_config('tokend.actor', 'server:' || $1, false)", 1, p));
	}
	return d->c;
}

/* Build and install the set of `rows` at `now`. 0, or -1 with err. */
static int install(tk_server *srv, const tk_signkey_rows *rows, int64_t now, int first,
                   char *err, size_t errlen)
{
	struct tk_dbkeys *d = srv->dbkeys;
	tk_keyset *ks = tk_signkeys_keyset(srv->cfg, d->kek, rows, now, err, errlen);
	if (!ks)
		return -1;
	tk_signkeys_choose(rows, now, srv->cfg->jwks_max_age * 1000, &d->next_change);
	memcpy(d->digest, rows->digest, sizeof(d->digest));
	const char *kid = tk_signer_active_kid(ks->signer);
	char n[16];
	snprintf(n, sizeof(n), "%zu", tk_signer_count(ks->signer));
	if (!kid)
		tk_log(TK_LOG_ERROR, "signing_keys.none_may_sign", TK_LOG_NUM "published_keys", n,
		       "detail", "no signing key in the database may sign now (none current, or none "
		       "published for jwks_max_age): token requests get 503 and /readyz is 503", NULL);
	else if (strcmp(kid, d->active) != 0 || first)
		tk_log(TK_LOG_INFO, "signing_keys.loaded", "signing_kid", kid,
		       "alg", tk_signer_active_alg(ks->signer), TK_LOG_NUM "published_keys", n,
		       "source", "database", NULL);
	snprintf(d->active, sizeof(d->active), "%s", kid ? kid : "");
	if (first)
		tk_server_keys_start(srv, ks);
	else
		tk_server_set_keys(srv, ks);
	return 0;
}

int tk_server_dbkeys_start(tk_server *srv, char *err, size_t errlen)
{
	char why[1024], did[512];
	tk_signkey_rows rows = { 0 };
	struct tk_dbkeys *d = calloc(1, sizeof(*d));
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	srv->dbkeys = d;
	if (tk_config_kek(srv->cfg, d->kek, err, errlen) != 0)
		return -1;
	if (srv->cfg->signing_key_encryption_key)
		tk_wipe(srv->cfg->signing_key_encryption_key, strlen(srv->cfg->signing_key_encryption_key));
	const char *delay = getenv("TOKEND_TEST_ROTATION_STEP_DELAY_MS");
	d->delay_ms = delay ? strtoll(delay, NULL, 10) : 0;
	snprintf(d->appname, sizeof(d->appname), "tokend-rotation-%ld", (long)getpid());
	if (!conn(srv, why, sizeof(why))) {
		snprintf(err, errlen, "signing_key_source = database: cannot reach the database to load the "
		         "signing keys: %s", why);
		return -1;
	}
	/* An empty table gets its initial key (one instance: the lock). */
	int rc = tk_signkeys_rotate(d->c, srv->cfg, d->kek, 1, 0, did, sizeof(did), why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "signing keys: %s", why);
		return -1;
	}
	if (rc > 0)
		tk_log(TK_LOG_INFO, "signing_keys.rotation_step", "did", did, NULL);
	if (tk_signkeys_fetch(d->c, &rows, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	int64_t now = tk_signkeys_now();
	if (install(srv, &rows, now, 1, why, sizeof(why)) != 0) {
		tk_signkeys_rows_free(&rows);
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	d->next_step = tk_signkeys_next_step(srv->cfg, &rows, now);
	d->next_fetch = now + FETCH_EVERY_MS;
	tk_signkeys_rows_free(&rows);
	return 0;
}

void tk_server_dbkeys_tick(tk_server *srv)
{
	struct tk_dbkeys *d = srv->dbkeys;
	char why[1024], did[512];
	if (!d)
		return;
	int64_t now = tk_signkeys_now();
	int notified = atomic_exchange(&srv->signing_keys_changed, 0);
	if (!notified && now < d->next_fetch && now < d->next_change && now < d->next_step)
		return;
	if (!conn(srv, why, sizeof(why))) {
		if (!d->down_logged)
			tk_log(TK_LOG_WARNING, "signing_keys.db_unavailable", "detail", why,
			       "hint", "the loaded signing keys stay in use; rotation waits", NULL);
		d->down_logged = 1;
		d->next_fetch = now + RETRY_MS;
		return;
	}
	d->down_logged = 0;
	if (now >= d->next_step) {
		int rc = tk_signkeys_rotate(d->c, srv->cfg, d->kek, 0, d->delay_ms, did, sizeof(did), why, sizeof(why));
		if (rc > 0)
			tk_log(TK_LOG_INFO, "signing_keys.rotation_step", "did", did, NULL);
		else if (rc < 0)
			tk_log(TK_LOG_ERROR, "signing_keys.rotation_failed", "detail", why,
			       "hint", "retried in a second", NULL);
		now = tk_signkeys_now();
	}
	tk_signkey_rows rows = { 0 };
	if (tk_signkeys_fetch(d->c, &rows, why, sizeof(why)) != 0) {
		tk_log(TK_LOG_WARNING, "signing_keys.reload_failed", "detail", why, NULL);
		d->next_fetch = now + RETRY_MS;
		d->next_step = d->next_step <= now ? now + RETRY_MS : d->next_step;
		return;
	}
	if (memcmp(rows.digest, d->digest, sizeof(d->digest)) != 0 || now >= d->next_change) {
		if (install(srv, &rows, now, 0, why, sizeof(why)) != 0) {
			tk_log(TK_LOG_ERROR, "signing_keys.reload_failed", "detail", why,
			       "kept", "the running signing keys", NULL);
			d->next_change = now + RETRY_MS;
		}
	}
	d->next_step = tk_signkeys_next_step(srv->cfg, &rows, now);
	if (d->next_step <= now)
		d->next_step = now + RETRY_MS;     /* due, but another instance holds the lock */
	d->next_fetch = now + FETCH_EVERY_MS;
	tk_signkeys_rows_free(&rows);
}

void tk_server_dbkeys_stop(tk_server *srv)
{
	struct tk_dbkeys *d = srv->dbkeys;
	if (!d)
		return;
	PQfinish(d->c);
	tk_wipe(d->kek, sizeof(d->kek));
	free(d);
	srv->dbkeys = NULL;
}
