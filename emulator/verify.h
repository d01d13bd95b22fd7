/*
 * emulator/verify: the server side of SigV4, shared by the emulator and the
 * tests' fake peers (tests/support/sigv4_verify adapts its requests to this).
 * It re-signs a received request with the secret the server knows, through
 * aws/sigv4, and compares the Authorization header; it checks the signing
 * time against the server's clock (5 minutes either way) and the body against
 * a sent x-amz-content-sha256, as AWS does.
 *
 * Threading: reentrant. Ownership: everything is borrowed for the call.
 */
#ifndef ASSAY_EMULATOR_VERIFY_H
#define ASSAY_EMULATOR_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "aws/sigv4.h"

/* How far a signing time may be from the server's clock (AWS: 5 minutes). */
#define VERIFY_MAX_SKEW_MS (5 * 60 * 1000)

struct verify_key {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;
    const char *service; /* the signing name: "bedrock", "monitoring" */
};

/* A received request, as it came off the wire. */
struct verify_request {
    const char *method;
    const char *uri; /* raw request target: path and query as sent */
    const struct sigv4_header *headers;
    size_t n_headers;
    const void *body;
    size_t body_len;
};

/* Case-insensitive header look-up; NULL when absent. */
const char *verify_request_header(const struct verify_request *req, const char *name);

/*
 * Returns 0 when req carries a valid signature by one of the n_keys keys made
 * within VERIFY_MAX_SKEW_MS of server_ms; else -1 with the error code AWS
 * answers in code ("MissingAuthenticationToken", "IncompleteSignature",
 * "UnrecognizedClientException" for an unknown key id,
 * "InvalidSignatureException" for a stale date, "SignatureDoesNotMatch" for
 * a wrong signature or a body that does not match its x-amz-content-sha256)
 * and a sentence in message. code and message are always terminated.
 */
int verify_sigv4(const struct verify_request *req, const struct verify_key *keys, size_t n_keys,
                 int64_t server_ms, char *code, size_t code_size, char *message,
                 size_t message_size);

#endif
