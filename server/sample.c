/*
 * server/sample: the validator of POSTed samples and its jansson parser, the
 * reference behaviour; called by server/http_api for POST /v1/samples and by
 * the fuzz targets tests/fuzz/fuzz_sample*.c. sample_batch_parse tries the
 * fast parser (server/sample_fast.c) first and runs the jansson parser when
 * it gives up. The rules are listed in sample.h.
 */
#include "server/sample.h"
#include "server/sample_private.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define TIMESTAMP_MS_MAX SAMPLE_TIMESTAMP_MS_MAX

static const char *const known_fields[] = {
    "app",     "output", "input",    "context",   "reference", "model_id", "id",
    "rubrics", "tags",   "trace_id", "timestamp", "feedback",  "force",    NULL};

__attribute__((format(printf, 4, 5))) static enum assay_err
fail(struct sample_error *e, long index, const char *field, const char *fmt, ...)
{
    if (e) {
        e->code = ASSAY_ERR_INVALID_ARGUMENT;
        e->index = index;
        snprintf(e->field, sizeof e->field, "%s", field ? field : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->message, sizeof e->message, fmt, ap);
        va_end(ap);
    }
    return ASSAY_ERR_INVALID_ARGUMENT;
}

/* Characters (code points) of valid UTF-8, as jansson guarantees. */
size_t sample_utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool all_of(const char *s, size_t min, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (c != 0 && strchr(extra, c) != NULL);
        if (!ok)
            return false;
    }
    return true;
}

bool sample_app_valid(const char *s)
{
    return s && all_of(s, 1, SAMPLE_APP_MAX, "._-");
}

bool sample_id_valid(const char *s)
{
    return s && all_of(s, 1, SAMPLE_ID_MAX, "._:-");
}

bool sample_rubric_name_valid(const char *s)
{
    return s && all_of(s, 1, SAMPLE_RUBRIC_NAME_MAX, "-._");
}

static bool hex_run(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* "1-" 8 hex "-" 24 hex, exactly n == 35 characters. */
static bool bare_trace_id(const char *s, size_t n)
{
    return n == 35 && s[0] == '1' && s[1] == '-' && hex_run(s + 2, 8) && s[10] == '-' &&
           hex_run(s + 11, 24);
}

bool sample_trace_id_valid(const char *s)
{
    if (!s)
        return false;
    size_t len = strlen(s);
    if (len == 0 || len > SAMPLE_TRACE_ID_MAX)
        return false;
    if (bare_trace_id(s, len))
        return true;
    int roots = 0;
    const char *p = s;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *end = strchr(p, ';');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p)
            return false;
        for (const char *k = p; k < eq; k++)
            if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z')))
                return false;
        for (const char *v = eq + 1; v < p + n; v++)
            if ((unsigned char)*v <= 0x20 || (unsigned char)*v >= 0x7f)
                return false;
        if ((size_t)(eq - p) == 4 && memcmp(p, "Root", 4) == 0) {
            if (!bare_trace_id(eq + 1, n - 5))
                return false;
            roots++;
        }
        if (!end)
            break;
        p = end + 1;
    }
    return roots == 1;
}

/*
 * A UUIDv7 (RFC 9562, section 5.7): the Unix time in milliseconds in the first
 * 48 bits, then random bits. Ids generated close in time sort next to each
 * other, so that their entries in the store's (app, id) index land on the same
 * few pages: random UUIDv4 ids put each insert on a page of its own, which
 * cost ~13 us of CPU a sample more (bench/ingest, IDS=uuid4).
 */
void sample_id_generate(char out[37])
{
    int64_t ms = clock_now_ms(NULL);
    unsigned char r[16];
    for (int i = 0; i < 6; i++)
        r[i] = (unsigned char)((uint64_t)ms >> (40 - 8 * i));
    /* The 10 bytes after the time are random (6 bits of them become the
     * version and the variant below). */
    size_t got = 6;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof r) {
        /* No kernel randomness (not expected on Linux >= 3.17): mix time, pid and a counter. */
        static _Atomic unsigned long long counter;
        unsigned long long x =
            (unsigned long long)ms ^ ((unsigned long long)getpid() << 32) ^ ++counter;
        for (size_t i = 6; i < sizeof r; i++) {
            x += 0x9E3779B97F4A7C15ULL;
            unsigned long long z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            r[i] = (unsigned char)(z ^ (z >> 31));
        }
    }
    r[6] = (unsigned char)((r[6] & 0x0F) | 0x70); /* version 7 */
    r[8] = (unsigned char)((r[8] & 0x3F) | 0x80); /* variant 10 */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < sizeof r; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 15];
    }
    out[o] = '\0';
}

const char *sample_feedback_name(enum sample_feedback f)
{
    switch (f) {
    case SAMPLE_FEEDBACK_POSITIVE:
        return "positive";
    case SAMPLE_FEEDBACK_NEGATIVE:
        return "negative";
    default:
        return NULL;
    }
}

enum assay_err sample_format_from_content_type(const char *ct, enum sample_format *out)
{
    *out = SAMPLE_FORMAT_JSON;
    if (!ct || !*ct)
        return ASSAY_OK;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
        *out = SAMPLE_FORMAT_JSON;
    else if ((n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0) ||
             (n == 18 && strncasecmp(ct, "application/ndjson", n) == 0))
        *out = SAMPLE_FORMAT_NDJSON;
    else
        return ASSAY_ERR_UNSUPPORTED_MEDIA;
    /* Parameters: only charset, and only UTF-8 (what JSON is). */
    const char *p = ct + n;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        if (!*p)
            break;
        size_t m = strcspn(p, ";");
        if (m >= 8 && strncasecmp(p, "charset=", 8) == 0) {
            const char *v = p + 8;
            size_t vn = m - 8;
            while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
                vn--;
            if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
                v++;
                vn -= 2;
            }
            if (!((vn == 5 && strncasecmp(v, "utf-8", 5) == 0) ||
                  (vn == 4 && strncasecmp(v, "utf8", 4) == 0)))
                return ASSAY_ERR_UNSUPPORTED_MEDIA;
        }
        p += m;
    }
    return ASSAY_OK;
}

/* An optional string member: NULL when absent or null; error when another type. */
static enum assay_err opt_string(json_t *obj, const char *key, long index, const char **out,
                                 struct sample_error *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return ASSAY_OK;
    if (!json_is_string(v))
        return fail(e, index, key, "%s must be a string", key);
    *out = json_string_value(v);
    return ASSAY_OK;
}

static void append_block_text(struct buf *b, const char *text)
{
    if (b->len)
        buf_append_str(b, "\n\n");
    buf_append_str(b, text);
}

/* input as Converse-style messages, flattened into "[role]\ntext" paragraphs. */
static enum assay_err parse_messages(json_t *arr, long index, struct buf *text,
                                     struct sample_error *e)
{
    size_t n = json_array_size(arr);
    char field[96];
    if (n == 0)
        return fail(e, index, "input", "input messages must not be empty");
    if (n > SAMPLE_MESSAGES_MAX)
        return fail(e, index, "input", "input holds more than %d messages", SAMPLE_MESSAGES_MAX);
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(arr, i);
        if (!json_is_object(m)) {
            snprintf(field, sizeof field, "input[%zu]", i);
            return fail(e, index, field, "a message must be an object");
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            snprintf(field, sizeof field, "input[%zu].role", i);
            return fail(e, index, field, "role must be \"user\" or \"assistant\"");
        }
        json_t *content = json_object_get(m, "content");
        if (text->len)
            buf_append_str(text, "\n\n");
        buf_appendf(text, "[%s]", role);
        if (json_is_string(content)) {
            buf_append_char(text, '\n');
            buf_append_str(text, json_string_value(content));
            continue;
        }
        if (!json_is_array(content)) {
            snprintf(field, sizeof field, "input[%zu].content", i);
            return fail(e, index, field, "content must be a string or an array of blocks");
        }
        for (size_t j = 0; j < json_array_size(content); j++) {
            json_t *blk = json_array_get(content, j);
            json_t *t = json_object_get(blk, "text");
            if (!json_is_object(blk) || (t && !json_is_string(t))) {
                snprintf(field, sizeof field, "input[%zu].content[%zu]", i, j);
                return fail(e, index, field,
                            "a content block must be an object; its text a string");
            }
            /* Other blocks (image, document, toolUse, ...) are kept in doc, not judged. */
            if (t) {
                buf_append_char(text, '\n');
                buf_append_str(text, json_string_value(t));
            }
        }
    }
    return ASSAY_OK;
}

static enum assay_err parse_context(json_t *v, long index, struct buf *text, struct sample_error *e)
{
    if (json_is_string(v)) {
        buf_append_str(text, json_string_value(v));
        return ASSAY_OK;
    }
    if (!json_is_array(v))
        return fail(e, index, "context", "context must be a string or an array of strings");
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *p = json_array_get(v, i);
        if (!json_is_string(p)) {
            char field[96];
            snprintf(field, sizeof field, "context[%zu]", i);
            return fail(e, index, field, "a passage must be a string");
        }
        append_block_text(text, json_string_value(p));
    }
    return ASSAY_OK;
}

static enum assay_err parse_tags(json_t *v, long index, struct sample_error *e)
{
    if (!json_is_object(v))
        return fail(e, index, "tags", "tags must be an object of strings");
    if (json_object_size(v) > SAMPLE_TAGS_MAX)
        return fail(e, index, "tags", "tags holds more than %d pairs", SAMPLE_TAGS_MAX);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        char field[96];
        snprintf(field, sizeof field, "tags.%.64s", key);
        size_t kn = sample_utf8_chars(key);
        if (kn == 0 || kn > SAMPLE_TAG_KEY_MAX)
            return fail(e, index, field, "a tag key must be 1-%d characters", SAMPLE_TAG_KEY_MAX);
        if (!json_is_string(val))
            return fail(e, index, field, "a tag value must be a string");
        if (sample_utf8_chars(json_string_value(val)) > SAMPLE_TAG_VALUE_MAX)
            return fail(e, index, field, "a tag value must be at most %d characters",
                        SAMPLE_TAG_VALUE_MAX);
    }
    return ASSAY_OK;
}

static enum assay_err parse_rubrics(json_t *v, long index, const struct sample_parse_opts *o,
                                    struct sample *s, struct sample_error *e)
{
    size_t n = json_array_size(v);
    if (!json_is_array(v) || n == 0 || n > SAMPLE_RUBRICS_MAX)
        return fail(e, index, "rubrics", "rubrics must be an array of 1-%d rubric names",
                    SAMPLE_RUBRICS_MAX);
    s->rubrics = xcalloc(n, sizeof *s->rubrics);
    for (size_t i = 0; i < n; i++) {
        char field[96];
        snprintf(field, sizeof field, "rubrics[%zu]", i);
        const char *name = json_string_value(json_array_get(v, i));
        if (!sample_rubric_name_valid(name))
            return fail(e, index, field, "a rubric name must be a string of 1-64 [A-Za-z0-9._-]");
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->rubrics[j], name) == 0)
                return fail(e, index, field, "rubric named twice");
        if (o && o->rubric_known && !o->rubric_known(o->rubric_ctx, name))
            return fail(e, index, field, "no rubric is named \"%s\"", name);
        s->rubrics[i] = name;
        s->n_rubrics = i + 1;
    }
    return ASSAY_OK;
}

static enum assay_err parse_timestamp(json_t *v, long index, int64_t *ms, struct sample_error *e)
{
    if (json_is_integer(v)) {
        json_int_t t = json_integer_value(v);
        if (t < 0 || t > TIMESTAMP_MS_MAX)
            return fail(e, index, "timestamp", "timestamp in epoch milliseconds is out of range");
        *ms = (int64_t)t;
        return ASSAY_OK;
    }
    const char *s = json_string_value(v);
    if (!s || !sample_timestamp_text_ms(s, ms))
        return fail(e, index, "timestamp",
                    "timestamp must be RFC 3339 (2026-11-27T01:02:03Z) or epoch milliseconds");
    return ASSAY_OK;
}

bool sample_timestamp_text_ms(const char *s, int64_t *ms)
{
    size_t n = strlen(s);
    /* RFC 3339: extended form with a zone ("Z" or "+hh:mm"). */
    bool shaped = n >= 20 && s[4] == '-' && s[7] == '-' && (s[10] == 'T' || s[10] == 't') &&
                  (s[n - 1] == 'Z' || s[n - 1] == 'z' ||
                   (s[n - 3] == ':' && (s[n - 6] == '+' || s[n - 6] == '-')));
    int64_t t;
    if (!shaped || clock_parse_iso8601(s, &t) != 0 || t < 0 || t > TIMESTAMP_MS_MAX)
        return false;
    *ms = t;
    return true;
}

bool sample_model_id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SAMPLE_MODEL_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

void sample_clear(struct sample *s)
{
    if (!s)
        return;
    json_decref(s->doc);
    free(s->mem_);
    free(s->input);
    free(s->context);
    free(s->rubrics);
    memset(s, 0, sizeof *s);
}

/*
 * Validates obj, which the sample takes a reference to (it must not be shared:
 * the id, trace_id and timestamp are written into it).
 */
static enum assay_err parse_owned(json_t *obj, const char *raw, size_t raw_len, long index,
                                  const struct sample_parse_opts *o, struct sample *out,
                                  struct sample_error *e);

enum assay_err sample_parse_object(const json_t *obj, long index, const struct sample_parse_opts *o,
                                   struct sample *out, struct sample_error *e)
{
    json_t *copy = json_deep_copy(obj);
    enum assay_err err = parse_owned(copy, NULL, 0, index, o, out, e);
    json_decref(copy);
    return err;
}

/* JSON's insignificant whitespace. */
static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A member the normalisation may add: absent (spliceable), or present. */
static bool absent(json_t *obj, const char *key)
{
    return json_object_get(obj, key) == NULL;
}

/*
 * raw (may be NULL): obj's text in the body, which sample_doc_text may splice
 * into; kept only when every member normalisation writes is either added
 * (absent before) or left as it was.
 */
static enum assay_err parse_owned(json_t *obj, const char *raw, size_t raw_len, long index,
                                  const struct sample_parse_opts *o, struct sample *out,
                                  struct sample_error *e)
{
    enum assay_err err = ASSAY_OK;
    struct buf text = BUF_INIT;
    struct sample s = {0};
    memset(out, 0, sizeof *out);
    if (!json_is_object(obj)) {
        err = fail(e, index, "", "a sample must be a JSON object");
        goto out;
    }
    s.doc = json_incref(obj);
    json_t *d = s.doc;
    while (raw && raw_len && json_space(raw[raw_len - 1]))
        raw_len--;
    while (raw && raw_len && json_space(raw[0])) {
        raw++;
        raw_len--;
    }
    if (raw && raw_len >= 2 && raw[0] == '{' && raw[raw_len - 1] == '}') {
        s.raw = raw;
        s.raw_len = raw_len;
        s.raw_add_id = absent(d, "id");
        s.raw_add_trace_id = absent(d, "trace_id");
        s.raw_add_timestamp = absent(d, "timestamp");
    }

    const char *key;
    json_t *v;
    json_object_foreach(d, key, v)
    {
        bool known = false;
        for (const char *const *k = known_fields; *k && !known; k++)
            known = strcmp(*k, key) == 0;
        if (!known) {
            char field[96];
            snprintf(field, sizeof field, "%.80s", key);
            err = fail(e, index, field, "unknown field");
            goto out;
        }
    }

    s.app = json_string_value(json_object_get(d, "app"));
    if (!s.app) {
        err = fail(e, index, "app", "app is required (a string)");
        goto out;
    }
    if (!sample_app_valid(s.app)) {
        err =
            fail(e, index, "app", "app must be 1-%d characters of [A-Za-z0-9._-]", SAMPLE_APP_MAX);
        goto out;
    }
    s.output = json_string_value(json_object_get(d, "output"));
    if (!s.output) {
        err = fail(e, index, "output", "output is required (a string)");
        goto out;
    }

    v = json_object_get(d, "input");
    if (v && !json_is_null(v)) {
        buf_reset(&text);
        if (json_is_string(v))
            buf_append_str(&text, json_string_value(v));
        else if (json_is_array(v)) {
            if ((err = parse_messages(v, index, &text, e)) != ASSAY_OK)
                goto out;
        } else {
            err = fail(e, index, "input", "input must be a string or Converse-style messages");
            goto out;
        }
        s.input = buf_detach(&text, NULL);
        if (!s.input)
            s.input = xstrdup("");
    }

    v = json_object_get(d, "context");
    if (v && !json_is_null(v)) {
        buf_reset(&text);
        if ((err = parse_context(v, index, &text, e)) != ASSAY_OK)
            goto out;
        s.context = buf_detach(&text, NULL);
        if (!s.context)
            s.context = xstrdup("");
    }

    if ((err = opt_string(d, "reference", index, &s.reference, e)) != ASSAY_OK)
        goto out;
    if ((err = opt_string(d, "model_id", index, &s.model_id, e)) != ASSAY_OK)
        goto out;
    if (s.model_id && !sample_model_id_valid(s.model_id)) {
        err = fail(e, index, "model_id",
                   "model_id must be 1-%d printable ASCII characters without spaces",
                   SAMPLE_MODEL_ID_MAX);
        goto out;
    }

    if ((err = opt_string(d, "id", index, &s.id, e)) != ASSAY_OK)
        goto out;
    if (s.id)
        s.raw_add_id = false;
    if (s.id && !sample_id_valid(s.id)) {
        err = fail(e, index, "id", "id must be 1-%d characters of [A-Za-z0-9._:-]", SAMPLE_ID_MAX);
        goto out;
    }
    if (!s.id) {
        if (!s.raw_add_id)
            s.raw = NULL; /* "id": null is replaced, not added */
        char gen[37];
        sample_id_generate(gen);
        json_object_set_new(d, "id", json_string(gen));
        s.id = json_string_value(json_object_get(d, "id"));
        s.id_generated = true;
    }

    v = json_object_get(d, "rubrics");
    if (v && !json_is_null(v) && (err = parse_rubrics(v, index, o, &s, e)) != ASSAY_OK)
        goto out;

    v = json_object_get(d, "tags");
    if (v && !json_is_null(v) && (err = parse_tags(v, index, e)) != ASSAY_OK)
        goto out;

    if ((err = opt_string(d, "trace_id", index, &s.trace_id, e)) != ASSAY_OK)
        goto out;
    if (s.trace_id && !sample_trace_id_valid(s.trace_id)) {
        err = fail(e, index, "trace_id",
                   "trace_id must be an X-Ray trace header (Root=1-8hex-24hex;...) or id");
        goto out;
    }
    if (!s.trace_id && o && o->header_trace_id && sample_trace_id_valid(o->header_trace_id)) {
        if (!s.raw_add_trace_id)
            s.raw = NULL; /* "trace_id": null is replaced, not added */
        json_object_set_new(d, "trace_id", json_string(o->header_trace_id));
        s.trace_id = json_string_value(json_object_get(d, "trace_id"));
    } else {
        s.raw_add_trace_id = false;
    }

    s.timestamp_ms = o ? o->now_ms : 0;
    v = json_object_get(d, "timestamp");
    if (v && !json_is_null(v) && (err = parse_timestamp(v, index, &s.timestamp_ms, e)) != ASSAY_OK)
        goto out;
    if (v && !json_is_integer(v))
        s.raw = NULL; /* an RFC 3339 string or null is rewritten in place */
    json_object_set_new(d, "timestamp", json_integer((json_int_t)s.timestamp_ms));

    v = json_object_get(d, "feedback");
    if (v && !json_is_null(v)) {
        const char *f = json_string_value(v);
        if (f && strcmp(f, "positive") == 0)
            s.feedback = SAMPLE_FEEDBACK_POSITIVE;
        else if (f && strcmp(f, "negative") == 0)
            s.feedback = SAMPLE_FEEDBACK_NEGATIVE;
        else {
            err = fail(e, index, "feedback", "feedback must be \"positive\" or \"negative\"");
            goto out;
        }
    }

    v = json_object_get(d, "force");
    if (v && !json_is_null(v)) {
        if (!json_is_boolean(v)) {
            err = fail(e, index, "force", "force must be a boolean");
            goto out;
        }
        s.force = json_is_true(v);
    }

    *out = s;
    memset(&s, 0, sizeof s);
out:
    buf_clear(&text);
    sample_clear(&s);
    return err;
}

bool sample_is_fast(const struct sample *s)
{
    return s->mem_ != NULL;
}

/*
 * A new reference to the document of a sample of the fast parser: its text
 * parsed, then normalised by the same calls, in the same order, as
 * parse_owned makes (json_object_set_new keeps a replaced member's place and
 * appends a new one), so that it is the document the jansson parser builds.
 */
static json_t *doc_build(const struct sample *s)
{
    json_t *d = json_loadb(s->mem_, s->mem_src_len_, JSON_REJECT_DUPLICATES, NULL);
    /* The fast parser accepted this text, so jansson does (fuzz_sample_diff);
     * out of memory aborts. Anything else is a bug, not an input error. */
    if (!json_is_object(d))
        abort();
    if (s->id_generated)
        json_object_set_new(d, "id", json_string(s->id));
    json_t *t = json_object_get(d, "trace_id");
    if (s->trace_id && (!t || json_is_null(t)))
        json_object_set_new(d, "trace_id", json_string(s->trace_id));
    json_object_set_new(d, "timestamp", json_integer((json_int_t)s->timestamp_ms));
    return d;
}

json_t *sample_doc(struct sample *s)
{
    if (!s->doc && s->mem_)
        s->doc = doc_build(s);
    return s->doc;
}

bool sample_ndjson_line(const char *body, size_t len, size_t *pos, size_t *a, size_t *z)
{
    while (*pos < len) {
        const char *nl = memchr(body + *pos, '\n', len - *pos);
        size_t end = nl ? (size_t)(nl - body) : len;
        size_t x = *pos, y = end;
        while (x < y && (body[x] == ' ' || body[x] == '\t' || body[x] == '\r'))
            x++;
        while (y > x && (body[y - 1] == ' ' || body[y - 1] == '\t' || body[y - 1] == '\r'))
            y--;
        *pos = end + 1;
        if (x < y) {
            *a = x;
            *z = y;
            return true;
        }
    }
    return false;
}

char *sample_doc_text(const struct sample *s, size_t *len)
{
    if (!s->raw) {
        char *fast = s->doc || !s->mem_ ? NULL : sample_fast_doc_text(s, len);
        if (fast)
            return fast;
        json_t *built = s->doc ? NULL : s->mem_ ? doc_build(s) : NULL;
        char *text = json_dumps(built ? built : s->doc, JSON_COMPACT);
        json_decref(built);
        if (!text)
            text = xstrdup("{}"); /* not expected: doc is a valid object */
        *len = strlen(text);
        return text;
    }
    /*
     * The client's text up to its closing brace, then ,"member":value for
     * each member normalisation added, in the order it added them (as
     * json_dumps would list them: jansson keeps insertion order). The
     * strings are validated ASCII, escaped all the same (a trace header may
     * hold a quote).
     */
    struct buf b = BUF_INIT;
    buf_append(&b, s->raw, s->raw_len - 1);
    if (s->raw_add_id) {
        buf_append_str(&b, ",\"id\":\"");
        buf_append_json_escaped(&b, s->id, strlen(s->id));
        buf_append_char(&b, '"');
    }
    if (s->raw_add_trace_id) {
        buf_append_str(&b, ",\"trace_id\":\"");
        buf_append_json_escaped(&b, s->trace_id, strlen(s->trace_id));
        buf_append_char(&b, '"');
    }
    if (s->raw_add_timestamp)
        buf_appendf(&b, ",\"timestamp\":%lld", (long long)s->timestamp_ms);
    buf_append_char(&b, '}');
    return buf_detach(&b, len);
}

void sample_batch_clear(struct sample_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++)
        sample_clear(&b->items[i]);
    free(b->items);
    b->items = NULL;
    b->n = 0;
}

static enum assay_err syntax(struct sample_error *e, long index, const json_error_t *je)
{
    if (e) {
        e->code = ASSAY_ERR_PARSE;
        e->index = index;
        e->field[0] = '\0';
        snprintf(e->message, sizeof e->message, "JSON at line %d column %d: %s", je->line,
                 je->column, je->text);
    }
    return ASSAY_ERR_PARSE;
}

void sample_batch_push(struct sample_batch *b, size_t *cap, const struct sample *s)
{
    if (b->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        b->items = xrealloc(b->items, *cap * sizeof *b->items);
    }
    b->items[b->n++] = *s;
}

static void error_reset(struct sample_error *e)
{
    if (e) {
        e->code = ASSAY_OK;
        e->index = -1;
        e->field[0] = e->message[0] = '\0';
    }
}

enum assay_err sample_batch_parse(const char *body, size_t len, enum sample_format fmt,
                                  const struct sample_parse_opts *o, struct sample_batch *out,
                                  struct sample_error *e)
{
    if (sample_batch_parse_fast(body, len, fmt, o, out)) {
        error_reset(e);
        return ASSAY_OK;
    }
    return sample_batch_parse_jansson(body, len, fmt, o, out, e);
}

enum assay_err sample_batch_parse_jansson(const char *body, size_t len, enum sample_format fmt,
                                          const struct sample_parse_opts *o,
                                          struct sample_batch *out, struct sample_error *e)
{
    enum assay_err err = ASSAY_OK;
    json_t *root = NULL;
    size_t cap = 0;
    size_t max = o && o->max_batch ? o->max_batch : 1000;
    json_error_t je;
    out->items = NULL;
    out->n = 0;
    error_reset(e);

    if (fmt == SAMPLE_FORMAT_NDJSON) {
        size_t pos = 0, a, z;
        while (sample_ndjson_line(body, len, &pos, &a, &z)) {
            long index = (long)out->n;
            if (out->n >= max) {
                err = fail(e, index, "", "a request may carry at most %zu samples", max);
                goto out;
            }
            json_t *line = json_loadb(body + a, z - a, JSON_REJECT_DUPLICATES, &je);
            if (!line) {
                err = syntax(e, index, &je);
                goto out;
            }
            struct sample s;
            err = parse_owned(line, body + a, z - a, index, o, &s, e);
            json_decref(line);
            if (err != ASSAY_OK)
                goto out;
            sample_batch_push(out, &cap, &s);
        }
    } else {
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!root) {
            err = syntax(e, -1, &je);
            goto out;
        }
        if (json_is_object(root)) {
            struct sample s;
            if ((err = parse_owned(root, body, len, 0, o, &s, e)) != ASSAY_OK)
                goto out;
            sample_batch_push(out, &cap, &s);
        } else if (json_is_array(root)) {
            size_t n = json_array_size(root);
            if (n > max) {
                err = fail(e, -1, "", "a request may carry at most %zu samples; this one has %zu",
                           max, n);
                goto out;
            }
            for (size_t i = 0; i < n; i++) {
                struct sample s;
                if ((err = parse_owned(json_array_get(root, i), NULL, 0, (long)i, o, &s, e)) !=
                    ASSAY_OK)
                    goto out;
                sample_batch_push(out, &cap, &s);
            }
        } else {
            err = fail(e, -1, "", "the body must be a sample object or an array of them");
            goto out;
        }
    }
    if (out->n == 0)
        err = fail(e, -1, "", "the request carries no sample");
out:
    json_decref(root);
    if (err != ASSAY_OK)
        sample_batch_clear(out);
    return err;
}
