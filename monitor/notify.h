/*
 * monitor/notify: notifications when a series' alarm is raised or cleared.
 * The service's workers hand each detector state change to notify_alarm_post,
 * which copies it into a bounded queue and returns at once; the notifier's
 * own thread delivers it to every configured channel:
 *   - webhooks: a JSON POST of the payload (monitor/README.md, "Notifications")
 *     to a configured URL, authenticated by a secret from the environment,
 *     either sent as a header (auth "token") or used as the key of an
 *     HMAC-SHA256 signature header over a timestamp and the body (auth "hmac");
 *   - SNS: Publish to a topic (aws/sns) with a short Subject and the same JSON
 *     as the Message.
 * Each (event, channel) delivery is retried on transport errors, 5xx and 429
 * (and for SNS whatever aws/retry calls throttled or transient) with capped
 * exponential backoff and full jitter (aws/retry, bits from common/rng), up to
 * max_attempts; any other answer (4xx but 429) ends it at once. Every outcome
 * is one log line (notify.delivered, notify.retry, notify.failed,
 * notify.dropped, notify.abandoned) naming the channel and the event id;
 * secrets are never logged, and a webhook's URL is logged by scheme and host
 * only (URLs such as Slack's carry a secret in the path).
 *
 * Deliveries are asynchronous on the shared transport (aws/http): the
 * notifier thread never waits on the network, a slow receiver delays only
 * its own deliveries, and a receiver in backoff holds up nothing.
 *
 * Threading: notify_alarm_post, notify_flush and notify_stats_get may be
 * called from any thread; notify_new and notify_free from one owner thread,
 * never from a transport completion callback.
 * Ownership: the notifier copies the config (secrets included, wiped on
 * free) and borrows the transport and the SNS client, which must outlive it.
 * notify_alarm_post borrows its arguments for the call only.
 */
#ifndef ASSAY_MONITOR_NOTIFY_H
#define ASSAY_MONITOR_NOTIFY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "monitor/detector.h"

struct http_transport;
struct sns;
struct clock;

#define NOTIFY_MAX_WEBHOOKS 16
#define NOTIFY_MAX_URL_LEN 2048

/* How a webhook proves the request came from assay. */
enum notify_auth {
    NOTIFY_AUTH_NONE,  /* no secret */
    NOTIFY_AUTH_TOKEN, /* "<secret_header>: <secret>" */
    NOTIFY_AUTH_HMAC /* "<secret_header>: t=<unix s>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>" */
};

struct notify_webhook_config {
    char *url; /* http:// or https:// */
    enum notify_auth auth;
    char *secret_header; /* default "X-Assay-Token" (token), "X-Assay-Signature" (hmac) */
    char *secret_env;    /* the environment variable the secret was read from */
    char *secret;        /* its value (never logged; wiped by _clear) */
    int64_t timeout_ms;  /* per attempt; 0: notify_config.timeout_ms */
};

/*
 * The "monitor.notify" section. JSON names in brackets; defaults from
 * notify_config_init.
 */
struct notify_config {
    struct notify_webhook_config *webhooks; /* [webhooks] none */
    size_t n_webhooks;
    char *sns_topic_arn;      /* [sns_topic_arn] NULL: no SNS channel */
    int max_attempts;         /* [max_attempts] 6, first attempt included (1-20) */
    int64_t base_ms;          /* [base_ms] 500: backoff base */
    int64_t max_backoff_ms;   /* [max_backoff_ms] 60,000: cap on one wait */
    int64_t timeout_ms;       /* [timeout_ms] 5,000: per attempt */
    size_t max_queue;         /* [max_queue] 1,000: deliveries waiting before events are
                                 dropped */
    int64_t flush_timeout_ms; /* [flush_timeout_ms] 5,000: notify_free's wait for deliveries
                                 still pending */
};

/* The environment look-up (a seam for tests); NULL means getenv. */
typedef const char *(*notify_getenv_fn)(void *ctx, const char *name);

void notify_config_init(struct notify_config *c);
/* Frees the contents and wipes the secrets; accepts NULL. */
void notify_config_clear(struct notify_config *c);
/*
 * Fills *c (initialised by notify_config_init) from the "notify" object
 * (borrowed; NULL leaves the defaults: no channel). Secrets are read from the
 * environment variables named by secret_env. Unknown keys, wrong types, out
 * of range values, a secret given in the file, or a secret_env that is unset
 * are ASSAY_ERR_CONFIG with the key path in errbuf ("monitor.notify.
 * webhooks[0].url: ..."); *c is then cleared back to the defaults.
 */
enum assay_err notify_config_from_json(struct notify_config *c, const json_t *obj,
                                       notify_getenv_fn getenv_fn, void *env_ctx, char *errbuf);

/* The series an event belongs to (borrowed views). */
struct notify_series {
    const char *app;
    const char *rubric;
    const char *model_id; /* NULL or "" when samples name no model */
};

/*
 * The payload of an event, as a new JSON object (documented in
 * monitor/README.md): version, id, type, state, time, series, index,
 * change_point, baseline_mean, current_mean, effect_size, p_value (null when
 * NaN), statistic, threshold. The id is the same for the same event (series,
 * state, index, time), so a receiver can drop a retried duplicate. Pure.
 */
json_t *notify_payload_json(const struct notify_series *s, int64_t time_ms,
                            const struct detector_event *ev);
/*
 * The SNS Subject: "assay ALARM: quality drop in app/rubric[/model]" or
 * "assay OK: quality recovered in ...", made printable ASCII and cut to
 * 100 characters. Writes at most out_size bytes. Pure.
 */
void notify_subject_format(const struct notify_series *s, const struct detector_event *ev,
                           char *out, size_t out_size);

struct notify_options {
    const struct notify_config *config; /* copied; required */
    struct http_transport *transport;   /* borrowed; required when there is a webhook */
    struct sns *sns;                    /* borrowed; required when sns_topic_arn is set */
    const struct clock *clock;          /* wall time for HMAC timestamps; NULL: system */
    uint64_t seed;                      /* jitter seed; 0: from the clock */
};

struct notify;

/* Starts the notifier thread. Returns NULL with errbuf when a channel lacks
 * what it needs or the thread cannot start. */
struct notify *notify_new(const struct notify_options *opt, char *errbuf);
/*
 * Stops taking events, waits up to flush_timeout_ms for pending deliveries
 * (plus the attempts then in flight, each bounded by the time that remained),
 * logs each delivery it gives up (notify.abandoned), stops the thread, frees.
 * Accepts NULL.
 */
void notify_free(struct notify *n);

/*
 * Queues one alarm state change (ev->state DETECTOR_ALARM: raised,
 * DETECTOR_OK: cleared) for every channel and returns without waiting.
 * ASSAY_OK; ASSAY_ERR_INVALID_ARGUMENT for a missing app or rubric or another
 * state; ASSAY_ERR_BUSY when the queue has no room for all its deliveries
 * (the event is dropped and logged); ASSAY_ERR_CANCELLED after notify_free
 * began. With no channel configured it is a no-op that returns ASSAY_OK.
 */
enum assay_err notify_alarm_post(struct notify *n, const struct notify_series *s, int64_t time_ms,
                                 const struct detector_event *ev);

/* Waits until no delivery is pending or timeout_ms passed: ASSAY_OK or ASSAY_ERR_TIMEOUT. */
enum assay_err notify_flush(struct notify *n, int64_t timeout_ms);

struct notify_stats {
    uint64_t posted;    /* events accepted */
    uint64_t delivered; /* deliveries that succeeded */
    uint64_t failed;    /* deliveries given up: refused, or attempts exhausted */
    uint64_t retries;   /* attempts after a first */
    uint64_t dropped;   /* events refused for a full queue */
    uint64_t abandoned; /* deliveries still pending at shutdown */
    uint64_t pending;   /* deliveries queued or in flight now */
};

void notify_stats_get(struct notify *n, struct notify_stats *out);

#endif
