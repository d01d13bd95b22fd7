/*
 * server/cmd_backtest: `assay backtest [--config FILE]`. Replays a score
 * stream from stdin through monitor/detector, the same code the service runs
 * per series, and prints one JSON line per alarm state change. For tuning
 * detector settings on exported history.
 *
 * Input: one sample a line, a bare number in [0, 1] or a JSON object with a
 * numeric "score" in [0, 1] (other keys are ignored). A line that is anything
 * else (empty, not a number, out of range) stops the run with exit status 1
 * and a message naming the line: a score is never guessed.
 *
 * Built for throughput: stdin is read in 1 MiB blocks, lines are split with
 * memchr, and monitor/scoreline converts plain decimals exactly without
 * strtod (Clinger's fast path).
 */
#include "server/commands.h"

#include "common/alloc.h"
#include "common/err.h"
#include "server/config.h"
#include "monitor/detector.h"
#include "monitor/scoreline.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (1u << 20)
#define MAX_LINE (64u * 1024)

static void usage(FILE *to)
{
    fprintf(to,
            "usage: assay backtest [--config FILE]\n"
            "\n"
            "Replays a score stream through the regression detector the service uses.\n"
            "\n"
            "stdin:  one sample a line: a number in [0, 1], or {\"score\": x}\n"
            "stdout: one JSON line per alarm state change:\n"
            "        {\"index\": i, \"state\": \"alarm\"|\"ok\", \"change_point\": c,\n"
            "         \"baseline_mean\": m0, \"current_mean\": m1, \"effect_size\": d,\n"
            "         \"p_value\": p (alarms only), \"statistic\": s, \"threshold\": h}\n"
            "        index is the 0-based sample at which the state changed.\n"
            "\n"
            "options:\n"
            "  --config FILE  detector settings from FILE's \"monitor\": {\"detector\": {...}}\n"
            "                 (see monitor/README.md); defaults otherwise\n"
            "  -h, --help     this text\n"
            "\n"
            "A malformed line stops the run with exit status 1, naming the line.\n");
}

/* Detector settings from the service's config file (its "monitor.detector"). */
static enum assay_err load_config(const char *path, struct detector_config *cfg, char *errbuf)
{
    struct config *c = NULL;
    enum assay_err err = config_load(path, NULL, NULL, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    char detail[ASSAY_ERRBUF_SIZE] = "";
    const json_t *det = c->monitor ? json_object_get(c->monitor, "detector") : NULL;
    if (det && detector_config_from_json(cfg, det, detail) != ASSAY_OK)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: monitor.%s", path, detail);
    config_free(c);
    return err;
}

static void print_event(const struct detector_event *ev)
{
    if (ev->state == DETECTOR_ALARM)
        printf("{\"index\":%llu,\"state\":\"alarm\",\"change_point\":%llu,\"baseline_mean\":%.6g,"
               "\"current_mean\":%.6g,\"effect_size\":%.4g,\"p_value\":%.4g,\"statistic\":%.4g,"
               "\"threshold\":%.4g}\n",
               (unsigned long long)ev->index, (unsigned long long)ev->change_point,
               ev->baseline_mean, ev->current_mean, ev->effect_size,
               isfinite(ev->p_value) ? ev->p_value : 1.0, ev->statistic, ev->threshold);
    else
        printf("{\"index\":%llu,\"state\":\"ok\",\"change_point\":%llu,\"baseline_mean\":%.6g,"
               "\"current_mean\":%.6g,\"effect_size\":%.4g,\"statistic\":%.4g,"
               "\"threshold\":%.4g}\n",
               (unsigned long long)ev->index, (unsigned long long)ev->change_point,
               ev->baseline_mean, ev->current_mean, ev->effect_size, ev->statistic, ev->threshold);
}

int cmd_backtest(int argc, char **argv)
{
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else {
            fprintf(stderr, "assay backtest: unknown argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    struct detector_config cfg;
    detector_config_init(&cfg);
    char err[ASSAY_ERRBUF_SIZE] = "";
    if (config_path && load_config(config_path, &cfg, err) != ASSAY_OK) {
        fprintf(stderr, "assay backtest: %s\n", err);
        return 1;
    }
    struct detector *det = detector_new(&cfg);
    char *buf = xmalloc(BLOCK_SIZE + MAX_LINE);
    size_t have = 0; /* bytes of an unfinished line at buf[0] */
    uint64_t line_no = 0, samples = 0;
    int status = 0, eof = 0;
    struct detector_event ev;
    while (!eof && status == 0) {
        size_t got = fread(buf + have, 1, BLOCK_SIZE + MAX_LINE - have, stdin);
        if (got == 0) {
            if (ferror(stdin)) {
                fprintf(stderr, "assay backtest: error reading stdin\n");
                status = 1;
                break;
            }
            eof = 1;
        }
        size_t len = have + got;
        const char *p = buf, *end = buf + len;
        for (;;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {
                if (eof && p < end)
                    nl = end; /* a last line without '\n' */
                else
                    break;
            }
            line_no++;
            double x;
            char why[160];
            if (scoreline_parse(p, (size_t)(nl - p), &x, why, sizeof why) != 0) {
                fprintf(stderr, "assay backtest: line %llu: %s\n", (unsigned long long)line_no,
                        why);
                status = 1;
                break;
            }
            if (detector_update(det, x, &ev))
                print_event(&ev);
            samples++;
            p = nl < end ? nl + 1 : end;
            if (p == end)
                break;
        }
        if (status)
            break;
        have = (size_t)(end - p);
        if (have >= MAX_LINE) {
            fprintf(stderr, "assay backtest: line %llu: longer than %u bytes\n",
                    (unsigned long long)line_no + 1, MAX_LINE);
            status = 1;
            break;
        }
        memmove(buf, p, have);
    }
    if (status == 0 && samples < cfg.warmup_samples)
        fprintf(stderr,
                "assay backtest: the stream ended during the warm-up (%llu of %zu samples)\n",
                (unsigned long long)samples, cfg.warmup_samples);
    free(buf);
    detector_free(det);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "assay backtest: error writing stdout\n");
        status = 1;
    }
    return status;
}
