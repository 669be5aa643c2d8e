/* CPU backend internals: the per-inference context and the kernel entry
 * points, one file per op family. */
#ifndef SPLITD_CPU_IMPL_H
#define SPLITD_CPU_IMPL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine-impl.h"
#include "simd.h"
#include "threadpool.h"

struct cpu_ctx {
	struct tpool *pool;
	int threads;
	void **scratch;		/* one per thread */
	size_t *scratch_bytes;
};

/* Grows every thread's scratch buffer to at least bytes (main thread only). */
int cpu_scratch_reserve(struct cpu_ctx *c, size_t bytes);
/* The same for the first nthreads threads only (a buffer thread 0 fills
 * and every thread reads). */
int cpu_scratch_reserve_n(struct cpu_ctx *c, int nthreads, size_t bytes);

#define CPU_KERNEL(name) int name(struct cpu_ctx *c, const struct eng_node *n, \
				  const struct tensor_view *in, struct tensor_view *out)
CPU_KERNEL(cpu_conv);
CPU_KERNEL(cpu_conv_transpose);
CPU_KERNEL(cpu_batchnorm);
CPU_KERNEL(cpu_unary);
CPU_KERNEL(cpu_binary);
CPU_KERNEL(cpu_pool);
CPU_KERNEL(cpu_global_pool);
CPU_KERNEL(cpu_gemm);
CPU_KERNEL(cpu_matmul);
CPU_KERNEL(cpu_softmax);
CPU_KERNEL(cpu_reduce_mean);
CPU_KERNEL(cpu_copy);		/* Reshape family, Identity */
CPU_KERNEL(cpu_transpose);
CPU_KERNEL(cpu_concat);
CPU_KERNEL(cpu_split);
CPU_KERNEL(cpu_slice);
CPU_KERNEL(cpu_gather);
CPU_KERNEL(cpu_pad);
CPU_KERNEL(cpu_cast);
CPU_KERNEL(cpu_expand);
CPU_KERNEL(cpu_shape);
CPU_KERNEL(cpu_constant_of_shape);
CPU_KERNEL(cpu_resize);
CPU_KERNEL(cpu_logic);		/* comparisons, And/Or/Xor/Not, Where, Mod */
CPU_KERNEL(cpu_range);
CPU_KERNEL(cpu_scatter_nd);
CPU_KERNEL(cpu_reduce);		/* every Reduce* but ReduceMean */
CPU_KERNEL(cpu_argmax);		/* ArgMax, ArgMin */
CPU_KERNEL(cpu_layer_norm);
CPU_KERNEL(cpu_tile);
CPU_KERNEL(cpu_gather_elements);
CPU_KERNEL(cpu_cumsum);
CPU_KERNEL(cpu_topk);
CPU_KERNEL(cpu_einsum);

int cpu_conv_prepare(struct engine *e, struct eng_node *n);
void cpu_conv_release(struct eng_node *n);	/* Conv's and ConvTranspose's */
int cpu_conv_transpose_prepare(struct engine *e, struct eng_node *n);
/* How a prepared Conv runs: "depthwise", "direct" (B read from the input),
 * "im2col", "1x1", or with "-t" the transposed tiles ("im2col-t", "1x1-t"). */
const char *cpu_conv_path(const struct eng_node *n);

/* In-place activation over n floats (elementwise.c). */
void cpu_act(float *x, int64_t n, const struct act_params *a);
/* y[i] = act(y[i] + bias) over a rows x cols block; bias per row, sum
 * (residual) added before the activation when non-NULL. */
void cpu_bias_act(float *y, int64_t rows, int64_t cols, int64_t ld, const float *bias,
		  const float *sum, const struct act_params *a);

/* Parallel for: fn(arg, begin, end) over [0, n) split into thread slices. */
typedef void (*cpu_range_fn)(void *arg, int64_t begin, int64_t end);
void cpu_parallel(struct cpu_ctx *c, int64_t n, cpu_range_fn fn, void *arg);

static inline int64_t view_numel(const struct tensor_view *v)
{
	return tensor_numel(v);
}

/* Row-major element strides of v. */
static inline void view_strides(const struct tensor_view *v, int64_t st[TENSOR_MAX_DIMS])
{
	int64_t k = 1;

	for (int d = v->ndim - 1; d >= 0; d--) {
		st[d] = k;
		k *= v->shape[d];
	}
}

/* The next multi-index of v in row-major order (wraps to all zeros). */
static inline void view_index_next(int64_t idx[TENSOR_MAX_DIMS], const struct tensor_view *v)
{
	for (int d = v->ndim - 1; d >= 0; d--) {
		if (++idx[d] < v->shape[d])
			break;
		idx[d] = 0;
	}
}

/* v as [outer, shape[axis], inner]. */
static inline void view_axis_split(const struct tensor_view *v, int axis, int64_t *outer, int64_t *inner)
{
	*outer = *inner = 1;
	for (int d = 0; d < axis; d++)
		*outer *= v->shape[d];
	for (int d = axis + 1; d < v->ndim; d++)
		*inner *= v->shape[d];
}

#endif
