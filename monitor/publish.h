/*
 * monitor/publish: the metrics of DESIGN.md's "Metrics" table, aggregated per
 * period and per metric and dimension set, then delivered to a sink:
 *   cloudwatch  closed periods become PutMetricData requests (batched with
 *               cloudwatch_batches_plan into as few as the limits allow),
 *               written to an outbox and sent oldest first; kept there across
 *               throttling and outages, dropped past CloudWatch's two-week
 *               window with a log line and a counter;
 *   emf         the same metrics as CloudWatch Embedded Metric Format lines
 *               (stdout or a file) for a log agent to ship;
 *   none        only the in-process snapshot (for /metrics).
 * The service's workers feed it one event at a time (publish_verdict_add,
 * publish_judge_call_add, ...); its own thread (publish_start) or the caller
 * (publish_tick, publish_deliver) closes periods and delivers.
 * docs/internals/PUBLISH.md describes the aggregation and the outbox protocol.
 *
 * Exactness: distribution metrics (scores, latencies, 0/1 outcomes) keep
 * every distinct value exactly, with its count, and go out as Values/Counts:
 * CloudWatch computes SampleCount = sum of Counts, Sum = sum of value x count,
 * Minimum / Maximum = the extreme values, so these equal the inputs' own
 * (Sum up to the order of floating-point additions). Scores are not quantised:
 * quantising to 0.01 would move Sum and Average by up to 0.005 per verdict. A
 * datum with more than 150 distinct values is cut into slices by
 * cloudwatch_batches_plan (CloudWatch merges datums of one series and
 * timestamp). Counter metrics (token counts, sample counts) go out as
 * StatisticValues, exact as well.
 *
 * Threading: every function may be called from any thread; one mutex guards
 * the aggregation, another the delivery (so an add never waits on the
 * network). Ownership: events are borrowed for the duration of the call;
 * publish_new borrows the options' cloudwatch client and clock and takes
 * ownership of the outbox.
 */
#ifndef ASSAY_MONITOR_PUBLISH_H
#define ASSAY_MONITOR_PUBLISH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/err.h"

struct cloudwatch;
struct clock;

/* --- The outbox: serialized PutMetricData inputs waiting for delivery --- */

struct publish_outbox_item {
    int64_t id;        /* the outbox's own key, increasing in enqueue order */
    int64_t period_ms; /* the oldest datum's timestamp (epoch ms) */
    char *body;        /* the PutMetricData input JSON; owned by the item */
    size_t len;
};

/* Frees the body; accepts NULL. */
void publish_outbox_item_clear(struct publish_outbox_item *it);

/*
 * A function table, so that the store's durable (SQLite) outbox can stand
 * behind it; publish_outbox_memory_new is the in-memory one. Every function
 * must be thread-safe. Contracts:
 *   enqueue  keeps a copy of body (len bytes) with its period; ASSAY_OK once
 *            it is kept (durably, for a durable outbox).
 *   peek     fills *out (a copy the caller clears) with the oldest item;
 *            ASSAY_ERR_NOT_FOUND when empty.
 *   ack      deletes item id (delivered); deleting a missing id is ASSAY_OK.
 *   drop_older_than  deletes items whose period_ms < cutoff_ms, adding their
 *            number to *dropped.
 *   count    items held.
 *   destroy  frees ctx (may be NULL).
 */
struct publish_outbox {
    enum assay_err (*enqueue)(void *ctx, const char *body, size_t len, int64_t period_ms);
    enum assay_err (*peek)(void *ctx, struct publish_outbox_item *out);
    enum assay_err (*ack)(void *ctx, int64_t id);
    enum assay_err (*drop_older_than)(void *ctx, int64_t cutoff_ms, size_t *dropped);
    size_t (*count)(void *ctx);
    void (*destroy)(void *ctx);
    void *ctx;
};

/* A new in-memory outbox (lost on exit). Free with publish_outbox_free. */
struct publish_outbox *publish_outbox_memory_new(void);
/* Calls destroy and frees the table; accepts NULL. */
void publish_outbox_free(struct publish_outbox *ob);

/* --- Options --- */

enum publish_sink { PUBLISH_SINK_NONE, PUBLISH_SINK_CLOUDWATCH, PUBLISH_SINK_EMF };

#define PUBLISH_MAX_TAGS 8
#define PUBLISH_DEFAULT_MAX_TAG_VALUES 20
/* Outbox items older than this are dropped: CloudWatch's two weeks, less a
 * margin so that a request sent at the edge is not refused on arrival. */
#define PUBLISH_MAX_AGE_MS (14LL * 24 * 3600 * 1000 - 10LL * 60 * 1000)

struct publish_options {
    enum publish_sink sink;
    const char *ns;   /* CloudWatch namespace; NULL: "Assay" */
    int64_t period_s; /* 1-60 or a multiple of 60; 0: 60 */
    /* Tag keys reported as dimensions of the token counts (metrics.tags), and
     * the bound on distinct values per key (metrics.max_tag_values). */
    const char *tags[PUBLISH_MAX_TAGS];
    size_t n_tags;
    size_t max_tag_values; /* 0: PUBLISH_DEFAULT_MAX_TAG_VALUES */
    /* PUBLISH_SINK_CLOUDWATCH */
    struct cloudwatch *cw;         /* borrowed; required */
    struct publish_outbox *outbox; /* ownership taken; NULL: a memory outbox */
    int64_t backoff_base_ms;       /* after a failed delivery; 0: 1,000 */
    int64_t backoff_max_ms;        /* 0: 300,000 */
    /* PUBLISH_SINK_EMF: emf_out when set (borrowed), else emf_path ("-" or
     * NULL: stdout; else appended to) */
    FILE *emf_out;
    const char *emf_path;
    const struct clock *clock; /* NULL: the system clock */
    int64_t tick_ms;           /* publish_start's loop interval; 0: 1,000 */
    uint64_t seed;             /* backoff jitter; 0: from the clock */
};

void publish_options_init(struct publish_options *o);

/*
 * Reads the "metrics" section of the config (NULL: the defaults) into o:
 * sink, namespace, period_s, emf_path, tags, max_tag_values. Strings are
 * borrowed from metrics, which must outlive o. ASSAY_ERR_CONFIG with the key
 * in errbuf for a wrong type or value; o's cw, outbox and clock are left as
 * they were.
 */
enum assay_err publish_options_from_json(struct publish_options *o, const json_t *metrics,
                                         char *errbuf);

/* --- The publisher --- */

struct publish;

/* Returns a new publisher, or NULL with errbuf (bad namespace or period, EMF
 * file that cannot be opened, cloudwatch sink without a client). */
struct publish *publish_new(const struct publish_options *o, char *errbuf);
/* Stops (publish_stop) and frees; accepts NULL. Undelivered outbox items stay
 * in a durable outbox; a memory outbox loses them. */
void publish_free(struct publish *p);

/* --- Events (thread-safe; strings borrowed; ts_ms 0 means now) --- */

struct publish_tag {
    const char *key;
    const char *value;
};

struct publish_verdict {
    const char *app;
    const char *rubric;
    const char *model_id; /* NULL or "": ModelId left out */
    double score;         /* [0, 1] */
    int pass;             /* 1, 0, or -1 when the rubric has no pass mark */
    int in_alarm;         /* the series' detector state after it: 1, 0, or -1 unknown */
    int64_t ts_ms;
};

/* QualityScore, QualityPass (when pass >= 0) and, with in_alarm >= 0, the
 * series' QualityRegression state. ASSAY_ERR_INVALID_ARGUMENT for a missing
 * app or rubric or a score that is not finite. */
enum assay_err publish_verdict_add(struct publish *p, const struct publish_verdict *v);
/* The detector's state for a series (raised, cleared, rebaselined): the
 * period's QualityRegression is 1 when the series was in alarm at any moment
 * of it. */
enum assay_err publish_regression_set(struct publish *p, const char *app, const char *rubric,
                                      const char *model_id, int in_alarm, int64_t ts_ms);

enum publish_outcome {
    PUBLISH_CALL_OK,
    PUBLISH_CALL_THROTTLED,
    PUBLISH_CALL_CLIENT_ERROR,
    PUBLISH_CALL_SERVER_ERROR
};

struct publish_judge_call {
    const char *judge_model_id;
    const char *app;
    const struct publish_tag *tags; /* the sample's tags */
    size_t n_tags;
    enum publish_outcome outcome;
    double latency_ms;
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t ts_ms;
};

/* One judge attempt: JudgeInvocations (1), JudgeInvocationLatency, the three
 * error metrics (1 or 0 each, so Sum counts them and Average is the rate),
 * and the token counts per JudgeModelId and App and per configured tag. */
enum assay_err publish_judge_call_add(struct publish *p, const struct publish_judge_call *c);

/* SamplesReceived / SamplesJudged / SamplesDropped for app (counts >= 0;
 * zeros add nothing). */
enum assay_err publish_samples_add(struct publish *p, const char *app, int64_t received,
                                   int64_t judged, int64_t dropped, int64_t ts_ms);

/* GoldenSetScore and, with regression >= 0, GoldenSetRegression. */
enum assay_err publish_golden_add(struct publish *p, const char *dataset, const char *rubric,
                                  const char *target_model_id, double score, int regression,
                                  int64_t ts_ms);
/* JudgeAgreement (agreement in [0, 1]) per Dataset, Rubric, JudgeModelId. */
enum assay_err publish_agreement_add(struct publish *p, const char *dataset, const char *rubric,
                                     const char *judge_model_id, double agreement, int64_t ts_ms);

/* --- Periods and delivery --- */

/*
 * Closes every period that ended at or before now_ms (all periods when
 * flush_all, for shutdown) and hands them to the sink: cloudwatch enqueues
 * the planned requests in the outbox, emf writes the lines, none drops them
 * (the snapshot already has them). ASSAY_OK, or the outbox's / the file's
 * error; the closed aggregates are gone either way (logged).
 */
enum assay_err publish_tick(struct publish *p, int64_t now_ms, int flush_all);

/*
 * Delivers outbox items, oldest first, until the outbox is empty, a request
 * fails (the item stays; the next attempt waits a capped exponential backoff
 * with full jitter) or max_requests were sent (0: no limit). Items older
 * than PUBLISH_MAX_AGE_MS are dropped first (counted, logged). An item is
 * acked only after CloudWatch answered 200; one that CloudWatch refuses as
 * invalid is dropped (it would never succeed; counted and logged). A timed-out
 * request is sent again: the one case where a datum may arrive twice.
 * Blocking; returns ASSAY_OK, ASSAY_ERR_BUSY while backing off, or the
 * failing request's error.
 */
enum assay_err publish_deliver(struct publish *p, int64_t now_ms, size_t max_requests);

/* Starts the background thread (tick + deliver every tick_ms). */
enum assay_err publish_start(struct publish *p, char *errbuf);
/*
 * Stops the thread (if started), flushes every open period into the sink and
 * tries to deliver what the outbox holds until deadline_ms (monotonic ms of
 * the clock; 0: one pass). Idempotent.
 */
void publish_stop(struct publish *p, int64_t deadline_ms);

/* --- Introspection --- */

struct publish_counters {
    uint64_t events;           /* events added */
    uint64_t datums;           /* datums produced by closed periods */
    uint64_t batches_enqueued; /* outbox items written */
    uint64_t requests_sent;    /* PutMetricData requests answered 200 */
    uint64_t requests_failed;  /* attempts that failed (item kept) */
    uint64_t batches_expired;  /* dropped past the two-week window */
    uint64_t batches_rejected; /* refused by CloudWatch as invalid, dropped */
    uint64_t datums_invalid;   /* refused by validation before enqueue */
    uint64_t emf_lines;
    uint64_t tag_values_other; /* tag values reported as "other" */
};

void publish_counters_get(struct publish *p, struct publish_counters *out);

/*
 * A new JSON object for /metrics: {"series": [{"metric", "unit",
 * "dimensions": {name: value}, "count", "sum", "min", "max"}], "counters":
 * {...}} with every series' totals since start (open periods included).
 */
json_t *publish_snapshot_json(struct publish *p);

/* The start of the period holding ts_ms (aligned to wall-clock multiples of
 * period_s since the epoch). */
int64_t publish_period_start_ms(int64_t ts_ms, int64_t period_s);

/* --- Test seam: the datums of the periods closed by the last tick --- */

/* When set, called by publish_tick (on its thread, no lock held) with each
 * planned PutMetricData input (borrowed, valid during the call), whatever the
 * sink, before the sink gets it. Set it before events flow. */
typedef void (*publish_observe_fn)(void *ctx, const json_t *request);
void publish_observe_set(struct publish *p, publish_observe_fn fn, void *ctx);

#endif
