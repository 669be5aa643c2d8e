/* The layer split, robot side: nodes [0, cut) ran here; the tensors that
 * cross the cut leave for the peer encoded as the plan says, and the peer
 * answers the outputs of [cut, N) (pipe_tail.c on a splitd peer). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "link_codec.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

/* The one place where the planner's encoding index (plan/ cannot see
 * link/) and the wire's encoding type meet: the two tables below and their
 * two directions. */
static const enum link_value values[PLAN_DTYPE_COUNT] = { LINK_VALUE_F32, LINK_VALUE_F16, LINK_VALUE_I8 };
static const enum link_comp comps[PLAN_CODEC_COUNT] = { LINK_COMP_NONE, LINK_COMP_ZSTD, LINK_COMP_LZ4 };

int pipe_enc_plan(const struct link_encoding *e)
{
	int d = 0, c = 0;

	for (int i = 0; i < PLAN_DTYPE_COUNT; i++)
		if (values[i] == e->value)
			d = i;
	for (int i = 0; i < PLAN_CODEC_COUNT; i++)
		if (comps[i] == e->comp)
			c = i;
	return PLAN_ENC(d, c);
}

struct link_encoding pipe_enc_link(int enc)
{
	struct link_encoding e = { LINK_VALUE_F32, LINK_COMP_NONE, 0 };

	if (enc >= 0 && enc < PLAN_ENC_COUNT) {
		e.value = values[enc / PLAN_CODEC_COUNT];
		e.comp = comps[enc % PLAN_CODEC_COUNT];
	}
	return e;
}

const struct link_encoding *pipe_output_enc(const struct pipe_offload *of)
{
	/* detections travel as they are; plain f32 needs no word (a Triton
	 * peer reads plain KServe v2) */
	if (of->post.kind[0] || (of->output_enc.value == LINK_VALUE_F32 && of->output_enc.comp == LINK_COMP_NONE))
		return NULL;
	return &of->output_enc;
}

int64_t pipe_request_timeout_ms(struct pipeline *p)
{
	pthread_mutex_lock(&p->cfg_lock);
	int64_t timeout_ms = p->cfg->peer_request_timeout_ms;
	pthread_mutex_unlock(&p->cfg_lock);
	return timeout_ms;
}

/* The request carrying pts (n tensors crossing cut), sent; the answer in
 * of->reply (have_reply), or infer_failed when the link returned an error. */
int pipe_link_request(struct pipe_model *m, int cut, const char *id, const struct peer_tensor *pts, int n,
		      struct pipe_offload *of, char *err, size_t errlen)
{
	struct peer_request_spec spec = { .id = id, .cut = cut, .model_sha256 = engine_sha256(m->eng),
					  .inputs = pts, .n_inputs = n, .post = &of->post,
					  .output_enc = pipe_output_enc(of) };
	struct peer_msg msg = { 0 };
	int r;

	if ((r = peer_request_build(&spec, &msg, err, errlen)) < 0)
		goto out;
	int64_t timeout_ms = pipe_request_timeout_ms(m->pipe);
	of->send_ns = link_now_ns();
	if ((r = m->link.ops->send(m->link.ctx, &msg, timeout_ms, &of->reply, err, errlen)) < 0) {
		of->infer_failed = true;
		goto out;
	}
	of->have_reply = true;
out:
	peer_msg_fini(&msg);
	return r;
}

/* Cut tensor j of ctx encoded as want (f32 when it does not fit f16 or is
 * not finite) into a buffer of its own (*buf). */
static int encode_one(struct pipe_model *m, struct engine_ctx *ctx, int cut, int j, struct link_encoding want,
		      struct peer_tensor *pt, void **buf, struct pipe_offload *of, char *err, size_t errlen)
{
	struct engine_value_info vi;
	struct tensor_view v;
	size_t cap, len = 0;
	float scale = 1;
	int r;

	if ((r = engine_cut_tensor(m->eng, cut, j, &vi)) < 0 || (r = engine_ctx_get(ctx, vi.name, &v)) < 0) {
		return err_set(r, err, errlen, "cut %d: tensor %d is not available", cut, j);
	}
	struct link_encoding le = link_encoding_effective(&want, v.dtype);
	for (int pass = 0; pass < 2; pass++) {
		cap = link_encode_bound(&v, &le);
		free(*buf);
		if (!(*buf = malloc(cap ? cap : 1)))
			return -ENOMEM;
		r = link_encode(&v, &le, *buf, cap, &len, &scale);
		if (r != -ERANGE && r != -EDOM)
			break;
		/* beyond f16's range, or not finite: this tensor goes as is */
		le = (struct link_encoding){ LINK_VALUE_F32, want.comp, want.level };
	}
	if (r < 0) {
		return err_set(r, err, errlen, "encoding '%s' for the link: %s", vi.name, strerror(-r));
	}
	*pt = (struct peer_tensor){ .name = vi.name, .dtype = v.dtype, .ndim = v.ndim,
				    .enc = le, .scale = scale, .data = *buf, .len = len };
	memcpy(pt->shape, v.shape, sizeof(pt->shape));
	of->raw_bytes += tensor_bytes(&v);
	of->wire_bytes += len;
	return 0;
}

int pipe_split_send(struct pipe_model *m, struct engine_ctx *ctx, int cut, int enc, const char *id,
		    struct pipe_offload *of, char *err, size_t errlen)
{
	int n = engine_cut_count(m->eng, cut);
	struct peer_tensor *pts = NULL;
	void **bufs = NULL;
	int r;

	if (n < 0)
		return n;
	if (n > PEER_MAX_TENSORS) {
		return err_set(-E2BIG, err, errlen, "cut %d crosses %d tensors (at most %d travel)", cut, n, PEER_MAX_TENSORS);
	}
	pts = calloc((size_t)n + 1, sizeof(*pts));
	bufs = calloc((size_t)n + 1, sizeof(*bufs));
	if (!pts || !bufs) {
		r = -ENOMEM;
		goto out;
	}
	for (int j = 0; j < n; j++)
		if ((r = encode_one(m, ctx, cut, j, pipe_enc_link(enc), &pts[j], &bufs[j], of, err, errlen)) < 0)
			goto out;
	r = pipe_link_request(m, cut, id, pts, n, of, err, errlen);
out:
	for (int j = 0; bufs && j < n; j++)
		free(bufs[j]);
	free(bufs);
	free(pts);
	return r;
}
