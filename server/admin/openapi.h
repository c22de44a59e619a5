/*
 * openapi.h - the OpenAPI description as served at GET /admin/v1/openapi.yaml:
 * docs/openapi.yaml (embedded at build time) with this server's issuer as
 * its server URL and the oauth2 scheme's token URL.
 */
#ifndef TOKEND_ADMIN_OPENAPI_H
#define TOKEND_ADMIN_OPENAPI_H

#include <stddef.h>

/* The lines of docs/openapi.yaml that name the default issuer, replaced when
 * the document is served (each must occur exactly once). */
#define TK_OPENAPI_SERVER_LINE "\n  - url: http://127.0.0.1:8080\n"
#define TK_OPENAPI_TOKENURL_LINE "tokenUrl: http://127.0.0.1:8080/oauth2/token\n"

/*
 * `doc` (`len` bytes) with TK_OPENAPI_SERVER_LINE's URL replaced by `issuer`
 * (trailing slashes dropped) and the token URL by `issuer`/oauth2/token, both
 * written as YAML double-quoted (JSON) strings. Returns a malloc'd text (its
 * length in *outlen; the caller frees), or NULL when out of memory, when
 * `issuer` is NULL or empty, or when a line does not occur exactly once.
 */
char *tk_openapi_render(const char *doc, size_t len, const char *issuer, size_t *outlen);

#endif
