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
		tk_log_escape(v, strlen(v), esc, sizeof(esc));
		len = append(line, len, sizeof(line) - 2, json_format ? ",\"" : " ");
		len = append(line, len, sizeof(line) - 2, k);
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
