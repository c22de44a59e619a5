/*
 * openapi.c - the served OpenAPI description (see openapi.h). Built per
 * request (the document is read rarely: a console or a tool loading it).
 */
#include "openapi.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* The one occurrence of `needle` in doc[0..len), or NULL (none, or several). */
static const char *find_once(const char *doc, size_t len, const char *needle)
{
	size_t nl = strlen(needle);
	const char *found = NULL;
	for (const char *p = doc; p + nl <= doc + len; p++) {
		p = memchr(p, needle[0], (size_t)(doc + len - p));
		if (!p || p + nl > doc + len)
			break;
		if (memcmp(p, needle, nl) == 0) {
			if (found)
				return NULL;
			found = p;
		}
	}
	return found;
}

/* `prefix` + JSON string of issuer[0..ilen) + `suffix` + `tail`, malloc'd. */
static char *quoted_line(const char *prefix, const char *issuer, size_t ilen, const char *suffix,
                         const char *tail)
{
	char *value = malloc(ilen + strlen(suffix) + 1);
	if (!value)
		return NULL;
	memcpy(value, issuer, ilen);
	strcpy(value + ilen, suffix);
	json_t *js = json_string(value);
	free(value);
	char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
	json_decref(js);
	if (!q)
		return NULL;
	size_t n = strlen(prefix) + strlen(q) + strlen(tail) + 1;
	char *line = malloc(n);
	if (line) {
		strcpy(line, prefix);
		strcat(line, q);
		strcat(line, tail);
	}
	free(q);
	return line;
}

char *tk_openapi_render(const char *doc, size_t len, const char *issuer, size_t *outlen)
{
	char *out = NULL, *server = NULL, *token = NULL;
	if (!doc || !issuer || !*issuer)
		return NULL;
	size_t ilen = strlen(issuer);
	while (ilen > 1 && issuer[ilen - 1] == '/')
		ilen--;
	const char *a = find_once(doc, len, TK_OPENAPI_SERVER_LINE);
	const char *b = find_once(doc, len, TK_OPENAPI_TOKENURL_LINE);
	if (!a || !b || b < a)
		goto out;
	server = quoted_line("\n  - url: ", issuer, ilen, "", "\n");
	token = quoted_line("tokenUrl: ", issuer, ilen, "/oauth2/token", "\n");
	if (!server || !token)
		goto out;
	size_t al = strlen(TK_OPENAPI_SERVER_LINE), bl = strlen(TK_OPENAPI_TOKENURL_LINE);
	size_t n = len - al - bl + strlen(server) + strlen(token);
	out = malloc(n + 1);
	if (!out)
		goto out;
	size_t o = 0;
	memcpy(out + o, doc, (size_t)(a - doc));
	o += (size_t)(a - doc);
	memcpy(out + o, server, strlen(server));
	o += strlen(server);
	memcpy(out + o, a + al, (size_t)(b - (a + al)));
	o += (size_t)(b - (a + al));
	memcpy(out + o, token, strlen(token));
	o += strlen(token);
	memcpy(out + o, b + bl, (size_t)(doc + len - (b + bl)));
	o += (size_t)(doc + len - (b + bl));
	out[o] = '\0';
	*outlen = o;
out:
	free(server);
	free(token);
	return out;
}
