/* x86-64 micro-kernels of the packed GEMM: AVX-512F and AVX2+FMA, each
 * compiled for its ISA by a target attribute so the build runs on any
 * x86-64; sgemm_kernel_for() checks the CPU before handing one out.
 *
 * Both broadcast one element of A's column per row and multiply it with NR
 * consecutive elements of B's row (one or more vector loads), accumulating
 * the MR x NR tile in registers:
 *  - AVX-512 8 x 32: 16 zmm accumulators, per k 2 vector loads of B and 8
 *    broadcasts of A: 16 FMA for 10 loads (2 full-width). 16 chains cover
 *    the FMA latency (4 cycles) on both FMA pipes twice over; rows of 8
 *    leave no edge on the 8k-channel layers that dominate CNNs. Measured
 *    against 14 x 32 (28 FMA per 16 loads), 6 x 64 and 28 x 16 with
 *    bench/cpu_peak --gemm: within noise on the big layers, and 14 x 32
 *    computes 70 rows for 64 channels.
 *  - AVX2 6 x 16: 12 ymm accumulators, per k 2 loads of B and 6
 *    broadcasts: 12 FMA for 8 loads (the classic Haswell shape). */
#if defined(__x86_64__)
#include <immintrin.h>

#include "sgemm-impl.h"

/* MR rows x NV vectors of 16 floats. */
#define AVX512_KERNEL(NAME, MR, NV)                                                              \
	__attribute__((target("avx512f"))) static void NAME(int64_t kc, const float *a,        \
							    const float *b, float *c,           \
							    int64_t ldc, int acc)               \
	{                                                                                        \
		__m512 t[MR][NV];                                                                \
		_Pragma("GCC unroll 32") for (int i = 0; i < MR; i++)                            \
			_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                     \
				t[i][v] = acc ? _mm512_loadu_ps(c + i * ldc + 16 * v)            \
					      : _mm512_setzero_ps();                             \
		for (int64_t k = 0; k < kc; k++) {                                               \
			__m512 bv[NV];                                                           \
			_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                     \
				bv[v] = _mm512_loadu_ps(b + 16 * v);                              \
			_Pragma("GCC unroll 32") for (int i = 0; i < MR; i++) {                  \
				__m512 av = _mm512_set1_ps(a[i]);                                \
				_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)             \
					t[i][v] = _mm512_fmadd_ps(av, bv[v], t[i][v]);           \
			}                                                                        \
			a += MR;                                                                 \
			b += 16 * NV;                                                            \
		}                                                                                \
		_Pragma("GCC unroll 32") for (int i = 0; i < MR; i++)                            \
			_Pragma("GCC unroll 8") for (int v = 0; v < NV; v++)                     \
				_mm512_storeu_ps(c + i * ldc + 16 * v, t[i][v]);                 \
	}

#define AVX2_KERNEL(NAME, MR, NV)                                                                \
	__attribute__((target("avx2,fma"))) static void NAME(int64_t kc, const float *a,       \
							     const float *b, float *c,          \
							     int64_t ldc, int acc)              \
	{                                                                                        \
		__m256 t[MR][NV];                                                                \
		_Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                            \
			_Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                     \
				t[i][v] = acc ? _mm256_loadu_ps(c + i * ldc + 8 * v)             \
					      : _mm256_setzero_ps();                             \
		for (int64_t k = 0; k < kc; k++) {                                               \
			__m256 bv[NV];                                                           \
			_Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                     \
				bv[v] = _mm256_loadu_ps(b + 8 * v);                               \
			_Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                  \
				__m256 av = _mm256_broadcast_ss(a + i);                          \
				_Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)             \
					t[i][v] = _mm256_fmadd_ps(av, bv[v], t[i][v]);           \
			}                                                                        \
			a += MR;                                                                 \
			b += 8 * NV;                                                             \
		}                                                                                \
		_Pragma("GCC unroll 16") for (int i = 0; i < MR; i++)                            \
			_Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                     \
				_mm256_storeu_ps(c + i * ldc + 8 * v, t[i][v]);                  \
	}

AVX512_KERNEL(avx512_14x32, 14, 2)
AVX512_KERNEL(avx512_8x32, 8, 2)
AVX512_KERNEL(avx512_6x64, 6, 4)
AVX512_KERNEL(avx512_28x16, 28, 1)
AVX2_KERNEL(avx2_6x16, 6, 2)

const struct sgemm_kernel sgemm_avx512 = { SGEMM_AVX512, "avx512", 8, 32, avx512_8x32 };
const struct sgemm_kernel sgemm_avx2 = { SGEMM_AVX2, "avx2", 6, 16, avx2_6x16 };

/* The shapes measured for the choice above (bench/cpu_peak.c). */
const struct sgemm_kernel sgemm_avx512_variants[] = {
	{ SGEMM_AVX512, "avx512 14x32", 14, 32, avx512_14x32 },
	{ SGEMM_AVX512, "avx512 8x32", 8, 32, avx512_8x32 },
	{ SGEMM_AVX512, "avx512 6x64", 6, 64, avx512_6x64 },
	{ SGEMM_AVX512, "avx512 28x16", 28, 16, avx512_28x16 },
	{ SGEMM_AVX2, "avx2 6x16", 6, 16, avx2_6x16 },
	{ 0, NULL, 0, 0, NULL },
};
#endif
