/* What the ROS 2 side does without DDS: names (ROS 2's topic and type
 * mapping onto DDS), the checks a received frame must pass, and raw
 * encodings to RGB8. Built with or without Cyclone DDS. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "ros2.h"

static const char *const type_names[ROS2_MSG_TYPES][2] = {
	[ROS2_IMAGE] = { "sensor_msgs/msg/Image", "sensor_msgs::msg::dds_::Image_" },
	[ROS2_COMPRESSED] = { "sensor_msgs/msg/CompressedImage", "sensor_msgs::msg::dds_::CompressedImage_" },
	[ROS2_STRING] = { "std_msgs/msg/String", "std_msgs::msg::dds_::String_" },
	[ROS2_DETECTIONS] = { "vision_msgs/msg/Detection2DArray", "vision_msgs::msg::dds_::Detection2DArray_" },
	[ROS2_CLASSIFICATION] = { "vision_msgs/msg/Classification", "vision_msgs::msg::dds_::Classification_" },
};

const char *ros2_type_name(enum ros2_msg_type t)
{
	return (unsigned)t < ROS2_MSG_TYPES ? type_names[t][0] : "?";
}

const char *ros2_dds_type_name(enum ros2_msg_type t)
{
	return (unsigned)t < ROS2_MSG_TYPES ? type_names[t][1] : "?";
}

static const char *const drop_names[ROS2_DROP_REASONS] = {
	[ROS2_DROP_RATE] = "rate", [ROS2_DROP_BUSY] = "busy", [ROS2_DROP_ENCODING] = "encoding",
	[ROS2_DROP_SIZE] = "size", [ROS2_DROP_EMPTY] = "empty", [ROS2_DROP_TOO_LARGE] = "too_large",
	[ROS2_DROP_QUEUE] = "queue", [ROS2_DROP_STOPPING] = "stopping",
};

const char *ros2_drop_name(enum ros2_drop d)
{
	return (unsigned)d < ROS2_DROP_REASONS ? drop_names[d] : "?";
}

/* One name token: [A-Za-z_][A-Za-z0-9_]* (ROS 2's rule for each part). */
static int check_tokens(const char *s)
{
	const char *p = s;

	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0 || isdigit((unsigned char)p[0]))
			return -EINVAL;
		for (size_t i = 0; i < n; i++)
			if (!isalnum((unsigned char)p[i]) && p[i] != '_')
				return -EINVAL;
		if (!slash)
			return 0;
		p = slash + 1;
		if (!*p)
			return -EINVAL;	/* trailing '/' */
	}
	return 0;
}

int ros2_topic_dds_name(const char *topic, const char *node, char *out, size_t len)
{
	char full[512];
	int n;

	if (!topic || !*topic)
		return -EINVAL;
	if (topic[0] == '~') {
		if (!node || !*node || (topic[1] && topic[1] != '/') || check_tokens(node) < 0)
			return -EINVAL;
		n = snprintf(full, sizeof(full), "%s%s", node, topic + 1);
	} else {
		n = snprintf(full, sizeof(full), "%s", topic[0] == '/' ? topic + 1 : topic);
	}
	if (n <= 0 || (size_t)n >= sizeof(full) || check_tokens(full) < 0)
		return -EINVAL;
	/* RTPS limits topic names to 256 characters */
	n = snprintf(out, len, "rt/%s", full);
	return n < 0 || (size_t)n >= len || n > 256 ? -ENAMETOOLONG : 0;
}

static const struct {
	const char *name;
	enum ros2_encoding enc;
	int bytes;	/* per pixel */
} encodings[] = {
	{ "rgb8", ROS2_ENC_RGB8, 3 }, { "bgr8", ROS2_ENC_BGR8, 3 }, { "mono8", ROS2_ENC_MONO8, 1 },
	{ "16UC1", ROS2_ENC_16UC1, 2 }, { "mono16", ROS2_ENC_16UC1, 2 }, { "32FC1", ROS2_ENC_32FC1, 4 },
};

static int check_compressed(const struct ros2_frame *f, enum ros2_drop *why, char *err, size_t errlen)
{
	const char *fmt = f->format ? f->format : "";

	if (f->len == 0) {
		*why = ROS2_DROP_EMPTY;
		return err_set(-EINVAL, err, errlen, "empty CompressedImage");
	}
	/* "jpeg", "png", or image_transport's "rgb8; jpeg compressed bgr8" */
	if (!strcasestr(fmt, "jpeg") && !strcasestr(fmt, "jpg") && !strcasestr(fmt, "png")) {
		*why = ROS2_DROP_ENCODING;
		return err_set(-EINVAL, err, errlen, "CompressedImage format '%.64s' is not jpeg or png", fmt);
	}
	return 0;
}

int ros2_frame_check(const struct ros2_frame *f, int64_t max_pixels, enum ros2_encoding *enc,
		     enum ros2_drop *why, char *err, size_t errlen)
{
	int bpp = 0;

	if (f->compressed)
		return check_compressed(f, why, err, errlen);
	for (size_t i = 0; i < sizeof(encodings) / sizeof(encodings[0]); i++)
		if (f->encoding && !strcmp(f->encoding, encodings[i].name)) {
			*enc = encodings[i].enc;
			bpp = encodings[i].bytes;
		}
	if (!bpp) {
		*why = ROS2_DROP_ENCODING;
		return err_set(-EINVAL, err, errlen, "encoding '%.64s' is not rgb8, bgr8, mono8, 16UC1 or 32FC1",
			       f->encoding ? f->encoding : "");
	}
	if (f->width == 0 || f->height == 0 || f->len == 0) {
		*why = ROS2_DROP_EMPTY;
		return err_set(-EINVAL, err, errlen, "empty frame (%ux%u, %zu bytes)", f->width, f->height, f->len);
	}
	if ((int64_t)f->width * f->height > (max_pixels > 0 ? max_pixels : 40000000)) {
		*why = ROS2_DROP_TOO_LARGE;
		return err_set(-EINVAL, err, errlen, "%ux%u is more pixels than allowed", f->width, f->height);
	}
	if ((uint64_t)f->step < (uint64_t)f->width * (uint64_t)bpp ||
	    (uint64_t)f->step * f->height != (uint64_t)f->len) {
		*why = ROS2_DROP_SIZE;
		return err_set(-EINVAL, err, errlen, "step %u x height %u does not match %zu bytes of data "
			       "(width %u, %d bytes per pixel)", f->step, f->height, f->len, f->width, bpp);
	}
	return 0;
}

static uint8_t grey(double v)
{
	if (!(v > 0))		/* NaN, negative, zero */
		return 0;
	return v >= 255.0 ? 255 : (uint8_t)lrint(v);
}

static double depth_at(const uint8_t *p, enum ros2_encoding enc, int swap)
{
	if (enc == ROS2_ENC_16UC1) {
		uint16_t v;
		memcpy(&v, p, 2);
		return swap ? (uint16_t)((v >> 8) | (v << 8)) : v;
	}
	uint32_t u;
	float fv;
	memcpy(&u, p, 4);
	if (swap)
		u = __builtin_bswap32(u);
	memcpy(&fv, &u, 4);
	return fv;
}

void ros2_frame_to_rgb8(const struct ros2_frame *f, enum ros2_encoding enc, double depth_scale, uint8_t *rgb)
{
	const int little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
	const int swap = f->is_bigendian ? little : !little;
	double s = depth_scale > 0 ? depth_scale : enc == ROS2_ENC_16UC1 ? 255.0 / 10000.0 : 25.5;

	for (uint32_t y = 0; y < f->height; y++) {
		const uint8_t *row = f->data + (size_t)y * f->step;
		uint8_t *o = rgb + (size_t)y * f->width * 3;
		switch (enc) {
		case ROS2_ENC_RGB8:
			memcpy(o, row, (size_t)f->width * 3);
			break;
		case ROS2_ENC_BGR8:
			for (uint32_t x = 0; x < f->width; x++) {
				o[3 * x] = row[3 * x + 2];
				o[3 * x + 1] = row[3 * x + 1];
				o[3 * x + 2] = row[3 * x];
			}
			break;
		case ROS2_ENC_MONO8:
			for (uint32_t x = 0; x < f->width; x++)
				o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = row[x];
			break;
		case ROS2_ENC_16UC1:
		case ROS2_ENC_32FC1: {
			size_t bpp = enc == ROS2_ENC_16UC1 ? 2 : 4;
			for (uint32_t x = 0; x < f->width; x++)
				o[3 * x] = o[3 * x + 1] = o[3 * x + 2] = grey(depth_at(row + x * bpp, enc, swap) * s);
			break;
		}
		}
	}
}
