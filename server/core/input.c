/*
 * input.c - the strict parse of an admin API request body (see input.h).
 */
#include "input.h"

int tk_input_json_body(const char *data, size_t len, json_t **out, const char **why)
{
	json_error_t jerr;
	json_t *body = NULL;
	int depth = 0, maxdepth = 0, instr = 0;

	*out = NULL;
	*why = NULL;
	if (data == NULL)
		data = "";
	/* Depth: jansson allows 2048; we refuse more than TK_ADMIN_BODY_DEPTH
	 * before parsing. A backslash in a string skips the next byte. */
	for (size_t i = 0; i < len; i++) {
		char ch = data[i];
		if (instr) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				instr = 0;
		} else if (ch == '"') {
			instr = 1;
		} else if (ch == '{' || ch == '[') {
			if (++depth > maxdepth)
				maxdepth = depth;
		} else if (ch == '}' || ch == ']') {
			depth--;
		}
	}
	if (maxdepth > TK_ADMIN_BODY_DEPTH) {
		*why = "the body is nested too deeply";
		return -1;
	}
	body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (body == NULL || !json_is_object(body)) {
		json_decref(body);
		*why = "the body must be a JSON object (UTF-8, no duplicate members)";
		return -1;
	}
	*out = body;
	return 0;
}

/* 1 if code point `cp` is one tk_input_text_unsafe refuses. */
static int invisible(unsigned long cp)
{
	static const struct { unsigned long lo, hi; } bad[] = {
		{ 0x00, 0x1f }, { 0x7f, 0x9f }, { 0xad, 0xad }, { 0x61c, 0x61c }, { 0x180e, 0x180e },
		{ 0x200b, 0x200f }, { 0x2028, 0x202e }, { 0x2060, 0x2064 }, { 0x2066, 0x206f },
		{ 0xfeff, 0xfeff }, { 0xfff9, 0xfffb }, { 0xe0000, 0xe007f },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cp >= bad[i].lo && cp <= bad[i].hi)
			return 1;
	return 0;
}

const char *tk_input_text_unsafe(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned long cp;
		size_t n;
		if (p[i] < 0x80) {
			cp = p[i];
			n = 1;
		} else if ((p[i] & 0xe0) == 0xc0) {
			cp = p[i] & 0x1f;
			n = 2;
		} else if ((p[i] & 0xf0) == 0xe0) {
			cp = p[i] & 0x0f;
			n = 3;
		} else if ((p[i] & 0xf8) == 0xf0) {
			cp = p[i] & 0x07;
			n = 4;
		} else {
			return "must be valid UTF-8";
		}
		if (n > len - i)
			return "must be valid UTF-8";
		for (size_t j = 1; j < n; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return "must be valid UTF-8";
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		/* Overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return "must be valid UTF-8";
		if (invisible(cp))
			return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) ? "must not contain control characters"
			       : "must not contain invisible, bidi or zero-width characters";
		i += n;
	}
	return NULL;
}
