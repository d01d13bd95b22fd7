/*
 * aws/sns: the SNS Publish client. Builds the query-protocol form body with
 * the one RFC 3986 encoder (aws/sigv4.h), signs through aws/signer (service
 * "sns"), sends over the shared transport, and reads the XML answer with the
 * small element extractor of aws/creds_private.h (the one STS uses). See
 * aws/sns.h for the contracts and aws/README.md for the wire facts.
 */
#include "aws/sns.h"

#include "aws/endpoint.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/creds_private.h"
#include "aws/http.h"
#include "aws/signer.h"
#include "aws/sigv4.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"

#define CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"

struct sns {
    struct http_transport *transport;
    struct signer *signer;
    char *endpoint;
    struct retry_policy retry;
    pthread_mutex_t rng_lock; /* common/rng is single-threaded; the client is not */
    struct rng rng;
    int64_t timeout_ms;
    void (*sleep_ms)(void *ctx, int64_t ms);
    void *sleep_ctx;
};

/* ---------------------------------------------------------------- errors -- */

static const char *const invalid_codes[] = {"InvalidParameter",
                                            "InvalidParameterValue",
                                            "InvalidParameterException",
                                            "ValidationError",
                                            "ValidationException",
                                            "MissingParameter",
                                            "InvalidParameterCombination",
                                            "InvalidAction",
                                            "InvalidSecurity",
                                            "EndpointDisabled",
                                            "PlatformApplicationDisabled",
                                            "KMSDisabled",
                                            "KMSInvalidState",
                                            "KMSNotFound",
                                            "KMSOptInRequired",
                                            "KMSAccessDenied",
                                            "InvalidClientTokenId",
                                            "SignatureDoesNotMatch",
                                            "IncompleteSignature",
                                            "InvalidSignatureException",
                                            "MissingAuthenticationToken"};

enum assay_err sns_error_map(int status, const char *error_code)
{
    if (status == 200)
        return ASSAY_OK;
    const char *code = error_code ? error_code : "";
    if (retry_classify(ASSAY_OK, status, code) == RETRY_THROTTLED)
        return ASSAY_ERR_BUSY;
    if (strcmp(code, "NotFound") == 0)
        return ASSAY_ERR_NOT_FOUND;
    if (strcmp(code, "AuthorizationError") == 0)
        return ASSAY_ERR_FORBIDDEN;
    for (size_t i = 0; i < sizeof invalid_codes / sizeof invalid_codes[0]; i++)
        if (strcmp(code, invalid_codes[i]) == 0)
            return ASSAY_ERR_INVALID_ARGUMENT;
    return ASSAY_ERR_HTTP_STATUS;
}

/* ------------------------------------------------------------ validation -- */

static int printable_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            return 0;
    return 1;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static int utf8_valid(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t len;
        unsigned long cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += len;
    }
    return 1;
}

enum assay_err sns_publish_validate(const struct sns_publish_input *in, char *errbuf)
{
    if (!in || !in->topic_arn || !in->topic_arn[0])
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sns Publish: TopicArn is "
                                "required");
    size_t arn_len = strlen(in->topic_arn);
    if (arn_len > SNS_MAX_TOPIC_ARN_LEN || strncmp(in->topic_arn, "arn:", 4) != 0 ||
        !printable_ascii(in->topic_arn) || strchr(in->topic_arn, ' '))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sns Publish: TopicArn must be an ARN (\"arn:...\", at most %d "
                                "printable characters without spaces)",
                                SNS_MAX_TOPIC_ARN_LEN);
    if (!in->message || !in->message[0])
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sns Publish: Message is required and may not be empty");
    size_t msg_len = strlen(in->message);
    if (msg_len > SNS_MAX_MESSAGE_BYTES)
        return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                "sns Publish: Message is %zu bytes, at most %d are allowed",
                                msg_len, SNS_MAX_MESSAGE_BYTES);
    if (!utf8_valid((const unsigned char *)in->message, msg_len))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sns Publish: Message is not valid UTF-8");
    if (in->subject) {
        size_t n = strlen(in->subject);
        if (n == 0 || n > SNS_MAX_SUBJECT_LEN || !printable_ascii(in->subject) ||
            in->subject[0] == ' ')
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "sns Publish: Subject must be 1-%d printable ASCII "
                                    "characters (no control characters or line breaks), not "
                                    "starting with a space",
                                    SNS_MAX_SUBJECT_LEN);
    }
    return ASSAY_OK;
}

/* ------------------------------------------------------------------ body -- */

void sns_publish_body(const struct sns_publish_input *in, struct buf *out)
{
    /* Action and Version first, then the members in the service model's
     * order (TopicArn, Message, Subject), as the SDKs write them. */
    sigv4_form_param_append(out, "Action", "Publish");
    sigv4_form_param_append(out, "Version", SNS_API_VERSION);
    sigv4_form_param_append(out, "TopicArn", in->topic_arn ? in->topic_arn : "");
    sigv4_form_param_append(out, "Message", in->message ? in->message : "");
    if (in->subject)
        sigv4_form_param_append(out, "Subject", in->subject);
}

/* ---------------------------------------------------------------- answer -- */

/* Copies the decoded text of <name> inside [s, s+n) into out, made printable. */
static int xml_copy(const char *s, size_t n, const char *name, char *out, size_t out_size)
{
    const char *in;
    size_t il;
    out[0] = '\0';
    if (creds_xml_element(s, n, name, &in, &il) != 0)
        return 0;
    char *text = creds_xml_text(in, il);
    if (!text)
        return 0;
    snprintf(out, out_size, "%s", text);
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    free(text);
    return out[0] != '\0';
}

static void result_reset(struct sns_result *res)
{
    int attempts = res->attempts;
    memset(res, 0, sizeof *res);
    res->attempts = attempts;
}

void sns_publish_answer_parse(int status, const char *body, size_t len, struct sns_result *res)
{
    const char *text = body ? body : "";
    char rid[64];
    res->status = status;
    if (xml_copy(text, len, "RequestId", rid, sizeof rid) && !res->request_id[0])
        snprintf(res->request_id, sizeof res->request_id, "%s", rid);
    if (status == 200) {
        res->retry = RETRY_NONE;
        if (!xml_copy(text, len, "MessageId", res->message_id, sizeof res->message_id)) {
            res->err = assay_errbuf_set(res->errbuf, ASSAY_ERR_PARSE,
                                        "sns Publish: the answer has no MessageId");
            return;
        }
        res->err = ASSAY_OK;
        return;
    }
    const char *e;
    size_t el;
    char message[160] = "";
    if (creds_xml_element(text, len, "Error", &e, &el) == 0) {
        xml_copy(e, el, "Code", res->error_code, sizeof res->error_code);
        xml_copy(e, el, "Message", message, sizeof message);
    }
    res->retry = retry_classify(ASSAY_OK, status, res->error_code);
    res->err = sns_error_map(status, res->error_code);
    assay_errbuf_set(res->errbuf, res->err, "sns Publish: HTTP %d %s%s%s", status,
                     res->error_code[0] ? res->error_code : "(no code)", message[0] ? ": " : "",
                     message);
}

/* Reads one attempt's outcome into res. */
static void outcome_read(enum assay_err terr, const struct http_response *resp,
                         struct sns_result *res)
{
    result_reset(res);
    res->attempts++;
    if (terr != ASSAY_OK) {
        res->err = terr;
        res->retry = retry_classify(terr, 0, NULL);
        assay_errbuf_set(res->errbuf, terr, "sns Publish: %s", resp->errbuf);
        return;
    }
    const char *rid = http_response_header(resp, "x-amzn-RequestId");
    snprintf(res->request_id, sizeof res->request_id, "%s", rid ? rid : "");
    char code[64] = "";
    sns_publish_answer_parse(resp->status, resp->body.data, resp->body.len, res);
    /* The XML <Code> is the SNS answer's; a header code (x-amzn-query-error,
     * x-amzn-ErrorType) from a proxy or a newer protocol is taken when the
     * body has none, where the AWS SDKs look (aws/http.h). */
    if (res->err != ASSAY_OK && !res->error_code[0] &&
        http_response_error_code(resp, code, sizeof code)) {
        snprintf(res->error_code, sizeof res->error_code, "%s", code);
        res->retry = retry_classify(ASSAY_OK, resp->status, res->error_code);
        res->err = sns_error_map(resp->status, res->error_code);
        assay_errbuf_set(res->errbuf, res->err, "sns Publish: HTTP %d %s", resp->status,
                         res->error_code);
    }
}

/* ---------------------------------------------------------------- client -- */

struct sns *sns_new(const struct sns_options *opt, char *errbuf)
{
    struct sns *s = NULL;
    if (!opt || !opt->transport || !opt->creds || !opt->region || !opt->region[0]) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "sns: transport, credentials and region are required");
        goto out;
    }
    char *endpoint = endpoint_base_new(opt->endpoint, "sns", opt->region, 1, errbuf);
    if (!endpoint)
        goto out;
    s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->rng_lock, NULL);
    s->transport = opt->transport;
    s->endpoint = endpoint;
    struct signer_options so = {.region = opt->region, .service = "sns", .creds = opt->creds};
    s->signer = signer_new(&so, errbuf);
    if (!s->signer) {
        sns_free(s);
        s = NULL;
        goto out;
    }
    if (opt->retry.max_attempts > 0)
        s->retry = opt->retry;
    else
        retry_policy_init(&s->retry);
    rng_seed(&s->rng, opt->seed ? opt->seed : (uint64_t)clock_mono_ms(NULL) ^ (uintptr_t)s);
    s->timeout_ms = opt->timeout_ms;
    s->sleep_ms = opt->sleep_ms;
    s->sleep_ctx = opt->sleep_ctx;
out:
    return s;
}

void sns_free(struct sns *s)
{
    if (!s)
        return;
    signer_free(s->signer);
    free(s->endpoint);
    pthread_mutex_destroy(&s->rng_lock);
    free(s);
}

const char *sns_endpoint(const struct sns *s)
{
    return s->endpoint;
}

static uint64_t next_random(struct sns *s)
{
    pthread_mutex_lock(&s->rng_lock);
    uint64_t r = rng_next(&s->rng);
    pthread_mutex_unlock(&s->rng_lock);
    return r;
}

static void wait_ms(struct sns *s, int64_t ms)
{
    if (s->sleep_ms) {
        s->sleep_ms(s->sleep_ctx, ms);
        return;
    }
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Validates in and fills req (initialised here) with the request to sign. */
static enum assay_err request_build(struct sns *s, const struct sns_publish_input *in,
                                    struct http_request *req, char *errbuf)
{
    http_request_init(req, "POST", s->endpoint);
    enum assay_err err = sns_publish_validate(in, errbuf);
    if (err != ASSAY_OK)
        return err;
    sns_publish_body(in, &req->body);
    char length[32];
    snprintf(length, sizeof length, "%zu", req->body.len);
    http_request_header_set(req, "Content-Type", CONTENT_TYPE);
    http_request_header_set(req, "Content-Length", length);
    req->timeout_ms = in->timeout_ms > 0 ? in->timeout_ms : s->timeout_ms;
    signer_attach(s->signer, req);
    return ASSAY_OK;
}

struct pending {
    struct http_request req;
    struct http_response resp;
    struct sns_result res;
    sns_done_fn done;
    void *ctx;
};

static void pending_done(void *ctx, enum assay_err err, struct http_request *req,
                         struct http_response *resp)
{
    (void)req;
    struct pending *p = ctx;
    outcome_read(err, resp, &p->res);
    p->done(p->ctx, p->res.err, &p->res);
    http_request_clear(&p->req);
    http_response_clear(&p->resp);
    free(p);
}

enum assay_err sns_publish_submit(struct sns *s, const struct sns_publish_input *in,
                                  sns_done_fn done, void *ctx, char *errbuf)
{
    struct pending *p = xcalloc(1, sizeof *p);
    http_response_init(&p->resp);
    enum assay_err err = request_build(s, in, &p->req, errbuf);
    if (err != ASSAY_OK)
        goto out;
    p->done = done;
    p->ctx = ctx;
    err = http_transport_submit(s->transport, &p->req, &p->resp, pending_done, p);
    if (err != ASSAY_OK)
        assay_errbuf_set(errbuf, err, "sns Publish: %s", p->resp.errbuf);
out:
    if (err != ASSAY_OK) {
        http_request_clear(&p->req);
        http_response_clear(&p->resp);
        free(p);
    }
    return err;
}

enum assay_err sns_publish(struct sns *s, const struct sns_publish_input *in,
                           struct sns_result *res)
{
    struct http_request req;
    struct http_response resp;
    memset(res, 0, sizeof *res);
    http_response_init(&resp);
    res->err = request_build(s, in, &req, res->errbuf);
    if (res->err != ASSAY_OK)
        goto out;
    for (;;) {
        http_response_reset(&resp);
        enum assay_err terr = http_transport_perform(s->transport, &req, &resp);
        outcome_read(terr, &resp, res);
        if (res->err == ASSAY_OK || !retry_should_retry(&s->retry, res->attempts, res->retry))
            break;
        int64_t wait = retry_backoff_ms(&s->retry, res->attempts, res->retry, next_random(s));
        LOG_INFO("sns.retry", LOG_I("status", res->status), LOG_S("code", res->error_code),
                 LOG_I("attempt", res->attempts), LOG_I("wait_ms", wait));
        wait_ms(s, wait);
    }
    if (res->err != ASSAY_OK)
        LOG_WARN("sns.failed", LOG_I("status", res->status), LOG_S("code", res->error_code),
                 LOG_I("attempts", res->attempts), LOG_S("request_id", res->request_id));
out:
    http_request_clear(&req);
    http_response_clear(&resp);
    return res->err;
}
