// layer: aws
/* Fuzz target for the container / IMDS credentials JSON reader in aws/creds_http.c. */
#include "aws/creds_private.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int require = 0; require < 2; require++) {
        struct creds c;
        char eb[ASSAY_ERRBUF_SIZE];
        creds_init(&c);
        enum assay_err err = creds_parse_json((const char *)data, size, require, &c, eb);
        if (err == ASSAY_OK && !creds_is_set(&c))
            abort(); /* success always yields a key pair */
        if (err != ASSAY_OK && creds_is_set(&c))
            abort(); /* failure leaves nothing behind */
        creds_clear(&c);
    }
    return 0;
}
