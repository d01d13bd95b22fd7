// layer: common
/* Fuzz target for the AWS time parsers in common/clock. */
#include "common/clock.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    int64_t v;
    clock_parse_iso8601(s, &v);
    clock_parse_http_date(s, &v);
    free(s);
    return 0;
}
