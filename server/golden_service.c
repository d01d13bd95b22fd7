/*
 * server/golden_service: the config's golden entries run on schedule and on
 * request inside `assay serve` (see golden_service.h).
 */
#include "server/golden_service.h"

#include "common/alloc.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "server/config.h"
#include "server/confpath.h"
#include "server/golden.h"
#include "server/scheduler.h"
#include "server/store.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct golden_service {
    struct golden_service_options o;
    struct golden_env env;
    struct golden_spec *specs;
    size_t n;
    struct scheduler *sched;
    atomic_bool cancel;
};

static void run_entry(void *ctx, const struct golden_spec *spec, const char *run_id)
{
    struct golden_service *g = ctx;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    json_t *summary = NULL;
    enum assay_err err = golden_run_execute(&g->env, spec, run_id, NULL, NULL, &summary, errbuf);
    if (err != ASSAY_OK)
        LOG_ERROR("golden.run_failed", LOG_S("entry", scheduler_entry_name(spec)),
                  LOG_S("run_id", run_id), LOG_S("error", assay_err_name(err)),
                  LOG_S("detail", errbuf));
    json_decref(summary);
}

static int64_t last_of(void *ctx, const struct golden_spec *spec)
{
    struct golden_service *g = ctx;
    return golden_last_run_ms(g->o.store, spec);
}

void golden_service_cancel(struct golden_service *g)
{
    if (g)
        atomic_store(&g->cancel, true);
}

void golden_service_free(struct golden_service *g)
{
    if (!g)
        return;
    golden_service_cancel(g);
    scheduler_free(g->sched);
    for (size_t i = 0; i < g->n; i++)
        golden_spec_clear(&g->specs[i]);
    free(g->specs);
    free(g);
}

enum assay_err golden_service_open(const struct golden_service_options *o,
                                   struct golden_service **out, char *errbuf)
{
    *out = NULL;
    if (!o || !o->cfg || !o->store || !o->reg)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "golden: missing option");
    struct golden_service *g = xcalloc(1, sizeof *g);
    g->o = *o;
    size_t n = json_array_size(o->cfg->golden);
    g->specs = xcalloc(n ? n : 1, sizeof *g->specs);
    enum assay_err err = ASSAY_OK;
    for (size_t i = 0; i < n; i++) {
        char eb[ASSAY_ERRBUF_SIZE] = "";
        err = golden_spec_from_json(json_array_get(o->cfg->golden, i), &g->specs[i], eb);
        if (err != ASSAY_OK) {
            assay_errbuf_set(errbuf, err, "golden[%zu]: %s", i, eb);
            goto out;
        }
        g->n++;
        char *path = confpath_resolve(o->cfg, g->specs[i].dataset);
        free(g->specs[i].dataset);
        g->specs[i].dataset = path;
        for (size_t k = 0; k < i; k++)
            if (strcmp(scheduler_entry_name(&g->specs[k]), scheduler_entry_name(&g->specs[i])) ==
                0) {
                err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                       "golden[%zu]: name: \"%s\" is also golden[%zu]'s; give "
                                       "each entry its own name",
                                       i, scheduler_entry_name(&g->specs[i]), k);
                goto out;
            }
    }
    g->env = (struct golden_env){.store = o->store,
                                 .reg = o->reg,
                                 .runner = o->runner,
                                 .bedrock = o->bedrock,
                                 .judge_model = o->cfg->judge.model_id,
                                 .publish = o->publish,
                                 .cancel = &g->cancel};
    struct scheduler_options so = {
        .specs = g->specs, .n_specs = g->n, .run = run_entry, .last = last_of, .ctx = g};
    g->sched = scheduler_new(&so);
    *out = g;
    g = NULL;
out:
    golden_service_free(g);
    return err;
}

enum assay_err golden_service_start(struct golden_service *g, char *errbuf)
{
    if (!g->o.runner) {
        LOG_WARN("golden.disabled", LOG_S("reason", "no judge (AWS credentials)"));
        return ASSAY_OK;
    }
    return scheduler_start(g->sched, errbuf);
}

/* The entry a POST body names, or NULL. */
static const struct golden_spec *entry_of(struct golden_service *g, const json_t *body,
                                          char *errbuf)
{
    const char *name = jsonutil_str(body, "name");
    const char *dataset = jsonutil_str(body, "dataset");
    if (g->n == 0) {
        assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "the config has no golden entries");
        return NULL;
    }
    if (!name && !dataset) {
        if (g->n == 1)
            return &g->specs[0];
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "name the golden entry to run: {\"name\": \"...\"}");
        return NULL;
    }
    for (size_t i = 0; i < g->n; i++) {
        if (name && strcmp(scheduler_entry_name(&g->specs[i]), name) == 0)
            return &g->specs[i];
        if (!name && dataset) {
            const json_t *e = json_array_get(g->o.cfg->golden, i);
            const char *d = jsonutil_str(e, "dataset");
            if (d && strcmp(d, dataset) == 0)
                return &g->specs[i];
        }
    }
    assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "no golden entry of that %s in the config",
                     name ? "name" : "dataset");
    return NULL;
}

enum assay_err golden_service_post(void *ctx, const json_t *body, char **run_id, char *errbuf)
{
    struct golden_service *g = ctx;
    *run_id = NULL;
    if (body && !json_is_object(body))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "the body must be an object");
    if (body && (json_object_get(body, "name") && !json_is_string(json_object_get(body, "name"))))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "name: must be a string");
    const struct golden_spec *spec = entry_of(g, body, errbuf);
    if (!spec)
        return g->n == 0 || jsonutil_str(body, "name") || jsonutil_str(body, "dataset")
                   ? ASSAY_ERR_NOT_FOUND
                   : ASSAY_ERR_INVALID_ARGUMENT;
    if (!g->o.runner)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_READY,
                                "golden runs need the judge, which has no AWS credentials");
    if (atomic_load(&g->cancel))
        return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_READY, "the service is stopping");
    enum assay_err err = scheduler_trigger(g->sched, scheduler_entry_name(spec), run_id);
    if (err == ASSAY_ERR_BUSY)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFLICT, "a run of \"%s\" is in progress",
                                scheduler_entry_name(spec));
    if (err != ASSAY_OK)
        return assay_errbuf_set(errbuf, err, "the run could not be started");
    /* Stored before the answer, so a GET right after finds it (the run takes
     * a queued row over, or queues it itself if it got there first). */
    char eb[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err qerr = golden_run_queue(g->o.store, spec, *run_id, eb);
    if (qerr != ASSAY_OK && qerr != ASSAY_ERR_INVALID_ARGUMENT)
        LOG_WARN("golden.queue_failed", LOG_S("run_id", *run_id), LOG_S("detail", eb));
    return ASSAY_OK;
}
