/*
 * adminbody.c - the strict parse of an admin API request body (see adminbody.h).
 */
#include "adminbody.h"

int tk_admin_body_parse(const char *data, size_t len, json_t **out, const char **why)
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
