/*
 * server/publishing: monitor/publish set up for `assay serve`, with the
 * store's outbox behind it. Called by server/cmd_serve.
 */
#include "server/publishing.h"

#include "aws/cloudwatch.h"
#include "common/alloc.h"
#include "common/clock.h"
#include "common/log.h"
#include "monitor/publish.h"
#include "server/config.h"
#include "server/store.h"

#include <stdlib.h>
#include <string.h>

struct publishing {
    struct cloudwatch *cw;
    struct publish *pub;
};

/* ------------------------------------------------ the store's outbox */

static enum assay_err ob_enqueue(void *ctx, const char *body, size_t len, int64_t period_ms)
{
    return store_outbox_enqueue(ctx, body, len, period_ms, NULL, NULL);
}

static enum assay_err ob_peek(void *ctx, struct publish_outbox_item *out)
{
    struct store_outbox_list l = {0};
    enum assay_err err = store_outbox_peek(ctx, 1, &l, NULL);
    if (err == ASSAY_OK && l.n == 0)
        err = ASSAY_ERR_NOT_FOUND;
    if (err == ASSAY_OK) {
        out->id = l.items[0].item_id;
        out->period_ms = l.items[0].created_ms;
        out->len = l.items[0].payload_len;
        out->body = xmalloc(out->len + 1);
        memcpy(out->body, l.items[0].payload, out->len);
        out->body[out->len] = '\0';
    }
    store_outbox_list_clear(&l);
    return err;
}

static enum assay_err ob_ack(void *ctx, int64_t id)
{
    return store_outbox_delete(ctx, &id, 1, NULL);
}

static enum assay_err ob_drop(void *ctx, int64_t cutoff_ms, size_t *dropped)
{
    int64_t n = 0;
    enum assay_err err = store_outbox_expire(ctx, cutoff_ms, &n, NULL);
    if (err == ASSAY_OK && dropped)
        *dropped += (size_t)n;
    return err;
}

static size_t ob_count(void *ctx)
{
    int64_t n = 0;
    return store_outbox_count(ctx, &n) == ASSAY_OK && n > 0 ? (size_t)n : 0;
}

static void ob_destroy(void *ctx)
{
    (void)ctx; /* the store belongs to the caller */
}

/* ---------------------------------------------------------- publishing */

enum assay_err publishing_open(const struct config *cfg, struct store *store,
                               struct http_transport *transport, struct creds_provider *creds,
                               struct publishing **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct publishing *p = xcalloc(1, sizeof *p);
    *out = NULL;
    struct publish_options o;
    publish_options_init(&o);
    const json_t *metrics = cfg->root ? json_object_get(cfg->root, "metrics") : NULL;
    if ((err = publish_options_from_json(&o, metrics, errbuf)) != ASSAY_OK)
        goto out;
    if (o.sink == PUBLISH_SINK_CLOUDWATCH && (!transport || !creds)) {
        LOG_WARN("publish.disabled",
                 LOG_S("detail", "metrics.sink is cloudwatch but there are no AWS credentials; "
                                 "metrics stay on /metrics only"));
        o.sink = PUBLISH_SINK_NONE;
    }
    if (o.sink == PUBLISH_SINK_CLOUDWATCH) {
        struct cloudwatch_options co = {.transport = transport,
                                        .creds = creds,
                                        .region = cfg->aws.region,
                                        .endpoint = cfg->aws.cloudwatch_endpoint};
        if (!(p->cw = cloudwatch_new(&co, errbuf))) {
            err = ASSAY_ERR_CONFIG;
            goto out;
        }
        o.cw = p->cw;
        struct publish_outbox *ob = xcalloc(1, sizeof *ob);
        *ob = (struct publish_outbox){.enqueue = ob_enqueue,
                                      .peek = ob_peek,
                                      .ack = ob_ack,
                                      .drop_older_than = ob_drop,
                                      .count = ob_count,
                                      .destroy = ob_destroy,
                                      .ctx = store};
        o.outbox = ob;
    }
    if (!(p->pub = publish_new(&o, errbuf))) {
        err = ASSAY_ERR_CONFIG;
        goto out;
    }
    if ((err = publish_start(p->pub, errbuf)) != ASSAY_OK)
        goto out;
    LOG_INFO("publish.started",
             LOG_S("sink", o.sink == PUBLISH_SINK_CLOUDWATCH ? "cloudwatch"
                           : o.sink == PUBLISH_SINK_EMF      ? "emf"
                                                             : "none"),
             LOG_I("period_s", o.period_s));
    *out = p;
    p = NULL;
out:
    publishing_free(p);
    return err;
}

struct publish *publishing_get(struct publishing *p)
{
    return p ? p->pub : NULL;
}

struct cloudwatch *publishing_cloudwatch(struct publishing *p)
{
    return p ? p->cw : NULL;
}

void publishing_stop(struct publishing *p, int64_t deadline_ms)
{
    if (p && p->pub)
        publish_stop(p->pub, deadline_ms);
}

void publishing_free(struct publishing *p)
{
    if (!p)
        return;
    publish_free(p->pub);
    cloudwatch_free(p->cw);
    free(p);
}
