/*
 * server/worker: the worker pool of `assay serve`. One thread claims queued
 * jobs (sample x rubric) from the store and starts them on the judges
 * (judges/judge: rule and reference rubrics locally, LLM rubrics through
 * judges/llm on the shared asynchronous transport), keeping at most
 * max_concurrency in flight; it is not a thread per call. Verdicts come back
 * on the transport thread, are handed to the worker thread through a queue
 * (a judge callback must not block) and written back with
 * store_job_complete, which counts each verdict once.
 *
 * The judge itself is a seam: worker_options.judge is a function with
 * judge_run's contract, so tests may judge without Bedrock. With a series
 * registry (server/series), each verdict is written through
 * series_job_complete, which counts a scored one into its series in the
 * verdict's transaction; without one, store_job_complete alone.
 *
 * Shutdown (worker_stop): no new claims; jobs in flight get until the
 * deadline to finish; those still running are released back to `queued`
 * (judged again after a restart, their late verdicts refused by the store).
 *
 * Ownership: every pointer in the options is borrowed and must outlive the
 * worker; the judge's completions must all have fired (free the Bedrock
 * client) before worker_free.
 */
#ifndef ASSAY_SERVER_WORKER_H
#define ASSAY_SERVER_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "judges/judge.h"

struct config;
struct ingest_redact;
struct prom;
struct publish;
struct rubric_registry;
struct series;
struct store;

/* judge_run's contract (judges/judge.h); ctx is worker_options.judge_ctx. */
typedef enum assay_err (*worker_judge_fn)(void *ctx, const struct rubric *r,
                                          const struct rubric_sample *s,
                                          const struct redact_set *redact, judge_done_fn done,
                                          void *done_ctx, char *errbuf);

struct worker_options {
    struct store *store;
    const struct config *cfg; /* apps (redaction), judge.max_concurrency */
    const struct rubric_registry *rubrics;
    worker_judge_fn judge;
    void *judge_ctx;
    struct prom *prom;       /* may be NULL */
    struct publish *publish; /* CloudWatch metrics (QualityScore, ...); may be NULL */
    struct series *series;   /* the monitor's series registry; may be NULL */
    size_t max_concurrency;  /* 0: cfg->judge.max_concurrency */
    int64_t idle_poll_ms;    /* how often an idle worker looks for jobs; 0: 100 */
    /* The per-app redact sets (shared with ingest); NULL: the worker builds its own from cfg. */
    const struct ingest_redact *redact;
};

struct worker;

/* Starts the worker thread. Returns ASSAY_OK and a new worker, or an error with errbuf. */
enum assay_err worker_start(const struct worker_options *o, struct worker **out, char *errbuf);
/* Wakes an idle worker (new jobs were queued). Any thread. */
void worker_poke(struct worker *w);
/*
 * Stops claiming, waits up to timeout_ms for the jobs in flight, releases
 * those left back to the queue and joins the thread. Returns the number
 * released. Idempotent.
 */
size_t worker_stop(struct worker *w, int64_t timeout_ms);
/* Frees; accepts NULL. Call after worker_stop and after the judge's last callback. */
void worker_free(struct worker *w);

/* Jobs judged (verdict recorded) since start, and jobs in flight now. */
void worker_counts(struct worker *w, int64_t *judged, int64_t *in_flight);

#endif
