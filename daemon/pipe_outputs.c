/* The outputs of one inference (struct pipe_outputs, pipeline-impl.h):
 * views borrowed from an engine context, or decoded from the peer's answer
 * into buffers the struct owns. Every function leaves it consistent, so a
 * request may fill it from the peer, fail, fill it again from its own
 * context and release it on any path, as often as it likes. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "pipeline-impl.h"

void pipe_outputs_fini(struct pipe_outputs *o)
{
	for (int i = 0; i < PIPE_MAX_OUTPUTS; i++) {
		free(o->owned[i]);
		o->owned[i] = NULL;
	}
	o->n = 0;
}

int pipe_outputs_from_ctx(struct pipe_outputs *o, struct engine_ctx *ctx, const struct api_tensor_meta *meta,
			  int n)
{
	pipe_outputs_fini(o);
	n = n > PIPE_MAX_OUTPUTS ? PIPE_MAX_OUTPUTS : n;
	for (int i = 0; i < n; i++) {
		int r = engine_ctx_get(ctx, meta[i].name, &o->views[i]);
		if (r < 0) {
			pipe_outputs_fini(o);
			return r;
		}
		o->out[i].name = meta[i].name;
		o->out[i].t = &o->views[i];
	}
	o->n = n;
	return 0;
}

int pipe_outputs_from_reply(struct pipe_outputs *o, const struct peer_reply *rep,
			    const struct api_tensor_meta *meta, int n, char *err, size_t errlen)
{
	int r = 0;

	pipe_outputs_fini(o);
	n = n > PIPE_MAX_OUTPUTS ? PIPE_MAX_OUTPUTS : n;
	for (int i = 0; i < n; i++) {
		const struct peer_tensor *t = NULL;
		struct tensor_view *v = &o->views[i];

		for (int j = 0; j < rep->resp.n_outputs; j++)
			if (!strcmp(rep->resp.outputs[j].name, meta[i].name))
				t = &rep->resp.outputs[j];
		if (!t) {
			r = err_set(-EBADMSG, err, errlen, "the peer's answer lacks output '%s'", meta[i].name);
			goto out;
		}
		/* what the model produces here; the peer's tensor must match it */
		v->dtype = meta[i].dtype;
		v->ndim = meta[i].ndim;
		memcpy(v->shape, meta[i].shape, sizeof(v->shape));
		if (!(o->owned[i] = malloc(tensor_bytes(v) ? tensor_bytes(v) : 1))) {
			r = -ENOMEM;
			goto out;
		}
		v->data = o->owned[i];
		if ((r = peer_tensor_decode(t, v, err, errlen)) < 0)
			goto out;
		o->out[i].name = meta[i].name;
		o->out[i].t = v;
	}
	o->n = n;
out:
	if (r < 0)
		pipe_outputs_fini(o);
	return r;
}

int64_t pipe_outputs_nonfinite(const struct pipe_outputs *o)
{
	int64_t bad = 0;

	for (int i = 0; i < o->n; i++) {
		const struct tensor_view *v = &o->views[i];
		int64_t n = tensor_numel(v);

		if (!v->data)
			continue;
		for (int64_t k = 0; k < n; k++) {
			switch (v->dtype) {
			case TENSOR_F32: {
				float f;
				memcpy(&f, (const char *)v->data + 4 * k, 4);
				bad += !isfinite(f);
				break;
			}
			case TENSOR_F64: {
				double d;
				memcpy(&d, (const char *)v->data + 8 * k, 8);
				bad += !isfinite(d);
				break;
			}
			case TENSOR_F16: {
				uint16_t h;
				memcpy(&h, (const char *)v->data + 2 * k, 2);
				bad += (h & 0x7c00) == 0x7c00;
				break;
			}
			default:
				k = n;	/* integers are all finite */
				break;
			}
		}
	}
	return bad;
}
