/*
 * tests/sdk-check/sigv4_gen.c: the C half of the cross-check against the
 * official JS signer. Makes N seeded random requests (methods; paths with
 * spaces, unicode, reserved characters, dot segments and escapes; repeated and
 * empty query parameters written in several legal encodings; headers with odd
 * spacing and case, some never signed; bodies of every size including empty;
 * with and without session tokens; a share presigned, a share S3-style),
 * signs each with aws/sigv4 and prints one JSON line per request: what the JS
 * signer needs to sign it the SDK's way, and assay's result.
 * sigv4_check.js signs the same requests with @smithy/signature-v4 and compares.
 *
 * Usage: sigv4_gen [COUNT [SEED]]
 */
#include "aws/sigv4.h"
#include "common/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static size_t pick(size_t n)
{
    return (size_t)(rnd() % n);
}

static int chance(int percent)
{
    return (int)pick(100) < percent;
}

/* Pieces of text the generator strings together (UTF-8). */
static const char *const atoms[] = {
    "a",  "Z",  "0",  "9", "-",  ".", "_", "~",  " ", "!",   "$",   "&",        "'",
    "(",  ")",  "*",  "+", ",",  ";", "=", ":",  "@", "%",   "\"",  "<",        ">",
    "[",  "]",  "^",  "`", "{",  "|", "}", "\\", "é", "ሴ",   "😀",   "model-id", "v1:0",
    "ab", "%2", "\t", "×", "中", "/", "?", "#",  "€", "key", "val", "A.B_C~d",
};

/* Appends a random string of up to max atoms, leaving out the characters in ban. */
static void rand_text(struct buf *b, size_t max, const char *ban)
{
    size_t n = pick(max + 1);
    for (size_t i = 0; i < n; i++) {
        const char *a = atoms[pick(sizeof atoms / sizeof atoms[0])];
        if (ban && strpbrk(a, ban))
            continue;
        buf_append_str(b, a);
    }
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/*
 * Writes decoded text as it could legally appear in a query: characters that
 * would change the meaning (& = + # % and space) always escaped, others
 * escaped or not at random, hex in either case.
 */
static void wire_encode(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        /* One character at a time: a UTF-8 sequence is escaped whole or not at all. */
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + len > n)
            len = n - i;
        int must = strchr("&=+#% ", c) != NULL || c < 0x20;
        int escape = must || (!unreserved(c) && chance(50));
        const char *hex = chance(50) ? "0123456789ABCDEF" : "0123456789abcdef";
        for (size_t j = 0; j < len; j++) {
            unsigned char x = (unsigned char)s[i + j];
            if (escape) {
                char e[3] = {'%', hex[x >> 4], hex[x & 15]};
                buf_append(b, e, 3);
            } else {
                buf_append_char(b, (char)x);
            }
        }
        i += len;
    }
}

/* Strict RFC 3986 encoding, for S3 paths (sent encoded already, signed as they are). */
static void strict_encode(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || c == '/') {
            buf_append_char(b, (char)c);
        } else {
            char e[3] = {'%', "0123456789ABCDEF"[c >> 4], "0123456789ABCDEF"[c & 15]};
            buf_append(b, e, 3);
        }
    }
}

static void json_str(struct buf *out, const char *key, const char *s)
{
    buf_appendf(out, "\"%s\":\"", key);
    buf_append_json_escaped(out, s, strlen(s));
    buf_append_str(out, "\"");
}

static const char *const header_pool[] = {
    "Content-Type",      "x-amz-target",     "X-Custom-One",
    "x-custom-two",      "Accept",           "x-amz-meta-note",
    "User-Agent",        "X-Amzn-Trace-Id",  "Proxy-Thing",
    "Sec-Fetch-Site",    "Cache-Control",    "Expect",
    "Content-Encoding",  "x-amz-user-agent", "Date",
    "Connection",        "X-Forwarded",      "amz-sdk-request",
    "Transfer-Encoding", "Referer",          "x-amz-content-sha256",
};

static void rand_header_value(struct buf *v)
{
    static const char *const bits[] = {"a",   "b", "1",     " ",    "  ", "\t",    "text/plain",
                                       "x=y", ";", "\"q\"", "a  b", " ",  "\r\n ", "Mozilla/5.0"};
    size_t n = pick(8);
    for (size_t i = 0; i < n; i++)
        buf_append_str(v, bits[pick(sizeof bits / sizeof bits[0])]);
}

static void rand_alnum(char *out, size_t n, const char *alphabet)
{
    size_t k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[pick(k)];
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 20261127;
    if (rng_state == 0)
        rng_state = 1;
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"};
    static const char *const regions[] = {"us-east-1", "eu-west-1", "ap-southeast-2",
                                          "us-gov-west-1"};
    static const char *const services[] = {"bedrock", "monitoring", "sts", "execute-api"};

    struct sigv4_key_cache *cache = sigv4_key_cache_new();
    struct sigv4_signed out;
    sigv4_signed_init(&out);
    struct buf line = BUF_INIT, path = BUF_INIT, query = BUF_INIT, jsq = BUF_INIT, hv = BUF_INIT,
               body = BUF_INIT, tmp = BUF_INIT, tmp2 = BUF_INIT;
    int failures = 0;

    for (long n = 0; n < count; n++) {
        int s3 = chance(15), presign = chance(20);
        buf_reset(&line);
        buf_reset(&path);
        buf_reset(&query);
        buf_reset(&jsq);
        buf_reset(&body);

        /* The path: segments of anything but '?', '#' and '/'; dots and empties among them. */
        size_t segs = pick(6);
        for (size_t i = 0; i < segs; i++) {
            buf_append_char(&path, '/');
            size_t kind = pick(10);
            buf_reset(&tmp);
            if (kind == 0)
                buf_append_str(&tmp, ".");
            else if (kind == 1)
                buf_append_str(&tmp, "..");
            else if (kind == 2)
                ; /* empty segment */
            else
                rand_text(&tmp, 5, "?#/%");
            if (s3)
                strict_encode(&path, tmp.data ? tmp.data : "", tmp.len);
            else if (kind > 2 && chance(20))
                strict_encode(&path, tmp.data ? tmp.data : "",
                              tmp.len); /* escapes, encoded again */
            else
                buf_append(&path, tmp.data ? tmp.data : "", tmp.len);
        }
        if (segs == 0 || chance(20))
            buf_append_char(&path, '/');

        /* The query: decoded pairs for JS, a raw string for assay. */
        size_t params = pick(6);
        buf_append_char(&jsq, '[');
        for (size_t i = 0; i < params; i++) {
            buf_reset(&tmp);
            buf_reset(&tmp2);
            if (i > 0 && chance(30)) {
                /* repeat an earlier key: take it back from the JSON is awkward; reuse "dup" */
                buf_append_str(&tmp, "dup");
            } else if (chance(10)) {
                buf_append_str(&tmp, "dup");
            } else {
                rand_text(&tmp, 4, NULL);
            }
            if (tmp.len == 0 && chance(50))
                buf_append_str(&tmp, "k");
            /* The JS signer drops X-Amz-Signature and cannot hold "__proto__": avoid both. */
            if (tmp.data && (strcasecmp(tmp.data, "x-amz-signature") == 0 ||
                             strcmp(tmp.data, "__proto__") == 0))
                buf_append_str(&tmp, "x");
            if (chance(70))
                rand_text(&tmp2, 4, NULL);
            const char *k = tmp.data ? tmp.data : "", *v = tmp2.data ? tmp2.data : "";
            if (query.len)
                buf_append_char(&query, '&');
            wire_encode(&query, k, tmp.len);
            if (tmp.len == 0 || tmp2.len > 0 || chance(60)) {
                buf_append_char(&query, '=');
                wire_encode(&query, v, tmp2.len);
            }
            if (chance(5))
                buf_append_char(&query, '&'); /* an empty piece, ignored by both */
            buf_appendf(&jsq, "%s[\"", i ? "," : "");
            buf_append_json_escaped(&jsq, k, strlen(k));
            buf_append_str(&jsq, "\",\"");
            buf_append_json_escaped(&jsq, v, strlen(v));
            buf_append_str(&jsq, "\"]");
        }
        buf_append_char(&jsq, ']');

        /* Headers: host, then distinct names (JS holds headers in an object). */
        struct sigv4_header headers[24];
        char *owned[24];
        size_t nh = 0;
        headers[nh++] =
            (struct sigv4_header){chance(50) ? "Host" : "host", "example.amazonaws.com"};
        int used[sizeof header_pool / sizeof header_pool[0]] = {0};
        size_t extra = pick(7);
        for (size_t i = 0; i < extra; i++) {
            size_t h = pick(sizeof header_pool / sizeof header_pool[0]);
            if (used[h])
                continue;
            used[h] = 1;
            buf_reset(&hv);
            if (strcasecmp(header_pool[h], "x-amz-content-sha256") == 0)
                buf_append_str(&hv, chance(50) ? SIGV4_UNSIGNED_PAYLOAD : SIGV4_EMPTY_SHA256);
            else
                rand_header_value(&hv);
            /* Random case for the name. */
            char *name = strdup(header_pool[h]);
            for (char *c = name; *c; c++)
                if (chance(20))
                    *c = (char)(*c >= 'a' && *c <= 'z' ? *c - 32
                                                       : (*c >= 'A' && *c <= 'Z' ? *c + 32 : *c));
            owned[nh] = name;
            headers[nh++] = (struct sigv4_header){name, strdup(buf_cstr(&hv))};
        }

        /* Body: every size class, empty included. */
        static const size_t sizes[] = {0, 0, 1, 2, 55, 56, 63, 64, 65, 127, 128, 1000, 2048, 4099};
        size_t blen = chance(30) ? pick(5000) : sizes[pick(sizeof sizes / sizeof sizes[0])];
        for (size_t i = 0; i < blen; i++)
            buf_append_char(&body, (char)pick(256));

        char akid[21], secret[41], token[80];
        memcpy(akid, "AKIA", 4);
        rand_alnum(akid + 4, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        rand_alnum(secret, 40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
        int with_token = chance(50);
        rand_alnum(token, 1 + pick(78),
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=");

        struct sigv4_params p = {
            .creds = {akid, secret, with_token ? token : NULL},
            .region = regions[pick(sizeof regions / sizeof regions[0])],
            .service = s3 ? "s3" : services[pick(sizeof services / sizeof services[0])],
            .time_s = 946684800 + (int64_t)pick(4102444800 - 946684800),
            .no_normalize_path = s3,
            .sign_body = chance(50),
            .expires_s = presign ? 1 + (int64_t)pick(SIGV4_MAX_EXPIRES_S) : 0,
        };
        struct sigv4_request req = {
            .method = methods[pick(sizeof methods / sizeof methods[0])],
            .path = buf_cstr(&path),
            .query = buf_cstr(&query),
            .headers = headers,
            .header_count = nh,
            .body = body.data,
            .body_len = body.len,
        };
        char errbuf[ASSAY_ERRBUF_SIZE] = "";
        enum assay_err err = presign ? sigv4_request_presign(cache, &req, &p, &out, errbuf)
                                     : sigv4_request_sign(cache, &req, &p, &out, errbuf);
        if (err != ASSAY_OK) {
            fprintf(stderr, "request %ld: %s: %s\n", n, assay_err_name(err), errbuf);
            failures++;
        }

        buf_append_char(&line, '{');
        buf_appendf(&line, "\"n\":%ld,\"presign\":%s,\"s3\":%s,\"sign_body\":%s,", n,
                    presign ? "true" : "false", s3 ? "true" : "false",
                    p.sign_body ? "true" : "false");
        json_str(&line, "method", req.method);
        buf_append_char(&line, ',');
        json_str(&line, "path", req.path);
        buf_append_char(&line, ',');
        json_str(&line, "raw_query", req.query);
        buf_appendf(&line, ",\"query\":%s,\"headers\":[", jsq.data);
        for (size_t i = 0; i < nh; i++) {
            buf_appendf(&line, "%s[\"", i ? "," : "");
            buf_append_json_escaped(&line, headers[i].name, strlen(headers[i].name));
            buf_append_str(&line, "\",\"");
            buf_append_json_escaped(&line, headers[i].value, strlen(headers[i].value));
            buf_append_str(&line, "\"]");
        }
        buf_append_str(&line, "],\"body_hex\":\"");
        for (size_t i = 0; i < body.len; i++)
            buf_appendf(&line, "%02x", (unsigned char)body.data[i]);
        buf_append_str(&line, "\",");
        json_str(&line, "akid", akid);
        buf_append_char(&line, ',');
        json_str(&line, "secret", secret);
        buf_append_char(&line, ',');
        json_str(&line, "token", with_token ? token : "");
        buf_append_char(&line, ',');
        json_str(&line, "region", p.region);
        buf_append_char(&line, ',');
        json_str(&line, "service", p.service);
        buf_appendf(&line, ",\"time_s\":%" PRId64 ",\"expires_s\":%" PRId64 ",", p.time_s,
                    p.expires_s);
        json_str(&line, "authorization", err == ASSAY_OK ? buf_cstr(&out.authorization) : "");
        buf_append_char(&line, ',');
        json_str(&line, "presigned_query", err == ASSAY_OK ? buf_cstr(&out.query) : "");
        buf_append_str(&line, "}\n");
        fwrite(line.data, 1, line.len, stdout);

        for (size_t i = 1; i < nh; i++) {
            free(owned[i]);
            free((char *)headers[i].value);
        }
    }
    buf_clear(&line);
    buf_clear(&path);
    buf_clear(&query);
    buf_clear(&jsq);
    buf_clear(&hv);
    buf_clear(&body);
    buf_clear(&tmp);
    buf_clear(&tmp2);
    sigv4_signed_clear(&out);
    sigv4_key_cache_free(cache);
    return failures ? 1 : 0;
}
