// layer: aws
/* Fuzz target for the SNS Publish answer reader in aws/sns.c (MessageId, Error/Code). */
#include "aws/sns.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 400, 503};
    for (int i = 0; i < 3; i++) {
        struct sns_result res;
        memset(&res, 0, sizeof res);
        sns_publish_answer_parse(statuses[i], (const char *)data, size, &res);
        if (res.err == ASSAY_OK && (statuses[i] != 200 || !res.message_id[0]))
            abort();
        if (memchr(res.error_code, '\0', sizeof res.error_code) == NULL ||
            memchr(res.message_id, '\0', sizeof res.message_id) == NULL)
            abort();
    }
    return 0;
}
