/*
 * emulator/router: libmicrohttpd plumbing, routing, SigV4 checks and the
 * request log. Per-request state lives in libmicrohttpd's per-request slot
 * (created by the URI log callback, which sees the raw request target) and is
 * freed in the completion callback.
 */
#include "emulator/router.h"

#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "emulator/verify.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct router {
    struct MHD_Daemon *daemon;
    struct router_config cfg;
    uint16_t port;
    atomic_uint_fast64_t seq;
    uint64_t id_base;
    pthread_mutex_t log_lock;
};

struct conn_state {
    char *uri;
    struct buf body;
    int headers_seen; /* the first call carries headers only, never the body */
    int too_large;
};

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    struct conn_state *st = xcalloc(1, sizeof *st);
    st->uri = xstrdup(uri);
    buf_init(&st->body);
    return st;
}

static void completed(void *cls, struct MHD_Connection *con, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con;
    (void)toe;
    struct conn_state *st = *con_cls;
    if (!st)
        return;
    free(st->uri);
    buf_clear(&st->body);
    free(st);
    *con_cls = NULL;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    struct router_request *req = cls;
    if (req->n_headers < ROUTER_MAX_HEADERS) {
        req->headers[req->n_headers].name = key;
        req->headers[req->n_headers].value = value ? value : "";
        req->n_headers++;
    }
    return MHD_YES;
}

const char *router_request_header(const struct router_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

void router_response_header(struct router_response *resp, const char *name, const char *value)
{
    size_t max = sizeof resp->header_names / sizeof *resp->header_names;
    if (resp->n_headers == max)
        return;
    resp->header_names[resp->n_headers] = xstrdup(name);
    resp->header_values[resp->n_headers] = xstrdup(value);
    resp->n_headers++;
}

void router_response_error(struct router_response *resp, int status, const char *code,
                           const char *message)
{
    resp->status = status;
    snprintf(resp->error_code, sizeof resp->error_code, "%s", code);
    router_response_header(resp, "x-amzn-ErrorType", code);
    router_response_header(resp, "Content-Type", "application/json");
    json_t *body = json_pack("{s:s}", "message", message);
    char *text = json_dumps(body, JSON_COMPACT);
    buf_reset(&resp->body);
    buf_append_str(&resp->body, text);
    free(text);
    json_decref(body);
}

/* Sleeps ms in short slices, ending early when the emulator stops. */
static void hold(const struct router *r, int64_t ms)
{
    while (ms > 0 && !(r->cfg.stopping && atomic_load(r->cfg.stopping))) {
        int64_t slice = ms < 20 ? ms : 20;
        struct timespec ts = {0, (long)slice * 1000000L};
        nanosleep(&ts, NULL);
        ms -= slice;
    }
}

static void request_id(const struct router *r, uint64_t seq, char out[37])
{
    uint64_t a = r->id_base ^ (seq * 0x9e3779b97f4a7c15ull);
    a ^= a >> 29;
    a *= 0xbf58476d1ce4e5b9ull;
    uint64_t b = (a ^ (a >> 31)) * 0x94d049bb133111ebull;
    snprintf(out, 37, "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff), (unsigned)(b >> 52),
             (unsigned long long)(b & 0xffffffffffffull));
}

static void log_request(struct router *r, const struct router_request *req,
                        const struct router_response *resp, const char *service, int64_t latency_ms)
{
    if (!r->cfg.request_log)
        return;
    char when[25];
    clock_format_iso8601_ms(clock_now_ms(NULL), when);
    json_t *line =
        json_pack("{s:s, s:I, s:s, s:s, s:s, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "time", when,
                  "seq", (json_int_t)req->seq, "service", service, "operation", resp->operation,
                  "model", resp->model, "status", resp->status, "error", resp->error_code, "fault",
                  resp->fault, "latency_ms", (json_int_t)latency_ms, "input_tokens",
                  (json_int_t)resp->input_tokens, "output_tokens", (json_int_t)resp->output_tokens,
                  "cache_read_input_tokens", (json_int_t)resp->cache_read_tokens,
                  "cache_write_input_tokens", (json_int_t)resp->cache_write_tokens);
    /* A model id that is not valid UTF-8 makes json_pack fail: log without it. */
    if (!line)
        line = json_pack("{s:s, s:I, s:s, s:i, s:s}", "time", when, "seq", (json_int_t)req->seq,
                         "service", service, "status", resp->status, "error", resp->error_code);
    char *text = json_dumps(line, JSON_COMPACT);
    pthread_mutex_lock(&r->log_lock);
    if (text) {
        fputs(text, r->cfg.request_log);
        fputc('\n', r->cfg.request_log);
        fflush(r->cfg.request_log);
    }
    pthread_mutex_unlock(&r->log_lock);
    free(text);
    json_decref(line);
}

static void dispatch(struct router *r, const struct router_request *req,
                     struct router_response *resp, const char **service_name, int too_large)
{
    const struct router_service *svc = NULL;
    for (size_t i = 0; i < r->cfg.n_services && !svc; i++)
        if (r->cfg.services[i].match(r->cfg.services[i].ctx, req))
            svc = &r->cfg.services[i];
    if (!svc) {
        router_response_error(resp, 404, "UnknownOperationException",
                              "The requested operation is not recognized by the service.");
        return;
    }
    *service_name = svc->name;
    if (too_large) {
        router_response_error(resp, 413, "RequestEntityTooLarge",
                              "Request body is larger than the service accepts.");
        return;
    }
    struct verify_key keys[8];
    size_t n = r->cfg.n_keys < 8 ? r->cfg.n_keys : 8;
    for (size_t i = 0; i < n; i++) {
        keys[i].access_key_id = r->cfg.keys[i].access_key_id;
        keys[i].secret_access_key = r->cfg.keys[i].secret_access_key;
        keys[i].region = r->cfg.region;
        keys[i].service = svc->signing_name;
    }
    struct verify_request vr = {.method = req->method,
                                .uri = req->uri,
                                .headers = req->headers,
                                .n_headers = req->n_headers,
                                .body = req->body,
                                .body_len = req->body_len};
    char code[64], message[256];
    if (verify_sigv4(&vr, keys, n, clock_now_ms(NULL), code, sizeof code, message,
                     sizeof message) != 0) {
        router_response_error(resp, 403, code, message);
        snprintf(resp->fault, sizeof resp->fault, "auth");
        return;
    }
    svc->handle(svc->ctx, req, resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)url;
    struct router *r = cls;
    struct conn_state *st = *con_cls;
    if (!st->headers_seen) {
        st->headers_seen = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (st->body.len + *upload_data_size > ROUTER_MAX_BODY)
            st->too_large = 1;
        else
            buf_append(&st->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    int64_t start_ms = clock_mono_ms(NULL);
    struct router_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.uri = st->uri;
    req.body = buf_cstr(&st->body);
    req.body_len = st->body.len;
    req.seq = atomic_fetch_add(&r->seq, 1);
    MHD_get_connection_values(con, MHD_HEADER_KIND, collect_header, &req);

    struct router_response resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    buf_init(&resp.body);
    const char *service = "";
    dispatch(r, &req, &resp, &service, st->too_large);
    hold(r, resp.delay_ms);

    char id[37];
    request_id(r, req.seq, id);
    struct MHD_Response *mr = MHD_create_response_from_buffer(
        resp.body.len, (void *)buf_cstr(&resp.body), MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(mr, "x-amzn-RequestId", id);
    for (size_t i = 0; i < resp.n_headers; i++)
        MHD_add_response_header(mr, resp.header_names[i], resp.header_values[i]);
    enum MHD_Result ret = MHD_queue_response(con, (unsigned)resp.status, mr);
    MHD_destroy_response(mr);
    log_request(r, &req, &resp, service, clock_mono_ms(NULL) - start_ms);
    if (resp.error_code[0])
        LOG_DEBUG("emulator.refused", LOG_I("seq", req.seq), LOG_I("status", resp.status),
                  LOG_S("error", resp.error_code));
    for (size_t i = 0; i < resp.n_headers; i++) {
        free(resp.header_names[i]);
        free(resp.header_values[i]);
    }
    buf_clear(&resp.body);
    return ret;
}

static void mhd_log(void *cls, const char *fm, va_list ap)
{
    (void)cls;
    char text[512];
    /* fm is libmicrohttpd's own literal format, never request text. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    vsnprintf(text, sizeof text, fm, ap);
#pragma GCC diagnostic pop
    text[strcspn(text, "\n")] = '\0';
    /* Mostly clients closing kept-alive connections: debug, not warnings. */
    LOG_DEBUG("emulator.mhd", LOG_S("message", text));
}

struct router *router_start(const struct router_config *cfg, char *errbuf)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(cfg->port);
    if (strcmp(cfg->host, "127.0.0.1") != 0 && strcmp(cfg->host, "localhost") != 0) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "the emulator listens on 127.0.0.1 only, not on %s", cfg->host);
        return NULL;
    }
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct router *r = xcalloc(1, sizeof *r);
    r->cfg = *cfg;
    atomic_init(&r->seq, 0);
    r->id_base = (uint64_t)clock_now_ms(NULL) * 0x2545f4914f6cdd1dull;
    pthread_mutex_init(&r->log_lock, NULL);
    r->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG,
        0, NULL, NULL, on_request, r, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, r, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_URI_LOG_CALLBACK, uri_logger, r,
        MHD_OPTION_NOTIFY_COMPLETED, completed, r, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_END);
    if (!r->daemon) {
        assay_errbuf_set(errbuf, ASSAY_ERR_TRANSPORT, "could not listen on 127.0.0.1:%u",
                         (unsigned)cfg->port);
        pthread_mutex_destroy(&r->log_lock);
        free(r);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(r->daemon, MHD_DAEMON_INFO_BIND_PORT);
    r->port = info ? info->port : cfg->port;
    return r;
}

uint16_t router_port(const struct router *r)
{
    return r->port;
}

void router_stop(struct router *r)
{
    if (!r)
        return;
    MHD_stop_daemon(r->daemon);
    pthread_mutex_destroy(&r->log_lock);
    free(r);
}
