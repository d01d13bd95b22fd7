/*
 * Unit tests for server/http_api, in-process: the real libmicrohttpd server on
 * 127.0.0.1 (port 0) over the in-memory store (tests/support/mem_store),
 * driven with libcurl. Every route, every error status and shape.
 */
#include "server/http_api.h"

#include "common/buf.h"
#include "common/log.h"
#include "judges/rubric.h"
#include "server/config.h"
#include "server/prom.h"
#include "server/sampler.h"
#include "server/store.h"
#include "tests/support/mem_store.h"
#include "tests/unit/test.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>
#include <time.h>

struct env {
    struct config *cfg;
    struct rubric_registry *rubrics;
    struct store *store;
    struct sampler *sampler;
    struct prom *prom;
    struct http_api *api;
    char base[64];
};

/* sha256("secret-a") and sha256("secret-b") in hex, computed at set-up. */
static void hexdigest(const char *key, char out[65])
{
    unsigned char d[32];
    SHA256((const unsigned char *)key, strlen(key), d);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* store: taken over by the env (closed by env_stop); threads: the API's loops. */
static void env_start_with(struct env *e, const char *extra_json, bool with_keys, bool ready,
                           struct store *store, unsigned threads)
{
    memset(e, 0, sizeof *e);
    char ka[65], kb[65];
    hexdigest("secret-a", ka);
    hexdigest("secret-b", kb);
    struct buf cfg = BUF_INIT;
    /* extra_json may bring its own "apps", replacing the default ones */
    buf_append_str(&cfg, "{\"listen\":\"127.0.0.1:0\",\"log_level\":\"warn\"");
    if (!extra_json || strncmp(extra_json, "\"apps\"", 6) != 0)
        buf_append_str(&cfg, ",\"apps\":{\"support\":{\"sample_rate\":1.0,\"rubrics\":"
                             "[\"helpfulness\"]},\"quiet\":{\"sample_rate\":0.0},"
                             "\"other\":{\"sample_rate\":1.0}}");
    if (with_keys)
        buf_appendf(&cfg,
                    ",\"auth\":{\"keys\":[{\"sha256\":\"%s\",\"apps\":[\"support\",\"quiet\"]},"
                    "{\"sha256\":\"%s\",\"apps\":[\"*\"]}]}",
                    ka, kb);
    if (extra_json)
        buf_appendf(&cfg, ",%s", extra_json);
    buf_append_str(&cfg, "}");
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = config_parse(cfg.data, cfg.len, "test.json", NULL, NULL, &e->cfg, errbuf);
    if (err != ASSAY_OK)
        fprintf(stderr, "%s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
    buf_clear(&cfg);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/rubrics", test_source_dir());
    REQUIRE_INT_EQ(rubric_registry_load(dir, &e->rubrics, errbuf), ASSAY_OK);
    e->store = store;
    e->sampler = sampler_new(NULL);
    e->prom = prom_new();
    log_set_level(LOG_LEVEL_ERROR);
    struct http_api_options o = {.cfg = e->cfg,
                                 .rubrics = e->rubrics,
                                 .store = e->store,
                                 .sampler = e->sampler,
                                 .prom = e->prom,
                                 .threads = threads};
    REQUIRE_INT_EQ(http_api_start(&o, &e->api, errbuf), ASSAY_OK);
    http_api_set_ready(e->api, ready);
    snprintf(e->base, sizeof e->base, "http://127.0.0.1:%u", http_api_port(e->api));
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void env_start(struct env *e, const char *extra_json, bool with_keys, bool ready)
{
    env_start_with(e, extra_json, with_keys, ready, mem_store_new(), 2);
}

static void env_stop(struct env *e)
{
    CHECK_INT_EQ(http_api_drain(e->api, 5000), 0);
    http_api_set_store(e->api, NULL);
    store_close(e->store);
    http_api_free(e->api);
    sampler_free(e->sampler);
    prom_free(e->prom);
    rubric_registry_free(e->rubrics);
    config_free(e->cfg);
    curl_global_cleanup();
}

struct reply {
    long status;
    struct buf body;
    char retry_after[32];
    char allow[32];
    char request_id[64];
    json_t *json;
};

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    buf_append(ctx, p, size * n);
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct reply *r = ctx;
    size_t len = size * n;
    struct {
        const char *name;
        char *out;
    } want[] = {
        {"retry-after:", r->retry_after}, {"allow:", r->allow}, {"x-request-id:", r->request_id}};
    for (size_t i = 0; i < 3; i++) {
        size_t k = strlen(want[i].name);
        if (len > k && strncasecmp(p, want[i].name, k) == 0) {
            size_t v = k;
            while (v < len && p[v] == ' ')
                v++;
            size_t e = len;
            while (e > v && (p[e - 1] == '\r' || p[e - 1] == '\n'))
                e--;
            snprintf(want[i].out, 32, "%.*s", (int)(e - v), p + v);
        }
    }
    return len;
}

/* One request; headers is a NULL-terminated list of "Name: value". */
static void http(struct env *e, const char *method, const char *path, const char *ctype,
                 const char *body, const char *const *headers, struct reply *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", e->base, path);
    struct curl_slist *h = NULL;
    char ct[128];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    } else {
        h = curl_slist_append(h, "Content-Type:");
    }
    h = curl_slist_append(h, "Expect:");
    for (const char *const *x = headers; x && *x; x++)
        h = curl_slist_append(h, *x);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fprintf(stderr, "curl: %s\n", curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->json = r->body.len ? json_loadb(r->body.data, r->body.len, 0, NULL) : NULL;
}

static void reply_clear(struct reply *r)
{
    buf_clear(&r->body);
    json_decref(r->json);
}

static const char *err_code(const struct reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static const char *err_field(const struct reply *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "field"));
}

static long err_index(const struct reply *r)
{
    json_t *i = json_object_get(json_object_get(r->json, "error"), "index");
    return i ? (long)json_integer_value(i) : -1;
}

static long num(const struct reply *r, const char *key)
{
    return (long)json_integer_value(json_object_get(r->json, key));
}

#define POST_JSON(e, body, r) http(e, "POST", "/v1/samples", "application/json", body, NULL, r)

TEST_CASE(health_and_readiness)
{
    struct env e;
    env_start(&e, NULL, false, false);
    struct reply r;
    http(&e, "GET", "/healthz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK(r.request_id[0] != '\0');
    reply_clear(&r);
    http(&e, "GET", "/readyz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 503);
    reply_clear(&r);
    /* 503 on the API before ready, with Retry-After */
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\"}", &r);
    CHECK_INT_EQ(r.status, 503);
    CHECK_STR_EQ(err_code(&r), "not_ready");
    CHECK(r.retry_after[0] != '\0');
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 0);
    http_api_set_ready(e.api, true);
    http(&e, "GET", "/readyz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK(json_is_true(json_object_get(r.json, "ready")));
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(post_one_array_ndjson)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"a1\"}", &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 1);
    CHECK_INT_EQ(num(&r, "sampled"), 1);
    CHECK_INT_EQ(num(&r, "duplicates"), 0);
    json_t *s0 = json_array_get(json_object_get(r.json, "samples"), 0);
    CHECK_STR_EQ(json_string_value(json_object_get(s0, "id")), "a1");
    CHECK(json_is_true(json_object_get(s0, "sampled")));
    reply_clear(&r);

    POST_JSON(&e,
              "[{\"app\":\"support\",\"output\":\"x\",\"id\":\"a2\"},"
              "{\"app\":\"quiet\",\"output\":\"y\",\"id\":\"a3\"},"
              "{\"app\":\"quiet\",\"output\":\"y\",\"id\":\"a4\",\"force\":true}]",
              &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 3);
    CHECK_INT_EQ(num(&r, "sampled"), 2);
    reply_clear(&r);

    http(&e, "POST", "/v1/samples", "application/x-ndjson",
         "{\"app\":\"support\",\"output\":\"x\"}\n{\"app\":\"support\",\"output\":\"z\"}\n", NULL,
         &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 2);
    /* generated ids are UUIDs */
    const char *id = json_string_value(
        json_object_get(json_array_get(json_object_get(r.json, "samples"), 1), "id"));
    CHECK(id && strlen(id) == 36);
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 6);

    /* no Content-Type is taken as JSON */
    http(&e, "POST", "/v1/samples", NULL, "{\"app\":\"support\",\"output\":\"x\"}", NULL, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(bad_input_400)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    POST_JSON(&e,
              "[{\"app\":\"support\",\"output\":\"x\"},{\"app\":\"support\",\"output\":\"x\","
              "\"tags\":{\"team\":5}}]",
              &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_code(&r), "invalid_argument");
    CHECK_INT_EQ(err_index(&r), 1);
    CHECK_STR_EQ(err_field(&r), "tags.team");
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 0); /* nothing of the batch stored */

    POST_JSON(&e, "{\"app\":\"support\",", &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_code(&r), "parse_error");
    reply_clear(&r);

    http(&e, "POST", "/v1/samples", "application/x-ndjson",
         "{\"app\":\"support\",\"output\":\"x\"}\n{\"app\":\"support\"}\n", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_INT_EQ(err_index(&r), 1);
    CHECK_STR_EQ(err_field(&r), "output");
    reply_clear(&r);

    /* an unknown rubric in an override */
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\",\"rubrics\":[\"nope\"]}", &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_field(&r), "rubrics[0]");
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 0);
    env_stop(&e);
}

TEST_CASE(unconfigured_app)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    POST_JSON(&e, "[{\"app\":\"support\",\"output\":\"x\"},{\"app\":\"ghost\",\"output\":\"x\"}]",
              &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_INT_EQ(err_index(&r), 1);
    CHECK_STR_EQ(err_field(&r), "app");
    CHECK(strstr(r.body.data, "ghost") != NULL);
    reply_clear(&r);
    env_stop(&e);
    /* with apps.default, any app is served */
    env_start(&e, "\"apps\":{\"default\":{\"sample_rate\":1.0}}", false, true);
    POST_JSON(&e, "{\"app\":\"ghost\",\"output\":\"x\"}", &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(content_type_415)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    http(&e, "POST", "/v1/samples", "text/plain", "{}", NULL, &r);
    CHECK_INT_EQ(r.status, 415);
    CHECK_STR_EQ(err_code(&r), "unsupported_media_type");
    reply_clear(&r);
    http(&e, "POST", "/v1/samples", "application/x-www-form-urlencoded", "a=b", NULL, &r);
    CHECK_INT_EQ(r.status, 415);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(too_large_413)
{
    struct env e;
    env_start(&e, "\"server\":{\"max_body_bytes\":1024}", false, true);
    struct buf big = BUF_INIT;
    buf_append_str(&big, "{\"app\":\"support\",\"output\":\"");
    for (int i = 0; i < 3000; i++)
        buf_append_char(&big, 'x');
    buf_append_str(&big, "\"}");
    struct reply r;
    POST_JSON(&e, big.data, &r);
    CHECK_INT_EQ(r.status, 413);
    CHECK_STR_EQ(err_code(&r), "too_large");
    reply_clear(&r);
    /* chunked, no Content-Length: refused at the end, the excess never kept */
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    http(&e, "POST", "/v1/samples", "application/json", big.data, chunked, &r);
    CHECK_INT_EQ(r.status, 413);
    reply_clear(&r);
    buf_clear(&big);
    CHECK_INT_EQ(mem_store_count(e.store), 0);
    /* just under the limit is fine */
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"small\"}", &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(batch_limit)
{
    struct env e;
    env_start(&e, "\"server\":{\"max_batch\":2}", false, true);
    struct reply r;
    POST_JSON(&e,
              "[{\"app\":\"support\",\"output\":\"x\"},{\"app\":\"support\",\"output\":\"x\"},"
              "{\"app\":\"support\",\"output\":\"x\"}]",
              &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK(strstr(r.body.data, "at most 2") != NULL);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(auth_401_403)
{
    struct env e;
    env_start(&e, NULL, true, true);
    struct reply r;
    const char *body = "{\"app\":\"support\",\"output\":\"x\"}";
    POST_JSON(&e, body, &r);
    CHECK_INT_EQ(r.status, 401);
    CHECK_STR_EQ(err_code(&r), "unauthorized");
    reply_clear(&r);
    const char *wrong[] = {"Authorization: Bearer nope", NULL};
    http(&e, "POST", "/v1/samples", "application/json", body, wrong, &r);
    CHECK_INT_EQ(r.status, 401);
    reply_clear(&r);
    const char *bearer[] = {"Authorization: Bearer secret-a", NULL};
    http(&e, "POST", "/v1/samples", "application/json", body, bearer, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    const char *xkey[] = {"x-api-key: secret-a", NULL};
    http(&e, "POST", "/v1/samples", "application/json", body, xkey, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    /* key a may not post for "other"; the whole batch is refused */
    http(&e, "POST", "/v1/samples", "application/json",
         "[{\"app\":\"support\",\"output\":\"x\"},{\"app\":\"other\",\"output\":\"x\"}]", xkey, &r);
    CHECK_INT_EQ(r.status, 403);
    CHECK_STR_EQ(err_code(&r), "forbidden");
    CHECK_INT_EQ(err_index(&r), 1);
    reply_clear(&r);
    const char *star[] = {"x-api-key: secret-b", NULL};
    http(&e, "POST", "/v1/samples", "application/json", "{\"app\":\"other\",\"output\":\"x\"}",
         star, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    /* reads: the key must allow the sample's app */
    http(&e, "POST", "/v1/samples", "application/json",
         "{\"app\":\"other\",\"output\":\"x\",\"id\":\"o1\"}", star, &r);
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/o1", NULL, NULL, xkey, &r);
    CHECK_INT_EQ(r.status, 403);
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/o1", NULL, NULL, star, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    http(&e, "GET", "/v1/series", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 401);
    reply_clear(&r);
    /* probes stay open */
    http(&e, "GET", "/healthz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    http(&e, "GET", "/metrics", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(queue_full_429)
{
    struct env e;
    env_start(&e, "\"server\":{\"max_queue\":1,\"retry_after_s\":7}", false, true);
    struct reply r;
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\"}", &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\"}", &r);
    CHECK_INT_EQ(r.status, 429);
    CHECK_STR_EQ(err_code(&r), "busy");
    CHECK_STR_EQ(r.retry_after, "7");
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 1);
    env_stop(&e);
}

TEST_CASE(duplicates)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    const char *body = "{\"app\":\"support\",\"output\":\"x\",\"id\":\"same\"}";
    POST_JSON(&e, body, &r);
    CHECK_INT_EQ(num(&r, "duplicates"), 0);
    reply_clear(&r);
    POST_JSON(&e, body, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 1);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    CHECK_INT_EQ(num(&r, "sampled"), 1);
    json_t *s0 = json_array_get(json_object_get(r.json, "samples"), 0);
    CHECK(json_is_true(json_object_get(s0, "duplicate")));
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 1);
    /* the same id in another app is another sample */
    POST_JSON(&e, "{\"app\":\"other\",\"output\":\"x\",\"id\":\"same\"}", &r);
    CHECK_INT_EQ(num(&r, "duplicates"), 0);
    reply_clear(&r);
    /* ...which makes the id ambiguous without ?app= */
    http(&e, "GET", "/v1/samples/same", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_field(&r), "app");
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/same?app=other", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "app")), "other");
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(sample_get)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    const char *hdr[] = {"X-Amzn-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
                         NULL};
    http(&e, "POST", "/v1/samples", "application/json",
         "[{\"app\":\"support\",\"output\":\"x\",\"id\":\"g1\",\"rubrics\":[\"helpfulness\","
         "\"coherence\"]},{\"app\":\"quiet\",\"output\":\"x\",\"id\":\"g2\"}]",
         hdr, &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/g1", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "queued");
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "trace_id")),
                 "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
    CHECK_INT_EQ(json_array_size(json_object_get(r.json, "verdicts")), 2);
    CHECK_STR_EQ(json_string_value(json_object_get(json_object_get(r.json, "sample"), "output")),
                 "x");
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/g2", NULL, NULL, NULL, &r);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "not_sampled");
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/g1", NULL, NULL, NULL, &r);
    CHECK(json_is_true(json_object_get(r.json, "text_kept")));
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/missing", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 404);
    CHECK_STR_EQ(err_code(&r), "not_found");
    reply_clear(&r);
    http(&e, "GET", "/v1/samples/bad%20id", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_field(&r), "id");
    reply_clear(&r);
    env_stop(&e);
}

/* GET of a sample stored without its text, and of one whose app keeps it. */
static void get_unsampled(struct env *e, const char *id, bool text_kept)
{
    struct reply r;
    http(e, "GET", id, NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "status")), "not_sampled");
    CHECK(json_is_false(json_object_get(r.json, "sampled")));
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "model_id")), "m-1");
    CHECK_STR_EQ(json_string_value(json_object_get(r.json, "trace_id")),
                 "1-5759e988-bd862e3fe1be46a994272793");
    CHECK(json_is_string(json_object_get(r.json, "received")));
    CHECK_INT_EQ(json_array_size(json_object_get(r.json, "verdicts")), 0);
    CHECK(json_is_boolean(json_object_get(r.json, "text_kept")));
    CHECK(json_is_true(json_object_get(r.json, "text_kept")) == text_kept);
    json_t *doc = json_object_get(r.json, "sample");
    if (text_kept) {
        CHECK_STR_EQ(json_string_value(json_object_get(doc, "output")), "secret answer");
    } else {
        CHECK(json_is_null(doc));
        CHECK(strstr(buf_cstr(&r.body), "secret answer") == NULL);
    }
    reply_clear(&r);
}

TEST_CASE(unsampled_without_text)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    const char *body = "{\"app\":\"quiet\",\"output\":\"secret answer\",\"id\":\"q1\","
                       "\"model_id\":\"m-1\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\"}";
    POST_JSON(&e, body, &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "sampled"), 0);
    reply_clear(&r);
    get_unsampled(&e, "/v1/samples/q1", false);
    /* A duplicate answers as before; forced, it stays a not-sampled duplicate without text. */
    POST_JSON(&e, body, &r);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    json_t *s0 = json_array_get(json_object_get(r.json, "samples"), 0);
    CHECK(json_is_true(json_object_get(s0, "duplicate")));
    CHECK(json_is_false(json_object_get(s0, "sampled")));
    reply_clear(&r);
    POST_JSON(&e,
              "{\"app\":\"quiet\",\"output\":\"secret answer\",\"id\":\"q1\",\"force\":true,"
              "\"model_id\":\"m-1\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\"}",
              &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "duplicates"), 1);
    CHECK_INT_EQ(num(&r, "sampled"), 0);
    s0 = json_array_get(json_object_get(r.json, "samples"), 0);
    CHECK(json_is_true(json_object_get(s0, "duplicate")));
    CHECK(json_is_false(json_object_get(s0, "sampled")));
    reply_clear(&r);
    get_unsampled(&e, "/v1/samples/q1", false);
    CHECK_INT_EQ(mem_store_count(e.store), 1);
    env_stop(&e);
}

TEST_CASE(keep_unsampled_text)
{
    struct env e;
    env_start(&e,
              "\"apps\":{\"quiet\":{\"sample_rate\":0.0,\"keep_unsampled_text\":true},"
              "\"mute\":{\"sample_rate\":0.0}}",
              false, true);
    struct reply r;
    POST_JSON(&e,
              "[{\"app\":\"quiet\",\"output\":\"secret answer\",\"id\":\"k1\",\"model_id\":"
              "\"m-1\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\"},"
              "{\"app\":\"mute\",\"output\":\"secret answer\",\"id\":\"k2\",\"model_id\":"
              "\"m-1\",\"trace_id\":\"1-5759e988-bd862e3fe1be46a994272793\"}]",
              &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "accepted"), 2);
    CHECK_INT_EQ(num(&r, "sampled"), 0);
    reply_clear(&r);
    get_unsampled(&e, "/v1/samples/k1", true);
    get_unsampled(&e, "/v1/samples/k2", false);
    env_stop(&e);
}

TEST_CASE(routes_404_405_501)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    http(&e, "GET", "/nope", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 404);
    reply_clear(&r);
    http(&e, "GET", "/v1/samples", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 405);
    CHECK_STR_EQ(r.allow, "POST");
    CHECK_STR_EQ(err_code(&r), "method_not_allowed");
    reply_clear(&r);
    http(&e, "DELETE", "/v1/series", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 405);
    reply_clear(&r);
    /* no series registry in this server: the monitor is not running */
    http(&e, "POST", "/v1/series/rebaseline", "application/json", "{}", NULL, &r);
    CHECK_INT_EQ(r.status, 503);
    CHECK_STR_EQ(err_code(&r), "not_ready");
    reply_clear(&r);
    http(&e, "POST", "/v1/series/rebaseline", "application/json", "{\"app\":7}", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_code(&r), "invalid_argument");
    reply_clear(&r);
    http(&e, "POST", "/v1/series/rebaseline", "application/json", "[1", NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_code(&r), "parse_error");
    reply_clear(&r);
    http(&e, "POST", "/v1/golden-runs", "application/json", "{}", NULL, &r);
    CHECK_INT_EQ(r.status, 501);
    reply_clear(&r);
    http(&e, "GET", "/v1/golden-runs/run-1", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 404);
    reply_clear(&r);
    http(&e, "GET", "/v1/series", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK(json_is_array(json_object_get(r.json, "series")));
    reply_clear(&r);
    http(&e, "GET", "/v1/alarms?since=2026-01-01T00:00:00Z&limit=5", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    CHECK(json_is_array(json_object_get(r.json, "alarms")));
    reply_clear(&r);
    http(&e, "GET", "/v1/alarms?limit=0", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 400);
    CHECK_STR_EQ(err_field(&r), "limit");
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(store_failure_500)
{
    struct env e;
    env_start(&e, NULL, false, true);
    mem_store_fail_next(e.store, ASSAY_ERR_IO);
    struct reply r;
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\"}", &r);
    CHECK_INT_EQ(r.status, 500);
    CHECK_STR_EQ(err_code(&r), "io_error");
    reply_clear(&r);
    CHECK_INT_EQ(mem_store_count(e.store), 0);
    env_stop(&e);
}

TEST_CASE(metrics_exposition)
{
    struct env e;
    env_start(&e, "\"apps\":{\"capped\":{\"sample_rate\":1.0,\"max_judged_per_minute\":1}}", false,
              true);
    struct reply r;
    POST_JSON(&e, "[{\"app\":\"capped\",\"output\":\"x\"},{\"app\":\"capped\",\"output\":\"x\"}]",
              &r);
    CHECK_INT_EQ(r.status, 202);
    CHECK_INT_EQ(num(&r, "sampled"), 1);
    reply_clear(&r);
    http(&e, "GET", "/metrics", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 200);
    const char *t = r.body.data;
    CHECK(strstr(t, "assay_http_requests_total{route=\"/v1/samples\",code=\"202\"} 1") != NULL);
    CHECK(strstr(t, "assay_samples_received_total{app=\"capped\"} 2") != NULL);
    CHECK(strstr(t, "assay_samples_sampled_total{app=\"capped\"} 1") != NULL);
    CHECK(strstr(t, "assay_samples_dropped_total{app=\"capped\"} 1") != NULL);
    CHECK(strstr(t, "assay_http_request_duration_seconds_bucket{route=\"/v1/samples\",le=\"+Inf\"}"
                    " 1") != NULL);
    CHECK(strstr(t, "assay_queue_depth{state=\"queued\"} 1") != NULL);
    CHECK(strstr(t, "# TYPE assay_ready gauge\nassay_ready 1") != NULL);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(drain_refuses_new_requests)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct reply r;
    POST_JSON(&e, "{\"app\":\"support\",\"output\":\"x\"}", &r);
    CHECK_INT_EQ(r.status, 202);
    reply_clear(&r);
    CHECK_INT_EQ(http_api_drain(e.api, 1000), 0);
    CHECK(!http_api_ready(e.api));
    /* the listening socket is closed: a new connection is refused at once */
    time_t t0 = time(NULL);
    http(&e, "GET", "/healthz", NULL, NULL, NULL, &r);
    CHECK_INT_EQ(r.status, 0);
    CHECK(time(NULL) - t0 <= 2);
    reply_clear(&r);
    env_stop(&e);
}

TEST_CASE(parse_listen)
{
    char host[64];
    uint16_t port;
    CHECK_INT_EQ(http_api_parse_listen("127.0.0.1:8787", host, sizeof host, &port), 0);
    CHECK_STR_EQ(host, "127.0.0.1");
    CHECK_INT_EQ(port, 8787);
    CHECK_INT_EQ(http_api_parse_listen("[::1]:0", host, sizeof host, &port), 0);
    CHECK_STR_EQ(host, "::1");
    CHECK_INT_EQ(port, 0);
    CHECK_INT_EQ(http_api_parse_listen("::1:80", host, sizeof host, &port), -1);
    CHECK_INT_EQ(http_api_parse_listen("host", host, sizeof host, &port), -1);
    CHECK_INT_EQ(http_api_parse_listen("h:99999", host, sizeof host, &port), -1);
    CHECK_INT_EQ(http_api_parse_listen(":80", host, sizeof host, &port), -1);
}

/* ------------------------------------- loops, group commit, the real store */

/* A SQLite store in the case's directory (the ingest path with tickets and syncs). */
static struct store *sqlite_store(void)
{
    struct store_sqlite_options o;
    store_sqlite_options_init(&o);
    char path[4200];
    snprintf(path, sizeof path, "%s/assay.db", test_tmpdir());
    o.path = path;
    struct store *s = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = store_sqlite_open(&o, &s, errbuf);
    if (err != ASSAY_OK)
        fprintf(stderr, "store: %s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
    return s;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* A keep-alive client: one curl handle (one connection) for all its requests. */
struct client {
    CURL *c;
    struct curl_slist *h;
    char url[128];
};

static void client_init(struct client *k, const struct env *e, const char *path)
{
    k->c = curl_easy_init();
    k->h = curl_slist_append(NULL, "Content-Type: application/json");
    k->h = curl_slist_append(k->h, "Expect:");
    snprintf(k->url, sizeof k->url, "%s%s", e->base, path);
    curl_easy_setopt(k->c, CURLOPT_URL, k->url);
    curl_easy_setopt(k->c, CURLOPT_HTTPHEADER, k->h);
    curl_easy_setopt(k->c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(k->c, CURLOPT_TIMEOUT, 10L);
}

/* POSTs body (NULL: a GET); the status; *secs the request's time; *connects new connections. */
static long client_do(struct client *k, const char *body, double *secs, long *connects)
{
    if (body) {
        curl_easy_setopt(k->c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(k->c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(k->c, CURLOPT_HTTPGET, 1L);
    }
    long status = 0, nc = 0;
    double t = 0;
    if (curl_easy_perform(k->c) == CURLE_OK) {
        curl_easy_getinfo(k->c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(k->c, CURLINFO_NUM_CONNECTS, &nc);
        curl_easy_getinfo(k->c, CURLINFO_TOTAL_TIME, &t);
    }
    if (secs)
        *secs = t;
    if (connects)
        *connects += nc;
    return status;
}

static void client_clear(struct client *k)
{
    curl_easy_cleanup(k->c);
    curl_slist_free_all(k->h);
}

#define KA_CLIENTS 16
#define KA_POSTS 40

struct ka_arg {
    const struct env *e;
    int t;
    int accepted;
    int other;
    long connects;
};

static void *ka_main(void *p)
{
    struct ka_arg *a = p;
    struct client k;
    client_init(&k, a->e, "/v1/samples");
    for (int i = 0; i < KA_POSTS; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"k%d-%d\"}",
                 a->t, i);
        if (client_do(&k, body, NULL, &a->connects) == 202)
            a->accepted++;
        else
            a->other++;
    }
    client_clear(&k);
    return NULL;
}

/*
 * 16 keep-alive clients post at once to two loops over the SQLite store:
 * every post is answered 202 on the connection it came on (the loops keep
 * suspended-and-resumed connections alive), every sample is stored, and
 * inserts of different connections shared transactions.
 */
TEST_CASE(keepalive_clients_group_commit)
{
    struct env e;
    env_start_with(&e, NULL, false, true, sqlite_store(), 2);
    pthread_t th[KA_CLIENTS];
    struct ka_arg args[KA_CLIENTS];
    for (int t = 0; t < KA_CLIENTS; t++) {
        args[t] = (struct ka_arg){.e = &e, .t = t};
        REQUIRE_INT_EQ(pthread_create(&th[t], NULL, ka_main, &args[t]), 0);
    }
    for (int t = 0; t < KA_CLIENTS; t++) {
        pthread_join(th[t], NULL);
        CHECK_INT_EQ(args[t].accepted, KA_POSTS);
        CHECK_INT_EQ(args[t].other, 0);
        CHECK_INT_EQ(args[t].connects, 1); /* one connection for all its posts */
    }
    int missing = 0;
    for (int t = 0; t < KA_CLIENTS; t++)
        for (int i = 0; i < KA_POSTS; i++) {
            char id[32];
            snprintf(id, sizeof id, "k%d-%d", t, i);
            struct store_sample_info in = {0};
            missing += store_sample_get(e.store, "support", id, &in, NULL) != ASSAY_OK;
            store_sample_info_clear(&in);
        }
    CHECK_INT_EQ(missing, 0);
    struct store_stats st;
    store_stats_get(e.store, &st);
    fprintf(stderr,
            "keepalive_clients_group_commit: %d posts in %lld transactions (largest %lld)\n",
            KA_CLIENTS * KA_POSTS, (long long)st.transactions, (long long)st.largest_group);
    CHECK_INT_EQ(st.samples_inserted, KA_CLIENTS * KA_POSTS);
    CHECK(st.largest_group > 1);
    CHECK(st.transactions < KA_CLIENTS * KA_POSTS);
    env_stop(&e);
}

/*
 * A lone client is answered without waiting for server.commit_wait_us: its
 * loop's batch already holds every connection of the loop, so the loop
 * commits at once. With the bound at 1 s, each answer comes well within
 * 500 ms.
 */
TEST_CASE(lone_client_not_delayed)
{
    struct env e;
    env_start_with(&e, "\"server\":{\"commit_wait_us\":1000000}", false, true, sqlite_store(), 2);
    struct client k;
    client_init(&k, &e, "/v1/samples");
    for (int i = 0; i < 5; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"lone-%d\"}", i);
        double secs = 0;
        CHECK_INT_EQ(client_do(&k, body, &secs, NULL), 202);
        if (secs >= 0.5)
            fprintf(stderr, "lone_client_not_delayed: post %d took %.3f s\n", i, secs);
        CHECK(secs < 0.5);
    }
    client_clear(&k);
    struct store_sample_info in = {0};
    CHECK_INT_EQ(store_sample_get(e.store, "support", "lone-4", &in, NULL), ASSAY_OK);
    store_sample_info_clear(&in);
    env_stop(&e);
}

/*
 * The other side of the rule: an idle connection on the same loop could
 * still send an insert, so a post waits the full server.commit_wait_us
 * (300 ms here) before its commit; once that connection is closed, posts are
 * answered at once again. (The idle connection is a bare TCP connection that
 * never sends a request.)
 */
TEST_CASE(linger_waits_for_idle_connection)
{
    struct env e;
    env_start_with(&e, "\"server\":{\"commit_wait_us\":300000}", false, true, sqlite_store(), 1);
    int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(idle >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(http_api_port(e.api))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE_INT_EQ(connect(idle, (struct sockaddr *)&sa, sizeof sa), 0);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL); /* accepted and adopted by the loop */
    struct client k;
    client_init(&k, &e, "/v1/samples");
    double secs = 0;
    CHECK_INT_EQ(client_do(&k, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"l1\"}", &secs, NULL),
                 202);
    fprintf(stderr, "linger_waits_for_idle_connection: %.3f s beside an idle connection\n", secs);
    CHECK(secs >= 0.29);
    CHECK(secs < 3.0);
    close(idle);
    nanosleep(&ts, NULL); /* the loop sees it closed */
    CHECK_INT_EQ(client_do(&k, "{\"app\":\"support\",\"output\":\"x\",\"id\":\"l2\"}", &secs, NULL),
                 202);
    fprintf(stderr, "linger_waits_for_idle_connection: %.3f s alone\n", secs);
    CHECK(secs < 0.25);
    client_clear(&k);
    env_stop(&e);
}

/*
 * Reads keep their connection: GETs are answered on libmicrohttpd's second
 * call (on the first, it would close the connection after the answer), so a
 * scraper or a client polling a sample reuses one connection.
 */
TEST_CASE(get_keeps_connection)
{
    struct env e;
    env_start(&e, NULL, false, true);
    struct client k;
    client_init(&k, &e, "/healthz");
    long connects = 0;
    for (int i = 0; i < 3; i++)
        CHECK_INT_EQ(client_do(&k, NULL, NULL, &connects), 200);
    char url[160];
    snprintf(url, sizeof url, "%s/metrics", e.base);
    curl_easy_setopt(k.c, CURLOPT_URL, url);
    CHECK_INT_EQ(client_do(&k, NULL, NULL, &connects), 200);
    snprintf(url, sizeof url, "%s/v1/samples/nope?app=support", e.base);
    curl_easy_setopt(k.c, CURLOPT_URL, url);
    CHECK_INT_EQ(client_do(&k, NULL, NULL, &connects), 404);
    snprintf(url, sizeof url, "%s/healthz", e.base);
    curl_easy_setopt(k.c, CURLOPT_URL, url);
    CHECK_INT_EQ(client_do(&k, NULL, NULL, &connects), 200);
    CHECK_INT_EQ(connects, 1); /* six requests, one connection */
    client_clear(&k);
    env_stop(&e);
}

/* The value of assay_http_loop_connections{loop="i"} in a /metrics text, or -1. */
static long loop_connections(const char *text, unsigned i)
{
    char key[64];
    snprintf(key, sizeof key, "assay_http_loop_connections{loop=\"%u\"} ", i);
    const char *p = text ? strstr(text, key) : NULL;
    return p ? strtol(p + strlen(key), NULL, 10) : -1;
}

/*
 * The acceptor hands each new connection to the loop with the fewest, so
 * keep-alive clients spread evenly over the loops (/metrics shows the count
 * per loop): 8 open connections and the scrape's own make 9 over 2 loops,
 * 5 and 4; once the 8 are closed, only the scrape's is left.
 */
TEST_CASE(connections_spread_over_loops)
{
    struct env e;
    env_start_with(&e, NULL, false, true, NULL, 2);
    enum { N = 8 };
    struct client k[N];
    for (int i = 0; i < N; i++) {
        client_init(&k[i], &e, "/healthz");
        CHECK_INT_EQ(client_do(&k[i], NULL, NULL, NULL), 200); /* opens and keeps its connection */
    }
    struct reply r;
    http(&e, "GET", "/metrics", NULL, NULL, NULL, &r);
    REQUIRE_INT_EQ(r.status, 200);
    const char *text = buf_cstr(&r.body);
    long a = loop_connections(text, 0), b = loop_connections(text, 1);
    CHECK_INT_EQ(a + b, N + 1);
    CHECK(labs(a - b) <= 1);
    CHECK_INT_EQ(loop_connections(text, 2), -1); /* two loops, no third */
    reply_clear(&r);
    for (int i = 0; i < N; i++)
        client_clear(&k[i]);
    /* The closes reach the loops' counts once libmicrohttpd sees them: bounded wait. */
    long left = -1;
    for (int tries = 0; tries < 100; tries++) {
        http(&e, "GET", "/metrics", NULL, NULL, NULL, &r);
        text = buf_cstr(&r.body);
        left = loop_connections(text, 0) + loop_connections(text, 1);
        reply_clear(&r);
        if (left == 1)
            break;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK_INT_EQ(left, 1);
    env_stop(&e);
}
