/*
 * form.h - strict parsers for untrusted token-endpoint input:
 * application/x-www-form-urlencoded bodies (RFC 6749 §3.1, appendix B;
 * WHATWG URL "urlencoded parsing") and HTTP Basic client credentials
 * (RFC 6749 §2.3.1, RFC 7617).
 *
 * evhttp's own query parser keeps duplicates, truncates at %00 and passes
 * malformed escapes through (SECURITY.md §0.4, §7), so token, introspection
 * and revocation bodies go through tk_form_parse instead. The same parser
 * can be run on a request's query string to detect credentials in the URI
 * (SECURITY.md row A7).
 *
 * Both parsers take a length, never read past it and need no NUL
 * terminator. Refusals set *why to a static, constant string made of
 * characters allowed in an OAuth error_description (%x20-21 / %x23-5B /
 * %x5D-7E), never echoing attacker bytes; every refusal has its own string.
 */
#ifndef TOKEND_FORM_H
#define TOKEND_FORM_H

#include "tokend/export.h"

#include <stddef.h>

#include <tokend/crypto.h>

#define TK_FORM_MAX_PARAMS   32    /* non-empty '&'-separated segments */
#define TK_FORM_NAME_MAX     64    /* decoded bytes of a name */
#define TK_FORM_VALUE_MAX    TK_TOKEN_MAX  /* decoded bytes of a value: any token of ours */
#define TK_BASIC_HEADER_MAX  1024  /* bytes of an Authorization field value */

/*
 * Decoded name/value pairs in body order; owns its strings (NUL-terminated,
 * no interior NUL, valid UTF-8, no C0 control character or DEL).
 * A zeroed struct is empty. A parameter sent without a value ("a" or "a=")
 * has value "": RFC 6749 §3.1 says to treat it as omitted, which is the
 * caller's decision (see tk_form_get_nonempty).
 */
typedef struct tk_form {
	size_t n;
	char *name[TK_FORM_MAX_PARAMS];
	char *value[TK_FORM_MAX_PARAMS];
} tk_form;

/*
 * Parse `len` bytes of a urlencoded body into `out` (overwritten, not
 * freed: pass a zeroed or freed form). `body` may be NULL when len is 0.
 *
 * Rules: split on '&'; empty segments are ignored ("a=1&&b=2", a trailing
 * '&'); a segment is split at its first '=' and one without '=' has value "";
 * '+' decodes to space and %XX (hex digits of either case) to the byte XX, in
 * names and values alike. Refused: a raw byte < 0x20 or 0x7f anywhere in the
 * body; '%' not followed by two hex digits; a decoded NUL, byte < 0x20 or
 * 0x7f; a name or value that is not valid UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF); an empty name ("=x"); a name longer
 * than TK_FORM_NAME_MAX or a value longer than TK_FORM_VALUE_MAX decoded
 * bytes; more than TK_FORM_MAX_PARAMS parameters; and a repeated name
 * (RFC 6749 §3.1) unless it appears in `repeatable`, a NULL-terminated list
 * of names that may occur more than once (e.g. "resource", RFC 8707 §2) -
 * `repeatable` itself may be NULL for "none".
 *
 * Returns 0 with *why = NULL, or -1 with *why set and `out` empty (n == 0,
 * all pointers NULL, nothing to free). A repeated name is refused with
 * "repeated parameter <name>" for the OAuth parameter names tokend knows
 * (grant_type, client_id, client_secret, scope, resource, audience, token,
 * token_type_hint, client_assertion, client_assertion_type) and with
 * "repeated parameter" for any other name, so no request bytes are echoed.
 * Cost: one linear pass, at most 2 * TK_FORM_MAX_PARAMS small allocations,
 * a bounded O(TK_FORM_MAX_PARAMS^2) duplicate check; nothing is read after
 * the first refused segment, so 10k parameters cost no more than 33.
 */
TK_API int tk_form_parse(const char *body, size_t len, const char *const *repeatable,
                  tk_form *out, const char **why);

/* The value of the first parameter called `name`, or NULL if absent. */
TK_API const char *tk_form_get(const tk_form *f, const char *name);
/* As tk_form_get, but NULL also when the value is "" (RFC 6749 §3.1:
 * "parameters sent without a value MUST be treated as if they were omitted"). */
TK_API const char *tk_form_get_nonempty(const tk_form *f, const char *name);
/* The value of the index-th (0-based) parameter called `name`, in body order,
 * or NULL when there are fewer. Iterate a repeatable name with
 *   for (size_t i = 0; (v = tk_form_get_nth(f, "resource", i)) != NULL; i++) */
TK_API const char *tk_form_get_nth(const tk_form *f, const char *name, size_t index);
/* How many parameters are called `name`. */
TK_API size_t tk_form_count_name(const tk_form *f, const char *name);
/* Free every string (values are wiped first: they may hold a client_secret)
 * and leave the form empty. NULL is allowed. */
TK_API void tk_form_free(tk_form *f);

/*
 * Parse an Authorization field value of `len` bytes carrying HTTP Basic
 * client credentials. `header_value` is the field value with the
 * surrounding optional whitespace already removed (evhttp does this).
 *
 *   "Basic" (any case) 1*SP token68
 *
 * token68 must be strict standard base64 (RFC 4648 §4): alphabet
 * [A-Za-z0-9+/], length a multiple of 4, padding present and correct, unused
 * trailing bits zero, nothing else (no whitespace, no trailing bytes). The
 * decoded bytes must contain ':' and are split at the first one into
 * client_id and client_secret (so a secret may contain ':'); each part is
 * then form-urldecoded as RFC 6749 §2.3.1 requires ('+' -> space, %XX), with
 * the body's strictness: malformed escapes, NUL, C0 controls, DEL and invalid
 * UTF-8 are refused, raw or percent-encoded. An empty client_id is refused;
 * an empty secret is returned as "" (it then fails the secret check). A value
 * longer than TK_BASIC_HEADER_MAX bytes is refused before any decoding.
 *
 * Returns 0 with malloc'd *client_id and *client_secret and *why = NULL; or
 * -1 with both outputs NULL and *why set. Intermediate buffers are wiped.
 * Release the outputs with tk_basic_free.
 */
TK_API int tk_basic_parse(const char *header_value, size_t len, char **client_id,
                   char **client_secret, const char **why);

/* Free the outputs of tk_basic_parse, wiping the secret (tk_wipe) first.
 * Either may be NULL. */
TK_API void tk_basic_free(char *client_id, char *client_secret);

#endif
