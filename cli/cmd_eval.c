// cmd_eval.c: `normtweak eval`: perplexity of a model on one or more tasks, printed as a table and
// appended to a results CSV.
#define _GNU_SOURCE
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "quant_cli.h"


static void eval_usage(FILE *f) {
    fprintf(f,
            "usage: normtweak eval [--model DIR] [--tasks T1,T2,...] [--seqlen N] [--data-dir DIR] [--out FILE.csv]\n"
            "                      [--limit N] [--limit-items N] [--skip-bad-items] [--threads N] [--kld TASKS [--kld-base M]]\n"
            "                      [--log-samples DIR] [quantization options]\n"
            "  --model PATH    Hugging Face model directory, quantized checkpoint or GGUF file (default " NT_DEFAULT_MODEL
            ", or $NT_MODELS_DIR/" NT_DEFAULT_MODEL_FILE ")\n"
            "  --tasks LIST    perplexity: wikitext2, ptb, ptb-new, c4, c4-new or a .txt file (default wikitext2);\n"
            "                  zero-shot: lambada_openai, hellaswag, piqa, arc_easy, arc_challenge, winogrande,\n"
            "                  boolq, openbookqa\n"
            "  --seqlen N      window length (default min(2048, the model's maximum))\n"
            "  --data-dir DIR  the datasets folder (default " NT_DEFAULT_DATA ")\n"
            "  --out FILE.csv  append result rows to this CSV (columns: results/README.md)\n"
            "  --limit N       score only the first N windows / items of each task (stated in the row's options)\n"
            "  --limit-items N the zero-shot tasks' item limit instead (perplexity keeps --limit)\n"
            "  --skip-bad-items  zero-shot: skip malformed task lines (counted in the row) instead of failing\n"
            "  --threads N     CPU threads (default: all cores)\n"
            "  --device D      cpu (default), cuda or cuda:N: perplexity on a CUDA GPU (quantized linears through\n"
            "                  normtweak's kernels, with --abits int8 x int8 through cuBLASLt, the rest through\n"
            "                  cuBLASLt; zero-shot tasks are CPU-only)\n"
            "  --kld LIST      perplexity tasks (of --tasks) that also get 'kld' and 'top1' rows: the mean KL divergence\n"
            "                  of the next-token distribution from the float model's, and the top-1 agreement (CPU)\n"
            "  --kld-base M    the float model for --kld (default: the model before it is quantized in memory, or the\n"
            "                  model itself when it is float; needed for a quantized checkpoint)\n"
            "  --log-samples DIR  zero-shot: one JSONL line per item in DIR/TASK.jsonl (requests, log-likelihoods,\n"
            "                  greedy flags, prediction, gold), to compare runs item by item with `gate`\n"
            "quantize in memory before evaluating (a quantized checkpoint from `normtweak quantize` needs none):\n"
            NT_QUANT_OPTIONS_HELP);
}


int nt_cmd_eval(int argc, char **argv) {
    nt_eval_opts o = {.model_dir = nt_default_model(), .tasks = "wikitext2", .data_dir = NT_DEFAULT_DATA, .print_ppl = true};
    long seqlen = 0, threads = 0;
    static const struct option own[] = {{"model", required_argument, 0, 'm'},  {"tasks", required_argument, 0, 't'},
                                        {"seqlen", required_argument, 0, 's'}, {"data-dir", required_argument, 0, 'd'},
                                        {"out", required_argument, 0, 'o'},    {"limit", required_argument, 0, 'l'},
                                        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
                                        {"skip-bad-items", no_argument, 0, 'k'}, {"device", required_argument, 0, 'D'},
                                        {"kld", required_argument, 0, 'K'},     {"kld-base", required_argument, 0, 'B'},
                                        {"log-samples", required_argument, 0, 'S'},
                                        {"limit-items", required_argument, 0, 'L'}};
    struct option opts[64];
    nt_quant_merge_options(own, sizeof(own) / sizeof(own[0]), opts, sizeof(opts) / sizeof(opts[0]));
    nt_quant_opts q = nt_quant_opts_make("fp", 4, 128);
    bool method_set = false;
    nt_err err = {0};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o.model_dir = optarg; break;
        case 't': o.tasks = optarg; break;
        case 'd': o.data_dir = optarg; break;
        case 'o': o.out = optarg; break;
        case 's': if (nt_cli_pos_int("eval", "--seqlen", optarg, 1L << 20, &seqlen)) return 2; break;
        case 'l': if (nt_cli_pos_int("eval", "--limit", optarg, 1L << 30, &o.limit)) return 2; break;
        case 'L': if (nt_cli_pos_int("eval", "--limit-items", optarg, 1L << 30, &o.limit_items)) return 2; break;
        case 'j': if (nt_cli_pos_int("eval", "--threads", optarg, 4096, &threads)) return 2; break;
        case 'k': o.skip_bad_items = true; break;
        case 'D': o.device = optarg; break;
        case 'K': o.kld = optarg; break;
        case 'B': o.kld_base = optarg; break;
        case 'S': o.log_samples = optarg; break;
        case 'h': eval_usage(stdout); return 0;
        case '?': eval_usage(stderr); return 2;
        default:
            if (nt_quant_option_cli("eval", c, optarg, &q, &method_set, eval_usage)) return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "normtweak eval: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    o.seqlen = (int)seqlen;
    if (method_set && strcmp(q.method, "fp") != 0) o.quant = &q;
    nt_set_threads((int)threads);
    nt_eval_rows rows;
    if (nt_evaluate(&o, &rows, &err)) {
        fprintf(stderr, "normtweak eval: %s\n", err.msg);
        nt_eval_rows_free(&rows);
        return nt_err_exit_status(&err);
    }
    nt_results_print(stdout, rows.rows, rows.n);
    nt_eval_rows_free(&rows);
    return 0;
}
