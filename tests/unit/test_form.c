/* test_form.c - strict urlencoded body and HTTP Basic parsers (SECURITY.md rows A1, A2). */
#include "unit.h"

#include <stdlib.h>

#include "tokend/form.h"

/* ---- helpers ------------------------------------------------------------ */

/* A refusal reason must be fit for an OAuth error_description:
 * %x20-21 / %x23-5B / %x5D-7E, non-empty. */
static int why_ok(const char *why)
{
	if (why == NULL || why[0] == '\0')
		return 0;
	for (const char *p = why; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
			return 0;
	}
	return 1;
}

static int form_empty(const tk_form *f)
{
	if (f->n != 0)
		return 0;
	for (size_t i = 0; i < TK_FORM_MAX_PARAMS; i++)
		if (f->name[i] != NULL || f->value[i] != NULL)
			return 0;
	return 1;
}

/* "[name][value]..." for every pair in order, into a static buffer. */
static const char *form_dump(const tk_form *f)
{
	static char out[4 * 8192];
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < f->n; i++) {
		int w = snprintf(out + o, sizeof(out) - o, "[%s][%s]", f->name[i], f->value[i]);
		if (w < 0 || (size_t)w >= sizeof(out) - o)
			return "(overflow)";
		o += (size_t)w;
	}
	return out;
}

/* ---- urlencoded body: the table ---------------------------------------- */

struct form_case {
	const char *body;
	size_t len;
	const char *expect; /* form_dump on success, NULL if refused */
	const char *why;    /* the refusal reason, NULL on success */
};

/* B(literal): the literal and its length, embedded NULs included. */
#define B(s) s, sizeof(s) - 1
#define OK(s, dump) { B(s), dump, NULL }
#define NO(s, reason) { B(s), NULL, reason }

static const struct form_case form_cases[] = {
	/* Valid bodies. */
	OK("grant_type=client_credentials", "[grant_type][client_credentials]"),
	OK("grant_type=client_credentials&scope=read+write",
	   "[grant_type][client_credentials][scope][read write]"),
	OK("a=%20b", "[a][ b]"),
	OK("a=1%2B1", "[a][1+1]"),
	OK("a=%e2%82%ac&b=%E2%82%AC&c=%e2%82%AC", "[a][\xe2\x82\xac][b][\xe2\x82\xac][c][\xe2\x82\xac]"),
	OK("a=%4a%4A", "[a][JJ]"),
	OK("a=", "[a][]"),
	OK("a", "[a][]"),
	OK("a&b=2", "[a][][b][2]"),
	OK("a=1&&b=2", "[a][1][b][2]"),
	OK("&a=1&", "[a][1]"),
	OK("", ""),
	OK("&&&", ""),
	OK("a=b=c", "[a][b=c]"),
	OK("a%3Db=c", "[a=b][c]"),
	OK("a=%26&b=%3D", "[a][&][b][=]"),
	OK("+a+=+", "[ a ][ ]"),
	OK("a=++", "[a][  ]"),
	OK("a=%2B%2b", "[a][++]"),
	OK("a=%25", "[a][%]"),
	OK("na%6De=x", "[name][x]"),
	OK("name=caf\xc3\xa9", "[name][caf\xc3\xa9]"),
	OK("a=%F0%9F%98%80", "[a][\xf0\x9f\x98\x80]"),
	OK("a=%EF%BF%BF", "[a][\xef\xbf\xbf]"),
	OK("a=%F4%8F%BF%BF", "[a][\xf4\x8f\xbf\xbf]"),
	OK("a=%C2%80", "[a][\xc2\x80]"),
	OK("a=x y", "[a][x y]"),
	OK("client_id=tk_1&client_secret=s%2F%3D%3F",
	   "[client_id][tk_1][client_secret][s/=?]"),

	/* Repeated parameters (RFC 6749 §3.1). */
	NO("a=1&a=2", "repeated parameter"),
	NO("a=1&a=1", "repeated parameter"),
	NO("a=&a=", "repeated parameter"),
	NO("a&a", "repeated parameter"),
	NO("a=1&%61=2", "repeated parameter"),
	NO("scope=a&scope=b", "repeated parameter scope"),
	NO("grant_type=client_credentials&grant_type=password", "repeated parameter grant_type"),
	NO("client_id=a&x=1&client_id=a", "repeated parameter client_id"),
	NO("client_secret=a&client_secret=b", "repeated parameter client_secret"),
	NO("resource=x&resource=y", "repeated parameter resource"), /* not repeatable here */

	/* NUL and control characters, raw and encoded. */
	NO("a=%00", "percent-encoded NUL in form body"),
	NO("a%00=1", "percent-encoded NUL in form body"),
	NO("a=1\0b", "NUL byte in form body"),
	NO("a=1&b=2\0", "NUL byte in form body"),
	NO("a=%0d%0aSet-Cookie:x", "percent-encoded control character in form body"),
	NO("a=%0A", "percent-encoded control character in form body"),
	NO("a=%09", "percent-encoded control character in form body"),
	NO("a=%7f", "percent-encoded control character in form body"),
	NO("a=%1B[31m", "percent-encoded control character in form body"),
	NO("a=1\r\nb=2", "control character in form body"),
	NO("a=\t", "control character in form body"),
	NO("a=\x7f", "control character in form body"),
	NO("a=%ZZ&b=\n", "control character in form body"), /* raw bytes are checked first */

	/* Malformed percent-encoding. */
	NO("a=%", "malformed percent-encoding"),
	NO("a=%G1", "malformed percent-encoding"),
	NO("a=%1G", "malformed percent-encoding"),
	NO("a=%4", "malformed percent-encoding"),
	NO("a=100%", "malformed percent-encoding"),
	NO("a=%%41", "malformed percent-encoding"),
	NO("a=% 41", "malformed percent-encoding"),
	NO("a=%+1", "malformed percent-encoding"),
	NO("%=1", "malformed percent-encoding"),
	NO("a=1&b=%ZZ", "malformed percent-encoding"), /* after an accepted pair */

	/* Names. */
	NO("=x", "empty parameter name"),
	NO("=", "empty parameter name"),
	NO("a=1&=2", "empty parameter name"),

	/* UTF-8 (RFC 3629). */
	NO("a=%C0%AF", "invalid UTF-8 in parameter value"),
	NO("a=%C1%BF", "invalid UTF-8 in parameter value"),
	NO("a=%E0%80%AF", "invalid UTF-8 in parameter value"),
	NO("a=%F0%80%80%AF", "invalid UTF-8 in parameter value"),
	NO("a=%ED%A0%80", "invalid UTF-8 in parameter value"),
	NO("a=%ED%BF%BF", "invalid UTF-8 in parameter value"),
	NO("a=%F4%90%80%80", "invalid UTF-8 in parameter value"),
	NO("a=%F5%80%80%80", "invalid UTF-8 in parameter value"),
	NO("a=%FF", "invalid UTF-8 in parameter value"),
	NO("a=%C3", "invalid UTF-8 in parameter value"),
	NO("a=%E2%82", "invalid UTF-8 in parameter value"),
	NO("a=%80", "invalid UTF-8 in parameter value"),
	NO("a=%C3%28", "invalid UTF-8 in parameter value"),
	NO("a=\xc0\xaf", "invalid UTF-8 in parameter value"),
	NO("a=\xff", "invalid UTF-8 in parameter value"),
	NO("%C0%AF=1", "invalid UTF-8 in parameter name"),
	NO("\xed\xa0\x80=1", "invalid UTF-8 in parameter name"),
};

static void test_form_table(void)
{
	for (size_t i = 0; i < sizeof(form_cases) / sizeof(form_cases[0]); i++) {
		const struct form_case *c = &form_cases[i];
		tk_form f;
		const char *why = "unset";
		int rc;

		memset(&f, 0x5a, sizeof(f)); /* garbage in: must be overwritten */
		rc = tk_form_parse(c->body, c->len, NULL, &f, &why);
		if (c->expect != NULL) {
			TEST_ASSERT(rc == 0);
			TEST_ASSERT(why == NULL);
			if (rc == 0) {
				TEST_ASSERT_STR(form_dump(&f), c->expect);
				tk_form_free(&f);
				TEST_ASSERT(form_empty(&f));
			} else {
				fprintf(stderr, "   case %zu refused: %s\n", i, why ? why : "?");
			}
		} else {
			TEST_ASSERT(rc == -1);
			TEST_ASSERT(form_empty(&f));
			TEST_ASSERT(why_ok(why));
			TEST_ASSERT_STR(why, c->why);
			if (rc == -1 && why != NULL && strcmp(why, c->why) != 0)
				fprintf(stderr, "   (case %zu)\n", i);
			if (rc == 0)
				tk_form_free(&f);
		}
	}
}

/* ---- urlencoded body: everything else ----------------------------------- */

static void test_form_resource_repeatable(void)
{
	static const char *const repeatable[] = { "resource", NULL };
	const char *body = "resource=https%3A%2F%2Fa.example%2Fapi&scope=read"
	                   "&resource=https%3A%2F%2Fb.example&grant_type=client_credentials";
	tk_form f;
	const char *why = "unset";

	TEST_ASSERT(tk_form_parse(body, strlen(body), repeatable, &f, &why) == 0);
	TEST_ASSERT(why == NULL);
	TEST_ASSERT(f.n == 4);
	TEST_ASSERT(tk_form_count_name(&f, "resource") == 2);
	TEST_ASSERT(tk_form_count_name(&f, "scope") == 1);
	TEST_ASSERT(tk_form_count_name(&f, "audience") == 0);
	TEST_ASSERT_STR(tk_form_get(&f, "resource"), "https://a.example/api");
	TEST_ASSERT_STR(tk_form_get_nth(&f, "resource", 0), "https://a.example/api");
	TEST_ASSERT_STR(tk_form_get_nth(&f, "resource", 1), "https://b.example");
	TEST_ASSERT(tk_form_get_nth(&f, "resource", 2) == NULL);
	TEST_ASSERT_STR(tk_form_get_nth(&f, "scope", 0), "read");
	TEST_ASSERT(tk_form_get_nth(&f, "scope", 1) == NULL);

	/* The iteration idiom from form.h visits both values in order. */
	const char *v;
	size_t seen = 0;
	for (size_t i = 0; (v = tk_form_get_nth(&f, "resource", i)) != NULL; i++)
		seen += strcmp(v, i == 0 ? "https://a.example/api" : "https://b.example") == 0;
	TEST_ASSERT(seen == 2);
	tk_form_free(&f);

	/* Repeatable names still obey every other rule; others still may not repeat. */
	const char *bad = "resource=x&resource=%00";
	TEST_ASSERT(tk_form_parse(bad, strlen(bad), repeatable, &f, &why) == -1);
	TEST_ASSERT_STR(why, "percent-encoded NUL in form body");
	TEST_ASSERT(form_empty(&f));
	const char *dup = "resource=x&resource=y&scope=a&scope=a";
	TEST_ASSERT(tk_form_parse(dup, strlen(dup), repeatable, &f, &why) == -1);
	TEST_ASSERT_STR(why, "repeated parameter scope");
	TEST_ASSERT(form_empty(&f));

	/* An empty repeatable list repeats nothing. */
	static const char *const none[] = { NULL };
	TEST_ASSERT(tk_form_parse(body, strlen(body), none, &f, &why) == -1);
	TEST_ASSERT_STR(why, "repeated parameter resource");

	/* Several repeatable names. */
	static const char *const two[] = { "resource", "audience", NULL };
	const char *both = "audience=a&resource=r1&audience=b&resource=r2&resource=r3";
	TEST_ASSERT(tk_form_parse(both, strlen(both), two, &f, &why) == 0);
	TEST_ASSERT(tk_form_count_name(&f, "audience") == 2);
	TEST_ASSERT(tk_form_count_name(&f, "resource") == 3);
	TEST_ASSERT_STR(tk_form_get_nth(&f, "resource", 2), "r3");
	tk_form_free(&f);
}

static void test_form_getters(void)
{
	const char *body = "scope=&grant_type=client_credentials&x";
	tk_form f;
	const char *why = "unset";

	TEST_ASSERT(tk_form_parse(body, strlen(body), NULL, &f, &why) == 0);
	TEST_ASSERT_STR(tk_form_get(&f, "scope"), "");
	TEST_ASSERT(tk_form_get_nonempty(&f, "scope") == NULL);
	TEST_ASSERT_STR(tk_form_get_nonempty(&f, "grant_type"), "client_credentials");
	TEST_ASSERT_STR(tk_form_get(&f, "x"), "");
	TEST_ASSERT(tk_form_get(&f, "missing") == NULL);
	TEST_ASSERT(tk_form_get(&f, "Scope") == NULL); /* names are case-sensitive */
	TEST_ASSERT(tk_form_get(&f, NULL) == NULL);
	TEST_ASSERT(tk_form_get(NULL, "scope") == NULL);
	TEST_ASSERT(tk_form_count_name(NULL, "scope") == 0);
	tk_form_free(&f);
	TEST_ASSERT(form_empty(&f));
	tk_form_free(&f); /* twice is harmless */
	tk_form_free(NULL);
}

static void test_form_arguments(void)
{
	tk_form f;
	const char *why = "unset";

	TEST_ASSERT(tk_form_parse("a=1", 3, NULL, NULL, &why) == -1);
	TEST_ASSERT(why_ok(why));
	TEST_ASSERT(tk_form_parse(NULL, 0, NULL, &f, &why) == 0);
	TEST_ASSERT(why == NULL && form_empty(&f));
	TEST_ASSERT(tk_form_parse(NULL, 1, NULL, &f, &why) == -1);
	TEST_ASSERT(why_ok(why) && form_empty(&f));
	/* why may be NULL. */
	TEST_ASSERT(tk_form_parse("a=%00", 5, NULL, &f, NULL) == -1);
	TEST_ASSERT(tk_form_parse("a=1", 3, NULL, &f, NULL) == 0);
	tk_form_free(&f);
}

/* Build "p0=v&p1=v&..." with n parameters into a malloc'd buffer. */
static char *many_params(size_t n, int same_name, size_t *len)
{
	char *s = malloc(n * 16 + 1);
	size_t o = 0;
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(s + o, "%sp%zu=v", i ? "&" : "", same_name ? (size_t)0 : i);
	*len = o;
	return s;
}

static void test_form_limits(void)
{
	tk_form f;
	const char *why = "unset";
	size_t len;
	char *s;

	s = many_params(TK_FORM_MAX_PARAMS, 0, &len);
	TEST_ASSERT(s != NULL && tk_form_parse(s, len, NULL, &f, &why) == 0);
	TEST_ASSERT(f.n == TK_FORM_MAX_PARAMS);
	TEST_ASSERT_STR(tk_form_get(&f, "p31"), "v");
	tk_form_free(&f);
	free(s);

	s = many_params(TK_FORM_MAX_PARAMS + 1, 0, &len);
	TEST_ASSERT(s != NULL && tk_form_parse(s, len, NULL, &f, &why) == -1);
	TEST_ASSERT_STR(why, "too many parameters");
	TEST_ASSERT(form_empty(&f));
	free(s);

	/* Empty segments do not count against the limit. */
	s = many_params(TK_FORM_MAX_PARAMS, 0, &len);
	if (s != NULL) {
		char *t = malloc(len + 64 + 1);
		if (t != NULL) {
			memset(t, '&', 64);
			memcpy(t + 64, s, len);
			TEST_ASSERT(tk_form_parse(t, len + 64, NULL, &f, &why) == 0);
			TEST_ASSERT(f.n == TK_FORM_MAX_PARAMS);
			tk_form_free(&f);
			free(t);
		}
		free(s);
	}

	/* 10k distinct parameters, and 10k of the same name. */
	s = many_params(10000, 0, &len);
	TEST_ASSERT(s != NULL && tk_form_parse(s, len, NULL, &f, &why) == -1);
	TEST_ASSERT_STR(why, "too many parameters");
	TEST_ASSERT(form_empty(&f));
	free(s);
	s = many_params(10000, 1, &len);
	TEST_ASSERT(s != NULL && tk_form_parse(s, len, NULL, &f, &why) == -1);
	TEST_ASSERT_STR(why, "repeated parameter");
	free(s);
	static const char *const p0[] = { "p0", NULL };
	s = many_params(10000, 1, &len);
	TEST_ASSERT(s != NULL && tk_form_parse(s, len, p0, &f, &why) == -1);
	TEST_ASSERT_STR(why, "too many parameters");
	free(s);

	/* 10k '&' only: no parameters. */
	s = malloc(10000);
	if (s != NULL) {
		memset(s, '&', 10000);
		TEST_ASSERT(tk_form_parse(s, 10000, NULL, &f, &why) == 0 && f.n == 0);
		free(s);
	}

	/* Name length: 64 decoded bytes pass, 65 do not; counted after decoding. */
	char buf[3 * (TK_FORM_VALUE_MAX + 1) + 16];
	memset(buf, 'n', TK_FORM_NAME_MAX);
	memcpy(buf + TK_FORM_NAME_MAX, "=1", 2);
	TEST_ASSERT(tk_form_parse(buf, TK_FORM_NAME_MAX + 2, NULL, &f, &why) == 0);
	TEST_ASSERT(f.n == 1 && strlen(f.name[0]) == TK_FORM_NAME_MAX);
	tk_form_free(&f);
	memset(buf, 'n', TK_FORM_NAME_MAX + 1);
	memcpy(buf + TK_FORM_NAME_MAX + 1, "=1", 2);
	TEST_ASSERT(tk_form_parse(buf, TK_FORM_NAME_MAX + 3, NULL, &f, &why) == -1);
	TEST_ASSERT_STR(why, "parameter name too long");
	TEST_ASSERT(form_empty(&f));
	for (size_t i = 0; i < TK_FORM_NAME_MAX; i++)
		memcpy(buf + 3 * i, "%6E", 3);
	memcpy(buf + 3 * TK_FORM_NAME_MAX, "=1", 2);
	TEST_ASSERT(tk_form_parse(buf, 3 * TK_FORM_NAME_MAX + 2, NULL, &f, &why) == 0);
	TEST_ASSERT(f.n == 1 && strlen(f.name[0]) == TK_FORM_NAME_MAX);
	tk_form_free(&f);

	/* Value length: TK_FORM_VALUE_MAX (= TK_TOKEN_MAX) decoded bytes pass, one more does not. */
	memcpy(buf, "v=", 2);
	memset(buf + 2, 'x', TK_FORM_VALUE_MAX + 1);
	TEST_ASSERT(tk_form_parse(buf, 2 + TK_FORM_VALUE_MAX, NULL, &f, &why) == 0);
	TEST_ASSERT(f.n == 1 && strlen(f.value[0]) == TK_FORM_VALUE_MAX);
	tk_form_free(&f);
	TEST_ASSERT(tk_form_parse(buf, 2 + TK_FORM_VALUE_MAX + 1, NULL, &f, &why) == -1);
	TEST_ASSERT_STR(why, "parameter value too long");
	TEST_ASSERT(form_empty(&f));
	for (size_t i = 0; i < TK_FORM_VALUE_MAX; i++)
		memcpy(buf + 2 + 3 * i, "%41", 3);
	TEST_ASSERT(tk_form_parse(buf, 2 + 3 * TK_FORM_VALUE_MAX, NULL, &f, &why) == 0);
	TEST_ASSERT(f.n == 1 && strlen(f.value[0]) == TK_FORM_VALUE_MAX && f.value[0][0] == 'A');
	tk_form_free(&f);
	memcpy(buf + 2 + 3 * TK_FORM_VALUE_MAX, "%41", 3);
	TEST_ASSERT(tk_form_parse(buf, 2 + 3 * (TK_FORM_VALUE_MAX + 1), NULL, &f, &why) == -1);
	TEST_ASSERT_STR(why, "parameter value too long");

	/* 32 parameters at the maximum sizes. */
	size_t big = TK_FORM_MAX_PARAMS * (TK_FORM_NAME_MAX + 1 + TK_FORM_VALUE_MAX + 1);
	s = malloc(big);
	if (s != NULL) {
		size_t o = 0;
		for (size_t i = 0; i < TK_FORM_MAX_PARAMS; i++) {
			int w = sprintf(s + o, "%02zu", i);
			memset(s + o + w, 'n', TK_FORM_NAME_MAX - (size_t)w);
			o += TK_FORM_NAME_MAX;
			s[o++] = '=';
			memset(s + o, 'v', TK_FORM_VALUE_MAX);
			o += TK_FORM_VALUE_MAX;
			if (i + 1 < TK_FORM_MAX_PARAMS)
				s[o++] = '&';
		}
		TEST_ASSERT(tk_form_parse(s, o, NULL, &f, &why) == 0);
		TEST_ASSERT(f.n == TK_FORM_MAX_PARAMS);
		tk_form_free(&f);
		free(s);
	}
}

/* Bodies are not NUL-terminated: nothing at or after len may be read. */
static void test_form_no_terminator(void)
{
	tk_form f;
	const char *why = "unset";

	/* Bytes after len are visible junk: the values must exclude them. */
	const char junk[] = "a=12xxxxxxxx&b=2";
	TEST_ASSERT(tk_form_parse(junk, 4, NULL, &f, &why) == 0);
	TEST_ASSERT_STR(form_dump(&f), "[a][12]");
	tk_form_free(&f);
	const char pct[] = "a=%41";
	TEST_ASSERT(tk_form_parse(pct, 3, NULL, &f, &why) == -1); /* "%41" cut to "%" */
	TEST_ASSERT_STR(why, "malformed percent-encoding");
	TEST_ASSERT(tk_form_parse(pct, 4, NULL, &f, &why) == -1); /* "%4" */
	TEST_ASSERT_STR(why, "malformed percent-encoding");
	const char nul[] = "a=1\0";
	TEST_ASSERT(tk_form_parse(nul, 3, NULL, &f, &why) == 0); /* the NUL is outside len */
	TEST_ASSERT_STR(form_dump(&f), "[a][1]");
	tk_form_free(&f);
	const char utf[] = "a=%C3%A9";
	TEST_ASSERT(tk_form_parse(utf, 5, NULL, &f, &why) == -1); /* "%C3" alone */
	TEST_ASSERT_STR(why, "invalid UTF-8 in parameter value");

	/* Exact-size heap copies without a terminator: ASan reports any over-read. */
	static const char *const bodies[] = {
		"a=1", "a", "a=", "a=%", "a=%4", "a=%41", "a=%C3", "a=%E2%82", "&", "a=1&",
		"scope=read+write", "=", "%", "a=\xc3",
	};
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		size_t n = strlen(bodies[i]);
		char *p = malloc(n);
		if (p == NULL)
			continue;
		memcpy(p, bodies[i], n);
		int rc = tk_form_parse(p, n, NULL, &f, &why);
		TEST_ASSERT(rc == 0 || rc == -1);
		if (rc == 0)
			tk_form_free(&f);
		free(p);
	}
}

/* Every byte value, percent-encoded and raw, as a one-byte value. */
static void test_form_every_byte(void)
{
	int mismatches = 0;
	for (int c = 0; c < 256; c++) {
		char body[8];
		tk_form f;
		const char *why;
		int want = c >= 0x20 && c < 0x7f; /* one byte >= 0x80 is never UTF-8 */

		snprintf(body, sizeof(body), "a=%%%02X", (unsigned)c);
		int rc = tk_form_parse(body, 5, NULL, &f, &why);
		if ((rc == 0) != want || (rc == 0 && (f.n != 1 || (unsigned char)f.value[0][0] != c)))
			mismatches++;
		if (rc == 0)
			tk_form_free(&f);
		else if (!why_ok(why))
			mismatches++;

		/* Raw: '%' is a bare escape, '+' a space, '&' and '=' separators. */
		body[0] = 'a';
		body[1] = '=';
		body[2] = (char)c;
		rc = tk_form_parse(body, 3, NULL, &f, &why);
		if ((rc == 0) != (want && c != '%'))
			mismatches++;
		if (rc == 0)
			tk_form_free(&f);
	}
	TEST_ASSERT(mismatches == 0);
}

/* ---- HTTP Basic --------------------------------------------------------- */

/* Standard base64 with padding of s[0..n) into out. */
static void b64(const char *s, size_t n, char *out)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0, i = 0;
	for (; i + 3 <= n; i += 3) {
		unsigned long v = (unsigned long)u[i] << 16 | (unsigned long)u[i + 1] << 8 | u[i + 2];
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = abc[v & 63];
	}
	if (n - i == 1) {
		unsigned long v = (unsigned long)u[i] << 16;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		unsigned long v = (unsigned long)u[i] << 16 | (unsigned long)u[i + 1] << 8;
		out[o++] = abc[v >> 18 & 63];
		out[o++] = abc[v >> 12 & 63];
		out[o++] = abc[v >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

static char sentinel_id, sentinel_secret;

/* Parse a literal header value; on success compare, on refusal check the reason. */
static void basic_case(int line, const char *hv, size_t len, const char *want_id,
                       const char *want_secret, const char *want_why)
{
	char *id = &sentinel_id, *secret = &sentinel_secret;
	const char *why = "unset";
	int rc = tk_basic_parse(hv, len, &id, &secret, &why);

	if (want_why == NULL) {
		TEST_ASSERT(rc == 0 && why == NULL);
		if (rc == 0) {
			TEST_ASSERT_STR(id, want_id);
			TEST_ASSERT_STR(secret, want_secret);
			tk_basic_free(id, secret);
		} else {
			fprintf(stderr, "   line %d refused: %s\n", line, why ? why : "?");
		}
	} else {
		TEST_ASSERT(rc == -1 && id == NULL && secret == NULL);
		TEST_ASSERT(why_ok(why));
		TEST_ASSERT_STR(why, want_why);
		if (rc == -1 && why != NULL && strcmp(why, want_why) != 0)
			fprintf(stderr, "   (line %d)\n", line);
		if (rc == 0)
			tk_basic_free(id, secret);
	}
}

#define BASIC_OK(hv, id, secret) basic_case(__LINE__, B(hv), id, secret, NULL)
#define BASIC_NO(hv, reason) basic_case(__LINE__, B(hv), NULL, NULL, reason)

/* "Basic " + base64(creds), creds given with their length. */
static void basic_creds(int line, const char *creds, size_t n, const char *want_id,
                        const char *want_secret, const char *want_why)
{
	char hv[2048];
	memcpy(hv, "Basic ", 6);
	b64(creds, n, hv + 6);
	basic_case(line, hv, strlen(hv), want_id, want_secret, want_why);
}

#define CREDS_OK(c, id, secret) basic_creds(__LINE__, B(c), id, secret, NULL)
#define CREDS_NO(c, reason) basic_creds(__LINE__, B(c), NULL, NULL, reason)

static void test_basic_table(void)
{
	/* Scheme and separator. "dGs6czE=" is base64("tk:s1"). */
	BASIC_OK("Basic dGs6czE=", "tk", "s1");
	BASIC_OK("basic dGs6czE=", "tk", "s1");
	BASIC_OK("BASIC dGs6czE=", "tk", "s1");
	BASIC_OK("bAsIc dGs6czE=", "tk", "s1");
	BASIC_OK("Basic    dGs6czE=", "tk", "s1");
	BASIC_NO("BasicdGs6czE=", "not the Basic authentication scheme");
	BASIC_NO("Bearer dGs6czE=", "not the Basic authentication scheme");
	BASIC_NO("Basi dGs6czE=", "not the Basic authentication scheme");
	BASIC_NO("Basics dGs6czE=", "not the Basic authentication scheme");
	BASIC_NO("Basic\tdGs6czE=", "not the Basic authentication scheme");
	BASIC_NO(" Basic dGs6czE=", "not the Basic authentication scheme");
	BASIC_NO("", "not the Basic authentication scheme");
	BASIC_NO("Basic", "missing Basic credentials");
	BASIC_NO("Basic ", "missing Basic credentials");
	BASIC_NO("Basic   ", "missing Basic credentials");

	/* Strict base64. */
	BASIC_NO("Basic dGs6czE", "base64 length is not a multiple of 4 in Basic credentials");
	BASIC_NO("Basic dGs6czE==", "base64 length is not a multiple of 4 in Basic credentials");
	BASIC_NO("Basic dGs6cw", "base64 length is not a multiple of 4 in Basic credentials");
	BASIC_NO("Basic dGs6c===", "misplaced base64 padding in Basic credentials");
	BASIC_NO("Basic ====", "misplaced base64 padding in Basic credentials");
	BASIC_NO("Basic dGs6czE=dGs6", "misplaced base64 padding in Basic credentials");
	BASIC_NO("Basic dGs=czE=", "misplaced base64 padding in Basic credentials");
	BASIC_NO("Basic dGs6 czE=", "invalid base64 character in Basic credentials");
	BASIC_NO("Basic dGs6czE= ", "invalid base64 character in Basic credentials");
	BASIC_NO("Basic dGs6czE=\r\n", "invalid base64 character in Basic credentials");
	BASIC_NO("Basic dGs6\nczE=", "invalid base64 character in Basic credentials");
	BASIC_NO("Basic dGs6czE*", "invalid base64 character in Basic credentials");
	BASIC_NO("Basic dGs6c-E_", "invalid base64 character in Basic credentials"); /* base64url */
	BASIC_NO("Basic dGs6czE=\0", "invalid base64 character in Basic credentials");
	BASIC_NO("Basic dGs6czF=", "non-canonical base64 in Basic credentials"); /* stray low bits */
	BASIC_NO("Basic dGs6cx==", "non-canonical base64 in Basic credentials");
	BASIC_OK("Basic dGs6cw==", "tk", "s");

	/* Split at the first ':'. */
	BASIC_NO("Basic dGs=", "no ':' in Basic credentials");          /* "tk" */
	BASIC_NO("Basic OnMx", "empty client_id in Basic credentials"); /* ":s1" */
	BASIC_OK("Basic dGs6", "tk", "");                                /* "tk:" */
	CREDS_OK("tk:a:b:", "tk", "a:b:");
	CREDS_OK("tk::", "tk", ":");
	CREDS_NO(":", "empty client_id in Basic credentials");

	/* RFC 6749 appendix B encoding of each part. */
	CREDS_OK("t%3Ak:s%3A1+2%2B", "t:k", "s:1 2+");
	CREDS_OK("t%3ak:%2b%2B", "t:k", "++");
	CREDS_OK("tk:secret/with=special?character", "tk", "secret/with=special?character");
	CREDS_OK("tk:%C3%A9t%C3%A9", "tk", "\xc3\xa9t\xc3\xa9");
	CREDS_OK("%20:%20", " ", " ");
	CREDS_OK("+:+", " ", " ");
	CREDS_NO("tk:s%001", "percent-encoded NUL in Basic credentials");
	CREDS_NO("t%00k:s", "percent-encoded NUL in Basic credentials");
	CREDS_NO("tk:s\0", "NUL byte in Basic credentials");
	CREDS_NO("t\nk:s", "control character in Basic credentials");
	CREDS_NO("tk:s\x7f", "control character in Basic credentials");
	CREDS_NO("tk:s%0d%0a", "percent-encoded control character in Basic credentials");
	CREDS_NO("tk:s%", "malformed percent-encoding in Basic credentials");
	CREDS_NO("tk:%G1", "malformed percent-encoding in Basic credentials");
	CREDS_NO("t%4:s", "malformed percent-encoding in Basic credentials");
	CREDS_NO("tk:\xc0\xaf", "invalid UTF-8 in Basic credentials");
	CREDS_NO("tk:%ED%A0%80", "invalid UTF-8 in Basic credentials");
	CREDS_NO("\xff:s", "invalid UTF-8 in Basic credentials");
}

/* Every byte as the third of four base64 characters (after "tk:" and "c0",
 * then 'w'): "invalid base64 character" exactly when it is neither in the
 * standard alphabet nor '=' (a table decides it), and decoded to its place in
 * the alphabet otherwise: "c0" + v + "w" is 's', 0x40 | v >> 2, and
 * 0x30 | (v & 3) << 6, text when v & 3 is 0 or 1 (the rest is not UTF-8). */
static void test_basic_every_byte(void)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	int wrong = 0, decoded = 0;
	for (int b = 0; b < 256; b++) {
		char hv[] = "Basic dGs6c0?w";
		hv[sizeof(hv) - 3] = (char)b;
		char *id = NULL, *secret = NULL;
		const char *why = NULL;
		int rc = tk_basic_parse(hv, sizeof(hv) - 1, &id, &secret, &why);
		const char *hit = b ? strchr(std, b) : NULL;
		int refused_charset = rc != 0 && why && strcmp(why, "invalid base64 character in Basic credentials") == 0;
		if (!hit && b != '=') {
			wrong += !refused_charset;
		} else {
			wrong += refused_charset;
			if (rc == 0) {
				unsigned v = (unsigned)(hit - std);
				decoded++;
				wrong += strcmp(id, "tk") != 0 || strlen(secret) != 3 || secret[0] != 's' ||
				         (unsigned char)secret[1] != (0x40 | v >> 2) ||
				         (unsigned char)secret[2] != (0x30 | (v & 3) << 6);
			}
		}
		if (rc == 0)
			tk_basic_free(id, secret);
	}
	TEST_ASSERT(wrong == 0);
	TEST_ASSERT(decoded == 32);
}

static void test_basic_sizes(void)
{
	char hv[4096], creds[1024];
	char *id = NULL, *secret = NULL;
	const char *why = "unset";

	/* Exactly TK_BASIC_HEADER_MAX bytes: "Basic" + 3 SP + 1016 base64 chars (762 bytes). */
	memset(creds, 'a', 762);
	creds[2] = ':';
	memcpy(hv, "Basic   ", 8);
	b64(creds, 762, hv + 8);
	TEST_ASSERT(strlen(hv) == TK_BASIC_HEADER_MAX);
	TEST_ASSERT(tk_basic_parse(hv, strlen(hv), &id, &secret, &why) == 0);
	TEST_ASSERT(id != NULL && strcmp(id, "aa") == 0);
	TEST_ASSERT(secret != NULL && strlen(secret) == 759);
	tk_basic_free(id, secret);

	/* One byte more. */
	memcpy(hv, "Basic    ", 9);
	b64(creds, 762, hv + 9);
	TEST_ASSERT(tk_basic_parse(hv, strlen(hv), &id, &secret, &why) == -1);
	TEST_ASSERT_STR(why, "Authorization header too long");
	TEST_ASSERT(id == NULL && secret == NULL);

	/* A 2 KiB header, and a 64 KiB one, are refused before decoding. */
	char *big = malloc(65536);
	if (big != NULL) {
		memcpy(big, "Basic ", 6);
		memset(big + 6, 'A', 65536 - 6);
		TEST_ASSERT(tk_basic_parse(big, 2048, &id, &secret, &why) == -1);
		TEST_ASSERT_STR(why, "Authorization header too long");
		TEST_ASSERT(tk_basic_parse(big, 65536, &id, &secret, &why) == -1);
		TEST_ASSERT_STR(why, "Authorization header too long");
		free(big);
	}

	/* Not NUL-terminated: bytes after len are ignored. */
	const char junk[] = "Basic dGs6czE=dGs6czE=";
	TEST_ASSERT(tk_basic_parse(junk, 14, &id, &secret, &why) == 0);
	TEST_ASSERT(id != NULL && strcmp(id, "tk") == 0);
	TEST_ASSERT(secret != NULL && strcmp(secret, "s1") == 0);
	tk_basic_free(id, secret);
	const char cut[] = "Basic dGs6czE=";
	TEST_ASSERT(tk_basic_parse(cut, 13, &id, &secret, &why) == -1);
	TEST_ASSERT_STR(why, "base64 length is not a multiple of 4 in Basic credentials");
	static const char *const heads[] = {
		"Basic dGs6czE=", "Basic", "Basic ", "B", "Basic dGs6czE", "Basic dGs6",
		"Basic dA==", "Basic OnMx",
	};
	for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
		size_t n = strlen(heads[i]);
		char *p = malloc(n);
		if (p == NULL)
			continue;
		memcpy(p, heads[i], n); /* exact size, no terminator: ASan checks over-reads */
		if (tk_basic_parse(p, n, &id, &secret, &why) == 0)
			tk_basic_free(id, secret);
		free(p);
	}
}

static void test_basic_arguments(void)
{
	char *id = &sentinel_id, *secret = &sentinel_secret;
	const char *why = "unset";

	TEST_ASSERT(tk_basic_parse(NULL, 0, &id, &secret, &why) == -1);
	TEST_ASSERT(why_ok(why) && id == NULL && secret == NULL);
	TEST_ASSERT(tk_basic_parse("Basic dGs6czE=", 14, NULL, &secret, &why) == -1);
	TEST_ASSERT(why_ok(why));
	TEST_ASSERT(tk_basic_parse("Basic dGs6czE=", 14, &id, NULL, &why) == -1);
	TEST_ASSERT(tk_basic_parse("Basic dGs6czE=", 14, &id, &secret, NULL) == 0);
	tk_basic_free(id, secret);
	tk_basic_free(NULL, NULL);
}

/* Round trip: every byte pattern a client may legitimately send survives
 * appendix B encoding + base64. */
static void test_basic_round_trip(void)
{
	static const char *const secrets[] = {
		"tks_0123456789abcdefghijABCDEFGHIJ0123456789abcdefgh",
		"a b+c%d:e/f=g?h&i", " leading and trailing ", "\xe2\x82\xac\xf0\x9f\x98\x80",
		"!#$'()*,;@[]^`{|}~\"\\<>",
	};
	int mismatches = 0;
	for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++) {
		char enc[512], hv[1024];
		size_t o = 0;
		memcpy(enc, "tk%5Fid:", 8);
		o = 8;
		for (const unsigned char *p = (const unsigned char *)secrets[k]; *p; p++) {
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '*')
				enc[o++] = (char)*p;
			else if (*p == ' ')
				enc[o++] = '+';
			else
				o += (size_t)sprintf(enc + o, "%%%02X", *p);
		}
		memcpy(hv, "Basic ", 6);
		b64(enc, o, hv + 6);
		char *id = NULL, *secret = NULL;
		const char *why;
		if (tk_basic_parse(hv, strlen(hv), &id, &secret, &why) != 0) {
			mismatches++;
			continue;
		}
		if (strcmp(id, "tk_id") != 0 || strcmp(secret, secrets[k]) != 0)
			mismatches++;
		tk_basic_free(id, secret);
	}
	TEST_ASSERT(mismatches == 0);
}

int main(void)
{
	TEST_RUN(test_form_table);
	TEST_RUN(test_form_resource_repeatable);
	TEST_RUN(test_form_getters);
	TEST_RUN(test_form_arguments);
	TEST_RUN(test_form_limits);
	TEST_RUN(test_form_no_terminator);
	TEST_RUN(test_form_every_byte);
	TEST_RUN(test_basic_table);
	TEST_RUN(test_basic_sizes);
	TEST_RUN(test_basic_every_byte);
	TEST_RUN(test_basic_arguments);
	TEST_RUN(test_basic_round_trip);
	fprintf(stderr, "%zu form table cases\n", sizeof(form_cases) / sizeof(form_cases[0]));
	TEST_DONE();
}
