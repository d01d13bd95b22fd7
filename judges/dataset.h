/*
 * judges/dataset: golden sets and calibration sets (format:
 * datasets/README.md), one JSON item a line, loaded and validated whole.
 * Called by the golden-set runner (server/scheduler, `assay eval`), which
 * sends each item's input to the target model and judges the answer, and by
 * the calibration runs, which re-judge the outputs a file already holds.
 *
 * The kind of a file is its name: one ending in ".calibration.jsonl" is a
 * calibration set (every item has `output` and `human_scores`), any other a
 * golden set (no item may have them), so a misnamed file is an error rather
 * than a silently different run.
 *
 * Ownership: a struct dataset is a heap object (dataset_load, dataset_parse /
 * dataset_free) and owns everything reachable from it; each item keeps its
 * line's JSON document, and the item's `const char *` fields are borrowed from
 * it. Loaded datasets are immutable, so one may be read by any number of
 * threads at once.
 *
 * Errors name the file, the line and the field:
 *   "datasets/support-qa.jsonl:17: reference: must be a non-empty string"
 * ("(line)" stands for the whole line, "(file)" for the whole file).
 */
#ifndef ASSAY_JUDGES_DATASET_H
#define ASSAY_JUDGES_DATASET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "judges/rubric.h"

/* The file name suffix that marks a calibration set. */
#define DATASET_CALIBRATION_SUFFIX ".calibration.jsonl"

/* Default caps (struct dataset_limits); larger input is refused. */
#define DATASET_LINE_MAX_DEFAULT (256u * 1024u)        /* bytes in one line */
#define DATASET_ITEMS_MAX_DEFAULT 10000u               /* items in one file */
#define DATASET_FILE_MAX_DEFAULT (64u * 1024u * 1024u) /* bytes in one file */

/* Fixed caps of the format. */
#define DATASET_ID_MAX 128
#define DATASET_MESSAGES_MAX 64
#define DATASET_BLOCKS_MAX 64 /* content blocks in one message */
#define DATASET_PASSAGES_MAX 32
#define DATASET_RUBRICS_MAX 32
#define DATASET_TAGS_MAX 16
#define DATASET_TAG_KEY_MAX 64    /* characters (code points) */
#define DATASET_TAG_VALUE_MAX 256 /* characters (code points) */

enum dataset_kind { DATASET_KIND_GOLDEN, DATASET_KIND_CALIBRATION };

struct dataset_limits {
    size_t line_max;  /* bytes in one line, without its end of line */
    size_t items_max; /* items in the file */
    size_t file_max;  /* bytes read by dataset_load */
};

struct dataset_tag {
    const char *key;   /* borrowed from the item's doc */
    const char *value; /* borrowed */
};

/* A human score of a calibration item, on the rubric's own (raw) scale. */
struct dataset_score {
    const char *rubric; /* borrowed */
    double score;
};

struct dataset_item {
    size_t line;    /* 1-based line of the file the item is on */
    json_t *doc;    /* the line's JSON object (a reference the item holds) */
    const char *id; /* borrowed: 1-128 of [A-Za-z0-9._:-], unique in the file */
    /*
     * The prompt as text, owned: the string, or the messages flattened (the
     * text blocks of a message joined by newlines; with more than one message
     * each is prefixed "user: " or "assistant: ", messages joined by blank
     * lines). This is what a judge reads as the sample's input.
     */
    char *input;
    /*
     * A reference the item holds: the Converse messages, each content given
     * as a string turned into one text block, ready to send to the target
     * model; NULL when input was a string.
     */
    json_t *messages;
    const char **passages; /* owned array of borrowed strings: the context passages */
    size_t n_passages;     /* 0: no context */
    char *context;         /* owned: the passages joined by blank lines, or NULL */
    const char *reference; /* borrowed; required in golden sets, optional in calibration */
    const char **rubrics;  /* owned array of borrowed names overriding the run's, or NULL */
    size_t n_rubrics;
    struct dataset_tag *tags; /* owned array, in the file's key order */
    size_t n_tags;
    /* Calibration sets only (NULL / 0 in golden sets). */
    const char *output;                 /* borrowed: the answer the humans scored (may be "") */
    struct dataset_score *human_scores; /* owned array, in the file's key order */
    size_t n_human_scores;
};

struct dataset {
    char *path; /* as given to the loader */
    /* The file name without folders and without ".calibration.jsonl" or
     * ".jsonl": the Dataset dimension of the golden-set metrics. */
    char *name;
    enum dataset_kind kind;
    struct dataset_item *items; /* in file order */
    size_t n_items;             /* at least 1 */
};

/* Fills *l with the DATASET_*_DEFAULT caps. */
void dataset_limits_default(struct dataset_limits *l);

/* DATASET_KIND_CALIBRATION when path ends in DATASET_CALIBRATION_SUFFIX. */
enum dataset_kind dataset_kind_from_path(const char *path);
/* "golden" or "calibration". */
const char *dataset_kind_name(enum dataset_kind kind);

/*
 * Parses and validates len bytes of a dataset file (text need not be
 * NUL-terminated). path (borrowed, copied) names the file in errors and, by
 * its suffix, decides the kind. lim NULL means the defaults; a zero field of
 * lim means that field's default. Returns ASSAY_OK and a new dataset in *out,
 * or an error with file, line and field in errbuf and *out NULL:
 * ASSAY_ERR_PARSE for a line that is not JSON, ASSAY_ERR_TOO_LARGE for a cap,
 * ASSAY_ERR_INVALID_ARGUMENT for any other rule broken (a file without items
 * included).
 */
enum assay_err dataset_parse(const char *path, const char *text, size_t len,
                             const struct dataset_limits *lim, struct dataset **out, char *errbuf);

/*
 * Reads the file at path (at most lim->file_max bytes) and parses it as
 * dataset_parse does; ASSAY_ERR_IO when it cannot be read.
 */
enum assay_err dataset_load(const char *path, const struct dataset_limits *lim,
                            struct dataset **out, char *errbuf);

/* Frees d and everything it owns. Accepts NULL. */
void dataset_free(struct dataset *d);

/* The item with that id (borrowed), or NULL. A linear search. */
const struct dataset_item *dataset_find(const struct dataset *d, const char *id);

/*
 * Checks d against a rubric registry (borrowed): every name in an item's
 * `rubrics` and `human_scores` is a known rubric; every human score lies within
 * its rubric's scale (and is a whole number on an integer scale); and an item
 * carries the fields (context, reference) that every rubric it names needs.
 * The run's own rubrics are the runner's to check. Returns ASSAY_OK, or
 * ASSAY_ERR_INVALID_ARGUMENT naming file, line and field of the first problem.
 */
enum assay_err dataset_rubrics_check(const struct dataset *d, const struct rubric_registry *reg,
                                     char *errbuf);

/*
 * Fills *out with the sample a judge grades for item: its input, context and
 * reference, and output (borrowed; NULL takes the calibration item's own
 * output). Every pointer is borrowed from item or output; nothing to free.
 */
void dataset_item_sample(const struct dataset_item *item, const char *output,
                         struct rubric_sample *out);

/* The human score of item for rubric; false when it has none. */
bool dataset_item_human_score(const struct dataset_item *item, const char *rubric, double *out);

#endif
