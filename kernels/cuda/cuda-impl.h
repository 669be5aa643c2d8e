/* Internals of the CUDA/cuDNN backend (issue 8): the per-inference context,
 * the per-node prepared state, the status macros and the launchers of the
 * hand-written kernels (*.cu, C linkage). Not a public header.
 *
 * Layout: float32 NCHW, the same as the CPU backend. Activations live in a
 * device arena (buf_alloc); constant inputs (weights, broadcast operands,
 * gather indices) are uploaded once by prepare() and kept in the node. */
#ifndef SPLITD_CUDA_IMPL_H
#define SPLITD_CUDA_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- kernel launchers (elementwise.cu, layout.cu, pack.cu) --------------
 * Each enqueues on `stream` and returns the launch status
 * (cudaGetLastError()). Sizes are element counts. */

/* Mirrors enum act_kind of engine-impl.h (checked by a static assert in
 * backend_cuda.c, so the .cu files need no engine header). */
enum cuda_act {
	CUDA_ACT_NONE, CUDA_ACT_RELU, CUDA_ACT_LEAKY_RELU, CUDA_ACT_CLIP,
	CUDA_ACT_SIGMOID, CUDA_ACT_HARD_SIGMOID, CUDA_ACT_HARD_SWISH,
	CUDA_ACT_SILU, CUDA_ACT_TANH, CUDA_ACT_EXP, CUDA_ACT_SQRT, CUDA_ACT_NEG,
	CUDA_ACT_ABS, CUDA_ACT_ERF, CUDA_ACT_LOG, CUDA_ACT_RECIPROCAL,
	CUDA_ACT_FLOOR, CUDA_ACT_CEIL, CUDA_ACT_GELU, CUDA_ACT_GELU_TANH, CUDA_ACT_COUNT
};

enum cuda_binop { CUDA_BIN_ADD, CUDA_BIN_SUB, CUDA_BIN_MUL, CUDA_BIN_DIV, CUDA_BIN_POW };

#define CUDA_MAX_DIMS TENSOR_MAX_DIMS

/* An N-d index walk: for each flat index i of `shape` (row-major), element
 * i of the walk reads src[sbase + sum c_d * sstride_d] and writes
 * dst[dbase + sum c_d * dstride_d] (element units). Transpose, slice,
 * concat, split, expand and broadcasting are all this walk. */
struct cuda_walk {
	int ndim;
	int64_t shape[CUDA_MAX_DIMS];
	int64_t sstride[CUDA_MAX_DIMS];
	int64_t dstride[CUDA_MAX_DIMS];
	int64_t bstride[CUDA_MAX_DIMS];	/* second source (binary ops) */
	int64_t sbase, dbase;
};

cudaError_t cuda_launch_unary(cudaStream_t s, enum cuda_act act, float alpha, float beta,
			      const float *x, float *y, int64_t n);
/* y[i] = act(y[i] + bias[(i / inner) % channels] + z[i]); bias, z may be NULL. */
cudaError_t cuda_launch_bias_act(cudaStream_t s, float *y, const float *bias, const float *z,
				 int64_t channels, int64_t inner, int64_t n,
				 enum cuda_act act, float alpha, float beta);
/* y[i] = x[i] * scale[c] + shift[c], c = (i / inner) % channels. */
cudaError_t cuda_launch_channel_affine(cudaStream_t s, const float *x, float *y,
				       const float *scale, const float *shift,
				       int64_t channels, int64_t inner, int64_t n);
/* dst = a op b over w->shape with a at sstride, b at bstride, dst at dstride. */
cudaError_t cuda_launch_binary(cudaStream_t s, enum cuda_binop op, const float *a,
			       const float *b, float *y, const struct cuda_walk *w);
/* Element copy along a walk; elem_size 1, 2, 4 or 8. */
cudaError_t cuda_launch_walk_copy(cudaStream_t s, size_t elem_size, const void *src,
				  void *dst, const struct cuda_walk *w);
/* Cast between float32, int32 and int64 (ONNX: float -> int truncates). */
cudaError_t cuda_launch_cast(cudaStream_t s, enum tensor_dtype from, enum tensor_dtype to,
			     const void *src, void *dst, int64_t n);
/* Pad (float32): mode 0 constant, 1 reflect, 2 edge; pads begins then ends. */
cudaError_t cuda_launch_pad(cudaStream_t s, int mode, float value, const float *x,
			    float *y, int ndim, const int64_t *in_shape,
			    const int64_t *out_shape, const int64_t *pad_begin);
/* Resize of the last two axes of planes x[planes][ih][iw] -> y[planes][oh][ow].
 * mode 0 nearest, 1 linear; coord and nearest as enum resize_coord /
 * resize_nearest; scale_h/w as in ONNX (output / input when sizes given). */
struct cuda_resize {
	int64_t planes, ih, iw, oh, ow;
	float scale_h, scale_w;
	int mode, coord, nearest;
};
cudaError_t cuda_launch_resize(cudaStream_t s, const float *x, float *y,
			       const struct cuda_resize *r);
/* Pooling by hand, for what cuDNN's descriptor cannot express (asymmetric
 * pads, dilation, ceil_mode). max = 1 max, 0 average. */
struct cuda_pool {
	int64_t planes, ih, iw, oh, ow;
	int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
	int max, count_include_pad;
};
cudaError_t cuda_launch_pool(cudaStream_t s, const float *x, float *y, const struct cuda_pool *p);
/* Global average / max pooling: y[p] = reduce(x[p][0..inner)). */
cudaError_t cuda_launch_global_pool(cudaStream_t s, const float *x, float *y,
				    int64_t planes, int64_t inner, int max);
/* Mean over the axes whose walk strides are in w (shape = reduced dims);
 * out has `outer` elements; ostride/ostrides describe the kept dims. */
struct cuda_reduce {
	int nkeep, nred;
	int64_t keep_shape[CUDA_MAX_DIMS], keep_stride[CUDA_MAX_DIMS];
	int64_t red_shape[CUDA_MAX_DIMS], red_stride[CUDA_MAX_DIMS];
	int64_t outer, count;
};
cudaError_t cuda_launch_reduce_mean(cudaStream_t s, const float *x, float *y,
				    const struct cuda_reduce *r);
/* Gather along an axis: data [outer][axis_len][inner], indices (int64 or
 * int32, negatives wrap, out of range clamp: supports() requires constant
 * indices, checked by prepare()) -> out
 * [outer][n_idx][inner]. */
cudaError_t cuda_launch_gather(cudaStream_t s, size_t elem_size, const void *data,
			       const void *idx, int idx_is_64, void *out, int64_t outer,
			       int64_t axis_len, int64_t n_idx, int64_t inner);

/* Link packing (pack.cu). f16: round to nearest even; *overflow (device
 * int, zeroed by the caller) set when a finite |x| >= 65520. i8 as
 * link/link_codec.h describes. maxabs_bits: device uint32 zeroed by the
 * caller, receives the bits of max |x| (>= 0x7f800000 means non-finite). */
cudaError_t cuda_launch_f32_to_f16(cudaStream_t s, const float *x, uint16_t *h, int64_t n,
				   int *overflow);
cudaError_t cuda_launch_f16_to_f32(cudaStream_t s, const uint16_t *h, float *x, int64_t n);
cudaError_t cuda_launch_maxabs(cudaStream_t s, const float *x, int64_t n, uint32_t *maxabs_bits);
cudaError_t cuda_launch_quantize_i8(cudaStream_t s, const float *x, int8_t *q, int64_t n,
				    float inv_scale);
cudaError_t cuda_launch_dequantize_i8(cudaStream_t s, const int8_t *q, float *x, int64_t n,
				      float scale);

#ifdef __cplusplus
}
#endif

#endif
