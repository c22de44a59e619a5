/*
 * cli_key.c - `tokend key create|list|show|rename|disable|enable|revoke|delete`.
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
#include "db.h"

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
	"  list [--account ID] [--state enabled|disabled|revoked|expired]\n"
	"      List keys (masked). Revoked keys stay listed; deleted keys are not shown.\n"
	"  show KEY_ID               Show one key.\n"
	"  rename KEY_ID NAME        Change a key's display name.\n"
	"  set-rate-limit KEY_ID N|none\n"
	"                            Change or remove a key's token rate limit (per minute).\n"
	"  disable KEY_ID            Stop issuing tokens for the key (reversible).\n"
	"  enable KEY_ID             Re-enable a disabled key (never a revoked one).\n"
	"  revoke KEY_ID [--reason TEXT]\n"
	"                            Revoke for good: the key stays listed as revoked.\n"
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
	"  delete --force            (as locally) also delete a key used in the last 24 hours\n"
	"  list                      every account the credentials may read\n"
	"The credentials are an API key with the scopes tokend:admin:read and\n"
	"tokend:admin:write (tokend:operator: every account), from the environment only:\n"
	"$TOKEND_CLIENT_ID and $TOKEND_CLIENT_SECRET. https checks the server certificate\n"
	"against the system CAs (or $SSL_CERT_FILE); each request has 10 s at most.\n"
	"An empty TOKEND_URL= selects the local mode.\n"
	"\n"
	"Exit status: 0 done, 1 refused (with a reason), 2 usage error.\n";

#define KEY_COLUMNS \
	"k.id, k.account_id, k.name, k.secret_hint, array_to_json(k.scopes), " \
	"array_to_json(k.audiences), k.subject, tokend_key_state(k), tokend_ts(k.created_at), " \
	"k.created_by, tokend_ts(k.expires_at), tokend_ts(k.last_used_at), tokend_ts(k.disabled_at), " \
	"tokend_ts(k.revoked_at), k.revoke_reason, k.token_lifetime, k.revoked_by, k.rate_limit"

static json_t *key_json(const PGresult *r, int i)
{
	json_t *o = json_object();
	char masked[32];
	snprintf(masked, sizeof(masked), "%s...%s", TK_SECRET_PREFIX, PQgetvalue(r, i, 3));
	json_object_set_new(o, "client_id", cli_col_str(r, i, 0));
	json_object_set_new(o, "account", cli_col_str(r, i, 1));
	json_object_set_new(o, "name", cli_col_str(r, i, 2));
	json_object_set_new(o, "hint", cli_col_str(r, i, 3));
	json_object_set_new(o, "masked", json_string(masked));
	json_object_set_new(o, "scopes", cli_col_json(r, i, 4));
	json_object_set_new(o, "audiences", cli_col_json(r, i, 5));
	json_object_set_new(o, "subject", cli_col_str(r, i, 6));
	json_object_set_new(o, "state", cli_col_str(r, i, 7));
	json_object_set_new(o, "created_at", cli_col_str(r, i, 8));
	json_object_set_new(o, "created_by", cli_col_str(r, i, 9));
	json_object_set_new(o, "expires_at", cli_col_str(r, i, 10));
	json_object_set_new(o, "last_used_at", cli_col_str(r, i, 11));
	json_object_set_new(o, "disabled_at", cli_col_str(r, i, 12));
	json_object_set_new(o, "revoked_at", cli_col_str(r, i, 13));
	json_object_set_new(o, "revoked_by", cli_col_str(r, i, 16));
	json_object_set_new(o, "revoke_reason", cli_col_str(r, i, 14));
	json_object_set_new(o, "token_lifetime", cli_col_int(r, i, 15));
	json_object_set_new(o, "rate_limit", cli_col_int(r, i, 17));
	return o;
}

static const char *jstr(json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : dflt;
}

/* The text view of a key (the object key_json builds, or the admin API's). */
void cli_key_print_text(json_t *k)
{
	json_t *scopes = json_object_get(k, "scopes"), *auds = json_object_get(k, "audiences"), *v;
	json_t *lt = json_object_get(k, "token_lifetime");
	size_t j;
	printf("Key:            %s\n", jstr(k, "client_id", ""));
	printf("Account:        %s\n", jstr(k, "account", ""));
	printf("Name:           %s\n", jstr(k, "name", ""));
	printf("Secret:         %s...%s\n", TK_SECRET_PREFIX, jstr(k, "hint", ""));
	printf("State:          %s\n", jstr(k, "state", ""));
	printf("Scopes:        ");
	json_array_foreach(scopes, j, v)
		printf(" %s", json_string_value(v));
	printf("\nAudiences:     ");
	if (json_array_size(auds) == 0)
		printf(" (server default)");
	json_array_foreach(auds, j, v)
		printf(" %s", json_string_value(v));
	printf("\n");
	printf("Subject:        %s\n", jstr(k, "subject", "(the key ID)"));
	if (json_is_integer(lt))
		printf("Token lifetime: %lld\n", (long long)json_integer_value(lt));
	else
		printf("Token lifetime: (server default)\n");
	json_t *rl = json_object_get(k, "rate_limit");
	if (json_is_integer(rl))
		printf("Rate limit:     %lld tokens per minute\n", (long long)json_integer_value(rl));
	else
		printf("Rate limit:     (none)\n");
	printf("Created:        %s by %s\n", jstr(k, "created_at", ""), jstr(k, "created_by", ""));
	printf("Expires:        %s\n", jstr(k, "expires_at", "never"));
	printf("Last used:      %s\n", jstr(k, "last_used_at", "never"));
	if (jstr(k, "disabled_at", NULL))
		printf("Disabled:       %s\n", jstr(k, "disabled_at", ""));
	if (jstr(k, "revoked_at", NULL))
		printf("Revoked:        %s by %s: %s\n", jstr(k, "revoked_at", ""), jstr(k, "revoked_by", "?"),
		       jstr(k, "revoke_reason", "(no reason given)"));
}

/* The table of `key list` (a JSON array of key objects). */
void cli_key_print_table(json_t *keys)
{
	json_t *k;
	size_t i;
	printf("%-31s %-16s %-20s %-12s %-9s %-20s %-20s %s\n", "KEY", "ACCOUNT", "NAME", "SECRET",
	       "STATE", "CREATED", "LAST USED", "SCOPES");
	json_array_foreach(keys, i, k) {
		json_t *v;
		size_t j;
		char masked[16];
		snprintf(masked, sizeof(masked), "tks_...%s", jstr(k, "hint", ""));
		printf("%-31s %-16.16s %-20.20s %-12s %-9s %-20s %-20s", jstr(k, "client_id", ""),
		       jstr(k, "account", ""), jstr(k, "name", ""), masked, jstr(k, "state", ""),
		       jstr(k, "created_at", ""), jstr(k, "last_used_at", "never"));
		json_array_foreach(json_object_get(k, "scopes"), j, v)
			printf(" %s", json_string_value(v));
		printf("\n");
	}
}

/* A new key with its secret, shown once (JSON: the key object plus client_secret). */
void cli_key_print_created(json_t *k, const char *secret)
{
	if (cli.json) {
		json_t *o = json_deep_copy(k);
		json_object_set_new(o, "client_secret", json_string(secret));
		cli_print_json(o);
	} else {
		printf("Created key %s for account %s.\n\n", jstr(k, "client_id", ""), jstr(k, "account", ""));
		printf("  client_id:     %s\n", jstr(k, "client_id", ""));
		printf("  client_secret: %s\n\n", secret);
		printf("The secret is shown only this once: store it now. It cannot be recovered;\n"
		       "if it is lost, create a new key and delete this one.\n\n");
		cli_key_print_text(k);
	}
	fflush(stdout);
}

/* A key after a change ("Renamed", ...; NULL for `show`). */
void cli_key_print_changed(json_t *k, const char *verb)
{
	if (cli.json) {
		cli_print_json(json_incref(k));
		return;
	}
	if (verb)
		printf("%s key %s.\n", verb, jstr(k, "client_id", ""));
	cli_key_print_text(k);
}

void cli_key_print_deleted(const char *id)
{
	if (cli.json) {
		json_t *o = json_object();
		json_object_set_new(o, "client_id", json_string(id));
		json_object_set_new(o, "state", json_string("deleted"));
		cli_print_json(o);
	} else
		printf("Deleted key %s. It no longer appears in listings; the audit log keeps its history.\n", id);
}

/* Refuse a malformed key ID before any database or network work. */
void cli_check_key_id(const char *id)
{
	tk_keyfmt_status st = tk_key_id_check(id, strlen(id));
	if (st == TK_KEYFMT_OK)
		return;
	/* Never echo the value: it may be a secret pasted in the wrong place. */
	if (strncmp(id, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0)
		cli_fail(CLI_REFUSED, "that is not a key ID but looks like a secret (tks_...): give the key ID "
		         "(tk_...); if the secret was exposed, revoke the key");
	cli_fail(CLI_REFUSED, "malformed key ID (%s): key IDs are tk_ followed by 28 letters and digits", tk_keyfmt_strerror(st));
}

const char *cli_check_audience(const char *a)
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

static int key_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ "name", required_argument, NULL, 'n' },
		{ "scopes", required_argument, NULL, 's' },
		{ "scope", required_argument, NULL, 's' },
		{ "audience", required_argument, NULL, 'A' },
		{ "subject", required_argument, NULL, 'S' },
		{ "expires-in", required_argument, NULL, 'e' },
		{ "expires-at", required_argument, NULL, 'E' },
		{ "token-lifetime", required_argument, NULL, 'l' },
		{ "rate-limit", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *account = NULL, *name = NULL, *scopes = NULL, *subject = NULL;
	char rate_text[16] = "";
	const char *expires_in = NULL, *expires_at = NULL, *lifetime = NULL;
	json_t *audiences = json_array();
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': account = optarg; break;
		case 'n': name = optarg; break;
		case 's':
			if (scopes)
				cli_fail(CLI_USAGE, "--scopes given twice: list all scopes in one quoted argument");
			scopes = optarg;
			break;
		case 'A': {
			const char *why = cli_check_audience(optarg);
			if (why)
				cli_fail(CLI_USAGE, "--audience '%.80s': %s", optarg, why);
			size_t j;
			json_t *v;
			json_array_foreach(audiences, j, v)
				if (strcmp(json_string_value(v), optarg) == 0)
					cli_fail(CLI_USAGE, "--audience '%.80s' given twice", optarg);
			if (json_array_size(audiences) >= 16)
				cli_fail(CLI_USAGE, "--audience: at most 16 audiences");
			json_array_append_new(audiences, json_string(optarg));
			break;
		}
		case 'S': subject = optarg; break;
		case 'e': expires_in = optarg; break;
		case 'E': expires_at = optarg; break;
		case 'l': lifetime = optarg; break;
		case 'r': {
			int rl = cli_parse_rate_limit(optarg);
			if (rl)
				snprintf(rate_text, sizeof(rate_text), "%d", rl);
			else
				rate_text[0] = '\0';
			break;
		}
		default: cli_fail(CLI_USAGE, "key create: see tokend key --help");
		}
	}
	if (optind != argc)
		cli_fail(CLI_USAGE, "key create: unexpected argument '%.40s'", argv[optind]);
	if (!account)
		cli_fail(CLI_USAGE, "key create: --account is required");
	if (!name)
		cli_fail(CLI_USAGE, "key create: --name is required");
	if (!scopes)
		cli_fail(CLI_USAGE, "key create: --scopes is required (e.g. --scopes \"api:read api:write\")");
	const char *why = cli_check_name(name);
	if (why)
		cli_fail(CLI_USAGE, "--name: %s", why);
	tk_scopes set = { 0 };
	if (tk_scopes_parse(scopes, strlen(scopes), &set, &why) != 0)
		cli_fail(CLI_USAGE, "--scopes: %s", why);
	if (set.n == 0)
		cli_fail(CLI_USAGE, "--scopes: a key needs at least one scope");
	if (subject) {
		why = cli_check_name(subject);
		if (why || strlen(subject) > 255)
			cli_fail(CLI_USAGE, "--subject: %s", why ? why : "must be at most 255 bytes");
		if (strncmp(subject, TK_KEY_ID_PREFIX, strlen(TK_KEY_ID_PREFIX)) == 0 ||
		    strncmp(subject, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0)
			cli_fail(CLI_USAGE, "--subject: must not start with tk_ or tks_ (reserved for key IDs and secrets)");
	}
	if (expires_in && expires_at)
		cli_fail(CLI_USAGE, "give --expires-in or --expires-at, not both");
	int64_t expiry = 0, now = (int64_t)time(NULL);
	char expiry_text[32] = "";
	if (expires_in) {
		int64_t secs;
		if (tk_duration_parse(expires_in, &secs, &why) != 0)
			cli_fail(CLI_USAGE, "--expires-in '%.40s': %s", expires_in, why);
		expiry = now + secs;
	}
	if (expires_at) {
		if (tk_rfc3339_parse(expires_at, &expiry, &why) != 0)
			cli_fail(CLI_USAGE, "--expires-at '%.40s': %s", expires_at, why);
		if (expiry <= now)
			cli_fail(CLI_REFUSED, "--expires-at: %s is in the past", expires_at);
	}
	if (expiry)
		tk_rfc3339_format(expiry, expiry_text);
	tk_config *cfg = cli_config();
	char lifetime_text[24] = "";
	if (lifetime) {
		int64_t secs;
		if (tk_duration_parse(lifetime, &secs, &why) != 0)
			cli_fail(CLI_USAGE, "--token-lifetime '%.40s': %s", lifetime, why);
		if (secs > cfg->token_lifetime_max) {
			char max[32];
			tk_duration_format(cfg->token_lifetime_max, max);
			cli_fail(CLI_REFUSED, "--token-lifetime %s is above the server maximum of %s "
			         "(token_lifetime_max)", lifetime, max);
		}
		snprintf(lifetime_text, sizeof(lifetime_text), "%lld", (long long)secs);
	}

	/* The pepper is needed before anything is generated. */
	unsigned char pepper[TK_PEPPER_MAX];
	size_t pepper_len = 0;
	char err[600];
	if (tk_config_pepper(cfg, pepper, &pepper_len, err, sizeof(err)) != 0)
		cli_fail(CLI_REFUSED, "%s", err);
	tk_hasher *hasher = tk_hasher_new(pepper, pepper_len);
	tk_wipe(pepper, sizeof(pepper));
	if (!hasher)
		cli_fail(CLI_REFUSED, "cannot set up secret hashing");

	char *scope_arr = NULL;
	{
		json_t *arr = json_array();
		for (size_t j = 0; j < set.n; j++)
			json_array_append_new(arr, json_string(set.v[j]));
		/* PostgreSQL array literal via json: let the server convert. */
		scope_arr = json_dumps(arr, JSON_COMPACT);
		json_decref(arr);
	}
	char *aud_arr = json_dumps(audiences, JSON_COMPACT);
	tk_scopes_free(&set);

	PGresult *r = NULL;
	char key_id[TK_KEY_ID_LEN + 1], secret[TK_SECRET_LEN + 1], hint[TK_HINT_LEN + 1];
	unsigned char hash[TK_HASH_LEN];
	char hash_hex[2 * TK_HASH_LEN + 3];
	for (int attempt = 0; attempt < 3; attempt++) {
		if (tk_key_id_generate(key_id) != TK_KEYFMT_OK || tk_secret_generate(secret) != TK_KEYFMT_OK) {
			tk_hasher_free(hasher);
			cli_fail(CLI_REFUSED, "the random number generator failed: no key was created");
		}
		if (tk_hasher_hash(hasher, secret, TK_SECRET_LEN, hash) != 0) {
			tk_wipe(secret, sizeof(secret));
			tk_hasher_free(hasher);
			cli_fail(CLI_REFUSED, "hashing the secret failed: no key was created");
		}
		tk_secret_hint(secret, hint);
		hash_hex[0] = '\\';
		hash_hex[1] = 'x';
		for (int j = 0; j < TK_HASH_LEN; j++)
			snprintf(hash_hex + 2 + 2 * j, 3, "%02x", hash[j]);
		/* The same database function as the admin API, as the operator
		 * (no caller scopes or expiry to bound it): the rules live once. */
		const char *p[] = { key_id, account, name, hash_hex, hint, scope_arr, aud_arr,
		                    subject, expiry ? expiry_text : NULL, lifetime ? lifetime_text : NULL,
		                    rate_text[0] ? rate_text : NULL };
		r = tk_db_exec(cli_db(),
			"SELECT tokend_admin_create_key(tokend_actor(), NULL, $2, $1, $3, $4::bytea, $5,"
			"  ARRAY(SELECT jsonb_array_elements_text($6::jsonb)),"
			"  ARRAY(SELECT jsonb_array_elements_text($7::jsonb)), $8, $9::timestamptz, $10::integer,"
			"  NULL, NULL, $11::integer, true, NULL, NULL)", 11, p);
		tk_wipe(hash_hex, sizeof(hash_hex));
		tk_wipe(hash, sizeof(hash));
		if (tk_db_ok(r) || strcmp(tk_db_sqlstate(r), "23505") != 0)   /* retry only an ID collision */
			break;
		PQclear(r);
		r = NULL;
	}
	tk_hasher_free(hasher);
	free(scope_arr);
	free(aud_arr);
	json_decref(audiences);
	if (!r || !tk_db_ok(r)) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s", r ? tk_db_error(cli.db, r) : "key ID collision");
		tk_wipe(secret, sizeof(secret));
		PQclear(r);
		cli_fail(CLI_REFUSED, "%s", msg);
	}
	PQclear(r);

	const char *p[] = { key_id };
	r = cli_exec("SELECT " KEY_COLUMNS " FROM api_keys k WHERE k.id = $1", 1, p);
	json_t *created = key_json(r, 0);
	cli_key_print_created(created, secret);
	json_decref(created);
	tk_wipe(secret, sizeof(secret));
	PQclear(r);
	return CLI_OK;
}

static int key_list(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "account", required_argument, NULL, 'a' },
		{ "state", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	const char *account = NULL, *state = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': account = optarg; break;
		case 's': state = optarg; break;
		default: cli_fail(CLI_USAGE, "key list: see tokend key --help");
		}
	}
	if (optind != argc)
		cli_fail(CLI_USAGE, "key list: unexpected argument '%.40s'", argv[optind]);
	if (state && strcmp(state, "enabled") && strcmp(state, "disabled") && strcmp(state, "revoked") &&
	    strcmp(state, "expired"))
		cli_fail(CLI_USAGE, "--state: one of enabled, disabled, revoked, expired");
	if (account) {
		const char *p[] = { account };
		PGresult *a = cli_exec("SELECT 1 FROM accounts WHERE id = $1", 1, p);
		int found = PQntuples(a) == 1;
		PQclear(a);
		if (!found)
			cli_fail(CLI_REFUSED, "no account '%s'", account);
	}
	const char *p[] = { account, state };
	PGresult *r = cli_exec("SELECT " KEY_COLUMNS " FROM api_keys k"
	                       " WHERE k.deleted_at IS NULL AND ($1::text IS NULL OR k.account_id = $1)"
	                       " AND ($2::text IS NULL OR tokend_key_state(k) = $2)"
	                       " ORDER BY k.account_id, k.created_at, k.id", 2, p);
	int n = PQntuples(r);
	json_t *arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, key_json(r, i));
	if (cli.json)
		cli_print_json(arr);
	else {
		cli_key_print_table(arr);
		json_decref(arr);
	}
	PQclear(r);
	return CLI_OK;
}

/* Print the key after a change (or for `show`). */
static int show_key(const char *id, const char *verb)
{
	const char *p[] = { id };
	PGresult *r = cli_exec("SELECT " KEY_COLUMNS " FROM api_keys k WHERE k.id = $1", 1, p);
	if (PQntuples(r) != 1) {
		PQclear(r);
		cli_fail(CLI_REFUSED, "no key %s", id);
	}
	json_t *k = key_json(r, 0);
	cli_key_print_changed(k, verb);
	json_decref(k);
	PQclear(r);
	return CLI_OK;
}

/*
 * Change a key's state in one transaction: lock the row, check the state the
 * action needs, update. `verb` is the command name.
 */
static int key_change(const char *verb, const char *id, const char *arg)
{
	cli_check_key_id(id);
	PGconn *db = cli_db();
	PGresult *r = cli_exec("BEGIN", 0, NULL);
	PQclear(r);
	const char *p1[] = { id };
	r = cli_exec("SELECT tokend_key_state(k) FROM api_keys k WHERE k.id = $1 FOR UPDATE", 1, p1);
	if (PQntuples(r) != 1) {
		PQclear(r);
		cli_fail(CLI_REFUSED, "no key %s", id);
	}
	char state[16];
	snprintf(state, sizeof(state), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (strcmp(state, "deleted") == 0)
		cli_fail(CLI_REFUSED, "key %s is deleted", id);

	const char *sql = NULL, *done = NULL;
	const char *p[] = { id, arg };
	int np = 1;
	if (strcmp(verb, "rename") == 0) {
		sql = "UPDATE api_keys SET name = $2 WHERE id = $1";
		np = 2;
		done = "Renamed";
	} else if (strcmp(verb, "disable") == 0) {
		if (strcmp(state, "revoked") == 0)
			cli_fail(CLI_REFUSED, "key %s is revoked: it cannot be disabled or enabled", id);
		sql = "UPDATE api_keys SET disabled_at = coalesce(disabled_at, now()) WHERE id = $1";
		done = "Disabled";
	} else if (strcmp(verb, "enable") == 0) {
		if (strcmp(state, "revoked") == 0)
			cli_fail(CLI_REFUSED, "key %s is revoked: revocation is permanent; create a new key", id);
		sql = "UPDATE api_keys SET disabled_at = NULL WHERE id = $1";
		done = "Enabled";
	} else if (strcmp(verb, "revoke") == 0) {
		if (strcmp(state, "revoked") == 0)
			cli_fail(CLI_REFUSED, "key %s is already revoked", id);
		sql = "UPDATE api_keys SET revoked_at = now(), revoked_by = tokend_actor(), revoke_reason = $2"
		      " WHERE id = $1";
		np = 2;
		done = "Revoked";
	} else if (strcmp(verb, "set-rate-limit") == 0) {
		sql = "UPDATE api_keys SET rate_limit = $2::integer WHERE id = $1";
		np = 2;
		done = "Rate limit set for";
	} else if (strcmp(verb, "delete") == 0) {
		if (!arg) {   /* not --force: a key in use is probably still needed */
			r = cli_exec("SELECT tokend_ts(last_used_at) FROM api_keys WHERE id = $1"
			             " AND last_used_at > now() - interval '24 hours'", 1, p1);
			if (PQntuples(r) == 1) {
				char when[40];
				snprintf(when, sizeof(when), "%s", PQgetvalue(r, 0, 0));
				PQclear(r);
				cli_fail(CLI_REFUSED, "key %s was used in the last 24 hours (last used %s); to delete it "
				         "anyway, run again with --force", id, when);
			}
			PQclear(r);
		}
		sql = "UPDATE api_keys SET deleted_at = now() WHERE id = $1";
		done = "Deleted";
	}
	r = cli_exec(sql, np, p);
	PQclear(r);
	r = cli_exec("COMMIT", 0, NULL);
	PQclear(r);
	(void)db;
	if (strcmp(verb, "delete") == 0) {
		cli_key_print_deleted(id);
		return CLI_OK;
	}
	return show_key(id, done);
}

int cli_key(int argc, char **argv)
{
	if (argc < 2 || cli_wants_help(argc, argv)) {
		fputs(key_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (cli_key_is_remote(argc, argv))
		return cli_key_remote(argc, argv);
	const char *verb = argv[1];
	if (strcmp(verb, "create") == 0)
		return key_create(argc - 1, argv + 1);
	if (strcmp(verb, "list") == 0)
		return key_list(argc - 1, argv + 1);
	if (strcmp(verb, "show") == 0) {
		if (argc != 3)
			cli_fail(CLI_USAGE, "key show: expected exactly one key ID");
		cli_check_key_id(argv[2]);
		const char *p[] = { argv[2] };
		PGresult *r = cli_exec("SELECT 1 FROM api_keys WHERE id = $1 AND deleted_at IS NULL", 1, p);
		int found = PQntuples(r) == 1;
		PQclear(r);
		if (!found)
			cli_fail(CLI_REFUSED, "no key %s", argv[2]);
		return show_key(argv[2], NULL);
	}
	if (strcmp(verb, "rename") == 0) {
		if (argc != 4)
			cli_fail(CLI_USAGE, "key rename: expected KEY_ID and NAME");
		const char *why = cli_check_name(argv[3]);
		if (why)
			cli_fail(CLI_USAGE, "name: %s", why);
		return key_change(verb, argv[2], argv[3]);
	}
	if (strcmp(verb, "set-rate-limit") == 0) {
		if (argc != 4)
			cli_fail(CLI_USAGE, "key set-rate-limit: expected KEY_ID and a number of tokens per minute "
			         "(or none)");
		int rl = cli_parse_rate_limit(argv[3]);
		char text[16];
		snprintf(text, sizeof(text), "%d", rl);
		return key_change(verb, argv[2], rl ? text : NULL);
	}
	if (strcmp(verb, "revoke") == 0) {
		static const struct option opts[] = {
			{ "reason", required_argument, NULL, 'r' },
			{ NULL, 0, NULL, 0 },
		};
		const char *reason = NULL;
		int c;
		optind = 1;
		while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
			if (c == 'r')
				reason = optarg;
			else
				cli_fail(CLI_USAGE, "key revoke: see tokend key --help");
		}
		if (argc - 1 - optind != 1)
			cli_fail(CLI_USAGE, "key revoke: expected exactly one key ID");
		if (reason) {
			if (strlen(reason) > 500)
				cli_fail(CLI_USAGE, "--reason: at most 500 bytes");
			const char *why = *reason ? tk_input_text_unsafe(reason, strlen(reason)) : NULL;
			if (why)
				cli_fail(CLI_USAGE, "--reason: %s", why);
		}
		return key_change(verb, argv[1 + optind], reason);
	}
	if (strcmp(verb, "delete") == 0) {
		int force = 0;
		const char *id = NULL;
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "--force") == 0)
				force = 1;
			else if (argv[i][0] == '-' || id)
				cli_fail(CLI_USAGE, "key delete: expected one key ID and optionally --force");
			else
				id = argv[i];
		}
		if (!id)
			cli_fail(CLI_USAGE, "key delete: expected exactly one key ID");
		return key_change(verb, id, force ? "force" : NULL);
	}
	if (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0) {
		if (argc != 3)
			cli_fail(CLI_USAGE, "key %s: expected exactly one key ID", verb);
		return key_change(verb, argv[2], NULL);
	}
	cli_fail(CLI_USAGE, "key: unknown command '%.40s' (see tokend key --help)", verb);
}
