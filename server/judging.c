/*
 * server/judging: builds the Bedrock-backed judges for `assay serve` (server/awsenv, the
 * same AWS set-up `assay judge` makes for one call) and hands judge calls to
 * judges/judge. Called by server/cmd_serve.
 */
#include "server/judging.h"

#include "aws/bedrock.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "server/awsenv.h"
#include "server/config.h"

#include <stdlib.h>

struct judging {
    struct awsenv aws; /* transports, credentials, Bedrock client, LLM judge */
    struct judge_runner *runner;
};

enum assay_err judging_open(const struct config *cfg, struct judging **out, char *errbuf)
{
    struct judging *j = xcalloc(1, sizeof *j);
    *out = NULL;
    enum assay_err err = awsenv_open(cfg, &j->aws, errbuf);
    if (err != ASSAY_OK) {
        judging_close(j);
        return err;
    }
    j->runner = judge_runner_new(j->aws.llm, NULL);
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
    return j ? j->runner : NULL;
}

enum assay_err judging_judge(void *ctx, const struct rubric *r, const struct rubric_sample *s,
                             const struct redact_set *redact, judge_done_fn done, void *done_ctx,
                             char *errbuf)
{
    struct judging *j = ctx;
    return judge_run(j->runner, r, s, redact, done, done_ctx, errbuf);
}
