// layer: aws
/*
 * Fuzz target for aws/sigv4's canonicalisation of arbitrary paths, queries
 * and headers. Input: one flags byte, then NUL-separated fields: path, query,
 * header lines ("name:value" separated by '\n'), body. Beyond not crashing,
 * it checks that the streamed signer and the staged functions agree (the
 * signature of sigv4_request_sign equals the one computed from
 * sigv4_canonical_request_build and sigv4_string_to_sign_build), that both
 * fail or succeed together, and that a normalised canonical path holds only
 * unreserved characters, '/' and upper-case %XX escapes.
 */
#include "aws/sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FUZZ_HEADERS 40

static int path_ok(const char *cr)
{
    const char *p = strchr(cr, '\n') + 1;
    for (; *p != '\n'; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            strchr("-._~/", c))
            continue;
        if (c != '%' || !strchr("0123456789ABCDEF", p[1]) || !strchr("0123456789ABCDEF", p[2]) ||
            !p[1] || !p[2])
            return 0;
        p += 2;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = size - 1;

    /* Split into path, query, headers, body at the first three NULs. */
    char *field[4] = {text, text + len, text + len, text + len};
    int nf = 1;
    char *p = text;
    for (; nf < 4; nf++) {
        char *nul = memchr(p, '\0', (size_t)(text + len - p));
        if (!nul)
            break;
        field[nf] = nul + 1;
        p = nul + 1;
    }
    size_t body_len = nf == 4 ? (size_t)(text + len - field[3]) : 0;

    struct sigv4_header headers[MAX_FUZZ_HEADERS + 1];
    size_t nh = 0;
    headers[nh++] = (struct sigv4_header){"host", "example.amazonaws.com"};
    char *line = field[2];
    while (*line && nh < MAX_FUZZ_HEADERS) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            headers[nh++] = (struct sigv4_header){line, colon + 1};
        }
        if (!nl)
            break;
        line = nl + 1;
    }

    struct sigv4_params params = {
        .creds = {"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                  (flags & 4) ? "token/with+chars=" : NULL},
        .region = "us-east-1",
        .service = "service",
        .time_s = 1440938160,
        .no_normalize_path = (flags & 1) != 0,
        .sign_body = (flags & 2) != 0,
        .omit_session_token = (flags & 8) != 0,
        .expires_s = (flags & 16) ? 60 : 0,
    };
    struct sigv4_request req = {
        .method = (flags & 32) ? "POST" : "GET",
        .path = field[0],
        .query = field[1],
        .headers = headers,
        .header_count = nh,
        .body = field[3],
        .body_len = body_len,
    };
    enum sigv4_placement placement = (flags & 64) ? SIGV4_IN_QUERY : SIGV4_IN_HEADER;

    struct buf cr = BUF_INIT, sts = BUF_INIT;
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    char errbuf[ASSAY_ERRBUF_SIZE];
    enum assay_err e1 = sigv4_canonical_request_build(&req, &params, placement, &cr, errbuf);
    enum assay_err e2 = placement == SIGV4_IN_QUERY
                            ? sigv4_request_presign(NULL, &req, &params, &out, errbuf)
                            : sigv4_request_sign(NULL, &req, &params, &out, errbuf);
    if (e1 != e2)
        abort();
    if (e1 == ASSAY_OK) {
        if (!params.no_normalize_path && !path_ok(cr.data))
            abort();
        if (sigv4_string_to_sign_build(cr.data, cr.len, &params, &sts, errbuf) != ASSAY_OK)
            abort();
        uint8_t key[32];
        char sig[65];
        sigv4_signing_key_derive(params.creds.secret_access_key, "20150830", params.region,
                                 params.service, key);
        sigv4_signature_compute(key, sts.data, sts.len, sig);
        if (strcmp(sig, out.signature) != 0)
            abort();
    }
    sigv4_signed_clear(&out);
    buf_clear(&cr);
    buf_clear(&sts);
    free(text);
    return 0;
}
