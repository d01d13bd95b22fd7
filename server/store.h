/*
 * server/store: the service's durable state behind one interface, so that the
 * embedded SQLite backend (server/store_sqlite.c) can later be joined by a
 * shared one (Redis Streams, DESIGN.md "Scale") without touching the callers:
 * the HTTP API, the sampler, the worker pool, the monitor's publisher and the
 * golden-set scheduler.
 *
 * What it keeps:
 *   samples  (app, id) unique; the JSON document as accepted (absent for
 *            an unsampled sample whose caller keeps no text), the sampled
 *            flag, trace_id, model_id, received time. Inserted in batches,
 *            all or nothing; a (app, id) already stored is a duplicate,
 *            reported and not inserted again.
 *   jobs     one per sampled sample x rubric: queued -> judging -> done |
 *            failed. Claimed in groups; a job left `judging` by a crash goes
 *            back to `queued` when the store is opened again.
 *   verdicts exactly one per finished job, written in the same transaction
 *            that finishes the job and (optionally) stores the series state
 *            the verdict produced and an alarm event, so that after a crash a
 *            verdict is either wholly there (job finished, series counted) or
 *            not at all (job queued again, series not counted).
 *   series   the detector state of one app x rubric x model_id, an opaque
 *            JSON text to the store, with the rubric version and judge model.
 *   alarms   history of raised/cleared events.
 *   outbox   serialised metric batches waiting for delivery, oldest first,
 *            with their original timestamps.
 *   golden   golden-set runs (status, progress, result JSON) and their items.
 *
 * Durability: every call that writes returns (or fires its callback) only
 * after its transaction is committed and synced to disk, so the HTTP API may
 * answer 202 as soon as store_sample_insert returns ASSAY_OK. The one
 * exception is store_sample_insert_group with a ticket, which returns after
 * the commit: its requests are durable once store_sync(ticket) returns
 * ASSAY_OK. Concurrent writes are gathered into shared transactions (group
 * commit) and shared syncs: many callers, one fsync. docs/internals/STORE.md
 * describes the SQLite backend.
 *
 * Threading: every function may be called from any thread on a shared store;
 * the store serialises what needs it. store_close must be called once, after
 * every other call has returned and every callback has fired.
 *
 * Ownership: input structs and their strings are borrowed for the duration of
 * the call (for the async insert: until its callback has fired); the store
 * keeps copies. Output containers (struct store_job_batch, store_sample_info,
 * store_series_list, ...) are held by the caller, filled by the store, and
 * own everything they point to until their _clear function (NULL-safe) is
 * called. Every output container must be zero-initialised (= {0}) or cleared
 * before it is filled; a function that fails leaves it empty.
 *
 * Errors: enum assay_err with a detail in errbuf (ASSAY_ERRBUF_SIZE bytes or
 * NULL). ASSAY_ERR_INVALID_ARGUMENT for a NULL or malformed argument,
 * ASSAY_ERR_NOT_FOUND for a missing row, ASSAY_ERR_IO for a storage failure
 * (disk full, I/O error, corrupt file), ASSAY_ERR_CONFIG at open for a schema
 * newer than this binary, ASSAY_ERR_CANCELLED once the store is closing.
 * Times are epoch milliseconds.
 */
#ifndef ASSAY_SERVER_STORE_H
#define ASSAY_SERVER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"

struct verdict;

/* The schema version this binary writes (store_sqlite migrates older files). */
#define STORE_SCHEMA_VERSION 3
/* The file name of the SQLite store inside config.data_dir. */
#define STORE_SQLITE_FILENAME "assay.db"

struct store; /* opaque; one per process, shared by every thread */

/* ---------------------------------------------------------------- samples */

struct store_sample {
    /* In: borrowed. */
    const char *app;      /* 1-64 chars, validated by the caller */
    const char *id;       /* 1-128 chars, validated by the caller */
    const char *doc;      /* the sample's JSON document as accepted, or NULL (below) */
    size_t doc_len;       /* bytes of doc; ignored when doc is NULL */
    bool sampled;         /* when true, one job per rubric is queued */
    const char *trace_id; /* X-Ray trace id, or NULL */
    const char *model_id; /* the production model, or NULL */
    int64_t received_ms;
    const char *const *rubrics; /* the rubrics to judge when sampled */
    size_t n_rubrics;
    /* Out: set by the insert. */
    bool duplicate;      /* (app, id) was already stored (or earlier in this batch) */
    bool stored_sampled; /* the sampled flag as stored (the first insert's, for a duplicate) */
};

/*
 * Inserts n samples (n >= 1) in one transaction, all or nothing, and queues
 * one job per rubric of each new sampled sample. Sets each sample's duplicate
 * and stored_sampled; duplicates are not inserted again and queue no jobs.
 * Returns after the commit is durable. On failure nothing of the batch is
 * stored and the out fields are unspecified.
 *
 * Text: a sampled sample needs its document (non-empty; the judge reads it),
 * else ASSAY_ERR_INVALID_ARGUMENT. An unsampled sample may come without one
 * (doc NULL): its row then keeps no text, and store_sample_get answers doc
 * NULL for it. Whether to keep the text of unsampled samples is the caller's
 * policy (the HTTP API's apps.NAME.keep_unsampled_text).
 */
enum assay_err store_sample_insert(struct store *s, struct store_sample *samples, size_t n,
                                   char *errbuf);

/*
 * The result of an asynchronous insert, by value, fired once on a store
 * thread after the commit (or its failure). errbuf holds the detail when err
 * is not ASSAY_OK; it is valid only during the call. The callback must not
 * block for long and must not call back into the store.
 */
typedef void (*store_insert_cb)(void *ctx, enum assay_err err, const char *errbuf);

/*
 * As store_sample_insert, without blocking the calling thread (for HTTP
 * handlers that suspend their connection). samples is borrowed until the
 * callback has fired, and its out fields are set before it fires. Returns
 * ASSAY_OK when the request was queued (the callback will fire exactly once),
 * or an error (the callback never fires).
 */
enum assay_err store_sample_insert_async(struct store *s, struct store_sample *samples, size_t n,
                                         store_insert_cb cb, void *ctx, char *errbuf);

/* One request of a group insert: its samples (borrowed), and its result. */
struct store_insert {
    struct store_sample *samples;
    size_t n;
    enum assay_err err;             /* out */
    char errbuf[ASSAY_ERRBUF_SIZE]; /* out: the detail when err is not ASSAY_OK */
};

/*
 * Inserts the requests as one group on the calling thread (for an event loop
 * that gathered them): one transaction and one sync for all, each request
 * stored whole or not at all (its err). Returns ASSAY_OK when every request's
 * outcome is known, or an error for the call as a whole (store closing, bad
 * arguments), with nothing stored.
 *
 * ticket NULL: the stored requests are durable when it returns. Otherwise it
 * returns once they are committed, before the sync, and *ticket names the
 * commit: they are durable once store_sync(ticket) returns ASSAY_OK, which
 * the caller must wait for before acknowledging them (an event loop lets
 * another thread wait, and goes on serving meanwhile).
 */
enum assay_err store_sample_insert_group(struct store *s, struct store_insert *reqs, size_t n,
                                         uint64_t *ticket, char *errbuf);

/*
 * Makes the commit named by ticket, and every earlier one, durable; one sync
 * serves concurrent callers. ASSAY_ERR_IO when the sync failed: the commit
 * may or may not survive a crash (a retry of its samples finds them as
 * duplicates, or stores them).
 */
enum assay_err store_sync(struct store *s, uint64_t ticket, char *errbuf);

/* ------------------------------------------------------------------- jobs */

enum store_job_state { STORE_JOB_QUEUED, STORE_JOB_JUDGING, STORE_JOB_DONE, STORE_JOB_FAILED };

/* "queued", "judging", "done", "failed". */
const char *store_job_state_name(enum store_job_state st);

struct store_job {
    int64_t job_id;
    const char *app;
    const char *sample_id;
    const char *rubric;
    const char *model_id; /* or NULL */
    const char *trace_id; /* or NULL */
    const char *doc;      /* the sample's JSON document */
    size_t doc_len;
    int64_t received_ms;
    int attempts; /* claims so far, this one included (> 1 after a crash or a release) */
};

struct store_job_batch {
    struct store_job *jobs;
    size_t n;
    void *mem_; /* private */
};
void store_job_batch_clear(struct store_job_batch *b);

/*
 * Claims up to max queued jobs, oldest first, moving them to `judging` and
 * incrementing their attempts, in one transaction: two concurrent claims never
 * get the same job. Fills *out (possibly with n == 0).
 */
enum assay_err store_job_claim(struct store *s, size_t max, struct store_job_batch *out,
                               char *errbuf);

/*
 * Puts a `judging` job back to `queued` (shutdown with work in flight, or a
 * retry later). Does nothing for a job in any other state. ASSAY_ERR_NOT_FOUND
 * for an unknown job.
 */
enum assay_err store_job_release(struct store *s, int64_t job_id, char *errbuf);

/* Jobs queued and judging now (the HTTP API answers 429 past a bound). */
enum assay_err store_queue_depth(struct store *s, int64_t *queued, int64_t *judging);

/* --------------------------------------------------------------- verdicts */

/*
 * One verdict as stored. In: strings borrowed. Out (inside a container):
 * strings owned by the container; absent ones NULL.
 */
struct store_verdict {
    const char *rubric;
    const char *rubric_version;
    const char *judge; /* the judge model id, or "rule:...", "reference:..." */
    bool unscorable;
    const char *reason; /* unscorable only: snake_case code */
    const char *detail; /* unscorable only, or NULL */
    double score;       /* [0,1]; scored only */
    double raw_score;   /* on the rubric's scale; scored only */
    bool pass;
    const char *reasoning; /* or NULL */
    int64_t latency_ms;    /* -1 when unknown */
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
    int attempts; /* judge calls made for this verdict */
    int64_t created_ms;
};

/*
 * Fills *out with pointers borrowed from v (valid while v is unchanged), and
 * the given attempts; created_ms 0 (the store stamps it).
 */
void store_verdict_from(struct store_verdict *out, const struct verdict *v, int attempts);

/* ----------------------------------------------------------------- series */

struct store_series {
    const char *app;
    const char *rubric;
    const char *model_id; /* "" when samples name no model; never NULL */
    const char *rubric_version;
    const char *judge_model;
    const char *state_json; /* the detector's state, opaque to the store */
    int64_t updated_ms;     /* stamped by the store on write */
};

struct store_series_list {
    struct store_series *series;
    size_t n;
    void *mem_;
};
void store_series_list_clear(struct store_series_list *l);

/* --------------------------------------------------------------- alarms */

struct store_alarm {
    int64_t alarm_id; /* out only */
    const char *app;
    const char *rubric;
    const char *model_id; /* "" when none */
    bool raised;          /* true raised, false cleared */
    int64_t at_ms;
    const char *detail_json; /* statistic, threshold, p-value...; or NULL */
};

struct store_alarm_list {
    struct store_alarm *alarms;
    size_t n;
    void *mem_;
};
void store_alarm_list_clear(struct store_alarm_list *l);

/* -------------------------------------------------------- job completion */

/*
 * Finishes one job. verdict is required: a scored verdict finishes the job as
 * `done`, an unscorable one as `failed`. series, when not NULL, is upserted
 * (the state after this verdict was counted); alarm, when not NULL, is
 * appended. All in one transaction with the verdict.
 */
struct store_completion {
    int64_t job_id;
    const struct store_verdict *verdict;
    const struct store_series *series; /* or NULL */
    const struct store_alarm *alarm;   /* or NULL */
};

/*
 * Records c durably. *recorded (may be NULL) is 1 when it was written, 0 when
 * the job was not `judging` (already finished, or released): then nothing at
 * all was written, the series and alarm included, and the caller must discard
 * the series state it computed from this verdict. This is how a verdict is
 * counted exactly once. ASSAY_ERR_NOT_FOUND for an unknown job.
 */
enum assay_err store_job_complete(struct store *s, const struct store_completion *c, int *recorded,
                                  char *errbuf);

/* -------------------------------------------------------- sample look-up */

enum store_sample_status {
    STORE_STATUS_QUEUED,      /* some job queued, none judging */
    STORE_STATUS_JUDGING,     /* some job judging */
    STORE_STATUS_DONE,        /* every job finished, at least one done (or no rubrics) */
    STORE_STATUS_FAILED,      /* every job finished as failed */
    STORE_STATUS_NOT_SAMPLED, /* stored but not sampled: no jobs */
};

/* "queued", "judging", "done", "failed", "not_sampled". */
const char *store_sample_status_name(enum store_sample_status st);

struct store_job_info {
    const char *rubric;
    enum store_job_state state;
    int attempts;
    bool has_verdict;
    struct store_verdict verdict; /* when has_verdict */
};

struct store_sample_info {
    const char *app;
    const char *id;
    const char *doc;      /* NULL when the sample was stored without its text */
    size_t doc_len;       /* 0 when doc is NULL */
    const char *trace_id; /* or NULL */
    const char *model_id; /* or NULL */
    bool sampled;
    int64_t received_ms;
    enum store_sample_status status;
    struct store_job_info *jobs; /* by rubric name */
    size_t n_jobs;
    void *mem_;
};
void store_sample_info_clear(struct store_sample_info *i);

/*
 * Looks up sample id of app (app NULL: under any app) with its jobs and
 * verdicts. ASSAY_ERR_NOT_FOUND when absent; ASSAY_ERR_INVALID_ARGUMENT when
 * app is NULL and the id exists under several apps (errbuf says to add ?app=).
 */
enum assay_err store_sample_get(struct store *s, const char *app, const char *id,
                                struct store_sample_info *out, char *errbuf);

/* ------------------------------------------------------------ series, alarms */

/* Upserts one series outside a verdict (rebaseline, start-up). Durable on return. */
enum assay_err store_series_put(struct store *s, const struct store_series *series, char *errbuf);
/* One series; ASSAY_ERR_NOT_FOUND when absent. out gets n == 1. */
enum assay_err store_series_get(struct store *s, const char *app, const char *rubric,
                                const char *model_id, struct store_series_list *out, char *errbuf);
/* Every series, ordered by app, rubric, model_id. */
enum assay_err store_series_list(struct store *s, struct store_series_list *out, char *errbuf);

/* Appends one alarm event outside a verdict. *alarm_id may be NULL. */
enum assay_err store_alarm_append(struct store *s, const struct store_alarm *alarm,
                                  int64_t *alarm_id, char *errbuf);
/* Alarm events at or after since_ms, newest first, at most limit (0: no limit). */
enum assay_err store_alarm_list(struct store *s, int64_t since_ms, size_t limit,
                                struct store_alarm_list *out, char *errbuf);

/* ----------------------------------------------------------------- outbox */

struct store_outbox_item {
    int64_t item_id;
    int64_t created_ms; /* the batch's original timestamp */
    const char *payload;
    size_t payload_len;
};

struct store_outbox_list {
    struct store_outbox_item *items;
    size_t n;
    void *mem_;
};
void store_outbox_list_clear(struct store_outbox_list *l);

/* Appends one serialised metric batch (copied). *item_id may be NULL. */
enum assay_err store_outbox_enqueue(struct store *s, const void *payload, size_t len,
                                    int64_t created_ms, int64_t *item_id, char *errbuf);
/* The oldest max items (by insertion), oldest first, left in place. */
enum assay_err store_outbox_peek(struct store *s, size_t max, struct store_outbox_list *out,
                                 char *errbuf);
/* Deletes delivered items; unknown ids are ignored. */
enum assay_err store_outbox_delete(struct store *s, const int64_t *item_ids, size_t n,
                                   char *errbuf);
/* Drops items created before cutoff_ms (too old to deliver); *dropped may be NULL. */
enum assay_err store_outbox_expire(struct store *s, int64_t cutoff_ms, int64_t *dropped,
                                   char *errbuf);
/* Items waiting. */
enum assay_err store_outbox_count(struct store *s, int64_t *count);

/* ------------------------------------------------------------- golden runs */

struct store_golden_run {
    const char *run_id;
    const char *dataset;
    const char *target_model; /* or NULL */
    const char *status;       /* "queued", "running", "done", "failed" */
    int64_t done;             /* items judged so far */
    int64_t total;
    const char *params_json; /* the request, or NULL */
    const char *result_json; /* the summary when finished, or NULL */
    int64_t created_ms;      /* stamped on create */
    int64_t updated_ms;      /* stamped on every write */
};

struct store_golden_run_list {
    struct store_golden_run *runs;
    size_t n;
    void *mem_;
};
void store_golden_run_list_clear(struct store_golden_run_list *l);

struct store_golden_item {
    const char *run_id;
    const char *item_id;
    const char *rubric;
    bool unscorable;
    double score; /* scored only */
    bool pass;
    const char *verdict_json; /* the full verdict, or NULL */
};

struct store_golden_item_list {
    struct store_golden_item *items;
    size_t n;
    void *mem_;
};
void store_golden_item_list_clear(struct store_golden_item_list *l);

/* Creates a run; ASSAY_ERR_INVALID_ARGUMENT if run_id exists. */
enum assay_err store_golden_run_create(struct store *s, const struct store_golden_run *run,
                                       char *errbuf);
/* Sets status, done, total and result_json (NULL keeps the stored one). */
enum assay_err store_golden_run_update(struct store *s, const char *run_id, const char *status,
                                       int64_t done, int64_t total, const char *result_json,
                                       char *errbuf);
/* One run (out gets n == 1); ASSAY_ERR_NOT_FOUND when absent. */
enum assay_err store_golden_run_get(struct store *s, const char *run_id,
                                    struct store_golden_run_list *out, char *errbuf);
/*
 * The most recent run (by created_ms) of dataset with the given status (NULL:
 * any) other than except_run_id (may be NULL): the baseline to compare with.
 * ASSAY_ERR_NOT_FOUND when there is none.
 */
enum assay_err store_golden_run_latest(struct store *s, const char *dataset, const char *status,
                                       const char *except_run_id, struct store_golden_run_list *out,
                                       char *errbuf);
/* Upserts one item result (run_id, item_id, rubric). */
enum assay_err store_golden_item_put(struct store *s, const struct store_golden_item *item,
                                     char *errbuf);
/* A run's items, ordered by item_id, rubric. */
enum assay_err store_golden_item_list(struct store *s, const char *run_id,
                                      struct store_golden_item_list *out, char *errbuf);

/* -------------------------------------------------------------- retention */

/*
 * Deletes at most max_samples samples received before cutoff_ms that are
 * finished (not sampled, or every job done/failed), with their jobs and
 * verdicts, in one short transaction. *deleted (may be NULL) is the number of
 * samples deleted: call again while it equals max_samples, so that a large
 * backlog never holds the writer for long. Queued or judging samples are never
 * deleted. A deleted (app, id) posted again is a new sample.
 */
enum assay_err store_retention_run(struct store *s, int64_t cutoff_ms, size_t max_samples,
                                   int64_t *deleted, char *errbuf);

/* ------------------------------------------------------------ statistics */

struct store_stats {
    int64_t schema_version;
    int64_t transactions;     /* write transactions committed since open */
    int64_t write_requests;   /* write calls served since open */
    int64_t samples_inserted; /* new samples since open */
    int64_t duplicates;       /* duplicate samples since open */
    int64_t requeued_at_open; /* `judging` jobs put back to `queued` by open */
    int64_t queued;           /* jobs queued now */
    int64_t judging;          /* jobs judging now */
    int64_t largest_group;    /* most write calls sharing one transaction */
    int64_t writer_ckpts;     /* checkpoints the writer ran itself (WAL past its bound) */
};
void store_stats_get(struct store *s, struct store_stats *out);

/* ----------------------------------------------------------- the backends */

struct store_sqlite_options {
    const char *path;            /* the database file (created if absent); required */
    const struct clock *clock;   /* NULL: the system clock */
    int busy_timeout_ms;         /* 5,000 */
    size_t group_max_requests;   /* write calls per transaction at most; 1 = no grouping; 512 */
    size_t group_max_samples;    /* samples per transaction at most (soft); 8,192 */
    int64_t group_max_wait_us;   /* how long the writer may wait for a group to fill; 0 */
    int synchronous_full;        /* 1: each commit synced (durable 202); 0 only for tests; 1 */
    size_t max_read_connections; /* pooled read connections; 4 */
};

/* Fills o with the defaults above (path NULL). */
void store_sqlite_options_init(struct store_sqlite_options *o);

/*
 * Opens (creating or migrating) the SQLite store at o->path: WAL mode, the
 * schema at STORE_SCHEMA_VERSION (older files migrated forward in one
 * transaction each step), every `judging` job back to `queued`, and the
 * writer thread started. The directory must exist. One process owns a store
 * at a time: <path>.lock is flock()ed (the kernel drops it when the process
 * dies). Returns ASSAY_OK and a new store in *out, or an error with *out
 * NULL: ASSAY_ERR_IO when the file cannot be opened, is not a database, or is
 * held by another process or another open store; ASSAY_ERR_CONFIG when its
 * schema is newer than this binary knows or the file is not an assay store.
 */
enum assay_err store_sqlite_open(const struct store_sqlite_options *o, struct store **out,
                                 char *errbuf);

/*
 * Stops the writer after the writes already queued (so every pending async
 * insert's callback has fired when this returns), refuses later ones with
 * ASSAY_ERR_CANCELLED, closes every connection and frees the store. Accepts
 * NULL.
 */
void store_close(struct store *s);

#endif
