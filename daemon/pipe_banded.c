/* Banded offload: nodes [0, cut) run as B row bands; each band's rows of
 * every cut tensor leave for the peer as soon as they are computed, in one
 * request whose body is sent while it is produced (peer_proto.h, "banded
 * requests"). On any error the band run still completes the cut in ctx, so
 * the caller can fall back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "link_codec.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

/* One banded request in the making. */
struct bsend {
	struct pipe_model *m;
	int worker, cut, enc, bands, n;
	struct engine_band *band;	/* NULL at cut 0: the inputs travel */
	struct link_encoding le;
	struct peer_tensor pts[PEER_MAX_TENSORS];
	struct tensor_view views[PEER_MAX_TENSORS];
	int64_t ends[PEER_MAX_TENSORS][PEER_MAX_BANDS];
	size_t marks[PEER_MAX_BANDS], band_bytes[PEER_MAX_BANDS];
	uint64_t marked[PEER_MAX_BANDS];
	struct peer_msg msg;
	struct peer_stream st;
	uint8_t *wire;
	size_t total, off;
	/* the sender thread */
	int64_t timeout_ms;
	struct peer_reply *reply;
	int rc;
	char err[PIPE_ERRLEN];
};

static void *sender_main(void *arg)
{
	struct bsend *s = arg;
	s->rc = s->m->link.ops->stream(s->m->link.ctx, &s->msg, s->timeout_ms, s->reply, s->err, sizeof(s->err));
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

int pipe_worker_band(struct pipe_model *m, int worker, int first, int last, int bands,
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

/* Cut tensor j: its view, its band ends and its bytes per band. */
static int describe_tensor(struct bsend *s, int j, struct pipe_offload *of, char *err, size_t errlen)
{
	struct engine_value_info vi;
	int r;

	if ((r = engine_cut_tensor(s->m->eng, s->cut, j, &vi)) < 0 ||
	    (r = s->band ? engine_band_cut_view(s->band, j, &s->views[j])
			 : engine_ctx_get(s->m->wctx[s->worker], vi.name, &s->views[j])) < 0)
		return r;
	if (s->views[j].dtype != TENSOR_F32 || s->views[j].ndim != 4) {
		return err_set(-EINVAL, err, errlen, "cut %d: tensor '%s' is not a float NCHW tensor: it cannot travel banded",
			       s->cut, vi.name);
	}
	for (int b = 0; b < s->bands; b++) {
		int r0 = 0, r1 = (int)(s->views[j].shape[2] * (b + 1) / s->bands);
		if (s->band)
			engine_band_rows(s->band, b, j, &r0, &r1);
		s->ends[j][b] = r1;
	}
	struct peer_tensor *pt = &s->pts[j];
	*pt = (struct peer_tensor){ .name = vi.name, .dtype = TENSOR_F32, .ndim = 4, .enc = s->le,
				    .scale = 1, .band_ends = s->ends[j], .n_band_ends = s->bands };
	memcpy(pt->shape, s->views[j].shape, sizeof(pt->shape));
	pt->len = 0;
	for (int b = 0; b < s->bands; b++) {
		size_t bb = peer_band_bytes(pt, b ? s->ends[j][b - 1] : 0, s->ends[j][b]);
		pt->len += bb;
		s->band_bytes[b] += bb;
	}
	if (!pt->len && tensor_numel(&s->views[j])) {
		return err_set(-EINVAL, err, errlen, "encoding %s cannot travel banded (f32, f16 or i8 without compression can)",
			       plan_enc_name(s->enc));
	}
	s->total += pt->len;
	of->raw_bytes += tensor_bytes(&s->views[j]);
	return 0;
}

/* The request: its JSON header built, its binary part the band-major
 * region `wire`, filled as the bands complete. */
static int build_request(struct bsend *s, const char *id, int no_wavefront, const struct pipe_offload *of,
			 char *err, size_t errlen)
{
	int r;

	if (!(s->wire = malloc(s->total ? s->total : 1)))
		return -ENOMEM;
	for (int j = 0; j < s->n; j++)
		s->pts[j].data = s->wire;	/* placeholders: the body is one region */
	struct peer_request_spec spec = { .id = id, .cut = s->cut, .model_sha256 = engine_sha256(s->m->eng),
					  .bands = s->bands, .no_wavefront = no_wavefront,
					  .inputs = s->pts, .n_inputs = s->n, .post = &of->post,
					  .output_enc = pipe_output_enc(of) };
	if ((r = peer_request_build(&spec, &s->msg, err, errlen)) < 0)
		return r;
	s->msg.iov[1] = (struct iovec){ s->wire, s->total };
	s->msg.n_iov = 2;
	s->msg.total_len = s->msg.header_len + s->total;
	for (int b = 0; b < s->bands; b++)	/* where each band's bytes end in the message */
		s->marks[b] = (b ? s->marks[b - 1] : s->msg.header_len) + s->band_bytes[b];
	s->st = (struct peer_stream){ .n_marks = s->bands, .marks = s->marks, .marked_ns = s->marked,
				      .ready = s->msg.header_len };
	pthread_mutex_init(&s->st.mu, NULL);
	pthread_cond_init(&s->st.cv, NULL);
	s->msg.stream = &s->st;
	return 0;
}

static void stream_ready(struct bsend *s, size_t ready, int failed)
{
	pthread_mutex_lock(&s->st.mu);
	if (failed)
		s->st.failed = 1;
	else
		s->st.ready = ready;
	pthread_cond_signal(&s->st.cv);
	pthread_mutex_unlock(&s->st.mu);
}

/* Compute band b (unless the inputs travel), encode its rows, release its
 * bytes to the sender. *broken: the band run itself failed. */
static int one_band(struct bsend *s, int b, uint64_t t_origin, struct pipe_banded *bd, int *broken,
		    char *err, size_t errlen)
{
	struct engine_band_time bt = { 0 };
	size_t b0 = s->off;
	int r = 0;

	if (!s->band) {
		bt.start_ns = bt.end_ns = (int64_t)link_now_ns();
	} else if ((r = engine_band_step(s->band, b)) < 0) {
		snprintf(err, errlen, "band %d of nodes 0..%d: %s", b, s->cut, strerror(-r));
		*broken = 1;
		return r;
	}
	for (int j = 0; j < s->n && r == 0; j++) {
		size_t len = 0;
		r = encode_rows(&s->views[j], &s->le, b ? s->ends[j][b - 1] : 0, s->ends[j][b], s->wire + s->off,
				s->total - s->off, &len);
		if (r < 0)
			snprintf(err, errlen, "encoding band %d of '%s' as %s: %s%s", b, s->pts[j].name,
				 plan_enc_name(s->enc), strerror(-r), r == -ERANGE ? " (beyond f16's range)" : "");
		s->off += len;
	}
	if (r < 0)
		return r;
	uint64_t t_ready = link_now_ns();
	stream_ready(s, s->msg.header_len + s->off, 0);
	if (s->band)
		engine_band_time(s->band, b, &bt);
	bd->tl[b] = (struct api_v1_band){ .row0 = b ? s->ends[0][b - 1] : 0, .row1 = s->ends[0][b],
					  .bytes = s->off - b0,
					  .compute_start_ns = (uint64_t)bt.start_ns - t_origin,
					  .compute_end_ns = (uint64_t)bt.end_ns - t_origin,
					  .ready_ns = t_ready - t_origin };
	return 0;
}

/* Every band, the send running meanwhile; on an error the send is aborted
 * at once and the rest of the cut computed for the fallback. */
static int run_bands(struct bsend *s, uint64_t t_origin, struct pipe_banded *bd, char *err, size_t errlen)
{
	uint64_t t_run0 = link_now_ns();
	int b = 0, broken = 0, r = 0;

	for (; b < s->bands; b++)
		if ((r = one_band(s, b, t_origin, bd, &broken, err, errlen)) < 0) {
			if (!broken)
				b++;	/* this band was computed; its bytes could not be encoded */
			break;
		}
	if (r < 0) {
		stream_ready(s, 0, 1);
		while (!broken && s->band && b < s->bands && engine_band_step(s->band, b) == 0)
			b++;
		if (!s->band)
			b = s->bands;
	}
	bd->computed = b == s->bands;
	bd->local_ns = link_now_ns() - t_run0;
	return r;
}

/* The sender's outcome, and the peer's wavefront on our clock from when the
 * request left (no clock sync: late by the header's one-way delay). */
static int finish(struct bsend *s, int r, uint64_t t_origin, struct pipe_offload *of, struct pipe_banded *bd,
		  char *err, size_t errlen)
{
	of->infer_failed = s->rc < 0;
	/* an empty band (a small tensor in many bands) has nothing to send:
	 * it is on its way once it is ready */
	for (int k = 0; k < s->bands; k++)
		bd->tl[k].sent_ns = !s->band_bytes[k] ? bd->tl[k].ready_ns
				    : s->marked[k] ? s->marked[k] - t_origin : 0;
	if (r == 0 && s->rc < 0) {
		r = err_set(s->rc, err, errlen, "%s", s->err);
	}
	if (r == 0) {
		of->have_reply = true;
		const struct peer_timing *pt = &of->reply.resp.timing;
		for (int k = 0; k < s->bands && pt->n_bands == s->bands; k++) {
			uint64_t t0 = of->send_ns - t_origin;
			bd->tl[k].peer_known = 1;
			bd->tl[k].peer_arrived_ns = t0 + (uint64_t)pt->band_arrived_ns[k];
			bd->tl[k].peer_start_ns = t0 + (uint64_t)pt->band_start_ns[k];
			bd->tl[k].peer_end_ns = t0 + (uint64_t)pt->band_end_ns[k];
		}
	} else if (s->rc == 0) {
		peer_reply_fini(&of->reply);
	}
	return r;
}

int pipe_banded_send(struct pipe_model *m, int worker, int cut, int enc, int bands, int no_wavefront,
		     const char *id, uint64_t t_origin, struct pipe_offload *of, struct pipe_banded *bd,
		     char *err, size_t errlen)
{
	struct bsend *s = calloc(1, sizeof(*s));
	bool stream = false;
	pthread_t th;
	int r;

	if (!s)
		return -ENOMEM;
	*s = (struct bsend){ .m = m, .worker = worker, .cut = cut, .enc = enc, .bands = bands,
			     .n = engine_cut_count(m->eng, cut), .le = pipe_enc_link(enc), .reply = &of->reply };
	if (s->n < 1 || s->n > PEER_MAX_TENSORS) {
		r = err_set(-EINVAL, err, errlen, "cut %d crosses %d tensors", cut, s->n);
		goto out;
	}
	/* cut 0: the inputs, already in ctx, travel in bands (nothing to compute) */
	if (cut > 0 && (r = pipe_worker_band(m, worker, 0, cut, bands, &s->band, err, errlen)) < 0)
		goto out;
	for (int j = 0; j < s->n; j++)
		if ((r = describe_tensor(s, j, of, err, errlen)) < 0)
			goto out;
	of->wire_bytes = s->total;
	if ((r = build_request(s, id, no_wavefront, of, err, errlen)) < 0)
		goto out;
	stream = true;
	s->timeout_ms = pipe_request_timeout_ms(m->pipe);
	of->send_ns = link_now_ns();
	if ((r = pthread_create(&th, NULL, sender_main, s)) != 0) {
		r = err_set(-r, err, errlen, "starting the band sender: %s", strerror(r));
		goto out;
	}
	r = run_bands(s, t_origin, bd, err, errlen);
	pthread_join(th, NULL);
	r = finish(s, r, t_origin, of, bd, err, errlen);
out:
	if (stream) {
		pthread_cond_destroy(&s->st.cv);
		pthread_mutex_destroy(&s->st.mu);
	}
	peer_msg_fini(&s->msg);
	free(s->wire);
	free(s);
	return r;
}
