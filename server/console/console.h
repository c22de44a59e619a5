/*
 * console.h - the web console (issue 12): static assets embedded at build time
 * (cmake/embed_console.cmake) and served under /console/ with a strict
 * Content-Security-Policy. No server-side logic of its own: the pages talk to
 * /oauth2/token and /admin/v1 like any other client.
 */
#ifndef TOKEND_CONSOLE_H
#define TOKEND_CONSOLE_H

#include <stddef.h>

#include "router.h"
#include "server.h"

/* One embedded file: `path` under /console/ (no leading slash), its
 * Content-Type, its strong ETag (quoted) and its bytes. */
typedef struct tk_console_asset {
	const char *path;
	const char *ctype;
	const char *etag;
	const unsigned char *data;
	size_t len;
} tk_console_asset;

/* Every embedded asset (generated), ending with a NULL path. */
extern const tk_console_asset tk_console_assets[];
extern const size_t tk_console_asset_count;

/* The headers every console response carries. */
#define TK_CONSOLE_CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " \
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/* The asset named by `path` (`len` bytes, the part after "/console/"), or NULL
 * when it is not exactly one of the embedded names: nothing outside the table
 * can ever be named (no decoding, no file system). */
const tk_console_asset *tk_console_find(const char *path, size_t len);

/* Whether If-None-Match value `inm` (may be NULL) matches strong ETag `etag`
 * (RFC 9110 13.1.2: weak comparison, "*" matches). */
int tk_console_etag_matches(const char *inm, const char *etag);

/* The module's routes, for serve.c's router (composed only when console = on). */
extern const tk_route tk_console_routes[];

void tk_console_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);
void tk_console_redirect(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri);

#endif
