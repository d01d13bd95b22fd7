// layer: judges
/*
 * Fuzz target for the dataset loader (judges/dataset_parse): the input is
 * parsed once as a golden set and once as a calibration set (the kind follows
 * the file name), with small caps so that the limits are reached too; a
 * loaded set is also turned into samples and checked against no rubrics.
 */
#include "judges/dataset.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const char *path, const uint8_t *data, size_t size)
{
    struct dataset *d = NULL;
    struct dataset_limits lim = {.line_max = 4096, .items_max = 64, .file_max = 0};
    char err[ASSAY_ERRBUF_SIZE];
    if (dataset_parse(path, (const char *)data, size, &lim, &d, err) != ASSAY_OK)
        return;
    for (size_t i = 0; i < d->n_items; i++) {
        struct rubric_sample s;
        dataset_item_sample(&d->items[i], "answer", &s);
        double score;
        (void)dataset_item_human_score(&d->items[i], "helpfulness", &score);
        if (dataset_find(d, d->items[i].id) == NULL)
            __builtin_trap(); /* every loaded id must be found */
        (void)strlen(d->items[i].input);
    }
    dataset_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one("fuzz.jsonl", data, size);
    one("fuzz.calibration.jsonl", data, size);
    return 0;
}
