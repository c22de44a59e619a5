/* routes.c - where the admin API answers (see router.h): on the admin
 * listener when admin_listen_port is set, else on the main one. */
#include "admin.h"

const tk_route tk_admin_routes[] = {
	{ "/admin/v1/", 1, EP_ADMIN, tk_admin_handle, TK_ON_ADMIN_API, NULL },
	TK_ROUTES_END,
};
