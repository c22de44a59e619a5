/*
 * router.c - one table of routes assembled from the endpoint modules' own
 * (see router.h). A handful of routes: a linear scan by exact length first.
 */
#include "router.h"

#include <stdlib.h>
#include <string.h>

struct tk_router {
	tk_route *routes;
	size_t n;
	int admin_listener;
	int ops_listener;
};

#define LBIT(l) (1u << (l))

/* The listeners a route answers on (LBIT(tk_listener_kind) each), given
 * which optional listeners exist. */
static unsigned where(const tk_route *rt, int admin_listener, int ops_listener)
{
	unsigned on = 0;

	if (rt->on & TK_ON_MAIN)
		on |= LBIT(TK_LISTENER_MAIN);
	if ((rt->on & TK_ON_ADMIN) && admin_listener)
		on |= LBIT(TK_LISTENER_ADMIN);
	if (rt->on & TK_ON_ADMIN_API)
		on |= LBIT(admin_listener ? TK_LISTENER_ADMIN : TK_LISTENER_MAIN);
	if (rt->on & TK_ON_OPS)
		on |= LBIT(ops_listener ? TK_LISTENER_OPS : TK_LISTENER_MAIN);
	return on;
}

static int matches(const tk_route *rt, const char *path, size_t len)
{
	size_t pl = strlen(rt->path);

	if (rt->prefix)
		return len > pl && memcmp(rt->path, path, pl) == 0;
	return len == pl && memcmp(rt->path, path, pl) == 0;
}

tk_router *tk_router_new(const tk_route *const *tables, size_t ntables, int admin_listener,
                         int ops_listener)
{
	tk_router *r = calloc(1, sizeof(*r));
	size_t n = 0;

	if (!r)
		return NULL;
	for (size_t t = 0; t < ntables; t++)
		for (const tk_route *rt = tables[t]; rt->path; rt++)
			n++;
	r->routes = calloc(n ? n : 1, sizeof(*r->routes));
	if (!r->routes) {
		free(r);
		return NULL;
	}
	r->admin_listener = admin_listener;
	r->ops_listener = ops_listener;
	for (size_t t = 0; t < ntables; t++) {
		for (const tk_route *rt = tables[t]; rt->path; rt++) {
			/* A path claimed twice on one listener is a wiring mistake. */
			for (size_t i = 0; i < r->n; i++) {
				if (strcmp(r->routes[i].path, rt->path) == 0 &&
				    r->routes[i].prefix == rt->prefix &&
				    (where(&r->routes[i], admin_listener, ops_listener) &
				     where(rt, admin_listener, ops_listener))) {
					tk_router_free(r);
					return NULL;
				}
			}
			r->routes[r->n++] = *rt;
		}
	}
	return r;
}

void tk_router_free(tk_router *r)
{
	if (!r)
		return;
	free(r->routes);
	free(r);
}

const tk_route *tk_router_match(const tk_router *r, const char *path, size_t len, int on)
{
	if (!r || !path || on < TK_LISTENER_MAIN || on > TK_LISTENER_OPS)
		return NULL;
	unsigned want = LBIT(on);
	for (size_t i = 0; i < r->n; i++) {
		const tk_route *rt = &r->routes[i];
		if ((where(rt, r->admin_listener, r->ops_listener) & want) && matches(rt, path, len))
			return rt;
	}
	return NULL;
}
