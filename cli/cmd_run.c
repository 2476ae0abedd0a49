// cmd_run.c: `normtweak run EXPERIMENT.json`: a thin shell over nt_grid_run (eval/grid.h). Exit status 0 when
// every cell is done, 1 when a cell failed in this run (or the CSV could not be written), 2 for an unusable
// experiment file.
#define _GNU_SOURCE
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "grid.h"
#include "quant_cli.h"

static void run_usage(FILE *f) {
    fprintf(f, "usage: normtweak run EXPERIMENT.json [--out FILE.csv] [--threads N] [--dry-run] [--no-table]\n"
               "  --out FILE.csv  the results CSV (overrides the file's \"out\")\n"
               "  --threads N     CPU threads\n"
               "  --dry-run       list the cells and whether each is done; evaluate nothing\n"
               "  --no-table      do not print the table at the end\n"
               "the experiment file's keys: eval/grid.c; examples: eval/grids/*.json\n");
}

int nt_cmd_run(int argc, char **argv) {
    nt_grid_opts o = {.listing = stdout, .table = stdout};
    long threads = 0;
    static const struct option opts[] = {{"out", required_argument, 0, 'o'}, {"threads", required_argument, 0, 'j'},
                                         {"dry-run", no_argument, 0, 'n'},   {"no-table", no_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    optind = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': o.out = optarg; break;
        case 'j': if (nt_cli_pos_int("run", "--threads", optarg, 4096, &threads)) return 2; break;
        case 'n': o.dry_run = true; break;
        case 'T': o.table = NULL; break;
        case 'h': run_usage(stdout); return 0;
        default: run_usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "normtweak run: expected one experiment file\n");
        run_usage(stderr);
        return 2;
    }
    nt_set_threads((int)threads);
    nt_grid_result res;
    nt_err err = {0};
    if (nt_grid_run(argv[optind], &o, &res, &err)) {
        fprintf(stderr, "normtweak run: %s\n", err.msg);
        return nt_err_exit_status(&err);
    }
    return res.failed ? 1 : 0;
}
