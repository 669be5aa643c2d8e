/* The CUDA backend's hand-kernel families, host side: activations, binary
 * ops with numpy broadcasting, BatchNormalization (folded affine), global
 * pooling, reshape-likes, transpose, concat, split, slice, expand, gather,
 * pad, resize, cast, ReduceMean. Each builds a small geometry struct and
 * launches one kernel of elementwise.cu / layout.cu on the context's
 * stream. CPU twins: kernels/elementwise.c, kernels/layout.c. */
#include <errno.h>
#include <string.h>

#include "cuda-host.h"

enum cuda_act cuda_act_of(const struct eng_node *n)
{
	switch (n->kind) {
	case OP_RELU: return CUDA_ACT_RELU;
	case OP_LEAKY_RELU: return CUDA_ACT_LEAKY_RELU;
	case OP_CLIP: return CUDA_ACT_CLIP;
	case OP_SIGMOID: return CUDA_ACT_SIGMOID;
	case OP_HARD_SIGMOID: return CUDA_ACT_HARD_SIGMOID;
	case OP_HARD_SWISH: return CUDA_ACT_HARD_SWISH;
	case OP_SILU: return CUDA_ACT_SILU;
	case OP_TANH: return CUDA_ACT_TANH;
	case OP_EXP: return CUDA_ACT_EXP;
	case OP_SQRT: return CUDA_ACT_SQRT;
	case OP_NEG: return CUDA_ACT_NEG;
	case OP_ABS: return CUDA_ACT_ABS;
	case OP_ERF: return CUDA_ACT_ERF;
	case OP_LOG: return CUDA_ACT_LOG;
	case OP_RECIPROCAL: return CUDA_ACT_RECIPROCAL;
	case OP_FLOOR: return CUDA_ACT_FLOOR;
	case OP_CEIL: return CUDA_ACT_CEIL;
	case OP_GELU: return n->p.act.kind == ACT_GELU_TANH ? CUDA_ACT_GELU_TANH : CUDA_ACT_GELU;
	default: return CUDA_ACT_NONE;
	}
}

/* Strides of v seen from an output of rank `ndim` (numpy broadcasting:
 * right-aligned, size-1 dims stride 0). */
static void bcast_strides(const struct tensor_view *v, int ndim, int64_t *stride)
{
	int64_t own[TENSOR_MAX_DIMS];
	int off = ndim - v->ndim;

	cuda_strides(v->shape, v->ndim, own);
	for (int d = 0; d < ndim; d++) {
		int s = d - off;
		stride[d] = (s < 0 || v->shape[s] == 1) ? 0 : own[s];
	}
}

static int64_t axis_of(int64_t axis, int ndim)
{
	return axis < 0 ? axis + ndim : axis;
}

static int run_binary(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		      const struct tensor_view *in, struct tensor_view *out)
{
	struct cuda_walk w = { .ndim = out[0].ndim };
	enum cuda_binop op;

	switch (n->kind) {
	case OP_ADD: op = CUDA_BIN_ADD; break;
	case OP_SUB: op = CUDA_BIN_SUB; break;
	case OP_MUL: op = CUDA_BIN_MUL; break;
	case OP_DIV: op = CUDA_BIN_DIV; break;
	default: op = CUDA_BIN_POW; break;
	}
	memcpy(w.shape, out[0].shape, sizeof(w.shape));
	if (w.ndim == 0) {	/* scalars: a walk of one element */
		w.ndim = 1;
		w.shape[0] = 1;
	}
	bcast_strides(&in[0], w.ndim, w.sstride);
	bcast_strides(&in[1], w.ndim, w.bstride);
	cuda_strides(w.shape, w.ndim, w.dstride);
	CUDA_TRY(&c->st, cuda_launch_binary(c->stream, op, cuda_in(cn, in, 0), cuda_in(cn, in, 1),
					    out[0].data, &w));
	return 0;
}

static int run_concat(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		      const struct tensor_view *in, struct tensor_view *out)
{
	int nd = out[0].ndim;
	int64_t axis = axis_of(n->p.axes.axis, nd), ost[TENSOR_MAX_DIMS], offset = 0;
	size_t es = tensor_dtype_size(out[0].dtype);

	if (axis < 0 || axis >= nd)
		return cuda_fail(&c->st, -EINVAL, "concat: axis out of range");
	cuda_strides(out[0].shape, nd, ost);
	for (int i = 0; i < n->n_in; i++) {
		struct cuda_walk w = { .ndim = nd };

		memcpy(w.shape, in[i].shape, sizeof(w.shape));
		cuda_strides(in[i].shape, nd, w.sstride);
		memcpy(w.dstride, ost, sizeof(ost));
		w.dbase = offset * ost[axis];
		CUDA_TRY(&c->st, cuda_launch_walk_copy(c->stream, es, cuda_in(cn, in, i),
						       out[0].data, &w));
		offset += in[i].shape[axis];
	}
	return 0;
}

static int run_split(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		     const struct tensor_view *in, struct tensor_view *out)
{
	int nd = in[0].ndim;
	int64_t axis = axis_of(n->p.split.axis, nd), ist[TENSOR_MAX_DIMS], offset = 0;
	size_t es = tensor_dtype_size(in[0].dtype);

	if (axis < 0 || axis >= nd)
		return cuda_fail(&c->st, -EINVAL, "split: axis out of range");
	cuda_strides(in[0].shape, nd, ist);
	for (int i = 0; i < n->n_out; i++) {
		struct cuda_walk w = { .ndim = nd };

		if (!out[i].data)
			continue;	/* an unused output */
		memcpy(w.shape, out[i].shape, sizeof(w.shape));
		memcpy(w.sstride, ist, sizeof(ist));
		cuda_strides(out[i].shape, nd, w.dstride);
		w.sbase = offset * ist[axis];
		CUDA_TRY(&c->st, cuda_launch_walk_copy(c->stream, es, cuda_in(cn, in, 0),
						       out[i].data, &w));
		offset += out[i].shape[axis];
	}
	return 0;
}

static int run_slice(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		     const struct tensor_view *in, struct tensor_view *out)
{
	const struct slice_params *p = &n->p.slice;
	struct cuda_walk w = { .ndim = in[0].ndim };
	int64_t ist[TENSOR_MAX_DIMS];

	cuda_strides(in[0].shape, in[0].ndim, ist);
	memcpy(w.shape, out[0].shape, sizeof(w.shape));
	cuda_strides(out[0].shape, out[0].ndim, w.dstride);
	for (int d = 0; d < w.ndim; d++) {
		w.sbase += p->starts[d] * ist[d];
		w.sstride[d] = p->steps[d] * ist[d];
	}
	CUDA_TRY(&c->st, cuda_launch_walk_copy(c->stream, tensor_dtype_size(in[0].dtype),
					       cuda_in(cn, in, 0), out[0].data, &w));
	return 0;
}

static int run_transpose(struct cuda_ctx *c, const struct cuda_node *cn,
			 const struct eng_node *n, const struct tensor_view *in,
			 struct tensor_view *out)
{
	struct cuda_walk w = { .ndim = out[0].ndim };
	int64_t ist[TENSOR_MAX_DIMS];

	cuda_strides(in[0].shape, in[0].ndim, ist);
	memcpy(w.shape, out[0].shape, sizeof(w.shape));
	cuda_strides(out[0].shape, out[0].ndim, w.dstride);
	for (int d = 0; d < w.ndim; d++) {
		int pd = n->p.transpose.perm[d];
		if (pd < 0 || pd >= in[0].ndim)
			return cuda_fail(&c->st, -EINVAL, "transpose: bad perm");
		w.sstride[d] = ist[pd];
	}
	CUDA_TRY(&c->st, cuda_launch_walk_copy(c->stream, tensor_dtype_size(in[0].dtype),
					       cuda_in(cn, in, 0), out[0].data, &w));
	return 0;
}

static int run_expand(struct cuda_ctx *c, const struct cuda_node *cn,
		      const struct tensor_view *in, struct tensor_view *out)
{
	struct cuda_walk w = { .ndim = out[0].ndim };

	memcpy(w.shape, out[0].shape, sizeof(w.shape));
	bcast_strides(&in[0], w.ndim, w.sstride);
	cuda_strides(out[0].shape, out[0].ndim, w.dstride);
	CUDA_TRY(&c->st, cuda_launch_walk_copy(c->stream, tensor_dtype_size(in[0].dtype),
					       cuda_in(cn, in, 0), out[0].data, &w));
	return 0;
}

static int run_gather(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		      const struct tensor_view *in, struct tensor_view *out)
{
	int nd = in[0].ndim;
	int64_t axis = axis_of(n->p.axes.axis, nd), outer = 1, inner = 1;

	if (axis < 0 || axis >= nd)
		return cuda_fail(&c->st, -EINVAL, "gather: axis out of range");
	for (int d = 0; d < axis; d++)
		outer *= in[0].shape[d];
	for (int d = (int)axis + 1; d < nd; d++)
		inner *= in[0].shape[d];
	CUDA_TRY(&c->st, cuda_launch_gather(c->stream, tensor_dtype_size(in[0].dtype),
					    cuda_in(cn, in, 0), cuda_in(cn, in, 1),
					    in[1].dtype == TENSOR_I64, out[0].data, outer,
					    in[0].shape[axis], tensor_numel(&in[1]), inner));
	return 0;
}

static int run_pad(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		   const struct tensor_view *in, struct tensor_view *out)
{
	const struct pad_params *p = &n->p.pad;
	int mode = p->mode == PADM_CONSTANT ? 0 : (p->mode == PADM_REFLECT ? 1 : 2);

	CUDA_TRY(&c->st, cuda_launch_pad(c->stream, mode, p->value, cuda_in(cn, in, 0),
					 out[0].data, in[0].ndim, in[0].shape, out[0].shape,
					 p->pads));
	return 0;
}

static int run_resize(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		      const struct tensor_view *in, struct tensor_view *out)
{
	const struct resize_params *p = &n->p.resize;
	int nd = in[0].ndim;
	struct cuda_resize r = {
		.mode = p->mode == RESIZE_LINEAR, .coord = (int)p->coord,
		.nearest = (int)p->nearest,
	};

	r.planes = 1;
	for (int d = 0; d < nd - 2; d++)
		r.planes *= in[0].shape[d];
	r.ih = in[0].shape[nd - 2], r.iw = in[0].shape[nd - 1];
	r.oh = out[0].shape[nd - 2], r.ow = out[0].shape[nd - 1];
	r.scale_h = p->scales[nd - 2] > 0.0f ? p->scales[nd - 2] : (float)r.oh / (float)r.ih;
	r.scale_w = p->scales[nd - 1] > 0.0f ? p->scales[nd - 1] : (float)r.ow / (float)r.iw;
	CUDA_TRY(&c->st, cuda_launch_resize(c->stream, cuda_in(cn, in, 0), out[0].data, &r));
	return 0;
}

static int run_reduce_mean(struct cuda_ctx *c, const struct cuda_node *cn,
			   const struct eng_node *n, const struct tensor_view *in,
			   struct tensor_view *out)
{
	const struct axes_params *p = &n->p.axes;
	int nd = in[0].ndim, red[TENSOR_MAX_DIMS] = { 0 };
	int64_t ist[TENSOR_MAX_DIMS];
	struct cuda_reduce r = { .outer = 1, .count = 1 };

	/* after shape inference axes[] is a per-axis mask (naxes = rank);
	 * naxes == 0 is noop_with_empty_axes: a copy */
	if (p->naxes == 0) {
		CUDA_TRY(&c->st, cudaMemcpyAsync(out[0].data, cuda_in(cn, in, 0), tensor_bytes(&in[0]),
						 cudaMemcpyDeviceToDevice, c->stream));
		return 0;
	}
	if (p->naxes != nd)
		return cuda_fail(&c->st, -EINVAL, "reducemean: axes not resolved to a mask");
	for (int d = 0; d < nd; d++)
		red[d] = p->axes[d] != 0;
	cuda_strides(in[0].shape, nd, ist);
	for (int d = 0; d < nd; d++) {
		if (red[d]) {
			r.red_shape[r.nred] = in[0].shape[d];
			r.red_stride[r.nred++] = ist[d];
			r.count *= in[0].shape[d];
		} else {
			r.keep_shape[r.nkeep] = in[0].shape[d];
			r.keep_stride[r.nkeep++] = ist[d];
			r.outer *= in[0].shape[d];
		}
	}
	CUDA_TRY(&c->st, cuda_launch_reduce_mean(c->stream, cuda_in(cn, in, 0), out[0].data, &r));
	return 0;
}

int cuda_layout_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct engine *e,
		    const struct eng_node *n, const struct tensor_view *in,
		    struct tensor_view *out)
{
	int64_t numel = tensor_numel(&out[0]);

	(void)e;
	switch (n->kind) {
	case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID:
	case OP_HARD_SIGMOID: case OP_HARD_SWISH: case OP_SILU: case OP_TANH:
	case OP_EXP: case OP_SQRT: case OP_NEG: case OP_ABS: case OP_ERF:
	case OP_LOG: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL: case OP_GELU:
		CUDA_TRY(&c->st, cuda_launch_unary(c->stream, cuda_act_of(n), cn->alpha, cn->beta,
						   cuda_in(cn, in, 0), out[0].data, numel));
		return 0;
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW:
		return run_binary(c, cn, n, in, out);
	case OP_BATCHNORM: {
		int64_t ch = in[0].shape[1], inner = numel / (in[0].shape[0] * ch);
		CUDA_TRY(&c->st, cuda_launch_channel_affine(c->stream, cuda_in(cn, in, 0),
							    out[0].data, cn->aux, cn->aux + ch,
							    ch, inner, numel));
		return 0;
	}
	case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL: {
		int64_t planes = in[0].shape[0] * in[0].shape[1];
		CUDA_TRY(&c->st, cuda_launch_global_pool(c->stream, cuda_in(cn, in, 0),
							 out[0].data, planes,
							 tensor_numel(&in[0]) / planes,
							 n->kind == OP_GLOBAL_MAXPOOL));
		return 0;
	}
	case OP_RESHAPE: case OP_IDENTITY:
		if (out[0].data != cuda_in(cn, in, 0))
			CUDA_TRY(&c->st, cudaMemcpyAsync(out[0].data, cuda_in(cn, in, 0),
							 tensor_bytes(&out[0]),
							 cudaMemcpyDeviceToDevice, c->stream));
		return 0;
	case OP_TRANSPOSE:
		return run_transpose(c, cn, n, in, out);
	case OP_CONCAT:
		return run_concat(c, cn, n, in, out);
	case OP_SPLIT:
		return run_split(c, cn, n, in, out);
	case OP_SLICE:
		return run_slice(c, cn, n, in, out);
	case OP_EXPAND:
		return run_expand(c, cn, in, out);
	case OP_GATHER:
		return run_gather(c, cn, n, in, out);
	case OP_PAD:
		return run_pad(c, cn, n, in, out);
	case OP_RESIZE:
		return run_resize(c, cn, n, in, out);
	case OP_CAST:
		if (in[0].dtype == out[0].dtype) {
			CUDA_TRY(&c->st, cudaMemcpyAsync(out[0].data, cuda_in(cn, in, 0),
							 tensor_bytes(&out[0]),
							 cudaMemcpyDeviceToDevice, c->stream));
			return 0;
		}
		CUDA_TRY(&c->st, cuda_launch_cast(c->stream, in[0].dtype, out[0].dtype,
						  cuda_in(cn, in, 0), out[0].data, numel));
		return 0;
	case OP_REDUCE_MEAN:
		return run_reduce_mean(c, cn, n, in, out);
	default:
		return cuda_fail(&c->st, -EOPNOTSUPP, "op %s has no CUDA kernel", n->op);
	}
}
