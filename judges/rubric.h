/*
 * judges/rubric: one rubric per JSON file (format: rubrics/README.md), loaded
 * and validated whole, and a registry that loads a directory of them
 * (config key rubrics_dir) and finds rubrics by name. Every other judges/
 * module takes a loaded rubric.
 *
 * Ownership: a struct rubric is a heap object (rubric_load / rubric_free);
 * all its strings and arrays belong to it. A registry owns the rubrics it
 * loaded; rubric_registry_find returns a borrowed pointer valid until the
 * registry is freed. Loaded rubrics are immutable, so both may be shared
 * read-only by any number of threads.
 *
 * Errors name the file and the field ("rubrics/x.json: scale.max: ...").
 */
#ifndef ASSAY_JUDGES_RUBRIC_H
#define ASSAY_JUDGES_RUBRIC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

struct regex;

/* Caps on what a rubric file may hold; larger input is refused. */
#define RUBRIC_FILE_MAX (256u * 1024u)
#define RUBRIC_TEXT_MAX (32u * 1024u) /* any one text field */
#define RUBRIC_REPEATS_MAX 9
#define RUBRIC_MAX_TOKENS_MAX 32768
#define RUBRIC_LEVELS_MAX 101 /* anchors of an integer scale */

enum rubric_kind { RUBRIC_KIND_LLM, RUBRIC_KIND_RULE, RUBRIC_KIND_REFERENCE };

/* Sample fields, as a bit set. */
enum rubric_field {
    RUBRIC_FIELD_INPUT = 1u << 0,
    RUBRIC_FIELD_OUTPUT = 1u << 1,
    RUBRIC_FIELD_CONTEXT = 1u << 2,
    RUBRIC_FIELD_REFERENCE = 1u << 3
};

/* The text a judge grades; every pointer is borrowed and may be NULL (absent). */
struct rubric_sample {
    const char *input;     /* the prompt the application received */
    const char *output;    /* the application's answer, the thing graded */
    const char *context;   /* retrieved passages the answer should rest on */
    const char *reference; /* a known-good answer */
    /* Who the sample is from, for the callers' metrics (cost attribution);
     * the judges do not grade them. NULL when unknown. */
    const char *app;
    const json_t *tags; /* the sample's "tags" object (string values) */
    /* What the pii detectors found in the raw text before it was redacted at
     * ingest (the stored document's "_pii": {"output": {"email": 1, ...}, ...},
     * kinds and counts per field), or NULL. The pii-leak rule counts it. */
    const json_t *pii;
};

struct rubric_scale {
    double min;
    double max; /* > min */
    bool integer;
};

/* A description of what one score level means (integer scales: every level). */
struct rubric_anchor {
    double score;
    char *text;
};

struct rubric {
    char *name; /* [a-z0-9-], 1..64 chars; unique within a registry */
    char *description;
    char *path;       /* the file it came from */
    char version[65]; /* lower-case hex SHA-256 of the file's bytes */
    enum rubric_kind kind;
    struct rubric_scale scale;
    double pass_threshold; /* raw scale; a score >= it passes. Higher is better. */
    unsigned fields;       /* enum rubric_field bits the sample must carry */

    /* kind llm */
    char *system;   /* the judge's role and task */
    char *criteria; /* what to look at */
    struct rubric_anchor *anchors;
    size_t n_anchors;          /* sorted by score, ascending */
    char *fallback_pattern;    /* PCRE2 with a named group "score" */
    struct regex *fallback_re; /* compiled fallback_pattern */
    char *model_id;            /* NULL: the configured judge model */
    double temperature;        /* default 0 */
    int max_tokens;            /* default 1024 */
    int repeats;               /* self-consistency: verdicts per job, default 1 */

    /* kind rule */
    char *rule;     /* pii-leak, json-valid, max-length, refusal-phrases, regex */
    json_t *params; /* the rule's parameters (an object; kept reference) */

    /* kind reference */
    char *metric; /* exact-match, token-f1, rouge-l */
};

/* The default fallback pattern: a last line "SCORE: <number>". */
#define RUBRIC_FALLBACK_PATTERN_DEFAULT                                                            \
    "(?m)^[ \\t*]*SCORE[ \\t*]*:[ \\t*]*(?<score>[-+]?[0-9]+(?:\\.[0-9]+)?)[ \\t*]*$"

/* 1 when s is a valid rubric name: 1-64 characters of [a-z0-9_-]. */
bool rubric_name_valid(const char *s);

/*
 * Parses and validates len bytes of a rubric file; path (borrowed) names the
 * source in errors and is copied into the rubric. Returns ASSAY_OK and sets
 * *out to a new rubric, or an error (ASSAY_ERR_PARSE for JSON syntax,
 * ASSAY_ERR_CONFIG for a field that is missing or wrong, ASSAY_ERR_TOO_LARGE)
 * with file and field in errbuf; *out is then NULL.
 */
enum assay_err rubric_parse(const char *path, const char *text, size_t len, struct rubric **out,
                            char *errbuf);
/* Reads the file at path (at most RUBRIC_FILE_MAX bytes) and parses it. */
enum assay_err rubric_load(const char *path, struct rubric **out, char *errbuf);
void rubric_free(struct rubric *r);

const char *rubric_kind_name(enum rubric_kind kind);
/* "input", "output", "context", "reference" for one bit; NULL otherwise. */
const char *rubric_field_name(enum rubric_field field);
/* The field's text in s (borrowed), NULL when absent. */
const char *rubric_sample_field(const struct rubric_sample *s, enum rubric_field field);
/*
 * ASSAY_OK when s carries every field r needs (non-NULL); else
 * ASSAY_ERR_INVALID_ARGUMENT naming the first missing field.
 */
enum assay_err rubric_sample_check(const struct rubric *r, const struct rubric_sample *s,
                                   char *errbuf);
/* The anchor text for an integer level, or NULL. Borrowed. */
const char *rubric_anchor_text(const struct rubric *r, double score);

struct rubric_registry;

/*
 * Loads every *.json file of dir (not recursing), in name order. Any broken
 * file fails the whole load (the error names it), as does a name used twice.
 * Returns ASSAY_OK and a new registry in *out, or an error with *out NULL.
 */
enum assay_err rubric_registry_load(const char *dir, struct rubric_registry **out, char *errbuf);
void rubric_registry_free(struct rubric_registry *reg);
/* Borrowed; NULL when no rubric has that name. */
const struct rubric *rubric_registry_find(const struct rubric_registry *reg, const char *name);
size_t rubric_registry_count(const struct rubric_registry *reg);
/* The i-th rubric in name order (borrowed); NULL when i is out of range. */
const struct rubric *rubric_registry_at(const struct rubric_registry *reg, size_t i);

#endif
