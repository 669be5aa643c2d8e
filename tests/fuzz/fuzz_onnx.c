/* libFuzzer target for the ONNX loader: engine_load_buffer on arbitrary
 * bytes; a model that loads is also run once on zero inputs when small.
 * Built with -DSPLITD_FUZZ_REPLAY it is a plain program replaying the seed
 * files named on its command line (CI runs it under ASan/UBSan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct engine_opts o = { .threads = 1, .max_model_bytes = 1 << 24 };
	struct engine *e = NULL;
	struct engine_ctx *c = NULL;
	char err[256];

	if (engine_load_buffer(data, size, &o, &e, err, sizeof(err)))
		return 0;
	if (engine_arena_bytes(e) < (64u << 20) && !engine_ctx_new(e, &c)) {
		for (int i = 0; i < engine_num_inputs(e); i++) {
			struct engine_value_info vi;
			engine_input_info(e, i, &vi);
			void *z = calloc(1, vi.bytes + 1);
			struct tensor_view v = { .dtype = vi.dtype, .ndim = vi.ndim, .data = z };
			memcpy(v.shape, vi.shape, sizeof(v.shape));
			if (z)
				engine_ctx_set(c, vi.name, &v, err, sizeof(err));
			free(z);
		}
		engine_run(c);
		for (int k = 0; k <= engine_num_nodes(e); k++)
			engine_cut_bytes(e, k);
		engine_ctx_free(c);
	}
	engine_free(e);
	return 0;
}

#ifdef SPLITD_FUZZ_REPLAY
int main(int argc, char **argv)
{
	int n = 0;
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			fprintf(stderr, "fuzz_onnx: cannot open %s\n", argv[i]);
			return 1;
		}
		fseek(f, 0, SEEK_END);
		long sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		uint8_t *buf = malloc(sz > 0 ? sz : 1);
		if (!buf || fread(buf, 1, sz, f) != (size_t)sz) {
			fclose(f);
			free(buf);
			return 1;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, sz);
		/* every prefix of a seed is a truncated model */
		for (long cut = 1; cut < sz; cut += sz / 37 + 1)
			LLVMFuzzerTestOneInput(buf, cut);
		free(buf);
		n++;
	}
	printf("fuzz_onnx: replayed %d seeds\n", n);
	return n ? 0 : 1;
}
#endif
