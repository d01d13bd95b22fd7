/*
 * server/awsenv: the AWS side of a command built from the config: a transport
 * for Bedrock calls and one for credential fetches, the credentials chain
 * (probed once, so a missing credential is a clear error before any call),
 * the Bedrock Converse client with the judge's concurrency, budgets, timeout
 * and retry policy, and the LLM judge. `assay judge` and `assay eval` (judge
 * and target-model calls alike) build theirs here.
 *
 * Ownership: the caller holds the struct (zeroed); awsenv_open fills it,
 * awsenv_close frees what it holds (after a failed open too) and accepts a
 * zeroed struct. cfg is borrowed for the call only.
 */
#ifndef ASSAY_SERVER_AWSENV_H
#define ASSAY_SERVER_AWSENV_H

#include "common/err.h"
#include "judges/llm.h"

struct config;
struct http_transport;
struct creds_provider;
struct bedrock_client;
struct llm_judge;

struct awsenv {
    struct http_transport *t;       /* Bedrock calls */
    struct http_transport *creds_t; /* credential fetches (never the signing thread's) */
    struct creds_provider *creds;
    struct bedrock_client *bedrock;
    struct llm_judge *llm;
};

/*
 * Builds the AWS side from cfg (aws.*, judge.*). Returns ASSAY_OK, or an
 * error with errbuf: ASSAY_ERR_NO_CREDENTIALS (or the chain's error) when no
 * credentials are found, ASSAY_ERR_CONFIG / ASSAY_ERR_INTERNAL otherwise.
 */
enum assay_err awsenv_open(const struct config *cfg, struct awsenv *a, char *errbuf);
/*
 * The same, with an observer of every finished judge call (judges/llm's
 * on_call; the service publishes the JudgeInvocation* metrics from it).
 */
enum assay_err awsenv_open_observed(const struct config *cfg, llm_call_fn on_call,
                                    void *on_call_ctx, struct awsenv *a, char *errbuf);
/* Frees everything a holds and zeroes it. No call may be in flight. */
void awsenv_close(struct awsenv *a);

#endif
