/*
 * members.c - the admin API's roles (a global catalogue of named scope sets:
 * anyone with admin read lists them, an operator adds and changes them) and
 * members (the people of an account: list, get, add, deactivate). The rules
 * live in SQL (sql/007_key_model.sql: tokend_role_put, tokend_member_add,
 * tokend_member_deactivate), called alike by the local CLI; this file checks
 * the shape of inputs and passes the caller's account (an operator may name
 * another one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"

/* The account a member operation acts on: the caller's own, or for an
 * operator the one named by `?account=` / the body's "account". NULL after
 * an error answer. */
static const char *member_account(tk_adminreq *ar)
{
	const char *account = ar->account;
	const char *asked = evhttp_find_header(&ar->query, "account");
	json_t *b = ar->body ? json_object_get(ar->body, "account") : NULL;
	if (b && !json_is_null(b)) {
		if (!json_is_string(b)) {
			tk_admin_send_error(ar, 400, "invalid_request", "account must be a string", "account");
			return NULL;
		}
		asked = json_string_value(b);
	}
	if (asked && strcmp(asked, ar->account) != 0) {
		if (!ar->operator) {
			tk_admin_send_forbidden(ar, TK_ADMIN_SCOPE_OPERATOR, "only an operator acts on another account");
			return NULL;
		}
		account = asked;
	}
	return account;
}

void tk_admin_roles_list(tk_adminreq *ar)
{
	tk_admin_run(ar, "SELECT jsonb_build_object('roles', coalesce(jsonb_agg(tokend_role_json(r) ORDER BY r.name),"
	             " '[]'::jsonb))::text FROM roles r", 0, NULL, 0);
}

void tk_admin_role_get(tk_adminreq *ar)
{
	const char *p[] = { tk_admin_own(ar, ar->id) };
	tk_admin_run(ar, "SELECT tokend_role_json(r)::text FROM roles r WHERE r.name = $1", 1, p, 0);
}

/* POST /roles (add) and PATCH /roles/{name} (description and/or scopes). */
void tk_admin_role_put(tk_adminreq *ar)
{
	int create = ar->op == TK_ADMIN_OP_ROLES_ADD;
	static const char *const add_fields[] = { "name", "description", "scopes", NULL };
	static const char *const patch_fields[] = { "description", "scopes", NULL };
	const char *name = ar->id, *desc;
	char *scopes = NULL;
	size_t n;
	if (tk_admin_only_fields(ar, create ? add_fields : patch_fields) != 0 ||
	    (create && tk_admin_get_string(ar, "name", 1, 63, &name) != 0) ||
	    tk_admin_get_string(ar, "description", 0, 500, &desc) != 0 ||
	    tk_admin_get_string_array(ar, "scopes", create, TK_SCOPES_MAX, 1, &scopes, &n) != 0)
		return;
	if (!json_object_get(ar->body, "scopes") || json_is_null(json_object_get(ar->body, "scopes"))) {
		free(scopes);   /* absent: unchanged (never an empty list) */
		scopes = NULL;
	}
	if (!create && !desc && !scopes)
		return tk_admin_send_error(ar, 400, "invalid_request", "nothing to change: give scopes or description", NULL);
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), tk_admin_own(ar, name), desc,
	                    scopes ? tk_admin_own(ar, scopes) : NULL, create ? "t" : "f" };
	free(scopes);
	tk_admin_run(ar, "SELECT tokend_role_put($1, $2, $3, $4,"
	             " CASE WHEN $5::jsonb IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text($5::jsonb)) END,"
	             " $6::boolean)::text", 6, p, 1);
}

void tk_admin_members_list(tk_adminreq *ar)
{
	const char *account = member_account(ar);
	if (!account)
		return;
	const char *p[] = { tk_admin_own(ar, account) };
	tk_admin_run(ar, "SELECT jsonb_build_object('members', coalesce(jsonb_agg(tokend_member_json(m) ORDER BY m.id),"
	             " '[]'::jsonb))::text FROM members m WHERE m.account_id = $1", 1, p, 0);
}

void tk_admin_member_get(tk_adminreq *ar)
{
	const char *account = member_account(ar);
	if (!account)
		return;
	const char *p[] = { tk_admin_own(ar, account), tk_admin_own(ar, ar->id) };
	tk_admin_run(ar, "SELECT tokend_member_json(m)::text FROM members m WHERE m.account_id = $1 AND m.id = $2",
	             2, p, 0);
}

void tk_admin_member_add(tk_adminreq *ar)
{
	static const char *const allowed[] = { "id", "name", "account", NULL };
	const char *id, *name;
	if (tk_admin_only_fields(ar, allowed) != 0 || tk_admin_get_string(ar, "id", 1, 128, &id) != 0 ||
	    tk_admin_get_string(ar, "name", 1, 100, &name) != 0)
		return;
	const char *account = member_account(ar);
	if (!account)
		return;
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), tk_admin_own(ar, account), id, name };
	tk_admin_run(ar, "SELECT tokend_member_add($1, $2, $3, $4, $5)::text", 5, p, 1);
}

void tk_admin_member_deactivate(tk_adminreq *ar)
{
	static const char *const allowed[] = { "account", NULL };
	if (ar->body && tk_admin_only_fields(ar, allowed) != 0)
		return;
	const char *account = member_account(ar);
	if (!account)
		return;
	const char *p[] = { tk_admin_own(ar, ar->actor), tk_admin_own(ar, ar->address), tk_admin_own(ar, account),
	                    tk_admin_own(ar, ar->id) };
	tk_admin_run(ar, "SELECT tokend_member_deactivate($1, $2, $3, $4)::text", 4, p, 1);
}
