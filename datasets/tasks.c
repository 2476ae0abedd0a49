// tasks.c: zero-shot task loaders (see tasks.h): one small parser per file layout and one table of tasks.
// Every string built here follows lm-evaluation-harness v0.4.5's task definitions (doc_to_text, doc_to_choice,
// target_delimiter " "); the comments name the YAML template each one reproduces.
#include "tasks.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "utf8.h"

// ---------------------------------------------------------------------------------------------------------
// Python string semantics that the prompts depend on

long nt_zs_utf8_chars(const char *s, size_t len) { return (long)nt_utf8_chars(s, len); }

// str.isspace() (utf8.h); invalid bytes are U+FFFD, not whitespace.
size_t nt_zs_trailing_space(const char *s, size_t len) {
    size_t i = 0, content_end = 0; // the end of the last non-space character
    while (i < len) {
        int32_t cp;
        size_t k = nt_utf8_next(s + i, len - i, &cp);
        i += k;
        if (!nt_unicode_py_space(cp)) content_end = i;
    }
    return len - content_end;
}

// Bytes of leading whitespace, for str.strip().
static size_t leading_space(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        int32_t cp;
        size_t k = nt_utf8_next(s + i, len - i, &cp);
        if (!nt_unicode_py_space(cp)) break;
        i += k;
    }
    return i;
}

char *nt_zs_hellaswag_preprocess(const char *text, size_t len) {
    size_t a = leading_space(text, len);
    size_t b = len - nt_zs_trailing_space(text + a, len - a);
    // " [title]" -> ". " (never longer), then drop "[...]" (shortest match; an unclosed '[' stays)
    char *t1 = malloc(b - a + 1), *t2 = malloc(b - a + 1);
    if (!t1 || !t2) {
        free(t1);
        free(t2);
        return NULL;
    }
    size_t n1 = 0;
    for (size_t i = a; i < b;) {
        if (b - i >= 8 && memcmp(text + i, " [title]", 8) == 0) {
            t1[n1++] = '.';
            t1[n1++] = ' ';
            i += 8;
        } else {
            t1[n1++] = text[i++];
        }
    }
    size_t n2 = 0;
    for (size_t i = 0; i < n1;) {
        const char *close = t1[i] == '[' ? memchr(t1 + i + 1, ']', n1 - i - 1) : NULL;
        if (close) {
            i = (size_t)(close - t1) + 1;
        } else {
            t2[n2++] = t1[i++];
        }
    }
    // one left-to-right pass of "  " -> " " (a run of 3 spaces becomes 2, as str.replace does)
    size_t n3 = 0;
    for (size_t i = 0; i < n2;) {
        if (i + 1 < n2 && t2[i] == ' ' && t2[i + 1] == ' ') {
            t1[n3++] = ' ';
            i += 2;
        } else {
            t1[n3++] = t2[i++];
        }
    }
    t1[n3] = '\0';
    free(t2);
    return t1;
}

// ---------------------------------------------------------------------------------------------------------
// Building items

static char *str_cat(const char *a, size_t na, const char *b, size_t nb, const char *c, size_t nc) {
    char *s = malloc(na + nb + nc + 1);
    if (!s) return NULL;
    memcpy(s, a, na);
    memcpy(s + na, b, nb);
    memcpy(s + na + nb, c, nc);
    s[na + nb + nc] = '\0';
    return s;
}

static void item_clear(nt_zs_item *it) {
    for (int i = 0; i < it->n_choices; i++) {
        if (it->contexts) free(it->contexts[i]);
        if (it->continuations) free(it->continuations[i]);
    }
    free(it->contexts);
    free(it->continuations);
    free(it->choice_chars);
    memset(it, 0, sizeof(*it));
}

static int item_alloc(nt_zs_item *it, int n, nt_err *err) {
    it->n_choices = n;
    it->contexts = calloc((size_t)n, sizeof(char *));
    it->continuations = calloc((size_t)n, sizeof(char *));
    it->choice_chars = calloc((size_t)n, sizeof(long));
    if (!it->contexts || !it->continuations || !it->choice_chars) return nt_fail(err, "out of memory");
    return 0;
}

// Choice i of a one-context item: context ctx, continuation " " + choice (lm-eval's target_delimiter).
static int set_choice(nt_zs_item *it, int i, const char *ctx, size_t nctx, const char *choice, size_t nch,
                      nt_err *err) {
    it->contexts[i] = str_cat(ctx, nctx, "", 0, "", 0);
    it->continuations[i] = str_cat(" ", 1, choice, nch, "", 0);
    it->choice_chars[i] = nt_zs_utf8_chars(choice, nch);
    if (!it->contexts[i] || !it->continuations[i]) return nt_fail(err, "out of memory");
    return 0;
}

// The loader state shared by all layouts.
typedef struct {
    nt_zs_task *t;
    long limit;
    bool skip_bad;
    size_t cap;
    // piqa labels (NULL elsewhere)
    const char *labels_path;
    char **label_lines; // (n_labels) pointers into labels_text
    size_t *label_lineno;
    size_t n_labels;
    size_t n_seen; // items met so far, skipped included
} loader;

static bool loader_full(const loader *L) { return L->limit > 0 && L->n_seen >= (size_t)L->limit; }

static int loader_push(loader *L, nt_zs_item *it, nt_err *err) {
    if (L->t->n_items == L->cap) {
        size_t cap = L->cap ? 2 * L->cap : 256;
        nt_zs_item *p = realloc(L->t->items, cap * sizeof(*p));
        if (!p) return nt_fail(err, "out of memory");
        L->t->items = p;
        L->cap = cap;
    }
    L->t->items[L->t->n_items++] = *it;
    memset(it, 0, sizeof(*it));
    return 0;
}

// A bad item: an error "PATH:LINE: msg", or (skip_bad) counted and left out. Returns 0 to go on, -1 to fail.
static int loader_bad(loader *L, const char *path, size_t line, nt_zs_item *it, const char *msg, nt_err *err) {
    item_clear(it);
    if (L->skip_bad) {
        L->t->n_skipped++;
        return 0;
    }
    return nt_fail(err, "%s:%zu: %s", path, line, msg);
}

static const char *json_str(const cJSON *o, const char *key, size_t *len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsString(v) || !v->valuestring) return NULL;
    *len = strlen(v->valuestring);
    return v->valuestring;
}

static bool json_int(const cJSON *o, const char *key, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble) return false;
    int x = (int)v->valuedouble;
    if (x < lo || x > hi) return false;
    *out = x;
    return true;
}

// Fills an item from one parsed JSON line; returns NULL on success or the problem (a static string).
// err is only set for out-of-memory, reported as "OOM".
typedef const char *(*json_item_fn)(const cJSON *o, loader *L, size_t item_idx, nt_zs_item *it, nt_err *err);

// lambada_openai: doc_to_text "{{text.split(' ')[:-1]|join(' ')}}", doc_to_target "{{' '+text.split(' ')[-1]}}"
static const char *item_lambada(const cJSON *o, loader *L, size_t k, nt_zs_item *it, nt_err *err) {
    (void)L, (void)k;
    size_t n = 0;
    const char *text = json_str(o, "text", &n);
    if (!text) return "missing string field \"text\"";
    if (n == 0) return "empty \"text\"";
    const char *sp = NULL;
    for (size_t i = n; i-- > 0;)
        if (text[i] == ' ') {
            sp = text + i;
            break;
        }
    if (item_alloc(it, 1, err)) return "OOM";
    size_t nctx = sp ? (size_t)(sp - text) : 0;
    const char *word = sp ? sp + 1 : text;
    if (set_choice(it, 0, text, nctx, word, n - (size_t)(word - text), err)) return "OOM";
    it->gold = 0;
    return NULL;
}

// query + choices + gold (llmfoundry layout); prefix/suffix turn the query into lm-eval's doc_to_text.
static const char *item_query_choices(const cJSON *o, nt_zs_item *it, const char *suffix, bool boolq, nt_err *err) {
    size_t nq = 0;
    const char *q = json_str(o, "query", &nq);
    if (!q) return "missing string field \"query\"";
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(o, "choices");
    if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) < 2) return "\"choices\" must be an array of 2 or more strings";
    int n = cJSON_GetArraySize(ch);
    for (int i = 0; i < n; i++)
        if (!cJSON_IsString(cJSON_GetArrayItem(ch, i))) return "\"choices\" must be an array of 2 or more strings";
    int gold;
    if (!json_int(o, "gold", 0, n - 1, &gold)) return "\"gold\" must be an integer index into \"choices\"";
    if (boolq) {
        // "Passage: {passage}\nQuestion: {question}?" -> "{passage}\nQuestion: {question}?\nAnswer:"
        static const char P[] = "Passage: ";
        if (nq < sizeof(P) - 1 || memcmp(q, P, sizeof(P) - 1) != 0) return "\"query\" does not start with \"Passage: \"";
        q += sizeof(P) - 1;
        nq -= sizeof(P) - 1;
    }
    char *ctx = str_cat(q, nq, suffix, strlen(suffix), "", 0);
    if (!ctx) return "OOM";
    if (item_alloc(it, n, err)) return free(ctx), "OOM";
    for (int i = 0; i < n; i++) {
        const char *c = cJSON_GetArrayItem(ch, i)->valuestring;
        if (set_choice(it, i, ctx, strlen(ctx), c, strlen(c), err)) return free(ctx), "OOM";
    }
    free(ctx);
    it->gold = gold;
    return NULL;
}

// arc: "Question: {{question}}\nAnswer:" (the file's query already reads "Question: ...")
static const char *item_arc(const cJSON *o, loader *L, size_t k, nt_zs_item *it, nt_err *err) {
    (void)L, (void)k;
    return item_query_choices(o, it, "\nAnswer:", false, err);
}
// boolq: "{{passage}}\nQuestion: {{question}}?\nAnswer:", choices ["no", "yes"]
static const char *item_boolq(const cJSON *o, loader *L, size_t k, nt_zs_item *it, nt_err *err) {
    (void)L, (void)k;
    return item_query_choices(o, it, "\nAnswer:", true, err);
}
// openbookqa: doc_to_text question_stem
static const char *item_obqa(const cJSON *o, loader *L, size_t k, nt_zs_item *it, nt_err *err) {
    (void)L, (void)k;
    return item_query_choices(o, it, "", false, err);
}

// winogrande (partial scoring): contexts sentence[:blank] + option, continuation " " + rest of the sentence
static const char *item_winogrande(const cJSON *o, loader *L, size_t k, nt_zs_item *it, nt_err *err) {
    (void)L, (void)k;
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(o, "context_options");
    if (!cJSON_IsArray(co) || cJSON_GetArraySize(co) != 2 || !cJSON_IsString(cJSON_GetArrayItem(co, 0)) ||
        !cJSON_IsString(cJSON_GetArrayItem(co, 1)))
        return "\"context_options\" must be an array of 2 strings";
    size_t nc = 0;
    const char *cont = json_str(o, "continuation", &nc);
    if (!cont) return "missing string field \"continuation\"";
    int gold;
    if (!json_int(o, "gold", 0, 1, &gold)) return "\"gold\" must be 0 or 1";
    if (item_alloc(it, 2, err)) return "OOM";
    for (int i = 0; i < 2; i++) {
        const char *c = cJSON_GetArrayItem(co, i)->valuestring;
        it->contexts[i] = str_cat(c, strlen(c), "", 0, "", 0);
        it->continuations[i] = str_cat(" ", 1, cont, nc, "", 0);
        it->choice_chars[i] = nt_zs_utf8_chars(c, strlen(c)); // lm-eval's choices are the contexts here
        if (!it->contexts[i] || !it->continuations[i]) return "OOM";
    }
    it->gold = gold;
    return NULL;
}

// piqa: "Question: {{goal}}\nAnswer:", choices [sol1, sol2], gold from valid-labels.lst (same order)
static const char *item_piqa(const cJSON *o, loader *L, size_t k, nt_zs_item *it, nt_err *err) {
    static char msg[256];
    size_t ng = 0, n1 = 0, n2 = 0;
    const char *goal = json_str(o, "goal", &ng), *s1 = json_str(o, "sol1", &n1), *s2 = json_str(o, "sol2", &n2);
    if (!goal || !s1 || !s2) return "missing string field \"goal\", \"sol1\" or \"sol2\"";
    if (k >= L->n_labels) {
        snprintf(msg, sizeof(msg), "no gold label for this item: %s has only %zu labels", L->labels_path, L->n_labels);
        return msg;
    }
    const char *lab = L->label_lines[k];
    if (strcmp(lab, "0") != 0 && strcmp(lab, "1") != 0) {
        snprintf(msg, sizeof(msg), "its gold label (%s:%zu) must be 0 or 1", L->labels_path, L->label_lineno[k]);
        return msg;
    }
    char *ctx = str_cat("Question: ", 10, goal, ng, "\nAnswer:", 8);
    if (!ctx) return "OOM";
    if (item_alloc(it, 2, err) || set_choice(it, 0, ctx, strlen(ctx), s1, n1, err) ||
        set_choice(it, 1, ctx, strlen(ctx), s2, n2, err))
        return free(ctx), "OOM";
    free(ctx);
    it->gold = lab[0] - '0';
    return NULL;
}

// Splits a buffer into lines in place (LF or CRLF); returns the count, *lines malloc'd.
static size_t split_lines(char *text, size_t len, char ***lines) {
    size_t n = 0, cap = 1024;
    char **v = malloc(cap * sizeof(char *));
    if (!v) return (size_t)-1;
    char *p = text, *end = text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e[-1] = '\0';
        *e = '\0';
        if (n == cap) {
            char **w = realloc(v, 2 * cap * sizeof(char *));
            if (!w) return free(v), (size_t)-1;
            v = w;
            cap *= 2;
        }
        v[n++] = p;
        p = nl ? nl + 1 : end;
    }
    *lines = v;
    return n;
}

static bool blank(const char *s) { return nt_zs_trailing_space(s, strlen(s)) == strlen(s); }

// The JSON Lines layouts. Malformed JSON is an item error here (skippable), not a file error.
static int load_jsonl(loader *L, json_item_fn fn, nt_err *err) {
    const char *path = L->t->path;
    size_t len;
    char *text = nt_read_file(path, &len, err);
    if (!text) return -1;
    char **lines = NULL;
    size_t n = split_lines(text, len, &lines);
    if (n == (size_t)-1) return free(text), nt_fail(err, "%s: out of memory", path);
    int rc = 0;
    size_t nonblank = 0;
    for (size_t i = 0; i < n && rc == 0 && !loader_full(L); i++) {
        if (blank(lines[i])) continue;
        nonblank++;
        size_t k = L->n_seen++;
        nt_zs_item it = {0};
        it.line = i + 1;
        const char *endp = NULL;
        cJSON *o = cJSON_ParseWithOpts(lines[i], &endp, true);
        if (!o || !cJSON_IsObject(o)) {
            cJSON_Delete(o);
            rc = loader_bad(L, path, i + 1, &it, "malformed JSON (expected one JSON object)", err);
            continue;
        }
        const char *problem = fn(o, L, k, &it, err);
        cJSON_Delete(o);
        if (problem && strcmp(problem, "OOM") == 0) {
            item_clear(&it);
            rc = nt_fail(err, "%s:%zu: out of memory", path, i + 1);
        } else if (problem) {
            rc = loader_bad(L, path, i + 1, &it, problem, err);
        } else {
            rc = loader_push(L, &it, err);
        }
    }
    if (rc == 0 && nonblank == 0) rc = nt_fail(err, "%s: empty dataset file", path);
    free(lines);
    free(text);
    return rc;
}

// hellaswag in llama.cpp's layout: per task 6 lines: context, gold index (0-3), 4 endings. lm-eval builds
// query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()) and choices = preprocess(ending);
// the file's context line is activity_label + ": " + ctx already cleaned but with ctx_b not capitalised, so
// preprocess() is applied to the lines as they are (a no-op for all but a handful of lines).
static int load_hellaswag(loader *L, nt_err *err) {
    const char *path = L->t->path;
    size_t len;
    char *text = nt_read_file(path, &len, err);
    if (!text) return -1;
    char **lines = NULL;
    size_t n = split_lines(text, len, &lines);
    if (n == (size_t)-1) return free(text), nt_fail(err, "%s: out of memory", path);
    while (n > 0 && lines[n - 1][0] == '\0') n--; // the final newline(s)
    int rc = 0;
    if (n == 0) rc = nt_fail(err, "%s: empty dataset file", path);
    for (size_t i = 0; i < n && rc == 0 && !loader_full(L); i += 6) {
        L->n_seen++;
        nt_zs_item it = {0};
        it.line = i + 1;
        if (n - i < 6) {
            char msg[96];
            snprintf(msg, sizeof(msg), "incomplete task at the end of the file: %zu of 6 lines", n - i);
            rc = loader_bad(L, path, i + 1, &it, msg, err);
            break;
        }
        const char *g = lines[i + 1];
        if (!(g[0] >= '0' && g[0] <= '3' && g[1] == '\0')) {
            rc = loader_bad(L, path, i + 2, &it, "the gold line of a task must be 0, 1, 2 or 3", err);
            continue;
        }
        size_t bad = 0;
        for (size_t j = 0; j < 6 && !bad; j++)
            if (j != 1 && blank(lines[i + j])) bad = i + j + 1;
        if (bad) {
            rc = loader_bad(L, path, bad, &it, "empty context or ending line (6 lines per task expected)", err);
            continue;
        }
        char *ctx = nt_zs_hellaswag_preprocess(lines[i], strlen(lines[i]));
        if (!ctx || item_alloc(&it, 4, err)) {
            free(ctx);
            item_clear(&it);
            rc = nt_fail(err, "%s: out of memory", path);
            break;
        }
        for (int j = 0; j < 4 && rc == 0; j++) {
            char *e = nt_zs_hellaswag_preprocess(lines[i + 2 + j], strlen(lines[i + 2 + j]));
            if (!e || set_choice(&it, j, ctx, strlen(ctx), e, strlen(e), err))
                rc = nt_fail(err, "%s: out of memory", path);
            free(e);
        }
        free(ctx);
        it.gold = g[0] - '0';
        rc = rc ? rc : loader_push(L, &it, err);
        item_clear(&it);
    }
    free(lines);
    free(text);
    return rc;
}

// piqa's valid-labels.lst: one label per non-blank line, in the order of valid.jsonl.
static int load_labels(loader *L, char **text_out, nt_err *err) {
    size_t len;
    char *text = nt_read_file(L->labels_path, &len, err);
    if (!text) return -1;
    char **lines = NULL;
    size_t n = split_lines(text, len, &lines);
    if (n == (size_t)-1) return free(text), nt_fail(err, "%s: out of memory", L->labels_path);
    L->label_lineno = malloc((n ? n : 1) * sizeof(size_t));
    if (!L->label_lineno) return free(lines), free(text), nt_fail(err, "%s: out of memory", L->labels_path);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (blank(lines[i])) continue;
        char *s = lines[i];
        s[strlen(s) - nt_zs_trailing_space(s, strlen(s))] = '\0';
        lines[k] = s;
        L->label_lineno[k++] = i + 1;
    }
    if (k == 0) return free(lines), free(text), nt_fail(err, "%s: empty dataset file", L->labels_path);
    L->label_lines = lines;
    L->n_labels = k;
    *text_out = text;
    return 0;
}

// ---------------------------------------------------------------------------------------------------------
// The table: a new task is a loader (above, when its layout is new) plus one entry here.

typedef struct {
    nt_zs_task_info info;
    json_item_fn item; // NULL: hellaswag's line layout
} task_entry;

static const task_entry TASKS[] = {
    {{"lambada_openai", "lambada/lambada_test.jsonl", NULL, NT_ZS_LOGLIK, false}, item_lambada},
    {{"hellaswag", "hellaswag/hellaswag_val_full.txt", NULL, NT_ZS_CHOICE, true}, NULL},
    {{"piqa", "piqa/valid.jsonl", "piqa/valid-labels.lst", NT_ZS_CHOICE, true}, item_piqa},
    {{"arc_easy", "arc/llmfoundry_arc_easy.jsonl", NULL, NT_ZS_CHOICE, true}, item_arc},
    {{"arc_challenge", "arc/llmfoundry_arc_challenge.jsonl", NULL, NT_ZS_CHOICE, true}, item_arc},
    {{"winogrande", "winogrande/llmfoundry_winogrande.jsonl", NULL, NT_ZS_MULTI_INPUT, false}, item_winogrande},
    {{"boolq", "boolq/llmfoundry_boolq.jsonl", NULL, NT_ZS_CHOICE, false}, item_boolq},
    {{"openbookqa", "openbookqa/llmfoundry_openbook_qa.jsonl", NULL, NT_ZS_CHOICE, true}, item_obqa},
};
enum { N_TASKS = sizeof(TASKS) / sizeof(TASKS[0]) };

const char *const NT_ZS_TASK_NAMES[] = {"lambada_openai", "hellaswag",  "piqa",       "arc_easy", "arc_challenge",
                                        "winogrande",     "boolq",      "openbookqa", NULL};

const nt_zs_task_info *nt_zs_task_find(const char *task) {
    for (int i = 0; task && i < N_TASKS; i++)
        if (strcmp(TASKS[i].info.name, task) == 0) return &TASKS[i].info;
    return NULL;
}

int nt_zs_task_load(const char *task, const char *data_dir, long limit, bool skip_bad, nt_zs_task *out,
                    nt_err *err) {
    memset(out, 0, sizeof(*out));
    const task_entry *e = NULL;
    for (int i = 0; task && i < N_TASKS; i++)
        if (strcmp(TASKS[i].info.name, task) == 0) e = &TASKS[i];
    if (!e) return nt_fail(err, "unknown zero-shot task \"%s\"", task ? task : "(null)");
    out->info = &e->info;
    out->path = nt_path_join(data_dir, e->info.file);
    loader L = {.t = out, .limit = limit, .skip_bad = skip_bad};
    char *labels_path = NULL, *labels_text = NULL;
    int rc = 0;
    if (e->info.labels) {
        labels_path = nt_path_join(data_dir, e->info.labels);
        L.labels_path = labels_path;
        rc = load_labels(&L, &labels_text, err);
    }
    if (rc == 0) rc = e->item ? load_jsonl(&L, e->item, err) : load_hellaswag(&L, err);
    free(L.label_lines);
    free(L.label_lineno);
    free(labels_text);
    free(labels_path);
    if (rc) nt_zs_task_free(out);
    return rc;
}

void nt_zs_task_free(nt_zs_task *t) {
    for (size_t i = 0; i < t->n_items; i++) item_clear(&t->items[i]);
    free(t->items);
    free(t->path);
    memset(t, 0, sizeof(*t));
}
