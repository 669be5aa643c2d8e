/* splitd export-tail: write the nodes after a cut as a standalone ONNX
 * model, so any KServe v2 server (Triton, ...) can stand in for the peer. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "engine.h"

static int usage_error(const char *msg, const char *arg)
{
	fprintf(stderr, "splitd export-tail: %s%s%s (see 'splitd help export-tail')\n", msg,
		arg ? ": " : "", arg ? arg : "");
	return 2;
}

int cmd_export_tail(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "cut", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ "head", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *model = NULL, *out = NULL, *head = NULL;
	struct engine_opts eo = { .threads = 1, .keep_weights = 1 };
	struct engine *e = NULL;
	char err[512], *end;
	long cut = -1;
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:k:o:H:h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'o': out = optarg; break;
		case 'H': head = optarg; break;
		case 'k':
			errno = 0;
			cut = strtol(optarg, &end, 10);
			if (errno || *end || cut < 0)
				return usage_error("--cut wants a node index >= 0", optarg);
			break;
		case 'h':
			fputs(cmd_usage("export-tail"), stdout);
			return 0;
		case ':': return usage_error("option needs a value", argv[optind - 1]);
		default: return usage_error("unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (!model || cut < 0 || !out)
		return usage_error("-m MODEL, --cut K and -o FILE are required", NULL);
	if ((r = engine_load(model, &eo, &e, err, sizeof(err))) < 0) {
		fprintf(stderr, "splitd export-tail: %s: %s\n", model, err);
		return 1;
	}
	int n = engine_num_nodes(e);
	if (cut >= n) {
		fprintf(stderr, "splitd export-tail: --cut %ld: the model has %d nodes, so a tail starts at 0..%d\n",
			cut, n, n - 1);
		engine_free(e);
		return 2;
	}
	r = engine_export_range(e, (int)cut, n, out, err, sizeof(err));
	if (r == 0 && head)
		r = engine_export_range(e, 0, (int)cut, head, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "splitd export-tail: %s\n", err);
		engine_free(e);
		return 1;
	}
	printf("{\"model\":\"%s\",\"cut\":%ld,\"nodes\":%d,\"tail\":\"%s\",\"tail_inputs\":[", model, cut, n, out);
	for (int j = 0; j < engine_cut_count(e, (int)cut); j++) {
		struct engine_value_info vi;
		engine_cut_tensor(e, (int)cut, j, &vi);
		printf("%s{\"name\":\"%s\",\"bytes\":%zu}", j ? "," : "", vi.name, vi.bytes);
	}
	printf("]}\n");
	engine_free(e);
	return 0;
}
