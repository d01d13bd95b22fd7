/*
 * aws/http: the shared HTTP transport behind every AWS call. One libcurl
 * multi handle, driven by one thread; other threads hand requests over
 * through a mutex-protected queue and wake the thread with
 * curl_multi_wakeup. Completion callbacks run on that thread.
 *
 * Also here: the clock-skew rule (a skew refusal with a skewed Date header
 * moves the shared offset and re-signs and re-sends the request once), and the
 * request/response helpers. docs/internals/HTTP.md describes both.
 * Callers: aws/credentials (IMDS, container, STS), the Bedrock and CloudWatch
 * clients.
 */
#include "aws/http.h"

#include "common/alloc.h"
#include "common/log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 3000
#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_MAX_RESPONSE_BYTES ((size_t)16 * 1024 * 1024)
/* The SDKs correct the clock when it is off by this much or more. */
#define SKEW_THRESHOLD_MS 300000
#define POLL_MS 1000
#define TIMER_MAX_DELAY_MS (24LL * 3600 * 1000)

/* One submitted request, from submit until its callback returns. */
struct transfer {
    struct http_request *req;
    struct http_response *resp;
    http_done_fn done;
    void *ctx;
    CURL *easy;
    struct curl_slist *hdrs;
    size_t max_body;
    int too_large;
    int attempt;
    int64_t started_ms;           /* monotonic, of the current attempt */
    int64_t signed_offset_ms;     /* the skew the current attempt was signed with */
    struct transfer *prev, *next; /* the queue (next only) or the active list */
    char curl_err[CURL_ERROR_SIZE];
};

/* A pending timer; the heap orders by (due_ms, seq). */
struct timer {
    int64_t due_ms; /* monotonic */
    uint64_t seq;
    http_timer_fn fn;
    void *ctx;
};

struct http_transport {
    CURLM *multi;
    pthread_t thread;
    pthread_mutex_t mu; /* guards queue and stopping */
    struct transfer *queue_head, *queue_tail;
    struct timer *timers; /* a binary min-heap, guarded by mu */
    size_t n_timers, cap_timers;
    uint64_t timer_seq;
    int stopping;
    struct transfer *active; /* transport thread only */
    _Atomic int64_t skew_ms;
    const struct clock *clock;
    int64_t connect_timeout_ms;
    int64_t timeout_ms;
    size_t max_response_bytes;
    char *ca_file;
};

/* ---- header arrays, shared by requests and responses ---- */

static void headers_push(struct http_header **arr, size_t *n, size_t *cap, char *name, char *value)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *arr = xrealloc(*arr, *cap * sizeof **arr);
    }
    (*arr)[*n].name = name;
    (*arr)[*n].value = value;
    (*n)++;
}

static void headers_free(struct http_header *arr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(arr[i].name);
        /* Values may be secrets (Authorization, session tokens). */
        secure_free_str(arr[i].value);
    }
    free(arr);
}

static const char *headers_find(const struct http_header *arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(arr[i].name, name) == 0)
            return arr[i].value;
    return NULL;
}

void http_request_init(struct http_request *req, const char *method, const char *url)
{
    memset(req, 0, sizeof *req);
    req->method = xstrdup(method ? method : "GET");
    req->url = xstrdup(url ? url : "");
    buf_init(&req->body);
}

void http_request_clear(struct http_request *req)
{
    if (!req)
        return;
    free(req->method);
    free(req->url);
    headers_free(req->headers, req->n_headers);
    if (req->body.data)
        secure_zero(req->body.data, req->body.len);
    buf_clear(&req->body);
    memset(req, 0, sizeof *req);
}

void http_request_header_add(struct http_request *req, const char *name, const char *value)
{
    headers_push(&req->headers, &req->n_headers, &req->cap_headers, xstrdup(name),
                 xstrdup(value ? value : ""));
}

void http_request_header_remove(struct http_request *req, const char *name)
{
    size_t keep = 0;
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, name) == 0) {
            free(req->headers[i].name);
            secure_free_str(req->headers[i].value);
        } else {
            req->headers[keep++] = req->headers[i];
        }
    }
    req->n_headers = keep;
}

void http_request_header_set(struct http_request *req, const char *name, const char *value)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].name, name) != 0)
            continue;
        secure_free_str(req->headers[i].value);
        req->headers[i].value = xstrdup(value ? value : "");
        /* Drop later duplicates so that exactly one remains, in place. */
        size_t keep = i + 1;
        for (size_t j = i + 1; j < req->n_headers; j++) {
            if (strcasecmp(req->headers[j].name, name) == 0) {
                free(req->headers[j].name);
                secure_free_str(req->headers[j].value);
            } else {
                req->headers[keep++] = req->headers[j];
            }
        }
        req->n_headers = keep;
        return;
    }
    http_request_header_add(req, name, value);
}

const char *http_request_header_get(const struct http_request *req, const char *name)
{
    return headers_find(req->headers, req->n_headers, name);
}

void http_response_init(struct http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    buf_init(&resp->body);
}

void http_response_clear(struct http_response *resp)
{
    if (!resp)
        return;
    headers_free(resp->headers, resp->n_headers);
    if (resp->body.data)
        secure_zero(resp->body.data, resp->body.len); /* may hold credentials */
    buf_clear(&resp->body);
    memset(resp, 0, sizeof *resp);
}

void http_response_reset(struct http_response *resp)
{
    headers_free(resp->headers, resp->n_headers);
    resp->headers = NULL;
    resp->n_headers = 0;
    resp->cap_headers = 0;
    if (resp->body.data)
        secure_zero(resp->body.data, resp->body.len);
    buf_reset(&resp->body);
    resp->status = 0;
    resp->elapsed_ms = 0;
    resp->attempts = 0;
    resp->errbuf[0] = '\0';
}

const char *http_response_header(const struct http_response *resp, const char *name)
{
    return headers_find(resp->headers, resp->n_headers, name);
}

/* ---- clock skew ---- */

int64_t http_transport_skew_ms(const struct http_transport *t)
{
    return atomic_load(&((struct http_transport *)t)->skew_ms);
}

int64_t http_transport_now_ms(const struct http_transport *t)
{
    return clock_now_ms(t->clock) + http_transport_skew_ms(t);
}

/* The codes the AWS SDKs (JS v3 service-error-classification) treat as clock
 * skew. */
static int is_skew_code(const char *code)
{
    static const char *const codes[] = {"AuthFailure",          "InvalidSignatureException",
                                        "RequestExpired",       "RequestInTheFuture",
                                        "RequestTimeTooSkewed", "SignatureDoesNotMatch"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i]) == 0)
            return 1;
    return 0;
}

/*
 * Copies an error code as AWS sends it into out, cleaned the way the SDKs
 * clean it: "Code,other" and "Code:http://..." keep what precedes the
 * separator, "aws.protocol#Code" keeps what follows the '#'.
 */
static void copy_code(const char *s, size_t n, char *out, size_t out_size)
{
    const char *end = s + n;
    for (const char *p = s; p < end; p++) {
        if (*p == ',' || *p == ':' || *p == ';') {
            end = p;
            break;
        }
    }
    const char *hash = NULL;
    for (const char *p = s; p < end; p++)
        if (*p == '#')
            hash = p;
    if (hash)
        s = hash + 1;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t len = (size_t)(end - s);
    if (len >= out_size)
        len = out_size - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

int http_response_error_code(const struct http_response *resp, char *out, size_t out_size)
{
    out[0] = '\0';
    const char *v = http_response_header(resp, "x-amzn-ErrorType");
    if (!v)
        v = http_response_header(resp, "x-amzn-query-error");
    if (v) {
        copy_code(v, strlen(v), out, out_size);
        return out[0] != '\0';
    }
    const char *body = buf_cstr(&resp->body);
    size_t skip = 0;
    while (skip < resp->body.len && strchr(" \t\r\n", body[skip]))
        skip++;
    if (skip < resp->body.len && body[skip] == '{') {
        json_t *doc = json_loadb(body, resp->body.len, 0, NULL);
        const char *keys[] = {"code", "__type", "Code"};
        for (size_t i = 0; doc && i < sizeof keys / sizeof keys[0] && !out[0]; i++) {
            json_t *c = json_object_get(doc, keys[i]);
            if (json_is_string(c))
                copy_code(json_string_value(c), json_string_length(c), out, out_size);
        }
        json_decref(doc);
    } else if (skip < resp->body.len && body[skip] == '<') {
        const char *open = strstr(body, "<Code>");
        const char *close = open ? strstr(open, "</Code>") : NULL;
        if (close)
            copy_code(open + 6, (size_t)(close - open - 6), out, out_size);
    }
    return out[0] != '\0';
}

static int far_apart(int64_t a_ms, int64_t b_ms)
{
    int64_t d = a_ms - b_ms;
    return d <= -SKEW_THRESHOLD_MS || d >= SKEW_THRESHOLD_MS;
}

/*
 * The skew rule. A refusal whose code is a clock-skew code and whose Date
 * header is at least SKEW_THRESHOLD_MS away from the corrected local clock
 * moves the shared offset to (server - local). Returns 1 when the request
 * should be re-signed: its own signing time (taken with signed_offset_ms) was
 * that far from the server's, whether this response or a concurrent one
 * corrected the offset.
 */
static int learn_skew(struct http_transport *t, const struct http_response *resp,
                      int64_t signed_offset_ms)
{
    if (resp->status < 400)
        return 0;
    char code[128];
    if (!http_response_error_code(resp, code, sizeof code) || !is_skew_code(code))
        return 0;
    int64_t server_s;
    if (clock_parse_http_date(http_response_header(resp, "Date"), &server_s) != 0)
        return 0;
    int64_t server_ms = server_s * 1000;
    int64_t local_ms = clock_now_ms(t->clock);
    int64_t offset = atomic_load(&t->skew_ms);
    if (far_apart(server_ms, local_ms + offset)) {
        atomic_store(&t->skew_ms, server_ms - local_ms);
        LOG_WARN("http.clock_skew", LOG_S("error_code", code),
                 LOG_I("skew_ms", server_ms - local_ms), LOG_I("previous_skew_ms", offset));
    }
    return far_apart(server_ms, local_ms + signed_offset_ms);
}

/* ---- libcurl callbacks ---- */

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    struct transfer *x = userdata;
    size_t len = size * n;
    if (len > x->max_body - x->resp->body.len) {
        x->too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    buf_append(&x->resp->body, data, len);
    return len;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static size_t on_header(char *data, size_t size, size_t n, void *userdata)
{
    struct transfer *x = userdata;
    struct http_response *resp = x->resp;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new status line: an interim (1xx) response's headers are dropped. */
        headers_free(resp->headers, resp->n_headers);
        resp->headers = NULL;
        resp->n_headers = resp->cap_headers = 0;
        return len;
    }
    size_t end = len;
    while (end > 0 && is_space(data[end - 1]))
        end--;
    if (end == 0)
        return len;
    if ((data[0] == ' ' || data[0] == '\t') && resp->n_headers > 0) {
        /* An obsolete folded continuation line. */
        size_t start = 0;
        while (start < end && is_space(data[start]))
            start++;
        struct http_header *last = &resp->headers[resp->n_headers - 1];
        struct buf joined = BUF_INIT;
        buf_append_str(&joined, last->value);
        buf_append_char(&joined, ' ');
        buf_append(&joined, data + start, end - start);
        secure_free_str(last->value);
        last->value = buf_detach(&joined, NULL);
        return len;
    }
    const char *colon = memchr(data, ':', end);
    if (!colon)
        return len;
    size_t name_end = (size_t)(colon - data);
    while (name_end > 0 && is_space(data[name_end - 1]))
        name_end--;
    size_t value_start = (size_t)(colon - data) + 1;
    while (value_start < end && is_space(data[value_start]))
        value_start++;
    headers_push(&resp->headers, &resp->n_headers, &resp->cap_headers, xstrndup(data, name_end),
                 xstrndup(data + value_start, end - value_start));
    return len;
}

/* Header names whose values never reach a log line. */
static int is_secret_header(const char *line, size_t name_len)
{
    static const char *const names[] = {
        "authorization", "proxy-authorization", "x-amz-security-token", "x-aws-ec2-metadata-token",
        "cookie",        "set-cookie"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i]) == name_len && strncasecmp(line, names[i], name_len) == 0)
            return 1;
    return 0;
}

/* One line of libcurl's own messages, at debug level; header values that
 * carry secrets are replaced. */
static void log_curl_line(const char *kind, const char *p, size_t n)
{
    while (n > 0 && is_space(p[n - 1]))
        n--;
    if (n == 0)
        return;
    char line[512];
    if (n >= sizeof line)
        n = sizeof line - 1;
    const char *colon = memchr(p, ':', n);
    if (strcmp(kind, "text") != 0 && colon && is_secret_header(p, (size_t)(colon - p)))
        n = (size_t)snprintf(line, sizeof line, "%.*s: [redacted]", (int)(colon - p), p);
    else
        memcpy(line, p, n);
    line[n] = '\0';
    LOG_DEBUG("http.curl", LOG_S("kind", kind), LOG_S("line", line));
}

static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    (void)easy;
    (void)userdata;
    const char *kind;
    switch (type) {
    case CURLINFO_TEXT:
        kind = "text";
        break;
    case CURLINFO_HEADER_IN:
        kind = "header_in";
        break;
    case CURLINFO_HEADER_OUT:
        kind = "header_out";
        break;
    default:
        return 0; /* bodies and TLS records are never logged */
    }
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        log_curl_line(kind, p, len);
        p += len + (nl ? 1 : 0);
    }
    return 0;
}

/* ---- transfers ---- */

static int has_ctl(const char *s)
{
    for (; s && *s; s++)
        if (*s == '\r' || *s == '\n')
            return 1;
    return 0;
}

static int valid_token(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 127 || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return 0;
    return 1;
}

static enum assay_err check_headers(const struct http_request *req, char *errbuf)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!valid_token(req->headers[i].name))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "header name %zu is not a valid token", i);
        if (has_ctl(req->headers[i].value))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "header %s holds a line break", req->headers[i].name);
    }
    return ASSAY_OK;
}

static enum assay_err check_url(const char *url, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    char *scheme = NULL, *host = NULL;
    CURLU *u = curl_url();
    if (!u)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "out of memory parsing a URL");
    if (!url || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "not an absolute URL");
        goto out;
    }
    if (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "URL scheme %s is not http(s)",
                               scheme);
out:
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return err;
}

static void active_link(struct http_transport *t, struct transfer *x)
{
    x->prev = NULL;
    x->next = t->active;
    if (t->active)
        t->active->prev = x;
    t->active = x;
}

static void active_unlink(struct http_transport *t, struct transfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        t->active = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* Releases the current attempt's easy handle (removing it from the multi when
 * it is there) and header list. */
static void release_attempt(struct http_transport *t, struct transfer *x)
{
    if (x->easy) {
        curl_multi_remove_handle(t->multi, x->easy);
        curl_easy_cleanup(x->easy);
        x->easy = NULL;
    }
    curl_slist_free_all(x->hdrs);
    x->hdrs = NULL;
}

/* Ends a transfer: one callback, then the transfer is freed. */
static void finish(struct http_transport *t, struct transfer *x, enum assay_err err)
{
    release_attempt(t, x);
    if (err != ASSAY_OK && !x->resp->errbuf[0])
        assay_errbuf_set(x->resp->errbuf, err, "%s", assay_err_message(err));
    x->done(x->ctx, err, x->req, x->resp);
    free(x);
}

static enum assay_err append_header(struct transfer *x, const char *name, const char *value)
{
    struct buf line = BUF_INIT;
    if (value && value[0])
        buf_appendf(&line, "%s: %s", name, value);
    else if (value)
        buf_appendf(&line, "%s;", name); /* libcurl's way to send an empty value */
    else
        buf_appendf(&line, "%s:", name); /* libcurl's way to drop one of its own */
    struct curl_slist *l = curl_slist_append(x->hdrs, line.data);
    secure_zero(line.data, line.len);
    buf_clear(&line);
    if (!l)
        return ASSAY_ERR_INTERNAL;
    x->hdrs = l;
    return ASSAY_OK;
}

static enum assay_err setup_easy(struct http_transport *t, struct transfer *x)
{
    struct http_request *req = x->req;
    char *errbuf = x->resp->errbuf;
    enum assay_err err = check_headers(req, errbuf);
    if (err != ASSAY_OK)
        return err;
    CURL *e = curl_easy_init();
    if (!e)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "curl_easy_init failed");
    x->easy = e;
    x->curl_err[0] = '\0';
    x->too_large = 0;

    for (size_t i = 0; i < req->n_headers && err == ASSAY_OK; i++)
        err = append_header(x, req->headers[i].name, req->headers[i].value);
    /* No 100-continue round trip before a body; no form content type unless
     * the caller chose one. */
    if (err == ASSAY_OK && !http_request_header_get(req, "Expect"))
        err = append_header(x, "Expect", NULL);
    if (err == ASSAY_OK && !http_request_header_get(req, "Content-Type"))
        err = append_header(x, "Content-Type", NULL);
    if (err != ASSAY_OK)
        return assay_errbuf_set(errbuf, err, "out of memory building headers");

    int64_t connect_ms =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : t->connect_timeout_ms;
    int64_t total_ms = req->timeout_ms > 0 ? req->timeout_ms : t->timeout_ms;
    x->max_body = req->max_response_bytes > 0 ? req->max_response_bytes : t->max_response_bytes;

    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->direct)
        curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* Over TLS, wait for ALPN to say whether a connection multiplexes rather
     * than open another; over plain HTTP/1.1 that wait would serialise. */
    if (strncasecmp(req->url, "https:", 6) == 0)
        curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)total_ms);
    if (x->max_body <= (size_t)INT64_MAX)
        curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_body);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->curl_err);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    /* TLS peer and host verification stay at libcurl's default: on. */
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }

    if (strcmp(req->method, "GET") == 0 && req->body.len == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body.data ? req->body.data : "");
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    }
    return ASSAY_OK;
}

/* Signs (with the corrected time) and starts one attempt; on failure the
 * transfer ends with the error and nothing is sent. */
static void start_attempt(struct http_transport *t, struct transfer *x)
{
    enum assay_err err = ASSAY_OK;
    x->attempt++;
    x->resp->attempts = x->attempt;
    x->signed_offset_ms = http_transport_skew_ms(t);
    if (x->req->sign) {
        err = x->req->sign(x->req->sign_ctx, x->req, clock_now_ms(t->clock) + x->signed_offset_ms,
                           x->resp->errbuf);
        if (err != ASSAY_OK)
            goto out;
    }
    err = setup_easy(t, x);
    if (err != ASSAY_OK)
        goto out;
    x->started_ms = clock_mono_ms(NULL);
    CURLMcode mc = curl_multi_add_handle(t->multi, x->easy);
    if (mc != CURLM_OK)
        err = assay_errbuf_set(x->resp->errbuf, ASSAY_ERR_TRANSPORT, "curl multi: %s",
                               curl_multi_strerror(mc));
out:
    if (err != ASSAY_OK) {
        finish(t, x, err);
        return;
    }
    active_link(t, x);
}

static enum assay_err map_result(struct transfer *x, CURLcode rc)
{
    char *errbuf = x->resp->errbuf;
    const char *detail = x->curl_err[0] ? x->curl_err : curl_easy_strerror(rc);
    if (rc == CURLE_OK)
        return ASSAY_OK;
    if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "response body larger than %zu bytes",
                                x->max_body);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return assay_errbuf_set(errbuf, ASSAY_ERR_TIMEOUT, "%s", detail);
    return assay_errbuf_set(errbuf, ASSAY_ERR_TRANSPORT, "%s", detail);
}

static void on_complete(struct http_transport *t, struct transfer *x, CURLcode rc)
{
    active_unlink(t, x);
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    x->resp->status = (int)status;
    x->resp->elapsed_ms = clock_mono_ms(NULL) - x->started_ms;
    enum assay_err err = map_result(x, rc);
    if (err == ASSAY_OK && learn_skew(t, x->resp, x->signed_offset_ms) && x->attempt == 1 &&
        x->req->sign) {
        LOG_INFO("http.skew_resend", LOG_S("method", x->req->method),
                 LOG_I("status", x->resp->status));
        release_attempt(t, x);
        http_response_reset(x->resp);
        start_attempt(t, x);
        return;
    }
    finish(t, x, err);
}

static void drain_messages(struct http_transport *t)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        CURLcode rc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        on_complete(t, (struct transfer *)(void *)priv, rc);
    }
}

/* ---- timers: a min-heap under the transport's lock ---- */

static int timer_before(const struct timer *a, const struct timer *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void timer_push(struct http_transport *t, struct timer tm)
{
    if (t->n_timers == t->cap_timers) {
        t->cap_timers = t->cap_timers ? t->cap_timers * 2 : 16;
        t->timers = xrealloc(t->timers, t->cap_timers * sizeof *t->timers);
    }
    size_t i = t->n_timers++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(&tm, &t->timers[parent]))
            break;
        t->timers[i] = t->timers[parent];
        i = parent;
    }
    t->timers[i] = tm;
}

static struct timer timer_pop(struct http_transport *t)
{
    struct timer top = t->timers[0];
    struct timer last = t->timers[--t->n_timers];
    size_t i = 0, n = t->n_timers;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && timer_before(&t->timers[c + 1], &t->timers[c]))
            c++;
        if (!timer_before(&t->timers[c], &last))
            break;
        t->timers[i] = t->timers[c];
        i = c;
    }
    if (n > 0)
        t->timers[i] = last;
    return top;
}

/* Runs the timers that are due, one at a time and outside the lock (a timer
 * may set another). Returns the milliseconds until the next one, capped at
 * POLL_MS. */
static int run_timers(struct http_transport *t)
{
    int64_t now = clock_mono_ms(NULL);
    for (;;) {
        pthread_mutex_lock(&t->mu);
        if (t->stopping || t->n_timers == 0 || t->timers[0].due_ms > now) {
            int64_t wait = POLL_MS;
            if (!t->stopping && t->n_timers > 0 && t->timers[0].due_ms - now < wait)
                wait = t->timers[0].due_ms - now;
            pthread_mutex_unlock(&t->mu);
            return (int)(wait < 0 ? 0 : wait);
        }
        struct timer tm = timer_pop(t);
        pthread_mutex_unlock(&t->mu);
        tm.fn(tm.ctx, ASSAY_OK);
    }
}

enum assay_err http_transport_call_later(struct http_transport *t, int64_t delay_ms,
                                         http_timer_fn fn, void *ctx)
{
    if (!t || !fn)
        return ASSAY_ERR_INVALID_ARGUMENT;
    /* A day is as long as any wait here needs; the cap keeps the sum finite. */
    if (delay_ms > TIMER_MAX_DELAY_MS)
        delay_ms = TIMER_MAX_DELAY_MS;
    struct timer tm = {clock_mono_ms(NULL) + (delay_ms > 0 ? delay_ms : 0), 0, fn, ctx};
    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        return ASSAY_ERR_CANCELLED;
    }
    tm.seq = t->timer_seq++;
    int first = t->n_timers == 0 || timer_before(&tm, &t->timers[0]);
    timer_push(t, tm);
    pthread_mutex_unlock(&t->mu);
    /* The thread sleeps until the earliest timer; an earlier one wakes it. */
    if (first && !http_transport_on_thread(t))
        curl_multi_wakeup(t->multi);
    return ASSAY_OK;
}

int http_transport_on_thread(const struct http_transport *t)
{
    return t && pthread_equal(pthread_self(), t->thread);
}

/* Ends everything still queued or in flight with ASSAY_ERR_CANCELLED. */
static void cancel_all(struct http_transport *t)
{
    while (t->active) {
        struct transfer *x = t->active;
        active_unlink(t, x);
        assay_errbuf_set(x->resp->errbuf, ASSAY_ERR_CANCELLED, "the transport was shut down");
        finish(t, x, ASSAY_ERR_CANCELLED);
    }
    pthread_mutex_lock(&t->mu);
    struct transfer *q = t->queue_head;
    t->queue_head = t->queue_tail = NULL;
    pthread_mutex_unlock(&t->mu);
    while (q) {
        struct transfer *next = q->next;
        assay_errbuf_set(q->resp->errbuf, ASSAY_ERR_CANCELLED, "the transport was shut down");
        finish(t, q, ASSAY_ERR_CANCELLED);
        q = next;
    }
    /* Timers last: a cancelled transfer's callback may have set one (it is
     * refused once stopping is set, so this loop ends). */
    for (;;) {
        pthread_mutex_lock(&t->mu);
        if (t->n_timers == 0) {
            pthread_mutex_unlock(&t->mu);
            break;
        }
        struct timer tm = timer_pop(t);
        pthread_mutex_unlock(&t->mu);
        tm.fn(tm.ctx, ASSAY_ERR_CANCELLED);
    }
}

static void *run(void *arg)
{
    struct http_transport *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->mu);
        int stop = t->stopping;
        struct transfer *q = stop ? NULL : t->queue_head;
        if (!stop)
            t->queue_head = t->queue_tail = NULL;
        pthread_mutex_unlock(&t->mu);
        if (stop)
            break;
        while (q) {
            struct transfer *next = q->next;
            q->next = NULL;
            start_attempt(t, q);
            q = next;
        }
        int running = 0;
        CURLMcode mc = curl_multi_perform(t->multi, &running);
        if (mc != CURLM_OK)
            LOG_ERROR("http.multi_perform", LOG_S("error", curl_multi_strerror(mc)));
        drain_messages(t);
        int wait_ms = run_timers(t);
        /* A timer or callback may have queued requests: do not sleep on them. */
        pthread_mutex_lock(&t->mu);
        if (t->queue_head || t->stopping)
            wait_ms = 0;
        pthread_mutex_unlock(&t->mu);
        mc = curl_multi_poll(t->multi, NULL, 0, wait_ms, NULL);
        if (mc != CURLM_OK) {
            /* Not expected; pause rather than spin while it lasts. */
            LOG_ERROR("http.multi_poll", LOG_S("error", curl_multi_strerror(mc)));
            struct timespec pause = {0, 50 * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
    cancel_all(t);
    return NULL;
}

/* ---- the transport ---- */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct http_transport *http_transport_new(const struct http_transport_options *opt, char *errbuf)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "curl_global_init: %s",
                         curl_easy_strerror(global_rc));
        return NULL;
    }
    struct http_transport *t = xcalloc(1, sizeof *t);
    atomic_init(&t->skew_ms, 0);
    t->clock = opt && opt->clock ? opt->clock : clock_system();
    t->connect_timeout_ms =
        opt && opt->connect_timeout_ms > 0 ? opt->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    t->timeout_ms = opt && opt->timeout_ms > 0 ? opt->timeout_ms : DEFAULT_TIMEOUT_MS;
    t->max_response_bytes =
        opt && opt->max_response_bytes > 0 ? opt->max_response_bytes : DEFAULT_MAX_RESPONSE_BYTES;
    t->ca_file = opt && opt->ca_file && opt->ca_file[0] ? xstrdup(opt->ca_file) : NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->multi = curl_multi_init();
    if (!t->multi) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "curl_multi_init failed");
        goto fail;
    }
    curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (opt && opt->max_host_connections > 0)
        curl_multi_setopt(t->multi, CURLMOPT_MAX_HOST_CONNECTIONS, opt->max_host_connections);
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "could not start the transport thread");
        goto fail;
    }
    return t;
fail:
    if (t->multi)
        curl_multi_cleanup(t->multi);
    pthread_mutex_destroy(&t->mu);
    free(t->ca_file);
    free(t);
    return NULL;
}

void http_transport_free(struct http_transport *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stopping = 1;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->multi);
    pthread_join(t->thread, NULL);
    curl_multi_cleanup(t->multi);
    pthread_mutex_destroy(&t->mu);
    free(t->timers);
    free(t->ca_file);
    free(t);
}

enum assay_err http_transport_submit(struct http_transport *t, struct http_request *req,
                                     struct http_response *resp, http_done_fn done, void *ctx)
{
    char *errbuf = resp ? resp->errbuf : NULL;
    if (!t || !req || !resp || !done)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "missing argument");
    if (!valid_token(req->method))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "not a valid HTTP method");
    enum assay_err err = check_url(req->url, errbuf);
    if (err == ASSAY_OK)
        err = check_headers(req, errbuf);
    if (err != ASSAY_OK)
        return err;

    http_response_reset(resp);
    struct transfer *x = xcalloc(1, sizeof *x);
    x->req = req;
    x->resp = resp;
    x->done = done;
    x->ctx = ctx;

    pthread_mutex_lock(&t->mu);
    if (t->stopping) {
        pthread_mutex_unlock(&t->mu);
        free(x);
        return assay_errbuf_set(errbuf, ASSAY_ERR_CANCELLED, "the transport is shutting down");
    }
    if (t->queue_tail)
        t->queue_tail->next = x;
    else
        t->queue_head = x;
    t->queue_tail = x;
    pthread_mutex_unlock(&t->mu);
    curl_multi_wakeup(t->multi);
    return ASSAY_OK;
}

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    enum assay_err err;
};

static void wake(void *ctx, enum assay_err err, struct http_request *req,
                 struct http_response *resp)
{
    (void)req;
    (void)resp;
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

enum assay_err http_transport_perform(struct http_transport *t, struct http_request *req,
                                      struct http_response *resp)
{
    if (http_transport_on_thread(t))
        return assay_errbuf_set(resp ? resp->errbuf : NULL, ASSAY_ERR_INVALID_ARGUMENT,
                                "perform called from a completion callback");
    struct waiter w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    enum assay_err err = http_transport_submit(t, req, resp, wake, &w);
    if (err != ASSAY_OK)
        goto out;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    err = w.err;
    pthread_mutex_unlock(&w.mu);
out:
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return err;
}
