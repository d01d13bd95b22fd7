/*
 * emulator/verify: SigV4 verification of received requests, built on
 * aws/sigv4. Called by the emulator's router for every request, and by the
 * tests' fake peers through tests/support/sigv4_verify.
 */
#include "emulator/verify.h"

#include "common/clock.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int fail(char *code, size_t code_size, char *message, size_t message_size, const char *c,
                const char *m)
{
    snprintf(code, code_size, "%s", c);
    snprintf(message, message_size, "%s", m);
    return -1;
}

/* Copies the value of "key=" up to ',' or the end from an Authorization value. */
static int auth_field(const char *auth, const char *key, char *out, size_t n)
{
    const char *p = strstr(auth, key);
    if (!p)
        return -1;
    p += strlen(key);
    size_t len = strcspn(p, ", ");
    if (len >= n)
        return -1;
    memcpy(out, p, len);
    out[len] = '\0';
    return 0;
}

static int listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ";");
        if (len == n && strncasecmp(p, name, n) == 0)
            return 1;
        p += len;
        if (*p == ';')
            p++;
    }
    return 0;
}

const char *verify_request_header(const struct verify_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int verify_sigv4(const struct verify_request *req, const struct verify_key *keys, size_t n_keys,
                 int64_t server_ms, char *code, size_t code_size, char *message,
                 size_t message_size)
{
    const char *auth = verify_request_header(req, "Authorization");
    if (!auth)
        return fail(code, code_size, message, message_size, "MissingAuthenticationToken",
                    "Missing Authentication Token");
    char credential[256], signed_headers[1024];
    if (strncmp(auth, SIGV4_ALGORITHM " ", strlen(SIGV4_ALGORITHM) + 1) != 0 ||
        auth_field(auth, "Credential=", credential, sizeof credential) != 0 ||
        auth_field(auth, "SignedHeaders=", signed_headers, sizeof signed_headers) != 0 ||
        !strstr(auth, "Signature="))
        return fail(code, code_size, message, message_size, "IncompleteSignature",
                    "Authorization header requires Credential, SignedHeaders and Signature");
    size_t akid_len = strcspn(credential, "/");
    const struct verify_key *key = NULL;
    for (size_t i = 0; i < n_keys && !key; i++)
        if (akid_len == strlen(keys[i].access_key_id) &&
            strncmp(credential, keys[i].access_key_id, akid_len) == 0)
            key = &keys[i];
    if (!key)
        return fail(code, code_size, message, message_size, "UnrecognizedClientException",
                    "The security token included in the request is invalid.");
    /* The scope: AKID/date8/region/service/aws4_request, as AWS checks it. */
    char scope[5][128];
    size_t n_parts = 0;
    for (const char *p = credential; n_parts < 5;) {
        size_t len = strcspn(p, "/");
        if (len >= sizeof scope[0])
            break;
        memcpy(scope[n_parts], p, len);
        scope[n_parts++][len] = '\0';
        if (!p[len])
            break;
        p += len + 1;
    }
    if (n_parts != 5 || strcmp(scope[4], "aws4_request") != 0)
        return fail(code, code_size, message, message_size, "IncompleteSignature",
                    "Credential must have the form AKID/date/region/service/aws4_request");
    char detail[256];
    if (strcmp(scope[2], key->region) != 0) {
        snprintf(detail, sizeof detail,
                 "Credential should be scoped to a valid region, not '%.64s'. ", scope[2]);
        return fail(code, code_size, message, message_size, "SignatureDoesNotMatch", detail);
    }
    if (strcmp(scope[3], key->service) != 0) {
        snprintf(detail, sizeof detail, "Credential should be scoped to correct service: '%.64s'. ",
                 key->service);
        return fail(code, code_size, message, message_size, "SignatureDoesNotMatch", detail);
    }
    if (!listed(signed_headers, "host"))
        return fail(code, code_size, message, message_size, "IncompleteSignature",
                    "The host header must be signed");
    const char *amz_date = verify_request_header(req, "X-Amz-Date");
    int64_t signed_ms;
    if (!amz_date || clock_parse_iso8601(amz_date, &signed_ms) != 0)
        return fail(code, code_size, message, message_size, "IncompleteSignature",
                    "X-Amz-Date is missing or not a date");
    if (!amz_date || strncmp(amz_date, scope[1], 8) != 0 || strlen(scope[1]) != 8)
        return fail(code, code_size, message, message_size, "SignatureDoesNotMatch",
                    "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                    "date from HTTP");
    if (signed_ms - server_ms > VERIFY_MAX_SKEW_MS || server_ms - signed_ms > VERIFY_MAX_SKEW_MS)
        return fail(code, code_size, message, message_size, "InvalidSignatureException",
                    "Signature expired: the signing time is more than 5 minutes from the "
                    "server's time");

    /* Re-sign with the headers the client signed, less those the signer adds. */
    static const char *const added[] = {"x-amz-date", "x-amz-security-token",
                                        "x-amz-content-sha256", "authorization"};
    struct sigv4_header headers[SIGV4_MAX_HEADERS];
    size_t n = 0;
    for (size_t i = 0; i < req->n_headers && n < SIGV4_MAX_HEADERS; i++) {
        int skip = !listed(signed_headers, req->headers[i].name);
        for (size_t k = 0; k < sizeof added / sizeof added[0] && !skip; k++)
            skip = strcasecmp(req->headers[i].name, added[k]) == 0;
        if (!skip)
            headers[n++] = req->headers[i];
    }
    char path[4096];
    size_t path_len = strcspn(req->uri, "?");
    if (path_len >= sizeof path)
        return fail(code, code_size, message, message_size, "IncompleteSignature", "path too long");
    memcpy(path, req->uri, path_len);
    path[path_len] = '\0';
    const char *query = req->uri[path_len] == '?' ? req->uri + path_len + 1 : "";
    const char *content_sha = verify_request_header(req, "X-Amz-Content-SHA256");
    struct sigv4_request sr = {.method = req->method,
                               .path = path,
                               .query = query,
                               .headers = headers,
                               .header_count = n,
                               .body = req->body,
                               .body_len = req->body_len};
    struct sigv4_params params = {
        .creds = {key->access_key_id, key->secret_access_key,
                  listed(signed_headers, "x-amz-security-token")
                      ? verify_request_header(req, "X-Amz-Security-Token")
                      : NULL},
        .region = key->region,
        .service = key->service,
        .time_s = signed_ms / 1000,
        .sign_body = content_sha != NULL && listed(signed_headers, "x-amz-content-sha256"),
    };
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    char errbuf[256];
    int rc = 0;
    if (sigv4_request_sign(NULL, &sr, &params, &out, errbuf) != 0) {
        rc = fail(code, code_size, message, message_size, "IncompleteSignature", errbuf);
    } else if (content_sha && strcmp(content_sha, out.content_sha256) != 0) {
        rc = fail(code, code_size, message, message_size, "SignatureDoesNotMatch",
                  "The provided x-amz-content-sha256 header does not match what was computed.");
    } else if (strcmp(buf_cstr(&out.authorization), auth) != 0) {
        rc = fail(code, code_size, message, message_size, "SignatureDoesNotMatch",
                  "The request signature we calculated does not match the signature you "
                  "provided. Check your AWS Secret Access Key and signing method. Consult the "
                  "service documentation for details.");
    }
    sigv4_signed_clear(&out);
    return rc;
}
