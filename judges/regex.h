/*
 * judges/regex: PCRE2 patterns compiled once (with JIT where the platform has
 * it) and matched under a match limit and a depth limit, so that a hostile text
 * cannot make a pattern run away: a limit hit is reported as REGEX_LIMIT, never
 * a hang. Used by the rule judges, redaction, rubric validation and the verdict
 * text fallback.
 *
 * Threading: a struct regex is immutable after regex_new and may be shared by
 * any number of threads; each match allocates its own match data.
 */
#ifndef ASSAY_JUDGES_REGEX_H
#define ASSAY_JUDGES_REGEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Defaults: a million backtracking steps and a depth of 10,000 (heap frames). */
#define REGEX_MATCH_LIMIT_DEFAULT 1000000u
#define REGEX_DEPTH_LIMIT_DEFAULT 10000u

struct regex_limits {
    uint32_t match_limit; /* pcre2_set_match_limit; 0 means the default */
    uint32_t depth_limit; /* pcre2_set_depth_limit; 0 means the default */
};

struct regex;

enum regex_result {
    REGEX_MATCH,
    REGEX_NO_MATCH,
    REGEX_LIMIT, /* the match or depth limit (or the JIT stack) ran out */
    REGEX_ERROR  /* any other PCRE2 matching error */
};

/*
 * Compiles pattern (UTF-8, PCRE2_UTF; invalid UTF-8 in subjects is tolerated)
 * under limits (borrowed; NULL for the defaults). Returns a new regex, or NULL
 * with the compiler's message and offset in errbuf (ASSAY_ERR_INVALID_ARGUMENT).
 */
struct regex *regex_new(const char *pattern, const struct regex_limits *limits, char *errbuf);
void regex_free(struct regex *re);

/* The number of the named group, or -1 when the pattern has no such group. */
int regex_group_number(const struct regex *re, const char *name);

/*
 * Looks for the first match in s[start..n). On REGEX_MATCH, *m_start and
 * *m_end delimit the whole match and, when group > 0 and the group took part,
 * *g_start / *g_end delimit that group (both set to SIZE_MAX when it did not);
 * g_start and g_end may be NULL when group is 0. Outputs are unaltered on any
 * other result.
 */
enum regex_result regex_find(const struct regex *re, const char *s, size_t n, size_t start,
                             int group, size_t *m_start, size_t *m_end, size_t *g_start,
                             size_t *g_end);

#endif
