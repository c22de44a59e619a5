/*
 * log.c - structured logs on stderr.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static tk_log_level min_level = TK_LOG_INFO;
static int json_format;

static const char *const level_names[] = { "debug", "info", "warning", "error" };

void tk_log_init(const char *level, const char *format)
{
	for (int i = 0; i < 4; i++)
		if (level && strcmp(level, level_names[i]) == 0)
			min_level = (tk_log_level)i;
	json_format = format && strcmp(format, "json") == 0;
}

int tk_log_enabled(tk_log_level lvl)
{
	return lvl >= min_level;
}

char *tk_log_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < inlen && in[i]; i++) {
		unsigned char c = (unsigned char)in[i];
		char buf[7];
		size_t n;
		if (c == '"' || c == '\\') {
			buf[0] = '\\';
			buf[1] = (char)c;
			n = 2;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(buf, "\\u00", 4);
			buf[4] = hex[c >> 4];
			buf[5] = hex[c & 15];
			n = 6;
		} else {
			buf[0] = (char)c;
			n = 1;
		}
		if (o + n + 1 > outlen)
			break;
		memcpy(out + o, buf, n);
		o += n;
	}
	if (outlen)
		out[o < outlen ? o : outlen - 1] = '\0';
	return out;
}

static size_t append(char *line, size_t len, size_t cap, const char *s)
{
	size_t n = strlen(s);
	if (len + n >= cap)
		n = cap - len - 1;
	memcpy(line + len, s, n);
	line[len + n] = '\0';
	return len + n;
}

/* A JSON number as written by our callers: -?digits, optionally .digits
 * (no exponent, no leading '+', at most 24 characters). */
static int is_number(const char *v)
{
	const char *p = v;
	if (*p == '-')
		p++;
	size_t d = strspn(p, "0123456789");
	if (d == 0 || (d > 1 && *p == '0'))
		return 0;
	p += d;
	if (*p == '.') {
		size_t f = strspn(p + 1, "0123456789");
		if (f == 0)
			return 0;
		p += 1 + f;
	}
	return *p == '\0' && (size_t)(p - v) <= 24;
}

/* "true"/"false" for a boolean value ("1", "true", "yes" / "0", "false", "no"), else NULL. */
static const char *bool_text(const char *v)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
		return "true";
	if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
		return "false";
	return NULL;
}

void tk_log(tk_log_level lvl, const char *event, ...)
{
	if (lvl < min_level)
		return;
	char line[4096], ts[40], esc[1024];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);

	size_t len = 0;
	if (json_format) {
		len = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"%s\"",
		                       ts, level_names[lvl], tk_log_escape(event, strlen(event), esc, sizeof(esc)));
	} else {
		len = (size_t)snprintf(line, sizeof(line), "%s %s event=%s", ts, level_names[lvl],
		                       tk_log_escape(event, strlen(event), esc, sizeof(esc)));
	}
	va_list ap;
	va_start(ap, event);
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (!k)
			break;
		const char *v = va_arg(ap, const char *);
		if (!v)
			continue;
		/* A typed value goes out bare; anything else (or a value that is
		 * not what its key promises) as an escaped string. */
		const char *bare = NULL;
		if (*k == TK_LOG_NUM[0] || *k == TK_LOG_BOOL[0]) {
			bare = *k == TK_LOG_NUM[0] ? (is_number(v) ? v : NULL) : bool_text(v);
			k++;
		}
		len = append(line, len, sizeof(line) - 2, json_format ? ",\"" : " ");
		len = append(line, len, sizeof(line) - 2, k);
		if (bare) {
			len = append(line, len, sizeof(line) - 2, json_format ? "\":" : "=");
			len = append(line, len, sizeof(line) - 2, bare);
			continue;
		}
		tk_log_escape(v, strlen(v), esc, sizeof(esc));
		len = append(line, len, sizeof(line) - 2, json_format ? "\":\"" : "=\"");
		len = append(line, len, sizeof(line) - 2, esc);
		len = append(line, len, sizeof(line) - 2, "\"");
	}
	va_end(ap);
	if (json_format)
		len = append(line, len, sizeof(line) - 1, "}");
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w;
}
