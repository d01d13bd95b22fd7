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
 * memchr, and plain decimals are converted exactly without strtod (Clinger's
 * fast path); JSON lines of the exact form {"score": x} skip jansson too.
 */
#include "server/commands.h"

#include "common/alloc.h"
#include "common/err.h"
#include "common/jsonutil.h"
#include "monitor/detector.h"

#include <errno.h>
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

static enum assay_err load_config(const char *path, struct detector_config *cfg, char *errbuf)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > 16u * 1024 * 1024) {
                fclose(f);
                free(text);
                return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "%s: larger than 16 MiB",
                                        path);
            }
            text = xrealloc(text, cap);
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: read error", path);
    }
    char detail[ASSAY_ERRBUF_SIZE] = "";
    json_t *root = jsonutil_parse(text, len, detail);
    free(text);
    if (!root)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: %s", path, detail);
    enum assay_err err = ASSAY_OK;
    if (!json_is_object(root)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: the config must be a JSON object",
                               path);
        goto out;
    }
    const json_t *mon = json_object_get(root, "monitor");
    if (!mon)
        goto out;
    if (!json_is_object(mon)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: \"monitor\" must be an object", path);
        goto out;
    }
    const json_t *det = json_object_get(mon, "detector");
    if (det && detector_config_from_json(cfg, det, detail) != ASSAY_OK)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: monitor.%s", path, detail);
out:
    json_decref(root);
    return err;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/*
 * Parses [p, end) as a whole decimal number: optional sign, digits with an
 * optional fraction (at least one digit in all), optional exponent. Returns 0
 * and *out, or -1. Exact: a mantissa below 2^53 scaled by an exact power of
 * ten is one correctly rounded operation; anything else goes to strtod.
 */
static int parse_number(const char *p, const char *end, double *out)
{
    const char *s = p;
    int neg = 0;
    if (s < end && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    uint64_t mant = 0;
    int sig = 0, dropped = 0, any = 0, e10 = 0;
    while (s < end && is_digit(*s)) {
        any = 1;
        if (sig < 19) {
            mant = mant * 10 + (uint64_t)(*s - '0');
            sig += mant != 0;
        } else {
            dropped = 1;
            e10++;
        }
        s++;
    }
    if (s < end && *s == '.') {
        s++;
        while (s < end && is_digit(*s)) {
            any = 1;
            if (sig < 19) {
                mant = mant * 10 + (uint64_t)(*s - '0');
                sig += mant != 0;
                e10--;
            } else {
                dropped = 1;
            }
            s++;
        }
    }
    if (!any)
        return -1;
    if (s < end && (*s == 'e' || *s == 'E')) {
        s++;
        int eneg = 0, ev = 0, edigits = 0;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        while (s < end && is_digit(*s)) {
            if (ev < 100000)
                ev = ev * 10 + (*s - '0');
            edigits++;
            s++;
        }
        if (!edigits)
            return -1;
        e10 += eneg ? -ev : ev;
    }
    if (s != end)
        return -1;
    double v;
    if (!dropped && mant < (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        v = e10 < 0 ? (double)mant / pow10_exact[-e10] : (double)mant * pow10_exact[e10];
    } else {
        char small[128];
        size_t n = (size_t)(end - p);
        char *copy = n < sizeof small ? small : xmalloc(n + 1);
        memcpy(copy, p, n);
        copy[n] = 0;
        v = strtod(copy, NULL);
        if (copy != small)
            free(copy);
        if (!isfinite(v))
            return -1;
        *out = v;
        return 0;
    }
    *out = neg ? -v : v;
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* {"score": <number>} with optional blanks and nothing else: the JSON fast path. */
static int parse_score_object_fast(const char *p, const char *end, double *out)
{
    static const char key[] = "\"score\"";
    const char *s = p + 1; /* after '{' */
    while (s < end && is_space(*s))
        s++;
    if ((size_t)(end - s) < sizeof key - 1 || memcmp(s, key, sizeof key - 1) != 0)
        return -1;
    s += sizeof key - 1;
    while (s < end && is_space(*s))
        s++;
    if (s == end || *s != ':')
        return -1;
    s++;
    while (s < end && is_space(*s))
        s++;
    const char *e = end - 1; /* the closing brace */
    while (e > s && is_space(*e))
        e--;
    if (e <= s || *e != '}')
        return -1;
    const char *num_end = e;
    while (num_end > s && is_space(num_end[-1]))
        num_end--;
    /* JSON numbers have no '+' and no leading '.'; leave such lines to jansson's verdict. */
    if (*s == '+' || *s == '.')
        return -1;
    return parse_number(s, num_end, out);
}

/* Reads one sample from a line (without its '\n'); 0 and *score, or -1 with a reason. */
static int parse_line(const char *p, const char *end, double *score, char *why, size_t why_n)
{
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (p == end) {
        snprintf(why, why_n, "empty line");
        return -1;
    }
    double v;
    if (*p == '{') {
        if (parse_score_object_fast(p, end, &v) != 0) {
            json_error_t e;
            json_t *j = json_loadb(p, (size_t)(end - p), JSON_REJECT_DUPLICATES, &e);
            if (!j) {
                snprintf(why, why_n, "not valid JSON (column %d: %.80s)", e.column, e.text);
                return -1;
            }
            const json_t *s = json_object_get(j, "score");
            if (!json_is_object(j) || !json_is_number(s)) {
                json_decref(j);
                snprintf(why, why_n, "a JSON line needs a numeric \"score\"");
                return -1;
            }
            v = json_number_value(s);
            json_decref(j);
        }
    } else if (parse_number(p, end, &v) != 0) {
        int n = (int)(end - p > 40 ? 40 : end - p);
        snprintf(why, why_n, "'%.*s%s' is not a number in [0, 1] or {\"score\": x}", n, p,
                 end - p > 40 ? "..." : "");
        return -1;
    }
    if (!(v >= 0 && v <= 1)) {
        snprintf(why, why_n, "score %.17g is outside [0, 1]", v);
        return -1;
    }
    *score = v;
    return 0;
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
            if (parse_line(p, nl, &x, why, sizeof why) != 0) {
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
