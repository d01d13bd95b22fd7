/*
 * monitor/scoreline: parses one line of a score stream, the input of
 * `assay backtest`: a bare number in [0, 1] or a JSON object with a numeric
 * "score" in [0, 1] (other keys ignored). Blanks around the value and a
 * trailing '\r' are allowed; anything else is refused with a reason, never
 * guessed. Plain decimals are converted exactly without strtod; the exact form
 * {"score": x} is read without jansson.
 * Thread-safe; no allocation except for JSON lines and very long numbers.
 */
#ifndef ASSAY_MONITOR_SCORELINE_H
#define ASSAY_MONITOR_SCORELINE_H

#include <stddef.h>

/*
 * Parses the line [line, line + len) (without its '\n'; need not be
 * NUL-terminated). Returns 0 and the score in *score, or -1 with a one-line
 * reason in why (why_n bytes, always terminated) and *score untouched.
 */
int scoreline_parse(const char *line, size_t len, double *score, char *why, size_t why_n);

#endif
