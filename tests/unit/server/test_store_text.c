/*
 * Unit tests for server/store, SQLite backend: samples stored without their
 * text (an unsampled sample inserted with doc NULL), next to sampled ones that
 * keep it and unsampled ones whose caller keeps it (keep_unsampled_text);
 * duplicates of a textless sample; a version-2 file written before this
 * existed. The file itself is read with a second connection, to see that the
 * text is really not there. docs/internals/STORE.md, "Samples without text".
 */
#include "tests/unit/server/store_fixture.h"

/* The bytes of samples.doc of (app, id) as the file holds them; -1 when no row. */
static long raw_doc_bytes(const char *name, const char *app, const char *id)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    REQUIRE_INT_EQ(sqlite3_open_v2(path_of(name), &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    REQUIRE_INT_EQ(sqlite3_prepare_v2(db,
                                      "SELECT length(CAST(doc AS BLOB)) FROM samples"
                                      " WHERE app = ?1 AND id = ?2",
                                      -1, &st, NULL),
                   SQLITE_OK);
    sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static const char *const rubrics[] = {"helpfulness"};
static const char text[] = "{\"output\":\"my card is 4111 1111 1111 1111\"}";

static struct store_sample sample(const char *id, bool sampled, bool with_text)
{
    struct store_sample x = {0};
    x.app = "app";
    x.id = id;
    x.doc = with_text ? text : NULL;
    x.doc_len = with_text ? strlen(text) : 0;
    x.sampled = sampled;
    x.trace_id = "Root=1-5759e988-bd862e3fe1be46a994272793";
    x.model_id = "amazon.nova-pro-v1:0";
    x.received_ms = 1234;
    x.rubrics = rubrics;
    x.n_rubrics = 1;
    return x;
}

static int64_t queued(struct store *s)
{
    int64_t q = -1, j = -1;
    REQUIRE_INT_EQ(store_queue_depth(s, &q, &j), ASSAY_OK);
    return q;
}

TEST_CASE(unsampled_without_text)
{
    struct store *s = open_store("u.db");
    struct store_sample x = sample("u1", false, false);
    insert_ok(s, &x, 1);
    CHECK(!x.duplicate);
    CHECK(!x.stored_sampled);
    CHECK_INT_EQ(queued(s), 0);

    /* Everything but the text is there: idempotency and the status still work. */
    struct store_sample_info in = {0};
    REQUIRE_INT_EQ(store_sample_get(s, "app", "u1", &in, NULL), ASSAY_OK);
    CHECK(in.doc == NULL);
    CHECK_INT_EQ(in.doc_len, 0);
    CHECK(!in.sampled);
    CHECK_INT_EQ(in.status, STORE_STATUS_NOT_SAMPLED);
    CHECK_STR_EQ(in.trace_id, "Root=1-5759e988-bd862e3fe1be46a994272793");
    CHECK_STR_EQ(in.model_id, "amazon.nova-pro-v1:0");
    CHECK_INT_EQ(in.received_ms, 1234);
    CHECK_INT_EQ(in.n_jobs, 0);
    store_sample_info_clear(&in);
    store_close(s);

    /* The file holds no byte of it. */
    CHECK_INT_EQ(raw_doc_bytes("u.db", "app", "u1"), 0);
}

TEST_CASE(sampled_keeps_text)
{
    struct store *s = open_store("s.db");
    struct store_sample xs[2] = {sample("s1", true, true), sample("u1", false, false)};
    insert_ok(s, xs, 2);
    CHECK_INT_EQ(queued(s), 1);
    struct store_sample_info in = {0};
    REQUIRE_INT_EQ(store_sample_get(s, "app", "s1", &in, NULL), ASSAY_OK);
    CHECK_STR_EQ(in.doc, text);
    CHECK_INT_EQ(in.doc_len, strlen(text));
    CHECK_INT_EQ(in.status, STORE_STATUS_QUEUED);
    store_sample_info_clear(&in);
    /* The judge gets the text with the job. */
    struct store_job_batch b = {0};
    REQUIRE_INT_EQ(store_job_claim(s, 10, &b, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 1);
    CHECK_STR_EQ(b.jobs[0].sample_id, "s1");
    CHECK_STR_EQ(b.jobs[0].doc, text);
    store_job_batch_clear(&b);
    store_close(s);
    CHECK_INT_EQ(raw_doc_bytes("s.db", "app", "s1"), (long)strlen(text));
    CHECK_INT_EQ(raw_doc_bytes("s.db", "app", "u1"), 0);
}

TEST_CASE(sampled_without_text_refused)
{
    struct store *s = open_store("r.db");
    /* A sampled sample must bring its text: the whole batch is refused. */
    struct store_sample xs[2] = {sample("ok", false, false), sample("bad", true, false)};
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    CHECK_INT_EQ(store_sample_insert(s, xs, 2, errbuf), ASSAY_ERR_INVALID_ARGUMENT);
    CHECK(strstr(errbuf, "sample 1") != NULL);
    struct store_sample empty = sample("empty", true, true);
    empty.doc_len = 0;
    CHECK_INT_EQ(store_sample_insert(s, &empty, 1, NULL), ASSAY_ERR_INVALID_ARGUMENT);
    struct store_sample_info in = {0};
    CHECK_INT_EQ(store_sample_get(s, "app", "ok", &in, NULL), ASSAY_ERR_NOT_FOUND);
    CHECK_INT_EQ(queued(s), 0);
    store_close(s);
}

/* What the HTTP API does for an app with keep_unsampled_text: the text comes along. */
TEST_CASE(unsampled_text_kept)
{
    struct store *s = open_store("k.db");
    struct store_sample x = sample("k1", false, true);
    insert_ok(s, &x, 1);
    struct store_sample_info in = {0};
    REQUIRE_INT_EQ(store_sample_get(s, "app", "k1", &in, NULL), ASSAY_OK);
    CHECK_STR_EQ(in.doc, text);
    CHECK_INT_EQ(in.status, STORE_STATUS_NOT_SAMPLED);
    CHECK_INT_EQ(queued(s), 0);
    store_sample_info_clear(&in);
    store_close(s);
    CHECK_INT_EQ(raw_doc_bytes("k.db", "app", "k1"), (long)strlen(text));
}

TEST_CASE(duplicate_of_textless_sample)
{
    struct store *s = open_store("d.db");
    struct store_sample first = sample("d1", false, false);
    insert_ok(s, &first, 1);
    /* Posted again, the second time forced (sampled, with its text): idempotency on
     * (app, id) wins, it stays a not-sampled duplicate and gains neither text nor jobs. */
    struct store_sample again[2] = {sample("d1", false, false), sample("d1", true, true)};
    insert_ok(s, again, 2);
    CHECK(again[0].duplicate);
    CHECK(!again[0].stored_sampled);
    CHECK(again[1].duplicate);
    CHECK(!again[1].stored_sampled);
    CHECK_INT_EQ(queued(s), 0);
    struct store_sample_info in = {0};
    REQUIRE_INT_EQ(store_sample_get(s, "app", "d1", &in, NULL), ASSAY_OK);
    CHECK(in.doc == NULL);
    CHECK_INT_EQ(in.status, STORE_STATUS_NOT_SAMPLED);
    store_sample_info_clear(&in);
    struct store_stats st;
    store_stats_get(s, &st);
    CHECK_INT_EQ(st.samples_inserted, 1);
    CHECK_INT_EQ(st.duplicates, 2);
    store_close(s);
    CHECK_INT_EQ(raw_doc_bytes("d.db", "app", "d1"), 0);
}

/*
 * A file with rows from before unsampled samples lost their text (every
 * sample with its text, sampled or not, and a job queued; the text rule
 * changed no schema): old rows keep their text, and new textless rows sit
 * beside them. The rows are written with SQL as the old binary left them.
 */
TEST_CASE(v2_file_with_rows)
{
    struct store *s = open_store("v2.db"); /* creates the schema */
    store_close(s);
    raw_sql("v2.db",
            "INSERT INTO samples(pk, app, id, doc, sampled, model_id, received_ms, trace_id)"
            " VALUES(1, 'app', 'old-judged', '{\"output\":\"a\"}', 1, 'm', 10, NULL),"
            " (2, 'app', 'old-unsampled', '{\"output\":\"b\"}', 0, NULL, 20, 't');"
            "INSERT INTO jobs VALUES(1, 1, 'helpfulness', 0, 0, 10);");
    s = open_store("v2.db");
    struct store_stats st;
    store_stats_get(s, &st);
    CHECK_INT_EQ(st.schema_version, STORE_SCHEMA_VERSION);
    CHECK_INT_EQ(queued(s), 1);
    struct store_sample x = sample("new-unsampled", false, false);
    insert_ok(s, &x, 1);
    struct store_sample_info in = {0};
    REQUIRE_INT_EQ(store_sample_get(s, "app", "old-unsampled", &in, NULL), ASSAY_OK);
    CHECK_STR_EQ(in.doc, "{\"output\":\"b\"}");
    CHECK_STR_EQ(in.trace_id, "t");
    CHECK_INT_EQ(in.status, STORE_STATUS_NOT_SAMPLED);
    store_sample_info_clear(&in);
    REQUIRE_INT_EQ(store_sample_get(s, "app", "new-unsampled", &in, NULL), ASSAY_OK);
    CHECK(in.doc == NULL);
    store_sample_info_clear(&in);
    struct store_job_batch b = {0};
    REQUIRE_INT_EQ(store_job_claim(s, 10, &b, NULL), ASSAY_OK);
    REQUIRE_INT_EQ(b.n, 1);
    CHECK_STR_EQ(b.jobs[0].doc, "{\"output\":\"a\"}");
    store_job_batch_clear(&b);
    /* The old unsampled text is not a duplicate's to change either. */
    struct store_sample dup = sample("old-unsampled", false, false);
    insert_ok(s, &dup, 1);
    CHECK(dup.duplicate);
    store_close(s);
    CHECK_INT_EQ(raw_doc_bytes("v2.db", "app", "old-unsampled"), 14);
    CHECK_INT_EQ(raw_doc_bytes("v2.db", "app", "new-unsampled"), 0);
}
