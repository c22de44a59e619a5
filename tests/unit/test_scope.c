/* test_scope.c - scope-token validation, parsing limits, set operations. */
#include "unit.h"

#include <stdlib.h>

#include "tokend/scope.h"

static int parses(const char *s, tk_scopes *out)
{
	const char *why = "unset";
	int rc = tk_scopes_parse(s, strlen(s), out, &why);
	if (rc != 0)
		fprintf(stderr, "   unexpected refusal of \"%s\": %s\n", s, why ? why : "?");
	return rc == 0 && why == NULL;
}

/* Refused, with a reason, and the output left empty. */
static int refused_len(const char *s, size_t len)
{
	tk_scopes out;
	const char *why = NULL;
	memset(&out, 0x5a, sizeof(out)); /* garbage in: must be overwritten */
	int rc = tk_scopes_parse(s, len, &out, &why);
	int ok = rc == -1 && why != NULL && why[0] != '\0' && out.n == 0;
	for (size_t i = 0; i < TK_SCOPES_MAX; i++)
		if (out.v[i] != NULL)
			ok = 0;
	if (rc == 0)
		tk_scopes_free(&out);
	return ok;
}

static int refused(const char *s)
{
	return refused_len(s, strlen(s));
}

static void test_token_valid(void)
{
	TEST_ASSERT(tk_scope_token_valid("read", 4));
	TEST_ASSERT(tk_scope_token_valid("a", 1));
	TEST_ASSERT(tk_scope_token_valid("urn:example:read/write!#$%&'()*+,-.;<=>?@[]^_`{|}~", 50));
	TEST_ASSERT(!tk_scope_token_valid("", 0));
	TEST_ASSERT(!tk_scope_token_valid(NULL, 0));
	TEST_ASSERT(!tk_scope_token_valid("a b", 3));
	TEST_ASSERT(!tk_scope_token_valid("a\"b", 3));
	TEST_ASSERT(!tk_scope_token_valid("a\\b", 3));
	TEST_ASSERT(!tk_scope_token_valid("a\0b", 3));
	TEST_ASSERT(!tk_scope_token_valid("a\tb", 3));
	TEST_ASSERT(!tk_scope_token_valid("a\x7f", 2));
	TEST_ASSERT(!tk_scope_token_valid("caf\xc3\xa9", 5));
	/* Only len bytes count. */
	TEST_ASSERT(tk_scope_token_valid("ab cd", 2));

	/* Every byte value against the grammar: %x21 / %x23-5B / %x5D-7E. */
	int mismatches = 0;
	for (int c = 0; c < 256; c++) {
		char ch = (char)c;
		int want = (c == 0x21) || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
		if (tk_scope_token_valid(&ch, 1) != want)
			mismatches++;
	}
	TEST_ASSERT(mismatches == 0);

	char big[TK_SCOPE_TOKEN_MAX + 1];
	memset(big, 'x', sizeof(big));
	TEST_ASSERT(tk_scope_token_valid(big, TK_SCOPE_TOKEN_MAX));
	TEST_ASSERT(!tk_scope_token_valid(big, TK_SCOPE_TOKEN_MAX + 1));
}

static void test_parse_valid(void)
{
	tk_scopes s;
	TEST_ASSERT(parses("read", &s));
	TEST_ASSERT(s.n == 1);
	TEST_ASSERT_STR(s.v[0], "read");
	tk_scopes_free(&s);
	TEST_ASSERT(s.n == 0 && s.v[0] == NULL);

	TEST_ASSERT(parses("read write admin:keys urn:x:y", &s));
	TEST_ASSERT(s.n == 4);
	TEST_ASSERT_STR(s.v[0], "read");
	TEST_ASSERT_STR(s.v[1], "write");
	TEST_ASSERT_STR(s.v[2], "admin:keys");
	TEST_ASSERT_STR(s.v[3], "urn:x:y");
	tk_scopes_free(&s);

	/* Empty string: empty set. */
	const char *why = "unset";
	TEST_ASSERT(tk_scopes_parse("", 0, &s, &why) == 0 && s.n == 0 && why == NULL);
	TEST_ASSERT(tk_scopes_parse(NULL, 0, &s, NULL) == 0 && s.n == 0);

	/* Case matters: these are different tokens. */
	TEST_ASSERT(parses("Read read READ", &s));
	TEST_ASSERT(s.n == 3);
	tk_scopes_free(&s);

	/* Only len bytes are parsed; no NUL needed (exact heap copy for ASan). */
	char *h = malloc(10);
	TEST_ASSERT(h != NULL);
	if (h != NULL) {
		memcpy(h, "read write", 10);
		TEST_ASSERT(tk_scopes_parse(h, 10, &s, NULL) == 0 && s.n == 2);
		tk_scopes_free(&s);
		TEST_ASSERT(tk_scopes_parse(h, 4, &s, NULL) == 0 && s.n == 1);
		TEST_ASSERT_STR(s.v[0], "read");
		tk_scopes_free(&s);
		free(h);
	}

	/* Exactly at the limits: 32 tokens; a 128-byte token; a 1024-byte string. */
	char buf[TK_SCOPE_STRING_MAX + 64];
	size_t o = 0;
	for (int i = 0; i < TK_SCOPES_MAX; i++)
		o += (size_t)sprintf(buf + o, "%ss%d", i ? " " : "", i);
	TEST_ASSERT(tk_scopes_parse(buf, o, &s, NULL) == 0 && s.n == TK_SCOPES_MAX);
	tk_scopes_free(&s);

	memset(buf, 'q', TK_SCOPE_TOKEN_MAX);
	TEST_ASSERT(tk_scopes_parse(buf, TK_SCOPE_TOKEN_MAX, &s, NULL) == 0 && s.n == 1);
	TEST_ASSERT(s.n == 1 && strlen(s.v[0]) == TK_SCOPE_TOKEN_MAX);
	tk_scopes_free(&s);

	/* 7 tokens of 127 bytes + 7 spaces + one of 128 = 1024 bytes. */
	o = 0;
	for (int i = 0; i < 7; i++) {
		memset(buf + o, 'a' + i, 127);
		o += 127;
		buf[o++] = ' ';
	}
	memset(buf + o, 'z', TK_SCOPE_STRING_MAX - o);
	TEST_ASSERT(TK_SCOPE_STRING_MAX - o == TK_SCOPE_TOKEN_MAX);
	TEST_ASSERT(tk_scopes_parse(buf, TK_SCOPE_STRING_MAX, &s, NULL) == 0 && s.n == 8);
	tk_scopes_free(&s);
}

static void test_parse_refused(void)
{
	/* Separators. */
	TEST_ASSERT(refused(" read"));
	TEST_ASSERT(refused("read "));
	TEST_ASSERT(refused("read  write"));
	TEST_ASSERT(refused(" "));
	TEST_ASSERT(refused("  "));
	TEST_ASSERT(refused("read\twrite"));
	TEST_ASSERT(refused("read\nwrite"));
	TEST_ASSERT(refused("read\r\nwrite"));
	TEST_ASSERT(refused("read,write") == 0); /* ',' is a legal scope char */
	/* Characters. */
	TEST_ASSERT(refused("re\"ad"));
	TEST_ASSERT(refused("re\\ad"));
	TEST_ASSERT(refused("caf\xc3\xa9"));
	TEST_ASSERT(refused("read\x7f"));
	TEST_ASSERT(refused_len("read\0write", 10));
	TEST_ASSERT(refused_len("read \0", 6));
	/* Duplicates, adjacent or not. */
	TEST_ASSERT(refused("read read"));
	TEST_ASSERT(refused("read write read"));
	TEST_ASSERT(refused("a b c d e f g a"));
	TEST_ASSERT(refused("ab a ab") == 1);
	/* A prefix of another token is not a duplicate. */
	TEST_ASSERT(refused("read readx") == 0);

	/* Too many tokens: 33. */
	char buf[4096];
	size_t o = 0;
	for (int i = 0; i < TK_SCOPES_MAX + 1; i++)
		o += (size_t)sprintf(buf + o, "%ss%d", i ? " " : "", i);
	TEST_ASSERT(refused_len(buf, o));
	/* 320 one-character-ish tokens (A4). */
	o = 0;
	for (int i = 0; i < 320 && o < 1000; i++)
		o += (size_t)sprintf(buf + o, "%s%c%c", i ? " " : "", 'A' + i % 26, 'a' + i / 26);
	TEST_ASSERT(refused_len(buf, o));

	/* A 129-byte token. */
	memset(buf, 'x', TK_SCOPE_TOKEN_MAX + 1);
	TEST_ASSERT(refused_len(buf, TK_SCOPE_TOKEN_MAX + 1));
	memcpy(buf, "read ", 5); /* "read " + 129 x */
	memset(buf + 5, 'x', TK_SCOPE_TOKEN_MAX + 1);
	TEST_ASSERT(refused_len(buf, 5 + TK_SCOPE_TOKEN_MAX + 1));
	TEST_ASSERT(!refused_len(buf, 5 + TK_SCOPE_TOKEN_MAX));

	/* 1025 bytes: refused even though every token is fine. */
	o = 0;
	for (int i = 0; i < 8; i++) {
		if (i)
			buf[o++] = ' ';
		memset(buf + o, 'a' + i, 127);
		o += 127;
	}
	buf[o++] = ' ';
	buf[o++] = 'z';
	TEST_ASSERT(o == TK_SCOPE_STRING_MAX + 1);
	TEST_ASSERT(refused_len(buf, o));
	tk_scopes s2;
	const char *why2 = NULL;
	TEST_ASSERT(tk_scopes_parse(buf, o, &s2, &why2) == -1 && why2 != NULL &&
	            strstr(why2, "string is too long") != NULL);

	/* A 1 MB scope string is refused (and not scanned). */
	char *huge = malloc(1 << 20);
	TEST_ASSERT(huge != NULL);
	if (huge != NULL) {
		memset(huge, 'a', 1 << 20);
		TEST_ASSERT(refused_len(huge, 1 << 20));
		free(huge);
	}

	/* NULL pointers. */
	const char *why = NULL;
	TEST_ASSERT(tk_scopes_parse("read", 4, NULL, &why) == -1 && why != NULL);
	tk_scopes s;
	why = NULL;
	TEST_ASSERT(tk_scopes_parse(NULL, 4, &s, &why) == -1 && why != NULL && s.n == 0);
	TEST_ASSERT(tk_scopes_parse(" x", 2, &s, NULL) == -1 && s.n == 0);
}

static void test_add(void)
{
	tk_scopes s = { 0 };
	const char *why = "unset";
	TEST_ASSERT(tk_scopes_add(&s, "read", 4, &why) == 0 && why == NULL);
	TEST_ASSERT(tk_scopes_add(&s, "write:all", 5, &why) == 0); /* only 5 bytes: "write" */
	TEST_ASSERT(s.n == 2);
	TEST_ASSERT_STR(s.v[1], "write");
	why = NULL;
	TEST_ASSERT(tk_scopes_add(&s, "read", 4, &why) == -1 && why != NULL);
	why = NULL;
	TEST_ASSERT(tk_scopes_add(&s, "", 0, &why) == -1 && why != NULL);
	TEST_ASSERT(tk_scopes_add(&s, "a b", 3, &why) == -1);
	TEST_ASSERT(tk_scopes_add(&s, "a\"", 2, &why) == -1);
	TEST_ASSERT(tk_scopes_add(&s, NULL, 3, &why) == -1);
	TEST_ASSERT(tk_scopes_add(NULL, "x", 1, &why) == -1);
	char big[TK_SCOPE_TOKEN_MAX + 1];
	memset(big, 'b', sizeof(big));
	TEST_ASSERT(tk_scopes_add(&s, big, sizeof(big), &why) == -1);
	TEST_ASSERT(s.n == 2);

	/* Overflow at 33 tokens. */
	char name[16];
	for (int i = 2; i < TK_SCOPES_MAX; i++) {
		int n = sprintf(name, "t%d", i);
		TEST_ASSERT(tk_scopes_add(&s, name, (size_t)n, NULL) == 0);
	}
	TEST_ASSERT(s.n == TK_SCOPES_MAX);
	why = NULL;
	TEST_ASSERT(tk_scopes_add(&s, "one-more", 8, &why) == -1 && why != NULL);
	TEST_ASSERT(s.n == TK_SCOPES_MAX);
	tk_scopes_free(&s);

	/* A set never grows past what a 1024-byte scope string can carry. */
	memset(big, 'a', sizeof(big));
	int added = 0;
	for (int i = 0; i < TK_SCOPES_MAX; i++) {
		big[0] = (char)('A' + i);
		if (tk_scopes_add(&s, big, TK_SCOPE_TOKEN_MAX, NULL) == 0)
			added++;
	}
	TEST_ASSERT(added == 7); /* 8 * 128 + 7 > 1024 */
	char *j = tk_scopes_join(&s);
	TEST_ASSERT(j != NULL && strlen(j) <= TK_SCOPE_STRING_MAX);
	tk_scopes back;
	TEST_ASSERT(j != NULL && tk_scopes_parse(j, strlen(j), &back, NULL) == 0 && back.n == 7);
	tk_scopes_free(&back);
	free(j);
	tk_scopes_free(&s);
}

static void test_set_ops(void)
{
	tk_scopes a, b, e = { 0 };
	TEST_ASSERT(parses("read write", &a));
	TEST_ASSERT(parses("admin write read", &b));

	TEST_ASSERT(tk_scopes_contains(&a, "read"));
	TEST_ASSERT(tk_scopes_contains(&a, "write"));
	TEST_ASSERT(!tk_scopes_contains(&a, "admin"));
	TEST_ASSERT(!tk_scopes_contains(&a, "rea"));
	TEST_ASSERT(!tk_scopes_contains(&a, "reads"));
	TEST_ASSERT(!tk_scopes_contains(&a, "READ"));
	TEST_ASSERT(!tk_scopes_contains(&a, ""));
	TEST_ASSERT(!tk_scopes_contains(&a, NULL));
	TEST_ASSERT(!tk_scopes_contains(NULL, "read"));
	TEST_ASSERT(!tk_scopes_contains(&e, "read"));

	TEST_ASSERT(tk_scopes_subset(&a, &b));
	TEST_ASSERT(!tk_scopes_subset(&b, &a));
	TEST_ASSERT(tk_scopes_subset(&a, &a));
	TEST_ASSERT(tk_scopes_subset(&e, &a));
	TEST_ASSERT(tk_scopes_subset(&e, &e));
	TEST_ASSERT(!tk_scopes_subset(&a, &e));

	char *j = tk_scopes_join(&b);
	TEST_ASSERT_STR(j, "admin write read");
	free(j);
	j = tk_scopes_join(&e);
	TEST_ASSERT_STR(j, "");
	free(j);

	/* parse(join(x)) == x */
	tk_scopes c;
	j = tk_scopes_join(&a);
	TEST_ASSERT(j != NULL && parses(j, &c));
	TEST_ASSERT(c.n == a.n && tk_scopes_subset(&c, &a) && tk_scopes_subset(&a, &c));
	tk_scopes_free(&c);
	free(j);

	tk_scopes_free(&a);
	tk_scopes_free(&b);
	tk_scopes_free(&e);
	tk_scopes_free(&a); /* freeing twice is harmless */
	tk_scopes_free(NULL);
}

int main(void)
{
	TEST_RUN(test_token_valid);
	TEST_RUN(test_parse_valid);
	TEST_RUN(test_parse_refused);
	TEST_RUN(test_add);
	TEST_RUN(test_set_ops);
	TEST_DONE();
}
