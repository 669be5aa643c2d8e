/* Packed float32 GEMM of the CPU backend (sgemm.c): C = A B with A packed
 * once (Conv weights, at prepare) and B packed per call (im2col writes its
 * panels directly). One register-blocked micro-kernel per ISA, chosen at
 * run time by CPU features or forced with SPLITD_CPU_ISA.
 *
 * Layouts, for a kernel of MR x NR:
 *  - packed A: K split into blocks of sgemm_kc(K); block by block, the
 *    ceil(M / MR) panels of MR rows, each k-major (kc x MR, rows past M
 *    zero). Block k0 of length kc, panel p: ap + k0 * Mpad + p * MR * kc.
 *  - packed B: ceil(N / NR) panels of NR columns over the whole K, k-major
 *    (K x NR, columns past N zero). Panel j, row k: bp + (j * K + k) * NR. */
#ifndef SPLITD_SGEMM_IMPL_H
#define SPLITD_SGEMM_IMPL_H

#include <stddef.h>
#include <stdint.h>

enum sgemm_isa { SGEMM_PORTABLE, SGEMM_AVX2, SGEMM_AVX512, SGEMM_NEON, SGEMM_ISA_COUNT };

/* One full MR x NR tile: c (row stride ldc) = (acc ? c : 0) + sum over kc
 * of a's column times b's row. */
typedef void (*sgemm_ukernel)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
			      int acc);

struct sgemm_kernel {
	enum sgemm_isa isa;
	const char *name;
	int mr, nr;
	sgemm_ukernel fn;
};

/* The kernel SPLITD_CPU_ISA names (avx512, avx2, neon, portable) when this
 * CPU runs it, else the best this CPU runs. */
const struct sgemm_kernel *sgemm_kernel_pick(void);
/* The kernel of isa, or NULL when this build or CPU cannot run it. */
const struct sgemm_kernel *sgemm_kernel_for(enum sgemm_isa isa);
const char *sgemm_isa_name(enum sgemm_isa isa);

/* The K block length for a K (every block but the last this long). */
int64_t sgemm_kc(int64_t K);
static inline int64_t sgemm_round_up(int64_t x, int64_t m)
{
	return (x + m - 1) / m * m;
}

/* Floats of the packed A of an M x K matrix. */
static inline size_t sgemm_packed_a_floats(const struct sgemm_kernel *k, int64_t M, int64_t K)
{
	return (size_t)(sgemm_round_up(M, k->mr) * K);
}
void sgemm_pack_a(const struct sgemm_kernel *k, int64_t M, int64_t K, const float *a, int64_t lda,
		  float *dst);
/* Columns [0, N) of the row-major K x N matrix b (row stride ldb), in
 * panels of nr columns (the kernel's NR, or its MR for sgemm_packed_t). */
void sgemm_pack_b(int64_t nr, int64_t K, int64_t N, const float *b, int64_t ldb, float *dst);

/* What to do to rows of C once they are final (a Conv's bias, residual
 * sum and activation): fn(arg, c + m * ldc, ldc, m, rows, N) for rows
 * [m, m + rows) of the columns [0, N), called right after the last K block
 * wrote them, so they are still in L1 (a pass over the whole block after
 * the GEMM found them in L2). NULL: nothing. */
struct sgemm_epi {
	void (*fn)(void *arg, float *c, int64_t ldc, int64_t m, int64_t rows, int64_t n);
	void *arg;
};

/* Rows [m0, m1) of C = A B (m0 a multiple of MR), columns [0, N); ap is the
 * packed A of all M rows, bp the packed B of the N columns; ep as above
 * (per MR rows). */
void sgemm_packed(const struct sgemm_kernel *k, int64_t M, int64_t N, int64_t K, const float *ap,
		  const float *bp, int64_t m0, int64_t m1, float *c, int64_t ldc,
		  const struct sgemm_epi *ep);

/* The transposed use, for few columns (7x7 and 14x14 convs: 49 and 196
 * are far from multiples of NR but near ones of MR): the kernel's tile is
 * MR columns (pixels) x NR rows (channels). wt: the M x K matrix w packed
 * by sgemm_pack_bt as NR-row panels over the whole K ([panel][k][NR],
 * round_up(M, NR) * K floats); xp: B's columns in panels of MR
 * (sgemm_pack_b with nr = MR). Rows [m0, m1) (m0 a multiple of NR) of C,
 * stored transposed from the tiles (ep per NR rows). Each element is summed in the same
 * order, K blocks and all, as by sgemm_packed: the results are identical. */
void sgemm_pack_bt(const struct sgemm_kernel *k, int64_t M, int64_t K, const float *w, int64_t ldw,
		   float *dst);
void sgemm_packed_t(const struct sgemm_kernel *k, int64_t M, int64_t N, int64_t K, const float *xp,
		    const float *wt, int64_t m0, int64_t m1, float *c, int64_t ldc,
		    const struct sgemm_epi *ep);

/* The micro-kernels (sgemm.c, sgemm_x86.c, sgemm_neon.c). */
extern const struct sgemm_kernel sgemm_portable;
#if defined(__x86_64__)
extern const struct sgemm_kernel sgemm_avx2, sgemm_avx512;
#endif
#if defined(__aarch64__)
extern const struct sgemm_kernel sgemm_neon;
#endif

#endif
