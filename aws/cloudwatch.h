/*
 * aws/cloudwatch: the Amazon CloudWatch client (PutMetricData, PutMetricAlarm,
 * DescribeAlarms, GetMetricData) over the shared transport (aws/http), signed
 * with SigV4 for the service "monitoring" (aws/signer). Called by
 * monitor/publish and by the alarms-as-configuration code.
 *
 * The wire protocol is the one the current AWS SDKs use (aws/README.md has
 * what was observed): AWS JSON 1.0, POST /, X-Amz-Target
 * GraniteServiceVersion20100801.<Operation>, x-amzn-query-mode: true,
 * timestamps as epoch seconds, error codes from x-amzn-query-error, bodies of
 * CLOUDWATCH_GZIP_MIN_BYTES and more gzipped and signed over the compressed
 * bytes.
 *
 * Limits: the service's per-request limits are in CLOUDWATCH_MAX_* below;
 * cloudwatch_batches_plan splits any number of datums into as few requests as
 * they allow, and every request is validated before it is sent, so a request
 * the service would refuse for its shape fails here with a detail naming the
 * datum and field.
 *
 * Retries: the blocking calls retry throttling, 5xx and network faults with
 * capped exponential backoff and full jitter (aws/retry), up to the policy's
 * attempts; invalid requests are never retried. The asynchronous _submit calls
 * make one attempt each (the transport has no timer to wait on without
 * blocking its thread): their caller decides about another attempt from
 * res->retry.
 *
 * Threading: one client may be used from any number of threads at once; the
 * blocking calls must not be made from a transport completion callback.
 * Completion callbacks run on the transport thread and must not block.
 * Ownership: the client borrows the transport and the credentials provider.
 * Request inputs (datums, alarms, names) are borrowed for the duration of the
 * call only: the body is built before the call returns.
 */
#ifndef ASSAY_AWS_CLOUDWATCH_H
#define ASSAY_AWS_CLOUDWATCH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/retry.h"
#include "common/buf.h"
#include "common/err.h"

struct creds_provider;
struct http_transport;

/* The service's limits (aws/README.md gives their sources). */
#define CLOUDWATCH_MAX_DATUMS_PER_REQUEST 1000
#define CLOUDWATCH_MAX_REQUEST_BYTES 1000000 /* "1 MB"; counted on the JSON before gzip */
#define CLOUDWATCH_MAX_DIMENSIONS 30
#define CLOUDWATCH_MAX_VALUES_PER_DATUM 150
#define CLOUDWATCH_MAX_NAME_LEN 255 /* metric name, namespace, dimension name */
#define CLOUDWATCH_MAX_DIMENSION_VALUE_LEN 1024
#define CLOUDWATCH_MAX_PAST_MS (14LL * 24 * 3600 * 1000) /* two weeks back */
#define CLOUDWATCH_MAX_FUTURE_MS (2LL * 3600 * 1000)     /* two hours ahead */
/* Bodies of this many bytes and more are sent gzipped, as the SDKs do. */
#define CLOUDWATCH_GZIP_MIN_BYTES 10240

/* --- Request shapes (views: every pointer is borrowed from the caller) --- */

struct cloudwatch_dimension {
    const char *name;
    const char *value;
};

struct cloudwatch_statistic_set {
    double sample_count;
    double sum;
    double minimum;
    double maximum;
};

enum cloudwatch_datum_kind {
    CLOUDWATCH_DATUM_VALUE,     /* one Value */
    CLOUDWATCH_DATUM_VALUES,    /* Values[] with Counts[] (NULL counts: each 1) */
    CLOUDWATCH_DATUM_STATISTICS /* StatisticValues */
};

struct cloudwatch_datum {
    const char *metric_name;
    const struct cloudwatch_dimension *dimensions;
    size_t n_dimensions;
    int64_t timestamp_ms; /* epoch ms; 0: none (CloudWatch uses the receipt time) */
    enum cloudwatch_datum_kind kind;
    double value;         /* CLOUDWATCH_DATUM_VALUE */
    const double *values; /* CLOUDWATCH_DATUM_VALUES */
    const double *counts; /* optional, n_values entries */
    size_t n_values;
    struct cloudwatch_statistic_set stats; /* CLOUDWATCH_DATUM_STATISTICS */
    const char *unit;                      /* NULL: omitted ("None" on the service side) */
    int storage_resolution;                /* 0: omitted (60); else 1 or 60 */
};

struct cloudwatch_alarm {
    const char *alarm_name;
    const char *alarm_description; /* optional */
    const char *ns;
    const char *metric_name;
    const struct cloudwatch_dimension *dimensions;
    size_t n_dimensions;
    const char *statistic; /* "Average", "Maximum", "Minimum", "Sum", "SampleCount" */
    int64_t period_s;
    int evaluation_periods;
    int datapoints_to_alarm; /* 0: omitted (= evaluation_periods) */
    double threshold;
    const char *comparison_operator;  /* "GreaterThanOrEqualToThreshold", ... */
    const char *treat_missing_data;   /* optional: "notBreaching", "breaching", ... */
    const char *const *alarm_actions; /* SNS topic ARNs */
    size_t n_alarm_actions;
    const char *const *ok_actions;
    size_t n_ok_actions;
    int actions_enabled; /* 1: true, 0: false */
    const char *unit;    /* optional */
};

struct cloudwatch_metric_query {
    const char *id; /* lowercase letter first, then letters, digits, '_' */
    const char *ns;
    const char *metric_name;
    const struct cloudwatch_dimension *dimensions;
    size_t n_dimensions;
    int64_t period_s;
    const char *stat;  /* "Sum", "Average", "SampleCount", "p90", ... */
    const char *unit;  /* optional */
    const char *label; /* optional */
};

/* --- Results --- */

struct cloudwatch_result {
    enum assay_err err;     /* ASSAY_OK on a 2xx answer */
    int status;             /* HTTP status of the last attempt; 0 if none arrived */
    char error_code[64];    /* AWS error code ("Throttling", "InvalidParameterValue"), or "" */
    char request_id[64];    /* x-amzn-RequestId of the last answer, or "" */
    enum retry_class retry; /* how the last outcome classifies */
    int attempts;           /* attempts made (HTTP sends, skew re-sends not counted) */
    int gzipped;            /* 1 when the body went out gzipped */
    size_t body_bytes;      /* JSON bytes before compression */
    size_t wire_bytes;      /* bytes sent */
    char errbuf[ASSAY_ERRBUF_SIZE]; /* detail; never a secret */
};

/*
 * Error mapping of an answer: 2xx -> ASSAY_OK; throttling -> ASSAY_ERR_BUSY;
 * InvalidParameterValue, InvalidParameterCombination, MissingParameter and
 * other client faults of the request's shape -> ASSAY_ERR_INVALID_ARGUMENT;
 * any other status -> ASSAY_ERR_HTTP_STATUS. Transport failures keep the
 * transport's code (ASSAY_ERR_TIMEOUT, ASSAY_ERR_TRANSPORT, ...).
 */
enum assay_err cloudwatch_error_map(int status, const char *error_code);

/* --- The client --- */

struct cloudwatch_options {
    struct http_transport *transport; /* borrowed, required */
    struct creds_provider *creds;     /* borrowed, required */
    const char *region;               /* required */
    const char *endpoint;             /* NULL: https://monitoring.{region}.amazonaws.com; else an
                                         absolute URL (AWS_ENDPOINT_URL_CLOUDWATCH), path "/" */
    struct retry_policy retry;        /* max_attempts 0: retry_policy_init's defaults */
    uint64_t seed;                    /* jitter generator seed; 0: from the clock */
    int64_t timeout_ms;               /* per attempt; 0: the transport's default */
    /* Test seam: how the blocking calls wait between attempts; NULL: nanosleep. */
    void (*sleep_ms)(void *ctx, int64_t ms);
    void *sleep_ctx;
};

struct cloudwatch;

/* Returns a new client, or NULL with errbuf when a required option is missing
 * or the endpoint is not an absolute http(s) URL. */
struct cloudwatch *cloudwatch_new(const struct cloudwatch_options *opt, char *errbuf);
/* Frees; accepts NULL. Submitted calls must have completed first. */
void cloudwatch_free(struct cloudwatch *cw);
/* The endpoint in use (borrowed). */
const char *cloudwatch_endpoint(const struct cloudwatch *cw);

/*
 * Completion of an asynchronous call, on the transport thread: res (borrowed)
 * says how it ended; output is the answer's JSON (borrowed, valid during the
 * call; NULL unless res->err is ASSAY_OK and the answer had a body).
 */
typedef void (*cloudwatch_done_fn)(void *ctx, const struct cloudwatch_result *res,
                                   const json_t *output);

/*
 * Any operation: input (borrowed) is the operation's JSON input; one attempt,
 * asynchronously. On ASSAY_OK done is called exactly once; on an error return
 * (detail in errbuf) it is never called.
 */
enum assay_err cloudwatch_call_submit(struct cloudwatch *cw, const char *operation,
                                      const json_t *input, cloudwatch_done_fn done, void *ctx,
                                      char *errbuf);
/*
 * Any operation, blocking, with retries. On success *output (when not NULL)
 * receives a new reference to the answer's JSON (an empty object for an empty
 * body). Returns res->err; res may not be NULL.
 */
enum assay_err cloudwatch_call(struct cloudwatch *cw, const char *operation, const json_t *input,
                               json_t **output, struct cloudwatch_result *res);

/* --- Request building and validation (pure) --- */

/* 1 when u is one of CloudWatch's StandardUnit names ("Count", "Milliseconds", ...). */
int cloudwatch_unit_known(const char *u);

/*
 * Checks one datum against the service's limits, with now_ms as the service's
 * clock for the timestamp window. ASSAY_OK, or ASSAY_ERR_INVALID_ARGUMENT with
 * the field in errbuf (prefixed "MetricData[index]").
 */
enum assay_err cloudwatch_datum_validate(const struct cloudwatch_datum *d, size_t index,
                                         int64_t now_ms, char *errbuf);
/* Checks a namespace: 1-255 printable ASCII characters, not starting with ':' nor "AWS/". */
enum assay_err cloudwatch_namespace_validate(const char *ns, char *errbuf);
enum assay_err cloudwatch_alarm_validate(const struct cloudwatch_alarm *a, char *errbuf);

/* The JSON input of one request, as a new reference (no validation). */
json_t *cloudwatch_put_metric_data_json(const char *ns, const struct cloudwatch_datum *datums,
                                        size_t n);
json_t *cloudwatch_datum_json(const struct cloudwatch_datum *d);
json_t *cloudwatch_put_metric_alarm_json(const struct cloudwatch_alarm *a);
/* names may be NULL when n is 0; next_token and max_records (0) are optional. */
json_t *cloudwatch_describe_alarms_json(const char *const *names, size_t n, const char *next_token,
                                        int max_records);
json_t *cloudwatch_get_metric_data_json(const struct cloudwatch_metric_query *queries, size_t n,
                                        int64_t start_ms, int64_t end_ms, const char *scan_by,
                                        const char *next_token, int max_datapoints);

/*
 * Appends v's compact JSON to out as the request body is written: members in
 * insertion order, reals as JavaScript writes numbers (shortest round-trip,
 * "1" for 1.0), so that bodies are byte-identical to the AWS SDK for
 * JavaScript's for the same input. Every byte count here is of this encoding.
 */
void cloudwatch_json_encode(const json_t *v, struct buf *out);

/* --- Batching (pure) --- */

struct cloudwatch_limits {
    size_t max_datums; /* per request; 0: CLOUDWATCH_MAX_DATUMS_PER_REQUEST */
    size_t max_bytes;  /* JSON body per request; 0: CLOUDWATCH_MAX_REQUEST_BYTES */
    size_t max_values; /* per datum; 0: CLOUDWATCH_MAX_VALUES_PER_DATUM */
};

struct cloudwatch_batch {
    size_t first; /* index into cloudwatch_batches.datums */
    size_t count;
    size_t bytes; /* the request's JSON body, exactly */
};

struct cloudwatch_batches {
    struct cloudwatch_datum *datums; /* views into the caller's datums; a datum with
                                        more values than max_values appears as several
                                        slices of its Values/Counts */
    size_t n_datums;
    struct cloudwatch_batch *batches;
    size_t n_batches;
};

void cloudwatch_batches_init(struct cloudwatch_batches *b);
/* Frees the arrays (not what they point to); accepts NULL. */
void cloudwatch_batches_clear(struct cloudwatch_batches *b);

/*
 * Splits datums (borrowed; they must outlive *out) into the fewest requests
 * that keep their order and respect the limits (NULL: the service's):
 * consecutive requests are filled greedily, which for an order-preserving
 * split is the minimum. Fails with ASSAY_ERR_TOO_LARGE when one datum alone
 * exceeds max_bytes; *out is then empty.
 */
enum assay_err cloudwatch_batches_plan(const char *ns, const struct cloudwatch_datum *datums,
                                       size_t n, const struct cloudwatch_limits *limits,
                                       struct cloudwatch_batches *out, char *errbuf);

/* --- Operations --- */

/*
 * PutMetricData for datums that fit one request (validate first; use
 * cloudwatch_batches_plan for more): ASSAY_ERR_INVALID_ARGUMENT or
 * ASSAY_ERR_TOO_LARGE before anything is sent when they do not.
 */
enum assay_err cloudwatch_put_metric_data_submit(struct cloudwatch *cw, const char *ns,
                                                 const struct cloudwatch_datum *datums, size_t n,
                                                 cloudwatch_done_fn done, void *ctx, char *errbuf);
enum assay_err cloudwatch_put_metric_data(struct cloudwatch *cw, const char *ns,
                                          const struct cloudwatch_datum *datums, size_t n,
                                          struct cloudwatch_result *res);
/*
 * Any number of datums: plans the batches and sends them in order, blocking;
 * stops at the first request that fails for good. *sent (optional) receives
 * the number of requests that succeeded; res is the last request's result.
 */
enum assay_err cloudwatch_put_metric_data_all(struct cloudwatch *cw, const char *ns,
                                              const struct cloudwatch_datum *datums, size_t n,
                                              size_t *sent, struct cloudwatch_result *res);

/* PutMetricAlarm (create or update; idempotent on the service side). */
enum assay_err cloudwatch_put_metric_alarm(struct cloudwatch *cw, const struct cloudwatch_alarm *a,
                                           struct cloudwatch_result *res);

/*
 * DescribeAlarms by name, following NextToken to the end. *alarms receives a
 * new reference to the array of MetricAlarms of every page (the answer's
 * objects as they came).
 */
enum assay_err cloudwatch_describe_alarms(struct cloudwatch *cw, const char *const *names, size_t n,
                                          json_t **alarms, struct cloudwatch_result *res);

/*
 * GetMetricData over [start_ms, end_ms), following NextToken to the end.
 * *results receives a new reference to MetricDataResults with each Id's
 * Timestamps (epoch seconds) and Values of all pages joined, in the order
 * scan_by asks for ("TimestampAscending" / "TimestampDescending"; NULL: the
 * service's default).
 */
enum assay_err cloudwatch_get_metric_data(struct cloudwatch *cw,
                                          const struct cloudwatch_metric_query *queries, size_t n,
                                          int64_t start_ms, int64_t end_ms, const char *scan_by,
                                          json_t **results, struct cloudwatch_result *res);

#endif
