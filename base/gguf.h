// gguf.h: reads GGUF files (llama.cpp's single-file model format, versions 2 and 3, little-endian) through a
// read-only mmap: the metadata key/values, the tensor infos, and the tensors dequantized to fp32.
//
// The whole header is validated at open, before anything is returned: every count and length against the
// bytes left in the file, every size computation for overflow, value and tensor types, bools 0/1, keys and
// tensor names (non-empty, no NUL, no duplicates), general.alignment (a power of two), n_dims 1..4, dims >= 1
// and their product, rows a multiple of the type's block, offsets aligned, inside the data section and not
// overlapping. Any failure is one line naming the file and the problem; a file that opens can be read with
// no further bounds checks. Not supported (refused with a message): GGUF v1, big-endian files, arrays of
// arrays (no known model writes them; gguf-py can, for nested lists in metadata).
#pragma once
#include "ggml_quants.h"
#include "nt.h"

// Metadata value types, with GGUF's ids.
typedef enum {
    NT_GGUF_UINT8 = 0,
    NT_GGUF_INT8 = 1,
    NT_GGUF_UINT16 = 2,
    NT_GGUF_INT16 = 3,
    NT_GGUF_UINT32 = 4,
    NT_GGUF_INT32 = 5,
    NT_GGUF_FLOAT32 = 6,
    NT_GGUF_BOOL = 7,
    NT_GGUF_STRING = 8,
    NT_GGUF_ARRAY = 9,
    NT_GGUF_UINT64 = 10,
    NT_GGUF_INT64 = 11,
    NT_GGUF_FLOAT64 = 12,
    NT_GGUF_VTYPE_COUNT
} nt_gguf_vtype;

const char *nt_gguf_vtype_name(nt_gguf_vtype t); // "UINT32", ... ("?" if unknown)

#define NT_GGUF_MAX_DIMS 4
#define NT_GGUF_DEFAULT_ALIGNMENT 32

typedef struct {
    const char *name;  // NUL-terminated (owned by the handle)
    nt_ggml_type type;
    int n_dims;        // 1..4
    int64_t dims[NT_GGUF_MAX_DIMS]; // GGML order: dims[0] is the row length (contiguous); dims past n_dims are 1.
                                    // A PyTorch (out, in) matrix has dims {in, out}.
    int64_t n_elements;
    int64_t n_rows;    // n_elements / dims[0]
    uint64_t offset;   // from the start of the data section (a multiple of the alignment)
    const void *data;  // in the read-only mmap
    size_t nbytes;
    const char *file;  // the file, for messages
} nt_gguf_tensor;

typedef struct nt_gguf nt_gguf;

// Opens and validates path (see the top of this file). *out is NULL on failure.
int nt_gguf_open(nt_gguf **out, const char *path, nt_err *err);
void nt_gguf_close(nt_gguf **g);
// The same on a GGUF image in memory (size bytes at data, borrowed: it must outlive the handle); name stands for
// the file in messages. The fuzz harness reads its inputs this way.
int nt_gguf_open_buffer(nt_gguf **out, const char *name, const void *data, size_t size, nt_err *err);
// True when path is a regular file that starts with the GGUF magic (reads 4 bytes; never fails loudly).
bool nt_gguf_is_gguf(const char *path);

const char *nt_gguf_path(const nt_gguf *g);
uint32_t nt_gguf_version(const nt_gguf *g);   // 2 or 3
uint64_t nt_gguf_alignment(const nt_gguf *g); // general.alignment, or 32
uint64_t nt_gguf_data_offset(const nt_gguf *g); // where the data section starts in the file

// ---------------------------------------------------------------------------------------------- metadata
// Getters by key fail (-1) with "FILE: metadata key 'K' is missing" or "FILE: metadata key 'K' is UINT8,
// expected a string" and leave *out untouched; use nt_gguf_has first for optional keys.

size_t nt_gguf_kv_count(const nt_gguf *g);
const char *nt_gguf_kv_key(const nt_gguf *g, size_t i);       // NUL-terminated
nt_gguf_vtype nt_gguf_kv_type(const nt_gguf *g, size_t i);    // NT_GGUF_ARRAY for arrays
int64_t nt_gguf_find_key(const nt_gguf *g, const char *key); // index, or -1
bool nt_gguf_has(const nt_gguf *g, const char *key);

// A string value: *s is NUL-terminated (owned by the handle); *len (if not NULL) is its length in bytes
// (a GGUF string may hold NUL bytes: then strlen(*s) < *len).
int nt_gguf_get_str(const nt_gguf *g, const char *key, const char **s, size_t *len, nt_err *err);
// An integer of any GGUF integer type, into int64 (a UINT64 above INT64_MAX is an error).
int nt_gguf_get_int(const nt_gguf *g, const char *key, int64_t *out, nt_err *err);
// The same, required to lie in [lo, hi] ("... is 0, must be in [1, 1000000]").
int nt_gguf_get_int_range(const nt_gguf *g, const char *key, int64_t lo, int64_t hi, int64_t *out, nt_err *err);
// A FLOAT32 or FLOAT64 value.
int nt_gguf_get_float(const nt_gguf *g, const char *key, double *out, nt_err *err);
int nt_gguf_get_bool(const nt_gguf *g, const char *key, bool *out, nt_err *err);

// An array: its element type and count.
int nt_gguf_get_arr(const nt_gguf *g, const char *key, nt_gguf_vtype *elem, uint64_t *count, nt_err *err);
// Element i of a string array: *s points into the mapped file and is NOT NUL-terminated: use exactly *len
// bytes (valid until nt_gguf_close). Fails if key is not a string array or i >= its count.
int nt_gguf_get_arr_str(const nt_gguf *g, const char *key, uint64_t i, const char **s, size_t *len, nt_err *err);
// A numeric array copied out into a new malloc'd array (*n elements; an empty array gives a non-NULL 1-slot
// buffer and *n = 0). f32: FLOAT32 or FLOAT64 elements; i32 / i64: any integer element type, each checked to
// fit ("element 7 is 4294967295, does not fit in int32").
int nt_gguf_get_arr_f32(const nt_gguf *g, const char *key, float **out, uint64_t *n, nt_err *err);
int nt_gguf_get_arr_i32(const nt_gguf *g, const char *key, int32_t **out, uint64_t *n, nt_err *err);
int nt_gguf_get_arr_i64(const nt_gguf *g, const char *key, int64_t **out, uint64_t *n, nt_err *err);

// ---------------------------------------------------------------------------------------------- tensors

size_t nt_gguf_tensor_count(const nt_gguf *g);
const nt_gguf_tensor *nt_gguf_tensor_at(const nt_gguf *g, size_t i); // in file order
const nt_gguf_tensor *nt_gguf_find_tensor(const nt_gguf *g, const char *name); // NULL if absent

// Rows row0 .. row0 + n_rows - 1 of t (each dims[0] values) into out (n_rows * dims[0] floats). Fails for a
// row range outside the tensor or a type normtweak does not dequantize ("... is IQ2_XS, which normtweak
// cannot dequantize (supported: F32, F16, ...)").
int nt_gguf_dequantize_rows(const nt_gguf_tensor *t, int64_t row0, int64_t n_rows, float *out, nt_err *err);
// The whole tensor into a new malloc'd fp32 array (n_elements floats).
int nt_gguf_dequantize(const nt_gguf_tensor *t, float **out, nt_err *err);
