/*
 * server/http_api: the HTTP API of `assay serve` on libmicrohttpd
 * (DESIGN.md, "HTTP API"; the routes and the behaviours decided where the
 * design is silent are in docs/internals/API.md). Started by
 * server/cmd_serve; tests start it in-process too.
 *
 * Threading: `threads` event loops, each a libmicrohttpd daemon in
 * external-loop mode run by its own thread, fed by one acceptor thread that
 * hands each connection to the loop with the fewest. POST /v1/samples
 * suspends its connection; the inserts of a loop's turn are committed as one
 * group on the loop's thread (store_sample_insert_group with a ticket), one
 * of two syncer threads makes them durable (store_sync) and the loop resumes
 * the connections with their 202: no loop waits for an fsync, and concurrent
 * requests share transactions and syncs (docs/internals/API.md, "Threads and
 * the ingest cycle"). Per-request state lives in libmicrohttpd's per-request
 * slot and is freed in its completion callback.
 *
 * Ownership: every pointer in struct http_api_options is borrowed and must
 * outlive the server (http_api_free).
 */
#ifndef ASSAY_SERVER_HTTP_API_H
#define ASSAY_SERVER_HTTP_API_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"

struct config;
struct ingest_redact;
struct rubric_registry;
struct store;
struct sampler;
struct series;
struct prom;
struct publish;

struct http_api_options {
    const struct config *cfg;              /* listen, apps, auth.keys, server.* */
    const struct rubric_registry *rubrics; /* rubric names for validation and /readyz */
    struct store *store;                   /* may be NULL until set with http_api_set_store */
    struct sampler *sampler;
    struct prom *prom;
    const struct clock *clock; /* NULL: the system clock */
    unsigned threads;          /* event loops; 0: server.threads, else one per core */
    /* Per-app redaction of posted samples before they are stored; NULL: none. */
    const struct ingest_redact *redact;
};

struct http_api;

/*
 * Binds cfg->listen ("host:port"; port 0 picks one) and starts serving.
 * Readiness starts false: every /v1 route answers 503 until
 * http_api_set_ready(api, true). Returns ASSAY_OK and a new server in *out, or
 * ASSAY_ERR_CONFIG (listen malformed) / ASSAY_ERR_IO (cannot bind) with a
 * detail in errbuf.
 */
enum assay_err http_api_start(const struct http_api_options *o, struct http_api **out,
                              char *errbuf);
/* The bound TCP port. */
uint16_t http_api_port(const struct http_api *api);
/* Sets the store (borrowed) once it is open; before that /readyz says 503. */
void http_api_set_store(struct http_api *api, struct store *store);
void http_api_set_ready(struct http_api *api, bool ready);
/*
 * Called (on an HTTP thread) after each batch that queued judge jobs was
 * committed, e.g. to wake the worker. Set before http_api_set_ready(true).
 */
void http_api_set_jobs_hook(struct http_api *api, void (*fn)(void *ctx), void *ctx);
/*
 * The CloudWatch publisher (monitor/publish, borrowed; NULL: none) that gets
 * SamplesReceived and SamplesDropped. Set before http_api_set_ready(true).
 */
void http_api_set_publish(struct http_api *api, struct publish *pub);
/*
 * The monitor's series registry (server/series, borrowed; NULL: none) that
 * POST /v1/series/rebaseline acts on; without one that route answers 503.
 * Taken under the same lock as the store: once this returns with NULL, no
 * request uses the old registry.
 */
void http_api_set_series(struct http_api *api, struct series *series);
bool http_api_ready(const struct http_api *api);

/*
 * POST /v1/golden-runs: called on an HTTP thread with the request's JSON body
 * (borrowed; NULL when empty); returns ASSAY_OK and a new run id (freed by
 * the API), or an error (its HTTP status) with a message in errbuf. Without
 * a hook the route answers 501. Set before http_api_set_ready(true).
 */
typedef enum assay_err (*http_api_golden_fn)(void *ctx, const json_t *body, char **run_id,
                                             char *errbuf);
void http_api_set_golden(struct http_api *api, http_api_golden_fn fn, void *ctx);

/*
 * Shutdown, first step: stops accepting connections, answers 503 to new
 * requests on open ones (with Connection: close), and waits up to timeout_ms
 * for the sample inserts in flight to be answered. Returns the number still
 * in flight (0 when drained).
 */
int http_api_drain(struct http_api *api, int64_t timeout_ms);

/*
 * Stops the server and frees it. Every insert in flight must have been
 * answered (http_api_drain returned 0, or the store was closed, which fires
 * every callback). Accepts NULL.
 */
void http_api_free(struct http_api *api);

/*
 * Splits "host:port" or "[v6]:port" into host (out, NUL-terminated) and port.
 * Returns 0, or -1 when malformed.
 */
int http_api_parse_listen(const char *listen, char *host, size_t host_size, uint16_t *port);

#endif
