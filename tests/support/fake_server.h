/*
 * tests/support/fake_server: a small HTTP server on 127.0.0.1 (ephemeral port)
 * for tests that need a peer: fake IMDS, container endpoint, STS, a server
 * that enforces a skewed clock. Built on libmicrohttpd, one thread per
 * connection, so a handler may sleep to simulate a slow peer.
 *
 * The handler runs on a server thread; it reads the request (borrowed, valid
 * during the call) and fills the response. Whatever it shares with the test
 * must be synchronised (atomics or a mutex).
 */
#ifndef ASSAY_TESTS_FAKE_SERVER_H
#define ASSAY_TESTS_FAKE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define FAKE_MAX_HEADERS 64

struct fake_header {
    const char *name;
    const char *value;
};

struct fake_request {
    const char *method;
    const char *uri;  /* raw request target, path and query as sent */
    const char *path; /* the path as libmicrohttpd decoded it */
    struct fake_header headers[FAKE_MAX_HEADERS];
    size_t n_headers;
    const char *body;
    size_t body_len;
};

struct fake_response {
    int status; /* default 200 */
    struct buf body;
    char *header_names[FAKE_MAX_HEADERS];
    char *header_values[FAKE_MAX_HEADERS];
    size_t n_headers;
    int delay_ms; /* sleep before answering */
    int close;    /* close the connection without answering */
};

typedef void (*fake_handler_fn)(void *ctx, const struct fake_request *req,
                                struct fake_response *resp);

struct fake_server;

/* Starts a server; returns NULL (and prints why) when it cannot. */
struct fake_server *fake_server_start(fake_handler_fn fn, void *ctx);
/* Stops and frees; accepts NULL. Waits for handlers in progress. */
void fake_server_stop(struct fake_server *s);
uint16_t fake_server_port(const struct fake_server *s);
/* "http://127.0.0.1:PORT" (borrowed). */
const char *fake_server_url(const struct fake_server *s);
/* Requests answered so far. */
int fake_server_hits(const struct fake_server *s);
/* TCP connections accepted so far (to check connection reuse). */
int fake_server_connections(const struct fake_server *s);

/* Case-insensitive look-up; NULL when absent. */
const char *fake_request_header(const struct fake_request *req, const char *name);
void fake_response_header(struct fake_response *resp, const char *name, const char *value);
void fake_response_text(struct fake_response *resp, int status, const char *body);

#endif
