/* Internals shared by conv.c and its AVX-512 parts (conv_x86.c). */
#ifndef SPLITD_CONV_IMPL_H
#define SPLITD_CONV_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* One Conv's geometry: input C x H x W, output M x OH x OW, G groups of Cg
 * input and Mg output channels, K = Cg kh kw; 1-D convs have H = OH = 1. */
struct conv_geom {
	int64_t N, C, H, W, M, OH, OW, G, Cg, Mg, K, kh, kw, sh, sw, dh, dw, pt, pl;
	int64_t sx, sy, ss;	/* plane strides of x, y and the fused sum (elements) */
};

#define CONV_BLOCK_MAX 1024	/* columns of a GEMM conv's block at most */

struct sgemm_epi;

/* im2col of output columns [c0, c1) of the image x (Cg planes sx apart)
 * straight into B panels of nr columns (nr 8 or a multiple of 16; row k
 * of panel j at dst + (j K + k) nr, the last panel's tail zero), with
 * AVX-512 masked loads: no intermediate row, no per-run memcpy. Returns 0,
 * or -1 where it does not apply (no AVX-512 on this CPU or in this build,
 * horizontal stride above 2, another nr): the caller packs another way. */
int conv_im2col_avx512(const struct conv_geom *g, const float *x, int64_t c0, int64_t c1,
		       int64_t nr, float *dst);

/* A conv whose B rows are spans of its input planes (stride 1, OW = W):
 * rows [m0, m1) (m0 a multiple of 8) of one group's output columns
 * [c0, c1) (c0 a multiple of 32, c1 - c0 at most CONV_BLOCK_MAX) of C (rows
 * ldc apart, at column c0) = A B with the AVX-512 8 x 32 kernel, B read
 * from the group's input planes x; ap: the group's weights as
 * sgemm_pack_a packs them for that kernel; ep: as for sgemm_packed.
 * Identical to im2col + sgemm_packed. Only where
 * conv_direct_avx512_applies(): AVX-512 in this build and CPU, strides 1,
 * OW = W, kh kw at most 64. */
int conv_direct_avx512_applies(const struct conv_geom *g);
void conv_direct_avx512(const struct conv_geom *g, const float *ap, const float *x, int64_t c0,
			int64_t c1, int64_t m0, int64_t m1, float *c, int64_t ldc,
			const struct sgemm_epi *ep, const uint32_t *masks);
/* Its lane masks for a whole output plane (conv_direct_mask_count() of
 * them, the tiles of 32 pixels from 0, kh kw each), made once at prepare
 * and passed as masks (NULL: each call makes its block's). */
size_t conv_direct_mask_count(const struct conv_geom *g);
void conv_direct_masks(const struct conv_geom *g, uint32_t *dst);

/* What a depthwise plane gets after its taps, in registers: the fused sum
 * (plane of y's layout, or NULL), then none, ReLU or Clip [lo, hi]. */
enum dw_act { DW_ACT_NONE, DW_ACT_RELU, DW_ACT_CLIP };
struct dw_epi {
	const float *sum;
	enum dw_act act;
	float lo, hi;
};

/* One plane of a depthwise 3x3 conv, y =
 * act(bias + taps + sum), with AVX-512 masked loads straight from the
 * unpadded plane x (rows W apart); zero: W zeros, read for rows outside
 * the input. Only where conv_dw3x3_avx512_applies(): AVX-512 in this build
 * and CPU, 3x3, strides 1 or 2, no vertical dilation. */
int conv_dw3x3_avx512_applies(const struct conv_geom *g);
void conv_dw3x3_avx512(const struct conv_geom *g, const float *x, const float *w, float bias, float *y,
		       const float *zero, const struct dw_epi *ep);

#endif
