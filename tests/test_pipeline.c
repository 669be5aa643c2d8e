/* The robot's request pipeline without HTTP on the client side: the
 * outputs of one inference (pipe_outputs.c) and how the peer client blames
 * (peer_client.c), against a peer of the test's own (libmicrohttpd).
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

#include "peer_client.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outputs_good),
		cmocka_unit_test(test_outputs_wrong_shape),
		cmocka_unit_test(test_outputs_wrong_dtype),
		cmocka_unit_test(test_outputs_missing),
		cmocka_unit_test(test_outputs_nonfinite),
		cmocka_unit_test_setup_teardown(test_blame, srv_setup, srv_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
