/*
 * judges/rubric: parsing and validation of rubric files, and the registry
 * that the worker and `assay judge` look rubrics up in. Validation is strict
 * (unknown keys are refused) so that a typo in a rubric is an error at
 * start-up rather than a silently different judge.
 */
#include "judges/rubric.h"

#include "common/alloc.h"
#include "common/jsonutil.h"
#include "judges/regex.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where errors go: every message starts with the file and the field. */
struct ctx {
    const char *path;
    char *errbuf;
};

static enum assay_err fail(const struct ctx *c, enum assay_err err, const char *field,
                           const char *what)
{
    return assay_errbuf_set(c->errbuf, err, "%s: %s: %s", c->path, field, what);
}

static bool key_allowed(const char *key, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(key, allowed[i]) == 0)
            return true;
    return false;
}

static enum assay_err check_keys(const struct ctx *c, const json_t *obj, const char *prefix,
                                 const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        (void)v;
        if (!key_allowed(key, allowed)) {
            char field[128];
            snprintf(field, sizeof field, "%s%.80s", prefix, key);
            return fail(c, ASSAY_ERR_CONFIG, field, "unknown key");
        }
    }
    return ASSAY_OK;
}

/* A string field; required or optional (absent leaves *out NULL). */
static enum assay_err get_text(const struct ctx *c, const json_t *obj, const char *key,
                               bool required, char **out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required)
            return fail(c, ASSAY_ERR_CONFIG, key, "missing");
        return ASSAY_OK;
    }
    if (!json_is_string(v))
        return fail(c, ASSAY_ERR_CONFIG, key, "must be a string");
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n == 0 || strlen(s) != n)
        return fail(c, ASSAY_ERR_CONFIG, key, "must be a non-empty string without NUL");
    if (n > RUBRIC_TEXT_MAX)
        return fail(c, ASSAY_ERR_CONFIG, key, "longer than 32 KiB");
    *out = xstrdup(s);
    return ASSAY_OK;
}

static enum assay_err get_number(const struct ctx *c, const json_t *obj, const char *key,
                                 const char *field, bool required, double *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? fail(c, ASSAY_ERR_CONFIG, field, "missing") : ASSAY_OK;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return fail(c, ASSAY_ERR_CONFIG, field, "must be a finite number");
    *out = json_number_value(v);
    return ASSAY_OK;
}

static enum assay_err get_int(const struct ctx *c, const json_t *obj, const char *key,
                              const char *field, long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return ASSAY_OK;
    if (!json_is_integer(v))
        return fail(c, ASSAY_ERR_CONFIG, field, "must be an integer");
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        char what[96];
        snprintf(what, sizeof what, "must be between %lld and %lld", lo, hi);
        return fail(c, ASSAY_ERR_CONFIG, field, what);
    }
    *out = x;
    return ASSAY_OK;
}

bool rubric_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
            return false;
    }
    return true;
}

static const char *const field_names[] = {"input", "output", "context", "reference"};

const char *rubric_field_name(enum rubric_field field)
{
    for (unsigned i = 0; i < 4; i++)
        if ((unsigned)field == (1u << i))
            return field_names[i];
    return NULL;
}

const char *rubric_sample_field(const struct rubric_sample *s, enum rubric_field field)
{
    switch (field) {
    case RUBRIC_FIELD_INPUT:
        return s->input;
    case RUBRIC_FIELD_OUTPUT:
        return s->output;
    case RUBRIC_FIELD_CONTEXT:
        return s->context;
    case RUBRIC_FIELD_REFERENCE:
        return s->reference;
    }
    return NULL;
}

enum assay_err rubric_sample_check(const struct rubric *r, const struct rubric_sample *s,
                                   char *errbuf)
{
    for (unsigned i = 0; i < 4; i++) {
        enum rubric_field f = (enum rubric_field)(1u << i);
        if ((r->fields & f) && !rubric_sample_field(s, f))
            return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                    "rubric %s needs the sample field %s", r->name, field_names[i]);
    }
    return ASSAY_OK;
}

const char *rubric_kind_name(enum rubric_kind kind)
{
    switch (kind) {
    case RUBRIC_KIND_LLM:
        return "llm";
    case RUBRIC_KIND_RULE:
        return "rule";
    case RUBRIC_KIND_REFERENCE:
        return "reference";
    }
    return "unknown";
}

const char *rubric_anchor_text(const struct rubric *r, double score)
{
    for (size_t i = 0; i < r->n_anchors; i++)
        if (r->anchors[i].score == score)
            return r->anchors[i].text;
    return NULL;
}

static enum assay_err parse_fields(const struct ctx *c, const json_t *root, unsigned *out)
{
    json_t *v = json_object_get(root, "fields");
    if (!v)
        return fail(c, ASSAY_ERR_CONFIG, "fields", "missing");
    if (!json_is_array(v) || json_array_size(v) == 0)
        return fail(c, ASSAY_ERR_CONFIG, "fields", "must be a non-empty array");
    size_t i;
    json_t *e;
    unsigned bits = 0;
    json_array_foreach(v, i, e)
    {
        char field[32];
        snprintf(field, sizeof field, "fields[%zu]", i);
        const char *s = json_string_value(e);
        unsigned bit = 0;
        for (unsigned k = 0; s && k < 4; k++)
            if (strcmp(s, field_names[k]) == 0)
                bit = 1u << k;
        if (!bit)
            return fail(c, ASSAY_ERR_CONFIG, field,
                        "must be one of input, output, context, reference");
        if (bits & bit)
            return fail(c, ASSAY_ERR_CONFIG, field, "listed twice");
        bits |= bit;
    }
    *out = bits;
    return ASSAY_OK;
}

static int anchor_cmp(const void *a, const void *b)
{
    double x = ((const struct rubric_anchor *)a)->score;
    double y = ((const struct rubric_anchor *)b)->score;
    return (x > y) - (x < y);
}

static enum assay_err parse_anchors(const struct ctx *c, const json_t *root, struct rubric *r)
{
    json_t *v = json_object_get(root, "anchors");
    if (!v)
        return fail(c, ASSAY_ERR_CONFIG, "anchors", "missing");
    if (!json_is_array(v) || json_array_size(v) < 2 || json_array_size(v) > RUBRIC_LEVELS_MAX)
        return fail(c, ASSAY_ERR_CONFIG, "anchors", "must be an array of 2 to 101 anchors");
    r->n_anchors = json_array_size(v);
    r->anchors = xcalloc(r->n_anchors, sizeof *r->anchors);
    static const char *const keys[] = {"score", "text", NULL};
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        char field[48];
        snprintf(field, sizeof field, "anchors[%zu]", i);
        if (!json_is_object(e))
            return fail(c, ASSAY_ERR_CONFIG, field, "must be an object {score, text}");
        char prefix[48];
        snprintf(prefix, sizeof prefix, "anchors[%zu].", i);
        enum assay_err err = check_keys(c, e, prefix, keys);
        if (err)
            return err;
        char sfield[64];
        snprintf(sfield, sizeof sfield, "anchors[%zu].score", i);
        double score = 0;
        err = get_number(c, e, "score", sfield, true, &score);
        if (err)
            return err;
        if (score < r->scale.min || score > r->scale.max)
            return fail(c, ASSAY_ERR_CONFIG, sfield, "outside the scale");
        if (r->scale.integer && score != floor(score))
            return fail(c, ASSAY_ERR_CONFIG, sfield, "must be an integer on an integer scale");
        for (size_t k = 0; k < i; k++)
            if (r->anchors[k].score == score)
                return fail(c, ASSAY_ERR_CONFIG, sfield, "level described twice");
        r->anchors[i].score = score;
        json_t *t = json_object_get(e, "text");
        if (!json_is_string(t) || json_string_length(t) == 0 ||
            json_string_length(t) > RUBRIC_TEXT_MAX ||
            strlen(json_string_value(t)) != json_string_length(t)) {
            snprintf(sfield, sizeof sfield, "anchors[%zu].text", i);
            return fail(c, ASSAY_ERR_CONFIG, sfield, "must be a non-empty string");
        }
        r->anchors[i].text = xstrdup(json_string_value(t));
    }
    qsort(r->anchors, r->n_anchors, sizeof *r->anchors, anchor_cmp);
    if (r->scale.integer) {
        size_t levels = (size_t)(r->scale.max - r->scale.min) + 1;
        if (levels != r->n_anchors)
            return fail(c, ASSAY_ERR_CONFIG, "anchors",
                        "an integer scale needs one anchor for every level");
    } else if (r->anchors[0].score != r->scale.min ||
               r->anchors[r->n_anchors - 1].score != r->scale.max) {
        return fail(c, ASSAY_ERR_CONFIG, "anchors",
                    "must describe at least scale.min and scale.max");
    }
    return ASSAY_OK;
}

/* The fallback pattern must find the score in the canonical line we ask for. */
static enum assay_err check_fallback(const struct ctx *c, struct rubric *r)
{
    char ebuf[ASSAY_ERRBUF_SIZE] = "";
    r->fallback_re = regex_new(r->fallback_pattern, NULL, ebuf);
    if (!r->fallback_re)
        return fail(c, ASSAY_ERR_CONFIG, "fallback_pattern", ebuf);
    int g = regex_group_number(r->fallback_re, "score");
    if (g < 0)
        return fail(c, ASSAY_ERR_CONFIG, "fallback_pattern", "needs a named group (?<score>...)");
    char probe[64];
    snprintf(probe, sizeof probe, "Some reasoning.\nSCORE: %g\n", r->scale.max);
    size_t ms, me, gs, ge;
    if (regex_find(r->fallback_re, probe, strlen(probe), 0, g, &ms, &me, &gs, &ge) != REGEX_MATCH ||
        gs == SIZE_MAX || strtod(probe + gs, NULL) != r->scale.max)
        return fail(c, ASSAY_ERR_CONFIG, "fallback_pattern",
                    "must extract the score from a line \"SCORE: <n>\"");
    return ASSAY_OK;
}

static enum assay_err parse_llm(const struct ctx *c, const json_t *root, struct rubric *r)
{
    static const char *const keys[] = {
        "name",     "description", "kind",     "scale",   "pass_threshold",
        "fields",   "system",      "criteria", "anchors", "fallback_pattern",
        "model_id", "inference",   "repeats",  NULL};
    enum assay_err err = check_keys(c, root, "", keys);
    if (!err)
        err = get_text(c, root, "system", true, &r->system);
    if (!err)
        err = get_text(c, root, "criteria", true, &r->criteria);
    if (!err)
        err = parse_anchors(c, root, r);
    if (!err)
        err = get_text(c, root, "fallback_pattern", false, &r->fallback_pattern);
    if (err)
        return err;
    if (!r->fallback_pattern)
        r->fallback_pattern = xstrdup(RUBRIC_FALLBACK_PATTERN_DEFAULT);
    err = check_fallback(c, r);
    if (!err)
        err = get_text(c, root, "model_id", false, &r->model_id);
    if (err)
        return err;
    r->temperature = 0;
    r->max_tokens = 1024;
    r->repeats = 1;
    json_t *inf = json_object_get(root, "inference");
    if (inf) {
        static const char *const ikeys[] = {"temperature", "max_tokens", NULL};
        if (!json_is_object(inf))
            return fail(c, ASSAY_ERR_CONFIG, "inference", "must be an object");
        err = check_keys(c, inf, "inference.", ikeys);
        if (!err)
            err =
                get_number(c, inf, "temperature", "inference.temperature", false, &r->temperature);
        if (err)
            return err;
        if (r->temperature < 0 || r->temperature > 1)
            return fail(c, ASSAY_ERR_CONFIG, "inference.temperature", "must be within 0..1");
        long long mt = r->max_tokens;
        err = get_int(c, inf, "max_tokens", "inference.max_tokens", 16, RUBRIC_MAX_TOKENS_MAX, &mt);
        if (err)
            return err;
        r->max_tokens = (int)mt;
    }
    long long rep = 1;
    err = get_int(c, root, "repeats", "repeats", 1, RUBRIC_REPEATS_MAX, &rep);
    r->repeats = (int)rep;
    return err;
}

/* Rule parameters, checked here so that a broken rubric fails at load. */
static enum assay_err parse_rule(const struct ctx *c, const json_t *root, struct rubric *r)
{
    static const char *const keys[] = {"name",   "description", "kind",   "scale", "pass_threshold",
                                       "fields", "rule",        "params", NULL};
    enum assay_err err = check_keys(c, root, "", keys);
    if (!err)
        err = get_text(c, root, "rule", true, &r->rule);
    if (err)
        return err;
    json_t *p = json_object_get(root, "params");
    if (p && !json_is_object(p))
        return fail(c, ASSAY_ERR_CONFIG, "params", "must be an object");
    r->params = p ? json_incref(p) : json_object();
    p = r->params;
    long long x = 0;
    static const char *const limit_keys[] = {"match_limit", "depth_limit"};
    for (int i = 0; i < 2; i++) {
        char field[48];
        snprintf(field, sizeof field, "params.%s", limit_keys[i]);
        err = get_int(c, p, limit_keys[i], field, 1, 4000000000LL, &x);
        if (err)
            return err;
    }
    if (strcmp(r->rule, "pii-leak") == 0) {
        static const char *const pk[] = {"detect", "match_limit", "depth_limit", NULL};
        static const char *const kinds[] = {"email",          "phone",          "card",
                                            "aws_access_key", "aws_secret_key", NULL};
        err = check_keys(c, p, "params.", pk);
        if (err)
            return err;
        json_t *d = json_object_get(p, "detect");
        if (d) {
            if (!json_is_array(d) || json_array_size(d) == 0)
                return fail(c, ASSAY_ERR_CONFIG, "params.detect", "must be a non-empty array");
            size_t i;
            json_t *e;
            json_array_foreach(d, i, e)
            {
                if (!json_is_string(e) || !key_allowed(json_string_value(e), kinds))
                    return fail(c, ASSAY_ERR_CONFIG, "params.detect",
                                "entries must be email, phone, card, aws_access_key or "
                                "aws_secret_key");
            }
        }
    } else if (strcmp(r->rule, "json-valid") == 0) {
        static const char *const pk[] = {"require", "match_limit", "depth_limit", NULL};
        err = check_keys(c, p, "params.", pk);
        if (err)
            return err;
        json_t *req = json_object_get(p, "require");
        if (req && !(json_is_string(req) && (strcmp(json_string_value(req), "any") == 0 ||
                                             strcmp(json_string_value(req), "object") == 0 ||
                                             strcmp(json_string_value(req), "array") == 0)))
            return fail(c, ASSAY_ERR_CONFIG, "params.require", "must be any, object or array");
    } else if (strcmp(r->rule, "max-length") == 0) {
        static const char *const pk[] = {"max_chars", "match_limit", "depth_limit", NULL};
        err = check_keys(c, p, "params.", pk);
        if (err)
            return err;
        if (!json_object_get(p, "max_chars"))
            return fail(c, ASSAY_ERR_CONFIG, "params.max_chars", "missing");
        err = get_int(c, p, "max_chars", "params.max_chars", 1, 100000000LL, &x);
        if (err)
            return err;
    } else if (strcmp(r->rule, "refusal-phrases") == 0) {
        static const char *const pk[] = {"phrases", "match_limit", "depth_limit", NULL};
        err = check_keys(c, p, "params.", pk);
        if (err)
            return err;
        json_t *ph = json_object_get(p, "phrases");
        if (ph) {
            if (!json_is_array(ph) || json_array_size(ph) == 0 || json_array_size(ph) > 1000)
                return fail(c, ASSAY_ERR_CONFIG, "params.phrases",
                            "must be an array of 1 to 1000 strings");
            size_t i;
            json_t *e;
            json_array_foreach(ph, i, e)
            {
                if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > 200)
                    return fail(c, ASSAY_ERR_CONFIG, "params.phrases",
                                "entries must be strings of 1 to 200 bytes");
            }
        }
    } else if (strcmp(r->rule, "regex") == 0) {
        static const char *const pk[] = {"pattern", "must_match", "match_limit", "depth_limit",
                                         NULL};
        err = check_keys(c, p, "params.", pk);
        if (err)
            return err;
        const char *pat = jsonutil_str(p, "pattern");
        if (!pat)
            return fail(c, ASSAY_ERR_CONFIG, "params.pattern", "missing or not a string");
        char ebuf[ASSAY_ERRBUF_SIZE] = "";
        struct regex *re = regex_new(pat, NULL, ebuf);
        if (!re)
            return fail(c, ASSAY_ERR_CONFIG, "params.pattern", ebuf);
        regex_free(re);
        json_t *mm = json_object_get(p, "must_match");
        if (mm && !json_is_boolean(mm))
            return fail(c, ASSAY_ERR_CONFIG, "params.must_match", "must be true or false");
    } else {
        return fail(c, ASSAY_ERR_CONFIG, "rule",
                    "must be pii-leak, json-valid, max-length, refusal-phrases or regex");
    }
    return ASSAY_OK;
}

static enum assay_err parse_reference(const struct ctx *c, const json_t *root, struct rubric *r)
{
    static const char *const keys[] = {"name",           "description", "kind",   "scale",
                                       "pass_threshold", "fields",      "metric", NULL};
    enum assay_err err = check_keys(c, root, "", keys);
    if (!err)
        err = get_text(c, root, "metric", true, &r->metric);
    if (err)
        return err;
    if (strcmp(r->metric, "exact-match") != 0 && strcmp(r->metric, "token-f1") != 0 &&
        strcmp(r->metric, "rouge-l") != 0)
        return fail(c, ASSAY_ERR_CONFIG, "metric", "must be exact-match, token-f1 or rouge-l");
    if (!(r->fields & RUBRIC_FIELD_OUTPUT) || !(r->fields & RUBRIC_FIELD_REFERENCE))
        return fail(c, ASSAY_ERR_CONFIG, "fields", "a reference rubric needs output and reference");
    return ASSAY_OK;
}

static enum assay_err parse_scale(const struct ctx *c, const json_t *root, struct rubric *r)
{
    json_t *s = json_object_get(root, "scale");
    bool fixed = r->kind != RUBRIC_KIND_LLM;
    /* Rule verdicts are 0 or 1; reference metrics are fractions in 0..1. */
    r->scale.min = 0;
    r->scale.max = 1;
    r->scale.integer = r->kind == RUBRIC_KIND_RULE;
    if (!s)
        return fixed ? ASSAY_OK : fail(c, ASSAY_ERR_CONFIG, "scale", "missing");
    if (!json_is_object(s))
        return fail(c, ASSAY_ERR_CONFIG, "scale", "must be an object {min, max, integer}");
    static const char *const keys[] = {"min", "max", "integer", NULL};
    enum assay_err err = check_keys(c, s, "scale.", keys);
    struct rubric_scale want = r->scale;
    if (!err)
        err = get_number(c, s, "min", "scale.min", true, &r->scale.min);
    if (!err)
        err = get_number(c, s, "max", "scale.max", true, &r->scale.max);
    if (err)
        return err;
    json_t *integer = json_object_get(s, "integer");
    if (integer && !json_is_boolean(integer))
        return fail(c, ASSAY_ERR_CONFIG, "scale.integer", "must be true or false");
    r->scale.integer = integer ? json_is_true(integer) : r->scale.integer;
    if (!(r->scale.max > r->scale.min))
        return fail(c, ASSAY_ERR_CONFIG, "scale.max", "must be greater than scale.min");
    if (fabs(r->scale.min) > 1e6 || fabs(r->scale.max) > 1e6)
        return fail(c, ASSAY_ERR_CONFIG, "scale", "bounds must lie within +-1e6");
    if (r->scale.integer &&
        (r->scale.min != floor(r->scale.min) || r->scale.max != floor(r->scale.max)))
        return fail(c, ASSAY_ERR_CONFIG, "scale", "an integer scale needs integer bounds");
    if (r->scale.integer && r->scale.max - r->scale.min + 1 > RUBRIC_LEVELS_MAX)
        return fail(c, ASSAY_ERR_CONFIG, "scale", "an integer scale has at most 101 levels");
    if (fixed &&
        (r->scale.min != want.min || r->scale.max != want.max || r->scale.integer != want.integer))
        return fail(c, ASSAY_ERR_CONFIG, "scale",
                    r->kind == RUBRIC_KIND_RULE
                        ? "a rule rubric's scale is 0..1, integer"
                        : "a reference rubric's scale is 0..1, not integer");
    return ASSAY_OK;
}

static void sha256_hex(const char *text, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        abort();
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

enum assay_err rubric_parse(const char *path, const char *text, size_t len, struct rubric **out,
                            char *errbuf)
{
    struct ctx c = {path ? path : "(rubric)", errbuf};
    struct rubric *r = NULL;
    json_t *root = NULL;
    enum assay_err err = ASSAY_OK;
    *out = NULL;
    if (len > RUBRIC_FILE_MAX) {
        err = fail(&c, ASSAY_ERR_TOO_LARGE, "(file)", "larger than 256 KiB");
        goto out;
    }
    char jerr[ASSAY_ERRBUF_SIZE] = "";
    root = jsonutil_parse(text, len, jerr);
    if (!root) {
        err = fail(&c, ASSAY_ERR_PARSE, "(file)", jerr);
        goto out;
    }
    if (!json_is_object(root)) {
        err = fail(&c, ASSAY_ERR_CONFIG, "(file)", "must hold one JSON object");
        goto out;
    }
    r = xcalloc(1, sizeof *r);
    r->path = xstrdup(c.path);
    sha256_hex(text, len, r->version);
    err = get_text(&c, root, "name", true, &r->name);
    if (err)
        goto out;
    if (!rubric_name_valid(r->name)) {
        err = fail(&c, ASSAY_ERR_CONFIG, "name", "must be 1 to 64 of a-z, 0-9, - and _");
        goto out;
    }
    err = get_text(&c, root, "description", true, &r->description);
    if (err)
        goto out;
    const char *kind = jsonutil_str(root, "kind");
    if (!kind) {
        err = fail(&c, ASSAY_ERR_CONFIG, "kind", "missing or not a string");
        goto out;
    }
    if (strcmp(kind, "llm") == 0) {
        r->kind = RUBRIC_KIND_LLM;
    } else if (strcmp(kind, "rule") == 0) {
        r->kind = RUBRIC_KIND_RULE;
    } else if (strcmp(kind, "reference") == 0) {
        r->kind = RUBRIC_KIND_REFERENCE;
    } else {
        err = fail(&c, ASSAY_ERR_CONFIG, "kind", "must be llm, rule or reference");
        goto out;
    }
    err = parse_scale(&c, root, r);
    if (!err)
        err = parse_fields(&c, root, &r->fields);
    if (err)
        goto out;
    if (!(r->fields & RUBRIC_FIELD_OUTPUT)) {
        err = fail(&c, ASSAY_ERR_CONFIG, "fields", "must include output, the text graded");
        goto out;
    }
    r->pass_threshold = NAN;
    err = get_number(&c, root, "pass_threshold", "pass_threshold", true, &r->pass_threshold);
    if (err)
        goto out;
    if (r->pass_threshold < r->scale.min || r->pass_threshold > r->scale.max) {
        err = fail(&c, ASSAY_ERR_CONFIG, "pass_threshold", "outside the scale");
        goto out;
    }
    switch (r->kind) {
    case RUBRIC_KIND_LLM:
        err = parse_llm(&c, root, r);
        break;
    case RUBRIC_KIND_RULE:
        err = parse_rule(&c, root, r);
        break;
    case RUBRIC_KIND_REFERENCE:
        err = parse_reference(&c, root, r);
        break;
    }
out:
    json_decref(root);
    if (err) {
        rubric_free(r);
        return err;
    }
    *out = r;
    return ASSAY_OK;
}

enum assay_err rubric_load(const char *path, struct rubric **out, char *errbuf)
{
    *out = NULL;
    enum assay_err err = ASSAY_OK;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    text = xmalloc(RUBRIC_FILE_MAX + 1);
    size_t n = fread(text, 1, RUBRIC_FILE_MAX + 1, f);
    if (ferror(f)) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: read failed", path);
        goto out;
    }
    if (n > RUBRIC_FILE_MAX) {
        err =
            assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "%s: (file): larger than 256 KiB", path);
        goto out;
    }
    err = rubric_parse(path, text, n, out, errbuf);
out:
    fclose(f);
    free(text);
    return err;
}

void rubric_free(struct rubric *r)
{
    if (!r)
        return;
    free(r->name);
    free(r->description);
    free(r->path);
    free(r->system);
    free(r->criteria);
    for (size_t i = 0; i < r->n_anchors; i++)
        free(r->anchors[i].text);
    free(r->anchors);
    free(r->fallback_pattern);
    regex_free(r->fallback_re);
    free(r->model_id);
    free(r->rule);
    json_decref(r->params);
    free(r->metric);
    free(r);
}

struct rubric_registry {
    struct rubric **items; /* sorted by name */
    size_t n;
};

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int rubric_cmp(const void *a, const void *b)
{
    return strcmp((*(struct rubric *const *)a)->name, (*(struct rubric *const *)b)->name);
}

enum assay_err rubric_registry_load(const char *dir, struct rubric_registry **out, char *errbuf)
{
    *out = NULL;
    enum assay_err err = ASSAY_OK;
    char **names = NULL;
    size_t n_names = 0, cap = 0;
    struct rubric_registry *reg = xcalloc(1, sizeof *reg);
    DIR *d = opendir(dir);
    if (!d) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: cannot open rubrics_dir: %s", dir,
                               strerror(errno));
        goto out;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        if (n_names == cap) {
            cap = cap ? 2 * cap : 16;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n_names++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n_names, sizeof *names, name_cmp);
    reg->items = xcalloc(n_names ? n_names : 1, sizeof *reg->items);
    for (size_t i = 0; i < n_names; i++) {
        size_t plen = strlen(dir) + 1 + strlen(names[i]) + 1;
        char *path = xmalloc(plen);
        snprintf(path, plen, "%s/%s", dir, names[i]);
        struct rubric *r = NULL;
        err = rubric_load(path, &r, errbuf);
        free(path);
        if (err)
            goto out;
        reg->items[reg->n++] = r;
    }
    qsort(reg->items, reg->n, sizeof *reg->items, rubric_cmp);
    for (size_t i = 1; i < reg->n; i++) {
        if (strcmp(reg->items[i - 1]->name, reg->items[i]->name) == 0) {
            err =
                assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "%s: name: \"%s\" is also used by %s",
                                 reg->items[i]->path, reg->items[i]->name, reg->items[i - 1]->path);
            goto out;
        }
    }
out:
    for (size_t i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    if (err) {
        rubric_registry_free(reg);
        return err;
    }
    *out = reg;
    return ASSAY_OK;
}

void rubric_registry_free(struct rubric_registry *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->n; i++)
        rubric_free(reg->items[i]);
    free(reg->items);
    free(reg);
}

const struct rubric *rubric_registry_find(const struct rubric_registry *reg, const char *name)
{
    if (!reg || !name)
        return NULL;
    size_t lo = 0, hi = reg->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(reg->items[mid]->name, name);
        if (c == 0)
            return reg->items[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t rubric_registry_count(const struct rubric_registry *reg)
{
    return reg ? reg->n : 0;
}

const struct rubric *rubric_registry_at(const struct rubric_registry *reg, size_t i)
{
    return reg && i < reg->n ? reg->items[i] : NULL;
}
