/* The planner's cost model and decision; see plan.h for the model. */
#include "plan.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct plan_snapshot {
	double bandwidth_bps, rtt_ms;
	size_t input_bytes;
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
	double *local_prefix, *peer_prefix;	/* n + 1, refreshed by refresh() */
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
};

static const double dtype_ratio[PLAN_DTYPE_COUNT] = { 1.0, 0.5, 0.25 };
static const char *const dtype_names[PLAN_DTYPE_COUNT] = { "f32", "f16", "i8" };
static const char *const codec_names[PLAN_CODEC_COUNT] = { "", "+zstd", "+lz4" };

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

static int profile_valid(const double *ms, int n)
{
	for (int i = 0; i < n; i++)
		if (!(ms[i] >= 0) || !isfinite(ms[i]))
			return 0;
	return 1;
}

static void refresh(struct plan *p)
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
	if (!profile_valid(m->local_node_ms, m->n_nodes) ||
	    !profile_valid(m->peer_node_ms, m->n_nodes))
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
	if (!p->cut_bytes || !p->band_ok || !p->band_prefix_ok || !p->next_barrier ||
	    !p->local_ms || !p->peer_ms || !p->local_prefix || !p->peer_prefix ||
	    !p->ratio || !p->snap.local_ms || !p->snap.peer_ms || !p->cut_eff || !p->cut_eff_n) {
		rc = -ENOMEM;
		goto out;
	}
	memcpy(p->cut_bytes, m->cut_bytes, n1 * sizeof(size_t));
	memcpy(p->local_ms, m->local_node_ms, (n1 - 1) * sizeof(double));
	memcpy(p->peer_ms, m->peer_node_ms, (n1 - 1) * sizeof(double));
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
	refresh(p);
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

int plan_n_nodes(const struct plan *p)
{
	return p->n;
}

/* Scale the nodes of [first, last) so their sum moves toward measured_ms. */
static int observe_segment(struct plan *p, double *ms, int first, int last, double measured_ms)
{
	double pred = 0, ratio, gain;
	int n_zero;

	if (first < 0 || last > p->n || first >= last || !(measured_ms >= 0) || !isfinite(measured_ms))
		return -EINVAL;
	for (int i = first; i < last; i++)
		pred += ms[i];
	n_zero = 0;
	if (pred <= 0) {
		/* nothing to scale: spread the measurement evenly */
		n_zero = last - first;
		for (int i = first; i < last; i++)
			ms[i] = p->cfg.ewma_alpha * measured_ms / n_zero;
	} else {
		ratio = measured_ms / pred;
		gain = 1.0 + p->cfg.ewma_alpha * (ratio - 1.0);
		for (int i = first; i < last; i++)
			ms[i] *= gain;
	}
	refresh(p);
	return 0;
}

int plan_observe_local(struct plan *p, int first, int last, double measured_ms)
{
	return observe_segment(p, p->local_ms, first, last, measured_ms);
}

int plan_observe_remote(struct plan *p, int first, int last, double measured_ms)
{
	return observe_segment(p, p->peer_ms, first, last, measured_ms);
}

int plan_set_peer_profile(struct plan *p, const double *node_ms, int n)
{
	if (n != p->n || !profile_valid(node_ms, n))
		return -EINVAL;
	memcpy(p->peer_ms, node_ms, (size_t)n * sizeof(double));
	refresh(p);
	return 0;
}

int plan_observe_power(struct plan *p, enum plan_power_phase ph, double power_mw)
{
	if (ph < 0 || ph >= PLAN_PHASE_COUNT || !(power_mw >= 0) || !isfinite(power_mw))
		return -EINVAL;
	if (p->power_n[ph] == 0)
		p->power_mw[ph] = power_mw;	/* the default is not a sample */
	else
		p->power_mw[ph] += p->cfg.ewma_alpha * (power_mw - p->power_mw[ph]);
	p->power_n[ph]++;
	return 0;
}

double plan_power_mw(const struct plan *p, enum plan_power_phase ph, int *learnt)
{
	int ok = p->power_n[ph] >= (p->cfg.power_min_samples > 0 ? p->cfg.power_min_samples : 1);

	if (learnt)
		*learnt = ok;
	return ok ? p->power_mw[ph] : p->cfg.power_default_mw[ph];
}

int plan_observe_ratio(struct plan *p, int cut, int enc, size_t raw_bytes, size_t wire_bytes)
{
	double r, *slot, old;

	if (cut < 0 || cut > p->n || enc < 0 || enc >= PLAN_ENC_COUNT || raw_bytes == 0)
		return -EINVAL;
	if (enc % PLAN_CODEC_COUNT == PLAN_CODEC_NONE)
		return 0;	/* exact: nothing to learn */
	r = (double)wire_bytes / (double)raw_bytes;
	slot = &p->ratio[(size_t)cut * PLAN_ENC_COUNT + (size_t)enc];
	old = *slot;
	if (old < 0)
		*slot = r;
	else
		*slot += p->cfg.ewma_alpha * (r - old);
	if (old < 0 || fabs(*slot - old) > p->cfg.threshold * old)
		p->dirty = 1;
	return 0;
}

/* The efficiency a prediction of (cut, B) uses: that pair's own once it
 * has run, else B's, else 1. */
static double band_eff_of(const struct plan *p, int cut, int bands)
{
	size_t i = (size_t)cut * (PLAN_MAX_BANDS + 1) + (size_t)bands;

	return p->cut_eff_n[i] ? p->cut_eff[i] : p->band_eff[bands];
}

int plan_observe_banded(struct plan *p, const struct plan_inputs *in, int cut, int enc, int bands,
			double measured_ms)
{
	struct plan_candidate plain, model;
	double eff, ceff, obs, gap;
	size_t i;
	int r, cn;

	if (bands < 2 || bands > PLAN_MAX_BANDS || cut < 0 || cut > p->n || !(measured_ms >= 0))
		return -EINVAL;
	i = (size_t)cut * (PLAN_MAX_BANDS + 1) + (size_t)bands;
	eff = p->band_eff[bands];
	ceff = p->cut_eff[i];
	cn = p->cut_eff_n[i];
	/* the model's own saving */
	p->band_eff[bands] = 1.0;
	p->cut_eff_n[i] = 0;
	r = plan_predict(p, in, cut, enc, bands, &model);
	p->band_eff[bands] = eff;
	p->cut_eff_n[i] = cn;
	if (r < 0 || (r = plan_predict(p, in, cut, enc, 1, &plain)) < 0)
		return r;
	gap = plain.total_ms - model.total_ms;
	if (gap < 0.5)		/* nothing to learn from a saving of noise size */
		return 0;
	obs = (plain.total_ms - measured_ms) / gap;
	obs = obs < 0 ? 0 : obs > 1.5 ? 1.5 : obs;
	/* B's efficiency, which cuts not yet run at B use, drops at once to a
	 * worse observation and rises slowly: a banded try that lost is not
	 * repeated at every other cut first */
	p->band_eff[bands] = p->band_eff_n[bands] == 0 || obs < eff ? obs : eff + p->cfg.ewma_alpha * (obs - eff);
	p->band_eff_n[bands]++;
	p->cut_eff[i] = cn == 0 ? obs : ceff + p->cfg.ewma_alpha * (obs - ceff);
	p->cut_eff_n[i]++;
	if (cn == 0 || fabs(p->cut_eff[i] - ceff) > p->cfg.threshold * (ceff > 0.1 ? ceff : 0.1) ||
	    fabs(p->band_eff[bands] - eff) > p->cfg.threshold * (eff > 0.1 ? eff : 0.1))
		p->dirty = 1;
	return 0;
}

double plan_band_efficiency(const struct plan *p, int bands, int *samples)
{
	if (bands < 2 || bands > PLAN_MAX_BANDS) {
		if (samples)
			*samples = 0;
		return 1.0;
	}
	if (samples)
		*samples = p->band_eff_n[bands];
	return p->band_eff[bands];
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
	o->net_ms = in->rtt_ms + bits_ms(out_bytes, in->bandwidth_bps);
	o->remote_ms = p->peer_prefix[p->n] - p->peer_prefix[cut];

	if (enc == PLAN_ENC_INPUT) {	/* the image as received */
		if (cut != 0 || bands != 1 || in->input_bytes == 0)
			return -EINVAL;
		o->raw_bytes = o->wire_bytes = in->input_bytes;
		o->remote_ms += in->peer_decode_ms > 0 ? in->peer_decode_ms : 0;
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

int plan_enumerate(const struct plan *p, const struct plan_inputs *in,
		   struct plan_candidate **out, int *n_out, int *best)
{
	size_t cap = (size_t)(p->n + 1) * (PLAN_ENC_COUNT * (1 + 8) + 2);
	struct plan_candidate *v = calloc(cap, sizeof(*v));
	int n = 0, b = -1, any_slo = 0;

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
	for (int i = 0; i < n; i++)
		any_slo |= v[i].meets_slo;
	for (int i = 0; i < n; i++) {
		double oi, ob;
		int pol = p->cfg.policy;

		if (pol == PLAN_POLICY_ENERGY_SLO && !any_slo)
			pol = PLAN_POLICY_LATENCY;	/* unreachable: fastest */
		else if (pol == PLAN_POLICY_ENERGY_SLO && !v[i].meets_slo)
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
	*out = v;
	*n_out = n;
	*best = b;
	return 0;
}

/* Policy objective; SLO breakers are worse than any keeper. */
static double objective(const struct plan *p, const struct plan_candidate *c)
{
	switch (p->cfg.policy) {
	case PLAN_POLICY_LATENCY:
		return c->total_ms;
	case PLAN_POLICY_ENERGY:
		return c->energy_uj;
	case PLAN_POLICY_ENERGY_SLO:
	default:
		return c->meets_slo ? c->energy_uj : 1e30 + c->total_ms;
	}
}

static void take_snapshot(struct plan *p, const struct plan_inputs *in)
{
	p->snap.bandwidth_bps = in->bandwidth_bps;
	p->snap.rtt_ms = in->rtt_ms;
	p->snap.input_bytes = in->input_bytes;
	for (int i = 0; i < PLAN_PHASE_COUNT; i++)
		p->snap.power_mw[i] = plan_power_mw(p, i, NULL);
	memcpy(p->snap.local_ms, p->local_ms, (size_t)p->n * sizeof(double));
	memcpy(p->snap.peer_ms, p->peer_ms, (size_t)p->n * sizeof(double));
	p->dirty = 0;
}

static double rel(double now, double then, double floor)
{
	return fabs(now - then) / fmax(fabs(then), floor);
}

static double profile_move(const double *now, const double *then, int n)
{
	double d = 0, s = 0;

	for (int i = 0; i < n; i++) {
		d += fabs(now[i] - then[i]);
		s += then[i];
	}
	return d / fmax(s, 1e-3);
}

/* Append "what moved" to buf; returns the largest relative move. */
static double moved(const struct plan *p, const struct plan_inputs *in, char *buf, size_t len)
{
	const struct plan_snapshot *s = &p->snap;
	double m = 0, r;
	size_t off = 0;

#define NOTE(...) do { if (off < len) { int w_ = snprintf(buf + off, len - off, __VA_ARGS__); \
		if (w_ > 0) off += (size_t)w_; } } while (0)
	if (len)
		buf[0] = 0;
	r = rel(in->bandwidth_bps, s->bandwidth_bps, 1e3);
	if (r > p->cfg.threshold)
		NOTE("; bandwidth %.1f -> %.1f Mbit/s", s->bandwidth_bps / 1e6, in->bandwidth_bps / 1e6);
	m = fmax(m, r);
	r = rel(in->rtt_ms, s->rtt_ms, 1.0);
	if (r > p->cfg.threshold)
		NOTE("; rtt %.2f -> %.2f ms", s->rtt_ms, in->rtt_ms);
	m = fmax(m, r);
	r = rel((double)in->input_bytes, (double)s->input_bytes, 1024);
	if (r > p->cfg.threshold)
		NOTE("; input %zu -> %zu B", s->input_bytes, in->input_bytes);
	m = fmax(m, r);
	r = profile_move(p->local_ms, s->local_ms, p->n);
	if (r > p->cfg.threshold)
		NOTE("; robot profile moved %.0f%%", r * 100);
	m = fmax(m, r);
	r = profile_move(p->peer_ms, s->peer_ms, p->n);
	if (r > p->cfg.threshold)
		NOTE("; peer profile moved %.0f%%", r * 100);
	m = fmax(m, r);
	for (int i = 0; i < PLAN_PHASE_COUNT; i++) {
		static const char *const nm[PLAN_PHASE_COUNT] = { "compute", "tx", "wait" };
		double now = plan_power_mw(p, i, NULL);

		r = rel(now, s->power_mw[i], 1.0);
		if (r > p->cfg.threshold)
			NOTE("; P_%s %.0f -> %.0f mW", nm[i], s->power_mw[i], now);
		m = fmax(m, r);
	}
#undef NOTE
	return m;
}

void plan_describe(const struct plan_candidate *c, int n_nodes, char *buf, size_t len)
{
	if (c->cut == n_nodes)
		snprintf(buf, len, "all-local");
	else if (c->bands > 1)
		snprintf(buf, len, "cut %d %s x%d bands", c->cut, plan_enc_name(c->enc), c->bands);
	else
		snprintf(buf, len, "cut %d %s", c->cut, plan_enc_name(c->enc));
}

int plan_update(struct plan *p, const struct plan_inputs *in, int force,
		char *reason, size_t reasonlen)
{
	struct plan_candidate *v = NULL, now_cur;
	char what[256], a[64], b[64];
	int n, best, rc, cur_ok = 0;
	double mv, ob, oc;

	if (reasonlen)
		reason[0] = 0;
	if (!(in->bandwidth_bps > 0) || !(in->rtt_ms >= 0))
		return -EINVAL;
	if (p->have_current)
		cur_ok = plan_predict(p, in, p->cur.cut, p->cur.enc, p->cur.bands, &now_cur) == 0;
	mv = p->have_current ? moved(p, in, what, sizeof(what)) : 0;
	if (p->have_current && cur_ok) {
		p->cur = now_cur;	/* keep its prediction fresh */
		if (!force && !p->dirty && mv <= p->cfg.threshold && now_cur.meets_slo)
			return 0;
	}
	rc = plan_enumerate(p, in, &v, &n, &best);
	if (rc < 0)
		return rc;
	if (best < 0) {
		rc = -ENOENT;
		goto out;
	}
	take_snapshot(p, in);
	plan_describe(&v[best], p->n, b, sizeof(b));
	if (!p->have_current || !cur_ok) {
		if (reasonlen)
			snprintf(reason, reasonlen, "plan %s (%s): %.1f ms, %.1f mJ predicted%s",
				 b, plan_policy_name(p->cfg.policy), v[best].total_ms,
				 v[best].energy_uj / 1e3,
				 p->have_current ? "; previous plan no longer legal" : "");
		p->cur = v[best];
		p->have_current = 1;
		rc = 1;
		goto out;
	}
	if (v[best].cut == p->cur.cut && v[best].enc == p->cur.enc &&
	    v[best].bands == p->cur.bands) {
		rc = 0;
		goto out;
	}
	ob = objective(p, &v[best]);
	oc = objective(p, &p->cur);
	if (!(ob < oc * (1.0 - p->cfg.hysteresis))) {
		rc = 0;
		goto out;
	}
	plan_describe(&p->cur, p->n, a, sizeof(a));
	if (reasonlen) {
		int lat = p->cfg.policy == PLAN_POLICY_LATENCY ||
			  (p->cfg.policy == PLAN_POLICY_ENERGY_SLO && !p->cur.meets_slo);
		if (lat)
			snprintf(reason, reasonlen, "plan %s -> %s (%s): %.1f -> %.1f ms (%+.0f%%)%s%s",
				 a, b, plan_policy_name(p->cfg.policy), p->cur.total_ms,
				 v[best].total_ms,
				 100.0 * (v[best].total_ms / p->cur.total_ms - 1.0),
				 p->cur.meets_slo ? "" : ", old plan breaks the SLO", what);
		else
			snprintf(reason, reasonlen, "plan %s -> %s (%s): %.1f -> %.1f mJ (%+.0f%%)%s",
				 a, b, plan_policy_name(p->cfg.policy), p->cur.energy_uj / 1e3,
				 v[best].energy_uj / 1e3,
				 100.0 * (v[best].energy_uj / p->cur.energy_uj - 1.0), what);
	}
	p->cur = v[best];
	rc = 1;
out:
	free(v);
	return rc;
}

int plan_current(const struct plan *p, struct plan_candidate *out)
{
	if (!p->have_current)
		return -ENOENT;
	*out = p->cur;
	return 0;
}

const char *plan_policy_name(enum plan_policy pol)
{
	switch (pol) {
	case PLAN_POLICY_LATENCY: return "latency";
	case PLAN_POLICY_ENERGY: return "energy";
	case PLAN_POLICY_ENERGY_SLO: return "energy-slo";
	}
	return "?";
}

int plan_policy_parse(const char *s, enum plan_policy *out)
{
	if (!strcmp(s, "latency"))
		*out = PLAN_POLICY_LATENCY;
	else if (!strcmp(s, "energy"))
		*out = PLAN_POLICY_ENERGY;
	else if (!strcmp(s, "energy-slo") || !strcmp(s, "energy_slo") || !strcmp(s, "slo"))
		*out = PLAN_POLICY_ENERGY_SLO;
	else
		return -EINVAL;
	return 0;
}

const char *plan_enc_name(int enc)
{
	static const char *const fixed[PLAN_ENC_COUNT] = {
		"f32", "f32+zstd", "f32+lz4", "f16", "f16+zstd", "f16+lz4",
		"i8", "i8+zstd", "i8+lz4",
	};
	if (enc == PLAN_ENC_INPUT)
		return "input";
	if (enc == PLAN_ENC_LOCAL)
		return "local";
	if (enc < 0 || enc >= PLAN_ENC_COUNT)
		return "?";
	return fixed[enc];
}

int plan_enc_parse(const char *s, int *enc)
{
	for (int d = 0; d < PLAN_DTYPE_COUNT; d++)
		for (int c = 0; c < PLAN_CODEC_COUNT; c++) {
			char nm[16];

			snprintf(nm, sizeof(nm), "%s%s", dtype_names[d], codec_names[c]);
			if (!strcmp(s, nm)) {
				*enc = PLAN_ENC(d, c);
				return 0;
			}
		}
	if (!strcmp(s, "input") || !strcmp(s, "jpeg") || !strcmp(s, "png")) {
		*enc = PLAN_ENC_INPUT;
		return 0;
	}
	if (!strcmp(s, "local")) {
		*enc = PLAN_ENC_LOCAL;
		return 0;
	}
	return -EINVAL;
}
