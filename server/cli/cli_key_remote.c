/*
 * cli_key_remote.c - the remote backend of `tokend key ...` (cli_key.h): the
 * key commands over the admin REST API (server/admin/), for administrators
 * without database access (`--url URL` or $TOKEND_URL), on the session of
 * cli_remote.c (credentials, access token, calls, retries).
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

#include <jansson.h>

#include <tokend/crypto.h>
#include <tokend/keyfmt.h>
#include <tokend/scope.h>

#include "cli.h"
#include "cli_key.h"
#include "cli_remote.h"

#define LIST_PAGES_MAX    100000

/* A refusal (status >= 300): 1 with `ref` filled from the API's error and
 * error_description; what is no refusal exits in cli_remote_check_refusal.
 * Releases ar->json. */
static int api_refusal(cli_api_result *ar, tk_key_refusal *ref)
{
	cli_remote_check_refusal(ar);
	const char *err = json_string_value(json_object_get(ar->json, "error"));
	char kind[32];
	snprintf(kind, sizeof(kind), "%s", err ? err : "");
	json_decref(ar->json);
	ar->json = NULL;
	return cli_key_refuse(ref, kind, "%s", ar->why);
}

/* The answer of a call about one key: 0 with *key (a new reference), or 1. */
static int key_answer(cli_api_result *ar, json_t **key, tk_key_refusal *ref)
{
	if (ar->status >= 300)
		return api_refusal(ar, ref);
	if (!json_is_string(json_object_get(ar->json, "client_id")))
		cli_fail(CLI_REFUSED, "unexpected answer from %s: not a key", cli_remote_base());
	*key = ar->json;
	return 0;
}

/* ---- the backend ---- */

static void remote_open(const tk_key_request *rq)
{
	cli_remote_open(rq->url, rq->token_url);
}

static int remote_create(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_MAX + 1],
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
	if (!rq->role)
		json_object_set(body, "scopes", rq->scopes);
	else
		json_object_set_new(body, "role", json_string(rq->role));
	if (rq->member)
		json_object_set_new(body, "member", json_string(rq->member));
	if (rq->environment)
		json_object_set_new(body, "environment", json_string(rq->environment));
	if (rq->claims)
		json_object_set(body, "claims", rq->claims);
	if (rq->publishable) {
		json_object_set_new(body, "publishable", json_true());
		json_object_set(body, "allowed_origins", rq->origins);
	}
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

	cli_api_result r = cli_remote_call("POST", "keys", body, rq->idem ? rq->idem : idem, 1);
	json_decref(body);
	int rc = key_answer(&r, key, ref);
	if (rc != 0)
		return rc;
	json_t *s = json_object_get(*key, "client_secret");
	secret[0] = '\0';
	if (json_is_string(s)) {
		if (json_string_length(s) > TK_SECRET_MAX ||
		    tk_secret_check(json_string_value(s), json_string_length(s)) != TK_KEYFMT_OK)
			cli_fail(CLI_REFUSED, "unexpected answer from %s: not a client secret", cli_remote_base());
		memcpy(secret, json_string_value(s), json_string_length(s) + 1);
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
			e = cli_remote_enc(account);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "account=%s&", e);
			free(e);
		}
		for (size_t f = 0; f < tk_keyfilters_count; f++) {
			if (!rq->filters[f] || n >= sizeof(path))
				continue;
			e = cli_remote_enc(rq->filters[f]);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "%s=%s&", tk_keyfilters[f].name, e);
			free(e);
		}
		if (rq->sort && n < sizeof(path))
			n += (size_t)snprintf(path + n, sizeof(path) - n, "sort=%s&order=%s&", rq->sort, rq->desc ? "desc" : "asc");
		if (cursor) {
			e = cli_remote_enc(cursor);
			n += (size_t)snprintf(path + n, sizeof(path) - n, "cursor=%s&", e);
			free(e);
		}
		if (n >= sizeof(path))
			cli_fail(CLI_REFUSED, "the request URL is too long");
		path[n - 1] = '\0';   /* the last '&' (or the '?') */
		cli_api_result r = cli_remote_call("GET", path, NULL, NULL, 1);
		if (r.status >= 300) {
			free(cursor);
			return api_refusal(&r, ref);
		}
		json_t *keys = json_object_get(r.json, "keys"), *k;
		size_t i;
		if (!json_is_array(keys))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no key list", cli_remote_base());
		json_array_foreach(keys, i, k) {
			if (!json_is_string(json_object_get(k, "client_id")))
				cli_fail(CLI_REFUSED, "unexpected answer from %s: not a key", cli_remote_base());
			json_array_append(out, k);
		}
		const char *next = json_string_value(json_object_get(r.json, "next_cursor"));
		if (next && cursor && strcmp(next, cursor) == 0)
			cli_fail(CLI_REFUSED, "unexpected answer from %s: the list does not advance", cli_remote_base());
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
		char path[256], *e = cli_remote_enc(rq->account);
		snprintf(path, sizeof(path), "accounts/%s", e);
		free(e);
		cli_api_result r = cli_remote_call("GET", path, NULL, NULL, 1);
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
	} else if (cli_remote_operator()) {
		/* An operator sees every account, like the local command. */
		cli_api_result r = cli_remote_call("GET", "accounts", NULL, NULL, 1);
		if (r.status >= 300) {
			json_decref(out);
			return api_refusal(&r, ref);
		}
		json_t *accts = json_object_get(r.json, "accounts"), *acc;
		size_t i;
		if (!json_is_array(accts))
			cli_fail(CLI_REFUSED, "unexpected answer from %s: no account list", cli_remote_base());
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
	cli_api_result r = cli_remote_call(method, path, body, NULL, retry_safe);
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
	cli_api_result r = cli_remote_call("DELETE", path, NULL, NULL, 0);
	if (r.status >= 300)
		return api_refusal(&r, ref);
	json_decref(r.json);
	*key = NULL;
	return 0;
}

static int remote_rotate_secret(const tk_key_request *rq, json_t **key, char secret[TK_SECRET_MAX + 1],
                                tk_key_refusal *ref)
{
	/* Not retried: a second rotation would end the first one's new secret
	 * (never shown) and the overlap of the old one. */
	int rc = key_call(rq, "POST", "/rotate-secret", json_pack("{s:I}", "overlap_seconds", (json_int_t)rq->overlap),
	                  0, key, ref);
	if (rc != 0)
		return rc;
	json_t *s = json_object_get(*key, "client_secret");
	if (!json_is_string(s) || json_string_length(s) > TK_SECRET_MAX ||
	    tk_secret_check(json_string_value(s), json_string_length(s)) != TK_KEYFMT_OK)
		cli_fail(CLI_REFUSED, "unexpected answer from %s: no new client secret (the secret may have rotated: "
		         "see tokend key show %s)", cli_remote_base(), rq->id);
	memcpy(secret, json_string_value(s), json_string_length(s) + 1);
	tk_wipe((void *)(uintptr_t)json_string_value(s), json_string_length(s));   /* jansson's copy */
	json_object_del(*key, "client_secret");
	return 0;
}

const tk_keys_backend tk_keys_remote = {
	.name = "remote",
	.remote_options = 1,
	.account_required = 0,
	.open = remote_open,
	.close = cli_remote_close,
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
