/* routes.c - where the OAuth endpoints answer (see router.h). */
#include "oauth.h"

const tk_route tk_oauth_routes[] = {
	{ "/oauth2/token", 0, EP_TOKEN, tk_token_handle, TK_ON_MAIN },
	{ "/oauth2/introspect", 0, EP_INTROSPECT, tk_introspect_handle, TK_ON_MAIN },
	{ "/oauth2/revoke", 0, EP_REVOKE, tk_revoke_handle, TK_ON_MAIN },
	{ "/.well-known/jwks.json", 0, EP_JWKS, tk_jwks_handle, TK_ON_MAIN },
	{ "/.well-known/oauth-authorization-server", 0, EP_METADATA, tk_metadata_handle, TK_ON_MAIN },
	TK_ROUTES_END,
};
