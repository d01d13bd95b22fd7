/*
 * aws/retry: the retry policy shared by every AWS client (Bedrock, CloudWatch,
 * STS): which outcomes are worth another attempt, and how long to wait before
 * it (capped exponential backoff with full jitter, as the AWS SDKs' standard
 * retry mode does). Pure functions: the caller supplies the random bits, so
 * the waits are deterministic under a seeded generator.
 * Thread-safe (no state).
 */
#ifndef ASSAY_AWS_RETRY_H
#define ASSAY_AWS_RETRY_H

#include <stdint.h>

#include "common/err.h"

enum retry_class {
    RETRY_NONE,      /* success, or an error that another attempt cannot fix */
    RETRY_THROTTLED, /* the service asked us to slow down */
    RETRY_TRANSIENT  /* a server or network fault that may pass */
};

struct retry_policy {
    int max_attempts;         /* attempts in all, the first included; default 5 */
    int64_t base_ms;          /* backoff base for transient faults; default 100 */
    int64_t throttle_base_ms; /* backoff base after throttling; default 500 */
    int64_t max_backoff_ms;   /* cap on one wait; default 20,000 */
};

/* Fills the defaults above. */
void retry_policy_init(struct retry_policy *p);

/*
 * Classifies one attempt's outcome: the transport's error (ASSAY_OK when an
 * HTTP response arrived), the HTTP status, and the AWS error code from the
 * response (http_response_error_code; NULL or "" when none).
 *   - ASSAY_ERR_TIMEOUT / ASSAY_ERR_TRANSPORT: transient; any other transport
 *     error (cancelled, too large, signing failed): none.
 *   - Codes that are never retried (ValidationException, AccessDeniedException,
 *     and the other client faults): none, whatever the status.
 *   - Throttling codes (ThrottlingException, Throttling, TooManyRequestsException,
 *     SNS's Throttled and KMSThrottling, ...) or status 429: throttled.
 *   - ServiceUnavailableException, ModelNotReadyException, ModelTimeoutException,
 *     InternalServerException, InternalFailure, InternalError, ServiceUnavailable, or status
 *     500/502/503/504: transient.
 */
enum retry_class retry_classify(enum assay_err transport_err, int status, const char *error_code);

/*
 * The wait before attempt number `attempt + 1`, after `attempt` failed
 * attempts (attempt >= 1): uniform in [0, min(max_backoff, base * 2^(attempt-1))]
 * drawn from rand64, with the throttle base after throttling.
 */
int64_t retry_backoff_ms(const struct retry_policy *p, int attempt, enum retry_class cls,
                         uint64_t rand64);

/* 1 when another attempt is allowed after `attempt` attempts with this class. */
int retry_should_retry(const struct retry_policy *p, int attempt, enum retry_class cls);

#endif
