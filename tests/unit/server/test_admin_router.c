/*
 * test_admin_router.c - the admin API's route table (server/admin/route.c):
 * every route with its operation and scope, wrong methods (405 on a known
 * path, 404 on an unknown one), {id} with odd characters and its length
 * bounds, trailing and doubled slashes, the prefix, the path length cap and
 * the query string (ignored by the match).
 */
#include <string.h>

#include "route.h"
#include "unit.h"

enum { GET = EVHTTP_REQ_GET, POST = EVHTTP_REQ_POST, PUT = EVHTTP_REQ_PUT, PATCH = EVHTTP_REQ_PATCH,
       DELETE = EVHTTP_REQ_DELETE, HEAD = EVHTTP_REQ_HEAD, OPTIONS = EVHTTP_REQ_OPTIONS };

static int match(int method, const char *uri, tk_admin_match *m)
{
	memset(m, 0x5a, sizeof(*m));
	return tk_admin_route_match((enum evhttp_cmd_type)method, uri, m);
}

/* `uri` routes to `op` needing `need`, with {id} `id` ("" for none). */
static void routes_to(int method, const char *uri, tk_admin_op op, tk_admin_need need, const char *id)
{
	tk_admin_match m;
	int rc = match(method, uri, &m);
	TEST_ASSERT(rc == 0);
	if (rc != 0) {
		fprintf(stderr, "   %d %s -> %d\n", method, uri, rc);
		return;
	}
	TEST_ASSERT(m.op == op);
	TEST_ASSERT(m.need == need);
	TEST_ASSERT_STR(m.id, id);
}

static void answers(int method, const char *uri, int status)
{
	tk_admin_match m, before;
	memset(&before, 0x5a, sizeof(before));
	int rc = match(method, uri, &m);
	if (rc != status)
		fprintf(stderr, "   %d %s -> %d, want %d\n", method, uri, rc, status);
	TEST_ASSERT(rc == status);
	TEST_ASSERT(memcmp(&m, &before, sizeof(m)) == 0);   /* untouched unless matched */
}

static void test_every_route(void)
{
	routes_to(GET, "/admin/v1/account", TK_ADMIN_OP_ACCOUNT_SELF, TK_ADMIN_NEED_READ, "");
	routes_to(GET, "/admin/v1/accounts", TK_ADMIN_OP_ACCOUNTS_LIST, TK_ADMIN_NEED_OPERATOR, "");
	routes_to(POST, "/admin/v1/accounts", TK_ADMIN_OP_ACCOUNTS_CREATE, TK_ADMIN_NEED_OPERATOR, "");
	routes_to(GET, "/admin/v1/accounts/acme", TK_ADMIN_OP_ACCOUNT_GET, TK_ADMIN_NEED_READ, "acme");
	routes_to(PATCH, "/admin/v1/accounts/acme", TK_ADMIN_OP_ACCOUNT_PATCH, TK_ADMIN_NEED_OPERATOR, "acme");
	routes_to(PUT, "/admin/v1/accounts/acme/scopes", TK_ADMIN_OP_ACCOUNT_SCOPES, TK_ADMIN_NEED_OPERATOR, "acme");
	routes_to(GET, "/admin/v1/scopes", TK_ADMIN_OP_SCOPES_LIST, TK_ADMIN_NEED_READ, "");
	routes_to(POST, "/admin/v1/scopes", TK_ADMIN_OP_SCOPES_ADD, TK_ADMIN_NEED_OPERATOR, "");
	routes_to(GET, "/admin/v1/keys", TK_ADMIN_OP_KEYS_LIST, TK_ADMIN_NEED_READ, "");
	routes_to(POST, "/admin/v1/keys", TK_ADMIN_OP_KEYS_CREATE, TK_ADMIN_NEED_WRITE, "");
	routes_to(GET, "/admin/v1/keys/tk_abc", TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ, "tk_abc");
	routes_to(PATCH, "/admin/v1/keys/tk_abc", TK_ADMIN_OP_KEY_PATCH, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(DELETE, "/admin/v1/keys/tk_abc", TK_ADMIN_OP_KEY_DELETE, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(POST, "/admin/v1/keys/tk_abc/disable", TK_ADMIN_OP_KEY_DISABLE, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(POST, "/admin/v1/keys/tk_abc/enable", TK_ADMIN_OP_KEY_ENABLE, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(POST, "/admin/v1/keys/tk_abc/revoke", TK_ADMIN_OP_KEY_REVOKE, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(POST, "/admin/v1/keys/tk_abc/rotate-secret", TK_ADMIN_OP_KEY_ROTATE, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(GET, "/admin/v1/audit", TK_ADMIN_OP_AUDIT, TK_ADMIN_NEED_READ, "");
	routes_to(GET, "/admin/v1/roles", TK_ADMIN_OP_ROLES_LIST, TK_ADMIN_NEED_READ, "");
	routes_to(POST, "/admin/v1/roles", TK_ADMIN_OP_ROLES_ADD, TK_ADMIN_NEED_OPERATOR, "");
	routes_to(GET, "/admin/v1/roles/developer", TK_ADMIN_OP_ROLE_GET, TK_ADMIN_NEED_READ, "developer");
	routes_to(PATCH, "/admin/v1/roles/developer", TK_ADMIN_OP_ROLE_PATCH, TK_ADMIN_NEED_OPERATOR, "developer");
	routes_to(GET, "/admin/v1/members", TK_ADMIN_OP_MEMBERS_LIST, TK_ADMIN_NEED_READ, "");
	routes_to(POST, "/admin/v1/members", TK_ADMIN_OP_MEMBERS_ADD, TK_ADMIN_NEED_WRITE, "");
	routes_to(GET, "/admin/v1/members/jane", TK_ADMIN_OP_MEMBER_GET, TK_ADMIN_NEED_READ, "jane");
	routes_to(POST, "/admin/v1/members/jane/deactivate", TK_ADMIN_OP_MEMBER_DEACTIVATE, TK_ADMIN_NEED_WRITE, "jane");
	/* The table has no more routes than those, and each op once per method. */
	TEST_ASSERT(tk_admin_route_count == 26);
	int seen[TK_ADMIN_OP_COUNT] = { 0 };
	for (size_t i = 0; i < tk_admin_route_count; i++)
		seen[tk_admin_route_table[i].op]++;
	for (int op = 0; op < TK_ADMIN_OP_COUNT; op++)
		TEST_ASSERT(seen[op] == 1);
}

static void test_wrong_methods(void)
{
	/* A known path, another method: 405. */
	answers(POST, "/admin/v1/account", 405);
	answers(DELETE, "/admin/v1/accounts", 405);
	answers(PUT, "/admin/v1/accounts", 405);
	answers(DELETE, "/admin/v1/accounts/acme", 405);
	answers(POST, "/admin/v1/accounts/acme", 405);
	answers(GET, "/admin/v1/accounts/acme/scopes", 405);
	answers(POST, "/admin/v1/accounts/acme/scopes", 405);
	answers(PATCH, "/admin/v1/scopes", 405);
	answers(PUT, "/admin/v1/keys", 405);
	answers(DELETE, "/admin/v1/keys", 405);
	answers(POST, "/admin/v1/keys/tk_abc", 405);
	answers(PUT, "/admin/v1/keys/tk_abc", 405);
	answers(GET, "/admin/v1/keys/tk_abc/disable", 405);
	answers(DELETE, "/admin/v1/keys/tk_abc/revoke", 405);
	answers(PATCH, "/admin/v1/keys/tk_abc/enable", 405);
	answers(POST, "/admin/v1/audit", 405);
	answers(HEAD, "/admin/v1/keys", 405);
	answers(OPTIONS, "/admin/v1/keys/tk_abc", 405);
	/* An unknown path: 404 whatever the method. */
	answers(GET, "/admin/v1/", 404);
	answers(GET, "/admin/v1/nothing", 404);
	answers(POST, "/admin/v1/nothing", 404);
	answers(GET, "/admin/v1/key", 404);
	answers(GET, "/admin/v1/keysx", 404);
	answers(GET, "/admin/v1/Keys", 404);
	answers(POST, "/admin/v1/keys/tk_abc/suspend", 404);
	answers(PUT, "/admin/v1/keys/tk_abc/scopes", 404);
	answers(POST, "/admin/v1/accounts/acme/disable", 404);
	answers(GET, "/admin/v1/audit/1", 404);
	answers(GET, "/admin/v1/account/acme", 404);
}

static void test_ids(void)
{
	/* {id} is one raw segment (no decoding): odd characters pass through
	 * to the operation, which checks them (a key ID's format, or SQL). */
	routes_to(GET, "/admin/v1/keys/%2F..%00", TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ, "%2F..%00");
	routes_to(GET, "/admin/v1/accounts/a'b\"c;--", TK_ADMIN_OP_ACCOUNT_GET, TK_ADMIN_NEED_READ, "a'b\"c;--");
	routes_to(GET, "/admin/v1/keys/..", TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ, "..");
	routes_to(GET, "/admin/v1/keys/\xc3\xa9", TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ, "\xc3\xa9");
	routes_to(DELETE, "/admin/v1/keys/{id}", TK_ADMIN_OP_KEY_DELETE, TK_ADMIN_NEED_WRITE, "{id}");
	routes_to(POST, "/admin/v1/keys/disable/revoke", TK_ADMIN_OP_KEY_REVOKE, TK_ADMIN_NEED_WRITE, "disable");
	/* Its bounds: 1..71 bytes. */
	char uri[200], id[80];
	memset(id, 'a', sizeof(id));
	id[71] = '\0';
	snprintf(uri, sizeof(uri), "/admin/v1/keys/%s", id);
	routes_to(GET, uri, TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ, id);
	id[71] = 'a';
	id[72] = '\0';
	snprintf(uri, sizeof(uri), "/admin/v1/keys/%s", id);
	answers(GET, uri, 404);
	answers(POST, uri, 404);
	snprintf(uri, sizeof(uri), "/admin/v1/keys/%s/disable", id);
	answers(POST, uri, 404);
	answers(GET, "/admin/v1/keys/", 404);
	answers(POST, "/admin/v1/keys//disable", 404);
	answers(PUT, "/admin/v1/accounts//scopes", 404);
	/* Two segments where one is expected. */
	answers(GET, "/admin/v1/keys/a/b", 404);
	answers(POST, "/admin/v1/keys/a/b/disable", 404);
}

static void test_slashes_and_prefix(void)
{
	answers(GET, "/admin/v1/keys/", 404);
	answers(GET, "/admin/v1/account/", 404);
	answers(GET, "/admin/v1/keys/tk_abc/", 404);
	answers(POST, "/admin/v1/keys/tk_abc/disable/", 404);
	answers(PUT, "/admin/v1/accounts/acme/scopes/", 404);
	answers(GET, "/admin/v1//keys", 404);
	answers(GET, "/admin/v1/keys//", 404);
	answers(GET, "/admin/v1", 404);
	answers(GET, "/admin/v2/keys", 404);
	answers(GET, "/keys", 404);
	answers(GET, "", 404);
	answers(GET, NULL, 404);
	/* The path cap (query excluded): 255 bytes may match, 256 never. */
	char uri[400], id[80];
	size_t pre = strlen("/admin/v1/keys/");
	memset(id, 'k', 71);
	id[71] = '\0';
	snprintf(uri, sizeof(uri), "/admin/v1/keys/%s", id);
	TEST_ASSERT(strlen(uri) == pre + 71);
	char longq[400];
	snprintf(longq, sizeof(longq), "%s?%0300d", uri, 0);
	routes_to(GET, longq, TK_ADMIN_OP_KEY_GET, TK_ADMIN_NEED_READ, id);
	char longpath[400];
	memset(longpath, 'x', sizeof(longpath));
	memcpy(longpath, "/admin/v1/", 10);
	longpath[256] = '\0';
	answers(GET, longpath, 404);
}

static void test_query_string(void)
{
	routes_to(GET, "/admin/v1/keys?state=enabled&limit=5", TK_ADMIN_OP_KEYS_LIST, TK_ADMIN_NEED_READ, "");
	routes_to(GET, "/admin/v1/keys?", TK_ADMIN_OP_KEYS_LIST, TK_ADMIN_NEED_READ, "");
	routes_to(DELETE, "/admin/v1/keys/tk_abc?confirm=true", TK_ADMIN_OP_KEY_DELETE, TK_ADMIN_NEED_WRITE, "tk_abc");
	routes_to(GET, "/admin/v1/audit?key=tk_abc/disable", TK_ADMIN_OP_AUDIT, TK_ADMIN_NEED_READ, "");
	/* A '/' or a route name in the query never changes the route. */
	answers(POST, "/admin/v1/keys/tk_abc?/disable", 405);
	answers(GET, "/admin/v1/nothing?keys", 404);
	answers(GET, "/admin/v1/keys/?x=1", 404);
	answers(POST, "/admin/v1/audit?x", 405);
}

int main(void)
{
	TEST_RUN(test_every_route);
	TEST_RUN(test_wrong_methods);
	TEST_RUN(test_ids);
	TEST_RUN(test_slashes_and_prefix);
	TEST_RUN(test_query_string);
	TEST_DONE();
}
