/*
 * server/monitoring: builds the series registry and the notifier for
 * `assay serve` from the config's "monitor" section. See monitoring.h.
 */
#include "server/monitoring.h"

#include "aws/http.h"
#include "aws/retry.h"
#include "aws/sns.h"
#include "common/alloc.h"
#include "common/log.h"
#include "monitor/notify.h"
#include "server/config.h"
#include "server/series.h"

#include <stdlib.h>
#include <string.h>

struct monitoring {
    struct http_transport *t; /* webhooks and SNS */
    struct sns *sns;
    struct notify *notify;
    struct series *series;
};

enum assay_err monitoring_open(const struct config *cfg, struct store *store,
                               struct publish *publish, struct creds_provider *creds,
                               struct monitoring **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    *out = NULL;
    struct monitoring *m = xcalloc(1, sizeof *m);
    struct notify_config nc;
    notify_config_init(&nc);
    const char *key;
    json_t *v;
    json_object_foreach(cfg->monitor, key, v)
    {
        if (strcmp(key, "detector") != 0 && strcmp(key, "notify") != 0) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "monitor: unknown key (detector and notify are known)");
            goto out;
        }
    }
    const json_t *section = cfg->monitor ? json_object_get(cfg->monitor, "notify") : NULL;
    if ((err = notify_config_from_json(&nc, section, NULL, NULL, errbuf)) != ASSAY_OK)
        goto out;
    if (nc.n_webhooks > 0 || nc.sns_topic_arn) {
        struct http_transport_options to = {.timeout_ms = nc.timeout_ms,
                                            .ca_file = getenv("AWS_CA_BUNDLE")};
        if (!(m->t = http_transport_new(&to, errbuf))) {
            err = ASSAY_ERR_INTERNAL;
            goto out;
        }
    }
    if (nc.sns_topic_arn) {
        if (!creds) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "monitor.notify.sns_topic_arn: SNS needs AWS credentials");
            goto out;
        }
        struct sns_options so = {.transport = m->t,
                                 .creds = creds,
                                 .region = cfg->aws.region,
                                 .endpoint = cfg->aws.sns_endpoint,
                                 .timeout_ms = nc.timeout_ms};
        retry_policy_init(&so.retry);
        so.retry.max_attempts = 1; /* monitor/notify retries */
        if (!(m->sns = sns_new(&so, errbuf))) {
            err = ASSAY_ERR_CONFIG;
            goto out;
        }
    }
    struct notify_options no = {.config = &nc, .transport = m->t, .sns = m->sns};
    if (!(m->notify = notify_new(&no, errbuf))) {
        err = ASSAY_ERR_CONFIG;
        goto out;
    }
    struct series_options so = {
        .store = store, .monitor = cfg->monitor, .publish = publish, .notify = m->notify};
    if ((err = series_new(&so, &m->series, errbuf)) != ASSAY_OK)
        goto out;
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err rerr = series_restore_all(m->series, detail);
    if (rerr != ASSAY_OK)
        LOG_ERROR("series.load_failed", LOG_S("error", assay_err_name(rerr)),
                  LOG_S("detail", detail), LOG_S("effect", "series load at their first verdict"));
    LOG_INFO("monitor.started", LOG_I("webhooks", nc.n_webhooks),
             LOG_B("sns", nc.sns_topic_arn != NULL));
    *out = m;
    m = NULL;
out:
    notify_config_clear(&nc);
    monitoring_free(m);
    return err;
}

struct series *monitoring_series(struct monitoring *m)
{
    return m ? m->series : NULL;
}

void monitoring_free(struct monitoring *m)
{
    if (!m)
        return;
    series_free(m->series);
    notify_free(m->notify); /* before the SNS client and transport it borrows */
    sns_free(m->sns);
    http_transport_free(m->t);
    free(m);
}
