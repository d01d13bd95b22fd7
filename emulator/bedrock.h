/*
 * emulator/bedrock: Bedrock Runtime's Converse operation, as the emulator's
 * first service: POST /model/{modelId}/converse (restJson1; the model id one
 * path segment, percent-encoded), request shapes checked strictly with
 * ValidationException messages, faults drawn from the scenario, answers from
 * emulator/judge, usage estimated at about 4 characters a token with prompt
 * cache reads and writes for a system cachePoint.
 *
 * Threading: bedrock_handle runs on many connection threads at once; the
 * prompt-cache table is locked. Ownership: borrows the scenario.
 */
#ifndef ASSAY_EMULATOR_BEDROCK_H
#define ASSAY_EMULATOR_BEDROCK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "emulator/router.h"
#include "emulator/scenario.h"

struct bedrock;

/* Returns a new Converse service over the scenario (borrowed). */
struct bedrock *bedrock_new(struct scenario *sc);
/* Accepts NULL. */
void bedrock_free(struct bedrock *b);

/*
 * Checks a Converse request body (borrowed) as the service does before
 * answering. Returns true, or false with the ValidationException message in
 * message (always terminated). *forced (may be NULL) is set to "tool" or
 * "any" when toolChoice forces a tool, else NULL.
 */
bool bedrock_request_check(const json_t *body, char *message, size_t size, const char **forced);

/* The router entry for Converse: signing name "bedrock". ctx is b. */
struct router_service bedrock_service(struct bedrock *b);

#endif
