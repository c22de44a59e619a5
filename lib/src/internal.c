/* internal.c - helpers shared by libtokend's own sources (see internal.h). */
#include "internal.h"

#include <stdio.h>

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
