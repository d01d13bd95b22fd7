/*
 * aws/signer: the transport's sign hook for AWS services, joining
 * aws/credentials, aws/sigv4 and aws/http. Used by the Bedrock and CloudWatch
 * clients.
 */
#include "aws/signer.h"

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sigv4.h"
#include "common/alloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct signer {
    char *region;
    char *service;
    struct creds_provider *creds;
    int sign_body;
    struct sigv4_key_cache *keys;
};

struct signer *signer_new(const struct signer_options *opt, char *errbuf)
{
    if (!opt || !opt->region || !*opt->region || !opt->service || !*opt->service || !opt->creds) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "a signer needs a region, a service name and a credentials provider");
        return NULL;
    }
    struct signer *s = xcalloc(1, sizeof *s);
    s->region = xstrdup(opt->region);
    s->service = xstrdup(opt->service);
    s->creds = opt->creds;
    s->sign_body = opt->sign_body;
    s->keys = sigv4_key_cache_new();
    return s;
}

void signer_free(struct signer *s)
{
    if (!s)
        return;
    sigv4_key_cache_free(s->keys);
    free(s->region);
    free(s->service);
    free(s);
}

enum assay_err signer_warm(struct signer *s, char *errbuf)
{
    struct creds c;
    creds_init(&c);
    enum assay_err err = creds_provider_get(s->creds, &c, errbuf);
    creds_clear(&c);
    return err;
}

void signer_attach(struct signer *s, struct http_request *req)
{
    req->sign = signer_sign;
    req->sign_ctx = s;
}

/* Splits an absolute URL into its authority (without userinfo), path and query. */
struct url_parts {
    char host[256];
    const char *path; /* points into the URL; runs to the query or the end */
    size_t path_len;
    const char *query; /* after '?', or NULL */
};

static enum assay_err split_url(const char *url, struct url_parts *u, char *errbuf)
{
    int https = strncasecmp(url, "https://", 8) == 0;
    if (!https && strncasecmp(url, "http://", 7) != 0)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "cannot sign a URL that is not absolute http(s)");
    const char *auth = url + (https ? 8 : 7);
    size_t auth_len = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', auth_len);
    if (at) {
        auth_len -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    /* The SDKs leave the default port out of the Host header. */
    const char *default_port = https ? ":443" : ":80";
    size_t dp = strlen(default_port);
    if (auth_len > dp && strncmp(auth + auth_len - dp, default_port, dp) == 0)
        auth_len -= dp;
    if (auth_len == 0 || auth_len >= sizeof u->host)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "URL host is empty or too long");
    memcpy(u->host, auth, auth_len);
    u->host[auth_len] = '\0';
    const char *rest = auth + strcspn(auth, "/?#");
    u->path = rest;
    u->path_len = strcspn(rest, "?#");
    u->query = rest[u->path_len] == '?' ? rest + u->path_len + 1 : NULL;
    return ASSAY_OK;
}

enum assay_err signer_sign(void *ctx, struct http_request *req, int64_t now_ms, char *errbuf)
{
    static const char *const previous[] = {"Authorization", "X-Amz-Date", "X-Amz-Security-Token",
                                           "X-Amz-Content-SHA256"};
    struct signer *s = ctx;
    struct url_parts u;
    struct creds c;
    struct sigv4_signed out;
    char path[2048];
    char query[4096];
    creds_init(&c);
    sigv4_signed_init(&out);
    enum assay_err err = split_url(req->url, &u, errbuf);
    if (err != ASSAY_OK)
        goto out;
    size_t query_len = u.query ? strcspn(u.query, "#") : 0;
    if (u.path_len >= sizeof path || query_len >= sizeof query) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "URL too long to sign");
        goto out;
    }
    memcpy(path, u.path, u.path_len);
    path[u.path_len] = '\0';
    if (u.query)
        memcpy(query, u.query, query_len);
    query[query_len] = '\0';

    err = creds_provider_get(s->creds, &c, errbuf);
    if (err != ASSAY_OK)
        goto out;
    for (size_t i = 0; i < sizeof previous / sizeof previous[0]; i++)
        http_request_header_remove(req, previous[i]);
    http_request_header_set(req, "Host", u.host);
    if (req->n_headers > SIGV4_MAX_HEADERS) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "too many headers to sign");
        goto out;
    }
    struct sigv4_header headers[SIGV4_MAX_HEADERS];
    for (size_t i = 0; i < req->n_headers; i++) {
        headers[i].name = req->headers[i].name;
        headers[i].value = req->headers[i].value;
    }
    struct sigv4_request sr = {
        .method = req->method,
        .path = path,
        .query = query,
        .headers = headers,
        .header_count = req->n_headers,
        .body = req->body.data,
        .body_len = req->body.len,
    };
    struct sigv4_params params = {
        .creds = {c.access_key_id, c.secret_access_key, c.session_token},
        .region = s->region,
        .service = s->service,
        .time_s = now_ms / 1000,
        .sign_body = s->sign_body != 0,
    };
    err = sigv4_request_sign(s->keys, &sr, &params, &out, errbuf);
    if (err != ASSAY_OK)
        goto out;
    for (size_t i = 0; i < out.add_count; i++)
        http_request_header_set(req, out.add[i].name, out.add[i].value);
out:
    sigv4_signed_clear(&out);
    creds_clear(&c);
    return err;
}
