/* The packed GEMM and the Conv built on it, on every micro-kernel this CPU
 * runs (AVX-512, AVX2, NEON, portable C: each forced as SPLITD_CPU_ISA
 * forces it), against float64 references: odd M/N/K edges, several K
 * blocks, groups, strides, dilations, pads, 1x1, fused bias, residual and
 * activation, 1 and 2 threads; and the depthwise kernels.
 *
 * Tolerance: a float32 sum of n products in any order, FMA or not, is
 * within gamma(n) sum |a_i||b_i| of the exact sum (Higham, eq. 3.5; the
 * bias and residual count as terms; tests/errbound.h), plus half an ulp for
 * the reference's own rounding. ReLU and Clip are 1-Lipschitz and exact,
 * so the bound carries through them. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend-impl.h"
#include "conv-impl.h"
#include "cpu-impl.h"
#include "errbound.h"
#include "sgemm-impl.h"

static double gamma_n(int64_t n)
{
	return n * ERRBOUND_U / (1 - n * ERRBOUND_U);
}

static float *rnd(size_t n, unsigned seed)
{
	float *p = malloc(n * sizeof(float) + 4);
	uint32_t s = seed * 2654435761u + 1;
	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		p[i] = ((s >> 8) / 16777216.f) * 4.f - 2.f;
	}
	return p;
}

static double worst;	/* the largest observed / tolerance */

static void check(const char *what, const float *got, const double *want, const double *mag,
		  int64_t count, int64_t n)
{
	for (int64_t i = 0; i < count; i++) {
		double tol = gamma_n(n) * mag[i] + ERRBOUND_U * fabs(want[i]);
		double err = fabs(got[i] - want[i]);
		if (tol > 0 && err / tol > worst)
			worst = err / tol;
		if (!(err <= tol)) {
			print_error("%s: element %ld is %.9g, want %.9g (err %.3g > tol %.3g)\n", what,
				    (long)i, got[i], want[i], err, tol);
			fail();
		}
	}
}

static const enum sgemm_isa isas[] = { SGEMM_PORTABLE, SGEMM_AVX2, SGEMM_AVX512, SGEMM_NEON };

/* An epilogue that doubles its rows (exact) and counts its calls per row:
 * called once per row, after the row is final, C comes out 2 A B. */
struct epi_count { int *calls; int64_t n; };

static void epi_double(void *arg, float *c, int64_t ldc, int64_t m, int64_t rows, int64_t n)
{
	struct epi_count *e = arg;
	assert_int_equal(n, e->n);
	for (int64_t i = 0; i < rows; i++) {
		e->calls[m + i]++;
		for (int64_t j = 0; j < n; j++)
			c[i * ldc + j] *= 2.f;
	}
}

static void test_sgemm_shapes(void **state)
{
	static const int64_t shapes[][3] = {
		{ 1, 1, 1 }, { 3, 5, 7 }, { 8, 32, 16 }, { 14, 33, 9 }, { 17, 45, 600 },
		{ 64, 100, 1100 }, { 29, 64, 513 }, { 5, 200, 3 },
	};
	int ran = 0;
	for (size_t q = 0; q < sizeof(isas) / sizeof(isas[0]); q++) {
		const struct sgemm_kernel *k = sgemm_kernel_for(isas[q]);
		if (!k)
			continue;
		ran++;
		for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
			int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
			float *a = rnd(M * K, 1 + s), *b = rnd(K * N, 2 + s), *c = rnd(M * N, 3);
			float *ap = malloc(sgemm_packed_a_floats(k, M, K) * 4);
			float *bp = malloc(sgemm_round_up(N, k->nr) * K * 4);
			double *want = calloc(M * N, sizeof(double)), *mag = calloc(M * N, sizeof(double));
			assert_true(ap && bp && want && mag);
			for (int64_t i = 0; i < M; i++)
				for (int64_t j = 0; j < N; j++)
					for (int64_t kk = 0; kk < K; kk++) {
						double t = (double)a[i * K + kk] * b[kk * N + j];
						want[i * N + j] += t;
						mag[i * N + j] += fabs(t);
					}
			sgemm_pack_a(k, M, K, a, K, ap);
			sgemm_pack_b(k->nr, K, N, b, N, bp);
			/* rows in two calls, as two threads split them */
			int64_t mid = M / 2 / k->mr * k->mr;
			sgemm_packed(k, M, N, K, ap, bp, 0, mid, c, N, NULL);
			sgemm_packed(k, M, N, K, ap, bp, mid, M, c, N, NULL);
			char what[96];
			snprintf(what, sizeof(what), "%s %ldx%ldx%ld", k->name, (long)M, (long)N, (long)K);
			check(what, c, want, mag, M * N, K);
			/* again with the epilogue */
			int *calls = calloc((size_t)M, sizeof(int));
			assert_non_null(calls);
			struct epi_count ec = { calls, N };
			struct sgemm_epi ep = { epi_double, &ec };
			sgemm_packed(k, M, N, K, ap, bp, 0, mid, c, N, &ep);
			sgemm_packed(k, M, N, K, ap, bp, mid, M, c, N, &ep);
			for (int64_t i = 0; i < M; i++) {
				assert_int_equal(calls[i], 1);
				for (int64_t j = 0; j < N; j++)
					want[i * N + j] *= 2, mag[i * N + j] *= 2;
			}
			strcat(what, " epilogue");
			check(what, c, want, mag, M * N, K);
			free(calls);
			free(a), free(b), free(c), free(ap), free(bp), free(want), free(mag);
		}
	}
	assert_true(ran >= 1);
	assert_non_null(sgemm_kernel_for(sgemm_kernel_pick()->isa));	/* the default runs here */
	printf("MARGIN sgemm_shapes %.3g\n", worst);
	worst = 0;
	(void)state;
}

struct conv_case {
	int64_t C, H, W, M, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group;
	int bias, sum;
	enum act_kind act;
};

/* float64 conv, its magnitude sum (|w x| + |b| + |sum|) and term count */
static void ref_conv(const struct conv_case *k, int64_t OH, int64_t OW, const float *x,
		     const float *w, const float *b, const float *sum, double *want, double *mag)
{
	int64_t Cg = k->C / k->group, Mg = k->M / k->group;
	for (int64_t m = 0; m < k->M; m++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				int64_t gi = m / Mg, o = (m * OH + oh) * OW + ow;
				double acc = b ? b[m] : 0, mg = b ? fabs(b[m]) : 0;
				for (int64_t c = 0; c < Cg; c++)
					for (int64_t i = 0; i < k->kh; i++)
						for (int64_t j = 0; j < k->kw; j++) {
							int64_t ih = oh * k->sh - k->pt + i * k->dh;
							int64_t iw = ow * k->sw - k->pl + j * k->dw;
							if (ih < 0 || ih >= k->H || iw < 0 || iw >= k->W)
								continue;
							double t = (double)w[((m * Cg + c) * k->kh + i) * k->kw + j] *
								   x[((gi * Cg + c) * k->H + ih) * k->W + iw];
							acc += t;
							mg += fabs(t);
						}
				if (sum)
					acc += sum[o], mg += fabs(sum[o]);
				if (k->act == ACT_RELU)
					acc = acc > 0 ? acc : 0;
				else if (k->act == ACT_CLIP)
					acc = acc < 0 ? 0 : acc > 6 ? 6 : acc;
				want[o] = acc;
				mag[o] = mg;
			}
}

static void set_tensor(struct eng_tensor *t, int64_t c, int64_t h, int64_t w, float *data, int is_const)
{
	memset(t, 0, sizeof(*t));
	t->dtype = TENSOR_F32;
	t->ndim = 4;
	t->shape[0] = h < 0 ? c : 1;
	t->shape[1] = h < 0 ? -h : c;
	t->shape[2] = h < 0 ? -w : h;
	t->shape[3] = h < 0 ? -w : w;
	t->data = data;
	t->is_const = is_const;
}

/* Node n of engine e run by kernel fn in a fresh CPU context: its inputs
 * and its output are e's tensors, with their data. */
static void run_node(struct engine *e, const struct eng_node *n, CPU_KERNEL((*fn)))
{
	struct tensor_view in[ENG_MAX_IO], out[1];
	void *ctx = NULL;

	assert_int_equal(backend_cpu.ctx_new(e, &ctx), 0);
	for (int i = 0; i < n->n_in; i++)
		in[i] = eng_view(&e->t[n->in[i]], e->t[n->in[i]].data);
	out[0] = eng_view(&e->t[n->out[0]], e->t[n->out[0]].data);
	assert_int_equal(fn(ctx, n, in, out), 0);
	backend_cpu.ctx_free(ctx);
}

/* One conv case on kernel k's ISA with `threads` threads; weights constant
 * (packed at prepare) or not (packed per call). */
static void run_conv(const struct conv_case *k, enum sgemm_isa isa, int threads, int wconst,
		     float **yout, const char **path)
{
	int64_t OH = (k->H + k->pt + k->pb - (k->kh - 1) * k->dh - 1) / k->sh + 1;
	int64_t OW = (k->W + k->pl + k->pr - (k->kw - 1) * k->dw - 1) / k->sw + 1;
	int64_t Cg = k->C / k->group, ny = k->M * OH * OW;
	float *x = rnd(k->C * k->H * k->W, 5), *w = rnd(k->M * Cg * k->kh * k->kw, 6);
	float *b = k->bias ? rnd(k->M, 7) : NULL, *sum = k->sum ? rnd(ny, 8) : NULL;
	float *y = calloc(ny + 1, sizeof(float));
	double *want = calloc(ny, sizeof(double)), *mag = calloc(ny, sizeof(double));
	struct eng_tensor t[5];
	struct engine e = { .t = t, .nt = 5, .threads = threads, .be = &backend_cpu };
	struct eng_node n = { .kind = OP_CONV, .n_in = 4, .n_out = 1, .in = { 0, 1, 2, 3 }, .out = { 4 } };

	assert_true(y && want && mag);
	ref_conv(k, OH, OW, x, w, b, sum, want, mag);
	set_tensor(&t[0], k->C, k->H, k->W, x, 0);
	set_tensor(&t[1], k->M, Cg, k->kh, w, wconst);
	t[1].shape[0] = k->M, t[1].shape[1] = Cg, t[1].shape[2] = k->kh, t[1].shape[3] = k->kw;
	set_tensor(&t[2], k->M, 1, 1, b, 1);
	t[2].ndim = 1, t[2].shape[0] = k->M;
	set_tensor(&t[3], k->M, OH, OW, sum, 0);
	set_tensor(&t[4], k->M, OH, OW, y, 0);
	n.p.conv = (struct conv_params){ .kernel = { k->kh, k->kw }, .stride = { k->sh, k->sw },
					 .dil = { k->dh, k->dw }, .pads = { k->pt, k->pl, k->pb, k->pr },
					 .group = k->group, .spatial = 2, .has_bias = k->bias,
					 .has_sum = k->sum, .act = { k->act, 0.f, 6.f } };
	setenv("SPLITD_CPU_ISA", sgemm_isa_name(isa), 1);
	assert_int_equal(cpu_conv_prepare(&e, &n), 0);
	e.work_bytes = n.work_bytes;
	run_node(&e, &n, cpu_conv);
	char what[160];
	snprintf(what, sizeof(what), "%s conv C%ld %ldx%ld M%ld k%ldx%ld s%ld d%ld p%ld,%ld g%ld t%d%s",
		 sgemm_isa_name(isa), (long)k->C, (long)k->H, (long)k->W, (long)k->M, (long)k->kh,
		 (long)k->kw, (long)k->sh, (long)k->dh, (long)k->pt, (long)k->pl, (long)k->group, threads,
		 wconst ? "" : " (weights per call)");
	check(what, y, want, mag, ny, Cg * k->kh * k->kw + 2);
	if (path)
		*path = cpu_conv_path(&n);
	cpu_conv_release(&n);
	unsetenv("SPLITD_CPU_ISA");
	if (yout)
		*yout = y, y = NULL;
	free(x), free(w), free(b), free(sum), free(y), free(want), free(mag);
}

static void test_conv_isas(void **state)
{
	static const struct conv_case cases[] = {
		/* C  H   W   M   kh kw sh sw dh dw pt pl pb pr g  bias sum act */
		{ 3, 23, 21, 16, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 1, 0, ACT_RELU },	/* stem */
		{ 16, 14, 14, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ACT_RELU },
		{ 24, 9, 11, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, ACT_NONE },	/* strided */
		{ 12, 10, 13, 18, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 0, 0, ACT_CLIP },	/* dilated */
		{ 8, 9, 11, 12, 3, 3, 1, 2, 1, 1, 0, 2, 1, 0, 2, 1, 1, ACT_NONE },	/* groups, pads */
		{ 40, 7, 7, 33, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, ACT_RELU },	/* 1x1 */
		{ 64, 6, 5, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, ACT_RELU },	/* K 576: 2 blocks */
		{ 9, 1, 40, 10, 1, 5, 1, 1, 1, 1, 0, 2, 0, 2, 1, 1, 0, ACT_NONE },	/* 1-D */
		{ 6, 8, 8, 6, 2, 3, 3, 1, 1, 1, 0, 1, 1, 1, 3, 0, 0, ACT_RELU },	/* kh != kw */
		/* few pixels, channels a multiple of NR: the transposed tiles */
		{ 32, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ACT_RELU },
		{ 64, 27, 27, 64, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, ACT_NONE },	/* 14x14 */
		{ 16, 7, 7, 96, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, ACT_CLIP },	/* 1x1 */
		{ 32, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 0, 0, ACT_NONE },	/* groups */
		/* transposed tiles, K 576 in two blocks; channels split over
		 * the threads, then pixels */
		{ 64, 7, 7, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ACT_RELU },
		{ 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ACT_CLIP },
		{ 16, 13, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16, 1, 1, ACT_CLIP },	/* depthwise */
		{ 8, 15, 12, 8, 3, 3, 2, 2, 1, 1, 1, 0, 1, 1, 8, 1, 0, ACT_RELU },	/* dw strided */
		{ 4, 11, 9, 4, 3, 3, 1, 3, 2, 1, 2, 1, 0, 2, 4, 0, 0, ACT_NONE },	/* dw dilated */
		{ 4, 7, 9, 4, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 4, 1, 0, ACT_NONE },	/* dw 5x5 */
		{ 6, 9, 10, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 6, 1, 1, ACT_RELU },	/* dw dilated, s1 */
		{ 5, 30, 31, 5, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 5, 1, 0, ACT_CLIP },	/* dw s2, rows of 15 */
		/* depthwise planes wider than 16 (the AVX-512 kernel's groups of
		 * 16 columns and blocks of 8 rows, edges in both), fused sums */
		{ 3, 37, 40, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, 1, 1, ACT_RELU },
		{ 4, 33, 50, 4, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 4, 1, 1, ACT_CLIP },	/* s2, pads 0/1 */
		{ 3, 17, 45, 3, 3, 3, 1, 2, 1, 2, 1, 2, 1, 2, 3, 1, 0, ACT_NONE },	/* sw 2, dw 2 */
		{ 3, 19, 20, 3, 3, 3, 2, 1, 1, 1, 2, 0, 1, 1, 3, 0, 1, ACT_CLIP },	/* sh 2, sw 1 */
	};
	for (size_t q = 0; q < sizeof(isas) / sizeof(isas[0]); q++) {
		if (!sgemm_kernel_for(isas[q]))
			continue;
		printf("conv cases on %s\n", sgemm_isa_name(isas[q]));
		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
			for (int th = 1; th <= 2; th++)
				run_conv(&cases[c], isas[q], th, th == 1 || c % 2 == 0, NULL, NULL);
	}
	printf("MARGIN sgemm_conv_isas %.3g\n", worst);
	(void)state;
}

/* Gemm with one row (a classifier's Linear at batch 1: the engine's own
 * matrix-vector product, not sgemm) of 1 x K times K x N (B transposed or
 * not, A transposed: its row a column), alpha and beta with a broadcast C
 * or neither, on `threads` threads, against float64. */
static void gemm_one_row(int64_t K, int64_t N, int ta, int tb, int withc, int threads)
{
	float alpha = withc ? 0.75f : 1.f, beta = withc ? -1.5f : 0.f;
	float *a = rnd((size_t)K, 11), *b = rnd((size_t)(K * N), 12);
	float *cv = rnd((size_t)N, 13), *y = calloc((size_t)N + 1, sizeof(float));
	double *want = calloc((size_t)N, sizeof(double)), *mag = calloc((size_t)N, sizeof(double));
	struct eng_tensor t[4];
	struct engine e = { .t = t, .nt = 4, .threads = threads, .be = &backend_cpu };
	struct eng_node n = { .kind = OP_GEMM, .n_in = withc ? 3 : 2, .n_out = 1, .in = { 0, 1, 2 },
			      .out = { 3 } };

	assert_true(y && want && mag);
	for (int64_t i = 0; i < N; i++) {
		double acc = 0, mg = 0;
		for (int64_t k = 0; k < K; k++) {
			double p = (double)a[k] * b[tb ? i * K + k : k * N + i];
			acc += p, mg += fabs(p);
		}
		want[i] = alpha * acc + (withc ? beta * (double)cv[i] : 0);
		mag[i] = fabs(alpha) * mg + (withc ? fabs(beta * (double)cv[i]) : 0);
	}
	memset(t, 0, sizeof(t));
	for (int i = 0; i < 4; i++)
		t[i].dtype = TENSOR_F32, t[i].ndim = 2;
	t[0].shape[0] = ta ? K : 1, t[0].shape[1] = ta ? 1 : K, t[0].data = a;
	t[1].shape[0] = tb ? N : K, t[1].shape[1] = tb ? K : N, t[1].data = b;
	t[2].ndim = 1, t[2].shape[0] = N, t[2].data = cv;
	t[3].shape[0] = 1, t[3].shape[1] = N, t[3].data = y;
	n.p.gemm = (struct gemm_params){ alpha, beta, ta, tb };
	run_node(&e, &n, cpu_gemm);
	char what[96];
	snprintf(what, sizeof(what), "gemm 1x%ldx%ld ta%d tb%d C%d t%d", (long)K, (long)N, ta, tb, withc,
		 threads);
	check(what, y, want, mag, N, K + 3);
	free(a), free(b), free(cv), free(y), free(want), free(mag);
}

static void test_gemm_one_row(void **state)
{
	static const int64_t shapes[][2] = { { 1280, 1000 }, { 37, 5 }, { 16, 4 }, { 3, 1 }, { 100, 67 } };
	worst = 0;
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (int v = 0; v < 8; v++)
			for (int th = 1; th <= 2; th++)
				gemm_one_row(shapes[s][0], shapes[s][1], v & 1, v >> 1 & 1, v >> 2 & 1, th);
	printf("MARGIN gemm_one_row %.3g\n", worst);
	(void)state;
}

/* The AVX-512 im2col (conv_im2col_avx512) moves floats and nothing else:
 * its panels must equal, bit for bit, a naive im2col cut into the same
 * panels (zeros for the pads and the last panel's tail), over output
 * widths 1..90 (runs of every length inside a 16-lane group, and groups
 * clear of every edge), strides 1
 * and 2, dilations, asymmetric pads, 1-D, column ranges that start and end
 * mid-row, and the panel widths it serves (32, 16, 8). Skipped where the
 * CPU has no AVX-512 (and on aarch64), where it must say so. */
static void test_im2col_avx512(void **state)
{
	static const int64_t shapes[][8] = {
		/* H  W   kh kw sh sw dh dw */
		{ 9, 13, 3, 3, 1, 1, 1, 1 }, { 11, 12, 3, 3, 2, 2, 1, 1 }, { 8, 10, 3, 3, 1, 1, 2, 2 },
		{ 10, 9, 2, 3, 1, 2, 1, 2 }, { 13, 14, 7, 7, 2, 2, 1, 1 }, { 5, 6, 1, 1, 1, 1, 1, 1 },
		{ 6, 7, 1, 1, 2, 2, 1, 1 },  { 4, 3, 3, 3, 1, 1, 1, 1 },  { 1, 40, 1, 5, 1, 1, 1, 1 },
		{ 7, 37, 3, 3, 1, 2, 1, 1 }, { 3, 33, 3, 3, 1, 1, 1, 3 }, { 12, 1, 3, 1, 1, 1, 1, 1 },
		/* wide enough for groups that need no masks (pack_interior) */
		{ 9, 70, 3, 3, 2, 2, 1, 1 }, { 15, 90, 7, 7, 2, 2, 1, 1 }, { 6, 75, 3, 3, 1, 1, 2, 2 },
	};
	static const int64_t pads[][2] = { { 0, 0 }, { 1, 1 }, { 2, 3 }, { 0, 4 } };
	static const int64_t nrs[] = { 32, 16, 8 };
	int has = 0, cases = 0;
#if defined(__x86_64__)
	__builtin_cpu_init();
	has = __builtin_cpu_supports("avx512f");
#endif
	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++)
		for (size_t pi = 0; pi < sizeof(pads) / sizeof(pads[0]); pi++) {
			const int64_t *v = shapes[s];
			struct conv_geom g = { .N = 1, .C = 3, .H = v[0], .W = v[1], .G = 1, .Cg = 3,
					       .kh = v[2], .kw = v[3], .sh = v[4], .sw = v[5], .dh = v[6],
					       .dw = v[7], .pt = pads[pi][0], .pl = pads[pi][1] };
			g.OH = (g.H + 2 * g.pt - (g.kh - 1) * g.dh - 1) / g.sh + 1;
			g.OW = (g.W + g.pl + pads[pi][0] - (g.kw - 1) * g.dw - 1) / g.sw + 1;
			if (g.OH < 1 || g.OW < 1)
				continue;
			g.K = g.Cg * g.kh * g.kw;
			g.sx = g.H * g.W + 3;	/* planes apart by more than their size */
			int64_t ohw = g.OH * g.OW;
			float *x = rnd((size_t)(g.C * g.sx), 9);
			int64_t ranges[][2] = { { 0, ohw }, { ohw / 3, ohw - ohw / 4 }, { ohw - 1, ohw } };
			for (size_t r = 0; r < 3; r++)
				for (size_t q = 0; q < sizeof(nrs) / sizeof(nrs[0]); q++) {
					int64_t c0 = ranges[r][0], c1 = ranges[r][1], nr = nrs[q];
					if (c1 <= c0)
						continue;
					size_t nf = (size_t)(((c1 - c0 + nr - 1) / nr) * nr * g.K);
					float *got = malloc(nf * sizeof(float)), *want = calloc(nf, sizeof(float));
					assert_true(got && want);
					memset(got, 0xff, nf * sizeof(float));	/* NaNs: every float is written */
					for (int64_t k = 0; k < g.K; k++) {
						int64_t ci = k / (g.kh * g.kw), ki = k / g.kw % g.kh, kj = k % g.kw;
						for (int64_t p = c0; p < c1; p++) {
							int64_t oh = p / g.OW, ow = p % g.OW, q0 = p - c0;
							int64_t ih = oh * g.sh - g.pt + ki * g.dh;
							int64_t iw = ow * g.sw - g.pl + kj * g.dw;
							if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
								want[(q0 / nr * g.K + k) * nr + q0 % nr] =
									x[ci * g.sx + ih * g.W + iw];
						}
					}
					int rc = conv_im2col_avx512(&g, x, c0, c1, nr, got);
					assert_int_equal(rc, has ? 0 : -1);
					if (!rc && memcmp(got, want, nf * sizeof(float))) {
						for (size_t i = 0; i < nf; i++)
							if (memcmp(&got[i], &want[i], sizeof(float)))
								fail_msg("im2col %ldx%ld k%ldx%ld s%ld,%ld d%ld,%ld "
									 "p%ld,%ld cols [%ld,%ld) nr %ld: float %zu is "
									 "%g, want %g",
									 (long)g.H, (long)g.W, (long)g.kh, (long)g.kw,
									 (long)g.sh, (long)g.sw, (long)g.dh,
									 (long)g.dw, (long)g.pt, (long)g.pl, (long)c0,
									 (long)c1, (long)nr, i, got[i], want[i]);
					}
					cases += !rc;
					free(got), free(want);
				}
			free(x);
		}
	printf("im2col_avx512: %d cases %s\n", cases, has ? "bit-exact" : "(no AVX-512 here: skipped)");
	assert_true(!has || cases > 300);
	(void)state;
}


/* The direct convolution (conv_direct_avx512: B read from the input
 * planes, for stride 1 and rows kept whole) against the im2col path it
 * replaces (SPLITD_CONV_DIRECT=0): identical bits, both within the float64
 * reference's bound. Tiles that span rows, planes narrower than a tile,
 * K blocks that start mid-channel, rows past the last full 8, 3x3, 5x5,
 * 7x7, 1x3, 3x1, 1-D, dilations, pads unequal left and right, rows lost to
 * the vertical pads (OH < H), groups, fused bias, sum and activation, on
 * 1, 2 and 3 threads (column ranges cut unevenly). Skipped where the CPU
 * has no AVX-512, where it must say so. */
static void test_conv_direct(void **state)
{
	static const struct conv_case cases[] = {
		/* C  H   W   M   kh kw sh sw dh dw pt pl pb pr g  bias sum act */
		{ 61, 9, 37, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ACT_RELU },	/* K 549: mid-channel */
		{ 130, 6, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, ACT_NONE },	/* K 1170: 3 blocks */
		{ 16, 12, 70, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, ACT_CLIP },	/* wide rows */
		{ 8, 10, 13, 24, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 1, 0, 1, ACT_NONE },
		{ 6, 15, 20, 8, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 0, ACT_RELU },
		{ 8, 9, 11, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 1, ACT_RELU },	/* dilated */
		{ 8, 9, 11, 16, 3, 3, 1, 1, 1, 1, 0, 0, 2, 2, 1, 1, 0, ACT_NONE },	/* pads 0 / 2 */
		{ 8, 9, 11, 16, 3, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, ACT_CLIP },	/* OH = H - 2 */
		{ 12, 10, 9, 16, 3, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, ACT_NONE },	/* 3x1 */
		{ 12, 10, 9, 16, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, ACT_RELU },	/* 1x3 */
		{ 9, 1, 40, 10, 1, 5, 1, 1, 1, 1, 0, 2, 0, 2, 1, 1, 0, ACT_NONE },	/* 1-D */
		{ 5, 12, 1, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, ACT_RELU },	/* W 1 */
		{ 7, 3, 3, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, ACT_NONE },	/* 9 pixels */
		{ 16, 9, 11, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 1, 1, ACT_RELU },	/* groups */
		{ 32, 28, 28, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ACT_RELU },	/* 2 tiles a row */
	};
	int has = 0, ran = 0;
#if defined(__x86_64__)
	__builtin_cpu_init();
	has = __builtin_cpu_supports("avx512f");
#endif
	if (!has) {
		printf("conv_direct: no AVX-512 here: skipped\n");
		(void)state;
		return;
	}
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (int th = 1; th <= 3; th++) {
			const struct conv_case *k = &cases[c];
			int64_t OH = k->H + k->pt + k->pb - (k->kh - 1) * k->dh;
			int64_t ny = k->M * OH * k->W;
			float *direct = NULL, *im2col = NULL;
			const char *p1 = NULL, *p0 = NULL;
			run_conv(k, SGEMM_AVX512, th, 1, &direct, &p1);
			setenv("SPLITD_CONV_DIRECT", "0", 1);
			run_conv(k, SGEMM_AVX512, th, th != 2, &im2col, &p0);
			unsetenv("SPLITD_CONV_DIRECT");
			if (strcmp(p1, "direct") || !strcmp(p0, "direct"))
				fail_msg("case %zu: paths %s and %s, want direct and not", c, p1, p0);
			for (int64_t i = 0; i < ny; i++)
				if (memcmp(&direct[i], &im2col[i], sizeof(float)))
					fail_msg("case %zu, %d threads: element %ld is %.9g direct, %.9g by im2col",
						 c, th, (long)i, direct[i], im2col[i]);
			free(direct), free(im2col);
			ran++;
		}
	printf("conv_direct: %d cases bit-identical to im2col\n", ran);
	(void)state;
}

/* ConvTranspose against a float64 reference: the taps-apart path (strides
 * equal to the kernel, no pads: 2x2 stride 2 upsampling) with channel
 * blocks of 4 and their remainder, columns in vectors of 16 and 64 and a
 * scalar tail, 3x3 stride 3 (one column at a time), groups, 1-D; and
 * geometries that take cols + col2im (pads, overlapping taps), also with
 * SPLITD_CONVT_DIRECT=0 on the taps-apart ones. Tolerance as for Conv. */
struct convt_case {
	int64_t C, H, W, M, kh, kw, sh, sw, pt, pl, pb, pr, group;
	int bias;
	enum act_kind act;
};

static void run_convt(const struct convt_case *k, int threads)
{
	int64_t OH = (k->H - 1) * k->sh + k->kh - k->pt - k->pb;
	int64_t OW = (k->W - 1) * k->sw + k->kw - k->pl - k->pr;
	int64_t Cg = k->C / k->group, Mg = k->M / k->group, ny = k->M * OH * OW;
	float *x = rnd(k->C * k->H * k->W, 11), *w = rnd(k->C * Mg * k->kh * k->kw, 12);
	float *b = k->bias ? rnd(k->M, 13) : NULL, *y = calloc(ny + 1, sizeof(float));
	double *want = calloc(ny, sizeof(double)), *mag = calloc(ny, sizeof(double));
	struct eng_tensor t[4];
	struct engine e = { .t = t, .nt = 4, .threads = threads, .be = &backend_cpu };
	struct eng_node n = { .kind = OP_CONV_TRANSPOSE, .n_in = 3, .n_out = 1, .in = { 0, 1, 2 },
			      .out = { 3 } };

	assert_true(y && want && mag);
	for (int64_t m = 0; m < k->M; m++)
		for (int64_t i = 0; i < OH * OW; i++)
			want[m * OH * OW + i] = b ? b[m] : 0, mag[m * OH * OW + i] = b ? fabs(b[m]) : 0;
	for (int64_t ci = 0; ci < k->C; ci++)
		for (int64_t ih = 0; ih < k->H; ih++)
			for (int64_t iw = 0; iw < k->W; iw++)
				for (int64_t mm = 0; mm < Mg; mm++)
					for (int64_t ki = 0; ki < k->kh; ki++)
						for (int64_t kj = 0; kj < k->kw; kj++) {
							int64_t oh = ih * k->sh - k->pt + ki, ow = iw * k->sw - k->pl + kj;
							if (oh < 0 || oh >= OH || ow < 0 || ow >= OW)
								continue;
							int64_t m = ci / Cg * Mg + mm, o = (m * OH + oh) * OW + ow;
							double v = (double)w[((ci * Mg + mm) * k->kh + ki) * k->kw + kj] *
								   x[(ci * k->H + ih) * k->W + iw];
							want[o] += v, mag[o] += fabs(v);
						}
	if (k->act == ACT_RELU)
		for (int64_t i = 0; i < ny; i++)
			want[i] = want[i] > 0 ? want[i] : 0;
	set_tensor(&t[0], k->C, k->H, k->W, x, 0);
	set_tensor(&t[1], k->C, Mg, k->kh, w, 1);
	t[1].shape[0] = k->C, t[1].shape[1] = Mg, t[1].shape[2] = k->kh, t[1].shape[3] = k->kw;
	set_tensor(&t[2], k->M, 1, 1, b, 1);
	t[2].ndim = 1, t[2].shape[0] = k->M;
	set_tensor(&t[3], k->M, OH, OW, y, 0);
	n.p.conv = (struct conv_params){ .kernel = { k->kh, k->kw }, .stride = { k->sh, k->sw },
					 .dil = { 1, 1 }, .pads = { k->pt, k->pl, k->pb, k->pr },
					 .group = k->group, .spatial = 2, .has_bias = k->bias,
					 .act = { k->act, 0.f, 0.f } };
	e.work_bytes = 0;
	run_node(&e, &n, cpu_conv_transpose);
	char what[160];
	snprintf(what, sizeof(what), "convtranspose C%ld %ldx%ld M%ld k%ldx%ld s%ld,%ld p%ld,%ld,%ld,%ld g%ld t%d%s",
		 (long)k->C, (long)k->H, (long)k->W, (long)k->M, (long)k->kh, (long)k->kw, (long)k->sh,
		 (long)k->sw, (long)k->pt, (long)k->pl, (long)k->pb, (long)k->pr, (long)k->group, threads,
		 getenv("SPLITD_CONVT_DIRECT") ? " (cols)" : "");
	check(what, y, want, mag, ny, Cg * k->kh * k->kw + 1);
	free(x), free(w), free(b), free(y), free(want), free(mag);
}

static void test_conv_transpose(void **state)
{
	static const struct convt_case cases[] = {
		/* C  H   W   M   kh kw sh sw pt pl pb pr g  bias act */
		{ 16, 7, 160, 16, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, ACT_RELU },	/* blocks of 4, x16 */
		{ 16, 5, 133, 1, 2, 2, 2, 2, 0, 0, 0, 0, 1, 1, ACT_NONE },	/* 1 channel: x64, x16, tail */
		{ 9, 6, 37, 6, 2, 2, 2, 2, 0, 0, 0, 0, 1, 0, ACT_RELU },	/* 4 + 2 channels, tail */
		{ 8, 4, 21, 10, 2, 2, 2, 2, 0, 0, 0, 0, 2, 1, ACT_NONE },	/* groups */
		{ 5, 6, 9, 7, 3, 3, 3, 3, 0, 0, 0, 0, 1, 1, ACT_RELU },	/* 3x3 stride 3 */
		{ 6, 1, 40, 8, 1, 2, 1, 2, 0, 0, 0, 0, 1, 1, ACT_NONE },	/* 1-D */
		/* cols + col2im */
		{ 6, 5, 7, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, ACT_RELU },	/* overlapping, pads */
		{ 6, 5, 7, 4, 2, 2, 2, 2, 1, 0, 0, 1, 1, 1, ACT_NONE },	/* taps apart, pads */
	};
	worst = 0;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		for (int th = 1; th <= 3; th++) {
			run_convt(&cases[c], th);
			setenv("SPLITD_CONVT_DIRECT", "0", 1);
			run_convt(&cases[c], th);
			unsetenv("SPLITD_CONVT_DIRECT");
		}
	printf("MARGIN sgemm_conv_transpose %.3g\n", worst);
	worst = 0;
	(void)state;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sgemm_shapes),
		cmocka_unit_test(test_conv_isas),
		cmocka_unit_test(test_im2col_avx512),
		cmocka_unit_test(test_conv_direct),
		cmocka_unit_test(test_conv_transpose),
		cmocka_unit_test(test_gemm_one_row),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
