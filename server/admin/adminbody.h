/*
 * adminbody.h - the strict parse of an admin API request body (POST, PATCH).
 *
 * Pure (no I/O, no server state), so that it can be fuzzed on its own
 * (tests/fuzz/fuzz_admin_json.c); admin.c calls it for every body.
 */
#ifndef TOKEND_ADMINBODY_H
#define TOKEND_ADMINBODY_H

#include <stddef.h>

#include <jansson.h>

/* Deepest nesting of objects and arrays accepted in a body (SECURITY A8):
 * jansson allows 2048; we refuse more before parsing. */
#define TK_ADMIN_BODY_DEPTH 32

/*
 * Parse `len` bytes at `data` (no NUL needed; `data` may be NULL only when
 * len is 0, and an empty body is refused like any non-object) as one JSON
 * object: a depth scan first (more than TK_ADMIN_BODY_DEPTH levels of '{' or
 * '[' outside strings is refused without parsing), then
 * json_loadb(JSON_REJECT_DUPLICATES): valid UTF-8, no duplicate member, no
 * NUL in strings, nothing after the value.
 *
 * Returns 0 with *out the object (the caller owns it: json_decref) and
 * *why NULL; or -1 with *out NULL and *why a static reason suitable for an
 * error_description:
 *   "the body is nested too deeply"
 *   "the body must be a JSON object (UTF-8, no duplicate members)"
 * The validation of members is the caller's.
 */
int tk_admin_body_parse(const char *data, size_t len, json_t **out, const char **why);

#endif
