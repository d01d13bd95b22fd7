/*
 * Unit tests for monitor/agreement against hand-worked values.
 *
 * Quadratic-weighted kappa, human [1,1,2,3] vs judge [1,2,2,3] on 1..3:
 * weights (i-j)^2/4; observed disagreement 0.25 x 1/4 = 0.0625; marginals
 * human [.5,.25,.25], judge [.25,.5,.25], expected disagreement
 * .0625+.125+.015625+.015625+.0625+.03125 = .3125; kappa = 1 - .0625/.3125
 * = 0.8. Spearman with ties, x [1,2,2,3] y [1,3,2,4]: ranks [1,2.5,2.5,4] and
 * [1,3,2,4], rho = 4.5 / sqrt(4.5 x 5) = sqrt(0.9). MAE 1/4. Pass mark 2:
 * human pass [0,0,1,1], judge [0,1,1,1]: tp 2, fp 1, fn 0, F1 = 4/5.
 */
#include "monitor/agreement.h"
#include "tests/unit/test.h"

#include <math.h>

TEST_CASE(weighted_kappa_hand_worked)
{
    double h[] = {1, 1, 2, 3}, j[] = {1, 2, 2, 3};
    double k;
    REQUIRE(agreement_weighted_kappa(h, j, 4, 1, 3, &k));
    CHECK_NEAR(k, 0.8, 1e-12);
    REQUIRE(agreement_weighted_kappa(h, h, 4, 1, 3, &k));
    CHECK_NEAR(k, 1.0, 1e-12);
    /* Complete reversal on two levels: kappa -1. */
    double a[] = {1, 3, 1, 3}, b[] = {3, 1, 3, 1};
    REQUIRE(agreement_weighted_kappa(a, b, 4, 1, 3, &k));
    CHECK_NEAR(k, -1.0, 1e-12);
    /* Both raters constant on the same level: undefined. */
    double c[] = {2, 2};
    CHECK(!agreement_weighted_kappa(c, c, 2, 1, 3, &k));
    /* Out of the scale: undefined. */
    double o[] = {4, 1};
    CHECK(!agreement_weighted_kappa(o, c, 2, 1, 3, &k));
}

TEST_CASE(spearman_with_ties)
{
    double x[] = {1, 2, 2, 3}, y[] = {1, 3, 2, 4};
    double rho;
    REQUIRE(agreement_spearman(x, y, 4, &rho));
    CHECK_NEAR(rho, sqrt(0.9), 1e-12);
    double z[] = {4, 3, 2, 1}, w[] = {1, 2, 3, 4};
    REQUIRE(agreement_spearman(z, w, 4, &rho));
    CHECK_NEAR(rho, -1.0, 1e-12);
    double flat[] = {2, 2, 2, 2};
    CHECK(!agreement_spearman(flat, w, 4, &rho));
    CHECK(!agreement_spearman(w, w, 1, &rho));
}

TEST_CASE(compute_all)
{
    double h[] = {1, 1, 2, 3}, j[] = {1, 2, 2, 3};
    struct agreement_scale sc = {1, 3, true, 2};
    struct agreement a;
    REQUIRE_INT_EQ(agreement_compute(h, j, 4, &sc, &a), ASSAY_OK);
    CHECK_INT_EQ(a.n, 4);
    CHECK(a.has_kappa);
    CHECK_NEAR(a.kappa, 0.8, 1e-12);
    CHECK_NEAR(a.mae, 0.25, 1e-12);
    CHECK(a.has_f1);
    CHECK_NEAR(a.f1, 0.8, 1e-12);
    CHECK_NEAR(a.accuracy, 0.75, 1e-12);
    CHECK_NEAR(a.headline, 0.8, 1e-12);
    double hs[] = {1, 1, 2, 3}, js[] = {1, 2, 2, 3};
    CHECK(a.has_spearman);
    double rho;
    REQUIRE(agreement_spearman(hs, js, 4, &rho));
    CHECK_NEAR(a.spearman, rho, 1e-15);
}

TEST_CASE(continuous_scale)
{
    /* A 0..1 number scale: no kappa; the headline is Spearman. */
    double h[] = {0.1, 0.4, 0.35, 0.9}, j[] = {0.2, 0.5, 0.3, 0.8};
    struct agreement_scale sc = {0, 1, false, 0.5};
    struct agreement a;
    REQUIRE_INT_EQ(agreement_compute(h, j, 4, &sc, &a), ASSAY_OK);
    CHECK(!a.has_kappa);
    CHECK(a.has_spearman);
    CHECK_NEAR(a.spearman, 1.0, 1e-12);
    CHECK_NEAR(a.headline, 1.0, 1e-12);
    CHECK_NEAR(a.mae, (0.1 + 0.1 + 0.05 + 0.1) / 4, 1e-12);
    /* pass mark 0.5: human [0,0,0,1], judge [0,1,0,1]: tp 1, fp 1 -> F1 2/3. */
    CHECK_NEAR(a.f1, 2.0 / 3.0, 1e-12);
}

TEST_CASE(bad_input)
{
    double h[] = {1, 6}, j[] = {1, 2};
    struct agreement_scale sc = {1, 5, true, 3};
    struct agreement a;
    CHECK_INT_EQ(agreement_compute(h, j, 2, &sc, &a), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(agreement_compute(h, j, 0, &sc, &a), ASSAY_ERR_INVALID_ARGUMENT);
    struct agreement_scale bad = {1, 1, true, 1};
    CHECK_INT_EQ(agreement_compute(j, j, 2, &bad, &a), ASSAY_ERR_INVALID_ARGUMENT);
}
