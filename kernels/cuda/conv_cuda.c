/* The CUDA backend's library-backed families: convolution (cuDNN, fused
 * bias + activation + residual), BatchNormalization, pooling and softmax
 * (cuDNN where its descriptors fit), Gemm and MatMul (cuBLAS). CPU twins:
 * kernels/conv.c, kernels/pool.c, kernels/gemm.c.
 *
 * Convolution, at prepare (once per node, i.e. per shape, the engine's
 * shapes being static):
 *   - descriptors from the engine's shapes; asymmetric pads (which cuDNN's
 *     legacy descriptor cannot express) are applied by a pad kernel into
 *     the workspace, the convolution then runs unpadded;
 *   - the algorithm from cudnnFindConvolutionForwardAlgorithmEx within
 *     CUDA_CONV_WS_LIMIT_BYTES, measured on scratch buffers;
 *   - ReLU (alone or after the residual sum) runs fused through
 *     cudnnConvolutionBiasActivationForward, after one trial call on the
 *     scratch buffers proves cuDNN takes that algorithm fused; any other
 *     activation, or a refused trial, runs the convolution then one
 *     epilogue kernel (bias + residual + activation in one pass). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda-host.h"

#define ALIGN256(x) (((x) + 255) & ~(size_t)255)

static const float one_f = 1.0f, zero_f = 0.0f;

void cuda_node_destroy_descriptors(struct cuda_node *cn)
{
	if (cn->xd)
		cudnnDestroyTensorDescriptor(cn->xd);
	if (cn->yd)
		cudnnDestroyTensorDescriptor(cn->yd);
	if (cn->bd)
		cudnnDestroyTensorDescriptor(cn->bd);
	if (cn->wd)
		cudnnDestroyFilterDescriptor(cn->wd);
	if (cn->cd)
		cudnnDestroyConvolutionDescriptor(cn->cd);
	if (cn->ad)
		cudnnDestroyActivationDescriptor(cn->ad);
	if (cn->pd)
		cudnnDestroyPoolingDescriptor(cn->pd);
	cn->xd = cn->yd = cn->bd = NULL;
	cn->wd = NULL;
	cn->cd = NULL;
	cn->ad = NULL;
	cn->pd = NULL;
}

/* NCHW dims of a rank-3 (1-D: H = 1) or rank-4 tensor. */
static void nchw(const struct eng_tensor *t, int d[4])
{
	if (t->ndim == 3) {
		d[0] = (int)t->shape[0], d[1] = (int)t->shape[1], d[2] = 1;
		d[3] = (int)t->shape[2];
	} else {
		for (int i = 0; i < 4; i++)
			d[i] = (int)t->shape[i];
	}
}

static int64_t numel_of_shape(const struct eng_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

static const char *node_name(const struct eng_node *n)
{
	return n->name ? n->name : n->op;
}

/* Time the algorithms on scratch buffers and keep the fastest that fits. */
static int find_algo(struct cuda_node *cn, const int xdim[4], const int ydim[4], int wcount,
		     const struct eng_node *n)
{
	struct cuda_status *st = &cn->sh->st;
	cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
	size_t xb = (size_t)xdim[0] * xdim[1] * xdim[2] * xdim[3] * sizeof(float);
	size_t yb = (size_t)ydim[0] * ydim[1] * ydim[2] * ydim[3] * sizeof(float);
	size_t ws_limit = CUDA_CONV_WS_LIMIT_BYTES;
	void *x = NULL, *y = NULL, *ws = NULL;
	int got = 0, rc = 0, found = 0;

	(void)wcount;
	CUDA_TRY_OUT(st, rc, cudaMalloc(&x, xb));
	CUDA_TRY_OUT(st, rc, cudaMalloc(&y, yb));
	CUDA_TRY_OUT(st, rc, cudaMemset(x, 0, xb));
	/* take what the device can spare, down to no workspace at all */
	while (ws_limit && cudaMalloc(&ws, ws_limit) != cudaSuccess) {
		(void)cudaGetLastError();
		ws = NULL;
		ws_limit /= 2;
		if (ws_limit < ((size_t)1 << 20))
			ws_limit = 0;
	}
	CUDNN_TRY_OUT(st, rc, cudnnFindConvolutionForwardAlgorithmEx(
		cn->sh->dnn, cn->xd, x, cn->wd, cn->cin[1], cn->cd, cn->yd, y,
		CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &got, perf, ws, ws_limit));
	for (int i = 0; i < got; i++) {
		if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_limit)
			continue;
		if (cn->sh->gemm_only && perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM &&
		    perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM &&
		    perf[i].algo != CUDNN_CONVOLUTION_FWD_ALGO_GEMM)
			continue;
		cn->algo = perf[i].algo;
		cn->algo_ws_bytes = perf[i].memory;
		/* the math type the timing used (TF32 only when allowed) */
		CUDNN_TRY_OUT(st, rc, cudnnSetConvolutionMathType(cn->cd, perf[i].mathType));
		found = 1;
		break;
	}
	if (!found) {
		rc = cuda_fail(st, -EIO, "conv %s: cudnnFind returned no usable algorithm",
			       node_name(n));
		goto out;
	}
	/* Can cuDNN run this algorithm fused? One trial call says. */
	if (cn->ad) {
		cudnnStatus_t s = cudnnConvolutionBiasActivationForward(
			cn->sh->dnn, &one_f, cn->xd, x, cn->wd, cn->cin[1], cn->cd, cn->algo, ws,
			cn->algo_ws_bytes, &zero_f, cn->yd, y, cn->bd,
			cn->cin[2] ? cn->cin[2] : cn->zero_bias, cn->ad, cn->yd, y);
		cudaError_t e = cudaDeviceSynchronize();

		if (e != cudaSuccess) {
			rc = cuda_fail_rt(st, e, "fused trial", __FILE__, __LINE__);
			goto out;
		}
		cn->fused = s == CUDNN_STATUS_SUCCESS;
	}
out:
	if (ws)
		cudaFree(ws);
	if (y)
		cudaFree(y);
	if (x)
		cudaFree(x);
	return rc;
}

int cuda_conv_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n)
{
	const struct conv_params *p = &n->p.conv;
	struct cuda_status *st = &cn->sh->st;
	const struct eng_tensor *xt = &e->t[n->in[0]], *wt = &e->t[n->in[1]];
	const struct eng_tensor *yt = &e->t[n->out[0]];
	int xd[4], yd[4], wd[4], cd[4];
	int pad_h, pad_w;
	int64_t pt = p->pads[0], pl = p->pads[1], pb = p->pads[2], pr = p->pads[3];

	nchw(xt, xd);
	nchw(yt, yd);
	nchw(wt, wd);
	cn->prepad = pt != pb || pl != pr;
	if (cn->prepad) {
		/* pad into the workspace: x becomes [N, C, H+t+b, W+l+r] */
		cn->pad_in[0] = xd[0], cn->pad_in[1] = xd[1];
		cn->pad_in[2] = xd[2], cn->pad_in[3] = xd[3];
		cn->pad_out[0] = xd[0], cn->pad_out[1] = xd[1];
		cn->pad_out[2] = xd[2] + pt + pb, cn->pad_out[3] = xd[3] + pl + pr;
		cn->pad_begin[0] = cn->pad_begin[1] = 0;
		cn->pad_begin[2] = pt, cn->pad_begin[3] = pl;
		if (cn->pad_out[2] > 0x7fffffff || cn->pad_out[3] > 0x7fffffff)
			return cuda_fail(st, -EINVAL, "conv %s: padded input too large", node_name(n));
		xd[2] = (int)cn->pad_out[2];
		xd[3] = (int)cn->pad_out[3];
		cn->prepad_bytes = ALIGN256((size_t)xd[0] * xd[1] * xd[2] * xd[3] * sizeof(float));
		pad_h = pad_w = 0;
	} else {
		pad_h = (int)pt;
		pad_w = (int)pl;
	}
	CUDNN_TRY(st, cudnnCreateTensorDescriptor(&cn->xd));
	CUDNN_TRY(st, cudnnCreateTensorDescriptor(&cn->yd));
	CUDNN_TRY(st, cudnnCreateTensorDescriptor(&cn->bd));
	CUDNN_TRY(st, cudnnCreateFilterDescriptor(&cn->wd));
	CUDNN_TRY(st, cudnnCreateConvolutionDescriptor(&cn->cd));
	CUDNN_TRY(st, cudnnSetTensor4dDescriptor(cn->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
						 xd[0], xd[1], xd[2], xd[3]));
	CUDNN_TRY(st, cudnnSetTensor4dDescriptor(cn->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
						 yd[0], yd[1], yd[2], yd[3]));
	CUDNN_TRY(st, cudnnSetTensor4dDescriptor(cn->bd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
						 1, yd[1], 1, 1));
	CUDNN_TRY(st, cudnnSetFilter4dDescriptor(cn->wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
						 wd[0], wd[1], wd[2], wd[3]));
	CUDNN_TRY(st, cudnnSetConvolution2dDescriptor(
		cn->cd, pad_h, pad_w, (int)p->stride[0], (int)p->stride[1], (int)p->dil[0],
		(int)p->dil[1], CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
	CUDNN_TRY(st, cudnnSetConvolutionGroupCount(cn->cd, (int)p->group));
	CUDNN_TRY(st, cudnnSetConvolutionMathType(cn->cd, cn->sh->tf32 ? CUDNN_DEFAULT_MATH
								       : CUDNN_FMA_MATH));
	CUDNN_TRY(st, cudnnGetConvolution2dForwardOutputDim(cn->cd, cn->xd, cn->wd, &cd[0],
							    &cd[1], &cd[2], &cd[3]));
	for (int i = 0; i < 4; i++)
		if (cd[i] != yd[i])
			return cuda_fail(st, -EINVAL,
					 "conv %s: cuDNN output %dx%dx%dx%d, engine %dx%dx%dx%d",
					 node_name(n), cd[0], cd[1], cd[2], cd[3], yd[0], yd[1],
					 yd[2], yd[3]);
	if (p->act.kind == ACT_RELU) {
		CUDNN_TRY(st, cudnnCreateActivationDescriptor(&cn->ad));
		CUDNN_TRY(st, cudnnSetActivationDescriptor(cn->ad, CUDNN_ACTIVATION_RELU,
							   CUDNN_PROPAGATE_NAN, 0.0));
		if (!p->has_bias) {
			CUDA_TRY(st, cudaMalloc((void **)&cn->zero_bias, (size_t)yd[1] * sizeof(float)));
			CUDA_TRY(st, cudaMemset(cn->zero_bias, 0, (size_t)yd[1] * sizeof(float)));
		}
	}
	{
		int rc = find_algo(cn, xd, yd, wd[0], n);
		if (rc)
			return rc;
	}
	cn->ws_bytes = cn->prepad_bytes + cn->algo_ws_bytes;
	return 0;
}

int cuda_conv_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		  const struct tensor_view *in, struct tensor_view *out)
{
	const struct conv_params *p = &n->p.conv;
	const void *x = cuda_in(cn, in, 0), *w = cuda_in(cn, in, 1);
	const float *bias = p->has_bias ? cuda_in(cn, in, 2) : NULL;
	const float *z = p->has_sum ? cuda_in(cn, in, 3) : NULL;
	float *y = out[0].data;
	char *ws = c->ws;

	if (cn->prepad) {
		CUDA_TRY(&c->st, cuda_launch_pad(c->stream, 0, 0.0f, x, (float *)ws, 4, cn->pad_in,
						 cn->pad_out, cn->pad_begin));
		x = ws;
	}
	ws = ws ? ws + cn->prepad_bytes : NULL;
	if (cn->fused) {
		/* y = relu(conv(x) + alpha2 * z + bias); z may alias y */
		CUDNN_TRY(&c->st, cudnnConvolutionBiasActivationForward(
			c->dnn, &one_f, cn->xd, x, cn->wd, w, cn->cd, cn->algo, ws,
			cn->algo_ws_bytes, z ? &one_f : &zero_f, cn->yd, z ? z : y, cn->bd,
			bias ? bias : cn->zero_bias, cn->ad, cn->yd, y));
		return 0;
	}
	/* A residual that aliases y is accumulated by the convolution itself
	 * (beta = 1), since writing y first would destroy it. */
	CUDNN_TRY(&c->st, cudnnConvolutionForward(c->dnn, &one_f, cn->xd, x, cn->wd, w, cn->cd,
						  cn->algo, ws, cn->algo_ws_bytes,
						  (z && z == y) ? &one_f : &zero_f, cn->yd, y));
	if (z == y)
		z = NULL;
	if (bias || z || p->act.kind != ACT_NONE) {
		int64_t ch = out[0].shape[1], numel = tensor_numel(&out[0]);
		CUDA_TRY(&c->st, cuda_launch_bias_act(c->stream, y, bias, z, ch, numel / out[0].shape[0] / ch,
						      numel, (enum cuda_act)p->act.kind,
						      p->act.alpha, p->act.beta));
	}
	return 0;
}

/* ---- BatchNormalization: per-channel affine, folded on the host ------- */

int cuda_bn_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n)
{
	const struct eng_tensor *x = &e->t[n->in[0]];
	const float *g = e->t[n->in[1]].data, *b = e->t[n->in[2]].data;
	const float *m = e->t[n->in[3]].data, *v = e->t[n->in[4]].data;
	int64_t ch = x->shape[1];
	float *host;
	int rc = 0;

	for (int i = 1; i <= 4; i++)
		if (numel_of_shape(&e->t[n->in[i]]) < ch)
			return cuda_fail(&cn->sh->st, -EINVAL, "batchnorm %s: parameter %d has fewer than %lld values",
					 node_name(n), i, (long long)ch);
	host = malloc(2 * (size_t)ch * sizeof(float));
	if (!host)
		return -ENOMEM;
	for (int64_t c = 0; c < ch; c++) {
		float s = g[c] / sqrtf(v[c] + n->p.bn.eps);
		host[c] = s;
		host[ch + c] = b[c] - m[c] * s;
	}
	CUDA_TRY_OUT(&cn->sh->st, rc, cudaMalloc((void **)&cn->aux, 2 * (size_t)ch * sizeof(float)));
	CUDA_TRY_OUT(&cn->sh->st, rc, cudaMemcpy(cn->aux, host, 2 * (size_t)ch * sizeof(float),
						 cudaMemcpyHostToDevice));
out:
	free(host);
	return rc;
}

/* ---- pooling ------------------------------------------------------------ */

static void pool_geometry(const struct eng_node *n, const int64_t *xs, const int64_t *ys,
			  struct cuda_pool *q)
{
	const struct pool_params *p = &n->p.pool;

	q->planes = xs[0] * xs[1];
	q->ih = xs[2], q->iw = xs[3], q->oh = ys[2], q->ow = ys[3];
	q->kh = p->kernel[0], q->kw = p->kernel[1];
	q->sh = p->stride[0] ? p->stride[0] : 1, q->sw = p->stride[1] ? p->stride[1] : 1;
	q->dh = p->dil[0] ? p->dil[0] : 1, q->dw = p->dil[1] ? p->dil[1] : 1;
	q->pt = p->pads[0], q->pl = p->pads[1], q->pb = p->pads[2], q->pr = p->pads[3];
	q->max = n->kind == OP_MAXPOOL;
	q->count_include_pad = p->count_include_pad;
}

int cuda_pool_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n)
{
	const struct eng_tensor *x = &e->t[n->in[0]], *y = &e->t[n->out[0]];
	struct cuda_status *st = &cn->sh->st;
	struct cuda_pool q;
	int od[4];
	cudnnPoolingMode_t mode;

	pool_geometry(n, x->shape, y->shape, &q);
	/* cuDNN's 2-D descriptor: symmetric pads, no dilation, floor sizes */
	if (q.pt != q.pb || q.pl != q.pr || q.dh != 1 || q.dw != 1)
		return 0;
	for (int i = 0; i < 4; i++)
		if (x->shape[i] > 0x7fffffff)
			return 0;
	mode = q.max ? CUDNN_POOLING_MAX
		     : (q.count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
					    : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING);
	CUDNN_TRY(st, cudnnCreateTensorDescriptor(&cn->xd));
	CUDNN_TRY(st, cudnnCreateTensorDescriptor(&cn->yd));
	CUDNN_TRY(st, cudnnCreatePoolingDescriptor(&cn->pd));
	CUDNN_TRY(st, cudnnSetPooling2dDescriptor(cn->pd, mode, CUDNN_PROPAGATE_NAN, (int)q.kh,
						  (int)q.kw, (int)q.pt, (int)q.pl, (int)q.sh,
						  (int)q.sw));
	CUDNN_TRY(st, cudnnSetTensor4dDescriptor(cn->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
						 (int)x->shape[0], (int)x->shape[1],
						 (int)x->shape[2], (int)x->shape[3]));
	CUDNN_TRY(st, cudnnGetPooling2dForwardOutputDim(cn->pd, cn->xd, &od[0], &od[1], &od[2],
							&od[3]));
	for (int i = 0; i < 4; i++)
		if (od[i] != y->shape[i])
			return 0;	/* ceil_mode made it larger: the hand kernel */
	CUDNN_TRY(st, cudnnSetTensor4dDescriptor(cn->yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
						 od[0], od[1], od[2], od[3]));
	cn->use_cudnn = 1;
	return 0;
}

int cuda_pool_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		  const struct tensor_view *in, struct tensor_view *out)
{
	struct cuda_pool q;

	if (cn->use_cudnn) {
		CUDNN_TRY(&c->st, cudnnPoolingForward(c->dnn, cn->pd, &one_f, cn->xd,
						      cuda_in(cn, in, 0), &zero_f, cn->yd,
						      out[0].data));
		return 0;
	}
	pool_geometry(n, in[0].shape, out[0].shape, &q);
	CUDA_TRY(&c->st, cuda_launch_pool(c->stream, cuda_in(cn, in, 0), out[0].data, &q));
	return 0;
}

/* ---- softmax: cuDNN's CHANNEL mode over [outer, axis, inner, 1] -------- */

int cuda_softmax_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n)
{
	const struct eng_tensor *x = &e->t[n->in[0]];
	const struct softmax_params *p = &n->p.softmax;
	struct cuda_status *st = &cn->sh->st;
	int64_t axis = p->axis < 0 ? p->axis + x->ndim : p->axis;
	int64_t outer = 1, mid = 1, inner = 1;

	if (axis < 0 || axis >= x->ndim)
		return cuda_fail(st, -EINVAL, "softmax %s: axis %lld out of range", node_name(n),
				 (long long)p->axis);
	for (int i = 0; i < x->ndim; i++) {
		if (i < axis)
			outer *= x->shape[i];
		else if (i == axis || p->legacy)
			mid *= x->shape[i];	/* opset < 13: 2-D at axis */
		else
			inner *= x->shape[i];
	}
	if (outer > 0x7fffffff || mid > 0x7fffffff || inner > 0x7fffffff)
		return cuda_fail(st, -EINVAL, "softmax %s: too large for cuDNN", node_name(n));
	CUDNN_TRY(st, cudnnCreateTensorDescriptor(&cn->xd));
	CUDNN_TRY(st, cudnnSetTensor4dDescriptor(cn->xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
						 (int)outer, (int)mid, (int)inner, 1));
	return 0;
}

int cuda_softmax_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		     const struct tensor_view *in, struct tensor_view *out)
{
	CUDNN_TRY(&c->st, cudnnSoftmaxForward(c->dnn,
					      n->p.softmax.log ? CUDNN_SOFTMAX_LOG
							       : CUDNN_SOFTMAX_ACCURATE,
					      CUDNN_SOFTMAX_MODE_CHANNEL, &one_f, cn->xd,
					      cuda_in(cn, in, 0), &zero_f, cn->xd, out[0].data));
	return 0;
}

/* ---- Gemm / MatMul through cuBLAS (column-major: compute Y^T) ---------- */

int cuda_gemm_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		  const struct tensor_view *in, struct tensor_view *out)
{
	const struct gemm_params *p = &n->p.gemm;
	const float *a = cuda_in(cn, in, 0), *b = cuda_in(cn, in, 1);
	float *y = out[0].data;
	int m = (int)(p->trans_a ? in[0].shape[1] : in[0].shape[0]);
	int k = (int)(p->trans_a ? in[0].shape[0] : in[0].shape[1]);
	int nn = (int)(p->trans_b ? in[1].shape[0] : in[1].shape[1]);
	float beta = 0.0f;

	if (n->n_in > 2 && n->in[2] >= 0 && p->beta != 0.0f) {
		/* broadcast C into Y, then Y = alpha A B + beta Y */
		const struct tensor_view *cv = &in[2];
		struct cuda_walk w = { .ndim = 2, .shape = { m, nn } };
		int64_t cs[2] = { 1, 1 };

		if (cv->ndim == 2) {
			cs[0] = cv->shape[0] == 1 ? 0 : cv->shape[1];
			cs[1] = cv->shape[1] == 1 ? 0 : 1;
		} else if (cv->ndim == 1) {
			cs[0] = 0;
			cs[1] = cv->shape[0] == 1 ? 0 : 1;
		} else {
			cs[0] = cs[1] = 0;
		}
		w.sstride[0] = cs[0], w.sstride[1] = cs[1];
		w.dstride[0] = nn, w.dstride[1] = 1;
		CUDA_TRY(&c->st, cuda_launch_walk_copy(c->stream, 4, cuda_in(cn, in, 2), y, &w));
		beta = p->beta;
	}
	CUBLAS_TRY(&c->st, cublasSgemm(c->blas, p->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
				       p->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, nn, m, k, &p->alpha,
				       b, p->trans_b ? k : nn, a, p->trans_a ? m : k, &beta, y, nn));
	return 0;
}

int cuda_matmul_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		    const struct tensor_view *in, struct tensor_view *out)
{
	const struct tensor_view *av = &in[0], *bv = &in[1];
	const float *a = cuda_in(cn, in, 0), *b = cuda_in(cn, in, 1);
	int64_t ba = 1, bb = 1;
	int64_t m = av->shape[av->ndim - 2], k = av->shape[av->ndim - 1];
	int64_t nn = bv->shape[bv->ndim - 1];

	(void)n;
	for (int i = 0; i < av->ndim - 2; i++)
		ba *= av->shape[i];
	for (int i = 0; i < bv->ndim - 2; i++)
		bb *= bv->shape[i];
	if (bb == 1) {
		/* B shared: one GEMM over the stacked rows of A */
		CUBLAS_TRY(&c->st, cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)nn,
					       (int)(ba * m), (int)k, &one_f, b, (int)nn, a, (int)k,
					       &zero_f, out[0].data, (int)nn));
		return 0;
	}
	CUBLAS_TRY(&c->st, cublasSgemmStridedBatched(
		c->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)nn, (int)m, (int)k, &one_f, b, (int)nn,
		k * nn, a, (int)k, ba == 1 ? 0 : m * k, &zero_f, out[0].data, (int)nn, m * nn,
		(int)bb));
	return 0;
}
