/* aarch64 NEON micro-kernel of the packed GEMM: 8 x 12.
 *
 * 24 q-register accumulators (8 rows x 3 vectors of 4 columns); per k two
 * 128-bit loads of A's 8 elements and three of B's 12, then 24
 * vfmaq_laneq_f32 (by-element FMA, the lane picks A's row): 24 FMA for 5
 * vector loads, 29 of the 32 q registers in use. On a core with two 128-bit
 * FMA pipes (Carmel, Cortex-A78AE) that is 12 cycles of FMA per k against
 * 5 loads. */
#if defined(__aarch64__)
#include <arm_neon.h>

#include "sgemm-impl.h"

/* The 24 accumulators are named variables (an array of them spills). */
#define ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

static void neon_8x12(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int acc)
{
#define DECL(i)                                                                    \
	float32x4_t t##i##0 = vdupq_n_f32(0.f), t##i##1 = t##i##0, t##i##2 = t##i##0; \
	if (acc) {                                                                 \
		t##i##0 = vld1q_f32(c + i * ldc);                                  \
		t##i##1 = vld1q_f32(c + i * ldc + 4);                              \
		t##i##2 = vld1q_f32(c + i * ldc + 8);                              \
	}
	ROWS(DECL)
#undef DECL
	for (int64_t k = 0; k < kc; k++) {
		float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
		float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
#define FMA(i)                                                                         \
	t##i##0 = vfmaq_laneq_f32(t##i##0, b0, (i) < 4 ? a0 : a1, (i) & 3);            \
	t##i##1 = vfmaq_laneq_f32(t##i##1, b1, (i) < 4 ? a0 : a1, (i) & 3);            \
	t##i##2 = vfmaq_laneq_f32(t##i##2, b2, (i) < 4 ? a0 : a1, (i) & 3);
		ROWS(FMA)
#undef FMA
		a += 8;
		b += 12;
	}
#define STORE(i)                                   \
	vst1q_f32(c + i * ldc, t##i##0);           \
	vst1q_f32(c + i * ldc + 4, t##i##1);       \
	vst1q_f32(c + i * ldc + 8, t##i##2);
	ROWS(STORE)
#undef STORE
}

const struct sgemm_kernel sgemm_neon = { SGEMM_NEON, "neon", 8, 12, neon_8x12 };
#endif
