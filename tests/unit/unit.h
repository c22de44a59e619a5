/* unit.h - a tiny test harness: TEST_ASSERT records failures, main returns nonzero. */
#ifndef TOKEND_UNIT_H
#define TOKEND_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_failures;
static int unit_checks;

#define TEST_ASSERT(cond) do { \
	unit_checks++; \
	if (!(cond)) { \
		unit_failures++; \
		fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #cond); \
	} \
} while (0)

#define TEST_ASSERT_STR(a, b) do { \
	const char *a_ = (a), *b_ = (b); \
	unit_checks++; \
	if (!a_ || !b_ || strcmp(a_, b_) != 0) { \
		unit_failures++; \
		fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, \
		        a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} \
} while (0)

#define TEST_RUN(fn) do { fprintf(stderr, "-- %s\n", #fn); fn(); } while (0)

#define TEST_DONE() do { \
	fprintf(stderr, "%d checks, %d failed\n", unit_checks, unit_failures); \
	return unit_failures ? 1 : 0; \
} while (0)

#endif
