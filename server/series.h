/*
 * server/series: the service's series registry (DESIGN.md "GET /v1/series").
 * One series per app x rubric x model_id (model_id "" when the sample names
 * none), each with a monitor/detector, the rubric version (SHA-256 of the
 * rubric's file) and the judge model its scores came from. The worker hands
 * every finished job to series_job_complete, which counts a scored verdict
 * into its series and writes the series' new state (and an alarm-history
 * event, if any) in the verdict's own transaction (store_job_complete), so a
 * verdict is counted exactly once, across crashes too. Detector state is
 * restored from the store at a series' first use after a start: no new
 * warm-up after a restart.
 *
 * A verdict whose rubric version or judge model differs from the series'
 * restarts the baseline (an event "rebaseline" in the alarm history) instead
 * of reporting the judge's change as a change of quality. POST
 * /v1/series/rebaseline does the same on request (series_rebaseline).
 *
 * After a commit: QualityRegression through monitor/publish (the verdict's
 * in_alarm, given back to the worker; publish_regression_set on a rebaseline
 * that ends an alarm) and notify_alarm_post on a raise or a clear.
 *
 * The stored state is a JSON object {"version": 1, "detector": {...},
 * "since_ms": ..., "alarm": {the last raise, or null}}; series_json turns a
 * stored row into the API's object.
 *
 * Threading: one registry lock serialises every update (the worker's
 * completions and rebaselines) and is held across the store commit, so the
 * in-memory detector always equals the committed one. series_json is pure.
 * Ownership: options are borrowed and must outlive the registry.
 */
#ifndef ASSAY_SERVER_SERIES_H
#define ASSAY_SERVER_SERIES_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"

struct notify;
struct publish;
struct store;
struct store_series;
struct store_verdict;

struct series_options {
    struct store *store;       /* required */
    const json_t *monitor;     /* the config's "monitor" section, or NULL (its "detector") */
    struct publish *publish;   /* may be NULL */
    struct notify *notify;     /* may be NULL */
    const struct clock *clock; /* wall time of events; NULL: the system clock */
};

struct series;

/*
 * A new registry. ASSAY_ERR_CONFIG with the key in errbuf when
 * monitor.detector is not valid.
 */
enum assay_err series_new(const struct series_options *o, struct series **out, char *errbuf);
/* Accepts NULL. */
void series_free(struct series *reg);

/*
 * How many series the registry holds in each detector state, indexed by enum
 * detector_state (warming up, ok, alarm), for /metrics. Thread-safe.
 */
void series_count_by_state(struct series *reg, int64_t counts[3]);

/*
 * Loads every stored series into the registry (start-up) and tells the
 * publisher each one's QualityRegression state, so that a series in alarm
 * keeps reporting 1 after a restart before its next verdict. ASSAY_OK, or
 * the store's error (the registry then loads series at their first use).
 */
enum assay_err series_restore_all(struct series *reg, char *errbuf);

/* One finished job (borrowed). */
struct series_job {
    int64_t job_id;
    const char *app;
    const char *rubric;
    const char *model_id;                /* NULL or "" when the sample names none */
    const struct store_verdict *verdict; /* required; unscorable ones never count */
};

/* What series_job_complete did. */
struct series_outcome {
    int in_alarm;     /* the series' state after the verdict: 1, 0; -1 not counted */
    bool changed;     /* an alarm was raised or cleared by this verdict */
    bool rebaselined; /* the rubric version or judge model changed */
};

/*
 * store_job_complete for j, with the series update of a scored verdict in
 * the same transaction. Returns store_job_complete's result and *recorded;
 * when the verdict was not recorded (or on an error) the series is left as
 * committed before. *out (may be NULL) says what happened.
 */
enum assay_err series_job_complete(struct series *reg, const struct series_job *j, int *recorded,
                                   struct series_outcome *out, char *errbuf);

/* Which series a rebaseline applies to: NULL fields match any. */
struct series_filter {
    const char *app;
    const char *rubric;
    const char *model_id;
    /* Apps the caller may touch (NULL: every app). */
    bool (*allows)(void *ctx, const char *app);
    void *allows_ctx;
};

/*
 * Restarts the baseline of every stored series matching f: durable on
 * return, one "rebaseline" event each in the alarm history. *affected gets
 * a new JSON array of the series (series_json) as they are now.
 */
enum assay_err series_rebaseline(struct series *reg, const struct series_filter *f,
                                 json_t **affected, char *errbuf);

/*
 * The API's object for a stored series (GET /v1/series): app, rubric,
 * model_id, state, kind, count, since (index) and since_time, baseline_mean,
 * baseline_sd, current_mean, statistic, threshold, p_value (of the alarm in
 * force, else null), alarm (the last raise, or null), rubric_version,
 * judge_model, updated. A new object; a state it cannot read gives state
 * "unknown".
 */
json_t *series_json(const struct store_series *x);

#endif
