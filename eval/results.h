// results.h: the results CSV (long format, one row per model x method x bits x group x task x metric).
// Columns are documented in results/README.md. Appending is atomic: the file is rewritten to a temporary
// name and renamed, so a killed run never leaves a half row and an existing file is never corrupted.
#pragma once
#include "nt.h"

#define NT_RESULTS_HEADER                                                                                        \
    "model,method,wbits,abits,group_size,task,metric,value,stderr,n,seqlen,seconds,calib,options,device,commit,timestamp"
// The header before the abits column (issue 15): a file with it is rewritten with abits = 16 when appended to.
#define NT_RESULTS_HEADER_V1                                                                                     \
    "model,method,wbits,group_size,task,metric,value,stderr,n,seqlen,seconds,calib,options,device,commit,timestamp"

typedef struct {
    const char *model;  // checkpoint directory name
    const char *method; // fp, rtn, gptq, rtn+nt, gptq+nt
    int wbits;          // 16 for fp
    int abits;          // activation bits: 16 (not quantized; also what 0 means), 8 or 4
    int group_size;     // -1 per-channel, 0 not applicable (fp)
    const char *task;   // wikitext2, ptb, ..., or a text file's path
    const char *metric; // ppl, acc, acc_norm, ...
    double value;
    double stderr_;     // NAN when not defined
    long n;             // items or tokens scored
    int seqlen;         // 0 when not applicable
    double seconds;
    const char *calib;   // calibration spec, "" for fp
    const char *options; // method/evaluation options as key=value;key=value, "" when none
    const char *device;  // cpu or cuda:NAME
} nt_result_row;

// Appends rows to path (created with the header when absent). The commit and timestamp columns are filled
// in here. An existing file with the header of before the abits column is rewritten with abits 16 in its rows
// (every other field as it was); one whose header differs otherwise, or that does not end in a newline, is an error.
int nt_results_append(const char *path, const nt_result_row *rows, size_t n, nt_err *err);
// Prints rows as an aligned table (for people) to f.
void nt_results_print(FILE *f, const nt_result_row *rows, size_t n);
