/*
 * server/cmd_serve: `assay serve --config FILE [--port-file FILE]`, the
 * service. Loads the configuration and the rubrics, opens the store under
 * data_dir, serves the HTTP API (server/http_api), judges queued jobs
 * (server/worker over server/judging) and, on SIGTERM or SIGINT, stops
 * accepting, answers the inserts in flight, lets judge calls finish or puts
 * them back in the queue within server.shutdown_timeout_s, closes the store
 * and exits 0. Metrics go out through server/publishing; with the cloudwatch
 * sink the config's alarms are reconciled at start (server/alarming).
 *
 * Signals are blocked in every thread and taken by sigwait() in the main
 * thread, so no handler runs in async-signal context.
 */
#include "server/commands.h"

#include "common/alloc.h"
#include "common/log.h"
#include "judges/rubric.h"
#include "server/alarming.h"
#include "server/config.h"
#include "server/retention.h"
#include "common/buf.h"
#include "common/clock.h"
#include "server/golden_service.h"
#include "server/http_api.h"
#include "server/ingest_redact.h"
#include "server/judging.h"
#include "server/monitoring.h"
#include "server/prom.h"
#include "server/publishing.h"
#include "server/sampler.h"
#include "server/store.h"
#include "server/worker.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *to)
{
    fprintf(to, "usage: assay serve [--config FILE] [--port-file FILE]\n\n"
                "Runs the service: the HTTP API, the durable queue and the judges.\n\n"
                "  --config FILE     the JSON configuration (default: built-in defaults)\n"
                "  --port-file FILE  write the bound TCP port there once started\n"
                "                    (for \"listen\": \"127.0.0.1:0\")\n"
                "  --help            this text\n\n"
                "Stops on SIGTERM or SIGINT: no new connections, samples in flight\n"
                "answered, judge calls finished or re-queued within\n"
                "server.shutdown_timeout_s, the store closed cleanly; exit status 0.\n\n"
                "Logs are JSON lines on stderr; ASSAY_LOG_LEVEL overrides log_level.\n"
                "AWS credentials, region and endpoints come from the usual AWS\n"
                "environment; without credentials samples are queued, not judged.\n");
}

/* mkdir -p for data_dir; 0 or -1 with errno. */
static int make_dirs(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(tmp, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* Written to a temporary name and renamed, so a reader never sees half a file. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* rubrics_dir as given when it exists from here; else beside the config file (as `assay judge`). */
static char *rubrics_path(const struct config *cfg)
{
    struct stat st;
    const char *dir = cfg->rubrics_dir;
    if (dir[0] == '/' || (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) || !cfg->path)
        return xstrdup(dir);
    char *copy = xstrdup(cfg->path);
    struct buf b = BUF_INIT;
    buf_appendf(&b, "%s/%s", dirname(copy), dir);
    free(copy);
    return buf_detach(&b, NULL);
}

static void poke_worker(void *ctx)
{
    worker_poke(ctx);
}

/* Every rubric an app names must exist. */
static int check_app_rubrics(const struct config *cfg, const struct rubric_registry *reg,
                             const char *dir)
{
    for (size_t a = 0; a < cfg->n_apps; a++)
        for (size_t i = 0; i < cfg->apps[a].n_rubrics; i++)
            if (!rubric_registry_find(reg, cfg->apps[a].rubrics[i])) {
                fprintf(stderr, "assay serve: apps.%s.rubrics: no rubric named \"%s\" in %s\n",
                        cfg->apps[a].name, cfg->apps[a].rubrics[i], dir);
                return -1;
            }
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    int status = 1;
    const char *config_path = NULL, *port_file = NULL;
    struct config *cfg = NULL;
    struct rubric_registry *rubrics = NULL;
    struct store *store = NULL;
    struct http_api *api = NULL;
    struct prom *prom = NULL;
    struct sampler *sampler = NULL;
    struct ingest_redact *redact = NULL;
    struct judging *judging = NULL;
    struct worker *worker = NULL;
    struct publishing *publishing = NULL;
    struct golden_service *golden = NULL;
    struct monitoring *monitoring = NULL;
    struct alarming *alarming = NULL;
    char *rubrics_dir = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    char *db_path = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else {
            fprintf(stderr, "assay serve: unknown or incomplete option '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    if (config_load(config_path, NULL, NULL, &cfg, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: %s\n", errbuf);
        goto out;
    }
    enum log_level level;
    const char *env_level = getenv("ASSAY_LOG_LEVEL");
    if (env_level && *env_level && log_level_parse(env_level, &level) == 0)
        log_set_level(level);
    else if (cfg->log_level && log_level_parse(cfg->log_level, &level) == 0)
        log_set_level(level);

    rubrics_dir = rubrics_path(cfg);
    if (rubric_registry_load(rubrics_dir, &rubrics, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: rubrics_dir: %s\n", errbuf);
        goto out;
    }
    if (check_app_rubrics(cfg, rubrics, rubrics_dir) != 0)
        goto out;
    if (make_dirs(cfg->data_dir) != 0) {
        fprintf(stderr, "assay serve: data_dir: cannot create %s: %s\n", cfg->data_dir,
                strerror(errno));
        goto out;
    }

    /* Before any thread exists: they all inherit the mask, and sigwait takes the signals. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    prom = prom_new();
    sampler = sampler_new(NULL);
    /* One redact set per app, shared by ingest (before the store) and the worker (before Bedrock).
     */
    if (ingest_redact_new(cfg, &redact, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: %s\n", errbuf);
        goto out;
    }
    struct http_api_options ho = {
        .cfg = cfg, .rubrics = rubrics, .sampler = sampler, .prom = prom, .redact = redact};
    if (http_api_start(&ho, &api, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: %s\n", errbuf);
        goto out;
    }
    unsigned port = http_api_port(api);

    size_t n = strlen(cfg->data_dir) + sizeof STORE_SQLITE_FILENAME + 2;
    db_path = xmalloc(n);
    snprintf(db_path, n, "%s/%s", cfg->data_dir, STORE_SQLITE_FILENAME);
    struct store_sqlite_options so;
    store_sqlite_options_init(&so);
    so.path = db_path;
    if (store_sqlite_open(&so, &store, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: store %s: %s\n", db_path, errbuf);
        goto out;
    }
    http_api_set_store(api, store);
    /*
     * The judges. Without AWS credentials the service still accepts and
     * queues samples durably; they are judged once it runs with credentials.
     */
    enum assay_err jerr = judging_open(cfg, &judging, errbuf);
    if (jerr != ASSAY_OK) {
        LOG_ERROR("serve.judging_disabled", LOG_S("error", assay_err_name(jerr)),
                  LOG_S("detail", errbuf),
                  LOG_S("effect", "samples are accepted and queued, not judged"));
    }
    /* CloudWatch metrics (or EMF lines); shares the judges' transport and credentials. */
    if (publishing_open(cfg, store, judging_transport(judging), judging_creds(judging), &publishing,
                        errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: metrics: %s\n", errbuf);
        goto out;
    }
    http_api_set_publish(api, publishing_get(publishing));
    /* The monitor: a series per app x rubric x model_id, restored from the store. */
    if (monitoring_open(cfg, store, publishing_get(publishing), judging_creds(judging), &monitoring,
                        errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: monitor: %s\n", errbuf);
        goto out;
    }
    http_api_set_series(api, monitoring_series(monitoring));
    judging_set_publish(judging, publishing_get(publishing));
    /* Alarms as configuration: reconciled on a thread, retried while CloudWatch is away. */
    if (publishing_cloudwatch(publishing) && alarming_start(cfg, publishing_cloudwatch(publishing),
                                                            NULL, &alarming, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: alarms: %s\n", errbuf);
        goto out;
    }
    if (judging) {
        struct worker_options wo = {.store = store,
                                    .cfg = cfg,
                                    .rubrics = rubrics,
                                    .judge = judging_judge,
                                    .judge_ctx = judging,
                                    .prom = prom,
                                    .publish = publishing_get(publishing),
                                    .series = monitoring_series(monitoring),
                                    .redact = redact};
        if (worker_start(&wo, &worker, errbuf) != ASSAY_OK) {
            fprintf(stderr, "assay serve: %s\n", errbuf);
            goto out;
        }
        http_api_set_jobs_hook(api, poke_worker, worker);
    }
    /* Golden-set runs: the config's entries on schedule, and POST /v1/golden-runs. */
    struct golden_service_options go = {.cfg = cfg,
                                        .store = store,
                                        .reg = rubrics,
                                        .runner = judging_runner(judging),
                                        .bedrock = judging_bedrock(judging),
                                        .publish = publishing_get(publishing)};
    if (golden_service_open(&go, &golden, errbuf) != ASSAY_OK ||
        golden_service_start(golden, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay serve: %s\n", errbuf);
        goto out;
    }
    http_api_set_golden(api, golden_service_post, golden);
    /* The port file says "started": written once every start-up check passed,
     * so a supervisor (or a test) that sees it knows start-up cannot fail. */
    if (port_file && write_port_file(port_file, port) != 0) {
        fprintf(stderr, "assay serve: --port-file %s: %s\n", port_file, strerror(errno));
        goto out;
    }
    http_api_set_ready(api, true);
    LOG_INFO("serve.ready", LOG_I("port", port), LOG_S("data_dir", cfg->data_dir),
             LOG_I("rubrics", rubric_registry_count(rubrics)), LOG_I("apps", cfg->n_apps));

    /* Wait for SIGTERM/SIGINT; meanwhile sweep old judged samples every
     * retention_interval_s (and once now). */
    int sig = 0;
    int64_t next_sweep_ms = clock_mono_ms(NULL);
    for (;;) {
        if (clock_mono_ms(NULL) >= next_sweep_ms) {
            char rerr[ASSAY_ERRBUF_SIZE] = "";
            if (retention_sweep(store, cfg->server.retention_days, clock_now_ms(NULL), 1000, 100,
                                NULL, rerr) != ASSAY_OK)
                LOG_WARN("retention.failed", LOG_S("detail", rerr));
            next_sweep_ms = clock_mono_ms(NULL) + cfg->server.retention_interval_s * 1000;
        }
        int64_t wait_ms = next_sweep_ms - clock_mono_ms(NULL);
        struct timespec ts = {wait_ms > 0 ? wait_ms / 1000 : 0,
                              wait_ms > 0 ? (long)(wait_ms % 1000) * 1000000L : 0};
        int got = sigtimedwait(&sigs, NULL, &ts);
        if (got == SIGTERM || got == SIGINT) {
            sig = got;
            break;
        }
    }
    int64_t timeout_ms = cfg->server.shutdown_timeout_s * 1000;
    int64_t deadline = clock_mono_ms(NULL) + timeout_ms;
    LOG_INFO("serve.stopping", LOG_S("signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"),
             LOG_I("timeout_ms", timeout_ms));
    /* No new samples; those in flight answered. Then judging: finish or re-queue. */
    int left = http_api_drain(api, timeout_ms);
    int64_t rest = deadline - clock_mono_ms(NULL);
    worker_stop(worker, rest > 0 ? rest : 0);
    /* Golden runs: none starts; those running end their calls in flight and are
     * stored as cancelled, while the judge, store and publisher are open. */
    http_api_set_golden(api, NULL, NULL);
    golden_service_free(golden);
    golden = NULL;
    /* No series update after this: pending notifications are flushed. */
    http_api_set_series(api, NULL);
    monitoring_free(monitoring);
    monitoring = NULL;
    /* Metrics: every open period flushed, the outbox delivered while time remains. */
    alarming_free(alarming);
    alarming = NULL;
    publishing_stop(publishing, deadline);
    judging_close(judging); /* fires the callbacks of calls cut short */
    judging = NULL;
    worker_free(worker);
    worker = NULL;
    http_api_set_publish(api, NULL);
    publishing_free(publishing);
    publishing = NULL;
    http_api_set_store(api, NULL);
    /* Closing the store fires every insert callback still pending. */
    store_close(store);
    store = NULL;
    if (left > 0)
        left = http_api_drain(api, 1000);
    http_api_free(api);
    api = NULL;
    LOG_INFO("serve.stopped", LOG_I("unanswered", left));
    status = 0;
out:
    if (api)
        http_api_set_golden(api, NULL, NULL);
    golden_service_free(golden);
    worker_stop(worker, 0);
    if (api)
        http_api_set_series(api, NULL);
    monitoring_free(monitoring);
    alarming_free(alarming);
    publishing_stop(publishing, 0);
    judging_close(judging);
    worker_free(worker);
    if (api)
        http_api_set_publish(api, NULL);
    publishing_free(publishing);
    http_api_free(api);
    store_close(store);
    sampler_free(sampler);
    ingest_redact_free(redact);
    prom_free(prom);
    rubric_registry_free(rubrics);
    config_free(cfg);
    free(rubrics_dir);
    free(db_path);
    return status;
}
