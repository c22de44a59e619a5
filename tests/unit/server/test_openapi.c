/*
 * test_openapi.c - the served OpenAPI document (server/admin/openapi.c): the
 * issuer replaces the server URL and the token URL, quoted; a document
 * without exactly one of each line is refused rather than served half-done.
 */
#include <stdlib.h>
#include <string.h>

#include "openapi.h"
#include "unit.h"

static const char doc[] =
	"openapi: 3.1.0\nservers:\n  - url: http://127.0.0.1:8080\n    description: x\n"
	"components:\n  securitySchemes:\n    oauth2:\n      flows:\n        clientCredentials:\n"
	"          tokenUrl: http://127.0.0.1:8080/oauth2/token\n          scopes: {}\n";

static char *render(const char *d, const char *issuer)
{
	size_t n = 0;
	char *out = tk_openapi_render(d, strlen(d), issuer, &n);
	TEST_ASSERT(!out || n == strlen(out));
	return out;
}

static void test_render(void)
{
	char *out = render(doc, "https://auth.example.com/");
	TEST_ASSERT(out != NULL);
	TEST_ASSERT(out && strstr(out, "\n  - url: \"https://auth.example.com\"\n    description: x\n"));
	TEST_ASSERT(out && strstr(out, "          tokenUrl: \"https://auth.example.com/oauth2/token\"\n          scopes: {}\n"));
	TEST_ASSERT(out && !strstr(out, "127.0.0.1"));
	TEST_ASSERT(out && strncmp(out, "openapi: 3.1.0\nservers:\n", 24) == 0);
	free(out);
	/* YAML-significant characters stay inside the quoted string. */
	out = render(doc, "https://h/x\" #: y\\");
	TEST_ASSERT(out && strstr(out, "url: \"https://h/x\\\" #: y\\\\\"\n"));
	free(out);
}

static void test_refused(void)
{
	TEST_ASSERT(render(doc, "") == NULL);
	TEST_ASSERT(render(doc, NULL) == NULL);
	TEST_ASSERT(render("openapi: 3.1.0\n", "https://a") == NULL);
	char twice[1024];
	strcpy(twice, doc);
	strcat(twice, "servers:\n  - url: http://127.0.0.1:8080\n");
	TEST_ASSERT(render(twice, "https://a") == NULL);
	size_t n;
	TEST_ASSERT(tk_openapi_render(NULL, 0, "https://a", &n) == NULL);
}

int main(void)
{
	TEST_RUN(test_render);
	TEST_RUN(test_refused);
	TEST_DONE();
}
