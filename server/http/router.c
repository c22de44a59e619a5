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
};

/* The listeners a route answers on, given whether an admin listener exists. */
static unsigned where(const tk_route *rt, int admin_listener)
{
	unsigned on = rt->on & (TK_ON_MAIN | TK_ON_ADMIN);

	if (!admin_listener)
		on &= ~(unsigned)TK_ON_ADMIN;
	if (rt->on & TK_ON_ADMIN_API)
		on |= admin_listener ? TK_ON_ADMIN : TK_ON_MAIN;
	return on;
}

static int matches(const tk_route *rt, const char *path, size_t len)
{
	size_t pl = strlen(rt->path);

	if (rt->prefix)
		return len > pl && memcmp(rt->path, path, pl) == 0;
	return len == pl && memcmp(rt->path, path, pl) == 0;
}

tk_router *tk_router_new(const tk_route *const *tables, size_t ntables, int admin_listener)
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
	for (size_t t = 0; t < ntables; t++) {
		for (const tk_route *rt = tables[t]; rt->path; rt++) {
			/* A path claimed twice on one listener is a wiring mistake. */
			for (size_t i = 0; i < r->n; i++) {
				if (strcmp(r->routes[i].path, rt->path) == 0 &&
				    r->routes[i].prefix == rt->prefix &&
				    (where(&r->routes[i], admin_listener) & where(rt, admin_listener))) {
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

const tk_route *tk_router_match(const tk_router *r, const char *path, size_t len, int admin)
{
	unsigned want = admin ? TK_ON_ADMIN : TK_ON_MAIN;

	if (!r || !path)
		return NULL;
	for (size_t i = 0; i < r->n; i++) {
		const tk_route *rt = &r->routes[i];
		if ((where(rt, r->admin_listener) & want) && matches(rt, path, len))
			return rt;
	}
	return NULL;
}
