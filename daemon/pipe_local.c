/* The local strategy: nodes [0, cut) of a robot's request here (all of
 * them when the plan keeps the model local), and a plain KServe v2 request,
 * the whole model, as any v2 server runs it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

int pipe_local_head(struct pipe_v1 *v)
{
	int r;

	v->t_local0 = link_now_ns();
	if (v->cut > 0 && v->bands == 1 && (r = engine_run_range(v->ctx, 0, v->cut)) < 0) {
		v->status = 500;
		snprintf(v->err, sizeof(v->err), "running nodes 0..%d: %s", v->cut, strerror(-r));
		return r;
	}
	v->t_local1 = link_now_ns();
	v->local_nodes = v->cut;
	return 0;
}

/* The model's inputs from the message's tensors, by name (a lone input
 * may come under any name). */
static int set_inputs(struct pipe_model *m, struct engine_ctx *ctx, const struct api_v2_message *msg,
		      char *err, size_t errlen)
{
	int r;

	for (int i = 0; i < m->api.n_inputs; i++) {
		const struct api_v2_tensor *t = NULL;
		struct tensor_view v;

		for (int j = 0; j < msg->n_tensors; j++)
			if (!strcmp(msg->tensors[j].name, m->in_meta[i].name))
				t = &msg->tensors[j];
		if (!t && m->api.n_inputs == 1 && msg->n_tensors == 1)
			t = &msg->tensors[0];
		if (!t) {
			return err_set(-EINVAL, err, errlen, "input '%s' is missing", m->in_meta[i].name);
		}
		if ((r = api_v2_tensor_view(t, &m->in_meta[i], &v, err, errlen)) < 0 ||
		    (r = engine_ctx_set(ctx, m->in_meta[i].name, &v, err, errlen)) < 0)
			return r;
	}
	return 0;
}

/* A detector's answer to a v2 request: its detections (model input
 * pixels, no image here) as the tensors boxes FP32 [N, 4], scores FP32 [N],
 * classes INT32 [N] and, for a pose head, keypoints FP32 [N, K, 3]. */
static int v2_detections(struct pipe_model *m, struct engine_ctx *ctx, const struct pipe_request *rq,
			 char *err, size_t errlen)
{
	const struct api_v2_message *msg = rq->msg;
	struct post_result det = { 0 };
	struct pipe_post_wire w = { 0 };
	struct peer_tensor pts[4];
	struct api_v2_tensor outs[4];
	static const char *const names[4] = { "boxes", "scores", "classes", "keypoints" };
	struct tensor_view v;
	int n = 0, r;

	if ((r = engine_ctx_get(ctx, m->out_meta[0].name, &v)) < 0)
		return err_set(r, err, errlen, "output '%s' not computed", m->out_meta[0].name);
	if ((r = post_decode(&m->post, &v, &det, err, errlen)) < 0 || (r = pipe_post_wire(&det, &w, pts, &n)) < 0)
		goto out;
	for (int i = 0; i < n; i++) {
		int binary = msg->binary_data_output;
		for (int j = 0; j < msg->n_outputs; j++)
			if (!strcmp(msg->outputs[j].name, names[i]))
				binary = msg->outputs[j].binary;
		outs[i] = (struct api_v2_tensor){ .name = names[i], .datatype = tensor_dtype_name(pts[i].dtype),
						  .dtype = pts[i].dtype, .ndim = pts[i].ndim, .data = pts[i].data,
						  .data_len = pts[i].len, .binary = binary };
		memcpy(outs[i].shape, pts[i].shape, sizeof(outs[i].shape));
	}
	struct api_v2_message resp = { .id = msg->id, .model_name = m->name, .model_version = "1",
				       .tensors = outs, .n_tensors = n };
	struct pipe_result res = { .status = 200, .v2 = &resp };
	rq->ops->respond(rq->ctx, &res);
	atomic_fetch_add(&m->requests[PIPE_LOCAL], 1);
out:
	pipe_post_wire_fini(&w);
	post_result_fini(&det);
	return r;
}

/* A detector answers its raw outputs only when the request names one. */
static bool wants_raw(const struct pipe_model *m, const struct api_v2_message *msg)
{
	for (int j = 0; j < msg->n_outputs; j++)
		for (int i = 0; i < m->api.n_outputs; i++)
			if (!strcmp(msg->outputs[j].name, m->out_meta[i].name))
				return true;
	return false;
}

int pipe_local_v2(struct pipe_model *m, int worker, const struct pipe_request *rq, int *status,
		  char *err, size_t errlen)
{
	const struct api_v2_message *msg = rq->msg;
	struct engine_ctx *ctx = m->wctx[worker];
	struct api_v2_tensor outs[64];
	int r;

	*status = 400;
	if ((r = set_inputs(m, ctx, msg, err, errlen)) < 0)
		return r;
	*status = 500;
	if ((r = engine_run(ctx)) < 0) {
		return err_set(r, err, errlen, "inference failed: %s", strerror(-r));
	}
	if (m->detects && !wants_raw(m, msg))
		return v2_detections(m, ctx, rq, err, errlen);
	int n = m->api.n_outputs > 64 ? 64 : m->api.n_outputs;
	for (int i = 0; i < n; i++) {
		struct tensor_view v;
		int binary = msg->binary_data_output;

		if ((r = engine_ctx_get(ctx, m->out_meta[i].name, &v)) < 0) {
			return err_set(r, err, errlen, "output '%s' not computed", m->out_meta[i].name);
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
	struct api_v2_message resp = { .id = msg->id, .model_name = m->name, .model_version = "1",
				       .tensors = outs, .n_tensors = n };
	struct pipe_result res = { .status = 200, .v2 = &resp };
	rq->ops->respond(rq->ctx, &res);
	atomic_fetch_add(&m->requests[PIPE_LOCAL], 1);
	return 0;
}
