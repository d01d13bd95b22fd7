/*
 * server/store_sqlite: the embedded SQLite backend of server/store.h
 * (skeleton: the implementation follows on this branch).
 */
#include "server/store_private.h"

#include <string.h>

void store_sqlite_options_init(struct store_sqlite_options *o)
{
    memset(o, 0, sizeof *o);
    o->busy_timeout_ms = 5000;
    o->group_max_requests = 512;
    o->group_max_samples = 8192;
    o->group_max_wait_us = 0;
    o->synchronous_full = 1;
    o->max_read_connections = 4;
}

enum assay_err store_sqlite_open(const struct store_sqlite_options *o, struct store **out,
                                 char *errbuf)
{
    (void)o;
    *out = NULL;
    return assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "store_sqlite: not implemented yet");
}
