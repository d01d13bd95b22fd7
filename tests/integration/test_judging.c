/*
 * tests/integration/test_judging: the judging path end to end against the
 * real build/assay-emulator: `assay judge` as a user runs it (a child
 * process with a clean environment), and 300 samples judged in one process
 * through judges/llm + aws/bedrock under a scenario of 30% throttling and
 * 10% 5xx, checked for: a verdict for every sample (scored, or unscorable
 * with a reason), no call over the attempt bound, no guessed score (every
 * score equals the fault-free run's), and a request rate within the
 * configured budget as the emulator's request log records it.
 */
#include "tests/integration/emulator_proc.h"
#include "tests/unit/test.h"

#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "judges/judge.h"
#include "judges/llm.h"
#include "judges/rubric.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MODEL "anthropic.claude-3-5-haiku-20241022-v1:0"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static const char *assay_bin(void)
{
    const char *b = getenv("ASSAY_BIN");
    if (!b)
        TEST_SKIP("ASSAY_BIN is not set");
    return b;
}

/* The file's text, "" when it is missing (so checks on it fail cleanly). */
static char *read_file(const char *path)
{
    char *text = test_read_file(path, NULL);
    return text ? text : xstrdup("");
}

/* The outcome of one `assay judge` run. */
struct run {
    int status;
    char *out, *err;
    json_t *verdict;
};

static void run_clear(struct run *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->verdict);
}

/*
 * Runs `assay judge` in a clean environment (no ambient AWS settings, HOME in
 * the temp dir, no instance metadata) with the given extra variables, config
 * text, rubric and sample.
 */
static void run_judge(const char *env, const char *config, const char *rubric, const char *sample,
                      struct run *r)
{
    static int n;
    const char *dir = test_tmpdir();
    char cfg[1024], in[1024], out[1024], err[1024];
    snprintf(cfg, sizeof cfg, "%s/cfg%d.json", dir, n);
    snprintf(in, sizeof in, "%s/in%d.json", dir, n);
    snprintf(out, sizeof out, "%s/out%d", dir, n);
    snprintf(err, sizeof err, "%s/err%d", dir, n);
    n++;
    test_write_file(cfg, config);
    test_write_file(in, sample);
    struct buf cmd = BUF_INIT;
    buf_appendf(&cmd,
                "cd '%s' && env -i PATH=/usr/bin:/bin HOME='%s' AWS_EC2_METADATA_DISABLED=true "
                "%s '%s' judge --config '%s' --rubric '%s' < '%s' > '%s' 2> '%s'",
                test_source_dir(), dir, env, assay_bin(), cfg, rubric, in, out, err);
    int rc = system(cmd.data);
    buf_clear(&cmd);
    r->status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    r->out = read_file(out);
    r->err = read_file(err);
    r->verdict = json_loads(r->out, 0, NULL);
}

static char *config_for(const struct emulator_proc *e, const char *extra)
{
    struct buf b = BUF_INIT;
    buf_appendf(&b,
                "{\"aws\": {\"region\": \"us-east-1\", \"endpoints\": {\"bedrock_runtime\": "
                "\"%s\"}}, \"judge\": {\"model_id\": \"%s\", \"max_attempts\": 4%s}, "
                "\"log_level\": \"warn\"}",
                e ? e->url : "http://127.0.0.1:9", MODEL, extra ? extra : "");
    return buf_detach(&b, NULL);
}

#define CREDS_ENV "AWS_ACCESS_KEY_ID=" AKID " AWS_SECRET_ACCESS_KEY=" SECRET
#define SAMPLE_GOOD                                                                                \
    "{\"app\": \"support\", \"input\": [{\"role\": \"user\", \"content\": [{\"text\": \"How do I " \
    "reset my password?\"}]}], \"output\": \"Open Settings, choose Security, then Reset "          \
    "password.\", \"context\": [\"Passwords are reset under Settings > Security.\"]}"

TEST_CASE(cli_scored)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    char *cfg = config_for(&e, NULL);
    struct run r = {0};
    run_judge(CREDS_ENV, cfg, "faithfulness", SAMPLE_GOOD, &r);
    if (r.status != 0)
        fprintf(stderr, "stderr: %s\n", r.err);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.verdict != NULL);
    CHECK(json_is_false(json_object_get(r.verdict, "unscorable")));
    double score = json_number_value(json_object_get(r.verdict, "score"));
    CHECK(score >= 0 && score <= 1);
    CHECK(json_is_boolean(json_object_get(r.verdict, "pass")));
    CHECK_STR_EQ(json_string_value(json_object_get(r.verdict, "judge")), MODEL);
    CHECK_STR_EQ(json_string_value(json_object_get(r.verdict, "rubric")), "faithfulness");
    CHECK_INT_EQ(json_integer_value(json_object_get(r.verdict, "attempts")), 1);
    CHECK(json_integer_value(json_object_get(r.verdict, "input_tokens")) > 0);
    CHECK(json_integer_value(json_object_get(r.verdict, "output_tokens")) > 0);
    CHECK(json_is_string(json_object_get(r.verdict, "reasoning")));
    CHECK(json_is_integer(json_object_get(r.verdict, "latency_ms")));
    CHECK(strstr(r.err, SECRET) == NULL);
    run_clear(&r);
    free(cfg);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 1);
}

TEST_CASE(cli_endpoint_from_environment)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    char *cfg = config_for(NULL, NULL);
    /* The config names no endpoint... */
    char *p = strstr(cfg, "\"endpoints\"");
    REQUIRE(p != NULL);
    free(cfg);
    cfg = xstrdup("{\"judge\": {\"model_id\": \"" MODEL "\"}}");
    /* ...the SDKs' variable does. */
    char env[512];
    snprintf(env, sizeof env, CREDS_ENV " AWS_REGION=us-east-1 AWS_ENDPOINT_URL_BEDROCK_RUNTIME=%s",
             e.url);
    struct run r = {0};
    run_judge(env, cfg, "helpfulness", SAMPLE_GOOD, &r);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.verdict != NULL);
    CHECK(json_is_false(json_object_get(r.verdict, "unscorable")));
    run_clear(&r);
    free(cfg);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 1);
}

TEST_CASE(cli_text_fallback)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, "{\"default\": {\"refuse_forced_tools\": true}}", 0), 0);
    char *cfg = config_for(&e, NULL);
    struct run r = {0};
    run_judge(CREDS_ENV, cfg, "helpfulness", SAMPLE_GOOD, &r);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.verdict != NULL);
    CHECK(json_is_false(json_object_get(r.verdict, "unscorable")));
    CHECK_INT_EQ(json_integer_value(json_object_get(r.verdict, "attempts")), 2);
    run_clear(&r);
    free(cfg);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":400"), 1);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 1);
}

TEST_CASE(cli_access_denied_unscorable)
{
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, "{\"default\": {\"access_denied\": true}}", 0), 0);
    char *cfg = config_for(&e, NULL);
    struct run r = {0};
    run_judge(CREDS_ENV, cfg, "helpfulness", SAMPLE_GOOD, &r);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.verdict != NULL);
    CHECK(json_is_true(json_object_get(r.verdict, "unscorable")));
    CHECK_STR_EQ(json_string_value(json_object_get(r.verdict, "reason")), "access_denied");
    CHECK(json_object_get(r.verdict, "score") == NULL);
    CHECK_INT_EQ(json_integer_value(json_object_get(r.verdict, "attempts")), 1);
    run_clear(&r);
    free(cfg);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":403"), 1);
}

TEST_CASE(cli_errors)
{
    struct run r = {0};
    /* no credentials anywhere: exit 1, a clear message, nothing on stdout */
    char *cfg = config_for(NULL, NULL);
    run_judge("", cfg, "helpfulness", SAMPLE_GOOD, &r);
    CHECK_INT_EQ(r.status, 1);
    CHECK(strstr(r.err, "credentials") != NULL);
    CHECK_STR_EQ(r.out, "");
    run_clear(&r);
    /* an unknown rubric */
    memset(&r, 0, sizeof r);
    run_judge(CREDS_ENV, cfg, "no-such-rubric", SAMPLE_GOOD, &r);
    CHECK_INT_EQ(r.status, 1);
    CHECK(strstr(r.err, "no-such-rubric") != NULL);
    run_clear(&r);
    /* a sample without output */
    memset(&r, 0, sizeof r);
    run_judge(CREDS_ENV, cfg, "helpfulness", "{\"input\": \"hi\"}", &r);
    CHECK_INT_EQ(r.status, 1);
    CHECK(strstr(r.err, "output") != NULL);
    run_clear(&r);
    /* not JSON */
    memset(&r, 0, sizeof r);
    run_judge(CREDS_ENV, cfg, "helpfulness", "output: hi", &r);
    CHECK_INT_EQ(r.status, 1);
    run_clear(&r);
    free(cfg);
}

TEST_CASE(cli_rule_needs_no_aws)
{
    struct run r = {0};
    /* no credentials, no endpoint: rule rubrics are judged locally */
    run_judge("", "{}", "pii-leak",
              "{\"output\": \"Write to jane.doe@example.com or call +1 415 555 0100.\"}", &r);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.verdict != NULL);
    CHECK(json_is_false(json_object_get(r.verdict, "pass")));
    CHECK_STR_EQ(json_string_value(json_object_get(r.verdict, "judge")), "rule:pii-leak");
    CHECK(strstr(r.out, "jane.doe") == NULL); /* the reasoning names kinds, not text */
    run_clear(&r);
}

/* ---- 300 samples under faults ---- */

#define N_SAMPLES 300
#define MAX_ATTEMPTS 6
#define RPM 2400.0

struct job_out {
    atomic_int done;
    enum assay_err err;
    struct verdict v;
};

static void keep(void *ctx, enum assay_err err, struct verdict *v)
{
    struct job_out *o = ctx;
    o->err = err;
    o->v = *v;
    verdict_init(v);
    atomic_store(&o->done, 1);
}

/* The i-th sample: answers of varying quality, so scores vary. */
static void sample_text(int i, struct buf *input, struct buf *output, struct buf *context)
{
    static const char *const topics[] = {"password", "invoice", "refund", "shipping", "account"};
    const char *t = topics[i % 5];
    buf_appendf(input, "Question %d: how do I change my %s settings?", i, t);
    buf_appendf(context, "To change %s settings open Settings, then %s, then Edit (doc %d).", t, t,
                i);
    switch (i % 4) {
    case 0:
        buf_appendf(output, "Open Settings, then %s, then Edit.", t);
        break;
    case 1:
        buf_appendf(output, "I think you can change %s settings somewhere in the app.", t);
        break;
    case 2:
        buf_appendf(output, "I'm sorry, I can't help with that.");
        break;
    default:
        buf_appendf(output, "Bananas are rich in potassium (%d).", i);
        break;
    }
}

struct judging {
    struct http_transport *t;
    struct creds_provider *creds;
    struct bedrock_client *b;
    struct llm_judge *llm;
    struct judge_runner *runner;
};

static void judging_start_clock(struct judging *j, const char *url, double rpm,
                                const struct clock *clk)
{
    memset(j, 0, sizeof *j);
    struct http_transport_options to = {.clock = clk};
    j->t = http_transport_new(&to, NULL);
    REQUIRE(j->t != NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    j->creds = creds_static_new(&c);
    creds_clear(&c);
    struct bedrock_options bo = {.transport = j->t,
                                 .creds = j->creds,
                                 .region = "us-east-1",
                                 .endpoint = url,
                                 .max_concurrency = 32,
                                 .requests_per_minute = rpm,
                                 .seed = 2026};
    retry_policy_init(&bo.retry);
    bo.retry.max_attempts = MAX_ATTEMPTS;
    bo.retry.base_ms = 20;
    bo.retry.throttle_base_ms = 50;
    bo.retry.max_backoff_ms = 1000;
    j->b = bedrock_client_new(&bo, NULL);
    REQUIRE(j->b != NULL);
    struct llm_judge_options lo = {.bedrock = j->b, .model_id = MODEL};
    j->llm = llm_judge_new(&lo, NULL);
    j->runner = judge_runner_new(j->llm, NULL);
}

static void judging_start(struct judging *j, const char *url, double rpm)
{
    judging_start_clock(j, url, rpm, NULL);
}

static void judging_stop(struct judging *j)
{
    bedrock_client_free(j->b);
    judge_runner_free(j->runner);
    llm_judge_free(j->llm);
    http_transport_free(j->t);
    creds_provider_free(j->creds);
}

static void judge_all(struct judging *j, const struct rubric *rb, struct job_out *outs,
                      int n_samples)
{
    for (int i = 0; i < n_samples; i++) {
        struct buf in = BUF_INIT, out = BUF_INIT, ctx = BUF_INIT;
        sample_text(i, &in, &out, &ctx);
        struct rubric_sample s = {.input = in.data, .output = out.data, .context = ctx.data};
        char errbuf[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err err = judge_run(j->runner, rb, &s, NULL, keep, &outs[i], errbuf);
        buf_clear(&in);
        buf_clear(&out);
        buf_clear(&ctx);
        REQUIRE_INT_EQ(err, ASSAY_OK);
    }
    for (int waited = 0; waited < 170000; waited += 20) {
        int n = 0;
        for (int i = 0; i < n_samples; i++)
            n += atomic_load(&outs[i].done);
        if (n == n_samples)
            return;
        sleep_ms(20);
    }
    REQUIRE(!"every sample got a verdict in time");
}

/* Epoch milliseconds at which each request of the emulator's log arrived. */
static int64_t *log_times(const char *path, size_t *n_out)
{
    char *text = read_file(path);
    size_t cap = 1024, n = 0;
    int64_t *t = xcalloc(cap, sizeof *t);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *doc = json_loads(line, 0, NULL);
        int64_t ms;
        if (doc && clock_parse_iso8601(json_string_value(json_object_get(doc, "time")), &ms) == 0) {
            /* logged when answered: back out the handling time to get the arrival */
            ms -= (int64_t)json_integer_value(json_object_get(doc, "latency_ms"));
            if (n == cap)
                t = xrealloc(t, (cap *= 2) * sizeof *t);
            t[n++] = ms;
        }
        json_decref(doc);
    }
    free(text);
    *n_out = n;
    return t;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

TEST_CASE(three_hundred_under_faults)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rubrics/faithfulness.json", test_source_dir());
    struct rubric *rb = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(rubric_load(path, &rb, errbuf), ASSAY_OK);

    /* The fault-free run: what each sample's score is. */
    struct emulator_proc clean;
    REQUIRE_INT_EQ(emulator_proc_start(&clean, NULL, 0), 0);
    struct job_out *want = xcalloc(N_SAMPLES, sizeof *want);
    struct judging j;
    judging_start(&j, clean.url, 0);
    judge_all(&j, rb, want, N_SAMPLES);
    judging_stop(&j);
    CHECK_INT_EQ(emulator_proc_stop(&clean), 0);
    for (int i = 0; i < N_SAMPLES; i++)
        REQUIRE_INT_EQ(want[i].v.outcome, VERDICT_SCORED);

    /* The same samples under 30% throttling and 10% 5xx, at RPM a minute. */
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"seed\": 7, \"default\": {\"throttle_rate\": 0.3, "
                                       "\"error_rate\": 0.1}}",
                                       0),
                   0);
    struct job_out *got = xcalloc(N_SAMPLES, sizeof *got);
    int64_t t0 = clock_mono_ms(NULL);
    judging_start(&j, e.url, RPM);
    judge_all(&j, rb, got, N_SAMPLES);
    int64_t took = clock_mono_ms(NULL) - t0;
    struct bedrock_stats st;
    bedrock_client_stats(j.b, &st);
    judging_stop(&j);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);

    int dist[MAX_ATTEMPTS + 2] = {0};
    int scored = 0, unscorable = 0, over = 0;
    for (int i = 0; i < N_SAMPLES; i++) {
        struct verdict *v = &got[i].v;
        CHECK_INT_EQ(atomic_load(&got[i].done), 1);
        CHECK(v->attempts >= 1);
        if (v->attempts > MAX_ATTEMPTS)
            over++;
        dist[v->attempts <= MAX_ATTEMPTS ? v->attempts : MAX_ATTEMPTS + 1]++;
        CHECK_STR_EQ(v->judge, MODEL);
        CHECK_STR_EQ(v->rubric_version, rb->version);
        if (v->outcome == VERDICT_SCORED) {
            scored++;
            /* not guessed: the score the fault-free run gave this sample */
            CHECK_NEAR(v->raw_score, want[i].v.raw_score, 0);
        } else {
            unscorable++;
            CHECK(v->reason && strcmp(v->reason, "none") != 0);
            CHECK(strcmp(v->reason, "throttled") == 0 ||
                  strcmp(v->reason, "bedrock_unavailable") == 0);
            json_t *js = verdict_to_json(v);
            CHECK(json_object_get(js, "score") == NULL);
            json_decref(js);
        }
    }
    CHECK_INT_EQ(over, 0);
    CHECK_INT_EQ(scored + unscorable, N_SAMPLES);

    /* The request rate, from the emulator's own log. */
    size_t n = 0;
    int64_t *at = log_times(e.log_path, &n);
    qsort(at, n, sizeof *at, cmp_i64);
    CHECK_INT_EQ((long long)n, (long long)st.invocations);
    const int64_t window_ms = 10000;
    const double burst = RPM / 60.0; /* the client's default: one second's worth */
    size_t lo = 0, peak = 0;
    for (size_t hi = 0; hi < n; hi++) {
        while (at[hi] - at[lo] >= window_ms)
            lo++;
        if (hi - lo + 1 > peak)
            peak = hi - lo + 1;
    }
    double span_s = n > 1 ? (double)(at[n - 1] - at[0]) / 1000.0 : 0;
    double rate_per_min = span_s > 0 ? (double)(n - 1) / span_s * 60.0 : 0;
    double allowed = RPM * (double)window_ms / 60000.0 + burst;
    printf("300 samples under 30%% throttling + 10%% 5xx: %d scored, %d unscorable, %zu "
           "requests (%llu throttled, %llu 5xx), %.1f s\n",
           scored, unscorable, n, (unsigned long long)st.throttles,
           (unsigned long long)st.server_errors, (double)took / 1000.0);
    printf("attempts per verdict:");
    for (int a = 1; a <= MAX_ATTEMPTS; a++)
        printf(" %d:%d", a, dist[a]);
    printf(" (bound %d, over: %d)\n", MAX_ATTEMPTS, dist[MAX_ATTEMPTS + 1]);
    printf("request rate: %zu requests in %.1f s (%.0f/min; the budget allows %.0f: %.0f/min plus "
           "the burst of %.0f), peak %zu in a 10 s window (allowed %.0f)\n",
           n, span_s, rate_per_min, burst + RPM / 60.0 * span_s, RPM, burst, peak, allowed);
    /* over the run: no more than the bucket's burst plus the rate for the span */
    CHECK((double)n <= burst + RPM / 60.0 * span_s + 1);
    /* millisecond stamps, and the loopback between send and arrival: 2% slack */
    CHECK((double)peak <= allowed * 1.02 + 1);
    free(at);

    for (int i = 0; i < N_SAMPLES; i++) {
        verdict_clear(&want[i].v);
        verdict_clear(&got[i].v);
    }
    free(want);
    free(got);
    rubric_free(rb);
}

/* Malformed answers and max_tokens stops: each is asked again once, never
 * scored from a guess. */
TEST_CASE(malformed_answers_reasked)
{
    enum { N = 100 };
    char path[1024];
    snprintf(path, sizeof path, "%s/rubrics/faithfulness.json", test_source_dir());
    struct rubric *rb = NULL;
    REQUIRE_INT_EQ(rubric_load(path, &rb, NULL), ASSAY_OK);
    struct emulator_proc clean, e;
    REQUIRE_INT_EQ(emulator_proc_start(&clean, NULL, 0), 0);
    struct job_out *want = xcalloc(N, sizeof *want);
    struct judging j;
    judging_start(&j, clean.url, 0);
    judge_all(&j, rb, want, N);
    judging_stop(&j);
    CHECK_INT_EQ(emulator_proc_stop(&clean), 0);

    REQUIRE_INT_EQ(emulator_proc_start(&e,
                                       "{\"seed\": 11, \"default\": {\"malformed_rate\": 0.3, "
                                       "\"max_tokens_rate\": 0.1}}",
                                       0),
                   0);
    struct job_out *got = xcalloc(N, sizeof *got);
    judging_start(&j, e.url, 0);
    judge_all(&j, rb, got, N);
    judging_stop(&j);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    static const char *const reasons[] = {
        "unparseable_response", "score_out_of_range", "no_score_in_text", "no_verdict",
        "wrong_tool",           "no_tool_use",        "max_tokens"};
    int scored = 0, reasked = 0;
    for (int i = 0; i < N; i++) {
        struct verdict *v = &got[i].v;
        REQUIRE_INT_EQ(want[i].v.outcome, VERDICT_SCORED);
        CHECK(v->attempts >= 1 && v->attempts <= 2); /* one re-ask at most */
        reasked += v->attempts == 2;
        if (v->outcome == VERDICT_SCORED) {
            scored++;
            CHECK_NEAR(v->raw_score, want[i].v.raw_score, 0);
        } else {
            int known = 0;
            for (size_t k = 0; k < sizeof reasons / sizeof *reasons; k++)
                known |= strcmp(v->reason, reasons[k]) == 0;
            if (!known)
                fprintf(stderr, "unexpected reason %s (%s)\n", v->reason, v->detail);
            CHECK(known);
        }
    }
    int requests = emulator_proc_log_count(&e, "\"status\":200");
    int faults = requests - emulator_proc_log_count(&e, "\"fault\":\"\"");
    printf("%d samples, %d malformed or cut answers among %d: %d re-asked, %d scored, %d "
           "unscorable\n",
           N, faults, requests, reasked, scored, N - scored);
    CHECK_INT_EQ(requests, N + reasked);
    CHECK(reasked > 0);
    CHECK(scored >= N * 7 / 10); /* expected ~86: 37% of answers faulty, 14% twice */
    for (int i = 0; i < N; i++) {
        verdict_clear(&want[i].v);
        verdict_clear(&got[i].v);
    }
    free(want);
    free(got);
    rubric_free(rb);
}

/* A host clock 15 minutes fast: the first signature is refused as stale, the
 * transport learns the offset from the answer's Date and re-signs, as the
 * SDKs do; the judge sees one attempt and a verdict. */
static int64_t fast_now(void *ctx)
{
    (void)ctx;
    return clock_now_ms(NULL) + 15 * 60 * 1000;
}

static int64_t real_mono(void *ctx)
{
    (void)ctx;
    return clock_mono_ms(NULL);
}

TEST_CASE(skewed_clock_corrected)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/rubrics/helpfulness.json", test_source_dir());
    struct rubric *rb = NULL;
    REQUIRE_INT_EQ(rubric_load(path, &rb, NULL), ASSAY_OK);
    struct emulator_proc e;
    REQUIRE_INT_EQ(emulator_proc_start(&e, NULL, 0), 0);
    struct clock fast = {fast_now, real_mono, NULL};
    struct judging j;
    judging_start_clock(&j, e.url, 0, &fast);
    struct job_out out[2] = {0};
    judge_all(&j, rb, out, 2);
    for (int i = 0; i < 2; i++) {
        CHECK_INT_EQ(out[i].v.outcome, VERDICT_SCORED);
        CHECK_INT_EQ(out[i].v.attempts, 1);
        verdict_clear(&out[i].v);
    }
    int64_t skew = http_transport_skew_ms(j.t);
    CHECK(skew < -14 * 60 * 1000 && skew > -16 * 60 * 1000);
    judging_stop(&j);
    CHECK_INT_EQ(emulator_proc_stop(&e), 0);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"status\":200"), 2);
    CHECK(emulator_proc_log_count(&e, "\"status\":403") >= 1);
    rubric_free(rb);
}
