/*
 * cli_signkey.c - `tokend signing-key generate|list|retire|rewrap`: the
 * signing keys held in PostgreSQL (signing_key_source = database;
 * db/signkeys.h, sql/011_signing_keys.sql). Local only (the database role of
 * database_url); key material is never printed: list shows kid, algorithm,
 * state and times.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/crypto.h>

#include "cli.h"
#include "db.h"
#include "signkeys.h"

static const char signkey_usage[] =
	"usage: tokend signing-key COMMAND [OPTIONS]\n"
	"\n"
	"The signing keys kept in PostgreSQL (signing_key_source = database), their\n"
	"private keys encrypted with AES-256-GCM under the key-encryption key\n"
	"(signing_key_encryption_key_file or $TOKEND_SIGNING_KEY_ENCRYPTION_KEY).\n"
	"\n"
	"Commands:\n"
	"  generate [--alg ES256|EdDSA|RS256]\n"
	"                      Generate a key (default: signing_key_alg). In an empty table it\n"
	"                      signs at once; otherwise it is the next key: published now, it\n"
	"                      signs after jwks_max_age + signing_key_margin, and the current\n"
	"                      key then stops signing and leaves the JWKS once its last token\n"
	"                      has expired (token_lifetime_max + signing_key_margin later).\n"
	"  list                Every key: kid, algorithm, state (next, active, retiring,\n"
	"                      retired) and its times. Never any key material.\n"
	"  retire KID [--now]  Withdraw the next key (it never signed), or with --now remove a\n"
	"                      retiring key from the JWKS at once (its unexpired tokens stop\n"
	"                      verifying: for a compromised key). The key that signs is\n"
	"                      replaced by generating the next one, never retired by hand.\n"
	"  rewrap --new-key-file FILE\n"
	"                      Encrypt every unretired key under the key-encryption key in FILE\n"
	"                      (in one transaction), then restart the instances with it.\n"
	"\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n";

/* The configured KEK; exits 1 without one. */
static void kek_of(const tk_config *cfg, unsigned char kek[TK_KEK_LEN])
{
	char err[1024];
	if (tk_config_kek(cfg, kek, err, sizeof(err)) != 0)
		cli_fail(CLI_REFUSED, "%s", err);
}

/* Refuse a KEK other than the one the database's keys are under. */
static void check_kek(PGconn *c, const unsigned char kek[TK_KEK_LEN])
{
	char id[TK_KEK_ID_LEN + 1];
	tk_signkeys_kek_id(kek, id);
	const char *p[] = { id };
	PGresult *r = tk_db_exec(c, "SELECT kek_id FROM signing_keys WHERE retired_at IS NULL AND kek_id <> $1 LIMIT 1",
	                         1, p);
	if (!tk_db_ok(r))
		cli_fail(CLI_REFUSED, "%s", tk_db_error(c, r));
	if (PQntuples(r) > 0) {
		char other[TK_KEK_ID_LEN + 1];
		snprintf(other, sizeof(other), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
		cli_fail(CLI_REFUSED, "the database's signing keys are encrypted under another key-encryption key "
		         "(id %s; the configured one has id %s)", other, id);
	}
	PQclear(r);
}

static void print_key(json_t *k)
{
	if (cli.json) {
		cli_print_json(k);
		return;
	}
	printf("kid:           %s\n", json_string_value(json_object_get(k, "kid")));
	printf("alg:           %s\n", json_string_value(json_object_get(k, "alg")));
	printf("state:         %s\n", json_string_value(json_object_get(k, "state")));
	const char *const times[] = { "publish_at", "sign_from", "signing_until", "retire_after", "retired_at" };
	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		const char *v = json_string_value(json_object_get(k, times[i]));
		printf("%-14s %s\n", times[i], v ? v : "-");
	}
	json_decref(k);
}

static json_t *parse_or_fail(const char *text)
{
	json_t *v = json_loads(text, 0, NULL);
	if (!v)
		cli_fail(CLI_REFUSED, "the database returned an unreadable answer");
	return v;
}

static int sk_generate(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "alg", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	tk_config *cfg = cli_config();
	const char *alg = cfg->signing_key_alg;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'a')
			alg = optarg;
		else
			cli_fail(CLI_USAGE, "signing-key generate: see tokend signing-key --help");
	}
	if (optind != argc)
		cli_fail(CLI_USAGE, "signing-key generate: unexpected argument '%.40s'", argv[optind]);
	if (strcmp(alg, "ES256") != 0 && strcmp(alg, "EdDSA") != 0 && strcmp(alg, "RS256") != 0)
		cli_fail(CLI_USAGE, "--alg: must be ES256, EdDSA or RS256");
	unsigned char kek[TK_KEK_LEN];
	kek_of(cfg, kek);
	PGconn *db = cli_db();
	check_kek(db, kek);
	char err[1024], *json = NULL;
	int rc = tk_signkeys_generate(db, cfg, kek, alg, 0, &json, err, sizeof(err));
	tk_wipe(kek, sizeof(kek));
	if (rc != 0)
		cli_fail(CLI_REFUSED, "%s", err);
	json_t *k = parse_or_fail(json);
	free(json);
	print_key(k);
	return CLI_OK;
}

static int sk_list(int argc, char **argv)
{
	if (argc > 1)
		cli_fail(CLI_USAGE, "signing-key list: unexpected argument '%.40s'", argv[1]);
	PGresult *r = cli_exec("SELECT coalesce(jsonb_agg(tokend_signing_key_json(k) ORDER BY k.sign_from, k.kid),"
	                       " '[]')::text FROM signing_keys k", 0, NULL);
	json_t *arr = parse_or_fail(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (cli.json) {
		cli_print_json(arr);
		return CLI_OK;
	}
	printf("%-43s %-6s %-8s %-24s %-24s %s\n", "KID", "ALG", "STATE", "SIGN_FROM", "SIGNING_UNTIL",
	       "RETIRE_AFTER");
	size_t i;
	json_t *k;
	json_array_foreach(arr, i, k) {
		const char *su = json_string_value(json_object_get(k, "signing_until"));
		const char *ra = json_string_value(json_object_get(k, "retire_after"));
		printf("%-43s %-6s %-8s %-24s %-24s %s\n", json_string_value(json_object_get(k, "kid")),
		       json_string_value(json_object_get(k, "alg")), json_string_value(json_object_get(k, "state")),
		       json_string_value(json_object_get(k, "sign_from")), su ? su : "-", ra ? ra : "-");
	}
	json_decref(arr);
	return CLI_OK;
}

static int is_kid(const char *s)
{
	return strlen(s) == TK_THUMBPRINT_LEN &&
	       strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == TK_THUMBPRINT_LEN;
}

static int sk_retire(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "now", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	int now = 0, c;
	const char *kid = NULL;
	/* A kid may begin with '-' (one in 64 does): getopt would read "-Xy..."
	 * as options. An argument of a kid's length and alphabet is the kid, and
	 * is taken out before the options are read (no option is such a word). */
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-' && is_kid(argv[i])) {
			if (kid)
				cli_fail(CLI_USAGE, "signing-key retire: expected exactly one kid");
			kid = argv[i];
			memmove(argv + i, argv + i + 1, (size_t)(argc - i) * sizeof(*argv));   /* argv[argc] too */
			argc--;
			i--;
		}
	}
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			now = 1;
		else
			cli_fail(CLI_USAGE, "signing-key retire: see tokend signing-key --help");
	}
	if (argc - optind != (kid ? 0 : 1))
		cli_fail(CLI_USAGE, "signing-key retire: expected exactly one kid");
	if (!kid)
		kid = argv[optind];
	if (!is_kid(kid))
		cli_fail(CLI_USAGE, "signing-key retire: '%.60s' is not a kid (43 base64url characters)", kid);
	const char *p[] = { kid, now ? "true" : "false" };
	PGresult *r = cli_exec("SELECT tokend_signing_key_retire($1, $2::boolean)::text", 2, p);
	json_t *k = parse_or_fail(PQgetvalue(r, 0, 0));
	PQclear(r);
	print_key(k);
	return CLI_OK;
}

static int sk_rewrap(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "new-key-file", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'f')
			file = optarg;
		else
			cli_fail(CLI_USAGE, "signing-key rewrap: see tokend signing-key --help");
	}
	if (!file || optind != argc)
		cli_fail(CLI_USAGE, "signing-key rewrap: expected --new-key-file FILE and nothing else");
	tk_config *cfg = cli_config();
	unsigned char kek[TK_KEK_LEN], nkek[TK_KEK_LEN];
	char abs[PATH_MAX], err[1024];
	if (!realpath(file, abs))
		cli_fail(CLI_REFUSED, "--new-key-file: %s: cannot open", file);
	tk_config ncfg = *cfg;
	ncfg.signing_key_encryption_key = NULL;
	ncfg.signing_key_encryption_key_file = abs;
	if (tk_config_kek(&ncfg, nkek, err, sizeof(err)) != 0)
		cli_fail(CLI_REFUSED, "--new-key-file: %s", err);
	kek_of(cfg, kek);
	char old_id[TK_KEK_ID_LEN + 1], new_id[TK_KEK_ID_LEN + 1];
	tk_signkeys_kek_id(kek, old_id);
	tk_signkeys_kek_id(nkek, new_id);
	if (strcmp(old_id, new_id) == 0)
		cli_fail(CLI_REFUSED, "--new-key-file holds the key-encryption key already configured");
	PGconn *db = cli_db();
	int rc = tk_signkeys_rewrap(db, kek, nkek, err, sizeof(err));
	tk_wipe(kek, sizeof(kek));
	tk_wipe(nkek, sizeof(nkek));
	if (rc < 0)
		cli_fail(CLI_REFUSED, "%s", err);
	if (cli.json) {
		json_t *o = json_object();
		json_object_set_new(o, "rewrapped", json_integer(rc));
		json_object_set_new(o, "from_kek", json_string(old_id));
		json_object_set_new(o, "to_kek", json_string(new_id));
		cli_print_json(o);
	} else {
		printf("%d signing key(s) now encrypted under key-encryption key %s (was %s).\n"
		       "Restart every instance with the new key-encryption key.\n", rc, new_id, old_id);
	}
	return CLI_OK;
}

int cli_signkey(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(signkey_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *verb = argv[1];
	if (strcmp(verb, "generate") == 0)
		return sk_generate(argc - 1, argv + 1);
	if (strcmp(verb, "list") == 0)
		return sk_list(argc - 1, argv + 1);
	if (strcmp(verb, "retire") == 0)
		return sk_retire(argc - 1, argv + 1);
	if (strcmp(verb, "rewrap") == 0)
		return sk_rewrap(argc - 1, argv + 1);
	cli_fail(CLI_USAGE, "signing-key: unknown command '%.40s' (generate, list, retire, rewrap)", verb);
}
