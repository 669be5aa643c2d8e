/* What the planner learns from the requests the pipeline runs (pipe_learn
 * is the one place a request's measurements reach it; pipe_plan.c hands
 * them to plan/), the link exploration of an idle link and the peer's
 * calibration. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pipeline-impl.h"

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

/* Average power of the request rail over [t0, t1], when it spans at least
 * two sample periods (shorter windows only repeat one sample). */
static int window_power_mw(struct pipeline *p, uint64_t t0, uint64_t t1, double *mw)
{
	struct power_snapshot snap;
	struct power_window w;

	if (!p->power || t1 <= t0 || (int64_t)(t1 - t0) < 2 * power_sample_period_ns(p->power))
		return -ENODATA;
	int rail = power_input_rail(p->power);
	if (rail < 0) {
		if (power_snapshot(p->power, &snap) < 0 || snap.request_rail < 0)
			return -ENODATA;
		rail = snap.request_rail;
	}
	if (power_energy(p->power, rail, (int64_t)t0, (int64_t)t1, &w) < 0)
		return -ENODATA;
	*mw = (double)w.avg_power_mw;
	return 0;
}

/* The link's samples: the peer client's health probes (bodyless round
 * trips) and an unbanded offload's transfer. A banded request's upload
 * waits on the robot's compute: no link sample. */
static void learn_link(struct pipe_model *m, const struct pipe_v1 *v)
{
	struct pipeline *p = m->pipe;
	struct peer_client_stats st;

	if (m->link.ops) {
		m->link.ops->stats(m->link.ctx, &st);
		pthread_mutex_lock(&p->link_lock);
		if (st.probes != m->probes_seen && st.last_probe_rtt_ns > 0) {
			struct linkest_sample s = { .now_ns = link_now_ns(), .ttfb_ns = (uint64_t)st.last_probe_rtt_ns };
			linkest_observe(p->link, &s);
		}
		m->probes_seen = st.probes;
		pthread_mutex_unlock(&p->link_lock);
	}
	if (!v->offloaded || v->bands != 1)
		return;
	const struct peer_transfer *x = &v->of.reply.xfer;
	const struct peer_timing *pt = &v->of.reply.resp.timing;
	struct linkest_sample s = {
		.now_ns = link_now_ns(), .bytes_up = x->bytes_up,
		.connect_ns = (uint64_t)(x->connect_ns > 0 ? x->connect_ns : 0),
		.upload_ns = (uint64_t)(x->upload_ns > 0 ? x->upload_ns : 0),
		.ttfb_ns = (uint64_t)(x->ttfb_ns > 0 ? x->ttfb_ns : 0),
		.server_ns = (uint64_t)(pt->total_ns > 0 ? pt->total_ns : 0),
		.tcp_rtt_ns = (uint64_t)(x->tcp_min_rtt_ns > 0 ? x->tcp_min_rtt_ns : 0),
	};
	pthread_mutex_lock(&p->link_lock);
	int lr = linkest_observe(p->link, &s);
	pthread_mutex_unlock(&p->link_lock);
	if (lr < 0)
		log_debug("link sample ignored: %zu bytes, upload %.3f ms, ttfb %.3f ms, peer %.3f ms",
			  s.bytes_up, ms(s.upload_ns), ms(s.ttfb_ns), ms(s.server_ns));
}

/* Times, ratios and decode costs (the local time of a banded request
 * includes the encoding of every band), and the robot's power in each
 * phase, from the sampler. */
static void learn_run(struct pipe_model *m, const struct pipe_v1 *v, size_t image_bytes,
		      struct plan_run *run)
{
	struct pipeline *p = m->pipe;
	double pw;

	plan_run_init(run, v->cut, v->enc, v->bands);
	run->offloaded = v->offloaded;
	if (v->cut > 0 && v->bands == 1)
		run->local_ms = ms(v->t_local1 - v->t_local0);
	if (v->offloaded && v->bands > 1)
		run->banded_ms = ms(v->decode_ns) + ms(v->t_end - v->t_local0);
	if (v->offloaded) {
		const struct peer_timing *pt = &v->of.reply.resp.timing;
		run->peer_compute_ms = pt->compute_ns > 0 ? ms((uint64_t)pt->compute_ns) : -1;
		run->peer_decode_ms = pt->decode_ns > 0 ? ms((uint64_t)pt->decode_ns) : -1;
		run->raw_bytes = v->of.raw_bytes;
		run->wire_bytes = v->of.wire_bytes;
		/* the way back, when it came the model's usual way (a
		 * detector's raw outputs, ?outputs=raw, are no prediction) */
		if (m->detects == (v->of.post.kind[0] != 0))
			run->reply_bytes = v->of.reply.len;
	}
	if (v->decoded)
		run->decode_ms = ms(v->decode_ns);
	run->image_bytes = image_bytes;
	if (v->cut > 0 && window_power_mw(p, v->t_local0, v->t_local1, &pw) == 0)
		run->power_mw[PLAN_PHASE_COMPUTE] = pw;
	if (v->offloaded && v->bands == 1) {
		const struct peer_transfer *x = &v->of.reply.xfer;
		uint64_t up = v->of.send_ns + (uint64_t)(x->upload_ns > 0 ? x->upload_ns : 0);
		uint64_t fb = v->of.send_ns + (uint64_t)(x->ttfb_ns > 0 ? x->ttfb_ns : 0);
		if (window_power_mw(p, v->of.send_ns, up, &pw) == 0)
			run->power_mw[PLAN_PHASE_TX] = pw;
		if (window_power_mw(p, up, fb, &pw) == 0)
			run->power_mw[PLAN_PHASE_WAIT] = pw;
	}
}

/* What the planner learns from one request, then a re-plan (and the
 * learnt state written when due). Everything it reads is the worker's own
 * (v) or copied out of the request before its answer went back (the
 * request is the caller's from then on): image_bytes is the received
 * JPEG/PNG's size, 0 for a tensor. */
void pipe_learn(const struct pipe_v1 *v, size_t image_bytes)
{
	struct pipe_model *m = v->m;
	struct plan_run run;

	if (!m->plan)
		return;
	learn_link(m, v);
	learn_run(m, v, image_bytes, &run);
	pipe_plan_learn(m, &run);
}

/* The link's goodput is learnt from offload transfers of at least the
 * estimator's min_bytes; with an all-local plan (or only tiny cuts) none
 * come, and a plan that left the link would never come back. So when the
 * estimator says a probe is due (no goodput sample for planner.probe_idle_ms),
 * this request runs at the best offload candidate that sends at least
 * min_bytes: a real request of real size, answered as any other, that costs
 * its user at most the predicted difference once per idle period. */
int pipe_explore(struct pipe_model *m, bool image, struct plan_candidate *pick)
{
	struct pipeline *p = m->pipe;
	struct linkest_config lc;
	struct plan_candidate *v = NULL;
	struct plan_inputs in;
	int n = 0, best = -1, big = -1, any = -1, due;

	if (!m->link.ops || !m->calibrated || m->link.ops->probe(m->link.ctx) != PEER_UP)
		return 0;
	pthread_mutex_lock(&p->link_lock);
	due = linkest_probe_due(p->link, link_now_ns());
	pthread_mutex_unlock(&p->link_lock);
	if (!due)
		return 0;
	linkest_config_defaults(&lc);
	pthread_mutex_lock(&m->lock);
	pipe_plan_inputs(m, &in);
	if (!image)
		in.input_bytes = 0;
	int r = plan_enumerate(m->plan, &in, &v, &n, &best);
	pthread_mutex_unlock(&m->lock);
	if (r < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		if (v[i].enc == PLAN_ENC_LOCAL || v[i].bands != 1)
			continue;
		if (any < 0 || v[i].total_ms < v[any].total_ms)
			any = i;
		if (v[i].wire_bytes >= lc.min_bytes && (big < 0 || v[i].total_ms < v[big].total_ms))
			big = i;
	}
	if (big < 0)
		big = any;
	if (big >= 0)
		*pick = v[big];
	free(v);
	return big >= 0;
}

/* The policy's best candidate for a request without a received image (a
 * tensor): the plan is one for every request, and its "cut 0 input" sends
 * the JPEG/PNG as received, which a tensor request does not have. A raw
 * frame that can be made into a PNG (png_bytes > 0) has that option
 * instead, with its own size and the time to encode it. */
void pipe_tensor_candidate(struct pipe_model *m, size_t png_bytes, double png_ms, struct plan_candidate *pick)
{
	struct plan_candidate *v = NULL;
	struct plan_inputs in;
	int n = 0, best = -1, r;

	pthread_mutex_lock(&m->lock);
	pipe_plan_inputs(m, &in);
	in.input_bytes = png_bytes;	/* 0: no "cut 0 input" candidate */
	in.input_encode_ms = png_ms;
	r = plan_enumerate(m->plan, &in, &v, &n, &best);
	pthread_mutex_unlock(&m->lock);
	*pick = (struct plan_candidate){ .cut = m->n_nodes, .enc = PLAN_ENC_LOCAL, .bands = 1 };
	if (r == 0 && best >= 0 && best < n && (png_bytes || v[best].enc != PLAN_ENC_INPUT))
		*pick = v[best];
	free(v);
}

/* Measure the peer's time for the whole model once: send a zero input at
 * cut 0 and take its compute time as the scale of its per-node profile. */
int pipe_calibrate(struct pipe_model *m, int worker)
{
	struct engine_ctx *ctx = m->wctx[worker];
	struct engine_value_info vi;
	struct tensor_view v;
	struct pipe_offload of = { 0 };
	char err[PIPE_ERRLEN];
	void *zero;
	int r;

	if (!m->link.ops || m->api.n_inputs < 1 || engine_input_info(m->eng, 0, &vi) < 0)
		return -EINVAL;
	if (!(zero = calloc(1, vi.bytes ? vi.bytes : 1)))
		return -ENOMEM;
	v.dtype = vi.dtype;
	v.ndim = vi.ndim;
	memcpy(v.shape, vi.shape, sizeof(v.shape));
	v.data = zero;
	r = engine_ctx_set(ctx, vi.name, &v, err, sizeof(err));
	if (r == 0)
		r = pipe_split_send(m, ctx, 0, PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_NONE), "calibrate", &of,
				    err, sizeof(err));
	free(zero);
	if (r < 0) {
		log_info("model %s: peer calibration failed: %s", m->name, err);
		return r;
	}
	if (of.reply.resp.timing.compute_ns > 0)
		pipe_plan_calibrated(m, ms((uint64_t)of.reply.resp.timing.compute_ns));
	peer_reply_fini(&of.reply);
	return 0;
}
