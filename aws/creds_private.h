/*
 * aws/creds_private: what the credentials provider files share and nothing
 * outside aws/ (and the tests and fuzz targets) may call: the provider
 * object behind struct creds_provider, environment and file helpers, the HTTP
 * helper, and the parsers for the answers of STS (XML) and of the container
 * and IMDS endpoints (JSON).
 */
#ifndef ASSAY_AWS_CREDS_PRIVATE_H
#define ASSAY_AWS_CREDS_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/credentials.h"
#include "aws/http.h"

/* Raw fetch, without the cache. Fills out (empty on entry) or returns an error. */
typedef enum assay_err (*creds_fetch_fn)(struct creds_provider *p, struct creds *out, char *errbuf);

struct creds_provider {
    const char *name;
    creds_fetch_fn fetch;
    void (*destroy)(void *impl);
    void *impl;
    /* A copy of the options; the strings below are owned copies. */
    struct creds_options opt;
    char *profile_copy;
    char *container_base_copy;

    /* The cache and its single flight, under mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct creds cached;
    int64_t next_refresh_ms; /* fetch again from this time on */
    int refreshing;
    uint64_t flights_done;
    enum assay_err last_err;
    char last_errbuf[ASSAY_ERRBUF_SIZE];
    atomic_uint_fast64_t fetches;
};

/* A new provider around fetch; impl is owned and released with destroy (may be NULL). */
struct creds_provider *creds_provider_alloc(const char *name, const struct creds_options *opt,
                                            creds_fetch_fn fetch, void (*destroy)(void *impl),
                                            void *impl);

/* The variable through the options' getenv; NULL when unset or empty. */
const char *creds_env(const struct creds_options *opt, const char *name);
/* Nonzero when the variable is "true" in any case. */
int creds_env_true(const struct creds_options *opt, const char *name);
/* A path with a leading "~/" expanded from HOME; new string, NULL when HOME is unset. */
char *creds_expand_home(const struct creds_options *opt, const char *path);
/*
 * Reads a small file (a token) into a new string with surrounding whitespace
 * trimmed; the caller frees it with secure_free_str. ASSAY_ERR_NOT_FOUND,
 * ASSAY_ERR_IO, ASSAY_ERR_TOO_LARGE (over max bytes) or ASSAY_ERR_PARSE (empty
 * or holding a NUL, CR or LF inside) with the path (never the contents) in errbuf.
 */
enum assay_err creds_read_token_file(const char *path, size_t max, char **out, char *errbuf);

/* Sets method-independent limits and performs the request through the
 * options' transport; the transport error's detail goes to errbuf. */
enum assay_err creds_http_perform(const struct creds_options *opt, struct http_request *req,
                                  struct http_response *resp, int64_t timeout_ms, char *errbuf);
/* Zeroes the body and headers (they may carry secrets), then clears. */
void creds_http_request_wipe(struct http_request *req);
void creds_http_response_wipe(struct http_response *resp);

/* Sets c's strings (copies of n-byte views; NULL or 0 length leaves NULL). */
void creds_set(struct creds *c, const char *akid, size_t akid_len, const char *secret,
               size_t secret_len, const char *token, size_t token_len);

/*
 * The answer of the container endpoint or of IMDS: a JSON object with string
 * members AccessKeyId, SecretAccessKey, Token and Expiration (ISO 8601).
 * When require_success, a Code member must be "Success" (IMDS). Other
 * members are skipped, whatever their type. ASSAY_ERR_PARSE with a detail
 * that never quotes a value.
 */
enum assay_err creds_parse_json(const char *text, size_t len, int require_success,
                                struct creds *out, char *errbuf);

/*
 * Finds the first element <name>...</name> in [s, s+n) (attributes allowed,
 * no self-closing form) and sets *inner / *inner_len to its content. Returns
 * 0, or -1 when absent or unterminated.
 */
int creds_xml_element(const char *s, size_t n, const char *name, const char **inner,
                      size_t *inner_len);
/*
 * The text of an element's content with the five XML entities and numeric
 * character references decoded; a new string (secure_free_str), or NULL when
 * it holds markup, a bad reference, or a NUL.
 */
char *creds_xml_text(const char *s, size_t n);
/*
 * An STS AssumeRoleWithWebIdentity answer of the given HTTP status: the
 * credentials from AssumeRoleWithWebIdentityResult/Credentials on 200;
 * else ASSAY_ERR_HTTP_STATUS with the <Error><Code> and <Message> in errbuf.
 * ASSAY_ERR_PARSE when a 200 answer lacks a field.
 */
enum assay_err creds_parse_sts(const char *text, size_t len, int status, struct creds *out,
                               char *errbuf);

/* Raw fetches of each provider kind, so that the chain can call them. */
enum assay_err creds_env_fetch(struct creds_provider *p, struct creds *out, char *errbuf);
enum assay_err creds_web_identity_fetch(struct creds_provider *p, struct creds *out, char *errbuf);
enum assay_err creds_profile_fetch(struct creds_provider *p, struct creds *out, char *errbuf);
enum assay_err creds_container_fetch(struct creds_provider *p, struct creds *out, char *errbuf);
enum assay_err creds_imds_fetch(struct creds_provider *p, struct creds *out, char *errbuf);

#endif
