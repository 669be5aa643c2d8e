/* The peer's tail: a robot's split request (v2 with splitd_cut) runs
 * nodes [cut, N) here and answers the outputs and the peer's own times.
 * A streamed banded request advances the wavefront as its bands arrive. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "link_codec.h"
#include "log.h"
#include "peer_proto.h"
#include "peer_v2.h"
#include "pipeline-impl.h"

/* One tail request in the making. */
struct tail {
	struct pipe_model *m;
	int worker, cut, n_cut;
	const struct pipe_request *rq;
	struct engine_ctx *ctx;
	struct peer_request pr;
	struct engine_value_info *cutv;
	struct tensor_view *views;
	void *mem;
	struct peer_tensor outs[PEER_MAX_TENSORS];
	void *outbuf[PEER_MAX_TENSORS];
	int n_out;
	struct peer_timing tm;
	/* the detections the robot asked for (post.kind POST_NONE: the raw
	 * outputs), and the size of the image decoded here */
	struct post_params post;
	struct post_result det;
	struct pipe_post_wire wire;
	int image_width, image_height;
	struct peer_msg msg;
	uint64_t t_deq, t_dec1, t_run1;
	/* a streamed request: the time its steps computed, without the waits
	 * for bands (t_run1 - t_dec1 holds the link's time too) */
	uint64_t stream_compute_ns;
	bool have_energy;
	uint64_t energy_id;
};

/* Band b of each input in the robot's order of inputs, each read where it
 * lies (peer_request_band_decode, as the fuzz target), fed to the band. */
static int feed_band(struct tail *t, struct engine_band *band, int b, const int *slot, size_t *off,
		     char *err, size_t errlen)
{
	const struct pipe_request *rq = t->rq;
	int r;

	for (int i = 0; i < t->pr.n_inputs; i++) {
		int j = slot[i];
		*off = peer_request_band_end(&t->pr, b, i);
		if ((r = rq->ops->body_wait(rq->ctx, *off, err, errlen)) < 0 ||
		    (r = peer_request_band_decode(&t->pr, b, i, &t->views[j], err, errlen)) < 0)
			return r;
		if ((r = engine_band_feed(band, t->cutv[j].name, t->pr.inputs[i].band_ends[b])) < 0) {
			return err_set(r, err, errlen, "cut %d tensor '%s' cannot be fed to the wavefront", t->cut,
				       t->cutv[j].name);
		}
	}
	return 0;
}

/* A streamed banded request (the API's stream_v2 took it): as each band
 * arrives, decode its rows into the cut tensors in ctx and advance the
 * wavefront over the row-local nodes [cut, reach); then the rest, [reach,
 * N), once every band is in. Per-band times go into t->tm. */
static int tail_streamed(struct tail *t, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	const struct pipe_request *rq = t->rq;
	struct engine_band *band = NULL;
	int which[PEER_MAX_TENSORS], slot[PEER_MAX_TENSORS], r, B = t->pr.bands, cut = t->cut;
	int reach = pipe_band_reach(m, cut), complete = 0;
	uint64_t t_origin = rq->received_ns;
	size_t off = 0;

	if (B < 2 || B > PEER_MAX_BANDS || reach <= cut || t->n_cut < 1 || !rq->ops->body_wait) {
		return err_set(-EINVAL, err, errlen, "cut %d cannot run as a wavefront here", cut);
	}
	if ((r = peer_request_match(&t->pr, engine_sha256(m->eng), t->cutv, t->n_cut, which, err, errlen)) < 0)
		return r;
	for (int j = 0; j < t->n_cut; j++) {
		if ((r = engine_ctx_get(t->ctx, t->cutv[j].name, &t->views[j])) < 0) {
			return err_set(r, err, errlen, "cut %d tensor '%s' has no place here", cut, t->cutv[j].name);
		}
		slot[which[j]] = j;	/* input i is cut tensor slot[i] */
	}
	if ((r = pipe_worker_band(m, t->worker, cut, reach, B, &band, err, errlen)) < 0)
		return r;
	engine_band_begin(band);
	t->tm.n_bands = B;
	for (int b = 0; b < B; b++) {
		if ((r = feed_band(t, band, b, slot, &off, err, errlen)) < 0)
			return r;
		uint64_t t0 = link_now_ns(), ta = rq->ops->body_arrival ? rq->ops->body_arrival(rq->ctx, off) : 0;
		t->tm.band_arrived_ns[b] = (int64_t)((ta && ta <= t0 ? ta : t0) - t_origin);
		if ((r = engine_band_advance(band)) < 0) {
			return err_set(r, err, errlen, "running nodes %d..%d as a wavefront: %s", cut, reach, strerror(-r));
		}
		complete = r == 1;
		uint64_t t1 = link_now_ns();
		t->stream_compute_ns += t1 - t0;
		t->tm.band_start_ns[b] = (int64_t)(t0 - t_origin);
		t->tm.band_end_ns[b] = (int64_t)(t1 - t_origin);
	}
	/* the body must end with the last band (peer_band_check made the
	 * bands' bytes sum to the inputs' sizes) */
	if (rq->ops->body_end && (r = rq->ops->body_end(rq->ctx, err, errlen)) < 0)
		return r;
	if (!complete) {	/* every row fed: the wavefront must have finished */
		return err_set(-EIO, err, errlen, "the wavefront over nodes %d..%d did not complete", cut, reach);
	}
	uint64_t t0 = link_now_ns();
	if (reach < m->n_nodes && (r = engine_run_range(t->ctx, reach, m->n_nodes)) < 0) {
		return err_set(r, err, errlen, "running nodes %d..%d: %s", reach, m->n_nodes, strerror(-r));
	}
	t->stream_compute_ns += link_now_ns() - t0;
	return 0;
}

/* A whole body: the cut tensors (or the image, at cut 0) into ctx. */
static int tail_decode(struct tail *t, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	const void *image = NULL;
	size_t image_len = 0;
	int r;

	if ((r = peer_cut_alloc(t->cutv, t->n_cut, t->views, &t->mem)) < 0)
		return r;
	if ((r = peer_request_decode(&t->pr, engine_sha256(m->eng), t->cutv, t->n_cut, t->views, &image,
				     &image_len, err, errlen)) < 0)
		return r;
	if (!image) {
		for (int j = 0; j < t->n_cut; j++)
			if ((r = engine_ctx_set(t->ctx, t->cutv[j].name, &t->views[j], err, errlen)) < 0)
				return r;
		return 0;
	}
	struct tensor_view tv;
	if (!m->has_pp) {
		return err_set(-EINVAL, err, errlen, "model '%s' takes no image here (no preprocessing configured)", m->name);
	}
	struct api_image_info info;
	if ((r = api_image_to_tensor(image, image_len, &m->pp, &tv, &info, err, errlen)) < 0)
		return r;
	t->image_width = info.src_width;
	t->image_height = info.src_height;
	r = engine_ctx_set(t->ctx, m->in_meta[0].name, &tv, err, errlen);
	free(tv.data);
	return r;
}

/* The detections of output 0, as the robot asked (pipe_post.c). */
static int tail_detections(struct tail *t, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	struct tensor_view v;
	int r;

	if ((r = engine_ctx_get(t->ctx, m->out_meta[0].name, &v)) < 0)
		return err_set(r, err, errlen, "output '%s' not computed", m->out_meta[0].name);
	uint64_t t0 = link_now_ns();
	if ((r = post_decode(&t->post, &v, &t->det, err, errlen)) < 0)
		return r;
	t->tm.post_ns = (int64_t)(link_now_ns() - t0);
	if ((r = pipe_post_wire(&t->det, &t->wire, t->outs, &t->n_out)) < 0)
		return err_set(r, err, errlen, "out of memory");
	return 0;
}

/* The outputs, encoded as the robot asked. */
static int tail_outputs(struct tail *t, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	int r;

	if (post_kind_detects(t->post.kind))
		return tail_detections(t, err, errlen);
	t->n_out = m->api.n_outputs > PEER_MAX_TENSORS ? PEER_MAX_TENSORS : m->api.n_outputs;
	for (int i = 0; i < t->n_out; i++) {
		struct tensor_view v;
		if ((r = engine_ctx_get(t->ctx, m->out_meta[i].name, &v)) < 0) {
			return err_set(r, err, errlen, "output '%s' not computed", m->out_meta[i].name);
		}
		struct link_encoding le = link_encoding_effective(&t->pr.output_enc, v.dtype);
		size_t cap = link_encode_bound(&v, &le), len = 0;
		float scale = 1;
		if (!(t->outbuf[i] = malloc(cap ? cap : 1)))
			return -ENOMEM;
		if ((r = link_encode(&v, &le, t->outbuf[i], cap, &len, &scale)) < 0) {
			return err_set(r, err, errlen, "encoding output '%s': %s", m->out_meta[i].name, strerror(-r));
		}
		t->outs[i] = (struct peer_tensor){ .name = m->out_meta[i].name, .dtype = v.dtype, .ndim = v.ndim,
						   .enc = le, .scale = scale, .data = t->outbuf[i], .len = len };
		memcpy(t->outs[i].shape, v.shape, sizeof(t->outs[i].shape));
	}
	return 0;
}

/* The answer: outputs and the peer's times (and energy), built and sent. */
static int tail_answer(struct tail *t, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	struct pipeline *p = m->pipe;
	const struct pipe_request *rq = t->rq;
	struct power_request pw = { 0 };
	uint8_t *body = NULL;
	size_t len = 0;
	int r;

	uint64_t t_end = link_now_ns();
	t->tm.queue_ns = (int64_t)(t->t_deq - rq->received_ns);
	t->tm.decode_ns = (int64_t)(t->t_dec1 - t->t_deq);
	/* what the robot's planner learns the peer's speed from: computing
	 * only (a streamed request's waits for its bands are the link's) */
	t->tm.compute_ns = (int64_t)(t->rq->streamed ? t->stream_compute_ns : t->t_run1 - t->t_dec1);
	t->tm.total_ns = (int64_t)(t_end - rq->received_ns);
	snprintf(t->tm.backend, sizeof(t->tm.backend), "%s", engine_backend_name(m->eng));
	if (t->have_energy && power_request_end_at(p->power, t->energy_id, (int64_t)t_end, 0, &pw) == 0)
		t->tm.energy_uj = pw.energy_uj;
	t->energy_id = 0;
	struct peer_response_spec spec = { .id = t->pr.id[0] ? t->pr.id : rq->msg->id, .model = m->name,
					   .outputs = t->outs, .n_outputs = t->n_out, .timing = &t->tm,
					   .image_width = t->image_width, .image_height = t->image_height };
	if ((r = peer_response_build(&spec, &t->msg, err, errlen)) < 0 ||
	    (r = peer_msg_flatten(&t->msg, &body, &len)) < 0)
		return r;
	struct pipe_result res = { .status = 200, .body = body, .len = len, .header_len = t->msg.header_len };
	rq->ops->respond(rq->ctx, &res);
	atomic_fetch_add(&m->requests[t->cut == 0 ? PIPE_OFFLOAD : PIPE_SPLIT], 1);
	atomic_fetch_add(&p->peer_requests_served, 1);
	return 0;
}

/* Read the request, and its cut tensors' places. */
static int tail_begin(struct tail *t, int64_t cut, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	struct pipeline *p = m->pipe;
	int r;

	if (cut < 0 || cut > m->n_nodes) {
		return err_set(-EINVAL, err, errlen, "splitd_cut %" PRId64 " is outside 0..%d", cut, m->n_nodes);
	}
	t->cut = (int)cut;
	if (p->power)
		t->have_energy = power_request_begin_at(p->power, (int64_t)t->rq->received_ns, &t->energy_id) == 0;
	/* the one parser of the peer's requests (peer_v2.c, peer_proto.c) */
	if ((r = peer_v2_request_read(t->rq->msg, t->rq->streamed, &t->pr, err, errlen)) < 0)
		return r;
	if ((r = pipe_post_asked(m, &t->pr.post, &t->post, err, errlen)) < 0)
		return r;
	t->n_cut = engine_cut_count(m->eng, t->cut);
	if (t->n_cut < 0 || t->n_cut > PEER_MAX_TENSORS) {
		return err_set(-EINVAL, err, errlen, "cut %d cannot be served (%d tensors)", t->cut, t->n_cut);
	}
	t->cutv = calloc((size_t)t->n_cut + 1, sizeof(*t->cutv));
	t->views = calloc((size_t)t->n_cut + 1, sizeof(*t->views));
	if (!t->cutv || !t->views)
		return -ENOMEM;
	for (int j = 0; j < t->n_cut; j++)
		engine_cut_tensor(m->eng, t->cut, j, &t->cutv[j]);
	peer_timing_init(&t->tm);
	return 0;
}

static int tail_run(struct tail *t, int64_t cut, int *status, char *err, size_t errlen)
{
	struct pipe_model *m = t->m;
	int r;

	*status = 400;
	if ((r = tail_begin(t, cut, err, errlen)) < 0)
		return r;
	if (t->rq->streamed) {
		t->t_dec1 = link_now_ns();
		if ((r = tail_streamed(t, err, errlen)) < 0) {
			*status = r == -EINVAL || r == -ENOMEM || r == -EIO ? 500 : 400;
			return r;
		}
	} else {
		if ((r = tail_decode(t, err, errlen)) < 0)
			return r;
		t->t_dec1 = link_now_ns();
		if ((r = engine_run_range(t->ctx, t->cut, m->n_nodes)) < 0) {
			*status = 500;
			return err_set(r, err, errlen, "running nodes %d..%d: %s", t->cut, m->n_nodes, strerror(-r));
		}
	}
	t->t_run1 = link_now_ns();
	*status = 500;
	if ((r = tail_outputs(t, err, errlen)) < 0)
		return r;
	return tail_answer(t, err, errlen);
}

int pipe_tail(struct pipe_model *m, int worker, const struct pipe_request *rq, int64_t cut, int *status,
	      char *err, size_t errlen)
{
	struct tail *t = calloc(1, sizeof(*t));
	int r;

	if (!t) {
		*status = 500;
		return -ENOMEM;
	}
	*t = (struct tail){ .m = m, .worker = worker, .rq = rq, .ctx = m->wctx[worker], .t_deq = link_now_ns() };
	r = tail_run(t, cut, status, err, errlen);
	if (t->have_energy && t->energy_id) {
		struct power_request pw;
		power_request_end(m->pipe->power, t->energy_id, 0, &pw);
	}
	if (r < 0)
		log_info("model %s: refused a robot's request: %s", m->name, err[0] ? err : strerror(-r));
	peer_msg_fini(&t->msg);
	pipe_post_wire_fini(&t->wire);
	post_result_fini(&t->det);
	for (int i = 0; i < PEER_MAX_TENSORS; i++)
		free(t->outbuf[i]);
	free(t->mem);
	free(t->views);
	free(t->cutv);
	free(t);
	return r;
}
