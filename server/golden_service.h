/*
 * server/golden_service: golden-set runs inside `assay serve`. Reads the
 * config's `golden` entries, runs those with `every` on schedule
 * (server/scheduler, the last start of each read back from the store), and
 * starts one on request (POST /v1/golden-runs). Each run goes through
 * server/golden with the service's Bedrock client, judge runner, store and
 * publisher; progress and the result are stored with the run, where
 * GET /v1/golden-runs/{id} reads them.
 *
 * Threading: golden_service_post may be called from any thread (an HTTP
 * thread); runs execute on the scheduler's threads. Ownership: everything in
 * the options is borrowed and must outlive the service.
 */
#ifndef ASSAY_SERVER_GOLDEN_SERVICE_H
#define ASSAY_SERVER_GOLDEN_SERVICE_H

#include <jansson.h>

#include "common/err.h"

struct config;
struct store;
struct rubric_registry;
struct judge_runner;
struct bedrock_client;
struct publish;

struct golden_service_options {
    const struct config *cfg;          /* golden entries, data paths, judge model */
    struct store *store;               /* required */
    const struct rubric_registry *reg; /* required */
    struct judge_runner *runner;       /* NULL: runs fail (no judging) */
    struct bedrock_client *bedrock;    /* NULL: golden sets fail, calibration sets may run */
    struct publish *publish;           /* NULL: no metrics */
};

struct golden_service;

/*
 * Reads the entries (names must be unique). Returns ASSAY_OK and a new
 * service, or ASSAY_ERR_CONFIG naming the entry and field.
 */
enum assay_err golden_service_open(const struct golden_service_options *o,
                                   struct golden_service **out, char *errbuf);
/* Starts the schedule. */
enum assay_err golden_service_start(struct golden_service *g, char *errbuf);
/*
 * Cancels: no run starts any more and runs in progress start no new calls
 * (they end as failed, "cancelled"). Call before the judge is closed.
 */
void golden_service_cancel(struct golden_service *g);
/*
 * Cancels, waits for runs in progress (their calls in flight end: bounded
 * by the judge's timeout and retries), frees. Accepts NULL. Call while the
 * judge, the store and the publisher are still open.
 */
void golden_service_free(struct golden_service *g);

/*
 * POST /v1/golden-runs: body {"name": ENTRY} (or {"dataset": PATH} naming
 * an entry's dataset as configured; an empty body with one entry runs it).
 * Queues the run in the store and starts it. Returns ASSAY_OK and the run id
 * (a new string); ASSAY_ERR_INVALID_ARGUMENT for a body that names nothing,
 * ASSAY_ERR_NOT_FOUND for an unknown entry, ASSAY_ERR_CONFLICT while that
 * entry runs; details in errbuf.
 */
enum assay_err golden_service_post(void *g, const json_t *body, char **run_id, char *errbuf);

#endif
