/* The planner's cost model: a plan's life (new, config, free), the
 * prediction of one candidate and the enumeration of all; see plan.h for
 * the model. The decision is in plan_decide.c, the learning in
 * plan_learn.c. */
#include "plan-impl.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double dtype_ratio[PLAN_DTYPE_COUNT] = { 1.0, 0.5, 0.25 };

void plan_config_defaults(struct plan_config *c)
{
	memset(c, 0, sizeof(*c));
	c->policy = PLAN_POLICY_LATENCY;
	c->slo_ms = 0;
	c->enc_mask = 0;
	c->max_bands = 8;
	c->peer_streams = 1;
	c->band_overhead_ms = 0.05;
	c->codec_ns_per_byte[PLAN_CODEC_NONE] = 0;
	c->codec_ns_per_byte[PLAN_CODEC_ZSTD] = 3.0;	/* ~330 MB/s, level 1 on an ARM core */
	c->codec_ns_per_byte[PLAN_CODEC_LZ4] = 1.5;
	/* Jetson Xavier NX 10 W mode, whole module: a rough prior until measured */
	c->power_default_mw[PLAN_PHASE_COMPUTE] = 6000;
	c->power_default_mw[PLAN_PHASE_TX] = 4500;
	c->power_default_mw[PLAN_PHASE_WAIT] = 3500;
	c->threshold = 0.10;
	c->hysteresis = 0.05;
	c->ewma_alpha = 0.2;
	c->power_min_samples = 5;
}

static unsigned enc_mask_of(const struct plan_config *c)
{
	if (c->enc_mask)
		return c->enc_mask;
	return (1u << PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE)) |
	       (1u << PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_NONE)) |
	       (1u << PLAN_ENC(PLAN_DTYPE_I8, PLAN_CODEC_NONE));
}

static int config_valid(const struct plan_config *c)
{
	if (c->policy < PLAN_POLICY_LATENCY || c->policy > PLAN_POLICY_ENERGY_SLO)
		return 0;
	if (c->policy == PLAN_POLICY_ENERGY_SLO && !(c->slo_ms > 0))
		return 0;
	if (c->max_bands > PLAN_MAX_BANDS || !(c->band_overhead_ms >= 0) || !(c->band_overhead_frac >= 0))
		return 0;
	if (!(c->threshold >= 0) || !(c->hysteresis >= 0) || c->hysteresis >= 1)
		return 0;
	if (!(c->ewma_alpha > 0) || c->ewma_alpha > 1)
		return 0;
	if (c->enc_mask >> PLAN_ENC_COUNT)
		return 0;
	for (int i = 0; i < PLAN_CODEC_COUNT; i++)
		if (!(c->codec_ns_per_byte[i] >= 0))
			return 0;
	for (int i = 0; i < PLAN_PHASE_COUNT; i++)
		if (!(c->power_default_mw[i] >= 0))
			return 0;
	return 1;
}

int plan_profile_valid(const double *ms, int n)
{
	for (int i = 0; i < n; i++)
		if (!(ms[i] >= 0) || !isfinite(ms[i]))
			return 0;
	return 1;
}

void plan_refresh(struct plan *p)
{
	p->local_prefix[0] = p->peer_prefix[0] = 0;
	for (int i = 0; i < p->n; i++) {
		p->local_prefix[i + 1] = p->local_prefix[i] + p->local_ms[i];
		p->peer_prefix[i + 1] = p->peer_prefix[i] + p->peer_ms[i];
	}
}

void plan_free(struct plan *p)
{
	if (!p)
		return;
	free(p->cut_bytes);
	free(p->band_ok);
	free(p->band_prefix_ok);
	free(p->next_barrier);
	free(p->wave);
	free(p->local_ms);
	free(p->peer_ms);
	free(p->local_prefix);
	free(p->peer_prefix);
	free(p->ratio);
	free(p->cut_eff);
	free(p->cut_eff_n);
	free(p->profile_ms);
	free(p->snap.local_ms);
	free(p->snap.peer_ms);
	free(p);
}

int plan_new(const struct plan_model *m, const struct plan_config *c, struct plan **out)
{
	struct plan *p = NULL;
	int rc = -EINVAL;
	size_t n1;

	*out = NULL;
	if (!m || !c || m->n_nodes < 1 || !m->cut_bytes || !m->local_node_ms ||
	    !m->peer_node_ms || !config_valid(c))
		return -EINVAL;
	if (!plan_profile_valid(m->local_node_ms, m->n_nodes) ||
	    !plan_profile_valid(m->peer_node_ms, m->n_nodes))
		return -EINVAL;
	n1 = (size_t)m->n_nodes + 1;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->n = m->n_nodes;
	p->cfg = *c;
	for (int b = 0; b <= PLAN_MAX_BANDS; b++)
		p->band_eff[b] = 1.0;
	p->cut_bytes = calloc(n1, sizeof(size_t));
	p->band_ok = calloc(n1, sizeof(int));
	p->band_prefix_ok = calloc(n1, sizeof(int));
	p->next_barrier = calloc(n1, sizeof(int));
	p->local_ms = calloc(n1, sizeof(double));
	p->peer_ms = calloc(n1, sizeof(double));
	p->local_prefix = calloc(n1, sizeof(double));
	p->peer_prefix = calloc(n1, sizeof(double));
	p->ratio = calloc(n1 * PLAN_ENC_COUNT, sizeof(double));
	p->cut_eff = calloc(n1 * (PLAN_MAX_BANDS + 1), sizeof(double));
	p->cut_eff_n = calloc(n1 * (PLAN_MAX_BANDS + 1), sizeof(int));
	p->snap.local_ms = calloc(n1, sizeof(double));
	p->snap.peer_ms = calloc(n1, sizeof(double));
	p->profile_ms = calloc(n1, sizeof(double));
	if (!p->cut_bytes || !p->band_ok || !p->band_prefix_ok || !p->next_barrier ||
	    !p->local_ms || !p->peer_ms || !p->local_prefix || !p->peer_prefix ||
	    !p->ratio || !p->snap.local_ms || !p->snap.peer_ms || !p->cut_eff || !p->cut_eff_n || !p->profile_ms) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(p->cut_bytes, m->cut_bytes, n1 * sizeof(size_t));
	memcpy(p->local_ms, m->local_node_ms, (n1 - 1) * sizeof(double));
	memcpy(p->peer_ms, m->peer_node_ms, (n1 - 1) * sizeof(double));
	memcpy(p->profile_ms, m->local_node_ms, (n1 - 1) * sizeof(double));
	p->link_rtt_ms = -1;
	for (int i = 0; i < p->n; i++)
		p->band_ok[i] = m->band_ok ? !!m->band_ok[i] : 0;
	p->input_band_ok = m->input_band_ok;
	if (m->peer_wave) {
		size_t nw = n1 * (PLAN_WAVE_STEPS + 1);
		if (!(p->wave = malloc(nw * sizeof(double)))) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < nw; i++)	/* out of range: as if linear */
			p->wave[i] = m->peer_wave[i] >= 0 && m->peer_wave[i] <= 1 ? m->peer_wave[i]
				     : (double)(i % (PLAN_WAVE_STEPS + 1)) / PLAN_WAVE_STEPS;
	}
	p->band_prefix_ok[0] = 1;
	for (int k = 1; k <= p->n; k++)
		p->band_prefix_ok[k] = p->band_prefix_ok[k - 1] && p->band_ok[k - 1];
	p->next_barrier[p->n] = p->n;
	for (int k = p->n - 1; k >= 0; k--)
		p->next_barrier[k] = p->band_ok[k] ? p->next_barrier[k + 1] : k;
	for (size_t i = 0; i < n1 * PLAN_ENC_COUNT; i++)
		p->ratio[i] = -1;
	for (int i = 0; i < PLAN_PHASE_COUNT; i++)
		p->power_mw[i] = c->power_default_mw[i];
	plan_refresh(p);
	*out = p;
	p = NULL;
	rc = 0;
out:
	plan_free(p);
	return rc;
}

int plan_set_config(struct plan *p, const struct plan_config *c)
{
	if (!config_valid(c))
		return -EINVAL;
	p->cfg = *c;
	p->dirty = 1;
	return 0;
}

void plan_get_config(const struct plan *p, struct plan_config *out)
{
	*out = p->cfg;
}

int plan_n_nodes(const struct plan *p)
{
	return p->n;
}

/* The efficiency a prediction of (cut, B) uses: that pair's own once it
 * has run, else B's, else 1. */
static double band_eff_of(const struct plan *p, int cut, int bands)
{
	size_t i = (size_t)cut * (PLAN_MAX_BANDS + 1) + (size_t)bands;

	return p->cut_eff_n[i] ? p->cut_eff[i] : p->band_eff[bands];
}

int plan_band_legal(const struct plan *p, int cut)
{
	return cut == 0 ? p->input_band_ok && p->n > 0 : cut > 0 && cut < p->n && p->band_prefix_ok[cut];
}

/* The share of the peer's row-local work after cut that can run once the
 * fraction q of the cut's rows has arrived. */
static double wave(const struct plan *p, int cut, double q)
{
	if (q >= 1)
		return 1;
	if (!p->wave)
		return q;
	int i = (int)floor(q * PLAN_WAVE_STEPS + 1e-9);
	return p->wave[(size_t)cut * (PLAN_WAVE_STEPS + 1) + (size_t)(i < 0 ? 0 : i)];
}

static double bits_ms(size_t bytes, double bandwidth_bps)
{
	return (double)bytes * 8.0 / bandwidth_bps * 1e3;
}

int plan_predict(const struct plan *p, const struct plan_inputs *in, int cut, int enc,
		 int bands, struct plan_candidate *o)
{
	double pc = plan_power_mw(p, PLAN_PHASE_COMPUTE, NULL);
	double pt = plan_power_mw(p, PLAN_PHASE_TX, NULL);
	double pw = plan_power_mw(p, PLAN_PHASE_WAIT, NULL);
	double codec_ms = 0, decode = in->decode_ms > 0 ? in->decode_ms : 0;
	size_t out_bytes;

	if (cut < 0 || cut > p->n || bands < 1 || bands > PLAN_MAX_BANDS)
		return -EINVAL;
	memset(o, 0, sizeof(*o));
	o->cut = cut;
	o->enc = enc;
	o->bands = bands;
	o->raw_bytes = p->cut_bytes[cut];

	if (cut == p->n) {	/* all-local */
		if (enc != PLAN_ENC_LOCAL || bands != 1)
			return -EINVAL;
		o->local_ms = decode + p->local_prefix[p->n];
		o->total_ms = o->local_ms;
		o->energy_uj = pc * o->local_ms;
		goto slo;
	}
	if (!(in->bandwidth_bps > 0) || !(in->rtt_ms >= 0))
		return -EINVAL;
	out_bytes = in->output_bytes ? in->output_bytes : p->cut_bytes[p->n];
	o->return_bytes = out_bytes;
	o->net_ms = in->rtt_ms + bits_ms(out_bytes, in->bandwidth_bps);
	o->remote_ms = p->peer_prefix[p->n] - p->peer_prefix[cut];

	if (enc == PLAN_ENC_INPUT) {	/* the image as received */
		if (cut != 0 || bands != 1 || in->input_bytes == 0)
			return -EINVAL;
		o->raw_bytes = o->wire_bytes = in->input_bytes;
		o->remote_ms += in->peer_decode_ms > 0 ? in->peer_decode_ms : 0;
		/* a raw frame made into that image here first (PNG) */
		o->local_ms = in->input_encode_ms > 0 ? in->input_encode_ms : 0;
	} else {
		int dt = enc / PLAN_CODEC_COUNT, cd = enc % PLAN_CODEC_COUNT;
		double pre, r;

		if (enc < 0 || enc >= PLAN_ENC_COUNT || !(enc_mask_of(&p->cfg) & (1u << enc)))
			return -EINVAL;
		pre = (double)o->raw_bytes * dtype_ratio[dt];
		r = 1.0;
		if (cd != PLAN_CODEC_NONE) {
			r = p->ratio[(size_t)cut * PLAN_ENC_COUNT + (size_t)enc];
			if (r < 0) {
				r = 1.0;
				o->ratio_assumed = 1;
			}
			codec_ms = pre * p->cfg.codec_ns_per_byte[cd] * 1e-6;
		}
		o->wire_bytes = (size_t)llround(pre * r);
		o->local_ms = decode;
	}
	o->local_ms += p->local_prefix[cut] + codec_ms;
	o->transfer_ms = bits_ms(o->wire_bytes, in->bandwidth_bps);

	if (bands == 1) {
		o->total_ms = o->local_ms + o->transfer_ms + o->remote_ms + o->net_ms;
	} else {
		/* 3-stage pipeline: robot bands, upload, peer's row-local part */
		double C, X, Rb, c, x, r, plain;
		int nb;

		/* bands travel uncompressed (fixed size, sent as computed) */
		if (!plan_band_legal(p, cut) || enc == PLAN_ENC_INPUT || enc < 0 || enc >= PLAN_ENC_COUNT ||
		    enc % PLAN_CODEC_COUNT != PLAN_CODEC_NONE)
			return -EINVAL;
		C = o->local_ms - decode;
		X = o->transfer_ms;
		nb = p->cfg.peer_streams ? p->next_barrier[cut] : cut;
		Rb = p->peer_prefix[nb] - p->peer_prefix[cut];
		c = C * (1 + p->cfg.band_overhead_frac) / bands + p->cfg.band_overhead_ms;
		x = X / bands;
		/* the three stages band by band: the robot computes band b, the
		 * link carries it, the peer runs what its rows let its wavefront
		 * reach (the receptive field holds work back to the last band) */
		double tc = 0, tx = 0, tp = 0;
		for (int b = 0; b < bands; b++) {
			tc += c;
			tx = fmax(tx, tc) + x;
			r = Rb * (wave(p, cut, (double)(b + 1) / bands) - wave(p, cut, (double)b / bands));
			tp = fmax(tp, tx) + r;
		}
		o->total_ms = decode + tp + (o->remote_ms - Rb) + o->net_ms;
		o->local_ms = decode + c * bands;
		plain = decode + C + X + o->remote_ms + o->net_ms;
		/* only the share of the saving this robot has achieved */
		o->total_ms = plain - band_eff_of(p, cut, bands) * (plain - o->total_ms);
		o->overlap_saving_ms = plain - o->total_ms;
		o->overlap_bound_ms = (C + X + Rb - fmax(C, fmax(X, Rb))) * (1.0 - 1.0 / bands);
	}
	/* the wait baseline runs the whole time; compute and radio add to it */
	o->energy_uj = pw * o->total_ms + (pc - pw) * o->local_ms + (pt - pw) * o->transfer_ms;
slo:
	o->meets_slo = !(p->cfg.policy == PLAN_POLICY_ENERGY_SLO) || o->total_ms <= p->cfg.slo_ms;
	return 0;
}

int plan_pick_best(const struct plan_candidate *v, int n, enum plan_policy pol)
{
	int b = -1, any_slo = 0;

	for (int i = 0; i < n; i++)
		any_slo |= v[i].meets_slo;
	if (pol == PLAN_POLICY_ENERGY_SLO && !any_slo)
		pol = PLAN_POLICY_LATENCY;	/* unreachable: fastest */
	for (int i = 0; i < n; i++) {
		double oi, ob;

		if (pol == PLAN_POLICY_ENERGY_SLO && !v[i].meets_slo)
			continue;
		if (b < 0) {
			b = i;
			continue;
		}
		oi = pol == PLAN_POLICY_LATENCY ? v[i].total_ms : v[i].energy_uj;
		ob = pol == PLAN_POLICY_LATENCY ? v[b].total_ms : v[b].energy_uj;
		if (oi < ob * (1 - 1e-9))
			b = i;
	}
	return b;
}

int plan_enumerate(const struct plan *p, const struct plan_inputs *in,
		   struct plan_candidate **out, int *n_out, int *best)
{
	size_t cap = (size_t)(p->n + 1) * (PLAN_ENC_COUNT * (1 + 8) + 2);
	struct plan_candidate *v = calloc(cap, sizeof(*v));
	int n = 0, b;

	*out = NULL;
	*n_out = 0;
	if (!v)
		return -ENOMEM;
	for (int k = 0; k <= p->n; k++) {
		if (k == p->n) {
			if (plan_predict(p, in, k, PLAN_ENC_LOCAL, 1, &v[n]) == 0)
				n++;
			continue;
		}
		if (k == 0 && plan_predict(p, in, 0, PLAN_ENC_INPUT, 1, &v[n]) == 0)
			n++;
		for (int e = 0; e < PLAN_ENC_COUNT; e++) {
			if (plan_predict(p, in, k, e, 1, &v[n]) == 0)
				n++;
			for (int B = 2; B <= p->cfg.max_bands && (size_t)n < cap; B *= 2)
				if (plan_predict(p, in, k, e, B, &v[n]) == 0)
					n++;
		}
	}
	b = plan_pick_best(v, n, p->cfg.policy);
	*out = v;
	*n_out = n;
	*best = b;
	return 0;
}
