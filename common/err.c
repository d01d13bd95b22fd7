/*
 * common/err: the error table behind enum assay_err. Called from every layer.
 */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

struct err_entry {
    const char *name;
    const char *sentence;
    int status;
};

static const struct err_entry table[] = {
#define ASSAY_ERR_ROW(code, name, status, sentence) [code] = {name, sentence, status},
    ASSAY_ERR_TABLE(ASSAY_ERR_ROW)
#undef ASSAY_ERR_ROW
};

static const struct err_entry *lookup(enum assay_err err)
{
    if ((unsigned)err >= (unsigned)ASSAY_ERR__COUNT)
        return NULL;
    return &table[err];
}

const char *assay_err_name(enum assay_err err)
{
    const struct err_entry *e = lookup(err);
    return e ? e->name : "unknown_error";
}

const char *assay_err_message(enum assay_err err)
{
    const struct err_entry *e = lookup(err);
    return e ? e->sentence : "an unknown error occurred";
}

int assay_err_http_status(enum assay_err err)
{
    const struct err_entry *e = lookup(err);
    return e ? e->status : 500;
}

enum assay_err assay_errbuf_set(char *errbuf, enum assay_err err, const char *fmt, ...)
{
    if (errbuf) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, ASSAY_ERRBUF_SIZE, fmt, ap);
        va_end(ap);
    }
    return err;
}
