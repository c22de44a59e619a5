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

/*
 * The servers libpq tried, each with its reason, from its error message
 * (one "connection to server at "H" (A), port P failed: REASON" or
 * "connection to server on socket "S" failed: REASON" line per attempt):
 * "H:P: REASON; H2:P2: REASON" in out. Returns how many distinct servers
 * (H:P or socket) were named: a multi-host URL has each of its hosts'
 * reasons, not only the last one's.
 */
static int tried_servers(const char *msg, char *out, size_t outlen)
{
	char seen[8][224];
	int nseen = 0;
	size_t n = 0;

	out[0] = '\0';
	for (const char *line = msg; line && *line;) {
		const char *eol = strchr(line, '\n');
		size_t len = eol ? (size_t)(eol - line) : strlen(line);
		const char *failed = NULL;
		if (len > 21 && strncmp(line, "connection to server ", 21) == 0)
			for (const char *q = line; q + 9 <= line + len; q++)
				if (strncmp(q, " failed: ", 9) == 0) {
					failed = q;
					break;
				}
		if (failed) {
			char where[224];
			const char *w = line + 21, *h = NULL, *hend = NULL, *port = NULL;
			if (strncmp(w, "at \"", 4) == 0 || strncmp(w, "on socket \"", 11) == 0) {
				h = strchr(w, '"') + 1;
				hend = memchr(h, '"', (size_t)(failed - h));
			}
			for (const char *q = hend ? hend : w; q && q + 7 <= failed; q++)
				if (strncmp(q, ", port ", 7) == 0) {
					port = q + 7;
					break;
				}
			if (h && hend && w[0] == 'o')
				snprintf(where, sizeof(where), "socket %.*s", (int)(hend - h), h);
			else if (h && hend && port)
				snprintf(where, sizeof(where), "%.*s:%.*s", (int)(hend - h), h, (int)(failed - port), port);
			else
				snprintf(where, sizeof(where), "%.*s", (int)(failed - w), w);
			int dup = 0;
			for (int i = 0; i < nseen; i++)
				dup |= strcmp(seen[i], where) == 0;
			if (!dup && nseen < 8) {
				snprintf(seen[nseen++], sizeof(seen[0]), "%s", where);
				const char *why = failed + 9;
				int wl = (int)(line + len - why);
				int k = snprintf(out + n, outlen - n, "%s%s: %.*s", n ? "; " : "", where, wl, why);
				if (k > 0)
					n = (size_t)k < outlen - n ? n + (size_t)k : outlen - 1;
			}
		}
		line = eol ? eol + 1 : NULL;
	}
	return nseen;
}

void tk_db_connect_error(PGconn *c, char *err, size_t errlen)
{
	char line[512], all[768];
	const char *msg = c ? PQerrorMessage(c) : "out of memory";
	if (tried_servers(msg, all, sizeof(all)) > 1) {
		snprintf(err, errlen, "cannot connect to the database at any of its hosts: %s", all);
		return;
	}
	one_line(line, sizeof(line), msg);
	/* Where it tried (libpq's host and port, never the password): the
	 * reason alone ("Connection refused") does not say which server. */
	const char *host = c ? PQhost(c) : NULL, *port = c ? PQport(c) : NULL;
	if (!host || !*host)
		host = "localhost (the default socket)";
	if (!port || !*port)
		port = "5432";
	if (host[0] == '/')
		snprintf(err, errlen, "cannot connect to the database at socket %.200s, port %.20s: %s",
		         host, port, line);
	else
		snprintf(err, errlen, "cannot connect to the database at %.200s:%.20s: %s", host, port, line);
}

PGconn *tk_db_connect(const char *url, const char *appname, char *err, size_t errlen)
{
	/* Key state and writes need the primary: with several hosts, the one that
	 * accepts writes (the URL may say otherwise: it is read last). */
	const char *keys[] = { "connect_timeout", "application_name", "target_session_attrs", "dbname", NULL };
	const char *vals[] = { "10", appname, "read-write", url, NULL };   /* a command can wait; a loaded host needs it */
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
		tk_db_connect_error(c, err, errlen);
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
