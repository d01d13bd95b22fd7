// layer: aws
/* Fuzz target for the STS AssumeRoleWithWebIdentity XML extractor in aws/creds_sts.c. */
#include "aws/creds_private.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 400};
    for (int i = 0; i < 2; i++) {
        struct creds c;
        char eb[ASSAY_ERRBUF_SIZE];
        creds_init(&c);
        enum assay_err err = creds_parse_sts((const char *)data, size, statuses[i], &c, eb);
        if (err == ASSAY_OK && !creds_is_set(&c))
            abort();
        creds_clear(&c);
    }
    const char *in;
    size_t n;
    if (creds_xml_element((const char *)data, size, "Credentials", &in, &n) == 0) {
        char *t = creds_xml_text(in, n);
        free(t);
    }
    char *t = creds_xml_text((const char *)data, size);
    free(t);
    return 0;
}
