/*
 * server/judging: builds the Bedrock-backed judges for `assay serve` (server/awsenv, the
 * same AWS set-up `assay judge` makes for one call) and hands judge calls to
 * judges/judge. Called by server/cmd_serve.
 */
#include "server/judging.h"

#include "aws/bedrock.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/log.h"
#include "judges/llm.h"
#include "monitor/publish.h"
#include "server/awsenv.h"
#include "server/config.h"
#include "server/sample.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct judging {
    struct awsenv aws; /* transports, credentials, Bedrock client, LLM judge */
    struct judge_runner *runner;
    /* For callers that pass their own ctx to the judge (golden runs): an LLM
     * judge without the cost observer, which reads every ctx as a struct
     * judged. */
    struct llm_judge *plain_llm;
    struct judge_runner *plain_runner;
    _Atomic(struct publish *) publish; /* judge cost metrics; NULL: none */
};

/* One judge_run in flight: the caller's callback, and who the sample is from
 * (copied: the caller's view is borrowed for the call only). */
struct judged {
    struct judging *j;
    judge_done_fn done;
    void *done_ctx;
    char *app;
    struct publish_tag tags[SAMPLE_TAGS_MAX];
    size_t n_tags;
};

static void judged_free(struct judged *w)
{
    if (!w)
        return;
    free(w->app);
    for (size_t i = 0; i < w->n_tags; i++) {
        free((char *)w->tags[i].key);
        free((char *)w->tags[i].value);
    }
    free(w);
}

static enum publish_outcome outcome_of(enum bedrock_attempt_outcome o)
{
    switch (o) {
    case BEDROCK_ATTEMPT_THROTTLED:
        return PUBLISH_CALL_THROTTLED;
    case BEDROCK_ATTEMPT_CLIENT_ERROR:
        return PUBLISH_CALL_CLIENT_ERROR;
    case BEDROCK_ATTEMPT_SERVER_ERROR:
        return PUBLISH_CALL_SERVER_ERROR;
    default:
        return PUBLISH_CALL_OK;
    }
}

/*
 * judges/llm's observer: each HTTP attempt of a finished Converse call is one
 * JudgeInvocation (as Bedrock's own Invocations metric counts retries), with
 * its own latency and outcome; the tokens go with the answered attempt.
 * Attempts that got no answer for another reason (cancelled at shutdown) are
 * not reported. Transport thread; publish_judge_call_add only takes a mutex.
 */
static void on_call(void *ctx, void *job_ctx, const char *model_id, enum assay_err err,
                    const struct bedrock_result *res)
{
    (void)err;
    struct judging *j = ctx;
    struct judged *w = job_ctx;
    struct publish *pub = atomic_load(&j->publish);
    if (!pub)
        return;
    for (int i = 0; i < res->n_attempt_log; i++) {
        const struct bedrock_attempt *a = &res->attempt_log[i];
        if (a->outcome == BEDROCK_ATTEMPT_OTHER)
            continue;
        int ok = a->outcome == BEDROCK_ATTEMPT_OK;
        struct publish_judge_call c = {.judge_model_id = model_id,
                                       .app = w->app,
                                       .tags = w->tags,
                                       .n_tags = w->n_tags,
                                       .outcome = outcome_of(a->outcome),
                                       .latency_ms = (double)a->latency_ms,
                                       .input_tokens = ok ? res->input_tokens : 0,
                                       .output_tokens = ok ? res->output_tokens : 0};
        publish_judge_call_add(pub, &c);
    }
}

/* The verdict goes to the caller's callback; the wrapper ends there. */
static void on_judged(void *ctx, enum assay_err err, struct verdict *v)
{
    struct judged *w = ctx;
    w->done(w->done_ctx, err, v);
    judged_free(w);
}

enum assay_err judging_open(const struct config *cfg, struct judging **out, char *errbuf)
{
    struct judging *j = xcalloc(1, sizeof *j);
    *out = NULL;
    enum assay_err err = awsenv_open_observed(cfg, on_call, j, &j->aws, errbuf);
    if (err != ASSAY_OK) {
        judging_close(j);
        return err;
    }
    j->runner = judge_runner_new(j->aws.llm, NULL);
    struct llm_judge_options lo = {.bedrock = j->aws.bedrock, .model_id = cfg->judge.model_id};
    if (!(j->plain_llm = llm_judge_new(&lo, errbuf))) {
        judging_close(j);
        return ASSAY_ERR_INTERNAL;
    }
    j->plain_runner = judge_runner_new(j->plain_llm, NULL);
    *out = j;
    return ASSAY_OK;
}

void judging_close(struct judging *j)
{
    if (!j)
        return;
    /* The transport first: calls in flight complete with ASSAY_ERR_CANCELLED. */
    http_transport_free(j->aws.t);
    j->aws.t = NULL;
    bedrock_client_free(j->aws.bedrock);
    j->aws.bedrock = NULL;
    judge_runner_free(j->runner);
    judge_runner_free(j->plain_runner);
    llm_judge_free(j->plain_llm);
    awsenv_close(&j->aws);
    free(j);
}

struct http_transport *judging_transport(struct judging *j)
{
    return j ? j->aws.t : NULL;
}

struct creds_provider *judging_creds(struct judging *j)
{
    return j ? j->aws.creds : NULL;
}

struct bedrock_client *judging_bedrock(struct judging *j)
{
    return j ? j->aws.bedrock : NULL;
}

struct judge_runner *judging_runner(struct judging *j)
{
    return j ? j->plain_runner : NULL;
}

enum assay_err judging_judge(void *ctx, const struct rubric *r, const struct rubric_sample *s,
                             const struct redact_set *redact, judge_done_fn done, void *done_ctx,
                             char *errbuf)
{
    struct judging *j = ctx;
    if (!done)
        return judge_run(j->runner, r, s, redact, done, done_ctx, errbuf);
    struct judged *w = xcalloc(1, sizeof *w);
    w->j = j;
    w->done = done;
    w->done_ctx = done_ctx;
    w->app = s && s->app ? xstrdup(s->app) : NULL;
    const char *key;
    json_t *val;
    if (s && s->tags)
        json_object_foreach((json_t *)s->tags, key, val)
        {
            if (!json_is_string(val) || w->n_tags == sizeof w->tags / sizeof w->tags[0])
                continue;
            w->tags[w->n_tags].key = xstrdup(key);
            w->tags[w->n_tags].value = xstrdup(json_string_value(val));
            w->n_tags++;
        }
    enum assay_err err = judge_run(j->runner, r, s, redact, on_judged, w, errbuf);
    if (err != ASSAY_OK)
        judged_free(w); /* done is never called on an error return */
    return err;
}

void judging_set_publish(struct judging *j, struct publish *pub)
{
    if (j)
        atomic_store(&j->publish, pub);
}
