/*
 * monitor/scoreline: the score-line parser of `assay backtest` (see
 * scoreline.h). Kept in monitor/ so that the fuzz target and the unit tests
 * reach it, and the service can read the same format.
 */
#include "monitor/scoreline.h"

#include "common/alloc.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Parses [p, end) as a whole decimal number: optional sign, digits with an
 * optional fraction (at least one digit in all), optional exponent. Returns 0
 * and *out, or -1. Exact: a mantissa below 2^53 scaled by an exact power of
 * ten is one correctly rounded operation; anything else goes to strtod.
 */
static int parse_number(const char *p, const char *end, double *out)
{
    const char *s = p;
    int neg = 0;
    if (s < end && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    uint64_t mant = 0;
    int sig = 0, dropped = 0, any = 0, e10 = 0;
    while (s < end && is_digit(*s)) {
        any = 1;
        if (sig < 19) {
            mant = mant * 10 + (uint64_t)(*s - '0');
            sig += mant != 0;
        } else {
            dropped = 1;
            e10++;
        }
        s++;
    }
    if (s < end && *s == '.') {
        s++;
        while (s < end && is_digit(*s)) {
            any = 1;
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*s - '0');
                sig += mant != 0;
                e10--;
            } else {
                dropped = 1;
            }
            s++;
        }
    }
    if (!any)
        return -1;
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int eneg = 0, ev = 0, edigits = 0;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        while (s < end && is_digit(*s)) {
            if (ev < 100000)
                ev = ev * 10 + (*s - '0');
            edigits++;
            s++;
        }
        if (!edigits)
            return -1;
        e10 += eneg ? -ev : ev;
    }
    if (s != end)
        return -1;
    double v;
    if (!dropped && mant < (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        v = e10 < 0 ? (double)mant / pow10_exact[-e10] : (double)mant * pow10_exact[e10];
    } else {
        char small[128];
        size_t n = (size_t)(end - p);
        char *copy = n < sizeof small ? small : xmalloc(n + 1);
        memcpy(copy, p, n);
        copy[n] = 0;
        v = strtod(copy, NULL);
        if (copy != small)
            free(copy);
        if (!isfinite(v))
            return -1;
        *out = v;
        return 0;
    }
    *out = neg ? -v : v;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* {"score": <number>} with optional blanks and nothing else: the JSON fast path. */
static int parse_score_object_fast(const char *p, const char *end, double *out)
{
    static const char key[] = "\"score\"";
    const char *s = p + 1; /* after '{' */
    while (s < end && is_space(*s))
        s++;
    if ((size_t)(end - s) < sizeof key - 1 || memcmp(s, key, sizeof key - 1) != 0)
        return -1;
    s += sizeof key - 1;
    while (s < end && is_space(*s))
        s++;
    if (s == end || *s != ':')
        return -1;
    s++;
    while (s < end && is_space(*s))
        s++;
    const char *e = end - 1; /* the closing brace */
    while (e > s && is_space(*e))
        e--;
    if (e <= s || *e != '}')
        return -1;
    const char *num_end = e;
    while (num_end > s && is_space(num_end[-1]))
        num_end--;
    /* JSON numbers have no '+' and no leading '.'; leave such lines to jansson's verdict. */
    if (*s == '+' || *s == '.')
        return -1;
    return parse_number(s, num_end, out);
}

int scoreline_parse(const char *line, size_t len, double *score, char *why, size_t why_n)
{
    const char *p = line, *end = line + len;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (p == end) {
        snprintf(why, why_n, "empty line");
        return -1;
    }
    double v;
    if (*p == '{') {
        if (parse_score_object_fast(p, end, &v) != 0) {
            json_error_t e;
            json_t *j = json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES, &e);
            if (!j) {
                snprintf(why, why_n, "not valid JSON (column %d: %.80s)", e.column, e.text);
                return -1;
            }
            const json_t *s = json_object_get(j, "score");
            if (!json_is_object(j) || !json_is_number(s)) {
                json_decref(j);
                snprintf(why, why_n, "a JSON line needs a numeric \"score\"");
                return -1;
            }
            v = json_number_value(s);
            json_decref(j);
        }
    } else if (parse_number(p, end, &v) != 0) {
        int n = (int)(end - p > 40 ? 40 : end - p);
        snprintf(why, why_n, "'%.*s%s' is not a number in [0, 1] or {\"score\": x}", n, p,
                 end - p > 40 ? "..." : "");
        return -1;
    }
    if (!(v >= 0 && v <= 1)) {
        snprintf(why, why_n, "score %.17g is outside [0, 1]", v);
        return -1;
    }
    *score = v;
    return 0;
}
