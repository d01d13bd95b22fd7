/*
 * common/err: the one error enum of assay, and the table that gives each code
 * a stable snake_case name (the HTTP API's error.code), a sentence and an HTTP
 * status. Codes are only ever added at the end.
 *
 * Details (which sample, which field, which file) go to an optional error
 * buffer of ASSAY_ERRBUF_SIZE bytes that the caller owns, in the manner of
 * curl's CURLOPT_ERRORBUFFER. A NULL buffer means the caller wants no detail.
 * Thread-safe: the table is constant.
 */
#ifndef ASSAY_COMMON_ERR_H
#define ASSAY_COMMON_ERR_H

#include <stddef.h>

#define ASSAY_ERRBUF_SIZE 256

/* X(code, name, http_status, sentence) */
#define ASSAY_ERR_TABLE(X)                                                                         \
    X(ASSAY_OK, "ok", 200, "success")                                                              \
    X(ASSAY_ERR_INVALID_ARGUMENT, "invalid_argument", 400, "an argument is not valid")            \
    X(ASSAY_ERR_PARSE, "parse_error", 400, "input could not be parsed")                            \
    X(ASSAY_ERR_NOT_FOUND, "not_found", 404, "the thing asked for does not exist")                 \
    X(ASSAY_ERR_IO, "io_error", 500, "a file or socket operation failed")                          \
    X(ASSAY_ERR_TOO_LARGE, "too_large", 413, "the input is larger than the configured limit")      \
    X(ASSAY_ERR_TIMEOUT, "timeout", 504, "the operation timed out")                                \
    X(ASSAY_ERR_TRANSPORT, "transport_error", 502, "the network transfer failed")                  \
    X(ASSAY_ERR_HTTP_STATUS, "http_status", 502, "the server answered with an error status")       \
    X(ASSAY_ERR_NO_CREDENTIALS, "no_credentials", 500, "no AWS credentials could be found")        \
    X(ASSAY_ERR_CREDENTIALS_EXPIRED, "credentials_expired", 500, "the AWS credentials expired")   \
    X(ASSAY_ERR_CONFIG, "config_error", 500, "the configuration is not valid")                     \
    X(ASSAY_ERR_UNAUTHORIZED, "unauthorized", 401, "the request carries no valid API key")         \
    X(ASSAY_ERR_FORBIDDEN, "forbidden", 403, "the API key may not act for this app")              \
    X(ASSAY_ERR_UNSUPPORTED_MEDIA, "unsupported_media_type", 415, "the content type is not accepted") \
    X(ASSAY_ERR_BUSY, "busy", 429, "the queue is full; retry later")                               \
    X(ASSAY_ERR_NOT_READY, "not_ready", 503, "the service is not ready")                           \
    X(ASSAY_ERR_INTERNAL, "internal_error", 500, "an internal error occurred")                     \
    X(ASSAY_ERR_CANCELLED, "cancelled", 499, "the operation was cancelled")                        \
    X(ASSAY_ERR_NOT_IMPLEMENTED, "not_implemented", 501, "this route is not implemented yet")      \
    X(ASSAY_ERR_METHOD_NOT_ALLOWED, "method_not_allowed", 405, "the route does not take this method") \
    X(ASSAY_ERR_CONFLICT, "conflict", 409, "the request conflicts with work in progress")

enum assay_err {
#define ASSAY_ERR_ENUM(code, name, status, sentence) code,
    ASSAY_ERR_TABLE(ASSAY_ERR_ENUM)
#undef ASSAY_ERR_ENUM
    ASSAY_ERR__COUNT
};

/* Stable snake_case name; "unknown_error" for a value outside the enum. */
const char *assay_err_name(enum assay_err err);
/* One sentence describing the code. */
const char *assay_err_message(enum assay_err err);
/* The HTTP status the API answers with for this code. */
int assay_err_http_status(enum assay_err err);

/*
 * Writes a detail into errbuf (ASSAY_ERRBUF_SIZE bytes, may be NULL) and
 * returns err, so that `return assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, ...)`
 * reads as one statement. The format must be a literal: untrusted text goes in
 * as a %s argument, never as the format.
 */
enum assay_err assay_errbuf_set(char *errbuf, enum assay_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
