/*
 * router.h - the route table. Each endpoint module exports its routes (a
 * path, the endpoint label for metrics, a handler, the listeners it answers
 * on); serve.c assembles them into one router; the HTTP layer knows only the
 * route type and never an endpoint module.
 */
#ifndef TOKEND_ROUTER_H
#define TOKEND_ROUTER_H

#include <stddef.h>

#include "metrics.h"
#include "req.h"

struct tk_worker;
struct tk_reqinfo;
struct evhttp_request;

/* A handler answers the request (now or later, on the worker's thread). */
typedef void (*tk_route_fn)(struct tk_worker *w, struct evhttp_request *req,
                            struct tk_reqinfo *ri);

/* The same handler through the request interface (req.h): a route that has
 * one may be served by the fast lane (conn.h) as well as by evhttp. */
typedef void (*tk_route_req_fn)(struct tk_worker *w, tk_req req, struct tk_reqinfo *ri);

/* Where a route answers. */
enum {
	TK_ON_MAIN = 1,          /* the main listener */
	TK_ON_ADMIN = 2,         /* the admin listener (admin_listen_port), when there is one */
	TK_ON_ADMIN_API = 4,     /* the admin listener when there is one, else the main one */
	TK_ON_OPS = 8,           /* the ops listener (ops_listen_port) when there is one, else the main one */
};

/* The listeners a request may arrive on (tk_router_match). */
typedef enum tk_listener_kind {
	TK_LISTENER_MAIN = 0,
	TK_LISTENER_ADMIN = 1,
	TK_LISTENER_OPS = 2,
} tk_listener_kind;

typedef struct tk_route {
	const char *path;        /* an exact path; with `prefix`, any longer path starting with it */
	int prefix;
	tk_endpoint ep;
	tk_route_fn fn;
	unsigned on;             /* TK_ON_* */
	tk_route_req_fn fast;    /* POST requests to the exact path taken by the fast lane; or NULL */
} tk_route;

/* The end of a module's table. */
#define TK_ROUTES_END { NULL, 0, EP_OTHER, NULL, 0, NULL }

typedef struct tk_router tk_router;

/* One router from `ntables` tables (each ending with TK_ROUTES_END);
 * `admin_listener`, `ops_listener`: an admin, an ops listener exists. NULL
 * when out of memory or when two routes claim the same path on one listener. */
tk_router *tk_router_new(const tk_route *const *tables, size_t ntables, int admin_listener,
                         int ops_listener);
void tk_router_free(tk_router *r);

/* The route for the request path (`path`, `len` bytes, no query) on listener
 * `on` (a tk_listener_kind); NULL when none. */
const tk_route *tk_router_match(const tk_router *r, const char *path, size_t len, int on);

#endif
