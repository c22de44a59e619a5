/*
 * console.c - serving the console's embedded assets: exact names only (the
 * request path is never decoded nor mapped to a file), GET and HEAD, a strong
 * ETag with 304 on If-None-Match, and the security headers on every answer,
 * errors included.
 */
#include <string.h>

#include <event2/http.h>

#include "console.h"

#define PREFIX "/console/"
#define PREFIX_LEN (sizeof(PREFIX) - 1)

const tk_console_asset *tk_console_find(const char *path, size_t len)
{
	/* The two pages named without their extension. */
	if (len == 0) {
		path = "index.html";
		len = strlen(path);
	} else if (len == 3 && memcmp(path, "api", 3) == 0) {
		path = "api.html";
		len = strlen(path);
	}
	for (size_t i = 0; i < tk_console_asset_count; i++) {
		const tk_console_asset *a = &tk_console_assets[i];
		if (strlen(a->path) == len && memcmp(a->path, path, len) == 0)
			return a;
	}
	return NULL;
}

int tk_console_etag_matches(const char *inm, const char *etag)
{
	if (!inm || !etag)
		return 0;
	size_t el = strlen(etag);
	const char *p = inm;
	for (;;) {
		p += strspn(p, " \t,");
		if (!*p)
			return 0;
		if (*p == '*')
			return 1;
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		size_t n = strcspn(p, ",");
		/* The tag ends at its closing quote; trailing blanks are not part of it. */
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == el && memcmp(p, etag, el) == 0)
			return 1;
		p += strcspn(p, ",");
	}
}

/* The headers of every console response. */
static void console_headers(struct evhttp_request *req)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "Content-Security-Policy", TK_CONSOLE_CSP);
	evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	evhttp_add_header(out, "X-Frame-Options", "DENY");
	evhttp_add_header(out, "Cache-Control", "no-cache");
	/* X-Content-Type-Options: nosniff comes with every reply (tk_http_reply). */
}

static void console_error(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri, int status,
                          const char *text)
{
	tk_http_reply(w, req, ri, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* A path that names no asset by construction: encoded bytes, backslashes,
 * control bytes, empty, "." or ".." segments. Answered 400, not looked up. */
static int malformed(const char *p, size_t len)
{
	size_t seg = 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)p[i] : '/';
		if (c == '%' || c == '\\' || c < 0x21 || c > 0x7e)
			return 1;
		if (c != '/')
			continue;
		size_t sl = i - seg;
		if ((sl == 0 && i < len) || (sl == 1 && p[seg] == '.') ||
		    (sl == 2 && p[seg] == '.' && p[seg + 1] == '.'))
			return 1;
		seg = i + 1;
	}
	return 0;
}

void tk_console_handle(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	console_headers(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		return console_error(w, req, ri, 405, "method not allowed: the console answers GET and HEAD\n");
	}
	const char *uri = evhttp_request_get_uri(req);
	size_t len = uri ? strcspn(uri, "?") : 0;
	if (len < PREFIX_LEN || memcmp(uri, PREFIX, PREFIX_LEN) != 0)
		return console_error(w, req, ri, 404, "not found\n");
	const char *path = uri + PREFIX_LEN;
	len -= PREFIX_LEN;
	if (len && malformed(path, len))
		return console_error(w, req, ri, 400, "bad request: a console path is a plain asset name\n");
	const tk_console_asset *a = tk_console_find(path, len);
	if (!a)
		return console_error(w, req, ri, 404, "not found\n");
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	evhttp_add_header(out, "ETag", a->etag);
	const char *inm = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
	if (tk_console_etag_matches(inm, a->etag))
		return tk_http_reply(w, req, ri, 304, NULL, NULL, 0);
	tk_http_reply(w, req, ri, 200, a->ctype, (const char *)a->data, a->len);
}

void tk_console_redirect(tk_worker *w, struct evhttp_request *req, tk_reqinfo *ri)
{
	console_headers(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		return console_error(w, req, ri, 405, "method not allowed: the console answers GET and HEAD\n");
	}
	/* A relative reference on this origin: never a host taken from the request. */
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", PREFIX);
	console_error(w, req, ri, 302, "see /console/\n");
}
