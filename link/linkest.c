/* Goodput and RTT estimator; see linkest.h. */
#include "linkest.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define RTT_RING 32

struct rtt_sample {
	double ms;
	uint64_t t_ns;
};

struct linkest {
	struct linkest_config cfg;
	double bytes_avg, time_avg_ns;	/* goodput = bytes_avg * 8 / time_avg */
	double bandwidth_bps;
	struct rtt_sample rtt[RTT_RING];	/* ring of RTT samples */
	int rtt_head, rtt_len;
	uint64_t rtt_newest_ns;
	uint64_t n_goodput, n_rtt;
	uint64_t n_goodput_run;		/* samples since the average (re)started */
	uint64_t last_ns;		/* last goodput sample or probe request */
	uint64_t last_sample_ns;	/* last goodput sample */
};

void linkest_config_defaults(struct linkest_config *c)
{
	c->alpha = 0.25;
	c->min_bytes = 4 * 1024;
	c->rtt_probe_bytes = 2048;
	c->rtt_window_ns = 10ull * 1000000000ull;
	c->idle_probe_ns = 5ull * 1000000000ull;
	c->initial_bandwidth_bps = 100e6;
	c->initial_rtt_ms = 2.0;
	c->max_bandwidth_bps = 100e9;
}

int linkest_new(const struct linkest_config *c, struct linkest **out)
{
	struct linkest *l;

	*out = NULL;
	if (!c || !(c->alpha > 0) || c->alpha > 1 || !(c->initial_bandwidth_bps > 0) ||
	    !(c->initial_rtt_ms >= 0) || !(c->max_bandwidth_bps > 0))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cfg = *c;
	l->bandwidth_bps = c->initial_bandwidth_bps;
	*out = l;
	return 0;
}

void linkest_free(struct linkest *l)
{
	free(l);
}

static void ewma(double *avg, double x, double alpha, uint64_t n)
{
	*avg = n == 0 ? x : *avg + alpha * (x - *avg);
}

static void rtt_add(struct linkest *l, double ms, uint64_t t_ns)
{
	l->rtt[l->rtt_head] = (struct rtt_sample){ ms, t_ns };
	l->rtt_head = (l->rtt_head + 1) % RTT_RING;
	if (l->rtt_len < RTT_RING)
		l->rtt_len++;
	if (t_ns > l->rtt_newest_ns)
		l->rtt_newest_ns = t_ns;
	l->n_rtt++;
}

/* The smallest RTT sample of the window ending at the newest sample: queueing
 * and scheduling delays only ever add to a round trip, never take from it. */
static double rtt_min_ms(const struct linkest *l)
{
	double best = -1;

	if (l->rtt_len == 0)
		return l->cfg.initial_rtt_ms;
	for (int i = 0; i < l->rtt_len; i++) {
		const struct rtt_sample *s = &l->rtt[i];

		if (l->cfg.rtt_window_ns && s->t_ns + l->cfg.rtt_window_ns < l->rtt_newest_ns)
			continue;
		if (best < 0 || s->ms < best)
			best = s->ms;
	}
	return best;
}

int linkest_observe(struct linkest *l, const struct linkest_sample *s)
{
	double wire_ns, t_ns, rtt_ns;

	if (s->ttfb_ns == 0 || s->ttfb_ns < s->upload_ns || s->ttfb_ns < s->server_ns)
		return -EINVAL;
	if (s->connect_ns > 0)
		rtt_add(l, (double)s->connect_ns / 1e6, s->now_ns);
	if (s->tcp_rtt_ns > 0)
		rtt_add(l, (double)s->tcp_rtt_ns / 1e6, s->now_ns);
	/* what the network took: everything but the peer's own time */
	wire_ns = (double)(s->ttfb_ns - s->server_ns);
	if (s->bytes_up <= l->cfg.rtt_probe_bytes) {
		/* a bodyless or small request is one round trip (its body's
		 * serialisation is at most rtt_probe_bytes: not subtracted, so
		 * the goodput estimate cannot feed back into the RTT) */
		if (wire_ns > 0)
			rtt_add(l, wire_ns / 1e6, s->now_ns);
		return 0;
	}
	if (s->bytes_up < l->cfg.min_bytes)
		return 0;
	rtt_ns = rtt_min_ms(l) * 1e6;
	t_ns = wire_ns - rtt_ns;
	/* sanity: the RTT never explains more than 3/4 of the time on the
	 * wire, and the last byte handed to the socket bounds it from below */
	if (t_ns < 0.25 * wire_ns)
		t_ns = 0.25 * wire_ns;
	if (t_ns < (double)s->upload_ns)
		t_ns = (double)s->upload_ns;
	if (t_ns < (double)s->bytes_up * 8.0 / l->cfg.max_bandwidth_bps * 1e9)
		t_ns = (double)s->bytes_up * 8.0 / l->cfg.max_bandwidth_bps * 1e9;
	if (!(t_ns > 0))
		return -EINVAL;
	/* A sample after an idle period (the plan left the link, or sent only
	 * tiny cuts) starts the average afresh: what the link did before the
	 * pause says little about now, and an EWMA would take many samples to
	 * forget it — the plan could not follow a rate that changed meanwhile. */
	if (l->n_goodput > 0 && l->cfg.idle_probe_ns && s->now_ns > l->last_sample_ns + l->cfg.idle_probe_ns)
		l->n_goodput_run = 0;
	l->last_ns = s->now_ns > l->last_ns ? s->now_ns : l->last_ns;
	l->last_sample_ns = s->now_ns > l->last_sample_ns ? s->now_ns : l->last_sample_ns;
	ewma(&l->bytes_avg, (double)s->bytes_up, l->cfg.alpha, l->n_goodput_run);
	ewma(&l->time_avg_ns, t_ns, l->cfg.alpha, l->n_goodput_run);
	l->n_goodput++;
	l->n_goodput_run++;
	l->bandwidth_bps = l->bytes_avg * 8.0 / (l->time_avg_ns / 1e9);
	return 0;
}

void linkest_get(const struct linkest *l, struct linkest_estimate *o)
{
	o->bandwidth_bps = l->bandwidth_bps;
	o->rtt_ms = rtt_min_ms(l);
	o->goodput_samples = l->n_goodput;
	o->rtt_samples = l->n_rtt;
	o->measured = l->n_goodput > 0;
}

void linkest_set_idle_probe(struct linkest *l, uint64_t idle_probe_ns)
{
	l->cfg.idle_probe_ns = idle_probe_ns;
}

uint64_t linkest_idle_probe_ns(const struct linkest *l)
{
	return l->cfg.idle_probe_ns;
}

int linkest_probe_due(struct linkest *l, uint64_t now_ns)
{
	if (l->cfg.idle_probe_ns == 0 || now_ns < l->last_ns + l->cfg.idle_probe_ns)
		return 0;
	l->last_ns = now_ns;
	return 1;
}
