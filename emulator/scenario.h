/*
 * emulator/scenario: the seeded fault plan of the emulator. A scenario file
 * (format in emulator/README.md) gives, for a default rule and per model id,
 * the rates of throttling, 5xx, model-not-ready and timeouts, added latency,
 * malformed answers and max_tokens stops, and switches such as refusing
 * forced tools. scenario_decide draws one request's fate from a generator
 * seeded by (seed, rule, the rule's request count), so a given seed and
 * request order always give the same faults (common/rng's generator).
 *
 * Threading: scenario_decide may be called from any thread (the counters are
 * locked); the rules are read-only after loading.
 * Ownership: a scenario owns its rules; rules are borrowed from it.
 */
#ifndef ASSAY_EMULATOR_SCENARIO_H
#define ASSAY_EMULATOR_SCENARIO_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

enum scenario_fault {
    SCENARIO_FAULT_NONE,
    SCENARIO_FAULT_THROTTLE,    /* 429 ThrottlingException */
    SCENARIO_FAULT_NOT_READY,   /* 429 ModelNotReadyException */
    SCENARIO_FAULT_INTERNAL,    /* 500 InternalServerException */
    SCENARIO_FAULT_UNAVAILABLE, /* 503 ServiceUnavailableException */
    SCENARIO_FAULT_TIMEOUT,     /* held for timeout_ms, then 408 ModelTimeoutException */
};

enum scenario_malformed {
    SCENARIO_MALFORMED_NONE = 0,
    SCENARIO_MALFORMED_NO_TOOL_USE = 1,        /* text instead of the forced tool */
    SCENARIO_MALFORMED_SCORE_OUT_OF_RANGE = 2, /* score beyond the schema's maximum */
    SCENARIO_MALFORMED_TRUNCATED_JSON = 4,     /* 200 with half a JSON body */
    SCENARIO_MALFORMED_WRONG_TOOL_NAME = 8,    /* toolUse of a tool that was not asked for */
};
#define SCENARIO_MALFORMED_ALL 15u

struct scenario_rule {
    double throttle_rate, not_ready_rate, error_rate, timeout_rate; /* exclusive; sum <= 1 */
    int64_t timeout_ms;                                             /* default 60,000 */
    int64_t latency_ms, jitter_ms; /* added to every answer: latency + [0, jitter) */
    double malformed_rate;         /* of successful answers */
    unsigned malformed_kinds;      /* SCENARIO_MALFORMED_* bits; default all */
    double max_tokens_rate;        /* successful answers cut at max_tokens */
    bool refuse_forced_tools;      /* toolChoice tool/any -> ValidationException */
    bool not_found;                /* -> 404 ResourceNotFoundException */
    bool access_denied;            /* -> 403 AccessDeniedException */
    const json_t *answers;         /* [{"match": s, "text": s}] for plain prompts, or NULL */
};

/* One request's fate. */
struct scenario_decision {
    enum scenario_fault fault;
    enum scenario_malformed malformed;
    bool max_tokens;
    int64_t delay_ms; /* latency to add (timeout_ms for a timeout) */
    uint64_t index;   /* the request's number under its rule, from 0 */
    uint64_t nonce;   /* a further seeded draw, for ids */
};

struct scenario;

/*
 * Returns a new scenario from the JSON file at path (NULL path: no faults at
 * all), or NULL with errbuf naming the field and line (the caller names the
 * file). seed_set: use seed
 * instead of the file's "seed".
 */
struct scenario *scenario_new(const char *path, bool seed_set, uint64_t seed, char *errbuf);
/* Accepts NULL. */
void scenario_free(struct scenario *s);

uint64_t scenario_seed(const struct scenario *s);
/* The rule for model_id: its own entry, else the default (borrowed). */
const struct scenario_rule *scenario_rule_for(const struct scenario *s, const char *model_id);
/* Draws the next request's fate under model_id's rule. Thread-safe. */
void scenario_decide(struct scenario *s, const char *model_id, struct scenario_decision *out);

#endif
