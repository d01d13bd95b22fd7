/*
 * judges/reference: exact match, token F1 and ROUGE-L. Called by the worker
 * for reference rubrics and by golden-set runs.
 */
#include "judges/reference.h"

#include "common/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* string.punctuation of Python, which SQuAD's script removes. */
static bool is_punct(unsigned char ch)
{
    return ch < 0x80 && strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", ch) && ch != '\0';
}

static bool is_space(unsigned char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static bool is_article(const char *w, size_t n)
{
    return (n == 1 && w[0] == 'a') || (n == 2 && memcmp(w, "an", 2) == 0) ||
           (n == 3 && memcmp(w, "the", 3) == 0);
}

void reference_normalize(const char *s, struct buf *out)
{
    /* lower case and drop punctuation, then split on whitespace, drop
     * articles, and join with single spaces */
    struct buf t = BUF_INIT;
    for (size_t i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (is_punct(ch))
            continue;
        buf_append_char(&t, (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch));
    }
    const char *p = buf_cstr(&t);
    bool first = true;
    while (*p) {
        while (*p && is_space((unsigned char)*p))
            p++;
        const char *w = p;
        while (*p && !is_space((unsigned char)*p))
            p++;
        size_t n = (size_t)(p - w);
        if (n == 0 || is_article(w, n))
            continue;
        if (!first)
            buf_append_char(out, ' ');
        buf_append(out, w, n);
        first = false;
    }
    buf_clear(&t);
}

double reference_exact_match(const char *pred, const char *ref)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    reference_normalize(pred, &a);
    reference_normalize(ref, &b);
    double r = strcmp(buf_cstr(&a), buf_cstr(&b)) == 0 ? 1.0 : 0.0;
    buf_clear(&a);
    buf_clear(&b);
    return r;
}

struct tokens {
    char **v;
    size_t n, cap;
    char *store;
};

/* Splits a normalised (space-separated) string; the tokens point into store. */
static void split_spaces(char *store, struct tokens *t)
{
    t->store = store;
    for (char *p = store; *p;) {
        while (*p == ' ')
            *p++ = '\0';
        if (!*p)
            break;
        if (t->n == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 16;
            t->v = xrealloc(t->v, t->cap * sizeof *t->v);
        }
        t->v[t->n++] = p;
        while (*p && *p != ' ')
            p++;
    }
}

static void tokens_clear(struct tokens *t)
{
    free(t->v);
    free(t->store);
    memset(t, 0, sizeof *t);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void squad_tokens(const char *s, struct tokens *t)
{
    struct buf b = BUF_INIT;
    reference_normalize(s, &b);
    buf_append(&b, "", 0); /* storage even when empty */
    split_spaces(buf_detach(&b, NULL), t);
}

double reference_token_f1(const char *pred, const char *ref)
{
    struct tokens p = {0}, r = {0};
    squad_tokens(pred, &p);
    squad_tokens(ref, &r);
    double f1;
    if (p.n == 0 || r.n == 0) {
        f1 = p.n == r.n ? 1.0 : 0.0;
        goto out;
    }
    /* common = sum over tokens of min(count in p, count in r): merge sorted lists */
    qsort(p.v, p.n, sizeof *p.v, str_cmp);
    qsort(r.v, r.n, sizeof *r.v, str_cmp);
    size_t i = 0, k = 0, common = 0;
    while (i < p.n && k < r.n) {
        int c = strcmp(p.v[i], r.v[k]);
        if (c == 0) {
            common++;
            i++;
            k++;
        } else if (c < 0) {
            i++;
        } else {
            k++;
        }
    }
    if (common == 0) {
        f1 = 0.0;
        goto out;
    }
    double precision = (double)common / (double)p.n;
    double recall = (double)common / (double)r.n;
    f1 = 2 * precision * recall / (precision + recall);
out:
    tokens_clear(&p);
    tokens_clear(&r);
    return f1;
}

static bool is_word(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch >= 0x80;
}

static void rouge_tokens(const char *s, struct tokens *t)
{
    struct buf b = BUF_INIT;
    for (size_t i = 0; s[i]; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf_append_char(&b, is_word(ch) ? (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch) : ' ');
    }
    buf_append(&b, "", 0);
    split_spaces(buf_detach(&b, NULL), t);
}

double reference_rouge_l(const char *pred, const char *ref)
{
    struct tokens p = {0}, r = {0};
    size_t *row = NULL;
    rouge_tokens(pred, &p);
    rouge_tokens(ref, &r);
    double f;
    if (p.n > REFERENCE_LCS_TOKENS_MAX || r.n > REFERENCE_LCS_TOKENS_MAX) {
        f = -1.0;
        goto out;
    }
    if (p.n == 0 || r.n == 0) {
        f = p.n == r.n ? 1.0 : 0.0;
        goto out;
    }
    /* LCS by dynamic programming over one row: row[k] = LCS(p[0..i), r[0..k)) */
    row = xcalloc(r.n + 1, sizeof *row);
    for (size_t i = 1; i <= p.n; i++) {
        size_t diag = 0; /* row[k-1] of the previous i */
        for (size_t k = 1; k <= r.n; k++) {
            size_t up = row[k];
            if (strcmp(p.v[i - 1], r.v[k - 1]) == 0)
                row[k] = diag + 1;
            else if (row[k - 1] > row[k])
                row[k] = row[k - 1];
            diag = up;
        }
    }
    size_t lcs = row[r.n];
    if (lcs == 0) {
        f = 0.0;
        goto out;
    }
    double precision = (double)lcs / (double)p.n;
    double recall = (double)lcs / (double)r.n;
    f = 2 * precision * recall / (precision + recall);
out:
    free(row);
    tokens_clear(&p);
    tokens_clear(&r);
    return f;
}

enum assay_err reference_judge_run(const struct rubric *r, const struct rubric_sample *s,
                                   struct verdict *out, char *errbuf)
{
    verdict_clear(out);
    if (!r || r->kind != RUBRIC_KIND_REFERENCE || !r->metric) {
        verdict_set_unscorable(out, "not_a_reference_rubric", VERDICT_RETRY_NONE, NULL);
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "not a reference rubric");
    }
    char judge[64];
    snprintf(judge, sizeof judge, "reference:%s", r->metric);
    verdict_set_judge(out, judge);
    verdict_set_rubric(out, r);
    enum assay_err err = rubric_sample_check(r, s, errbuf);
    if (!err && !s->reference)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                               "rubric %s needs the sample field reference", r->name);
    if (err) {
        verdict_set_unscorable(out, "missing_field", VERDICT_RETRY_NONE, errbuf);
        return err;
    }
    double score;
    if (strcmp(r->metric, "exact-match") == 0)
        score = reference_exact_match(s->output, s->reference);
    else if (strcmp(r->metric, "token-f1") == 0)
        score = reference_token_f1(s->output, s->reference);
    else
        score = reference_rouge_l(s->output, s->reference);
    if (score < 0) {
        verdict_set_unscorable(out, "input_too_long", VERDICT_RETRY_NONE,
                               "more tokens than rouge-l accepts");
        return ASSAY_OK;
    }
    verdict_set_score(out, r, score);
    char why[96];
    snprintf(why, sizeof why, "%s = %.4f", r->metric, score);
    verdict_set_reasoning(out, why, strlen(why));
    return ASSAY_OK;
}
