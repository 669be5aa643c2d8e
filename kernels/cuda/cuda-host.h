/* Host side of the CUDA/cuDNN backend: the per-inference context, the
 * per-node prepared state and the status macros. C only; not a public
 * header (kernels/cuda/cuda.h is the front door). */
#ifndef SPLITD_CUDA_HOST_H
#define SPLITD_CUDA_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "backend-impl.h"
#include "cuda-impl.h"

#define CUDA_ERR_LEN 320
/* cudnnFind's workspace ceiling per convolution (engine_opts has no field
 * for it yet; kernels/cuda/README.md says how to raise it). */
#define CUDA_CONV_WS_LIMIT_BYTES ((size_t)256 << 20)
/* Pinned staging buffer size: transfers larger than this go in chunks. */
#define CUDA_STAGE_MAX_BYTES ((size_t)32 << 20)

/* Where failures are recorded: libraries do not log, so the message waits
 * here for the caller (backend_cuda_last_error()). */
struct cuda_status {
	int unhealthy;		/* a sticky error poisoned the CUDA context */
	int failures;
	char msg[CUDA_ERR_LEN];
};

int cuda_fail_rt(struct cuda_status *st, cudaError_t rc, const char *expr,
		 const char *file, int line);
int cuda_fail_dnn(struct cuda_status *st, cudnnStatus_t rc, const char *expr,
		  const char *file, int line);
int cuda_fail_blas(struct cuda_status *st, cublasStatus_t rc, const char *expr,
		   const char *file, int line);
/* A failure that is not a library status (bad shape, missing constant). */
__attribute__((format(printf, 3, 4)))
int cuda_fail(struct cuda_status *st, int err, const char *fmt, ...);

/* Check a status; on failure record "expr at file:line: reason" in st and
 * return -EIO from the enclosing function. */
#define CUDA_TRY(st, expr)                                                         \
	do {                                                                       \
		cudaError_t cuda_rc_ = (expr);                                     \
		if (cuda_rc_ != cudaSuccess)                                       \
			return cuda_fail_rt((st), cuda_rc_, #expr, __FILE__, __LINE__); \
	} while (0)
#define CUDNN_TRY(st, expr)                                                        \
	do {                                                                       \
		cudnnStatus_t cudnn_rc_ = (expr);                                  \
		if (cudnn_rc_ != CUDNN_STATUS_SUCCESS)                             \
			return cuda_fail_dnn((st), cudnn_rc_, #expr, __FILE__, __LINE__); \
	} while (0)
#define CUBLAS_TRY(st, expr)                                                       \
	do {                                                                       \
		cublasStatus_t cublas_rc_ = (expr);                                \
		if (cublas_rc_ != CUBLAS_STATUS_SUCCESS)                           \
			return cuda_fail_blas((st), cublas_rc_, #expr, __FILE__, __LINE__); \
	} while (0)
/* The same for functions with one cleanup path: set rc, goto out. */
#define CUDA_TRY_OUT(st, rc, expr)                                                 \
	do {                                                                       \
		cudaError_t cuda_rc_ = (expr);                                     \
		if (cuda_rc_ != cudaSuccess) {                                     \
			(rc) = cuda_fail_rt((st), cuda_rc_, #expr, __FILE__, __LINE__); \
			goto out;                                                  \
		}                                                                  \
	} while (0)
#define CUDNN_TRY_OUT(st, rc, expr)                                                \
	do {                                                                       \
		cudnnStatus_t cudnn_rc_ = (expr);                                  \
		if (cudnn_rc_ != CUDNN_STATUS_SUCCESS) {                           \
			(rc) = cuda_fail_dnn((st), cudnn_rc_, #expr, __FILE__, __LINE__); \
			goto out;                                                  \
		}                                                                  \
	} while (0)

/* Per-inference context: one device, one stream, its handles, workspace
 * and pinned staging. Never shared between threads. */
struct cuda_ctx {
	struct cuda_status st;
	int device;
	int tf32;
	cudaStream_t stream;
	cudnnHandle_t dnn;
	cublasHandle_t blas;
	void *ws;		/* max over the engine's nodes of cuda_node.ws_bytes */
	size_t ws_bytes;
	void *stage;		/* pinned host staging for upload/download */
	size_t stage_bytes;
	cudaEvent_t stage_free;	/* recorded after the last copy out of stage */
	void *pack;		/* device scratch for link packing */
	size_t pack_bytes;
	uint32_t *flag;		/* device word: f16 overflow / i8 max |x| */
};

/* State shared by the nodes of one engine while it is loaded: the handle
 * cudnnFind runs on. Reference counted by the nodes (release()). */
struct cuda_shared {
	int refs;
	int device;
	int tf32;
	int gemm_only;		/* SPLITD_CUDA_CONV_ALGO=gemm */
	cudnnHandle_t dnn;
	struct cuda_status st;
};

#define CUDA_NODE_MAGIC 0x73637564u	/* "dcus" */

/* What prepare() makes for one node (eng_node.packed). */
struct cuda_node {
	uint32_t magic;
	struct cuda_shared *sh;
	void *cin[ENG_MAX_IO];	/* device copies of constant inputs */
	size_t ws_bytes;	/* workspace this node needs from the context */
	float alpha, beta;	/* activation parameters, resolved */
	/* convolution */
	cudnnTensorDescriptor_t xd, yd, bd;
	cudnnFilterDescriptor_t wd;
	cudnnConvolutionDescriptor_t cd;
	cudnnActivationDescriptor_t ad;
	cudnnConvolutionFwdAlgo_t algo;
	size_t algo_ws_bytes;
	int fused;		/* cudnnConvolutionBiasActivationForward */
	int prepad;		/* asymmetric pads: pad into the workspace first */
	int64_t pad_in[4], pad_out[4], pad_begin[4];
	size_t prepad_bytes;	/* aligned; the algorithm's workspace follows */
	float *zero_bias;	/* fused path without a bias input */
	/* pooling, softmax */
	cudnnPoolingDescriptor_t pd;
	int use_cudnn;
	/* BatchNormalization: scale[C] then shift[C] */
	float *aux;
};

/* conv_cuda.c: the cuDNN and cuBLAS families */
int cuda_conv_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n);
int cuda_conv_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		  const struct tensor_view *in, struct tensor_view *out);
int cuda_bn_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n);
int cuda_pool_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n);
int cuda_pool_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		  const struct tensor_view *in, struct tensor_view *out);
int cuda_softmax_prepare(struct cuda_node *cn, const struct engine *e, const struct eng_node *n);
int cuda_softmax_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		     const struct tensor_view *in, struct tensor_view *out);
int cuda_gemm_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		  const struct tensor_view *in, struct tensor_view *out);
int cuda_matmul_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct eng_node *n,
		    const struct tensor_view *in, struct tensor_view *out);
void cuda_node_destroy_descriptors(struct cuda_node *cn);

/* layout_cuda.c: elementwise and data movement (hand kernels) */
int cuda_layout_run(struct cuda_ctx *c, const struct cuda_node *cn, const struct engine *e,
		    const struct eng_node *n, const struct tensor_view *in,
		    struct tensor_view *out);
enum cuda_act cuda_act_of(const struct eng_node *n);

/* An input's device pointer: the node's uploaded constant, else the arena. */
static inline const void *cuda_in(const struct cuda_node *cn, const struct tensor_view *in, int i)
{
	return cn->cin[i] ? cn->cin[i] : in[i].data;
}

/* Row-major strides of a shape, in elements. */
static inline void cuda_strides(const int64_t *shape, int ndim, int64_t *stride)
{
	int64_t s = 1;
	for (int d = ndim - 1; d >= 0; d--) {
		stride[d] = s;
		s *= shape[d];
	}
}

#endif
