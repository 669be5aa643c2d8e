/* The CPU backend: float32 NCHW kernels on an explicit thread pool, OpenBLAS
 * for the GEMMs. One switch dispatches every op. */
#include <errno.h>
#include <stdlib.h>

#include <cblas.h>

#include "backend-impl.h"
#include "cpu-impl.h"

int cpu_scratch_reserve(struct cpu_ctx *c, size_t bytes)
{
	return cpu_scratch_reserve_n(c, c->threads, bytes);
}

int cpu_scratch_reserve_n(struct cpu_ctx *c, int nthreads, size_t bytes)
{
	for (int i = 0; i < nthreads && i < c->threads; i++) {
		if (c->scratch_bytes[i] >= bytes)
			continue;
		void *p = NULL;
		if (posix_memalign(&p, 64, bytes))
			return -ENOMEM;
		free(c->scratch[i]);
		c->scratch[i] = p;
		c->scratch_bytes[i] = bytes;
	}
	return 0;
}

struct par_arg { int64_t n; cpu_range_fn fn; void *arg; };

static void par_thunk(void *a, int index, int count)
{
	struct par_arg *p = a;
	int64_t b, e;
	tpool_slice(p->n, index, count, &b, &e);
	if (b < e)
		p->fn(p->arg, b, e);
}

void cpu_parallel(struct cpu_ctx *c, int64_t n, cpu_range_fn fn, void *arg)
{
	if (!c || !c->pool || c->threads == 1 || n < 2) {
		if (n > 0)
			fn(arg, 0, n);
		return;
	}
	struct par_arg p = { n, fn, arg };
	tpool_run(c->pool, par_thunk, &p);
}

static void cpu_ctx_free(void *b)
{
	struct cpu_ctx *c = b;
	if (!c)
		return;
	tpool_free(c->pool);
	for (int i = 0; c->scratch && i < c->threads; i++)
		free(c->scratch[i]);
	free(c->scratch);
	free(c->scratch_bytes);
	free(c);
}

static int ctx_make(int threads, size_t work, struct cpu_ctx **out)
{
	struct cpu_ctx *c = calloc(1, sizeof(*c));
	int rc = -ENOMEM;
	if (!c)
		return -ENOMEM;
	c->threads = threads < 1 ? 1 : threads;
	c->scratch = calloc(c->threads, sizeof(void *));
	c->scratch_bytes = calloc(c->threads, sizeof(size_t));
	if (!c->scratch || !c->scratch_bytes)
		goto out;
	if (c->threads > 1 && (rc = tpool_new(c->threads, &c->pool)))
		goto out;
	if (work && (rc = cpu_scratch_reserve(c, work)))
		goto out;
	*out = c;
	return 0;
out:
	cpu_ctx_free(c);
	return rc;
}

static int cpu_ctx_new(const struct engine *e, void **out)
{
	struct cpu_ctx *c;
	/* our pool splits the work; OpenBLAS runs single-threaded inside it */
	openblas_set_num_threads(1);
	int rc = ctx_make(e->threads, e->work_bytes, &c);
	if (!rc)
		*out = c;
	return rc;
}

/* Conv (every algorithm) and Max/AveragePool index their planes by the
 * views' pstride. */
static int cpu_strided(const struct eng_node *n)
{
	return n->kind == OP_CONV || n->kind == OP_MAXPOOL || n->kind == OP_AVGPOOL;
}

static int cpu_supports(const struct engine *e, const struct eng_node *n)
{
	switch (n->kind) {
	case OP_SHAPE: case OP_CONSTANT: case OP_CONSTANT_OF_SHAPE:
		return 0;
	default:
		return n->kind < OP_COUNT;
	}
}

static int cpu_prepare(struct engine *e, struct eng_node *n)
{
	if (n->kind == OP_CONV)
		return cpu_conv_prepare(e, n);
	if (n->kind == OP_CONV_TRANSPOSE)
		return cpu_conv_transpose_prepare(e, n);
	return 0;
}

static void cpu_release(struct eng_node *n)
{
	if (n->kind == OP_CONV || n->kind == OP_CONV_TRANSPOSE)
		cpu_conv_release(n);
}

static int dispatch(struct cpu_ctx *c, const struct eng_node *n, const struct tensor_view *in,
		    struct tensor_view *out)
{
	switch (n->kind) {
	case OP_CONV: return cpu_conv(c, n, in, out);
	case OP_CONV_TRANSPOSE: return cpu_conv_transpose(c, n, in, out);
	case OP_BATCHNORM: return cpu_batchnorm(c, n, in, out);
	case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
	case OP_HARD_SWISH: case OP_SILU: case OP_TANH: case OP_EXP: case OP_SQRT: case OP_NEG:
	case OP_ABS: case OP_ERF: case OP_LOG: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL:
	case OP_GELU:
		return cpu_unary(c, n, in, out);
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW:
		return cpu_binary(c, n, in, out);
	case OP_MAXPOOL: case OP_AVGPOOL: return cpu_pool(c, n, in, out);
	case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL: return cpu_global_pool(c, n, in, out);
	case OP_GEMM: return cpu_gemm(c, n, in, out);
	case OP_MATMUL: return cpu_matmul(c, n, in, out);
	case OP_RESHAPE: case OP_IDENTITY: return cpu_copy(c, n, in, out);
	case OP_TRANSPOSE: return cpu_transpose(c, n, in, out);
	case OP_CONCAT: return cpu_concat(c, n, in, out);
	case OP_SPLIT: return cpu_split(c, n, in, out);
	case OP_SLICE: return cpu_slice(c, n, in, out);
	case OP_GATHER: return cpu_gather(c, n, in, out);
	case OP_RESIZE: return cpu_resize(c, n, in, out);
	case OP_SOFTMAX: return cpu_softmax(c, n, in, out);
	case OP_PAD: return cpu_pad(c, n, in, out);
	case OP_CAST: return cpu_cast(c, n, in, out);
	case OP_REDUCE_MEAN: return cpu_reduce_mean(c, n, in, out);
	case OP_EXPAND: return cpu_expand(c, n, in, out);
	case OP_EQUAL: case OP_LESS: case OP_LESS_EQUAL: case OP_GREATER: case OP_GREATER_EQUAL:
	case OP_AND: case OP_OR: case OP_XOR: case OP_NOT: case OP_WHERE: case OP_MOD:
		return cpu_logic(c, n, in, out);
	case OP_RANGE: return cpu_range(c, n, in, out);
	case OP_SCATTER_ND: return cpu_scatter_nd(c, n, in, out);
	case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN: case OP_REDUCE_PROD:
	case OP_REDUCE_L1: case OP_REDUCE_L2: case OP_REDUCE_LOG_SUM: case OP_REDUCE_LOG_SUM_EXP:
	case OP_REDUCE_SUM_SQUARE:
		return cpu_reduce(c, n, in, out);
	case OP_ARGMAX: case OP_ARGMIN: return cpu_argmax(c, n, in, out);
	case OP_LAYER_NORM: return cpu_layer_norm(c, n, in, out);
	case OP_TILE: return cpu_tile(c, n, in, out);
	case OP_GATHER_ELEMENTS: return cpu_gather_elements(c, n, in, out);
	case OP_CUMSUM: return cpu_cumsum(c, n, in, out);
	case OP_TOPK: return cpu_topk(c, n, in, out);
	case OP_EINSUM: return cpu_einsum(c, n, in, out);
	case OP_SHAPE: return cpu_shape(c, n, in, out);
	case OP_CONSTANT_OF_SHAPE: return cpu_constant_of_shape(c, n, in, out);
	case OP_CONSTANT: case OP_COUNT: break;
	}
	return -ENOTSUP;
}

static int cpu_run(void *bctx, const struct engine *e, const struct eng_node *n,
		   const struct tensor_view *in, struct tensor_view *out)
{
	return dispatch(bctx, n, in, out);
}

int cpu_run_node_simple(const struct engine *e, const struct eng_node *n,
			const struct tensor_view *in, struct tensor_view *out)
{
	struct cpu_ctx *c;
	int rc = ctx_make(1, 0, &c);
	if (rc)
		return rc;
	rc = dispatch(c, n, in, out);
	cpu_ctx_free(c);
	return rc;
}

const struct backend_ops backend_cpu = {
	.name = "cpu",
	.supports = cpu_supports,
	.prepare = cpu_prepare,
	.release = cpu_release,
	.ctx_new = cpu_ctx_new,
	.ctx_free = cpu_ctx_free,
	.strided = cpu_strided,
	.run = cpu_run,
};
