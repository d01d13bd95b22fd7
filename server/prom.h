/*
 * server/prom: the service's own metrics, exposed on GET /metrics in the
 * Prometheus text format 0.0.4. Counters and histograms are recorded by
 * server/http_api (requests, samples) and the worker (judge calls); gauges
 * that belong to other modules (queue depth, series by state) are written at
 * scrape time by collectors they register.
 *
 * Metric families:
 *   assay_http_requests_total{route,code}            counter
 *   assay_http_request_duration_seconds{route}       histogram
 *   assay_samples_received_total{app}                counter  (CloudWatch SamplesReceived)
 *   assay_samples_sampled_total{app}                 counter
 *   assay_samples_dropped_total{app}                 counter  (SamplesDropped: cost cap)
 *   assay_samples_duplicate_total{app}               counter
 *   assay_judge_duration_seconds{outcome}            histogram
 *   assay_judge_tokens_total{direction}              counter  (input / output)
 * plus what collectors add (assay_queue_depth, assay_ready, ...).
 *
 * Label sets per family are capped (PROM_LABELSETS_MAX); past the cap the
 * app label reads "_other", so that apps served by apps.default cannot grow
 * the exposition without bound.
 *
 * Threading: every function may be called from any thread (one mutex).
 * Ownership: prom_new / prom_free; label strings are copied.
 */
#ifndef ASSAY_SERVER_PROM_H
#define ASSAY_SERVER_PROM_H

#include <stdint.h>

#include "common/buf.h"

#define PROM_LABELSETS_MAX 1000

struct prom;

struct prom *prom_new(void);
void prom_free(struct prom *p);

/* One answered HTTP request: route is a fixed name ("/v1/samples", "other"). */
void prom_request_observe(struct prom *p, const char *route, int status, double seconds);
/* Sample counters of one app (any may be 0). */
void prom_samples_add(struct prom *p, const char *app, int64_t received, int64_t sampled,
                      int64_t dropped, int64_t duplicates);
/* One judge call: outcome "ok", "unscorable", "error"; tokens may be 0. */
void prom_judge_observe(struct prom *p, const char *outcome, double seconds, int64_t input_tokens,
                        int64_t output_tokens);

/*
 * A collector appends whole metric families (with # HELP / # TYPE lines) at
 * scrape time. It runs without the prom lock held. ctx is borrowed and must
 * outlive the prom.
 */
typedef void (*prom_collect_fn)(void *ctx, struct buf *out);
void prom_collector_add(struct prom *p, prom_collect_fn fn, void *ctx);

/* Appends the whole exposition to out. */
void prom_render(struct prom *p, struct buf *out);

/* Appends value as the inside of a label value (\\, \", \n escaped). */
void prom_append_label_value(struct buf *out, const char *value);

#endif
