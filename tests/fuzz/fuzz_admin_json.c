/*
 * fuzz_admin_json.c - tk_input_json_body, the strict parse of admin API
 * bodies (SECURITY A8: deep nesting, duplicate members, NUL, bad UTF-8,
 * huge numbers, many keys).
 *
 * Oracles: a refusal gives one of the two documented reasons and no value;
 * an accepted body is an object no deeper than TK_ADMIN_BODY_DEPTH whose
 * strings hold no NUL and are valid UTF-8, and which survives a round trip
 * (serialise, parse again, compare).
 */
#include "fuzz.h"

#include <jansson.h>

#include "input.h"

static const char WHY_DEEP[] = "the body is nested too deeply";
static const char WHY_OBJECT[] = "the body must be a JSON object (UTF-8, no duplicate members)";

/* Depth of nested containers, and strings checked on the way. */
static int walk(json_t *j, int depth)
{
	const char *k;
	json_t *v;
	size_t i;
	int max = depth;

	if (json_is_object(j)) {
		json_object_foreach(j, k, v) {
			FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)k, strlen(k)));
			int d = walk(v, depth + 1);
			max = d > max ? d : max;
		}
		return max > depth ? max : depth + 1;
	}
	if (json_is_array(j)) {
		json_array_foreach(j, i, v) {
			int d = walk(v, depth + 1);
			max = d > max ? d : max;
		}
		return max > depth ? max : depth + 1;
	}
	if (json_is_string(j)) {
		FUZZ_CHECK(strlen(json_string_value(j)) == json_string_length(j));
		FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)json_string_value(j),
		                           json_string_length(j)));
	}
	return depth;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	json_object_seed(0x746f6b65);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The server's limit (ADMIN_BODY_MAX, 413 above it) keeps inputs real. */
	if (size > 65536)
		return 0;
	char *body = malloc(size ? size : 1);   /* exact size, for ASan */
	if (!body)
		abort();
	if (size)
		memcpy(body, data, size);

	json_t *o = (json_t *)1, *again = NULL;
	const char *why = (const char *)1;
	int rc = tk_input_json_body(body, size, &o, &why);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc != 0) {
		FUZZ_CHECK(o == NULL);
		FUZZ_CHECK(why != NULL && (strcmp(why, WHY_DEEP) == 0 || strcmp(why, WHY_OBJECT) == 0));
		free(body);
		return 0;
	}
	FUZZ_CHECK(why == NULL && json_is_object(o));
	FUZZ_CHECK(walk(o, 0) <= TK_ADMIN_BODY_DEPTH);

	char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	FUZZ_CHECK(text != NULL);
	FUZZ_CHECK(tk_input_json_body(text, strlen(text), &again, &why) == 0);
	FUZZ_CHECK(json_equal(o, again));
	free(text);
	json_decref(again);
	json_decref(o);
	free(body);
	return 0;
}
