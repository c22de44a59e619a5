/*
 * timefmt.c - durations and RFC 3339 timestamps, without locale or libc
 * time conversion: calendar arithmetic is done here on the proleptic
 * Gregorian calendar with 64-bit integers.
 */
#include "tokend/timefmt.h"

#include <stdio.h>
#include <string.h>

/* 100 years of 365.25 days. */
#define DURATION_MAX ((int64_t)36525 * 86400)

static void set_why(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ------------------------------------------------------------------------ */
/* Durations                                                                */

static const struct {
	char unit;
	int64_t seconds;
} UNITS[] = {
	{ 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};
#define NUNITS (sizeof(UNITS) / sizeof(UNITS[0]))

int tk_duration_parse(const char *s, int64_t *seconds, const char **why)
{
	int64_t total = 0;
	size_t next_unit = 0; /* index into UNITS of the largest unit still allowed */
	size_t i = 0;

	if (seconds != NULL)
		*seconds = 0;
	if (s == NULL || s[0] == '\0') {
		set_why(why, "duration is empty");
		return -1;
	}
	while (s[i] != '\0') {
		if (!is_digit(s[i])) {
			set_why(why, "duration must be digits followed by a unit (w, d, h, m, s)");
			return -1;
		}
		/* Digits, overflow-checked; anything beyond DURATION_MAX is refused
		 * below, so capping the accumulator there keeps it far from overflow. */
		size_t group_start = i;
		int64_t v = 0;
		int big = 0;
		while (is_digit(s[i])) {
			if (!big) {
				v = v * 10 + (s[i] - '0');
				if (v > DURATION_MAX)
					big = 1;
			}
			i++;
		}
		char u = s[i];
		int64_t mult;
		if (u == '\0') {
			if (group_start == 0) {
				mult = 1; /* a bare integer: seconds */
			} else {
				set_why(why, "duration has a number without a unit");
				return -1;
			}
		} else {
			size_t k = 0;
			while (k < NUNITS && UNITS[k].unit != u)
				k++;
			if (k == NUNITS) {
				set_why(why, "duration has an unknown unit (use w, d, h, m, s)");
				return -1;
			}
			if (k < next_unit) {
				set_why(why, "duration units must appear once each, largest first");
				return -1;
			}
			mult = UNITS[k].seconds;
			next_unit = k + 1;
			i++;
		}
		if (big || v > (DURATION_MAX - total) / mult) {
			set_why(why, "duration is longer than 100 years");
			return -1;
		}
		total += v * mult;
	}
	if (total < 1) {
		set_why(why, "duration must be at least 1 second");
		return -1;
	}
	if (seconds != NULL)
		*seconds = total;
	set_why(why, NULL);
	return 0;
}

/* Greedy decomposition of `v` over UNITS[first..]; returns the length written. */
static size_t format_units(uint64_t v, size_t first, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t k = first; k < NUNITS && v > 0; k++) {
		uint64_t u = (uint64_t)UNITS[k].seconds;
		uint64_t q = v / u;
		if (q == 0)
			continue;
		v -= q * u;
		int w = snprintf(out + o, cap - o, "%llu%c", (unsigned long long)q, UNITS[k].unit);
		if (w < 0 || (size_t)w >= cap - o)
			break;
		o += (size_t)w;
	}
	return o;
}

/*
 * The shorter of the greedy forms over {d,h,m,s} and over {w,d,h,m,s};
 * days win a tie. So 5400 -> "1h30m", 30 days -> "30d", 14 days -> "2w",
 * 7 days -> "7d". 0 -> "0s"; negative values get a leading '-'.
 */
void tk_duration_format(int64_t seconds, char out[32])
{
	char days[32], weeks[32];
	size_t o = 0;
	uint64_t mag;

	if (seconds == 0) {
		memcpy(out, "0s", 3);
		return;
	}
	if (seconds < 0) {
		out[o++] = '-';
		mag = (uint64_t)0 - (uint64_t)seconds;
	} else {
		mag = (uint64_t)seconds;
	}
	size_t dl = format_units(mag, 1, days, sizeof(days));
	size_t wl = format_units(mag, 0, weeks, sizeof(weeks));
	const char *best = wl < dl ? weeks : days;
	size_t bl = wl < dl ? wl : dl;
	memcpy(out + o, best, bl);
	out[o + bl] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Calendar                                                                 */

static int is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int DAYS[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	return m == 2 && is_leap(y) ? 29 : DAYS[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

/* Leap years in [1, y] (y may be <= 0: then counts negatively, consistently). */
static int64_t leaps_through(int64_t y)
{
	return floor_div(y, 4) - floor_div(y, 100) + floor_div(y, 400);
}

/* Days since 1970-01-01 of the civil date y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	static const int BEFORE[12] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334 };
	int64_t days = (y - 1970) * 365 + (leaps_through(y - 1) - leaps_through(1969));
	days += BEFORE[m - 1] + (m > 2 && is_leap(y) ? 1 : 0);
	return days + (d - 1);
}

/* Inverse of days_from_civil. Works in 400-year cycles of 146097 days,
 * counted from 0000-03-01 so that the leap day ends each year. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	/* 0000-03-01 is 719468 days before 1970-01-01. */
	int64_t z = days + 719468;
	int64_t cycle = floor_div(z, 146097);
	int64_t doc = z - cycle * 146097;                            /* [0, 146096] */
	int64_t yoc = (doc - doc / 1460 + doc / 36524 - doc / 146096) / 365; /* [0, 399] */
	int64_t doy = doc - (365 * yoc + yoc / 4 - yoc / 100);       /* [0, 365] */
	int64_t mp = (5 * doy + 2) / 153;                            /* month from March, [0, 11] */
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = cycle * 400 + yoc + (*m <= 2 ? 1 : 0);
}

/* ------------------------------------------------------------------------ */
/* RFC 3339                                                                 */

/* Exactly n digits at s; -1 if any is not a digit. */
static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int tk_rfc3339_parse(const char *s, int64_t *epoch, const char **why)
{
	if (epoch != NULL)
		*epoch = 0;
	if (s == NULL) {
		set_why(why, "timestamp is missing");
		return -1;
	}
	/* "YYYY-MM-DDTHH:MM:SS" is 19 characters; check the shape character by
	 * character so that we never read past a NUL. */
	static const char SHAPE[] = "dddd-dd-ddTdd:dd:dd";
	for (size_t i = 0; i < sizeof(SHAPE) - 1; i++) {
		char c = s[i];
		int ok = SHAPE[i] == 'd' ? is_digit(c)
		       : SHAPE[i] == 'T' ? (c == 'T' || c == 't')
		                         : c == SHAPE[i];
		if (!ok) {
			set_why(why, "timestamp is not RFC 3339 (YYYY-MM-DDTHH:MM:SSZ)");
			return -1;
		}
	}
	int year = digits(s, 4), mon = digits(s + 5, 2), day = digits(s + 8, 2);
	int hour = digits(s + 11, 2), min = digits(s + 14, 2), sec = digits(s + 17, 2);
	if (mon < 1 || mon > 12) {
		set_why(why, "timestamp month is out of range");
		return -1;
	}
	if (day < 1 || day > days_in_month(year, mon)) {
		set_why(why, "timestamp day is out of range for the month");
		return -1;
	}
	if (hour > 23 || min > 59 || sec > 60) {
		set_why(why, "timestamp time of day is out of range");
		return -1;
	}

	const char *p = s + 19;
	if (*p == '.') {
		p++;
		if (!is_digit(*p)) {
			set_why(why, "timestamp fraction has no digits");
			return -1;
		}
		while (is_digit(*p))
			p++; /* truncated: we work in whole seconds */
	}

	int64_t offset = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p == '-' ? -1 : 1;
		p++;
		int oh = digits(p, 2);
		if (oh < 0 || p[2] != ':') {
			set_why(why, "timestamp offset is not +HH:MM or -HH:MM");
			return -1;
		}
		int om = digits(p + 3, 2);
		if (om < 0) {
			set_why(why, "timestamp offset is not +HH:MM or -HH:MM");
			return -1;
		}
		if (oh > 23 || om > 59) {
			set_why(why, "timestamp offset is out of range");
			return -1;
		}
		offset = sign * ((int64_t)oh * 3600 + om * 60);
		p += 5;
	} else {
		set_why(why, "timestamp has no time zone (Z or +HH:MM)");
		return -1;
	}
	if (*p != '\0') {
		set_why(why, "timestamp has trailing characters");
		return -1;
	}

	int64_t t = days_from_civil(year, mon, day) * 86400 + (int64_t)hour * 3600 + min * 60 + sec;
	if (epoch != NULL)
		*epoch = t - offset; /* local = UTC + offset */
	set_why(why, NULL);
	return 0;
}

void tk_rfc3339_format(int64_t epoch, char out[32])
{
	int64_t days = epoch / 86400;
	int64_t rem = epoch % 86400;
	int64_t y;
	int m, d;

	if (rem < 0) { /* floor, without overflowing at INT64_MIN */
		rem += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	snprintf(out, 32, "%04lld-%02d-%02dT%02d:%02d:%02dZ", (long long)y, m, d,
	         (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}
