// tasks.h: the zero-shot task files of the shared datasets folder, turned into lm-evaluation-harness
// (v0.4.5) requests: each item is a list of (context, continuation) string pairs, one per answer choice,
// built the way the harness's task YAMLs/utils build them (see ../shared/docs/PROTOCOLS.md). Scoring lives in
// eval/zeroshot.c; this file only reads text.
//
// Task -> file (under data_dir) -> requests:
//   lambada_openai  lambada/lambada_test.jsonl       text up to the last ' ' | " " + last word
//   hellaswag       hellaswag/hellaswag_val_full.txt preprocess(ctx line)    | " " + preprocess(ending), x4
//   piqa            piqa/valid.jsonl + valid-labels.lst  "Question: {goal}\nAnswer:" | " {sol1}", " {sol2}"
//   arc_easy        arc/llmfoundry_arc_easy.jsonl    "{query}\nAnswer:" (query = "Question: ...") | " {choice}"
//   arc_challenge   arc/llmfoundry_arc_challenge.jsonl   as arc_easy
//   winogrande      winogrande/llmfoundry_winogrande.jsonl  context_options[i] | " {continuation}" (partial)
//   boolq           boolq/llmfoundry_boolq.jsonl     "{passage}\nQuestion: {question}?\nAnswer:" | " no", " yes"
//   openbookqa      openbookqa/llmfoundry_openbook_qa.jsonl  "{query}" (the question stem) | " {choice}"
#pragma once
#include "nt.h"

typedef enum {
    NT_ZS_LOGLIK,      // one request; acc = greedy, perplexity = exp(-mean loglik) (lambada)
    NT_ZS_CHOICE,      // one context, one continuation per choice; acc (+ acc_norm)
    NT_ZS_MULTI_INPUT, // one context per choice, one shared continuation (winogrande partial scoring); acc
} nt_zs_kind;

typedef struct {
    const char *name;   // "hellaswag", ...
    const char *file;   // relative to data_dir
    const char *labels; // a second file of gold labels (piqa), or NULL
    nt_zs_kind kind;
    bool acc_norm;      // lm-eval reports acc_norm for this task
} nt_zs_task_info;

// The table entry of a task, or NULL when the task is not known.
const nt_zs_task_info *nt_zs_task_find(const char *task);
// The known task names, NULL-terminated (for usage messages).
extern const char *const NT_ZS_TASK_NAMES[];

typedef struct {
    size_t line;          // 1-based line of the task file where the item starts (error messages)
    int n_choices;        // requests of this item (1 for NT_ZS_LOGLIK)
    int gold;             // index of the right choice (0 for NT_ZS_LOGLIK)
    char **contexts;      // (n_choices) context strings; shared contexts are separate copies
    char **continuations; // (n_choices) continuation strings as scored (with lm-eval's " " target delimiter)
    long *choice_chars;   // (n_choices) lm-eval's completion_len: characters (code points) of the choice
                          // string without the delimiter, the divisor of acc_norm
} nt_zs_item;

typedef struct {
    const nt_zs_task_info *info;
    char *path;           // the task file read
    nt_zs_item *items;    // (n_items), in file order
    size_t n_items;
    size_t n_skipped;     // malformed items left out (skip_bad only)
} nt_zs_task;

// Reads the first `limit` items of a task file (limit <= 0: all). Items are counted in file order, skipped
// ones included, so --limit N covers the same documents as lm-eval's --limit N. A malformed item is an error
// "PATH:LINE: problem"; with skip_bad it is left out and counted in n_skipped instead. A missing or empty file
// is an error naming the file.
int nt_zs_task_load(const char *task, const char *data_dir, long limit, bool skip_bad, nt_zs_task *out,
                    nt_err *err);
void nt_zs_task_free(nt_zs_task *t);

// lm-eval's HellaSwag text cleanup (tasks/hellaswag/utils.py `preprocess`): strip surrounding whitespace,
// " [title]" -> ". ", drop every "[...]" (shortest match), then one pass of "  " -> " ". Returns a malloc'd string.
char *nt_zs_hellaswag_preprocess(const char *text, size_t len);
// Characters of a UTF-8 string as Python's len() counts them (code points; an invalid byte sequence counts as
// the U+FFFD characters errors="replace" would make of it).
long nt_zs_utf8_chars(const char *s, size_t len);
// Bytes of trailing whitespace in s[0..len) as Python's str.rstrip() removes it (ASCII whitespace, \x1c-\x1f
// and the Unicode White_Space characters encoded in UTF-8; invalid bytes are not whitespace).
size_t nt_zs_trailing_space(const char *s, size_t len);
