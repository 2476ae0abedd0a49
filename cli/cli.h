// cli.h: the subcommands of the normtweak command line. Each takes the arguments after its name and
// returns the process exit status (0 ok, 1 failure, 2 usage error); none of them calls exit().
#pragma once

int nt_cmd_eval(int argc, char **argv);
int nt_cmd_table(int argc, char **argv);
int nt_cmd_plot(int argc, char **argv);
int nt_cmd_gate(int argc, char **argv);
int nt_cmd_run(int argc, char **argv);
int nt_cmd_quantize(int argc, char **argv);
int nt_cmd_export(int argc, char **argv);
int nt_cmd_bench(int argc, char **argv);
