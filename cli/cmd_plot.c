// cmd_plot.c: `normtweak plot`: a thin shell over eval/plot.h (quality vs bits from results CSVs, or kernel speedup
// vs M from a benchmark CSV), drawn with gnuplot.
#define _GNU_SOURCE
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "plot.h"

static void plot_usage(FILE *f) {
    fprintf(f,
            "usage: normtweak plot CSV... --out-dir DIR [--kind quality|speedup] [--format png|svg]\n"
            "                      [--x COL] [--y COL] [--series COLS] [--panel COL]\n"
            "  --kind quality  (default) results CSVs: metric vs weight bits per method, one chart per model x task\n"
            "  --kind speedup  a kernel benchmark CSV: --y (speedup) vs --x (M), a line per --series (bits,group_size),\n"
            "                  one chart per --panel value (default: the column layer, else shape, if present)\n"
            "  --out-dir DIR   created if absent; the images and their gnuplot scripts (NAME.gp) go there\n"
            "needs gnuplot (Debian: gnuplot-nox); NT_GNUPLOT=PATH picks another binary\n");
}

int nt_cmd_plot(int argc, char **argv) {
    const char *out_dir = NULL, *kind = "quality", *format = "png";
    nt_plot_columns cols = {.x = "M", .y = "speedup", .series = "bits,group_size", .panel = NULL};
    bool panel_set = false;
    static const struct option opts[] = {
        {"out-dir", required_argument, 0, 'o'}, {"kind", required_argument, 0, 'k'},
        {"format", required_argument, 0, 'f'},  {"x", required_argument, 0, 'x'},
        {"y", required_argument, 0, 'y'},       {"series", required_argument, 0, 's'},
        {"panel", required_argument, 0, 'p'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    optind = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out_dir = optarg; break;
        case 'k': kind = optarg; break;
        case 'f': format = optarg; break;
        case 'x': cols.x = optarg; break;
        case 'y': cols.y = optarg; break;
        case 's': cols.series = optarg; break;
        case 'p': cols.panel = optarg, panel_set = true; break;
        case 'h': plot_usage(stdout); return 0;
        default: plot_usage(stderr); return 2;
        }
    }
    bool quality = strcmp(kind, "quality") == 0;
    if (!quality && strcmp(kind, "speedup") != 0) {
        fprintf(stderr, "normtweak plot: --kind %s: expected quality or speedup\n", kind);
        return 2;
    }
    if (strcmp(format, "png") != 0 && strcmp(format, "svg") != 0) {
        fprintf(stderr, "normtweak plot: --format %s: expected png or svg\n", format);
        return 2;
    }
    if (!out_dir || optind >= argc || (!quality && argc - optind != 1)) {
        fprintf(stderr, "normtweak plot: needs %s and --out-dir DIR\n",
                quality ? "one or more results CSVs" : "one kernel benchmark CSV");
        plot_usage(stderr);
        return 2;
    }
    nt_err err = {0};
    char gp[4096];
    if (nt_gnuplot_find(gp, sizeof(gp), &err)) { // before reading anything: the commonest failure
        fprintf(stderr, "normtweak plot: %s\n", err.msg);
        return 1;
    }
    char **files = NULL;
    size_t n_files = 0;
    int rc;
    if (quality) {
        nt_results_set s;
        rc = nt_results_read((const char *const *)argv + optind, (size_t)(argc - optind), &s, &err);
        if (!rc) {
            rc = nt_plot_quality(&s, out_dir, format, &files, &n_files, &err);
            nt_results_set_free(&s);
        }
    } else {
        nt_csv csv;
        rc = nt_csv_read(argv[optind], &csv, &err);
        if (!rc) {
            if (!panel_set) cols.panel = nt_csv_col(&csv, "layer") >= 0 ? "layer" : nt_csv_col(&csv, "shape") >= 0 ? "shape" : NULL;
            rc = nt_plot_speedup(&csv, &cols, out_dir, format, &files, &n_files, &err);
            nt_csv_free(&csv);
        }
    }
    for (size_t i = 0; i < n_files; i++) printf("%s\n", files[i]);
    nt_plot_files_free(&files, &n_files);
    if (rc) {
        fprintf(stderr, "normtweak plot: %s\n", err.msg);
        return 1;
    }
    return 0;
}
