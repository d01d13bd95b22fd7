/*
 * server/retention: bounded, repeated store_retention_run calls; see the header.
 */
#include "server/retention.h"

#include "common/log.h"
#include "server/store.h"

enum assay_err retention_sweep(struct store *s, int64_t retention_days, int64_t now_ms,
                               size_t batch, int max_batches, int64_t *deleted, char *errbuf)
{
    int64_t total = 0;
    enum assay_err err = ASSAY_OK;
    if (retention_days > 0 && batch > 0) {
        int64_t cutoff_ms = now_ms - retention_days * 86400 * INT64_C(1000);
        for (int i = 0; i < max_batches; i++) {
            int64_t n = 0;
            err = store_retention_run(s, cutoff_ms, batch, &n, errbuf);
            total += n;
            if (err != ASSAY_OK || n < (int64_t)batch)
                break;
        }
        if (total > 0 || err != ASSAY_OK)
            LOG_INFO("retention.swept", LOG_I("deleted", total),
                     LOG_I("retention_days", retention_days),
                     LOG_S("error", err == ASSAY_OK ? NULL : assay_err_name(err)));
    }
    if (deleted)
        *deleted = total;
    return err;
}
