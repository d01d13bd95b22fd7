/*
 * judges/verdict: the verdict struct's helpers, the Converse response parser
 * (used by the LLM judge after aws/bedrock returns a body) and the
 * self-consistency combination of repeated verdicts.
 */
#include "judges/verdict.h"

#include "common/alloc.h"
#include "common/jsonutil.h"
#include "judges/regex.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void verdict_init(struct verdict *v)
{
    memset(v, 0, sizeof *v);
    v->outcome = VERDICT_UNSCORABLE;
    v->reason = "none";
    v->latency_ms = -1;
    v->n_samples = 1;
}

void verdict_clear(struct verdict *v)
{
    if (!v)
        return;
    free(v->reasoning);
    free(v->judge);
    verdict_init(v);
}

void verdict_set_unscorable(struct verdict *v, const char *reason, enum verdict_retry retry,
                            const char *detail)
{
    v->outcome = VERDICT_UNSCORABLE;
    v->score = 0;
    v->raw_score = 0;
    v->pass = false;
    v->reason = reason;
    v->retry = retry;
    snprintf(v->detail, sizeof v->detail, "%s", detail ? detail : "");
}

enum assay_err verdict_set_score(struct verdict *v, const struct rubric *r, double raw)
{
    char d[VERDICT_DETAIL_MAX];
    if (!isfinite(raw)) {
        verdict_set_unscorable(v, "score_not_finite", VERDICT_RETRY_ONCE,
                               "the score is not a finite number");
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    if (raw < r->scale.min || raw > r->scale.max) {
        snprintf(d, sizeof d, "score %.6g is outside %g..%g", raw, r->scale.min, r->scale.max);
        verdict_set_unscorable(v, "score_out_of_range", VERDICT_RETRY_ONCE, d);
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    if (r->scale.integer && raw != floor(raw)) {
        snprintf(d, sizeof d, "score %.6g is not an integer on an integer scale", raw);
        verdict_set_unscorable(v, "score_not_integer", VERDICT_RETRY_ONCE, d);
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    v->outcome = VERDICT_SCORED;
    v->raw_score = raw;
    v->score = (raw - r->scale.min) / (r->scale.max - r->scale.min);
    v->pass = raw >= r->pass_threshold;
    v->reason = "none";
    v->retry = VERDICT_RETRY_NONE;
    v->detail[0] = '\0';
    return ASSAY_OK;
}

void verdict_set_reasoning(struct verdict *v, const char *text, size_t n)
{
    free(v->reasoning);
    if (n > VERDICT_REASONING_MAX) {
        n = VERDICT_REASONING_MAX;
        /* do not cut a UTF-8 sequence: back up over continuation bytes */
        while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
            n--;
    }
    v->reasoning = xstrndup(text, n);
}

void verdict_set_judge(struct verdict *v, const char *name)
{
    free(v->judge);
    v->judge = name ? xstrdup(name) : NULL;
}
