/*
 * server/series: the series registry of `assay serve`: detectors per app x
 * rubric x model_id, restored from the store, updated by each scored verdict
 * in the verdict's transaction, rebaselined on a judge change or on request.
 * Called by server/worker (completions) and server/http_api (rebaseline,
 * listing). See series.h for the contract.
 */
#include "server/series.h"

#include "common/alloc.h"
#include "common/log.h"
#include "monitor/detector.h"
#include "monitor/notify.h"
#include "monitor/publish.h"
#include "server/store.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1
#define BUCKETS 1024

struct entry {
    char *app, *rubric, *model_id;
    char *rubric_version, *judge_model;
    struct detector *d;
    int64_t since_ms; /* wall time the current state began */
    json_t *alarm;    /* the raise in force (owned), or NULL */
    struct entry *next;
};

struct series {
    struct series_options o;
    struct detector_config cfg;
    pthread_mutex_t mu;
    struct entry *buckets[BUCKETS];
};

static const char *nz(const char *s)
{
    return s ? s : "";
}

static unsigned hash3(const char *a, const char *b, const char *c)
{
    uint32_t h = 2166136261u;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 16777619u;
        h = (h ^ 0x1f) * 16777619u;
    }
    return h % BUCKETS;
}

void series_count_by_state(struct series *reg, int64_t counts[3])
{
    counts[0] = counts[1] = counts[2] = 0;
    pthread_mutex_lock(&reg->mu);
    for (size_t b = 0; b < BUCKETS; b++)
        for (const struct entry *e = reg->buckets[b]; e; e = e->next) {
            enum detector_state st = detector_state_get(e->d);
            if ((unsigned)st < 3)
                counts[st]++;
        }
    pthread_mutex_unlock(&reg->mu);
}

static void entry_free(struct entry *e)
{
    if (!e)
        return;
    free(e->app);
    free(e->rubric);
    free(e->model_id);
    free(e->rubric_version);
    free(e->judge_model);
    detector_free(e->d);
    json_decref(e->alarm);
    free(e);
}

/* Under mu. */
static struct entry *find(struct series *reg, const char *app, const char *rubric,
                          const char *model_id)
{
    for (struct entry *e = reg->buckets[hash3(app, rubric, model_id)]; e; e = e->next)
        if (!strcmp(e->app, app) && !strcmp(e->rubric, rubric) && !strcmp(e->model_id, model_id))
            return e;
    return NULL;
}

static void insert(struct series *reg, struct entry *e)
{
    unsigned b = hash3(e->app, e->rubric, e->model_id);
    e->next = reg->buckets[b];
    reg->buckets[b] = e;
}

/* Takes e out of the registry and frees it: the next use reloads the committed state. */
static void drop(struct series *reg, struct entry *e)
{
    unsigned b = hash3(e->app, e->rubric, e->model_id);
    for (struct entry **p = &reg->buckets[b]; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    entry_free(e);
}

static struct entry *entry_new(const char *app, const char *rubric, const char *model_id)
{
    struct entry *e = xcalloc(1, sizeof *e);
    e->app = xstrdup(app);
    e->rubric = xstrdup(rubric);
    e->model_id = xstrdup(model_id);
    return e;
}

static void set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = xstrdup(nz(src));
}

static json_t *num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* ------------------------------------------------------------- state JSON */

/*
 * Parses a stored wrapper into its detector, since_ms and alarm. Returns the
 * detector (new) or NULL with errbuf.
 */
static struct detector *state_parse(const char *text, int64_t *since_ms, json_t **alarm,
                                    char *errbuf)
{
    *since_ms = 0;
    *alarm = NULL;
    json_error_t je;
    json_t *root = text ? json_loads(text, 0, &je) : NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "series state is not a JSON object");
        return NULL;
    }
    struct detector *d = NULL;
    if (json_integer_value(json_object_get(root, "version")) != STATE_VERSION) {
        assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "series state has an unknown version");
        goto out;
    }
    d = detector_from_json(json_object_get(root, "detector"), errbuf);
    if (!d)
        goto out;
    *since_ms = json_integer_value(json_object_get(root, "since_ms"));
    json_t *a = json_object_get(root, "alarm");
    if (json_is_object(a))
        *alarm = json_incref(a);
out:
    json_decref(root);
    return d;
}

static char *state_dump(const struct entry *e)
{
    json_t *root =
        json_pack("{s:i,s:o,s:I,s:O}", "version", STATE_VERSION, "detector", detector_to_json(e->d),
                  "since_ms", (json_int_t)e->since_ms, "alarm", e->alarm ? e->alarm : json_null());
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

/* An alarm history entry / notification detail for a detector event. */
static json_t *event_json(const struct detector_event *ev, int64_t at_ms)
{
    char when[25];
    clock_format_iso8601_ms(at_ms, when);
    return json_pack("{s:s,s:s,s:I,s:I,s:o,s:o,s:o,s:o,s:o,s:o}", "event",
                     ev->state == DETECTOR_ALARM ? "raised" : "cleared", "time", when, "index",
                     (json_int_t)ev->index, "change_point", (json_int_t)ev->change_point,
                     "baseline_mean", num_or_null(ev->baseline_mean), "current_mean",
                     num_or_null(ev->current_mean), "effect_size", num_or_null(ev->effect_size),
                     "p_value", num_or_null(ev->p_value), "statistic", num_or_null(ev->statistic),
                     "threshold", num_or_null(ev->threshold));
}

static void fill_row(struct store_series *row, const struct entry *e, const char *state_json)
{
    *row = (struct store_series){.app = e->app,
                                 .rubric = e->rubric,
                                 .model_id = e->model_id,
                                 .rubric_version = e->rubric_version,
                                 .judge_model = e->judge_model,
                                 .state_json = state_json};
}

/* ------------------------------------------------------------- lifecycle */

enum assay_err series_new(const struct series_options *o, struct series **out, char *errbuf)
{
    *out = NULL;
    if (!o || !o->store)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "series: a store is required");
    struct detector_config cfg;
    detector_config_init(&cfg);
    const json_t *section = o->monitor ? json_object_get(o->monitor, "detector") : NULL;
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = ASSAY_OK;
    if (section && (err = detector_config_from_json(&cfg, section, detail)) != ASSAY_OK)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "monitor.detector: %s", detail);
    if ((err = detector_config_check(&cfg, detail)) != ASSAY_OK)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "monitor.detector: %s", detail);
    struct series *reg = xcalloc(1, sizeof *reg);
    reg->o = *o;
    if (!reg->o.clock)
        reg->o.clock = clock_system();
    reg->cfg = cfg;
    pthread_mutex_init(&reg->mu, NULL);
    *out = reg;
    return ASSAY_OK;
}

void series_free(struct series *reg)
{
    if (!reg)
        return;
    for (size_t b = 0; b < BUCKETS; b++)
        for (struct entry *e = reg->buckets[b], *n; e; e = n) {
            n = e->next;
            entry_free(e);
        }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static void log_restored(const struct entry *e)
{
    struct detector_summary s;
    detector_summary_get(e->d, &s);
    LOG_INFO("series.restored", LOG_S("app", e->app), LOG_S("rubric", e->rubric),
             LOG_S("model_id", e->model_id), LOG_S("state", detector_state_name(s.state)),
             LOG_I("count", s.count));
}

/*
 * The entry for a stored row (restored), or a fresh one when its state cannot
 * be read (logged: better a new warm-up than a series stuck forever).
 */
static struct entry *entry_from_row(struct series *reg, const struct store_series *row)
{
    struct entry *e = entry_new(row->app, row->rubric, nz(row->model_id));
    e->rubric_version = xstrdup(nz(row->rubric_version));
    e->judge_model = xstrdup(nz(row->judge_model));
    char detail[ASSAY_ERRBUF_SIZE] = "";
    e->d = state_parse(row->state_json, &e->since_ms, &e->alarm, detail);
    if (!e->d) {
        LOG_WARN("series.state_unreadable", LOG_S("app", e->app), LOG_S("rubric", e->rubric),
                 LOG_S("model_id", e->model_id), LOG_S("detail", detail),
                 LOG_S("effect", "the series starts a new baseline"));
        e->d = detector_new(&reg->cfg);
        e->since_ms = clock_now_ms(reg->o.clock);
    }
    return e;
}

/*
 * Under mu: the series, from memory or the store. *fresh is set when it is
 * not stored yet (the caller inserts it only after a commit). NULL with an
 * error when the store cannot be read.
 */
static struct entry *get_entry(struct series *reg, const char *app, const char *rubric,
                               const char *model_id, bool *fresh, enum assay_err *err, char *errbuf)
{
    *fresh = false;
    *err = ASSAY_OK;
    struct entry *e = find(reg, app, rubric, model_id);
    if (e)
        return e;
    struct store_series_list l = {0};
    *err = store_series_get(reg->o.store, app, rubric, model_id, &l, errbuf);
    if (*err == ASSAY_OK && l.n == 1) {
        e = entry_from_row(reg, &l.series[0]);
        log_restored(e);
        insert(reg, e);
    } else if (*err == ASSAY_ERR_NOT_FOUND || (*err == ASSAY_OK && l.n == 0)) {
        *err = ASSAY_OK;
        e = entry_new(app, rubric, model_id);
        e->d = detector_new(&reg->cfg);
        e->since_ms = clock_now_ms(reg->o.clock);
        *fresh = true;
    }
    store_series_list_clear(&l);
    return e;
}

enum assay_err series_restore_all(struct series *reg, char *errbuf)
{
    struct store_series_list l = {0};
    pthread_mutex_lock(&reg->mu);
    enum assay_err err = store_series_list(reg->o.store, &l, errbuf);
    size_t in_alarm = 0;
    for (size_t i = 0; err == ASSAY_OK && i < l.n; i++) {
        const struct store_series *x = &l.series[i];
        struct entry *e = find(reg, x->app, x->rubric, nz(x->model_id));
        if (!e) {
            e = entry_from_row(reg, x);
            insert(reg, e);
            log_restored(e);
        }
        bool alarm = detector_state_get(e->d) == DETECTOR_ALARM;
        in_alarm += alarm;
        if (reg->o.publish)
            publish_regression_set(reg->o.publish, e->app, e->rubric, e->model_id, alarm ? 1 : 0,
                                   clock_now_ms(reg->o.clock));
    }
    pthread_mutex_unlock(&reg->mu);
    if (err == ASSAY_OK)
        LOG_INFO("series.loaded", LOG_I("series", l.n), LOG_I("in_alarm", in_alarm));
    store_series_list_clear(&l);
    return err;
}

/* Restarts e's baseline (under mu); returns whether it was in alarm. */
static bool restart(struct series *reg, struct entry *e)
{
    bool was_alarm = detector_state_get(e->d) == DETECTOR_ALARM;
    detector_rebaseline(e->d);
    e->since_ms = clock_now_ms(reg->o.clock);
    json_decref(e->alarm);
    e->alarm = NULL;
    return was_alarm;
}

static json_t *rebaseline_json(const struct entry *e, const char *reason, int64_t at_ms,
                               bool was_alarm)
{
    char when[25];
    clock_format_iso8601_ms(at_ms, when);
    struct detector_summary s;
    detector_summary_get(e->d, &s);
    return json_pack("{s:s,s:s,s:s,s:I,s:b,s:s,s:s}", "event", "rebaseline", "reason", reason,
                     "time", when, "index", (json_int_t)s.count, "was_alarm", was_alarm,
                     "rubric_version", e->rubric_version, "judge_model", e->judge_model);
}

/* -------------------------------------------------------------- verdicts */

enum assay_err series_job_complete(struct series *reg, const struct series_job *j, int *recorded,
                                   struct series_outcome *out, char *errbuf)
{
    struct series_outcome res = {.in_alarm = -1};
    int rec = 0;
    enum assay_err err = ASSAY_OK;
    const struct store_verdict *v = j->verdict;
    struct store_completion c = {.job_id = j->job_id, .verdict = v};
    if (v->unscorable || !isfinite(v->score) || !j->app || !j->rubric) {
        err = store_job_complete(reg->o.store, &c, &rec, errbuf);
        goto out;
    }
    const char *model_id = nz(j->model_id);
    const char *version = nz(v->rubric_version), *judge = nz(v->judge);
    double x = v->score < 0 ? 0 : v->score > 1 ? 1 : v->score;

    pthread_mutex_lock(&reg->mu);
    bool fresh = false;
    struct entry *e = get_entry(reg, j->app, j->rubric, model_id, &fresh, &err, errbuf);
    if (!e) {
        /* Not completed: the job stays `judging` and is judged again after a restart. */
        pthread_mutex_unlock(&reg->mu);
        goto out;
    }
    int64_t now = clock_now_ms(reg->o.clock);
    char *old_version = NULL, *old_judge = NULL;
    json_t *detail = NULL;
    bool was_alarm = false;
    if (fresh) {
        e->rubric_version = xstrdup(version);
        e->judge_model = xstrdup(judge);
    } else if (strcmp(e->rubric_version, version) != 0 || strcmp(e->judge_model, judge) != 0) {
        bool rv = strcmp(e->rubric_version, version) != 0;
        bool jm = strcmp(e->judge_model, judge) != 0;
        old_version = xstrdup(e->rubric_version);
        old_judge = xstrdup(e->judge_model);
        was_alarm = restart(reg, e);
        set_str(&e->rubric_version, version);
        set_str(&e->judge_model, judge);
        res.rebaselined = true;
        detail = rebaseline_json(e,
                                 rv && jm ? "rubric_version_and_judge_model"
                                 : rv     ? "rubric_version"
                                          : "judge_model",
                                 now, was_alarm);
        json_object_set_new(detail, "previous_rubric_version", json_string(old_version));
        json_object_set_new(detail, "previous_judge_model", json_string(old_judge));
    }
    struct detector_event ev;
    memset(&ev, 0, sizeof ev);
    res.changed = detector_update(e->d, x, &ev) == 1;
    if (res.changed) {
        /* Never both: a rebaselined detector is warming up. */
        json_decref(detail);
        detail = event_json(&ev, now);
        e->since_ms = now;
        json_decref(e->alarm);
        e->alarm = ev.state == DETECTOR_ALARM ? json_incref(detail) : NULL;
    }
    res.in_alarm = detector_state_get(e->d) == DETECTOR_ALARM;
    char *state = state_dump(e);
    char *detail_text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    struct store_series row;
    fill_row(&row, e, state);
    struct store_alarm alarm = {.app = e->app,
                                .rubric = e->rubric,
                                .model_id = e->model_id,
                                .raised = res.changed && ev.state == DETECTOR_ALARM,
                                .at_ms = now,
                                .detail_json = detail_text};
    c.series = &row;
    c.alarm = detail ? &alarm : NULL;
    err = store_job_complete(reg->o.store, &c, &rec, errbuf);
    free(state);
    free(detail_text);
    json_decref(detail);
    if (err != ASSAY_OK || !rec) {
        /* Nothing was written: forget what this verdict did to the series. */
        if (fresh)
            entry_free(e);
        else
            drop(reg, e);
        res = (struct series_outcome){.in_alarm = -1};
        pthread_mutex_unlock(&reg->mu);
        free(old_version);
        free(old_judge);
        goto out;
    }
    if (fresh) {
        insert(reg, e);
        LOG_INFO("series.created", LOG_S("app", j->app), LOG_S("rubric", j->rubric),
                 LOG_S("model_id", model_id), LOG_S("rubric_version", version),
                 LOG_S("judge_model", judge));
    }
    pthread_mutex_unlock(&reg->mu);

    if (res.rebaselined) {
        LOG_WARN("series.rebaselined", LOG_S("app", j->app), LOG_S("rubric", j->rubric),
                 LOG_S("model_id", model_id), LOG_S("reason", "judge_changed"),
                 LOG_S("previous_rubric_version", old_version), LOG_S("rubric_version", version),
                 LOG_S("previous_judge_model", old_judge), LOG_S("judge_model", judge),
                 LOG_B("was_alarm", was_alarm));
        if (was_alarm && reg->o.publish)
            publish_regression_set(reg->o.publish, j->app, j->rubric, model_id, 0, now);
    }
    free(old_version);
    free(old_judge);
    if (res.changed) {
        bool raised = ev.state == DETECTOR_ALARM;
        LOG_AT(raised ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
               raised ? "series.alarm_raised" : "series.alarm_cleared", LOG_S("app", j->app),
               LOG_S("rubric", j->rubric), LOG_S("model_id", model_id), LOG_I("index", ev.index),
               LOG_I("change_point", ev.change_point), LOG_F("baseline_mean", ev.baseline_mean),
               LOG_F("current_mean", ev.current_mean), LOG_F("effect_size", ev.effect_size),
               LOG_F("p_value", ev.p_value), LOG_F("statistic", ev.statistic),
               LOG_F("threshold", ev.threshold));
        if (reg->o.notify) {
            struct notify_series ns = {.app = j->app, .rubric = j->rubric, .model_id = model_id};
            enum assay_err nerr = notify_alarm_post(reg->o.notify, &ns, now, &ev);
            if (nerr != ASSAY_OK)
                LOG_WARN("series.notify_refused", LOG_S("app", j->app), LOG_S("rubric", j->rubric),
                         LOG_S("error", assay_err_name(nerr)));
        }
    }
out:
    if (recorded)
        *recorded = rec;
    if (out)
        *out = res;
    return err;
}

/* ------------------------------------------------------------ rebaseline */

static bool matches(const struct series_filter *f, const struct store_series *x)
{
    if (f->app && strcmp(f->app, x->app) != 0)
        return false;
    if (f->rubric && strcmp(f->rubric, x->rubric) != 0)
        return false;
    if (f->model_id && strcmp(f->model_id, nz(x->model_id)) != 0)
        return false;
    return !f->allows || f->allows(f->allows_ctx, x->app);
}

enum assay_err series_rebaseline(struct series *reg, const struct series_filter *f,
                                 json_t **affected, char *errbuf)
{
    *affected = json_array();
    struct store_series_list l = {0};
    pthread_mutex_lock(&reg->mu);
    enum assay_err err = store_series_list(reg->o.store, &l, errbuf);
    for (size_t i = 0; err == ASSAY_OK && i < l.n; i++) {
        const struct store_series *x = &l.series[i];
        if (!matches(f, x))
            continue;
        struct entry *e = find(reg, x->app, x->rubric, nz(x->model_id));
        if (!e) {
            e = entry_from_row(reg, x);
            insert(reg, e);
        }
        bool was_alarm = restart(reg, e);
        int64_t now = clock_now_ms(reg->o.clock);
        char *state = state_dump(e);
        struct store_series row;
        fill_row(&row, e, state);
        err = store_series_put(reg->o.store, &row, errbuf);
        if (err == ASSAY_OK) {
            json_t *detail = rebaseline_json(e, "requested", now, was_alarm);
            char *text = json_dumps(detail, JSON_COMPACT);
            json_decref(detail);
            struct store_alarm a = {.app = e->app,
                                    .rubric = e->rubric,
                                    .model_id = e->model_id,
                                    .raised = false,
                                    .at_ms = now,
                                    .detail_json = text};
            enum assay_err aerr = store_alarm_append(reg->o.store, &a, NULL, NULL);
            if (aerr != ASSAY_OK)
                LOG_WARN("series.history_not_written", LOG_S("app", e->app),
                         LOG_S("rubric", e->rubric), LOG_S("error", assay_err_name(aerr)));
            free(text);
            row.updated_ms = now;
            json_array_append_new(*affected, series_json(&row));
            LOG_WARN("series.rebaselined", LOG_S("app", e->app), LOG_S("rubric", e->rubric),
                     LOG_S("model_id", e->model_id), LOG_S("reason", "requested"),
                     LOG_B("was_alarm", was_alarm));
            if (was_alarm && reg->o.publish)
                publish_regression_set(reg->o.publish, e->app, e->rubric, e->model_id, 0, now);
        } else {
            drop(reg, e);
        }
        free(state);
    }
    pthread_mutex_unlock(&reg->mu);
    store_series_list_clear(&l);
    if (err != ASSAY_OK) {
        json_decref(*affected);
        *affected = NULL;
    }
    return err;
}

/* ---------------------------------------------------------------- listing */

json_t *series_json(const struct store_series *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "app", json_string(x->app));
    json_object_set_new(o, "rubric", json_string(x->rubric));
    json_object_set_new(o, "model_id", json_string(nz(x->model_id)));
    int64_t since_ms = 0;
    json_t *alarm = NULL;
    char detail[ASSAY_ERRBUF_SIZE] = "";
    struct detector *d = state_parse(x->state_json, &since_ms, &alarm, detail);
    if (d) {
        struct detector_summary s;
        detector_summary_get(d, &s);
        uint64_t from = s.since;
        if (s.state == DETECTOR_ALARM && alarm)
            from = (uint64_t)json_integer_value(json_object_get(alarm, "change_point"));
        char when[25];
        clock_format_iso8601_ms(since_ms, when);
        json_object_set_new(o, "state", json_string(detector_state_name(s.state)));
        json_object_set_new(o, "kind", json_string(detector_kind_name(s.kind)));
        json_object_set_new(o, "count", json_integer((json_int_t)s.count));
        json_object_set_new(o, "since", json_integer((json_int_t)s.since));
        json_object_set_new(o, "since_time", json_string(when));
        json_object_set_new(o, "baseline_mean", num_or_null(s.baseline_mean));
        json_object_set_new(o, "baseline_sd", num_or_null(s.baseline_sd));
        json_object_set_new(o, "current_mean", num_or_null(detector_recent_mean(d, from)));
        json_object_set_new(o, "statistic",
                            s.state == DETECTOR_WARMING_UP ? json_null() : json_real(s.statistic));
        json_object_set_new(o, "threshold", num_or_null(s.threshold));
        json_t *p = s.state == DETECTOR_ALARM && alarm ? json_object_get(alarm, "p_value") : NULL;
        json_object_set_new(o, "p_value", p ? json_incref(p) : json_null());
        json_object_set_new(o, "alarm",
                            s.state == DETECTOR_ALARM && alarm ? json_incref(alarm) : json_null());
        detector_free(d);
    } else {
        json_object_set_new(o, "state", json_string("unknown"));
    }
    json_decref(alarm);
    json_object_set_new(o, "rubric_version",
                        x->rubric_version ? json_string(x->rubric_version) : json_null());
    json_object_set_new(o, "judge_model",
                        x->judge_model ? json_string(x->judge_model) : json_null());
    char updated[25];
    clock_format_iso8601_ms(x->updated_ms, updated);
    json_object_set_new(o, "updated", json_string(updated));
    return o;
}
