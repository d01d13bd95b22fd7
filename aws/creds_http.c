/*
 * aws/creds_http: the credentials providers that ask a local HTTP endpoint:
 * the container provider (ECS task roles, EKS Pod Identity) and EC2 instance
 * metadata (IMDSv2 only), plus the JSON reader for their answers and the
 * helper that sends a request through the shared transport (aws/http).
 */
#include "aws/credentials.h"

#include "aws/creds_private.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_RESPONSE_BYTES (64 * 1024)
#define TOKEN_FILE_MAX_BYTES (16 * 1024)
#define DEFAULT_HTTP_TIMEOUT_MS 5000
#define DEFAULT_IMDS_TIMEOUT_MS 1000
#define IMDS_TOKEN_TTL_S "21600"
#define JSON_MAX_DEPTH 32

/* ---- the transport helper ---- */

enum assay_err creds_http_perform(const struct creds_options *opt, struct http_request *req,
                                  struct http_response *resp, int64_t timeout_ms, char *errbuf)
{
    req->timeout_ms = timeout_ms;
    req->connect_timeout_ms = timeout_ms < 3000 ? timeout_ms : 0;
    req->max_response_bytes = MAX_RESPONSE_BYTES;
    enum assay_err err = http_transport_perform(opt->transport, req, resp);
    if (err != ASSAY_OK)
        return assay_errbuf_set(errbuf, err, "%s %s: %s", req->method, req->url,
                                resp->errbuf[0] ? resp->errbuf : assay_err_message(err));
    return ASSAY_OK;
}

void creds_http_request_wipe(struct http_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].value)
            secure_zero(req->headers[i].value, strlen(req->headers[i].value));
    if (req->body.data)
        secure_zero(req->body.data, req->body.len);
    http_request_clear(req);
}

void creds_http_response_wipe(struct http_response *resp)
{
    if (resp->body.data)
        secure_zero(resp->body.data, resp->body.len);
    http_response_clear(resp);
}

/* ---- the JSON reader ---- */

struct js {
    const char *s;
    size_t n, i;
};

static void js_ws(struct js *j)
{
    while (j->i < j->n &&
           (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
        j->i++;
}

static int hex4(const char *s, unsigned long *v)
{
    *v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        *v = *v * 16 + (unsigned long)d;
    }
    return 0;
}

/* A string at j->i (which is '"'); decoded into out when out is not NULL. */
static int js_string(struct js *j, struct buf *out)
{
    if (j->i >= j->n || j->s[j->i] != '"')
        return -1;
    j->i++;
    while (j->i < j->n) {
        unsigned char c = (unsigned char)j->s[j->i++];
        if (c == '"')
            return 0;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            if (out)
                buf_append_char(out, (char)c);
            continue;
        }
        if (j->i >= j->n)
            return -1;
        char e = j->s[j->i++];
        char lit = 0;
        switch (e) {
        case '"':
            lit = '"';
            break;
        case '\\':
            lit = '\\';
            break;
        case '/':
            lit = '/';
            break;
        case 'b':
            lit = '\b';
            break;
        case 'f':
            lit = '\f';
            break;
        case 'n':
            lit = '\n';
            break;
        case 'r':
            lit = '\r';
            break;
        case 't':
            lit = '\t';
            break;
        case 'u': {
            unsigned long cp, lo;
            if (j->n - j->i < 4 || hex4(j->s + j->i, &cp) != 0)
                return -1;
            j->i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (j->n - j->i < 6 || j->s[j->i] != '\\' || j->s[j->i + 1] != 'u' ||
                    hex4(j->s + j->i + 2, &lo) != 0 || lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                j->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                return -1;
            }
            if (cp == 0)
                return -1; /* a NUL would cut the C string short */
            if (out)
                buf_append_utf8(out, cp);
            continue;
        }
        default:
            return -1;
        }
        if (out)
            buf_append_char(out, lit);
    }
    return -1;
}

static int js_skip(struct js *j, int depth);

static int js_skip_container(struct js *j, int depth, char close, int is_object)
{
    j->i++;
    js_ws(j);
    if (j->i < j->n && j->s[j->i] == close) {
        j->i++;
        return 0;
    }
    for (;;) {
        if (is_object) {
            js_ws(j);
            if (js_string(j, NULL) != 0)
                return -1;
            js_ws(j);
            if (j->i >= j->n || j->s[j->i] != ':')
                return -1;
            j->i++;
        }
        if (js_skip(j, depth + 1) != 0)
            return -1;
        js_ws(j);
        if (j->i >= j->n)
            return -1;
        char c = j->s[j->i++];
        if (c == close)
            return 0;
        if (c != ',')
            return -1;
    }
}

static int js_skip(struct js *j, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return -1;
    js_ws(j);
    if (j->i >= j->n)
        return -1;
    char c = j->s[j->i];
    if (c == '"')
        return js_string(j, NULL);
    if (c == '{')
        return js_skip_container(j, depth, '}', 1);
    if (c == '[')
        return js_skip_container(j, depth, ']', 0);
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t k = 0; k < 3; k++) {
        size_t l = strlen(lits[k]);
        if (j->n - j->i >= l && memcmp(j->s + j->i, lits[k], l) == 0) {
            j->i += l;
            return 0;
        }
    }
    size_t start = j->i;
    while (j->i < j->n && strchr("+-0123456789.eE", j->s[j->i]) && j->s[j->i])
        j->i++;
    return j->i > start ? 0 : -1;
}

enum json_field { F_AKID, F_SECRET, F_TOKEN, F_EXPIRATION, F_CODE, F_COUNT };
static const char *const json_field_names[F_COUNT] = {"AccessKeyId", "SecretAccessKey", "Token",
                                                      "Expiration", "Code"};

enum assay_err creds_parse_json(const char *text, size_t len, int require_success,
                                struct creds *out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct buf f[F_COUNT];
    int seen[F_COUNT] = {0};
    struct buf key = BUF_INIT;
    struct js j = {text, len, 0};
    for (int k = 0; k < F_COUNT; k++)
        buf_init(&f[k]);

    js_ws(&j);
    if (j.i >= j.n || j.s[j.i] != '{') {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "credentials answer is not a JSON object");
        goto out;
    }
    j.i++;
    js_ws(&j);
    if (j.i < j.n && j.s[j.i] == '}') {
        j.i++;
    } else {
        for (;;) {
            js_ws(&j);
            buf_reset(&key);
            if (js_string(&j, &key) != 0)
                goto bad;
            js_ws(&j);
            if (j.i >= j.n || j.s[j.i] != ':')
                goto bad;
            j.i++;
            js_ws(&j);
            int which = -1;
            for (int k = 0; k < F_COUNT; k++)
                if (strcmp(buf_cstr(&key), json_field_names[k]) == 0)
                    which = k;
            if (which >= 0) {
                if (j.i >= j.n || j.s[j.i] != '"') {
                    err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE,
                                           "credentials answer: %s is not a string",
                                           json_field_names[which]);
                    goto out;
                }
                if (f[which].data)
                    secure_zero(f[which].data, f[which].len);
                buf_reset(&f[which]);
                if (js_string(&j, &f[which]) != 0)
                    goto bad;
                seen[which] = 1;
            } else if (js_skip(&j, 1) != 0) {
                goto bad;
            }
            js_ws(&j);
            if (j.i >= j.n)
                goto bad;
            char c = j.s[j.i++];
            if (c == '}')
                break;
            if (c != ',')
                goto bad;
        }
    }
    js_ws(&j);
    if (j.i != j.n)
        goto bad;

    if (require_success && (!seen[F_CODE] || strcmp(buf_cstr(&f[F_CODE]), "Success") != 0)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "credentials answer: Code is not Success");
        goto out;
    }
    if (!seen[F_AKID] || f[F_AKID].len == 0 || !seen[F_SECRET] || f[F_SECRET].len == 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "credentials answer lacks %s",
                               !seen[F_AKID] || f[F_AKID].len == 0 ? "AccessKeyId"
                                                                   : "SecretAccessKey");
        goto out;
    }
    if (memchr(f[F_AKID].data, '\0', f[F_AKID].len)) /* unreachable: \u0000 is refused */
        goto bad;
    int64_t exp_ms = 0;
    if (seen[F_EXPIRATION] && clock_parse_iso8601(buf_cstr(&f[F_EXPIRATION]), &exp_ms) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE,
                               "credentials answer: Expiration is not a time");
        goto out;
    }
    creds_set(out, f[F_AKID].data, f[F_AKID].len, f[F_SECRET].data, f[F_SECRET].len,
              f[F_TOKEN].data, f[F_TOKEN].len);
    out->expiration_ms = exp_ms;
    goto out;
bad:
    err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE,
                           "credentials answer is not valid JSON (at byte %zu)", j.i);
out:
    for (int k = 0; k < F_COUNT; k++) {
        if (f[k].data)
            secure_zero(f[k].data, f[k].len);
        buf_clear(&f[k]);
    }
    buf_clear(&key);
    return err;
}

/* ---- container ---- */

/* Nonzero when an http:// FULL_URI may name this host (no TLS, so only local ones). */
static int host_allowed_for_http(const char *host, size_t n)
{
    char h[64];
    if (n == 0 || n >= sizeof h)
        return 0;
    memcpy(h, host, n);
    h[n] = '\0';
    if (strcasecmp(h, "localhost") == 0)
        return 1;
    unsigned char a[16];
    if (h[0] == '[') {
        if (h[n - 1] != ']')
            return 0;
        h[n - 1] = '\0';
        if (inet_pton(AF_INET6, h + 1, a) != 1)
            return 0;
        static const unsigned char loop6[16] = {[15] = 1};
        static const unsigned char eks6[16] = {0xfd, 0x00, 0x0e, 0xc2, [15] = 0x23};
        return memcmp(a, loop6, 16) == 0 || memcmp(a, eks6, 16) == 0;
    }
    if (inet_pton(AF_INET, h, a) != 1)
        return 0;
    if (a[0] == 127)
        return 1;
    return a[0] == 169 && a[1] == 254 && a[2] == 170 && (a[3] == 2 || a[3] == 23);
}

/* Checks AWS_CONTAINER_CREDENTIALS_FULL_URI: https anywhere, http only to local hosts. */
static enum assay_err check_full_uri(const char *uri, char *errbuf)
{
    const char *rest;
    int https;
    if (strncasecmp(uri, "https://", 8) == 0) {
        https = 1;
        rest = uri + 8;
    } else if (strncasecmp(uri, "http://", 7) == 0) {
        https = 0;
        rest = uri + 7;
    } else {
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL");
    }
    size_t auth_len = strcspn(rest, "/?#");
    if (memchr(rest, '@', auth_len))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI must not carry user info");
    if (https)
        return ASSAY_OK;
    size_t host_len;
    if (rest[0] == '[') {
        const char *close = memchr(rest, ']', auth_len);
        host_len = close ? (size_t)(close - rest) + 1 : auth_len;
    } else {
        const char *colon = memchr(rest, ':', auth_len);
        host_len = colon ? (size_t)(colon - rest) : auth_len;
    }
    if (!host_allowed_for_http(rest, host_len))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                "AWS_CONTAINER_CREDENTIALS_FULL_URI: http host %.*s is not "
                                "loopback or an ECS/EKS endpoint; use https",
                                (int)(host_len < 64 ? host_len : 64), rest);
    return ASSAY_OK;
}

static int has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

enum assay_err creds_container_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    const struct creds_options *opt = &p->opt;
    enum assay_err err = ASSAY_OK;
    char *url = NULL, *file_token = NULL, *token_path = NULL;
    struct http_request req;
    struct http_response resp;
    int have_http = 0;

    const char *rel = creds_env(opt, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = creds_env(opt, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (!rel && !full)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS,
                                "AWS_CONTAINER_CREDENTIALS_*_URI not set");
    if (!opt->transport)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "no HTTP transport");
    struct buf u = BUF_INIT;
    if (rel) {
        buf_append_str(&u,
                       opt->container_base_url ? opt->container_base_url : "http://169.254.170.2");
        if (rel[0] != '/')
            buf_append_char(&u, '/');
        buf_append_str(&u, rel);
    } else {
        err = check_full_uri(full, errbuf);
        buf_append_str(&u, full);
    }
    url = buf_detach(&u, NULL);
    if (err != ASSAY_OK)
        goto out;

    const char *auth = NULL;
    const char *tf = creds_env(opt, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    if (tf) {
        token_path = creds_expand_home(opt, tf);
        if (!token_path) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "authorization token file path needs HOME, which is unset");
            goto out;
        }
        err = creds_read_token_file(token_path, TOKEN_FILE_MAX_BYTES, &file_token, errbuf);
        if (err != ASSAY_OK)
            goto out;
        auth = file_token;
    } else {
        auth = creds_env(opt, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
        if (auth && has_line_break(auth)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break");
            goto out;
        }
    }

    http_request_init(&req, "GET", url);
    req.direct = 1; /* metadata endpoints are never reached through a proxy */
    http_response_init(&resp);
    have_http = 1;
    http_request_header_set(&req, "Accept", "application/json");
    if (auth)
        http_request_header_set(&req, "Authorization", auth);
    int64_t timeout = opt->http_timeout_ms > 0 ? opt->http_timeout_ms : DEFAULT_HTTP_TIMEOUT_MS;
    err = creds_http_perform(opt, &req, &resp, timeout, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (resp.status != 200) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_HTTP_STATUS,
                               "container endpoint %s answered HTTP %d", url, resp.status);
        goto out;
    }
    err = creds_parse_json(resp.body.data ? resp.body.data : "", resp.body.len, 0, out, errbuf);
    if (err == ASSAY_OK)
        snprintf(out->provider, sizeof out->provider, "container");
out:
    if (have_http) {
        creds_http_request_wipe(&req);
        creds_http_response_wipe(&resp);
    }
    secure_free_str(file_token);
    free(token_path);
    free(url);
    return err;
}

struct creds_provider *creds_container_new(const struct creds_options *opt)
{
    return creds_provider_alloc("container", opt, creds_container_fetch, NULL, NULL);
}

/* ---- IMDS ---- */

static int valid_role_name(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("+=,.@_-", c)) ||
            c == '\0')
            return 0;
    }
    return 1;
}

/*
 * One IMDS call: method on base + path with one header (the token request's
 * TTL, or the session token), never through a proxy. resp is wiped first and
 * filled; the request (holding the token) is wiped before returning.
 */
static enum assay_err imds_call(const struct creds_options *opt, const char *method,
                                const char *base, const char *path, const char *path2,
                                const char *hname, const char *hvalue, int64_t timeout,
                                struct http_response *resp, char *errbuf)
{
    struct buf url = BUF_INIT;
    buf_append_str(&url, base);
    buf_append_str(&url, path);
    buf_append_str(&url, path2);
    struct http_request req;
    http_request_init(&req, method, buf_cstr(&url));
    req.direct = 1; /* metadata endpoints are never reached through a proxy */
    http_request_header_set(&req, hname, hvalue);
    creds_http_response_wipe(resp);
    http_response_init(resp);
    enum assay_err err = creds_http_perform(opt, &req, resp, timeout, errbuf);
    creds_http_request_wipe(&req);
    buf_clear(&url);
    return err;
}

enum assay_err creds_imds_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    const struct creds_options *opt = &p->opt;
    enum assay_err err = ASSAY_OK;
    struct http_response resp;
    char *base = NULL, *token = NULL, *role = NULL;

    if (creds_env_true(opt, "AWS_EC2_METADATA_DISABLED"))
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS,
                                "AWS_EC2_METADATA_DISABLED is true");
    if (!opt->transport)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "no HTTP transport");
    int64_t timeout = opt->imds_timeout_ms > 0 ? opt->imds_timeout_ms : DEFAULT_IMDS_TIMEOUT_MS;

    const char *ep = creds_env(opt, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!ep) {
        const char *mode = creds_env(opt, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
        ep = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                   : "http://169.254.169.254";
    }
    size_t bl = strlen(ep);
    while (bl && ep[bl - 1] == '/')
        bl--;
    base = xstrndup(ep, bl);
    http_response_init(&resp);

    /* 1. A session token (IMDSv2). Unreachable means "not on EC2". */
    err =
        imds_call(opt, "PUT", base, "/latest/api/token", "", "X-aws-ec2-metadata-token-ttl-seconds",
                  IMDS_TOKEN_TTL_S, timeout, &resp, errbuf);
    if (err == ASSAY_ERR_TIMEOUT || err == ASSAY_ERR_TRANSPORT) {
        char detail[ASSAY_ERRBUF_SIZE];
        snprintf(detail, sizeof detail, "%s", errbuf ? errbuf : "");
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS,
                               "instance metadata at %s not reachable (%s)", base,
                               assay_err_name(err));
        LOG_DEBUG("creds.imds_unreachable", LOG_S("detail", detail));
        goto out;
    }
    if (err != ASSAY_OK)
        goto out;
    if (resp.status != 200) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_HTTP_STATUS,
                               "IMDSv2 token request answered HTTP %d", resp.status);
        goto out;
    }
    {
        const char *t = resp.body.data ? resp.body.data : "";
        size_t tl = resp.body.len;
        while (tl && (t[tl - 1] == '\n' || t[tl - 1] == '\r' || t[tl - 1] == ' '))
            tl--;
        if (tl == 0 || memchr(t, '\0', tl) || memchr(t, '\n', tl) || memchr(t, '\r', tl)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "IMDSv2 token answer is malformed");
            goto out;
        }
        token = xstrndup(t, tl);
    }

    /* 2. The role name. */
    err = imds_call(opt, "GET", base, "/latest/meta-data/iam/security-credentials/", "",
                    "X-aws-ec2-metadata-token", token, timeout, &resp, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (resp.status == 404) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS,
                               "no IAM role attached to this instance");
        goto out;
    }
    if (resp.status != 200) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_HTTP_STATUS, "IMDS role listing answered HTTP %d",
                               resp.status);
        goto out;
    }
    {
        const char *r = resp.body.data ? resp.body.data : "";
        size_t rl = strcspn(r, "\r\n");
        if (rl > resp.body.len)
            rl = resp.body.len;
        while (rl && r[rl - 1] == ' ')
            rl--;
        if (!valid_role_name(r, rl)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "IMDS role listing is malformed");
            goto out;
        }
        role = xstrndup(r, rl);
    }

    /* 3. The role's credentials. */
    err = imds_call(opt, "GET", base, "/latest/meta-data/iam/security-credentials/", role,
                    "X-aws-ec2-metadata-token", token, timeout, &resp, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (resp.status != 200) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_HTTP_STATUS,
                               "IMDS credentials for role %s answered HTTP %d", role, resp.status);
        goto out;
    }
    err = creds_parse_json(resp.body.data ? resp.body.data : "", resp.body.len, 1, out, errbuf);
    if (err == ASSAY_OK) {
        snprintf(out->provider, sizeof out->provider, "imds");
        LOG_DEBUG("creds.imds", LOG_S("role", role));
    }
out:
    creds_http_response_wipe(&resp);
    secure_free_str(token);
    free(role);
    free(base);
    return err;
}

struct creds_provider *creds_imds_new(const struct creds_options *opt)
{
    return creds_provider_alloc("imds", opt, creds_imds_fetch, NULL, NULL);
}
