/*
 * server/store_private: what a store backend implements (the vtable behind
 * struct store) and the helpers backends share for filling output
 * containers. Included by server/store.c and the backends only; callers use
 * server/store.h.
 *
 * Each backend embeds struct store as its first member and points ops at a
 * static table. store.c checks arguments common to every backend before it
 * dispatches, so an op may assume its pointers are non-NULL where store.h
 * says they are required.
 */
#ifndef ASSAY_SERVER_STORE_PRIVATE_H
#define ASSAY_SERVER_STORE_PRIVATE_H

#include "server/store.h"

struct store_ops {
    enum assay_err (*sample_insert_async)(struct store *s, struct store_sample *samples, size_t n,
                                          store_insert_cb cb, void *ctx, char *errbuf);
    /*
     * Optional (NULL: store.c runs the requests one by one, blocking). Runs
     * the requests whose err is ASSAY_OK on entry (store.c has checked them)
     * and leaves the others as they are.
     */
    enum assay_err (*sample_insert_group)(struct store *s, struct store_insert *reqs, size_t n,
                                          uint64_t *ticket, char *errbuf);
    /* Optional (NULL: every commit is durable when it returns). */
    enum assay_err (*sync)(struct store *s, uint64_t ticket, char *errbuf);
    enum assay_err (*job_claim)(struct store *s, size_t max, struct store_job_batch *out,
                                char *errbuf);
    enum assay_err (*job_release)(struct store *s, int64_t job_id, char *errbuf);
    enum assay_err (*queue_depth)(struct store *s, int64_t *queued, int64_t *judging);
    enum assay_err (*job_complete)(struct store *s, const struct store_completion *c, int *recorded,
                                   char *errbuf);
    enum assay_err (*sample_get)(struct store *s, const char *app, const char *id,
                                 struct store_sample_info *out, char *errbuf);
    enum assay_err (*series_put)(struct store *s, const struct store_series *series, char *errbuf);
    enum assay_err (*series_get)(struct store *s, const char *app, const char *rubric,
                                 const char *model_id, struct store_series_list *out, char *errbuf);
    enum assay_err (*series_list)(struct store *s, struct store_series_list *out, char *errbuf);
    enum assay_err (*alarm_append)(struct store *s, const struct store_alarm *alarm,
                                   int64_t *alarm_id, char *errbuf);
    enum assay_err (*alarm_list)(struct store *s, int64_t since_ms, size_t limit,
                                 struct store_alarm_list *out, char *errbuf);
    enum assay_err (*outbox_enqueue)(struct store *s, const void *payload, size_t len,
                                     int64_t created_ms, int64_t *item_id, char *errbuf);
    enum assay_err (*outbox_peek)(struct store *s, size_t max, struct store_outbox_list *out,
                                  char *errbuf);
    enum assay_err (*outbox_delete)(struct store *s, const int64_t *item_ids, size_t n,
                                    char *errbuf);
    enum assay_err (*outbox_expire)(struct store *s, int64_t cutoff_ms, int64_t *dropped,
                                    char *errbuf);
    enum assay_err (*outbox_count)(struct store *s, int64_t *count);
    enum assay_err (*golden_run_create)(struct store *s, const struct store_golden_run *run,
                                        char *errbuf);
    enum assay_err (*golden_run_update)(struct store *s, const char *run_id, const char *status,
                                        int64_t done, int64_t total, const char *result_json,
                                        char *errbuf);
    enum assay_err (*golden_run_get)(struct store *s, const char *run_id,
                                     struct store_golden_run_list *out, char *errbuf);
    enum assay_err (*golden_run_latest)(struct store *s, const char *dataset, const char *status,
                                        const char *except_run_id,
                                        struct store_golden_run_list *out, char *errbuf);
    enum assay_err (*golden_item_put)(struct store *s, const struct store_golden_item *item,
                                      char *errbuf);
    enum assay_err (*golden_item_list)(struct store *s, const char *run_id,
                                       struct store_golden_item_list *out, char *errbuf);
    enum assay_err (*retention_run)(struct store *s, int64_t cutoff_ms, size_t max_samples,
                                    int64_t *deleted, char *errbuf);
    void (*stats_get)(struct store *s, struct store_stats *out);
    void (*close)(struct store *s);
};

struct store {
    const struct store_ops *ops;
};

/*
 * An arena for the strings of one output container (its mem_ member): every
 * allocation lives until store_arena_free. *mem starts NULL.
 */
void *store_arena_alloc(void **mem, size_t n);
/* A copy of s in the arena, or NULL for NULL. */
const char *store_arena_strdup(void **mem, const char *s);
/* A NUL-terminated copy of n bytes of p in the arena, or NULL for NULL. */
const char *store_arena_memdup(void **mem, const void *p, size_t n);
/* Frees the arena. Accepts NULL. */
void store_arena_free(void *mem);

#endif
