/*
 * server/commands: the subcommands of the assay executable. Each takes the
 * arguments after `assay` (argv[0] is the command's name) and returns the
 * process exit status.
 */
#ifndef ASSAY_SERVER_COMMANDS_H
#define ASSAY_SERVER_COMMANDS_H

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

int cmd_serve(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_alarms(int argc, char **argv);
int cmd_backtest(int argc, char **argv);
int cmd_judge(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif
