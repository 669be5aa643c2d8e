/* The placement of one v1 request: the query's cut, encoding and bands
 * when it names them (checked against the model and the peer), else the
 * plan's (or an exploration of an idle link). */
#include <errno.h>
#include <stdio.h>

#include "err.h"
#include "log.h"
#include "pipeline-impl.h"

/* ?bands=B: a cut that can stream in B bands to a splitd peer. */
static int check_bands(struct pipe_model *m, int B, int cut, int enc, char *err, size_t errlen)
{
	char why[PIPE_ERRLEN] = "";
	int n = m->n_nodes;

	if (B > PEER_MAX_BANDS) {
		return err_set(-EINVAL, err, errlen, "bands=%d: at most %d", B, PEER_MAX_BANDS);
	}
	if (cut < 0 || cut >= n) {
		return err_set(-EINVAL, err, errlen, "bands=%d streams a cut to the peer: it needs 0 <= cut < %d", B, n);
	}
	pthread_mutex_lock(&m->pipe->cfg_lock);
	bool unverified = m->pipe->cfg->peer_allow_unverified;
	pthread_mutex_unlock(&m->pipe->cfg_lock);
	if (unverified) {
		return err_set(-EINVAL, err, errlen, "bands=%d: the peer may not be a splitd (peer.allow_unverified), "
			       "and only a splitd reads banded requests", B);
	}
	if (enc != PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE) && enc != PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_NONE) &&
	    enc != PLAN_ENC(PLAN_DTYPE_I8, PLAN_CODEC_NONE)) {
		return err_set(-EINVAL, err, errlen, "bands=%d: banded cuts travel as f32, f16 or i8 without compression, not %s",
			       B, plan_enc_name(enc));
	}
	if (cut > 0 && engine_band_check(m->eng, 0, cut, why, sizeof(why)) < 0) {
		return err_set(-EINVAL, err, errlen, "bands=%d at cut %d: %s", B, cut, why);
	}
	/* at cut 0 the input itself travels in bands (the peer's wavefront
	 * overlaps its compute with the upload) */
	if (cut == 0 && engine_band_inputs_check(m->eng, why, sizeof(why)) < 0) {
		return err_set(-EINVAL, err, errlen, "bands=%d at cut 0: %s", B, why);
	}
	return 0;
}

/* A raw frame that may travel as a PNG, with its size known. */
static bool frame_png(const struct pipe_request *rq)
{
	return !rq->is_image && rq->ops && rq->ops->encode_png && rq->png_bytes > 0;
}

/* The plan's candidate for this request (rq names no cut nor encoding). */
static void planned(struct pipe_model *m, const struct pipe_request *rq, struct plan_candidate *cur)
{
	bool image = rq->is_image;

	struct plan_candidate x;
	int n = m->n_nodes;

	if (pipe_explore(m, image, &x)) {
		char a[64], b[64];
		plan_describe(cur, n, a, sizeof(a));
		plan_describe(&x, n, b, sizeof(b));
		log_info("model %s: link idle: this request runs at %s (plan %s) to measure it", m->name, b, a);
		atomic_fetch_add(&m->explorations, 1);
		*cur = x;
	}
	if (frame_png(rq))
		pipe_tensor_candidate(m, rq->png_bytes, rq->png_ms, cur);
	else if (!image && cur->enc == PLAN_ENC_INPUT)
		pipe_tensor_candidate(m, 0, 0, cur);
}

int pipe_choose(struct pipe_model *m, const struct pipe_request *rq, int *cut, int *enc, int *bands,
		char *err, size_t errlen)
{
	const struct pipe_query *q = &rq->q;
	int n = m->n_nodes, r;
	bool image = rq->is_image;

	*bands = 1;
	/* ?policy=: that policy's choice for this request (no exploring) */
	struct plan_candidate cur = { .cut = n, .enc = PLAN_ENC_LOCAL, .bands = 1 };
	int own = pipe_plan_for_request(m, q->policy, image, &cur, err, errlen);
	if (own < 0)
		return own;
	if (q->cut > n) {
		return err_set(-EINVAL, err, errlen, "cut=%d is beyond the model's %d nodes (0..%d)", q->cut, n, n);
	}
	if (!m->link.ops) {
		if (q->cut >= 0 && q->cut < n) {
			return err_set(-EINVAL, err, errlen, "cut=%d needs a peer, and none is configured ([peer] url)", q->cut);
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
	if (q->cut < 0 && !q->encoding && !own)
		planned(m, rq, &cur);
	*cut = q->cut >= 0 ? q->cut : cur.cut;
	int plan_bands = q->cut < 0 && !q->encoding && cur.bands > 1 ? cur.bands : 1;
	*enc = q->cut >= 0 ? (*cut == 0 && image ? PLAN_ENC_INPUT : PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE))
			   : cur.enc;
	if (q->encoding && plan_enc_parse(q->encoding, enc) < 0) {
		return err_set(-EINVAL, err, errlen, "encoding=%s: not one of f32, f16, i8 (optionally +zstd or +lz4), input",
			       q->encoding);
	}
	if (*cut >= n) {
		*cut = n;
		*enc = PLAN_ENC_LOCAL;
	} else if (*enc == PLAN_ENC_LOCAL) {
		*enc = PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE);
	}
	if (*enc == PLAN_ENC_INPUT && (*cut != 0 || !(image || (rq->ops && rq->ops->encode_png)))) {
		return err_set(-EINVAL, err, errlen, "encoding=input sends the received image: it needs cut=0 and a JPEG/PNG body (or a raw frame)");
	}
	*bands = plan_bands;
	if (q->bands > 1) {
		if ((r = check_bands(m, q->bands, *cut, *enc, err, errlen)) < 0)
			return r;
		*bands = q->bands;
	}
	return 0;
}
