/* Depthwise 3x3 convolution of one plane with AVX-512 masked loads
 * (conv-impl.h): each output row in groups of 16 columns, one zmm each;
 * for each of the nine taps one masked load of the input row (stride 2:
 * two loads and a permute keeping the even lanes), the lanes whose input
 * falls in the padding or past the row masked off (zero), one FMA, and a
 * masked store of the group. No padded copy of the plane and no scalar
 * tail: a 14x14 plane is 14 rows of one masked group each. */
#include "conv-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

static inline uint32_t bits(int64_t a, int64_t b)	/* bits [a, b) of 32; a, b clamped */
{
	a = a < 0 ? 0 : a;
	b = b > 32 ? 32 : b;
	return a >= b ? 0 : (uint32_t)(((UINT64_C(1) << b) - 1) ^ ((UINT64_C(1) << a) - 1));
}

static inline const float *at(const float *base, int64_t off)
{
	/* off may lie before the row for lanes masked off: no C pointer
	 * arithmetic out of the object */
	return (const float *)((uintptr_t)base + (uintptr_t)(off * (int64_t)sizeof(float)));
}

__attribute__((target("avx512f"))) static void dw_plane(const struct conv_geom *g, const float *x,
							const float *w, float bias, float *y,
							const float *zero)
{
	const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
	__m512 wv[9];
#pragma GCC unroll 9
	for (int i = 0; i < 9; i++)
		wv[i] = _mm512_set1_ps(w[i]);
	for (int64_t c0 = 0; c0 < g->OW; c0 += 16) {
		int64_t len = g->OW - c0 < 16 ? g->OW - c0 : 16;
		__mmask16 out = (__mmask16)bits(0, len);
		/* per kj: the element offset of lane 0 and its mask (stride 1:
		 * lanes; stride 2: the 32 source floats) */
		int64_t off[3];
		__mmask16 mlo[3], mhi[3];
#pragma GCC unroll 3
		for (int kj = 0; kj < 3; kj++) {
			off[kj] = c0 * g->sw - g->pl + kj * g->dw;
			uint32_t m = g->sw == 1 ? bits(-off[kj], g->W - off[kj]) & out
						: bits(-off[kj], g->W - off[kj]) & bits(0, 2 * len - 1);
			mlo[kj] = (__mmask16)m;
			mhi[kj] = (__mmask16)(m >> 16);
		}
		/* four output rows at a time: four independent accumulators
		 * (one FMA chain of nine would wait on its latency); rows
		 * outside the input read a row of zeros */
		for (int64_t oh = 0; oh < g->OH; oh += 4) {
			int nq = g->OH - oh < 4 ? (int)(g->OH - oh) : 4;
			const float *rp[4][3];
			__m512 acc[4];
#pragma GCC unroll 4
			for (int q = 0; q < 4; q++) {
				acc[q] = _mm512_set1_ps(bias);
#pragma GCC unroll 3
				for (int ki = 0; ki < 3; ki++) {
					int64_t ih = (oh + (q < nq ? q : 0)) * g->sh - g->pt + ki * g->dh;
					rp[q][ki] = ih < 0 || ih >= g->H ? zero + g->pl + 2 * g->dw : x + ih * g->W;
				}
			}
#pragma GCC unroll 3
			for (int ki = 0; ki < 3; ki++)
#pragma GCC unroll 3
				for (int kj = 0; kj < 3; kj++)
#pragma GCC unroll 4
					for (int q = 0; q < 4; q++) {
						__m512 v = _mm512_maskz_loadu_ps(mlo[kj], at(rp[q][ki], off[kj]));
						if (g->sw == 2)
							v = _mm512_permutex2var_ps(
								v, even,
								_mm512_maskz_loadu_ps(mhi[kj], at(rp[q][ki], off[kj] + 16)));
						acc[q] = _mm512_fmadd_ps(wv[ki * 3 + kj], v, acc[q]);
					}
#pragma GCC unroll 4
			for (int q = 0; q < nq; q++)
				_mm512_mask_storeu_ps(y + (oh + q) * g->OW + c0, out, acc[q]);
		}
	}
}

int conv_dw3x3_avx512(const struct conv_geom *g, const float *x, const float *w, float bias, float *y,
		      const float *zero)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") || g->kh != 3 || g->kw != 3 || g->sw < 1 || g->sw > 2)
		return -1;
	dw_plane(g, x, w, bias, y, zero);
	return 0;
}
#else
int conv_dw3x3_avx512(const struct conv_geom *g, const float *x, const float *w, float bias, float *y,
		      const float *zero)
{
	(void)g, (void)x, (void)w, (void)bias, (void)y, (void)zero;
	return -1;
}
#endif
