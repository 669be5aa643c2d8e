/* Internals of the engine: the graph IR shared by the loader, the passes,
 * the executor and the backends. Not a public header. */
#ifndef SPLITD_ENGINE_IMPL_H
#define SPLITD_ENGINE_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "tensor.h"

#define ENG_MAX_IO 64		/* inputs/outputs of one node (Concat, Split) */

enum op_kind {
	OP_CONV, OP_CONV_TRANSPOSE, OP_BATCHNORM,
	/* unary activations: struct act_params */
	OP_RELU, OP_LEAKY_RELU, OP_CLIP, OP_SIGMOID, OP_HARD_SIGMOID,
	OP_HARD_SWISH, OP_SILU, OP_TANH, OP_EXP, OP_SQRT, OP_NEG, OP_ABS,
	OP_ERF, OP_LOG, OP_RECIPROCAL, OP_FLOOR, OP_CEIL, OP_GELU,
	/* binary with numpy broadcasting */
	OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW,
	OP_MAXPOOL, OP_AVGPOOL, OP_GLOBAL_AVGPOOL, OP_GLOBAL_MAXPOOL,
	OP_GEMM, OP_MATMUL,
	OP_RESHAPE,		/* also Flatten, Squeeze, Unsqueeze: a copy */
	OP_TRANSPOSE, OP_CONCAT, OP_SPLIT, OP_SLICE, OP_GATHER,
	OP_RESIZE, OP_SOFTMAX, OP_PAD, OP_CAST, OP_IDENTITY,
	OP_REDUCE_MEAN, OP_EXPAND,
	/* comparisons and logic (bool results), Where, Mod: numpy broadcasting */
	OP_EQUAL, OP_LESS, OP_LESS_EQUAL, OP_GREATER, OP_GREATER_EQUAL,
	OP_AND, OP_OR, OP_XOR, OP_NOT, OP_WHERE, OP_MOD,
	OP_RANGE, OP_SCATTER_ND,
	/* reductions: struct axes_params, axes resolved to a per-axis mask */
	OP_REDUCE_SUM, OP_REDUCE_MAX, OP_REDUCE_MIN, OP_REDUCE_PROD, OP_REDUCE_L1,
	OP_REDUCE_L2, OP_REDUCE_LOG_SUM, OP_REDUCE_LOG_SUM_EXP, OP_REDUCE_SUM_SQUARE,
	OP_ARGMAX, OP_ARGMIN,	/* struct arg_params */
	OP_LAYER_NORM,		/* struct layer_norm_params */
	OP_TILE, OP_GATHER_ELEMENTS, OP_CUMSUM, OP_TOPK,	/* select.c */
	OP_EINSUM,		/* struct einsum_params */
	/* shape-only ops: always constant-folded, never reach a backend */
	OP_SHAPE, OP_CONSTANT, OP_CONSTANT_OF_SHAPE,
	OP_COUNT
};

enum act_kind {
	ACT_NONE, ACT_RELU, ACT_LEAKY_RELU, ACT_CLIP, ACT_SIGMOID,
	ACT_HARD_SIGMOID, ACT_HARD_SWISH, ACT_SILU, ACT_TANH,
	ACT_EXP, ACT_SQRT, ACT_NEG, ACT_ABS, ACT_ERF, ACT_LOG, ACT_RECIPROCAL,
	ACT_FLOOR, ACT_CEIL,
	ACT_GELU, ACT_GELU_TANH,	/* Gelu: approximate="none" (erf), "tanh" */
};

struct act_params {
	enum act_kind kind;
	float alpha, beta;	/* leaky: alpha; clip: [alpha, beta]; hardsigmoid */
};

enum auto_pad { PAD_NOTSET, PAD_SAME_UPPER, PAD_SAME_LOWER, PAD_VALID };

/* Conv, ConvTranspose. 1-D convs are run as 2-D with H = 1. Pads resolved
 * at shape inference: pads[] = top, left, bottom, right. */
struct conv_params {
	int64_t kernel[2], stride[2], dil[2], pads[4], out_pad[2];
	int64_t out_shape[2];	/* ConvTranspose output_shape attr, 0 = none */
	int64_t group;
	enum auto_pad auto_pad;
	int spatial;		/* 1 or 2 as in the model */
	int has_bias;
	int has_sum;		/* fused residual: out = act(conv + in[3]) */
	struct act_params act;	/* fused activation */
};

struct pool_params {
	int64_t kernel[2], stride[2], dil[2], pads[4];
	enum auto_pad auto_pad;
	int spatial;
	int ceil_mode, count_include_pad;
};

struct bn_params { float eps; };
struct gemm_params { float alpha, beta; int trans_a, trans_b; };
struct softmax_params { int64_t axis; int legacy; int log; };
struct reshape_params { int64_t shape[TENSOR_MAX_DIMS]; int ndim; int allowzero; };
struct transpose_params { int perm[TENSOR_MAX_DIMS]; int nperm; };
struct axes_params {
	int64_t axes[TENSOR_MAX_DIMS];
	int naxes;		/* -1: attribute absent (all / from input) */
	int keepdims;
	int noop_with_empty_axes;
	int64_t axis;		/* Flatten, Concat, Gather, Split */
};
struct split_params { int64_t axis; int64_t sizes[ENG_MAX_IO]; };
struct slice_params {		/* normalised over every axis */
	int64_t starts[TENSOR_MAX_DIMS], steps[TENSOR_MAX_DIMS];
};

enum resize_mode { RESIZE_NEAREST, RESIZE_LINEAR, RESIZE_CUBIC };
enum resize_coord {
	COORD_HALF_PIXEL, COORD_ASYMMETRIC, COORD_PYTORCH_HALF_PIXEL,
	COORD_ALIGN_CORNERS, COORD_TF_HALF_PIXEL_FOR_NN, COORD_TF_CROP_AND_RESIZE,
};
enum resize_nearest {
	NEAREST_ROUND_PREFER_FLOOR, NEAREST_ROUND_PREFER_CEIL, NEAREST_FLOOR, NEAREST_CEIL,
};
struct resize_params {
	enum resize_mode mode;
	enum resize_coord coord;
	enum resize_nearest nearest;
	float cubic_a;
	int exclude_outside;
	float extrapolation;
	float scales[TENSOR_MAX_DIMS];	/* resolved per axis */
	int upsample;			/* the legacy Upsample op */
};

enum pad_mode { PADM_CONSTANT, PADM_REFLECT, PADM_EDGE };
struct pad_params {
	enum pad_mode mode;
	int64_t pads[2 * TENSOR_MAX_DIMS];	/* begins then ends, full rank */
	double value;
};

struct cast_params { enum tensor_dtype to; };
struct mod_params { int fmod; };
struct arg_params { int64_t axis; int keepdims, last; };	/* ArgMax, ArgMin */
/* ScatterND's reduction */
enum scatter_reduce { SCATTER_NONE, SCATTER_ADD, SCATTER_MUL };
struct scatter_params { enum scatter_reduce reduce; };
/* normalised over axes [axis, rank); axis resolved at shape inference */
struct layer_norm_params { int64_t axis; float eps; };
struct tile_params { int64_t repeats[TENSOR_MAX_DIMS]; };	/* from the constant input */
struct cumsum_params { int64_t axis; int exclusive, reverse; };	/* axis: constant input */
struct topk_params { int64_t axis, k; int largest, sorted; };	/* k: constant input */
/* Einsum without ellipsis: each operand's axes as label numbers 0..nlab-1,
 * the output's likewise; dims[] per label from shape inference */
#define EINSUM_MAX_IN 4
#define EINSUM_MAX_LABELS 16
struct einsum_params {
	int nin, nlab, out_rank;
	int rank[EINSUM_MAX_IN];
	signed char in[EINSUM_MAX_IN][TENSOR_MAX_DIMS], out[TENSOR_MAX_DIMS];
	int64_t dims[EINSUM_MAX_LABELS];
};
struct constant_params { int tensor; };	/* tensor index of the value */

/* Row geometry of a node along H for banded execution (issue 9): output row
 * r needs input rows [r*stride - pad_top, r*stride - pad_top + (kernel-1)*dil]. */
struct node_spatial {
	int64_t kernel_h, stride_h, dil_h, pad_top, pad_bottom;
};

struct eng_node {
	enum op_kind kind;
	char *name;
	char op[64];		/* ONNX op type, "Conv+Relu" after fusion */
	int opset;
	int n_in, n_out;
	int in[ENG_MAX_IO];	/* tensor indices; -1 = absent optional */
	int out[ENG_MAX_IO];
	union {
		struct conv_params conv;
		struct pool_params pool;
		struct act_params act;
		struct bn_params bn;
		struct gemm_params gemm;
		struct softmax_params softmax;
		struct reshape_params reshape;
		struct transpose_params transpose;
		struct axes_params axes;
		struct split_params split;
		struct slice_params slice;
		struct resize_params resize;
		struct pad_params pad;
		struct cast_params cast;
		struct mod_params mod;
		struct arg_params arg;
		struct scatter_params scatter;
		struct layer_norm_params ln;
		struct tile_params tile;
		struct cumsum_params cumsum;
		struct topk_params topk;
		struct einsum_params einsum;
		struct constant_params constant;
	} p;
	int64_t macs;
	int band_ok;
	struct node_spatial sp;
	int dead;		/* removed by a pass */
	/* backend-private, set by prepare(): packed weights, workspace */
	void *packed;
	/* inputs the backend packed at prepare (bit j: in[j]) and no longer
	 * reads from the tensor: a constant only such nodes read is dropped */
	unsigned packed_inputs;
	size_t work_bytes;	/* per-thread scratch the node needs */
};

struct eng_tensor {
	char *name;
	enum tensor_dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	size_t bytes;
	int is_const;		/* data owned by the engine */
	void *data;
	int is_input, is_output;
	int producer;		/* node index; -1 for inputs/constants */
	int last_use;		/* last consumer; N for model outputs; -2 unused */
	size_t offset;		/* in the activation arena */
	int shape_known;
};

struct backend_ops;

struct engine {
	struct eng_tensor *t;
	int nt, cap_t;
	struct eng_node *n;
	int nn, cap_n;
	int *inputs, n_inputs;	/* tensor indices */
	int *outputs, n_outputs;
	int opset;
	int64_t ir_version;
	uint8_t sha256[32];
	int threads;
	const struct backend_ops *be;
	size_t arena_bytes;
	size_t work_bytes;	/* max per-thread scratch */
	size_t weight_bytes;
	/* name -> tensor index */
	int *hash;
	int hash_cap;
};

/* graph building (graph.c) */
int eng_tensor_find(const struct engine *e, const char *name);
int eng_tensor_add(struct engine *e, const char *name);
int eng_node_add(struct engine *e);
void eng_tensor_set_shape(struct eng_tensor *t, enum tensor_dtype dt, int ndim,
			  const int64_t *shape);
int eng_finalize(struct engine *e, const struct engine_opts *opts, char *err, size_t errlen);
int eng_infer_node(struct engine *e, struct eng_node *n, char *err, size_t errlen);
const char *eng_op_name(enum op_kind k);

/* ONNX protobuf -> IR (onnx_load.c). Weights move from the unpacked message
 * to the engine without a copy. ENG_PARSE_DROP_SOURCE: data is a private
 * read-only file mapping whose pages may be dropped while parsing. */
#define ENG_PARSE_DROP_SOURCE 1u
int eng_parse_onnx(struct engine *e, const void *data, size_t len,
		   const struct engine_opts *opts, unsigned flags, char *err, size_t errlen);

static inline struct tensor_view eng_view(const struct eng_tensor *t, void *data)
{
	struct tensor_view v = { .dtype = t->dtype, .ndim = t->ndim, .data = data };
	for (int i = 0; i < t->ndim; i++)
		v.shape[i] = t->shape[i];
	return v;
}

/* Limits that keep a hostile file from allocating without bound. */
#define ENG_MAX_TENSOR_BYTES ((int64_t)1 << 34)

__attribute__((format(printf, 3, 4)))
static inline int eng_err(char *err, size_t errlen, const char *fmt, ...);
#include <stdarg.h>
static inline int eng_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return 0;
}

#endif
