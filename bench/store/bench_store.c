/*
 * bench/store/bench_store.c: durable inserts per second into the SQLite store
 * (server/store_sqlite) of 1 KB samples, each sampled for one rubric (so each
 * insert also queues a job), from N threads (8) each inserting one sample per
 * call, as HTTP handlers do. Runs twice on fresh files, both with
 * synchronous=FULL: with group commit (the defaults) and with one transaction
 * per insert (group_max_requests = 1). Prints inserts/s, transactions,
 * callers per transaction and p50/p99 call latency for each, and the ratio.
 *
 * Usage: bench_store [--seconds S] [--threads N] [--dir DIR] [--wait-us US];
 * run through bench/store/run.
 */
#include "common/log.h"
#include "server/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DOC_BYTES 1024
#define MAX_LAT 4000000

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

struct run {
    struct store *s;
    int64_t end_us;
    const char *doc;
    atomic_long inserts;
    atomic_long failures;
    int32_t *lat_us; /* one slot per insert, up to MAX_LAT */
    atomic_long n_lat;
};

struct worker {
    struct run *r;
    int t;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct run *r = w->r;
    static const char *const rubrics[] = {"helpfulness"};
    char id[48];
    for (unsigned long i = 0; mono_us() < r->end_us; i++) {
        snprintf(id, sizeof id, "w%d-%lu", w->t, i);
        struct store_sample x = {.app = "bench",
                                 .id = id,
                                 .doc = r->doc,
                                 .doc_len = DOC_BYTES,
                                 .sampled = true,
                                 .received_ms = 1,
                                 .rubrics = rubrics,
                                 .n_rubrics = 1};
        int64_t t0 = mono_us();
        if (store_sample_insert(r->s, &x, 1, NULL) != ASSAY_OK) {
            atomic_fetch_add(&r->failures, 1);
            continue;
        }
        long k = atomic_fetch_add(&r->n_lat, 1);
        if (k < MAX_LAT)
            r->lat_us[k] = (int32_t)(mono_us() - t0);
        atomic_fetch_add(&r->inserts, 1);
    }
    return NULL;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static double run_one(const char *dir, const char *name, int threads, double seconds,
                      size_t group_max_requests, int64_t wait_us, const char *doc)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.db", dir, name);
    unlink(path);
    char side[1100];
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);

    struct store_sqlite_options o;
    store_sqlite_options_init(&o);
    o.path = path;
    o.group_max_requests = group_max_requests;
    o.group_max_wait_us = wait_us;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    struct run r = {.doc = doc};
    if (store_sqlite_open(&o, &r.s, errbuf) != ASSAY_OK) {
        fprintf(stderr, "bench_store: %s\n", errbuf);
        exit(1);
    }
    r.lat_us = calloc(MAX_LAT, sizeof *r.lat_us);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    struct worker *ws = calloc((size_t)threads, sizeof *ws);
    int64_t t0 = mono_us();
    r.end_us = t0 + (int64_t)(seconds * 1e6);
    for (int t = 0; t < threads; t++) {
        ws[t] = (struct worker){.r = &r, .t = t};
        pthread_create(&th[t], NULL, worker_main, &ws[t]);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double el = (double)(mono_us() - t0) / 1e6;
    struct store_stats st;
    store_stats_get(r.s, &st);
    store_close(r.s);

    long n = atomic_load(&r.inserts);
    long nl = atomic_load(&r.n_lat);
    if (nl > MAX_LAT)
        nl = MAX_LAT;
    qsort(r.lat_us, (size_t)nl, sizeof *r.lat_us, cmp_i32);
    double rate = (double)n / el;
    printf("%-26s %9.0f inserts/s  %7lld transactions  %6.1f inserts/transaction"
           "  p50 %6.2f ms  p99 %6.2f ms%s\n",
           name, rate, (long long)st.transactions,
           st.transactions ? (double)st.write_requests / (double)st.transactions : 0.0,
           nl ? r.lat_us[nl / 2] / 1000.0 : 0.0, nl ? r.lat_us[nl * 99 / 100] / 1000.0 : 0.0,
           atomic_load(&r.failures) ? "  (failures!)" : "");
    free(r.lat_us);
    free(th);
    free(ws);
    unlink(path);
    return rate;
}

int main(int argc, char **argv)
{
    double seconds = 3;
    int threads = 8;
    int64_t wait_us = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--wait-us") == 0 && i + 1 < argc)
            wait_us = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_store [--seconds S] [--threads N] [--dir DIR]"
                            " [--wait-us US]\n");
            return 2;
        }
    }
    if (threads < 1 || seconds <= 0)
        return 2;
    char tmp[] = "/tmp/assay-bench-store-XXXXXX";
    if (!dir) {
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmp;
    }
    log_set_level(LOG_LEVEL_WARN);
    char *doc = malloc(DOC_BYTES + 1);
    int n = snprintf(doc, DOC_BYTES + 1,
                     "{\"app\":\"bench\",\"input\":\"How do I reset my"
                     " password?\",\"output\":\"");
    memset(doc + n, 'x', DOC_BYTES - (size_t)n - 2);
    memcpy(doc + DOC_BYTES - 2, "\"}", 2);
    doc[DOC_BYTES] = '\0';

    printf("bench_store: %d threads, 1 KB samples, synchronous=FULL, %.1f s each, in %s\n", threads,
           seconds, dir);
    double grouped = run_one(dir, "group-commit", threads, seconds, 512, wait_us, doc);
    double single = run_one(dir, "one-transaction-per-insert", threads, seconds, 1, 0, doc);
    printf("ratio (group commit / one transaction per insert): %.1fx\n",
           single > 0 ? grouped / single : 0.0);
    free(doc);
    if (dir == tmp)
        rmdir(tmp);
    return 0;
}
