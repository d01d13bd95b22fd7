/*
 * server/cmd_eval: `assay eval --config FILE --dataset FILE [--target-model
 * ID] [--rubric NAME]... [--report FILE]`. Runs one golden set (or
 * calibration set) through server/golden with the configured judge, stores
 * the run in data_dir's store so the next run compares with it, shows
 * progress on stderr (a bar on a terminal, plain lines otherwise), prints the
 * JSON summary on stdout and optionally writes a Markdown or HTML report
 * (server/golden_report). Exit status: 0 no regression, 3 regressed (or, for
 * a calibration set, the judge drifted), 1 any error.
 */
#include "aws/cloudwatch.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "judges/dataset.h"
#include "judges/judge.h"
#include "judges/rubric.h"
#include "monitor/publish.h"
#include "server/awsenv.h"
#include "server/commands.h"
#include "server/config.h"
#include "server/confpath.h"
#include "server/golden.h"
#include "server/golden_report.h"
#include "server/store.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_REGRESSED 3
#define PUBLISH_FLUSH_MS 10000

static const char usage_text[] =
    "usage: assay eval --config FILE --dataset FILE [--target-model ID] [--rubric NAME]...\n"
    "                  [--report FILE]\n"
    "\n"
    "Runs one golden set: each item's input goes to the target model (Bedrock\n"
    "Converse), the answers are judged with the rubrics, the run is stored under\n"
    "data_dir and compared with the previous completed run of the same dataset\n"
    "and target model. A calibration set (*.calibration.jsonl) calls no target:\n"
    "its answers are judged again and compared with the human scores.\n"
    "\n"
    "  --config FILE        the service's configuration; a `golden` entry whose\n"
    "                       dataset is FILE lends its target model, rubrics,\n"
    "                       system prompt, inference settings and margin\n"
    "  --dataset FILE       the JSONL golden or calibration set\n"
    "  --target-model ID    the model under test (overrides the entry's)\n"
    "  --rubric NAME        a rubric to judge with; repeatable (default: the entry's,\n"
    "                       else correctness; an item's own rubrics win)\n"
    "  --margin X           a rubric regresses only when its mean drops by more\n"
    "                       than X (0..1 scale; default 0.05) and significantly\n"
    "  --report FILE        also write a report: Markdown (.md) or HTML (.html, with\n"
    "                       an SVG chart of each rubric across the stored runs)\n"
    "\n"
    "stderr: progress (a bar on a terminal, plain lines otherwise) and errors.\n"
    "stdout: the JSON summary: run_id, rubrics (mean, pass_rate, comparison with\n"
    "delta, bootstrap ci_low/ci_high, Wilcoxon p_value; agreement for calibration\n"
    "sets), regressed, worse_items [{id, rubric, before, after}] largest drop first.\n"
    "Exit status: 0 no regression, 3 regressed (calibration: the judge drifted),\n"
    "1 on any error.\n";

/* ------------------------------------------------------------- progress */

struct progress {
    int tty;
    int64_t start_ms, last_ms;
    size_t last_done;
    int printed;
};

static void on_progress(void *ctx, size_t done, size_t total)
{
    struct progress *p = ctx;
    int64_t now = clock_mono_ms(clock_system());
    bool final = done >= total;
    if (!p->tty && p->printed && !final && now - p->last_ms < 1000)
        return;
    if (p->tty && !final && now - p->last_ms < 100 && p->printed)
        return;
    double el = (double)(now - p->start_ms) / 1000.0;
    double rate = el > 0 ? (double)done / el : 0;
    double left = rate > 0 ? (double)(total - done) / rate : 0;
    if (p->tty) {
        char bar[31];
        size_t fill = total ? done * 30 / total : 30;
        for (size_t i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %zu/%zu items  %.1f/s  %.0fs left   %s", bar, done, total, rate,
                left, final ? "\n" : "");
    } else {
        fprintf(stderr, "eval: %zu/%zu items, %.1f items/s, %.0f s left\n", done, total, rate,
                left);
    }
    fflush(stderr);
    p->last_ms = now;
    p->last_done = done;
    p->printed = 1;
}

/* --------------------------------------------------------------- spec */

static int same_file(const char *a, const char *b)
{
    char ra[PATH_MAX], rb[PATH_MAX];
    return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* The config's golden entry for dataset (resolved paths compared), if any. */
static enum assay_err spec_from_config(const struct config *cfg, const char *dataset,
                                       struct golden_spec *spec, char *errbuf)
{
    size_t i;
    const json_t *e;
    json_array_foreach(cfg->golden, i, e)
    {
        const char *ds = json_string_value(json_object_get(e, "dataset"));
        if (!ds)
            continue;
        char *path = confpath_resolve(cfg, ds);
        int same = same_file(path, dataset);
        free(path);
        if (same) {
            char eb[ASSAY_ERRBUF_SIZE] = "";
            enum assay_err err = golden_spec_from_json(e, spec, eb);
            if (err != ASSAY_OK)
                return assay_errbuf_set(errbuf, err, "golden[%zu]: %s", i, eb);
            return ASSAY_OK;
        }
    }
    golden_spec_init(spec);
    return ASSAY_OK;
}

/* --------------------------------------------------------------- metrics */

struct metrics {
    struct cloudwatch *cw;
    struct publish *pub;
};

static void metrics_open(const struct config *cfg, struct awsenv *aws, struct metrics *m)
{
    if (strcmp(cfg->metrics.sink, "none") == 0)
        return;
    struct publish_options po;
    publish_options_init(&po);
    char eb[ASSAY_ERRBUF_SIZE] = "";
    if (publish_options_from_json(&po, json_object_get(cfg->root, "metrics"), eb) != ASSAY_OK)
        goto fail;
    if (po.sink == PUBLISH_SINK_CLOUDWATCH) {
        if (!aws->t)
            return;
        struct cloudwatch_options co = {.transport = aws->t,
                                        .creds = aws->creds,
                                        .region = cfg->aws.region,
                                        .endpoint = cfg->aws.cloudwatch_endpoint,
                                        .timeout_ms = 10000};
        retry_policy_init(&co.retry);
        m->cw = cloudwatch_new(&co, eb);
        if (!m->cw)
            goto fail;
        po.cw = m->cw;
    }
    m->pub = publish_new(&po, eb);
    if (m->pub)
        return;
fail:
    LOG_WARN("eval.metrics_disabled", LOG_S("error", eb));
}

static void metrics_close(struct metrics *m)
{
    if (m->pub) {
        publish_tick(m->pub, clock_now_ms(clock_system()), 1);
        publish_stop(m->pub, clock_mono_ms(clock_system()) + PUBLISH_FLUSH_MS);
    }
    publish_free(m->pub);
    cloudwatch_free(m->cw);
}

/* ------------------------------------------------------------------ main */

int cmd_eval(int argc, char **argv)
{
    const char *config_path = NULL, *dataset = NULL, *target = NULL, *report = NULL;
    const char *margin_text = NULL;
    const char *rubric_args[GOLDEN_RUBRICS_MAX];
    size_t n_rubric_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        const char *dummy = NULL;
        const char **slot = strcmp(a, "--config") == 0         ? &config_path
                            : strcmp(a, "--dataset") == 0      ? &dataset
                            : strcmp(a, "--target-model") == 0 ? &target
                            : strcmp(a, "--report") == 0       ? &report
                            : strcmp(a, "--margin") == 0       ? &margin_text
                            : strcmp(a, "--rubric") == 0       ? &dummy
                                                               : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "assay eval: %s: %s\n\n%s", a,
                    slot ? "needs a value" : "unknown argument", usage_text);
            return 1;
        }
        *slot = argv[++i];
        if (slot == &dummy) {
            if (n_rubric_args >= GOLDEN_RUBRICS_MAX || !rubric_name_valid(dummy)) {
                fprintf(stderr, "assay eval: --rubric: not a rubric name, or too many\n");
                return 1;
            }
            rubric_args[n_rubric_args++] = dummy;
        }
    }
    if (!config_path || !dataset) {
        fprintf(stderr, "assay eval: --config and --dataset are required\n\n%s", usage_text);
        return 1;
    }
    if (report) {
        const char *dot = strrchr(report, '.');
        if (!dot || (strcmp(dot, ".md") != 0 && strcmp(dot, ".html") != 0)) {
            fprintf(stderr, "assay eval: --report: the file must end in .md or .html\n");
            return 1;
        }
    }

    int status = 1;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct config *cfg = NULL;
    struct rubric_registry *reg = NULL;
    struct judge_runner *runner = NULL;
    struct awsenv aws = {0};
    struct metrics metrics = {0};
    struct store *store = NULL;
    struct golden_spec spec;
    golden_spec_init(&spec);
    json_t *summary = NULL;
    char *dir = NULL;
    struct buf path = BUF_INIT;

    enum assay_err err = config_load(config_path, NULL, NULL, &cfg, errbuf);
    if (err != ASSAY_OK)
        goto out;
    enum log_level level;
    if (cfg->log_level && log_level_parse(cfg->log_level, &level) == 0)
        log_set_level(level);
    err = spec_from_config(cfg, dataset, &spec, errbuf);
    if (err != ASSAY_OK)
        goto out;
    free(spec.dataset);
    spec.dataset = xstrdup(dataset);
    if (target) {
        free(spec.target_model);
        spec.target_model = xstrdup(target);
    }
    if (n_rubric_args) {
        for (size_t i = 0; i < spec.n_rubrics; i++)
            free(spec.rubrics[i]);
        spec.n_rubrics = 0;
        for (size_t i = 0; i < n_rubric_args; i++)
            golden_spec_add_rubric(&spec, rubric_args[i]);
    }
    if (margin_text) {
        char *end = NULL;
        double m = strtod(margin_text, &end);
        if (!end || *end || !(m >= 0 && m <= 1)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                   "--margin: must be a number in [0, 1]");
            goto out;
        }
        spec.margin = m;
    }
    bool calibration = dataset_kind_from_path(dataset) == DATASET_KIND_CALIBRATION;

    dir = confpath_resolve(cfg, cfg->rubrics_dir);
    err = rubric_registry_load(dir, &reg, errbuf);
    if (err != ASSAY_OK)
        goto out;
    char aerr[ASSAY_ERRBUF_SIZE] = "";
    err = awsenv_open(cfg, &aws, aerr);
    if (err != ASSAY_OK) {
        if (!calibration) {
            assay_errbuf_set(errbuf, err, "%s", aerr);
            goto out;
        }
        /* A calibration set with rule and reference rubrics needs no AWS. */
        LOG_WARN("eval.no_aws", LOG_S("error", aerr));
        awsenv_close(&aws);
        err = ASSAY_OK;
    }
    runner = judge_runner_new(aws.llm, NULL);
    metrics_open(cfg, &aws, &metrics);

    if (confpath_mkdirs(cfg->data_dir) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "data_dir: cannot create %s: %s",
                               cfg->data_dir, strerror(errno));
        goto out;
    }
    buf_appendf(&path, "%s/%s", cfg->data_dir, STORE_SQLITE_FILENAME);
    struct store_sqlite_options so;
    store_sqlite_options_init(&so);
    so.path = path.data;
    err = store_sqlite_open(&so, &store, errbuf);
    if (err != ASSAY_OK)
        goto out;

    struct golden_env env = {.store = store,
                             .reg = reg,
                             .runner = runner,
                             .bedrock = aws.bedrock,
                             .judge_model = cfg->judge.model_id,
                             .publish = metrics.pub};
    struct progress prog = {.tty = isatty(STDERR_FILENO),
                            .start_ms = clock_mono_ms(clock_system())};
    err = golden_run_execute(&env, &spec, NULL, on_progress, &prog, &summary, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (report) {
        err = golden_report_write(store, summary, report, errbuf);
        if (err != ASSAY_OK)
            goto out;
    }
    char *text = json_dumps(summary, JSON_INDENT(2));
    if (!text) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "could not serialise the summary");
        goto out;
    }
    printf("%s\n", text);
    free(text);
    if (fflush(stdout) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "could not write stdout");
        goto out;
    }
    status = json_is_true(json_object_get(summary, "regressed")) ||
                     json_is_true(json_object_get(summary, "judge_drift"))
                 ? EXIT_REGRESSED
                 : 0;
out:
    if (status == 1)
        fprintf(stderr, "assay eval: %s\n", errbuf[0] ? errbuf : assay_err_message(err));
    metrics_close(&metrics);
    awsenv_close(&aws);
    judge_runner_free(runner);
    store_close(store);
    json_decref(summary);
    golden_spec_clear(&spec);
    rubric_registry_free(reg);
    config_free(cfg);
    buf_clear(&path);
    free(dir);
    return status;
}
