/*
 * input.h - untrusted input shared by the admin API and the command line:
 * the strict parse of a JSON request body (POST, PATCH) and the check of
 * text that will be displayed (names, reasons, subjects).
 *
 * Pure (no I/O, no server state), so that it can be fuzzed on its own
 * (tests/fuzz/fuzz_admin_json.c).
 */
#ifndef TOKEND_INPUT_H
#define TOKEND_INPUT_H

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
int tk_input_json_body(const char *data, size_t len, json_t **out, const char **why);

/*
 * Is `len` bytes at `s` safe to display (names, subjects, revocation reasons)?
 * Returns NULL if so, else a static reason ("must not contain ..."). Refused:
 * invalid UTF-8; control characters (C0, DEL, C1); bidi controls (U+061C,
 * U+200E, U+200F, U+202A-U+202E, U+2066-U+2069); zero-width and invisible
 * format characters (U+00AD, U+180E, U+200B-U+200D, U+2060-U+2064,
 * U+206A-U+206F, U+FEFF, U+FFF9-U+FFFB, tags U+E0000-U+E007F); line and
 * paragraph separators (U+2028, U+2029). The same set as the database's
 * tokend_text_is_safe() (sql/005_account_scopes.sql). Length is the caller's.
 */
const char *tk_input_text_unsafe(const char *s, size_t len);

#endif
