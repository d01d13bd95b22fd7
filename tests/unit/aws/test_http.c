/*
 * Unit tests for aws/http: the shared curl-multi transport against
 * tests/support/fake_server on 127.0.0.1, and the clock-skew rule against a
 * server that enforces its own clock.
 */
#include "aws/http.h"
#include "common/log.h"
#include "tests/support/fake_server.h"
#include "tests/unit/test.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* A whole second, so that Date headers (second precision) compare exactly. */
#define T0_MS 1795000000000LL
#define HOUR_MS 3600000LL

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    return clock_mono_ms(NULL);
}

static void http_date(int64_t epoch_ms, char out[40])
{
    time_t s = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 40, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static struct http_transport *transport(const struct http_transport_options *opt)
{
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct http_transport *t = http_transport_new(opt, errbuf);
    if (!t)
        fprintf(stderr, "http_transport_new: %s\n", errbuf);
    REQUIRE(t != NULL);
    return t;
}

static char *url_of(struct fake_server *s, const char *path)
{
    static char url[128];
    snprintf(url, sizeof url, "%s%s", fake_server_url(s), path);
    return url;
}

/* ---- a general-purpose handler: echoes what it saw ---- */

struct echo {
    pthread_mutex_t mu;
    char method[16];
    char uri[128];
    char body[256];
    char content_type[64];
    char expect[64];
    char custom[64];
    char content_length[32];
    int status;
    int delay_ms;
    int close;
    size_t big; /* answer with this many bytes */
    atomic_int entered;
};

static void echo_init(struct echo *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    e->status = 200;
}

static void copy_str(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src ? src : "(none)");
}

static void echo_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct echo *e = ctx;
    atomic_fetch_add(&e->entered, 1);
    pthread_mutex_lock(&e->mu);
    copy_str(e->method, sizeof e->method, req->method);
    copy_str(e->uri, sizeof e->uri, req->uri);
    snprintf(e->body, sizeof e->body, "%.*s", (int)req->body_len, req->body);
    copy_str(e->content_type, sizeof e->content_type, fake_request_header(req, "Content-Type"));
    copy_str(e->expect, sizeof e->expect, fake_request_header(req, "Expect"));
    copy_str(e->custom, sizeof e->custom, fake_request_header(req, "X-Custom"));
    copy_str(e->content_length, sizeof e->content_length,
             fake_request_header(req, "Content-Length"));
    int status = e->status;
    resp->delay_ms = e->delay_ms;
    resp->close = e->close;
    size_t big = e->big;
    pthread_mutex_unlock(&e->mu);
    if (big) {
        resp->status = status;
        for (size_t i = 0; i < big; i++)
            buf_append_char(&resp->body, 'x');
    } else {
        fake_response_text(resp, status, "hello back");
    }
    fake_response_header(resp, "X-Reply", "yes  ");
    fake_response_header(resp, "Content-Type", "text/plain");
}

TEST_CASE(request_headers)
{
    struct http_request req;
    http_request_init(&req, "POST", "http://127.0.0.1/");
    http_request_header_add(&req, "X-A", "1");
    http_request_header_add(&req, "x-a", "2");
    http_request_header_add(&req, "X-B", "b");
    CHECK_STR_EQ(http_request_header_get(&req, "x-A"), "1");
    http_request_header_set(&req, "X-A", "3");
    CHECK_INT_EQ(req.n_headers, 2);
    CHECK_STR_EQ(req.headers[0].name, "X-A");
    CHECK_STR_EQ(req.headers[0].value, "3");
    CHECK_STR_EQ(req.headers[1].name, "X-B");
    http_request_header_set(&req, "X-C", "c");
    CHECK_INT_EQ(req.n_headers, 3);
    http_request_header_remove(&req, "x-b");
    CHECK(http_request_header_get(&req, "X-B") == NULL);
    CHECK_INT_EQ(req.n_headers, 2);
    CHECK_STR_EQ(req.headers[1].value, "c");
    http_request_clear(&req);
    http_request_clear(NULL);

    struct http_response resp;
    http_response_init(&resp);
    buf_append_str(&resp.body, "x");
    http_response_reset(&resp);
    CHECK_INT_EQ(resp.body.len, 0);
    http_response_clear(&resp);
    http_response_clear(NULL);
    http_transport_free(NULL);
}

TEST_CASE(get_round_trip)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);

    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url_of(s, "/path/x?a=1&b=two"));
    http_request_header_set(&req, "X-Custom", "custom value");
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 1);
    CHECK_STR_EQ(buf_cstr(&resp.body), "hello back");
    CHECK_STR_EQ(http_response_header(&resp, "x-reply"), "yes");
    CHECK_STR_EQ(http_response_header(&resp, "content-type"), "text/plain");
    CHECK(resp.elapsed_ms >= 0 && resp.elapsed_ms < 5000);
    CHECK_STR_EQ(e.method, "GET");
    CHECK_STR_EQ(e.uri, "/path/x?a=1&b=two");
    CHECK_STR_EQ(e.custom, "custom value");

    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

TEST_CASE(post_round_trip)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);

    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "POST", url_of(s, "/model/m:0/converse"));
    http_request_header_set(&req, "Content-Type", "application/json");
    buf_append_str(&req.body, "{\"messages\":[]}");
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_STR_EQ(e.method, "POST");
    CHECK_STR_EQ(e.body, "{\"messages\":[]}");
    CHECK_STR_EQ(e.content_type, "application/json");
    CHECK_STR_EQ(e.expect, "(none)");
    http_request_clear(&req);

    /* A PUT with an empty body (the IMDSv2 token call): no form content type. */
    http_request_init(&req, "PUT", url_of(s, "/latest/api/token"));
    http_request_header_set(&req, "X-Custom", "");
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_STR_EQ(e.method, "PUT");
    CHECK_STR_EQ(e.content_type, "(none)");
    CHECK_STR_EQ(e.content_length, "0");
    CHECK_STR_EQ(e.custom, "");
    http_request_clear(&req);

    /* A large body is sent at once, without waiting for 100-continue. */
    http_request_init(&req, "POST", url_of(s, "/big"));
    for (int i = 0; i < 200000; i++)
        buf_append_char(&req.body, 'a');
    int64_t t0 = mono_ms();
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK(mono_ms() - t0 < 900); /* curl's 100-continue wait is a second */
    CHECK_STR_EQ(e.expect, "(none)");
    http_request_clear(&req);

    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

TEST_CASE(error_status_is_ok)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);
    int statuses[] = {400, 403, 404, 429, 500, 503};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        e.status = statuses[i];
        struct http_request req;
        struct http_response resp;
        http_request_init(&req, "GET", url_of(s, "/"));
        http_response_init(&resp);
        CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
        CHECK_INT_EQ(resp.status, statuses[i]);
        CHECK_INT_EQ(resp.attempts, 1);
        CHECK_STR_EQ(buf_cstr(&resp.body), "hello back");
        http_request_clear(&req);
        http_response_clear(&resp);
    }
    CHECK_INT_EQ(fake_server_hits(s), 6);
    http_transport_free(t);
    fake_server_stop(s);
}

/* ---- many in flight ---- */

#define N_MANY 200

struct many {
    struct http_request req[N_MANY];
    struct http_response resp[N_MANY];
    atomic_int calls[N_MANY];
    atomic_int done;
    atomic_int ok;
};

static void many_done(void *ctx, enum assay_err err, struct http_request *req,
                      struct http_response *resp)
{
    struct many *m = ctx;
    size_t i = (size_t)(req - m->req);
    atomic_fetch_add(&m->calls[i], 1);
    if (err == ASSAY_OK && resp->status == 200 && resp == &m->resp[i])
        atomic_fetch_add(&m->ok, 1);
    atomic_fetch_add(&m->done, 1);
}

TEST_CASE(many_in_flight)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport_options opt = {.max_host_connections = 6};
    struct http_transport *t = transport(&opt);
    struct many *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    for (int i = 0; i < N_MANY; i++) {
        char path[32];
        snprintf(path, sizeof path, "/r/%d", i);
        http_request_init(&m->req[i], i % 2 ? "POST" : "GET", url_of(s, path));
        if (i % 2)
            buf_appendf(&m->req[i].body, "body %d", i);
        http_response_init(&m->resp[i]);
    }
    for (int i = 0; i < N_MANY; i++)
        REQUIRE_INT_EQ(http_transport_submit(t, &m->req[i], &m->resp[i], many_done, m), ASSAY_OK);
    int64_t deadline = mono_ms() + 30000;
    while (atomic_load(&m->done) < N_MANY && mono_ms() < deadline)
        sleep_ms(10);
    CHECK_INT_EQ(atomic_load(&m->done), N_MANY);
    CHECK_INT_EQ(atomic_load(&m->ok), N_MANY);
    for (int i = 0; i < N_MANY; i++)
        CHECK_INT_EQ(atomic_load(&m->calls[i]), 1);
    CHECK_INT_EQ(fake_server_hits(s), N_MANY);
    int conns = fake_server_connections(s);
    fprintf(stderr, "%d requests over %d connections\n", N_MANY, conns);
    CHECK(conns >= 1 && conns <= 6);
    http_transport_free(t);
    for (int i = 0; i < N_MANY; i++) {
        http_request_clear(&m->req[i]);
        http_response_clear(&m->resp[i]);
    }
    free(m);
    fake_server_stop(s);
}

/* perform from several threads at once, on one transport. */
struct perform_arg {
    struct http_transport *t;
    const char *url;
    int ok;
};

static void *perform_thread(void *p)
{
    struct perform_arg *a = p;
    for (int i = 0; i < 20; i++) {
        struct http_request req;
        struct http_response resp;
        http_request_init(&req, "GET", a->url);
        http_response_init(&resp);
        if (http_transport_perform(a->t, &req, &resp) == ASSAY_OK && resp.status == 200)
            a->ok++;
        http_request_clear(&req);
        http_response_clear(&resp);
    }
    return NULL;
}

TEST_CASE(perform_from_threads)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);
    pthread_t th[4];
    struct perform_arg args[4];
    char url[128];
    snprintf(url, sizeof url, "%s", url_of(s, "/threads"));
    for (int i = 0; i < 4; i++) {
        args[i] = (struct perform_arg){t, url, 0};
        REQUIRE(pthread_create(&th[i], NULL, perform_thread, &args[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT_EQ(args[i].ok, 20);
    }
    CHECK(fake_server_connections(s) <= 8);
    http_transport_free(t);
    fake_server_stop(s);
}

/* ---- failures ---- */

TEST_CASE(total_timeout)
{
    struct echo e;
    echo_init(&e);
    e.delay_ms = 2000;
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url_of(s, "/slow"));
    req.timeout_ms = 300; /* overrides the transport's 60 s */
    http_response_init(&resp);
    int64_t t0 = mono_ms();
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TIMEOUT);
    int64_t took = mono_ms() - t0;
    CHECK(took >= 250 && took < 1500);
    CHECK(resp.errbuf[0] != '\0');
    http_request_clear(&req);
    http_transport_free(t);

    /* The transport's default applies when the request sets none. */
    struct http_transport_options opt = {.timeout_ms = 300};
    t = transport(&opt);
    http_request_init(&req, "GET", url_of(s, "/slow"));
    t0 = mono_ms();
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TIMEOUT);
    took = mono_ms() - t0;
    CHECK(took >= 250 && took < 1500);
    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

static uint16_t closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    close(fd); /* nothing listens there now */
    return ntohs(a.sin_port);
}

TEST_CASE(connect_refused)
{
    uint16_t port = closed_port();
    REQUIRE(port != 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)port);
    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url);
    http_response_init(&resp);
    int64_t t0 = mono_ms();
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TRANSPORT);
    CHECK(mono_ms() - t0 < 3000);
    CHECK_INT_EQ(resp.status, 0);
    CHECK(resp.errbuf[0] != '\0');
    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
}

TEST_CASE(too_large)
{
    struct echo e;
    echo_init(&e);
    e.big = 5000;
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport_options opt = {.max_response_bytes = 1000};
    struct http_transport *t = transport(&opt);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url_of(s, "/big"));
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TOO_LARGE);
    CHECK(resp.body.len <= 1000);
    CHECK(resp.errbuf[0] != '\0');

    /* A per-request bound overrides the transport's. */
    req.max_response_bytes = 5000;
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.body.len, 5000);
    req.max_response_bytes = 4999;
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TOO_LARGE);
    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

TEST_CASE(proxy_from_environment)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    unsetenv("no_proxy");
    unsetenv("NO_PROXY");
    setenv("http_proxy", fake_server_url(s), 1);
    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", "http://bedrock.example.invalid/model/x");
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    /* A proxy sees the absolute URL. */
    CHECK_STR_EQ(e.uri, "http://bedrock.example.invalid/model/x");

    /* A direct request (metadata endpoints) ignores the proxy. */
    req.direct = 1;
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TRANSPORT);
    CHECK_INT_EQ(fake_server_hits(s), 1);
    req.direct = 0;

    /* no_proxy is honoured too. */
    setenv("no_proxy", "example.invalid", 1);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TRANSPORT);
    CHECK_INT_EQ(fake_server_hits(s), 1);
    unsetenv("no_proxy");
    unsetenv("http_proxy");
    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

TEST_CASE(https_to_plain_server_fails)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/", (unsigned)fake_server_port(s));
    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url);
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TRANSPORT);
    CHECK_INT_EQ(resp.status, 0);
    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

/* ---- TLS and HTTP/2 against node's http2 server ---- */

struct h2_many {
    struct http_request req[20];
    struct http_response resp[20];
    atomic_int done;
    atomic_int h2;
};

static void h2_done(void *ctx, enum assay_err err, struct http_request *req,
                    struct http_response *resp)
{
    (void)req;
    struct h2_many *m = ctx;
    /* The body is "<httpVersion> <sessions>": HTTP/2, all on one connection. */
    if (err == ASSAY_OK && resp->status == 200 && strcmp(buf_cstr(&resp->body), "2.0 1") == 0)
        atomic_fetch_add(&m->h2, 1);
    atomic_fetch_add(&m->done, 1);
}

TEST_CASE(tls_verified_http2_multiplexed)
{
    if (system("command -v node >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1") != 0)
        TEST_SKIP("node or openssl is not installed");
    const char *dir = test_tmpdir();
    char cmd[2048], key[512], cert[512];
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s -out %s -days 1 -subj /CN=localhost "
             "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1",
             key, cert);
    REQUIRE(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "node %s/tests/support/h2_server.js %s %s", test_source_dir(), key,
             cert);
    FILE *server = popen(cmd, "r");
    REQUIRE(server != NULL);
    unsigned port = 0;
    REQUIRE(fscanf(server, "%u", &port) == 1 && port > 0);
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%u/x", port);

    /* Without the CA: the self-signed certificate is refused. */
    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url);
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TRANSPORT);
    CHECK_INT_EQ(resp.status, 0);
    http_transport_free(t);

    /* With it: 20 requests at once, multiplexed on one HTTP/2 connection. */
    struct http_transport_options opt = {.ca_file = cert};
    t = transport(&opt);
    struct h2_many *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    for (int i = 0; i < 20; i++) {
        http_request_init(&m->req[i], i % 2 ? "POST" : "GET", url);
        if (i % 2)
            buf_append_str(&m->req[i].body, "{}");
        http_response_init(&m->resp[i]);
        REQUIRE_INT_EQ(http_transport_submit(t, &m->req[i], &m->resp[i], h2_done, m), ASSAY_OK);
    }
    int64_t deadline = mono_ms() + 10000;
    while (atomic_load(&m->done) < 20 && mono_ms() < deadline)
        sleep_ms(5);
    CHECK_INT_EQ(atomic_load(&m->done), 20);
    CHECK_INT_EQ(atomic_load(&m->h2), 20);
    if (atomic_load(&m->h2) != 20)
        fprintf(stderr, "first answer: %d %s (%s)\n", m->resp[0].status, buf_cstr(&m->resp[0].body),
                m->resp[0].errbuf);

    http_request_clear(&req);
    snprintf(url, sizeof url, "https://127.0.0.1:%u/quit", port);
    http_request_init(&req, "GET", url);
    (void)http_transport_perform(t, &req, &resp);
    http_transport_free(t);
    pclose(server);
    for (int i = 0; i < 20; i++) {
        http_request_clear(&m->req[i]);
        http_response_clear(&m->resp[i]);
    }
    free(m);
    http_request_clear(&req);
    http_response_clear(&resp);
}

TEST_CASE(server_closes)
{
    struct echo e;
    echo_init(&e);
    e.close = 1;
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url_of(s, "/close"));
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_TRANSPORT);
    CHECK_INT_EQ(resp.status, 0);
    CHECK(resp.errbuf[0] != '\0');
    http_request_clear(&req);
    http_response_clear(&resp);
    http_transport_free(t);
    fake_server_stop(s);
}

/* ---- callbacks: cancel, bad input ---- */

struct counter {
    atomic_int calls;
    atomic_int cancelled;
};

static void count_done(void *ctx, enum assay_err err, struct http_request *req,
                       struct http_response *resp)
{
    (void)req;
    (void)resp;
    struct counter *c = ctx;
    atomic_fetch_add(&c->calls, 1);
    if (err == ASSAY_ERR_CANCELLED)
        atomic_fetch_add(&c->cancelled, 1);
}

TEST_CASE(free_cancels_in_flight)
{
    struct echo e;
    echo_init(&e);
    e.delay_ms = 1500;
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct http_transport *t = transport(NULL);
    enum { N = 8 };
    struct http_request req[N];
    struct http_response resp[N];
    struct counter c[N];
    memset(c, 0, sizeof c);
    for (int i = 0; i < N; i++) {
        http_request_init(&req[i], "GET", url_of(s, "/slow"));
        http_response_init(&resp[i]);
    }
    for (int i = 0; i < 5; i++)
        REQUIRE_INT_EQ(http_transport_submit(t, &req[i], &resp[i], count_done, &c[i]), ASSAY_OK);
    int64_t deadline = mono_ms() + 5000;
    while (atomic_load(&e.entered) < 5 && mono_ms() < deadline)
        sleep_ms(5);
    CHECK_INT_EQ(atomic_load(&e.entered), 5);
    /* and a few that may not have started yet */
    for (int i = 5; i < N; i++)
        REQUIRE_INT_EQ(http_transport_submit(t, &req[i], &resp[i], count_done, &c[i]), ASSAY_OK);
    int64_t t0 = mono_ms();
    http_transport_free(t);
    CHECK(mono_ms() - t0 < 1000);
    for (int i = 0; i < N; i++) {
        CHECK_INT_EQ(atomic_load(&c[i].calls), 1);
        CHECK_INT_EQ(atomic_load(&c[i].cancelled), 1);
        http_request_clear(&req[i]);
        http_response_clear(&resp[i]);
    }
    fake_server_stop(s);
}

struct nested {
    struct http_transport *t;
    atomic_int calls;
    atomic_int nested_err;
};

static void perform_in_callback(void *ctx, enum assay_err err, struct http_request *req,
                                struct http_response *resp)
{
    (void)err;
    struct nested *n = ctx;
    struct http_response inner;
    http_response_init(&inner);
    atomic_store(&n->nested_err, (int)http_transport_perform(n->t, req, &inner));
    http_response_clear(&inner);
    (void)resp;
    atomic_fetch_add(&n->calls, 1);
}

TEST_CASE(perform_in_callback_refused)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct nested n = {.t = transport(NULL)};
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", url_of(s, "/"));
    http_response_init(&resp);
    REQUIRE_INT_EQ(http_transport_submit(n.t, &req, &resp, perform_in_callback, &n), ASSAY_OK);
    int64_t deadline = mono_ms() + 5000;
    while (atomic_load(&n.calls) == 0 && mono_ms() < deadline)
        sleep_ms(5);
    CHECK_INT_EQ(atomic_load(&n.calls), 1);
    CHECK_INT_EQ(atomic_load(&n.nested_err), ASSAY_ERR_INVALID_ARGUMENT);
    http_transport_free(n.t);
    http_request_clear(&req);
    http_response_clear(&resp);
    fake_server_stop(s);
}

TEST_CASE(bad_input_no_callback)
{
    struct http_transport *t = transport(NULL);
    struct counter c;
    memset(&c, 0, sizeof c);
    const char *urls[] = {
        "", "not a url", "/relative/path", "ftp://127.0.0.1/x", "file:///etc/passwd", "http://"};
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        struct http_request req;
        struct http_response resp;
        http_request_init(&req, "GET", urls[i]);
        http_response_init(&resp);
        CHECK_INT_EQ(http_transport_submit(t, &req, &resp, count_done, &c),
                     ASSAY_ERR_INVALID_ARGUMENT);
        CHECK(resp.errbuf[0] != '\0');
        CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_ERR_INVALID_ARGUMENT);
        http_request_clear(&req);
        http_response_clear(&resp);
    }
    /* A header value that would split the request, a method with a space. */
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "GET", "http://127.0.0.1:1/");
    http_request_header_set(&req, "X-Evil", "a\r\nHost: elsewhere");
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_submit(t, &req, &resp, count_done, &c), ASSAY_ERR_INVALID_ARGUMENT);
    http_request_clear(&req);
    http_request_init(&req, "GE T", "http://127.0.0.1:1/");
    CHECK_INT_EQ(http_transport_submit(t, &req, &resp, count_done, &c), ASSAY_ERR_INVALID_ARGUMENT);
    http_request_clear(&req);
    http_response_clear(&resp);
    sleep_ms(50);
    CHECK_INT_EQ(atomic_load(&c.calls), 0);
    http_transport_free(t);
    CHECK_INT_EQ(atomic_load(&c.calls), 0);
}

/* ---- sign hook and clock skew ---- */

struct signer {
    int64_t times[8];
    int calls;
    enum assay_err fail; /* returned when not ASSAY_OK */
};

static enum assay_err test_sign(void *ctx, struct http_request *req, int64_t now_ms, char *errbuf)
{
    struct signer *sg = ctx;
    if (sg->calls < 8)
        sg->times[sg->calls] = now_ms;
    sg->calls++;
    if (sg->fail != ASSAY_OK)
        return assay_errbuf_set(errbuf, sg->fail, "signing failed on purpose");
    char amz[17];
    clock_format_amz_date(now_ms / 1000, amz);
    http_request_header_set(req, "X-Amz-Date", amz);
    http_request_header_set(req, "Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/s3cr3t");
    return ASSAY_OK;
}

enum refusal_shape {
    SHAPE_JSON_TYPE,   /* {"__type": "com.amazon.coral.service#InvalidSignatureException"} */
    SHAPE_HEADER,      /* x-amzn-ErrorType: InvalidSignatureException:http://... */
    SHAPE_XML,         /* <Error><Code>RequestTimeTooSkewed</Code></Error> (S3, EC2 shapes) */
    SHAPE_QUERY_ERROR, /* x-amzn-query-error: SignatureDoesNotMatch;Sender */
    SHAPE_JSON_CODE,   /* {"code": "RequestExpired"} */
    SHAPE_ACCESS_DENIED
};

enum date_mode {
    DATE_SERVER,  /* the server's clock */
    DATE_CLIENT,  /* the client's clock: refusal with no skew shown */
    DATE_GARBAGE, /* a Date header that is no date */
    DATE_RUNAWAY  /* a clock that jumps an hour further at every refusal */
};

/* A server that keeps its own clock: the client's (manual) clock plus ahead_ms. */
struct skew_server {
    volatile int64_t *client_ms;
    int64_t ahead_ms;
    enum refusal_shape shape;
    enum date_mode date;
    int always_refuse;
    int hold_first; /* hold the first N requests until N have arrived (bounded) */
    atomic_int hits;
    atomic_int refusals;
};

static void skew_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct skew_server *k = ctx;
    int hit = atomic_fetch_add(&k->hits, 1);
    if (hit < k->hold_first) {
        int64_t until = mono_ms() + 5000;
        while (atomic_load(&k->hits) < k->hold_first && mono_ms() < until)
            sleep_ms(1);
    }
    int64_t server_ms = *k->client_ms + k->ahead_ms;
    int64_t req_ms = 0;
    const char *amz = fake_request_header(req, "X-Amz-Date");
    int bad_time = !amz || clock_parse_iso8601(amz, &req_ms) != 0 ||
                   req_ms - server_ms > 5 * 60000 || server_ms - req_ms > 5 * 60000;
    if (!bad_time && !k->always_refuse) {
        fake_response_text(resp, 200, "{\"ok\":true}");
        return;
    }
    atomic_fetch_add(&k->refusals, 1);
    char date[40];
    switch (k->date) {
    case DATE_SERVER:
        http_date(server_ms, date);
        fake_response_header(resp, "Date", date);
        break;
    case DATE_CLIENT:
        http_date(*k->client_ms, date);
        fake_response_header(resp, "Date", date);
        break;
    case DATE_RUNAWAY:
        http_date(server_ms + (int64_t)hit * HOUR_MS, date);
        fake_response_header(resp, "Date", date);
        break;
    case DATE_GARBAGE:
        fake_response_header(resp, "Date", "yesterday");
        break;
    }
    switch (k->shape) {
    case SHAPE_JSON_TYPE:
        fake_response_header(resp, "Content-Type", "application/json");
        fake_response_text(resp, 403,
                           "{\"__type\":\"com.amazon.coral.service#InvalidSignatureException\","
                           "\"message\":\"Signature expired\"}");
        break;
    case SHAPE_HEADER:
        fake_response_header(resp, "x-amzn-ErrorType",
                             "InvalidSignatureException:http://internal.amazon.com/coral/");
        fake_response_text(resp, 403, "{\"message\":\"Signature expired\"}");
        break;
    case SHAPE_XML:
        fake_response_text(resp, 403,
                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>"
                           "RequestTimeTooSkewed</Code><Message>The difference between the "
                           "request time and the current time is too large.</Message></Error>");
        break;
    case SHAPE_QUERY_ERROR:
        fake_response_header(resp, "x-amzn-query-error", "SignatureDoesNotMatch;Sender");
        fake_response_text(resp, 403, "{\"__type\":\"com.amazonaws.x#SomethingElse\"}");
        break;
    case SHAPE_JSON_CODE:
        fake_response_text(resp, 400, "{\"code\":\"RequestExpired\",\"message\":\"expired\"}");
        break;
    case SHAPE_ACCESS_DENIED:
        fake_response_header(resp, "x-amzn-ErrorType", "AccessDeniedException");
        fake_response_text(resp, 403, "{\"message\":\"not allowed\"}");
        break;
    }
}

struct skew_fixture {
    volatile int64_t now;
    struct clock clock;
    struct skew_server k;
    struct fake_server *s;
    struct http_transport *t;
};

static void fixture_start(struct skew_fixture *f, int64_t ahead_ms, enum refusal_shape shape,
                          enum date_mode date)
{
    memset(f, 0, sizeof *f);
    f->now = T0_MS;
    clock_manual_init(&f->clock, &f->now);
    f->k.client_ms = &f->now;
    f->k.ahead_ms = ahead_ms;
    f->k.shape = shape;
    f->k.date = date;
    f->s = fake_server_start(skew_handler, &f->k);
    REQUIRE(f->s != NULL);
    struct http_transport_options opt = {.clock = &f->clock};
    f->t = transport(&opt);
}

static void fixture_stop(struct skew_fixture *f)
{
    http_transport_free(f->t);
    fake_server_stop(f->s);
}

/* One signed request; returns the transport's error, fills resp. */
static enum assay_err signed_call(struct skew_fixture *f, struct signer *sg,
                                  struct http_response *resp)
{
    struct http_request req;
    http_request_init(&req, "POST", url_of(f->s, "/model/x/converse"));
    http_request_header_set(&req, "Content-Type", "application/json");
    buf_append_str(&req.body, "{}");
    req.sign = test_sign;
    req.sign_ctx = sg;
    enum assay_err err = http_transport_perform(f->t, &req, resp);
    http_request_clear(&req);
    return err;
}

TEST_CASE(sign_hook_once_per_attempt)
{
    struct skew_fixture f;
    fixture_start(&f, 0, SHAPE_JSON_TYPE, DATE_SERVER);
    struct signer sg = {0};
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 1);
    CHECK_INT_EQ(sg.calls, 1);
    CHECK_INT_EQ(sg.times[0], T0_MS);
    CHECK_INT_EQ(http_transport_now_ms(f.t), T0_MS);
    CHECK_INT_EQ(http_transport_skew_ms(f.t), 0);
    http_response_clear(&resp);
    fixture_stop(&f);
}

TEST_CASE(sign_hook_error_no_send)
{
    struct skew_fixture f;
    fixture_start(&f, 0, SHAPE_JSON_TYPE, DATE_SERVER);
    struct signer sg = {.fail = ASSAY_ERR_NO_CREDENTIALS};
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_ERR_NO_CREDENTIALS);
    CHECK_INT_EQ(sg.calls, 1);
    CHECK_INT_EQ(resp.status, 0);
    CHECK(strstr(resp.errbuf, "on purpose") != NULL);
    sleep_ms(50);
    CHECK_INT_EQ(atomic_load(&f.k.hits), 0);
    CHECK_INT_EQ(fake_server_connections(f.s), 0);
    http_response_clear(&resp);
    fixture_stop(&f);
}

static void check_skew_learned(int64_t ahead_ms, enum refusal_shape shape)
{
    struct skew_fixture f;
    fixture_start(&f, ahead_ms, shape, DATE_SERVER);
    struct signer sg = {0};
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 2);
    CHECK_STR_EQ(buf_cstr(&resp.body), "{\"ok\":true}");
    CHECK_INT_EQ(sg.calls, 2);
    CHECK_INT_EQ(sg.times[0], T0_MS);
    CHECK_INT_EQ(sg.times[1], T0_MS + ahead_ms);
    CHECK_INT_EQ(http_transport_skew_ms(f.t), ahead_ms);
    CHECK_INT_EQ(http_transport_now_ms(f.t), T0_MS + ahead_ms);
    CHECK_INT_EQ(atomic_load(&f.k.hits), 2);

    /* Later requests use the learned offset from the start. */
    f.now = T0_MS + 10000;
    struct signer sg2 = {0};
    CHECK_INT_EQ(signed_call(&f, &sg2, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 200);
    CHECK_INT_EQ(resp.attempts, 1);
    CHECK_INT_EQ(sg2.calls, 1);
    CHECK_INT_EQ(sg2.times[0], T0_MS + 10000 + ahead_ms);
    CHECK_INT_EQ(atomic_load(&f.k.hits), 3);
    http_response_clear(&resp);
    fixture_stop(&f);
}

TEST_CASE(skew_server_ahead)
{
    check_skew_learned(HOUR_MS, SHAPE_JSON_TYPE);
}

TEST_CASE(skew_server_behind)
{
    check_skew_learned(-HOUR_MS, SHAPE_HEADER);
}

TEST_CASE(skew_error_shapes)
{
    enum refusal_shape shapes[] = {SHAPE_JSON_TYPE, SHAPE_HEADER, SHAPE_XML, SHAPE_QUERY_ERROR,
                                   SHAPE_JSON_CODE};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        check_skew_learned(20 * 60000, shapes[i]); /* 20 minutes ahead */
}

struct skew_many {
    struct http_request req[10];
    struct http_response resp[10];
    struct signer sg[10];
    atomic_int done;
    atomic_int ok;
};

static void skew_many_done(void *ctx, enum assay_err err, struct http_request *req,
                           struct http_response *resp)
{
    (void)req;
    struct skew_many *m = ctx;
    if (err == ASSAY_OK && resp->status == 200 && resp->attempts == 2)
        atomic_fetch_add(&m->ok, 1);
    atomic_fetch_add(&m->done, 1);
}

TEST_CASE(skew_concurrent_refusals)
{
    /* Ten requests signed with the wrong clock before any refusal arrives:
     * the first refusal corrects the offset, and every one is re-signed, not
     * only the one whose refusal moved it. */
    struct skew_fixture f;
    fixture_start(&f, HOUR_MS, SHAPE_JSON_TYPE, DATE_SERVER);
    /* All ten must be signed and sent before the first refusal comes back. */
    f.k.hold_first = 10;
    struct skew_many *m = calloc(1, sizeof *m);
    REQUIRE(m != NULL);
    for (int i = 0; i < 10; i++) {
        http_request_init(&m->req[i], "POST", url_of(f.s, "/model/x/converse"));
        m->req[i].sign = test_sign;
        m->req[i].sign_ctx = &m->sg[i];
        http_response_init(&m->resp[i]);
    }
    for (int i = 0; i < 10; i++)
        REQUIRE_INT_EQ(http_transport_submit(f.t, &m->req[i], &m->resp[i], skew_many_done, m),
                       ASSAY_OK);
    int64_t deadline = mono_ms() + 10000;
    while (atomic_load(&m->done) < 10 && mono_ms() < deadline)
        sleep_ms(5);
    CHECK_INT_EQ(atomic_load(&m->done), 10);
    CHECK_INT_EQ(atomic_load(&m->ok), 10);
    CHECK_INT_EQ(http_transport_skew_ms(f.t), HOUR_MS);
    CHECK_INT_EQ(atomic_load(&f.k.hits), 20);
    fixture_stop(&f);
    for (int i = 0; i < 10; i++) {
        CHECK_INT_EQ(m->sg[i].calls, 2);
        CHECK_INT_EQ(m->sg[i].times[1], T0_MS + HOUR_MS);
        http_request_clear(&m->req[i]);
        http_response_clear(&m->resp[i]);
    }
    free(m);
}

TEST_CASE(skew_refusal_without_skewed_date)
{
    enum date_mode modes[] = {DATE_CLIENT, DATE_GARBAGE};
    for (size_t i = 0; i < 2; i++) {
        struct skew_fixture f;
        fixture_start(&f, HOUR_MS, SHAPE_JSON_TYPE, modes[i]);
        struct signer sg = {0};
        struct http_response resp;
        http_response_init(&resp);
        CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_OK);
        CHECK_INT_EQ(resp.status, 403);
        CHECK_INT_EQ(resp.attempts, 1);
        CHECK_INT_EQ(sg.calls, 1);
        CHECK_INT_EQ(atomic_load(&f.k.hits), 1);
        CHECK_INT_EQ(http_transport_skew_ms(f.t), 0);
        http_response_clear(&resp);
        fixture_stop(&f);
    }
}

TEST_CASE(skew_small_offset_ignored)
{
    /* Four minutes off: under the SDKs' five-minute threshold, nothing learned. */
    struct skew_fixture f;
    fixture_start(&f, 4 * 60000, SHAPE_JSON_TYPE, DATE_SERVER);
    f.k.always_refuse = 1;
    struct signer sg = {0};
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 403);
    CHECK_INT_EQ(resp.attempts, 1);
    CHECK_INT_EQ(http_transport_skew_ms(f.t), 0);
    http_response_clear(&resp);
    fixture_stop(&f);
}

TEST_CASE(skew_keeps_refusing)
{
    struct skew_fixture f;
    fixture_start(&f, HOUR_MS, SHAPE_JSON_TYPE, DATE_RUNAWAY);
    f.k.always_refuse = 1;
    struct signer sg = {0};
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 403);
    CHECK_INT_EQ(resp.attempts, 2);
    CHECK_INT_EQ(sg.calls, 2);
    sleep_ms(50);
    CHECK_INT_EQ(atomic_load(&f.k.hits), 2);
    http_response_clear(&resp);
    fixture_stop(&f);
}

TEST_CASE(access_denied_not_resent)
{
    struct skew_fixture f;
    fixture_start(&f, HOUR_MS, SHAPE_ACCESS_DENIED, DATE_SERVER);
    struct signer sg = {0};
    struct http_response resp;
    http_response_init(&resp);
    CHECK_INT_EQ(signed_call(&f, &sg, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 403);
    CHECK_INT_EQ(resp.attempts, 1);
    CHECK_INT_EQ(sg.calls, 1);
    CHECK_STR_EQ(http_response_header(&resp, "x-amzn-errortype"), "AccessDeniedException");
    CHECK_INT_EQ(atomic_load(&f.k.hits), 1);
    CHECK_INT_EQ(http_transport_skew_ms(f.t), 0);
    http_response_clear(&resp);
    fixture_stop(&f);
}

/* ---- libcurl's own messages go to the log, without secrets ---- */

struct captured {
    pthread_mutex_t mu;
    struct buf lines;
};

static void capture_sink(void *ctx, const char *line, size_t len)
{
    struct captured *c = ctx;
    pthread_mutex_lock(&c->mu);
    buf_append(&c->lines, line, len);
    pthread_mutex_unlock(&c->mu);
}

TEST_CASE(debug_log_redacts_secrets)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct captured cap;
    pthread_mutex_init(&cap.mu, NULL);
    buf_init(&cap.lines);
    log_set_sink(capture_sink, &cap);
    log_set_level(LOG_LEVEL_DEBUG);

    struct http_transport *t = transport(NULL);
    struct http_request req;
    struct http_response resp;
    http_request_init(&req, "POST", url_of(s, "/secret"));
    http_request_header_set(&req, "Authorization", "AWS4-HMAC-SHA256 Signature=s3cr3tsig");
    http_request_header_set(&req, "X-Amz-Security-Token", "s3cr3ttoken");
    http_request_header_set(&req, "X-aws-ec2-metadata-token", "s3cr3timds");
    buf_append_str(&req.body, "s3cr3tbody");
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(t, &req, &resp), ASSAY_OK);
    http_transport_free(t);
    log_set_level(LOG_LEVEL_INFO);
    log_set_sink(NULL, NULL);

    const char *text = buf_cstr(&cap.lines);
    CHECK(strstr(text, "http.curl") != NULL);
    CHECK(strstr(text, "[redacted]") != NULL);
    CHECK(strstr(text, "s3cr3t") == NULL);
    if (strstr(text, "s3cr3t"))
        fprintf(stderr, "%s", text);
    buf_clear(&cap.lines);
    pthread_mutex_destroy(&cap.mu);
    http_request_clear(&req);
    http_response_clear(&resp);
    fake_server_stop(s);
}

/* ---- timers (http_transport_call_later) ---- */

struct timer_log {
    pthread_mutex_t mu;
    int order[16];
    int64_t at_ms[16];
    enum assay_err err[16];
    int on_thread[16];
    int n;
    struct http_transport *t;
};

struct timer_arg {
    struct timer_log *log;
    int id;
};

static void timer_record(void *ctx, enum assay_err err)
{
    struct timer_arg *a = ctx;
    struct timer_log *l = a->log;
    pthread_mutex_lock(&l->mu);
    if (l->n < 16) {
        l->order[l->n] = a->id;
        l->at_ms[l->n] = mono_ms();
        l->err[l->n] = err;
        l->on_thread[l->n] = http_transport_on_thread(l->t);
        l->n++;
    }
    pthread_mutex_unlock(&l->mu);
}

static int timer_count(struct timer_log *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
}

TEST_CASE(timer_order_and_delay)
{
    struct timer_log l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    l.t = transport(NULL);
    struct timer_arg a[5];
    int64_t delays[5] = {120, 40, 0, 40, 80};
    int64_t t0 = mono_ms();
    for (int i = 0; i < 5; i++) {
        a[i] = (struct timer_arg){&l, i};
        REQUIRE_INT_EQ(http_transport_call_later(l.t, delays[i], timer_record, &a[i]), ASSAY_OK);
    }
    for (int i = 0; i < 200 && timer_count(&l) < 5; i++)
        sleep_ms(5);
    REQUIRE_INT_EQ(timer_count(&l), 5);
    /* by due time; equal delays in the order set */
    int want[5] = {2, 1, 3, 4, 0};
    for (int i = 0; i < 5; i++) {
        CHECK_INT_EQ(l.order[i], want[i]);
        CHECK_INT_EQ(l.err[i], ASSAY_OK);
        CHECK(l.on_thread[i]);
        CHECK(l.at_ms[i] - t0 >= delays[want[i]]);
    }
    /* not held a poll interval (1 s) late */
    CHECK(l.at_ms[4] - t0 < 120 + 500);
    CHECK(!http_transport_on_thread(l.t));
    http_transport_free(l.t);
}

TEST_CASE(timer_cancelled_on_free)
{
    struct timer_log l = {.mu = PTHREAD_MUTEX_INITIALIZER};
    l.t = transport(NULL);
    struct timer_arg a = {&l, 7};
    REQUIRE_INT_EQ(http_transport_call_later(l.t, 60000, timer_record, &a), ASSAY_OK);
    int64_t t0 = mono_ms();
    http_transport_free(l.t);
    CHECK(mono_ms() - t0 < 2000);
    REQUIRE_INT_EQ(l.n, 1);
    CHECK_INT_EQ(l.order[0], 7);
    CHECK_INT_EQ(l.err[0], ASSAY_ERR_CANCELLED);
    CHECK_INT_EQ(http_transport_call_later(NULL, 1, timer_record, &a), ASSAY_ERR_INVALID_ARGUMENT);
}

/* A timer that sets a timer and submits a request, from the transport thread. */
struct chain {
    struct http_transport *t;
    struct timer_log log;
    struct timer_arg second;
    struct http_request req;
    struct http_response resp;
    atomic_int done;
    atomic_int status;
};

static void chain_done(void *ctx, enum assay_err err, struct http_request *req,
                       struct http_response *resp)
{
    struct chain *c = ctx;
    atomic_store(&c->status, err == ASSAY_OK ? resp->status : -1);
    atomic_store(&c->done, 1);
}

static void chain_first(void *ctx, enum assay_err err)
{
    struct chain *c = ctx;
    CHECK_INT_EQ(err, ASSAY_OK);
    CHECK_INT_EQ(http_transport_call_later(c->t, 30, timer_record, &c->second), ASSAY_OK);
    CHECK_INT_EQ(http_transport_submit(c->t, &c->req, &c->resp, chain_done, c), ASSAY_OK);
}

TEST_CASE(timer_sets_timer_and_submits)
{
    struct echo e;
    echo_init(&e);
    struct fake_server *s = fake_server_start(echo_handler, &e);
    REQUIRE(s != NULL);
    struct chain c = {.log = {.mu = PTHREAD_MUTEX_INITIALIZER}};
    c.t = transport(NULL);
    c.log.t = c.t;
    c.second = (struct timer_arg){&c.log, 2};
    http_request_init(&c.req, "GET", url_of(s, "/later"));
    http_response_init(&c.resp);
    REQUIRE_INT_EQ(http_transport_call_later(c.t, 10, chain_first, &c), ASSAY_OK);
    for (int i = 0; i < 400 && !(atomic_load(&c.done) && timer_count(&c.log) == 1); i++)
        sleep_ms(5);
    CHECK_INT_EQ(atomic_load(&c.status), 200);
    CHECK_INT_EQ(timer_count(&c.log), 1);
    http_transport_free(c.t);
    http_request_clear(&c.req);
    http_response_clear(&c.resp);
    fake_server_stop(s);
    pthread_mutex_destroy(&e.mu);
}

/* Many timers: no thread per timer, all fire once. */
static void count_fire(void *ctx, enum assay_err err)
{
    if (err == ASSAY_OK)
        atomic_fetch_add((atomic_int *)ctx, 1);
}

TEST_CASE(timer_many)
{
    struct http_transport *t = transport(NULL);
    atomic_int fired = 0;
    for (int i = 0; i < 5000; i++)
        REQUIRE_INT_EQ(http_transport_call_later(t, i % 50, count_fire, &fired), ASSAY_OK);
    for (int i = 0; i < 400 && atomic_load(&fired) < 5000; i++)
        sleep_ms(5);
    CHECK_INT_EQ(atomic_load(&fired), 5000);
    http_transport_free(t);
}
