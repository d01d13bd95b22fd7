/*
 * Unit tests for server/series over the real SQLite store in a temp dir:
 * verdicts into series state, an alarm raised with its history, restore from
 * the store without a new warm-up, a rubric version or judge change starting
 * a new baseline instead of alarming, unscorable verdicts ignored, a verdict
 * the store refuses leaving the series alone, rebaseline on request.
 */
#include "server/series.h"

#include "common/log.h"
#include "server/store.h"
#include "tests/unit/test.h"

#include <math.h>

#define WARMUP 30

struct env {
    struct store *store;
    struct series *reg;
    json_t *monitor;
    int next_id;
};

static void reg_open(struct env *e)
{
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct series_options o = {.store = e->store, .monitor = e->monitor};
    REQUIRE_INT_EQ(series_new(&o, &e->reg, errbuf), ASSAY_OK);
}

static void env_open(struct env *e)
{
    memset(e, 0, sizeof *e);
    log_set_level(LOG_LEVEL_ERROR);
    char errbuf[ASSAY_ERRBUF_SIZE] = "", path[4096];
    snprintf(path, sizeof path, "%s/assay.db", test_tmpdir());
    struct store_sqlite_options so;
    store_sqlite_options_init(&so);
    so.path = path;
    so.synchronous_full = 0;
    REQUIRE_INT_EQ(store_sqlite_open(&so, &e->store, errbuf), ASSAY_OK);
    e->monitor = json_pack("{s:{s:i}}", "detector", "warmup_samples", WARMUP);
    reg_open(e);
}

static void env_close(struct env *e)
{
    series_free(e->reg);
    store_close(e->store);
    json_decref(e->monitor);
}

/* Queues one sample with one job for rubric and claims it; returns the job id. */
static int64_t queue_job(struct env *e, const char *app, const char *rubric, const char *model_id)
{
    char id[32];
    snprintf(id, sizeof id, "s-%d", ++e->next_id);
    const char *rubrics[] = {rubric};
    struct store_sample s = {.app = app,
                             .id = id,
                             .doc = "{}",
                             .doc_len = 2,
                             .sampled = true,
                             .model_id = model_id,
                             .received_ms = 1,
                             .rubrics = rubrics,
                             .n_rubrics = 1};
    REQUIRE_INT_EQ(store_sample_insert(e->store, &s, 1, NULL), ASSAY_OK);
    struct store_job_batch b = {0};
    REQUIRE_INT_EQ(store_job_claim(e->store, 1, &b, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 1);
    int64_t job = b.jobs[0].job_id;
    store_job_batch_clear(&b);
    return job;
}

struct feed {
    const char *app, *rubric, *model_id, *version, *judge;
    bool unscorable;
};

static const struct feed DEF = {"chat", "helpfulness", NULL, "v1", "judge-a", false};

static struct series_outcome feed_job(struct env *e, const struct feed *f, int64_t job,
                                      double score, int *recorded)
{
    struct store_verdict v = {.rubric = f->rubric,
                              .rubric_version = f->version,
                              .judge = f->judge,
                              .unscorable = f->unscorable,
                              .reason = f->unscorable ? "judge_failed" : NULL,
                              .score = f->unscorable ? NAN : score,
                              .raw_score = score,
                              .latency_ms = -1,
                              .attempts = 1};
    struct series_job j = {
        .job_id = job, .app = f->app, .rubric = f->rubric, .model_id = f->model_id, .verdict = &v};
    struct series_outcome out;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(series_job_complete(e->reg, &j, recorded, &out, errbuf), ASSAY_OK);
    return out;
}

static struct series_outcome feed(struct env *e, const struct feed *f, double score)
{
    int recorded = 0;
    struct series_outcome out =
        feed_job(e, f, queue_job(e, f->app, f->rubric, f->model_id), score, &recorded);
    CHECK_INT_EQ(recorded, 1);
    return out;
}

/* Scores around mean, deterministic, spread +-0.1. */
static double noisy(double mean, int i)
{
    return mean + 0.1 * (double)((i * 37) % 11 - 5) / 5.0;
}

/* The stored series as the API shows it (new object). */
static json_t *stored(struct env *e, const char *app, const char *rubric, const char *model_id)
{
    struct store_series_list l = {0};
    enum assay_err err = store_series_get(e->store, app, rubric, model_id, &l, NULL);
    json_t *o = err == ASSAY_OK && l.n == 1 ? series_json(&l.series[0]) : NULL;
    store_series_list_clear(&l);
    return o;
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static long long count_of(const json_t *o)
{
    return json_integer_value(json_object_get(o, "count"));
}

TEST_CASE(verdicts_update_state)
{
    struct env e;
    env_open(&e);
    for (int i = 0; i < WARMUP - 1; i++)
        CHECK_INT_EQ(feed(&e, &DEF, noisy(0.8, i)).in_alarm, 0);
    json_t *o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_STR_EQ(str(o, "state"), "warming_up");
    CHECK_INT_EQ(count_of(o), WARMUP - 1);
    CHECK(json_is_null(json_object_get(o, "baseline_mean")));
    CHECK_STR_EQ(str(o, "rubric_version"), "v1");
    CHECK_STR_EQ(str(o, "judge_model"), "judge-a");
    CHECK_STR_EQ(str(o, "model_id"), "");
    json_decref(o);
    for (int i = WARMUP - 1; i < WARMUP + 10; i++)
        feed(&e, &DEF, noisy(0.8, i));
    o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_STR_EQ(str(o, "state"), "ok");
    CHECK_INT_EQ(count_of(o), WARMUP + 10);
    CHECK_NEAR(json_number_value(json_object_get(o, "baseline_mean")), 0.8, 0.03);
    CHECK_NEAR(json_number_value(json_object_get(o, "current_mean")), 0.8, 0.05);
    CHECK(json_is_number(json_object_get(o, "threshold")));
    CHECK(json_is_null(json_object_get(o, "p_value")));
    json_decref(o);
    /* a series per model_id */
    struct feed m = DEF;
    m.model_id = "model-x";
    feed(&e, &m, 0.5);
    o = stored(&e, "chat", "helpfulness", "model-x");
    REQUIRE(o != NULL);
    CHECK_INT_EQ(count_of(o), 1);
    json_decref(o);
    env_close(&e);
}

TEST_CASE(unscorable_ignored)
{
    struct env e;
    env_open(&e);
    feed(&e, &DEF, 0.8);
    struct feed u = DEF;
    u.unscorable = true;
    struct series_outcome out = feed(&e, &u, 0);
    CHECK_INT_EQ(out.in_alarm, -1);
    /* an unscorable verdict with another judge does not rebaseline either */
    u.judge = "judge-b";
    feed(&e, &u, 0);
    json_t *o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_INT_EQ(count_of(o), 1);
    CHECK_STR_EQ(str(o, "judge_model"), "judge-a");
    json_decref(o);
    /* nor does it create a series */
    u.app = "other";
    feed(&e, &u, 0);
    CHECK(stored(&e, "other", "helpfulness", "") == NULL);
    env_close(&e);
}

/* Feeds good scores, then bad ones until the alarm; returns the index of the raise or -1. */
static int drive_to_alarm(struct env *e, const struct feed *f)
{
    for (int i = 0; i < WARMUP + 50; i++)
        if (feed(e, f, noisy(0.8, i)).in_alarm != 0)
            return -1;
    for (int i = 0; i < 200; i++) {
        struct series_outcome out = feed(e, f, noisy(0.4, i));
        if (out.changed) {
            CHECK_INT_EQ(out.in_alarm, 1);
            return WARMUP + 50 + i;
        }
    }
    return -1;
}

TEST_CASE(drop_raises_alarm_with_history)
{
    struct env e;
    env_open(&e);
    int at = drive_to_alarm(&e, &DEF);
    REQUIRE(at > 0);
    CHECK(at < WARMUP + 50 + 30); /* a 4-sd drop: within a few samples */
    json_t *o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_STR_EQ(str(o, "state"), "alarm");
    CHECK_INT_EQ(json_integer_value(json_object_get(o, "since")), at);
    double p = json_number_value(json_object_get(o, "p_value"));
    CHECK(p > 0 && p < 0.01);
    CHECK_NEAR(json_number_value(json_object_get(o, "current_mean")), 0.4, 0.1);
    const json_t *a = json_object_get(o, "alarm");
    CHECK_STR_EQ(str(a, "event"), "raised");
    CHECK_NEAR(json_number_value(json_object_get(a, "baseline_mean")), 0.8, 0.03);
    CHECK(json_number_value(json_object_get(a, "effect_size")) < -1);
    CHECK(json_integer_value(json_object_get(a, "change_point")) >= WARMUP + 50 - 5);
    json_decref(o);
    struct store_alarm_list l = {0};
    REQUIRE_INT_EQ(store_alarm_list(e.store, 0, 0, &l, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(l.n, 1);
    CHECK(l.alarms[0].raised);
    CHECK(strstr(l.alarms[0].detail_json, "\"p_value\"") != NULL);
    store_alarm_list_clear(&l);
    /* recovery clears it, with a "cleared" event */
    bool cleared = false;
    for (int i = 0; i < 300 && !cleared; i++) {
        struct series_outcome out = feed(&e, &DEF, noisy(0.8, i));
        cleared = out.changed && out.in_alarm == 0;
    }
    CHECK(cleared);
    REQUIRE_INT_EQ(store_alarm_list(e.store, 0, 0, &l, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(l.n, 2);
    CHECK(!l.alarms[0].raised); /* newest first */
    CHECK(strstr(l.alarms[0].detail_json, "\"cleared\"") != NULL);
    store_alarm_list_clear(&l);
    env_close(&e);
}

TEST_CASE(restore_continues_without_warmup)
{
    struct env e;
    env_open(&e);
    int at = drive_to_alarm(&e, &DEF);
    REQUIRE(at > 0);
    json_t *before = stored(&e, "chat", "helpfulness", "");
    REQUIRE(before != NULL);
    /* a new registry on the same store: a restart (loading every series at start-up) */
    series_free(e.reg);
    reg_open(&e);
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(series_restore_all(e.reg, errbuf), ASSAY_OK);
    struct series_outcome out = feed(&e, &DEF, 0.4);
    CHECK_INT_EQ(out.in_alarm, 1);
    CHECK(!out.rebaselined);
    json_t *after = stored(&e, "chat", "helpfulness", "");
    REQUIRE(after != NULL);
    CHECK_STR_EQ(str(after, "state"), "alarm");
    CHECK_INT_EQ(count_of(after), count_of(before) + 1);
    CHECK_NEAR(json_number_value(json_object_get(after, "baseline_mean")),
               json_number_value(json_object_get(before, "baseline_mean")), 1e-12);
    CHECK_INT_EQ(json_integer_value(json_object_get(after, "since")), at);
    json_decref(before);
    json_decref(after);
    env_close(&e);
}

TEST_CASE(judge_change_rebaselines)
{
    struct env e;
    env_open(&e);
    for (int i = 0; i < WARMUP + 20; i++)
        feed(&e, &DEF, noisy(0.8, i));
    /* a new rubric version that scores lower: a new baseline, not an alarm */
    struct feed v2 = DEF;
    v2.version = "v2";
    struct series_outcome out = feed(&e, &v2, 0.3);
    CHECK(out.rebaselined);
    CHECK(!out.changed);
    CHECK_INT_EQ(out.in_alarm, 0);
    for (int i = 0; i < WARMUP + 100; i++)
        CHECK_INT_EQ(feed(&e, &v2, noisy(0.3, i)).in_alarm, 0);
    json_t *o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_STR_EQ(str(o, "state"), "ok");
    CHECK_STR_EQ(str(o, "rubric_version"), "v2");
    CHECK_NEAR(json_number_value(json_object_get(o, "baseline_mean")), 0.3, 0.03);
    CHECK_INT_EQ(count_of(o), 2 * WARMUP + 121);
    json_decref(o);
    /* a new judge model too */
    struct feed j2 = v2;
    j2.judge = "judge-b";
    CHECK(feed(&e, &j2, 0.3).rebaselined);
    o = stored(&e, "chat", "helpfulness", "");
    CHECK_STR_EQ(str(o, "state"), "warming_up");
    CHECK_STR_EQ(str(o, "judge_model"), "judge-b");
    json_decref(o);
    struct store_alarm_list l = {0};
    REQUIRE_INT_EQ(store_alarm_list(e.store, 0, 0, &l, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(l.n, 2);
    CHECK(!l.alarms[0].raised && !l.alarms[1].raised);
    CHECK(strstr(l.alarms[0].detail_json, "\"reason\":\"judge_model\"") != NULL);
    CHECK(strstr(l.alarms[1].detail_json, "\"reason\":\"rubric_version\"") != NULL);
    CHECK(strstr(l.alarms[1].detail_json, "\"event\":\"rebaseline\"") != NULL);
    store_alarm_list_clear(&l);
    env_close(&e);
}

TEST_CASE(unrecorded_verdict_not_counted)
{
    struct env e;
    env_open(&e);
    int64_t job = queue_job(&e, "chat", "helpfulness", NULL);
    int recorded = -1;
    feed_job(&e, &DEF, job, 0.8, &recorded);
    CHECK_INT_EQ(recorded, 1);
    /* the same job again (a late verdict after a release): refused, not counted */
    struct series_outcome out = feed_job(&e, &DEF, job, 0.8, &recorded);
    CHECK_INT_EQ(recorded, 0);
    CHECK_INT_EQ(out.in_alarm, -1);
    feed(&e, &DEF, 0.8);
    json_t *o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_INT_EQ(count_of(o), 2);
    json_decref(o);
    env_close(&e);
}

static bool only_chat(void *ctx, const char *app)
{
    (void)ctx;
    return strcmp(app, "chat") == 0;
}

TEST_CASE(rebaseline_on_request)
{
    struct env e;
    env_open(&e);
    REQUIRE(drive_to_alarm(&e, &DEF) > 0);
    struct feed other = DEF;
    other.app = "other";
    for (int i = 0; i < WARMUP + 5; i++)
        feed(&e, &other, noisy(0.8, i));
    /* filtered by what the caller may touch: only chat */
    struct series_filter f = {.allows = only_chat};
    json_t *affected = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(series_rebaseline(e.reg, &f, &affected, errbuf), ASSAY_OK);
    REQUIRE_INT_EQ(json_array_size(affected), 1);
    const json_t *a = json_array_get(affected, 0);
    CHECK_STR_EQ(str(a, "app"), "chat");
    CHECK_STR_EQ(str(a, "state"), "warming_up");
    json_decref(affected);
    json_t *o = stored(&e, "other", "helpfulness", "");
    CHECK_STR_EQ(str(o, "state"), "ok");
    json_decref(o);
    /* the in-memory detector was rebaselined too: the next verdict is a warm-up one */
    CHECK_INT_EQ(feed(&e, &DEF, 0.4).in_alarm, 0);
    o = stored(&e, "chat", "helpfulness", "");
    CHECK_STR_EQ(str(o, "state"), "warming_up");
    json_decref(o);
    /* a filter that matches nothing */
    struct series_filter none = {.app = "nope"};
    REQUIRE_INT_EQ(series_rebaseline(e.reg, &none, &affected, errbuf), ASSAY_OK);
    CHECK_INT_EQ(json_array_size(affected), 0);
    json_decref(affected);
    /* the history: raised, then rebaseline */
    struct store_alarm_list l = {0};
    REQUIRE_INT_EQ(store_alarm_list(e.store, 0, 0, &l, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(l.n, 2);
    CHECK(strstr(l.alarms[0].detail_json, "\"reason\":\"requested\"") != NULL);
    CHECK(strstr(l.alarms[0].detail_json, "\"was_alarm\":true") != NULL);
    store_alarm_list_clear(&l);
    env_close(&e);
}

TEST_CASE(bad_detector_config)
{
    json_t *m = json_pack("{s:{s:i}}", "detector", "warmup_samples", 2);
    struct series_options o = {.store = (struct store *)1, .monitor = m};
    struct series *reg = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(series_new(&o, &reg, errbuf), ASSAY_ERR_CONFIG);
    CHECK(reg == NULL);
    CHECK(strstr(errbuf, "monitor.detector") != NULL);
    json_decref(m);
}

TEST_CASE(restore_at_first_use)
{
    struct env e;
    env_open(&e);
    for (int i = 0; i < WARMUP + 3; i++)
        feed(&e, &DEF, noisy(0.8, i));
    series_free(e.reg);
    reg_open(&e); /* no series_restore_all: loaded by its next verdict */
    CHECK_INT_EQ(feed(&e, &DEF, 0.8).in_alarm, 0);
    json_t *o = stored(&e, "chat", "helpfulness", "");
    REQUIRE(o != NULL);
    CHECK_INT_EQ(count_of(o), WARMUP + 4);
    CHECK_STR_EQ(str(o, "state"), "ok");
    json_decref(o);
    env_close(&e);
}

TEST_CASE(unreadable_state_starts_over)
{
    struct env e;
    env_open(&e);
    struct store_series row = {.app = "chat",
                               .rubric = "helpfulness",
                               .model_id = "",
                               .rubric_version = "v1",
                               .judge_model = "judge-a",
                               .state_json = "{\"version\":99}"};
    REQUIRE_INT_EQ(store_series_put(e.store, &row, NULL), ASSAY_OK);
    json_t *o = stored(&e, "chat", "helpfulness", "");
    CHECK_STR_EQ(str(o, "state"), "unknown");
    json_decref(o);
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(series_restore_all(e.reg, errbuf), ASSAY_OK);
    feed(&e, &DEF, 0.8);
    o = stored(&e, "chat", "helpfulness", "");
    CHECK_STR_EQ(str(o, "state"), "warming_up");
    CHECK_INT_EQ(count_of(o), 1);
    json_decref(o);
    env_close(&e);
}
