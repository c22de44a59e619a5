/* routes.c - where the OAuth endpoints answer (see router.h). */
#include "oauth.h"

/* The token endpoint and the metadata also answer on the admin listener when
 * there is one: the web console and the API documentation (/console/, served
 * beside the admin API) sign in there, and their CSP allows only their own
 * origin (connect-src 'self'). Same handler, same checks and limits. */
const tk_route tk_oauth_routes[] = {
	{ "/oauth2/token", 0, EP_TOKEN, tk_token_handle, TK_ON_MAIN | TK_ON_ADMIN, tk_token_handle_req },
	{ "/oauth2/introspect", 0, EP_INTROSPECT, tk_introspect_handle, TK_ON_MAIN, NULL },
	{ "/oauth2/revoke", 0, EP_REVOKE, tk_revoke_handle, TK_ON_MAIN, NULL },
	{ "/.well-known/jwks.json", 0, EP_JWKS, tk_jwks_handle, TK_ON_MAIN, NULL },
	{ "/.well-known/oauth-authorization-server", 0, EP_METADATA, tk_metadata_handle, TK_ON_MAIN | TK_ON_ADMIN, NULL },
	{ "/oauth2/status-list", 0, EP_STATUS_LIST, tk_status_list_handle, TK_ON_MAIN | TK_ON_ADMIN, NULL },
	TK_ROUTES_END,
};
