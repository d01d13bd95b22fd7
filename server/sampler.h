/*
 * server/sampler: decides which accepted samples are judged. Called by
 * server/http_api for each sample of a POST, before the batch is stored.
 *
 * - sample_rate: decided from a hash of (app, id), so every replica and every
 *   retry of the same sample decides alike (sampler_hash_unit).
 * - force, and negative feedback when the app says sample_negative_feedback,
 *   are always sampled.
 * - max_judged_per_minute (a cost guard): once an app has had that many
 *   samples chosen in the current minute (wall clock, per process), further
 *   chosen samples are dropped: stored, not judged, and counted as
 *   SamplesDropped. Forced samples count toward the cap but are never
 *   dropped (a caller who forces asked for it explicitly).
 *
 * Threading: a sampler is shared by the HTTP threads; its per-app windows sit
 * under one mutex. Ownership: sampler_new returns a heap object
 * (sampler_free); it borrows nothing after the call.
 */
#ifndef ASSAY_SERVER_SAMPLER_H
#define ASSAY_SERVER_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "server/config.h"

enum sampler_decision {
    SAMPLER_NOT_SAMPLED, /* outside sample_rate */
    SAMPLER_SAMPLED,     /* to be judged */
    SAMPLER_DROPPED      /* chosen, but over max_judged_per_minute */
};

enum sampler_reason { SAMPLER_BY_RATE, SAMPLER_BY_FORCE, SAMPLER_BY_FEEDBACK };

struct sampler;

/* clk may be NULL (the system clock); borrowed for the sampler's lifetime. */
struct sampler *sampler_new(const struct clock *clk);
void sampler_free(struct sampler *s);

/*
 * The decision for one sample of app (its settings cfg, borrowed). negative is
 * true when the sample carries feedback "negative". Updates the app's cap
 * window when the sample is chosen. *reason (may be NULL) says why it was
 * chosen.
 */
enum sampler_decision sampler_decide(struct sampler *s, const struct config_app *cfg,
                                     const char *app, const char *id, bool force, bool negative,
                                     enum sampler_reason *reason);

/*
 * Gives back n chosen slots of app's current window, when the samples they
 * were counted for turned out not to be judged (a duplicate, a refused batch).
 */
void sampler_release(struct sampler *s, const char *app, int64_t n);

/* A uniform number in [0, 1) from (app, id); stable across versions and hosts. */
double sampler_hash_unit(const char *app, const char *id);

#endif
