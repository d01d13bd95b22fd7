/*
 * server/ingest_redact: the per-app redaction of samples between validation
 * and the store insert (POST /v1/samples), and the per-app redact sets the
 * worker applies to what LLM judges send. Called by server/http_api and
 * server/worker; built by `assay serve` (cmd_serve.c). See ingest_redact.h.
 */
#include "server/ingest_redact.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "judges/pii.h"
#include "judges/regex.h"
#include "server/config.h"

struct app_set {
    const char *app; /* borrowed from the config */
    struct redact_set *set;
};

struct ingest_redact {
    const struct config *cfg;
    struct app_set *apps;
    size_t n_apps;
    struct regex *pii[PII_KIND_COUNT]; /* the detectors; compiled only when an app redacts */
};

enum assay_err ingest_redact_new(const struct config *cfg, struct ingest_redact **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    *out = NULL;
    struct ingest_redact *ir = xcalloc(1, sizeof *ir);
    ir->cfg = cfg;
    ir->apps = xcalloc(cfg->n_apps + 1, sizeof *ir->apps);
    for (size_t i = 0; i < cfg->n_apps; i++) {
        const struct config_app *ca = &cfg->apps[i];
        if (!ca->redact)
            continue;
        struct redact_set *set = NULL;
        char ebuf[ASSAY_ERRBUF_SIZE] = "";
        if (redact_set_from_json(ca->redact, &set, ebuf) != ASSAY_OK) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "apps.%s.redact: %s", ca->name, ebuf);
            goto out;
        }
        ir->apps[ir->n_apps].app = ca->name;
        ir->apps[ir->n_apps].set = set;
        ir->n_apps++;
    }
    for (int k = 0; ir->n_apps && k < PII_KIND_COUNT; k++) {
        char ebuf[ASSAY_ERRBUF_SIZE] = "";
        ir->pii[k] = regex_new(pii_kind_pattern((enum pii_kind)k), NULL, ebuf);
        if (!ir->pii[k]) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "the %s detector: %s",
                                   pii_kind_name((enum pii_kind)k), ebuf);
            goto out;
        }
    }
    *out = ir;
    ir = NULL;
out:
    ingest_redact_free(ir);
    return err;
}

void ingest_redact_free(struct ingest_redact *ir)
{
    if (!ir)
        return;
    for (size_t i = 0; i < ir->n_apps; i++)
        redact_set_free(ir->apps[i].set);
    free(ir->apps);
    for (int k = 0; k < PII_KIND_COUNT; k++)
        regex_free(ir->pii[k]);
    free(ir);
}

const struct redact_set *ingest_redact_for(const struct ingest_redact *ir, const char *app)
{
    if (!ir || ir->n_apps == 0 || !app)
        return NULL;
    const struct config_app *ca = config_app_find(ir->cfg, app);
    for (size_t i = 0; ca && i < ir->n_apps; i++)
        if (strcmp(ir->apps[i].app, ca->name) == 0)
            return ir->apps[i].set;
    return NULL;
}

/* What one top-level field ("input", ...) was found to hold, summed over its texts. */
struct finding {
    size_t count[PII_KIND_COUNT];
};

static enum assay_err refuse(struct sample_error *e, long index, const char *field,
                             const char *what)
{
    e->code = ASSAY_ERR_INVALID_ARGUMENT;
    e->index = index;
    snprintf(e->field, sizeof e->field, "%s", field);
    snprintf(e->message, sizeof e->message,
             "%s hit its PCRE2 match or depth limit on this field; the app redacts sample text, "
             "so the sample is refused rather than stored unredacted",
             what);
    return e->code;
}

/*
 * Counts the findings of str's text into f, then replaces str's value by its
 * redacted form. field names str in errors.
 */
static enum assay_err redact_string(const struct ingest_redact *ir, const struct redact_set *set,
                                    json_t *str, struct finding *f, long index, const char *field,
                                    struct sample_error *e)
{
    const char *text = json_string_value(str);
    size_t n = json_string_length(str);
    for (int k = 0; k < PII_KIND_COUNT; k++) {
        size_t pos = 0, ms, me;
        enum regex_result res;
        while ((res = pii_find(ir->pii[k], (enum pii_kind)k, text, n, pos, &ms, &me)) ==
               REGEX_MATCH) {
            f->count[k]++;
            pos = me > ms ? me : me + 1;
        }
        if (res != REGEX_NO_MATCH)
            return refuse(e, index, field, "a personal data detector");
    }
    struct buf out = BUF_INIT;
    size_t replaced = 0;
    char ebuf[ASSAY_ERRBUF_SIZE] = "";
    if (redact_set_apply(set, text, n, &out, &replaced, ebuf) != ASSAY_OK) {
        buf_clear(&out);
        return refuse(e, index, field, "a redaction pattern");
    }
    if (replaced)
        json_string_setn(str, out.data ? out.data : "", out.len);
    buf_clear(&out);
    return ASSAY_OK;
}

static void record(json_t *pii, const char *field, const struct finding *f)
{
    json_t *kinds = NULL;
    for (int k = 0; k < PII_KIND_COUNT; k++) {
        if (!f->count[k])
            continue;
        if (!kinds)
            kinds = json_object();
        json_object_set_new(kinds, pii_kind_name((enum pii_kind)k),
                            json_integer((json_int_t)f->count[k]));
    }
    if (kinds)
        json_object_set_new(pii, field, kinds);
}

static enum assay_err redact_input(const struct ingest_redact *ir, const struct redact_set *set,
                                   json_t *v, struct finding *f, long index, struct sample_error *e)
{
    if (json_is_string(v))
        return redact_string(ir, set, v, f, index, "input", e);
    char field[96];
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *content = json_object_get(json_array_get(v, i), "content");
        enum assay_err err = ASSAY_OK;
        if (json_is_string(content)) {
            snprintf(field, sizeof field, "input[%zu].content", i);
            err = redact_string(ir, set, content, f, index, field, e);
        }
        for (size_t j = 0; !err && j < json_array_size(content); j++) {
            json_t *t = json_object_get(json_array_get(content, j), "text");
            if (!json_is_string(t))
                continue;
            snprintf(field, sizeof field, "input[%zu].content[%zu].text", i, j);
            err = redact_string(ir, set, t, f, index, field, e);
        }
        if (err)
            return err;
    }
    return ASSAY_OK;
}

static enum assay_err redact_context(const struct ingest_redact *ir, const struct redact_set *set,
                                     json_t *v, struct finding *f, long index,
                                     struct sample_error *e)
{
    if (json_is_string(v))
        return redact_string(ir, set, v, f, index, "context", e);
    char field[96];
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *p = json_array_get(v, i);
        if (!json_is_string(p))
            continue;
        snprintf(field, sizeof field, "context[%zu]", i);
        enum assay_err err = redact_string(ir, set, p, f, index, field, e);
        if (err)
            return err;
    }
    return ASSAY_OK;
}

enum assay_err ingest_redact_doc(const struct ingest_redact *ir, const struct redact_set *set,
                                 json_t *doc, long index, struct sample_error *e)
{
    static const char *const fields[] = {"input", "output", "context", "reference"};
    json_t *pii = json_object();
    enum assay_err err = ASSAY_OK;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(doc, fields[i]);
        if (!v || json_is_null(v))
            continue;
        struct finding f = {0};
        if (i == 0)
            err = redact_input(ir, set, v, &f, index, e);
        else if (i == 2)
            err = redact_context(ir, set, v, &f, index, e);
        else if (json_is_string(v))
            err = redact_string(ir, set, v, &f, index, fields[i], e);
        if (err)
            goto out;
        record(pii, fields[i], &f);
    }
    /* Always present for a redacting app, even empty: the text was redacted, findings counted. */
    json_object_set(doc, INGEST_REDACT_MEMBER, pii);
out:
    json_decref(pii);
    return err;
}

/* Replaces *text (owned, may be NULL) by its redacted form. */
static enum assay_err redact_owned(const struct redact_set *set, char **text, long index,
                                   const char *field, struct sample_error *e)
{
    if (!*text)
        return ASSAY_OK;
    struct buf out = BUF_INIT;
    char ebuf[ASSAY_ERRBUF_SIZE] = "";
    if (redact_set_apply(set, *text, strlen(*text), &out, NULL, ebuf) != ASSAY_OK) {
        buf_clear(&out);
        return refuse(e, index, field, "a redaction pattern");
    }
    free(*text);
    *text = buf_detach(&out, NULL);
    if (!*text)
        *text = xstrdup("");
    return ASSAY_OK;
}

enum assay_err ingest_redact_batch(const struct ingest_redact *ir, struct sample_batch *b,
                                   struct sample_error *e)
{
    if (!ir || ir->n_apps == 0)
        return ASSAY_OK;
    for (size_t i = 0; i < b->n; i++) {
        struct sample *s = &b->items[i];
        const struct redact_set *set = ingest_redact_for(ir, s->app);
        if (!set)
            continue;
        /* (A sample of the fast parser has its document built here, once.) */
        json_t *doc = sample_doc(s);
        enum assay_err err = ingest_redact_doc(ir, set, doc, (long)i, e);
        /* The flattened copies too, so that nothing raw is left in the sample. */
        if (!err)
            err = redact_owned(set, &s->input, (long)i, "input", e);
        if (!err)
            err = redact_owned(set, &s->context, (long)i, "context", e);
        if (err)
            return err;
        /* json_string_setn replaced the strings these pointed into. */
        s->output = json_string_value(json_object_get(doc, "output"));
        s->reference = json_string_value(json_object_get(doc, "reference"));
        /* The client's own text holds what was just redacted: the stored
         * document must be serialised from the redacted doc, never spliced
         * from the request body (sample_doc_text). */
        s->raw = NULL;
        s->raw_len = 0;
    }
    return ASSAY_OK;
}
