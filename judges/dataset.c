/*
 * judges/dataset: the loader of golden sets and calibration sets
 * (datasets/README.md). A file is split into lines, each non-blank,
 * non-comment line parsed as one JSON object and checked field by field, so
 * that the first broken rule is reported with its file, line and field; ids
 * are kept in a small hash table to refuse a duplicate naming both lines.
 * Strict like judges/rubric: an unknown key is refused, so a misspelt
 * "refrence" is an error instead of an item graded without its reference.
 */
#include "judges/dataset.h"

#include "common/alloc.h"
#include "common/buf.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where errors go: every message starts with file and line. */
struct ctx {
    const char *path;
    size_t line;
    char *errbuf;
};

static enum assay_err fail(const struct ctx *c, enum assay_err err, const char *field,
                           const char *what)
{
    if (c->line)
        return assay_errbuf_set(c->errbuf, err, "%s:%zu: %s: %s", c->path, c->line, field, what);
    return assay_errbuf_set(c->errbuf, err, "%s: %s: %s", c->path, field, what);
}

static enum assay_err invalid(const struct ctx *c, const char *field, const char *what)
{
    return fail(c, ASSAY_ERR_INVALID_ARGUMENT, field, what);
}

/* Unicode code points in a UTF-8 string (jansson has checked the encoding). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            n++;
    return n;
}

static bool id_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DATASET_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

/* A JSON string without NUL; empty allowed only when allow_empty. */
static const char *text_value(const json_t *v, bool allow_empty)
{
    if (!json_is_string(v))
        return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (strlen(s) != n || (n == 0 && !allow_empty))
        return NULL;
    return s;
}

/* The value under key, with JSON null counted as absent. */
static json_t *get(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* --- id index: open addressing over item indices ------------------------ */

struct id_index {
    size_t *slot; /* item index + 1; 0 is empty */
    size_t cap;   /* a power of two */
    size_t n;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static void index_put(struct id_index *ix, const struct dataset_item *items, size_t i)
{
    size_t mask = ix->cap - 1, k = (size_t)hash_str(items[i].id) & mask;
    while (ix->slot[k])
        k = (k + 1) & mask;
    ix->slot[k] = i + 1;
    ix->n++;
}

/* The index of the item already holding id, or SIZE_MAX. */
static size_t index_get(const struct id_index *ix, const struct dataset_item *items, const char *id)
{
    if (!ix->cap)
        return SIZE_MAX;
    size_t mask = ix->cap - 1, k = (size_t)hash_str(id) & mask;
    for (; ix->slot[k]; k = (k + 1) & mask)
        if (strcmp(items[ix->slot[k] - 1].id, id) == 0)
            return ix->slot[k] - 1;
    return SIZE_MAX;
}

/* Adds item i; grows the table to keep it at most half full. */
static void index_add(struct id_index *ix, const struct dataset_item *items, size_t i)
{
    if ((ix->n + 1) * 2 > ix->cap) {
        size_t old_cap = ix->cap;
        size_t *old = ix->slot;
        ix->cap = old_cap ? old_cap * 2 : 64;
        ix->slot = xcalloc(ix->cap, sizeof *ix->slot);
        ix->n = 0;
        for (size_t k = 0; k < old_cap; k++)
            if (old[k])
                index_put(ix, items, old[k] - 1);
        free(old);
    }
    index_put(ix, items, i);
}

/* --- fields -------------------------------------------------------------- */

static void item_clear(struct dataset_item *it)
{
    json_decref(it->doc);
    json_decref(it->messages);
    free(it->input);
    free(it->passages);
    free(it->context);
    free(it->rubrics);
    free(it->tags);
    free(it->human_scores);
    memset(it, 0, sizeof *it);
}

/* One message's text blocks into out (joined by newlines), normalised into *norm. */
static enum assay_err parse_content(const struct ctx *c, const json_t *content, size_t mi,
                                    struct buf *out, json_t **norm)
{
    char field[96];
    snprintf(field, sizeof field, "input[%zu].content", mi);
    *norm = NULL;
    if (json_is_string(content)) {
        const char *s = text_value(content, false);
        if (!s)
            return invalid(c, field, "must be a non-empty string or an array of text blocks");
        buf_append_str(out, s);
        *norm = json_array();
        json_array_append_new(*norm, json_pack("{s:s}", "text", s));
        return ASSAY_OK;
    }
    if (!json_is_array(content) || json_array_size(content) == 0)
        return invalid(c, field, "must be a non-empty string or an array of text blocks");
    if (json_array_size(content) > DATASET_BLOCKS_MAX)
        return fail(c, ASSAY_ERR_TOO_LARGE, field, "more than 64 blocks");
    size_t bi;
    json_t *block;
    json_array_foreach(content, bi, block)
    {
        snprintf(field, sizeof field, "input[%zu].content[%zu]", mi, bi);
        if (!json_is_object(block))
            return invalid(c, field, "must be an object");
        json_t *text = json_object_get(block, "text");
        if (!text || json_object_size(block) != 1)
            return invalid(c, field, "only text blocks ({\"text\": \"...\"}) are supported");
        const char *s = text_value(text, false);
        if (!s) {
            snprintf(field, sizeof field, "input[%zu].content[%zu].text", mi, bi);
            return invalid(c, field, "must be a non-empty string");
        }
        if (bi)
            buf_append_char(out, '\n');
        buf_append_str(out, s);
    }
    *norm = json_deep_copy(content);
    return ASSAY_OK;
}

/*
 * Converse messages: starting with the user, alternating, ending with the
 * user (whose turn the target model answers).
 */
static enum assay_err parse_messages(const struct ctx *c, const json_t *v, struct dataset_item *it)
{
    size_t n = json_array_size(v);
    if (n == 0)
        return invalid(c, "input", "must be a non-empty string or a non-empty array of messages");
    if (n > DATASET_MESSAGES_MAX)
        return fail(c, ASSAY_ERR_TOO_LARGE, "input", "more than 64 messages");
    enum assay_err err = ASSAY_OK;
    struct buf text = BUF_INIT;
    json_t *norm = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m)
    {
        char field[64];
        snprintf(field, sizeof field, "input[%zu]", i);
        if (!json_is_object(m)) {
            err = invalid(c, field, "must be a message object");
            goto out;
        }
        const char *key;
        json_t *val;
        json_object_foreach(m, key, val)
        {
            (void)val;
            if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0) {
                char f[128];
                snprintf(f, sizeof f, "input[%zu].%.64s", i, key);
                err = invalid(c, f, "unknown key (a message has role and content)");
                goto out;
            }
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        snprintf(field, sizeof field, "input[%zu].role", i);
        if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
            err = invalid(c, field, "must be \"user\" or \"assistant\"");
            goto out;
        }
        const char *want = i % 2 == 0 ? "user" : "assistant";
        if (strcmp(role, want) != 0) {
            err = invalid(c, field,
                          i == 0 ? "the first message must be the user's"
                                 : "roles must alternate between user and assistant");
            goto out;
        }
        json_t *content = json_object_get(m, "content");
        if (!content) {
            snprintf(field, sizeof field, "input[%zu].content", i);
            err = invalid(c, field, "missing");
            goto out;
        }
        if (n > 1)
            buf_append_str(&text, i ? "\n\n" : "");
        if (n > 1)
            buf_append_str(&text, i % 2 == 0 ? "user: " : "assistant: ");
        json_t *blocks = NULL;
        err = parse_content(c, content, i, &text, &blocks);
        if (err)
            goto out;
        json_array_append_new(norm, json_pack("{s:s,s:o}", "role", role, "content", blocks));
    }
    if (n % 2 == 0) {
        char field[64];
        snprintf(field, sizeof field, "input[%zu].role", n - 1);
        err = invalid(c, field, "the last message must be the user's");
        goto out;
    }
    it->input = buf_detach(&text, NULL);
    it->messages = norm;
    norm = NULL;
out:
    buf_clear(&text);
    json_decref(norm);
    return err;
}

static enum assay_err parse_input(const struct ctx *c, const json_t *obj, struct dataset_item *it)
{
    json_t *v = get(obj, "input");
    if (!v)
        return invalid(c, "input", "missing");
    if (json_is_string(v)) {
        const char *s = text_value(v, false);
        if (!s)
            return invalid(c, "input", "must be a non-empty string");
        it->input = xstrdup(s);
        return ASSAY_OK;
    }
    if (!json_is_array(v))
        return invalid(c, "input", "must be a string or an array of messages");
    return parse_messages(c, v, it);
}

static enum assay_err parse_context(const struct ctx *c, const json_t *obj, struct dataset_item *it)
{
    json_t *v = get(obj, "context");
    if (!v)
        return ASSAY_OK;
    if (json_is_string(v)) {
        const char *s = text_value(v, false);
        if (!s)
            return invalid(c, "context", "must be a non-empty string");
        it->passages = xcalloc(1, sizeof *it->passages);
        it->passages[0] = s;
        it->n_passages = 1;
        it->context = xstrdup(s);
        return ASSAY_OK;
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return invalid(c, "context", "must be a string or a non-empty array of strings");
    if (json_array_size(v) > DATASET_PASSAGES_MAX)
        return fail(c, ASSAY_ERR_TOO_LARGE, "context", "more than 32 passages");
    it->passages = xcalloc(json_array_size(v), sizeof *it->passages);
    struct buf joined = BUF_INIT;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = text_value(e, false);
        if (!s) {
            buf_clear(&joined);
            char field[48];
            snprintf(field, sizeof field, "context[%zu]", i);
            return invalid(c, field, "must be a non-empty string");
        }
        it->passages[it->n_passages++] = s;
        if (i)
            buf_append_str(&joined, "\n\n");
        buf_append_str(&joined, s);
    }
    it->context = buf_detach(&joined, NULL);
    return ASSAY_OK;
}

static enum assay_err parse_rubrics(const struct ctx *c, const json_t *obj, struct dataset_item *it)
{
    json_t *v = get(obj, "rubrics");
    if (!v)
        return ASSAY_OK;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return invalid(c, "rubrics", "must be a non-empty array of rubric names");
    if (json_array_size(v) > DATASET_RUBRICS_MAX)
        return fail(c, ASSAY_ERR_TOO_LARGE, "rubrics", "more than 32 rubrics");
    it->rubrics = xcalloc(json_array_size(v), sizeof *it->rubrics);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        char field[48];
        snprintf(field, sizeof field, "rubrics[%zu]", i);
        const char *s = json_string_value(e);
        if (!s || !rubric_name_valid(s))
            return invalid(c, field, "must be a rubric name (1 to 64 of a-z, 0-9, - and _)");
        for (size_t k = 0; k < it->n_rubrics; k++)
            if (strcmp(it->rubrics[k], s) == 0)
                return invalid(c, field, "names a rubric already listed");
        it->rubrics[it->n_rubrics++] = s;
    }
    return ASSAY_OK;
}

static enum assay_err parse_tags(const struct ctx *c, const json_t *obj, struct dataset_item *it)
{
    json_t *v = get(obj, "tags");
    if (!v)
        return ASSAY_OK;
    if (!json_is_object(v))
        return invalid(c, "tags", "must be an object of strings");
    if (json_object_size(v) > DATASET_TAGS_MAX)
        return fail(c, ASSAY_ERR_TOO_LARGE, "tags", "more than 16 tags");
    it->tags = xcalloc(json_object_size(v) + 1, sizeof *it->tags);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        char field[96];
        snprintf(field, sizeof field, "tags.%.64s", key);
        size_t klen = utf8_chars(key);
        if (klen == 0 || klen > DATASET_TAG_KEY_MAX)
            return invalid(c, field, "a tag key must be 1 to 64 characters");
        const char *s = text_value(val, true);
        if (!s)
            return invalid(c, field, "must be a string");
        if (utf8_chars(s) > DATASET_TAG_VALUE_MAX)
            return invalid(c, field, "longer than 256 characters");
        it->tags[it->n_tags].key = key;
        it->tags[it->n_tags].value = s;
        it->n_tags++;
    }
    return ASSAY_OK;
}

static enum assay_err parse_human_scores(const struct ctx *c, const json_t *obj,
                                         struct dataset_item *it)
{
    json_t *v = get(obj, "human_scores");
    if (!v)
        return invalid(c, "human_scores", "missing (every calibration item has them)");
    if (!json_is_object(v) || json_object_size(v) == 0)
        return invalid(c, "human_scores", "must be a non-empty object of rubric: score");
    if (json_object_size(v) > DATASET_RUBRICS_MAX)
        return fail(c, ASSAY_ERR_TOO_LARGE, "human_scores", "more than 32 rubrics");
    it->human_scores = xcalloc(json_object_size(v), sizeof *it->human_scores);
    const char *key;
    json_t *val;
    json_object_foreach(v, key, val)
    {
        char field[96];
        snprintf(field, sizeof field, "human_scores.%.64s", key);
        if (!rubric_name_valid(key))
            return invalid(c, field, "must be a rubric name (1 to 64 of a-z, 0-9, - and _)");
        if (!json_is_number(val) || !isfinite(json_number_value(val)))
            return invalid(c, field, "must be a number");
        it->human_scores[it->n_human_scores].rubric = key;
        it->human_scores[it->n_human_scores].score = json_number_value(val);
        it->n_human_scores++;
    }
    return ASSAY_OK;
}

static const char *const golden_keys[] = {"id",      "input", "reference", "context",
                                          "rubrics", "tags",  NULL};
static const char *const calibration_keys[] = {"output", "human_scores", NULL};

static bool key_in(const char *key, const char *const *keys)
{
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(key, keys[i]) == 0)
            return true;
    return false;
}

static enum assay_err parse_item(const struct ctx *c, enum dataset_kind kind, json_t *obj,
                                 struct dataset_item *it)
{
    enum assay_err err;
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val)
    {
        (void)val;
        if (key_in(key, golden_keys))
            continue;
        char field[80];
        snprintf(field, sizeof field, "%.64s", key);
        if (key_in(key, calibration_keys)) {
            if (kind == DATASET_KIND_CALIBRATION)
                continue;
            return invalid(c, field,
                           "only calibration sets (files named *" DATASET_CALIBRATION_SUFFIX
                           ") hold outputs and human scores");
        }
        return invalid(c, field, "unknown key");
    }
    json_t *id = get(obj, "id");
    if (!id)
        return invalid(c, "id", "missing");
    it->id = json_string_value(id);
    if (!it->id || !id_valid(it->id)) {
        it->id = NULL;
        return invalid(c, "id", "must be 1 to 128 of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
    }
    if ((err = parse_input(c, obj, it)))
        return err;
    json_t *ref = get(obj, "reference");
    if (ref) {
        it->reference = text_value(ref, false);
        if (!it->reference)
            return invalid(c, "reference", "must be a non-empty string");
    } else if (kind == DATASET_KIND_GOLDEN) {
        return invalid(c, "reference", "missing");
    }
    if ((err = parse_context(c, obj, it)) || (err = parse_rubrics(c, obj, it)) ||
        (err = parse_tags(c, obj, it)))
        return err;
    if (kind == DATASET_KIND_CALIBRATION) {
        json_t *output = get(obj, "output");
        if (!output)
            return invalid(c, "output", "missing (every calibration item has one)");
        it->output = text_value(output, true);
        if (!it->output)
            return invalid(c, "output", "must be a string");
        if ((err = parse_human_scores(c, obj, it)))
            return err;
    }
    return ASSAY_OK;
}

/* --- files --------------------------------------------------------------- */

void dataset_limits_default(struct dataset_limits *l)
{
    l->line_max = DATASET_LINE_MAX_DEFAULT;
    l->items_max = DATASET_ITEMS_MAX_DEFAULT;
    l->file_max = DATASET_FILE_MAX_DEFAULT;
}

static void limits_resolve(const struct dataset_limits *in, struct dataset_limits *out)
{
    dataset_limits_default(out);
    if (!in)
        return;
    if (in->line_max)
        out->line_max = in->line_max;
    if (in->items_max)
        out->items_max = in->items_max;
    if (in->file_max)
        out->file_max = in->file_max;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

enum dataset_kind dataset_kind_from_path(const char *path)
{
    return path && ends_with(path, DATASET_CALIBRATION_SUFFIX) ? DATASET_KIND_CALIBRATION
                                                               : DATASET_KIND_GOLDEN;
}

const char *dataset_kind_name(enum dataset_kind kind)
{
    return kind == DATASET_KIND_CALIBRATION ? "calibration" : "golden";
}

static char *name_from_path(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (ends_with(base, DATASET_CALIBRATION_SUFFIX))
        n -= strlen(DATASET_CALIBRATION_SUFFIX);
    else if (ends_with(base, ".jsonl"))
        n -= strlen(".jsonl");
    return xstrndup(base, n);
}

/* True when the line holds only blanks or is a comment (first non-blank '#'). */
static bool line_skipped(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    return i == n || p[i] == '#';
}

enum assay_err dataset_parse(const char *path, const char *text, size_t len,
                             const struct dataset_limits *lim, struct dataset **out, char *errbuf)
{
    struct dataset_limits l;
    limits_resolve(lim, &l);
    struct ctx c = {path ? path : "(dataset)", 0, errbuf};
    struct id_index ix = {NULL, 0, 0};
    enum assay_err err = ASSAY_OK;
    size_t cap = 0;
    struct dataset *d = xcalloc(1, sizeof *d);
    *out = NULL;
    d->path = xstrdup(c.path);
    d->name = name_from_path(c.path);
    d->kind = dataset_kind_from_path(c.path);
    size_t pos = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        pos = 3; /* a UTF-8 byte order mark, as some editors write */
    while (pos < len) {
        c.line++;
        const char *p = text + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && p[n - 1] == '\r')
            n--;
        if (n > l.line_max) {
            char what[64];
            snprintf(what, sizeof what, "longer than %zu bytes", l.line_max);
            err = fail(&c, ASSAY_ERR_TOO_LARGE, "(line)", what);
            goto out;
        }
        if (line_skipped(p, n))
            continue;
        if (d->n_items >= l.items_max) {
            char what[64];
            snprintf(what, sizeof what, "more than %zu items", l.items_max);
            err = fail(&c, ASSAY_ERR_TOO_LARGE, "(file)", what);
            goto out;
        }
        json_error_t je;
        json_t *obj = json_loadb(p, n, JSON_REJECT_DUPLICATES, &je);
        if (!obj) {
            char what[ASSAY_ERRBUF_SIZE];
            snprintf(what, sizeof what, "not valid JSON at column %d: %s", je.column, je.text);
            err = fail(&c, ASSAY_ERR_PARSE, "(line)", what);
            goto out;
        }
        if (!json_is_object(obj)) {
            json_decref(obj);
            err = invalid(&c, "(line)", "must hold one JSON object");
            goto out;
        }
        if (d->n_items == cap) {
            cap = cap ? cap * 2 : 64;
            d->items = xrealloc(d->items, cap * sizeof *d->items);
        }
        struct dataset_item *it = &d->items[d->n_items];
        memset(it, 0, sizeof *it);
        it->doc = obj;
        it->line = c.line;
        err = parse_item(&c, d->kind, obj, it);
        if (!err) {
            size_t prev = index_get(&ix, d->items, it->id);
            if (prev != SIZE_MAX) {
                char what[96];
                snprintf(what, sizeof what, "\"%.40s\" is already the id of line %zu", it->id,
                         d->items[prev].line);
                err = invalid(&c, "id", what);
            }
        }
        if (err) {
            item_clear(it);
            goto out;
        }
        index_add(&ix, d->items, d->n_items);
        d->n_items++;
    }
    if (d->n_items == 0) {
        c.line = 0;
        err = invalid(&c, "(file)", "holds no items");
    }
out:
    free(ix.slot);
    if (err) {
        dataset_free(d);
        return err;
    }
    *out = d;
    return ASSAY_OK;
}

enum assay_err dataset_load(const char *path, const struct dataset_limits *lim,
                            struct dataset **out, char *errbuf)
{
    struct dataset_limits l;
    limits_resolve(lim, &l);
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    enum assay_err err = ASSAY_OK;
    struct buf text = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (text.len + n > l.file_max) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "%s: (file): larger than %zu bytes",
                                   path, l.file_max);
            goto out;
        }
        buf_append(&text, chunk, n);
    }
    if (ferror(f)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: read failed", path);
        goto out;
    }
    err = dataset_parse(path, text.data ? text.data : "", text.len, &l, out, errbuf);
out:
    fclose(f);
    buf_clear(&text);
    return err;
}

void dataset_free(struct dataset *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_items; i++)
        item_clear(&d->items[i]);
    free(d->items);
    free(d->path);
    free(d->name);
    free(d);
}

const struct dataset_item *dataset_find(const struct dataset *d, const char *id)
{
    if (!d || !id)
        return NULL;
    for (size_t i = 0; i < d->n_items; i++)
        if (strcmp(d->items[i].id, id) == 0)
            return &d->items[i];
    return NULL;
}

/* --- rubrics ------------------------------------------------------------- */

/* The first field r needs that it (with an output from somewhere) lacks, or NULL. */
static const char *missing_field(const struct rubric *r, const struct dataset_item *it)
{
    if ((r->fields & RUBRIC_FIELD_CONTEXT) && !it->context)
        return "context";
    if ((r->fields & RUBRIC_FIELD_REFERENCE) && !it->reference)
        return "reference";
    return NULL;
}

enum assay_err dataset_rubrics_check(const struct dataset *d, const struct rubric_registry *reg,
                                     char *errbuf)
{
    struct ctx c = {d->path, 0, errbuf};
    for (size_t i = 0; i < d->n_items; i++) {
        const struct dataset_item *it = &d->items[i];
        c.line = it->line;
        char field[96], what[160];
        for (size_t k = 0; k < it->n_rubrics; k++) {
            snprintf(field, sizeof field, "rubrics[%zu]", k);
            const struct rubric *r = rubric_registry_find(reg, it->rubrics[k]);
            if (!r) {
                snprintf(what, sizeof what, "no rubric is named \"%s\"", it->rubrics[k]);
                return invalid(&c, field, what);
            }
            const char *lack = missing_field(r, it);
            if (lack) {
                snprintf(what, sizeof what, "rubric %s needs the item's %s", r->name, lack);
                return invalid(&c, field, what);
            }
        }
        for (size_t k = 0; k < it->n_human_scores; k++) {
            const struct dataset_score *hs = &it->human_scores[k];
            snprintf(field, sizeof field, "human_scores.%s", hs->rubric);
            const struct rubric *r = rubric_registry_find(reg, hs->rubric);
            if (!r)
                return invalid(&c, field, "no rubric has this name");
            if (hs->score < r->scale.min || hs->score > r->scale.max) {
                snprintf(what, sizeof what, "%g is outside the rubric's scale %g..%g", hs->score,
                         r->scale.min, r->scale.max);
                return invalid(&c, field, what);
            }
            if (r->scale.integer && hs->score != floor(hs->score)) {
                snprintf(what, sizeof what, "%g is not a whole number (the scale is integer)",
                         hs->score);
                return invalid(&c, field, what);
            }
            const char *lack = missing_field(r, it);
            if (lack) {
                snprintf(what, sizeof what, "rubric %s needs the item's %s", r->name, lack);
                return invalid(&c, field, what);
            }
        }
    }
    return ASSAY_OK;
}

void dataset_item_sample(const struct dataset_item *item, const char *output,
                         struct rubric_sample *out)
{
    out->input = item->input;
    out->output = output ? output : item->output;
    out->context = item->context;
    out->reference = item->reference;
}

bool dataset_item_human_score(const struct dataset_item *item, const char *rubric, double *out)
{
    for (size_t i = 0; i < item->n_human_scores; i++)
        if (strcmp(item->human_scores[i].rubric, rubric) == 0) {
            *out = item->human_scores[i].score;
            return true;
        }
    return false;
}
