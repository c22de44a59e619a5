/*
 * internal.h - helpers shared by libtokend's own sources (not installed, not
 * exported from the shared library).
 */
#ifndef TOKEND_INTERNAL_H
#define TOKEND_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A function of the library's own, hidden from its users. */
#define TK_INTERNAL __attribute__((visibility("hidden")))

/* Format a reason into the caller's error buffer; a NULL or empty buffer is
 * left alone. The library never prints: the caller decides what to log. */
TK_INTERNAL __attribute__((format(printf, 3, 4)))
void tk_seterr(char *err, size_t errlen, const char *fmt, ...);
TK_INTERNAL __attribute__((format(printf, 3, 0)))
void tk_vseterr(char *err, size_t errlen, const char *fmt, va_list ap);

/* Reason of the most recent OpenSSL error (or `fallback`) copied into buf;
 * clears the error queue so that nothing is left behind for other code. */
TK_INTERNAL const char *tk_ossl_reason(char *buf, size_t len, const char *fallback);

/* Wipe and free a NUL-terminated string holding secret material (NULL: no-op). */
TK_INTERNAL void tk_secret_free(char *s);

/* Runs of consecutive characters with consecutive values, for the
 * designated initializers of a character table: R16('A', 1) sets 'A'..'P'
 * to 1..16. */
#define TK_R2(c, v) [(c)] = (v), [(c) + 1] = (v) + 1
#define TK_R4(c, v) TK_R2(c, v), TK_R2((c) + 2, (v) + 2)
#define TK_R8(c, v) TK_R4(c, v), TK_R4((c) + 4, (v) + 4)
#define TK_R16(c, v) TK_R8(c, v), TK_R8((c) + 8, (v) + 8)

/* base64 alphabets (RFC 4648): the standard one (§4) and the URL-safe one
 * (§5) differ only in the characters of 62 and 63. */
#define TK_B64_STD 1   /* '+' and '/' */
#define TK_B64_URL 2   /* '-' and '_' */

/* Each byte's base64 value plus one (0: a byte of no alphabet), and, for the
 * four bytes only one alphabet has, that alphabet (TK_B64_STD or TK_B64_URL)
 * shifted left by 8. */
TK_INTERNAL extern const uint16_t tk_b64_table[256];

/* The value (0-63) of byte `c` in `alphabets` (TK_B64_STD, TK_B64_URL or
 * both), or -1. A table read and arithmetic, no branch on `c`: decoding
 * credentials that change with every request (a million keys) costs what
 * decoding the same ones does, where a comparison per character class was
 * mispredicted at almost every character. */
static inline int tk_b64_value(unsigned char c, int alphabets)
{
	unsigned e = tk_b64_table[c];
	unsigned only = e >> 8;
	unsigned in = (only == 0) | ((only & (unsigned)alphabets) != 0);
	return (int)((e & 0xffu) * in) - 1;
}

#endif
