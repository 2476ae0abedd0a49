// datasets.h: evaluation and calibration text, built exactly as the field's reference scripts build it
// (GPTQ's datautils for perplexity; see ../shared/docs/PROTOCOLS.md), read from the shared datasets folder.
#pragma once
#include "nt.h"
#include "tokenizer.h"

// Python's `random` module (MT19937, init_by_array seeding, getrandbits-based randbelow), so that seeded
// choices made here equal those of GPTQ's Python scripts.
typedef struct {
    uint32_t mt[624];
    int idx;
} nt_pyrandom;
void nt_pyrandom_seed(nt_pyrandom *r, uint64_t seed);            // random.seed(seed) for an int seed >= 0
int64_t nt_pyrandom_randint(nt_pyrandom *r, int64_t a, int64_t b); // random.randint(a, b), a <= b, b - a < 2^64 - 1
double nt_pyrandom_random(nt_pyrandom *r);                        // random.random()
uint64_t nt_pyrandom_getrandbits(nt_pyrandom *r, int k);          // random.getrandbits(k), 0 <= k <= 64

// Perplexity tasks: "wikitext2", "ptb", "ptb-new", "c4", "c4-new", or the path of a plain text file
// (anything containing '/' or ending in ".txt"). True if the name is one of these.
bool nt_ppl_task_known(const char *task);

// The single joined evaluation string of a text task (wikitext2, ptb, ptb-new, c4-new, or a text file),
// as the reference script builds it before tokenizing it once as a whole. *text is malloc'd.
// Errors name the missing/empty/malformed file. "c4" has no single string: it is an error here.
int nt_ppl_text(const char *task, const char *data_dir, char **text, size_t *len, nt_err *err);

// The token windows a perplexity task scores: n_windows x seqlen token ids.
typedef struct {
    int32_t *ids;       // (n_windows, seqlen)
    size_t n_windows;
    size_t seqlen;
    size_t n_tokens;    // tokens the text produced before cutting into windows (for c4: sum of window tokens)
} nt_windows;
// Builds them by the task's protocol: text tasks are tokenized once (with the tokenizer's BOS rule) and cut
// into floor(n/seqlen) non-overlapping windows (c4-new: first 256*seqlen tokens only); "c4" draws 256 random
// seqlen slices of random validation documents with python random seeded with 0, as GPTQ does.
// Fewer tokens than one window is an error naming the file.
int nt_ppl_windows(const char *task, const char *data_dir, const nt_tokenizer *tok, size_t seqlen, nt_windows *out,
                   nt_err *err);
void nt_windows_free(nt_windows *w);

// The file a task reads (for error messages and result rows); NULL for an unknown task. Static string or task.
const char *nt_ppl_task_file(const char *task);

// One window drawn from a document collection: which document (0-based line among the file's records) and
// the first token of the slice within that document's ids.
typedef struct {
    size_t doc;
    size_t start;
} nt_doc_pick;

// GPTQ's document sampler (get_c4): random.seed(seed); per sample: draw a document uniformly, tokenize it
// (BOS rule included), redraw until it has more than seqlen tokens, then draw start = randint(0, n-seqlen-1)
// and keep ids[start, start+seqlen). GPTQ tests `>= seqlen`, which only differs when a document has exactly
// seqlen tokens: there GPTQ's randint(0, -1) raises, and this redraws instead (as AutoGPTQ/OmniQuant do), so
// every run GPTQ completes gives the same windows here. Reads the `text` field of each line of a JSONL file.
// picks (may be NULL) gets n_samples entries.
int nt_doc_windows(const char *jsonl_path, const nt_tokenizer *tok, size_t n_samples, size_t seqlen, uint64_t seed,
                   nt_windows *out, nt_doc_pick *picks, nt_err *err);

// GPTQ calibration samples: n_samples random seqlen-token slices, drawn with python random seeded by seed.
// source: "c4" / "c4-new" (c4/c4-train.00000-of-01024.first1000.jsonl, GPTQ's get_c4 trainloader, see
// nt_doc_windows), "ptb" (ptb.train.txt stripped lines joined with "\n\n", tokenized once, then
// start = randint(0, n-seqlen-1) per sample), "ptb-new" (the same lines joined with " "), or a text file
// (its bytes, as "ptb"). "wikitext2" is an error: its train split is not in the shared datasets.
// out->n_tokens: tokens of the joined text (text sources) or n_samples*seqlen (c4).
int nt_calib_windows(const char *source, const char *data_dir, const nt_tokenizer *tok, size_t n_samples,
                     size_t seqlen, uint64_t seed, nt_windows *out, nt_err *err);

// The c4 perplexity task's (doc, start) choices (256 entries) alongside its windows; nt_ppl_windows("c4")
// is this with picks = NULL.
int nt_ppl_c4_windows(const char *data_dir, const nt_tokenizer *tok, size_t seqlen, nt_windows *out,
                      nt_doc_pick *picks, nt_err *err);
