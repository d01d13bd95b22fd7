/*
 * judges/pii: the detectors for personal data and secrets shared by the
 * pii-leak rule (judges/rule) and redaction (judges/redact): one PCRE2 pattern
 * per kind plus a check on each candidate (Luhn for card numbers, a digit count
 * for phone numbers), so both places agree on what a card number is.
 * Thread-safe: constant tables only.
 */
#ifndef ASSAY_JUDGES_PII_H
#define ASSAY_JUDGES_PII_H

#include <stdbool.h>
#include <stddef.h>

#include "judges/regex.h"

enum pii_kind {
    PII_EMAIL,
    PII_PHONE,
    PII_CARD,
    PII_AWS_ACCESS_KEY,
    PII_AWS_SECRET_KEY,
    PII_KIND_COUNT
};

/* "email", "phone", "card", "aws_access_key", "aws_secret_key". */
const char *pii_kind_name(enum pii_kind kind);
/* "[EMAIL]", "[PHONE]", "[CARD]", "[AWS_ACCESS_KEY]", "[AWS_SECRET_KEY]". */
const char *pii_kind_placeholder(enum pii_kind kind);
/* The PCRE2 pattern of a kind (static). */
const char *pii_kind_pattern(enum pii_kind kind);
/* The kind named name, or PII_KIND_COUNT. */
enum pii_kind pii_kind_from_name(const char *name);

/* True when the digits of s[0..n) (spaces and dashes ignored) pass the Luhn check. */
bool pii_luhn_valid(const char *s, size_t n);

/*
 * Finds the next match of kind (compiled from pii_kind_pattern into re) in
 * s[start..n) that also passes the kind's check, skipping candidates that do
 * not. Same results as regex_find.
 */
enum regex_result pii_find(const struct regex *re, enum pii_kind kind, const char *s, size_t n,
                           size_t start, size_t *m_start, size_t *m_end);

#endif
