/*
 * judges/reference: the reference judges, comparing an answer with a known
 * reference answer: exact match and token F1 with SQuAD's normalisation
 * (lower case, ASCII punctuation removed, the articles a/an/the removed,
 * whitespace collapsed) and ROUGE-L (F-measure of the longest common
 * subsequence of tokens, beta 1). Pure functions; thread-safe.
 */
#ifndef ASSAY_JUDGES_REFERENCE_H
#define ASSAY_JUDGES_REFERENCE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "judges/rubric.h"
#include "judges/verdict.h"

/* Texts with more tokens than this are unscorable for rouge-l (LCS is quadratic). */
#define REFERENCE_LCS_TOKENS_MAX 5000u

/* SQuAD normalisation of s into out (appended). */
void reference_normalize(const char *s, struct buf *out);
/* 1.0 when the normalised texts are equal, else 0.0. */
double reference_exact_match(const char *pred, const char *ref);
/* Token F1 of the normalised texts; 1.0 when both have no token, 0.0 when one has none. */
double reference_token_f1(const char *pred, const char *ref);
/*
 * ROUGE-L F-measure; tokens are maximal runs of ASCII letters and digits (and
 * non-ASCII bytes), lower-cased. Returns -1.0 when either text has more than
 * REFERENCE_LCS_TOKENS_MAX tokens; 1.0 when both have none.
 */
double reference_rouge_l(const char *pred, const char *ref);

/*
 * Grades s->output against s->reference with r's metric into *out
 * (initialised by the caller; previous contents are cleared). Returns
 * ASSAY_OK when *out was filled (scored, or unscorable with reason
 * input_too_long); ASSAY_ERR_INVALID_ARGUMENT when r is not a reference rubric
 * or the sample lacks a field (*out unscorable, reason missing_field).
 */
enum assay_err reference_judge_run(const struct rubric *r, const struct rubric_sample *s,
                                   struct verdict *out, char *errbuf);

#endif
