/*
 * aws/creds_sts: the web identity provider (EKS service accounts, IRSA).
 * Reads the token file named by AWS_WEB_IDENTITY_TOKEN_FILE on every fetch
 * (the kubelet rotates it), calls STS AssumeRoleWithWebIdentity (query API,
 * Version 2011-06-15, unsigned POST of a form body) and reads the XML answer
 * with a small extractor that knows just the elements it needs.
 */
#include "aws/credentials.h"
#include "aws/endpoint.h"

#include "aws/creds_private.h"
#include "aws/sigv4.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_FILE_MAX_BYTES (64 * 1024)
#define DEFAULT_HTTP_TIMEOUT_MS 5000

/* ---- the XML extractor ---- */

static int xml_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Position of "</name>" at or after from, or -1. */
static ptrdiff_t find_close(const char *s, size_t n, size_t from, const char *name, size_t nl)
{
    for (size_t i = from; i + 3 + nl <= n; i++) {
        if (s[i] == '<' && s[i + 1] == '/' && memcmp(s + i + 2, name, nl) == 0 &&
            s[i + 2 + nl] == '>')
            return (ptrdiff_t)i;
    }
    return -1;
}

int creds_xml_element(const char *s, size_t n, const char *name, const char **inner,
                      size_t *inner_len)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < n) {
        const char *lt = memchr(s + i, '<', n - i);
        if (!lt)
            return -1;
        size_t at = (size_t)(lt - s);
        i = at + 1;
        if (at + 2 + nl > n || memcmp(lt + 1, name, nl) != 0)
            continue;
        char after = lt[1 + nl];
        if (after != '>' && !xml_ws(after))
            continue;
        const char *gt = memchr(lt + 1 + nl, '>', n - (at + 1 + nl));
        if (!gt)
            return -1;
        if (gt[-1] == '/')
            continue; /* <name/>: no content; look for a full element */
        size_t start = (size_t)(gt - s) + 1;
        ptrdiff_t end = find_close(s, n, start, name, nl);
        if (end < 0)
            return -1;
        *inner = s + start;
        *inner_len = (size_t)end - start;
        return 0;
    }
    return -1;
}

/* Decodes the reference starting at s[0] == '&'; returns its length or 0. */
static size_t decode_ref(const char *s, size_t n, struct buf *b)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        size_t kl = strlen(named[k].name);
        if (n >= 1 + kl && memcmp(s + 1, named[k].name, kl) == 0) {
            buf_append_char(b, named[k].c);
            return 1 + kl;
        }
    }
    if (n < 4 || s[1] != '#')
        return 0;
    size_t i = 2;
    int hex = 0;
    if (s[i] == 'x') {
        hex = 1;
        i++;
    }
    unsigned long cp = 0;
    size_t digits = 0;
    for (; i < n && s[i] != ';'; i++, digits++) {
        char c = s[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (hex && c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (hex && c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return 0;
        if (digits >= 8)
            return 0;
        cp = cp * (hex ? 16 : 10) + (unsigned long)d;
    }
    if (i >= n || digits == 0 || cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    buf_append_utf8(b, cp);
    return i + 1;
}

char *creds_xml_text(const char *s, size_t n)
{
    struct buf b = BUF_INIT;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '<' || c == '\0')
            goto bad;
        if (c == '&') {
            size_t used = decode_ref(s + i, n - i, &b);
            if (!used)
                goto bad;
            i += used;
            continue;
        }
        buf_append_char(&b, c);
        i++;
    }
    /* Trim surrounding whitespace, as pretty-printed answers carry it. */
    size_t a = 0, e = b.len;
    while (a < e && xml_ws(b.data[a]))
        a++;
    while (e > a && xml_ws(b.data[e - 1]))
        e--;
    char *out = xstrndup(b.data ? b.data + a : "", e - a);
    if (b.data)
        secure_zero(b.data, b.len);
    buf_clear(&b);
    return out;
bad:
    if (b.data)
        secure_zero(b.data, b.len);
    buf_clear(&b);
    return NULL;
}

/* The decoded text of <name> inside [s, s+n), or NULL. */
static char *xml_field(const char *s, size_t n, const char *name)
{
    const char *in;
    size_t il;
    if (creds_xml_element(s, n, name, &in, &il) != 0)
        return NULL;
    return creds_xml_text(in, il);
}

/* Keeps server text printable and short before it reaches an error buffer. */
static void printable(char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = ' ';
}

enum assay_err creds_parse_sts(const char *text, size_t len, int status, struct creds *out,
                               char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    char *akid = NULL, *secret = NULL, *token = NULL, *exp = NULL;
    const char *res, *cr;
    size_t res_len, cr_len;

    if (status != 200) {
        const char *e;
        size_t el;
        char *code = NULL, *msg = NULL;
        if (creds_xml_element(text, len, "Error", &e, &el) == 0) {
            code = xml_field(e, el, "Code");
            msg = xml_field(e, el, "Message");
        }
        printable(code);
        printable(msg);
        err = assay_errbuf_set(errbuf, ASSAY_ERR_HTTP_STATUS, "STS answered HTTP %d %.40s: %.150s",
                               status, code ? code : "(no error code)", msg ? msg : "");
        free(code);
        free(msg);
        return err;
    }
    if (creds_xml_element(text, len, "AssumeRoleWithWebIdentityResult", &res, &res_len) != 0 ||
        creds_xml_element(res, res_len, "Credentials", &cr, &cr_len) != 0) {
        return assay_errbuf_set(errbuf, ASSAY_ERR_PARSE,
                                "STS answer has no AssumeRoleWithWebIdentityResult/Credentials");
    }
    akid = xml_field(cr, cr_len, "AccessKeyId");
    secret = xml_field(cr, cr_len, "SecretAccessKey");
    token = xml_field(cr, cr_len, "SessionToken");
    exp = xml_field(cr, cr_len, "Expiration");
    const char *missing = !akid || !akid[0]       ? "AccessKeyId"
                          : !secret || !secret[0] ? "SecretAccessKey"
                          : !token || !token[0]   ? "SessionToken"
                          : !exp                  ? "Expiration"
                                                  : NULL;
    if (missing) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "STS answer lacks Credentials/%s", missing);
        goto out;
    }
    int64_t exp_ms;
    if (clock_parse_iso8601(exp, &exp_ms) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "STS answer: Expiration is not a time");
        goto out;
    }
    creds_set(out, akid, strlen(akid), secret, strlen(secret), token, strlen(token));
    out->expiration_ms = exp_ms;
out:
    secure_free_str(akid);
    secure_free_str(secret);
    secure_free_str(token);
    free(exp);
    return err;
}

/* ---- the provider ---- */

/* The STS endpoint: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, else regional. */
static char *sts_endpoint(const struct creds_options *opt)
{
    const char *e = creds_env(opt, "AWS_ENDPOINT_URL_STS");
    if (!e)
        e = creds_env(opt, "AWS_ENDPOINT_URL");
    struct buf b = BUF_INIT;
    if (e) {
        buf_append_str(&b, e);
    } else {
        char *region = NULL;
        if (creds_region_resolve(opt, &region, NULL) == ASSAY_OK)
            endpoint_regional_append("sts", region, &b);
        else
            buf_append_str(&b, "https://sts.amazonaws.com");
        free(region);
    }
    if (b.len == 0 || b.data[b.len - 1] != '/')
        buf_append_char(&b, '/');
    return buf_detach(&b, NULL);
}

enum assay_err creds_web_identity_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    const struct creds_options *opt = &p->opt;
    enum assay_err err = ASSAY_OK;
    char *token = NULL, *url = NULL, *token_path = NULL;
    char session[64];
    struct http_request req;
    struct http_response resp;
    int have_http = 0;

    const char *file = creds_env(opt, "AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *role = creds_env(opt, "AWS_ROLE_ARN");
    if (!file || !role)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "%s not set",
                                !file ? "AWS_WEB_IDENTITY_TOKEN_FILE" : "AWS_ROLE_ARN");
    if (!opt->transport)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "no HTTP transport");
    const char *name = creds_env(opt, "AWS_ROLE_SESSION_NAME");
    if (!name) {
        snprintf(session, sizeof session, "assay-%lld", (long long)clock_now_ms(opt->clock));
        name = session;
    }
    token_path = creds_expand_home(opt, file);
    if (!token_path)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS,
                                "token file path needs HOME, which is unset");
    err = creds_read_token_file(token_path, TOKEN_FILE_MAX_BYTES, &token, errbuf);
    if (err != ASSAY_OK)
        goto out;

    url = sts_endpoint(opt);
    http_request_init(&req, "POST", url);
    http_response_init(&resp);
    have_http = 1;
    http_request_header_set(&req, "Content-Type",
                            "application/x-www-form-urlencoded; charset=utf-8");
    http_request_header_set(&req, "Accept", "text/xml");
    sigv4_form_param_append(&req.body, "Action", "AssumeRoleWithWebIdentity");
    sigv4_form_param_append(&req.body, "Version", "2011-06-15");
    sigv4_form_param_append(&req.body, "RoleArn", role);
    sigv4_form_param_append(&req.body, "RoleSessionName", name);
    sigv4_form_param_append(&req.body, "WebIdentityToken", token);

    int64_t timeout = opt->http_timeout_ms > 0 ? opt->http_timeout_ms : DEFAULT_HTTP_TIMEOUT_MS;
    err = creds_http_perform(opt, &req, &resp, timeout, errbuf);
    if (err != ASSAY_OK)
        goto out;
    err = creds_parse_sts(resp.body.data ? resp.body.data : "", resp.body.len, resp.status, out,
                          errbuf);
    if (err == ASSAY_OK) {
        snprintf(out->provider, sizeof out->provider, "web_identity");
        LOG_DEBUG("creds.web_identity", LOG_S("role_arn", role), LOG_S("session", name));
    }
out:
    if (have_http) {
        creds_http_request_wipe(&req);
        creds_http_response_wipe(&resp);
    }
    secure_free_str(token);
    free(token_path);
    free(url);
    return err;
}

struct creds_provider *creds_web_identity_new(const struct creds_options *opt)
{
    return creds_provider_alloc("web_identity", opt, creds_web_identity_fetch, NULL, NULL);
}
