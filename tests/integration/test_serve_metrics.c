/*
 * Integration tests of the service's CloudWatch metrics and alarms end to
 * end: the real build/assay (`assay serve`) and the real build/assay-emulator
 * (Bedrock Converse and CloudWatch), both started per case on 127.0.0.1 with
 * port files and stopped by their PIDs (an atexit hook SIGKILLs only those
 * two PIDs when a case stops early). Samples go in over HTTP; verdicts are
 * read back with GET /v1/samples/{id}; what CloudWatch received is read back
 * with GetMetricData (assay's own aws/cloudwatch client) and the emulator's
 * request log. Cases (ctest serve_cw.<case>):
 *   exact_1000_samples        per series SampleCount, Sum, Minimum, Maximum of
 *                             the published metrics equal the verdicts'; judge
 *                             cost metrics equal the emulator's Converse log
 *   outage_restart_once       CloudWatch refuses everything while assay is
 *                             restarted; afterwards every datum is there once,
 *                             at its verdicts' period
 *   alarms_once_unchanged_updated  PutMetricAlarm only when missing or changed
 *   request_count_10000_verdicts   10,000 verdicts over 50 series in one
 *                             period: the PutMetricData requests (printed)
 *   emf_same_aggregates       metrics.sink "emf": the lines carry the same
 *                             aggregates as the verdicts
 */
#include "tests/integration/emulator_proc.h"
#include "tests/unit/test.h"

#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MODEL "anthropic.claude-3-5-haiku-20241022-v1:0"
#define NS "AssayE2E"

/* ------------------------------------------------------------ processes */

static pid_t live_assay, live_emulator; /* killed at exit if a case stops early */

static void kill_live(void)
{
    if (live_assay > 0) {
        kill(live_assay, SIGKILL);
        waitpid(live_assay, NULL, 0);
    }
    if (live_emulator > 0) {
        kill(live_emulator, SIGKILL);
        waitpid(live_emulator, NULL, 0);
    }
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
    return clock_now_ms(NULL);
}

static void emu_start(struct emulator_proc *e, const char *scenario)
{
    if (!getenv("ASSAY_EMULATOR"))
        TEST_SKIP("ASSAY_EMULATOR not set (the emulator is not built)");
    static bool hooked;
    if (!hooked) {
        atexit(kill_live);
        hooked = true;
    }
    REQUIRE_INT_EQ(emulator_proc_start(e, scenario, 7), 0);
    live_emulator = e->pid;
}

static void emu_stop(struct emulator_proc *e)
{
    CHECK_INT_EQ(emulator_proc_stop(e), 0);
    live_emulator = 0;
}

struct serve {
    pid_t pid;
    char dir[1024];
    char config[1100];
    char port_file[1100];
    char log[1100];
    char base[64];
};

static void serve_init(struct serve *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "%s", test_tmpdir());
    snprintf(s->config, sizeof s->config, "%s/config.json", s->dir);
    snprintf(s->port_file, sizeof s->port_file, "%s/port", s->dir);
    snprintf(s->log, sizeof s->log, "%s/assay.log", s->dir);
}

/* The config: rubrics from the source tree, data in the case's dir, both
 * endpoints on the emulator, then extra members. */
static void write_config(struct serve *s, const struct emulator_proc *e, const char *extra)
{
    FILE *f = fopen(s->config, "w");
    REQUIRE(f != NULL);
    fprintf(f,
            "{\"data_dir\":\"%s/data\",\"rubrics_dir\":\"%s/rubrics\",\"listen\":\"127.0.0.1:0\","
            "\"aws\":{\"region\":\"us-east-1\",\"endpoints\":{\"bedrock_runtime\":\"%s\","
            "\"cloudwatch\":\"%s\"}},"
            "\"judge\":{\"model_id\":\"%s\",\"max_concurrency\":32},%s}\n",
            s->dir, test_source_dir(), e->url, e->url, MODEL, extra);
    fclose(f);
}

static void dump_log(const struct serve *s)
{
    FILE *f = fopen(s->log, "r");
    if (!f)
        return;
    char line[4096];
    int n = 0;
    fprintf(stderr, "--- %s (last lines)\n", s->log);
    while (fgets(line, sizeof line, f))
        n++;
    rewind(f);
    for (int i = 0; fgets(line, sizeof line, f); i++)
        if (i >= n - 40)
            fputs(line, stderr);
    fclose(f);
}

struct reply {
    long status;
    struct buf body;
    json_t *json;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    buf_append(ctx, p, size * n);
    return size * n;
}

static void http(const struct serve *s, const char *method, const char *path, const char *body,
                 struct reply *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", s->base, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
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

/* Starts assay serve (with the emulator's key) and waits, bounded, for /readyz. */
static void serve_start(struct serve *s)
{
    unlink(s->port_file);
    const char *bin = getenv("ASSAY_BINARY_DIR");
    if (!bin)
        TEST_SKIP("ASSAY_BINARY_DIR not set");
    char exe[1100];
    snprintf(exe, sizeof exe, "%s/assay", bin);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsetenv("AWS_SESSION_TOKEN");
        unsetenv("AWS_PROFILE");
        unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
        setenv("HOME", s->dir, 1);
        setenv("AWS_ACCESS_KEY_ID", AKID, 1);
        setenv("AWS_SECRET_ACCESS_KEY", SECRET, 1);
        const char *argv[] = {exe,           "serve",      "--config", s->config,
                              "--port-file", s->port_file, NULL};
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    live_assay = pid;
    for (int i = 0; i < 200; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = live_assay = 0;
            dump_log(s);
            test_fail_at(__FILE__, __LINE__, "assay serve exited at start");
            test_stop();
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
            break;
        }
        sleep_ms(50);
    }
    for (int i = 0; i < 200; i++) {
        struct reply r;
        http(s, "GET", "/readyz", NULL, &r);
        long st = r.status;
        reply_clear(&r);
        if (st == 200)
            return;
        sleep_ms(50);
    }
    dump_log(s);
    test_fail_at(__FILE__, __LINE__, "assay serve never became ready");
    test_stop();
}

/* SIGTERM; waits up to 30 s. Checks the exit status is 0. */
static void serve_stop(struct serve *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    int rc = -1;
    for (int i = 0; i < 300; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        sleep_ms(100);
    }
    if (rc < 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = live_assay = 0;
    if (rc != 0)
        dump_log(s);
    CHECK_INT_EQ(rc, 0);
}

/* Lines of a file containing every one of the needles (NULL-terminated). */
static int file_count(const char *path, const char *a, const char *b)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[16384];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, a) && (!b || strstr(line, b));
    fclose(f);
    return n;
}

/* Waits (bounded) until the service's log has at least n lines with needle. */
static bool wait_log(const struct serve *s, const char *needle, int n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 100) {
        if (file_count(s->log, needle, NULL) >= n)
            return true;
        sleep_ms(100);
    }
    return false;
}

/* ------------------------------------------------------------- samples */

/* Answers of varied quality, so that the emulator's judge gives varied scores. */
static const char *const ANSWERS[] = {
    "Open Settings, choose Security, then Reset password, and follow the link we email you.",
    "Go to Settings and reset your password there.",
    "I'm sorry, but I cannot help with that.",
    "Passwords can be reset.",
    ("To reset your password open Settings, pick Security, press Reset password, check your email "
     "for the reset link and choose a new password you have not used before."),
    "Bananas are yellow.",
};
#define N_ANSWERS (sizeof ANSWERS / sizeof ANSWERS[0])
static const char *const MODELS[] = {"prod-a", "prod-b", NULL};
static const char *const TEAMS[] = {"red", "blue"};

struct posted {
    char id[32];
    const char *app;
    const char *model; /* NULL: none */
};

/* Posts samples [first, first + n) of app (ids "<prefix>-<i>"), 100 a request. */
static void post_samples(const struct serve *s, const char *prefix, const char *app, int first,
                         int n, struct posted *out)
{
    struct buf b = BUF_INIT;
    for (int start = first; start < first + n; start += 100) {
        buf_reset(&b);
        buf_append_char(&b, '[');
        int end = start + 100 < first + n ? start + 100 : first + n;
        for (int i = start; i < end; i++) {
            const char *model = MODELS[i % 3];
            struct posted *p = &out[i - first];
            snprintf(p->id, sizeof p->id, "%s-%d", prefix, i);
            p->app = app;
            p->model = model;
            buf_appendf(&b,
                        "%s{\"app\":\"%s\",\"id\":\"%s\",\"input\":\"How do I reset my "
                        "password?\",\"output\":\"%s\",\"tags\":{\"team\":\"%s\"}",
                        i > start ? "," : "", app, p->id, ANSWERS[(i / 3) % N_ANSWERS],
                        TEAMS[i % 2]);
            if (model)
                buf_appendf(&b, ",\"model_id\":\"%s\"", model);
            buf_append_char(&b, '}');
        }
        buf_append_char(&b, ']');
        struct reply r;
        http(s, "POST", "/v1/samples", b.data, &r);
        if (r.status != 202)
            fprintf(stderr, "POST: %ld %s\n", r.status, r.body.data ? r.body.data : "");
        REQUIRE_INT_EQ(r.status, 202);
        reply_clear(&r);
    }
    buf_clear(&b);
}

/* Waits (bounded) until no job is queued or judging. */
static bool wait_drained(const struct serve *s, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        struct reply r;
        http(s, "GET", "/metrics", NULL, &r);
        bool done = r.body.data && strstr(r.body.data, "assay_queue_depth{state=\"queued\"} 0\n") &&
                    strstr(r.body.data, "assay_queue_depth{state=\"judging\"} 0\n");
        reply_clear(&r);
        if (done)
            return true;
        sleep_ms(100);
    }
    return false;
}

/* ------------------------------------------------- expected aggregates */

/* One published series: metric x dimension values, with its statistics. */
struct series {
    char metric[40];
    char app[32], rubric[32], model[32];
    int64_t period_ms; /* 0: any period (totals) */
    double n, sum, min, max;
};

struct expect {
    struct series *s;
    size_t n;
};

static void expect_add(struct expect *e, const char *metric, const char *app, const char *rubric,
                       const char *model, int64_t period_ms, double v)
{
    struct series *x = NULL;
    for (size_t i = 0; i < e->n && !x; i++)
        if (strcmp(e->s[i].metric, metric) == 0 && strcmp(e->s[i].app, app) == 0 &&
            strcmp(e->s[i].rubric, rubric) == 0 && strcmp(e->s[i].model, model ? model : "") == 0 &&
            e->s[i].period_ms == period_ms)
            x = &e->s[i];
    if (!x) {
        e->s = xrealloc(e->s, (e->n + 1) * sizeof *e->s);
        x = &e->s[e->n++];
        memset(x, 0, sizeof *x);
        snprintf(x->metric, sizeof x->metric, "%s", metric);
        snprintf(x->app, sizeof x->app, "%s", app);
        snprintf(x->rubric, sizeof x->rubric, "%s", rubric);
        snprintf(x->model, sizeof x->model, "%s", model ? model : "");
        x->period_ms = period_ms;
        x->min = INFINITY;
        x->max = -INFINITY;
    }
    x->n += 1;
    x->sum += v;
    x->min = v < x->min ? v : x->min;
    x->max = v > x->max ? v : x->max;
}

/*
 * Reads every posted sample's verdicts back and adds QualityScore and
 * QualityPass to {App, Rubric} and, when the sample names a model, to
 * {App, Rubric, ModelId}, at period_ms. Returns the scored verdicts.
 */
static int expect_from_verdicts(const struct serve *s, const struct posted *p, int n,
                                int64_t period_ms, struct expect *e)
{
    int scored = 0;
    for (int i = 0; i < n; i++) {
        char path[128];
        snprintf(path, sizeof path, "/v1/samples/%s?app=%s", p[i].id, p[i].app);
        struct reply r;
        http(s, "GET", path, NULL, &r);
        CHECK_INT_EQ(r.status, 200);
        json_t *vs = json_object_get(r.json, "verdicts");
        size_t k;
        json_t *v;
        json_array_foreach(vs, k, v)
        {
            json_t *score = json_object_get(v, "score");
            if (!json_is_number(score))
                continue;
            const char *rubric = json_string_value(json_object_get(v, "rubric"));
            double sc = json_number_value(score);
            double pass = json_is_true(json_object_get(v, "pass")) ? 1 : 0;
            for (int m = 0; m < (p[i].model ? 2 : 1); m++) {
                const char *model = m ? p[i].model : NULL;
                expect_add(e, "QualityScore", p[i].app, rubric, model, period_ms, sc);
                expect_add(e, "QualityPass", p[i].app, rubric, model, period_ms, pass);
            }
            scored++;
        }
        reply_clear(&r);
    }
    return scored;
}

/* ------------------------------------------------ reading CloudWatch back */

struct cwc {
    struct http_transport *t;
    struct creds_provider *creds;
    struct cloudwatch *cw;
};

static void cwc_init(struct cwc *c, const struct emulator_proc *e)
{
    memset(c, 0, sizeof *c);
    c->t = http_transport_new(NULL, NULL);
    REQUIRE(c->t != NULL);
    struct creds cr;
    creds_init(&cr);
    cr.access_key_id = xstrdup(AKID);
    cr.secret_access_key = xstrdup(SECRET);
    c->creds = creds_static_new(&cr);
    creds_clear(&cr);
    struct cloudwatch_options co = {
        .transport = c->t, .creds = c->creds, .region = "us-east-1", .endpoint = e->url};
    retry_policy_init(&co.retry);
    char errbuf[ASSAY_ERRBUF_SIZE];
    c->cw = cloudwatch_new(&co, errbuf);
    REQUIRE(c->cw != NULL);
}

static void cwc_clear(struct cwc *c)
{
    cloudwatch_free(c->cw);
    http_transport_free(c->t);
    creds_provider_free(c->creds);
}

static const char *const STATS[4] = {"SampleCount", "Sum", "Minimum", "Maximum"};

/*
 * Reads metric {dims} over [from_ms, to_ms) with period_s and folds the
 * datapoints: into *got as totals (got->period_ms 0), or, when per_period,
 * calls back once per datapoint timestamp. Returns the datapoints seen.
 */
struct point {
    int64_t ts_ms;
    double v[4];
};

static size_t read_points(struct cwc *c, const char *metric, const struct cloudwatch_dimension *d,
                          size_t nd, int64_t period_s, int64_t from_ms, int64_t to_ms,
                          struct point *pts, size_t cap)
{
    static const char *const ids[4] = {"n", "s", "lo", "hi"};
    struct cloudwatch_metric_query q[4];
    for (int k = 0; k < 4; k++)
        q[k] = (struct cloudwatch_metric_query){.id = ids[k],
                                                .ns = NS,
                                                .metric_name = metric,
                                                .dimensions = d,
                                                .n_dimensions = nd,
                                                .period_s = period_s,
                                                .stat = STATS[k]};
    json_t *results = NULL;
    struct cloudwatch_result res;
    enum assay_err err = cloudwatch_get_metric_data(c->cw, q, 4, from_ms, to_ms,
                                                    "TimestampAscending", &results, &res);
    if (err != ASSAY_OK)
        fprintf(stderr, "GetMetricData: %s %s\n", res.error_code, res.errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
    size_t n = json_array_size(json_object_get(json_array_get(results, 0), "Timestamps"));
    REQUIRE(n <= cap);
    for (size_t i = 0; i < n; i++) {
        pts[i].ts_ms = (int64_t)json_number_value(json_array_get(
                           json_object_get(json_array_get(results, 0), "Timestamps"), i)) *
                       1000;
        for (int k = 0; k < 4; k++) {
            json_t *r = json_array_get(results, (size_t)k);
            pts[i].v[k] = json_number_value(json_array_get(json_object_get(r, "Values"), i));
        }
    }
    json_decref(results);
    return n;
}

/* The series' dimensions as CloudWatch names them. */
static size_t series_dims(const struct series *x, struct cloudwatch_dimension d[3])
{
    d[0] = (struct cloudwatch_dimension){"App", x->app};
    d[1] = (struct cloudwatch_dimension){"Rubric", x->rubric};
    if (!x->model[0])
        return 2;
    d[2] = (struct cloudwatch_dimension){"ModelId", x->model};
    return 3;
}

/* Totals of metric {dims} over [from_ms, to_ms) (every datapoint folded). */
static void read_totals(struct cwc *c, const char *metric, const struct cloudwatch_dimension *d,
                        size_t nd, int64_t from_ms, int64_t to_ms, double out[4])
{
    static struct point pts[2048];
    size_t n = read_points(c, metric, d, nd, 60, from_ms, to_ms, pts, 2048);
    out[0] = out[1] = 0;
    out[2] = INFINITY;
    out[3] = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        out[0] += pts[i].v[0];
        out[1] += pts[i].v[1];
        out[2] = pts[i].v[2] < out[2] ? pts[i].v[2] : out[2];
        out[3] = pts[i].v[3] > out[3] ? pts[i].v[3] : out[3];
    }
}

/* Sums a numeric member of the emulator's log lines holding a and b. */
static double emu_log_sum(const struct emulator_proc *e, const char *a, const char *b,
                          const char *member)
{
    FILE *f = fopen(e->log_path, "r");
    if (!f)
        return -1;
    char line[16384];
    double sum = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, a) && (!b || strstr(line, b))) {
            json_t *j = json_loads(line, 0, NULL);
            sum += json_number_value(json_object_get(j, member));
            json_decref(j);
        }
    fclose(f);
    return sum;
}

#define APPS_CFG                                                                                   \
    "\"apps\":{\"support\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\"]},"                   \
    "\"search\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\",\"coherence\"]}}"

/* ----------------------------------------------------------------- cases */

TEST_CASE(exact_1000_samples)
{
    /* Bedrock throttles a tenth of the calls: the judge's throttles are counted too. */
    struct emulator_proc e;
    emu_start(&e, "{\"default\":{\"throttle_rate\":0.1}}");
    struct serve s;
    serve_init(&s);
    write_config(&s, &e,
                 APPS_CFG ",\"metrics\":{\"sink\":\"cloudwatch\",\"namespace\":\"" NS "\","
                          "\"period_s\":1,\"tags\":[\"team\"]},\"alarms\":{\"enabled\":false}");
    int64_t t0 = now_ms();
    serve_start(&s);
    static struct posted p[1000];
    post_samples(&s, "x", "support", 0, 500, p);
    post_samples(&s, "x", "search", 500, 500, p + 500);
    REQUIRE(wait_drained(&s, 120000));
    struct expect want = {0};
    int scored = expect_from_verdicts(&s, p, 1000, 0, &want);
    serve_stop(&s); /* flushes the open period and delivers the outbox */
    int64_t t1 = now_ms() + 1000;
    fprintf(stderr, "exact: %d scored verdicts over %zu series\n", scored, want.n);
    CHECK(scored >= 1400); /* 1,500 jobs; an unscorable one is not a score */
    CHECK_INT_EQ(file_count(s.log, "\"event\":\"publish.batch_rejected\"", NULL), 0);

    struct cwc c;
    cwc_init(&c, &e);
    int64_t from = (t0 / 60000 - 1) * 60000, to = (t1 / 60000 + 2) * 60000;
    int exact = 0;
    for (size_t i = 0; i < want.n; i++) {
        const struct series *x = &want.s[i];
        struct cloudwatch_dimension d[3];
        size_t nd = series_dims(x, d);
        double got[4];
        read_totals(&c, x->metric, d, nd, from, to, got);
        double w[4] = {x->n, x->sum, x->min, x->max};
        bool same = true;
        for (int k = 0; k < 4; k++)
            if (got[k] != w[k]) {
                fprintf(stderr, "%s %s/%s/%s %s: got %.17g want %.17g\n", x->metric, x->app,
                        x->rubric, x->model, STATS[k], got[k], w[k]);
                same = false;
            }
        exact += same;
    }
    fprintf(stderr, "exact: %d of %zu series equal (SampleCount, Sum, Minimum, Maximum)\n", exact,
            want.n);
    CHECK_INT_EQ(exact, (long long)want.n);

    /* Judge cost metrics = what the emulator saw: every attempt once. */
    struct cloudwatch_dimension jm[2] = {{"JudgeModelId", MODEL}, {NULL, NULL}};
    double got[4];
    read_totals(&c, "JudgeInvocations", jm, 1, from, to, got);
    int converse = emulator_proc_log_count(&e, "\"operation\":\"Converse\"");
    int throttled = file_count(e.log_path, "\"operation\":\"Converse\"", "\"fault\":\"throttle\"");
    fprintf(stderr, "exact: JudgeInvocations %.0f (Converse requests %d), throttles ", got[1],
            converse);
    CHECK_INT_EQ((long long)got[0], converse);
    CHECK_INT_EQ((long long)got[1], converse);
    read_totals(&c, "JudgeInvocationThrottles", jm, 1, from, to, got);
    fprintf(stderr, "%.0f (throttled %d)\n", got[1], throttled);
    CHECK_INT_EQ((long long)got[1], throttled);
    CHECK(throttled > 0);
    read_totals(&c, "JudgeInvocationServerErrors", jm, 1, from, to, got);
    CHECK_INT_EQ((long long)got[1], 0);
    double in_tokens =
        emu_log_sum(&e, "\"operation\":\"Converse\"", "\"status\":200", "input_tokens");
    double out_tokens =
        emu_log_sum(&e, "\"operation\":\"Converse\"", "\"status\":200", "output_tokens");
    double by_app = 0, by_team = 0, out_by_app = 0;
    const char *apps[] = {"support", "search"};
    for (int a = 0; a < 2; a++) {
        jm[1] = (struct cloudwatch_dimension){"App", apps[a]};
        read_totals(&c, "JudgeInputTokenCount", jm, 2, from, to, got);
        by_app += got[1];
        read_totals(&c, "JudgeOutputTokenCount", jm, 2, from, to, got);
        out_by_app += got[1];
        jm[1] = (struct cloudwatch_dimension){"team", TEAMS[a]};
        read_totals(&c, "JudgeInputTokenCount", jm, 2, from, to, got);
        by_team += got[1];
    }
    fprintf(stderr, "exact: input tokens %.0f by App, %.0f by team, %.0f at the emulator\n", by_app,
            by_team, in_tokens);
    CHECK(in_tokens > 0);
    CHECK(by_app == in_tokens);
    CHECK(by_team == in_tokens);
    CHECK(out_by_app == out_tokens);
    cwc_clear(&c);
    free(want.s);
    emu_stop(&e);
}

/* Waits until the wall clock is offset_ms into a period of period_ms. */
static void align(int64_t period_ms, int64_t offset_ms)
{
    int64_t t = now_ms(), into = t % period_ms;
    sleep_ms(into <= offset_ms ? offset_ms - into : period_ms - into + offset_ms);
}

/* Posts n samples right after a period starts and waits until judged, all in that period. */
static int64_t batch_in_one_period(const struct serve *s, const char *prefix, int n,
                                   struct posted *p, int64_t period_ms)
{
    align(period_ms, 100);
    int64_t start = now_ms();
    post_samples(s, prefix, "support", 0, n, p);
    REQUIRE(wait_drained(s, 30000));
    int64_t end = now_ms();
    int64_t period = start - start % period_ms;
    /* the verdicts are published when recorded, so all of them fall in this period */
    REQUIRE(end - end % period_ms == period);
    return period;
}

TEST_CASE(outage_restart_once)
{
    /* CloudWatch refuses every call (503) for the first 20 s of the emulator's life. */
    struct emulator_proc e;
    emu_start(&e, "{\"cloudwatch\":{\"outage\":[{\"from_ms\":0,\"to_ms\":20000}]}}");
    int64_t outage_end = now_ms() + 20000;
    struct serve s;
    serve_init(&s);
    write_config(&s, &e,
                 "\"apps\":{\"support\":{\"sample_rate\":1.0,\"rubrics\":[\"helpfulness\"]}},"
                 "\"server\":{\"shutdown_timeout_s\":1},"
                 "\"metrics\":{\"sink\":\"cloudwatch\",\"namespace\":\"" NS "\",\"period_s\":5}");
    int64_t t0 = now_ms();
    serve_start(&s);
    static struct posted a[60], b[60];
    int64_t pa = batch_in_one_period(&s, "a", 60, a, 5000);
    struct expect want = {0};
    expect_from_verdicts(&s, a, 60, pa, &want);
    serve_stop(&s); /* during the outage: the datums stay in the outbox on disk */
    CHECK(now_ms() < outage_end);
    CHECK(file_count(s.log, "\"event\":\"alarms.reconcile_failed\"", NULL) >= 1);

    serve_start(&s); /* restarted during the outage */
    int64_t pb = batch_in_one_period(&s, "b", 60, b, 5000);
    expect_from_verdicts(&s, b, 60, pb, &want);
    CHECK(pb > pa);
    CHECK(now_ms() < outage_end);
    int refused = emulator_proc_log_count(&e, "\"fault\":\"outage\"");
    fprintf(stderr, "outage: %d CloudWatch calls refused so far\n", refused);
    CHECK(refused > 0);

    /* after the outage, wait (bounded) for everything to arrive */
    struct cwc c;
    cwc_init(&c, &e);
    int64_t from = pa - 60000, to = pb + 60000;
    static struct point pts[256];
    /* the publisher backs off up to 5 min with full jitter; after ~15 s of failures its
     * next attempt is at most ~32 s away (typically 10-20 s) */
    int64_t deadline = outage_end + 120000;
    bool arrived = false;
    while (!arrived && now_ms() < deadline) {
        sleep_ms(1000);
        if (now_ms() < outage_end)
            continue;
        struct cloudwatch_dimension d[2] = {{"App", "support"}, {"Rubric", "helpfulness"}};
        size_t n = read_points(&c, "QualityScore", d, 2, 5, from, to, pts, 256);
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += pts[i].v[0];
        arrived = total >= 120 - 2; /* unscorable ones aside */
    }
    CHECK(arrived);
    fprintf(stderr, "outage: delivered %.1f s after the outage ended\n",
            (double)(now_ms() - outage_end) / 1000.0);
    CHECK(wait_log(&s, "\"event\":\"alarms.reconciled\"", 1, 60000));
    serve_stop(&s);

    /* every series: one datapoint per batch period, at that period, equal to its verdicts */
    int exact = 0;
    for (size_t i = 0; i < want.n; i++) {
        const struct series *x = &want.s[i];
        struct cloudwatch_dimension d[3];
        size_t nd = series_dims(x, d);
        size_t n = read_points(&c, x->metric, d, nd, 5, from, to, pts, 256);
        bool found = false, ok = true;
        for (size_t k = 0; k < n; k++) {
            if (pts[k].ts_ms != pa && pts[k].ts_ms != pb) {
                fprintf(stderr, "%s: a datapoint at %lld, not a batch's period\n", x->metric,
                        (long long)pts[k].ts_ms);
                ok = false;
            }
            if (pts[k].ts_ms == x->period_ms) {
                found = true;
                double w[4] = {x->n, x->sum, x->min, x->max};
                for (int j = 0; j < 4; j++)
                    if (pts[k].v[j] != w[j]) {
                        fprintf(stderr, "%s %s/%s/%s @%lld %s: got %.17g want %.17g\n", x->metric,
                                x->app, x->rubric, x->model, (long long)x->period_ms, STATS[j],
                                pts[k].v[j], w[j]);
                        ok = false;
                    }
            }
        }
        exact += found && ok;
    }
    fprintf(stderr, "outage: %d of %zu series x periods arrived once with their timestamps\n",
            exact, want.n);
    CHECK_INT_EQ(exact, (long long)want.n);
    (void)t0;
    cwc_clear(&c);
    free(want.s);
    emu_stop(&e);
}

static void alarms_config(char *out, size_t n, const char *threshold)
{
    snprintf(out, n,
             APPS_CFG ",\"metrics\":{\"sink\":\"cloudwatch\",\"namespace\":\"" NS "\"},"
                      "\"alarms\":{\"score\":{\"threshold\":%s}}",
             threshold);
}

TEST_CASE(alarms_once_unchanged_updated)
{
    struct emulator_proc e;
    emu_start(&e, NULL);
    struct serve s;
    serve_init(&s);
    char extra[1024];
    alarms_config(extra, sizeof extra, "0.5");
    write_config(&s, &e, extra);
    /* 3 app x rubric pairs: a regression alarm and a score alarm each */
    serve_start(&s);
    REQUIRE(wait_log(&s, "\"event\":\"alarms.reconciled\"", 1, 20000));
    serve_stop(&s);
    int put1 = emulator_proc_log_count(&e, "\"operation\":\"PutMetricAlarm\"");
    CHECK_INT_EQ(put1, 6);
    CHECK_INT_EQ(file_count(s.log, "\"event\":\"alarms.created\"", NULL), 6);

    serve_start(&s); /* the same config: nothing to put */
    REQUIRE(wait_log(&s, "\"event\":\"alarms.reconciled\"", 2, 20000));
    serve_stop(&s);
    int put2 = emulator_proc_log_count(&e, "\"operation\":\"PutMetricAlarm\"") - put1;
    CHECK_INT_EQ(put2, 0);

    alarms_config(extra, sizeof extra, "0.6"); /* a new threshold: the score alarms change */
    write_config(&s, &e, extra);
    serve_start(&s);
    REQUIRE(wait_log(&s, "\"event\":\"alarms.reconciled\"", 3, 20000));
    serve_stop(&s);
    int put3 = emulator_proc_log_count(&e, "\"operation\":\"PutMetricAlarm\"") - put1 - put2;
    CHECK_INT_EQ(put3, 3);
    CHECK_INT_EQ(file_count(s.log, "\"event\":\"alarms.updated\"", NULL), 3);
    CHECK_INT_EQ(file_count(e.log_path, "\"replaced\":true", NULL), 3);
    fprintf(stderr,
            "alarms: PutMetricAlarm calls: %d at the first start, %d at the restart, %d after "
            "the threshold changed\n",
            put1, put2, put3);
    emu_stop(&e);
}

TEST_CASE(request_count_10000_verdicts)
{
    /* A rule rubric (judged locally) over 50 models: 50 {App, Rubric, ModelId} series. */
    struct emulator_proc e;
    emu_start(&e, NULL);
    struct serve s;
    serve_init(&s);
    write_config(&s, &e,
                 "\"apps\":{\"bulk\":{\"sample_rate\":1.0,\"rubrics\":[\"refusal-phrases\"]}},"
                 "\"alarms\":{\"enabled\":false},"
                 "\"metrics\":{\"sink\":\"cloudwatch\",\"namespace\":\"" NS "\",\"period_s\":60}");
    /* all 10,000 in one minute: start early in one */
    if (now_ms() % 60000 > 40000)
        align(60000, 200);
    int64_t t0 = now_ms();
    serve_start(&s);
    struct buf b = BUF_INIT;
    for (int start = 0; start < 10000; start += 500) {
        buf_reset(&b);
        buf_append_char(&b, '[');
        for (int i = start; i < start + 500; i++)
            buf_appendf(&b,
                        "%s{\"app\":\"bulk\",\"id\":\"r-%d\",\"input\":\"Hi\",\"output\":\"%s\","
                        "\"model_id\":\"model-%02d\"}",
                        i > start ? "," : "", i,
                        i % 7 ? "Here is the answer." : "I'm sorry, but I cannot help with that.",
                        i % 50);
        buf_append_char(&b, ']');
        struct reply r;
        http(&s, "POST", "/v1/samples", b.data, &r);
        REQUIRE_INT_EQ(r.status, 202);
        reply_clear(&r);
    }
    buf_clear(&b);
    REQUIRE(wait_drained(&s, 120000));
    int64_t t1 = now_ms();
    serve_stop(&s);
    int puts = file_count(e.log_path, "\"operation\":\"PutMetricData\"", "\"status\":200");
    double datums = emu_log_sum(&e, "\"operation\":\"PutMetricData\"", "\"status\":200", "datums");
    bool one_period = t0 / 60000 == t1 / 60000;
    fprintf(stderr,
            "request count: 10,000 verdicts over 50 series (%s): %d PutMetricData requests, "
            "%.0f datums\n",
            one_period ? "one period" : "two periods", puts, datums);
    CHECK(puts >= 1);
    CHECK(puts <= (one_period ? 2 : 4));
    /* read back: every verdict counted once */
    struct cwc c;
    cwc_init(&c, &e);
    struct cloudwatch_dimension d[2] = {{"App", "bulk"}, {"Rubric", "refusal-phrases"}};
    double got[4];
    read_totals(&c, "QualityScore", d, 2, (t0 / 60000 - 1) * 60000, (t1 / 60000 + 2) * 60000, got);
    CHECK(got[0] == 10000);
    cwc_clear(&c);
    emu_stop(&e);
}

TEST_CASE(emf_same_aggregates)
{
    struct emulator_proc e;
    emu_start(&e, NULL);
    struct serve s;
    serve_init(&s);
    char extra[2048];
    snprintf(extra, sizeof extra,
             APPS_CFG ",\"metrics\":{\"sink\":\"emf\",\"namespace\":\"" NS "\",\"period_s\":1,"
                      "\"emf_path\":\"%s/emf.log\"}",
             s.dir);
    write_config(&s, &e, extra);
    serve_start(&s);
    static struct posted p[200];
    post_samples(&s, "m", "support", 0, 100, p);
    post_samples(&s, "m", "search", 100, 100, p + 100);
    REQUIRE(wait_drained(&s, 60000));
    struct expect want = {0};
    expect_from_verdicts(&s, p, 200, 0, &want);
    serve_stop(&s);

    /* fold the EMF lines per metric and dimension set */
    char path[1200];
    snprintf(path, sizeof path, "%s/emf.log", s.dir);
    FILE *f = fopen(path, "r");
    REQUIRE(f != NULL);
    struct expect got = {0};
    double invocations = 0;
    static char line[1 << 16];
    while (fgets(line, sizeof line, f)) {
        json_t *m = json_loads(line, 0, NULL);
        const char *app = json_string_value(json_object_get(m, "App"));
        const char *rubric = json_string_value(json_object_get(m, "Rubric"));
        const char *model = json_string_value(json_object_get(m, "ModelId"));
        const char *names[] = {"QualityScore", "QualityPass"};
        for (int k = 0; app && rubric && k < 2; k++) {
            json_t *vals = json_object_get(m, names[k]);
            if (json_is_number(vals))
                expect_add(&got, names[k], app, rubric, model, 0, json_number_value(vals));
            size_t i;
            json_t *v;
            json_array_foreach(vals, i, v)
            {
                expect_add(&got, names[k], app, rubric, model, 0, json_number_value(v));
            }
        }
        json_t *inv = json_object_get(m, "JudgeInvocations");
        if (json_is_array(inv))
            invocations += (double)json_array_size(inv);
        else if (json_is_number(inv))
            invocations += 1;
        json_decref(m);
    }
    fclose(f);
    int exact = 0;
    for (size_t i = 0; i < want.n; i++) {
        const struct series *w = &want.s[i];
        for (size_t j = 0; j < got.n; j++) {
            const struct series *g = &got.s[j];
            if (strcmp(g->metric, w->metric) || strcmp(g->app, w->app) ||
                strcmp(g->rubric, w->rubric) || strcmp(g->model, w->model))
                continue;
            exact += g->n == w->n && g->sum == w->sum && g->min == w->min && g->max == w->max;
        }
    }
    fprintf(stderr, "emf: %d of %zu series equal; JudgeInvocations %.0f, Converse requests %d\n",
            exact, want.n, invocations, emulator_proc_log_count(&e, "\"operation\":\"Converse\""));
    CHECK_INT_EQ(exact, (long long)want.n);
    CHECK_INT_EQ(got.n, want.n);
    CHECK_INT_EQ((long long)invocations, emulator_proc_log_count(&e, "\"operation\":\"Converse\""));
    free(want.s);
    free(got.s);
    emu_stop(&e);
}
