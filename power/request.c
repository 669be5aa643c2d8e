/* Per-request energy on the request rail and the idle baseline.
 *
 * A request's energy is the integral over its window of P(t) / n(t), n(t)
 * being the requests running at t: overlapping requests share each
 * instant's power equally, and the shares of all requests add up to the
 * rail's energy over the union of their windows. n(t) only changes at a
 * request's begin or end, so the integral is a sum of rail energies over
 * the pieces between those events, each divided by its count. Ended
 * requests stay in the table while a running one overlaps them. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "power-impl.h"

#define MAX_REQUESTS 4096
#define IDLE_VALID_S 0.5 /* idle time measured before a baseline is used */

bool power_requests_active_since(struct power_sampler *s, int64_t t_ns)
{
	for (size_t i = 0; i < s->n_reqs; i++)
		if (!s->reqs[i].ended || s->reqs[i].end_ns > t_ns)
			return true;
	return s->last_req_end_ns > t_ns;
}

void power_idle_update(struct power_sampler *s, int64_t t0, int64_t t1,
		       double e_uj)
{
	double dt_s = (double)(t1 - t0) / 1e9, tau_s, p, alpha;

	if (s->cfg.idle_fixed_mw >= 0 || t1 <= t0)
		return;
	if (power_requests_active_since(s, t0))
		return;
	tau_s = (double)s->cfg.idle_tau_ms / 1000.0;
	if (tau_s <= 0)
		tau_s = 1e-3;
	p = e_uj * 1e6 / (double)(t1 - t0);
	/* a running mean until tau has been seen, then an EWMA of time
	 * constant tau: the baseline settles fast, then moves slowly */
	s->idle_weight_s += dt_s;
	if (s->idle_weight_s > tau_s)
		s->idle_weight_s = tau_s;
	alpha = dt_s / s->idle_weight_s;
	if (alpha > 1)
		alpha = 1;
	s->idle_mw += alpha * (p - s->idle_mw);
	if (s->idle_weight_s >= (tau_s < IDLE_VALID_S ? tau_s : IDLE_VALID_S))
		s->idle_valid = true;
}

int power_request_begin_at(struct power_sampler *s, int64_t t_ns, uint64_t *id)
{
	struct req_slot *r;

	if (!s || !id)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (s->n_reqs == s->cap_reqs) {
		size_t cap = s->cap_reqs ? s->cap_reqs * 2 : 16;
		struct req_slot *n;

		if (cap > MAX_REQUESTS) {
			pthread_mutex_unlock(&s->mu);
			return -ENOSPC;
		}
		n = realloc(s->reqs, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&s->mu);
			return -ENOMEM;
		}
		s->reqs = n;
		s->cap_reqs = cap;
	}
	r = &s->reqs[s->n_reqs++];
	r->id = ++s->next_id;
	r->begin_ns = t_ns;
	r->end_ns = INT64_MAX;
	r->ended = false;
	*id = r->id;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

int power_request_begin(struct power_sampler *s, uint64_t *id)
{
	if (!s)
		return -EINVAL;
	return power_request_begin_at(s, power_now_ns(s), id);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Drops ended requests that no running request overlaps (s->mu held). */
static void prune(struct power_sampler *s)
{
	int64_t min_begin = INT64_MAX;
	size_t k = 0;

	for (size_t i = 0; i < s->n_reqs; i++)
		if (!s->reqs[i].ended && s->reqs[i].begin_ns < min_begin)
			min_begin = s->reqs[i].begin_ns;
	for (size_t i = 0; i < s->n_reqs; i++)
		if (!s->reqs[i].ended || s->reqs[i].end_ns > min_begin)
			s->reqs[k++] = s->reqs[i];
	s->n_reqs = k;
}

static void wait_for_sample(struct power_sampler *s, int64_t t_end, int wait_ms)
{
	struct timespec ts;
	int64_t deadline;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec +
		   (int64_t)wait_ms * 1000000;
	ts.tv_sec = deadline / 1000000000LL;
	ts.tv_nsec = deadline % 1000000000LL;
	while (s->running) {
		size_t newest = (s->head + s->cap - 1) % s->cap;

		if (s->count > 0 && s->t_ns[newest] >= t_end)
			return;
		if (pthread_cond_timedwait(&s->sampled, &s->mu, &ts) == ETIMEDOUT)
			return;
	}
}

/* The share of the request [b, e] (s->mu held). */
static int share(struct power_sampler *s, int rail, int64_t b, int64_t e,
		 struct power_request *out)
{
	int64_t *ev;
	size_t n_ev = 0;
	double total = 0, above = 0;
	int rc = 0;

	ev = malloc((2 * s->n_reqs + 2) * sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev[n_ev++] = b;
	ev[n_ev++] = e;
	for (size_t i = 0; i < s->n_reqs; i++) {
		const struct req_slot *q = &s->reqs[i];

		if (q->begin_ns > b && q->begin_ns < e)
			ev[n_ev++] = q->begin_ns;
		if (q->end_ns > b && q->end_ns < e)
			ev[n_ev++] = q->end_ns;
	}
	qsort(ev, n_ev, sizeof(*ev), cmp_i64);
	for (size_t i = 0; i + 1 < n_ev && rc == 0; i++) {
		double e0, e1;
		int64_t x0, x1;
		unsigned running = 0;

		if (ev[i + 1] == ev[i])
			continue;
		for (size_t k = 0; k < s->n_reqs; k++)
			running += s->reqs[k].begin_ns <= ev[i] &&
				   s->reqs[k].end_ns > ev[i];
		if (running == 0)
			running = 1; /* cannot happen: this request runs */
		rc = ring_energy_at(s, rail, ev[i], true, &e0, &x0);
		if (rc == 0)
			rc = ring_energy_at(s, rail, ev[i + 1], true, &e1, &x1);
		if (rc < 0)
			break;
		if (x1 > out->tail_extrapolated_ns)
			out->tail_extrapolated_ns = x1;
		if (running > out->sharing_max)
			out->sharing_max = running;
		total += (e1 - e0) / running;
		above += (e1 - e0 - s->idle_mw * (double)(ev[i + 1] - ev[i]) / 1e6) /
			 running;
	}
	free(ev);
	if (rc < 0)
		return rc;
	out->energy_uj = llround(total);
	if (s->idle_valid) {
		out->has_idle = true;
		out->idle_mw = llround(s->idle_mw);
		out->energy_above_idle_uj = llround(above);
	}
	{
		unsigned gaps;

		ring_count(s, rail, b, e, &out->samples, &gaps);
	}
	return 0;
}

int power_request_end_at(struct power_sampler *s, uint64_t id, int64_t t_ns,
			 int wait_ms, struct power_request *out)
{
	struct req_slot *q = NULL;
	int rail, rc;

	if (!s || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->n_reqs; i++)
		if (s->reqs[i].id == id && !s->reqs[i].ended)
			q = &s->reqs[i];
	if (!q) {
		pthread_mutex_unlock(&s->mu);
		return -ENOENT;
	}
	if (t_ns < q->begin_ns)
		t_ns = q->begin_ns;
	q->end_ns = t_ns;
	q->ended = true;
	if (t_ns > s->last_req_end_ns)
		s->last_req_end_ns = t_ns;
	out->begin_ns = q->begin_ns;
	out->end_ns = t_ns;
	out->sample_hz = 1e9 / (double)s->period_ns;
	rail = s->request_rail;
	if (rail < 0) {
		out->reason = "no board input rail: the board has no total "
			      "(set power.request_rail)";
		rc = -ENODATA;
		goto out;
	}
	snprintf(out->rail, sizeof(out->rail), "%s", s->rails[rail].info.name);
	out->method = s->rails[rail].info.method;
	if (wait_ms > 0)
		wait_for_sample(s, t_ns, wait_ms);
	rc = share(s, rail, out->begin_ns, t_ns, out);
	if (rc == -ERANGE)
		out->reason = "the request window is not in the sample buffer";
	else if (rc == -ENODATA)
		out->reason = "the request rail has no valid sample";
	else if (rc < 0)
		out->reason = "out of memory";
out:
	prune(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int power_request_end(struct power_sampler *s, uint64_t id, int wait_ms,
		      struct power_request *out)
{
	if (!s)
		return -EINVAL;
	return power_request_end_at(s, id, power_now_ns(s), wait_ms, out);
}
