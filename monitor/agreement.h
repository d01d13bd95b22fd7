/*
 * monitor/agreement: how well a judge's scores agree with human scores of the
 * same answers (calibration sets, issue 7): quadratic-weighted Cohen's kappa
 * for integer (Likert) scales, Spearman's rank correlation (ties take their
 * average rank), mean absolute error on the rubric's raw scale, and the F1 of
 * the judge's pass/fail against the humans' (a human pass is the positive
 * class). Called by server/golden for calibration runs.
 *
 * Pure functions: thread-safe; arrays borrowed and left unaltered.
 */
#ifndef ASSAY_MONITOR_AGREEMENT_H
#define ASSAY_MONITOR_AGREEMENT_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct agreement_scale {
    double min, max;       /* the rubric's raw scale, max > min */
    bool integer;          /* Likert: kappa is defined */
    double pass_threshold; /* raw; a score >= it passes */
};

struct agreement {
    size_t n;
    bool has_kappa;    /* integer scale, at most 101 levels, expected disagreement > 0 */
    double kappa;      /* quadratic-weighted Cohen's kappa, in [-1, 1] */
    bool has_spearman; /* n >= 2 and neither side constant */
    double spearman;
    double mae;      /* raw scale */
    bool has_f1;     /* some human or judge pass */
    double f1;       /* 2 tp / (2 tp + fp + fn) */
    double accuracy; /* pass/fail agreement */
    /* One number in [0, 1] for the JudgeAgreement metric: kappa when it is
     * defined, else Spearman, else 1 - mae / (max - min); clamped at 0. */
    double headline;
};

/*
 * Agreement of judge[i] with human[i], i < n, both raw scores on sc. Returns
 * ASSAY_OK, or ASSAY_ERR_INVALID_ARGUMENT (n == 0, NULL arrays, a bad scale,
 * a score outside it) with *out zeroed.
 */
enum assay_err agreement_compute(const double *human, const double *judge, size_t n,
                                 const struct agreement_scale *sc, struct agreement *out);

/* Spearman's rho of x and y with average ranks for ties; false when undefined. */
bool agreement_spearman(const double *x, const double *y, size_t n, double *rho);

/* Quadratic-weighted kappa of integer ratings in [min, max]; false when undefined. */
bool agreement_weighted_kappa(const double *a, const double *b, size_t n, int min, int max,
                              double *kappa);

#endif
