/*
 * common/clock: system and manual clocks, and AWS time formats. Used by the
 * signer (x-amz-date), the credentials chain (expiry) and the transport (skew).
 */
#include "common/clock.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static int64_t sys_now_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sys_mono_ms(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const struct clock system_clock = {sys_now_ms, sys_mono_ms, NULL};

const struct clock *clock_system(void)
{
    return &system_clock;
}

int64_t clock_now_ms(const struct clock *c)
{
    if (!c)
        c = &system_clock;
    return c->now_ms(c->ctx);
}

int64_t clock_mono_ms(const struct clock *c)
{
    if (!c)
        c = &system_clock;
    return c->mono_ms(c->ctx);
}

static int64_t manual_ms(void *ctx)
{
    return *(volatile int64_t *)ctx;
}

void clock_manual_init(struct clock *c, volatile int64_t *ms_ptr)
{
    c->now_ms = manual_ms;
    c->mono_ms = manual_ms;
    c->ctx = (void *)ms_ptr;
}

static void to_tm(int64_t epoch_s, struct tm *tm)
{
    time_t t = (time_t)epoch_s;
    gmtime_r(&t, tm);
}

void clock_format_amz_date(int64_t epoch_s, char out[17])
{
    struct tm tm;
    to_tm(epoch_s, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

void clock_format_iso8601_ms(int64_t epoch_ms, char out[25])
{
    int64_t s = epoch_ms >= 0 ? epoch_ms / 1000 : (epoch_ms - 999) / 1000;
    int ms = (int)(epoch_ms - s * 1000);
    struct tm tm;
    to_tm(s, &tm);
    char head[20];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 25, "%.19s.%03dZ", head, ms);
}

/* Reads exactly n digits; returns -1 when they are not all digits. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    return v;
}

static int fields_to_epoch(int y, int mo, int d, int h, int mi, int s, int64_t *epoch_s)
{
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *epoch_s = (int64_t)timegm(&tm);
    return 0;
}

int clock_parse_iso8601(const char *s, int64_t *epoch_ms)
{
    if (!s)
        return -1;
    const char *p = s;
    int basic = strlen(s) >= 9 && s[8] == 'T';
    int y = digits(&p, 4);
    if (!basic && *p++ != '-')
        return -1;
    int mo = digits(&p, 2);
    if (!basic && *p++ != '-')
        return -1;
    int d = digits(&p, 2);
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    int h = digits(&p, 2);
    if (!basic && *p++ != ':')
        return -1;
    int mi = digits(&p, 2);
    if (!basic && *p++ != ':')
        return -1;
    int sec = digits(&p, 2);
    if (y < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0)
        return -1;
    int ms = 0;
    if (*p == '.') {
        p++;
        int scale = 100, any = 0;
        while (isdigit((unsigned char)*p)) {
            ms += (*p - '0') * scale;
            scale /= 10;
            p++;
            any = 1;
        }
        if (!any)
            return -1;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = digits(&p, 2);
        if (*p == ':')
            p++;
        int om = digits(&p, 2);
        if (oh < 0 || om < 0 || oh > 23 || om > 59)
            return -1;
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return -1;
    }
    if (*p != '\0')
        return -1;
    int64_t epoch_s;
    if (fields_to_epoch(y, mo, d, h, mi, sec, &epoch_s) != 0)
        return -1;
    *epoch_ms = (epoch_s - offset_s) * 1000 + ms;
    return 0;
}

int clock_parse_http_date(const char *s, int64_t *epoch_s)
{
    static const char *months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char wday[4], mon[4], zone[4];
    int d, y, h, mi, sec;
    if (!s || sscanf(s, "%3s, %d %3s %d %d:%d:%d %3s", wday, &d, mon, &y, &h, &mi, &sec, zone) != 8)
        return -1;
    if (strcmp(zone, "GMT") != 0 && strcmp(zone, "UTC") != 0)
        return -1;
    for (int m = 0; m < 12; m++)
        if (strcasecmp(mon, months[m]) == 0)
            return fields_to_epoch(y, m + 1, d, h, mi, sec, epoch_s);
    return -1;
}
