/* libFuzzer target: a received sensor_msgs/Image or CompressedImage as the
 * ROS 2 side takes it (ros2/image.c): its header fields and data checked
 * (ros2_frame_check) and, when accepted, converted to RGB8 into a buffer of
 * exactly width x height x 3 (ros2_frame_to_rgb8), which ASan bounds.
 * Input: byte 0 flags (bit 0 compressed, bit 1 big-endian), bytes 1-4
 * width, 5-8 height, 9-12 step (little endian), byte 13 the encoding
 * (or format) string's length n, then n bytes of it, then the data.
 * With SPLITD_FUZZ_REPLAY: a main() replaying files, prefixes and bit flips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ros2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[256];
	enum ros2_encoding enc;
	enum ros2_drop why;
	char err[256];

	if (size < 14 || size < 14 + (size_t)data[13])
		return 0;
	size_t n = data[13];
	memcpy(text, data + 14, n);
	text[n] = 0;
	/* the data in a buffer of its own, so reads past it are caught */
	size_t len = size - 14 - n;
	uint8_t *px = malloc(len ? len : 1);
	if (!px)
		return 0;
	memcpy(px, data + 14 + n, len);
	struct ros2_frame f = {
		.compressed = data[0] & 1, .is_bigendian = (data[0] >> 1) & 1,
		.width = u32(data + 1), .height = u32(data + 5), .step = u32(data + 9),
		.encoding = text, .format = text, .data = px, .len = len, .frame_id = "",
	};
	if (ros2_frame_check(&f, 1 << 20, &enc, &why, err, sizeof(err)) == 0 && !f.compressed) {
		uint8_t *rgb = malloc((size_t)f.width * f.height * 3);
		if (rgb)
			ros2_frame_to_rgb8(&f, enc, 0, rgb);
		free(rgb);
	}
	free(px);
	return 0;
}

#include "replay_main.h"
