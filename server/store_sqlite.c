/*
 * server/store_sqlite: the embedded backend of server/store.h, one SQLite
 * file in WAL mode. Called through the vtable by server/store.c; opened by
 * `assay serve` (store_sqlite_open) and by the tests and bench/store.
 *
 * Writes: one write connection, used under write_mu by the writer thread and
 * by callers of the group insert (the HTTP event loops). Every other write
 * call becomes a request on a queue; the writer takes all the requests
 * waiting (up to the group limits) and runs them as one group. A group is one
 * BEGIN IMMEDIATE transaction, with a SAVEPOINT per request only when one of
 * them fails (run_group), so that a failing request rolls back only its own
 * part. Durability: the connection runs synchronous=NORMAL and the committer
 * syncs the WAL after COMMIT, outside write_mu (wal_sync), so that one
 * group's sync overlaps the next group's statements and one sync serves every
 * group committed before it; nobody is told "stored" before that sync.
 *
 * Checkpoints: SQLite's automatic WAL checkpoint would run on the writer
 * thread, inside the COMMIT that crosses the threshold, and stall every
 * caller queued behind it. So the writer has wal_autocheckpoint off; its WAL
 * hook wakes a checkpointer thread (own connection, PASSIVE checkpoints that
 * run beside the writes). The writer itself checkpoints only when the WAL has
 * grown past a hard bound anyway (WAL_BOUND_FRAMES), which keeps the file
 * bounded under any load.
 *
 * Reads: a small pool of read connections; WAL lets them read a committed
 * snapshot while the writer writes. Every connection caches its prepared
 * statements. docs/internals/STORE.md has the schema and the argument.
 */
#include "server/store_private.h"

#include "common/alloc.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- schema */

/*
 * migrations[v] takes a version-v file to version v+1 (v = 0: a new file).
 * Only ever append; an applied migration never changes.
 */
static const char *const migrations[] = {
    /* 0 -> 1: samples, jobs, verdicts, series, alarms. */
    "CREATE TABLE schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE samples(pk INTEGER PRIMARY KEY, app TEXT NOT NULL, id TEXT NOT NULL,"
    " doc TEXT NOT NULL, sampled INTEGER NOT NULL, model_id TEXT,"
    " received_ms INTEGER NOT NULL, UNIQUE(app, id));"
    "CREATE INDEX samples_by_id ON samples(id);"
    "CREATE INDEX samples_by_received ON samples(received_ms);"
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY, sample INTEGER NOT NULL, rubric TEXT NOT NULL,"
    " state INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL, UNIQUE(sample, rubric));"
    "CREATE INDEX jobs_by_state ON jobs(state, id);"
    "CREATE TABLE verdicts(job INTEGER PRIMARY KEY, rubric TEXT NOT NULL, rubric_version TEXT,"
    " judge TEXT, unscorable INTEGER NOT NULL, reason TEXT, detail TEXT, score REAL,"
    " raw_score REAL, pass INTEGER NOT NULL, reasoning TEXT, latency_ms INTEGER,"
    " input_tokens INTEGER, output_tokens INTEGER, attempts INTEGER,"
    " created_ms INTEGER NOT NULL);"
    "CREATE TABLE series(app TEXT NOT NULL, rubric TEXT NOT NULL, model_id TEXT NOT NULL,"
    " rubric_version TEXT, judge_model TEXT, state TEXT NOT NULL,"
    " updated_ms INTEGER NOT NULL, PRIMARY KEY(app, rubric, model_id));"
    "CREATE TABLE alarms(id INTEGER PRIMARY KEY, app TEXT NOT NULL, rubric TEXT NOT NULL,"
    " model_id TEXT NOT NULL, raised INTEGER NOT NULL, at_ms INTEGER NOT NULL, detail TEXT);"
    "CREATE INDEX alarms_by_time ON alarms(at_ms);",
    /* 1 -> 2: trace ids, cache tokens, the metrics outbox, golden runs. */
    "ALTER TABLE samples ADD COLUMN trace_id TEXT;"
    "ALTER TABLE verdicts ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE verdicts ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE outbox(id INTEGER PRIMARY KEY, created_ms INTEGER NOT NULL,"
    " payload BLOB NOT NULL);"
    "CREATE INDEX outbox_by_created ON outbox(created_ms);"
    "CREATE TABLE golden_runs(run_id TEXT PRIMARY KEY, dataset TEXT NOT NULL,"
    " target_model TEXT, status TEXT NOT NULL, done INTEGER NOT NULL, total INTEGER NOT NULL,"
    " params TEXT, result TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE INDEX golden_runs_by_dataset ON golden_runs(dataset, created_ms);"
    "CREATE TABLE golden_items(run_id TEXT NOT NULL, item_id TEXT NOT NULL,"
    " rubric TEXT NOT NULL, unscorable INTEGER NOT NULL, score REAL, pass INTEGER NOT NULL,"
    " verdict TEXT, PRIMARY KEY(run_id, item_id, rubric));",
    /*
     * 2 -> 3: every sample paid three index inserts; two go (STORE.md,
     * "Indexes on samples"). A sample by id alone walks the apps of the
     * (app, id) index; retention finds its bound by the rowid, which grows
     * with the receive time.
     */
    ("DROP INDEX samples_by_id;"
     "DROP INDEX samples_by_received;"),
};
#define N_MIGRATIONS (sizeof migrations / sizeof migrations[0])
_Static_assert(N_MIGRATIONS == STORE_SCHEMA_VERSION, "one migration per schema version");

/*
 * WAL frames (pages) after which the checkpointer is woken (SQLite's own
 * default threshold), and after which the writer checkpoints itself between
 * groups: a PASSIVE checkpoint cannot complete while new frames keep arriving,
 * and the WAL restarts from its start only once every frame was copied back,
 * so under sustained load the writer's pause (a short copy, most frames
 * already copied by the checkpointer) is what bounds the file, at about
 * WAL_BOUND_FRAMES x page size (16 MB with 4 KB pages).
 */
#define WAL_CHECKPOINT_FRAMES 1000
#define WAL_BOUND_FRAMES 4000

/*
 * Syncs of the WAL that may run side by side, each on its own descriptor:
 * Linux reports a write-back error once per open file description, so two
 * syncs sharing one could see one report between them, and the other would
 * acknowledge commits whose pages were lost.
 */
#define WAL_SYNC_SLOTS 2

/* Job states as stored (the values of enum store_job_state). */
enum { JS_QUEUED = STORE_JOB_QUEUED, JS_JUDGING = STORE_JOB_JUDGING };

/* ------------------------------------------------------------- statements */

#define VERDICT_COLS                                                                               \
    "v.rubric, v.rubric_version, v.judge, v.unscorable, v.reason, v.detail, v.score,"              \
    " v.raw_score, v.pass, v.reasoning, v.latency_ms, v.input_tokens, v.output_tokens,"            \
    " v.cache_read_tokens, v.cache_write_tokens, v.attempts, v.created_ms"

enum st {
    ST_BEGIN,
    ST_COMMIT,
    ST_SAVEPOINT,
    ST_RELEASE,
    ST_ROLLBACK_TO,
    ST_SAMPLE_INSERT,
    ST_SAMPLE_SAMPLED,
    ST_JOB_INSERT,
    ST_CLAIM_SELECT,
    ST_CLAIM_UPDATE,
    ST_JOB_RELEASE,
    ST_JOB_STATE,
    ST_JOB_FINISH,
    ST_VERDICT_INSERT,
    ST_SERIES_UPSERT,
    ST_ALARM_INSERT,
    ST_SAMPLE_BY_APP_ID,
    ST_NEXT_APP,
    ST_SAMPLE_JOBS,
    ST_SERIES_GET,
    ST_SERIES_LIST,
    ST_ALARM_LIST,
    ST_OUTBOX_INSERT,
    ST_OUTBOX_PEEK,
    ST_OUTBOX_DELETE,
    ST_OUTBOX_EXPIRE,
    ST_OUTBOX_COUNT,
    ST_GOLDEN_CREATE,
    ST_GOLDEN_UPDATE,
    ST_GOLDEN_GET,
    ST_GOLDEN_LATEST,
    ST_GOLDEN_ITEM_PUT,
    ST_GOLDEN_ITEM_LIST,
    ST_RETENTION_SELECT,
    ST_RETENTION_PROBE,
    ST_PK_RANGE,
    ST_RETENTION_VERDICTS,
    ST_RETENTION_JOBS,
    ST_RETENTION_SAMPLE,
    ST__COUNT
};

static const char *const st_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_SAVEPOINT] = "SAVEPOINT req",
    [ST_RELEASE] = "RELEASE req",
    [ST_ROLLBACK_TO] = "ROLLBACK TO req",
    [ST_SAMPLE_INSERT] = "INSERT INTO samples(app, id, doc, sampled, trace_id, model_id,"
                         " received_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                         " ON CONFLICT(app, id) DO NOTHING",
    [ST_SAMPLE_SAMPLED] = "SELECT sampled FROM samples WHERE app = ?1 AND id = ?2",
    [ST_JOB_INSERT] = "INSERT INTO jobs(sample, rubric, state, attempts, updated_ms)"
                      " VALUES(?1, ?2, 0, 0, ?3) ON CONFLICT(sample, rubric) DO NOTHING",
    [ST_CLAIM_SELECT] = "SELECT j.id, s.app, s.id, j.rubric, s.model_id, s.trace_id, s.doc,"
                        " s.received_ms, j.attempts FROM jobs j JOIN samples s ON s.pk = j.sample"
                        " WHERE j.state = 0 ORDER BY j.id LIMIT ?1",
    [ST_CLAIM_UPDATE] = "UPDATE jobs SET state = 1, attempts = attempts + 1, updated_ms = ?2"
                        " WHERE id = ?1",
    [ST_JOB_RELEASE] = "UPDATE jobs SET state = 0, updated_ms = ?2 WHERE id = ?1 AND state = 1",
    [ST_JOB_STATE] = "SELECT state FROM jobs WHERE id = ?1",
    [ST_JOB_FINISH] = "UPDATE jobs SET state = ?2, updated_ms = ?3 WHERE id = ?1 AND state = 1",
    [ST_VERDICT_INSERT] =
        "INSERT INTO verdicts(job, rubric, rubric_version, judge, unscorable, reason, detail,"
        " score, raw_score, pass, reasoning, latency_ms, input_tokens, output_tokens,"
        " cache_read_tokens, cache_write_tokens, attempts, created_ms) VALUES(?1, ?2, ?3, ?4,"
        " ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    [ST_SERIES_UPSERT] = "INSERT INTO series(app, rubric, model_id, rubric_version, judge_model,"
                         " state, updated_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                         " ON CONFLICT(app, rubric, model_id) DO UPDATE SET"
                         " rubric_version = excluded.rubric_version,"
                         " judge_model = excluded.judge_model, state = excluded.state,"
                         " updated_ms = excluded.updated_ms",
    [ST_ALARM_INSERT] = "INSERT INTO alarms(app, rubric, model_id, raised, at_ms, detail)"
                        " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_SAMPLE_BY_APP_ID] = "SELECT pk, app, id, doc, trace_id, model_id, sampled, received_ms"
                            " FROM samples WHERE app = ?1 AND id = ?2",
    [ST_NEXT_APP] = "SELECT app FROM samples WHERE app > ?1 ORDER BY app LIMIT 1",
    [ST_SAMPLE_JOBS] = "SELECT j.rubric, j.state, j.attempts, v.job IS NOT NULL, " VERDICT_COLS
                       " FROM jobs j LEFT JOIN verdicts v ON v.job = j.id WHERE j.sample = ?1"
                       " ORDER BY j.rubric",
    [ST_SERIES_GET] = "SELECT app, rubric, model_id, rubric_version, judge_model, state,"
                      " updated_ms FROM series WHERE app = ?1 AND rubric = ?2 AND model_id = ?3",
    [ST_SERIES_LIST] = "SELECT app, rubric, model_id, rubric_version, judge_model, state,"
                       " updated_ms FROM series ORDER BY app, rubric, model_id",
    [ST_ALARM_LIST] = "SELECT id, app, rubric, model_id, raised, at_ms, detail FROM alarms"
                      " WHERE at_ms >= ?1 ORDER BY at_ms DESC, id DESC LIMIT ?2",
    [ST_OUTBOX_INSERT] = "INSERT INTO outbox(created_ms, payload) VALUES(?1, ?2)",
    [ST_OUTBOX_PEEK] = "SELECT id, created_ms, payload FROM outbox ORDER BY id LIMIT ?1",
    [ST_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
    [ST_OUTBOX_EXPIRE] = "DELETE FROM outbox WHERE created_ms < ?1",
    [ST_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
    [ST_GOLDEN_CREATE] = "INSERT INTO golden_runs(run_id, dataset, target_model, status, done,"
                         " total, params, result, created_ms, updated_ms)"
                         " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    [ST_GOLDEN_UPDATE] = "UPDATE golden_runs SET status = ?2, done = ?3, total = ?4,"
                         " result = coalesce(?5, result), updated_ms = ?6 WHERE run_id = ?1",
    [ST_GOLDEN_GET] = "SELECT run_id, dataset, target_model, status, done, total, params,"
                      " result, created_ms, updated_ms FROM golden_runs WHERE run_id = ?1",
    [ST_GOLDEN_LATEST] = "SELECT run_id, dataset, target_model, status, done, total, params,"
                         " result, created_ms, updated_ms FROM golden_runs WHERE dataset = ?1"
                         " AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR run_id <> ?3)"
                         " ORDER BY created_ms DESC, rowid DESC LIMIT 1",
    [ST_GOLDEN_ITEM_PUT] = "INSERT INTO golden_items(run_id, item_id, rubric, unscorable, score,"
                           " pass, verdict) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                           " ON CONFLICT(run_id, item_id, rubric) DO UPDATE SET"
                           " unscorable = excluded.unscorable, score = excluded.score,"
                           " pass = excluded.pass, verdict = excluded.verdict",
    [ST_GOLDEN_ITEM_LIST] = "SELECT run_id, item_id, rubric, unscorable, score, pass, verdict"
                            " FROM golden_items WHERE run_id = ?1 ORDER BY item_id, rubric",
    [ST_RETENTION_SELECT] = "SELECT pk FROM samples s WHERE pk < ?3 AND received_ms < ?1"
                            " AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.sample = s.pk"
                            " AND j.state IN (0, 1)) ORDER BY pk LIMIT ?2",
    [ST_RETENTION_PROBE] = "SELECT pk, received_ms FROM samples WHERE pk >= ?1 ORDER BY pk"
                           " LIMIT 1",
    [ST_PK_RANGE] = "SELECT min(pk), max(pk) FROM samples",
    [ST_RETENTION_VERDICTS] = "DELETE FROM verdicts WHERE job IN"
                              " (SELECT id FROM jobs WHERE sample = ?1)",
    [ST_RETENTION_JOBS] = "DELETE FROM jobs WHERE sample = ?1",
    [ST_RETENTION_SAMPLE] = "DELETE FROM samples WHERE pk = ?1",
};

/* One connection and its cached statements; used by one thread at a time. */
struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    struct conn *next; /* in the read pool's free list */
};

/* ------------------------------------------------------------ write queue */

enum wop {
    W_INSERT,
    W_CLAIM,
    W_RELEASE,
    W_COMPLETE,
    W_SERIES_PUT,
    W_ALARM,
    W_OUTBOX_ENQUEUE,
    W_OUTBOX_DELETE,
    W_OUTBOX_EXPIRE,
    W_GOLDEN_CREATE,
    W_GOLDEN_UPDATE,
    W_GOLDEN_ITEM,
    W_RETENTION,
};

struct wreq {
    struct wreq *next;
    enum wop op;
    /* Arguments (borrowed from the caller, who waits). */
    struct store_sample *samples;
    size_t n;      /* samples, ids or payload bytes */
    size_t weight; /* samples, for the group limit */
    int64_t id, i1, i2;
    const void *p;
    const char *s1, *s2, *s3;
    const struct store_completion *completion;
    const struct store_series *series;
    const struct store_alarm *alarm;
    const struct store_golden_run *run;
    const struct store_golden_item *item;
    const int64_t *ids;
    struct store_job_batch *claim;
    /* Results. */
    enum assay_err err;
    char errbuf[ASSAY_ERRBUF_SIZE];
    int64_t out;                 /* id, count, recorded */
    int64_t d_queued, d_judging; /* queue depth changes, applied at commit */
    int64_t new_samples, dups;
    /* Completion: an async insert's callback, else a waiting caller. */
    store_insert_cb cb;
    void *ctx;
    int done;
};

struct sq {
    struct store base;
    char *path;
    int lock_fd; /* <path>.lock, flock()ed: one process per store */
    const struct clock *clock;
    int busy_timeout_ms;
    size_t group_max_requests, group_max_samples;
    int64_t group_max_wait_us;
    int synchronous_full;
    size_t max_readers;

    struct conn *writer;
    pthread_mutex_t write_mu; /* held by whichever thread uses the writer connection */
    /* The WAL file, once per sync that may run at a time (see wal_sync). */
    int wal_fds[WAL_SYNC_SLOTS];
    bool wal_fd_busy[WAL_SYNC_SLOTS]; /* under sync_mu */
    _Atomic uint64_t commit_seq;      /* commits so far (counted once COMMIT returned) */
    pthread_mutex_t sync_mu;          /* guards the three fields below */
    pthread_cond_t sync_cv;
    uint64_t synced_seq;  /* every commit up to this one is durable */
    uint64_t syncing_seq; /* the highest target of the syncs in progress */
    int sync_errno;       /* a sync failed: no later commit is acknowledged durable */
    pthread_t thread;
    int thread_started;

    /* The checkpointer (see the file's opening comment). */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    int ckpt_started;
    pthread_mutex_t ckpt_run; /* held while either thread checkpoints */
    pthread_mutex_t ckpt_mu;  /* guards the two fields below */
    pthread_cond_t ckpt_cv;
    int ckpt_wanted, ckpt_stopping;
    int wal_frames; /* the WAL's size after the last commit; under write_mu */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t work_cv;
    pthread_cond_t done_cv;
    struct wreq *head, *tail;
    size_t pending;
    int stopping;
    struct store_stats stats;

    pthread_mutex_t pool_mu;
    pthread_cond_t pool_cv;
    struct conn *free_readers;
    size_t n_readers;
};

#define SQ(s) ((struct sq *)(s))

/* -------------------------------------------------------------- helpers */

static enum assay_err db_err(char *errbuf, sqlite3 *db, const char *what)
{
    int code = sqlite3_extended_errcode(db);
    enum assay_err err =
        (code & 0xff) == SQLITE_CONSTRAINT ? ASSAY_ERR_INVALID_ARGUMENT : ASSAY_ERR_IO;
    return assay_errbuf_set(errbuf, err, "store: %s: %s (%d)", what, sqlite3_errmsg(db), code);
}

static void conn_close(struct conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(c->st[i]);
    sqlite3_close(c->db);
    free(c);
}

static enum assay_err conn_exec(struct conn *c, const char *sql, char *errbuf)
{
    char *msg = NULL;
    if (sqlite3_exec(c->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        enum assay_err err =
            assay_errbuf_set(errbuf, ASSAY_ERR_IO, "store: %s", msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        return err;
    }
    return ASSAY_OK;
}

static enum assay_err conn_open(struct sq *q, int writer, struct conn **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct conn *c = xcalloc(1, sizeof *c);
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (writer ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(q->path, &c->db, flags, NULL) != SQLITE_OK) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "store: cannot open %s: %s", q->path,
                               c->db ? sqlite3_errmsg(c->db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, q->busy_timeout_ms);
    if (writer) {
        /* journal_mode=WAL answers the mode it is in: check it took. */
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        int wal = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
        sqlite3_finalize(st);
        if (!wal) {
            err = rc == SQLITE_ROW ? assay_errbuf_set(errbuf, ASSAY_ERR_IO,
                                                      "store: %s: WAL mode refused", q->path)
                                   : db_err(errbuf, c->db, "cannot set WAL mode");
            goto out;
        }
        /*
         * NORMAL: a commit writes its WAL frames without syncing them, and
         * the committing thread syncs the WAL itself after releasing the
         * writer connection (wal_sync), so that one group's sync overlaps the
         * next group's statements. Checkpoints still sync the WAL before
         * copying and the database after, as under FULL.
         */
        err = conn_exec(c, "PRAGMA synchronous=NORMAL", errbuf);
        /* Checkpoints are the checkpointer's (see the file's opening comment). */
        if (err == ASSAY_OK)
            err = conn_exec(c, "PRAGMA wal_autocheckpoint=0", errbuf);
    } else {
        err = conn_exec(c, "PRAGMA query_only=1", errbuf);
    }
out:
    if (err != ASSAY_OK) {
        conn_close(c);
        c = NULL;
    }
    *out = c;
    return err;
}

/* The cached statement id of c, reset and unbound; NULL with errbuf set on failure. */
static sqlite3_stmt *stmt(struct conn *c, enum st id, enum assay_err *err, char *errbuf)
{
    if (!c->st[id] && sqlite3_prepare_v3(c->db, st_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                         &c->st[id], NULL) != SQLITE_OK) {
        *err = db_err(errbuf, c->db, "prepare");
        c->st[id] = NULL;
        return NULL;
    }
    return c->st[id];
}

/* Ends a statement's use: reset and drop the bindings (they may be borrowed). */
static void done(sqlite3_stmt *st)
{
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    }
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static const char *col_text(void **mem, sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    return store_arena_memdup(mem, p ? p : "", (size_t)n);
}

/* Runs a statement that returns no rows; db_err on failure. */
static enum assay_err step_done(struct conn *c, sqlite3_stmt *st, const char *what, char *errbuf)
{
    int rc = sqlite3_step(st);
    enum assay_err err = rc == SQLITE_DONE ? ASSAY_OK : db_err(errbuf, c->db, what);
    done(st);
    return err;
}

/* Runs one of the cached transaction-control statements. */
static enum assay_err control(struct conn *c, enum st id, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, id, &err, errbuf);
    return st ? step_done(c, st, st_sql[id], errbuf) : err;
}

/* ------------------------------------------------------------ read pool */

static enum assay_err reader_get(struct sq *q, struct conn **out, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    pthread_mutex_lock(&q->pool_mu);
    while (!q->free_readers && q->n_readers >= q->max_readers)
        pthread_cond_wait(&q->pool_cv, &q->pool_mu);
    if (q->free_readers) {
        *out = q->free_readers;
        q->free_readers = (*out)->next;
    } else {
        q->n_readers++;
        pthread_mutex_unlock(&q->pool_mu);
        err = conn_open(q, 0, out, errbuf);
        pthread_mutex_lock(&q->pool_mu);
        if (err != ASSAY_OK) {
            q->n_readers--;
            pthread_cond_signal(&q->pool_cv);
        }
    }
    pthread_mutex_unlock(&q->pool_mu);
    return err;
}

static void reader_put(struct sq *q, struct conn *c)
{
    if (!c)
        return;
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    pthread_mutex_lock(&q->pool_mu);
    c->next = q->free_readers;
    q->free_readers = c;
    pthread_cond_signal(&q->pool_cv);
    pthread_mutex_unlock(&q->pool_mu);
}

/* ------------------------------------------------------- write operations */

static int64_t now_ms(struct sq *q)
{
    return clock_now_ms(q->clock);
}

static enum assay_err op_insert(struct sq *q, struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *ins = stmt(c, ST_SAMPLE_INSERT, &err, r->errbuf);
    sqlite3_stmt *sel = ins ? stmt(c, ST_SAMPLE_SAMPLED, &err, r->errbuf) : NULL;
    sqlite3_stmt *job = sel ? stmt(c, ST_JOB_INSERT, &err, r->errbuf) : NULL;
    if (!job)
        return err;
    int64_t t = now_ms(q);
    for (size_t i = 0; i < r->n && err == ASSAY_OK; i++) {
        struct store_sample *x = &r->samples[i];
        bind_text(ins, 1, x->app);
        bind_text(ins, 2, x->id);
        /* No text: '' (doc is NOT NULL; STORE.md, "Samples without text"). */
        if (x->doc)
            sqlite3_bind_text(ins, 3, x->doc, (int)x->doc_len, SQLITE_STATIC);
        else
            sqlite3_bind_text(ins, 3, "", 0, SQLITE_STATIC);
        sqlite3_bind_int(ins, 4, x->sampled ? 1 : 0);
        bind_text(ins, 5, x->trace_id);
        bind_text(ins, 6, x->model_id);
        sqlite3_bind_int64(ins, 7, x->received_ms);
        if ((err = step_done(c, ins, "insert sample", r->errbuf)) != ASSAY_OK)
            break;
        if (sqlite3_changes(c->db) == 0) {
            x->duplicate = true;
            r->dups++;
            bind_text(sel, 1, x->app);
            bind_text(sel, 2, x->id);
            int rc = sqlite3_step(sel);
            if (rc == SQLITE_ROW)
                x->stored_sampled = sqlite3_column_int(sel, 0) != 0;
            else
                err = db_err(r->errbuf, c->db, "read duplicate");
            done(sel);
            continue;
        }
        x->duplicate = false;
        x->stored_sampled = x->sampled;
        r->new_samples++;
        int64_t pk = sqlite3_last_insert_rowid(c->db);
        for (size_t k = 0; x->sampled && k < x->n_rubrics && err == ASSAY_OK; k++) {
            sqlite3_bind_int64(job, 1, pk);
            bind_text(job, 2, x->rubrics[k]);
            sqlite3_bind_int64(job, 3, t);
            err = step_done(c, job, "insert job", r->errbuf);
            if (err == ASSAY_OK)
                r->d_queued += sqlite3_changes(c->db);
        }
    }
    return err;
}

static enum assay_err op_claim(struct sq *q, struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    struct store_job_batch *b = r->claim;
    sqlite3_stmt *sel = stmt(c, ST_CLAIM_SELECT, &err, r->errbuf);
    sqlite3_stmt *upd = sel ? stmt(c, ST_CLAIM_UPDATE, &err, r->errbuf) : NULL;
    if (!upd)
        return err;
    size_t cap = 0;
    sqlite3_bind_int64(sel, 1, r->i1);
    int rc;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        if (b->n == cap) {
            cap = cap ? cap * 2 : 16;
            b->jobs = xrealloc(b->jobs, cap * sizeof *b->jobs);
        }
        struct store_job *j = &b->jobs[b->n++];
        memset(j, 0, sizeof *j);
        j->job_id = sqlite3_column_int64(sel, 0);
        j->app = col_text(&b->mem_, sel, 1);
        j->sample_id = col_text(&b->mem_, sel, 2);
        j->rubric = col_text(&b->mem_, sel, 3);
        j->model_id = col_text(&b->mem_, sel, 4);
        j->trace_id = col_text(&b->mem_, sel, 5);
        j->doc = col_text(&b->mem_, sel, 6);
        j->doc_len = (size_t)sqlite3_column_bytes(sel, 6);
        j->received_ms = sqlite3_column_int64(sel, 7);
        j->attempts = sqlite3_column_int(sel, 8) + 1;
    }
    if (rc != SQLITE_DONE)
        err = db_err(r->errbuf, c->db, "claim");
    done(sel);
    int64_t t = now_ms(q);
    for (size_t i = 0; i < b->n && err == ASSAY_OK; i++) {
        sqlite3_bind_int64(upd, 1, b->jobs[i].job_id);
        sqlite3_bind_int64(upd, 2, t);
        err = step_done(c, upd, "claim", r->errbuf);
    }
    if (err == ASSAY_OK) {
        r->d_queued -= (int64_t)b->n;
        r->d_judging += (int64_t)b->n;
    }
    return err;
}

/* The state of job id in *state, or ASSAY_ERR_NOT_FOUND. */
static enum assay_err job_state(struct conn *c, int64_t id, int *state, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_JOB_STATE, &err, errbuf);
    if (!st)
        return err;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *state = sqlite3_column_int(st, 0);
    else if (rc == SQLITE_DONE)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "store: no job %lld", (long long)id);
    else
        err = db_err(errbuf, c->db, "job state");
    done(st);
    return err;
}

static enum assay_err op_release(struct sq *q, struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_JOB_RELEASE, &err, r->errbuf);
    if (!st)
        return err;
    sqlite3_bind_int64(st, 1, r->id);
    sqlite3_bind_int64(st, 2, now_ms(q));
    if ((err = step_done(c, st, "release", r->errbuf)) != ASSAY_OK)
        return err;
    if (sqlite3_changes(c->db) == 1) {
        r->d_queued++;
        r->d_judging--;
        return ASSAY_OK;
    }
    int state;
    return job_state(c, r->id, &state, r->errbuf);
}

static enum assay_err series_upsert(struct sq *q, struct conn *c, const struct store_series *x,
                                    char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_SERIES_UPSERT, &err, errbuf);
    if (!st)
        return err;
    bind_text(st, 1, x->app);
    bind_text(st, 2, x->rubric);
    bind_text(st, 3, x->model_id);
    bind_text(st, 4, x->rubric_version);
    bind_text(st, 5, x->judge_model);
    bind_text(st, 6, x->state_json);
    sqlite3_bind_int64(st, 7, now_ms(q));
    return step_done(c, st, "series", errbuf);
}

static enum assay_err alarm_insert(struct conn *c, const struct store_alarm *a, int64_t *id,
                                   char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_ALARM_INSERT, &err, errbuf);
    if (!st)
        return err;
    bind_text(st, 1, a->app);
    bind_text(st, 2, a->rubric);
    bind_text(st, 3, a->model_id);
    sqlite3_bind_int(st, 4, a->raised ? 1 : 0);
    sqlite3_bind_int64(st, 5, a->at_ms);
    bind_text(st, 6, a->detail_json);
    err = step_done(c, st, "alarm", errbuf);
    if (err == ASSAY_OK && id)
        *id = sqlite3_last_insert_rowid(c->db);
    return err;
}

static enum assay_err op_complete(struct sq *q, struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    const struct store_completion *cp = r->completion;
    const struct store_verdict *v = cp->verdict;
    sqlite3_stmt *fin = stmt(c, ST_JOB_FINISH, &err, r->errbuf);
    sqlite3_stmt *ins = fin ? stmt(c, ST_VERDICT_INSERT, &err, r->errbuf) : NULL;
    if (!ins)
        return err;
    int64_t t = now_ms(q);
    sqlite3_bind_int64(fin, 1, cp->job_id);
    sqlite3_bind_int(fin, 2, v->unscorable ? STORE_JOB_FAILED : STORE_JOB_DONE);
    sqlite3_bind_int64(fin, 3, t);
    if ((err = step_done(c, fin, "finish job", r->errbuf)) != ASSAY_OK)
        return err;
    if (sqlite3_changes(c->db) == 0) {
        /* Not judging: finished already, or released. Record nothing. */
        int state;
        r->out = 0;
        return job_state(c, cp->job_id, &state, r->errbuf);
    }
    sqlite3_bind_int64(ins, 1, cp->job_id);
    bind_text(ins, 2, v->rubric);
    bind_text(ins, 3, v->rubric_version);
    bind_text(ins, 4, v->judge);
    sqlite3_bind_int(ins, 5, v->unscorable ? 1 : 0);
    bind_text(ins, 6, v->unscorable ? v->reason : NULL);
    bind_text(ins, 7, v->unscorable ? v->detail : NULL);
    if (v->unscorable) {
        sqlite3_bind_null(ins, 8);
        sqlite3_bind_null(ins, 9);
    } else {
        sqlite3_bind_double(ins, 8, v->score);
        sqlite3_bind_double(ins, 9, v->raw_score);
    }
    sqlite3_bind_int(ins, 10, !v->unscorable && v->pass ? 1 : 0);
    bind_text(ins, 11, v->reasoning);
    sqlite3_bind_int64(ins, 12, v->latency_ms);
    sqlite3_bind_int64(ins, 13, v->input_tokens);
    sqlite3_bind_int64(ins, 14, v->output_tokens);
    sqlite3_bind_int64(ins, 15, v->cache_read_tokens);
    sqlite3_bind_int64(ins, 16, v->cache_write_tokens);
    sqlite3_bind_int(ins, 17, v->attempts);
    sqlite3_bind_int64(ins, 18, v->created_ms ? v->created_ms : t);
    if ((err = step_done(c, ins, "insert verdict", r->errbuf)) != ASSAY_OK)
        return err;
    if (cp->series && (err = series_upsert(q, c, cp->series, r->errbuf)) != ASSAY_OK)
        return err;
    if (cp->alarm && (err = alarm_insert(c, cp->alarm, NULL, r->errbuf)) != ASSAY_OK)
        return err;
    r->out = 1;
    r->d_judging--;
    return ASSAY_OK;
}

static enum assay_err op_outbox_enqueue(struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_OUTBOX_INSERT, &err, r->errbuf);
    if (!st)
        return err;
    sqlite3_bind_int64(st, 1, r->i1);
    sqlite3_bind_blob(st, 2, r->p, (int)r->n, SQLITE_STATIC);
    err = step_done(c, st, "outbox", r->errbuf);
    if (err == ASSAY_OK)
        r->out = sqlite3_last_insert_rowid(c->db);
    return err;
}

static enum assay_err op_outbox_delete(struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_OUTBOX_DELETE, &err, r->errbuf);
    for (size_t i = 0; st && i < r->n && err == ASSAY_OK; i++) {
        sqlite3_bind_int64(st, 1, r->ids[i]);
        err = step_done(c, st, "outbox delete", r->errbuf);
    }
    return err;
}

static enum assay_err op_outbox_expire(struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_OUTBOX_EXPIRE, &err, r->errbuf);
    if (!st)
        return err;
    sqlite3_bind_int64(st, 1, r->i1);
    err = step_done(c, st, "outbox expire", r->errbuf);
    if (err == ASSAY_OK)
        r->out = sqlite3_changes(c->db);
    return err;
}

static enum assay_err op_golden_create(struct sq *q, struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    const struct store_golden_run *g = r->run;
    sqlite3_stmt *st = stmt(c, ST_GOLDEN_CREATE, &err, r->errbuf);
    if (!st)
        return err;
    bind_text(st, 1, g->run_id);
    bind_text(st, 2, g->dataset);
    bind_text(st, 3, g->target_model);
    bind_text(st, 4, g->status);
    sqlite3_bind_int64(st, 5, g->done);
    sqlite3_bind_int64(st, 6, g->total);
    bind_text(st, 7, g->params_json);
    bind_text(st, 8, g->result_json);
    sqlite3_bind_int64(st, 9, g->created_ms ? g->created_ms : now_ms(q));
    err = step_done(c, st, "golden run", r->errbuf);
    if (err == ASSAY_ERR_INVALID_ARGUMENT)
        assay_errbuf_set(r->errbuf, err, "store: golden run %s exists", g->run_id);
    return err;
}

static enum assay_err op_golden_update(struct sq *q, struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_GOLDEN_UPDATE, &err, r->errbuf);
    if (!st)
        return err;
    bind_text(st, 1, r->s1);
    bind_text(st, 2, r->s2);
    sqlite3_bind_int64(st, 3, r->i1);
    sqlite3_bind_int64(st, 4, r->i2);
    bind_text(st, 5, r->s3);
    sqlite3_bind_int64(st, 6, now_ms(q));
    if ((err = step_done(c, st, "golden update", r->errbuf)) != ASSAY_OK)
        return err;
    if (sqlite3_changes(c->db) == 0)
        err = assay_errbuf_set(r->errbuf, ASSAY_ERR_NOT_FOUND, "store: no golden run %s", r->s1);
    return err;
}

static enum assay_err op_golden_item(struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    const struct store_golden_item *g = r->item;
    sqlite3_stmt *st = stmt(c, ST_GOLDEN_ITEM_PUT, &err, r->errbuf);
    if (!st)
        return err;
    bind_text(st, 1, g->run_id);
    bind_text(st, 2, g->item_id);
    bind_text(st, 3, g->rubric);
    sqlite3_bind_int(st, 4, g->unscorable ? 1 : 0);
    if (g->unscorable)
        sqlite3_bind_null(st, 5);
    else
        sqlite3_bind_double(st, 5, g->score);
    sqlite3_bind_int(st, 6, g->pass ? 1 : 0);
    bind_text(st, 7, g->verdict_json);
    return step_done(c, st, "golden item", r->errbuf);
}

/*
 * The first pk received at or after cutoff, by bisection over the rowid: a
 * sample's pk grows with its receive time (one writer connection hands them
 * out in commit order; receive times of one group differ by the loops' few
 * milliseconds, and a clock step moves the bound by its size), so this needs
 * no index on received_ms. The sweep still checks received_ms row by row: a
 * row out of order near the bound waits for a later sweep, never goes early.
 */
static enum assay_err retention_bound(struct conn *c, int64_t cutoff, int64_t *bound, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *range = stmt(c, ST_PK_RANGE, &err, errbuf);
    if (!range)
        return err;
    int64_t lo = 0, hi = 0;
    if (sqlite3_step(range) == SQLITE_ROW && sqlite3_column_type(range, 0) != SQLITE_NULL) {
        lo = sqlite3_column_int64(range, 0);
        hi = sqlite3_column_int64(range, 1) + 1;
    }
    done(range);
    sqlite3_stmt *probe = stmt(c, ST_RETENTION_PROBE, &err, errbuf);
    if (!probe)
        return err;
    while (lo < hi && err == ASSAY_OK) {
        int64_t mid = lo + (hi - lo) / 2;
        sqlite3_bind_int64(probe, 1, mid);
        int rc = sqlite3_step(probe);
        if (rc == SQLITE_ROW && sqlite3_column_int64(probe, 1) < cutoff)
            lo = sqlite3_column_int64(probe, 0) + 1;
        else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            hi = mid;
        else
            err = db_err(errbuf, c->db, "retention");
        done(probe);
    }
    *bound = lo;
    return err;
}

static enum assay_err op_retention(struct conn *c, struct wreq *r)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *sel = stmt(c, ST_RETENTION_SELECT, &err, r->errbuf);
    sqlite3_stmt *dv = sel ? stmt(c, ST_RETENTION_VERDICTS, &err, r->errbuf) : NULL;
    sqlite3_stmt *dj = dv ? stmt(c, ST_RETENTION_JOBS, &err, r->errbuf) : NULL;
    sqlite3_stmt *ds = dj ? stmt(c, ST_RETENTION_SAMPLE, &err, r->errbuf) : NULL;
    if (!ds)
        return err;
    int64_t bound = 0;
    if ((err = retention_bound(c, r->i1, &bound, r->errbuf)) != ASSAY_OK)
        return err;
    int64_t *pks = NULL;
    size_t n = 0, cap = 0;
    sqlite3_bind_int64(sel, 1, r->i1);
    sqlite3_bind_int64(sel, 2, r->i2);
    sqlite3_bind_int64(sel, 3, bound);
    int rc;
    while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            pks = xrealloc(pks, cap * sizeof *pks);
        }
        pks[n++] = sqlite3_column_int64(sel, 0);
    }
    if (rc != SQLITE_DONE)
        err = db_err(r->errbuf, c->db, "retention");
    done(sel);
    for (size_t i = 0; i < n && err == ASSAY_OK; i++) {
        sqlite3_bind_int64(dv, 1, pks[i]);
        err = step_done(c, dv, "retention", r->errbuf);
        if (err == ASSAY_OK) {
            sqlite3_bind_int64(dj, 1, pks[i]);
            err = step_done(c, dj, "retention", r->errbuf);
        }
        if (err == ASSAY_OK) {
            sqlite3_bind_int64(ds, 1, pks[i]);
            err = step_done(c, ds, "retention", r->errbuf);
        }
    }
    free(pks);
    if (err == ASSAY_OK)
        r->out = (int64_t)n;
    return err;
}

static enum assay_err run_op(struct sq *q, struct conn *c, struct wreq *r)
{
    switch (r->op) {
    case W_INSERT:
        return op_insert(q, c, r);
    case W_CLAIM:
        return op_claim(q, c, r);
    case W_RELEASE:
        return op_release(q, c, r);
    case W_COMPLETE:
        return op_complete(q, c, r);
    case W_SERIES_PUT:
        return series_upsert(q, c, r->series, r->errbuf);
    case W_ALARM:
        return alarm_insert(c, r->alarm, &r->out, r->errbuf);
    case W_OUTBOX_ENQUEUE:
        return op_outbox_enqueue(c, r);
    case W_OUTBOX_DELETE:
        return op_outbox_delete(c, r);
    case W_OUTBOX_EXPIRE:
        return op_outbox_expire(c, r);
    case W_GOLDEN_CREATE:
        return op_golden_create(q, c, r);
    case W_GOLDEN_UPDATE:
        return op_golden_update(q, c, r);
    case W_GOLDEN_ITEM:
        return op_golden_item(c, r);
    case W_RETENTION:
        return op_retention(c, r);
    }
    return assay_errbuf_set(r->errbuf, ASSAY_ERR_INTERNAL, "store: unknown operation");
}

/* Undoes what a request left in its output on failure. */
static void reset_results(struct wreq *r)
{
    r->out = 0;
    r->d_queued = r->d_judging = 0;
    r->new_samples = r->dups = 0;
    if (r->op == W_CLAIM)
        store_job_batch_clear(r->claim);
}

/* --------------------------------------------------------- checkpoints */

/*
 * The writer connection's WAL hook: runs on the writer thread after each
 * commit, with the WAL's size in frames. Wakes the checkpointer past the
 * threshold; never checkpoints here, so the callers of this commit are not
 * kept waiting for one.
 */
static int on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct sq *q = arg;
    q->wal_frames = frames;
    if (frames >= WAL_CHECKPOINT_FRAMES) {
        pthread_mutex_lock(&q->ckpt_mu);
        if (!q->ckpt_wanted) {
            q->ckpt_wanted = 1;
            pthread_cond_signal(&q->ckpt_cv);
        }
        pthread_mutex_unlock(&q->ckpt_mu);
    }
    return SQLITE_OK;
}

/*
 * PASSIVE checkpoints on the checkpointer's own connection: they copy the
 * committed frames back into the database file while the writer goes on
 * appending (they take no lock that the writer needs), and sync as the
 * connection's synchronous setting says (NORMAL or FULL alike): the WAL
 * before copying, the database before the frames count as copied. A commit's
 * durability does not depend on them; they only keep the WAL short.
 */
static void *checkpointer_main(void *arg)
{
    struct sq *q = arg;
    prctl(PR_SET_NAME, "assay-ckpt");
    pthread_mutex_lock(&q->ckpt_mu);
    for (;;) {
        while (!q->ckpt_wanted && !q->ckpt_stopping)
            pthread_cond_wait(&q->ckpt_cv, &q->ckpt_mu);
        if (q->ckpt_stopping)
            break;
        q->ckpt_wanted = 0;
        pthread_mutex_unlock(&q->ckpt_mu);
        int log = 0, copied = 0;
        pthread_mutex_lock(&q->ckpt_run);
        int rc =
            sqlite3_wal_checkpoint_v2(q->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        pthread_mutex_unlock(&q->ckpt_run);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            LOG_WARN("store.checkpoint_failed", LOG_S("detail", sqlite3_errmsg(q->ckpt_db)),
                     LOG_I("code", rc));
        pthread_mutex_lock(&q->ckpt_mu);
    }
    pthread_mutex_unlock(&q->ckpt_mu);
    return NULL;
}

/*
 * Called by the writer between groups (no transaction open, q->mu not held,
 * so callers can go on queueing); returns 1 when it checkpointed:
 * past WAL_BOUND_FRAMES the writer checkpoints itself, so that the next
 * transaction starts the WAL over. Most frames were copied by the
 * checkpointer already, so this pause is short; it is taken only when the
 * checkpointer could not catch up with a writer that never paused.
 */
static int wal_bound(struct sq *q)
{
    if (q->wal_frames < WAL_BOUND_FRAMES)
        return 0;
    /*
     * Waits for the checkpointer's run to end (two checkpoints at once would
     * make this one return SQLITE_BUSY at once), then copies what is left:
     * with no write in between, all of it unless a reader still holds an old
     * snapshot, and the next transaction then starts the WAL over.
     */
    int log = 0, copied = 0;
    pthread_mutex_lock(&q->ckpt_run);
    int rc =
        sqlite3_wal_checkpoint_v2(q->writer->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    pthread_mutex_unlock(&q->ckpt_run);
    if (rc == SQLITE_OK && log == copied)
        q->wal_frames = 0;
    return 1;
}

static enum assay_err checkpointer_start(struct sq *q, char *errbuf)
{
    struct conn *c = NULL;
    enum assay_err err = conn_open(q, 1, &c, errbuf); /* WAL, synchronous as the writer's */
    if (err != ASSAY_OK)
        return err;
    q->ckpt_db = c->db; /* only the handle: the checkpointer prepares no statement */
    free(c);
    sqlite3_wal_hook(q->writer->db, on_wal_commit, q); /* replaces the autocheckpoint hook */
    if (pthread_create(&q->ckpt_thread, NULL, checkpointer_main, q) != 0)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "store: cannot start the checkpointer");
    q->ckpt_started = 1;
    return ASSAY_OK;
}

static void checkpointer_stop(struct sq *q)
{
    if (q->ckpt_started) {
        pthread_mutex_lock(&q->ckpt_mu);
        q->ckpt_stopping = 1;
        pthread_cond_signal(&q->ckpt_cv);
        pthread_mutex_unlock(&q->ckpt_mu);
        pthread_join(q->ckpt_thread, NULL);
        q->ckpt_started = 0;
    }
    sqlite3_close(q->ckpt_db);
    q->ckpt_db = NULL;
}

/* ------------------------------------------------------------- the writer */

/*
 * Runs one group in one transaction, each request inside a savepoint, so a
 * failing request is rolled back alone and the others still commit. If the
 * commit itself fails, every request of the group fails.
 */
static void run_group_savepoints(struct sq *q, struct wreq *group)
{
    struct conn *c = q->writer;
    char eb[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = control(c, ST_BEGIN, eb);
    for (struct wreq *r = group; r && err == ASSAY_OK; r = r->next) {
        if ((r->err = control(c, ST_SAVEPOINT, r->errbuf)) != ASSAY_OK) {
            err = r->err;
            snprintf(eb, sizeof eb, "%s", r->errbuf);
            break;
        }
        r->err = run_op(q, c, r);
        if (r->err != ASSAY_OK) {
            reset_results(r);
            err = control(c, ST_ROLLBACK_TO, eb);
        }
        if (err == ASSAY_OK)
            err = control(c, ST_RELEASE, eb);
    }
    if (err == ASSAY_OK)
        err = control(c, ST_COMMIT, eb);
    if (err != ASSAY_OK) {
        if (!sqlite3_get_autocommit(c->db))
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
        LOG_ERROR("store.commit_failed", LOG_S("detail", eb));
        for (struct wreq *r = group; r; r = r->next) {
            if (r->err == ASSAY_OK) {
                r->err = err;
                snprintf(r->errbuf, sizeof r->errbuf, "%s", eb);
            }
            reset_results(r);
        }
    }
}

/*
 * Runs one group in one transaction. Requests almost never fail, so the group
 * first runs without savepoints (two statements fewer per request: the
 * ingest path, bench/ingest); when one fails, the whole transaction is rolled
 * back and the group runs again with a savepoint per request
 * (run_group_savepoints), which rolls back the failing one alone.
 */
static void run_group(struct sq *q, struct wreq *group)
{
    struct conn *c = q->writer;
    char eb[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err err = control(c, ST_BEGIN, eb);
    for (struct wreq *r = group; r && err == ASSAY_OK; r = r->next)
        if ((r->err = run_op(q, c, r)) != ASSAY_OK)
            err = r->err;
    if (err == ASSAY_OK && control(c, ST_COMMIT, eb) == ASSAY_OK)
        return;
    if (!sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    for (struct wreq *r = group; r; r = r->next) {
        reset_results(r);
        r->err = ASSAY_OK;
        r->errbuf[0] = '\0';
    }
    run_group_savepoints(q, group);
}

/*
 * Makes every commit up to ticket (a commit_seq value) durable: fdatasync of
 * the WAL, which holds each committed frame (synchronous=NORMAL wrote them
 * without a sync). Any thread, without write_mu: a sync covers every frame
 * written before it, so one thread's sync serves every commit made before it
 * started, and a caller whose ticket is covered by a sync in progress waits
 * for it instead of starting another. This is what synchronous=FULL does
 * inside COMMIT, moved out of the writer connection's critical section and
 * shared between groups.
 */
static enum assay_err wal_sync(struct sq *q, uint64_t ticket, char *errbuf)
{
    if (!q->synchronous_full || q->wal_fds[0] < 0)
        return ASSAY_OK;
    enum assay_err err = ASSAY_OK;
    uint64_t committed = atomic_load(&q->commit_seq);
    if (ticket > committed)
        ticket = committed; /* no such commit yet: nothing more to make durable */
    pthread_mutex_lock(&q->sync_mu);
    while (q->synced_seq < ticket) {
        if (q->sync_errno) {
            /*
             * Sticky: after a failed fdatasync the kernel may have dropped
             * the dirty pages and a later sync can succeed without them, so
             * nothing is acknowledged any more (restart, as after a crash).
             */
            err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "store: cannot sync the WAL: %s",
                                   strerror(q->sync_errno));
            break;
        }
        int slot = -1;
        for (int i = 0; i < WAL_SYNC_SLOTS && slot < 0; i++)
            if (q->wal_fds[i] >= 0 && !q->wal_fd_busy[i])
                slot = i;
        if (q->syncing_seq >= ticket || slot < 0) {
            /* A sync in progress covers it, or no descriptor is free: wait. */
            pthread_cond_wait(&q->sync_cv, &q->sync_mu);
            continue;
        }
        /* Otherwise start one now, beside any in progress (the device
         * overlaps them; waiting for the running one first would double the
         * latency of commits made just after it started). */
        uint64_t target = atomic_load(&q->commit_seq); /* each is in the file */
        if (target > q->syncing_seq)
            q->syncing_seq = target;
        q->wal_fd_busy[slot] = true;
        pthread_mutex_unlock(&q->sync_mu);
        int rc = fdatasync(q->wal_fds[slot]);
        int e = errno;
        pthread_mutex_lock(&q->sync_mu);
        q->wal_fd_busy[slot] = false;
        if (rc != 0) {
            if (!q->sync_errno)
                LOG_ERROR("store.sync_failed", LOG_S("detail", strerror(e)));
            q->sync_errno = e ? e : EIO;
            pthread_cond_broadcast(&q->sync_cv);
            continue; /* fails this caller and every waiter */
        }
        if (target > q->synced_seq)
            q->synced_seq = target;
        pthread_cond_broadcast(&q->sync_cv);
    }
    pthread_mutex_unlock(&q->sync_mu);
    return err;
}

/*
 * Runs group (a list of requests) on the writer connection from the calling
 * thread and accounts for it. With ticket NULL it also syncs, and the
 * callers' results are final when this returns (async callbacks not fired
 * yet); otherwise *ticket names the commit for a later wal_sync. Returns the
 * number of requests.
 */
static size_t group_commit(struct sq *q, struct wreq *group, uint64_t *ticket)
{
    pthread_mutex_lock(&q->write_mu);
    run_group(q, group);
    uint64_t seq = atomic_fetch_add(&q->commit_seq, 1) + 1;
    int self_checkpointed = wal_bound(q);
    pthread_mutex_unlock(&q->write_mu);

    char eb[ASSAY_ERRBUF_SIZE] = "";
    enum assay_err sync_err = ASSAY_OK;
    if (ticket)
        *ticket = seq;
    else
        sync_err = wal_sync(q, seq, eb);
    size_t nreq = 0;
    pthread_mutex_lock(&q->mu);
    q->stats.writer_ckpts += self_checkpointed;
    q->stats.transactions++;
    for (struct wreq *r = group; r; r = r->next) {
        nreq++;
        q->stats.queued += r->d_queued;
        q->stats.judging += r->d_judging;
        q->stats.samples_inserted += r->new_samples;
        q->stats.duplicates += r->dups;
        /* Committed but perhaps not durable: the caller must not count on it
         * (a retry finds the rows: duplicates, never a loss). */
        if (sync_err != ASSAY_OK && r->err == ASSAY_OK) {
            r->err = sync_err;
            snprintf(r->errbuf, sizeof r->errbuf, "%s", eb);
        }
    }
    q->stats.write_requests += (int64_t)nreq;
    if ((int64_t)nreq > q->stats.largest_group)
        q->stats.largest_group = (int64_t)nreq;
    pthread_mutex_unlock(&q->mu);
    return nreq;
}

static void *writer_main(void *arg)
{
    struct sq *q = arg;
    prctl(PR_SET_NAME, "assay-writer");
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stopping)
            pthread_cond_wait(&q->work_cv, &q->mu);
        if (!q->head)
            break;
        if (q->group_max_wait_us > 0 && q->pending < q->group_max_requests && !q->stopping) {
            struct timespec dl;
            clock_gettime(CLOCK_MONOTONIC, &dl);
            int64_t ns = dl.tv_nsec + q->group_max_wait_us * 1000;
            dl.tv_sec += ns / 1000000000;
            dl.tv_nsec = ns % 1000000000;
            while (q->pending < q->group_max_requests && !q->stopping &&
                   pthread_cond_timedwait(&q->work_cv, &q->mu, &dl) != ETIMEDOUT)
                ;
        }
        /* Take a group off the queue. */
        struct wreq *group = q->head, *last = q->head;
        size_t nreq = 1, nsamples = last->weight;
        while (last->next && nreq < q->group_max_requests &&
               nsamples + last->next->weight <= q->group_max_samples) {
            last = last->next;
            nreq++;
            nsamples += last->weight;
        }
        q->head = last->next;
        if (!q->head)
            q->tail = NULL;
        q->pending -= nreq;
        last->next = NULL;
        pthread_mutex_unlock(&q->mu);

        group_commit(q, group, NULL);

        pthread_mutex_lock(&q->mu);
        /* Wake the waiting callers; fire async callbacks outside the lock. */
        struct wreq *async = NULL;
        for (struct wreq *r = group, *next; r; r = next) {
            next = r->next;
            if (r->cb) {
                r->next = async;
                async = r;
            } else {
                r->done = 1;
            }
        }
        pthread_cond_broadcast(&q->done_cv);
        pthread_mutex_unlock(&q->mu);
        for (struct wreq *r = async, *next; r; r = next) {
            next = r->next;
            r->cb(r->ctx, r->err, r->err == ASSAY_OK ? "" : r->errbuf);
            free(r);
        }
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Queues r; ASSAY_ERR_CANCELLED once the store is closing. Call with q->mu held. */
static enum assay_err enqueue_locked(struct sq *q, struct wreq *r, char *errbuf)
{
    if (q->stopping)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CANCELLED, "store: closing");
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->pending++;
    pthread_cond_signal(&q->work_cv);
    return ASSAY_OK;
}

/* Runs r on the writer and waits for its group's commit. */
static enum assay_err submit(struct sq *q, struct wreq *r, char *errbuf)
{
    pthread_mutex_lock(&q->mu);
    enum assay_err err = enqueue_locked(q, r, errbuf);
    if (err == ASSAY_OK) {
        while (!r->done)
            pthread_cond_wait(&q->done_cv, &q->mu);
        err = r->err;
        if (err != ASSAY_OK && errbuf)
            snprintf(errbuf, ASSAY_ERRBUF_SIZE, "%s", r->errbuf);
    }
    pthread_mutex_unlock(&q->mu);
    return err;
}

/* -------------------------------------------------------------- the ops */

static enum assay_err sq_insert_async(struct store *s, struct store_sample *samples, size_t n,
                                      store_insert_cb cb, void *ctx, char *errbuf)
{
    struct sq *q = SQ(s);
    struct wreq *r = xcalloc(1, sizeof *r);
    r->op = W_INSERT;
    r->samples = samples;
    r->n = n;
    r->weight = n;
    r->cb = cb;
    r->ctx = ctx;
    pthread_mutex_lock(&q->mu);
    enum assay_err err = enqueue_locked(q, r, errbuf);
    pthread_mutex_unlock(&q->mu);
    if (err != ASSAY_OK)
        free(r);
    return err;
}

/*
 * The requests run as one group on the calling thread (an HTTP event loop's
 * batch), skipping the hand-off to the writer thread and back: write_mu
 * orders it with the writer thread's groups and other callers' groups.
 */
static enum assay_err sq_insert_group(struct store *s, struct store_insert *reqs, size_t n,
                                      uint64_t *ticket, char *errbuf)
{
    struct sq *q = SQ(s);
    pthread_mutex_lock(&q->mu);
    int stopping = q->stopping;
    pthread_mutex_unlock(&q->mu);
    if (stopping)
        return assay_errbuf_set(errbuf, ASSAY_ERR_CANCELLED, "store: closing");
    struct wreq *w = xcalloc(n, sizeof *w), *head = NULL, **tail = &head;
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].err != ASSAY_OK)
            continue; /* refused by store.c's checks: not run */
        w[i].op = W_INSERT;
        w[i].samples = reqs[i].samples;
        w[i].n = reqs[i].n;
        w[i].weight = reqs[i].n;
        *tail = &w[i];
        tail = &w[i].next;
    }
    group_commit(q, head, ticket);
    for (size_t i = 0; i < n; i++) {
        if (reqs[i].err != ASSAY_OK)
            continue;
        reqs[i].err = w[i].err;
        snprintf(reqs[i].errbuf, sizeof reqs[i].errbuf, "%s", w[i].err ? w[i].errbuf : "");
    }
    free(w);
    return ASSAY_OK;
}

static enum assay_err sq_sync(struct store *s, uint64_t ticket, char *errbuf)
{
    return wal_sync(SQ(s), ticket, errbuf);
}

static enum assay_err sq_claim(struct store *s, size_t max, struct store_job_batch *out,
                               char *errbuf)
{
    struct wreq r = {.op = W_CLAIM, .claim = out, .i1 = max > INT64_MAX ? INT64_MAX : (int64_t)max};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_release(struct store *s, int64_t job_id, char *errbuf)
{
    struct wreq r = {.op = W_RELEASE, .id = job_id};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_queue_depth(struct store *s, int64_t *queued, int64_t *judging)
{
    struct sq *q = SQ(s);
    pthread_mutex_lock(&q->mu);
    *queued = q->stats.queued;
    *judging = q->stats.judging;
    pthread_mutex_unlock(&q->mu);
    return ASSAY_OK;
}

static enum assay_err sq_complete(struct store *s, const struct store_completion *c, int *recorded,
                                  char *errbuf)
{
    struct wreq r = {.op = W_COMPLETE, .completion = c};
    enum assay_err err = submit(SQ(s), &r, errbuf);
    *recorded = err == ASSAY_OK && r.out == 1;
    return err;
}

static enum assay_err sq_series_put(struct store *s, const struct store_series *series,
                                    char *errbuf)
{
    struct wreq r = {.op = W_SERIES_PUT, .series = series};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_alarm_append(struct store *s, const struct store_alarm *alarm,
                                      int64_t *alarm_id, char *errbuf)
{
    struct wreq r = {.op = W_ALARM, .alarm = alarm};
    enum assay_err err = submit(SQ(s), &r, errbuf);
    if (alarm_id)
        *alarm_id = err == ASSAY_OK ? r.out : 0;
    return err;
}

static enum assay_err sq_outbox_enqueue(struct store *s, const void *payload, size_t len,
                                        int64_t created_ms, int64_t *item_id, char *errbuf)
{
    if (len > INT32_MAX)
        return assay_errbuf_set(errbuf, ASSAY_ERR_TOO_LARGE, "store: outbox item too large");
    struct wreq r = {.op = W_OUTBOX_ENQUEUE, .p = payload, .n = len, .i1 = created_ms};
    enum assay_err err = submit(SQ(s), &r, errbuf);
    if (item_id)
        *item_id = err == ASSAY_OK ? r.out : 0;
    return err;
}

static enum assay_err sq_outbox_delete(struct store *s, const int64_t *item_ids, size_t n,
                                       char *errbuf)
{
    struct wreq r = {.op = W_OUTBOX_DELETE, .ids = item_ids, .n = n};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_outbox_expire(struct store *s, int64_t cutoff_ms, int64_t *dropped,
                                       char *errbuf)
{
    struct wreq r = {.op = W_OUTBOX_EXPIRE, .i1 = cutoff_ms};
    enum assay_err err = submit(SQ(s), &r, errbuf);
    *dropped = err == ASSAY_OK ? r.out : 0;
    return err;
}

static enum assay_err sq_golden_create(struct store *s, const struct store_golden_run *run,
                                       char *errbuf)
{
    struct wreq r = {.op = W_GOLDEN_CREATE, .run = run};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_golden_update(struct store *s, const char *run_id, const char *status,
                                       int64_t done_, int64_t total, const char *result_json,
                                       char *errbuf)
{
    struct wreq r = {.op = W_GOLDEN_UPDATE,
                     .s1 = run_id,
                     .s2 = status,
                     .s3 = result_json,
                     .i1 = done_,
                     .i2 = total};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_golden_item_put(struct store *s, const struct store_golden_item *item,
                                         char *errbuf)
{
    struct wreq r = {.op = W_GOLDEN_ITEM, .item = item};
    return submit(SQ(s), &r, errbuf);
}

static enum assay_err sq_retention(struct store *s, int64_t cutoff_ms, size_t max_samples,
                                   int64_t *deleted, char *errbuf)
{
    if (max_samples > INT64_MAX)
        max_samples = INT64_MAX;
    struct wreq r = {.op = W_RETENTION, .i1 = cutoff_ms, .i2 = (int64_t)max_samples};
    enum assay_err err = submit(SQ(s), &r, errbuf);
    *deleted = err == ASSAY_OK ? r.out : 0;
    return err;
}

/* ---------------------------------------------------------------- reads */

static void read_verdict(void **mem, sqlite3_stmt *st, int i, struct store_verdict *v)
{
    v->rubric = col_text(mem, st, i + 0);
    v->rubric_version = col_text(mem, st, i + 1);
    v->judge = col_text(mem, st, i + 2);
    v->unscorable = sqlite3_column_int(st, i + 3) != 0;
    v->reason = col_text(mem, st, i + 4);
    v->detail = col_text(mem, st, i + 5);
    v->score = sqlite3_column_double(st, i + 6);
    v->raw_score = sqlite3_column_double(st, i + 7);
    v->pass = sqlite3_column_int(st, i + 8) != 0;
    v->reasoning = col_text(mem, st, i + 9);
    v->latency_ms = sqlite3_column_int64(st, i + 10);
    v->input_tokens = sqlite3_column_int64(st, i + 11);
    v->output_tokens = sqlite3_column_int64(st, i + 12);
    v->cache_read_tokens = sqlite3_column_int64(st, i + 13);
    v->cache_write_tokens = sqlite3_column_int64(st, i + 14);
    v->attempts = sqlite3_column_int(st, i + 15);
    v->created_ms = sqlite3_column_int64(st, i + 16);
}

static enum store_sample_status sample_status(const struct store_sample_info *in)
{
    if (!in->sampled)
        return STORE_STATUS_NOT_SAMPLED;
    int queued = 0, judging = 0, done_ = 0;
    for (size_t i = 0; i < in->n_jobs; i++) {
        queued += in->jobs[i].state == STORE_JOB_QUEUED;
        judging += in->jobs[i].state == STORE_JOB_JUDGING;
        done_ += in->jobs[i].state == STORE_JOB_DONE;
    }
    if (judging)
        return STORE_STATUS_JUDGING;
    if (queued)
        return STORE_STATUS_QUEUED;
    if (done_ || in->n_jobs == 0)
        return STORE_STATUS_DONE;
    return STORE_STATUS_FAILED;
}

/* The row of (app, id) into out (its arena); ASSAY_ERR_NOT_FOUND without one. */
static enum assay_err sample_row(struct conn *c, const char *app, const char *id,
                                 struct store_sample_info *out, int64_t *pk, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    sqlite3_stmt *st = stmt(c, ST_SAMPLE_BY_APP_ID, &err, errbuf);
    if (!st)
        return err;
    bind_text(st, 1, app);
    bind_text(st, 2, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *pk = sqlite3_column_int64(st, 0);
        out->app = col_text(&out->mem_, st, 1);
        out->id = col_text(&out->mem_, st, 2);
        out->doc = col_text(&out->mem_, st, 3);
        out->doc_len = (size_t)sqlite3_column_bytes(st, 3);
        if (out->doc_len == 0)
            out->doc = NULL; /* '': stored without its text */
        out->trace_id = col_text(&out->mem_, st, 4);
        out->model_id = col_text(&out->mem_, st, 5);
        out->sampled = sqlite3_column_int(st, 6) != 0;
        out->received_ms = sqlite3_column_int64(st, 7);
    } else if (rc == SQLITE_DONE) {
        err = ASSAY_ERR_NOT_FOUND;
    } else {
        err = db_err(errbuf, c->db, "sample");
    }
    done(st);
    return err;
}

static enum assay_err sq_sample_get(struct store *s, const char *app, const char *id,
                                    struct store_sample_info *out, char *errbuf)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = NULL, *js = NULL;
    /* One read transaction, so the sample and its jobs are one snapshot. */
    if ((err = conn_exec(c, "BEGIN", errbuf)) != ASSAY_OK)
        goto out;
    int64_t pk = 0;
    if (app) {
        if ((err = sample_row(c, app, id, out, &pk, errbuf)) == ASSAY_ERR_NOT_FOUND)
            assay_errbuf_set(errbuf, err, "no sample with this id");
        if (err != ASSAY_OK)
            goto out;
    } else {
        /*
         * By id alone: one lookup per app in the (app, id) index, the apps
         * walked in that index too (a seek each), so that no second index on
         * id is paid by every insert; the apps are few.
         */
        st = stmt(c, ST_NEXT_APP, &err, errbuf);
        if (!st)
            goto out;
        char *cur = xstrdup("");
        bool found = false;
        for (;;) {
            bind_text(st, 1, cur);
            int rc = sqlite3_step(st);
            if (rc == SQLITE_DONE)
                break;
            if (rc != SQLITE_ROW) {
                free(cur);
                err = db_err(errbuf, c->db, "sample");
                goto out;
            }
            free(cur);
            cur = xstrdup((const char *)sqlite3_column_text(st, 0));
            done(st);
            struct store_sample_info probe = {0};
            int64_t ppk = 0;
            err = sample_row(c, cur, id, &probe, &ppk, errbuf);
            if (err == ASSAY_ERR_NOT_FOUND) {
                err = ASSAY_OK;
                continue;
            }
            if (err == ASSAY_OK && found)
                err = assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT,
                                       "the id exists under several apps; add ?app=NAME");
            if (err != ASSAY_OK) {
                store_sample_info_clear(&probe);
                free(cur);
                goto out;
            }
            *out = probe;
            pk = ppk;
            found = true;
        }
        free(cur);
        if (!found) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "no sample with this id");
            goto out;
        }
    }
    int rc;
    js = stmt(c, ST_SAMPLE_JOBS, &err, errbuf);
    if (!js)
        goto out;
    sqlite3_bind_int64(js, 1, pk);
    size_t cap = 0;
    while ((rc = sqlite3_step(js)) == SQLITE_ROW) {
        if (out->n_jobs == cap) {
            cap = cap ? cap * 2 : 4;
            out->jobs = xrealloc(out->jobs, cap * sizeof *out->jobs);
        }
        struct store_job_info *j = &out->jobs[out->n_jobs++];
        memset(j, 0, sizeof *j);
        j->rubric = col_text(&out->mem_, js, 0);
        j->state = (enum store_job_state)sqlite3_column_int(js, 1);
        j->attempts = sqlite3_column_int(js, 2);
        j->has_verdict = sqlite3_column_int(js, 3) != 0;
        if (j->has_verdict)
            read_verdict(&out->mem_, js, 4, &j->verdict);
    }
    if (rc != SQLITE_DONE) {
        err = db_err(errbuf, c->db, "sample jobs");
        goto out;
    }
    out->status = sample_status(out);
out:
    done(st);
    done(js);
    reader_put(q, c);
    if (err != ASSAY_OK)
        store_sample_info_clear(out);
    return err;
}

static void read_series(void **mem, sqlite3_stmt *st, struct store_series *x)
{
    x->app = col_text(mem, st, 0);
    x->rubric = col_text(mem, st, 1);
    x->model_id = col_text(mem, st, 2);
    x->rubric_version = col_text(mem, st, 3);
    x->judge_model = col_text(mem, st, 4);
    x->state_json = col_text(mem, st, 5);
    x->updated_ms = sqlite3_column_int64(st, 6);
}

/*
 * Runs a bound read statement and appends one element per row through fill,
 * growing *arr (elements of size sz) and *n.
 */
typedef void (*row_fn)(void **mem, sqlite3_stmt *st, void *elem);

static enum assay_err read_rows(struct conn *c, sqlite3_stmt *st, void **arr, size_t *n, size_t sz,
                                void **mem, row_fn fill, char *errbuf)
{
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *arr = xrealloc(*arr, cap * sz);
        }
        void *e = (char *)*arr + *n * sz;
        memset(e, 0, sz);
        fill(mem, st, e);
        (*n)++;
    }
    enum assay_err err = rc == SQLITE_DONE ? ASSAY_OK : db_err(errbuf, c->db, "read");
    done(st);
    return err;
}

static void fill_series(void **mem, sqlite3_stmt *st, void *e)
{
    read_series(mem, st, e);
}

static enum assay_err sq_series_get(struct store *s, const char *app, const char *rubric,
                                    const char *model_id, struct store_series_list *out,
                                    char *errbuf)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, ST_SERIES_GET, &err, errbuf);
    if (st) {
        bind_text(st, 1, app);
        bind_text(st, 2, rubric);
        bind_text(st, 3, model_id);
        err = read_rows(c, st, (void **)&out->series, &out->n, sizeof *out->series, &out->mem_,
                        fill_series, errbuf);
    }
    reader_put(q, c);
    if (err == ASSAY_OK && out->n == 0)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "store: no such series");
    if (err != ASSAY_OK)
        store_series_list_clear(out);
    return err;
}

static enum assay_err sq_series_list(struct store *s, struct store_series_list *out, char *errbuf)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, ST_SERIES_LIST, &err, errbuf);
    if (st)
        err = read_rows(c, st, (void **)&out->series, &out->n, sizeof *out->series, &out->mem_,
                        fill_series, errbuf);
    reader_put(q, c);
    if (err != ASSAY_OK)
        store_series_list_clear(out);
    return err;
}

static void fill_alarm(void **mem, sqlite3_stmt *st, void *e)
{
    struct store_alarm *a = e;
    a->alarm_id = sqlite3_column_int64(st, 0);
    a->app = col_text(mem, st, 1);
    a->rubric = col_text(mem, st, 2);
    a->model_id = col_text(mem, st, 3);
    a->raised = sqlite3_column_int(st, 4) != 0;
    a->at_ms = sqlite3_column_int64(st, 5);
    a->detail_json = col_text(mem, st, 6);
}

static enum assay_err sq_alarm_list(struct store *s, int64_t since_ms, size_t limit,
                                    struct store_alarm_list *out, char *errbuf)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, ST_ALARM_LIST, &err, errbuf);
    if (st) {
        sqlite3_bind_int64(st, 1, since_ms);
        sqlite3_bind_int64(st, 2, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
        err = read_rows(c, st, (void **)&out->alarms, &out->n, sizeof *out->alarms, &out->mem_,
                        fill_alarm, errbuf);
    }
    reader_put(q, c);
    if (err != ASSAY_OK)
        store_alarm_list_clear(out);
    return err;
}

static void fill_outbox(void **mem, sqlite3_stmt *st, void *e)
{
    struct store_outbox_item *it = e;
    it->item_id = sqlite3_column_int64(st, 0);
    it->created_ms = sqlite3_column_int64(st, 1);
    const void *p = sqlite3_column_blob(st, 2);
    it->payload_len = (size_t)sqlite3_column_bytes(st, 2);
    it->payload = store_arena_memdup(mem, p ? p : "", it->payload_len);
}

static enum assay_err sq_outbox_peek(struct store *s, size_t max, struct store_outbox_list *out,
                                     char *errbuf)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, ST_OUTBOX_PEEK, &err, errbuf);
    if (st) {
        sqlite3_bind_int64(st, 1, max > INT64_MAX ? INT64_MAX : (int64_t)max);
        err = read_rows(c, st, (void **)&out->items, &out->n, sizeof *out->items, &out->mem_,
                        fill_outbox, errbuf);
    }
    reader_put(q, c);
    if (err != ASSAY_OK)
        store_outbox_list_clear(out);
    return err;
}

static enum assay_err sq_outbox_count(struct store *s, int64_t *count)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, NULL);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, ST_OUTBOX_COUNT, &err, NULL);
    if (st) {
        if (sqlite3_step(st) == SQLITE_ROW)
            *count = sqlite3_column_int64(st, 0);
        else
            err = ASSAY_ERR_IO;
        done(st);
    }
    reader_put(q, c);
    return err;
}

static void fill_run(void **mem, sqlite3_stmt *st, void *e)
{
    struct store_golden_run *g = e;
    g->run_id = col_text(mem, st, 0);
    g->dataset = col_text(mem, st, 1);
    g->target_model = col_text(mem, st, 2);
    g->status = col_text(mem, st, 3);
    g->done = sqlite3_column_int64(st, 4);
    g->total = sqlite3_column_int64(st, 5);
    g->params_json = col_text(mem, st, 6);
    g->result_json = col_text(mem, st, 7);
    g->created_ms = sqlite3_column_int64(st, 8);
    g->updated_ms = sqlite3_column_int64(st, 9);
}

static enum assay_err golden_read(struct sq *q, enum st id, const char *a, const char *b,
                                  const char *cc, struct store_golden_run_list *out, char *errbuf)
{
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, id, &err, errbuf);
    if (st) {
        bind_text(st, 1, a);
        if (id == ST_GOLDEN_LATEST) {
            bind_text(st, 2, b);
            bind_text(st, 3, cc);
        }
        err = read_rows(c, st, (void **)&out->runs, &out->n, sizeof *out->runs, &out->mem_,
                        fill_run, errbuf);
    }
    reader_put(q, c);
    if (err == ASSAY_OK && out->n == 0)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_NOT_FOUND, "store: no such golden run");
    if (err != ASSAY_OK)
        store_golden_run_list_clear(out);
    return err;
}

static enum assay_err sq_golden_get(struct store *s, const char *run_id,
                                    struct store_golden_run_list *out, char *errbuf)
{
    return golden_read(SQ(s), ST_GOLDEN_GET, run_id, NULL, NULL, out, errbuf);
}

static enum assay_err sq_golden_latest(struct store *s, const char *dataset, const char *status,
                                       const char *except_run_id, struct store_golden_run_list *out,
                                       char *errbuf)
{
    return golden_read(SQ(s), ST_GOLDEN_LATEST, dataset, status, except_run_id, out, errbuf);
}

static void fill_item(void **mem, sqlite3_stmt *st, void *e)
{
    struct store_golden_item *g = e;
    g->run_id = col_text(mem, st, 0);
    g->item_id = col_text(mem, st, 1);
    g->rubric = col_text(mem, st, 2);
    g->unscorable = sqlite3_column_int(st, 3) != 0;
    g->score = sqlite3_column_double(st, 4);
    g->pass = sqlite3_column_int(st, 5) != 0;
    g->verdict_json = col_text(mem, st, 6);
}

static enum assay_err sq_golden_item_list(struct store *s, const char *run_id,
                                          struct store_golden_item_list *out, char *errbuf)
{
    struct sq *q = SQ(s);
    struct conn *c = NULL;
    enum assay_err err = reader_get(q, &c, errbuf);
    if (err != ASSAY_OK)
        return err;
    sqlite3_stmt *st = stmt(c, ST_GOLDEN_ITEM_LIST, &err, errbuf);
    if (st) {
        bind_text(st, 1, run_id);
        err = read_rows(c, st, (void **)&out->items, &out->n, sizeof *out->items, &out->mem_,
                        fill_item, errbuf);
    }
    reader_put(q, c);
    if (err != ASSAY_OK)
        store_golden_item_list_clear(out);
    return err;
}

static void sq_stats_get(struct store *s, struct store_stats *out)
{
    struct sq *q = SQ(s);
    pthread_mutex_lock(&q->mu);
    *out = q->stats;
    pthread_mutex_unlock(&q->mu);
}

static void sq_free(struct sq *q)
{
    checkpointer_stop(q);
    conn_close(q->writer);
    while (q->free_readers) {
        struct conn *c = q->free_readers;
        q->free_readers = c->next;
        conn_close(c);
    }
    pthread_cond_destroy(&q->pool_cv);
    pthread_mutex_destroy(&q->pool_mu);
    pthread_cond_destroy(&q->ckpt_cv);
    pthread_mutex_destroy(&q->ckpt_mu);
    pthread_mutex_destroy(&q->ckpt_run);
    pthread_cond_destroy(&q->done_cv);
    pthread_cond_destroy(&q->work_cv);
    pthread_mutex_destroy(&q->mu);
    for (int i = 0; i < WAL_SYNC_SLOTS; i++)
        if (q->wal_fds[i] >= 0)
            close(q->wal_fds[i]);
    pthread_mutex_destroy(&q->write_mu);
    pthread_mutex_destroy(&q->sync_mu);
    pthread_cond_destroy(&q->sync_cv);
    if (q->lock_fd >= 0)
        close(q->lock_fd); /* releases the flock */
    free(q->path);
    free(q);
}

static void sq_close(struct store *s)
{
    struct sq *q = SQ(s);
    LOG_INFO("store.closing", LOG_I("transactions", q->stats.transactions),
             LOG_I("write_requests", q->stats.write_requests),
             LOG_I("largest_group", q->stats.largest_group),
             LOG_I("samples_inserted", q->stats.samples_inserted),
             LOG_I("writer_checkpoints", q->stats.writer_ckpts));
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    pthread_cond_signal(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
    if (q->thread_started)
        pthread_join(q->thread, NULL);
    sq_free(q);
}

static const struct store_ops sqlite_ops = {
    .sample_insert_async = sq_insert_async,
    .sample_insert_group = sq_insert_group,
    .sync = sq_sync,
    .job_claim = sq_claim,
    .job_release = sq_release,
    .queue_depth = sq_queue_depth,
    .job_complete = sq_complete,
    .sample_get = sq_sample_get,
    .series_put = sq_series_put,
    .series_get = sq_series_get,
    .series_list = sq_series_list,
    .alarm_append = sq_alarm_append,
    .alarm_list = sq_alarm_list,
    .outbox_enqueue = sq_outbox_enqueue,
    .outbox_peek = sq_outbox_peek,
    .outbox_delete = sq_outbox_delete,
    .outbox_expire = sq_outbox_expire,
    .outbox_count = sq_outbox_count,
    .golden_run_create = sq_golden_create,
    .golden_run_update = sq_golden_update,
    .golden_run_get = sq_golden_get,
    .golden_run_latest = sq_golden_latest,
    .golden_item_put = sq_golden_item_put,
    .golden_item_list = sq_golden_item_list,
    .retention_run = sq_retention,
    .stats_get = sq_stats_get,
    .close = sq_close,
};

/* ------------------------------------------------------------ open, migrate */

/* The file's schema version: 0 for an empty file; ASSAY_ERR_CONFIG if not ours. */
static enum assay_err schema_version(struct conn *c, int64_t *version, char *errbuf)
{
    sqlite3_stmt *st = NULL;
    enum assay_err err = ASSAY_OK;
    int rc = sqlite3_prepare_v2(c->db,
                                "SELECT (SELECT count(*) FROM sqlite_schema WHERE type = 'table'),"
                                " (SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                                " AND name = 'schema_version')",
                                -1, &st, NULL);
    if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
        err = db_err(errbuf, c->db, "read schema");
        goto out;
    }
    int64_t tables = sqlite3_column_int64(st, 0), ours = sqlite3_column_int64(st, 1);
    sqlite3_finalize(st);
    st = NULL;
    if (!ours) {
        *version = 0;
        if (tables)
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "store: the file holds tables but no schema_version:"
                                   " not an assay store");
        goto out;
    }
    if (sqlite3_prepare_v2(c->db, "SELECT max(version) FROM schema_version", -1, &st, NULL) !=
            SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        err = db_err(errbuf, c->db, "read schema_version");
        goto out;
    }
    *version = sqlite3_column_int64(st, 0);
out:
    sqlite3_finalize(st);
    return err;
}

static enum assay_err set_version(struct conn *c, int64_t v, char *errbuf)
{
    enum assay_err err = conn_exec(c, "DELETE FROM schema_version", errbuf);
    sqlite3_stmt *st = NULL;
    if (err != ASSAY_OK)
        return err;
    if (sqlite3_prepare_v2(c->db, "INSERT INTO schema_version VALUES(?1)", -1, &st, NULL) !=
        SQLITE_OK)
        return db_err(errbuf, c->db, "schema_version");
    sqlite3_bind_int64(st, 1, v);
    if (sqlite3_step(st) != SQLITE_DONE)
        err = db_err(errbuf, c->db, "schema_version");
    sqlite3_finalize(st);
    return err;
}

static enum assay_err migrate(struct sq *q, struct conn *c, char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    for (;;) {
        int64_t v = 0;
        if ((err = conn_exec(c, "BEGIN IMMEDIATE", errbuf)) != ASSAY_OK)
            return err;
        if ((err = schema_version(c, &v, errbuf)) != ASSAY_OK)
            goto fail;
        if (v > STORE_SCHEMA_VERSION) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG,
                                   "store: %s has schema version %lld, newer than this assay"
                                   " knows (%d); run a newer assay or restore a backup",
                                   q->path, (long long)v, STORE_SCHEMA_VERSION);
            goto fail;
        }
        if (v == STORE_SCHEMA_VERSION) {
            q->stats.schema_version = v;
            return conn_exec(c, "COMMIT", errbuf);
        }
        if (v < 0) {
            err = assay_errbuf_set(errbuf, ASSAY_ERR_CONFIG, "store: bad schema version %lld",
                                   (long long)v);
            goto fail;
        }
        if ((err = conn_exec(c, migrations[v], errbuf)) != ASSAY_OK)
            goto fail;
        if ((err = set_version(c, v + 1, errbuf)) != ASSAY_OK ||
            (err = conn_exec(c, "COMMIT", errbuf)) != ASSAY_OK)
            goto fail;
        LOG_INFO("store.migrated", LOG_I("from", v), LOG_I("to", v + 1));
    }
fail:
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

/* Puts jobs left `judging` back to `queued` and counts the queue. */
static enum assay_err recover(struct sq *q, struct conn *c, char *errbuf)
{
    enum assay_err err = conn_exec(c, "UPDATE jobs SET state = 0 WHERE state = 1", errbuf);
    if (err != ASSAY_OK)
        return err;
    q->stats.requeued_at_open = sqlite3_changes(c->db);
    if (q->stats.requeued_at_open)
        LOG_WARN("store.requeued", LOG_I("jobs", q->stats.requeued_at_open));
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(c->db,
                           "SELECT state, count(*) FROM jobs WHERE state IN (0, 1)"
                           " GROUP BY state",
                           -1, &st, NULL) != SQLITE_OK)
        return db_err(errbuf, c->db, "count jobs");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_int(st, 0) == JS_QUEUED)
            q->stats.queued = sqlite3_column_int64(st, 1);
        else
            q->stats.judging = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? ASSAY_OK : db_err(errbuf, c->db, "count jobs");
}

/*
 * Takes <path>.lock with flock: the in-memory queue counts and the requeue at
 * open assume that one process owns the file, so a second `assay serve` on
 * the same data_dir is refused. The kernel drops the lock when the process
 * dies, so a crash never leaves it behind.
 */
static enum assay_err lock_store(struct sq *q, char *errbuf)
{
    size_t n = strlen(q->path) + sizeof ".lock";
    char *lock_path = xmalloc(n);
    snprintf(lock_path, n, "%s.lock", q->path);
    enum assay_err err = ASSAY_OK;
    q->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (q->lock_fd < 0)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO, "store: cannot open %s: %s", lock_path,
                               strerror(errno));
    else if (flock(q->lock_fd, LOCK_EX | LOCK_NB) != 0)
        err = assay_errbuf_set(errbuf, ASSAY_ERR_IO,
                               errno == EWOULDBLOCK
                                   ? "store: %s is in use by another process (%s held)"
                                   : "store: cannot lock %s (%s)",
                               q->path, errno == EWOULDBLOCK ? lock_path : strerror(errno));
    free(lock_path);
    return err;
}

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

/*
 * Opens the WAL for wal_sync (after the writer connection created it: it
 * lives as long as a connection is open, same inode, rewound or truncated
 * but never replaced) and syncs the directory, so that the file's entry is
 * durable too.
 */
static enum assay_err wal_open(struct sq *q, char *errbuf)
{
    if (!q->synchronous_full)
        return ASSAY_OK;
    size_t n = strlen(q->path);
    char *wal = xmalloc(n + 5);
    memcpy(wal, q->path, n);
    memcpy(wal + n, "-wal", 5);
    int e = 0;
    for (int i = 0; i < WAL_SYNC_SLOTS && e == 0; i++)
        if ((q->wal_fds[i] = open(wal, O_RDONLY | O_CLOEXEC)) < 0)
            e = errno;
    free(wal);
    if (e)
        return assay_errbuf_set(errbuf, ASSAY_ERR_IO, "store: cannot open the WAL of %s: %s",
                                q->path, strerror(e));
    char *dir = xstrdup(q->path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return ASSAY_OK;
}

enum assay_err store_sqlite_open(const struct store_sqlite_options *o, struct store **out,
                                 char *errbuf)
{
    enum assay_err err = ASSAY_OK;
    struct sq *q = NULL;
    if (!out)
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "store: no output");
    *out = NULL;
    if (!o || !o->path || !o->path[0])
        return assay_errbuf_set(errbuf, ASSAY_ERR_INVALID_ARGUMENT, "store: no path");
    q = xcalloc(1, sizeof *q);
    q->base.ops = &sqlite_ops;
    q->lock_fd = -1;
    for (int i = 0; i < WAL_SYNC_SLOTS; i++)
        q->wal_fds[i] = -1;
    q->path = xstrdup(o->path);
    q->clock = o->clock;
    q->busy_timeout_ms = o->busy_timeout_ms > 0 ? o->busy_timeout_ms : 5000;
    q->group_max_requests = o->group_max_requests ? o->group_max_requests : 1;
    q->group_max_samples = o->group_max_samples ? o->group_max_samples : 1;
    q->group_max_wait_us = o->group_max_wait_us > 0 ? o->group_max_wait_us : 0;
    q->synchronous_full = o->synchronous_full;
    q->max_readers = o->max_read_connections ? o->max_read_connections : 1;
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->write_mu, NULL);
    pthread_mutex_init(&q->sync_mu, NULL);
    pthread_cond_init(&q->sync_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&q->done_cv, NULL);
    pthread_mutex_init(&q->pool_mu, NULL);
    pthread_cond_init(&q->pool_cv, NULL);
    pthread_mutex_init(&q->ckpt_mu, NULL);
    pthread_mutex_init(&q->ckpt_run, NULL);
    pthread_cond_init(&q->ckpt_cv, NULL);

    if ((err = lock_store(q, errbuf)) != ASSAY_OK)
        goto out;
    if ((err = conn_open(q, 1, &q->writer, errbuf)) != ASSAY_OK)
        goto out;
    if ((err = migrate(q, q->writer, errbuf)) != ASSAY_OK)
        goto out;
    if ((err = recover(q, q->writer, errbuf)) != ASSAY_OK)
        goto out;
    if ((err = wal_open(q, errbuf)) != ASSAY_OK)
        goto out;
    if ((err = checkpointer_start(q, errbuf)) != ASSAY_OK)
        goto out;
    if (pthread_create(&q->thread, NULL, writer_main, q) != 0) {
        err = assay_errbuf_set(errbuf, ASSAY_ERR_INTERNAL, "store: cannot start the writer");
        goto out;
    }
    q->thread_started = 1;
    LOG_INFO("store.opened", LOG_S("path", q->path), LOG_I("schema", q->stats.schema_version),
             LOG_I("queued", q->stats.queued), LOG_B("synchronous_full", q->synchronous_full));
out:
    if (err != ASSAY_OK) {
        sq_free(q);
        return err;
    }
    *out = &q->base;
    return ASSAY_OK;
}
