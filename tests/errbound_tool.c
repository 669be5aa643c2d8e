/* The rounding-model tolerances of tests/errbound.h for the tests that run
 * the daemons (tests/e2e, tests/netlab), which compare a split run's
 * outputs with the all-local ones.
 *
 * usage: errbound_tool MODEL.onnx INPUT.f32 [--threads N] [--weight-rel R] [--f32-only]
 *                      [--cuts K,K,...]
 *   INPUT.f32: the model's (single) input as raw little-endian float32;
 *   --weight-rel: errbound_opts.weight_rel (against torch: 8 u, test_models.c);
 *   --f32-only: leave out the per-cut encodings;
 *   --cuts: only these cuts' encodings (the others are null): a sanitizer
 *   build runs the engine many times slower
 * prints one JSON object for the model's first output:
 *   {"output": NAME, "f32": TOL, "f16": [TOL at cut 0 .. N-1], "i8": [...]}
 * f32: two float32 evaluations (the robot's and the peer's); f16 and i8:
 * the same with the cut's tensors through that encoding (float16: a
 * relative error within 2^-11; int8 with scale max|v| / 127: within half a
 * step, max|v| / 254). Exit status 0, or 1 with a message on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "errbound.h"

/* cut in the comma-separated list */
static int listed(const char *list, int cut)
{
	for (const char *p = list; *p;) {
		char *end;
		long v = strtol(p, &end, 10);
		if (end == p)
			return 0;
		if (v == cut)
			return 1;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct engine_opts o = { .threads = 2, .keep_weights = 1 };
	struct errbound_opts eo = { 0 };
	int f32_only = 0;
	const char *cuts = NULL;
	struct engine *e = NULL;
	struct engine_ctx *c = NULL;
	struct errbound *b = NULL;
	struct engine_value_info in, out;
	char err[512];
	FILE *f;

	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			o.threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--weight-rel") && i + 1 < argc)
			eo.weight_rel = atof(argv[++i]);
		else if (!strcmp(argv[i], "--f32-only"))
			f32_only = 1;
		else if (!strcmp(argv[i], "--cuts") && i + 1 < argc)
			cuts = argv[++i];
		else
			argc = 0;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: %s MODEL.onnx INPUT.f32 [--threads N] [--weight-rel R] [--f32-only]\n",
			argv[0]);
		return 2;
	}
	if (engine_load(argv[1], &o, &e, err, sizeof(err)) || engine_ctx_new(e, &c) ||
	    engine_input_info(e, 0, &in) || engine_output_info(e, 0, &out)) {
		fprintf(stderr, "%s: %s\n", argv[1], err);
		return 1;
	}
	struct tensor_view v = { .dtype = TENSOR_F32, .ndim = in.ndim };
	memcpy(v.shape, in.shape, sizeof(in.shape));
	v.data = malloc(in.bytes + 4);
	if (!v.data || !(f = fopen(argv[2], "rb")) || fread(v.data, 1, in.bytes, f) != in.bytes) {
		fprintf(stderr, "%s: cannot read %zu bytes\n", argv[2], in.bytes);
		return 1;
	}
	fclose(f);
	if (engine_ctx_set(c, in.name, &v, err, sizeof(err)) || errbound_run(e, c, &eo, &b, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("{\"output\": \"%s\", \"f32\": %.9g", out.name, errbound_tol(b, out.name));
	static const struct { const char *name; double rel, absmax; } enc[] = {
		{ "f16", 0x1p-11, 0 }, { "i8", 0, 1.0 / 254 },
	};
	for (int k = 0; k < 2 && !f32_only; k++) {
		printf(", \"%s\": [", enc[k].name);
		for (int cut = 0; cut < engine_num_nodes(e); cut++) {
			if (cuts && !listed(cuts, cut)) {
				printf("%snull", cut ? ", " : "");
				continue;
			}
			double t = errbound_cut_tol(b, c, cut, enc[k].rel, enc[k].absmax, out.name, err, sizeof(err));
			if (t < 0) {
				fprintf(stderr, "cut %d: %s\n", cut, err);
				return 1;
			}
			printf("%s%.9g", cut ? ", " : "", t);
		}
		printf("]");
	}
	printf("}\n");
	errbound_free(b);
	engine_ctx_free(c);
	engine_free(e);
	free(v.data);
	return 0;
}
