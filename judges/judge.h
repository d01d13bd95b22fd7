/*
 * judges/judge: one entry point for every rubric kind. judge_run grades a
 * sample against a rubric: rule and reference rubrics locally (judges/rule,
 * judges/reference, on the text as given: raw, or, for a sample redacted at
 * ingest by server/ingest_redact, the redacted text plus the findings "_pii"
 * that pii-leak counts), LLM rubrics through judges/llm (on the redacted
 * text). Callers (the worker, `assay judge`, golden-set runs) get one
 * verdict per call through the same callback whatever the kind.
 *
 * Threading: judge_run may be called from any thread. A local judge's
 * callback runs on the calling thread before judge_run returns; an LLM
 * judge's runs later on the transport thread. Neither may block.
 * Ownership: the runner borrows the LLM judge (may be NULL: LLM rubrics are
 * then refused) and builds each rule judge once per rubric, keeping it until
 * judge_runner_free; rubrics must outlive the runner.
 */
#ifndef ASSAY_JUDGES_JUDGE_H
#define ASSAY_JUDGES_JUDGE_H

#include <jansson.h>

#include "common/err.h"
#include "judges/llm.h"
#include "judges/redact.h"
#include "judges/regex.h"
#include "judges/rubric.h"
#include "judges/verdict.h"

struct judge_runner;

/* llm (borrowed) may be NULL; limits (copied, may be NULL) bound the rule judges' regexes. */
struct judge_runner *judge_runner_new(struct llm_judge *llm, const struct regex_limits *limits);
/* Accepts NULL. LLM jobs must have completed. */
void judge_runner_free(struct judge_runner *jr);

/* The same contract as llm_done_fn: v always filled, borrowed for the call. */
typedef llm_done_fn judge_done_fn;

/*
 * Grades s against r: done is called exactly once on ASSAY_OK (with an
 * unscorable verdict for a sample the rubric cannot grade); on an error
 * return it is never called: ASSAY_ERR_INVALID_ARGUMENT (NULL arguments, an
 * LLM rubric without an LLM judge, a rule that cannot be built),
 * ASSAY_ERR_CANCELLED (shutting down). redact (may be NULL) applies to what
 * LLM judges send only.
 */
enum assay_err judge_run(struct judge_runner *jr, const struct rubric *r,
                         const struct rubric_sample *s, const struct redact_set *redact,
                         judge_done_fn done, void *ctx, char *errbuf);

/*
 * A sample's text as the API and `assay judge` receive it (DESIGN.md, sample
 * fields), flattened for the judges: input is a string or Converse-style
 * messages ([{"role", "content": [{"text"}...]}...], each turn's text
 * prefixed with its role when there are several turns); context is a string
 * or an array of strings or of {"text"} objects, joined by blank lines;
 * output and reference are strings. Strings are owned. "_pii", the findings
 * server/ingest_redact records before it redacts a sample, is kept for the
 * pii-leak rule.
 */
struct judge_sample {
    char *input, *output, *context, *reference;
    char *app;      /* "app", or NULL */
    char *model_id; /* the production model ("model_id"), or NULL */
    json_t *tags;   /* "tags" when it is an object (a reference held), or NULL */
    json_t *pii;    /* "_pii" (ingest findings) when it is an object (a reference held), or NULL */
};

/*
 * Reads obj (borrowed) into *out (zeroed by the caller). Returns ASSAY_OK, or
 * ASSAY_ERR_INVALID_ARGUMENT naming the field (a wrong type, no output) with
 * *out cleared.
 */
enum assay_err judge_sample_from_json(const json_t *obj, struct judge_sample *out, char *errbuf);
void judge_sample_clear(struct judge_sample *s);
/* The borrowed view the judges take. */
struct rubric_sample judge_sample_view(const struct judge_sample *s);

#endif
