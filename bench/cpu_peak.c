/* The machine's float32 FMA peak, measured, and the packed GEMM's
 * micro-kernels against it (issue 17).
 *
 *   cpu_peak [--threads T] [--json] [--gemm]
 *
 * Peak: per thread, chains of independent vector FMAs (enough to cover the
 * FMA latency on every pipe) for a fixed count; GFLOP/s = 2 x lanes x FMAs /
 * seconds, 512-bit (AVX-512F), 256-bit (AVX2+FMA) or 128-bit (NEON), summed
 * over T threads that run at once. --gemm adds the single-thread GFLOP/s of
 * every micro-kernel variant on resnet18's 3x3 im2col shapes (A and B
 * packed beforehand: the kernel and its blocking alone). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sgemm-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
extern const struct sgemm_kernel sgemm_avx512_variants[];
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#define ITERS 20000000L

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Each returns the flops done: 12 independent FMA chains, in registers. */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static double fma512(void)
{
	__m512 m = _mm512_set1_ps(0.999f), x = _mm512_set1_ps(1e-3f);
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)i);
#define STEP(i) a##i = _mm512_fmadd_ps(a##i, m, x);
#define SUM(i) s += _mm512_reduce_add_ps(a##i);
	CHAINS(DECL)
	for (long it = 0; it < ITERS; it++) {
		CHAINS(STEP)
		__asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5));
	}
	float s = 0;
	CHAINS(SUM)
#undef DECL
#undef STEP
#undef SUM
	return s == 1234.5f ? 0 : 2.0 * 16 * 12 * ITERS;
}

__attribute__((target("avx2,fma"))) static double fma256(void)
{
	__m256 m = _mm256_set1_ps(0.999f), x = _mm256_set1_ps(1e-3f);
#define DECL(i) __m256 a##i = _mm256_set1_ps((float)i);
#define STEP(i) a##i = _mm256_fmadd_ps(a##i, m, x);
#define SUM(i) s += _mm256_cvtss_f32(a##i);
	CHAINS(DECL)
	for (long it = 0; it < ITERS; it++) {
		CHAINS(STEP)
		__asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
	}
	float s = 0;
	CHAINS(SUM)
#undef DECL
#undef STEP
#undef SUM
	return s == 1234.5f ? 0 : 2.0 * 8 * 12 * ITERS;
}
#elif defined(__aarch64__)
static double fma128(void)
{
	float32x4_t m = vdupq_n_f32(0.999f), x = vdupq_n_f32(1e-3f);
#define DECL(i) float32x4_t a##i = vdupq_n_f32((float)i);
#define STEP(i) a##i = vfmaq_f32(x, a##i, m);
#define SUM(i) s += vgetq_lane_f32(a##i, 0);
	CHAINS(DECL)
	for (long it = 0; it < ITERS; it++) {
		CHAINS(STEP)
		__asm__ volatile("" : "+w"(a0), "+w"(a1), "+w"(a2), "+w"(a3), "+w"(a4), "+w"(a5));
	}
	float s = 0;
	CHAINS(SUM)
#undef DECL
#undef STEP
#undef SUM
	return s == 1234.5f ? 0 : 2.0 * 4 * 12 * ITERS;
}
#endif

struct probe { double (*fn)(void); double flops, secs; };

static void *probe_thread(void *arg)
{
	struct probe *p = arg;
	double t0 = now_s();
	p->flops = p->fn();
	p->secs = now_s() - t0;
	return NULL;
}

/* GFLOP/s of fn on `threads` threads at once (sum of per-thread rates). */
static double peak(double (*fn)(void), int threads)
{
	struct probe p[64];
	pthread_t th[64];
	double g = 0;
	for (int i = 0; i < threads; i++) {
		p[i].fn = fn;
		pthread_create(&th[i], NULL, probe_thread, &p[i]);
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		g += p[i].flops / p[i].secs * 1e-9;
	}
	return g;
}

static double gemm_rate(const struct sgemm_kernel *k, int64_t M, int64_t K, int64_t N)
{
	float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
	float *c = malloc(sizeof(float) * M * N), *ap, *bp;
	size_t bfl = (size_t)(sgemm_round_up(N, k->nr) * K);
	if (posix_memalign((void **)&ap, 64, sgemm_packed_a_floats(k, M, K) * 4) ||
	    posix_memalign((void **)&bp, 64, bfl * 4))
		return 0;
	for (int64_t i = 0; i < M * K; i++)
		a[i] = (float)(i % 7) * 0.1f;
	for (int64_t i = 0; i < K * N; i++)
		b[i] = (float)(i % 5) * 0.1f;
	sgemm_pack_a(k, M, K, a, K, ap);
	sgemm_pack_b(k, K, N, b, N, bp);
	double best = 1e9;
	for (int r = 0; r < 7; r++) {
		double t0 = now_s();
		sgemm_packed(k, M, N, K, ap, bp, 0, M, c, N);
		double t = now_s() - t0;
		best = t < best ? t : best;
	}
	free(a), free(b), free(c), free(ap), free(bp);
	return 2.0 * M * N * K / best * 1e-9;
}

int main(int argc, char **argv)
{
	int threads = 1, json = 0, gemm = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--gemm"))
			gemm = 1;
	}
	threads = threads < 1 ? 1 : threads > 64 ? 64 : threads;
	double p1 = 0, pt = 0;
	const char *isa = "?";
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f"))
		isa = "avx512", p1 = peak(fma512, 1), pt = peak(fma512, threads);
	else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		isa = "avx2", p1 = peak(fma256, 1), pt = peak(fma256, threads);
#elif defined(__aarch64__)
	isa = "neon", p1 = peak(fma128, 1), pt = peak(fma128, threads);
#endif
	if (json)
		printf("{\"isa\": \"%s\", \"peak_gflops_1\": %.1f, \"threads\": %d, \"peak_gflops\": %.1f}\n",
		       isa, p1, threads, pt);
	else
		printf("FMA peak (%s): %.1f GFLOP/s on 1 thread, %.1f on %d\n", isa, p1, pt, threads);
	if (!gemm)
		return 0;
	static const int64_t shapes[][3] = { { 64, 576, 3136 }, { 128, 1152, 784 },
					     { 256, 2304, 196 }, { 512, 4608, 49 } };
#if defined(__x86_64__)
	const struct sgemm_kernel *ks = sgemm_avx512_variants;
#else
	const struct sgemm_kernel ks[] = { sgemm_neon, { 0, NULL, 0, 0, NULL } };
#endif
	for (; ks->name; ks++) {
		if (!sgemm_kernel_for(ks->isa))
			continue;
		printf("%-14s", ks->name);
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
			double g = gemm_rate(ks, shapes[s][0], shapes[s][1], shapes[s][2]);
			printf("  %ldx%ldx%ld %.0f (%.0f%%)", (long)shapes[s][0], (long)shapes[s][1],
			       (long)shapes[s][2], g, 100 * g / p1);
		}
		printf("\n");
	}
	return 0;
}
