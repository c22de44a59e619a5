/*
 * db.h - blocking libpq helpers for the command line and for startup work
 * (never used on an event loop).
 */
#ifndef TOKEND_DB_H
#define TOKEND_DB_H

#include <stddef.h>
#include <libpq-fe.h>

/*
 * Connect to `url` with a 10 s connect timeout and target_session_attrs =
 * read-write (the URL may override both) and the given application_name.
 * Returns NULL with a one-line reason in err (tk_db_connect_error).
 */
PGconn *tk_db_connect(const char *url, const char *appname, char *err, size_t errlen);

/*
 * Why the connection `c` (not OK; NULL: out of memory) failed, on one line:
 * "cannot connect to the database at HOST:PORT: reason", or with several
 * hosts (a multi-host URL) "... at any of its hosts: H1:P1: reason; H2:P2:
 * reason". Never the password.
 */
void tk_db_connect_error(PGconn *c, char *err, size_t errlen);

/* Execute with text parameters. Never NULL (an out-of-memory result is an error result). */
PGresult *tk_db_exec(PGconn *c, const char *sql, int nparams, const char *const *params);

/* 1 if the result is PGRES_COMMAND_OK or PGRES_TUPLES_OK. */
int tk_db_ok(const PGresult *r);

/* The primary error message of a result, or of the connection, on one line
 * (in a static per-thread buffer). */
const char *tk_db_error(PGconn *c, const PGresult *r);

/* The HINT field of an error result ("" if none). */
const char *tk_db_hint(const PGresult *r);

/* The SQLSTATE of an error result ("" if none). */
const char *tk_db_sqlstate(const PGresult *r);

#endif
