/*
 * aws/http: the one shared HTTP transport for every AWS call (Bedrock,
 * CloudWatch, STS, IMDS, container credentials).
 *
 * A transport owns one libcurl multi handle and one thread that drives it:
 * connection reuse, HTTP/2 where the server offers it, connect and total
 * timeouts, a bound on response size, TLS verification always on, proxies from
 * the standard environment variables (http_proxy, https_proxy, no_proxy), and
 * many requests in flight without a thread per request.
 *
 * Clock skew: when a server refuses a request because its signing time is off
 * and its Date header shows the local clock is skewed, the transport keeps the
 * offset for all later requests and re-signs and re-sends that request once,
 * as the AWS SDKs do. Signing therefore happens in the transport, through the
 * request's sign hook, which receives the corrected time.
 *
 * Threading: submit and perform may be called from any thread. Completion
 * callbacks run on the transport thread and must not block; perform must not
 * be called from a completion callback.
 * Ownership: the request and response are the caller's, borrowed by the
 * transport from submit until the completion callback returns.
 */
#ifndef ASSAY_AWS_HTTP_H
#define ASSAY_AWS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/err.h"

struct http_header {
    char *name;
    char *value;
};

struct http_request;

/*
 * Called before each send of the request (the first, and the one re-send
 * after a clock-skew refusal) with the current time corrected by the known
 * skew, in epoch milliseconds. May set or replace headers (x-amz-date,
 * Authorization, ...). A non-OK return ends the request with that error and
 * the detail in errbuf.
 */
typedef enum assay_err (*http_sign_fn)(void *ctx, struct http_request *req, int64_t now_ms,
                                       char *errbuf);

struct http_request {
    char *method;                /* "GET", "PUT", "POST", ... */
    char *url;                   /* absolute http:// or https:// URL */
    struct http_header *headers; /* in the order they are sent */
    size_t n_headers;
    size_t cap_headers;
    struct buf body;
    int64_t timeout_ms;         /* total; 0 = the transport's default */
    int64_t connect_timeout_ms; /* 0 = the transport's default */
    size_t max_response_bytes;  /* 0 = the transport's default */
    int direct;                 /* 1: never through a proxy (link-local metadata
                                   endpoints, as the AWS SDKs do for IMDS) */
    http_sign_fn sign;          /* optional */
    void *sign_ctx;
};

struct http_response {
    int status;                  /* 0 when no response arrived */
    struct http_header *headers; /* as received, names as sent by the server */
    size_t n_headers;
    size_t cap_headers;
    struct buf body;
    int64_t elapsed_ms; /* of the last attempt */
    int attempts;       /* 1, or 2 after a skew re-send */
    char errbuf[ASSAY_ERRBUF_SIZE];
};

/* Request and response: the caller holds the struct; _clear frees contents. */
void http_request_init(struct http_request *req, const char *method, const char *url);
void http_request_clear(struct http_request *req);
/* Sets a header, replacing any with the same name (case-insensitive). */
void http_request_header_set(struct http_request *req, const char *name, const char *value);
/* Adds a header even when one with the same name exists. */
void http_request_header_add(struct http_request *req, const char *name, const char *value);
/* Value of the first header with this name (case-insensitive), or NULL. */
const char *http_request_header_get(const struct http_request *req, const char *name);
void http_request_header_remove(struct http_request *req, const char *name);

void http_response_init(struct http_response *resp);
void http_response_clear(struct http_response *resp);
/* Empties a response for reuse (a retry). */
void http_response_reset(struct http_response *resp);
const char *http_response_header(const struct http_response *resp, const char *name);
/*
 * The error code of an AWS error response, looked for where the AWS SDKs look,
 * in their order: the x-amzn-ErrorType header, the x-amzn-query-error header,
 * a JSON body's "code" / "__type", an XML body's <Code>; cleaned as they clean
 * it ("ns#Code" -> "Code", "Code:http://..." -> "Code"). Writes at most
 * out_size bytes with the terminator; returns 1 when a code was found, else 0
 * with out = "".
 */
int http_response_error_code(const struct http_response *resp, char *out, size_t out_size);

struct http_transport_options {
    int64_t connect_timeout_ms; /* default 3,000 */
    int64_t timeout_ms;         /* default 60,000 */
    size_t max_response_bytes;  /* default 16 MiB */
    long max_host_connections;  /* default 0 (libcurl's: no limit) */
    const struct clock *clock;  /* NULL: the system clock */
    const char *ca_file;        /* optional extra CA bundle (AWS_CA_BUNDLE) */
};

struct http_transport;

/* NULL options: the defaults. Returns NULL (detail in errbuf) when libcurl or
 * the thread cannot start. */
struct http_transport *http_transport_new(const struct http_transport_options *opt, char *errbuf);
/* Ends requests in flight (their callbacks get ASSAY_ERR_CANCELLED), stops the
 * thread, frees. Accepts NULL. Must not be called from a callback. */
void http_transport_free(struct http_transport *t);

/*
 * Called once per submitted request on the transport thread. err is ASSAY_OK
 * whenever an HTTP response arrived, whatever its status; otherwise
 * ASSAY_ERR_TIMEOUT, ASSAY_ERR_TRANSPORT, ASSAY_ERR_TOO_LARGE,
 * ASSAY_ERR_CANCELLED or the sign hook's error, with the detail in
 * resp->errbuf.
 */
typedef void (*http_done_fn)(void *ctx, enum assay_err err, struct http_request *req,
                             struct http_response *resp);

/*
 * Queues the request. On ASSAY_OK, done is called exactly once later; on an
 * error return (bad URL, transport shut down) done is never called.
 */
enum assay_err http_transport_submit(struct http_transport *t, struct http_request *req,
                                     struct http_response *resp, http_done_fn done, void *ctx);

/* Blocking: submits and waits. Returns what the callback would receive. */
enum assay_err http_transport_perform(struct http_transport *t, struct http_request *req,
                                      struct http_response *resp);

/*
 * Timers, for delayed work that must not hold a thread: retry backoff and
 * rate-limit waits of the service clients. fn runs once on the transport
 * thread, with ASSAY_OK when delay_ms (monotonic, real time) has passed, or
 * with ASSAY_ERR_CANCELLED when the transport is freed first. Like a
 * completion callback it must not block; it may submit requests and set
 * further timers. Timers due at the same time run in the order they were set.
 */
typedef void (*http_timer_fn)(void *ctx, enum assay_err err);

/*
 * Sets a timer (delay_ms <= 0: run on the transport thread's next turn;
 * delays above a day are cut to a day).
 * Returns ASSAY_OK, after which fn is called exactly once; or
 * ASSAY_ERR_INVALID_ARGUMENT (no t or fn) / ASSAY_ERR_CANCELLED (the
 * transport is shutting down), and fn is never called.
 */
enum assay_err http_transport_call_later(struct http_transport *t, int64_t delay_ms,
                                         http_timer_fn fn, void *ctx);

/* 1 when the calling thread is t's transport thread (inside a callback). */
int http_transport_on_thread(const struct http_transport *t);

/* The clock offset learned from servers (server minus local), milliseconds. */
int64_t http_transport_skew_ms(const struct http_transport *t);
/* Current time corrected by the learned skew, epoch milliseconds. */
int64_t http_transport_now_ms(const struct http_transport *t);

#endif
