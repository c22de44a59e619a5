/* admin.h - the admin REST API under /admin/v1/ (see admin.c). */
#ifndef TOKEND_ADMIN_H
#define TOKEND_ADMIN_H

#include "server.h"

void tk_admin_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);

#endif
