/*
 * server/publishing: the service's CloudWatch metrics (DESIGN.md, "Metrics")
 * through monitor/publish: the config's "metrics" section (sink cloudwatch,
 * emf or none), a durable outbox over the store's (server/store.h
 * store_outbox_*), so that closed periods survive outages and restarts, and
 * the publisher's own thread. The HTTP API reports samples received and
 * dropped, the worker verdicts and samples judged.
 *
 * The cloudwatch sink needs AWS credentials: without them (transport or creds
 * NULL) it falls back to "none" with a warning, so /metrics still works.
 *
 * Ownership: publishing_open returns a heap object; it borrows cfg, store,
 * transport and creds, which must outlive it. publishing_stop flushes and
 * delivers until a deadline; publishing_free frees.
 */
#ifndef ASSAY_SERVER_PUBLISHING_H
#define ASSAY_SERVER_PUBLISHING_H

#include <stdint.h>

#include "common/err.h"

struct cloudwatch;
struct config;
struct creds_provider;
struct http_transport;
struct publish;
struct store;

struct publishing;

enum assay_err publishing_open(const struct config *cfg, struct store *store,
                               struct http_transport *transport, struct creds_provider *creds,
                               struct publishing **out, char *errbuf);
/* The publisher events go to (borrowed). */
struct publish *publishing_get(struct publishing *p);
/* The CloudWatch client (borrowed) when the sink is cloudwatch with
 * credentials, else NULL: the service's alarms (server/alarming) use it. */
struct cloudwatch *publishing_cloudwatch(struct publishing *p);
/* Flushes every open period and delivers until deadline_ms (monotonic). Idempotent. */
void publishing_stop(struct publishing *p, int64_t deadline_ms);
/* Stops (deadline now) and frees; accepts NULL. */
void publishing_free(struct publishing *p);

#endif
