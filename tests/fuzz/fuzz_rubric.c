// layer: judges
/* Fuzz target for the rubric loader (judges/rubric_parse). */
#include "judges/rubric.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rubric *r = NULL;
    char err[ASSAY_ERRBUF_SIZE];
    if (rubric_parse("fuzz.json", (const char *)data, size, &r, err) == ASSAY_OK)
        rubric_free(r);
    return 0;
}
