/*
 * common/jsonutil: small helpers over jansson for reading untrusted JSON:
 * typed look-ups that return NULL / a default instead of asserting, and
 * parsing with a size cap. jansson objects are reference-counted; functions
 * here *borrow* what they return unless they say *new*.
 */
#ifndef ASSAY_COMMON_JSONUTIL_H
#define ASSAY_COMMON_JSONUTIL_H

#include <jansson.h>
#include <stddef.h>

#include "common/err.h"

/* The string under key, borrowed; NULL if absent or not a string. */
const char *jsonutil_str(const json_t *obj, const char *key);
/*
 * Parses n bytes as one JSON value. Returns a new reference, or NULL with a
 * detail (line, column, reason) in errbuf.
 */
json_t *jsonutil_parse(const char *text, size_t n, char *errbuf);
/* Compact serialisation; a new string the caller frees. */
char *jsonutil_dump(const json_t *v);

#endif
