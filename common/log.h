/*
 * common/log: structured logs, one JSON object per line:
 *   {"time":"2026-11-27T01:02:03.456Z","level":"info","event":"creds.refreshed","provider":"imds"}
 *
 * LOG_<LEVEL>(event, fields...) checks the level before anything is formatted.
 * Fields are typed (LOG_S, LOG_I, LOG_F, LOG_B), so no untrusted text ever
 * reaches a format string; strings are JSON-escaped. Never pass a secret, and
 * never a sample's text above debug level.
 *
 * Thread-safe: each line is built in a local buffer and written whole under a
 * lock. The sink defaults to stderr; tests may capture lines with log_set_sink.
 */
#ifndef ASSAY_COMMON_LOG_H
#define ASSAY_COMMON_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR, LOG_LEVEL_OFF };

enum log_field_type { LOG_FIELD_END, LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_DBL, LOG_FIELD_BOOL };

struct log_field {
    const char *key;
    enum log_field_type type;
    const char *s;
    int64_t i;
    double d;
};

#define LOG_S(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_STR, .s = (v)})
#define LOG_I(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_INT, .i = (int64_t)(v)})
#define LOG_F(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_DBL, .d = (double)(v)})
#define LOG_B(k, v) ((struct log_field){.key = (k), .type = LOG_FIELD_BOOL, .i = !!(v)})

/* The array opens with an END entry so that a call with no fields is valid. */
#define LOG_AT(level, event, ...)                                                                  \
    do {                                                                                           \
        if (log_enabled(level)) {                                                                  \
            const struct log_field log_fields_[] = {{0}, __VA_ARGS__};                             \
            log_emit((level), (event), log_fields_ + 1,                                            \
                     sizeof log_fields_ / sizeof log_fields_[0] - 1);                              \
        }                                                                                          \
    } while (0)

#define LOG_DEBUG(event, ...) LOG_AT(LOG_LEVEL_DEBUG, event, __VA_ARGS__)
#define LOG_INFO(event, ...) LOG_AT(LOG_LEVEL_INFO, event, __VA_ARGS__)
#define LOG_WARN(event, ...) LOG_AT(LOG_LEVEL_WARN, event, __VA_ARGS__)
#define LOG_ERROR(event, ...) LOG_AT(LOG_LEVEL_ERROR, event, __VA_ARGS__)

typedef void (*log_sink_fn)(void *ctx, const char *line, size_t len);

int log_enabled(enum log_level level);
void log_set_level(enum log_level level);
/* "debug", "info", "warn"/"warning", "error", "off"; returns -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);
/*
 * Routes lines (each ending in '\n') to fn; NULL restores stderr. The sink is
 * called under the log lock, so it must not log.
 */
void log_set_sink(log_sink_fn fn, void *ctx);
void log_emit(enum log_level level, const char *event, const struct log_field *fields, size_t n);

#endif
