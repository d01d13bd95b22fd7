/*
 * judges/llm: the LLM judge's orchestration over aws/bedrock, judges/prompt
 * and judges/verdict. A job holds one chain per repeat; each chain renders,
 * calls, parses and, at most once, asks again (fresh render, or larger
 * budget), plus the switch to text mode when the model refuses forced tools.
 * Chains start and finish on the transport thread, so a job's counters need
 * no lock. Called by judges/judge (the dispatcher) and through it by the
 * worker and `assay judge`.
 */
#include "judges/llm.h"

#include "aws/bedrock.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "judges/prompt.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct text_model {
    char *model_id;
    struct text_model *next;
};

struct llm_judge {
    struct bedrock_client *bedrock;
    char *model_id;
    int budget_factor;
    int (*random_bytes)(void *ctx, unsigned char *out, size_t n);
    void *random_ctx;
    llm_call_fn on_call;
    void *on_call_ctx;
    pthread_mutex_t mu; /* guards text_models */
    struct text_model *text_models;
};

struct job;

/* One chain: render -> call -> parse, with its one re-ask. */
struct chain {
    struct job *job;
    int text_mode;
    int reasked;    /* the verdict's one retry has been used */
    int fell_back;  /* switched to text mode after a tool refusal */
    int max_tokens; /* 0: the rubric's */
    struct verdict v;
    struct verdict_usage usage; /* summed over the chain's calls */
    int64_t model_latency_ms;   /* summed; -1 while none */
    int attempts;
    enum assay_err err; /* what ended the chain when it was not an answer */
};

struct job {
    struct llm_judge *j;
    const struct rubric *r;
    char *model_id;
    char *text[4]; /* input, output, context, reference (copies, redacted) */
    struct rubric_sample s;
    llm_done_fn done;
    void *ctx;
    int64_t started_ms;
    int n;
    int remaining;
    const char *early_reason; /* unscorable before any call, or NULL */
    char early_detail[VERDICT_DETAIL_MAX];
    enum assay_err early_err;
    struct chain chains[];
};

/* ---- the judge ---- */

struct llm_judge *llm_judge_new(const struct llm_judge_options *opt, char *errbuf)
{
    if (!opt || !opt->bedrock) {
        assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                         "the LLM judge needs a Bedrock client");
        return NULL;
    }
    struct llm_judge *j = xcalloc(1, sizeof *j);
    j->bedrock = opt->bedrock;
    j->model_id = opt->model_id && opt->model_id[0] ? xstrdup(opt->model_id) : NULL;
    j->budget_factor = opt->budget_factor > 1 ? opt->budget_factor : LLM_BUDGET_FACTOR_DEFAULT;
    j->random_bytes = opt->random_bytes;
    j->random_ctx = opt->random_ctx;
    j->on_call = opt->on_call;
    j->on_call_ctx = opt->on_call_ctx;
    pthread_mutex_init(&j->mu, NULL);
    return j;
}

void llm_judge_free(struct llm_judge *j)
{
    if (!j)
        return;
    while (j->text_models) {
        struct text_model *m = j->text_models;
        j->text_models = m->next;
        free(m->model_id);
        free(m);
    }
    pthread_mutex_destroy(&j->mu);
    free(j->model_id);
    free(j);
}

const char *llm_judge_model_for(const struct llm_judge *j, const struct rubric *r)
{
    return r && r->model_id && r->model_id[0] ? r->model_id : j->model_id;
}

int llm_judge_model_text_mode(struct llm_judge *j, const char *model_id)
{
    int found = 0;
    pthread_mutex_lock(&j->mu);
    for (struct text_model *m = j->text_models; m && !found; m = m->next)
        found = strcmp(m->model_id, model_id) == 0;
    pthread_mutex_unlock(&j->mu);
    return found;
}

static void remember_text_mode(struct llm_judge *j, const char *model_id)
{
    if (llm_judge_model_text_mode(j, model_id))
        return;
    struct text_model *m = xcalloc(1, sizeof *m);
    m->model_id = xstrdup(model_id);
    pthread_mutex_lock(&j->mu);
    m->next = j->text_models;
    j->text_models = m;
    pthread_mutex_unlock(&j->mu);
    LOG_INFO("llm.text_fallback", LOG_S("model_id", model_id));
}

/* ---- a job ---- */

static void job_free(struct job *job)
{
    for (int i = 0; i < job->n; i++)
        verdict_clear(&job->chains[i].v);
    for (int i = 0; i < 4; i++)
        free(job->text[i]);
    free(job->model_id);
    free(job);
}

/* Every chain is over: combine, label, hand over, free. */
static void job_finish(struct job *job)
{
    const struct rubric *r = job->r;
    struct verdict out;
    verdict_init(&out);
    enum assay_err err = ASSAY_OK;
    int attempts = 0;
    if (job->early_reason) {
        verdict_set_rubric(&out, r);
        verdict_set_unscorable(&out, job->early_reason, VERDICT_RETRY_NONE, job->early_detail);
        err = job->early_err;
    } else {
        for (int i = 0; i < job->n; i++) {
            struct chain *c = &job->chains[i];
            c->v.usage = c->usage;
            c->v.latency_ms = c->model_latency_ms;
            attempts += c->attempts;
            if (c->v.outcome != VERDICT_SCORED && c->err != ASSAY_OK && err == ASSAY_OK)
                err = c->err;
        }
        if (job->n == 1) {
            out = job->chains[0].v;
            verdict_init(&job->chains[0].v);
        } else {
            struct verdict *vs = xcalloc((size_t)job->n, sizeof *vs);
            for (int i = 0; i < job->n; i++)
                vs[i] = job->chains[i].v; /* shallow: borrowed by combine */
            verdict_combine(r, vs, (size_t)job->n, &out);
            free(vs);
        }
        if (out.outcome == VERDICT_SCORED)
            err = ASSAY_OK;
    }
    verdict_set_rubric(&out, r);
    verdict_set_judge(&out, job->model_id);
    out.attempts = attempts;
    out.elapsed_ms = clock_mono_ms(NULL) - job->started_ms;
    out.retry = VERDICT_RETRY_NONE;
    LOG_DEBUG("llm.verdict", LOG_S("rubric", r->name), LOG_S("model_id", job->model_id),
              LOG_B("scored", out.outcome == VERDICT_SCORED), LOG_S("reason", out.reason),
              LOG_I("attempts", attempts), LOG_I("elapsed_ms", out.elapsed_ms));
    job->done(job->ctx, err, &out);
    verdict_clear(&out);
    job_free(job);
}

static void chain_end(struct chain *c)
{
    struct job *job = c->job;
    if (--job->remaining == 0)
        job_finish(job);
}

static void chain_fail(struct chain *c, enum assay_err err, const char *reason, const char *detail)
{
    verdict_clear(&c->v);
    verdict_set_rubric(&c->v, c->job->r);
    verdict_set_unscorable(&c->v, reason, VERDICT_RETRY_NONE, detail);
    c->err = err;
    chain_end(c);
}

static void on_answer(void *ctx, enum assay_err err, const struct bedrock_result *res);

/* Renders and sends the chain's next call (on the transport thread). */
static void chain_send(struct chain *c)
{
    struct job *job = c->job;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct prompt_options po = {.text_fallback = c->text_mode,
                                .max_tokens = c->max_tokens,
                                .random_bytes = job->j->random_bytes,
                                .random_ctx = job->j->random_ctx};
    json_t *body = NULL;
    enum assay_err err = prompt_render(job->r, &job->s, &po, &body, errbuf);
    if (err != ASSAY_OK) {
        chain_fail(c, err, err == ASSAY_ERR_TOO_LARGE ? "sample_too_large" : "prompt_failed",
                   errbuf);
        return;
    }
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text) {
        chain_fail(c, ASSAY_ERR_INTERNAL, "prompt_failed", "could not serialise the request");
        return;
    }
    err =
        bedrock_converse(job->j->bedrock, job->model_id, text, strlen(text), on_answer, c, errbuf);
    free(text);
    if (err != ASSAY_OK)
        chain_fail(c, err, err == ASSAY_ERR_CANCELLED ? "cancelled" : "bedrock_error", errbuf);
}

static int contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle) != NULL;
}

/* Bedrock's answer for a model that cannot be forced to call a tool:
 * "This model doesn't support the toolConfig.toolChoice.tool field. ..." or
 * "This model doesn't support tool use." */
static int refuses_forced_tools(const struct bedrock_result *res)
{
    const char *m = res->error_message;
    return strcmp(res->error_code, "ValidationException") == 0 && contains(m, "support") &&
           (contains(m, "toolChoice") || contains(m, "tool use") || contains(m, "toolConfig") ||
            contains(m, "Tool use"));
}

/* The reason code for a call that ended without an answer. */
static const char *failure_reason(enum assay_err err, const struct bedrock_result *res)
{
    const char *code = res->error_code;
    switch (err) {
    case ASSAY_ERR_TIMEOUT:
        return "timeout";
    case ASSAY_ERR_TRANSPORT:
        return "transport_error";
    case ASSAY_ERR_CANCELLED:
        return "cancelled";
    case ASSAY_ERR_NO_CREDENTIALS:
    case ASSAY_ERR_CREDENTIALS_EXPIRED:
        return "no_credentials";
    case ASSAY_ERR_HTTP_STATUS:
        break;
    default:
        return "bedrock_error";
    }
    if (strcmp(code, "ModelNotReadyException") == 0 ||
        strcmp(code, "ServiceUnavailableException") == 0 || res->status >= 500)
        return "bedrock_unavailable";
    if (strstr(code, "Throttl") || res->status == 429)
        return "throttled";
    if (strcmp(code, "ValidationException") == 0)
        return "validation_error";
    if (strcmp(code, "AccessDeniedException") == 0)
        return "access_denied";
    if (strcmp(code, "ResourceNotFoundException") == 0)
        return "model_not_found";
    if (strcmp(code, "ModelTimeoutException") == 0)
        return "timeout";
    return "bedrock_client_error";
}

static void on_answer(void *ctx, enum assay_err err, const struct bedrock_result *res)
{
    struct chain *c = ctx;
    struct job *job = c->job;
    c->attempts += res->attempts;
    if (job->j->on_call)
        job->j->on_call(job->j->on_call_ctx, job->ctx, job->model_id, err, res);
    if (err != ASSAY_OK) {
        if (err == ASSAY_ERR_HTTP_STATUS && !c->text_mode && !c->fell_back &&
            refuses_forced_tools(res)) {
            c->text_mode = 1;
            c->fell_back = 1;
            remember_text_mode(job->j, job->model_id);
            chain_send(c);
            return;
        }
        char detail[VERDICT_DETAIL_MAX];
        snprintf(detail, sizeof detail, "%s%s%.160s (%d attempt%s)", res->error_code,
                 res->error_code[0] ? ": " : "", res->error_message, res->attempts,
                 res->attempts == 1 ? "" : "s");
        chain_fail(c, err, failure_reason(err, res), detail);
        return;
    }
    verdict_parse(job->r, buf_cstr(&res->body), res->body.len, &c->v);
    /* Usage is paid whatever the outcome; Bedrock's own count is used when
     * the body's usage could not be parsed. */
    struct verdict_usage u = c->v.usage;
    if (u.input_tokens == 0 && u.output_tokens == 0) {
        u.input_tokens = res->input_tokens;
        u.output_tokens = res->output_tokens;
        u.cache_read_input_tokens = res->cache_read_input_tokens;
        u.cache_write_input_tokens = res->cache_write_input_tokens;
    }
    c->usage.input_tokens += u.input_tokens;
    c->usage.output_tokens += u.output_tokens;
    c->usage.cache_read_input_tokens += u.cache_read_input_tokens;
    c->usage.cache_write_input_tokens += u.cache_write_input_tokens;
    if (c->v.latency_ms >= 0)
        c->model_latency_ms = (c->model_latency_ms < 0 ? 0 : c->model_latency_ms) + c->v.latency_ms;
    if (c->v.outcome == VERDICT_SCORED || c->reasked || c->v.retry == VERDICT_RETRY_NONE) {
        c->err = ASSAY_OK;
        chain_end(c);
        return;
    }
    c->reasked = 1;
    if (c->v.retry == VERDICT_RETRY_LARGER_BUDGET) {
        int cur = c->max_tokens > 0 ? c->max_tokens : job->r->max_tokens;
        long next = (long)cur * job->j->budget_factor;
        c->max_tokens = next > RUBRIC_MAX_TOKENS_MAX ? RUBRIC_MAX_TOKENS_MAX : (int)next;
    }
    LOG_DEBUG("llm.reask", LOG_S("rubric", job->r->name), LOG_S("model_id", job->model_id),
              LOG_S("reason", c->v.reason), LOG_I("max_tokens", c->max_tokens));
    chain_send(c);
}

static void on_start(void *ctx, enum assay_err err)
{
    struct job *job = ctx;
    if (err != ASSAY_OK) {
        /* The transport is shutting down: every chain ends cancelled. */
        job->early_reason = "cancelled";
        snprintf(job->early_detail, sizeof job->early_detail, "%s", "the transport shut down");
        job->early_err = err;
    }
    if (job->early_reason) {
        job_finish(job);
        return;
    }
    /* chain_send may end a chain at once (and the last one frees the job):
     * read n first. */
    int n = job->n;
    for (int i = 0; i < n; i++)
        chain_send(&job->chains[i]);
}

/* Copies (and redacts) one field; returns an error with detail on failure. */
static enum assay_err copy_field(const char *in, const struct redact_set *redact, char **out,
                                 char *errbuf)
{
    *out = NULL;
    if (!in)
        return ASSAY_OK;
    if (!redact) {
        *out = xstrdup(in);
        return ASSAY_OK;
    }
    struct buf b = BUF_INIT;
    enum assay_err err = redact_set_apply(redact, in, strlen(in), &b, NULL, errbuf);
    if (err != ASSAY_OK) {
        buf_clear(&b);
        return err;
    }
    *out = b.data ? buf_detach(&b, NULL) : xstrdup("");
    return ASSAY_OK;
}

enum assay_err llm_judge_run(struct llm_judge *j, const struct rubric *r,
                             const struct rubric_sample *s, const struct redact_set *redact,
                             llm_done_fn done, void *ctx, char *errbuf)
{
    if (!j || !r || !s || !done)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "missing argument");
    if (r->kind != RUBRIC_KIND_LLM)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "%s is a %s rubric, not llm",
                                r->name, rubric_kind_name(r->kind));
    const char *model = llm_judge_model_for(j, r);
    if (!model)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "%s: no judge model (judge.model_id, or the rubric's model_id)",
                                r->name);
    int n = r->repeats > 0 ? r->repeats : 1;
    struct job *job = xcalloc(1, sizeof *job + (size_t)n * sizeof(struct chain));
    job->j = j;
    job->r = r;
    job->model_id = xstrdup(model);
    job->done = done;
    job->ctx = ctx;
    job->started_ms = clock_mono_ms(NULL);
    job->n = n;
    job->remaining = n;
    int text_mode = llm_judge_model_text_mode(j, model);
    for (int i = 0; i < n; i++) {
        struct chain *c = &job->chains[i];
        c->job = job;
        c->text_mode = text_mode;
        c->fell_back = text_mode;
        c->model_latency_ms = -1;
        verdict_init(&c->v);
    }

    /* Problems of the sample itself become an unscorable verdict, delivered
     * like any other. */
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = rubric_sample_check(r, s, detail);
    if (err != ASSAY_OK) {
        job->early_reason = "missing_field";
        job->early_err = err;
    }
    const char *in[4] = {s->input, s->output, s->context, s->reference};
    for (int i = 0; i < 4 && !job->early_reason; i++) {
        err = copy_field(in[i], redact, &job->text[i], detail);
        if (err != ASSAY_OK) {
            job->early_reason = "redaction_failed";
            job->early_err = err;
        }
    }
    if (job->early_reason)
        snprintf(job->early_detail, sizeof job->early_detail, "%s", detail);
    job->s = (struct rubric_sample){.input = job->text[0],
                                    .output = job->text[1],
                                    .context = job->text[2],
                                    .reference = job->text[3]};

    err = http_transport_call_later(bedrock_client_transport(j->bedrock), 0, on_start, job);
    if (err != ASSAY_OK) {
        job_free(job);
        return assay_errbuf_set(errbuf, err, "the transport is shutting down");
    }
    return ASSAY_OK;
}
