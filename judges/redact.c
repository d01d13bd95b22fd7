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

static bool limit_value(const json_t *cfg, const char *key, uint32_t *out)
{
    const json_t *v = json_object_get(cfg, key);
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > UINT32_MAX)
        return false;
    *out = (uint32_t)json_integer_value(v);
    return true;
}

enum assay_err redact_set_from_json(const json_t *cfg, struct redact_set **out, char *errbuf)
{
    *out = NULL;
    if (!cfg)
        return redact_set_new(NULL, out, errbuf);
    if (!json_is_object(cfg))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "redact: must be an object");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)cfg, key, v)
    {
        if (strcmp(key, "builtins") != 0 && strcmp(key, "patterns") != 0 &&
            strcmp(key, "match_limit") != 0 && strcmp(key, "depth_limit") != 0)
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "redact: %.64s: unknown key", key);
    }
    struct redact_options o = {0};
    if (!limit_value(cfg, "match_limit", &o.limits.match_limit) ||
        !limit_value(cfg, "depth_limit", &o.limits.depth_limit))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "redact: match_limit and depth_limit must be positive integers");
    const json_t *b = json_object_get(cfg, "builtins");
    const char *names[PII_KIND_COUNT];
    if (json_is_false(b)) {
        o.builtins = names;
    } else if (json_is_array(b)) {
        if (json_array_size(b) > PII_KIND_COUNT)
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "redact: builtins: too many");
        for (size_t i = 0; i < json_array_size(b); i++) {
            names[i] = json_string_value(json_array_get(b, i));
            if (!names[i])
                return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                        "redact: builtins[%zu]: must be a string", i);
        }
        o.builtins = names;
        o.n_builtins = json_array_size(b);
    } else if (b && !json_is_true(b)) {
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "redact: builtins: must be true, false or an array of kinds");
    }
    const json_t *p = json_object_get(cfg, "patterns");
    if (p && (!json_is_array(p) || json_array_size(p) > 256))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "redact: patterns: must be an array of at most 256 entries");
    size_t n = p ? json_array_size(p) : 0;
    struct redact_pattern *extra = xcalloc(n ? n : 1, sizeof *extra);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(p, i);
        extra[i].pattern = json_string_value(json_object_get(e, "pattern"));
        extra[i].placeholder = json_string_value(json_object_get(e, "placeholder"));
    }
    o.extra = extra;
    o.n_extra = n;
    enum assay_err err = redact_set_new(&o, out, errbuf);
    free(extra);
    return err;
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
