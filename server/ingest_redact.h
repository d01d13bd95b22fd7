/*
 * server/ingest_redact: redaction of samples at ingest, per app. For every
 * sample of an app whose config has "redact", the HTTP API (POST /v1/samples,
 * after validation and before the store insert) calls ingest_redact_batch: the
 * pii detectors (judges/pii) count what the raw text fields hold, the counts
 * go into the document as the reserved member "_pii" (kinds and counts only,
 * never the matched text), and each text field is replaced by its redacted
 * form (judges/redact). The pii-leak rule later counts "_pii" as leaks, so a
 * leak in the raw text is still caught though only redacted text is stored.
 *
 * Fail closed: when a detector or a redaction pattern exhausts its PCRE2
 * limits, the sample is refused (the whole batch, 400 naming the sample's
 * index and the field); text of a redacting app is never stored unredacted.
 *
 * The table is built once at start-up and shared by the HTTP threads and the
 * worker (which redacts what LLM judges send with the same sets).
 *
 * Ownership and threading: ingest_redact_new borrows cfg, which must outlive
 * the table; the table is immutable afterwards and may be used from any
 * number of threads. ingest_redact_batch modifies the samples it is given.
 */
#ifndef ASSAY_SERVER_INGEST_REDACT_H
#define ASSAY_SERVER_INGEST_REDACT_H

#include <jansson.h>

#include "common/err.h"
#include "judges/redact.h"
#include "server/sample.h"

struct config;

/* The reserved document member that holds the ingest findings. */
#define INGEST_REDACT_MEMBER "_pii"

struct ingest_redact;

/*
 * Builds one redact set per app with a "redact" config (cfg borrowed).
 * Returns ASSAY_OK and a new table in *out (also when no app redacts), or
 * ASSAY_ERR_CONFIG naming the app with *out NULL.
 */
enum assay_err ingest_redact_new(const struct config *cfg, struct ingest_redact **out,
                                 char *errbuf);
void ingest_redact_free(struct ingest_redact *ir);

/* The set of app (its own entry, else apps.default), or NULL when it does not redact. */
const struct redact_set *ingest_redact_for(const struct ingest_redact *ir, const char *app);

/*
 * Redacts doc (a sample document as server/sample accepted it) in place with
 * set (borrowed): records the findings as "_pii" and replaces input (string
 * or message text blocks), output, context (string or passages) and reference
 * by their redacted forms. Returns ASSAY_OK, or ASSAY_ERR_INVALID_ARGUMENT
 * (a PCRE2 limit) with *err filled (index, the field, e.g.
 * "input[0].content[1].text"); doc is then partly redacted and must be
 * dropped.
 */
enum assay_err ingest_redact_doc(const struct ingest_redact *ir, const struct redact_set *set,
                                 json_t *doc, long index, struct sample_error *err);

/*
 * Redacts every sample of b whose app redacts (ingest_redact_doc), and the
 * sample's flattened texts with it. Costs one check when no app redacts.
 * Returns ASSAY_OK, or the first error with *err filled: the caller refuses
 * the whole batch.
 */
enum assay_err ingest_redact_batch(const struct ingest_redact *ir, struct sample_batch *b,
                                   struct sample_error *err);

#endif
