/*
 * tests/support/sample_diff: compares what the two sample parsers
 * (server/sample_private.h) made of one body, member by member, for
 * tests/unit/server/test_sample_fast.c and tests/fuzz/fuzz_sample_diff.c.
 * Header-only (static inline) so that the fuzz glue, one source per target,
 * needs no special case.
 *
 * Ids generated for a sample without one are random: two generated ids are
 * equal when both are valid, and the documents are compared with one's id
 * written over the other's.
 */
#ifndef ASSAY_TESTS_SUPPORT_SAMPLE_DIFF_H
#define ASSAY_TESTS_SUPPORT_SAMPLE_DIFF_H

#include "server/sample.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static inline bool sample_diff_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Writes id over every occurrence of other (the same length) in text. */
static inline void sample_diff_swap_id(char *text, const char *other, const char *id)
{
    size_t n = strlen(other);
    if (n == 0 || strlen(id) != n)
        return;
    for (char *p = strstr(text, other); p; p = strstr(p + n, other))
        memcpy(p, id, n);
}

/* True when the texts match once b's generated id is written as a's. */
static inline bool sample_diff_text_eq(char *ta, char *tb, const struct sample *a,
                                       const struct sample *b)
{
    if (!ta || !tb)
        return false;
    if (a->id_generated && b->id_generated)
        sample_diff_swap_id(tb, b->id, a->id);
    return strcmp(ta, tb) == 0;
}

/*
 * NULL when a (the jansson parser's) and b (the fast parser's) are the same
 * sample, else the name of the first member that differs. Calls
 * sample_doc_text before sample_doc, so that b's text is made without a
 * built document, then sample_doc on both.
 */
static inline const char *sample_diff(struct sample *a, struct sample *b)
{
    if (!sample_diff_str_eq(a->app, b->app))
        return "app";
    if (a->id_generated != b->id_generated)
        return "id_generated";
    if (a->id_generated ? !(sample_id_valid(a->id) && sample_id_valid(b->id) &&
                            strlen(a->id) == 36 && strlen(b->id) == 36)
                        : !sample_diff_str_eq(a->id, b->id))
        return "id";
    if (!sample_diff_str_eq(a->output, b->output))
        return "output";
    if (!sample_diff_str_eq(a->input, b->input))
        return "input";
    if (!sample_diff_str_eq(a->context, b->context))
        return "context";
    if (!sample_diff_str_eq(a->reference, b->reference))
        return "reference";
    if (!sample_diff_str_eq(a->model_id, b->model_id))
        return "model_id";
    if (a->n_rubrics != b->n_rubrics || (a->rubrics == NULL) != (b->rubrics == NULL))
        return "n_rubrics";
    for (size_t i = 0; i < a->n_rubrics; i++)
        if (!sample_diff_str_eq(a->rubrics[i], b->rubrics[i]))
            return "rubrics";
    if (!sample_diff_str_eq(a->trace_id, b->trace_id))
        return "trace_id";
    if (a->timestamp_ms != b->timestamp_ms)
        return "timestamp_ms";
    if (a->feedback != b->feedback)
        return "feedback";
    if (a->force != b->force)
        return "force";
    if (a->raw != b->raw || a->raw_len != b->raw_len)
        return "raw";
    if (a->raw_add_id != b->raw_add_id || a->raw_add_trace_id != b->raw_add_trace_id ||
        a->raw_add_timestamp != b->raw_add_timestamp)
        return "raw_add";

    const char *why = NULL;
    size_t la = 0, lb = 0;
    char *ta = sample_doc_text(a, &la), *tb = sample_doc_text(b, &lb);
    if (la != lb || !sample_diff_text_eq(ta, tb, a, b))
        why = "doc_text";
    free(ta);
    free(tb);
    if (why)
        return why;
    json_t *da = sample_doc(a), *db = sample_doc(b);
    ta = da ? json_dumps(da, JSON_COMPACT) : NULL;
    tb = db ? json_dumps(db, JSON_COMPACT) : NULL;
    if (!sample_diff_text_eq(ta, tb, a, b))
        why = "doc";
    free(ta);
    free(tb);
    return why;
}

/* As sample_diff for whole batches; *index the sample that differs. */
static inline const char *sample_batch_diff(struct sample_batch *a, struct sample_batch *b,
                                            size_t *index)
{
    *index = 0;
    if (a->n != b->n)
        return "n";
    for (size_t i = 0; i < a->n; i++) {
        const char *why = sample_diff(&a->items[i], &b->items[i]);
        if (why) {
            *index = i;
            return why;
        }
    }
    return NULL;
}

#endif
