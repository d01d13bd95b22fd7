/*
 * tests/integration/test_eval: `assay eval` as a user runs it (the real
 * build/assay in a clean environment) against the real build/assay-emulator
 * on 127.0.0.1, its store in the case's temp dir:
 *  - a first run of support-qa exits 0 and is stored; a second run against
 *    the unchanged target compares with it and is not regressed; a third,
 *    with the emulator's scenario turning some answers into refusals, exits 3
 *    and names exactly those items in worse_items, largest drop first;
 *  - a calibration run reports agreement with the human scores;
 *  - --report writes Markdown and well-formed HTML with an SVG chart;
 *  - stderr, not a terminal, gets plain progress lines;
 *  - errors (no target model, a missing dataset) exit 1.
 */
#include "tests/integration/emulator_proc.h"
#include "tests/unit/test.h"

#include "common/alloc.h"
#include "common/buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define JUDGE "anthropic.claude-3-haiku-20240307-v1:0"
#define TARGET "target-model"
#define REFUSAL "I'm sorry, but I cannot help with that."
/* support-qa items whose input holds one of these words get the refusal. */
static const char *const bad_words[] = {"plan", "refund", "invoice"};

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

struct run {
    int status;
    char *out, *err;
    json_t *summary;
};

static void run_clear(struct run *r)
{
    free(r->out);
    free(r->err);
    json_decref(r->summary);
    memset(r, 0, sizeof *r);
}

/* Writes the config (data_dir in the temp dir) for emulator e. */
static void write_config(const struct emulator_proc *e, char *path, size_t n)
{
    snprintf(path, n, "%s/config.json", test_tmpdir());
    struct buf b = BUF_INIT;
    buf_appendf(&b,
                "{\"data_dir\": \"%s/var\", \"rubrics_dir\": \"%s/rubrics\","
                " \"aws\": {\"region\": \"us-east-1\", \"endpoints\": {\"bedrock_runtime\": "
                "\"%s\"}}, \"judge\": {\"model_id\": \"%s\"}, \"metrics\": {\"sink\": \"none\"},"
                " \"log_level\": \"warn\"}",
                test_tmpdir(), test_source_dir(), e ? e->url : "http://127.0.0.1:9", JUDGE);
    test_write_file(path, b.data);
    buf_clear(&b);
}

/* Runs `assay eval --config CFG ARGS` in a clean environment; stdout and stderr to files. */
static void run_eval(const char *cfg, const char *args, struct run *r)
{
    static int n;
    const char *dir = test_tmpdir();
    char out[1024], err[1024];
    snprintf(out, sizeof out, "%s/out%d", dir, n);
    snprintf(err, sizeof err, "%s/err%d", dir, n);
    n++;
    struct buf cmd = BUF_INIT;
    buf_appendf(&cmd,
                "cd '%s' && env -i PATH=/usr/bin:/bin HOME='%s' AWS_EC2_METADATA_DISABLED=true "
                "AWS_ACCESS_KEY_ID=" AKID " AWS_SECRET_ACCESS_KEY=" SECRET
                " AWS_REGION=us-east-1 '%s' eval --config '%s' %s > '%s' 2> '%s' < /dev/null",
                dir, dir, assay_bin(), cfg, args, out, err);
    int rc = system(cmd.data);
    buf_clear(&cmd);
    r->status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    r->out = read_file(out);
    r->err = read_file(err);
    r->summary = json_loads(r->out, 0, NULL);
    if (r->status != 0 && r->status != 3)
        fprintf(stderr, "assay eval exited %d; stderr:\n%s\n", r->status, r->err);
}

static char *dataset_path(const char *name)
{
    struct buf b = BUF_INIT;
    buf_appendf(&b, "%s/datasets/%s", test_source_dir(), name);
    return buf_detach(&b, NULL);
}

/* The ids of support-qa items whose input mentions a bad word (case-insensitive). */
static bool item_is_bad(const char *dataset, const char *id)
{
    char *text = read_file(dataset);
    bool bad = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *j = json_loads(line, 0, NULL);
        const char *iid = json_string_value(json_object_get(j, "id"));
        if (iid && strcmp(iid, id) == 0) {
            char *input = json_dumps(json_object_get(j, "input"), JSON_ENCODE_ANY);
            for (char *p = input; p && *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            for (size_t k = 0; k < sizeof bad_words / sizeof bad_words[0]; k++)
                bad |= input && strstr(input, bad_words[k]) != NULL;
            free(input);
        }
        json_decref(j);
    }
    free(text);
    return bad;
}

static void check_worse_ordered(const json_t *worse)
{
    double last = 2;
    size_t i;
    const json_t *w;
    json_array_foreach(worse, i, w)
    {
        double before = json_number_value(json_object_get(w, "before"));
        double after = json_number_value(json_object_get(w, "after"));
        CHECK(json_is_string(json_object_get(w, "id")));
        CHECK(json_is_string(json_object_get(w, "rubric")));
        CHECK(after < before);
        CHECK(before - after <= last + 1e-12);
        last = before - after;
    }
}

TEST_CASE(first_then_unchanged_then_regressed)
{
    struct emulator_proc e;
    REQUIRE(emulator_proc_start(&e, NULL, 0) == 0);
    char cfg[1024];
    write_config(&e, cfg, sizeof cfg);
    char *ds = dataset_path("support-qa.jsonl");
    struct buf args = BUF_INIT;
    buf_appendf(&args,
                "--dataset '%s' --target-model " TARGET " --rubric correctness --margin 0.02", ds);

    struct run r1 = {0}, r2 = {0}, r3 = {0};
    run_eval(cfg, args.data, &r1);
    CHECK_INT_EQ(r1.status, 0);
    REQUIRE(r1.summary != NULL);
    CHECK(json_is_null(json_object_get(r1.summary, "baseline_run_id")));
    CHECK_INT_EQ(json_integer_value(json_object_get(r1.summary, "items")), 48);
    CHECK_INT_EQ(json_array_size(json_object_get(r1.summary, "worse_items")), 0);
    CHECK(json_is_false(json_object_get(r1.summary, "regressed")));
    CHECK_INT_EQ(
        json_integer_value(json_object_get(json_object_get(r1.summary, "target"), "calls")), 48);

    /* The same target again: compared with the first run, nothing worse. */
    run_eval(cfg, args.data, &r2);
    CHECK_INT_EQ(r2.status, 0);
    REQUIRE(r2.summary != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(r2.summary, "baseline_run_id")),
                 json_string_value(json_object_get(r1.summary, "run_id")));
    CHECK_INT_EQ(json_array_size(json_object_get(r2.summary, "worse_items")), 0);
    CHECK(json_is_false(json_object_get(r2.summary, "regressed")));
    emulator_proc_stop(&e);

    /* The target now refuses the questions about plans, refunds and invoices. */
    struct buf scen = BUF_INIT;
    buf_appendf(&scen, "{\"models\": {\"" TARGET "\": {\"answers\": [");
    for (size_t k = 0; k < sizeof bad_words / sizeof bad_words[0]; k++)
        buf_appendf(&scen, "%s{\"match\": \"%s\", \"text\": \"" REFUSAL "\"}", k ? ", " : "",
                    bad_words[k]);
    buf_append_str(&scen, "]}}}");
    REQUIRE(emulator_proc_start(&e, scen.data, 0) == 0);
    write_config(&e, cfg, sizeof cfg);
    run_eval(cfg, args.data, &r3);
    CHECK_INT_EQ(r3.status, 3);
    REQUIRE(r3.summary != NULL);
    CHECK(json_is_true(json_object_get(r3.summary, "regressed")));
    CHECK_STR_EQ(json_string_value(json_object_get(r3.summary, "baseline_run_id")),
                 json_string_value(json_object_get(r2.summary, "run_id")));
    const json_t *worse = json_object_get(r3.summary, "worse_items");
    CHECK(json_array_size(worse) >= 5);
    check_worse_ordered(worse);
    size_t i;
    const json_t *w;
    json_array_foreach(worse, i, w)
    {
        const char *id = json_string_value(json_object_get(w, "id"));
        CHECK(id && item_is_bad(ds, id));
        /* A refusal is graded at the bottom of correctness's scale. */
        if (strcmp(json_string_value(json_object_get(w, "rubric")), "correctness") == 0)
            CHECK_NEAR(json_number_value(json_object_get(w, "after")), 0.0, 1e-12);
    }
    const json_t *cmp =
        json_object_get(json_array_get(json_object_get(r3.summary, "rubrics"), 0), "comparison");
    CHECK(json_number_value(json_object_get(cmp, "delta")) < -0.02);
    CHECK(json_number_value(json_object_get(cmp, "p_value")) < 0.05);
    CHECK(json_number_value(json_object_get(cmp, "ci_high")) < 0);
    CHECK(emulator_proc_stop(&e) == 0);

    run_clear(&r1);
    run_clear(&r2);
    run_clear(&r3);
    buf_clear(&args);
    buf_clear(&scen);
    free(ds);
}

TEST_CASE(calibration_reports_agreement)
{
    struct emulator_proc e;
    REQUIRE(emulator_proc_start(&e, NULL, 0) == 0);
    char cfg[1024];
    write_config(&e, cfg, sizeof cfg);
    char *ds = dataset_path("judge-calibration.calibration.jsonl");
    struct buf args = BUF_INIT;
    buf_appendf(&args, "--dataset '%s'", ds);
    struct run r = {0};
    run_eval(cfg, args.data, &r);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.summary != NULL);
    CHECK_STR_EQ(json_string_value(json_object_get(r.summary, "kind")), "calibration");
    CHECK(strstr(json_string_value(json_object_get(r.summary, "note")), "judge changed") != NULL);
    /* No target model was called: every request the emulator saw is a judge call. */
    CHECK_INT_EQ(emulator_proc_log_count(&e, TARGET), 0);
    size_t i, with_agreement = 0;
    const json_t *rub;
    json_array_foreach(json_object_get(r.summary, "rubrics"), i, rub)
    {
        const json_t *ag = json_object_get(rub, "agreement");
        if (!json_is_object(ag))
            continue;
        with_agreement++;
        double k = json_number_value(json_object_get(ag, "weighted_kappa"));
        CHECK(k >= -1 && k <= 1);
        double rho = json_number_value(json_object_get(ag, "spearman"));
        CHECK(rho >= -1 && rho <= 1);
        CHECK(json_number_value(json_object_get(ag, "mae")) >= 0);
        double f1 = json_number_value(json_object_get(ag, "f1"));
        CHECK(f1 >= 0 && f1 <= 1);
    }
    CHECK(with_agreement >= 2);
    /* A second run reports the change since the first. */
    struct run r2 = {0};
    run_eval(cfg, args.data, &r2);
    CHECK_INT_EQ(r2.status, 0);
    REQUIRE(r2.summary != NULL);
    const json_t *ag =
        json_object_get(json_array_get(json_object_get(r2.summary, "rubrics"), 0), "agreement");
    CHECK(json_is_object(json_object_get(ag, "change")));
    CHECK(json_is_false(json_object_get(r2.summary, "judge_drift")));
    CHECK(emulator_proc_stop(&e) == 0);
    run_clear(&r);
    run_clear(&r2);
    buf_clear(&args);
    free(ds);
}

/*
 * A small well-formedness check: every tag closed in order (void elements
 * written as <x/>), no stray '<' in text, entities only &name; or &#n;.
 */
static bool xml_ish(const char *s)
{
    const char *stack[64];
    size_t depth = 0;
    size_t lens[64];
    for (const char *p = s; *p; p++) {
        if (*p == '&') {
            const char *semi = strchr(p, ';');
            if (!semi || semi - p > 8)
                return false;
            continue;
        }
        if (*p != '<')
            continue;
        const char *end = strchr(p, '>');
        if (!end)
            return false;
        if (p[1] == '!') {
            p = end;
            continue;
        }
        bool closing = p[1] == '/', self = end[-1] == '/';
        const char *name = p + (closing ? 2 : 1);
        size_t len = strcspn(name, " />");
        if (closing) {
            if (depth == 0 || lens[depth - 1] != len || strncmp(stack[depth - 1], name, len) != 0)
                return false;
            depth--;
        } else if (!self) {
            if (depth == 64)
                return false;
            stack[depth] = name;
            lens[depth++] = len;
        }
        p = end;
    }
    return depth == 0;
}

TEST_CASE(report_files)
{
    struct emulator_proc e;
    REQUIRE(emulator_proc_start(&e, NULL, 0) == 0);
    char cfg[1024];
    write_config(&e, cfg, sizeof cfg);
    char *ds = dataset_path("rag-faithfulness.jsonl");
    struct buf args = BUF_INIT, md = BUF_INIT, html = BUF_INIT;
    buf_appendf(&md, "%s/report.md", test_tmpdir());
    buf_appendf(&html, "%s/report.html", test_tmpdir());
    buf_appendf(&args,
                "--dataset '%s' --target-model " TARGET
                " --rubric faithfulness --rubric token-f1 --report '%s'",
                ds, md.data);
    struct run r1 = {0}, r2 = {0};
    run_eval(cfg, args.data, &r1);
    CHECK_INT_EQ(r1.status, 0);
    char *mtext = read_file(md.data);
    CHECK(strstr(mtext, "# Golden-set run ") == mtext);
    CHECK(strstr(mtext, "| faithfulness |") != NULL);
    CHECK(strstr(mtext, "## Items that got worse") != NULL);

    buf_reset(&args);
    buf_appendf(&args,
                "--dataset '%s' --target-model " TARGET
                " --rubric faithfulness --rubric token-f1 --report '%s'",
                ds, html.data);
    run_eval(cfg, args.data, &r2);
    CHECK_INT_EQ(r2.status, 0);
    char *htext = read_file(html.data);
    CHECK(strstr(htext, "<!DOCTYPE html>") == htext);
    CHECK(xml_ish(htext));
    /* One chart per rubric (the run's two and items' own), each with a point
     * per stored run (two so far). */
    size_t n_rubrics = json_array_size(json_object_get(r2.summary, "rubrics"));
    CHECK(n_rubrics >= 2);
    size_t svgs = 0, circles = 0;
    for (const char *p = htext; (p = strstr(p, "<svg")); p++)
        svgs++;
    for (const char *p = htext; (p = strstr(p, "<circle")); p++)
        circles++;
    CHECK_INT_EQ(svgs, n_rubrics);
    CHECK_INT_EQ(circles, 2 * n_rubrics);
    /* A report name the command does not know is refused before any work. */
    struct run r3 = {0};
    buf_reset(&args);
    buf_appendf(&args, "--dataset '%s' --target-model " TARGET " --report '%s/r.pdf'", ds,
                test_tmpdir());
    run_eval(cfg, args.data, &r3);
    CHECK_INT_EQ(r3.status, 1);
    CHECK(emulator_proc_stop(&e) == 0);
    free(mtext);
    free(htext);
    run_clear(&r1);
    run_clear(&r2);
    run_clear(&r3);
    buf_clear(&args);
    buf_clear(&md);
    buf_clear(&html);
    free(ds);
}

TEST_CASE(plain_progress_lines)
{
    struct emulator_proc e;
    REQUIRE(emulator_proc_start(&e, NULL, 0) == 0);
    char cfg[1024];
    write_config(&e, cfg, sizeof cfg);
    char *ds = dataset_path("support-qa.jsonl");
    struct buf args = BUF_INIT;
    buf_appendf(&args, "--dataset '%s' --target-model " TARGET " --rubric token-f1", ds);
    struct run r = {0};
    run_eval(cfg, args.data, &r);
    CHECK_INT_EQ(r.status, 0);
    /* stderr is a file: whole lines, no carriage returns, ending at 48 of 48. */
    CHECK(strstr(r.err, "eval: 48/48 items, ") != NULL);
    CHECK(strchr(r.err, '\r') == NULL);
    CHECK(emulator_proc_stop(&e) == 0);
    run_clear(&r);
    buf_clear(&args);
    free(ds);
}

TEST_CASE(errors_exit_1)
{
    char cfg[1024];
    write_config(NULL, cfg, sizeof cfg);
    char *ds = dataset_path("support-qa.jsonl");
    struct buf args = BUF_INIT;
    struct run r = {0};
    /* A golden set without a target model. */
    buf_appendf(&args, "--dataset '%s'", ds);
    run_eval(cfg, args.data, &r);
    CHECK_INT_EQ(r.status, 1);
    CHECK(strstr(r.err, "target model") != NULL);
    CHECK(r.summary == NULL);
    run_clear(&r);
    /* A dataset that does not exist. */
    buf_reset(&args);
    buf_appendf(&args, "--dataset '%s/none.jsonl' --target-model m", test_tmpdir());
    run_eval(cfg, args.data, &r);
    CHECK_INT_EQ(r.status, 1);
    CHECK(strstr(r.err, "none.jsonl") != NULL);
    run_clear(&r);
    /* Usage. */
    run_eval(cfg, "--bogus", &r);
    CHECK_INT_EQ(r.status, 1);
    run_clear(&r);
    buf_clear(&args);
    free(ds);
}

TEST_CASE(progress_bar_on_terminal)
{
    /*
     * util-linux's script(1) gives the command a pseudo-terminal. The shell
     * holds the terminal open a moment after assay exits: script can lose
     * the last output of a command that exits at once (seen under load: the
     * final bar missing from the log), which is not assay's to fix.
     */
    if (system("command -v script > /dev/null 2>&1") != 0)
        TEST_SKIP("script(1) is not installed");
    struct emulator_proc e;
    REQUIRE(emulator_proc_start(&e, NULL, 0) == 0);
    char cfg[1024];
    write_config(&e, cfg, sizeof cfg);
    char *ds = dataset_path("support-qa.jsonl");
    const char *dir = test_tmpdir();
    struct buf cmd = BUF_INIT, log = BUF_INIT;
    buf_appendf(&log, "%s/tty.log", dir);
    buf_appendf(&cmd,
                "cd '%s' && script -qec \"env -i PATH=/usr/bin:/bin HOME='%s' "
                "AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=" AKID
                " AWS_SECRET_ACCESS_KEY=" SECRET " AWS_REGION=us-east-1 '%s' eval --config '%s' "
                "--dataset '%s' --target-model " TARGET " --rubric token-f1 > '%s/tty.json';"
                " rc=\\$?; sleep 0.3; exit \\$rc\" '%s' > /dev/null 2>&1",
                dir, dir, assay_bin(), cfg, ds, dir, log.data);
    int rc = system(cmd.data);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    char *text = read_file(log.data);
    /* A bar redrawn in place: carriage returns, the bar, items of total, rate, time left. */
    CHECK(strstr(text, "\r[##############################] 48/48 items") != NULL);
    CHECK(strstr(text, "/s") != NULL && strstr(text, "left") != NULL);
    CHECK(strstr(text, "eval: ") == NULL);
    CHECK(emulator_proc_stop(&e) == 0);
    free(text);
    buf_clear(&cmd);
    buf_clear(&log);
    free(ds);
}

TEST_CASE(target_failures)
{
    /* "denied" refuses every call (AccessDenied, never retried); "flaky"
     * throttles a tenth of them (retried under the judge's policy). */
    struct emulator_proc e;
    REQUIRE(emulator_proc_start(&e,
                                "{\"seed\": 3, \"models\": {\"denied\": {\"access_denied\": true},"
                                " \"flaky\": {\"throttle_rate\": 0.1}}}",
                                0) == 0);
    char cfg[1024];
    write_config(&e, cfg, sizeof cfg);
    char *ds = dataset_path("support-qa.jsonl");
    struct buf args = BUF_INIT;
    struct run r = {0};
    buf_appendf(&args, "--dataset '%s' --target-model denied --rubric token-f1", ds);
    run_eval(cfg, args.data, &r);
    CHECK_INT_EQ(r.status, 1);
    CHECK(strstr(r.err, "AccessDeniedException") != NULL);
    CHECK(r.summary == NULL);
    CHECK_INT_EQ(emulator_proc_log_count(&e, "\"model\":\"denied\""), 48);
    run_clear(&r);

    buf_reset(&args);
    buf_appendf(&args, "--dataset '%s' --target-model flaky --rubric token-f1", ds);
    run_eval(cfg, args.data, &r);
    CHECK_INT_EQ(r.status, 0);
    REQUIRE(r.summary != NULL);
    const json_t *t = json_object_get(r.summary, "target");
    CHECK_INT_EQ(json_integer_value(json_object_get(t, "calls")), 48);
    CHECK_INT_EQ(json_integer_value(json_object_get(t, "failed")), 0);
    CHECK(emulator_proc_log_count(&e, "\"model\":\"flaky\",\"status\":429") > 0);
    CHECK(emulator_proc_stop(&e) == 0);
    run_clear(&r);
    buf_clear(&args);
    free(ds);
}
