/*
 * aws/sigv4: AWS Signature Version 4 (AWS4-HMAC-SHA256) request signing, in
 * the Authorization header or in the query string (presigned URLs). Called by
 * the service clients (aws/bedrock, aws/cloudwatch, STS in aws/credentials)
 * from the HTTP transport's sign hook.
 *
 * What is signed follows the official JavaScript signer (@smithy/signature-v4
 * 5.7.5) byte for byte, and the AWS SigV4 test suite (aws-c-auth):
 *   - header names lower-cased and sorted; values with CR and LF turned into
 *     spaces, runs of spaces and tabs folded to one, one leading and trailing
 *     space removed; repeated names joined with ',' in the order given;
 *   - never signed: authorization, cache-control, connection, expect, from,
 *     keep-alive, max-forwards, pragma, referer, te, trailer,
 *     transfer-encoding, upgrade, user-agent, x-amzn-trace-id, proxy-*, sec-*;
 *     any date, x-amz-date and authorization header given is ignored (the
 *     signer sets x-amz-date itself);
 *   - the path, for every service but S3, has empty, "." and ".." segments
 *     removed and is then URI-encoded (so a path already encoded on the wire
 *     is encoded twice, as AWS expects); for S3 (no_normalize_path) it is
 *     kept, with only bytes outside RFC 3986's unreserved set, '/' and
 *     existing %XX escapes encoded;
 *   - the query is split on '&' and the first '=', each key and value
 *     percent-decoded ('+' stays a plus) and re-encoded per RFC 3986
 *     (unreserved bytes kept, everything else %XX in upper case), a missing
 *     '=' meaning an empty value; pairs sorted by encoded key, then value;
 *     an X-Amz-Signature parameter is left out.
 *
 * Ownership: every input is borrowed for the duration of the call only.
 * Results go to caller-owned structs and buffers.
 * Threading: the functions are reentrant. A struct sigv4_key_cache may be
 * shared by any number of threads (it locks internally).
 * Failure: functions return an enum assay_err, write a detail into errbuf
 * (ASSAY_ERRBUF_SIZE bytes, may be NULL) and leave their outputs in an
 * unspecified but valid state (buffers stay freeable). Details never contain
 * the secret access key, the session token or a signing key.
 * Allocation: signing allocates nothing except to grow the caller's result
 * buffers, which keep their storage across calls; a hot path that reuses one
 * struct sigv4_signed allocates nothing after the first call.
 */
#ifndef ASSAY_AWS_SIGV4_H
#define ASSAY_AWS_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
/* Hex SHA-256 of the empty string: the payload hash of a request without body. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
/* Limits on what one request may carry; beyond them signing fails with ASSAY_ERR_TOO_LARGE. */
#define SIGV4_MAX_HEADERS 128
#define SIGV4_MAX_QUERY_PARAMS 256
/* Presigned URLs live at most a week (AWS's limit). */
#define SIGV4_MAX_EXPIRES_S (7 * 24 * 3600)

/* One header; names and values are NUL-terminated. A NULL value is skipped. */
struct sigv4_header {
    const char *name;
    const char *value;
};

/* Borrowed credential strings; session_token NULL or "" when there is none. */
struct sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;
};

/* The request to sign, all borrowed. */
struct sigv4_request {
    const char *method; /* "GET", "POST", ... as sent */
    const char *path;   /* as sent on the wire, without the query; "" means "/" */
    const char *query;  /* raw query string as sent, without '?'; NULL or "" for none */
    const struct sigv4_header *headers; /* must include host */
    size_t header_count;
    const void *body; /* hashed unless payload_hash is set; NULL with body_len 0 = empty */
    size_t body_len;
    /*
     * Optional: the payload hash to sign (64 lower-case hex digits, or
     * "UNSIGNED-PAYLOAD"), for bodies that are streamed or hashed already.
     * An x-amz-content-sha256 header among the headers takes precedence, as
     * in the JS signer.
     */
    const char *payload_hash;
};

/* How to sign. Zero-initialise, then set what applies. */
struct sigv4_params {
    struct sigv4_credentials creds;
    const char *region;     /* "us-east-1" */
    const char *service;    /* signing name: "bedrock", "monitoring", "sts", "s3" */
    int64_t time_s;         /* signing time, epoch seconds (corrected for clock skew) */
    bool no_normalize_path; /* true only for S3: keep the path as sent */
    bool sign_body;         /* header signing: add and sign x-amz-content-sha256 */
    /*
     * Add the session token after signing instead of signing it (the
     * suite's post-sts-header-after: for services that want it unsigned).
     */
    bool omit_session_token;
    int64_t expires_s; /* presigning: X-Amz-Expires, 1..SIGV4_MAX_EXPIRES_S; 0 = 3600 */
};

/* Where the signature goes. */
enum sigv4_placement { SIGV4_IN_HEADER, SIGV4_IN_QUERY };

/*
 * The result of signing, held by the caller: sigv4_signed_init before first
 * use, sigv4_signed_clear at the end; reuse across calls keeps the buffers.
 */
struct sigv4_signed {
    char amz_date[17];        /* "20150830T123600Z" */
    char content_sha256[65];  /* the payload hash signed ("UNSIGNED-PAYLOAD" fits) */
    char signature[65];       /* lower-case hex */
    struct buf authorization; /* header signing: the Authorization value */
    struct buf query;         /* presigning: the full query string to send, without '?' */
    /*
     * Header signing: the headers to add to the request (names as AWS
     * writes them), values borrowed from this struct and from the
     * credentials: X-Amz-Date, X-Amz-Security-Token (with a session token),
     * X-Amz-Content-SHA256 (sign_body), Authorization. Empty for presigning.
     */
    struct sigv4_header add[4];
    size_t add_count;
};

void sigv4_signed_init(struct sigv4_signed *s);
/* Frees the buffers. Accepts NULL. */
void sigv4_signed_clear(struct sigv4_signed *s);

/*
 * A cache of derived signing keys, one per (day, region, service, access key
 * id, secret). Thread-safe. Holds a hash of the secret, never the secret;
 * the derived keys are wiped on eviction and on free.
 */
struct sigv4_key_cache;

struct sigv4_key_cache *sigv4_key_cache_new(void);
/* Accepts NULL. */
void sigv4_key_cache_free(struct sigv4_key_cache *cache);
/*
 * Writes into key the signing key for the credentials' secret on day date8
 * ("20150830"), region and service, from the cache or derived and stored.
 * cache may be NULL (always derive). Returns true when it came from the cache.
 */
bool sigv4_key_cache_get(struct sigv4_key_cache *cache, const struct sigv4_credentials *creds,
                         const char *date8, const char *region, const char *service,
                         uint8_t key[32]);

/*
 * RFC 3986 percent-encoding, the one routine of aws/ (SigV4 canonical paths
 * and queries, and the form bodies of the AWS query protocol, STS and SNS,
 * which the AWS SDKs encode the same way: the JavaScript SDK's
 * extendedEncodeURIComponent, botocore's quote(safe="-_.~")): the unreserved
 * bytes A-Z a-z 0-9 - . _ ~ are kept, every other byte (UTF-8 bytes one by
 * one, space as %20, never '+') becomes %XX in upper case.
 *
 * sigv4_uri_encode_byte writes one byte's encoding into out and returns its
 * length (1 or 3); sigv4_uri_encode appends n bytes' encoding to out.
 */
size_t sigv4_uri_encode_byte(unsigned char c, char out[3]);
void sigv4_uri_encode(struct buf *out, const char *p, size_t n);
/* Appends key=value to a form body (with '&' before it unless out is empty),
 * both encoded as above: the query-protocol bodies of STS and SNS. */
void sigv4_form_param_append(struct buf *out, const char *key, const char *value);

/*
 * Staged functions: each stage of the algorithm on its own, for tests and for
 * reading. Each appends to out (it does not reset it).
 *
 * Canonical request: method, canonical path, canonical query, canonical
 * headers, signed header list, payload hash, as signed for the placement
 * (with the X-Amz-* parameters in the query when presigning).
 */
enum assay_err sigv4_canonical_request_build(const struct sigv4_request *req,
                                             const struct sigv4_params *params,
                                             enum sigv4_placement placement, struct buf *out,
                                             char *errbuf);
/* "AWS4-HMAC-SHA256\n<amz date>\n<scope>\n<hex sha256 of the canonical request>". */
enum assay_err sigv4_string_to_sign_build(const char *canonical_request, size_t len,
                                          const struct sigv4_params *params, struct buf *out,
                                          char *errbuf);
/* The signing key: HMAC chain over "AWS4"+secret, date8, region, service, "aws4_request". */
void sigv4_signing_key_derive(const char *secret, const char *date8, const char *region,
                              const char *service, uint8_t key[32]);
/* Lower-case hex HMAC-SHA256 of the string to sign under key (65 bytes with NUL). */
void sigv4_signature_compute(const uint8_t key[32], const char *string_to_sign, size_t len,
                             char hex[65]);
/* "<date8>/<region>/<service>/aws4_request" into out (appended). */
void sigv4_scope_append(const struct sigv4_params *params, struct buf *out);

/*
 * Signs req for the Authorization header: fills out (amz_date,
 * content_sha256, signature, authorization, add[]). The caller adds out->add
 * to the request, replacing any header of the same name. cache may be NULL.
 */
enum assay_err sigv4_request_sign(struct sigv4_key_cache *cache, const struct sigv4_request *req,
                                  const struct sigv4_params *params, struct sigv4_signed *out,
                                  char *errbuf);
/*
 * Presigns req: out->query is the request's own query followed by the x-amz-*
 * headers (moved into the query, as the JS signer does), X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Expires,
 * X-Amz-Security-Token (with a session token) and X-Amz-Signature. The x-amz-*
 * headers must then not be sent as headers. cache may be NULL.
 */
enum assay_err sigv4_request_presign(struct sigv4_key_cache *cache, const struct sigv4_request *req,
                                     const struct sigv4_params *params, struct sigv4_signed *out,
                                     char *errbuf);

#endif
