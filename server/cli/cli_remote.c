/*
 * cli_remote.c - the command line's session with the admin REST API (see
 * cli_remote.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>

#include "cli.h"
#include "cli_remote.h"
#include "httpclient.h"

#define REMOTE_USER_AGENT "tokend-cli"

/* The one remote session of this process. */
static struct {
	char base[2048];                 /* the server URL, no trailing slash */
	char token_url[2048 + 64];
	char token[8192];                /* the access token (wiped at exit) */
	char bearer[8200];               /* "Bearer <token>" (wiped at exit) */
	int operator;                    /* the token holds tokend:operator */
	int wipe_registered;
} rs;

void cli_remote_close(void)
{
	tk_wipe(rs.token, sizeof(rs.token));
	tk_wipe(rs.bearer, sizeof(rs.bearer));
}

/* ---- the server, the credentials, the access token ---- */

static void setup_urls(const char *url, const char *token_url)
{
	if (!url)
		url = getenv("TOKEND_URL");
	if (!token_url)
		token_url = getenv("TOKEND_TOKEN_URL");
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
		if (tk_secret_check(*id, strlen(*id)) == TK_KEYFMT_OK || strncmp(*id, TK_SECRET_PREFIX, strlen(TK_SECRET_PREFIX)) == 0)
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
	char eid[3 * TK_KEY_ID_MAX + 8], esecret[3 * TK_SECRET_MAX + 8], pair[sizeof(eid) + sizeof(esecret) + 2];
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


cli_api_result cli_remote_call(const char *method, const char *path, json_t *body, const char *idem, int retry_safe)
{
	cli_api_result ar = { 0 };
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

/* A path segment or query value, percent-encoded (malloc'd). */
char *cli_remote_enc(const char *s)
{
	char *e = evhttp_uriencode(s, -1, 0);
	if (!e)
		cli_fail(CLI_REFUSED, "out of memory");
	return e;
}

void cli_remote_check_refusal(const cli_api_result *r)
{
	if (r->status == 404 && strcmp(r->why, "no such endpoint") == 0)
		cli_fail(CLI_REFUSED, "no admin API at %s (no such endpoint): when tokend serves it on a listener of "
		         "its own (admin_listen_port), give that as --url and the main one as --token-url", rs.base);
	if (r->status >= 500)
		cli_fail(CLI_REFUSED, "the server failed (HTTP status %d): %s", r->status, r->why);
}

void cli_remote_open(const char *url, const char *token_url)
{
	if (!rs.wipe_registered) {
		atexit(cli_remote_close);
		rs.wipe_registered = 1;
	}
	setup_urls(url, token_url);
	get_token();
}

int cli_remote_operator(void)
{
	return rs.operator;
}

const char *cli_remote_base(void)
{
	return rs.base;
}

int cli_wants_remote(int argc, char **argv)
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

void cli_remote_take_options(int *argc, char **argv, const char **url, const char **token_url)
{
	int o = 1;
	for (int i = 1; i < *argc; i++) {
		const char **dst = NULL;
		const char *val = NULL;
		if (strcmp(argv[i], "--url") == 0 || strcmp(argv[i], "--token-url") == 0) {
			if (i + 1 >= *argc)
				cli_fail(CLI_USAGE, "%s: give a URL", argv[i]);
			dst = argv[i][2] == 'u' ? url : token_url;
			val = argv[++i];
		} else if (strncmp(argv[i], "--url=", 6) == 0) {
			dst = url;
			val = argv[i] + 6;
		} else if (strncmp(argv[i], "--token-url=", 12) == 0) {
			dst = token_url;
			val = argv[i] + 12;
		}
		if (dst)
			*dst = val;
		else
			argv[o++] = argv[i];
	}
	argv[o] = NULL;
	*argc = o;
}
