/* One v1 inference on the robot, on a worker thread:
 *   choose (cut, encoding, bands) → the input in ctx → nodes [0, k) here
 *   (pipe_local.c) → the cut to the peer (pipe_split.c, pipe_banded.c,
 *   pipe_image.c), which runs [k, N) → the answer with timing and energy
 *   (pipeline_report.c); any peer failure runs [k, N) here
 *   (pipe_fallback.c). What the planner learns: pipe_learn.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pipeline-impl.h"

int pipe_v1_input(struct pipe_v1 *v)
{
	const struct pipe_request *rq = v->req;
	int r;

	if (!v->input) {
		uint64_t t = link_now_ns();
		r = rq->ops->decode ? rq->ops->decode(rq->ctx, &v->input, v->err, sizeof(v->err)) : -EINVAL;
		if (r < 0 || !v->input) {
			if (!rq->ops->decode)
				snprintf(v->err, sizeof(v->err), "the request carries no input tensor");
			v->status = 400;
			return r < 0 ? r : -EINVAL;
		}
		v->decode_ns = link_now_ns() - t;
		v->decoded = true;
	}
	if ((r = engine_ctx_set(v->ctx, v->m->in_meta[0].name, v->input, v->err, sizeof(v->err))) < 0) {
		v->status = 400;
		return r;
	}
	return 0;
}

/* cut 0 "input": the received JPEG/PNG as is, or a raw frame made into a
 * PNG now (the peer decodes it to the same pixels). */
static int image_send(struct pipe_v1 *v, char *err, size_t errlen)
{
	struct pipe_request rq = *v->req;
	int r;

	if (!rq.is_image) {
		if (!rq.ops->encode_png)
			return err_set(-EINVAL, err, errlen, "the request has no image to send");
		if ((r = rq.ops->encode_png(rq.ctx, &rq.body, &rq.body_len, err, errlen)) < 0)
			return r;
		rq.is_image = 1;
	}
	return pipe_image_send(v->m, &rq, v->id, &v->of, err, errlen);
}

/* The cut to the peer and its answer checked; any failure: the fallback. */
static int offload(struct pipe_v1 *v)
{
	struct pipe_model *m = v->m;
	char perr[PIPE_ERRLEN] = "";
	int64_t peer_nonfinite = 0;
	int r;

	if (v->bands > 1) {
		r = pipe_banded_send(m, v->worker, v->cut, v->enc, v->bands, v->req->q.no_wavefront, v->id,
				     v->req->received_ns, &v->of, &v->bd, perr, sizeof(perr));
		v->t_local1 = v->t_local0 + v->bd.local_ns;
		if (r < 0 && !v->bd.computed) {
			/* the band run itself failed: the fallback starts from the input */
			int rr = engine_run_range(v->ctx, 0, v->cut);
			if (rr < 0) {
				v->status = 500;
				snprintf(v->err, sizeof(v->err), "running nodes 0..%d: %s", v->cut, strerror(-rr));
				return rr;
			}
		}
	} else if (v->enc == PLAN_ENC_INPUT) {
		r = image_send(v, perr, sizeof(perr));
	} else {
		r = pipe_split_send(m, v->ctx, v->cut, v->enc, v->id, &v->of, perr, sizeof(perr));
	}
	if (r == 0 && v->of.post.kind[0]) {	/* the peer decoded: its detections */
		r = pipe_post_from_reply(m, &v->of.reply, &v->det, perr, sizeof(perr));
		v->have_det = r == 0;
	} else if (r == 0) {
		r = pipe_outputs_from_reply(&v->outs, &v->of.reply, m->out_meta, m->api.n_outputs, perr,
					    sizeof(perr));
	}
	if (r == 0 && (peer_nonfinite = pipe_outputs_nonfinite(&v->outs)) > 0) {
		/* whether the model produces them for this input, the rest run
		 * here says (pipe_fallback) */
		snprintf(perr, sizeof(perr), "the peer's answer holds %" PRId64 " non-finite values (NaN/Inf)",
			 peer_nonfinite);
		r = -EDOM;
	}
	if (r == 0) {
		v->offloaded = true;
		return 0;
	}
	post_result_fini(&v->det);
	v->have_det = false;
	return pipe_fallback(v, r, perr, peer_nonfinite);
}

int pipe_v1_run(struct pipe_v1 *v)
{
	struct pipe_model *m = v->m;
	struct pipeline *p = m->pipe;
	int r;

	v->t_deq = link_now_ns();
	v->decode_ns = v->req->decode_ns;
	v->input = v->req->input;
	v->decoded = v->input != NULL;
	snprintf(v->id, sizeof(v->id), "%016" PRIx64, v->t_deq ^ (uint64_t)(uintptr_t)v->req->ctx);
	if (m->link.ops && !m->calibrated && m->link.ops->probe(m->link.ctx) == PEER_UP)
		pipe_calibrate(m, v->worker);
	v->status = 400;
	if (m->api.n_inputs != 1) {
		snprintf(v->err, sizeof(v->err), "model '%s' has %d inputs: use the v2 API", m->name,
			 m->api.n_inputs);
		return -EINVAL;
	}
	if ((r = pipe_choose(m, v->req, &v->cut, &v->enc, &v->bands, v->err, sizeof(v->err))) < 0)
		return r;
	if (p->power)
		v->have_energy = power_request_begin_at(p->power, (int64_t)v->req->received_ns, &v->energy_id) == 0;
	v->need_input = !(v->cut == 0 && v->enc == PLAN_ENC_INPUT);
	if (v->need_input && (r = pipe_v1_input(v)) < 0)
		return r;
	if ((r = pipe_local_head(v)) < 0)
		return r;
	/* a detector's head is decoded where its last node runs: the peer's
	 * answer is then its detections (unless the client wants the raw
	 * outputs, ?outputs=raw) */
	if (m->detects && !v->req->q.outputs_raw)
		pipe_post_ask(m, &v->of.post);
	v->of.output_enc = m->output_enc;
	if (v->cut < m->n_nodes && (r = offload(v)) < 0)
		return r;
	if (!v->offloaded && !v->fallback &&
	    (r = pipe_outputs_from_ctx(&v->outs, v->ctx, m->out_meta, m->api.n_outputs)) < 0) {
		v->status = 500;
		snprintf(v->err, sizeof(v->err), "reading the outputs: %s", strerror(-r));
		return r;
	}
	if ((r = pipe_post_v1(v)) < 0)
		return r;
	return pipe_v1_answer(v);
}

void pipe_v1_fini(struct pipe_v1 *v)
{
	struct pipeline *p = v->m->pipe;

	if (v->have_energy && v->energy_id)
		power_request_end(p->power, v->energy_id, 0, &v->pr);
	v->energy_id = 0;
	if (v->of.have_reply)
		peer_reply_fini(&v->of.reply);
	v->of.have_reply = false;
	pipe_outputs_fini(&v->outs);
	post_result_fini(&v->det);
	v->have_det = false;
}
