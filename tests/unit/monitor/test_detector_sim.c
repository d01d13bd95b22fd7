/*
 * The seeded simulation suite of monitor/detector (issue 5). It measures, with
 * the default config:
 *  - false alarms per 10,000 in-control samples for continuous (normal and
 *    skewed), autocorrelated (AR(1), rho 0.3), Likert (5 and 10 levels) and
 *    pass/fail streams, each replicate with its own warm-up;
 *  - for abrupt drops (0.5, 1, 2 sd; pass rate 0.9 -> 0.8 and 0.9 -> 0.7; two
 *    Likert shifts where some 5s become 3s) and a gradual drift of 1 sd over
 *    2,000 samples: the detection rate within 2,000 samples and the median
 *    delay, next to an oracle CUSUM that knows the true pre- and post-change
 *    distributions (log-likelihood-ratio increments) and is tuned by
 *    simulation to the same false alarm rate (1 / target_arl0);
 *  - that improvements raise no alarm.
 * It prints the table and asserts the thresholds. Everything is
 * seeded: the same build prints the same table.
 */
#include "monitor/detector.h"
#include "common/rng.h"
#include "tests/unit/test.h"

#include <math.h>
#include <stdlib.h>

#define WARMUP 300
#define PRE_CHANGE 200   /* monitored in-control samples before a change */
#define HORIZON 2000     /* detection window after the change */
#define FA_SAMPLES 10000 /* monitored samples per false-alarm replicate */
#define FA_REPS 300
#define DET_REPS 200
#define MAX_LEVELS 10

enum gen_kind { GEN_NORMAL, GEN_SKEWED, GEN_AR1, GEN_CATEGORICAL };

/* A score distribution; categorical covers Likert and pass/fail. */
struct dist {
    enum gen_kind kind;
    double mean, sd, rho; /* normal / AR(1): mean and sd on the [0,1] scale */
    int levels;           /* categorical: values (l)/(levels-1), l = 0..levels-1 */
    double p[MAX_LEVELS];
};

struct gen {
    struct rng r;
    double ar; /* AR(1) state */
};

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* One score from d; shift (in the [0,1] scale) moves normal kinds. */
static double draw(struct gen *g, const struct dist *d, double shift)
{
    switch (d->kind) {
    case GEN_NORMAL:
        return clamp01(d->mean + shift + d->sd * rng_normal(&g->r));
    case GEN_SKEWED:
        return clamp01(1 - 0.06 * (rng_exponential(&g->r) + rng_exponential(&g->r)) + shift);
    case GEN_AR1:
        g->ar = d->rho * g->ar + sqrt(1 - d->rho * d->rho) * rng_normal(&g->r);
        return clamp01(d->mean + shift + d->sd * g->ar);
    case GEN_CATEGORICAL: {
        double u = rng_uniform(&g->r), c = 0;
        for (int l = 0; l < d->levels; l++) {
            c += d->p[l];
            if (u < c)
                return (double)l / (d->levels - 1);
        }
        return 1;
    }
    }
    return 0;
}

static const struct dist normal = {.kind = GEN_NORMAL, .mean = 0.7, .sd = 0.1};
static const struct dist skewed = {.kind = GEN_SKEWED};
static const struct dist ar1 = {.kind = GEN_AR1, .mean = 0.7, .sd = 0.1, .rho = 0.3};
static const struct dist likert5 = {
    .kind = GEN_CATEGORICAL, .levels = 5, .p = {0.03, 0.05, 0.12, 0.30, 0.50}};
static const struct dist likert10 = {
    .kind = GEN_CATEGORICAL,
    .levels = 10,
    .p = {0.01, 0.01, 0.02, 0.03, 0.05, 0.08, 0.15, 0.25, 0.25, 0.15}};
static const struct dist pass90 = {.kind = GEN_CATEGORICAL, .levels = 2, .p = {0.10, 0.90}};

static struct dist pass_rate(double p)
{
    return (struct dist){.kind = GEN_CATEGORICAL, .levels = 2, .p = {1 - p, p}};
}

/* Likert 5 with a fraction f of the 5s turned into 3s. */
static struct dist likert_shift(double f)
{
    struct dist d = likert5;
    double moved = f * d.p[4];
    d.p[4] -= moved;
    d.p[2] += moved;
    return d;
}

/* Likert 5 with a fraction f of the 3s and of the 4s turned into 5s. */
static struct dist likert_up(double f)
{
    struct dist d = likert5;
    double moved = f * (d.p[2] + d.p[3]);
    d.p[2] *= 1 - f;
    d.p[3] *= 1 - f;
    d.p[4] += moved;
    return d;
}

static struct detector *new_detector(void)
{
    struct detector_config c;
    detector_config_init(&c);
    return detector_new(&c);
}

/* ---- false alarms ---- */

static double false_alarms_per_10k(const struct dist *d, uint64_t seed)
{
    long alarms = 0;
    for (int rep = 0; rep < FA_REPS; rep++) {
        struct gen g = {.ar = 0};
        rng_seed(&g.r, seed * 1000003 + (uint64_t)rep);
        struct detector *det = new_detector();
        struct detector_event ev;
        for (int i = 0; i < WARMUP + FA_SAMPLES; i++)
            if (detector_update(det, draw(&g, d, 0), &ev) && ev.state == DETECTOR_ALARM)
                alarms++;
        detector_free(det);
    }
    return (double)alarms * 10000.0 / ((double)FA_REPS * FA_SAMPLES);
}

/* ---- the oracle ---- */

/* Log-likelihood ratio of a score under post- vs pre-change distributions. */
struct oracle {
    const struct dist *pre, *post;
    double shift; /* normal: the post-change mean shift */
    double h;
};

static double llr(const struct oracle *o, double x)
{
    if (o->pre->kind == GEN_CATEGORICAL) {
        int l = (int)lround(x * (o->pre->levels - 1));
        return log(o->post->p[l] / o->pre->p[l]);
    }
    /* Normal mean shift: (x - mu0 - shift/2) * shift / sd^2. */
    double mu0 = o->pre->mean, sd = o->pre->sd;
    return (x - mu0 - o->shift / 2) * o->shift / (sd * sd);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The threshold giving 1/arl0 crossings per in-control sample (renewal after each). */
static void oracle_tune(struct oracle *o, double arl0, uint64_t seed)
{
    enum { L = 4000000 };
    double *inc = malloc(L * sizeof *inc);
    REQUIRE(inc != NULL);
    struct gen g = {.ar = 0};
    rng_seed(&g.r, seed);
    for (int i = 0; i < L; i++)
        inc[i] = llr(o, draw(&g, o->pre, 0));
    double lo = 0.5, hi = 40, want = L / arl0;
    for (int it = 0; it < 24; it++) {
        double h = (lo + hi) / 2, s = 0;
        long cross = 0;
        for (int i = 0; i < L; i++) {
            s += inc[i];
            if (s < 0)
                s = 0;
            else if (s > h) {
                cross++;
                s = 0;
            }
        }
        if ((double)cross > want)
            lo = h;
        else
            hi = h;
    }
    o->h = (lo + hi) / 2;
    free(inc);
}

/* ---- detection ---- */

struct det_result {
    int reps, pre_fa, detected, oracle_detected, improvement_alarms;
    double median, oracle_median;
};

/*
 * Runs DET_REPS replicates: warm-up, PRE_CHANGE in-control samples, then
 * `post` (or a drift of drift_sd sds over HORIZON samples) for HORIZON
 * samples. With an oracle, the oracle sees the same samples.
 */
static struct det_result run_change(const struct dist *pre, const struct dist *post, double shift,
                                    double drift, struct oracle *o, uint64_t seed, int improvement)
{
    struct det_result res = {0};
    double *delays = malloc(DET_REPS * sizeof *delays);
    double *odelays = malloc(DET_REPS * sizeof *odelays);
    REQUIRE(delays && odelays);
    int change = WARMUP + PRE_CHANGE;
    for (int rep = 0; rep < DET_REPS; rep++) {
        struct gen g = {.ar = 0};
        rng_seed(&g.r, seed * 1000003 + (uint64_t)rep);
        struct detector *det = new_detector();
        struct detector_event ev;
        int alarm_at = -1, oracle_at = -1, pre_fa = 0;
        double os = 0;
        for (int i = 0; i < change + HORIZON; i++) {
            double x;
            if (i < change)
                x = draw(&g, pre, 0);
            else if (drift != 0)
                x = draw(&g, pre, drift * pre->sd * fmin(1.0, (i - change + 1) / (double)HORIZON));
            else
                x = draw(&g, post, shift);
            if (detector_update(det, x, &ev) && ev.state == DETECTOR_ALARM) {
                if (i < change)
                    pre_fa = 1;
                else {
                    if (improvement)
                        res.improvement_alarms++;
                    else if (alarm_at < 0)
                        alarm_at = i;
                }
            }
            if (o && i >= WARMUP && oracle_at < 0) {
                os = fmax(0, os + llr(o, x));
                if (os > o->h) {
                    if (i < change)
                        os = 0; /* the oracle's own false alarm: renew */
                    else
                        oracle_at = i;
                }
            }
            if (!improvement && alarm_at >= 0 && (!o || oracle_at >= 0))
                break;
        }
        detector_free(det);
        if (pre_fa) {
            res.pre_fa++;
            continue;
        }
        if (alarm_at >= 0)
            delays[res.detected++] = alarm_at - change + 1;
        if (oracle_at >= 0)
            odelays[res.oracle_detected++] = oracle_at - change + 1;
        res.reps++;
    }
    qsort(delays, (size_t)res.detected, sizeof *delays, cmp_double);
    qsort(odelays, (size_t)res.oracle_detected, sizeof *odelays, cmp_double);
    res.median = res.detected ? delays[res.detected / 2] : NAN;
    res.oracle_median = res.oracle_detected ? odelays[res.oracle_detected / 2] : NAN;
    free(delays);
    free(odelays);
    return res;
}

static double rate(int num, int den)
{
    return den ? 100.0 * num / den : 0;
}

TEST_CASE(table)
{
    struct detector_config defaults;
    detector_config_init(&defaults);
    double arl0 = defaults.target_arl0;

    printf("false alarms per 10,000 in-control samples (%d replicates x %d samples, own "
           "warm-up each; limit 1.0)\n",
           FA_REPS, FA_SAMPLES);
    const struct {
        const char *name;
        const struct dist *d;
    } fa[] = {{"continuous normal(0.7, 0.1)", &normal}, {"continuous skewed (1 - gamma)", &skewed},
              {"autocorrelated AR(1) rho 0.3", &ar1},   {"likert 5 levels", &likert5},
              {"likert 10 levels", &likert10},          {"pass/fail p 0.9", &pass90}};
    for (size_t i = 0; i < sizeof fa / sizeof fa[0]; i++) {
        double r = false_alarms_per_10k(fa[i].d, 100 + i);
        printf("  %-32s %6.3f\n", fa[i].name, r);
        CHECK(r <= 1.0);
    }

    printf("\ndrops (%d replicates; change %d samples after the warm-up; detection within %d)\n",
           DET_REPS, PRE_CHANGE, HORIZON);
    printf("  %-32s %8s %8s %8s %6s %6s %7s\n", "scenario", "detect%", "median", "oracle", "ratio",
           "limit", "pre-FA");
    struct dist p80 = pass_rate(0.8), p70 = pass_rate(0.7);
    struct dist l30 = likert_shift(0.3), l60 = likert_shift(0.6);
    const struct {
        const char *name;
        const struct dist *pre, *post;
        double shift_sd;
        double min_detect, max_ratio;
    } drops[] = {
        {"normal -0.5 sd", &normal, &normal, -0.5, 80, 2.0},
        {"normal -1 sd", &normal, &normal, -1.0, 95, 2.0},
        {"normal -2 sd", &normal, &normal, -2.0, 95, 2.0},
        {"pass rate 0.9 -> 0.8", &pass90, &p80, 0, 80, 2.0},
        {"pass rate 0.9 -> 0.7", &pass90, &p70, 0, 95, 2.0},
        {"likert 30% of 5s -> 3s", &likert5, &l30, 0, 0, 2.5},
        {"likert 60% of 5s -> 3s", &likert5, &l60, 0, 0, 2.5},
    };
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        struct oracle o = {.pre = drops[i].pre, .post = drops[i].post};
        o.shift = drops[i].shift_sd * drops[i].pre->sd;
        oracle_tune(&o, arl0, 9000 + i);
        struct det_result r = run_change(drops[i].pre, drops[i].post, o.shift, 0, &o, 200 + i, 0);
        double det = rate(r.detected, r.reps), ratio = r.median / r.oracle_median;
        printf("  %-32s %8.1f %8.0f %8.0f %6.2f %6.1f %7d\n", drops[i].name, det, r.median,
               r.oracle_median, ratio, drops[i].max_ratio, r.pre_fa);
        CHECK(det >= drops[i].min_detect);
        CHECK(ratio <= drops[i].max_ratio);
    }
    struct det_result dr = run_change(&normal, &normal, 0, -1.0, NULL, 300, 0);
    printf("  %-32s %8.1f %8.0f %8s %6s %6s %7d\n", "drift -1 sd over 2000",
           rate(dr.detected, dr.reps), dr.median, "-", "-", "-", dr.pre_fa);
    CHECK(rate(dr.detected, dr.reps) >= 95);

    printf("\nimprovements (alarms raised after the change; must be 0)\n");
    struct dist p97 = pass_rate(0.97), lup = likert_up(0.5);
    struct det_result i1 = run_change(&normal, &normal, 1.0 * normal.sd, 0, NULL, 400, 1);
    struct det_result i2 = run_change(&pass90, &p97, 0, 0, NULL, 401, 1);
    struct det_result i3 = run_change(&likert5, &lup, 0, 0, NULL, 402, 1);
    printf("  %-32s %d\n  %-32s %d\n  %-32s %d\n", "normal +1 sd", i1.improvement_alarms,
           "pass rate 0.9 -> 0.97", i2.improvement_alarms, "likert half of 3s, 4s -> 5s",
           i3.improvement_alarms);
    CHECK_INT_EQ(i1.improvement_alarms + i2.improvement_alarms + i3.improvement_alarms, 0);
    fflush(stdout);
}
