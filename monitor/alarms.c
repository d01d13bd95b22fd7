/*
 * monitor/alarms: the "alarms" config section turned into PutMetricAlarm
 * requests (the planner), and those requests applied idempotently (the
 * reconciler). Called by server/cmd_alarms.c and at service start; the schema
 * is in docs/alarms.md, the contract in alarms.h.
 */
#include "monitor/alarms.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DESCRIBE_CHUNK 100

/* ------------------------------------------------------------------------ */
/* Schema checks, one layer at a time, so that errors name the key path     */

static enum assay_err bad(char *errbuf, const char *path, const char *key, const char *why)
{
    return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s.%s: %s", path, key, why);
}

static int in_list(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return 1;
    return 0;
}

static int valid_alarm_period(json_int_t p)
{
    return p == 10 || p == 20 || p == 30 || (p >= 60 && p % 60 == 0 && p <= 86400);
}

static enum assay_err check_int(const json_t *v, const char *path, const char *key, json_int_t lo,
                                json_int_t hi, char *errbuf)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        char why[96];
        snprintf(why, sizeof why, "must be an integer from %lld to %lld", (long long)lo,
                 (long long)hi);
        return bad(errbuf, path, key, why);
    }
    return ASSAY_OK;
}

static enum assay_err check_actions(const json_t *v, const char *path, const char *key,
                                    char *errbuf)
{
    if (!json_is_array(v) || json_array_size(v) > 5)
        return bad(errbuf, path, key, "must be an array of at most 5 action ARNs");
    for (size_t i = 0; i < json_array_size(v); i++) {
        const char *s = json_string_value(json_array_get(v, i));
        if (!s || strncmp(s, "arn:", 4) != 0 || strlen(s) > 1024)
            return bad(errbuf, path, key, "each action must be an ARN (\"arn:aws:sns:...\")");
    }
    return ASSAY_OK;
}

static enum assay_err check_window(const json_t *obj, const char *path, char *errbuf)
{
    static const char *const known[] = {
        "enabled",  "evaluation_periods", "datapoints_to_alarm", "threshold",  "statistic",
        "period_s", "datasets",           "alarm_actions",       "ok_actions", "treat_missing_data",
        NULL};
    if (!json_is_object(obj))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: must be an object", path);
    const char *key;
    const json_t *v;
    enum assay_err err = ASSAY_OK;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!in_list(key, known))
            return bad(errbuf, path, key, "unknown key");
        int is_score = strstr(path, ".score") != NULL, is_golden = strstr(path, "golden") != NULL;
        if (strcmp(key, "enabled") == 0 && !json_is_boolean(v))
            return bad(errbuf, path, key, "must be true or false");
        if (strcmp(key, "evaluation_periods") == 0 || strcmp(key, "datapoints_to_alarm") == 0)
            err = check_int(v, path, key, 1, 1440, errbuf);
        else if (strcmp(key, "threshold") == 0) {
            if (!is_score)
                return bad(errbuf, path, key, "only the score alarm has a threshold");
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
                return bad(errbuf, path, key, "must be a number from 0 to 1");
        } else if (strcmp(key, "statistic") == 0) {
            static const char *const stats[] = {"Average", "Minimum", "Maximum", "p10",
                                                "p25",     "p50",     "p90",     NULL};
            if (!is_score || !json_is_string(v) || !in_list(json_string_value(v), stats))
                return bad(errbuf, path, key,
                           "score.statistic must be Average, Minimum, Maximum, p10, p25, p50 "
                           "or p90");
        } else if (strcmp(key, "period_s") == 0 || strcmp(key, "datasets") == 0 ||
                   strcmp(key, "alarm_actions") == 0 || strcmp(key, "ok_actions") == 0 ||
                   strcmp(key, "treat_missing_data") == 0) {
            if (!is_golden)
                return bad(errbuf, path, key, "unknown key");
        }
        if (err)
            return err;
    }
    return ASSAY_OK;
}

static enum assay_err check_layer(const json_t *obj, const char *path, int level, char *errbuf)
{
    /* level 0: top, 1: apps.APP, 2: apps.APP.rubrics.RUBRIC */
    static const char *const known[] = {
        "enabled",  "prefix",     "alarm_actions", "ok_actions", "treat_missing_data",
        "period_s", "regression", "score",         "apps",       "golden",
        "rubrics",  NULL};
    if (!json_is_object(obj))
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: must be an object", path);
    const char *key;
    const json_t *v;
    enum assay_err err;
    json_object_foreach((json_t *)obj, key, v)
    {
        char sub[512];
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (!in_list(key, known) || (strcmp(key, "apps") == 0 && level != 0) ||
            (strcmp(key, "golden") == 0 && level != 0) ||
            (strcmp(key, "rubrics") == 0 && level != 1) ||
            (strcmp(key, "prefix") == 0 && level != 0))
            return bad(errbuf, path, key, "unknown key here (see docs/alarms.md)");
        if (strcmp(key, "enabled") == 0 && !json_is_boolean(v))
            return bad(errbuf, path, key, "must be true or false");
        if (strcmp(key, "prefix") == 0) {
            const char *s = json_string_value(v);
            if (!s || !*s || strlen(s) > 64)
                return bad(errbuf, path, key, "must be a string of 1-64 characters");
        }
        if ((strcmp(key, "alarm_actions") == 0 || strcmp(key, "ok_actions") == 0) &&
            (err = check_actions(v, path, key, errbuf)))
            return err;
        if (strcmp(key, "treat_missing_data") == 0) {
            static const char *const tmd[] = {"breaching", "notBreaching", "ignore", "missing",
                                              NULL};
            if (!json_is_string(v) || !in_list(json_string_value(v), tmd))
                return bad(errbuf, path, key, "must be breaching, notBreaching, ignore or missing");
        }
        if (strcmp(key, "period_s") == 0 &&
            (!json_is_integer(v) || !valid_alarm_period(json_integer_value(v))))
            return bad(errbuf, path, key, "must be 10, 20, 30 or a multiple of 60 up to 86400");
        if ((strcmp(key, "regression") == 0 || strcmp(key, "score") == 0) &&
            (err = check_window(v, sub, errbuf)))
            return err;
        if (strcmp(key, "golden") == 0) {
            if ((err = check_window(v, sub, errbuf)))
                return err;
            const json_t *ds = json_object_get(v, "datasets");
            if (ds && !json_is_array(ds))
                return bad(errbuf, sub, "datasets", "must be an array");
            for (size_t i = 0; ds && i < json_array_size(ds); i++) {
                const json_t *d = json_array_get(ds, i);
                if (!json_is_object(d) || !json_string_value(json_object_get(d, "dataset")) ||
                    !json_string_value(json_object_get(d, "rubric")) ||
                    !json_string_value(json_object_get(d, "target_model_id")))
                    return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                            "%s.datasets[%zu]: must be {\"dataset\", "
                                            "\"rubric\", \"target_model_id\"} strings",
                                            sub, i);
            }
            if ((v = json_object_get(v, "period_s")) &&
                (!json_is_integer(v) || !valid_alarm_period(json_integer_value(v))))
                return bad(errbuf, sub, "period_s",
                           "must be 10, 20, 30 or a multiple of 60 up to 86400");
        }
        if (strcmp(key, "apps") == 0) {
            if (!json_is_object(v))
                return bad(errbuf, path, key, "must be an object of app names");
            const char *app;
            const json_t *a;
            json_object_foreach((json_t *)v, app, a)
            {
                char p2[512];
                snprintf(p2, sizeof p2, "%s.apps.%s", path, app);
                if ((err = check_layer(a, p2, 1, errbuf)))
                    return err;
            }
        }
        if (strcmp(key, "rubrics") == 0) {
            if (!json_is_object(v))
                return bad(errbuf, path, key, "must be an object of rubric names");
            const char *r;
            const json_t *a;
            json_object_foreach((json_t *)v, r, a)
            {
                char p2[512];
                snprintf(p2, sizeof p2, "%s.rubrics.%s", path, r);
                if ((err = check_layer(a, p2, 2, errbuf)))
                    return err;
            }
        }
    }
    return ASSAY_OK;
}

/* ------------------------------------------------------------------------ */
/* Merged settings                                                          */

/* dst gets src's members; objects merge member by member, the rest replace. */
static void merge(json_t *dst, const json_t *src, int top)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)src, key, v)
    {
        if (top &&
            (strcmp(key, "apps") == 0 || strcmp(key, "rubrics") == 0 || strcmp(key, "golden") == 0))
            continue;
        json_t *cur = json_object_get(dst, key);
        if (json_is_object(cur) && json_is_object(v)) {
            merge(cur, v, 0);
        } else {
            json_object_set_new(dst, key, json_deep_copy(v));
        }
    }
}

static int get_bool(const json_t *o, const char *key, int def)
{
    const json_t *v = json_object_get(o, key);
    return v ? json_is_true(v) : def;
}

static int64_t get_int(const json_t *o, const char *key, int64_t def)
{
    const json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

static const char *get_str(const json_t *o, const char *key, const char *def)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

/* ------------------------------------------------------------------------ */
/* Plan                                                                     */

void alarms_plan_init(struct alarms_plan *plan)
{
    memset(plan, 0, sizeof *plan);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void planned_clear(struct alarms_planned *a)
{
    free(a->kind);
    free(a->name);
    free(a->description);
    free(a->metric);
    for (size_t i = 0; i < 3; i++)
        free(a->dim_values[i]);
    strv_free(a->alarm_actions, a->alarm.n_alarm_actions);
    strv_free(a->ok_actions, a->alarm.n_ok_actions);
    free(a->statistic);
    free(a->comparison);
    free(a->treat_missing);
}

void alarms_plan_clear(struct alarms_plan *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->n; i++)
        planned_clear(&plan->alarms[i]);
    free(plan->alarms);
    free(plan->ns);
    memset(plan, 0, sizeof *plan);
}

static char **strv_of(const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    if (*n == 0)
        return NULL;
    char **v = xcalloc(*n, sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = xstrdup(json_string_value(json_array_get(arr, i)));
    return v;
}

struct spec {
    const char *kind, *metric, *statistic, *comparison, *treat_missing;
    const char *dim_names[3];
    const char *dim_values[3];
    size_t n_dims;
    int64_t period_s;
    int evaluation_periods, datapoints;
    double threshold;
    const json_t *alarm_actions, *ok_actions;
    char name[640];
    char description[1400];
};

static enum assay_err plan_add(struct alarms_plan *plan, const struct spec *s, char *errbuf)
{
    for (size_t i = 0; i < plan->n; i++)
        if (strcmp(plan->alarms[i].name, s->name) == 0)
            return ASSAY_OK; /* the same series named twice */
    plan->alarms = xrealloc(plan->alarms, (plan->n + 1) * sizeof *plan->alarms);
    /* the alarms moved: their dimension views point into themselves */
    for (size_t i = 0; i < plan->n; i++)
        plan->alarms[i].alarm.dimensions = plan->alarms[i].dims;
    struct alarms_planned *a = &plan->alarms[plan->n++];
    memset(a, 0, sizeof *a);
    a->kind = xstrdup(s->kind);
    a->name = xstrdup(s->name);
    a->description = xstrdup(s->description);
    a->metric = xstrdup(s->metric);
    for (size_t i = 0; i < s->n_dims; i++) {
        a->dim_values[i] = xstrdup(s->dim_values[i]);
        a->dims[i] = (struct cloudwatch_dimension){s->dim_names[i], a->dim_values[i]};
    }
    a->statistic = xstrdup(s->statistic);
    a->comparison = xstrdup(s->comparison);
    a->treat_missing = xstrdup(s->treat_missing);
    size_t n_alarm = 0, n_ok = 0;
    a->alarm_actions = strv_of(s->alarm_actions, &n_alarm);
    a->ok_actions = strv_of(s->ok_actions, &n_ok);
    a->alarm = (struct cloudwatch_alarm){.alarm_name = a->name,
                                         .alarm_description = a->description,
                                         .ns = plan->ns,
                                         .metric_name = a->metric,
                                         .dimensions = a->dims,
                                         .n_dimensions = s->n_dims,
                                         .statistic = a->statistic,
                                         .period_s = s->period_s,
                                         .evaluation_periods = s->evaluation_periods,
                                         .datapoints_to_alarm = s->datapoints,
                                         .threshold = s->threshold,
                                         .comparison_operator = a->comparison,
                                         .treat_missing_data = a->treat_missing,
                                         .alarm_actions = (const char *const *)a->alarm_actions,
                                         .n_alarm_actions = n_alarm,
                                         .ok_actions = (const char *const *)a->ok_actions,
                                         .n_ok_actions = n_ok,
                                         .actions_enabled = 1};
    char detail[ASSAY_ERRBUF_SIZE];
    if (cloudwatch_alarm_validate(&a->alarm, detail) != ASSAY_OK)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "alarm %s: %s", s->name, detail);
    return ASSAY_OK;
}

/* "0.7" for 0.7: the shortest text that reads back as the same number. */
static void format_number(double v, char *out, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static enum assay_err plan_target(struct alarms_plan *plan, const json_t *cfg,
                                  const struct alarms_target *t, int64_t default_period,
                                  const char *prefix, char *errbuf)
{
    json_t *m = json_object();
    json_t *empty = json_array();
    enum assay_err err = ASSAY_OK;
    if (cfg) {
        merge(m, cfg, 1);
        const json_t *app = json_object_get(json_object_get(cfg, "apps"), t->app);
        if (app) {
            merge(m, app, 1);
            const json_t *r = json_object_get(json_object_get(app, "rubrics"), t->rubric);
            if (r)
                merge(m, r, 1);
        }
    }
    if (!get_bool(m, "enabled", 1))
        goto out;
    int model = t->model_id && *t->model_id;
    struct spec s = {.dim_names = {"App", "Rubric", "ModelId"},
                     .dim_values = {t->app, t->rubric, t->model_id},
                     .n_dims = model ? 3 : 2,
                     .period_s = get_int(m, "period_s", default_period),
                     .treat_missing = get_str(m, "treat_missing_data", "notBreaching"),
                     .alarm_actions = json_object_get(m, "alarm_actions"),
                     .ok_actions = json_object_get(m, "ok_actions")};
    if (!s.alarm_actions)
        s.alarm_actions = empty;
    if (!s.ok_actions)
        s.ok_actions = empty;
    char series[600];
    if (model)
        snprintf(series, sizeof series, "%s-%s-%s-%s", prefix, t->app, t->rubric, t->model_id);
    else
        snprintf(series, sizeof series, "%s-%s-%s", prefix, t->app, t->rubric);
    char where[600];
    snprintf(where, sizeof where, "app %s, rubric %s%s%s", t->app, t->rubric,
             model ? ", model " : "", model ? t->model_id : "");

    const json_t *reg = json_object_get(m, "regression");
    if (get_bool(reg, "enabled", 1)) {
        s.kind = "regression";
        s.metric = "QualityRegression";
        s.statistic = "Maximum";
        s.comparison = "GreaterThanOrEqualToThreshold";
        s.threshold = 1;
        s.evaluation_periods = (int)get_int(reg, "evaluation_periods", 1);
        s.datapoints = (int)get_int(reg, "datapoints_to_alarm", s.evaluation_periods);
        snprintf(s.name, sizeof s.name, "%s-regression", series);
        snprintf(s.description, sizeof s.description,
                 ALARMS_MARKER " (alarms config): the regression detector raised an alarm for "
                               "%s. Edit the config, not this alarm.",
                 where);
        if (s.datapoints > s.evaluation_periods) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "alarms (%s): regression.datapoints_to_alarm exceeds "
                                   "evaluation_periods",
                                   where);
            goto out;
        }
        if ((err = plan_add(plan, &s, errbuf)))
            goto out;
    }
    const json_t *score = json_object_get(m, "score");
    const json_t *thr = json_object_get(score, "threshold");
    if (thr && get_bool(score, "enabled", 1)) {
        s.kind = "score";
        s.metric = "QualityScore";
        s.statistic = get_str(score, "statistic", "Average");
        s.comparison = "LessThanThreshold";
        s.threshold = json_number_value(thr);
        s.evaluation_periods = (int)get_int(score, "evaluation_periods", 5);
        s.datapoints = (int)get_int(score, "datapoints_to_alarm", s.evaluation_periods);
        snprintf(s.name, sizeof s.name, "%s-score-low", series);
        char num[32];
        format_number(s.threshold, num, sizeof num);
        snprintf(s.description, sizeof s.description,
                 ALARMS_MARKER " (alarms config): QualityScore %s below %s in %d of %d periods "
                               "for %s. Edit the config, not this alarm.",
                 s.statistic, num, s.datapoints, s.evaluation_periods, where);
        if (s.datapoints > s.evaluation_periods) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "alarms (%s): score.datapoints_to_alarm exceeds "
                                   "evaluation_periods",
                                   where);
            goto out;
        }
        err = plan_add(plan, &s, errbuf);
    }
out:
    json_decref(m);
    json_decref(empty);
    return err;
}

static enum assay_err plan_golden(struct alarms_plan *plan, const json_t *cfg, const char *prefix,
                                  char *errbuf)
{
    const json_t *g = json_object_get(cfg, "golden");
    if (!g || !get_bool(cfg, "enabled", 1) || !get_bool(g, "enabled", 1))
        return ASSAY_OK;
    json_t *empty = json_array();
    enum assay_err err = ASSAY_OK;
    const json_t *ds = json_object_get(g, "datasets");
    for (size_t i = 0; !err && i < json_array_size(ds); i++) {
        const json_t *d = json_array_get(ds, i);
        struct spec s = {.kind = "golden",
                         .metric = "GoldenSetRegression",
                         .statistic = "Maximum",
                         .comparison = "GreaterThanOrEqualToThreshold",
                         .threshold = 1,
                         .dim_names = {"Dataset", "Rubric", "TargetModelId"},
                         .dim_values = {jsonutil_str(d, "dataset"), jsonutil_str(d, "rubric"),
                                        jsonutil_str(d, "target_model_id")},
                         .n_dims = 3,
                         .period_s = get_int(g, "period_s", 3600),
                         .evaluation_periods = (int)get_int(g, "evaluation_periods", 24),
                         .treat_missing =
                             get_str(g, "treat_missing_data",
                                     get_str(cfg, "treat_missing_data", "notBreaching")),
                         .alarm_actions = json_object_get(g, "alarm_actions"),
                         .ok_actions = json_object_get(g, "ok_actions")};
        if (!s.alarm_actions)
            s.alarm_actions = json_object_get(cfg, "alarm_actions");
        if (!s.ok_actions)
            s.ok_actions = json_object_get(cfg, "ok_actions");
        if (!s.alarm_actions)
            s.alarm_actions = empty;
        if (!s.ok_actions)
            s.ok_actions = empty;
        s.datapoints = (int)get_int(g, "datapoints_to_alarm", 1);
        snprintf(s.name, sizeof s.name, "%s-golden-%s-%s-%s-regression", prefix, s.dim_values[0],
                 s.dim_values[1], s.dim_values[2]);
        snprintf(s.description, sizeof s.description,
                 ALARMS_MARKER " (alarms config): golden set %s, rubric %s, target model %s "
                               "regressed in %d of the last %d periods. Edit the config, not "
                               "this alarm.",
                 s.dim_values[0], s.dim_values[1], s.dim_values[2], s.datapoints,
                 s.evaluation_periods);
        if (s.datapoints > s.evaluation_periods)
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "alarms.golden: datapoints_to_alarm exceeds "
                                   "evaluation_periods");
        else
            err = plan_add(plan, &s, errbuf);
    }
    json_decref(empty);
    return err;
}

enum assay_err alarms_plan_build(const json_t *cfg, const char *ns, int64_t metrics_period_s,
                                 const struct alarms_target *targets, size_t n,
                                 struct alarms_plan *plan, char *errbuf)
{
    alarms_plan_init(plan);
    enum assay_err err = ASSAY_OK;
    if (cfg && (err = check_layer(cfg, "alarms", 0, errbuf)))
        return err;
    plan->ns = xstrdup(ns ? ns : "Assay");
    /* The alarm's period: the publishing period when CloudWatch accepts it
     * for an alarm, else the next one it does. */
    int64_t period = metrics_period_s <= 10   ? 10
                     : metrics_period_s <= 20 ? 20
                     : metrics_period_s <= 30 ? 30
                                              : (metrics_period_s + 59) / 60 * 60;
    const char *prefix = get_str(cfg, "prefix", "assay");
    for (size_t i = 0; !err && i < n; i++) {
        if (!targets[i].app || !targets[i].rubric) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                   "alarm target %zu: app and rubric are required", i);
            break;
        }
        err = plan_target(plan, cfg, &targets[i], period, prefix, errbuf);
    }
    if (!err && cfg)
        err = plan_golden(plan, cfg, prefix, errbuf);
    if (err)
        alarms_plan_clear(plan);
    return err;
}

void alarms_targets_from_config(const json_t *cfg, struct alarms_target **targets, size_t *n)
{
    const json_t *apps = json_object_get(cfg, "apps");
    const char *app;
    const json_t *a;
    json_object_foreach((json_t *)apps, app, a)
    {
        const char *rubric;
        const json_t *r;
        json_object_foreach(json_object_get(a, "rubrics"), rubric, r)
        {
            *targets = xrealloc(*targets, (*n + 1) * sizeof **targets);
            (*targets)[(*n)++] = (struct alarms_target){app, rubric, NULL};
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Diff                                                                     */

const char *alarms_action_name(enum alarms_action a)
{
    switch (a) {
    case ALARMS_CREATE:
        return "create";
    case ALARMS_UPDATE:
        return "update";
    case ALARMS_UNCHANGED:
        return "unchanged";
    case ALARMS_CONFLICT:
        return "conflict";
    }
    return "?";
}

static int same_str(const json_t *have, const char *want, const char *absent)
{
    const char *h = json_string_value(have);
    if (!h)
        h = absent;
    if (!want)
        want = absent;
    if (!h || !want)
        return h == want;
    return strcmp(h, want) == 0;
}

static int same_set(const json_t *have, const char *const *want, size_t n)
{
    if (json_array_size(have) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < n && !found; j++)
            found = same_str(json_array_get(have, j), want[i], NULL);
        if (!found)
            return 0;
    }
    return 1;
}

static int same_dims(const json_t *have, const struct cloudwatch_dimension *d, size_t n)
{
    if (json_array_size(have) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int found = 0;
        for (size_t j = 0; j < n && !found; j++) {
            const json_t *h = json_array_get(have, j);
            found = same_str(json_object_get(h, "Name"), d[i].name, NULL) &&
                    same_str(json_object_get(h, "Value"), d[i].value, NULL);
        }
        if (!found)
            return 0;
    }
    return 1;
}

static int same_num(const json_t *have, double want)
{
    return json_is_number(have) && json_number_value(have) == want;
}

enum alarms_action alarms_diff(const struct cloudwatch_alarm *w, const json_t *e, json_t *changes)
{
    if (!e)
        return ALARMS_CREATE;
    const char *desc = json_string_value(json_object_get(e, "AlarmDescription"));
    if (!desc || strncmp(desc, ALARMS_MARKER, strlen(ALARMS_MARKER)) != 0)
        return ALARMS_CONFLICT;
    int n = 0;
#define DIFF(cond, field)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            n++;                                                                                   \
            if (changes)                                                                           \
                json_array_append_new(changes, json_string(field));                                \
        }                                                                                          \
    } while (0)
    DIFF(same_str(json_object_get(e, "AlarmDescription"), w->alarm_description, ""),
         "AlarmDescription");
    const json_t *ae = json_object_get(e, "ActionsEnabled");
    DIFF((ae ? json_is_true(ae) : 1) == (w->actions_enabled != 0), "ActionsEnabled");
    DIFF(same_set(json_object_get(e, "OKActions"), w->ok_actions, w->n_ok_actions), "OKActions");
    DIFF(same_set(json_object_get(e, "AlarmActions"), w->alarm_actions, w->n_alarm_actions),
         "AlarmActions");
    DIFF(same_str(json_object_get(e, "MetricName"), w->metric_name, NULL), "MetricName");
    DIFF(same_str(json_object_get(e, "Namespace"), w->ns, NULL), "Namespace");
    const char *stat = w->statistic;
    int extended = stat && stat[0] == 'p';
    DIFF(same_str(json_object_get(e, extended ? "ExtendedStatistic" : "Statistic"), stat, NULL),
         "Statistic");
    DIFF(same_dims(json_object_get(e, "Dimensions"), w->dimensions, w->n_dimensions), "Dimensions");
    DIFF(same_num(json_object_get(e, "Period"), (double)w->period_s), "Period");
    DIFF(same_num(json_object_get(e, "EvaluationPeriods"), w->evaluation_periods),
         "EvaluationPeriods");
    const json_t *dta = json_object_get(e, "DatapointsToAlarm");
    int have_dta = dta ? (int)json_number_value(dta)
                       : (int)json_number_value(json_object_get(e, "EvaluationPeriods"));
    int want_dta = w->datapoints_to_alarm ? w->datapoints_to_alarm : w->evaluation_periods;
    DIFF(have_dta == want_dta, "DatapointsToAlarm");
    DIFF(same_num(json_object_get(e, "Threshold"), w->threshold), "Threshold");
    DIFF(same_str(json_object_get(e, "ComparisonOperator"), w->comparison_operator, NULL),
         "ComparisonOperator");
    DIFF(same_str(json_object_get(e, "TreatMissingData"), w->treat_missing_data, "missing"),
         "TreatMissingData");
    DIFF(same_str(json_object_get(e, "Unit"), w->unit, ""), "Unit");
#undef DIFF
    return n ? ALARMS_UPDATE : ALARMS_UNCHANGED;
}

/* ------------------------------------------------------------------------ */
/* Reconcile                                                                */

static const json_t *find_alarm(const json_t *arr, const char *name)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *a = json_array_get(arr, i);
        if (same_str(json_object_get(a, "AlarmName"), name, NULL))
            return a;
    }
    return NULL;
}

enum assay_err alarms_reconcile(struct cloudwatch *cw, const struct alarms_plan *plan, int dry_run,
                                alarms_report_fn report, void *ctx, struct alarms_summary *summary,
                                char *errbuf)
{
    struct alarms_summary sum = {0};
    enum assay_err err = ASSAY_OK, first_err = ASSAY_OK;
    json_t *existing = json_array();
    const char **names = xcalloc(plan->n ? plan->n : 1, sizeof *names);
    for (size_t i = 0; i < plan->n; i++)
        names[i] = plan->alarms[i].name;
    for (size_t i = 0; i < plan->n; i += DESCRIBE_CHUNK) {
        size_t k = plan->n - i < DESCRIBE_CHUNK ? plan->n - i : DESCRIBE_CHUNK;
        json_t *got = NULL;
        struct cloudwatch_result res;
        err = cloudwatch_describe_alarms(cw, names + i, k, &got, &res);
        if (err != ASSAY_OK) {
            assay_errbuf_set(errbuf, err, "DescribeAlarms: %s%s%s", res.error_code,
                             res.error_code[0] ? ": " : "", res.errbuf);
            goto out;
        }
        json_array_extend(existing, got);
        json_decref(got);
    }
    for (size_t i = 0; i < plan->n; i++) {
        const struct alarms_planned *a = &plan->alarms[i];
        json_t *changes = json_array();
        enum alarms_action act = alarms_diff(&a->alarm, find_alarm(existing, a->name), changes);
        json_t *line = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b}", "action",
                                 alarms_action_name(act), "alarm", a->name, "kind", a->kind,
                                 "metric", a->metric, "changes", changes, "dry_run", dry_run);
        if (act == ALARMS_CONFLICT)
            json_object_set_new(line, "reason",
                                json_string("an alarm of this name exists and was not created "
                                            "by assay; left alone"));
        if (act == ALARMS_CREATE || act == ALARMS_UPDATE) {
            json_object_set_new(line, "request", cloudwatch_put_metric_alarm_json(&a->alarm));
            if (!dry_run) {
                struct cloudwatch_result res;
                enum assay_err e = cloudwatch_put_metric_alarm(cw, &a->alarm, &res);
                sum.put_calls++;
                if (e != ASSAY_OK) {
                    sum.failed++;
                    json_object_set_new(line, "error",
                                        json_pack("{s:s, s:s, s:s}", "code", assay_err_name(e),
                                                  "aws_code", res.error_code, "message",
                                                  res.errbuf));
                    if (first_err == ASSAY_OK) {
                        first_err = e;
                        assay_errbuf_set(errbuf, e, "PutMetricAlarm %s: %s%s%s", a->name,
                                         res.error_code, res.error_code[0] ? ": " : "", res.errbuf);
                    }
                    act = ALARMS_CONFLICT + 1; /* counted as failed only */
                }
            }
        }
        switch ((int)act) {
        case ALARMS_CREATE:
            sum.created++;
            break;
        case ALARMS_UPDATE:
            sum.updated++;
            break;
        case ALARMS_UNCHANGED:
            sum.unchanged++;
            break;
        case ALARMS_CONFLICT:
            sum.conflicts++;
            break;
        default:
            break;
        }
        if (report)
            report(ctx, line);
        json_decref(line);
    }
    err = first_err;
out:
    json_decref(existing);
    free(names);
    if (summary)
        *summary = sum;
    return err;
}
