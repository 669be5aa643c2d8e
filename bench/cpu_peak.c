/* The machine's float32 FMA peak, measured, and the packed GEMM's
 * micro-kernels against it (issue 17).
 *
 *   cpu_peak [--threads T] [--json] [--gemm] [--conv] [--cold] [--xcore]
 *
 * Peak: per thread, chains of independent vector FMAs (enough to cover the
 * FMA latency on every pipe) for a fixed count; GFLOP/s = 2 x lanes x FMAs /
 * seconds, 512-bit (AVX-512F), 256-bit (AVX2+FMA) or 128-bit (NEON), summed
 * over T threads that run at once, best of 9 tries. --conv adds resnet18's
 * 3x3 convolutions through the engine's Conv kernel (packing and epilogue
 * included) on T threads against that peak. --cold (implies --conv) adds
 * two more columns, each the median of 15 calls made after the engine
 * pool's threads have each written 96 MB (three times the L3) so that
 * nothing of the layer is in any cache: "cold", and "activations cold",
 * where a call on other input and output tensors follows the flush and
 * brings the weights back. In a model a layer's weights (resnet18's 46.7
 * MB do not fit the L3) and activations (written by the layer before,
 * half of them on the other core) come in from memory: these say what
 * that costs, on one thread and on T. --gemm adds the single-thread GFLOP/s of
 * every micro-kernel variant on resnet18's 3x3 im2col shapes (A and B
 * packed beforehand: the kernel and its blocking alone), each both ways
 * (T: the transposed tiles of sgemm_packed_t). GFLOP/s count the real
 * M x N x K, so the padding of N to whole panels shows as a lower rate.
 * --xcore: what two threads of one process pay to share data: the round
 * trip of a cache line between two threads (each spins until the other
 * flips a flag; no pinning, so it is whichever cores the scheduler gave
 * them), and the rate at which one thread reads a 1 MB buffer the other
 * has just written, against reading it again once it is local (best of
 * 20 rounds each). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend-impl.h"
#include "cpu-impl.h"
#include "sgemm-impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
extern const struct sgemm_kernel sgemm_avx512_variants[];
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#define ITERS 4000000L

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

/* GFLOP/s of fn on `threads` threads at once (sum of per-thread rates),
 * the best of 9 tries: a shared machine's other load only lowers a try. */
static double peak(double (*fn)(void), int threads)
{
	struct probe p[64];
	pthread_t th[64];
	double best = 0;
	for (int r = 0; r < 9; r++) {
		double g = 0;
		for (int i = 0; i < threads; i++) {
			p[i].fn = fn;
			pthread_create(&th[i], NULL, probe_thread, &p[i]);
		}
		for (int i = 0; i < threads; i++) {
			pthread_join(th[i], NULL);
			g += p[i].flops / p[i].secs * 1e-9;
		}
		best = g > best ? g : best;
	}
	return best;
}

static double gemm_rate(const struct sgemm_kernel *k, int64_t M, int64_t K, int64_t N, int trans)
{
	float *a = malloc(sizeof(float) * M * K), *b = malloc(sizeof(float) * K * N);
	float *c = malloc(sizeof(float) * M * N), *ap, *bp;
	size_t bfl = (size_t)((sgemm_round_up(N, k->nr) + k->mr) * K), afl = sgemm_packed_a_floats(k, M, K) +
								   (size_t)(k->nr * K);
	if (posix_memalign((void **)&ap, 64, afl * 4) ||
	    posix_memalign((void **)&bp, 64, bfl * 4))
		return 0;
	for (int64_t i = 0; i < M * K; i++)
		a[i] = (float)(i % 7) * 0.1f;
	for (int64_t i = 0; i < K * N; i++)
		b[i] = (float)(i % 5) * 0.1f;
	if (trans) {	/* the transposed tiles (few pixels): A as NR-row panels */
		sgemm_pack_bt(k, M, K, a, K, ap);
		sgemm_pack_b(k->mr, K, N, b, N, bp);
	} else {
		sgemm_pack_a(k, M, K, a, K, ap);
		sgemm_pack_b(k->nr, K, N, b, N, bp);
	}
	double best = 1e9;
	for (int r = 0; r < 7; r++) {
		double t0 = now_s();
		if (trans)
			sgemm_packed_t(k, M, N, K, bp, ap, 0, M, c, N, NULL);
		else
			sgemm_packed(k, M, N, K, ap, bp, 0, M, c, N, NULL);
		double t = now_s() - t0;
		best = t < best ? t : best;
	}
	free(a), free(b), free(c), free(ap), free(bp);
	return 2.0 * M * N * K / best * 1e-9;
}

/* GFLOP/s of one Conv (3x3, pad 1, stride s, C -> M channels on H x W, bias
 * and ReLU fused) through the engine's CPU kernel on `threads` threads:
 * im2col packing, GEMM and epilogue; best of 7. */
#define FLUSH_FLOATS (24L << 20)	/* 96 MB a thread: three times the L3 */

static void flush_one(float *f)
{
	for (long i = 0; i < FLUSH_FLOATS; i += 16)
		f[i] += 1.0f;
}

static void flush_task(void *arg, int index, int count)
{
	(void)count;
	flush_one(((float **)arg)[index]);
}

/* Evicts every cache the conv's threads use: each of the engine pool's
 * threads writes its own buffer of 3x the L3 (so the workers are still
 * spinning, not asleep, when the conv starts). */
static void flush_caches(float **bufs, struct tpool *pool)
{
	if (pool)
		tpool_run(pool, flush_task, bufs);
	else
		flush_one(bufs[0]);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* cold: NULL (best of 7 calls back to back: everything in cache), or
 * the flush buffers (median of 15 calls, each after a flush; acts_only:
 * then a call on other input and output tensors, which brings the
 * weights back, so that only the activations come from memory). */
static double conv_rate(int64_t C, int64_t H, int64_t M, int64_t s, int threads, float **cold,
			int acts_only)
{
	int64_t OH = (H + 2 - 3) / s + 1, ny = M * OH * OH;
	float *x = malloc(sizeof(float) * C * H * H), *w = malloc(sizeof(float) * M * C * 9);
	float *b = calloc(M, sizeof(float)), *y = malloc(sizeof(float) * ny);
	float *x2 = acts_only ? calloc(C * H * H, sizeof(float)) : NULL;	/* the other tensors */
	float *y2 = acts_only ? calloc(ny, sizeof(float)) : NULL;
	struct eng_tensor t[4];
	struct engine e = { .t = t, .nt = 4, .threads = threads, .be = &backend_cpu };
	struct eng_node n = { .kind = OP_CONV, .n_in = 3, .n_out = 1, .in = { 0, 1, 2 }, .out = { 3 } };
	const int64_t shp[4][4] = { { 1, C, H, H }, { M, C, 3, 3 }, { M }, { 1, M, OH, OH } };
	float *data[4] = { x, w, b, y };
	void *ctx = NULL;
	double best = 1e9, ts[15];

	for (int64_t i = 0; i < C * H * H; i++)
		x[i] = (float)(i % 7) * 0.1f;
	for (int64_t i = 0; i < M * C * 9; i++)
		w[i] = (float)(i % 5) * 0.01f;
	memset(t, 0, sizeof(t));
	for (int i = 0; i < 4; i++) {
		t[i].dtype = TENSOR_F32;
		t[i].ndim = i == 2 ? 1 : 4;
		memcpy(t[i].shape, shp[i], sizeof(shp[i]));
		t[i].data = data[i];
		t[i].is_const = i == 1 || i == 2;
	}
	n.p.conv = (struct conv_params){ .kernel = { 3, 3 }, .stride = { s, s }, .dil = { 1, 1 },
					 .pads = { 1, 1, 1, 1 }, .group = 1, .spatial = 2, .has_bias = 1,
					 .act = { ACT_RELU, 0, 0 } };
	if (cpu_conv_prepare(&e, &n) || (e.work_bytes = n.work_bytes, backend_cpu.ctx_new(&e, &ctx)))
		return 0;
	struct tensor_view in[3], out[1];
	for (int i = 0; i < 3; i++)
		in[i] = eng_view(&t[i], t[i].data);
	out[0] = eng_view(&t[3], y);
	cpu_conv(ctx, &n, in, out);	/* pool started, pages touched */
	for (int r = 0; r < (cold ? 15 : 7); r++) {
		if (cold) {
			flush_caches(cold, ((struct cpu_ctx *)ctx)->pool);
			if (acts_only) {
				struct tensor_view i2[3] = { in[0], in[1], in[2] }, o2[1] = { out[0] };
				i2[0].data = x2, o2[0].data = y2;
				cpu_conv(ctx, &n, i2, o2);
			}
		}
		double t0 = now_s();
		cpu_conv(ctx, &n, in, out);
		double dt = now_s() - t0;
		best = dt < best ? dt : best;
		if (cold)
			ts[r] = dt;
	}
	if (cold) {
		qsort(ts, 15, sizeof(ts[0]), cmp_double);
		best = ts[7];
	}
	backend_cpu.ctx_free(ctx);
	cpu_conv_release(&n);
	free(x), free(w), free(b), free(y), free(x2), free(y2);
	return 2.0 * M * C * 9 * OH * OH / best * 1e-9;
}

/* --xcore: a flag bounced between two threads, then a buffer written by
 * one and summed by the other. */
#define XC_TRIPS 200000
#define XC_FLOATS (1 << 18)	/* 1 MB */
#define XC_ROUNDS 20

struct xcore {
	_Atomic int flag __attribute__((aligned(64)));
	float *buf;
};

static void *xcore_peer(void *arg)
{
	struct xcore *x = arg;
	for (int i = 0; i < XC_TRIPS; i++) {
		while (atomic_load_explicit(&x->flag, memory_order_acquire) != 1)
			;
		atomic_store_explicit(&x->flag, 0, memory_order_release);
	}
	for (int r = 0; r < XC_ROUNDS; r++) {
		while (atomic_load_explicit(&x->flag, memory_order_acquire) != 2)
			;
		for (int i = 0; i < XC_FLOATS; i++)
			x->buf[i] = (float)(i + r);
		atomic_store_explicit(&x->flag, 3, memory_order_release);
	}
	return NULL;
}

CPU_CLONES
static float xcore_sum(const float *b)
{
	v16sf s = { 0 };
	for (int i = 0; i < XC_FLOATS; i += 16)
		s += *(const v16sf_u *)(b + i);
	float t = 0;
	for (int l = 0; l < 16; l++)
		t += s[l];
	return t;
}

static int xcore(void)
{
	struct xcore x = { .flag = 0 };
	pthread_t th;
	if (!(x.buf = calloc(XC_FLOATS, sizeof(float))) || pthread_create(&th, NULL, xcore_peer, &x))
		return 1;
	double t0 = now_s();
	for (int i = 0; i < XC_TRIPS; i++) {
		atomic_store_explicit(&x.flag, 1, memory_order_release);
		while (atomic_load_explicit(&x.flag, memory_order_acquire) != 0)
			;
	}
	double trip = (now_s() - t0) / XC_TRIPS;
	double remote = 1e9, local = 1e9;
	volatile float sink = 0;
	for (int r = 0; r < XC_ROUNDS; r++) {
		atomic_store_explicit(&x.flag, 2, memory_order_release);
		while (atomic_load_explicit(&x.flag, memory_order_acquire) != 3)
			;
		double a = now_s();
		sink += xcore_sum(x.buf);
		double b = now_s();
		sink += xcore_sum(x.buf);
		double c = now_s();
		remote = b - a < remote ? b - a : remote;
		local = c - b < local ? c - b : local;
	}
	pthread_join(th, NULL);
	free(x.buf);
	printf("cross-thread: cache line round trip %.0f ns; 1 MB written by the other thread read at "
	       "%.1f GB/s, read again at %.1f GB/s\n",
	       trip * 1e9, XC_FLOATS * 4.0 / remote * 1e-9, XC_FLOATS * 4.0 / local * 1e-9);
	(void)sink;
	return 0;
}

int main(int argc, char **argv)
{
	int threads = 1, json = 0, gemm = 0, conv = 0, xc = 0, cold = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--gemm"))
			gemm = 1;
		else if (!strcmp(argv[i], "--conv"))
			conv = 1;
		else if (!strcmp(argv[i], "--xcore"))
			xc = 1;
		else if (!strcmp(argv[i], "--cold"))
			conv = cold = 1;
	}
	if (xc)
		return xcore();
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
	if (conv) {	/* resnet18's 3x3 convs, through the engine's kernel */
		static const int64_t cs[][4] = { { 64, 56, 64, 1 }, { 64, 56, 128, 2 }, { 128, 28, 128, 1 },
						 { 128, 28, 256, 2 }, { 256, 14, 256, 1 },
						 { 256, 14, 512, 2 }, { 512, 7, 512, 1 } };
		float *bufs[64] = { 0 };
		for (int i = 0; cold && i < threads; i++)
			if (!(bufs[i] = calloc(FLUSH_FLOATS, sizeof(float))))
				return 1;
		for (size_t i = 0; i < sizeof(cs) / sizeof(cs[0]); i++) {
			double g = conv_rate(cs[i][0], cs[i][1], cs[i][2], cs[i][3], threads, NULL, 0);
			printf("conv3x3 %ld->%ld %ldx%ld s%ld, %d thread%s: %.0f GFLOP/s (%.0f%% of %.0f)",
			       (long)cs[i][0], (long)cs[i][2], (long)cs[i][1], (long)cs[i][1], (long)cs[i][3],
			       threads, threads > 1 ? "s" : "", g, 100 * g / pt, pt);
			if (cold) {
				double gc = conv_rate(cs[i][0], cs[i][1], cs[i][2], cs[i][3], threads, bufs, 0);
				double ga = conv_rate(cs[i][0], cs[i][1], cs[i][2], cs[i][3], threads, bufs, 1);
				printf("; cold %.0f (%.0f%%); activations cold %.0f (%.0f%%)", gc, 100 * gc / pt, ga,
				       100 * ga / pt);
			}
			printf("\n");
		}
		for (int i = 0; i < threads; i++)
			free(bufs[i]);
	}
	if (!gemm)
		return 0;
	static const int64_t shapes[][3] = { { 64, 576, 3136 }, { 128, 1152, 784 },
					     { 256, 2304, 196 }, { 512, 4608, 49 } };
#if defined(__x86_64__)
	const struct sgemm_kernel *ks = sgemm_avx512_variants;
#elif defined(__aarch64__)
	const struct sgemm_kernel list[] = { sgemm_neon, sgemm_portable, { 0, NULL, 0, 0, NULL } };
	const struct sgemm_kernel *ks = list;
#else
	const struct sgemm_kernel list[] = { sgemm_portable, { 0, NULL, 0, 0, NULL } };
	const struct sgemm_kernel *ks = list;
#endif
	for (; ks->name; ks++) {
		if (!sgemm_kernel_for(ks->isa))
			continue;
		for (int tr = 0; tr < 2; tr++) {
			printf("%-14s%s", ks->name, tr ? " T" : "  ");
			for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
				double g = gemm_rate(ks, shapes[s][0], shapes[s][1], shapes[s][2], tr);
				printf("  %ldx%ldx%ld %.0f (%.0f%%)", (long)shapes[s][0], (long)shapes[s][1],
				       (long)shapes[s][2], g, 100 * g / p1);
			}
			printf("\n");
		}
	}
	return 0;
}
