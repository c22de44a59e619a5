/* routes.c - where the operations endpoints answer (see router.h): on the
 * ops listener when ops_listen_port is set (and then not on the main one),
 * else on the main listener; health also on the admin listener (a load
 * balancer may probe it). */
#include "ops.h"

const tk_route tk_ops_routes[] = {
	{ "/healthz", 0, EP_HEALTH, tk_healthz_handle, TK_ON_OPS | TK_ON_ADMIN, NULL },
	{ "/readyz", 0, EP_READY, tk_readyz_handle, TK_ON_OPS, NULL },
	{ "/metrics", 0, EP_METRICS, tk_metrics_handle, TK_ON_OPS, NULL },
	TK_ROUTES_END,
};
