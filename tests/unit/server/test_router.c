/*
 * test_router.c - the route table (server/http/router.c): exact and prefix
 * paths, the listeners each route answers on with and without an admin
 * listener, and tables that claim a path twice.
 */
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "unit.h"

static void h_token(struct tk_worker *w, struct evhttp_request *r, struct tk_reqinfo *ri) { (void)w; (void)r; (void)ri; }
static void h_health(struct tk_worker *w, struct evhttp_request *r, struct tk_reqinfo *ri) { (void)w; (void)r; (void)ri; }
static void h_admin(struct tk_worker *w, struct evhttp_request *r, struct tk_reqinfo *ri) { (void)w; (void)r; (void)ri; }

static const tk_route oauth[] = {
	{ "/oauth2/token", 0, EP_TOKEN, h_token, TK_ON_MAIN, NULL },
	TK_ROUTES_END,
};
static const tk_route ops[] = {
	{ "/healthz", 0, EP_HEALTH, h_health, TK_ON_MAIN | TK_ON_ADMIN, NULL },
	TK_ROUTES_END,
};
static const tk_route admin[] = {
	{ "/admin/v1/", 1, EP_ADMIN, h_admin, TK_ON_ADMIN_API, NULL },
	TK_ROUTES_END,
};

static const tk_route *match(tk_router *r, const char *path, int on_admin)
{
	return tk_router_match(r, path, strlen(path), on_admin);
}

static void test_paths(void)
{
	const tk_route *tables[] = { oauth, ops, admin };
	tk_router *r = tk_router_new(tables, 3, 0, 0);
	TEST_ASSERT(r != NULL);
	TEST_ASSERT(match(r, "/oauth2/token", 0) && match(r, "/oauth2/token", 0)->fn == h_token);
	TEST_ASSERT(match(r, "/oauth2/token", 0)->ep == EP_TOKEN);
	TEST_ASSERT(match(r, "/oauth2/tokenx", 0) == NULL);
	TEST_ASSERT(match(r, "/oauth2/toke", 0) == NULL);
	TEST_ASSERT(match(r, "/oauth2/token/", 0) == NULL);
	TEST_ASSERT(match(r, "/OAUTH2/TOKEN", 0) == NULL);
	TEST_ASSERT(match(r, "", 0) == NULL);
	/* The caller passes the path without its query: only `len` bytes count. */
	TEST_ASSERT(tk_router_match(r, "/oauth2/token?x=1", 13, 0) != NULL);
	TEST_ASSERT(match(r, "/admin/v1/keys", 0) && match(r, "/admin/v1/keys", 0)->fn == h_admin);
	TEST_ASSERT(match(r, "/admin/v1/", 0) == NULL);          /* a prefix needs something after it */
	TEST_ASSERT(match(r, "/admin/v1", 0) == NULL);
	TEST_ASSERT(match(r, "/admin/v2/keys", 0) == NULL);
	TEST_ASSERT(tk_router_match(r, NULL, 0, 0) == NULL);
	tk_router_free(r);
}

static void test_listeners(void)
{
	const tk_route *tables[] = { oauth, ops, admin };
	/* No admin listener: everything on the main one, nothing on the admin one. */
	tk_router *r = tk_router_new(tables, 3, 0, 0);
	TEST_ASSERT(match(r, "/healthz", 0) != NULL);
	TEST_ASSERT(match(r, "/admin/v1/keys", 0) != NULL);
	TEST_ASSERT(match(r, "/healthz", 1) == NULL);
	tk_router_free(r);
	/* An admin listener: the admin API moves there; health on both; OAuth main only. */
	r = tk_router_new(tables, 3, 1, 0);
	TEST_ASSERT(match(r, "/admin/v1/keys", 0) == NULL);
	TEST_ASSERT(match(r, "/admin/v1/keys", 1) != NULL);
	TEST_ASSERT(match(r, "/healthz", 0) != NULL && match(r, "/healthz", 1) != NULL);
	TEST_ASSERT(match(r, "/oauth2/token", 0) != NULL);
	TEST_ASSERT(match(r, "/oauth2/token", 1) == NULL);
	tk_router_free(r);
}

static void test_duplicates_refused(void)
{
	static const tk_route again[] = {
		{ "/healthz", 0, EP_HEALTH, h_token, TK_ON_MAIN, NULL },
		TK_ROUTES_END,
	};
	static const tk_route admin_only[] = {
		{ "/healthz", 0, EP_HEALTH, h_token, TK_ON_ADMIN, NULL },
		TK_ROUTES_END,
	};
	const tk_route *dup[] = { ops, again };
	TEST_ASSERT(tk_router_new(dup, 2, 0, 0) == NULL);
	const tk_route *overlap[] = { ops, admin_only };
	TEST_ASSERT(tk_router_new(overlap, 2, 1, 0) == NULL);       /* both on the admin listener */
	tk_router *r = tk_router_new(overlap, 2, 0, 0);              /* no admin listener: no clash */
	TEST_ASSERT(r != NULL);
	TEST_ASSERT(match(r, "/healthz", 0)->fn == h_health);
	tk_router_free(r);
	tk_router *empty = tk_router_new(NULL, 0, 0, 0);
	TEST_ASSERT(empty != NULL && match(empty, "/healthz", 0) == NULL);
	tk_router_free(empty);
}

/* TK_ON_OPS: the ops listener when there is one (and then not the main
 * listener), else the main one. */
static void test_ops_listener(void)
{
	static const tk_route ops_routes[] = {
		{ "/healthz", 0, EP_HEALTH, h_health, TK_ON_OPS | TK_ON_ADMIN, NULL },
		{ "/metrics", 0, EP_METRICS, h_health, TK_ON_OPS, NULL },
		TK_ROUTES_END,
	};
	const tk_route *tables[] = { oauth, ops_routes, admin };
	tk_router *r = tk_router_new(tables, 3, 0, 0);
	TEST_ASSERT(r && match(r, "/metrics", TK_LISTENER_MAIN) && match(r, "/healthz", TK_LISTENER_MAIN));
	TEST_ASSERT(match(r, "/metrics", TK_LISTENER_OPS) == NULL);
	tk_router_free(r);
	r = tk_router_new(tables, 3, 1, 1);
	TEST_ASSERT(r != NULL);
	TEST_ASSERT(match(r, "/metrics", TK_LISTENER_MAIN) == NULL);
	TEST_ASSERT(match(r, "/healthz", TK_LISTENER_MAIN) == NULL);
	TEST_ASSERT(match(r, "/metrics", TK_LISTENER_OPS) && match(r, "/healthz", TK_LISTENER_OPS));
	TEST_ASSERT(match(r, "/healthz", TK_LISTENER_ADMIN) && !match(r, "/metrics", TK_LISTENER_ADMIN));
	TEST_ASSERT(match(r, "/oauth2/token", TK_LISTENER_OPS) == NULL);      /* nothing else there */
	TEST_ASSERT(match(r, "/admin/v1/keys", TK_LISTENER_OPS) == NULL);
	TEST_ASSERT(match(r, "/oauth2/token", TK_LISTENER_MAIN) != NULL);
	TEST_ASSERT(match(r, "/metrics", 3) == NULL && match(r, "/metrics", -1) == NULL);
	tk_router_free(r);
}

int main(void)
{
	TEST_RUN(test_paths);
	TEST_RUN(test_listeners);
	TEST_RUN(test_duplicates_refused);
	TEST_RUN(test_ops_listener);
	TEST_DONE();
}
