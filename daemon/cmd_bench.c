/* splitd bench: latency percentiles of a model on a zero input, and the
 * per-node profile. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine.h"
#include "link.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *s, int n, double p)
{
	double k = p * (n - 1);
	int i = (int)k;
	return i + 1 < n ? s[i] + (k - i) * (s[i + 1] - s[i]) : s[n - 1];
}

struct bench_cli {
	const char *model;
	int runs, warmup, json;
	int profile;		/* 1: --profile; 2: --profile-hot, each node run twice, the second timed */
	struct engine_opts eo;
};

/* -1 to go on, else the exit status (2 after one line). */
static int parse_args(int argc, char **argv, struct bench_cli *o)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "runs", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "threads", required_argument, NULL, 't' },
		{ "profile", no_argument, NULL, 'p' },
		{ "profile-hot", no_argument, NULL, 'H' },
		{ "json", no_argument, NULL, 'j' },
		{ "backend", required_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:b:", opts, NULL)) != -1) {
		const char *name = argv[optind - 1];
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'r':
			if (cmd_parse_int(optarg, 1, 1000000, &o->runs)) {
				fprintf(stderr, "splitd bench: --runs needs a number >= 1, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'w':
			if (cmd_parse_int(optarg, 0, 1000000, &o->warmup)) {
				fprintf(stderr, "splitd bench: --warmup needs a number >= 0, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			if (cmd_parse_int(optarg, 0, 1024, &o->eo.threads)) {
				fprintf(stderr, "splitd bench: --threads needs a number 0..1024, not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'p': o->profile = o->profile ? o->profile : 1; break;
		case 'H': o->profile = 2; break;
		case 'j': o->json = 1; break;
		case 'b':
			if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) {
				fprintf(stderr, "splitd bench: --backend is cpu or cuda, not '%s'\n", optarg);
				return 2;
			}
			o->eo.backend = optarg;
			break;
		case ':':
			fprintf(stderr, "splitd bench: option '%s' needs a value\n", name);
			return 2;
		default:
			fprintf(stderr, "splitd bench: unknown option '%s'\n", name);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "splitd bench: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->model) {
		fprintf(stderr, "splitd bench: -m MODEL is required\n");
		return 2;
	}
	return -1;
}

/* Every input of the model set to zeros; 0, or <0 after printing why. */
static int zero_inputs(const struct engine *e, struct engine_ctx *ctx)
{
	char err[512];

	for (int i = 0; i < engine_num_inputs(e); i++) {
		struct engine_value_info vi;
		engine_input_info(e, i, &vi);
		void *z = calloc(1, vi.bytes ? vi.bytes : 1);
		struct tensor_view v = { .dtype = vi.dtype, .ndim = vi.ndim, .data = z };
		memcpy(v.shape, vi.shape, sizeof(v.shape));
		int r = z ? engine_ctx_set(ctx, vi.name, &v, err, sizeof(err)) : -ENOMEM;
		free(z);
		if (r) {
			fprintf(stderr, "splitd bench: input '%s': %s\n", vi.name, r == -ENOMEM ? "out of memory" : err);
			return r;
		}
	}
	return 0;
}

/* The latency line(s) and, with node_ms, the per-node profile: one JSON
 * object or text. */
static void print_result(const struct bench_cli *o, const struct engine *e, double load_ms, const double *t,
			 const double *node_ms)
{
	int runs = o->runs, nn = engine_num_nodes(e);
	double med = pct(t, runs, 0.5), p10 = pct(t, runs, 0.1), p90 = pct(t, runs, 0.9), cum = 0;

	if (o->json) {
		printf("{\"model\":\"%s\",\"backend\":\"%s\",\"runs\":%d,\"load_ms\":%.3f,"
		       "\"median_ms\":%.4f,\"p10_ms\":%.4f,\"p90_ms\":%.4f,\"arena_bytes\":%zu,"
		       "\"weight_bytes\":%zu", o->model, engine_backend_name(e), runs, load_ms, med, p10, p90,
		       engine_arena_bytes(e), engine_weight_bytes(e));
		if (node_ms) {
			printf(",\"nodes\":[");
			for (int i = 0; i < nn; i++) {
				struct engine_node_info ni;
				engine_node_info(e, i, &ni);
				cum += node_ms[i];
				printf("%s{\"name\":\"%s\",\"op\":\"%s\",\"ms\":%.4f,\"out_bytes\":%zu,"
				       "\"cum_ms\":%.4f,\"macs\":%lld}", i ? "," : "", ni.name, ni.op,
				       node_ms[i], ni.out_bytes, cum, (long long)ni.macs);
			}
			printf("]");
		}
		printf("}\n");
		return;
	}
	printf("model %s backend %s runs %d load %.1f ms\n", o->model, engine_backend_name(e), runs, load_ms);
	printf("median_ms %.3f  p10_ms %.3f  p90_ms %.3f\n", med, p10, p90);
	if (!node_ms)
		return;
	printf("%4s  %-32s %-28s %9s %12s %9s\n", "#", "node", "op", "ms", "out_bytes", "cum_ms");
	for (int i = 0; i < nn; i++) {
		struct engine_node_info ni;
		engine_node_info(e, i, &ni);
		cum += node_ms[i];
		printf("%4d  %-32.32s %-28.28s %9.4f %12zu %9.3f\n", i, ni.name, ni.op, node_ms[i], ni.out_bytes,
		       cum);
	}
}

int cmd_bench(int argc, char **argv)
{
	struct bench_cli o = { .runs = 20, .warmup = 3 };
	struct engine *e = NULL;
	struct engine_ctx *ctx = NULL;
	double *t = NULL, *node_ms = NULL;
	char err[512];
	int rc = 1;

	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return rc;
	rc = 1;
	double l0 = link_now_ns() / 1e6;
	if (engine_load(o.model, &o.eo, &e, err, sizeof(err))) {
		fprintf(stderr, "splitd bench: %s: %s\n", o.model, err);
		return 1;
	}
	double load_ms = link_now_ns() / 1e6 - l0;
	if (engine_ctx_new(e, &ctx)) {
		fprintf(stderr, "splitd bench: cannot allocate the context\n");
		goto out;
	}
	if (zero_inputs(e, ctx) < 0)
		goto out;
	t = calloc(o.runs, sizeof(double));
	if (!t)
		goto out;
	for (int i = 0; i < o.warmup + o.runs; i++) {
		double t0 = link_now_ns() / 1e6;
		int r = engine_run(ctx);
		if (r) {
			fprintf(stderr, "splitd bench: inference failed: %s\n", strerror(-r));
			goto out;
		}
		if (i >= o.warmup)
			t[i - o.warmup] = link_now_ns() / 1e6 - t0;
	}
	qsort(t, o.runs, sizeof(double), cmp_double);
	if (o.profile) {
		node_ms = calloc(engine_num_nodes(e) + 1, sizeof(double));
		if (!node_ms || (o.profile == 2 ? engine_profile_hot : engine_profile)(e, o.runs, node_ms)) {
			fprintf(stderr, "splitd bench: profiling failed\n");
			goto out;
		}
	}
	print_result(&o, e, load_ms, t, node_ms);
	rc = 0;
out:
	free(t);
	free(node_ms);
	engine_ctx_free(ctx);
	engine_free(e);
	return rc;
}
