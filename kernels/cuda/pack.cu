// Packing of cut tensors for the offload link, on the device, so that only
// the packed bytes cross PCIe / the Jetson's memory bus to the host. The
// encodings are daemon/link_codec.h's: f16 round to nearest even; i8
// symmetric with one scale, q = round_half_even(x / scale) in [-127, 127].
#include <stdint.h>

#include <cuda_fp16.h>

#include "cuda-impl.h"

namespace {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n)
{
	int64_t b = (n + kThreads - 1) / kThreads;
	return (unsigned int)(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

#define GRID_LOOP(i, n)                                                              \
	for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); \
	     i += (int64_t)gridDim.x * blockDim.x)

__global__ void f32_to_f16_kernel(const float *__restrict__ x, uint16_t *__restrict__ h,
				  int64_t n, int *overflow)
{
	int of = 0;
	GRID_LOOP(i, n) {
		float v = x[i];
		// finite values that round past 65504 would become inf
		if (fabsf(v) >= 65520.0f && fabsf(v) <= 3.4028235e38f)
			of = 1;
		h[i] = __half_as_ushort(__float2half_rn(v));
	}
	if (of && overflow)
		atomicOr(overflow, 1);
}

__global__ void f16_to_f32_kernel(const uint16_t *__restrict__ h, float *__restrict__ x,
				  int64_t n)
{
	GRID_LOOP(i, n)
		x[i] = __half2float(__ushort_as_half(h[i]));
}

// max |x| as bits: non-negative floats order like their bit patterns, and
// inf / nan bits are above every finite value's.
__global__ void maxabs_kernel(const float *__restrict__ x, int64_t n, uint32_t *out)
{
	uint32_t m = 0;
	GRID_LOOP(i, n) {
		uint32_t b = __float_as_uint(x[i]) & 0x7fffffffu;
		m = b > m ? b : m;
	}
	for (int off = 16; off > 0; off /= 2) {
		uint32_t o = __shfl_down_sync(0xffffffffu, m, off);
		m = o > m ? o : m;
	}
	if ((threadIdx.x & 31) == 0 && m)
		atomicMax(out, m);
}

__global__ void quantize_i8_kernel(const float *__restrict__ x, int8_t *__restrict__ q,
				   int64_t n, float inv)
{
	GRID_LOOP(i, n) {
		float r = x[i] * inv;
		r = fminf(fmaxf(r, -127.0f), 127.0f);
		q[i] = (int8_t)__float2int_rn(r);	// round half to even
	}
}

__global__ void dequantize_i8_kernel(const int8_t *__restrict__ q, float *__restrict__ x,
				     int64_t n, float scale)
{
	GRID_LOOP(i, n)
		x[i] = (float)q[i] * scale;
}

} // namespace

extern "C" cudaError_t cuda_launch_f32_to_f16(cudaStream_t s, const float *x, uint16_t *h,
					      int64_t n, int *overflow)
{
	if (n <= 0)
		return cudaSuccess;
	f32_to_f16_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, h, n, overflow);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_f16_to_f32(cudaStream_t s, const uint16_t *h, float *x,
					      int64_t n)
{
	if (n <= 0)
		return cudaSuccess;
	f16_to_f32_kernel<<<blocks_for(n), kThreads, 0, s>>>(h, x, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_maxabs(cudaStream_t s, const float *x, int64_t n,
					  uint32_t *maxabs_bits)
{
	if (n <= 0)
		return cudaSuccess;
	maxabs_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, n, maxabs_bits);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_quantize_i8(cudaStream_t s, const float *x, int8_t *q,
					       int64_t n, float inv_scale)
{
	if (n <= 0)
		return cudaSuccess;
	quantize_i8_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, q, n, inv_scale);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_dequantize_i8(cudaStream_t s, const int8_t *q, float *x,
						 int64_t n, float scale)
{
	if (n <= 0)
		return cudaSuccess;
	dequantize_i8_kernel<<<blocks_for(n), kThreads, 0, s>>>(q, x, n, scale);
	return cudaGetLastError();
}
