/*
 * server/judging: builds the Bedrock-backed judges for `assay serve` (the
 * same AWS set-up `assay judge` makes for one call) and hands judge calls to
 * judges/judge. Called by server/cmd_serve.
 */
#include "server/judging.h"

#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/retry.h"
#include "common/alloc.h"
#include "common/log.h"
#include "judges/llm.h"
#include "server/config.h"

#include <stdlib.h>

struct judging {
    struct http_transport *t;       /* Bedrock calls */
    struct http_transport *creds_t; /* credential fetches, never on the signing thread */
    struct creds_provider *creds;
    struct bedrock_client *bedrock;
    struct llm_judge *llm;
    struct judge_runner *runner;
};

enum assay_err judging_open(const struct config *cfg, struct judging **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct judging *j = xcalloc(1, sizeof *j);
    *out = NULL;
    struct http_transport_options to = {.timeout_ms = cfg->judge.timeout_ms,
                                        .ca_file = getenv("AWS_CA_BUNDLE")};
    if (!(j->t = http_transport_new(&to, errbuf)) ||
        !(j->creds_t = http_transport_new(&to, errbuf))) {
        err = ASSAY_ERR_INTERNAL;
        goto out;
    }
    struct creds_options co = {.transport = j->creds_t, .profile = cfg->aws.profile};
    j->creds = creds_chain_new(&co);
    /* Fetched once now: a clear message at start-up, and cached for signing. */
    struct creds c;
    creds_init(&c);
    char detail[ASSAY_ERRBUF_SIZE] = "";
    err = creds_provider_get(j->creds, &c, detail);
    creds_clear(&c);
    if (err != ASSAY_OK) {
        assay_errbuf_set(errbuf, err, "no AWS credentials: %s", detail);
        goto out;
    }
    struct bedrock_options bo = {.transport = j->t,
                                 .creds = j->creds,
                                 .region = cfg->aws.region,
                                 .endpoint = cfg->aws.bedrock_endpoint,
                                 .max_concurrency = cfg->judge.max_concurrency,
                                 .requests_per_minute = cfg->judge.requests_per_minute,
                                 .tokens_per_minute = cfg->judge.tokens_per_minute,
                                 .timeout_ms = cfg->judge.timeout_ms};
    retry_policy_init(&bo.retry);
    bo.retry.max_attempts = cfg->judge.max_attempts;
    if (!(j->bedrock = bedrock_client_new(&bo, errbuf))) {
        err = ASSAY_ERR_CONFIG;
        goto out;
    }
    struct llm_judge_options lo = {.bedrock = j->bedrock, .model_id = cfg->judge.model_id};
    if (!(j->llm = llm_judge_new(&lo, errbuf))) {
        err = ASSAY_ERR_INTERNAL;
        goto out;
    }
    j->runner = judge_runner_new(j->llm, NULL);
    *out = j;
    j = NULL;
out:
    judging_close(j);
    return err;
}

void judging_close(struct judging *j)
{
    if (!j)
        return;
    /* The transport first: calls in flight complete with ASSAY_ERR_CANCELLED. */
    http_transport_free(j->t);
    bedrock_client_free(j->bedrock);
    judge_runner_free(j->runner);
    llm_judge_free(j->llm);
    creds_provider_free(j->creds);
    http_transport_free(j->creds_t);
    free(j);
}

struct http_transport *judging_transport(struct judging *j)
{
    return j ? j->t : NULL;
}

struct creds_provider *judging_creds(struct judging *j)
{
    return j ? j->creds : NULL;
}

enum assay_err judging_judge(void *ctx, const struct rubric *r, const struct rubric_sample *s,
                             const struct redact_set *redact, judge_done_fn done, void *done_ctx,
                             char *errbuf)
{
    struct judging *j = ctx;
    return judge_run(j->runner, r, s, redact, done, done_ctx, errbuf);
}
