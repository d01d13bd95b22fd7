/*
 * aws/bedrock: the Converse client. Every state change of a call happens on
 * the transport thread: bedrock_converse hands the call over with a zero-delay
 * timer, and from there the call moves through slot -> buckets -> send ->
 * answer -> (backoff timer -> slot ...) -> done, driven by transport timers
 * and completions. The slot count, the wait queue and the buckets are
 * therefore touched by one thread; the lock guards only the counters that
 * other threads read (stats, pending calls).
 * Called by judges/llm; docs/internals/BEDROCK.md has the state diagram.
 */
#include "aws/bedrock.h"

#include "aws/endpoint.h"
#include "aws/sigv4.h"

#include "aws/http.h"
#include "aws/ratelimit.h"
#include "aws/signer.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/rng.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONCURRENCY 64

/* The buckets of one model id (created on first use, kept until free). */
struct budget {
    char *model_id;
    struct ratelimit requests;
    struct ratelimit tokens;
    struct bedrock_stats stats; /* attempt-level counters of this model (under mu) */
    struct budget *next;
};

struct call {
    struct bedrock_client *c;
    struct budget *budget;
    char *model_id;
    struct http_request req;
    struct http_response resp;
    struct bedrock_result res;
    bedrock_done_fn done;
    void *ctx;
    int64_t started_ms; /* monotonic */
    double est_tokens;  /* reserved: input estimated from the body, plus maxTokens */
    int have_request;   /* took its request token for this attempt */
    int have_tokens;    /* took its token estimate for this attempt */
    int has_slot;
    struct call *next; /* the wait queue */
};

struct bedrock_client {
    struct http_transport *t;
    struct signer *signer;
    char *endpoint;
    int max_concurrency;
    double rpm, tpm, requests_burst, tokens_burst;
    struct retry_policy retry;
    int64_t timeout_ms;
    struct rng rng; /* jitter; transport thread only */

    /* transport thread only */
    struct budget *budgets;
    struct call *wait_head, *wait_tail;
    int n_waiting;
    int in_flight;
    int dispatching;

    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t idle;
    int pending; /* accepted, not yet completed */
    int closing;
    struct bedrock_stats stats;
};

/* ---- small helpers ---- */

void bedrock_label_encode(const char *s, struct buf *out)
{
    sigv4_uri_encode(out, s, strlen(s)); /* RFC 3986: the SDKs' label encoding */
}

void bedrock_endpoint_default(const char *region, struct buf *out)
{
    endpoint_regional_append("bedrock-runtime", region, out);
}

static int64_t mono_now(void)
{
    return clock_mono_ms(NULL);
}

static struct budget *budget_for(struct bedrock_client *c, const char *model_id)
{
    for (struct budget *b = c->budgets; b; b = b->next)
        if (strcmp(b->model_id, model_id) == 0)
            return b;
    struct budget *b = xcalloc(1, sizeof *b);
    b->model_id = xstrdup(model_id);
    ratelimit_init(&b->requests, c->rpm, c->requests_burst, mono_now());
    ratelimit_init(&b->tokens, c->tpm, c->tokens_burst, mono_now());
    pthread_mutex_lock(&c->mu); /* readers (stats) walk the list under it */
    b->next = c->budgets;
    c->budgets = b;
    pthread_mutex_unlock(&c->mu);
    return b;
}

/* ---- the client ---- */

struct bedrock_client *bedrock_client_new(const struct bedrock_options *opt, char *errbuf)
{
    if (!opt || !opt->transport || !opt->creds || !opt->region || !opt->region[0]) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "the Bedrock client needs a transport, credentials and a region");
        return NULL;
    }
    struct signer_options so = {
        .region = opt->region, .service = "bedrock", .creds = opt->creds, .sign_body = 1};
    char *endpoint = endpoint_base_new(opt->endpoint, "bedrock-runtime", opt->region, 0, errbuf);
    if (!endpoint)
        return NULL;
    struct signer *signer = signer_new(&so, errbuf);
    if (!signer) {
        free(endpoint);
        return NULL;
    }
    struct bedrock_client *c = xcalloc(1, sizeof *c);
    c->t = opt->transport;
    c->signer = signer;
    c->endpoint = endpoint;
    c->max_concurrency = opt->max_concurrency > 0 ? opt->max_concurrency : DEFAULT_CONCURRENCY;
    c->rpm = opt->requests_per_minute > 0 ? opt->requests_per_minute : 0;
    c->tpm = opt->tokens_per_minute > 0 ? opt->tokens_per_minute : 0;
    c->requests_burst = opt->requests_burst > 0 ? opt->requests_burst : c->rpm / 60.0;
    if (c->requests_burst < 1)
        c->requests_burst = 1;
    c->tokens_burst = opt->tokens_burst > 0 ? opt->tokens_burst : c->tpm / 6.0;
    if (c->tokens_burst < 1)
        c->tokens_burst = 1;
    if (opt->retry.max_attempts > 0)
        c->retry = opt->retry;
    else
        retry_policy_init(&c->retry);
    c->timeout_ms = opt->timeout_ms;
    uint64_t seed = opt->seed;
    if (seed == 0 && RAND_bytes((unsigned char *)&seed, sizeof seed) != 1)
        seed = (uint64_t)clock_now_ms(NULL) ^ (uint64_t)(uintptr_t)c;
    rng_seed(&c->rng, seed);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->idle, NULL);
    return c;
}

void bedrock_client_free(struct bedrock_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->closing = 1;
    while (c->pending > 0)
        pthread_cond_wait(&c->idle, &c->mu);
    pthread_mutex_unlock(&c->mu);
    while (c->budgets) {
        struct budget *b = c->budgets;
        c->budgets = b->next;
        ratelimit_clear(&b->requests);
        ratelimit_clear(&b->tokens);
        free(b->model_id);
        free(b);
    }
    signer_free(c->signer);
    pthread_cond_destroy(&c->idle);
    pthread_mutex_destroy(&c->mu);
    free(c->endpoint);
    free(c);
}

struct http_transport *bedrock_client_transport(const struct bedrock_client *c)
{
    return c->t;
}

const char *bedrock_client_endpoint(const struct bedrock_client *c)
{
    return c->endpoint;
}

void bedrock_client_stats(struct bedrock_client *c, struct bedrock_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}

void bedrock_client_stats_each(struct bedrock_client *c, bedrock_model_stats_fn fn, void *ctx)
{
    pthread_mutex_lock(&c->mu);
    for (struct budget *b = c->budgets; b; b = b->next)
        fn(ctx, b->model_id, &b->stats);
    pthread_mutex_unlock(&c->mu);
}

/* ---- one call ---- */

static void call_free(struct call *x)
{
    http_request_clear(&x->req);
    http_response_clear(&x->resp);
    buf_clear(&x->res.body);
    free(x->model_id);
    free(x);
}

static void slot_release(struct bedrock_client *c);
static void pace(struct call *x);

/* Ends a call: the one callback, then the call is freed. */
static void finish(struct call *x, enum assay_err err)
{
    struct bedrock_client *c = x->c;
    if (x->has_slot) {
        x->has_slot = 0;
        slot_release(c);
    }
    x->res.latency_ms = mono_now() - x->started_ms;
    /* The answer's body moves into the result. */
    buf_clear(&x->res.body);
    x->res.body = x->resp.body;
    buf_init(&x->resp.body);
    if (err != ASSAY_OK && !x->res.error_message[0])
        snprintf(x->res.error_message, sizeof x->res.error_message, "%s",
                 x->resp.errbuf[0] ? x->resp.errbuf : assay_err_message(err));
    pthread_mutex_lock(&c->mu);
    c->stats.calls_done++;
    pthread_mutex_unlock(&c->mu);
    x->done(x->ctx, err, &x->res);
    call_free(x);
    pthread_mutex_lock(&c->mu);
    if (--c->pending == 0)
        pthread_cond_broadcast(&c->idle);
    pthread_mutex_unlock(&c->mu);
}

static void stats_slots(struct bedrock_client *c)
{
    pthread_mutex_lock(&c->mu);
    c->stats.in_flight = c->in_flight;
    if (c->in_flight > c->stats.in_flight_peak)
        c->stats.in_flight_peak = c->in_flight;
    c->stats.queued = c->n_waiting;
    pthread_mutex_unlock(&c->mu);
}

/* Gives a slot back and hands free slots to waiting calls, in order. A call
 * that fails while starting releases its slot again: the flag keeps that
 * from recursing, the loop picks the slot up. */
static void slot_release(struct bedrock_client *c)
{
    c->in_flight--;
    if (c->dispatching) {
        stats_slots(c);
        return;
    }
    c->dispatching = 1;
    while (c->in_flight < c->max_concurrency && c->wait_head) {
        struct call *x = c->wait_head;
        c->wait_head = x->next;
        if (!c->wait_head)
            c->wait_tail = NULL;
        x->next = NULL;
        c->n_waiting--;
        c->in_flight++;
        x->has_slot = 1;
        stats_slots(c);
        pace(x);
    }
    c->dispatching = 0;
    stats_slots(c);
}

/* Takes a slot, or queues the call for one. */
static void slot_acquire(struct call *x)
{
    struct bedrock_client *c = x->c;
    if (c->in_flight < c->max_concurrency && !c->wait_head) {
        c->in_flight++;
        x->has_slot = 1;
        stats_slots(c);
        pace(x);
        return;
    }
    x->next = NULL;
    if (c->wait_tail)
        c->wait_tail->next = x;
    else
        c->wait_head = x;
    c->wait_tail = x;
    c->n_waiting++;
    stats_slots(c);
}

static void on_pace_timer(void *ctx, enum assay_err err)
{
    struct call *x = ctx;
    if (err != ASSAY_OK) {
        finish(x, err);
        return;
    }
    pace(x);
}

static void on_backoff_timer(void *ctx, enum assay_err err)
{
    struct call *x = ctx;
    if (err != ASSAY_OK) {
        finish(x, err);
        return;
    }
    slot_acquire(x);
}

static void wait_then(struct call *x, int64_t wait_ms, http_timer_fn fn)
{
    enum assay_err err = http_transport_call_later(x->c->t, wait_ms, fn, x);
    if (err != ASSAY_OK) {
        snprintf(x->res.error_message, sizeof x->res.error_message, "%s",
                 "the transport is shutting down");
        finish(x, err);
    }
}

static void on_answer(void *ctx, enum assay_err err, struct http_request *req,
                      struct http_response *resp);

/* Sends the attempt once the buckets allow it (the call holds a slot). */
static void pace(struct call *x)
{
    struct bedrock_client *c = x->c;
    int64_t now = mono_now();
    if (!x->have_request) {
        int64_t wait = ratelimit_take(&x->budget->requests, 1, now);
        if (wait > 0) {
            wait_then(x, wait, on_pace_timer);
            return;
        }
        x->have_request = 1;
    }
    if (!x->have_tokens) {
        int64_t wait = ratelimit_take(&x->budget->tokens, x->est_tokens, now);
        if (wait > 0) {
            wait_then(x, wait, on_pace_timer);
            return;
        }
        x->have_tokens = 1;
    }
    x->res.attempts++;
    pthread_mutex_lock(&c->mu);
    c->stats.invocations++;
    x->budget->stats.invocations++;
    if (x->res.attempts > 1) {
        c->stats.retries++;
        x->budget->stats.retries++;
    }
    pthread_mutex_unlock(&c->mu);
    signer_attach(c->signer, &x->req);
    enum assay_err err = http_transport_submit(c->t, &x->req, &x->resp, on_answer, x);
    if (err != ASSAY_OK)
        finish(x, err);
}

/* AWS's message from an error body ({"message": ...} or {"Message": ...}). */
static void error_message(const struct http_response *resp, char *out, size_t out_size)
{
    out[0] = '\0';
    json_t *doc = json_loadb(buf_cstr(&resp->body), resp->body.len, 0, NULL);
    const char *keys[] = {"message", "Message"};
    for (size_t i = 0; doc && i < 2 && !out[0]; i++) {
        json_t *m = json_object_get(doc, keys[i]);
        if (json_is_string(m))
            snprintf(out, out_size, "%s", json_string_value(m));
    }
    json_decref(doc);
    if (!out[0])
        snprintf(out, out_size, "HTTP status %d", resp->status);
}

static int64_t usage_int(const json_t *usage, const char *key)
{
    json_t *v = json_object_get(usage, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (int64_t)json_integer_value(v) : 0;
}

static void read_usage(struct call *x)
{
    json_t *doc = json_loadb(buf_cstr(&x->resp.body), x->resp.body.len, 0, NULL);
    json_t *usage = json_object_get(doc, "usage");
    x->res.input_tokens = usage_int(usage, "inputTokens");
    x->res.output_tokens = usage_int(usage, "outputTokens");
    x->res.cache_read_input_tokens = usage_int(usage, "cacheReadInputTokens");
    x->res.cache_write_input_tokens = usage_int(usage, "cacheWriteInputTokens");
    json_decref(doc);
}

static void on_answer(void *ctx, enum assay_err err, struct http_request *req,
                      struct http_response *resp)
{
    (void)req;
    struct call *x = ctx;
    struct bedrock_client *c = x->c;
    x->res.status = resp->status;
    x->res.error_code[0] = '\0';
    x->res.error_message[0] = '\0';
    if (err == ASSAY_OK && resp->status >= 400) {
        http_response_error_code(resp, x->res.error_code, sizeof x->res.error_code);
        error_message(resp, x->res.error_message, sizeof x->res.error_message);
    }
    enum retry_class cls = retry_classify(err, resp->status, x->res.error_code);
    int ok = err == ASSAY_OK && resp->status >= 200 && resp->status < 300;
    if (ok)
        read_usage(x);
    if (cls == RETRY_THROTTLED)
        x->res.throttles++;

    enum bedrock_attempt_outcome outcome = BEDROCK_ATTEMPT_OTHER;
    if (ok)
        outcome = BEDROCK_ATTEMPT_OK;
    else if (cls == RETRY_THROTTLED)
        outcome = BEDROCK_ATTEMPT_THROTTLED;
    else if (err == ASSAY_ERR_TIMEOUT || err == ASSAY_ERR_TRANSPORT || resp->status >= 500)
        outcome = BEDROCK_ATTEMPT_SERVER_ERROR;
    else if (err == ASSAY_OK && resp->status >= 400)
        outcome = BEDROCK_ATTEMPT_CLIENT_ERROR;
    int64_t elapsed = resp->elapsed_ms > 0 ? resp->elapsed_ms : 0;
    if (x->res.n_attempt_log < BEDROCK_ATTEMPT_LOG_MAX)
        x->res.attempt_log[x->res.n_attempt_log++] = (struct bedrock_attempt){outcome, elapsed};

    pthread_mutex_lock(&c->mu);
    struct bedrock_stats *both[2] = {&c->stats, &x->budget->stats};
    for (int i = 0; i < 2; i++) {
        struct bedrock_stats *st = both[i];
        if (err == ASSAY_OK)
            st->latency_ms_sum += (uint64_t)elapsed;
        switch (outcome) {
        case BEDROCK_ATTEMPT_OK:
            st->successes++;
            st->input_tokens += (uint64_t)x->res.input_tokens;
            st->output_tokens += (uint64_t)x->res.output_tokens;
            st->cache_read_input_tokens += (uint64_t)x->res.cache_read_input_tokens;
            st->cache_write_input_tokens += (uint64_t)x->res.cache_write_input_tokens;
            break;
        case BEDROCK_ATTEMPT_THROTTLED:
            st->throttles++;
            break;
        case BEDROCK_ATTEMPT_SERVER_ERROR:
            st->server_errors++;
            break;
        case BEDROCK_ATTEMPT_CLIENT_ERROR:
            st->client_errors++;
            break;
        case BEDROCK_ATTEMPT_OTHER:
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);

    /* The attempt is over: its slot goes to the next waiter. */
    x->has_slot = 0;
    slot_release(c);

    if (ok) {
        /* The estimate was taken; charge the difference to the real usage. */
        double used =
            (double)(x->res.input_tokens + x->res.cache_write_input_tokens + x->res.output_tokens);
        ratelimit_charge(&x->budget->tokens, used - x->est_tokens, mono_now());
        finish(x, ASSAY_OK);
        return;
    }
    if (err == ASSAY_ERR_CANCELLED || !retry_should_retry(&c->retry, x->res.attempts, cls)) {
        if (err == ASSAY_OK) {
            if (!x->res.error_code[0])
                snprintf(x->res.error_code, sizeof x->res.error_code, "HTTP%d", resp->status);
            err = ASSAY_ERR_HTTP_STATUS;
        }
        LOG_DEBUG("bedrock.failed", LOG_S("model_id", x->model_id),
                  LOG_S("error_code", x->res.error_code), LOG_I("status", resp->status),
                  LOG_I("attempts", x->res.attempts));
        finish(x, err);
        return;
    }
    int64_t wait = retry_backoff_ms(&c->retry, x->res.attempts, cls, rng_next(&c->rng));
    x->res.backoff_ms += wait;
    LOG_DEBUG("bedrock.retry", LOG_S("model_id", x->model_id),
              LOG_S("error_code", x->res.error_code[0] ? x->res.error_code : assay_err_name(err)),
              LOG_I("status", resp->status), LOG_I("attempt", x->res.attempts),
              LOG_I("wait_ms", wait));
    x->have_request = 0;
    x->have_tokens = 0;
    wait_then(x, wait, on_backoff_timer);
}

static void on_start(void *ctx, enum assay_err err)
{
    struct call *x = ctx;
    if (err != ASSAY_OK) {
        finish(x, err);
        return;
    }
    x->budget = budget_for(x->c, x->model_id);
    slot_acquire(x);
}

enum assay_err bedrock_converse(struct bedrock_client *c, const char *model_id, const char *body,
                                size_t body_len, bedrock_done_fn done, void *ctx, char *errbuf)
{
    if (!c || !done || !body || body_len == 0)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "a Converse call needs a client, a body and a callback");
    size_t id_len = model_id ? strlen(model_id) : 0;
    if (id_len == 0 || id_len > BEDROCK_MODEL_ID_MAX)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "the model id must be 1 to %d bytes", BEDROCK_MODEL_ID_MAX);
    struct call *x = xcalloc(1, sizeof *x);
    x->c = c;
    x->model_id = xstrdup(model_id);
    x->done = done;
    x->ctx = ctx;
    x->started_ms = mono_now();
    /* What Bedrock reserves against the tokens-per-minute quota when a
     * request starts: its input (about four bytes a token for English text
     * and JSON) plus maxTokens; settled to the real usage afterwards. */
    x->est_tokens = (double)(body_len / 4 + 1);
    if (c->tpm > 0) {
        json_t *doc = json_loadb(body, body_len, 0, NULL);
        json_t *mt = json_object_get(json_object_get(doc, "inferenceConfig"), "maxTokens");
        if (json_is_integer(mt) && json_integer_value(mt) > 0)
            x->est_tokens += (double)json_integer_value(mt);
        json_decref(doc);
    }
    buf_init(&x->res.body);
    http_response_init(&x->resp);
    struct buf url = BUF_INIT;
    buf_append_str(&url, c->endpoint);
    buf_append_str(&url, "/model/");
    bedrock_label_encode(model_id, &url);
    buf_append_str(&url, "/converse");
    http_request_init(&x->req, "POST", url.data);
    buf_clear(&url);
    http_request_header_set(&x->req, "Content-Type", "application/json");
    buf_append(&x->req.body, body, body_len);
    x->req.timeout_ms = c->timeout_ms;

    pthread_mutex_lock(&c->mu);
    if (c->closing) {
        pthread_mutex_unlock(&c->mu);
        call_free(x);
        return assay_errbuf_set(errbuf, ASSAY_ERR_CANCELLED, "the Bedrock client is closing");
    }
    c->pending++;
    c->stats.calls++;
    pthread_mutex_unlock(&c->mu);
    /* Hand over to the transport thread, where every later step runs. */
    enum assay_err err = http_transport_call_later(c->t, 0, on_start, x);
    if (err != ASSAY_OK) {
        call_free(x);
        pthread_mutex_lock(&c->mu);
        c->stats.calls--;
        if (--c->pending == 0)
            pthread_cond_broadcast(&c->idle);
        pthread_mutex_unlock(&c->mu);
        return assay_errbuf_set(errbuf, err, "the transport is shutting down");
    }
    return ASSAY_OK;
}
