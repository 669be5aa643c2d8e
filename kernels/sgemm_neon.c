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

static void neon_8x12(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int acc)
{
	float32x4_t t[8][3];

	for (int i = 0; i < 8; i++)
		for (int v = 0; v < 3; v++)
			t[i][v] = acc ? vld1q_f32(c + i * ldc + 4 * v) : vdupq_n_f32(0.f);
	for (int64_t k = 0; k < kc; k++) {
		float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
		float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8);
#define ROW(i, av, lane)                                              \
	do {                                                          \
		t[i][0] = vfmaq_laneq_f32(t[i][0], b0, av, lane);     \
		t[i][1] = vfmaq_laneq_f32(t[i][1], b1, av, lane);     \
		t[i][2] = vfmaq_laneq_f32(t[i][2], b2, av, lane);     \
	} while (0)
		ROW(0, a0, 0);
		ROW(1, a0, 1);
		ROW(2, a0, 2);
		ROW(3, a0, 3);
		ROW(4, a1, 0);
		ROW(5, a1, 1);
		ROW(6, a1, 2);
		ROW(7, a1, 3);
#undef ROW
		a += 8;
		b += 12;
	}
	for (int i = 0; i < 8; i++)
		for (int v = 0; v < 3; v++)
			vst1q_f32(c + i * ldc + 4 * v, t[i][v]);
}

const struct sgemm_kernel sgemm_neon = { SGEMM_NEON, "neon", 8, 12, neon_8x12 };
#endif
