/* Unit tests for server/retention on a real SQLite store in a temp dir. */
#include "server/retention.h"
#include "tests/unit/server/store_fixture.h"

#define DAY_MS (86400 * INT64_C(1000))

/* n unsampled samples (finished at once) received at received_ms. */
static void insert_unsampled(struct store *s, const char *prefix, int n, int64_t received_ms)
{
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        struct store_sample x = {0};
        x.app = "app";
        x.id = id;
        x.doc = "{\"output\":\"hello\"}";
        x.doc_len = strlen(x.doc);
        x.received_ms = received_ms;
        REQUIRE_INT_EQ(store_sample_insert(s, &x, 1, NULL), ASSAY_OK);
    }
}

static int exists(struct store *s, const char *id)
{
    struct store_sample_info st;
    memset(&st, 0, sizeof st);
    enum assay_err err = store_sample_get(s, "app", id, &st, NULL);
    store_sample_info_clear(&st);
    return err == ASSAY_OK;
}

TEST_CASE(sweeps_old_in_bounded_batches)
{
    struct store *s = open_store("ret.db");
    int64_t now = 400 * DAY_MS;
    insert_unsampled(s, "old", 25, now - 31 * DAY_MS);
    insert_unsampled(s, "recent", 5, now - 29 * DAY_MS);
    int64_t deleted = -1;
    /* two batches of 10 allowed: 20 go now, 5 wait for the next sweep */
    REQUIRE_INT_EQ(retention_sweep(s, 30, now, 10, 2, &deleted, NULL), ASSAY_OK);
    CHECK_INT_EQ(deleted, 20);
    REQUIRE_INT_EQ(retention_sweep(s, 30, now, 10, 2, &deleted, NULL), ASSAY_OK);
    CHECK_INT_EQ(deleted, 5);
    REQUIRE_INT_EQ(retention_sweep(s, 30, now, 10, 2, &deleted, NULL), ASSAY_OK);
    CHECK_INT_EQ(deleted, 0);
    CHECK(!exists(s, "old-0"));
    CHECK(!exists(s, "old-24"));
    CHECK(exists(s, "recent-0"));
    CHECK(exists(s, "recent-4"));
    store_close(s);
}

TEST_CASE(zero_days_keeps_everything)
{
    struct store *s = open_store("ret.db");
    insert_unsampled(s, "ancient", 3, 1000);
    int64_t deleted = -1;
    REQUIRE_INT_EQ(retention_sweep(s, 0, 400 * DAY_MS, 10, 5, &deleted, NULL), ASSAY_OK);
    CHECK_INT_EQ(deleted, 0);
    CHECK(exists(s, "ancient-0"));
    store_close(s);
}
