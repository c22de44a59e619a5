/*
 * route.h - the admin API's route table: (method, path pattern) -> the
 * operation and the scope it needs. Matching is a pure function (no I/O, no
 * allocation), unit-tested in tests/unit/server/test_admin_router.c.
 */
#ifndef TOKEND_ADMIN_ROUTE_H
#define TOKEND_ADMIN_ROUTE_H

#include <stddef.h>

#include <event2/http.h>

#define TK_ADMIN_PREFIX   "/admin/v1/"
#define TK_ADMIN_PATH_MAX 256   /* a longer path (query excluded) is no endpoint: 404 */
#define TK_ADMIN_ID_MAX   72    /* {id}: 1..71 bytes, any but '/' (not decoded) */

typedef enum { TK_ADMIN_NEED_READ, TK_ADMIN_NEED_WRITE, TK_ADMIN_NEED_OPERATOR } tk_admin_need;

typedef enum {
	TK_ADMIN_OP_ACCOUNT_SELF, TK_ADMIN_OP_ACCOUNTS_LIST, TK_ADMIN_OP_ACCOUNTS_CREATE,
	TK_ADMIN_OP_ACCOUNT_GET, TK_ADMIN_OP_ACCOUNT_PATCH, TK_ADMIN_OP_ACCOUNT_SCOPES,
	TK_ADMIN_OP_SCOPES_LIST, TK_ADMIN_OP_SCOPES_ADD,
	TK_ADMIN_OP_KEYS_LIST, TK_ADMIN_OP_KEYS_CREATE, TK_ADMIN_OP_KEY_GET, TK_ADMIN_OP_KEY_PATCH,
	TK_ADMIN_OP_KEY_DISABLE, TK_ADMIN_OP_KEY_ENABLE, TK_ADMIN_OP_KEY_REVOKE, TK_ADMIN_OP_KEY_DELETE,
	TK_ADMIN_OP_KEY_ROTATE,
	TK_ADMIN_OP_AUDIT,
	TK_ADMIN_OP_ROLES_LIST, TK_ADMIN_OP_ROLES_ADD, TK_ADMIN_OP_ROLE_GET, TK_ADMIN_OP_ROLE_PATCH,
	TK_ADMIN_OP_MEMBERS_LIST, TK_ADMIN_OP_MEMBERS_ADD, TK_ADMIN_OP_MEMBER_GET, TK_ADMIN_OP_MEMBER_DEACTIVATE,
	TK_ADMIN_OP_COUNT
} tk_admin_op;

/* One route: `pattern` is relative to TK_ADMIN_PREFIX; "{id}" stands for one
 * path segment. */
typedef struct {
	enum evhttp_cmd_type method;
	const char *pattern;
	tk_admin_op op;
	tk_admin_need need;
} tk_admin_route;

extern const tk_admin_route tk_admin_route_table[];
extern const size_t tk_admin_route_count;

typedef struct {
	tk_admin_op op;
	tk_admin_need need;
	char id[TK_ADMIN_ID_MAX];   /* {id} from the path, "" if the pattern has none */
} tk_admin_match;

/*
 * Match a request URI (the query string, from '?', is ignored) against the
 * table. 0: *m holds the operation, its scope and the {id}; 405: a route has
 * this path but not this method; 404: no route has this path (also a path
 * outside TK_ADMIN_PREFIX or of TK_ADMIN_PATH_MAX bytes or more). *m is left
 * unchanged unless 0 is returned.
 */
int tk_admin_route_match(enum evhttp_cmd_type method, const char *uri, tk_admin_match *m);

#endif
