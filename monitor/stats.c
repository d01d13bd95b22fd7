/*
 * monitor/stats: distribution functions (through the regularised incomplete
 * gamma and beta functions, evaluated by series and Lentz's continued
 * fraction), quantiles by safeguarded root finding, and the classical tests.
 * Called by monitor/detector for an alarm's p-value and by the golden-set
 * comparison; see stats.h for the contracts.
 */
#include "monitor/stats.h"

#include "common/alloc.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_LIMIT 50 /* exact rank distributions below this many per sample */

/* ---- distributions ---- */

double stats_normal_cdf(double x)
{
    return 0.5 * erfc(-x / M_SQRT2);
}

double stats_normal_sf(double x)
{
    return 0.5 * erfc(x / M_SQRT2);
}

/*
 * Acklam's rational approximation (relative error below 1.2e-9), refined by
 * two Halley steps on erfc, which bring it to full double precision.
 */
double stats_normal_quantile(double p)
{
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
                               -2.759285104469687e+02, 1.383577518672690e+02,
                               -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
                               -1.556989798598866e+02, 6.680131188771972e+01,
                               -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
                               -2.400758277161838e+00, -2.549732539343734e+00,
                               4.374664141464968e+00,  2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    if (isnan(p) || p < 0 || p > 1)
        return NAN;
    if (p == 0)
        return -INFINITY;
    if (p == 1)
        return INFINITY;
    double x;
    const double plow = 0.02425;
    if (p < plow) {
        double q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - plow) {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
    } else {
        double q = sqrt(-2 * log1p(-p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    for (int i = 0; i < 2; i++) {
        /* Work in the smaller tail so that the residual keeps its precision. */
        double e = p < 0.5 ? stats_normal_cdf(x) - p : (1 - p) - stats_normal_sf(x);
        double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
        x = x - u / (1 + x * u / 2);
    }
    return x;
}

/* Series for P(a, x), x < a + 1. */
static double gamma_p_series(double a, double x)
{
    double ap = a, sum = 1.0 / a, del = sum;
    for (int n = 0; n < 10000; n++) {
        ap += 1;
        del *= x / ap;
        sum += del;
        if (fabs(del) < fabs(sum) * 1e-16)
            break;
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}

/* Continued fraction (modified Lentz) for Q(a, x), x >= a + 1. */
static double gamma_q_cf(double a, double x)
{
    const double tiny = 1e-300;
    double b = x + 1 - a, c = 1 / tiny, d = 1 / b, h = d;
    for (int i = 1; i < 10000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < tiny)
            d = tiny;
        c = b + an / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16)
            break;
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}

double stats_gamma_p(double a, double x)
{
    if (isnan(a) || isnan(x) || a <= 0)
        return NAN;
    if (x <= 0)
        return 0;
    if (x < a + 1)
        return gamma_p_series(a, x);
    return 1 - gamma_q_cf(a, x);
}

static double gamma_q(double a, double x)
{
    if (x <= 0)
        return 1;
    if (x < a + 1)
        return 1 - gamma_p_series(a, x);
    return gamma_q_cf(a, x);
}

/* Continued fraction for I_x(a, b) (modified Lentz), used where it converges fast. */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double qab = a + b, qap = a + 1, qam = a - 1;
    double c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny)
        d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m < 10000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny)
            d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny)
            c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-16)
            break;
    }
    return h;
}

double stats_beta_inc(double a, double b, double x)
{
    if (isnan(a) || isnan(b) || isnan(x) || a <= 0 || b <= 0)
        return NAN;
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double lfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2))
        return exp(lfront) * beta_cf(a, b, x) / a;
    return 1 - exp(lfront) * beta_cf(b, a, 1 - x) / b;
}

/* P(T <= t) for t <= 0, computed directly so that the lower tail keeps its precision. */
static double t_lower_tail(double t, double df)
{
    if (isinf(df))
        return stats_normal_cdf(t);
    double t2 = t * t;
    /* I_x(df/2, 1/2) with x = df / (df + t^2); use 1 - x = t^2/(df + t^2) when x is near 1. */
    double x = df / (df + t2);
    if (x > 0.9)
        return 0.5 * (1 - stats_beta_inc(0.5, df / 2, t2 / (df + t2)));
    return 0.5 * stats_beta_inc(df / 2, 0.5, x);
}

double stats_t_cdf(double t, double df)
{
    if (isnan(t) || isnan(df) || df <= 0)
        return NAN;
    if (t <= 0)
        return t_lower_tail(t, df);
    return 1 - t_lower_tail(-t, df);
}

/*
 * Solves cdf(x) = p for an increasing cdf by bracketing then bisection,
 * starting from the guess x0. Quantiles are not on any hot path.
 */
static double solve_increasing(double (*cdf)(double, double), double param, double p, double x0,
                               double floor_x)
{
    double step = fmax(1.0, fabs(x0));
    double lo = x0, hi = x0;
    while (cdf(lo, param) > p) {
        lo -= step;
        step *= 2;
        if (lo < floor_x) {
            lo = floor_x;
            break;
        }
    }
    step = fmax(1.0, fabs(x0));
    while (cdf(hi, param) < p) {
        hi += step;
        step *= 2;
        if (hi > 1e300)
            return INFINITY;
    }
    for (int i = 0; i < 400 && hi - lo > 4 * DBL_EPSILON * fmax(fabs(lo), fabs(hi)); i++) {
        double mid = lo + (hi - lo) / 2;
        if (mid <= lo || mid >= hi)
            break;
        if (cdf(mid, param) < p)
            lo = mid;
        else
            hi = mid;
    }
    return lo + (hi - lo) / 2;
}

double stats_t_quantile(double p, double df)
{
    if (isnan(p) || isnan(df) || df <= 0 || p < 0 || p > 1)
        return NAN;
    if (p == 0)
        return -INFINITY;
    if (p == 1)
        return INFINITY;
    if (p > 0.5)
        return -stats_t_quantile(1 - p, df);
    if (p == 0.5)
        return 0;
    if (df == 1)
        return tan(M_PI * (p - 0.5));
    return solve_increasing(stats_t_cdf, df, p, stats_normal_quantile(p), -INFINITY);
}

double stats_chi2_cdf(double x, double df)
{
    if (isnan(x) || isnan(df) || df <= 0)
        return NAN;
    return stats_gamma_p(df / 2, x / 2);
}

/* The upper tail as a decreasing function turned increasing: -Q. */
static double neg_chi2_sf(double x, double df)
{
    return -gamma_q(df / 2, x / 2);
}

double stats_chi2_quantile(double p, double df)
{
    if (isnan(p) || isnan(df) || df <= 0 || p < 0 || p > 1)
        return NAN;
    if (p == 0)
        return 0;
    if (p == 1)
        return INFINITY;
    /* Wilson-Hilferty starting point. */
    double z = stats_normal_quantile(p), v = 2 / (9 * df);
    double x0 = df * pow(fmax(1 - v + z * sqrt(v), 0.01), 3);
    if (p > 0.5)
        return solve_increasing(neg_chi2_sf, df, -(1 - p), x0, 0);
    return solve_increasing(stats_chi2_cdf, df, p, x0, 0);
}

/* ---- tests ---- */

void stats_mean_var(const double *x, size_t n, double *mean, double *var)
{
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++) { /* Welford */
        double d = x[i] - m;
        m += d / (double)(i + 1);
        s += d * (x[i] - m);
    }
    *mean = m;
    *var = n > 1 ? s / (double)(n - 1) : 0;
}

/* p-value of a statistic with a symmetric null from its lower and upper tail probabilities. */
static double p_from_tails(enum stats_alternative alt, double lower, double upper)
{
    double p;
    switch (alt) {
    case STATS_LESS:
        p = lower;
        break;
    case STATS_GREATER:
        p = upper;
        break;
    default:
        p = 2 * fmin(lower, upper);
        break;
    }
    return fmin(1.0, fmax(0.0, p));
}

enum assay_err stats_welch_t_test(const double *x, size_t nx, const double *y, size_t ny,
                                  enum stats_alternative alt, struct stats_test *out)
{
    if (!x || !y || nx < 2 || ny < 2)
        return ASSAY_ERR_INVALID_ARGUMENT;
    double mx, vx, my, vy;
    stats_mean_var(x, nx, &mx, &vx);
    stats_mean_var(y, ny, &my, &vy);
    double sx = vx / (double)nx, sy = vy / (double)ny, se2 = sx + sy;
    if (!(se2 > 0))
        return ASSAY_ERR_INVALID_ARGUMENT;
    double t = (mx - my) / sqrt(se2);
    double df = se2 * se2 / (sx * sx / (double)(nx - 1) + sy * sy / (double)(ny - 1));
    out->statistic = t;
    out->df = df;
    out->z = 0;
    out->exact = 1;
    out->p_value = p_from_tails(alt, stats_t_cdf(t, df), stats_t_cdf(-t, df));
    return ASSAY_OK;
}

struct ranked {
    double v;
    size_t i; /* original position; for the rank-sum: i < nx is from x */
};

static int cmp_ranked(const void *a, const void *b)
{
    double x = ((const struct ranked *)a)->v, y = ((const struct ranked *)b)->v;
    return (x > y) - (x < y);
}

/*
 * Sorts r[0..n) and writes mid-ranks (1-based) into rank[] by original
 * position. Returns sum(t^3 - t) over groups of ties.
 */
static double midranks(struct ranked *r, size_t n, double *rank)
{
    qsort(r, n, sizeof *r, cmp_ranked);
    double ties = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && r[j].v == r[i].v)
            j++;
        double t = (double)(j - i), mid = ((double)i + 1 + (double)j) / 2;
        for (size_t k = i; k < j; k++)
            rank[r[k].i] = mid;
        ties += t * t * t - t;
        i = j;
    }
    return ties;
}

/* Number of orderings giving each U in [0, m*n] for samples of m and n without ties. */
static double *mann_whitney_counts(size_t m, size_t n)
{
    size_t top = m * n + 1;
    double *f = xcalloc((m + 1) * top, sizeof *f);
    for (size_t j = 0; j <= m; j++)
        f[j * top] = 1; /* n' = 0: only U = 0 */
    /* f_{j,n'}(u) = f_{j,n'-1}(u) + f_{j-1,n'}(u - n'): the largest value is from y or from x. */
    for (size_t np = 1; np <= n; np++)
        for (size_t j = 1; j <= m; j++)
            for (size_t u = top; u-- > np;)
                f[j * top + u] += f[(j - 1) * top + u - np];
    double *res = xmemdup(f + m * top, top * sizeof *f);
    free(f);
    return res;
}

enum assay_err stats_mann_whitney_u_test(const double *x, size_t nx, const double *y, size_t ny,
                                         enum stats_alternative alt, struct stats_test *out)
{
    if (!x || !y || nx < 1 || ny < 1)
        return ASSAY_ERR_INVALID_ARGUMENT;
    size_t n = nx + ny;
    struct ranked *r = xmalloc(n * sizeof *r);
    double *rank = xmalloc(n * sizeof *rank);
    for (size_t i = 0; i < nx; i++)
        r[i] = (struct ranked){x[i], i};
    for (size_t i = 0; i < ny; i++)
        r[nx + i] = (struct ranked){y[i], nx + i};
    double ties = midranks(r, n, rank);
    double rx = 0;
    for (size_t i = 0; i < nx; i++)
        rx += rank[i];
    free(r);
    free(rank);
    double dnx = (double)nx, dny = (double)ny, dn = (double)n;
    double u = rx - dnx * (dnx + 1) / 2;
    out->statistic = u;
    out->df = 0;
    if (ties == 0 && nx < EXACT_LIMIT && ny < EXACT_LIMIT) {
        double *cnt = mann_whitney_counts(nx, ny);
        size_t top = nx * ny, ui = (size_t)llround(u);
        double total = 0, lower = 0, upper = 0;
        for (size_t k = 0; k <= top; k++) {
            total += cnt[k];
            if (k <= ui)
                lower += cnt[k];
            if (k >= ui)
                upper += cnt[k];
        }
        free(cnt);
        out->z = 0;
        out->exact = 1;
        out->p_value = p_from_tails(alt, lower / total, upper / total);
        return ASSAY_OK;
    }
    double mean = dnx * dny / 2;
    double var = dnx * dny / 12 * ((dn + 1) - ties / (dn * (dn - 1)));
    if (!(var > 0)) {
        out->z = 0;
        out->exact = 0;
        out->p_value = 1;
        return ASSAY_OK;
    }
    double sd = sqrt(var), d = u - mean;
    double zl = (d + 0.5) / sd, zg = (d - 0.5) / sd;
    out->exact = 0;
    if (alt == STATS_LESS) {
        out->z = zl;
        out->p_value = stats_normal_cdf(zl);
    } else if (alt == STATS_GREATER) {
        out->z = zg;
        out->p_value = stats_normal_sf(zg);
    } else {
        double z = (fabs(d) - 0.5) / sd;
        out->z = d < 0 ? -z : z;
        out->p_value = fmin(1, 2 * stats_normal_sf(z));
    }
    return ASSAY_OK;
}

enum assay_err stats_wilcoxon_signed_rank_test(const double *x, const double *y, size_t n,
                                               enum stats_alternative alt, struct stats_test *out)
{
    if (!x || !y || n < 1)
        return ASSAY_ERR_INVALID_ARGUMENT;
    struct ranked *r = xmalloc(n * sizeof *r);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - y[i];
        if (d != 0)
            r[m++] = (struct ranked){fabs(d), i};
    }
    if (m == 0) {
        free(r);
        return ASSAY_ERR_INVALID_ARGUMENT;
    }
    double *rank = xcalloc(n, sizeof *rank);
    double ties = midranks(r, m, rank);
    double v = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] - y[i] > 0)
            v += rank[i];
    free(r);
    free(rank);
    double dm = (double)m;
    out->statistic = v;
    out->df = 0;
    if (ties == 0 && m < EXACT_LIMIT) {
        size_t top = m * (m + 1) / 2, vi = (size_t)llround(v);
        double *c = xcalloc(top + 1, sizeof *c);
        c[0] = 1;
        for (size_t i = 1; i <= m; i++)
            for (size_t w = top; w >= i; w--)
                c[w] += c[w - i];
        double total = 0, lower = 0, upper = 0;
        for (size_t w = 0; w <= top; w++) {
            total += c[w];
            if (w <= vi)
                lower += c[w];
            if (w >= vi)
                upper += c[w];
        }
        free(c);
        out->z = 0;
        out->exact = 1;
        out->p_value = p_from_tails(alt, lower / total, upper / total);
        return ASSAY_OK;
    }
    double mean = dm * (dm + 1) / 4;
    double var = dm * (dm + 1) * (2 * dm + 1) / 24 - ties / 48;
    double sd = sqrt(var), d = v - mean;
    out->exact = 0;
    if (alt == STATS_LESS) {
        out->z = (d + 0.5) / sd;
        out->p_value = stats_normal_cdf(out->z);
    } else if (alt == STATS_GREATER) {
        out->z = (d - 0.5) / sd;
        out->p_value = stats_normal_sf(out->z);
    } else {
        double z = (fabs(d) - 0.5) / sd;
        out->z = d < 0 ? -z : z;
        out->p_value = fmin(1, 2 * stats_normal_sf(z));
    }
    return ASSAY_OK;
}

enum assay_err stats_two_proportion_z_test(size_t k1, size_t n1, size_t k2, size_t n2,
                                           enum stats_alternative alt, struct stats_test *out)
{
    if (n1 < 1 || n2 < 1 || k1 > n1 || k2 > n2)
        return ASSAY_ERR_INVALID_ARGUMENT;
    double p1 = (double)k1 / (double)n1, p2 = (double)k2 / (double)n2;
    double p = (double)(k1 + k2) / (double)(n1 + n2);
    if (!(p > 0 && p < 1))
        return ASSAY_ERR_INVALID_ARGUMENT;
    double se = sqrt(p * (1 - p) * (1 / (double)n1 + 1 / (double)n2));
    double z = (p1 - p2) / se;
    out->statistic = z;
    out->df = 0;
    out->z = z;
    out->exact = 0;
    out->p_value = p_from_tails(alt, stats_normal_cdf(z), stats_normal_sf(z));
    return ASSAY_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile of sorted v[0..n) by linear interpolation (R's type 7). */
static double sorted_quantile(const double *v, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i + 1 >= n)
        return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

enum assay_err stats_bootstrap_mean_diff_ci(const double *x, size_t nx, const double *y, size_t ny,
                                            double level, size_t n_resamples, struct rng *r,
                                            double *lo, double *hi)
{
    if (!x || !y || !r || nx < 1 || ny < 1 || !(level > 0 && level < 1) || n_resamples < 10)
        return ASSAY_ERR_INVALID_ARGUMENT;
    double *diff = xmalloc(n_resamples * sizeof *diff);
    for (size_t b = 0; b < n_resamples; b++) {
        double sx = 0, sy = 0;
        for (size_t i = 0; i < nx; i++)
            sx += x[rng_below(r, nx)];
        for (size_t i = 0; i < ny; i++)
            sy += y[rng_below(r, ny)];
        diff[b] = sx / (double)nx - sy / (double)ny;
    }
    qsort(diff, n_resamples, sizeof *diff, cmp_double);
    *lo = sorted_quantile(diff, n_resamples, (1 - level) / 2);
    *hi = sorted_quantile(diff, n_resamples, (1 + level) / 2);
    free(diff);
    return ASSAY_OK;
}
