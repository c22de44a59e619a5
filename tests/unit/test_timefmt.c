/* test_timefmt.c - durations and RFC 3339 timestamps. */
#include "unit.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "tokend/timefmt.h"

#define DAY 86400LL
#define YEARS100 (36525LL * DAY)

static int dur_is(const char *s, int64_t want)
{
	int64_t got = -1;
	const char *why = "unset";
	if (tk_duration_parse(s, &got, &why) != 0) {
		fprintf(stderr, "   unexpected refusal of \"%s\": %s\n", s, why ? why : "?");
		return 0;
	}
	return got == want && why == NULL;
}

static int dur_refused(const char *s)
{
	int64_t got = 12345;
	const char *why = NULL;
	int rc = tk_duration_parse(s, &got, &why);
	return rc == -1 && why != NULL && why[0] != '\0' && got == 0;
}

static void test_duration_parse(void)
{
	TEST_ASSERT(dur_is("30d", 30 * DAY));
	TEST_ASSERT(dur_is("10m", 600));
	TEST_ASSERT(dur_is("1h30m", 5400));
	TEST_ASSERT(dur_is("45s", 45));
	TEST_ASSERT(dur_is("1s", 1));
	TEST_ASSERT(dur_is("1w", 7 * DAY));
	TEST_ASSERT(dur_is("1w2d3h4m5s", 7 * DAY + 2 * DAY + 3 * 3600 + 4 * 60 + 5));
	TEST_ASSERT(dur_is("2d5s", 2 * DAY + 5));
	TEST_ASSERT(dur_is("90m", 5400));      /* no carrying rule: 90m is fine */
	TEST_ASSERT(dur_is("0h1s", 1));        /* a zero group is allowed if the total is >= 1 */
	TEST_ASSERT(dur_is("007m", 420));
	/* keyfmt.h contract: a bare positive integer means seconds. */
	TEST_ASSERT(dur_is("10", 10));
	TEST_ASSERT(dur_is("1", 1));
	/* The 100-year ceiling (100 * 365.25 days), exactly. */
	TEST_ASSERT(dur_is("36525d", YEARS100));
	TEST_ASSERT(dur_is("3155760000", YEARS100));
	TEST_ASSERT(dur_is("5217w6d", 5217 * 7 * DAY + 6 * DAY));
	TEST_ASSERT(dur_is("36524d23h59m60s", YEARS100));

	TEST_ASSERT(dur_refused(NULL));
	TEST_ASSERT(dur_refused(""));
	TEST_ASSERT(dur_refused("-5m"));
	TEST_ASSERT(dur_refused("+5m"));
	TEST_ASSERT(dur_refused("-5"));
	TEST_ASSERT(dur_refused("5x"));
	TEST_ASSERT(dur_refused("5y"));
	TEST_ASSERT(dur_refused("5M"));  /* units are lower case */
	TEST_ASSERT(dur_refused("1H"));
	TEST_ASSERT(dur_refused("1m1h")); /* wrong order */
	TEST_ASSERT(dur_refused("1s1w"));
	TEST_ASSERT(dur_refused("1h1h")); /* repeated unit */
	TEST_ASSERT(dur_refused("1h2h"));
	TEST_ASSERT(dur_refused("0s"));
	TEST_ASSERT(dur_refused("0"));
	TEST_ASSERT(dur_refused("0d0h"));
	TEST_ASSERT(dur_refused("99999999999999999999d"));
	TEST_ASSERT(dur_refused("99999999999999999999"));
	TEST_ASSERT(dur_refused("9223372036854775807s"));
	TEST_ASSERT(dur_refused("9223372036854775808"));
	TEST_ASSERT(dur_refused("30500568904944w"));  /* * 604800 wraps to 579584 mod 2^64 */
	TEST_ASSERT(dur_refused("213503982334602d")); /* * 86400 wraps to 61184 mod 2^64 */
	TEST_ASSERT(dur_refused("36525d1s"));              /* just over 100 years */
	TEST_ASSERT(dur_refused("3155760001"));
	TEST_ASSERT(dur_refused("5218w"));
	TEST_ASSERT(dur_refused("36526d"));
	TEST_ASSERT(dur_refused("1h 30m"));
	TEST_ASSERT(dur_refused(" 1h"));
	TEST_ASSERT(dur_refused("1h "));
	TEST_ASSERT(dur_refused("1h30"));  /* trailing number without unit */
	TEST_ASSERT(dur_refused("1.5h"));
	TEST_ASSERT(dur_refused("h"));
	TEST_ASSERT(dur_refused("1hh"));
	TEST_ASSERT(dur_refused("5mm"));
	TEST_ASSERT(dur_refused("d5"));
	TEST_ASSERT(dur_refused("1h\n"));
	TEST_ASSERT(dur_refused("\xef\xbc\x91h")); /* fullwidth digit one */

	/* why and seconds may be NULL. */
	TEST_ASSERT(tk_duration_parse("1h", NULL, NULL) == 0);
	TEST_ASSERT(tk_duration_parse("1x", NULL, NULL) == -1);
}

static int fmt_is(int64_t v, const char *want)
{
	char out[32];
	memset(out, 'x', sizeof(out));
	tk_duration_format(v, out);
	if (strcmp(out, want) != 0) {
		fprintf(stderr, "   format(%lld) = \"%s\", want \"%s\"\n", (long long)v, out, want);
		return 0;
	}
	return 1;
}

static void test_duration_format(void)
{
	TEST_ASSERT(fmt_is(600, "10m"));
	TEST_ASSERT(fmt_is(5400, "1h30m"));
	TEST_ASSERT(fmt_is(30 * DAY, "30d"));
	TEST_ASSERT(fmt_is(45, "45s"));
	TEST_ASSERT(fmt_is(1, "1s"));
	TEST_ASSERT(fmt_is(3600, "1h"));
	TEST_ASSERT(fmt_is(3661, "1h1m1s"));
	TEST_ASSERT(fmt_is(DAY + 3661, "1d1h1m1s"));
	TEST_ASSERT(fmt_is(7 * DAY, "7d"));   /* tie: days win */
	TEST_ASSERT(fmt_is(14 * DAY, "2w"));  /* shorter than 14d */
	TEST_ASSERT(fmt_is(8 * DAY, "8d"));   /* shorter than 1w1d */
	TEST_ASSERT(fmt_is(14 * DAY + 1, "2w1s"));
	TEST_ASSERT(fmt_is(YEARS100, "36525d"));
	TEST_ASSERT(fmt_is(0, "0s"));
	TEST_ASSERT(fmt_is(-600, "-10m"));

	char out[32];
	tk_duration_format(INT64_MIN, out);
	TEST_ASSERT(out[0] == '-' && strlen(out) < 32);
	tk_duration_format(INT64_MAX, out);
	TEST_ASSERT(strlen(out) > 0 && strlen(out) < 32 && out[strlen(out) - 1] == 's');

	/* parse(format(x)) == x over the whole accepted range. */
	int bad = 0;
	srand(12345);
	for (int i = 0; i < 200000; i++) {
		int64_t x;
		if (i < 100000)
			x = i + 1;
		else
			x = 1 + (int64_t)(((uint64_t)rand() << 31 ^ (uint64_t)rand()) % (uint64_t)YEARS100);
		int64_t back = -1;
		tk_duration_format(x, out);
		if (tk_duration_parse(out, &back, NULL) != 0 || back != x)
			bad++;
	}
	TEST_ASSERT(bad == 0);
}

static int ts_is(const char *s, int64_t want)
{
	int64_t got = -1;
	const char *why = "unset";
	if (tk_rfc3339_parse(s, &got, &why) != 0) {
		fprintf(stderr, "   unexpected refusal of \"%s\": %s\n", s, why ? why : "?");
		return 0;
	}
	if (got != want)
		fprintf(stderr, "   \"%s\" -> %lld, want %lld\n", s, (long long)got, (long long)want);
	return got == want && why == NULL;
}

static int ts_refused(const char *s)
{
	int64_t got = 12345;
	const char *why = NULL;
	return tk_rfc3339_parse(s, &got, &why) == -1 && why != NULL && why[0] != '\0' && got == 0;
}

static void test_rfc3339_parse(void)
{
	TEST_ASSERT(ts_is("1970-01-01T00:00:00Z", 0));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05Z", 1767323045));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05.123+02:00", 1767323045 - 7200));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05-05:30", 1767323045 + 5 * 3600 + 1800));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05+00:00", 1767323045));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05-00:00", 1767323045));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05+23:59", 1767323045 - 23 * 3600 - 59 * 60));
	TEST_ASSERT(ts_is("2026-01-02t03:04:05z", 1767323045));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05.9Z", 1767323045));   /* truncated, not rounded */
	TEST_ASSERT(ts_is("2026-01-02T03:04:05.999999999999999999999Z", 1767323045));
	TEST_ASSERT(ts_is("2026-01-02T03:04:05.0-01:00", 1767323045 + 3600));
	/* Leap years. */
	TEST_ASSERT(ts_is("2024-02-29T12:00:00Z", 1709208000));
	TEST_ASSERT(ts_is("2000-02-29T00:00:00Z", 951782400));
	TEST_ASSERT(ts_refused("2023-02-29T12:00:00Z"));
	TEST_ASSERT(ts_refused("1900-02-29T00:00:00Z"));
	TEST_ASSERT(ts_refused("2024-02-30T00:00:00Z"));
	/* Edges of the four-digit range, and before the epoch. */
	TEST_ASSERT(ts_is("1969-12-31T23:59:59Z", -1));
	TEST_ASSERT(ts_is("0001-01-01T00:00:00Z", -62135596800LL));
	TEST_ASSERT(ts_is("0000-01-01T00:00:00Z", -62135596800LL - 366 * DAY));
	TEST_ASSERT(ts_is("9999-12-31T23:59:59Z", 253402300799LL));
	/* A leap second is accepted (as the next second). */
	TEST_ASSERT(ts_is("2016-12-31T23:59:60Z", 1483228800));

	TEST_ASSERT(ts_refused(NULL));
	TEST_ASSERT(ts_refused(""));
	TEST_ASSERT(ts_refused("2026"));
	TEST_ASSERT(ts_refused("2026-01-02"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05"));    /* no zone */
	TEST_ASSERT(ts_refused("2026-01-02T03:04"));
	TEST_ASSERT(ts_refused("2026-01-02 03:04:05Z"));   /* space separator */
	TEST_ASSERT(ts_refused("2026-01-02X03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-1-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("26-01-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("+2026-01-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("20260-01-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-00-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-13-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-01-00T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-01-32T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-04-31T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-01-02T24:00:00Z"));
	TEST_ASSERT(ts_refused("2026-01-02T23:60:00Z"));
	TEST_ASSERT(ts_refused("2026-01-02T23:59:61Z"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05.Z"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05."));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05,5Z"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+24:00"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+05:60"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+0530"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+05"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+5:30"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+05:3"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05ZZ"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05Z "));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05+02:00x"));
	TEST_ASSERT(ts_refused(" 2026-01-02T03:04:05Z"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05UTC"));
	TEST_ASSERT(ts_refused("2026-01-02T03:04:05\xef\xbc\xba"));

	/* Truncations of a valid string are all refused and never overread:
	 * each is an exactly sized heap copy (ASan). */
	const char *full = "2026-01-02T03:04:05.123+02:00";
	int accepted = 0;
	for (size_t n = 0; n < strlen(full); n++) {
		char *p = malloc(n + 1);
		if (p == NULL)
			continue;
		memcpy(p, full, n);
		p[n] = '\0';
		if (tk_rfc3339_parse(p, NULL, NULL) == 0)
			accepted++;
		free(p);
	}
	TEST_ASSERT(accepted == 0);
}

static void test_rfc3339_format(void)
{
	char out[32];
	tk_rfc3339_format(0, out);
	TEST_ASSERT_STR(out, "1970-01-01T00:00:00Z");
	tk_rfc3339_format(-1, out);
	TEST_ASSERT_STR(out, "1969-12-31T23:59:59Z");
	tk_rfc3339_format(1767323045, out);
	TEST_ASSERT_STR(out, "2026-01-02T03:04:05Z");
	tk_rfc3339_format(1709208000, out);
	TEST_ASSERT_STR(out, "2024-02-29T12:00:00Z");
	tk_rfc3339_format(253402300799LL, out);
	TEST_ASSERT_STR(out, "9999-12-31T23:59:59Z");
	tk_rfc3339_format(-62135596800LL - 366 * DAY, out);
	TEST_ASSERT_STR(out, "0000-01-01T00:00:00Z");

	/* Extremes do not crash or overflow the buffer. */
	tk_rfc3339_format(INT64_MAX, out);
	TEST_ASSERT(strlen(out) < 32 && out[strlen(out) - 1] == 'Z');
	tk_rfc3339_format(INT64_MIN, out);
	TEST_ASSERT(strlen(out) < 32 && out[strlen(out) - 1] == 'Z');

	/* Every day 1600..2400 at a varying time: agrees with gmtime_r and
	 * parses back to itself. */
	int bad_gm = 0, bad_rt = 0;
	int64_t from = -11676096000LL, to = 13569465600LL; /* 1600-01-01 .. 2400-01-01 */
	for (int64_t t = from; t < to; t += DAY + 3607) {
		tk_rfc3339_format(t, out);
		int64_t back = 0;
		if (tk_rfc3339_parse(out, &back, NULL) != 0 || back != t)
			bad_rt++;
		time_t tt = (time_t)t;
		struct tm tm;
		char ref[64];
		if (gmtime_r(&tt, &tm) == NULL) {
			bad_gm++;
			continue;
		}
		snprintf(ref, sizeof(ref), "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
		if (strcmp(ref, out) != 0)
			bad_gm++;
	}
	TEST_ASSERT(bad_gm == 0);
	TEST_ASSERT(bad_rt == 0);

	/* Random instants over years 0000..9999 round-trip. */
	int bad = 0;
	srand(777);
	int64_t lo = -62167219200LL, span = 253402300799LL - lo + 1;
	for (int i = 0; i < 100000; i++) {
		int64_t t = lo + (int64_t)((((uint64_t)rand() << 31) ^ (uint64_t)rand()) % (uint64_t)span);
		int64_t back = 0;
		tk_rfc3339_format(t, out);
		if (tk_rfc3339_parse(out, &back, NULL) != 0 || back != t)
			bad++;
	}
	TEST_ASSERT(bad == 0);
}

int main(void)
{
	TEST_RUN(test_duration_parse);
	TEST_RUN(test_duration_format);
	TEST_RUN(test_rfc3339_parse);
	TEST_RUN(test_rfc3339_format);
	TEST_DONE();
}
