/*
 * server/judging: the judges of `assay serve` wired to AWS: a transport for
 * Bedrock calls and one for credential fetches, the credentials chain (probed
 * once at start-up), the Bedrock Converse client with the configured
 * concurrency, rate and token budgets, the LLM judge, and the runner that
 * serves every rubric kind. It is the worker's judge (judging_judge matches
 * worker_judge_fn).
 *
 * Ownership: judging_open returns a heap object; judging_close cancels calls
 * in flight (each completes with ASSAY_ERR_CANCELLED), waits for their
 * callbacks and frees everything. cfg is borrowed and must outlive it.
 */
#ifndef ASSAY_SERVER_JUDGING_H
#define ASSAY_SERVER_JUDGING_H

#include "common/err.h"
#include "judges/judge.h"

struct config;
struct creds_provider;
struct http_transport;
struct bedrock_client;
struct judging;
struct publish;

/*
 * Sets up the AWS side from cfg (region, endpoint overrides, judge.*).
 * Returns ASSAY_OK and a new object, or an error with errbuf:
 * ASSAY_ERR_NO_CREDENTIALS when the chain finds none (the service may then
 * run without judging), ASSAY_ERR_CONFIG / ASSAY_ERR_INTERNAL otherwise.
 */
enum assay_err judging_open(const struct config *cfg, struct judging **out, char *errbuf);
void judging_close(struct judging *j);

/* The Bedrock transport and the credentials chain (borrowed), shared with the
 * CloudWatch client of server/publishing. */
struct http_transport *judging_transport(struct judging *j);
struct creds_provider *judging_creds(struct judging *j);
/* The Bedrock client and a judge runner (borrowed) for golden-set runs'
 * target calls and judging (server/golden_service); the runner takes any ctx
 * (it has no cost observer: that belongs to judging_judge's calls). */
struct bedrock_client *judging_bedrock(struct judging *j);
struct judge_runner *judging_runner(struct judging *j);

/*
 * The publisher of the judge cost metrics (borrowed; NULL stops them; any
 * thread): every HTTP attempt of every Bedrock call the judges make is one
 * publish_judge_call_add (JudgeInvocations, JudgeInvocationLatency, the three
 * error metrics per JudgeModelId; the answered attempt's tokens per
 * JudgeModelId and App and per configured tag). It must outlive judging_close
 * or be unset first.
 */
void judging_set_publish(struct judging *j, struct publish *pub);

/* judge_run on this object's runner (ctx is the struct judging). The
 * sample's app and tags (s->app, s->tags) are copied for the metrics. */
enum assay_err judging_judge(void *ctx, const struct rubric *r, const struct rubric_sample *s,
                             const struct redact_set *redact, judge_done_fn done, void *done_ctx,
                             char *errbuf);

#endif
