/*
 * common/log: JSON-lines logger behind the LOG_* macros. Level from
 * log_set_level (the service sets it from config or ASSAY_LOG_LEVEL).
 */
#include "common/log.h"

#include "common/buf.h"
#include "common/clock.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static atomic_int current_level = LOG_LEVEL_INFO;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static log_sink_fn sink;
static void *sink_ctx;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

int log_enabled(enum log_level level)
{
    return level != LOG_LEVEL_OFF && (int)level >= atomic_load(&current_level);
}

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

int log_level_parse(const char *name, enum log_level *out)
{
    if (!name)
        return -1;
    for (int i = 0; i <= LOG_LEVEL_OFF; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = LOG_LEVEL_WARN;
        return 0;
    }
    return -1;
}

void log_set_sink(log_sink_fn fn, void *ctx)
{
    pthread_mutex_lock(&lock);
    sink = fn;
    sink_ctx = ctx;
    pthread_mutex_unlock(&lock);
}

static void append_key(struct buf *b, const char *key)
{
    buf_append_str(b, ",\"");
    buf_append_json_escaped(b, key, strlen(key));
    buf_append_str(b, "\":");
}

void log_emit(enum log_level level, const char *event, const struct log_field *fields, size_t n)
{
    char ts[25];
    clock_format_iso8601_ms(clock_now_ms(NULL), ts);
    struct buf b = BUF_INIT;
    buf_reserve(&b, 256);
    buf_appendf(&b, "{\"time\":\"%s\",\"level\":\"%s\",\"event\":\"", ts,
                level_names[level <= LOG_LEVEL_OFF ? level : LOG_LEVEL_ERROR]);
    buf_append_json_escaped(&b, event, strlen(event));
    buf_append_char(&b, '"');
    for (size_t i = 0; i < n; i++) {
        const struct log_field *f = &fields[i];
        if (f->type == LOG_FIELD_END || !f->key)
            continue;
        append_key(&b, f->key);
        switch (f->type) {
        case LOG_FIELD_STR:
            if (!f->s) {
                buf_append_str(&b, "null");
            } else {
                buf_append_char(&b, '"');
                buf_append_json_escaped(&b, f->s, strlen(f->s));
                buf_append_char(&b, '"');
            }
            break;
        case LOG_FIELD_INT:
            buf_appendf(&b, "%lld", (long long)f->i);
            break;
        case LOG_FIELD_DBL:
            if (isfinite(f->d))
                buf_appendf(&b, "%.17g", f->d);
            else
                buf_append_str(&b, "null");
            break;
        case LOG_FIELD_BOOL:
            buf_append_str(&b, f->i ? "true" : "false");
            break;
        case LOG_FIELD_END:
            break;
        }
    }
    buf_append_str(&b, "}\n");
    pthread_mutex_lock(&lock);
    if (sink) {
        sink(sink_ctx, b.data, b.len);
    } else {
        fwrite(b.data, 1, b.len, stderr);
        fflush(stderr);
    }
    pthread_mutex_unlock(&lock);
    buf_clear(&b);
}
