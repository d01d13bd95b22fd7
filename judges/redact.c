/*
 * judges/redact: pattern-by-pattern replacement with placeholders. Each
 * pattern runs over the output of the previous one; secrets first, then
 * addresses, cards and phone numbers (so a card is not taken for a phone).
 */
#include "judges/redact.h"

#include "common/alloc.h"
#include "judges/pii.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct regex *re;
    char *placeholder;
    enum pii_kind kind; /* PII_KIND_COUNT for an operator's pattern */
};

struct redact_set {
    struct entry *entries;
    size_t n;
};

/* The order in which built-ins run. */
static const enum pii_kind builtin_order[] = {PII_AWS_SECRET_KEY, PII_AWS_ACCESS_KEY, PII_EMAIL,
                                              PII_CARD, PII_PHONE};

enum assay_err redact_set_new(const struct redact_options *opts, struct redact_set **out,
                              char *errbuf)
{
    *out = NULL;
    enum assay_err err = ASSAY_OK;
    struct redact_options dflt = {0};
    if (!opts)
        opts = &dflt;
    bool want[PII_KIND_COUNT];
    for (int k = 0; k < PII_KIND_COUNT; k++)
        want[k] = opts->builtins == NULL;
    for (size_t i = 0; opts->builtins && i < opts->n_builtins; i++) {
        enum pii_kind k = pii_kind_from_name(opts->builtins[i]);
        if (k == PII_KIND_COUNT)
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "redact: builtins[%zu]: unknown kind",
                                    i);
        want[k] = true;
    }
    struct redact_set *set = xcalloc(1, sizeof *set);
    set->entries = xcalloc(PII_KIND_COUNT + opts->n_extra, sizeof *set->entries);
    char ebuf[ASSAY_ERRBUF_SIZE] = "";
    for (size_t i = 0; i < sizeof builtin_order / sizeof *builtin_order; i++) {
        enum pii_kind k = builtin_order[i];
        if (!want[k])
            continue;
        struct entry *e = &set->entries[set->n];
        e->re = regex_new(pii_kind_pattern(k), &opts->limits, ebuf);
        if (!e->re) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "redact: %s: %s", pii_kind_name(k),
                                   ebuf);
            goto out;
        }
        e->placeholder = xstrdup(pii_kind_placeholder(k));
        e->kind = k;
        set->n++;
    }
    for (size_t i = 0; i < opts->n_extra; i++) {
        const struct redact_pattern *p = &opts->extra[i];
        size_t pl = p->placeholder ? strlen(p->placeholder) : 0;
        if (pl == 0 || pl > REDACT_PLACEHOLDER_MAX) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "redact: patterns[%zu].placeholder: must be 1 to %d bytes", i,
                                   REDACT_PLACEHOLDER_MAX);
            goto out;
        }
        struct entry *e = &set->entries[set->n];
        e->re = p->pattern ? regex_new(p->pattern, &opts->limits, ebuf) : NULL;
        if (!e->re) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "redact: patterns[%zu].pattern: %s", i,
                                   p->pattern ? ebuf : "missing");
            goto out;
        }
        e->placeholder = xstrdup(p->placeholder);
        e->kind = PII_KIND_COUNT;
        set->n++;
    }
out:
    if (err) {
        redact_set_free(set);
        return err;
    }
    *out = set;
    return ASSAY_OK;
}

void redact_set_free(struct redact_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        regex_free(set->entries[i].re);
        free(set->entries[i].placeholder);
    }
    free(set->entries);
    free(set);
}

/* One pattern over src into dst; returns the regex result that ended the scan. */
static enum regex_result apply_one(const struct entry *e, const char *src, size_t n,
                                   struct buf *dst, size_t *count)
{
    size_t pos = 0, copied = 0;
    for (;;) {
        size_t ms, me;
        enum regex_result res = e->kind == PII_KIND_COUNT
                                    ? regex_find(e->re, src, n, pos, 0, &ms, &me, NULL, NULL)
                                    : pii_find(e->re, e->kind, src, n, pos, &ms, &me);
        if (res != REGEX_MATCH) {
            buf_append(dst, src + copied, n - copied);
            return res == REGEX_NO_MATCH ? REGEX_MATCH : res;
        }
        if (me == ms) { /* an empty match replaces nothing */
            pos = ms + 1;
            if (pos > n) {
                buf_append(dst, src + copied, n - copied);
                return REGEX_MATCH;
            }
            continue;
        }
        buf_append(dst, src + copied, ms - copied);
        buf_append_str(dst, e->placeholder);
        (*count)++;
        copied = pos = me;
    }
}

enum assay_err redact_set_apply(const struct redact_set *set, const char *text, size_t n,
                                struct buf *out, size_t *n_replaced, char *errbuf)
{
    struct buf a = BUF_INIT, b = BUF_INIT;
    enum assay_err err = ASSAY_OK;
    size_t count = 0;
    buf_append(&a, text, n);
    for (size_t i = 0; set && i < set->n; i++) {
        buf_reset(&b);
        buf_reserve(&b, a.len);
        enum regex_result res = apply_one(&set->entries[i], buf_cstr(&a), a.len, &b, &count);
        if (res != REGEX_MATCH) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                   "redact: the pattern for %s %s; the text was not redacted",
                                   set->entries[i].placeholder,
                                   res == REGEX_LIMIT ? "hit its match or depth limit" : "failed");
            goto out;
        }
        struct buf t = a;
        a = b;
        b = t;
    }
    buf_append(out, buf_cstr(&a), a.len);
    if (n_replaced)
        *n_replaced = count;
out:
    buf_clear(&a);
    buf_clear(&b);
    return err;
}
