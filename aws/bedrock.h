/*
 * aws/bedrock: the Amazon Bedrock Runtime Converse client, asynchronous on the
 * shared transport (aws/http). One call = one POST /model/{modelId}/converse,
 * signed with SigV4 (signing name "bedrock") through aws/signer, retried as
 * DESIGN.md's judge-call policy says through aws/retry: throttling, 5xx,
 * ServiceUnavailable / ModelNotReady / ModelTimeout / InternalServer and
 * transport errors are retried with capped exponential backoff and full
 * jitter, up to max_attempts attempts in all; ValidationException,
 * AccessDeniedException and the other client faults never are.
 *
 * Pacing, per model id: a token bucket of requests per minute (every
 * attempt, retries included, takes one request) and one of tokens per minute
 * (an attempt reserves what Bedrock reserves when a request starts, its
 * estimated input tokens plus its maxTokens; the reservation is settled to
 * the real input, cache-write and output tokens when the answer arrives). A
 * concurrency bound (max_concurrency) caps the attempts in flight; calls over
 * it wait in a FIFO queue. A call holds its slot while it waits for its
 * buckets, so that a request leaves as soon as its tokens are taken.
 * Every wait (backoff, bucket) is a transport timer: no thread is held and
 * none is made per call. docs/internals/BEDROCK.md describes the states.
 *
 * modelId: a model id, an inference-profile id or a model / profile ARN
 * travels as one path segment, encoded as the AWS SDK for JavaScript encodes
 * labels (everything but A-Z a-z 0-9 - _ . ~ percent-encoded, so ':' is %3A and
 * '/' is %2F); aws/signer then signs the path encoded once more.
 *
 * Threading: bedrock_converse and bedrock_client_stats may be called from any
 * thread. Completion callbacks run on the transport thread and must not block.
 * Ownership: the client borrows the transport and the credentials provider,
 * which must outlive it; strings in the options are copied. A call copies the
 * model id and the body.
 */
#ifndef ASSAY_AWS_BEDROCK_H
#define ASSAY_AWS_BEDROCK_H

#include <stddef.h>
#include <stdint.h>

#include "aws/retry.h"
#include "common/buf.h"
#include "common/err.h"

struct http_transport;
struct creds_provider;

#define BEDROCK_MODEL_ID_MAX 2048 /* Bedrock's own limit on modelId */
#define BEDROCK_ERROR_CODE_MAX 64
#define BEDROCK_ERROR_MESSAGE_MAX 512

struct bedrock_options {
    struct http_transport *transport; /* borrowed; required */
    struct creds_provider *creds;     /* borrowed; required */
    const char *region;               /* required ("us-east-1") */
    const char *endpoint;             /* override (AWS_ENDPOINT_URL_BEDROCK_RUNTIME); NULL:
                                         https://bedrock-runtime.{region}.amazonaws.com */
    int max_concurrency;              /* attempts in flight at once; 0: 64 */
    double requests_per_minute;       /* per model; 0: unlimited */
    double tokens_per_minute;         /* per model; 0: unlimited */
    double requests_burst;            /* bucket size; 0: one second's worth (at least 1) */
    double tokens_burst;              /* bucket size; 0: ten seconds' worth */
    struct retry_policy retry;        /* max_attempts 0: retry_policy_init's defaults */
    int64_t timeout_ms;               /* per attempt, total; 0: the transport's default */
    uint64_t seed;                    /* jitter generator seed; 0: drawn from the CSPRNG */
};

/* What one HTTP attempt of a call came to, classified as bedrock_stats
 * counts it (and as the JudgeInvocation* metrics report it). */
enum bedrock_attempt_outcome {
    BEDROCK_ATTEMPT_OK,           /* 2xx */
    BEDROCK_ATTEMPT_THROTTLED,    /* refused for throttling */
    BEDROCK_ATTEMPT_CLIENT_ERROR, /* another 4xx */
    BEDROCK_ATTEMPT_SERVER_ERROR, /* 5xx, a timeout or a transport error */
    BEDROCK_ATTEMPT_OTHER         /* no answer for another reason (cancelled, signing) */
};

struct bedrock_attempt {
    enum bedrock_attempt_outcome outcome;
    int64_t latency_ms; /* the attempt's own time on the wire, waits excluded */
};

/* judge.max_attempts' upper bound: every attempt of a call fits the log. */
#define BEDROCK_ATTEMPT_LOG_MAX 20

/* The outcome of one call, borrowed by the completion callback. */
struct bedrock_result {
    int status;                                    /* HTTP status of the last attempt, 0 if none */
    char error_code[BEDROCK_ERROR_CODE_MAX];       /* "ThrottlingException", "" on success */
    char error_message[BEDROCK_ERROR_MESSAGE_MAX]; /* AWS's message or the transport's detail */
    struct buf body;                               /* the last answer's body (JSON) */
    int attempts;                                  /* HTTP attempts sent, 1..max_attempts */
    int throttles;                                 /* attempts refused for throttling */
    int64_t backoff_ms;                            /* retry waits drawn (full jitter), summed */
    int64_t latency_ms;                            /* submit to completion, waits included */
    int64_t input_tokens, output_tokens;           /* usage of the successful answer */
    int64_t cache_read_input_tokens, cache_write_input_tokens;
    /* Each answered attempt in order (the first BEDROCK_ATTEMPT_LOG_MAX), so
     * that a caller can report every invocation once (server/judging). */
    struct bedrock_attempt attempt_log[BEDROCK_ATTEMPT_LOG_MAX];
    int n_attempt_log;
};

/*
 * Called once per accepted call, on the transport thread. err is ASSAY_OK for
 * a 2xx answer (body holds it); ASSAY_ERR_HTTP_STATUS for an AWS error answer
 * after the retries allowed (error_code / error_message say which);
 * ASSAY_ERR_TIMEOUT or ASSAY_ERR_TRANSPORT when the last attempt got no
 * answer; ASSAY_ERR_CANCELLED when the transport shut down; or a signing
 * error (ASSAY_ERR_NO_CREDENTIALS, ...). res is borrowed for the call.
 */
typedef void (*bedrock_done_fn)(void *ctx, enum assay_err err, const struct bedrock_result *res);

/* Metrics: counters since the client was made (a consistent snapshot). */
struct bedrock_stats {
    uint64_t calls;         /* bedrock_converse calls accepted */
    uint64_t calls_done;    /* completed, whatever the outcome */
    uint64_t invocations;   /* HTTP attempts sent */
    uint64_t successes;     /* 2xx answers */
    uint64_t throttles;     /* attempts refused for throttling */
    uint64_t client_errors; /* other 4xx answers */
    uint64_t server_errors; /* 5xx answers, timeouts and transport errors */
    uint64_t retries;       /* attempts after the first */
    uint64_t input_tokens, output_tokens, cache_read_input_tokens, cache_write_input_tokens;
    uint64_t latency_ms_sum; /* of answered attempts */
    int in_flight;           /* attempts holding a slot now */
    int in_flight_peak;
    int queued; /* calls waiting for a slot now */
};

struct bedrock_client;

/* Returns a new client, or NULL with errbuf (a required option missing). */
struct bedrock_client *bedrock_client_new(const struct bedrock_options *opt, char *errbuf);
/*
 * Waits for calls in progress to complete, then frees. Accepts NULL. Must
 * not be called from a callback. Free the transport first to cancel them
 * (each completes with ASSAY_ERR_CANCELLED); once the transport is freed,
 * bedrock_client_free is the only call left to make.
 */
void bedrock_client_free(struct bedrock_client *c);

/*
 * Starts one Converse call: body (body_len bytes of a ConverseRequest JSON
 * without modelId) is sent to model_id. Returns ASSAY_OK and done is called
 * exactly once later; or, and done is never called: ASSAY_ERR_INVALID_ARGUMENT
 * (no model id, one longer than BEDROCK_MODEL_ID_MAX, no body) or
 * ASSAY_ERR_CANCELLED (the client is being freed).
 */
enum assay_err bedrock_converse(struct bedrock_client *c, const char *model_id, const char *body,
                                size_t body_len, bedrock_done_fn done, void *ctx, char *errbuf);

void bedrock_client_stats(struct bedrock_client *c, struct bedrock_stats *out);

/*
 * Per-model counters, for the JudgeModelId dimension: fn is called once for
 * each model id the client has called, with that model's attempt-level
 * counters (invocations, successes, throttles, client and server errors,
 * retries, tokens, latency; the call and slot fields stay 0). Runs under
 * the client's lock: fn must not call the client.
 */
typedef void (*bedrock_model_stats_fn)(void *ctx, const char *model_id,
                                       const struct bedrock_stats *s);
void bedrock_client_stats_each(struct bedrock_client *c, bedrock_model_stats_fn fn, void *ctx);

/* The transport the client runs on (borrowed), for callers that set timers. */
struct http_transport *bedrock_client_transport(const struct bedrock_client *c);

/* The endpoint in use, without a trailing '/' (borrowed). */
const char *bedrock_client_endpoint(const struct bedrock_client *c);

/*
 * Appends s encoded as the AWS SDKs encode one path label: unreserved bytes
 * (A-Z a-z 0-9 - _ . ~) as they are, every other byte as %XX (upper-case hex).
 */
void bedrock_label_encode(const char *s, struct buf *out);

/* The default endpoint of a region, appended to out ("https://bedrock-runtime.
 * us-east-1.amazonaws.com"; the .amazonaws.com.cn suffix for cn- regions). */
void bedrock_endpoint_default(const char *region, struct buf *out);

#endif
