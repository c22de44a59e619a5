/*
 * oauth.h - the OAuth endpoints: token (token.c), introspection and
 * revocation (introspect.c), JWKS and metadata (wellknown.c); client
 * authentication is auth.h.
 */
#ifndef TOKEND_OAUTH_H
#define TOKEND_OAUTH_H

#include "router.h"
#include "server.h"

/* The module's routes, for serve.c's router. */
extern const tk_route tk_oauth_routes[];

void tk_token_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_token_handle_req(tk_worker *w, tk_req req, tk_reqinfo *ri);
void tk_introspect_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_revoke_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_jwks_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_metadata_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
/* GET /oauth2/status-list: the Token Status List (statuslist.c). */
void tk_status_list_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);

#endif
