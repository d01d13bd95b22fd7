/*
 * judges/pii: patterns and candidate checks for personal data and secrets.
 * Patterns use possessive quantifiers and bounded repeats so that they run in
 * linear time on ordinary text; the match limits of judges/regex bound the rest.
 */
#include "judges/pii.h"

#include <string.h>

struct kind_info {
    const char *name;
    const char *placeholder;
    const char *pattern;
};

static const struct kind_info kinds[PII_KIND_COUNT] = {
    /* A label's dot must be followed by another label: the possessive repeat
     * would otherwise take a sentence's full stop ("a@b.com.") and fail. */
    [PII_EMAIL] = {"email", "[EMAIL]",
                   "(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}+@"
                   "(?:[A-Za-z0-9-]{1,63}+\\.(?=[A-Za-z0-9-])){1,8}+"
                   "[A-Za-z]{2,24}+(?![A-Za-z0-9-])"},
    /* International (+CC), optional area code in parentheses, 2-4 digit groups
     * separated by a space or a dash; 10 to 15 digits in all and not a bare
     * run of digits (checked below).
     * Dots are not separators, so dates, versions and IP addresses stay. */
    [PII_PHONE] = {"phone", "[PHONE]",
                   "(?<![\\w+])(?:\\+[0-9]{1,3}[ -]?)?(?:\\([0-9]{1,4}\\)[ -]?)?[0-9]{2,4}+"
                   "(?:[ -]?[0-9]{2,4}+){1,6}+(?![\\w])"},
    /* 13 to 19 digits, optionally grouped by single spaces or dashes; Luhn-checked. */
    [PII_CARD] = {"card", "[CARD]", "(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}+(?![0-9])"},
    [PII_AWS_ACCESS_KEY] = {"aws_access_key", "[AWS_ACCESS_KEY]",
                            "(?<![A-Z0-9])(?:AKIA|ASIA|AIDA|AROA|AIPA|ANPA|ANVA|AGPA|ABIA|ACCA)"
                            "[A-Z0-9]{16}(?![A-Z0-9])"},
    /* 40 base64 characters standing alone, with upper case, lower case and a
     * digit (so that hex digests such as git object ids are not taken). */
    [PII_AWS_SECRET_KEY] = {"aws_secret_key", "[AWS_SECRET_KEY]",
                            "(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])"
                            "(?=[A-Za-z0-9/+]{0,39}[a-z])(?=[A-Za-z0-9/+]{0,39}[0-9])"
                            "[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"},
};

const char *pii_kind_name(enum pii_kind kind)
{
    return kind < PII_KIND_COUNT ? kinds[kind].name : "unknown";
}

const char *pii_kind_placeholder(enum pii_kind kind)
{
    return kind < PII_KIND_COUNT ? kinds[kind].placeholder : "[REDACTED]";
}

const char *pii_kind_pattern(enum pii_kind kind)
{
    return kind < PII_KIND_COUNT ? kinds[kind].pattern : NULL;
}

enum pii_kind pii_kind_from_name(const char *name)
{
    for (int k = 0; k < PII_KIND_COUNT; k++)
        if (name && strcmp(name, kinds[k].name) == 0)
            return (enum pii_kind)k;
    return PII_KIND_COUNT;
}

bool pii_luhn_valid(const char *s, size_t n)
{
    int sum = 0, digits = 0;
    for (size_t i = n; i-- > 0;) {
        char ch = s[i];
        if (ch == ' ' || ch == '-')
            continue;
        if (ch < '0' || ch > '9')
            return false;
        int d = ch - '0';
        if (digits % 2 == 1) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        digits++;
    }
    return digits > 0 && sum % 10 == 0;
}

static size_t count_digits(const char *s, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += s[i] >= '0' && s[i] <= '9';
    return d;
}

static bool candidate_ok(enum pii_kind kind, const char *s, size_t n)
{
    switch (kind) {
    case PII_CARD:
        return pii_luhn_valid(s, n);
    case PII_PHONE: {
        /* A bare run of digits is more often an id or a timestamp than a
         * phone number: ask for some structure (+, parentheses, separators). */
        size_t d = count_digits(s, n);
        return d >= 10 && d <= 15 && d < n;
    }
    default:
        return true;
    }
}

enum regex_result pii_find(const struct regex *re, enum pii_kind kind, const char *s, size_t n,
                           size_t start, size_t *m_start, size_t *m_end)
{
    size_t pos = start;
    for (;;) {
        size_t ms, me;
        enum regex_result res = regex_find(re, s, n, pos, 0, &ms, &me, NULL, NULL);
        if (res != REGEX_MATCH)
            return res;
        if (candidate_ok(kind, s + ms, me - ms)) {
            *m_start = ms;
            *m_end = me;
            return REGEX_MATCH;
        }
        pos = me > pos ? me : pos + 1;
        if (pos > n)
            return REGEX_NO_MATCH;
    }
}
