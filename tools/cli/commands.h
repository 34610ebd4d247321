/* The dfrun commands: each turns its flags into library calls (tools/cli/cmd_*.c). */
#ifndef DFRUN_CLI_COMMANDS_H
#define DFRUN_CLI_COMMANDS_H
int cmd_check(int argc, char **argv);
int cmd_config(int argc, char **argv);
int cmd_viz(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
#endif
