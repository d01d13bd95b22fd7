/*
 * aws/sigv4: AWS Signature Version 4 signing (see sigv4.h for the rules it
 * follows). Called by the AWS service clients through the transport's sign
 * hook, from several threads at once.
 *
 * The canonical request is never stored when signing: it is streamed through
 * a small stack buffer into SHA-256, and the headers and query parameters are
 * sorted as arrays of pointers on the stack, so a signature costs no heap
 * allocation. The staged functions write the same stream into a buffer
 * instead. The derived signing key is cached per (day, region, service,
 * credentials) as HMAC inner and outer states, ready for the final HMAC.
 *
 * SHA-256 goes through OpenSSL's low-level SHA256_* functions (deprecated in
 * OpenSSL 3 but present through the 3.x series): unlike EVP they need no
 * context allocation per digest, and an HMAC midstate is a plain struct copy.
 *
 * Speed: hashing is most of a signature's cost (bench/sigv4 prints the bound
 * it sets), so the rest is kept small, and hashing that repeats is skipped:
 *   - the string to sign's first block (algorithm, amz date, start of the
 *     scope) is hashed once a second per cached key, in the key cache;
 *   - per thread, the canonical request's method, path and query lines and
 *     the SHA-256 state after its first block are kept from the last request,
 *     for the next one to the same API and model, as assay's traffic is;
 *   - the cache tells secrets apart by a keyed SipHash, not SHA-256;
 *   - header names are classified from one lower-cased copy of their first
 *     bytes, 8 bytes a step, and sorted by their first 8 bytes as an integer;
 *     the signed header list is written once; runs of bytes that need no
 *     escaping or folding are copied whole, never byte by byte.
 * Memos keep no secret: the canonical request's head holds no header.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "aws/sigv4.h"

#include "common/alloc.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define MAX_REGION 63
#define MAX_SERVICE 63
#define MAX_ACCESS_KEY_ID 127
#define MAX_PATH_SEGMENTS 512
#define CACHE_SLOTS 8

static const char HEXUP[] = "0123456789ABCDEF";

/* ---- SHA-256 and HMAC ---------------------------------------------------- */

struct hmac_key {
    SHA256_CTX inner; /* after absorbing key ^ ipad */
    SHA256_CTX outer; /* after absorbing key ^ opad */
};

/*
 * Wipes key material: explicit_bzero is glibc's vectorised memset that the
 * compiler may not remove; OPENSSL_cleanse, a plain loop, took about 5% of
 * a signature's non-hash instructions.
 */
static void wipe(void *p, size_t n)
{
    explicit_bzero(p, n);
}

static void sha256(const void *p, size_t n, uint8_t md[32])
{
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, p, n);
    SHA256_Final(md, &c);
}

/*
 * Lower-case hex of a digest (32 bytes) and a NUL. Three per signature: with
 * SSE2 (every x86-64) 16 bytes a step, the nibbles interleaved and each given
 * '0', plus 39 more when above 9 ('a' - '0' - 10); else a byte at a time.
 */
static void hex_encode(const uint8_t in[32], char out[65])
{
#ifdef __SSE2__
    const __m128i low4 = _mm_set1_epi8(0x0f), nine = _mm_set1_epi8(9);
    const __m128i zero_ch = _mm_set1_epi8('0'), letter_gap = _mm_set1_epi8('a' - '0' - 10);
    for (int i = 0; i < 32; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(in + i));
        __m128i hi = _mm_and_si128(_mm_srli_epi16(x, 4), low4), lo = _mm_and_si128(x, low4);
        __m128i digits[2] = {_mm_unpacklo_epi8(hi, lo), _mm_unpackhi_epi8(hi, lo)};
        for (int k = 0; k < 2; k++) {
            __m128i d = digits[k];
            __m128i letters = _mm_and_si128(_mm_cmpgt_epi8(d, nine), letter_gap);
            d = _mm_add_epi8(_mm_add_epi8(d, zero_ch), letters);
            _mm_storeu_si128((__m128i *)(out + 2 * i + 16 * k), d);
        }
    }
#else
    for (int i = 0; i < 32; i++) {
        out[2 * i] = "0123456789abcdef"[in[i] >> 4];
        out[2 * i + 1] = "0123456789abcdef"[in[i] & 15];
    }
#endif
    out[64] = '\0';
}

/* Sets up hk for a key given as prefix + key (the prefix lets "AWS4"+secret go in unjoined). */
static void hmac_key_init(struct hmac_key *hk, const char *prefix, size_t prefix_len,
                          const void *key, size_t key_len)
{
    uint8_t block[64] = {0};
    if (prefix_len + key_len > sizeof block) {
        SHA256_CTX c;
        SHA256_Init(&c);
        SHA256_Update(&c, prefix, prefix_len);
        SHA256_Update(&c, key, key_len);
        SHA256_Final(block, &c);
        wipe(&c, sizeof c);
    } else {
        memcpy(block, prefix, prefix_len);
        if (key_len)
            memcpy(block + prefix_len, key, key_len);
    }
    uint8_t pad[64];
    for (size_t i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&hk->inner);
    SHA256_Update(&hk->inner, pad, 64);
    for (size_t i = 0; i < 64; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&hk->outer);
    SHA256_Update(&hk->outer, pad, 64);
    wipe(block, sizeof block);
    wipe(pad, sizeof pad);
}

static void hmac_finish(const struct hmac_key *hk, SHA256_CTX *inner, uint8_t out[32])
{
    uint8_t ih[32];
    SHA256_Final(ih, inner);
    SHA256_CTX c = hk->outer;
    SHA256_Update(&c, ih, sizeof ih);
    SHA256_Final(out, &c);
    wipe(&c, sizeof c);
}

static void hmac_run(const struct hmac_key *hk, const void *msg, size_t n, uint8_t out[32])
{
    SHA256_CTX c = hk->inner;
    SHA256_Update(&c, msg, n);
    hmac_finish(hk, &c, out);
    wipe(&c, sizeof c);
}

static void derive_key(const char *secret, const char *date8, const char *region,
                       const char *service, uint8_t key[32])
{
    struct hmac_key hk;
    hmac_key_init(&hk, "AWS4", 4, secret, strlen(secret));
    hmac_run(&hk, date8, strlen(date8), key);
    hmac_key_init(&hk, "", 0, key, 32);
    hmac_run(&hk, region, strlen(region), key);
    hmac_key_init(&hk, "", 0, key, 32);
    hmac_run(&hk, service, strlen(service), key);
    hmac_key_init(&hk, "", 0, key, 32);
    hmac_run(&hk, "aws4_request", 12, key);
    wipe(&hk, sizeof hk);
}

void sigv4_signing_key_derive(const char *secret, const char *date8, const char *region,
                              const char *service, uint8_t key[32])
{
    derive_key(secret, date8, region, service, key);
}

void sigv4_signature_compute(const uint8_t key[32], const char *string_to_sign, size_t len,
                             char hex[65])
{
    struct hmac_key hk;
    uint8_t mac[32];
    hmac_key_init(&hk, "", 0, key, 32);
    hmac_run(&hk, string_to_sign, len, mac);
    hex_encode(mac, hex);
    wipe(&hk, sizeof hk);
}

/* ---- the signing-key cache ------------------------------------------------ */

/*
 * A slot is found by (day, region, service, access key id) and a fingerprint
 * of the secret. The fingerprint is SipHash-1-3 under a random key of the
 * cache's own, not SHA-256: it is computed on every signature, and one
 * SHA-256 block cost about 2% of a Converse signature. Keyed, 64 bits of
 * output tell secrets apart (a collision needs two secrets under one access
 * key id) and reveal nothing usable about a 40-character random secret.
 */
struct cache_slot {
    bool used;
    uint64_t last_use;
    char date8[9];
    char region[MAX_REGION + 1];
    char service[MAX_SERVICE + 1];
    char access_key_id[MAX_ACCESS_KEY_ID + 1];
    uint64_t secret_print;
    uint8_t key[32];
    struct hmac_key hk;
    /*
     * The HMAC of the string to sign after its first 64 bytes ("AWS4-HMAC-
     * SHA256\n", the amz date, the start of the scope): the same for every
     * request signed in the second sts_time_s, so one SHA-256 block fewer a
     * signature. sts_time_s is -1 while there is none.
     */
    int64_t sts_time_s;
    SHA256_CTX sts_head;
};

struct sigv4_key_cache {
    pthread_mutex_t lock;
    uint64_t clock;
    uint64_t print_key[2]; /* SipHash key for secret fingerprints */
    struct cache_slot slots[CACHE_SLOTS];
};

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1, v1 = ROTL64(v1, 13), v1 ^= v0, v0 = ROTL64(v0, 32);                              \
        v2 += v3, v3 = ROTL64(v3, 16), v3 ^= v2;                                                   \
        v0 += v3, v3 = ROTL64(v3, 21), v3 ^= v0;                                                   \
        v2 += v1, v1 = ROTL64(v1, 17), v1 ^= v2, v2 = ROTL64(v2, 32);                              \
    } while (0)

/* SipHash-1-3 (Aumasson and Bernstein; the variant Rust's hash maps use) of n bytes under k. */
static uint64_t siphash(const uint64_t k[2], const void *data, size_t n)
{
    const uint8_t *p = data;
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ULL, v1 = k[1] ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ULL, v3 = k[1] ^ 0x7465646279746573ULL;
    uint64_t b = (uint64_t)n << 56;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t m;
        memcpy(&m, p, 8); /* byte order only changes which fingerprint a secret gets */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < n; i++)
        b |= (uint64_t)p[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

struct sigv4_key_cache *sigv4_key_cache_new(void)
{
    struct sigv4_key_cache *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    /* Should the RNG fail, a zero key still tells secrets apart. */
    if (RAND_bytes((unsigned char *)c->print_key, sizeof c->print_key) != 1)
        memset(c->print_key, 0, sizeof c->print_key);
    return c;
}

void sigv4_key_cache_free(struct sigv4_key_cache *cache)
{
    if (!cache)
        return;
    pthread_mutex_destroy(&cache->lock);
    wipe(cache, sizeof *cache);
    free(cache);
}

/* What the slots are looked up by; the lengths were checked against the slot sizes. */
struct key_id {
    const char *akid, *date8, *region, *service;
    size_t akid_len, region_len, service_len;
    uint64_t secret_print;
};

static bool slot_is(const struct cache_slot *s, const struct key_id *id)
{
    return s->used && s->secret_print == id->secret_print && memcmp(s->date8, id->date8, 8) == 0 &&
           memcmp(s->region, id->region, id->region_len + 1) == 0 &&
           memcmp(s->service, id->service, id->service_len + 1) == 0 &&
           memcmp(s->access_key_id, id->akid, id->akid_len + 1) == 0;
}

/*
 * Under the lock: the slot holding this key (*hit), else the slot to replace
 * (a free one, or the least recently used).
 */
static struct cache_slot *find_slot(struct sigv4_key_cache *cache, const struct key_id *id,
                                    bool *hit)
{
    struct cache_slot *victim = &cache->slots[0];
    *hit = false;
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct cache_slot *s = &cache->slots[i];
        if (slot_is(s, id)) {
            *hit = true;
            return s;
        }
        if (victim->used && (!s->used || s->last_use < victim->last_use))
            victim = s;
    }
    return victim;
}

/*
 * The signing key as HMAC states (and raw bytes when key_out is set), cached
 * when possible. With sts_head (the first 64 bytes of the string to sign,
 * which time_s determines), also *sts: the HMAC state after them.
 */
static bool key_lookup(struct sigv4_key_cache *cache, const struct sigv4_credentials *creds,
                       const char *date8, const char *region, const char *service,
                       struct hmac_key *hk, uint8_t *key_out, int64_t time_s, const char *sts_head,
                       SHA256_CTX *sts)
{
    const char *secret = creds->secret_access_key;
    struct key_id id = {.akid = creds->access_key_id,
                        .date8 = date8,
                        .region = region,
                        .service = service,
                        .akid_len = strlen(creds->access_key_id),
                        .region_len = strlen(region),
                        .service_len = strlen(service)};
    uint8_t key[32];
    /* What does not fit a slot is derived every time rather than cached. */
    if (!cache || id.akid_len > MAX_ACCESS_KEY_ID || id.region_len > MAX_REGION ||
        id.service_len > MAX_SERVICE || strlen(date8) != 8) {
        derive_key(secret, date8, region, service, key);
        hmac_key_init(hk, "", 0, key, 32);
        if (key_out)
            memcpy(key_out, key, 32);
        wipe(key, sizeof key);
        if (sts_head) {
            *sts = hk->inner;
            SHA256_Update(sts, sts_head, 64);
        }
        return false;
    }
    id.secret_print = siphash(cache->print_key, secret, strlen(secret));

    pthread_mutex_lock(&cache->lock);
    bool hit;
    struct cache_slot *slot = find_slot(cache, &id, &hit);
    if (hit) {
        slot->last_use = ++cache->clock;
        *hk = slot->hk;
        if (key_out)
            memcpy(key_out, slot->key, 32);
        if (sts_head) {
            /* Once a second per slot, under the lock: one SHA-256 block. */
            if (slot->sts_time_s != time_s) {
                slot->sts_head = slot->hk.inner;
                SHA256_Update(&slot->sts_head, sts_head, 64);
                slot->sts_time_s = time_s;
            }
            *sts = slot->sts_head;
        }
        pthread_mutex_unlock(&cache->lock);
        return true;
    }
    pthread_mutex_unlock(&cache->lock);

    /* Derive outside the lock; two threads may both derive the same key, which is harmless. */
    derive_key(secret, date8, region, service, key);
    hmac_key_init(hk, "", 0, key, 32);
    if (key_out)
        memcpy(key_out, key, 32);
    if (sts_head) {
        *sts = hk->inner;
        SHA256_Update(sts, sts_head, 64);
    }

    pthread_mutex_lock(&cache->lock);
    /* Look again: another thread may have stored it, or taken the slot, meanwhile. */
    slot = find_slot(cache, &id, &hit);
    wipe(slot, sizeof *slot);
    slot->used = true;
    slot->last_use = ++cache->clock;
    memcpy(slot->date8, date8, 9);
    memcpy(slot->region, region, id.region_len + 1);
    memcpy(slot->service, service, id.service_len + 1);
    memcpy(slot->access_key_id, id.akid, id.akid_len + 1);
    slot->secret_print = id.secret_print;
    memcpy(slot->key, key, 32);
    slot->hk = *hk;
    slot->sts_time_s = -1;
    if (sts_head) {
        slot->sts_head = *sts;
        slot->sts_time_s = time_s;
    }
    pthread_mutex_unlock(&cache->lock);
    wipe(key, sizeof key);
    return false;
}

bool sigv4_key_cache_get(struct sigv4_key_cache *cache, const struct sigv4_credentials *creds,
                         const char *date8, const char *region, const char *service,
                         uint8_t key[32])
{
    struct hmac_key hk;
    bool hit = key_lookup(cache, creds, date8, region, service, &hk, key, 0, NULL, NULL);
    wipe(&hk, sizeof hk);
    return hit;
}

/* ---- output sink: a hash, a buffer, or both ------------------------------ */

struct sink {
    SHA256_CTX *sha;
    struct buf *text;
    size_t n;
    size_t flushed;  /* bytes that left tmp */
    size_t head_end; /* canonical request: where the method, path and query lines end */
    char tmp[2048];  /* holds a whole Converse canonical request */
};

static void sink_flush(struct sink *s)
{
    if (s->sha)
        SHA256_Update(s->sha, s->tmp, s->n);
    if (s->text)
        buf_append(s->text, s->tmp, s->n);
    s->flushed += s->n;
    s->n = 0;
}

static void put(struct sink *s, const void *p, size_t n)
{
    if (s->n + n > sizeof s->tmp) {
        sink_flush(s);
        if (n > sizeof s->tmp) {
            if (s->sha)
                SHA256_Update(s->sha, p, n);
            if (s->text)
                buf_append(s->text, p, n);
            s->flushed += n;
            return;
        }
    }
    memcpy(s->tmp + s->n, p, n);
    s->n += n;
}

static void put_c(struct sink *s, char c)
{
    if (s->n == sizeof s->tmp)
        sink_flush(s);
    s->tmp[s->n++] = c;
}

/*
 * Character classes by table: the canonical request is mostly runs of bytes
 * that go out unchanged, and a table lookup per byte finds where a run ends
 * more cheaply than a chain of comparisons.
 */
enum { C_UNRESERVED = 1, C_UPPER = 2, C_WS = 4 };

static const uint8_t char_class[256] = {
    ['\t'] = C_WS,        ['\n'] = C_WS,        ['\r'] = C_WS,        [' '] = C_WS,
    ['-'] = C_UNRESERVED, ['.'] = C_UNRESERVED, ['_'] = C_UNRESERVED, ['~'] = C_UNRESERVED,
    ['0'] = C_UNRESERVED, ['1'] = C_UNRESERVED, ['2'] = C_UNRESERVED, ['3'] = C_UNRESERVED,
    ['4'] = C_UNRESERVED, ['5'] = C_UNRESERVED, ['6'] = C_UNRESERVED, ['7'] = C_UNRESERVED,
    ['8'] = C_UNRESERVED, ['9'] = C_UNRESERVED,
#define UL(l, u) [l] = C_UNRESERVED, [u] = C_UNRESERVED | C_UPPER
    UL('a', 'A'),         UL('b', 'B'),         UL('c', 'C'),         UL('d', 'D'),
    UL('e', 'E'),         UL('f', 'F'),         UL('g', 'G'),         UL('h', 'H'),
    UL('i', 'I'),         UL('j', 'J'),         UL('k', 'K'),         UL('l', 'L'),
    UL('m', 'M'),         UL('n', 'N'),         UL('o', 'O'),         UL('p', 'P'),
    UL('q', 'Q'),         UL('r', 'R'),         UL('s', 'S'),         UL('t', 'T'),
    UL('u', 'U'),         UL('v', 'V'),         UL('w', 'W'),         UL('x', 'X'),
    UL('y', 'Y'),         UL('z', 'Z'),
#undef UL
};

static char lower(char c)
{
    return (char)(c | (char_class[(unsigned char)c] & C_UPPER ? 0x20 : 0));
}

/* Header names go out in lower case. */
static void put_lower(struct sink *s, const char *p, size_t n)
{
    while (n) {
        if (s->n == sizeof s->tmp)
            sink_flush(s);
        size_t k = sizeof s->tmp - s->n;
        if (k > n)
            k = n;
        for (size_t i = 0; i < k; i++)
            s->tmp[s->n + i] = lower(p[i]);
        s->n += k;
        p += k;
        n -= k;
    }
}

static void put_s(struct sink *s, const char *str)
{
    put(s, str, strlen(str));
}

/* ---- URI encoding --------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return char_class[c] & C_UNRESERVED;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool is_escape(const char *p, const char *end)
{
    return end - p >= 3 && p[0] == '%' && hexval((unsigned char)p[1]) >= 0 &&
           hexval((unsigned char)p[2]) >= 0;
}

size_t sigv4_uri_encode_byte(unsigned char c, char out[3])
{
    if (unreserved(c)) {
        out[0] = (char)c;
        return 1;
    }
    out[0] = '%';
    out[1] = HEXUP[c >> 4];
    out[2] = HEXUP[c & 15];
    return 3;
}

void sigv4_uri_encode(struct buf *out, const char *p, size_t n)
{
    buf_reserve(out, n);
    for (size_t i = 0; i < n; i++) {
        char e[3];
        buf_append(out, e, sigv4_uri_encode_byte((unsigned char)p[i], e));
    }
}

void sigv4_form_param_append(struct buf *out, const char *key, const char *value)
{
    if (out->len)
        buf_append_char(out, '&');
    sigv4_uri_encode(out, key, strlen(key));
    buf_append_char(out, '=');
    sigv4_uri_encode(out, value, strlen(value));
}

/* RFC 3986 encoding of n bytes (unreserved kept, all else %XX). */
static void put_encoded(struct sink *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        /* A run of unreserved bytes goes out in one copy. */
        size_t run = i;
        while (run < n && unreserved((unsigned char)p[run]))
            run++;
        if (run > i) {
            put(s, p + i, run - i);
            i = run;
            if (i == n)
                break;
        }
        char e[3];
        put(s, e, sigv4_uri_encode_byte((unsigned char)p[i++], e));
    }
}

/*
 * Iterates over the canonical (decoded, then re-encoded) form of one query key
 * or value, byte by byte, so that parameters sort and print without a copy.
 * A plain string is taken as decoded already.
 */
struct enc_it {
    const char *p, *end;
    bool plain;
    char pend[2];
    int npend;
};

static void enc_it_init(struct enc_it *it, const char *p, size_t n, bool plain)
{
    it->p = p;
    it->end = p + n;
    it->plain = plain;
    it->npend = 0;
}

static int enc_it_next(struct enc_it *it)
{
    if (it->npend) {
        int c = (unsigned char)it->pend[2 - it->npend];
        it->npend--;
        return c;
    }
    if (it->p == it->end)
        return -1;
    unsigned char c;
    if (!it->plain && is_escape(it->p, it->end)) {
        c = (unsigned char)(hexval((unsigned char)it->p[1]) << 4 | hexval((unsigned char)it->p[2]));
        it->p += 3;
    } else {
        c = (unsigned char)*it->p++;
    }
    char e[3];
    if (sigv4_uri_encode_byte(c, e) == 1)
        return c;
    it->pend[0] = e[1];
    it->pend[1] = e[2];
    it->npend = 2;
    return '%';
}

static void put_canonical_component(struct sink *s, const char *p, size_t n, bool plain)
{
    if (plain) {
        put_encoded(s, p, n);
        return;
    }
    struct enc_it it;
    enc_it_init(&it, p, n, false);
    int c;
    while ((c = enc_it_next(&it)) >= 0)
        put_c(s, (char)c);
}

/* ---- the prepared request ------------------------------------------------- */

struct hdr {
    const char *name;
    size_t name_len;
    const char *value;
    bool repeat;   /* same name as the one before it (after sorting) */
    bool lower;    /* the name has no upper-case letter: compared and copied as is */
    uint64_t key8; /* its first 8 bytes in lower case, big-endian, 0-padded: sorts most names */
    size_t verbatim_len; /* a value the signer made, to copy as is: its length; else 0 */
};

struct qparam {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    bool plain; /* decoded text to encode, not raw query text */
};

struct prep {
    const struct sigv4_request *req;
    const struct sigv4_params *params;
    enum sigv4_placement placement;
    char amz_date[17];
    char date8[9];
    char expires[24];
    const char *payload_hash;
    size_t payload_hash_len;
    size_t region_len, service_len; /* of params->region and ->service */
    bool have_sha_header;           /* the caller gave x-amz-content-sha256 */
    char body_hash[65];
    struct hdr h[SIGV4_MAX_HEADERS + 3];
    size_t nh;
    /* The signed header list, written once when it fits (sh_len 0 when not). */
    char sh[512];
    size_t sh_len;
    size_t hoisted_first; /* presign: q[] from here on is added to the query */
    struct qparam q[SIGV4_MAX_QUERY_PARAMS + SIGV4_MAX_HEADERS + 8];
    size_t nq;
};

/*
 * Header names are recognised from their first NAME_WORDS * 8 bytes in lower
 * case, taken once per header into integers ("words", byte k of the name at
 * bits 8k, 0 past its end): every name the signer treats specially is shorter
 * than that, so one is recognised by its length and up to three integer
 * compares. They stay in registers: written to memory byte by byte or in
 * overlapping pieces and read back whole, they stalled on store forwarding.
 */
#define NAME_WORDS 3

static uint64_t load64le(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static uint64_t load32le(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

/* Word i of the literal lit (n bytes); on a literal the compiler folds it to a constant. */
static uint64_t lit_word(const char *lit, size_t n, size_t i)
{
    uint64_t v = 0;
    for (size_t k = 8; k-- > 0;)
        v = v << 8 | (8 * i + k < n ? (uint8_t)lit[8 * i + k] : 0);
    return v;
}

/*
 * A byte mask of the ASCII upper-case letters in x: a byte is one when its low
 * 7 bits reach 'A' but not 'Z' + 1 and its top bit is clear. OR-ing the mask
 * shifted right by 2 (0x20 a byte) lower-cases them.
 */
static uint64_t upper_mask(uint64_t x)
{
    uint64_t h = x & 0x7f7f7f7f7f7f7f7fULL;
    return (h + 0x3f3f3f3f3f3f3f3fULL) & ~(h + 0x2525252525252525ULL) & ~x & 0x8080808080808080ULL;
}

/*
 * The first words of a name (len bytes) in lower case into w, and whether it
 * has an upper-case letter anywhere. Eight bytes a step; a partial last step
 * reads the name's last 8 bytes and shifts out those seen already, and a name
 * shorter than 8 is read as two overlapping 4-byte halves: no byte loops.
 */
static bool name_scan(const char *name, size_t len, uint64_t w[NAME_WORDS])
{
    for (size_t i = 0; i < NAME_WORDS; i++)
        w[i] = 0;
    if (len < 8) {
        uint64_t x;
        if (len >= 4) {
            x = load32le(name) | load32le(name + len - 4) << (8 * (len - 4));
        } else {
            x = 0;
            for (size_t k = 0; k < len; k++)
                x |= (uint64_t)(uint8_t)name[k] << (8 * k);
        }
        uint64_t upper = upper_mask(x);
        w[0] = x | upper >> 2;
        return upper != 0;
    }
    uint64_t any = 0;
    for (size_t i = 0;; i += 8) {
        uint64_t x =
            i + 8 <= len ? load64le(name + i) : load64le(name + len - 8) >> (8 * (i + 8 - len));
        uint64_t upper = upper_mask(x);
        any |= upper;
        if (i / 8 < NAME_WORDS)
            w[i / 8] = x | upper >> 2;
        if (i + 8 >= len)
            return any != 0;
    }
}

enum name_kind {
    NAME_OTHER,
    NAME_DROPPED,        /* authorization, date, x-amz-date: the signer sets its own */
    NAME_TOKEN,          /* x-amz-security-token */
    NAME_CONTENT_SHA256, /* x-amz-content-sha256 */
    NAME_HOST,
    NAME_UNSIGNABLE, /* the JS signer's ALWAYS_UNSIGNABLE_HEADERS, proxy-*, sec-* */
};

/* Does the name in w (len bytes) start with the literal lit? */
#define NAME_HAS_PREFIX(w, len, lit)                                                               \
    ((len) >= sizeof lit - 1 &&                                                                    \
     ((w)[0] & (~0ULL >> (64 - 8 * (sizeof lit - 1)))) == lit_word(lit, sizeof lit - 1, 0))

/* What a header name is to the signer, from its lower-cased words and its length. */
static enum name_kind name_kind(const uint64_t w[NAME_WORDS], size_t len)
{
#define IS(lit)                                                                                    \
    (w[0] == lit_word(lit, sizeof lit - 1, 0) && w[1] == lit_word(lit, sizeof lit - 1, 1) &&       \
     w[2] == lit_word(lit, sizeof lit - 1, 2))
    if (NAME_HAS_PREFIX(w, len, "proxy-") || NAME_HAS_PREFIX(w, len, "sec-"))
        return NAME_UNSIGNABLE;
    switch (len) {
    case 2:
        return IS("te") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 4:
        if (IS("date"))
            return NAME_DROPPED;
        if (IS("host"))
            return NAME_HOST;
        return IS("from") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 6:
        return IS("expect") || IS("pragma") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 7:
        return IS("referer") || IS("trailer") || IS("upgrade") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 10:
        if (IS("x-amz-date"))
            return NAME_DROPPED;
        return IS("connection") || IS("keep-alive") || IS("user-agent") ? NAME_UNSIGNABLE
                                                                        : NAME_OTHER;
    case 12:
        return IS("max-forwards") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 13:
        if (IS("authorization"))
            return NAME_DROPPED;
        return IS("cache-control") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 15:
        return IS("x-amzn-trace-id") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 17:
        return IS("transfer-encoding") ? NAME_UNSIGNABLE : NAME_OTHER;
    case 20:
        if (IS("x-amz-security-token"))
            return NAME_TOKEN;
        return IS("x-amz-content-sha256") ? NAME_CONTENT_SHA256 : NAME_OTHER;
    }
    return NAME_OTHER;
#undef IS
}

/* The sort key of a name from its first lower-cased word: its first byte most significant. */
static uint64_t name_key8(uint64_t w0)
{
    return __builtin_bswap64(w0);
}

static int name_cmp(const struct hdr *a, const struct hdr *b)
{
    if (a->key8 != b->key8)
        return a->key8 < b->key8 ? -1 : 1;
    /* Same first 8 bytes; names hold no NUL, so a shorter one ends there. */
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    if (n > 8) {
        if (a->lower && b->lower) {
            int r = memcmp(a->name + 8, b->name + 8, n - 8);
            if (r)
                return r;
        } else {
            for (size_t i = 8; i < n; i++) {
                unsigned char x = (unsigned char)lower(a->name[i]),
                              y = (unsigned char)lower(b->name[i]);
                if (x != y)
                    return x < y ? -1 : 1;
            }
        }
    }
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

/* A header the signer adds: its name is a lower-case literal. */
static struct hdr internal_hdr(const char *name, size_t len, const char *value, size_t verbatim_len)
{
    struct hdr h = {name, len, value, false, true, name_key8(lit_word(name, len, 0)), verbatim_len};
    return h;
}

static void put_name(struct sink *s, const struct hdr *h)
{
    if (h->lower)
        put(s, h->name, h->name_len);
    else
        put_lower(s, h->name, h->name_len);
}

static int component_cmp(const char *a, size_t an, bool ap, const char *b, size_t bn, bool bp)
{
    struct enc_it x, y;
    enc_it_init(&x, a, an, ap);
    enc_it_init(&y, b, bn, bp);
    for (;;) {
        int cx = enc_it_next(&x), cy = enc_it_next(&y);
        if (cx != cy)
            return cx < cy ? -1 : 1;
        if (cx < 0)
            return 0;
    }
}

static int qparam_cmp(const struct qparam *a, const struct qparam *b)
{
    int r = component_cmp(a->key, a->key_len, a->plain, b->key, b->key_len, b->plain);
    if (r)
        return r;
    return component_cmp(a->value, a->value_len, a->plain, b->value, b->value_len, b->plain);
}

/* Is the decoded key "x-amz-signature" in any case? */
static bool key_is_signature(const char *key, size_t len, bool plain)
{
    static const char want[] = "x-amz-signature";
    size_t i = 0;
    const char *p = key, *end = key + len;
    while (p < end) {
        char c;
        if (!plain && is_escape(p, end)) {
            c = (char)(hexval((unsigned char)p[1]) << 4 | hexval((unsigned char)p[2]));
            p += 3;
        } else {
            c = *p++;
        }
        if (i >= sizeof want - 1 || lower(c) != want[i])
            return false;
        i++;
    }
    return i == sizeof want - 1;
}

static enum assay_err add_qparam(struct prep *pr, const char *k, size_t kn, const char *v,
                                 size_t vn, bool plain, char *errbuf)
{
    if (key_is_signature(k, kn, plain))
        return ASSAY_OK;
    if (pr->nq == sizeof pr->q / sizeof pr->q[0])
        return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "sigv4: more than %d query parameters",
                                SIGV4_MAX_QUERY_PARAMS);
    pr->q[pr->nq++] = (struct qparam){k, kn, v, vn, plain};
    return ASSAY_OK;
}

static enum assay_err parse_query(struct prep *pr, const char *query, char *errbuf)
{
    if (!query)
        return ASSAY_OK;
    const char *p = query;
    size_t count = 0;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        if (end > p) {
            if (++count > SIGV4_MAX_QUERY_PARAMS)
                return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                        "sigv4: more than %d query parameters",
                                        SIGV4_MAX_QUERY_PARAMS);
            const char *eq = memchr(p, '=', (size_t)(end - p));
            enum assay_err err;
            if (eq)
                err = add_qparam(pr, p, (size_t)(eq - p), eq + 1, (size_t)(end - eq - 1), false,
                                 errbuf);
            else
                err = add_qparam(pr, p, (size_t)(end - p), "", 0, false, errbuf);
            if (err != ASSAY_OK)
                return err;
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return ASSAY_OK;
}

/* Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm). */
static void format_amz_date(int64_t t, char out[17])
{
    int64_t days = t / 86400, secs = t % 86400;
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    y += m <= 2;
    int v[6] = {(int)y,          (int)m, (int)d, (int)(secs / 3600), (int)(secs / 60 % 60),
                (int)(secs % 60)};
    char *o = out;
    for (int i = 3; i >= 0; i--)
        o[i] = (char)('0' + v[0] % 10), v[0] /= 10;
    o += 4;
    for (int i = 1; i < 6; i++) {
        if (i == 3)
            *o++ = 'T';
        *o++ = (char)('0' + v[i] / 10);
        *o++ = (char)('0' + v[i] % 10);
    }
    *o++ = 'Z';
    *o = '\0';
}

static enum assay_err check_params(const struct sigv4_request *req,
                                   const struct sigv4_params *params, char *errbuf)
{
    if (!req || !params || !req->method || !req->path)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sigv4: request without method or path");
    if (!params->creds.access_key_id || !params->creds.access_key_id[0] ||
        !params->creds.secret_access_key)
        return assay_errbuf_set(errbuf, ASSAY_ERR_NO_CREDENTIALS,
                                "sigv4: no access key id or secret access key");
    if (strlen(params->creds.access_key_id) > MAX_ACCESS_KEY_ID)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sigv4: access key id longer than %d bytes", MAX_ACCESS_KEY_ID);
    if (!params->region || !params->region[0] || strlen(params->region) > MAX_REGION ||
        strpbrk(params->region, "/\n"))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "sigv4: invalid region");
    if (!params->service || !params->service[0] || strlen(params->service) > MAX_SERVICE ||
        strpbrk(params->service, "/\n"))
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "sigv4: invalid service");
    /* Up to 9999-12-31T23:59:59Z, the last time the amz date format can hold. */
    if (params->time_s < 0 || params->time_s > 253402300799LL)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sigv4: signing time out of range");
    if (params->expires_s < 0 || params->expires_s > SIGV4_MAX_EXPIRES_S)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sigv4: presigned expiry must be 1 to %d seconds",
                                SIGV4_MAX_EXPIRES_S);
    if (req->header_count && !req->headers)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "sigv4: headers missing");
    if (req->body_len && !req->body)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "sigv4: body missing");
    return ASSAY_OK;
}

static bool has_token(const struct sigv4_params *params)
{
    return params->creds.session_token && params->creds.session_token[0];
}

static void put_signed_headers(struct sink *s, const struct prep *pr)
{
    if (pr->sh_len) {
        put(s, pr->sh, pr->sh_len);
        return;
    }
    for (size_t i = 0; i < pr->nh; i++) {
        if (pr->h[i].repeat)
            continue;
        if (i > 0)
            put_c(s, ';');
        put_name(s, &pr->h[i]);
    }
}

/*
 * Writes the signed header list into pr->sh when it fits: it goes into the
 * canonical request and into the Authorization header or the query.
 */
static void signed_headers_format(struct prep *pr)
{
    size_t n = 0;
    pr->sh_len = 0;
    for (size_t i = 0; i < pr->nh; i++) {
        const struct hdr *h = &pr->h[i];
        if (h->repeat)
            continue;
        if (n + 1 + h->name_len > sizeof pr->sh)
            return;
        if (i > 0)
            pr->sh[n++] = ';';
        if (h->lower)
            memcpy(pr->sh + n, h->name, h->name_len);
        else
            for (size_t k = 0; k < h->name_len; k++)
                pr->sh[n + k] = lower(h->name[k]);
        n += h->name_len;
    }
    pr->sh_len = n;
}

/*
 * Everything but the presign-only X-Amz-* query parameters: the date, the
 * payload hash, the signed headers sorted, the query parameters collected.
 */
static enum assay_err prepare(struct prep *pr, const struct sigv4_request *req,
                              const struct sigv4_params *params, enum sigv4_placement placement,
                              char *errbuf)
{
    enum assay_err err = check_params(req, params, errbuf);
    if (err != ASSAY_OK)
        return err;
    pr->req = req;
    pr->params = params;
    pr->placement = placement;
    pr->region_len = strlen(params->region);
    pr->service_len = strlen(params->service);
    pr->nh = 0;
    pr->nq = 0;
    /* The date changes once a second; formatting it took 3% of the non-hash instructions. */
    static _Thread_local struct {
        int64_t time_s;
        char amz_date[17];
    } last_date = {-1, ""};
    if (last_date.time_s != params->time_s) {
        format_amz_date(params->time_s, last_date.amz_date);
        last_date.time_s = params->time_s;
    }
    memcpy(pr->amz_date, last_date.amz_date, 17);
    memcpy(pr->date8, pr->amz_date, 8);
    pr->date8[8] = '\0';
    pr->payload_hash = NULL;

    if (req->header_count > SIGV4_MAX_HEADERS)
        return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "sigv4: more than %d headers",
                                SIGV4_MAX_HEADERS);
    err = parse_query(pr, req->query, errbuf);
    if (err != ASSAY_OK)
        return err;

    bool token = has_token(params);
    bool have_sha_header = false, have_host = false;
    pr->hoisted_first = pr->nq;
    for (size_t i = 0; i < req->header_count; i++) {
        const struct sigv4_header *h = &req->headers[i];
        if (!h->value)
            continue;
        if (!h->name || !h->name[0])
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "sigv4: header %zu has no name", i);
        size_t len = strlen(h->name);
        uint64_t w[NAME_WORDS];
        bool is_lower = !name_scan(h->name, len, w);
        enum name_kind kind = name_kind(w, len);
        /* The JS signer deletes these before signing and sets x-amz-date itself. */
        if (kind == NAME_DROPPED || (token && kind == NAME_TOKEN))
            continue;
        if (kind == NAME_CONTENT_SHA256 && !have_sha_header) {
            have_sha_header = true;
            pr->payload_hash = h->value;
        }
        if (placement == SIGV4_IN_QUERY && NAME_HAS_PREFIX(w, len, "x-amz-")) {
            err = add_qparam(pr, h->name, len, h->value, strlen(h->value), true, errbuf);
            if (err != ASSAY_OK)
                return err;
            continue;
        }
        if (kind == NAME_UNSIGNABLE)
            continue;
        if (kind == NAME_HOST)
            have_host = true;
        pr->h[pr->nh++] = (struct hdr){h->name, len, h->value, false, is_lower, name_key8(w[0]), 0};
    }
    pr->have_sha_header = have_sha_header;
    if (!have_host)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sigv4: the request has no host header");

    if (!pr->payload_hash && req->payload_hash)
        pr->payload_hash = req->payload_hash;
    if (!pr->payload_hash) {
        if (req->body_len == 0) {
            pr->payload_hash = SIGV4_EMPTY_SHA256;
        } else {
            uint8_t md[32];
            sha256(req->body, req->body_len, md);
            hex_encode(md, pr->body_hash);
            pr->payload_hash = pr->body_hash;
        }
    }
    pr->payload_hash_len = strlen(pr->payload_hash);
    if (pr->payload_hash_len > 64)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                "sigv4: payload hash longer than 64 characters");

    if (placement == SIGV4_IN_HEADER) {
        pr->h[pr->nh++] = internal_hdr("x-amz-date", 10, pr->amz_date, 16);
        if (token && !params->omit_session_token)
            pr->h[pr->nh++] =
                internal_hdr("x-amz-security-token", 20, params->creds.session_token, 0);
        if (params->sign_body && !have_sha_header)
            pr->h[pr->nh++] = internal_hdr("x-amz-content-sha256", 20, pr->payload_hash,
                                           pr->payload_hash == pr->body_hash ? 64 : 0);
    }

    /* Stable insertion sort: repeated names keep their order, to be joined with ','. */
    for (size_t i = 1; i < pr->nh; i++) {
        struct hdr t = pr->h[i];
        size_t j = i;
        while (j > 0 && name_cmp(&pr->h[j - 1], &t) > 0) {
            pr->h[j] = pr->h[j - 1];
            j--;
        }
        pr->h[j] = t;
    }
    for (size_t i = 1; i < pr->nh; i++)
        pr->h[i].repeat = name_cmp(&pr->h[i - 1], &pr->h[i]) == 0;
    signed_headers_format(pr);
    return ASSAY_OK;
}

/*
 * Does any of the n bytes at p lie below 0x21 (white space among them)? Eight
 * bytes a step: x - 0x21 in a byte borrows into its top bit only when the
 * byte is below 0x21 (bytes with the top bit set are masked out by ~x).
 */
static bool has_space_or_control(const char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, p + i, 8);
        if ((x - 0x21 * ones) & ~x & tops)
            return true;
    }
    for (; i < n; i++)
        if ((unsigned char)p[i] < 0x21)
            return true;
    return false;
}

/* Value with CR/LF as spaces, runs of white space folded to one, ends trimmed. */
static void put_header_value(struct sink *s, const char *v)
{
    /*
     * Most values have no white space at all: found by strlen and an 8-byte
     * scan (strcspn's SSE4.2 loop is slower), they go out in one copy.
     * Else strcspn finds the words and strspn is called only where white
     * space is.
     */
    size_t n = strlen(v);
    if (!has_space_or_control(v, n)) {
        put(s, v, n);
        return;
    }
    static const char ws[] = " \t\r\n";
    if (char_class[(unsigned char)*v] & C_WS)
        v += strspn(v, ws);
    while (*v) {
        size_t word = strcspn(v, ws);
        put(s, v, word);
        v += word;
        if (!*v)
            break;
        if (char_class[(unsigned char)v[1]] & C_WS)
            v += strspn(v, ws);
        else
            v++;
        if (*v)
            put_c(s, ' ');
    }
}

static enum assay_err put_path(struct sink *s, const char *path, bool normalize, char *errbuf)
{
    if (!path[0]) {
        put_c(s, '/');
        return ASSAY_OK;
    }
    size_t n = strlen(path);
    if (!normalize) {
        const char *end = path + n;
        for (const char *p = path; p < end; p++) {
            unsigned char c = (unsigned char)*p;
            if (unreserved(c) || c == '/') {
                put_c(s, (char)c);
            } else if (is_escape(p, end)) {
                put(s, p, 3);
                p += 2;
            } else {
                char e[3];
                put(s, e, sigv4_uri_encode_byte(c, e));
            }
        }
        return ASSAY_OK;
    }
    struct {
        const char *p;
        size_t n;
    } seg[MAX_PATH_SEGMENTS];
    size_t nseg = 0;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.')) {
            /* empty or "." segments vanish */
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            if (nseg)
                nseg--;
        } else {
            if (nseg == MAX_PATH_SEGMENTS)
                return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                        "sigv4: path of more than %d segments", MAX_PATH_SEGMENTS);
            seg[nseg].p = p;
            seg[nseg].n = len;
            nseg++;
        }
        if (!slash)
            break;
        p = slash + 1;
    }
    if (path[0] == '/')
        put_c(s, '/');
    for (size_t i = 0; i < nseg; i++) {
        if (i)
            put_c(s, '/');
        put_encoded(s, seg[i].p, seg[i].n);
    }
    if (nseg > 0 && path[n - 1] == '/')
        put_c(s, '/');
    return ASSAY_OK;
}

/*
 * The head of the canonical request (its method, path and query lines) for
 * the Authorization header depends only on the method, path and query given
 * and on no_normalize_path. The last one a thread built is kept with them, so
 * a run of calls of one API on one model (assay's traffic) skips the path's
 * normalisation and encoding. Nothing secret is in it: the query is the
 * caller's own, sent in the clear. Per thread, so without a lock.
 */
#define HEAD_RAW_MAX 256
#define HEAD_TEXT_MAX 512

static _Thread_local struct {
    bool used, normalize;
    size_t method_len, path_len, query_len;
    char raw[HEAD_RAW_MAX]; /* method, path and query back to back */
    size_t text_len;
    char text[HEAD_TEXT_MAX];
} head_memo;

static enum assay_err put_canonical_rest(struct sink *s, struct prep *pr);

/* The canonical request, into the sink. */
static enum assay_err put_canonical_request(struct sink *s, struct prep *pr, char *errbuf)
{
    const struct sigv4_request *req = pr->req;
    bool normalize = !pr->params->no_normalize_path;
    size_t method_len = strlen(req->method), path_len = strlen(req->path);
    size_t query_len = req->query ? strlen(req->query) : 0;
    bool memo = pr->placement == SIGV4_IN_HEADER && s->flushed + s->n == 0 &&
                method_len + path_len + query_len <= HEAD_RAW_MAX;
    if (memo && head_memo.used && head_memo.normalize == normalize &&
        head_memo.method_len == method_len && head_memo.path_len == path_len &&
        head_memo.query_len == query_len && memcmp(head_memo.raw, req->method, method_len) == 0 &&
        memcmp(head_memo.raw + method_len, req->path, path_len) == 0 &&
        (query_len == 0 ||
         memcmp(head_memo.raw + method_len + path_len, req->query, query_len) == 0)) {
        put(s, head_memo.text, head_memo.text_len);
        s->head_end = head_memo.text_len;
        return put_canonical_rest(s, pr);
    }
    put(s, req->method, method_len);
    put_c(s, '\n');
    enum assay_err err = put_path(s, req->path, normalize, errbuf);
    if (err != ASSAY_OK)
        return err;
    put_c(s, '\n');

    /* Sort a list of indexes, not the params: q[] order is the presigned output order. */
    uint16_t order[sizeof pr->q / sizeof pr->q[0]];
    for (size_t i = 0; i < pr->nq; i++) {
        size_t j = i;
        while (j > 0 && qparam_cmp(&pr->q[order[j - 1]], &pr->q[i]) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = (uint16_t)i;
    }
    for (size_t i = 0; i < pr->nq; i++) {
        const struct qparam *q = &pr->q[order[i]];
        if (i)
            put_c(s, '&');
        put_canonical_component(s, q->key, q->key_len, q->plain);
        put_c(s, '=');
        put_canonical_component(s, q->value, q->value_len, q->plain);
    }
    put_c(s, '\n');
    s->head_end = s->flushed + s->n;
    if (memo && s->flushed == 0 && s->n <= HEAD_TEXT_MAX) {
        head_memo.used = true;
        head_memo.normalize = normalize;
        head_memo.method_len = method_len;
        head_memo.path_len = path_len;
        head_memo.query_len = query_len;
        memcpy(head_memo.raw, req->method, method_len);
        memcpy(head_memo.raw + method_len, req->path, path_len);
        if (query_len)
            memcpy(head_memo.raw + method_len + path_len, req->query, query_len);
        memcpy(head_memo.text, s->tmp, s->n);
        head_memo.text_len = s->n;
    }
    return put_canonical_rest(s, pr);
}

/* The canonical request after its head: headers, signed header list, payload hash. */
static enum assay_err put_canonical_rest(struct sink *s, struct prep *pr)
{
    for (size_t i = 0; i < pr->nh; i++) {
        if (pr->h[i].repeat) {
            put_c(s, ',');
        } else {
            if (i > 0)
                put_c(s, '\n');
            put_name(s, &pr->h[i]);
            put_c(s, ':');
        }
        if (pr->h[i].verbatim_len)
            put(s, pr->h[i].value, pr->h[i].verbatim_len);
        else
            put_header_value(s, pr->h[i].value);
    }
    put_s(s, "\n\n");
    put_signed_headers(s, pr);
    put_c(s, '\n');
    put(s, pr->payload_hash, pr->payload_hash_len);
    return ASSAY_OK;
}

static void put_scope(struct sink *s, const struct prep *pr)
{
    put(s, pr->date8, 8);
    put_c(s, '/');
    put_s(s, pr->params->region);
    put_c(s, '/');
    put_s(s, pr->params->service);
    put_s(s, "/aws4_request");
}

/* The string to sign up to the hash: algorithm, amz date, scope (region and service checked). */
#define STS_HEAD_MAX (sizeof SIGV4_ALGORITHM + 17 + 8 + 1 + MAX_REGION + 1 + MAX_SERVICE + 14)

/* "<date8>/<region>/<service>/aws4_request" into out (at most STS_HEAD_MAX bytes), no NUL. */
static size_t scope_format(const struct prep *pr, char *out)
{
    size_t region_len = pr->region_len, service_len = pr->service_len;
    char *o = out;
    memcpy(o, pr->date8, 8);
    o[8] = '/';
    o += 9;
    memcpy(o, pr->params->region, region_len);
    o[region_len] = '/';
    o += region_len + 1;
    memcpy(o, pr->params->service, service_len);
    o += service_len;
    memcpy(o, "/aws4_request", 13);
    o += 13;
    return (size_t)(o - out);
}

static size_t sts_head_format(const struct prep *pr, char out[STS_HEAD_MAX])
{
    char *o = out;
    memcpy(o, SIGV4_ALGORITHM "\n", sizeof SIGV4_ALGORITHM);
    o += sizeof SIGV4_ALGORITHM;
    memcpy(o, pr->amz_date, 16);
    o[16] = '\n';
    o += 17;
    o += scope_format(pr, o);
    *o++ = '\n';
    return (size_t)(o - out);
}

/*
 * Presigning: the X-Amz-* parameters join the query. Their values live in
 * scratch (credential, then signed headers), which must not change afterwards.
 */
static void add_presign_params(struct prep *pr, struct buf *scratch)
{
    const struct sigv4_params *params = pr->params;
    buf_reset(scratch);
    struct sink s = {.text = scratch};
    put_s(&s, params->creds.access_key_id);
    put_c(&s, '/');
    put_scope(&s, pr);
    put_c(&s, '\0');
    put_signed_headers(&s, pr);
    sink_flush(&s);
    const char *cred = scratch->data;
    size_t cred_len = strlen(cred);
    const char *signed_headers = cred + cred_len + 1;
    snprintf(pr->expires, sizeof pr->expires, "%lld",
             (long long)(params->expires_s ? params->expires_s : 3600));

    /* Room is reserved in q[] beyond the parse limits for these. */
    struct qparam *q = &pr->q[pr->nq];
    q[0] = (struct qparam){"X-Amz-Algorithm", 15, SIGV4_ALGORITHM, 16, true};
    q[1] = (struct qparam){"X-Amz-Credential", 16, cred, cred_len, true};
    q[2] = (struct qparam){"X-Amz-Date", 10, pr->amz_date, 16, true};
    q[3] = (struct qparam){"X-Amz-SignedHeaders", 19, signed_headers, strlen(signed_headers), true};
    q[4] = (struct qparam){"X-Amz-Expires", 13, pr->expires, strlen(pr->expires), true};
    pr->nq += 5;
    if (has_token(params) && !params->omit_session_token) {
        const char *t = params->creds.session_token;
        pr->q[pr->nq++] = (struct qparam){"X-Amz-Security-Token", 20, t, strlen(t), true};
    }
}

enum assay_err sigv4_canonical_request_build(const struct sigv4_request *req,
                                             const struct sigv4_params *params,
                                             enum sigv4_placement placement, struct buf *out,
                                             char *errbuf)
{
    struct prep *pr = xmalloc(sizeof *pr);
    struct buf scratch = BUF_INIT;
    struct sink *s = xcalloc(1, sizeof *s);
    enum assay_err err = prepare(pr, req, params, placement, errbuf);
    if (err != ASSAY_OK)
        goto out;
    if (placement == SIGV4_IN_QUERY)
        add_presign_params(pr, &scratch);
    s->text = out;
    err = put_canonical_request(s, pr, errbuf);
    sink_flush(s);
out:
    buf_clear(&scratch);
    free(s);
    free(pr);
    return err;
}

enum assay_err sigv4_string_to_sign_build(const char *canonical_request, size_t len,
                                          const struct sigv4_params *params, struct buf *out,
                                          char *errbuf)
{
    struct sigv4_request req = {.method = "", .path = ""};
    enum assay_err err = check_params(&req, params, errbuf);
    if (err != ASSAY_OK)
        return err;
    struct prep pr = {.params = params};
    format_amz_date(params->time_s, pr.amz_date);
    memcpy(pr.date8, pr.amz_date, 8);
    uint8_t md[32];
    char hex[65];
    sha256(canonical_request, len, md);
    hex_encode(md, hex);
    struct sink s = {.text = out};
    put_s(&s, SIGV4_ALGORITHM "\n");
    put_s(&s, pr.amz_date);
    put_c(&s, '\n');
    put_scope(&s, &pr);
    put_c(&s, '\n');
    put_s(&s, hex);
    sink_flush(&s);
    return ASSAY_OK;
}

void sigv4_scope_append(const struct sigv4_params *params, struct buf *out)
{
    char amz_date[17];
    format_amz_date(params->time_s < 0 ? 0 : params->time_s, amz_date);
    buf_append(out, amz_date, 8);
    buf_appendf(out, "/%s/%s/aws4_request", params->region, params->service);
}

void sigv4_signed_init(struct sigv4_signed *s)
{
    memset(s, 0, sizeof *s);
    buf_init(&s->authorization);
    buf_init(&s->query);
}

void sigv4_signed_clear(struct sigv4_signed *s)
{
    if (!s)
        return;
    buf_clear(&s->authorization);
    buf_clear(&s->query);
    sigv4_signed_init(s);
}

/*
 * The SHA-256 state after the first 64 bytes of the last canonical request
 * this thread signed, when they were the method, the path and the query:
 * the same for every call of one API on one model, so one block fewer a
 * signature. The block holds nothing secret (headers are not in it; the
 * query is the caller's own, sent in the clear), and the state is per thread
 * because the key cache's lock would cost more than the block.
 */
static _Thread_local struct {
    bool used;
    char block[64];
    SHA256_CTX state;
} cr_head;

/* Hashes the canonical request cr into sha (just initialised), its first block from cr_head. */
static void cr_head_hash(SHA256_CTX *sha, const char *cr, size_t n)
{
    if (cr_head.used && memcmp(cr_head.block, cr, 64) == 0) {
        *sha = cr_head.state;
    } else {
        SHA256_Update(sha, cr, 64);
        memcpy(cr_head.block, cr, 64);
        cr_head.state = *sha;
        cr_head.used = true;
    }
    SHA256_Update(sha, cr + 64, n - 64);
}

/* Hashes the canonical request, builds the string to sign and signs it into pr->... out. */
static enum assay_err compute_signature(struct sigv4_key_cache *cache, struct prep *pr,
                                        struct sigv4_signed *out, char *errbuf)
{
    SHA256_CTX sha;
    SHA256_Init(&sha);
    struct sink s;
    s.sha = &sha;
    s.text = NULL;
    s.n = 0;
    s.flushed = 0;
    enum assay_err err = put_canonical_request(&s, pr, errbuf);
    if (err != ASSAY_OK)
        return err;
    if (s.flushed == 0 && s.head_end >= 64 && pr->placement == SIGV4_IN_HEADER) {
        /* The whole canonical request is in s.tmp, its first block method, path and query only. */
        cr_head_hash(&sha, s.tmp, s.n);
        s.n = 0;
    }
    sink_flush(&s);
    uint8_t md[32];
    SHA256_Final(md, &sha);

    /* The string to sign: its head ("AWS4-HMAC-SHA256\n<amz date>\n<scope>\n"), then the hash. */
    char sts[STS_HEAD_MAX + 65];
    size_t head_len = sts_head_format(pr, sts);
    hex_encode(md, sts + head_len);
    size_t sts_len = head_len + 64;
    struct hmac_key hk;
    SHA256_CTX mac;
    const struct sigv4_params *params = pr->params;
    if (head_len >= 64) {
        key_lookup(cache, &params->creds, pr->date8, params->region, params->service, &hk, NULL,
                   params->time_s, sts, &mac);
        SHA256_Update(&mac, sts + 64, sts_len - 64);
    } else {
        key_lookup(cache, &params->creds, pr->date8, params->region, params->service, &hk, NULL,
                   params->time_s, NULL, NULL);
        mac = hk.inner;
        SHA256_Update(&mac, sts, sts_len);
    }
    uint8_t sig[32];
    hmac_finish(&hk, &mac, sig);
    hex_encode(sig, out->signature);
    wipe(&hk, sizeof hk);
    wipe(&mac, sizeof mac);
    memcpy(out->amz_date, pr->amz_date, 17);
    memcpy(out->content_sha256, pr->payload_hash, pr->payload_hash_len + 1);
    return ASSAY_OK;
}

enum assay_err sigv4_request_sign(struct sigv4_key_cache *cache, const struct sigv4_request *req,
                                  const struct sigv4_params *params, struct sigv4_signed *out,
                                  char *errbuf)
{
    struct prep pr;
    enum assay_err err = prepare(&pr, req, params, SIGV4_IN_HEADER, errbuf);
    if (err != ASSAY_OK)
        return err;
    err = compute_signature(cache, &pr, out, errbuf);
    if (err != ASSAY_OK)
        return err;

    buf_reset(&out->authorization);
    buf_reset(&out->query);
    if (pr.sh_len) {
        /* Written in place: its parts' lengths are known, and the buffer keeps its room. */
        static const char cred[] = SIGV4_ALGORITHM " Credential=", shl[] = ", SignedHeaders=",
                          sig[] = ", Signature=";
        size_t akid_len = strlen(params->creds.access_key_id);
        char scope[STS_HEAD_MAX];
        size_t scope_len = scope_format(&pr, scope);
        size_t n = sizeof cred - 1 + akid_len + 1 + scope_len + sizeof shl - 1 + pr.sh_len +
                   sizeof sig - 1 + 64;
        buf_reserve(&out->authorization, n);
        char *o = out->authorization.data;
        memcpy(o, cred, sizeof cred - 1);
        o += sizeof cred - 1;
        memcpy(o, params->creds.access_key_id, akid_len);
        o[akid_len] = '/';
        o += akid_len + 1;
        memcpy(o, scope, scope_len);
        o += scope_len;
        memcpy(o, shl, sizeof shl - 1);
        o += sizeof shl - 1;
        memcpy(o, pr.sh, pr.sh_len);
        o += pr.sh_len;
        memcpy(o, sig, sizeof sig - 1);
        o += sizeof sig - 1;
        memcpy(o, out->signature, 64);
        o[64] = '\0';
        out->authorization.len = n;
    } else {
        struct sink s;
        s.sha = NULL;
        s.text = &out->authorization;
        s.n = 0;
        s.flushed = 0;
        put_s(&s, SIGV4_ALGORITHM " Credential=");
        put_s(&s, params->creds.access_key_id);
        put_c(&s, '/');
        put_scope(&s, &pr);
        put_s(&s, ", SignedHeaders=");
        put_signed_headers(&s, &pr);
        put_s(&s, ", Signature=");
        put(&s, out->signature, 64);
        sink_flush(&s);
    }

    size_t n = 0;
    out->add[n++] = (struct sigv4_header){"X-Amz-Date", out->amz_date};
    if (has_token(params))
        out->add[n++] = (struct sigv4_header){"X-Amz-Security-Token", params->creds.session_token};
    if (params->sign_body && !pr.have_sha_header)
        out->add[n++] = (struct sigv4_header){"X-Amz-Content-SHA256", out->content_sha256};
    out->add[n++] = (struct sigv4_header){"Authorization", out->authorization.data};
    out->add_count = n;
    return ASSAY_OK;
}

enum assay_err sigv4_request_presign(struct sigv4_key_cache *cache, const struct sigv4_request *req,
                                     const struct sigv4_params *params, struct sigv4_signed *out,
                                     char *errbuf)
{
    struct prep pr;
    enum assay_err err = prepare(&pr, req, params, SIGV4_IN_QUERY, errbuf);
    if (err != ASSAY_OK)
        return err;
    add_presign_params(&pr, &out->authorization);
    err = compute_signature(cache, &pr, out, errbuf);
    if (err != ASSAY_OK)
        return err;

    buf_reset(&out->query);
    struct sink s;
    s.sha = NULL;
    s.text = &out->query;
    s.n = 0;
    s.flushed = 0;
    if (req->query && req->query[0])
        put_s(&s, req->query);
    /* The hoisted headers and X-Amz-* parameters, in the order they were added. */
    for (size_t i = pr.hoisted_first; i < pr.nq; i++) {
        const struct qparam *q = &pr.q[i];
        if (s.n > 0 || out->query.len > 0)
            put_c(&s, '&');
        put_encoded(&s, q->key, q->key_len);
        put_c(&s, '=');
        put_encoded(&s, q->value, q->value_len);
    }
    if (has_token(params) && params->omit_session_token) {
        put_s(&s, "&X-Amz-Security-Token=");
        put_encoded(&s, params->creds.session_token, strlen(params->creds.session_token));
    }
    put_s(&s, "&X-Amz-Signature=");
    put(&s, out->signature, 64);
    sink_flush(&s);
    buf_reset(&out->authorization);
    out->add_count = 0;
    return ASSAY_OK;
}
