/*
 * emulator/judge: the emulator's deterministic model. Given a validated
 * Converse request it decides what a model would answer:
 *   - a judge call (a fenced sample, as judges/prompt renders it) with a tool
 *     to call: a verdict for that tool, its score read off the tool schema's
 *     `score` property (minimum, maximum, integer or number) and computed from
 *     simple features of the fenced fields (token overlap of the answer with
 *     the reference or the context, refusal phrases, length, emptiness), so
 *     that better answers get better scores; with a short reasoning;
 *   - the text fallback of a judge call (no tools): reasoning and a final
 *     line "SCORE: n" on the scale stated in the prompt;
 *   - any other prompt: a deterministic text answer (or the scenario's
 *     canned answer whose `match` the prompt contains).
 * Called by emulator/bedrock. Pure functions; reentrant.
 */
#ifndef ASSAY_EMULATOR_JUDGE_H
#define ASSAY_EMULATOR_JUDGE_H

#include <jansson.h>
#include <stdbool.h>

#include "common/buf.h"

struct judge_reply {
    bool tool_use;      /* answer with a toolUse block */
    char tool_name[65]; /* the tool called */
    double score;       /* on the tool's or the prompt's scale */
    double min, max;
    bool integer;
    double quality;       /* the feature score behind it, 0..1 */
    struct buf reasoning; /* the verdict's reasoning (tool_use) */
    struct buf text;      /* the text answer (!tool_use) */
};

void judge_reply_init(struct judge_reply *r);
void judge_reply_clear(struct judge_reply *r);

/*
 * Fills r for the Converse request body req (borrowed; already validated).
 * answers: the scenario's canned answers for plain prompts, or NULL.
 */
void judge_answer(const json_t *req, const json_t *answers, struct judge_reply *r);

/* The 0..1 quality of answer given the other fields (any may be NULL). */
double judge_quality(const char *request, const char *context, const char *reference,
                     const char *answer, struct buf *why);

#endif
