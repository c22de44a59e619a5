/* routes.c - where the operations endpoints answer (see router.h): health on
 * every listener (a load balancer may probe the admin one), the rest on the
 * main one. */
#include "ops.h"

const tk_route tk_ops_routes[] = {
	{ "/healthz", 0, EP_HEALTH, tk_healthz_handle, TK_ON_MAIN | TK_ON_ADMIN },
	{ "/readyz", 0, EP_READY, tk_readyz_handle, TK_ON_MAIN },
	{ "/metrics", 0, EP_METRICS, tk_metrics_handle, TK_ON_MAIN },
	TK_ROUTES_END,
};
