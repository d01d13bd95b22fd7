/*
 * Integration tests of `assay serve`: the real build/assay, started per case
 * on 127.0.0.1 port 0 with a temporary data_dir and --port-file, driven over
 * HTTP with libcurl, stopped by its PID (SIGTERM; SIGKILL only after a
 * bounded wait, and only that PID). Every route and error status, each input
 * shape, auth, idempotency, 429, clean shutdown and reopen.
 */
#include "common/buf.h"
#include "tests/integration/emulator_proc.h"
#include "tests/support/fake_server.h"
#include "tests/unit/test.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MODEL "anthropic.claude-3-5-haiku-20241022-v1:0"

struct serve {
    pid_t pid;
    bool with_creds; /* AWS credentials in the child's environment (for the emulator) */
    char dir[1024];
    char config[1100];
    char port_file[1100];
    char log[1100];
    char base[64];
};

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *assay_path(void)
{
    static char path[1024];
    const char *bin = getenv("ASSAY_BINARY_DIR");
    if (!bin)
        TEST_SKIP("ASSAY_BINARY_DIR not set");
    snprintf(path, sizeof path, "%s/assay", bin);
    return path;
}

static void hexdigest(const char *key, char out[65])
{
    unsigned char d[32];
    SHA256((const unsigned char *)key, strlen(key), d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Writes the config: the source tree's rubrics, data under dir/data, then extra keys. */
static void write_config(struct serve *s, const char *extra)
{
    snprintf(s->config, sizeof s->config, "%s/config.json", s->dir);
    FILE *f = fopen(s->config, "w");
    REQUIRE(f != NULL);
    fprintf(f, "{\"data_dir\":\"%s/data\",\"rubrics_dir\":\"%s/rubrics\"", s->dir,
            test_source_dir());
    if (!extra || !strstr(extra, "\"listen\""))
        fprintf(f, ",\"listen\":\"127.0.0.1:0\"");
    if (extra && *extra)
        fprintf(f, ",%s", extra);
    fprintf(f, "}\n");
    fclose(f);
}

/* Starts assay serve; 0 when it answered /readyz 200 within 15 s; else the exit status. */
static int serve_start_raw(struct serve *s)
{
    snprintf(s->port_file, sizeof s->port_file, "%s/port", s->dir);
    snprintf(s->log, sizeof s->log, "%s/assay.log", s->dir);
    unlink(s->port_file);
    const char *exe = assay_path();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        /* No credentials from the machine: only the emulator's, when asked. */
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        unsetenv("AWS_SESSION_TOKEN");
        unsetenv("AWS_PROFILE");
        unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        setenv("HOME", s->dir, 1);
        if (s->with_creds) {
            setenv("AWS_ACCESS_KEY_ID", AKID, 1);
            setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
        }
        const char *argv[] = {exe,           "serve",      "--config", s->config,
                              "--port-file", s->port_file, NULL};
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    for (int i = 0; i < 150; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        }
        FILE *f = fopen(s->port_file, "r");
        unsigned port = 0;
        if (f) {
            if (fscanf(f, "%u", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port) {
            snprintf(s->base, sizeof s->base, "http://127.0.0.1:%u", port);
            return 0;
        }
        sleep_ms(100);
    }
    return -1;
}

static void dump_log(const struct serve *s)
{
    FILE *f = fopen(s->log, "r");
    if (!f)
        return;
    char line[2048];
    fprintf(stderr, "--- %s\n", s->log);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* SIGTERM, wait up to 20 s; the exit status, or -1 after a SIGKILL. */
static int serve_stop(struct serve *s)
{
    if (s->pid <= 0)
        return -1;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        sleep_ms(100);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
    return -1;
}

struct reply {
    long status;
    struct buf body;
    char retry_after[32];
    json_t *json;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    buf_append(ctx, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct reply *r = ctx;
    size_t len = size * n;
    if (len > 12 && strncasecmp(p, "retry-after:", 12) == 0) {
        size_t v = 12, e = len;
        while (v < len && p[v] == ' ')
            v++;
        while (e > v && (p[e - 1] == '\r' || p[e - 1] == '\n'))
            e--;
        snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)(e - v), p + v);
    }
    return len;
}

static void http(const struct serve *s, const char *method, const char *path, const char *ctype,
                 const char *body, const char *const *headers, struct reply *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = NULL;
    char ct[128];
    snprintf(ct, sizeof ct, "Content-Type:%s%s", ctype ? " " : "", ctype ? ctype : "");
    h = curl_slist_append(h, ct);
    h = curl_slist_append(h, "Expect:");
    for (const char *const *x = headers; x && *x; x++)
        h = curl_slist_append(h, *x);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->json = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
}

static void reply_clear(struct reply *r)
{
    buf_clear(&r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

static const char *err_str(const struct reply *r, const char *key)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), key));
}

static long err_index(const struct reply *r)
{
    json_t *i = json_object_get(json_object_get(r->json, "error"), "index");
    return i ? (long)json_integer_value(i) : -1;
}

static long num(const struct reply *r, const char *key)
{
    return (long)json_integer_value(json_object_get(r->json, key));
}

/* Waits (bounded) for /readyz to answer 200. */
static void wait_ready(struct serve *s)
{
    for (int i = 0; i < 100; i++) {
        struct reply r;
        http(s, "GET", "/readyz", NULL, NULL, NULL, &r);
        long st = r.status;
        reply_clear(&r);
        if (st == 200)
            return;
        sleep_ms(100);
    }
    dump_log(s);
    test_fail_at(__FILE__, __LINE__, "assay serve never became ready");
    serve_stop(s);
    test_stop();
}

static void start(struct serve *s, const char *extra)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", test_tmpdir());
    write_config(s, extra);
    int rc = serve_start_raw(s);
    if (rc != 0) {
        dump_log(s);
        REQUIRE_INT_EQ(rc, 0);
    }
    wait_ready(s);
}

static void stop_clean(struct serve *s)
{
    int rc = serve_stop(s);
    if (rc != 0)
        dump_log(s);
    CHECK_INT_EQ(rc, 0);
}

static const char *APPS =
    "\"apps\":{\"support\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\",\"coherence\"]},"
    "\"quiet\":{\"sample_rate\":0.0,\"rubrics\":[\"helpfulness\"]}}";

TEST_CASE(routes_and_statuses)
{
    struct serve s;
    char extra[1024], ka[65], kb[65];
    hexdigest("key-support", ka);
    hexdigest("key-admin", kb);
    snprintf(extra, sizeof extra,
             "%s,\"server\":{\"max_body_bytes\":4096},"
             "\"auth\":{\"keys\":[{\"sha256\":\"%s\",\"apps\":[\"support\"]},"
             "{\"sha256\":\"%s\",\"apps\":[\"*\"]}]}",
             APPS, ka, kb);
    start(&s, extra);
    const char *sup[] = {"Authorization: Bearer key-support", NULL};
    const char *adm[] = {"x-api-key: key-admin", NULL};
    struct reply r;

    http(&s, "GET", "/healthz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    http(&s, "GET", "/readyz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);

    /* 401: no key, unknown key */
    http(&s, "POST", "/v1/samples", "application/json", "{\"app\":\"support\",\"output\":\"x\"}",
         NULL, &r);
    CHECK_INT_EQ(r.status, 401);
    CHECK_STR_EQ(err_str(&r, "code"), "unauthorized");
    reply_clear(&r);
    const char *bad[] = {"x-api-key: nope", NULL};
    http(&s, "POST", "/v1/samples", "application/json", "{\"app\":\"support\",\"output\":\"x\"}",
         bad, &r);
    CHECK_INT_EQ(r.status, 401);
    reply_clear(&r);
    /* 403: key for support posting for quiet */
    http(&s, "POST", "/v1/samples", "application/json", "{\"app\":\"quiet\",\"output\":\"x\"}", sup,
         &r);
    CHECK_INT_EQ(r.status, 403);
    CHECK_STR_EQ(err_str(&r, "code"), "forbidden");
    CHECK_INT_EQ(err_index(&r), 0);
    reply_clear(&r);
    /* 400 naming index and field */
    http(&s, "POST", "/v1/samples", "application/json",
         "[{\"app\":\"support\",\"output\":\"x\"},{\"app\":\"support\",\"output\":\"x\","
         "\"feedback\":\"meh\"}]",
         sup, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_str(&r, "code"), "invalid_argument");
    CHECK_INT_EQ(err_index(&r), 1);
    CHECK_STR_EQ(err_str(&r, "field"), "feedback");
    reply_clear(&r);
    /* 400: an app neither configured nor defaulted */
    http(&s, "POST", "/v1/samples", "application/json", "{\"app\":\"ghost\",\"output\":\"x\"}", adm,
         &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_str(&r, "field"), "app");
    reply_clear(&r);
    /* 415 */
    http(&s, "POST", "/v1/samples", "text/csv", "a,b", sup, &r);
    CHECK_INT_EQ(r.status, 415);
    reply_clear(&r);
    /* 413 */
    struct buf big = BUF_INIT;
    buf_append_str(&big, "{\"app\":\"support\",\"output\":\"");
    for (int i = 0; i < 8192; i++)
        buf_append_char(&big, 'x');
    buf_append_str(&big, "\"}");
    http(&s, "POST", "/v1/samples", "application/json", big.data, sup, &r);
    CHECK_INT_EQ(r.status, 413);
    CHECK_STR_EQ(err_str(&r, "code"), "too_large");
    reply_clear(&r);
    buf_clear(&big);
    /* 202 and the sample read back */
    http(&s, "POST", "/v1/samples", "application/json",
         "{\"app\":\"support\",\"output\":\"x\",\"id\":\"r-1\",\"trace_id\":"
         "\"Root=1-5759e988-bd862e3fe1be46a994272793\"}",
         sup, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    http(&s, "GET", "/v1/samples/r-1", NULL, NULL, sup, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "queued");
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "trace_id")),
                 "Root=1-5759e988-bd862e3fe1be46a994272793");
    CHECK_INT_EQ(json_array_size(json_object_get(r.json, "verdicts")), 2);
    reply_clear(&r);
    http(&s, "GET", "/v1/samples/nope", NULL, NULL, sup, &r);
    CHECK_INT_EQ(r.status, 404);
    reply_clear(&r);
    /* other routes */
    http(&s, "GET", "/v1/series", NULL, NULL, adm, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    http(&s, "GET", "/v1/alarms", NULL, NULL, adm, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    http(&s, "POST", "/v1/series/rebaseline", "application/json", "{}", adm, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_INT_EQ(json_array_size(json_object_get(r.json, "series")), 0);
    reply_clear(&r);
    /* a key acts only for its apps; no key at all is 401 */
    http(&s, "POST", "/v1/series/rebaseline", "application/json", "{\"app\":\"quiet\"}", sup, &r);
    CHECK_INT_EQ(r.status, 403);
    reply_clear(&r);
    http(&s, "POST", "/v1/series/rebaseline", "application/json", "{\"app\":\"support\"}", sup, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    http(&s, "POST", "/v1/series/rebaseline", "application/json", "{}", NULL, &r);
    CHECK_INT_EQ(r.status, 401);
    reply_clear(&r);
    http(&s, "POST", "/v1/series/rebaseline", "application/json", "{\"colour\":\"red\"}", adm, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_str(&r, "field"), "colour");
    reply_clear(&r);
    /* No golden entries in this config: nothing to start. */
    http(&s, "POST", "/v1/golden-runs", "application/json", "{}", adm, &r);
    CHECK_INT_EQ(r.status, 404);
    CHECK_STR_EQ(err_str(&r, "code"), "not_found");
    reply_clear(&r);
    http(&s, "GET", "/v1/golden-runs/none", NULL, NULL, adm, &r);
    CHECK_INT_EQ(r.status, 404);
    reply_clear(&r);
    http(&s, "GET", "/v1/nothing", NULL, NULL, adm, &r);
    CHECK_INT_EQ(r.status, 404);
    reply_clear(&r);
    http(&s, "PUT", "/v1/samples", "application/json", "{}", adm, &r);
    CHECK_INT_EQ(r.status, 405);
    reply_clear(&r);
    http(&s, "GET", "/metrics", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK(strstr(r.body.data, "assay_http_requests_total{route=\"/v1/samples\",code=\"401\"} 2"));
    CHECK(strstr(r.body.data, "assay_queue_depth{state=\"queued\"} 2"));
    reply_clear(&r);
    stop_clean(&s);
}

TEST_CASE(input_shapes)
{
    struct serve s;
    start(&s, APPS);
    struct reply r;
    http(&s, "POST", "/v1/samples", "application/json",
         "{\"app\":\"support\",\"output\":\"o\",\"input\":\"plain prompt\",\"context\":\"one\"}",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    http(&s, "POST", "/v1/samples", "application/json; charset=utf-8",
         "[{\"app\":\"support\",\"output\":\"o\",\"input\":[{\"role\":\"user\",\"content\":"
         "[{\"text\":\"hi\"}]},{\"role\":\"assistant\",\"content\":[{\"text\":\"hello\"}]}],"
         "\"context\":[\"a\",\"b\"],\"reference\":\"r\",\"model_id\":\"m-1\",\"tags\":{\"team\":"
         "\"t\"},\"timestamp\":1795744047072,\"feedback\":\"positive\"},"
         "{\"app\":\"quiet\",\"output\":\"o\",\"timestamp\":\"2026-11-27T01:00:00Z\"}]",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 2);
    CHECK_INT_EQ(num(&r, "sampled"), 1);
    reply_clear(&r);
    http(&s, "POST", "/v1/samples", "application/x-ndjson",
         "{\"app\":\"support\",\"output\":\"1\"}\n{\"app\":\"quiet\",\"output\":\"2\"}\n"
         "{\"app\":\"quiet\",\"output\":\"3\",\"feedback\":\"negative\"}\n",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 3);
    CHECK_INT_EQ(num(&r, "sampled"), 2); /* negative feedback is always sampled */
    reply_clear(&r);
    stop_clean(&s);
}

TEST_CASE(queue_full_429)
{
    struct serve s;
    char extra[512];
    snprintf(extra, sizeof extra, "%s,\"server\":{\"max_queue\":1,\"retry_after_s\":3}", APPS);
    start(&s, extra);
    struct reply r;
    http(&s, "POST", "/v1/samples", "application/json", "{\"app\":\"support\",\"output\":\"x\"}",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    http(&s, "POST", "/v1/samples", "application/json", "{\"app\":\"support\",\"output\":\"x\"}",
         NULL, &r);
    CHECK_INT_EQ(r.status, 429);
    CHECK_STR_EQ(err_str(&r, "code"), "busy");
    CHECK_STR_EQ(r.retry_after, "3");
    reply_clear(&r);
    stop_clean(&s);
}

TEST_CASE(idempotency_and_reopen)
{
    struct serve s;
    start(&s, APPS);
    struct reply r;
    const char *body = "{\"app\":\"support\",\"output\":\"x\",\"id\":\"dup-1\"}";
    http(&s, "POST", "/v1/samples", "application/json", body, NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "duplicates"), 0);
    reply_clear(&r);
    http(&s, "POST", "/v1/samples", "application/json", body, NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    reply_clear(&r);
    /* one job per rubric, not two */
    http(&s, "GET", "/metrics", NULL, NULL, NULL, &r);
    CHECK(strstr(r.body.data, "assay_queue_depth{state=\"queued\"} 2\n") != NULL);
    reply_clear(&r);
    stop_clean(&s);

    /* the store reopens clean on the same data_dir; the id is still known */
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    http(&s, "POST", "/v1/samples", "application/json", body, NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    reply_clear(&r);
    http(&s, "GET", "/v1/samples/dup-1", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_INT_EQ(json_array_size(json_object_get(r.json, "verdicts")), 2);
    reply_clear(&r);
    stop_clean(&s);
}

struct poster {
    const struct serve *s;
    int thread;
    atomic_bool *stop;
    int accepted;
    char ids[4096][24];
};

static void *post_loop(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < 4096 && !atomic_load(p->stop); i++) {
        char id[24], body[128];
        snprintf(id, sizeof id, "t%d-%d", p->thread, i);
        snprintf(body, sizeof body, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"%s\"}", id);
        struct reply r;
        http(p->s, "POST", "/v1/samples", "application/json", body, NULL, &r);
        long status = r.status;
        reply_clear(&r);
        if (status == 202)
            snprintf(p->ids[p->accepted++], 24, "%s", id);
        if (status == 0)
            break; /* the server is gone */
    }
    return NULL;
}

TEST_CASE(sigterm_under_load)
{
    struct serve s;
    start(&s, APPS);
    atomic_bool stop = false;
    static struct poster p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i].s = &s;
        p[i].thread = i;
        p[i].stop = &stop;
        p[i].accepted = 0;
        pthread_create(&t[i], NULL, post_loop, &p[i]);
    }
    sleep_ms(700);
    int rc = serve_stop(&s);
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    if (rc != 0)
        dump_log(&s);
    CHECK_INT_EQ(rc, 0);
    int total = p[0].accepted + p[1].accepted + p[2].accepted + p[3].accepted;
    CHECK(total > 0);

    /* every sample answered 202 is in the store after a restart */
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    int missing = 0;
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < p[i].accepted; k++) {
            char path[64];
            snprintf(path, sizeof path, "/v1/samples/%s", p[i].ids[k]);
            struct reply r;
            http(&s, "GET", path, NULL, NULL, NULL, &r);
            missing += r.status != 200;
            reply_clear(&r);
        }
    CHECK_INT_EQ(missing, 0);
    fprintf(stderr, "sigterm_under_load: %d samples accepted before SIGTERM, all found\n", total);
    stop_clean(&s);
}

#define KA_CLIENTS 16
#define KA_MAX 1000

static size_t ka_discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* A keep-alive client: one curl handle, so one connection while the server keeps it. */
struct ka_poster {
    const struct serve *s;
    int thread;
    atomic_bool *stop;
    int accepted;
    int refused; /* 503 while draining */
    int bad;     /* any other status */
    char ids[KA_MAX][24];
};

static void *ka_post_loop(void *arg)
{
    struct ka_poster *p = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    char url[128];
    snprintf(url, sizeof url, "%s/v1/samples", p->s->base);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, ka_discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    for (int i = 0; i < KA_MAX && !atomic_load(p->stop); i++) {
        char id[24], body[128];
        snprintf(id, sizeof id, "ka%d-%d", p->thread, i);
        snprintf(body, sizeof body, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"%s\"}", id);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        long status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status == 202)
            snprintf(p->ids[p->accepted++], 24, "%s", id);
        else if (status == 503)
            p->refused++;
        else if (status != 0)
            p->bad++;
        if (status == 0 || status == 503)
            break; /* the server is going (503 comes with Connection: close) */
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

/*
 * SIGTERM while 16 keep-alive clients post to two loops: the process exits 0,
 * every answer is 202 or 503 (never a 500: a group committed before the drain
 * is answered once durable), and every sample answered 202 is found after a
 * restart.
 */
TEST_CASE(sigterm_keepalive_clients)
{
    struct serve s;
    char extra[512];
    snprintf(extra, sizeof extra, "%s,\"server\":{\"threads\":2}", APPS);
    start(&s, extra);
    atomic_bool stop = false;
    static struct ka_poster p[KA_CLIENTS];
    pthread_t t[KA_CLIENTS];
    for (int i = 0; i < KA_CLIENTS; i++) {
        memset(&p[i], 0, sizeof p[i]);
        p[i].s = &s;
        p[i].thread = i;
        p[i].stop = &stop;
        REQUIRE_INT_EQ(pthread_create(&t[i], NULL, ka_post_loop, &p[i]), 0);
    }
    sleep_ms(500);
    int rc = serve_stop(&s);
    atomic_store(&stop, true);
    int total = 0, refused = 0, bad = 0;
    for (int i = 0; i < KA_CLIENTS; i++) {
        pthread_join(t[i], NULL);
        total += p[i].accepted;
        refused += p[i].refused;
        bad += p[i].bad;
    }
    if (rc != 0)
        dump_log(&s);
    CHECK_INT_EQ(rc, 0);
    CHECK_INT_EQ(bad, 0);
    CHECK(total > 0);

    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    /* One keep-alive connection would close after each GET: plain requests. */
    int missing = 0;
    for (int i = 0; i < KA_CLIENTS; i++)
        for (int k = 0; k < p[i].accepted; k++) {
            char path[64];
            snprintf(path, sizeof path, "/v1/samples/%s", p[i].ids[k]);
            struct reply r;
            http(&s, "GET", path, NULL, NULL, NULL, &r);
            missing += r.status != 200;
            reply_clear(&r);
        }
    CHECK_INT_EQ(missing, 0);
    fprintf(stderr,
            "sigterm_keepalive_clients: %d samples accepted, %d refused while draining, all"
            " accepted found\n",
            total, refused);
    stop_clean(&s);
}

TEST_CASE(startup_errors)
{
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    /* an app naming a rubric that does not exist */
    write_config(&s, "\"apps\":{\"a\":{\"rubrics\":[\"no-such-rubric\"]}}");
    CHECK_INT_EQ(serve_start_raw(&s), 1);
    FILE *f = fopen(s.log, "r");
    REQUIRE(f != NULL);
    char text[4096] = "";
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    CHECK(strstr(text, "no-such-rubric") != NULL);
    /* a config that does not parse */
    snprintf(s.config, sizeof s.config, "%s/broken.json", s.dir);
    f = fopen(s.config, "w");
    REQUIRE(f != NULL);
    fputs("{\"listen\":", f);
    fclose(f);
    CHECK_INT_EQ(serve_start_raw(&s), 1);
    /* listen malformed */
    write_config(&s, "\"listen\":\"nope\"");
    CHECK_INT_EQ(serve_start_raw(&s), 1);
}

/* ------------------------------------------------ judging, with the emulator */

/* Lines of the service's log containing needle. */
static int log_count(const struct serve *s, const char *needle)
{
    FILE *f = fopen(s->log, "r");
    if (!f)
        return -1;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void start_emulator(struct emulator_proc *e, const char *scenario)
{
    if (!getenv("ASSAY_EMULATOR"))
        TEST_SKIP("ASSAY_EMULATOR not set (the emulator is not built)");
    REQUIRE_INT_EQ(emulator_proc_start(e, scenario, 7), 0);
}

static void judged_config(char *out, size_t n, const struct emulator_proc *e, const char *extra)
{
    snprintf(out, n,
             "\"aws\":{\"region\":\"us-east-1\",\"endpoints\":{\"bedrock_runtime\":\"%s\"}},"
             "\"judge\":{\"model_id\":\"%s\",\"max_concurrency\":16},"
             "\"apps\":{\"support\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\"]}},"
             "\"metrics\":{\"sink\":\"emf\",\"period_s\":1,\"emf_path\":\"%s/emf.log\"}%s%s",
             e->url, MODEL, test_tmpdir(), extra ? "," : "", extra ? extra : "");
}

#define SAMPLE_FMT                                                                                 \
    "{\"app\":\"support\",\"id\":\"%s\",\"input\":[{\"role\":\"user\",\"content\":[{\"text\":"     \
    "\"How do I reset my password?\"}]}],\"output\":\"Open Settings, choose Security, then "       \
    "Reset password.\",\"trace_id\":\"Root=1-5759e988-bd862e3fe1be46a994272793\"}"

/* Polls GET /v1/samples/{id} until its status is done or failed (bounded); returns the reply. */
static void wait_judged(struct serve *s, const char *id, int timeout_ms, struct reply *r)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/samples/%s", id);
    for (int waited = 0;; waited += 50) {
        http(s, "GET", path, NULL, NULL, NULL, r);
        const char *st = json_string_value(json_object_get(r->json, "status"));
        if (st && (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0))
            return;
        if (waited >= timeout_ms)
            return;
        reply_clear(r);
        sleep_ms(50);
    }
}

TEST_CASE(judged_end_to_end)
{
    struct emulator_proc e;
    start_emulator(&e, NULL);
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    char extra[1024];
    judged_config(extra, sizeof extra, &e, NULL);
    write_config(&s, extra);
    s.with_creds = true;
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);

    struct reply r;
    char body[1024], id[32];
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "j-%d", i);
        snprintf(body, sizeof body, SAMPLE_FMT, id);
        http(&s, "POST", "/v1/samples", "application/json", body, NULL, &r);
        CHECK_INT_EQ(r.status, 202);
        reply_clear(&r);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(id, sizeof id, "j-%d", i);
        wait_judged(&s, id, 20000, &r);
        CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "done");
        json_t *v = json_array_get(json_object_get(r.json, "verdicts"), 0);
        CHECK_STR_EQ(json_string_value(json_object_get(v, "rubric")), "helpfulness");
        double score = json_real_value(json_object_get(v, "score"));
        CHECK(score >= 0.0 && score <= 1.0);
        CHECK_STR_EQ(json_string_value(json_object_get(v, "judge")), MODEL);
        CHECK(json_integer_value(json_object_get(v, "input_tokens")) > 0);
        CHECK_STR_EQ(json_string_value(json_object_get(r.json, "trace_id")),
                     "Root=1-5759e988-bd862e3fe1be46a994272793");
        reply_clear(&r);
    }
    /* the same (app, id) again: a duplicate, not judged a second time */
    snprintf(body, sizeof body, SAMPLE_FMT, "j-0");
    http(&s, "POST", "/v1/samples", "application/json", body, NULL, &r);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    reply_clear(&r);
    sleep_ms(500);
    http(&s, "GET", "/metrics", NULL, NULL, NULL, &r);
    CHECK(strstr(r.body.data, "assay_judge_duration_seconds_count{outcome=\"ok\"} 10\n") != NULL);
    CHECK(strstr(r.body.data, "assay_queue_depth{state=\"queued\"} 0\n") != NULL);
    reply_clear(&r);
    stop_clean(&s);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"operation\":\"Converse\""), 10);
    /* the trace id is in the service's log lines */
    FILE *f = fopen(s.log, "r");
    REQUIRE(f != NULL);
    char line[4096];
    int judged_lines = 0;
    while (fgets(line, sizeof line, f))
        judged_lines += strstr(line, "\"event\":\"job.judged\"") &&
                        strstr(line, "\"trace_id\":\"Root=1-5759e988-bd862e3fe1be46a994272793\"");
    fclose(f);
    CHECK_INT_EQ(judged_lines, 10);
    /* the verdicts and samples reached the metrics (EMF sink, 1 s periods) once each */
    char emf[1200];
    snprintf(emf, sizeof emf, "%s/emf.log", s.dir);
    f = fopen(emf, "r");
    REQUIRE(f != NULL);
    long scores = 0, received = 0, judged = 0;
    while (fgets(line, sizeof line, f)) {
        json_t *m = json_loads(line, 0, NULL);
        json_t *q = json_object_get(m, "QualityScore");
        if (json_is_array(q) && json_is_string(json_object_get(m, "App")))
            scores += (long)json_array_size(q);
        else if (json_is_number(q))
            scores += 1;
        received += (long)json_number_value(json_object_get(m, "SamplesReceived"));
        judged += (long)json_number_value(json_object_get(m, "SamplesJudged"));
        json_decref(m);
    }
    fclose(f);
    CHECK_INT_EQ(scores, 10);
    CHECK_INT_EQ(received, 10); /* the duplicate is not received again */
    CHECK_INT_EQ(judged, 10);
}

TEST_CASE(sigterm_requeues_judging)
{
    /* Every Converse answer is held 3 s; shutdown gives 1 s: the jobs in flight go back. */
    struct emulator_proc e;
    start_emulator(&e, "{\"default\":{\"latency_ms\":3000}}");
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    char extra[1024];
    judged_config(extra, sizeof extra, &e, "\"server\":{\"shutdown_timeout_s\":1}");
    write_config(&s, extra);
    s.with_creds = true;
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    struct reply r;
    char body[1024], id[32];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "h-%d", i);
        snprintf(body, sizeof body, SAMPLE_FMT, id);
        http(&s, "POST", "/v1/samples", "application/json", body, NULL, &r);
        CHECK_INT_EQ(r.status, 202);
        reply_clear(&r);
    }
    sleep_ms(500); /* claimed and sent */
    stop_clean(&s);
    CHECK(log_count(&s, "\"event\":\"job.released\"") == 5);

    /* restarted with a fast judge: every job judged exactly once */
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    start_emulator(&e, NULL);
    judged_config(extra, sizeof extra, &e, NULL);
    write_config(&s, extra);
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "h-%d", i);
        wait_judged(&s, id, 20000, &r);
        CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "done");
        CHECK_INT_EQ(json_array_size(json_object_get(r.json, "verdicts")), 1);
        reply_clear(&r);
    }
    stop_clean(&s);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"operation\":\"Converse\""), 5);
}

struct crash_poster {
    const struct serve *s;
    int first, count; /* batches [first, first + count) */
    bool *ok;         /* per batch: answered 202 */
};

#define CRASH_BATCHES 100
#define CRASH_BATCH 20
static atomic_int crash_acked;

static void crash_batch_body(int batch, struct buf *b)
{
    buf_reset(b);
    buf_append_char(b, '[');
    for (int k = 0; k < CRASH_BATCH; k++)
        buf_appendf(b,
                    "%s{\"app\":\"support\",\"id\":\"c-%d-%d\",\"input\":\"Where is my order?\","
                    "\"output\":\"It ships tomorrow.\"}",
                    k ? "," : "", batch, k);
    buf_append_char(b, ']');
}

static void *crash_post(void *arg)
{
    struct crash_poster *p = arg;
    struct buf b = BUF_INIT;
    for (int i = p->first; i < p->first + p->count; i++) {
        if (p->ok[i])
            continue;
        crash_batch_body(i, &b);
        struct reply r;
        http(p->s, "POST", "/v1/samples", "application/json", b.data, NULL, &r);
        p->ok[i] = r.status == 202;
        if (p->ok[i])
            atomic_fetch_add(&crash_acked, 1);
        reply_clear(&r);
    }
    buf_clear(&b);
    return NULL;
}

static void post_all(const struct serve *s, bool *ok)
{
    struct crash_poster p[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (struct crash_poster){s, i * (CRASH_BATCHES / 4), CRASH_BATCHES / 4, ok};
        pthread_create(&t[i], NULL, crash_post, &p[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

/* Waits (bounded) until no job is queued or judging. */
static bool wait_drained(struct serve *s, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        struct reply r;
        http(s, "GET", "/metrics", NULL, NULL, NULL, &r);
        bool done = r.body.data && strstr(r.body.data, "assay_queue_depth{state=\"queued\"} 0\n") &&
                    strstr(r.body.data, "assay_queue_depth{state=\"judging\"} 0\n");
        reply_clear(&r);
        if (done)
            return true;
        sleep_ms(100);
    }
    return false;
}

struct post_all_arg {
    const struct serve *s;
    bool *ok;
};

static void *post_all_thread(void *arg)
{
    struct post_all_arg *a = arg;
    post_all(a->s, a->ok);
    return NULL;
}

TEST_CASE(kill9_while_posting_and_judging)
{
    struct emulator_proc e;
    start_emulator(&e, "{\"default\":{\"latency_ms\":20,\"jitter_ms\":20}}");
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    char extra[1024];
    judged_config(extra, sizeof extra, &e, NULL);
    write_config(&s, extra);
    s.with_creds = true;
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);

    /* 2,000 samples in 100 batches of 20 from 4 clients; kill -9 part-way */
    static bool ok[CRASH_BATCHES];
    memset(ok, 0, sizeof ok);
    struct post_all_arg arg = {&s, ok};
    pthread_t poster;
    atomic_store(&crash_acked, 0);
    pthread_create(&poster, NULL, post_all_thread, &arg);
    for (int i = 0; i < 2000 && atomic_load(&crash_acked) < CRASH_BATCHES / 3; i++)
        sleep_ms(1);
    kill(s.pid, SIGKILL);
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    pthread_join(poster, NULL);
    int before = 0;
    for (int i = 0; i < CRASH_BATCHES; i++)
        before += ok[i];
    fprintf(stderr, "kill9: %d of %d batches acknowledged before the kill\n", before,
            CRASH_BATCHES);

    /* restart on the same data_dir; clients re-post what got no 202 (and, to check
     * idempotency, the first acknowledged batch again) */
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    for (int i = 0; i < CRASH_BATCHES; i++)
        if (ok[i]) {
            struct buf b = BUF_INIT;
            crash_batch_body(i, &b);
            struct reply r;
            http(&s, "POST", "/v1/samples", "application/json", b.data, NULL, &r);
            CHECK_INT_EQ(num(&r, "duplicates"), CRASH_BATCH);
            reply_clear(&r);
            buf_clear(&b);
            break;
        }
    post_all(&s, ok);
    for (int i = 0; i < CRASH_BATCHES; i++)
        CHECK(ok[i]);
    REQUIRE(wait_drained(&s, 90000));

    /* every sample: done, with exactly one verdict */
    int bad = 0;
    for (int i = 0; i < CRASH_BATCHES; i++)
        for (int k = 0; k < CRASH_BATCH; k++) {
            char path[64];
            snprintf(path, sizeof path, "/v1/samples/c-%d-%d", i, k);
            struct reply r;
            http(&s, "GET", path, NULL, NULL, NULL, &r);
            const char *st = json_string_value(json_object_get(r.json, "status"));
            json_t *vs = json_object_get(r.json, "verdicts");
            if (r.status != 200 || !st || strcmp(st, "done") != 0 || json_array_size(vs) != 1 ||
                !json_object_get(json_array_get(vs, 0), "score")) {
                if (bad++ < 5)
                    fprintf(stderr, "%s: %s\n", path, r.body.data ? r.body.data : "(none)");
            }
            reply_clear(&r);
        }
    CHECK_INT_EQ(bad, 0);
    /* the series counted each verdict exactly once, across the kill */
    struct reply r;
    http(&s, "GET", "/v1/series?app=support", NULL, NULL, NULL, &r);
    json_t *series = json_array_get(json_object_get(r.json, "series"), 0);
    CHECK_INT_EQ(json_array_size(json_object_get(r.json, "series")), 1);
    CHECK_INT_EQ(json_integer_value(json_object_get(series, "count")), CRASH_BATCHES * CRASH_BATCH);
    reply_clear(&r);
    stop_clean(&s);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    /* calls cut by the kill are made again: at least one per job, never fewer */
    int calls = emulator_proc_log_count(&e, "\"operation\":\"Converse\"");
    fprintf(stderr, "kill9: %d Converse calls for %d jobs\n", calls, CRASH_BATCHES * CRASH_BATCH);
    CHECK(calls >= CRASH_BATCHES * CRASH_BATCH);
}

/* ------------------------------------------------------------- golden runs */

/* Polls GET /v1/golden-runs/{id} until done or failed (bounded). */
static void wait_golden(struct serve *s, const char *id, int timeout_ms, struct reply *r)
{
    char path[160];
    snprintf(path, sizeof path, "/v1/golden-runs/%s", id);
    for (int waited = 0;; waited += 50) {
        http(s, "GET", path, NULL, NULL, NULL, r);
        const char *st = json_string_value(json_object_get(r->json, "status"));
        if ((st && (strcmp(st, "done") == 0 || strcmp(st, "failed") == 0)) || waited >= timeout_ms)
            return;
        reply_clear(r);
        sleep_ms(50);
    }
}

static int emf_count(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

TEST_CASE(golden_runs_scheduled_and_posted)
{
    struct emulator_proc e;
    start_emulator(&e, NULL);
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    char golden[2048], extra[4096];
    snprintf(golden, sizeof golden,
             "\"golden\":[{\"name\":\"support\",\"dataset\":\"%s/datasets/support-qa.jsonl\","
             "\"target_model\":\"target-model\",\"rubrics\":[\"token-f1\"],\"every\":\"1h\"},"
             "{\"name\":\"cal\",\"dataset\":\"%s/datasets/judge-calibration.calibration.jsonl\","
             "\"rubrics\":[\"correctness\"]}]",
             test_source_dir(), test_source_dir());
    judged_config(extra, sizeof extra, &e, golden);
    write_config(&s, extra);
    s.with_creds = true;
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);

    /* "support" never ran: its first run starts with the service and is published. */
    char emf[1200];
    snprintf(emf, sizeof emf, "%s/emf.log", s.dir);
    for (int waited = 0; waited < 20000 && emf_count(emf, "GoldenSetScore") == 0; waited += 100)
        sleep_ms(100);
    CHECK(emf_count(emf, "\"Dataset\":\"support-qa\"") >= 1);

    /* "cal" has no schedule: POST starts it; GET shows it through to its result. */
    struct reply r;
    http(&s, "POST", "/v1/golden-runs", "application/json", "{\"name\":\"cal\"}", NULL, &r);
    REQUIRE_INT_EQ(r.status, 202);
    char id[128];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(r.json, "id")));
    CHECK(strncmp(id, "gr-", 3) == 0);
    CHECK(strncmp(json_string_value(json_object_get(r.json, "location")), "/v1/golden-runs/gr-",
                  19) == 0);
    reply_clear(&r);
    wait_golden(&s, id, 20000, &r);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "done");
    const json_t *res = json_object_get(r.json, "result");
    CHECK_STR_EQ(json_string_value(json_object_get(res, "kind")), "calibration");
    CHECK_INT_EQ(json_integer_value(json_object_get(r.json, "done")), 36);
    const json_t *ag =
        json_object_get(json_array_get(json_object_get(res, "rubrics"), 0), "agreement");
    CHECK(json_is_number(json_object_get(ag, "weighted_kappa")));
    reply_clear(&r);

    http(&s, "POST", "/v1/golden-runs", "application/json", "{\"name\":\"nope\"}", NULL, &r);
    CHECK_INT_EQ(r.status, 404);
    reply_clear(&r);
    http(&s, "POST", "/v1/golden-runs", "application/json", "{\"name\":", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    reply_clear(&r);
    http(&s, "POST", "/v1/golden-runs", "application/json", "{}", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    reply_clear(&r);

    stop_clean(&s);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    /* One scheduled run of "support" (every 1h): 48 target calls, no more. */
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"model\":\"target-model\""), 48);
}

/* ------------------------------------------- the monitor: series and alarms */

/* The webhook receiver: counts the notifications by type. */
struct hooks {
    atomic_int raised, cleared, other;
};

static void on_hook(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct hooks *h = ctx;
    json_t *j = json_loadb(req->body, req->body_len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && strcmp(type, "alarm.raised") == 0)
        atomic_fetch_add(&h->raised, 1);
    else if (type && strcmp(type, "alarm.cleared") == 0)
        atomic_fetch_add(&h->cleared, 1);
    else
        atomic_fetch_add(&h->other, 1);
    json_decref(j);
    fake_response_text(resp, 204, "");
}

/* POSTs datasets/demo-traffic.jsonl as NDJSON, 40 lines a request; returns samples accepted. */
static long post_demo_traffic(const struct serve *s)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/datasets/demo-traffic.jsonl", test_source_dir());
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    char line[8192];
    struct buf b = BUF_INIT;
    long accepted = 0;
    int n = 0;
    for (bool more = true; more;) {
        more = fgets(line, sizeof line, f) != NULL;
        if (more) {
            buf_append_str(&b, line);
            n++;
        }
        if ((n == 40 || !more) && n > 0) {
            struct reply r;
            http(s, "POST", "/v1/samples", "application/x-ndjson", b.data, NULL, &r);
            CHECK_INT_EQ(r.status, 202);
            accepted += num(&r, "accepted");
            reply_clear(&r);
            buf_reset(&b);
            n = 0;
        }
    }
    buf_clear(&b);
    fclose(f);
    return accepted;
}

/* The one series of the demo app, from GET /v1/series (a new reference, or NULL). */
static json_t *demo_series(const struct serve *s)
{
    struct reply r;
    http(s, "GET", "/v1/series?app=support-bot", NULL, NULL, NULL, &r);
    json_t *x = json_incref(json_array_get(json_object_get(r.json, "series"), 0));
    reply_clear(&r);
    return x;
}

/* Posts one support-bot sample with id and waits until the queue has drained (it is judged). */
static void post_judged(struct serve *s, const char *id)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"app\":\"support-bot\",\"id\":\"%s\",\"input\":\"How big can attachments "
             "be?\",\"output\":\"Up to 10 MB.\",\"model_id\":"
             "\"anthropic.claude-3-haiku-20240307-v1:0\"}",
             id);
    struct reply r;
    http(s, "POST", "/v1/samples", "application/json", body, NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    REQUIRE(wait_drained(s, 20000));
}

static const char *jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long jint(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

/*
 * The demo traffic (a bad deploy at samples 151-250) judged by the emulator's
 * deterministic judge: the alarm is raised during the bad deploy, shown by
 * /v1/series and /v1/alarms and sent to the webhook; a restart keeps the
 * series (count goes on, no new warm-up); a rebaseline starts a new warm-up.
 */
TEST_CASE(series_alarm_restart_rebaseline)
{
    struct hooks hooks = {0};
    struct fake_server *fs = fake_server_start(on_hook, &hooks);
    REQUIRE(fs != NULL);
    struct emulator_proc e;
    start_emulator(&e, NULL);
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    char extra[2048];
    snprintf(extra, sizeof extra,
             "\"aws\":{\"region\":\"us-east-1\",\"endpoints\":{\"bedrock_runtime\":\"%s\","
             "\"sns\":\"%s\"}},"
             "\"judge\":{\"model_id\":\"%s\",\"max_concurrency\":8},"
             "\"apps\":{\"support-bot\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\"]}},"
             "\"metrics\":{\"sink\":\"emf\",\"period_s\":1,\"emf_path\":\"%s/emf.log\"},"
             "\"monitor\":{\"detector\":{\"warmup_samples\":100},"
             "\"notify\":{\"webhooks\":[{\"url\":\"%s/hook\"}],\"base_ms\":50,"
             "\"sns_topic_arn\":\"arn:aws:sns:us-east-1:123456789012:assay-alarms\"}}",
             e.url, e.url, MODEL, s.dir, fake_server_url(fs));
    write_config(&s, extra);
    s.with_creds = true;
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);

    CHECK_INT_EQ(post_demo_traffic(&s), 360);
    REQUIRE(wait_drained(&s, 60000));
    json_t *x = demo_series(&s);
    REQUIRE(x != NULL);
    CHECK_INT_EQ(jint(x, "count"), 360);
    CHECK_STR_EQ(jstr(x, "model_id"), "anthropic.claude-3-haiku-20240307-v1:0");
    CHECK_STR_EQ(jstr(x, "judge_model"), MODEL);
    CHECK(jstr(x, "rubric_version") && strlen(jstr(x, "rubric_version")) == 64);
    CHECK(strcmp(jstr(x, "state"), "warming_up") != 0);
    CHECK(json_is_number(json_object_get(x, "baseline_mean")));
    json_decref(x);

    /* /metrics counts the one series by its state: not warming up any more */
    struct reply r;
    http(&s, "GET", "/metrics", NULL, NULL, NULL, &r);
    CHECK(strstr(buf_cstr(&r.body), "assay_series{state=\"warming_up\"} 0\n") != NULL);
    CHECK(strstr(buf_cstr(&r.body), "assay_series{state=\"ok\"} 1\n") != NULL ||
          strstr(buf_cstr(&r.body), "assay_series{state=\"alarm\"} 1\n") != NULL);
    reply_clear(&r);

    /* the alarm history: a raise during the bad deploy (samples 151-250 are indexes 150-249) */
    http(&s, "GET", "/v1/alarms", NULL, NULL, NULL, &r);
    json_t *alarms = json_object_get(r.json, "alarms");
    REQUIRE(json_array_size(alarms) >= 1);
    json_t *first = json_array_get(alarms, json_array_size(alarms) - 1); /* newest first */
    CHECK_STR_EQ(jstr(first, "event"), "raised");
    CHECK_STR_EQ(jstr(first, "app"), "support-bot");
    const json_t *d = json_object_get(first, "detail");
    long long idx = jint(d, "index");
    fprintf(stderr, "series: first raise at verdict %lld, %zu history events\n", idx,
            json_array_size(alarms));
    CHECK(idx >= 150 && idx < 250);
    CHECK(json_number_value(json_object_get(d, "current_mean")) <
          json_number_value(json_object_get(d, "baseline_mean")));
    double p = json_number_value(json_object_get(d, "p_value"));
    CHECK(p > 0 && p <= 0.01);
    CHECK(json_is_number(json_object_get(d, "effect_size")));
    CHECK(json_is_integer(json_object_get(d, "change_point")));
    reply_clear(&r);

    /* the webhook got the raise (delivered asynchronously, bounded wait) */
    for (int i = 0; i < 100 && atomic_load(&hooks.raised) == 0; i++)
        sleep_ms(50);
    CHECK(atomic_load(&hooks.raised) >= 1);
    CHECK_INT_EQ(atomic_load(&hooks.other), 0);

    /* QualityRegression 1 reached the metrics */
    stop_clean(&s);
    char emf[1200], line[8192];
    snprintf(emf, sizeof emf, "%s/emf.log", s.dir);
    FILE *f = fopen(emf, "r");
    REQUIRE(f != NULL);
    int regress = 0;
    while (fgets(line, sizeof line, f))
        regress +=
            strstr(line, "QualityRegression") && strstr(line, "\"App\":\"support-bot\"") &&
            (strstr(line, "\"QualityRegression\":1") || strstr(line, "\"QualityRegression\":[1"));
    fclose(f);
    CHECK(regress >= 1);

    /* a restart: the series goes on from the store, no new warm-up */
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    x = demo_series(&s);
    REQUIRE(x != NULL);
    CHECK_INT_EQ(jint(x, "count"), 360);
    const char *state_before = jstr(x, "state");
    CHECK(state_before && strcmp(state_before, "warming_up") != 0);
    json_decref(x);
    post_judged(&s, "after-restart");
    x = demo_series(&s);
    REQUIRE(x != NULL);
    CHECK_INT_EQ(jint(x, "count"), 361);
    CHECK(strcmp(jstr(x, "state"), "warming_up") != 0);
    json_decref(x);
    CHECK(log_count(&s, "\"event\":\"series.restored\"") == 1);

    /* rebaseline: bad fields refused, then the series learns a new baseline */
    http(&s, "POST", "/v1/series/rebaseline", "application/json", "{\"app\":1}", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    reply_clear(&r);
    http(&s, "POST", "/v1/series/rebaseline", "application/json",
         "{\"app\":\"support-bot\",\"rubric\":\"helpfulness\"}", NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    json_t *aff = json_object_get(r.json, "series");
    CHECK_INT_EQ(json_array_size(aff), 1);
    CHECK_STR_EQ(jstr(json_array_get(aff, 0), "state"), "warming_up");
    reply_clear(&r);
    x = demo_series(&s);
    REQUIRE(x != NULL);
    CHECK_STR_EQ(jstr(x, "state"), "warming_up");
    CHECK_INT_EQ(jint(x, "count"), 361);
    CHECK_INT_EQ(jint(x, "since"), 361);
    json_decref(x);
    http(&s, "GET", "/v1/alarms?limit=1", NULL, NULL, NULL, &r);
    CHECK_STR_EQ(jstr(json_array_get(json_object_get(r.json, "alarms"), 0), "event"), "rebaseline");
    reply_clear(&r);
    stop_clean(&s);

    /* another judge model: the series starts a new baseline, it does not alarm */
    const char *judge2 = "anthropic.claude-3-5-sonnet-20241022-v2:0";
    char *at = strstr(extra, MODEL);
    REQUIRE(at != NULL);
    char extra2[2048];
    snprintf(extra2, sizeof extra2, "%.*s%s%s", (int)(at - extra), extra, judge2,
             at + strlen(MODEL));
    write_config(&s, extra2);
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    post_judged(&s, "new-judge");
    x = demo_series(&s);
    REQUIRE(x != NULL);
    CHECK_STR_EQ(jstr(x, "judge_model"), judge2);
    CHECK_STR_EQ(jstr(x, "state"), "warming_up");
    CHECK_INT_EQ(jint(x, "count"), 362);
    CHECK_INT_EQ(jint(x, "since"), 361);
    json_decref(x);
    http(&s, "GET", "/v1/alarms?limit=1", NULL, NULL, NULL, &r);
    json_t *ev = json_array_get(json_object_get(r.json, "alarms"), 0);
    CHECK_STR_EQ(jstr(ev, "event"), "rebaseline");
    CHECK_STR_EQ(jstr(json_object_get(ev, "detail"), "reason"), "judge_model");
    CHECK_STR_EQ(jstr(json_object_get(ev, "detail"), "previous_judge_model"), MODEL);
    reply_clear(&r);
    CHECK(log_count(&s, "\"reason\":\"judge_changed\"") == 1);
    stop_clean(&s);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    /* every raise and clear went to SNS too (the emulator's Publish), accepted */
    int published = emulator_proc_log_count(&e, "\"operation\":\"Publish\"");
    CHECK(published >= 1);
    CHECK_INT_EQ(published, atomic_load(&hooks.raised) + atomic_load(&hooks.cleared));
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"subject\":\"assay ALARM"),
                 atomic_load(&hooks.raised));
    fake_server_stop(fs);
}

/* A monitor section that is not valid stops the start with a message naming the key. */
TEST_CASE(series_bad_monitor_config)
{
    const char *bad[] = {"\"monitor\":{\"detector\":{\"warmup_samples\":2}}",
                         "\"monitor\":{\"detectr\":{}}",
                         "\"monitor\":{\"notify\":{\"webhooks\":[{\"url\":\"ftp://x\"}]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct serve s;
        memset(&s, 0, sizeof s);
        snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
        write_config(&s, bad[i]);
        snprintf(s.log, sizeof s.log, "%s/assay.log", s.dir);
        unlink(s.log); /* the same dir each time: count this start's lines only */
        CHECK_INT_EQ(serve_start_raw(&s), 1);
        CHECK(log_count(&s, "assay serve: monitor") == 1);
    }
}

/*
 * A tee in front of the emulator: forwards each Bedrock request unchanged
 * (the SigV4 signature covers the Host header, forwarded as sent) and keeps
 * every request body, so a test can see exactly what left for Bedrock.
 */
struct tee {
    const char *upstream; /* the emulator's URL */
    pthread_mutex_t mu;
    struct buf seen; /* every request body, one after the other */
};

static void tee_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct tee *t = ctx;
    pthread_mutex_lock(&t->mu);
    buf_append(&t->seen, req->body ? req->body : "", req->body_len);
    buf_append_char(&t->seen, '\n');
    pthread_mutex_unlock(&t->mu);
    CURL *c = curl_easy_init();
    char url[1200];
    snprintf(url, sizeof url, "%s%s", t->upstream, req->uri);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *n = req->headers[i].name;
        if (strcasecmp(n, "content-length") == 0 || strcasecmp(n, "expect") == 0 ||
            strcasecmp(n, "connection") == 0 || strcasecmp(n, "transfer-encoding") == 0)
            continue;
        char line[2048];
        snprintf(line, sizeof line, "%s: %s", n, req->headers[i].value);
        h = curl_slist_append(h, line);
    }
    struct buf body = BUF_INIT;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    long status = 502;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    resp->status = (int)status;
    buf_append(&resp->body, body.data ? body.data : "", body.len);
    fake_response_header(resp, "Content-Type", "application/json");
    buf_clear(&body);
}

/* Every file under dir (the store and its WAL) searched byte by byte for needle. */
static bool dir_holds(const char *dir, const char *needle)
{
    static const char *const names[] = {"assay.db", "assay.db-wal", "assay.db-journal"};
    bool hit = false;
    for (size_t i = 0; i < sizeof names / sizeof *names && !hit; i++) {
        char path[1300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t len = 0;
        char *data = test_read_file(path, &len);
        if (!data)
            continue;
        size_t m = strlen(needle);
        for (size_t at = 0; !hit && len >= m && at <= len - m; at++)
            hit = memcmp(data + at, needle, m) == 0;
        free(data);
    }
    return hit;
}

#define PII_EMAIL "jane.doe@mail.example.com"
#define PII_CARD "4111 1111 1111 1111"
#define PLAIN_EMAIL "john.roe@mail.example.com"

TEST_CASE(redaction_at_ingest)
{
    struct emulator_proc e;
    start_emulator(&e, NULL);
    struct tee t = {.upstream = e.url};
    pthread_mutex_init(&t.mu, NULL);
    struct fake_server *fs = fake_server_start(tee_handler, &t);
    REQUIRE(fs != NULL);
    struct serve s;
    memset(&s, 0, sizeof s);
    snprintf(s.dir, sizeof s.dir, "%s", test_tmpdir());
    char extra[2048];
    snprintf(extra, sizeof extra,
             "\"aws\":{\"region\":\"us-east-1\",\"endpoints\":{\"bedrock_runtime\":\"%s\"}},"
             "\"judge\":{\"model_id\":\"%s\",\"max_concurrency\":4},"
             "\"apps\":{\"secure\":{\"sample_rate\":1.0,\"rubrics\":[\"pii-leak\",\"helpfulness\"],"
             "\"redact\":{}},"
             "\"plain\":{\"sample_rate\":1.0,\"rubrics\":[\"pii-leak\"]}},"
             "\"metrics\":{\"sink\":\"emf\",\"period_s\":1,\"emf_path\":\"%s/emf.log\"}",
             fake_server_url(fs), MODEL, test_tmpdir());
    write_config(&s, extra);
    s.with_creds = true;
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);

    struct reply r;
    /* A client cannot set the findings itself. */
    http(&s, "POST", "/v1/samples", "application/json",
         "{\"app\":\"secure\",\"output\":\"x\",\"_pii\":{\"output\":{\"email\":0}}}", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_str(&r, "field"), "_pii");
    reply_clear(&r);

    http(&s, "POST", "/v1/samples", "application/json",
         "[{\"app\":\"secure\",\"id\":\"red-1\",\"input\":\"Where is my order?\","
         "\"output\":\"Write to " PII_EMAIL " and pay with " PII_CARD " today.\"},"
         "{\"app\":\"plain\",\"id\":\"raw-1\",\"output\":\"Write to " PLAIN_EMAIL ".\"}]",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);

    /* The redacting app: stored and returned redacted, the leak still caught. */
    wait_judged(&s, "red-1", 20000, &r);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "done");
    json_t *doc = json_object_get(r.json, "sample");
    CHECK_STR_EQ(json_string_value(json_object_get(doc, "output")),
                 "Write to [EMAIL] and pay with [CARD] today.");
    json_t *found = json_object_get(json_object_get(doc, "_pii"), "output");
    CHECK_INT_EQ(json_integer_value(json_object_get(found, "email")), 1);
    CHECK_INT_EQ(json_integer_value(json_object_get(found, "card")), 1);
    CHECK(!strstr(r.body.data, "jane.doe") && !strstr(r.body.data, "4111"));
    int pii_seen = 0, llm_seen = 0;
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(r.json, "verdicts"), i, v)
    {
        const char *rubric = json_string_value(json_object_get(v, "rubric"));
        if (rubric && strcmp(rubric, "pii-leak") == 0) {
            pii_seen++;
            CHECK(json_is_false(json_object_get(v, "pass")));
            const char *why = json_string_value(json_object_get(v, "reasoning"));
            CHECK(why && strstr(why, "1 email") && strstr(why, "1 card"));
        } else if (rubric && strcmp(rubric, "helpfulness") == 0) {
            llm_seen++;
            CHECK(json_is_number(json_object_get(v, "score")));
        }
    }
    CHECK_INT_EQ(pii_seen, 1);
    CHECK_INT_EQ(llm_seen, 1);
    reply_clear(&r);

    /* A single object and an NDJSON line (bodies whose own text the store
     * could splice instead of serialising again) are redacted all the same. */
    http(&s, "POST", "/v1/samples", "application/json",
         "{\"app\":\"secure\",\"id\":\"red-2\",\"output\":\"Mail " PII_EMAIL ".\"}", NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    http(&s, "POST", "/v1/samples", "application/x-ndjson",
         "{\"app\":\"secure\",\"id\":\"red-3\",\"output\":\"Card " PII_CARD ".\"}\n", NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    const char *more[] = {"red-2", "red-3"};
    const char *want[] = {"Mail [EMAIL].", "Card [CARD]."};
    for (int k = 0; k < 2; k++) {
        wait_judged(&s, more[k], 20000, &r);
        doc = json_object_get(r.json, "sample");
        CHECK_STR_EQ(json_string_value(json_object_get(doc, "output")), want[k]);
        CHECK(r.body.data && !strstr(r.body.data, "jane.doe") && !strstr(r.body.data, "4111"));
        reply_clear(&r);
    }

    /* The app without "redact": stored as posted, its leak caught on the text. */
    wait_judged(&s, "raw-1", 20000, &r);
    doc = json_object_get(r.json, "sample");
    CHECK_STR_EQ(json_string_value(json_object_get(doc, "output")), "Write to " PLAIN_EMAIL ".");
    CHECK(json_object_get(doc, "_pii") == NULL);
    v = json_array_get(json_object_get(r.json, "verdicts"), 0);
    CHECK(json_is_false(json_object_get(v, "pass")));
    reply_clear(&r);

    stop_clean(&s);
    fake_server_stop(fs);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    /* Bedrock got the redacted text (the helpfulness call), never the raw. */
    CHECK(t.seen.len > 0 && strstr(t.seen.data, "[EMAIL]") && strstr(t.seen.data, "[CARD]"));
    CHECK(t.seen.data && !strstr(t.seen.data, "jane.doe") && !strstr(t.seen.data, "4111"));
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"operation\":\"Converse\""),
                 1); /* red-2, red-3 have no input: helpfulness needs one */
    /* The store's files: no trace of the redacting app's raw text; the plain app's as posted. */
    char data[1100];
    snprintf(data, sizeof data, "%s/data", s.dir);
    CHECK(!dir_holds(data, "jane.doe"));
    CHECK(!dir_holds(data, "4111 1111"));
    CHECK(dir_holds(data, "[CARD]"));
    CHECK(dir_holds(data, PLAIN_EMAIL));
    buf_clear(&t.seen);
    pthread_mutex_destroy(&t.mu);
}

/* GET /v1/samples/ID: 200, the status, text_kept, and the stored output (NULL: none). */
static void get_text(struct serve *s, const char *id, const char *status, bool text_kept,
                     const char *output)
{
    char path[128];
    snprintf(path, sizeof path, "/v1/samples/%s", id);
    struct reply r;
    http(s, "GET", path, NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), status);
    CHECK(json_is_boolean(json_object_get(r.json, "text_kept")));
    CHECK(json_is_true(json_object_get(r.json, "text_kept")) == text_kept);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "model_id")), "m-1");
    json_t *doc = json_object_get(r.json, "sample");
    if (output)
        CHECK_STR_EQ(json_string_value(json_object_get(doc, "output")), output);
    else
        CHECK(json_is_null(doc));
    reply_clear(&r);
}

#define TEXT_DROPPED "unsampled-text-never-stored"
#define TEXT_KEPT "unsampled-text-kept-by-config"
#define TEXT_JUDGED "sampled-text-always-stored"

TEST_CASE(unsampled_text_not_stored)
{
    struct serve s;
    start(&s, "\"apps\":{\"support\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\"]},"
              "\"quiet\":{\"sample_rate\":0.0},"
              "\"kept\":{\"sample_rate\":0.0,\"keep_unsampled_text\":true}}");
    struct reply r;
    http(&s, "POST", "/v1/samples", "application/json",
         "[{\"app\":\"quiet\",\"id\":\"t-quiet\",\"model_id\":\"m-1\",\"input\":\"q\","
         "\"output\":\"" TEXT_DROPPED "\"},"
         "{\"app\":\"kept\",\"id\":\"t-kept\",\"model_id\":\"m-1\",\"output\":\"" TEXT_KEPT "\"},"
         "{\"app\":\"support\",\"id\":\"t-judged\",\"model_id\":\"m-1\","
         "\"output\":\"" TEXT_JUDGED "\"}]",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 3);
    CHECK_INT_EQ(num(&r, "sampled"), 1);
    reply_clear(&r);
    /* The same NDJSON line (a body whose text could be spliced) is not stored either. */
    http(&s, "POST", "/v1/samples", "application/x-ndjson",
         "{\"app\":\"quiet\",\"id\":\"t-quiet-2\",\"model_id\":\"m-1\","
         "\"output\":\"" TEXT_DROPPED "\"}\n",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    get_text(&s, "t-quiet", "not_sampled", false, NULL);
    get_text(&s, "t-quiet-2", "not_sampled", false, NULL);
    get_text(&s, "t-kept", "not_sampled", true, TEXT_KEPT);
    get_text(&s, "t-judged", "queued", true, TEXT_JUDGED);

    /* Posted again, even forced: a duplicate, still not sampled, still without text. */
    http(&s, "POST", "/v1/samples", "application/json",
         "{\"app\":\"quiet\",\"id\":\"t-quiet\",\"model_id\":\"m-1\",\"force\":true,"
         "\"output\":\"" TEXT_DROPPED "\"}",
         NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    CHECK_INT_EQ(num(&r, "sampled"), 0);
    json_t *s0 = json_array_get(json_object_get(r.json, "samples"), 0);
    CHECK(json_is_true(json_object_get(s0, "duplicate")));
    CHECK(json_is_false(json_object_get(s0, "sampled")));
    reply_clear(&r);
    get_text(&s, "t-quiet", "not_sampled", false, NULL);
    stop_clean(&s);

    /* The store's files (database and WAL): the kept and judged texts, never the other. */
    char data[1100];
    snprintf(data, sizeof data, "%s/data", s.dir);
    CHECK(!dir_holds(data, TEXT_DROPPED));
    CHECK(dir_holds(data, TEXT_KEPT));
    CHECK(dir_holds(data, TEXT_JUDGED));

    /* After a restart the sample is still known, without text. */
    REQUIRE_INT_EQ(serve_start_raw(&s), 0);
    wait_ready(&s);
    get_text(&s, "t-quiet", "not_sampled", false, NULL);
    stop_clean(&s);
}
