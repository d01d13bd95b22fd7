/*
 * judges/regex: the one place that talks to PCRE2 for the judges layer:
 * compile with JIT, attach the match and depth limits, map the error codes.
 */
#include "judges/regex.h"

#include "common/alloc.h"

#include <pcre2.h>

struct regex {
    pcre2_code *code;
    pcre2_match_context *mctx;
};

struct regex *regex_new(const char *pattern, const struct regex_limits *limits, char *errbuf)
{
    int errcode = 0;
    PCRE2_SIZE erroffset = 0;
    pcre2_code *code =
        pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroffset, NULL);
    if (!code) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "pattern error at offset %zu: %s",
                         (size_t)erroffset, (const char *)msg);
        return NULL;
    }
    /* JIT is an optimisation: where it is unavailable the interpreter runs. */
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    pcre2_match_context *mctx = pcre2_match_context_create(NULL);
    if (!mctx)
        abort();
    uint32_t ml = limits && limits->match_limit ? limits->match_limit : REGEX_MATCH_LIMIT_DEFAULT;
    uint32_t dl = limits && limits->depth_limit ? limits->depth_limit : REGEX_DEPTH_LIMIT_DEFAULT;
    pcre2_set_match_limit(mctx, ml);
    pcre2_set_depth_limit(mctx, dl);
    struct regex *re = xcalloc(1, sizeof *re);
    re->code = code;
    re->mctx = mctx;
    return re;
}

void regex_free(struct regex *re)
{
    if (!re)
        return;
    pcre2_code_free(re->code);
    pcre2_match_context_free(re->mctx);
    free(re);
}

int regex_group_number(const struct regex *re, const char *name)
{
    int n = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)name);
    return n > 0 ? n : -1;
}

enum regex_result regex_find(const struct regex *re, const char *s, size_t n, size_t start,
                             int group, size_t *m_start, size_t *m_end, size_t *g_start,
                             size_t *g_end)
{
    if (start > n)
        return REGEX_NO_MATCH;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md)
        abort();
    enum regex_result res;
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, start, 0, md, re->mctx);
    if (rc >= 0) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        uint32_t pairs = pcre2_get_ovector_count(md);
        *m_start = ov[0];
        *m_end = ov[1];
        if (group > 0) {
            if ((uint32_t)group < pairs && ov[2 * group] != PCRE2_UNSET) {
                *g_start = ov[2 * group];
                *g_end = ov[2 * group + 1];
            } else {
                *g_start = SIZE_MAX;
                *g_end = SIZE_MAX;
            }
        }
        res = REGEX_MATCH;
    } else if (rc == PCRE2_ERROR_NOMATCH) {
        res = REGEX_NO_MATCH;
    } else if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
               rc == PCRE2_ERROR_HEAPLIMIT || rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        res = REGEX_LIMIT;
    } else {
        res = REGEX_ERROR;
    }
    pcre2_match_data_free(md);
    return res;
}
