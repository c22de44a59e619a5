/*
 * dbpool.c - database threads, the job queue, connections and deadlines.
 * What each job sends is in dbjobs.c; how it comes back, in mailbox.c.
 *
 * Deadlines: a job's deadline is set when it is submitted (submit time +
 * db_timeout), so time spent waiting in the queue counts. A thread that takes
 * a job already past its deadline fails it without touching the database;
 * the statement's own wait ends at the same deadline. The queue is FIFO and
 * every job ahead of a job has an earlier deadline, so a job is answered
 * close to its deadline at the latest, however full the queue.
 *
 * Key lookups run on at most key_lanes threads at once (take_job): those that
 * queue meanwhile are answered together by the next free lane, and the other
 * threads take every other kind of job past them. A lane whose statement has
 * run for the spill threshold is stuck (a hung connection, a lock): it no
 * longer counts, and another thread takes the queued lookups, so that one bad
 * connection does not make every cache miss wait for db_timeout. One thread
 * always stays out of the lookups (with 3 threads or more).
 *
 * The spill threshold follows the database: four times the recent lane time
 * (a moving average of how long lanes took, each counted at most at the
 * threshold then in force, so that a hung lane pulls it up only a little),
 * at least KEY_SPILL_MIN_US, at most a quarter of db_timeout. Next to the
 * database a batch takes well under a millisecond (threshold: the floor);
 * 10 ms away, every batch would spill at a fixed 5 ms.
 */
#include "dbpool.h"

#include <errno.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "clock.h"
#include "dbjobs.h"
#include "log.h"
#include "mailbox.h"
#include "thread.h"

typedef struct dbthread {
	tk_dbpool *pool;
	pthread_t thread;
	PGconn *conn;
	int index;
	int64_t key_since;         /* monotonic us its key lookups were taken, 0: none (locked) */
	int64_t idle_since;        /* its last job or ping (its own) */
} dbthread;

struct tk_dbpool {
	char *url;
	int64_t timeout_ms;
	size_t max_queue;
	int txn_pooling;           /* behind a transaction pooler: no session state */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	tk_dbjob *head, *tail;
	size_t queued;
	int stopping;
	_Atomic int connected;
	_Atomic int down;          /* the last connection attempt failed: fail fast */
	_Atomic uint64_t up_seq;   /* successful connection attempts */
	int nthreads;
	int nslots;                /* threads' entries (zeroed until started) */
	dbthread *threads;
	int key_lanes;             /* connections that may run key lookups at once */
	int key_max;               /* ... counting the stuck ones (spill_us) */
	int key_busy;              /* threads running lookups now, stuck ones too (locked) */
	int spill_waiters;         /* idle threads whose wait ends when a lane turns stuck (locked) */
	int64_t lane_avg_us;       /* moving average of lane times, clipped at spill_us (locked) */
	_Atomic int64_t spill_us;  /* a lane out this long is stuck (written locked) */
	_Atomic uint64_t key_spills;       /* lookups taken past a stuck lane */
	_Atomic uint64_t key_statements;   /* statements sent to look up keys */
	_Atomic uint64_t key_lookups;      /* KEY jobs those statements carried */
};

/* The spill threshold's floor (a lane out this long may be stuck: the queued
 * lookups may go to another connection, at most key_max at once), and how
 * many times the recent lane time it is. A batch takes well under a
 * millisecond on a healthy database next to tokend. */
#define KEY_SPILL_MIN_US 5000
#define KEY_SPILL_FACTOR 4

/* How often an idle connection is checked (so that an outage shows in
 * /readyz before a request meets it). */
#define IDLE_PING_MS 2000

/* ---- connections ---- */

/* How long a connection attempt made while idle may take. */
#define IDLE_CONNECT_MS 5000

/* Outcome of waiting on a connection. */
typedef enum { WAIT_OK = 0, WAIT_FAILED, WAIT_LATE } wait_t;

/* Wait until `c`'s socket is ready for `events` or `deadline` (monotonic ms). */
static wait_t wait_socket(PGconn *c, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - tk_mono_ms();
		if (left <= 0)
			return WAIT_LATE;
		struct pollfd pfd = { .fd = PQsocket(c), .events = events };
		if (pfd.fd < 0)
			return WAIT_FAILED;
		int pr = poll(&pfd, 1, (int)left);
		if (pr > 0)
			return WAIT_OK;
		if (pr < 0 && errno != EINTR)
			return WAIT_FAILED;
	}
}

/*
 * Send what libpq still holds of the statement just queued on `c` (a
 * non-blocking connection: PQsendQuery* leaves in its buffer what the socket
 * did not take). Until PQflush says all is out: wait for the socket to take
 * more, or to bring something (read, so that a server blocked on its own
 * output goes on). Without it, a statement larger than the socket's buffers
 * (a last-used batch, a database over a real network) waited for an answer
 * to a statement the server never got whole, until the deadline.
 */
static wait_t flush_out(PGconn *c, int64_t deadline)
{
	int f;
	wait_t w;

	while ((f = PQflush(c)) == 1) {
		if ((w = wait_socket(c, POLLIN | POLLOUT, deadline)) != WAIT_OK)
			return w;
		if (!PQconsumeInput(c))
			return WAIT_FAILED;
	}
	return f == 0 ? WAIT_OK : WAIT_FAILED;
}

/*
 * The one deadline loop: wait for the answer to what was just sent on `c`.
 * *res is the result (NULL on failure). WAIT_LATE: the deadline passed.
 */
static wait_t await_result(PGconn *c, int64_t deadline, PGresult **res)
{
	PGresult *r, *extra;
	wait_t w;

	*res = NULL;
	while (PQisBusy(c)) {
		if ((w = wait_socket(c, POLLIN, deadline)) != WAIT_OK)
			return w;
		if (!PQconsumeInput(c))
			return WAIT_FAILED;
	}
	r = PQgetResult(c);
	while ((extra = PQgetResult(c)) != NULL)
		PQclear(extra);
	if (r == NULL || PQstatus(c) != CONNECTION_OK) {
		PQclear(r);
		return WAIT_FAILED;
	}
	*res = r;
	return WAIT_OK;
}

/* Send a setup statement (SET, PREPARE) and check it, within `deadline`. */
static wait_t setup_step(PGconn *c, const char *name, const char *sql, int nparams, int64_t deadline)
{
	PGresult *r = NULL;
	int sent = name ? PQsendPrepare(c, name, sql, nparams, NULL) : PQsendQuery(c, sql);
	wait_t w = sent ? flush_out(c, deadline) : WAIT_FAILED;

	if (w == WAIT_OK)
		w = await_result(c, deadline, &r);

	if (w == WAIT_OK && PQresultStatus(r) != PGRES_COMMAND_OK)
		w = WAIT_FAILED;
	PQclear(r);
	return w;
}

/*
 * Open a connection, set its statement timeout and prepare the statements,
 * all within `deadline` (libpq's non-blocking connect, so a database that
 * does not answer costs no more than the time the caller has). Behind a
 * transaction pooler (txn_pooling) neither: a session setting or a named
 * statement would stay on whichever server connection the pooler chose.
 * With several hosts, the one that accepts writes (target_session_attrs;
 * the URL may say otherwise: it is read last).
 */
static wait_t db_open(tk_dbpool *p, int64_t deadline, PGconn **out)
{
	char timeout_s[24], user_timeout[24], stmt[64];
	int64_t secs = (p->timeout_ms + 999) / 1000;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	wait_t w = WAIT_OK;

	*out = NULL;
	snprintf(timeout_s, sizeof(timeout_s), "%lld", (long long)(secs < 2 ? 2 : secs));
	snprintf(user_timeout, sizeof(user_timeout), "%lld", (long long)p->timeout_ms * 2);
	const char *keys[] = { "connect_timeout", "application_name", "keepalives", "keepalives_idle",
	                       "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	                       "target_session_attrs", "dbname", NULL };
	const char *vals[] = { timeout_s, "tokend", "1", "10", "2", "3", user_timeout, "read-write", p->url, NULL };
	PGconn *c = PQconnectStartParams(keys, vals, 1);
	if (!c || PQstatus(c) == CONNECTION_BAD) {
		PQfinish(c);
		return WAIT_FAILED;
	}
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED) {
			w = WAIT_FAILED;
			break;
		}
		w = wait_socket(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
		if (w != WAIT_OK)
			break;
		st = PQconnectPoll(c);
	}
	if (w == WAIT_OK && PQsetnonblocking(c, 1) != 0)
		w = WAIT_FAILED;
	snprintf(stmt, sizeof(stmt), "SET statement_timeout = %lld", (long long)p->timeout_ms);
	if (w == WAIT_OK && !p->txn_pooling)
		w = setup_step(c, NULL, stmt, 0, deadline);
	for (size_t i = 0; w == WAIT_OK && !p->txn_pooling && i < tk_dbstatements_count; i++)
		w = setup_step(c, tk_dbstatements[i].name, tk_dbstatements[i].sql,
		               tk_dbstatements[i].nparams, deadline);
	if (w != WAIT_OK) {
		PQfinish(c);
		return w;
	}
	*out = c;
	return WAIT_OK;
}

/* Drop t's connection after `job` failed on it: no answer by the job's
 * deadline (late), or the connection broke. */
static void drop_conn(dbthread *t, const char *job, int late)
{
	if (late)
		tk_log(TK_LOG_WARNING, "db.query_timeout", "job", job, "detail",
		       "no answer by the job's deadline: the connection is dropped and opened again", NULL);
	else
		tk_log(TK_LOG_WARNING, "db.connection_lost", "job", job, "detail", PQerrorMessage(t->conn), NULL);
	PQfinish(t->conn);
	t->conn = NULL;
	atomic_fetch_sub(&t->pool->connected, 1);
}

/* The text of the prepared statement `name` (for a transaction pooler). */
static const char *stmt_sql(const char *name)
{
	for (size_t i = 0; i < tk_dbstatements_count; i++)
		if (strcmp(tk_dbstatements[i].name, name) == 0)
			return tk_dbstatements[i].sql;
	return NULL;
}

/*
 * Send `call` and wait for its answer until `deadline`. NULL when the
 * connection failed or the deadline passed: the connection is then dropped
 * (PQcancel would block on libpq 15) and reopened for the next job. A
 * server that refuses because it is read-only (SQLSTATE 25006: a standby,
 * or a primary demoted under us) gets the same treatment: nothing was
 * written, and the next connection goes to the host that accepts writes.
 */
static PGresult *run_call(dbthread *t, const tk_dbcall *call, int64_t deadline, const char *job)
{
	PGresult *r = NULL;
	wait_t w = WAIT_FAILED;
	const char *text = call->stmt && t->pool->txn_pooling ? stmt_sql(call->stmt) : call->sql;
	int sent = call->stmt && !t->pool->txn_pooling
		? PQsendQueryPrepared(t->conn, call->stmt, call->nparams, call->params, NULL, NULL, 0)
		: text && PQsendQueryParams(t->conn, text, call->nparams, NULL, call->params, NULL, NULL, 0);

	if (!sent || (w = flush_out(t->conn, deadline)) != WAIT_OK ||
	    (w = await_result(t->conn, deadline, &r)) != WAIT_OK) {
		drop_conn(t, job, w == WAIT_LATE);
		return NULL;
	}
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	if (PQresultStatus(r) == PGRES_FATAL_ERROR && state && strcmp(state, "25006") == 0) {
		tk_log(TK_LOG_WARNING, "db.read_only", "detail",
		       "the server refused a statement as read-only: reconnecting to the host that accepts writes",
		       NULL);
		PQclear(r);
		PQfinish(t->conn);
		t->conn = NULL;
		atomic_fetch_sub(&t->pool->connected, 1);
		return NULL;
	}
	return r;
}

/* Make sure t has a connection, trying until `deadline`. 0 or -1. */
static int ensure_conn(dbthread *t, int64_t deadline)
{
	if (t->conn)
		return 0;
	uint64_t seq = atomic_load(&t->pool->up_seq);
	wait_t w = db_open(t->pool, deadline, &t->conn);
	if (w != WAIT_OK) {
		/* Down - unless the attempt only ran out of the job's time (the
		 * database may be fine), or another thread connected since this
		 * attempt began: a slow attempt started before the database came back
		 * must not mark it down again (requests would fail fast while it
		 * answers). */
		if (w == WAIT_FAILED) {
			atomic_store(&t->pool->down, 1);
			if (atomic_load(&t->pool->up_seq) != seq)
				atomic_store(&t->pool->down, 0);
		}
		return -1;
	}
	atomic_fetch_add(&t->pool->up_seq, 1);
	atomic_store(&t->pool->down, 0);
	if (atomic_fetch_add(&t->pool->connected, 1) == 0)
		tk_log(TK_LOG_INFO, "db.connected", NULL);
	return 0;
}

static void do_job(dbthread *t, tk_dbjob *j)
{
	tk_dbcall call;

	j->status = TK_DBJOB_FAILED;
	if (tk_mono_ms() >= j->deadline_ms) {
		tk_log(TK_LOG_WARNING, "db.job_expired", "job", tk_dbjob_kind_name(j->kind), "detail",
		       "waited in the queue past its deadline", NULL);
		return;
	}
	if (tk_dbcall_make(j, &call) != 0)
		return;
	if (j->kind == TK_DBJOB_KEY) {
		atomic_fetch_add_explicit(&t->pool->key_statements, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&t->pool->key_lookups, 1, memory_order_relaxed);
	}
	/* One retry on a fresh connection, within the same deadline: a backend
	 * killed or restarted since our last query costs no request. A write is
	 * never sent twice. */
	for (int attempt = 0; attempt < 2; attempt++) {
		if (ensure_conn(t, j->deadline_ms) != 0)
			break;
		PGresult *r = run_call(t, &call, j->deadline_ms, tk_dbjob_kind_name(j->kind));
		if (r) {
			tk_dbjob_finish(j, r);
			break;
		}
		if (call.no_retry || tk_mono_ms() >= j->deadline_ms)
			break;
	}
	tk_dbcall_release(&call);
}

/*
 * KEY jobs taken together (n >= 2): one statement answers them all, one round
 * trip instead of n. Each job keeps its own deadline: one already past it
 * fails without being sent; the statement waits until the earliest deadline
 * of the rest (the queue is FIFO: the first job's), so that no job is
 * answered later than its own deadline. One retry on a fresh connection, as
 * do_job.
 */
static void do_key_batch(dbthread *t, tk_dbjob **jobs, size_t n)
{
	tk_dbjob *live[TK_DBJOB_KEY_BATCH];
	size_t m = 0;
	int64_t now = tk_mono_ms(), deadline = INT64_MAX;
	tk_dbcall call;

	for (size_t i = 0; i < n; i++) {
		jobs[i]->status = TK_DBJOB_FAILED;
		if (now >= jobs[i]->deadline_ms) {
			tk_log(TK_LOG_WARNING, "db.job_expired", "job", tk_dbjob_kind_name(TK_DBJOB_KEY), "detail",
			       "waited in the queue past its deadline", NULL);
			continue;
		}
		if (jobs[i]->deadline_ms < deadline)
			deadline = jobs[i]->deadline_ms;
		live[m++] = jobs[i];
	}
	if (m == 0 || tk_dbcall_make_keys(live, m, &call) != 0)
		return;
	if (tk_log_enabled(TK_LOG_DEBUG)) {
		char num[24];
		snprintf(num, sizeof(num), "%zu", m);
		tk_log(TK_LOG_DEBUG, "db.key_batch", TK_LOG_NUM "keys", num, NULL);
	}
	atomic_fetch_add_explicit(&t->pool->key_statements, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&t->pool->key_lookups, m, memory_order_relaxed);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (ensure_conn(t, deadline) != 0)
			break;
		PGresult *r = run_call(t, &call, deadline, tk_dbjob_kind_name(TK_DBJOB_KEY));
		if (r) {
			tk_dbjob_finish_keys(live, m, r);
			break;
		}
		if (tk_mono_ms() >= deadline)
			break;
	}
	tk_dbcall_release(&call);
}

/*
 * Hand the n finished jobs of a batch back: one post per mailbox (each
 * worker's loop wakes once for all its answers, not once per job). The
 * mailboxes are read before the first post: a posted job may be freed by its
 * owner at once, so none is touched after its mailbox got it.
 */
static void post_batch(tk_dbjob **jobs, size_t n)
{
	tk_mailbox *box[TK_DBJOB_KEY_BATCH];
	unsigned char done[TK_DBJOB_KEY_BATCH] = { 0 };

	for (size_t i = 0; i < n; i++)
		box[i] = jobs[i]->reply;
	for (size_t i = 0; i < n; i++) {
		if (done[i])
			continue;
		tk_dbjob *last = jobs[i];
		for (size_t k = i + 1; k < n; k++) {
			if (!done[k] && box[k] == box[i]) {
				done[k] = 1;
				last->next = jobs[k];
				last = jobs[k];
			}
		}
		tk_mailbox_post_chain(box[i], jobs[i], last);
	}
}

/* Unlink up to `max` more KEY jobs from the queue (locked), oldest first,
 * looking at most at the first 4 x TK_DBJOB_KEY_BATCH jobs. */
static size_t take_keys(tk_dbpool *p, tk_dbjob **out, size_t max)
{
	size_t n = 0, looked = 0;
	tk_dbjob *prev = NULL;

	for (tk_dbjob *j = p->head; j && n < max && looked < 4 * TK_DBJOB_KEY_BATCH; looked++) {
		tk_dbjob *next = j->next;
		if (j->kind == TK_DBJOB_KEY) {
			if (prev)
				prev->next = next;
			else
				p->head = next;
			if (p->tail == j)
				p->tail = prev;
			p->queued--;
			j->next = NULL;
			out[n++] = j;
		} else {
			prev = j;
		}
		j = next;
	}
	return n;
}

/* May a thread take key lookups now (locked; `now` in monotonic us)? While
 * fewer than key_lanes threads run lookups; past that only to replace a stuck
 * lane (one whose lookups were taken spill_us ago or more), up to key_max
 * threads. */
static int lane_free(const tk_dbpool *p, int64_t now)
{
	int stuck = 0;
	int64_t spill = atomic_load_explicit(&p->spill_us, memory_order_relaxed);

	if (p->key_busy < p->key_lanes)
		return 1;
	if (p->key_busy >= p->key_max)
		return 0;
	for (int i = 0; i < p->nslots; i++)
		if (p->threads[i].key_since && now - p->threads[i].key_since >= spill)
			stuck++;
	return p->key_busy - stuck < p->key_lanes;
}

/* When a running lane will count as stuck (locked; monotonic us): the
 * earliest such moment after `now`, INT64_MAX when none will. An idle thread
 * waits no longer, so that lookups queued behind a lane that hangs are taken
 * spill_us after it began, without a wake-up per lookup. */
static int64_t next_spill(const tk_dbpool *p, int64_t now)
{
	int64_t at = INT64_MAX;
	int64_t spill = atomic_load_explicit(&p->spill_us, memory_order_relaxed);
	const tk_dbjob *j;

	if (p->key_busy < p->key_lanes || p->key_busy >= p->key_max)
		return at;
	for (j = p->head; j && j->kind != TK_DBJOB_KEY; j = j->next)
		;
	if (!j)
		return at;                 /* no lookup waits: nothing to spill */
	for (int i = 0; i < p->nslots; i++) {
		int64_t since = p->threads[i].key_since;
		if (since && since + spill > now && since + spill < at)
			at = since + spill;
	}
	return at;
}

/* A lane took `took` us (locked): the threshold follows (see the top). */
static void lane_timed(tk_dbpool *p, int64_t took)
{
	int64_t spill = atomic_load_explicit(&p->spill_us, memory_order_relaxed);
	int64_t cap = p->timeout_ms * 1000 / 4;

	if (took > spill)
		took = spill;              /* a stuck lane counts as just stuck */
	if (took < 0)
		took = 0;
	p->lane_avg_us += (took - p->lane_avg_us) / 8;
	spill = p->lane_avg_us * KEY_SPILL_FACTOR;
	if (spill > cap)
		spill = cap;
	if (spill < KEY_SPILL_MIN_US)
		spill = KEY_SPILL_MIN_US;
	atomic_store_explicit(&p->spill_us, spill, memory_order_relaxed);
}

/* Wait on the pool's condition (locked) at most `ms` milliseconds. */
static void wait_ms(tk_dbpool *p, int64_t ms)
{
	struct timespec ts = tk_deadline_in(ms);
	pthread_cond_timedwait(&p->cv, &p->mu, &ts);
}

/*
 * The job this thread may take next (locked; *prevp: the job before it), NULL
 * when there is none (take_job unlinks it). Key lookups run on at most
 * key_lanes connections at once: the lookups that arrive while every lane is
 * busy queue up and the next free lane
 * answers them with one statement (up to TK_DBJOB_KEY_BATCH), where four
 * threads each grabbing the one or two just queued would spend a statement,
 * a round trip and a wake-up of the worker on each. A lane is taken at once
 * when free, so a lone lookup waits for nothing; a stuck lane is replaced
 * (lane_free). Other jobs are taken past
 * queued lookups by the threads outside the lanes, however many lookups
 * are queued before them (the whole queue is looked at: at most
 * db_queue_size jobs; a flood of lookups must not hide a revocation or a
 * last-used write behind it). While stopping, anything.
 */
static tk_dbjob *find_job(tk_dbpool *p, tk_dbjob **prevp)
{
	tk_dbjob *prev = NULL;
	int lane = -1;               /* may a lookup be taken now? asked at the first one */

	for (tk_dbjob *j = p->head; j; prev = j, j = j->next) {
		if (j->kind == TK_DBJOB_KEY && !p->stopping && lane < 0)
			lane = lane_free(p, tk_mono_us());
		if (j->kind == TK_DBJOB_KEY && !p->stopping && !lane)
			continue;
		*prevp = prev;
		return j;
	}
	return NULL;
}

/* 1 when this thread has nothing it may take (locked): it is idle, and keeps
 * its connection alive (ping) or reopens it, as with an empty queue. */
static int nothing_to_take(tk_dbpool *p)
{
	tk_dbjob *prev;
	return find_job(p, &prev) == NULL;
}

static tk_dbjob *take_job(tk_dbpool *p)
{
	tk_dbjob *prev = NULL, *j = find_job(p, &prev);

	if (j) {
		if (prev)
			prev->next = j->next;
		else
			p->head = j->next;
		if (p->tail == j)
			p->tail = prev;
		p->queued--;
		j->next = NULL;
	}
	return j;
}

static void *db_thread_main(void *arg)
{
	dbthread *t = arg;
	tk_dbpool *p = t->pool;
	ensure_conn(t, tk_mono_ms() + IDLE_CONNECT_MS);   /* at once, off the caller's thread */
	for (;;) {
		tk_dbjob *j;
		pthread_mutex_lock(&p->mu);
		/* Idle: the queue is empty, or holds only lookups while every lane
		 * is busy (a lane that frees signals; one that hangs is replaced
		 * when next_spill comes). */
		while (!(j = take_job(p)) && !p->stopping) {
			int64_t now = tk_mono_ms(), spill = next_spill(p, tk_mono_us());
			int armed = spill != INT64_MAX;   /* counted in spill_waiters while it waits */
			if (armed)
				spill = (spill + 999) / 1000;   /* in ms, rounded up: never before it */
			if (!t->conn) {
				/* Reconnect in the background while idle, every 250 ms
				 * (counted from the last attempt: wake-ups do not delay it). */
				int64_t until = t->idle_since + 250;
				if (until > now) {
					p->spill_waiters += armed;
					wait_ms(p, (spill < until ? spill : until) - now);
					p->spill_waiters -= armed;
				}
				if (tk_mono_ms() >= until && nothing_to_take(p) && !p->stopping) {
					pthread_mutex_unlock(&p->mu);
					ensure_conn(t, tk_mono_ms() + IDLE_CONNECT_MS);
					t->idle_since = tk_mono_ms();
					pthread_mutex_lock(&p->mu);
				}
			} else {
				/* Idle with a connection: check it every 2 s, so that an
				 * outage shows (readyz) before a request meets it. */
				int64_t until = t->idle_since + IDLE_PING_MS;
				if (until > now) {
					p->spill_waiters += armed;
					wait_ms(p, (spill < until ? spill : until) - now);
					p->spill_waiters -= armed;
				}
				if (tk_mono_ms() >= until && nothing_to_take(p) && !p->stopping) {
					pthread_mutex_unlock(&p->mu);
					tk_dbcall ping = { .stmt = TK_DBSTMT_PING };
					PGresult *r = run_call(t, &ping, tk_mono_ms() + p->timeout_ms, "ping");
					PQclear(r);
					t->idle_since = tk_mono_ms();
					pthread_mutex_lock(&p->mu);
				}
			}
		}
		if (!j) {                 /* stopping, and nothing left */
			pthread_mutex_unlock(&p->mu);
			break;
		}
		/* Key lookups waiting behind this one go with it (batching appears
		 * only when lookups queue up: no job waits for a batch to fill). */
		tk_dbjob *batch[TK_DBJOB_KEY_BATCH];
		size_t nb = 0;
		int lane = j->kind == TK_DBJOB_KEY && !p->stopping;
		if (lane) {
			if (p->key_busy >= p->key_lanes)   /* taken past a stuck lane */
				atomic_fetch_add_explicit(&p->key_spills, 1, memory_order_relaxed);
			p->key_busy++;
			t->key_since = tk_mono_us();
			batch[nb++] = j;
			nb += take_keys(p, batch + 1, TK_DBJOB_KEY_BATCH - 1);
		}
		pthread_mutex_unlock(&p->mu);
		if (nb > 1) {
			do_key_batch(t, batch, nb);
			post_batch(batch, nb);
		} else {
			if (p->stopping && j->kind != TK_DBJOB_LAST_USED) {
				j->status = TK_DBJOB_FAILED;   /* fail fast; but last-used marks are written */
			} else {
				if (p->stopping)           /* the last marks get a full deadline */
					j->deadline_ms = tk_mono_ms() + p->timeout_ms;
				do_job(t, j);
			}
			tk_mailbox_post(j->reply, j);
		}
		t->idle_since = tk_mono_ms();
		if (lane) {
			/* The lane is free: lookups queued meanwhile go now, on this
			 * thread (it takes the queue's first job it may take, at once:
			 * waking an idle thread for them cost a wake-up per batch that
			 * mostly found nothing left). Another thread is woken only when
			 * this one will take a job of another kind first. */
			int64_t done = tk_mono_us();
			pthread_mutex_lock(&p->mu);
			p->key_busy--;
			lane_timed(p, done - t->key_since);
			t->key_since = 0;
			if (p->head && p->head->kind != TK_DBJOB_KEY)
				pthread_cond_signal(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
	if (t->conn) {
		PQfinish(t->conn);
		t->conn = NULL;
		atomic_fetch_sub(&p->connected, 1);
	}
	return NULL;
}

tk_dbpool *tk_dbpool_start(const char *url, int threads, int64_t timeout_ms, size_t max_queue,
                           int txn_pooling)
{
	tk_dbpool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->url = strdup(url);
	p->threads = calloc((size_t)threads, sizeof(dbthread));
	if (!p->url || !p->threads || threads <= 0) {
		free(p->url);
		free(p->threads);
		free(p);
		return NULL;
	}
	p->timeout_ms = timeout_ms;
	p->max_queue = max_queue;
	p->txn_pooling = txn_pooling;
	p->key_lanes = (threads + 3) / 4;   /* a quarter of the pool (at least one): the rest keeps other jobs moving */
	p->nslots = threads;
	p->key_max = threads - 1 > p->key_lanes ? threads - 1 : p->key_lanes;   /* one stays out */
	atomic_store(&p->spill_us, KEY_SPILL_MIN_US);
	pthread_mutex_init(&p->mu, NULL);
	if (tk_cond_init_mono(&p->cv) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p->url);
		free(p->threads);
		free(p);
		return NULL;
	}
	for (int i = 0; i < threads; i++) {
		p->threads[i].pool = p;
		p->threads[i].index = i;
		p->threads[i].idle_since = tk_mono_ms();
		int rc = pthread_create(&p->threads[i].thread, NULL, db_thread_main, &p->threads[i]);
		if (rc != 0) {
			/* Stop the ones that started; nobody is left to take jobs. */
			tk_log(TK_LOG_ERROR, "db.thread_failed", "detail", strerror(rc), NULL);
			p->nthreads = i;
			tk_dbpool_free(p);
			return NULL;
		}
		p->nthreads = i + 1;
		tk_thread_name(p->threads[i].thread, "tokend-db", i);
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
	job->deadline_ms = tk_mono_ms() + p->timeout_ms;
	job->next = NULL;
	if (p->tail)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	p->queued++;
	/* A lookup while every lane is busy wakes nobody: the lane that frees
	 * takes it (a thread woken for it could not), or an idle thread once a
	 * lane is stuck (next_spill; at once when one already is). But when no
	 * idle thread waits for that moment (all went to sleep before the lane
	 * began), one is woken to set its wait by it: else the lookup could
	 * wait for a ping (2 s), past db_timeout, behind a lane that hangs. */
	if (job->kind != TK_DBJOB_KEY || lane_free(p, tk_mono_us()) ||
	    (p->key_busy < p->key_max && p->spill_waiters == 0))
		pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int tk_dbpool_connected(tk_dbpool *p)
{
	return atomic_load(&p->connected);
}

void tk_dbpool_key_stats(tk_dbpool *p, tk_dbkeystats *out)
{
	out->statements = atomic_load_explicit(&p->key_statements, memory_order_relaxed);
	out->lookups = atomic_load_explicit(&p->key_lookups, memory_order_relaxed);
	out->spills = atomic_load_explicit(&p->key_spills, memory_order_relaxed);
	out->spill_us = atomic_load_explicit(&p->spill_us, memory_order_relaxed);
}
