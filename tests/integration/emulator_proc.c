/*
 * tests/integration/emulator_proc: the emulator as a child process of a test.
 */
#include "tests/integration/emulator_proc.h"

#include "tests/unit/test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int emulator_proc_start(struct emulator_proc *p, const char *scenario, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    const char *exe = getenv("ASSAY_EMULATOR");
    if (!exe || !*exe) {
        fprintf(stderr, "ASSAY_EMULATOR is not set (ctest sets it)\n");
        return -1;
    }
    static int n;
    snprintf(p->dir, sizeof p->dir, "%s/emu%d", test_tmpdir(), n++);
    if (mkdir(p->dir, 0700) != 0 && errno != EEXIST)
        return -1;
    char port_file[1024], scenario_path[1024], out_path[1024], seed_text[32];
    snprintf(port_file, sizeof port_file, "%s/port", p->dir);
    snprintf(scenario_path, sizeof scenario_path, "%s/scenario.json", p->dir);
    snprintf(out_path, sizeof out_path, "%s/stdout", p->dir);
    snprintf(p->log_path, sizeof p->log_path, "%s/requests.jsonl", p->dir);
    snprintf(seed_text, sizeof seed_text, "%llu", (unsigned long long)seed);
    if (scenario) {
        FILE *f = fopen(scenario_path, "w");
        if (!f)
            return -1;
        fputs(scenario, f);
        fclose(f);
    }
    const char *argv[16];
    int argc = 0;
    argv[argc++] = exe;
    argv[argc++] = "--listen";
    argv[argc++] = "127.0.0.1:0";
    argv[argc++] = "--port-file";
    argv[argc++] = port_file;
    argv[argc++] = "--log";
    argv[argc++] = p->log_path;
    if (scenario) {
        argv[argc++] = "--scenario";
        argv[argc++] = scenario_path;
    }
    if (seed) {
        argv[argc++] = "--seed";
        argv[argc++] = seed_text;
    }
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 1);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    for (int i = 0; i < 400; i++) { /* 20 s at most (ASan starts slowly) */
        FILE *f = fopen(port_file, "r");
        unsigned port = 0;
        if (f) {
            int got = fscanf(f, "%u", &port);
            fclose(f);
            if (got == 1 && port > 0 && port < 65536) {
                p->port = (uint16_t)port;
                snprintf(p->url, sizeof p->url, "http://127.0.0.1:%u", port);
                return 0;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "the emulator exited before listening\n");
            p->pid = -1;
            return -1;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "the emulator did not listen within 20 s\n");
    emulator_proc_stop(p);
    return -1;
}

int emulator_proc_stop(struct emulator_proc *p)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 400; i++) {
        pid_t got = waitpid(p->pid, &status, WNOHANG);
        if (got == p->pid) {
            p->pid = -1;
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        }
        sleep_ms(50);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = -1;
    return -1;
}

int emulator_proc_log_count(const struct emulator_proc *p, const char *needle)
{
    FILE *f = fopen(p->log_path, "r");
    if (!f)
        return -1;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}
