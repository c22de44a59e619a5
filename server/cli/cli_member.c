/*
 * cli_member.c - `tokend member add|list|show|deactivate`: the members of an
 * account, whom member keys (`tokend key create --member`) act for. Every
 * change is one call of the database function the admin API calls
 * (tokend_member_add, tokend_member_deactivate): deactivating a member
 * disables its keys in the same transaction, with an audit row for each.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_remote.h"

static const char member_usage[] =
	"usage: tokend member COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  add [ACCOUNT] ID --name NAME\n"
	"                      Add a member: ID is 1-128 characters [A-Za-z0-9._@+-]\n"
	"                      (not tk_ or tks_); NAME is 1-100 printable characters.\n"
	"  list [ACCOUNT]      List an account's members.\n"
	"  show [ACCOUNT] ID   Show one member.\n"
	"  deactivate [ACCOUNT] ID\n"
	"                      Deactivate for good: the member's keys are disabled at once\n"
	"                      and cannot be enabled again, nor new ones created.\n"
	"\n"
	"Without ACCOUNT: $TOKEND_ACCOUNT; remotely, without either, the account of the\n"
	"credentials. A member key's tokens carry sub \"<account>:<member ID>\".\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n"
	"\n"
	"Remote mode: with --url URL (or $TOKEND_URL) every command runs over the admin\n"
	"REST API of a running tokend, with the credentials of `tokend key --help`\n"
	"($TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; --token-url as there). list and show\n"
	"need tokend:admin:read, add and deactivate tokend:admin:write; only an operator\n"
	"names another account.\n";

static const char *s(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));
	return v ? v : "-";
}

static void print_member(json_t *m)
{
	printf("Member:      %s\n", s(m, "id"));
	printf("Account:     %s\n", s(m, "account"));
	printf("Name:        %s\n", s(m, "name"));
	printf("State:       %s\n", s(m, "state"));
	printf("Active keys: %lld\n", (long long)json_integer_value(json_object_get(m, "active_keys")));
	printf("Created:     %s\n", s(m, "created_at"));
	if (json_is_string(json_object_get(m, "deactivated_at")))
		printf("Deactivated: %s\n", s(m, "deactivated_at"));
}

static void done(json_t *o, const char *verb)
{
	if (cli.json) {
		cli_print_json(o);
		return;
	}
	if (verb)
		printf("%s member %s of account %s.\n", verb, s(o, "id"), s(o, "account"));
	print_member(o);
	json_decref(o);
}

/* The account: the positional one, else $TOKEND_ACCOUNT (NULL if neither). */
static const char *pick_account(int nargs, int with_id, char **args)
{
	if (nargs == with_id + 1)
		return args[0];
	const char *e = getenv("TOKEND_ACCOUNT");
	return e && *e ? e : NULL;
}

/* ---- remote mode: the admin API's /members (cli_remote.c) ---- */

/* "members[/ID[/deactivate]][?account=A]" into buf (exits 2 if too long). */
static void remote_path(char *buf, size_t len, const char *account, const char *id, const char *tail)
{
	char *ea = account ? cli_remote_enc(account) : NULL, *ei = id ? cli_remote_enc(id) : NULL;
	int n = snprintf(buf, len, "members%s%s%s%s%s", ei ? "/" : "", ei ? ei : "", tail ? tail : "",
	                 ea ? "?account=" : "", ea ? ea : "");
	free(ea);
	free(ei);
	if (n < 0 || (size_t)n >= len)
		cli_fail(CLI_USAGE, "member: account or member ID too long");
}

/* One call; a refusal exits 1 with the API's reason. Returns the body. */
static json_t *remote(const char *method, const char *path, json_t *body, int retry_safe)
{
	cli_api_result r = cli_remote_call(method, path, body, NULL, retry_safe);
	if (r.status >= 300) {
		cli_remote_check_refusal(&r);
		json_decref(r.json);
		cli_fail(CLI_REFUSED, "%s", r.why);
	}
	return r.json;
}

static json_t *remote_member(json_t *o)
{
	if (!json_is_string(json_object_get(o, "id")))
		cli_fail(CLI_REFUSED, "unexpected answer from %s: not a member", cli_remote_base());
	return o;
}

static void print_list(json_t *l)
{
	if (cli.json) {
		cli_print_json(l);
		return;
	}
	json_t *m;
	size_t i;
	printf("%-32s %-30s %-12s %-11s %s\n", "MEMBER", "NAME", "STATE", "ACTIVE KEYS", "CREATED");
	json_array_foreach(l, i, m)
		printf("%-32s %-30.30s %-12s %-11lld %s\n", s(m, "id"), s(m, "name"), s(m, "state"),
		       (long long)json_integer_value(json_object_get(m, "active_keys")), s(m, "created_at"));
	json_decref(l);
}

static int member_add(int argc, char **argv, int rem, const char *url, const char *token_url)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *why;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'n')
			name = optarg;
		else
			cli_fail(CLI_USAGE, "member add: see tokend member --help");
	}
	int nargs = argc - optind;
	const char *account = pick_account(nargs, 1, argv + optind);
	if (nargs < 1 || nargs > 2 || (!account && !rem))
		cli_fail(CLI_USAGE, "member add: expected [ACCOUNT] ID (or $TOKEND_ACCOUNT)");
	const char *id = argv[argc - 1];
	if (!name)
		cli_fail(CLI_USAGE, "member add: --name is required");
	if ((why = cli_check_name(name)) != NULL)
		cli_fail(CLI_USAGE, "--name: %s", why);
	if (!rem) {
		const char *p[] = { account, id, name };
		done(cli_one_json(cli_exec("SELECT tokend_member_add(tokend_actor(), NULL, $1, $2, $3)::text", 3, p),
		              "unexpected answer from the database"), "Added");
		return CLI_OK;
	}
	json_t *body = json_pack("{s:s, s:s}", "id", id, "name", name);
	if (!body)
		cli_fail(CLI_USAGE, "member add: ID and NAME must be valid UTF-8");
	if (account)
		json_object_set_new(body, "account", json_string(account));
	cli_remote_open(url, token_url);
	/* Not repeated: a retry after a lost answer would be refused as a conflict. */
	json_t *o = remote("POST", "members", body, 0);
	json_decref(body);
	done(remote_member(o), "Added");
	return CLI_OK;
}

static int member_one(int argc, char **argv, int deactivate, int rem, const char *url, const char *token_url)
{
	int nargs = argc - 1;
	const char *account = pick_account(nargs, 1, argv + 1);
	if (nargs < 1 || nargs > 2 || (!account && !rem))
		cli_fail(CLI_USAGE, "member %s: expected [ACCOUNT] ID (or $TOKEND_ACCOUNT)", argv[0]);
	const char *id = argv[argc - 1];
	if (rem) {
		char path[1024];
		remote_path(path, sizeof(path), account, id, deactivate ? "/deactivate" : NULL);
		cli_remote_open(url, token_url);
		json_t *o = deactivate ? remote("POST", path, NULL, 0) : remote("GET", path, NULL, 1);
		done(remote_member(o), deactivate ? "Deactivated" : NULL);
		return CLI_OK;
	}
	const char *p[] = { account, id };
	char none[256];
	snprintf(none, sizeof(none), "account '%.63s' has no member '%.128s'", account, id);
	PGresult *r = deactivate
		? cli_exec("SELECT tokend_member_deactivate(tokend_actor(), NULL, $1, $2)::text", 2, p)
		: cli_exec("SELECT tokend_member_json(m)::text FROM members m WHERE m.account_id = $1 AND m.id = $2", 2, p);
	done(cli_one_json(r, none), deactivate ? "Deactivated" : NULL);
	return CLI_OK;
}

static int member_list(int argc, char **argv, int rem, const char *url, const char *token_url)
{
	int nargs = argc - 1;
	const char *account = pick_account(nargs, 0, argv + 1);
	if (nargs > 1 || (!account && !rem))
		cli_fail(CLI_USAGE, "member list: expected ACCOUNT (or $TOKEND_ACCOUNT)");
	if (rem) {
		char path[512];
		remote_path(path, sizeof(path), account, NULL, NULL);
		cli_remote_open(url, token_url);
		json_t *o = remote("GET", path, NULL, 1);
		json_t *l = json_incref(json_object_get(o, "members"));
		json_decref(o);
		if (!json_is_array(l))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no member list", cli_remote_base());
		print_list(l);
		return CLI_OK;
	}
	const char *p[] = { account };
	PGresult *a = cli_exec("SELECT 1 FROM accounts WHERE id = $1", 1, p);
	int found = PQntuples(a) == 1;
	PQclear(a);
	if (!found)
		cli_fail(CLI_REFUSED, "no account '%.63s'", account);
	print_list(cli_one_json(cli_exec("SELECT coalesce(jsonb_agg(tokend_member_json(m) ORDER BY m.id), '[]')::text"
	                             " FROM members m WHERE m.account_id = $1", 1, p), "unexpected answer from the database"));
	return CLI_OK;
}

int cli_member(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(member_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *url = NULL, *token_url = NULL;
	int rem = cli_wants_remote(argc, argv);
	if (rem)
		cli_remote_take_options(&argc, argv, &url, &token_url);
	if (strcmp(argv[1], "add") == 0)
		return member_add(argc - 1, argv + 1, rem, url, token_url);
	if (strcmp(argv[1], "list") == 0)
		return member_list(argc - 1, argv + 1, rem, url, token_url);
	if (strcmp(argv[1], "show") == 0)
		return member_one(argc - 1, argv + 1, 0, rem, url, token_url);
	if (strcmp(argv[1], "deactivate") == 0)
		return member_one(argc - 1, argv + 1, 1, rem, url, token_url);
	cli_fail(CLI_USAGE, "member: unknown command '%.40s' (see tokend member --help)", argv[1]);
}
