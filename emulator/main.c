/*
 * emulator/main: the assay-emulator program, the local stand-in for the AWS
 * services assay calls (Bedrock Runtime Converse now; CloudWatch joins as a
 * second entry of the service table). Parses the command line, loads the
 * scenario, starts the router on 127.0.0.1, announces the port, and stops
 * cleanly on SIGTERM or SIGINT. Usage in emulator/README.md and --help.
 */
#include "common/log.h"
#include "emulator/bedrock.h"
#include "emulator/router.h"
#include "emulator/scenario.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ACCESS_KEY_ID "AKIDEXAMPLE"
#define DEFAULT_SECRET_ACCESS_KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static const char usage_text[] =
    "usage: assay-emulator [--listen 127.0.0.1:PORT] [--scenario FILE] [--seed N]\n"
    "                      [--region R] [--port-file FILE] [--log FILE]\n"
    "                      [--access-key-id ID --secret-access-key SECRET] [--verbose]\n"
    "\n"
    "Serves Bedrock Runtime Converse (POST /model/{modelId}/converse) on 127.0.0.1,\n"
    "verifying SigV4 (service \"bedrock\") strictly, with faults from a seeded scenario\n"
    "and a deterministic judge model. See emulator/README.md.\n"
    "\n"
    "  --listen ADDR        127.0.0.1:PORT; port 0 (the default) picks a free one\n"
    "  --scenario FILE      fault plan (JSON); default: no faults\n"
    "  --seed N             overrides the scenario's seed (default 1)\n"
    "  --region R           signing region (default us-east-1)\n"
    "  --port-file FILE     write the port there once listening\n"
    "  --log FILE           request log, one JSON line per request\n"
    "  --access-key-id ID   accepted key (env ASSAY_EMULATOR_ACCESS_KEY_ID;\n"
    "                       default " DEFAULT_ACCESS_KEY_ID ")\n"
    "  --secret-access-key S  its secret (env ASSAY_EMULATOR_SECRET_ACCESS_KEY;\n"
    "                       default the SigV4 test suite's example secret)\n"
    "  --verbose            debug diagnostics on stderr\n"
    "\n"
    "Prints \"listening on http://127.0.0.1:PORT\" when ready; SIGTERM or SIGINT stops it.\n";

struct options {
    const char *listen, *scenario, *region, *port_file, *log, *akid, *secret;
    const char *seed;
    int verbose;
};

static int parse_args(int argc, char **argv, struct options *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_text, stdout);
            exit(0);
        } else if (strcmp(a, "--verbose") == 0) {
            o->verbose = 1;
            continue;
        } else if (strcmp(a, "--listen") == 0) {
            slot = &o->listen;
        } else if (strcmp(a, "--scenario") == 0) {
            slot = &o->scenario;
        } else if (strcmp(a, "--seed") == 0) {
            slot = &o->seed;
        } else if (strcmp(a, "--region") == 0) {
            slot = &o->region;
        } else if (strcmp(a, "--port-file") == 0) {
            slot = &o->port_file;
        } else if (strcmp(a, "--log") == 0) {
            slot = &o->log;
        } else if (strcmp(a, "--access-key-id") == 0) {
            slot = &o->akid;
        } else if (strcmp(a, "--secret-access-key") == 0) {
            slot = &o->secret;
        } else {
            fprintf(stderr, "assay-emulator: unknown argument: %s\n%s", a, usage_text);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "assay-emulator: %s needs a value\n", a);
            return -1;
        }
        *slot = argv[++i];
    }
    return 0;
}

/* "127.0.0.1:8080" -> host and port; returns -1 when malformed. */
static int parse_listen(const char *s, char *host, size_t host_size, uint16_t *port)
{
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= host_size)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    *port = (uint16_t)p;
    return 0;
}

/* Writes the port to path through a temporary file, so readers never see half of it. */
static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "%u\n", (unsigned)port);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    struct options o = {.listen = "127.0.0.1:0", .region = "us-east-1"};
    int rc = 1;
    struct scenario *sc = NULL;
    struct bedrock *bedrock = NULL;
    struct router *router = NULL;
    FILE *log = NULL;
    static atomic_bool stopping;
    char errbuf[ASSAY_ERRBUF_SIZE];

    if (parse_args(argc, argv, &o) != 0)
        return 2;
    log_set_level(o.verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_WARN);
    if (!o.akid)
        o.akid = getenv("ASSAY_EMULATOR_ACCESS_KEY_ID");
    if (!o.secret)
        o.secret = getenv("ASSAY_EMULATOR_SECRET_ACCESS_KEY");
    if (!o.akid || !*o.akid)
        o.akid = DEFAULT_ACCESS_KEY_ID;
    if (!o.secret || !*o.secret)
        o.secret = DEFAULT_SECRET_ACCESS_KEY;
    char host[64];
    uint16_t port;
    if (parse_listen(o.listen, host, sizeof host, &port) != 0) {
        fprintf(stderr, "assay-emulator: --listen wants 127.0.0.1:PORT, not %s\n", o.listen);
        return 2;
    }
    uint64_t seed = 0;
    if (o.seed) {
        char *end;
        errno = 0;
        seed = strtoull(o.seed, &end, 10);
        if (errno || *end || end == o.seed) {
            fprintf(stderr, "assay-emulator: --seed wants a non-negative integer\n");
            return 2;
        }
    }
    sc = scenario_new(o.scenario, o.seed != NULL, seed, errbuf);
    if (!sc) {
        fprintf(stderr, "assay-emulator: %s: %s\n", o.scenario, errbuf);
        goto out;
    }
    if (o.log && !(log = fopen(o.log, "w"))) {
        fprintf(stderr, "assay-emulator: cannot open the request log %s: %s\n", o.log,
                strerror(errno));
        goto out;
    }

    /* Signals go to main's sigwait only; every thread started later inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    bedrock = bedrock_new(sc);
    struct router_service services[] = {bedrock_service(bedrock)};
    struct router_key keys[] = {{o.akid, o.secret}};
    struct router_config cfg = {.host = host,
                                .port = port,
                                .region = o.region,
                                .keys = keys,
                                .n_keys = 1,
                                .services = services,
                                .n_services = sizeof services / sizeof *services,
                                .request_log = log,
                                .stopping = &stopping};
    router = router_start(&cfg, errbuf);
    if (!router) {
        fprintf(stderr, "assay-emulator: %s\n", errbuf);
        goto out;
    }
    if (o.port_file && write_port_file(o.port_file, router_port(router)) != 0) {
        fprintf(stderr, "assay-emulator: cannot write the port file %s\n", o.port_file);
        goto out;
    }
    printf("listening on http://127.0.0.1:%u\n", (unsigned)router_port(router));
    fflush(stdout);
    LOG_INFO("emulator.ready", LOG_I("port", router_port(router)), LOG_S("region", o.region),
             LOG_I("seed", (int64_t)scenario_seed(sc)));

    int sig = 0;
    sigwait(&sigs, &sig);
    atomic_store(&stopping, true);
    LOG_INFO("emulator.stopping", LOG_I("signal", sig));
    rc = 0;
out:
    router_stop(router);
    bedrock_free(bedrock);
    scenario_free(sc);
    if (log)
        fclose(log);
    return rc;
}
