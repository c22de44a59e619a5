/*
 * cli_key.c - `tokend key create|list|show|rename|set-rate-limit|disable|
 * enable|revoke|delete`: each command parsed once into a tk_key_request,
 * handed to the local or the remote backend (cli_key.h), and the answer
 * printed once (cli_key_print.c).
 *
 * Usage errors (exit 2) are found here, before any database or network work,
 * and are the same in both modes.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>
#include <tokend/timefmt.h>

#include "input.h"
#include "cli.h"
#include "cli_key.h"
#include "cli_key_print.h"
#include "cli_remote.h"

static const char key_usage[] =
	"usage: tokend key COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  create --account ID --name NAME --scopes \"SCOPE ...\" [OPTIONS]\n"
	"      Create an API key and print its secret, once: it cannot be shown again.\n"
	"      --account ID          the owning account (required)\n"
	"      --name NAME           display name, 1-100 characters (required)\n"
	"      --scopes \"A B\"        space-separated scopes from the catalogue (required);\n"
	"                            fixed for the key's life\n"
	"      --audience URI        an audience the key may request (repeatable; fixed);\n"
	"                            without any, tokens get the server's default audience\n"
	"      --subject S           the member the key acts for (tokens' sub; default: the key ID)\n"
	"      --expires-in DURATION expire after e.g. 30d, 12h, 1w2d (or --expires-at)\n"
	"      --expires-at TIME     expire at an RFC 3339 time, e.g. 2027-01-01T00:00:00Z\n"
	"      --token-lifetime DUR  lifetime of this key's tokens, e.g. 5m (at most the\n"
	"                            server's token_lifetime_max; default token_lifetime)\n"
	"      --rate-limit N        at most N tokens per minute from each tokend instance\n"
	"                            (429 + Retry-After beyond; default: no limit)\n"
	"      --role ROLE           take the scopes of ROLE (copied now: later changes of\n"
	"                            the role never reach the key); instead of --scopes\n"
	"      --member ID           a member key: tokens' sub is <account>:<member>\n"
	"                            (instead of --subject; see tokend member)\n"
	"      --environment E       live (default) or test; fixed, in tokens' \"env\" claim\n"
	"      --claims JSON         custom claims every token carries, a JSON object of\n"
	"                            strings, numbers, booleans and string arrays (<= 1 KiB)\n"
	"      --publishable         a publishable browser key: no secret, only public scopes,\n"
	"                            used from web pages of its --origin list (shown in full)\n"
	"      --origin ORIGIN       an exact browser origin scheme://host[:port] the\n"
	"                            publishable key may be used from (repeatable, 1-20; fixed)\n"
		"  list [--account ID] [--state enabled|disabled|revoked|expired] [--subject S]\n"
	"       [--role R] [--member ID] [--environment live|test] [--kind account|member|publishable]\n"
	"       [--unused-since never|DURATION] [--sort created_at|last_used_at|name]\n"
	"       [--order asc|desc]\n"
	"      List keys (masked). Revoked keys stay listed; deleted keys are not shown.\n"
	"      --subject S           only keys acting for this subject (exact)\n"
	"      --unused-since D      only keys not used in the last D (e.g. 30d; never-used\n"
	"                            keys included), or never used at all (never)\n"
	"      --sort FIELD          order by creation (default), last use (never used\n"
	"                            first) or name; --order desc reverses\n"
	"  show KEY_ID               Show one key.\n"
	"  rename KEY_ID NAME        Change a key's display name.\n"
	"  set-rate-limit KEY_ID N|none\n"
	"                            Change or remove a key's token rate limit (per minute).\n"
	"  disable KEY_ID            Stop issuing tokens for the key (reversible).\n"
	"  enable KEY_ID             Re-enable a disabled key (never a revoked one).\n"
	"  revoke KEY_ID [--reason TEXT]\n"
	"                            Revoke for good: the key stays listed as revoked.\n"
	"  rotate-secret KEY_ID --overlap DURATION\n"
	"                            Give the key a new secret (shown once); the current\n"
	"                            one keeps working for DURATION (e.g. 24h; 0: it stops\n"
	"                            now; at most 30d, never past the key's expiry), then\n"
	"                            stops. Only the current and the previous secret ever\n"
	"                            work: rotating again during an overlap ends the older\n"
	"                            one at once. Revoked and expired keys do not rotate.\n"
	"  delete KEY_ID [--force]   Remove from listings; the ID is never reused and the\n"
	"                            audit log keeps its history. A key used in the last\n"
	"                            24 hours is kept unless --force is given.\n"
	"\n"
	"Options for every command: --json (machine-readable output), --config FILE.\n"
	"\n"
	"Remote mode: with --url URL (or $TOKEND_URL) the same commands run over the\n"
	"admin REST API of a running tokend: no database access or configuration needed.\n"
	"  --url URL                 the server, e.g. https://tokend.example.com[:port]\n"
	"  --token-url URL           where to get the access token (default:\n"
	"                            URL/oauth2/token, or $TOKEND_TOKEN_URL); needed when\n"
	"                            the admin API has a listener of its own\n"
	"  create --idempotency-key K  a retried create returns the first key, never a\n"
	"                            second one (a key is generated for every run)\n"
	"  create --account ID       optional: default the credentials' own account\n"
	"$TOKEND_ACCOUNT gives create and list their --account when it is absent\n"
	"(locally and remotely).\n"
	"  delete --force            (as locally) also delete a key used in the last 24 hours\n"
	"  list                      every account the credentials may read\n"
	"The credentials are an API key with the scopes tokend:admin:read and\n"
	"tokend:admin:write (tokend:operator: every account), from the environment only:\n"
	"$TOKEND_CLIENT_ID and $TOKEND_CLIENT_SECRET. https checks the server certificate\n"
	"against the system CAs (or $SSL_CERT_FILE); each request has 10 s at most.\n"
	"An empty TOKEND_URL= selects the local mode.\n"
	"\n"
	"Exit status: 0 done, 1 refused (with a reason), 2 usage error.\n";

enum {
	OPT_URL = 256, OPT_TOKEN_URL, OPT_PAGE_SIZE, OPT_IDEM, OPT_FORCE, OPT_ACCOUNT, OPT_NAME,
	OPT_SCOPES, OPT_AUDIENCE, OPT_SUBJECT, OPT_EXPIRES_IN, OPT_EXPIRES_AT, OPT_LIFETIME, OPT_STATE,
	OPT_REASON, OPT_CREDENTIAL, OPT_RATE_LIMIT, OPT_ROLE, OPT_MEMBER, OPT_ENVIRONMENT, OPT_KIND,
	OPT_CLAIMS, OPT_OVERLAP, OPT_UNUSED_SINCE, OPT_SORT, OPT_ORDER, OPT_PUBLISHABLE, OPT_ORIGIN,
};

static const struct option key_opts[] = {
	{ "url", required_argument, NULL, OPT_URL },
	{ "token-url", required_argument, NULL, OPT_TOKEN_URL },
	{ "page-size", required_argument, NULL, OPT_PAGE_SIZE },     /* hidden: tests */
	{ "idempotency-key", required_argument, NULL, OPT_IDEM },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "account", required_argument, NULL, OPT_ACCOUNT },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "scopes", required_argument, NULL, OPT_SCOPES },
	{ "scope", required_argument, NULL, OPT_SCOPES },
	{ "audience", required_argument, NULL, OPT_AUDIENCE },
	{ "subject", required_argument, NULL, OPT_SUBJECT },
	{ "expires-in", required_argument, NULL, OPT_EXPIRES_IN },
	{ "expires-at", required_argument, NULL, OPT_EXPIRES_AT },
	{ "token-lifetime", required_argument, NULL, OPT_LIFETIME },
	{ "rate-limit", required_argument, NULL, OPT_RATE_LIMIT },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "reason", required_argument, NULL, OPT_REASON },
	{ "role", required_argument, NULL, OPT_ROLE },
	{ "member", required_argument, NULL, OPT_MEMBER },
	{ "environment", required_argument, NULL, OPT_ENVIRONMENT },
	{ "env", required_argument, NULL, OPT_ENVIRONMENT },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "claims", required_argument, NULL, OPT_CLAIMS },
	{ "publishable", no_argument, NULL, OPT_PUBLISHABLE },
	{ "origin", required_argument, NULL, OPT_ORIGIN },
	{ "overlap", required_argument, NULL, OPT_OVERLAP },
	{ "unused-since", required_argument, NULL, OPT_UNUSED_SINCE },
	{ "sort", required_argument, NULL, OPT_SORT },
	{ "order", required_argument, NULL, OPT_ORDER },
	/* Credentials are never taken from the command line. */
	{ "client-id", required_argument, NULL, OPT_CREDENTIAL },
	{ "client-secret", required_argument, NULL, OPT_CREDENTIAL },
	{ "secret", required_argument, NULL, OPT_CREDENTIAL },
	{ "token", required_argument, NULL, OPT_CREDENTIAL },
	{ "access-token", required_argument, NULL, OPT_CREDENTIAL },
	{ "password", required_argument, NULL, OPT_CREDENTIAL },
	{ NULL, 0, NULL, 0 },
};

/* Options only the remote backend takes. */
static int remote_only(int opt)
{
	return opt == OPT_URL || opt == OPT_TOKEN_URL || opt == OPT_IDEM || opt == OPT_PAGE_SIZE;
}

static const char *opt_name(int code)
{
	for (size_t i = 0; key_opts[i].name; i++)
		if (key_opts[i].val == code)
			return key_opts[i].name;
	return "?";
}

/* Which options each command takes, how many operands, and what it says
 * when the count is wrong. */
static const struct verb_spec {
	const char *verb;
	int nargs;
	const char *wrong_count;
	int opts[20];   /* 0-terminated; --url and --token-url go with every command (remote) */
} verbs[] = {
	{ "create", 0, NULL, { OPT_IDEM, OPT_ACCOUNT, OPT_NAME, OPT_SCOPES, OPT_AUDIENCE, OPT_SUBJECT,
	                       OPT_EXPIRES_IN, OPT_EXPIRES_AT, OPT_LIFETIME, OPT_RATE_LIMIT, OPT_ROLE,
	                       OPT_MEMBER, OPT_ENVIRONMENT, OPT_CLAIMS, OPT_PUBLISHABLE, OPT_ORIGIN, 0 } },
	{ "list", 0, NULL, { OPT_ACCOUNT, OPT_STATE, OPT_PAGE_SIZE, OPT_SUBJECT, OPT_ROLE, OPT_MEMBER,
	                     OPT_ENVIRONMENT, OPT_KIND, OPT_UNUSED_SINCE, OPT_SORT, OPT_ORDER, 0 } },
	{ "show", 1, "expected exactly one key ID", { 0 } },
	{ "rename", 2, "expected KEY_ID and NAME", { 0 } },
	{ "set-rate-limit", 2, "expected KEY_ID and a number of tokens per minute (or none)", { 0 } },
	{ "disable", 1, "expected exactly one key ID", { 0 } },
	{ "enable", 1, "expected exactly one key ID", { 0 } },
	{ "revoke", 1, "expected exactly one key ID", { OPT_REASON, 0 } },
	{ "delete", 1, "expected exactly one key ID", { OPT_FORCE, 0 } },
	{ "rotate-secret", 1, "expected exactly one key ID", { OPT_OVERLAP, 0 } },
};

/* The options and operands as given, before each command's own checks. */
typedef struct key_args {
	const char *account, *name, *scopes, *subject, *expires_in, *expires_at, *lifetime, *rate_limit;
	const char *role, *member, *environment, *kind, *claims;
	const char *unused_since, *sort, *order;
	const char *pos[2];
} key_args;

/* Refuse a malformed key ID before any database or network work. */
static void check_key_id(const char *id)
{
	tk_keyfmt_status st = tk_key_id_check(id, strlen(id));
	if (st == TK_KEYFMT_OK)
		return;
	/* Never echo the value: it may be a secret pasted in the wrong place. */
	if (tk_secret_check(id, strlen(id)) == TK_KEYFMT_OK || strncmp(id, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0)
		cli_fail(CLI_REFUSED, "that is not a key ID but looks like a secret (tks_...): give the key ID "
		         "(tk_...); if the secret was exposed, revoke the key");
	cli_fail(CLI_REFUSED, "malformed key ID (%s): key IDs are tk_ followed by 28 letters and digits", tk_keyfmt_strerror(st));
}

/* NULL if `a` is an acceptable audience, else the reason. */
static const char *check_audience(const char *a)
{
	size_t n = strlen(a);
	if (n == 0 || n > 255)
		return "must be 1-255 characters";
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)a[i];
		if (ch <= 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
			return "must be printable ASCII without spaces, quotes or backslashes";
	}
	return NULL;
}

static void add_audience(tk_key_request *rq, const char *a)
{
	const char *why = check_audience(a);
	if (why)
		cli_fail(CLI_USAGE, "--audience '%.80s': %s", a, why);
	size_t j;
	json_t *v;
	json_array_foreach(rq->audiences, j, v)
		if (strcmp(json_string_value(v), a) == 0)
			cli_fail(CLI_USAGE, "--audience '%.80s' given twice", a);
	if (json_array_size(rq->audiences) >= 16)
		cli_fail(CLI_USAGE, "--audience: at most 16 audiences");
	if (json_array_append_new(rq->audiences, json_string(a)) != 0)
		cli_fail(CLI_REFUSED, "out of memory");
}

static void check_account(const char *account)
{
	if (account && (!*account || strlen(account) > 63))
		cli_fail(CLI_USAGE, "--account: 1-63 characters");
}

/* --role, --member, --environment, --claims: their shape (the rules are the
 * database's: an unknown role or member, a reserved claim name...). */
static void check_model_options(tk_key_request *rq, const key_args *a)
{
	const char *why;
	if (a->role && (!*a->role || strlen(a->role) > 63 || strspn(a->role, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(a->role)))
		cli_fail(CLI_USAGE, "--role: 1-63 characters [a-z0-9_.-]");
	if (a->member && (!*a->member || strlen(a->member) > 128 || (why = cli_check_name(a->member)) != NULL))
		cli_fail(CLI_USAGE, "--member: 1-128 printable characters");
	if (a->environment && strcmp(a->environment, "live") && strcmp(a->environment, "test"))
		cli_fail(CLI_USAGE, "--environment: live or test");
	rq->role = a->role;
	rq->member = a->member;
	rq->environment = a->environment;
	if (a->claims) {
		json_error_t e;
		rq->claims = json_loads(a->claims, JSON_REJECT_DUPLICATES, &e);
		if (!json_is_object(rq->claims))
			cli_fail(CLI_USAGE, "--claims: a JSON object, e.g. '{\"plan\":\"pro\"}'%s%s",
			         rq->claims ? "" : ": ", rq->claims ? "" : e.text);
	}
}

/* The options of every command: which ones this command and backend take. */
static void parse_options(int argc, char **argv, const struct verb_spec *vs, const tk_keys_backend *be,
                          tk_key_request *rq, key_args *a)
{
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", key_opts, NULL)) != -1) {
		if (c == OPT_CREDENTIAL)
			cli_fail(CLI_USAGE, "credentials are never taken from the command line (they would show in the "
			         "process list and shell history): set TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET "
			         "in the environment");
		if (c < OPT_URL)
			cli_fail(CLI_USAGE, "key %s: see tokend key --help", vs->verb);
		int ok = c == OPT_URL || c == OPT_TOKEN_URL;
		for (int i = 0; vs->opts[i]; i++)
			ok |= vs->opts[i] == c;
		if (!ok)
			cli_fail(CLI_USAGE, "key %s: --%s is not an option of this command (see tokend key --help)",
			         vs->verb, opt_name(c));
		if (remote_only(c) && !be->remote_options)
			cli_fail(CLI_USAGE, "key %s: --%s is for the remote mode only (--url URL or $TOKEND_URL)",
			         vs->verb, opt_name(c));
		switch (c) {
		case OPT_URL: rq->url = optarg; break;
		case OPT_TOKEN_URL: rq->token_url = optarg; break;
		case OPT_IDEM: rq->idem = optarg; break;
		case OPT_FORCE: rq->force = 1; break;
		case OPT_ACCOUNT: a->account = optarg; break;
		case OPT_NAME: a->name = optarg; break;
		case OPT_SCOPES:
			if (a->scopes)
				cli_fail(CLI_USAGE, "--scopes given twice: list all scopes in one quoted argument");
			a->scopes = optarg;
			break;
		case OPT_AUDIENCE: add_audience(rq, optarg); break;
		case OPT_SUBJECT: a->subject = optarg; break;
		case OPT_EXPIRES_IN: a->expires_in = optarg; break;
		case OPT_EXPIRES_AT: a->expires_at = optarg; break;
		case OPT_LIFETIME: a->lifetime = optarg; break;
		case OPT_STATE: rq->state = optarg; break;
		case OPT_REASON: rq->reason = optarg; break;
		case OPT_OVERLAP: rq->overlap_arg = optarg; break;
		case OPT_UNUSED_SINCE: a->unused_since = optarg; break;
		case OPT_SORT: a->sort = optarg; break;
		case OPT_ORDER: a->order = optarg; break;
		case OPT_RATE_LIMIT: a->rate_limit = optarg; break;
		case OPT_ROLE: a->role = optarg; break;
		case OPT_MEMBER: a->member = optarg; break;
		case OPT_ENVIRONMENT: a->environment = optarg; break;
		case OPT_KIND: a->kind = optarg; break;
		case OPT_CLAIMS: a->claims = optarg; break;
		case OPT_PUBLISHABLE: rq->publishable = 1; break;
		case OPT_ORIGIN:
			/* Its rules (scheme://host[:port], no default port...) are the database's. */
			if (!*optarg || strlen(optarg) > 255 || cli_check_name(optarg) != NULL || strchr(optarg, ' '))
				cli_fail(CLI_USAGE, "--origin: an origin scheme://host[:port], at most 255 printable characters");
			if (json_array_size(rq->origins) >= 20)
				cli_fail(CLI_USAGE, "--origin: at most 20 origins");
			if (json_array_append_new(rq->origins, json_string(optarg)) != 0)
				cli_fail(CLI_REFUSED, "out of memory");
			break;
		case OPT_PAGE_SIZE: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (end == optarg || *end || v < 1 || v > 200)
				cli_fail(CLI_USAGE, "--page-size: a whole number from 1 to 200");
			rq->page_size = (int)v;
			break;
		}
		default:
			cli_fail(CLI_USAGE, "key %s: see tokend key --help", vs->verb);
		}
	}
	int npos = argc - optind;
	if (npos != vs->nargs) {
		if (vs->nargs == 0)
			cli_fail(CLI_USAGE, "key %s: unexpected argument '%.40s'", vs->verb, argv[optind]);
		cli_fail(CLI_USAGE, "key %s: %s", vs->verb, vs->wrong_count);
	}
	for (int i = 0; i < npos; i++)
		a->pos[i] = argv[optind + i];
}

static void parse_create(tk_key_request *rq, const key_args *a, const tk_keys_backend *be)
{
	const char *why;
	if (!a->account && be->account_required)
		cli_fail(CLI_USAGE, "key create: --account is required");
	if (!a->name)
		cli_fail(CLI_USAGE, "key create: --name is required");
	if (a->role && a->scopes)
		cli_fail(CLI_USAGE, "key create: give --role or --scopes, not both");
	if (!a->scopes && !a->role)
		cli_fail(CLI_USAGE, "key create: --scopes is required (e.g. --scopes \"api:read api:write\"), or --role");
	if (a->member && a->subject)
		cli_fail(CLI_USAGE, "key create: a member key's subject is its member: give --member or --subject, not both");
	if (rq->publishable && (a->member || a->subject))
		cli_fail(CLI_USAGE, "key create: a publishable key is an account key: no --member or --subject");
	if (rq->publishable && json_array_size(rq->origins) == 0)
		cli_fail(CLI_USAGE, "key create: a publishable key needs --origin (the browser origins it may be used from)");
	if (!rq->publishable && json_array_size(rq->origins))
		cli_fail(CLI_USAGE, "key create: --origin is for publishable keys (--publishable) only");
	check_model_options(rq, a);
	check_account(a->account);
	rq->account = a->account;
	if ((why = cli_check_name(a->name)) != NULL)
		cli_fail(CLI_USAGE, "--name: %s", why);
	rq->name = a->name;
	tk_scopes set = { 0 };
	if (a->scopes && tk_scopes_parse(a->scopes, strlen(a->scopes), &set, &why) != 0)
		cli_fail(CLI_USAGE, "--scopes: %s", why);
	if (a->scopes && set.n == 0) {
		tk_scopes_free(&set);
		cli_fail(CLI_USAGE, "--scopes: a key needs at least one scope");
	}
	for (size_t j = 0; j < set.n; j++)
		if (json_array_append_new(rq->scopes, json_string(set.v[j])) != 0) {
			tk_scopes_free(&set);
			cli_fail(CLI_REFUSED, "out of memory");
		}
	tk_scopes_free(&set);
	if (a->subject) {
		why = cli_check_name(a->subject);
		if (why || strlen(a->subject) > 255)
			cli_fail(CLI_USAGE, "--subject: %s", why ? why : "must be at most 255 bytes");
		if (strncmp(a->subject, TK_KEY_ID_PREFIX, strlen(TK_KEY_ID_PREFIX)) == 0 ||
		    strncmp(a->subject, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0)
			cli_fail(CLI_USAGE, "--subject: must not start with tk_ or tks_ (reserved for key IDs and secrets)");
		rq->subject = a->subject;
	}
	if (a->expires_in && a->expires_at)
		cli_fail(CLI_USAGE, "give --expires-in or --expires-at, not both");
	int64_t expiry = 0, now = (int64_t)time(NULL);
	if (a->expires_in) {
		int64_t secs;
		if (tk_duration_parse(a->expires_in, &secs, &why) != 0)
			cli_fail(CLI_USAGE, "--expires-in '%.40s': %s", a->expires_in, why);
		expiry = now + secs;
	}
	if (a->expires_at) {
		if (tk_rfc3339_parse(a->expires_at, &expiry, &why) != 0)
			cli_fail(CLI_USAGE, "--expires-at '%.40s': %s", a->expires_at, why);
		if (expiry <= now)
			cli_fail(CLI_REFUSED, "--expires-at: %s is in the past", a->expires_at);
	}
	if (expiry)
		tk_rfc3339_format(expiry, rq->expires_at);
	if (a->lifetime) {
		if (tk_duration_parse(a->lifetime, &rq->lifetime, &why) != 0)
			cli_fail(CLI_USAGE, "--token-lifetime '%.40s': %s", a->lifetime, why);
		rq->lifetime_arg = a->lifetime;
	}
	if (a->rate_limit)
		rq->rate_limit = cli_parse_rate_limit(a->rate_limit);
	if (rq->idem) {
		size_t n = strlen(rq->idem);
		if (n == 0 || n > 255 || cli_check_name(rq->idem) != NULL || strspn(rq->idem, " ") == n)
			cli_fail(CLI_USAGE, "--idempotency-key: 1-255 printable characters");
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)rq->idem[i] >= 0x7f)
				cli_fail(CLI_USAGE, "--idempotency-key: printable ASCII only");
	}
}

static void parse_list(tk_key_request *rq, const key_args *a)
{
	check_model_options(rq, a);
	check_account(a->account);
	rq->account = a->account;
	/* The filters, checked by the table the server uses (db/keylist.c). */
	const char *given[][2] = { { "state", rq->state }, { "subject", a->subject },
	                           { "unused_since", a->unused_since }, { "role", a->role },
	                           { "member", a->member }, { "environment", a->environment },
	                           { "kind", a->kind } };
	for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
		if (!given[i][1])
			continue;
		const tk_keyfilter *f = tk_keyfilter_find(given[i][0]);
		char param[TK_KEYLIST_VALUE_MAX];
		const char *why = f ? f->check(given[i][1], param) : "is not a filter";
		if (why)
			cli_fail(CLI_USAGE, "--%s: %s", strcmp(given[i][0], "unused_since") == 0 ? "unused-since" : given[i][0],
			         why);
		rq->filters[f - tk_keyfilters] = given[i][1];
	}
	if (a->sort && !tk_keysort_find(a->sort))
		cli_fail(CLI_USAGE, "--sort: one of created_at, last_used_at, name");
	if (a->order && strcmp(a->order, "asc") && strcmp(a->order, "desc"))
		cli_fail(CLI_USAGE, "--order: asc or desc");
	rq->sort = a->sort ? a->sort : a->order ? "created_at" : NULL;
	rq->desc = a->order && strcmp(a->order, "desc") == 0;
}

/* The commands on one key: show, rename, set-rate-limit, disable, enable, revoke, delete. */
static void parse_key_op(tk_key_request *rq, const key_args *a)
{
	const char *why;
	if (strcmp(rq->verb, "rename") == 0) {
		if ((why = cli_check_name(a->pos[1])) != NULL)
			cli_fail(CLI_USAGE, "name: %s", why);
		rq->name = a->pos[1];
	} else if (strcmp(rq->verb, "set-rate-limit") == 0) {
		rq->rate_limit = cli_parse_rate_limit(a->pos[1]);
	} else if (strcmp(rq->verb, "rotate-secret") == 0) {
		if (!rq->overlap_arg)
			cli_fail(CLI_USAGE, "key rotate-secret: --overlap is required: how long the current secret keeps "
			         "working, e.g. --overlap 24h (0: it stops now)");
		size_t zeros = strspn(rq->overlap_arg, "0");
		if (zeros > 0 && (rq->overlap_arg[zeros] == '\0' ||
		                  (strchr("smhdw", rq->overlap_arg[zeros]) && rq->overlap_arg[zeros + 1] == '\0')))
			rq->overlap = 0;   /* 0, 0s, 0h, ...: the old secret stops now */
		else if (tk_duration_parse(rq->overlap_arg, &rq->overlap, &why) != 0)
			cli_fail(CLI_USAGE, "--overlap '%.40s': %s", rq->overlap_arg, why);
		if (rq->overlap < 0 || rq->overlap > TK_ROTATE_OVERLAP_MAX)
			cli_fail(CLI_USAGE, "--overlap '%.40s': at most 30 days", rq->overlap_arg);
	} else if (strcmp(rq->verb, "revoke") == 0 && rq->reason) {
		size_t n = strlen(rq->reason);
		if (n > 500)
			cli_fail(CLI_USAGE, "--reason: at most 500 bytes");
		if (n && (why = tk_input_text_unsafe(rq->reason, n)) != NULL)
			cli_fail(CLI_USAGE, "--reason: %s", why);
		if (n == 0)
			rq->reason = NULL;     /* an empty reason is no reason */
	}
	check_key_id(a->pos[0]);
	rq->id = a->pos[0];
}

/* Exit 1 with the reason of a refusal, worded for the command line. */
static _Noreturn void refused(const tk_key_request *rq, const tk_key_refusal *ref)
{
	if (strcmp(ref->kind, "not_found") == 0 && rq->id)
		cli_fail(CLI_REFUSED, "no key %s", rq->id);
	if (strcmp(ref->kind, "recently_used") == 0) {
		/* The API asks to confirm; here that is --force. */
		static const char ask[] = "; confirm to delete it";
		size_t n = strlen(ref->why), k = sizeof(ask) - 1;
		int cut = n >= k && strcmp(ref->why + n - k, ask) == 0;
		cli_fail(CLI_REFUSED, "%.*s; to delete it anyway, run again with --force", (int)(cut ? n - k : n),
		         ref->why);
	}
	cli_fail(CLI_REFUSED, "%s", ref->why[0] ? ref->why : "refused");
}

/* A backend's key object, normalised for printing (exits 1 if it is none). */
static json_t *normalised(json_t *k, const tk_keys_backend *be)
{
	json_t *o = cli_key_normalise(k);
	json_decref(k);
	if (!o)
		cli_fail(CLI_REFUSED, "unexpected answer from the %s backend: not a key", be->name);
	return o;
}

static int run(const tk_keys_backend *be, tk_key_request *rq)
{
	tk_key_refusal ref = { "", "" };
	json_t *k = NULL;
	const char *done = NULL;
	int rc;
	be->open(rq);
	if (strcmp(rq->verb, "create") == 0) {
		char secret[TK_SECRET_MAX + 1] = "";
		if (be->create(rq, &k, secret, &ref) != 0)
			refused(rq, &ref);
		k = normalised(k, be);
		const char *kind = json_string_value(json_object_get(k, "kind"));
		if (!secret[0] && !(kind && strcmp(kind, "publishable") == 0)) {
			/* An idempotent replay: this key was made by an earlier request. */
			char id[TK_KEY_ID_MAX + 1];
			snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(k, "client_id")));
			cli_key_print_changed(k, NULL);
			fflush(stdout);
			json_decref(k);
			cli_fail(CLI_REFUSED, "no new key: key %s was created earlier with this Idempotency-Key, and its "
			         "secret was shown only then; if it was lost, delete that key and create a new one", id);
		}
		cli_key_print_created(k, secret);
		tk_wipe(secret, sizeof(secret));
		json_decref(k);
		return CLI_OK;
	}
	if (strcmp(rq->verb, "list") == 0) {
		json_t *keys = NULL, *out = json_array(), *v;
		size_t i;
		if (!out)
			cli_fail(CLI_REFUSED, "out of memory");
		if (be->list(rq, &keys, &ref) != 0)
			refused(rq, &ref);
		json_array_foreach(keys, i, v)
			json_array_append_new(out, normalised(json_incref(v), be));
		json_decref(keys);
		cli_key_print_list(out);
		json_decref(out);
		return CLI_OK;
	}
	if (strcmp(rq->verb, "rotate-secret") == 0) {
		char secret[TK_SECRET_MAX + 1] = "";
		if (be->rotate_secret(rq, &k, secret, &ref) != 0)
			refused(rq, &ref);
		k = normalised(k, be);
		cli_key_print_rotated(k, secret);
		tk_wipe(secret, sizeof(secret));
		json_decref(k);
		return CLI_OK;
	}
	if (strcmp(rq->verb, "show") == 0)
		rc = be->show(rq, &k, &ref);
	else if (strcmp(rq->verb, "rename") == 0)
		rc = be->rename(rq, &k, &ref), done = "Renamed";
	else if (strcmp(rq->verb, "set-rate-limit") == 0)
		rc = be->set_rate_limit(rq, &k, &ref), done = "Rate limit set for";
	else if (strcmp(rq->verb, "disable") == 0)
		rc = be->disable(rq, &k, &ref), done = "Disabled";
	else if (strcmp(rq->verb, "enable") == 0)
		rc = be->enable(rq, &k, &ref), done = "Enabled";
	else if (strcmp(rq->verb, "revoke") == 0)
		rc = be->revoke(rq, &k, &ref), done = "Revoked";
	else {
		rc = be->delete_key(rq, &k, &ref);
		if (rc == 0) {
			json_decref(k);
			cli_key_print_deleted(rq->id);
			return CLI_OK;
		}
	}
	if (rc != 0)
		refused(rq, &ref);
	k = normalised(k, be);
	cli_key_print_changed(k, done);
	json_decref(k);
	return CLI_OK;
}

int cli_key(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(key_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	const char *verb = argv[1];
	const struct verb_spec *vs = NULL;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verb, verbs[i].verb) == 0)
			vs = &verbs[i];
	if (!vs) {
		if (verb[0] == '-')
			cli_fail(CLI_USAGE, "key: give the command first: tokend key COMMAND [OPTIONS] "
			         "(see tokend key --help)");
		cli_fail(CLI_USAGE, "key: unknown command '%.40s' (see tokend key --help)", verb);
	}
	const tk_keys_backend *be = cli_wants_remote(argc, argv) ? &tk_keys_remote : &tk_keys_local;
	tk_key_request rq;
	key_args a;
	memset(&rq, 0, sizeof(rq));
	memset(&a, 0, sizeof(a));
	rq.verb = vs->verb;
	rq.scopes = json_array();
	rq.audiences = json_array();
	rq.origins = json_array();
	if (!rq.scopes || !rq.audiences || !rq.origins)
		cli_fail(CLI_REFUSED, "out of memory");
	parse_options(argc - 1, argv + 1, vs, be, &rq, &a);
	/* $TOKEND_ACCOUNT: the account of create and list when --account is absent. */
	const char *env_account = getenv("TOKEND_ACCOUNT");
	if (!a.account && env_account && *env_account && (strcmp(verb, "create") == 0 || strcmp(verb, "list") == 0))
		a.account = env_account;
	if (strcmp(verb, "create") == 0)
		parse_create(&rq, &a, be);
	else if (strcmp(verb, "list") == 0)
		parse_list(&rq, &a);
	else
		parse_key_op(&rq, &a);
	int rc = run(be, &rq);
	be->close();
	json_decref(rq.scopes);
	json_decref(rq.audiences);
	json_decref(rq.origins);
	json_decref(rq.claims);
	return rc;
}
