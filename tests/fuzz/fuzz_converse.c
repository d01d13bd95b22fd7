// layer: emulator
/*
 * Fuzz target for the emulator's Converse request checks
 * (bedrock_request_check) and, for bodies that pass them, its judge model
 * (judge_answer). Whatever the input: no crash, a message for every refusal,
 * and a tool verdict always inside the scale it read.
 */
#include "emulator/bedrock.h"
#include "emulator/judge.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!body)
        return 0;
    char message[512];
    const char *forced = NULL;
    if (!bedrock_request_check(body, message, sizeof message, &forced)) {
        if (!message[0])
            abort();
    } else {
        struct judge_reply r;
        judge_reply_init(&r);
        judge_answer(body, NULL, &r);
        if (r.tool_use && (!isfinite(r.score) || r.score < r.min || r.score > r.max))
            abort();
        if (!r.tool_use && r.text.len == 0 && r.quality != 0)
            abort();
        judge_reply_clear(&r);
    }
    json_decref(body);
    return 0;
}
