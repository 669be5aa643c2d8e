/* The CUDA/cuDNN backend (issue 8): the struct backend_ops table, the
 * per-inference context (stream, cuDNN and cuBLAS handles, workspace,
 * pinned staging), device memory, prepare/release, supports() and the one
 * dispatch switch. The op families live in conv_cuda.c (cuDNN, cuBLAS) and
 * layout_cuda.c (hand kernels, *.cu).
 *
 * Errors: every CUDA, cuDNN and cuBLAS status goes through CUDA_TRY /
 * CUDNN_TRY / CUBLAS_TRY, which record "expression at file:line: reason"
 * in the context (or, during prepare, in the engine's shared state) and
 * return -EIO. A sticky CUDA error marks the context unhealthy; from then
 * on every call fails fast with -EIO and backend_cuda_healthy() says 0, so
 * the caller can fall back to the CPU backend. Nothing here logs, exits or
 * aborts. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda-host.h"
#include "cuda.h"

_Static_assert((int)CUDA_ACT_CEIL == (int)ACT_CEIL && (int)CUDA_ACT_SILU == (int)ACT_SILU &&
	       (int)CUDA_ACT_CLIP == (int)ACT_CLIP &&
	       (int)CUDA_ACT_GELU_TANH == (int)ACT_GELU_TANH, "enum cuda_act mirrors enum act_kind");

/* ---- status ------------------------------------------------------------- */

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Errors after which the CUDA context is unusable until the process ends. */
static int sticky(cudaError_t rc)
{
	switch (rc) {
	case cudaErrorIllegalAddress:
	case cudaErrorLaunchFailure:
	case cudaErrorHardwareStackError:
	case cudaErrorIllegalInstruction:
	case cudaErrorMisalignedAddress:
	case cudaErrorInvalidAddressSpace:
	case cudaErrorInvalidPc:
	case cudaErrorAssert:
	case cudaErrorECCUncorrectable:
	case cudaErrorLaunchTimeout:
	case cudaErrorUnknown:
	case cudaErrorNoDevice:
	case cudaErrorInsufficientDriver:
	case cudaErrorDevicesUnavailable:
	case cudaErrorCudartUnloading:
	case cudaErrorContextIsDestroyed:
		return 1;
	default:
		return 0;
	}
}

static void record(struct cuda_status *st, const char *expr, const char *file, int line,
		   const char *why)
{
	if (!st)
		return;
	st->failures++;
	snprintf(st->msg, sizeof(st->msg), "%s at %s:%d: %s", expr, base_name(file), line, why);
}

/* After a library failure, look for a sticky CUDA error underneath it. */
static void probe_sticky(struct cuda_status *st)
{
	cudaError_t rc = cudaPeekAtLastError();

	if (rc != cudaSuccess && sticky(rc) && st)
		st->unhealthy = 1;
	if (rc != cudaSuccess && !sticky(rc))
		(void)cudaGetLastError();	/* clear a non-sticky one */
}

int cuda_fail_rt(struct cuda_status *st, cudaError_t rc, const char *expr, const char *file,
		 int line)
{
	char why[128];

	snprintf(why, sizeof(why), "%s (%s)", cudaGetErrorName(rc), cudaGetErrorString(rc));
	record(st, expr, file, line, why);
	if (sticky(rc)) {
		if (st)
			st->unhealthy = 1;
	} else {
		(void)cudaGetLastError();
	}
	return rc == cudaErrorMemoryAllocation ? -ENOMEM : -EIO;
}

int cuda_fail_dnn(struct cuda_status *st, cudnnStatus_t rc, const char *expr, const char *file,
		  int line)
{
	char why[160], detail[96] = "";

#if CUDNN_MAJOR >= 9	/* JetPack 5 (Xavier) ships cuDNN 8, without it */
	cudnnGetLastErrorString(detail, sizeof(detail));
#endif
	snprintf(why, sizeof(why), "%s%s%s", cudnnGetErrorString(rc), detail[0] ? ": " : "",
		 detail);
	record(st, expr, file, line, why);
	probe_sticky(st);
	return rc == CUDNN_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO;
}

int cuda_fail_blas(struct cuda_status *st, cublasStatus_t rc, const char *expr,
		   const char *file, int line)
{
	record(st, expr, file, line, cublasGetStatusString(rc));
	probe_sticky(st);
	return rc == CUBLAS_STATUS_ALLOC_FAILED ? -ENOMEM : -EIO;
}

int cuda_fail(struct cuda_status *st, int err, const char *fmt, ...)
{
	va_list ap;

	if (st) {
		st->failures++;
		va_start(ap, fmt);
		vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
		va_end(ap);
	}
	return err;
}

int backend_cuda_device_count(void)
{
	int n = 0;

	if (cudaGetDeviceCount(&n) != cudaSuccess) {
		(void)cudaGetLastError();
		return -ENODEV;
	}
	return n > 0 ? n : -ENODEV;
}

int backend_cuda_healthy(const void *bctx)
{
	const struct cuda_ctx *c = bctx;
	return c && !c->st.unhealthy;
}

/* backend = auto: a device answers and cuDNN gives a handle on it. */
static int backend_cuda_available(char *why, size_t whylen)
{
	cudnnHandle_t h = NULL;
	cudnnStatus_t st;

	if (backend_cuda_device_count() < 0) {
		snprintf(why, whylen, "no CUDA device answers");
		return -ENODEV;
	}
	if (cudaSetDevice(0) != cudaSuccess) {
		snprintf(why, whylen, "cudaSetDevice(0): %s", cudaGetErrorString(cudaGetLastError()));
		return -ENODEV;
	}
	if ((st = cudnnCreate(&h)) != CUDNN_STATUS_SUCCESS) {
		snprintf(why, whylen, "cuDNN does not load: %s", cudnnGetErrorString(st));
		return -ENODEV;
	}
	cudnnDestroy(h);
	return 0;
}

const char *backend_cuda_last_error(const void *bctx)
{
	const struct cuda_ctx *c = bctx;
	return c ? c->st.msg : "";
}

/* TF32 tensor cores for float32 convolutions and GEMMs: off unless
 * SPLITD_CUDA_TF32=1 (error: ~1e-3 relative, README.md). */
static int want_tf32(void)
{
	const char *s = getenv("SPLITD_CUDA_TF32");
	return s && s[0] == '1';
}

/* SPLITD_CUDA_CONV_ALGO=gemm: convolutions only by cuDNN's GEMM-family
 * algorithms (IMPLICIT_GEMM, IMPLICIT_PRECOMP_GEMM, GEMM), which compute
 * every output as a plain sum of products in some order: the arithmetic
 * tests/errbound.h models, so test_cuda can derive its tolerances. FFT and
 * Winograd transform the operands, an error the model does not cover. */
static int want_gemm_only(void)
{
	const char *s = getenv("SPLITD_CUDA_CONV_ALGO");
	return s && strcmp(s, "gemm") == 0;
}

/* ---- supports ----------------------------------------------------------- */

static const struct eng_tensor *tin(const struct engine *e, const struct eng_node *n, int i)
{
	if (i >= n->n_in || n->in[i] < 0 || n->in[i] >= e->nt)
		return NULL;
	return &e->t[n->in[i]];
}

static const struct eng_tensor *tout(const struct engine *e, const struct eng_node *n, int i)
{
	if (i >= n->n_out || n->out[i] < 0 || n->out[i] >= e->nt)
		return NULL;
	return &e->t[n->out[i]];
}

static int is_f32(const struct eng_tensor *t)
{
	return t && t->dtype == TENSOR_F32;
}

static int elem_ok(const struct eng_tensor *t)
{
	size_t s = t ? tensor_dtype_size(t->dtype) : 0;
	return s == 1 || s == 2 || s == 4 || s == 8;
}

static int const_f32(const struct eng_tensor *t)
{
	return is_f32(t) && t->is_const && t->data;
}

static int64_t numel_of(const struct eng_tensor *t)
{
	int64_t n = 1;
	for (int i = 0; i < t->ndim; i++)
		n *= t->shape[i];
	return n;
}

static int fits_int(int64_t v)
{
	return v >= 0 && v <= 0x7fffffff;
}

static int supports_conv(const struct engine *e, const struct eng_node *n)
{
	const struct conv_params *p = &n->p.conv;
	const struct eng_tensor *x = tin(e, n, 0), *w = tin(e, n, 1), *y = tout(e, n, 0);

	if (!is_f32(x) || !const_f32(w) || !is_f32(y) || p->group < 1)
		return 0;
	if (p->spatial == 2 && (x->ndim != 4 || w->ndim != 4 || y->ndim != 4))
		return 0;
	/* 1-D runs as 2-D with H = 1: the H slot must be trivial */
	if (p->spatial == 1 && (x->ndim != 3 || w->ndim != 3 || y->ndim != 3 ||
				p->kernel[0] != 1 || p->stride[0] != 1 ||
				p->pads[0] != 0 || p->pads[2] != 0))
		return 0;
	if (p->spatial != 1 && p->spatial != 2)
		return 0;
	if (p->has_bias && !const_f32(tin(e, n, 2)))
		return 0;
	if (p->has_sum && !is_f32(tin(e, n, 3)))
		return 0;
	if ((int)p->act.kind < 0 || (int)p->act.kind >= CUDA_ACT_COUNT)
		return 0;
	for (int i = 0; i < 4; i++)
		if (p->pads[i] < 0)
			return 0;
	for (int i = 0; i < x->ndim; i++)
		if (!fits_int(x->shape[i]) || !fits_int(y->shape[i]))
			return 0;
	return 1;
}

static int supports_matmul(const struct engine *e, const struct eng_node *n)
{
	const struct eng_tensor *a = tin(e, n, 0), *b = tin(e, n, 1), *y = tout(e, n, 0);
	int64_t ba = 1, bb = 1;

	if (!is_f32(a) || !is_f32(b) || !is_f32(y) || a->ndim < 2 || b->ndim < 2)
		return 0;
	for (int i = 0; i < a->ndim - 2; i++)
		ba *= a->shape[i];
	for (int i = 0; i < b->ndim - 2; i++)
		bb *= b->shape[i];
	/* batches equal (same dims) or one side unbatched: cuBLAS strides */
	if (ba != 1 && bb != 1) {
		if (a->ndim != b->ndim)
			return 0;
		for (int i = 0; i < a->ndim - 2; i++)
			if (a->shape[i] != b->shape[i])
				return 0;
	}
	return fits_int(a->shape[a->ndim - 2] * (bb == 1 ? ba : 1)) &&
	       fits_int(a->shape[a->ndim - 1]) && fits_int(b->shape[b->ndim - 1]);
}

static int supports_resize(const struct engine *e, const struct eng_node *n)
{
	const struct resize_params *p = &n->p.resize;
	const struct eng_tensor *x = tin(e, n, 0), *y = tout(e, n, 0);

	if (!is_f32(x) || !is_f32(y) || x->ndim != y->ndim || x->ndim < 3 || x->ndim > 4)
		return 0;
	if (p->mode != RESIZE_NEAREST && p->mode != RESIZE_LINEAR)
		return 0;
	if (p->coord == COORD_TF_CROP_AND_RESIZE || (int)p->coord < 0 ||
	    (int)p->coord > COORD_TF_HALF_PIXEL_FOR_NN)
		return 0;
	/* only the spatial axes are resized */
	for (int i = 0; i < x->ndim - 2; i++)
		if (x->shape[i] != y->shape[i])
			return 0;
	return 1;
}

static int supports_cast(const struct engine *e, const struct eng_node *n)
{
	const struct eng_tensor *x = tin(e, n, 0), *y = tout(e, n, 0);
	int from_ok, to_ok;

	if (!x || !y)
		return 0;
	if (x->dtype == y->dtype)
		return elem_ok(x);
	from_ok = x->dtype == TENSOR_F32 || x->dtype == TENSOR_I32 || x->dtype == TENSOR_I64;
	to_ok = y->dtype == TENSOR_F32 || y->dtype == TENSOR_I32 || y->dtype == TENSOR_I64;
	return from_ok && to_ok;
}

static int supports_reduce(const struct engine *e, const struct eng_node *n)
{
	const struct axes_params *p = &n->p.axes;
	const struct eng_tensor *x = tin(e, n, 0);

	if (!is_f32(x) || !is_f32(tout(e, n, 0)))
		return 0;
	/* shape inference turned axes into a per-axis mask (naxes = rank), or
	 * naxes = 0 for noop_with_empty_axes */
	return p->naxes == 0 || p->naxes == x->ndim;
}

static int backend_cuda_supports(const struct engine *e, const struct eng_node *n)
{
	const struct eng_tensor *x = tin(e, n, 0), *y = tout(e, n, 0);

	if (!e || !n || !x || !y || n->dead)
		return 0;
	for (int i = 0; i < n->n_out; i++) {
		const struct eng_tensor *o = tout(e, n, i);
		if (!o || !o->shape_known)
			return 0;
	}
	switch (n->kind) {
	case OP_CONV:
		return supports_conv(e, n);
	case OP_BATCHNORM:
		return is_f32(x) && is_f32(y) && x->ndim >= 2 && n->n_in >= 5 &&
		       const_f32(tin(e, n, 1)) && const_f32(tin(e, n, 2)) &&
		       const_f32(tin(e, n, 3)) && const_f32(tin(e, n, 4));
	case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID:
	case OP_HARD_SIGMOID: case OP_HARD_SWISH: case OP_SILU: case OP_TANH:
	case OP_EXP: case OP_SQRT: case OP_NEG: case OP_ABS: case OP_ERF:
	case OP_LOG: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL: case OP_GELU:
		if (n->kind == OP_CLIP)
			for (int i = 1; i < n->n_in && i < 3; i++)
				if (n->in[i] >= 0 && !const_f32(tin(e, n, i)))
					return 0;
		return is_f32(x) && is_f32(y) && numel_of(x) == numel_of(y);
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW:
		return is_f32(x) && is_f32(tin(e, n, 1)) && is_f32(y) &&
		       x->ndim <= y->ndim && tin(e, n, 1)->ndim <= y->ndim;
	case OP_MAXPOOL: case OP_AVGPOOL:
		return is_f32(x) && is_f32(y) && x->ndim == 4 && n->p.pool.spatial == 2 &&
		       n->n_out == 1;
	case OP_GLOBAL_AVGPOOL: case OP_GLOBAL_MAXPOOL:
		return is_f32(x) && is_f32(y) && x->ndim >= 3;
	case OP_GEMM: {
		const struct eng_tensor *b = tin(e, n, 1), *cc = tin(e, n, 2);
		return is_f32(x) && is_f32(b) && is_f32(y) && x->ndim == 2 && b->ndim == 2 &&
		       (!cc || (is_f32(cc) && cc->ndim <= 2)) && fits_int(x->shape[0]) &&
		       fits_int(x->shape[1]) && fits_int(b->shape[0]) && fits_int(b->shape[1]);
	}
	case OP_MATMUL:
		return supports_matmul(e, n);
	case OP_RESHAPE: case OP_IDENTITY:
		return x->bytes == y->bytes && x->dtype == y->dtype;
	case OP_TRANSPOSE:
		return elem_ok(x) && n->p.transpose.nperm == x->ndim;
	case OP_CONCAT:
		for (int i = 0; i < n->n_in; i++)
			if (!tin(e, n, i) || tin(e, n, i)->dtype != y->dtype)
				return 0;
		return elem_ok(y);
	case OP_SPLIT: case OP_SLICE: case OP_EXPAND:
		return elem_ok(x) && x->dtype == y->dtype && x->ndim <= y->ndim;
	case OP_GATHER: {
		const struct eng_tensor *ix = tin(e, n, 1);
		return elem_ok(x) && x->dtype == y->dtype && ix &&
		       (ix->dtype == TENSOR_I64 || ix->dtype == TENSOR_I32) && ix->is_const && ix->data;
	}
	case OP_RESIZE:
		return supports_resize(e, n);
	case OP_SOFTMAX:
		return is_f32(x) && is_f32(y) && x->ndim >= 1;
	case OP_PAD:
		return is_f32(x) && is_f32(y) && x->ndim == y->ndim &&
		       (int)n->p.pad.mode >= PADM_CONSTANT && n->p.pad.mode <= PADM_EDGE;
	case OP_CAST:
		return supports_cast(e, n);
	case OP_REDUCE_MEAN:
		return supports_reduce(e, n);
	default:
		/* ConvTranspose and the shape-only ops: not on this backend */
		return 0;
	}
}

/* ---- prepare / release -------------------------------------------------- */

/* The node's prepared state, when this backend prepared it. */
static struct cuda_node *node_of(const struct engine *e, const struct eng_node *n)
{
	struct cuda_node *cn = n->packed;

	if (!cn || !backend_cuda_supports(e, n) || cn->magic != CUDA_NODE_MAGIC)
		return NULL;
	return cn;
}

static void shared_put(struct cuda_shared *sh)
{
	if (!sh || --sh->refs > 0)
		return;
	if (sh->dnn)
		cudnnDestroy(sh->dnn);
	free(sh);
}

/* The engine-wide prepare state, created by the first node that needs it. */
static int shared_get(struct engine *e, struct cuda_node *cn)
{
	struct cuda_shared *sh = NULL;
	int rc = 0;

	for (int i = 0; i < e->nn && !sh; i++) {
		struct cuda_node *o = node_of(e, &e->n[i]);
		if (o && o != cn && o->sh)
			sh = o->sh;
	}
	if (sh) {
		sh->refs++;
		cn->sh = sh;
		return 0;
	}
	if (backend_cuda_device_count() < 0)
		return -ENODEV;
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh->refs = 1;
	sh->tf32 = want_tf32();
	sh->gemm_only = want_gemm_only();
	CUDA_TRY_OUT(&sh->st, rc, cudaSetDevice(sh->device));
	CUDNN_TRY_OUT(&sh->st, rc, cudnnCreate(&sh->dnn));
	cn->sh = sh;
	sh = NULL;
out:
	if (sh)
		shared_put(sh);
	return rc;
}

static int upload_constants(struct cuda_node *cn, const struct engine *e,
			    const struct eng_node *n)
{
	for (int i = 0; i < n->n_in; i++) {
		const struct eng_tensor *t = tin(e, n, i);

		if (!t || !t->is_const || !t->data || !t->bytes)
			continue;
		CUDA_TRY(&cn->sh->st, cudaMalloc(&cn->cin[i], t->bytes));
		CUDA_TRY(&cn->sh->st, cudaMemcpy(cn->cin[i], t->data, t->bytes,
						 cudaMemcpyHostToDevice));
	}
	return 0;
}

static void backend_cuda_release(struct eng_node *n)
{
	struct cuda_node *cn = n ? n->packed : NULL;

	if (!cn || cn->magic != CUDA_NODE_MAGIC)
		return;
	for (int i = 0; i < ENG_MAX_IO; i++)
		if (cn->cin[i])
			cudaFree(cn->cin[i]);
	if (cn->zero_bias)
		cudaFree(cn->zero_bias);
	if (cn->aux)
		cudaFree(cn->aux);
	cuda_node_destroy_descriptors(cn);
	shared_put(cn->sh);
	cn->magic = 0;
	free(cn);
	n->packed = NULL;
}

static int backend_cuda_prepare(struct engine *e, struct eng_node *n)
{
	struct cuda_node *cn;
	int rc;

	if (!backend_cuda_supports(e, n))
		return -EOPNOTSUPP;
	cn = calloc(1, sizeof(*cn));
	if (!cn)
		return -ENOMEM;
	cn->magic = CUDA_NODE_MAGIC;
	cn->algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
	n->packed = cn;
	n->work_bytes = 0;	/* device scratch comes from the context */
	rc = shared_get(e, cn);
	if (rc)
		goto out;
	rc = upload_constants(cn, e, n);
	if (rc)
		goto out;
	cn->alpha = n->p.act.alpha;
	cn->beta = n->p.act.beta;
	switch (n->kind) {
	case OP_CONV:
		rc = cuda_conv_prepare(cn, e, n);
		break;
	case OP_BATCHNORM:
		rc = cuda_bn_prepare(cn, e, n);
		break;
	case OP_MAXPOOL: case OP_AVGPOOL:
		rc = cuda_pool_prepare(cn, e, n);
		break;
	case OP_SOFTMAX:
		rc = cuda_softmax_prepare(cn, e, n);
		break;
	case OP_CLIP:
		/* opset >= 11 takes the bounds as (constant) inputs */
		if (n->n_in > 1 && n->in[1] >= 0)
			cn->alpha = *(const float *)tin(e, n, 1)->data;
		if (n->n_in > 2 && n->in[2] >= 0)
			cn->beta = *(const float *)tin(e, n, 2)->data;
		break;
	default:
		break;
	}
out:
	if (rc) {
		/* keep the reason where a later context can show it */
		backend_cuda_release(n);
	}
	return rc;
}

/* ---- context ------------------------------------------------------------ */

static void backend_cuda_ctx_free(void *bctx)
{
	struct cuda_ctx *c = bctx;

	if (!c)
		return;
	if (c->stream)
		cudaStreamSynchronize(c->stream);
	if (c->blas)
		cublasDestroy(c->blas);
	if (c->dnn)
		cudnnDestroy(c->dnn);
	if (c->ws)
		cudaFree(c->ws);
	if (c->pack)
		cudaFree(c->pack);
	if (c->flag)
		cudaFree(c->flag);
	if (c->stage)
		cudaFreeHost(c->stage);
	if (c->stage_free)
		cudaEventDestroy(c->stage_free);
	if (c->stream)
		cudaStreamDestroy(c->stream);
	free(c);
}

static int backend_cuda_ctx_new(const struct engine *e, void **out)
{
	struct cuda_ctx *c;
	size_t ws = 0;
	int rc = 0;

	*out = NULL;
	if (backend_cuda_device_count() < 0)
		return -ENODEV;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->tf32 = want_tf32();
	for (int i = 0; e && i < e->nn; i++) {
		const struct cuda_node *cn = node_of(e, &e->n[i]);
		if (cn && cn->ws_bytes > ws)
			ws = cn->ws_bytes;
	}
	CUDA_TRY_OUT(&c->st, rc, cudaSetDevice(c->device));
	CUDA_TRY_OUT(&c->st, rc, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
	CUDA_TRY_OUT(&c->st, rc, cudaEventCreateWithFlags(&c->stage_free, cudaEventDisableTiming));
	CUDNN_TRY_OUT(&c->st, rc, cudnnCreate(&c->dnn));
	CUDNN_TRY_OUT(&c->st, rc, cudnnSetStream(c->dnn, c->stream));
	{
		cublasStatus_t b = cublasCreate(&c->blas);
		if (b != CUBLAS_STATUS_SUCCESS) {
			rc = cuda_fail_blas(&c->st, b, "cublasCreate", __FILE__, __LINE__);
			goto out;
		}
		b = cublasSetStream(c->blas, c->stream);
		if (b == CUBLAS_STATUS_SUCCESS)
			b = cublasSetMathMode(c->blas, c->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
							       : CUBLAS_DEFAULT_MATH);
		if (b != CUBLAS_STATUS_SUCCESS) {
			rc = cuda_fail_blas(&c->st, b, "cublasSetStream/MathMode", __FILE__,
					    __LINE__);
			goto out;
		}
	}
	if (ws) {
		CUDA_TRY_OUT(&c->st, rc, cudaMalloc(&c->ws, ws));
		c->ws_bytes = ws;
	}
	CUDA_TRY_OUT(&c->st, rc, cudaMalloc((void **)&c->flag, 2 * sizeof(uint32_t)));
	*out = c;
	c = NULL;
out:
	backend_cuda_ctx_free(c);
	return rc;
}

/* ---- memory ------------------------------------------------------------- */

static void *backend_cuda_buf_alloc(void *bctx, size_t bytes)
{
	struct cuda_ctx *c = bctx;
	void *p = NULL;
	cudaError_t rc;

	if (!c || c->st.unhealthy)
		return NULL;
	rc = cudaMalloc(&p, bytes ? bytes : 256);
	if (rc != cudaSuccess) {
		cuda_fail_rt(&c->st, rc, "cudaMalloc(arena)", __FILE__, __LINE__);
		return NULL;
	}
	return p;
}

static void backend_cuda_buf_free(void *bctx, void *p)
{
	(void)bctx;
	if (p)
		cudaFree(p);
}

/* Make sure the pinned staging buffer holds `bytes` (capped), after the last
 * copy out of it has finished. Returns the usable size or 0 with st set. */
static size_t stage_reserve(struct cuda_ctx *c, size_t bytes, int *rc)
{
	size_t want = bytes < CUDA_STAGE_MAX_BYTES ? bytes : CUDA_STAGE_MAX_BYTES;
	cudaError_t r;

	*rc = 0;
	r = cudaEventSynchronize(c->stage_free);
	if (r != cudaSuccess) {
		*rc = cuda_fail_rt(&c->st, r, "cudaEventSynchronize(stage)", __FILE__, __LINE__);
		return 0;
	}
	if (c->stage_bytes >= want)
		return c->stage_bytes < bytes ? c->stage_bytes : bytes;
	if (c->stage)
		cudaFreeHost(c->stage);
	c->stage = NULL;
	c->stage_bytes = 0;
	r = cudaHostAlloc(&c->stage, want, cudaHostAllocDefault);
	if (r != cudaSuccess) {
		c->stage = NULL;
		*rc = cuda_fail_rt(&c->st, r, "cudaHostAlloc(stage)", __FILE__, __LINE__);
		return 0;
	}
	c->stage_bytes = want;
	return want;
}

static int backend_cuda_upload(void *bctx, void *dst, const void *src, size_t bytes)
{
	struct cuda_ctx *c = bctx;
	size_t done = 0;
	int rc = 0;

	if (!c || c->st.unhealthy)
		return -EIO;
	while (done < bytes) {
		size_t chunk = stage_reserve(c, bytes - done, &rc);
		if (!chunk)
			return rc ? rc : -EIO;
		memcpy(c->stage, (const char *)src + done, chunk);
		CUDA_TRY(&c->st, cudaMemcpyAsync((char *)dst + done, c->stage, chunk,
						 cudaMemcpyHostToDevice, c->stream));
		/* the next writer of stage waits for this copy, not for the stream */
		CUDA_TRY(&c->st, cudaEventRecord(c->stage_free, c->stream));
		done += chunk;
	}
	return 0;
}

static int backend_cuda_download(void *bctx, void *dst, const void *src, size_t bytes)
{
	struct cuda_ctx *c = bctx;
	size_t done = 0;
	int rc = 0;

	if (!c || c->st.unhealthy)
		return -EIO;
	while (done < bytes) {
		size_t chunk = stage_reserve(c, bytes - done, &rc);
		if (!chunk)
			return rc ? rc : -EIO;
		CUDA_TRY(&c->st, cudaMemcpyAsync(c->stage, (const char *)src + done, chunk,
						 cudaMemcpyDeviceToHost, c->stream));
		CUDA_TRY(&c->st, cudaEventRecord(c->stage_free, c->stream));
		/* waits for every kernel queued before: the segment's end */
		CUDA_TRY(&c->st, cudaEventSynchronize(c->stage_free));
		memcpy((char *)dst + done, c->stage, chunk);
		done += chunk;
	}
	return 0;
}

static int backend_cuda_synchronize(void *bctx)
{
	struct cuda_ctx *c = bctx;

	if (!c || c->st.unhealthy)
		return -EIO;
	CUDA_TRY(&c->st, cudaStreamSynchronize(c->stream));
	return 0;
}

/* ---- run ---------------------------------------------------------------- */

static int backend_cuda_run(void *bctx, const struct engine *e, const struct eng_node *n,
			    const struct tensor_view *in, struct tensor_view *out)
{
	struct cuda_ctx *c = bctx;
	const struct cuda_node *cn;

	if (!c)
		return -EINVAL;
	if (c->st.unhealthy)
		return -EIO;
	cn = node_of(e, n);
	if (!cn)
		return cuda_fail(&c->st, -EINVAL, "node %s (%s) was not prepared by cuda",
				 n->name ? n->name : "?", n->op);
	if (cn->ws_bytes > c->ws_bytes)
		return cuda_fail(&c->st, -EINVAL, "node %s needs %zu workspace bytes, context has %zu",
				 n->name ? n->name : "?", cn->ws_bytes, c->ws_bytes);
	switch (n->kind) {
	case OP_CONV:
		return cuda_conv_run(c, cn, n, in, out);
	case OP_MAXPOOL: case OP_AVGPOOL:
		return cuda_pool_run(c, cn, n, in, out);
	case OP_SOFTMAX:
		return cuda_softmax_run(c, cn, n, in, out);
	case OP_GEMM:
		return cuda_gemm_run(c, cn, n, in, out);
	case OP_MATMUL:
		return cuda_matmul_run(c, cn, n, in, out);
	default:
		return cuda_layout_run(c, cn, e, n, in, out);
	}
}

/* ---- link packing ------------------------------------------------------- */

static int pack_reserve(struct cuda_ctx *c, size_t bytes)
{
	if (c->pack_bytes >= bytes)
		return 0;
	if (c->pack) {
		CUDA_TRY(&c->st, cudaStreamSynchronize(c->stream));
		cudaFree(c->pack);
	}
	c->pack = NULL;
	c->pack_bytes = 0;
	CUDA_TRY(&c->st, cudaMalloc(&c->pack, bytes));
	c->pack_bytes = bytes;
	return 0;
}

int backend_cuda_pack_f16(void *bctx, const float *dev_src, size_t n, uint16_t *host_dst)
{
	struct cuda_ctx *c = bctx;
	uint32_t overflow = 0;
	int rc;

	if (!c || !dev_src || !host_dst)
		return -EINVAL;
	if (c->st.unhealthy)
		return -EIO;
	if (!n)
		return 0;
	rc = pack_reserve(c, n * sizeof(uint16_t));
	if (rc)
		return rc;
	CUDA_TRY(&c->st, cudaMemsetAsync(c->flag, 0, sizeof(uint32_t), c->stream));
	CUDA_TRY(&c->st, cuda_launch_f32_to_f16(c->stream, dev_src, c->pack, (int64_t)n,
						(int *)c->flag));
	rc = backend_cuda_download(c, &overflow, c->flag, sizeof(overflow));
	if (rc)
		return rc;
	if (overflow)
		return -ERANGE;
	return backend_cuda_download(c, host_dst, c->pack, n * sizeof(uint16_t));
}

int backend_cuda_pack_i8(void *bctx, const float *dev_src, size_t n, int8_t *host_dst,
			 float *scale)
{
	struct cuda_ctx *c = bctx;
	uint32_t bits = 0;
	float m, s;
	int rc;

	if (!c || !dev_src || !host_dst || !scale)
		return -EINVAL;
	if (c->st.unhealthy)
		return -EIO;
	*scale = 1.0f;
	if (!n)
		return 0;
	rc = pack_reserve(c, n);
	if (rc)
		return rc;
	CUDA_TRY(&c->st, cudaMemsetAsync(c->flag, 0, sizeof(uint32_t), c->stream));
	CUDA_TRY(&c->st, cuda_launch_maxabs(c->stream, dev_src, (int64_t)n, c->flag));
	rc = backend_cuda_download(c, &bits, c->flag, sizeof(bits));
	if (rc)
		return rc;
	if (bits >= 0x7f800000u)
		return -EDOM;
	memcpy(&m, &bits, sizeof(m));
	/* the same scale as link/link_values.c computes on the host */
	s = m / 127.0f;
	for (int k = 0; k < 8 && s > 0.0f && (double)m / s > 127.49; k++)
		s = nextafterf(s, INFINITY);
	*scale = s;
	CUDA_TRY(&c->st, cuda_launch_quantize_i8(c->stream, dev_src, c->pack, (int64_t)n,
						 s > 0.0f ? 1.0f / s : 0.0f));
	return backend_cuda_download(c, host_dst, c->pack, n);
}

int backend_cuda_unpack_f16(void *bctx, const uint16_t *host_src, size_t n, float *dev_dst)
{
	struct cuda_ctx *c = bctx;
	int rc;

	if (!c || !host_src || !dev_dst)
		return -EINVAL;
	if (c->st.unhealthy)
		return -EIO;
	if (!n)
		return 0;
	rc = pack_reserve(c, n * sizeof(uint16_t));
	if (!rc)
		rc = backend_cuda_upload(c, c->pack, host_src, n * sizeof(uint16_t));
	if (rc)
		return rc;
	CUDA_TRY(&c->st, cuda_launch_f16_to_f32(c->stream, c->pack, dev_dst, (int64_t)n));
	return 0;
}

int backend_cuda_unpack_i8(void *bctx, const int8_t *host_src, size_t n, float scale,
			   float *dev_dst)
{
	struct cuda_ctx *c = bctx;
	int rc;

	if (!c || !host_src || !dev_dst)
		return -EINVAL;
	if (c->st.unhealthy)
		return -EIO;
	if (!n)
		return 0;
	rc = pack_reserve(c, n);
	if (!rc)
		rc = backend_cuda_upload(c, c->pack, host_src, n);
	if (rc)
		return rc;
	CUDA_TRY(&c->st, cuda_launch_dequantize_i8(c->stream, c->pack, dev_dst, (int64_t)n,
						   scale));
	return 0;
}

const struct backend_ops backend_cuda = {
	.name = "cuda",
	.supports = backend_cuda_supports,
	.prepare = backend_cuda_prepare,
	.release = backend_cuda_release,
	.ctx_new = backend_cuda_ctx_new,
	.ctx_free = backend_cuda_ctx_free,
	.buf_alloc = backend_cuda_buf_alloc,
	.buf_free = backend_cuda_buf_free,
	.upload = backend_cuda_upload,
	.download = backend_cuda_download,
	.run = backend_cuda_run,
	.synchronize = backend_cuda_synchronize,
	.available = backend_cuda_available,
	.healthy = backend_cuda_healthy,
};

/* What backend.c checks before it takes the table above: the build this
 * library belongs to, and the size of the table it was compiled against. */
const char *const backend_cuda_version = SPLITD_VERSION;
const size_t backend_cuda_ops_size = sizeof(struct backend_ops);
