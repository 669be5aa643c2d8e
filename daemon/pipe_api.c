/* The HTTP layer's handlers (api/ calls them; the only code of daemon/
 * that knows an api_call): each inference call becomes a transport-free
 * pipe_request (pipe_request.h) on the worker queue, and its answer goes
 * back through these callbacks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peer_proto.h"
#include "pipeline-impl.h"

/* binary: the body is a binary v2 message even when its binary part is
 * empty (a peer's answer of no detections: the robot reads the header) */
static void respond_v2(struct api_call *call, void *body, size_t len, size_t header_len, bool binary)
{
	if (header_len < len || (binary && header_len == len)) {
		char hl[24];
		snprintf(hl, sizeof(hl), "%zu", header_len);
		api_call_header(call, "Inference-Header-Content-Length", hl);
		api_call_respond(call, 200, "application/octet-stream", body, len);
	} else {
		api_call_respond(call, 200, "application/json", body, len);
	}
}

static void call_respond(void *ctx, struct pipe_result *res)
{
	struct api_call *call = ctx;
	char *body = NULL;
	size_t len = 0, hlen = 0;
	int r;

	if (res->status != 200) {
		free(res->body);
		api_call_error(call, res->status, "%s", res->error ? res->error : "failed");
	} else if (res->v1) {
		if ((r = api_v1_response_build(res->v1, &body, &len)) < 0)
			api_call_error(call, 500, "building the response: %s", strerror(-r));
		else
			api_call_respond(call, 200, "application/json", body, len);
	} else if (res->v2) {
		if ((r = api_v2_build(API_V2_RESPONSE, res->v2, &body, &len, &hlen)) < 0)
			api_call_error(call, 500, "building the response: %s", strerror(-r));
		else
			respond_v2(call, body, len, hlen, false);
	} else {
		respond_v2(call, res->body, res->len, res->header_len, true);
	}
}

static int call_decode(void *ctx, const struct tensor_view **out, char *err, size_t errlen)
{
	return api_call_decode(ctx, out, err, errlen);
}

static int call_body_wait(void *ctx, size_t bytes, char *err, size_t errlen)
{
	return api_call_body_wait(ctx, bytes, NULL, err, errlen);
}

static int call_body_end(void *ctx, char *err, size_t errlen)
{
	return api_call_body_end(ctx, err, errlen);
}

static uint64_t call_body_arrival(void *ctx, size_t bytes)
{
	return api_call_body_arrival(ctx, bytes);
}

static const struct pipe_request_ops call_ops = {
	.respond = call_respond,
	.decode = call_decode,
	.body_wait = call_body_wait,
	.body_end = call_body_end,
	.body_arrival = call_body_arrival,
};

static int h_model(void *ctx, const char *name, const struct api_model **out)
{
	struct pipeline *p = ctx;

	if (p->n_models == 0)
		return -ENOENT;
	if (!name) {
		if (p->n_models != 1)
			return -ENOENT;
		*out = &p->models[0].api;
		return 0;
	}
	for (int i = 0; i < p->n_models; i++)
		if (!strcmp(p->models[i].name, name)) {
			*out = &p->models[i].api;
			return 0;
		}
	return -ENOENT;
}

static int h_ready(void *ctx, const struct api_model *model)
{
	struct pipeline *p = ctx;

	return !atomic_load(&p->quiescing) && (model || p->n_models > 0 ||
					       p->cfg->role == CONFIG_ROLE_ROBOT);
}

static void submit(struct pipeline *p, struct api_call *call, struct pipe_request *rq)
{
	rq->ops = &call_ops;
	rq->ctx = call;
	rq->enqueued_ns = link_now_ns();
	if (pipe_enqueue(p, rq) < 0) {
		api_call_header(call, "Retry-After", "1");
		api_call_error(call, 503, "the inference queue is full (%d waiting)", p->qcap);
	}
}

static void h_infer_v1(void *ctx, struct api_call *call, const struct api_v1_request *req)
{
	struct pipe_request rq = {
		.kind = PIPE_REQ_V1, .model = req->model->user,
		.input = req->input, .body = req->body, .body_len = req->body_len,
		.is_image = req->kind != API_BODY_NPY, .image = &req->image,
		.q = { .cut = req->cut, .bands = req->bands, .no_wavefront = req->no_wavefront,
		       .encoding = req->encoding, .policy = req->policy, .outputs_none = req->outputs_none,
		       .outputs_raw = req->outputs_raw },
		.received_ns = req->received_ns, .decode_ns = req->decode_ns,
	};

	submit(ctx, call, &rq);
}

static void h_infer_v2(void *ctx, struct api_call *call, const struct api_v2_request *req)
{
	struct pipe_request rq = { .kind = PIPE_REQ_V2, .model = req->model->user, .msg = req->msg,
				   .streamed = req->streamed, .received_ns = req->received_ns };

	submit(ctx, call, &rq);
}

/* A robot's banded request whose first layers here are row-local runs as
 * its bands arrive (the wavefront); any other waits for its whole body. */
static int h_stream_v2(void *ctx, const struct api_v2_request *req)
{
	struct pipeline *p = ctx;
	struct pipe_model *m = req->model->user;
	int64_t cut, bands;
	int wf = 1;

	if (api_params_bool(req->msg->params, "splitd_wavefront", &wf) == 0 && !wf)
		return 0;
	if (!p->cfg->server_wavefront || p->cfg->role != CONFIG_ROLE_PEER ||
	    api_params_int(req->msg->params, "splitd_cut", &cut) ||
	    api_params_int(req->msg->params, "splitd_bands", &bands) || bands < 2 ||
	    bands > PEER_MAX_BANDS || cut < 0 || cut >= m->n_nodes ||
	    strcmp(engine_backend_name(m->eng), "cpu"))
		return 0;
	return pipe_band_reach(m, (int)cut) > cut;
}

static void h_status(void *ctx, struct api_call *call)
{
	const char *ex = api_call_query(call, "explain");
	char *text = pipe_status_json(ctx, ex && (!strcmp(ex, "1") || !strcmp(ex, "true")));

	if (!text) {
		api_call_error(call, 500, "out of memory");
		return;
	}
	api_call_respond(call, 200, "application/json", text, strlen(text));
}

const struct api_handlers pipe_api_handlers = {
	.model = h_model, .ready = h_ready,
	.infer_v1 = h_infer_v1, .infer_v2 = h_infer_v2, .stream_v2 = h_stream_v2,
	.status = h_status, .metrics = pipe_metrics,
};
