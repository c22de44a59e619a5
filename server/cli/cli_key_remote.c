/*
 * cli_key_remote.c - the remote backend of `tokend key ...` (cli_key.h): the
 * key commands over the admin REST API (server/admin/), for administrators
 * without database access (`--url URL` or $TOKEND_URL).
 *
 * The credentials are an API key of tokend, from the environment only
 * ($TOKEND_CLIENT_ID, $TOKEND_CLIENT_SECRET; never options, so they stay out
 * of the process list and shell history). One run: POST URL/oauth2/token
 * (client_credentials, HTTP Basic with RFC 6749 section 2.3.1 form-encoding) for an
 * access token, then the admin API with Authorization: Bearer. Neither the
 * secret nor the token is ever printed.
 *
 * The command was parsed by cli_key.c and is printed there: this file only
 * talks to the server. A refusal of the API (status below 500 with an error)
 * is handed back with its error code and error_description; a failed
 * connection, a server error or an answer that is no admin API's exits 1 here.
 *
 * A request that is safe to repeat (the token request, reads, create with
 * its Idempotency-Key, rename, disable, enable) is retried once after a
 * dropped connection or a 502/503/504; create always sends an
 * Idempotency-Key (generated per run unless --idempotency-key is given) so
 * the retry can never make a second key.
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
#include "cli_key.h"
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

/* ---- the server, the credentials, the access token ---- */

static void setup_urls(const tk_key_request *a)
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

/*
 * A refusal (status >= 300): 1 with `ref` filled from the API's error and
 * error_description; exits 1 itself for what is no refusal of the request
 * (no admin API at that URL, a server failure). Releases ar->json.
 */
static int api_refusal(api_result *ar, tk_key_refusal *ref)
{
	const char *err = json_string_value(json_object_get(ar->json, "error"));
	char kind[32];
	int status = ar->status;
	snprintf(kind, sizeof(kind), "%s", err ? err : "");
	json_decref(ar->json);
	ar->json = NULL;
	if (status == 404 && strcmp(ar->why, "no such endpoint") == 0)
		cli_fail(CLI_REFUSED, "no admin API at %s (no such endpoint): when tokend serves it on a listener of "
		         "its own (admin_listen_port), give that as --url and the main one as --token-url", rs.base);
	if (status >= 500)
		cli_fail(CLI_REFUSED, "the server failed (HTTP status %d): %s", status, ar->why);
	return cli_key_refuse(ref, kind, "%s", ar->why);
}

/* The answer of a call about one key: 0 with *key (a new reference), or 1. */
static int key_answer(api_result *ar, json_t **key, tk_key_refusal *ref)
{
	if (ar->status >= 300)
		return api_refusal(ar, ref);
	if (!json_is_string(json_object_get(ar->json, "client_id")))
		cli_fail(CLI_REFUSED, "unexpected answer from %s: not a key", rs.base);
	*key = ar->json;
	return 0;
}

/* A path segment or query value, percent-encoded (malloc'd). */
static char *enc(const char *s)
{
	char *e = evhttp_uriencode(s, -1, 0);
	if (!e)
		cli_fail(CLI_REFUSED, "out of memory");
	return e;
}

/* ---- the backend ---- */

static void remote_open(const tk_key_request *rq)
{
	if (!rs.wipe_registered) {
		atexit(remote_wipe);
		rs.wipe_registered = 1;
	}
	setup_urls(rq);
	get_token();
}

static int remote_create(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_LEN + 1],
                         tk_key_refusal *ref)
{
	char idem[64];
	if (!rq->idem) {
		/* Always an Idempotency-Key: a retry can never make a second key. */
		unsigned char rnd[18];
		char b[32];
		if (tk_random_bytes(rnd, sizeof(rnd)) != 0)
			cli_fail(CLI_REFUSED, "the random number generator failed: no key was created");
		tk_b64url_encode(rnd, sizeof(rnd), b);
		snprintf(idem, sizeof(idem), "tokend-cli-%s", b);
	}
	json_t *body = json_object();
	if (!body)
		cli_fail(CLI_REFUSED, "out of memory: no key was created");
	json_object_set_new(body, "name", json_string(rq->name));
	json_object_set(body, "scopes", rq->scopes);
	if (json_array_size(rq->audiences))
		json_object_set(body, "audiences", rq->audiences);
	if (rq->subject)
		json_object_set_new(body, "subject", json_string(rq->subject));
	if (rq->expires_at[0])
		json_object_set_new(body, "expires_at", json_string(rq->expires_at));
	if (rq->lifetime_arg)
		json_object_set_new(body, "token_lifetime", json_integer(rq->lifetime));
	if (rq->account)
		json_object_set_new(body, "account", json_string(rq->account));
	if (rq->rate_limit)
		json_object_set_new(body, "rate_limit", json_integer(rq->rate_limit));

	api_result r = api_call("POST", "keys", body, rq->idem ? rq->idem : idem, 1);
	json_decref(body);
	int rc = key_answer(&r, key, ref);
	if (rc != 0)
		return rc;
	json_t *s = json_object_get(*key, "client_secret");
	secret[0] = '\0';
	if (json_is_string(s)) {
		if (json_string_length(s) != TK_SECRET_LEN)
			cli_fail(CLI_REFUSED, "unexpected answer from %s: not a client secret", rs.base);
		memcpy(secret, json_string_value(s), TK_SECRET_LEN + 1);
		tk_wipe((void *)(uintptr_t)json_string_value(s), json_string_length(s));   /* jansson's copy */
		json_object_del(*key, "client_secret");
	}
	return 0;
}

/* Every key of one account (or the caller's, account NULL), page by page. */
static int list_account(json_t *out, const char *account, const tk_key_request *rq, tk_key_refusal *ref)
{
	char *cursor = NULL;
	for (int page = 0; page < LIST_PAGES_MAX; page++) {
		char path[4096];
		size_t n = (size_t)snprintf(path, sizeof(path), "keys?");
		char *e;
		if (rq->page_size)
			n += (size_t)snprintf(path + n, sizeof(path) - n, "limit=%d&", rq->page_size);
		if (account) {
			e = enc(account);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "account=%s&", e);
			free(e);
		}
		for (size_t f = 0; f < tk_keyfilters_count; f++) {
			if (!rq->filters[f] || n >= sizeof(path))
				continue;
			e = enc(rq->filters[f]);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "%s=%s&", tk_keyfilters[f].name, e);
			free(e);
		}
		if (rq->sort && n < sizeof(path))
			n += (size_t)snprintf(path + n, sizeof(path) - n, "sort=%s&order=%s&", rq->sort, rq->desc ? "desc" : "asc");
		if (cursor) {
			e = enc(cursor);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "cursor=%s&", e);
			free(e);
		}
		if (n >= sizeof(path))
			cli_fail(CLI_REFUSED, "the request URL is too long");
		path[n - 1] = '\0';   /* the last '&' (or the '?') */
		api_result r = api_call("GET", path, NULL, NULL, 1);
		if (r.status >= 300) {
			free(cursor);
			return api_refusal(&r, ref);
		}
		json_t *keys = json_object_get(r.json, "keys"), *k;
		size_t i;
		if (!json_is_array(keys))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no key list", rs.base);
		json_array_foreach(keys, i, k) {
			if (!json_is_string(json_object_get(k, "client_id")))
				cli_fail(CLI_REFUSED, "unexpected answer from %s: not a key", rs.base);
			json_array_append(out, k);
		}
		const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
		if (next && cursor && strcmp(next, cursor) == 0)
			cli_fail(CLI_REFUSED, "unexpected answer from %s: the list does not advance", rs.base);
		free(cursor);
		cursor = next && *next ? strdup(next) : NULL;
		if (next && *next && !cursor)
			cli_fail(CLI_REFUSED, "out of memory");
		json_decref(r.json);
		if (!cursor)
			return 0;
	}
	cli_fail(CLI_REFUSED, "the key list has too many pages");
}

/* The order of --sort across accounts (each account's pages come sorted by
 * the server; an operator's listing of every account is merged here). The
 * same order as db/keylist.c's: never used first, names without case. */
static const tk_key_request *sort_rq;

/* Entries of the merge: a key and its place in the list (ties keep the
 * server's order, which knows sub-second times). */
typedef struct sort_item {
	json_t *key;
	size_t pos;
} sort_item;

static int sort_cmp(const void *pa, const void *pb)
{
	const sort_item *a = pa, *b = pb;
	const char *field = sort_rq->sort;
	const char *x = json_string_value(json_object_get(a->key, field));
	const char *y = json_string_value(json_object_get(b->key, field));
	int c = strcmp(field, "name") == 0 ? strcasecmp(x ? x : "", y ? y : "") : strcmp(x ? x : "", y ? y : "");
	if (sort_rq->desc)
		c = -c;
	return c ? c : (a->pos > b->pos) - (a->pos < b->pos);
}

static void sort_keys(json_t *arr, const tk_key_request *rq)
{
	size_t n = json_array_size(arr);
	if (!rq->sort || n < 2)
		return;
	sort_item *v = calloc(n, sizeof(*v));
	if (!v)
		cli_fail(CLI_REFUSED, "out of memory");
	for (size_t i = 0; i < n; i++) {
		v[i].key = json_incref(json_array_get(arr, i));
		v[i].pos = i;
	}
	sort_rq = rq;
	qsort(v, n, sizeof(*v), sort_cmp);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i].key);
	free(v);
}

static int remote_list(const tk_key_request *rq, json_t **keys, tk_key_refusal *ref)
{
	json_t *out = json_array();
	int rc = 0;
	if (!out)
		cli_fail(CLI_REFUSED, "out of memory");
	if (rq->account) {
		/* The account must exist and be the caller's (or the caller an operator). */
		char path[256], *e = enc(rq->account);
		snprintf(path, sizeof(path), "accounts/%s", e);
		free(e);
		api_result r = api_call("GET", path, NULL, NULL, 1);
		if (r.status == 404 && strcmp(r.why, "no such endpoint") != 0) {
			json_decref(r.json);
			json_decref(out);
			return cli_key_refuse(ref, "not_found", "no account '%s'", rq->account);
		}
		if (r.status >= 300)
			rc = api_refusal(&r, ref);
		else {
			json_decref(r.json);
			rc = list_account(out, rq->account, rq, ref);
		}
	} else if (rs.operator) {
		/* An operator sees every account, like the local command. */
		api_result r = api_call("GET", "accounts", NULL, NULL, 1);
		if (r.status >= 300) {
			json_decref(out);
			return api_refusal(&r, ref);
		}
		json_t *accts = json_object_get(r.json, "accounts"), *acc;
		size_t i;
		if (!json_is_array(accts))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no account list", rs.base);
		json_array_foreach(accts, i, acc) {
			const char *id = json_string_value(json_object_get(acc, "id"));
			if (id && (rc = list_account(out, id, rq, ref)) != 0)
				break;
		}
		json_decref(r.json);
		sort_keys(out, rq);
	} else {
		rc = list_account(out, NULL, rq, ref);
	}
	if (rc != 0) {
		json_decref(out);
		return rc;
	}
	*keys = out;
	return 0;
}

/* One call about one key: `suffix` after keys/ID ("" or "/disable", ...). */
static int key_call(const tk_key_request *rq, const char *method, const char *suffix, json_t *body,
                    int retry_safe, json_t **key, tk_key_refusal *ref)
{
	char path[128];
	snprintf(path, sizeof(path), "keys/%s%s", rq->id, suffix);
	api_result r = api_call(method, path, body, NULL, retry_safe);
	json_decref(body);
	return key_answer(&r, key, ref);
}

static int remote_show(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_call(rq, "GET", "", NULL, 1, key, ref);
}

static int remote_rename(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_call(rq, "PATCH", "", json_pack("{s:s}", "name", rq->name), 1, key, ref);
}

static int remote_set_rate_limit(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	json_t *body = json_object();
	json_object_set_new(body, "rate_limit", rq->rate_limit ? json_integer(rq->rate_limit) : json_null());
	return key_call(rq, "PATCH", "", body, 1, key, ref);
}

static int remote_disable(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_call(rq, "POST", "/disable", NULL, 1, key, ref);
}

static int remote_enable(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	return key_call(rq, "POST", "/enable", NULL, 1, key, ref);
}

static int remote_revoke(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	json_t *body = json_object();
	if (rq->reason)
		json_object_set_new(body, "reason", json_string(rq->reason));
	/* Not retried: a second revoke is refused ("already revoked"). */
	return key_call(rq, "POST", "/revoke", body, 0, key, ref);
}

static int remote_delete(const tk_key_request *rq, json_t **key, tk_key_refusal *ref)
{
	char path[128];
	snprintf(path, sizeof(path), "keys/%s%s", rq->id, rq->force ? "?confirm=true" : "");
	/* Not retried: a second delete finds no key. */
	api_result r = api_call("DELETE", path, NULL, NULL, 0);
	if (r.status >= 300)
		return api_refusal(&r, ref);
	json_decref(r.json);
	*key = NULL;
	return 0;
}

static int remote_rotate_secret(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_LEN + 1],
                                tk_key_refusal *ref)
{
	/* Not retried: a second rotation would end the first one's new secret
	 * (never shown) and the overlap of the old one. */
	int rc = key_call(rq, "POST", "/rotate-secret", json_pack("{s:I}", "overlap_seconds", (json_int_t)rq->overlap),
	                  0, key, ref);
	if (rc != 0)
		return rc;
	json_t *s = json_object_get(*key, "client_secret");
	if (!json_is_string(s) || json_string_length(s) != TK_SECRET_LEN)
		cli_fail(CLI_REFUSED, "unexpected answer from %s: no new client secret (the secret may have rotated: "
		         "see tokend key show %s)", rs.base, rq->id);
	memcpy(secret, json_string_value(s), TK_SECRET_LEN + 1);
	tk_wipe((void *)(uintptr_t)json_string_value(s), json_string_length(s));   /* jansson's copy */
	json_object_del(*key, "client_secret");
	return 0;
}

const tk_keys_backend tk_keys_remote = {
	.name = "remote",
	.remote_options = 1,
	.account_required = 0,
	.open = remote_open,
	.close = remote_wipe,
	.create = remote_create,
	.list = remote_list,
	.show = remote_show,
	.rename = remote_rename,
	.set_rate_limit = remote_set_rate_limit,
	.disable = remote_disable,
	.enable = remote_enable,
	.revoke = remote_revoke,
	.delete_key = remote_delete,
	.rotate_secret = remote_rotate_secret,
};
