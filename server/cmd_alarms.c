/*
 * server/cmd_alarms: `assay alarms --config FILE [--dry-run]`. Plans the
 * CloudWatch alarms the config's "alarms" section declares (monitor/alarms)
 * for every configured app x rubric, compares them with what CloudWatch has
 * (DescribeAlarms) and, without --dry-run, creates or updates the ones that
 * are missing or differ. Prints one JSON line per alarm on stdout. The same
 * plan (server/alarming) is reconciled at service start.
 */
#include "server/commands.h"

#include "aws/cloudwatch.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/err.h"
#include "common/jsonutil.h"
#include "monitor/alarms.h"
#include "server/alarming.h"
#include "server/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *to)
{
    fprintf(to,
            "usage: assay alarms --config FILE [--dry-run]\n"
            "\n"
            "Creates or updates the CloudWatch alarms the config's \"alarms\" section declares\n"
            "(docs/alarms.md), for every app x rubric of \"apps\" and of \"alarms.apps\".\n"
            "Alarms that already match are left as they are; alarms assay did not create are\n"
            "never changed or deleted.\n"
            "\n"
            "stdout: one JSON line per alarm: {\"action\": \"create\"|\"update\"|\"unchanged\"|\n"
            "        \"conflict\", \"alarm\", \"kind\", \"metric\", \"changes\": [fields],\n"
            "        \"dry_run\", \"request\": PutMetricAlarm input (create/update)}\n"
            "stderr: a summary line.\n"
            "\n"
            "options:\n"
            "  --config FILE  the service's configuration\n"
            "  --dry-run      only read (DescribeAlarms) and print what would be done\n"
            "  -h, --help     this text\n"
            "\n"
            "Credentials come from the AWS default chain; the endpoint from\n"
            "AWS_ENDPOINT_URL_CLOUDWATCH, AWS_ENDPOINT_URL or aws.endpoints.cloudwatch.\n"
            "Exit status: 0 done, 1 error (configuration, AWS), 2 usage.\n");
}

static void print_line(void *ctx, const json_t *line)
{
    (void)ctx;
    char *s = jsonutil_dump(line);
    printf("%s\n", s);
    free(s);
}

int cmd_alarms(int argc, char **argv)
{
    const char *config_path = NULL;
    int dry_run = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = 1;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else {
            fprintf(stderr, "assay alarms: unexpected argument '%s'\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!config_path) {
        fprintf(stderr, "assay alarms: --config FILE is required\n\n");
        usage(stderr);
        return 2;
    }

    int status = 1;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct config *c = NULL;
    struct alarms_plan plan;
    alarms_plan_init(&plan);
    struct http_transport *t = NULL;
    struct creds_provider *creds = NULL;
    struct cloudwatch *cw = NULL;

    if (config_load(config_path, NULL, NULL, &c, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay alarms: %s\n", errbuf);
        goto out;
    }
    if (alarming_plan_build(c, &plan, errbuf) != ASSAY_OK) {
        fprintf(stderr, "assay alarms: %s: %s\n", config_path, errbuf);
        goto out;
    }
    if (plan.n == 0) {
        fprintf(stderr, "assay alarms: the config declares no alarms (no app lists rubrics, "
                        "or alarms are disabled)\n");
        status = 0;
        goto out;
    }
    t = http_transport_new(NULL, errbuf);
    if (!t) {
        fprintf(stderr, "assay alarms: %s\n", errbuf);
        goto out;
    }
    struct creds_options co = {.transport = t, .profile = c->aws.profile};
    creds = creds_chain_new(&co);
    struct cloudwatch_options o = {.transport = t,
                                   .creds = creds,
                                   .region = c->aws.region,
                                   .endpoint = c->aws.cloudwatch_endpoint};
    retry_policy_init(&o.retry);
    cw = cloudwatch_new(&o, errbuf);
    if (!cw) {
        fprintf(stderr, "assay alarms: %s\n", errbuf);
        goto out;
    }
    struct alarms_summary sum;
    enum assay_err err = alarms_reconcile(cw, &plan, dry_run, print_line, NULL, &sum, errbuf);
    fflush(stdout);
    fprintf(stderr,
            "assay alarms: %zu planned: %zu %s, %zu %s, %zu unchanged, %zu conflicts, %zu "
            "failed%s\n",
            plan.n, sum.created, dry_run ? "to create" : "created", sum.updated,
            dry_run ? "to update" : "updated", sum.unchanged, sum.conflicts, sum.failed,
            dry_run ? " (dry run: nothing changed)" : "");
    if (err != ASSAY_OK) {
        fprintf(stderr, "assay alarms: %s\n", errbuf);
        goto out;
    }
    status = 0;
out:
    cloudwatch_free(cw);
    creds_provider_free(creds);
    http_transport_free(t);
    alarms_plan_clear(&plan);
    config_free(c);
    return status;
}
