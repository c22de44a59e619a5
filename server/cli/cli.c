/*
 * cli.c - shared machinery of the operator command line.
 */
#include "input.h"
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pwd.h>

#include "db.h"
#include "migrate.h"
#include "peppercheck.h"

tk_cli cli;

static void cli_cleanup(void)
{
	if (cli.db) {
		PQfinish(cli.db);
		cli.db = NULL;
	}
	if (cli.cfg_loaded) {
		tk_config_free(&cli.cfg);
		cli.cfg_loaded = 0;
	}
}

void cli_fail(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("tokend: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cli_cleanup();
	exit(code);
}

tk_config *cli_config(void)
{
	if (!cli.cfg_loaded) {
		char err[1024];
		if (tk_config_load(&cli.cfg, cli.config_path, err, sizeof(err)) != 0)
			cli_fail(CLI_REFUSED, "%s", err);
		cli.cfg_loaded = 1;
	}
	return &cli.cfg;
}

PGconn *cli_db(void)
{
	if (cli.db)
		return cli.db;
	tk_config *cfg = cli_config();
	char err[1024];
	cli.db = tk_db_connect(cfg->database_url, "tokend-cli", err, sizeof(err));
	if (!cli.db)
		cli_fail(CLI_REFUSED, "%s", err);

	/* Who acts, for the audit log: the OS user and host. */
	char actor[300], host[128] = "";
	struct passwd *pw = getpwuid(getuid());
	gethostname(host, sizeof(host) - 1);
	snprintf(actor, sizeof(actor), "cli:%s@%s", pw ? pw->pw_name : "?", host);
	/* The deletion guard's window widens by the precision of last-used
	 * times (sql/015). */
	char precision[24];
	snprintf(precision, sizeof(precision), "%lld", (long long)cfg->last_used_precision);
	const char *p[] = { actor, precision };
	PGresult *r = tk_db_exec(cli.db, "SELECT set_config('tokend.actor', $1, false),"
	                                 " set_config('tokend.last_used_precision', $2, false)", 2, p);
	PQclear(r);

	int cur = tk_migrate_current(cli.db);
	if (cur < 0)
		cli_fail(CLI_REFUSED, "cannot read the schema version: %s", tk_db_error(cli.db, NULL));
	if (cur < tk_migrate_latest())
		cli_fail(CLI_REFUSED, "the database schema is at version %d, this tokend needs %d: run `tokend migrate`",
		         cur < 0 ? 0 : cur, tk_migrate_latest());
	return cli.db;
}

PGresult *cli_exec(const char *sql, int nparams, const char *const *params)
{
	PGconn *c = cli_db();
	PGresult *r = tk_db_exec(c, sql, nparams, params);
	if (!tk_db_ok(r)) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", tk_db_error(c, r));
		PQclear(r);
		cli_fail(CLI_REFUSED, "%s", msg);
	}
	return r;
}

void cli_print_json(json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(v);
}

json_t *cli_col_str(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return json_null();
	return json_string(PQgetvalue(r, row, col));
}

json_t *cli_col_int(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return json_null();
	return json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

json_t *cli_one_json(PGresult *r, const char *none)
{
	json_t *o = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	if (!o)
		cli_fail(CLI_REFUSED, "%s", none);
	return o;
}

json_t *cli_col_json(const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		return json_null();
	json_t *v = json_loads(PQgetvalue(r, row, col), JSON_DECODE_ANY, NULL);
	return v ? v : json_null();
}

const char *cli_check_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return "must not be empty";
	if (n > 100)
		return "must be at most 100 bytes";
	/* Valid UTF-8 without control, bidi or invisible characters: the same
	 * rule as the admin API and the database. */
	return tk_input_text_unsafe(s, n);
}

int cli_parse_rate_limit(const char *s)
{
	if (strcmp(s, "none") == 0)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < 1 || v > 1000000 || !(*s >= '0' && *s <= '9'))
		cli_fail(CLI_USAGE, "rate limit '%.40s': a whole number of tokens per minute, 1-1000000, "
		         "or none", s);
	return (int)v;
}

int cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
			return 1;
	}
	return 0;
}

void cli_check_pepper(PGconn *c, const unsigned char *pepper, size_t len)
{
	unsigned char value[TK_HASH_LEN];
	char err[600];
	if (tk_pepper_check_value(pepper, len, value) != 0)
		cli_fail(CLI_REFUSED, "cannot compute the pepper's check value");
	tk_pepper_result res = tk_pepper_check(c, value, err, sizeof(err));
	if (res == TK_PEPPER_MISMATCH || res == TK_PEPPER_ERROR)
		cli_fail(CLI_REFUSED, "%s", err);
}

int cli_migrate(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("usage: tokend migrate [--json]\n\n"
		       "Apply the SQL migrations embedded in this binary to the configured database,\n"
		       "connected as migrate_database_url (the schema owner; default: database_url),\n"
		       "then grant the application role tokend_app what tokend serve needs.\n"
		       "Idempotent: migrations already applied are skipped. Concurrent runs serialise\n"
		       "on an advisory lock; each migration runs in one transaction.\n");
		return CLI_OK;
	}
	if (argc > 1)
		cli_fail(CLI_USAGE, "migrate: unexpected argument '%s' (see tokend migrate --help)", argv[1]);
	tk_config *cfg = cli_config();
	char err[1024];
	/* The schema owner's connection when configured, else the one of serve. */
	const char *url = *cfg->migrate_database_url ? cfg->migrate_database_url : cfg->database_url;
	cli.db = tk_db_connect(url, "tokend-migrate", err, sizeof(err));
	if (!cli.db)
		cli_fail(CLI_REFUSED, "%s", err);
	json_t *applied = json_array();
	int current = 0;
	if (tk_migrate(cli.db, applied, &current, err, sizeof(err)) != 0) {
		json_decref(applied);
		cli_fail(CLI_REFUSED, "%s", err);
	}
	/* With a pepper configured, its check value is stored now (or compared
	 * with the stored one); without, the first `tokend serve` stores it. */
	if ((cfg->pepper && *cfg->pepper) || (cfg->pepper_file && *cfg->pepper_file)) {
		unsigned char pepper[TK_PEPPER_MAX];
		size_t pepper_len = 0;
		if (tk_config_pepper(cfg, pepper, &pepper_len, err, sizeof(err)) != 0) {
			json_decref(applied);
			cli_fail(CLI_REFUSED, "migrations applied (schema version %d), but the pepper: %s", current, err);
		}
		unsigned char value[TK_HASH_LEN];
		int vrc = tk_pepper_check_value(pepper, pepper_len, value);
		tk_wipe(pepper, sizeof(pepper));
		tk_pepper_result res = vrc == 0 ? tk_pepper_check(cli.db, value, err, sizeof(err)) : TK_PEPPER_ERROR;
		if (vrc != 0)
			snprintf(err, sizeof(err), "cannot compute its check value");
		if (res == TK_PEPPER_MISMATCH || res == TK_PEPPER_ERROR) {
			json_decref(applied);
			cli_fail(CLI_REFUSED, "migrations applied (schema version %d), but: %s", current, err);
		}
	}
	if (cli.json) {
		json_t *o = json_object();
		json_object_set_new(o, "applied", applied);
		json_object_set_new(o, "current", json_integer(current));
		cli_print_json(o);
	} else {
		size_t i;
		json_t *v;
		if (json_array_size(applied) == 0)
			printf("Database is up to date (schema version %d); nothing to apply.\n", current);
		json_array_foreach(applied, i, v)
			printf("Applied %s\n", json_string_value(v));
		if (json_array_size(applied))
			printf("Database is at schema version %d.\n", current);
		json_decref(applied);
	}
	return CLI_OK;
}
