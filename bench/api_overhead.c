/* The API's own cost per request, with a handler that does no work (so all
 * of the time is the daemon's overhead: HTTP, body, JPEG decode +
 * preprocessing, the hand-off to a worker thread and back, the response).
 *
 *   bench_api_overhead latency JPEG N     p50/p99 round trip on 1 connection
 *   bench_api_overhead rps JPEG CONNS SEC requests/s with a C client
 *   bench_api_overhead serve JPEG SEC     serve for wrk; prints the port
 *   bench_api_overhead metrics N          /metrics render time
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "api.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const struct api_preprocess pre = {
	.width = 224, .height = 224, .scale = 1 / 255.0f,
	.mean = {0.485f, 0.456f, 0.406f}, .std = {0.229f, 0.224f, 0.225f},
};
static const struct api_tensor_meta in[] = {{"input", TENSOR_F32, 4, {1, 3, 224, 224}}};
static const struct api_tensor_meta out[] = {{"logits", TENSOR_F32, 2, {1, 1000}}};
static const struct api_model model = {.name = "bench", .inputs = in, .n_inputs = 1,
				       .outputs = out, .n_outputs = 1, .preprocess = &pre};

/* a worker thread answers, as the daemon's scheduler will */
struct job {
	struct api_call *call;
	char *body;
	size_t len;
};
#define QCAP 256
static struct job q[QCAP];
static int qh, qt, stop;
static pthread_mutex_t ql = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qc = PTHREAD_COND_INITIALIZER;
static atomic_ullong decode_ns_sum, decode_n;

static void *worker(void *arg)
{
	pthread_mutex_lock(&ql);
	while (!stop || qh != qt) {
		if (qh == qt) {
			pthread_cond_wait(&qc, &ql);
			continue;
		}
		struct job j = q[qh++ % QCAP];
		pthread_mutex_unlock(&ql);
		api_call_respond(j.call, 200, "application/json", j.body, j.len);
		pthread_mutex_lock(&ql);
	}
	pthread_mutex_unlock(&ql);
	return NULL;
}

static int h_model(void *ctx, const char *name, const struct api_model **m)
{
	if (name && strcmp(name, "bench"))
		return -1;
	*m = &model;
	return 0;
}

static void h_infer(void *ctx, struct api_call *call, const struct api_v1_request *req)
{
	static float logits[1000];
	struct tensor_view t = {.dtype = TENSOR_F32, .ndim = 2, .shape = {1, 1000}, .data = logits};
	struct api_v1_output o = {"logits", &t};
	struct api_topk top[5] = {{1, "a", .5f}, {2, "b", .2f}, {3, "c", .1f}, {4, "d", .1f}, {5, "e", .1f}};
	struct api_v1_result r = {.model = "bench", .id = "1", .outputs = &o, .n_outputs = 1,
				  .outputs_none = 1, .top_k = top, .n_top_k = 5};
	r.timing.decode_ns = req->decode_ns;
	r.energy.reason = "benchmark";
	char *body;
	size_t len;
	atomic_fetch_add(&decode_ns_sum, req->decode_ns);
	atomic_fetch_add(&decode_n, 1);
	if (api_v1_response_build(&r, &body, &len)) {
		api_call_error(call, 500, "oom");
		return;
	}
	pthread_mutex_lock(&ql);
	if (qt - qh >= QCAP) {
		pthread_mutex_unlock(&ql);
		free(body);
		api_call_error(call, 503, "queue full");
		return;
	}
	q[qt++ % QCAP] = (struct job){call, body, len};
	pthread_cond_signal(&qc);
	pthread_mutex_unlock(&ql);
}

static void metrics_families(struct api_metrics *m)
{
	static const char *models[] = {"resnet18", "mobilenet_v2", "yolo_640"};
	static const char *pl[] = {"local", "split", "remote"};
	static const double b[] = {.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5};
	uint64_t c[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
	api_metrics_family(m, "splitd_requests_total", API_COUNTER, "Inference requests.");
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++) {
			const char *l[] = {"model", models[i], "placement", pl[k], NULL};
			api_metrics_value(m, l, 1000 * i + k);
		}
	api_metrics_family(m, "splitd_inference_duration_seconds", API_HISTOGRAM, "Inference time.");
	for (int i = 0; i < 3; i++)
		for (int k = 0; k < 3; k++) {
			const char *l[] = {"model", models[i], "placement", pl[k], NULL};
			api_metrics_histogram(m, l, b, c, 12, 12.5);
		}
	api_metrics_family(m, "splitd_inference_energy_joules", API_HISTOGRAM, "Energy per inference.");
	for (int i = 0; i < 3; i++) {
		const char *l[] = {"model", models[i], NULL};
		api_metrics_histogram(m, l, b, c, 12, 3.25);
	}
	static const char *rails[] = {"VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"};
	api_metrics_family(m, "splitd_rail_power_watts", API_GAUGE, "Power per rail.");
	for (int i = 0; i < 3; i++) {
		const char *l[] = {"rail", rails[i], NULL};
		api_metrics_value(m, l, 3.5 + i);
	}
	api_metrics_family(m, "splitd_rail_energy_joules_total", API_COUNTER, "Energy per rail.");
	for (int i = 0; i < 3; i++) {
		const char *l[] = {"rail", rails[i], NULL};
		api_metrics_value(m, l, 12345.678 + i);
	}
}

static int h_metrics(void *ctx, struct api_metrics *m)
{
	metrics_families(m);
	return 0;
}

static const struct api_handlers handlers = {.model = h_model, .infer_v1 = h_infer,
					     .metrics = h_metrics};

static void *jpg;
static size_t jpg_len;
static int port;

static size_t sink(char *p, size_t s, size_t n, void *u)
{
	return s * n;
}

static CURL *client(void)
{
	static char url[128];
	static struct curl_slist *h;
	CURL *c = curl_easy_init();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/infer", port);
	if (!h) {
		h = curl_slist_append(h, "Content-Type: image/jpeg");
		h = curl_slist_append(h, "Expect:");
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, jpg);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)jpg_len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	return c;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct rps_arg {
	double until;
	long ok, bad;
};

static void *rps_client(void *p)
{
	struct rps_arg *a = p;
	CURL *c = client();
	long code;
	while (now_s() < a->until) {
		if (curl_easy_perform(c) == CURLE_OK &&
		    !curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) && code == 200)
			a->ok++;
		else
			a->bad++;
	}
	curl_easy_cleanup(c);
	return NULL;
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	fseek(f, 0, SEEK_SET);
	void *p = malloc(*len);
	if (p && fread(p, 1, *len, f) != *len) {
		free(p);
		p = NULL;
	}
	fclose(f);
	return p;
}

int main(int argc, char **argv)
{
	char err[256];
	struct api_server *s = NULL;
	pthread_t w;

	if (argc < 3) {
		fprintf(stderr, "usage: %s latency JPEG N | rps JPEG CONNS SEC | serve JPEG SEC | metrics N\n",
			argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "metrics")) {
		int n = atoi(argv[2]);
		double t0 = now_s();
		size_t len = 0;
		for (int i = 0; i < n; i++) {
			struct api_metrics *m;
			api_metrics_new(API_METRICS_TEXT, &m);
			metrics_families(m);
			api_metrics_text(m, &len);
			api_metrics_free(m);
		}
		printf("metrics render: %.1f us per exposition of %zu bytes (%d renders)\n",
		       (now_s() - t0) / n * 1e6, len, n);
		return 0;
	}
	jpg = slurp(argv[2], &jpg_len);
	if (!jpg) {
		fprintf(stderr, "cannot read %s\n", argv[2]);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_ALL);
	const char *l[] = {"127.0.0.1:0"};
	struct api_options o = {.listen = l, .n_listen = 1, .threads = 2, .max_inflight = 64,
				.max_connections = 128};
	if (api_server_new(&o, &handlers, &s, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	port = api_server_port(s, 0);
	pthread_create(&w, NULL, worker, NULL);
	int rc = 0;
	if (!strcmp(argv[1], "latency") && argc > 3) {
		int n = atoi(argv[3]);
		double *t = calloc((size_t)n, sizeof(double));
		CURL *c = client();
		for (int i = 0; i < 50; i++)
			curl_easy_perform(c);
		atomic_store(&decode_ns_sum, 0);
		atomic_store(&decode_n, 0);
		for (int i = 0; i < n; i++) {
			double t0 = now_s();
			if (curl_easy_perform(c) != CURLE_OK)
				rc = 1;
			t[i] = (now_s() - t0) * 1e3;
		}
		curl_easy_cleanup(c);
		qsort(t, (size_t)n, sizeof(double), cmp);
		printf("224x224 JPEG (%zu bytes), 1 connection, %d requests: round trip p50 %.3f ms, "
		       "p99 %.3f ms; of which decode+preprocess %.3f ms mean\n", jpg_len, n,
		       t[n / 2], t[(int)(n * 0.99)],
		       atomic_load(&decode_ns_sum) / 1e6 / (double)atomic_load(&decode_n));
		free(t);
	} else if (!strcmp(argv[1], "rps") && argc > 4) {
		int conns = atoi(argv[3]);
		double sec = atof(argv[4]);
		struct rps_arg a[64];
		pthread_t th[64];
		if (conns < 1 || conns > 64)
			return 2;
		for (int i = 0; i < conns; i++) {
			a[i] = (struct rps_arg){now_s() + sec, 0, 0};
			pthread_create(&th[i], NULL, rps_client, &a[i]);
		}
		long ok = 0, bad = 0;
		for (int i = 0; i < conns; i++) {
			pthread_join(th[i], NULL);
			ok += a[i].ok;
			bad += a[i].bad;
		}
		printf("%d connections (C client): %.0f requests/s, %ld failed\n", conns, ok / sec, bad);
		rc = bad != 0;
	} else if (!strcmp(argv[1], "serve")) {
		printf("%d\n", port);
		fflush(stdout);
		sleep((unsigned)atoi(argv[3]));
	} else {
		rc = 2;
	}
	pthread_mutex_lock(&ql);
	stop = 1;
	pthread_cond_broadcast(&qc);
	pthread_mutex_unlock(&ql);
	pthread_join(w, NULL);
	api_server_free(s, 2000);
	free(jpg);
	curl_global_cleanup();
	return rc;
}
