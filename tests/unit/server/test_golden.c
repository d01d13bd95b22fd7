/*
 * Unit tests for server/golden and server/golden_report without a network:
 * the config entry and its interval, the run key, a calibration set with a
 * reference rubric run twice through the real engine on a SQLite store in
 * the case's temp dir (stored items, agreement, the second run compared with
 * the first, a worse item named), a golden set without a target refused, and
 * the reports' escaping and SVG.
 */
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "judges/judge.h"
#include "judges/rubric.h"
#include "server/golden.h"
#include "server/golden_report.h"
#include "server/store.h"
#include "tests/unit/test.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST_CASE(every_parse)
{
    int64_t s = 0;
    CHECK(golden_every_parse("6h", &s) == 0 && s == 6 * 3600);
    CHECK(golden_every_parse("30m", &s) == 0 && s == 1800);
    CHECK(golden_every_parse("45s", &s) == 0 && s == 45);
    CHECK(golden_every_parse("2d", &s) == 0 && s == 2 * 86400);
    CHECK(golden_every_parse("90", &s) == 0 && s == 90);
    CHECK(golden_every_parse("0h", &s) == -1);
    CHECK(golden_every_parse("-1h", &s) == -1);
    CHECK(golden_every_parse("6x", &s) == -1);
    CHECK(golden_every_parse("h", &s) == -1);
    CHECK(golden_every_parse("", &s) == -1);
    CHECK(golden_every_parse("99999999999999999999d", &s) == -1);
}

static enum assay_err spec_of(const char *text, struct golden_spec *spec, char *errbuf)
{
    json_t *j = json_loads(text, 0, NULL);
    REQUIRE(j != NULL);
    enum assay_err err = golden_spec_from_json(j, spec, errbuf);
    json_decref(j);
    return err;
}

TEST_CASE(spec_from_json)
{
    struct golden_spec s;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    REQUIRE_INT_EQ(spec_of("{\"name\":\"support\",\"dataset\":\"datasets/support-qa.jsonl\","
                           "\"target_model\":\"m\",\"rubrics\":[\"correctness\",\"token-f1\","
                           "\"correctness\"],\"every\":\"6h\",\"system_prompt\":\"Be brief.\","
                           "\"inference\":{\"max_tokens\":300,\"temperature\":0.2,\"top_p\":0.9},"
                           "\"margin\":0.1,\"alpha\":0.01}",
                           &s, errbuf),
                   ASSAY_OK);
    CHECK_STR_EQ(s.name, "support");
    CHECK_STR_EQ(s.target_model, "m");
    CHECK_INT_EQ(s.n_rubrics, 2);
    CHECK_INT_EQ(s.every_s, 21600);
    CHECK_STR_EQ(s.system_prompt, "Be brief.");
    CHECK_INT_EQ(s.max_tokens, 300);
    CHECK(s.has_temperature && s.temperature == 0.2);
    CHECK(s.has_top_p && s.top_p == 0.9);
    CHECK(s.margin == 0.1 && s.alpha == 0.01);
    golden_spec_clear(&s);

    REQUIRE_INT_EQ(spec_of("{\"dataset\":\"d.jsonl\"}", &s, errbuf), ASSAY_OK);
    CHECK(s.margin == 0.05 && s.alpha == 0.05 && s.every_s == 0 && !s.target_model);
    golden_spec_clear(&s);

    static const char *const bad[][2] = {
        {"{}", "dataset"},
        {"{\"dataset\":\"d\",\"every\":\"soon\"}", "every"},
        {"{\"dataset\":\"d\",\"margin\":2}", "margin"},
        {"{\"dataset\":\"d\",\"rubrics\":[\"Not A Name\"]}", "rubrics"},
        {"{\"dataset\":\"d\",\"inference\":{\"max_tokens\":1.5}}", "inference.max_tokens"},
        {"{\"dataset\":\"d\",\"inference\":{\"seed\":1}}", "inference"},
        {"{\"dataset\":\"d\",\"target\":\"m\"}", "target"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errbuf[0] = '\0';
        CHECK_INT_EQ(spec_of(bad[i][0], &s, errbuf), ASSAY_ERR_CONFIG);
        CHECK(strstr(errbuf, bad[i][1]) != NULL);
        CHECK(s.dataset == NULL);
    }
}

TEST_CASE(run_key)
{
    char *k = golden_run_key("support-qa", false, "m1");
    CHECK_STR_EQ(k, "support-qa|m1");
    free(k);
    k = golden_run_key("cal", true, "ignored");
    CHECK_STR_EQ(k, "cal");
    free(k);
    char *a = golden_run_id_new(NULL), *b = golden_run_id_new(NULL);
    CHECK(strncmp(a, "gr-", 3) == 0 && strcmp(a, b) != 0);
    free(a);
    free(b);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
}

struct fixture {
    struct store *store;
    struct rubric_registry *reg;
    struct judge_runner *runner;
    char path[1024];
};

static void fixture_open(struct fixture *fx)
{
    log_set_level(LOG_LEVEL_ERROR);
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    char rubrics[1024];
    const char *src = getenv("ASSAY_SOURCE_DIR");
    snprintf(rubrics, sizeof rubrics, "%s/rubrics", src ? src : ".");
    REQUIRE_INT_EQ(rubric_registry_load(rubrics, &fx->reg, errbuf), ASSAY_OK);
    fx->runner = judge_runner_new(NULL, NULL);
    struct store_sqlite_options o;
    store_sqlite_options_init(&o);
    char db[1024];
    snprintf(db, sizeof db, "%s/assay.db", test_tmpdir());
    o.path = db;
    o.synchronous_full = 0;
    REQUIRE_INT_EQ(store_sqlite_open(&o, &fx->store, errbuf), ASSAY_OK);
    snprintf(fx->path, sizeof fx->path, "%s/tiny.calibration.jsonl", test_tmpdir());
}

static void fixture_close(struct fixture *fx)
{
    store_close(fx->store);
    judge_runner_free(fx->runner);
    rubric_registry_free(fx->reg);
}

static size_t progress_calls;
static void count_progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    CHECK(done <= total);
    progress_calls++;
}

static const json_t *rubric_entry(const json_t *summary, const char *name)
{
    size_t i;
    const json_t *r;
    json_array_foreach(json_object_get(summary, "rubrics"), i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "rubric")), name) == 0)
            return r;
    }
    return NULL;
}

TEST_CASE(calibration_runs_twice)
{
    struct fixture fx;
    fixture_open(&fx);
    write_text(fx.path, "{\"id\":\"c1\",\"input\":\"q1\",\"reference\":\"the cat sat on the mat\","
                        "\"output\":\"the cat sat on the mat\",\"human_scores\":{\"token-f1\":1}}\n"
                        "{\"id\":\"c2\",\"input\":\"q2\",\"reference\":\"blue sky\","
                        "\"output\":\"red sea\",\"human_scores\":{\"token-f1\":0}}\n"
                        "{\"id\":\"c3\",\"input\":\"q3\",\"reference\":\"one two three four\","
                        "\"output\":\"one two\",\"human_scores\":{\"token-f1\":0.7}}\n");
    struct golden_spec spec;
    golden_spec_init(&spec);
    spec.dataset = xstrdup(fx.path);
    struct golden_env env = {
        .store = fx.store, .reg = fx.reg, .runner = fx.runner, .judge_model = "judge-1"};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    json_t *s1 = NULL, *s2 = NULL;
    progress_calls = 0;
    REQUIRE_INT_EQ(golden_run_execute(&env, &spec, NULL, count_progress, NULL, &s1, errbuf),
                   ASSAY_OK);
    CHECK(progress_calls >= 1);
    CHECK_STR_EQ(json_string_value(json_object_get(s1, "kind")), "calibration");
    CHECK(json_is_null(json_object_get(s1, "baseline_run_id")));
    const json_t *r = rubric_entry(s1, "token-f1");
    REQUIRE(r != NULL);
    CHECK_INT_EQ(json_integer_value(json_object_get(r, "scored")), 3);
    const json_t *ag = json_object_get(r, "agreement");
    REQUIRE(json_is_object(ag));
    CHECK_INT_EQ(json_integer_value(json_object_get(ag, "n")), 3);
    /* Judge 1, 0, 2/3 against humans 1, 0, 0.7: same order. */
    CHECK_NEAR(json_number_value(json_object_get(ag, "spearman")), 1.0, 1e-12);
    CHECK(json_is_null(json_object_get(ag, "change")));
    CHECK(json_is_false(json_object_get(s1, "judge_drift")));

    /* The stored items. */
    struct store_golden_item_list items = {0};
    REQUIRE_INT_EQ(store_golden_item_list(
                       fx.store, json_string_value(json_object_get(s1, "run_id")), &items, NULL),
                   ASSAY_OK);
    CHECK_INT_EQ(items.n, 3);
    store_golden_item_list_clear(&items);

    /* c1's answer gets worse: the second run compares with the first and names it. */
    write_text(fx.path, "{\"id\":\"c1\",\"input\":\"q1\",\"reference\":\"the cat sat on the mat\","
                        "\"output\":\"a dog\",\"human_scores\":{\"token-f1\":1}}\n"
                        "{\"id\":\"c2\",\"input\":\"q2\",\"reference\":\"blue sky\","
                        "\"output\":\"red sea\",\"human_scores\":{\"token-f1\":0}}\n"
                        "{\"id\":\"c3\",\"input\":\"q3\",\"reference\":\"one two three four\","
                        "\"output\":\"one two\",\"human_scores\":{\"token-f1\":0.7}}\n");
    REQUIRE_INT_EQ(golden_run_execute(&env, &spec, "run-two", NULL, NULL, &s2, errbuf), ASSAY_OK);
    CHECK_STR_EQ(json_string_value(json_object_get(s2, "baseline_run_id")),
                 json_string_value(json_object_get(s1, "run_id")));
    const json_t *w = json_object_get(s2, "worse_items");
    REQUIRE_INT_EQ(json_array_size(w), 1);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(w, 0), "id")), "c1");
    CHECK_NEAR(json_number_value(json_object_get(json_array_get(w, 0), "before")), 1.0, 1e-12);
    CHECK_NEAR(json_number_value(json_object_get(json_array_get(w, 0), "after")), 0.0, 1e-12);
    ag = json_object_get(rubric_entry(s2, "token-f1"), "agreement");
    CHECK(json_is_object(json_object_get(ag, "change")));
    CHECK(json_number_value(json_object_get(json_object_get(ag, "change"), "mae")) > 0);
    CHECK(json_is_true(json_object_get(s2, "judge_drift")));

    /* The report's history follows the baseline chain, oldest first. */
    json_t *hist = golden_report_history(fx.store, s2);
    REQUIRE_INT_EQ(json_array_size(hist), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(hist, 1), "run_id")), "run-two");
    json_decref(hist);

    struct store_golden_run_list runs = {0};
    REQUIRE_INT_EQ(store_golden_run_get(fx.store, "run-two", &runs, NULL), ASSAY_OK);
    CHECK_STR_EQ(runs.runs[0].status, "done");
    store_golden_run_list_clear(&runs);

    json_decref(s1);
    json_decref(s2);
    golden_spec_clear(&spec);
    fixture_close(&fx);
}

TEST_CASE(golden_set_needs_target)
{
    struct fixture fx;
    fixture_open(&fx);
    char path[1100];
    snprintf(path, sizeof path, "%s/g.jsonl", test_tmpdir());
    write_text(path, "{\"id\":\"a\",\"input\":\"q\",\"reference\":\"r\"}\n");
    struct golden_spec spec;
    golden_spec_init(&spec);
    spec.dataset = xstrdup(path);
    struct golden_env env = {.store = fx.store, .reg = fx.reg, .runner = fx.runner};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    json_t *s = NULL;
    CHECK_INT_EQ(golden_run_execute(&env, &spec, NULL, NULL, NULL, &s, errbuf), ASSAY_ERR_CONFIG);
    CHECK(s == NULL && strstr(errbuf, "target") != NULL);
    /* An unknown rubric is named (checked before any call). */
    spec.target_model = xstrdup("m");
    golden_spec_add_rubric(&spec, "no-such-rubric");
    CHECK_INT_EQ(golden_run_execute(&env, &spec, NULL, NULL, NULL, &s, errbuf),
                 ASSAY_ERR_NOT_FOUND);
    CHECK(strstr(errbuf, "no-such-rubric") != NULL);
    /* Known rubrics, but no Bedrock client for the target. */
    golden_spec_clear(&spec);
    golden_spec_init(&spec);
    spec.dataset = xstrdup(path);
    spec.target_model = xstrdup("m");
    CHECK_INT_EQ(golden_run_execute(&env, &spec, NULL, NULL, NULL, &s, errbuf), ASSAY_ERR_CONFIG);
    CHECK(strstr(errbuf, "Bedrock") != NULL);
    /* Nothing was stored for the refused runs. */
    struct store_golden_run_list l = {0};
    CHECK_INT_EQ(store_golden_run_latest(fx.store, "g|m", NULL, NULL, &l, NULL),
                 ASSAY_ERR_NOT_FOUND);
    store_golden_run_list_clear(&l);
    golden_spec_clear(&spec);
    fixture_close(&fx);
}

TEST_CASE(report_escapes)
{
    json_t *s = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:b, s:[{s:s, s:f, s:f, s:n}],"
                          " s:[{s:s, s:s, s:f, s:f}]}",
                          "run_id", "r1", "dataset", "<script>alert(1)</script>", "kind", "golden",
                          "target_model", "m|x*y", "items", 2, "started_at",
                          "2026-11-27T00:00:00.000Z", "regressed", 0, "rubrics", "rubric",
                          "correctness", "mean", 0.5, "pass_rate", 0.5, "comparison", "worse_items",
                          "id", "item&1", "rubric", "correctness", "before", 0.9, "after", 0.1);
    json_t *hist = json_pack("[O]", s);
    struct buf h = BUF_INIT, m = BUF_INIT;
    golden_report_html(s, hist, &h);
    golden_report_markdown(s, hist, &m);
    CHECK(strstr(h.data, "<script>") == NULL);
    CHECK(strstr(h.data, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
    CHECK(strstr(h.data, "item&amp;1") != NULL);
    CHECK(strstr(h.data, "<svg") != NULL && strstr(h.data, "</svg>") != NULL);
    CHECK(strstr(h.data, "<circle") != NULL);
    CHECK(strstr(m.data, "m\\|x\\*y") != NULL);
    CHECK(strstr(m.data, "\\<script\\>") != NULL);
    CHECK(strstr(m.data, "| item\\&1 | correctness | 0.900 | 0.100 |") != NULL);
    /* The run's facts, one list item each, the same in both reports. */
    CHECK(strstr(m.data, "\n- Target model: m\\|x\\*y\n- Judge model: none\n") != NULL);
    CHECK(strstr(m.data, "\n- Compared with: nothing \\(first run\\)\n- Result: **") != NULL);
    CHECK(strstr(h.data, "<li>Target model: m|x*y</li>\n<li>Judge model: none</li>\n") != NULL);
    CHECK(strstr(h.data, "<li>Compared with: nothing (first run)</li>\n<li>Result: <strong>") !=
          NULL);
    buf_clear(&h);
    buf_clear(&m);
    json_decref(hist);
    json_decref(s);
}
