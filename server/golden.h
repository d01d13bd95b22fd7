/*
 * server/golden: one golden-set run, the code behind `assay eval`, the
 * scheduler and POST /v1/golden-runs. A golden set's items go to the target
 * model through Converse (the spec's system prompt and inference settings;
 * the Bedrock client's retry policy and budgets, the same as judge calls),
 * each answer is judged with the run's rubrics (an item's own rubrics
 * override them), and everything (outputs, verdicts, tokens, latency) is
 * stored. A calibration set calls no target: its stored outputs are judged
 * again and compared with the human scores (monitor/agreement).
 *
 * Each run is then compared with the previous completed run of the same
 * dataset and target model (monitor/compare): per rubric the mean and its
 * change with a bootstrap interval, the Wilcoxon p-value over the paired
 * items, the items that got worse (largest drop first), and whether it
 * regressed (the drop significant and larger than the margin). The summary
 * (JSON, below) is stored as the run's result; GoldenSetScore,
 * GoldenSetRegression and JudgeAgreement go to the publisher when one is set.
 *
 * Threading: golden_run_execute blocks its caller until the run is over; its
 * target and judge calls complete on the transport thread and hand their
 * results back under a lock; the progress callback runs on the caller's
 * thread. Several runs may execute at once on different threads.
 * Ownership: struct golden_spec owns its strings; the env's objects are
 * borrowed and must outlive the call.
 */
#ifndef ASSAY_SERVER_GOLDEN_H
#define ASSAY_SERVER_GOLDEN_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct store;
struct rubric_registry;
struct judge_runner;
struct bedrock_client;
struct publish;
struct clock;

#define GOLDEN_RUBRICS_MAX 32
#define GOLDEN_SYSTEM_PROMPT_MAX (32u * 1024u)
#define GOLDEN_DEFAULT_RUBRIC "correctness"
#define GOLDEN_MAX_TOKENS_DEFAULT 1024

/* One `golden` config entry, or the arguments of one `assay eval`. */
struct golden_spec {
    char *name;         /* the entry's name (default: the dataset's name) */
    char *dataset;      /* path of the JSONL file; required */
    char *target_model; /* golden sets: required at run time; calibration: unused */
    char **rubrics;     /* the run's rubrics; none: GOLDEN_DEFAULT_RUBRIC (golden), the
                           items' human-scored rubrics (calibration) */
    size_t n_rubrics;
    char *system_prompt; /* sent as the Converse system block, or NULL */
    int max_tokens;      /* inferenceConfig.maxTokens; 0: GOLDEN_MAX_TOKENS_DEFAULT */
    bool has_temperature;
    double temperature;
    bool has_top_p;
    double top_p;
    double margin;   /* a drop of a rubric's mean (0..1 scale) must exceed it; 0.05 */
    double alpha;    /* significance level; 0.05 */
    int64_t every_s; /* schedule interval; 0: not scheduled */
};

/* Zeroes s and sets margin and alpha to their defaults. */
void golden_spec_init(struct golden_spec *s);
void golden_spec_clear(struct golden_spec *s);
/* Appends a rubric name (copied), ignoring a repeat. false past GOLDEN_RUBRICS_MAX. */
bool golden_spec_add_rubric(struct golden_spec *s, const char *name);

/*
 * Reads one `golden` config entry (borrowed):
 *   {"name", "dataset", "target_model", "rubrics": [..], "every": "6h",
 *    "system_prompt", "inference": {"max_tokens", "temperature", "top_p"},
 *    "margin", "alpha"}
 * into *out (initialised here). Returns ASSAY_OK, or ASSAY_ERR_CONFIG naming
 * the field, with *out cleared. Relative dataset paths are kept as given.
 */
enum assay_err golden_spec_from_json(const json_t *entry, struct golden_spec *out, char *errbuf);

/* "30s", "15m", "6h", "1d" or a bare number of seconds -> seconds (> 0); -1 when not. */
int golden_every_parse(const char *text, int64_t *seconds);

/*
 * The store's dataset key of a run: the dataset's name, and for a golden set
 * "|" and the target model, so that the previous run compared with is one of
 * the same dataset and target. Appended to a new string.
 */
char *golden_run_key(const char *dataset_name, bool calibration, const char *target_model);

struct golden_env {
    struct store *store;               /* required */
    const struct rubric_registry *reg; /* required */
    struct judge_runner *runner;       /* required */
    struct bedrock_client *bedrock;    /* target calls; may be NULL for calibration sets */
    const char *judge_model;           /* the configured judge model (summary, metrics) */
    struct publish *publish;           /* NULL: no metrics */
    const struct clock *clock;         /* NULL: the system clock */
    uint64_t seed;
        /* the bootstrap's seed; 0: 1 */ /* Set (by another thread) to stop: no new calls start,
                                          * calls in flight end, and the run is stored as failed
                                          * (ASSAY_ERR_CANCELLED). NULL: never. */
    const atomic_bool *cancel;
};

/* Items finished of total; called on the caller's thread, at least at the end. */
typedef void (*golden_progress_fn)(void *ctx, size_t done, size_t total);

/*
 * Runs spec once and returns its summary (a new reference) in *summary:
 *   {"run_id", "dataset", "kind", "target_model", "judge_model", "items",
 *    "started_at", "duration_ms", "baseline_run_id" (or null),
 *    "rubrics": [{"rubric", "scored", "unscorable", "mean", "pass_rate",
 *                 "comparison": {"paired", "mean_before", "mean_after", "delta",
 *                                "ci_low", "ci_high", "ci_level", "p_value",
 *                                "margin", "regressed"} or null,
 *                 "agreement": {...} (calibration)}],
 *    "regressed", "judge_drift" (calibration), "worse_items": [{"id", "rubric",
 *    "before", "after"}] (largest drop first), "target": {...}}
 * run_id (may be NULL: one is made) names the stored run; an existing run of
 * that id (queued by the API) is taken over. Returns ASSAY_OK, or an error
 * with errbuf and *summary NULL: ASSAY_ERR_IO / ASSAY_ERR_PARSE /
 * ASSAY_ERR_INVALID_ARGUMENT for the dataset, ASSAY_ERR_NOT_FOUND for an
 * unknown rubric, ASSAY_ERR_CONFIG for a golden set without a target model or
 * client, the store's errors. A run that fails after it was stored is marked
 * "failed" with the error in its result.
 */
enum assay_err golden_run_execute(const struct golden_env *env, const struct golden_spec *spec,
                                  const char *run_id, golden_progress_fn progress, void *pctx,
                                  json_t **summary, char *errbuf);

/*
 * When the last run of spec's dataset and target model in store started
 * (epoch ms), or 0 when there is none: the scheduler's memory across
 * restarts (scheduler_last_fn; ctx is the store).
 */
int64_t golden_last_run_ms(void *store, const struct golden_spec *spec);

/*
 * Stores run_id as a "queued" run of spec (its dataset key, target and
 * params), for the API to answer with before the run starts. The store's
 * errors; ASSAY_ERR_INVALID_ARGUMENT when the id exists.
 */
enum assay_err golden_run_queue(struct store *store, const struct golden_spec *spec,
                                const char *run_id, char *errbuf);

/* A new run id, "gr-<UTC time>-<8 hex>", unique enough to key the store. */
char *golden_run_id_new(const struct clock *clock);

#endif
