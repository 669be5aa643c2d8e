/* Cost of running [0, k) in bands instead of at once: the gather/scatter of
 * band rows around the unchanged kernels, and smaller kernel calls.
 *
 * usage: bench_band_overhead MODEL.onnx INPUT.bin THREADS RUNS CUT...
 * (CUT 0 = every legal cut). For each cut and B in {1, 2, 4, 8}: the median
 * of RUNS timed runs (after one warm-up) of engine_run_range(0, k) and of
 * engine_band_run, the bytes copied per run, and the private buffers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(double), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int set_input(struct engine *e, struct engine_ctx *c, const void *data)
{
	struct engine_value_info vi;
	struct tensor_view v;
	char err[256];
	engine_input_info(e, 0, &vi);
	v.dtype = vi.dtype, v.ndim = vi.ndim, v.data = (void *)data;
	memcpy(v.shape, vi.shape, sizeof(v.shape));
	return engine_ctx_set(c, vi.name, &v, err, sizeof(err));
}

/* Unbanded and banded runs alternate within each round, so a noisy
 * neighbour on the machine slows both alike. */
static int bench_cut(struct engine *e, struct engine_ctx *c, const void *in, int k, int runs)
{
	static const int bands[] = { 1, 2, 4, 8 };
	enum { NB = 4 };
	struct engine_band *b[NB] = { 0 };
	double *t = calloc((size_t)runs * (NB + 1), sizeof(double));
	char err[256];
	int rc = -ENOMEM;

	if (!t)
		return rc;
	for (int i = 0; i < NB; i++)
		if ((rc = engine_band_new(e, c, 0, k, bands[i], &b[i], err, sizeof(err)))) {
			fprintf(stderr, "cut %d: %s\n", k, err);
			goto out;
		}
	for (int r = -1; r < runs; r++)
		for (int i = 0; i <= NB; i++) {
			set_input(e, c, in);
			double t0 = now_ms();
			rc = i ? engine_band_run(b[i - 1], NULL, NULL) : engine_run_range(c, 0, k);
			if (rc)
				goto out;
			if (r >= 0)
				t[(size_t)i * runs + r] = now_ms() - t0;
		}
	double base = median(t, runs);
	printf("%4d %8.2f MB %8.2f", k, engine_cut_bytes(e, k) / 1e6, base);
	for (int i = 0; i < NB; i++) {
		struct engine_band_stats st;
		engine_band_stats(b[i], &st);
		double m = median(t + (size_t)(i + 1) * runs, runs);
		printf("  | B=%d %8.2f %+6.1f%% %5.1f MB", bands[i], m, (m / base - 1) * 100,
		       st.copy_bytes / 1e6);
	}
	printf("\n");
out:
	for (int i = 0; i < NB; i++)
		engine_band_free(b[i]);
	free(t);
	return rc;
}

int main(int argc, char **argv)
{
	struct engine_opts opts = { 0 };
	struct engine *e = NULL;
	struct engine_ctx *c = NULL;
	struct engine_value_info vi;
	char err[512];
	void *in = NULL;
	int rc = 1;

	if (argc < 6) {
		fprintf(stderr, "usage: %s MODEL.onnx INPUT.bin THREADS RUNS CUT...\n", argv[0]);
		return 2;
	}
	opts.threads = atoi(argv[3]);
	int runs = atoi(argv[4]) > 0 ? atoi(argv[4]) : 1;
	if (engine_load(argv[1], &opts, &e, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 1;
	}
	engine_input_info(e, 0, &vi);
	in = calloc(1, vi.bytes);
	FILE *f = fopen(argv[2], "rb");
	if (!in || !f || fread(in, 1, vi.bytes, f) != vi.bytes) {
		fprintf(stderr, "%s: cannot read %zu bytes\n", argv[2], vi.bytes);
		goto out;
	}
	if (engine_ctx_new(e, &c))
		goto out;
	printf("# %s, %d threads, median of %d runs; time in ms, overhead vs unbanded, "
	       "bytes copied per run\n", argv[1], opts.threads, runs);
	printf("# cut cut bytes  unbanded  | B=bands  banded  overhead  copied\n");
	for (int a = 5; a < argc; a++) {
		int k = atoi(argv[a]);
		int k0 = k ? k : 1, k1 = k ? k : engine_num_nodes(e);
		for (k = k0; k <= k1; k++) {
			if (engine_band_check(e, 0, k, err, sizeof(err)))
				continue;
			if (bench_cut(e, c, in, k, runs))
				goto out;
		}
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	free(in);
	engine_ctx_free(c);
	engine_free(e);
	return rc;
}
