/*
 * dbpool.h - PostgreSQL access for the event loops.
 *
 * A few database threads, each with its own connection, take jobs from one
 * bounded queue, so that no event loop ever waits on the network. A finished
 * job is posted to the submitting worker's mailbox (an eventfd the worker's
 * loop watches) and its `done` callback runs on that worker's thread.
 *
 * Every query has a deadline (db_timeout): past it the connection is dropped
 * (PQcancel blocks on libpq 15) and reopened. A thread whose connection is
 * down retries every 250 ms; while no connection is up, submissions fail at
 * once so requests get a fast 503.
 *
 * Key lookups (KEY jobs) use at most a quarter of the threads at once (at
 * least one): lookups queued meanwhile go out in one statement, and the other
 * threads keep the other jobs moving while lookups wait on a slow database.
 * A lane stuck for a few ms (a hung connection) is replaced by another thread
 * for the lookups queued behind it, one thread always staying out of them.
 */
#ifndef TOKEND_DBPOOL_H
#define TOKEND_DBPOOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <event2/event.h>

#include "keycache.h"
#include "mailbox.h"

/* Is key $1 usable now (exists, enabled, not revoked or deleted, account
 * enabled, not expired), and is jti $2 revoked? One row of two booleans. */
#define TK_SQL_TOKEN_STATE \
	"SELECT coalesce((SELECT k.disabled_at IS NULL AND k.revoked_at IS NULL AND k.deleted_at IS NULL" \
	"  AND a.disabled_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > now())" \
	"  FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.id = $1), false)," \
	" EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2)"

/* The most parameters a QUERY job takes. */
#define TK_DBJOB_MAX_PARAMS 24

typedef struct tk_dbjob tk_dbjob;

/* Called on the mailbox owner's thread when the job is finished. */
typedef void (*tk_dbjob_cb)(tk_dbjob *job);

typedef enum tk_dbjob_kind {
	TK_DBJOB_KEY,        /* load one key by ID (queued ones go together: dbpool.c) */
	TK_DBJOB_LAST_USED,  /* write a batch of last-used times */
	TK_DBJOB_SCOPES,     /* read the scope catalogue */
	TK_DBJOB_TOKEN_STATE,/* is key_id usable now, and is jti revoked? (introspection) */
	TK_DBJOB_REVOKE,     /* remember jti as revoked until exp */
	TK_DBJOB_PURGE,      /* forget revoked tokens that have expired */
	TK_DBJOB_QUERY,      /* any statement: sql + text params -> result */
} tk_dbjob_kind;

/* Outcome of a job. */
typedef enum tk_dbjob_status {
	TK_DBJOB_OK = 0,     /* done (a KEY job may have found nothing: key->found == 0) */
	TK_DBJOB_FAILED,     /* the database could not answer in time */
} tk_dbjob_status;

struct tk_dbjob {
	tk_dbjob_kind kind;
	tk_dbjob_status status;
	tk_dbjob_cb done;
	tk_mailbox *reply;
	void *arg;
	tk_dbjob *next;
	int64_t deadline_ms;   /* set by tk_dbpool_submit: monotonic ms; past it the job fails */
	/* TK_DBJOB_KEY */
	char key_id[TK_KEY_ID_MAX + 1];
	tk_apikey *key;           /* result, one reference, owned by the job's owner */
	/* TK_DBJOB_LAST_USED: parallel arrays owned by the job's owner */
	size_t n;
	char (*ids)[TK_KEY_ID_MAX + 1];
	int64_t *times;
	/* TK_DBJOB_SCOPES: malloc'd space-separated names, owned by the job's owner */
	char *text;
	/* TK_DBJOB_TOKEN_STATE and TK_DBJOB_REVOKE (key_id above) */
	char jti[72];
	char account[64];
	int64_t exp;
	char actor[96];
	int key_active;        /* result: the key exists and may be used now */
	int jti_revoked;       /* result: the jti is in revoked_tokens */
	/* TK_DBJOB_QUERY: a static statement, params owned by the job's owner; the
	 * result (tuples or an error result) is owned by the owner (PQclear). A
	 * statement that changes data sets no_retry: it is never sent twice. */
	const char *sql;
	int nparams;
	const char *params[TK_DBJOB_MAX_PARAMS];
	int no_retry;
	struct pg_result *result;
};

typedef struct tk_dbpool tk_dbpool;

/* Start `threads` database threads. txn_pooling: `url` is a transaction
 * pooler (PgBouncer pool_mode = transaction): every statement is sent with
 * its text, no named prepared statement, no session setting (set
 * statement_timeout on the role). NULL on failure. */
tk_dbpool *tk_dbpool_start(const char *url, int threads, int64_t timeout_ms, size_t max_queue,
                           int txn_pooling);
/* Stop the threads: queued last-used batches are still written, every other
 * queued job fails; later submissions fail. The pool stays allocated. */
void tk_dbpool_stop(tk_dbpool *p);
/* Stop (if needed) and free. */
void tk_dbpool_free(tk_dbpool *p);

/* Queue a job, its deadline starting now (submit + timeout): 0, or -1 (queue
 * full, or the database is down): the caller answers 503. */
int tk_dbpool_submit(tk_dbpool *p, tk_dbjob *job);

/* Number of connections currently up. */
int tk_dbpool_connected(tk_dbpool *p);

/* Key lookups so far: statements sent for KEY jobs (a retry counts once),
 * the KEY jobs they carried (lookups / statements: the batches' mean size),
 * the times lookups were taken past a stuck lane (spills), and the spill
 * threshold now (us; see dbpool.c). */
typedef struct tk_dbkeystats {
	uint64_t statements, lookups, spills;
	int64_t spill_us;
} tk_dbkeystats;
void tk_dbpool_key_stats(tk_dbpool *p, tk_dbkeystats *out);

#endif
