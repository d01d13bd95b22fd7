// layer: aws
/* Fuzz target for aws/profile: the shared config and credentials file parser. */
#include "aws/profile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"region", "aws_access_key_id", "s3.region", "k"};
    for (int kind = 0; kind < 2; kind++) {
        struct profile_file *f = profile_file_parse(
            (const char *)data, size, kind ? PROFILE_FILE_CREDENTIALS : PROFILE_FILE_CONFIG);
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            const char *v = profile_file_get(f, "default", keys[i]);
            if (v && strlen(v) > size)
                abort(); /* a value is never longer than its input */
        }
        profile_file_has(f, "default");
        profile_file_malformed(f, NULL);
        profile_file_free(f);
    }
    return 0;
}
