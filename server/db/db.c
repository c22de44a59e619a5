/*
 * db.c - blocking libpq helpers.
 */
#include "db.h"

#include <stdio.h>
#include <string.h>

static void one_line(char *dst, size_t dstlen, const char *src)
{
	size_t n = 0;
	if (!src)
		src = "";
	/* libpq prefixes connection errors with the host it tried; keep the reason. */
	const char *failed = strstr(src, " failed: ");
	if (failed && strncmp(src, "connection to server", 20) == 0)
		src = failed + 9;
	while (src[n] && src[n] != '\n' && n + 1 < dstlen) {
		dst[n] = src[n];
		n++;
	}
	dst[n] = '\0';
}

PGconn *tk_db_connect(const char *url, const char *appname, char *err, size_t errlen)
{
	const char *keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *vals[] = { "10", appname, url, NULL };   /* a command can wait; a loaded host needs it */
	if (!url || !*url) {
		snprintf(err, errlen, "no database configured: set database_url (or TOKEND_DATABASE_URL)");
		return NULL;
	}
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		snprintf(err, errlen, "cannot connect to the database: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		char line[512];
		one_line(line, sizeof(line), PQerrorMessage(c));
		/* Where it tried (libpq's host and port, never the password): the
		 * reason alone ("Connection refused") does not say which server. */
		const char *host = PQhost(c), *port = PQport(c);
		if (!host || !*host)
			host = "localhost (the default socket)";
		if (!port || !*port)
			port = "5432";
		if (host[0] == '/')
			snprintf(err, errlen, "cannot connect to the database at socket %.200s, port %.20s: %s",
			         host, port, line);
		else
			snprintf(err, errlen, "cannot connect to the database at %.200s:%.20s: %s", host, port, line);
		PQfinish(c);
		return NULL;
	}
	PGresult *r = PQexec(c, "SET client_min_messages = warning");
	PQclear(r);
	return c;
}

PGresult *tk_db_exec(PGconn *c, const char *sql, int nparams, const char *const *params)
{
	PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (!r)
		r = PQmakeEmptyPGresult(c, PGRES_FATAL_ERROR);
	return r;
}

int tk_db_ok(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

const char *tk_db_error(PGconn *c, const PGresult *r)
{
	static _Thread_local char buf[512];
	const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (!m || !*m)
		m = c ? PQerrorMessage(c) : "unknown database error";
	one_line(buf, sizeof(buf), m);
	if (!buf[0])
		snprintf(buf, sizeof(buf), "unknown database error");
	return buf;
}

const char *tk_db_hint(const PGresult *r)
{
	const char *h = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_HINT) : NULL;
	return h ? h : "";
}

const char *tk_db_sqlstate(const PGresult *r)
{
	const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return s ? s : "";
}
