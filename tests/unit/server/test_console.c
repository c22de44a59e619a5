/*
 * test_console.c - the console's embedded assets (server/console/): every file
 * under server/console/assets/ is in the table byte for byte with its type and
 * a strong ETag; names are matched exactly (nothing else can be named); the
 * If-None-Match comparison; the routes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console.h"
#include "unit.h"

static const tk_console_asset *find(const char *path)
{
	return tk_console_find(path, strlen(path));
}

/* The bytes of a source file, or NULL. */
static unsigned char *slurp(const char *rel, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", TK_CONSOLE_SOURCE, rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			unsigned char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void test_table(void)
{
	TEST_ASSERT(tk_console_asset_count >= 6);
	TEST_ASSERT(tk_console_assets[tk_console_asset_count].path == NULL);
	for (size_t i = 0; i < tk_console_asset_count; i++) {
		const tk_console_asset *a = &tk_console_assets[i];
		TEST_ASSERT(a->path && a->ctype && a->etag && a->data);
		/* A strong ETag: a quoted 32-digit hex string (a SHA-256 prefix). */
		TEST_ASSERT(strlen(a->etag) == 34 && a->etag[0] == '"' && a->etag[33] == '"');
		TEST_ASSERT(strspn(a->etag + 1, "0123456789abcdef") == 32);
		TEST_ASSERT(find(a->path) == a);
		/* The embedded bytes are the file's. */
		char rel[512];
		if (strncmp(a->path, "vendor/swagger-ui/", 18) == 0)
			snprintf(rel, sizeof(rel), "node_modules/swagger-ui-dist/%s", a->path + 18);
		else
			snprintf(rel, sizeof(rel), "assets/%s", a->path);
		size_t len = 0;
		unsigned char *want = slurp(rel, &len);
		TEST_ASSERT(want != NULL);
		TEST_ASSERT(len == a->len && memcmp(want, a->data, len) == 0);
		free(want);
	}
	TEST_ASSERT(strcmp(find("index.html")->ctype, "text/html; charset=utf-8") == 0);
	TEST_ASSERT(strcmp(find("api.js")->ctype, "text/javascript; charset=utf-8") == 0);
	TEST_ASSERT(strcmp(find("app.css")->ctype, "text/css; charset=utf-8") == 0);
	TEST_ASSERT(strcmp(find("favicon.svg")->ctype, "image/svg+xml") == 0);
	TEST_ASSERT(find("vendor/swagger-ui/swagger-ui-bundle.js") != NULL);
	TEST_ASSERT(find("vendor/swagger-ui/swagger-ui.css") != NULL);
}

static void test_names_exact(void)
{
	TEST_ASSERT(find("") == find("index.html"));
	TEST_ASSERT(find("api") == find("api.html"));
	static const char *const refused[] = {
		"index.htm", "index.html/", "/index.html", "./index.html", "../index.html", "INDEX.HTML",
		"index.html ", "%69ndex.html", "vendor", "vendor/", "vendor/swagger-ui", "api/", "ap",
		"vendor/swagger-ui/../../index.html", "swagger-ui-bundle.js", "vendor/swagger-ui/index.html",
		"node_modules/swagger-ui-dist/package.json", "../console.c", "..", ".",
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		TEST_ASSERT(find(refused[i]) == NULL);
	/* The length is what counts: a name followed by more bytes (a NUL) is not the name. */
	TEST_ASSERT(tk_console_find("index.html\0x", 12) == NULL);
	TEST_ASSERT(tk_console_find("index.html", 9) == NULL);
}

static void test_if_none_match(void)
{
	const char *e = "\"0123456789abcdef0123456789abcdef\"";
	TEST_ASSERT(tk_console_etag_matches(e, e));
	TEST_ASSERT(tk_console_etag_matches("W/\"0123456789abcdef0123456789abcdef\"", e));
	TEST_ASSERT(tk_console_etag_matches("*", e));
	TEST_ASSERT(tk_console_etag_matches("\"x\", \"0123456789abcdef0123456789abcdef\"", e));
	TEST_ASSERT(tk_console_etag_matches(" \"0123456789abcdef0123456789abcdef\" , \"y\"", e));
	TEST_ASSERT(!tk_console_etag_matches(NULL, e));
	TEST_ASSERT(!tk_console_etag_matches("", e));
	TEST_ASSERT(!tk_console_etag_matches("W/", e));
	TEST_ASSERT(!tk_console_etag_matches(",,,", e));
	TEST_ASSERT(!tk_console_etag_matches("0123456789abcdef0123456789abcdef", e));        /* unquoted */
	TEST_ASSERT(!tk_console_etag_matches("\"0123456789abcdef0123456789abcde\"", e));     /* shorter */
	TEST_ASSERT(!tk_console_etag_matches("\"0123456789abcdef0123456789abcdef0\"", e));   /* longer */
	TEST_ASSERT(!tk_console_etag_matches("\"0123456789abcdef0123456789abcdef\"x", e));
	TEST_ASSERT(!tk_console_etag_matches(e, NULL));
}

static void test_routes(void)
{
	const tk_route *tables[] = { tk_console_routes };
	tk_router *r = tk_router_new(tables, 1, 0, 0);
	TEST_ASSERT(r != NULL);
	TEST_ASSERT(tk_router_match(r, "/", 1, 0)->fn == tk_console_redirect);
	TEST_ASSERT(tk_router_match(r, "/console", 8, 0)->fn == tk_console_redirect);
	TEST_ASSERT(tk_router_match(r, "/console/", 9, 0)->fn == tk_console_handle);
	TEST_ASSERT(tk_router_match(r, "/console/app.js", 15, 0)->fn == tk_console_handle);
	TEST_ASSERT(tk_router_match(r, "/consolex", 9, 0) == NULL);
	TEST_ASSERT(tk_router_match(r, "/console/", 9, 0)->ep == EP_CONSOLE);
	tk_router_free(r);
	/* With an admin listener the console is there, beside the admin API, not on the main one. */
	r = tk_router_new(tables, 1, 1, 0);
	TEST_ASSERT(r != NULL);
	TEST_ASSERT(tk_router_match(r, "/console/", 9, 0) == NULL);
	TEST_ASSERT(tk_router_match(r, "/console/", 9, 1) != NULL);
	TEST_ASSERT(tk_router_match(r, "/", 1, 1) != NULL);
	tk_router_free(r);
}

int main(void)
{
	TEST_RUN(test_table);
	TEST_RUN(test_names_exact);
	TEST_RUN(test_if_none_match);
	TEST_RUN(test_routes);
	TEST_DONE();
}
