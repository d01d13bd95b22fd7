/*
 * monitor/notify: alarm notifications to webhooks and SNS. A mutex-guarded
 * list of deliveries (one per event and channel) is driven by one thread
 * that submits each due attempt to the shared transport without waiting;
 * completions, on the transport thread, either finish a delivery or give it
 * a time for the next attempt and wake the thread. See monitor/notify.h for
 * the contracts and monitor/README.md ("Notifications") for the payload.
 */
#include "monitor/notify.h"

#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aws/cloudwatch.h"
#include "aws/http.h"
#include "aws/retry.h"
#include "aws/sns.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/rng.h"

#define PAYLOAD_VERSION 1
#define USER_AGENT "assay-notify/1"
#define SNS_CHANNEL (-1)
#define MAX_RETRY_AFTER_S 3600

/* ---------------------------------------------------------------- config -- */

void notify_config_init(struct notify_config *c)
{
    memset(c, 0, sizeof *c);
    c->max_attempts = 6;
    c->base_ms = 500;
    c->max_backoff_ms = 60000;
    c->timeout_ms = 5000;
    c->max_queue = 1000;
    c->flush_timeout_ms = 5000;
}

static void webhook_clear(struct notify_webhook_config *w)
{
    free(w->url);
    free(w->secret_header);
    free(w->secret_env);
    secure_free_str(w->secret);
    memset(w, 0, sizeof *w);
}

void notify_config_clear(struct notify_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_webhooks; i++)
        webhook_clear(&c->webhooks[i]);
    free(c->webhooks);
    free(c->sns_topic_arn);
    notify_config_init(c);
}

static void config_copy(struct notify_config *dst, const struct notify_config *src)
{
    *dst = *src;
    dst->webhooks = src->n_webhooks ? xcalloc(src->n_webhooks, sizeof *dst->webhooks) : NULL;
    for (size_t i = 0; i < src->n_webhooks; i++) {
        const struct notify_webhook_config *s = &src->webhooks[i];
        struct notify_webhook_config *d = &dst->webhooks[i];
        *d = *s;
        d->url = s->url ? xstrdup(s->url) : NULL;
        d->secret_header = s->secret_header ? xstrdup(s->secret_header) : NULL;
        d->secret_env = s->secret_env ? xstrdup(s->secret_env) : NULL;
        d->secret = s->secret ? xstrdup(s->secret) : NULL;
    }
    dst->sns_topic_arn = src->sns_topic_arn ? xstrdup(src->sns_topic_arn) : NULL;
}

#define PREFIX "monitor.notify."

static int tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* An HTTP header name (RFC 9110 token) that assay does not set itself. */
static int header_name_ok(const char *s)
{
    static const char *const reserved[] = {
        "host",          "content-type",     "content-length",    "user-agent",
        "x-assay-event", "x-assay-delivery", "transfer-encoding", "connection",
        "expect"};
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (!tchar(*p))
            return 0;
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(s, reserved[i]) == 0)
            return 0;
    return 1;
}

static int env_name_ok(const char *s)
{
    if (!s[0] || strlen(s) > 128 || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

static int url_ok(const char *s)
{
    size_t n = strlen(s);
    if (n > NOTIFY_MAX_URL_LEN)
        return 0;
    size_t scheme = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    if (!scheme || n == scheme || s[scheme] == '/')
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

static enum assay_err bad(char *errbuf, const char *path, const char *what)
{
    return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, PREFIX "%s: %s", path, what);
}

static enum assay_err get_int(const json_t *obj, const char *key, const char *path, int64_t lo,
                              int64_t hi, int64_t *out, char *errbuf)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return ASSAY_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                PREFIX "%s: must be an integer from %lld to %lld", path,
                                (long long)lo, (long long)hi);
    *out = (int64_t)json_integer_value(v);
    return ASSAY_OK;
}

static enum assay_err get_str(const json_t *obj, const char *key, const char *path,
                              const char **out, char *errbuf)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return ASSAY_OK;
    if (!json_is_string(v))
        return bad(errbuf, path, "must be a string");
    *out = json_string_value(v);
    return ASSAY_OK;
}

static enum assay_err unknown_keys(const json_t *obj, const char *const *known, const char *where,
                                   char *errbuf)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int found = 0;
        for (size_t i = 0; known[i]; i++)
            found |= strcmp(key, known[i]) == 0;
        if (!found)
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, PREFIX "%s%s: unknown key", where,
                                    key);
    }
    return ASSAY_OK;
}

static enum assay_err webhook_parse(const json_t *o, size_t i, notify_getenv_fn getenv_fn,
                                    void *env_ctx, struct notify_webhook_config *w, char *errbuf)
{
    static const char *const known[] = {"url",        "auth",       "secret_header",
                                        "secret_env", "timeout_ms", NULL};
    char where[48], path[96];
    snprintf(where, sizeof where, "webhooks[%zu].", i);
    if (!json_is_object(o)) {
        snprintf(path, sizeof path, "webhooks[%zu]", i);
        return bad(errbuf, path, "must be an object");
    }
    if (json_object_get(o, "secret") || json_object_get(o, "token"))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                PREFIX "webhooks[%zu]: secrets are not read from the file; put "
                                       "the secret in an environment variable and name it in "
                                       "secret_env",
                                i);
    enum assay_err err = unknown_keys(o, known, where, errbuf);
    if (err)
        return err;
    const char *url, *auth, *header, *env;
    snprintf(path, sizeof path, "webhooks[%zu].url", i);
    if ((err = get_str(o, "url", path, &url, errbuf)))
        return err;
    if (!url || !url_ok(url))
        return bad(errbuf, path, "required: an absolute http:// or https:// URL without spaces");
    w->url = xstrdup(url);
    snprintf(path, sizeof path, "webhooks[%zu].secret_env", i);
    if ((err = get_str(o, "secret_env", path, &env, errbuf)))
        return err;
    snprintf(path, sizeof path, "webhooks[%zu].auth", i);
    if ((err = get_str(o, "auth", path, &auth, errbuf)))
        return err;
    if (!auth)
        w->auth = env ? NOTIFY_AUTH_TOKEN : NOTIFY_AUTH_NONE;
    else if (strcmp(auth, "none") == 0)
        w->auth = NOTIFY_AUTH_NONE;
    else if (strcmp(auth, "token") == 0)
        w->auth = NOTIFY_AUTH_TOKEN;
    else if (strcmp(auth, "hmac") == 0)
        w->auth = NOTIFY_AUTH_HMAC;
    else
        return bad(errbuf, path, "must be \"token\", \"hmac\" or \"none\"");
    snprintf(path, sizeof path, "webhooks[%zu].secret_env", i);
    if (w->auth != NOTIFY_AUTH_NONE) {
        if (!env || !env_name_ok(env))
            return bad(errbuf, path,
                       "required with auth \"token\" or \"hmac\": the name of the environment "
                       "variable that holds the secret");
        const char *value = getenv_fn ? getenv_fn(env_ctx, env) : getenv(env);
        if (!value || !value[0])
            return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                    PREFIX "%s: the environment variable %s is not set", path, env);
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                        PREFIX "%s: the value of %s has control characters", path,
                                        env);
        w->secret_env = xstrdup(env);
        w->secret = xstrdup(value);
    } else if (env) {
        return bad(errbuf, path, "given with auth \"none\"");
    }
    snprintf(path, sizeof path, "webhooks[%zu].secret_header", i);
    if ((err = get_str(o, "secret_header", path, &header, errbuf)))
        return err;
    if (header && w->auth == NOTIFY_AUTH_NONE)
        return bad(errbuf, path, "given without a secret (secret_env)");
    if (header && !header_name_ok(header))
        return bad(errbuf, path,
                   "must be an HTTP header name (letters, digits, '-', ...; at most 64) that "
                   "assay does not set itself");
    if (w->auth != NOTIFY_AUTH_NONE)
        w->secret_header = xstrdup(header                         ? header
                                   : w->auth == NOTIFY_AUTH_TOKEN ? "X-Assay-Token"
                                                                  : "X-Assay-Signature");
    snprintf(path, sizeof path, "webhooks[%zu].timeout_ms", i);
    return get_int(o, "timeout_ms", path, 1, 600000, &w->timeout_ms, errbuf);
}

enum assay_err notify_config_from_json(struct notify_config *c, const json_t *obj,
                                       notify_getenv_fn getenv_fn, void *env_ctx, char *errbuf)
{
    static const char *const known[] = {"webhooks",  "sns_topic_arn",    "max_attempts",
                                        "base_ms",   "max_backoff_ms",   "timeout_ms",
                                        "max_queue", "flush_timeout_ms", NULL};
    enum assay_err err = ASSAY_OK;
    if (!obj)
        goto out;
    if (!json_is_object(obj)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "monitor.notify: must be an object");
        goto out;
    }
    if ((err = unknown_keys(obj, known, "", errbuf)))
        goto out;
    int64_t v = c->max_attempts;
    if ((err = get_int(obj, "max_attempts", "max_attempts", 1, 20, &v, errbuf)))
        goto out;
    c->max_attempts = (int)v;
    if ((err = get_int(obj, "base_ms", "base_ms", 1, 3600000, &c->base_ms, errbuf)) ||
        (err = get_int(obj, "max_backoff_ms", "max_backoff_ms", 1, 3600000, &c->max_backoff_ms,
                       errbuf)) ||
        (err = get_int(obj, "timeout_ms", "timeout_ms", 1, 600000, &c->timeout_ms, errbuf)) ||
        (err = get_int(obj, "flush_timeout_ms", "flush_timeout_ms", 0, 3600000,
                       &c->flush_timeout_ms, errbuf)))
        goto out;
    v = (int64_t)c->max_queue;
    if ((err = get_int(obj, "max_queue", "max_queue", 1, 1000000, &v, errbuf)))
        goto out;
    c->max_queue = (size_t)v;
    if (c->max_backoff_ms < c->base_ms) {
        err = bad(errbuf, "max_backoff_ms", "must be at least base_ms");
        goto out;
    }
    const char *arn;
    if ((err = get_str(obj, "sns_topic_arn", "sns_topic_arn", &arn, errbuf)))
        goto out;
    if (arn) {
        struct sns_publish_input probe = {.topic_arn = arn, .message = "x"};
        if (sns_publish_validate(&probe, NULL) != ASSAY_OK) {
            err = bad(errbuf, "sns_topic_arn", "must be an SNS topic ARN (\"arn:aws:sns:...\")");
            goto out;
        }
        c->sns_topic_arn = xstrdup(arn);
    }
    const json_t *hooks = json_object_get(obj, "webhooks");
    if (hooks) {
        if (!json_is_array(hooks) || json_array_size(hooks) > NOTIFY_MAX_WEBHOOKS) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   PREFIX "webhooks: must be an array of at most %d objects",
                                   NOTIFY_MAX_WEBHOOKS);
            goto out;
        }
        size_t n = json_array_size(hooks);
        c->webhooks = n ? xcalloc(n, sizeof *c->webhooks) : NULL;
        for (size_t i = 0; i < n; i++) {
            c->n_webhooks = i + 1;
            err = webhook_parse(json_array_get(hooks, i), i, getenv_fn, env_ctx, &c->webhooks[i],
                                errbuf);
            if (err)
                goto out;
        }
    }
out:
    if (err != ASSAY_OK)
        notify_config_clear(c);
    return err;
}

/* --------------------------------------------------------------- payload -- */

static json_t *real_or_null(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static const char *event_type(const struct detector_event *ev)
{
    return ev->state == DETECTOR_ALARM ? "alarm.raised" : "alarm.cleared";
}

/* 32 hex digits of SHA-256 over the event's identity. */
static void event_id(const struct notify_series *s, int64_t time_ms,
                     const struct detector_event *ev, char out[33])
{
    struct buf b = BUF_INIT;
    buf_appendf(&b, "%s%c%s%c%s%c%s%c%llu%c%lld", s->app, 0, s->rubric, 0,
                s->model_id ? s->model_id : "", 0, detector_state_name(ev->state), 0,
                (unsigned long long)ev->index, 0, (long long)time_ms);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_Digest(b.data, b.len, md, &md_len, EVP_sha256(), NULL);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[32] = '\0';
    buf_clear(&b);
}

json_t *notify_payload_json(const struct notify_series *s, int64_t time_ms,
                            const struct detector_event *ev)
{
    char id[33], when[25];
    event_id(s, time_ms, ev, id);
    clock_format_iso8601_ms(time_ms, when);
    json_t *series = json_object();
    json_object_set_new(series, "app", json_string(s->app));
    json_object_set_new(series, "rubric", json_string(s->rubric));
    json_object_set_new(series, "model_id",
                        s->model_id && s->model_id[0] ? json_string(s->model_id) : json_null());
    json_t *o = json_object();
    json_object_set_new(o, "version", json_integer(PAYLOAD_VERSION));
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "type", json_string(event_type(ev)));
    json_object_set_new(o, "state", json_string(detector_state_name(ev->state)));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "series", series);
    json_object_set_new(o, "index", json_integer((json_int_t)ev->index));
    json_object_set_new(o, "change_point", json_integer((json_int_t)ev->change_point));
    json_object_set_new(o, "baseline_mean", real_or_null(ev->baseline_mean));
    json_object_set_new(o, "current_mean", real_or_null(ev->current_mean));
    json_object_set_new(o, "effect_size", real_or_null(ev->effect_size));
    json_object_set_new(o, "p_value", real_or_null(ev->p_value));
    json_object_set_new(o, "statistic", real_or_null(ev->statistic));
    json_object_set_new(o, "threshold", real_or_null(ev->threshold));
    return o;
}

void notify_subject_format(const struct notify_series *s, const struct detector_event *ev,
                           char *out, size_t out_size)
{
    if (out_size == 0)
        return;
    int alarm = ev->state == DETECTOR_ALARM;
    int has_model = s->model_id && s->model_id[0];
    size_t cap = out_size - 1 < SNS_MAX_SUBJECT_LEN ? out_size - 1 : SNS_MAX_SUBJECT_LEN;
    char tmp[SNS_MAX_SUBJECT_LEN * 4];
    snprintf(tmp, sizeof tmp, "assay %s: quality %s in %s/%s%s%s", alarm ? "ALARM" : "OK",
             alarm ? "drop" : "recovered", s->app ? s->app : "", s->rubric ? s->rubric : "",
             has_model ? "/" : "", has_model ? s->model_id : "");
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)tmp; *p && n < cap; p++)
        out[n++] = *p >= 0x20 && *p <= 0x7e ? (char)*p : '?';
    out[n] = '\0';
}

/* -------------------------------------------------------------- notifier -- */

struct delivery {
    struct delivery *next;
    struct notify *n;
    int channel; /* webhook index, or SNS_CHANNEL */
    char id[33];
    const char *type; /* static */
    char *body;
    size_t body_len;
    char subject[SNS_MAX_SUBJECT_LEN + 1];
    int attempts;
    int in_flight;
    int64_t next_at_ms; /* monotonic */
    int64_t timeout_ms; /* of the current attempt */
    int64_t started_ms; /* monotonic, of the current attempt */
    struct http_request req;
    struct http_response resp;
};

struct notify {
    struct notify_config cfg;
    struct http_transport *transport;
    struct sns *sns;
    const struct clock *clock;
    struct retry_policy policy;
    char **targets; /* per webhook: scheme://host, for logs */

    pthread_mutex_t lock;
    pthread_cond_t wake; /* the thread: work, stop */
    pthread_cond_t idle; /* notify_flush: the list emptied */
    pthread_t thread;
    struct delivery *head;
    size_t pending;
    int stopping;
    int64_t deadline_ms; /* monotonic, set when stopping */
    struct rng rng;
    struct notify_stats stats;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "https://host[:port]" of a URL, never its userinfo, path or query (which may hold a secret). */
static char *url_target(const char *url)
{
    const char *sep = strstr(url, "://");
    size_t scheme = sep ? (size_t)(sep + 3 - url) : 0;
    const char *host = url + scheme;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    struct buf b = BUF_INIT;
    buf_append(&b, url, scheme);
    buf_append(&b, host, n);
    return buf_detach(&b, NULL);
}

static const char *channel_name(const struct delivery *d)
{
    return d->channel == SNS_CHANNEL ? "sns" : "webhook";
}

static const char *channel_target(const struct delivery *d)
{
    return d->channel == SNS_CHANNEL ? d->n->cfg.sns_topic_arn : d->n->targets[d->channel];
}

/* Clears d's request, wiping header values first (one of them is a secret). */
static void request_wipe(struct http_request *req)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (req->headers[i].value)
            secure_zero(req->headers[i].value, strlen(req->headers[i].value));
    http_request_clear(req);
}

/* Unlinks and frees d; the lock is held. */
static void delivery_finish(struct delivery *d)
{
    struct notify *n = d->n;
    for (struct delivery **pp = &n->head; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    n->pending--;
    request_wipe(&d->req);
    http_response_clear(&d->resp);
    free(d->body);
    free(d);
    if (n->pending == 0)
        pthread_cond_broadcast(&n->idle);
    pthread_cond_signal(&n->wake);
}

struct outcome {
    enum assay_err err; /* transport or client error; ASSAY_OK when an answer arrived */
    int status;         /* HTTP status, 0 when none */
    const char *code;   /* AWS error code, or "" */
    enum retry_class cls;
    int64_t retry_after_ms; /* from Retry-After, 0 when none */
    const char *detail;     /* errbuf text, or "" */
    const char *message_id; /* SNS, or "" */
};

/* Records an attempt's outcome; the lock is held. Frees d when it is over. */
static void delivery_outcome(struct delivery *d, const struct outcome *o)
{
    struct notify *n = d->n;
    int64_t elapsed = mono_ms() - d->started_ms;
    d->in_flight = 0;
    int ok = o->err == ASSAY_OK && o->status >= 200 && o->status < 300;
    if (ok) {
        n->stats.delivered++;
        LOG_INFO("notify.delivered", LOG_S("channel", channel_name(d)),
                 LOG_S("target", channel_target(d)), LOG_S("event_id", d->id),
                 LOG_S("type", d->type), LOG_I("status", o->status), LOG_I("attempts", d->attempts),
                 LOG_I("elapsed_ms", elapsed),
                 LOG_S("message_id", o->message_id ? o->message_id : ""));
        delivery_finish(d);
        return;
    }
    const char *error = o->err != ASSAY_OK ? assay_err_name(o->err) : "http_status";
    if (o->cls != RETRY_NONE && retry_should_retry(&n->policy, d->attempts, o->cls)) {
        int64_t wait = retry_backoff_ms(&n->policy, d->attempts, o->cls, rng_next(&n->rng));
        if (o->retry_after_ms > wait)
            wait = o->retry_after_ms < n->cfg.max_backoff_ms ? o->retry_after_ms
                                                             : n->cfg.max_backoff_ms;
        d->next_at_ms = mono_ms() + wait;
        n->stats.retries++;
        LOG_INFO("notify.retry", LOG_S("channel", channel_name(d)),
                 LOG_S("target", channel_target(d)), LOG_S("event_id", d->id),
                 LOG_S("error", error), LOG_I("status", o->status), LOG_S("code", o->code),
                 LOG_I("attempt", d->attempts), LOG_I("wait_ms", wait));
        pthread_cond_signal(&n->wake);
        return;
    }
    n->stats.failed++;
    LOG_WARN("notify.failed", LOG_S("channel", channel_name(d)), LOG_S("target", channel_target(d)),
             LOG_S("event_id", d->id), LOG_S("type", d->type), LOG_S("error", error),
             LOG_I("status", o->status), LOG_S("code", o->code), LOG_I("attempts", d->attempts),
             LOG_S("reason", o->cls == RETRY_NONE ? "not_retryable" : "attempts_exhausted"),
             LOG_S("detail", o->detail ? o->detail : ""));
    delivery_finish(d);
}

/* Retry-After in delta-seconds (an HTTP date is ignored: the backoff applies). */
static int64_t retry_after_ms(const struct http_response *resp)
{
    const char *v = http_response_header(resp, "Retry-After");
    if (!v)
        return 0;
    char *end;
    errno = 0;
    long s = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0' || s < 0)
        return 0;
    return (int64_t)(s > MAX_RETRY_AFTER_S ? MAX_RETRY_AFTER_S : s) * 1000;
}

static void webhook_done(void *ctx, enum assay_err err, struct http_request *req,
                         struct http_response *resp)
{
    (void)req;
    struct delivery *d = ctx;
    struct notify *n = d->n;
    struct outcome o = {.err = err, .status = err == ASSAY_OK ? resp->status : 0, .code = ""};
    /* Webhooks: transport faults, 5xx and 429 are worth another attempt;
     * any other answer (a 4xx, a redirect) is final. */
    if (err == ASSAY_ERR_TIMEOUT || err == ASSAY_ERR_TRANSPORT)
        o.cls = RETRY_TRANSIENT;
    else if (err != ASSAY_OK)
        o.cls = RETRY_NONE;
    else if (o.status == 429)
        o.cls = RETRY_THROTTLED;
    else if (o.status >= 500 && o.status <= 599)
        o.cls = RETRY_TRANSIENT;
    else
        o.cls = RETRY_NONE;
    if (err == ASSAY_OK && (o.status == 429 || o.status == 503))
        o.retry_after_ms = retry_after_ms(resp);
    o.detail = err != ASSAY_OK ? resp->errbuf : "";
    pthread_mutex_lock(&n->lock);
    delivery_outcome(d, &o);
    pthread_mutex_unlock(&n->lock);
}

static void sns_done(void *ctx, enum assay_err err, const struct sns_result *res)
{
    struct delivery *d = ctx;
    struct notify *n = d->n;
    /* err is ASSAY_OK only for a 200 with a MessageId (aws/sns). */
    struct outcome o = {.err = err,
                        .status = res->status,
                        .code = res->error_code,
                        .cls = res->retry,
                        .detail = res->errbuf,
                        .message_id = res->message_id};
    pthread_mutex_lock(&n->lock);
    delivery_outcome(d, &o);
    pthread_mutex_unlock(&n->lock);
}

static void hmac_header(const char *secret, int64_t now_s, const char *body, size_t len,
                        struct buf *out)
{
    struct buf msg = BUF_INIT;
    buf_appendf(&msg, "%lld.", (long long)now_s);
    buf_append(&msg, body, len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)msg.data, msg.len, mac,
         &mac_len);
    buf_appendf(out, "t=%lld,v1=", (long long)now_s);
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < mac_len; i++) {
        buf_append_char(out, hex[mac[i] >> 4]);
        buf_append_char(out, hex[mac[i] & 15]);
    }
    secure_zero(mac, sizeof mac);
    buf_clear(&msg);
}

/* Builds d's webhook request for this attempt; the lock is held. */
static void webhook_request_build(struct notify *n, struct delivery *d, int64_t timeout_ms)
{
    const struct notify_webhook_config *w = &n->cfg.webhooks[d->channel];
    request_wipe(&d->req);
    http_response_clear(&d->resp);
    http_request_init(&d->req, "POST", w->url);
    http_response_init(&d->resp);
    buf_append(&d->req.body, d->body, d->body_len);
    http_request_header_set(&d->req, "Content-Type", "application/json");
    http_request_header_set(&d->req, "User-Agent", USER_AGENT);
    http_request_header_set(&d->req, "X-Assay-Event", d->type);
    http_request_header_set(&d->req, "X-Assay-Delivery", d->id);
    if (w->auth == NOTIFY_AUTH_TOKEN) {
        http_request_header_set(&d->req, w->secret_header, w->secret);
    } else if (w->auth == NOTIFY_AUTH_HMAC) {
        struct buf sig = BUF_INIT;
        hmac_header(w->secret, clock_now_ms(n->clock) / 1000, d->body, d->body_len, &sig);
        http_request_header_set(&d->req, w->secret_header, buf_cstr(&sig));
        buf_clear(&sig);
    }
    d->req.redact_header = w->secret_header;
    d->req.timeout_ms = timeout_ms;
}

/* Starts one attempt of d (marked in flight, the lock released by the caller). */
static void attempt_start(struct notify *n, struct delivery *d)
{
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err;
    if (d->channel == SNS_CHANNEL) {
        struct sns_publish_input in = {.topic_arn = n->cfg.sns_topic_arn,
                                       .message = d->body,
                                       .subject = d->subject,
                                       .timeout_ms = d->timeout_ms};
        err = sns_publish_submit(n->sns, &in, sns_done, d, errbuf);
    } else {
        err = http_transport_submit(n->transport, &d->req, &d->resp, webhook_done, d);
        if (err != ASSAY_OK)
            snprintf(errbuf, sizeof errbuf, "%s", d->resp.errbuf);
    }
    if (err == ASSAY_OK)
        return; /* d belongs to its completion now */
    struct outcome o = {.err = err, .code = "", .cls = RETRY_NONE, .detail = errbuf};
    pthread_mutex_lock(&n->lock);
    delivery_outcome(d, &o);
    pthread_mutex_unlock(&n->lock);
}

static void cond_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t at_ms)
{
    struct timespec ts = {(time_t)(at_ms / 1000), (long)(at_ms % 1000) * 1000000L};
    pthread_cond_timedwait(c, m, &ts);
}

static void *run(void *arg)
{
    struct notify *n = arg;
    struct delivery **due = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        int64_t now = mono_ms();
        if (n->stopping) {
            /* Give up what cannot start before the deadline. */
            for (struct delivery *d = n->head, *next; d; d = next) {
                next = d->next;
                if (!d->in_flight && (now >= n->deadline_ms || d->next_at_ms > n->deadline_ms)) {
                    n->stats.abandoned++;
                    LOG_WARN("notify.abandoned", LOG_S("channel", channel_name(d)),
                             LOG_S("target", channel_target(d)), LOG_S("event_id", d->id),
                             LOG_S("type", d->type), LOG_I("attempts", d->attempts));
                    delivery_finish(d);
                }
            }
            if (!n->head)
                break;
        }
        size_t n_due = 0;
        int64_t earliest = INT64_MAX;
        for (struct delivery *d = n->head; d; d = d->next) {
            if (d->in_flight)
                continue;
            if (d->next_at_ms <= now) {
                if (n_due == cap) {
                    cap = cap ? cap * 2 : 16;
                    due = xrealloc(due, cap * sizeof *due);
                }
                int64_t timeout = d->channel == SNS_CHANNEL ? n->cfg.timeout_ms
                                  : n->cfg.webhooks[d->channel].timeout_ms
                                      ? n->cfg.webhooks[d->channel].timeout_ms
                                      : n->cfg.timeout_ms;
                if (n->stopping && n->deadline_ms - now < timeout)
                    timeout = n->deadline_ms - now > 1 ? n->deadline_ms - now : 1;
                d->in_flight = 1;
                d->attempts++;
                d->started_ms = now;
                d->timeout_ms = timeout;
                if (d->channel != SNS_CHANNEL)
                    webhook_request_build(n, d, timeout);
                due[n_due++] = d;
            } else if (d->next_at_ms < earliest) {
                earliest = d->next_at_ms;
            }
        }
        if (n_due) {
            pthread_mutex_unlock(&n->lock);
            for (size_t i = 0; i < n_due; i++)
                attempt_start(n, due[i]);
            pthread_mutex_lock(&n->lock);
            continue;
        }
        /* Stopping: wake at the deadline; past it, only completions remain. */
        if (n->stopping)
            earliest = now < n->deadline_ms && n->deadline_ms < earliest ? n->deadline_ms
                       : now < n->deadline_ms                            ? earliest
                                                                         : INT64_MAX;
        if (earliest == INT64_MAX)
            pthread_cond_wait(&n->wake, &n->lock);
        else
            cond_wait_until(&n->wake, &n->lock, earliest);
    }
    pthread_mutex_unlock(&n->lock);
    free(due);
    return NULL;
}

struct notify *notify_new(const struct notify_options *opt, char *errbuf)
{
    struct notify *n = NULL;
    if (!opt || !opt->config) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "notify: a config is required");
        goto out;
    }
    if (opt->config->n_webhooks && !opt->transport) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "notify: webhooks need an HTTP transport");
        goto out;
    }
    if (opt->config->sns_topic_arn && !opt->sns) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "notify: monitor.notify.sns_topic_arn needs an SNS client");
        goto out;
    }
    n = xcalloc(1, sizeof *n);
    config_copy(&n->cfg, opt->config);
    n->transport = opt->transport;
    n->sns = opt->sns;
    n->clock = opt->clock;
    n->policy = (struct retry_policy){.max_attempts = n->cfg.max_attempts,
                                      .base_ms = n->cfg.base_ms,
                                      .throttle_base_ms = n->cfg.base_ms,
                                      .max_backoff_ms = n->cfg.max_backoff_ms};
    n->targets = n->cfg.n_webhooks ? xcalloc(n->cfg.n_webhooks, sizeof *n->targets) : NULL;
    for (size_t i = 0; i < n->cfg.n_webhooks; i++) {
        n->targets[i] = url_target(n->cfg.webhooks[i].url);
        if (n->cfg.webhooks[i].auth == NOTIFY_AUTH_TOKEN &&
            strncmp(n->cfg.webhooks[i].url, "http://", 7) == 0)
            LOG_WARN("notify.plaintext_secret", LOG_S("target", n->targets[i]),
                     LOG_S("advice", "the token travels unencrypted over http://; use "
                                     "https:// or auth \"hmac\""));
    }
    rng_seed(&n->rng, opt->seed ? opt->seed : (uint64_t)clock_now_ms(NULL) ^ (uintptr_t)n);
    pthread_mutex_init(&n->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&n->wake, &ca);
    pthread_cond_init(&n->idle, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&n->thread, NULL, run, n) != 0) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "notify: cannot start the thread");
        pthread_cond_destroy(&n->wake);
        pthread_cond_destroy(&n->idle);
        pthread_mutex_destroy(&n->lock);
        for (size_t i = 0; i < n->cfg.n_webhooks; i++)
            free(n->targets[i]);
        free(n->targets);
        notify_config_clear(&n->cfg);
        free(n);
        n = NULL;
    }
out:
    return n;
}

void notify_free(struct notify *n)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    n->stopping = 1;
    n->deadline_ms = mono_ms() + n->cfg.flush_timeout_ms;
    pthread_cond_signal(&n->wake);
    pthread_mutex_unlock(&n->lock);
    pthread_join(n->thread, NULL);
    pthread_cond_destroy(&n->wake);
    pthread_cond_destroy(&n->idle);
    pthread_mutex_destroy(&n->lock);
    for (size_t i = 0; i < n->cfg.n_webhooks; i++)
        free(n->targets[i]);
    free(n->targets);
    notify_config_clear(&n->cfg);
    free(n);
}

enum assay_err notify_alarm_post(struct notify *n, const struct notify_series *s, int64_t time_ms,
                                 const struct detector_event *ev)
{
    if (!n || !s || !ev || !s->app || !s->app[0] || !s->rubric || !s->rubric[0] ||
        (ev->state != DETECTOR_ALARM && ev->state != DETECTOR_OK))
        return ASSAY_ERR_INVALID_ARGUMENT;
    size_t channels = n->cfg.n_webhooks + (n->cfg.sns_topic_arn ? 1 : 0);
    if (channels == 0)
        return ASSAY_OK;
    /* Everything that allocates or formats happens before the lock. */
    json_t *payload = notify_payload_json(s, time_ms, ev);
    struct buf text = BUF_INIT;
    cloudwatch_json_encode(payload, &text); /* compact, shortest round-trip numbers */
    char id[33];
    snprintf(id, sizeof id, "%s", jsonutil_str(payload, "id"));
    json_decref(payload);
    size_t body_len = text.len;
    char *body = buf_detach(&text, NULL);
    char subject[SNS_MAX_SUBJECT_LEN + 1];
    notify_subject_format(s, ev, subject, sizeof subject);
    struct delivery *first = NULL, **tail = &first;
    for (size_t i = 0; i < channels; i++) {
        struct delivery *d = xcalloc(1, sizeof *d);
        d->n = n;
        d->channel = i < n->cfg.n_webhooks ? (int)i : SNS_CHANNEL;
        memcpy(d->id, id, sizeof d->id);
        d->type = event_type(ev);
        d->body = i + 1 < channels ? xstrdup(body) : body;
        d->body_len = body_len;
        memcpy(d->subject, subject, sizeof d->subject);
        http_request_init(&d->req, "POST", "");
        http_response_init(&d->resp);
        *tail = d;
        tail = &d->next;
    }
    enum assay_err err = ASSAY_OK;
    pthread_mutex_lock(&n->lock);
    if (n->stopping) {
        err = ASSAY_ERR_CANCELLED;
    } else if (n->pending + channels > n->cfg.max_queue) {
        err = ASSAY_ERR_BUSY;
        n->stats.dropped++;
        LOG_WARN("notify.dropped", LOG_S("event_id", id), LOG_S("type", event_type(ev)),
                 LOG_S("app", s->app), LOG_S("rubric", s->rubric), LOG_I("pending", n->pending),
                 LOG_I("max_queue", n->cfg.max_queue));
    } else {
        struct delivery **end = &n->head;
        while (*end)
            end = &(*end)->next;
        *end = first;
        first = NULL;
        n->pending += channels;
        n->stats.posted++;
        pthread_cond_signal(&n->wake);
    }
    pthread_mutex_unlock(&n->lock);
    while (first) {
        struct delivery *next = first->next;
        http_request_clear(&first->req);
        http_response_clear(&first->resp);
        free(first->body);
        free(first);
        first = next;
    }
    return err;
}

enum assay_err notify_flush(struct notify *n, int64_t timeout_ms)
{
    if (!n)
        return ASSAY_OK;
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&n->lock);
    while (n->pending > 0 && mono_ms() < deadline)
        cond_wait_until(&n->idle, &n->lock, deadline);
    enum assay_err err = n->pending == 0 ? ASSAY_OK : ASSAY_ERR_TIMEOUT;
    pthread_mutex_unlock(&n->lock);
    return err;
}

void notify_stats_get(struct notify *n, struct notify_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    *out = n->stats;
    out->pending = n->pending;
    pthread_mutex_unlock(&n->lock);
}
