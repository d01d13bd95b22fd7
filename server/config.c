/*
 * server/config: loading and validating the JSON configuration. Called by
 * every subcommand that takes --config (serve, judge, eval, backtest).
 */
#include "server/config.h"

#include "aws/credentials.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_JUDGE_MODEL "anthropic.claude-3-haiku-20240307-v1:0"

struct loader {
    const char *name; /* file name for messages */
    config_getenv_fn getenv_fn;
    void *env_ctx;
    char *errbuf;
};

static const char *env(const struct loader *l, const char *name)
{
    const char *v = l->getenv_fn ? l->getenv_fn(l->env_ctx, name) : getenv(name);
    return v && *v ? v : NULL;
}

static enum assay_err bad(const struct loader *l, const char *path, const char *what)
{
    return assay_errbuf_set(l->errbuf, ASSAY_ERR_CONFIG, "%s: %s: %s", l->name, path, what);
}

/* Warns about keys of obj that are not in known (NULL-terminated). */
static void warn_unknown(const struct loader *l, const json_t *obj, const char *path,
                         const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int found = 0;
        for (const char *const *k = known; *k && !found; k++)
            found = strcmp(*k, key) == 0;
        if (!found)
            LOG_WARN("config.unknown_key", LOG_S("file", l->name), LOG_S("section", path),
                     LOG_S("key", key));
    }
}

static void join(char *out, size_t n, const char *path, const char *key)
{
    if (path && *path)
        snprintf(out, n, "%s.%s", path, key);
    else
        snprintf(out, n, "%s", key);
}

/* An optional object member: NULL when absent; an error when present but not an object. */
static enum assay_err get_object(const struct loader *l, const json_t *obj, const char *path,
                                 const char *key, json_t **out)
{
    *out = json_object_get(obj, key);
    if (*out && !json_is_object(*out)) {
        char p[256];
        join(p, sizeof p, path, key);
        *out = NULL;
        return bad(l, p, "must be an object");
    }
    return ASSAY_OK;
}

static enum assay_err get_string(const struct loader *l, const json_t *obj, const char *path,
                                 const char *key, const char *def, char **out)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v || json_is_null(v)) {
        *out = def ? xstrdup(def) : NULL;
        return ASSAY_OK;
    }
    char p[256];
    join(p, sizeof p, path, key);
    if (!json_is_string(v))
        return bad(l, p, "must be a string");
    if (json_string_length(v) == 0 || strlen(json_string_value(v)) != json_string_length(v))
        return bad(l, p, "must be a non-empty string without NUL bytes");
    *out = xstrdup(json_string_value(v));
    return ASSAY_OK;
}

static enum assay_err get_number(const struct loader *l, const json_t *obj, const char *path,
                                 const char *key, double min, double max, double def, double *out)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) {
        *out = def;
        return ASSAY_OK;
    }
    char p[256], what[128];
    join(p, sizeof p, path, key);
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) < min ||
        json_number_value(v) > max) {
        snprintf(what, sizeof what, "must be a number from %g to %g", min, max);
        return bad(l, p, what);
    }
    *out = json_number_value(v);
    return ASSAY_OK;
}

static enum assay_err get_int(const struct loader *l, const json_t *obj, const char *path,
                              const char *key, int64_t min, int64_t max, int64_t def, int64_t *out)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) {
        *out = def;
        return ASSAY_OK;
    }
    char p[256], what[128];
    join(p, sizeof p, path, key);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(what, sizeof what, "must be an integer from %lld to %lld", (long long)min,
                 (long long)max);
        return bad(l, p, what);
    }
    *out = json_integer_value(v);
    return ASSAY_OK;
}

static enum assay_err get_bool(const struct loader *l, const json_t *obj, const char *path,
                               const char *key, int def, int *out)
{
    const json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) {
        *out = def;
        return ASSAY_OK;
    }
    if (!json_is_boolean(v)) {
        char p[256];
        join(p, sizeof p, path, key);
        return bad(l, p, "must be true or false");
    }
    *out = json_is_true(v);
    return ASSAY_OK;
}

static enum assay_err get_string_array(const struct loader *l, const json_t *obj, const char *path,
                                       const char *key, char ***out, size_t *n)
{
    const json_t *v = json_object_get(obj, key);
    char p[256];
    join(p, sizeof p, path, key);
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(l, p, "must be a non-empty array of strings");
    *n = json_array_size(v);
    *out = xcalloc(*n, sizeof **out);
    for (size_t i = 0; i < *n; i++) {
        const json_t *s = json_array_get(v, i);
        if (!json_is_string(s) || json_string_length(s) == 0) {
            char what[64];
            snprintf(what, sizeof what, "element %zu must be a non-empty string", i);
            return bad(l, p, what);
        }
        (*out)[i] = xstrdup(json_string_value(s));
    }
    return ASSAY_OK;
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* DESIGN.md: an app name is 1-64 characters of [A-Za-z0-9._-]. */
static int valid_app_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

static enum assay_err load_app(const struct loader *l, const char *name, const json_t *obj,
                               struct config_app *app)
{
    static const char *const known[] = {"sample_rate",
                                        "rubrics",
                                        "max_judged_per_minute",
                                        "sample_negative_feedback",
                                        "redact",
                                        "keep_unsampled_text",
                                        NULL};
    char path[128];
    snprintf(path, sizeof path, "apps.%s", name);
    app->name = xstrdup(name);
    if (!valid_app_name(name))
        return bad(l, path, "an app name is 1-64 characters of A-Z a-z 0-9 . _ -");
    if (!json_is_object(obj))
        return bad(l, path, "must be an object");
    warn_unknown(l, obj, path, known);
    enum assay_err err = get_number(l, obj, path, "sample_rate", 0, 1, 1.0, &app->sample_rate);
    if (err)
        return err;
    if (json_object_get(obj, "rubrics")) {
        err = get_string_array(l, obj, path, "rubrics", &app->rubrics, &app->n_rubrics);
    } else {
        app->rubrics = xcalloc(1, sizeof *app->rubrics);
        app->rubrics[0] = xstrdup("helpfulness");
        app->n_rubrics = 1;
    }
    if (err)
        return err;
    err = get_int(l, obj, path, "max_judged_per_minute", 0, INT64_C(1) << 40, 0,
                  &app->max_judged_per_minute);
    if (err)
        return err;
    err = get_bool(l, obj, path, "sample_negative_feedback", 1, &app->sample_negative_feedback);
    if (err)
        return err;
    /* Off: a sample not judged is stored without its text (STORE.md, "Samples without text"). */
    err = get_bool(l, obj, path, "keep_unsampled_text", 0, &app->keep_unsampled_text);
    if (err)
        return err;
    app->redact = json_object_get(obj, "redact");
    return ASSAY_OK;
}

static enum assay_err load_apps(const struct loader *l, const json_t *root, struct config *c)
{
    const json_t *apps = json_object_get(root, "apps");
    if (!apps) {
        c->apps = xcalloc(1, sizeof *c->apps);
        c->n_apps = 1;
        json_t *empty = json_object();
        enum assay_err err = load_app(l, CONFIG_DEFAULT_APP, empty, &c->apps[0]);
        json_decref(empty);
        return err;
    }
    c->apps_given = 1;
    if (!json_is_object(apps))
        return bad(l, "apps", "must be an object of app name to settings");
    c->apps = xcalloc(json_object_size(apps) + 1, sizeof *c->apps);
    const char *name;
    json_t *v;
    json_object_foreach((json_t *)apps, name, v)
    {
        enum assay_err err = load_app(l, name, v, &c->apps[c->n_apps++]);
        if (err)
            return err;
    }
    return ASSAY_OK;
}

static int hex_digit(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

static enum assay_err load_auth(const struct loader *l, const json_t *root, struct config *c)
{
    json_t *auth;
    enum assay_err err = get_object(l, root, "", "auth", &auth);
    if (err || !auth)
        return err;
    static const char *const known[] = {"keys", NULL};
    warn_unknown(l, auth, "auth", known);
    const json_t *keys = json_object_get(auth, "keys");
    if (!keys)
        return ASSAY_OK;
    if (!json_is_array(keys))
        return bad(l, "auth.keys", "must be an array of {\"sha256\", \"apps\"}");
    c->keys = xcalloc(json_array_size(keys) + 1, sizeof *c->keys);
    for (size_t i = 0; i < json_array_size(keys); i++) {
        const json_t *k = json_array_get(keys, i);
        char path[64];
        snprintf(path, sizeof path, "auth.keys[%zu]", i);
        if (!json_is_object(k))
            return bad(l, path, "must be an object");
        static const char *const kknown[] = {"sha256", "apps", "name", NULL};
        warn_unknown(l, k, path, kknown);
        struct config_api_key *key = &c->keys[c->n_keys++];
        const char *hex = jsonutil_str(k, "sha256");
        if (!hex || strlen(hex) != 64)
            return bad(l, path, "sha256 must be the 64 hex digits of the key's SHA-256");
        for (int b = 0; b < 32; b++) {
            int hi = hex_digit(hex[2 * b]), lo = hex_digit(hex[2 * b + 1]);
            if (hi < 0 || lo < 0)
                return bad(l, path, "sha256 must be the 64 hex digits of the key's SHA-256");
            key->sha256[b] = (unsigned char)(hi << 4 | lo);
        }
        err = get_string_array(l, k, path, "apps", &key->apps, &key->n_apps);
        if (err)
            return err;
    }
    return ASSAY_OK;
}

static enum assay_err load_aws(const struct loader *l, const json_t *root, struct config *c)
{
    json_t *aws, *endpoints = NULL;
    enum assay_err err = get_object(l, root, "", "aws", &aws);
    if (err)
        return err;
    static const char *const known[] = {"region", "profile", "endpoints", NULL};
    if (aws) {
        warn_unknown(l, aws, "aws", known);
        err = get_object(l, aws, "aws", "endpoints", &endpoints);
        if (err)
            return err;
    }
    if ((err = get_string(l, aws, "aws", "region", NULL, &c->aws.region)) ||
        (err = get_string(l, aws, "aws", "profile", NULL, &c->aws.profile)) ||
        (err = get_string(l, endpoints, "aws.endpoints", "bedrock_runtime", NULL,
                          &c->aws.bedrock_endpoint)) ||
        (err = get_string(l, endpoints, "aws.endpoints", "cloudwatch", NULL,
                          &c->aws.cloudwatch_endpoint)) ||
        (err = get_string(l, endpoints, "aws.endpoints", "sns", NULL, &c->aws.sns_endpoint)))
        return err;
    if (endpoints) {
        static const char *const eknown[] = {"bedrock_runtime", "cloudwatch", "sns", NULL};
        warn_unknown(l, endpoints, "aws.endpoints", eknown);
    }
    if (!c->aws.region) {
        struct creds_options co = {
            .getenv = l->getenv_fn, .getenv_ctx = l->env_ctx, .profile = c->aws.profile};
        if (creds_region_resolve(&co, &c->aws.region, NULL) != ASSAY_OK || !c->aws.region) {
            free(c->aws.region);
            c->aws.region = xstrdup("us-east-1");
        }
    }
    /* The SDKs' endpoint variables, unless the config names an endpoint. */
    const char *ignore = env(l, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
    if (!ignore || strcmp(ignore, "true") != 0) {
        const char *global = env(l, "AWS_ENDPOINT_URL");
        const char *b = env(l, "AWS_ENDPOINT_URL_BEDROCK_RUNTIME");
        const char *w = env(l, "AWS_ENDPOINT_URL_CLOUDWATCH");
        if (!c->aws.bedrock_endpoint && (b || global))
            c->aws.bedrock_endpoint = xstrdup(b ? b : global);
        const char *n = env(l, "AWS_ENDPOINT_URL_SNS");
        if (!c->aws.cloudwatch_endpoint && (w || global))
            c->aws.cloudwatch_endpoint = xstrdup(w ? w : global);
        if (!c->aws.sns_endpoint && (n || global))
            c->aws.sns_endpoint = xstrdup(n ? n : global);
    }
    return ASSAY_OK;
}

static enum assay_err load_judge(const struct loader *l, const json_t *root, struct config *c)
{
    json_t *j;
    enum assay_err err = get_object(l, root, "", "judge", &j);
    if (err)
        return err;
    static const char *const known[] = {"model_id",
                                        "max_concurrency",
                                        "requests_per_minute",
                                        "tokens_per_minute",
                                        "timeout_ms",
                                        "max_attempts",
                                        NULL};
    if (j)
        warn_unknown(l, j, "judge", known);
    int64_t conc, attempts;
    if ((err = get_string(l, j, "judge", "model_id", DEFAULT_JUDGE_MODEL, &c->judge.model_id)) ||
        (err = get_int(l, j, "judge", "max_concurrency", 1, 100000, 64, &conc)) ||
        (err = get_number(l, j, "judge", "requests_per_minute", 0, 1e9, 0,
                          &c->judge.requests_per_minute)) ||
        (err = get_number(l, j, "judge", "tokens_per_minute", 0, 1e12, 0,
                          &c->judge.tokens_per_minute)) ||
        (err = get_int(l, j, "judge", "timeout_ms", 100, 3600000, 60000, &c->judge.timeout_ms)) ||
        (err = get_int(l, j, "judge", "max_attempts", 1, 20, 5, &attempts)))
        return err;
    c->judge.max_concurrency = (int)conc;
    c->judge.max_attempts = (int)attempts;
    return ASSAY_OK;
}

static enum assay_err load_metrics(const struct loader *l, const json_t *root, struct config *c)
{
    json_t *m;
    enum assay_err err = get_object(l, root, "", "metrics", &m);
    if (err)
        return err;
    static const char *const known[] = {"sink", "namespace",      "period_s", "emf_path",
                                        "tags", "max_tag_values", NULL};
    if (m)
        warn_unknown(l, m, "metrics", known);
    if ((err = get_string(l, m, "metrics", "sink", "cloudwatch", &c->metrics.sink)) ||
        (err = get_string(l, m, "metrics", "namespace", "Assay", &c->metrics.namespace_)) ||
        (err = get_int(l, m, "metrics", "period_s", 1, 86400, 60, &c->metrics.period_s)) ||
        (err = get_string(l, m, "metrics", "emf_path", "-", &c->metrics.emf_path)))
        return err;
    if (strcmp(c->metrics.sink, "cloudwatch") != 0 && strcmp(c->metrics.sink, "emf") != 0 &&
        strcmp(c->metrics.sink, "none") != 0)
        return bad(l, "metrics.sink", "must be \"cloudwatch\", \"emf\" or \"none\"");
    /* CloudWatch stores high-resolution (1 s) or standard (60 s multiples) periods. */
    if (c->metrics.period_s != 1 && c->metrics.period_s % 60 != 0 && c->metrics.period_s > 60)
        return bad(l, "metrics.period_s", "must be 1-60, or a multiple of 60");
    return ASSAY_OK;
}

static enum assay_err load_server(const struct loader *l, const json_t *root, struct config *c)
{
    json_t *s;
    enum assay_err err = get_object(l, root, "", "server", &s);
    if (err)
        return err;
    static const char *const known[] = {"max_body_bytes",
                                        "max_batch",
                                        "max_queue",
                                        "retry_after_s",
                                        "shutdown_timeout_s",
                                        "retention_days",
                                        "threads",
                                        "retention_interval_s",
                                        "commit_wait_us",
                                        NULL};
    if (s)
        warn_unknown(l, s, "server", known);
    int64_t threads;
    if ((err = get_int(l, s, "server", "max_body_bytes", 1024, INT64_C(1) << 32, 10 << 20,
                       &c->server.max_body_bytes)) ||
        (err = get_int(l, s, "server", "max_batch", 1, 1000000, 1000, &c->server.max_batch)) ||
        (err = get_int(l, s, "server", "max_queue", 1, INT64_C(1) << 40, 100000,
                       &c->server.max_queue)) ||
        (err = get_int(l, s, "server", "retry_after_s", 1, 3600, 5, &c->server.retry_after_s)) ||
        (err = get_int(l, s, "server", "shutdown_timeout_s", 0, 3600, 30,
                       &c->server.shutdown_timeout_s)) ||
        (err =
             get_int(l, s, "server", "retention_days", 0, 36500, 30, &c->server.retention_days)) ||
        (err = get_int(l, s, "server", "retention_interval_s", 1, 86400 * 7, 3600,
                       &c->server.retention_interval_s)) ||
        (err = get_int(l, s, "server", "threads", 0, 1024, 0, &threads)) ||
        (err =
             get_int(l, s, "server", "commit_wait_us", 0, 1000000, 500, &c->server.commit_wait_us)))
        return err;
    c->server.threads = (int)threads;
    return ASSAY_OK;
}

static enum assay_err load_root(const struct loader *l, json_t *root, struct config *c)
{
    static const char *const known[] = {"listen",      "data_dir", "log_level", "aws",  "judge",
                                        "rubrics_dir", "apps",     "metrics",   "auth", "server",
                                        "monitor",     "alarms",   "golden",    NULL};
    if (!json_is_object(root))
        return bad(l, "(top level)", "the configuration must be a JSON object");
    warn_unknown(l, root, "(top level)", known);
    enum assay_err err;
    if ((err = get_string(l, root, "", "listen", "127.0.0.1:8787", &c->listen)) ||
        (err = get_string(l, root, "", "data_dir", "var", &c->data_dir)) ||
        (err = get_string(l, root, "", "log_level", "info", &c->log_level)) ||
        (err = get_string(l, root, "", "rubrics_dir", "rubrics", &c->rubrics_dir)))
        return err;
    enum log_level level;
    if (log_level_parse(c->log_level, &level) != 0)
        return bad(l, "log_level", "must be debug, info, warn, error or off");
    const char *colon = strrchr(c->listen, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == c->listen || !end || *end || port < 0 || port > 65535)
        return bad(l, "listen", "must be HOST:PORT, e.g. 127.0.0.1:8787");
    if ((err = load_aws(l, root, c)) || (err = load_judge(l, root, c)) ||
        (err = load_apps(l, root, c)) || (err = load_metrics(l, root, c)) ||
        (err = load_auth(l, root, c)) || (err = load_server(l, root, c)))
        return err;
    json_t *section;
    if ((err = get_object(l, root, "", "monitor", &section)))
        return err;
    c->monitor = section;
    if ((err = get_object(l, root, "", "alarms", &section)))
        return err;
    c->alarms = section;
    c->golden = json_object_get(root, "golden");
    if (c->golden && !json_is_array(c->golden))
        return bad(l, "golden", "must be an array of scheduled golden-set runs");
    return ASSAY_OK;
}

enum assay_err config_parse(const char *text, size_t len, const char *name,
                            config_getenv_fn getenv_fn, void *env_ctx, struct config **out,
                            char *errbuf)
{
    struct loader l = {name ? name : "(config)", getenv_fn, env_ctx, errbuf};
    *out = NULL;
    char jerr[ASSAY_ERRBUF_SIZE];
    json_t *root = jsonutil_parse(text, len, jerr);
    if (!root)
        return assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "%s: %s", l.name, jerr);
    struct config *c = xcalloc(1, sizeof *c);
    c->root = root;
    c->path = name ? xstrdup(name) : NULL;
    enum assay_err err = load_root(&l, root, c);
    if (err) {
        config_free(c);
        return err;
    }
    *out = c;
    return ASSAY_OK;
}

enum assay_err config_load(const char *path, config_getenv_fn getenv_fn, void *env_ctx,
                           struct config **out, char *errbuf)
{
    if (!path)
        return config_parse("{}", 2, NULL, getenv_fn, env_ctx, out, errbuf);
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct buf b = BUF_INIT;
    char chunk[8192];
    size_t n;
    enum assay_err err = ASSAY_OK;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > (16u << 20)) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "%s: larger than 16 MiB", path);
            break;
        }
        buf_append(&b, chunk, n);
    }
    if (!err && ferror(f))
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "%s: read error", path);
    fclose(f);
    if (!err)
        err = config_parse(buf_cstr(&b), b.len, path, getenv_fn, env_ctx, out, errbuf);
    buf_clear(&b);
    return err;
}

void config_free(struct config *c)
{
    if (!c)
        return;
    free(c->path);
    free(c->listen);
    free(c->data_dir);
    free(c->log_level);
    free(c->aws.region);
    free(c->aws.bedrock_endpoint);
    free(c->aws.cloudwatch_endpoint);
    free(c->aws.sns_endpoint);
    free(c->aws.profile);
    free(c->judge.model_id);
    free(c->rubrics_dir);
    for (size_t i = 0; c->apps && i < c->n_apps; i++) {
        free(c->apps[i].name);
        free_strings(c->apps[i].rubrics, c->apps[i].n_rubrics);
    }
    free(c->apps);
    free(c->metrics.sink);
    free(c->metrics.namespace_);
    free(c->metrics.emf_path);
    for (size_t i = 0; c->keys && i < c->n_keys; i++)
        free_strings(c->keys[i].apps, c->keys[i].n_apps);
    free(c->keys);
    json_decref(c->root);
    free(c);
}

const struct config_app *config_app_find(const struct config *c, const char *name)
{
    const struct config_app *fallback = NULL;
    for (size_t i = 0; i < c->n_apps; i++) {
        if (strcmp(c->apps[i].name, name) == 0)
            return &c->apps[i];
        if (strcmp(c->apps[i].name, CONFIG_DEFAULT_APP) == 0)
            fallback = &c->apps[i];
    }
    return fallback;
}

const struct config_api_key *config_key_find(const struct config *c, const unsigned char digest[32])
{
    const struct config_api_key *found = NULL;
    /* Every key is compared in full, so timing says nothing of which matched. */
    for (size_t i = 0; i < c->n_keys; i++) {
        unsigned char diff = 0;
        for (int b = 0; b < 32; b++)
            diff |= c->keys[i].sha256[b] ^ digest[b];
        if (diff == 0)
            found = &c->keys[i];
    }
    return found;
}

int config_api_key_allows(const struct config_api_key *k, const char *app)
{
    for (size_t a = 0; a < k->n_apps; a++)
        if (strcmp(k->apps[a], "*") == 0 || strcmp(k->apps[a], app) == 0)
            return 1;
    return 0;
}
