/*
 * judges/prompt: renders the body of one Bedrock Converse request that asks a
 * judge model to grade one sample against one LLM rubric (DESIGN.md, "The
 * judge call"). Called by the LLM judge, which adds the modelId to the path.
 *
 * Shape: `system` = [{text: the rubric's fixed text and level anchors},
 * {cachePoint: {type: default}}], so that Bedrock's prompt cache can reuse
 * the fixed part; `messages` = one user turn whose text holds the sample's
 * fields, each fenced between boundary lines carrying a token of 128 random
 * bits drawn per request from a CSPRNG (drawn again if any field contains
 * it), with the instruction that fenced text is data to grade, never
 * instructions; `toolConfig` forcing the `submit_verdict` tool, whose schema
 * asks for `reasoning` first and then `score` bounded by the rubric's scale;
 * `inferenceConfig` {temperature, maxTokens}. The text-fallback variant has
 * no tools and asks for a final line "SCORE: <n>" instead.
 *
 * Threading: no shared state; the default random source is thread-safe.
 */
#ifndef ASSAY_JUDGES_PROMPT_H
#define ASSAY_JUDGES_PROMPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "judges/rubric.h"

#define PROMPT_TOOL_NAME "submit_verdict"
#define PROMPT_TOKEN_BYTES 16             /* random bytes per boundary token (32 hex digits) */
#define PROMPT_SAMPLE_MAX (1024u * 1024u) /* bytes of sample text, all fields together */

struct prompt_options {
    bool text_fallback; /* no tools; ask for "SCORE: <n>" (the rubric's fallback pattern) */
    int max_tokens;     /* 0: the rubric's max_tokens; the retry after max_tokens raises it */
    /*
     * Random source, a seam for tests: fills n bytes, returns 0 on success.
     * NULL means the CSPRNG (OpenSSL RAND_bytes).
     */
    int (*random_bytes)(void *ctx, unsigned char *out, size_t n);
    void *random_ctx;
};

/*
 * Renders the Converse request body for (r, s). opts may be NULL (tool mode,
 * rubric settings, CSPRNG). Returns ASSAY_OK and a new reference in *out, or
 * with *out NULL: ASSAY_ERR_INVALID_ARGUMENT (not an llm rubric, a field the
 * rubric needs is missing, a field is not valid UTF-8), ASSAY_ERR_TOO_LARGE
 * (sample text above PROMPT_SAMPLE_MAX), ASSAY_ERR_INTERNAL (no randomness).
 * Borrows r and s.
 */
enum assay_err prompt_render(const struct rubric *r, const struct rubric_sample *s,
                             const struct prompt_options *opts, json_t **out, char *errbuf);

/*
 * The fixed system text of r (the part before the cachePoint), appended to
 * out: identical for every request of a rubric and mode.
 */
struct buf;
void prompt_system_text(const struct rubric *r, bool text_fallback, struct buf *out);

#endif
