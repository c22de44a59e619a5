/* routes.c - where the console answers: beside the admin API it uses (its
 * pages call /admin/v1 on their own origin). `/` and `/console` redirect to
 * `/console/`. */
#include "console.h"

const tk_route tk_console_routes[] = {
	{ "/", 0, EP_CONSOLE, tk_console_redirect, TK_ON_ADMIN_API, NULL },
	{ "/console", 0, EP_CONSOLE, tk_console_redirect, TK_ON_ADMIN_API, NULL },
	{ "/console/", 0, EP_CONSOLE, tk_console_handle, TK_ON_ADMIN_API, NULL },
	{ "/console/", 1, EP_CONSOLE, tk_console_handle, TK_ON_ADMIN_API, NULL },
	TK_ROUTES_END,
};
