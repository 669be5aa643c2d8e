/* Internals of the planner (plan.c, plan_decide.c, plan_learn.c,
 * plan_state.c): the state behind struct plan. Not a public header. */
#ifndef SPLITD_PLAN_IMPL_H
#define SPLITD_PLAN_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h" /* err_set: the error idiom every floor shares */
#include "plan.h"

struct plan_snapshot {
	double bandwidth_bps, rtt_ms;
	size_t input_bytes, output_bytes;
	double power_mw[PLAN_PHASE_COUNT];
	double *local_ms, *peer_ms;	/* n entries */
	double ratio_sum;
};

struct plan {
	int n;
	size_t *cut_bytes;		/* n + 1 */
	int *band_ok;			/* n */
	int input_band_ok;
	double *wave;			/* (n + 1) x (PLAN_WAVE_STEPS + 1), or NULL */
	int *band_prefix_ok;		/* n + 1: nodes [0, k) all band_ok */
	int *next_barrier;		/* n + 1: first j >= k with !band_ok, or n */
	double *local_ms, *peer_ms;	/* n */
	double *local_prefix, *peer_prefix;	/* n + 1, refreshed by plan_refresh() */
	double *ratio;			/* (n + 1) * PLAN_ENC_COUNT codec ratio; < 0 unknown */
	struct plan_config cfg;
	double power_mw[PLAN_PHASE_COUNT];
	int power_n[PLAN_PHASE_COUNT];
	int have_current;
	struct plan_candidate cur;
	struct plan_snapshot snap;
	int dirty;			/* a ratio was learnt since the snapshot */
	/* per band count B: the share of the modelled overlap saving banded
	 * runs achieved, learnt from them (1 until one ran; 0 = overlap buys
	 * nothing here). Per B, since the cost of more, smaller kernel calls
	 * grows with B in a way the model does not know. */
	double band_eff[PLAN_MAX_BANDS + 1];
	int band_eff_n[PLAN_MAX_BANDS + 1];
	/* the same per (cut, B), where that pair has run: what a cut's few
	 * rows per band cost depends on the cut (n + 1) x (PLAN_MAX_BANDS + 1) */
	double *cut_eff;
	int *cut_eff_n;

	/* learnt beside the model (plan_learn.c), kept by plan_state.c */
	double *profile_ms;		/* n: the local profile plan_new was given */
	double decode_ms, peer_decode_ms;	/* EWMAs, 0 = none yet */
	size_t input_bytes;		/* the last received JPEG/PNG */
	double reply_bytes;		/* EWMA of the peer's answers; 0 = none yet */
	double peer_speed;		/* peer / robot whole-model time, 0 = unknown */
	int peer_known;			/* peer_ms measured (not plan_new's guess) */
	double link_bandwidth_bps;	/* the link as last measured, 0 = never */
	double link_rtt_ms;		/* < 0 = never */
	uint64_t generation;		/* bumped by everything learnt */
	uint64_t runs;			/* requests learnt from */
};

/* Recompute the profile prefix sums after a profile changed. */
void plan_refresh(struct plan *p);
/* Every entry finite and >= 0. */
int plan_profile_valid(const double *ms, int n);
/* The index of the best of v[0..n) under pol by each one's meets_slo
 * (none meets it: the fastest); -1 when n == 0. */
int plan_pick_best(const struct plan_candidate *v, int n, enum plan_policy pol);
/* plan_state_write up to the rename: text in a new temporary file beside
 * path (its name into tmp), written and fsync'ed; what a crash before the
 * rename leaves. */
int plan_state_write_temp(const char *path, const char *text, char *tmp, size_t tmplen,
			  char *err, size_t errlen);

#endif
