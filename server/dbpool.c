/*
 * dbpool.c - database threads, job queue and worker mailboxes.
 */
#include "dbpool.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"

struct tk_mailbox {
	pthread_mutex_t mu;
	tk_dbjob *head, *tail;
	int efd;
	struct event *ev;
};

typedef struct dbthread {
	tk_dbpool *pool;
	pthread_t thread;
	PGconn *conn;
	int index;
} dbthread;

struct tk_dbpool {
	char *url;
	int64_t timeout_ms;
	size_t max_queue;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	tk_dbjob *head, *tail;
	size_t queued;
	int stopping;
	_Atomic int connected;
	_Atomic int down;          /* the last connection attempt failed: fail fast */
	_Atomic uint64_t up_seq;   /* successful connection attempts */
	int nthreads;
	dbthread *threads;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- mailboxes ---- */

static void mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	uint64_t v;
	ssize_t r = read(fd, &v, sizeof(v));
	(void)r;
	tk_mailbox_drain(arg);
}

int tk_mailbox_drain(tk_mailbox *m)
{
	int n = 0;
	pthread_mutex_lock(&m->mu);
	tk_dbjob *j = m->head;
	m->head = m->tail = NULL;
	pthread_mutex_unlock(&m->mu);
	while (j) {
		tk_dbjob *next = j->next;
		j->next = NULL;
		j->done(j);
		j = next;
		n++;
	}
	return n;
}

tk_mailbox *tk_mailbox_new(struct event_base *base)
{
	tk_mailbox *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	pthread_mutex_init(&m->mu, NULL);
	m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (m->efd < 0) {
		free(m);
		return NULL;
	}
	m->ev = event_new(base, m->efd, EV_READ | EV_PERSIST, mailbox_cb, m);
	event_add(m->ev, NULL);
	return m;
}

void tk_mailbox_free(tk_mailbox *m)
{
	if (!m)
		return;
	event_free(m->ev);
	close(m->efd);
	pthread_mutex_destroy(&m->mu);
	free(m);
}

static void mailbox_post(tk_mailbox *m, tk_dbjob *j)
{
	j->next = NULL;
	pthread_mutex_lock(&m->mu);
	if (m->tail)
		m->tail->next = j;
	else
		m->head = j;
	m->tail = j;
	pthread_mutex_unlock(&m->mu);
	uint64_t one = 1;
	ssize_t r = write(m->efd, &one, sizeof(one));
	(void)r;
}

/* ---- connections ---- */

/* The statements every pool connection prepares. */
static const struct {
	const char *name;
	int nparams;
	const char *sql;
} statements[] = {
	{ "key", 1,
	  "SELECT k.account_id, k.secret_hash, k.pepper_id, array_to_string(k.scopes, ' '),"
	  " array_to_string(k.audiences, ' '), k.subject, coalesce(k.token_lifetime, 0),"
	  " coalesce(floor(extract(epoch FROM k.expires_at))::bigint, 0),"
	  " CASE WHEN k.deleted_at IS NOT NULL THEN 'key_deleted' WHEN k.revoked_at IS NOT NULL THEN 'key_revoked'"
	  "  WHEN k.disabled_at IS NOT NULL THEN 'key_disabled' WHEN a.disabled_at IS NOT NULL THEN 'account_disabled'"
	  "  ELSE '' END, coalesce(k.rate_limit, 0),"
	  " coalesce(floor(extract(epoch FROM k.last_used_at))::bigint, 0)"
	  " FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1" },
	{ "last_used", 2,
	  "UPDATE api_keys k SET last_used_at = to_timestamp(v.t)"
	  " FROM unnest($1::text[], $2::bigint[]) AS v(id, t)"
	  " WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < to_timestamp(v.t))" },
	{ "token_state", 2, TK_SQL_TOKEN_STATE },
	{ "revoke", 5,
	  "INSERT INTO revoked_tokens (jti, key_id, account_id, expires_at)"
	  " SELECT $1, $2, $3, to_timestamp($4) FROM (SELECT set_config('tokend.actor', $5, true)) s"
	  " ON CONFLICT (jti) DO NOTHING" },
	{ "purge", 0, "DELETE FROM revoked_tokens WHERE expires_at < now() - interval '1 minute'" },
	{ "scopes", 0, "SELECT coalesce(string_agg(name, ' ' ORDER BY name), '') FROM scopes" },
};

static PGconn *db_open(tk_dbpool *p)
{
	char timeout_s[24], user_timeout[24], stmt[64];
	int64_t secs = (p->timeout_ms + 999) / 1000;
	snprintf(timeout_s, sizeof(timeout_s), "%lld", (long long)(secs < 2 ? 2 : secs));
	snprintf(user_timeout, sizeof(user_timeout), "%lld", (long long)p->timeout_ms * 2);
	const char *keys[] = { "connect_timeout", "application_name", "keepalives", "keepalives_idle",
	                       "keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname", NULL };
	const char *vals[] = { timeout_s, "tokend", "1", "10", "2", "3", user_timeout, p->url, NULL };
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return NULL;
	}
	snprintf(stmt, sizeof(stmt), "SET statement_timeout = %lld", (long long)p->timeout_ms);
	PGresult *r = PQexec(c, stmt);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	/* Prepare the statements once per connection. */
	for (size_t i = 0; ok && i < sizeof(statements) / sizeof(statements[0]); i++) {
		r = PQprepare(c, statements[i].name, statements[i].sql, statements[i].nparams, NULL);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		PQclear(r);
	}
	if (!ok) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/*
 * Run a prepared statement with a deadline. Returns the result, or NULL if the
 * connection failed or the deadline passed (the connection is then dropped).
 */
static PGresult *run_prepared(dbthread *t, const char *stmt, int n, const char *const *params)
{
	PGconn *c = t->conn;
	int64_t deadline = now_ms() + t->pool->timeout_ms;
	if (!PQsendQueryPrepared(c, stmt, n, params, NULL, NULL, 0))
		goto broken;
	while (PQisBusy(c)) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			goto broken;
		struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
		int pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno != EINTR)
			goto broken;
		if (pr > 0 && !PQconsumeInput(c))
			goto broken;
	}
	PGresult *res = PQgetResult(c), *extra;
	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	if (PQstatus(c) != CONNECTION_OK) {
		PQclear(res);
		goto broken;
	}
	return res;
broken:
	tk_log(TK_LOG_WARNING, "db.connection_lost", "detail", PQerrorMessage(c), NULL);
	PQfinish(c);
	t->conn = NULL;
	atomic_fetch_sub(&t->pool->connected, 1);
	return NULL;
}

static int ensure_conn(dbthread *t)
{
	if (t->conn)
		return 0;
	uint64_t seq = atomic_load(&t->pool->up_seq);
	t->conn = db_open(t->pool);
	if (!t->conn) {
		/* Down - unless another thread connected since this attempt began: a
		 * slow attempt started before the database came back must not mark
		 * it down again (requests would fail fast while it answers). */
		atomic_store(&t->pool->down, 1);
		if (atomic_load(&t->pool->up_seq) != seq)
			atomic_store(&t->pool->down, 0);
		return -1;
	}
	atomic_fetch_add(&t->pool->up_seq, 1);
	atomic_store(&t->pool->down, 0);
	if (atomic_fetch_add(&t->pool->connected, 1) == 0)
		tk_log(TK_LOG_INFO, "db.connected", NULL);
	return 0;
}

static void parse_key_row(tk_key *k, PGresult *r)
{
	k->found = 1;
	snprintf(k->account, sizeof(k->account), "%s", PQgetvalue(r, 0, 0));
	size_t hlen = 0;
	unsigned char *h = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &hlen);
	if (h && hlen == TK_HASH_LEN)
		memcpy(k->hash, h, TK_HASH_LEN);
	else
		k->usable = 0;
	if (h) {
		tk_wipe(h, hlen);
		PQfreemem(h);
	}
	k->pepper_id = atoi(PQgetvalue(r, 0, 2));
	const char *why;
	const char *sc = PQgetvalue(r, 0, 3);
	int scopes_ok = tk_scopes_parse(sc, strlen(sc), &k->scopes, &why) == 0;
	const char *aud = PQgetvalue(r, 0, 4);
	while (*aud && k->naud < TK_MAX_AUDIENCES) {
		const char *sp = strchr(aud, ' ');
		size_t len = sp ? (size_t)(sp - aud) : strlen(aud);
		k->aud[k->naud++] = strndup(aud, len);
		aud += len + (sp ? 1 : 0);
	}
	k->subject = PQgetisnull(r, 0, 5) ? NULL : strdup(PQgetvalue(r, 0, 5));
	k->lifetime = atoi(PQgetvalue(r, 0, 6));
	k->rate_limit = atoi(PQgetvalue(r, 0, 9));
	k->expires_at = strtoll(PQgetvalue(r, 0, 7), NULL, 10);
	atomic_store(&k->last_used_at, (int64_t)strtoll(PQgetvalue(r, 0, 10), NULL, 10));
	static const char *const reasons[] = { "key_deleted", "key_revoked", "key_disabled", "account_disabled" };
	const char *why_not = PQgetvalue(r, 0, 8);
	k->unusable_reason = NULL;
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (strcmp(why_not, reasons[i]) == 0)
			k->unusable_reason = reasons[i];
	if (!k->unusable_reason && *why_not)
		k->unusable_reason = "key_not_usable";
	if (!k->unusable_reason && !(h && hlen == TK_HASH_LEN && scopes_ok))
		k->unusable_reason = "key_corrupt";
	k->usable = k->unusable_reason == NULL;
}

static void do_job(dbthread *t, tk_dbjob *j)
{
	j->status = TK_DBJOB_FAILED;
	/* One retry on a fresh connection: a backend killed or restarted since our
	 * last query costs no request. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (ensure_conn(t) != 0)
			return;
		PGresult *r;
		if (j->kind == TK_DBJOB_KEY) {
			const char *params[] = { j->key_id };
			r = run_prepared(t, "key", 1, params);
			if (!r)
				continue;
			if (PQresultStatus(r) == PGRES_TUPLES_OK) {
				tk_key *k = tk_key_new();
				if (k) {
					snprintf(k->id, sizeof(k->id), "%s", j->key_id);
					if (PQntuples(r) == 1)
						parse_key_row(k, r);
					j->key = k;
					j->status = TK_DBJOB_OK;
				}
			} else {
				tk_log(TK_LOG_WARNING, "db.query_failed", "detail",
				       PQresultErrorMessage(r), NULL);
			}
			PQclear(r);
			return;
		}
		if (j->kind == TK_DBJOB_QUERY) {
			PGresult *res = NULL;
			int64_t deadline = now_ms() + t->pool->timeout_ms;
			PGconn *c = t->conn;
			if (PQsendQueryParams(c, j->sql, j->nparams, NULL, j->params, NULL, NULL, 0)) {
				int broken = 0;
				while (!broken && PQisBusy(c)) {
					int64_t left = deadline - now_ms();
					struct pollfd pfd = { .fd = PQsocket(c), .events = POLLIN };
					if (left <= 0 || (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) ||
					    !PQconsumeInput(c))
						broken = 1;
				}
				if (!broken) {
					res = PQgetResult(c);
					PGresult *extra;
					while ((extra = PQgetResult(c)) != NULL)
						PQclear(extra);
				}
			}
			if (!res || PQstatus(c) != CONNECTION_OK) {
				PQclear(res);
				tk_log(TK_LOG_WARNING, "db.connection_lost", "detail", PQerrorMessage(c), NULL);
				PQfinish(c);
				t->conn = NULL;
				atomic_fetch_sub(&t->pool->connected, 1);
				if (j->no_retry)
					return;
				continue;
			}
			j->result = res;
			j->status = TK_DBJOB_OK;   /* the owner reads the result's own status */
			return;
		}
		if (j->kind == TK_DBJOB_TOKEN_STATE) {
			const char *params[] = { j->key_id, j->jti };
			r = run_prepared(t, "token_state", 2, params);
			if (!r)
				continue;
			if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
				j->key_active = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
				j->jti_revoked = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
				j->status = TK_DBJOB_OK;
			}
			PQclear(r);
			return;
		}
		if (j->kind == TK_DBJOB_REVOKE || j->kind == TK_DBJOB_PURGE) {
			char exp[24];
			snprintf(exp, sizeof(exp), "%lld", (long long)j->exp);
			const char *params[] = { j->jti, j->key_id, j->account, exp, j->actor };
			r = j->kind == TK_DBJOB_REVOKE ? run_prepared(t, "revoke", 5, params)
			                               : run_prepared(t, "purge", 0, NULL);
			if (!r)
				continue;
			if (PQresultStatus(r) == PGRES_COMMAND_OK)
				j->status = TK_DBJOB_OK;
			else
				tk_log(TK_LOG_WARNING, "db.query_failed", "detail", PQresultErrorMessage(r), NULL);
			PQclear(r);
			return;
		}
		if (j->kind == TK_DBJOB_SCOPES) {
			r = run_prepared(t, "scopes", 0, NULL);
			if (!r)
				continue;
			if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
				j->text = strdup(PQgetvalue(r, 0, 0));
				if (j->text)
					j->status = TK_DBJOB_OK;
			}
			PQclear(r);
			return;
		}
		/* TK_DBJOB_LAST_USED: two array literals. IDs are [0-9A-Za-z_]. */
		size_t cap = j->n * (TK_KEY_ID_LEN + 24) + 3;
		char *ids = malloc(cap), *times = malloc(cap);
		if (!ids || !times) {
			free(ids);
			free(times);
			return;
		}
		size_t a = 0, b = 0;
		ids[a++] = '{';
		times[b++] = '{';
		for (size_t i = 0; i < j->n; i++) {
			a += (size_t)snprintf(ids + a, cap - a, "%s%s", i ? "," : "", j->ids[i]);
			b += (size_t)snprintf(times + b, cap - b, "%s%lld", i ? "," : "", (long long)j->times[i]);
		}
		ids[a++] = '}';
		ids[a] = '\0';
		times[b++] = '}';
		times[b] = '\0';
		const char *params[] = { ids, times };
		r = run_prepared(t, "last_used", 2, params);
		free(ids);
		free(times);
		if (!r)
			continue;
		if (PQresultStatus(r) == PGRES_COMMAND_OK)
			j->status = TK_DBJOB_OK;
		PQclear(r);
		return;
	}
}

static void *db_thread_main(void *arg)
{
	dbthread *t = arg;
	tk_dbpool *p = t->pool;
	ensure_conn(t);   /* connect at once, off the caller's thread */
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->stopping && !p->head) {
			if (!t->conn) {
				/* Reconnect in the background while idle, every 250 ms. */
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_nsec += 250 * 1000000L;
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&p->cv, &p->mu, &ts);
				if (!p->head && !p->stopping) {
					pthread_mutex_unlock(&p->mu);
					ensure_conn(t);
					pthread_mutex_lock(&p->mu);
				}
			} else {
				/* Idle with a connection: check it every 2 s, so that an
				 * outage shows (readyz) before a request meets it. */
				struct timespec ts;
				clock_gettime(CLOCK_REALTIME, &ts);
				ts.tv_sec += 2;
				if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) != 0 && !p->head && !p->stopping) {
					pthread_mutex_unlock(&p->mu);
					const char *none[1] = { NULL };
					PGresult *r = run_prepared(t, "scopes", 0, none);
					PQclear(r);
					pthread_mutex_lock(&p->mu);
				}
			}
		}
		if (p->stopping && !p->head) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		tk_dbjob *j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->mu);
		if (p->stopping && j->kind != TK_DBJOB_LAST_USED)
			j->status = TK_DBJOB_FAILED;   /* fail fast; but last-used marks are written */
		else
			do_job(t, j);
		mailbox_post(j->reply, j);
	}
	if (t->conn) {
		PQfinish(t->conn);
		t->conn = NULL;
		atomic_fetch_sub(&p->connected, 1);
	}
	return NULL;
}

tk_dbpool *tk_dbpool_start(const char *url, int threads, int64_t timeout_ms, size_t max_queue)
{
	tk_dbpool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->url = strdup(url);
	p->timeout_ms = timeout_ms;
	p->max_queue = max_queue;
	p->nthreads = threads;
	p->threads = calloc((size_t)threads, sizeof(dbthread));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (int i = 0; i < threads; i++) {
		p->threads[i].pool = p;
		p->threads[i].index = i;
		pthread_create(&p->threads[i].thread, NULL, db_thread_main, &p->threads[i]);
	}
	return p;
}

void tk_dbpool_stop(tk_dbpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i].thread, NULL);
	p->nthreads = 0;
}

void tk_dbpool_free(tk_dbpool *p)
{
	if (!p)
		return;
	tk_dbpool_stop(p);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->threads);
	free(p->url);
	free(p);
}

int tk_dbpool_submit(tk_dbpool *p, tk_dbjob *job)
{
	/* Fail fast only when the database is known to be away (a connection
	 * attempt failed): connections merely lost (a backend killed, a restart
	 * already over) are reopened by the thread that takes the job. */
	if (atomic_load(&p->down) && job->kind != TK_DBJOB_LAST_USED)
		return -1;
	pthread_mutex_lock(&p->mu);
	if (p->stopping || p->queued >= p->max_queue) {
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	job->next = NULL;
	if (p->tail)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	p->queued++;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int tk_dbpool_connected(tk_dbpool *p)
{
	return atomic_load(&p->connected);
}
