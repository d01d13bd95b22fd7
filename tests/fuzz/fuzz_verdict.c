// layer: judges
/*
 * Fuzz target for the Converse response parser (judges/verdict_parse), run
 * against a 1..5 integer rubric and a 0..1 real one. Whatever the input, the
 * verdict is either unscorable or a finite score inside the scale.
 */
#include "judges/verdict.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char likert[] =
    "{\"name\":\"f\",\"description\":\"d\",\"kind\":\"llm\",\"pass_threshold\":4,"
    "\"fields\":[\"output\"],\"system\":\"s\",\"criteria\":\"c\","
    "\"scale\":{\"min\":1,\"max\":5,\"integer\":true},\"anchors\":["
    "{\"score\":1,\"text\":\"a\"},{\"score\":2,\"text\":\"b\"},{\"score\":3,\"text\":\"c\"},"
    "{\"score\":4,\"text\":\"d\"},{\"score\":5,\"text\":\"e\"}]}";
static const char fraction[] =
    "{\"name\":\"g\",\"description\":\"d\",\"kind\":\"llm\",\"pass_threshold\":0.5,"
    "\"fields\":[\"output\"],\"system\":\"s\",\"criteria\":\"c\","
    "\"scale\":{\"min\":0,\"max\":1,\"integer\":false},\"anchors\":["
    "{\"score\":0,\"text\":\"a\"},{\"score\":1,\"text\":\"b\"}]}";

static void check(const struct rubric *r, const uint8_t *data, size_t size)
{
    struct verdict v;
    verdict_init(&v);
    verdict_parse(r, (const char *)data, size, &v);
    if (v.outcome == VERDICT_SCORED &&
        (!isfinite(v.raw_score) || v.raw_score < r->scale.min || v.raw_score > r->scale.max ||
         v.score < 0 || v.score > 1 || (r->scale.integer && v.raw_score != floor(v.raw_score))))
        abort();
    if (v.reasoning && strlen(v.reasoning) > VERDICT_REASONING_MAX)
        abort();
    verdict_clear(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct rubric *a, *b;
    if (!a) {
        char err[ASSAY_ERRBUF_SIZE];
        if (rubric_parse("likert", likert, sizeof likert - 1, &a, err) ||
            rubric_parse("fraction", fraction, sizeof fraction - 1, &b, err))
            abort();
    }
    check(a, data, size);
    check(b, data, size);
    return 0;
}
