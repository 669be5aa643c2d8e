// Data-movement and reduction kernels of the CUDA backend: the N-d walk
// (transpose, slice, concat, split, expand), pad, resize, gather, pooling
// that cuDNN's descriptor cannot express, global pooling, ReduceMean.
// CPU twins: kernels/layout.c, kernels/pool.c, kernels/resize.c.
#include <stdint.h>

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

template <typename T>
__global__ void walk_kernel(const T *__restrict__ src, T *__restrict__ dst, struct cuda_walk w,
			    int64_t n)
{
	GRID_LOOP(i, n) {
		int64_t r = i, so = w.sbase, dof = w.dbase;
		for (int d = w.ndim - 1; d >= 0; d--) {
			int64_t c = r % w.shape[d];
			r /= w.shape[d];
			so += c * w.sstride[d];
			dof += c * w.dstride[d];
		}
		dst[dof] = src[so];
	}
}

struct pad_geom {
	int ndim;
	int64_t in[CUDA_MAX_DIMS], out[CUDA_MAX_DIMS], begin[CUDA_MAX_DIMS];
};

__global__ void pad_kernel(int mode, float value, const float *__restrict__ x,
			   float *__restrict__ y, struct pad_geom g, int64_t n)
{
	GRID_LOOP(i, n) {
		int64_t r = i, off = 0, stride = 1;
		int outside = 0;
		for (int d = g.ndim - 1; d >= 0; d--) {
			int64_t c = r % g.out[d] - g.begin[d];
			int64_t len = g.in[d];
			r /= g.out[d];
			if (c < 0 || c >= len) {
				if (mode == 0) {
					outside = 1;
				} else if (mode == 2 || len == 1) {	// edge
					c = c < 0 ? 0 : len - 1;
				} else {			// reflect (no edge repeat)
					int64_t period = 2 * (len - 1);
					c = c < 0 ? -c : c;
					c %= period;
					if (c >= len)
						c = period - c;
				}
			}
			off += c * stride;
			stride *= len;
		}
		y[i] = outside ? value : x[off];
	}
}

// ONNX Resize coordinate transforms (enum resize_coord order).
__device__ __forceinline__ float src_coord(int coord, int64_t o, float scale, int64_t in_len,
					   int64_t out_len)
{
	float x = (float)o;
	switch (coord) {
	case 0: return (x + 0.5f) / scale - 0.5f;			// half_pixel
	case 1: return x / scale;					// asymmetric
	case 2: return out_len > 1 ? (x + 0.5f) / scale - 0.5f : 0.0f; // pytorch_half_pixel
	case 3: return out_len == 1 ? 0.0f : x * (float)(in_len - 1) / (float)(out_len - 1);
	case 4: return (x + 0.5f) / scale;				// tf_half_pixel_for_nn
	default: return 0.0f;
	}
}

__device__ __forceinline__ int64_t nearest_index(int nearest, float x, int64_t len)
{
	float f = floorf(x);
	int64_t i;
	switch (nearest) {
	case 0: i = (int64_t)(x - f == 0.5f ? f : rintf(x)); break;	// round_prefer_floor
	case 1: i = (int64_t)(x - f == 0.5f ? f + 1.0f : rintf(x)); break; // round_prefer_ceil
	case 2: i = (int64_t)f; break;					// floor
	default: i = (int64_t)ceilf(x); break;				// ceil
	}
	return i < 0 ? 0 : (i >= len ? len - 1 : i);
}

__global__ void resize_kernel(const float *__restrict__ x, float *__restrict__ y,
			      struct cuda_resize r, int64_t n)
{
	GRID_LOOP(i, n) {
		int64_t ox = i % r.ow, oy = (i / r.ow) % r.oh, p = i / (r.ow * r.oh);
		const float *plane = x + p * r.ih * r.iw;
		float fy = src_coord(r.coord, oy, r.scale_h, r.ih, r.oh);
		float fx = src_coord(r.coord, ox, r.scale_w, r.iw, r.ow);
		if (r.mode == 0) {
			y[i] = plane[nearest_index(r.nearest, fy, r.ih) * r.iw +
				     nearest_index(r.nearest, fx, r.iw)];
			continue;
		}
		fy = fminf(fmaxf(fy, 0.0f), (float)(r.ih - 1));
		fx = fminf(fmaxf(fx, 0.0f), (float)(r.iw - 1));
		int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
		int64_t y1 = y0 + 1 < r.ih ? y0 + 1 : y0, x1 = x0 + 1 < r.iw ? x0 + 1 : x0;
		float wy = fy - (float)y0, wx = fx - (float)x0;
		float top = plane[y0 * r.iw + x0] * (1.0f - wx) + plane[y0 * r.iw + x1] * wx;
		float bot = plane[y1 * r.iw + x0] * (1.0f - wx) + plane[y1 * r.iw + x1] * wx;
		y[i] = top * (1.0f - wy) + bot * wy;
	}
}

__global__ void pool_kernel(const float *__restrict__ x, float *__restrict__ y,
			    struct cuda_pool q, int64_t n)
{
	GRID_LOOP(i, n) {
		int64_t ox = i % q.ow, oy = (i / q.ow) % q.oh, p = i / (q.ow * q.oh);
		const float *plane = x + p * q.ih * q.iw;
		int64_t y0 = oy * q.sh - q.pt, x0 = ox * q.sw - q.pl;
		float acc = q.max ? -INFINITY : 0.0f;
		int64_t cnt = 0, padded = 0;
		for (int64_t ky = 0; ky < q.kh; ky++) {
			int64_t iy = y0 + ky * q.dh;
			for (int64_t kx = 0; kx < q.kw; kx++) {
				int64_t ix = x0 + kx * q.dw;
				// window cells inside the padded frame count for
				// count_include_pad; cells past it (ceil_mode) never do
				if (iy >= -q.pt && iy < q.ih + q.pb && ix >= -q.pl &&
				    ix < q.iw + q.pr)
					padded++;
				if (iy < 0 || iy >= q.ih || ix < 0 || ix >= q.iw)
					continue;
				float v = plane[iy * q.iw + ix];
				if (q.max)
					acc = (v > acc || v != v) ? v : acc;
				else
					acc += v;
				cnt++;
			}
		}
		if (!q.max) {
			int64_t div = q.count_include_pad ? padded : cnt;
			acc = div > 0 ? acc / (float)div : 0.0f;
		}
		y[i] = acc;
	}
}

// One warp per plane; planes are consecutive `inner` floats.
__global__ void global_pool_kernel(const float *__restrict__ x, float *__restrict__ y,
				   int64_t planes, int64_t inner, int max)
{
	int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) / 32;
	int lane = threadIdx.x % 32;
	int64_t nwarps = (int64_t)gridDim.x * blockDim.x / 32;
	for (int64_t p = warp; p < planes; p += nwarps) {
		const float *row = x + p * inner;
		float acc = max ? -INFINITY : 0.0f;
		for (int64_t k = lane; k < inner; k += 32) {
			float v = row[k];
			if (max)
				acc = (v > acc || v != v) ? v : acc;
			else
				acc += v;
		}
		for (int off = 16; off > 0; off /= 2) {
			float o = __shfl_down_sync(0xffffffffu, acc, off);
			if (max)
				acc = (o > acc || o != o) ? o : acc;
			else
				acc += o;
		}
		if (lane == 0)
			y[p] = max ? acc : acc / (float)inner;
	}
}

__global__ void reduce_mean_kernel(const float *__restrict__ x, float *__restrict__ y,
				   struct cuda_reduce r)
{
	GRID_LOOP(i, r.outer) {
		int64_t rem = i, base = 0;
		for (int d = r.nkeep - 1; d >= 0; d--) {
			base += (rem % r.keep_shape[d]) * r.keep_stride[d];
			rem /= r.keep_shape[d];
		}
		float acc = 0.0f;
		for (int64_t k = 0; k < r.count; k++) {
			int64_t rr = k, off = base;
			for (int d = r.nred - 1; d >= 0; d--) {
				off += (rr % r.red_shape[d]) * r.red_stride[d];
				rr /= r.red_shape[d];
			}
			acc += x[off];
		}
		y[i] = acc / (float)r.count;
	}
}

template <typename T, typename I>
__global__ void gather_kernel(const T *__restrict__ data, const I *__restrict__ idx,
			      T *__restrict__ out, int64_t axis_len, int64_t n_idx,
			      int64_t inner, int64_t n)
{
	GRID_LOOP(i, n) {
		int64_t in = i % inner, j = (i / inner) % n_idx, o = i / (inner * n_idx);
		int64_t k = (int64_t)idx[j];
		if (k < 0)
			k += axis_len;
		k = k < 0 ? 0 : (k >= axis_len ? axis_len - 1 : k);
		out[i] = data[(o * axis_len + k) * inner + in];
	}
}

template <typename T>
cudaError_t gather_typed(cudaStream_t s, const void *data, const void *idx, int idx_is_64,
			 void *out, int64_t axis_len, int64_t n_idx, int64_t inner, int64_t n)
{
	if (idx_is_64)
		gather_kernel<T, int64_t><<<blocks_for(n), kThreads, 0, s>>>(
			(const T *)data, (const int64_t *)idx, (T *)out, axis_len, n_idx, inner, n);
	else
		gather_kernel<T, int32_t><<<blocks_for(n), kThreads, 0, s>>>(
			(const T *)data, (const int32_t *)idx, (T *)out, axis_len, n_idx, inner, n);
	return cudaGetLastError();
}

} // namespace

extern "C" cudaError_t cuda_launch_walk_copy(cudaStream_t s, size_t elem_size, const void *src,
					     void *dst, const struct cuda_walk *w)
{
	int64_t n = 1;
	for (int d = 0; d < w->ndim; d++)
		n *= w->shape[d];
	if (n <= 0)
		return cudaSuccess;
	switch (elem_size) {
	case 1: walk_kernel<uint8_t><<<blocks_for(n), kThreads, 0, s>>>((const uint8_t *)src, (uint8_t *)dst, *w, n); break;
	case 2: walk_kernel<uint16_t><<<blocks_for(n), kThreads, 0, s>>>((const uint16_t *)src, (uint16_t *)dst, *w, n); break;
	case 4: walk_kernel<uint32_t><<<blocks_for(n), kThreads, 0, s>>>((const uint32_t *)src, (uint32_t *)dst, *w, n); break;
	case 8: walk_kernel<uint64_t><<<blocks_for(n), kThreads, 0, s>>>((const uint64_t *)src, (uint64_t *)dst, *w, n); break;
	default: return cudaErrorInvalidValue;
	}
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_pad(cudaStream_t s, int mode, float value, const float *x,
				       float *y, int ndim, const int64_t *in_shape,
				       const int64_t *out_shape, const int64_t *pad_begin)
{
	struct pad_geom g;
	int64_t n = 1;

	if (ndim < 1 || ndim > CUDA_MAX_DIMS)
		return cudaErrorInvalidValue;
	g.ndim = ndim;
	for (int d = 0; d < ndim; d++) {
		g.in[d] = in_shape[d];
		g.out[d] = out_shape[d];
		g.begin[d] = pad_begin[d];
		n *= out_shape[d];
		if (in_shape[d] <= 0 && out_shape[d] > 0 && mode != 0)
			return cudaErrorInvalidValue;
	}
	if (n <= 0)
		return cudaSuccess;
	pad_kernel<<<blocks_for(n), kThreads, 0, s>>>(mode, value, x, y, g, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_resize(cudaStream_t s, const float *x, float *y,
					  const struct cuda_resize *r)
{
	int64_t n = r->planes * r->oh * r->ow;
	if (n <= 0)
		return cudaSuccess;
	if (r->ih <= 0 || r->iw <= 0)
		return cudaErrorInvalidValue;
	resize_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, *r, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_pool(cudaStream_t s, const float *x, float *y,
					const struct cuda_pool *p)
{
	int64_t n = p->planes * p->oh * p->ow;
	if (n <= 0)
		return cudaSuccess;
	pool_kernel<<<blocks_for(n), kThreads, 0, s>>>(x, y, *p, n);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_global_pool(cudaStream_t s, const float *x, float *y,
					       int64_t planes, int64_t inner, int max)
{
	if (planes <= 0)
		return cudaSuccess;
	if (inner <= 0)
		return cudaErrorInvalidValue;
	global_pool_kernel<<<blocks_for(planes * 32), kThreads, 0, s>>>(x, y, planes, inner, max);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_reduce_mean(cudaStream_t s, const float *x, float *y,
					       const struct cuda_reduce *r)
{
	if (r->outer <= 0)
		return cudaSuccess;
	if (r->count <= 0)
		return cudaErrorInvalidValue;
	reduce_mean_kernel<<<blocks_for(r->outer), kThreads, 0, s>>>(x, y, *r);
	return cudaGetLastError();
}

extern "C" cudaError_t cuda_launch_gather(cudaStream_t s, size_t elem_size, const void *data,
					  const void *idx, int idx_is_64, void *out,
					  int64_t outer, int64_t axis_len, int64_t n_idx,
					  int64_t inner)
{
	int64_t n = outer * n_idx * inner;
	if (n <= 0)
		return cudaSuccess;
	if (axis_len <= 0)
		return cudaErrorInvalidValue;
	switch (elem_size) {
	case 1: return gather_typed<uint8_t>(s, data, idx, idx_is_64, out, axis_len, n_idx, inner, n);
	case 2: return gather_typed<uint16_t>(s, data, idx, idx_is_64, out, axis_len, n_idx, inner, n);
	case 4: return gather_typed<uint32_t>(s, data, idx, idx_is_64, out, axis_len, n_idx, inner, n);
	case 8: return gather_typed<uint64_t>(s, data, idx, idx_is_64, out, axis_len, n_idx, inner, n);
	default: return cudaErrorInvalidValue;
	}
}
