/*
 * server/config: the service's configuration, one JSON file (DESIGN.md,
 * "Configuration"). Every key has a default, so `{}` is a valid config.
 * Loading validates every key it knows and names the key path in its error
 * ("apps.support.sample_rate: ..."); unknown keys are logged as warnings, not
 * refused, so that a newer config still starts an older binary. Sections that
 * belong to other modules (monitor, alarms, golden) are kept as JSON for those
 * modules to validate.
 *
 * AWS settings follow the SDKs: the region comes from aws.region, else
 * AWS_REGION / AWS_DEFAULT_REGION / the profile (aws/credentials), else
 * us-east-1; endpoint overrides from AWS_ENDPOINT_URL_BEDROCK_RUNTIME,
 * AWS_ENDPOINT_URL_CLOUDWATCH, AWS_ENDPOINT_URL_SNS and AWS_ENDPOINT_URL, or
 * aws.endpoints.
 *
 * Ownership: config_load returns a new config the caller frees with
 * config_free; every string and array inside belongs to it. Read-only after
 * loading, so it may be shared across threads.
 */
#ifndef ASSAY_SERVER_CONFIG_H
#define ASSAY_SERVER_CONFIG_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define CONFIG_DEFAULT_APP "default"

struct config_app {
    char *name;
    double sample_rate; /* [0,1], default 1.0 */
    char **rubrics;     /* default ["helpfulness"] */
    size_t n_rubrics;
    int64_t max_judged_per_minute; /* cost guard; 0 = no cap */
    int sample_negative_feedback;  /* always judge samples with negative feedback; default 1 */
    int keep_unsampled_text;       /* store the text of samples not judged too; default 0 */
    json_t *redact;                /* borrowed from the config's JSON, or NULL */
};

struct config_api_key {
    unsigned char sha256[32];
    char **apps; /* apps the key may post for; "*" for any */
    size_t n_apps;
};

struct config {
    char *path;      /* the file loaded, or NULL for built-in defaults */
    char *listen;    /* "127.0.0.1:8787" */
    char *data_dir;  /* "var" */
    char *log_level; /* "info" */

    struct {
        char *region;              /* resolved; never NULL after loading */
        char *bedrock_endpoint;    /* override, or NULL for the regional endpoint */
        char *cloudwatch_endpoint; /* override, or NULL */
        char *sns_endpoint;        /* override, or NULL (monitor.notify.sns_topic_arn) */
        char *profile;             /* aws.profile, or NULL (AWS_PROFILE) */
    } aws;

    struct {
        char *model_id;
        int max_concurrency;        /* 64 */
        double requests_per_minute; /* 0 = unlimited */
        double tokens_per_minute;   /* 0 = unlimited */
        int64_t timeout_ms;         /* per call, 60,000 */
        int max_attempts;           /* 5 */
    } judge;

    char *rubrics_dir; /* "rubrics" */

    struct config_app *apps;
    size_t n_apps;
    int apps_given; /* 0 when the file had no "apps" key (the built-in default applies) */

    struct {
        char *sink;       /* "cloudwatch", "emf" or "none" */
        char *namespace_; /* "Assay" */
        int64_t period_s; /* 60 */
        char *emf_path;   /* "-" for stdout */
    } metrics;

    struct config_api_key *keys;
    size_t n_keys;

    struct {
        int64_t max_body_bytes;       /* 10 MiB */
        int64_t max_batch;            /* 1,000 samples a request */
        int64_t max_queue;            /* queued jobs before 429; 100,000 */
        int64_t retry_after_s;        /* 5 */
        int64_t shutdown_timeout_s;   /* 30 */
        int64_t retention_days;       /* judged samples kept; 30 (0: kept for ever) */
        int64_t retention_interval_s; /* how often the sweep runs; 3,600 */
        int threads;                  /* HTTP threads; 0 = one per core */
        int64_t commit_wait_us;       /* an insert's wait for others to share its commit */
    } server;

    json_t *monitor; /* borrowed from root, or NULL */
    json_t *alarms;  /* borrowed from root, or NULL */
    json_t *golden;  /* borrowed from root, or NULL */
    json_t *root;    /* the whole document (a reference the config holds) */
};

/* The environment look-up the loader uses (a seam for tests); NULL means getenv. */
typedef const char *(*config_getenv_fn)(void *ctx, const char *name);

/*
 * Loads path (NULL: built-in defaults, as for `{}`). Returns ASSAY_OK and a
 * new config in *out, or ASSAY_ERR_IO / ASSAY_ERR_PARSE / ASSAY_ERR_CONFIG
 * with the file and key path in errbuf and *out NULL.
 */
enum assay_err config_load(const char *path, config_getenv_fn getenv_fn, void *env_ctx,
                           struct config **out, char *errbuf);
/* The same from JSON text (name is used in messages). */
enum assay_err config_parse(const char *text, size_t len, const char *name,
                            config_getenv_fn getenv_fn, void *env_ctx, struct config **out,
                            char *errbuf);
void config_free(struct config *c);

/*
 * The settings for an app: its own entry, else "default" when present, else
 * NULL (the API refuses the sample with a clear error). Borrowed.
 */
const struct config_app *config_app_find(const struct config *c, const char *name);

/*
 * The configured key whose SHA-256 is digest, or NULL (the API answers 401).
 * Compares with every key in constant time. Borrowed.
 */
const struct config_api_key *config_key_find(const struct config *c,
                                             const unsigned char digest[32]);
/* 1 when the key may post for app (its list names the app or "*"); else 0 (403). */
int config_api_key_allows(const struct config_api_key *k, const char *app);

#endif
