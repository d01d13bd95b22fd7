/*
 * server/golden: the golden-set run engine (see golden.h): target calls,
 * judging, storing, comparing with the previous run, publishing.
 */
#include "server/golden.h"

#include "aws/bedrock.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "common/rng.h"
#include "judges/dataset.h"
#include "judges/judge.h"
#include "judges/rubric.h"
#include "judges/verdict.h"
#include "monitor/agreement.h"
#include "monitor/compare.h"
#include "monitor/publish.h"
#include "server/store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define OUTPUT_MAX (1024u * 1024u) /* bytes kept of a target answer */

/* ------------------------------------------------------------------ spec */

void golden_spec_init(struct golden_spec *s)
{
    memset(s, 0, sizeof *s);
    s->margin = 0.05;
    s->alpha = 0.05;
}

void golden_spec_clear(struct golden_spec *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->dataset);
    free(s->target_model);
    for (size_t i = 0; i < s->n_rubrics; i++)
        free(s->rubrics[i]);
    free(s->rubrics);
    free(s->system_prompt);
    memset(s, 0, sizeof *s);
}

bool golden_spec_add_rubric(struct golden_spec *s, const char *name)
{
    for (size_t i = 0; i < s->n_rubrics; i++)
        if (strcmp(s->rubrics[i], name) == 0)
            return true;
    if (s->n_rubrics >= GOLDEN_RUBRICS_MAX)
        return false;
    s->rubrics = xrealloc(s->rubrics, (s->n_rubrics + 1) * sizeof *s->rubrics);
    s->rubrics[s->n_rubrics++] = xstrdup(name);
    return true;
}

int golden_every_parse(const char *text, int64_t *seconds)
{
    if (!text || !*text)
        return -1;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || v <= 0)
        return -1;
    int64_t mult = 1;
    if (*end) {
        mult = strcmp(end, "s") == 0   ? 1
               : strcmp(end, "m") == 0 ? 60
               : strcmp(end, "h") == 0 ? 3600
               : strcmp(end, "d") == 0 ? 86400
                                       : 0;
        if (!mult)
            return -1;
    }
    if (v > INT64_MAX / mult / 1000)
        return -1;
    *seconds = (int64_t)v * mult;
    return 0;
}

static enum assay_err bad(struct golden_spec *out, char *errbuf, const char *field, const char *why)
{
    golden_spec_clear(out);
    return assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "golden: %s: %s", field, why);
}

static int get_number(const json_t *obj, const char *key, double lo, double hi, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 1;
}

enum assay_err golden_spec_from_json(const json_t *e, struct golden_spec *out, char *errbuf)
{
    golden_spec_init(out);
    if (!json_is_object(e))
        return bad(out, errbuf, "(entry)", "must be an object");
    static const char *const keys[] = {"name",          "dataset",   "target_model", "rubrics",
                                       "every",         "inference", "margin",       "alpha",
                                       "system_prompt", NULL};
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)e, key, val)
    {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], key) != 0)
            i++;
        if (!keys[i])
            return bad(out, errbuf, key, "unknown key");
    }
    const char *ds = jsonutil_str(e, "dataset");
    if (!ds || !*ds)
        return bad(out, errbuf, "dataset",
                   "required: the path of a JSONL golden or "
                   "calibration set");
    out->dataset = xstrdup(ds);
    const json_t *v = json_object_get(e, "name");
    if (v && !json_is_string(v))
        return bad(out, errbuf, "name", "must be a string");
    if (v)
        out->name = xstrdup(json_string_value(v));
    v = json_object_get(e, "target_model");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) == 0 ||
            json_string_length(v) > BEDROCK_MODEL_ID_MAX)
            return bad(out, errbuf, "target_model", "must be a model id");
        out->target_model = xstrdup(json_string_value(v));
    }
    v = json_object_get(e, "rubrics");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v))
            return bad(out, errbuf, "rubrics", "must be an array of rubric names");
        size_t i;
        const json_t *r;
        json_array_foreach(v, i, r)
        {
            if (!json_is_string(r) || !rubric_name_valid(json_string_value(r)))
                return bad(out, errbuf, "rubrics", "must be an array of rubric names");
            if (!golden_spec_add_rubric(out, json_string_value(r)))
                return bad(out, errbuf, "rubrics", "too many rubrics");
        }
    }
    v = json_object_get(e, "every");
    if (v && !json_is_null(v)) {
        if (json_is_integer(v) && json_integer_value(v) > 0)
            out->every_s = json_integer_value(v);
        else if (!json_is_string(v) || golden_every_parse(json_string_value(v), &out->every_s))
            return bad(out, errbuf, "every", "must be an interval such as \"30m\", \"6h\", \"1d\"");
    }
    v = json_object_get(e, "system_prompt");
    if (v && !json_is_null(v)) {
        if (!json_is_string(v) || json_string_length(v) > GOLDEN_SYSTEM_PROMPT_MAX)
            return bad(out, errbuf, "system_prompt", "must be a string of at most 32 KiB");
        if (json_string_length(v) > 0)
            out->system_prompt = xstrdup(json_string_value(v));
    }
    if (get_number(e, "margin", 0, 1, &out->margin) < 0)
        return bad(out, errbuf, "margin", "must be a number in [0, 1]");
    if (get_number(e, "alpha", 1e-9, 0.5, &out->alpha) < 0)
        return bad(out, errbuf, "alpha", "must be a number in (0, 0.5]");
    v = json_object_get(e, "inference");
    if (v && !json_is_null(v)) {
        if (!json_is_object(v))
            return bad(out, errbuf, "inference", "must be an object");
        json_object_foreach((json_t *)v, key, val)
        {
            if (strcmp(key, "max_tokens") && strcmp(key, "temperature") && strcmp(key, "top_p"))
                return bad(out, errbuf, "inference",
                           "unknown key (max_tokens, temperature, top_p)");
        }
        double d;
        int got = get_number(v, "max_tokens", 1, RUBRIC_MAX_TOKENS_MAX * 4.0, &d);
        if (got < 0 || (got > 0 && d != floor(d)))
            return bad(out, errbuf, "inference.max_tokens", "must be a positive integer");
        if (got > 0)
            out->max_tokens = (int)d;
        got = get_number(v, "temperature", 0, 2, &out->temperature);
        if (got < 0)
            return bad(out, errbuf, "inference.temperature", "must be a number in [0, 2]");
        out->has_temperature = got > 0;
        got = get_number(v, "top_p", 0, 1, &out->top_p);
        if (got < 0)
            return bad(out, errbuf, "inference.top_p", "must be a number in [0, 1]");
        out->has_top_p = got > 0;
    }
    return ASSAY_OK;
}

char *golden_run_key(const char *dataset_name, bool calibration, const char *target_model)
{
    struct buf b = BUF_INIT;
    buf_append_str(&b, dataset_name);
    if (!calibration) {
        buf_append_str(&b, "|");
        buf_append_str(&b, target_model ? target_model : "");
    }
    return buf_detach(&b, NULL);
}

int64_t golden_last_run_ms(void *store, const struct golden_spec *spec)
{
    char *name = dataset_name_from_path(spec->dataset);
    char *key =
        golden_run_key(name, dataset_kind_from_path(spec->dataset) == DATASET_KIND_CALIBRATION,
                       spec->target_model);
    struct store_golden_run_list l = {0};
    int64_t ms = 0;
    if (store_golden_run_latest(store, key, NULL, NULL, &l, NULL) == ASSAY_OK)
        ms = l.runs[0].created_ms;
    store_golden_run_list_clear(&l);
    free(key);
    free(name);
    return ms;
}

char *golden_run_id_new(const struct clock *clock)
{
    static atomic_uint_fast64_t counter;
    int64_t now = clock_now_ms(clock ? clock : clock_system());
    struct rng r;
    rng_seed(&r, (uint64_t)now ^ ((uint64_t)getpid() << 32) ^
                     (atomic_fetch_add(&counter, 1) * 0x9E3779B97F4A7C15ull) ^
                     (uint64_t)clock_mono_ms(clock_system()));
    char ts[17];
    clock_format_amz_date(now / 1000, ts);
    struct buf b = BUF_INIT;
    buf_appendf(&b, "gr-%s-%08x", ts, (unsigned)(rng_next(&r) >> 32));
    return buf_detach(&b, NULL);
}

/* ------------------------------------------------------------ the run state */

struct slot {
    const struct rubric *rubric; /* borrowed from the registry */
    struct verdict v;
    bool filled;
};

struct job {
    struct run *run;
    const struct dataset_item *item;
    char *output;      /* the target's answer (owned), or NULL */
    const char *fixed; /* calibration: the item's own output (borrowed) */
    char target_error[BEDROCK_ERROR_CODE_MAX + BEDROCK_ERROR_MESSAGE_MAX + 8];
    bool target_failed;
    int64_t in_tokens, out_tokens, latency_ms;
    int attempts;
    struct slot *slots;
    size_t n_slots;
    size_t pending; /* verdicts outstanding */
    struct rubric_sample sample;
};

struct run {
    const struct golden_env *env;
    const struct golden_spec *spec;
    struct dataset *ds;
    struct job *jobs;
    size_t n_jobs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t done;
};

static void job_finish_one(struct job *j)
{
    struct run *r = j->run;
    pthread_mutex_lock(&r->mu);
    if (--j->pending == 0) {
        r->done++;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static void on_verdict(void *ctx, enum assay_err err, struct verdict *v)
{
    struct slot *s = ctx;
    (void)err;
    s->v = *v;
    verdict_init(v);
    s->filled = true;
}

/* The callback's context: a slot and its job (judge_run takes one pointer). */
struct verdict_ctx {
    struct slot *slot;
    struct job *job;
};

static void on_verdict_async(void *ctx, enum assay_err err, struct verdict *v)
{
    struct verdict_ctx *vc = ctx;
    struct job *j = vc->job;
    on_verdict(vc->slot, err, v);
    free(vc);
    job_finish_one(j);
}

static void slot_unscorable(struct slot *s, const char *reason, const char *detail)
{
    verdict_clear(&s->v);
    verdict_init(&s->v);
    verdict_set_rubric(&s->v, s->rubric);
    verdict_set_unscorable(&s->v, reason, VERDICT_RETRY_NONE, detail);
    s->filled = true;
}

static bool run_cancelled(const struct run *r)
{
    return r->env->cancel && atomic_load(r->env->cancel);
}

/* Starts judging j's answer with every slot's rubric; called once per job. */
static void job_judge(struct job *j)
{
    const char *output = j->fixed ? j->fixed : j->output;
    dataset_item_sample(j->item, output ? output : "", &j->sample);
    /* Once the last verdict is in, the caller may free the run: nothing of j
     * is read after the call that may be the last. */
    struct run *r = j->run;
    size_t n = j->n_slots;
    bool failed = j->target_failed;
    bool cancelled = run_cancelled(r);
    pthread_mutex_lock(&r->mu);
    j->pending = n;
    pthread_mutex_unlock(&r->mu);
    for (size_t i = 0; i < n; i++) {
        struct slot *s = &j->slots[i];
        if (failed || cancelled) {
            slot_unscorable(s, cancelled ? "cancelled" : "target_failed",
                            cancelled ? "the run was cancelled" : j->target_error);
            job_finish_one(j);
            continue;
        }
        struct verdict_ctx *vc = xmalloc(sizeof *vc);
        *vc = (struct verdict_ctx){s, j};
        char eb[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err err =
            judge_run(r->env->runner, s->rubric, &j->sample, NULL, on_verdict_async, vc, eb);
        if (err != ASSAY_OK) {
            free(vc);
            slot_unscorable(s, assay_err_name(err), eb);
            job_finish_one(j);
        }
    }
}

/* The text blocks of a Converse answer, joined (bounded). */
static char *answer_text(const struct buf *body, char *why, size_t why_len)
{
    char jerr[ASSAY_ERRBUF_SIZE] = "";
    json_t *doc = jsonutil_parse(body->data ? body->data : "", body->len, jerr);
    if (!doc) {
        snprintf(why, why_len, "the answer is not JSON");
        return NULL;
    }
    const json_t *content =
        json_object_get(json_object_get(json_object_get(doc, "output"), "message"), "content");
    struct buf b = BUF_INIT;
    size_t i;
    const json_t *blk;
    bool any = false;
    json_array_foreach(content, i, blk)
    {
        const json_t *t = json_object_get(blk, "text");
        if (!json_is_string(t))
            continue;
        any = true;
        if (b.len < OUTPUT_MAX)
            buf_append(&b, json_string_value(t),
                       json_string_length(t) < OUTPUT_MAX - b.len ? json_string_length(t)
                                                                  : OUTPUT_MAX - b.len);
    }
    json_decref(doc);
    if (!any) {
        buf_clear(&b);
        snprintf(why, why_len, "the answer holds no text");
        return NULL;
    }
    return b.data ? buf_detach(&b, NULL) : xstrdup("");
}

static void on_target(void *ctx, enum assay_err err, const struct bedrock_result *res)
{
    struct job *j = ctx;
    j->attempts = res->attempts;
    j->latency_ms = res->latency_ms;
    j->in_tokens = res->input_tokens;
    j->out_tokens = res->output_tokens;
    if (err == ASSAY_OK) {
        j->output = answer_text(&res->body, j->target_error, sizeof j->target_error);
        j->target_failed = j->output == NULL;
    } else {
        j->target_failed = true;
        snprintf(j->target_error, sizeof j->target_error, "%s%s%s",
                 res->error_code[0] ? res->error_code : assay_err_name(err),
                 res->error_message[0] ? ": " : "", res->error_message);
    }
    job_judge(j);
}

static char *converse_body(const struct golden_spec *spec, const struct dataset_item *it)
{
    json_t *req = json_object();
    json_t *msgs;
    if (it->messages) {
        msgs = json_incref(it->messages);
    } else {
        msgs = json_array();
        json_array_append_new(
            msgs, json_pack("{s:s, s:[{s:s}]}", "role", "user", "content", "text", it->input));
    }
    json_object_set_new(req, "messages", msgs);
    if (spec->system_prompt)
        json_object_set_new(req, "system", json_pack("[{s:s}]", "text", spec->system_prompt));
    json_t *inf = json_object();
    json_object_set_new(
        inf, "maxTokens",
        json_integer(spec->max_tokens ? spec->max_tokens : GOLDEN_MAX_TOKENS_DEFAULT));
    if (spec->has_temperature)
        json_object_set_new(inf, "temperature", json_real(spec->temperature));
    if (spec->has_top_p)
        json_object_set_new(inf, "topP", json_real(spec->top_p));
    json_object_set_new(req, "inferenceConfig", inf);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n_jobs; i++) {
        struct job *j = &r->jobs[i];
        for (size_t k = 0; k < j->n_slots; k++)
            verdict_clear(&j->slots[k].v);
        free(j->slots);
        free(j->output);
    }
    free(r->jobs);
    dataset_free(r->ds);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
}

/* The rubric names an item is judged with. */
static void item_rubrics(const struct golden_spec *spec, const struct dataset *ds,
                         const struct dataset_item *it, const char ***names, size_t *n,
                         const char **scratch)
{
    if (it->n_rubrics) {
        *names = it->rubrics;
        *n = it->n_rubrics;
    } else if (spec->n_rubrics) {
        *names = (const char **)spec->rubrics;
        *n = spec->n_rubrics;
    } else if (ds->kind == DATASET_KIND_CALIBRATION) {
        size_t k = 0;
        for (size_t i = 0; i < it->n_human_scores && k < GOLDEN_RUBRICS_MAX; i++)
            scratch[k++] = it->human_scores[i].rubric;
        *names = scratch;
        *n = k;
    } else {
        scratch[0] = GOLDEN_DEFAULT_RUBRIC;
        *names = scratch;
        *n = 1;
    }
}

/* Builds the jobs; NOT_FOUND naming an unknown rubric. */
static enum assay_err jobs_build(struct run *r, char *errbuf)
{
    r->n_jobs = r->ds->n_items;
    r->jobs = xcalloc(r->n_jobs, sizeof *r->jobs);
    for (size_t i = 0; i < r->n_jobs; i++) {
        struct job *j = &r->jobs[i];
        j->run = r;
        j->item = &r->ds->items[i];
        if (r->ds->kind == DATASET_KIND_CALIBRATION)
            j->fixed = j->item->output;
        const char **names, *scratch[GOLDEN_RUBRICS_MAX];
        size_t n;
        item_rubrics(r->spec, r->ds, j->item, &names, &n, scratch);
        j->slots = xcalloc(n ? n : 1, sizeof *j->slots);
        j->n_slots = n;
        for (size_t k = 0; k < n; k++) {
            verdict_init(&j->slots[k].v);
            j->slots[k].rubric = rubric_registry_find(r->env->reg, names[k]);
            if (!j->slots[k].rubric)
                return assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "%s:%zu: no rubric named %s",
                                        r->ds->path, j->item->line, names[k]);
        }
    }
    return ASSAY_OK;
}

/* Starts every job and waits for them, reporting progress. */
static void jobs_run(struct run *r, golden_progress_fn progress, void *pctx, const char *target)
{
    for (size_t i = 0; i < r->n_jobs; i++) {
        struct job *j = &r->jobs[i];
        if (j->n_slots == 0) {
            pthread_mutex_lock(&r->mu);
            r->done++;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        if (j->fixed || run_cancelled(r)) {
            job_judge(j);
            continue;
        }
        char *body = converse_body(r->spec, j->item);
        char eb[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err err =
            body ? bedrock_converse(r->env->bedrock, target, body, strlen(body), on_target, j, eb)
                 : ASSAY_ERR_INTERNAL;
        free(body);
        if (err != ASSAY_OK) {
            j->target_failed = true;
            snprintf(j->target_error, sizeof j->target_error, "%s: %s", assay_err_name(err), eb);
            job_judge(j);
        }
    }
    size_t last = (size_t)-1;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        size_t done = r->done;
        if (done != last && progress) {
            pthread_mutex_unlock(&r->mu);
            progress(pctx, done, r->n_jobs);
            pthread_mutex_lock(&r->mu);
            last = done;
        }
        if (r->done >= r->n_jobs)
            break;
        if (r->done == last) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------ storing */

static enum assay_err jobs_store(struct run *r, const char *run_id, char *errbuf)
{
    for (size_t i = 0; i < r->n_jobs; i++) {
        struct job *j = &r->jobs[i];
        for (size_t k = 0; k < j->n_slots; k++) {
            struct slot *s = &j->slots[k];
            json_t *doc = json_object();
            json_object_set_new(doc, "verdict", verdict_to_json(&s->v));
            const char *out = j->fixed ? j->fixed : j->output;
            json_object_set_new(doc, "output", out ? json_string(out) : json_null());
            if (!j->fixed)
                json_object_set_new(doc, "target",
                                    json_pack("{s:I, s:I, s:I, s:i, s:b}", "input_tokens",
                                              (json_int_t)j->in_tokens, "output_tokens",
                                              (json_int_t)j->out_tokens, "latency_ms",
                                              (json_int_t)j->latency_ms, "attempts", j->attempts,
                                              "failed", j->target_failed));
            char *text = json_dumps(doc, JSON_COMPACT);
            json_decref(doc);
            bool scored = s->v.outcome == VERDICT_SCORED;
            struct store_golden_item gi = {.run_id = run_id,
                                           .item_id = j->item->id,
                                           .rubric = s->rubric->name,
                                           .unscorable = !scored,
                                           .score = scored ? s->v.score : 0,
                                           .pass = scored && s->v.pass,
                                           .verdict_json = text};
            enum assay_err err = store_golden_item_put(r->env->store, &gi, errbuf);
            free(text);
            if (err != ASSAY_OK)
                return err;
        }
    }
    return ASSAY_OK;
}

/* ---------------------------------------------------------- comparing */

struct rubric_acc {
    const struct rubric *rubric;
    struct compare_pair *pairs;
    size_t n_pairs;
    double sum;
    size_t scored, unscorable, passed;
    double *human, *judge; /* calibration */
    size_t n_cal;
};

static struct rubric_acc *acc_find(struct rubric_acc *accs, size_t *n, const struct rubric *r,
                                   size_t cap)
{
    for (size_t i = 0; i < *n; i++)
        if (accs[i].rubric == r)
            return &accs[i];
    if (*n >= cap)
        return NULL;
    struct rubric_acc *a = &accs[(*n)++];
    memset(a, 0, sizeof *a);
    a->rubric = r;
    return a;
}

static const struct store_golden_item *baseline_find(const struct store_golden_item_list *l,
                                                     const char *item, const char *rubric)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].item_id, item) == 0 && strcmp(l->items[i].rubric, rubric) == 0)
            return &l->items[i];
    return NULL;
}

static json_t *num_or_null(bool has, double v)
{
    return has && isfinite(v) ? json_real(v) : json_null();
}

/* The baseline's agreement headline for rubric from its stored summary. */
static bool baseline_agreement(const json_t *base, const char *rubric, json_t **out)
{
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(base, "rubrics"), i, e)
    {
        const char *name = jsonutil_str(e, "rubric");
        const json_t *ag = json_object_get(e, "agreement");
        if (name && strcmp(name, rubric) == 0 && json_is_object(ag)) {
            *out = (json_t *)ag;
            return true;
        }
    }
    return false;
}

struct worse {
    const char *id, *rubric;
    double before, after;
};

static int worse_order(const void *a, const void *b)
{
    const struct worse *x = a, *y = b;
    double dx = x->before - x->after, dy = y->before - y->after;
    if (dx != dy)
        return dx > dy ? -1 : 1;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->rubric, y->rubric);
}

static double agreement_field(const json_t *ag, const char *k, bool *has)
{
    const json_t *v = json_object_get(ag, k);
    *has = json_is_number(v);
    return *has ? json_number_value(v) : 0;
}

static json_t *summarise(struct run *r, const char *run_id, const char *target,
                         const struct store_golden_run_list *base,
                         const struct store_golden_item_list *bitems, const json_t *bsummary,
                         int64_t started_ms, int64_t now_ms)
{
    const struct golden_env *env = r->env;
    bool cal = r->ds->kind == DATASET_KIND_CALIBRATION;
    struct rubric_acc accs[GOLDEN_RUBRICS_MAX * 4];
    size_t n_acc = 0;
    int64_t tin = 0, tout = 0, tlat = 0;
    size_t tfail = 0, tcalls = 0;
    for (size_t i = 0; i < r->n_jobs; i++) {
        struct job *j = &r->jobs[i];
        if (!j->fixed && j->n_slots) {
            tcalls++;
            tin += j->in_tokens;
            tout += j->out_tokens;
            tlat += j->latency_ms;
            tfail += j->target_failed;
        }
        for (size_t k = 0; k < j->n_slots; k++) {
            struct slot *s = &j->slots[k];
            struct rubric_acc *a = acc_find(accs, &n_acc, s->rubric, sizeof accs / sizeof *accs);
            if (!a)
                continue;
            if (s->v.outcome != VERDICT_SCORED) {
                a->unscorable++;
                continue;
            }
            a->scored++;
            a->sum += s->v.score;
            a->passed += s->v.pass;
            const struct store_golden_item *b =
                bitems ? baseline_find(bitems, j->item->id, s->rubric->name) : NULL;
            if (b && !b->unscorable) {
                a->pairs = xrealloc(a->pairs, (a->n_pairs + 1) * sizeof *a->pairs);
                a->pairs[a->n_pairs++] = (struct compare_pair){j->item->id, b->score, s->v.score};
            }
            double h;
            if (cal && dataset_item_human_score(j->item, s->rubric->name, &h)) {
                a->human = xrealloc(a->human, (a->n_cal + 1) * sizeof *a->human);
                a->judge = xrealloc(a->judge, (a->n_cal + 1) * sizeof *a->judge);
                a->human[a->n_cal] = h;
                a->judge[a->n_cal++] = s->v.raw_score;
            }
        }
    }

    struct compare_options co;
    compare_options_init(&co);
    co.margin = r->spec->margin;
    co.alpha = r->spec->alpha;
    co.seed = env->seed ? env->seed : 1;
    json_t *rubrics = json_array();
    struct worse *worse = NULL;
    size_t n_worse = 0;
    bool regressed = false, drift = false;
    for (size_t i = 0; i < n_acc; i++) {
        struct rubric_acc *a = &accs[i];
        json_t *e = json_object();
        json_object_set_new(e, "rubric", json_string(a->rubric->name));
        json_object_set_new(e, "scored", json_integer((json_int_t)a->scored));
        json_object_set_new(e, "unscorable", json_integer((json_int_t)a->unscorable));
        json_object_set_new(e, "mean", num_or_null(a->scored > 0, a->sum / (double)a->scored));
        json_object_set_new(e, "pass_rate",
                            num_or_null(a->scored > 0, (double)a->passed / (double)a->scored));
        struct compare_result cr;
        bool rub_regressed = false;
        if (base && compare_scores(a->pairs, a->n_pairs, &co, &cr) == ASSAY_OK) {
            rub_regressed = cr.regressed && !cal;
            json_t *c = json_object();
            json_object_set_new(c, "paired", json_integer((json_int_t)cr.n));
            json_object_set_new(c, "mean_before", num_or_null(cr.n > 0, cr.mean_before));
            json_object_set_new(c, "mean_after", num_or_null(cr.n > 0, cr.mean_after));
            json_object_set_new(c, "delta", num_or_null(cr.n > 0, cr.delta));
            json_object_set_new(c, "ci_low", num_or_null(cr.has_ci, cr.ci_lo));
            json_object_set_new(c, "ci_high", num_or_null(cr.has_ci, cr.ci_hi));
            json_object_set_new(c, "ci_level", json_real(co.level));
            json_object_set_new(c, "p_value", json_real(cr.p_value));
            json_object_set_new(c, "margin", json_real(co.margin));
            json_object_set_new(c, "regressed", json_boolean(rub_regressed));
            json_object_set_new(e, "comparison", c);
            for (size_t k = 0; k < cr.n_worse; k++) {
                const struct compare_pair *p = &a->pairs[cr.worse[k]];
                worse = xrealloc(worse, (n_worse + 1) * sizeof *worse);
                worse[n_worse++] = (struct worse){p->item_id, a->rubric->name, p->before, p->after};
            }
            compare_result_clear(&cr);
        } else {
            json_object_set_new(e, "comparison", json_null());
        }
        regressed |= rub_regressed;
        if (cal && a->n_cal > 0) {
            struct agreement ag;
            struct agreement_scale sc = {a->rubric->scale.min, a->rubric->scale.max,
                                         a->rubric->scale.integer, a->rubric->pass_threshold};
            if (agreement_compute(a->human, a->judge, a->n_cal, &sc, &ag) == ASSAY_OK) {
                json_t *g = json_object();
                json_object_set_new(g, "n", json_integer((json_int_t)ag.n));
                json_object_set_new(g, "weighted_kappa", num_or_null(ag.has_kappa, ag.kappa));
                json_object_set_new(g, "spearman", num_or_null(ag.has_spearman, ag.spearman));
                json_object_set_new(g, "mae", json_real(ag.mae));
                json_object_set_new(g, "f1", num_or_null(ag.has_f1, ag.f1));
                json_object_set_new(g, "accuracy", json_real(ag.accuracy));
                json_object_set_new(g, "agreement", json_real(ag.headline));
                json_t *prev = NULL;
                if (bsummary && baseline_agreement(bsummary, a->rubric->name, &prev)) {
                    bool h1, h2, h3, h4;
                    double pk = agreement_field(prev, "weighted_kappa", &h1);
                    double ps = agreement_field(prev, "spearman", &h2);
                    double pm = agreement_field(prev, "mae", &h3);
                    double pa = agreement_field(prev, "agreement", &h4);
                    json_t *ch = json_object();
                    json_object_set_new(ch, "weighted_kappa",
                                        num_or_null(h1 && ag.has_kappa, ag.kappa - pk));
                    json_object_set_new(ch, "spearman",
                                        num_or_null(h2 && ag.has_spearman, ag.spearman - ps));
                    json_object_set_new(ch, "mae", num_or_null(h3, ag.mae - pm));
                    json_object_set_new(ch, "agreement", num_or_null(h4, ag.headline - pa));
                    json_object_set_new(g, "change", ch);
                    if (h4 && pa - ag.headline > r->spec->margin)
                        drift = true;
                } else {
                    json_object_set_new(g, "change", json_null());
                }
                json_object_set_new(e, "agreement", g);
                if (env->publish)
                    publish_agreement_add(env->publish, r->ds->name, a->rubric->name,
                                          env->judge_model ? env->judge_model : "", ag.headline,
                                          now_ms);
            }
        }
        if (env->publish && !cal && a->scored > 0)
            publish_golden_add(env->publish, r->ds->name, a->rubric->name, target,
                               a->sum / (double)a->scored, base ? rub_regressed : -1, now_ms);
        json_array_append_new(rubrics, e);
        free(a->pairs);
        free(a->human);
        free(a->judge);
    }
    if (n_worse > 1)
        qsort(worse, n_worse, sizeof *worse, worse_order);
    json_t *wj = json_array();
    for (size_t i = 0; i < n_worse; i++)
        json_array_append_new(wj, json_pack("{s:s, s:s, s:f, s:f}", "id", worse[i].id, "rubric",
                                            worse[i].rubric, "before", worse[i].before, "after",
                                            worse[i].after));
    free(worse);

    char started[25];
    clock_format_iso8601_ms(started_ms, started);
    json_t *s = json_object();
    json_object_set_new(s, "run_id", json_string(run_id));
    json_object_set_new(s, "dataset", json_string(r->ds->name));
    json_object_set_new(s, "dataset_path", json_string(r->ds->path));
    json_object_set_new(s, "kind", json_string(dataset_kind_name(r->ds->kind)));
    json_object_set_new(s, "target_model", target ? json_string(target) : json_null());
    json_object_set_new(s, "judge_model",
                        env->judge_model ? json_string(env->judge_model) : json_null());
    json_object_set_new(s, "items", json_integer((json_int_t)r->n_jobs));
    json_object_set_new(s, "started_at", json_string(started));
    json_object_set_new(s, "duration_ms", json_integer(now_ms - started_ms));
    json_object_set_new(s, "baseline_run_id",
                        base ? json_string(base->runs[0].run_id) : json_null());
    json_object_set_new(s, "rubrics", rubrics);
    json_object_set_new(s, "regressed", json_boolean(regressed));
    if (cal) {
        json_object_set_new(s, "judge_drift", json_boolean(drift));
        json_object_set_new(s, "note",
                            json_string("calibration set: the answers are fixed, so a drop in "
                                        "agreement means the judge changed (model version, "
                                        "rubric edit), not the product"));
    } else {
        json_object_set_new(s, "target",
                            json_pack("{s:I, s:I, s:I, s:I, s:f}", "calls", (json_int_t)tcalls,
                                      "failed", (json_int_t)tfail, "input_tokens", (json_int_t)tin,
                                      "output_tokens", (json_int_t)tout, "latency_ms_mean",
                                      tcalls ? (double)tlat / (double)tcalls : 0.0));
    }
    json_object_set_new(s, "worse_items", wj);
    return s;
}

/* ------------------------------------------------------------ the run */

/* The caller's progress callback, plus the stored run's done count (at most
 * once a second, and at the end), so GET /v1/golden-runs/{id} shows it. */
struct progress_tee {
    const struct golden_env *env;
    const char *run_id;
    golden_progress_fn fn;
    void *ctx;
    int64_t last_ms;
};

static void progress_tee(void *ctx, size_t done, size_t total)
{
    struct progress_tee *t = ctx;
    if (t->fn)
        t->fn(t->ctx, done, total);
    int64_t now = clock_mono_ms(clock_system());
    if (done < total && now - t->last_ms < 1000)
        return;
    t->last_ms = now;
    store_golden_run_update(t->env->store, t->run_id, "running", (int64_t)done, (int64_t)total,
                            NULL, NULL);
}

enum assay_err golden_run_queue(struct store *store, const struct golden_spec *spec,
                                const char *run_id, char *errbuf)
{
    char *name = dataset_name_from_path(spec->dataset);
    bool cal = dataset_kind_from_path(spec->dataset) == DATASET_KIND_CALIBRATION;
    char *key = golden_run_key(name, cal, spec->target_model);
    json_t *params = json_pack("{s:s, s:s, s:s?}", "dataset", spec->dataset, "kind",
                               cal ? "calibration" : "golden", "name", spec->name);
    char *ptext = json_dumps(params, JSON_COMPACT);
    json_decref(params);
    struct store_golden_run gr = {.run_id = run_id,
                                  .dataset = key,
                                  .target_model = cal ? NULL : spec->target_model,
                                  .status = "queued",
                                  .params_json = ptext};
    enum assay_err err = store_golden_run_create(store, &gr, errbuf);
    free(ptext);
    free(key);
    free(name);
    return err;
}

enum assay_err golden_run_execute(const struct golden_env *env, const struct golden_spec *spec,
                                  const char *run_id_in, golden_progress_fn progress, void *pctx,
                                  json_t **summary, char *errbuf)
{
    *summary = NULL;
    if (!env || !env->store || !env->reg || !env->runner || !spec || !spec->dataset)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "golden: missing argument");
    const struct clock *clock = env->clock ? env->clock : clock_system();
    struct run r = {.env = env, .spec = spec};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    char *run_id = run_id_in ? xstrdup(run_id_in) : golden_run_id_new(clock);
    char *key = NULL;
    bool stored = false;
    struct store_golden_run_list base = {0}, existing = {0};
    struct store_golden_item_list bitems = {0};
    json_t *bsummary = NULL;
    const char *target = NULL;
    int64_t started_ms = clock_now_ms(clock);

    enum assay_err err = dataset_load(spec->dataset, NULL, &r.ds, errbuf);
    if (err != ASSAY_OK)
        goto out;
    err = dataset_rubrics_check(r.ds, env->reg, errbuf);
    if (err != ASSAY_OK)
        goto out;
    bool cal = r.ds->kind == DATASET_KIND_CALIBRATION;
    if (!cal) {
        target = spec->target_model;
        if (!target || !*target) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "%s: a golden set needs a target model (target_model, "
                                   "--target-model)",
                                   r.ds->path);
            goto out;
        }
    }
    err = jobs_build(&r, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (!cal && !env->bedrock) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "golden: no Bedrock client");
        goto out;
    }

    key = golden_run_key(r.ds->name, cal, target);
    /* A run queued by the API (golden_run_queue) is taken over. */
    if (store_golden_run_get(env->store, run_id, &existing, NULL) != ASSAY_OK) {
        err = golden_run_queue(env->store, spec, run_id, errbuf);
        if (err == ASSAY_ERR_INVALID_ARGUMENT) /* queued meanwhile */
            err = ASSAY_OK;
        if (err != ASSAY_OK)
            goto out;
    }
    err =
        store_golden_run_update(env->store, run_id, "running", 0, (int64_t)r.n_jobs, NULL, errbuf);
    if (err != ASSAY_OK)
        goto out;
    stored = true;
    LOG_INFO("golden.run_started", LOG_S("run_id", run_id), LOG_S("dataset", r.ds->name),
             LOG_S("target_model", target ? target : ""), LOG_I("items", r.n_jobs));

    struct progress_tee tee = {.env = env, .run_id = run_id, .fn = progress, .ctx = pctx};
    jobs_run(&r, progress_tee, &tee, target);
    size_t calls = 0, failed = 0;
    const struct job *first_failed = NULL;
    for (size_t i = 0; i < r.n_jobs; i++) {
        if (r.jobs[i].fixed || r.jobs[i].n_slots == 0)
            continue;
        calls++;
        if (r.jobs[i].target_failed) {
            failed++;
            first_failed = first_failed ? first_failed : &r.jobs[i];
        }
    }
    if (calls > 0 && failed == calls && !run_cancelled(&r)) {
        /* Nothing to compare, and never a baseline: the run failed. */
        err = assay_errbuf_set(errbuf, ASSAY_ERR_HTTP_STATUS,
                               "every call to the target model %s failed; the first: %s", target,
                               first_failed->target_error);
        goto out;
    }
    if (run_cancelled(&r)) {
        /* Never a baseline: a cancelled run is stored as failed. */
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CANCELLED, "the run was cancelled (shutdown)");
        goto out;
    }

    err = jobs_store(&r, run_id, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (store_golden_run_latest(env->store, key, "done", run_id, &base, NULL) == ASSAY_OK) {
        err = store_golden_item_list(env->store, base.runs[0].run_id, &bitems, errbuf);
        if (err != ASSAY_OK)
            goto out;
        if (base.runs[0].result_json)
            bsummary =
                jsonutil_parse(base.runs[0].result_json, strlen(base.runs[0].result_json), NULL);
    }
    int64_t now_ms = clock_now_ms(clock);
    *summary = summarise(&r, run_id, target, base.n ? &base : NULL, base.n ? &bitems : NULL,
                         bsummary, started_ms, now_ms);
    char *text = json_dumps(*summary, JSON_COMPACT);
    err = store_golden_run_update(env->store, run_id, "done", (int64_t)r.n_jobs, (int64_t)r.n_jobs,
                                  text, errbuf);
    free(text);
    LOG_INFO("golden.run_done", LOG_S("run_id", run_id), LOG_S("dataset", r.ds->name),
             LOG_B("regressed", json_is_true(json_object_get(*summary, "regressed"))),
             LOG_I("worse_items", json_array_size(json_object_get(*summary, "worse_items"))));
out:
    if (err != ASSAY_OK) {
        json_decref(*summary);
        *summary = NULL;
        if (stored) {
            json_t *fail = json_pack("{s:s, s:s}", "error", assay_err_name(err), "message",
                                     errbuf && errbuf[0] ? errbuf : assay_err_message(err));
            char *ft = json_dumps(fail, JSON_COMPACT);
            json_decref(fail);
            store_golden_run_update(env->store, run_id, "failed", (int64_t)r.done,
                                    (int64_t)r.n_jobs, ft, NULL);
            free(ft);
        }
    }
    json_decref(bsummary);
    store_golden_item_list_clear(&bitems);
    store_golden_run_list_clear(&base);
    store_golden_run_list_clear(&existing);
    run_free(&r);
    free(key);
    free(run_id);
    return err;
}
