/*
 * cli_member.c - `tokend member add|list|show|deactivate`: the members of an
 * account, whom member keys (`tokend key create --member`) act for. Every
 * change is one call of the database function the admin API calls
 * (tokend_member_add, tokend_member_deactivate): deactivating a member
 * disables its keys in the same transaction, with an audit row for each.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char member_usage[] =
	"usage: tokend member COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  add ACCOUNT ID --name NAME\n"
	"                      Add a member: ID is 1-128 characters [A-Za-z0-9._@+-]\n"
	"                      (not tk_ or tks_); NAME is 1-100 printable characters.\n"
	"  list ACCOUNT        List an account's members.\n"
	"  show ACCOUNT ID     Show one member.\n"
	"  deactivate ACCOUNT ID\n"
	"                      Deactivate for good: the member's keys are disabled at once\n"
	"                      and cannot be enabled again, nor new ones created.\n"
	"\n"
	"A member key's tokens carry sub \"<account>:<member ID>\".\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n";

static json_t *one_json(PGresult *r, const char *none)
{
	json_t *o = PQntuples(r) == 1 && !PQgetisnull(r, 0, 0) ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	PQclear(r);
	if (!o)
		cli_fail(CLI_REFUSED, "%s", none);
	return o;
}

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

static int member_add(int argc, char **argv)
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
	if (argc - optind != 2)
		cli_fail(CLI_USAGE, "member add: expected ACCOUNT and ID");
	if (!name)
		cli_fail(CLI_USAGE, "member add: --name is required");
	if ((why = cli_check_name(name)) != NULL)
		cli_fail(CLI_USAGE, "--name: %s", why);
	const char *p[] = { argv[optind], argv[optind + 1], name };
	done(one_json(cli_exec("SELECT tokend_member_add(tokend_actor(), NULL, $1, $2, $3)::text", 3, p),
	              "unexpected answer from the database"), "Added");
	return CLI_OK;
}

static int member_one(int argc, char **argv, int deactivate)
{
	if (argc != 3)
		cli_fail(CLI_USAGE, "member %s: expected ACCOUNT and ID", argv[0]);
	const char *p[] = { argv[1], argv[2] };
	char none[256];
	snprintf(none, sizeof(none), "account '%.63s' has no member '%.128s'", argv[1], argv[2]);
	PGresult *r = deactivate
		? cli_exec("SELECT tokend_member_deactivate(tokend_actor(), NULL, $1, $2)::text", 2, p)
		: cli_exec("SELECT tokend_member_json(m)::text FROM members m WHERE m.account_id = $1 AND m.id = $2", 2, p);
	done(one_json(r, none), deactivate ? "Deactivated" : NULL);
	return CLI_OK;
}

static int member_list(int argc, char **argv)
{
	if (argc != 2)
		cli_fail(CLI_USAGE, "member list: expected ACCOUNT");
	const char *p[] = { argv[1] };
	PGresult *a = cli_exec("SELECT 1 FROM accounts WHERE id = $1", 1, p);
	int found = PQntuples(a) == 1;
	PQclear(a);
	if (!found)
		cli_fail(CLI_REFUSED, "no account '%.63s'", argv[1]);
	json_t *l = one_json(cli_exec("SELECT coalesce(jsonb_agg(tokend_member_json(m) ORDER BY m.id), '[]')::text"
	                              " FROM members m WHERE m.account_id = $1", 1, p), "unexpected answer from the database");
	if (cli.json)
		return cli_print_json(l), CLI_OK;
	json_t *m;
	size_t i;
	printf("%-32s %-30s %-12s %-11s %s\n", "MEMBER", "NAME", "STATE", "ACTIVE KEYS", "CREATED");
	json_array_foreach(l, i, m)
		printf("%-32s %-30.30s %-12s %-11lld %s\n", s(m, "id"), s(m, "name"), s(m, "state"),
		       (long long)json_integer_value(json_object_get(m, "active_keys")), s(m, "created_at"));
	json_decref(l);
	return CLI_OK;
}

int cli_member(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(member_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (strcmp(argv[1], "add") == 0)
		return member_add(argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return member_list(argc - 1, argv + 1);
	if (strcmp(argv[1], "show") == 0)
		return member_one(argc - 1, argv + 1, 0);
	if (strcmp(argv[1], "deactivate") == 0)
		return member_one(argc - 1, argv + 1, 1);
	cli_fail(CLI_USAGE, "member: unknown command '%.40s' (see tokend member --help)", argv[1]);
}
