/*
 * monitor/alarms: alarms as configuration. The config's "alarms" section
 * (schema in docs/alarms.md) declares CloudWatch alarms per app and rubric,
 * with defaults for all; the planner turns it, with the list of app x rubric
 * series, into the exact PutMetricAlarm requests; the reconciler reads the
 * alarms of those names back (DescribeAlarms) and puts only the ones that are
 * missing or differ. A restart with the same config changes nothing; alarms
 * assay did not declare are never touched, and an existing alarm of a
 * declared name that assay did not create (no "Managed by assay" description)
 * is left alone and reported as a conflict. Called by `assay alarms` and at
 * service start.
 *
 * Threading: plans are plain data, one thread at a time; the reconciler
 * blocks on the CloudWatch client (not from a transport callback).
 * Ownership: a plan owns every string its alarms point to; inputs are
 * borrowed for the duration of the call.
 */
#ifndef ASSAY_MONITOR_ALARMS_H
#define ASSAY_MONITOR_ALARMS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/cloudwatch.h"
#include "common/err.h"

/* The description every alarm assay creates opens with. */
#define ALARMS_MARKER "Managed by assay"

/* One series the alarms are declared for; model_id NULL for the {App, Rubric}
 * series (every verdict of the pair, whatever the model). */
struct alarms_target {
    const char *app;
    const char *rubric;
    const char *model_id;
};

struct alarms_planned {
    struct cloudwatch_alarm alarm; /* points into the strings below */
    char *kind;                    /* "regression", "score", "golden" */
    char *name, *description, *metric;
    struct cloudwatch_dimension dims[3];
    char *dim_values[3];
    char **alarm_actions;
    char **ok_actions;
    char *statistic, *comparison, *treat_missing;
};

struct alarms_plan {
    char *ns;
    struct alarms_planned *alarms;
    size_t n;
};

void alarms_plan_init(struct alarms_plan *plan);
/* Frees what the plan owns; accepts NULL. */
void alarms_plan_clear(struct alarms_plan *plan);

/*
 * Builds the plan: for each target, the alarms its merged settings enable
 * (top level, then alarms.apps.APP, then alarms.apps.APP.rubrics.RUBRIC),
 * plus the golden-set alarms of alarms.golden.datasets. cfg may be NULL (the
 * defaults: one regression alarm per target). ns is the metrics namespace,
 * metrics_period_s the publishing period (the alarms' default period).
 * Targets naming the same series twice give one alarm. ASSAY_ERR_CONFIG with
 * the key path in errbuf for an unknown key, a wrong type or value, or an
 * alarm CloudWatch would refuse; *plan is then empty.
 */
enum assay_err alarms_plan_build(const json_t *cfg, const char *ns, int64_t metrics_period_s,
                                 const struct alarms_target *targets, size_t n,
                                 struct alarms_plan *plan, char *errbuf);

/*
 * The app x rubric targets the config implies beyond the apps' own: apps and
 * rubrics named under alarms.apps (with a "rubrics" object). Appended to
 * *targets (xrealloc'd; strings borrowed from cfg); duplicates are skipped
 * by alarms_plan_build.
 */
void alarms_targets_from_config(const json_t *cfg, struct alarms_target **targets, size_t *n);

enum alarms_action { ALARMS_CREATE, ALARMS_UPDATE, ALARMS_UNCHANGED, ALARMS_CONFLICT };

/* "create", "update", "unchanged", "conflict". */
const char *alarms_action_name(enum alarms_action a);

/*
 * Compares a planned alarm with the service's description of the alarm of
 * that name (a MetricAlarms element; NULL when there is none). Appends the
 * names of the fields that differ to changes (a JSON array; may be NULL).
 */
enum alarms_action alarms_diff(const struct cloudwatch_alarm *want, const json_t *existing,
                               json_t *changes);

struct alarms_summary {
    size_t created, updated, unchanged, conflicts, failed;
    size_t put_calls; /* PutMetricAlarm requests made */
};

/* Called once per planned alarm, in plan order, with a JSON object (borrowed)
 * {"action", "alarm", "kind", "metric", "changes": [...], "dry_run",
 * "request": PutMetricAlarm input (create/update), "error": {...} (failed)}. */
typedef void (*alarms_report_fn)(void *ctx, const json_t *line);

/*
 * Reconciles: DescribeAlarms for the plan's names (100 a call), then, unless
 * dry_run, PutMetricAlarm for each alarm to create or update. Conflicts are
 * never put. Returns ASSAY_OK, the DescribeAlarms error (nothing put), or the
 * first PutMetricAlarm error (the others are still tried; summary->failed
 * counts them).
 */
enum assay_err alarms_reconcile(struct cloudwatch *cw, const struct alarms_plan *plan, int dry_run,
                                alarms_report_fn report, void *ctx, struct alarms_summary *summary,
                                char *errbuf);

#endif
