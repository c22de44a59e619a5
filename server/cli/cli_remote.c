/*
 * cli_remote.c - `tokend key COMMAND ... --url URL`: the key commands over the
 * admin REST API (server/admin.c), for administrators without database access.
 *
 * The credentials are an API key of tokend, from the environment only
 * ($TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; never options, so they stay out
 * of the process list and shell history). One run: POST URL/oauth2/token
 * (client_credentials, HTTP Basic with RFC 6749 section 2.3.1 form-encoding) for an
 * access token, then the admin API with Authorization: Bearer. Neither the
 * secret nor the token is ever printed.
 *
 * Output and exit status are those of the local commands (cli_key.c): the
 * same text, the same --json objects; 0 done, 1 refused (the API's
 * error_description, a failed connection, a server error), 2 usage error
 * (before any network traffic).
 *
 * A request that is safe to repeat (the token request, reads, create with
 * its Idempotency-Key, rename, disable, enable) is retried once after a
 * dropped connection or a 502/503/504; create always sends an
 * Idempotency-Key (generated per run unless --idempotency-key is given) so
 * the retry can never make a second key.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>
#include <tokend/timefmt.h>

#include "cli.h"
#include "httpclient.h"

#define REMOTE_USER_AGENT "tokend-cli"
#define LIST_PAGES_MAX    100000

/* The one remote session of this process. */
static struct {
	char base[2048];                 /* the server URL, no trailing slash */
	char token_url[2048 + 64];
	char token[8192];                /* the access token (wiped at exit) */
	char bearer[8200];               /* "Bearer <token>" (wiped at exit) */
	int operator;                    /* the token holds tokend:operator */
	int wipe_registered;
} rs;

static void remote_wipe(void)
{
	tk_wipe(rs.token, sizeof(rs.token));
	tk_wipe(rs.bearer, sizeof(rs.bearer));
}

/* ---- options ---- */

enum {
	OPT_URL = 256, OPT_TOKEN_URL, OPT_PAGE_SIZE, OPT_IDEM, OPT_FORCE, OPT_ACCOUNT, OPT_NAME,
	OPT_SCOPES, OPT_AUDIENCE, OPT_SUBJECT, OPT_EXPIRES_IN, OPT_EXPIRES_AT, OPT_LIFETIME, OPT_STATE,
	OPT_REASON, OPT_CREDENTIAL, OPT_RATE_LIMIT,
};

static const struct option remote_opts[] = {
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
	/* Credentials are never taken from the command line. */
	{ "client-id", required_argument, NULL, OPT_CREDENTIAL },
	{ "client-secret", required_argument, NULL, OPT_CREDENTIAL },
	{ "secret", required_argument, NULL, OPT_CREDENTIAL },
	{ "token", required_argument, NULL, OPT_CREDENTIAL },
	{ "access-token", required_argument, NULL, OPT_CREDENTIAL },
	{ "password", required_argument, NULL, OPT_CREDENTIAL },
	{ NULL, 0, NULL, 0 },
};

static const char *opt_name(int code)
{
	for (size_t i = 0; remote_opts[i].name; i++)
		if (remote_opts[i].val == code)
			return remote_opts[i].name;
	return "?";
}

typedef struct remote_args {
	const char *url, *token_url, *idem, *account, *name, *scopes, *subject, *expires_in,
	           *expires_at, *lifetime, *state, *reason, *rate_limit;
	int page_size;
	int force;
	json_t *audiences;
	const char *pos[3];
	int npos;
} remote_args;

/* Which options each command takes, and how many operands. */
static const struct verb_spec {
	const char *verb;
	int nargs;
	int opts[12];   /* 0-terminated */
} verbs[] = {
	{ "create", 0, { OPT_IDEM, OPT_ACCOUNT, OPT_NAME, OPT_SCOPES, OPT_AUDIENCE, OPT_SUBJECT, OPT_EXPIRES_IN,
	                 OPT_EXPIRES_AT, OPT_LIFETIME, OPT_RATE_LIMIT, 0 } },
	{ "list", 0, { OPT_ACCOUNT, OPT_STATE, OPT_PAGE_SIZE, 0 } },
	{ "show", 1, { 0 } },
	{ "rename", 2, { 0 } },
	{ "set-rate-limit", 2, { 0 } },
	{ "disable", 1, { 0 } },
	{ "enable", 1, { 0 } },
	{ "revoke", 1, { OPT_REASON, 0 } },
	{ "delete", 1, { OPT_FORCE, 0 } },
};

int cli_key_is_remote(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--url") == 0 || strncmp(argv[i], "--url=", 6) == 0)
			return 1;
	}
	const char *env = getenv("TOKEND_URL");
	return env && *env;
}

static void parse_args(int argc, char **argv, const struct verb_spec *vs, remote_args *a)
{
	int c;
	memset(a, 0, sizeof(*a));
	a->audiences = json_array();
	optind = 1;
	while ((c = getopt_long(argc, argv, "", remote_opts, NULL)) != -1) {
		if (c == OPT_CREDENTIAL)
			cli_fail(CLI_USAGE, "credentials are never taken from the command line (they would show in the "
			         "process list and shell history): set TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET "
			         "in the environment");
		if (c == '?' || c == ':' || c < OPT_URL)
			cli_fail(CLI_USAGE, "key %s: see tokend key --help", vs->verb);
		if (c != OPT_URL && c != OPT_TOKEN_URL) {
			int ok = 0;
			for (int i = 0; vs->opts[i]; i++)
				ok |= vs->opts[i] == c;
			if (!ok)
				cli_fail(CLI_USAGE, "key %s: --%s is not an option of this command (see tokend key --help)",
				         vs->verb, opt_name(c));
		}
		switch (c) {
		case OPT_URL: a->url = optarg; break;
		case OPT_TOKEN_URL: a->token_url = optarg; break;
		case OPT_IDEM: a->idem = optarg; break;
		case OPT_FORCE: a->force = 1; break;
		case OPT_ACCOUNT: a->account = optarg; break;
		case OPT_NAME: a->name = optarg; break;
		case OPT_SCOPES:
			if (a->scopes)
				cli_fail(CLI_USAGE, "--scopes given twice: list all scopes in one quoted argument");
			a->scopes = optarg;
			break;
		case OPT_AUDIENCE: {
			const char *why = cli_check_audience(optarg);
			if (why)
				cli_fail(CLI_USAGE, "--audience '%.80s': %s", optarg, why);
			size_t j;
			json_t *v;
			json_array_foreach(a->audiences, j, v)
				if (strcmp(json_string_value(v), optarg) == 0)
					cli_fail(CLI_USAGE, "--audience '%.80s' given twice", optarg);
			if (json_array_size(a->audiences) >= 16)
				cli_fail(CLI_USAGE, "--audience: at most 16 audiences");
			json_array_append_new(a->audiences, json_string(optarg));
			break;
		}
		case OPT_SUBJECT: a->subject = optarg; break;
		case OPT_EXPIRES_IN: a->expires_in = optarg; break;
		case OPT_EXPIRES_AT: a->expires_at = optarg; break;
		case OPT_LIFETIME: a->lifetime = optarg; break;
		case OPT_STATE: a->state = optarg; break;
		case OPT_REASON: a->reason = optarg; break;
		case OPT_RATE_LIMIT: a->rate_limit = optarg; break;
		case OPT_PAGE_SIZE: {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (end == optarg || *end || v < 1 || v > 200)
				cli_fail(CLI_USAGE, "--page-size: a whole number from 1 to 200");
			a->page_size = (int)v;
			break;
		}
		default:
			cli_fail(CLI_USAGE, "key %s: see tokend key --help", vs->verb);
		}
	}
	a->npos = argc - optind;
	if (a->npos != vs->nargs) {
		if (vs->nargs == 0)
			cli_fail(CLI_USAGE, "key %s: unexpected argument '%.40s'", vs->verb, argv[optind]);
		if (vs->nargs == 2)
			cli_fail(CLI_USAGE, "key %s: expected KEY_ID and NAME", vs->verb);
		cli_fail(CLI_USAGE, "key %s: expected exactly one key ID", vs->verb);
	}
	for (int i = 0; i < a->npos; i++)
		a->pos[i] = argv[optind + i];
}

/* ---- the server, the credentials, the access token ---- */

static void setup_urls(const remote_args *a)
{
	const char *url = a->url ? a->url : getenv("TOKEND_URL");
	const char *token_url = a->token_url ? a->token_url : getenv("TOKEND_TOKEN_URL");
	const char *why;
	tk_httpc_url info;
	if (!url || !*url)
		cli_fail(CLI_USAGE, "--url: give the server's URL, e.g. https://tokend.example.com");
	if (tk_httpc_url_check(url, &info, &why) != 0)
		cli_fail(CLI_USAGE, "--url: %s", why);
	if (strpbrk(url, "?#"))
		cli_fail(CLI_USAGE, "--url: give the server's base URL, without a query or fragment");
	size_t n = strlen(url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if (n + 64 >= sizeof(rs.base))
		cli_fail(CLI_USAGE, "--url: too long");
	memcpy(rs.base, url, n);
	rs.base[n] = '\0';
	int loopback = info.loopback, https = info.https;
	if (token_url && *token_url) {
		if (tk_httpc_url_check(token_url, &info, &why) != 0)
			cli_fail(CLI_USAGE, "--token-url: %s", why);
		if (strlen(token_url) >= sizeof(rs.token_url))
			cli_fail(CLI_USAGE, "--token-url: too long");
		snprintf(rs.token_url, sizeof(rs.token_url), "%s", token_url);
		loopback &= info.loopback;
		https &= info.https;
	} else {
		snprintf(rs.token_url, sizeof(rs.token_url), "%s/oauth2/token", rs.base);
	}
	if (!https && !loopback)
		fprintf(stderr, "tokend: warning: sending credentials over plain http to another host; use https\n");
}

/* The credentials from the environment (exit 2 when missing, 1 when malformed). */
static void get_credentials(const char **id, const char **secret)
{
	*id = getenv("TOKEND_CLIENT_ID");
	*secret = getenv("TOKEND_CLIENT_SECRET");
	if (!*id || !**id || !*secret || !**secret)
		cli_fail(CLI_USAGE, "remote mode needs an API key with the tokend:admin scopes in the environment: "
		         "set TOKEND_CLIENT_ID and TOKEND_CLIENT_SECRET");
	if (tk_key_id_check(*id, strlen(*id)) != TK_KEYFMT_OK) {
		if (strncmp(*id, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0)
			cli_fail(CLI_REFUSED, "TOKEND_CLIENT_ID holds what looks like a secret (tks_...), not a key ID (tk_...)");
		cli_fail(CLI_REFUSED, "TOKEND_CLIENT_ID is not a key ID (tk_ followed by 28 letters and digits)");
	}
	if (tk_secret_check(*secret, strlen(*secret)) != TK_KEYFMT_OK)
		cli_fail(CLI_REFUSED, "TOKEND_CLIENT_SECRET is not a tokend client secret (tks_ followed by 49 "
		         "letters and digits; a typo fails its checksum)");
}

/* RFC 6749 appendix B: application/x-www-form-urlencoded, byte by byte. */
static void form_encode(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < outlen; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		    ch == '.' || ch == '_' || ch == '*')
			out[o++] = (char)ch;
		else if (ch == ' ')
			out[o++] = '+';
		else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
}

static int retryable(const tk_httpc_response *r, int rc)
{
	if (rc != 0)
		return !r->timed_out && !r->tls_failed && !r->too_large && strncmp(r->error, "cannot resolve", 14) != 0;
	return r->status == 502 || r->status == 503 || r->status == 504;
}

/* Send, retrying once when that is safe and may help. 0 = a response came. */
static int send_request(const tk_httpc_request *rq, tk_httpc_response *resp, int retry_safe)
{
	int rc = tk_httpc_send(rq, resp);
	if (!retry_safe || !retryable(resp, rc))
		return rc;
	unsigned wait = 1;
	const char *ra = rc == 0 ? tk_httpc_header(resp, "Retry-After") : NULL;
	if (ra && strspn(ra, "0123456789") == strlen(ra) && strlen(ra) > 0 && strlen(ra) < 3)
		wait = (unsigned)atoi(ra);
	if (wait > 5)
		wait = 5;
	tk_httpc_response_free(resp);
	sleep(wait);
	return tk_httpc_send(rq, resp);
}

/* The API's words for a refusal: error_description, else error, else the status. */
static void describe(const tk_httpc_response *resp, json_t *j, char *out, size_t outlen)
{
	const char *d = json_string_value(json_object_get(j, "error_description"));
	const char *e = json_string_value(json_object_get(j, "error"));
	if (d && *d)
		snprintf(out, outlen, "%s", d);
	else if (e && *e)
		snprintf(out, outlen, "%s", e);
	else
		snprintf(out, outlen, "HTTP status %d", resp->status);
	/* One line, printable. */
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

static void get_token(void)
{
	const char *id, *secret;
	get_credentials(&id, &secret);

	/* Basic base64(form(id) ":" form(secret)). */
	char eid[3 * TK_KEY_ID_LEN + 8], esecret[3 * TK_SECRET_LEN + 8], pair[sizeof(eid) + sizeof(esecret) + 2];
	unsigned char b64[4 * (sizeof(pair) / 3 + 2)];
	char authz[sizeof(b64) + 8];
	form_encode(id, eid, sizeof(eid));
	form_encode(secret, esecret, sizeof(esecret));
	int plen = snprintf(pair, sizeof(pair), "%s:%s", eid, esecret);
	EVP_EncodeBlock(b64, (const unsigned char *)pair, plen);
	snprintf(authz, sizeof(authz), "Basic %s", (const char *)b64);
	tk_wipe(esecret, sizeof(esecret));
	tk_wipe(pair, sizeof(pair));
	tk_wipe(b64, sizeof(b64));

	static const char form[] = "grant_type=client_credentials";
	const char *headers[] = { "Authorization", authz, "Content-Type", "application/x-www-form-urlencoded",
	                          "Accept", "application/json", NULL };
	tk_httpc_request rq = { .method = "POST", .url = rs.token_url, .headers = headers, .body = form,
	                        .body_len = sizeof(form) - 1, .user_agent = REMOTE_USER_AGENT };
	tk_httpc_response resp;
	int rc = send_request(&rq, &resp, 1);
	tk_wipe(authz, sizeof(authz));
	if (rc != 0) {
		char msg[sizeof(resp.error)];
		snprintf(msg, sizeof(msg), "%s", resp.error);
		tk_httpc_response_free(&resp);
		cli_fail(CLI_REFUSED, "cannot reach %s: %s", rs.token_url, msg);
	}
	json_t *j = json_loadb(resp.body, resp.len, 0, NULL);
	char why[400];
	if (resp.status != 200 || !json_is_object(j)) {
		int status = resp.status;
		int is_json = json_is_object(j) && json_object_get(j, "error");
		describe(&resp, j, why, sizeof(why));
		json_decref(j);
		tk_httpc_response_free(&resp);
		if (!is_json)
			cli_fail(CLI_REFUSED, "unexpected answer from %s (HTTP status %d): is this the token endpoint "
			         "of a tokend server?", rs.token_url, status);
		if (status == 404)
			cli_fail(CLI_REFUSED, "no token endpoint at %s (HTTP status 404): check --url; when the admin API "
			         "has a listener of its own, give the main listener's token endpoint as --token-url",
			         rs.token_url);
		if (status == 401)
			cli_fail(CLI_REFUSED, "the server refused the credentials in TOKEND_CLIENT_ID and "
			         "TOKEND_CLIENT_SECRET (%s)", why);
		if (status >= 500)
			cli_fail(CLI_REFUSED, "the server failed to issue an access token (HTTP status %d): %s", status, why);
		cli_fail(CLI_REFUSED, "cannot get an access token: %s", why);
	}
	const char *tok = json_string_value(json_object_get(j, "access_token"));
	const char *type = json_string_value(json_object_get(j, "token_type"));
	const char *scope = json_string_value(json_object_get(j, "scope"));
	int ok = tok && *tok && strlen(tok) < sizeof(rs.token) && type && strcasecmp(type, "Bearer") == 0;
	if (ok) {
		snprintf(rs.token, sizeof(rs.token), "%s", tok);
		snprintf(rs.bearer, sizeof(rs.bearer), "Bearer %s", tok);
		tk_wipe((void *)(uintptr_t)tok, strlen(tok));   /* jansson's copy */
	}
	if (scope) {
		tk_scopes set = { 0 };
		const char *w;
		if (tk_scopes_parse(scope, strlen(scope), &set, &w) == 0)
			rs.operator = tk_scopes_contains(&set, "tokend:operator");
		tk_scopes_free(&set);
	}
	json_decref(j);
	tk_httpc_response_free(&resp);
	if (!ok)
		cli_fail(CLI_REFUSED, "unexpected answer from %s: no bearer access token", rs.token_url);
}

/* ---- the admin API ---- */

typedef struct api_result {
	int status;
	json_t *json;          /* the parsed body (NULL if none or not JSON) */
	char why[400];         /* for a refusal: the API's description */
} api_result;

/*
 * One admin API call. `path` starts after /admin/v1/. Exits 1 when no
 * response came or it was not JSON; otherwise returns the status and body.
 */
static api_result api_call(const char *method, const char *path, json_t *body, const char *idem, int retry_safe)
{
	api_result ar = { 0 };
	char url[sizeof(rs.base) + 1200];
	if ((size_t)snprintf(url, sizeof(url), "%s/admin/v1/%s", rs.base, path) >= sizeof(url))
		cli_fail(CLI_USAGE, "the request URL is too long");
	char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	const char *headers[10];
	int h = 0;
	headers[h++] = "Authorization";
	headers[h++] = rs.bearer;
	headers[h++] = "Accept";
	headers[h++] = "application/json";
	if (text) {
		headers[h++] = "Content-Type";
		headers[h++] = "application/json";
	}
	if (idem) {
		headers[h++] = "Idempotency-Key";
		headers[h++] = idem;
	}
	headers[h] = NULL;
	tk_httpc_request rq = { .method = method, .url = url, .headers = headers, .body = text,
	                        .body_len = text ? strlen(text) : 0, .user_agent = REMOTE_USER_AGENT };
	tk_httpc_response resp;
	int rc = send_request(&rq, &resp, retry_safe);
	free(text);
	if (rc != 0) {
		char msg[sizeof(resp.error)];
		snprintf(msg, sizeof(msg), "%s", resp.error);
		tk_httpc_response_free(&resp);
		if (idem)
			cli_fail(CLI_REFUSED, "cannot reach %s: %s (the key may or may not have been created: run the same "
			         "command with --idempotency-key %s to find out without making a second one)",
			         rs.base, msg, idem);
		cli_fail(CLI_REFUSED, "cannot reach %s: %s%s", rs.base, msg,
		         strcmp(method, "GET") ? " (the change may or may not have been made)" : "");
	}
	ar.status = resp.status;
	ar.json = resp.len ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
	if (ar.status >= 300)
		describe(&resp, ar.json, ar.why, sizeof(ar.why));
	if (!json_is_object(ar.json)) {
		int status = resp.status;
		tk_httpc_response_free(&resp);
		json_decref(ar.json);
		if (status >= 500)
			cli_fail(CLI_REFUSED, "the server failed (HTTP status %d)", status);
		cli_fail(CLI_REFUSED, "unexpected answer from %s (HTTP status %d): is this the URL of a tokend server?",
		         rs.base, status);
	}
	tk_httpc_response_free(&resp);
	return ar;
}

/* Exit 1 for a refusal (status >= 300), with the API's description. */
static void api_check(api_result *ar, const char *key_id)
{
	if (ar->status < 300)
		return;
	const char *err = json_string_value(json_object_get(ar->json, "error"));
	int not_found = err && strcmp(err, "not_found") == 0;
	char why[sizeof(ar->why)];
	int status = ar->status;
	snprintf(why, sizeof(why), "%s", ar->why);
	json_decref(ar->json);
	ar->json = NULL;
	if (status == 404 && strcmp(why, "no such endpoint") == 0)
		cli_fail(CLI_REFUSED, "no admin API at %s (no such endpoint): when tokend serves it on a listener of "
		         "its own (admin_listen_port), give that as --url and the main one as --token-url", rs.base);
	if (status == 404 && key_id && not_found)
		cli_fail(CLI_REFUSED, "no key %s", key_id);
	if (status >= 500)
		cli_fail(CLI_REFUSED, "the server failed (HTTP status %d): %s", status, why);
	cli_fail(CLI_REFUSED, "%s", why);
}

/* The admin API's key object in the order of the local --json output. */
static json_t *key_object(json_t *api)
{
	static const char *const fields[] = {
		"client_id", "account", "name", "hint", "masked", "scopes", "audiences", "subject", "state",
		"created_at", "created_by", "expires_at", "last_used_at", "disabled_at", "revoked_at", "revoked_by",
		"revoke_reason", "token_lifetime", "rate_limit", NULL,
	};
	if (!json_is_object(api) || !json_is_string(json_object_get(api, "client_id")))
		cli_fail(CLI_REFUSED, "unexpected answer from %s: not a key", rs.base);
	json_t *o = json_object();
	for (int i = 0; fields[i]; i++) {
		json_t *v = json_object_get(api, fields[i]);
		json_object_set(o, fields[i], v ? v : json_null());
	}
	return o;
}

/* A path segment or query value, percent-encoded (malloc'd). */
static char *enc(const char *s)
{
	char *e = evhttp_uriencode(s, -1, 0);
	if (!e)
		cli_fail(CLI_REFUSED, "out of memory");
	return e;
}

/* ---- commands ---- */

static int remote_create(remote_args *a)
{
	const char *why;
	if (!a->name)
		cli_fail(CLI_USAGE, "key create: --name is required");
	if (!a->scopes)
		cli_fail(CLI_USAGE, "key create: --scopes is required (e.g. --scopes \"api:read api:write\")");
	why = cli_check_name(a->name);
	if (why)
		cli_fail(CLI_USAGE, "--name: %s", why);
	tk_scopes set = { 0 };
	if (tk_scopes_parse(a->scopes, strlen(a->scopes), &set, &why) != 0)
		cli_fail(CLI_USAGE, "--scopes: %s", why);
	if (set.n == 0)
		cli_fail(CLI_USAGE, "--scopes: a key needs at least one scope");
	if (a->subject) {
		why = cli_check_name(a->subject);
		if (why || strlen(a->subject) > 255)
			cli_fail(CLI_USAGE, "--subject: %s", why ? why : "must be at most 255 bytes");
	}
	if (a->account && (!*a->account || strlen(a->account) > 63))
		cli_fail(CLI_USAGE, "--account: 1-63 characters");
	if (a->expires_in && a->expires_at)
		cli_fail(CLI_USAGE, "give --expires-in or --expires-at, not both");
	int64_t expiry = 0, now = (int64_t)time(NULL), lifetime = 0;
	char expiry_text[32] = "";
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
		tk_rfc3339_format(expiry, expiry_text);
	if (a->lifetime && tk_duration_parse(a->lifetime, &lifetime, &why) != 0)
		cli_fail(CLI_USAGE, "--token-lifetime '%.40s': %s", a->lifetime, why);
	char idem[64];
	if (a->idem) {
		size_t n = strlen(a->idem);
		if (n == 0 || n > 255 || cli_check_name(a->idem) != NULL || strspn(a->idem, " ") == n)
			cli_fail(CLI_USAGE, "--idempotency-key: 1-255 printable characters");
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)a->idem[i] >= 0x7f)
				cli_fail(CLI_USAGE, "--idempotency-key: printable ASCII only");
	} else {
		unsigned char rnd[18];
		if (tk_random_bytes(rnd, sizeof(rnd)) != 0)
			cli_fail(CLI_REFUSED, "the random number generator failed: no key was created");
		char b[32];
		tk_b64url_encode(rnd, sizeof(rnd), b);
		snprintf(idem, sizeof(idem), "tokend-cli-%s", b);
	}

	json_t *body = json_object(), *scopes = json_array();
	json_object_set_new(body, "name", json_string(a->name));
	for (size_t j = 0; j < set.n; j++)
		json_array_append_new(scopes, json_string(set.v[j]));
	tk_scopes_free(&set);
	json_object_set_new(body, "scopes", scopes);
	if (json_array_size(a->audiences))
		json_object_set(body, "audiences", a->audiences);
	if (a->subject)
		json_object_set_new(body, "subject", json_string(a->subject));
	if (expiry)
		json_object_set_new(body, "expires_at", json_string(expiry_text));
	if (a->lifetime)
		json_object_set_new(body, "token_lifetime", json_integer(lifetime));
	if (a->account)
		json_object_set_new(body, "account", json_string(a->account));
	if (a->rate_limit) {
		int rl = cli_parse_rate_limit(a->rate_limit);
		if (rl)
			json_object_set_new(body, "rate_limit", json_integer(rl));
	}

	get_token();
	api_result r = api_call("POST", "keys", body, a->idem ? a->idem : idem, 1);
	json_decref(body);
	api_check(&r, NULL);
	json_t *secret = json_object_get(r.json, "client_secret");
	json_t *k = key_object(r.json);
	if (!json_is_string(secret)) {
		/* An idempotent replay: this key was made by an earlier request. */
		char id[TK_KEY_ID_LEN + 1];
		snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(k, "client_id")));
		cli_key_print_changed(k, NULL);
		fflush(stdout);
		json_decref(k);
		json_decref(r.json);
		cli_fail(CLI_REFUSED, "no new key: key %s was created earlier with this Idempotency-Key, and its secret "
		         "was shown only then; if it was lost, delete that key and create a new one", id);
	}
	cli_key_print_created(k, json_string_value(secret));
	tk_wipe((void *)(uintptr_t)json_string_value(secret), json_string_length(secret));
	json_decref(k);
	json_decref(r.json);
	return CLI_OK;
}

/* Every key of one account (or the caller's, account NULL), page by page. */
static void list_account(json_t *out, const char *account, const char *state, int page_size)
{
	char *cursor = NULL;
	for (int page = 0; page < LIST_PAGES_MAX; page++) {
		char path[1024];
		size_t n = (size_t)snprintf(path, sizeof(path), "keys?");
		char *e;
		if (page_size)
			n += (size_t)snprintf(path + n, sizeof(path) - n, "limit=%d&", page_size);
		if (account) {
			e = enc(account);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "account=%s&", e);
			free(e);
		}
		if (state)
			n += (size_t)snprintf(path + n, sizeof(path) - n, "state=%s&", state);
		if (cursor) {
			e = enc(cursor);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "cursor=%s&", e);
			free(e);
		}
		if (n >= sizeof(path))
			cli_fail(CLI_REFUSED, "the request URL is too long");
		path[n - 1] = '\0';   /* the last '&' (or the '?') */
		api_result r = api_call("GET", path, NULL, NULL, 1);
		api_check(&r, NULL);
		json_t *keys = json_object_get(r.json, "keys"), *k;
		size_t i;
		if (!json_is_array(keys))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no key list", rs.base);
		json_array_foreach(keys, i, k)
			json_array_append_new(out, key_object(k));
		const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
		if (next && cursor && strcmp(next, cursor) == 0)
			cli_fail(CLI_REFUSED, "unexpected answer from %s: the list does not advance", rs.base);
		free(cursor);
		cursor = next && *next ? strdup(next) : NULL;
		json_decref(r.json);
		if (!cursor)
			return;
	}
	cli_fail(CLI_REFUSED, "the key list has too many pages");
}

static int remote_list(remote_args *a)
{
	if (a->state && strcmp(a->state, "enabled") && strcmp(a->state, "disabled") && strcmp(a->state, "revoked") &&
	    strcmp(a->state, "expired"))
		cli_fail(CLI_USAGE, "--state: one of enabled, disabled, revoked, expired");
	if (a->account && (!*a->account || strlen(a->account) > 63))
		cli_fail(CLI_USAGE, "--account: 1-63 characters");
	get_token();
	json_t *out = json_array();
	if (a->account) {
		/* The account must exist and be the caller's (or the caller an operator). */
		char path[256], *e = enc(a->account);
		snprintf(path, sizeof(path), "accounts/%s", e);
		free(e);
		api_result r = api_call("GET", path, NULL, NULL, 1);
		if (r.status == 404 && strcmp(r.why, "no such endpoint") != 0)
			cli_fail(CLI_REFUSED, "no account '%s'", a->account);
		api_check(&r, NULL);
		json_decref(r.json);
		list_account(out, a->account, a->state, a->page_size);
	} else if (rs.operator) {
		/* An operator sees every account, like the local command. */
		api_result r = api_call("GET", "accounts", NULL, NULL, 1);
		api_check(&r, NULL);
		json_t *accts = json_object_get(r.json, "accounts"), *acc;
		size_t i;
		if (!json_is_array(accts))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no account list", rs.base);
		json_array_foreach(accts, i, acc) {
			const char *id = json_string_value(json_object_get(acc, "id"));
			if (id)
				list_account(out, id, a->state, a->page_size);
		}
		json_decref(r.json);
	} else {
		list_account(out, NULL, a->state, a->page_size);
	}
	if (cli.json)
		cli_print_json(out);
	else {
		cli_key_print_table(out);
		json_decref(out);
	}
	return CLI_OK;
}

/* show, rename, set-rate-limit, disable, enable, revoke, delete. */
static int remote_key_op(const char *verb, remote_args *a)
{
	const char *id = a->pos[0];
	cli_check_key_id(id);
	json_t *body = NULL;
	const char *method = "POST", *done = NULL;
	char path[128], query[32] = "";
	int retry_safe = 1;
	snprintf(path, sizeof(path), "keys/%s", id);
	if (strcmp(verb, "show") == 0) {
		method = "GET";
	} else if (strcmp(verb, "rename") == 0) {
		const char *why = cli_check_name(a->pos[1]);
		if (why)
			cli_fail(CLI_USAGE, "name: %s", why);
		method = "PATCH";
		body = json_pack("{s:s}", "name", a->pos[1]);
		done = "Renamed";
	} else if (strcmp(verb, "set-rate-limit") == 0) {
		int rl = cli_parse_rate_limit(a->pos[1]);
		method = "PATCH";
		body = json_object();
		json_object_set_new(body, "rate_limit", rl ? json_integer(rl) : json_null());
		done = "Rate limit set for";
	} else if (strcmp(verb, "disable") == 0 || strcmp(verb, "enable") == 0) {
		snprintf(path, sizeof(path), "keys/%s/%s", id, verb);
		done = verb[0] == 'd' ? "Disabled" : "Enabled";
	} else if (strcmp(verb, "revoke") == 0) {
		if (a->reason) {
			if (strlen(a->reason) > 500)
				cli_fail(CLI_USAGE, "--reason: at most 500 bytes");
			const char *why = strlen(a->reason) <= 100 ? cli_check_name(a->reason) : NULL;
			if (why && *a->reason)
				cli_fail(CLI_USAGE, "--reason: %s", why);
			for (const char *p = a->reason; *p; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					cli_fail(CLI_USAGE, "--reason: must not contain control characters");
		}
		snprintf(path, sizeof(path), "keys/%s/revoke", id);
		body = json_object();
		if (a->reason && *a->reason)
			json_object_set_new(body, "reason", json_string(a->reason));
		done = "Revoked";
		retry_safe = 0;       /* a second revoke is refused: "already revoked" */
	} else {   /* delete */
		method = "DELETE";
		if (a->force)
			snprintf(query, sizeof(query), "?confirm=true");
		retry_safe = 0;       /* a second delete finds no key */
	}
	strncat(path, query, sizeof(path) - strlen(path) - 1);
	get_token();
	api_result r = api_call(method, path, body, NULL, retry_safe);
	json_decref(body);
	const char *err = json_string_value(json_object_get(r.json, "error"));
	if (r.status == 409 && strcmp(verb, "delete") == 0 && err && strcmp(err, "recently_used") == 0) {
		char why[sizeof(r.why)];
		snprintf(why, sizeof(why), "%s", r.why);
		json_decref(r.json);
		cli_fail(CLI_REFUSED, "%s; to delete it anyway, run again with --force", why);
	}
	api_check(&r, id);
	if (strcmp(verb, "delete") == 0) {
		json_decref(r.json);
		cli_key_print_deleted(id);
		return CLI_OK;
	}
	json_t *k = key_object(r.json);
	json_decref(r.json);
	cli_key_print_changed(k, done);
	json_decref(k);
	return CLI_OK;
}

int cli_key_remote(int argc, char **argv)
{
	const char *verb = argv[1];
	const struct verb_spec *vs = NULL;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verb, verbs[i].verb) == 0)
			vs = &verbs[i];
	if (!vs) {
		if (verb[0] == '-')
			cli_fail(CLI_USAGE, "key: give the command first: tokend key COMMAND ... --url URL "
			         "(see tokend key --help)");
		cli_fail(CLI_USAGE, "key: unknown command '%.40s' (see tokend key --help)", verb);
	}
	if (!rs.wipe_registered) {
		atexit(remote_wipe);
		rs.wipe_registered = 1;
	}
	remote_args a;
	parse_args(argc - 1, argv + 1, vs, &a);
	setup_urls(&a);
	int rc;
	if (strcmp(verb, "create") == 0)
		rc = remote_create(&a);
	else if (strcmp(verb, "list") == 0)
		rc = remote_list(&a);
	else
		rc = remote_key_op(verb, &a);
	json_decref(a.audiences);
	remote_wipe();
	return rc;
}
