/* libFuzzer target: JPEG/PNG header checks and decoding with a small pixel
 * limit, then letterbox preprocessing of what decodes. With
 * SPLITD_FUZZ_REPLAY: a main() replaying files, prefixes and bit flips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct api_preprocess pp = {
		.width = 16, .height = 12, .resize = API_RESIZE_LETTERBOX, .pad_value = 114,
		.scale = 1 / 255.0f, .std = {1, 1, 1}, .max_pixels = 1 << 20,
	};
	struct tensor_view t;
	struct api_image_info info;
	char err[256];

	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (!api_image_to_tensor(buf, size, &pp, &t, &info, err, sizeof(err)))
		free(t.data);
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
		/* prefixes in steps (decoding is slower than parsing) */
		for (size_t l = 0; l <= n; l += 1 + l / 16)
			LLVMFuzzerTestOneInput(buf, l);
		for (size_t i = 0; i < n * 8 && i < 2048; i += 3) {
			buf[i / 8] ^= (uint8_t)(1u << (i % 8));
			LLVMFuzzerTestOneInput(buf, n);
			buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		}
	}
	printf("replayed %d files\n", argc - 1);
	return 0;
}
#endif
