/*
 * judges/verdict: the outcome of one judge on one sample, shared by the rule,
 * reference and LLM judges; the parser of Bedrock Converse response bodies
 * into verdicts; and the self-consistency combination of repeated verdicts.
 *
 * A verdict is either scored (a raw score on the rubric's scale, normalised to
 * [0,1], and pass/fail) or unscorable: no score at all, a stable reason code
 * and a detail. Unscorable verdicts never count as scores; nothing here ever
 * invents a score (no 0 for a failure).
 *
 * Ownership: struct verdict is held by the caller (verdict_init /
 * verdict_clear); its strings belong to it. The parser borrows the rubric and
 * the body. Thread-safe: no shared state.
 */
#ifndef ASSAY_JUDGES_VERDICT_H
#define ASSAY_JUDGES_VERDICT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "judges/rubric.h"

#define VERDICT_REASONING_MAX 4096u /* bytes kept of a judge's reasoning */
#define VERDICT_DETAIL_MAX 256u
#define VERDICT_BODY_MAX (4u * 1024u * 1024u) /* largest response body parsed */

enum verdict_outcome { VERDICT_SCORED, VERDICT_UNSCORABLE };

/* What the caller should do about an unscorable verdict. */
enum verdict_retry {
    VERDICT_RETRY_NONE,         /* final: record the job as failed with the reason */
    VERDICT_RETRY_ONCE,         /* retry once as is (unparseable, out of range, ...) */
    VERDICT_RETRY_LARGER_BUDGET /* max_tokens: retry once with a larger maxTokens */
};

struct verdict_usage {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_input_tokens;
    int64_t cache_write_input_tokens;
};

struct verdict {
    enum verdict_outcome outcome;
    double score;            /* normalised to [0,1]; meaningful only when scored */
    double raw_score;        /* on the rubric's scale; meaningful only when scored */
    bool pass;               /* raw_score >= pass_threshold; false when unscorable */
    char *reasoning;         /* owned, at most VERDICT_REASONING_MAX bytes, or NULL */
    char *judge;             /* owned: "rule:pii-leak", "reference:rouge-l", or a model id */
    char rubric[65];         /* the rubric's name */
    char rubric_version[65]; /* the rubric's version (SHA-256 of its file): series key */
    /* Unscorable only: a stable snake_case code (static string) and a detail. */
    const char *reason;
    char detail[VERDICT_DETAIL_MAX];
    enum verdict_retry retry;
    char stop_reason[40]; /* the Converse stopReason, "" when none */
    struct verdict_usage usage;
    int64_t latency_ms; /* Converse metrics.latencyMs, -1 when absent (summed when combined) */
    /* Self-consistency: how many scored verdicts were combined (1 otherwise)
     * and the range (max - min) of their normalised scores. */
    int n_samples;
    double spread;
    /* LLM judges: Converse attempts sent for this verdict (retries, re-asks
     * and repeats included; 0 for local judges) and the wall time it took. */
    int attempts;
    int64_t elapsed_ms;
};

/* Leaves an empty unscorable verdict with reason "none". */
void verdict_init(struct verdict *v);
/* Frees the strings and re-initialises. Accepts NULL. */
void verdict_clear(struct verdict *v);

/*
 * Records a score on r's scale. Returns ASSAY_OK and marks v scored, or, when
 * raw is not finite, outside the scale, or not an integer on an integer scale,
 * marks v unscorable (reason score_not_finite / score_out_of_range /
 * score_not_integer, retry once) and returns ASSAY_ERR_INVALID_ARGUMENT.
 */
enum assay_err verdict_set_score(struct verdict *v, const struct rubric *r, double raw);
/* Marks v unscorable: reason is a static snake_case code; detail is copied (may be NULL). */
void verdict_set_unscorable(struct verdict *v, const char *reason, enum verdict_retry retry,
                            const char *detail);
/* Copies at most VERDICT_REASONING_MAX bytes of text (cut on a UTF-8 boundary). */
void verdict_set_reasoning(struct verdict *v, const char *text, size_t n);
/* Copies r's name and version into v (every judge does this for its verdicts). */
void verdict_set_rubric(struct verdict *v, const struct rubric *r);
/* Replaces the judge name with a copy of name. */
void verdict_set_judge(struct verdict *v, const char *name);

/*
 * Parses a Converse response body (n bytes, borrowed) into *out (initialised
 * by the caller; previous contents are cleared). Uses a toolUse block only when
 * its name is submit_verdict; otherwise, for end_turn and stop_sequence, looks
 * for the score in the text with r's fallback pattern (the last match). Every
 * stopReason is handled by name; those that carry no verdict give an
 * unscorable outcome whose reason is the stopReason itself.
 * Returns ASSAY_OK whenever *out was filled (scored or unscorable: look at
 * out->outcome); ASSAY_ERR_INVALID_ARGUMENT only for NULL arguments.
 */
enum assay_err verdict_parse(const struct rubric *r, const char *body, size_t n,
                             struct verdict *out);
/* The same over an already parsed response (borrowed). */
enum assay_err verdict_parse_json(const struct rubric *r, const json_t *response,
                                  struct verdict *out);
/*
 * The text fallback on its own: finds the last match of r's fallback pattern
 * in text and records its score and, as reasoning, the text before it; or an
 * unscorable outcome (reason no_score_in_text / regex_limit / score_*). Does
 * not clear *out first. Returns ASSAY_OK when scored, else an error code.
 */
enum assay_err verdict_parse_text(const struct rubric *r, const char *text, size_t n,
                                  struct verdict *out);

/*
 * Self-consistency: combines n verdicts of one job (borrowed) into *out. The
 * raw score is the median of the scored ones (the mean of the middle two for an
 * even count), spread is max - min of their normalised scores, usage is summed
 * over all n, the reasoning is that of the verdict nearest the median. Needs a
 * strict majority of the n to be scored; else *out is unscorable
 * (reason no_majority). Returns ASSAY_OK when *out is scored.
 */
enum assay_err verdict_combine(const struct rubric *r, const struct verdict *vs, size_t n,
                               struct verdict *out);

/*
 * The verdict as the API and `assay judge` show it (DESIGN.md, GET
 * /v1/samples): rubric, rubric_version, judge, then for a scored verdict
 * score, raw_score, pass, reasoning (and n_samples, spread after repeats),
 * for an unscorable one "unscorable": true, reason and detail; then
 * latency_ms (elapsed_ms), model_latency_ms when known, attempts,
 * input_tokens, output_tokens, cache_read_input_tokens,
 * cache_write_input_tokens and stop_reason when known. Returns a new object.
 */
json_t *verdict_to_json(const struct verdict *v);

/* Converse stopReason values, by name. */
enum verdict_stop {
    VERDICT_STOP_END_TURN,
    VERDICT_STOP_TOOL_USE,
    VERDICT_STOP_MAX_TOKENS,
    VERDICT_STOP_STOP_SEQUENCE,
    VERDICT_STOP_GUARDRAIL_INTERVENED,
    VERDICT_STOP_CONTENT_FILTERED,
    VERDICT_STOP_MALFORMED_MODEL_OUTPUT,
    VERDICT_STOP_MALFORMED_TOOL_USE,
    VERDICT_STOP_MODEL_CONTEXT_WINDOW_EXCEEDED,
    VERDICT_STOP_UNKNOWN
};
enum verdict_stop verdict_stop_from_name(const char *name);

#endif
