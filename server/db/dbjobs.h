/*
 * dbjobs.h - what each kind of database job sends and how its answer is
 * read. The pool (dbpool.c) knows connections, the queue and deadlines and
 * nothing of the statements; this module knows the statements and nothing
 * of connections.
 */
#ifndef TOKEND_DBJOBS_H
#define TOKEND_DBJOBS_H

#include <libpq-fe.h>

#include "dbpool.h"

/* A statement every pool connection prepares once. */
typedef struct tk_dbstmt {
	const char *name;
	int nparams;
	const char *sql;
} tk_dbstmt;

extern const tk_dbstmt tk_dbstatements[];
extern const size_t tk_dbstatements_count;

/* The name of a cheap prepared statement, for checking an idle connection. */
#define TK_DBSTMT_PING "scopes"

/* What to send for one job: a prepared statement or a text with parameters. */
typedef struct tk_dbcall {
	const char *stmt;          /* a prepared statement's name, or NULL */
	const char *sql;           /* else the statement's text */
	int nparams;
	const char *params[TK_DBJOB_MAX_PARAMS];
	char *owned[2];            /* buffers built for params, freed by release */
	char num[24];              /* a number parameter's text */
	int no_retry;              /* a write that must never be sent twice */
} tk_dbcall;

/* Fill `call` for `job`. 0, or -1 (out of memory: the job fails). */
int tk_dbcall_make(const tk_dbjob *job, tk_dbcall *call);
void tk_dbcall_release(tk_dbcall *call);

/* The most KEY jobs answered by one statement. */
#define TK_DBJOB_KEY_BATCH 64

/* Fill `call` with one statement that looks up the keys of `n` (1 to
 * TK_DBJOB_KEY_BATCH) KEY jobs. 0, or -1 (out of memory, or an ID that is not
 * a key ID's characters: the jobs fail). */
int tk_dbcall_make_keys(tk_dbjob *const *jobs, size_t n, tk_dbcall *call);

/* Answer each of the `n` KEY jobs from the batch result `r` (not NULL; taken):
 * its key's row, or a negative record when there is none; every job fails
 * when the statement failed. Jobs with the same ID share one record. */
void tk_dbjob_finish_keys(tk_dbjob *const *jobs, size_t n, PGresult *r);

/* Read the answer `r` (not NULL) into `job` and set job->status. Takes `r`:
 * a QUERY job keeps it in job->result, the others clear it. */
void tk_dbjob_finish(tk_dbjob *job, PGresult *r);

/* The job's kind as the log names it ("key", "last_used", "scopes", ...). */
const char *tk_dbjob_kind_name(tk_dbjob_kind kind);

#endif
