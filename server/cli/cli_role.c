/*
 * cli_role.c - `tokend role add|update|list|show`: the role catalogue, named
 * scope sets a key can be created from (`tokend key create --role`). The
 * rules (the scopes exist, a name never changes, audit rows) are the
 * database's: every change is one call of tokend_role_put, as the admin API's.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tokend/scope.h>

#include "cli.h"
#include "cli_remote.h"

static const char role_usage[] =
	"usage: tokend role COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  add NAME --scopes \"A B\" [--description TEXT]\n"
	"                      Add a role: NAME is 1-63 characters [a-z0-9_.-]; its scopes\n"
	"                      must be in the scope catalogue.\n"
	"  update NAME [--scopes \"A B\"] [--description TEXT]\n"
	"                      Change a role. Keys created from it keep the scopes they\n"
	"                      were given: only keys created later get the new ones.\n"
	"  list                List the roles.\n"
	"  show NAME           Show one role.\n"
	"\n"
	"Roles are global (like scopes); each account's granted scopes still bound what\n"
	"a key of the role may hold. Roles are never removed.\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n"
	"\n"
	"Remote mode: with --url URL (or $TOKEND_URL) list and show run over the admin\n"
	"REST API of a running tokend (tokend:admin:read), with the credentials of\n"
	"`tokend key --help` ($TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; --token-url as\n"
	"there). add and update are the operator's: run them locally.\n";

static void print_role(json_t *r)
{
	json_t *v;
	size_t i;
	printf("Role:        %s\n", json_string_value(json_object_get(r, "name")));
	printf("Description: %s\n", json_string_value(json_object_get(r, "description")));
	printf("Scopes:     ");
	json_array_foreach(json_object_get(r, "scopes"), i, v)
		printf(" %s", json_string_value(v));
	printf("\nCreated:     %s\n", json_string_value(json_object_get(r, "created_at")));
	printf("Updated:     %s\n", json_string_value(json_object_get(r, "updated_at")));
}

static int role_put(int argc, char **argv, int create)
{
	static const struct option opts[] = {
		{ "description", required_argument, NULL, 'd' },
		{ "scopes", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *desc = NULL, *scopes = NULL, *why;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'd')
			desc = optarg;
		else if (c == 's')
			scopes = optarg;
		else
			cli_fail(CLI_USAGE, "role: see tokend role --help");
	}
	if (argc - optind != 1)
		cli_fail(CLI_USAGE, "role %s: expected exactly one role name", create ? "add" : "update");
	if (create && !scopes)
		cli_fail(CLI_USAGE, "role add: --scopes is required");
	if (!create && !scopes && !desc)
		cli_fail(CLI_USAGE, "role update: nothing to change: give --scopes or --description");
	if (desc && strlen(desc) > 500)
		cli_fail(CLI_USAGE, "--description: at most 500 bytes");
	json_t *arr = json_array();
	if (scopes) {
		tk_scopes set = { 0 };
		if (tk_scopes_parse(scopes, strlen(scopes), &set, &why) != 0)
			cli_fail(CLI_USAGE, "--scopes: %s", why);
		if (set.n == 0)
			cli_fail(CLI_USAGE, "--scopes: a role holds at least one scope");
		for (size_t j = 0; j < set.n; j++)
			json_array_append_new(arr, json_string(set.v[j]));
		tk_scopes_free(&set);
	}
	char *text = scopes ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	if (scopes && !text)
		cli_fail(CLI_REFUSED, "out of memory");
	const char *p[] = { argv[optind], desc, text, create ? "t" : "f" };
	PGresult *r = cli_exec("SELECT tokend_role_put(tokend_actor(), NULL, $1, $2,"
	                       " CASE WHEN $3::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($3::jsonb)) END,"
	                       " $4::boolean)::text", 4, p);
	free(text);
	json_t *o = cli_one_json(r, "unexpected answer from the database");
	if (cli.json)
		cli_print_json(o);
	else {
		printf("%s role %s.\n", create ? "Added" : "Updated", argv[optind]);
		print_role(o);
		json_decref(o);
	}
	return CLI_OK;
}

/* GET `path` of the admin API: the body, or exit 1 with the API's reason. */
static json_t *remote_get(const char *path)
{
	cli_api_result r = cli_remote_call("GET", path, NULL, NULL, 1);
	if (r.status >= 300) {
		cli_remote_check_refusal(&r);
		json_decref(r.json);
		cli_fail(CLI_REFUSED, "%s", r.why);
	}
	return r.json;
}

static int role_show(int argc, char **argv, int rem)
{
	if (argc != 2)
		cli_fail(CLI_USAGE, "role show: expected exactly one role name");
	json_t *o;
	if (rem) {
		char path[256], *e = cli_remote_enc(argv[1]);
		int n = snprintf(path, sizeof(path), "roles/%s", e);
		free(e);
		if (n < 0 || (size_t)n >= sizeof(path))
			cli_fail(CLI_USAGE, "role show: role name too long");
		o = remote_get(path);
		if (!json_is_string(json_object_get(o, "name")))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: not a role", cli_remote_base());
	} else {
		const char *p[] = { argv[1] };
		char none[120];
		snprintf(none, sizeof(none), "no role '%.63s'", argv[1]);
		o = cli_one_json(cli_exec("SELECT tokend_role_json(r)::text FROM roles r WHERE r.name = $1", 1, p), none);
	}
	if (cli.json)
		cli_print_json(o);
	else {
		print_role(o);
		json_decref(o);
	}
	return CLI_OK;
}

static int role_list(int argc, char **argv, int rem)
{
	(void)argv;
	if (argc > 1)
		cli_fail(CLI_USAGE, "role list: unexpected argument");
	json_t *a;
	if (rem) {
		json_t *o = remote_get("roles");
		a = json_incref(json_object_get(o, "roles"));
		json_decref(o);
		if (!json_is_array(a))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no role list", cli_remote_base());
	} else {
		a = cli_one_json(cli_exec("SELECT coalesce(jsonb_agg(tokend_role_json(r) ORDER BY r.name), '[]')::text"
		                      " FROM roles r", 0, NULL), "unexpected answer from the database");
	}
	if (cli.json)
		return cli_print_json(a), CLI_OK;
	json_t *r, *v;
	size_t i, j;
	printf("%-24s %-40s %s\n", "ROLE", "DESCRIPTION", "SCOPES");
	json_array_foreach(a, i, r) {
		printf("%-24s %-40.40s", json_string_value(json_object_get(r, "name")),
		       json_string_value(json_object_get(r, "description")));
		json_array_foreach(json_object_get(r, "scopes"), j, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
	json_decref(a);
	return CLI_OK;
}

int cli_role(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(role_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (cli_wants_remote(argc, argv)) {
		const char *url = NULL, *token_url = NULL;
		cli_remote_take_options(&argc, argv, &url, &token_url);
		int list = strcmp(argv[1], "list") == 0;
		if (!list && strcmp(argv[1], "show") != 0)
			cli_fail(CLI_USAGE, "role %.40s: not available in remote mode (--url, $TOKEND_URL): remotely, role "
			         "list and show; run it locally as the operator", argv[1]);
		if (list ? argc > 2 : argc != 3)
			cli_fail(CLI_USAGE, list ? "role list: unexpected argument" : "role show: expected exactly one role name");
		cli_remote_open(url, token_url);
		return list ? role_list(argc - 1, argv + 1, 1) : role_show(argc - 1, argv + 1, 1);
	}
	if (strcmp(argv[1], "add") == 0)
		return role_put(argc - 1, argv + 1, 1);
	if (strcmp(argv[1], "update") == 0)
		return role_put(argc - 1, argv + 1, 0);
	if (strcmp(argv[1], "list") == 0)
		return role_list(argc - 1, argv + 1, 0);
	if (strcmp(argv[1], "show") == 0)
		return role_show(argc - 1, argv + 1, 0);
	cli_fail(CLI_USAGE, "role: unknown command '%.40s' (see tokend role --help)", argv[1]);
}
