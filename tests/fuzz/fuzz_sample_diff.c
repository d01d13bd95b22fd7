// layer: server
/*
 * Differential fuzz target for server/sample: the fast parser against the
 * jansson parser (server/sample_private.h). The first byte picks the format
 * (bit 0: NDJSON), the trace header (bit 1), whether rubric names are checked
 * (bit 2) and a small max_batch (bit 3); the rest is the body. Aborts when
 * the fast parser accepts a body the jansson parser refuses, when the two
 * disagree on any member of any sample or on the stored text or document
 * (tests/support/sample_diff.h), or when sample_batch_parse answers
 * otherwise than the jansson parser.
 */
#include "server/sample.h"
#include "server/sample_private.h"
#include "tests/support/sample_diff.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int known(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "helpfulness") == 0 || strcmp(name, "faithfulness") == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum sample_format fmt = (data[0] & 1) ? SAMPLE_FORMAT_NDJSON : SAMPLE_FORMAT_JSON;
    struct sample_parse_opts o = {
        .max_batch = (data[0] & 8) ? 2 : 64,
        .now_ms = 1700000000000LL,
        .header_trace_id = (data[0] & 2) ? "Root=1-5759e988-bd862e3fe1be46a994272793" : NULL,
        .rubric_known = (data[0] & 4) ? known : NULL,
    };
    /* The body in a buffer of its own size, so that ASan sees any overread. */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body)
        abort();
    memcpy(body, data + 1, len);

    struct sample_batch slow, fast, pub;
    struct sample_error es, ep;
    enum assay_err err = sample_batch_parse_jansson(body, len, fmt, &o, &slow, &es);
    bool took = sample_batch_parse_fast(body, len, fmt, &o, &fast);
    if (took && err != ASSAY_OK) {
        fprintf(stderr, "fast parser accepted a refused body: %s\n", es.message);
        abort();
    }
    if (!took && (fast.n || fast.items))
        abort();
    size_t at;
    const char *why;
    if (took && (why = sample_batch_diff(&slow, &fast, &at)) != NULL) {
        fprintf(stderr, "sample %zu differs in %s\n", at, why);
        abort();
    }
    enum assay_err perr = sample_batch_parse(body, len, fmt, &o, &pub, &ep);
    if (perr != err || ep.code != es.code || ep.index != es.index ||
        strcmp(ep.field, es.field) != 0 || strcmp(ep.message, es.message) != 0)
        abort();
    if (perr == ASSAY_OK && sample_batch_diff(&slow, &pub, &at))
        abort();
    sample_batch_clear(&slow);
    sample_batch_clear(&fast);
    sample_batch_clear(&pub);
    free(body);
    return 0;
}
