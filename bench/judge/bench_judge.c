/*
 * bench/judge: the judging path's cost and its concurrency in one process,
 * through the local emulator (build/assay-emulator, started here as a child).
 *
 *   throughput: N samples judged (judges/llm -> aws/bedrock -> aws/http)
 *     against an emulator that answers at once; judged samples per CPU-second
 *     of this process (user + system, from getrusage) and per wall second.
 *   in-flight: M jobs submitted at once against an emulator that holds each
 *     answer latency_ms; the peak of Converse calls in flight (the client's
 *     own count), the process's peak RSS, and the wall time.
 *
 * Usage: bench_judge [--emulator PATH] [--samples N] [--inflight M]
 *                    [--latency-ms L] [--concurrency C]
 * Prints one "name: value" line per figure. Called by bench/judge/run.
 */
#include "aws/bedrock.h"
#include "aws/credentials.h"
#include "aws/http.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/log.h"
#include "judges/judge.h"
#include "judges/llm.h"
#include "judges/rubric.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef ASSAY_SOURCE
#define ASSAY_SOURCE "."
#endif

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define MODEL "anthropic.claude-3-5-haiku-20241022-v1:0"

extern char **environ;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct emulator {
    pid_t pid;
    char dir[64];
    char url[64];
};

/* Starts the emulator with a scenario; returns 0 once it listens. */
static int emulator_start(struct emulator *e, const char *bin, const char *scenario)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/bench-judge-XXXXXX");
    if (!mkdtemp(e->dir))
        return -1;
    char scen[128], port[128];
    snprintf(scen, sizeof scen, "%s/scenario.json", e->dir);
    snprintf(port, sizeof port, "%s/port", e->dir);
    FILE *f = fopen(scen, "w");
    if (!f)
        return -1;
    fputs(scenario, f);
    fclose(f);
    char *argv[] = {(char *)bin, "--scenario", scen, "--port-file", port, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawn(&e->pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench_judge: cannot start %s\n", bin);
        return -1;
    }
    for (int i = 0; i < 500; i++) {
        f = fopen(port, "r");
        int p = 0;
        if (f) {
            int got = fscanf(f, "%d", &p);
            fclose(f);
            if (got == 1 && p > 0) {
                snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", p);
                return 0;
            }
        }
        sleep_ms(10);
    }
    fprintf(stderr, "bench_judge: the emulator did not start\n");
    return -1;
}

static void emulator_stop(struct emulator *e)
{
    kill(e->pid, SIGTERM);
    waitpid(e->pid, NULL, 0);
    char path[128];
    snprintf(path, sizeof path, "%s/scenario.json", e->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/port", e->dir);
    unlink(path);
    rmdir(e->dir);
}

struct stack {
    struct http_transport *t;
    struct creds_provider *creds;
    struct bedrock_client *b;
    struct llm_judge *llm;
    struct judge_runner *runner;
};

static void stack_start(struct stack *s, const char *url, int concurrency)
{
    struct http_transport_options to = {.timeout_ms = 120000};
    s->t = http_transport_new(&to, NULL);
    struct creds c;
    creds_init(&c);
    c.access_key_id = xstrdup(AKID);
    c.secret_access_key = xstrdup(SECRET);
    s->creds = creds_static_new(&c);
    creds_clear(&c);
    struct bedrock_options bo = {.transport = s->t,
                                 .creds = s->creds,
                                 .region = "us-east-1",
                                 .endpoint = url,
                                 .max_concurrency = concurrency,
                                 .timeout_ms = 120000,
                                 .seed = 1};
    s->b = bedrock_client_new(&bo, NULL);
    struct llm_judge_options lo = {.bedrock = s->b, .model_id = MODEL};
    s->llm = llm_judge_new(&lo, NULL);
    s->runner = judge_runner_new(s->llm, NULL);
}

static void stack_stop(struct stack *s)
{
    bedrock_client_free(s->b);
    judge_runner_free(s->runner);
    llm_judge_free(s->llm);
    http_transport_free(s->t);
    creds_provider_free(s->creds);
}

struct tally {
    atomic_int done;
    atomic_int scored;
};

static void count(void *ctx, enum assay_err err, struct verdict *v)
{
    (void)err;
    struct tally *t = ctx;
    if (v->outcome == VERDICT_SCORED)
        atomic_fetch_add(&t->scored, 1);
    atomic_fetch_add(&t->done, 1);
}

static void sample_text(int i, struct buf *input, struct buf *output, struct buf *context)
{
    buf_appendf(input, "Question %d: how do I reset my password on the web site?", i);
    buf_appendf(context,
                "Passwords are reset under Settings > Security > Reset password. A link is "
                "sent by e-mail and is valid for 24 hours (doc %d).",
                i);
    buf_appendf(output, "Open Settings, then Security, then Reset password; the e-mailed link "
                        "works for a day.");
}

static void submit(struct stack *s, const struct rubric *r, int i, struct tally *t)
{
    struct buf in = BUF_INIT, out = BUF_INIT, ctx = BUF_INIT;
    sample_text(i, &in, &out, &ctx);
    struct rubric_sample smp = {.input = in.data, .output = out.data, .context = ctx.data};
    if (judge_run(s->runner, r, &smp, NULL, count, t, NULL) != ASSAY_OK)
        atomic_fetch_add(&t->done, 1);
    buf_clear(&in);
    buf_clear(&out);
    buf_clear(&ctx);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static long rss_peak_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(int argc, char **argv)
{
    const char *emu = NULL;
    int samples = 3000, inflight = 2000, latency = 200, concurrency = 64;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--emulator") == 0)
            emu = argv[i + 1];
        else if (strcmp(argv[i], "--samples") == 0)
            samples = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--inflight") == 0)
            inflight = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--latency-ms") == 0)
            latency = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--concurrency") == 0)
            concurrency = atoi(argv[i + 1]);
    }
    if (!emu)
        emu = getenv("ASSAY_EMULATOR");
    if (!emu) {
        fprintf(stderr, "usage: bench_judge --emulator PATH [--samples N] [--inflight M] "
                        "[--latency-ms L] [--concurrency C]\n");
        return 2;
    }
    log_set_level(LOG_LEVEL_WARN);
    struct rubric *r = NULL;
    char errbuf[ASSAY_ERRBUF_SIZE] = "";
    if (rubric_load(ASSAY_SOURCE "/rubrics/faithfulness.json", &r, errbuf) != ASSAY_OK) {
        fprintf(stderr, "bench_judge: %s\n", errbuf);
        return 1;
    }

    /* 1. throughput at zero latency */
    struct emulator e;
    if (emulator_start(&e, emu, "{}") != 0)
        return 1;
    struct stack s;
    stack_start(&s, e.url, concurrency);
    struct tally warm = {0};
    for (int i = 0; i < 50; i++)
        submit(&s, r, i, &warm);
    while (atomic_load(&warm.done) < 50)
        sleep_ms(1);
    struct tally t = {0};
    double c0 = cpu_s();
    int64_t w0 = clock_mono_ms(NULL);
    for (int i = 0; i < samples; i++) {
        submit(&s, r, i, &t);
        /* keep about 4 x concurrency queued, as a worker pool would */
        while (i - atomic_load(&t.done) > 4 * concurrency)
            sleep_ms(1);
    }
    while (atomic_load(&t.done) < samples)
        sleep_ms(1);
    double cpu = cpu_s() - c0;
    double wall = (double)(clock_mono_ms(NULL) - w0) / 1000.0;
    stack_stop(&s);
    emulator_stop(&e);
    printf("throughput.samples: %d\n", samples);
    printf("throughput.scored: %d\n", atomic_load(&t.scored));
    printf("throughput.cpu_s: %.3f\n", cpu);
    printf("throughput.wall_s: %.3f\n", wall);
    printf("throughput.judged_per_cpu_s: %.0f\n", samples / cpu);
    printf("throughput.judged_per_wall_s: %.0f\n", samples / wall);

    /* 2. calls held in flight at latency_ms */
    char scen[128];
    snprintf(scen, sizeof scen, "{\"default\": {\"latency_ms\": %d}}", latency);
    if (emulator_start(&e, emu, scen) != 0)
        return 1;
    long rss_before = rss_peak_kb();
    stack_start(&s, e.url, inflight);
    struct tally t2 = {0};
    w0 = clock_mono_ms(NULL);
    for (int i = 0; i < inflight; i++)
        submit(&s, r, i, &t2);
    int peak = 0;
    while (atomic_load(&t2.done) < inflight) {
        struct bedrock_stats st;
        bedrock_client_stats(s.b, &st);
        if (st.in_flight_peak > peak)
            peak = st.in_flight_peak;
        sleep_ms(5);
    }
    wall = (double)(clock_mono_ms(NULL) - w0) / 1000.0;
    struct bedrock_stats st;
    bedrock_client_stats(s.b, &st);
    if (st.in_flight_peak > peak)
        peak = st.in_flight_peak;
    stack_stop(&s);
    emulator_stop(&e);
    printf("inflight.jobs: %d\n", inflight);
    printf("inflight.scored: %d\n", atomic_load(&t2.scored));
    printf("inflight.latency_ms: %d\n", latency);
    printf("inflight.peak_in_flight: %d\n", peak);
    printf("inflight.wall_s: %.3f\n", wall);
    printf("inflight.peak_rss_mb: %.1f\n", (double)rss_peak_kb() / 1024.0);
    printf("inflight.rss_mb_before: %.1f\n", (double)rss_before / 1024.0);
    rubric_free(r);
    return 0;
}
