/* ops.h - /healthz, /readyz and /metrics (see ops.c). */
#ifndef TOKEND_OPS_H
#define TOKEND_OPS_H

#include "router.h"
#include "server.h"

/* The module's routes, for serve.c's router. */
extern const tk_route tk_ops_routes[];

void tk_healthz_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_readyz_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_metrics_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);

#endif
