/*
 * server/http_api: routing, authentication, body streaming, error shapes and
 * every route of the HTTP API, on libmicrohttpd. Started by server/cmd_serve.
 * docs/internals/API.md describes the behaviours decided here.
 */
#define _GNU_SOURCE /* ppoll: a wait finer than a millisecond (loop_linger) */
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
#include <errno.h>
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
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
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

/* Syncer threads: two, so that a sync starts while the previous one runs. */
#define SYNCERS 2

/* How long an event loop waits for events before it looks at its flags. */
#define LOOP_WAIT_MS 100

struct request;
struct loop;

/* A committed group of one loop, waiting for the sync that makes it durable. */
struct sync_item {
    struct sync_item *next;
    struct loop *loop;
    struct request *list; /* the group's requests, newest first */
    size_t n;
    uint64_t ticket; /* store_sync's */
    enum assay_err err;
    char detail[ASSAY_ERRBUF_SIZE];
};

/* A connection accepted for a loop, waiting for it to adopt it. */
struct accepted {
    int fd;
    socklen_t len;
    struct sockaddr_storage addr;
};

/*
 * One event loop: a libmicrohttpd daemon in external-loop mode, run by its
 * own thread, serving the connections the acceptor hands it. Inserts
 * suspended during a turn are committed together at the end of the turn, on
 * this thread (loop_flush), and resumed; see docs/internals/API.md.
 */
struct loop {
    struct http_api *api;
    struct MHD_Daemon *daemon;
    pthread_t thread;
    bool started;
    int epoll_fd;         /* the daemon's, to wait on it with a finer timeout */
    int wake_fd;          /* eventfd: the acceptor has connections for this loop */
    atomic_int conns;     /* connections handed to this loop and not closed yet */
    pthread_mutex_t q_mu; /* guards the fields below */
    struct accepted *q;
    size_t q_n, q_cap;
    struct sync_item *durable; /* groups the syncer made durable, to answer */
    size_t in_sync;            /* requests of this loop waiting for a sync (loop thread) */
    struct request *batch;     /* suspended inserts of this turn, newest first */
    size_t batch_n;
    struct store_insert *ins; /* loop_flush's scratch array */
    size_t ins_cap;
};

struct http_api {
    struct http_api_options o;
    struct loop *loops;
    unsigned n_loops;
    int listen_fd;
    pthread_t acceptor;
    bool acceptor_started;
    pthread_t syncers[SYNCERS];
    unsigned syncers_started;
    pthread_mutex_t sync_mu; /* guards the three fields below */
    pthread_cond_t sync_cv;
    struct sync_item *sync_head, *sync_tail;
    bool syncer_stop;
    atomic_bool stopping; /* the loops end their thread */
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
    bool deferred; /* a request without a body: answered on the second call */
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
    struct request *batch_next; /* in its loop's batch */
    atomic_int insert_state;
    enum assay_err insert_err;
    char insert_detail[ASSAY_ERRBUF_SIZE];
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void)
{
    return (double)mono_ns() / 1e9;
}

/*
 * Wakes a loop's thread (its eventfd): the acceptor queued a connection or a
 * syncer handed back a group. Callable from any thread.
 */
static void loop_wake(int wake_fd)
{
    uint64_t one = 1;
    if (write(wake_fd, &one, sizeof one) < 0) {
        /* the counter is far from overflowing: the loop wakes anyway */
    }
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

/* The loop whose thread this is (every handler runs on one). */
static _Thread_local struct loop *tl_loop;

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
    buf_reserve(&b, 64 + r->batch.n * (SAMPLE_ID_MAX + 48));
    buf_append_str(&b, "{\"accepted\":");
    buf_append_int(&b, (int64_t)r->batch.n);
    buf_append_str(&b, ",\"sampled\":");
    buf_append_int(&b, (int64_t)sampled);
    buf_append_str(&b, ",\"duplicates\":");
    buf_append_int(&b, (int64_t)duplicates);
    buf_append_str(&b, ",\"samples\":[");
    for (size_t i = 0; i < r->batch.n; i++) {
        const struct sample *s = &r->batch.items[i];
        const struct store_sample *row = &r->rows[i];
        bool is_sampled = row->duplicate ? row->stored_sampled : row->sampled;
        buf_append_str(&b, i ? ",{\"id\":\"" : "{\"id\":\"");
        buf_append_json_escaped(&b, s->id, strlen(s->id));
        buf_append_str(&b, is_sampled ? "\",\"sampled\":true" : "\",\"sampled\":false");
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

    store_release(api);

    /*
     * The insert waits for the end of this turn of the loop, where every
     * insert of the turn is committed as one group (loop_flush); the
     * connection sleeps until then.
     */
    struct loop *L = tl_loop;
    atomic_fetch_add(&api->inflight, 1);
    r->counted_inflight = true;
    atomic_store(&r->insert_state, INSERT_PENDING);
    MHD_suspend_connection(r->con);
    r->batch_next = L->batch;
    L->batch = r;
    L->batch_n++;
    return MHD_YES;
}

/* Answers (resumes) the requests of list with their results set; returns how many. */
static size_t resume_list(struct request *list)
{
    size_t n = 0;
    for (struct request *r = list, *next; r; r = next) {
        next = r->batch_next;
        r->batch_next = NULL;
        atomic_store(&r->insert_state, INSERT_DONE);
        MHD_resume_connection(r->con);
        n++;
    }
    return n;
}

/*
 * Commits the inserts gathered during a turn as one group on this thread (one
 * transaction: server/store_sqlite), then hands the group to the syncer,
 * which makes it durable while this loop goes on serving; the loop resumes
 * the group's connections when the syncer hands it back (loop_answer).
 * Returns how many requests were resumed at once (when nothing was stored).
 */
static size_t loop_flush(struct loop *L)
{
    size_t n = L->batch_n;
    if (n == 0)
        return 0;
    struct http_api *api = L->api;
    struct request *list = L->batch;
    L->batch = NULL;
    L->batch_n = 0;
    if (n > L->ins_cap) {
        L->ins_cap = n > 2 * L->ins_cap ? n : 2 * L->ins_cap;
        L->ins = xrealloc(L->ins, L->ins_cap * sizeof *L->ins);
    }
    size_t i = n; /* the list is newest first: commit in arrival order */
    for (struct request *r = list; r; r = r->batch_next) {
        i--;
        L->ins[i].samples = r->rows;
        L->ins[i].n = r->batch.n;
    }
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = ASSAY_ERR_CANCELLED;
    uint64_t ticket = 0;
    struct store *st = store_acquire(api);
    if (st) {
        err = store_sample_insert_group(st, L->ins, n, &ticket, detail);
        store_release(api);
    } else {
        snprintf(detail, sizeof detail, "the store is closed");
    }
    i = n;
    bool stored = false;
    for (struct request *r = list; r; r = r->batch_next) {
        i--;
        r->insert_err = err != ASSAY_OK ? err : L->ins[i].err;
        snprintf(r->insert_detail, sizeof r->insert_detail, "%s",
                 err != ASSAY_OK ? detail : L->ins[i].errbuf);
        stored |= r->insert_err == ASSAY_OK;
    }
    if (!stored)
        return resume_list(list); /* nothing to wait for */
    struct sync_item *it = xcalloc(1, sizeof *it);
    it->loop = L;
    it->list = list;
    it->n = n;
    it->ticket = ticket;
    L->in_sync += n;
    pthread_mutex_lock(&api->sync_mu);
    if (api->sync_tail)
        api->sync_tail->next = it;
    else
        api->sync_head = it;
    api->sync_tail = it;
    pthread_cond_signal(&api->sync_cv);
    pthread_mutex_unlock(&api->sync_mu);
    return 0;
}

/* Resumes the groups the syncer made durable (on L's thread); returns how many requests. */
static size_t loop_answer(struct loop *L)
{
    pthread_mutex_lock(&L->q_mu);
    struct sync_item *done = L->durable;
    L->durable = NULL;
    pthread_mutex_unlock(&L->q_mu);
    size_t resumed = 0;
    for (struct sync_item *it = done, *next; it; it = next) {
        next = it->next;
        if (it->err != ASSAY_OK)
            for (struct request *r = it->list; r; r = r->batch_next)
                if (r->insert_err == ASSAY_OK) {
                    r->insert_err = it->err;
                    snprintf(r->insert_detail, sizeof r->insert_detail, "%s", it->detail);
                }
        resumed += resume_list(it->list);
        L->in_sync -= it->n;
        free(it);
    }
    return resumed;
}

/*
 * A syncer's thread: takes every committed group waiting, syncs once up to
 * the newest (store_sync: one fdatasync for all of them, whichever loops
 * committed them), and hands each group back to its loop. While one syncer
 * waits for the device, the other takes the groups committed meanwhile.
 * Ends on syncer_stop once nothing waits.
 */
static void *syncer_main(void *arg)
{
    struct http_api *api = arg;
    prctl(PR_SET_NAME, "assay-sync");
    pthread_mutex_lock(&api->sync_mu);
    for (;;) {
        while (!api->sync_head && !api->syncer_stop)
            pthread_cond_wait(&api->sync_cv, &api->sync_mu);
        if (!api->sync_head)
            break;
        struct sync_item *list = api->sync_head;
        api->sync_head = api->sync_tail = NULL;
        pthread_mutex_unlock(&api->sync_mu);

        uint64_t ticket = 0;
        for (struct sync_item *it = list; it; it = it->next)
            if (it->ticket > ticket)
                ticket = it->ticket;
        char detail[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err err = ASSAY_ERR_CANCELLED;
        struct store *st = store_acquire(api);
        if (st) {
            err = store_sync(st, ticket, detail);
            store_release(api);
        } else {
            snprintf(detail, sizeof detail, "the store is closed");
        }
        for (struct sync_item *it = list, *next; it; it = next) {
            next = it->next;
            it->err = err;
            snprintf(it->detail, sizeof it->detail, "%s", err != ASSAY_OK ? detail : "");
            struct loop *L = it->loop;
            pthread_mutex_lock(&L->q_mu);
            it->next = L->durable;
            L->durable = it;
            pthread_mutex_unlock(&L->q_mu);
            loop_wake(L->wake_fd);
        }
        pthread_mutex_lock(&api->sync_mu);
    }
    pthread_mutex_unlock(&api->sync_mu);
    return NULL;
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
    buf_append_str(out, "# HELP assay_http_loop_connections Open connections by event loop"
                        " (the acceptor keeps them even).\n"
                        "# TYPE assay_http_loop_connections gauge\n");
    for (unsigned i = 0; i < api->n_loops; i++)
        buf_appendf(out, "assay_http_loop_connections{loop=\"%u\"} %d\n", i,
                    atomic_load(&api->loops[i].conns));
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
            if (end && *end == '\0' && n > 0)
                buf_reserve(&r->body, (size_t)n + 1); /* one allocation, no regrowth */
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

/* The api's prefix and 8 hex digits of a counter (as "%s%08llx", without printf). */
static void request_id(struct http_api *api, char out[32])
{
    static const char hex[] = "0123456789abcdef";
    unsigned long long n = atomic_fetch_add(&api->next_request, 1) & 0xffffffffULL;
    size_t p = strlen(api->id_prefix);
    memcpy(out, api->id_prefix, p);
    for (int i = 7; i >= 0; i--, n >>= 4)
        out[p + (size_t)i] = hex[n & 15];
    out[p + 8] = '\0';
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
        request_id(api, r->id);
        r->route = classify(url, r->path_id, sizeof r->path_id);
        *slot = r;
        /*
         * libmicrohttpd closes the connection after a response queued on the
         * first call (it cannot know that no body follows): requests without
         * a body are answered on the next call, which keeps keep-alive for
         * reads and scrapes. POSTs refused early (415, 413, 401...) are
         * answered at once: closing is right when their body goes unread.
         */
        if (method_is(method, "GET") || method_is(method, "HEAD")) {
            r->deferred = true;
            return MHD_YES;
        }
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
    if (r->deferred) {
        r->deferred = false;
        buf_clear(&r->body); /* a GET's body, if any, means nothing */
        return first_call(r);
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

/* Hands the connections the acceptor queued for L to its daemon (on L's thread). */
static void loop_adopt(struct loop *L)
{
    pthread_mutex_lock(&L->q_mu);
    size_t n = L->q_n;
    struct accepted *q = L->q;
    L->q = NULL;
    L->q_n = L->q_cap = 0;
    pthread_mutex_unlock(&L->q_mu);
    for (size_t i = 0; i < n; i++)
        if (MHD_add_connection(L->daemon, q[i].fd, (const struct sockaddr *)&q[i].addr, q[i].len) !=
            MHD_YES)
            atomic_fetch_sub(&L->conns, 1); /* libmicrohttpd closed it */
    free(q);
}

/*
 * Waits up to max_ns (less when libmicrohttpd has a timeout due) for events
 * on the daemon or new connections, then runs a turn of the daemon.
 */
static size_t loop_turn(struct loop *L, int64_t max_ns)
{
    size_t resumed = 0;
    MHD_UNSIGNED_LONG_LONG mhd_ms = 0;
    if (MHD_get_timeout(L->daemon, &mhd_ms) == MHD_YES && (int64_t)mhd_ms * 1000000 < max_ns)
        max_ns = (int64_t)mhd_ms * 1000000;
    struct timespec ts = {max_ns / 1000000000, max_ns % 1000000000};
    struct pollfd p[2] = {{.fd = L->epoll_fd, .events = POLLIN},
                          {.fd = L->wake_fd, .events = POLLIN}};
    ppoll(p, 2, &ts, NULL);
    if (p[1].revents & POLLIN) {
        uint64_t v;
        if (read(L->wake_fd, &v, sizeof v) < 0) {
            /* EAGAIN: a concurrent turn took it; nothing else can fail here */
        }
        loop_adopt(L);
        resumed = loop_answer(L);
    }
    MHD_run(L->daemon);
    return resumed;
}

/*
 * Before a commit: while some connection of this loop could still send an
 * insert (not every connection waits in the batch), keep serving for up to
 * server.commit_wait_us so that more inserts share the transaction and the
 * sync. Under load the batch fills at once; a lone client waits the bound.
 */
static void loop_linger(struct loop *L)
{
    int64_t wait_ns = L->api->o.cfg->server.commit_wait_us * 1000;
    if (L->batch_n == 0 || wait_ns <= 0 || atomic_load(&L->api->stopping))
        return;
    int64_t deadline = mono_ns() + wait_ns;
    for (;;) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(L->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
        if (!info || L->batch_n + L->in_sync >= info->num_connections)
            return;
        int64_t left = deadline - mono_ns();
        if (left <= 0)
            return;
        if (loop_turn(L, left) > 0)
            MHD_run(L->daemon); /* answer them now */
    }
}

/*
 * A loop's thread: turns of libmicrohttpd's event processing, each followed
 * by the commit of the inserts it gathered. Ends on api->stopping after a
 * last commit and a last turn that answers it.
 */
static void *loop_main(void *arg)
{
    struct loop *L = arg;
    struct http_api *api = L->api;
    tl_loop = L;
    prctl(PR_SET_NAME, "assay-http"); /* for top -H, perf and /proc */
    size_t resumed = 0;
    while (!atomic_load(&api->stopping)) {
        /* Connections just resumed are answered at once (without waiting on
         * the daemon's own wake-up signal). */
        resumed = loop_turn(L, resumed ? 0 : (int64_t)LOOP_WAIT_MS * 1000000);
        loop_linger(L);
        resumed += loop_flush(L);
    }
    /* The last group: committed, then answered once durable (bounded wait). */
    loop_flush(L);
    int64_t wait_s =
        api->o.cfg->server.shutdown_timeout_s > 0 ? api->o.cfg->server.shutdown_timeout_s : 1;
    int64_t deadline = mono_ns() + wait_s * 1000000000;
    while (L->in_sync > 0 && mono_ns() < deadline)
        loop_turn(L, (int64_t)10 * 1000000);
    loop_adopt(L);
    MHD_run(L->daemon);
    return NULL;
}

/* libmicrohttpd's connection notifications: a loop's count of its connections. */
static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)con;
    (void)socket_context;
    struct loop *L = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&L->conns, 1);
}

/*
 * The acceptor's thread: accepts on the listening socket and hands each
 * connection to the loop that has the fewest, so that keep-alive clients
 * spread evenly over the loops (the kernel's wake-up order would not). Ends
 * when the socket is shut down (http_api_drain, http_api_free).
 */
static void *acceptor_main(void *arg)
{
    struct http_api *api = arg;
    prctl(PR_SET_NAME, "assay-accept");
    for (;;) {
        struct accepted a;
        a.len = sizeof a.addr;
        a.fd = accept4(api->listen_fd, (struct sockaddr *)&a.addr, &a.len, SOCK_CLOEXEC);
        if (a.fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                LOG_WARN("http.accept_failed", LOG_S("detail", strerror(errno)));
                struct timespec ts = {0, 100 * 1000 * 1000};
                nanosleep(&ts, NULL);
                continue;
            }
            break; /* shut down (EINVAL) or closed */
        }
        struct loop *L = &api->loops[0];
        for (unsigned i = 1; i < api->n_loops; i++)
            if (atomic_load(&api->loops[i].conns) < atomic_load(&L->conns))
                L = &api->loops[i];
        atomic_fetch_add(&L->conns, 1);
        pthread_mutex_lock(&L->q_mu);
        if (L->q_n == L->q_cap) {
            L->q_cap = L->q_cap ? 2 * L->q_cap : 8;
            L->q = xrealloc(L->q, L->q_cap * sizeof *L->q);
        }
        L->q[L->q_n++] = a;
        pthread_mutex_unlock(&L->q_mu);
        loop_wake(L->wake_fd);
    }
    return NULL;
}

/* Stops accepting: new connections are refused at once (no backlog wait). */
static void acceptor_stop(struct http_api *api)
{
    if (api->acceptor_started) {
        shutdown(api->listen_fd, SHUT_RDWR); /* wakes accept() */
        pthread_join(api->acceptor, NULL);
        api->acceptor_started = false;
    }
    if (api->listen_fd >= 0) {
        close(api->listen_fd);
        api->listen_fd = -1;
    }
}

/* The listening socket (blocking: the acceptor's thread waits in accept()). */
static enum assay_err listen_open(struct http_api *api, const struct sockaddr *sa, socklen_t len,
                                  char *errbuf)
{
    const char *listen_s = api->o.cfg->listen;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "listen: cannot create a socket: %s",
                                strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, sa, len) != 0 || listen(fd, 1024) != 0) {
        int e = errno;
        close(fd);
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "listen: cannot serve on %s: %s", listen_s,
                                strerror(e));
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
        api->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                      : ((struct sockaddr_in *)&bound)->sin_port);
    api->listen_fd = fd;
    return ASSAY_OK;
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
    api->listen_fd = -1;
    pthread_mutex_init(&api->sync_mu, NULL);
    pthread_cond_init(&api->sync_cv, NULL);
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
    if ((err = listen_open(api, (struct sockaddr *)&addr,
                           v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
                           errbuf)) != ASSAY_OK)
        goto out;
    api->loops = xcalloc(threads, sizeof *api->loops);
    api->n_loops = threads;
    for (unsigned i = 0; i < threads; i++) {
        api->loops[i].wake_fd = -1;
        pthread_mutex_init(&api->loops[i].q_mu, NULL);
    }
    unsigned flags =
        MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    for (unsigned i = 0; i < threads; i++) {
        struct loop *L = &api->loops[i];
        L->api = api;
        L->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (L->wake_fd < 0) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "listen: cannot create an eventfd: %s",
                                   strerror(errno));
            goto out;
        }
        /* The logger goes first, so that every message of start-up reaches it. */
        L->daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, api, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api,
            MHD_OPTION_NOTIFY_COMPLETED, completed, api, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, L, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
        if (!L->daemon) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "listen: cannot serve on %s",
                                   o->cfg->listen);
            goto out;
        }
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(L->daemon, MHD_DAEMON_INFO_EPOLL_FD);
        L->epoll_fd = info ? info->epoll_fd : -1;
    }
    for (unsigned i = 0; i < threads; i++) {
        struct loop *L = &api->loops[i];
        if (pthread_create(&L->thread, NULL, loop_main, L) != 0) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "listen: cannot start a thread");
            goto out;
        }
        L->started = true;
    }
    for (unsigned i = 0; i < SYNCERS; i++) {
        if (pthread_create(&api->syncers[i], NULL, syncer_main, api) != 0) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "listen: cannot start a thread");
            goto out;
        }
        api->syncers_started++;
    }
    if (pthread_create(&api->acceptor, NULL, acceptor_main, api) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "listen: cannot start a thread");
        goto out;
    }
    api->acceptor_started = true;
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
    int64_t deadline = clock_mono_ms(NULL) + timeout_ms;
    acceptor_stop(api);
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
    acceptor_stop(api);
    atomic_store(&api->stopping, true);
    for (unsigned i = 0; i < api->n_loops; i++)
        if (api->loops[i].started)
            pthread_join(api->loops[i].thread, NULL);
    pthread_mutex_lock(&api->sync_mu);
    api->syncer_stop = true;
    pthread_cond_broadcast(&api->sync_cv);
    pthread_mutex_unlock(&api->sync_mu);
    for (unsigned i = 0; i < api->syncers_started; i++)
        pthread_join(api->syncers[i], NULL);
    pthread_mutex_destroy(&api->sync_mu);
    pthread_cond_destroy(&api->sync_cv);
    for (unsigned i = 0; api->loops && i < api->n_loops; i++) {
        struct loop *L = &api->loops[i];
        if (L->daemon) {
            loop_adopt(L); /* accepted but never adopted: closed by the daemon's stop */
            MHD_stop_daemon(L->daemon);
        }
        for (size_t k = 0; k < L->q_n; k++)
            close(L->q[k].fd);
        for (struct sync_item *it = L->durable, *next; it; it = next) {
            next = it->next;
            free(it); /* their connections went with the daemon */
        }
        free(L->q);
        free(L->ins);
        if (L->wake_fd >= 0)
            close(L->wake_fd);
        pthread_mutex_destroy(&L->q_mu);
    }
    free(api->loops);
    pthread_rwlock_destroy(&api->store_lock);
    pthread_mutex_destroy(&api->depth_mu);
    free(api);
}
