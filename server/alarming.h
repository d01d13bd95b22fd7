/*
 * server/alarming: alarms as configuration for `assay alarms` and `assay
 * serve`. alarming_plan_build turns the config into the plan (monitor/alarms)
 * for every app x rubric of "apps" and of "alarms.apps": the one place both
 * commands get it from. alarming_start runs the reconciliation at service
 * start on a thread of its own: it creates or updates the declared alarms
 * (PutMetricAlarm only for those missing or different, so a restart with the
 * same config puts nothing), logs what it did, and, when CloudWatch cannot be
 * reached, logs that and tries again later with a capped backoff; it is never
 * fatal to the service.
 *
 * Threading: alarming_start's thread is the only one using the plan; the
 * CloudWatch client is shared (it is thread-safe). Ownership: alarming_start
 * borrows cfg for the call and the client until alarming_free; the returned
 * object owns its plan.
 */
#ifndef ASSAY_SERVER_ALARMING_H
#define ASSAY_SERVER_ALARMING_H

#include <stdint.h>

#include "common/err.h"
#include "monitor/alarms.h"

struct cloudwatch;
struct config;

/*
 * The plan for cfg (plan initialised by the caller; cleared on failure):
 * ASSAY_OK (plan->n may be 0: no app lists rubrics, or alarms are disabled),
 * or ASSAY_ERR_CONFIG with the key path in errbuf.
 */
enum assay_err alarming_plan_build(const struct config *cfg, struct alarms_plan *plan,
                                   char *errbuf);

struct alarming_options {
    int64_t retry_base_ms; /* first wait after a failed reconciliation; 0: 5,000 */
    int64_t retry_max_ms;  /* cap of the doubling waits; 0: 300,000 */
};

struct alarming;

/*
 * Builds the plan and starts the reconciliation thread. ASSAY_OK with *out
 * NULL when the config declares no alarms; ASSAY_ERR_CONFIG (errbuf) for a
 * config the planner refuses. o may be NULL (the defaults).
 */
enum assay_err alarming_start(const struct config *cfg, struct cloudwatch *cw,
                              const struct alarming_options *o, struct alarming **out,
                              char *errbuf);

/* Stops retrying (a call in progress ends first), joins and frees; accepts NULL. */
void alarming_free(struct alarming *a);

#endif
