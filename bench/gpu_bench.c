/* splitd_gpu_bench: latency of one model on a backend, as JSON, for
 * bench/gpu_vs_torch.sh (issue 8). `splitd bench` has no backend option
 * yet; this is the same measurement with one.
 *
 *   splitd_gpu_bench -m MODEL.onnx [-b cuda|cpu] [-r RUNS] [-w WARMUP]
 *
 * Prints {"model", "backend", "runs", "load_ms", "compute_ms" (median of
 * engine_run, input already set: kernels + final synchronize),
 * "compute_p10_ms", "compute_p90_ms", "e2e_ms" (median of engine_ctx_set
 * of the input + engine_run)}. Inputs are zeros of the model's shapes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static int set_inputs(const struct engine *e, struct engine_ctx *c, void **bufs)
{
	char err[256];

	for (int i = 0; i < engine_num_inputs(e); i++) {
		struct engine_value_info vi;
		struct tensor_view v;

		if (engine_input_info(e, i, &vi))
			return -EINVAL;
		v.dtype = vi.dtype;
		v.ndim = vi.ndim;
		memcpy(v.shape, vi.shape, sizeof(v.shape));
		v.data = bufs[i];
		if (engine_ctx_set(c, vi.name, &v, err, sizeof(err))) {
			fprintf(stderr, "splitd_gpu_bench: %s\n", err);
			return -EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *model = NULL, *backend = "cuda";
	int runs = 50, warmup = 5, opt, rc = 1;
	struct engine_opts eo = { 0 };
	struct engine *e = NULL;
	struct engine_ctx *c = NULL;
	double *t = NULL, *t2 = NULL, load_ms;
	void *bufs[64] = { 0 };
	char err[512];

	while ((opt = getopt(argc, argv, "m:b:r:w:")) != -1) {
		switch (opt) {
		case 'm': model = optarg; break;
		case 'b': backend = optarg; break;
		case 'r': runs = atoi(optarg); break;
		case 'w': warmup = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s -m MODEL [-b cuda|cpu] [-r RUNS] [-w WARMUP]\n", argv[0]);
			return 2;
		}
	}
	if (!model || runs < 1 || warmup < 0) {
		fprintf(stderr, "usage: %s -m MODEL [-b cuda|cpu] [-r RUNS] [-w WARMUP]\n", argv[0]);
		return 2;
	}
	eo.backend = backend;
	load_ms = now_ms();
	if (engine_load(model, &eo, &e, err, sizeof(err))) {
		fprintf(stderr, "splitd_gpu_bench: %s: %s\n", model, err);
		return 1;
	}
	load_ms = now_ms() - load_ms;
	if (engine_ctx_new(e, &c)) {
		fprintf(stderr, "splitd_gpu_bench: engine_ctx_new failed\n");
		goto out;
	}
	for (int i = 0; i < engine_num_inputs(e) && i < 64; i++) {
		struct engine_value_info vi;
		if (engine_input_info(e, i, &vi) || !(bufs[i] = calloc(1, vi.bytes ? vi.bytes : 1)))
			goto out;
	}
	t = calloc((size_t)runs, sizeof(*t));
	t2 = calloc((size_t)runs, sizeof(*t2));
	if (!t || !t2 || set_inputs(e, c, bufs))
		goto out;
	for (int i = 0; i < warmup; i++)
		if (engine_run(c))
			goto fail_run;
	for (int i = 0; i < runs; i++) {
		double t0 = now_ms();
		if (engine_run(c))
			goto fail_run;
		t[i] = now_ms() - t0;
	}
	for (int i = 0; i < runs; i++) {
		double t0 = now_ms();
		if (set_inputs(e, c, bufs) || engine_run(c))
			goto fail_run;
		t2[i] = now_ms() - t0;
	}
	qsort(t, (size_t)runs, sizeof(*t), cmp_double);
	qsort(t2, (size_t)runs, sizeof(*t2), cmp_double);
	printf("{\"model\":\"%s\",\"backend\":\"%s\",\"runs\":%d,\"load_ms\":%.3f,"
	       "\"compute_ms\":%.4f,\"compute_p10_ms\":%.4f,\"compute_p90_ms\":%.4f,"
	       "\"e2e_ms\":%.4f,\"nodes\":%d}\n",
	       model, engine_backend_name(e), runs, load_ms, t[runs / 2], t[runs / 10],
	       t[(runs * 9) / 10 < runs ? (runs * 9) / 10 : runs - 1], t2[runs / 2],
	       engine_num_nodes(e));
	rc = 0;
	goto out;
fail_run:
	fprintf(stderr, "splitd_gpu_bench: engine_run failed\n");
out:
	for (int i = 0; i < 64; i++)
		free(bufs[i]);
	free(t);
	free(t2);
	engine_ctx_free(c);
	engine_free(e);
	return rc;
}
