/* Streamed v2 bodies (api_handlers.stream_v2, api_call_body_wait): the
 * handler gets the call once the JSON header is in and reads the binary part
 * as it arrives. Over a raw TCP socket, so the test paces the body itself:
 *  - the handler runs before the body is complete (the client holds back
 *    the rest of the body until the handler has started) and reads every
 *    byte where the header puts it (a checksum against the bytes sent);
 *  - a client that goes away mid-body wakes the waiting handler with
 *    -ECONNRESET long before the idle timeout and body deadline (300 s),
 *    and the server serves the next request;
 *  - a body longer than its header announces gives -EMSGSIZE, a shorter
 *    one -EPIPE, each answered 400 with the reason;
 *  - stream_v2 answering 0 leaves the call to the usual way. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "api.h"

static const struct api_tensor_meta m_in[] = { { "x", TENSOR_F32, 2, { 1, -1 } } };
static const struct api_tensor_meta m_out[] = { { "y", TENSOR_F32, 1, { 1 } } };
static const struct api_model model = { .name = "m", .inputs = m_in, .outputs = m_out,
					.n_inputs = 1, .n_outputs = 1 };

static atomic_int started, last_rc, streamed_calls, plain_calls, bad_arrivals;

static uint64_t api_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int h_model(void *ctx, const char *name, const struct api_model **out)
{
	(void)ctx;
	if (name && strcmp(name, "m"))
		return -ENOENT;
	*out = &model;
	return 0;
}

static int h_stream(void *ctx, const struct api_v2_request *req)
{
	int on = 0;
	(void)ctx;
	return api_params_bool(req->msg->params, "stream", &on) == 0 && on;
}

struct job {
	struct api_call *call;
	const struct api_v2_request *req;
};

/* Reads the binary part in 1000-byte steps as it comes; answers the sum of
 * (byte * position) over each tensor's bytes. */
static void *reader(void *arg)
{
	struct job *j = arg;
	const struct api_v2_message *m = j->req->msg;
	char err[256] = "";
	uint64_t sum = 0;
	size_t off = 0, total = 0;
	int rc = 0;

	for (int i = 0; i < m->n_tensors; i++)
		total += m->tensors[i].data_len;
	for (int i = 0; i < m->n_tensors && !rc; i++) {
		const uint8_t *d = m->tensors[i].data;
		for (size_t k = 0; k < m->tensors[i].data_len && !rc; k += 1000) {
			size_t n = m->tensors[i].data_len - k < 1000 ? m->tensors[i].data_len - k : 1000;
			if ((rc = api_call_body_wait(j->call, off + k + n, NULL, err, sizeof(err))) < 0)
				break;
			for (size_t q = k; q < k + n; q++)
				sum += (uint64_t)d[q] * (off + q + 1);
			/* the bytes are in, so their arrival is known and past */
			uint64_t ta = api_call_body_arrival(j->call, off + k + n), now = api_now();
			if (!ta || ta > now || ta < j->req->received_ns)
				atomic_fetch_add(&bad_arrivals, 1);
		}
		off += m->tensors[i].data_len;
	}
	if (!rc)
		rc = api_call_body_end(j->call, err, sizeof(err));
	atomic_store(&last_rc, rc);
	if (rc) {
		api_call_error(j->call, 400, "%s", err);
	} else {
		char *body = malloc(64);
		int len = snprintf(body, 64, "{\"sum\":%llu}", (unsigned long long)sum);
		api_call_respond(j->call, 200, "application/json", body, (size_t)len);
	}
	free(j);
	return NULL;
}

static void h_infer_v2(void *ctx, struct api_call *call, const struct api_v2_request *req)
{
	(void)ctx;
	atomic_fetch_add(req->streamed ? &streamed_calls : &plain_calls, 1);
	atomic_store(&started, 1);
	struct job *j = malloc(sizeof(*j));
	pthread_t th;
	j->call = call;
	j->req = req;
	assert_int_equal(pthread_create(&th, NULL, reader, j), 0);
	pthread_detach(th);
}

static const struct api_handlers handlers = { .model = h_model, .infer_v2 = h_infer_v2,
					      .stream_v2 = h_stream };
static struct api_server *srv;
static int port;

static int connect_srv(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		assert_true(w > 0);
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/* The whole answer (the server closes: Connection: close). */
static int read_answer(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && (r = recv(fd, buf + n, cap - 1 - n, 0)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	int status = 0;
	sscanf(buf, "HTTP/1.1 %d", &status);
	return status;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Two tensors of n1, n2 bytes; body bytes i = (i * 7 + 3) & 255. Sends the
 * headers, the JSON header and `first` bytes of the binary part. */
static int begin(int stream, size_t n1, size_t n2, size_t claimed_extra, size_t first, uint8_t **bin,
		 uint64_t *sum)
{
	char json[512], head[512];
	int jl = snprintf(json, sizeof(json),
			  "{\"parameters\":{\"stream\":%s},\"inputs\":["
			  "{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[%zu],\"parameters\":{\"binary_data_size\":%zu}},"
			  "{\"name\":\"z\",\"datatype\":\"UINT8\",\"shape\":[%zu],\"parameters\":{\"binary_data_size\":%zu}}]}",
			  stream ? "true" : "false", n1, n1, n2, n2);
	size_t total = (size_t)jl + n1 + n2 + claimed_extra;
	int hl = snprintf(head, sizeof(head),
			  "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			  "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %d\r\n"
			  "Content-Length: %zu\r\n\r\n", jl, total);
	*bin = malloc(n1 + n2 + claimed_extra + 1);
	*sum = 0;
	for (size_t i = 0; i < n1 + n2 + claimed_extra; i++) {
		(*bin)[i] = (uint8_t)(i * 7 + 3);
		if (i < n1 + n2)
			*sum += (uint64_t)(*bin)[i] * (i + 1);
	}
	int fd = connect_srv();
	send_all(fd, head, (size_t)hl);
	send_all(fd, json, (size_t)jl);
	send_all(fd, *bin, first);
	return fd;
}

static void wait_started(int ms)
{
	for (int i = 0; i < ms / 5 && !atomic_load(&started); i++)
		sleep_ms(5);
}

/* Until the handler started: it must, and however loaded the machine is it
 * does (the bound only stops a hung test). */
#define WAIT_STARTED_MS 60000

static void test_streamed_reads_as_it_comes(void **state)
{
	(void)state;
	for (int stream = 1; stream >= 0; stream--) {
		uint8_t *bin;
		uint64_t sum;
		char ans[2048], want[64];
		size_t n1 = 150000, n2 = 70001;
		atomic_store(&started, 0);
		int s0 = atomic_load(&streamed_calls), p0 = atomic_load(&plain_calls);
		int fd = begin(stream, n1, n2, 0, 5000, &bin, &sum);
		/* streamed: the handler must be running while most of the body
		 * is still here; the usual way: not before it is all sent */
		/* (the usual way: 300 ms to start too early; it cannot start
		 * before the body is in, whatever the scheduler does) */
		wait_started(stream ? WAIT_STARTED_MS : 300);
		assert_int_equal(atomic_load(&started), stream);
		for (size_t off = 5000; off < n1 + n2; off += 30000) {
			size_t n = n1 + n2 - off < 30000 ? n1 + n2 - off : 30000;
			send_all(fd, bin + off, n);
			sleep_ms(2);
		}
		assert_int_equal(read_answer(fd, ans, sizeof(ans)), 200);
		snprintf(want, sizeof(want), "{\"sum\":%llu}", (unsigned long long)sum);
		assert_non_null(strstr(ans, want));
		assert_int_equal(atomic_load(&streamed_calls) - s0, stream);
		assert_int_equal(atomic_load(&bad_arrivals), stream ? 0 : (int)((n1 + 999) / 1000 + (n2 + 999) / 1000));
		assert_int_equal(atomic_load(&plain_calls) - p0, !stream);
		close(fd);
		free(bin);
	}
}

static void test_client_goes_away(void **state)
{
	(void)state;
	uint8_t *bin;
	uint64_t sum;
	atomic_store(&started, 0);
	atomic_store(&last_rc, 1);
	int fd = begin(1, 100000, 1000, 0, 20000, &bin, &sum);
	wait_started(WAIT_STARTED_MS);
	assert_int_equal(atomic_load(&started), 1);
	close(fd);
	/* well before the server's idle timeout and body deadline (300 s):
	 * seen by the handler's look at the socket, not by a timeout */
	for (int i = 0; i < 60000 / 5 && atomic_load(&last_rc) == 1; i++)
		sleep_ms(5);
	assert_int_equal(atomic_load(&last_rc), -ECONNRESET);
	/* and the call is done with (its slot back), well before the idle
	 * timeout: libmicrohttpd may not read the close on its own until then */
	for (int i = 0; i < 60000 / 5 && api_server_inflight(srv) > 0; i++)
		sleep_ms(5);
	assert_int_equal(api_server_inflight(srv), 0);
	free(bin);
	/* still serving */
	char ans[2048];
	fd = begin(1, 1000, 10, 0, 1010, &bin, &sum);
	assert_int_equal(read_answer(fd, ans, sizeof(ans)), 200);
	close(fd);
	free(bin);
}

static void test_wrong_length(void **state)
{
	(void)state;
	uint8_t *bin;
	uint64_t sum;
	char ans[2048];

	/* 3 bytes more than the header announces */
	atomic_store(&started, 0);
	int fd = begin(1, 4000, 100, 3, 1000, &bin, &sum);
	wait_started(WAIT_STARTED_MS);
	assert_int_equal(atomic_load(&started), 1);
	send_all(fd, bin + 1000, 3103);
	assert_int_equal(read_answer(fd, ans, sizeof(ans)), 400);
	assert_int_equal(atomic_load(&last_rc), -EMSGSIZE);
	assert_non_null(strstr(ans, "runs past"));
	close(fd);
	free(bin);

	/* Content-Length 5 short of what the header announces */
	char json[256], head[512];
	int jl = snprintf(json, sizeof(json),
			  "{\"parameters\":{\"stream\":true},\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\","
			  "\"shape\":[50],\"parameters\":{\"binary_data_size\":50}}]}");
	int hl = snprintf(head, sizeof(head),
			  "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
			  "Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n", jl, jl + 45);
	atomic_store(&started, 0);
	fd = connect_srv();
	send_all(fd, head, (size_t)hl);
	send_all(fd, json, (size_t)jl);
	wait_started(WAIT_STARTED_MS);
	assert_int_equal(atomic_load(&started), 1);
	uint8_t zero[45] = { 0 };
	send_all(fd, zero, sizeof(zero));
	assert_int_equal(read_answer(fd, ans, sizeof(ans)), 400);
	assert_int_equal(atomic_load(&last_rc), -EPIPE);
	assert_non_null(strstr(ans, "ended after"));
	close(fd);
}

int main(void)
{
	struct api_options o = { .listen = (const char *const[]){ "127.0.0.1:0" }, .n_listen = 1,
				 .max_body_bytes = 1 << 20, .timeout_s = 300,
				 .header_timeout_ms = 300000, .body_timeout_ms = 300000,
				 .body_max_ms = 300000 };
	char err[256];
	if (api_server_new(&o, &handlers, &srv, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	port = api_server_port(srv, 0);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_streamed_reads_as_it_comes),
		cmocka_unit_test(test_client_goes_away),
		cmocka_unit_test(test_wrong_length),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	if (api_server_free(srv, 30000))
		rc = 1;
	return rc;
}
