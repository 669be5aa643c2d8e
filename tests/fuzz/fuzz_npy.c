/* libFuzzer target: the npy reader, then the writer on what it reads and a
 * second read of that (which must give the same tensor). With
 * SPLITD_FUZZ_REPLAY: a main() replaying files, prefixes and bit flips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tensor_view t, t2;
	void *copy = NULL, *copy2 = NULL;
	char err[256], *out = NULL;
	size_t len;

	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (api_npy_parse(buf, size, &t, &copy, err, sizeof(err)))
		goto out;
	if (api_npy_write(&t, &out, &len))
		goto out;
	if (api_npy_parse(out, len, &t2, &copy2, err, sizeof(err)) ||
	    t2.dtype != t.dtype || t2.ndim != t.ndim ||
	    memcmp(t2.shape, t.shape, sizeof(t.shape)) ||
	    memcmp(t2.data, t.data, tensor_bytes(&t)))
		abort();	/* the writer must round-trip what the reader took */
out:
	free(out);
	free(copy);
	free(copy2);
	free(buf);
	return 0;
}

#ifdef SPLITD_FUZZ_REPLAY
int main(int argc, char **argv)
{
	for (int a = 1; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		static uint8_t buf[1 << 20];
		if (!f) {
			fprintf(stderr, "%s: cannot open\n", argv[a]);
			return 1;
		}
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		for (size_t l = 0; l <= n; l++)
			LLVMFuzzerTestOneInput(buf, l);
		for (size_t i = 0; i < n * 8 && i < 4096; i++) {
			buf[i / 8] ^= (uint8_t)(1u << (i % 8));
			LLVMFuzzerTestOneInput(buf, n);
			buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		}
	}
	printf("replayed %d files\n", argc - 1);
	return 0;
}
#endif
