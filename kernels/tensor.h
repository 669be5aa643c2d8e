/* A plain tensor view: the one struct api/, daemon/ and kernels/ share.
 * It never owns its data. dtype values are ONNX's TensorProto.DataType. */
#ifndef SPLITD_TENSOR_H
#define SPLITD_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 8

enum tensor_dtype {
	TENSOR_UNDEFINED = 0,
	TENSOR_F32 = 1,
	TENSOR_U8 = 2,
	TENSOR_I8 = 3,
	TENSOR_I32 = 6,
	TENSOR_I64 = 7,
	TENSOR_BOOL = 9,
	TENSOR_F16 = 10,
	TENSOR_F64 = 11,
};

struct tensor_view {
	enum tensor_dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	void *data;
	/* Elements from one plane (the last two dims) to the next; 0 = packed.
	 * Set only on 4-D views of some rows of a larger tensor, given only to
	 * kernels whose backend says they take it (backend_ops.strided). */
	int64_t pstride;
};

static inline size_t tensor_dtype_size(enum tensor_dtype t)
{
	switch (t) {
	case TENSOR_F32: case TENSOR_I32: return 4;
	case TENSOR_I64: case TENSOR_F64: return 8;
	case TENSOR_F16: return 2;
	case TENSOR_U8: case TENSOR_I8: case TENSOR_BOOL: return 1;
	default: return 0;
	}
}

/* KServe v2 datatype names ("FP32", "INT64", ...); NULL when unknown. */
static inline const char *tensor_dtype_name(enum tensor_dtype t)
{
	switch (t) {
	case TENSOR_F32: return "FP32";
	case TENSOR_F16: return "FP16";
	case TENSOR_F64: return "FP64";
	case TENSOR_U8: return "UINT8";
	case TENSOR_I8: return "INT8";
	case TENSOR_I32: return "INT32";
	case TENSOR_I64: return "INT64";
	case TENSOR_BOOL: return "BOOL";
	default: return NULL;
	}
}

static inline int64_t tensor_numel(const struct tensor_view *v)
{
	int64_t n = 1;
	for (int i = 0; i < v->ndim; i++)
		n *= v->shape[i];
	return n;
}

static inline size_t tensor_bytes(const struct tensor_view *v)
{
	return (size_t)tensor_numel(v) * tensor_dtype_size(v->dtype);
}

#endif
