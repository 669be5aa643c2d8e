/* Packed float32 GEMM: packing, the blocked driver, the run-time choice of
 * micro-kernel, and the portable C micro-kernel. See sgemm-impl.h. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sgemm-impl.h"
#include "simd.h"

/* K block: A's micro-panel (MR x KC) stays in L1 while the B panels of a
 * block stream from L2. */
#define SGEMM_KC_MAX 512

int64_t sgemm_kc(int64_t K)
{
	int64_t nk = (K + SGEMM_KC_MAX - 1) / SGEMM_KC_MAX;
	return nk > 1 ? (K + nk - 1) / nk : K;
}

static const char *const isa_names[SGEMM_ISA_COUNT] = { "portable", "avx2", "avx512", "neon" };

const char *sgemm_isa_name(enum sgemm_isa isa)
{
	return isa >= 0 && isa < SGEMM_ISA_COUNT ? isa_names[isa] : "?";
}

const struct sgemm_kernel *sgemm_kernel_for(enum sgemm_isa isa)
{
	switch (isa) {
	case SGEMM_PORTABLE:
		return &sgemm_portable;
#if defined(__x86_64__)
	case SGEMM_AVX512:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx512f") ? &sgemm_avx512 : NULL;
	case SGEMM_AVX2:
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? &sgemm_avx2 : NULL;
#endif
#if defined(__aarch64__)
	case SGEMM_NEON:
		return &sgemm_neon;
#endif
	default:
		return NULL;
	}
}

const struct sgemm_kernel *sgemm_kernel_pick(void)
{
	static const enum sgemm_isa best[] = { SGEMM_AVX512, SGEMM_AVX2, SGEMM_NEON, SGEMM_PORTABLE };
	const char *want = getenv("SPLITD_CPU_ISA");
	const struct sgemm_kernel *k;

	for (int i = 0; want && *want && i < SGEMM_ISA_COUNT; i++)
		if (!strcasecmp(want, isa_names[i]) && (k = sgemm_kernel_for(i)))
			return k;
	for (size_t i = 0; i < sizeof(best) / sizeof(best[0]); i++)
		if ((k = sgemm_kernel_for(best[i])))
			return k;
	return &sgemm_portable;
}

void sgemm_pack_a(const struct sgemm_kernel *k, int64_t M, int64_t K, const float *a, int64_t lda,
		  float *dst)
{
	int64_t mr = k->mr, kc = sgemm_kc(K), mpad = sgemm_round_up(M, mr);

	for (int64_t k0 = 0; k0 < K; k0 += kc) {
		int64_t kb = K - k0 < kc ? K - k0 : kc;
		float *d = dst + k0 * mpad;
		for (int64_t m = 0; m < mpad; m += mr)
			for (int64_t kk = 0; kk < kb; kk++)
				for (int64_t i = 0; i < mr; i++)
					*d++ = m + i < M ? a[(m + i) * lda + k0 + kk] : 0.f;
	}
}

/* Panels of NR columns of b; NR a constant where inlined. */
static inline __attribute__((always_inline)) void pack_b_nr(int64_t NR, int64_t K, int64_t N,
							   const float *b, int64_t ldb, float *dst)
{
	for (int64_t j = 0; j < N; j += NR) {
		int64_t w = N - j < NR ? N - j : NR;
		float *d = dst + j * K;
		const float *src = b + j;
		if (w == NR) {
			for (int64_t kk = 0; kk < K; kk++, d += NR, src += ldb)
				memcpy(d, src, (size_t)NR * sizeof(float));
			continue;
		}
		for (int64_t kk = 0; kk < K; kk++, d += NR, src += ldb) {
			memcpy(d, src, (size_t)w * sizeof(float));
			memset(d + w, 0, (size_t)(NR - w) * sizeof(float));
		}
	}
}

void sgemm_pack_b(int64_t nr, int64_t K, int64_t N, const float *b, int64_t ldb, float *dst)
{
	if (nr == 32)
		pack_b_nr(32, K, N, b, ldb, dst);
	else if (nr == 16)
		pack_b_nr(16, K, N, b, ldb, dst);
	else if (nr == 12)
		pack_b_nr(12, K, N, b, ldb, dst);
	else if (nr == 8)
		pack_b_nr(8, K, N, b, ldb, dst);
	else
		pack_b_nr(nr, K, N, b, ldb, dst);
}

void sgemm_pack_bt(const struct sgemm_kernel *k, int64_t M, int64_t K, const float *w, int64_t ldw,
		   float *dst)
{
	int64_t nr = k->nr, mpad = sgemm_round_up(M, nr);
	for (int64_t m = 0; m < mpad; m += nr)
		for (int64_t kk = 0; kk < K; kk++)
			for (int64_t j = 0; j < nr; j++)
				*dst++ = m + j < M ? w[(m + j) * ldw + kk] : 0.f;
}

/* A tile at C's edge: computed whole in a local tile, its mr x nr corner
 * copied (and, with acc, read) from C. */
static void edge_tile(const struct sgemm_kernel *k, int64_t kc, const float *a, const float *b,
		      float *c, int64_t ldc, int64_t mr, int64_t nr, int acc)
{
	float t[32 * 64] __attribute__((aligned(64)));
	int64_t NR = k->nr;

	for (int64_t i = 0; i < mr; i++)
		for (int64_t j = 0; j < nr; j++)
			t[i * NR + j] = acc ? c[i * ldc + j] : 0.f;
	k->fn(kc, a, b, t, NR, 1);
	for (int64_t i = 0; i < mr; i++)
		memcpy(c + i * ldc, t + i * NR, (size_t)nr * sizeof(float));
}

void sgemm_packed(const struct sgemm_kernel *k, int64_t M, int64_t N, int64_t K, const float *ap,
		  const float *bp, int64_t m0, int64_t m1, float *c, int64_t ldc,
		  const struct sgemm_epi *ep)
{
	int64_t MR = k->mr, NR = k->nr, kc = sgemm_kc(K), mpad = sgemm_round_up(M, MR);

	for (int64_t k0 = 0; k0 < K; k0 += kc) {
		int64_t kb = K - k0 < kc ? K - k0 : kc;
		int acc = k0 > 0;
		for (int64_t m = m0; m < m1; m += MR) {
			const float *a = ap + k0 * mpad + m * kb;
			int64_t mr = m1 - m < MR ? m1 - m : MR;
			for (int64_t j = 0; j < N; j += NR) {
				const float *b = bp + (j * K + k0 * NR);
				int64_t nr = N - j < NR ? N - j : NR;
				if (mr == MR && nr == NR)
					k->fn(kb, a, b, c + m * ldc + j, ldc, acc);
				else
					edge_tile(k, kb, a, b, c + m * ldc + j, ldc, mr, nr, acc);
			}
			if (ep && k0 + kb == K)
				ep->fn(ep->arg, c + m * ldc, ldc, m, mr, N);
		}
	}
}

/* A transposed tile stored: t holds np pixels (rows, NR apart) of nm
 * channels; channel j's pixels go to c + j ldc. Where the tile has 8
 * pixels, 8 channels at a time by an 8 x 8 transpose in registers (three
 * rounds of shuffles), the rest element by element (the scalar loop took
 * 5 % of mobilenet_v2's time on two threads). */
CPU_CLONES
static void store_t(const float *t, int64_t NR, float *c, int64_t ldc, int64_t nm, int64_t np)
{
	int64_t j = 0;
	if (np == 8)
		for (; j + 8 <= nm; j += 8) {
			v8sf r[8], a[8], b[8];
			for (int i = 0; i < 8; i++)
				r[i] = *(const v8sf_u *)(t + i * NR + j);
			for (int i = 0; i < 8; i += 2) {	/* pairs of rows interleaved */
				a[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
				a[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
			}
			for (int i = 0; i < 8; i += 4)	/* then pairs of pairs */
				for (int h = 0; h < 2; h++) {
					b[i + 2 * h] = __builtin_shufflevector(a[i + h], a[i + h + 2], 0, 1, 8, 9, 4,
									   5, 12, 13);
					b[i + 2 * h + 1] = __builtin_shufflevector(a[i + h], a[i + h + 2], 2, 3, 10,
										   11, 6, 7, 14, 15);
				}
			for (int q = 0; q < 4; q++) {	/* halves: channels q and q + 4 */
				*(v8sf_u *)(c + (j + q) * ldc) =
					__builtin_shufflevector(b[q], b[q + 4], 0, 1, 2, 3, 8, 9, 10, 11);
				*(v8sf_u *)(c + (j + q + 4) * ldc) =
					__builtin_shufflevector(b[q], b[q + 4], 4, 5, 6, 7, 12, 13, 14, 15);
			}
		}
	for (; j < nm; j++)
		for (int64_t i = 0; i < np; i++)
			c[j * ldc + i] = t[i * NR + j];
}

void sgemm_packed_t(const struct sgemm_kernel *k, int64_t M, int64_t N, int64_t K, const float *xp,
		    const float *wt, int64_t m0, int64_t m1, float *c, int64_t ldc,
		    const struct sgemm_epi *ep)
{
	float t[32 * 64] __attribute__((aligned(64)));
	int64_t MR = k->mr, NR = k->nr, kc = sgemm_kc(K);

	for (int64_t m = m0; m < m1; m += NR) {
		const float *b = wt + m * K;
		int64_t nm = m1 - m < NR ? m1 - m : NR;
		for (int64_t p = 0; p < N; p += MR) {
			const float *a = xp + p * K;
			int64_t np = N - p < MR ? N - p : MR;
			for (int64_t k0 = 0; k0 < K; k0 += kc)
				k->fn(K - k0 < kc ? K - k0 : kc, a + k0 * MR, b + k0 * NR, t, NR, k0 > 0);
			store_t(t, NR, c + m * ldc + p, ldc, nm, np);
		}
		if (ep)
			ep->fn(ep->arg, c + m * ldc, ldc, m, nm, N);
	}
}

/* ---- portable C: 4 x 16, left to the compiler's baseline vectors ---- */
#define P_MR 4
#define P_NR 16

static void portable_4x16(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, int acc)
{
	float t[P_MR][P_NR];

	for (int i = 0; i < P_MR; i++)
		for (int j = 0; j < P_NR; j++)
			t[i][j] = acc ? c[i * ldc + j] : 0.f;
	for (int64_t kk = 0; kk < kc; kk++) {
		const float *ak = a + kk * P_MR, *bk = b + kk * P_NR;
		for (int i = 0; i < P_MR; i++)
			for (int j = 0; j < P_NR; j++)
				t[i][j] += ak[i] * bk[j];
	}
	for (int i = 0; i < P_MR; i++)
		for (int j = 0; j < P_NR; j++)
			c[i * ldc + j] = t[i][j];
}

const struct sgemm_kernel sgemm_portable = { SGEMM_PORTABLE, "portable", P_MR, P_NR, portable_4x16 };
