/*
 * judges/judge: the dispatcher over the three judge kinds, with a cache of
 * built rule judges (patterns compiled once per rubric).
 */
#include "judges/judge.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "judges/reference.h"
#include "judges/rule.h"

#include <pthread.h>
#include <string.h>
#include <stdlib.h>

struct rule_entry {
    const struct rubric *r;
    struct rule_judge *judge;
    struct rule_entry *next;
};

struct judge_runner {
    struct llm_judge *llm;
    struct regex_limits limits;
    int has_limits;
    pthread_mutex_t mu; /* guards rules */
    struct rule_entry *rules;
};

struct judge_runner *judge_runner_new(struct llm_judge *llm, const struct regex_limits *limits)
{
    struct judge_runner *jr = xcalloc(1, sizeof *jr);
    jr->llm = llm;
    if (limits) {
        jr->limits = *limits;
        jr->has_limits = 1;
    }
    pthread_mutex_init(&jr->mu, NULL);
    return jr;
}

void judge_runner_free(struct judge_runner *jr)
{
    if (!jr)
        return;
    while (jr->rules) {
        struct rule_entry *e = jr->rules;
        jr->rules = e->next;
        rule_judge_free(e->judge);
        free(e);
    }
    pthread_mutex_destroy(&jr->mu);
    free(jr);
}

/* The rule judge of r, built on first use. */
static enum assay_err rule_for(struct judge_runner *jr, const struct rubric *r,
                               struct rule_judge **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    pthread_mutex_lock(&jr->mu);
    struct rule_entry *e = jr->rules;
    while (e && e->r != r)
        e = e->next;
    if (!e) {
        struct rule_judge *j = NULL;
        err = rule_judge_new(r, jr->has_limits ? &jr->limits : NULL, &j, errbuf);
        if (err == ASSAY_OK) {
            e = xcalloc(1, sizeof *e);
            e->r = r;
            e->judge = j;
            e->next = jr->rules;
            jr->rules = e;
        }
    }
    *out = e ? e->judge : NULL;
    pthread_mutex_unlock(&jr->mu);
    return err;
}

enum assay_err judge_run(struct judge_runner *jr, const struct rubric *r,
                         const struct rubric_sample *s, const struct redact_set *redact,
                         judge_done_fn done, void *ctx, char *errbuf)
{
    if (!jr || !r || !s || !done)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "missing argument");
    if (r->kind == RUBRIC_KIND_LLM) {
        if (!jr->llm)
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "%s is an llm rubric and no LLM judge is configured", r->name);
        return llm_judge_run(jr->llm, r, s, redact, done, ctx, errbuf);
    }
    int64_t t0 = clock_mono_ms(NULL);
    struct verdict v;
    verdict_init(&v);
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err;
    if (r->kind == RUBRIC_KIND_RULE) {
        struct rule_judge *rj = NULL;
        err = rule_for(jr, r, &rj, errbuf);
        if (err != ASSAY_OK)
            return err;
        err = rule_judge_run(rj, s, &v, detail);
    } else {
        err = reference_judge_run(r, s, &v, detail);
    }
    /* A sample the rubric cannot grade is an unscorable verdict (the judges
     * set it), delivered like any other. */
    v.elapsed_ms = clock_mono_ms(NULL) - t0;
    v.attempts = 0;
    verdict_set_rubric(&v, r);
    done(ctx, err, &v);
    verdict_clear(&v);
    return ASSAY_OK;
}

/* ---- samples from JSON ---- */

static void append_text_blocks(const json_t *content, struct buf *b)
{
    if (json_is_string(content)) {
        buf_append(b, json_string_value(content), json_string_length(content));
        return;
    }
    size_t i;
    const json_t *block;
    int first = 1;
    json_array_foreach(content, i, block)
    {
        const json_t *t = json_is_string(block) ? block : json_object_get(block, "text");
        if (!json_is_string(t))
            continue;
        if (!first)
            buf_append_char(b, '\n');
        buf_append(b, json_string_value(t), json_string_length(t));
        first = 0;
    }
}

static enum assay_err read_input(const json_t *v, char **out, char *errbuf)
{
    if (json_is_string(v)) {
        *out = xstrndup(json_string_value(v), json_string_length(v));
        return ASSAY_OK;
    }
    if (!json_is_array(v))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "input: must be a string or an array of messages");
    struct buf b = BUF_INIT;
    size_t n = json_array_size(v), i;
    const json_t *m;
    json_array_foreach(v, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        const json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || !(json_is_array(content) || json_is_string(content))) {
            buf_clear(&b);
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "input[%zu]: a message needs a content array", i);
        }
        if (b.len)
            buf_append_str(&b, "\n\n");
        if (n > 1 && role)
            buf_appendf(&b, "%s: ", role);
        append_text_blocks(content, &b);
    }
    *out = b.data ? buf_detach(&b, NULL) : xstrdup("");
    return ASSAY_OK;
}

static enum assay_err read_context(const json_t *v, char **out, char *errbuf)
{
    if (json_is_string(v)) {
        *out = xstrndup(json_string_value(v), json_string_length(v));
        return ASSAY_OK;
    }
    if (!json_is_array(v))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "context: must be a string or an array of passages");
    struct buf b = BUF_INIT;
    size_t i;
    const json_t *p;
    json_array_foreach(v, i, p)
    {
        const json_t *t = json_is_string(p) ? p : json_object_get(p, "text");
        if (!json_is_string(t)) {
            buf_clear(&b);
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "context[%zu]: must be a string or {\"text\": ...}", i);
        }
        if (b.len)
            buf_append_str(&b, "\n\n");
        buf_append(&b, json_string_value(t), json_string_length(t));
    }
    *out = b.data ? buf_detach(&b, NULL) : xstrdup("");
    return ASSAY_OK;
}

static enum assay_err read_string(const json_t *obj, const char *key, char **out, char *errbuf)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return ASSAY_OK;
    if (!json_is_string(v))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s: must be a string", key);
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return ASSAY_OK;
}

enum assay_err judge_sample_from_json(const json_t *obj, struct judge_sample *out, char *errbuf)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "a sample must be a JSON object");
    enum assay_err err = read_string(obj, "output", &out->output, errbuf);
    if (!err && !out->output)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                               "output: required (the production response)");
    const json_t *v;
    if (!err && (v = json_object_get(obj, "input")) && !json_is_null(v))
        err = read_input(v, &out->input, errbuf);
    if (!err && (v = json_object_get(obj, "context")) && !json_is_null(v))
        err = read_context(v, &out->context, errbuf);
    if (!err)
        err = read_string(obj, "reference", &out->reference, errbuf);
    if (!err)
        err = read_string(obj, "app", &out->app, errbuf);
    if (!err)
        err = read_string(obj, "model_id", &out->model_id, errbuf);
    if (!err && json_is_object(v = json_object_get(obj, "tags")))
        out->tags = json_incref((json_t *)v);
    if (!err && json_is_object(v = json_object_get(obj, "_pii")))
        out->pii = json_incref((json_t *)v);
    if (err)
        judge_sample_clear(out);
    return err;
}

void judge_sample_clear(struct judge_sample *s)
{
    if (!s)
        return;
    free(s->input);
    free(s->output);
    free(s->context);
    free(s->reference);
    free(s->app);
    free(s->model_id);
    json_decref(s->tags);
    json_decref(s->pii);
    memset(s, 0, sizeof *s);
}

struct rubric_sample judge_sample_view(const struct judge_sample *s)
{
    return (struct rubric_sample){.input = s->input,
                                  .output = s->output,
                                  .context = s->context,
                                  .reference = s->reference,
                                  .app = s->app,
                                  .tags = s->tags,
                                  .pii = s->pii};
}
