/*
 * accounts.c - the admin API's accounts (self, list, create, get, patch),
 * an account's scope allow-list (PUT, operator), the scope catalogue, and
 * the audit log (an account's own events; an operator's, any account's).
 * A non-operator's queries are always bound to its own account: a missing
 * account never means "every account".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"

void tk_admin_account_self(tk_adminreq *ar)
{
	const char *p[] = { tk_admin_own(ar, ar->account) };
	tk_admin_run(ar, "SELECT tokend_account_json(a)::text FROM accounts a WHERE a.id = $1", 1, p, 0);
}

void tk_admin_account_get(tk_adminreq *ar)
{
	if (!ar->operator && strcmp(ar->id, ar->account) != 0)
		return tk_admin_send_forbidden(ar, TK_ADMIN_SCOPE_OPERATOR, "only an operator reads another account");
	const char *p[] = { tk_admin_own(ar, ar->id) };
	tk_admin_run(ar, "SELECT tokend_account_json(a)::text FROM accounts a WHERE a.id = $1", 1, p, 0);
}

void tk_admin_accounts_list(tk_adminreq *ar)
{
	tk_admin_run(ar, "SELECT jsonb_build_object('accounts', coalesce(jsonb_agg(tokend_account_json(a) ORDER BY a.id),"
	             " '[]'::jsonb))::text FROM accounts a", 0, NULL, 0);
}

void tk_admin_account_create(tk_adminreq *ar)
{
	static const char *const allowed[] = { "id", "name", "key_limit", NULL };
	const char *id, *name;
	if (tk_admin_only_fields(ar, allowed) != 0 || tk_admin_get_string(ar, "id", 1, 63, &id) != 0 ||
	    tk_admin_get_string(ar, "name", 0, 100, &name) != 0)
		return;
	json_t *lim = json_object_get(ar->body, "key_limit");
	char limtext[16] = "3";
	if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0 || json_integer_value(lim) > 100000))
		return tk_admin_send_error(ar, 400, "invalid_request", "key_limit must be a whole number from 0 to 100000",
		                           "key_limit");
	if (lim)
		snprintf(limtext, sizeof(limtext), "%lld", (long long)json_integer_value(lim));
	int id_ok = (id[0] >= 'a' && id[0] <= 'z') || (id[0] >= '0' && id[0] <= '9');
	for (const char *q = id; *q && id_ok; q++)
		id_ok = (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_';
	if (!id_ok)
		return tk_admin_send_error(ar, 400, "invalid_request", "id must be 1-63 lowercase letters, digits, '-' or "
		                           "'_', starting with a letter or digit", "id");
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), id, name ? name : "", tk_admin_own(ar, limtext) };
	tk_admin_run(ar, "WITH b AS (SELECT tokend_admin_begin($1, $2)),"
	             " ins AS (INSERT INTO accounts (id, name, key_limit) SELECT $3, $4, $5::int FROM b RETURNING *)"
	             " SELECT tokend_account_json(ins)::text FROM ins", 5, p, 1);
}

void tk_admin_account_patch(tk_adminreq *ar)
{
	static const char *const allowed[] = { "name", "key_limit", "disabled", NULL };
	const char *name;
	if (tk_admin_only_fields(ar, allowed) != 0 || tk_admin_get_string(ar, "name", 0, 100, &name) != 0)
		return;
	json_t *lim = json_object_get(ar->body, "key_limit"), *dis = json_object_get(ar->body, "disabled");
	char limtext[16] = "";
	if (lim && (!json_is_integer(lim) || json_integer_value(lim) < 0 || json_integer_value(lim) > 100000))
		return tk_admin_send_error(ar, 400, "invalid_request", "key_limit must be a whole number from 0 to 100000",
		                           "key_limit");
	if (dis && !json_is_boolean(dis))
		return tk_admin_send_error(ar, 400, "invalid_request", "disabled must be true or false", "disabled");
	if (lim)
		snprintf(limtext, sizeof(limtext), "%lld", (long long)json_integer_value(lim));
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), tk_admin_own(ar, ar->id), name,
	                    lim ? tk_admin_own(ar, limtext) : NULL, dis ? (json_is_true(dis) ? "t" : "f") : NULL };
	tk_admin_run(ar, "WITH b AS (SELECT tokend_admin_begin($1, $2)),"
	             " up AS (UPDATE accounts a SET name = coalesce($4, a.name),"
	             "  key_limit = coalesce($5::int, a.key_limit),"
	             "  disabled_at = CASE WHEN $6::boolean IS NULL THEN a.disabled_at"
	             "   WHEN $6::boolean THEN coalesce(a.disabled_at, now()) END"
	             "  FROM b WHERE a.id = $3 RETURNING a.*)"
	             " SELECT tokend_account_json(up)::text FROM up", 6, p, 1);
}

void tk_admin_account_scopes(tk_adminreq *ar)
{
	static const char *const allowed[] = { "scopes", NULL };
	char *scopes = NULL;
	size_t n;
	if (tk_admin_only_fields(ar, allowed) != 0)
		return;
	if (!json_is_array(json_object_get(ar->body, "scopes")))   /* [] empties the list */
		return tk_admin_send_error(ar, 400, "invalid_request", "scopes must be an array of scope names", "scopes");
	if (tk_admin_get_string_array(ar, "scopes", 0, 1000, 1, &scopes, &n) != 0)
		return;
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), tk_admin_own(ar, ar->id), tk_admin_own(ar, scopes) };
	free(scopes);
	tk_admin_run(ar, "SELECT tokend_account_set_scopes($1, $2, $3,"
	             " ARRAY(SELECT jsonb_array_elements_text($4::jsonb)))::text", 4, p, 1);
}

void tk_admin_scopes_list(tk_adminreq *ar)
{
	tk_admin_run(ar, "SELECT jsonb_build_object('scopes', coalesce(jsonb_agg(jsonb_build_object('name', name,"
	             " 'description', description, 'created_at', tokend_ts(created_at), 'public', public) ORDER BY name),"
	             " '[]'::jsonb))::text FROM scopes", 0, NULL, 0);
}

void tk_admin_scope_add(tk_adminreq *ar)
{
	static const char *const allowed[] = { "name", "description", "public", NULL };
	const char *name, *desc;
	if (tk_admin_only_fields(ar, allowed) != 0 || tk_admin_get_string(ar, "name", 1, TK_SCOPE_TOKEN_MAX, &name) != 0 ||
	    tk_admin_get_string(ar, "description", 0, 500, &desc) != 0)
		return;
	/* public: publishable keys may hold the scope (sql/010); fixed once added. */
	json_t *pub = json_object_get(ar->body, "public");
	if (pub && !json_is_null(pub) && !json_is_boolean(pub))
		return tk_admin_send_error(ar, 400, "invalid_request", "public must be true or false", "public");
	if (!tk_scope_token_valid(name, strlen(name)))
		return tk_admin_send_error(ar, 400, "invalid_request", "name is not a valid scope (RFC 6749 scope-token)", "name");
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), name, desc ? desc : "",
	                    json_is_true(pub) ? "t" : "f" };
	tk_admin_run(ar, "WITH b AS (SELECT tokend_admin_begin($1, $2)),"
	             " ins AS (INSERT INTO scopes (name, description, public) SELECT $3, $4, $5::boolean FROM b RETURNING *)"
	             " SELECT jsonb_build_object('name', name, 'description', description,"
	             " 'created_at', tokend_ts(created_at), 'public', public)::text FROM ins", 5, p, 1);
}

void tk_admin_audit(tk_adminreq *ar)
{
	const char *key = evhttp_find_header(&ar->query, "key");
	const char *cursor = evhttp_find_header(&ar->query, "cursor");
	const char *account = ar->account;
	if (ar->operator)   /* an operator sees every account's events, or the one asked for */
		account = evhttp_find_header(&ar->query, "account");
	int limit;
	if (tk_admin_parse_limit(ar, &limit) != 0)
		return;
	if (cursor && (strspn(cursor, "0123456789") != strlen(cursor) || strlen(cursor) == 0 || strlen(cursor) > 18))
		return tk_admin_send_error(ar, 400, "invalid_request", "malformed cursor", "cursor");
	if (key && tk_key_id_check(key, strlen(key)) != TK_KEYFMT_OK)
		return tk_admin_send_error(ar, 400, "invalid_request", "key must be a key ID", "key");
	char lim[16];
	snprintf(lim, sizeof(lim), "%d", limit);
	/* An operator may leave the account out (every account); anyone else
	 * sees its own account only, whatever $1 holds ($5: the flag). */
	const char *p[] = { account ? tk_admin_own(ar, account) : NULL, key ? tk_admin_own(ar, key) : NULL,
	                    cursor ? tk_admin_own(ar, cursor) : NULL, tk_admin_own(ar, lim), ar->operator ? "t" : "f" };
	tk_admin_run(ar,
	             "WITH page AS (SELECT * FROM audit_log l WHERE"
	             "  CASE WHEN $5::boolean THEN ($1::text IS NULL OR l.account_id = $1) ELSE l.account_id = $1 END"
	             "  AND ($2::text IS NULL OR l.key_id = $2) AND ($3::bigint IS NULL OR l.id < $3::bigint)"
	             "  ORDER BY l.id DESC LIMIT $4::int + 1),"
	             " shown AS (SELECT * FROM page ORDER BY id DESC LIMIT $4::int)"
	             " SELECT jsonb_build_object('events', coalesce((SELECT jsonb_agg(jsonb_build_object("
	             "  'id', s.id, 'at', tokend_ts(s.at), 'actor', s.actor, 'action', s.action,"
	             "  'account', s.account_id, 'key', s.key_id, 'address', s.address, 'detail', s.detail)"
	             "  ORDER BY s.id DESC) FROM shown s), '[]'::jsonb))::text,"
	             " CASE WHEN (SELECT count(*) FROM page) > $4::int THEN (SELECT min(id)::text FROM shown) END",
	             5, p, 0);
}
