/*
 * timefmt.h - durations ("30d", "10m", "1h30m") and RFC 3339 timestamps.
 */
#ifndef TOKEND_TIMEFMT_H
#define TOKEND_TIMEFMT_H

#include "tokend/export.h"

#include <stddef.h>
#include <stdint.h>

/*
 * Parse a duration: one or more <digits><unit> groups with units w, d, h, m,
 * s, in decreasing order, each unit at most once ("1h30m", "30d", "45s"); a
 * bare positive integer means seconds. The total must be within
 * [1, 100 years]. Returns 0 with *seconds set, or -1 with *why set.
 */
TK_API int tk_duration_parse(const char *s, int64_t *seconds, const char **why);

/* Format seconds as the shortest duration string ("10m", "1h30m", "30d"). */
TK_API void tk_duration_format(int64_t seconds, char out[32]);

/*
 * Parse an RFC 3339 date-time ("2026-01-02T03:04:05Z",
 * "2026-01-02T03:04:05.123+02:00"; 't'/'z' accepted, fraction truncated).
 * Validates ranges (month, day per month incl. leap years, hour, minute,
 * second 0..60, offset). Returns 0 with *epoch set (UTC seconds), or -1 with *why.
 */
TK_API int tk_rfc3339_parse(const char *s, int64_t *epoch, const char **why);

/* Format UTC epoch seconds as "YYYY-MM-DDTHH:MM:SSZ". */
TK_API void tk_rfc3339_format(int64_t epoch, char out[32]);

#endif
