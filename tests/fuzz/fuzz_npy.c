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

#include "replay_main.h"
