/*
 * cli_account.c - `tokend account create|list|show|set-limit|disable|enable|
 * grant-scopes|revoke-scopes`.
 *
 * The scope allow-list: the scopes an account's keys may hold (every key,
 * whoever creates it; sql/005_account_scopes.sql). The local CLI is the
 * operator; the changes go through tokend_account_scopes(), audited.
 */
#include <errno.h>
#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/scope.h>

#include "cli.h"
#include "cli_remote.h"
#include "db.h"

static const char account_usage[] =
	"usage: tokend account COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  create ID [--name NAME] [--key-limit N]\n"
	"                      Create an account. ID: lowercase letters, digits, '-' and '_',\n"
	"                      1-63 characters, starting with a letter or digit. NAME: display\n"
	"                      name (default: empty). N: active-key limit (default 3).\n"
	"  list                List accounts with their limits and active key counts.\n"
	"  show [ID]           Show one account (default: $TOKEND_ACCOUNT).\n"
	"  set-limit ID N      Set the account's active-key limit (0..100000).\n"
	"  disable ID          Disable the account: none of its keys gets a token.\n"
	"  enable ID           Re-enable a disabled account.\n"
	"  grant-scopes ID SCOPE...\n"
	"                      Allow the account's keys to hold these catalogue scopes\n"
	"                      (every key's scopes must be granted to its account first;\n"
	"                      account administrators delegate only granted scopes).\n"
	"  revoke-scopes ID SCOPE...\n"
	"                      Remove scopes from the account's list: no new key gets\n"
	"                      them; existing keys keep theirs (revoke those keys).\n"
	"\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n"
	"\n"
	"Remote mode: with --url URL (or $TOKEND_URL) list and show run over the admin\n"
	"REST API of a running tokend, with the credentials of `tokend key --help`\n"
	"($TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; --token-url as there). An operator's\n"
	"list shows every account; an account administrator's, its own.\n";

#define ACCOUNT_COLUMNS \
	"a.id, a.name, a.key_limit, " \
	"(SELECT count(*) FROM api_keys k WHERE k.account_id = a.id AND tokend_key_is_active(k)), " \
	"tokend_ts(a.created_at), tokend_ts(a.disabled_at), " \
	"(SELECT coalesce(json_agg(g.scope ORDER BY g.scope), '[]') FROM account_scopes g WHERE g.account_id = a.id)"

static json_t *account_json(const PGresult *r, int i)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", cli_col_str(r, i, 0));
	json_object_set_new(o, "name", cli_col_str(r, i, 1));
	json_object_set_new(o, "key_limit", cli_col_int(r, i, 2));
	json_object_set_new(o, "active_keys", cli_col_int(r, i, 3));
	json_object_set_new(o, "created_at", cli_col_str(r, i, 4));
	json_object_set_new(o, "disabled_at", cli_col_str(r, i, 5));
	json_object_set_new(o, "scopes", cli_col_json(r, i, 6));
	return o;
}

static const char *jstr(json_t *o, const char *k, const char *dflt)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : dflt;
}

/* The text view of an account object (the admin API's, or account_json's). */
static void print_account_text(json_t *a)
{
	json_t *v;
	size_t j;
	printf("Account:     %s\n", jstr(a, "id", ""));
	printf("Name:        %s\n", jstr(a, "name", ""));
	printf("Key limit:   %lld (active keys: %lld)\n", (long long)json_integer_value(json_object_get(a, "key_limit")),
	       (long long)json_integer_value(json_object_get(a, "active_keys")));
	printf("Created:     %s\n", jstr(a, "created_at", ""));
	printf("State:       %s\n", jstr(a, "disabled_at", NULL) ? "disabled" : "active");
	printf("Scopes:     ");
	if (json_array_size(json_object_get(a, "scopes")) == 0)
		printf(" (none granted)");
	json_array_foreach(json_object_get(a, "scopes"), j, v)
		printf(" %s", json_string_value(v));
	printf("\n");
}

static void print_account(json_t *a, const char *verb)
{
	if (cli.json) {
		cli_print_json(json_incref(a));
		return;
	}
	if (verb)
		printf("%s account %s.\n", verb, jstr(a, "id", ""));
	print_account_text(a);
}

/* `account list`: a JSON array of account objects. */
static void print_accounts(json_t *arr)
{
	json_t *a;
	size_t i;
	if (cli.json) {
		cli_print_json(json_incref(arr));
		return;
	}
	printf("%-24s %-30s %6s %6s %-20s %s\n", "ACCOUNT", "NAME", "LIMIT", "ACTIVE", "CREATED", "STATE");
	json_array_foreach(arr, i, a)
		printf("%-24s %-30.30s %6lld %6lld %-20s %s\n", jstr(a, "id", ""), jstr(a, "name", ""),
		       (long long)json_integer_value(json_object_get(a, "key_limit")),
		       (long long)json_integer_value(json_object_get(a, "active_keys")), jstr(a, "created_at", ""),
		       jstr(a, "disabled_at", NULL) ? "disabled" : "active");
}

static void check_account_id(const char *id)
{
	regex_t re;
	regcomp(&re, "^[a-z0-9][a-z0-9_-]{0,62}$", REG_EXTENDED | REG_NOSUB);
	int bad = regexec(&re, id, 0, NULL, 0) != 0;
	regfree(&re);
	if (bad)
		cli_fail(CLI_USAGE, "invalid account ID '%.80s': use 1-63 lowercase letters, digits, '-' "
		         "or '_', starting with a letter or digit", id);
}

/* $TOKEND_ACCOUNT when set and non-empty, else NULL. */
static const char *account_from_env(void)
{
	const char *a = getenv("TOKEND_ACCOUNT");
	return a && *a ? a : NULL;
}

static int parse_limit(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v < 0 || v > 100000)
		cli_fail(CLI_USAGE, "invalid key limit '%.40s': a whole number from 0 to 100000", s);
	return (int)v;
}

static int show_one(const char *id, const char *verb)
{
	const char *p[] = { id };
	PGresult *r = cli_exec("SELECT " ACCOUNT_COLUMNS " FROM accounts a WHERE a.id = $1", 1, p);
	if (PQntuples(r) != 1) {
		PQclear(r);
		cli_fail(CLI_REFUSED, "no account '%s'", id);
	}
	json_t *a = account_json(r, 0);
	PQclear(r);
	print_account(a, verb);
	json_decref(a);
	return CLI_OK;
}

static int account_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "key-limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = "", *limit = "3";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 'l': limit = optarg; break;
		default: cli_fail(CLI_USAGE, "account create: see tokend account --help");
		}
	}
	if (argc - optind != 1)
		cli_fail(CLI_USAGE, "account create: expected exactly one account ID");
	const char *id = argv[optind];
	check_account_id(id);
	if (*name) {
		const char *why = cli_check_name(name);
		if (why)
			cli_fail(CLI_USAGE, "--name: %s", why);
	}
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", parse_limit(limit));
	const char *p[] = { id, name, lim };
	PGresult *r = cli_exec("INSERT INTO accounts (id, name, key_limit) VALUES ($1, $2, $3) "
	                       "ON CONFLICT (id) DO NOTHING RETURNING id", 3, p);
	int created = PQntuples(r) == 1;
	PQclear(r);
	if (!created)
		cli_fail(CLI_REFUSED, "account '%s' already exists", id);
	return show_one(id, "Created");
}

static int account_list(int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		cli_fail(CLI_USAGE, "account list: unexpected argument");
	PGresult *r = cli_exec("SELECT " ACCOUNT_COLUMNS " FROM accounts a ORDER BY a.id", 0, NULL);
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, account_json(r, i));
	PQclear(r);
	print_accounts(arr);
	json_decref(arr);
	return CLI_OK;
}

/* ---- remote mode (the admin API): list and show ---- */

/* GET `path`: the JSON object, or exit 1 with the API's reason. */
static json_t *remote_get(const char *path, const char *what)
{
	cli_api_result r = cli_remote_call("GET", path, NULL, NULL, 1);
	if (r.status >= 300) {
		cli_remote_check_refusal(&r);
		json_decref(r.json);
		if (r.status == 404)
			cli_fail(CLI_REFUSED, "no account '%s'", what);
		cli_fail(CLI_REFUSED, "%s", r.why);
	}
	return r.json;
}

static json_t *remote_account(const char *id)
{
	char path[256], *e = cli_remote_enc(id);
	snprintf(path, sizeof(path), "accounts/%s", e);
	free(e);
	json_t *a = remote_get(path, id);
	if (!json_is_string(json_object_get(a, "id")))
		cli_fail(CLI_REFUSED, "unexpected answer from %s: not an account", cli_remote_base());
	return a;
}

/* list: every account for an operator; an account administrator's own. */
static int remote_list(void)
{
	json_t *arr;
	if (cli_remote_operator()) {
		json_t *o = remote_get("accounts", "");
		arr = json_incref(json_object_get(o, "accounts"));
		json_decref(o);
		if (!json_is_array(arr))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no account list", cli_remote_base());
	} else {
		json_t *own = remote_get("account", "");
		arr = json_array();
		json_array_append_new(arr, own);
	}
	print_accounts(arr);
	json_decref(arr);
	return CLI_OK;
}

static int account_remote(int argc, char **argv)
{
	const char *url = NULL, *token_url = NULL;
	cli_remote_take_options(&argc, argv, &url, &token_url);
	const char *verb = argv[1];
	if (strcmp(verb, "list") == 0) {
		if (argc != 2)
			cli_fail(CLI_USAGE, "account list: unexpected argument");
		cli_remote_open(url, token_url);
		return remote_list();
	}
	if (strcmp(verb, "show") == 0) {
		const char *id = argc == 3 ? argv[2] : account_from_env();
		if (argc > 3 || !id)
			cli_fail(CLI_USAGE, "account show: expected exactly one account ID (or $TOKEND_ACCOUNT)");
		check_account_id(id);
		cli_remote_open(url, token_url);
		json_t *a = remote_account(id);
		print_account(a, NULL);
		json_decref(a);
		return CLI_OK;
	}
	cli_fail(CLI_USAGE, "account %.40s: not available in remote mode (--url, $TOKEND_URL): remotely, account "
	         "list and show; run it locally as the operator", verb);
}

static int account_update(int argc, char **argv, const char *verb)
{
	const char *id;
	PGresult *r;
	if (strcmp(verb, "set-limit") == 0) {
		if (argc != 3)
			cli_fail(CLI_USAGE, "account set-limit: expected ID and N");
		id = argv[1];
		char lim[16];
		snprintf(lim, sizeof(lim), "%d", parse_limit(argv[2]));
		const char *p[] = { id, lim };
		r = cli_exec("UPDATE accounts SET key_limit = $2 WHERE id = $1 RETURNING id", 2, p);
	} else {
		if (argc != 2)
			cli_fail(CLI_USAGE, "account %s: expected exactly one account ID", verb);
		id = argv[1];
		const char *p[] = { id };
		r = cli_exec(strcmp(verb, "disable") == 0
		             ? "UPDATE accounts SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1 RETURNING id"
		             : "UPDATE accounts SET disabled_at = NULL WHERE id = $1 RETURNING id", 1, p);
	}
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		cli_fail(CLI_REFUSED, "no account '%s'", id);
	return show_one(id, strcmp(verb, "set-limit") == 0 ? "Updated" :
	                    strcmp(verb, "disable") == 0 ? "Disabled" : "Enabled");
}

/* grant-scopes / revoke-scopes ID SCOPE...: one call of tokend_account_scopes. */
static int account_scopes(int argc, char **argv, int grant)
{
	if (argc < 3)
		cli_fail(CLI_USAGE, "account %s: expected an account ID and at least one scope", argv[0]);
	const char *id = argv[1];
	json_t *arr = json_array();
	for (int i = 2; i < argc; i++) {
		if (!tk_scope_token_valid(argv[i], strlen(argv[i])))
			cli_fail(CLI_USAGE, "account %s: '%.80s' is not a valid scope name", argv[0], argv[i]);
		json_array_append_new(arr, json_string(argv[i]));
	}
	char *list = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	if (!list)
		cli_fail(CLI_REFUSED, "out of memory");
	const char *p[] = { id, list };
	PGresult *r = tk_db_exec(cli_db(), grant
		? "SELECT tokend_account_scopes(tokend_actor(), NULL, $1,"
		  " ARRAY(SELECT jsonb_array_elements_text($2::jsonb)), NULL)"
		: "SELECT tokend_account_scopes(tokend_actor(), NULL, $1,"
		  " NULL, ARRAY(SELECT jsonb_array_elements_text($2::jsonb)))", 2, p);
	free(list);
	if (!tk_db_ok(r)) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", tk_db_error(cli.db, r));
		PQclear(r);
		cli_fail(CLI_REFUSED, "%s", msg);
	}
	PQclear(r);
	return show_one(id, grant ? "Granted scopes to" : "Revoked scopes from");
}

int cli_account(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		fputs(account_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (cli_wants_help(argc, argv)) {
		fputs(account_usage, stdout);
		return CLI_OK;
	}
	const char *verb = argv[1];
	if (cli_wants_remote(argc, argv))
		return account_remote(argc, argv);
	if (strcmp(verb, "create") == 0)
		return account_create(argc - 1, argv + 1);
	if (strcmp(verb, "list") == 0)
		return account_list(argc - 1, argv + 1);
	if (strcmp(verb, "show") == 0) {
		const char *id = argc == 3 ? argv[2] : account_from_env();
		if (argc > 3 || !id)
			cli_fail(CLI_USAGE, "account show: expected exactly one account ID (or $TOKEND_ACCOUNT)");
		return show_one(id, NULL);
	}
	if (strcmp(verb, "grant-scopes") == 0 || strcmp(verb, "revoke-scopes") == 0)
		return account_scopes(argc - 1, argv + 1, verb[0] == 'g');
	if (strcmp(verb, "set-limit") == 0 || strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0)
		return account_update(argc - 1, argv + 1, verb);
	cli_fail(CLI_USAGE, "account: unknown command '%.40s' (see tokend account --help)", verb);
}
