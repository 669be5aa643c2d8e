/* splitd run: one inference of a model on a .npy input; outputs as .npy and
 * one JSON line (output shapes, ms) on stdout. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine.h"
#include "link.h"
#include "npy_file.h"

static void out_path(const char *base, int i, int n, char *buf, size_t len)
{
	if (n == 1) {
		snprintf(buf, len, "%s", base);
		return;
	}
	const char *dot = strrchr(base, '.');
	if (dot && !strcmp(dot, ".npy"))
		snprintf(buf, len, "%.*s_%d.npy", (int)(dot - base), base, i);
	else
		snprintf(buf, len, "%s_%d.npy", base, i);
}

struct run_cli {
	const char *model, *input, *output;
	struct engine_opts eo;
};

/* -1 to go on, else the exit status (2 after one line). */
static int parse_args(int argc, char **argv, struct run_cli *o)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "input", required_argument, NULL, 'i' },
		{ "output", required_argument, NULL, 'o' },
		{ "threads", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:i:o:", opts, NULL)) != -1) {
		switch (c) {
		case 'm': o->model = optarg; break;
		case 'i': o->input = optarg; break;
		case 'o': o->output = optarg; break;
		case 't':
			if (cmd_parse_int(optarg, 0, 1024, &o->eo.threads)) {
				fprintf(stderr, "splitd run: --threads needs a number 0..1024, not '%s'\n", optarg);
				return 2;
			}
			break;
		case ':':
			fprintf(stderr, "splitd run: option '%s' needs a value\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "splitd run: unknown option '%s'\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "splitd run: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!o->model || !o->input) {
		fprintf(stderr, "splitd run: %s is required\n", !o->model ? "-m MODEL" : "-i INPUT");
		return 2;
	}
	const char *dot = strrchr(o->input, '.');
	if (!dot || strcmp(dot, ".npy")) {
		fprintf(stderr, "splitd run: -i takes a .npy file here (images need the API's preprocessing)\n");
		return 2;
	}
	return -1;
}

/* The JSON line (output names and shapes, ms) and, with output, each
 * output as .npy; 0, or -1 after printing why. */
static int print_outputs(const struct run_cli *o, const struct engine *e, struct engine_ctx *ctx, double ms)
{
	int no = engine_num_outputs(e);

	printf("{\"model\":\"%s\",\"ms\":%.3f,\"outputs\":[", o->model, ms);
	for (int i = 0; i < no; i++) {
		struct engine_value_info oi;
		struct tensor_view y;
		engine_output_info(e, i, &oi);
		engine_ctx_get(ctx, oi.name, &y);
		printf("%s{\"name\":\"%s\",\"shape\":[", i ? "," : "", oi.name);
		for (int d = 0; d < oi.ndim; d++)
			printf("%s%lld", d ? "," : "", (long long)oi.shape[d]);
		printf("]");
		if (o->output) {
			char path[4096];
			out_path(o->output, i, no, path, sizeof(path));
			if (npy_write(path, &y)) {
				fprintf(stderr, "splitd run: cannot write %s\n", path);
				return -1;
			}
			printf(",\"file\":\"%s\"", path);
		}
		printf("}");
	}
	printf("]}\n");
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct run_cli o = { 0 };
	struct engine *e = NULL;
	struct engine_ctx *ctx = NULL;
	struct tensor_view x = { 0 };
	char err[512];
	int rc;

	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return rc;
	rc = 1;
	if (npy_read(o.input, &x, err, sizeof(err))) {
		fprintf(stderr, "splitd run: %s\n", err);
		return 1;
	}
	struct engine_input_shape is = { .name = NULL, .ndim = x.ndim };
	memcpy(is.shape, x.shape, sizeof(is.shape));
	o.eo.input_shapes = &is;
	o.eo.n_input_shapes = 1;
	if (engine_load(o.model, &o.eo, &e, err, sizeof(err))) {
		fprintf(stderr, "splitd run: %s: %s\n", o.model, err);
		goto out;
	}
	if (engine_num_inputs(e) != 1) {
		fprintf(stderr, "splitd run: the model has %d inputs; run takes one\n", engine_num_inputs(e));
		goto out;
	}
	if ((rc = engine_ctx_new(e, &ctx))) {
		fprintf(stderr, "splitd run: cannot allocate the context: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	rc = 1;
	struct engine_value_info vi;
	engine_input_info(e, 0, &vi);
	if (engine_ctx_set(ctx, vi.name, &x, err, sizeof(err))) {
		fprintf(stderr, "splitd run: %s\n", err);
		goto out;
	}
	double t0 = link_now_ns() / 1e6;
	int r = engine_run(ctx);
	double ms = link_now_ns() / 1e6 - t0;
	if (r) {
		fprintf(stderr, "splitd run: inference failed: %s\n", strerror(-r));
		goto out;
	}
	if (print_outputs(&o, e, ctx, ms) == 0)
		rc = 0;
out:
	engine_ctx_free(ctx);
	engine_free(e);
	free(x.data);
	return rc;
}
