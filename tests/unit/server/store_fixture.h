/*
 * tests/unit/server/store_fixture.h: what the store's unit tests
 * (test_store.c, test_store_text.c) share: files in the case's temporary
 * directory, opening the SQLite backend, SQL run on the file beside it, and
 * an insert that must succeed. static inline: each test file uses a part.
 */
#ifndef ASSAY_TESTS_STORE_FIXTURE_H
#define ASSAY_TESTS_STORE_FIXTURE_H

#include "server/store.h"
#include "common/log.h"
#include "tests/unit/test.h"

#include <sqlite3.h>
#include <stdio.h>

/* The path of file name in the case's temporary directory (one buffer, reused). */
static inline const char *path_of(const char *name)
{
    static char db_path[512];
    snprintf(db_path, sizeof db_path, "%s/%s", test_tmpdir(), name);
    return db_path;
}

/* Opens the SQLite store at name with options o (its path set here); fails the case otherwise. */
static inline struct store *open_store_with(const char *name, struct store_sqlite_options *o)
{
    struct store *s = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    log_set_level(LOG_LEVEL_ERROR);
    o->path = path_of(name);
    enum assay_err err = store_sqlite_open(o, &s, errbuf);
    if (err != ASSAY_OK)
        fprintf(stderr, "open: %s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
    return s;
}

/* Opens the SQLite store at name with the default options. */
static inline struct store *open_store(const char *name)
{
    struct store_sqlite_options o;
    store_sqlite_options_init(&o);
    return open_store_with(name, &o);
}

/* Runs SQL on the file directly (a second connection), for seams and fixtures. */
static inline void raw_sql(const char *name, const char *sql)
{
    sqlite3 *db = NULL;
    REQUIRE_INT_EQ(sqlite3_open(path_of(name), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "raw_sql: %s\n", msg ? msg : "?");
    sqlite3_free(msg);
    sqlite3_close(db);
    REQUIRE_INT_EQ(rc, SQLITE_OK);
}

/* Inserts the n samples of xs as one call; fails the case when the store refuses. */
static inline void insert_ok(struct store *s, struct store_sample *xs, size_t n)
{
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = store_sample_insert(s, xs, n, errbuf);
    if (err != ASSAY_OK)
        fprintf(stderr, "insert: %s\n", errbuf);
    REQUIRE_INT_EQ(err, ASSAY_OK);
}

#endif
