/*
 * server/sample: parsing and validation of the samples POSTed to /v1/samples
 * (DESIGN.md, "HTTP API"). A request body is one JSON object, a JSON array of
 * objects, or NDJSON (one object a line); it is accepted or refused whole, and
 * a refusal names the sample's index and the field (struct sample_error).
 *
 * Field rules (docs/internals/API.md repeats them for users):
 *   app        required, 1-64 of [A-Za-z0-9._-]
 *   output     required string (may be empty)
 *   input      string, or Converse-style messages: an array of
 *              {"role": "user"|"assistant", "content": string | [blocks]};
 *              text blocks ({"text": "..."}) are what the judge reads
 *   context    string, or an array of strings (passages)
 *   reference  string
 *   model_id   1-256 printable ASCII characters without spaces
 *   id         1-128 of [A-Za-z0-9._:-]; generated (UUIDv7) when absent
 *   rubrics    1-32 distinct rubric names, each known to the registry
 *   tags       object of at most 16 string pairs; keys 1-64, values 0-256 characters
 *   trace_id   AWS X-Ray: "Root=1-8hex-24hex[;Parent=..;Sampled=..]" or the
 *              bare "1-8hex-24hex"; else taken from the X-Amzn-Trace-Id header
 *              (an invalid header is ignored, an invalid field refused)
 *   timestamp  RFC 3339 string or epoch milliseconds; the receive time when absent
 *   feedback   "positive", "negative" or absent
 *   force      boolean
 * A JSON null counts as absent for every optional field. Unknown fields are
 * refused (400 naming the field), so that a misspelt "refrence" is not dropped
 * in silence.
 *
 * Two parsers, one behaviour: sample_batch_parse first tries a single-pass
 * decoder (server/sample_fast.c) that fills struct sample straight from the
 * body; on any shape it does not handle and on any error at all it gives up
 * and the jansson parser (the reference, with every error message) runs on
 * the same body. A sample the fast parser accepted is the one the jansson
 * parser would have produced, field for field (tests/unit/server/
 * test_sample_fast.c, tests/fuzz/fuzz_sample_diff.c); docs/internals/API.md.
 *
 * Ownership: a struct sample owns its JSON document (normalised: id,
 * trace_id and timestamp filled in; sample_doc builds it on first use for a
 * sample of the fast parser) and the flattened texts; every string pointer
 * in it is borrowed from the document or from the sample's own block, or
 * owned by the sample, valid until sample_clear (ingest_redact repoints
 * output and reference into the document it redacted). A struct
 * sample_batch owns its samples. Thread-safe: no shared state.
 */
#ifndef ASSAY_SERVER_SAMPLE_H
#define ASSAY_SERVER_SAMPLE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define SAMPLE_APP_MAX 64
#define SAMPLE_ID_MAX 128
#define SAMPLE_MODEL_ID_MAX 256
#define SAMPLE_TAGS_MAX 16
#define SAMPLE_TAG_KEY_MAX 64
#define SAMPLE_TAG_VALUE_MAX 256
#define SAMPLE_RUBRICS_MAX 32
#define SAMPLE_TRACE_ID_MAX 256
#define SAMPLE_MESSAGES_MAX 1000

enum sample_format { SAMPLE_FORMAT_JSON, SAMPLE_FORMAT_NDJSON };

enum sample_feedback { SAMPLE_FEEDBACK_NONE, SAMPLE_FEEDBACK_POSITIVE, SAMPLE_FEEDBACK_NEGATIVE };

struct sample {
    /*
     * The sample as accepted (a reference the sample holds), or NULL until
     * sample_doc builds it: read it through sample_doc.
     */
    json_t *doc;
    const char *app; /* borrowed from the sample */
    const char *id;  /* borrowed from the sample */
    bool id_generated;
    const char *output;    /* borrowed from the sample */
    char *input;           /* owned: the prompt as text (messages flattened), or NULL */
    char *context;         /* owned: passages joined by blank lines, or NULL */
    const char *reference; /* borrowed, or NULL */
    const char *model_id;  /* borrowed, or NULL */
    const char **rubrics;  /* owned array of borrowed names (override), or NULL */
    size_t n_rubrics;
    const char *trace_id; /* borrowed, or NULL */
    int64_t timestamp_ms;
    enum sample_feedback feedback;
    bool force;
    /*
     * The sample's own text in the request body (borrowed from the body,
     * valid while it is; NULL when unknown, as for array elements) and the
     * members normalisation added after it: sample_doc_text splices them
     * instead of serialising doc again (see there).
     */
    const char *raw;
    size_t raw_len;
    bool raw_add_id, raw_add_trace_id, raw_add_timestamp;
    /*
     * Private (server/sample.c, server/sample_fast.c): for a sample of the
     * fast parser, one block holding a copy of its text (the first
     * mem_src_len_ bytes, from which sample_doc parses doc) and its decoded
     * strings; NULL for a sample of the jansson parser.
     */
    char *mem_;
    size_t mem_src_len_;
};

struct sample_batch {
    struct sample *items;
    size_t n;
};

/* A refusal: which sample (index, -1 for the request as a whole) and field. */
struct sample_error {
    enum assay_err code; /* ASSAY_ERR_INVALID_ARGUMENT, or ASSAY_ERR_PARSE for JSON syntax */
    long index;
    char field[96]; /* "" when the error concerns no one field */
    char message[ASSAY_ERRBUF_SIZE];
};

struct sample_parse_opts {
    size_t max_batch;            /* samples a request may carry */
    int64_t now_ms;              /* the receive time, used when timestamp is absent */
    const char *header_trace_id; /* X-Amzn-Trace-Id, or NULL */
    /* 1 when a rubric name is known; NULL accepts every well-formed name. */
    int (*rubric_known)(void *ctx, const char *name);
    void *rubric_ctx;
};

/*
 * Maps a Content-Type header to a format: application/json (also when the
 * header is absent), application/x-ndjson or application/ndjson; a charset
 * parameter, when present, must be utf-8. Returns ASSAY_OK, or
 * ASSAY_ERR_UNSUPPORTED_MEDIA (415).
 */
enum assay_err sample_format_from_content_type(const char *content_type, enum sample_format *out);

/*
 * Parses and validates a whole body. Returns ASSAY_OK with a filled *out
 * (cleared first; the caller then calls sample_batch_clear), or an error with
 * *err filled and *out empty: nothing of a refused body is kept.
 */
enum assay_err sample_batch_parse(const char *body, size_t len, enum sample_format fmt,
                                  const struct sample_parse_opts *o, struct sample_batch *out,
                                  struct sample_error *err);
/* (The samples of *out borrow body for sample_doc_text: keep it until then.) */
void sample_batch_clear(struct sample_batch *b);

/*
 * The sample's JSON document (borrowed: s keeps it until sample_clear): the
 * sample as accepted, normalised (id, trace_id and timestamp filled in). The
 * first call parses it from the sample's text when the fast parser decoded s;
 * later calls, and samples of the jansson parser, return s->doc. The caller
 * may change it in place (server/ingest_redact does), and then owns keeping
 * s's other members consistent with it.
 */
json_t *sample_doc(struct sample *s);

/*
 * The document to store for s, as a new NUL-terminated string (*len its
 * length; the caller frees it): the sample as accepted, with id, trace_id and
 * timestamp filled in. When the client's own text of the object is known and
 * normalisation only added members (the usual case: no id, no timestamp), it
 * is that text with the added members spliced in before its closing brace,
 * the same JSON value as serialising the document, for a fraction of the cost
 * (the ingest hot path, bench/ingest); otherwise the document serialised
 * compactly (parsed for the occasion when sample_doc has not built it yet).
 */
char *sample_doc_text(const struct sample *s, size_t *len);

/*
 * Validates one sample object (borrowed; index names it in errors). Returns
 * ASSAY_OK with *out filled (it holds a new copy of obj), or an error with
 * *err filled and *out zeroed.
 */
enum assay_err sample_parse_object(const json_t *obj, long index, const struct sample_parse_opts *o,
                                   struct sample *out, struct sample_error *err);
void sample_clear(struct sample *s);

/* Checks of single values, shared with the routes that take them in a URL. */
bool sample_app_valid(const char *s);
bool sample_id_valid(const char *s);
/* An X-Ray trace header ("Root=1-...;...") or bare trace id ("1-8hex-24hex"). */
bool sample_trace_id_valid(const char *s);

/* A new id: a UUIDv7 (time-ordered) in lower-case hex, 36 characters and the NUL. */
void sample_id_generate(char out[37]);

const char *sample_feedback_name(enum sample_feedback f);

#endif
