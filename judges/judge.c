/*
 * judges/judge: the dispatcher over the three judge kinds, with a cache of
 * built rule judges (patterns compiled once per rubric).
 */
#include "judges/judge.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "judges/reference.h"
#include "judges/rule.h"

#include <pthread.h>
#include <stdlib.h>

struct rule_entry {
    const struct rubric *r;
    struct rule_judge *judge;
    struct rule_entry *next;
};

struct judge_runner {
    struct llm_judge *llm;
    struct regex_limits limits;
    int has_limits;
    pthread_mutex_t mu; /* guards rules */
    struct rule_entry *rules;
};

struct judge_runner *judge_runner_new(struct llm_judge *llm, const struct regex_limits *limits)
{
    struct judge_runner *jr = xcalloc(1, sizeof *jr);
    jr->llm = llm;
    if (limits) {
        jr->limits = *limits;
        jr->has_limits = 1;
    }
    pthread_mutex_init(&jr->mu, NULL);
    return jr;
}

void judge_runner_free(struct judge_runner *jr)
{
    if (!jr)
        return;
    while (jr->rules) {
        struct rule_entry *e = jr->rules;
        jr->rules = e->next;
        rule_judge_free(e->judge);
        free(e);
    }
    pthread_mutex_destroy(&jr->mu);
    free(jr);
}

/* The rule judge of r, built on first use. */
static enum assay_err rule_for(struct judge_runner *jr, const struct rubric *r,
                               struct rule_judge **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    pthread_mutex_lock(&jr->mu);
    struct rule_entry *e = jr->rules;
    while (e && e->r != r)
        e = e->next;
    if (!e) {
        struct rule_judge *j = NULL;
        err = rule_judge_new(r, jr->has_limits ? &jr->limits : NULL, &j, errbuf);
        if (err == ASSAY_OK) {
            e = xcalloc(1, sizeof *e);
            e->r = r;
            e->judge = j;
            e->next = jr->rules;
            jr->rules = e;
        }
    }
    *out = e ? e->judge : NULL;
    pthread_mutex_unlock(&jr->mu);
    return err;
}

enum assay_err judge_run(struct judge_runner *jr, const struct rubric *r,
                         const struct rubric_sample *s, const struct redact_set *redact,
                         judge_done_fn done, void *ctx, char *errbuf)
{
    if (!jr || !r || !s || !done)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "missing argument");
    if (r->kind == RUBRIC_KIND_LLM) {
        if (!jr->llm)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s is an llm rubric and no LLM judge is configured", r->name);
        return llm_judge_run(jr->llm, r, s, redact, done, ctx, errbuf);
    }
    int64_t t0 = clock_mono_ms(NULL);
    struct verdict v;
    verdict_init(&v);
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err;
    if (r->kind == RUBRIC_KIND_RULE) {
        struct rule_judge *rj = NULL;
        err = rule_for(jr, r, &rj, errbuf);
        if (err != ASSAY_OK)
            return err;
        err = rule_judge_run(rj, s, &v, detail);
    } else {
        err = reference_judge_run(r, s, &v, detail);
    }
    /* A sample the rubric cannot grade is an unscorable verdict (the judges
     * set it), delivered like any other. */
    v.elapsed_ms = clock_mono_ms(NULL) - t0;
    v.attempts = 0;
    verdict_set_rubric(&v, r);
    done(ctx, err, &v);
    verdict_clear(&v);
    return ASSAY_OK;
}
