/*
 * server/main: the thin `assay` executable. Dispatches subcommands from a
 * table of {name, fn, summary}, one file per subcommand (cmd_<name>.c).
 */
#include "server/commands.h"

#include <stdio.h>
#include <string.h>

static const struct command commands[] = {
    {"alarms", cmd_alarms, "create or update the CloudWatch alarms the config declares"},
    {"backtest", cmd_backtest, "replay a score stream through the regression detector"},
    {"eval", cmd_eval, "run a golden set once and compare it with the previous run"},
    {"judge", cmd_judge, "judge one sample (JSON on stdin) against one rubric"},
    {"serve", cmd_serve, "run the service: HTTP API, durable queue, judges"},
    {"version", cmd_version, "print the version and exit"},
};

static void usage(FILE *to)
{
    fprintf(to, "usage: assay <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(to, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(to, "\nRun 'assay <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "assay: '%s' is not a command\n\n", argv[1]);
    usage(stderr);
    return 2;
}
