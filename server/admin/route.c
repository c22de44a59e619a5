/* route.c - the admin API's route table and its matcher (see route.h). */
#include <string.h>

#include "route.h"

const tk_admin_route tk_admin_route_table[] = {
	{ EVHTTP_REQ_GET, "account", TK_ADMIN_OP_ACCOUNT_SELF, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_GET, "accounts", TK_ADMIN_OP_ACCOUNTS_LIST, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_POST, "accounts", TK_ADMIN_OP_ACCOUNTS_CREATE, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_GET, "accounts/{id}", TK_ADMIN_OP_ACCOUNT_GET, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_PATCH, "accounts/{id}", TK_ADMIN_OP_ACCOUNT_PATCH, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_PUT, "accounts/{id}/scopes", TK_ADMIN_OP_ACCOUNT_SCOPES, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_GET, "scopes", TK_ADMIN_OP_SCOPES_LIST, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_POST, "scopes", TK_ADMIN_OP_SCOPES_ADD, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_GET, "keys", TK_ADMIN_OP_KEYS_LIST, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_POST, "keys", TK_ADMIN_OP_KEYS_CREATE, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_GET, "keys/{id}", TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_PATCH, "keys/{id}", TK_ADMIN_OP_KEY_PATCH, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_DELETE, "keys/{id}", TK_ADMIN_OP_KEY_DELETE, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_POST, "keys/{id}/disable", TK_ADMIN_OP_KEY_DISABLE, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_POST, "keys/{id}/enable", TK_ADMIN_OP_KEY_ENABLE, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_POST, "keys/{id}/revoke", TK_ADMIN_OP_KEY_REVOKE, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_POST, "keys/{id}/rotate-secret", TK_ADMIN_OP_KEY_ROTATE, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_GET, "audit", TK_ADMIN_OP_AUDIT, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_GET, "roles", TK_ADMIN_OP_ROLES_LIST, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_POST, "roles", TK_ADMIN_OP_ROLES_ADD, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_GET, "roles/{id}", TK_ADMIN_OP_ROLE_GET, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_PATCH, "roles/{id}", TK_ADMIN_OP_ROLE_PATCH, TK_ADMIN_NEED_OPERATOR },
	{ EVHTTP_REQ_GET, "members", TK_ADMIN_OP_MEMBERS_LIST, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_POST, "members", TK_ADMIN_OP_MEMBERS_ADD, TK_ADMIN_NEED_WRITE },
	{ EVHTTP_REQ_GET, "members/{id}", TK_ADMIN_OP_MEMBER_GET, TK_ADMIN_NEED_READ },
	{ EVHTTP_REQ_POST, "members/{id}/deactivate", TK_ADMIN_OP_MEMBER_DEACTIVATE, TK_ADMIN_NEED_WRITE },
};
const size_t tk_admin_route_count = sizeof(tk_admin_route_table) / sizeof(tk_admin_route_table[0]);

/* Does path[0..len) fit `pat`? {id} takes one non-empty segment shorter
 * than TK_ADMIN_ID_MAX, copied to id. */
static int fits(const char *pat, const char *path, size_t len, char id[TK_ADMIN_ID_MAX])
{
	size_t i = 0;
	id[0] = '\0';
	while (*pat) {
		if (strncmp(pat, "{id}", 4) == 0) {
			size_t n = 0;
			while (i + n < len && path[i + n] != '/')
				n++;
			if (n == 0 || n >= TK_ADMIN_ID_MAX)
				return 0;
			memcpy(id, path + i, n);
			id[n] = '\0';
			i += n;
			pat += 4;
			continue;
		}
		if (i >= len || path[i] != *pat)
			return 0;
		i++;
		pat++;
	}
	return i == len;
}

int tk_admin_route_match(enum evhttp_cmd_type method, const char *uri, tk_admin_match *m)
{
	size_t plen = strlen(TK_ADMIN_PREFIX);
	if (!uri || strncmp(uri, TK_ADMIN_PREFIX, plen) != 0)
		return 404;
	size_t len = strcspn(uri, "?");
	if (len >= TK_ADMIN_PATH_MAX)
		return 404;
	const char *rest = uri + plen;
	len -= plen;
	int path_known = 0;
	char id[TK_ADMIN_ID_MAX];
	for (size_t i = 0; i < tk_admin_route_count; i++) {
		const tk_admin_route *r = &tk_admin_route_table[i];
		if (!fits(r->pattern, rest, len, id))
			continue;
		path_known = 1;
		if (r->method != method)
			continue;
		m->op = r->op;
		m->need = r->need;
		memcpy(m->id, id, sizeof(m->id));
		return 0;
	}
	return path_known ? 405 : 404;
}
