/* libFuzzer target: JPEG/PNG header checks and decoding with a small pixel
 * limit, then letterbox preprocessing of what decodes — over a SEQUENCE of
 * images per input, in order on one thread, with the deployed functions
 * (api_image_to_tensor, api_image_decode_rgb), so state a decoder carries from
 * one image to the next is exercised. The input splits before every JPEG SOI
 * (ff d8 ff) and PNG signature after its first byte: `cat bad.jpg good.jpg`
 * is a sequence of two. After the sequence a known-good JPEG must decode to
 * the pixels it gave on a fresh decoder (else the target traps: a decoder left
 * broken by an earlier image). With SPLITD_FUZZ_REPLAY: a main() replaying
 * files, prefixes and bit flips, all in one process and thread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PIECES 8
#define GOOD_W 24
#define GOOD_H 16

static uint8_t *good_jpg, *good_rgb;
static unsigned long good_len;

/* a small JPEG made here, and its pixels decoded by a decoder of its own */
static int make_good(void)
{
	uint8_t src[GOOD_W * GOOD_H * 3];
	tjhandle c = tjInitCompress(), d = tjInitDecompress();
	int ok = 0;

	for (int i = 0; i < GOOD_W * GOOD_H * 3; i++)
		src[i] = (uint8_t)(i * 7 + (i / 3) * 13);
	good_rgb = malloc(sizeof(src));
	if (c && d && good_rgb &&
	    !tjCompress2(c, src, GOOD_W, 0, GOOD_H, TJPF_RGB, &good_jpg, &good_len, TJSAMP_420, 90, 0) &&
	    !tjDecompress2(d, good_jpg, good_len, good_rgb, GOOD_W, 0, GOOD_H, TJPF_RGB, 0))
		ok = 1;
	if (c)
		tjDestroy(c);
	if (d)
		tjDestroy(d);
	return ok;
}

static int piece_start(const uint8_t *p, size_t left)
{
	return (left >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) ||
	       (left >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8));
}

static void decode_one(const uint8_t *data, size_t size)
{
	static const struct api_preprocess pp = {
		.width = 16, .height = 12, .resize = API_RESIZE_LETTERBOX, .pad_value = 114,
		.scale = 1 / 255.0f, .std = {1, 1, 1}, .max_pixels = 1 << 20,
	};
	struct tensor_view t;
	struct api_image_info info;
	char err[256];

	/* a copy of its own, so reads past the piece are caught */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return;
	memcpy(buf, data, size);
	if (!api_image_to_tensor(buf, size, &pp, &t, &info, err, sizeof(err)))
		free(t.data);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	size_t cut[MAX_PIECES + 1];
	int n = 0;

	if (!ready) {
		if (!make_good())
			__builtin_trap();
		ready = 1;
	}
	cut[n++] = 0;
	for (size_t i = 1; i < size && n < MAX_PIECES; i++)
		if (piece_start(data + i, size - i))
			cut[n++] = i;
	cut[n] = size;
	for (int i = 0; i < n; i++)
		decode_one(data + cut[i], cut[i + 1] - cut[i]);

	/* the decoder this thread keeps still decodes a valid JPEG exactly */
	uint8_t *rgb = NULL;
	int w = 0, h = 0;
	char err[256];
	if (api_image_decode_rgb(good_jpg, good_len, 0, &rgb, &w, &h, err, sizeof(err)) ||
	    w != GOOD_W || h != GOOD_H || memcmp(rgb, good_rgb, (size_t)w * h * 3)) {
		fprintf(stderr, "a valid JPEG after this input: %s\n", rgb ? "other pixels" : err);
		__builtin_trap();
	}
	free(rgb);
	return 0;
}

/* decoding is slower than parsing: fewer prefixes and flips */
#define REPLAY_PREFIX_DIV 16
#define REPLAY_FLIPS 2048
#define REPLAY_FLIP_STEP 3
#include "replay_main.h"
