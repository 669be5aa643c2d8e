/* One inference through the pipeline, on a worker thread:
 *   robot, v1:  decode → plan (cut, encoding) → nodes [0, k) here → encode
 *               the cut tensors → peer runs [k, N) → response with timing and
 *               energy; any peer failure runs [k, N) here (a fallback).
 *   v2 with splitd_cut (a robot's request, on the peer): decode the cut
 *               tensors, run [k, N), answer the outputs and the peer's times.
 *   v2 without: the whole model, as any KServe v2 server does. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "link_codec.h"
#include "log.h"
#include "peer_proto.h"
#include "peer_v2.h"
#include "pipeline-impl.h"

#define ERRLEN 256

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

static struct link_encoding enc_from_plan(int enc)
{
	static const enum link_value values[PLAN_DTYPE_COUNT] = { LINK_VALUE_F32, LINK_VALUE_F16, LINK_VALUE_I8 };
	static const enum link_comp comps[PLAN_CODEC_COUNT] = { LINK_COMP_NONE, LINK_COMP_ZSTD, LINK_COMP_LZ4 };
	struct link_encoding e = { LINK_VALUE_F32, LINK_COMP_NONE, 0 };

	if (enc >= 0 && enc < PLAN_ENC_COUNT) {
		e.value = values[enc / PLAN_CODEC_COUNT];
		e.comp = comps[enc % PLAN_CODEC_COUNT];
	}
	return e;
}

/* ---- the peer link, robot side ------------------------------------------ */

struct offload {
	struct peer_reply reply;
	bool have_reply;
	bool infer_failed;		/* peer_client_infer returned an error (it
					   counted the peer's fallback itself) */
	uint64_t send_ns;		/* when the request left */
	size_t raw_bytes, wire_bytes;
};

/* The peer read the request and refused what it carried (a 4xx): its
 * fault only if the data was not the client's (peer_client.h). */
static bool refused(const struct offload *of, int r)
{
	return of->infer_failed && r == -EINVAL && of->reply.http_status >= 400 &&
	       of->reply.http_status < 500;
}

static int offload(struct pipe_model *m, struct engine_ctx *ctx, int cut, int enc,
		   const struct api_v1_request *rq, const char *id, struct offload *of,
		   char *err, size_t errlen)
{
	struct pipeline *p = m->pipe;
	int n = cut == 0 && enc == PLAN_ENC_INPUT ? 1 : engine_cut_count(m->eng, cut);
	struct peer_tensor *pts = NULL;
	void **bufs = NULL;
	struct peer_msg msg = { 0 };
	int r;

	if (n < 0)
		return n;
	if (n > PEER_MAX_TENSORS) {
		snprintf(err, errlen, "cut %d crosses %d tensors (at most %d travel)", cut, n, PEER_MAX_TENSORS);
		return -E2BIG;
	}
	pts = calloc((size_t)n, sizeof(*pts));
	bufs = calloc((size_t)n, sizeof(*bufs));
	if (!pts || !bufs) {
		r = -ENOMEM;
		goto out;
	}
	if (enc == PLAN_ENC_INPUT) {
		pts[0] = (struct peer_tensor){ .name = m->in_meta[0].name, .is_bytes = 1, .ndim = 1,
					       .shape = { 1 }, .data = rq->body, .len = rq->body_len,
					       .enc = { LINK_VALUE_F32, LINK_COMP_NONE, 0 }, .scale = 1 };
		of->raw_bytes = of->wire_bytes = rq->body_len;
	} else {
		struct link_encoding want = enc_from_plan(enc);
		for (int j = 0; j < n; j++) {
			struct engine_value_info vi;
			struct tensor_view v;
			size_t cap, len = 0;
			float scale = 1;

			if ((r = engine_cut_tensor(m->eng, cut, j, &vi)) < 0 ||
			    (r = engine_ctx_get(ctx, vi.name, &v)) < 0) {
				snprintf(err, errlen, "cut %d: tensor %d is not available", cut, j);
				goto out;
			}
			struct link_encoding le = link_encoding_effective(&want, v.dtype);
			cap = link_encode_bound(&v, &le);
			if (!(bufs[j] = malloc(cap ? cap : 1))) {
				r = -ENOMEM;
				goto out;
			}
			r = link_encode(&v, &le, bufs[j], cap, &len, &scale);
			if (r == -ERANGE || r == -EDOM) {
				/* beyond f16's range, or not finite: this tensor goes as is */
				le = (struct link_encoding){ LINK_VALUE_F32, want.comp, want.level };
				free(bufs[j]);
				cap = link_encode_bound(&v, &le);
				if (!(bufs[j] = malloc(cap ? cap : 1))) {
					r = -ENOMEM;
					goto out;
				}
				r = link_encode(&v, &le, bufs[j], cap, &len, &scale);
			}
			if (r < 0) {
				snprintf(err, errlen, "encoding '%s' for the link: %s", vi.name, strerror(-r));
				goto out;
			}
			pts[j] = (struct peer_tensor){ .name = vi.name, .dtype = v.dtype, .ndim = v.ndim,
						       .enc = le, .scale = scale, .data = bufs[j], .len = len };
			memcpy(pts[j].shape, v.shape, sizeof(pts[j].shape));
			of->raw_bytes += tensor_bytes(&v);
			of->wire_bytes += len;
		}
	}
	struct peer_request_spec spec = { .id = id, .cut = cut, .model_sha256 = engine_sha256(m->eng),
					  .inputs = pts, .n_inputs = n };
	if ((r = peer_request_build(&spec, &msg, err, errlen)) < 0)
		goto out;
	pthread_mutex_lock(&p->cfg_lock);
	int64_t timeout_ms = p->cfg->peer_request_timeout_ms;
	pthread_mutex_unlock(&p->cfg_lock);
	of->send_ns = pipe_now_ns();
	if ((r = peer_client_infer(m->peer, &msg, timeout_ms, &of->reply, err, errlen)) < 0) {
		of->infer_failed = true;
		goto out;
	}
	of->have_reply = true;
out:
	peer_msg_fini(&msg);
	for (int j = 0; bufs && j < n; j++)
		free(bufs[j]);
	free(bufs);
	free(pts);
	return r;
}

/* ---- banded offload: send each band while computing the next ----------- */

#define BANDS_MAX 64

struct banded {
	struct api_v1_band tl[BANDS_MAX];
	uint64_t local_ns;		/* the band run, encoding included */
	int computed;			/* the cut is in ctx (else run 0..cut for a fallback) */
};

struct sender {
	struct peer_client *peer;
	const struct peer_msg *msg;
	int64_t timeout_ms;
	struct peer_reply *reply;
	int rc;
	char err[ERRLEN];
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	s->rc = peer_client_infer(s->peer, s->msg, s->timeout_ms, s->reply, s->err, sizeof(s->err));
	return NULL;
}

/* Rows [r0, r1) of every plane of v, encoded, at dst. */
static int encode_rows(const struct tensor_view *v, const struct link_encoding *le, int64_t r0, int64_t r1,
		       uint8_t *dst, size_t cap, size_t *len)
{
	int64_t planes = v->shape[0] * v->shape[1], H = v->shape[2], W = v->shape[3];
	size_t off = 0, n_el = (size_t)((r1 - r0) * W);

	if (le->value == LINK_VALUE_I8) {
		/* one scale for the band (all planes), sent before its bytes */
		float scale = 0, s;
		uint32_t u;
		if (cap < 4 + (size_t)planes * n_el)
			return -ENOSPC;
		for (int64_t p = 0; p < planes; p++) {
			int r = link_i8_scale((const float *)v->data + (p * H + r0) * W, n_el, &s);
			if (r < 0)
				return r;
			scale = s > scale ? s : scale;
		}
		memcpy(&u, &scale, 4);
		dst[0] = (uint8_t)u, dst[1] = (uint8_t)(u >> 8), dst[2] = (uint8_t)(u >> 16), dst[3] = (uint8_t)(u >> 24);
		off = 4;
		for (int64_t p = 0; p < planes; p++, off += n_el)
			link_i8_quantize((const float *)v->data + (p * H + r0) * W, (int8_t *)(dst + off), n_el, scale);
		*len = off;
		return 0;
	}
	for (int64_t p = 0; p < planes; p++) {
		struct tensor_view row = { .dtype = TENSOR_F32, .ndim = 1, .shape = { (r1 - r0) * W },
					   .data = (float *)v->data + (p * H + r0) * W };
		size_t n = 0;
		float scale = 1;
		int r = link_encode(&row, le, dst + off, cap - off, &n, &scale);
		if (r < 0)
			return r;
		off += n;
	}
	*len = off;
	return 0;
}

/* The worker's band state for [first, last) in B bands: its last one when
 * it is for the same range and B (its buffers stay allocated). */
static int worker_band(struct pipe_model *m, int worker, int first, int last, int bands,
		       struct engine_band **out, char *err, size_t errlen)
{
	int r;

	if (m->wband[worker] && m->wband_first[worker] == first && m->wband_cut[worker] == last &&
	    m->wband_bands[worker] == bands) {
		*out = m->wband[worker];
		return 0;
	}
	engine_band_free(m->wband[worker]);
	m->wband[worker] = NULL;
	if ((r = engine_band_new(m->eng, m->wctx[worker], first, last, bands, out, err, errlen)) < 0)
		return r;
	m->wband[worker] = *out;
	m->wband_first[worker] = first;
	m->wband_cut[worker] = last;
	m->wband_bands[worker] = bands;
	return 0;
}

/* Nodes [0, cut) run as B bands; each band's rows of every cut tensor leave
 * for the peer as soon as they are computed, in one request whose body is
 * sent while it is produced (peer_proto.h, "banded requests"). On any error
 * the band run still completes the cut in ctx, so the caller can fall back. */
static int offload_banded(struct pipe_model *m, int worker, int cut, int enc, int bands, int no_wavefront,
			  const char *id, uint64_t t_origin, struct offload *of, struct banded *bd,
			  char *err, size_t errlen)
{
	struct pipeline *p = m->pipe;
	int n = engine_cut_count(m->eng, cut), r;
	struct engine_band *band = NULL;
	struct peer_tensor pts[PEER_MAX_TENSORS];
	struct tensor_view views[PEER_MAX_TENSORS];
	int64_t ends[PEER_MAX_TENSORS][BANDS_MAX];
	size_t marks[BANDS_MAX], band_bytes[BANDS_MAX] = { 0 };
	uint64_t marked[BANDS_MAX] = { 0 };
	struct peer_msg msg = { 0 };
	struct peer_stream st = { .n_marks = bands, .marks = marks, .marked_ns = marked };
	struct sender snd = { 0 };
	struct link_encoding le = enc_from_plan(enc);
	uint8_t *wire = NULL;
	size_t total = 0, off = 0;
	pthread_t th;

	if (n < 1 || n > PEER_MAX_TENSORS) {
		snprintf(err, errlen, "cut %d crosses %d tensors", cut, n);
		return -EINVAL;
	}
	/* cut 0: the inputs, already in ctx, travel in bands (nothing to compute) */
	if (cut > 0 && (r = worker_band(m, worker, 0, cut, bands, &band, err, errlen)) < 0)
		return r;
	memset(pts, 0, sizeof(pts));
	for (int j = 0; j < n; j++) {
		struct engine_value_info vi;
		if ((r = engine_cut_tensor(m->eng, cut, j, &vi)) < 0 ||
		    (r = band ? engine_band_cut_view(band, j, &views[j])
			      : engine_ctx_get(m->wctx[worker], vi.name, &views[j])) < 0)
			goto out;
		if (views[j].dtype != TENSOR_F32 || views[j].ndim != 4) {
			snprintf(err, errlen, "cut %d: tensor '%s' is not a float NCHW tensor: it cannot travel banded",
				 cut, vi.name);
			r = -EINVAL;
			goto out;
		}
		for (int b = 0; b < bands; b++) {
			int r0 = 0, r1 = (int)(views[j].shape[2] * (b + 1) / bands);
			if (band)
				engine_band_rows(band, b, j, &r0, &r1);
			ends[j][b] = r1;
		}
		pts[j] = (struct peer_tensor){ .name = vi.name, .dtype = TENSOR_F32, .ndim = 4, .enc = le,
					       .scale = 1, .band_ends = ends[j], .n_band_ends = bands };
		memcpy(pts[j].shape, views[j].shape, sizeof(pts[j].shape));
		pts[j].len = 0;
		for (int b = 0; b < bands; b++) {
			size_t bb = peer_band_bytes(&pts[j], b ? ends[j][b - 1] : 0, ends[j][b]);
			pts[j].len += bb;
			band_bytes[b] += bb;
		}
		if (!pts[j].len && tensor_numel(&views[j])) {
			snprintf(err, errlen, "encoding %s cannot travel banded (f32, f16 or i8 without compression can)",
				 plan_enc_name(enc));
			r = -EINVAL;
			goto out;
		}
		total += pts[j].len;
		of->raw_bytes += tensor_bytes(&views[j]);
	}
	of->wire_bytes = total;
	if (!(wire = malloc(total ? total : 1))) {
		r = -ENOMEM;
		goto out;
	}
	for (int j = 0; j < n; j++)
		pts[j].data = wire;	/* placeholders: the body is one region, see below */
	struct peer_request_spec spec = { .id = id, .cut = cut, .model_sha256 = engine_sha256(m->eng),
					  .bands = bands, .no_wavefront = no_wavefront, .inputs = pts, .n_inputs = n };
	if ((r = peer_request_build(&spec, &msg, err, errlen)) < 0)
		goto out;
	/* the binary part is the band-major region, filled as bands complete */
	msg.iov[1] = (struct iovec){ wire, total };
	msg.n_iov = 2;
	msg.total_len = msg.header_len + total;
	for (int b = 0; b < bands; b++)	/* where each band's bytes end in the message */
		marks[b] = (b ? marks[b - 1] : msg.header_len) + band_bytes[b];
	pthread_mutex_init(&st.mu, NULL);
	pthread_cond_init(&st.cv, NULL);
	st.ready = msg.header_len;
	msg.stream = &st;
	pthread_mutex_lock(&p->cfg_lock);
	snd.timeout_ms = p->cfg->peer_request_timeout_ms;
	pthread_mutex_unlock(&p->cfg_lock);
	snd.peer = m->peer;
	snd.msg = &msg;
	snd.reply = &of->reply;
	of->send_ns = pipe_now_ns();
	if ((r = pthread_create(&th, NULL, sender_main, &snd)) != 0) {
		r = -r;
		snprintf(err, errlen, "starting the band sender: %s", strerror(-r));
		goto out_stream;
	}
	uint64_t t_run0 = pipe_now_ns();
	int b = 0, broken = 0;
	for (; b < bands; b++) {
		struct engine_band_time bt = { 0 };
		if (!band) {
			bt.start_ns = bt.end_ns = (int64_t)pipe_now_ns();
		} else if ((r = engine_band_step(band, b)) < 0) {
			/* the run is broken: the caller recomputes 0..cut */
			snprintf(err, errlen, "band %d of nodes 0..%d: %s", b, cut, strerror(-r));
			broken = 1;
			break;
		}
		size_t b0 = off;
		for (int j = 0; j < n && r == 0; j++) {
			size_t len = 0;
			r = encode_rows(&views[j], &le, b ? ends[j][b - 1] : 0, ends[j][b], wire + off, total - off, &len);
			if (r < 0)
				snprintf(err, errlen, "encoding band %d of '%s' as %s: %s%s", b, pts[j].name,
					 plan_enc_name(enc), strerror(-r),
					 r == -ERANGE ? " (beyond f16's range)" : "");
			off += len;
		}
		if (r < 0) {
			b++;	/* this band was computed; its bytes could not be encoded */
			break;
		}
		uint64_t t_ready = pipe_now_ns();
		pthread_mutex_lock(&st.mu);
		st.ready = msg.header_len + off;
		pthread_cond_signal(&st.cv);
		pthread_mutex_unlock(&st.mu);
		if (band)
			engine_band_time(band, b, &bt);
		bd->tl[b] = (struct api_v1_band){ .row0 = b ? ends[0][b - 1] : 0, .row1 = ends[0][b],
						  .bytes = off - b0,
						  .compute_start_ns = (uint64_t)bt.start_ns - t_origin,
						  .compute_end_ns = (uint64_t)bt.end_ns - t_origin,
						  .ready_ns = t_ready - t_origin };
	}
	if (r < 0) {	/* abort the send at once, then finish the cut for the fallback */
		pthread_mutex_lock(&st.mu);
		st.failed = 1;
		pthread_cond_signal(&st.cv);
		pthread_mutex_unlock(&st.mu);
		while (!broken && band && b < bands && engine_band_step(band, b) == 0)
			b++;
		if (!band)
			b = bands;
	}
	bd->computed = b == bands;
	bd->local_ns = pipe_now_ns() - t_run0;
	pthread_join(th, NULL);
	of->infer_failed = snd.rc < 0;
	/* an empty band (a small tensor in many bands) has nothing to send:
	 * it is on its way once it is ready */
	for (int k = 0; k < bands; k++)
		bd->tl[k].sent_ns = !band_bytes[k] ? bd->tl[k].ready_ns : marked[k] ? marked[k] - t_origin : 0;
	if (r == 0 && snd.rc < 0) {
		r = snd.rc;
		snprintf(err, errlen, "%s", snd.err);
	}
	if (r == 0) {
		of->have_reply = true;
		/* the peer's wavefront, on our clock from when the request left
		 * (no clock sync: late by the header's one-way delay) */
		const struct peer_timing *pt = &of->reply.resp.timing;
		for (int k = 0; k < bands && pt->n_bands == bands; k++) {
			uint64_t t0 = of->send_ns - t_origin;
			bd->tl[k].peer_known = 1;
			bd->tl[k].peer_arrived_ns = t0 + (uint64_t)pt->band_arrived_ns[k];
			bd->tl[k].peer_start_ns = t0 + (uint64_t)pt->band_start_ns[k];
			bd->tl[k].peer_end_ns = t0 + (uint64_t)pt->band_end_ns[k];
		}
	} else if (snd.rc == 0) {
		peer_reply_fini(&of->reply);
	}
out_stream:
	pthread_cond_destroy(&st.cv);
	pthread_mutex_destroy(&st.mu);
out:
	peer_msg_fini(&msg);
	free(wire);
	return r;
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

/* ---- top-k -------------------------------------------------------------- */

static int top_k(const struct pipe_model *m, const struct pipe_outputs *o, struct api_topk *tk)
{
	if (!m->labels || o->n < 1 || o->views[0].dtype != TENSOR_F32)
		return 0;
	const struct tensor_view *v = &o->views[0];
	int64_t n = tensor_numel(v);
	const float *x = v->data;
	int k = m->top_k > 0 ? m->top_k : 5;
	double mx = -INFINITY, sum = 0;
	bool probs = true;

	if (n < 1 || n > 1000000)
		return 0;
	if (k > n)
		k = (int)n;
	if (k > 32)
		k = 32;
	for (int64_t i = 0; i < n; i++) {
		if (x[i] > mx)
			mx = x[i];
		if (x[i] < 0 || x[i] > 1)
			probs = false;
		sum += x[i];
	}
	if (fabs(sum - 1.0) > 1e-3)
		probs = false;
	double z = 0;
	if (!probs)
		for (int64_t i = 0; i < n; i++)
			z += exp(x[i] - mx);
	int got = 0;
	for (int j = 0; j < k; j++) {
		int64_t best = -1;
		for (int64_t i = 0; i < n; i++) {
			bool taken = false;
			for (int q = 0; q < got; q++)
				taken |= tk[q].index == i;
			if (!taken && (best < 0 || x[i] > x[best]))
				best = i;
		}
		if (best < 0)
			break;
		tk[got].index = (int)best;
		tk[got].label = best < m->n_labels ? m->labels[best] : NULL;
		tk[got].score = probs ? x[best] : (float)(exp(x[best] - mx) / z);
		got++;
	}
	return got;
}

/* ---- v1 on the robot -------------------------------------------------- */

static const char *placement_name(int cut, int n_nodes, int fallback)
{
	return fallback ? "fallback" : cut >= n_nodes ? "local" : cut == 0 ? "offload" : "split";
}

/* What the planner learns from one request. Everything it reads is the
 * worker's own (of, the times) or copied out of the request before its
 * answer went to the HTTP layer, which frees the request on its own thread:
 * image_bytes is the received JPEG/PNG's size, 0 for a tensor. */
static void learn(struct pipe_model *m, int cut, int enc, int bands, bool offloaded, const struct offload *of,
		  uint64_t t_local0, uint64_t t_local1, uint64_t t_end, uint64_t decode_ns, bool decoded,
		  size_t image_bytes)
{
	struct pipeline *p = m->pipe;
	double pw;

	if (!m->plan)
		return;
	if (m->peer) {
		/* the health probes are bodyless requests: round trips */
		struct peer_client_stats st;
		peer_client_stats(m->peer, &st);
		pthread_mutex_lock(&p->link_lock);
		if (st.probes != m->probes_seen && st.last_probe_rtt_ns > 0) {
			struct linkest_sample s = { .now_ns = pipe_now_ns(),
						    .ttfb_ns = (uint64_t)st.last_probe_rtt_ns };
			linkest_observe(p->link, &s);
		}
		m->probes_seen = st.probes;
		pthread_mutex_unlock(&p->link_lock);
	}
	/* a banded request's upload waits on the robot's compute: no link
	 * sample, and its local time includes the encoding of every band */
	if (offloaded && bands == 1) {
		const struct peer_transfer *x = &of->reply.xfer;
		const struct peer_timing *pt = &of->reply.resp.timing;
		struct linkest_sample s = {
			.now_ns = pipe_now_ns(), .bytes_up = x->bytes_up,
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
	struct plan_run run;
	plan_run_init(&run, cut, enc, bands);
	run.offloaded = offloaded;
	if (cut > 0 && bands == 1)
		run.local_ms = ms(t_local1 - t_local0);
	if (offloaded && bands > 1)
		run.banded_ms = ms(decode_ns) + ms(t_end - t_local0);
	if (offloaded) {
		const struct peer_timing *pt = &of->reply.resp.timing;
		run.peer_compute_ms = pt->compute_ns > 0 ? ms((uint64_t)pt->compute_ns) : -1;
		run.peer_decode_ms = pt->decode_ns > 0 ? ms((uint64_t)pt->decode_ns) : -1;
		run.raw_bytes = of->raw_bytes;
		run.wire_bytes = of->wire_bytes;
	}
	if (decoded)
		run.decode_ms = ms(decode_ns);
	run.image_bytes = image_bytes;
	/* The robot's power in each phase, from the sampler. */
	if (cut > 0 && window_power_mw(p, t_local0, t_local1, &pw) == 0)
		run.power_mw[PLAN_PHASE_COMPUTE] = pw;
	if (offloaded && bands == 1) {
		const struct peer_transfer *x = &of->reply.xfer;
		uint64_t up = of->send_ns + (uint64_t)(x->upload_ns > 0 ? x->upload_ns : 0);
		uint64_t fb = of->send_ns + (uint64_t)(x->ttfb_ns > 0 ? x->ttfb_ns : 0);
		if (window_power_mw(p, of->send_ns, up, &pw) == 0)
			run.power_mw[PLAN_PHASE_TX] = pw;
		if (window_power_mw(p, up, fb, &pw) == 0)
			run.power_mw[PLAN_PHASE_WAIT] = pw;
	}
	pipe_plan_learn(m, &run);
}

/* The link's goodput is learnt from offload transfers of at least the
 * estimator's min_bytes; with an all-local plan (or only tiny cuts) none
 * come, and a plan that left the link would never come back. So when the
 * estimator says a probe is due (no goodput sample for planner.probe_idle_ms),
 * this request runs at the best offload candidate that sends at least
 * min_bytes: a real request of real size, answered as any other, that costs
 * its user at most the predicted difference once per idle period. */
static int explore(struct pipe_model *m, bool image, struct plan_candidate *pick)
{
	struct pipeline *p = m->pipe;
	struct linkest_config lc;
	struct plan_candidate *v = NULL;
	struct plan_inputs in;
	int n = 0, best = -1, big = -1, any = -1, due;

	if (!m->peer || !m->calibrated || peer_client_state(m->peer) != PEER_UP)
		return 0;
	pthread_mutex_lock(&p->link_lock);
	due = linkest_probe_due(p->link, pipe_now_ns());
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
 * the JPEG/PNG as received, which a tensor request does not have. */
static void tensor_candidate(struct pipe_model *m, struct plan_candidate *pick)
{
	struct plan_candidate *v = NULL;
	struct plan_inputs in;
	int n = 0, best = -1, r;

	pthread_mutex_lock(&m->lock);
	pipe_plan_inputs(m, &in);
	in.input_bytes = 0;	/* no image: no "cut 0 input" candidate */
	r = plan_enumerate(m->plan, &in, &v, &n, &best);
	pthread_mutex_unlock(&m->lock);
	*pick = (struct plan_candidate){ .cut = m->n_nodes, .enc = PLAN_ENC_LOCAL, .bands = 1 };
	if (r == 0 && best >= 0 && best < n && v[best].enc != PLAN_ENC_INPUT)
		*pick = v[best];
	free(v);
}

static int choose(struct pipe_model *m, const struct api_v1_request *rq, int *cut, int *enc, int *bands,
		  char *err, size_t errlen)
{
	int n = m->n_nodes;
	bool image = rq->kind != API_BODY_NPY;

	*bands = 1;
	/* ?policy=: that policy's choice for this request (no exploring) */
	struct plan_candidate cur = { .cut = n, .enc = PLAN_ENC_LOCAL, .bands = 1 };
	int own = pipe_plan_for_request(m, rq->policy, image, &cur, err, errlen);
	if (own < 0)
		return own;
	if (rq->cut > n) {
		snprintf(err, errlen, "cut=%d is beyond the model's %d nodes (0..%d)", rq->cut, n, n);
		return -EINVAL;
	}
	if (!m->peer) {
		if (rq->cut >= 0 && rq->cut < n) {
			snprintf(err, errlen, "cut=%d needs a peer, and none is configured ([peer] url)", rq->cut);
			return -EINVAL;
		}
		*cut = n;
		*enc = PLAN_ENC_LOCAL;
		return 0;
	}
	if (!own) {
		pthread_mutex_lock(&m->lock);
		plan_current(m->plan, &cur);
		pthread_mutex_unlock(&m->lock);
	}
	if (rq->cut < 0 && !rq->encoding && !own) {
		struct plan_candidate x;
		if (explore(m, image, &x)) {
			char a[64], b[64];
			plan_describe(&cur, n, a, sizeof(a));
			plan_describe(&x, n, b, sizeof(b));
			log_info("model %s: link idle: this request runs at %s (plan %s) to measure it",
				 m->name, b, a);
			atomic_fetch_add(&m->explorations, 1);
			cur = x;
		}
		if (!image && cur.enc == PLAN_ENC_INPUT)
			tensor_candidate(m, &cur);
	}
	*cut = rq->cut >= 0 ? rq->cut : cur.cut;
	int plan_bands = rq->cut < 0 && !rq->encoding && cur.bands > 1 ? cur.bands : 1;
	*enc = rq->cut >= 0 ? (*cut == 0 && image ? PLAN_ENC_INPUT : PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE))
			    : cur.enc;
	if (rq->encoding && plan_enc_parse(rq->encoding, enc) < 0) {
		snprintf(err, errlen, "encoding=%s: not one of f32, f16, i8 (optionally +zstd or +lz4), input",
			 rq->encoding);
		return -EINVAL;
	}
	if (*cut >= n) {
		*cut = n;
		*enc = PLAN_ENC_LOCAL;
	} else if (*enc == PLAN_ENC_LOCAL) {
		*enc = PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE);
	}
	if (*enc == PLAN_ENC_INPUT && (*cut != 0 || !image)) {
		snprintf(err, errlen, "encoding=input sends the received image: it needs cut=0 and a JPEG/PNG body");
		return -EINVAL;
	}
	*bands = plan_bands;
	if (rq->bands > 1) {
		char why[ERRLEN] = "";
		if (rq->bands > BANDS_MAX) {
			snprintf(err, errlen, "bands=%d: at most %d", rq->bands, BANDS_MAX);
			return -EINVAL;
		}
		if (*cut < 0 || *cut >= n) {
			snprintf(err, errlen, "bands=%d streams a cut to the peer: it needs 0 <= cut < %d", rq->bands, n);
			return -EINVAL;
		}
		pthread_mutex_lock(&m->pipe->cfg_lock);
		bool unverified = m->pipe->cfg->peer_allow_unverified;
		pthread_mutex_unlock(&m->pipe->cfg_lock);
		if (unverified) {
			snprintf(err, errlen, "bands=%d: the peer may not be a splitd (peer.allow_unverified), "
				 "and only a splitd reads banded requests", rq->bands);
			return -EINVAL;
		}
		if (*enc != PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE) && *enc != PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_NONE) &&
		    *enc != PLAN_ENC(PLAN_DTYPE_I8, PLAN_CODEC_NONE)) {
			snprintf(err, errlen, "bands=%d: banded cuts travel as f32, f16 or i8 without compression, not %s",
				 rq->bands, plan_enc_name(*enc));
			return -EINVAL;
		}
		if (*cut > 0 && engine_band_check(m->eng, 0, *cut, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "bands=%d at cut %d: %s", rq->bands, *cut, why);
			return -EINVAL;
		}
		/* at cut 0 the input itself travels in bands (the peer's
		 * wavefront overlaps its compute with the upload) */
		if (*cut == 0 && engine_band_inputs_check(m->eng, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "bands=%d at cut 0: %s", rq->bands, why);
			return -EINVAL;
		}
		*bands = rq->bands;
	}
	return 0;
}

static void run_v1(struct pipeline *p, int worker, struct pipe_job *job)
{
	struct pipe_model *m = job->model;
	const struct api_v1_request *rq = job->v1;
	struct api_call *call = job->call;
	struct engine_ctx *ctx = m->wctx[worker];
	const struct tensor_view *input = rq->input;
	struct pipe_outputs outs = { 0 };
	struct offload of = { 0 };
	int64_t peer_nonfinite = 0;
	struct power_request pr = { 0 };
	struct api_topk tk[32];
	char err[ERRLEN] = "", fb_reason[ERRLEN] = "", id[32], enc_name[LINK_ENCODING_STRLEN];
	uint64_t t_deq = pipe_now_ns(), decode_ns = rq->decode_ns;
	uint64_t t_local0 = 0, t_local1 = 0, tail_ns = 0;
	uint64_t energy_id = 0;
	bool have_energy = false, decoded = input != NULL, offloaded = false;
	int cut, enc, bands = 1, fallback = 0, r, status = 500, local_nodes;
	struct banded bd = { 0 };

	snprintf(id, sizeof(id), "%016" PRIx64, t_deq ^ (uint64_t)(uintptr_t)call);
	if (m->peer && !m->calibrated && peer_client_state(m->peer) == PEER_UP)
		pipe_calibrate(m, worker);
	if (m->api.n_inputs != 1) {
		api_call_error(call, 400, "model '%s' has %d inputs: use the v2 API", m->name, m->api.n_inputs);
		atomic_fetch_add(&m->failures, 1);
		return;
	}
	if ((r = choose(m, rq, &cut, &enc, &bands, err, sizeof(err))) < 0) {
		api_call_error(call, 400, "%s", err);
		atomic_fetch_add(&m->failures, 1);
		return;
	}
	if (p->power)
		have_energy = power_request_begin_at(p->power, (int64_t)rq->received_ns, &energy_id) == 0;

	bool need_input = !(cut == 0 && enc == PLAN_ENC_INPUT);
	if (need_input && !input) {
		uint64_t t = pipe_now_ns();
		if ((r = api_call_decode(call, &input, err, sizeof(err))) < 0) {
			status = 400;
			goto fail;
		}
		decode_ns = pipe_now_ns() - t;
		decoded = true;
	}
	if (need_input && (r = engine_ctx_set(ctx, m->in_meta[0].name, input, err, sizeof(err))) < 0) {
		status = 400;
		goto fail;
	}
	t_local0 = pipe_now_ns();
	if (cut > 0 && bands == 1 && (r = engine_run_range(ctx, 0, cut)) < 0) {
		snprintf(err, sizeof(err), "running nodes 0..%d: %s", cut, strerror(-r));
		goto fail;
	}
	t_local1 = pipe_now_ns();
	local_nodes = cut;
	if (cut < m->n_nodes) {
		char perr[ERRLEN] = "";
		if (bands > 1) {
			r = offload_banded(m, worker, cut, enc, bands, rq->no_wavefront, id, rq->received_ns, &of, &bd,
					   perr, sizeof(perr));
			t_local1 = t_local0 + bd.local_ns;
			if (r < 0 && !bd.computed) {
				/* the band run itself failed: the fallback starts from the input */
				int rr = engine_run_range(ctx, 0, cut);
				if (rr < 0) {
					snprintf(err, sizeof(err), "running nodes 0..%d: %s", cut, strerror(-rr));
					r = rr;
					goto fail;
				}
			}
		} else {
			r = offload(m, ctx, cut, enc, rq, id, &of, perr, sizeof(perr));
		}
		if (r == 0)
			r = pipe_outputs_from_reply(&outs, &of.reply, m->out_meta, m->api.n_outputs, perr,
						    sizeof(perr));
		if (r == 0 && (peer_nonfinite = pipe_outputs_nonfinite(&outs)) > 0) {
			/* whether the model produces them for this input, the
			 * rest run here says (below) */
			snprintf(perr, sizeof(perr), "the peer's answer holds %" PRId64 " non-finite values (NaN/Inf)",
				 peer_nonfinite);
			r = -EDOM;
		}
		if (r == 0) {
			offloaded = true;
		} else {
			/* The peer is down, late or wrong, or refused what it was
			 * sent: finish here. Blame by cause: an answer that came
			 * and cannot be used is the peer's; so is a refusal of
			 * data this robot can read (its own cut tensors, or the
			 * client's image once it decodes here); a refused image
			 * that does not decode here is the client's (a 400). */
			bool refusal = refused(&of, r);
			bool blame = (of.have_reply && r != -ENOMEM) || refusal;	/* (our memory: ours) */
			int peer_r = r;

			pipe_outputs_fini(&outs);
			snprintf(fb_reason, sizeof(fb_reason), "%s", perr[0] ? perr : strerror(-r));
			if (!need_input) {
				uint64_t t = pipe_now_ns();
				if ((r = api_call_decode(call, &input, err, sizeof(err))) < 0) {
					status = 400;
					goto fail;
				}
				decode_ns = pipe_now_ns() - t;
				decoded = true;
				if ((r = engine_ctx_set(ctx, m->in_meta[0].name, input, err, sizeof(err))) < 0) {
					status = 400;
					goto fail;
				}
			}
			fallback = 1;
			if (m->peer && !of.infer_failed)	/* (infer counts its own) */
				peer_client_count_fallback(m->peer);
			atomic_fetch_add(&m->fallbacks, 1);
			uint64_t t = pipe_now_ns();
			if ((r = engine_run_range(ctx, cut, m->n_nodes)) < 0) {
				snprintf(err, sizeof(err), "running nodes %d..%d: %s", cut, m->n_nodes, strerror(-r));
				goto fail;
			}
			tail_ns = pipe_now_ns() - t;
			local_nodes = m->n_nodes;
			if ((r = pipe_outputs_from_ctx(&outs, ctx, m->out_meta, m->api.n_outputs)) < 0) {
				snprintf(err, sizeof(err), "reading the outputs: %s", strerror(-r));
				goto fail;
			}
			int64_t own = peer_nonfinite > 0 ? pipe_outputs_nonfinite(&outs) : 0;
			if (peer_nonfinite > 0) {
				/* the same nodes here: the peer's fault only if
				 * they give none */
				size_t l = strlen(fb_reason);
				snprintf(fb_reason + l, sizeof(fb_reason) - l,
					 own ? "; nodes %d..%d here give %" PRId64 " too (the model's own)"
					     : "; nodes %d..%d here give none", cut, m->n_nodes, own);
				blame = own == 0;
			}
			if (blame && m->peer)
				peer_client_blame(m->peer, of.have_reply);
			if (peer_nonfinite > 0 && !blame)
				log_info("model %s: at cut %d %s: ran the rest locally", m->name, cut, fb_reason);
			else if (peer_r != -EAGAIN)
				log_warn("model %s: peer failed at cut %d (%s): ran the rest locally",
					 m->name, cut, fb_reason);
		}
	}
	if (!offloaded && !fallback && (r = pipe_outputs_from_ctx(&outs, ctx, m->out_meta, m->api.n_outputs)) < 0) {
		snprintf(err, sizeof(err), "reading the outputs: %s", strerror(-r));
		goto fail;
	}
	uint64_t t_end = pipe_now_ns();
	if (have_energy) {
		have_energy = power_request_end_at(p->power, energy_id, (int64_t)t_end, 0, &pr) == 0;
		energy_id = 0;
	}

	struct api_v1_result res = {
		.model = m->name, .id = id,
		.outputs = outs.out, .n_outputs = outs.n,
		.outputs_none = rq->outputs_none,
	};
	int ntk = top_k(m, &outs, tk);
	if (ntk > 0) {
		res.top_k = tk;
		res.n_top_k = ntk;
	}
	res.placement.cut = cut;
	res.placement.local_nodes = local_nodes;
	res.placement.remote_nodes = m->n_nodes - local_nodes;
	res.placement.bands = bands;
	if (bands > 1) {
		res.timeline = bd.tl;
		res.n_timeline = bands;
	}
	res.placement.peer = cut < m->n_nodes ? p->cfg->peer_url : NULL;
	if (cut < m->n_nodes) {
		if (enc == PLAN_ENC_INPUT)
			snprintf(enc_name, sizeof(enc_name), "input");
		else
			snprintf(enc_name, sizeof(enc_name), "%s", plan_enc_name(enc));
		res.placement.encoding = enc_name;
	}
	res.placement.fallback = fallback;
	res.placement.fallback_reason = fallback ? fb_reason : NULL;
	res.timing.queue_ns = t_deq - rq->received_ns;
	res.timing.decode_ns = decode_ns;
	res.timing.local_ns = (t_local1 - t_local0) + tail_ns;
	if (offloaded) {
		const struct peer_timing *pt = &of.reply.resp.timing;
		uint64_t remote = pt->total_ns > 0 ? (uint64_t)pt->total_ns : 0;
		uint64_t total = of.reply.xfer.total_ns > 0 ? (uint64_t)of.reply.xfer.total_ns : 0;
		res.timing.remote_ns = remote;
		res.timing.transfer_ns = total > remote ? total - remote : 0;
	}
	res.timing.total_ns = t_end - rq->received_ns;
	if (have_energy) {
		res.energy.present = 1;
		res.energy.energy_uj = (double)pr.energy_uj;
		res.energy.above_idle_uj = (double)pr.energy_above_idle_uj;
		res.energy.method = pr.method;
		res.energy.rail = pr.rail;
		res.energy.sample_hz = pr.sample_hz;
		res.energy.samples = pr.samples;
	} else {
		res.energy.reason = p->power ? (pr.reason ? pr.reason : "no energy for this request")
					     : p->power_reason;
	}
	char *body = NULL;
	size_t len = 0;
	if ((r = api_v1_response_build(&res, &body, &len)) < 0) {
		snprintf(err, sizeof(err), "building the response: %s", strerror(-r));
		goto fail;
	}
	/* rq and call are the HTTP layer's from here on: what learn() reads of
	 * the request is copied out first */
	size_t image_bytes = rq->kind != API_BODY_NPY ? rq->body_len : 0;
	api_call_respond(call, 200, "application/json", body, len);

	atomic_fetch_add(&m->requests[fallback ? PIPE_FALLBACK
				      : cut >= m->n_nodes ? PIPE_LOCAL
				      : cut == 0 ? PIPE_OFFLOAD : PIPE_SPLIT], 1);
	pthread_mutex_lock(&m->lock);
	pipe_hist_observe(&m->duration_s, (double)res.timing.total_ns / 1e9);
	if (have_energy)
		pipe_hist_observe(&m->energy_j, (double)pr.energy_uj / 1e6);
	pthread_mutex_unlock(&m->lock);
	log_debug("model %s: %s, cut %d, %.2f ms", m->name, placement_name(cut, m->n_nodes, fallback), cut,
		  ms(res.timing.total_ns));
	learn(m, cut, enc, bands, offloaded, &of, t_local0, t_local1, t_end, decode_ns, decoded, image_bytes);
	goto done;
fail:
	if (have_energy && energy_id)
		power_request_end(p->power, energy_id, 0, &pr);
	atomic_fetch_add(&m->failures, 1);
	api_call_error(call, status, "%s", err[0] ? err : strerror(-r));
done:
	if (of.have_reply)
		peer_reply_fini(&of.reply);
	pipe_outputs_fini(&outs);
}

/* ---- v2 ------------------------------------------------------------------ */

static void respond_v2(struct api_call *call, char *body, size_t len, size_t header_len)
{
	if (header_len < len) {
		char hl[24];
		snprintf(hl, sizeof(hl), "%zu", header_len);
		api_call_header(call, "Inference-Header-Content-Length", hl);
		api_call_respond(call, 200, "application/octet-stream", body, len);
	} else {
		api_call_respond(call, 200, "application/json", body, len);
	}
}

/* A plain KServe v2 request: the whole model. */
static void run_v2_whole(struct pipeline *p, int worker, struct pipe_job *job)
{
	struct pipe_model *m = job->model;
	const struct api_v2_message *msg = job->v2->msg;
	struct engine_ctx *ctx = m->wctx[worker];
	struct api_v2_tensor outs[64];
	struct api_v2_message resp = { 0 };
	char err[ERRLEN] = "";
	int r = -EINVAL, status = 400;

	for (int i = 0; i < m->api.n_inputs; i++) {
		const struct api_v2_tensor *t = NULL;
		struct tensor_view v;

		for (int j = 0; j < msg->n_tensors; j++)
			if (!strcmp(msg->tensors[j].name, m->in_meta[i].name))
				t = &msg->tensors[j];
		if (!t && m->api.n_inputs == 1 && msg->n_tensors == 1)
			t = &msg->tensors[0];
		if (!t) {
			snprintf(err, sizeof(err), "input '%s' is missing", m->in_meta[i].name);
			goto fail;
		}
		if ((r = api_v2_tensor_view(t, &m->in_meta[i], &v, err, sizeof(err))) < 0 ||
		    (r = engine_ctx_set(ctx, m->in_meta[i].name, &v, err, sizeof(err))) < 0)
			goto fail;
	}
	if ((r = engine_run(ctx)) < 0) {
		status = 500;
		snprintf(err, sizeof(err), "inference failed: %s", strerror(-r));
		goto fail;
	}
	int n = m->api.n_outputs > 64 ? 64 : m->api.n_outputs;
	for (int i = 0; i < n; i++) {
		struct tensor_view v;
		int binary = msg->binary_data_output;

		if ((r = engine_ctx_get(ctx, m->out_meta[i].name, &v)) < 0) {
			status = 500;
			snprintf(err, sizeof(err), "output '%s' not computed", m->out_meta[i].name);
			goto fail;
		}
		for (int j = 0; j < msg->n_outputs; j++)
			if (!strcmp(msg->outputs[j].name, m->out_meta[i].name))
				binary = msg->outputs[j].binary;
		outs[i] = (struct api_v2_tensor){ .name = m->out_meta[i].name,
						  .datatype = tensor_dtype_name(v.dtype), .dtype = v.dtype,
						  .ndim = v.ndim, .data = v.data, .data_len = tensor_bytes(&v),
						  .binary = binary };
		memcpy(outs[i].shape, v.shape, sizeof(outs[i].shape));
	}
	resp.id = msg->id;
	resp.model_name = m->name;
	resp.model_version = "1";
	resp.tensors = outs;
	resp.n_tensors = n;
	char *body = NULL;
	size_t len = 0, hlen = 0;
	if ((r = api_v2_build(API_V2_RESPONSE, &resp, &body, &len, &hlen)) < 0) {
		status = 500;
		snprintf(err, sizeof(err), "building the response: %s", strerror(-r));
		goto fail;
	}
	respond_v2(job->call, body, len, hlen);
	atomic_fetch_add(&m->requests[PIPE_LOCAL], 1);
	(void)p;
	return;
fail:
	atomic_fetch_add(&m->failures, 1);
	api_call_error(job->call, status, "%s", err[0] ? err : strerror(-r));
}

/* A streamed banded request (api_handlers.stream_v2 took it): as each band
 * of the robot's arrives, decode its rows into the cut tensors in ctx and
 * advance the wavefront over the row-local nodes [cut, reach); then the
 * rest, [reach, N), once every band is in. Per-band times go into tm. */
static int tail_streamed(struct pipe_model *m, int worker, struct api_call *call, const struct peer_request *pr,
			 const struct engine_value_info *cutv, int n_cut, int cut, uint64_t t_origin,
			 struct peer_timing *tm, char *err, size_t errlen)
{
	struct engine_ctx *ctx = m->wctx[worker];
	struct engine_band *band = NULL;
	struct tensor_view views[PEER_MAX_TENSORS];
	int which[PEER_MAX_TENSORS], slot[PEER_MAX_TENSORS], r, B = pr->bands;
	int reach = pipe_band_reach(m, cut), complete = 0;
	size_t off = 0;

	if (B < 2 || B > PEER_MAX_BANDS || reach <= cut || n_cut < 1) {
		snprintf(err, errlen, "cut %d cannot run as a wavefront here", cut);
		return -EINVAL;
	}
	if ((r = peer_request_match(pr, engine_sha256(m->eng), cutv, n_cut, which, err, errlen)) < 0)
		return r;
	for (int j = 0; j < n_cut; j++) {
		if ((r = engine_ctx_get(ctx, cutv[j].name, &views[j])) < 0) {
			snprintf(err, errlen, "cut %d tensor '%s' has no place here", cut, cutv[j].name);
			return r;
		}
		slot[which[j]] = j;	/* input i is cut tensor slot[i] */
	}
	if ((r = worker_band(m, worker, cut, reach, B, &band, err, errlen)) < 0)
		return r;
	engine_band_begin(band);
	tm->n_bands = B;
	for (int b = 0; b < B; b++) {
		/* band b of each input in the robot's order of inputs, each read
		 * where it lies (peer_request_band_decode, as the fuzz target) */
		for (int i = 0; i < pr->n_inputs; i++) {
			int j = slot[i];
			off = peer_request_band_end(pr, b, i);
			if ((r = api_call_body_wait(call, off, NULL, err, errlen)) < 0 ||
			    (r = peer_request_band_decode(pr, b, i, &views[j], err, errlen)) < 0)
				return r;
			if ((r = engine_band_feed(band, cutv[j].name, pr->inputs[i].band_ends[b])) < 0) {
				snprintf(err, errlen, "cut %d tensor '%s' cannot be fed to the wavefront", cut,
					 cutv[j].name);
				return r;
			}
		}
		uint64_t t0 = pipe_now_ns(), ta = api_call_body_arrival(call, off);
		tm->band_arrived_ns[b] = (int64_t)((ta && ta <= t0 ? ta : t0) - t_origin);
		if ((r = engine_band_advance(band)) < 0) {
			snprintf(err, errlen, "running nodes %d..%d as a wavefront: %s", cut, reach, strerror(-r));
			return r;
		}
		complete = r == 1;
		tm->band_start_ns[b] = (int64_t)(t0 - t_origin);
		tm->band_end_ns[b] = (int64_t)(pipe_now_ns() - t_origin);
	}
	/* the body must end with the last band (peer_band_check made the
	 * bands' bytes sum to the inputs' sizes) */
	if ((r = api_call_body_end(call, err, errlen)) < 0)
		return r;
	if (!complete) {	/* every row fed: the wavefront must have finished */
		snprintf(err, errlen, "the wavefront over nodes %d..%d did not complete", cut, reach);
		return -EIO;
	}
	if (reach < m->n_nodes && (r = engine_run_range(ctx, reach, m->n_nodes)) < 0) {
		snprintf(err, errlen, "running nodes %d..%d: %s", reach, m->n_nodes, strerror(-r));
		return r;
	}
	return 0;
}

/* A robot's cut: run [cut, N) and answer outputs + our own times. */
static void run_v2_tail(struct pipeline *p, int worker, struct pipe_job *job, int64_t cut)
{
	struct pipe_model *m = job->model;
	const struct api_v2_request *rq = job->v2;
	struct engine_ctx *ctx = m->wctx[worker];
	struct engine_value_info *cutv = NULL;
	struct tensor_view *views = NULL;
	struct peer_tensor outs[PEER_MAX_TENSORS];
	void *outbuf[PEER_MAX_TENSORS] = { 0 };
	void *mem = NULL;
	struct peer_request pr;
	struct peer_timing tm;
	struct peer_msg msg = { 0 };
	struct power_request pw = { 0 };
	uint64_t energy_id = 0;
	bool have_energy = false;
	const void *image = NULL;
	size_t image_len = 0;
	char err[ERRLEN] = "";
	uint64_t t_deq = pipe_now_ns(), t_dec1, t_run1;
	int r = -EINVAL, status = 400, n_cut = 0;

	if (cut < 0 || cut > m->n_nodes) {
		snprintf(err, sizeof(err), "splitd_cut %" PRId64 " is outside 0..%d", cut, m->n_nodes);
		goto fail;
	}
	if (p->power)
		have_energy = power_request_begin_at(p->power, (int64_t)rq->received_ns, &energy_id) == 0;
	/* the one parser of the peer's requests (peer_v2.c, peer_proto.c) */
	if ((r = peer_v2_request_read(rq->msg, rq->streamed, &pr, err, sizeof(err))) < 0)
		goto fail;
	n_cut = engine_cut_count(m->eng, (int)cut);
	if (n_cut < 0 || n_cut > PEER_MAX_TENSORS) {
		snprintf(err, sizeof(err), "cut %" PRId64 " cannot be served (%d tensors)", cut, n_cut);
		goto fail;
	}
	cutv = calloc((size_t)n_cut + 1, sizeof(*cutv));
	views = calloc((size_t)n_cut + 1, sizeof(*views));
	if (!cutv || !views) {
		r = -ENOMEM;
		goto fail;
	}
	for (int j = 0; j < n_cut; j++)
		engine_cut_tensor(m->eng, (int)cut, j, &cutv[j]);
	peer_timing_init(&tm);
	if (rq->streamed) {
		t_dec1 = pipe_now_ns();
		if ((r = tail_streamed(m, worker, job->call, &pr, cutv, n_cut, (int)cut, rq->received_ns, &tm,
				       err, sizeof(err))) < 0) {
			status = r == -EINVAL || r == -ENOMEM || r == -EIO ? 500 : 400;
			goto fail;
		}
		t_run1 = pipe_now_ns();
		goto outputs;
	}
	if ((r = peer_cut_alloc(cutv, n_cut, views, &mem)) < 0)
		goto fail;
	if ((r = peer_request_decode(&pr, engine_sha256(m->eng), cutv, n_cut, views, &image, &image_len,
				     err, sizeof(err))) < 0) {
		goto fail;
	}
	if (image) {
		struct tensor_view tv;
		if (!m->has_pp) {
			snprintf(err, sizeof(err), "model '%s' takes no image here (no preprocessing configured)", m->name);
			goto fail;
		}
		if ((r = api_image_to_tensor(image, image_len, &m->pp, &tv, NULL, err, sizeof(err))) < 0)
			goto fail;
		r = engine_ctx_set(ctx, m->in_meta[0].name, &tv, err, sizeof(err));
		free(tv.data);
		if (r < 0)
			goto fail;
	} else {
		for (int j = 0; j < n_cut; j++)
			if ((r = engine_ctx_set(ctx, cutv[j].name, &views[j], err, sizeof(err))) < 0)
				goto fail;
	}
	t_dec1 = pipe_now_ns();
	if ((r = engine_run_range(ctx, (int)cut, m->n_nodes)) < 0) {
		status = 500;
		snprintf(err, sizeof(err), "running nodes %" PRId64 "..%d: %s", cut, m->n_nodes, strerror(-r));
		goto fail;
	}
	t_run1 = pipe_now_ns();
outputs:;
	int n_out = m->api.n_outputs > PEER_MAX_TENSORS ? PEER_MAX_TENSORS : m->api.n_outputs;
	for (int i = 0; i < n_out; i++) {
		struct tensor_view v;
		if ((r = engine_ctx_get(ctx, m->out_meta[i].name, &v)) < 0) {
			status = 500;
			snprintf(err, sizeof(err), "output '%s' not computed", m->out_meta[i].name);
			goto fail;
		}
		struct link_encoding le = link_encoding_effective(&pr.output_enc, v.dtype);
		size_t cap = link_encode_bound(&v, &le), len = 0;
		float scale = 1;
		if (!(outbuf[i] = malloc(cap ? cap : 1))) {
			r = -ENOMEM;
			goto fail;
		}
		if ((r = link_encode(&v, &le, outbuf[i], cap, &len, &scale)) < 0) {
			status = 500;
			snprintf(err, sizeof(err), "encoding output '%s': %s", m->out_meta[i].name, strerror(-r));
			goto fail;
		}
		outs[i] = (struct peer_tensor){ .name = m->out_meta[i].name, .dtype = v.dtype, .ndim = v.ndim,
						.enc = le, .scale = scale, .data = outbuf[i], .len = len };
		memcpy(outs[i].shape, v.shape, sizeof(outs[i].shape));
	}
	uint64_t t_end = pipe_now_ns();
	tm.queue_ns = (int64_t)(t_deq - rq->received_ns);
	tm.decode_ns = (int64_t)(t_dec1 - t_deq);
	tm.compute_ns = (int64_t)(t_run1 - t_dec1);
	tm.total_ns = (int64_t)(t_end - rq->received_ns);
	snprintf(tm.backend, sizeof(tm.backend), "%s", engine_backend_name(m->eng));
	if (have_energy && power_request_end_at(p->power, energy_id, (int64_t)t_end, 0, &pw) == 0)
		tm.energy_uj = pw.energy_uj;
	energy_id = 0;
	struct peer_response_spec spec = { .id = pr.id[0] ? pr.id : rq->msg->id, .model = m->name,
					   .outputs = outs, .n_outputs = n_out, .timing = &tm };
	if ((r = peer_response_build(&spec, &msg, err, sizeof(err))) < 0) {
		status = 500;
		goto fail;
	}
	uint8_t *body = NULL;
	size_t len = 0;
	if ((r = peer_msg_flatten(&msg, &body, &len)) < 0) {
		status = 500;
		goto fail;
	}
	respond_v2(job->call, (char *)body, len, msg.header_len);
	atomic_fetch_add(&m->requests[cut == 0 ? PIPE_OFFLOAD : PIPE_SPLIT], 1);
	atomic_fetch_add(&p->peer_requests_served, 1);
	goto out;
fail:
	if (have_energy && energy_id)
		power_request_end(p->power, energy_id, 0, &pw);
	atomic_fetch_add(&m->failures, 1);
	log_info("model %s: refused a robot's request: %s", m->name, err[0] ? err : strerror(-r));
	api_call_error(job->call, status, "%s", err[0] ? err : strerror(-r));
out:
	peer_msg_fini(&msg);
	for (int i = 0; i < PEER_MAX_TENSORS; i++)
		free(outbuf[i]);
	free(mem);
	free(views);
	free(cutv);
}

void pipe_run_job(struct pipeline *p, int worker, struct pipe_job *job)
{
	int64_t cut;

	if (job->kind == PIPE_JOB_V1) {
		run_v1(p, worker, job);
	} else if (api_params_int(job->v2->msg->params, "splitd_cut", &cut) == 0) {
		run_v2_tail(p, worker, job, cut);
	} else if (api_params_int(job->v2->msg->params, "splitd_cut", &cut) == -EINVAL) {
		atomic_fetch_add(&job->model->failures, 1);
		api_call_error(job->call, 400, "splitd_cut must be an integer");
	} else {
		run_v2_whole(p, worker, job);
	}
}

/* Measure the peer's time for the whole model once: send a zero input at
 * cut 0 and take its compute time as the scale of its per-node profile. */
int pipe_calibrate(struct pipe_model *m, int worker)
{
	struct engine_ctx *ctx = m->wctx[worker];
	struct engine_value_info vi;
	struct tensor_view v;
	struct offload of = { 0 };
	struct api_v1_request rq = { .kind = API_BODY_NPY, .cut = 0, .bands = 1 };
	char err[ERRLEN];
	void *zero;
	int r;

	if (!m->peer || m->api.n_inputs < 1 || engine_input_info(m->eng, 0, &vi) < 0)
		return -EINVAL;
	if (!(zero = calloc(1, vi.bytes ? vi.bytes : 1)))
		return -ENOMEM;
	v.dtype = vi.dtype;
	v.ndim = vi.ndim;
	memcpy(v.shape, vi.shape, sizeof(v.shape));
	v.data = zero;
	r = engine_ctx_set(ctx, vi.name, &v, err, sizeof(err));
	if (r == 0)
		r = offload(m, ctx, 0, PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_NONE), &rq, "calibrate", &of,
			    err, sizeof(err));
	free(zero);
	if (r < 0) {
		log_info("model %s: peer calibration failed: %s", m->name, err);
		return r;
	}
	const struct peer_timing *pt = &of.reply.resp.timing;
	if (pt->compute_ns > 0)
		pipe_plan_calibrated(m, ms((uint64_t)pt->compute_ns));
	peer_reply_fini(&of.reply);
	return 0;
}
