/*
 * aws/credentials: struct creds, the provider object with its cache and
 * single-flight refresh, the default chain, and the env and static
 * providers. The profile, web identity, container and IMDS providers live in
 * creds_profile.c, creds_sts.c and creds_http.c. Called by the AWS service
 * clients before signing; see credentials.h for the contract.
 */
#include "aws/credentials.h"

#include "aws/creds_private.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DEFAULT_REFRESH_MARGIN_MS (5 * 60 * 1000)
#define DEFAULT_REFRESH_RETRY_MS (10 * 1000)

/* ---- struct creds ---- */

void creds_init(struct creds *c)
{
    memset(c, 0, sizeof *c);
}

void creds_clear(struct creds *c)
{
    if (!c)
        return;
    secure_free_str(c->access_key_id);
    secure_free_str(c->secret_access_key);
    secure_free_str(c->session_token);
    secure_zero(c, sizeof *c);
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void creds_copy(struct creds *dst, const struct creds *src)
{
    if (dst == src)
        return;
    creds_clear(dst);
    dst->access_key_id = dup_or_null(src->access_key_id);
    dst->secret_access_key = dup_or_null(src->secret_access_key);
    dst->session_token = dup_or_null(src->session_token);
    dst->expiration_ms = src->expiration_ms;
    memcpy(dst->provider, src->provider, sizeof dst->provider);
}

int creds_is_set(const struct creds *c)
{
    return c && c->access_key_id && c->access_key_id[0] && c->secret_access_key &&
           c->secret_access_key[0];
}

static char *dup_view(const char *s, size_t n)
{
    if (!s || n == 0)
        return NULL;
    return xstrndup(s, n);
}

void creds_set(struct creds *c, const char *akid, size_t akid_len, const char *secret,
               size_t secret_len, const char *token, size_t token_len)
{
    secure_free_str(c->access_key_id);
    secure_free_str(c->secret_access_key);
    secure_free_str(c->session_token);
    c->access_key_id = dup_view(akid, akid_len);
    c->secret_access_key = dup_view(secret, secret_len);
    c->session_token = dup_view(token, token_len);
}

static void set_provider_name(struct creds *c, const char *name)
{
    snprintf(c->provider, sizeof c->provider, "%s", name);
}

/* ---- environment and file helpers ---- */

static const char *process_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

const char *creds_env(const struct creds_options *opt, const char *name)
{
    const char *v = opt->getenv ? opt->getenv(opt->getenv_ctx, name) : process_getenv(NULL, name);
    return v && v[0] ? v : NULL;
}

int creds_env_true(const struct creds_options *opt, const char *name)
{
    const char *v = creds_env(opt, name);
    return v && strcasecmp(v, "true") == 0;
}

char *creds_expand_home(const struct creds_options *opt, const char *path)
{
    if (path[0] != '~')
        return xstrdup(path);
    if (path[1] != '/' && path[1] != '\0')
        return xstrdup(path); /* ~user is not expanded */
    const char *home = creds_env(opt, "HOME");
    if (!home)
        return NULL;
    struct buf b = BUF_INIT;
    buf_append_str(&b, home);
    buf_append_str(&b, path + 1);
    return buf_detach(&b, NULL);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

enum assay_err creds_read_token_file(const char *path, size_t max, char **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT || errno == ENOTDIR)
            return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "token file %s does not exist",
                                    path);
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "token file %s: %s", path, strerror(errno));
    }
    data = xmalloc(max + 1);
    len = fread(data, 1, max + 1, fp);
    if (ferror(fp)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "token file %s: read error", path);
        goto out;
    }
    if (len > max) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "token file %s: larger than %zu bytes",
                               path, max);
        goto out;
    }
    size_t a = 0, b = len;
    while (a < b && is_space(data[a]))
        a++;
    while (b > a && is_space(data[b - 1]))
        b--;
    if (a == b) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "token file %s is empty", path);
        goto out;
    }
    for (size_t i = a; i < b; i++) {
        if (data[i] == '\0' || data[i] == '\r' || data[i] == '\n') {
            err =
                assay_errbuf_set(errbuf, ASSAY_ERR_PARSE,
                                 "token file %s holds a line break or NUL inside the token", path);
            goto out;
        }
    }
    *out = xstrndup(data + a, b - a);
out:
    secure_zero(data, len);
    free(data);
    fclose(fp);
    return err;
}

/* ---- the provider object: cache and single flight ---- */

struct creds_provider *creds_provider_alloc(const char *name, const struct creds_options *opt,
                                            creds_fetch_fn fetch, void (*destroy)(void *impl),
                                            void *impl)
{
    struct creds_provider *p = xcalloc(1, sizeof *p);
    p->name = name;
    p->fetch = fetch;
    p->destroy = destroy;
    p->impl = impl;
    if (opt)
        p->opt = *opt;
    if (p->opt.profile)
        p->opt.profile = p->profile_copy = xstrdup(p->opt.profile);
    if (p->opt.container_base_url)
        p->opt.container_base_url = p->container_base_copy = xstrdup(p->opt.container_base_url);
    if (p->opt.refresh_margin_ms <= 0)
        p->opt.refresh_margin_ms = DEFAULT_REFRESH_MARGIN_MS;
    if (p->opt.refresh_retry_ms <= 0)
        p->opt.refresh_retry_ms = DEFAULT_REFRESH_RETRY_MS;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    creds_init(&p->cached);
    atomic_init(&p->fetches, 0);
    return p;
}

void creds_provider_free(struct creds_provider *p)
{
    if (!p)
        return;
    if (p->destroy)
        p->destroy(p->impl);
    creds_clear(&p->cached);
    secure_zero(p->last_errbuf, sizeof p->last_errbuf);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->profile_copy);
    free(p->container_base_copy);
    free(p);
}

const char *creds_provider_name(const struct creds_provider *p)
{
    return p->name;
}

uint64_t creds_provider_fetches(const struct creds_provider *p)
{
    return atomic_load(&((struct creds_provider *)p)->fetches);
}

static int still_valid(const struct creds *c, int64_t now_ms)
{
    return creds_is_set(c) && (c->expiration_ms == 0 || now_ms < c->expiration_ms);
}

static void copy_err(char *errbuf, const char *from)
{
    if (errbuf)
        snprintf(errbuf, ASSAY_ERRBUF_SIZE, "%s", from);
}

/*
 * Called with mu held once a fetch has ended: installs fresh credentials, or
 * decides between keeping the old ones and failing. Returns what the caller
 * (and every waiter of this flight) gets; the detail goes to p->last_errbuf.
 */
static enum assay_err settle(struct creds_provider *p, enum assay_err err, struct creds *fresh,
                             const char *fetch_eb, int64_t now)
{
    char when[25];
    if (err == ASSAY_OK && fresh->expiration_ms && fresh->expiration_ms <= now) {
        clock_format_iso8601_ms(fresh->expiration_ms, when);
        err = assay_errbuf_set(p->last_errbuf, ASSAY_ERR_CREDENTIALS_EXPIRED,
                               "%s returned credentials that expired at %s", fresh->provider, when);
        fetch_eb = p->last_errbuf;
    }
    if (err == ASSAY_OK) {
        creds_clear(&p->cached);
        p->cached = *fresh;
        creds_init(fresh);
        int64_t exp = p->cached.expiration_ms;
        if (exp) {
            int64_t at = exp - p->opt.refresh_margin_ms;
            int64_t floor_ms = now + p->opt.refresh_retry_ms;
            /* Credentials that arrive already inside the margin are not
             * fetched again on every call, only once per retry interval. */
            p->next_refresh_ms = at > floor_ms ? at : (floor_ms < exp ? floor_ms : exp);
            clock_format_iso8601_ms(exp, when);
        } else {
            p->next_refresh_ms = INT64_MAX;
        }
        LOG_INFO("creds.resolved", LOG_S("provider", p->cached.provider), LOG_S("via", p->name),
                 LOG_S("expires", exp ? when : NULL));
        p->last_errbuf[0] = '\0';
        return ASSAY_OK;
    }
    if (fetch_eb != p->last_errbuf)
        copy_err(p->last_errbuf, fetch_eb);
    if (still_valid(&p->cached, now)) {
        int64_t exp = p->cached.expiration_ms;
        int64_t retry_at = now + p->opt.refresh_retry_ms;
        p->next_refresh_ms = exp && retry_at > exp ? exp : retry_at;
        clock_format_iso8601_ms(exp, when);
        LOG_WARN("creds.refresh_failed", LOG_S("provider", p->cached.provider),
                 LOG_S("via", p->name), LOG_S("error", assay_err_name(err)),
                 LOG_S("detail", p->last_errbuf), LOG_B("kept_old", 1), LOG_S("valid_until", when));
        return ASSAY_OK;
    }
    if (creds_is_set(&p->cached)) {
        char detail[ASSAY_ERRBUF_SIZE];
        copy_err(detail, p->last_errbuf);
        clock_format_iso8601_ms(p->cached.expiration_ms, when);
        LOG_ERROR("creds.refresh_failed", LOG_S("provider", p->cached.provider),
                  LOG_S("via", p->name), LOG_S("error", assay_err_name(err)),
                  LOG_S("detail", detail), LOG_B("kept_old", 0), LOG_S("expired", when));
        err = assay_errbuf_set(p->last_errbuf, ASSAY_ERR_CREDENTIALS_EXPIRED,
                               "credentials from %s expired at %s and refresh failed: %s",
                               p->cached.provider, when, detail);
        creds_clear(&p->cached);
    }
    return err;
}

enum assay_err creds_provider_get(struct creds_provider *p, struct creds *out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct creds fresh;
    char eb[ASSAY_ERRBUF_SIZE] = "";
    creds_init(&fresh);
    creds_clear(out);

    pthread_mutex_lock(&p->mu);
    int64_t now = clock_now_ms(p->opt.clock);
    if (creds_is_set(&p->cached) && now < p->next_refresh_ms && still_valid(&p->cached, now)) {
        creds_copy(out, &p->cached);
        goto out_locked;
    }
    if (p->refreshing && still_valid(&p->cached, now)) {
        /* A refresh inside the margin is under way: the old credentials are
         * still good, so this caller need not wait for it. */
        creds_copy(out, &p->cached);
        goto out_locked;
    }
    if (p->refreshing) {
        /* Single flight: wait for the fetch in progress and share its result. */
        uint64_t seen = p->flights_done;
        while (p->refreshing && p->flights_done == seen)
            pthread_cond_wait(&p->cv, &p->mu);
        err = p->last_err;
        if (err == ASSAY_OK && creds_is_set(&p->cached))
            creds_copy(out, &p->cached);
        else if (err == ASSAY_OK)
            err = assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "%s found no credentials",
                                   p->name);
        else
            copy_err(errbuf, p->last_errbuf);
        goto out_locked;
    }
    p->refreshing = 1;
    pthread_mutex_unlock(&p->mu);

    atomic_fetch_add(&p->fetches, 1);
    err = p->fetch(p, &fresh, eb);
    if (err == ASSAY_OK && !creds_is_set(&fresh))
        err = assay_errbuf_set(eb, ASSAY_ERR_NO_CREDENTIALS, "%s returned incomplete credentials",
                               p->name);
    if (err == ASSAY_OK && !fresh.provider[0])
        set_provider_name(&fresh, p->name);

    pthread_mutex_lock(&p->mu);
    now = clock_now_ms(p->opt.clock);
    err = settle(p, err, &fresh, eb, now);
    if (err == ASSAY_OK)
        creds_copy(out, &p->cached);
    else
        copy_err(errbuf, p->last_errbuf);
    p->last_err = err;
    p->refreshing = 0;
    p->flights_done++;
    pthread_cond_broadcast(&p->cv);
out_locked:
    pthread_mutex_unlock(&p->mu);
    creds_clear(&fresh);
    secure_zero(eb, sizeof eb);
    return err;
}

/* ---- static ---- */

static enum assay_err static_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    const struct creds *c = p->impl;
    if (!creds_is_set(c))
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "static: no keys given");
    creds_copy(out, c);
    if (!out->provider[0])
        set_provider_name(out, "static");
    return ASSAY_OK;
}

static void static_destroy(void *impl)
{
    creds_clear(impl);
    free(impl);
}

struct creds_provider *creds_static_new(const struct creds *c)
{
    struct creds *copy = xcalloc(1, sizeof *copy);
    creds_init(copy);
    if (c)
        creds_copy(copy, c);
    return creds_provider_alloc("static", NULL, static_fetch, static_destroy, copy);
}

/* ---- env ---- */

enum assay_err creds_env_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    const char *akid = creds_env(&p->opt, "AWS_ACCESS_KEY_ID");
    const char *secret = creds_env(&p->opt, "AWS_SECRET_ACCESS_KEY");
    const char *token = creds_env(&p->opt, "AWS_SESSION_TOKEN");
    if (!akid && !secret)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "AWS_ACCESS_KEY_ID not set");
    if (!akid || !secret)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "%s set without %s",
                                akid ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                                akid ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    creds_set(out, akid, strlen(akid), secret, strlen(secret), token, token ? strlen(token) : 0);
    out->expiration_ms = 0;
    set_provider_name(out, "env");
    return ASSAY_OK;
}

struct creds_provider *creds_env_new(const struct creds_options *opt)
{
    return creds_provider_alloc("env", opt, creds_env_fetch, NULL, NULL);
}

/* ---- the default chain ---- */

static const struct {
    const char *name;
    creds_fetch_fn fetch;
} chain_steps[] = {
    {"env", creds_env_fetch},         {"web_identity", creds_web_identity_fetch},
    {"profile", creds_profile_fetch}, {"container", creds_container_fetch},
    {"imds", creds_imds_fetch},
};

#define CHAIN_STEPS (sizeof chain_steps / sizeof chain_steps[0])

/*
 * Writes "no AWS credentials found (env: why; web_identity: why; ...)" into
 * errbuf, shortening the longest reasons first so that every provider is
 * named even when the reasons together would not fit.
 */
static void chain_summary(char *errbuf, char reasons[][ASSAY_ERRBUF_SIZE])
{
    static const char head[] = "no AWS credentials found (";
    size_t fixed = sizeof head - 1 + 2; /* head, ")" and NUL */
    size_t len[CHAIN_STEPS], total = 0;
    for (size_t i = 0; i < CHAIN_STEPS; i++) {
        fixed += strlen(chain_steps[i].name) + 2 + (i ? 2 : 0);
        len[i] = strlen(reasons[i]);
        total += len[i];
    }
    size_t room = ASSAY_ERRBUF_SIZE > fixed ? ASSAY_ERRBUF_SIZE - fixed : 0;
    /* Water-filling: lower a common cap until the reasons fit. */
    size_t cap = ASSAY_ERRBUF_SIZE;
    while (total > room && cap > 0) {
        cap--;
        total = 0;
        for (size_t i = 0; i < CHAIN_STEPS; i++)
            total += len[i] < cap ? len[i] : cap;
    }
    struct buf b = BUF_INIT;
    buf_append_str(&b, head);
    for (size_t i = 0; i < CHAIN_STEPS; i++)
        buf_appendf(&b, "%s%s: %.*s", i ? "; " : "", chain_steps[i].name,
                    (int)(len[i] < cap ? len[i] : cap), reasons[i]);
    buf_append_char(&b, ')');
    assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS, "%s", buf_cstr(&b));
    buf_clear(&b);
}

static enum assay_err chain_fetch(struct creds_provider *p, struct creds *out, char *errbuf)
{
    char reasons[CHAIN_STEPS][ASSAY_ERRBUF_SIZE];
    for (size_t i = 0; i < CHAIN_STEPS; i++) {
        reasons[i][0] = '\0';
        creds_clear(out);
        enum assay_err e = chain_steps[i].fetch(p, out, reasons[i]);
        if (e == ASSAY_OK && creds_is_set(out)) {
            if (!out->provider[0])
                set_provider_name(out, chain_steps[i].name);
            return ASSAY_OK;
        }
        creds_clear(out);
        if (e == ASSAY_ERR_NO_CREDENTIALS)
            LOG_DEBUG("creds.provider_skipped", LOG_S("provider", chain_steps[i].name),
                      LOG_S("reason", reasons[i]));
        else
            LOG_WARN("creds.provider_failed", LOG_S("provider", chain_steps[i].name),
                     LOG_S("error", assay_err_name(e)), LOG_S("detail", reasons[i]));
    }
    chain_summary(errbuf, reasons);
    return ASSAY_ERR_NO_CREDENTIALS;
}

struct creds_provider *creds_chain_new(const struct creds_options *opt)
{
    return creds_provider_alloc("chain", opt, chain_fetch, NULL, NULL);
}
