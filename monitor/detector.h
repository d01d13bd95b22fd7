/*
 * monitor/detector: one sequential drop detector per series of scores
 * (app x rubric x model_id). It sees every score as it arrives: a warm-up
 * learns a robust baseline, then one-sided CUSUM charts on standardised scores
 * watch for drops only; an alarm clears when an upward CUSUM says the scores
 * came back. The method and its defaults are in monitor/README.md.
 *
 * Scores are in [0, 1]: continuous, Likert levels mapped to [0, 1], or
 * pass/fail (0/1). The kind is given in the config or recognised at the end
 * of the warm-up.
 *
 * Threading: a detector belongs to one thread at a time; no global state.
 * Ownership: the caller holds struct detector_config; detector_new copies it.
 * Callers: `assay backtest` (server/cmd_backtest.c), the series registry of
 * the service, the simulation suite in tests/unit/monitor.
 */
#ifndef ASSAY_MONITOR_DETECTOR_H
#define ASSAY_MONITOR_DETECTOR_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define DETECTOR_MAX_CHARTS 4

enum detector_kind {
    DETECTOR_KIND_AUTO,
    DETECTOR_KIND_CONTINUOUS,
    DETECTOR_KIND_LIKERT,
    DETECTOR_KIND_PASS_FAIL
};

enum detector_state { DETECTOR_WARMING_UP, DETECTOR_OK, DETECTOR_ALARM };

/*
 * Settings; detector_config_init gives the documented defaults. The JSON
 * names (config file: {"monitor": {"detector": {...}}}) are in brackets.
 */
struct detector_config {
    size_t warmup_samples; /* [warmup_samples] 300: scores that learn the baseline */
    double target_arl0;    /* [target_arl0] 20000: design mean in-control run between
                              false alarms, in samples (0.5 per 10,000) */
    size_t n_charts;       /* [reference_k] {0.25, 0.5}: one CUSUM per reference value, */
    double reference_k[DETECTOR_MAX_CHARTS]; /* in long-run standard deviations */
    enum detector_kind kind; /* [kind] "auto" | "continuous" | "likert" | "pass_fail" */
    double min_sd;           /* [min_sd] 0.05: floor on the baseline standard deviation */
    double outlier_mads;     /* [outlier_mads] 6: warm-up scores further than this many
                                robust sds from the median are ignored (continuous only;
                                0 disables) */
    int autocorrelation;     /* [autocorrelation] true: inflate the scale for lag-1
                                autocorrelation found in the warm-up */
    double max_rho;          /* [max_rho] 0.8: cap on that autocorrelation */
    size_t window_samples;   /* [window_samples] 1000: recent scores kept for an alarm's
                                p-value */
    double min_recovery_k;   /* [min_recovery_k] 0.125: smallest reference value of the
                                recovery CUSUM, in long-run sds */
    double confirm_alpha;    /* [confirm_alpha] 0.01: an alarm also needs the scores since
                                the change point to be lower than the warm-up's at this
                                one-sided level (1 disables the check) */
    double cut_k;            /* [cut_k] 0.25: reference value of the Likert cut charts
                                (one per level boundary; 0 disables them) */
};

/* An alarm raised (state DETECTOR_ALARM) or cleared (state DETECTOR_OK). */
struct detector_event {
    enum detector_state state;
    uint64_t index;        /* 0-based sample at which the state changed */
    uint64_t change_point; /* first sample of the estimated drop (or recovery) */
    double baseline_mean;
    double current_mean; /* mean of the samples since change_point */
    double effect_size;  /* (current - baseline) / baseline sd; negative for a drop */
    double p_value;      /* one-sided test, samples since the change point lower than the
                            warm-up's (Mann-Whitney; two-proportion for pass/fail); NaN
                            for a clear */
    double statistic;    /* the CUSUM that crossed, and its threshold */
    double threshold;
};

/* A snapshot for listings (GET /v1/series). */
struct detector_summary {
    enum detector_state state;
    enum detector_kind kind;
    uint64_t count;       /* samples seen */
    uint64_t since;       /* index where the current state began */
    double baseline_mean; /* NaN while warming up */
    double baseline_sd;
    double statistic; /* the chart closest to its threshold (ratio-wise), and that threshold */
    double threshold;
};

/* Fills *c with the defaults above. */
void detector_config_init(struct detector_config *c);
/*
 * Overrides fields of *c from a JSON object (the "detector" section; borrowed).
 * Unknown keys, wrong types and out-of-range values are ASSAY_ERR_CONFIG with
 * the key named in errbuf; *c may then be partly changed.
 */
enum assay_err detector_config_from_json(struct detector_config *c, const json_t *obj,
                                         char *errbuf);
/* Checks ranges; ASSAY_ERR_CONFIG with a detail otherwise. */
enum assay_err detector_config_check(const struct detector_config *c, char *errbuf);

/* A new detector in warm-up; the config is copied and must pass detector_config_check. */
struct detector *detector_new(const struct detector_config *c);
/* Accepts NULL. */
void detector_free(struct detector *d);

/*
 * Feeds the next score (in [0, 1]; the caller validates). Returns 1 and fills
 * *ev when the alarm state changed with this sample, else 0 (*ev untouched).
 */
int detector_update(struct detector *d, double x, struct detector_event *ev);

/* Forgets the baseline and any alarm, and starts a new warm-up. */
void detector_rebaseline(struct detector *d);

enum detector_state detector_state_get(const struct detector *d);
void detector_summary_get(const struct detector *d, struct detector_summary *s);

/*
 * The mean of the scores with index >= from among the last window_samples
 * (the series' "current mean"); NaN when there are none.
 */
double detector_recent_mean(const struct detector *d, uint64_t from);

/* "auto", "continuous", ...; "warming_up", "ok", "alarm". */
const char *detector_kind_name(enum detector_kind k);
const char *detector_state_name(enum detector_state s);

/*
 * The whole state (config, baseline, warm-up sample, charts, alarm, recent
 * window) as a new JSON object; doubles round-trip exactly.
 */
json_t *detector_to_json(const struct detector *d);
/*
 * Restores a detector from detector_to_json's output (borrowed): it carries on
 * exactly where the saved one stopped, with no new warm-up. Returns a new
 * detector, or NULL with ASSAY_ERR_PARSE detail in errbuf.
 */
struct detector *detector_from_json(const json_t *j, char *errbuf);

#endif
