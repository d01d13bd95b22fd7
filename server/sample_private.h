/*
 * server/sample_private: the two parsers behind sample_batch_parse and what
 * they share. Included by server/sample.c and server/sample_fast.c, and by
 * the tests, fuzz target and bench that compare the two parsers; everyone
 * else calls sample_batch_parse (server/sample.h), which tries the fast
 * parser and falls back to the jansson parser.
 */
#ifndef ASSAY_SERVER_SAMPLE_PRIVATE_H
#define ASSAY_SERVER_SAMPLE_PRIVATE_H

#include "server/sample.h"

#define SAMPLE_TIMESTAMP_MS_MAX 253402300799999LL /* 9999-12-31T23:59:59.999Z */
#define SAMPLE_RUBRIC_NAME_MAX 64

/*
 * The next non-blank NDJSON line of body at or after *pos: [*a, *z) without
 * the surrounding spaces, tabs and CRs; *pos moves past its newline. Returns
 * false at the end of the body. Both parsers cut lines with it, so that they
 * agree on what a line is.
 */
bool sample_ndjson_line(const char *body, size_t len, size_t *pos, size_t *a, size_t *z);

/*
 * The jansson parser: sample_batch_parse's contract, every body, every error
 * message. The reference the fast parser is held to.
 */
enum assay_err sample_batch_parse_jansson(const char *body, size_t len, enum sample_format fmt,
                                          const struct sample_parse_opts *o,
                                          struct sample_batch *out, struct sample_error *err);

/*
 * The fast parser: returns true with *out filled (cleared first) when it
 * accepted the whole body, with exactly the samples the jansson parser would
 * produce (a generated id aside: both random); false with *out empty when it
 * gave up: a shape it does not decode, or any error at all, syntax or
 * validation (it gives no reason: the jansson parser then finds and words
 * the error). It never accepts a body the jansson parser refuses.
 */
bool sample_batch_parse_fast(const char *body, size_t len, enum sample_format fmt,
                             const struct sample_parse_opts *o, struct sample_batch *out);

/*
 * For a sample of the fast parser whose text cannot be spliced (raw NULL) and
 * whose doc is not built: the stored text, the bytes json_dumps(sample_doc(s),
 * JSON_COMPACT) would give, made from the sample's text without building the
 * document (a new string, *len its length). NULL for a text it does not
 * expect (not reached: the fast parser accepted it); the caller then builds
 * the document.
 */
char *sample_fast_doc_text(const struct sample *s, size_t *len);

/* True when the fast parser decoded s (its doc is built on demand). */
bool sample_is_fast(const struct sample *s);

/* Shared checks: each parser applies the same rules through these. */
bool sample_model_id_valid(const char *s);
bool sample_rubric_name_valid(const char *s);
/* Code points of valid UTF-8. */
size_t sample_utf8_chars(const char *s);
/* An RFC 3339 timestamp within 0..SAMPLE_TIMESTAMP_MS_MAX: true and *ms. */
bool sample_timestamp_text_ms(const char *s, int64_t *ms);
/* Appends *s to b (growing b->items through *cap), which takes it over. */
void sample_batch_push(struct sample_batch *b, size_t *cap, const struct sample *s);

#endif
