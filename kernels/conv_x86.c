/* The AVX-512 parts of Conv (conv-impl.h), all built on masked loads that
 * leave the lanes whose input falls in the padding out of the mask, so
 * they stay zero (masked-off lanes are never read: AVX-512 masked loads do
 * not fault):
 *
 * - im2col straight into the packed GEMM's B panels. The columns are cut
 *   into groups of 16 output pixels, one zmm each; a group covers one or
 *   more runs of an output row. For each tap (ki, kj) every run is one
 *   masked load per input channel (stride 2: two loads and a permute
 *   keeping the even elements), and the group is one store into its panel
 *   (two halves into two panels 8 wide). The masks and offsets depend on
 *   the tap only, so the loop over the input channels is loads and a
 *   store; groups away from the edges skip the masks (pack_interior).
 * - direct convolution (stride 1, rows kept whole): B's rows are masked
 *   loads of the input planes themselves, fed to an 8 x 32 kernel like
 *   the packed GEMM's (no im2col at all).
 * - depthwise 3x3 planes: eight output rows at a time in groups of 16
 *   columns, each input row's three shifted vectors loaded once (masked,
 *   straight from the unpadded plane) for every output row it feeds,
 *   eight independent FMA chains; the fused sum and ReLU/Clip applied in
 *   registers before a masked store of each group. */
#include "conv-impl.h"
#include "sgemm-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define LANES 16

/* Lanes [lo, lo + len) of a group: output pixels (oh, ow ... ow + len - 1). */
struct run {
	int64_t oh, ow;
	int lo, len;
};

/* One run's load for a tap: lanes `lanes` of the group read the channel
 * plane at element off + lane (stride 1), or element off + 2 (lane - lo)
 * of the 32 from off masked by src (stride 2). */
struct tap {
	int64_t off;
	uint32_t src;
	__mmask16 lanes;
	int lo;
};

static inline uint32_t bits(int64_t a, int64_t b)	/* bits [a, b) of 32; a, b clamped */
{
	a = a < 0 ? 0 : a;
	b = b > 32 ? 32 : b;
	return a >= b ? 0 : (uint32_t)(((UINT64_C(1) << b) - 1) ^ ((UINT64_C(1) << a) - 1));
}

/* The loads of tap (ki, kj) for each run of a group; returns how many. */
static int taps_of(const struct conv_geom *g, const struct run *r, int nr, int64_t ki, int64_t kj,
		   struct tap *t)
{
	int n = 0;
	for (int s = 0; s < nr; s++) {
		int64_t ih = r[s].oh * g->sh - g->pt + ki * g->dh;
		int64_t iw0 = r[s].ow * g->sw - g->pl + kj * g->dw;
		if (ih < 0 || ih >= g->H)
			continue;
		if (g->sw == 1) {
			int64_t a = -iw0 > 0 ? -iw0 : 0, b = g->W - iw0 < r[s].len ? g->W - iw0 : r[s].len;
			if (a >= b)
				continue;
			t[n].lanes = (__mmask16)(bits(a, b) << r[s].lo);
			t[n].off = ih * g->W + iw0 - r[s].lo;
		} else {
			int64_t a = -iw0 > 0 ? -iw0 : 0, b = 2 * r[s].len - 1;
			b = g->W - iw0 < b ? g->W - iw0 : b;
			if (a >= b)
				continue;
			t[n].src = bits(a, b);
			t[n].lanes = (__mmask16)(bits(0, r[s].len) << r[s].lo);
			t[n].off = ih * g->W + iw0;
		}
		t[n++].lo = r[s].lo;
	}
	return n;
}

static inline const float *at(const float *base, int64_t off)
{
	/* off may lie before the plane for lanes masked off: no C pointer
	 * arithmetic out of the object */
	return (const float *)((uintptr_t)base + (uintptr_t)(off * (int64_t)sizeof(float)));
}

/* Lane i: 2 i, the even elements of two vectors (stride 2). */
__attribute__((target("avx512f"))) static inline __m512i even_lanes(void)
{
	return _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
}

__attribute__((target("avx512f"))) static inline void put_halves(__m512 v, float *d0, float *d1)
{
	_mm256_storeu_ps(d0, _mm512_castps512_ps256(v));
	if (d1)
		_mm256_storeu_ps(d1, _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

/* A group of 16 pixels in one output row whose every tap, and every float
 * its loads touch, lies inside the input (most groups of a large image):
 * no masks, and the offsets are the tap's shift in the plane. */
static int interior(const struct conv_geom *g, const struct run *r, int nruns)
{
	int64_t ih0 = r->oh * g->sh - g->pt, iw0 = r->ow * g->sw - g->pl;
	return nruns == 1 && r->len == LANES && ih0 >= 0 && ih0 + (g->kh - 1) * g->dh < g->H &&
	       iw0 >= 0 && iw0 + (g->kw - 1) * g->dw + (g->sw == 1 ? LANES - 1 : 2 * LANES - 1) < g->W;
}

__attribute__((target("avx512f"))) static void pack_interior(const struct conv_geom *g,
							     const float *x, const struct run *r,
							     float *d0, float *d1, int64_t nr,
							     int half)
{
	const __m512i even = even_lanes();
	const float *b0 = x + (r->oh * g->sh - g->pt) * g->W + r->ow * g->sw - g->pl;
	int64_t kk = g->kh * g->kw;

	for (int64_t ki = 0; ki < g->kh; ki++)
		for (int64_t kj = 0; kj < g->kw; kj++) {
			const float *src = b0 + ki * g->dh * g->W + kj * g->dw;
			int64_t k = ki * g->kw + kj;
			float *o0 = d0 + k * nr, *o1 = d1 ? d1 + k * nr : NULL;
			for (int64_t ci = 0; ci < g->Cg; ci++, src += g->sx, o0 += kk * nr,
				     o1 = o1 ? o1 + kk * nr : NULL) {
				__m512 v = _mm512_loadu_ps(src);
				if (g->sw == 2)
					v = _mm512_permutex2var_ps(v, even, _mm512_loadu_ps(src + LANES));
				if (half)
					put_halves(v, o0, o1);
				else
					_mm512_storeu_ps(o0, v);
			}
		}
}

/* One group into rows of its panel(s): d0 (and d1 for the upper 8 lanes
 * when panels are 8 wide; NULL: none past the last panel), rows nr apart. */
__attribute__((target("avx512f"))) static void pack_group(const struct conv_geom *g, const float *x,
							  const struct run *r, int nruns, float *d0,
							  float *d1, int64_t nr, int half)
{
	struct tap t[LANES];
	const __m512i iota = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
	int64_t kk = g->kh * g->kw;

	for (int64_t ki = 0; ki < g->kh; ki++)
		for (int64_t kj = 0; kj < g->kw; kj++) {
			int n = taps_of(g, r, nruns, ki, kj, t);
			int64_t k = ki * g->kw + kj;
			float *o0 = d0 + k * nr, *o1 = d1 ? d1 + k * nr : NULL;
			for (int64_t ci = 0; ci < g->Cg; ci++, o0 += kk * nr, o1 = o1 ? o1 + kk * nr : NULL) {
				const float *base = x + ci * g->sx;
				__m512 v = _mm512_setzero_ps();
				if (g->sw == 1) {
					for (int i = 0; i < n; i++)
						v = _mm512_mask_loadu_ps(v, t[i].lanes, at(base, t[i].off));
				} else {
					for (int i = 0; i < n; i++) {
						__m512 lo = _mm512_maskz_loadu_ps((__mmask16)t[i].src,
										  at(base, t[i].off));
						__m512 hi = _mm512_maskz_loadu_ps((__mmask16)(t[i].src >> 16),
										  at(base, t[i].off + LANES));
						__m512i idx = _mm512_slli_epi32(
							_mm512_sub_epi32(iota, _mm512_set1_epi32(t[i].lo)), 1);
						v = _mm512_mask_mov_ps(v, t[i].lanes,
								       _mm512_permutex2var_ps(lo, idx, hi));
					}
				}
				if (half)
					put_halves(v, o0, o1);
				else
					_mm512_storeu_ps(o0, v);
			}
		}
}

int conv_im2col_avx512(const struct conv_geom *g, const float *x, int64_t c0, int64_t c1,
		       int64_t nr, float *dst)
{
	if (!__builtin_cpu_supports("avx512f") || g->sw < 1 || g->sw > 2 || (nr != 8 && nr % LANES))
		return -1;
	int64_t n = c1 - c0, panels = (n + nr - 1) / nr, K = g->K;
	int64_t groups = nr == 8 ? (panels + 1) / 2 : panels * (nr / LANES);
	struct run r[LANES];

	for (int64_t gi = 0; gi < groups; gi++) {
		int64_t p0 = c0 + gi * LANES, p1 = p0 + LANES < c1 ? p0 + LANES : c1;
		int nruns = 0;
		for (int64_t p = p0; p < p1; nruns++) {
			int64_t oh = p / g->OW, ow = p % g->OW;
			int64_t len = g->OW - ow < p1 - p ? g->OW - ow : p1 - p;
			r[nruns] = (struct run){ oh, ow, (int)(p - p0), (int)len };
			p += len;
		}
		float *d0, *d1 = NULL;
		if (nr == 8) {
			d0 = dst + 2 * gi * K * 8;
			d1 = 2 * gi + 1 < panels ? d0 + K * 8 : NULL;
		} else {
			d0 = dst + (gi * LANES / nr) * K * nr + (gi * LANES) % nr;
		}
		if (interior(g, r, nruns))
			pack_interior(g, x, r, d0, d1, nr, nr == 8);
		else
			pack_group(g, x, r, nruns, d0, d1, nr, nr == 8);
	}
	return 0;
}
/* ---- direct stride-1 convolution ---- */

/* Where a conv has stride 1 and keeps the row width (OW = W: pads left
 * and right add up to the kernel's reach), output pixel q = oh W + ow
 * reads, for tap (ki, kj), input element q + (ki dh - pt) W + kj dw - pl of
 * each channel plane: linear in q. So the GEMM's B row k = (ci, ki, kj)
 * for 32 consecutive output pixels is one unaligned load of the plane
 * itself, the lanes whose input falls in the padding (or past the
 * columns asked for) masked off. The micro-kernel reads B from the input
 * directly: no im2col, no packed copy (the 3x3 copy was nine times the
 * input). Tiles, K blocks and the order of every sum are those of
 * sgemm_packed with the AVX-512 kernel, and a masked lane is a zero as
 * im2col writes it: the results are identical. */
#define DIRECT_MR 8
#define DIRECT_NR 32
#define DIRECT_TAPS 64	/* kh kw at most */

int conv_direct_avx512_applies(const struct conv_geom *g)
{
	int64_t T = g->kh * g->kw;
	return __builtin_cpu_supports("avx512f") && g->sh == 1 && g->sw == 1 && g->OW == g->W &&
	       T > 1 && T <= DIRECT_TAPS;
}

/* One 8 x 32 tile of C (rows ldc apart; acc: add to it) over kc rows of
 * B starting at tap `tap` of the channel whose plane (advanced to the
 * tile's first pixel) is x; planes sx floats apart, taps T per channel at
 * element offsets off[], masks mask[] (bit l: lane l reads). */
__attribute__((target("avx512f"))) static void direct_8x32(int64_t kc, const float *a, const float *x,
							   int tap, int T, const int64_t *off,
							   const uint32_t *mask, int64_t sx, float *c,
							   int64_t ldc, int acc)
{
	__m512 t[DIRECT_MR][2];
#pragma GCC unroll 8
	for (int i = 0; i < DIRECT_MR; i++)
		for (int v = 0; v < 2; v++)
			t[i][v] = acc ? _mm512_loadu_ps(c + i * ldc + 16 * v) : _mm512_setzero_ps();
	for (int64_t k = 0; k < kc; tap = 0, x = at(x, sx)) {
		int64_t n = T - tap < kc - k ? T - tap : kc - k;
		for (int64_t e = tap + n; tap < e; tap++) {
			uint32_t m = mask[tap];
			__m512 b0 = _mm512_maskz_loadu_ps((__mmask16)m, at(x, off[tap]));
			__m512 b1 = _mm512_maskz_loadu_ps((__mmask16)(m >> 16), at(x, off[tap] + 16));
#pragma GCC unroll 8
			for (int i = 0; i < DIRECT_MR; i++) {
				__m512 av = _mm512_set1_ps(a[i]);
				t[i][0] = _mm512_fmadd_ps(av, b0, t[i][0]);
				t[i][1] = _mm512_fmadd_ps(av, b1, t[i][1]);
			}
			a += DIRECT_MR;
		}
		k += n;
	}
#pragma GCC unroll 8
	for (int i = 0; i < DIRECT_MR; i++)
		for (int v = 0; v < 2; v++)
			_mm512_storeu_ps(c + i * ldc + 16 * v, t[i][v]);
}

/* mask[tap]: the lanes of the tile at pixel q (of columns up to c1) that
 * read an input element for each tap (ki, kj). */
static void direct_masks(const struct conv_geom *g, int64_t q, int64_t c1, int T, uint32_t *mask)
{
	int64_t oh[DIRECT_NR], ow[DIRECT_NR], h = q / g->W, w = q % g->W;
	int n = 0;
	for (; n < DIRECT_NR && q + n < c1; n++) {
		oh[n] = h, ow[n] = w;
		if (++w == g->W)
			w = 0, h++;
	}
	for (int tp = 0; tp < T; tp++) {
		int64_t dy = tp / g->kw * g->dh - g->pt, dx = tp % g->kw * g->dw - g->pl;
		uint32_t m = 0;
		for (int l = 0; l < n; l++) {
			int64_t ih = oh[l] + dy, iw = ow[l] + dx;
			m |= (uint32_t)(ih >= 0 && ih < g->H && iw >= 0 && iw < g->W) << l;
		}
		mask[tp] = m;
	}
}

size_t conv_direct_mask_count(const struct conv_geom *g)
{
	return (size_t)((g->OH * g->OW + DIRECT_NR - 1) / DIRECT_NR * g->kh * g->kw);
}

void conv_direct_masks(const struct conv_geom *g, uint32_t *dst)
{
	int T = (int)(g->kh * g->kw);
	for (int64_t q = 0; q < g->OH * g->OW; q += DIRECT_NR, dst += T)
		direct_masks(g, q, g->OH * g->OW, T, dst);
}

void conv_direct_avx512(const struct conv_geom *g, const float *ap, const float *x, int64_t c0,
			int64_t c1, int64_t m0, int64_t m1, float *c, int64_t ldc,
			const struct sgemm_epi *ep, const uint32_t *masks)
{
	int T = (int)(g->kh * g->kw);
	int64_t K = g->K, kc = sgemm_kc(K), mpad = sgemm_round_up(g->Mg, DIRECT_MR), N = c1 - c0;
	int64_t tiles = (N + DIRECT_NR - 1) / DIRECT_NR, off[DIRECT_TAPS];
	uint32_t local[(CONV_BLOCK_MAX / DIRECT_NR) * DIRECT_TAPS];
	const uint32_t *mask = local;
	float edge[DIRECT_MR * DIRECT_NR] __attribute__((aligned(64)));

	for (int tp = 0; tp < T; tp++)
		off[tp] = (tp / g->kw * g->dh - g->pt) * g->W + tp % g->kw * g->dw - g->pl;
	if (masks)	/* the plane's table: tiles start at multiples of 32 */
		mask = masks + c0 / DIRECT_NR * T;
	else
		for (int64_t j = 0; j < tiles; j++)
			direct_masks(g, c0 + j * DIRECT_NR, c1, T, local + j * T);
	for (int64_t k0 = 0; k0 < K; k0 += kc) {
		int64_t kb = K - k0 < kc ? K - k0 : kc;
		int acc = k0 > 0, tap = (int)(k0 % T);
		const float *xk = x + k0 / T * g->sx + c0;
		for (int64_t m = m0; m < m1; m += DIRECT_MR) {
			const float *a = ap + k0 * mpad + m * kb;
			int64_t mr = m1 - m < DIRECT_MR ? m1 - m : DIRECT_MR;
			for (int64_t j = 0; j < tiles; j++) {
				int64_t nr = N - j * DIRECT_NR < DIRECT_NR ? N - j * DIRECT_NR : DIRECT_NR;
				float *ct = c + m * ldc + j * DIRECT_NR;
				const float *xt = xk + j * DIRECT_NR;
				if (mr == DIRECT_MR && nr == DIRECT_NR) {
					direct_8x32(kb, a, xt, tap, T, off, mask + j * T, g->sx, ct, ldc, acc);
					continue;
				}
				/* at C's edge: the whole tile locally, its corner copied */
				for (int64_t i = 0; i < mr; i++)
					for (int64_t l = 0; l < nr; l++)
						edge[i * DIRECT_NR + l] = acc ? ct[i * ldc + l] : 0.f;
				direct_8x32(kb, a, xt, tap, T, off, mask + j * T, g->sx, edge, DIRECT_NR, 1);
				for (int64_t i = 0; i < mr; i++)
					for (int64_t l = 0; l < nr; l++)
						ct[i * ldc + l] = edge[i * DIRECT_NR + l];
			}
			if (ep && k0 + kb == K)
				ep->fn(ep->arg, c + m * ldc, ldc, m, mr, N);
		}
	}
}

/* ---- depthwise 3x3 ---- */

#define DW_ROWS 8	/* output rows at a time: eight FMA chains */

/* Output rows [oh0, oh0 + DW_ROWS) of a plane, SH (1 or 2) their vertical
 * stride (dh 1): input row r = 0 .. (DW_ROWS - 1) SH + 2 from oh0 SH - pt
 * feeds output row q with tap row r - q SH, so each input row's three
 * shifted vectors are loaded once and used by up to three output rows
 * (stride 1: 30 loads for 72 FMA, against 72 loading per tap). The loops
 * unroll fully, so which (q, ki) a row feeds is known at compile time.
 * Each output is bias + its taps in (ki, kj) order, then the fused sum
 * (+ (s + 0), as cpu_bias_act adds it) and ReLU or Clip. */
__attribute__((target("avx512f"), always_inline)) static inline void
dw_rows(const struct conv_geom *g, const float *x, const __m512 *wv, float bias, float *y,
	const float *zero, const struct dw_epi *ep, int64_t oh0, const int SH)
{
	const __m512i even = even_lanes();
	enum { NR = (DW_ROWS - 1) * 2 + 3 };
	const float *rp[NR];
	int nq = g->OH - oh0 < DW_ROWS ? (int)(g->OH - oh0) : DW_ROWS;

#pragma GCC unroll 17
	for (int r = 0; r < (DW_ROWS - 1) * SH + 3; r++) {
		int64_t ih = oh0 * SH - g->pt + r;
		rp[r] = ih < 0 || ih >= g->H ? zero : x + ih * g->W;
	}
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
		__m512 acc[DW_ROWS];
#pragma GCC unroll 8
		for (int q = 0; q < DW_ROWS; q++)
			acc[q] = _mm512_set1_ps(bias);
#pragma GCC unroll 17
		for (int r = 0; r < (DW_ROWS - 1) * SH + 3; r++) {
			__m512 v[3];
#pragma GCC unroll 3
			for (int kj = 0; kj < 3; kj++) {
				v[kj] = _mm512_maskz_loadu_ps(mlo[kj], at(rp[r], off[kj]));
				if (g->sw == 2)
					v[kj] = _mm512_permutex2var_ps(
						v[kj], even, _mm512_maskz_loadu_ps(mhi[kj], at(rp[r], off[kj] + 16)));
			}
#pragma GCC unroll 8
			for (int q = 0; q < DW_ROWS; q++) {
				int ki = r - q * SH;
				if (ki < 0 || ki > 2)
					continue;
#pragma GCC unroll 3
				for (int kj = 0; kj < 3; kj++)
					acc[q] = _mm512_fmadd_ps(wv[ki * 3 + kj], v[kj], acc[q]);
			}
		}
		const __m512 lo = _mm512_set1_ps(ep->lo), hi = _mm512_set1_ps(ep->hi);
#pragma GCC unroll 8
		for (int q = 0; q < nq; q++) {
			int64_t o = (oh0 + q) * g->OW + c0;
			__m512 a = acc[q];
			if (ep->sum)
				a = _mm512_add_ps(a, _mm512_add_ps(_mm512_maskz_loadu_ps(out, ep->sum + o),
								   _mm512_setzero_ps()));
			if (ep->act == DW_ACT_RELU)
				a = _mm512_max_ps(a, _mm512_setzero_ps());	/* x > 0 ? x : 0 */
			else if (ep->act == DW_ACT_CLIP)	/* x < lo ? lo : x, then v > hi ? hi : v */
				a = _mm512_min_ps(hi, _mm512_max_ps(lo, a));
			_mm512_mask_storeu_ps(y + o, out, a);
		}
	}
}

int conv_dw3x3_avx512_applies(const struct conv_geom *g)
{
	return __builtin_cpu_supports("avx512f") && g->kh == 3 && g->kw == 3 && g->sw >= 1 && g->sw <= 2 &&
	       g->sh >= 1 && g->sh <= 2 && g->dh == 1;
}

__attribute__((target("avx512f"))) void conv_dw3x3_avx512(const struct conv_geom *g, const float *x,
							   const float *w, float bias, float *y,
							   const float *zero, const struct dw_epi *ep)
{
	__m512 wv[9];
#pragma GCC unroll 9
	for (int i = 0; i < 9; i++)
		wv[i] = _mm512_set1_ps(w[i]);
	for (int64_t oh0 = 0; oh0 < g->OH; oh0 += DW_ROWS)
		if (g->sh == 1)
			dw_rows(g, x, wv, bias, y, zero, ep, oh0, 1);
		else
			dw_rows(g, x, wv, bias, y, zero, ep, oh0, 2);
}
#else
int conv_im2col_avx512(const struct conv_geom *g, const float *x, int64_t c0, int64_t c1,
		       int64_t nr, float *dst)
{
	(void)g, (void)x, (void)c0, (void)c1, (void)nr, (void)dst;
	return -1;
}
int conv_dw3x3_avx512_applies(const struct conv_geom *g)
{
	(void)g;
	return 0;
}

int conv_direct_avx512_applies(const struct conv_geom *g)
{
	(void)g;
	return 0;
}

size_t conv_direct_mask_count(const struct conv_geom *g)
{
	(void)g;
	return 0;
}

void conv_direct_masks(const struct conv_geom *g, uint32_t *dst)
{
	(void)g, (void)dst;
}

void conv_direct_avx512(const struct conv_geom *g, const float *ap, const float *x, int64_t c0,
			int64_t c1, int64_t m0, int64_t m1, float *c, int64_t ldc,
			const struct sgemm_epi *ep, const uint32_t *masks)
{
	(void)g, (void)ap, (void)x, (void)c0, (void)c1, (void)m0, (void)m1, (void)c, (void)ldc, (void)ep;
	(void)masks;
}

void conv_dw3x3_avx512(const struct conv_geom *g, const float *x, const float *w, float bias, float *y,
		       const float *zero, const struct dw_epi *ep)
{
	(void)g, (void)x, (void)w, (void)bias, (void)y, (void)zero, (void)ep;
}
#endif
