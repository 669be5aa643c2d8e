/* The robot's request pipeline without HTTP: the outputs of one inference
 * (pipe_outputs.c), how the peer client blames (peer_client.c, against a
 * peer of the test's own, libmicrohttpd), and every strategy and fallback
 * of the pipeline driven through transport-free requests with a fake link
 * (below, "the strategies and their fallbacks").
 *
 *   outputs: a peer answer of the wrong shape, dtype or with an output
 *   missing is refused and leaves nothing owned, and releasing it any
 *   number of times frees each buffer once (run under ASan in CI: the
 *   robot's double free of issue 15 was fini, refill, fini);
 *   non-finite values are counted per dtype.
 *
 *   blame: a 4xx about the request's content is a refusal (-EINVAL, the
 *   peer stays up, no failure counted); a 5xx is a failure (backoff);
 *   peer_client_blame() after a good transfer counts a failure and a bad
 *   answer and backs the peer off. No sleeps: the backoff is long and the
 *   probe brings the peer back. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <microhttpd.h>
#include <netinet/in.h>

#include <unistd.h>

#include "backend-impl.h"
#include "peer_client.h"
#include "peer_proto.h"
#include "pipeline-impl.h"
#include "pipeline.h"

/* ---- a peer answer, as the robot's client parses it ---------------------- */

struct answer_out {
	const char *name;
	enum tensor_dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	const void *data;
	size_t len;
};

/* A v2 answer with these outputs (f32 on the wire unless the dtype is
 * another), built and parsed by the link's own code. */
static void make_reply(const struct answer_out *o, int n, struct peer_reply *rep)
{
	struct peer_tensor ts[8];
	struct peer_response_spec spec = { .id = "t", .model = "m", .outputs = ts, .n_outputs = n };
	struct peer_msg msg = { 0 };
	char err[256] = "";
	uint8_t *body = NULL;
	size_t len = 0;

	assert_true(n <= 8);
	for (int i = 0; i < n; i++) {
		ts[i] = (struct peer_tensor){ .name = o[i].name, .dtype = o[i].dtype, .ndim = o[i].ndim,
					      .enc = { LINK_VALUE_F32, LINK_COMP_NONE, 0 }, .scale = 1,
					      .data = o[i].data, .len = o[i].len };
		memcpy(ts[i].shape, o[i].shape, sizeof(ts[i].shape));
	}
	assert_int_equal(peer_response_build(&spec, &msg, err, sizeof(err)), 0);
	assert_int_equal(peer_msg_flatten(&msg, &body, &len), 0);
	memset(rep, 0, sizeof(*rep));
	rep->body = body;
	rep->len = len;
	rep->http_status = 200;
	if (peer_response_parse(body, len, msg.header_len, &rep->resp, err, sizeof(err)) < 0)
		fail_msg("parse: %s", err);
	peer_msg_fini(&msg);
}

static const struct api_tensor_meta model_out[2] = {
	{ "logits", TENSOR_F32, 2, { 1, 4 } },
	{ "boxes", TENSOR_F32, 3, { 1, 2, 2 } },
};
static const float logits[4] = { 1, -2, 3.5f, 0.25f }, boxes[4] = { 0, 1, 2, 3 };

static void assert_empty(const struct pipe_outputs *o)
{
	assert_int_equal(o->n, 0);
	for (int i = 0; i < PIPE_MAX_OUTPUTS; i++)
		assert_null(o->owned[i]);
}

static void test_outputs_good(void **state)
{
	struct answer_out a[2] = {
		{ "boxes", TENSOR_F32, 3, { 1, 2, 2 }, boxes, sizeof(boxes) },
		{ "logits", TENSOR_F32, 2, { 1, 4 }, logits, sizeof(logits) },
	};
	struct pipe_outputs o = { 0 };
	struct peer_reply rep;
	char err[256] = "";

	(void)state;
	make_reply(a, 2, &rep);
	assert_int_equal(pipe_outputs_from_reply(&o, &rep, model_out, 2, err, sizeof(err)), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(o.out[0].name, "logits");	/* in the model's order */
	assert_memory_equal(o.views[0].data, logits, sizeof(logits));
	assert_memory_equal(o.views[1].data, boxes, sizeof(boxes));
	assert_int_equal(pipe_outputs_nonfinite(&o), 0);
	/* filled again: the first buffers are released, not leaked (LSan) */
	assert_int_equal(pipe_outputs_from_reply(&o, &rep, model_out, 2, err, sizeof(err)), 0);
	pipe_outputs_fini(&o);
	assert_empty(&o);
	pipe_outputs_fini(&o);	/* idempotent */
	assert_empty(&o);
	peer_reply_fini(&rep);
}

/* The first output decodes, the second does not: the struct holds nothing
 * after the failure, and every later release is a no-op. */
static void bad_second(const struct answer_out *second, const char *want)
{
	struct answer_out a[2] = { { "logits", TENSOR_F32, 2, { 1, 4 }, logits, sizeof(logits) }, *second };
	struct pipe_outputs o = { 0 };
	struct peer_reply rep;
	char err[256] = "";

	make_reply(a, 2, &rep);
	assert_int_equal(pipe_outputs_from_reply(&o, &rep, model_out, 2, err, sizeof(err)), -EBADMSG);
	print_message("refused: %s\n", err);
	assert_non_null(strstr(err, want));
	assert_empty(&o);
	pipe_outputs_fini(&o);
	pipe_outputs_fini(&o);
	assert_empty(&o);
	peer_reply_fini(&rep);
}

static void test_outputs_wrong_shape(void **state)
{
	struct answer_out b = { "boxes", TENSOR_F32, 3, { 1, 4, 1 }, boxes, sizeof(boxes) };
	(void)state;
	bad_second(&b, "shape");
}

static void test_outputs_wrong_dtype(void **state)
{
	struct answer_out b = { "boxes", TENSOR_I32, 3, { 1, 2, 2 }, boxes, sizeof(boxes) };
	(void)state;
	bad_second(&b, "INT32");
}

static void test_outputs_missing(void **state)
{
	struct answer_out b = { "scores", TENSOR_F32, 3, { 1, 2, 2 }, boxes, sizeof(boxes) };
	(void)state;
	bad_second(&b, "lacks output 'boxes'");
}

static void test_outputs_nonfinite(void **state)
{
	float f[4] = { NAN, 1, INFINITY, -INFINITY };
	uint16_t h[4] = { 0x7c00 /* inf */, 0x7e00 /* nan */, 0x3c00 /* 1 */, 0xfbff /* -max */ };
	int32_t i[4] = { 0, -1, 2147483647, 5 };
	struct pipe_outputs o = { 0 };

	(void)state;
	o.n = 1;
	o.views[0] = (struct tensor_view){ .dtype = TENSOR_F32, .ndim = 1, .shape = { 4 }, .data = f };
	assert_int_equal(pipe_outputs_nonfinite(&o), 3);
	o.views[0] = (struct tensor_view){ .dtype = TENSOR_F16, .ndim = 1, .shape = { 4 }, .data = h };
	assert_int_equal(pipe_outputs_nonfinite(&o), 2);
	o.views[0] = (struct tensor_view){ .dtype = TENSOR_I32, .ndim = 1, .shape = { 4 }, .data = i };
	assert_int_equal(pipe_outputs_nonfinite(&o), 0);
	pipe_outputs_fini(&o);	/* borrowed views: nothing freed */
	assert_empty(&o);
}

/* ---- blame by cause --------------------------------------------------------- */

enum { SRV_OK, SRV_400, SRV_500 };

struct srv {
	struct MHD_Daemon *d;
	uint16_t port;
	uint8_t sha[32];
	_Atomic int mode;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const void *body, size_t len,
			     size_t header_len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;
	char hl[32];

	if (header_len) {
		snprintf(hl, sizeof(hl), "%zu", header_len);
		MHD_add_response_header(r, "Inference-Header-Content-Length", hl);
	}
	MHD_add_response_header(r, "Content-Type", header_len ? "application/octet-stream" : "application/json");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload, size_t *upload_len, void **ptr)
{
	static int first;
	struct srv *s = cls;

	(void)version;
	(void)upload;
	if (!*ptr) {
		*ptr = &first;
		return MHD_YES;
	}
	if (*upload_len) {	/* the request's body: not read */
		*upload_len = 0;
		return MHD_YES;
	}
	if (!strcmp(method, "GET") && !strcmp(url, "/v2/health/ready"))
		return reply(c, 200, "", 0, 0);
	if (!strcmp(method, "GET") && !strcmp(url, "/v2/models/m")) {
		char hex[65], body[256];
		peer_sha256_hex(s->sha, hex);
		snprintf(body, sizeof(body), "{\"name\":\"m\",\"parameters\":{\"splitd_model_sha256\":\"%s\"}}", hex);
		return reply(c, 200, body, strlen(body), 0);
	}
	if (strcmp(method, "POST") || strcmp(url, "/v2/models/m/infer"))
		return reply(c, 404, "{\"error\":\"not found\"}", 21, 0);
	switch (atomic_load(&s->mode)) {
	case SRV_400: {
		static const char e[] = "{\"error\":\"JPEG header does not decode\"}";
		return reply(c, 400, e, sizeof(e) - 1, 0);
	}
	case SRV_500: {
		static const char e[] = "{\"error\":\"backend is unhealthy\"}";
		return reply(c, 500, e, sizeof(e) - 1, 0);
	}
	default: {
		struct peer_tensor t = { .name = "logits", .dtype = TENSOR_F32, .ndim = 2, .shape = { 1, 4 },
					 .enc = { LINK_VALUE_F32, LINK_COMP_NONE, 0 }, .scale = 1,
					 .data = logits, .len = sizeof(logits) };
		struct peer_response_spec spec = { .id = "t", .model = "m", .outputs = &t, .n_outputs = 1 };
		struct peer_msg msg = { 0 };
		char err[128];
		uint8_t *body = NULL;
		size_t len = 0;
		enum MHD_Result ret = MHD_NO;

		if (peer_response_build(&spec, &msg, err, sizeof(err)) == 0 &&
		    peer_msg_flatten(&msg, &body, &len) == 0)
			ret = reply(c, 200, body, len, msg.header_len);
		free(body);
		peer_msg_fini(&msg);
		return ret;
	}
	}
}

static int srv_setup(void **state)
{
	struct srv *s = calloc(1, sizeof(*s));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (!s)
		return -1;
	for (int i = 0; i < 32; i++)
		s->sha[i] = (uint8_t)(i * 7 + 1);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
				handler, s, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
	if (!s->d) {
		free(s);
		return -1;
	}
	s->port = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT)->port;
	*state = s;
	return 0;
}

static int srv_teardown(void **state)
{
	struct srv *s = *state;

	MHD_stop_daemon(s->d);
	free(s);
	return 0;
}

/* A one-tensor cut request (its content does not matter to this peer). */
static void make_request(const uint8_t *sha, struct peer_msg *msg)
{
	static const float x[4] = { 1, 2, 3, 4 };
	struct peer_tensor t = { .name = "x", .dtype = TENSOR_F32, .ndim = 2, .shape = { 1, 4 },
				 .enc = { LINK_VALUE_F32, LINK_COMP_NONE, 0 }, .scale = 1, .data = x, .len = sizeof(x) };
	struct peer_request_spec spec = { .id = "t", .cut = 1, .model_sha256 = sha, .inputs = &t, .n_inputs = 1 };
	char err[128];

	assert_int_equal(peer_request_build(&spec, msg, err, sizeof(err)), 0);
}

static void test_blame(void **state)
{
	struct srv *s = *state;
	struct peer_client *c = NULL;
	struct peer_client_stats st;
	struct peer_reply rep;
	struct peer_msg msg = { 0 };
	char url[64], err[256] = "";

	snprintf(url, sizeof(url), "http://127.0.0.1:%u", s->port);
	/* a backoff far longer than the test: nothing retries behind its back */
	struct peer_client_config cfg = { .url = url, .model = "m", .model_sha256 = s->sha, .plain = 1,
					  .request_timeout_ms = 5000, .backoff_min_ms = 600000,
					  .backoff_max_ms = 600000 };
	assert_int_equal(peer_client_new(&cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), 0);
	make_request(s->sha, &msg);

	/* a refusal of what the request carried: not the peer's failure */
	atomic_store(&s->mode, SRV_400);
	assert_int_equal(peer_client_infer(c, &msg, 0, &rep, err, sizeof(err)), -EINVAL);
	print_message("refusal: %s\n", err);
	assert_int_equal(rep.http_status, 400);
	assert_non_null(strstr(err, "does not decode"));
	peer_client_stats(c, &st);
	assert_int_equal(st.refusals, 1);
	assert_int_equal(st.failures, 0);
	assert_int_equal(peer_client_state(c), PEER_UP);

	/* the peer's own error: a failure, backed off */
	atomic_store(&s->mode, SRV_500);
	assert_int_equal(peer_client_infer(c, &msg, 0, &rep, err, sizeof(err)), -EPROTO);
	peer_client_stats(c, &st);
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.refusals, 1);
	assert_int_equal(peer_client_state(c), PEER_BACKOFF);
	assert_int_equal(peer_client_infer(c, &msg, 0, &rep, err, sizeof(err)), -EAGAIN);

	/* back up; an answer that transfers and parses, which the caller then
	 * finds unusable: blamed, counted, backed off */
	atomic_store(&s->mode, SRV_OK);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_infer(c, &msg, 0, &rep, err, sizeof(err)), 0);
	assert_int_equal(peer_client_state(c), PEER_UP);
	peer_reply_fini(&rep);
	peer_client_blame(c, 1);
	peer_client_stats(c, &st);
	assert_int_equal(st.failures, 2);
	assert_int_equal(st.bad_answers, 1);
	assert_int_equal(peer_client_state(c), PEER_BACKOFF);
	assert_int_equal(peer_client_infer(c, &msg, 0, &rep, err, sizeof(err)), -EAGAIN);
	/* a refusal blamed by the caller (the data was the robot's) */
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), 0);
	peer_client_blame(c, 0);
	peer_client_stats(c, &st);
	assert_int_equal(st.failures, 3);
	assert_int_equal(st.bad_answers, 1);
	assert_int_equal(peer_client_state(c), PEER_BACKOFF);

	peer_msg_fini(&msg);
	peer_client_free(c);
}

/* ---- the strategies and their fallbacks, without HTTP ----------------------
 *
 * A robot pipeline (pipe_new) on tests/models' "chain" (Conv; MaxPool;
 * Conv+Add+Sigmoid, threads = 1) answers requests built here
 * (pipe_request.h) through a respond callback of the test's own. Its link
 * is a fake (struct pipe_link_ops) whose peer is a second pipeline, role
 * peer, running the tail (pipe_tail.c) on the request as sent; or a peer
 * that is down, slow past the deadline or answers garbage. Every answer is
 * compared with a plain engine run of the whole model on the same input:
 * exactly, since every path computes in f32 with the same kernels (the
 * cut tensors and outputs travel as f32). */

static const char *models_dir = ".";

struct answer {
	int calls, status;
	char error[256];
	int n_outputs;
	float out[4096];
	size_t out_bytes;
	int cut, bands, fallback;
	char reason[256], encoding[32];
	/* a built body (the peer's tail) */
	void *body;
	size_t len, header_len;
};

static void answer_respond(void *ctx, struct pipe_result *res)
{
	struct answer *a = ctx;

	a->calls++;
	a->status = res->status;
	if (res->status != 200) {
		snprintf(a->error, sizeof(a->error), "%s", res->error ? res->error : "");
		free(res->body);
		return;
	}
	if (res->v1) {
		const struct api_v1_result *r = res->v1;
		a->n_outputs = r->n_outputs;
		assert_true(r->n_outputs >= 1);
		a->out_bytes = tensor_bytes(r->outputs[0].t);
		assert_true(a->out_bytes <= sizeof(a->out));
		memcpy(a->out, r->outputs[0].t->data, a->out_bytes);
		a->cut = r->placement.cut;
		a->bands = r->placement.bands;
		a->fallback = r->placement.fallback;
		snprintf(a->reason, sizeof(a->reason), "%s", r->placement.fallback_reason ? r->placement.fallback_reason : "");
		snprintf(a->encoding, sizeof(a->encoding), "%s", r->placement.encoding ? r->placement.encoding : "");
	} else {
		a->body = res->body;
		a->len = res->len;
		a->header_len = res->header_len;
	}
}

static const struct pipe_request_ops answer_ops = { .respond = answer_respond };

enum fake_mode { FAKE_OK, FAKE_DOWN, FAKE_SLOW, FAKE_SHAPE, FAKE_DTYPE, FAKE_NAN };

struct fake_peer {
	enum fake_mode mode;
	int wavefront;			/* a banded request runs as the peer's wavefront */
	size_t bytes_waited;		/* the furthest body_wait of the tail */
	struct pipeline *peer;		/* runs the tail in FAKE_OK */
	const float *want;		/* the right outputs (the garbage modes twist them) */
	size_t want_bytes;
	int sends, streams, aborted, fallbacks, blames, bad_answers;
	int64_t last_timeout_ms;
};

/* The message as one buffer, once a streamed one is complete (or aborted). */
static int fake_body(struct fake_peer *f, const struct peer_msg *msg, uint8_t **body, size_t *len)
{
	if (msg->stream) {
		struct peer_stream *st = msg->stream;
		int failed;
		f->streams++;
		pthread_mutex_lock(&st->mu);
		while (!st->failed && st->ready < msg->total_len)
			pthread_cond_wait(&st->cv, &st->mu);
		failed = st->failed;
		pthread_mutex_unlock(&st->mu);
		if (failed) {
			f->aborted++;
			return -ECANCELED;
		}
	}
	return peer_msg_flatten(msg, body, len);
}

/* A streamed body, as the API hands one to the tail: here it is all in
 * already, and the tail must not wait past its end. */
struct streamed_body {
	struct answer *a;
	struct fake_peer *f;
	size_t binary_len;
};

static void streamed_respond(void *ctx, struct pipe_result *res)
{
	answer_respond(((struct streamed_body *)ctx)->a, res);
}

static int streamed_wait(void *ctx, size_t bytes, char *err, size_t errlen)
{
	struct streamed_body *sb = ctx;

	if (bytes > sb->binary_len) {
		snprintf(err, errlen, "the body ended short");
		return -EPIPE;
	}
	sb->f->bytes_waited = bytes > sb->f->bytes_waited ? bytes : sb->f->bytes_waited;
	return 0;
}

static int streamed_end(void *ctx, char *err, size_t errlen)
{
	(void)ctx, (void)err, (void)errlen;
	return 0;
}

static const struct pipe_request_ops streamed_ops = {
	.respond = streamed_respond, .body_wait = streamed_wait, .body_end = streamed_end,
};

/* The peer pipeline's tail on the request; its answer parsed as the
 * client parses one. */
static int fake_tail(struct fake_peer *f, const struct peer_msg *msg, struct peer_reply *out, char *err,
		     size_t errlen)
{
	struct api_v2_message *v2 = NULL;
	struct answer a = { 0 };
	uint8_t *body = NULL;
	size_t len = 0;
	int r;

	if ((r = fake_body(f, msg, &body, &len)) < 0) {
		snprintf(err, errlen, "the request was aborted");
		return r;
	}
	struct pipe_request rq = { .kind = PIPE_REQ_V2, .model = &f->peer->models[0],
				   .received_ns = link_now_ns(), .ops = &answer_ops, .ctx = &a };
	struct streamed_body sb = { .a = &a, .f = f };
	if (f->wavefront && msg->stream) {
		r = api_v2_parse_header(API_V2_REQUEST, body, msg->header_len, body + msg->header_len,
					len - msg->header_len, &v2, &sb.binary_len, err, errlen);
		rq.streamed = 1;
		rq.ops = &streamed_ops;
		rq.ctx = &sb;
	} else {
		r = api_v2_parse(API_V2_REQUEST, body, len, msg->header_len, &v2, err, errlen);
	}
	assert_int_equal(r, 0);
	rq.msg = v2;
	pipe_run(f->peer, 0, &rq);
	api_v2_message_free(v2);
	free(body);
	assert_int_equal(a.calls, 1);
	memset(out, 0, sizeof(*out));
	out->http_status = a.status;
	if (a.status != 200) {
		snprintf(err, errlen, "peer answered %d: %s", a.status, a.error);
		return a.status < 500 ? -EINVAL : -EPROTO;
	}
	out->body = a.body;
	out->len = a.len;
	r = peer_response_parse(a.body, a.len, a.header_len, &out->resp, err, errlen);
	assert_int_equal(r, 0);
	return 0;
}

static int fake_send(void *link, const struct peer_msg *msg, int64_t timeout_ms, struct peer_reply *out,
		     char *err, size_t errlen)
{
	struct fake_peer *f = link;
	float twisted[4096];
	int r = 0;

	f->sends++;
	f->last_timeout_ms = timeout_ms;
	switch (f->mode) {
	case FAKE_OK:
		r = fake_tail(f, msg, out, err, errlen);
		break;
	case FAKE_DOWN:
		snprintf(err, errlen, "the peer is down");
		r = -EAGAIN;
		break;
	case FAKE_SLOW:	/* answers after the deadline: the client gives up at it */
		usleep((useconds_t)timeout_ms * 1000);
		snprintf(err, errlen, "no answer within %lld ms", (long long)timeout_ms);
		r = -ETIMEDOUT;
		break;
	default: {
		uint8_t *body = NULL;
		size_t len = 0;
		if ((r = fake_body(f, msg, &body, &len)) < 0)
			break;
		free(body);
		memcpy(twisted, f->want, f->want_bytes);
		struct answer_out o = { "y", TENSOR_F32, 4, { 1, 4, 8, 6 }, twisted, f->want_bytes };
		if (f->mode == FAKE_SHAPE)
			o.shape[3] = 3, o.shape[2] = 16;	/* as many values, the wrong shape */
		if (f->mode == FAKE_DTYPE)
			o.dtype = TENSOR_I32;
		if (f->mode == FAKE_NAN)
			twisted[5] = NAN;
		make_reply(&o, 1, out);
		break;
	}
	}
	if (r < 0)
		f->fallbacks++;	/* as the client counts its own */
	return r;
}

static enum peer_state fake_probe(void *link)
{
	return ((struct fake_peer *)link)->mode == FAKE_DOWN ? PEER_DOWN : PEER_UP;
}

static void fake_stats(void *link, struct peer_client_stats *out)
{
	struct fake_peer *f = link;

	*out = (struct peer_client_stats){ .state = fake_probe(link), .requests = (uint64_t)f->sends,
					   .failures = (uint64_t)f->blames, .bad_answers = (uint64_t)f->bad_answers,
					   .fallbacks = (uint64_t)f->fallbacks };
}

static void fake_count_fallback(void *link)
{
	((struct fake_peer *)link)->fallbacks++;
}

static void fake_blame(void *link, int bad_answer)
{
	struct fake_peer *f = link;

	f->blames++;
	f->bad_answers += bad_answer != 0;
}

static const struct pipe_link_ops fake_ops = {
	.send = fake_send, .stream = fake_send, .probe = fake_probe, .stats = fake_stats,
	.count_fallback = fake_count_fallback, .blame = fake_blame,
};

/* ---- a backend that turns unhealthy: the CPU's, failing after N node runs -- */

static struct backend_ops faulty;
static _Atomic long faulty_runs_left = 1L << 40;

struct faulty_ctx {
	void *cpu;
	int unhealthy;
};

static int faulty_ctx_new(const struct engine *e, void **out)
{
	struct faulty_ctx *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return -ENOMEM;
	if ((r = backend_cpu.ctx_new(e, &c->cpu)) < 0) {
		free(c);
		return r;
	}
	*out = c;
	return 0;
}

static void faulty_ctx_free(void *bctx)
{
	struct faulty_ctx *c = bctx;

	if (!c)
		return;
	backend_cpu.ctx_free(c->cpu);
	free(c);
}

/* A sticky error: this run fails, and every one after it on the context. */
static int faulty_run(void *bctx, const struct engine *e, const struct eng_node *n, const struct tensor_view *in,
		      struct tensor_view *out)
{
	struct faulty_ctx *c = bctx;

	if (c->unhealthy || atomic_fetch_sub(&faulty_runs_left, 1) <= 0) {
		c->unhealthy = 1;
		return -EIO;
	}
	return backend_cpu.run(c->cpu, e, n, in, out);
}

static int faulty_healthy(const void *bctx)
{
	return !((const struct faulty_ctx *)bctx)->unhealthy;
}

static void register_faulty(void)
{
	static int done;

	if (done++)
		return;
	faulty = backend_cpu;
	faulty.name = "faulty";
	faulty.ctx_new = faulty_ctx_new;
	faulty.ctx_free = faulty_ctx_free;
	faulty.run = faulty_run;
	faulty.healthy = faulty_healthy;
	assert_int_equal(backend_register(&faulty), 0);
	assert_int_equal(backend_register(&faulty), -EEXIST);
}

/* A backend that runs no op at all (as the CUDA backend lacks some): a
 * model on it does not load. */
static struct backend_ops partial;

static int partial_supports(const struct engine *e, const struct eng_node *n)
{
	(void)e, (void)n;
	return 0;
}

static void register_partial(void)
{
	static int done;

	if (done++)
		return;
	partial = backend_cpu;
	partial.name = "partial";
	partial.supports = partial_supports;
	assert_int_equal(backend_register(&partial), 0);
}

/* ---- the fixture ---------------------------------------------------------- */

struct rig {
	char model[512];
	struct pipeline *robot, *peer;
	struct fake_peer fake;
	float input[1 * 3 * 16 * 12];
	struct tensor_view in;
	float want[4096];
	size_t want_bytes;
};

static struct pipeline *new_pipeline(const char *model, const char *role, const char *backend)
{
	char text[1024], err[256] = "";
	struct config *cfg = NULL;
	struct pipeline *p = NULL;

	snprintf(text, sizeof(text),
		 "[daemon]\nrole = %s\nthreads = 1\nlog_level = warning\nstate_dir =\n[power]\nenabled = false\n"
		 "[peer]\nrequest_timeout_ms = 40\n[model.m]\npath = %s\n", role, model);
	if (config_load_string(text, "test", &cfg, err, sizeof(err)) < 0)
		fail_msg("config: %s", err);
	assert_int_equal(pipe_new(cfg, backend, &p), 0);
	config_free(cfg);
	return p;
}

/* The whole model on a plain engine: the reference. */
static void reference(struct rig *g)
{
	struct engine_opts eo = { .threads = 1, .backend = "cpu" };
	struct engine *e = NULL;
	struct engine_ctx *c = NULL;
	struct tensor_view y;
	char err[256];

	assert_int_equal(engine_load(g->model, &eo, &e, err, sizeof(err)), 0);
	assert_int_equal(engine_ctx_new(e, &c), 0);
	assert_int_equal(engine_ctx_set(c, "x", &g->in, err, sizeof(err)), 0);
	assert_int_equal(engine_run(c), 0);
	assert_int_equal(engine_ctx_get(c, "y", &y), 0);
	g->want_bytes = tensor_bytes(&y);
	assert_true(g->want_bytes <= sizeof(g->want));
	memcpy(g->want, y.data, g->want_bytes);
	engine_ctx_free(c);
	engine_free(e);
}

static struct rig *rig_new(const char *backend, float scale)
{
	struct rig *g = calloc(1, sizeof(*g));
	uint32_t seed = 7;

	assert_non_null(g);
	snprintf(g->model, sizeof(g->model), "%s/chain.onnx", models_dir);
	for (size_t i = 0; i < sizeof(g->input) / sizeof(g->input[0]); i++) {
		seed = seed * 1664525u + 1013904223u;
		g->input[i] = ((float)(seed >> 8) / 16777216.0f * 2 - 1) * scale;
	}
	g->in = (struct tensor_view){ .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 3, 16, 12 }, .data = g->input };
	reference(g);
	register_faulty();
	register_partial();
	g->robot = new_pipeline(g->model, "robot", backend);
	g->peer = new_pipeline(g->model, "peer", "cpu");
	g->fake = (struct fake_peer){ .mode = FAKE_OK, .peer = g->peer, .want = g->want, .want_bytes = g->want_bytes };
	return g;
}

/* The robot's model linked to the fake peer (its calibration taken as done:
 * the tests count every request the peer sees). */
static struct pipe_model *linked(struct rig *g)
{
	struct pipe_model *m = &g->robot->models[0];

	assert_int_equal(pipe_model_offload_init(m, (struct pipe_link){ &fake_ops, &g->fake }), 0);
	m->calibrated = true;
	return m;
}

static void rig_free(struct rig *g)
{
	pipe_free(g->robot);
	pipe_free(g->peer);
	free(g);
}

/* One v1 request at cut (-1: the plan's), encoding, bands. */
static void infer(struct rig *g, int cut, const char *enc, int bands, struct answer *a)
{
	struct pipe_request rq = { .kind = PIPE_REQ_V1, .model = &g->robot->models[0], .input = &g->in,
				   .q = { .cut = cut, .bands = bands, .encoding = enc },
				   .received_ns = link_now_ns(), .ops = &answer_ops, .ctx = a };

	memset(a, 0, sizeof(*a));
	pipe_run(g->robot, 0, &rq);
	assert_int_equal(a->calls, 1);	/* answered, exactly once */
	if (a->status != 200)
		fail_msg("status %d: %s", a->status, a->error);
}

static void assert_reference(const struct rig *g, const struct answer *a)
{
	assert_int_equal(a->out_bytes, g->want_bytes);
	for (size_t i = 0; i < g->want_bytes / sizeof(float); i++)
		if (memcmp(&a->out[i], &g->want[i], sizeof(float)))
			fail_msg("output %zu: %.9g, the whole model gives %.9g", i, a->out[i], g->want[i]);
}

static uint64_t placed(const struct pipe_model *m, enum pipe_placement k)
{
	return atomic_load(&m->requests[k]);
}

static void test_local(void **state)
{
	struct rig *g = rig_new("cpu", 1);
	struct pipe_model *m = &g->robot->models[0];
	struct answer a;

	(void)state;
	infer(g, -1, NULL, 0, &a);	/* no peer: all here */
	assert_reference(g, &a);
	assert_int_equal(a.cut, m->n_nodes);
	assert_int_equal(a.fallback, 0);
	/* a cut needs a peer: refused as the client's error, nothing lost */
	struct pipe_request rq = { .kind = PIPE_REQ_V1, .model = m, .input = &g->in, .q = { .cut = 1 },
				   .received_ns = link_now_ns(), .ops = &answer_ops, .ctx = &a };
	memset(&a, 0, sizeof(a));
	pipe_run(g->robot, 0, &rq);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, 400);
	assert_non_null(strstr(a.error, "needs a peer"));
	assert_int_equal(placed(m, PIPE_LOCAL), 1);
	assert_int_equal(atomic_load(&m->failures), 1);
	rig_free(g);
}

/* Every cut, one request each, through the peer's tail: the same answer. */
static void test_split(void **state)
{
	struct rig *g = rig_new("cpu", 1);
	struct pipe_model *m = linked(g);
	struct answer a;

	(void)state;
	assert_true(m->n_nodes >= 2);
	for (int cut = 0; cut < m->n_nodes; cut++) {
		infer(g, cut, "f32", 0, &a);
		assert_reference(g, &a);
		assert_int_equal(a.cut, cut);
		assert_int_equal(a.fallback, 0);
		assert_string_equal(a.encoding, "f32");
	}
	assert_int_equal(g->fake.sends, m->n_nodes);
	assert_int_equal(placed(m, PIPE_OFFLOAD), 1);
	assert_int_equal(placed(m, PIPE_SPLIT), m->n_nodes - 1);
	assert_int_equal(atomic_load(&m->fallbacks), 0);
	assert_int_equal(atomic_load(&g->peer->peer_requests_served), m->n_nodes);
	assert_int_equal(g->fake.blames, 0);
	rig_free(g);
}

/* Two row bands of cut 1 streamed as they are computed. */
static void test_banded(void **state)
{
	struct rig *g = rig_new("cpu", 1);
	struct pipe_model *m = linked(g);
	struct answer a;

	(void)state;
	infer(g, 1, "f32", 2, &a);
	assert_reference(g, &a);
	assert_int_equal(a.bands, 2);
	assert_int_equal(a.fallback, 0);
	assert_int_equal(g->fake.streams, 1);
	assert_int_equal(g->fake.aborted, 0);
	assert_int_equal(placed(m, PIPE_SPLIT), 1);
	rig_free(g);
}

/* The same request run by the peer as its wavefront: each band's rows
 * decoded and the row-local nodes advanced as they arrive (pipe_tail.c). */
static void test_banded_wavefront(void **state)
{
	struct rig *g = rig_new("cpu", 1);
	struct pipe_model *m = linked(g);
	struct answer a;

	(void)state;
	g->fake.wavefront = 1;
	assert_true(pipe_band_reach(&g->peer->models[0], 1) > 1);	/* a wavefront to run */
	infer(g, 1, "f32", 2, &a);
	assert_reference(g, &a);
	assert_int_equal(a.fallback, 0);
	assert_int_equal(g->fake.streams, 1);
	assert_true(g->fake.bytes_waited > 0);	/* it read the body band by band */
	assert_int_equal(placed(m, PIPE_SPLIT), 1);
	assert_int_equal(atomic_load(&g->peer->models[0].failures), 0);
	rig_free(g);
}

/* A failure of the link: the rest here, the same answer, counted. */
static void fallback_case(enum fake_mode mode, const char *why, int blamed)
{
	struct rig *g = rig_new("cpu", 1);
	struct pipe_model *m = linked(g);
	struct answer a;

	g->fake.mode = mode;
	infer(g, 1, "f32", 0, &a);
	assert_reference(g, &a);
	assert_int_equal(a.fallback, 1);
	if (!strstr(a.reason, why))
		fail_msg("fallback reason '%s' does not say '%s'", a.reason, why);
	assert_int_equal(g->fake.sends, 1);
	assert_int_equal(g->fake.fallbacks, 1);	/* counted once, by whoever decided it */
	assert_int_equal(g->fake.blames, blamed);
	assert_int_equal(g->fake.bad_answers, blamed);
	assert_int_equal(atomic_load(&m->fallbacks), 1);
	assert_int_equal(placed(m, PIPE_FALLBACK), 1);
	assert_int_equal(placed(m, PIPE_SPLIT), 0);
	assert_int_equal(atomic_load(&m->failures), 0);
	rig_free(g);
}

static void test_peer_down(void **state)
{
	(void)state;
	fallback_case(FAKE_DOWN, "down", 0);
}

static void test_peer_slow(void **state)
{
	(void)state;
	fallback_case(FAKE_SLOW, "within 40 ms", 0);	/* peer.request_timeout_ms */
}

static void test_peer_wrong_shape(void **state)
{
	(void)state;
	fallback_case(FAKE_SHAPE, "shape", 1);
}

static void test_peer_wrong_dtype(void **state)
{
	(void)state;
	fallback_case(FAKE_DTYPE, "INT32", 1);
}

static void test_peer_nan(void **state)
{
	(void)state;
	fallback_case(FAKE_NAN, "non-finite", 1);
}

/* A band whose values do not fit f16: the stream is aborted at once, the
 * rest of the cut computed and the model finished here. */
static void test_encode_failure(void **state)
{
	struct rig *g = rig_new("cpu", 1e8f);
	struct pipe_model *m = linked(g);
	struct answer a;

	(void)state;
	infer(g, 1, "f16", 2, &a);
	assert_reference(g, &a);
	assert_int_equal(a.fallback, 1);
	assert_non_null(strstr(a.reason, "beyond f16's range"));
	assert_int_equal(g->fake.streams, 1);
	assert_int_equal(g->fake.aborted, 1);
	assert_int_equal(g->fake.blames, 0);	/* not the peer's fault */
	assert_int_equal(atomic_load(&m->fallbacks), 1);
	assert_int_equal(placed(m, PIPE_FALLBACK), 1);
	rig_free(g);
}

static void assert_metrics_say(struct pipeline *p, const char *want)
{
	struct api_metrics *mx = NULL;
	size_t len = 0;

	assert_int_equal(api_metrics_new(API_METRICS_TEXT, &mx), 0);
	assert_int_equal(pipe_metrics(p, mx), 0);
	const char *text = api_metrics_text(mx, &len);
	if (!strstr(text, want))
		fail_msg("/metrics does not say '%s':\n%s", want, text);
	api_metrics_free(mx);
}

/* The backend turns unhealthy during a request: that request and the next
 * run on the CPU; /metrics and STATUS= say so. split: the request is split
 * at cut 2 to the fake peer, else it runs here. */
static void backend_failing(bool split)
{
	int at_cut = split ? 2 : -1;
	struct rig *g = rig_new("faulty", 1);
	struct pipe_model *m = &g->robot->models[0];
	char status[512];
	struct answer a;

	if (split)
		linked(g);
	assert_string_equal(engine_backend_name(m->eng), "faulty");
	serve_pipeline_hooks.status(g->robot, status, sizeof(status));
	assert_non_null(strstr(status, "backend faulty"));
	assert_null(strstr(status, "out of service"));
	assert_metrics_say(g->robot, "splitd_backend_info{backend=\"faulty\",out_of_service=\"\"} 1");
	atomic_store(&faulty_runs_left, 1);	/* the second node run fails */
	infer(g, at_cut, NULL, 0, &a);
	assert_reference(g, &a);
	assert_int_equal(a.fallback, 0);
	assert_string_equal(engine_backend_name(m->eng), "cpu");
	assert_int_equal(atomic_load(&g->robot->backend_failovers), 1);
	assert_int_equal(atomic_load(&m->failures), 0);
	serve_pipeline_hooks.status(g->robot, status, sizeof(status));
	if (!strstr(status, "backend faulty out of service"))
		fail_msg("STATUS= does not say so: %s", status);
	char *js = pipe_status_json(g->robot, false);	/* GET /v1/status */
	assert_non_null(js);
	if (!strstr(js, "\"out_of_service\": \"faulty\"") || !strstr(js, "\"failovers\": 1"))
		fail_msg("/v1/status does not say so: %s", js);
	free(js);
	assert_metrics_say(g->robot, "splitd_backend_failovers_total 1");
	assert_metrics_say(g->robot, "splitd_backend_info{backend=\"cpu\",out_of_service=\"faulty\"} 1");
	/* the next one: on the CPU from the start */
	infer(g, at_cut, NULL, 0, &a);
	assert_reference(g, &a);
	assert_int_equal(atomic_load(&g->robot->backend_failovers), 1);
	assert_int_equal(placed(m, split ? PIPE_SPLIT : PIPE_LOCAL), 2);
	atomic_store(&faulty_runs_left, 1L << 40);
	rig_free(g);
}

static void test_backend_unhealthy_local(void **state)
{
	(void)state;
	backend_failing(false);
}

static void test_backend_unhealthy_split(void **state)
{
	(void)state;
	backend_failing(true);
}

/* backend = auto: cuda when the CUDA backend is built and says it is usable
 * here, else the CPU, with the reason cuda gave; the log line says which. */
static void test_backend_auto(void **state)
{
	const struct backend_ops *cuda = backend_find("cuda");
	char why[160] = "", cuda_why[160] = "";
	const char *b = engine_backend_auto(why, sizeof(why));

	(void)state;
	print_message("auto: %s\n", why);
	assert_true(engine_backend_exists(b));
	assert_false(engine_backend_exists("faulty-not-registered"));
	if (!cuda) {
		assert_string_equal(b, "cpu");
		assert_non_null(strstr(why, "the only backend built"));
	} else if (cuda->available && cuda->available(cuda_why, sizeof(cuda_why)) < 0) {
		assert_string_equal(b, "cpu");
		assert_non_null(strstr(why, cuda_why));	/* the reason cuda gave */
	} else {
		assert_string_equal(b, "cuda");
	}
	/* a registered backend is not one auto picks: the built ones are */
	assert_string_not_equal(b, "faulty");
}

/* backend = auto, and the backend it picked cannot run the model: the
 * model runs on the CPU (not: no model) and answers as the reference. */
static void test_backend_auto_unsupported(void **state)
{
	struct rig *g = rig_new("partial", 1);
	struct pipe_model *m = &g->robot->models[0];
	struct answer a;

	(void)state;
	assert_int_equal(g->robot->n_models, 1);
	assert_string_equal(engine_backend_name(m->eng), "cpu");
	infer(g, -1, NULL, 0, &a);
	assert_reference(g, &a);
	rig_free(g);
}

/* ---- a raw frame (a camera's pixels) sent to the peer as a PNG ----------- */

struct frame_req {
	struct answer a;
	uint8_t rgb[16 * 12 * 3];	/* height 16, width 12: the model's input */
	const struct api_preprocess *pp;
	struct tensor_view in;
	void *png;
	int decodes, encodes;
};

static void frame_respond(void *ctx, struct pipe_result *res)
{
	answer_respond(&((struct frame_req *)ctx)->a, res);
}

static int frame_decode(void *ctx, const struct tensor_view **out, char *err, size_t errlen)
{
	struct frame_req *fr = ctx;
	struct api_image_info info;

	fr->decodes++;
	assert_int_equal(api_image_preprocess(fr->rgb, 12, 16, fr->pp, &fr->in, &info), 0);
	*out = &fr->in;
	return 0;
}

static int frame_png(void *ctx, const void **png, size_t *len, char *err, size_t errlen)
{
	struct frame_req *fr = ctx;
	int r = api_image_encode_png(fr->rgb, 12, 16, &fr->png, len, err, errlen);

	fr->encodes++;
	*png = fr->png;
	return r;
}

static const struct pipe_request_ops frame_ops = { .respond = frame_respond, .decode = frame_decode,
						   .encode_png = frame_png };

static void frame_infer(struct rig *g, struct frame_req *fr, int cut, const char *enc)
{
	struct pipe_model *m = &g->robot->models[0];
	struct pipe_request rq = { .kind = PIPE_REQ_V1, .model = m, .q = { .cut = cut, .encoding = enc },
				   .png_bytes = 1000, .png_ms = 1,
				   .received_ns = link_now_ns(), .ops = &frame_ops, .ctx = fr };

	fr->pp = m->api.preprocess;
	assert_non_null(fr->pp);
	pipe_run(g->robot, 0, &rq);
	assert_int_equal(fr->a.calls, 1);
	if (fr->a.status != 200)
		fail_msg("status %d: %s", fr->a.status, fr->a.error);
	free(fr->in.data);
	fr->in.data = NULL;
	free(fr->png);
	fr->png = NULL;
}

/* cut 0 "input" for a raw frame: the robot makes it a PNG, the peer
 * decodes the same pixels, and the answer is bit for bit the all-local
 * one (the same preprocessing and kernels on both sides, one thread). */
static void test_raw_frame_png(void **state)
{
	struct rig *g = rig_new("cpu", 1);
	struct pipe_model *m = linked(g);
	struct frame_req *local = calloc(1, sizeof(*local)), *sent = calloc(1, sizeof(*sent));
	uint32_t seed = 11;

	(void)state;
	assert_non_null(local);
	assert_non_null(sent);
	for (size_t i = 0; i < sizeof(local->rgb); i++) {
		seed = seed * 1664525u + 1013904223u;
		local->rgb[i] = sent->rgb[i] = (uint8_t)(seed >> 24);
	}
	frame_infer(g, local, m->n_nodes, NULL);
	assert_int_equal(local->decodes, 1);
	assert_int_equal(local->encodes, 0);
	int sends = g->fake.sends;
	frame_infer(g, sent, 0, "input");
	assert_int_equal(g->fake.sends, sends + 1);
	assert_int_equal(sent->encodes, 1);
	assert_int_equal(sent->decodes, 0);	/* the robot never preprocessed it */
	assert_int_equal(sent->a.cut, 0);
	assert_string_equal(sent->a.encoding, "input");
	assert_int_equal(sent->a.fallback, 0);
	assert_int_equal(sent->a.out_bytes, local->a.out_bytes);
	assert_memory_equal(sent->a.out, local->a.out, local->a.out_bytes);
	/* a tensor request may not ask for it */
	struct answer a;
	struct pipe_request rq = { .kind = PIPE_REQ_V1, .model = m, .input = &g->in, .q = { .cut = 0, .encoding = "input" },
				   .received_ns = link_now_ns(), .ops = &answer_ops, .ctx = &a };
	memset(&a, 0, sizeof(a));
	pipe_run(g->robot, 0, &rq);
	assert_int_equal(a.status, 400);
	assert_non_null(strstr(a.error, "encoding=input"));
	free(local);
	free(sent);
	rig_free(g);
}

int main(int argc, char **argv)
{
	if (argc > 1)
		models_dir = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outputs_good),
		cmocka_unit_test(test_outputs_wrong_shape),
		cmocka_unit_test(test_outputs_wrong_dtype),
		cmocka_unit_test(test_outputs_missing),
		cmocka_unit_test(test_outputs_nonfinite),
		cmocka_unit_test_setup_teardown(test_blame, srv_setup, srv_teardown),
		cmocka_unit_test(test_local),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_banded),
		cmocka_unit_test(test_banded_wavefront),
		cmocka_unit_test(test_peer_down),
		cmocka_unit_test(test_peer_slow),
		cmocka_unit_test(test_peer_wrong_shape),
		cmocka_unit_test(test_peer_wrong_dtype),
		cmocka_unit_test(test_peer_nan),
		cmocka_unit_test(test_encode_failure),
		cmocka_unit_test(test_backend_unhealthy_local),
		cmocka_unit_test(test_backend_unhealthy_split),
		cmocka_unit_test(test_backend_auto),
		cmocka_unit_test(test_backend_auto_unsupported),
		cmocka_unit_test(test_raw_frame_png),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
