/*
 * tests/unit/aws/test_sigv4.c: aws/sigv4 checked stage by stage (canonical
 * request, string to sign, signature, Authorization header, presigned query)
 * against the 38 cases of the AWS SigV4 test suite, carried in the repo as
 * tests/data/sigv4/<case>.case; a sweep over the original suite folder when
 * $ASSAY_REFERENCE_DIR has it; and the signing-key cache, presigning, S3
 * paths, unsignable headers, argument errors and threads.
 */
#include "tests/unit/test.h"

#include "aws/sigv4.h"
#include "common/alloc.h"
#include "common/buf.h"

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

#define SUITE_AKID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_TIME 1440938160 /* 2015-08-30T12:36:00Z */

/* ---- a suite case: context, raw request, expected outputs ----------------- */

#define N_OUTPUTS 8
static const char *const output_names[N_OUTPUTS] = {
    "header-canonical-request", "header-string-to-sign",   "header-signature",
    "header-signed-request",    "query-canonical-request", "query-string-to-sign",
    "query-signature",          "query-signed-request",
};

struct suite_case {
    char *name;
    bool normalize, sign_body, omit_session_token;
    char *token; /* NULL without */
    char *request;
    char *expected[N_OUTPUTS]; /* NULL where the case lacks the file */
};

static void case_clear(struct suite_case *c)
{
    free(c->name);
    free(c->token);
    free(c->request);
    for (int i = 0; i < N_OUTPUTS; i++)
        free(c->expected[i]);
    memset(c, 0, sizeof *c);
}

static bool parse_bool(const char *ctx, const char *key)
{
    const char *p = strstr(ctx, key);
    return p && strncmp(p + strlen(key), " true", 5) == 0;
}

/* Reads tests/data/sigv4/<name>.case: "=== section" lines, each body ending before "\n===". */
static bool case_load_repo(const char *name, struct suite_case *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/sigv4/%s.case", test_source_dir(), name);
    char *text = test_read_file(path, NULL);
    if (!text)
        return false;
    memset(c, 0, sizeof *c);
    c->name = xstrdup(name);
    char *p = strstr(text, "=== ");
    while (p) {
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        char *sect = xstrndup(p + 4, (size_t)(nl - p - 4));
        char *body = nl + 1;
        char *next = strstr(body, "\n=== ");
        char *end = next ? next : body + strlen(body) - 1; /* the file ends with "\n" */
        char *val = xstrndup(body, (size_t)(end - body));
        if (strcmp(sect, "context") == 0) {
            c->normalize = parse_bool(val, "normalize");
            c->sign_body = parse_bool(val, "sign_body");
            c->omit_session_token = parse_bool(val, "omit_session_token");
            char *t = strstr(val, "\ntoken ");
            if (t) {
                char *e = strchr(t + 1, '\n');
                c->token = xstrndup(t + 7, e ? (size_t)(e - t - 7) : strlen(t + 7));
            }
            free(val);
        } else if (strcmp(sect, "request") == 0) {
            c->request = val;
        } else {
            int i;
            for (i = 0; i < N_OUTPUTS; i++)
                if (strcmp(sect, output_names[i]) == 0)
                    break;
            if (i < N_OUTPUTS)
                c->expected[i] = val;
            else
                free(val);
        }
        free(sect);
        p = next ? next + 1 : NULL;
    }
    free(text);
    return c->request != NULL;
}

/* Pulls "key": true/false or "key": "string" out of the suite's small context.json. */
static bool json_bool(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return false;
    p = strchr(p + strlen(pat), ':');
    while (p && (*p == ':' || *p == ' '))
        p++;
    return p && strncmp(p, "true", 4) == 0;
}

static char *json_string(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), '"');
    if (!p)
        return NULL;
    const char *e = strchr(p + 1, '"');
    return e ? xstrndup(p + 1, (size_t)(e - p - 1)) : NULL;
}

/* Reads one case folder of the original suite. */
static bool case_load_dir(const char *dir, const char *name, struct suite_case *c)
{
    char path[1024];
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/%s/context.json", dir, name);
    char *ctx = test_read_file(path, NULL);
    if (!ctx)
        return false;
    c->name = xstrdup(name);
    c->normalize = json_bool(ctx, "normalize");
    c->sign_body = json_bool(ctx, "sign_body");
    c->omit_session_token = json_bool(ctx, "omit_session_token");
    c->token = json_string(ctx, "token");
    free(ctx);
    snprintf(path, sizeof path, "%s/%s/request.txt", dir, name);
    c->request = test_read_file(path, NULL);
    for (int i = 0; i < N_OUTPUTS; i++) {
        snprintf(path, sizeof path, "%s/%s/%s.txt", dir, name, output_names[i]);
        c->expected[i] = test_read_file(path, NULL);
    }
    return c->request != NULL;
}

/* ---- the raw request of a case -------------------------------------------- */

struct raw_request {
    char *method, *path, *query;
    char *header_block; /* the header lines exactly as written */
    struct sigv4_header headers[16];
    size_t n_headers;
    char *body;
    size_t body_len;
    char *store; /* owns names and values */
};

static void raw_request_clear(struct raw_request *r)
{
    free(r->method);
    free(r->path);
    free(r->query);
    free(r->header_block);
    free(r->body);
    for (size_t i = 0; i < r->n_headers; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    memset(r, 0, sizeof *r);
}

/*
 * "METHOD target HTTP/1.1", header lines ("Name:value", a line that starts
 * with white space continues the previous value after a '\n'), a blank line,
 * the body. The target may hold spaces; the version is after the last one.
 */
static bool raw_request_parse(const char *text, struct raw_request *r)
{
    memset(r, 0, sizeof *r);
    const char *eol = strchr(text, '\n');
    if (!eol)
        eol = text + strlen(text);
    const char *sp1 = memchr(text, ' ', (size_t)(eol - text));
    const char *sp2 = eol;
    while (sp2 > text && sp2[-1] != ' ')
        sp2--;
    if (!sp1 || sp2 - 1 <= sp1)
        return false;
    r->method = xstrndup(text, (size_t)(sp1 - text));
    const char *target = sp1 + 1, *target_end = sp2 - 1;
    const char *q = memchr(target, '?', (size_t)(target_end - target));
    r->path = xstrndup(target, (size_t)((q ? q : target_end) - target));
    r->query = q ? xstrndup(q + 1, (size_t)(target_end - q - 1)) : xstrdup("");

    const char *p = *eol ? eol + 1 : eol;
    const char *block = p;
    while (*p && *p != '\n') {
        const char *le = strchr(p, '\n');
        if (!le)
            le = p + strlen(p);
        if ((*p == ' ' || *p == '\t') && r->n_headers > 0) {
            struct sigv4_header *h = &r->headers[r->n_headers - 1];
            struct buf v = BUF_INIT;
            buf_append_str(&v, h->value);
            buf_append_char(&v, '\n');
            buf_append(&v, p, (size_t)(le - p));
            free((char *)h->value);
            h->value = buf_detach(&v, NULL);
        } else {
            const char *colon = memchr(p, ':', (size_t)(le - p));
            if (!colon || r->n_headers == sizeof r->headers / sizeof r->headers[0])
                return false;
            r->headers[r->n_headers].name = xstrndup(p, (size_t)(colon - p));
            r->headers[r->n_headers].value = xstrndup(colon + 1, (size_t)(le - colon - 1));
            r->n_headers++;
        }
        p = *le ? le + 1 : le;
    }
    r->header_block = xstrndup(block, (size_t)(p - block));
    if (*p == '\n')
        p++;
    r->body_len = strlen(p);
    r->body = xstrdup(p);
    return true;
}

/* ---- running a case -------------------------------------------------------- */

static void case_params(const struct suite_case *c, struct sigv4_params *params)
{
    memset(params, 0, sizeof *params);
    params->creds.access_key_id = SUITE_AKID;
    params->creds.secret_access_key = SUITE_SECRET;
    params->creds.session_token = c->token;
    params->region = "us-east-1";
    params->service = "service";
    params->time_s = SUITE_TIME;
    params->no_normalize_path = !c->normalize;
    params->sign_body = c->sign_body;
    params->omit_session_token = c->omit_session_token;
    params->expires_s = 3600;
}

static int mismatches;

static void expect_text(const struct suite_case *c, int which, const char *got)
{
    const char *want = c->expected[which];
    if (!want)
        return;
    if (!got || strcmp(got, want) != 0) {
        fprintf(stderr, "%s: %s differs\n--- got:\n%s\n--- want:\n%s\n", c->name,
                output_names[which], got ? got : "(null)", want);
        mismatches++;
    }
}

/* Checks every stage of one case in both placements; returns the mismatches. */
static int case_check(const struct suite_case *c)
{
    mismatches = 0;
    struct raw_request r;
    if (!raw_request_parse(c->request, &r)) {
        fprintf(stderr, "%s: request.txt not parsed\n", c->name);
        raw_request_clear(&r);
        return 1;
    }
    struct sigv4_params params;
    case_params(c, &params);
    struct sigv4_request req = {
        .method = r.method,
        .path = r.path,
        .query = r.query,
        .headers = r.headers,
        .header_count = r.n_headers,
        .body = r.body,
        .body_len = r.body_len,
    };
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct buf cr = BUF_INIT, sts = BUF_INIT, text = BUF_INIT;
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    struct sigv4_key_cache *cache = sigv4_key_cache_new();

    for (int placement = 0; placement < 2; placement++) {
        int base = placement == SIGV4_IN_HEADER ? 0 : 4;
        buf_reset(&cr);
        buf_reset(&sts);
        if (sigv4_canonical_request_build(&req, &params, (enum sigv4_placement)placement, &cr,
                                          errbuf) != ASSAY_OK) {
            fprintf(stderr, "%s: canonical request failed: %s\n", c->name, errbuf);
            mismatches++;
            continue;
        }
        expect_text(c, base + 0, buf_cstr(&cr));
        CHECK_INT_EQ(sigv4_string_to_sign_build(cr.data, cr.len, &params, &sts, errbuf), ASSAY_OK);
        expect_text(c, base + 1, buf_cstr(&sts));
        uint8_t key[32];
        char sig[65];
        sigv4_signing_key_derive(SUITE_SECRET, "20150830", "us-east-1", "service", key);
        sigv4_signature_compute(key, sts.data, sts.len, sig);
        expect_text(c, base + 2, sig);

        /* The one-call signers must agree with the stages and give the signed request. */
        enum assay_err err = placement == SIGV4_IN_HEADER
                                 ? sigv4_request_sign(cache, &req, &params, &out, errbuf)
                                 : sigv4_request_presign(cache, &req, &params, &out, errbuf);
        if (err != ASSAY_OK) {
            fprintf(stderr, "%s: signing failed: %s\n", c->name, errbuf);
            mismatches++;
            continue;
        }
        expect_text(c, base + 2, out.signature);
        buf_reset(&text);
        if (placement == SIGV4_IN_HEADER) {
            /* The suite's layout: the request's headers, then the ones signing adds. */
            buf_appendf(&text, "%s %s%s%s HTTP/1.1\n%s", r.method, r.path, r.query[0] ? "?" : "",
                        r.query, r.header_block);
            if (c->token)
                buf_appendf(&text, "X-Amz-Security-Token:%s\n", c->token);
            buf_appendf(&text, "X-Amz-Date:%s\n", out.amz_date);
            if (c->sign_body)
                buf_appendf(&text, "x-amz-content-sha256:%s\n", out.content_sha256);
            buf_appendf(&text, "Authorization:%s\n\n%s", buf_cstr(&out.authorization), r.body);
            /* And the headers to add say the same. */
            CHECK_STR_EQ(out.add[out.add_count - 1].name, "Authorization");
            CHECK_STR_EQ(out.add[out.add_count - 1].value, buf_cstr(&out.authorization));
            CHECK_INT_EQ(out.add_count, 2 + (c->token != NULL) + c->sign_body);
        } else {
            buf_appendf(&text, "%s %s?%s HTTP/1.1\n%s\n%s", r.method, r.path, buf_cstr(&out.query),
                        r.header_block, r.body);
            CHECK_INT_EQ(out.add_count, 0);
        }
        expect_text(c, base + 3, buf_cstr(&text));
    }
    sigv4_key_cache_free(cache);
    sigv4_signed_clear(&out);
    buf_clear(&cr);
    buf_clear(&sts);
    buf_clear(&text);
    raw_request_clear(&r);
    return mismatches;
}

static void run_repo_case(const char *name)
{
    struct suite_case c;
    if (!case_load_repo(name, &c)) {
        case_clear(&c);
        fprintf(stderr, "cannot load tests/data/sigv4/%s.case\n", name);
        REQUIRE(0);
    }
    for (int i = 0; i < N_OUTPUTS; i++)
        CHECK(c.expected[i] != NULL);
    CHECK_INT_EQ(case_check(&c), 0);
    case_clear(&c);
}

/* One ctest entry per suite case. */
/* clang-format off */
TEST_CASE(suite_get_header_key_duplicate) { run_repo_case("get-header-key-duplicate"); }
TEST_CASE(suite_get_header_value_multiline) { run_repo_case("get-header-value-multiline"); }
TEST_CASE(suite_get_header_value_order) { run_repo_case("get-header-value-order"); }
TEST_CASE(suite_get_header_value_trim) { run_repo_case("get-header-value-trim"); }
TEST_CASE(suite_get_relative_normalized) { run_repo_case("get-relative-normalized"); }
TEST_CASE(suite_get_relative_relative_normalized) { run_repo_case("get-relative-relative-normalized"); }
TEST_CASE(suite_get_relative_relative_unnormalized) { run_repo_case("get-relative-relative-unnormalized"); }
TEST_CASE(suite_get_relative_unnormalized) { run_repo_case("get-relative-unnormalized"); }
TEST_CASE(suite_get_slash_dot_slash_normalized) { run_repo_case("get-slash-dot-slash-normalized"); }
TEST_CASE(suite_get_slash_dot_slash_unnormalized) { run_repo_case("get-slash-dot-slash-unnormalized"); }
TEST_CASE(suite_get_slash_normalized) { run_repo_case("get-slash-normalized"); }
TEST_CASE(suite_get_slash_pointless_dot_normalized) { run_repo_case("get-slash-pointless-dot-normalized"); }
TEST_CASE(suite_get_slash_pointless_dot_unnormalized) { run_repo_case("get-slash-pointless-dot-unnormalized"); }
TEST_CASE(suite_get_slash_unnormalized) { run_repo_case("get-slash-unnormalized"); }
TEST_CASE(suite_get_slashes_normalized) { run_repo_case("get-slashes-normalized"); }
TEST_CASE(suite_get_slashes_unnormalized) { run_repo_case("get-slashes-unnormalized"); }
TEST_CASE(suite_get_space_normalized) { run_repo_case("get-space-normalized"); }
TEST_CASE(suite_get_space_unnormalized) { run_repo_case("get-space-unnormalized"); }
TEST_CASE(suite_get_unreserved) { run_repo_case("get-unreserved"); }
TEST_CASE(suite_get_utf8) { run_repo_case("get-utf8"); }
TEST_CASE(suite_get_vanilla) { run_repo_case("get-vanilla"); }
TEST_CASE(suite_get_vanilla_empty_query_key) { run_repo_case("get-vanilla-empty-query-key"); }
TEST_CASE(suite_get_vanilla_query) { run_repo_case("get-vanilla-query"); }
TEST_CASE(suite_get_vanilla_query_order_encoded) { run_repo_case("get-vanilla-query-order-encoded"); }
TEST_CASE(suite_get_vanilla_query_order_key_case) { run_repo_case("get-vanilla-query-order-key-case"); }
TEST_CASE(suite_get_vanilla_query_unreserved) { run_repo_case("get-vanilla-query-unreserved"); }
TEST_CASE(suite_get_vanilla_utf8_query) { run_repo_case("get-vanilla-utf8-query"); }
TEST_CASE(suite_get_vanilla_with_session_token) { run_repo_case("get-vanilla-with-session-token"); }
TEST_CASE(suite_post_header_key_case) { run_repo_case("post-header-key-case"); }
TEST_CASE(suite_post_header_key_sort) { run_repo_case("post-header-key-sort"); }
TEST_CASE(suite_post_header_value_case) { run_repo_case("post-header-value-case"); }
TEST_CASE(suite_post_sts_header_after) { run_repo_case("post-sts-header-after"); }
TEST_CASE(suite_post_sts_header_before) { run_repo_case("post-sts-header-before"); }
TEST_CASE(suite_post_vanilla) { run_repo_case("post-vanilla"); }
TEST_CASE(suite_post_vanilla_empty_query_value) { run_repo_case("post-vanilla-empty-query-value"); }
TEST_CASE(suite_post_vanilla_query) { run_repo_case("post-vanilla-query"); }
TEST_CASE(suite_post_x_www_form_urlencoded) { run_repo_case("post-x-www-form-urlencoded"); }
TEST_CASE(suite_post_x_www_form_urlencoded_parameters) { run_repo_case("post-x-www-form-urlencoded-parameters"); }
/* clang-format on */

/* Every case file in the repo is one of the entries above (none forgotten). */
TEST_CASE(suite_data_complete)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/sigv4", test_source_dir());
    DIR *d = opendir(path);
    REQUIRE(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".case"))
            n++;
    closedir(d);
    CHECK_INT_EQ(n, 38);
}

/* The original suite, when ../shared/reference is present: every case, every file. */
TEST_CASE(reference_sweep)
{
    const char *ref = getenv("ASSAY_REFERENCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/sigv4-test-suite", ref ? ref : "");
    struct stat st;
    if (!ref || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        TEST_SKIP("no sigv4-test-suite under $ASSAY_REFERENCE_DIR");
    DIR *d = opendir(dir);
    REQUIRE(d != NULL);
    int cases = 0, failed = 0, files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        struct suite_case c;
        if (!case_load_dir(dir, e->d_name, &c)) {
            case_clear(&c);
            continue;
        }
        for (int i = 0; i < N_OUTPUTS; i++)
            files += c.expected[i] != NULL;
        cases++;
        if (case_check(&c) != 0)
            failed++;
        case_clear(&c);
    }
    closedir(d);
    printf("%d cases, %d expected files, %d cases failed\n", cases, files, failed);
    CHECK(cases >= 38);
    CHECK_INT_EQ(files, cases * N_OUTPUTS);
    CHECK_INT_EQ(failed, 0);
}

/* ---- beyond the suite ----------------------------------------------------- */

static void hex32(const uint8_t key[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", key[i]);
}

/* The derivation example of the AWS documentation (IAM, 2012-02-15). */
TEST_CASE(signing_key_derive)
{
    uint8_t key[32];
    char hex[65];
    sigv4_signing_key_derive(SUITE_SECRET, "20120215", "us-east-1", "iam", key);
    hex32(key, hex);
    CHECK_STR_EQ(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST_CASE(key_cache)
{
    struct sigv4_key_cache *cache = sigv4_key_cache_new();
    struct sigv4_credentials creds = {SUITE_AKID, SUITE_SECRET, NULL};
    uint8_t k1[32], k2[32], k3[32], want[32];
    CHECK(!sigv4_key_cache_get(cache, &creds, "20150830", "us-east-1", "service", k1));
    CHECK(sigv4_key_cache_get(cache, &creds, "20150830", "us-east-1", "service", k2));
    CHECK(memcmp(k1, k2, 32) == 0);
    sigv4_signing_key_derive(SUITE_SECRET, "20150830", "us-east-1", "service", want);
    CHECK(memcmp(k1, want, 32) == 0);

    /* Each of day, region, service and secret makes another key. */
    CHECK(!sigv4_key_cache_get(cache, &creds, "20150831", "us-east-1", "service", k3));
    CHECK(memcmp(k3, k1, 32) != 0);
    CHECK(!sigv4_key_cache_get(cache, &creds, "20150830", "eu-west-1", "service", k3));
    CHECK(memcmp(k3, k1, 32) != 0);
    CHECK(!sigv4_key_cache_get(cache, &creds, "20150830", "us-east-1", "bedrock", k3));
    CHECK(memcmp(k3, k1, 32) != 0);
    struct sigv4_credentials other = {SUITE_AKID, "another-secret", NULL};
    CHECK(!sigv4_key_cache_get(cache, &other, "20150830", "us-east-1", "service", k3));
    CHECK(memcmp(k3, k1, 32) != 0);
    /* The first is still cached among them. */
    CHECK(sigv4_key_cache_get(cache, &creds, "20150830", "us-east-1", "service", k2));
    CHECK(memcmp(k2, k1, 32) == 0);

    /* More combinations than slots: evicts, and still answers correctly. */
    char region[16];
    for (int i = 0; i < 20; i++) {
        snprintf(region, sizeof region, "r-%d", i);
        sigv4_key_cache_get(cache, &creds, "20150830", region, "service", k3);
        sigv4_signing_key_derive(SUITE_SECRET, "20150830", region, "service", want);
        CHECK(memcmp(k3, want, 32) == 0);
    }
    /* Names too long for a slot are derived every time, never truncated. */
    char long_region[100];
    memset(long_region, 'r', sizeof long_region - 1);
    long_region[sizeof long_region - 1] = '\0';
    CHECK(!sigv4_key_cache_get(cache, &creds, "20150830", long_region, "service", k3));
    CHECK(!sigv4_key_cache_get(cache, &creds, "20150830", long_region, "service", k3));
    sigv4_signing_key_derive(SUITE_SECRET, "20150830", long_region, "service", want);
    CHECK(memcmp(k3, want, 32) == 0);
    /* A NULL cache derives every time. */
    CHECK(!sigv4_key_cache_get(NULL, &creds, "20150830", "us-east-1", "service", k3));
    CHECK(memcmp(k3, k1, 32) == 0);
    sigv4_key_cache_free(cache);
    sigv4_key_cache_free(NULL);
}

#define CONVERSE_PATH "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"

static void converse_request(struct sigv4_request *req, struct sigv4_header headers[3],
                             const char *body)
{
    headers[0] = (struct sigv4_header){"Host", "bedrock-runtime.us-east-1.amazonaws.com"};
    headers[1] = (struct sigv4_header){"Content-Type", "application/json"};
    headers[2] = (struct sigv4_header){"User-Agent", "assay/0.1"};
    *req = (struct sigv4_request){.method = "POST",
                                  .path = CONVERSE_PATH,
                                  .headers = headers,
                                  .header_count = 3,
                                  .body = body,
                                  .body_len = strlen(body)};
}

static void converse_params(struct sigv4_params *p, const char *token)
{
    *p = (struct sigv4_params){.creds = {"AKIDEXAMPLE", SUITE_SECRET, token},
                               .region = "us-east-1",
                               .service = "bedrock",
                               .time_s = SUITE_TIME,
                               .sign_body = true};
}

/* A Converse call: the model id's ':' encoded twice, user-agent unsigned, body hashed. */
TEST_CASE(converse_shape)
{
    struct sigv4_header headers[3];
    struct sigv4_request req;
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi\"}]}]}";
    converse_request(&req, headers, body);
    struct sigv4_params params;
    converse_params(&params, "session-token");
    struct buf cr = BUF_INIT;
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &cr, errbuf),
                   ASSAY_OK);
    const char *want_prefix = "POST\n/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse\n\n"
                              "content-type:application/json\n"
                              "host:bedrock-runtime.us-east-1.amazonaws.com\n"
                              "x-amz-content-sha256:";
    CHECK(strncmp(cr.data, want_prefix, strlen(want_prefix)) == 0);
    CHECK(strstr(cr.data, "x-amz-security-token:session-token\n") != NULL);
    CHECK(strstr(cr.data, "user-agent") == NULL);
    CHECK(strstr(cr.data, "\ncontent-type;host;x-amz-content-sha256;x-amz-date;"
                          "x-amz-security-token\n") != NULL);

    /* The wire form of the path (':' already %3A) is encoded once more. */
    req.path = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse";
    buf_reset(&cr);
    REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &cr, errbuf),
                   ASSAY_OK);
    CHECK(strncmp(cr.data, "POST\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse\n",
                  64) == 0);
    buf_clear(&cr);

    req.path = CONVERSE_PATH;
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    REQUIRE_INT_EQ(sigv4_request_sign(NULL, &req, &params, &out, errbuf), ASSAY_OK);
    REQUIRE_INT_EQ(out.add_count, 4);
    CHECK_STR_EQ(out.add[0].name, "X-Amz-Date");
    CHECK_STR_EQ(out.add[0].value, "20150830T123600Z");
    CHECK_STR_EQ(out.add[1].name, "X-Amz-Security-Token");
    CHECK_STR_EQ(out.add[1].value, "session-token");
    CHECK_STR_EQ(out.add[2].name, "X-Amz-Content-SHA256");
    CHECK_INT_EQ(strlen(out.add[2].value), 64);
    CHECK(strcmp(out.add[2].value, SIGV4_EMPTY_SHA256) != 0);
    CHECK_STR_EQ(out.add[3].name, "Authorization");
    CHECK(strncmp(out.authorization.data,
                  "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/"
                  "aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;"
                  "x-amz-date;x-amz-security-token, Signature=",
                  strlen("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/"
                         "aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;"
                         "x-amz-date;x-amz-security-token, Signature=")) == 0);

    /* A precomputed payload hash gives the same signature as the body. */
    char sig[65];
    memcpy(sig, out.signature, 65);
    char hash[65];
    memcpy(hash, out.content_sha256, 65);
    req.body = NULL;
    req.body_len = 0;
    req.payload_hash = hash;
    REQUIRE_INT_EQ(sigv4_request_sign(NULL, &req, &params, &out, errbuf), ASSAY_OK);
    CHECK_STR_EQ(out.signature, sig);

    /* Reusing the result: no new storage for the Authorization value. */
    const char *storage = out.authorization.data;
    REQUIRE_INT_EQ(sigv4_request_sign(NULL, &req, &params, &out, errbuf), ASSAY_OK);
    CHECK(out.authorization.data == storage);
    sigv4_signed_clear(&out);
}

/* Headers the JS signer never signs, and the ones it replaces. */
TEST_CASE(unsignable_headers)
{
    struct sigv4_header headers[] = {
        {"host", "h.example"},
        {"User-Agent", "x"},
        {"X-Amzn-Trace-Id", "Root=1"},
        {"Proxy-Authorization", "x"},
        {"sec-fetch-mode", "cors"},
        {"Connection", "keep-alive"},
        {"Expect", "100-continue"},
        {"Authorization", "old"},
        {"Date", "yesterday"},
        {"X-Amz-Date", "19990101T000000Z"},
        {"x-custom", NULL},
        {"Transfer-Encoding", "chunked"},
        {"X-Amz-Target", "A.B"},
    };
    struct sigv4_request req = {.method = "GET",
                                .path = "/",
                                .headers = headers,
                                .header_count = sizeof headers / sizeof headers[0]};
    struct sigv4_params params = {.creds = {"AKID", "secret", NULL},
                                  .region = "us-east-1",
                                  .service = "monitoring",
                                  .time_s = SUITE_TIME};
    struct buf cr = BUF_INIT;
    REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &cr, NULL),
                   ASSAY_OK);
    CHECK_STR_EQ(cr.data, "GET\n/\n\nhost:h.example\nx-amz-date:20150830T123600Z\n"
                          "x-amz-target:A.B\n\nhost;x-amz-date;x-amz-target\n" SIGV4_EMPTY_SHA256);
    buf_clear(&cr);
}

/* Query canonicalisation: decoding, re-encoding, ordering, empty values, repeats. */
TEST_CASE(query_rules)
{
    struct sigv4_header host = {"Host", "h"};
    struct sigv4_request req = {.method = "GET", .path = "/", .headers = &host, .header_count = 1};
    struct sigv4_params params = {.creds = {"AKID", "secret", NULL},
                                  .region = "us-east-1",
                                  .service = "s",
                                  .time_s = SUITE_TIME};
    static const struct {
        const char *raw, *canonical;
    } cases[] = {
        {"b=2&a=1", "a=1&b=2"},
        {"a=2&a=1&a=10", "a=1&a=10&a=2"},
        {"flag&x=", "flag=&x="},
        {"a=%7e%41+b", "a=~A%2Bb"},         /* decoded then encoded upper-case; '+' is a plus */
        {"k=a b&k=a/b", "k=a%20b&k=a%2Fb"}, /* raw bytes encoded */
        {"a-b=1&a=2", "a=2&a-b=1"},         /* by key first, not by "key=value" */
        {"%=1&p=100%", "%25=1&p=100%25"},   /* a lone '%' is literal */
        {"&&a=1&", "a=1"},
        {"=v", "=v"},
        {"X-Amz-Signature=abc&x-amz-signature=d&q=1", "q=1"},
        {"%E1%88%B4=1&z=2", "%E1%88%B4=1&z=2"},
        {"a.=1&a~=2&a%2F=3", "a%2F=3&a.=1&a~=2"}, /* sorted by encoded bytes */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        req.query = cases[i].raw;
        struct buf cr = BUF_INIT;
        REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &cr, NULL),
                       ASSAY_OK);
        const char *q = strchr(cr.data + 5, '\n') + 1; /* after "GET\n/\n" */
        size_t n = (size_t)(strchr(q, '\n') - q);
        char got[256];
        snprintf(got, sizeof got, "%.*s", (int)n, q);
        CHECK_STR_EQ(got, cases[i].canonical);
        buf_clear(&cr);
    }
}

/* S3 paths are kept: no normalisation, existing escapes untouched. */
TEST_CASE(s3_path)
{
    struct sigv4_header host = {"Host", "b.s3.amazonaws.com"};
    struct sigv4_request req = {.method = "GET",
                                .path = "/a//b/../c%2Fd/e f",
                                .headers = &host,
                                .header_count = 1,
                                .payload_hash = SIGV4_UNSIGNED_PAYLOAD};
    struct sigv4_params params = {.creds = {"AKID", "secret", NULL},
                                  .region = "us-east-1",
                                  .service = "s3",
                                  .time_s = SUITE_TIME,
                                  .no_normalize_path = true,
                                  .sign_body = true};
    struct buf cr = BUF_INIT;
    REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &cr, NULL),
                   ASSAY_OK);
    CHECK(strncmp(cr.data, "GET\n/a//b/../c%2Fd/e%20f\n", 25) == 0);
    CHECK(strstr(cr.data, "x-amz-content-sha256:UNSIGNED-PAYLOAD\n") != NULL);
    CHECK(strstr(cr.data, "\nUNSIGNED-PAYLOAD") != NULL);
    /* The same path normalised, for every other service: dots resolved, escapes encoded again. */
    params.no_normalize_path = false;
    buf_reset(&cr);
    REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &cr, NULL),
                   ASSAY_OK);
    CHECK(strncmp(cr.data, "GET\n/a/c%252Fd/e%20f\n", 21) == 0);
    buf_clear(&cr);
}

/* Presigning moves x-amz-* headers into the query and keeps the caller's query first. */
TEST_CASE(presign_hoists_headers)
{
    struct sigv4_header headers[] = {{"Host", "h"}, {"X-Amz-Meta-Who", "me & you"}};
    struct sigv4_request req = {
        .method = "GET", .path = "/o", .query = "a=1", .headers = headers, .header_count = 2};
    struct sigv4_params params = {.creds = {"AKID", "secret", "tok/en"},
                                  .region = "us-east-1",
                                  .service = "s3",
                                  .time_s = SUITE_TIME,
                                  .expires_s = 60};
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    char errbuf[ASSAY_ERRBUF_SIZE];
    REQUIRE_INT_EQ(sigv4_request_presign(NULL, &req, &params, &out, errbuf), ASSAY_OK);
    const char *want = "a=1&X-Amz-Meta-Who=me%20%26%20you&X-Amz-Algorithm=AWS4-HMAC-SHA256"
                       "&X-Amz-Credential=AKID%2F20150830%2Fus-east-1%2Fs3%2Faws4_request"
                       "&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Expires=60"
                       "&X-Amz-Security-Token=tok%2Fen&X-Amz-Signature=";
    CHECK(strncmp(out.query.data, want, strlen(want)) == 0);
    CHECK_INT_EQ(out.query.len, strlen(want) + 64);
    CHECK_INT_EQ(out.add_count, 0);

    struct buf cr = BUF_INIT;
    REQUIRE_INT_EQ(sigv4_canonical_request_build(&req, &params, SIGV4_IN_QUERY, &cr, errbuf),
                   ASSAY_OK);
    CHECK(strstr(cr.data, "\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=") != NULL);
    CHECK(strstr(cr.data, "&X-Amz-Meta-Who=me%20%26%20you&X-Amz-Security-Token=tok%2Fen&"
                          "X-Amz-SignedHeaders=host&a=1\n") != NULL);
    buf_clear(&cr);

    params.expires_s = SIGV4_MAX_EXPIRES_S + 1;
    CHECK_INT_EQ(sigv4_request_presign(NULL, &req, &params, &out, errbuf),
                 ASSAY_ERR_INVALID_ARGUMENT);
    sigv4_signed_clear(&out);
}

/* Bad input is an error with a detail that never names the secret or token. */
TEST_CASE(errors)
{
    struct sigv4_header host = {"Host", "h"};
    struct sigv4_header nameless = {"", "v"};
    struct sigv4_request req = {.method = "GET", .path = "/", .headers = &host, .header_count = 1};
    struct sigv4_params good = {.creds = {"AKID", "SECRETSECRET", "TOKENTOKEN"},
                                .region = "us-east-1",
                                .service = "s",
                                .time_s = SUITE_TIME};
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    char errbuf[ASSAY_ERRBUF_SIZE];
    struct sigv4_params p = good;
    p.region = "";
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    p = good;
    p.service = "a/b";
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    p = good;
    p.creds.access_key_id = NULL;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_NO_CREDENTIALS);
    p = good;
    p.time_s = -1;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    p = good;
    req.header_count = 0;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(errbuf, "host") != NULL);
    req.headers = &nameless;
    req.header_count = 1;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(errbuf, "SECRET") == NULL && strstr(errbuf, "TOKEN") == NULL);

    /* Too many headers or parameters: refused, not truncated. */
    struct sigv4_header many[SIGV4_MAX_HEADERS + 1];
    for (size_t i = 0; i < SIGV4_MAX_HEADERS + 1; i++)
        many[i] = (struct sigv4_header){"Host", "h"};
    req.headers = many;
    req.header_count = SIGV4_MAX_HEADERS + 1;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_TOO_LARGE);
    req.header_count = 1;
    struct buf q = BUF_INIT;
    for (int i = 0; i <= SIGV4_MAX_QUERY_PARAMS; i++)
        buf_appendf(&q, "%sk%d=v", i ? "&" : "", i);
    req.query = q.data;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_TOO_LARGE);
    buf_clear(&q);
    /* The payload hash header may not overflow the result. */
    struct sigv4_header long_hash[2] = {{"Host", "h"}, {"x-amz-content-sha256", ""}};
    char h[80];
    memset(h, 'a', sizeof h - 1);
    h[sizeof h - 1] = '\0';
    long_hash[1].value = h;
    req.headers = long_hash;
    req.header_count = 2;
    req.query = NULL;
    CHECK_INT_EQ(sigv4_request_sign(NULL, &req, &p, &out, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    sigv4_signed_clear(&out);
}

struct thread_arg {
    struct sigv4_key_cache *cache;
    const char *want;
    int bad;
};

static void *sign_many(void *p)
{
    struct thread_arg *a = p;
    struct sigv4_header headers[3];
    struct sigv4_request req;
    converse_request(&req, headers, "{\"a\":1}");
    struct sigv4_params params;
    converse_params(&params, NULL);
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    for (int i = 0; i < 2000; i++) {
        /* Alternate days so that threads also insert into the cache concurrently. */
        params.time_s = SUITE_TIME + (i % 2) * 86400 * (1 + i % 7);
        if (sigv4_request_sign(a->cache, &req, &params, &out, NULL) != ASSAY_OK)
            a->bad++;
        else if (params.time_s == SUITE_TIME && strcmp(out.signature, a->want) != 0)
            a->bad++;
    }
    sigv4_signed_clear(&out);
    return NULL;
}

/* Several threads share one cache and all get the right signature. */
TEST_CASE(threads_share_cache)
{
    struct sigv4_header headers[3];
    struct sigv4_request req;
    converse_request(&req, headers, "{\"a\":1}");
    struct sigv4_params params;
    converse_params(&params, NULL);
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    REQUIRE_INT_EQ(sigv4_request_sign(NULL, &req, &params, &out, NULL), ASSAY_OK);

    struct sigv4_key_cache *cache = sigv4_key_cache_new();
    pthread_t t[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){cache, out.signature, 0};
        REQUIRE_INT_EQ(pthread_create(&t[i], NULL, sign_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT_EQ(args[i].bad, 0);
    }
    sigv4_key_cache_free(cache);
    sigv4_signed_clear(&out);
}

/* The one RFC 3986 encoder of aws/ (SigV4 canonicalisation, STS and SNS form bodies). */
TEST_CASE(uri_encode_rfc3986)
{
    struct buf b = BUF_INIT;
    const char in[] = "AZaz09-._~ +/:=&%!*'()\xc3\xa9";
    sigv4_uri_encode(&b, in, sizeof in - 1);
    CHECK_STR_EQ(buf_cstr(&b), "AZaz09-._~%20%2B%2F%3A%3D%26%25%21%2A%27%28%29%C3%A9");
    buf_reset(&b);
    sigv4_uri_encode(&b, "a\0b", 3); /* bytes, not a C string */
    CHECK_STR_EQ(buf_cstr(&b), "a%00b");
    buf_clear(&b);
    char e[3];
    CHECK_INT_EQ(sigv4_uri_encode_byte('~', e), 1);
    CHECK_INT_EQ(sigv4_uri_encode_byte(0xff, e), 3);
    CHECK(memcmp(e, "%FF", 3) == 0);
}
