/*
 * monitor/agreement: judge-versus-human agreement metrics for calibration
 * runs (see agreement.h for the definitions).
 */
#include "monitor/agreement.h"

#include "common/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KAPPA_LEVELS_MAX 101

struct ranked {
    double v;
    size_t i;
};

static int by_value(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Average ranks (1-based) of x into rank. */
static void rank_average(const double *x, size_t n, double *rank)
{
    struct ranked *r = xcalloc(n, sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i] = (struct ranked){x[i], i};
    qsort(r, n, sizeof *r, by_value);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && r[j + 1].v == r[i].v)
            j++;
        double avg = ((double)i + (double)j) / 2.0 + 1.0;
        for (size_t k = i; k <= j; k++)
            rank[r[k].i] = avg;
        i = j + 1;
    }
    free(r);
}

static bool pearson(const double *x, const double *y, size_t n, double *rho)
{
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0)
        return false;
    *rho = sxy / sqrt(sxx * syy);
    return true;
}

bool agreement_spearman(const double *x, const double *y, size_t n, double *rho)
{
    if (n < 2 || !x || !y)
        return false;
    double *rx = xcalloc(n, sizeof *rx), *ry = xcalloc(n, sizeof *ry);
    rank_average(x, n, rx);
    rank_average(y, n, ry);
    bool ok = pearson(rx, ry, n, rho);
    free(rx);
    free(ry);
    return ok;
}

bool agreement_weighted_kappa(const double *a, const double *b, size_t n, int min, int max,
                              double *kappa)
{
    if (n == 0 || !a || !b || max <= min || max - min + 1 > KAPPA_LEVELS_MAX)
        return false;
    size_t k = (size_t)(max - min + 1);
    double *obs = xcalloc(k * k, sizeof *obs);
    double *ma = xcalloc(k, sizeof *ma), *mb = xcalloc(k, sizeof *mb);
    bool ok = false;
    for (size_t i = 0; i < n; i++) {
        double ra = nearbyint(a[i]) - min, rb = nearbyint(b[i]) - min;
        if (!(ra >= 0 && ra < (double)k && rb >= 0 && rb < (double)k))
            goto out;
        size_t ia = (size_t)ra, ib = (size_t)rb;
        obs[ia * k + ib] += 1;
        ma[ia] += 1;
        mb[ib] += 1;
    }
    double num = 0, den = 0, d2 = (double)((k - 1) * (k - 1));
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double w = ((double)i - (double)j) * ((double)i - (double)j) / d2;
            num += w * obs[i * k + j] / (double)n;
            den += w * (ma[i] / (double)n) * (mb[j] / (double)n);
        }
    if (den > 0) {
        *kappa = 1.0 - num / den;
        ok = true;
    }
out:
    free(obs);
    free(ma);
    free(mb);
    return ok;
}

enum assay_err agreement_compute(const double *human, const double *judge, size_t n,
                                 const struct agreement_scale *sc, struct agreement *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0 || !human || !judge || !sc || !(sc->max > sc->min))
        return ASSAY_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++)
        if (!(human[i] >= sc->min && human[i] <= sc->max) ||
            !(judge[i] >= sc->min && judge[i] <= sc->max))
            return ASSAY_ERR_INVALID_ARGUMENT;
    out->n = n;
    double abs_sum = 0;
    size_t tp = 0, fp = 0, fn = 0, same = 0;
    for (size_t i = 0; i < n; i++) {
        abs_sum += fabs(judge[i] - human[i]);
        bool hp = human[i] >= sc->pass_threshold, jp = judge[i] >= sc->pass_threshold;
        tp += hp && jp;
        fp += !hp && jp;
        fn += hp && !jp;
        same += hp == jp;
    }
    out->mae = abs_sum / (double)n;
    out->accuracy = (double)same / (double)n;
    if (tp + fp + fn > 0) {
        out->has_f1 = true;
        out->f1 = 2.0 * (double)tp / (2.0 * (double)tp + (double)fp + (double)fn);
    }
    out->has_spearman = agreement_spearman(human, judge, n, &out->spearman);
    if (sc->integer && sc->min == floor(sc->min) && sc->max == floor(sc->max))
        out->has_kappa =
            agreement_weighted_kappa(human, judge, n, (int)sc->min, (int)sc->max, &out->kappa);
    double h = out->has_kappa      ? out->kappa
               : out->has_spearman ? out->spearman
                                   : 1.0 - out->mae / (sc->max - sc->min);
    out->headline = h < 0 ? 0 : h > 1 ? 1 : h;
    return ASSAY_OK;
}
