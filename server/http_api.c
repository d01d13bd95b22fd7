/*
 * server/http_api: routing, authentication, body streaming, error shapes and
 * every route of the HTTP API, on libmicrohttpd. Started by server/cmd_serve.
 * docs/internals/API.md describes the behaviours decided here.
 */
#include "server/http_api.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "judges/rubric.h"
#include "monitor/publish.h"
#include "server/config.h"
#include "server/ingest_redact.h"
#include "server/prom.h"
#include "server/sample.h"
#include "server/sampler.h"
#include "server/series.h"
#include "server/store.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEPTH_REFRESH_MS 250
#define ALARMS_LIMIT_DEFAULT 100
#define ALARMS_LIMIT_MAX 1000
#define REBASELINE_BODY_MAX 4096

enum route {
    R_SAMPLES,
    R_SAMPLE,
    R_SERIES,
    R_REBASELINE,
    R_ALARMS,
    R_GOLDEN_RUNS,
    R_GOLDEN_RUN,
    R_HEALTHZ,
    R_READYZ,
    R_METRICS,
    R_OTHER
};

static const struct {
    const char *label; /* the metrics label */
    const char *method;
} routes[] = {
    [R_SAMPLES] = {"/v1/samples", "POST"},
    [R_SAMPLE] = {"/v1/samples/{id}", "GET"},
    [R_SERIES] = {"/v1/series", "GET"},
    [R_REBASELINE] = {"/v1/series/rebaseline", "POST"},
    [R_ALARMS] = {"/v1/alarms", "GET"},
    [R_GOLDEN_RUNS] = {"/v1/golden-runs", "POST"},
    [R_GOLDEN_RUN] = {"/v1/golden-runs/{id}", "GET"},
    [R_HEALTHZ] = {"/healthz", "GET"},
    [R_READYZ] = {"/readyz", "GET"},
    [R_METRICS] = {"/metrics", "GET"},
    [R_OTHER] = {"other", NULL},
};

enum insert_state { INSERT_NONE, INSERT_PENDING, INSERT_DONE };

struct http_api {
    struct http_api_options o;
    struct MHD_Daemon *daemon;
    bool quiesced; /* the listening socket was taken back and closed */
    uint16_t port;
    pthread_rwlock_t store_lock; /* readers use the store and series; the setters write */
    struct store *store;
    struct series *series; /* under store_lock */
    atomic_bool ready;
    atomic_bool draining;
    atomic_int inflight; /* suspended inserts not yet completed */
    atomic_ullong next_request;
    char id_prefix[9];
    void (*jobs_hook)(void *ctx);
    void *jobs_ctx;
    http_api_golden_fn golden_fn;
    void *golden_ctx;
    struct publish *publish;
    pthread_mutex_t depth_mu;
    int64_t depth_cached;
    int64_t depth_at_ms;
};

/* Per-request state: libmicrohttpd's per-request slot, freed in completed(). */
struct request {
    struct http_api *api;
    struct MHD_Connection *con;
    enum route route;
    const char *method; /* borrowed from libmicrohttpd for the request's lifetime */
    char path_id[SAMPLE_ID_MAX + 2];
    char id[32];
    double start_s;
    const struct config_api_key *key; /* NULL when auth is open */
    bool responded;
    int status;

    /* POST /v1/samples */
    struct buf body;
    bool too_large;
    enum sample_format fmt;
    struct sample_batch batch;
    struct store_sample *rows;
    char **docs;
    enum sampler_decision *decisions;
    bool counted_inflight;
    atomic_int insert_state;
    enum assay_err insert_err;
    char insert_detail[ASSAY_ERRBUF_SIZE];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ responses */

static enum MHD_Result send_buf(struct request *r, int status, const char *content_type,
                                struct buf *body, const char *hname, const char *hvalue)
{
    struct http_api *api = r->api;
    size_t len = 0;
    char *data = buf_detach(body, &len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", r->id);
    if (hname)
        MHD_add_response_header(resp, hname, hvalue);
    if (atomic_load(&api->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(r->con, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->responded = true;
    r->status = status;
    prom_request_observe(api->o.prom, routes[r->route].label, status, now_s() - r->start_s);
    return ret;
}

static enum MHD_Result send_json(struct request *r, int status, struct buf *body)
{
    return send_buf(r, status, "application/json", body, NULL, NULL);
}

/* {"error":{"code","message","request_id"[,"index"][,"field"]}} */
static enum MHD_Result send_error(struct request *r, enum assay_err err, const char *message,
                                  long index, const char *field)
{
    struct buf b = BUF_INIT;
    const char *hname = NULL;
    char hvalue[32] = "";
    buf_append_str(&b, "{\"error\":{\"code\":\"");
    buf_append_str(&b, assay_err_name(err));
    buf_append_str(&b, "\",\"message\":\"");
    const char *msg = message && *message ? message : assay_err_message(err);
    buf_append_json_escaped(&b, msg, strlen(msg));
    buf_appendf(&b, "\",\"request_id\":\"%s\"", r->id);
    if (index >= 0)
        buf_appendf(&b, ",\"index\":%ld", index);
    if (field && *field) {
        buf_append_str(&b, ",\"field\":\"");
        buf_append_json_escaped(&b, field, strlen(field));
        buf_append_char(&b, '"');
    }
    buf_append_str(&b, "}}\n");
    if (err == ASSAY_ERR_BUSY || err == ASSAY_ERR_NOT_READY) {
        hname = MHD_HTTP_HEADER_RETRY_AFTER;
        snprintf(hvalue, sizeof hvalue, "%lld", (long long)r->api->o.cfg->server.retry_after_s);
    } else if (err == ASSAY_ERR_UNAUTHORIZED) {
        hname = MHD_HTTP_HEADER_WWW_AUTHENTICATE;
        snprintf(hvalue, sizeof hvalue, "Bearer realm=\"assay\"");
    } else if (err == ASSAY_ERR_METHOD_NOT_ALLOWED) {
        hname = MHD_HTTP_HEADER_ALLOW;
        snprintf(hvalue, sizeof hvalue, "%s", routes[r->route].method);
    }
    return send_buf(r, assay_err_http_status(err), "application/json", &b, hname, hvalue);
}

/* A store read failed: the detail goes to the log (it may name files), the client gets the code. */
static enum MHD_Result send_store_error(struct request *r, enum assay_err err, const char *detail)
{
    LOG_ERROR("http.store_error", LOG_S("request_id", r->id), LOG_S("detail", detail));
    return send_error(r, err, NULL, -1, NULL);
}

static void json_member_str(struct buf *b, const char *key, const char *v, bool comma)
{
    buf_appendf(b, "%s\"%s\":", comma ? "," : "", key);
    if (!v) {
        buf_append_str(b, "null");
        return;
    }
    buf_append_char(b, '"');
    buf_append_json_escaped(b, v, strlen(v));
    buf_append_char(b, '"');
}

static enum MHD_Result send_jansson(struct request *r, int status, json_t *v)
{
    struct buf b = BUF_INIT;
    char *s = jsonutil_dump(v);
    buf_append_str(&b, s);
    buf_append_char(&b, '\n');
    free(s);
    json_decref(v);
    return send_json(r, status, &b);
}

/* ------------------------------------------------------------- helpers */

static const char *header(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->con, MHD_HEADER_KIND, name);
}

static const char *query(struct request *r, const char *name)
{
    return MHD_lookup_connection_value(r->con, MHD_GET_ARGUMENT_KIND, name);
}

static struct store *store_acquire(struct http_api *api)
{
    pthread_rwlock_rdlock(&api->store_lock);
    if (!api->store)
        pthread_rwlock_unlock(&api->store_lock);
    return api->store;
}

static void store_release(struct http_api *api)
{
    pthread_rwlock_unlock(&api->store_lock);
}

/*
 * The API key presented (Authorization: Bearer KEY, else x-api-key), checked
 * by its SHA-256 against the configured ones. With no keys configured the API
 * is open and *key is NULL.
 */
static enum assay_err authenticate(struct request *r)
{
    const struct config *cfg = r->api->o.cfg;
    r->key = NULL;
    if (cfg->n_keys == 0)
        return ASSAY_OK;
    const char *presented = NULL;
    const char *h = header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        presented = h + 7;
        while (*presented == ' ')
            presented++;
    }
    if (!presented || !*presented)
        presented = header(r, "x-api-key");
    if (!presented || !*presented)
        return ASSAY_ERR_UNAUTHORIZED;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)presented, strlen(presented), digest);
    r->key = config_key_find(cfg, digest);
    return r->key ? ASSAY_OK : ASSAY_ERR_UNAUTHORIZED;
}

static bool allows(const struct request *r, const char *app)
{
    return r->api->o.cfg->n_keys == 0 || (r->key && config_api_key_allows(r->key, app));
}

static int rubric_known(void *ctx, const char *name)
{
    return rubric_registry_find(ctx, name) != NULL;
}

static int64_t queue_depth(struct http_api *api, struct store *st)
{
    int64_t now = clock_mono_ms(NULL);
    pthread_mutex_lock(&api->depth_mu);
    bool stale = api->depth_at_ms == 0 || now - api->depth_at_ms >= DEPTH_REFRESH_MS;
    int64_t v = api->depth_cached;
    pthread_mutex_unlock(&api->depth_mu);
    if (!stale)
        return v;
    int64_t queued = 0, judging = 0;
    if (store_queue_depth(st, &queued, &judging) != ASSAY_OK)
        return v;
    pthread_mutex_lock(&api->depth_mu);
    api->depth_cached = queued;
    api->depth_at_ms = now;
    pthread_mutex_unlock(&api->depth_mu);
    return queued;
}

static void iso_ms(int64_t ms, char out[25])
{
    clock_format_iso8601_ms(ms, out);
}

/* ------------------------------------------------------- POST /v1/samples */

static void on_inserted(void *ctx, enum assay_err err, const char *detail)
{
    struct request *r = ctx;
    r->insert_err = err;
    snprintf(r->insert_detail, sizeof r->insert_detail, "%s", detail && err ? detail : "");
    atomic_store(&r->insert_state, INSERT_DONE);
    MHD_resume_connection(r->con);
}

static void release_chosen(struct request *r, bool only_duplicates)
{
    for (size_t i = 0; i < r->batch.n; i++)
        if (r->decisions[i] == SAMPLER_SAMPLED && (!only_duplicates || r->rows[i].duplicate))
            sampler_release(r->api->o.sampler, r->batch.items[i].app, 1);
}

static enum MHD_Result samples_answer(struct request *r)
{
    struct http_api *api = r->api;
    if (r->insert_err != ASSAY_OK) {
        release_chosen(r, false);
        LOG_ERROR("http.samples_not_stored", LOG_S("request_id", r->id),
                  LOG_S("error", assay_err_name(r->insert_err)), LOG_S("detail", r->insert_detail),
                  LOG_I("samples", r->batch.n));
        if (r->insert_err == ASSAY_ERR_CANCELLED)
            return send_error(r, ASSAY_ERR_NOT_READY, "the service is shutting down", -1, NULL);
        return send_error(r, ASSAY_ERR_IO, "the samples could not be stored; none was accepted", -1,
                          NULL);
    }
    release_chosen(r, true);
    size_t sampled = 0, duplicates = 0;
    int64_t new_jobs = 0;
    for (size_t i = 0; i < r->batch.n; i++) {
        const struct store_sample *row = &r->rows[i];
        sampled += row->duplicate ? row->stored_sampled : row->sampled;
        duplicates += row->duplicate;
        if (!row->duplicate && row->sampled)
            new_jobs += (int64_t)row->n_rubrics;
    }
    struct buf b = BUF_INIT;
    buf_appendf(&b, "{\"accepted\":%zu,\"sampled\":%zu,\"duplicates\":%zu,\"samples\":[",
                r->batch.n, sampled, duplicates);
    for (size_t i = 0; i < r->batch.n; i++) {
        const struct sample *s = &r->batch.items[i];
        const struct store_sample *row = &r->rows[i];
        bool is_sampled = row->duplicate ? row->stored_sampled : row->sampled;
        buf_append_str(&b, i ? ",{\"id\":\"" : "{\"id\":\"");
        buf_append_json_escaped(&b, s->id, strlen(s->id));
        buf_appendf(&b, "\",\"sampled\":%s", is_sampled ? "true" : "false");
        if (row->duplicate)
            buf_append_str(&b, ",\"duplicate\":true");
        else if (r->decisions[i] == SAMPLER_DROPPED)
            buf_append_str(&b, ",\"dropped\":true");
        buf_append_char(&b, '}');
        bool dropped = !row->duplicate && r->decisions[i] == SAMPLER_DROPPED;
        prom_samples_add(api->o.prom, s->app, row->duplicate ? 0 : 1,
                         !row->duplicate && row->sampled, dropped, row->duplicate);
        if (api->publish && !row->duplicate)
            publish_samples_add(api->publish, s->app, 1, 0, dropped, 0);
        LOG_DEBUG("sample.accepted", LOG_S("request_id", r->id), LOG_S("app", s->app),
                  LOG_S("sample_id", s->id), LOG_S("trace_id", s->trace_id),
                  LOG_B("sampled", is_sampled), LOG_B("duplicate", row->duplicate));
    }
    buf_append_str(&b, "]}\n");
    pthread_mutex_lock(&api->depth_mu);
    api->depth_cached += new_jobs;
    pthread_mutex_unlock(&api->depth_mu);
    if (new_jobs > 0 && api->jobs_hook)
        api->jobs_hook(api->jobs_ctx);
    return send_json(r, 202, &b);
}

static enum MHD_Result samples_post(struct request *r)
{
    struct http_api *api = r->api;
    const struct config *cfg = api->o.cfg;
    if (r->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body is larger than %lld bytes",
                 (long long)cfg->server.max_body_bytes);
        return send_error(r, ASSAY_ERR_TOO_LARGE, msg, -1, NULL);
    }
    struct sample_parse_opts opts = {
        .max_batch = (size_t)cfg->server.max_batch,
        .now_ms = clock_now_ms(api->o.clock),
        .header_trace_id = header(r, "X-Amzn-Trace-Id"),
        .rubric_known = rubric_known,
        .rubric_ctx = (void *)api->o.rubrics,
    };
    struct sample_error e;
    /* The body stays until completed(): the samples borrow it (sample_doc_text). */
    enum assay_err err = sample_batch_parse(r->body.data ? r->body.data : "", r->body.len, r->fmt,
                                            &opts, &r->batch, &e);
    if (err != ASSAY_OK)
        return send_error(r, e.code, e.message, e.index, e.field);

    size_t n = r->batch.n;
    const struct config_app **apps = xcalloc(n, sizeof *apps);
    for (size_t i = 0; i < n; i++) {
        const struct sample *s = &r->batch.items[i];
        apps[i] = config_app_find(cfg, s->app);
        if (!apps[i]) {
            char msg[160];
            snprintf(msg, sizeof msg, "app \"%s\" is not configured and there is no apps.default",
                     s->app);
            free(apps);
            return send_error(r, ASSAY_ERR_INVALID_ARGUMENT, msg, (long)i, "app");
        }
        if (!allows(r, s->app)) {
            char msg[160];
            snprintf(msg, sizeof msg, "the API key may not post samples for app \"%s\"", s->app);
            free(apps);
            return send_error(r, ASSAY_ERR_FORBIDDEN, msg, (long)i, "app");
        }
    }
    /* Apps with "redact": findings recorded, text redacted, before anything is stored. */
    if ((err = ingest_redact_batch(api->o.redact, &r->batch, &e)) != ASSAY_OK) {
        free(apps);
        return send_error(r, e.code, e.message, e.index, e.field);
    }

    struct store *st = store_acquire(api);
    if (!st || !atomic_load(&api->ready) || atomic_load(&api->draining)) {
        if (st)
            store_release(api);
        free(apps);
        return send_error(r, ASSAY_ERR_NOT_READY, NULL, -1, NULL);
    }
    int64_t depth = queue_depth(api, st);
    if (depth >= cfg->server.max_queue) {
        store_release(api);
        free(apps);
        char msg[128];
        snprintf(msg, sizeof msg, "%lld jobs are queued (server.max_queue %lld); retry later",
                 (long long)depth, (long long)cfg->server.max_queue);
        return send_error(r, ASSAY_ERR_BUSY, msg, -1, NULL);
    }

    r->rows = xcalloc(n, sizeof *r->rows);
    r->docs = xcalloc(n, sizeof *r->docs);
    r->decisions = xcalloc(n, sizeof *r->decisions);
    for (size_t i = 0; i < n; i++) {
        const struct sample *s = &r->batch.items[i];
        struct store_sample *row = &r->rows[i];
        r->decisions[i] = sampler_decide(api->o.sampler, apps[i], s->app, s->id, s->force,
                                         s->feedback == SAMPLE_FEEDBACK_NEGATIVE, NULL);
        row->sampled = r->decisions[i] == SAMPLER_SAMPLED;
        /* A sample not judged is stored without its text unless its app keeps it. */
        if (row->sampled || apps[i]->keep_unsampled_text)
            r->docs[i] = sample_doc_text(s, &row->doc_len);
        row->app = s->app;
        row->id = s->id;
        row->doc = r->docs[i]; /* NULL: no text */
        row->trace_id = s->trace_id;
        row->model_id = s->model_id;
        row->received_ms = opts.now_ms;
        row->rubrics = s->n_rubrics ? s->rubrics : (const char *const *)apps[i]->rubrics;
        row->n_rubrics = s->n_rubrics ? s->n_rubrics : apps[i]->n_rubrics;
    }
    free(apps);

    /*
     * Suspend before handing the batch over: the store's callback resumes the
     * connection, possibly before this function returns.
     */
    atomic_fetch_add(&api->inflight, 1);
    r->counted_inflight = true;
    atomic_store(&r->insert_state, INSERT_PENDING);
    MHD_suspend_connection(r->con);
    char detail[ASSAY_ERRBUF_SIZE] = "";
    err = store_sample_insert_async(st, r->rows, n, on_inserted, r, detail);
    store_release(api);
    if (err != ASSAY_OK) {
        /* The callback will not fire: answer from here once resumed. */
        r->insert_err = err;
        snprintf(r->insert_detail, sizeof r->insert_detail, "%s", detail);
        atomic_store(&r->insert_state, INSERT_DONE);
        MHD_resume_connection(r->con);
    }
    return MHD_YES;
}

/* ----------------------------------------------------- GET /v1/samples/{id} */

static json_t *verdict_json(const struct store_job_info *j)
{
    json_t *v = json_object();
    json_object_set_new(v, "rubric", json_string(j->rubric));
    json_object_set_new(v, "status", json_string(store_job_state_name(j->state)));
    /* claims: how often the job was taken from the queue (> 1 after a crash or a shutdown) */
    json_object_set_new(v, "claims", json_integer(j->attempts));
    if (!j->has_verdict)
        return v;
    const struct store_verdict *d = &j->verdict;
    if (d->unscorable) {
        json_object_set_new(v, "unscorable", json_true());
        json_object_set_new(v, "reason", d->reason ? json_string(d->reason) : json_null());
        if (d->detail)
            json_object_set_new(v, "detail", json_string(d->detail));
    } else {
        json_object_set_new(v, "score", json_real(d->score));
        json_object_set_new(v, "raw_score", json_real(d->raw_score));
        json_object_set_new(v, "pass", json_boolean(d->pass));
    }
    json_object_set_new(v, "reasoning", d->reasoning ? json_string(d->reasoning) : json_null());
    json_object_set_new(v, "judge", d->judge ? json_string(d->judge) : json_null());
    if (d->rubric_version)
        json_object_set_new(v, "rubric_version", json_string(d->rubric_version));
    json_object_set_new(v, "latency_ms",
                        d->latency_ms >= 0 ? json_integer(d->latency_ms) : json_null());
    json_object_set_new(v, "input_tokens", json_integer(d->input_tokens));
    json_object_set_new(v, "output_tokens", json_integer(d->output_tokens));
    json_object_set_new(v, "attempts", json_integer(d->attempts)); /* judge calls made */
    return v;
}

static enum MHD_Result sample_get(struct request *r)
{
    const char *app = query(r, "app");
    if (!sample_id_valid(r->path_id))
        return send_error(r, ASSAY_ERR_INVALID_ARGUMENT,
                          "the id must be 1-128 characters of [A-Za-z0-9._:-]", -1, "id");
    if (app && !sample_app_valid(app))
        return send_error(r, ASSAY_ERR_INVALID_ARGUMENT,
                          "app must be 1-64 characters of [A-Za-z0-9._-]", -1, "app");
    if (app && !allows(r, app))
        return send_error(r, ASSAY_ERR_FORBIDDEN, "the API key may not read this app", -1, "app");
    struct store *st = store_acquire(r->api);
    if (!st)
        return send_error(r, ASSAY_ERR_NOT_READY, NULL, -1, NULL);
    struct store_sample_info info = {0};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = store_sample_get(st, app, r->path_id, &info, errbuf);
    store_release(r->api);
    if (err == ASSAY_ERR_NOT_FOUND)
        return send_error(r, err, "no sample has this id", -1, NULL);
    if (err == ASSAY_ERR_INVALID_ARGUMENT)
        return send_error(r, err, "the id exists under several apps; add ?app=NAME", -1, "app");
    if (err != ASSAY_OK) {
        return send_store_error(r, err, errbuf);
    }
    if (!allows(r, info.app)) {
        store_sample_info_clear(&info);
        return send_error(r, ASSAY_ERR_FORBIDDEN, "the API key may not read this app", -1, "app");
    }
    json_t *v = json_object();
    char when[25];
    iso_ms(info.received_ms, when);
    json_object_set_new(v, "app", json_string(info.app));
    json_object_set_new(v, "id", json_string(info.id));
    json_object_set_new(v, "status", json_string(store_sample_status_name(info.status)));
    json_object_set_new(v, "sampled", json_boolean(info.sampled));
    json_object_set_new(v, "trace_id", info.trace_id ? json_string(info.trace_id) : json_null());
    json_object_set_new(v, "model_id", info.model_id ? json_string(info.model_id) : json_null());
    json_object_set_new(v, "received", json_string(when));
    json_t *verdicts = json_array();
    for (size_t i = 0; i < info.n_jobs; i++)
        json_array_append_new(verdicts, verdict_json(&info.jobs[i]));
    json_object_set_new(v, "verdicts", verdicts);
    /* A sample stored without its text (not sampled, apps.NAME.keep_unsampled_text off). */
    json_object_set_new(v, "text_kept", json_boolean(info.doc != NULL));
    json_t *doc = info.doc ? json_loadb(info.doc, info.doc_len, 0, NULL) : NULL;
    json_object_set_new(v, "sample", doc ? doc : json_null());
    store_sample_info_clear(&info);
    return send_jansson(r, 200, v);
}

/* -------------------------------------------------- series, alarms, golden */

static enum MHD_Result series_list(struct request *r)
{
    const char *app = query(r, "app");
    if (app && !sample_app_valid(app))
        return send_error(r, ASSAY_ERR_INVALID_ARGUMENT, "app is not a valid app name", -1, "app");
    struct store *st = store_acquire(r->api);
    if (!st)
        return send_error(r, ASSAY_ERR_NOT_READY, NULL, -1, NULL);
    struct store_series_list l = {0};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = store_series_list(st, &l, errbuf);
    store_release(r->api);
    if (err != ASSAY_OK) {
        return send_store_error(r, err, errbuf);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const struct store_series *x = &l.series[i];
        if (!allows(r, x->app) || (app && strcmp(app, x->app) != 0))
            continue;
        json_array_append_new(arr, series_json(x));
    }
    store_series_list_clear(&l);
    return send_jansson(r, 200, json_pack("{s:o}", "series", arr));
}

static enum MHD_Result alarms_list(struct request *r)
{
    int64_t since = 0;
    long limit = ALARMS_LIMIT_DEFAULT;
    const char *q = query(r, "since");
    if (q) {
        char *end = NULL;
        long long ms = strtoll(q, &end, 10);
        if (end && *end == '\0' && end != q && ms >= 0)
            since = ms;
        else if (clock_parse_iso8601(q, &since) != 0)
            return send_error(r, ASSAY_ERR_INVALID_ARGUMENT,
                              "since must be RFC 3339 or epoch milliseconds", -1, "since");
    }
    q = query(r, "limit");
    if (q) {
        char *end = NULL;
        limit = strtol(q, &end, 10);
        if (!end || *end || end == q || limit < 1 || limit > ALARMS_LIMIT_MAX)
            return send_error(r, ASSAY_ERR_INVALID_ARGUMENT, "limit must be 1-1000", -1, "limit");
    }
    struct store *st = store_acquire(r->api);
    if (!st)
        return send_error(r, ASSAY_ERR_NOT_READY, NULL, -1, NULL);
    struct store_alarm_list l = {0};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = store_alarm_list(st, since, (size_t)limit, &l, errbuf);
    store_release(r->api);
    if (err != ASSAY_OK) {
        return send_store_error(r, err, errbuf);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < l.n; i++) {
        const struct store_alarm *a = &l.alarms[i];
        if (!allows(r, a->app))
            continue;
        char when[25];
        iso_ms(a->at_ms, when);
        json_t *detail = a->detail_json ? json_loads(a->detail_json, 0, NULL) : NULL;
        /* series history: "raised", "cleared" or "rebaseline" (server/series) */
        const char *event = json_string_value(json_object_get(detail, "event"));
        if (!event || a->raised)
            event = a->raised ? "raised" : "cleared";
        json_array_append_new(arr,
                              json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:o}", "alarm_id",
                                        (json_int_t)a->alarm_id, "app", a->app, "rubric", a->rubric,
                                        "model_id", a->model_id ? a->model_id : "", "event", event,
                                        "at", when, "detail", detail ? detail : json_null()));
    }
    store_alarm_list_clear(&l);
    return send_jansson(r, 200, json_pack("{s:o}", "alarms", arr));
}

static bool request_allows(void *ctx, const char *app)
{
    return allows(ctx, app);
}

/* An optional string member of the rebaseline body; -1 when present but not a string. */
static int body_str(const json_t *body, const char *key, const char **out)
{
    const json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

/* POST /v1/series/rebaseline {"app", "rubric", "model_id"}: each omitted = any. */
static enum MHD_Result rebaseline_post(struct request *r)
{
    if (r->too_large)
        return send_error(r, ASSAY_ERR_TOO_LARGE, NULL, -1, NULL);
    json_t *body = NULL;
    if (r->body.len > 0) {
        json_error_t je;
        body = json_loadb(r->body.data, r->body.len, 0, &je);
        if (!json_is_object(body)) {
            json_decref(body);
            return send_error(r, ASSAY_ERR_PARSE, "the body must be a JSON object", -1, NULL);
        }
    }
    struct series_filter f = {.allows = request_allows, .allows_ctx = r};
    const char *bad = NULL;
    if (body_str(body, "app", &f.app) != 0)
        bad = "app";
    else if (body_str(body, "rubric", &f.rubric) != 0)
        bad = "rubric";
    else if (body_str(body, "model_id", &f.model_id) != 0)
        bad = "model_id";
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (!bad && strcmp(key, "app") && strcmp(key, "rubric") && strcmp(key, "model_id"))
            bad = key;
    }
    if (bad) {
        enum MHD_Result res = send_error(
            r, ASSAY_ERR_INVALID_ARGUMENT,
            "the body takes app, rubric and model_id, each a string or omitted", -1, bad);
        json_decref(body);
        return res;
    }
    if (f.app && !allows(r, f.app)) {
        json_decref(body);
        return send_error(r, ASSAY_ERR_FORBIDDEN, NULL, -1, "app");
    }
    struct http_api *api = r->api;
    struct store *st = store_acquire(api);
    if (!st || !api->series) {
        if (st)
            store_release(api);
        json_decref(body);
        return send_error(r, ASSAY_ERR_NOT_READY, "the monitor is not running", -1, NULL);
    }
    json_t *affected = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = series_rebaseline(api->series, &f, &affected, errbuf);
    store_release(api);
    json_decref(body);
    if (err != ASSAY_OK) {
        return send_store_error(r, err, errbuf);
    }
    LOG_INFO("series.rebaseline_requested", LOG_S("request_id", r->id),
             LOG_I("series", json_array_size(affected)));
    return send_jansson(r, 200, json_pack("{s:o}", "series", affected));
}

static enum MHD_Result golden_run_get(struct request *r)
{
    if (!sample_id_valid(r->path_id))
        return send_error(r, ASSAY_ERR_INVALID_ARGUMENT, "the run id is not valid", -1, "id");
    struct store *st = store_acquire(r->api);
    if (!st)
        return send_error(r, ASSAY_ERR_NOT_READY, NULL, -1, NULL);
    struct store_golden_run_list l = {0};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = store_golden_run_get(st, r->path_id, &l, errbuf);
    store_release(r->api);
    if (err == ASSAY_ERR_NOT_FOUND)
        return send_error(r, err, "no golden run has this id", -1, NULL);
    if (err != ASSAY_OK || l.n != 1) {
        store_golden_run_list_clear(&l);
        return send_store_error(r, err != ASSAY_OK ? err : ASSAY_ERR_INTERNAL, errbuf);
    }
    const struct store_golden_run *g = &l.runs[0];
    char created[25], updated[25];
    iso_ms(g->created_ms, created);
    iso_ms(g->updated_ms, updated);
    json_t *params = g->params_json ? json_loads(g->params_json, 0, NULL) : NULL;
    json_t *result = g->result_json ? json_loads(g->result_json, 0, NULL) : NULL;
    json_t *v = json_pack("{s:s,s:s,s:o,s:s,s:I,s:I,s:o,s:o,s:s,s:s}", "id", g->run_id, "dataset",
                          g->dataset, "target_model",
                          g->target_model ? json_string(g->target_model) : json_null(), "status",
                          g->status, "done", (json_int_t)g->done, "total", (json_int_t)g->total,
                          "params", params ? params : json_null(), "result",
                          result ? result : json_null(), "created", created, "updated", updated);
    store_golden_run_list_clear(&l);
    return send_jansson(r, 200, v);
}

/* POST /v1/golden-runs: {"name": ENTRY}, or an empty body; 202 with the run's id. */
static enum MHD_Result golden_runs_post(struct request *r)
{
    if (r->too_large)
        return send_error(r, ASSAY_ERR_TOO_LARGE, NULL, -1, NULL);
    json_t *body = NULL;
    if (r->body.len > 0) {
        char jerr[ASSAY_ERRBUF_SIZE] = "";
        body = jsonutil_parse(r->body.data, r->body.len, jerr);
        if (!body)
            return send_error(r, ASSAY_ERR_PARSE, jerr, -1, NULL);
    }
    char *run_id = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = r->api->golden_fn(r->api->golden_ctx, body, &run_id, errbuf);
    json_decref(body);
    if (err != ASSAY_OK)
        return send_error(r, err, errbuf, -1, NULL);
    char location[SAMPLE_ID_MAX + 32];
    snprintf(location, sizeof location, "/v1/golden-runs/%s", run_id);
    struct buf b = BUF_INIT;
    buf_append_char(&b, '{');
    json_member_str(&b, "id", run_id, false);
    json_member_str(&b, "status", "queued", true);
    json_member_str(&b, "location", location, true);
    buf_append_str(&b, "}\n");
    free(run_id);
    return send_buf(r, 202, "application/json", &b, MHD_HTTP_HEADER_LOCATION, location);
}

/* ------------------------------------------------------- health, metrics */

static enum MHD_Result readyz(struct request *r)
{
    struct http_api *api = r->api;
    struct store *st = store_acquire(api);
    bool store_ok = st != NULL;
    if (st)
        store_release(api);
    size_t n_rubrics = api->o.rubrics ? rubric_registry_count(api->o.rubrics) : 0;
    bool draining = atomic_load(&api->draining);
    bool ready = store_ok && api->o.cfg && n_rubrics > 0 && atomic_load(&api->ready) && !draining;
    struct buf b = BUF_INIT;
    buf_appendf(&b, "{\"ready\":%s,\"checks\":{", ready ? "true" : "false");
    json_member_str(&b, "store", store_ok ? "open" : "not open", false);
    json_member_str(&b, "config", api->o.cfg ? "loaded" : "missing", true);
    buf_appendf(&b, ",\"rubrics\":%zu", n_rubrics);
    json_member_str(&b, "state",
                    draining                   ? "draining"
                    : atomic_load(&api->ready) ? "serving"
                                               : "starting",
                    true);
    buf_append_str(&b, "}}\n");
    return send_json(r, ready ? 200 : 503, &b);
}

static void collect(void *ctx, struct buf *out)
{
    struct http_api *api = ctx;
    int64_t queued = 0, judging = 0;
    struct store *st = store_acquire(api);
    bool have = false;
    if (st) {
        have = store_queue_depth(st, &queued, &judging) == ASSAY_OK;
        store_release(api);
    }
    buf_append_str(out, "# HELP assay_ready 1 when the service accepts samples.\n"
                        "# TYPE assay_ready gauge\n");
    buf_appendf(out, "assay_ready %d\n",
                atomic_load(&api->ready) && !atomic_load(&api->draining) && st ? 1 : 0);
    buf_append_str(out, "# HELP assay_inserts_in_flight Sample batches waiting for their commit.\n"
                        "# TYPE assay_inserts_in_flight gauge\n");
    buf_appendf(out, "assay_inserts_in_flight %d\n", atomic_load(&api->inflight));
    if (have) {
        buf_append_str(out, "# HELP assay_queue_depth Judge jobs by state.\n"
                            "# TYPE assay_queue_depth gauge\n");
        buf_appendf(out, "assay_queue_depth{state=\"queued\"} %lld\n", (long long)queued);
        buf_appendf(out, "assay_queue_depth{state=\"judging\"} %lld\n", (long long)judging);
    }
    pthread_rwlock_rdlock(&api->store_lock);
    if (api->series) {
        int64_t by_state[3];
        series_count_by_state(api->series, by_state);
        buf_append_str(out, "# HELP assay_series Quality series (app x rubric x model) by detector "
                            "state.\n# TYPE assay_series gauge\n");
        buf_appendf(out, "assay_series{state=\"warming_up\"} %lld\n", (long long)by_state[0]);
        buf_appendf(out, "assay_series{state=\"ok\"} %lld\n", (long long)by_state[1]);
        buf_appendf(out, "assay_series{state=\"alarm\"} %lld\n", (long long)by_state[2]);
    }
    pthread_rwlock_unlock(&api->store_lock);
}

static enum MHD_Result metrics(struct request *r)
{
    struct buf b = BUF_INIT;
    prom_render(r->api->o.prom, &b);
    return send_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b, NULL, NULL);
}

/* ------------------------------------------------------------- routing */

static enum route classify(const char *url, char *id, size_t id_size)
{
    static const struct {
        const char *path;
        enum route route;
    } exact[] = {
        {"/v1/samples", R_SAMPLES},
        {"/v1/series", R_SERIES},
        {"/v1/series/rebaseline", R_REBASELINE},
        {"/v1/alarms", R_ALARMS},
        {"/v1/golden-runs", R_GOLDEN_RUNS},
        {"/healthz", R_HEALTHZ},
        {"/readyz", R_READYZ},
        {"/metrics", R_METRICS},
    };
    id[0] = '\0';
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(url, exact[i].path) == 0)
            return exact[i].route;
    static const struct {
        const char *prefix;
        enum route route;
    } with_id[] = {{"/v1/samples/", R_SAMPLE}, {"/v1/golden-runs/", R_GOLDEN_RUN}};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(with_id[i].prefix);
        if (strncmp(url, with_id[i].prefix, n) == 0 && url[n] && !strchr(url + n, '/')) {
            /* Longer than any valid id: kept truncated+1 so that validation refuses it. */
            snprintf(id, id_size, "%s", url + n);
            return with_id[i].route;
        }
    }
    return R_OTHER;
}

static bool method_is(const char *method, const char *want)
{
    if (strcmp(method, want) == 0)
        return true;
    return strcmp(want, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

/* The first call of a request: headers are in, the body (if any) is not. */
static enum MHD_Result first_call(struct request *r)
{
    struct http_api *api = r->api;
    const struct config *cfg = api->o.cfg;
    if (r->route == R_OTHER)
        return send_error(r, ASSAY_ERR_NOT_FOUND, "no such route", -1, NULL);
    if (!method_is(r->method, routes[r->route].method))
        return send_error(r, ASSAY_ERR_METHOD_NOT_ALLOWED, NULL, -1, NULL);
    switch (r->route) {
    case R_HEALTHZ: {
        struct buf b = BUF_INIT;
        buf_append_str(&b, "{\"status\":\"ok\"}\n");
        return send_json(r, 200, &b);
    }
    case R_READYZ:
        return readyz(r);
    case R_METRICS:
        return metrics(r);
    default:
        break;
    }
    /* Every /v1 route: authenticated, and only while ready. */
    if (authenticate(r) != ASSAY_OK)
        return send_error(r, ASSAY_ERR_UNAUTHORIZED, NULL, -1, NULL);
    if (!atomic_load(&api->ready) || atomic_load(&api->draining))
        return send_error(r, ASSAY_ERR_NOT_READY, NULL, -1, NULL);
    switch (r->route) {
    case R_SAMPLES: {
        if (sample_format_from_content_type(header(r, MHD_HTTP_HEADER_CONTENT_TYPE), &r->fmt) !=
            ASSAY_OK)
            return send_error(r, ASSAY_ERR_UNSUPPORTED_MEDIA,
                              "send application/json or application/x-ndjson", -1, NULL);
        const char *cl = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end = NULL;
            unsigned long long n = strtoull(cl, &end, 10);
            if (end && *end == '\0' && n > (unsigned long long)cfg->server.max_body_bytes) {
                char msg[128];
                snprintf(msg, sizeof msg, "the body is larger than %lld bytes",
                         (long long)cfg->server.max_body_bytes);
                /* Answered before the body is read; libmicrohttpd closes the connection. */
                return send_error(r, ASSAY_ERR_TOO_LARGE, msg, -1, NULL);
            }
        }
        return MHD_YES; /* the body follows */
    }
    case R_SAMPLE:
        return sample_get(r);
    case R_SERIES:
        return series_list(r);
    case R_ALARMS:
        return alarms_list(r);
    case R_GOLDEN_RUN:
        return golden_run_get(r);
    case R_REBASELINE: {
        const char *cl = header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end = NULL;
        if (cl && strtoull(cl, &end, 10) > REBASELINE_BODY_MAX && end && *end == '\0')
            return send_error(r, ASSAY_ERR_TOO_LARGE, "the body is larger than 4096 bytes", -1,
                              NULL);
        return MHD_YES; /* the body follows */
    }
    case R_GOLDEN_RUNS:
        if (!r->api->golden_fn)
            return send_error(r, ASSAY_ERR_NOT_IMPLEMENTED,
                              "golden runs are not enabled in this process", -1, NULL);
        return MHD_YES; /* the body follows */
    default:
        return send_error(r, ASSAY_ERR_INTERNAL, NULL, -1, NULL);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **slot)
{
    struct http_api *api = cls;
    struct request *r = *slot;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->api = api;
        r->con = con;
        r->method = method;
        r->start_s = now_s();
        snprintf(r->id, sizeof r->id, "%s%08llx", api->id_prefix,
                 (unsigned long long)atomic_fetch_add(&api->next_request, 1) & 0xffffffffULL);
        r->route = classify(url, r->path_id, sizeof r->path_id);
        *slot = r;
        return first_call(r);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->responded || r->too_large)
            return MHD_YES; /* discarded, never kept */
        if (r->body.len + n > (size_t)api->o.cfg->server.max_body_bytes) {
            r->too_large = true;
            buf_clear(&r->body);
            return MHD_YES;
        }
        buf_append(&r->body, upload_data, n);
        return MHD_YES;
    }
    if (r->responded)
        return MHD_YES;
    if (r->route == R_GOLDEN_RUNS)
        return golden_runs_post(r);
    switch (atomic_load(&r->insert_state)) {
    case INSERT_DONE:
        return samples_answer(r);
    case INSERT_PENDING:
        return MHD_YES;
    default:
        return r->route == R_REBASELINE ? rebaseline_post(r) : samples_post(r);
    }
}

static void log_request(const struct request *r, enum MHD_RequestTerminationCode toe)
{
    double ms = (double)(int64_t)((now_s() - r->start_s) * 1e6) / 1000.0; /* to the microsecond */
    const char *app = r->batch.n ? r->batch.items[0].app : NULL;
    const char *trace = r->batch.n ? r->batch.items[0].trace_id : NULL;
    enum log_level level = r->route >= R_HEALTHZ ? LOG_LEVEL_DEBUG : LOG_LEVEL_INFO;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && level < LOG_LEVEL_WARN)
        level = LOG_LEVEL_WARN;
    LOG_AT(level, "http.request", LOG_S("request_id", r->id), LOG_S("method", r->method),
           LOG_S("route", routes[r->route].label), LOG_I("status", r->status), LOG_F("ms", ms),
           LOG_I("samples", r->batch.n), LOG_S("app", app), LOG_S("trace_id", trace),
           LOG_B("completed", toe == MHD_REQUEST_TERMINATED_COMPLETED_OK));
}

static void completed(void *cls, struct MHD_Connection *con, void **slot,
                      enum MHD_RequestTerminationCode toe)
{
    struct http_api *api = cls;
    struct request *r = *slot;
    if (!r)
        return;
    log_request(r, toe);
    buf_clear(&r->body);
    for (size_t i = 0; r->docs && i < r->batch.n; i++)
        free(r->docs[i]);
    free(r->docs);
    sample_batch_clear(&r->batch);
    free(r->rows);
    free(r->decisions);
    if (r->counted_inflight)
        atomic_fetch_sub(&api->inflight, 1);
    free(r);
    *slot = NULL;
}

/* -------------------------------------------------------------- daemon */

__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    LOG_WARN("mhd.message", LOG_S("message", line));
}

int http_api_parse_listen(const char *listen, char *host, size_t host_size, uint16_t *port)
{
    if (!listen)
        return -1;
    const char *colon = strrchr(listen, ':');
    if (!colon || colon[1] == '\0')
        return -1;
    const char *h = listen;
    size_t hn = (size_t)(colon - listen);
    if (hn >= 2 && h[0] == '[' && h[hn - 1] == ']') {
        h++;
        hn -= 2;
    } else if (memchr(h, ':', hn)) {
        return -1; /* a bare IPv6 address needs brackets */
    }
    if (hn == 0 || hn >= host_size)
        return -1;
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (!end || *end || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hn);
    host[hn] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

enum assay_err http_api_start(const struct http_api_options *o, struct http_api **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct addrinfo *ai = NULL;
    struct http_api *api = NULL;
    *out = NULL;
    char host[256];
    uint16_t port;
    if (http_api_parse_listen(o->cfg->listen, host, sizeof host, &port) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                               "listen: \"%s\" is not host:port ([v6]:port for IPv6)",
                               o->cfg->listen);
        goto out;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "listen: cannot resolve \"%s\": %s", host,
                               gai_strerror(gai));
        goto out;
    }
    struct sockaddr_storage addr;
    memset(&addr, 0, sizeof addr);
    memcpy(&addr, ai->ai_addr, ai->ai_addrlen);
    bool v6 = addr.ss_family == AF_INET6;
    if (v6)
        ((struct sockaddr_in6 *)&addr)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&addr)->sin_port = htons(port);

    api = xcalloc(1, sizeof *api);
    api->o = *o;
    api->store = o->store;
    pthread_rwlock_init(&api->store_lock, NULL);
    pthread_mutex_init(&api->depth_mu, NULL);
    unsigned char rnd[4] = {0};
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        memset(rnd, 0, sizeof rnd);
    snprintf(api->id_prefix, sizeof api->id_prefix, "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2],
             rnd[3]);

    unsigned threads = o->threads
                           ? o->threads
                           : (unsigned)(o->cfg->server.threads > 0 ? o->cfg->server.threads : 0);
    if (threads == 0) {
        long nproc = sysconf(_SC_NPROCESSORS_ONLN);
        threads = nproc > 0 ? (unsigned)nproc : 1;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    /* The logger goes first, so that every message of start-up reaches it. */
    api->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, threads,
        MHD_OPTION_NOTIFY_COMPLETED, completed, api, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
    if (!api->daemon) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "listen: cannot serve on %s (address in use?)",
                               o->cfg->listen);
        goto out;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : port;
    if (o->prom)
        prom_collector_add(o->prom, collect, api);
    if (o->cfg->n_keys == 0 && !is_loopback((struct sockaddr *)&addr))
        LOG_WARN("auth.open", LOG_S("listen", o->cfg->listen),
                 LOG_S("detail", "no auth.keys configured: anyone who can reach this address may "
                                 "post samples and read verdicts"));
    LOG_INFO("http.listening", LOG_S("host", host), LOG_I("port", api->port),
             LOG_I("threads", threads), LOG_B("auth", o->cfg->n_keys > 0));
    *out = api;
    api = NULL;
out:
    if (ai)
        freeaddrinfo(ai);
    http_api_free(api);
    return err;
}

uint16_t http_api_port(const struct http_api *api)
{
    return api->port;
}

void http_api_set_store(struct http_api *api, struct store *store)
{
    pthread_rwlock_wrlock(&api->store_lock);
    api->store = store;
    pthread_rwlock_unlock(&api->store_lock);
}

void http_api_set_jobs_hook(struct http_api *api, void (*fn)(void *ctx), void *ctx)
{
    api->jobs_hook = fn;
    api->jobs_ctx = ctx;
}

void http_api_set_golden(struct http_api *api, http_api_golden_fn fn, void *ctx)
{
    api->golden_fn = fn;
    api->golden_ctx = ctx;
}

void http_api_set_series(struct http_api *api, struct series *series)
{
    pthread_rwlock_wrlock(&api->store_lock);
    api->series = series;
    pthread_rwlock_unlock(&api->store_lock);
}

void http_api_set_publish(struct http_api *api, struct publish *pub)
{
    api->publish = pub;
}

void http_api_set_ready(struct http_api *api, bool ready)
{
    atomic_store(&api->ready, ready);
}

bool http_api_ready(const struct http_api *api)
{
    return atomic_load(&api->ready) && !atomic_load(&api->draining);
}

int http_api_drain(struct http_api *api, int64_t timeout_ms)
{
    atomic_store(&api->draining, true);
    if (api->daemon && !api->quiesced) {
        /* libmicrohttpd hands the listening socket over; closing it now makes
         * new connections fail at once instead of waiting in the backlog. */
        MHD_socket fd = MHD_quiesce_daemon(api->daemon);
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
        api->quiesced = true;
    }
    int64_t deadline = clock_mono_ms(NULL) + timeout_ms;
    int n;
    while ((n = atomic_load(&api->inflight)) > 0 && clock_mono_ms(NULL) < deadline) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return n;
}

void http_api_free(struct http_api *api)
{
    if (!api)
        return;
    if (api->daemon)
        MHD_stop_daemon(api->daemon);
    pthread_rwlock_destroy(&api->store_lock);
    pthread_mutex_destroy(&api->depth_mu);
    free(api);
}
