/*
 * server/cmd_judge: `assay judge --config FILE --rubric NAME`. Reads one
 * sample (JSON) on stdin, judges it against the named rubric with the
 * configured judge model (or locally for rule and reference rubrics), and
 * prints the verdict (JSON, the shape of GET /v1/samples' verdicts) on
 * stdout. Exit status: 0 with a verdict (scored or unscorable), 1 on an
 * error (config, rubric, sample, credentials), 2 on a usage error.
 */
#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/jsonutil.h"
#include "common/log.h"
#include "judges/judge.h"
#include "judges/llm.h"
#include "judges/redact.h"
#include "judges/rubric.h"
#include "server/commands.h"
#include "server/config.h"

#include <jansson.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STDIN_MAX ((size_t)16 * 1024 * 1024)

static const char usage_text[] =
    "usage: assay judge --config FILE --rubric NAME [--app NAME] < sample.json\n"
    "\n"
    "Judges one sample against one rubric and prints the verdict as JSON.\n"
    "\n"
    "  --config FILE   the service's configuration (judge model, region, budgets,\n"
    "                  rubrics_dir, apps); '{}' is a valid file\n"
    "  --rubric NAME   a rubric of rubrics_dir (relative to the working directory,\n"
    "                  else to the config file's directory)\n"
    "  --app NAME      whose redaction settings apply (default: the sample's \"app\",\n"
    "                  else \"default\")\n"
    "\n"
    "stdin: one sample object: output (required), input (string or Converse\n"
    "messages), context (string or array), reference, app, model_id.\n"
    "stdout: {rubric, rubric_version, judge, unscorable, score, raw_score, pass,\n"
    "reasoning, latency_ms, attempts, input_tokens, output_tokens, ...}; an\n"
    "unscorable verdict has reason and detail instead of a score.\n"
    "\n"
    "AWS settings as the AWS CLI reads them: AWS_REGION, AWS_PROFILE, the\n"
    "credentials chain, AWS_ENDPOINT_URL_BEDROCK_RUNTIME / AWS_ENDPOINT_URL,\n"
    "AWS_CA_BUNDLE.\n"
    "Exit status: 0 with a verdict (scored or unscorable), 1 on an error, 2 on\n"
    "wrong usage.\n";

struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    enum assay_err err;
    struct verdict v;
};

static void on_verdict(void *ctx, enum assay_err err, struct verdict *v)
{
    struct waiter *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->err = err;
    w->v = *v;
    verdict_init(v);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* rubrics_dir as given when it exists from here; else beside the config file. */
static char *rubrics_path(const struct config *cfg)
{
    const char *dir = cfg->rubrics_dir;
    if (dir[0] == '/' || is_dir(dir) || !cfg->path)
        return xstrdup(dir);
    char *copy = xstrdup(cfg->path);
    struct buf b = BUF_INIT;
    buf_appendf(&b, "%s/%s", dirname(copy), dir);
    free(copy);
    return buf_detach(&b, NULL);
}

static enum assay_err read_stdin(struct buf *out, char *errbuf)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (out->len + n > STDIN_MAX)
            return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE,
                                    "the sample on stdin is larger than %zu bytes", STDIN_MAX);
        buf_append(out, chunk, n);
    }
    if (ferror(stdin))
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "could not read stdin");
    return ASSAY_OK;
}

/* The AWS side: transports, credentials, the Bedrock client, the LLM judge. */
struct aws_side {
    struct http_transport *t;       /* Bedrock calls */
    struct http_transport *creds_t; /* credential fetches (never the signing thread's) */
    struct creds_provider *creds;
    struct bedrock_client *bedrock;
    struct llm_judge *llm;
};

static enum assay_err aws_start(const struct config *cfg, struct aws_side *a, char *errbuf)
{
    struct http_transport_options to = {.timeout_ms = cfg->judge.timeout_ms,
                                        .ca_file = getenv("AWS_CA_BUNDLE")};
    a->t = http_transport_new(&to, errbuf);
    if (!a->t)
        return ASSAY_ERR_INTERNAL;
    a->creds_t = http_transport_new(&to, errbuf);
    if (!a->creds_t)
        return ASSAY_ERR_INTERNAL;
    struct creds_options co = {.transport = a->creds_t, .profile = cfg->aws.profile};
    a->creds = creds_chain_new(&co);
    /* Fetch once now: a clear error before any call, and cached for signing. */
    struct creds c;
    creds_init(&c);
    char detail[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = creds_provider_get(a->creds, &c, detail);
    creds_clear(&c);
    if (err != ASSAY_OK)
        return assay_errbuf_set(errbuf, err, "no AWS credentials: %s", detail);
    struct bedrock_options bo = {.transport = a->t,
                                 .creds = a->creds,
                                 .region = cfg->aws.region,
                                 .endpoint = cfg->aws.bedrock_endpoint,
                                 .max_concurrency = cfg->judge.max_concurrency,
                                 .requests_per_minute = cfg->judge.requests_per_minute,
                                 .tokens_per_minute = cfg->judge.tokens_per_minute,
                                 .timeout_ms = cfg->judge.timeout_ms};
    retry_policy_init(&bo.retry);
    bo.retry.max_attempts = cfg->judge.max_attempts;
    a->bedrock = bedrock_client_new(&bo, errbuf);
    if (!a->bedrock)
        return ASSAY_ERR_CONFIG;
    struct llm_judge_options lo = {.bedrock = a->bedrock, .model_id = cfg->judge.model_id};
    a->llm = llm_judge_new(&lo, errbuf);
    return a->llm ? ASSAY_OK : ASSAY_ERR_INTERNAL;
}

static void aws_stop(struct aws_side *a)
{
    bedrock_client_free(a->bedrock);
    llm_judge_free(a->llm);
    http_transport_free(a->t);
    creds_provider_free(a->creds);
    http_transport_free(a->creds_t);
}

int cmd_judge(int argc, char **argv)
{
    const char *config_path = NULL, *rubric_name = NULL, *app_name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
        const char **slot = strcmp(a, "--config") == 0   ? &config_path
                            : strcmp(a, "--rubric") == 0 ? &rubric_name
                            : strcmp(a, "--app") == 0    ? &app_name
                                                         : NULL;
        if (!slot || i + 1 >= argc) {
            fprintf(stderr, "assay judge: %s: %s\n\n%s", a,
                    slot ? "needs a value" : "unknown argument", usage_text);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!config_path || !rubric_name) {
        fprintf(stderr, "assay judge: --config and --rubric are required\n\n%s", usage_text);
        return 2;
    }

    int status = 1;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct config *cfg = NULL;
    struct rubric_registry *reg = NULL;
    struct redact_set *redact = NULL;
    struct judge_runner *runner = NULL;
    struct aws_side aws = {0};
    struct buf in = BUF_INIT;
    json_t *doc = NULL;
    struct judge_sample sample = {0};
    char *dir = NULL;
    struct waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    verdict_init(&w.v);

    enum assay_err err = config_load(config_path, NULL, NULL, &cfg, errbuf);
    if (err != ASSAY_OK)
        goto out;
    enum log_level level;
    if (cfg->log_level && log_level_parse(cfg->log_level, &level) == 0)
        log_set_level(level);
    dir = rubrics_path(cfg);
    err = rubric_registry_load(dir, &reg, errbuf);
    if (err != ASSAY_OK)
        goto out;
    const struct rubric *r = rubric_registry_find(reg, rubric_name);
    if (!r) {
        struct buf names = BUF_INIT;
        for (size_t i = 0; i < rubric_registry_count(reg); i++)
            buf_appendf(&names, "%s%s", i ? ", " : "", rubric_registry_at(reg, i)->name);
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "no rubric named %s in %s (%s)",
                               rubric_name, dir, names.data ? names.data : "none");
        buf_clear(&names);
        goto out;
    }

    err = read_stdin(&in, errbuf);
    if (err != ASSAY_OK)
        goto out;
    char jerr[ASSAY_ERRBUF_SIZE] = "";
    doc = jsonutil_parse(in.data ? in.data : "", in.len, jerr);
    if (!doc) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_PARSE, "the sample on stdin: %s", jerr);
        goto out;
    }
    char serr[ASSAY_ERRBUF_SIZE] = "";
    err = judge_sample_from_json(doc, &sample, serr);
    if (err != ASSAY_OK) {
        assay_errbuf_set(errbuf, err, "the sample on stdin: %s", serr);
        goto out;
    }
    const char *app = app_name ? app_name : sample.app ? sample.app : CONFIG_DEFAULT_APP;
    const struct config_app *ca = config_app_find(cfg, app);
    if (ca && ca->redact) {
        err = redact_set_from_json(ca->redact, &redact, errbuf);
        if (err != ASSAY_OK)
            goto out;
    }

    if (r->kind == RUBRIC_KIND_LLM) {
        err = aws_start(cfg, &aws, errbuf);
        if (err != ASSAY_OK)
            goto out;
    }
    runner = judge_runner_new(aws.llm, NULL);
    struct rubric_sample view = judge_sample_view(&sample);
    err = judge_run(runner, r, &view, redact, on_verdict, &w, errbuf);
    if (err != ASSAY_OK)
        goto out;
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);

    json_t *vj = verdict_to_json(&w.v);
    char *text = json_dumps(vj, JSON_COMPACT);
    json_decref(vj);
    if (text) {
        printf("%s\n", text);
        free(text);
        status = fflush(stdout) == 0 ? 0 : 1;
    }
    if (w.err != ASSAY_OK && w.v.outcome != VERDICT_SCORED)
        LOG_WARN("judge.unscorable", LOG_S("rubric", r->name), LOG_S("reason", w.v.reason),
                 LOG_S("error", assay_err_name(w.err)));
out:
    if (status != 0 && err != ASSAY_OK)
        fprintf(stderr, "assay judge: %s\n", errbuf[0] ? errbuf : assay_err_message(err));
    aws_stop(&aws);
    judge_runner_free(runner);
    verdict_clear(&w.v);
    judge_sample_clear(&sample);
    json_decref(doc);
    buf_clear(&in);
    redact_set_free(redact);
    rubric_registry_free(reg);
    config_free(cfg);
    free(dir);
    return status;
}
