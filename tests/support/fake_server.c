/*
 * tests/support/fake_server: libmicrohttpd-based peer for tests.
 */
#include "tests/support/fake_server.h"

#include "common/alloc.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct fake_server {
    struct MHD_Daemon *daemon;
    fake_handler_fn fn;
    void *ctx;
    uint16_t port;
    char url[64];
    atomic_int hits;
    atomic_int connections;
};

struct conn_state {
    char *uri;
    struct buf body;
    int headers_seen; /* the first call carries headers only, never the body */
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
    struct fake_request *req = cls;
    if (req->n_headers < FAKE_MAX_HEADERS) {
        req->headers[req->n_headers].name = key;
        req->headers[req->n_headers].value = value ? value : "";
        req->n_headers++;
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct fake_server *s = cls;
    struct conn_state *st = *con_cls;
    if (!st->headers_seen) {
        st->headers_seen = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        buf_append(&st->body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    struct fake_request req;
    memset(&req, 0, sizeof req);
    req.method = method;
    req.uri = st->uri;
    req.path = url;
    req.body = buf_cstr(&st->body);
    req.body_len = st->body.len;
    MHD_get_connection_values(con, MHD_HEADER_KIND, collect_header, &req);

    struct fake_response resp;
    memset(&resp, 0, sizeof resp);
    resp.status = 200;
    buf_init(&resp.body);
    s->fn(s->ctx, &req, &resp);
    atomic_fetch_add(&s->hits, 1);
    if (resp.delay_ms > 0) {
        struct timespec ts = {resp.delay_ms / 1000, (long)(resp.delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    enum MHD_Result ret = MHD_NO;
    if (!resp.close) {
        struct MHD_Response *r = MHD_create_response_from_buffer(
            resp.body.len, (void *)buf_cstr(&resp.body), MHD_RESPMEM_MUST_COPY);
        for (size_t i = 0; i < resp.n_headers; i++)
            MHD_add_response_header(r, resp.header_names[i], resp.header_values[i]);
        ret = MHD_queue_response(con, (unsigned)resp.status, r);
        MHD_destroy_response(r);
    }
    for (size_t i = 0; i < resp.n_headers; i++) {
        free(resp.header_names[i]);
        free(resp.header_values[i]);
    }
    buf_clear(&resp.body);
    return ret;
}

static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)con;
    (void)socket_context;
    struct fake_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&s->connections, 1);
}

struct fake_server *fake_server_start(fake_handler_fn fn, void *ctx)
{
    struct fake_server *s = xcalloc(1, sizeof *s);
    s->fn = fn;
    s->ctx = ctx;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->daemon = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_END);
    if (!s->daemon) {
        fprintf(stderr, "fake_server: could not start on 127.0.0.1\n");
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", (unsigned)s->port);
    return s;
}

void fake_server_stop(struct fake_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}

uint16_t fake_server_port(const struct fake_server *s)
{
    return s->port;
}

const char *fake_server_url(const struct fake_server *s)
{
    return s->url;
}

int fake_server_hits(const struct fake_server *s)
{
    return atomic_load(&((struct fake_server *)s)->hits);
}

int fake_server_connections(const struct fake_server *s)
{
    return atomic_load(&((struct fake_server *)s)->connections);
}

const char *fake_request_header(const struct fake_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

void fake_response_header(struct fake_response *resp, const char *name, const char *value)
{
    if (resp->n_headers == FAKE_MAX_HEADERS)
        return;
    resp->header_names[resp->n_headers] = xstrdup(name);
    resp->header_values[resp->n_headers] = xstrdup(value);
    resp->n_headers++;
}

void fake_response_text(struct fake_response *resp, int status, const char *body)
{
    resp->status = status;
    buf_reset(&resp->body);
    buf_append_str(&resp->body, body);
}
