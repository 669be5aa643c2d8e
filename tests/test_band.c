/* Banded execution (kernels/band.c, issue 9) against the unbanded engine.
 *
 * usage: test_band graphs DIR           small edge-case graphs written by
 *                                       tests/band/gen_band_graphs.py
 *        test_band models DIR NAME...   models from tools/export_models.py
 *
 * For every cut k whose range [0, k) is row-local, and every band count B:
 *  - while the run goes, at each band's callback the rows that band declares
 *    final hold the unbanded values already (what the link will stream);
 *  - afterwards every tensor of cut k equals the unbanded engine_run_range
 *    within its derived tolerance (see TOLERANCES below), and the multiply-adds the
 *    banded run counted from its kernel calls equal the sum of
 *    engine_node_info().macs;
 *  - [k, N) run unbanded after it gives the whole run's outputs.
 * The peer's side, the wavefront driven by arriving rows: for every start k
 * with a row-local range [k, engine_band_reach(k)), the tensors of cut k
 * start as NaN and get their unbanded rows in B steps; after each step
 * engine_band_advance may compute only from rows fed so far (a row read
 * early would carry a NaN into the result), says complete once the rows fed
 * give all of cut `reach` (at the last step, or before when the range never
 * reads the last rows), and then cut `reach` equals the unbanded run with
 * the same multiply-adds.
 * Cuts past a barrier must be refused with a message naming the node. The
 * graphs have no barrier before their last node except `barrier` and
 * `barrier_norm`, so all but those must be legal at every cut.
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

#include <cmocka.h>
#include <jansson.h>

#include "engine.h"
#include "errbound.h"
#include "refdata.h"

/* TOLERANCES. The banded run does the same arithmetic per element as the
 * unbanded one, in another order: OpenBLAS's kernels round a column
 * differently depending on where the matrix width puts it (main loop or
 * tail, FMA or not), and bands change the widths; so do thread counts and
 * the kernel OpenBLAS picks for the CPU. Both results are float32
 * evaluations of the same function of the same bits, so they are two draws
 * of the rounding-error model of tests/errbound.h (each rounding an
 * independent error within u = 2^-24; a sum of n products adds at most
 * u sqrt(n/3) sum |w||x| of standard deviation, ...), and each tensor's
 * tolerance is errbound_tol(): ERRBOUND_SAFETY times the largest
 * difference that model's draws, run through the engine from cut 0, showed
 * in that tensor. A range starting at a later cut starts from exact inputs
 * and so has less error to carry: the tolerance from cut 0 holds for it.
 * Each check prints its margin (largest |banded - unbanded| / tolerance):
 * a margin creeping towards 1 shows before a failure.
 * SPLITD_BAND_EXACT=1 demands bit equality: run it with a BLAS kernel whose
 * result does not depend on the width (OPENBLAS_CORETYPE=Sandybridge). */
static int exact;
#define MAX_TENSORS 64

struct fixture {
	char name[256];
	char path[4096];	/* model.onnx */
	char dir[4096];		/* models: the folder with model.json */
	int is_model;
	const int *bands;
	int n_bands;
};

static int n_threads = 2;
static const int graph_bands[] = { 1, 2, 3, 4, 8, 64 };
static const int model_bands[] = { 2, 4, 8 };

struct copy {
	char *name;
	struct tensor_view v;
	double tol;		/* allowed max |banded - unbanded| (errbound.h); 0: bit equality */
};

static void copy_free(struct copy *c, int n)
{
	for (int i = 0; i < n; i++) {
		free(c[i].name);
		free(c[i].v.data);
	}
}

static double max_abs(const struct tensor_view *v)
{
	double m = 0;
	for (int64_t i = 0; v->dtype == TENSOR_F32 && i < tensor_numel(v); i++)
		m = fmax(m, fabs(((const float *)v->data)[i]));
	return m;
}

/* the current fixture's bounds (NULL in exact mode) */
static struct errbound *cur_eb;

static void copy_of(struct copy *dst, const char *name, const struct tensor_view *v)
{
	dst->name = strdup(name);
	dst->v = *v;
	dst->v.data = malloc(tensor_bytes(v) + 1);
	assert_non_null(dst->name);
	assert_non_null(dst->v.data);
	memcpy(dst->v.data, v->data, tensor_bytes(v));
	dst->tol = cur_eb ? errbound_tol(cur_eb, name) : 0;
	assert_true(dst->tol >= 0);
}

/* max |got - ref| / tol; <= 1 passes */
static double ratio(double d, double tol)
{
	return d == 0 ? 0 : tol > 0 ? d / tol : INFINITY;
}

static double max_abs_diff(const struct tensor_view *a, const struct tensor_view *b);

static double margin_of(const struct tensor_view *got, const struct copy *ref)
{
	return ratio(max_abs_diff(got, &ref->v), ref->tol);
}

/* The bounds of every tensor from a run of e on the inputs (none when bit
 * equality is asked for). */
static void bounds_for(const struct fixture *f, struct engine *e, const struct copy *in, int n_in)
{
	struct engine_ctx *c = NULL;
	char err[512];
	cur_eb = NULL;
	if (exact)
		return;
	assert_int_equal(engine_ctx_new(e, &c), 0);
	for (int i = 0; i < n_in; i++)
		assert_int_equal(engine_ctx_set(c, in[i].name, &in[i].v, err, sizeof(err)), 0);
	if (errbound_run(e, c, NULL, &cur_eb, err, sizeof(err))) {
		print_error("%s: error bound: %s\n", f->name, err);
		fail();
	}
	engine_ctx_free(c);
}

static double max_abs_diff(const struct tensor_view *a, const struct tensor_view *b)
{
	assert_int_equal(a->dtype, b->dtype);
	assert_int_equal(a->ndim, b->ndim);
	for (int d = 0; d < a->ndim; d++)
		assert_int_equal(a->shape[d], b->shape[d]);
	int64_t n = tensor_numel(a);
	double m = 0;
	if (a->dtype != TENSOR_F32)
		return memcmp(a->data, b->data, tensor_bytes(a)) ? INFINITY : 0;
	for (int64_t i = 0; i < n; i++) {
		double x = ((const float *)a->data)[i], y = ((const float *)b->data)[i];
		double dd = fabs(x - y);
		if (dd > m || (x != x) != (y != y))
			m = dd > m ? dd : INFINITY;
	}
	return m;
}

/* the model's inputs: the exporter's for models, a fixed pattern for graphs */
static int load_inputs(const struct fixture *f, struct engine *e, struct copy *in, int *n)
{
	*n = engine_num_inputs(e);
	assert_true(*n >= 1 && *n <= MAX_TENSORS);
	if (f->is_model) {
		char p[4200], err[512];
		snprintf(p, sizeof(p), "%s/model.json", f->dir);
		json_t *meta = json_load_file(p, 0, NULL);
		assert_non_null(meta);
		json_t *arr = json_object_get(meta, "inputs");
		assert_int_equal((int)json_array_size(arr), *n);
		for (int i = 0; i < *n; i++) {
			struct ref_tensor t;
			if (ref_tensor_load(f->dir, json_array_get(arr, i), &t, err, sizeof(err))) {
				print_error("%s: %s\n", f->name, err);
				fail();
			}
			in[i].name = t.name;
			in[i].v = t.v;
		}
		json_decref(meta);
		return 0;
	}
	for (int i = 0; i < *n; i++) {
		struct engine_value_info vi;
		assert_int_equal(engine_input_info(e, i, &vi), 0);
		assert_int_equal(vi.dtype, TENSOR_F32);
		in[i].name = strdup(vi.name);
		in[i].v.dtype = vi.dtype;
		in[i].v.ndim = vi.ndim;
		memcpy(in[i].v.shape, vi.shape, sizeof(vi.shape));
		in[i].v.data = malloc(vi.bytes);
		assert_non_null(in[i].v.data);
		uint32_t s = 12345u + i;
		for (size_t j = 0; j < vi.bytes / 4; j++) {
			s = s * 1664525u + 1013904223u;
			((float *)in[i].v.data)[j] = (s >> 8) / 16777216.f * 4.f - 2.f;
		}
	}
	return 0;
}

static void set_inputs(struct engine_ctx *c, const struct copy *in, int n)
{
	char err[512];
	for (int i = 0; i < n; i++)
		if (engine_ctx_set(c, in[i].name, &in[i].v, err, sizeof(err))) {
			print_error("%s\n", err);
			fail();
		}
}

struct band_watch {
	struct engine_band *b;
	const struct copy *ref;	/* unbanded cut tensors */
	int n_ref, calls, bad;
	double max_diff, margin;
};

/* At each callback, the rows the band declares final must already hold the
 * unbanded values, in every tensor of the cut. */
static int on_band(void *ud, int band, int row0, int row1)
{
	struct band_watch *w = ud;
	if (band != w->calls++)
		w->bad++;
	for (int j = 0; j < w->n_ref; j++) {
		struct tensor_view v;
		int r0, r1;
		if (engine_band_cut_view(w->b, j, &v) || engine_band_rows(w->b, band, j, &r0, &r1)) {
			w->bad++;
			continue;
		}
		if (j == 0 && (r0 != row0 || r1 != row1))
			w->bad++;
		int64_t outer = v.shape[0] * v.shape[1], h = v.shape[2], wd = v.shape[3];
		size_t es = v.dtype == TENSOR_F32 ? 4 : 1;
		for (int64_t o = 0; o < outer; o++)
			for (int64_t r = r0; r < r1; r++) {
				size_t off = ((size_t)(o * h + r) * wd) * es;
				if (v.dtype != TENSOR_F32) {
					w->bad += !!memcmp((char *)v.data + off, (char *)w->ref[j].v.data + off,
							   wd * es);
					continue;
				}
				const float *a = (const float *)((char *)v.data + off);
				const float *b = (const float *)((char *)w->ref[j].v.data + off);
				for (int64_t x = 0; x < wd; x++) {
					double d = fabs((double)a[x] - b[x]);
					if (!(d <= w->ref[j].tol))
						w->bad++;
					w->max_diff = fmax(w->max_diff, d);
					w->margin = fmax(w->margin, ratio(d, w->ref[j].tol));
				}
			}
	}
	return 0;
}

static void check_one(const struct fixture *f)
{
	/* the error bounds read the weights; bit-exact runs drop them as the daemon does */
	struct engine_opts opts = { .threads = n_threads, .keep_weights = !exact };
	struct engine *e = NULL;
	struct engine_ctx *cu = NULL, *cb = NULL;
	struct copy in[MAX_TENSORS] = { 0 }, outs[MAX_TENSORS] = { 0 }, cut[MAX_TENSORS];
	char err[512];
	int n_in, n_out, nn, legal = 0, first_barrier = -1;
	double worst_cut = 0, worst_out = 0, margin_cut = 0, margin_out = 0, margin_rows = 0;
	int64_t macs_total = 0;

	if (engine_load(f->path, &opts, &e, err, sizeof(err))) {
		print_error("%s: %s\n", f->path, err);
		fail();
	}
	nn = engine_num_nodes(e);
	assert_int_equal(load_inputs(f, e, in, &n_in), 0);
	bounds_for(f, e, in, n_in);
	assert_int_equal(engine_ctx_new(e, &cu), 0);
	assert_int_equal(engine_ctx_new(e, &cb), 0);

	/* the whole run's outputs */
	set_inputs(cu, in, n_in);
	assert_int_equal(engine_run(cu), 0);
	n_out = engine_num_outputs(e);
	for (int i = 0; i < n_out; i++) {
		struct engine_value_info vi;
		struct tensor_view v;
		assert_int_equal(engine_output_info(e, i, &vi), 0);
		assert_int_equal(engine_ctx_get(cu, vi.name, &v), 0);
		copy_of(&outs[i], vi.name, &v);
	}

	for (int k = 1; k <= nn; k++) {
		struct engine_node_info ni;
		assert_int_equal(engine_node_info(e, k - 1, &ni), 0);
		macs_total += ni.macs;
		int rc = engine_band_check(e, 0, k, err, sizeof(err));
		if (rc) {
			assert_int_equal(rc, -ENOTSUP);
			assert_true(strlen(err) > 10);
			if (first_barrier < 0) {
				first_barrier = k;
				print_message("%s: cut %d refused: %s\n", f->name, k, err);
			}
			struct engine_band *nb = NULL;
			assert_int_equal(engine_band_new(e, cb, 0, k, 2, &nb, err, sizeof(err)), -ENOTSUP);
			assert_null(nb);
			continue;
		}
		legal++;
		/* unbanded reference of the cut */
		int n_cut = engine_cut_count(e, k);
		assert_true(n_cut >= 1 && n_cut <= MAX_TENSORS);
		set_inputs(cu, in, n_in);
		assert_int_equal(engine_run_range(cu, 0, k), 0);
		for (int j = 0; j < n_cut; j++) {
			struct engine_value_info vi;
			struct tensor_view v;
			assert_int_equal(engine_cut_tensor(e, k, j, &vi), 0);
			assert_int_equal(engine_ctx_get(cu, vi.name, &v), 0);
			copy_of(&cut[j], vi.name, &v);
		}
		for (int bi = 0; bi < f->n_bands; bi++) {
			int B = f->bands[bi];
			struct engine_band *b = NULL;
			struct engine_band_stats st;
			if (engine_band_new(e, cb, 0, k, B, &b, err, sizeof(err))) {
				print_error("%s cut %d B %d: %s\n", f->name, k, B, err);
				fail();
			}
			assert_int_equal(engine_band_count(b), B);
			for (int rep = 0; rep < (f->is_model ? 1 : 2); rep++) {
				struct band_watch w = { .b = b, .ref = cut, .n_ref = n_cut };
				set_inputs(cb, in, n_in);
				if (!f->is_model && rep == 0 && B > 2) {
					/* out of order is refused; band 0 restarts */
					assert_int_equal(engine_band_step(b, 1), -EINVAL);
					assert_int_equal(engine_band_step(b, 0), 0);
					assert_int_equal(engine_band_step(b, 2), -EINVAL);
				}
				assert_int_equal(engine_band_run(b, on_band, &w), 0);
				assert_int_equal(w.calls, B);
				margin_rows = fmax(margin_rows, w.margin);
				if (w.bad)
					print_error("%s cut %d B %d: %d rows not final at their band (max diff %g)\n",
						    f->name, k, B, w.bad, w.max_diff);
				assert_int_equal(w.bad, 0);
				assert_int_equal(engine_band_stats(b, &st), 0);
				if (st.macs != macs_total)
					print_error("%s cut %d B %d: %lld MACs banded, %lld unbanded\n", f->name,
						    k, B, (long long)st.macs, (long long)macs_total);
				assert_true(st.macs == macs_total);
				assert_int_equal(st.calls >= k, 1);
				/* the tiling of each cut tensor's rows */
				for (int j = 0; j < n_cut; j++) {
					int prev = 0, r0, r1;
					for (int band = 0; band < B; band++) {
						assert_int_equal(engine_band_rows(b, band, j, &r0, &r1), 0);
						assert_int_equal(r0, prev);
						assert_true(r1 >= r0);
						prev = r1;
					}
					assert_int_equal(prev, cut[j].v.shape[2]);
				}
				int64_t tl_macs = 0, prev_end = st.start_ns;
				for (int band = 0; band < B; band++) {
					struct engine_band_time t;
					assert_int_equal(engine_band_time(b, band, &t), 0);
					assert_true(t.start_ns >= prev_end && t.end_ns >= t.start_ns);
					prev_end = t.end_ns;
					tl_macs += t.macs;
				}
				assert_true(tl_macs == macs_total);
				/* the cut, now in the ctx as after engine_run_range */
				for (int j = 0; j < n_cut; j++) {
					struct tensor_view v;
					assert_int_equal(engine_ctx_get(cb, cut[j].name, &v), 0);
					double d = max_abs_diff(&v, &cut[j].v), r = margin_of(&v, &cut[j]);
					worst_cut = fmax(worst_cut, d);
					margin_cut = fmax(margin_cut, r);
					if (!(r <= 1))
						print_error("%s cut %d B %d: '%s' differs by %g (max |x| %g), "
							    "%.3g x its tolerance\n", f->name, k, B, cut[j].name, d,
							    max_abs(&cut[j].v), r);
					assert_true(r <= 1);
				}
				/* the rest unbanded */
				if (rep == 0) {
					assert_int_equal(engine_run_range(cb, k, nn), 0);
					for (int i = 0; i < n_out; i++) {
						struct tensor_view v;
						assert_int_equal(engine_ctx_get(cb, outs[i].name, &v), 0);
						double d = max_abs_diff(&v, &outs[i].v), r = margin_of(&v, &outs[i]);
						worst_out = fmax(worst_out, d);
						margin_out = fmax(margin_out, r);
						if (!(r <= 1))
							print_error("%s cut %d B %d: output '%s' differs by %g, "
								    "%.3g x its tolerance\n", f->name, k, B, outs[i].name, d, r);
						assert_true(r <= 1);
					}
				}
			}
			if (B == 4 && (k == nn || engine_band_check(e, 0, k + 1, NULL, 0))) {
				/* one timeline per graph: the last legal cut, 4 bands */
				struct engine_band_time t;
				print_message("%s timeline, cut %d, B %d (copies %.1f MB, private %.1f MB):\n",
					      f->name, k, B, st.copy_bytes / 1e6, st.private_bytes / 1e6);
				for (int band = 0; band < B; band++) {
					engine_band_time(b, band, &t);
					print_message("  band %d: %8.3f .. %8.3f ms, %lld MACs\n", band,
						      (t.start_ns - st.start_ns) / 1e6,
						      (t.end_ns - st.start_ns) / 1e6, (long long)t.macs);
				}
			}
			engine_band_free(b);
		}
		copy_free(cut, n_cut);
	}
	print_message("%s: %d nodes, %d legal banded cuts (first barrier at cut %d); "
		      "max |banded - unbanded| cut %g, outputs %g\n",
		      f->name, nn, legal, first_barrier, worst_cut, worst_out);
	print_message("margin %s robot: rows %.3g, cut %.3g, outputs %.3g (observed / tolerance, %s)\n",
		      f->name, margin_rows, margin_cut, margin_out, exact ? "bit-exact" : "must be <= 1");
	if (!exact)	/* one machine-readable line per check: scripts/test.sh's matrix */
		print_message("MARGIN band/%s/robot %.3g\n", f->name,
			      fmax(margin_rows, fmax(margin_cut, margin_out)));
	if (!f->is_model) {
		if (!strncmp(f->name, "barrier", 7))	/* barrier, barrier_norm */
			assert_int_equal(legal, 1);
		else
			assert_int_equal(legal, nn);
	} else {
		assert_true(legal >= 1);
	}
	copy_free(in, n_in);
	copy_free(outs, n_out);
	engine_ctx_free(cu);
	engine_ctx_free(cb);
	errbound_free(cur_eb);
	cur_eb = NULL;
	engine_free(e);
}

/* Rows [r0, r1) of every plane of v from src (same shape); rank < 2 whole. */
static void put_rows(struct tensor_view *v, const struct tensor_view *src, int64_t r0, int64_t r1)
{
	int h_ax = v->ndim - 2;
	if (v->ndim < 2) {
		memcpy(v->data, src->data, tensor_bytes(v));
		return;
	}
	int64_t outer = 1, inner = (int64_t)tensor_dtype_size(v->dtype), h = v->shape[h_ax];
	for (int d = 0; d < h_ax; d++)
		outer *= v->shape[d];
	inner *= v->shape[v->ndim - 1];
	for (int64_t o = 0; o < outer; o++)
		memcpy((char *)v->data + (o * h + r0) * inner, (const char *)src->data + (o * h + r0) * inner,
		       (size_t)((r1 - r0) * inner));
}

/* The wavefront fed row by row (see the top of the file). */
static void check_wavefront(const struct fixture *f)
{
	/* the error bounds read the weights; bit-exact runs drop them as the daemon does */
	struct engine_opts opts = { .threads = n_threads, .keep_weights = !exact };
	struct engine *e = NULL;
	struct engine_ctx *cu = NULL, *cb = NULL;
	struct copy in[MAX_TENSORS] = { 0 }, src[MAX_TENSORS], ref[MAX_TENSORS];
	char err[512];
	int n_in, nn, ranges = 0, longest = 0, early = 0;
	double worst = 0, margin = 0;

	assert_int_equal(engine_load(f->path, &opts, &e, err, sizeof(err)), 0);
	nn = engine_num_nodes(e);
	assert_int_equal(load_inputs(f, e, in, &n_in), 0);
	bounds_for(f, e, in, n_in);
	assert_int_equal(engine_ctx_new(e, &cu), 0);
	assert_int_equal(engine_ctx_new(e, &cb), 0);
	for (int k = 0; k < nn; k++) {
		int to = engine_band_reach(e, k);
		if (to == k) {
			assert_int_equal(engine_band_check(e, k, k + 1, NULL, 0) != 0 ||
					 engine_band_reach(e, k) == k, 1);
			continue;
		}
		assert_int_equal(engine_band_check(e, k, to, err, sizeof(err)), 0);
		if (to < nn)	/* reach is the largest legal end */
			for (int j = to + 1; j <= nn; j++)
				assert_int_not_equal(engine_band_check(e, k, j, NULL, 0), 0);
		ranges++;
		if (to - k > longest)
			longest = to - k;
		int64_t macs = 0;
		for (int i = k; i < to; i++) {
			struct engine_node_info ni;
			assert_int_equal(engine_node_info(e, i, &ni), 0);
			macs += ni.macs;
		}
		/* the unbanded run: cut k (the rows to feed) and cut `to` */
		int n_src = engine_cut_count(e, k), n_ref = engine_cut_count(e, to);
		assert_true(n_src >= 1 && n_src <= MAX_TENSORS && n_ref >= 1 && n_ref <= MAX_TENSORS);
		set_inputs(cu, in, n_in);
		assert_int_equal(engine_run_range(cu, 0, k), 0);
		for (int j = 0; j < n_src; j++) {
			struct engine_value_info vi;
			struct tensor_view v;
			assert_int_equal(engine_cut_tensor(e, k, j, &vi), 0);
			assert_int_equal(engine_ctx_get(cu, vi.name, &v), 0);
			copy_of(&src[j], vi.name, &v);
		}
		assert_int_equal(engine_run_range(cu, k, to), 0);
		for (int j = 0; j < n_ref; j++) {
			struct engine_value_info vi;
			struct tensor_view v;
			assert_int_equal(engine_cut_tensor(e, to, j, &vi), 0);
			assert_int_equal(engine_ctx_get(cu, vi.name, &v), 0);
			copy_of(&ref[j], vi.name, &v);
		}
		for (int bi = 0; bi < f->n_bands; bi++) {
			int B = f->bands[bi];
			struct engine_band *b = NULL;
			struct engine_band_stats st;
			if (engine_band_new(e, cb, k, to, B, &b, err, sizeof(err))) {
				print_error("%s wavefront [%d, %d) B %d: %s\n", f->name, k, to, B, err);
				fail();
			}
			set_inputs(cb, in, n_in);
			assert_int_equal(engine_run_range(cb, 0, k), 0);	/* arena state as the peer's */
			for (int j = 0; j < n_src; j++) {
				struct tensor_view v;
				assert_int_equal(engine_ctx_get(cb, src[j].name, &v), 0);
				for (int64_t x = 0; x < tensor_numel(&v) && v.dtype == TENSOR_F32; x++)
					((float *)v.data)[x] = NAN;
			}
			int done_at = 0;
			assert_int_equal(engine_band_begin(b), 0);
			assert_int_equal(engine_band_feed(b, "no such tensor", 1), -ENOENT);
			for (int step = 1; step <= B; step++) {
				for (int j = 0; j < n_src; j++) {
					struct tensor_view v;
					assert_int_equal(engine_ctx_get(cb, src[j].name, &v), 0);
					int64_t h = v.ndim >= 2 ? v.shape[v.ndim - 2] : 1;
					int64_t r0 = h * (step - 1) / B, r1 = h * step / B;
					put_rows(&v, &src[j].v, r0, r1);
					assert_int_equal(engine_band_feed(b, src[j].name, r1), 0);
					if (step > 1 && r0 > 0)	/* never fewer rows than before */
						assert_int_equal(engine_band_feed(b, src[j].name, r0 - 1), -EINVAL);
				}
				int rc = engine_band_advance(b);
				/* the model of how far the wavefront gets: exactly the
				 * multiply-adds run so far (the fraction is a double:
				 * fr * macs is within a few ulp of the integer,
				 * 1e-6 relative and +1 MAC cover that rounding with
				 * room, and nothing more) */
				if (step < B) {
					struct engine_band_stats sn;
					engine_band_stats(b, &sn);
					double fr = engine_band_wave_frac(e, k, to, (double)step / B);
					int same = macs ? fabs(fr * (double)macs - (double)sn.macs) <= 1e-6 * (double)macs + 1
							: 1;
					if (!same)
						print_error("%s wavefront [%d, %d) B %d step %d: %lld MACs run, model %.1f\n",
							    f->name, k, to, B, step, (long long)sn.macs, fr * (double)macs);
					/* each input was fed floor(step/B * H) rows, as the model assumes */
					assert_true(same);
					assert_true(fr >= 0 && fr <= 1);
				}
				/* complete at the last step, or earlier when the
				 * range never reads the rows still missing (then the
				 * NaNs there must not have reached the cut) */
				assert_true(rc == 1 || (rc == 0 && !done_at));
				if (rc == 1 && !done_at) {
					done_at = step;
					for (int j = 0; j < n_ref; j++) {
						struct tensor_view v;
						assert_int_equal(engine_ctx_get(cb, ref[j].name, &v), 0);
						assert_true(margin_of(&v, &ref[j]) <= 1);
					}
				}
			}
			assert_int_equal(done_at > 0, 1);
			if (done_at < B)
				early++;
			assert_int_equal(engine_band_stats(b, &st), 0);
			if (st.macs != macs)
				print_error("%s wavefront [%d, %d) B %d: %lld MACs, %lld unbanded\n", f->name, k,
					    to, B, (long long)st.macs, (long long)macs);
			assert_true(st.macs == macs);
			int64_t tl = 0;
			for (int band = 0; band < B; band++) {
				struct engine_band_time t;
				assert_int_equal(engine_band_time(b, band, &t), 0);
				tl += t.macs;
			}
			assert_true(tl == macs);
			for (int j = 0; j < n_ref; j++) {
				struct tensor_view v;
				assert_int_equal(engine_ctx_get(cb, ref[j].name, &v), 0);
				double d = max_abs_diff(&v, &ref[j].v), r = margin_of(&v, &ref[j]);
				worst = fmax(worst, d);
				margin = fmax(margin, r);
				if (!(r <= 1))
					print_error("%s wavefront [%d, %d) B %d: '%s' differs by %g, %.3g x its tolerance\n",
						    f->name, k, to, B, ref[j].name, d, r);
				assert_true(r <= 1);
			}
			engine_band_free(b);
		}
		copy_free(src, n_src);
		copy_free(ref, n_ref);
	}
	print_message("%s: wavefront checked from %d starts (longest range %d nodes; %d runs complete "
		      "before the last rows came); max |diff| %g\n", f->name, ranges, longest, early, worst);
	print_message("margin %s wavefront: %.3g (observed / tolerance, %s)\n", f->name, margin,
		      exact ? "bit-exact" : "must be <= 1");
	if (!exact)
		print_message("MARGIN band/%s/wavefront %.3g\n", f->name, margin);
	assert_true(ranges >= 1);
	copy_free(in, n_in);
	engine_ctx_free(cu);
	engine_ctx_free(cb);
	errbound_free(cur_eb);
	cur_eb = NULL;
	engine_free(e);
}

static void test_fixture(void **state)
{
	check_one(*state);
	check_wavefront(*state);
}

static void test_bad_args(void **state)
{
	const struct fixture *f = *state;
	struct engine_opts opts = { .threads = 1 };
	struct engine *e = NULL;
	struct engine_ctx *c = NULL;
	struct engine_band *b = NULL;
	char err[512];

	assert_int_equal(engine_load(f->path, &opts, &e, err, sizeof(err)), 0);
	assert_int_equal(engine_ctx_new(e, &c), 0);
	int nn = engine_num_nodes(e);
	assert_int_equal(engine_band_check(e, 0, 0, err, sizeof(err)), -EINVAL);
	assert_int_equal(engine_band_check(e, 0, nn + 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(engine_band_check(e, 2, 1, err, sizeof(err)), -EINVAL);
	assert_int_equal(engine_band_new(e, c, 0, 1, 0, &b, err, sizeof(err)), -EINVAL);
	assert_null(b);
	assert_int_equal(engine_band_new(e, c, 0, 1, 3, &b, err, sizeof(err)), 0);
	assert_int_equal(engine_band_step(b, 3), -EINVAL);
	assert_int_equal(engine_band_step(b, -1), -EINVAL);
	int r0, r1;
	assert_int_equal(engine_band_rows(b, 0, 99, &r0, &r1), -EINVAL);
	struct engine_band_time t;
	assert_int_equal(engine_band_time(b, 3, &t), -EINVAL);
	engine_band_free(b);
	engine_band_free(NULL);
	engine_ctx_free(c);
	engine_free(e);
}

int main(int argc, char **argv)
{
	const char *th = getenv("SPLITD_TEST_THREADS");
	struct fixture *fx;
	struct CMUnitTest *tests;
	int n = 0;

	if (th && atoi(th) > 0)
		n_threads = atoi(th);
	exact = getenv("SPLITD_BAND_EXACT") && atoi(getenv("SPLITD_BAND_EXACT"));
	if (argc < 3 || (strcmp(argv[1], "graphs") && strcmp(argv[1], "models")) ||
	    (!strcmp(argv[1], "models") && argc < 4)) {
		fprintf(stderr, "usage: %s graphs DIR | models DIR NAME...\n", argv[0]);
		return 2;
	}
	fx = calloc(64, sizeof(*fx));
	tests = calloc(66, sizeof(*tests));
	if (!fx || !tests)
		return 1;
	if (!strcmp(argv[1], "graphs")) {
		char list[4200], line[256];
		snprintf(list, sizeof(list), "%s/graphs.txt", argv[2]);
		FILE *fp = fopen(list, "r");
		if (!fp) {
			fprintf(stderr, "%s: cannot open\n", list);
			return 1;
		}
		while (n < 63 && fgets(line, sizeof(line), fp)) {
			line[strcspn(line, "\r\n")] = 0;
			if (!line[0])
				continue;
			struct fixture *f = &fx[n];
			snprintf(f->name, sizeof(f->name), "%s", line);
			snprintf(f->path, sizeof(f->path), "%s/%s.onnx", argv[2], line);
			f->bands = graph_bands;
			f->n_bands = sizeof(graph_bands) / sizeof(graph_bands[0]);
			tests[n] = (struct CMUnitTest){ f->name, test_fixture, NULL, NULL, f };
			n++;
		}
		fclose(fp);
		if (n) {
			tests[n] = (struct CMUnitTest){ "bad_args", test_bad_args, NULL, NULL, &fx[0] };
			n++;
		}
	} else {
		for (int i = 3; i < argc && n < 63; i++) {
			struct fixture *f = &fx[n];
			snprintf(f->name, sizeof(f->name), "%s", argv[i]);
			snprintf(f->dir, sizeof(f->dir), "%s/%s", argv[2], argv[i]);
			snprintf(f->path, sizeof(f->path), "%s/%s/model.onnx", argv[2], argv[i]);
			f->is_model = 1;
			f->bands = model_bands;
			f->n_bands = sizeof(model_bands) / sizeof(model_bands[0]);
			tests[n] = (struct CMUnitTest){ f->name, test_fixture, NULL, NULL, f };
			n++;
		}
	}
	int rc = _cmocka_run_group_tests(argv[1], tests, n, NULL, NULL);
	free(tests);
	free(fx);
	return rc;
}
