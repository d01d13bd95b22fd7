/*
 * aws/cloudwatch: the CloudWatch client. Builds each operation's JSON with
 * jansson, gzips large bodies with zlib, signs through aws/signer (service
 * "monitoring") and sends over the shared transport; validates datums and
 * splits them into requests within the service's limits. See
 * aws/cloudwatch.h for the contracts and aws/README.md for the wire facts.
 */
#include "aws/cloudwatch.h"

#include "aws/endpoint.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "aws/http.h"
#include "aws/signer.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/log.h"

#define TARGET_PREFIX "GraniteServiceVersion20100801."
#define CONTENT_TYPE "application/x-amz-json-1.0"
#define MAX_OPERATION_LEN 64
#define MAX_PAGES 10000

struct cloudwatch {
    struct http_transport *transport;
    struct signer *signer;
    char *endpoint;
    struct retry_policy retry;
    _Atomic uint64_t rng;
    int64_t timeout_ms;
    void (*sleep_ms)(void *ctx, int64_t ms);
    void *sleep_ctx;
};

/* ---------------------------------------------------------------- errors -- */

static const char *const invalid_codes[] = {"InvalidParameterValue",
                                            "InvalidParameterCombination",
                                            "MissingParameter",
                                            "InvalidParameterValueException",
                                            "InvalidParameterCombinationException",
                                            "MissingRequiredParameterException",
                                            "ValidationError",
                                            "ValidationException",
                                            "InvalidNextToken",
                                            "InvalidFormat",
                                            "LimitExceeded",
                                            "LimitExceededException"};

enum assay_err cloudwatch_error_map(int status, const char *error_code)
{
    if (status >= 200 && status < 300)
        return ASSAY_OK;
    enum retry_class cls = retry_classify(ASSAY_OK, status, error_code);
    if (cls == RETRY_THROTTLED)
        return ASSAY_ERR_BUSY;
    if (error_code && error_code[0])
        for (size_t i = 0; i < sizeof invalid_codes / sizeof invalid_codes[0]; i++)
            if (strcmp(error_code, invalid_codes[i]) == 0)
                return ASSAY_ERR_INVALID_ARGUMENT;
    return ASSAY_ERR_HTTP_STATUS;
}

/* ------------------------------------------------------------ validation -- */

static const char *const units[] = {"Seconds",
                                    "Microseconds",
                                    "Milliseconds",
                                    "Bytes",
                                    "Kilobytes",
                                    "Megabytes",
                                    "Gigabytes",
                                    "Terabytes",
                                    "Bits",
                                    "Kilobits",
                                    "Megabits",
                                    "Gigabits",
                                    "Terabits",
                                    "Percent",
                                    "Count",
                                    "Bytes/Second",
                                    "Kilobytes/Second",
                                    "Megabytes/Second",
                                    "Gigabytes/Second",
                                    "Terabytes/Second",
                                    "Bits/Second",
                                    "Kilobits/Second",
                                    "Megabits/Second",
                                    "Gigabits/Second",
                                    "Terabits/Second",
                                    "Count/Second",
                                    "None"};

int cloudwatch_unit_known(const char *u)
{
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(u, units[i]) == 0)
            return 1;
    return 0;
}

/* CloudWatch accepts magnitudes up to 2^360 and refuses NaN and infinities. */
static int value_ok(double v)
{
    return isfinite(v) && fabs(v) <= ldexp(1.0, 360);
}

static int name_ok(const char *s, size_t max)
{
    return s && s[0] && strlen(s) <= max;
}

/* Namespaces, dimension names and values: printable ASCII, at least one non-space. */
static int dimension_text_ok(const char *s)
{
    int visible = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p > 0x7e)
            return 0;
        visible |= *p != ' ';
    }
    return visible;
}

static enum assay_err dimensions_validate(const char *where, const struct cloudwatch_dimension *d,
                                          size_t n, char *errbuf)
{
    if (n > CLOUDWATCH_MAX_DIMENSIONS)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s.Dimensions has %zu entries, at most %d are allowed", where, n,
                                CLOUDWATCH_MAX_DIMENSIONS);
    if (n > 0 && !d)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s: Dimensions missing",
                                where);
    for (size_t i = 0; i < n; i++) {
        if (!name_ok(d[i].name, CLOUDWATCH_MAX_NAME_LEN))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Dimensions[%zu].Name must be 1-%d characters", where, i,
                                    CLOUDWATCH_MAX_NAME_LEN);
        if (!name_ok(d[i].value, CLOUDWATCH_MAX_DIMENSION_VALUE_LEN))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Dimensions[%zu].Value must be 1-%d characters", where, i,
                                    CLOUDWATCH_MAX_DIMENSION_VALUE_LEN);
        if (!dimension_text_ok(d[i].name) || d[i].name[0] == ':' || !dimension_text_ok(d[i].value))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Dimensions[%zu]: names and values are printable ASCII "
                                    "with a non-space character, names not starting with ':'",
                                    where, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(d[i].name, d[j].name) == 0)
                return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                        "%s.Dimensions[%zu]: the name \"%s\" is repeated", where, i,
                                        d[i].name);
    }
    return ASSAY_OK;
}

enum assay_err cloudwatch_namespace_validate(const char *ns, char *errbuf)
{
    if (!name_ok(ns, CLOUDWATCH_MAX_NAME_LEN))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "Namespace must be 1-%d characters", CLOUDWATCH_MAX_NAME_LEN);
    if (ns[0] == ':' || strncmp(ns, "AWS/", 4) == 0 || !dimension_text_ok(ns))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "Namespace \"%s\": printable ASCII, not starting with ':' or "
                                "\"AWS/\"",
                                ns);
    return ASSAY_OK;
}

enum assay_err cloudwatch_datum_validate(const struct cloudwatch_datum *d, size_t index,
                                         int64_t now_ms, char *errbuf)
{
    char where[48];
    snprintf(where, sizeof where, "MetricData[%zu]", index);
    if (!name_ok(d->metric_name, CLOUDWATCH_MAX_NAME_LEN))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s.MetricName must be 1-%d characters", where,
                                CLOUDWATCH_MAX_NAME_LEN);
    enum assay_err err = dimensions_validate(where, d->dimensions, d->n_dimensions, errbuf);
    if (err != ASSAY_OK)
        return err;
    if (d->timestamp_ms != 0) {
        if (d->timestamp_ms < now_ms - CLOUDWATCH_MAX_PAST_MS)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Timestamp is more than two weeks in the past", where);
        if (d->timestamp_ms > now_ms + CLOUDWATCH_MAX_FUTURE_MS)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Timestamp is more than two hours in the future", where);
    }
    if (d->unit && !cloudwatch_unit_known(d->unit))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s.Unit \"%s\" is not a unit",
                                where, d->unit);
    if (d->storage_resolution != 0 && d->storage_resolution != 1 && d->storage_resolution != 60)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s.StorageResolution must be 1 or 60, not %d", where,
                                d->storage_resolution);
    switch (d->kind) {
    case CLOUDWATCH_DATUM_VALUE:
        if (!value_ok(d->value))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Value must be finite and within +-2^360", where);
        break;
    case CLOUDWATCH_DATUM_VALUES:
        if (d->n_values == 0 || !d->values)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s.Values is empty",
                                    where);
        if (d->n_values > CLOUDWATCH_MAX_VALUES_PER_DATUM)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.Values has %zu entries, at most %d are allowed", where,
                                    d->n_values, CLOUDWATCH_MAX_VALUES_PER_DATUM);
        for (size_t i = 0; i < d->n_values; i++) {
            if (!value_ok(d->values[i]))
                return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                        "%s.Values[%zu] must be finite and within +-2^360", where,
                                        i);
            if (d->counts && (!isfinite(d->counts[i]) || d->counts[i] < 0))
                return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                        "%s.Counts[%zu] must be a finite count >= 0", where, i);
        }
        break;
    case CLOUDWATCH_DATUM_STATISTICS: {
        const struct cloudwatch_statistic_set *s = &d->stats;
        if (!value_ok(s->sample_count) || !value_ok(s->sum) || !value_ok(s->minimum) ||
            !value_ok(s->maximum))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.StatisticValues must be finite and within +-2^360", where);
        if (s->sample_count <= 0 || s->minimum > s->maximum)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.StatisticValues needs SampleCount > 0 and Minimum <= "
                                    "Maximum",
                                    where);
        break;
    }
    default:
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s: unknown datum kind",
                                where);
    }
    return ASSAY_OK;
}

static int in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

enum assay_err cloudwatch_alarm_validate(const struct cloudwatch_alarm *a, char *errbuf)
{
    static const char *const statistics[] = {"SampleCount", "Average", "Sum", "Minimum", "Maximum"};
    static const char *const operators[] = {"GreaterThanOrEqualToThreshold", "GreaterThanThreshold",
                                            "LessThanThreshold", "LessThanOrEqualToThreshold"};
    static const char *const missing[] = {"breaching", "notBreaching", "ignore", "missing"};
    if (!name_ok(a->alarm_name, 255))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "AlarmName must be 1-255 characters");
    if (a->alarm_description && strlen(a->alarm_description) > 1024)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "AlarmDescription is longer than 1024 characters");
    enum assay_err err = cloudwatch_namespace_validate(a->ns, errbuf);
    if (err != ASSAY_OK)
        return err;
    if (!name_ok(a->metric_name, CLOUDWATCH_MAX_NAME_LEN))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "MetricName must be 1-%d characters", CLOUDWATCH_MAX_NAME_LEN);
    err = dimensions_validate("alarm", a->dimensions, a->n_dimensions, errbuf);
    if (err != ASSAY_OK)
        return err;
    if (!in_list(a->statistic, statistics, sizeof statistics / sizeof statistics[0]))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "Statistic must be SampleCount, Average, Sum, Minimum or Maximum");
    if (!(a->period_s == 10 || a->period_s == 20 || a->period_s == 30 ||
          (a->period_s >= 60 && a->period_s % 60 == 0)))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "Period must be 10, 20, 30 or a multiple of 60 seconds");
    /* Period x EvaluationPeriods: at most 7 days, and at most 1 day when the
     * period is under an hour (PutMetricAlarm's Period, aws/README.md). */
    int64_t span_s = (int64_t)a->evaluation_periods * a->period_s;
    if (a->evaluation_periods < 1 || span_s > 7LL * 24 * 3600 ||
        (a->period_s < 3600 && span_s > 24LL * 3600))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "EvaluationPeriods must be >= 1, and Period x EvaluationPeriods at "
                                "most 7 days (1 day for periods under an hour)");
    if (a->datapoints_to_alarm < 0 || a->datapoints_to_alarm > a->evaluation_periods)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "DatapointsToAlarm must be between 1 and EvaluationPeriods");
    if (!value_ok(a->threshold))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "Threshold must be finite");
    if (!in_list(a->comparison_operator, operators, sizeof operators / sizeof operators[0]))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "ComparisonOperator is not one of the static-threshold operators");
    if (a->treat_missing_data &&
        !in_list(a->treat_missing_data, missing, sizeof missing / sizeof missing[0]))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "TreatMissingData must be breaching, notBreaching, ignore or "
                                "missing");
    if (a->n_alarm_actions > 5 || a->n_ok_actions > 5)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "at most 5 actions per state are allowed");
    if (a->unit && !cloudwatch_unit_known(a->unit))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "Unit \"%s\" is not a unit",
                                a->unit);
    return ASSAY_OK;
}

/* -------------------------------------------------------------- building -- */

/* Epoch seconds as the SDKs send them: an integer, or milliseconds as a fraction. */
static json_t *epoch_seconds(int64_t ms)
{
    if (ms % 1000 == 0)
        return json_integer(ms / 1000);
    return json_real((double)ms / 1000.0);
}

static json_t *dimensions_json(const struct cloudwatch_dimension *d, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "Name", d[i].name, "Value", d[i].value));
    return arr;
}

static json_t *strings_json(const char *const *s, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_string(s[i]));
    return arr;
}

json_t *cloudwatch_datum_json(const struct cloudwatch_datum *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "MetricName", json_string(d->metric_name));
    if (d->n_dimensions > 0)
        json_object_set_new(o, "Dimensions", dimensions_json(d->dimensions, d->n_dimensions));
    if (d->timestamp_ms != 0)
        json_object_set_new(o, "Timestamp", epoch_seconds(d->timestamp_ms));
    switch (d->kind) {
    case CLOUDWATCH_DATUM_VALUE:
        json_object_set_new(o, "Value", json_real(d->value));
        break;
    case CLOUDWATCH_DATUM_VALUES: {
        json_t *values = json_array();
        for (size_t i = 0; i < d->n_values; i++)
            json_array_append_new(values, json_real(d->values[i]));
        json_object_set_new(o, "Values", values);
        if (d->counts) {
            json_t *counts = json_array();
            for (size_t i = 0; i < d->n_values; i++)
                json_array_append_new(counts, json_real(d->counts[i]));
            json_object_set_new(o, "Counts", counts);
        }
        break;
    }
    case CLOUDWATCH_DATUM_STATISTICS:
        json_object_set_new(o, "StatisticValues",
                            json_pack("{s:f, s:f, s:f, s:f}", "SampleCount", d->stats.sample_count,
                                      "Sum", d->stats.sum, "Minimum", d->stats.minimum, "Maximum",
                                      d->stats.maximum));
        break;
    }
    if (d->unit)
        json_object_set_new(o, "Unit", json_string(d->unit));
    if (d->storage_resolution)
        json_object_set_new(o, "StorageResolution", json_integer(d->storage_resolution));
    return o;
}

json_t *cloudwatch_put_metric_data_json(const char *ns, const struct cloudwatch_datum *datums,
                                        size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, cloudwatch_datum_json(&datums[i]));
    return json_pack("{s:s, s:o}", "Namespace", ns, "MetricData", arr);
}

json_t *cloudwatch_put_metric_alarm_json(const struct cloudwatch_alarm *a)
{
    json_t *o = json_object();
    json_object_set_new(o, "AlarmName", json_string(a->alarm_name));
    if (a->alarm_description)
        json_object_set_new(o, "AlarmDescription", json_string(a->alarm_description));
    json_object_set_new(o, "ActionsEnabled", json_boolean(a->actions_enabled));
    json_object_set_new(o, "OKActions", strings_json(a->ok_actions, a->n_ok_actions));
    json_object_set_new(o, "AlarmActions", strings_json(a->alarm_actions, a->n_alarm_actions));
    json_object_set_new(o, "MetricName", json_string(a->metric_name));
    json_object_set_new(o, "Namespace", json_string(a->ns));
    json_object_set_new(o, "Statistic", json_string(a->statistic));
    if (a->n_dimensions > 0)
        json_object_set_new(o, "Dimensions", dimensions_json(a->dimensions, a->n_dimensions));
    json_object_set_new(o, "Period", json_integer(a->period_s));
    if (a->unit)
        json_object_set_new(o, "Unit", json_string(a->unit));
    json_object_set_new(o, "EvaluationPeriods", json_integer(a->evaluation_periods));
    if (a->datapoints_to_alarm > 0)
        json_object_set_new(o, "DatapointsToAlarm", json_integer(a->datapoints_to_alarm));
    json_object_set_new(o, "Threshold", json_real(a->threshold));
    json_object_set_new(o, "ComparisonOperator", json_string(a->comparison_operator));
    if (a->treat_missing_data)
        json_object_set_new(o, "TreatMissingData", json_string(a->treat_missing_data));
    return o;
}

json_t *cloudwatch_describe_alarms_json(const char *const *names, size_t n, const char *next_token,
                                        int max_records)
{
    json_t *o = json_object();
    if (n > 0)
        json_object_set_new(o, "AlarmNames", strings_json(names, n));
    if (max_records > 0)
        json_object_set_new(o, "MaxRecords", json_integer(max_records));
    if (next_token)
        json_object_set_new(o, "NextToken", json_string(next_token));
    return o;
}

json_t *cloudwatch_get_metric_data_json(const struct cloudwatch_metric_query *queries, size_t n,
                                        int64_t start_ms, int64_t end_ms, const char *scan_by,
                                        const char *next_token, int max_datapoints)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct cloudwatch_metric_query *q = &queries[i];
        json_t *metric = json_pack("{s:s, s:s}", "Namespace", q->ns, "MetricName", q->metric_name);
        if (q->n_dimensions > 0)
            json_object_set_new(metric, "Dimensions",
                                dimensions_json(q->dimensions, q->n_dimensions));
        json_t *stat = json_pack("{s:o, s:I, s:s}", "Metric", metric, "Period",
                                 (json_int_t)q->period_s, "Stat", q->stat);
        if (q->unit)
            json_object_set_new(stat, "Unit", json_string(q->unit));
        json_t *query = json_pack("{s:s, s:o}", "Id", q->id, "MetricStat", stat);
        if (q->label)
            json_object_set_new(query, "Label", json_string(q->label));
        json_object_set_new(query, "ReturnData", json_true());
        json_array_append_new(arr, query);
    }
    json_t *o = json_pack("{s:o, s:o, s:o}", "MetricDataQueries", arr, "StartTime",
                          epoch_seconds(start_ms), "EndTime", epoch_seconds(end_ms));
    if (next_token)
        json_object_set_new(o, "NextToken", json_string(next_token));
    if (scan_by)
        json_object_set_new(o, "ScanBy", json_string(scan_by));
    if (max_datapoints > 0)
        json_object_set_new(o, "MaxDatapoints", json_integer(max_datapoints));
    return o;
}

/* ------------------------------------------------------------- encoding -- */

/*
 * A double as JavaScript's Number#toString writes it (ECMA-262
 * Number::toString): the fewest digits that read back as the same double,
 * plain between 1e-7 and 1e21, else exponent form ("1e-7", "1.5e+21"). The
 * SDKs for JavaScript serialise numbers so; writing them the same way makes
 * assay's bodies byte-identical to theirs (the wire cross-check relies on it).
 */
static void append_js_number(struct buf *out, double v)
{
    if (v == 0) {
        buf_append_char(out, '0');
        return;
    }
    if (v < 0) {
        buf_append_char(out, '-');
        v = -v;
    }
    char tmp[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* tmp is "d.ddde[+-]xx": the digits without the point, and the exponent. */
    char digits[24];
    int k = 0;
    const char *p = tmp;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    digits[k] = '\0';
    int n = atoi(p + 1) + 1; /* the decimal point sits after n digits */
    if (k <= n && n <= 21) {
        buf_append(out, digits, (size_t)k);
        for (int i = k; i < n; i++)
            buf_append_char(out, '0');
    } else if (0 < n && n <= 21) {
        buf_append(out, digits, (size_t)n);
        buf_append_char(out, '.');
        buf_append(out, digits + n, (size_t)(k - n));
    } else if (-6 < n && n <= 0) {
        buf_append_str(out, "0.");
        for (int i = 0; i < -n; i++)
            buf_append_char(out, '0');
        buf_append(out, digits, (size_t)k);
    } else {
        buf_append_char(out, digits[0]);
        if (k > 1) {
            buf_append_char(out, '.');
            buf_append(out, digits + 1, (size_t)(k - 1));
        }
        buf_appendf(out, "e%c%d", n - 1 < 0 ? '-' : '+', n - 1 < 0 ? 1 - n : n - 1);
    }
}

static void append_json_string(struct buf *out, const char *s, size_t n)
{
    /* jansson's escaping (", \, control characters) matches JSON.stringify's
     * for the text assay sends; UTF-8 passes through. */
    json_t *str = json_stringn_nocheck(s, n);
    size_t len = json_dumpb(str, NULL, 0, JSON_ENCODE_ANY);
    buf_reserve(out, len);
    json_dumpb(str, out->data + out->len, len, JSON_ENCODE_ANY);
    out->len += len;
    out->data[out->len] = '\0';
    json_decref(str);
}

static void append_json(struct buf *out, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *member;
        int first = 1;
        buf_append_char(out, '{');
        json_object_foreach((json_t *)v, key, member)
        {
            if (!first)
                buf_append_char(out, ',');
            first = 0;
            append_json_string(out, key, strlen(key));
            buf_append_char(out, ':');
            append_json(out, member);
        }
        buf_append_char(out, '}');
        break;
    }
    case JSON_ARRAY:
        buf_append_char(out, '[');
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i)
                buf_append_char(out, ',');
            append_json(out, json_array_get(v, i));
        }
        buf_append_char(out, ']');
        break;
    case JSON_STRING:
        append_json_string(out, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER:
        buf_appendf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        append_js_number(out, json_real_value(v));
        break;
    case JSON_TRUE:
        buf_append_str(out, "true");
        break;
    case JSON_FALSE:
        buf_append_str(out, "false");
        break;
    case JSON_NULL:
        buf_append_str(out, "null");
        break;
    }
}

void cloudwatch_json_encode(const json_t *v, struct buf *out)
{
    append_json(out, v);
}

static size_t json_size(const json_t *v)
{
    struct buf b = BUF_INIT;
    append_json(&b, v);
    size_t n = b.len;
    buf_clear(&b);
    return n;
}

/* -------------------------------------------------------------- batching -- */

void cloudwatch_batches_init(struct cloudwatch_batches *b)
{
    memset(b, 0, sizeof *b);
}

void cloudwatch_batches_clear(struct cloudwatch_batches *b)
{
    if (!b)
        return;
    free(b->datums);
    free(b->batches);
    cloudwatch_batches_init(b);
}

enum assay_err cloudwatch_batches_plan(const char *ns, const struct cloudwatch_datum *datums,
                                       size_t n, const struct cloudwatch_limits *limits,
                                       struct cloudwatch_batches *out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    size_t max_datums =
        limits && limits->max_datums ? limits->max_datums : CLOUDWATCH_MAX_DATUMS_PER_REQUEST;
    size_t max_bytes =
        limits && limits->max_bytes ? limits->max_bytes : CLOUDWATCH_MAX_REQUEST_BYTES;
    size_t max_values =
        limits && limits->max_values ? limits->max_values : CLOUDWATCH_MAX_VALUES_PER_DATUM;
    cloudwatch_batches_init(out);

    /* Slices: each datum, its Values/Counts cut into max_values pieces. */
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        cap += datums[i].kind == CLOUDWATCH_DATUM_VALUES && datums[i].n_values > max_values
                   ? (datums[i].n_values + max_values - 1) / max_values
                   : 1;
    out->datums = xcalloc(cap ? cap : 1, sizeof *out->datums);
    for (size_t i = 0; i < n; i++) {
        const struct cloudwatch_datum *d = &datums[i];
        if (d->kind != CLOUDWATCH_DATUM_VALUES || d->n_values <= max_values) {
            out->datums[out->n_datums++] = *d;
            continue;
        }
        for (size_t first = 0; first < d->n_values; first += max_values) {
            struct cloudwatch_datum s = *d;
            s.values = d->values + first;
            s.counts = d->counts ? d->counts + first : NULL;
            s.n_values = d->n_values - first < max_values ? d->n_values - first : max_values;
            out->datums[out->n_datums++] = s;
        }
    }

    /* The body is {"Namespace":..,"MetricData":[d1,d2,...]}: a fixed part, each
     * datum's own bytes, and a comma between datums. */
    json_t *empty = cloudwatch_put_metric_data_json(ns, NULL, 0);
    size_t base = json_size(empty);
    json_decref(empty);
    out->batches = xcalloc(out->n_datums ? out->n_datums : 1, sizeof *out->batches);
    struct cloudwatch_batch *cur = NULL;
    for (size_t i = 0; i < out->n_datums; i++) {
        json_t *dj = cloudwatch_datum_json(&out->datums[i]);
        size_t sz = json_size(dj);
        json_decref(dj);
        if (base + sz > max_bytes) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                   "one datum (%s) needs %zu bytes, more than a request's %zu",
                                   out->datums[i].metric_name, base + sz, max_bytes);
            goto out;
        }
        if (cur && cur->count < max_datums && cur->bytes + 1 + sz <= max_bytes) {
            cur->count++;
            cur->bytes += 1 + sz;
            continue;
        }
        cur = &out->batches[out->n_batches++];
        cur->first = i;
        cur->count = 1;
        cur->bytes = base + sz;
    }
out:
    if (err != ASSAY_OK)
        cloudwatch_batches_clear(out);
    return err;
}

/* ---------------------------------------------------------------- client -- */

struct cloudwatch *cloudwatch_new(const struct cloudwatch_options *opt, char *errbuf)
{
    struct cloudwatch *cw = NULL;
    if (!opt || !opt->transport || !opt->creds || !opt->region || !opt->region[0]) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "cloudwatch: transport, credentials and region are required");
        goto out;
    }
    char *endpoint = endpoint_base_new(opt->endpoint, "monitoring", opt->region, 1, errbuf);
    if (!endpoint)
        goto out;
    cw = xcalloc(1, sizeof *cw);
    cw->transport = opt->transport;
    cw->endpoint = endpoint;
    struct signer_options so = {
        .region = opt->region, .service = "monitoring", .creds = opt->creds, .sign_body = 1};
    cw->signer = signer_new(&so, errbuf);
    if (!cw->signer) {
        cloudwatch_free(cw);
        cw = NULL;
        goto out;
    }
    if (opt->retry.max_attempts > 0)
        cw->retry = opt->retry;
    else
        retry_policy_init(&cw->retry);
    uint64_t seed = opt->seed ? opt->seed : (uint64_t)clock_mono_ms(NULL) * 0x9E3779B97F4A7C15ULL;
    atomic_init(&cw->rng, seed);
    cw->timeout_ms = opt->timeout_ms;
    cw->sleep_ms = opt->sleep_ms;
    cw->sleep_ctx = opt->sleep_ctx;
out:
    return cw;
}

void cloudwatch_free(struct cloudwatch *cw)
{
    if (!cw)
        return;
    signer_free(cw->signer);
    free(cw->endpoint);
    free(cw);
}

const char *cloudwatch_endpoint(const struct cloudwatch *cw)
{
    return cw->endpoint;
}

/* splitmix64 over an atomic counter: thread-safe, deterministic from the seed. */
static uint64_t next_random(struct cloudwatch *cw)
{
    uint64_t z = atomic_fetch_add(&cw->rng, 0x9E3779B97F4A7C15ULL) + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void wait_ms(struct cloudwatch *cw, int64_t ms)
{
    if (cw->sleep_ms) {
        cw->sleep_ms(cw->sleep_ctx, ms);
        return;
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* gzip (RFC 1952) of n bytes into out; 0, or -1 when zlib fails. */
static int gzip_bytes(const char *in, size_t n, struct buf *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return -1;
    size_t bound = deflateBound(&zs, (uLong)n);
    buf_reset(out);
    buf_reserve(out, bound);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)bound;
    int rc = deflate(&zs, Z_FINISH);
    size_t produced = bound - zs.avail_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END)
        return -1;
    out->len = produced;
    out->data[produced] = '\0';
    return 0;
}

static int operation_ok(const char *op)
{
    if (!op || !op[0] || strlen(op) > MAX_OPERATION_LEN)
        return 0;
    for (const char *p = op; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

/* Fills req (initialised here) with the operation's signed-to-be request. */
static enum assay_err request_build(struct cloudwatch *cw, const char *operation,
                                    const json_t *input, struct http_request *req,
                                    struct cloudwatch_result *res, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    http_request_init(req, "POST", cw->endpoint);
    if (!operation_ok(operation)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                               "cloudwatch: \"%s\" is not an operation name",
                               operation ? operation : "");
        goto out;
    }
    struct buf json = BUF_INIT;
    append_json(&json, input);
    size_t len = json.len;
    res->body_bytes = len;
    if (len > CLOUDWATCH_MAX_REQUEST_BYTES) {
        buf_clear(&json);
        err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                               "cloudwatch %s: the body is %zu bytes, more than the %d allowed",
                               operation, len, CLOUDWATCH_MAX_REQUEST_BYTES);
        goto out;
    }
    if (len >= CLOUDWATCH_GZIP_MIN_BYTES) {
        if (gzip_bytes(json.data, len, &req->body) != 0) {
            buf_clear(&json);
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "cloudwatch %s: gzip failed",
                                   operation);
            goto out;
        }
        res->gzipped = 1;
    } else {
        buf_append(&req->body, json.data ? json.data : "", len);
    }
    buf_clear(&json);
    res->wire_bytes = req->body.len;

    char target[sizeof TARGET_PREFIX + MAX_OPERATION_LEN];
    snprintf(target, sizeof target, TARGET_PREFIX "%s", operation);
    char length[32];
    snprintf(length, sizeof length, "%zu", req->body.len);
    /* The headers the SDK sends and signs (aws/README.md). */
    http_request_header_set(req, "Content-Type", CONTENT_TYPE);
    http_request_header_set(req, "X-Amz-Target", target);
    http_request_header_set(req, "x-amzn-query-mode", "true");
    if (res->gzipped)
        http_request_header_set(req, "Content-Encoding", "gzip");
    http_request_header_set(req, "Content-Length", length);
    req->timeout_ms = cw->timeout_ms;
    signer_attach(cw->signer, req);
out:
    return err;
}

static void result_reset(struct cloudwatch_result *res)
{
    int attempts = res->attempts;
    int gz = res->gzipped;
    size_t body = res->body_bytes, wire = res->wire_bytes;
    memset(res, 0, sizeof *res);
    res->attempts = attempts;
    res->gzipped = gz;
    res->body_bytes = body;
    res->wire_bytes = wire;
}

/*
 * Reads one attempt's outcome into res; on a 2xx answer returns a new
 * reference to its JSON in *output (when not NULL).
 */
static void outcome_read(const char *operation, enum assay_err terr,
                         const struct http_response *resp, struct cloudwatch_result *res,
                         json_t **output)
{
    result_reset(res);
    res->attempts++;
    if (output)
        *output = NULL;
    if (terr != ASSAY_OK) {
        res->err = terr;
        res->retry = retry_classify(terr, 0, NULL);
        assay_errbuf_set(res->errbuf, terr, "cloudwatch %s: %s", operation, resp->errbuf);
        return;
    }
    res->status = resp->status;
    const char *rid = http_response_header(resp, "x-amzn-RequestId");
    snprintf(res->request_id, sizeof res->request_id, "%s", rid ? rid : "");
    if (resp->status >= 200 && resp->status < 300) {
        json_t *doc = NULL;
        size_t skip = 0;
        while (skip < resp->body.len && strchr(" \t\r\n", resp->body.data[skip]))
            skip++;
        if (skip == resp->body.len) {
            doc = json_object();
        } else {
            char detail[ASSAY_ERRBUF_SIZE];
            doc = jsonutil_parse(resp->body.data, resp->body.len, detail);
            if (!doc || !json_is_object(doc)) {
                json_decref(doc);
                res->err = ASSAY_ERR_PARSE;
                res->retry = RETRY_NONE;
                assay_errbuf_set(res->errbuf, ASSAY_ERR_PARSE,
                                 "cloudwatch %s: the answer is not a JSON object", operation);
                return;
            }
        }
        res->err = ASSAY_OK;
        res->retry = RETRY_NONE;
        if (output)
            *output = doc;
        else
            json_decref(doc);
        return;
    }
    http_response_error_code(resp, res->error_code, sizeof res->error_code);
    res->retry = retry_classify(ASSAY_OK, resp->status, res->error_code);
    res->err = cloudwatch_error_map(resp->status, res->error_code);
    const char *message = NULL;
    json_t *doc = resp->body.len ? json_loadb(resp->body.data, resp->body.len, 0, NULL) : NULL;
    if (doc) {
        message = jsonutil_str(doc, "message");
        if (!message)
            message = jsonutil_str(doc, "Message");
    }
    assay_errbuf_set(res->errbuf, res->err, "cloudwatch %s: HTTP %d %s%s%s", operation,
                     resp->status, res->error_code[0] ? res->error_code : "(no code)",
                     message ? ": " : "", message ? message : "");
    json_decref(doc);
}

struct pending {
    struct http_request req;
    struct http_response resp;
    struct cloudwatch_result res;
    char operation[MAX_OPERATION_LEN + 1];
    cloudwatch_done_fn done;
    void *ctx;
};

static void pending_done(void *ctx, enum assay_err err, struct http_request *req,
                         struct http_response *resp)
{
    (void)req;
    struct pending *p = ctx;
    json_t *output = NULL;
    outcome_read(p->operation, err, resp, &p->res, &output);
    p->done(p->ctx, &p->res, output);
    json_decref(output);
    http_request_clear(&p->req);
    http_response_clear(&p->resp);
    free(p);
}

enum assay_err cloudwatch_call_submit(struct cloudwatch *cw, const char *operation,
                                      const json_t *input, cloudwatch_done_fn done, void *ctx,
                                      char *errbuf)
{
    struct pending *p = xcalloc(1, sizeof *p);
    http_response_init(&p->resp);
    enum assay_err err = request_build(cw, operation, input, &p->req, &p->res, errbuf);
    if (err != ASSAY_OK)
        goto out;
    snprintf(p->operation, sizeof p->operation, "%s", operation);
    p->done = done;
    p->ctx = ctx;
    err = http_transport_submit(cw->transport, &p->req, &p->resp, pending_done, p);
    if (err != ASSAY_OK)
        assay_errbuf_set(errbuf, err, "cloudwatch %s: %s", operation, p->resp.errbuf);
out:
    if (err != ASSAY_OK) {
        http_request_clear(&p->req);
        http_response_clear(&p->resp);
        free(p);
    }
    return err;
}

enum assay_err cloudwatch_call(struct cloudwatch *cw, const char *operation, const json_t *input,
                               json_t **output, struct cloudwatch_result *res)
{
    struct http_request req;
    struct http_response resp;
    memset(res, 0, sizeof *res);
    http_response_init(&resp);
    if (output)
        *output = NULL;
    res->err = request_build(cw, operation, input, &req, res, res->errbuf);
    if (res->err != ASSAY_OK)
        goto out;
    for (;;) {
        http_response_reset(&resp);
        enum assay_err terr = http_transport_perform(cw->transport, &req, &resp);
        outcome_read(operation, terr, &resp, res, output);
        if (res->err == ASSAY_OK || !retry_should_retry(&cw->retry, res->attempts, res->retry))
            break;
        int64_t wait = retry_backoff_ms(&cw->retry, res->attempts, res->retry, next_random(cw));
        LOG_INFO("cloudwatch.retry", LOG_S("operation", operation), LOG_I("status", res->status),
                 LOG_S("code", res->error_code), LOG_I("attempt", res->attempts),
                 LOG_I("wait_ms", wait));
        wait_ms(cw, wait);
    }
    if (res->err != ASSAY_OK)
        LOG_WARN("cloudwatch.failed", LOG_S("operation", operation), LOG_I("status", res->status),
                 LOG_S("code", res->error_code), LOG_I("attempts", res->attempts),
                 LOG_S("request_id", res->request_id));
out:
    http_request_clear(&req);
    http_response_clear(&resp);
    return res->err;
}

/* ------------------------------------------------------------ operations -- */

static enum assay_err put_metric_data_input(struct cloudwatch *cw, const char *ns,
                                            const struct cloudwatch_datum *datums, size_t n,
                                            json_t **input, char *errbuf)
{
    *input = NULL;
    enum assay_err err = cloudwatch_namespace_validate(ns, errbuf);
    if (err != ASSAY_OK)
        return err;
    if (n == 0)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "MetricData is empty");
    if (n > CLOUDWATCH_MAX_DATUMS_PER_REQUEST)
        return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                "%zu datums in one request, at most %d are allowed", n,
                                CLOUDWATCH_MAX_DATUMS_PER_REQUEST);
    int64_t now_ms = http_transport_now_ms(cw->transport);
    for (size_t i = 0; i < n; i++) {
        err = cloudwatch_datum_validate(&datums[i], i, now_ms, errbuf);
        if (err != ASSAY_OK)
            return err;
    }
    *input = cloudwatch_put_metric_data_json(ns, datums, n);
    return ASSAY_OK;
}

enum assay_err cloudwatch_put_metric_data_submit(struct cloudwatch *cw, const char *ns,
                                                 const struct cloudwatch_datum *datums, size_t n,
                                                 cloudwatch_done_fn done, void *ctx, char *errbuf)
{
    json_t *input = NULL;
    enum assay_err err = put_metric_data_input(cw, ns, datums, n, &input, errbuf);
    if (err == ASSAY_OK)
        err = cloudwatch_call_submit(cw, "PutMetricData", input, done, ctx, errbuf);
    json_decref(input);
    return err;
}

enum assay_err cloudwatch_put_metric_data(struct cloudwatch *cw, const char *ns,
                                          const struct cloudwatch_datum *datums, size_t n,
                                          struct cloudwatch_result *res)
{
    json_t *input = NULL;
    memset(res, 0, sizeof *res);
    enum assay_err err = put_metric_data_input(cw, ns, datums, n, &input, res->errbuf);
    if (err != ASSAY_OK) {
        res->err = err;
        return err;
    }
    err = cloudwatch_call(cw, "PutMetricData", input, NULL, res);
    json_decref(input);
    return err;
}

enum assay_err cloudwatch_put_metric_data_all(struct cloudwatch *cw, const char *ns,
                                              const struct cloudwatch_datum *datums, size_t n,
                                              size_t *sent, struct cloudwatch_result *res)
{
    struct cloudwatch_batches plan;
    memset(res, 0, sizeof *res);
    if (sent)
        *sent = 0;
    res->err = cloudwatch_batches_plan(ns, datums, n, NULL, &plan, res->errbuf);
    for (size_t i = 0; res->err == ASSAY_OK && i < plan.n_batches; i++) {
        const struct cloudwatch_batch *b = &plan.batches[i];
        if (cloudwatch_put_metric_data(cw, ns, plan.datums + b->first, b->count, res) == ASSAY_OK &&
            sent)
            (*sent)++;
    }
    cloudwatch_batches_clear(&plan);
    return res->err;
}

enum assay_err cloudwatch_put_metric_alarm(struct cloudwatch *cw, const struct cloudwatch_alarm *a,
                                           struct cloudwatch_result *res)
{
    memset(res, 0, sizeof *res);
    res->err = cloudwatch_alarm_validate(a, res->errbuf);
    if (res->err != ASSAY_OK)
        return res->err;
    json_t *input = cloudwatch_put_metric_alarm_json(a);
    cloudwatch_call(cw, "PutMetricAlarm", input, NULL, res);
    json_decref(input);
    return res->err;
}

/* The NextToken of a page as a new string, or NULL at the end. */
static char *page_token(const json_t *page)
{
    const char *t = jsonutil_str(page, "NextToken");
    return t && t[0] ? xstrdup(t) : NULL;
}

enum assay_err cloudwatch_describe_alarms(struct cloudwatch *cw, const char *const *names, size_t n,
                                          json_t **alarms, struct cloudwatch_result *res)
{
    json_t *all = json_array();
    char *token = NULL;
    *alarms = NULL;
    memset(res, 0, sizeof *res);
    if (n > 100) {
        res->err = assay_errbuf_set(res->errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "DescribeAlarms takes at most 100 AlarmNames");
        goto out;
    }
    for (int page = 0; page < MAX_PAGES; page++) {
        json_t *input = cloudwatch_describe_alarms_json(names, n, token, 100);
        json_t *output = NULL;
        cloudwatch_call(cw, "DescribeAlarms", input, &output, res);
        json_decref(input);
        if (res->err != ASSAY_OK)
            goto out;
        json_t *got = json_object_get(output, "MetricAlarms");
        if (json_is_array(got))
            json_array_extend(all, got);
        free(token);
        token = page_token(output);
        json_decref(output);
        if (!token)
            break;
    }
out:
    free(token);
    if (res->err == ASSAY_OK)
        *alarms = all;
    else
        json_decref(all);
    return res->err;
}

/* Appends a page's MetricDataResults to merged, joining entries with the same Id. */
static void results_merge(json_t *merged, const json_t *page)
{
    const json_t *results = json_object_get(page, "MetricDataResults");
    size_t i;
    json_t *r;
    json_array_foreach(results, i, r)
    {
        const char *id = jsonutil_str(r, "Id");
        if (!id)
            continue;
        json_t *into = json_object_get(merged, id);
        if (!into) {
            json_object_set_new(merged, id, json_deep_copy(r));
            continue;
        }
        const char *keys[] = {"Timestamps", "Values"};
        for (size_t k = 0; k < 2; k++) {
            json_t *more = json_object_get(r, keys[k]);
            json_t *have = json_object_get(into, keys[k]);
            if (json_is_array(more) && json_is_array(have))
                json_array_extend(have, more);
            else if (json_is_array(more))
                json_object_set(into, keys[k], more);
        }
        json_t *status = json_object_get(r, "StatusCode");
        if (status)
            json_object_set(into, "StatusCode", status);
    }
}

enum assay_err cloudwatch_get_metric_data(struct cloudwatch *cw,
                                          const struct cloudwatch_metric_query *queries, size_t n,
                                          int64_t start_ms, int64_t end_ms, const char *scan_by,
                                          json_t **results, struct cloudwatch_result *res)
{
    json_t *merged = json_object();
    char *token = NULL;
    *results = NULL;
    memset(res, 0, sizeof *res);
    if (n == 0 || n > 500 || end_ms <= start_ms) {
        res->err = assay_errbuf_set(res->errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "GetMetricData takes 1-500 queries and StartTime < EndTime");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char where[32];
        snprintf(where, sizeof where, "MetricDataQueries[%zu]", i);
        if (!queries[i].id || !(queries[i].id[0] >= 'a' && queries[i].id[0] <= 'z') ||
            !queries[i].stat || !name_ok(queries[i].metric_name, CLOUDWATCH_MAX_NAME_LEN) ||
            !name_ok(queries[i].ns, CLOUDWATCH_MAX_NAME_LEN) || queries[i].period_s < 1) {
            res->err = assay_errbuf_set(res->errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                        "%s needs an Id (lowercase first), Namespace, MetricName, "
                                        "Stat and Period",
                                        where);
            goto out;
        }
        res->err =
            dimensions_validate(where, queries[i].dimensions, queries[i].n_dimensions, res->errbuf);
        if (res->err != ASSAY_OK)
            goto out;
    }
    for (int page = 0; page < MAX_PAGES; page++) {
        json_t *input =
            cloudwatch_get_metric_data_json(queries, n, start_ms, end_ms, scan_by, token, 0);
        json_t *output = NULL;
        cloudwatch_call(cw, "GetMetricData", input, &output, res);
        json_decref(input);
        if (res->err != ASSAY_OK)
            goto out;
        results_merge(merged, output);
        free(token);
        token = page_token(output);
        json_decref(output);
        if (!token)
            break;
    }
out:
    free(token);
    if (res->err == ASSAY_OK) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++) {
            json_t *r = json_object_get(merged, queries[i].id);
            if (r)
                json_array_append(arr, r);
        }
        *results = arr;
    }
    json_decref(merged);
    return res->err;
}
