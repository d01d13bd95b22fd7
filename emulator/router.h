/*
 * emulator/router: the emulator's HTTP front. A libmicrohttpd daemon on
 * 127.0.0.1 (one thread per connection, so a handler may hold a request to
 * emulate latency or a timeout) collects each request, routes it to the first
 * service whose match accepts it (by path or X-Amz-Target), verifies its
 * SigV4 signature for that service's signing name before the service sees it,
 * answers, and writes one JSON line per request to the request log.
 *
 * Services: one file each (emulator/bedrock.c; CloudWatch will join), given
 * as a table of struct router_service to router_start.
 * Threading: handlers run on connection threads, concurrently; a service's
 * ctx must be thread-safe.
 * Ownership: the router borrows the config, the services and the log file.
 */
#ifndef ASSAY_EMULATOR_ROUTER_H
#define ASSAY_EMULATOR_ROUTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "aws/sigv4.h"
#include "common/buf.h"
#include "common/err.h"

#define ROUTER_MAX_HEADERS 64
#define ROUTER_MAX_BODY (32u * 1024u * 1024u)

/* A received request; all borrowed for the handler call. */
struct router_request {
    const char *method;
    const char *uri; /* raw request target as sent: path and query */
    struct sigv4_header headers[ROUTER_MAX_HEADERS];
    size_t n_headers;
    const char *body; /* NUL-terminated after body_len bytes */
    size_t body_len;
    uint64_t seq; /* 0, 1, ... in order of arrival at the router */
};

/* What a service answers; the router sends it and logs it. */
struct router_response {
    int status;
    struct buf body;
    char *header_names[16];
    char *header_values[16];
    size_t n_headers;
    int64_t delay_ms; /* hold the answer this long (interrupted by shutdown) */
    /* For the request log. */
    char operation[64];
    char model[2049]; /* a model id or ARN: up to 2048 bytes */
    char error_code[64];
    char fault[32]; /* what the scenario injected, "" for none */
    int64_t input_tokens, output_tokens, cache_read_tokens, cache_write_tokens;
};

struct router_service {
    const char *name;         /* "bedrock" */
    const char *signing_name; /* SigV4 service name: "bedrock", "monitoring" */
    bool (*match)(void *ctx, const struct router_request *req);
    void (*handle)(void *ctx, const struct router_request *req, struct router_response *resp);
    void *ctx;
};

struct router_key {
    const char *access_key_id;
    const char *secret_access_key;
};

struct router_config {
    const char *host; /* "127.0.0.1" only: the emulator never listens elsewhere */
    uint16_t port;    /* 0: ephemeral */
    const char *region;
    const struct router_key *keys;
    size_t n_keys;
    const struct router_service *services;
    size_t n_services;
    FILE *request_log;           /* one JSON line per request, or NULL */
    const atomic_bool *stopping; /* set on shutdown: held requests end early */
};

struct router;

/* Starts serving. Returns NULL with errbuf when the address cannot be bound. */
struct router *router_start(const struct router_config *cfg, char *errbuf);
uint16_t router_port(const struct router *r);
/* Stops (waits for requests in progress) and frees; accepts NULL. */
void router_stop(struct router *r);

/* Case-insensitive header look-up; NULL when absent. */
const char *router_request_header(const struct router_request *req, const char *name);
/* Adds a response header (copied); at most 16. */
void router_response_header(struct router_response *resp, const char *name, const char *value);
/*
 * An AWS error as restJson1 services send it: the status, an
 * x-amzn-ErrorType header with code, and a JSON body {"message": ...}.
 */
void router_response_error(struct router_response *resp, int status, const char *code,
                           const char *message);

#endif
