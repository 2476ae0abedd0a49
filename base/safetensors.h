// safetensors.h: reads (mmap) and writes safetensors files, single or sharded
// (model.safetensors.index.json). Every header is validated before any tensor is touched: offsets
// inside the file, no overlaps, sizes that agree with dtype x shape, a bounded header length.
#pragma once
#include "nt.h"

typedef enum {
    NT_DT_F32,
    NT_DT_F16,
    NT_DT_BF16,
    NT_DT_F64,
    NT_DT_I64,
    NT_DT_I32,
    NT_DT_I16,
    NT_DT_I8,
    NT_DT_U8,
    NT_DT_BOOL,
    NT_DT_COUNT
} nt_dtype;

const char *nt_dtype_name(nt_dtype dt); // "F32", ... as safetensors spells it
size_t nt_dtype_size(nt_dtype dt);      // bytes per element
int nt_dtype_parse(const char *name, nt_dtype *out); // "F32" -> NT_DT_F32; -1 if unknown

#define NT_ST_MAX_DIMS 8

typedef struct {
    char *name;
    nt_dtype dtype;
    int ndim;
    int64_t shape[NT_ST_MAX_DIMS];
    int64_t numel;
    const void *data; // points into the mmap'd file (read-only); for writing, the caller's buffer
    size_t nbytes;
    const char *file; // the file the tensor lives in (for error messages)
} nt_st_tensor;

typedef struct nt_safetensors nt_safetensors;

// Opens one .safetensors file.
int nt_st_open_file(nt_safetensors **out, const char *path, nt_err *err);
// Opens a model directory: model.safetensors, or the shards listed in model.safetensors.index.json.
int nt_st_open_dir(nt_safetensors **out, const char *dir, nt_err *err);
void nt_st_close(nt_safetensors **st);

size_t nt_st_count(const nt_safetensors *st);
const nt_st_tensor *nt_st_at(const nt_safetensors *st, size_t i);
const nt_st_tensor *nt_st_find(const nt_safetensors *st, const char *name); // NULL if absent
// The "__metadata__" value for key (a string), or NULL. Looks in the first file that has it.
const char *nt_st_metadata(const nt_safetensors *st, const char *key);

// Converts tensor `name` (F32, F16 or BF16) into a new malloc'd float32 array. When shape is not NULL the
// tensor must have exactly that shape (ndim dims). Errors name the file and the tensor:
// "DIR/model.safetensors: tensor 'x' has shape [4, 8], expected [4, 16]"; a missing tensor names what was
// opened: "DIR: tensor 'x' not found".
int nt_st_load_f32(const nt_safetensors *st, const char *name, int ndim, const int64_t *shape, float **out,
                   nt_err *err);

// A growable list of tensors to write: each name is copied (owned by the list), data is borrowed.
typedef struct {
    nt_st_tensor *t;
    size_t n, cap;
} nt_st_list;
// Appends a tensor of ndim dims (shape) pointing at data (nbytes); -1 only when out of memory.
int nt_st_list_add(nt_st_list *L, const char *name, nt_dtype dt, int ndim, const int64_t *shape, const void *data,
                   size_t nbytes);
void nt_st_list_free(nt_st_list *L);

// Writes tensors (data taken from each tensor's data/nbytes) and optional string metadata
// (meta_kv: n_meta key,value pairs) to path, through a temporary file renamed into place.
int nt_st_write(const char *path, const nt_st_tensor *tensors, size_t n, const char *const *meta_kv, size_t n_meta,
                nt_err *err);
