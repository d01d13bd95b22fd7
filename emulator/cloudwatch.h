/*
 * emulator/cloudwatch: Amazon CloudWatch as the emulator's second service,
 * in the protocol the current SDKs use (aws/README.md): AWS JSON 1.0 on
 * POST /, X-Amz-Target GraniteServiceVersion20100801.<Operation>, signed for
 * the service "monitoring", bodies optionally gzipped (Content-Encoding:
 * gzip, signed over the compressed bytes), errors as awsQueryCompatible JSON
 * services send them (the status, x-amzn-query-error: Code;Sender and a body
 * {"__type", "message"}).
 *
 * Operations: PutMetricData, GetMetricData, PutMetricAlarm, DescribeAlarms,
 * DeleteAlarms. Shapes and limits are checked strictly (emulator/README.md
 * lists them); datums are kept in memory per (namespace, metric, dimension
 * set) and timestamp as SampleCount, Sum, Minimum and Maximum, so a test can
 * read back exactly what was put; alarms are kept by name. Faults (throttling,
 * 5xx, outage windows, latency) come from the scenario's "cloudwatch" rule.
 *
 * Threading: the handler runs on many connection threads at once; the store is
 * locked. Ownership: borrows the scenario; copies the region.
 */
#ifndef ASSAY_EMULATOR_CLOUDWATCH_H
#define ASSAY_EMULATOR_CLOUDWATCH_H

#include "emulator/router.h"
#include "emulator/scenario.h"

/* Emulator-side limits that aws/cloudwatch.h does not state. */
#define CLOUDWATCH_EMU_MAX_BODY 1000000 /* JSON bytes after gunzip: the "1 MB" */
#define CLOUDWATCH_EMU_MAX_QUERIES 500
#define CLOUDWATCH_EMU_MAX_ALARM_NAMES 100
#define CLOUDWATCH_EMU_MAX_ALARM_ACTIONS 5
#define CLOUDWATCH_EMU_DEFAULT_MAX_DATAPOINTS 100800

struct cloudwatch_emu;

/* Returns a new CloudWatch service over the scenario (borrowed) for region (copied). */
struct cloudwatch_emu *cloudwatch_emu_new(struct scenario *sc, const char *region);
/* Accepts NULL. */
void cloudwatch_emu_free(struct cloudwatch_emu *cw);

/* The router entry: signing name "monitoring", POST / with the X-Amz-Target prefix. */
struct router_service cloudwatch_emu_service(struct cloudwatch_emu *cw);

#endif
