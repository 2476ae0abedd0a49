// transformer.h: the model (config + fp32 weights loaded from a Hugging Face checkpoint) and the CPU
// reference forward pass: OPT, the LLaMA family (GQA, RoPE, optional biases as in Qwen2) and BLOOM
// (ALiBi, embedding LayerNorm). One forward serves batched prefill and KV-cached decoding.
#pragma once
#include "actquant.h"
#include "nt.h"
#include "qconfig.h"
#include "qformat.h"

typedef enum { NT_ARCH_OPT, NT_ARCH_LLAMA, NT_ARCH_BLOOM } nt_arch;
typedef enum { NT_ACT_RELU, NT_ACT_SILU, NT_ACT_GELU, NT_ACT_GELU_TANH } nt_act;

typedef struct {
    nt_arch arch;
    char model_type[32]; // config.json's model_type ("opt", "llama", "qwen2", "bloom", ...)
    int vocab;           // rows of the embedding
    int dim;             // hidden size
    int n_layers;
    int n_heads;
    int n_kv_heads;      // < n_heads for grouped-query attention
    int head_dim;
    int ffn_dim;
    int max_pos;         // longest context the model supports
    int emb_dim;         // OPT word_embed_proj_dim (== dim unless project_in/out exist)
    float norm_eps;
    float rope_theta;    // LLaMA only
    nt_act act;
    bool rms_norm;       // LLaMA: RMSNorm (no bias); others LayerNorm
    bool pre_norm;       // OPT do_layer_norm_before; true for LLaMA/BLOOM
    bool residual_post_norm; // BLOOM apply_residual_connection_post_layernorm
    bool tied;           // lm_head shares the token embedding
    bool final_norm;     // a norm after the last block
    bool qkv_bias;       // q/k/v projections have biases (OPT, BLOOM, Qwen2, LLaMA attention_bias)
    bool o_bias;         // the attention output projection has a bias
    bool mlp_bias;       // the MLP projections have biases
    int pos_offset;      // OPT learned positions start at row 2
} nt_config;

typedef struct {
    float *w; // (dim) or NULL (= ones)
    float *b; // (dim) or NULL (= zeros; always NULL for RMSNorm)
} nt_norm;

typedef struct {
    float *w; // (out, in), row-major as in the checkpoint; for a quantized linear, its dequantized weights
    float *b; // (out) or NULL
    int in, out;
    nt_qlinear *q; // the packed weights of a quantized linear (owned), or NULL
    nt_actq *aq;   // activation quantization of its input (owned; actquant.h), or NULL (fp32 input)
} nt_linear;

// The linears of a block, in the order GPTQ's true-sequential mode quantizes them.
typedef enum { NT_LIN_Q, NT_LIN_K, NT_LIN_V, NT_LIN_O, NT_LIN_UP, NT_LIN_GATE, NT_LIN_DOWN, NT_LIN_COUNT } nt_lin_id;

typedef struct {
    nt_norm attn_norm; // OPT self_attn_layer_norm, LLaMA input_layernorm, BLOOM input_layernorm
    nt_norm mlp_norm;  // OPT final_layer_norm, LLaMA/BLOOM post_attention_layernorm
    nt_linear q, k, v, o;
    nt_linear up;   // OPT fc1, LLaMA up_proj, BLOOM dense_h_to_4h
    nt_linear gate; // LLaMA gate_proj only (w == NULL otherwise)
    nt_linear down; // OPT fc2, LLaMA down_proj, BLOOM dense_4h_to_h
} nt_layer;


typedef struct {
    nt_config cfg;
    char *dir;           // the checkpoint directory
    char *name;          // its last path component, for result rows
    float *tok_emb;      // (vocab, emb_dim)
    float *pos_emb;      // OPT: (max_pos + pos_offset, dim); else NULL
    nt_norm emb_norm;    // BLOOM word_embeddings_layernorm; else NULLs
    nt_linear proj_in;   // OPT-350m style: emb_dim -> dim (w NULL when absent)
    nt_linear proj_out;  // dim -> emb_dim
    nt_layer *layers;    // (n_layers)
    nt_norm final_norm;
    float *lm_head;      // (vocab, emb_dim); == tok_emb when tied
    float *alibi;        // BLOOM: (n_heads) slopes; else NULL
    nt_model_quant quant; // how the block linears were quantized (method "fp" when they were not)
} nt_model;

// Reads config.json and the safetensors weights (F32/F16/BF16, single or sharded) of a Hugging Face
// model directory and converts them once to fp32. Unknown architectures and any disagreement between
// config.json and the tensors are errors naming the file. A .gguf file goes through model/gguf_model.h.
int nt_model_load(nt_model **out, const char *dir, nt_err *err);
void nt_model_free(nt_model **m);
// The name result rows give the model at path (a directory, or a .gguf file): its last path component without
// ".gguf", e.g. "tiny-opt", "SmolLM2-135M-Instruct.Q4_1". A quantized checkpoint's rows name its source instead.
void nt_model_name_of_path(const char *path, char *buf, size_t size);
// Activation quantization of every block linear's input (bits 4 or 8, or 16: none, removing it), integer-exact
// for packed linears (actquant.h). The static scheme takes each linear's scale from scales (n_layers *
// NT_LIN_COUNT, layer-major, 0 for an absent linear), which must then be given. Sets m->quant.abits / act_static.
// The checkpoint tensor with the static scales: F32 (n_layers, NT_LIN_COUNT), as nt_model_set_act_quant takes them.
#define NT_ACT_SCALES_TENSOR "normtweak.act_scales"
int nt_model_set_act_quant(nt_model *m, int bits, bool act_static, const float *scales, nt_err *err);

// Parses config.json alone (used by the loader and by tools that only need shapes).
int nt_config_load(nt_config *cfg, const char *config_path, nt_err *err);
// The config.json (malloc'd text) that nt_config_load reads back as c, for the LLaMA family (llama, qwen2);
// NULL for another architecture or a combination of biases config.json cannot express (or out of memory).
char *nt_config_json(const nt_config *c);

// Run state: scratch activations for up to max_tokens positions per call and a KV cache of max_ctx positions,
// for n_seq sequences that advance in lockstep (batched decoding; 1 for everything else). Rows are
// position-major: row t * n_seq + b is sequence b's token at the call's t-th position.
typedef struct {
    int max_tokens, max_ctx;
    int n_seq;    // sequences fed together (1 unless made by nt_run_init_seqs)
    int len;      // positions held in the KV cache (the same for every sequence)
    float *k, *v; // (n_layers, max_ctx, n_seq, n_kv_heads * head_dim)
    float *x;     // (max_tokens * n_seq, dim) residual stream; after nt_forward_hidden: the final hidden states (emb_dim)
    float *xb;    // (max_tokens * n_seq, max(dim, emb_dim)) normed input of a sublayer
    float *q;     // (max_tokens * n_seq, n_heads * head_dim)
    float *att;   // (max_tokens * n_seq, n_heads * head_dim) attention output before o_proj
    float *scores;// attention scratch: nt_attn_scratch_floats(max_ctx, scores_threads) (attention.h)
    int scores_threads; // threads the scratch serves (OpenMP's maximum when the run was made)
    float *h1, *h2; // (max_tokens * n_seq, max(ffn_dim, dim, emb_dim))
    float *rope_cos, *rope_sin; // (max_ctx, head_dim / 2), LLaMA only
    // Optional: called with the input (n, in) of every linear of a block just before it is applied
    // (calibration: GPTQ's Hessians). NULL in ordinary runs.
    void (*capture)(void *ctx, int layer, nt_lin_id which, const float *x, int n, int in);
    void *capture_ctx;
} nt_run;

int nt_run_init(nt_run **out, const nt_model *m, int max_tokens, int max_ctx, nt_err *err);
// The same for n_seq sequences decoded together (calibration generation): max_tokens positions per call.
int nt_run_init_seqs(nt_run **out, const nt_model *m, int n_seq, int max_tokens, int max_ctx, nt_err *err);
void nt_run_free(nt_run **r);
void nt_run_reset(nt_run *r); // empties the KV cache

// Feeds n tokens at positions run->len .. run->len+n-1 (after those already in the cache), appends their
// keys/values to the cache and leaves the final hidden states (n, emb_dim) in run->x.
// n <= max_tokens and run->len + n <= max_ctx (checked: returns -1 with a message otherwise).
// With n_seq sequences: tokens (n, n_seq) position-major, hidden states (n * n_seq, emb_dim) in the same order.
int nt_forward_hidden(const nt_model *m, nt_run *r, const int32_t *tokens, int n, nt_err *err);
// Logits of n hidden rows: out (n, vocab) = hidden (n, emb_dim) . lm_head^T.
void nt_logits(const nt_model *m, const float *hidden, int n, float *out);
// The linear `which` of layer l (its w is NULL for a LLaMA-only gate in other architectures).
nt_linear *nt_layer_linear(nt_layer *ly, nt_lin_id which);
const char *nt_lin_name(nt_lin_id which); // "q", "k", ... for messages

// y (n, out) = x (n, in) . W^T (+ b), through sgemm; with activation quantization (l->aq), actquant.h's product.
void nt_linear_forward(const nt_linear *l, const float *x, int n, float *y);
// The activation a at x (ReLU, SiLU, exact GELU, tanh GELU).
float nt_act_forward(nt_act a, float x);

// LayerNorm (rms false) or RMSNorm of each row of x (n, dim) into y (may alias x). When not NULL, xhat (n, dim)
// gets the normalized rows before the affine step and rstd (n) each row's 1/sqrt(var + eps), for backward.
void nt_norm_forward(const nt_norm *nm, bool rms, float eps, const float *x, int n, int dim, float *y, float *xhat,
                     float *rstd);

// Embeds n positions (n * r->n_seq tokens, position-major) at positions pos0.. into x (n * n_seq, dim): token (+ projection) + learned positions + BLOOM's
// embedding norm: the input of block 0.
void nt_embed(const nt_model *m, nt_run *r, const int32_t *tokens, int n, int pos0, float *x);

// nt_forward_hidden followed by nt_logits into logits (n * n_seq, vocab).
int nt_forward(const nt_model *m, nt_run *r, const int32_t *tokens, int n, float *logits, nt_err *err);

// One transformer block in place on x (n * n_seq, dim) for tokens at positions pos0.., using/filling the KV cache
// of layer l. The building block of nt_forward_hidden, exposed for block-wise quantization.
void nt_block_forward(const nt_model *m, nt_run *r, int l, float *x, int n, int pos0);

// Points inside a block where a partial forward stops or resumes (GPTQ's capture passes need the input of some
// linears, not the block's output). Stopping at a point before linears offers their input to the run's capture
// hook (each linear of the group: q/k/v, o, up/gate, down) without applying them.
typedef enum {
    NT_BLOCK_START, // x: the block's input
    NT_BLOCK_QKV,   // before q/k/v: their input is the attention norm's output (pre-norm) or x (OPT post-norm)
    NT_BLOCK_O,     // before o_proj: r->att (n * n_seq, n_heads * head_dim) its input; x still the block's input
    NT_BLOCK_UP,    // before up/gate: x the residual stream between the sublayers, their input its MLP norm
    NT_BLOCK_DOWN,  // before down_proj: r->h1 (n * n_seq, ffn_dim) its input; x as at NT_BLOCK_UP
    NT_BLOCK_END    // x: the block's output
} nt_block_point;

// Runs block l from point `from` (NT_BLOCK_START, NT_BLOCK_O or NT_BLOCK_UP) to point `to` (after from) in place
// on x. Resuming at NT_BLOCK_O needs r->att as a stop there left it (and x the block's input); at NT_BLOCK_UP, x
// as a stop there left it. The result is the same, bit for bit, as running the block through in one call.
void nt_block_forward_range(const nt_model *m, nt_run *r, int l, float *x, int n, int pos0, nt_block_point from,
                            nt_block_point to);
