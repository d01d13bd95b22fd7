/*
 * server/scheduler: runs the config's `golden` entries that have an `every`
 * interval (`assay serve`), and starts one run on request (POST
 * /v1/golden-runs). Rules:
 *   - never two runs of the same entry at once: a run still going when its
 *     next slot comes delays that slot until it ends;
 *   - an entry is due when `every` has passed since its last run started;
 *     the last start comes from the store at start-up (last_run_ms), so after
 *     downtime a missed run runs once on start-up, not once per missed slot,
 *     and the next slot counts from that run;
 *   - an entry that never ran is due at once (its first run is the baseline).
 * scheduler_tick is the whole decision, callable with a manual clock; the
 * scheduler's own thread (scheduler_start) only calls it every tick_ms.
 *
 * Threading: every function may be called from any thread except the run
 * callback, which runs on a thread of its own per run and may block for as
 * long as the run lasts. Ownership: the options' specs, clock and ctx are
 * borrowed and must outlive the scheduler.
 */
#ifndef ASSAY_SERVER_SCHEDULER_H
#define ASSAY_SERVER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct clock;
struct golden_spec;

/* Runs spec once under run_id (blocking); the result is the callee's to store. */
typedef void (*scheduler_run_fn)(void *ctx, const struct golden_spec *spec, const char *run_id);
/* When spec's last run started (epoch ms), or 0 when it never ran. */
typedef int64_t (*scheduler_last_fn)(void *ctx, const struct golden_spec *spec);

struct scheduler_options {
    const struct golden_spec
        *specs; /* borrowed array; entries with every_s 0 run on request only */
    size_t n_specs;
    scheduler_run_fn run;      /* required */
    scheduler_last_fn last;    /* NULL: every entry is taken as never run */
    void *ctx;                 /* for run and last */
    const struct clock *clock; /* NULL: the system clock */
    int64_t tick_ms;           /* scheduler_start's interval; 0: 1,000 */
};

struct scheduler;

/* A new scheduler; reads each entry's last run through opt->last. NULL
 * arguments: NULL. */
struct scheduler *scheduler_new(const struct scheduler_options *opt);
/*
 * Stops the thread (if started), waits for runs in progress to end, frees.
 * Accepts NULL.
 */
void scheduler_free(struct scheduler *s);

/* Starts the thread that calls scheduler_tick every tick_ms. */
enum assay_err scheduler_start(struct scheduler *s, char *errbuf);

/* Starts every entry that is due now and not running; returns how many started. */
size_t scheduler_tick(struct scheduler *s);

/*
 * Starts entry name now (its next slot then counts from now). Writes the new
 * run's id (a new string) to *run_id. ASSAY_ERR_NOT_FOUND for an unknown
 * name, ASSAY_ERR_BUSY while that entry runs, ASSAY_ERR_CANCELLED once the
 * scheduler is stopping.
 */
enum assay_err scheduler_trigger(struct scheduler *s, const char *name, char **run_id);

/* Whether entry i (of the options' specs) is running, and when it last started. */
bool scheduler_entry_running(struct scheduler *s, size_t i, int64_t *last_ms);

/* Blocks until no run is in progress. */
void scheduler_wait_idle(struct scheduler *s);

/* An entry's name: spec->name, else its dataset path. */
const char *scheduler_entry_name(const struct golden_spec *spec);

#endif
