// Elementwise kernels of the CUDA backend: activations (also the epilogue of
// a convolution: bias, residual sum, activation in one pass), per-channel
// affine (BatchNormalization), binary ops with numpy broadcasting, casts.
// The CPU twin is kernels/elementwise.c.
#include <stdint.h>

#include "cuda-impl.h"

namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n)
{
	int64_t b = (n + kThreads - 1) / kThreads;
	// grid-stride loops below cover anything past this many blocks
	return (unsigned int)(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

__device__ __forceinline__ float act_apply(int act, float x, float alpha, float beta)
{
	switch (act) {
	case CUDA_ACT_NONE: return x;
	case CUDA_ACT_RELU: return x > 0.0f ? x : 0.0f;
	case CUDA_ACT_LEAKY_RELU: return x >= 0.0f ? x : alpha * x;
	case CUDA_ACT_CLIP: return fminf(fmaxf(x, alpha), beta);
	case CUDA_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
	case CUDA_ACT_HARD_SIGMOID: return fminf(fmaxf(alpha * x + beta, 0.0f), 1.0f);
	case CUDA_ACT_HARD_SWISH: return x * fminf(fmaxf(x / 6.0f + 0.5f, 0.0f), 1.0f);
	case CUDA_ACT_SILU: return x / (1.0f + expf(-x));
	case CUDA_ACT_TANH: return tanhf(x);
	case CUDA_ACT_EXP: return expf(x);
	case CUDA_ACT_SQRT: return sqrtf(x);
	case CUDA_ACT_NEG: return -x;
	case CUDA_ACT_ABS: return fabsf(x);
	case CUDA_ACT_ERF: return erff(x);
	case CUDA_ACT_LOG: return logf(x);
	case CUDA_ACT_RECIPROCAL: return 1.0f / x;
	case CUDA_ACT_FLOOR: return floorf(x);
	case CUDA_ACT_CEIL: return ceilf(x);
	// Gelu as the CPU evaluates it (kernels/elementwise.c): in double,
	// 0.5 x erfc(-x / sqrt 2) = 0.5 x (1 + erf(x / sqrt 2)) and
	// x / (1 + e^-2u) = 0.5 x (1 + tanh u), forms without the cancellation
	// of 1 + erf and 1 + tanh for negative x, rounded once: in float the
	// rounding of the argument alone costs (1 + x^2) u relative in the tail
	case CUDA_ACT_GELU: {
		double v = x;
		return (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
	}
	case CUDA_ACT_GELU_TANH: {
		double v = x, u = 0.79788456080286535588 * (v + 0.044715 * v * v * v);
		return (float)(v / (1.0 + exp(-2.0 * u)));
	}
	default: return x;
	}
}

// Clip with NaN bounds: ONNX Clip keeps NaN inputs as NaN; fminf/fmaxf
// would drop them, so handle NaN first.
__device__ __forceinline__ float act_apply_nan(int act, float x, float alpha, float beta)
{
	if (act == CUDA_ACT_CLIP || act == CUDA_ACT_RELU)
		if (x != x)
			return x;
	return act_apply(act, x, alpha, beta);
}

__global__ void unary_kernel(int act, float alpha, float beta, const float *__restrict__ x,
			     float *__restrict__ y, int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		y[i] = act_apply_nan(act, x[i], alpha, beta);
}

// in-place friendly: y may equal x (no __restrict__)
__global__ void unary_kernel_alias(int act, float alpha, float beta, const float *x, float *y,
				   int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		y[i] = act_apply_nan(act, x[i], alpha, beta);
}

__global__ void bias_act_kernel(float *y, const float *bias, const float *z, int64_t channels,
				int64_t inner, int64_t n, int act, float alpha, float beta)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x) {
		float v = y[i];
		if (bias)
			v += bias[(i / inner) % channels];
		if (z)
			v += z[i];
		y[i] = act_apply_nan(act, v, alpha, beta);
	}
}

__global__ void channel_affine_kernel(const float *x, float *y, const float *scale,
				      const float *shift, int64_t channels, int64_t inner,
				      int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x) {
		int64_t c = (i / inner) % channels;
		y[i] = fmaf(x[i], scale[c], shift[c]);
	}
}

__device__ __forceinline__ float binop(int op, float a, float b)
{
	switch (op) {
	case CUDA_BIN_ADD: return a + b;
	case CUDA_BIN_SUB: return a - b;
	case CUDA_BIN_MUL: return a * b;
	case CUDA_BIN_DIV: return a / b;
	case CUDA_BIN_POW: return powf(a, b);
	default: return 0.0f;
	}
}

__global__ void binary_same_kernel(int op, const float *a, const float *b, float *y, int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		y[i] = binop(op, a[i], b[i]);
}

__global__ void binary_walk_kernel(int op, const float *a, const float *b, float *y,
				   struct cuda_walk w, int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x) {
		int64_t r = i, ao = w.sbase, bo = 0, yo = w.dbase;
		for (int d = w.ndim - 1; d >= 0; d--) {
			int64_t c = r % w.shape[d];
			r /= w.shape[d];
			ao += c * w.sstride[d];
			bo += c * w.bstride[d];
			yo += c * w.dstride[d];
		}
		y[yo] = binop(op, a[ao], b[bo]);
	}
}

template <typename From, typename To>
__global__ void cast_kernel(const From *x, To *y, int64_t n)
{
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
	     i += (int64_t)gridDim.x * blockDim.x)
		y[i] = (To)x[i];
}

template <typename From>
cudaError_t cast_from(cudaStream_t s, enum tensor_dtype to, const From *x, void *y, int64_t n)
{
	switch (to) {
	case TENSOR_F32:
		cast_kernel<From, float><<<blocks_for(n), kThreads, 0, s>>>(x, (float *)y, n);
		break;
	case TENSOR_I32:
		cast_kernel<From, int32_t><<<blocks_for(n), kThreads, 0, s>>>(x, (int32_t *)y, n);
		break;
	case TENSOR_I64:
		cast_kernel<From, int64_t><<<blocks_for(n), kThreads, 0, s>>>(x, (int64_t *)y, n);
		break;
	default:
		return cudaErrorInvalidValue;
	}
	return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t cuda_launch_unary(cudaStream_t s, enum cuda_act act, float alpha,
					 float beta, const float *x, float *y, int64_t n)
{
	if (n <= 0)
		return cudaSuccess;
	if (x == y)
		unary_kernel_alias<<<blocks_for(n), kThreads, 0, s>>>(act, alpha, beta, x, y, n);
	else
		unary_kernel<<<blocks_for(n), kThreads, 0, s>>>(act, alpha, beta, x, y, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_bias_act(cudaStream_t s, float *y, const float *bias,
					    const float *z, int64_t channels, int64_t inner,
					    int64_t n, enum cuda_act act, float alpha, float beta)
{
	if (n <= 0)
		return cudaSuccess;
	if (channels <= 0 || inner <= 0)
		return cudaErrorInvalidValue;
	bias_act_kernel<<<blocks_for(n), kThreads, 0, s>>>(y, bias, z, channels, inner, n, act,
							   alpha, beta);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_channel_affine(cudaStream_t s, const float *x, float *y,
						  const float *scale, const float *shift,
						  int64_t channels, int64_t inner, int64_t n)
{
	if (n <= 0)
		return cudaSuccess;
	if (channels <= 0 || inner <= 0)
		return cudaErrorInvalidValue;
	channel_affine_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, scale, shift, channels,
								 inner, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_binary(cudaStream_t s, enum cuda_binop op, const float *a,
					  const float *b, float *y, const struct cuda_walk *w)
{
	int64_t n = 1;
	int same = w->sbase == 0 && w->dbase == 0;
	int64_t expect = 1;

	for (int d = w->ndim - 1; d >= 0; d--) {
		n *= w->shape[d];
		// dense and identical strides on all three: a flat loop
		if (w->sstride[d] != expect || w->bstride[d] != expect ||
		    w->dstride[d] != expect)
			same = 0;
		expect *= w->shape[d];
	}
	if (n <= 0)
		return cudaSuccess;
	if (same)
		binary_same_kernel<<<blocks_for(n), kThreads, 0, s>>>(op, a, b, y, n);
	else
		binary_walk_kernel<<<blocks_for(n), kThreads, 0, s>>>(op, a, b, y, *w, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_cast(cudaStream_t s, enum tensor_dtype from,
					enum tensor_dtype to, const void *src, void *dst,
					int64_t n)
{
	if (n <= 0)
		return cudaSuccess;
	switch (from) {
	case TENSOR_F32: return cast_from(s, to, (const float *)src, dst, n);
	case TENSOR_I32: return cast_from(s, to, (const int32_t *)src, dst, n);
	case TENSOR_I64: return cast_from(s, to, (const int64_t *)src, dst, n);
	default: return cudaErrorInvalidValue;
	}
}
