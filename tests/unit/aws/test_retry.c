/* Unit tests for aws/retry (classification, full-jitter backoff) and aws/ratelimit. */
#include "aws/ratelimit.h"
#include "aws/retry.h"
#include "tests/unit/test.h"

TEST_CASE(classify_never_retried)
{
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "ValidationException"), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 403, "AccessDeniedException"), RETRY_NONE);
    /* a client fault stays a client fault even behind a 5xx status */
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 500, "ValidationException"), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 200, NULL), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 404, "ResourceNotFoundException"), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_ERR_CANCELLED, 0, NULL), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_ERR_TOO_LARGE, 0, NULL), RETRY_NONE);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "SomethingUnknown"), RETRY_NONE);
}

TEST_CASE(classify_throttling)
{
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 429, "ThrottlingException"), RETRY_THROTTLED);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, "Throttling"), RETRY_THROTTLED); /* CloudWatch */
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 429, ""), RETRY_THROTTLED);
}

TEST_CASE(classify_transient)
{
    const char *codes[] = {"ServiceUnavailableException", "ModelNotReadyException",
                           "ModelTimeoutException", "InternalServerException"};
    for (size_t i = 0; i < 4; i++)
        CHECK_INT_EQ(retry_classify(ASSAY_OK, 400, codes[i]), RETRY_TRANSIENT);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 502, NULL), RETRY_TRANSIENT);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 503, ""), RETRY_TRANSIENT);
    CHECK_INT_EQ(retry_classify(ASSAY_ERR_TIMEOUT, 0, NULL), RETRY_TRANSIENT);
    CHECK_INT_EQ(retry_classify(ASSAY_ERR_TRANSPORT, 0, NULL), RETRY_TRANSIENT);
    CHECK_INT_EQ(retry_classify(ASSAY_OK, 501, NULL), RETRY_NONE);
}

TEST_CASE(backoff_full_jitter_capped)
{
    struct retry_policy p;
    retry_policy_init(&p);
    /* ceilings 100, 200, 400 ... capped at 20,000 */
    CHECK_INT_EQ(retry_backoff_ms(&p, 1, RETRY_TRANSIENT, UINT64_MAX), UINT64_MAX % 101);
    CHECK_INT_EQ(retry_backoff_ms(&p, 3, RETRY_TRANSIENT, 400), 400);
    CHECK_INT_EQ(retry_backoff_ms(&p, 3, RETRY_TRANSIENT, 401), 0);
    CHECK_INT_EQ(retry_backoff_ms(&p, 1, RETRY_THROTTLED, 500), 500);
    CHECK_INT_EQ(retry_backoff_ms(&p, 40, RETRY_TRANSIENT, 20000), 20000);
    CHECK_INT_EQ(retry_backoff_ms(&p, 40, RETRY_TRANSIENT, 20001), 0);
    /* jitter spreads over the whole range: seen values span most of it */
    int64_t lo = INT64_MAX, hi = 0;
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 1000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t w = retry_backoff_ms(&p, 4, RETRY_TRANSIENT, x);
        CHECK(w >= 0 && w <= 800);
        lo = w < lo ? w : lo;
        hi = w > hi ? w : hi;
    }
    CHECK(lo < 50 && hi > 750);
}

TEST_CASE(attempts_bounded)
{
    struct retry_policy p;
    retry_policy_init(&p);
    p.max_attempts = 3;
    CHECK(retry_should_retry(&p, 1, RETRY_THROTTLED));
    CHECK(retry_should_retry(&p, 2, RETRY_TRANSIENT));
    CHECK(!retry_should_retry(&p, 3, RETRY_TRANSIENT));
    CHECK(!retry_should_retry(&p, 1, RETRY_NONE));
}

TEST_CASE(ratelimit_bucket)
{
    struct ratelimit r;
    ratelimit_init(&r, 60, 0, 1000); /* one a second, burst of 60 */
    for (int i = 0; i < 60; i++)
        CHECK_INT_EQ(ratelimit_take(&r, 1, 1000), 0);
    int64_t wait = ratelimit_take(&r, 1, 1000);
    CHECK_INT_EQ(wait, 1000);
    CHECK(ratelimit_take(&r, 1, 1500) > 0);
    CHECK_INT_EQ(ratelimit_take(&r, 1, 2000), 0);
    /* charging after the fact pushes the bucket below zero */
    ratelimit_charge(&r, 10, 2000);
    CHECK_INT_EQ(ratelimit_take(&r, 1, 2000), 11000);
    /* over-burst requests are served once the bucket is full */
    CHECK(ratelimit_take(&r, 500, 2000) > 0);
    CHECK_INT_EQ(ratelimit_take(&r, 500, 200000), 0);
    ratelimit_clear(&r);

    struct ratelimit open;
    ratelimit_init(&open, 0, 0, 0);
    CHECK_INT_EQ(ratelimit_take(&open, 1e9, 0), 0);
    ratelimit_clear(&open);
}

#include "aws/endpoint.h"

TEST_CASE(endpoint_base)
{
    char errbuf[ASSAY_ERRBUF_SIZE];
    char *u = endpoint_base_new(NULL, "monitoring", "eu-west-1", 1, errbuf);
    CHECK_STR_EQ(u, "https://monitoring.eu-west-1.amazonaws.com/");
    free(u);
    u = endpoint_base_new("", "sns", "cn-north-1", 0, errbuf);
    CHECK_STR_EQ(u, "https://sns.cn-north-1.amazonaws.com.cn");
    free(u);
    u = endpoint_base_new("http://127.0.0.1:4566//", "sns", "us-east-1", 1, errbuf);
    CHECK_STR_EQ(u, "http://127.0.0.1:4566/");
    free(u);
    u = endpoint_base_new("http://127.0.0.1:4566/", "bedrock-runtime", "us-east-1", 0, errbuf);
    CHECK_STR_EQ(u, "http://127.0.0.1:4566");
    free(u);
    CHECK(endpoint_base_new("ftp://x", "sns", "us-east-1", 1, errbuf) == NULL);
    CHECK(strstr(errbuf, "not an http(s) URL") != NULL);
}
