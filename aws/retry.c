/*
 * aws/retry: error classification and backoff for the AWS clients. The code
 * lists follow the AWS SDKs' service-error classification and DESIGN.md's
 * judge-call policy.
 */
#include "aws/retry.h"

#include <string.h>

static int in_list(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(code, list[i]) == 0)
            return 1;
    return 0;
}

#define IN(code, list) in_list((code), (list), sizeof(list) / sizeof((list)[0]))

static const char *const never_codes[] = {
    "ValidationException",       "AccessDeniedException",
    "ResourceNotFoundException", "UnrecognizedClientException",
    "InvalidParameterValue",     "InvalidParameterCombination",
    "MissingParameter",          "InvalidSignatureException",
    "IncompleteSignature",       "ServiceQuotaExceededException",
    "ModelErrorException",       "ExpiredTokenException",
};

static const char *const throttle_codes[] = {
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "Throttled",     /* SNS (ThrottledException, HTTP 429) */
    "KMSThrottling", /* SNS, when KMS throttles an encrypted topic (HTTP 400) */
};

static const char *const transient_codes[] = {
    "ServiceUnavailableException",
    "ModelNotReadyException",
    "ModelTimeoutException",
    "InternalServerException",
    "InternalFailure",
    "ServiceUnavailable",
    "InternalServerError",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError", /* SNS, STS */
};

void retry_policy_init(struct retry_policy *p)
{
    p->max_attempts = 5;
    p->base_ms = 100;
    p->throttle_base_ms = 500;
    p->max_backoff_ms = 20000;
}

enum retry_class retry_classify(enum assay_err transport_err, int status, const char *error_code)
{
    if (transport_err == ASSAY_ERR_TIMEOUT || transport_err == ASSAY_ERR_TRANSPORT)
        return RETRY_TRANSIENT;
    if (transport_err != ASSAY_OK)
        return RETRY_NONE;
    if (status >= 200 && status < 400)
        return RETRY_NONE;
    const char *code = error_code ? error_code : "";
    if (IN(code, never_codes))
        return RETRY_NONE;
    if (IN(code, throttle_codes) || status == 429)
        return RETRY_THROTTLED;
    if (IN(code, transient_codes) || status == 500 || status == 502 || status == 503 ||
        status == 504)
        return RETRY_TRANSIENT;
    return RETRY_NONE;
}

int64_t retry_backoff_ms(const struct retry_policy *p, int attempt, enum retry_class cls,
                         uint64_t rand64)
{
    int64_t base = cls == RETRY_THROTTLED ? p->throttle_base_ms : p->base_ms;
    int64_t ceiling = base > 0 ? base : 0;
    for (int i = 1; i < attempt && ceiling < p->max_backoff_ms; i++)
        ceiling *= 2;
    if (ceiling > p->max_backoff_ms)
        ceiling = p->max_backoff_ms;
    if (ceiling <= 0)
        return 0;
    return (int64_t)(rand64 % (uint64_t)(ceiling + 1));
}

int retry_should_retry(const struct retry_policy *p, int attempt, enum retry_class cls)
{
    return cls != RETRY_NONE && attempt < p->max_attempts;
}
