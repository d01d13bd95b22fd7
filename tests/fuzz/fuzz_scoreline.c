// layer: monitor
/* Fuzz target for monitor/scoreline, the line parser of `assay backtest`. */
#include "monitor/scoreline.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    double score = -1;
    char why[160];
    /* Not NUL-terminated on purpose: the parser must respect len. */
    if (scoreline_parse((const char *)data, size, &score, why, sizeof why) == 0 &&
        !(score >= 0 && score <= 1))
        abort();
    return 0;
}
