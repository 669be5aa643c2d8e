/* Planner cost model, policies, hysteresis, banded bounds; link estimator.
 * Expected figures are computed by hand in the comments from the model in
 * daemon/plan.h, not taken from earlier runs. */
#include <float.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include <jansson.h>

#include "commands.h"
#include "engine.h"
#include "linkest.h"
#include "plan.h"
#include "plan_same.h"

/* Double results compared with a closed form or with what was put in: each
 * side comes from at most N_ROUND correctly rounded double operations on
 * values no larger than the result (sums of a few phase times, a ratio, an
 * average of equal samples, a JSON round trip at 17 digits), so they agree
 * within N_ROUND * DBL_EPSILON of it (Higham, Accuracy and Stability of
 * Numerical Algorithms, lemma 3.1, with u = DBL_EPSILON / 2 and a factor 2
 * for the two sides). */
#define N_ROUND 32
/* What an EWMA (plan.c: alpha 0.2) still owes of a step after n equal
 * observations: (1 - alpha)^n of it (each observation may add its own
 * D_TOL of rounding) */
#define EWMA_LEFT(n, step) (pow(1 - 0.2, (n)) * fabs((double)(step)))
/* cmocka's assert_float_equal compares in float: doubles here */
#define assert_near(a, b, tol) assert_true(fabs((double)(a) - (double)(b)) <= (tol))
#define D_TOL(x) (N_ROUND * DBL_EPSILON * fmax(fabs((double)(x)), DBL_MIN))

/* Model A: 4 nodes; node 2 is a barrier (not band_ok).
 * local ms 10 20 30 40, peer 1 2 3 4; cut bytes 600k 400k 200k 100k 4000. */
static const double a_local[4] = { 10, 20, 30, 40 };
static const double a_peer[4] = { 1, 2, 3, 4 };
static const size_t a_cut[5] = { 600000, 400000, 200000, 100000, 4000 };
static const int a_band[4] = { 1, 1, 0, 1 };

static struct plan_config a_config(void)
{
	struct plan_config c;

	plan_config_defaults(&c);
	c.band_overhead_ms = 0;
	c.power_default_mw[PLAN_PHASE_COMPUTE] = 6000;
	c.power_default_mw[PLAN_PHASE_TX] = 4000;
	c.power_default_mw[PLAN_PHASE_WAIT] = 3000;
	return c;
}

/* 80 Mbit/s = 10,000 bytes per ms; rtt 2; reply 4000 B = 0.4 ms. */
static struct plan_inputs a_inputs(void)
{
	struct plan_inputs in = {
		.bandwidth_bps = 80e6, .rtt_ms = 2, .input_bytes = 30000,
		.output_bytes = 0, .decode_ms = 5, .peer_decode_ms = 1,
	};
	return in;
}

static struct plan *a_plan(const struct plan_config *c)
{
	struct plan_model m = { 4, a_cut, a_band, a_local, a_peer, 0, NULL };
	struct plan *p = NULL;

	assert_int_equal(plan_new(&m, c, &p), 0);
	return p;
}

static const struct plan_candidate *find(const struct plan_candidate *v, int n, int cut,
					 int enc, int bands)
{
	for (int i = 0; i < n; i++)
		if (v[i].cut == cut && v[i].enc == enc && v[i].bands == bands)
			return &v[i];
	return NULL;
}

#define F32 PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE)
#define F16 PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_NONE)
#define I8 PLAN_ENC(PLAN_DTYPE_I8, PLAN_CODEC_NONE)
#define F16Z PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_ZSTD)

static void test_plain_costs(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan *p = a_plan(&c);
	struct plan_candidate o;

	/* cut 2 f32: local 5 + 10 + 20 = 35; X = 200000 / 10000 = 20;
	 * remote 3 + 4 = 7; net 2 + 0.4; total 64.4;
	 * E = 6000*35 + 4000*20 + 3000*9.4 = 318200 uJ */
	assert_int_equal(plan_predict(p, &in, 2, F32, 1, &o), 0);
	assert_int_equal(o.wire_bytes, 200000);
	assert_near(o.local_ms, 35, D_TOL(35));
	assert_near(o.transfer_ms, 20, D_TOL(20));
	assert_near(o.remote_ms, 7, D_TOL(7));
	assert_near(o.net_ms, 2.4, D_TOL(2.4));
	assert_near(o.total_ms, 64.4, D_TOL(64.4));
	assert_near(o.energy_uj, 318200, D_TOL(318200));
	/* f16 halves the bytes: X = 10, total 54.4, E = 278200 */
	assert_int_equal(plan_predict(p, &in, 2, F16, 1, &o), 0);
	assert_int_equal(o.wire_bytes, 100000);
	assert_near(o.total_ms, 54.4, D_TOL(54.4));
	assert_near(o.energy_uj, 278200, D_TOL(278200));
	/* i8: a quarter */
	assert_int_equal(plan_predict(p, &in, 1, I8, 1, &o), 0);
	assert_int_equal(o.wire_bytes, 100000);
	/* the JPEG as received: no robot work; X = 3, remote 1 + 10 = 11;
	 * total 16.4; E = 4000*3 + 3000*13.4 = 52200 */
	assert_int_equal(plan_predict(p, &in, 0, PLAN_ENC_INPUT, 1, &o), 0);
	assert_near(o.local_ms, 0, D_TOL(1.0));
	assert_near(o.total_ms, 16.4, D_TOL(16.4));
	assert_near(o.energy_uj, 52200, D_TOL(52200));
	/* a raw frame made into that image here first (4 ms of PNG encoding):
	 * local 4, total 20.4, E = 6000*4 + 4000*3 + 3000*13.4 = 76200 */
	in.input_encode_ms = 4;
	assert_int_equal(plan_predict(p, &in, 0, PLAN_ENC_INPUT, 1, &o), 0);
	assert_near(o.local_ms, 4, D_TOL(4));
	assert_near(o.total_ms, 20.4, D_TOL(20.4));
	assert_near(o.energy_uj, 76200, D_TOL(76200));
	in.input_encode_ms = 0;
	/* all-local: 5 + 100 = 105; E = 630000 */
	assert_int_equal(plan_predict(p, &in, 4, PLAN_ENC_LOCAL, 1, &o), 0);
	assert_near(o.total_ms, 105, D_TOL(105));
	assert_near(o.energy_uj, 630000, D_TOL(630000));
	/* illegal ones */
	assert_int_equal(plan_predict(p, &in, 3, F32, 2, &o), -EINVAL);	/* barrier before */
	assert_int_equal(plan_predict(p, &in, 2, F16Z, 1, &o), -EINVAL); /* masked */
	assert_int_equal(plan_predict(p, &in, 1, PLAN_ENC_INPUT, 1, &o), -EINVAL);
	in.input_bytes = 0;
	assert_int_equal(plan_predict(p, &in, 0, PLAN_ENC_INPUT, 1, &o), -EINVAL);
	plan_free(p);
}

/* The way back (issue 18): a big raw output makes every offload pay its
 * bytes back; a detector's few hundred bytes do not. The caller's
 * prediction stands until an answer came back, then the learnt size. */
static void test_return_bytes(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan *p = a_plan(&c);
	struct plan_candidate o, best;
	struct plan_run run;

	/* a raw output of 2,000,000 B at 10,000 B/ms: net = 2 + 200 */
	in.output_bytes = 2000000;
	assert_int_equal(plan_predict(p, &in, 0, PLAN_ENC_INPUT, 1, &o), 0);
	assert_int_equal(o.return_bytes, 2000000);
	assert_near(o.net_ms, 202, D_TOL(202));
	assert_near(o.total_ms, 3 + 11 + 202, D_TOL(216));
	/* all-local (105 ms) beats every offload now */
	assert_int_equal(plan_choose(p, &in, PLAN_POLICY_LATENCY, 100, &best), 0);
	assert_int_equal(best.enc, PLAN_ENC_LOCAL);
	assert_int_equal(plan_predict(p, &in, 4, PLAN_ENC_LOCAL, 1, &o), 0);
	assert_int_equal(o.return_bytes, 0);
	/* detections: 1,000 B back, net 2.1: the image offload (16.1) wins */
	in.output_bytes = 1000;
	assert_int_equal(plan_choose(p, &in, PLAN_POLICY_LATENCY, 100, &best), 0);
	assert_int_equal(best.enc, PLAN_ENC_INPUT);
	assert_near(best.net_ms, 2.1, D_TOL(2.1));
	/* what came back replaces the caller's prediction */
	plan_run_init(&run, 0, PLAN_ENC_INPUT, 1);
	run.offloaded = 1;
	run.reply_bytes = 5000;
	run.image_bytes = 30000;
	assert_int_equal(plan_learn(p, &in, &run), 0);
	in.output_bytes = 2000000;
	plan_request_facts(p, &in);
	assert_int_equal(in.output_bytes, 5000);
	assert_int_equal(plan_predict(p, &in, 0, PLAN_ENC_INPUT, 1, &o), 0);
	assert_int_equal(o.return_bytes, 5000);
	assert_near(o.net_ms, 2.5, D_TOL(2.5));
	plan_free(p);
}

static void test_compression_ratio(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan *p;
	struct plan_candidate o;

	c.enc_mask = (1u << F32) | (1u << F16Z);
	c.codec_ns_per_byte[PLAN_CODEC_ZSTD] = 10;	/* 10 ns per byte */
	p = a_plan(&c);
	/* unlearnt: assumed 1, marked; codec cost 100000 B * 10 ns = 1 ms */
	assert_int_equal(plan_predict(p, &in, 2, F16Z, 1, &o), 0);
	assert_int_equal(o.ratio_assumed, 1);
	assert_int_equal(o.wire_bytes, 100000);
	assert_near(o.local_ms, 36, D_TOL(36));
	/* learnt 0.4 then 0.6: EWMA 0.2 -> 0.44 */
	assert_int_equal(plan_observe_ratio(p, 2, F16Z, 100000, 40000), 0);
	assert_int_equal(plan_observe_ratio(p, 2, F16Z, 100000, 60000), 0);
	assert_int_equal(plan_predict(p, &in, 2, F16Z, 1, &o), 0);
	assert_int_equal(o.ratio_assumed, 0);
	assert_int_equal(o.wire_bytes, 44000);
	assert_near(o.transfer_ms, 4.4, D_TOL(4.4));
	/* other cuts stay unlearnt */
	assert_int_equal(plan_predict(p, &in, 1, F16Z, 1, &o), 0);
	assert_int_equal(o.ratio_assumed, 1);
	plan_free(p);
}

static void test_banded_costs(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan *p = a_plan(&c);
	struct plan_candidate o;

	assert_false(plan_band_legal(p, 0));
	assert_true(plan_band_legal(p, 1));
	assert_true(plan_band_legal(p, 2));
	assert_false(plan_band_legal(p, 3));
	assert_false(plan_band_legal(p, 4));
	/* cut 2, B 4: C 30, X 20, peer barrier at node 2 so R_band 0:
	 * T = 5 + 7.5 + 5 + 0 + 3 * 7.5 + 7 + 2.4 = 49.4; saving 15 =
	 * min(30, 20) * 3/4; E = 3000*49.4 + 3000*35 + 1000*20 = 273200 */
	assert_int_equal(plan_predict(p, &in, 2, F32, 4, &o), 0);
	assert_near(o.total_ms, 49.4, D_TOL(49.4));
	assert_near(o.overlap_saving_ms, 15, D_TOL(15));
	assert_near(o.overlap_bound_ms, 15, D_TOL(15));
	assert_near(o.energy_uj, 273200, D_TOL(273200));
	/* cut 1, B 2: C 10, X 40, the peer streams node 1 (2 ms) before its
	 * barrier: c 5, x 20, r 1: T = 5 + 26 + 20 + 7 + 2.4 = 60.4, plain
	 * 66.4: saving 6 = (10 + 40 + 2 - 40) / 2 */
	assert_int_equal(plan_predict(p, &in, 1, F32, 2, &o), 0);
	assert_near(o.total_ms, 60.4, D_TOL(60.4));
	assert_near(o.overlap_saving_ms, 6, D_TOL(6));
	/* a peer that does not stream: saving min(10, 40) / 2 = 5 */
	c.peer_streams = 0;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_predict(p, &in, 1, F32, 2, &o), 0);
	assert_near(o.total_ms, 61.4, D_TOL(61.4));
	assert_near(o.overlap_saving_ms, 5, D_TOL(5));
	/* a per-band overhead of 0.5 ms costs c grows to 5.5: T 61.9 */
	c.band_overhead_ms = 0.5;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_predict(p, &in, 1, F32, 2, &o), 0);
	assert_near(o.total_ms, 61.9, D_TOL(61.9));
	plan_free(p);
}

static uint64_t rng = 88172645463325252ull;

static double urand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / 9007199254740992.0;
}

/* Random models and links: the banded prediction never claims more than
 * the overlap can give, and never beats the slowest stage. */
static void test_banded_bounds(void **state)
{
	for (int trial = 0; trial < 300; trial++) {
		int n = 2 + (int)(urand() * 30), ncand, best;
		double local[32], peer[32];
		size_t cut[33];
		int band[32];
		struct plan_config c = a_config();
		struct plan_inputs in = a_inputs();
		static double wave[33 * (PLAN_WAVE_STEPS + 1)];
		struct plan_model m = { n, cut, band, local, peer, 0, NULL };
		struct plan_candidate *v;
		struct plan *p;
		int streams = trial & 1;

		/* a random wavefront: non-decreasing, at most the rows' share */
		if (trial & 2) {
			for (int k = 0; k <= n; k++) {
				double f = 0;
				for (int i = 0; i <= PLAN_WAVE_STEPS; i++) {
					double q = (double)i / PLAN_WAVE_STEPS;
					f = fmin(q, f + urand() * 2.0 / PLAN_WAVE_STEPS);
					wave[k * (PLAN_WAVE_STEPS + 1) + i] = i == PLAN_WAVE_STEPS ? 1 : f;
				}
			}
			m.peer_wave = wave;
		}

		for (int i = 0; i < n; i++) {
			local[i] = urand() * 20;
			peer[i] = urand() * 2;
			band[i] = urand() < 0.85;
		}
		for (int i = 0; i <= n; i++)
			cut[i] = (size_t)(urand() * 2e6) + 1;
		c.peer_streams = streams;
		c.max_bands = 16;
		c.band_overhead_ms = (trial % 3) ? 0 : urand();
		in.bandwidth_bps = 5e6 + urand() * 500e6;
		in.rtt_ms = urand() * 10;
		assert_int_equal(plan_new(&m, &c, &p), 0);
		assert_int_equal(plan_enumerate(p, &in, &v, &ncand, &best), 0);
		for (int i = 0; i < ncand; i++) {
			const struct plan_candidate *b = &v[i], *pl;
			double C, X, R = b->remote_ms;

			if (b->bands == 1)
				continue;
			pl = find(v, ncand, b->cut, b->enc, 1);
			assert_non_null(pl);
			C = pl->local_ms - in.decode_ms;
			X = pl->transfer_ms;
			assert_true(pl->total_ms - b->total_ms <= b->overlap_bound_ms + D_TOL(pl->total_ms));
			if (!streams)	/* the bound, exactly */
				assert_true(pl->total_ms - b->total_ms <=
					    fmin(C, X) * (1 - 1.0 / b->bands) + D_TOL(pl->total_ms));
			else	/* plus at most all of the peer's work hidden */
				assert_true(pl->total_ms - b->total_ms <=
					    (fmin(C, X) + R) * (1 - 1.0 / b->bands) + D_TOL(pl->total_ms));
			/* never faster than its slowest stage */
			assert_true(b->total_ms + D_TOL(b->total_ms) >= in.decode_ms + fmax(C, X) + in.rtt_ms);
			if (c.band_overhead_ms == 0) {
				assert_true(b->total_ms <= pl->total_ms + D_TOL(pl->total_ms));
				assert_true(b->energy_uj <= pl->energy_uj + D_TOL(pl->energy_uj));
			}
		}
		free(v);
		plan_free(p);
	}
}

/* A peer whose wavefront can do nothing before the last rows arrive (every
 * window reaches the bottom) is predicted as a peer that waits. */
static void test_banded_wave_none(void **state)
{
	static double none[5 * (PLAN_WAVE_STEPS + 1)];
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan_model m = { 4, a_cut, a_band, a_local, a_peer, 0, none };
	struct plan_candidate *vw, *vs;
	struct plan *pw, *ps;
	int nw, ns, bw, bs, checked = 0;

	(void)state;
	for (int k = 0; k <= 4; k++)
		for (int i = 0; i <= PLAN_WAVE_STEPS; i++)
			none[k * (PLAN_WAVE_STEPS + 1) + i] = i == PLAN_WAVE_STEPS;
	c.max_bands = 8;
	c.peer_streams = 1;
	assert_int_equal(plan_new(&m, &c, &ps), 0);
	c.peer_streams = 0;
	assert_int_equal(plan_new(&m, &c, &pw), 0);
	assert_int_equal(plan_enumerate(ps, &in, &vs, &ns, &bs), 0);
	assert_int_equal(plan_enumerate(pw, &in, &vw, &nw, &bw), 0);
	for (int i = 0; i < ns; i++) {
		if (vs[i].bands < 2)
			continue;
		const struct plan_candidate *w = find(vw, nw, vs[i].cut, vs[i].enc, vs[i].bands);
		assert_non_null(w);
		assert_true(fabs(w->total_ms - vs[i].total_ms) <= D_TOL(vs[i].total_ms));
		checked++;
	}
	assert_true(checked > 0);
	free(vs);
	free(vw);
	plan_free(ps);
	plan_free(pw);
}

/* Banded predictions are scaled by the overlap the robot achieved: a banded
 * run that took as long as the plain cut teaches efficiency 0 (the banded
 * candidate then predicts the plain time and is not chosen); one that took
 * what the model said keeps 1; half-way gives about one half. */
static void test_band_efficiency(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan_candidate plain, band;
	int ns;

	(void)state;
	c.enc_mask = 1u << F32;
	c.ewma_alpha = 1.0;	/* the last observation, to check each step */
	in.input_bytes = 0;
	struct plan *p = a_plan(&c);
	assert_int_equal(plan_predict(p, &in, 2, F32, 1, &plain), 0);
	assert_int_equal(plan_predict(p, &in, 2, F32, 8, &band), 0);
	double gap = plain.total_ms - band.total_ms;
	assert_true(gap > 5);
	assert_near(plan_band_efficiency(p, 8, &ns), 1.0, 0);
	assert_int_equal(ns, 0);
	/* measured = plain: no overlap at all */
	assert_int_equal(plan_observe_banded(p, &in, 2, F32, 8, plain.total_ms), 0);
	assert_near(plan_band_efficiency(p, 8, &ns), 0.0, D_TOL(1.0));
	assert_int_equal(ns, 1);
	struct plan_candidate b2;
	assert_int_equal(plan_predict(p, &in, 2, F32, 8, &b2), 0);
	assert_near(b2.total_ms, plain.total_ms, D_TOL(plain.total_ms));
	/* half the modelled saving */
	assert_int_equal(plan_observe_banded(p, &in, 2, F32, 8, plain.total_ms - gap / 2), 0);
	assert_near(plan_band_efficiency(p, 8, NULL), 0.5, D_TOL(1.0));
	assert_int_equal(plan_predict(p, &in, 2, F32, 8, &b2), 0);
	assert_near(b2.total_ms, plain.total_ms - gap / 2, D_TOL(plain.total_ms - gap / 2));
	/* slower than plain clamps at 0; a plain cut is not a banded observation */
	assert_int_equal(plan_observe_banded(p, &in, 2, F32, 8, plain.total_ms * 3), 0);
	assert_near(plan_band_efficiency(p, 8, NULL), 0.0, D_TOL(1.0));
	assert_int_equal(plan_observe_banded(p, &in, 2, F32, 1, 1.0), -EINVAL);
	/* what B = 8 taught says nothing of B = 2 */
	assert_near(plan_band_efficiency(p, 2, &ns), 1.0, 0);
	assert_int_equal(ns, 0);
	/* a cut that has run uses its own: cut 2 x8 achieved its full saving,
	 * cut 1 x8 saved nothing; B = 8 itself learnt the mean of 0 and 1 */
	c.ewma_alpha = 0.5;
	plan_free(p);
	p = a_plan(&c);
	struct plan_candidate p1, b1;
	assert_int_equal(plan_predict(p, &in, 1, F32, 1, &p1), 0);
	assert_int_equal(plan_predict(p, &in, 1, F32, 8, &b1), 0);
	assert_int_equal(plan_observe_banded(p, &in, 1, F32, 8, p1.total_ms), 0);	/* cut 1: none */
	assert_int_equal(plan_observe_banded(p, &in, 2, F32, 8, band.total_ms), 0);	/* cut 2: all */
	assert_int_equal(plan_predict(p, &in, 2, F32, 8, &b2), 0);
	assert_near(b2.total_ms, band.total_ms, D_TOL(band.total_ms));
	assert_int_equal(plan_predict(p, &in, 1, F32, 8, &b2), 0);
	assert_near(b2.total_ms, p1.total_ms, D_TOL(p1.total_ms));
	assert_near(plan_band_efficiency(p, 8, NULL), 0.5, D_TOL(1.0));
	plan_free(p);
}

static void test_policies(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan_candidate *v, o;
	struct plan *p;
	int n, best;
	char why[256];

	/* f32 only and no image: hand-computed latencies
	 *   cut0 77.4; cut1 66.4 (B2 60.4, B4 57.4, B8 55.9);
	 *   cut2 64.4 (B2 54.4, B4 49.4, B8 46.9); cut3 81.4; local 105 */
	c.enc_mask = 1u << F32;
	in.input_bytes = 0;
	c.power_default_mw[PLAN_PHASE_COMPUTE] = 10000;
	c.power_default_mw[PLAN_PHASE_TX] = 2000;
	c.power_default_mw[PLAN_PHASE_WAIT] = 1000;
	p = a_plan(&c);
	assert_int_equal(plan_enumerate(p, &in, &v, &n, &best), 0);
	assert_int_equal(n, 1 + 4 + 4 + 1 + 1);
	assert_near(find(v, n, 1, F32, 8)->total_ms, 55.9, D_TOL(55.9));
	assert_near(find(v, n, 2, F32, 8)->total_ms, 46.9, D_TOL(46.9));
	assert_near(find(v, n, 3, F32, 1)->total_ms, 81.4, D_TOL(81.4));
	assert_int_equal(v[best].cut, 2);
	assert_int_equal(v[best].bands, 8);
	free(v);

	/* energy with P = 10/2/1 W: cut0 f32 E = 1000*77.4 + 9000*5 + 1000*60
	 * = 182400 uJ, the least (cut1 B8 230900, cut2 B8 381900) */
	c.policy = PLAN_POLICY_ENERGY;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_enumerate(p, &in, &v, &n, &best), 0);
	assert_int_equal(v[best].cut, 0);
	assert_near(v[best].energy_uj, 182400, D_TOL(182400));
	assert_near(find(v, n, 1, F32, 8)->energy_uj, 230900, D_TOL(230900));
	free(v);

	/* energy under 60 ms: cut1 B8 (55.9 ms, 230900) beats cut1 B4 (232400) */
	c.policy = PLAN_POLICY_ENERGY_SLO;
	c.slo_ms = 60;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_enumerate(p, &in, &v, &n, &best), 0);
	assert_int_equal(v[best].cut, 1);
	assert_int_equal(v[best].bands, 8);
	assert_true(v[best].meets_slo);
	assert_false(find(v, n, 1, F32, 2)->meets_slo);
	free(v);

	/* 40 ms is unreachable: the fastest, cut2 B8 */
	c.slo_ms = 40;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_enumerate(p, &in, &v, &n, &best), 0);
	assert_int_equal(v[best].cut, 2);
	assert_int_equal(v[best].bands, 8);
	free(v);

	/* plan_update follows the same choice and says why */
	assert_int_equal(plan_current(p, &o), -ENOENT);
	assert_int_equal(plan_update(p, &in, 0, why, sizeof(why)), 1);
	assert_int_equal(plan_current(p, &o), 0);
	assert_int_equal(o.cut, 2);
	assert_non_null(strstr(why, "cut 2 f32 x8 bands"));
	/* SLO relaxed to 60: the plan breaks no SLO now but a cheaper one
	 * exists (230900 vs 381900 uJ): forced re-plan switches */
	c.slo_ms = 60;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_update(p, &in, 0, why, sizeof(why)), 1);
	assert_int_equal(plan_current(p, &o), 0);
	assert_int_equal(o.cut, 1);
	assert_non_null(strstr(why, "-> cut 1 f32 x8 bands"));
	/* the SLO tightens below the current plan's 55.9 ms: it must move */
	c.slo_ms = 50;
	assert_int_equal(plan_set_config(p, &c), 0);
	assert_int_equal(plan_update(p, &in, 0, why, sizeof(why)), 1);
	assert_int_equal(plan_current(p, &o), 0);
	assert_true(o.total_ms <= 50);
	plan_free(p);
}

/* Two candidates close together: all-offload (JPEG) vs a mid cut, on a
 * link whose goodput samples jitter by +-25%. */
struct flap_run {
	int changes;
	int final_cut;
};

static struct flap_run run_link(double threshold, double hysteresis, double bw_bps,
				double bw2_bps, int step_at, int n_req, int *switch_req)
{
	/* local 2 ms/node before cut 4 (30 KB), 20 after; peer 0.2; input 60 KB */
	double local[8], peer[8];
	size_t cut[9] = { 600000, 500000, 400000, 200000, 30000, 200000, 100000, 50000, 4000 };
	int band[8] = { 0 };
	struct plan_model m = { 8, cut, band, local, peer, 0, NULL };
	struct plan_config c;
	struct linkest_config lc;
	struct linkest *le;
	struct plan *p;
	struct plan_inputs in = { .rtt_ms = 2, .input_bytes = 60000, .decode_ms = 1 };
	struct flap_run r = { 0, -1 };
	uint64_t now = 0;

	for (int i = 0; i < 8; i++) {
		local[i] = i < 4 ? 2 : 20;
		peer[i] = 0.2;
	}
	plan_config_defaults(&c);
	c.enc_mask = 1u << F32;
	c.threshold = threshold;
	c.hysteresis = hysteresis;
	linkest_config_defaults(&lc);
	lc.initial_bandwidth_bps = bw_bps;
	lc.initial_rtt_ms = 2;
	assert_int_equal(plan_new(&m, &c, &p), 0);
	assert_int_equal(linkest_new(&lc, &le), 0);
	if (switch_req)
		*switch_req = -1;
	for (int i = 0; i < n_req; i++) {
		double bw = i >= step_at ? bw2_bps : bw_bps;
		double noisy = bw * (0.75 + 0.5 * urand());
		size_t bytes = 60000;
		uint64_t t = (uint64_t)((double)bytes * 8 / noisy * 1e9);
		struct linkest_sample s = {
			.now_ns = now, .bytes_up = bytes, .upload_ns = t / 2,
			.ttfb_ns = t + 2000000 + 1000000, .server_ns = 1000000,
		};
		struct linkest_estimate e;
		char why[256];
		int rc;

		now += 50000000;
		assert_int_equal(linkest_observe(le, &s), 0);
		linkest_get(le, &e);
		in.bandwidth_bps = e.bandwidth_bps;
		in.rtt_ms = e.rtt_ms;
		rc = plan_update(p, &in, 0, why, sizeof(why));
		assert_true(rc >= 0);
		if (rc == 1 && i > 0) {
			r.changes++;
			if (switch_req && *switch_req < 0 && i >= step_at)
				*switch_req = i - step_at;
		}
	}
	{
		struct plan_candidate o;

		assert_int_equal(plan_current(p, &o), 0);
		r.final_cut = o.cut;
	}
	linkest_free(le);
	plan_free(p);
	return r;
}

static void test_hysteresis(void **state)
{
	/* JPEG: 480000/bw s to send + 1.6 ms peer; cut 4: 9 ms local +
	 * 240000/bw + 0.8 ms peer. They tie where 240000/bw = 8.2 ms:
	 * bw = 29.27 Mbit/s. Sit there. */
	struct flap_run calm = run_link(0.10, 0.05, 29.27e6, 29.27e6, 1 << 30, 300, NULL);
	struct flap_run raw = run_link(0.0, 0.0, 29.27e6, 29.27e6, 1 << 30, 300, NULL);
	int after = -1;
	struct flap_run step;

	print_message("plan changes over 300 noisy requests: %d with hysteresis, %d without\n",
		      calm.changes, raw.changes);
	assert_true(calm.changes <= 1);
	assert_true(raw.changes > 3);	/* the same noise without hysteresis flaps */
	/* a real step 200 -> 10 Mbit/s: JPEG (k=0) to cut 4, within a few
	 * requests (EWMA 0.25), and it stays */
	step = run_link(0.10, 0.05, 200e6, 10e6, 50, 150, &after);
	print_message("step 200 -> 10 Mbit/s: switched after %d requests, %d changes\n",
		      after, step.changes);
	assert_int_equal(step.final_cut, 4);
	assert_true(after >= 0 && after <= 8);
	assert_true(step.changes <= 2);
}

static void test_profile_and_power_learning(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan *p = a_plan(&c);
	struct plan_candidate o;
	int learnt;
	char why[256];

	/* segment [0, 2) measured at 60 ms instead of 30: EWMA 0.2 scales the
	 * nodes by 1 + 0.2 * (2 - 1) = 1.2: 12 + 24 = 36 */
	assert_int_equal(plan_observe_local(p, 0, 2, 60), 0);
	assert_int_equal(plan_predict(p, &in, 2, F32, 1, &o), 0);
	assert_near(o.local_ms, 5 + 36, D_TOL(5 + 36));
	for (int i = 0; i < 60; i++)
		assert_int_equal(plan_observe_local(p, 0, 2, 60), 0);
	assert_int_equal(plan_predict(p, &in, 2, F32, 1, &o), 0);
	assert_near(o.local_ms, 65, EWMA_LEFT(60, 65 - 41) + 60 * D_TOL(65));
	/* peer [2, 4) at 14 ms instead of 7, converged */
	for (int i = 0; i < 60; i++)
		assert_int_equal(plan_observe_remote(p, 2, 4, 14), 0);
	assert_int_equal(plan_predict(p, &in, 2, F32, 1, &o), 0);
	assert_near(o.remote_ms, 14, EWMA_LEFT(60, 14 - 7) + 60 * D_TOL(14));
	assert_int_equal(plan_observe_local(p, 2, 2, 1), -EINVAL);

	/* power: default until power_min_samples (5) samples */
	assert_near(plan_power_mw(p, PLAN_PHASE_TX, &learnt), 4000, 0);
	assert_false(learnt);
	for (int i = 0; i < 4; i++)
		plan_observe_power(p, PLAN_PHASE_TX, 2500);
	assert_near(plan_power_mw(p, PLAN_PHASE_TX, &learnt), 4000, 0);
	assert_false(learnt);
	plan_observe_power(p, PLAN_PHASE_TX, 2500);
	assert_near(plan_power_mw(p, PLAN_PHASE_TX, &learnt), 2500, D_TOL(2500));
	assert_true(learnt);

	/* a moved profile re-plans by itself; a steady one does not */
	assert_int_equal(plan_update(p, &in, 0, why, sizeof(why)), 1);
	assert_int_equal(plan_update(p, &in, 0, why, sizeof(why)), 0);
	plan_free(p);
}

static void test_bad_inputs(void **state)
{
	struct plan_config c = a_config();
	struct plan_model m = { 4, a_cut, a_band, a_local, a_peer, 0, NULL };
	double neg[4] = { 1, -1, 1, 1 };
	struct plan *p = NULL;
	struct plan_inputs in = a_inputs();
	int e;

	m.n_nodes = 0;
	assert_int_equal(plan_new(&m, &c, &p), -EINVAL);
	m.n_nodes = 4;
	m.local_node_ms = neg;
	assert_int_equal(plan_new(&m, &c, &p), -EINVAL);
	m.local_node_ms = a_local;
	c.policy = PLAN_POLICY_ENERGY_SLO;
	c.slo_ms = 0;
	assert_int_equal(plan_new(&m, &c, &p), -EINVAL);
	c = a_config();
	assert_int_equal(plan_new(&m, &c, &p), 0);
	in.bandwidth_bps = 0;
	assert_int_equal(plan_update(p, &in, 0, NULL, 0), -EINVAL);
	plan_free(p);
	plan_free(NULL);

	assert_int_equal(plan_enc_parse("f16+zstd", &e), 0);
	assert_int_equal(e, F16Z);
	assert_string_equal(plan_enc_name(e), "f16+zstd");
	assert_int_equal(plan_enc_parse("f64", &e), -EINVAL);
	for (int i = 0; i < PLAN_ENC_COUNT; i++) {
		assert_int_equal(plan_enc_parse(plan_enc_name(i), &e), 0);
		assert_int_equal(e, i);
	}
}

/* ---- link estimator ----
 *
 * The percentages below are not rounding tolerances: they are what the
 * estimator must achieve from the samples each test feeds it (a
 * specification of its accuracy), each chosen from how those samples are
 * made, and the arithmetic's own error (double, ~1e-16 relative) is far
 * below all of them:
 *  - converges: goodput jittered uniformly by +-10% per request, EWMA over
 *    ~40 of them: the average's error shrinks to a few percent; 8% is the
 *    jitter's bound less what averaging must remove; after the step to an
 *    unjittered 20 Mbit/s the EWMA must be within 5% in 15 requests (its
 *    weight on the old 137 Mbit/s after 15 updates, (1 - alpha)^15, is that
 *    small only if the estimator adapts as designed);
 *  - restarts_after_idle: exact samples; 1% / 2%: the integer nanosecond
 *    times of the samples (a 200 kB transfer at 400 Mbit/s is 4 ms: 1 ns
 *    is 2.5e-7) and the RTT subtraction leave the estimate within 1e-4;
 *    the rest is the estimator's documented rtt handling;
 *  - kernel_rtt: exact samples; 2% of the wire time and 5% of the rate
 *    bound the error that the 0.18 ms kernel RTT against the link's 0.2 ms
 *    propagation leaves (0.02 ms of 2.5 ms, 0.8%), with room for the
 *    estimator's smoothing. */

static void test_linkest_converges(void **state)
{
	struct linkest_config lc;
	struct linkest *le;
	struct linkest_estimate e;
	uint64_t now = 1000000000ull;

	linkest_config_defaults(&lc);
	lc.initial_bandwidth_bps = 1e6;	/* a poor guess */
	lc.initial_rtt_ms = 20;
	assert_int_equal(linkest_new(&lc, &le), 0);
	linkest_get(le, &e);
	assert_false(e.measured);
	/* true link: 137 Mbit/s, rtt 3 ms; a new connection first */
	for (int i = 0; i < 40; i++) {
		size_t bytes = 100000 + (size_t)(urand() * 500000);
		double t = (double)bytes * 8 / (137e6 * (0.9 + 0.2 * urand())) * 1e9;
		struct linkest_sample s = {
			.now_ns = now, .bytes_up = bytes,
			.connect_ns = i == 0 ? 3000000 : 0,
			.upload_ns = (uint64_t)(t * 0.3),	/* socket buffers hide the rest */
			.server_ns = 4000000,
			.ttfb_ns = (uint64_t)t + 3000000 + 4000000,
		};
		now += 100000000;
		assert_int_equal(linkest_observe(le, &s), 0);
		if (i % 5 == 0) {	/* a small request: rtt */
			struct linkest_sample q = {
				.now_ns = now, .bytes_up = 200, .server_ns = 100000,
				.upload_ns = 10000, .ttfb_ns = 3100000 + 12,
			};
			assert_int_equal(linkest_observe(le, &q), 0);
		}
	}
	linkest_get(le, &e);
	assert_true(e.measured);
	assert_true(fabs(e.rtt_ms - 3) < 0.3);
	assert_true(fabs(e.bandwidth_bps / 137e6 - 1) < 0.08);
	/* step to 20 Mbit/s: within 15 requests */
	for (int i = 0; i < 15; i++) {
		size_t bytes = 300000;
		double t = (double)bytes * 8 / 20e6 * 1e9;
		struct linkest_sample s = {
			.now_ns = now, .bytes_up = bytes, .upload_ns = (uint64_t)(t * 0.9),
			.server_ns = 4000000, .ttfb_ns = (uint64_t)t + 7000000,
		};
		now += 100000000;
		assert_int_equal(linkest_observe(le, &s), 0);
	}
	linkest_get(le, &e);
	assert_true(fabs(e.bandwidth_bps / 20e6 - 1) < 0.05);
	/* garbage samples are refused and change nothing */
	{
		struct linkest_sample bad = { .now_ns = now, .bytes_up = 100000, .upload_ns = 5,
					      .ttfb_ns = 4 };
		assert_int_equal(linkest_observe(le, &bad), -EINVAL);
	}
	linkest_free(le);
}

static void test_linkest_probe(void **state)
{
	struct linkest_config lc;
	struct linkest *le;
	uint64_t s = 1000000000ull;
	struct linkest_sample big = { .now_ns = 10 * s, .bytes_up = 100000, .upload_ns = 4000000,
				      .ttfb_ns = 8000000, .server_ns = 1000000 };
	struct linkest_sample small = { .now_ns = 10 * s, .bytes_up = 100, .ttfb_ns = 2000000 };

	linkest_config_defaults(&lc);
	lc.idle_probe_ns = 5 * s;
	assert_int_equal(linkest_new(&lc, &le), 0);
	assert_int_equal(linkest_observe(le, &big), 0);
	assert_false(linkest_probe_due(le, 12 * s));
	assert_true(linkest_probe_due(le, 15 * s));
	assert_false(linkest_probe_due(le, 16 * s));	/* asked already */
	assert_true(linkest_probe_due(le, 20 * s + 1));	/* still idle */
	/* small requests measure no goodput: the link still counts as idle */
	small.now_ns = 21 * s;
	assert_int_equal(linkest_observe(le, &small), 0);
	assert_true(linkest_probe_due(le, 25 * s + 2));
	big.now_ns = 26 * s;
	assert_int_equal(linkest_observe(le, &big), 0);
	assert_false(linkest_probe_due(le, 30 * s));
	assert_true(linkest_probe_due(le, 31 * s));
	linkest_free(le);
}

/* After an idle period the first goodput sample replaces the average: the
 * plan left the link at 20 Mbit/s, the rate rose to 400 meanwhile, and one
 * exploring request must be enough to see it; without the pause the same
 * sample only nudges the average. */
static double one_sample_after(uint64_t pause_ns)
{
	struct linkest_config lc;
	struct linkest *le;
	struct linkest_estimate e;
	uint64_t s = 1000000000ull, now = 10 * s;

	linkest_config_defaults(&lc);
	lc.idle_probe_ns = 2 * s;
	assert_int_equal(linkest_new(&lc, &le), 0);
	for (int i = 0; i < 20; i++, now += s / 20) {
		struct linkest_sample x = { .now_ns = now, .bytes_up = 200000, .upload_ns = 1000000,
					    .server_ns = 3000000,
					    .ttfb_ns = 5000000 + (uint64_t)(200000 * 8 / 20e6 * 1e9) }; /* + rtt 2 ms */
		assert_int_equal(linkest_observe(le, &x), 0);
	}
	linkest_get(le, &e);
	assert_true(fabs(e.bandwidth_bps / 20e6 - 1) < 0.01);
	now += pause_ns;
	struct linkest_sample y = { .now_ns = now, .bytes_up = 200000, .upload_ns = 1000000,
				    .server_ns = 3000000,
				    .ttfb_ns = 5000000 + (uint64_t)(200000 * 8 / 400e6 * 1e9) };
	assert_int_equal(linkest_observe(le, &y), 0);
	linkest_get(le, &e);
	linkest_free(le);
	return e.bandwidth_bps;
}

static void test_linkest_restarts_after_idle(void **state)
{
	double after_pause = one_sample_after(5000000000ull), busy = one_sample_after(0);

	(void)state;
	assert_true(fabs(after_pause / 400e6 - 1) < 0.02);
	assert_true(busy < 30e6);
}

/* A robot at 1/8 core: the only user-space round trips (health probes) are
 * inflated by up to 8.75 ms of CPU throttling, and every request is a 40 kB
 * image on a 137 Mbit/s, 0.2 ms link. With the kernel's min RTT of the
 * connection the RTT is the link's and the goodput the link's; without it the
 * inflated RTT would be subtracted from every transfer and added back to
 * every prediction. */
static void test_linkest_kernel_rtt(void **state)
{
	for (int with_kernel = 0; with_kernel < 2; with_kernel++) {
		struct linkest_config lc;
		struct linkest *le;
		struct linkest_estimate e;
		uint64_t now = 1000000000ull;
		double wire_ns = 40000 * 8 / 137e6 * 1e9 + 200000;

		(void)state;
		linkest_config_defaults(&lc);
		assert_int_equal(linkest_new(&lc, &le), 0);
		struct linkest_sample probe = { .now_ns = now, .ttfb_ns = 8600000 };
		assert_int_equal(linkest_observe(le, &probe), 0);
		for (int i = 0; i < 30; i++) {
			struct linkest_sample s = {
				.now_ns = now += 15000000, .bytes_up = 40000, .upload_ns = 300000,
				.server_ns = 12000000, .ttfb_ns = (uint64_t)wire_ns + 12000000,
				.tcp_rtt_ns = with_kernel ? 180000 : 0,
			};
			assert_int_equal(linkest_observe(le, &s), 0);
		}
		linkest_get(le, &e);
		if (with_kernel) {
			assert_true(fabs(e.rtt_ms - 0.18) <= D_TOL(0.18));
			/* predicted wire time of the image: within 2% of the real one */
			assert_true(fabs((e.rtt_ms * 1e6 + 40000 * 8 / e.bandwidth_bps * 1e9) / wire_ns - 1) < 0.02);
			assert_true(fabs(e.bandwidth_bps / 137e6 - 1) < 0.05);
		} else {
			assert_true(e.rtt_ms > 8);	/* what the kernel RTT is for */
		}
		linkest_free(le);
	}
}

/* Regression: RTT taken from small requests minus their body time at the
 * estimated goodput fed back into the goodput (551 Mbit/s estimated on a
 * 20 Mbit/s link). Link: 20 Mbit/s, rtt 1 ms; the robot's scheduler adds
 * up to 30 ms to some requests (a CPU quota). Requests: 1.6 kB cuts,
 * 12.9 kB cuts, 51 kB images, and health probes; a wild first guess. */
static void test_linkest_no_feedback(void **state)
{
	struct linkest_config lc;
	struct linkest *le;
	struct linkest_estimate e;
	uint64_t now = 1000000000ull;
	const double bw = 20e6, rtt_ns = 1e6;

	linkest_config_defaults(&lc);
	lc.initial_bandwidth_bps = 551e6;
	lc.initial_rtt_ms = 2;
	assert_int_equal(linkest_new(&lc, &le), 0);
	for (int i = 0; i < 200; i++) {
		static const size_t sizes[4] = { 1624, 12908, 51585, 0 };
		size_t bytes = sizes[i % 4];
		double wire = (double)bytes * 8 / bw * 1e9;
		double stall = urand() < 0.3 ? urand() * 30e6 : urand() * 0.2e6;
		struct linkest_sample s = {
			.now_ns = now, .bytes_up = bytes,
			.upload_ns = (uint64_t)(wire * 0.2),
			.server_ns = bytes ? 12000000 : 50000,
			.ttfb_ns = (uint64_t)(wire + rtt_ns + stall + (bytes ? 12e6 : 0.05e6)),
		};
		now += 20000000;
		assert_int_equal(linkest_observe(le, &s), 0);
		linkest_get(le, &e);
		/* never beyond twice the truth, even while it learns */
		if (i >= 4)
			assert_true(e.bandwidth_bps < 2 * bw);
	}
	linkest_get(le, &e);
	/* rtt: the minimum of samples that are all >= 1 ms (+ 1.6 kB at most) */
	assert_true(e.rtt_ms >= 1.0 && e.rtt_ms < 1.0 + 1624 * 8 / bw * 1e3 + 0.1);
	/* goodput: stalls only lower it; the EWMA of times holds them at ~10 % */
	assert_true(e.bandwidth_bps > 0.6 * bw && e.bandwidth_bps < 1.1 * bw);
	linkest_free(le);
}

/* The RTT is a windowed minimum: a longer path shows once the window has
 * passed, and a sample far outside it is forgotten. */
static void test_linkest_rtt_window(void **state)
{
	struct linkest_config lc;
	struct linkest *le;
	struct linkest_estimate e;
	uint64_t s = 1000000000ull, now = s;

	linkest_config_defaults(&lc);
	lc.rtt_window_ns = 10 * s;
	assert_int_equal(linkest_new(&lc, &le), 0);
	linkest_get(le, &e);
	assert_true(fabs(e.rtt_ms - lc.initial_rtt_ms) <= D_TOL(lc.initial_rtt_ms));
	/* a new connection: 1 ms */
	struct linkest_sample c = { .now_ns = now, .bytes_up = 100000, .connect_ns = 1000000,
				    .upload_ns = 1000000, .ttfb_ns = 9000000, .server_ns = 2000000 };
	assert_int_equal(linkest_observe(le, &c), 0);
	for (int i = 0; i < 5; i++) {	/* probes at 1.5..3.5 ms: the minimum stays */
		struct linkest_sample q = { .now_ns = now, .ttfb_ns = 1500000 + 500000 * (uint64_t)i };
		now += s;
		assert_int_equal(linkest_observe(le, &q), 0);
	}
	linkest_get(le, &e);
	assert_true(fabs(e.rtt_ms - 1.0) <= D_TOL(1.0));
	assert_int_equal(e.rtt_samples, 6);
	/* the path lengthens to 5 ms: after the window, only 5 ms samples */
	for (int i = 0; i < 12; i++) {
		struct linkest_sample q = { .now_ns = now, .ttfb_ns = 5000000 + 100000 * (uint64_t)(i % 3) };
		now += s;
		assert_int_equal(linkest_observe(le, &q), 0);
	}
	linkest_get(le, &e);
	assert_true(fabs(e.rtt_ms - 5.0) <= D_TOL(5.0));
	/* a goodput sample uses that RTT: 100 kB in 25 - 5 - 5 = 15 ms */
	struct linkest_sample g = { .now_ns = now, .bytes_up = 100000, .upload_ns = 1000000,
				    .ttfb_ns = 25000000, .server_ns = 5000000 };
	linkest_free(le);
	assert_int_equal(linkest_new(&lc, &le), 0);
	struct linkest_sample q = { .now_ns = now, .ttfb_ns = 5000000 };
	assert_int_equal(linkest_observe(le, &q), 0);
	assert_int_equal(linkest_observe(le, &g), 0);
	linkest_get(le, &e);
	assert_true(fabs(e.bandwidth_bps - 100000 * 8 / 0.015) <= D_TOL(100000 * 8 / 0.015));
	/* sanity: an RTT larger than the sample's wire time removes 3/4 at most */
	struct linkest_sample h = { .now_ns = now, .bytes_up = 100000, .ttfb_ns = 6000000,
				    .server_ns = 2000000 };
	linkest_free(le);
	assert_int_equal(linkest_new(&lc, &le), 0);
	assert_int_equal(linkest_observe(le, &q), 0);
	assert_int_equal(linkest_observe(le, &h), 0);
	linkest_get(le, &e);
	assert_true(fabs(e.bandwidth_bps - 100000 * 8 / 0.001) <= D_TOL(100000 * 8 / 0.001));
	linkest_free(le);
}

/* ---- one request's choice by policy; learning one run; the adapter ---- */

/* plan_choose under each policy on model A with P = 10/2/1 W and f32 only
 * (the hand-computed figures of test_policies): latency and energy optima
 * differ, whatever policy the plan is configured with. */
static void test_choose_by_policy(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan_candidate o, cur;
	enum plan_policy pol;
	struct plan *p;
	char why[256];

	c.enc_mask = 1u << F32;
	in.input_bytes = 0;
	c.power_default_mw[PLAN_PHASE_COMPUTE] = 10000;
	c.power_default_mw[PLAN_PHASE_TX] = 2000;
	c.power_default_mw[PLAN_PHASE_WAIT] = 1000;
	for (int configured = PLAN_POLICY_LATENCY; configured <= PLAN_POLICY_ENERGY; configured++) {
		c.policy = (enum plan_policy)configured;
		p = a_plan(&c);
		assert_int_equal(plan_update(p, &in, 1, why, sizeof(why)), 1);
		assert_int_equal(plan_current(p, &cur), 0);
		/* latency: cut 2 x8 bands, 46.9 ms */
		assert_int_equal(plan_choose(p, &in, PLAN_POLICY_LATENCY, 0, &o), 0);
		assert_int_equal(o.cut, 2);
		assert_int_equal(o.bands, 8);
		assert_near(o.total_ms, 46.9, D_TOL(46.9));
		/* energy: cut 0 f32, 182400 uJ */
		assert_int_equal(plan_choose(p, &in, PLAN_POLICY_ENERGY, 0, &o), 0);
		assert_int_equal(o.cut, 0);
		assert_int_equal(o.bands, 1);
		assert_near(o.energy_uj, 182400, D_TOL(182400));
		/* energy under 60 ms: cut 1 x8 (55.9 ms, 230900 uJ); the SLO is the
		 * request's: the configured policy has none */
		assert_int_equal(plan_choose(p, &in, PLAN_POLICY_ENERGY_SLO, 60, &o), 0);
		assert_int_equal(o.cut, 1);
		assert_int_equal(o.bands, 8);
		assert_true(o.meets_slo);
		assert_near(o.energy_uj, 230900, D_TOL(230900));
		/* under 40 ms nothing: the fastest */
		assert_int_equal(plan_choose(p, &in, PLAN_POLICY_ENERGY_SLO, 40, &o), 0);
		assert_int_equal(o.cut, 2);
		assert_false(o.meets_slo);
		/* an SLO policy without an SLO is refused */
		assert_int_equal(plan_choose(p, &in, PLAN_POLICY_ENERGY_SLO, 0, &o), -EINVAL);
		/* a choice for one request leaves the plan as it was */
		assert_int_equal(plan_current(p, &o), 0);
		assert_int_equal(o.cut, cur.cut);
		assert_int_equal(o.bands, cur.bands);
		assert_int_equal(cur.cut, configured == PLAN_POLICY_LATENCY ? 2 : 0);
		plan_free(p);
	}
	/* the names the API, the config and the CLI use */
	assert_int_equal(plan_policy_parse("latency", &pol), 0);
	assert_int_equal(pol, PLAN_POLICY_LATENCY);
	assert_int_equal(plan_policy_parse("energy", &pol), 0);
	assert_int_equal(pol, PLAN_POLICY_ENERGY);
	for (int i = 0; i < 3; i++) {
		static const char *const slo[3] = { "slo", "energy_slo", "energy-slo" };

		pol = PLAN_POLICY_LATENCY;
		assert_int_equal(plan_policy_parse(slo[i], &pol), 0);
		assert_int_equal(pol, PLAN_POLICY_ENERGY_SLO);
	}
	assert_int_equal(plan_policy_parse("fastest", &pol), -EINVAL);
	assert_int_equal(plan_policy_parse(plan_policy_name(PLAN_POLICY_ENERGY_SLO), &pol), 0);
}

/* plan_learn feeds each measurement of a run where it belongs (figures by
 * hand from model A and the EWMA of 0.2). */
static void test_learn_run(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs(), facts = { 0 };
	struct plan *p = a_plan(&c);
	struct plan_candidate o;
	struct plan_run r;
	int learnt;
	uint64_t gen = plan_generation(p);

	/* cut 2 f16+zstd: [0, 2) here in 45 ms (30 predicted: x1.1 -> 33),
	 * the peer's [2, 4) in 14 (7: x1.2 -> 8.4), 100000 B raw sent as
	 * 25000 (ratio 0.25), decode 4 ms, a 30000 B image, 7 W computing */
	c.enc_mask = (1u << F32) | (1u << F16Z);
	assert_int_equal(plan_set_config(p, &c), 0);
	plan_run_init(&r, 2, F16Z, 1);
	r.offloaded = 1;
	r.local_ms = 45;
	r.peer_compute_ms = 14;
	r.raw_bytes = 100000;
	r.wire_bytes = 25000;
	r.decode_ms = 4;
	r.image_bytes = 12345;
	r.power_mw[PLAN_PHASE_COMPUTE] = 7000;
	assert_int_equal(plan_learn(p, &in, &r), 0);
	assert_true(plan_generation(p) > gen);
	assert_int_equal(plan_runs_learnt(p), 1);
	assert_int_equal(plan_predict(p, &in, 2, F16Z, 1, &o), 0);
	assert_near(o.local_ms, 5 + 33 + 100000 * 3e-6, D_TOL(38.3));
	assert_near(o.remote_ms, 8.4, D_TOL(8.4));
	assert_int_equal(o.wire_bytes, 25000);
	assert_false(o.ratio_assumed);
	/* one power sample is not yet "learnt" (5 are) but is kept */
	assert_near(plan_power_mw(p, PLAN_PHASE_COMPUTE, &learnt), 6000, 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(plan_learn(p, &in, &r), 0);
	assert_near(plan_power_mw(p, PLAN_PHASE_COMPUTE, &learnt), 7000, D_TOL(7000));
	assert_true(learnt);
	plan_request_facts(p, &facts);
	assert_int_equal(facts.input_bytes, 12345);
	assert_near(facts.decode_ms, 4, D_TOL(4));
	/* no peer decode known, no speed: ours */
	assert_near(facts.peer_decode_ms, 4, D_TOL(4));
	/* decode 9: EWMA 4 + 0.2 * 5 = 5; a run that did not decode leaves it */
	plan_run_init(&r, 4, PLAN_ENC_LOCAL, 1);
	r.decode_ms = 9;
	assert_int_equal(plan_learn(p, &in, &r), 0);
	plan_run_init(&r, 4, PLAN_ENC_LOCAL, 1);
	assert_int_equal(plan_learn(p, &in, &r), 0);
	plan_request_facts(p, &facts);
	assert_near(facts.decode_ms, 5, D_TOL(5));
	assert_int_equal(facts.input_bytes, 12345);
	/* the peer's decode of a received image, once it answered one */
	plan_run_init(&r, 0, PLAN_ENC_INPUT, 1);
	r.offloaded = 1;
	r.peer_decode_ms = 1.5;
	assert_int_equal(plan_learn(p, &in, &r), 0);
	plan_request_facts(p, &facts);
	assert_near(facts.peer_decode_ms, 1.5, D_TOL(1.5));
	/* nonsense is refused whole */
	plan_run_init(&r, 5, F32, 1);
	assert_int_equal(plan_learn(p, &in, &r), -EINVAL);
	plan_run_init(&r, 1, F32, PLAN_MAX_BANDS + 1);
	assert_int_equal(plan_learn(p, &in, &r), -EINVAL);
	plan_free(p);
}

/* The peer's whole-model time scales the start-up profile: 10 20 30 40
 * (100 ms) run there in 25 ms -> 2.5 5 7.5 10, speed 0.25; the peer's
 * decode is then ours x 0.25. */
static void test_calibrate_peer(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs(), facts = { 0 };
	struct plan *p = a_plan(&c);
	struct plan_candidate o;
	struct plan_run r;

	/* learning moves the local profile; calibration scales the start-up one */
	assert_int_equal(plan_observe_local(p, 0, 4, 200), 0);
	assert_int_equal(plan_calibrate_peer(p, 25), 0);
	assert_near(plan_peer_speed(p), 0.25, D_TOL(0.25));
	assert_int_equal(plan_predict(p, &in, 1, F32, 1, &o), 0);
	assert_near(o.remote_ms, 5 + 7.5 + 10, D_TOL(22.5));
	plan_run_init(&r, 4, PLAN_ENC_LOCAL, 1);
	r.decode_ms = 8;
	assert_int_equal(plan_learn(p, &in, &r), 0);
	plan_request_facts(p, &facts);
	assert_near(facts.peer_decode_ms, 2, D_TOL(2));
	assert_int_equal(plan_calibrate_peer(p, 0), -EINVAL);
	assert_int_equal(plan_calibrate_peer(p, NAN), -EINVAL);
	plan_free(p);
}

/* ---- splitd plan on a stub engine (model A) ---- */

struct engine {
	int dummy;
};
static struct engine stub_engine;
static const uint8_t stub_sha[32] = { 0xab, 0xcd };

int engine_load(const char *path, const struct engine_opts *opts, struct engine **out,
		char *err, size_t errlen)
{
	if (strcmp(path, "stub.onnx")) {
		snprintf(err, errlen, "no such model");
		return -ENOENT;
	}
	*out = &stub_engine;
	return 0;
}
void engine_free(struct engine *e) { }
const uint8_t *engine_sha256(const struct engine *e) { return stub_sha; }
int engine_num_nodes(const struct engine *e) { return 4; }
int engine_node_info(const struct engine *e, int i, struct engine_node_info *o)
{
	static const char *const names[4] = { "conv1", "conv2", "pool", "fc" };

	if (i < 0 || i >= 4)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	o->name = names[i];
	o->op = i == 2 ? "GlobalAveragePool" : "Conv+Relu";
	o->band_ok = a_band[i];
	return 0;
}
int engine_cut_count(const struct engine *e, int k) { return 1; }
int engine_cut_tensor(const struct engine *e, int k, int j, struct engine_value_info *o)
{
	static const char *const names[5] = { "input", "t1", "t2", "t3", "output" };

	memset(o, 0, sizeof(*o));
	o->name = names[k];
	o->bytes = a_cut[k];
	return 0;
}
size_t engine_cut_bytes(const struct engine *e, int k) { return a_cut[k]; }
int engine_band_wave_table(const struct engine *e, int steps, double *out) { return -ENOTSUP; }
int engine_band_inputs_check(const struct engine *e, char *err, size_t errlen) { return -ENOTSUP; }
int engine_profile(const struct engine *e, int runs, double *node_ms)
{
	memcpy(node_ms, a_local, sizeof(a_local));
	return 0;
}

static int run_cli(json_t **out, const char *first, ...)
{
	char *argv[32] = { "plan" };
	char path[] = "/tmp/splitd-plan-cli-XXXXXX";
	int argc = 1, rc, fd, saved;
	va_list ap;
	const char *a;

	va_start(ap, first);
	for (a = first; a && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(1);
	dup2(fd, 1);
	rc = cmd_plan(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(fd);
	*out = rc == 0 ? json_load_file(path, 0, NULL) : NULL;
	unlink(path);
	return rc;
}

static void test_cli(void **state)
{
	char prof[] = "/tmp/splitd-peer-XXXXXX";
	int fd = mkstemp(prof);
	FILE *f = fdopen(fd, "w");
	json_t *j, *ch, *cuts;

	fprintf(f, "{\"model_sha256\": \"abcd%060d\", \"node_ms\": [1, 2, 3, 4]}\n", 0);
	fclose(f);
	/* the hand-computed policy case of test_policies, through the CLI */
	assert_int_equal(run_cli(&j, "-m", "stub.onnx", "--bandwidth", "80Mbit", "--rtt-ms", "2",
				 "--peer-profile", prof, "--encodings", "f32", "--input-bytes", "0",
				 "--decode-ms", "5", "--power-mw", "10000,2000,1000", "--band-overhead", "0",
				 "--peer-streams", "--json", NULL), 0);
	assert_non_null(j);
	ch = json_object_get(j, "choice");
	assert_int_equal(json_integer_value(json_object_get(ch, "cut")), 2);
	assert_int_equal(json_integer_value(json_object_get(ch, "bands")), 8);
	/* 46.9 + the default 0.05 ms per band overhead x 8 bands */
	assert_near(json_real_value(json_object_get(ch, "total_ms")), 47.3, D_TOL(47.3));
	cuts = json_object_get(j, "cuts");
	assert_int_equal(json_array_size(cuts), 5);
	/* cut 3: plain only (barrier before), 81.4 ms */
	assert_near(json_real_value(json_object_get(json_array_get(cuts, 3), "total_ms")),
			   81.4, D_TOL(81.4));
	assert_null(json_object_get(json_array_get(cuts, 3), "banded"));
	json_decref(j);

	/* energy: cut 0 f32, 0.1824 J; the assumed-speedup peer gives the same */
	assert_int_equal(run_cli(&j, "-m", "stub.onnx", "--bandwidth", "10MB/s", "--policy", "energy",
				 "--encodings", "f32", "--input-bytes", "0", "--peer-speedup", "10",
				 "--decode-ms", "5", "--power-mw", "10000,2000,1000", "--json", NULL), 0);
	ch = json_object_get(j, "choice");
	assert_int_equal(json_integer_value(json_object_get(ch, "cut")), 0);
	assert_near(json_real_value(json_object_get(ch, "robot_j")), 0.1824, D_TOL(0.1824));
	assert_non_null(strstr(json_string_value(json_object_get(j, "peer_profile")), "assumed"));
	json_decref(j);

	/* 20M = 20 Mbit/s: cut 2 f32 sends 200000 B in 80 ms */
	assert_int_equal(run_cli(&j, "-m", "stub.onnx", "--bandwidth", "20M", "--encodings", "f32",
				 "--json", NULL), 0);
	assert_near(json_real_value(json_object_get(json_array_get(json_object_get(j, "cuts"), 2),
							   "transfer_ms")), 80, D_TOL(80));
	json_decref(j);

	/* the text table, into the test log */
	{
		char *argv[] = { "plan", "-m", "stub.onnx", "--bandwidth", "80M", "--decode-ms", "5",
				 "--input-bytes", "30000", NULL };

		assert_int_equal(cmd_plan(9, argv), 0);
	}
	/* refusals */
	f = fopen(prof, "w");
	fprintf(f, "{\"model_sha256\": \"%064d\", \"node_ms\": [1, 2, 3, 4]}\n", 0);
	fclose(f);
	assert_int_equal(run_cli(&j, "-m", "stub.onnx", "--peer-profile", prof, NULL), 1);
	assert_int_equal(run_cli(&j, "-m", "other.onnx", NULL), 1);
	assert_int_equal(run_cli(&j, "-m", "stub.onnx", "--bandwidth", "fast", NULL), 2);
	assert_int_equal(run_cli(&j, "-m", "stub.onnx", "--policy", "energy-slo", NULL), 2);
	assert_int_equal(run_cli(&j, "--json", NULL), 2);
	unlink(prof);
}

/* The adapter reads model A off the stub engine: the same candidates and
 * predictions as model A from its arrays. */
static void test_engine_adapter(void **state)
{
	struct plan_config c = a_config();
	struct plan_inputs in = a_inputs();
	struct plan *a = a_plan(&c), *b = NULL;
	struct plan_candidate *vb;
	int nb, bb;

	assert_int_equal(plan_new_from_engine(&stub_engine, a_local, a_peer, &c, &b), 0);
	assert_int_equal(plan_n_nodes(b), 4);
	plan_assert_same(a, b, &in);
	/* the barrier before node 2 came through: no banded cut 3 */
	assert_int_equal(plan_enumerate(b, &in, &vb, &nb, &bb), 0);
	assert_null(find(vb, nb, 3, F32, 2));
	assert_non_null(find(vb, nb, 2, F32, 2));
	free(vb);
	plan_free(a);
	plan_free(b);
	assert_int_equal(plan_new_from_engine(NULL, a_local, a_peer, &c, &b), -EINVAL);
	assert_null(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_costs),
		cmocka_unit_test(test_return_bytes),
		cmocka_unit_test(test_compression_ratio),
		cmocka_unit_test(test_banded_costs),
		cmocka_unit_test(test_banded_bounds),
		cmocka_unit_test(test_banded_wave_none),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_hysteresis),
		cmocka_unit_test(test_profile_and_power_learning),
		cmocka_unit_test(test_bad_inputs),
		cmocka_unit_test(test_linkest_converges),
		cmocka_unit_test(test_linkest_probe),
		cmocka_unit_test(test_linkest_restarts_after_idle),
		cmocka_unit_test(test_linkest_kernel_rtt),
		cmocka_unit_test(test_band_efficiency),
		cmocka_unit_test(test_linkest_no_feedback),
		cmocka_unit_test(test_linkest_rtt_window),
		cmocka_unit_test(test_cli),
		cmocka_unit_test(test_choose_by_policy),
		cmocka_unit_test(test_learn_run),
		cmocka_unit_test(test_calibrate_peer),
		cmocka_unit_test(test_engine_adapter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
