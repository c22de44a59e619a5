/*
 * internal.h - helpers shared by libtokend's own sources (not installed, not
 * exported from the shared library).
 */
#ifndef TOKEND_INTERNAL_H
#define TOKEND_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>

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

#endif
