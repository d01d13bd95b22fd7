/*
 * server/retention: the periodic clean-up of judged samples older than
 * server.retention_days (DESIGN.md: "retention of judged samples
 * configurable"). assay serve calls retention_sweep from its main loop every
 * server.retention_interval_s. Deletion goes in bounded batches
 * (store_retention_run), so the store's writer is never held for long;
 * queued and judging samples are never deleted.
 * Threading: call from one thread at a time; the store is thread-safe.
 */
#ifndef ASSAY_SERVER_RETENTION_H
#define ASSAY_SERVER_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct store;

/*
 * Deletes finished samples received more than retention_days before now_ms,
 * batch samples at a time, at most max_batches batches (the rest waits for the
 * next sweep). retention_days 0 keeps everything. *deleted (may be NULL) gets
 * the number deleted. On an error, what was deleted before it stays deleted.
 */
enum assay_err retention_sweep(struct store *s, int64_t retention_days, int64_t now_ms,
                               size_t batch, int max_batches, int64_t *deleted, char *errbuf);

#endif
