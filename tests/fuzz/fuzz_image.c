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

/* decoding is slower than parsing: fewer prefixes and flips */
#define REPLAY_PREFIX_DIV 16
#define REPLAY_FLIPS 2048
#define REPLAY_FLIP_STEP 3
#include "replay_main.h"
