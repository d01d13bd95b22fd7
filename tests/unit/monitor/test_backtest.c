/*
 * Integration tests of `assay backtest`: they run the real build/assay
 * (ASSAY_BINARY_DIR) on generated streams and check the alarm's index range,
 * the JSON shape of every output line, the JSON input form, --config, and
 * that a malformed line stops the run naming the line.
 */
#include "common/rng.h"
#include "tests/unit/test.h"

#include <jansson.h>
#include <math.h>
#include <sys/wait.h>

static char path_in[512], path_out[512], path_err[512];

/* Runs assay backtest with args on the file `in`; returns the exit status. */
static int run(const char *args)
{
    const char *bin = getenv("ASSAY_BINARY_DIR");
    if (!bin)
        TEST_SKIP("ASSAY_BINARY_DIR is not set");
    char cmd[2048];
    snprintf(path_out, sizeof path_out, "%s/out", test_tmpdir());
    snprintf(path_err, sizeof path_err, "%s/err", test_tmpdir());
    snprintf(cmd, sizeof cmd, "'%s/assay' backtest %s < '%s' > '%s' 2> '%s'", bin, args, path_in,
             path_out, path_err);
    int st = system(cmd);
    REQUIRE(st != -1 && WIFEXITED(st));
    return WEXITSTATUS(st);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    REQUIRE(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* 1000 in-control scores (mean 0.7, sd 0.1), then 500 one sd lower. */
static void write_drop_stream(int as_json)
{
    snprintf(path_in, sizeof path_in, "%s/in", test_tmpdir());
    FILE *f = fopen(path_in, "w");
    REQUIRE(f);
    struct rng r;
    rng_seed(&r, 11);
    for (int i = 0; i < 1500; i++) {
        double x = (i < 1000 ? 0.7 : 0.6) + 0.1 * rng_normal(&r);
        x = x < 0 ? 0 : x > 1 ? 1 : x;
        if (as_json && i % 2)
            fprintf(f, "{\"score\": %.6f}\n", x);
        else if (as_json)
            fprintf(f, "{\"id\": \"s%d\", \"score\":%.6f }\n", i, x);
        else
            fprintf(f, "%.6f\n", x);
    }
    fclose(f);
}

TEST_CASE(alarm_on_drop)
{
    write_drop_stream(0);
    CHECK_INT_EQ(run(""), 0);
    char *out = slurp(path_out);
    char *line = strtok(out, "\n");
    REQUIRE(line);
    json_error_t e;
    json_t *j = json_loads(line, 0, &e);
    REQUIRE(j);
    CHECK_STR_EQ(json_string_value(json_object_get(j, "state")), "alarm");
    json_int_t idx = json_integer_value(json_object_get(j, "index"));
    CHECK(idx >= 1000 && idx < 1100);
    json_int_t cp = json_integer_value(json_object_get(j, "change_point"));
    CHECK(cp >= 950 && cp <= idx);
    CHECK_NEAR(json_number_value(json_object_get(j, "baseline_mean")), 0.7, 0.02);
    CHECK_NEAR(json_number_value(json_object_get(j, "current_mean")), 0.6, 0.05);
    CHECK(json_number_value(json_object_get(j, "effect_size")) < -0.5);
    CHECK(json_number_value(json_object_get(j, "p_value")) < 0.01);
    CHECK(json_is_number(json_object_get(j, "statistic")));
    CHECK(json_is_number(json_object_get(j, "threshold")));
    json_decref(j);
    /* The drop lasts to the end: no other state change. */
    CHECK(strtok(NULL, "\n") == NULL);
}

TEST_CASE(json_lines_same_as_numbers)
{
    write_drop_stream(0);
    CHECK_INT_EQ(run(""), 0);
    char plain[1 << 12];
    snprintf(plain, sizeof plain, "%s", slurp(path_out));
    write_drop_stream(1);
    CHECK_INT_EQ(run(""), 0);
    CHECK_STR_EQ(slurp(path_out), plain);
    CHECK(plain[0] != 0);
}

static void write_text(const char *text)
{
    snprintf(path_in, sizeof path_in, "%s/in", test_tmpdir());
    FILE *f = fopen(path_in, "w");
    REQUIRE(f);
    fputs(text, f);
    fclose(f);
}

TEST_CASE(malformed_line)
{
    write_text("0.5\n0.6\nabc\n0.7\n");
    CHECK_INT_EQ(run(""), 1);
    CHECK(strstr(slurp(path_err), "line 3") != NULL);
    CHECK_STR_EQ(slurp(path_out), "");

    const struct {
        const char *text, *want;
    } bad[] = {{"0.5\n1.5\n", "line 2: score 1.5 is outside [0, 1]"},
               {"0.5\n\n0.5\n", "line 2: empty line"},
               {"-0.1\n", "line 1: score -0.10000000000000001 is outside"},
               {"nan\n", "line 1:"},
               {"0x1p-1\n", "line 1:"},
               {"1e\n", "line 1:"},
               {"0.5 0.6\n", "line 1:"},
               {"{\"score\": \"0.5\"}\n", "line 1: a JSON line needs a numeric \"score\""},
               {"{\"value\": 0.5}\n", "line 1: a JSON line needs"},
               {"{\"score\": 0.5\n", "line 1: not valid JSON"},
               {"0.1\n0.2\n0.3", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(bad[i].text);
        int st = run("");
        if (bad[i].want) {
            CHECK_INT_EQ(st, 1);
            if (!strstr(slurp(path_err), bad[i].want))
                fprintf(stderr, "case %zu: stderr %s", i, slurp(path_err));
            CHECK(strstr(slurp(path_err), bad[i].want) != NULL);
        } else {
            CHECK_INT_EQ(st, 0); /* short stream: warm-up note, no alarm */
            CHECK(strstr(slurp(path_err), "warm-up") != NULL);
        }
    }
}

TEST_CASE(number_forms)
{
    /* Every accepted spelling of one half, 400 times: a constant stream, no alarm. */
    const char *forms[] = {"0.5",
                           "0.50",
                           ".5",
                           "+0.5",
                           "5e-1",
                           "5E-1",
                           "0.5e0",
                           " 0.5",
                           "0.5\r",
                           "{\"score\":0.5}",
                           "{ \"score\" : 5e-1 }"};
    snprintf(path_in, sizeof path_in, "%s/in", test_tmpdir());
    FILE *f = fopen(path_in, "w");
    REQUIRE(f);
    for (int i = 0; i < 400; i++)
        fprintf(f, "%s\n", forms[i % (sizeof forms / sizeof forms[0])]);
    fclose(f);
    CHECK_INT_EQ(run(""), 0);
    CHECK_STR_EQ(slurp(path_out), "");
}

TEST_CASE(config_file)
{
    char cfg[600];
    snprintf(cfg, sizeof cfg, "%s/config.json", test_tmpdir());
    FILE *f = fopen(cfg, "w");
    REQUIRE(f);
    fputs("{\"listen\": \"127.0.0.1:8787\", \"monitor\": {\"detector\": {\"warmup_samples\": 100,"
          " \"target_arl0\": 50000}}}",
          f);
    fclose(f);
    write_drop_stream(0);
    char args[700];
    snprintf(args, sizeof args, "--config '%s'", cfg);
    CHECK_INT_EQ(run(args), 0);
    CHECK(strstr(slurp(path_out), "\"state\":\"alarm\"") != NULL);

    f = fopen(cfg, "w");
    REQUIRE(f);
    fputs("{\"monitor\": {\"detector\": {\"warmup\": 100}}}", f);
    fclose(f);
    CHECK_INT_EQ(run(args), 1);
    CHECK(strstr(slurp(path_err), "monitor.detector.warmup is not a setting") != NULL);

    CHECK_INT_EQ(run("--config /nonexistent/assay.json"), 1);
    CHECK_INT_EQ(run("--bogus"), 2);
    CHECK_INT_EQ(run("--help"), 0);
    CHECK(strstr(slurp(path_out), "usage: assay backtest") != NULL);
}
