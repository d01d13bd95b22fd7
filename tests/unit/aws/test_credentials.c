/*
 * Unit tests for aws/credentials: each provider against local fakes on
 * 127.0.0.1 (STS, container endpoint, IMDS), the chain's order, expiry and
 * refresh with a manual clock, single flight across threads, and malformed
 * answers and timeouts. The environment is injected (never the process's),
 * HOME points at the case's temp dir, and every case ends by checking that no
 * fake secret reached a log line or an error buffer.
 */
#include "aws/credentials.h"
#include "aws/creds_private.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"
#include "tests/support/fake_server.h"
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#define T0_MS 1795000000000LL /* 2026-11-18T... a whole second */
#define MIN_MS 60000LL
#define HOUR_MS 3600000LL

/* Every fake secret holds one of these markers; none may ever be logged. */
static const char *const secret_markers[] = {"FAKESECRET", "FAKESESSION", "FAKEJWT", "FAKEAUTH",
                                             "FAKEIMDSTOKEN"};

/* ---- log and error-buffer capture ---- */

static struct buf captured = BUF_INIT; /* log lines and error buffers */
static pthread_mutex_t captured_mu = PTHREAD_MUTEX_INITIALIZER;

static void log_capture(void *ctx, const char *line, size_t len)
{
    (void)ctx;
    pthread_mutex_lock(&captured_mu);
    buf_append(&captured, line, len);
    pthread_mutex_unlock(&captured_mu);
}

static void note_errbuf(const char *eb)
{
    pthread_mutex_lock(&captured_mu);
    buf_append_str(&captured, "errbuf: ");
    buf_append_str(&captured, eb);
    buf_append_char(&captured, '\n');
    pthread_mutex_unlock(&captured_mu);
}

static void start_capture(void)
{
    log_set_level(LOG_LEVEL_DEBUG);
    log_set_sink(log_capture, NULL);
}

static int captured_has(const char *needle)
{
    pthread_mutex_lock(&captured_mu);
    int has = strstr(buf_cstr(&captured), needle) != NULL;
    pthread_mutex_unlock(&captured_mu);
    return has;
}

/* Ends every case: no secret in anything captured, then frees the capture. */
static void finish(void)
{
    log_set_sink(NULL, NULL);
    for (size_t i = 0; i < sizeof secret_markers / sizeof secret_markers[0]; i++) {
        if (strstr(buf_cstr(&captured), secret_markers[i])) {
            fprintf(stderr, "secret marker %s leaked into:\n%s\n", secret_markers[i],
                    buf_cstr(&captured));
            CHECK(!"a secret reached a log line or an error buffer");
        }
    }
    buf_clear(&captured);
}

/* ---- an injected environment ---- */

struct tenv {
    char *k[32];
    char *v[32];
    int n;
};

static const char *tenv_get(void *ctx, const char *name)
{
    struct tenv *e = ctx;
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->k[i], name) == 0)
            return e->v[i];
    return NULL;
}

static void tenv_set(struct tenv *e, const char *k, const char *v)
{
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->k[i], k) == 0) {
            free(e->v[i]);
            if (v) {
                e->v[i] = xstrdup(v);
            } else {
                free(e->k[i]);
                e->k[i] = e->k[e->n - 1];
                e->v[i] = e->v[e->n - 1];
                e->n--;
            }
            return;
        }
    }
    if (!v)
        return;
    REQUIRE(e->n < 32);
    e->k[e->n] = xstrdup(k);
    e->v[e->n] = xstrdup(v);
    e->n++;
}

static void tenv_clear(struct tenv *e)
{
    for (int i = 0; i < e->n; i++) {
        free(e->k[i]);
        free(e->v[i]);
    }
    e->n = 0;
}

/* A fresh environment: HOME is the case's temp dir, IMDS is off. */
static void tenv_init(struct tenv *e)
{
    memset(e, 0, sizeof *e);
    tenv_set(e, "HOME", test_tmpdir());
    tenv_set(e, "AWS_EC2_METADATA_DISABLED", "true");
}

static void options_init(struct creds_options *o, struct tenv *e)
{
    memset(o, 0, sizeof *o);
    o->getenv = tenv_get;
    o->getenv_ctx = e;
}

/* ---- files ---- */

static char *tmp_path(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static void mkdir_aws(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/.aws'", test_tmpdir());
    REQUIRE(system(cmd) == 0);
}

/* ---- get with capture ---- */

static enum assay_err get(struct creds_provider *p, struct creds *c)
{
    char eb[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = creds_provider_get(p, c, eb);
    if (err != ASSAY_OK) {
        fprintf(stderr, "get: %s: %s\n", assay_err_name(err), eb);
        note_errbuf(eb);
        CHECK(eb[0] != '\0');
    }
    return err;
}

static enum assay_err get_eb(struct creds_provider *p, struct creds *c, char *eb)
{
    enum assay_err err = creds_provider_get(p, c, eb);
    if (err != ASSAY_OK) {
        fprintf(stderr, "get: %s: %s\n", assay_err_name(err), eb);
        note_errbuf(eb);
    }
    return err;
}

static struct http_transport *transport(void)
{
    char eb[ASSAY_ERRBUF_SIZE] = "";
    struct http_transport *t = http_transport_new(NULL, eb);
    REQUIRE(t != NULL);
    return t;
}

static int64_t mono_ms(void)
{
    return clock_mono_ms(NULL);
}

/* ---- a configurable fake endpoint (container, STS, IMDS) ---- */

struct fake {
    pthread_mutex_t mu;
    int status;
    char body[4096];
    int delay_ms;
    /* container: the Authorization value required (NULL: none) */
    char want_auth[256];
    char seen_auth[256];
    /* STS: the decoded form parameters of the last request */
    char action[64], version[32], role_arn[128], session[128], token[256], method[8];
    /* IMDS */
    int role_status;
    int put_status;
    char role_body[4096];
    atomic_int gets_without_token;
    atomic_int puts_without_ttl;
};

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->status = 200;
    f->role_status = 200;
    f->put_status = 200;
}

static void fake_set(struct fake *f, int status, const char *body)
{
    pthread_mutex_lock(&f->mu);
    f->status = status;
    snprintf(f->body, sizeof f->body, "%s", body);
    pthread_mutex_unlock(&f->mu);
}

static void creds_json(char *out, size_t n, const char *akid, const char *secret, const char *token,
                       int64_t exp_ms, int imds)
{
    char when[25];
    clock_format_iso8601_ms(exp_ms, when);
    snprintf(out, n,
             "{%s\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"Token\":\"%s\","
             "\"Expiration\":\"%s\",\"RoleArn\":\"arn:aws:iam::1:role/x\",\"nested\":{\"a\":[1,2,"
             "{\"b\":null}]}}",
             imds ? "\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\",\"Type\":"
                    "\"AWS-HMAC\","
                  : "",
             akid, secret, token, when);
}

static void container_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    const char *auth = fake_request_header(req, "Authorization");
    snprintf(f->seen_auth, sizeof f->seen_auth, "%s", auth ? auth : "");
    resp->delay_ms = f->delay_ms;
    if (f->want_auth[0] && (!auth || strcmp(auth, f->want_auth) != 0))
        fake_response_text(resp, 401, "{\"code\":\"Unauthorized\"}");
    else
        fake_response_text(resp, f->status, f->body);
    pthread_mutex_unlock(&f->mu);
}

static void url_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '%' && i + 2 < n) {
            char hex[3] = {s[i + 1], s[i + 2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[o++] = s[i] == '+' ? ' ' : s[i];
        }
    }
    out[o] = '\0';
}

static void form_param(const char *body, size_t len, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    out[0] = '\0';
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(body + i, '&', len - i);
        size_t end = amp ? (size_t)(amp - body) : len;
        if (end - i > kl && memcmp(body + i, key, kl) == 0 && body[i + kl] == '=') {
            url_decode(body + i + kl + 1, end - i - kl - 1, out, cap);
            return;
        }
        i = end + 1;
    }
}

static void sts_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    snprintf(f->method, sizeof f->method, "%s", req->method);
    form_param(req->body, req->body_len, "Action", f->action, sizeof f->action);
    form_param(req->body, req->body_len, "Version", f->version, sizeof f->version);
    form_param(req->body, req->body_len, "RoleArn", f->role_arn, sizeof f->role_arn);
    form_param(req->body, req->body_len, "RoleSessionName", f->session, sizeof f->session);
    form_param(req->body, req->body_len, "WebIdentityToken", f->token, sizeof f->token);
    resp->delay_ms = f->delay_ms;
    fake_response_text(resp, f->status, f->body);
    fake_response_header(resp, "Content-Type", "text/xml");
    pthread_mutex_unlock(&f->mu);
}

#define IMDS_TOKEN "FAKEIMDSTOKEN-abc"

static void imds_handler(void *ctx, const struct fake_request *req, struct fake_response *resp)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    resp->delay_ms = f->delay_ms;
    if (strcmp(req->method, "PUT") == 0 && strcmp(req->path, "/latest/api/token") == 0) {
        const char *ttl = fake_request_header(req, "X-aws-ec2-metadata-token-ttl-seconds");
        if (!ttl || atoi(ttl) <= 0) {
            atomic_fetch_add(&f->puts_without_ttl, 1);
            fake_response_text(resp, 400, "missing ttl");
        } else {
            fake_response_text(resp, f->put_status, f->put_status == 200 ? IMDS_TOKEN : "no");
        }
        goto out;
    }
    const char *tok = fake_request_header(req, "X-aws-ec2-metadata-token");
    if (!tok || strcmp(tok, IMDS_TOKEN) != 0) {
        /* IMDSv2 enforced: no token, no answer. */
        atomic_fetch_add(&f->gets_without_token, 1);
        fake_response_text(resp, 401, "");
        goto out;
    }
    if (strcmp(req->path, "/latest/meta-data/iam/security-credentials/") == 0)
        fake_response_text(resp, f->role_status, f->role_status == 200 ? "test-role\n" : "");
    else if (strcmp(req->path, "/latest/meta-data/iam/security-credentials/test-role") == 0)
        fake_response_text(resp, f->status, f->body);
    else
        fake_response_text(resp, 404, "");
out:
    pthread_mutex_unlock(&f->mu);
}

static struct fake_server *start(fake_handler_fn fn, struct fake *f)
{
    struct fake_server *s = fake_server_start(fn, f);
    REQUIRE(s != NULL);
    return s;
}

/* ==== struct creds ==== */

TEST_CASE(creds_copy_and_clear)
{
    struct creds a, b;
    creds_init(&a);
    creds_init(&b);
    CHECK(!creds_is_set(&a));
    creds_set(&a, "AKID", 4, "FAKESECRET1", 11, NULL, 0);
    a.expiration_ms = 42;
    snprintf(a.provider, sizeof a.provider, "env");
    CHECK(creds_is_set(&a));
    creds_copy(&b, &a);
    CHECK_STR_EQ(b.access_key_id, "AKID");
    CHECK_STR_EQ(b.secret_access_key, "FAKESECRET1");
    CHECK(b.session_token == NULL);
    CHECK_INT_EQ(b.expiration_ms, 42);
    CHECK_STR_EQ(b.provider, "env");
    creds_copy(&b, &b);
    CHECK_STR_EQ(b.access_key_id, "AKID");
    creds_clear(&a);
    CHECK(a.access_key_id == NULL && a.secret_access_key == NULL);
    CHECK_INT_EQ(a.expiration_ms, 0);
    creds_clear(&b);
    creds_clear(NULL);
    creds_provider_free(NULL);
}

TEST_CASE(static_provider)
{
    start_capture();
    struct creds in, out;
    creds_init(&in);
    creds_init(&out);
    creds_set(&in, "AKIDSTATIC", 10, "FAKESECRET-static", 17, "FAKESESSION-s", 13);
    struct creds_provider *p = creds_static_new(&in);
    creds_clear(&in);
    CHECK_STR_EQ(creds_provider_name(p), "static");
    REQUIRE_INT_EQ(get(p, &out), ASSAY_OK);
    CHECK_STR_EQ(out.access_key_id, "AKIDSTATIC");
    CHECK_STR_EQ(out.session_token, "FAKESESSION-s");
    CHECK_STR_EQ(out.provider, "static");
    REQUIRE_INT_EQ(get(p, &out), ASSAY_OK);
    CHECK_INT_EQ(creds_provider_fetches(p), 1);
    creds_clear(&out);
    creds_provider_free(p);

    p = creds_static_new(NULL);
    CHECK_INT_EQ(get(p, &out), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(!creds_is_set(&out));
    creds_provider_free(p);
    finish();
}

/* ==== env ==== */

TEST_CASE(env_present)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    tenv_set(&e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    tenv_set(&e, "AWS_SECRET_ACCESS_KEY", "FAKESECRET-env");
    struct creds_provider *p = creds_env_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDENV");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-env");
    CHECK(c.session_token == NULL);
    CHECK_INT_EQ(c.expiration_ms, 0);
    CHECK_STR_EQ(c.provider, "env");
    creds_clear(&c);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(env_with_session_token)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    tenv_set(&e, "AWS_ACCESS_KEY_ID", "ASIAENV");
    tenv_set(&e, "AWS_SECRET_ACCESS_KEY", "FAKESECRET-env");
    tenv_set(&e, "AWS_SESSION_TOKEN", "FAKESESSION-env");
    struct creds_provider *p = creds_env_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.session_token, "FAKESESSION-env");
    creds_clear(&c);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(env_partial_is_ignored)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);

    struct creds_provider *p = creds_env_new(&o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "AWS_ACCESS_KEY_ID") != NULL);
    creds_provider_free(p);

    tenv_set(&e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    p = creds_env_new(&o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "AWS_SECRET_ACCESS_KEY") != NULL);
    CHECK(!creds_is_set(&c));
    creds_provider_free(p);

    tenv_set(&e, "AWS_ACCESS_KEY_ID", NULL);
    tenv_set(&e, "AWS_SECRET_ACCESS_KEY", "FAKESECRET-alone");
    p = creds_env_new(&o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_NO_CREDENTIALS);
    creds_provider_free(p);

    /* Empty values count as unset. */
    tenv_set(&e, "AWS_ACCESS_KEY_ID", "");
    p = creds_env_new(&o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_NO_CREDENTIALS);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

/* ==== profiles ==== */

static const char *const CRED_FILE = "[default]\n"
                                     "aws_access_key_id = AKIDDEFAULT\n"
                                     "aws_secret_access_key = FAKESECRET-default\n"
                                     "\n"
                                     "[work]\n"
                                     "aws_access_key_id = AKIDWORK\n"
                                     "aws_secret_access_key = FAKESECRET-work\n"
                                     "aws_session_token = FAKESESSION-work\n";

TEST_CASE(profile_default_from_home)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    mkdir_aws();
    test_write_file(tmp_path(".aws/credentials"), CRED_FILE);
    struct creds_provider *p = creds_profile_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDDEFAULT");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-default");
    CHECK(c.session_token == NULL);
    CHECK_STR_EQ(c.provider, "profile");
    creds_clear(&c);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(profile_named)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    test_write_file(tmp_path("creds"), CRED_FILE);
    tenv_set(&e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    tenv_set(&e, "AWS_PROFILE", "work");
    struct creds_provider *p = creds_profile_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDWORK");
    CHECK_STR_EQ(c.session_token, "FAKESESSION-work");
    creds_provider_free(p);

    /* The options' profile overrides AWS_PROFILE. */
    o.profile = "default";
    p = creds_profile_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDDEFAULT");
    creds_provider_free(p);

    /* A profile that does not exist. */
    o.profile = "absent";
    p = creds_profile_new(&o);
    char eb[ASSAY_ERRBUF_SIZE];
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "absent") != NULL);
    creds_provider_free(p);
    creds_clear(&c);
    tenv_clear(&e);
    finish();
}

TEST_CASE(profile_in_config_file)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    test_write_file(tmp_path("config"), "[profile dev]\n"
                                        "region = eu-central-1\n"
                                        "aws_access_key_id = AKIDCONFIG\n"
                                        "aws_secret_access_key = FAKESECRET-config\n"
                                        "[dev]\n"
                                        "aws_access_key_id = AKIDWRONG\n");
    tenv_set(&e, "AWS_CONFIG_FILE", tmp_path("config"));
    tenv_set(&e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("missing"));
    tenv_set(&e, "AWS_PROFILE", "dev");
    struct creds_provider *p = creds_profile_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDCONFIG");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-config");
    creds_clear(&c);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(profile_credentials_file_wins_per_key)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    test_write_file(tmp_path("config"), "[default]\n"
                                        "aws_access_key_id = AKIDCONFIG\n"
                                        "aws_secret_access_key = FAKESECRET-config\n"
                                        "aws_session_token = FAKESESSION-config\n");
    test_write_file(tmp_path("creds"), "[default]\n"
                                       "aws_access_key_id = AKIDCREDS\n"
                                       "aws_secret_access_key = FAKESECRET-creds\n");
    tenv_set(&e, "AWS_CONFIG_FILE", tmp_path("config"));
    tenv_set(&e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    struct creds_provider *p = creds_profile_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDCREDS");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-creds");
    /* Absent from the credentials file: taken from config. */
    CHECK_STR_EQ(c.session_token, "FAKESESSION-config");
    creds_clear(&c);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(profile_missing_files)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    struct creds_provider *p = creds_profile_new(&o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "default") != NULL);
    CHECK(strstr(eb, ".aws/credentials") != NULL);
    creds_provider_free(p);

    /* No HOME at all: nothing to read, still no crash. */
    tenv_set(&e, "HOME", NULL);
    p = creds_profile_new(&o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_NO_CREDENTIALS);
    creds_provider_free(p);

    /* A key id without its secret is not credentials. */
    tenv_set(&e, "HOME", test_tmpdir());
    test_write_file(tmp_path("creds"), "[default]\naws_access_key_id = AKIDONLY\n");
    tenv_set(&e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    p = creds_profile_new(&o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "aws_secret_access_key") != NULL);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(profile_malformed_lines_tolerated)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    test_write_file(tmp_path("creds"), "garbage FAKESECRET-in-garbage\n"
                                       "; comment\n"
                                       "[default]\n"
                                       "this line has FAKESECRET-no-equals\n"
                                       "  aws_access_key_id=AKIDOK  # trailing\n"
                                       "aws_secret_access_key =   FAKESECRET-ok\n"
                                       "[broken\n"
                                       "aws_access_key_id = AKIDBROKEN\n");
    tenv_set(&e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    struct creds_provider *p = creds_profile_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKIDOK");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-ok");
    CHECK(captured_has("profile.malformed_lines"));
    CHECK(captured_has("\"first_line\":1"));
    creds_clear(&c);
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

TEST_CASE(region_resolution_order)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    char *r = NULL;
    char eb[ASSAY_ERRBUF_SIZE];
    tenv_init(&e);
    options_init(&o, &e);

    CHECK_INT_EQ(creds_region_resolve(&o, &r, eb), ASSAY_ERR_NOT_FOUND);
    CHECK(r == NULL);
    CHECK(strstr(eb, "AWS_REGION") != NULL);

    test_write_file(tmp_path("config"), "[default]\nregion = eu-west-1\n"
                                        "[profile other]\nregion = ap-northeast-1\n"
                                        "s3 =\n  region = not-this\n");
    tenv_set(&e, "AWS_CONFIG_FILE", tmp_path("config"));
    REQUIRE_INT_EQ(creds_region_resolve(&o, &r, eb), ASSAY_OK);
    CHECK_STR_EQ(r, "eu-west-1");
    free(r);

    tenv_set(&e, "AWS_PROFILE", "other");
    REQUIRE_INT_EQ(creds_region_resolve(&o, &r, eb), ASSAY_OK);
    CHECK_STR_EQ(r, "ap-northeast-1");
    free(r);

    tenv_set(&e, "AWS_DEFAULT_REGION", "us-west-1");
    REQUIRE_INT_EQ(creds_region_resolve(&o, &r, eb), ASSAY_OK);
    CHECK_STR_EQ(r, "us-west-1");
    free(r);

    tenv_set(&e, "AWS_REGION", "us-east-2");
    REQUIRE_INT_EQ(creds_region_resolve(&o, &r, eb), ASSAY_OK);
    CHECK_STR_EQ(r, "us-east-2");
    free(r);

    /* A profile without a region. */
    tenv_set(&e, "AWS_REGION", NULL);
    tenv_set(&e, "AWS_DEFAULT_REGION", NULL);
    tenv_set(&e, "AWS_PROFILE", "nothing");
    CHECK_INT_EQ(creds_region_resolve(&o, &r, eb), ASSAY_ERR_NOT_FOUND);
    CHECK(strstr(eb, "nothing") != NULL);
    tenv_clear(&e);
    finish();
}

/* ==== web identity (STS) ==== */

#define STS_OK_FMT                                                                                 \
    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"    \
    "  <AssumeRoleWithWebIdentityResult>\n"                                                        \
    "    <SubjectFromWebIdentityToken>system:serviceaccount:ns:sa</SubjectFromWebIdentityToken>\n" \
    "    <AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn>"                              \
    "<AssumedRoleId>AROA:s</AssumedRoleId></AssumedRoleUser>\n"                                    \
    "    <Credentials>\n"                                                                          \
    "      <AccessKeyId>%s</AccessKeyId>\n"                                                        \
    "      <SecretAccessKey>FAKESECRET-sts&amp;x</SecretAccessKey>\n"                              \
    "      <SessionToken>FAKESESSION-sts</SessionToken>\n"                                         \
    "      <Expiration>%s</Expiration>\n"                                                          \
    "    </Credentials>\n"                                                                         \
    "  </AssumeRoleWithWebIdentityResult>\n"                                                       \
    "  <ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata>\n"                          \
    "</AssumeRoleWithWebIdentityResponse>\n"

static void sts_ok(struct fake *f, const char *akid, int64_t exp_ms)
{
    char when[25], body[2048];
    clock_format_iso8601_ms(exp_ms, when);
    snprintf(body, sizeof body, STS_OK_FMT, akid, when);
    fake_set(f, 200, body);
}

struct wi_env {
    struct tenv e;
    struct creds_options o;
    struct fake f;
    struct fake_server *srv;
    struct http_transport *t;
    struct clock clk;
    volatile int64_t now;
};

static void wi_setup(struct wi_env *w)
{
    tenv_init(&w->e);
    options_init(&w->o, &w->e);
    fake_init(&w->f);
    w->srv = start(sts_handler, &w->f);
    w->t = transport();
    w->now = T0_MS;
    clock_manual_init(&w->clk, &w->now);
    w->o.clock = &w->clk;
    w->o.transport = w->t;
    test_write_file(tmp_path("jwt"), "FAKEJWT-one\n");
    tenv_set(&w->e, "AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("jwt"));
    tenv_set(&w->e, "AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/assay");
    tenv_set(&w->e, "AWS_ENDPOINT_URL_STS", fake_server_url(w->srv));
}

static void wi_teardown(struct wi_env *w)
{
    http_transport_free(w->t);
    fake_server_stop(w->srv);
    tenv_clear(&w->e);
}

TEST_CASE(web_identity_assume_role)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    creds_init(&c);
    wi_setup(&w);
    tenv_set(&w.e, "AWS_ROLE_SESSION_NAME", "my session/1");
    sts_ok(&w.f, "ASIASTS1", T0_MS + HOUR_MS);
    struct creds_provider *p = creds_web_identity_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIASTS1");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-sts&x");
    CHECK_STR_EQ(c.session_token, "FAKESESSION-sts");
    CHECK_INT_EQ(c.expiration_ms, T0_MS + HOUR_MS);
    CHECK_STR_EQ(c.provider, "web_identity");
    CHECK_STR_EQ(w.f.method, "POST");
    CHECK_STR_EQ(w.f.action, "AssumeRoleWithWebIdentity");
    CHECK_STR_EQ(w.f.version, "2011-06-15");
    CHECK_STR_EQ(w.f.role_arn, "arn:aws:iam::123456789012:role/assay");
    CHECK_STR_EQ(w.f.session, "my session/1");
    CHECK_STR_EQ(w.f.token, "FAKEJWT-one");
    creds_clear(&c);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

TEST_CASE(web_identity_generated_session_and_endpoint_fallback)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    creds_init(&c);
    wi_setup(&w);
    /* AWS_ENDPOINT_URL applies when there is no STS-specific override. */
    tenv_set(&w.e, "AWS_ENDPOINT_URL", fake_server_url(w.srv));
    tenv_set(&w.e, "AWS_ENDPOINT_URL_STS", NULL);
    sts_ok(&w.f, "ASIASTS2", T0_MS + HOUR_MS);
    struct creds_provider *p = creds_web_identity_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIASTS2");
    CHECK(strncmp(w.f.session, "assay-", 6) == 0);
    CHECK(strlen(w.f.session) > 6);
    CHECK_INT_EQ(fake_server_hits(w.srv), 1);
    creds_clear(&c);
    creds_provider_free(p);

    /* The STS-specific override wins over the general one. */
    tenv_set(&w.e, "AWS_ENDPOINT_URL", "http://127.0.0.1:1");
    tenv_set(&w.e, "AWS_ENDPOINT_URL_STS", fake_server_url(w.srv));
    p = creds_web_identity_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    creds_clear(&c);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

TEST_CASE(web_identity_sts_error)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    wi_setup(&w);
    fake_set(&w.f, 400,
             "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
             "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
             "<Message>Token &lt;expired&gt;</Message></Error>"
             "<RequestId>r-2</RequestId></ErrorResponse>");
    struct creds_provider *p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_HTTP_STATUS);
    CHECK(strstr(eb, "400") != NULL);
    CHECK(strstr(eb, "InvalidIdentityToken") != NULL);
    CHECK(strstr(eb, "Token <expired>") != NULL);
    CHECK(!creds_is_set(&c));
    creds_provider_free(p);

    /* A 200 without credentials in it. */
    fake_set(&w.f, 200,
             "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
             "<Credentials><AccessKeyId>A</AccessKeyId></Credentials>"
             "</AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>");
    p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_PARSE);
    CHECK(strstr(eb, "SecretAccessKey") != NULL);
    creds_provider_free(p);

    /* Not XML at all. */
    fake_set(&w.f, 200, "{\"not\": \"xml\"}");
    p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_PARSE);
    creds_provider_free(p);

    /* A 503 without a body. */
    fake_set(&w.f, 503, "");
    p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_HTTP_STATUS);
    CHECK(strstr(eb, "503") != NULL);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

TEST_CASE(web_identity_token_file_reread_on_refresh)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    creds_init(&c);
    wi_setup(&w);
    sts_ok(&w.f, "ASIAFIRST", T0_MS + HOUR_MS);
    struct creds_provider *p = creds_web_identity_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(w.f.token, "FAKEJWT-one");

    test_write_file(tmp_path("jwt"), "FAKEJWT-two");
    sts_ok(&w.f, "ASIASECOND", T0_MS + 2 * HOUR_MS);
    w.now = T0_MS + HOUR_MS - 4 * MIN_MS; /* inside the 5-minute margin */
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIASECOND");
    CHECK_STR_EQ(w.f.token, "FAKEJWT-two");
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    creds_clear(&c);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

TEST_CASE(web_identity_missing_pieces)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    wi_setup(&w);
    sts_ok(&w.f, "ASIAX", T0_MS + HOUR_MS);

    tenv_set(&w.e, "AWS_ROLE_ARN", NULL);
    struct creds_provider *p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "AWS_ROLE_ARN") != NULL);
    creds_provider_free(p);

    tenv_set(&w.e, "AWS_ROLE_ARN", "arn:aws:iam::1:role/r");
    tenv_set(&w.e, "AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("no-such-token"));
    p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NOT_FOUND);
    CHECK(strstr(eb, "no-such-token") != NULL);
    creds_provider_free(p);

    test_write_file(tmp_path("empty"), "  \n");
    tenv_set(&w.e, "AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("empty"));
    p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_PARSE);
    creds_provider_free(p);
    CHECK_INT_EQ(fake_server_hits(w.srv), 0);

    /* No transport: not an error, just nothing found. */
    tenv_set(&w.e, "AWS_WEB_IDENTITY_TOKEN_FILE", tmp_path("jwt"));
    w.o.transport = NULL;
    p = creds_web_identity_new(&w.o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_NO_CREDENTIALS);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

TEST_CASE(web_identity_timeout)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    creds_init(&c);
    wi_setup(&w);
    sts_ok(&w.f, "ASIAX", T0_MS + HOUR_MS);
    w.f.delay_ms = 1500;
    w.o.http_timeout_ms = 300;
    struct creds_provider *p = creds_web_identity_new(&w.o);
    int64_t t0 = mono_ms();
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_TIMEOUT);
    CHECK(mono_ms() - t0 < 1200);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

/* ==== container ==== */

struct ct_env {
    struct tenv e;
    struct creds_options o;
    struct fake f;
    struct fake_server *srv;
    struct http_transport *t;
    struct clock clk;
    volatile int64_t now;
    char full_uri[128];
};

static void ct_setup(struct ct_env *w)
{
    tenv_init(&w->e);
    options_init(&w->o, &w->e);
    fake_init(&w->f);
    w->srv = start(container_handler, &w->f);
    w->t = transport();
    w->now = T0_MS;
    clock_manual_init(&w->clk, &w->now);
    w->o.clock = &w->clk;
    w->o.transport = w->t;
    w->o.container_base_url = fake_server_url(w->srv);
    snprintf(w->full_uri, sizeof w->full_uri, "%s/v1/credentials", fake_server_url(w->srv));
    char body[1024];
    creds_json(body, sizeof body, "ASIACONTAINER", "FAKESECRET-ct", "FAKESESSION-ct",
               T0_MS + HOUR_MS, 0);
    fake_set(&w->f, 200, body);
}

static void ct_teardown(struct ct_env *w)
{
    http_transport_free(w->t);
    fake_server_stop(w->srv);
    tenv_clear(&w->e);
}

TEST_CASE(container_relative_uri)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc");
    struct creds_provider *p = creds_container_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIACONTAINER");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-ct");
    CHECK_STR_EQ(c.session_token, "FAKESESSION-ct");
    CHECK_INT_EQ(c.expiration_ms, T0_MS + HOUR_MS);
    CHECK_STR_EQ(c.provider, "container");
    CHECK_STR_EQ(w.f.seen_auth, "");
    creds_clear(&c);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

TEST_CASE(container_full_uri_with_auth_token)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    ct_setup(&w);
    snprintf(w.f.want_auth, sizeof w.f.want_auth, "FAKEAUTH-env");
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", w.full_uri);
    struct creds_provider *p = creds_container_new(&w.o);
    /* Without the token the endpoint refuses. */
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_HTTP_STATUS);
    CHECK(strstr(eb, "401") != NULL);
    creds_provider_free(p);

    tenv_set(&w.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "FAKEAUTH-env");
    p = creds_container_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(w.f.seen_auth, "FAKEAUTH-env");
    creds_provider_free(p);

    /* A token with a line break is refused before any request. */
    tenv_set(&w.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "FAKEAUTH\r\nX-Evil: 1");
    int hits = fake_server_hits(w.srv);
    p = creds_container_new(&w.o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_CONFIG);
    CHECK_INT_EQ(fake_server_hits(w.srv), hits);
    creds_provider_free(p);
    creds_clear(&c);
    ct_teardown(&w);
    finish();
}

TEST_CASE(container_token_file_reread)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", w.full_uri);
    /* The file wins over the variable. */
    tenv_set(&w.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "FAKEAUTH-env");
    test_write_file(tmp_path("eks-token"), "FAKEAUTH-file-1\n");
    tenv_set(&w.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tmp_path("eks-token"));
    snprintf(w.f.want_auth, sizeof w.f.want_auth, "FAKEAUTH-file-1");
    struct creds_provider *p = creds_container_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(w.f.seen_auth, "FAKEAUTH-file-1");

    /* Rotated: the next refresh reads the new token. */
    test_write_file(tmp_path("eks-token"), "FAKEAUTH-file-2");
    pthread_mutex_lock(&w.f.mu);
    snprintf(w.f.want_auth, sizeof w.f.want_auth, "FAKEAUTH-file-2");
    pthread_mutex_unlock(&w.f.mu);
    char body[1024];
    creds_json(body, sizeof body, "ASIAROTATED", "FAKESECRET-ct2", "FAKESESSION-ct2",
               T0_MS + 2 * HOUR_MS, 0);
    fake_set(&w.f, 200, body);
    w.now = T0_MS + HOUR_MS - MIN_MS;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIAROTATED");
    CHECK_STR_EQ(w.f.seen_auth, "FAKEAUTH-file-2");
    creds_clear(&c);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

TEST_CASE(container_disallowed_http_host)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    ct_setup(&w);
    w.o.http_timeout_ms = 200;
    static const char *const refused[] = {
        "http://example.com/creds",    "http://169.254.169.254/creds", "http://10.0.0.1:80/creds",
        "http://[fd00:ec2::24]/creds", "http://user@127.0.0.1/creds",  "ftp://127.0.0.1/creds",
        "http://127.0.0.1.evil.com/x", "http://[::2]/creds",           "http://169.254.170.3/creds",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", refused[i]);
        struct creds_provider *p = creds_container_new(&w.o);
        eb[0] = '\0';
        int err = get_eb(p, &c, eb);
        if (err != ASSAY_ERR_CONFIG)
            fprintf(stderr, "not refused: %s (%d: %s)\n", refused[i], err, eb);
        CHECK_INT_EQ(err, ASSAY_ERR_CONFIG);
        creds_provider_free(p);
    }
    CHECK_INT_EQ(fake_server_hits(w.srv), 0);

    /* Allowed hosts get as far as the network (nothing listens there). */
    static const char *const allowed[] = {
        "http://127.0.0.1:1/creds",  "http://localhost:1/creds",        "http://[::1]:1/creds",
        "https://127.0.0.1:1/creds", "https://example.invalid:1/creds",
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", allowed[i]);
        struct creds_provider *p = creds_container_new(&w.o);
        int err = get(p, &c);
        CHECK(err != ASSAY_OK && err != ASSAY_ERR_CONFIG);
        creds_provider_free(p);
    }
    ct_teardown(&w);
    finish();
}

TEST_CASE(container_malformed_answers)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    static const char *const bad[] = {
        "",
        "not json",
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"FAKESECRET-x\"",
        "{\"AccessKeyId\":\"A\"}",
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":5}",
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"FAKESECRET-x\",\"Expiration\":\"soon\"}",
        "[\"AccessKeyId\",\"A\"]",
        "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"FAKESECRET-x\"} trailing",
        "{\"AccessKeyId\":\"A\\u0000B\",\"SecretAccessKey\":\"FAKESECRET-x\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_set(&w.f, 200, bad[i]);
        struct creds_provider *p = creds_container_new(&w.o);
        CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_PARSE);
        CHECK(!creds_is_set(&c));
        creds_provider_free(p);
    }
    fake_set(&w.f, 500, "{\"code\":\"InternalError\"}");
    struct creds_provider *p = creds_container_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_HTTP_STATUS);
    CHECK(strstr(eb, "500") != NULL);
    creds_provider_free(p);

    /* Expired on arrival is an error, not credentials. */
    char body[1024];
    creds_json(body, sizeof body, "ASIAOLD", "FAKESECRET-old", "FAKESESSION-old", T0_MS - MIN_MS,
               0);
    fake_set(&w.f, 200, body);
    p = creds_container_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_CREDENTIALS_EXPIRED);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

/* ==== IMDS ==== */

struct im_env {
    struct tenv e;
    struct creds_options o;
    struct fake f;
    struct fake_server *srv;
    struct http_transport *t;
};

static void im_setup(struct im_env *w)
{
    tenv_init(&w->e);
    tenv_set(&w->e, "AWS_EC2_METADATA_DISABLED", NULL);
    options_init(&w->o, &w->e);
    fake_init(&w->f);
    w->srv = start(imds_handler, &w->f);
    w->t = transport();
    w->o.transport = w->t;
    tenv_set(&w->e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", fake_server_url(w->srv));
    char body[1024];
    int64_t now = clock_now_ms(NULL);
    creds_json(body, sizeof body, "ASIAIMDS", "FAKESECRET-imds", "FAKESESSION-imds",
               now + 6 * HOUR_MS, 1);
    fake_set(&w->f, 200, body);
}

static void im_teardown(struct im_env *w)
{
    http_transport_free(w->t);
    fake_server_stop(w->srv);
    tenv_clear(&w->e);
}

TEST_CASE(imds_v2_flow)
{
    start_capture();
    struct im_env w;
    struct creds c;
    creds_init(&c);
    im_setup(&w);
    /* A trailing slash on the endpoint is fine. */
    char ep[128];
    snprintf(ep, sizeof ep, "%s/", fake_server_url(w.srv));
    tenv_set(&w.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", ep);
    struct creds_provider *p = creds_imds_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIAIMDS");
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET-imds");
    CHECK_STR_EQ(c.session_token, "FAKESESSION-imds");
    CHECK(c.expiration_ms > 0);
    CHECK_STR_EQ(c.provider, "imds");
    CHECK_INT_EQ(fake_server_hits(w.srv), 3); /* PUT token, GET role, GET credentials */
    CHECK_INT_EQ(atomic_load(&w.f.gets_without_token), 0);
    CHECK_INT_EQ(atomic_load(&w.f.puts_without_ttl), 0);
    creds_clear(&c);
    creds_provider_free(p);
    im_teardown(&w);
    finish();
}

TEST_CASE(imds_fake_refuses_without_token)
{
    /* The fake enforces IMDSv2: check it, so that imds_v2_flow means something. */
    start_capture();
    struct im_env w;
    im_setup(&w);
    struct http_request req;
    struct http_response resp;
    char url[160];
    snprintf(url, sizeof url, "%s/latest/meta-data/iam/security-credentials/",
             fake_server_url(w.srv));
    http_request_init(&req, "GET", url);
    http_response_init(&resp);
    CHECK_INT_EQ(http_transport_perform(w.t, &req, &resp), ASSAY_OK);
    CHECK_INT_EQ(resp.status, 401);
    CHECK_INT_EQ(atomic_load(&w.f.gets_without_token), 1);
    http_request_clear(&req);
    http_response_clear(&resp);
    im_teardown(&w);
    finish();
}

TEST_CASE(imds_disabled)
{
    start_capture();
    struct im_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    im_setup(&w);
    tenv_set(&w.e, "AWS_EC2_METADATA_DISABLED", "TRUE");
    struct creds_provider *p = creds_imds_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "AWS_EC2_METADATA_DISABLED") != NULL);
    CHECK_INT_EQ(fake_server_hits(w.srv), 0);
    creds_provider_free(p);
    /* Anything but "true" leaves it on. */
    tenv_set(&w.e, "AWS_EC2_METADATA_DISABLED", "false");
    p = creds_imds_new(&w.o);
    CHECK_INT_EQ(get(p, &c), ASSAY_OK);
    creds_provider_free(p);
    creds_clear(&c);
    im_teardown(&w);
    finish();
}

TEST_CASE(imds_errors)
{
    start_capture();
    struct im_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    im_setup(&w);

    w.f.put_status = 403;
    struct creds_provider *p = creds_imds_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_HTTP_STATUS);
    CHECK(strstr(eb, "403") != NULL);
    creds_provider_free(p);
    w.f.put_status = 200;

    w.f.role_status = 404;
    p = creds_imds_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(strstr(eb, "no IAM role") != NULL);
    creds_provider_free(p);
    w.f.role_status = 200;

    fake_set(&w.f, 200,
             "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"A\","
             "\"SecretAccessKey\":\"FAKESECRET-x\"}");
    p = creds_imds_new(&w.o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_PARSE);
    CHECK(strstr(eb, "Success") != NULL);
    creds_provider_free(p);

    fake_set(&w.f, 200, "<html>captive portal</html>");
    p = creds_imds_new(&w.o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_PARSE);
    creds_provider_free(p);
    im_teardown(&w);
    finish();
}

TEST_CASE(imds_timeout_falls_through)
{
    start_capture();
    struct im_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    im_setup(&w);
    w.f.delay_ms = 2500;
    /* The default IMDS timeout (1 s) bounds a non-EC2 machine's wait. */
    struct creds_provider *p = creds_imds_new(&w.o);
    int64_t t0 = mono_ms();
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    int64_t took = mono_ms() - t0;
    CHECK(took >= 800 && took < 2000);
    CHECK(strstr(eb, "not reachable") != NULL);
    creds_provider_free(p);

    /* The chain, with nothing else configured, gives up just as quickly. */
    p = creds_chain_new(&w.o);
    t0 = mono_ms();
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    took = mono_ms() - t0;
    CHECK(took < 2000);
    CHECK(strstr(eb, "imds: instance metadata") != NULL);
    creds_provider_free(p);

    /* An unreachable endpoint (nothing listens) fails fast. */
    tenv_set(&w.e, "AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1");
    p = creds_imds_new(&w.o);
    t0 = mono_ms();
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_NO_CREDENTIALS);
    CHECK(mono_ms() - t0 < 1500);
    creds_provider_free(p);
    im_teardown(&w);
    finish();
}

/* ==== the chain ==== */

TEST_CASE(chain_order)
{
    start_capture();
    struct im_env im;
    struct ct_env ct;
    struct creds c;
    creds_init(&c);
    im_setup(&im);
    ct_setup(&ct);
    /* One environment holding every source; removed one by one. */
    struct tenv *e = &im.e;
    struct creds_options o = im.o;
    o.container_base_url = fake_server_url(ct.srv);
    o.clock = &ct.clk;
    tenv_set(e, "AWS_ACCESS_KEY_ID", "AKIDENV");
    tenv_set(e, "AWS_SECRET_ACCESS_KEY", "FAKESECRET-env");
    test_write_file(tmp_path("creds"), CRED_FILE);
    tenv_set(e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    tenv_set(e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");

    static const struct {
        const char *unset; /* removed before the step */
        const char *provider;
        const char *akid;
    } steps[] = {
        {NULL, "env", "AKIDENV"},
        {"AWS_ACCESS_KEY_ID", "profile", "AKIDDEFAULT"},
        {"AWS_SHARED_CREDENTIALS_FILE", "container", "ASIACONTAINER"},
        {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "imds", "ASIAIMDS"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        if (steps[i].unset)
            tenv_set(e, steps[i].unset, NULL);
        if (i == 2)
            tenv_set(e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("none"));
        struct creds_provider *p = creds_chain_new(&o);
        CHECK_STR_EQ(creds_provider_name(p), "chain");
        REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
        CHECK_STR_EQ(c.provider, steps[i].provider);
        CHECK_STR_EQ(c.access_key_id, steps[i].akid);
        creds_provider_free(p);
    }
    CHECK(captured_has("\"event\":\"creds.resolved\",\"provider\":\"profile\",\"via\":\"chain\""));
    CHECK(captured_has("\"provider\":\"imds\",\"via\":\"chain\""));
    creds_clear(&c);
    ct_teardown(&ct);
    im_teardown(&im);
    finish();
}

TEST_CASE(chain_web_identity_before_profile)
{
    start_capture();
    struct wi_env w;
    struct creds c;
    creds_init(&c);
    wi_setup(&w);
    sts_ok(&w.f, "ASIAWEB", T0_MS + HOUR_MS);
    test_write_file(tmp_path("creds"), CRED_FILE);
    tenv_set(&w.e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    struct creds_provider *p = creds_chain_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.provider, "web_identity");
    creds_provider_free(p);

    /* A failing configured provider is logged and the chain goes on. */
    fake_set(&w.f, 403,
             "<ErrorResponse><Error><Code>AccessDenied</Code>"
             "<Message>no</Message></Error></ErrorResponse>");
    p = creds_chain_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.provider, "profile");
    CHECK(captured_has("creds.provider_failed"));
    creds_clear(&c);
    creds_provider_free(p);
    wi_teardown(&w);
    finish();
}

TEST_CASE(chain_none_names_what_was_tried)
{
    start_capture();
    struct tenv e;
    struct creds_options o;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    tenv_init(&e);
    options_init(&o, &e);
    creds_init(&c);
    struct creds_provider *p = creds_chain_new(&o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    static const char *const names[] = {"env:", "web_identity:", "profile:", "container:", "imds:"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strstr(eb, names[i]))
            fprintf(stderr, "errbuf lacks %s: %s\n", names[i], eb);
        CHECK(strstr(eb, names[i]) != NULL);
    }
    CHECK(!creds_is_set(&c));
    CHECK(eb[strlen(eb) - 1] == ')'); /* nothing cut off */
    creds_provider_free(p);

    /* Long reasons (deep paths) are shortened, every provider still named. */
    char deep[600];
    snprintf(deep, sizeof deep, "%s/a-rather-long-directory-name/another-long-one/and-more/creds",
             test_tmpdir());
    tenv_set(&e, "AWS_SHARED_CREDENTIALS_FILE", deep);
    tenv_set(&e, "AWS_CONFIG_FILE", deep);
    tenv_set(&e, "AWS_WEB_IDENTITY_TOKEN_FILE", deep);
    tenv_set(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://somewhere.example.com/x/y/z");
    p = creds_chain_new(&o);
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_NO_CREDENTIALS);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK(strstr(eb, names[i]) != NULL);
    CHECK(eb[strlen(eb) - 1] == ')');
    creds_provider_free(p);
    tenv_clear(&e);
    finish();
}

/* ==== expiry and refresh ==== */

TEST_CASE(refresh_inside_margin_not_before)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    w.o.refresh_margin_ms = 10 * MIN_MS;
    struct creds_provider *p = creds_container_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 1);

    /* One second before the margin: cached. */
    w.now = T0_MS + HOUR_MS - 10 * MIN_MS - 1000;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 1);
    CHECK_STR_EQ(c.access_key_id, "ASIACONTAINER");

    /* Inside the margin: fetched again, well before the expiry second. */
    char body[1024];
    creds_json(body, sizeof body, "ASIANEXT", "FAKESECRET-next", "FAKESESSION-next",
               T0_MS + 2 * HOUR_MS, 0);
    fake_set(&w.f, 200, body);
    w.now = T0_MS + HOUR_MS - 10 * MIN_MS + 1000;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    CHECK_STR_EQ(c.access_key_id, "ASIANEXT");
    CHECK_INT_EQ(c.expiration_ms, T0_MS + 2 * HOUR_MS);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    CHECK_INT_EQ(creds_provider_fetches(p), 2);
    creds_clear(&c);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

TEST_CASE(refresh_default_margin_is_five_minutes)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    struct creds_provider *p = creds_container_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    w.now = T0_MS + HOUR_MS - 5 * MIN_MS - 1;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 1);
    w.now = T0_MS + HOUR_MS - 5 * MIN_MS;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    creds_clear(&c);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

struct flight {
    struct creds_provider *p;
    atomic_int ok;
    atomic_int old; /* callers that got ASIACONTAINER */
    atomic_int go;
};

static void *flight_thread(void *arg)
{
    struct flight *fl = arg;
    while (!atomic_load(&fl->go))
        ;
    struct creds c;
    creds_init(&c);
    char eb[ASSAY_ERRBUF_SIZE] = "";
    if (creds_provider_get(fl->p, &c, eb) == ASSAY_OK && creds_is_set(&c)) {
        atomic_fetch_add(&fl->ok, 1);
        if (strcmp(c.access_key_id, "ASIACONTAINER") == 0)
            atomic_fetch_add(&fl->old, 1);
    } else
        note_errbuf(eb);
    creds_clear(&c);
    return NULL;
}

static void run_flight(struct flight *fl, int n)
{
    pthread_t th[16];
    atomic_store(&fl->go, 0);
    atomic_store(&fl->ok, 0);
    atomic_store(&fl->old, 0);
    for (int i = 0; i < n; i++)
        REQUIRE(pthread_create(&th[i], NULL, flight_thread, fl) == 0);
    atomic_store(&fl->go, 1);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
}

TEST_CASE(single_flight)
{
    start_capture();
    struct ct_env w;
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    w.f.delay_ms = 400;
    struct flight fl = {.p = creds_container_new(&w.o)};

    /* Cold start: 12 threads, one fetch. */
    run_flight(&fl, 12);
    CHECK_INT_EQ(atomic_load(&fl.ok), 12);
    CHECK_INT_EQ(fake_server_hits(w.srv), 1);
    CHECK_INT_EQ(creds_provider_fetches(fl.p), 1);

    /* A refresh inside the margin: again one fetch for all; callers that
     * come while it runs get the old, still valid, credentials at once. */
    w.now = T0_MS + HOUR_MS - 2 * MIN_MS;
    char body[1024];
    creds_json(body, sizeof body, "ASIANEXT", "FAKESECRET-next", "FAKESESSION-next",
               T0_MS + 2 * HOUR_MS, 0);
    fake_set(&w.f, 200, body);
    int64_t t0 = mono_ms();
    run_flight(&fl, 12);
    CHECK_INT_EQ(atomic_load(&fl.ok), 12);
    CHECK(atomic_load(&fl.old) >= 1);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    CHECK_INT_EQ(creds_provider_fetches(fl.p), 2);
    CHECK(mono_ms() - t0 >= 400); /* the one fetch did run */
    struct creds c;
    creds_init(&c);
    REQUIRE_INT_EQ(get(fl.p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIANEXT");
    creds_clear(&c);

    /* A failing refresh after expiry: one fetch, every caller gets the error. */
    w.now = T0_MS + 3 * HOUR_MS;
    fake_set(&w.f, 500, "down");
    run_flight(&fl, 12);
    CHECK_INT_EQ(atomic_load(&fl.ok), 0);
    CHECK(fake_server_hits(w.srv) <= 4);
    creds_provider_free(fl.p);
    ct_teardown(&w);
    finish();
}

TEST_CASE(failing_refresh_keeps_valid_credentials)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    w.o.refresh_retry_ms = 30000;
    struct creds_provider *p = creds_container_new(&w.o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);

    /* Inside the margin the endpoint fails: the old credentials stay. */
    fake_set(&w.f, 500, "{\"message\":\"down\"}");
    w.now = T0_MS + HOUR_MS - 4 * MIN_MS;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIACONTAINER");
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    CHECK(captured_has("\"event\":\"creds.refresh_failed\""));
    CHECK(captured_has("\"kept_old\":true"));
    CHECK(captured_has("\"valid_until\":\""));

    /* Within the retry interval the endpoint is not asked again. */
    w.now += 10000;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    /* After it, it is. */
    w.now += 30000;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 3);

    /* Past the expiry a failing refresh is an error. */
    w.now = T0_MS + HOUR_MS;
    CHECK_INT_EQ(get_eb(p, &c, eb), ASSAY_ERR_CREDENTIALS_EXPIRED);
    CHECK(!creds_is_set(&c));
    CHECK(strstr(eb, "expired") != NULL);
    CHECK(strstr(eb, "500") != NULL);
    CHECK(captured_has("\"kept_old\":false"));
    /* And stays one until a refresh works. */
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_HTTP_STATUS);
    char body[1024];
    creds_json(body, sizeof body, "ASIABACK", "FAKESECRET-back", "FAKESESSION-back",
               T0_MS + 3 * HOUR_MS, 0);
    fake_set(&w.f, 200, body);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "ASIABACK");
    creds_clear(&c);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

TEST_CASE(short_lived_credentials_not_refetched_every_call)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    char body[1024];
    /* Valid for 2 minutes: already inside the 5-minute margin. */
    creds_json(body, sizeof body, "ASIASHORT", "FAKESECRET-short", "FAKESESSION-short",
               T0_MS + 2 * MIN_MS, 0);
    fake_set(&w.f, 200, body);
    struct creds_provider *p = creds_container_new(&w.o);
    for (int i = 0; i < 5; i++)
        REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 1);
    w.now += 11000; /* past the default 10 s retry interval */
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_INT_EQ(fake_server_hits(w.srv), 2);
    creds_clear(&c);
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

/* ==== parsers ==== */

TEST_CASE(json_parser)
{
    start_capture();
    struct creds c;
    char eb[ASSAY_ERRBUF_SIZE];
    creds_init(&c);
    const char *ok =
        " { \"Unknown\" : [ {\"x\": \"}\"}, -1.5e3, true, null ],"
        "\"AccessKeyId\":\"A\\u00e9\\/\\\"\",\"SecretAccessKey\":\"FAKESECRET\\ud83d\\ude00\","
        "\"Token\":\"\",\"AccessKeyId\":\"AKID2\"} ";
    REQUIRE_INT_EQ(creds_parse_json(ok, strlen(ok), 0, &c, eb), ASSAY_OK);
    CHECK_STR_EQ(c.access_key_id, "AKID2"); /* the last duplicate wins */
    CHECK_STR_EQ(c.secret_access_key, "FAKESECRET\xf0\x9f\x98\x80");
    CHECK(c.session_token == NULL);
    CHECK_INT_EQ(c.expiration_ms, 0);
    creds_clear(&c);

    const char *lone = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"FAKESECRET\\ud83d\"}";
    CHECK_INT_EQ(creds_parse_json(lone, strlen(lone), 0, &c, eb), ASSAY_ERR_PARSE);
    note_errbuf(eb);
    char deep[200];
    memset(deep, '[', sizeof deep);
    memcpy(deep, "{\"x\":", 5);
    CHECK_INT_EQ(creds_parse_json(deep, sizeof deep, 0, &c, eb), ASSAY_ERR_PARSE);
    note_errbuf(eb);
    creds_clear(&c);
    finish();
}

TEST_CASE(xml_extractor)
{
    const char *in;
    size_t n;
    const char *doc = "<a><bx>no</bx><b attr=\"1\">yes &amp; &#65;&#x42;</b><c/><c>z</c></a>";
    REQUIRE(creds_xml_element(doc, strlen(doc), "b", &in, &n) == 0);
    char *t = creds_xml_text(in, n);
    CHECK_STR_EQ(t, "yes & AB");
    free(t);
    REQUIRE(creds_xml_element(doc, strlen(doc), "c", &in, &n) == 0);
    CHECK_INT_EQ(n, 1);
    CHECK(creds_xml_element(doc, strlen(doc), "d", &in, &n) != 0);
    CHECK(creds_xml_element("<b>open", 7, "b", &in, &n) != 0);
    CHECK(creds_xml_text("a<b", 3) == NULL);
    CHECK(creds_xml_text("&bogus;", 7) == NULL);
    CHECK(creds_xml_text("&#0;", 4) == NULL);
    CHECK(creds_xml_text("&#xD800;", 8) == NULL);
    CHECK(creds_xml_text("&#1114112;", 10) == NULL);
}

TEST_CASE(container_timeout)
{
    start_capture();
    struct ct_env w;
    struct creds c;
    creds_init(&c);
    ct_setup(&w);
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    w.f.delay_ms = 1500;
    w.o.http_timeout_ms = 300;
    struct creds_provider *p = creds_container_new(&w.o);
    int64_t t0 = mono_ms();
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_TIMEOUT);
    CHECK(mono_ms() - t0 < 1200);
    CHECK(!creds_is_set(&c));
    creds_provider_free(p);
    ct_teardown(&w);
    finish();
}

/* Every failure path at once, at debug level: logs and errors carry no secret. */
TEST_CASE(secrets_never_logged)
{
    start_capture();
    struct wi_env w;
    struct ct_env ct;
    struct creds c;
    creds_init(&c);
    wi_setup(&w);
    ct_setup(&ct);
    struct creds_options o = w.o;
    o.container_base_url = fake_server_url(ct.srv);

    /* env: a secret without its key id */
    tenv_set(&w.e, "AWS_SECRET_ACCESS_KEY", "FAKESECRET-env-alone");
    /* web identity: STS refuses */
    fake_set(&w.f, 400,
             "<ErrorResponse><Error><Code>InvalidIdentityToken</Code>"
             "<Message>rejected</Message></Error></ErrorResponse>");
    /* profile: malformed lines that hold secrets, and an incomplete profile */
    test_write_file(tmp_path("creds"), "FAKESECRET-garbage-line\n[default]\n"
                                       "FAKESECRET-no-equals\n"
                                       "aws_secret_access_key = FAKESECRET-profile\n");
    tenv_set(&w.e, "AWS_SHARED_CREDENTIALS_FILE", tmp_path("creds"));
    /* container: the endpoint refuses the token */
    snprintf(ct.f.want_auth, sizeof ct.f.want_auth, "something-else");
    tenv_set(&w.e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/creds");
    tenv_set(&w.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", "FAKEAUTH-refused");

    struct creds_provider *p = creds_chain_new(&o);
    CHECK_INT_EQ(get(p, &c), ASSAY_ERR_NO_CREDENTIALS);
    creds_provider_free(p);

    /* Then it all works, then the refresh fails, then it expires. */
    tenv_set(&w.e, "AWS_CONTAINER_AUTHORIZATION_TOKEN", NULL);
    ct.f.want_auth[0] = '\0';
    p = creds_chain_new(&o);
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    CHECK_STR_EQ(c.provider, "container");
    fake_set(&ct.f, 200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"FAKESECRET-bad\",");
    w.now = T0_MS + HOUR_MS - MIN_MS;
    REQUIRE_INT_EQ(get(p, &c), ASSAY_OK);
    w.now = T0_MS + HOUR_MS + 1;
    CHECK(get(p, &c) != ASSAY_OK);
    creds_provider_free(p);

    CHECK(captured_has("creds.refresh_failed"));
    CHECK(captured_has("profile.malformed_lines"));
    CHECK(captured_has("creds.provider_failed"));
    creds_clear(&c);
    ct_teardown(&ct);
    wi_teardown(&w);
    finish();
}
