/*
 * common/clock: wall and monotonic time through an injectable source, so that
 * tests can drive expiry, refresh and skew deterministically, plus the time
 * formats AWS speaks (ISO 8601 basic and extended, RFC 1123 HTTP dates).
 *
 * A NULL `const struct clock *` everywhere means the system clock. A clock
 * source must be thread-safe if it is shared across threads; the system one is.
 */
#ifndef ASSAY_COMMON_CLOCK_H
#define ASSAY_COMMON_CLOCK_H

#include <stdint.h>

struct clock {
    int64_t (*now_ms)(void *ctx);  /* wall time, epoch milliseconds */
    int64_t (*mono_ms)(void *ctx); /* monotonic milliseconds, arbitrary origin */
    void *ctx;
};

/* The process-wide system clock (borrowed, static). */
const struct clock *clock_system(void);
int64_t clock_now_ms(const struct clock *c);
int64_t clock_mono_ms(const struct clock *c);

/*
 * A manual clock for tests: both readings return *ms_ptr (updated by the test,
 * atomically if threads read it). Fills *c; *ms_ptr stays owned by the caller.
 */
void clock_manual_init(struct clock *c, volatile int64_t *ms_ptr);

/* "20150830T123600Z" (16 chars + NUL) from epoch seconds. */
void clock_format_amz_date(int64_t epoch_s, char out[17]);
/* "2015-08-30T12:36:00.000Z" (24 chars + NUL) from epoch milliseconds. */
void clock_format_iso8601_ms(int64_t epoch_ms, char out[25]);
/*
 * Parses ISO 8601 / RFC 3339 date-times as AWS returns them
 * ("2026-11-27T02:00:00Z", "...:00.123Z", "...+01:00", basic "20261127T020000Z").
 * Returns 0 and sets *epoch_ms, or -1 when s is not such a time.
 */
int clock_parse_iso8601(const char *s, int64_t *epoch_ms);
/* Parses an RFC 1123 HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"); 0 or -1. */
int clock_parse_http_date(const char *s, int64_t *epoch_s);

#endif
