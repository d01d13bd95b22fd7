/*
 * server/sample_fast: a strict single-pass decoder of POSTed samples, tried
 * first by sample_batch_parse (server/sample.c). It walks the body once and
 * fills struct sample without building a jansson tree: about ten times
 * cheaper than json_loadb, which reads byte by byte through a stream
 * (bench/sample_parse).
 *
 * It handles the shapes clients send (sample.h lists the rules): every field,
 * strings with any escape and raw UTF-8, input as a string or as messages of
 * role and content (a string, or blocks holding only "text"), context as a
 * string or passages, tags, rubrics, timestamp as an integer or RFC 3339.
 * On anything else (a message or block with other members, an escaped key,
 * a number anywhere but timestamp, ...) and on every error, syntax or
 * validation, it gives up and returns false; the jansson parser then runs on
 * the same body and produces the result or the error. So this file only has
 * to be right about what it accepts: it must accept nothing jansson (with
 * JSON_REJECT_DUPLICATES, without JSON_ALLOW_NUL) or the validator refuses,
 * and what it accepts must decode to the same strings and the same sample.
 *
 * A sample it accepts owns one block (mem_): a copy of the sample's text,
 * from which sample_doc parses the document when someone needs it, then the
 * decoded strings the sample points at.
 */
#include "server/sample_private.h"

#include "common/alloc.h"
#include "common/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NONE SIZE_MAX /* an offset for an absent (or null) string */
#define MSG_PIECES_MAX 64

/* The top-level members, one bit each (duplicates give up). */
enum field {
    F_APP,
    F_OUTPUT,
    F_INPUT,
    F_CONTEXT,
    F_REFERENCE,
    F_MODEL_ID,
    F_ID,
    F_RUBRICS,
    F_TAGS,
    F_TRACE_ID,
    F_TIMESTAMP,
    F_FEEDBACK,
    F_FORCE,
    F_UNKNOWN
};

struct fp {
    const char *p, *end; /* the cursor and the end of the text being decoded */
    struct buf str;      /* decoded strings of the current sample, each NUL-terminated */
    struct buf text;     /* input or context being flattened */
};

static void ws(struct fp *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
        f->p++;
}

/* Skips whitespace, then takes c if it is next. */
static bool take(struct fp *f, char c)
{
    ws(f);
    if (f->p < f->end && *f->p == c) {
        f->p++;
        return true;
    }
    return false;
}

/* The literal word (true, false, null) at the cursor, whitespace skipped. */
static bool word(struct fp *f, const char *w, size_t n)
{
    ws(f);
    if ((size_t)(f->end - f->p) >= n && memcmp(f->p, w, n) == 0) {
        f->p += n;
        return true;
    }
    return false;
}

static bool peek(struct fp *f, char c)
{
    ws(f);
    return f->p < f->end && *f->p == c;
}

/*
 * True when one of the 8 bytes at p is a quote, a backslash, a control
 * character or not ASCII (no false negatives; a false positive only costs
 * the byte loop).
 */
static bool special8(const char *p)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t v;
    memcpy(&v, p, 8);
    uint64_t q = v ^ (ones * '"'), b = v ^ (ones * '\\');
    return ((v | ((v - ones * 0x20) & ~v) | ((q - ones) & ~q) | ((b - ones) & ~b)) & highs) != 0;
}

static bool plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v += c - '0';
        else if (c >= 'a' && c <= 'f')
            v += c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v += c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Length of the UTF-8 sequence at p (first byte >= 0x80) when it is one
 * jansson's utf8_check_first/utf8_check_full accept (no overlong form, no
 * surrogate, at most U+10FFFF, complete before end), else 0.
 */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char u = p[0];
    size_t n;
    uint32_t cp;
    if (u >= 0xC2 && u <= 0xDF) {
        n = 2;
        cp = u & 0x1F;
    } else if (u >= 0xE0 && u <= 0xEF) {
        n = 3;
        cp = u & 0x0F;
    } else if (u >= 0xF0 && u <= 0xF4) {
        n = 4;
        cp = u & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (n == 3 && cp < 0x800) ||
        (n == 4 && cp < 0x10000))
        return 0;
    return n;
}

/*
 * Decodes the string at the cursor (whitespace skipped, then its opening
 * quote) into f->str, NUL-terminated: *off its offset there, *len its bytes.
 * Gives up on what jansson refuses: control characters, bad escapes, lone
 * surrogates, invalid UTF-8, and \u0000 (no JSON_ALLOW_NUL).
 */
static bool str(struct fp *f, size_t *off, size_t *len)
{
    if (!take(f, '"'))
        return false;
    struct buf *b = &f->str;
    const char *p = f->p, *end = f->end;
    *off = b->len;
    for (;;) {
        /* A run of bytes that stand for themselves: ASCII and valid UTF-8. */
        const char *run = p;
        for (;;) {
            while (end - p >= 8 && !special8(p))
                p += 8;
            while (p < end && plain((unsigned char)*p))
                p++;
            if (p >= end || (unsigned char)*p < 0x80)
                break;
            size_t n = utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (!n)
                return false;
            p += n;
        }
        if (p > run)
            buf_append(b, run, (size_t)(p - run));
        if (p >= end)
            return false;
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            break;
        if (c < 0x20)
            return false;
        /* A backslash. */
        if (end - p < 2)
            return false;
        char e = p[1], o;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            o = e;
            break;
        case 'b':
            o = '\b';
            break;
        case 'f':
            o = '\f';
            break;
        case 'n':
            o = '\n';
            break;
        case 'r':
            o = '\r';
            break;
        case 't':
            o = '\t';
            break;
        case 'u': {
            if (end - p < 6)
                return false;
            int v = hex4(p + 2);
            if (v <= 0 || (v >= 0xDC00 && v <= 0xDFFF))
                return false; /* not hex, \u0000, or a lone low surrogate */
            uint32_t cp = (uint32_t)v;
            p += 6;
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                    return false;
                int lo = hex4(p + 2);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return false;
                cp = (((uint32_t)v - 0xD800) << 10) + ((uint32_t)lo - 0xDC00) + 0x10000;
                p += 6;
            }
            char u8[4];
            buf_append(b, u8, utf8_put(u8, cp));
            continue;
        }
        default:
            return false;
        }
        buf_append(b, &o, 1);
        p += 2;
    }
    *len = b->len - *off;
    buf_append(b, "", 1); /* the terminator, kept */
    f->p = p + 1;
    return true;
}

/*
 * The string at the cursor when it holds only plain ASCII (no escape):
 * *s and *n point into the text. For keys and enumerated values, which the
 * jansson parser compares after decoding; an escaped one gives up.
 */
static bool raw_str(struct fp *f, const char **s, size_t *n)
{
    if (!take(f, '"'))
        return false;
    const char *p = f->p;
    while (p < f->end && plain((unsigned char)*p))
        p++;
    if (p >= f->end || *p != '"')
        return false;
    *s = f->p;
    *n = (size_t)(p - f->p);
    f->p = p + 1;
    return true;
}

/* A key and its colon. */
static bool key(struct fp *f, const char **k, size_t *n)
{
    return raw_str(f, k, n) && take(f, ':');
}

static bool is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* After a member or element: 1 when a comma follows, 0 when close does, -1 else. */
static int sep(struct fp *f, char close)
{
    if (take(f, ','))
        return 1;
    return take(f, close) ? 0 : -1;
}

/* Drops the decoded strings from mark on. */
static void rewind_to(struct buf *b, size_t mark)
{
    b->len = mark;
    if (b->data)
        b->data[mark] = '\0';
}

/* A string member, or null (*off = NONE). */
static bool opt_str(struct fp *f, size_t *off)
{
    size_t len;
    if (word(f, "null", 4)) {
        *off = NONE;
        return true;
    }
    return str(f, off, &len);
}

static const char *at(const struct fp *f, size_t off)
{
    return f->str.data + off;
}

static void append_block(struct buf *t, const char *s)
{
    if (t->len)
        buf_append_str(t, "\n\n");
    buf_append_str(t, s);
}

/*
 * One message: {"role": "user"|"assistant", "content": string | [blocks]},
 * blocks {"text": string} or {} (other members give up). Its texts are
 * decoded into f->str from the mark on, in order, then flattened into
 * f->text as parse_messages does, and dropped from f->str.
 */
static bool message(struct fp *f)
{
    const char *role = NULL, *k;
    size_t role_n = 0, kn, mark = f->str.len, pieces = 0, off, len;
    bool have_content = false;
    if (!take(f, '{'))
        return false;
    for (;;) {
        if (!key(f, &k, &kn))
            return false;
        if (is(k, kn, "role") && !role) {
            if (!raw_str(f, &role, &role_n))
                return false;
            if (!is(role, role_n, "user") && !is(role, role_n, "assistant"))
                return false;
        } else if (is(k, kn, "content") && !have_content) {
            have_content = true;
            if (peek(f, '"')) {
                if (!str(f, &off, &len))
                    return false;
                pieces++;
            } else if (!take(f, '[')) {
                return false;
            } else if (!take(f, ']')) {
                for (;;) {
                    if (!take(f, '{'))
                        return false;
                    if (!take(f, '}')) {
                        if (!key(f, &k, &kn) || !is(k, kn, "text") || !str(f, &off, &len) ||
                            !take(f, '}'))
                            return false;
                        if (++pieces > MSG_PIECES_MAX)
                            return false;
                    }
                    int r = sep(f, ']');
                    if (r < 0)
                        return false;
                    if (r == 0)
                        break;
                }
            }
        } else {
            return false;
        }
        int r = sep(f, '}');
        if (r < 0)
            return false;
        if (r == 0)
            break;
    }
    if (!role || !have_content)
        return false;
    struct buf *t = &f->text;
    if (t->len)
        buf_append_str(t, "\n\n");
    buf_append_char(t, '[');
    buf_append(t, role, role_n);
    buf_append_char(t, ']');
    const char *s = at(f, mark);
    for (size_t i = 0; i < pieces; i++) {
        size_t n = strlen(s);
        buf_append_char(t, '\n');
        buf_append(t, s, n);
        s += n + 1;
    }
    rewind_to(&f->str, mark);
    return true;
}

/*
 * null (absent) or a string, copied into *out: 1 when the value was one of
 * those, 0 when it is neither (nothing read), -1 on a bad string.
 */
static int null_or_string(struct fp *f, char **out)
{
    size_t off, len, mark = f->str.len;
    if (word(f, "null", 4))
        return 1;
    if (!peek(f, '"'))
        return 0;
    if (!str(f, &off, &len))
        return -1;
    *out = xmemdup(at(f, off), len + 1);
    rewind_to(&f->str, mark);
    return 1;
}

/* input: null, a string, or messages; *out the flattened text (owned) or NULL. */
static bool input(struct fp *f, char **out)
{
    int got = null_or_string(f, out);
    if (got)
        return got > 0;
    if (!take(f, '[') || peek(f, ']'))
        return false; /* not an array, or no message */
    buf_reset(&f->text);
    for (size_t n = 0;; n++) {
        if (n == SAMPLE_MESSAGES_MAX || !message(f))
            return false;
        int r = sep(f, ']');
        if (r < 0)
            return false;
        if (r == 0)
            break;
    }
    *out = xmemdup(f->text.data, f->text.len + 1);
    return true;
}

/* context: null, a string, or an array of strings; *out as parse_context makes it. */
static bool context(struct fp *f, char **out)
{
    int got = null_or_string(f, out);
    if (got)
        return got > 0;
    size_t off, len, mark = f->str.len;
    if (!take(f, '['))
        return false;
    buf_reset(&f->text);
    if (!take(f, ']')) {
        for (;;) {
            if (!str(f, &off, &len))
                return false;
            append_block(&f->text, at(f, off));
            rewind_to(&f->str, mark);
            int r = sep(f, ']');
            if (r < 0)
                return false;
            if (r == 0)
                break;
        }
    }
    *out = f->text.len ? xmemdup(f->text.data, f->text.len + 1) : xstrdup("");
    return true;
}

/* tags: null, or an object of at most SAMPLE_TAGS_MAX string pairs within the limits. */
static bool tags(struct fp *f)
{
    size_t mark = f->str.len, keys[SAMPLE_TAGS_MAX], key_len[SAMPLE_TAGS_MAX], n = 0;
    if (word(f, "null", 4))
        return true;
    if (!take(f, '{'))
        return false;
    if (!take(f, '}')) {
        for (;;) {
            size_t ko, kl, vo, vl;
            if (n == SAMPLE_TAGS_MAX || !str(f, &ko, &kl) || !take(f, ':') || !str(f, &vo, &vl))
                return false;
            size_t kc = sample_utf8_chars(at(f, ko));
            if (kc == 0 || kc > SAMPLE_TAG_KEY_MAX ||
                sample_utf8_chars(at(f, vo)) > SAMPLE_TAG_VALUE_MAX)
                return false;
            for (size_t i = 0; i < n; i++)
                if (key_len[i] == kl && memcmp(at(f, keys[i]), at(f, ko), kl) == 0)
                    return false; /* duplicate key */
            keys[n] = ko;
            key_len[n++] = kl;
            int r = sep(f, '}');
            if (r < 0)
                return false;
            if (r == 0)
                break;
        }
    }
    rewind_to(&f->str, mark);
    return true;
}

/* rubrics: null, or 1-SAMPLE_RUBRICS_MAX distinct known names, kept in f->str. */
static bool rubrics(struct fp *f, const struct sample_parse_opts *o, size_t *offs, size_t *n)
{
    *n = 0;
    if (word(f, "null", 4))
        return true;
    if (!take(f, '[') || peek(f, ']'))
        return false;
    for (;;) {
        size_t off, len;
        if (*n == SAMPLE_RUBRICS_MAX || !str(f, &off, &len))
            return false;
        const char *name = at(f, off);
        if (!sample_rubric_name_valid(name))
            return false;
        for (size_t j = 0; j < *n; j++)
            if (strcmp(at(f, offs[j]), name) == 0)
                return false;
        if (o && o->rubric_known && !o->rubric_known(o->rubric_ctx, name))
            return false;
        offs[(*n)++] = off;
        int r = sep(f, ']');
        if (r < 0)
            return false;
        if (r == 0)
            return true;
    }
}

/*
 * timestamp: null, a non-negative integer within range (jansson's grammar:
 * no leading zero; a fraction or exponent makes a real, which gives up at
 * the separator), or an RFC 3339 string. *is_int says which.
 */
static bool timestamp(struct fp *f, int64_t *ms, bool *is_int)
{
    *is_int = false;
    if (word(f, "null", 4))
        return true;
    if (peek(f, '"')) {
        size_t off, len, mark = f->str.len;
        if (!str(f, &off, &len) || !sample_timestamp_text_ms(at(f, off), ms))
            return false;
        rewind_to(&f->str, mark);
        return true;
    }
    const char *p = f->p;
    if (p >= f->end || *p < '0' || *p > '9')
        return false; /* also '-': "-0" is 0 to jansson; rare, left to it */
    int64_t v = 0;
    size_t digits = 0;
    while (p < f->end && *p >= '0' && *p <= '9') {
        if (++digits > 15) /* > SAMPLE_TIMESTAMP_MS_MAX, and no overflow below */
            return false;
        v = v * 10 + (*p++ - '0');
    }
    if ((digits > 1 && f->p[0] == '0') || v > SAMPLE_TIMESTAMP_MS_MAX)
        return false;
    f->p = p;
    *ms = v;
    *is_int = true;
    return true;
}

static enum field field_of(const char *k, size_t n)
{
    static const char *const names[] = {[F_APP] = "app",
                                        [F_OUTPUT] = "output",
                                        [F_INPUT] = "input",
                                        [F_CONTEXT] = "context",
                                        [F_REFERENCE] = "reference",
                                        [F_MODEL_ID] = "model_id",
                                        [F_ID] = "id",
                                        [F_RUBRICS] = "rubrics",
                                        [F_TAGS] = "tags",
                                        [F_TRACE_ID] = "trace_id",
                                        [F_TIMESTAMP] = "timestamp",
                                        [F_FEEDBACK] = "feedback",
                                        [F_FORCE] = "force"};
    for (int i = 0; i < F_UNKNOWN; i++)
        if (is(k, n, names[i]))
            return (enum field)i;
    return F_UNKNOWN;
}

/* What one sample object decodes to before it is laid out in its block. */
struct decoded {
    unsigned present; /* members present (null or not), one bit per enum field */
    size_t app, output, reference, model_id, id, trace_id; /* offsets in f->str, or NONE */
    size_t rubrics[SAMPLE_RUBRICS_MAX], n_rubrics;
    int64_t timestamp_ms;
    bool timestamp_int;
    enum sample_feedback feedback;
    bool force;
};

/* The members of the object at the cursor, syntax and types checked. */
static bool members(struct fp *f, const struct sample_parse_opts *o, struct decoded *d,
                    struct sample *s)
{
    if (!take(f, '{') || peek(f, '}'))
        return false; /* {} lacks app */
    for (;;) {
        const char *k, *v;
        size_t kn, vn;
        if (!key(f, &k, &kn))
            return false;
        enum field fld = field_of(k, kn);
        if (fld == F_UNKNOWN || (d->present & (1u << fld)))
            return false; /* unknown or duplicate */
        d->present |= 1u << fld;
        bool ok;
        switch (fld) {
        case F_APP:
            ok = str(f, &d->app, &vn);
            break;
        case F_OUTPUT:
            ok = str(f, &d->output, &vn);
            break;
        case F_INPUT:
            ok = input(f, &s->input);
            break;
        case F_CONTEXT:
            ok = context(f, &s->context);
            break;
        case F_REFERENCE:
            ok = opt_str(f, &d->reference);
            break;
        case F_MODEL_ID:
            ok = opt_str(f, &d->model_id);
            break;
        case F_ID:
            ok = opt_str(f, &d->id);
            break;
        case F_RUBRICS:
            ok = rubrics(f, o, d->rubrics, &d->n_rubrics);
            break;
        case F_TAGS:
            ok = tags(f);
            break;
        case F_TRACE_ID:
            ok = opt_str(f, &d->trace_id);
            break;
        case F_TIMESTAMP:
            ok = timestamp(f, &d->timestamp_ms, &d->timestamp_int);
            break;
        case F_FEEDBACK:
            if (word(f, "null", 4)) {
                ok = true;
            } else {
                ok = raw_str(f, &v, &vn);
                if (ok && is(v, vn, "positive"))
                    d->feedback = SAMPLE_FEEDBACK_POSITIVE;
                else if (ok && is(v, vn, "negative"))
                    d->feedback = SAMPLE_FEEDBACK_NEGATIVE;
                else
                    ok = false;
            }
            break;
        case F_FORCE:
            if (word(f, "true", 4))
                d->force = ok = true;
            else
                ok = word(f, "false", 5) || word(f, "null", 4);
            break;
        default:
            ok = false;
        }
        if (!ok)
            return false;
        int r = sep(f, '}');
        if (r < 0)
            return false;
        if (r == 0)
            return true;
    }
}

/*
 * The sample object at the cursor into *out, normalised as parse_owned does
 * it; raw when its text is the body's own (a single object, an NDJSON line)
 * rather than an array element's. header_trace: the X-Amzn-Trace-Id header
 * when valid, else NULL.
 */
static bool one(struct fp *f, const struct sample_parse_opts *o, const char *header_trace, bool raw,
                struct sample *out)
{
    struct sample s = {0};
    struct decoded d = {.app = NONE,
                        .output = NONE,
                        .reference = NONE,
                        .model_id = NONE,
                        .id = NONE,
                        .trace_id = NONE,
                        .timestamp_ms = o ? o->now_ms : 0};
    bool ok = false;
    rewind_to(&f->str, 0);
    ws(f);
    const char *src = f->p;
    if (!members(f, o, &d, &s))
        goto out;
    size_t src_len = (size_t)(f->p - src);
    if (d.app == NONE || d.output == NONE || !sample_app_valid(at(f, d.app)))
        goto out;
    if (d.model_id != NONE && !sample_model_id_valid(at(f, d.model_id)))
        goto out;
    if (d.id != NONE && !sample_id_valid(at(f, d.id)))
        goto out;
    if (d.trace_id != NONE && !sample_trace_id_valid(at(f, d.trace_id)))
        goto out;

    /* Normalisation, decision for decision as in parse_owned. */
    if (raw) {
        s.raw = src;
        s.raw_len = src_len;
        s.raw_add_id = !(d.present & (1u << F_ID));
        s.raw_add_trace_id = !(d.present & (1u << F_TRACE_ID));
        s.raw_add_timestamp = !(d.present & (1u << F_TIMESTAMP));
    }
    char gen[37];
    if (d.id == NONE) {
        if (!s.raw_add_id)
            s.raw = NULL; /* "id": null is replaced, not added */
        sample_id_generate(gen);
        s.id_generated = true;
    }
    bool from_header = d.trace_id == NONE && header_trace;
    if (from_header) {
        if (!s.raw_add_trace_id)
            s.raw = NULL;
    } else {
        s.raw_add_trace_id = false;
    }
    if ((d.present & (1u << F_TIMESTAMP)) && !d.timestamp_int)
        s.raw = NULL; /* an RFC 3339 string or null is rewritten in place */
    s.timestamp_ms = d.timestamp_ms;
    s.feedback = d.feedback;
    s.force = d.force;

    /* The block: the text, the decoded strings, a generated id, the header's trace id. */
    size_t header_len = from_header ? strlen(header_trace) + 1 : 0;
    size_t strs_len = f->str.len;
    char *m = xmalloc(src_len + strs_len + (s.id_generated ? sizeof gen : 0) + header_len);
    memcpy(m, src, src_len);
    char *strs = m + src_len, *tail = strs + strs_len;
    memcpy(strs, f->str.data, strs_len);
    s.mem_ = m;
    s.mem_src_len_ = src_len;
    s.app = strs + d.app;
    s.output = strs + d.output;
    s.reference = d.reference != NONE ? strs + d.reference : NULL;
    s.model_id = d.model_id != NONE ? strs + d.model_id : NULL;
    if (s.id_generated) {
        memcpy(tail, gen, sizeof gen);
        s.id = tail;
        tail += sizeof gen;
    } else {
        s.id = strs + d.id;
    }
    if (from_header) {
        memcpy(tail, header_trace, header_len);
        s.trace_id = tail;
    } else if (d.trace_id != NONE) {
        s.trace_id = strs + d.trace_id;
    }
    if (d.n_rubrics) {
        s.rubrics = xcalloc(d.n_rubrics, sizeof *s.rubrics);
        for (size_t i = 0; i < d.n_rubrics; i++)
            s.rubrics[i] = strs + d.rubrics[i];
        s.n_rubrics = d.n_rubrics;
    }
    *out = s;
    memset(&s, 0, sizeof s);
    ok = true;
out:
    sample_clear(&s);
    return ok;
}

bool sample_batch_parse_fast(const char *body, size_t len, enum sample_format fmt,
                             const struct sample_parse_opts *o, struct sample_batch *out)
{
    struct fp f = {.str = BUF_INIT, .text = BUF_INIT};
    size_t cap = 0, max = o && o->max_batch ? o->max_batch : 1000;
    const char *header_trace = o && o->header_trace_id && sample_trace_id_valid(o->header_trace_id)
                                   ? o->header_trace_id
                                   : NULL;
    bool ok = false;
    struct sample s;
    out->items = NULL;
    out->n = 0;

    if (fmt == SAMPLE_FORMAT_NDJSON) {
        /* Lines as the jansson parser cuts and trims them. */
        size_t pos = 0, a, z;
        while (sample_ndjson_line(body, len, &pos, &a, &z)) {
            if (out->n >= max)
                goto out;
            f.p = body + a;
            f.end = body + z;
            if (!one(&f, o, header_trace, true, &s))
                goto out;
            sample_batch_push(out, &cap, &s);
            ws(&f);
            if (f.p != f.end)
                goto out;
        }
    } else {
        f.p = body;
        f.end = body + len;
        if (peek(&f, '{')) {
            if (!one(&f, o, header_trace, true, &s))
                goto out;
            sample_batch_push(out, &cap, &s);
        } else {
            if (!take(&f, '[') || peek(&f, ']'))
                goto out; /* another value, or no sample */
            for (;;) {
                if (out->n >= max || !peek(&f, '{') || !one(&f, o, header_trace, false, &s))
                    goto out;
                sample_batch_push(out, &cap, &s);
                int r = sep(&f, ']');
                if (r < 0)
                    goto out;
                if (r == 0)
                    break;
            }
        }
        ws(&f);
        if (f.p != f.end)
            goto out;
    }
    ok = out->n > 0;
out:
    buf_clear(&f.str);
    buf_clear(&f.text);
    if (!ok)
        sample_batch_clear(out);
    return ok;
}

/*
 * The stored text of a sample of the fast parser whose own text cannot be
 * spliced (sample_doc_text): what json_dumps(doc, JSON_COMPACT) writes for
 * the document sample_doc would build, without building it. jansson's
 * dump_string escapes " and \ and control characters (\b \f \n \r \t, else
 * \u00XX in upper case) and writes everything else as it is; objects keep
 * their members in insertion order, "," and ":" without spaces.
 */
static void dump_str(struct buf *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_reserve(o, n + 2);
    buf_append_char(o, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append(o, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            buf_append(o, "\\\"", 2);
            break;
        case '\\':
            buf_append(o, "\\\\", 2);
            break;
        case '\b':
            buf_append(o, "\\b", 2);
            break;
        case '\f':
            buf_append(o, "\\f", 2);
            break;
        case '\n':
            buf_append(o, "\\n", 2);
            break;
        case '\r':
            buf_append(o, "\\r", 2);
            break;
        case '\t':
            buf_append(o, "\\t", 2);
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_append(o, esc, sizeof esc);
        }
        }
    }
    buf_append(o, s + run, n - run);
    buf_append_char(o, '"');
}

/* A string of the text, decoded then written as dump_str does. */
static bool dump_text_str(struct fp *f, struct buf *o)
{
    size_t off, len, mark = f->str.len;
    if (!str(f, &off, &len))
        return false;
    dump_str(o, at(f, off), len);
    rewind_to(&f->str, mark);
    return true;
}

/* Any value the fast parser accepts below the top level (no number there). */
static bool dump_value(struct fp *f, struct buf *o, int depth)
{
    if (depth > 8)
        return false;
    ws(f);
    if (f->p >= f->end)
        return false;
    char c = *f->p;
    if (c == '"')
        return dump_text_str(f, o);
    if (word(f, "true", 4) || word(f, "false", 5) || word(f, "null", 4)) {
        buf_append_str(o, c == 't' ? "true" : c == 'f' ? "false" : "null");
        return true;
    }
    bool obj = c == '{';
    if (!obj && c != '[')
        return false;
    char close = obj ? '}' : ']';
    f->p++;
    buf_append_char(o, c);
    if (take(f, close)) {
        buf_append_char(o, close);
        return true;
    }
    for (bool first = true;; first = false) {
        if (!first)
            buf_append_char(o, ',');
        if (obj && (!dump_text_str(f, o) || !take(f, ':')))
            return false;
        if (obj)
            buf_append_char(o, ':');
        if (!dump_value(f, o, depth + 1))
            return false;
        int r = sep(f, close);
        if (r < 0)
            return false;
        if (r == 0)
            break;
    }
    buf_append_char(o, close);
    return true;
}

char *sample_fast_doc_text(const struct sample *s, size_t *len)
{
    struct fp f = {.p = s->mem_, .end = s->mem_ + s->mem_src_len_, .str = BUF_INIT};
    struct buf o = BUF_INIT;
    bool has_id = false, has_trace = false, has_ts = false, ok = false;
    buf_reserve(&o, s->mem_src_len_ + 128);
    if (!take(&f, '{'))
        goto out;
    buf_append_char(&o, '{');
    for (bool first = true;; first = false) {
        const char *k;
        size_t kn;
        if (!first)
            buf_append_char(&o, ',');
        if (!key(&f, &k, &kn))
            goto out;
        dump_str(&o, k, kn); /* plain ASCII, as the fast parser requires */
        buf_append_char(&o, ':');
        enum field fld = field_of(k, kn);
        if (fld == F_ID && s->id_generated) {
            has_id = true;
            if (!word(&f, "null", 4))
                goto out;
            dump_str(&o, s->id, strlen(s->id));
        } else if (fld == F_TRACE_ID && word(&f, "null", 4)) {
            has_trace = true;
            if (s->trace_id)
                dump_str(&o, s->trace_id, strlen(s->trace_id));
            else
                buf_append_str(&o, "null");
        } else if (fld == F_TIMESTAMP) {
            has_ts = true;
            ws(&f);
            while (f.p < f.end && *f.p != ',' && *f.p != '}' && *f.p != '"')
                f.p++; /* an integer or null */
            if (f.p < f.end && *f.p == '"') {
                size_t off, sl;
                if (!str(&f, &off, &sl))
                    goto out;
            }
            buf_appendf(&o, "%lld", (long long)s->timestamp_ms);
        } else {
            has_id |= fld == F_ID;
            has_trace |= fld == F_TRACE_ID;
            if (!dump_value(&f, &o, 1))
                goto out;
        }
        int r = sep(&f, '}');
        if (r < 0)
            goto out;
        if (r == 0)
            break;
    }
    if (!has_id) {
        buf_append_str(&o, ",\"id\":");
        dump_str(&o, s->id, strlen(s->id));
    }
    if (!has_trace && s->trace_id) {
        buf_append_str(&o, ",\"trace_id\":");
        dump_str(&o, s->trace_id, strlen(s->trace_id));
    }
    if (!has_ts)
        buf_appendf(&o, ",\"timestamp\":%lld", (long long)s->timestamp_ms);
    buf_append_char(&o, '}');
    ok = true;
out:
    buf_clear(&f.str);
    if (!ok) {
        buf_clear(&o);
        return NULL;
    }
    return buf_detach(&o, len);
}
