/* Unit tests for judges/reference: figures worked by hand in the comments. */
#include "judges/reference.h"
#include "tests/unit/test.h"

TEST_CASE(normalize_squad)
{
    struct buf b = BUF_INIT;
    reference_normalize("  The Cat's   HAT, an apple\tand a pear!  ", &b);
    /* lower, punctuation dropped ("cat's" -> "cats"), articles dropped, spaces collapsed */
    CHECK_STR_EQ(buf_cstr(&b), "cats hat apple and pear");
    buf_clear(&b);
    reference_normalize("", &b);
    CHECK_STR_EQ(buf_cstr(&b), "");
    buf_clear(&b);
}

TEST_CASE(exact_match)
{
    CHECK(reference_exact_match("The Eiffel Tower!", "eiffel   tower") == 1.0);
    CHECK(reference_exact_match("don't", "dont") == 1.0);
    CHECK(reference_exact_match("Paris", "Paris, France") == 0.0);
    CHECK(reference_exact_match("", "the") == 1.0); /* both normalise to "" */
}

TEST_CASE(token_f1)
{
    /* pred -> [cat sat on mat] (4), ref -> [cat was sitting on mat] (5);
     * common {cat, on, mat} = 3; P = 3/4, R = 3/5; F1 = 2PR/(P+R) = 0.9/1.35 = 2/3 */
    CHECK_NEAR(reference_token_f1("The cat sat on the mat.", "A cat was sitting on a mat"),
               2.0 / 3.0, 1e-12);
    /* pred [cat cat cat], ref [cat dog cat]: common = min(3,2) = 2; P = R = 2/3; F1 = 2/3 */
    CHECK_NEAR(reference_token_f1("the the cat cat cat", "cat dog cat"), 2.0 / 3.0, 1e-12);
    /* pred [paris], ref [paris france]: P = 1, R = 1/2, F1 = 1/1.5 = 2/3 */
    CHECK_NEAR(reference_token_f1("Paris", "Paris, France"), 2.0 / 3.0, 1e-12);
    CHECK(reference_token_f1("blue", "red") == 0.0);
    CHECK(reference_token_f1("the", "a an") == 1.0); /* both empty after normalisation */
    CHECK(reference_token_f1("", "something") == 0.0);
}

TEST_CASE(rouge_l)
{
    /* pred [police killed the gunman] (4), ref [the gunman was killed by police] (6):
     * LCS = [the gunman] = 2; P = 2/4, R = 2/6; F = 2PR/(P+R) = (1/3)/(5/6) = 0.4 */
    CHECK_NEAR(reference_rouge_l("police killed the gunman", "the gunman was killed by police"),
               0.4, 1e-12);
    /* pred [a b c d e] (5), ref [a x c y e z] (6): LCS = [a c e] = 3;
     * P = 3/5, R = 1/2; F = 0.6/1.1 = 6/11 */
    CHECK_NEAR(reference_rouge_l("A B C D E", "a x c y e z"), 6.0 / 11.0, 1e-12);
    /* punctuation splits tokens; case is ignored */
    CHECK_NEAR(reference_rouge_l("Hello, World!", "hello world"), 1.0, 1e-12);
    CHECK(reference_rouge_l("", "") == 1.0);
    CHECK(reference_rouge_l("x", "") == 0.0);
}

TEST_CASE(rouge_l_refuses_huge_input)
{
    size_t n = (REFERENCE_LCS_TOKENS_MAX + 1) * 2;
    char *big = malloc(n + 1);
    REQUIRE(big != NULL);
    for (size_t i = 0; i < n; i += 2) {
        big[i] = 'w';
        big[i + 1] = ' ';
    }
    big[n] = '\0';
    CHECK(reference_rouge_l(big, "w") < 0);
    struct rubric *r = NULL;
    char path[1024], err[ASSAY_ERRBUF_SIZE] = "";
    snprintf(path, sizeof path, "%s/rubrics/rouge-l.json", test_source_dir());
    REQUIRE_INT_EQ(rubric_load(path, &r, err), ASSAY_OK);
    struct rubric_sample s = {.output = big, .reference = "w"};
    struct verdict v;
    verdict_init(&v);
    CHECK_INT_EQ(reference_judge_run(r, &s, &v, err), ASSAY_OK);
    CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(v.reason, "input_too_long");
    verdict_clear(&v);
    rubric_free(r);
    free(big);
}

TEST_CASE(judge_run)
{
    char path[1024], err[ASSAY_ERRBUF_SIZE] = "";
    struct rubric *r = NULL;
    snprintf(path, sizeof path, "%s/rubrics/token-f1.json", test_source_dir());
    REQUIRE_INT_EQ(rubric_load(path, &r, err), ASSAY_OK);
    struct verdict v;
    verdict_init(&v);
    struct rubric_sample s = {.output = "The cat sat on the mat.",
                              .reference = "A cat was sitting on a mat"};
    REQUIRE_INT_EQ(reference_judge_run(r, &s, &v, err), ASSAY_OK);
    REQUIRE_INT_EQ(v.outcome, VERDICT_SCORED);
    CHECK_NEAR(v.score, 2.0 / 3.0, 1e-12);
    CHECK_NEAR(v.raw_score, 2.0 / 3.0, 1e-12);
    CHECK(v.pass); /* threshold 0.5 */
    CHECK_STR_EQ(v.judge, "reference:token-f1");
    CHECK_STR_EQ(v.rubric, "token-f1");
    CHECK_STR_EQ(v.rubric_version, r->version);
    s.reference = NULL;
    CHECK_INT_EQ(reference_judge_run(r, &s, &v, err), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK_INT_EQ(v.outcome, VERDICT_UNSCORABLE);
    CHECK_STR_EQ(v.reason, "missing_field");
    verdict_clear(&v);
    rubric_free(r);
}
