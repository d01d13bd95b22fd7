// layer: server
/*
 * Fuzz target for the sample parser and validator (server/sample): the first
 * byte picks the format (even: JSON, odd: NDJSON) and the trace header's
 * presence; the rest is the request body. Every accepted sample must satisfy
 * the rules the API relies on downstream.
 */
#include "server/sample.h"

#include <stdint.h>
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
        .max_batch = 64,
        .now_ms = 1700000000000LL,
        .header_trace_id = (data[0] & 2) ? "Root=1-5759e988-bd862e3fe1be46a994272793" : NULL,
        .rubric_known = known,
    };
    struct sample_batch b;
    struct sample_error e;
    if (sample_batch_parse((const char *)data + 1, size - 1, fmt, &o, &b, &e) == ASSAY_OK) {
        if (b.n == 0 || b.n > 64)
            abort();
        for (size_t i = 0; i < b.n; i++) {
            struct sample *s = &b.items[i];
            if (!sample_app_valid(s->app) || !sample_id_valid(s->id) || !s->output)
                abort();
            if (s->trace_id && !sample_trace_id_valid(s->trace_id))
                abort();
            for (size_t r = 0; r < s->n_rubrics; r++)
                if (!known(NULL, s->rubrics[r]))
                    abort();
            /* The stored text, spliced or serialised, is the document (the text
             * first: for a sample of the fast parser it is then made without
             * the document sample_doc builds). */
            size_t len = 0;
            char *text = sample_doc_text(s, &len);
            json_t *back = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
            json_t *doc = sample_doc(s);
            if (!back || !doc || !json_equal(back, doc))
                abort();
            json_decref(back);
            free(text);
        }
        sample_batch_clear(&b);
    } else if (b.n != 0 || b.items != NULL ||
               (e.code != ASSAY_ERR_INVALID_ARGUMENT && e.code != ASSAY_ERR_PARSE)) {
        abort();
    }
    enum sample_format f;
    char ct[64];
    size_t n = size - 1 < sizeof ct - 1 ? size - 1 : sizeof ct - 1;
    memcpy(ct, data + 1, n);
    ct[n] = '\0';
    (void)sample_format_from_content_type(ct, &f);
    return 0;
}
