/* Engine and CPU kernels against naive references written here, on small
 * models from tests/models/gen_unit_models.py (argv[1] is their folder);
 * bad models must be refused with a clear message. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "backend-impl.h"
#include "engine.h"
#include "errbound.h"
#include "threadpool.h"

static const char *dir;

static float *load_bin(const char *model, const char *name, size_t count)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s__%s.bin", dir, model, name);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	float *p = malloc(count * sizeof(float));
	assert_non_null(p);
	assert_int_equal(fread(p, sizeof(float), count, f), count);
	fclose(f);
	return p;
}

static float *rnd(size_t n, unsigned seed)
{
	float *p = malloc(n * sizeof(float));
	uint32_t s = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		p[i] = ((s >> 8) / 16777216.f) * 4.f - 2.f;
	}
	return p;
}

struct io { const char *name; int ndim; int64_t shape[4]; const float *data; };

/* Tolerances. The references below sum in float64 and round once to
 * float32; the engine's result is one float32 evaluation of the same
 * arithmetic. Its distance from the exact result is one draw of the
 * rounding model of tests/errbound.h, covered by errbound_tol() (which
 * covers the difference of two draws), and the reference's own is at most
 * half an ulp, u |want|. The BatchNormalization reference applies BN to the
 * conv's result in float32 where the engine folds it into the weights: up
 * to 8 roundings of relative size u per product term between them
 * (KERNELS_WEIGHT_REL; test_models.c has the count). */
#define KERNELS_WEIGHT_REL (8 * ERRBOUND_U)
static double last_tol;		/* the last run_model's output tolerance */
static const char *last_model;

/* Loads model, runs it with `threads` threads on the inputs, returns a copy
 * of the first output and its element count; last_tol gets its tolerance. */
static float *run_model(const char *model, int threads, const struct io *in, int nin,
			int64_t *count, int *nodes)
{
	char path[1024], err[512];
	/* the error model reads the weights: kept at load */
	struct engine_opts o = { .threads = threads, .keep_weights = 1 };
	struct engine *e;
	struct engine_ctx *c;
	struct errbound *eb = NULL;
	struct errbound_opts eo = { .weight_rel = KERNELS_WEIGHT_REL };
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, model);
	int rc = engine_load(path, &o, &e, err, sizeof(err));
	if (rc)
		fail_msg("%s: %s", model, err);
	assert_int_equal(engine_ctx_new(e, &c), 0);
	for (int i = 0; i < nin; i++) {
		struct tensor_view v = { .dtype = TENSOR_F32, .ndim = in[i].ndim, .data = (void *)in[i].data };
		memcpy(v.shape, in[i].shape, sizeof(in[i].shape));
		if (engine_ctx_set(c, in[i].name, &v, err, sizeof(err)))
			fail_msg("%s: %s", model, err);
	}
	if (errbound_run(e, c, &eo, &eb, err, sizeof(err)))	/* runs it, as engine_run */
		fail_msg("%s: error model: %s", model, err);
	struct engine_value_info oi;
	struct tensor_view y;
	assert_int_equal(engine_output_info(e, 0, &oi), 0);
	assert_int_equal(engine_ctx_get(c, oi.name, &y), 0);
	last_tol = errbound_tol(eb, oi.name);
	last_model = model;
	assert_true(last_tol >= 0);
	errbound_free(eb);
	*count = tensor_numel(&y);
	float *out = malloc(*count * sizeof(float) + 4);
	memcpy(out, y.data, *count * sizeof(float));
	if (nodes)
		*nodes = engine_num_nodes(e);
	engine_ctx_free(c);
	engine_free(e);
	return out;
}

/* |got - want| <= the last run's tolerance + the reference's half ulp */
static void assert_close(const float *got, const float *want, int64_t n)
{
	double margin = 0;
	for (int64_t i = 0; i < n; i++) {
		double d = fabs((double)got[i] - want[i]), t = last_tol + ERRBOUND_U * fabs((double)want[i]);
		if (!(d <= t))
			fail_msg("%s element %lld: got %.9g want %.9g (tolerance %.3g)", last_model,
				 (long long)i, got[i], want[i], t);
		if (d > 0)
			margin = fmax(margin, d / t);
	}
	print_message("MARGIN kernels/%s %.3g\n", last_model, margin);
}

/* ---- naive references ---- */

static void ref_conv(const float *x, int64_t N, int64_t C, int64_t H, int64_t W, const float *w,
		     const float *b, int64_t M, int64_t kh, int64_t kw, int64_t G, int64_t sh,
		     int64_t sw, int64_t dh, int64_t dw, int64_t pt, int64_t pl, int64_t OH,
		     int64_t OW, float *y)
{
	int64_t Cg = C / G, Mg = M / G;
	for (int64_t n = 0; n < N; n++)
		for (int64_t m = 0; m < M; m++)
			for (int64_t oh = 0; oh < OH; oh++)
				for (int64_t ow = 0; ow < OW; ow++) {
					double acc = b ? b[m] : 0;
					int64_t g = m / Mg;
					for (int64_t ci = 0; ci < Cg; ci++)
						for (int64_t i = 0; i < kh; i++)
							for (int64_t j = 0; j < kw; j++) {
								int64_t ih = oh * sh - pt + i * dh, iw = ow * sw - pl + j * dw;
								if (ih < 0 || ih >= H || iw < 0 || iw >= W)
									continue;
								acc += (double)x[((n * C + g * Cg + ci) * H + ih) * W + iw] *
								       w[((m * Cg + ci) * kh + i) * kw + j];
							}
					y[((n * M + m) * OH + oh) * OW + ow] = (float)acc;
				}
}

/* The engine's exp polynomial (exp_ps, kernels/elementwise.c) through
 * Sigmoid and x * Sigmoid(x), against float64 on a dense sweep: the
 * accuracy tests/errbound.h assumes of it (2 ulp = ERRBOUND_ULP_RHO,
 * relative) with the add and division around it (sigmoid: 2 more
 * roundings, SiLU 3). Past exp_ps's clamp (|x| > 87.3) sigmoid's tail is
 * FLT_MIN instead of e^x (never subnormal): an absolute FLT_MIN, times |x|
 * for SiLU. */
static void sweep(const char *model, int silu)
{
	enum { N = 65536 };
	float *x = malloc(N * sizeof(float));
	assert_non_null(x);
	for (int i = 0; i < N; i++)	/* [-40, 40], the clamps' edges, NaN and infinities */
		x[i] = i < N - 7 ? -40.f + 80.f * (float)i / (N - 8)
				 : (float[]){ -88.5f, -87.2f, 88.5f, 87.2f, NAN, INFINITY, -INFINITY }[i - (N - 7)];
	struct io in = { "x", 4, { 1, 1, 1, N }, x };
	int64_t n;
	float *y = run_model(model, 1, &in, 1, &n, NULL);
	double rel = ERRBOUND_ULP_RHO + (silu ? 3 : 2) * ERRBOUND_U, worst = 0;
	for (int i = 0; i < N; i++) {
		/* no subnormal results: each costs a microcode assist (a third
		 * of yolo_640's time went to them); FLT_MIN is within the bound */
		if (y[i] != 0 && fabsf(y[i]) < FLT_MIN)
			fail_msg("%s(%.9g) = %.9g: subnormal", model, x[i], y[i]);
		if (isnan(x[i])) {	/* NaN in, NaN out */
			if (!isnan(y[i]))
				fail_msg("%s(NaN) = %.9g", model, y[i]);
			continue;
		}
		if (isinf(x[i])) {
			/* +inf: sigmoid 1, SiLU +inf; -inf: sigmoid within FLT_MIN of
			 * 0 (the clamp), SiLU's bound FLT_MIN |x| says nothing there
			 * but its sign */
			int ok = x[i] > 0 ? y[i] == (silu ? INFINITY : 1.0f)
					  : silu ? !(y[i] > 0) : y[i] >= 0 && y[i] <= FLT_MIN;
			if (!ok)
				fail_msg("%s(%g) = %.9g", model, x[i], y[i]);
			continue;
		}
		double s = 1 / (1 + exp(-(double)x[i])), want = silu ? x[i] * s : s;
		double d = fabs(y[i] - want), t = rel * fabs(want) + FLT_MIN * fmax(1.0, fabs((double)x[i]));
		if (!(d <= t))
			fail_msg("%s(%.9g) = %.9g, float64 %.9g: %.3g relative", model, x[i], y[i], want,
				 d / fabs(want));
		worst = fmax(worst, d / t);
	}
	print_message("MARGIN kernels/%s-sweep %.3g\n", model, worst);
	free(x);
	free(y);
}

static void test_exp_ps_sweep(void **state)
{
	(void)state;
	sweep("act_sigmoid", 0);
	sweep("act_silu", 1);
}

/* Gelu (both forms) against PyTorch's float64 results rounded to float32
 * (gen_unit_models.py: gelu_ref). The kernel is within 2 U |want| of the
 * exact value (tests/errbound.c: ACT_GELU: float64 evaluation, one rounding)
 * and the reference within U |want| (its rounding; its float64 error is
 * under 1e-9 relative): 3 U |want|, plus FLT_TRUE_MIN for the two roundings
 * of subnormal results. NaN and -inf give NaN, +inf gives +inf, as in
 * PyTorch. */
static void check_gelu(const char *model)
{
	enum { N = 2049 + 17 };
	float *x = load_bin(model, "x", N), *want = load_bin(model, "ref", N);
	for (int t = 1; t <= 2; t++) {
		struct io in = { "x", 2, { 1, N }, x };
		int64_t n;
		float *y = run_model(model, t, &in, 1, &n, NULL);
		assert_int_equal(n, N);
		double worst = 0;
		for (int i = 0; i < N; i++) {
			if (isnan(want[i]) || isinf(want[i])) {
				if (!(isnan(want[i]) ? isnan(y[i]) : y[i] == want[i]))
					fail_msg("%s(%g) = %.9g, want %.9g", model, x[i], y[i], want[i]);
				continue;
			}
			double d = fabs((double)y[i] - want[i]);
			double tol = 3 * ERRBOUND_U * fabs((double)want[i]) + FLT_TRUE_MIN;
			if (!(d <= tol))
				fail_msg("%s(%.9g) = %.9g, want %.9g (%.3g ulp-relative)", model, x[i], y[i],
					 want[i], d / (ERRBOUND_U * fabs((double)want[i])));
			worst = fmax(worst, d / tol);
		}
		print_message("MARGIN kernels/%s %.3g\n", model, worst);
		free(y);
	}
	free(x), free(want);
}

static void test_gelu(void **state)
{
	(void)state;
	check_gelu("gelu_none");
	check_gelu("gelu_tanh");
	/* Conv + Gelu(tanh) fused into one node, against a naive conv and
	 * Gelu in float64 */
	float *x = rnd(8 * 10 * 13, 2), *w = load_bin("conv_gelu", "w", 8 * 9);
	float *b = load_bin("conv_gelu", "b", 8);
	float want[8 * 5 * 7];
	ref_conv(x, 1, 8, 10, 13, w, b, 8, 3, 3, 8, 2, 2, 1, 1, 1, 1, 5, 7, want);
	for (int i = 0; i < 8 * 5 * 7; i++) {
		double v = want[i], u = sqrt(2 / M_PI) * (v + 0.044715 * v * v * v);
		want[i] = (float)(v / (1 + exp(-2 * u)));
	}
	struct io in = { "x", 4, { 1, 8, 10, 13 }, x };
	int64_t n;
	int nodes;
	float *y = run_model("conv_gelu", 1, &in, 1, &n, &nodes);
	assert_int_equal(nodes, 1);	/* Gelu fused */
	assert_int_equal(n, 8 * 5 * 7);
	assert_close(y, want, n);
	free(y), free(x), free(w), free(b);
}

static void test_conv_group(void **state)
{
	(void)state;
	float *x = rnd(4 * 9 * 11, 1), *w = load_bin("conv_group", "w", 6 * 2 * 9);
	float *b = load_bin("conv_group", "b", 6);
	/* H: (9 + 1 + 2 - 5) / 2 + 1 = 4; W: (11 + 0 + 1 - 5) / 1 + 1 = 8 */
	float want[6 * 4 * 8];
	ref_conv(x, 1, 4, 9, 11, w, b, 6, 3, 3, 2, 2, 1, 2, 2, 1, 0, 4, 8, want);
	for (int t = 1; t <= 2; t++) {
		struct io in = { "x", 4, { 1, 4, 9, 11 }, x };
		int64_t n;
		float *y = run_model("conv_group", t, &in, 1, &n, NULL);
		assert_int_equal(n, 6 * 4 * 8);
		assert_close(y, want, n);
		free(y);
	}
	free(x), free(w), free(b);
}

static void test_conv_dw_relu(void **state)
{
	(void)state;
	float *x = rnd(8 * 10 * 13, 2), *w = load_bin("conv_dw_relu", "w", 8 * 9);
	float *b = load_bin("conv_dw_relu", "b", 8);
	float want[8 * 5 * 7];
	ref_conv(x, 1, 8, 10, 13, w, b, 8, 3, 3, 8, 2, 2, 1, 1, 1, 1, 5, 7, want);
	for (int i = 0; i < 8 * 5 * 7; i++)
		want[i] = want[i] > 0 ? want[i] : 0;
	for (int t = 1; t <= 2; t++) {
		struct io in = { "x", 4, { 1, 8, 10, 13 }, x };
		int64_t n;
		int nodes;
		float *y = run_model("conv_dw_relu", t, &in, 1, &n, &nodes);
		assert_int_equal(nodes, 1);	/* Relu fused */
		assert_int_equal(n, 8 * 5 * 7);
		assert_close(y, want, n);
		free(y);
	}
	free(x), free(w), free(b);
}

/* A 1x1 conv + Clip feeding a depthwise conv + Relu (mobilenet_v2's
 * expand and depthwise): on more than one thread the 1x1 conv splits its
 * output channels, channel slice first (feeds_depthwise in conv.c), not
 * its pixels. Against the reference, and the same bits on 1, 2 and 3
 * threads (the split changes who computes an output, not how); on a
 * 20x23 plane (NR-wide tiles) and a 14x14 one (the transposed tiles). */
static void expand_dw(const char *m, int64_t C, int64_t M, int64_t H, int64_t W)
{
	float *x = rnd(C * H * W, 6), *we = load_bin(m, "we", M * C), *be = load_bin(m, "be", M);
	float *wd = load_bin(m, "wd", M * 9), *bd = load_bin(m, "bd", M);
	float *e = malloc(sizeof(float) * M * H * W), *want = malloc(sizeof(float) * M * H * W), *y1 = NULL;
	assert_non_null(e);
	assert_non_null(want);
	ref_conv(x, 1, C, H, W, we, be, M, 1, 1, 1, 1, 1, 1, 1, 0, 0, H, W, e);
	for (int64_t i = 0; i < M * H * W; i++)
		e[i] = e[i] < 0 ? 0 : e[i] > 6 ? 6 : e[i];
	ref_conv(e, 1, M, H, W, wd, bd, M, 3, 3, M, 1, 1, 1, 1, 1, 1, H, W, want);
	for (int64_t i = 0; i < M * H * W; i++)
		want[i] = want[i] > 0 ? want[i] : 0;
	for (int t = 1; t <= 3; t++) {
		struct io in = { "x", 4, { 1, C, H, W }, x };
		int64_t n;
		int nodes;
		float *y = run_model(m, t, &in, 1, &n, &nodes);
		assert_int_equal(nodes, 2);	/* Clip and Relu fused */
		assert_int_equal(n, M * H * W);
		assert_close(y, want, n);
		if (y1) {
			assert_memory_equal(y, y1, sizeof(float) * n);
			free(y);
		} else {
			y1 = y;
		}
	}
	free(y1), free(x), free(we), free(be), free(wd), free(bd), free(e), free(want);
}

static void test_expand_dw(void **state)
{
	(void)state;
	expand_dw("expand_dw", 8, 40, 20, 23);
	expand_dw("expand_dw_t", 16, 64, 14, 14);
}

static void test_conv_bn_add_relu(void **state)
{
	(void)state;
	const char *m = "conv_bn_add_relu";
	float *x = rnd(8 * 35, 3), *w = load_bin(m, "w", 64), *s = load_bin(m, "s", 8);
	float *bb = load_bin(m, "bb", 8), *mu = load_bin(m, "m", 8), *v = load_bin(m, "v", 8);
	float want[8 * 35];
	ref_conv(x, 1, 8, 7, 5, w, NULL, 8, 1, 1, 1, 1, 1, 1, 1, 0, 0, 7, 5, want);
	for (int c = 0; c < 8; c++)
		for (int i = 0; i < 35; i++) {
			float t = (want[c * 35 + i] - mu[c]) / sqrtf(v[c] + 1e-3f) * s[c] + bb[c] + x[c * 35 + i];
			want[c * 35 + i] = t > 0 ? t : 0;
		}
	struct io in = { "x", 4, { 1, 8, 7, 5 }, x };
	int64_t n;
	int nodes;
	float *y = run_model(m, 2, &in, 1, &n, &nodes);
	assert_int_equal(nodes, 1);	/* BN folded, Add and Relu fused */
	assert_close(y, want, n);
	free(y), free(x), free(w), free(s), free(bb), free(mu), free(v);
}

/* ConvTranspose 2x2 stride 2 in 2 groups (4 -> 6 channels), then
 * BatchNormalization and Relu: one node once the BN is folded into the
 * weights (row ci scaled per output channel of its group) and the Relu
 * fused (its taps-apart kernel). */
static void test_convt_bn_relu(void **state)
{
	(void)state;
	const char *m = "convt_bn_relu";
	float *x = rnd(4 * 5 * 19, 4), *w = load_bin(m, "w", 48), *s = load_bin(m, "s", 6);
	float *bb = load_bin(m, "bb", 6), *mu = load_bin(m, "m", 6), *v = load_bin(m, "v", 6);
	float want[6 * 10 * 38];
	for (int co = 0; co < 6; co++)
		for (int oh = 0; oh < 10; oh++)
			for (int ow = 0; ow < 38; ow++) {
				int g = co / 3, ih = oh / 2, iw = ow / 2;
				double acc = 0;
				for (int ci = g * 2; ci < g * 2 + 2; ci++)
					acc += (double)w[((ci * 3 + co % 3) * 2 + oh % 2) * 2 + ow % 2] *
					       x[(ci * 5 + ih) * 19 + iw];
				double t = (acc - mu[co]) / sqrt(v[co] + 1e-3) * s[co] + bb[co];
				want[(co * 10 + oh) * 38 + ow] = (float)(t > 0 ? t : 0);
			}
	struct io in = { "x", 4, { 1, 4, 5, 19 }, x };
	int64_t n;
	int nodes;
	float *y = run_model(m, 2, &in, 1, &n, &nodes);
	assert_int_equal(nodes, 1);	/* BN folded, Relu fused */
	assert_int_equal(n, 6 * 10 * 38);
	assert_close(y, want, n);
	free(y), free(x), free(w), free(s), free(bb), free(mu), free(v);
}

static void ref_pool(const float *x, int64_t NC, int64_t H, int64_t W, int64_t kh, int64_t kw,
		     int64_t sh, int64_t sw, int64_t pt, int64_t pl, int64_t pb, int64_t pr,
		     int ceil_mode, int is_max, int include_pad, int64_t *OH, int64_t *OW, float *y)
{
	int64_t oh_n = ((H + pt + pb - kh) + (ceil_mode ? sh - 1 : 0)) / sh + 1;
	int64_t ow_n = ((W + pl + pr - kw) + (ceil_mode ? sw - 1 : 0)) / sw + 1;
	if (ceil_mode && (oh_n - 1) * sh >= H + pt)
		oh_n--;
	if (ceil_mode && (ow_n - 1) * sw >= W + pl)
		ow_n--;
	*OH = oh_n, *OW = ow_n;
	for (int64_t c = 0; c < NC; c++)
		for (int64_t oh = 0; oh < oh_n; oh++)
			for (int64_t ow = 0; ow < ow_n; ow++) {
				double acc = is_max ? -INFINITY : 0;
				int cnt = 0, padcnt = 0;
				for (int64_t i = 0; i < kh; i++)
					for (int64_t j = 0; j < kw; j++) {
						int64_t ih = oh * sh - pt + i, iw = ow * sw - pl + j;
						if (ih < H + pb && iw < W + pr)
							padcnt++;
						if (ih < 0 || ih >= H || iw < 0 || iw >= W)
							continue;
						float v = x[(c * H + ih) * W + iw];
						acc = is_max ? (v > acc || v != v ? v : acc) : acc + v;
						cnt++;
					}
				y[(c * oh_n + oh) * ow_n + ow] =
					(float)(is_max ? acc : acc / (include_pad ? padcnt : cnt));
			}
}

static void check_pool(const char *model, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
		       int64_t pt, int64_t pl, int64_t pb, int64_t pr, int ceil_mode, int is_max,
		       int include_pad)
{
	float *x = rnd(3 * 10 * 9, 4), want[3 * 11 * 10];
	int64_t OH, OW, n;
	if (is_max)	/* NaN in a window gives NaN (one at an edge, one inside) */
		x[9] = x[2 * 90 + 4 * 9 + 5] = NAN;
	ref_pool(x, 3, 10, 9, kh, kw, sh, sw, pt, pl, pb, pr, ceil_mode, is_max, include_pad, &OH,
		 &OW, want);
	struct io in = { "x", 4, { 1, 3, 10, 9 }, x };
	for (int t = 1; t <= 2; t++) {
		float *y = run_model(model, t, &in, 1, &n, NULL);
		assert_int_equal(n, 3 * OH * OW);
		float w2[3 * 11 * 10];
		for (int64_t i = 0; i < n; i++) {
			if (isnan(want[i]) != isnan(y[i]))
				fail_msg("%s element %lld: got %g want %g", model, (long long)i, y[i], want[i]);
			w2[i] = isnan(want[i]) ? 0 : want[i];
			y[i] = isnan(y[i]) ? 0 : y[i];
		}
		assert_close(y, w2, n);
		free(y);
	}
	free(x);
}

static void test_pools(void **state)
{
	(void)state;
	check_pool("maxpool_ceil", 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0);
	check_pool("avgpool_pad", 3, 2, 2, 2, 1, 0, 1, 1, 1, 0, 1);
	check_pool("avgpool_nopad", 3, 3, 1, 2, 1, 1, 1, 1, 0, 0, 0);
}

static void ref_bcast(const float *a, const int64_t *as, const float *b, const int64_t *bs,
		      const int64_t *ys, int div, float *y)
{
	/* all rank 4 here (b padded with leading 1s) */
	for (int64_t i0 = 0; i0 < ys[0]; i0++)
		for (int64_t i1 = 0; i1 < ys[1]; i1++)
			for (int64_t i2 = 0; i2 < ys[2]; i2++)
				for (int64_t i3 = 0; i3 < ys[3]; i3++) {
					int64_t ia = (((as[0] > 1 ? i0 : 0) * as[1] + (as[1] > 1 ? i1 : 0)) * as[2] +
						      (as[2] > 1 ? i2 : 0)) * as[3] + (as[3] > 1 ? i3 : 0);
					int64_t ib = (((bs[0] > 1 ? i0 : 0) * bs[1] + (bs[1] > 1 ? i1 : 0)) * bs[2] +
						      (bs[2] > 1 ? i2 : 0)) * bs[3] + (bs[3] > 1 ? i3 : 0);
					float r = div ? a[ia] / b[ib] : a[ia] + b[ib];
					y[((i0 * ys[1] + i1) * ys[2] + i2) * ys[3] + i3] = r;
				}
}

static void test_broadcast(void **state)
{
	(void)state;
	int64_t n;
	{
		float *a = rnd(120, 5), *b = rnd(15, 6), want[120];
		int64_t as[4] = { 2, 3, 4, 5 }, bs[4] = { 1, 3, 1, 5 }, ys[4] = { 2, 3, 4, 5 };
		ref_bcast(a, as, b, bs, ys, 0, want);
		struct io in[2] = { { "a", 4, { 2, 3, 4, 5 }, a }, { "b", 3, { 3, 1, 5 }, b } };
		float *y = run_model("bcast_add", 2, in, 2, &n, NULL);
		assert_int_equal(n, 120);
		assert_close(y, want, n);
		free(y), free(a), free(b);
	}
	{
		float *a = rnd(8, 7), *b = rnd(18, 8), want[2 * 3 * 4 * 6];
		for (int i = 0; i < 18; i++)
			b[i] += b[i] >= 0 ? 0.5f : -0.5f;
		int64_t as[4] = { 2, 1, 4, 1 }, bs[4] = { 1, 3, 1, 6 }, ys[4] = { 2, 3, 4, 6 };
		ref_bcast(a, as, b, bs, ys, 1, want);
		struct io in[2] = { { "a", 4, { 2, 1, 4, 1 }, a }, { "b", 3, { 3, 1, 6 }, b } };
		float *y = run_model("bcast_div", 1, in, 2, &n, NULL);
		assert_int_equal(n, 144);
		assert_close(y, want, n);
		free(y), free(a), free(b);
	}
}

/* mode 0 nearest asymmetric floor, 1 linear half_pixel, 2 linear align_corners */
static float ref_coord(int mode, int64_t o, int64_t in, int64_t out, double scale)
{
	if (mode == 0)
		return (float)(o / scale);
	if (mode == 1)
		return (float)((o + 0.5) / scale - 0.5);
	return out == 1 ? 0.f : (float)o * (in - 1) / (float)(out - 1);
}

static void ref_resize(int mode, const float *x, int64_t planes, int64_t H, int64_t W, int64_t OH,
		       int64_t OW, double sh, double sw, float *y)
{
	for (int64_t p = 0; p < planes; p++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				float fy = ref_coord(mode, oh, H, OH, sh), fx = ref_coord(mode, ow, W, OW, sw);
				const float *xp = x + p * H * W;
				float v;
				if (mode == 0) {
					int64_t iy = (int64_t)floorf(fy), ix = (int64_t)floorf(fx);
					iy = iy >= H ? H - 1 : iy, ix = ix >= W ? W - 1 : ix;
					v = xp[iy * W + ix];
				} else {
					fy = fy < 0 ? 0 : fy > H - 1 ? H - 1 : fy;
					fx = fx < 0 ? 0 : fx > W - 1 ? W - 1 : fx;
					int64_t y0 = (int64_t)fy, x0 = (int64_t)fx;
					int64_t y1 = y0 + 1 < H ? y0 + 1 : y0, x1 = x0 + 1 < W ? x0 + 1 : x0;
					float dy = fy - y0, dx = fx - x0;
					v = (1 - dy) * ((1 - dx) * xp[y0 * W + x0] + dx * xp[y0 * W + x1]) +
					    dy * ((1 - dx) * xp[y1 * W + x0] + dx * xp[y1 * W + x1]);
				}
				y[(p * OH + oh) * OW + ow] = v;
			}
}

static void test_resize(void **state)
{
	(void)state;
	float *x = rnd(2 * 5 * 7, 9), want[2 * 10 * 14];
	struct io in = { "x", 4, { 1, 2, 5, 7 }, x };
	int64_t n;
	ref_resize(0, x, 2, 5, 7, 10, 14, 2, 2, want);
	float *y = run_model("resize_nearest_asym", 2, &in, 1, &n, NULL);
	assert_int_equal(n, 2 * 10 * 14);
	assert_close(y, want, n);
	free(y);
	ref_resize(1, x, 2, 5, 7, 10, 10, 2, 1.5, want);
	y = run_model("resize_linear_half", 2, &in, 1, &n, NULL);
	assert_int_equal(n, 2 * 10 * 10);
	assert_close(y, want, n);
	free(y);
	ref_resize(2, x, 2, 5, 7, 9, 4, 9 / 5., 4 / 7., want);
	y = run_model("resize_linear_align", 1, &in, 1, &n, NULL);
	assert_int_equal(n, 2 * 9 * 4);
	assert_close(y, want, n);
	free(y);
	free(x);
}

static void test_reshape_chain_folds(void **state)
{
	(void)state;
	float *x = rnd(24, 10);
	struct io in = { "x", 3, { 2, 3, 4 }, x };
	int64_t n;
	int nodes;
	float *y = run_model("reshape_chain", 1, &in, 1, &n, &nodes);
	assert_int_equal(nodes, 1);	/* Shape/Gather/Unsqueeze/Concat folded */
	assert_int_equal(n, 24);
	assert_memory_equal(y, x, 24 * sizeof(float));
	free(y), free(x);
}

/* Shape -> Gather -> Equal/Not/Mod/Range/ReduceSum/Greater/And -> Where ->
 * Reshape: everything before the Reshape folds at load; the Reshape gets
 * [2, -1] (Where picks the batch, 2, since the sum of Range(0, 2) is 1 > 0) */
static void test_where_chain_folds(void **state)
{
	(void)state;
	float *x = rnd(24, 11);
	struct io in = { "x", 3, { 2, 3, 4 }, x };
	int64_t n;
	int nodes;
	float *y = run_model("where_chain", 1, &in, 1, &n, &nodes);
	assert_int_equal(nodes, 1);
	assert_int_equal(n, 24);
	assert_memory_equal(y, x, 24 * sizeof(float));
	free(y), free(x);
}

/* Einsum "bii->bi": y[b][i] = x[b][i][i], a single product each: exact */
static void test_einsum_diagonal(void **state)
{
	(void)state;
	float *x = rnd(18, 12), want[6];
	struct io in = { "x", 3, { 2, 3, 3 }, x };
	int64_t n;
	for (int b = 0; b < 2; b++)
		for (int i = 0; i < 3; i++)
			want[b * 3 + i] = x[(b * 3 + i) * 3 + i];
	float *y = run_model("einsum_diag", 1, &in, 1, &n, NULL);
	assert_int_equal(n, 6);
	assert_memory_equal(y, want, sizeof(want));
	free(y), free(x);
}

/* Einsum "bkm,nbk->mbn" (the sgemm path, operands repacked) against a
 * float64 loop: y[m][b][n] = sum_k a[b][k][m] b[n][b][k] */
static void test_einsum_gemm(void **state)
{
	(void)state;
	float *a = rnd(24, 13), *b = rnd(30, 14), want[40];
	struct io in[2] = { { "a", 3, { 2, 3, 4 }, a }, { "b", 3, { 5, 2, 3 }, b } };
	int64_t n;
	for (int m = 0; m < 4; m++)
		for (int bb = 0; bb < 2; bb++)
			for (int j = 0; j < 5; j++) {
				double s = 0;
				for (int k = 0; k < 3; k++)
					s += (double)a[(bb * 3 + k) * 4 + m] * b[(j * 2 + bb) * 3 + k];
				want[(m * 2 + bb) * 5 + j] = (float)s;
			}
	float *y = run_model("einsum_perm", 1, in, 2, &n, NULL);
	assert_int_equal(n, 40);
	assert_close(y, want, n);
	free(y), free(a), free(b);
}

/* Range execution: [0, k) on one context, [k, N) on another fed with the
 * tensors of cut k, equals the whole run. */
static void test_ranges_and_cuts(void **state)
{
	(void)state;
	char path[1024], err[512];
	struct engine *e;
	struct engine_ctx *full, *a, *b;
	struct engine_opts o = { .threads = 2 };
	float *x = rnd(3 * 16 * 12, 11);
	struct tensor_view xv = { .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 3, 16, 12 }, .data = x };
	struct engine_value_info oi;
	struct tensor_view yf, yb;

	snprintf(path, sizeof(path), "%s/chain.onnx", dir);
	assert_int_equal(engine_load(path, &o, &e, err, sizeof(err)), 0);
	int N = engine_num_nodes(e);
	assert_int_equal(N, 3);	/* Conv, MaxPool, Conv+Add+Sigmoid */
	struct engine_node_info ni;
	assert_int_equal(engine_node_info(e, 2, &ni), 0);
	assert_non_null(strstr(ni.op, "Add"));
	assert_non_null(strstr(ni.op, "Sigmoid"));
	assert_int_equal(engine_cut_count(e, 0), 1);
	assert_int_equal(engine_cut_bytes(e, 0), 3 * 16 * 12 * 4);
	assert_int_equal(engine_cut_bytes(e, 1), 4 * 16 * 12 * 4);
	assert_int_equal(engine_cut_bytes(e, 2), 4 * 8 * 6 * 4);
	assert_int_equal(engine_cut_bytes(e, 3), 4 * 8 * 6 * 4);
	assert_true(engine_cut_count(e, 4) < 0);
	engine_output_info(e, 0, &oi);
	assert_int_equal(engine_ctx_new(e, &full), 0);
	assert_int_equal(engine_ctx_set(full, "x", &xv, err, sizeof(err)), 0);
	assert_int_equal(engine_run(full), 0);
	assert_int_equal(engine_ctx_get(full, oi.name, &yf), 0);
	for (int k = 0; k <= N; k++) {
		assert_int_equal(engine_ctx_new(e, &a), 0);
		assert_int_equal(engine_ctx_new(e, &b), 0);
		assert_int_equal(engine_ctx_set(a, "x", &xv, err, sizeof(err)), 0);
		assert_int_equal(engine_run_range(a, 0, k), 0);
		for (int j = 0; j < engine_cut_count(e, k); j++) {
			struct engine_value_info ci;
			struct tensor_view t;
			assert_int_equal(engine_cut_tensor(e, k, j, &ci), 0);
			assert_int_equal(engine_ctx_get(a, ci.name, &t), 0);
			assert_int_equal(engine_ctx_set(b, ci.name, &t, err, sizeof(err)), 0);
		}
		assert_int_equal(engine_run_range(b, k, N), 0);
		assert_int_equal(engine_ctx_get(b, oi.name, &yb), 0);
		assert_memory_equal(yb.data, yf.data, oi.bytes);
		engine_ctx_free(a);
		engine_ctx_free(b);
	}
	/* a shape mismatch is refused with a message */
	xv.shape[2] = 15;
	assert_int_equal(engine_ctx_set(full, "x", &xv, err, sizeof(err)), -22);
	assert_non_null(strstr(err, "dimension 2"));
	double ms[3];
	assert_int_equal(engine_profile(e, 3, ms), 0);
	assert_true(ms[0] >= 0 && ms[2] >= 0);
	ms[0] = ms[2] = -1;
	assert_int_equal(engine_profile_hot(e, 3, ms), 0);
	assert_true(ms[0] >= 0 && ms[2] >= 0);
	engine_ctx_free(full);
	engine_free(e);
	free(x);
}

static void expect_refused(const char *model, const char *s1, const char *s2)
{
	char path[1024], err[512] = "";
	struct engine *e = (struct engine *)1;
	snprintf(path, sizeof(path), "%s/%s.onnx", dir, model);
	int rc = engine_load(path, NULL, &e, err, sizeof(err));
	assert_true(rc < 0);
	assert_null(e);
	if (!strstr(err, s1) || (s2 && !strstr(err, s2)))
		fail_msg("%s: message '%s' lacks '%s' / '%s'", model, err, s1, s2 ? s2 : "");
}

static void test_bad_models(void **state)
{
	(void)state;
	expect_refused("bad_truncated", "not an ONNX model", NULL);
	expect_refused("bad_not_onnx", "not an ONNX model", NULL);
	expect_refused("bad_missing_init", "nowhere", "missing");
	expect_refused("bad_cycle", "cycle", NULL);
	expect_refused("bad_absurd_dims", "'w'", NULL);
	expect_refused("bad_unsupported_op", "unsupported op 'Hardmax'", "the_hardmax");
	expect_refused("bad_unsupported_op", "opset 13", NULL);
	expect_refused("bad_shapes", "broadcast", NULL);
	expect_refused("bad_gelu_approximate", "approximate 'fast' is not supported", "the_gelu");
	expect_refused("bad_gelu_opset", "Gelu needs opset 20", "old_gelu");
	char err[256];
	struct engine *e;
	assert_true(engine_load_buffer("", 0, NULL, &e, err, sizeof(err)) < 0);
	assert_true(engine_load("/nonexistent/model.onnx", NULL, &e, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent/model.onnx"));
}


/* The thread pool: every slice of every job runs once, on count = threads
 * slices, and tpool_run returns after all of them; thread counts past TPOOL_MAX_THREADS are cut to it. Each
 * thread claims its own slice first (slice i is thread i's: a node's slice
 * works on what the same slice of the node before wrote, in that thread's
 * cache). Here every slice but 0 waits until slice 0 has started: the
 * caller claims slice 0 as it publishes the job and no worker can finish
 * its own before that, so slice 0 runs on the caller every time, however
 * late any thread is; with slices handed out in claim order, an awake
 * worker won slice 0 in 435 of 500 jobs. */
struct pool_job {
	_Atomic int ran[TPOOL_MAX_THREADS];
	int count_seen, bad;
	_Atomic int round, started0;
	pthread_t caller;
	_Atomic int slice0_on_worker, timeouts;
};

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static void pool_slice(struct pool_job *j, int index, int count)
{
	if (count != j->count_seen || index < 0 || index >= count)
		j->bad = 1;
	else
		atomic_fetch_add(&j->ran[index], 1);
	if (index == 0) {
		if (!pthread_equal(pthread_self(), j->caller))
			atomic_fetch_add(&j->slice0_on_worker, 1);
		atomic_store(&j->started0, atomic_load(&j->round));
		return;
	}
	double t0 = now_s();
	while (atomic_load(&j->started0) != atomic_load(&j->round))
		if (now_s() - t0 > 5) {	/* slice 0 never started: the pool is stuck */
			atomic_fetch_add(&j->timeouts, 1);
			break;
		}
}

static void pool_fn(void *arg, int index, int count)
{
	pool_slice(arg, index, count);
}

static void test_tpool(void **state)
{
	static const int counts[] = { 1, 2, 3, 5 };
	const int jobs = 300;
	(void)state;
	for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct tpool *p = NULL;
		int n = counts[c];
		struct pool_job j = { .count_seen = n, .caller = pthread_self() };
		assert_int_equal(tpool_new(n, &p), 0);
		assert_int_equal(tpool_threads(p), n);
		for (int r = 1; r <= jobs; r++) {
			atomic_store(&j.round, r);
			tpool_run(p, pool_fn, &j);
			for (int i = 0; i < n; i++)
				if (atomic_load(&j.ran[i]) != r)
					fail_msg("%d threads, job %d: slice %d ran %d times in all", n, r, i,
						 atomic_load(&j.ran[i]));
		}
		assert_false(j.bad);
		tpool_free(p);
		printf("tpool %d threads: %d jobs, slice 0 on a worker %d times\n", n, jobs,
		       atomic_load(&j.slice0_on_worker));
		assert_int_equal(atomic_load(&j.timeouts), 0);
		assert_int_equal(atomic_load(&j.slice0_on_worker), 0);
	}
	struct tpool *p = NULL;
	assert_int_equal(tpool_new(TPOOL_MAX_THREADS + 10, &p), 0);
	assert_int_equal(tpool_threads(p), TPOOL_MAX_THREADS);
	struct pool_job j = { .count_seen = TPOOL_MAX_THREADS, .caller = pthread_self(), .round = 1 };
	tpool_run(p, pool_fn, &j);
	for (int i = 0; i < TPOOL_MAX_THREADS; i++)
		assert_int_equal(atomic_load(&j.ran[i]), 1);
	tpool_free(p);
}

/* Whether this process maps a file whose name holds `lib`. */
static int maps_has(const char *lib)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int found = 0;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, lib) != NULL;
	fclose(f);
	return found;
}

/* The CUDA backend is a library of its own, opened the first time it is
 * asked for (kernels/cuda/CMakeLists.txt): this process, which has loaded
 * and run CPU engines by now (the tests above), maps none of cuDNN, cuBLAS
 * and the CUDA runtime; asking for it maps them (where it is built and its
 * libraries load). Linked into the binary they cost ~200 MB of RSS. */
static void test_cuda_module_lazy(void **state)
{
	(void)state;
	assert_false(maps_has("libcudnn"));
	assert_false(maps_has("libcublas"));
	assert_false(maps_has("libcudart"));
	assert_false(maps_has("libsplitd_cuda"));
	const struct backend_ops *be = backend_find("cuda");
	const char *why = backend_load_error("cuda");
	if (be) {
		assert_null(why);
		assert_string_equal(be->name, "cuda");
		assert_true(maps_has("libsplitd_cuda"));
		assert_true(maps_has("libcudnn"));
		print_message("cuda backend loaded on demand\n");
	} else if (why) {
		print_message("cuda backend built, did not load here: %s\n", why);
	} else {
		print_message("cuda backend not built\n");
	}
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_kernels MODELS_DIR\n");
		return 2;
	}
	dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exp_ps_sweep),
		cmocka_unit_test(test_conv_group),
		cmocka_unit_test(test_conv_dw_relu),
		cmocka_unit_test(test_gelu),
		cmocka_unit_test(test_conv_bn_add_relu),
		cmocka_unit_test(test_expand_dw),
		cmocka_unit_test(test_convt_bn_relu),
		cmocka_unit_test(test_pools),
		cmocka_unit_test(test_broadcast),
		cmocka_unit_test(test_resize),
		cmocka_unit_test(test_reshape_chain_folds),
		cmocka_unit_test(test_where_chain_folds),
		cmocka_unit_test(test_einsum_diagonal),
		cmocka_unit_test(test_einsum_gemm),
		cmocka_unit_test(test_ranges_and_cuts),
		cmocka_unit_test(test_bad_models),
		cmocka_unit_test(test_tpool),
		cmocka_unit_test(test_cuda_module_lazy),	/* last: it loads the CUDA backend */
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
