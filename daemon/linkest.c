/* Goodput and RTT estimator; see linkest.h. */
#include "linkest.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct linkest {
	struct linkest_config cfg;
	double bytes_avg, time_avg_ns;	/* goodput = bytes_avg * 8 / time_avg */
	double rtt_ms;
	double bandwidth_bps;
	uint64_t n_goodput, n_rtt;
	uint64_t last_ns;		/* last sample or probe request */
};

void linkest_config_defaults(struct linkest_config *c)
{
	c->alpha = 0.25;
	c->min_bytes = 16 * 1024;
	c->idle_probe_ns = 5ull * 1000000000ull;
	c->initial_bandwidth_bps = 100e6;
	c->initial_rtt_ms = 2.0;
}

int linkest_new(const struct linkest_config *c, struct linkest **out)
{
	struct linkest *l;

	*out = NULL;
	if (!c || !(c->alpha > 0) || c->alpha > 1 || !(c->initial_bandwidth_bps > 0) ||
	    !(c->initial_rtt_ms >= 0))
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->cfg = *c;
	l->bandwidth_bps = c->initial_bandwidth_bps;
	l->rtt_ms = c->initial_rtt_ms;
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

int linkest_observe(struct linkest *l, const struct linkest_sample *s)
{
	double rtt_ns = l->rtt_ms * 1e6, t_ns;

	if (s->ttfb_ns == 0 || s->ttfb_ns < s->upload_ns || s->ttfb_ns < s->server_ns)
		return -EINVAL;
	l->last_ns = s->now_ns > l->last_ns ? s->now_ns : l->last_ns;
	if (s->connect_ns > 0) {
		ewma(&l->rtt_ms, (double)s->connect_ns / 1e6, l->cfg.alpha, l->n_rtt);
		l->n_rtt++;
	}
	if (s->bytes_up < l->cfg.min_bytes) {
		/* a small request: what is left after the peer's time and the
		 * body's serialisation at the current goodput is one round trip */
		double body_ns = (double)s->bytes_up * 8.0 / l->bandwidth_bps * 1e9;
		double r = (double)(s->ttfb_ns - s->server_ns) - body_ns;

		if (r > 0) {
			ewma(&l->rtt_ms, r / 1e6, l->cfg.alpha, l->n_rtt);
			l->n_rtt++;
		}
		return 0;
	}
	t_ns = (double)(s->ttfb_ns - s->server_ns) - rtt_ns;
	if (t_ns < (double)s->upload_ns)
		t_ns = (double)s->upload_ns;
	if (!(t_ns > 0))
		return -EINVAL;
	ewma(&l->bytes_avg, (double)s->bytes_up, l->cfg.alpha, l->n_goodput);
	ewma(&l->time_avg_ns, t_ns, l->cfg.alpha, l->n_goodput);
	l->n_goodput++;
	l->bandwidth_bps = l->bytes_avg * 8.0 / (l->time_avg_ns / 1e9);
	return 0;
}

void linkest_get(const struct linkest *l, struct linkest_estimate *o)
{
	o->bandwidth_bps = l->bandwidth_bps;
	o->rtt_ms = l->rtt_ms;
	o->goodput_samples = l->n_goodput;
	o->rtt_samples = l->n_rtt;
	o->measured = l->n_goodput > 0;
}

int linkest_probe_due(struct linkest *l, uint64_t now_ns)
{
	if (l->cfg.idle_probe_ns == 0 || now_ns < l->last_ns + l->cfg.idle_probe_ns)
		return 0;
	l->last_ns = now_ns;
	return 1;
}
