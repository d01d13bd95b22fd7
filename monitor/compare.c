/*
 * monitor/compare: run-over-run comparison of one rubric's paired scores
 * (the maths of `assay eval`'s summary; see compare.h). The bootstrap is of
 * the mean of the paired differences: monitor/stats' interval of a
 * difference of means, taken against a single zero.
 */
#include "monitor/compare.h"

#include "common/alloc.h"
#include "common/rng.h"
#include "monitor/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Differences smaller than this are taken as no change (floating noise). */
#define SAME_EPS 1e-12

void compare_options_init(struct compare_options *o)
{
    o->margin = 0.05;
    o->alpha = 0.05;
    o->level = 0.95;
    o->n_resamples = 2000;
    o->seed = 1;
}

void compare_result_clear(struct compare_result *r)
{
    if (!r)
        return;
    free(r->worse);
    memset(r, 0, sizeof *r);
}

/* qsort has no context argument; the pairs ride along in a thread-local. */
static _Thread_local const struct compare_pair *sort_pairs;

static int by_drop(const void *a, const void *b)
{
    const struct compare_pair *x = &sort_pairs[*(const size_t *)a];
    const struct compare_pair *y = &sort_pairs[*(const size_t *)b];
    double dx = x->before - x->after, dy = y->before - y->after;
    if (dx != dy)
        return dx > dy ? -1 : 1;
    const char *ix = x->item_id ? x->item_id : "", *iy = y->item_id ? y->item_id : "";
    return strcmp(ix, iy);
}

enum assay_err compare_scores(const struct compare_pair *pairs, size_t n,
                              const struct compare_options *opt, struct compare_result *out)
{
    memset(out, 0, sizeof *out);
    if ((n > 0 && !pairs) || !opt || !(opt->level > 0 && opt->level < 1) || opt->n_resamples < 10 ||
        !(opt->margin >= 0) || !(opt->alpha > 0 && opt->alpha < 1))
        return ASSAY_ERR_INVALID_ARGUMENT;
    for (size_t i = 0; i < n; i++)
        if (!(pairs[i].before >= 0 && pairs[i].before <= 1) ||
            !(pairs[i].after >= 0 && pairs[i].after <= 1))
            return ASSAY_ERR_INVALID_ARGUMENT;
    out->n = n;
    out->p_value = 1.0;
    if (n == 0)
        return ASSAY_OK;

    double *before = xcalloc(n, sizeof *before);
    double *after = xcalloc(n, sizeof *after);
    double *diff = xcalloc(n, sizeof *diff);
    double sb = 0, sa = 0;
    for (size_t i = 0; i < n; i++) {
        before[i] = pairs[i].before;
        after[i] = pairs[i].after;
        diff[i] = after[i] - before[i];
        sb += before[i];
        sa += after[i];
    }
    out->mean_before = sb / (double)n;
    out->mean_after = sa / (double)n;
    out->delta = out->mean_after - out->mean_before;

    struct rng r;
    rng_seed(&r, opt->seed);
    const double zero = 0.0;
    if (stats_bootstrap_mean_diff_ci(diff, n, &zero, 1, opt->level, opt->n_resamples, &r,
                                     &out->ci_lo, &out->ci_hi) == ASSAY_OK)
        out->has_ci = true;

    struct stats_test t;
    if (stats_wilcoxon_signed_rank_test(after, before, n, STATS_LESS, &t) == ASSAY_OK) {
        out->has_p = true;
        out->p_value = t.p_value;
    }
    out->regressed = out->has_p && out->p_value < opt->alpha && -out->delta > opt->margin;

    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (before[i] - after[i] > SAME_EPS)
            k++;
    if (k > 0) {
        out->worse = xcalloc(k, sizeof *out->worse);
        for (size_t i = 0; i < n; i++)
            if (before[i] - after[i] > SAME_EPS)
                out->worse[out->n_worse++] = i;
        sort_pairs = pairs;
        qsort(out->worse, out->n_worse, sizeof *out->worse, by_drop);
        sort_pairs = NULL;
    }
    free(before);
    free(after);
    free(diff);
    return ASSAY_OK;
}
