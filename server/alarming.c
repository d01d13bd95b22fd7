/*
 * server/alarming: the alarms plan from the config, shared by
 * server/cmd_alarms and server/cmd_serve, and the start-up reconciliation
 * thread of `assay serve`.
 */
#include "server/alarming.h"

#include "aws/cloudwatch.h"
#include "common/alloc.h"
#include "common/log.h"
#include "server/config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every app x rubric of the config's apps (the template "default" names no
 * real app) and of alarms.apps. */
static void collect_targets(const struct config *c, struct alarms_target **t, size_t *n)
{
    for (size_t i = 0; i < c->n_apps; i++) {
        const struct config_app *a = &c->apps[i];
        if (strcmp(a->name, CONFIG_DEFAULT_APP) == 0)
            continue;
        for (size_t j = 0; j < a->n_rubrics; j++) {
            *t = xrealloc(*t, (*n + 1) * sizeof **t);
            (*t)[(*n)++] = (struct alarms_target){a->name, a->rubrics[j], NULL};
        }
    }
    if (c->alarms)
        alarms_targets_from_config(c->alarms, t, n);
}

enum assay_err alarming_plan_build(const struct config *cfg, struct alarms_plan *plan, char *errbuf)
{
    struct alarms_target *targets = NULL;
    size_t n = 0;
    collect_targets(cfg, &targets, &n);
    enum assay_err err = alarms_plan_build(cfg->alarms, cfg->metrics.namespace_,
                                           cfg->metrics.period_s, targets, n, plan, errbuf);
    free(targets);
    return err;
}

/* ------------------------------------------------- start-up reconciliation */

struct alarming {
    struct cloudwatch *cw;
    struct alarms_plan plan;
    int64_t retry_base_ms, retry_max_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
};

/* One log line per alarm created, updated or in conflict (reconcile's report). */
static void report(void *ctx, const json_t *line)
{
    (void)ctx;
    const char *action = json_string_value(json_object_get(line, "action"));
    const char *alarm = json_string_value(json_object_get(line, "alarm"));
    const char *kind = json_string_value(json_object_get(line, "kind"));
    const char *metric = json_string_value(json_object_get(line, "metric"));
    const json_t *error = json_object_get(line, "error");
    if (!action)
        return;
    if (error) {
        LOG_WARN("alarms.put_failed", LOG_S("alarm", alarm), LOG_S("kind", kind),
                 LOG_S("code", json_string_value(json_object_get(error, "code"))));
    } else if (strcmp(action, "create") == 0) {
        LOG_INFO("alarms.created", LOG_S("alarm", alarm), LOG_S("kind", kind),
                 LOG_S("metric", metric));
    } else if (strcmp(action, "update") == 0) {
        LOG_INFO("alarms.updated", LOG_S("alarm", alarm), LOG_S("kind", kind),
                 LOG_S("metric", metric));
    } else if (strcmp(action, "conflict") == 0) {
        LOG_WARN("alarms.conflict", LOG_S("alarm", alarm), LOG_S("kind", kind),
                 LOG_S("detail", "an alarm of this name exists and was not created by assay; "
                                 "left as it is"));
    } else {
        LOG_DEBUG("alarms.unchanged", LOG_S("alarm", alarm));
    }
}

/* Waits ms unless stopping; returns true when stopping. a->mu held. */
static bool wait_or_stop(struct alarming *a, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!a->stopping)
        if (pthread_cond_timedwait(&a->cv, &a->mu, &ts) != 0)
            break;
    return a->stopping;
}

static void *run(void *arg)
{
    struct alarming *a = arg;
    int64_t wait_ms = a->retry_base_ms;
    for (int attempt = 1;; attempt++) {
        struct alarms_summary sum;
        memset(&sum, 0, sizeof sum);
        char errbuf[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err err = alarms_reconcile(a->cw, &a->plan, 0, report, NULL, &sum, errbuf);
        if (err == ASSAY_OK && sum.failed == 0) {
            LOG_INFO("alarms.reconciled", LOG_I("planned", a->plan.n),
                     LOG_I("created", sum.created), LOG_I("updated", sum.updated),
                     LOG_I("unchanged", sum.unchanged), LOG_I("conflicts", sum.conflicts),
                     LOG_I("put_calls", sum.put_calls), LOG_I("attempt", attempt));
            break;
        }
        LOG_WARN("alarms.reconcile_failed", LOG_S("error", assay_err_name(err)),
                 LOG_S("detail", errbuf), LOG_I("failed", sum.failed), LOG_I("attempt", attempt),
                 LOG_I("retry_in_ms", wait_ms));
        pthread_mutex_lock(&a->mu);
        bool stop = wait_or_stop(a, wait_ms);
        pthread_mutex_unlock(&a->mu);
        if (stop)
            break;
        wait_ms = wait_ms * 2 > a->retry_max_ms ? a->retry_max_ms : wait_ms * 2;
    }
    return NULL;
}

enum assay_err alarming_start(const struct config *cfg, struct cloudwatch *cw,
                              const struct alarming_options *o, struct alarming **out, char *errbuf)
{
    *out = NULL;
    struct alarming *a = xcalloc(1, sizeof *a);
    alarms_plan_init(&a->plan);
    enum assay_err err = alarming_plan_build(cfg, &a->plan, errbuf);
    if (err != ASSAY_OK || a->plan.n == 0) {
        if (err == ASSAY_OK)
            LOG_INFO("alarms.none", LOG_S("detail", "the config declares no alarms"));
        alarms_plan_clear(&a->plan);
        free(a);
        return err;
    }
    a->cw = cw;
    a->retry_base_ms = o && o->retry_base_ms > 0 ? o->retry_base_ms : 5000;
    a->retry_max_ms = o && o->retry_max_ms > 0 ? o->retry_max_ms : 300000;
    if (a->retry_max_ms < a->retry_base_ms)
        a->retry_max_ms = a->retry_base_ms;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    if (pthread_create(&a->thread, NULL, run, a) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        alarms_plan_clear(&a->plan);
        free(a);
        return assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "cannot start the alarms thread");
    }
    *out = a;
    return ASSAY_OK;
}

void alarming_free(struct alarming *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    alarms_plan_clear(&a->plan);
    free(a);
}
