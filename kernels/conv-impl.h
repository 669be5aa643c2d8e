/* Internals shared by conv.c and its AVX-512 parts (conv_x86.c). */
#ifndef SPLITD_CONV_IMPL_H
#define SPLITD_CONV_IMPL_H

#include <stdint.h>

/* One Conv's geometry: input C x H x W, output M x OH x OW, G groups of Cg
 * input and Mg output channels, K = Cg kh kw; 1-D convs have H = OH = 1. */
struct conv_geom {
	int64_t N, C, H, W, M, OH, OW, G, Cg, Mg, K, kh, kw, sh, sw, dh, dw, pt, pl;
	int64_t sx, sy, ss;	/* plane strides of x, y and the fused sum (elements) */
};

/* im2col of output columns [c0, c1) of the image x (Cg planes sx apart)
 * straight into B panels of nr columns (nr 8 or a multiple of 16; row k
 * of panel j at dst + (j K + k) nr, the last panel's tail zero), with
 * AVX-512 masked loads: no intermediate row, no per-run memcpy. Returns 0,
 * or -1 where it does not apply (no AVX-512 on this CPU or in this build,
 * horizontal stride above 2, another nr): the caller packs another way. */
int conv_im2col_avx512(const struct conv_geom *g, const float *x, int64_t c0, int64_t c1,
		       int64_t nr, float *dst);

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
