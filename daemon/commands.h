/* The subcommands of the one splitd binary. main.c dispatches; each command
 * lives in its own file (cmd_<name>.c) and returns the process exit status:
 * 0 ok, 1 runtime failure, 2 usage error (one line naming the option). */
#ifndef SPLITD_COMMANDS_H
#define SPLITD_COMMANDS_H

int cmd_serve(int argc, char **argv);       /* cmd_serve.c: the daemon */
int cmd_run(int argc, char **argv);         /* cmd_run.c: one inference */
int cmd_bench(int argc, char **argv);       /* cmd_bench.c: latency + profile */
int cmd_power(int argc, char **argv);       /* cmd_power.c: tegrastats-like */
int cmd_plan(int argc, char **argv);        /* cmd_plan.c: the split table */
int cmd_export_tail(int argc, char **argv); /* cmd_export_tail.c */

/* `splitd help COMMAND` text of each command; NULL if unknown. */
const char *cmd_usage(const char *name);

/* cmd_util.c: a whole decimal number in [lo, hi] into *out; -EINVAL (and
 * *out untouched) otherwise. */
int cmd_parse_long(const char *s, long lo, long hi, long *out);
int cmd_parse_int(const char *s, int lo, int hi, int *out);

#endif
