/*
 * aws/credentials: AWS credentials for signing, found the way the AWS SDKs
 * find them. The default chain (creds_chain_new) tries, in this order:
 *   1. env          AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   2. web_identity AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *                   (+ AWS_ROLE_SESSION_NAME) through STS
 *                   AssumeRoleWithWebIdentity (EKS service accounts)
 *   3. profile      ~/.aws/credentials and ~/.aws/config (AWS_PROFILE,
 *                   AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE)
 *   4. container    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI
 *                   (ECS task roles, EKS Pod Identity)
 *   5. imds         EC2 instance metadata, IMDSv2 only
 * and keeps the first that yields credentials; an info log line
 * ("creds.resolved") names it. Called by aws/sigv4's users (the Bedrock and
 * CloudWatch clients) before each signing.
 *
 * Caching and refresh: every provider returned here caches what it fetched.
 * Temporary credentials (those with an expiration) are fetched again once the
 * clock enters the refresh margin before expiry (default 5 minutes), by one
 * caller only ("single flight"): while it fetches, concurrent callers get the
 * old credentials if they are still valid, and otherwise (first use, or after
 * expiry) wait for that one fetch and share its result.
 * A failing refresh while the old credentials are still valid returns the old
 * ones and logs a warning ("creds.refresh_failed"); it is retried at most once
 * per retry interval. Once they have expired, a failing refresh is an error.
 *
 * Secrets (secret key, session token, web identity and container tokens) are
 * never written to a log line or an error buffer, and are zeroed before their
 * memory is freed.
 *
 * Threading: creds_provider_get may be called from any number of threads at
 * once. Construction and creds_provider_free are not concurrent with get.
 * Providers that make HTTP calls block the calling thread in
 * http_transport_perform, so get must not be called on the transport's own
 * thread (from a completion callback).
 * Ownership: options and everything they point to (transport, clock,
 * environment context) are borrowed and must outlive the provider; strings in
 * the options are copied at construction.
 */
#ifndef ASSAY_AWS_CREDENTIALS_H
#define ASSAY_AWS_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "common/err.h"

struct http_transport;

/* One set of credentials. The caller holds the struct: creds_init/creds_clear. */
struct creds {
    char *access_key_id;     /* new string, NULL when empty */
    char *secret_access_key; /* new string, NULL when empty */
    char *session_token;     /* NULL for long-term keys */
    int64_t expiration_ms;   /* epoch ms; 0 = does not expire */
    char provider[24];       /* "env", "web_identity", "profile", "container", "imds", ... */
};

void creds_init(struct creds *c);
/* Zeroes the secrets, frees the strings and leaves an empty struct. Accepts NULL. */
void creds_clear(struct creds *c);
/* Replaces dst (already initialised) by a deep copy of src. */
void creds_copy(struct creds *dst, const struct creds *src);
/* Nonzero when both the key id and the secret key are set. */
int creds_is_set(const struct creds *c);

/*
 * Environment look-up: returns the value of name, or NULL when it is unset.
 * The value is borrowed and must stay valid during the provider call that
 * asked for it. Empty values are treated as unset everywhere in this module.
 */
typedef const char *(*creds_getenv_fn)(void *ctx, const char *name);

struct creds_options {
    creds_getenv_fn getenv;           /* NULL: the process environment (getenv) */
    void *getenv_ctx;                 /* passed to getenv */
    struct http_transport *transport; /* borrowed; NULL: the HTTP providers
                                         (web_identity, container, imds) find nothing */
    const struct clock *clock;        /* NULL: the system clock */
    const char *profile;              /* overrides AWS_PROFILE; NULL: AWS_PROFILE, else "default" */
    int64_t refresh_margin_ms;        /* refresh this long before expiry; 0: 5 minutes */
    int64_t refresh_retry_ms;         /* after a failed refresh, wait this long before trying
                                         again while the old credentials are valid; 0: 10 s */
    int64_t http_timeout_ms;          /* STS and container calls, total; 0: 5,000 */
    int64_t imds_timeout_ms;          /* each IMDS call, total and connect; 0: 1,000 */
    /* Base URL for AWS_CONTAINER_CREDENTIALS_RELATIVE_URI; NULL:
     * "http://169.254.170.2". Tests point it at a local server. */
    const char *container_base_url;
};

struct creds_provider;

/*
 * Constructors. Each returns a new provider that reads the environment at
 * fetch time, so a provider made before the variables are set still finds
 * them. opt may be NULL (all defaults). None of them fails.
 */
struct creds_provider *creds_chain_new(const struct creds_options *opt);
struct creds_provider *creds_env_new(const struct creds_options *opt);
struct creds_provider *creds_web_identity_new(const struct creds_options *opt);
struct creds_provider *creds_profile_new(const struct creds_options *opt);
struct creds_provider *creds_container_new(const struct creds_options *opt);
struct creds_provider *creds_imds_new(const struct creds_options *opt);
/* Fixed credentials (copied); for tests and for callers that hold keys. */
struct creds_provider *creds_static_new(const struct creds *c);

/*
 * Fills out (initialised by the caller; replaced) with current credentials,
 * from the cache or by fetching. Returns ASSAY_OK; or
 * ASSAY_ERR_NO_CREDENTIALS when the provider is not configured or finds
 * nothing (the chain: when no provider does; errbuf names what was tried);
 * or the fetch's error (ASSAY_ERR_TIMEOUT, ASSAY_ERR_TRANSPORT,
 * ASSAY_ERR_HTTP_STATUS, ASSAY_ERR_PARSE, ASSAY_ERR_IO,
 * ASSAY_ERR_CREDENTIALS_EXPIRED, ...) with a detail in errbuf. On error out is
 * left empty. Thread-safe.
 */
enum assay_err creds_provider_get(struct creds_provider *p, struct creds *out, char *errbuf);
/* The provider's name ("chain", "env", ...), static. */
const char *creds_provider_name(const struct creds_provider *p);
/* Number of fetches the provider has started (cache misses); for tests and metrics. */
uint64_t creds_provider_fetches(const struct creds_provider *p);
/* Zeroes cached secrets and frees. Accepts NULL. */
void creds_provider_free(struct creds_provider *p);

/*
 * The region for AWS calls, as the SDKs resolve it: AWS_REGION, then
 * AWS_DEFAULT_REGION, then the `region` key of the selected profile in the
 * shared config file (the credentials file is consulted too, and wins, as for
 * every profile key). On ASSAY_OK *region_out is a new string (free()); on
 * ASSAY_ERR_NOT_FOUND it is NULL and errbuf says where it looked.
 */
enum assay_err creds_region_resolve(const struct creds_options *opt, char **region_out,
                                    char *errbuf);

#endif
