// cmd_table.c: `normtweak table RESULTS.csv...`: a thin shell over nt_table_write (eval/table.h).
#define _GNU_SOURCE
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "table.h"

static void table_usage(FILE *f) {
    fprintf(f, "usage: normtweak table RESULTS.csv... [--pivot task|wbits|group_size|method|model|options|seqlen|calib]\n"
               "                       [--out-csv F] [--out-md F]\n"
               "  --pivot DIM    what becomes the columns (default task); the other dimensions make the rows\n"
               "  --out-csv F    also write the table (values, then deltas, with a `vs` column) as CSV\n"
               "  --out-md F     write the Markdown to F instead of stdout\n"
               "rows: model x wbits x group x method, the float row first, norm tweaking (+nt) beside its base;\n"
               "then deltas vs fp and vs the base method. Duplicate rows for a cell: the latest by timestamp.\n");
}

int nt_cmd_table(int argc, char **argv) {
    const char *pivot = "task", *out_csv = NULL, *out_md = NULL;
    static const struct option opts[] = {{"pivot", required_argument, 0, 'p'}, {"out-csv", required_argument, 0, 'c'},
                                         {"out-md", required_argument, 0, 'm'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': pivot = optarg; break;
        case 'c': out_csv = optarg; break;
        case 'm': out_md = optarg; break;
        case 'h': table_usage(stdout); return 0;
        default: table_usage(stderr); return 2;
        }
    }
    nt_err err = {0};
    if (nt_table_pivot_check(pivot, &err) < 0) {
        fprintf(stderr, "normtweak table: %s\n", err.msg);
        return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "normtweak table: no results CSV given\n");
        table_usage(stderr);
        return 2;
    }
    nt_atomic_file af = {0};
    if (out_md && nt_atomic_open(&af, out_md, &err)) {
        fprintf(stderr, "normtweak table: %s\n", err.msg);
        return 1;
    }
    nt_table_opts o = {.pivot = pivot, .md = out_md ? af.f : stdout, .out_csv = out_csv};
    int rc = nt_table_write((const char *const *)argv + optind, (size_t)(argc - optind), &o, &err);
    if (out_md && nt_atomic_close(&af, rc == 0, &err) && !rc) rc = -1;
    if (rc) fprintf(stderr, "normtweak table: %s\n", err.msg);
    return rc ? nt_err_exit_status(&err) : 0;
}
