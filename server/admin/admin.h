/* admin.h - the admin REST API under /admin/v1/ (see api.c; admin_int.h lists the files). */
#ifndef TOKEND_ADMIN_H
#define TOKEND_ADMIN_H

#include "router.h"
#include "server.h"

/* The module's routes, for serve.c's router. */
extern const tk_route tk_admin_routes[];

void tk_admin_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);

#endif
