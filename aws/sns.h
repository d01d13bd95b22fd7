/*
 * aws/sns: the Amazon SNS client, Publish only (alarm notifications from
 * monitor/notify), over the shared transport (aws/http), signed with SigV4
 * for the service "sns" (aws/signer).
 *
 * The wire is the AWS query protocol, as the AWS SDKs send it (aws/README.md,
 * "SNS"): POST / on https://sns.{region}.amazonaws.com/ (or the endpoint
 * override), Content-Type application/x-www-form-urlencoded; charset=utf-8,
 * body Action=Publish&Version=2010-03-31&TopicArn=...&Message=...&Subject=...
 * with keys and values RFC 3986-encoded (sigv4_uri_encode: space is %20).
 * Success is HTTP 200 with PublishResponse/PublishResult/MessageId in XML;
 * errors carry ErrorResponse/Error/Code ("InvalidParameter", "NotFound",
 * "AuthorizationError", "Throttled", "InternalError", ...).
 *
 * Validation before anything is sent: TopicArn 1-1024 printable ASCII
 * characters starting with "arn:"; Message non-empty valid UTF-8 of at most
 * SNS_MAX_MESSAGE_BYTES bytes; Subject (optional) 1-SNS_MAX_SUBJECT_LEN
 * printable ASCII characters (no control characters, no line breaks), not
 * starting with a space ("begins with a letter, number, or punctuation mark").
 *
 * Retries: sns_publish retries throttling, 5xx and network faults with capped
 * exponential backoff and full jitter (aws/retry; jitter bits from a
 * common/rng generator seeded by the options) up to the policy's attempts;
 * a client fault (InvalidParameter, NotFound, AuthorizationError, ...) is
 * never retried. sns_publish_submit makes one attempt: its caller decides
 * about another from res->retry.
 *
 * Threading: one client may be used from any number of threads at once; the
 * blocking call must not be made from a transport completion callback.
 * Completion callbacks run on the transport thread and must not block.
 * Ownership: the client borrows the transport and the credentials provider;
 * the strings of the options are copied. Inputs are borrowed for the call
 * only (the body is built before the call returns).
 */
#ifndef ASSAY_AWS_SNS_H
#define ASSAY_AWS_SNS_H

#include <stddef.h>
#include <stdint.h>

#include "aws/retry.h"
#include "common/buf.h"
#include "common/err.h"

struct creds_provider;
struct http_transport;

#define SNS_MAX_MESSAGE_BYTES 262144 /* "256 KB (262,144 bytes, not characters)" */
#define SNS_MAX_SUBJECT_LEN 100
#define SNS_MAX_TOPIC_ARN_LEN 1024
#define SNS_API_VERSION "2010-03-31"

/* One Publish (views, borrowed). */
struct sns_publish_input {
    const char *topic_arn; /* required */
    const char *message;   /* required */
    const char *subject;   /* optional (NULL: left out); for email subscribers */
    int64_t timeout_ms;    /* per attempt; 0: the client's (sns_options.timeout_ms) */
};

struct sns_result {
    enum assay_err err;     /* ASSAY_OK on HTTP 200 with a MessageId */
    int status;             /* HTTP status of the last attempt; 0 if none arrived */
    char error_code[64];    /* the answer's <Code> ("Throttled", "InvalidParameter"), or "" */
    char request_id[64];    /* x-amzn-RequestId (or the XML RequestId), or "" */
    char message_id[128];   /* PublishResult/MessageId on success, else "" */
    enum retry_class retry; /* how the last outcome classifies */
    int attempts;           /* attempts made (skew re-sends not counted) */
    char errbuf[ASSAY_ERRBUF_SIZE]; /* detail; never a secret */
};

struct sns_options {
    struct http_transport *transport; /* borrowed, required */
    struct creds_provider *creds;     /* borrowed, required */
    const char *region;               /* required */
    const char *endpoint;             /* NULL: https://sns.{region}.amazonaws.com; else an
                                         absolute http(s) URL (AWS_ENDPOINT_URL_SNS), path "/" */
    struct retry_policy retry;        /* max_attempts 0: retry_policy_init's defaults */
    uint64_t seed;                    /* jitter generator seed; 0: from the clock */
    int64_t timeout_ms;               /* per attempt; 0: the transport's default */
    /* Test seam: how sns_publish waits between attempts; NULL: nanosleep. */
    void (*sleep_ms)(void *ctx, int64_t ms);
    void *sleep_ctx;
};

struct sns;

/* Returns a new client, or NULL with errbuf when a required option is missing
 * or the endpoint is not an absolute http(s) URL. */
struct sns *sns_new(const struct sns_options *opt, char *errbuf);
/* Frees; accepts NULL. Submitted calls must have completed first. */
void sns_free(struct sns *s);
/* The endpoint in use, ending in '/' (borrowed). */
const char *sns_endpoint(const struct sns *s);

/*
 * Error mapping of an answer: 200 -> ASSAY_OK; throttling -> ASSAY_ERR_BUSY;
 * InvalidParameter, InvalidParameterValue, ValidationError and other faults of
 * the request's shape -> ASSAY_ERR_INVALID_ARGUMENT; NotFound ->
 * ASSAY_ERR_NOT_FOUND; AuthorizationError -> ASSAY_ERR_FORBIDDEN; any other
 * status -> ASSAY_ERR_HTTP_STATUS.
 */
enum assay_err sns_error_map(int status, const char *error_code);

/* Checks in against the limits above; ASSAY_ERR_INVALID_ARGUMENT (or
 * ASSAY_ERR_TOO_LARGE for the Message) naming the field in errbuf. Pure. */
enum assay_err sns_publish_validate(const struct sns_publish_input *in, char *errbuf);

/* Appends the form body of a Publish of in (no validation) to out. Pure. */
void sns_publish_body(const struct sns_publish_input *in, struct buf *out);

/*
 * Reads a Publish answer (body of status) into res: message_id on 200,
 * error_code, err, retry and errbuf otherwise; ASSAY_ERR_PARSE for a 200
 * without a MessageId. Pure; exposed for tests and the fuzz target.
 */
void sns_publish_answer_parse(int status, const char *body, size_t len, struct sns_result *res);

/*
 * Completion of sns_publish_submit on the transport thread: err by value
 * (res->err), res borrowed for the call.
 */
typedef void (*sns_done_fn)(void *ctx, enum assay_err err, const struct sns_result *res);

/*
 * One Publish attempt, asynchronously. Validates first. On ASSAY_OK done is
 * called exactly once; on an error return (detail in errbuf) it never is.
 */
enum assay_err sns_publish_submit(struct sns *s, const struct sns_publish_input *in,
                                  sns_done_fn done, void *ctx, char *errbuf);

/* Publish, blocking, with retries. Returns res->err; res may not be NULL. */
enum assay_err sns_publish(struct sns *s, const struct sns_publish_input *in,
                           struct sns_result *res);

#endif
