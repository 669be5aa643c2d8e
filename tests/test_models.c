/* Whole models against torch, and split runs against the whole run.
 *
 * usage: test_models MODELS_DIR MODEL [MODEL...]
 *
 * MODELS_DIR/<MODEL>/ is what tools/export_models.py wrote: model.onnx,
 * model.json, the input and torch's outputs as raw float32.
 *
 * vs_torch: engine_run on torch's input; every output must satisfy
 *   max |engine - torch| <= errbound_tol(output)
 * Torch and the engine are two float32 evaluations of the same network, so
 * they are two draws of the rounding model of tests/errbound.h, with one
 * difference the model must be told: the engine folds BatchNormalization
 * into the conv before it (s = gamma / sqrt(var + eps): 3 roundings;
 * w s: 1; (b - mean) s + beta: 3), torch applies it to the conv's result
 * (4 roundings). Each product term of a conv therefore carries up to 8
 * more roundings of relative size u = 2^-24 between the two:
 * TORCH_WEIGHT_REL. The margin (observed / tolerance) is printed.
 * split: for cuts k spread over the graph (and the cut crossing the most
 *   tensors), run [0, k) on one ctx, copy every tensor of cut k through
 *   engine_cut_tensor / engine_ctx_get / engine_ctx_set into a fresh ctx, run
 *   [k, N) there; the outputs must equal the whole run's bit for bit (the same
 *   kernels on the same data: what the offload link relies on). Also checks
 *   the cut bookkeeping: cut 0 = the inputs, cut N = the outputs, the bytes of
 *   a cut = the sum of its tensors'.
 *
 * SPLITD_TEST_THREADS sets the engine's thread count (default 2). */
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
#include <jansson.h>

#include "engine.h"
#include "errbound.h"
#include "refdata.h"

#define TORCH_WEIGHT_REL (8 * ERRBOUND_U)
#define MAX_CUTS 8

struct model_fixture {
	const char *name;
	char dir[4096];
	json_t *meta;
	struct engine *e;
	struct ref_tensor *inputs, *outputs;
	int n_inputs, n_outputs;
	double load_ms;
};

static const char *models_dir;
static int n_threads = 2;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int load_list(struct model_fixture *f, const char *key, struct ref_tensor **out, int *n)
{
	json_t *arr = json_object_get(f->meta, key);
	char err[512];

	*n = (int)json_array_size(arr);
	*out = calloc((size_t)(*n ? *n : 1), sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (int i = 0; i < *n; i++)
		if (ref_tensor_load(f->dir, json_array_get(arr, (size_t)i), &(*out)[i], err,
				    sizeof(err)) != 0) {
			print_error("%s: %s\n", f->name, err);
			return -EIO;
		}
	return 0;
}

static int setup(void **state)
{
	struct model_fixture *f = *state;
	struct engine_opts opts = { .threads = n_threads, .keep_weights = 1 };	/* errbound reads them */
	json_error_t jerr;
	char path[4200], err[1024] = "";
	double t0;
	int ret;

	snprintf(f->dir, sizeof(f->dir), "%s/%s", models_dir, f->name);
	snprintf(path, sizeof(path), "%s/model.json", f->dir);
	f->meta = json_load_file(path, 0, &jerr);
	if (!f->meta) {
		print_error("%s: %s (run tools/export_models.py)\n", path, jerr.text);
		return -1;
	}
	if (load_list(f, "inputs", &f->inputs, &f->n_inputs) ||
	    load_list(f, "outputs", &f->outputs, &f->n_outputs))
		return -1;
	snprintf(path, sizeof(path), "%s/%s", f->dir,
		 json_string_value(json_object_get(f->meta, "onnx")));
	t0 = now_ms();
	ret = engine_load(path, &opts, &f->e, err, sizeof(err));
	f->load_ms = now_ms() - t0;
	if (ret) {
		print_error("%s: engine_load: %s (%s)\n", f->name, err, strerror(-ret));
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	struct model_fixture *f = *state;

	engine_free(f->e);
	f->e = NULL;
	for (int i = 0; f->inputs && i < f->n_inputs; i++)
		ref_tensor_fini(&f->inputs[i]);
	for (int i = 0; f->outputs && i < f->n_outputs; i++)
		ref_tensor_fini(&f->outputs[i]);
	free(f->inputs);
	free(f->outputs);
	f->inputs = f->outputs = NULL;
	json_decref(f->meta);
	f->meta = NULL;
	return 0;
}

static void set_inputs(struct model_fixture *f, struct engine_ctx *c)
{
	char err[512] = "";

	for (int i = 0; i < f->n_inputs; i++) {
		int ret = engine_ctx_set(c, f->inputs[i].name, &f->inputs[i].v, err, sizeof(err));

		if (ret)
			fail_msg("%s: engine_ctx_set(%s): %s (%s)", f->name, f->inputs[i].name, err,
				 strerror(-ret));
	}
}

static void test_vs_torch(void **state)
{
	struct model_fixture *f = *state;
	struct engine_ctx *c = NULL;
	double t0, run_ms;
	int bad = 0;

	/* shape and mask arithmetic of a static input shape folds at load */
	json_t *folded = json_object_get(f->meta, "folded_ops");
	for (int i = 0; i < engine_num_nodes(f->e); i++) {
		struct engine_node_info ni;
		assert_int_equal(engine_node_info(f->e, i, &ni), 0);
		for (size_t j = 0; j < json_array_size(folded); j++)
			if (!strcmp(ni.op, json_string_value(json_array_get(folded, j)))) {
				print_error("%s: node '%s' (%s) was not constant-folded\n", f->name, ni.name,
					    ni.op);
				bad++;
			}
	}

	assert_int_equal(engine_num_outputs(f->e), f->n_outputs);
	assert_int_equal(engine_ctx_new(f->e, &c), 0);
	set_inputs(f, c);
	t0 = now_ms();
	assert_int_equal(engine_run(c), 0);
	run_ms = now_ms() - t0;
	struct errbound *eb = NULL;
	struct errbound_opts eo = { .weight_rel = TORCH_WEIGHT_REL };
	char eerr[512];
	set_inputs(f, c);
	if (errbound_run(f->e, c, &eo, &eb, eerr, sizeof(eerr)))
		fail_msg("%s: error model: %s", f->name, eerr);
	for (int i = 0; i < f->n_outputs; i++) {
		struct tensor_view got;
		struct ref_cmp r;
		char msg[512];
		int ret;

		ret = engine_ctx_get(c, f->outputs[i].name, &got);
		if (ret) {
			print_error("%s: engine_ctx_get(%s): %s\n", f->name, f->outputs[i].name,
				    strerror(-ret));
			bad++;
			continue;
		}
		double tol = errbound_tol(eb, f->outputs[i].name);
		assert_true(tol >= 0);
		ret = ref_compare_allclose(&got, &f->outputs[i].v, 0, tol, &r, msg, sizeof(msg));
		print_message("%s %s: max abs err %.3g, max |torch| %.4g, tolerance %.3g, margin %.3g; "
			      "load %.1f ms, first run %.1f ms, %d nodes\n",
			      f->name, f->outputs[i].name, r.max_abs_err, r.max_abs_ref, tol,
			      tol > 0 ? r.max_abs_err / tol : (r.max_abs_err > 0 ? INFINITY : 0.0),
			      f->load_ms, run_ms, engine_num_nodes(f->e));
		print_message("MARGIN model/%s/%s %.3g\n", f->name, f->outputs[i].name,
			      tol > 0 ? r.max_abs_err / tol : (r.max_abs_err > 0 ? INFINITY : 0.0));
		if (ret) {
			print_error("%s %s: %s\n", f->name, f->outputs[i].name, msg);
			bad++;
		}
		/* an acceptance target the model's issue states, relative to
		 * max |torch| (issue 20: the transformers within 1e-4) */
		json_t *rt = json_object_get(f->meta, "rel_target");
		if (json_is_number(rt)) {
			double rel = json_number_value(rt);
			print_message("%s %s: max abs err / max |torch| %.3g, target %.3g\n", f->name,
				      f->outputs[i].name, r.max_abs_ref > 0 ? r.max_abs_err / r.max_abs_ref : 0,
				      rel);
			if (ref_compare_rel(&got, &f->outputs[i].v, rel, &r, msg, sizeof(msg))) {
				print_error("%s %s: %s\n", f->name, f->outputs[i].name, msg);
				bad++;
			}
		}
	}
	errbound_free(eb);
	engine_ctx_free(c);
	assert_int_equal(bad, 0);
}

static int pick_cuts(const struct engine *e, int n, int *cuts)
{
	int cand[6] = { 1, n / 4, n / 2, 3 * n / 4, n - 1, -1 }, m = 0, best = -1;

	for (int k = 1; k < n; k++) {
		int cnt = engine_cut_count(e, k);

		if (best < 0 || cnt > engine_cut_count(e, best))
			best = k;
	}
	cand[5] = best;
	for (int i = 0; i < 6; i++) {
		int dup = 0;

		if (cand[i] < 1 || cand[i] >= n)
			continue;
		for (int j = 0; j < m; j++)
			dup |= cuts[j] == cand[i];
		if (!dup)
			cuts[m++] = cand[i];
	}
	return m;
}

static void check_cut_bookkeeping(struct model_fixture *f, int n)
{
	struct engine_value_info vi;
	int ends[2] = { 0, n };

	for (int t = 0; t < 2; t++) {
		int k = ends[t], cnt = engine_cut_count(f->e, k);
		int want = t ? engine_num_outputs(f->e) : engine_num_inputs(f->e);
		size_t sum = 0;

		assert_int_equal(cnt, want);
		for (int j = 0; j < cnt; j++) {
			assert_int_equal(engine_cut_tensor(f->e, k, j, &vi), 0);
			sum += vi.bytes;
		}
		assert_int_equal(engine_cut_bytes(f->e, k), sum);
	}
}

static void test_split(void **state)
{
	struct model_fixture *f = *state;
	struct engine_ctx *whole = NULL;
	struct tensor_view *ref;
	int n = engine_num_nodes(f->e), cuts[MAX_CUTS], n_cuts, bad = 0;

	assert_true(n >= 2);
	check_cut_bookkeeping(f, n);
	ref = calloc((size_t)f->n_outputs, sizeof(*ref));
	assert_non_null(ref);
	assert_int_equal(engine_ctx_new(f->e, &whole), 0);
	set_inputs(f, whole);
	assert_int_equal(engine_run(whole), 0);
	for (int i = 0; i < f->n_outputs; i++)
		assert_int_equal(engine_ctx_get(whole, f->outputs[i].name, &ref[i]), 0);

	n_cuts = pick_cuts(f->e, n, cuts);
	for (int ci = 0; ci < n_cuts; ci++) {
		int k = cuts[ci], cnt = engine_cut_count(f->e, k), ret;
		struct engine_ctx *a = NULL, *b = NULL;
		struct engine_node_info ni;
		size_t sum = 0;
		char err[512] = "";

		assert_true(cnt >= 1);
		assert_int_equal(engine_node_info(f->e, k, &ni), 0);
		assert_int_equal(engine_ctx_new(f->e, &a), 0);
		assert_int_equal(engine_ctx_new(f->e, &b), 0);
		set_inputs(f, a);
		ret = engine_run_range(a, 0, k);
		if (ret)
			fail_msg("%s: run_range(0, %d): %s", f->name, k, strerror(-ret));
		for (int j = 0; j < cnt; j++) {
			struct engine_value_info vi;
			struct tensor_view v;

			assert_int_equal(engine_cut_tensor(f->e, k, j, &vi), 0);
			ret = engine_ctx_get(a, vi.name, &v);
			if (ret)
				fail_msg("%s: cut %d: ctx_get(%s): %s", f->name, k, vi.name,
					 strerror(-ret));
			assert_int_equal(v.dtype, vi.dtype);
			assert_int_equal(v.ndim, vi.ndim);
			assert_memory_equal(v.shape, vi.shape, sizeof(int64_t) * (size_t)vi.ndim);
			assert_int_equal(tensor_bytes(&v), vi.bytes);
			sum += vi.bytes;
			ret = engine_ctx_set(b, vi.name, &v, err, sizeof(err));
			if (ret)
				fail_msg("%s: cut %d: ctx_set(%s): %s", f->name, k, vi.name, err);
		}
		assert_int_equal(engine_cut_bytes(f->e, k), sum);
		ret = engine_run_range(b, k, n);
		if (ret)
			fail_msg("%s: run_range(%d, %d): %s", f->name, k, n, strerror(-ret));
		for (int i = 0; i < f->n_outputs; i++) {
			struct tensor_view got;
			struct ref_cmp r;
			char msg[512];

			assert_int_equal(engine_ctx_get(b, f->outputs[i].name, &got), 0);
			if (ref_compare_allclose(&got, &ref[i], 0, 0, &r, msg, sizeof(msg)) != 0) {
				print_error("%s: cut %d (before node %s %s, %d tensors, %zu bytes): "
					    "output %s differs from the whole run: %s\n",
					    f->name, k, ni.op, ni.name, cnt, sum,
					    f->outputs[i].name, msg);
				bad++;
			}
		}
		print_message("%s: cut %d/%d before %s: %d tensors, %zu bytes: %s\n", f->name, k,
			      n, ni.op, cnt, sum, bad ? "DIFFERS" : "equal");
		engine_ctx_free(a);
		engine_ctx_free(b);
	}
	engine_ctx_free(whole);
	free(ref);
	assert_int_equal(bad, 0);
}

int main(int argc, char **argv)
{
	struct model_fixture *fx;
	struct CMUnitTest *tests;
	const char *env = getenv("SPLITD_TEST_THREADS");
	char (*names)[2][160];
	int n = argc - 2, ret;

	if (argc < 3) {
		fprintf(stderr, "usage: %s MODELS_DIR MODEL [MODEL...]\n", argv[0]);
		return 2;
	}
	models_dir = argv[1];
	if (env)
		n_threads = atoi(env);
	fx = calloc((size_t)n, sizeof(*fx));
	tests = calloc((size_t)n * 2, sizeof(*tests));
	names = calloc((size_t)n, sizeof(*names));
	if (!fx || !tests || !names)
		return 1;
	for (int i = 0; i < n; i++) {
		fx[i].name = argv[i + 2];
		snprintf(names[i][0], sizeof(names[i][0]), "%s_vs_torch", fx[i].name);
		snprintf(names[i][1], sizeof(names[i][1]), "%s_split", fx[i].name);
		tests[2 * i] = (struct CMUnitTest){ names[i][0], test_vs_torch, setup, teardown,
						    &fx[i] };
		tests[2 * i + 1] = (struct CMUnitTest){ names[i][1], test_split, setup, teardown,
							&fx[i] };
	}
	ret = _cmocka_run_group_tests("models", tests, (size_t)n * 2, NULL, NULL);
	free(names);
	free(tests);
	free(fx);
	return ret;
}
