/*
 * emulator/scenario: loading scenario files and drawing seeded faults. Called
 * by the service handlers (emulator/bedrock) once per accepted request.
 */
#include "emulator/scenario.h"

#include "common/alloc.h"
#include "common/rng.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct model_rule {
    char *model_id;
    struct scenario_rule rule;
    uint64_t count;
};

struct scenario {
    json_t *root; /* keeps the answers arrays alive */
    uint64_t seed;
    struct model_rule def;
    struct model_rule *models;
    size_t n_models;
    pthread_mutex_t lock;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static enum assay_err get_rate(const json_t *obj, const char *key, double *out, const char *where,
                               char *errbuf)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return ASSAY_OK;
    if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s.%s: must be a number from 0 to 1", where, key);
    *out = json_number_value(v);
    return ASSAY_OK;
}

static enum assay_err get_ms(const json_t *obj, const char *key, int64_t *out, const char *where,
                             char *errbuf)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return ASSAY_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 3600000)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s.%s: must be an integer of milliseconds, 0 to 3600000", where,
                                key);
    *out = (int64_t)json_integer_value(v);
    return ASSAY_OK;
}

static enum assay_err get_bool(const json_t *obj, const char *key, bool *out, const char *where,
                               char *errbuf)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return ASSAY_OK;
    if (!json_is_boolean(v))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s.%s: must be true or false",
                                where, key);
    *out = json_is_true(v);
    return ASSAY_OK;
}

static const struct {
    const char *name;
    unsigned bit;
} malformed_names[] = {
    {"no_tool_use", SCENARIO_MALFORMED_NO_TOOL_USE},
    {"score_out_of_range", SCENARIO_MALFORMED_SCORE_OUT_OF_RANGE},
    {"truncated_json", SCENARIO_MALFORMED_TRUNCATED_JSON},
    {"wrong_tool_name", SCENARIO_MALFORMED_WRONG_TOOL_NAME},
};

static const char *const rule_keys[] = {
    "throttle_rate",       "not_ready_rate", "error_rate",     "timeout_rate", "timeout_ms",
    "latency_ms",          "jitter_ms",      "malformed_rate", "malformed",    "max_tokens_rate",
    "refuse_forced_tools", "not_found",      "access_denied",  "answers"};

/* Reads the keys present in obj over *r (which holds the defaults). */
static enum assay_err parse_rule(const json_t *obj, struct scenario_rule *r, const char *where,
                                 char *errbuf)
{
    enum assay_err err;
    if (!json_is_object(obj))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s: must be an object", where);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool known = false;
        for (size_t i = 0; i < sizeof rule_keys / sizeof *rule_keys && !known; i++)
            known = strcmp(key, rule_keys[i]) == 0;
        if (!known)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s: unknown key \"%s\"",
                                    where, key);
    }
    if ((err = get_rate(obj, "throttle_rate", &r->throttle_rate, where, errbuf)) ||
        (err = get_rate(obj, "not_ready_rate", &r->not_ready_rate, where, errbuf)) ||
        (err = get_rate(obj, "error_rate", &r->error_rate, where, errbuf)) ||
        (err = get_rate(obj, "timeout_rate", &r->timeout_rate, where, errbuf)) ||
        (err = get_rate(obj, "malformed_rate", &r->malformed_rate, where, errbuf)) ||
        (err = get_rate(obj, "max_tokens_rate", &r->max_tokens_rate, where, errbuf)) ||
        (err = get_ms(obj, "timeout_ms", &r->timeout_ms, where, errbuf)) ||
        (err = get_ms(obj, "latency_ms", &r->latency_ms, where, errbuf)) ||
        (err = get_ms(obj, "jitter_ms", &r->jitter_ms, where, errbuf)) ||
        (err = get_bool(obj, "refuse_forced_tools", &r->refuse_forced_tools, where, errbuf)) ||
        (err = get_bool(obj, "not_found", &r->not_found, where, errbuf)) ||
        (err = get_bool(obj, "access_denied", &r->access_denied, where, errbuf)))
        return err;
    if (r->throttle_rate + r->not_ready_rate + r->error_rate + r->timeout_rate > 1 + 1e-9)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s: throttle_rate + not_ready_rate + error_rate + timeout_rate "
                                "must not exceed 1",
                                where);
    const json_t *m = json_object_get(obj, "malformed");
    if (m) {
        if (!json_is_array(m) || json_array_size(m) == 0)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.malformed: must be a non-empty array of kinds", where);
        r->malformed_kinds = 0;
        size_t i;
        json_array_foreach(m, i, v)
        {
            unsigned bit = 0;
            for (size_t k = 0; k < sizeof malformed_names / sizeof *malformed_names; k++)
                if (json_is_string(v) && strcmp(json_string_value(v), malformed_names[k].name) == 0)
                    bit = malformed_names[k].bit;
            if (!bit)
                return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                        "%s.malformed[%zu]: not one of no_tool_use, "
                                        "score_out_of_range, truncated_json, wrong_tool_name",
                                        where, i);
            r->malformed_kinds |= bit;
        }
    }
    const json_t *a = json_object_get(obj, "answers");
    if (a) {
        size_t i;
        bool ok = json_is_array(a);
        json_array_foreach(a, i, v) ok = ok && json_is_string(json_object_get(v, "match")) &&
                                         json_is_string(json_object_get(v, "text"));
        if (!ok)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s.answers: must be an array of {\"match\", \"text\"} strings",
                                    where);
        r->answers = a;
    }
    return ASSAY_OK;
}

struct scenario *scenario_new(const char *path, bool seed_set, uint64_t seed, char *errbuf)
{
    struct scenario *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->def.rule.timeout_ms = 60000;
    s->def.rule.malformed_kinds = SCENARIO_MALFORMED_ALL;
    s->seed = 1;
    enum assay_err err = ASSAY_OK;
    if (path) {
        json_error_t jerr;
        s->root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
        if (!s->root) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "line %d: %s", jerr.line,
                                   jerr.text);
            goto out;
        }
        if (!json_is_object(s->root)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "must be an object");
            goto out;
        }
        const char *key;
        json_t *v;
        json_object_foreach(s->root, key, v)
        {
            if (strcmp(key, "seed") && strcmp(key, "default") && strcmp(key, "models")) {
                err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                       "unknown key \"%s\" (seed, default, models)", key);
                goto out;
            }
        }
        const json_t *sv = json_object_get(s->root, "seed");
        if (sv) {
            if (!json_is_integer(sv) || json_integer_value(sv) < 0) {
                err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                       "seed: must be a non-negative integer");
                goto out;
            }
            s->seed = (uint64_t)json_integer_value(sv);
        }
        const json_t *d = json_object_get(s->root, "default");
        if (d && (err = parse_rule(d, &s->def.rule, "default", errbuf)))
            goto out;
        const json_t *models = json_object_get(s->root, "models");
        if (models && !json_is_object(models)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                   "models: must be an object keyed by model id");
            goto out;
        }
        s->models = xcalloc(json_object_size(models) + 1, sizeof *s->models);
        json_object_foreach((json_t *)models, key, v)
        {
            struct model_rule *m = &s->models[s->n_models++];
            m->model_id = xstrdup(key);
            m->rule = s->def.rule; /* a model's keys override the default's */
            char where[300];
            snprintf(where, sizeof where, "models[\"%.200s\"]", key);
            if ((err = parse_rule(v, &m->rule, where, errbuf)))
                goto out;
        }
    }
    if (seed_set)
        s->seed = seed;
out:
    if (err) {
        scenario_free(s);
        return NULL;
    }
    return s;
}

void scenario_free(struct scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_models; i++)
        free(s->models[i].model_id);
    free(s->models);
    json_decref(s->root);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

uint64_t scenario_seed(const struct scenario *s)
{
    return s->seed;
}

static struct model_rule *find(const struct scenario *s, const char *model_id)
{
    for (size_t i = 0; i < s->n_models; i++)
        if (strcmp(s->models[i].model_id, model_id) == 0)
            return &s->models[i];
    return (struct model_rule *)&s->def;
}

const struct scenario_rule *scenario_rule_for(const struct scenario *s, const char *model_id)
{
    return &find(s, model_id)->rule;
}

void scenario_decide(struct scenario *s, const char *model_id, struct scenario_decision *out)
{
    struct model_rule *m = find(s, model_id);
    const struct scenario_rule *r = &m->rule;
    pthread_mutex_lock(&s->lock);
    uint64_t index = m->count++;
    pthread_mutex_unlock(&s->lock);
    /* One generator per request, seeded by (seed, rule, index): the draws of a
     * request never depend on how many other requests ran before it elsewhere. */
    struct rng g;
    rng_seed(&g, hash_str(m->model_id ? m->model_id : "default") + index);
    rng_seed(&g, rng_next(&g) ^ s->seed);
    memset(out, 0, sizeof *out);
    out->index = index;
    /* Always the same number of draws, so one rate never shifts another's. */
    double u_fault = rng_uniform(&g), u_5xx = rng_uniform(&g), u_mal = rng_uniform(&g);
    double u_kind = rng_uniform(&g), u_max = rng_uniform(&g), u_jitter = rng_uniform(&g);
    out->nonce = rng_next(&g);
    double edge = r->throttle_rate;
    if (u_fault < edge)
        out->fault = SCENARIO_FAULT_THROTTLE;
    else if (u_fault < (edge += r->not_ready_rate))
        out->fault = SCENARIO_FAULT_NOT_READY;
    else if (u_fault < (edge += r->error_rate))
        out->fault = u_5xx < 0.5 ? SCENARIO_FAULT_INTERNAL : SCENARIO_FAULT_UNAVAILABLE;
    else if (u_fault < (edge += r->timeout_rate))
        out->fault = SCENARIO_FAULT_TIMEOUT;
    if (out->fault == SCENARIO_FAULT_TIMEOUT) {
        out->delay_ms = r->timeout_ms;
        return;
    }
    out->delay_ms = r->latency_ms + (int64_t)floor(u_jitter * (double)r->jitter_ms);
    if (out->fault != SCENARIO_FAULT_NONE)
        return;
    if (u_mal < r->malformed_rate && r->malformed_kinds) {
        unsigned kinds[4], n = 0;
        for (unsigned bit = 1; bit <= 8; bit <<= 1)
            if (r->malformed_kinds & bit)
                kinds[n++] = bit;
        out->malformed = (enum scenario_malformed)kinds[(unsigned)(u_kind * n) % n];
    } else if (u_max < r->max_tokens_rate) {
        out->max_tokens = true;
    }
}
