/*
 * cli.h - shared machinery of the operator command line: options, config,
 * database connection, output and exit codes.
 *
 * Exit status: 0 done; 1 refused (a one-line reason on stderr); 2 usage error.
 */
#ifndef TOKEND_CLI_H
#define TOKEND_CLI_H

#include <jansson.h>
#include <libpq-fe.h>

#include "config.h"

#define CLI_OK      0
#define CLI_REFUSED 1
#define CLI_USAGE   2

typedef struct tk_cli {
	const char *config_path;  /* --config, or NULL */
	int json;                 /* --json */
	tk_config cfg;
	int cfg_loaded;
	PGconn *db;
} tk_cli;

/* The one command-line context of this process. */
extern tk_cli cli;

/* Print "tokend: <reason>" to stderr, release everything, and exit with `code`. */
_Noreturn void cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Load the configuration once (exits 1 on error). */
tk_config *cli_config(void);

/* Connect once and set tokend.actor for the session (exits 1 on error). */
PGconn *cli_db(void);

/* Compare the pepper's check value with the one stored in the database
 * through `c`, storing it when none is (peppercheck.h). Exits 1 with the
 * reason on a mismatch or when the check cannot run. */
void cli_check_pepper(PGconn *c, const unsigned char *pepper, size_t len);

/* Run a statement; on error exits 1 with the database's message. Caller PQclear()s. */
PGresult *cli_exec(const char *sql, int nparams, const char *const *params);
/* One JSON value from a one-row, one-column answer (`r` is cleared); exits 1
 * with `none` when there is none. */
json_t *cli_one_json(PGresult *r, const char *none);

/* Print a JSON value (takes ownership) on stdout, indented. */
void cli_print_json(json_t *v);

/* A column as a JSON value: NULL -> null, else string; cli_col_json parses JSON text. */
json_t *cli_col_str(const PGresult *r, int row, int col);
json_t *cli_col_int(const PGresult *r, int row, int col);
json_t *cli_col_json(const PGresult *r, int row, int col);

/* Validate a display name: 1..100 bytes, no control characters, valid UTF-8.
 * Returns NULL if fine, else a reason. */
const char *cli_check_name(const char *s);

/* Subcommand entry points: argc/argv start at the subcommand's verb. */
int cli_account(int argc, char **argv);
int cli_scope(int argc, char **argv);
int cli_role(int argc, char **argv);     /* cli_role.c: the role catalogue */
int cli_member(int argc, char **argv);   /* cli_member.c: an account's members */
/* `tokend key ...` (cli_key.c: parsing, then the local or remote backend). */
int cli_key(int argc, char **argv);
int cli_migrate(int argc, char **argv);
/* `tokend signing-key ...` (cli_signkey.c): keys held in PostgreSQL. */
int cli_signkey(int argc, char **argv);
/* `tokend verify`: check a token against a JWKS (no config or database needed). */
int cli_verify(int argc, char **argv);

/* 1 if argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

/* A rate limit argument: tokens per minute (1-1000000), or "none" -> 0.
 * Exits with a usage error on anything else. */
int cli_parse_rate_limit(const char *s);

#endif
