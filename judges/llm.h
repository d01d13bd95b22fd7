/*
 * judges/llm: the LLM judge. One job = one (sample, rubric) -> one verdict,
 * asynchronous on aws/bedrock:
 *   1. the sample's fields are redacted (judges/redact) when the app asks for
 *      it: only redacted text leaves for Bedrock (the pii-leak rule judges run
 *      on the raw text, elsewhere);
 *   2. judges/prompt renders the Converse request (forced submit_verdict
 *      tool), aws/bedrock sends it to the rubric's model, else the configured
 *      judge model; judges/verdict parses the answer;
 *   3. the verdict's retry advice is followed once per job: an unparseable or
 *      out-of-range verdict is asked again with a fresh render (new boundary
 *      token), a max_tokens stop is asked again with a larger maxTokens;
 *   4. a model that refuses forced tools (ValidationException whose message
 *      names toolChoice or tool use, as Bedrock answers for such models) is
 *      asked again in text mode and the rubric's PCRE2 pattern reads the
 *      score; the judge remembers the model id and starts its later jobs in
 *      text mode;
 *   5. `repeats: n` runs n such chains at once and combines their verdicts
 *      (verdict_combine: median, spread, usage summed).
 * The verdict carries the effective model id (judge), the rubric's name and
 * version, the wall time, the Converse attempts and the four usage counts
 * summed over every call made for it. Nothing here invents a score: each
 * failure (throttled to the end, timeouts, refusals, no verdict twice) is an
 * unscorable verdict with a reason (docs/internals/VERDICTS.md).
 *
 * Threading: llm_judge_run may be called from any thread; completions run on
 * the transport thread and must not block.
 * Ownership: the judge borrows the Bedrock client; a job borrows the rubric
 * (which must outlive it) and copies the sample's text.
 */
#ifndef ASSAY_JUDGES_LLM_H
#define ASSAY_JUDGES_LLM_H

#include <stddef.h>

#include "common/err.h"
#include "judges/redact.h"
#include "judges/rubric.h"
#include "judges/verdict.h"

struct bedrock_client;
struct bedrock_result;

#define LLM_BUDGET_FACTOR_DEFAULT 4 /* maxTokens multiplier after a max_tokens stop */

/* See llm_judge_options.on_call. */
typedef void (*llm_call_fn)(void *on_call_ctx, void *job_ctx, const char *model_id,
                            enum assay_err err, const struct bedrock_result *res);

struct llm_judge_options {
    struct bedrock_client *bedrock; /* borrowed; required */
    const char *model_id;           /* the configured judge model; required unless every
                                       rubric names its own */
    int budget_factor;              /* 0: LLM_BUDGET_FACTOR_DEFAULT */
    /* The prompt's random source (prompt_options.random_bytes), a seam for
     * tests; NULL: the CSPRNG. */
    int (*random_bytes)(void *ctx, unsigned char *out, size_t n);
    void *random_ctx;
    /* Optional observer of the Bedrock calls, for cost and error metrics:
     * called once per finished Converse call (every chain, re-ask and
     * text-mode fallback included), on the transport thread, before the job
     * goes on, with the ctx given to llm_judge_run, the model id and the
     * call's result (borrowed; res->attempt_log has each HTTP attempt). Must
     * not block and must not call the judge. */
    llm_call_fn on_call;
    void *on_call_ctx;
};

struct llm_judge;

/* Returns a new judge, or NULL with errbuf when no Bedrock client is given. */
struct llm_judge *llm_judge_new(const struct llm_judge_options *opt, char *errbuf);
/*
 * Frees; accepts NULL. Jobs must have completed. To stop with jobs running,
 * free the transport first (each job then completes, unscorable with reason
 * cancelled), then the Bedrock client, then the judge.
 */
void llm_judge_free(struct llm_judge *j);

/*
 * Called once per job on the transport thread. v is always filled: scored,
 * or unscorable with its reason. err is ASSAY_OK when the verdict came from
 * the model's answers; otherwise the error that ended the job
 * (ASSAY_ERR_HTTP_STATUS after Bedrock refused or throttled to the end,
 * ASSAY_ERR_TIMEOUT, ASSAY_ERR_CANCELLED, ASSAY_ERR_INVALID_ARGUMENT for a
 * sample the rubric cannot grade, ...), with v unscorable. v is borrowed for
 * the call; to keep it, move it out (`mine = *v; verdict_init(v);`).
 */
typedef void (*llm_done_fn)(void *ctx, enum assay_err err, struct verdict *v);

/*
 * Starts a job for sample s (borrowed for the call: its text is copied,
 * after redaction when redact is non-NULL) against LLM rubric r. Returns
 * ASSAY_OK and done is called exactly once later (even for a sample that
 * cannot be graded: an unscorable verdict); or, and done is never called,
 * ASSAY_ERR_INVALID_ARGUMENT (NULL arguments, not an llm rubric, no model
 * id) or ASSAY_ERR_CANCELLED (the transport is shutting down).
 */
enum assay_err llm_judge_run(struct llm_judge *j, const struct rubric *r,
                             const struct rubric_sample *s, const struct redact_set *redact,
                             llm_done_fn done, void *ctx, char *errbuf);

/* The model id a job for r uses: r's own, else the configured one (borrowed). */
const char *llm_judge_model_for(const struct llm_judge *j, const struct rubric *r);

/* 1 when model_id has refused forced tools and is now asked in text mode. */
int llm_judge_model_text_mode(struct llm_judge *j, const char *model_id);

#endif
