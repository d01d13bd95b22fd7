/*
 * judges/redact: replaces personal data and secrets in sample text with typed
 * placeholders ([EMAIL], [PHONE], [CARD], [AWS_ACCESS_KEY], [AWS_SECRET_KEY],
 * or an operator's own) before the text leaves for Bedrock and before it is
 * stored, per app. The built-in detectors are those of the pii-leak rule
 * (judges/pii), whose findings on the text before redaction are kept (the
 * sample's "_pii", server/ingest_redact) so leaks still count.
 *
 * Every pattern runs under PCRE2 match and depth limits; if one is exhausted
 * the text is not returned half-redacted: the call fails (fail closed).
 *
 * Ownership and threading: a redact_set copies what it is given, is immutable
 * after redact_set_new and may be shared by any number of threads.
 */
#ifndef ASSAY_JUDGES_REDACT_H
#define ASSAY_JUDGES_REDACT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "judges/regex.h"

#define REDACT_PLACEHOLDER_MAX 64

/* An operator's pattern; both strings are borrowed by redact_set_new and copied. */
struct redact_pattern {
    const char *pattern;     /* PCRE2, UTF-8 */
    const char *placeholder; /* e.g. "[EMPLOYEE_ID]", 1..64 bytes */
};

struct redact_options {
    /* Built-in kinds to apply, by name (email, phone, card, aws_access_key,
     * aws_secret_key); NULL for all of them, an empty list (n_builtins 0 and
     * builtins non-NULL) for none. */
    const char *const *builtins;
    size_t n_builtins;
    const struct redact_pattern *extra; /* applied after the built-ins, in order */
    size_t n_extra;
    struct regex_limits limits; /* zeros: the defaults */
};

struct redact_set;

/*
 * Builds a set from opts (borrowed; NULL: all built-ins, default limits).
 * Returns ASSAY_OK and a new set in *out, or ASSAY_ERR_CONFIG naming the bad
 * kind, pattern or placeholder (by index) with *out NULL.
 */
enum assay_err redact_set_new(const struct redact_options *opts, struct redact_set **out,
                              char *errbuf);
void redact_set_free(struct redact_set *set);

/*
 * Builds a set from a JSON configuration (borrowed), as an app's "redact"
 * config key holds it:
 *   {"builtins": true | false | ["email", ...],   (default true: all)
 *    "patterns": [{"pattern": "EMP-[0-9]{6}", "placeholder": "[EMPLOYEE_ID]"}],
 *    "match_limit": 1000000, "depth_limit": 10000}
 * NULL means all built-ins. Unknown keys are refused. Errors as redact_set_new,
 * with the key named in errbuf.
 */
enum assay_err redact_set_from_json(const json_t *cfg, struct redact_set **out, char *errbuf);

/*
 * Appends to out the n bytes of text with every match replaced by its
 * placeholder; *n_replaced (may be NULL) gets the number of replacements.
 * Returns ASSAY_OK, or ASSAY_ERR_TOO_LARGE when a pattern exhausted its limits
 * (out is then left as it was on entry, nothing of the text appended).
 */
enum assay_err redact_set_apply(const struct redact_set *set, const char *text, size_t n,
                                struct buf *out, size_t *n_replaced, char *errbuf);

#endif
