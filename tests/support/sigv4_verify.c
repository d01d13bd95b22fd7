/*
 * tests/support/sigv4_verify: adapts a fake_server request to the one SigV4
 * verifier, emulator/verify, which the emulator uses too.
 */
#include "tests/support/sigv4_verify.h"

#include "emulator/verify.h"

int sigv4_verify(const struct fake_request *req, const struct sigv4_verify_key *key,
                 int64_t server_ms, char *code, size_t code_size, char *message,
                 size_t message_size)
{
    struct sigv4_header headers[FAKE_MAX_HEADERS];
    for (size_t i = 0; i < req->n_headers; i++) {
        headers[i].name = req->headers[i].name;
        headers[i].value = req->headers[i].value;
    }
    struct verify_request vr = {.method = req->method,
                                .uri = req->uri,
                                .headers = headers,
                                .n_headers = req->n_headers,
                                .body = req->body,
                                .body_len = req->body_len};
    struct verify_key k = {key->access_key_id, key->secret_access_key, key->region, key->service};
    return verify_sigv4(&vr, &k, 1, server_ms, code, code_size, message, message_size);
}
