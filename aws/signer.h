/*
 * aws/signer: SigV4 request signing wired to the shared transport. A signer
 * holds the region, the signing name of a service ("bedrock", "monitoring"),
 * a credentials provider and a signing-key cache; signer_attach makes the
 * transport call signer_sign before each send of a request, with the time
 * corrected for clock skew (see aws/http.h), so that a request refused for a
 * skewed clock is re-signed with the corrected time.
 *
 * Threading: signer_sign runs on the transport thread and may be called for
 * many requests at once; it takes credentials from the provider, which serves
 * cached credentials without blocking while they are valid. The provider must
 * not fetch through the same transport (a metadata call from the transport's
 * own thread is refused, not deadlocked): give credentials their own
 * transport, and call signer_warm at start-up so the first request does not
 * wait on a fetch.
 * Ownership: the signer borrows the provider; the strings are copied.
 */
#ifndef ASSAY_AWS_SIGNER_H
#define ASSAY_AWS_SIGNER_H

#include <stdint.h>

#include "common/err.h"

struct creds_provider;
struct http_request;
struct signer;

struct signer_options {
    const char *region;           /* "us-east-1" */
    const char *service;          /* the signing name */
    struct creds_provider *creds; /* borrowed */
    int sign_body;                /* add and sign X-Amz-Content-SHA256 */
};

/* Returns a new signer, or NULL with errbuf when region, service or creds is missing. */
struct signer *signer_new(const struct signer_options *opt, char *errbuf);
/* Frees; accepts NULL. Requests that may still be signed must be finished first. */
void signer_free(struct signer *s);

/* Fetches credentials once (possibly blocking) so that later signing finds them cached. */
enum assay_err signer_warm(struct signer *s, char *errbuf);

/* Sets req->sign and req->sign_ctx so the transport signs req with s. */
void signer_attach(struct signer *s, struct http_request *req);

/*
 * The sign hook (http_sign_fn): removes the signature headers of an earlier
 * attempt, sets Host from the URL (without a default port), and adds
 * X-Amz-Date, X-Amz-Security-Token, X-Amz-Content-SHA256 (when configured)
 * and Authorization for now_ms. The URL's path and query are signed as they
 * will be sent, so callers encode them once (a model id's ':' as %3A); SigV4
 * then encodes the path once more, as AWS expects for every service but S3.
 * Errors: no credentials (ASSAY_ERR_NO_CREDENTIALS / _EXPIRED), a URL that
 * is not absolute (ASSAY_ERR_INVALID_ARGUMENT); errbuf never holds a secret.
 */
enum assay_err signer_sign(void *signer, struct http_request *req, int64_t now_ms, char *errbuf);

#endif
