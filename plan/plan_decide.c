/* The planner's decision: the stateful choice with re-plan threshold and
 * hysteresis (plan_update), the stateless one for a policy (plan_choose),
 * and the names of policies and encodings. */
#include "plan-impl.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const dtype_names[PLAN_DTYPE_COUNT] = { "f32", "f16", "i8" };
static const char *const codec_names[PLAN_CODEC_COUNT] = { "", "+zstd", "+lz4" };

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
	p->snap.output_bytes = in->output_bytes;
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
	r = rel((double)in->output_bytes, (double)s->output_bytes, 1024);
	if (r > p->cfg.threshold)
		NOTE("; return %zu -> %zu B", s->output_bytes, in->output_bytes);
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

int plan_choose(const struct plan *p, const struct plan_inputs *in, enum plan_policy pol,
		double slo_ms, struct plan_candidate *out)
{
	struct plan_candidate *v = NULL;
	int n, best, rc;

	if (pol < PLAN_POLICY_LATENCY || pol > PLAN_POLICY_ENERGY_SLO ||
	    (pol == PLAN_POLICY_ENERGY_SLO && !(slo_ms > 0)))
		return -EINVAL;
	if ((rc = plan_enumerate(p, in, &v, &n, &best)) < 0)
		return rc;
	/* the SLO of this choice, not the configured one */
	for (int i = 0; i < n; i++)
		v[i].meets_slo = pol != PLAN_POLICY_ENERGY_SLO || v[i].total_ms <= slo_ms;
	best = plan_pick_best(v, n, pol);
	if (best < 0)
		rc = -ENOENT;
	else
		*out = v[best];
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

