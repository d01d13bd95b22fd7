/*
 * tests/support/sigv4_verify: the server side of SigV4 for test peers, an
 * adapter over emulator/verify (the one verifier, shared with the emulator):
 * re-signs a received request with the secret the server
 * knows and compares the Authorization header, and checks the signing time
 * against the server's clock, as AWS does.
 */
#ifndef ASSAY_TESTS_SIGV4_VERIFY_H
#define ASSAY_TESTS_SIGV4_VERIFY_H

#include <stddef.h>
#include <stdint.h>

#include "tests/support/fake_server.h"

struct sigv4_verify_key {
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;
    const char *service;
};

/*
 * Returns 0 when req carries a valid signature by key made within 5 minutes of
 * server_ms; else -1 with the AWS error code that AWS would answer
 * ("MissingAuthenticationToken", "IncompleteSignature",
 * "UnrecognizedClientException", "InvalidSignatureException" for a stale
 * date, "SignatureDoesNotMatch") in code and a sentence in message.
 */
int sigv4_verify(const struct fake_request *req, const struct sigv4_verify_key *key,
                 int64_t server_ms, char *code, size_t code_size, char *message,
                 size_t message_size);

#endif
