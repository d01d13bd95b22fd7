/*
 * monitor/compare: one rubric's scores of a golden-set run compared with the
 * previous run's, item by item. The paired differences (after - before) give
 * the change of the mean, its percentile bootstrap confidence interval, the
 * one-sided Wilcoxon signed-rank p-value ("the new scores tend to be lower")
 * and the items that got worse, largest drop first. The run regressed on the
 * rubric when the drop is significant (p < alpha) and larger than the margin.
 * Called by server/golden (`assay eval` and the scheduled runs).
 *
 * Pure functions: thread-safe; arrays are borrowed and left unaltered; a
 * result is held by the caller and owns its worse array until
 * compare_result_clear (NULL-safe).
 */
#ifndef ASSAY_MONITOR_COMPARE_H
#define ASSAY_MONITOR_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* One item scored (normalised [0, 1]) in both runs. */
struct compare_pair {
    const char *item_id; /* borrowed */
    double before, after;
};

struct compare_options {
    double margin;      /* a drop of the mean must exceed this to regress; 0.05 */
    double alpha;       /* significance level of the Wilcoxon test; 0.05 */
    double level;       /* confidence level of the interval; 0.95 */
    size_t n_resamples; /* bootstrap resamples; 2,000 */
    uint64_t seed;      /* bootstrap generator seed; 1 */
};

/* Fills o with the defaults above. */
void compare_options_init(struct compare_options *o);

struct compare_result {
    size_t n;            /* pairs */
    double mean_before;  /* of the paired items */
    double mean_after;   /* of the paired items */
    double delta;        /* mean_after - mean_before */
    bool has_ci;         /* n >= 1 */
    double ci_lo, ci_hi; /* bootstrap interval of delta */
    bool has_p;          /* some difference is non-zero */
    double p_value;      /* one-sided (after lower); 1 when every difference is zero */
    bool regressed;      /* p_value < alpha and -delta > margin */
    size_t *worse;       /* owned: indices into the pairs with after < before */
    size_t n_worse;      /* ordered by drop, largest first; ties by item_id */
};

/*
 * Compares n pairs (n may be 0: nothing paired, nothing regressed). Returns
 * ASSAY_OK, or ASSAY_ERR_INVALID_ARGUMENT (NULL pairs with n > 0, a score
 * outside [0, 1] or not a number, bad options) with *out left empty.
 */
enum assay_err compare_scores(const struct compare_pair *pairs, size_t n,
                              const struct compare_options *opt, struct compare_result *out);

void compare_result_clear(struct compare_result *r);

#endif
