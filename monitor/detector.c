/*
 * monitor/detector: warm-up, calibrated one-sided CUSUM charts, alarm and
 * recovery, and the state's JSON form. See detector.h for the contracts and
 * monitor/README.md for the method. Called for every verdict of a series, so
 * detector_update is kept branch-light and allocation-free.
 */
#include "monitor/detector.h"

#include "common/alloc.h"
#include "monitor/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1
#define MAX_CUTS 10 /* a Likert kind has at most 11 levels */
#define MAX_ACTIVE (DETECTOR_MAX_CHARTS + MAX_CUTS)

/*
 * A one-sided CUSUM. A mean chart adds (mean - x)/sd_lr - k per score; a cut
 * chart (Likert only) adds (1[x <= cut] - p)/sd - k, p being the warm-up's
 * share of scores at or below the cut: both grow when quality drops.
 */
struct chart {
    int is_cut;
    double cut, p, inv_sd; /* cut charts only */
    double k;              /* reference value, long-run sds */
    double h;              /* threshold */
    double s;              /* statistic */
    uint64_t start;        /* first sample of the current excursion above zero */
    double sum;            /* sum of the scores since start */
    uint64_t count;
};

struct detector {
    struct detector_config cfg;
    enum detector_state state;
    enum detector_kind kind; /* resolved at the end of the warm-up */
    uint64_t n;              /* samples seen; the next sample's index */
    uint64_t since;          /* where the current state began */
    double *warm;            /* the warm-up sample, kept for p-values */
    size_t n_warm;
    double mean, sd, sd_lr, rho, inv_scale;
    size_t n_charts; /* mean charts, then cut charts */
    struct chart charts[MAX_ACTIVE];
    struct chart recovery; /* upward CUSUM while in alarm */
    uint64_t next_confirm; /* no confirmation test before this sample (after a failed one) */
    double *ring;          /* the last window_samples scores */
    size_t ring_head;      /* next slot */
    uint64_t ring_count;
};

/* ---- config ---- */

void detector_config_init(struct detector_config *c)
{
    memset(c, 0, sizeof *c);
    c->warmup_samples = 300;
    c->target_arl0 = 20000;
    c->n_charts = 2;
    c->reference_k[0] = 0.25;
    c->reference_k[1] = 0.5;
    c->kind = DETECTOR_KIND_AUTO;
    c->min_sd = 0.05;
    c->outlier_mads = 6;
    c->autocorrelation = 1;
    c->max_rho = 0.8;
    c->window_samples = 1000;
    c->min_recovery_k = 0.125;
    c->cut_k = 0.25;
    c->confirm_alpha = 0.01;
}

static const char *const kind_names[] = {"auto", "continuous", "likert", "pass_fail"};
static const char *const state_names[] = {"warming_up", "ok", "alarm"};

const char *detector_kind_name(enum detector_kind k)
{
    return (unsigned)k < 4 ? kind_names[k] : "unknown";
}

const char *detector_state_name(enum detector_state s)
{
    return (unsigned)s < 3 ? state_names[s] : "unknown";
}

static int kind_parse(const char *s, enum detector_kind *out)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, kind_names[i]) == 0) {
            *out = (enum detector_kind)i;
            return 0;
        }
    return -1;
}

enum assay_err detector_config_check(const struct detector_config *c, char *errbuf)
{
    if (c->warmup_samples < 30 || c->warmup_samples > 100000)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "warmup_samples must be 30..100000");
    if (!(c->target_arl0 >= 100 && c->target_arl0 <= 1e9))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "target_arl0 must be 100..1e9");
    if (c->n_charts < 1 || c->n_charts > DETECTOR_MAX_CHARTS)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "reference_k must hold 1..%d values",
                                DETECTOR_MAX_CHARTS);
    for (size_t i = 0; i < c->n_charts; i++)
        if (!(c->reference_k[i] >= 0.05 && c->reference_k[i] <= 3))
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "reference_k values must be 0.05..3");
    if ((unsigned)c->kind > DETECTOR_KIND_PASS_FAIL)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "kind is not valid");
    if (!(c->min_sd > 0 && c->min_sd <= 0.5))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "min_sd must be in (0, 0.5]");
    if (!(c->outlier_mads == 0 || (c->outlier_mads >= 2 && c->outlier_mads <= 100)))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "outlier_mads must be 0 or 2..100");
    if (!(c->max_rho >= 0 && c->max_rho <= 0.95))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "max_rho must be 0..0.95");
    if (c->window_samples < 10 || c->window_samples > 1000000)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "window_samples must be 10..1000000");
    if (!(c->min_recovery_k >= 0.01 && c->min_recovery_k <= 2))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "min_recovery_k must be 0.01..2");
    if (!(c->confirm_alpha > 0 && c->confirm_alpha <= 1))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "confirm_alpha must be in (0, 1]");
    if (!(c->cut_k == 0 || (c->cut_k >= 0.05 && c->cut_k <= 3)))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "cut_k must be 0 or 0.05..3");
    return ASSAY_OK;
}

static enum assay_err want_number(const json_t *v, const char *key, double *out, char *errbuf)
{
    if (!json_is_number(v))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "detector.%s must be a number", key);
    *out = json_number_value(v);
    return ASSAY_OK;
}

static enum assay_err want_count(const json_t *v, const char *key, size_t *out, char *errbuf)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "detector.%s must be a non-negative integer", key);
    *out = (size_t)json_integer_value(v);
    return ASSAY_OK;
}

enum assay_err detector_config_from_json(struct detector_config *c, const json_t *obj, char *errbuf)
{
    if (!json_is_object(obj))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "detector settings must be an object");
    const char *key;
    json_t *v;
    enum assay_err err = ASSAY_OK;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "warmup_samples") == 0)
            err = want_count(v, key, &c->warmup_samples, errbuf);
        else if (strcmp(key, "target_arl0") == 0)
            err = want_number(v, key, &c->target_arl0, errbuf);
        else if (strcmp(key, "reference_k") == 0) {
            size_t n = json_array_size(v);
            if (!json_is_array(v) || n < 1 || n > DETECTOR_MAX_CHARTS)
                return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                        "detector.reference_k must be an array of 1..%d numbers",
                                        DETECTOR_MAX_CHARTS);
            for (size_t i = 0; i < n && !err; i++)
                err = want_number(json_array_get(v, i), key, &c->reference_k[i], errbuf);
            c->n_charts = n;
        } else if (strcmp(key, "kind") == 0) {
            if (!json_is_string(v) || kind_parse(json_string_value(v), &c->kind) != 0)
                return assay_errbuf_set(
                    errbuf, ASSAY_ERR_CONFIG,
                    "detector.kind must be \"auto\", \"continuous\", \"likert\" or \"pass_fail\"");
        } else if (strcmp(key, "min_sd") == 0)
            err = want_number(v, key, &c->min_sd, errbuf);
        else if (strcmp(key, "outlier_mads") == 0)
            err = want_number(v, key, &c->outlier_mads, errbuf);
        else if (strcmp(key, "autocorrelation") == 0) {
            if (!json_is_boolean(v))
                return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                        "detector.autocorrelation must be true or false");
            c->autocorrelation = json_is_true(v);
        } else if (strcmp(key, "max_rho") == 0)
            err = want_number(v, key, &c->max_rho, errbuf);
        else if (strcmp(key, "window_samples") == 0)
            err = want_count(v, key, &c->window_samples, errbuf);
        else if (strcmp(key, "min_recovery_k") == 0)
            err = want_number(v, key, &c->min_recovery_k, errbuf);
        else if (strcmp(key, "cut_k") == 0)
            err = want_number(v, key, &c->cut_k, errbuf);
        else if (strcmp(key, "confirm_alpha") == 0)
            err = want_number(v, key, &c->confirm_alpha, errbuf);
        else
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "detector.%s is not a setting", key);
        if (err)
            return err;
    }
    return detector_config_check(c, errbuf);
}

/* ---- threshold calibration ---- */

/*
 * Adjustment coefficient of the increments -u_i - k: the theta > 0 with
 * mean(exp(theta * (-u_i - k))) = 1 (for normal scores, 2k). Infinity when no
 * increment is positive.
 */
static double adjustment_coefficient(const double *u, size_t n, double k)
{
    double ymax = -INFINITY;
    for (size_t i = 0; i < n; i++)
        ymax = fmax(ymax, -u[i] - k);
    if (!(ymax > 0))
        return INFINITY;
    /* g(theta) = mean(exp(theta*y)) - 1 is convex with g(0) = 0 and g'(0) < 0. */
    double lo = 1e-6, hi = 1;
    for (;;) {
        double g = 0;
        for (size_t i = 0; i < n; i++)
            g += exp(hi * (-u[i] - k));
        if (g / (double)n > 1 || hi > 1e6)
            break;
        lo = hi;
        hi *= 2;
    }
    for (int it = 0; it < 60; it++) {
        double mid = (lo + hi) / 2, g = 0;
        for (size_t i = 0; i < n; i++)
            g += exp(mid * (-u[i] - k));
        if (g / (double)n > 1)
            hi = mid;
        else
            lo = mid;
    }
    return (lo + hi) / 2;
}

/*
 * False alarms per sample of a CUSUM with reference k and threshold h when the
 * in-control mean sits e (long-run sds) below the baseline's estimate and the
 * variance is v times the estimated one: Siegmund's approximation of the
 * in-control run length, with the adjustment coefficient a*k (a = 2 for
 * normal scores) in place of 2k.
 */
static double alarm_rate(double h, double k, double a, double e, double v)
{
    double d = k - e; /* drift away from the threshold */
    double b = h + 1.166 * sqrt(v);
    double th = a * d / v;
    double x = th * b, arl;
    if (fabs(x) < 1e-6)
        arl = a * b * b / (2 * v);
    else
        arl = (expm1(x) - x) / (th * d);
    return arl > 1 ? 1 / arl : 1;
}

/*
 * The threshold h whose false alarm rate, averaged over the warm-up's
 * estimation error, is target_rate. The error is bivariate normal: the mean's
 * error e ~ N(0, se2) (positive: baseline set too high), and the log ratio of
 * true to estimated variance ~ N(beta * e, sv2 - beta^2 * se2), beta being
 * minus the skewness of the scores (a long lower tail makes a high mean
 * estimate and a low variance estimate go together).
 */
static double calibrate_h(double k, double a, double se2, double sv2, double beta,
                          double target_rate)
{
    enum { NE = 33, NV = 17 };
    double ew[NE], ev[NE], vw[NV], vv[NV], wsum = 0, vsum = 0;
    double se = sqrt(se2), sv = sqrt(fmax(sv2 - beta * beta * se2, 0));
    for (int i = 0; i < NE; i++) {
        double z = -4.5 + 9.0 * i / (NE - 1);
        ev[i] = z * se;
        ew[i] = exp(-z * z / 2);
        wsum += ew[i];
    }
    for (int j = 0; j < NV; j++) {
        double z = -4.0 + 8.0 * j / (NV - 1);
        vv[j] = z * sv; /* residual log variance ratio */
        vw[j] = exp(-z * z / 2);
        vsum += vw[j];
    }
    double lo = 0.1, hi = 500;
    for (int it = 0; it < 50; it++) {
        double h = (lo + hi) / 2, rate = 0;
        for (int i = 0; i < NE; i++)
            for (int j = 0; j < NV; j++)
                rate += ew[i] * vw[j] * alarm_rate(h, k, a, ev[i], exp(beta * ev[i] + vv[j]));
        rate /= wsum * vsum;
        if (rate > target_rate)
            lo = h;
        else
            hi = h;
    }
    return hi;
}

/* ---- warm-up ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *v, size_t n)
{
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The uncertainty model and thresholds of every chart, from the warm-up. */
struct calibration {
    double *u; /* kept warm-up scores standardised by the marginal sd */
    size_t n;
    double se2, sv2, beta;
};

static double chart_threshold(const struct detector *d, const struct calibration *cal, double k,
                              double target_rate)
{
    double theta = adjustment_coefficient(cal->u, cal->n, k);
    /* Never trust a lower tail lighter than the normal one from a few hundred scores. */
    double a = fmin(theta / k, 2.0);
    (void)d;
    return calibrate_h(k, a, cal->se2, cal->sv2, cal->beta, target_rate);
}

static void finish_warmup(struct detector *d)
{
    size_t n = d->n_warm;
    double *sorted = xmemdup(d->warm, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_double);
    size_t distinct = 1;
    int binary = 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && sorted[i] != sorted[i - 1])
            distinct++;
        if (sorted[i] != 0 && sorted[i] != 1)
            binary = 0;
    }
    d->kind = d->cfg.kind;
    if (d->kind == DETECTOR_KIND_AUTO)
        d->kind = binary           ? DETECTOR_KIND_PASS_FAIL
                  : distinct <= 11 ? DETECTOR_KIND_LIKERT
                                   : DETECTOR_KIND_CONTINUOUS;

    /* Robust centre and spread; far outliers of continuous scores are set aside. */
    double med = median_sorted(sorted, n);
    double *dev = xmalloc(n * sizeof *dev);
    for (size_t i = 0; i < n; i++)
        dev[i] = fabs(sorted[i] - med);
    qsort(dev, n, sizeof *dev, cmp_double);
    double mad_sd = 1.4826 * median_sorted(dev, n);
    free(dev);
    free(sorted);
    double cut = INFINITY;
    if (d->kind == DETECTOR_KIND_CONTINUOUS && d->cfg.outlier_mads > 0 && mad_sd > 0)
        cut = d->cfg.outlier_mads * mad_sd;

    double *kept = xmalloc(n * sizeof *kept), *clipped = xmalloc(n * sizeof *clipped);
    size_t nk = 0;
    for (size_t i = 0; i < n; i++) {
        double x = d->warm[i];
        if (fabs(x - med) <= cut)
            kept[nk++] = x;
        clipped[i] = fmin(fmax(x, med - cut), med + cut);
    }
    double mean, var;
    stats_mean_var(kept, nk, &mean, &var);
    double sd = sqrt(var);
    if (d->kind == DETECTOR_KIND_PASS_FAIL) {
        /* Jeffreys-style shrinkage keeps a warm-up of all passes from giving sd 0. */
        double passes = mean * (double)nk;
        mean = (passes + 0.5) / ((double)nk + 1);
        sd = sqrt(mean * (1 - mean));
    } else {
        sd = fmax(sd, d->cfg.min_sd);
    }

    /* Lag-1 autocorrelation, applied only when clearly there (2 standard errors). */
    double rho = 0;
    if (d->cfg.autocorrelation) {
        double cm, cv;
        stats_mean_var(clipped, n, &cm, &cv);
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            den += (clipped[i] - cm) * (clipped[i] - cm);
            if (i + 1 < n)
                num += (clipped[i] - cm) * (clipped[i + 1] - cm);
        }
        double r = den > 0 ? num / den : 0;
        if (r > 2 / sqrt((double)n))
            rho = fmin(r, d->cfg.max_rho);
    }
    free(clipped);
    d->mean = mean;
    d->sd = sd;
    d->rho = rho;
    d->sd_lr = sd * sqrt((1 + rho) / (1 - rho));
    d->inv_scale = 1 / d->sd_lr;

    /* Uncertainty of the baseline, in long-run sds. */
    struct calibration cal = {.u = kept, .n = nk};
    double m3 = 0, m4 = 0;
    for (size_t i = 0; i < nk; i++) {
        kept[i] = (kept[i] - mean) / sd;
        m3 += kept[i] * kept[i] * kept[i];
        m4 += kept[i] * kept[i] * kept[i] * kept[i];
    }
    /* Only a continuous scale has a free shape (see README: estimation error). */
    cal.beta = nk > 0 && d->kind == DETECTOR_KIND_CONTINUOUS ? -m3 / (double)nk : 0;
    double kurt = nk > 0 ? m4 / (double)nk : 3;
    kurt = fmax(kurt, 1.5);
    cal.se2 = 1 / (double)nk;
    cal.sv2 = (kurt - 1) / (double)nk;
    if (rho > 0)
        cal.sv2 += 4 / ((double)nk * (1 - rho * rho));

    /* Cut charts for Likert scores: one per boundary between observed levels. */
    double cuts[MAX_CUTS], cut_p[MAX_CUTS];
    size_t n_cuts = 0;
    if (d->kind == DETECTOR_KIND_LIKERT && d->cfg.cut_k > 0) {
        double *lv = xmemdup(d->warm, n * sizeof *lv);
        qsort(lv, n, sizeof *lv, cmp_double);
        for (size_t i = 0; i + 1 < n && n_cuts < MAX_CUTS; i++) {
            if (lv[i] == lv[i + 1])
                continue;
            /* Shrunk share at or below lv[i]; cuts with a share near 0 or 1 say little. */
            double p = ((double)(i + 1) + 0.5) / ((double)n + 1);
            if (p >= 0.02 && p <= 0.98) {
                cuts[n_cuts] = lv[i];
                cut_p[n_cuts++] = p;
            }
        }
        free(lv);
    }
    d->n_charts = d->cfg.n_charts + n_cuts;
    double rate = 1 / (d->cfg.target_arl0 * (double)d->n_charts);
    memset(d->charts, 0, sizeof d->charts);
    for (size_t c = 0; c < d->cfg.n_charts; c++) {
        struct chart *ch = &d->charts[c];
        ch->k = d->cfg.reference_k[c];
        ch->h = chart_threshold(d, &cal, ch->k, rate);
        ch->start = d->n;
    }
    double *uc = xmalloc(n * sizeof *uc);
    double inflate = sqrt((1 + rho) / (1 - rho));
    for (size_t j = 0; j < n_cuts; j++) {
        struct chart *ch = &d->charts[d->cfg.n_charts + j];
        double p = cut_p[j], sdc = sqrt(p * (1 - p));
        ch->is_cut = 1;
        ch->cut = cuts[j];
        ch->p = p;
        ch->inv_sd = 1 / (sdc * inflate);
        ch->k = d->cfg.cut_k;
        /* Standardised so that -u - k is the chart's increment, as for mean charts. */
        double c4 = 0;
        for (size_t i = 0; i < n; i++) {
            uc[i] = -(((d->warm[i] <= cuts[j]) ? 1.0 : 0.0) - p) / sdc;
            c4 += uc[i] * uc[i] * uc[i] * uc[i];
        }
        struct calibration cc = {.u = uc, .n = n, .se2 = 1 / (double)n, .beta = 0};
        cc.sv2 = (fmax(c4 / (double)n, 1.5) - 1) / (double)n;
        if (rho > 0)
            cc.sv2 += 4 / ((double)n * (1 - rho * rho));
        ch->h = chart_threshold(d, &cc, ch->k, rate);
        ch->start = d->n;
    }
    free(uc);
    memset(&d->recovery, 0, sizeof d->recovery);
    free(kept);
    d->state = DETECTOR_OK;
    d->since = d->n;
}

/* ---- monitoring ---- */

static void ring_push(struct detector *d, double x)
{
    d->ring[d->ring_head] = x;
    d->ring_head = d->ring_head + 1 == d->cfg.window_samples ? 0 : d->ring_head + 1;
    d->ring_count++;
}

/* Copies the last m (<= window) scores, oldest first. */
static double *ring_tail(const struct detector *d, size_t m)
{
    double *out = xmalloc((m ? m : 1) * sizeof *out);
    size_t cap = d->cfg.window_samples;
    for (size_t i = 0; i < m; i++)
        out[i] = d->ring[(d->ring_head + cap - m + i) % cap];
    return out;
}

static double drop_p_value(const struct detector *d, uint64_t change_point)
{
    uint64_t m64 = d->n + 1 - change_point;
    size_t avail =
        (size_t)(d->ring_count < d->cfg.window_samples ? d->ring_count : d->cfg.window_samples);
    size_t m = m64 < avail ? (size_t)m64 : avail;
    if (m == 0)
        return NAN;
    double *recent = ring_tail(d, m);
    struct stats_test t;
    double p = NAN;
    if (d->kind == DETECTOR_KIND_PASS_FAIL) {
        size_t k1 = 0, k2 = 0;
        for (size_t i = 0; i < m; i++)
            k1 += recent[i] >= 0.5;
        for (size_t i = 0; i < d->n_warm; i++)
            k2 += d->warm[i] >= 0.5;
        if (stats_two_proportion_z_test(k1, m, k2, d->n_warm, STATS_LESS, &t) == ASSAY_OK)
            p = t.p_value;
    } else if (stats_mann_whitney_u_test(recent, m, d->warm, d->n_warm, STATS_LESS, &t) ==
               ASSAY_OK) {
        p = t.p_value;
    }
    free(recent);
    return p;
}

/*
 * The threshold of the upward chart with reference r: calibrated as if the
 * drift while the drop persists were only -r (it is about -2r), at the design
 * rate, so a clear during a persisting drop is rarer than a false alarm.
 */
static double recovery_threshold(const struct detector *d, double r)
{
    double n = (double)d->n_warm;
    return calibrate_h(r, 2.0, 1 / n, 2 / n, 0, 1 / d->cfg.target_arl0);
}

static void raise_alarm(struct detector *d, const struct chart *ch, double p_value,
                        struct detector_event *ev)
{
    uint64_t idx = d->n;
    double cur = ch->count ? ch->sum / (double)ch->count : d->mean;
    ev->state = DETECTOR_ALARM;
    ev->index = idx;
    ev->change_point = ch->start;
    ev->baseline_mean = d->mean;
    ev->current_mean = cur;
    ev->effect_size = (cur - d->mean) / d->sd;
    ev->p_value = p_value;
    ev->statistic = ch->s;
    ev->threshold = ch->h;
    /*
     * Recovery reference: a third of the estimated drop. Under a drop that
     * persists, the upward chart then drifts down at two thirds of it, which
     * leaves room for the drop estimate's upward bias (it is measured where a
     * chart happened to cross).
     */
    double drop = (d->mean - cur) * d->inv_scale;
    double r = fmax(d->cfg.min_recovery_k, drop / 3);
    d->recovery = (struct chart){.k = r, .h = recovery_threshold(d, r), .start = idx + 1};
    d->state = DETECTOR_ALARM;
    d->since = idx;
}

static void clear_alarm(struct detector *d, struct detector_event *ev)
{
    uint64_t idx = d->n;
    const struct chart *rc = &d->recovery;
    double cur = rc->count ? rc->sum / (double)rc->count : d->mean;
    ev->state = DETECTOR_OK;
    ev->index = idx;
    ev->change_point = rc->start;
    ev->baseline_mean = d->mean;
    ev->current_mean = cur;
    ev->effect_size = (cur - d->mean) / d->sd;
    ev->p_value = NAN;
    ev->statistic = rc->s;
    ev->threshold = rc->h;
    for (size_t c = 0; c < d->n_charts; c++) {
        struct chart *ch = &d->charts[c];
        ch->s = 0;
        ch->sum = 0;
        ch->count = 0;
        ch->start = idx + 1;
    }
    d->state = DETECTOR_OK;
    d->since = idx;
}

int detector_update(struct detector *d, double x, struct detector_event *ev)
{
    int changed = 0;
    if (d->state == DETECTOR_WARMING_UP) {
        d->warm[d->n_warm++] = x;
        ring_push(d, x);
        if (d->n_warm == d->cfg.warmup_samples) {
            d->n++;
            finish_warmup(d);
            return 0;
        }
        d->n++;
        return 0;
    }
    ring_push(d, x);
    double z = (x - d->mean) * d->inv_scale;
    if (d->state == DETECTOR_OK) {
        const struct chart *fired = NULL;
        double best = 0;
        for (size_t c = 0; c < d->n_charts; c++) {
            struct chart *ch = &d->charts[c];
            double g = ch->is_cut ? ((x <= ch->cut ? 1.0 : 0.0) - ch->p) * ch->inv_sd : -z;
            double s = ch->s + g - ch->k;
            if (s <= 0) {
                ch->s = 0;
                ch->sum = 0;
                ch->count = 0;
                ch->start = d->n + 1;
            } else {
                ch->s = s;
                ch->sum += x;
                ch->count++;
                /* Drops only: the scores since the chart left zero must average lower. */
                if (s > ch->h && s / ch->h > best && ch->sum < d->mean * (double)ch->count) {
                    best = s / ch->h;
                    fired = ch;
                }
            }
        }
        /*
         * Confirmation: the scores since the change point must also be lower
         * than the warm-up's by a fixed-sample test; if not yet, the chart
         * stays above its threshold and the test is retried 8 samples later.
         */
        if (fired && d->n >= d->next_confirm) {
            double p = drop_p_value(d, fired->start);
            if (p <= d->cfg.confirm_alpha) {
                raise_alarm(d, fired, p, ev);
                changed = 1;
            } else {
                d->next_confirm = d->n + 8;
            }
        }
    } else {
        struct chart *rc = &d->recovery;
        double u = rc->s + z + rc->k;
        if (u <= 0) {
            rc->s = 0;
            rc->sum = 0;
            rc->count = 0;
            rc->start = d->n + 1;
        } else {
            rc->s = u;
            rc->sum += x;
            rc->count++;
            if (u > rc->h) {
                clear_alarm(d, ev);
                changed = 1;
            }
        }
    }
    d->n++;
    return changed;
}

/* ---- lifecycle ---- */

static struct detector *alloc_detector(const struct detector_config *c)
{
    struct detector *d = xcalloc(1, sizeof *d);
    d->cfg = *c;
    d->warm = xmalloc(c->warmup_samples * sizeof *d->warm);
    d->ring = xcalloc(c->window_samples, sizeof *d->ring);
    d->state = DETECTOR_WARMING_UP;
    d->mean = d->sd = d->sd_lr = NAN;
    return d;
}

struct detector *detector_new(const struct detector_config *c)
{
    return alloc_detector(c);
}

void detector_free(struct detector *d)
{
    if (!d)
        return;
    free(d->warm);
    free(d->ring);
    free(d);
}

void detector_rebaseline(struct detector *d)
{
    d->state = DETECTOR_WARMING_UP;
    d->n_warm = 0;
    d->since = d->n;
    d->mean = d->sd = d->sd_lr = NAN;
    d->rho = 0;
    memset(d->charts, 0, sizeof d->charts);
    d->n_charts = 0;
    memset(&d->recovery, 0, sizeof d->recovery);
}

enum detector_state detector_state_get(const struct detector *d)
{
    return d->state;
}

void detector_summary_get(const struct detector *d, struct detector_summary *s)
{
    s->state = d->state;
    s->kind = d->state == DETECTOR_WARMING_UP ? d->cfg.kind : d->kind;
    s->count = d->n;
    s->since = d->since;
    s->baseline_mean = d->mean;
    s->baseline_sd = d->sd;
    s->statistic = 0;
    s->threshold = NAN;
    if (d->state == DETECTOR_ALARM) {
        s->statistic = d->recovery.s;
        s->threshold = d->recovery.h;
    } else if (d->state == DETECTOR_OK) {
        double best = -1;
        for (size_t c = 0; c < d->n_charts; c++)
            if (d->charts[c].s / d->charts[c].h > best) {
                best = d->charts[c].s / d->charts[c].h;
                s->statistic = d->charts[c].s;
                s->threshold = d->charts[c].h;
            }
    }
}

double detector_recent_mean(const struct detector *d, uint64_t from)
{
    size_t cap = d->cfg.window_samples;
    size_t avail = (size_t)(d->ring_count < cap ? d->ring_count : cap);
    uint64_t want = from < d->n ? d->n - from : 0;
    size_t m = want < avail ? (size_t)want : avail;
    if (m == 0)
        return NAN;
    double sum = 0;
    for (size_t i = 0; i < m; i++)
        sum += d->ring[(d->ring_head + cap - m + i) % cap];
    return sum / (double)m;
}

/* ---- state as JSON ---- */

static json_t *config_to_json(const struct detector_config *c)
{
    json_t *k = json_array();
    for (size_t i = 0; i < c->n_charts; i++)
        json_array_append_new(k, json_real(c->reference_k[i]));
    return json_pack("{s:I, s:f, s:o, s:s, s:f, s:f, s:b, s:f, s:I, s:f, s:f, s:f}",
                     "warmup_samples", (json_int_t)c->warmup_samples, "target_arl0", c->target_arl0,
                     "reference_k", k, "kind", detector_kind_name(c->kind), "min_sd", c->min_sd,
                     "outlier_mads", c->outlier_mads, "autocorrelation", c->autocorrelation,
                     "max_rho", c->max_rho, "window_samples", (json_int_t)c->window_samples,
                     "min_recovery_k", c->min_recovery_k, "cut_k", c->cut_k, "confirm_alpha",
                     c->confirm_alpha);
}

/* Doubles that may be NaN (never in a running detector's numbers) go out as null. */
static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *chart_to_json(const struct chart *c)
{
    json_t *j =
        json_pack("{s:o, s:o, s:o, s:I, s:o, s:I}", "k", num(c->k), "h", num(c->h), "s", num(c->s),
                  "start", (json_int_t)c->start, "sum", num(c->sum), "count", (json_int_t)c->count);
    if (c->is_cut) {
        json_object_set_new(j, "cut", json_real(c->cut));
        json_object_set_new(j, "p", json_real(c->p));
        json_object_set_new(j, "inv_sd", json_real(c->inv_sd));
    }
    return j;
}

static json_t *doubles_to_json(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

json_t *detector_to_json(const struct detector *d)
{
    json_t *charts = json_array();
    for (size_t c = 0; c < d->n_charts; c++)
        json_array_append_new(charts, chart_to_json(&d->charts[c]));
    size_t cap = d->cfg.window_samples;
    size_t m = (size_t)(d->ring_count < cap ? d->ring_count : cap);
    double *recent = ring_tail(d, m);
    json_t *j =
        json_pack("{s:i, s:o, s:s, s:s, s:I, s:I, s:o, s:{s:o, s:o, s:o, s:o}, s:o, s:o, s:o, s:I}",
                  "version", STATE_VERSION, "config", config_to_json(&d->cfg), "state",
                  detector_state_name(d->state), "kind", detector_kind_name(d->kind), "count",
                  (json_int_t)d->n, "since", (json_int_t)d->since, "warmup",
                  doubles_to_json(d->warm, d->n_warm), "baseline", "mean", num(d->mean), "sd",
                  num(d->sd), "sd_lr", num(d->sd_lr), "rho", num(d->rho), "charts", charts,
                  "recovery", chart_to_json(&d->recovery), "recent", doubles_to_json(recent, m),
                  "recent_total", (json_int_t)d->ring_count);
    json_object_set_new(j, "next_confirm", json_integer((json_int_t)d->next_confirm));
    free(recent);
    return j;
}

static int get_double(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);
    if (json_is_null(v)) {
        *out = NAN;
        return 0;
    }
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 0;
}

static int get_u64(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int chart_from_json(const json_t *o, struct chart *c)
{
    if (!json_is_object(o))
        return -1;
    if (get_double(o, "k", &c->k) || get_double(o, "h", &c->h) || get_double(o, "s", &c->s) ||
        get_u64(o, "start", &c->start) || get_double(o, "sum", &c->sum) ||
        get_u64(o, "count", &c->count))
        return -1;
    c->is_cut = json_object_get(o, "cut") != NULL;
    if (c->is_cut && (get_double(o, "cut", &c->cut) || get_double(o, "p", &c->p) ||
                      get_double(o, "inv_sd", &c->inv_sd)))
        return -1;
    return 0;
}

struct detector *detector_from_json(const json_t *j, char *errbuf)
{
    struct detector_config cfg;
    detector_config_init(&cfg);
    char cfg_err[ASSAY_ERRBUF_SIZE];
    if (!json_is_object(j) || json_integer_value(json_object_get(j, "version")) != STATE_VERSION) {
        assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "detector state: not a version %d object",
                         STATE_VERSION);
        return NULL;
    }
    if (detector_config_from_json(&cfg, json_object_get(j, "config"), cfg_err) != ASSAY_OK) {
        assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "detector state: %s", cfg_err);
        return NULL;
    }
    struct detector *d = alloc_detector(&cfg);
    const char *what = "state";
    const char *st = json_string_value(json_object_get(j, "state"));
    const char *kind = json_string_value(json_object_get(j, "kind"));
    int state = -1;
    for (int i = 0; st && i < 3; i++)
        if (strcmp(st, state_names[i]) == 0)
            state = i;
    if (state < 0 || !kind || kind_parse(kind, &d->kind) != 0)
        goto bad;
    d->state = (enum detector_state)state;
    what = "counts";
    if (get_u64(j, "count", &d->n) || get_u64(j, "since", &d->since))
        goto bad;
    what = "warmup";
    const json_t *warm = json_object_get(j, "warmup");
    if (!json_is_array(warm) || json_array_size(warm) > cfg.warmup_samples ||
        (d->state != DETECTOR_WARMING_UP && json_array_size(warm) != cfg.warmup_samples))
        goto bad;
    d->n_warm = json_array_size(warm);
    for (size_t i = 0; i < d->n_warm; i++) {
        const json_t *v = json_array_get(warm, i);
        if (!json_is_number(v))
            goto bad;
        d->warm[i] = json_number_value(v);
    }
    what = "baseline";
    const json_t *b = json_object_get(j, "baseline");
    if (!json_is_object(b) || get_double(b, "mean", &d->mean) || get_double(b, "sd", &d->sd) ||
        get_double(b, "sd_lr", &d->sd_lr) || get_double(b, "rho", &d->rho))
        goto bad;
    if (d->state != DETECTOR_WARMING_UP && !(d->sd_lr > 0 && isfinite(d->mean)))
        goto bad;
    d->inv_scale = 1 / d->sd_lr;
    what = "charts";
    const json_t *charts = json_object_get(j, "charts");
    d->n_charts = json_array_size(charts);
    if (!json_is_array(charts) || (d->state != DETECTOR_WARMING_UP && d->n_charts < cfg.n_charts) ||
        d->n_charts > MAX_ACTIVE)
        goto bad;
    for (size_t c = 0; c < d->n_charts; c++)
        if (chart_from_json(json_array_get(charts, c), &d->charts[c]))
            goto bad;
    if (chart_from_json(json_object_get(j, "recovery"), &d->recovery))
        goto bad;
    what = "next_confirm";
    if (get_u64(j, "next_confirm", &d->next_confirm))
        goto bad;
    what = "recent";
    const json_t *recent = json_object_get(j, "recent");
    if (!json_is_array(recent) || json_array_size(recent) > cfg.window_samples ||
        get_u64(j, "recent_total", &d->ring_count) || d->ring_count < json_array_size(recent))
        goto bad;
    for (size_t i = 0; i < json_array_size(recent); i++) {
        const json_t *v = json_array_get(recent, i);
        if (!json_is_number(v))
            goto bad;
        d->ring[i] = json_number_value(v);
    }
    /* The ring was written oldest first from slot 0; the next slot follows the newest. */
    d->ring_head = json_array_size(recent) % cfg.window_samples;
    return d;
bad:
    assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "detector state: bad or missing %s", what);
    detector_free(d);
    return NULL;
}
