/*
 * server/awsenv: transports, credentials, the Bedrock client and the LLM
 * judge of a one-shot command (see awsenv.h).
 */
#include "server/awsenv.h"

#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "judges/llm.h"
#include "server/config.h"

#include <stdlib.h>
#include <string.h>

enum assay_err awsenv_open(const struct config *cfg, struct awsenv *a, char *errbuf)
{
    return awsenv_open_observed(cfg, NULL, NULL, a, errbuf);
}

enum assay_err awsenv_open_observed(const struct config *cfg, llm_call_fn on_call,
                                    void *on_call_ctx, struct awsenv *a, char *errbuf)
{
    struct http_transport_options to = {.timeout_ms = cfg->judge.timeout_ms,
                                        .ca_file = getenv("AWS_CA_BUNDLE")};
    a->t = http_transport_new(&to, errbuf);
    if (!a->t)
        return ASSAY_ERR_INTERNAL;
    a->creds_t = http_transport_new(&to, errbuf);
    if (!a->creds_t)
        return ASSAY_ERR_INTERNAL;
    struct creds_options co = {.transport = a->creds_t, .profile = cfg->aws.profile};
    a->creds = creds_chain_new(&co);
    /* Fetch once now: a clear error before any call, and cached for signing. */
    struct creds c;
    creds_init(&c);
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = creds_provider_get(a->creds, &c, detail);
    creds_clear(&c);
    if (err != ASSAY_OK)
        return assay_errbuf_set(errbuf, err, "no AWS credentials: %s", detail);
    struct bedrock_options bo = {.transport = a->t,
                                 .creds = a->creds,
                                 .region = cfg->aws.region,
                                 .endpoint = cfg->aws.bedrock_endpoint,
                                 .max_concurrency = cfg->judge.max_concurrency,
                                 .requests_per_minute = cfg->judge.requests_per_minute,
                                 .tokens_per_minute = cfg->judge.tokens_per_minute,
                                 .timeout_ms = cfg->judge.timeout_ms};
    retry_policy_init(&bo.retry);
    bo.retry.max_attempts = cfg->judge.max_attempts;
    a->bedrock = bedrock_client_new(&bo, errbuf);
    if (!a->bedrock)
        return ASSAY_ERR_CONFIG;
    struct llm_judge_options lo = {.bedrock = a->bedrock,
                                   .model_id = cfg->judge.model_id,
                                   .on_call = on_call,
                                   .on_call_ctx = on_call_ctx};
    a->llm = llm_judge_new(&lo, errbuf);
    return a->llm ? ASSAY_OK : ASSAY_ERR_INTERNAL;
}

void awsenv_close(struct awsenv *a)
{
    if (!a)
        return;
    bedrock_client_free(a->bedrock);
    llm_judge_free(a->llm);
    http_transport_free(a->t);
    creds_provider_free(a->creds);
    http_transport_free(a->creds_t);
    memset(a, 0, sizeof *a);
}
