/*
 * tests/sdk-check/cloudwatch_gen: the C half of the CloudWatch wire
 * cross-check (cloudwatch_check.js). Reads cases in the AWS SDK's input shape
 * (timestamps as epoch milliseconds) from a JSON file and sends each with
 * assay's aws/cloudwatch client to URL, signing at the fixed time NOW_MS with
 * the test credentials, so that the JS half can compare what arrives with
 * what @aws-sdk/client-cloudwatch sends for the same inputs.
 *
 * Usage: cloudwatch_gen URL NOW_MS CASES.json. Exit 0 when every call got a
 * 2xx answer.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/jsonutil.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

/* Everything a case's views point into, freed after the call. */
struct arena {
    void **p;
    size_t n, cap;
};

static void *arena_alloc(struct arena *a, size_t n)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->p = xrealloc(a->p, a->cap * sizeof *a->p);
    }
    return a->p[a->n++] = xcalloc(1, n ? n : 1);
}

static void arena_clear(struct arena *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->p[i]);
    free(a->p);
    memset(a, 0, sizeof *a);
}

static const struct cloudwatch_dimension *dims_of(struct arena *a, const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    struct cloudwatch_dimension *d = arena_alloc(a, *n * sizeof *d);
    for (size_t i = 0; i < *n; i++) {
        d[i].name = jsonutil_str(json_array_get(arr, i), "Name");
        d[i].value = jsonutil_str(json_array_get(arr, i), "Value");
    }
    return d;
}

static const double *doubles_of(struct arena *a, const json_t *arr)
{
    size_t n = json_array_size(arr);
    double *v = arena_alloc(a, n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_number_value(json_array_get(arr, i));
    return v;
}

static const char *const *strings_of(struct arena *a, const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    const char **s = arena_alloc(a, *n * sizeof *s);
    for (size_t i = 0; i < *n; i++)
        s[i] = json_string_value(json_array_get(arr, i));
    return s;
}

static int64_t int_of(const json_t *o, const char *key)
{
    return (int64_t)json_number_value(json_object_get(o, key));
}

static enum assay_err put_metric_data(struct cloudwatch *cw, const json_t *in, struct arena *a,
                                      struct cloudwatch_result *res)
{
    const json_t *md = json_object_get(in, "MetricData");
    size_t n = json_array_size(md);
    struct cloudwatch_datum *d = arena_alloc(a, n * sizeof *d);
    for (size_t i = 0; i < n; i++) {
        const json_t *m = json_array_get(md, i);
        d[i].metric_name = jsonutil_str(m, "MetricName");
        d[i].dimensions = dims_of(a, json_object_get(m, "Dimensions"), &d[i].n_dimensions);
        d[i].timestamp_ms = int_of(m, "Timestamp");
        d[i].unit = jsonutil_str(m, "Unit");
        d[i].storage_resolution = (int)int_of(m, "StorageResolution");
        const json_t *sv = json_object_get(m, "StatisticValues");
        if (json_object_get(m, "Values")) {
            d[i].kind = CLOUDWATCH_DATUM_VALUES;
            d[i].values = doubles_of(a, json_object_get(m, "Values"));
            d[i].n_values = json_array_size(json_object_get(m, "Values"));
            if (json_object_get(m, "Counts"))
                d[i].counts = doubles_of(a, json_object_get(m, "Counts"));
        } else if (sv) {
            d[i].kind = CLOUDWATCH_DATUM_STATISTICS;
            d[i].stats.sample_count = json_number_value(json_object_get(sv, "SampleCount"));
            d[i].stats.sum = json_number_value(json_object_get(sv, "Sum"));
            d[i].stats.minimum = json_number_value(json_object_get(sv, "Minimum"));
            d[i].stats.maximum = json_number_value(json_object_get(sv, "Maximum"));
        } else {
            d[i].kind = CLOUDWATCH_DATUM_VALUE;
            d[i].value = json_number_value(json_object_get(m, "Value"));
        }
    }
    return cloudwatch_put_metric_data(cw, jsonutil_str(in, "Namespace"), d, n, res);
}

static enum assay_err put_metric_alarm(struct cloudwatch *cw, const json_t *in, struct arena *a,
                                       struct cloudwatch_result *res)
{
    struct cloudwatch_alarm al = {
        .alarm_name = jsonutil_str(in, "AlarmName"),
        .alarm_description = jsonutil_str(in, "AlarmDescription"),
        .ns = jsonutil_str(in, "Namespace"),
        .metric_name = jsonutil_str(in, "MetricName"),
        .statistic = jsonutil_str(in, "Statistic"),
        .period_s = int_of(in, "Period"),
        .evaluation_periods = (int)int_of(in, "EvaluationPeriods"),
        .datapoints_to_alarm = (int)int_of(in, "DatapointsToAlarm"),
        .threshold = json_number_value(json_object_get(in, "Threshold")),
        .comparison_operator = jsonutil_str(in, "ComparisonOperator"),
        .treat_missing_data = jsonutil_str(in, "TreatMissingData"),
        .actions_enabled = json_is_true(json_object_get(in, "ActionsEnabled")),
        .unit = jsonutil_str(in, "Unit"),
    };
    al.dimensions = dims_of(a, json_object_get(in, "Dimensions"), &al.n_dimensions);
    al.alarm_actions = strings_of(a, json_object_get(in, "AlarmActions"), &al.n_alarm_actions);
    al.ok_actions = strings_of(a, json_object_get(in, "OKActions"), &al.n_ok_actions);
    return cloudwatch_put_metric_alarm(cw, &al, res);
}

static enum assay_err describe_alarms(struct cloudwatch *cw, const json_t *in, struct arena *a,
                                      struct cloudwatch_result *res)
{
    size_t n;
    const char *const *names = strings_of(a, json_object_get(in, "AlarmNames"), &n);
    json_t *alarms = NULL;
    enum assay_err err = cloudwatch_describe_alarms(cw, names, n, &alarms, res);
    json_decref(alarms);
    return err;
}

static enum assay_err get_metric_data(struct cloudwatch *cw, const json_t *in, struct arena *a,
                                      struct cloudwatch_result *res)
{
    const json_t *qs = json_object_get(in, "MetricDataQueries");
    size_t n = json_array_size(qs);
    struct cloudwatch_metric_query *q = arena_alloc(a, n * sizeof *q);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(qs, i);
        const json_t *ms = json_object_get(e, "MetricStat");
        const json_t *m = json_object_get(ms, "Metric");
        q[i].id = jsonutil_str(e, "Id");
        q[i].label = jsonutil_str(e, "Label");
        q[i].ns = jsonutil_str(m, "Namespace");
        q[i].metric_name = jsonutil_str(m, "MetricName");
        q[i].dimensions = dims_of(a, json_object_get(m, "Dimensions"), &q[i].n_dimensions);
        q[i].period_s = int_of(ms, "Period");
        q[i].stat = jsonutil_str(ms, "Stat");
        q[i].unit = jsonutil_str(ms, "Unit");
    }
    json_t *results = NULL;
    enum assay_err err =
        cloudwatch_get_metric_data(cw, q, n, int_of(in, "StartTime"), int_of(in, "EndTime"),
                                   jsonutil_str(in, "ScanBy"), &results, res);
    json_decref(results);
    return err;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cloudwatch_gen URL NOW_MS CASES.json\n");
        return 2;
    }
    int status = 1;
    volatile int64_t now_ms = strtoll(argv[2], NULL, 10);
    struct clock clk;
    clock_manual_init(&clk, &now_ms);
    struct http_transport_options to = {.clock = &clk};
    json_error_t jerr;
    json_t *cases = json_load_file(argv[3], 0, &jerr);
    struct http_transport *t = http_transport_new(&to, NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    struct creds_provider *p = creds_static_new(&c);
    creds_clear(&c);
    struct cloudwatch_options o = {
        .transport = t, .creds = p, .region = "us-east-1", .endpoint = argv[1]};
    o.retry.max_attempts = 1;
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct cloudwatch *cw = t ? cloudwatch_new(&o, errbuf) : NULL;
    if (!cases || !cw) {
        fprintf(stderr, "cloudwatch_gen: cannot start (%s)\n", cases ? errbuf : jerr.text);
        goto out;
    }
    status = 0;
    size_t i;
    json_t *k;
    json_array_foreach(cases, i, k)
    {
        const char *op = jsonutil_str(k, "op");
        const json_t *in = json_object_get(k, "input");
        struct arena a = {0};
        struct cloudwatch_result res;
        memset(&res, 0, sizeof res);
        enum assay_err err = ASSAY_ERR_INVALID_ARGUMENT;
        if (strcmp(op, "PutMetricData") == 0)
            err = put_metric_data(cw, in, &a, &res);
        else if (strcmp(op, "PutMetricAlarm") == 0)
            err = put_metric_alarm(cw, in, &a, &res);
        else if (strcmp(op, "DescribeAlarms") == 0)
            err = describe_alarms(cw, in, &a, &res);
        else if (strcmp(op, "GetMetricData") == 0)
            err = get_metric_data(cw, in, &a, &res);
        if (err != ASSAY_OK) {
            fprintf(stderr, "cloudwatch_gen: case %zu (%s): %s: %s\n", i, op, assay_err_name(err),
                    res.errbuf);
            status = 1;
        }
        arena_clear(&a);
    }
out:
    cloudwatch_free(cw);
    creds_provider_free(p);
    http_transport_free(t);
    json_decref(cases);
    return status;
}
