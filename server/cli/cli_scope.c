/*
 * cli_scope.c - `tokend scope add|list`: the scope catalogue.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <tokend/scope.h>

#include "cli.h"
#include "cli_remote.h"

static const char scope_usage[] =
	"usage: tokend scope COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  add NAME [--description TEXT] [--public]\n"
	"                      Add a scope to the catalogue. NAME is an RFC 6749 scope-token:\n"
	"                      printable ASCII except space, '\"' and '\\', at most 128 bytes.\n"
	"                      --public: publishable (browser) keys may hold it; fixed.\n"
	"  list                List the catalogue.\n"
	"\n"
	"Scopes are never removed: keys that hold them are immutable.\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n"
	"Remote mode: with --url URL (or $TOKEND_URL) list runs over the admin REST API\n"
	"(credentials as for `tokend key --help`).\n";

static json_t *scope_json(const PGresult *r, int i)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", cli_col_str(r, i, 0));
	json_object_set_new(o, "description", cli_col_str(r, i, 1));
	json_object_set_new(o, "created_at", cli_col_str(r, i, 2));
	json_object_set_new(o, "public", json_boolean(strcmp(PQgetvalue(r, i, 3), "t") == 0));
	return o;
}

/* Takes `arr` (a JSON array of scope objects). */
static void print_scopes(json_t *arr)
{
	json_t *v;
	size_t i;
	if (cli.json) {
		cli_print_json(arr);
		return;
	}
	printf("%-32s %-6s %s\n", "SCOPE", "PUBLIC", "DESCRIPTION");
	json_array_foreach(arr, i, v) {
		const char *d = json_string_value(json_object_get(v, "description"));
		printf("%-32s %-6s %s\n", json_string_value(json_object_get(v, "name")),
		       json_is_true(json_object_get(v, "public")) ? "yes" : "no", d ? d : "");
	}
	json_decref(arr);
}

static int scope_add(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "description", required_argument, NULL, 'd' },
		{ "public", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *desc = "";
	int c, public = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'd')
			desc = optarg;
		else if (c == 'p')
			public = 1;
		else
			cli_fail(CLI_USAGE, "scope add: see tokend scope --help");
	}
	if (argc - optind != 1)
		cli_fail(CLI_USAGE, "scope add: expected exactly one scope name");
	const char *name = argv[optind];
	if (!tk_scope_token_valid(name, strlen(name)))
		cli_fail(CLI_USAGE, "invalid scope name '%.80s': use printable ASCII without space, '\"' "
		         "or '\\', at most %d bytes", name, TK_SCOPE_TOKEN_MAX);
	if (strlen(desc) > 500)
		cli_fail(CLI_USAGE, "--description: must be at most 500 bytes");
	json_t *utf8 = json_string(desc);
	if (!utf8)
		cli_fail(CLI_USAGE, "--description: must be valid UTF-8");
	json_decref(utf8);
	for (const char *s = desc; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			cli_fail(CLI_USAGE, "--description: must not contain control characters");
	const char *p[] = { name, desc, public ? "t" : "f" };
	PGresult *r = cli_exec("INSERT INTO scopes (name, description, public) VALUES ($1, $2, $3::boolean) "
	                       "ON CONFLICT (name) DO NOTHING "
	                       "RETURNING name, description, tokend_ts(created_at), public", 3, p);
	if (PQntuples(r) != 1) {
		PQclear(r);
		cli_fail(CLI_REFUSED, "scope '%s' already exists", name);
	}
	if (cli.json)
		cli_print_json(scope_json(r, 0));
	else
		printf("Added %sscope %s.\n", public ? "public " : "", name);
	PQclear(r);
	return CLI_OK;
}

static int scope_list(int argc, char **argv)
{
	(void)argv;
	if (argc > 1)
		cli_fail(CLI_USAGE, "scope list: unexpected argument");
	PGresult *r = cli_exec("SELECT name, description, tokend_ts(created_at), public FROM scopes ORDER BY name",
	                       0, NULL);
	json_t *arr = json_array();
	for (int i = 0; i < PQntuples(r); i++)
		json_array_append_new(arr, scope_json(r, i));
	PQclear(r);
	print_scopes(arr);
	return CLI_OK;
}

/* `scope list --url URL`: GET scopes of the admin API (cli_remote.c). */
static int scope_list_remote(int argc, char **argv)
{
	const char *url = NULL, *token_url = NULL;
	cli_remote_take_options(&argc, argv, &url, &token_url);
	if (argc > 1)
		cli_fail(CLI_USAGE, "scope list: unexpected argument");
	cli_remote_open(url, token_url);
	cli_api_result r = cli_remote_call("GET", "scopes", NULL, NULL, 1);
	if (r.status >= 300) {
		cli_remote_check_refusal(&r);
		json_decref(r.json);
		cli_fail(CLI_REFUSED, "%s", r.why);
	}
	json_t *arr = json_incref(json_object_get(r.json, "scopes"));
	json_decref(r.json);
	if (!json_is_array(arr))
		cli_fail(CLI_REFUSED, "unexpected answer from %s: no scope list", cli_remote_base());
	print_scopes(arr);
	return CLI_OK;
}

int cli_scope(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(scope_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "list") == 0)
		return cli_wants_remote(argc, argv) ? scope_list_remote(argc - 1, argv + 1) : scope_list(argc - 1, argv + 1);
	if (cli_wants_remote(argc, argv))
		cli_fail(CLI_USAGE, "scope %.40s: not available in remote mode (--url, $TOKEND_URL): remotely, scope list; "
		         "run it locally as the operator", argv[1]);
	if (strcmp(argv[1], "add") == 0)
		return scope_add(argc - 1, argv + 1);
	cli_fail(CLI_USAGE, "scope: unknown command '%.40s' (see tokend scope --help)", argv[1]);
}
