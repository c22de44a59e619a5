/*
 * fuzz_form.c - tk_form_parse (urlencoded bodies, SECURITY A1), with and
 * without repeatable names, checked against a small reference model of the
 * rules in form.h: same accept/refuse decision, same decoded pairs.
 */
#include "fuzz.h"

#include <tokend/form.h>

static const char *const REPEATABLE[] = { "resource", "audience", NULL };

static int ref_repeatable(const char *const *rep, const char *name)
{
	for (; rep && *rep; rep++)
		if (strcmp(*rep, name) == 0)
			return 1;
	return 0;
}

/* The reference model: 0 and `f` filled, or -1. */
static int ref_parse(const char *b, size_t len, const char *const *rep, tk_form *f)
{
	static char name[TK_FORM_NAME_MAX + 1], value[TK_FORM_VALUE_MAX + 1];
	memset(f, 0, sizeof(*f));
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)b[i] < 0x20 || (unsigned char)b[i] == 0x7f)
			return -1;
	size_t seg = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && b[i] != '&')
			continue;
		const char *s = b + seg;
		size_t slen = i - seg;
		seg = i + 1;
		if (slen == 0)
			continue;
		if (f->n == TK_FORM_MAX_PARAMS)
			goto refuse;
		const char *eq = memchr(s, '=', slen);
		size_t nlen = eq ? (size_t)(eq - s) : slen;
		if (nlen == 0 || fuzz_url_decode(s, nlen, name, TK_FORM_NAME_MAX) < 0)
			goto refuse;
		if (fuzz_url_decode(eq ? eq + 1 : s + slen, eq ? slen - nlen - 1 : 0, value, TK_FORM_VALUE_MAX) < 0)
			goto refuse;
		for (size_t j = 0; j < f->n; j++)
			if (strcmp(f->name[j], name) == 0 && !ref_repeatable(rep, name))
				goto refuse;
		f->name[f->n] = strdup(name);
		f->value[f->n] = strdup(value);
		if (!f->name[f->n] || !f->value[f->n])
			abort();
		f->n++;
	}
	return 0;
refuse:
	for (size_t j = 0; j < f->n; j++) {
		free(f->name[j]);
		free(f->value[j]);
	}
	memset(f, 0, sizeof(*f));
	return -1;
}

static void one(const char *body, size_t len, const char *const *rep)
{
	tk_form f, ref;
	const char *why = (const char *)1;
	int rc = tk_form_parse(body, len, rep, &f, &why);
	int rrc = ref_parse(body, len, rep, &ref);

	FUZZ_CHECK(rc == 0 || rc == -1);
	FUZZ_CHECK(rc == rrc);
	if (rc != 0) {
		FUZZ_CHECK(why != NULL && why[0] != '\0' && fuzz_oauth_text(why));
		FUZZ_CHECK(f.n == 0);
		for (size_t i = 0; i < TK_FORM_MAX_PARAMS; i++)
			FUZZ_CHECK(f.name[i] == NULL && f.value[i] == NULL);
		return;
	}
	FUZZ_CHECK(why == NULL);
	FUZZ_CHECK(f.n == ref.n && f.n <= TK_FORM_MAX_PARAMS);
	for (size_t i = 0; i < f.n; i++) {
		FUZZ_CHECK(strcmp(f.name[i], ref.name[i]) == 0);
		FUZZ_CHECK(strcmp(f.value[i], ref.value[i]) == 0);
		FUZZ_CHECK(f.name[i][0] != '\0' && strlen(f.name[i]) <= TK_FORM_NAME_MAX);
		FUZZ_CHECK(strlen(f.value[i]) <= TK_FORM_VALUE_MAX);
		FUZZ_CHECK(fuzz_no_ctl(f.name[i]) && fuzz_no_ctl(f.value[i]));
		/* The accessors agree with the pairs. */
		size_t nth = 0;
		for (size_t j = 0; j < i; j++)
			nth += strcmp(f.name[j], f.name[i]) == 0;
		FUZZ_CHECK(tk_form_get_nth(&f, f.name[i], nth) == f.value[i]);
		FUZZ_CHECK(tk_form_count_name(&f, f.name[i]) >= nth + 1);
		FUZZ_CHECK(tk_form_get(&f, f.name[i]) != NULL);
		const char *ne = tk_form_get_nonempty(&f, f.name[i]);
		FUZZ_CHECK(ne == NULL || ne[0] != '\0');
		if (nth > 0)
			FUZZ_CHECK(ref_repeatable(rep, f.name[i]));
	}
	tk_form_free(&f);
	tk_form_free(&ref);
	FUZZ_CHECK(f.n == 0 && ref.n == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan sees any read past `size`. */
	char *body = malloc(size ? size : 1);
	if (!body)
		abort();
	if (size)
		memcpy(body, data, size);
	one(body, size, NULL);
	one(body, size, REPEATABLE);
	free(body);
	return 0;
}
