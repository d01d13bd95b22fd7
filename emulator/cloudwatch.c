/*
 * emulator/cloudwatch: CloudWatch's JSON 1.0 operations for the emulator.
 * Called by the router (emulator/router) for POST / with an X-Amz-Target of
 * GraniteServiceVersion20100801.*, after the signature was verified. Each
 * call: scenario faults first (an outage or throttling refuses a call before
 * its body is read, as a front end would), then gunzip, JSON, the
 * operation's shape checks, and only then the store.
 */
#include "emulator/cloudwatch.h"

#include "aws/cloudwatch.h" /* the service's limits, CLOUDWATCH_MAX_* */
#include "common/alloc.h"
#include "common/clock.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define TARGET_PREFIX "GraniteServiceVersion20100801."
#define NS_CLOUDWATCH "com.amazonaws.cloudwatch#"
#define NS_CORAL "com.amazon.coral.service#"
#define NS_AVAILABILITY "com.amazon.coral.availability#"
#define ACCOUNT_ID "123456789012"

struct point {
    int64_t ts_s; /* at the datum's storage resolution */
    double count, sum, min, max;
};

struct series {
    char *key;            /* namespace, metric and sorted dimensions, separated by \x1e/\x1f */
    struct point *points; /* sorted by ts_s */
    size_t n, cap;
};

struct cloudwatch_emu {
    struct scenario *sc;
    char *region;
    pthread_mutex_t lock;
    struct series *series;
    size_t n_series, cap_series;
    json_t *alarms; /* name -> the stored MetricAlarm */
};

struct cloudwatch_emu *cloudwatch_emu_new(struct scenario *sc, const char *region)
{
    struct cloudwatch_emu *cw = xcalloc(1, sizeof *cw);
    cw->sc = sc;
    cw->region = xstrdup(region);
    pthread_mutex_init(&cw->lock, NULL);
    cw->alarms = json_object();
    return cw;
}

void cloudwatch_emu_free(struct cloudwatch_emu *cw)
{
    if (!cw)
        return;
    for (size_t i = 0; i < cw->n_series; i++) {
        free(cw->series[i].key);
        free(cw->series[i].points);
    }
    free(cw->series);
    json_decref(cw->alarms);
    pthread_mutex_destroy(&cw->lock);
    free(cw->region);
    free(cw);
}

/* ---- errors ---- */

static const struct {
    const char *code;
    const char *type; /* __type */
    const char *fault;
} error_types[] = {
    {"InvalidParameterValue", NS_CLOUDWATCH "InvalidParameterValueException", "Sender"},
    {"InvalidParameterCombination", NS_CLOUDWATCH "InvalidParameterCombinationException", "Sender"},
    {"MissingParameter", NS_CLOUDWATCH "MissingRequiredParameterException", "Sender"},
    {"InvalidNextToken", NS_CLOUDWATCH "InvalidNextToken", "Sender"},
    {"ResourceNotFound", NS_CLOUDWATCH "ResourceNotFound", "Sender"},
    {"InternalServiceError", NS_CLOUDWATCH "InternalServiceFault", "Receiver"},
    {"Throttling", NS_AVAILABILITY "ThrottlingException", "Sender"},
    {"ServiceUnavailable", NS_AVAILABILITY "ServiceUnavailableException", "Receiver"},
};

/* An error as CloudWatch's JSON 1.0 (awsQueryCompatible) front sends it. */
static void cw_error(struct router_response *resp, int status, const char *code,
                     const char *message)
{
    char type[160], query_error[128];
    const char *fault = status >= 500 ? "Receiver" : "Sender";
    snprintf(type, sizeof type, NS_CORAL "%s", code);
    for (size_t i = 0; i < sizeof error_types / sizeof *error_types; i++) {
        if (strcmp(error_types[i].code, code) == 0) {
            snprintf(type, sizeof type, "%s", error_types[i].type);
            fault = error_types[i].fault;
        }
    }
    resp->status = status;
    snprintf(resp->error_code, sizeof resp->error_code, "%s", code);
    snprintf(query_error, sizeof query_error, "%s;%s", code, fault);
    router_response_header(resp, "x-amzn-query-error", query_error);
    router_response_header(resp, "Content-Type", "application/x-amz-json-1.0");
    json_t *body = json_pack("{s:s, s:s}", "__type", type, "message", message);
    if (!body) /* a message that is not UTF-8 */
        body = json_pack("{s:s, s:s}", "__type", type, "message", "Invalid request.");
    char *text = json_dumps(body, JSON_COMPACT);
    buf_reset(&resp->body);
    buf_append_str(&resp->body, text);
    free(text);
    json_decref(body);
}

static void router_error(void *ctx, const struct router_request *req, struct router_response *resp,
                         int status, const char *code, const char *message)
{
    (void)ctx;
    const char *target = router_request_header(req, "X-Amz-Target");
    if (target && strlen(target) < sizeof resp->operation + sizeof TARGET_PREFIX - 1)
        snprintf(resp->operation, sizeof resp->operation, "%s", target + sizeof TARGET_PREFIX - 1);
    cw_error(resp, status, code, message);
}

/*
 * A request's checks write their first complaint here. Messages quote the
 * request's own text clipped at a UTF-8 boundary, always through "%s".
 */
struct check {
    struct router_response *resp;
    bool failed;
};

__attribute__((format(printf, 4, 5))) static bool fail(struct check *c, int status,
                                                       const char *code, const char *fmt, ...)
{
    if (c->failed)
        return false;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cw_error(c->resp, status, code, msg);
    c->failed = true;
    return false;
}

/* Copies up to 100 bytes of s, not splitting a UTF-8 sequence. */
static const char *clip(const char *s, char out[112])
{
    size_t n = strlen(s);
    if (n > 100) {
        n = 100;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

static bool invalid(struct check *c, const char *param, const char *value)
{
    char v[112];
    return fail(c, 400, "InvalidParameterValue", "The value %s for parameter %s is invalid.",
                clip(value, v), param);
}

static bool missing(struct check *c, const char *param)
{
    return fail(c, 400, "MissingParameter", "The parameter %s is required.", param);
}

/* ---- value checks ---- */

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* 1..max ASCII characters, no control characters, at least one non-space. */
static bool ascii_name(const char *s, size_t max, bool no_colon_start)
{
    size_t n = strlen(s);
    bool visible = false;
    if (n == 0 || n > max || (no_colon_start && s[0] == ':'))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch > 0x7e)
            return false;
        visible = visible || ch != ' ';
    }
    return visible;
}

static bool one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return true;
    return false;
}

#define ONE_OF(s, set) one_of((s), (set), sizeof(set) / sizeof *(set))

/* Only the listed members: CloudWatch's models, so a misspelt member is caught. */
static bool only_members(struct check *c, const json_t *obj, const char *where,
                         const char *const *names, size_t n)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!one_of(key, names, n)) {
            char k[112];
            return fail(c, 400, "InvalidParameterValue", "Unknown member %s in %s.", clip(key, k),
                        where);
        }
    }
    return true;
}

#define ONLY_MEMBERS(c, obj, where, names)                                                         \
    only_members((c), (obj), (where), (names), sizeof(names) / sizeof *(names))

/* A string member: NULL when absent (or fails when present but not a string). */
static const char *get_string(struct check *c, const json_t *obj, const char *key,
                              const char *param)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return NULL;
    if (!json_is_string(v)) {
        fail(c, 400, "InvalidParameterValue", "The parameter %s must be a string.", param);
        return NULL;
    }
    return json_string_value(v);
}

static bool get_number(struct check *c, const json_t *obj, const char *key, const char *param,
                       double *out, bool *present)
{
    const json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (!v)
        return true;
    if (!json_is_number(v))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a number.", param);
    *out = json_number_value(v);
    return true;
}

static bool get_integer(struct check *c, const json_t *obj, const char *key, const char *param,
                        int64_t *out, bool *present)
{
    const json_t *v = json_object_get(obj, key);
    *present = v != NULL;
    if (!v)
        return true;
    if (!json_is_integer(v))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s must be an integer.", param);
    *out = (int64_t)json_integer_value(v);
    return true;
}

/* -2^360 .. 2^360 (NaN and infinities cannot be written in JSON). */
static bool value_ok(double v)
{
    return isfinite(v) && fabs(v) <= ldexp(1.0, 360);
}

/*
 * Dimensions: at most 30, each {Name, Value} with the Dimension rules, names
 * unique. Writes the canonical text (sorted by name) to key when not NULL.
 */
static int cmp_dim(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    return strcmp(json_string_value(json_object_get(x, "Name")),
                  json_string_value(json_object_get(y, "Name")));
}

static bool check_dimensions(struct check *c, const json_t *dims, const char *where,
                             struct buf *key)
{
    char param[160];
    if (!dims)
        return true;
    if (!json_is_array(dims))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s.Dimensions must be a list.",
                    where);
    size_t n = json_array_size(dims);
    if (n > CLOUDWATCH_MAX_DIMENSIONS)
        return fail(c, 400, "InvalidParameterValue",
                    "The collection %s.Dimensions must not have a size greater than %d.", where,
                    CLOUDWATCH_MAX_DIMENSIONS);
    static const char *const members[] = {"Name", "Value"};
    const json_t *sorted[CLOUDWATCH_MAX_DIMENSIONS];
    for (size_t i = 0; i < n; i++) {
        const json_t *d = json_array_get(dims, i);
        snprintf(param, sizeof param, "%s.Dimensions.member.%zu", where, i + 1);
        if (!json_is_object(d))
            return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a structure.",
                        param);
        if (!ONLY_MEMBERS(c, d, param, members))
            return false;
        const char *name = get_string(c, d, "Name", param);
        const char *value = get_string(c, d, "Value", param);
        if (c->failed)
            return false;
        char p2[200];
        snprintf(p2, sizeof p2, "%s.Name", param);
        if (!name)
            return missing(c, p2);
        if (!ascii_name(name, CLOUDWATCH_MAX_NAME_LEN, true))
            return invalid(c, p2, name);
        snprintf(p2, sizeof p2, "%s.Value", param);
        if (!value)
            return missing(c, p2);
        if (!ascii_name(value, CLOUDWATCH_MAX_DIMENSION_VALUE_LEN, false))
            return invalid(c, p2, value);
        sorted[i] = d;
    }
    qsort(sorted, n, sizeof *sorted, cmp_dim);
    for (size_t i = 1; i < n; i++) {
        const char *a = json_string_value(json_object_get(sorted[i - 1], "Name"));
        if (strcmp(a, json_string_value(json_object_get(sorted[i], "Name"))) == 0) {
            char v[112];
            return fail(c, 400, "InvalidParameterValue",
                        "No metric may have duplicate dimension names: %s in %s.Dimensions.",
                        clip(a, v), where);
        }
    }
    for (size_t i = 0; key && i < n; i++)
        buf_appendf(key, "\x1f%s\x1d%s", json_string_value(json_object_get(sorted[i], "Name")),
                    json_string_value(json_object_get(sorted[i], "Value")));
    return true;
}

static bool check_namespace(struct check *c, const char *ns, const char *param)
{
    if (!ns)
        return missing(c, param);
    if (!ascii_name(ns, CLOUDWATCH_MAX_NAME_LEN, true) || strncmp(ns, "AWS/", 4) == 0)
        return invalid(c, param, ns);
    return true;
}

static bool check_metric_name(struct check *c, const char *name, const char *param)
{
    if (!name)
        return missing(c, param);
    size_t n = utf8_chars(name);
    if (n == 0 || n > CLOUDWATCH_MAX_NAME_LEN)
        return invalid(c, param, name);
    return true;
}

static bool check_unit(struct check *c, const json_t *obj, const char *param)
{
    const char *unit = get_string(c, obj, "Unit", param);
    if (c->failed)
        return false;
    if (unit && !cloudwatch_unit_known(unit))
        return invalid(c, param, unit);
    return true;
}

/* ---- the store ---- */

static struct series *series_find(struct cloudwatch_emu *cw, const char *key, bool create)
{
    for (size_t i = 0; i < cw->n_series; i++)
        if (strcmp(cw->series[i].key, key) == 0)
            return &cw->series[i];
    if (!create)
        return NULL;
    if (cw->n_series == cw->cap_series) {
        cw->cap_series = cw->cap_series ? 2 * cw->cap_series : 16;
        cw->series = xrealloc(cw->series, cw->cap_series * sizeof *cw->series);
    }
    struct series *s = &cw->series[cw->n_series++];
    memset(s, 0, sizeof *s);
    s->key = xstrdup(key);
    return s;
}

static void series_merge(struct series *s, const struct point *p)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->points[mid].ts_s < p->ts_s)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->n && s->points[lo].ts_s == p->ts_s) {
        struct point *q = &s->points[lo];
        q->count += p->count;
        q->sum += p->sum;
        q->min = p->min < q->min ? p->min : q->min;
        q->max = p->max > q->max ? p->max : q->max;
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->points = xrealloc(s->points, s->cap * sizeof *s->points);
    }
    memmove(&s->points[lo + 1], &s->points[lo], (s->n - lo) * sizeof *s->points);
    s->points[lo] = *p;
    s->n++;
}

/* ---- PutMetricData ---- */

struct pending {
    char *key;
    struct point p;
};

static bool check_datum(struct check *c, const json_t *d, size_t i, const char *ns, int64_t now_ms,
                        struct pending *out)
{
    static const char *const members[] = {"MetricName",       "Dimensions", "Timestamp", "Value",
                                          "StatisticValues",  "Values",     "Counts",    "Unit",
                                          "StorageResolution"};
    char where[64], param[128];
    snprintf(where, sizeof where, "MetricData.member.%zu", i + 1);
    if (!json_is_object(d))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a structure.",
                    where);
    if (!ONLY_MEMBERS(c, d, where, members))
        return false;
    snprintf(param, sizeof param, "%s.MetricName", where);
    const char *name = get_string(c, d, "MetricName", param);
    if (c->failed || !check_metric_name(c, name, param))
        return false;
    struct buf key = BUF_INIT;
    buf_appendf(&key, "%s\x1e%s", ns, name);
    if (!check_dimensions(c, json_object_get(d, "Dimensions"), where, &key)) {
        buf_clear(&key);
        return false;
    }
    out->key = buf_detach(&key, NULL);

    snprintf(param, sizeof param, "%s.Unit", where);
    if (!check_unit(c, d, param))
        return false;
    int64_t resolution = 60;
    bool present;
    snprintf(param, sizeof param, "%s.StorageResolution", where);
    if (!get_integer(c, d, "StorageResolution", param, &resolution, &present))
        return false;
    if (resolution != 1 && resolution != 60) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)resolution);
        return invalid(c, param, v);
    }
    double ts = (double)now_ms / 1000.0;
    snprintf(param, sizeof param, "%s.Timestamp", where);
    if (!get_number(c, d, "Timestamp", param, &ts, &present))
        return false;
    if (!isfinite(ts) || ts * 1000.0 < (double)(now_ms - CLOUDWATCH_MAX_PAST_MS) ||
        ts * 1000.0 > (double)(now_ms + CLOUDWATCH_MAX_FUTURE_MS)) {
        char v[64];
        snprintf(v, sizeof v, "%.3f", ts);
        return fail(c, 400, "InvalidParameterValue",
                    "The parameter %s must specify a time no more than two weeks in the past "
                    "or two hours in the future (got %s).",
                    param, v);
    }
    int64_t ts_s = (int64_t)floor(ts);
    out->p.ts_s = ts_s - ((ts_s % resolution) + resolution) % resolution;

    const json_t *value = json_object_get(d, "Value");
    const json_t *values = json_object_get(d, "Values");
    const json_t *counts = json_object_get(d, "Counts");
    const json_t *stats = json_object_get(d, "StatisticValues");
    int kinds = (value != NULL) + (values != NULL) + (stats != NULL);
    if (kinds > 1)
        return fail(c, 400, "InvalidParameterCombination",
                    "The parameters %s.Value, %s.Values and %s.StatisticValues are mutually "
                    "exclusive and you have specified more than one.",
                    where, where, where);
    if (kinds == 0)
        return fail(c, 400, "MissingParameter",
                    "The parameter %s.Value, %s.Values or %s.StatisticValues is required.", where,
                    where, where);
    if (counts && !values)
        return fail(c, 400, "InvalidParameterCombination",
                    "The parameter %s.Counts needs %s.Values.", where, where);
    struct point *p = &out->p;
    if (value) {
        snprintf(param, sizeof param, "%s.Value", where);
        if (!json_is_number(value))
            return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a number.",
                        param);
        double v = json_number_value(value);
        if (!value_ok(v))
            return fail(c, 400, "InvalidParameterValue",
                        "The value for parameter %s is out of range (-2^360 to 2^360).", param);
        p->count = 1;
        p->sum = p->min = p->max = v;
    } else if (values) {
        if (!json_is_array(values) || (counts && !json_is_array(counts)))
            return fail(c, 400, "InvalidParameterValue",
                        "The parameters %s.Values and %s.Counts must be lists.", where, where);
        size_t n = json_array_size(values);
        if (n > CLOUDWATCH_MAX_VALUES_PER_DATUM)
            return fail(c, 400, "InvalidParameterValue",
                        "The collection %s.Values must not have a size greater than %d.", where,
                        CLOUDWATCH_MAX_VALUES_PER_DATUM);
        if (counts && json_array_size(counts) != n)
            return fail(c, 400, "InvalidParameterValue",
                        "The parameters %s.Values and %s.Counts must be of the same size.", where,
                        where);
        if (n == 0)
            return fail(c, 400, "InvalidParameterValue",
                        "The parameter %s.Values must not be empty.", where);
        p->min = INFINITY;
        p->max = -INFINITY;
        for (size_t k = 0; k < n; k++) {
            const json_t *v = json_array_get(values, k);
            const json_t *cn = counts ? json_array_get(counts, k) : NULL;
            if (!json_is_number(v) || !value_ok(json_number_value(v)))
                return fail(c, 400, "InvalidParameterValue",
                            "The value %s.Values.member.%zu is not a number in -2^360 to 2^360.",
                            where, k + 1);
            double count = 1;
            if (cn) {
                if (!json_is_number(cn) || !(json_number_value(cn) >= 0) ||
                    !value_ok(json_number_value(cn)))
                    return fail(c, 400, "InvalidParameterValue",
                                "The value %s.Counts.member.%zu must be a number of at least 0.",
                                where, k + 1);
                count = json_number_value(cn);
            }
            if (count == 0)
                continue;
            double x = json_number_value(v);
            p->count += count;
            p->sum += x * count;
            p->min = x < p->min ? x : p->min;
            p->max = x > p->max ? x : p->max;
        }
    } else {
        static const char *const stat_members[] = {"SampleCount", "Sum", "Minimum", "Maximum"};
        snprintf(param, sizeof param, "%s.StatisticValues", where);
        if (!json_is_object(stats))
            return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a structure.",
                        param);
        if (!ONLY_MEMBERS(c, stats, param, stat_members))
            return false;
        double *slots[] = {&p->count, &p->sum, &p->min, &p->max};
        for (size_t k = 0; k < 4; k++) {
            char member[160];
            snprintf(member, sizeof member, "%s.%s", param, stat_members[k]);
            const json_t *v = json_object_get(stats, stat_members[k]);
            if (!v)
                return missing(c, member);
            if (!json_is_number(v) || !value_ok(json_number_value(v)))
                return fail(c, 400, "InvalidParameterValue",
                            "The value for parameter %s must be a number in -2^360 to 2^360.",
                            member);
            *slots[k] = json_number_value(v);
        }
        if (!(p->count > 0))
            return fail(c, 400, "InvalidParameterValue",
                        "The value for parameter %s.SampleCount must be greater than 0.", param);
        if (p->min > p->max)
            return fail(c, 400, "InvalidParameterValue",
                        "The value for parameter %s.Minimum must not exceed its Maximum.", param);
    }
    return true;
}

static void put_metric_data(struct cloudwatch_emu *cw, const json_t *in,
                            struct router_response *resp)
{
    static const char *const members[] = {"Namespace", "MetricData", "EntityMetricData",
                                          "StrictEntityValidation"};
    struct check c = {.resp = resp};
    struct pending *pend = NULL;
    size_t n = 0;
    if (!ONLY_MEMBERS(&c, in, "PutMetricDataInput", members))
        goto out;
    const char *ns = get_string(&c, in, "Namespace", "Namespace");
    if (c.failed || !check_namespace(&c, ns, "Namespace"))
        goto out;
    const json_t *data = json_object_get(in, "MetricData");
    const json_t *entity = json_object_get(in, "EntityMetricData");
    if (entity && (!json_is_array(entity) || json_array_size(entity) > 0)) {
        fail(&c, 400, "InvalidParameterValue",
             "EntityMetricData is not emulated; send MetricData.");
        goto out;
    }
    if (!data) {
        missing(&c, "MetricData");
        goto out;
    }
    if (!json_is_array(data)) {
        fail(&c, 400, "InvalidParameterValue", "The parameter MetricData must be a list.");
        goto out;
    }
    n = json_array_size(data);
    json_object_set_new(resp->log_extra, "namespace", json_string(ns));
    json_object_set_new(resp->log_extra, "datums", json_integer((json_int_t)n));
    if (n == 0) {
        fail(&c, 400, "MissingParameter", "The parameter MetricData is required.");
        goto out;
    }
    if (n > CLOUDWATCH_MAX_DATUMS_PER_REQUEST) {
        fail(&c, 400, "InvalidParameterValue",
             "The collection MetricData must not have a size greater than %d.",
             CLOUDWATCH_MAX_DATUMS_PER_REQUEST);
        goto out;
    }
    pend = xcalloc(n, sizeof *pend);
    int64_t now_ms = clock_now_ms(NULL);
    for (size_t i = 0; i < n; i++)
        if (!check_datum(&c, json_array_get(data, i), i, ns, now_ms, &pend[i]))
            goto out;
    /* All or nothing: the store changes only once every datum passed. */
    pthread_mutex_lock(&cw->lock);
    for (size_t i = 0; i < n; i++)
        if (pend[i].p.count > 0)
            series_merge(series_find(cw, pend[i].key, true), &pend[i].p);
    pthread_mutex_unlock(&cw->lock);
    buf_append_str(&resp->body, "{}");
out:
    for (size_t i = 0; pend && i < n; i++)
        free(pend[i].key);
    free(pend);
}

/* ---- GetMetricData ---- */

static const char *const stats_names[] = {"SampleCount", "Sum", "Minimum", "Maximum", "Average"};

struct query {
    const char *id, *label;
    char *key;
    int64_t period_s;
    int stat; /* index into stats_names */
    bool return_data;
    int64_t *ts; /* the result, ascending */
    double *values;
    size_t n, cap;
};

static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 255 || id[0] < 'a' || id[0] > 'z')
        return false;
    for (size_t i = 1; i < n; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return true;
}

static bool check_query(struct check *c, const json_t *q, size_t i, struct query *out)
{
    static const char *const members[] = {"Id",         "MetricStat", "Expression", "Label",
                                          "ReturnData", "Period",     "AccountId"};
    static const char *const stat_members[] = {"Metric", "Period", "Stat", "Unit"};
    static const char *const metric_members[] = {"Namespace", "MetricName", "Dimensions"};
    char where[64], param[160];
    snprintf(where, sizeof where, "MetricDataQueries.member.%zu", i + 1);
    if (!json_is_object(q))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a structure.",
                    where);
    if (!ONLY_MEMBERS(c, q, where, members))
        return false;
    snprintf(param, sizeof param, "%s.Id", where);
    out->id = get_string(c, q, "Id", param);
    if (c->failed)
        return false;
    if (!out->id)
        return missing(c, param);
    if (!id_ok(out->id))
        return invalid(c, param, out->id);
    snprintf(param, sizeof param, "%s.Label", where);
    out->label = get_string(c, q, "Label", param);
    const json_t *rd = json_object_get(q, "ReturnData");
    if (rd && !json_is_boolean(rd))
        return fail(c, 400, "InvalidParameterValue",
                    "The parameter %s.ReturnData must be a "
                    "boolean.",
                    where);
    out->return_data = !rd || json_is_true(rd);
    if (c->failed)
        return false;
    if (json_object_get(q, "Expression"))
        return fail(c, 400, "InvalidParameterValue",
                    "The emulator does not evaluate %s.Expression; use MetricStat.", where);
    const json_t *ms = json_object_get(q, "MetricStat");
    snprintf(param, sizeof param, "%s.MetricStat", where);
    if (!ms)
        return missing(c, param);
    if (!json_is_object(ms))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a structure.",
                    param);
    if (!ONLY_MEMBERS(c, ms, param, stat_members))
        return false;
    const json_t *m = json_object_get(ms, "Metric");
    snprintf(param, sizeof param, "%s.MetricStat.Metric", where);
    if (!m)
        return missing(c, param);
    if (!json_is_object(m))
        return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a structure.",
                    param);
    if (!ONLY_MEMBERS(c, m, param, metric_members))
        return false;
    char p2[200];
    snprintf(p2, sizeof p2, "%s.Namespace", param);
    const char *ns = get_string(c, m, "Namespace", p2);
    if (c->failed || !check_namespace(c, ns, p2))
        return false;
    snprintf(p2, sizeof p2, "%s.MetricName", param);
    const char *name = get_string(c, m, "MetricName", p2);
    if (c->failed || !check_metric_name(c, name, p2))
        return false;
    struct buf key = BUF_INIT;
    buf_appendf(&key, "%s\x1e%s", ns, name);
    if (!check_dimensions(c, json_object_get(m, "Dimensions"), param, &key)) {
        buf_clear(&key);
        return false;
    }
    out->key = buf_detach(&key, NULL);
    bool present;
    snprintf(param, sizeof param, "%s.MetricStat.Period", where);
    out->period_s = 0;
    if (!get_integer(c, ms, "Period", param, &out->period_s, &present))
        return false;
    if (!present)
        return missing(c, param);
    if (!(out->period_s == 1 || out->period_s == 5 || out->period_s == 10 || out->period_s == 20 ||
          out->period_s == 30 || (out->period_s > 0 && out->period_s % 60 == 0))) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)out->period_s);
        return invalid(c, param, v);
    }
    snprintf(param, sizeof param, "%s.MetricStat.Stat", where);
    const char *stat = get_string(c, ms, "Stat", param);
    if (c->failed)
        return false;
    if (!stat)
        return missing(c, param);
    out->stat = -1;
    for (int k = 0; k < 5; k++)
        if (strcmp(stat, stats_names[k]) == 0)
            out->stat = k;
    if (out->stat < 0)
        return fail(c, 400, "InvalidParameterValue",
                    "The emulator computes SampleCount, Sum, Minimum, Maximum and Average only; "
                    "%s is not one of them.",
                    param);
    snprintf(param, sizeof param, "%s.MetricStat.Unit", where);
    if (!check_unit(c, ms, param))
        return false;
    if (!out->label)
        out->label = name;
    return true;
}

/* Fills q's result from the store (lock held): period buckets in [start_s, end_s). */
static void query_run(struct cloudwatch_emu *cw, struct query *q, int64_t start_s, int64_t end_s)
{
    struct series *s = series_find(cw, q->key, false);
    if (!s)
        return;
    struct point acc = {0};
    int64_t bucket = INT64_MIN;
    for (size_t i = 0; i <= s->n; i++) {
        const struct point *p = i < s->n ? &s->points[i] : NULL;
        if (p && (p->ts_s < start_s || p->ts_s >= end_s))
            continue;
        int64_t b = p ? p->ts_s - ((p->ts_s % q->period_s) + q->period_s) % q->period_s : 0;
        if (bucket != INT64_MIN && (!p || b != bucket)) {
            double v = 0;
            switch (q->stat) {
            case 0:
                v = acc.count;
                break;
            case 1:
                v = acc.sum;
                break;
            case 2:
                v = acc.min;
                break;
            case 3:
                v = acc.max;
                break;
            default:
                v = acc.sum / acc.count;
            }
            if (q->n == q->cap) {
                q->cap = q->cap ? 2 * q->cap : 64;
                q->ts = xrealloc(q->ts, q->cap * sizeof *q->ts);
                q->values = xrealloc(q->values, q->cap * sizeof *q->values);
            }
            q->ts[q->n] = bucket;
            q->values[q->n] = v;
            q->n++;
            bucket = INT64_MIN;
        }
        if (!p)
            break;
        if (bucket == INT64_MIN) {
            bucket = b;
            acc = *p;
        } else {
            acc.count += p->count;
            acc.sum += p->sum;
            acc.min = p->min < acc.min ? p->min : acc.min;
            acc.max = p->max > acc.max ? p->max : acc.max;
        }
    }
}

static const char gmd_token_prefix[] = "emu-gmd-";

static void get_metric_data(struct cloudwatch_emu *cw, const json_t *in,
                            struct router_response *resp)
{
    static const char *const members[] = {"MetricDataQueries", "StartTime", "EndTime",
                                          "NextToken",         "ScanBy",    "MaxDatapoints",
                                          "LabelOptions"};
    struct check c = {.resp = resp};
    struct query *qs = NULL;
    size_t n = 0;
    json_t *out = NULL;
    if (!ONLY_MEMBERS(&c, in, "GetMetricDataInput", members))
        goto out;
    const json_t *queries = json_object_get(in, "MetricDataQueries");
    if (!queries) {
        missing(&c, "MetricDataQueries");
        goto out;
    }
    if (!json_is_array(queries) || json_array_size(queries) == 0 ||
        json_array_size(queries) > CLOUDWATCH_EMU_MAX_QUERIES) {
        fail(&c, 400, "InvalidParameterValue",
             "The parameter MetricDataQueries must be a list of 1 to %d queries.",
             CLOUDWATCH_EMU_MAX_QUERIES);
        goto out;
    }
    n = json_array_size(queries);
    json_object_set_new(resp->log_extra, "queries", json_integer((json_int_t)n));
    qs = xcalloc(n, sizeof *qs);
    for (size_t i = 0; i < n; i++) {
        if (!check_query(&c, json_array_get(queries, i), i, &qs[i]))
            goto out;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(qs[k].id, qs[i].id) == 0) {
                char v[112];
                fail(&c, 400, "InvalidParameterValue",
                     "The value %s for parameter MetricDataQueries.member.%zu.Id is not unique.",
                     clip(qs[i].id, v), i + 1);
                goto out;
            }
        }
    }
    double start = 0, end = 0;
    bool has_start, has_end;
    if (!get_number(&c, in, "StartTime", "StartTime", &start, &has_start) ||
        !get_number(&c, in, "EndTime", "EndTime", &end, &has_end))
        goto out;
    if (!has_start || !has_end) {
        missing(&c, has_start ? "EndTime" : "StartTime");
        goto out;
    }
    if (!(start < end)) {
        fail(&c, 400, "InvalidParameterValue",
             "The parameter StartTime must be earlier than the parameter EndTime.");
        goto out;
    }
    const char *scan_by = get_string(&c, in, "ScanBy", "ScanBy");
    if (c.failed)
        goto out;
    static const char *const scans[] = {"TimestampDescending", "TimestampAscending"};
    if (scan_by && !ONE_OF(scan_by, scans)) {
        invalid(&c, "ScanBy", scan_by);
        goto out;
    }
    bool descending = !scan_by || strcmp(scan_by, "TimestampDescending") == 0;
    int64_t max_points = CLOUDWATCH_EMU_DEFAULT_MAX_DATAPOINTS;
    bool present;
    if (!get_integer(&c, in, "MaxDatapoints", "MaxDatapoints", &max_points, &present))
        goto out;
    if (max_points < 1) {
        invalid(&c, "MaxDatapoints", "below 1");
        goto out;
    }
    /* The token is the number of datapoints earlier pages returned. */
    uint64_t skip = 0;
    const char *token = get_string(&c, in, "NextToken", "NextToken");
    if (c.failed)
        goto out;
    if (token) {
        char *end_ptr = NULL;
        if (strncmp(token, gmd_token_prefix, sizeof gmd_token_prefix - 1) == 0)
            skip = strtoull(token + sizeof gmd_token_prefix - 1, &end_ptr, 10);
        if (!end_ptr || *end_ptr || end_ptr == token + sizeof gmd_token_prefix - 1) {
            fail(&c, 400, "InvalidNextToken", "The service couldn't recognize the NextToken.");
            goto out;
        }
    }
    pthread_mutex_lock(&cw->lock);
    for (size_t i = 0; i < n; i++)
        if (qs[i].return_data)
            query_run(cw, &qs[i], (int64_t)ceil(start), (int64_t)ceil(end));
    pthread_mutex_unlock(&cw->lock);

    out = json_object();
    json_t *results = json_array();
    json_object_set_new(out, "MetricDataResults", results);
    uint64_t seen = 0, emitted = 0;
    bool more = false;
    for (size_t i = 0; i < n; i++) {
        if (!qs[i].return_data)
            continue;
        json_t *ts = json_array(), *vals = json_array();
        for (size_t k = 0; k < qs[i].n; k++, seen++) {
            if (seen < skip)
                continue;
            if (emitted == (uint64_t)max_points) {
                more = true;
                break;
            }
            size_t at = descending ? qs[i].n - 1 - k : k;
            json_array_append_new(ts, json_integer((json_int_t)qs[i].ts[at]));
            json_array_append_new(vals, json_real(qs[i].values[at]));
            emitted++;
        }
        json_array_append_new(results, json_pack("{s:s, s:s, s:o, s:o, s:s}", "Id", qs[i].id,
                                                 "Label", qs[i].label, "Timestamps", ts, "Values",
                                                 vals, "StatusCode", "Complete"));
    }
    if (more) {
        char next[64];
        snprintf(next, sizeof next, "%s%llu", gmd_token_prefix,
                 (unsigned long long)(skip + emitted));
        json_object_set_new(out, "NextToken", json_string(next));
        size_t i;
        json_t *r;
        json_array_foreach(results, i, r)
            json_object_set_new(r, "StatusCode", json_string("PartialData"));
    }
    json_object_set_new(out, "Messages", json_array());
    char *text = json_dumps(out, JSON_COMPACT);
    buf_append_str(&resp->body, text);
    free(text);
out:
    json_decref(out);
    for (size_t i = 0; qs && i < n; i++) {
        free(qs[i].key);
        free(qs[i].ts);
        free(qs[i].values);
    }
    free(qs);
}

/* ---- alarms ---- */

static bool check_actions(struct check *c, const json_t *in, const char *key)
{
    const json_t *a = json_object_get(in, key);
    if (!a)
        return true;
    if (!json_is_array(a) || json_array_size(a) > CLOUDWATCH_EMU_MAX_ALARM_ACTIONS)
        return fail(c, 400, "InvalidParameterValue",
                    "The parameter %s must be a list of at most %d ARNs.", key,
                    CLOUDWATCH_EMU_MAX_ALARM_ACTIONS);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v)
    {
        char param[96];
        snprintf(param, sizeof param, "%s.member.%zu", key, i + 1);
        if (!json_is_string(v))
            return fail(c, 400, "InvalidParameterValue", "The parameter %s must be a string.",
                        param);
        const char *arn = json_string_value(v);
        if (strncmp(arn, "arn:", 4) != 0 || strlen(arn) > 1024)
            return invalid(c, param, arn);
    }
    return true;
}

static void alarm_timestamp(json_t *alarm, const char *key, int64_t now_ms)
{
    json_object_set_new(alarm, key, json_real((double)now_ms / 1000.0));
}

static void put_metric_alarm(struct cloudwatch_emu *cw, const json_t *in,
                             struct router_response *resp)
{
    static const char *const members[] = {"AlarmName",
                                          "AlarmDescription",
                                          "ActionsEnabled",
                                          "OKActions",
                                          "AlarmActions",
                                          "InsufficientDataActions",
                                          "MetricName",
                                          "Namespace",
                                          "Statistic",
                                          "ExtendedStatistic",
                                          "Dimensions",
                                          "Period",
                                          "Unit",
                                          "EvaluationPeriods",
                                          "DatapointsToAlarm",
                                          "Threshold",
                                          "ComparisonOperator",
                                          "TreatMissingData",
                                          "EvaluateLowSampleCountPercentile",
                                          "Metrics",
                                          "Tags",
                                          "ThresholdMetricId"};
    static const char *const operators[] = {"GreaterThanOrEqualToThreshold",
                                            "GreaterThanThreshold",
                                            "LessThanThreshold",
                                            "LessThanOrEqualToThreshold",
                                            "LessThanLowerOrGreaterThanUpperThreshold",
                                            "LessThanLowerThreshold",
                                            "GreaterThanUpperThreshold"};
    static const char *const missing_data[] = {"breaching", "notBreaching", "ignore", "missing"};
    struct check c = {.resp = resp};
    if (!ONLY_MEMBERS(&c, in, "PutMetricAlarmInput", members))
        return;
    const char *name = get_string(&c, in, "AlarmName", "AlarmName");
    const char *desc = get_string(&c, in, "AlarmDescription", "AlarmDescription");
    const char *ns = get_string(&c, in, "Namespace", "Namespace");
    const char *metric = get_string(&c, in, "MetricName", "MetricName");
    const char *stat = get_string(&c, in, "Statistic", "Statistic");
    const char *ext = get_string(&c, in, "ExtendedStatistic", "ExtendedStatistic");
    const char *op = get_string(&c, in, "ComparisonOperator", "ComparisonOperator");
    const char *tmd = get_string(&c, in, "TreatMissingData", "TreatMissingData");
    if (c.failed)
        return;
    if (!name) {
        missing(&c, "AlarmName");
        return;
    }
    json_object_set_new(resp->log_extra, "alarm", json_string(name));
    size_t name_chars = utf8_chars(name);
    if (name_chars == 0 || name_chars > 255) {
        invalid(&c, "AlarmName", name);
        return;
    }
    if (desc && utf8_chars(desc) > 1024) {
        invalid(&c, "AlarmDescription", "(longer than 1024 characters)");
        return;
    }
    if (json_object_get(in, "Metrics") || json_object_get(in, "ThresholdMetricId")) {
        fail(&c, 400, "InvalidParameterValue",
             "The emulator does not evaluate metric math alarms (Metrics, ThresholdMetricId).");
        return;
    }
    if (!check_namespace(&c, ns, "Namespace") || !check_metric_name(&c, metric, "MetricName") ||
        !check_dimensions(&c, json_object_get(in, "Dimensions"), "PutMetricAlarmInput", NULL) ||
        !check_unit(&c, in, "Unit") || !check_actions(&c, in, "OKActions") ||
        !check_actions(&c, in, "AlarmActions") || !check_actions(&c, in, "InsufficientDataActions"))
        return;
    if ((stat != NULL) == (ext != NULL)) {
        fail(&c, 400, "InvalidParameterCombination",
             stat ? "Exactly one of Statistic and ExtendedStatistic must be given, not both."
                  : "Exactly one of Statistic and ExtendedStatistic is required.");
        return;
    }
    if (stat && !ONE_OF(stat, stats_names)) {
        invalid(&c, "Statistic", stat);
        return;
    }
    if (ext && (ext[0] != 'p' || strlen(ext) > 10)) {
        invalid(&c, "ExtendedStatistic", ext);
        return;
    }
    int64_t period = 0, evals = 0, dta = 0;
    bool has_period, has_evals, has_dta, has_threshold;
    double threshold = 0;
    if (!get_integer(&c, in, "Period", "Period", &period, &has_period) ||
        !get_integer(&c, in, "EvaluationPeriods", "EvaluationPeriods", &evals, &has_evals) ||
        !get_integer(&c, in, "DatapointsToAlarm", "DatapointsToAlarm", &dta, &has_dta) ||
        !get_number(&c, in, "Threshold", "Threshold", &threshold, &has_threshold))
        return;
    if (!has_period || !has_evals || !has_threshold || !op) {
        missing(&c, !has_period      ? "Period"
                    : !has_evals     ? "EvaluationPeriods"
                    : !has_threshold ? "Threshold"
                                     : "ComparisonOperator");
        return;
    }
    char v[32];
    if (!(period == 10 || period == 20 || period == 30 || (period > 0 && period % 60 == 0))) {
        snprintf(v, sizeof v, "%lld", (long long)period);
        invalid(&c, "Period", v);
        return;
    }
    if (evals < 1) {
        snprintf(v, sizeof v, "%lld", (long long)evals);
        invalid(&c, "EvaluationPeriods", v);
        return;
    }
    int64_t max_span = period < 3600 ? 86400 : 604800;
    if (evals > max_span / period) {
        fail(&c, 400, "InvalidParameterCombination",
             "The evaluation period, Period x EvaluationPeriods, must not exceed %lld seconds "
             "(Period %lld s).",
             (long long)max_span, (long long)period);
        return;
    }
    if (has_dta && (dta < 1 || dta > evals)) {
        snprintf(v, sizeof v, "%lld", (long long)dta);
        invalid(&c, "DatapointsToAlarm", v);
        return;
    }
    if (!value_ok(threshold)) {
        invalid(&c, "Threshold", "(out of range)");
        return;
    }
    if (!ONE_OF(op, operators)) {
        invalid(&c, "ComparisonOperator", op);
        return;
    }
    if (tmd && !ONE_OF(tmd, missing_data)) {
        invalid(&c, "TreatMissingData", tmd);
        return;
    }
    const json_t *enabled = json_object_get(in, "ActionsEnabled");
    if (enabled && !json_is_boolean(enabled)) {
        fail(&c, 400, "InvalidParameterValue", "The parameter ActionsEnabled must be a boolean.");
        return;
    }
    const json_t *tags = json_object_get(in, "Tags");
    if (tags && !json_is_array(tags)) {
        fail(&c, 400, "InvalidParameterValue", "The parameter Tags must be a list.");
        return;
    }

    int64_t now_ms = clock_now_ms(NULL);
    json_t *alarm = json_deep_copy(in);
    json_object_del(alarm, "Tags");
    struct buf arn = BUF_INIT;
    buf_appendf(&arn, "arn:aws:cloudwatch:%s:" ACCOUNT_ID ":alarm:%s", cw->region, name);
    json_object_set_new(alarm, "AlarmArn", json_string(buf_cstr(&arn)));
    buf_clear(&arn);
    static const char *const lists[] = {"OKActions", "AlarmActions", "InsufficientDataActions",
                                        "Dimensions"};
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++)
        if (!json_object_get(alarm, lists[i]))
            json_object_set_new(alarm, lists[i], json_array());
    if (!enabled)
        json_object_set_new(alarm, "ActionsEnabled", json_true());
    alarm_timestamp(alarm, "AlarmConfigurationUpdatedTimestamp", now_ms);
    pthread_mutex_lock(&cw->lock);
    const json_t *old = json_object_get(cw->alarms, name);
    static const char *const state_keys[] = {"StateValue", "StateReason", "StateUpdatedTimestamp",
                                             "StateTransitionedTimestamp"};
    if (old) { /* a replacement keeps the alarm's state */
        for (size_t i = 0; i < sizeof state_keys / sizeof *state_keys; i++)
            json_object_set(alarm, state_keys[i], json_object_get(old, state_keys[i]));
    } else {
        json_object_set_new(alarm, "StateValue", json_string("INSUFFICIENT_DATA"));
        json_object_set_new(alarm, "StateReason", json_string("Unchecked: Initial alarm creation"));
        alarm_timestamp(alarm, "StateUpdatedTimestamp", now_ms);
        alarm_timestamp(alarm, "StateTransitionedTimestamp", now_ms);
    }
    json_object_set_new(cw->alarms, name, alarm);
    pthread_mutex_unlock(&cw->lock);
    json_object_set_new(resp->log_extra, "replaced", json_boolean(old != NULL));
    buf_append_str(&resp->body, "{}");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool string_list(struct check *c, const json_t *in, const char *key, size_t max)
{
    const json_t *a = json_object_get(in, key);
    if (!a)
        return true;
    if (!json_is_array(a) || json_array_size(a) > max)
        return fail(c, 400, "InvalidParameterValue",
                    "The parameter %s must be a list of at most "
                    "%zu strings.",
                    key, max);
    size_t i;
    const json_t *v;
    json_array_foreach(a, i, v) if (!json_is_string(v)) return fail(
        c, 400, "InvalidParameterValue", "The parameter %s.member.%zu must be a string.", key,
        i + 1);
    return true;
}

static bool has_action_prefix(const json_t *alarm, const char *prefix)
{
    static const char *const lists[] = {"OKActions", "AlarmActions", "InsufficientDataActions"};
    for (size_t k = 0; k < 3; k++) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(alarm, lists[k]), i,
                           v) if (strncmp(json_string_value(v), prefix, strlen(prefix)) ==
                                  0) return true;
    }
    return false;
}

static const char alarms_token_prefix[] = "emu-alarms-";

static void describe_alarms(struct cloudwatch_emu *cw, const json_t *in,
                            struct router_response *resp)
{
    static const char *const members[] = {"AlarmNames",          "AlarmNamePrefix",    "AlarmTypes",
                                          "ChildrenOfAlarmName", "ParentsOfAlarmName", "StateValue",
                                          "ActionPrefix",        "MaxRecords",         "NextToken"};
    static const char *const states[] = {"OK", "ALARM", "INSUFFICIENT_DATA"};
    static const char *const types[] = {"CompositeAlarm", "MetricAlarm"};
    struct check c = {.resp = resp};
    const char **names = NULL;
    if (!ONLY_MEMBERS(&c, in, "DescribeAlarmsInput", members) ||
        !string_list(&c, in, "AlarmNames", CLOUDWATCH_EMU_MAX_ALARM_NAMES) ||
        !string_list(&c, in, "AlarmTypes", 2))
        return;
    const char *prefix = get_string(&c, in, "AlarmNamePrefix", "AlarmNamePrefix");
    const char *state = get_string(&c, in, "StateValue", "StateValue");
    const char *action = get_string(&c, in, "ActionPrefix", "ActionPrefix");
    const char *token = get_string(&c, in, "NextToken", "NextToken");
    const char *children = get_string(&c, in, "ChildrenOfAlarmName", "ChildrenOfAlarmName");
    const char *parents = get_string(&c, in, "ParentsOfAlarmName", "ParentsOfAlarmName");
    int64_t max = 50;
    bool present;
    if (c.failed || !get_integer(&c, in, "MaxRecords", "MaxRecords", &max, &present))
        return;
    const json_t *by_name = json_object_get(in, "AlarmNames");
    if (by_name && prefix) {
        fail(&c, 400, "InvalidParameterCombination",
             "AlarmNamePrefix and AlarmNames cannot be given together.");
        return;
    }
    if (max < 1 || max > 100) {
        char v[32];
        snprintf(v, sizeof v, "%lld", (long long)max);
        invalid(&c, "MaxRecords", v);
        return;
    }
    if (state && !ONE_OF(state, states)) {
        invalid(&c, "StateValue", state);
        return;
    }
    bool metric_alarms = true;
    const json_t *at = json_object_get(in, "AlarmTypes");
    if (at) {
        metric_alarms = false;
        size_t i;
        const json_t *v;
        json_array_foreach(at, i, v)
        {
            if (!ONE_OF(json_string_value(v), types)) {
                invalid(&c, "AlarmTypes", json_string_value(v));
                return;
            }
            metric_alarms = metric_alarms || strcmp(json_string_value(v), "MetricAlarm") == 0;
        }
    }
    if (children || parents) /* composite alarms only, and the emulator has none */
        metric_alarms = false;
    const char *after = NULL;
    if (token) {
        if (strncmp(token, alarms_token_prefix, sizeof alarms_token_prefix - 1) != 0) {
            fail(&c, 400, "InvalidNextToken", "The service couldn't recognize the NextToken.");
            return;
        }
        after = token + sizeof alarms_token_prefix - 1;
    }

    json_t *out = json_object(), *list = json_array();
    json_object_set_new(out, "MetricAlarms", list);
    json_object_set_new(out, "CompositeAlarms", json_array());
    pthread_mutex_lock(&cw->lock);
    size_t n = json_object_size(cw->alarms), k = 0;
    names = xcalloc(n + 1, sizeof *names);
    const char *key;
    json_t *alarm;
    json_object_foreach(cw->alarms, key, alarm) names[k++] = key;
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && metric_alarms; i++) {
        if (after && strcmp(names[i], after) < 0)
            continue;
        alarm = json_object_get(cw->alarms, names[i]);
        bool named = !by_name;
        size_t j;
        const json_t *v;
        json_array_foreach(by_name, j, v) named =
            named || strcmp(json_string_value(v), names[i]) == 0;
        if (!named || (prefix && strncmp(names[i], prefix, strlen(prefix)) != 0) ||
            (state && strcmp(json_string_value(json_object_get(alarm, "StateValue")), state)) ||
            (action && !has_action_prefix(alarm, action)))
            continue;
        if ((int64_t)json_array_size(list) == max) {
            struct buf next = BUF_INIT;
            buf_appendf(&next, "%s%s", alarms_token_prefix, names[i]);
            json_object_set_new(out, "NextToken", json_string(buf_cstr(&next)));
            buf_clear(&next);
            break;
        }
        json_array_append_new(list, json_deep_copy(alarm));
    }
    pthread_mutex_unlock(&cw->lock);
    json_object_set_new(resp->log_extra, "alarms", json_integer((json_int_t)json_array_size(list)));
    char *text = json_dumps(out, JSON_COMPACT);
    buf_append_str(&resp->body, text);
    free(text);
    json_decref(out);
    free(names);
}

static void delete_alarms(struct cloudwatch_emu *cw, const json_t *in, struct router_response *resp)
{
    static const char *const members[] = {"AlarmNames"};
    struct check c = {.resp = resp};
    if (!ONLY_MEMBERS(&c, in, "DeleteAlarmsInput", members) ||
        !string_list(&c, in, "AlarmNames", CLOUDWATCH_EMU_MAX_ALARM_NAMES))
        return;
    const json_t *names = json_object_get(in, "AlarmNames");
    if (!names) {
        missing(&c, "AlarmNames");
        return;
    }
    size_t i;
    const json_t *v;
    pthread_mutex_lock(&cw->lock);
    /* All or nothing, as the service does: an unknown name deletes none. */
    json_array_foreach(names, i, v)
    {
        if (!json_object_get(cw->alarms, json_string_value(v))) {
            pthread_mutex_unlock(&cw->lock);
            char n[112];
            fail(&c, 404, "ResourceNotFound", "Alarm %s does not exist.",
                 clip(json_string_value(v), n));
            return;
        }
    }
    json_array_foreach(names, i, v) json_object_del(cw->alarms, json_string_value(v));
    pthread_mutex_unlock(&cw->lock);
    buf_append_str(&resp->body, "{}");
}

/* ---- the request ---- */

/* Inflates a gzip body into out, at most max bytes; -1 when corrupt, -2 when too large. */
static int gunzip(const char *in, size_t n, size_t max, struct buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    char chunk[16384];
    int rc = 0, zr;
    do {
        z.next_out = (Bytef *)chunk;
        z.avail_out = sizeof chunk;
        zr = inflate(&z, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            rc = -1;
            break;
        }
        size_t got = sizeof chunk - z.avail_out;
        if (out->len + got > max) {
            rc = -2;
            break;
        }
        buf_append(out, chunk, got);
        if (zr == Z_OK && got == 0 && z.avail_in == 0) {
            rc = -1; /* truncated stream */
            break;
        }
    } while (zr != Z_STREAM_END);
    if (rc == 0 && z.avail_in != 0)
        rc = -1; /* trailing bytes after the stream */
    inflateEnd(&z);
    return rc;
}

static bool match(void *ctx, const struct router_request *req)
{
    (void)ctx;
    const char *target = router_request_header(req, "X-Amz-Target");
    return strcmp(req->method, "POST") == 0 && strcmp(req->uri, "/") == 0 && target &&
           strncmp(target, TARGET_PREFIX, sizeof TARGET_PREFIX - 1) == 0;
}

static void fault_error(struct router_response *resp, enum scenario_fault f)
{
    switch (f) {
    case SCENARIO_FAULT_THROTTLE:
        snprintf(resp->fault, sizeof resp->fault, "throttle");
        cw_error(resp, 400, "Throttling", "Rate exceeded");
        break;
    case SCENARIO_FAULT_INTERNAL:
        snprintf(resp->fault, sizeof resp->fault, "internal");
        cw_error(resp, 500, "InternalServiceError", "Internal service error.");
        break;
    case SCENARIO_FAULT_UNAVAILABLE:
        snprintf(resp->fault, sizeof resp->fault, "unavailable");
        cw_error(resp, 503, "ServiceUnavailable", "Service unavailable.");
        break;
    case SCENARIO_FAULT_OUTAGE:
        snprintf(resp->fault, sizeof resp->fault, "outage");
        cw_error(resp, 503, "ServiceUnavailable", "Service unavailable.");
        break;
    default:
        break;
    }
}

static void handle(void *ctx, const struct router_request *req, struct router_response *resp)
{
    struct cloudwatch_emu *cw = ctx;
    static const char *const operations[] = {"PutMetricData", "GetMetricData", "PutMetricAlarm",
                                             "DescribeAlarms", "DeleteAlarms"};
    const char *op = router_request_header(req, "X-Amz-Target") + sizeof TARGET_PREFIX - 1;
    struct buf plain = BUF_INIT;
    json_t *in = NULL;
    resp->log_extra = json_object();
    snprintf(resp->operation, sizeof resp->operation, "%s",
             ONE_OF(op, operations) ? op : "Unknown");
    if (!ONE_OF(op, operations)) {
        cw_error(resp, 400, "UnknownOperationException",
                 "The requested operation is not recognized by the emulator.");
        goto out;
    }
    struct scenario_decision d;
    scenario_service_decide(cw->sc, "cloudwatch", &d);
    resp->delay_ms = d.delay_ms;
    if (d.fault != SCENARIO_FAULT_NONE) {
        fault_error(resp, d.fault);
        goto out;
    }
    const char *type = router_request_header(req, "Content-Type");
    if (!type || strncasecmp(type, "application/x-amz-json-1.0", 26) != 0) {
        cw_error(resp, 400, "SerializationException",
                 "Content-Type must be application/x-amz-json-1.0.");
        goto out;
    }
    const char *body = req->body;
    size_t len = req->body_len;
    const char *encoding = router_request_header(req, "Content-Encoding");
    if (encoding && strcasecmp(encoding, "gzip") == 0) {
        int rc = gunzip(req->body, req->body_len, CLOUDWATCH_EMU_MAX_BODY, &plain);
        if (rc != 0) {
            cw_error(resp, 400, rc == -2 ? "InvalidParameterValue" : "SerializationException",
                     rc == -2 ? "The request is larger than 1 MB once decompressed."
                              : "The gzip body could not be decompressed.");
            goto out;
        }
        json_object_set_new(resp->log_extra, "gzip", json_true());
        body = buf_cstr(&plain);
        len = plain.len;
    } else if (encoding && strcasecmp(encoding, "identity") != 0) {
        cw_error(resp, 400, "InvalidParameterValue", "Content-Encoding must be gzip.");
        goto out;
    }
    if (len > CLOUDWATCH_EMU_MAX_BODY) {
        cw_error(resp, 400, "InvalidParameterValue", "The request is larger than 1 MB.");
        goto out;
    }
    json_error_t jerr;
    in = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!in || !json_is_object(in)) {
        cw_error(resp, 400, "SerializationException", "The request body is not a JSON object.");
        goto out;
    }
    if (strcmp(op, "PutMetricData") == 0)
        put_metric_data(cw, in, resp);
    else if (strcmp(op, "GetMetricData") == 0)
        get_metric_data(cw, in, resp);
    else if (strcmp(op, "PutMetricAlarm") == 0)
        put_metric_alarm(cw, in, resp);
    else if (strcmp(op, "DescribeAlarms") == 0)
        describe_alarms(cw, in, resp);
    else
        delete_alarms(cw, in, resp);
    if (resp->status == 200)
        router_response_header(resp, "Content-Type", "application/x-amz-json-1.0");
out:
    json_decref(in);
    buf_clear(&plain);
}

struct router_service cloudwatch_emu_service(struct cloudwatch_emu *cw)
{
    struct router_service s = {.name = "cloudwatch",
                               .signing_name = "monitoring",
                               .match = match,
                               .handle = handle,
                               .error = router_error,
                               .ctx = cw};
    return s;
}
