/*
 * aws/profile: the AWS shared config and credentials files (~/.aws/config,
 * ~/.aws/credentials), parsed the way the AWS SDKs read them. Used by
 * aws/credentials (the profile provider, region resolution) and by anything
 * else that needs a profile setting.
 *
 * Format: INI-like. Sections are `[name]` in the credentials file and
 * `[profile name]` (or `[default]`) in the config file; other config sections
 * (`[sso-session x]`, `[services x]`) are read past. Properties are
 * `key = value`; full-line comments start with `#` or `;`, and a comment after
 * a value must follow whitespace (`key = v # note`). An indented line after a
 * property continues its value; after a property with an empty value,
 * indented `key = value` lines are its sub-properties, stored as
 * "parent.key" so they never shadow top-level keys. Malformed lines are
 * skipped and counted; later definitions of a key win; repeated sections
 * merge. Keys match case-insensitively, profile names exactly.
 *
 * Threading: a parsed file is immutable and may be read from any thread.
 * Ownership: profile_file_* returns a new object the caller frees with
 * profile_file_free, which zeroes values (they may be secrets).
 */
#ifndef ASSAY_AWS_PROFILE_H
#define ASSAY_AWS_PROFILE_H

#include <stddef.h>

#include "common/err.h"

#define PROFILE_FILE_MAX_BYTES (1024 * 1024)

enum profile_file_kind { PROFILE_FILE_CONFIG, PROFILE_FILE_CREDENTIALS };

struct profile_file;

/* Parses len bytes of text (need not be NUL-terminated). Never fails. */
struct profile_file *profile_file_parse(const char *text, size_t len, enum profile_file_kind kind);
/*
 * Reads and parses the file at path. ASSAY_ERR_NOT_FOUND when it does not
 * exist, ASSAY_ERR_IO when it cannot be read, ASSAY_ERR_TOO_LARGE above
 * PROFILE_FILE_MAX_BYTES; *out is NULL on error. Logs one warning naming the
 * path and the first malformed line's number (never its text) when lines were
 * skipped.
 */
enum assay_err profile_file_load(const char *path, enum profile_file_kind kind,
                                 struct profile_file **out, char *errbuf);
void profile_file_free(struct profile_file *f);

/* The value of key in profile (borrowed, valid until free), or NULL. f may be NULL. */
const char *profile_file_get(const struct profile_file *f, const char *profile, const char *key);
/* Nonzero when the file has a section for this profile. f may be NULL. */
int profile_file_has(const struct profile_file *f, const char *profile);
/* Lines skipped as malformed, and the 1-based number of the first (0: none). */
size_t profile_file_malformed(const struct profile_file *f, size_t *first_line);

#endif
