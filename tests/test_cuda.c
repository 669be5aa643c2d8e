/* The CUDA/cuDNN backend (issue 8), label gpu. Every test skips, saying
 * so, when cudaGetDeviceCount() reports no device; the CPU path is proven
 * by the unit suites without it.
 *
 *   test_cuda ops NODE_DIR [OP...]
 *     Backend consistency (ggml's test-backend-ops): every ONNX backend node
 *     case tests/onnx/gen_node_tests.py wrote is loaded twice, with the cpu
 *     and the cuda backend, run on the case's inputs, and the CUDA outputs
 *     compared with the CPU's under a per-op tolerance, and with ONNX's
 *     reference outputs wherever the CPU backend itself matches them. A
 *     case the cuda backend refuses at load ("not supported by the cuda
 *     backend") is counted, not failed: the engine falls back to the CPU.
 *   test_cuda models MODELS_DIR NAME...
 *     Whole models from tools/export_models.py: CUDA vs torch's output and
 *     vs the CPU backend, plus the timing of one run.
 *   test_cuda pack
 *     Link packing on the device: f16 and i8 round trips within the bounds
 *     link/link_codec.h states; f16 overflow is -ERANGE, inf is -EDOM.
 *   test_cuda sticky
 *     A kernel that faults (illegal address) marks the context unhealthy,
 *     and later calls fail fast with -EIO. Run alone: it poisons the
 *     process's CUDA context by design.
 *
 * SPLITD_CUDA_TF32=1 runs the backend with TF32 tensor cores; the conv /
 * gemm tolerances then widen as kernels/cuda/README.md states. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cuda_runtime_api.h>
#include <jansson.h>

#include "backend-impl.h"
#include "cuda.h"
#include "engine.h"
#include "errbound.h"
#include "refdata.h"

static const char *data_dir;
static int tf32;
static int have_device = -1;

static int device_present(void)
{
	if (have_device < 0)
		have_device = backend_cuda_device_count() > 0;
	return have_device;
}

#define SKIP_WITHOUT_DEVICE()                                                              \
	do {                                                                               \
		if (!device_present()) {                                                   \
			print_message("no CUDA device (cudaGetDeviceCount reports none): " \
				      "skipping the GPU test\n");                         \
			skip();                                                            \
		}                                                                          \
	} while (0)

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- tolerances: the rounding-error model of tests/errbound.h ------------------
 *
 * The CUDA backend and the CPU backend are two float32 evaluations of the
 * same graph, so their difference on every tensor is bounded as any two
 * evaluations are (errbound.h): the CPU run is the reference, errbound_run
 * draws the model's realisations around it, and |cuda - cpu| <= tol(t),
 * elementwise, per output. What the model needs told about the GPU:
 *  - func_ulp 4: the CUDA Programming Guide's table of maximum ulp errors
 *    (appendix "Mathematical Functions", single precision) gives expf,
 *    tanhf, erff 2 ulp, logf 1, powf 4; division and sqrtf are correctly
 *    rounded (the build does not use -use_fast_math). The largest, 4,
 *    covers every elementwise function the backend runs.
 *  - TF32 (SPLITD_CUDA_TF32=1): both operands of every conv / GEMM product
 *    rounded to a 10-bit mantissa (unit roundoff 2^-11), accumulated in
 *    float32: each product term carries a relative error up to
 *    2 * 2^-11 = 2^-10, the model's weight_rel.
 *  - convolution algorithms: the model covers sums of products in any
 *    order, which cuDNN's GEMM-family algorithms are; FFT and Winograd are
 *    not, so the comparisons run with SPLITD_CUDA_CONV_ALGO=gemm
 *    (tests/cuda.cmake sets it).
 * Against ONNX's reference outputs (where the CPU backend meets them within
 * the case's rtol/atol): |cuda - want| <= |cuda - cpu| + |cpu - want|, so
 * the case's bound plus tol(t). Against torch (whole models):
 * TORCH_WEIGHT_REL more per product term, as tests/test_models.c derives.
 * The margin (observed / bound) of each check is printed. */

#define TORCH_WEIGHT_REL (8 * ERRBOUND_U)

static struct errbound_opts model_opts(int vs_torch)
{
	struct errbound_opts o = { .func_ulp = 4 };

	o.weight_rel = (tf32 ? 0x1p-10 : 0) + (vs_torch ? TORCH_WEIGHT_REL : 0);
	return o;
}

/* ---- engine helpers ------------------------------------------------------ */

/* Copy an output of a cuda engine (a device pointer) to host memory. */
static int fetch(const struct tensor_view *dev, struct tensor_view *host)
{
	size_t bytes = tensor_bytes(dev);

	*host = *dev;
	host->data = malloc(bytes ? bytes : 1);
	if (!host->data)
		return -ENOMEM;
	if (bytes && cudaMemcpy(host->data, dev->data, bytes, cudaMemcpyDeviceToHost) != cudaSuccess) {
		free(host->data);
		host->data = NULL;
		return -EIO;
	}
	return 0;
}

enum outcome { PASS, FAIL, REFUSED, SKIPPED };

struct op_stats { int pass, fail, refused, skipped; };

static int set_inputs(struct engine_ctx *c, const char *dir, const json_t *ins, char *msg,
		      size_t msglen)
{
	char err[512] = "";

	for (size_t i = 0; i < json_array_size(ins); i++) {
		struct ref_tensor t;
		int ret = ref_tensor_load(dir, json_array_get(ins, i), &t, err, sizeof(err));

		if (ret) {
			snprintf(msg, msglen, "input: %s", err);
			return ret;
		}
		ret = engine_ctx_set(c, t.name, &t.v, err, sizeof(err));
		if (ret)
			snprintf(msg, msglen, "engine_ctx_set(%s): %s", t.name, err);
		ref_tensor_fini(&t);
		if (ret)
			return ret;
	}
	return 0;
}

/* One input set on both engines; compare outputs. */
static enum outcome run_set(const struct engine *gpu, const struct engine *cpu, const char *dir,
			    const json_t *set, double rtol_ref, double atol_ref, double *margin,
			    char *msg, size_t msglen)
{
	struct engine_ctx *cg = NULL, *cc = NULL;
	json_t *ins = json_object_get(set, "inputs"), *outs = json_object_get(set, "outputs");
	struct errbound_opts eo = model_opts(0);
	struct errbound *eb = NULL;
	enum outcome res = FAIL;
	char err[512], cmp[400];
	int ret;

	if (engine_ctx_new(gpu, &cg) || engine_ctx_new(cpu, &cc)) {
		snprintf(msg, msglen, "engine_ctx_new failed");
		goto out;
	}
	if (set_inputs(cg, dir, ins, msg, msglen) || set_inputs(cc, dir, ins, msg, msglen))
		goto out;
	if ((ret = engine_run(cc)) != 0) {
		snprintf(msg, msglen, "cpu engine_run: %s", strerror(-ret));
		res = SKIPPED;
		goto out;
	}
	/* the model's tolerances around the CPU run (leaves cc as after it) */
	if ((ret = errbound_run(cpu, cc, &eo, &eb, err, sizeof(err))) != 0) {
		snprintf(msg, msglen, "error model: %s", err);
		goto out;
	}
	if ((ret = engine_run(cg)) != 0) {
		snprintf(msg, msglen, "cuda engine_run: %s", strerror(-ret));
		goto out;
	}
	for (size_t i = 0; i < json_array_size(outs); i++) {
		struct ref_tensor want;
		struct tensor_view got_dev, got, ref_cpu;
		struct ref_cmp r;
		double tol;
		int cpu_ok;

		if (ref_tensor_load(dir, json_array_get(outs, i), &want, err, sizeof(err))) {
			snprintf(msg, msglen, "output: %s", err);
			goto out;
		}
		if (engine_ctx_get(cg, want.name, &got_dev) || engine_ctx_get(cc, want.name, &ref_cpu) ||
		    fetch(&got_dev, &got)) {
			snprintf(msg, msglen, "output '%s' missing", want.name);
			ref_tensor_fini(&want);
			goto out;
		}
		tol = errbound_tol(eb, want.name);
		if (tol < 0) {
			snprintf(msg, msglen, "output '%s': no tolerance from the model", want.name);
			free(got.data);
			ref_tensor_fini(&want);
			goto out;
		}
		/* tol 0 (an exact result): bit equality */
		ret = ref_compare_allclose(&got, &ref_cpu, 0, tol, &r, cmp, sizeof(cmp));
		if (ret)
			snprintf(msg, msglen, "output '%s' vs cpu (model tolerance %.3g): %s", want.name,
				 tol, cmp);
		else if (tol > 0 && r.max_abs_err / tol > *margin)
			*margin = r.max_abs_err / tol;
		/* the ONNX reference, where the CPU backend meets it */
		cpu_ok = !ref_compare_allclose(&ref_cpu, &want.v, rtol_ref, atol_ref, &r, cmp,
					       sizeof(cmp));
		if (!ret && cpu_ok) {
			ret = ref_compare_allclose(&got, &want.v, rtol_ref, atol_ref + tol, &r, cmp,
						   sizeof(cmp));
			if (ret)
				snprintf(msg, msglen, "output '%s' vs ONNX reference: %s", want.name, cmp);
		}
		free(got.data);
		ref_tensor_fini(&want);
		if (ret)
			goto out;
	}
	res = PASS;
out:
	errbound_free(eb);
	engine_ctx_free(cg);
	engine_ctx_free(cc);
	return res;
}

static enum outcome run_case(const json_t *entry, double *margin, char *msg, size_t msglen)
{
	const char *rel = json_string_value(json_object_get(entry, "dir"));
	struct engine_opts go = { .threads = 1, .backend = "cuda" };
	struct engine_opts co = { .threads = 1, .backend = "cpu", .keep_weights = 1 };
	struct engine *gpu = NULL, *cpu = NULL;
	char dir[4096], path[4200], err[1024] = "";
	enum outcome res = SKIPPED;
	json_error_t jerr;
	json_t *c = NULL, *sets;
	double rtol, atol;

	snprintf(dir, sizeof(dir), "%s/%s", data_dir, rel ? rel : "");
	snprintf(path, sizeof(path), "%s/case.json", dir);
	c = json_load_file(path, 0, &jerr);
	if (!c) {
		snprintf(msg, msglen, "%.300s: %s", path, jerr.text);
		return FAIL;
	}
	if (json_is_string(json_object_get(c, "error")))
		goto out;
	rtol = json_real_value(json_object_get(c, "rtol"));
	atol = json_real_value(json_object_get(c, "atol"));
	snprintf(path, sizeof(path), "%s/model.onnx", dir);
	if (engine_load(path, &co, &cpu, err, sizeof(err)) != 0) {
		snprintf(msg, msglen, "cpu load: %s", err);
		goto out;	/* not an engine case at all */
	}
	if (engine_load(path, &go, &gpu, err, sizeof(err)) != 0) {
		snprintf(msg, msglen, "%s", err);
		res = strstr(err, "not supported by the cuda backend") ? REFUSED : FAIL;
		goto out;
	}
	sets = json_object_get(c, "sets");
	res = PASS;
	for (size_t i = 0; i < json_array_size(sets) && res == PASS; i++)
		res = run_set(gpu, cpu, dir, json_array_get(sets, i), rtol, atol, margin, msg, msglen);
out:
	engine_free(gpu);
	engine_free(cpu);
	json_decref(c);
	return res;
}

static json_t *node_index;

struct op_group {
	const char *op;
	struct op_stats st;
};

static void test_op(void **state)
{
	struct op_group *g = *state;
	json_t *cases = json_object_get(node_index, "cases");
	double margin = 0;

	SKIP_WITHOUT_DEVICE();
	for (size_t i = 0; i < json_array_size(cases); i++) {
		json_t *entry = json_array_get(cases, i);
		const char *op = json_string_value(json_object_get(entry, "op"));
		const char *name = json_string_value(json_object_get(entry, "case"));
		char msg[1024] = "";

		if (!op || strcmp(op, g->op) != 0)
			continue;
		switch (run_case(entry, &margin, msg, sizeof(msg))) {
		case PASS: g->st.pass++; break;
		case REFUSED: g->st.refused++; break;
		case SKIPPED: g->st.skipped++; break;
		default:
			g->st.fail++;
			print_error("%s: %s\n", name ? name : "?", msg);
			break;
		}
	}
	print_message("%-22s cuda pass %d, fail %d, refused at load %d, not an engine case %d\n",
		      g->op, g->st.pass, g->st.fail, g->st.refused, g->st.skipped);
	print_message("MARGIN cuda_ops/%s %.3g\n", g->op, margin);
	assert_int_equal(g->st.fail, 0);
}

/* ---- whole models ---------------------------------------------------------- */

static void test_model(void **state)
{
	const char *name = *state;
	char dir[4096], path[4200], err[1024] = "", cmp[400];
	struct engine_opts go = { .threads = 2, .backend = "cuda" };
	struct engine_opts co = { .threads = 2, .backend = "cpu", .keep_weights = 1 };
	struct engine *gpu = NULL, *cpu = NULL;
	struct engine_ctx *cg = NULL, *cc = NULL;
	struct errbound_opts eo_cpu = model_opts(0), eo_torch = model_opts(1);
	struct errbound *eb_cpu = NULL, *eb_torch = NULL;
	double t0, ms = 0;
	json_error_t jerr;
	json_t *meta;
	int ret;

	SKIP_WITHOUT_DEVICE();
	snprintf(dir, sizeof(dir), "%s/%s", data_dir, name);
	snprintf(path, sizeof(path), "%s/model.json", dir);
	meta = json_load_file(path, 0, &jerr);
	if (!meta)
		fail_msg("%s: %s (run tools/export_models.py)", path, jerr.text);
	snprintf(path, sizeof(path), "%s/%s", dir, json_string_value(json_object_get(meta, "onnx")));
	ret = engine_load(path, &go, &gpu, err, sizeof(err));
	if (ret)
		fail_msg("%s: cuda engine_load: %s", name, err);
	assert_int_equal(engine_load(path, &co, &cpu, err, sizeof(err)), 0);
	assert_int_equal(engine_ctx_new(gpu, &cg), 0);
	assert_int_equal(engine_ctx_new(cpu, &cc), 0);
	assert_int_equal(set_inputs(cg, dir, json_object_get(meta, "inputs"), err, sizeof(err)), 0);
	assert_int_equal(set_inputs(cc, dir, json_object_get(meta, "inputs"), err, sizeof(err)), 0);
	assert_int_equal(engine_run(cg), 0);	/* warm-up */
	for (int r = 0; r < 5; r++) {
		double d;
		t0 = now_ms();
		assert_int_equal(engine_run(cg), 0);
		d = now_ms() - t0;
		ms = (r == 0 || d < ms) ? d : ms;
	}
	/* the model around the CPU run, once for each comparison */
	if (errbound_run(cpu, cc, &eo_torch, &eb_torch, err, sizeof(err)) ||
	    errbound_run(cpu, cc, &eo_cpu, &eb_cpu, err, sizeof(err)))
		fail_msg("%s: error model: %s", name, err);
	for (size_t i = 0; i < json_array_size(json_object_get(meta, "outputs")); i++) {
		struct ref_tensor want;
		struct tensor_view dev, got, cpu_out;
		struct ref_cmp r1, r2;

		assert_int_equal(ref_tensor_load(dir, json_array_get(json_object_get(meta, "outputs"), i),
						 &want, err, sizeof(err)), 0);
		assert_int_equal(engine_ctx_get(cg, want.name, &dev), 0);
		assert_int_equal(engine_ctx_get(cc, want.name, &cpu_out), 0);
		assert_int_equal(fetch(&dev, &got), 0);
		double tol_torch = errbound_tol(eb_torch, want.name), tol_cpu = errbound_tol(eb_cpu, want.name);
		assert_true(tol_torch > 0 && tol_cpu > 0);
		ret = ref_compare_allclose(&got, &want.v, 0, tol_torch, &r1, cmp, sizeof(cmp));
		if (ret)
			print_error("%s '%s' vs torch: %s\n", name, want.name, cmp);
		assert_int_equal(ret, 0);
		ret = ref_compare_allclose(&got, &cpu_out, 0, tol_cpu, &r2, cmp, sizeof(cmp));
		if (ret)
			print_error("%s '%s' vs cpu backend: %s\n", name, want.name, cmp);
		assert_int_equal(ret, 0);
		print_message("%s '%s': max |cuda - torch| %.3g, |cuda - cpu| %.3g (max |ref| %.3g)\n",
			      name, want.name, r1.max_abs_err, r2.max_abs_err, r1.max_abs_ref);
		print_message("MARGIN cuda_model/%s/%s torch %.3g cpu %.3g\n", name, want.name,
			      r1.max_abs_err / tol_torch, r2.max_abs_err / tol_cpu);
		free(got.data);
		ref_tensor_fini(&want);
	}
	print_message("%s: cuda run %.3f ms (best of 5, engine_run incl. sync), %d nodes\n", name,
		      ms, engine_num_nodes(gpu));
	assert_true(backend_cuda_device_count() > 0);
	errbound_free(eb_cpu);
	errbound_free(eb_torch);
	engine_ctx_free(cg);
	engine_ctx_free(cc);
	engine_free(gpu);
	engine_free(cpu);
	json_decref(meta);
}

/* ---- link packing ------------------------------------------------------------ */

static void test_pack(void **state)
{
	enum { N = 4099 };
	void *ctx = NULL;
	float *x = malloc(N * sizeof(float)), *back = malloc(N * sizeof(float)), *dev, *dev2;
	uint16_t *h = malloc(N * sizeof(uint16_t));
	int8_t *q = malloc(N);
	float scale = 0, maxabs = 0;
	uint32_t seed = 12345;

	const struct backend_ops *be = backend_find("cuda");

	(void)state;
	SKIP_WITHOUT_DEVICE();
	assert_non_null(be);
	assert_non_null(x);
	assert_non_null(back);
	assert_non_null(h);
	assert_non_null(q);
	for (int i = 0; i < N; i++) {
		seed = seed * 1664525u + 1013904223u;
		x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 20.0f;
		if (i % 97 == 0)
			x[i] = ldexpf(x[i], -20);	/* half subnormals */
		maxabs = fabsf(x[i]) > maxabs ? fabsf(x[i]) : maxabs;
	}
	assert_int_equal(be->ctx_new(NULL, &ctx), 0);
	dev = be->buf_alloc(ctx, N * sizeof(float));
	dev2 = be->buf_alloc(ctx, N * sizeof(float));
	assert_non_null(dev);
	assert_non_null(dev2);
	assert_int_equal(be->upload(ctx, dev, x, N * sizeof(float)), 0);

	/* f16: |x' - x| <= 2^-11 |x| (normals), <= 2^-25 (subnormals) */
	assert_int_equal(backend_cuda_pack_f16(ctx, dev, N, h), 0);
	assert_int_equal(backend_cuda_unpack_f16(ctx, h, N, dev2), 0);
	assert_int_equal(be->download(ctx, back, dev2, N * sizeof(float)), 0);
	for (int i = 0; i < N; i++) {
		double bound = fabsf(x[i]) >= ldexpf(1, -14) ? ldexp(fabs(x[i]), -11) : ldexp(1, -25);
		if (fabs((double)back[i] - x[i]) > bound)
			fail_msg("f16 element %d: %.9g -> %.9g, bound %.3g", i, x[i], back[i], bound);
	}
	/* i8: scale = max|x| / 127 (nudged), |x' - x| <= scale (1/2 + 2^-15) */
	assert_int_equal(backend_cuda_pack_i8(ctx, dev, N, q, &scale), 0);
	assert_true(scale >= maxabs / 127.0f && scale <= maxabs / 127.0f * 1.0001f);
	assert_int_equal(backend_cuda_unpack_i8(ctx, q, N, scale, dev2), 0);
	assert_int_equal(be->download(ctx, back, dev2, N * sizeof(float)), 0);
	for (int i = 0; i < N; i++) {
		double bound = scale * (0.5 + ldexp(1, -15));
		assert_true(q[i] >= -127 && q[i] <= 127);
		if (fabs((double)back[i] - x[i]) > bound)
			fail_msg("i8 element %d: %.9g -> %.9g, bound %.3g", i, x[i], back[i], bound);
	}
	/* refusals */
	x[7] = 70000.0f;
	assert_int_equal(be->upload(ctx, dev, x, N * sizeof(float)), 0);
	assert_int_equal(backend_cuda_pack_f16(ctx, dev, N, h), -ERANGE);
	x[7] = INFINITY;
	assert_int_equal(be->upload(ctx, dev, x, N * sizeof(float)), 0);
	assert_int_equal(backend_cuda_pack_i8(ctx, dev, N, q, &scale), -EDOM);
	assert_int_equal(backend_cuda_healthy(ctx), 1);
	be->buf_free(ctx, dev);
	be->buf_free(ctx, dev2);
	be->ctx_free(ctx);
	free(x);
	free(back);
	free(h);
	free(q);
}

/* ---- sticky error ---------------------------------------------------------------- */

static void test_sticky(void **state)
{
	void *ctx = NULL;
	uint16_t h[1024];
	float one = 1.0f;
	void *dev;

	const struct backend_ops *be = backend_find("cuda");

	(void)state;
	SKIP_WITHOUT_DEVICE();
	assert_non_null(be);
	assert_int_equal(be->ctx_new(NULL, &ctx), 0);
	assert_int_equal(backend_cuda_healthy(ctx), 1);
	assert_string_equal(backend_cuda_last_error(ctx), "");
	/* a device address nothing owns: the kernel faults */
	assert_int_not_equal(backend_cuda_pack_f16(ctx, (const float *)(uintptr_t)0x10, 1024, h), 0);
	assert_int_equal(backend_cuda_healthy(ctx), 0);
	print_message("recorded: %s\n", backend_cuda_last_error(ctx));
	assert_non_null(strstr(backend_cuda_last_error(ctx), "cudaError"));
	/* fails fast from now on, never touching the device */
	dev = be->buf_alloc(ctx, 64);
	assert_null(dev);
	assert_int_equal(be->upload(ctx, h, &one, sizeof(one)), -EIO);
	assert_int_equal(be->synchronize(ctx), -EIO);
	be->ctx_free(ctx);
}

/* ---- main ------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	const char *env = getenv("SPLITD_CUDA_TF32");
	struct CMUnitTest *tests = NULL;
	struct op_group *groups = NULL;
	int n = 0, ret = 1;

	tf32 = env && env[0] == '1';
	if (argc >= 2 && !strcmp(argv[1], "pack")) {
		const struct CMUnitTest t[] = { cmocka_unit_test(test_pack) };
		return cmocka_run_group_tests_name("cuda_pack", t, NULL, NULL);
	}
	if (argc >= 2 && !strcmp(argv[1], "sticky")) {
		const struct CMUnitTest t[] = { cmocka_unit_test(test_sticky) };
		return cmocka_run_group_tests_name("cuda_sticky", t, NULL, NULL);
	}
	if (argc < 3 || (strcmp(argv[1], "ops") && strcmp(argv[1], "models"))) {
		fprintf(stderr, "usage: %s ops NODE_DIR [OP...] | models MODELS_DIR NAME... | pack | sticky\n",
			argv[0]);
		return 2;
	}
	data_dir = argv[2];
	tests = calloc(1024, sizeof(*tests));
	groups = calloc(1024, sizeof(*groups));
	if (!tests || !groups)
		goto out;
	if (!strcmp(argv[1], "models")) {
		for (int a = 3; a < argc && n < 1024; a++, n++) {
			tests[n].name = argv[a];
			tests[n].test_func = test_model;
			tests[n].initial_state = argv[a];
		}
		ret = _cmocka_run_group_tests("cuda_models", tests, (size_t)n, NULL, NULL);
		goto out;
	}
	if (!device_present()) {
		/* no index to read either: one test that says why it skips */
		tests[0].name = "ops";
		tests[0].test_func = test_op;
		tests[0].initial_state = &groups[0];
		groups[0].op = "-";
		ret = _cmocka_run_group_tests("cuda_ops", tests, 1, NULL, NULL);
		goto out;
	}
	{
		char path[4200];
		json_error_t jerr;
		json_t *cases;

		snprintf(path, sizeof(path), "%s/index.json", data_dir);
		node_index = json_load_file(path, 0, &jerr);
		if (!node_index) {
			fprintf(stderr, "%s: %s (run tests/onnx/gen_node_tests.py)\n", path, jerr.text);
			goto out;
		}
		cases = json_object_get(node_index, "cases");
		/* one test per op that has cases (and that argv names, if any) */
		for (size_t i = 0; i < json_array_size(cases) && n < 1024; i++) {
			const char *op = json_string_value(json_object_get(json_array_get(cases, i), "op"));
			int seen = 0, want = argc == 3;

			if (!op)
				continue;
			for (int a = 3; a < argc; a++)
				want |= !strcmp(argv[a], op);
			for (int k = 0; k < n; k++)
				seen |= !strcmp(groups[k].op, op);
			if (seen || !want)
				continue;
			groups[n].op = op;
			tests[n].name = op;
			tests[n].test_func = test_op;
			tests[n].initial_state = &groups[n];
			n++;
		}
	}
	ret = _cmocka_run_group_tests("cuda_ops", tests, (size_t)n, NULL, NULL);
	{
		struct op_stats t = { 0 };
		for (int k = 0; k < n; k++) {
			t.pass += groups[k].st.pass, t.fail += groups[k].st.fail;
			t.refused += groups[k].st.refused, t.skipped += groups[k].st.skipped;
		}
		printf("cuda ops: %d cases pass, %d fail, %d refused by the cuda backend at load, "
		       "%d not engine cases\n", t.pass, t.fail, t.refused, t.skipped);
	}
out:
	json_decref(node_index);
	free(tests);
	free(groups);
	return ret;
}
