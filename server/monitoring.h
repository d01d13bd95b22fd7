/*
 * server/monitoring: the monitor of `assay serve` wired up: the series
 * registry (server/series) with its detector settings from monitor.detector,
 * and the notifier (monitor/notify) from monitor.notify, with its own
 * transport for webhooks and, when monitor.notify.sns_topic_arn is set, an
 * SNS client on the judges' credentials. Called by server/cmd_serve.
 *
 * Ownership: monitoring_open returns a heap object; cfg, store, publish and
 * creds are borrowed and must outlive it. monitoring_free flushes pending
 * notifications (monitor.notify.flush_timeout_ms) and frees; call it once
 * the worker and the HTTP API no longer use the registry.
 */
#ifndef ASSAY_SERVER_MONITORING_H
#define ASSAY_SERVER_MONITORING_H

#include "common/err.h"

struct config;
struct creds_provider;
struct publish;
struct series;
struct store;

struct monitoring;

/*
 * ASSAY_OK and a new object, or ASSAY_ERR_CONFIG (monitor.detector or
 * monitor.notify not valid, SNS without credentials) / ASSAY_ERR_INTERNAL
 * with errbuf. publish and creds may be NULL.
 */
enum assay_err monitoring_open(const struct config *cfg, struct store *store,
                               struct publish *publish, struct creds_provider *creds,
                               struct monitoring **out, char *errbuf);
/* The registry (borrowed). */
struct series *monitoring_series(struct monitoring *m);
/* Accepts NULL. */
void monitoring_free(struct monitoring *m);

#endif
