/*
 * tests/integration/emulator_proc: runs the real build/assay-emulator (path
 * in ASSAY_EMULATOR) as a child process for a test: writes the scenario into
 * the case's temp dir, starts it with --port-file and --log, waits a bounded
 * time for the port, and stops exactly that PID with SIGTERM (SIGKILL only
 * after a bounded wait).
 */
#ifndef ASSAY_TESTS_EMULATOR_PROC_H
#define ASSAY_TESTS_EMULATOR_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct emulator_proc {
    pid_t pid;
    uint16_t port;
    char url[64];        /* "http://127.0.0.1:PORT" */
    char log_path[1024]; /* the request log */
    char dir[900];
};

/*
 * Starts the emulator with scenario (JSON text, or NULL for none) and seed (0:
 * the scenario's). Returns 0, or -1 (and says why on stderr).
 */
int emulator_proc_start(struct emulator_proc *p, const char *scenario, uint64_t seed);
/* SIGTERM, then waits up to 20 s; returns the exit status, or -1 if it had to be killed. */
int emulator_proc_stop(struct emulator_proc *p);
/* Counts request-log lines containing needle (e.g. "\"status\":429"). */
int emulator_proc_log_count(const struct emulator_proc *p, const char *needle);

#endif
