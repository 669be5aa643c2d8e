/* What the planner learns from measured runs: per-segment profiles, phase
 * powers, compression ratios, banded efficiencies, and the request facts
 * (decode times, the received image's size); plan_learn takes one served
 * request's measurements and feeds each of them. */
#include "plan-impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
	plan_refresh(p);
	p->generation++;
	return 0;
}

int plan_observe_local(struct plan *p, int first, int last, double measured_ms)
{
	return observe_segment(p, p->local_ms, first, last, measured_ms);
}

int plan_observe_remote(struct plan *p, int first, int last, double measured_ms)
{
	int rc = observe_segment(p, p->peer_ms, first, last, measured_ms);

	if (rc == 0)
		p->peer_known = 1;
	return rc;
}

int plan_set_peer_profile(struct plan *p, const double *node_ms, int n)
{
	if (n != p->n || !plan_profile_valid(node_ms, n))
		return -EINVAL;
	memcpy(p->peer_ms, node_ms, (size_t)n * sizeof(double));
	plan_refresh(p);
	p->peer_known = 1;
	p->generation++;
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
	p->generation++;
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
	p->generation++;
	return 0;
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
	p->generation++;
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


static double ewma(double alpha, double old, double v)
{
	return old <= 0 ? v : old + alpha * (v - old);
}

void plan_run_init(struct plan_run *r, int cut, int enc, int bands)
{
	*r = (struct plan_run){ .cut = cut, .enc = enc, .bands = bands,
				.local_ms = -1, .banded_ms = -1, .peer_compute_ms = -1,
				.peer_decode_ms = -1, .decode_ms = -1 };
	for (int i = 0; i < PLAN_PHASE_COUNT; i++)
		r->power_mw[i] = -1;
}

/* The segment times, the banded efficiency and the encoding's ratio. */
static void learn_times(struct plan *p, const struct plan_inputs *in, const struct plan_run *r)
{
	if (r->cut > 0 && r->bands == 1 && r->local_ms >= 0)
		plan_observe_local(p, 0, r->cut, r->local_ms);
	if (r->offloaded && r->bands > 1 && r->banded_ms >= 0)
		plan_observe_banded(p, in, r->cut, r->enc, r->bands, r->banded_ms);
	if (!r->offloaded)
		return;
	if (r->peer_compute_ms > 0)
		plan_observe_remote(p, r->cut, p->n, r->peer_compute_ms);
	if (r->cut == 0 && r->enc == PLAN_ENC_INPUT && r->peer_decode_ms > 0)
		p->peer_decode_ms = ewma(p->cfg.ewma_alpha, p->peer_decode_ms, r->peer_decode_ms);
	if (r->enc >= 0 && r->enc < PLAN_ENC_COUNT && r->raw_bytes)
		plan_observe_ratio(p, r->cut, r->enc, r->raw_bytes, r->wire_bytes);
}

int plan_learn(struct plan *p, const struct plan_inputs *in, const struct plan_run *r)
{
	if (!p || !in || !r || r->cut < 0 || r->cut > p->n || r->bands < 1 || r->bands > PLAN_MAX_BANDS)
		return -EINVAL;
	learn_times(p, in, r);
	if (r->decode_ms >= 0 && isfinite(r->decode_ms))
		p->decode_ms = ewma(p->cfg.ewma_alpha, p->decode_ms, r->decode_ms);
	if (r->image_bytes)
		p->input_bytes = r->image_bytes;
	if (r->offloaded && r->reply_bytes)
		p->reply_bytes = p->reply_bytes > 0 ? ewma(p->cfg.ewma_alpha, p->reply_bytes, (double)r->reply_bytes)
						    : (double)r->reply_bytes;
	for (int ph = 0; ph < PLAN_PHASE_COUNT; ph++)
		if (r->power_mw[ph] >= 0)
			plan_observe_power(p, (enum plan_power_phase)ph, r->power_mw[ph]);
	p->runs++;
	p->generation++;
	return 0;
}

void plan_request_facts(const struct plan *p, struct plan_inputs *in)
{
	in->input_bytes = p->input_bytes;
	if (p->reply_bytes > 0)
		in->output_bytes = (size_t)llround(p->reply_bytes);
	in->decode_ms = p->decode_ms;
	/* the peer's decode, learnt from its k = 0 answers; until then ours
	 * scaled by the peer's speed from the calibration */
	in->peer_decode_ms = p->peer_decode_ms > 0 ? p->peer_decode_ms
			     : p->peer_speed > 0 && p->peer_speed < 1 ? p->decode_ms * p->peer_speed
			     : p->decode_ms;
}

int plan_calibrate_peer(struct plan *p, double whole_ms)
{
	double total = 0, f;

	for (int i = 0; i < p->n; i++)
		total += p->profile_ms[i];
	if (!(whole_ms > 0) || !isfinite(whole_ms) || !(total > 0))
		return -EINVAL;
	f = whole_ms / total;
	for (int i = 0; i < p->n; i++)
		p->peer_ms[i] = p->profile_ms[i] * f;
	plan_refresh(p);
	p->peer_speed = f;
	p->peer_known = 1;
	p->generation++;
	return 0;
}

double plan_peer_speed(const struct plan *p)
{
	return p->peer_speed;
}

void plan_note_link(struct plan *p, double bandwidth_bps, double rtt_ms)
{
	if (bandwidth_bps > 0 && isfinite(bandwidth_bps) && bandwidth_bps != p->link_bandwidth_bps) {
		p->link_bandwidth_bps = bandwidth_bps;
		p->generation++;
	}
	if (rtt_ms >= 0 && isfinite(rtt_ms) && rtt_ms != p->link_rtt_ms) {
		p->link_rtt_ms = rtt_ms;
		p->generation++;
	}
}

int plan_link_bandwidth(const struct plan *p, double *bandwidth_bps)
{
	if (!(p->link_bandwidth_bps > 0))
		return -ENOENT;
	*bandwidth_bps = p->link_bandwidth_bps;
	return 0;
}

int plan_link_rtt(const struct plan *p, double *rtt_ms)
{
	if (!(p->link_rtt_ms >= 0))
		return -ENOENT;
	*rtt_ms = p->link_rtt_ms;
	return 0;
}

uint64_t plan_generation(const struct plan *p)
{
	return p->generation;
}

uint64_t plan_runs_learnt(const struct plan *p)
{
	return p->runs;
}
