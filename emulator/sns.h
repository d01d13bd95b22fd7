/*
 * emulator/sns: Amazon SNS's Publish for the emulator, in SNS's query
 * protocol: POST / with a form body (Action=Publish&Version=2010-03-31&
 * TopicArn=...&Message=...), signed for the service "sns", answered with
 * PublishResponse XML, errors as <ErrorResponse> XML with the codes of the
 * @aws-sdk/client-sns model (InvalidParameter 400, Throttled 429,
 * InternalError 500, ...). Any well-formed topic ARN of the emulator's region
 * is accepted (there is no CreateTopic); each published message is kept in
 * memory (the last SNS_EMU_KEEP) and its topic, subject and length go to the
 * request log. Faults come from the scenario's "sns" rule.
 *
 * Threading: the handler runs on many connection threads; the message list is
 * locked. Ownership: borrows the scenario; copies the region.
 */
#ifndef ASSAY_EMULATOR_SNS_H
#define ASSAY_EMULATOR_SNS_H

#include <stddef.h>

#include "emulator/router.h"
#include "emulator/scenario.h"

#define SNS_EMU_MAX_MESSAGE_BYTES 262144 /* 256 KB */
#define SNS_EMU_MAX_SUBJECT_CHARS 100
#define SNS_EMU_KEEP 1000

struct sns_emu;

/* Returns a new SNS service over the scenario (borrowed) for region (copied). */
struct sns_emu *sns_emu_new(struct scenario *sc, const char *region);
/* Accepts NULL. */
void sns_emu_free(struct sns_emu *s);
/* Messages published so far (all of them, not only the kept ones). */
size_t sns_emu_published(struct sns_emu *s);

/*
 * The router entry: signing name "sns"; matches POST / with a form body whose
 * Version is 2010-03-31 (CloudWatch's calls carry X-Amz-Target instead).
 */
struct router_service sns_emu_service(struct sns_emu *s);

#endif
