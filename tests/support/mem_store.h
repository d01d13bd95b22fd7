/*
 * tests/support/mem_store: an in-memory store backend (server/store.h) for
 * in-process tests of the HTTP API: samples with idempotency on (app, id),
 * a queue-depth counter the test may set, and injected failures. Inserts
 * complete on a separate thread, as the SQLite backend's writer does.
 * Everything the API does not use answers ASSAY_ERR_NOT_IMPLEMENTED.
 * Thread-safe (one mutex).
 */
#ifndef ASSAY_TESTS_MEM_STORE_H
#define ASSAY_TESTS_MEM_STORE_H

#include <stdint.h>

#include "server/store.h"

struct store *mem_store_new(void);
/* Jobs reported as queued (added to by each sampled insert). */
void mem_store_set_queued(struct store *s, int64_t queued);
/* The next insert fails with err (ASSAY_OK: none). */
void mem_store_fail_next(struct store *s, enum assay_err err);
/* Samples stored so far. */
size_t mem_store_count(struct store *s);

#endif
