/* internal.c - helpers shared by libtokend's own sources (see internal.h). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "tokend/crypto.h"

const uint16_t tk_b64_table[256] = {
	TK_R16('A', 1), TK_R8('Q', 17), TK_R2('Y', 25),
	TK_R16('a', 27), TK_R8('q', 43), TK_R2('y', 51),
	TK_R8('0', 53), TK_R2('8', 61),
	['+'] = 63 | TK_B64_STD << 8, ['/'] = 64 | TK_B64_STD << 8,
	['-'] = 63 | TK_B64_URL << 8, ['_'] = 64 | TK_B64_URL << 8,
};

void tk_vseterr(char *err, size_t errlen, const char *fmt, va_list ap)
{
	if (err == NULL || errlen == 0)
		return;
	vsnprintf(err, errlen, fmt, ap);
}

void tk_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tk_vseterr(err, errlen, fmt, ap);
	va_end(ap);
}

/* Reason of the most recent OpenSSL error (or `fallback`); clears the queue
 * so that nothing is left behind for other code. */
const char *tk_ossl_reason(char *buf, size_t len, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r ? r : fallback);
	ERR_clear_error();
	return buf;
}

void tk_secret_free(char *s)
{
	if (s != NULL) {
		tk_wipe(s, strlen(s));
		free(s);
	}
}
