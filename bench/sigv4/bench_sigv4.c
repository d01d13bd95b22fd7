/*
 * bench/sigv4/bench_sigv4.c: signs the same 10,000 Converse-shaped requests
 * (2 KB JSON bodies, a model id with ':', session credentials, the headers the
 * SDK sends) with aws/sigv4 and with @smithy/signature-v4 under node (through
 * bench_sigv4.js, using @smithy/hash-node as the SDK does in Node), and prints
 * signatures per second for each and the ratio. Both sides must produce the
 * same Authorization values (compared through a digest of all of them).
 * It also counts heap allocations made while assay signs (expected: none).
 *
 * Usage: bench_sigv4 [--no-node] [COUNT]; run through bench/sigv4/run.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "aws/sigv4.h"
#include "common/buf.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- allocation counting: this binary's malloc family wraps glibc's ----- */

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t c, size_t n);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);
void *malloc(size_t n);
void *calloc(size_t c, size_t n);
void *realloc(void *p, size_t n);
void free(void *p);

static volatile int counting;
static volatile long allocations;

void *malloc(size_t n)
{
    if (counting)
        allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t c, size_t n)
{
    if (counting)
        allocations++;
    return __libc_calloc(c, n);
}

void *realloc(void *p, size_t n)
{
    if (counting)
        allocations++;
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

/* ---- the requests --------------------------------------------------------- */

#define BODY_LEN 2048
#define HOST "bedrock-runtime.us-east-1.amazonaws.com"
#define PATH "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
#define AKID "ASIAEXAMPLEBENCH0001"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define TOKEN                                                                                      \
    "IQoJb3JpZ2luX2VjEXAMPLEtokenFORbenchmarkingONLYabcdefghijklmnopqrstuvwxyz0123456789+/"        \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789=="
#define TIME_S 1795743000 /* 2026-11-27T01:30:00Z */

struct bench_req {
    char body[BODY_LEN + 1];
    char invocation_id[37];
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_request(struct bench_req *r, int i)
{
    static const char words[] = "Grade the answer for helpfulness against the rubric; the "
                                "context mentions quotas, throttling and regional endpoints. ";
    struct buf b = BUF_INIT;
    buf_appendf(&b, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"Request %d. ", i);
    size_t tail_len = strlen("\"}]}],\"inferenceConfig\":{\"maxTokens\":512,\"temperature\":0}}");
    while (b.len + tail_len < BODY_LEN)
        buf_append_char(&b, words[(b.len + (size_t)i) % (sizeof words - 1)]);
    buf_append_str(&b, "\"}]}],\"inferenceConfig\":{\"maxTokens\":512,\"temperature\":0}}");
    memcpy(r->body, b.data, BODY_LEN);
    r->body[BODY_LEN] = '\0';
    buf_clear(&b);
    snprintf(r->invocation_id, sizeof r->invocation_id, "%08x-%04x-4%03x-8%03x-%012x",
             (unsigned)i * 2654435761u, (unsigned)i & 0xffff, (unsigned)i & 0xfff,
             (unsigned)(i * 7) & 0xfff, (unsigned)i * 40503u);
}

static void set_headers(struct sigv4_header h[6], const struct bench_req *r)
{
    h[0] = (struct sigv4_header){"host", HOST};
    h[1] = (struct sigv4_header){"content-type", "application/json"};
    h[2] = (struct sigv4_header){"accept", "application/json"};
    h[3] = (struct sigv4_header){"user-agent", "aws-sdk-js/3.0 ua/2.1 os/linux lang/js"};
    h[4] = (struct sigv4_header){"amz-sdk-invocation-id", r->invocation_id};
    h[5] = (struct sigv4_header){"amz-sdk-request", "attempt=1; max=3"};
}

/* Writes the requests as JSON lines for the node side. */
static int write_requests(const char *file, const struct bench_req *reqs, int n)
{
    FILE *f = fopen(file, "w");
    if (!f)
        return -1;
    struct buf line = BUF_INIT;
    for (int i = 0; i < n; i++) {
        struct sigv4_header h[6];
        set_headers(h, &reqs[i]);
        buf_reset(&line);
        buf_append_str(&line, "{\"headers\":{");
        for (int k = 0; k < 6; k++) {
            buf_appendf(&line, "%s\"%s\":\"", k ? "," : "", h[k].name);
            buf_append_json_escaped(&line, h[k].value, strlen(h[k].value));
            buf_append_char(&line, '"');
        }
        buf_append_str(&line, "},\"body\":\"");
        buf_append_json_escaped(&line, reqs[i].body, BODY_LEN);
        buf_append_str(&line, "\"}\n");
        fwrite(line.data, 1, line.len, f);
    }
    buf_clear(&line);
    return fclose(f);
}

int main(int argc, char **argv)
{
    int use_node = 1, n = 10000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--no-node") == 0)
            use_node = 0;
        else
            n = atoi(argv[i]);
    }
    if (n <= 0)
        n = 10000;
    struct bench_req *reqs = calloc((size_t)n, sizeof *reqs);
    for (int i = 0; i < n; i++)
        make_request(&reqs[i], i);

    struct sigv4_key_cache *cache = sigv4_key_cache_new();
    struct sigv4_params params = {.creds = {AKID, SECRET, TOKEN},
                                  .region = "us-east-1",
                                  .service = "bedrock",
                                  .time_s = TIME_S,
                                  .sign_body = true};
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    char errbuf[ASSAY_ERRBUF_SIZE];

    /* The digest of every Authorization value, to compare with the SDK's. */
    SHA256_CTX all;
    SHA256_Init(&all);
    for (int i = 0; i < n; i++) {
        struct sigv4_header h[6];
        set_headers(h, &reqs[i]);
        struct sigv4_request req = {.method = "POST",
                                    .path = PATH,
                                    .headers = h,
                                    .header_count = 6,
                                    .body = reqs[i].body,
                                    .body_len = BODY_LEN};
        if (sigv4_request_sign(cache, &req, &params, &out, errbuf) != ASSAY_OK) {
            fprintf(stderr, "bench_sigv4: %s\n", errbuf);
            return 1;
        }
        SHA256_Update(&all, out.authorization.data, out.authorization.len);
        SHA256_Update(&all, "\n", 1);
    }
    unsigned char md[32];
    char digest[65];
    SHA256_Final(md, &all);
    for (int i = 0; i < 32; i++)
        snprintf(digest + 2 * i, 3, "%02x", md[i]);

    /* Timed: best of 5 passes over all requests. */
    double best = 1e9;
    counting = 1;
    for (int round = 0; round < 5; round++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            struct sigv4_header h[6];
            set_headers(h, &reqs[i]);
            struct sigv4_request req = {.method = "POST",
                                        .path = PATH,
                                        .headers = h,
                                        .header_count = 6,
                                        .body = reqs[i].body,
                                        .body_len = BODY_LEN};
            sigv4_request_sign(cache, &req, &params, &out, errbuf);
        }
        double t = now_s() - t0;
        if (t < best)
            best = t;
    }
    counting = 0;
    double assay_rate = n / best;
    printf("assay:  %10.0f signatures/s (%d requests, best of 5; %.2f us each; %ld heap "
           "allocations in %d signatures)\n",
           assay_rate, n, best / n * 1e6, allocations, 5 * n);

    /* The floor no signer can beat: SHA-256 of each body and of its canonical
     * request (what any SigV4 signer must hash), with nothing else. */
    struct buf *crs = calloc((size_t)n, sizeof *crs);
    for (int i = 0; i < n; i++) {
        struct sigv4_header h[6];
        set_headers(h, &reqs[i]);
        struct sigv4_request req = {.method = "POST",
                                    .path = PATH,
                                    .headers = h,
                                    .header_count = 6,
                                    .body = reqs[i].body,
                                    .body_len = BODY_LEN};
        sigv4_canonical_request_build(&req, &params, SIGV4_IN_HEADER, &crs[i], errbuf);
    }
    double floor_best = 1e9;
    unsigned char sink[32];
    for (int round = 0; round < 5; round++) {
        double t0 = now_s();
        for (int i = 0; i < n; i++) {
            SHA256_CTX c;
            SHA256_Init(&c);
            SHA256_Update(&c, reqs[i].body, BODY_LEN);
            SHA256_Final(sink, &c);
            SHA256_Init(&c);
            SHA256_Update(&c, crs[i].data, crs[i].len);
            SHA256_Final(sink, &c);
        }
        double t = now_s() - t0;
        if (t < floor_best)
            floor_best = t;
    }
    for (int i = 0; i < n; i++)
        buf_clear(&crs[i]);
    free(crs);
    printf("floor:  %10.0f hashings/s (SHA-256 of body and canonical request only); assay at "
           "%.0f%% of it\n",
           n / floor_best, 100.0 * assay_rate / (n / floor_best));

    int status = 0;
    if (use_node) {
        char file[] = "/tmp/assay-bench-sigv4-XXXXXX";
        int fd = mkstemp(file);
        if (fd < 0 || write_requests(file, reqs, n) != 0) {
            perror("bench_sigv4: requests file");
            return 1;
        }
        char cmd[4096];
        const char *src = ASSAY_SOURCE;
        snprintf(cmd, sizeof cmd, "node '%s/bench/sigv4/bench_sigv4.js' '%s' %d", src, file,
                 TIME_S);
        FILE *p = popen(cmd, "r");
        double sdk_rate = 0;
        char sdk_digest[65] = "";
        char line[512];
        while (p && fgets(line, sizeof line, p)) {
            if (sscanf(line, "sdk %lf %64s", &sdk_rate, sdk_digest) == 2)
                continue;
            fputs(line, stdout);
        }
        int rc = p ? pclose(p) : -1;
        close(fd);
        unlink(file);
        if (rc != 0 || sdk_rate <= 0) {
            fprintf(stderr, "bench_sigv4: the node side failed (tests/sdk-check: npm ci?)\n");
            status = 1;
        } else {
            printf("sdk:    %10.0f signatures/s (@smithy/signature-v4 with @smithy/hash-node, "
                   "best of 5)\n",
                   sdk_rate);
            printf("ratio:  %10.1f x\n", assay_rate / sdk_rate);
            int same = strcmp(digest, sdk_digest) == 0;
            printf("Authorization values %s (digest %.16s...)\n",
                   same ? "identical on both sides" : "DIFFER", digest);
            if (!same)
                status = 1;
        }
    }
    sigv4_signed_clear(&out);
    sigv4_key_cache_free(cache);
    free(reqs);
    return status;
}
