/*
 * fuzz.h - shared bits of the libFuzzer harnesses (tests/fuzz/fuzz_*.c).
 *
 * Each harness feeds the input to one parser of untrusted data and checks
 * what the parser promises in its header (the oracle); a broken promise is
 * reported with FUZZ_CHECK, which aborts so libFuzzer keeps the input.
 * Memory errors and undefined behaviour are caught by ASan and UBSan.
 */
#ifndef TOKEND_FUZZ_H
#define TOKEND_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond)                                                            \
	do {                                                                            \
		if (!(cond)) {                                                              \
			fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                                \
		}                                                                           \
	} while (0)

/* A NUL-terminated heap copy of the input (for parsers that take C strings). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (s == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above
 * U+10FFFF), written independently of the library's own check. */
static inline int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		unsigned cp, min;
		if (c < 0x80) { i++; continue; }
		if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; min = 0x80; }
		else if (c >= 0xe0 && c <= 0xef) { k = 2; cp = c & 0x0f; min = 0x800; }
		else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; min = 0x10000; }
		else return 0;
		if (n - i <= k)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* No C0 control character and no DEL. */
static inline int fuzz_no_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

/* Characters allowed in an OAuth error_description: %x20-21 / %x23-5B / %x5D-7E. */
static inline int fuzz_oauth_text(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == 0x22 || c == 0x5c || c > 0x7e)
			return 0;
	}
	return 1;
}

static inline int fuzz_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

/* Reference form-urldecoding as form.h describes it ('+' is a space, %XX a
 * byte; malformed escapes, decoded NUL, C0 controls, DEL, invalid UTF-8 and
 * more than `max` bytes refused): the decoded length, or -1. */
static inline long fuzz_url_decode(const char *s, size_t n, char *out, size_t max)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			if (n - i < 3 || fuzz_hexval((unsigned char)s[i + 1]) < 0 || fuzz_hexval((unsigned char)s[i + 2]) < 0)
				return -1;
			c = (unsigned char)(fuzz_hexval((unsigned char)s[i + 1]) * 16 + fuzz_hexval((unsigned char)s[i + 2]));
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || o == max)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return fuzz_utf8_valid((const unsigned char *)out, o) ? (long)o : -1;
}

#endif
