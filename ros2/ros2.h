/* splitd's ROS 2 side, over Eclipse Cyclone DDS without a ROS 2
 * installation: a DDS participant that subscribes to camera topics
 * (sensor_msgs/msg/Image, sensor_msgs/msg/CompressedImage) and publishes
 * results (std_msgs/msg/String, vision_msgs/msg/Detection2DArray,
 * vision_msgs/msg/Classification), as a ROS 2 node on rmw_cyclonedds_cpp
 * would: topic /a/b is the DDS topic rt/a/b, type pkg/msg/T is
 * pkg::msg::dds_::T_, plain CDR (the types are generated at build time from
 * ros2/msg/ by rosidl_adapter and idlc; see ros2/CMakeLists.txt).
 *
 * A ground-floor library: it knows DDS and the messages, not the pipeline.
 * Frames arrive through a callback on Cyclone's receive thread; the callee
 * copies what it keeps. Without Cyclone DDS at build time (-DSPLITD_ROS2=OFF,
 * or AUTO without the library) ros2_node_new says -ENOTSUP and the image
 * helpers still work. Functions return 0 or a negative errno. */
#ifndef SPLITD_ROS2_H
#define SPLITD_ROS2_H

#include <stddef.h>
#include <stdint.h>

#include "detection.h"

struct ros2_node;
struct ros2_sub;
struct ros2_pub;

/* 1 when built with Cyclone DDS. */
int ros2_supported(void);

/* builtin_interfaces/msg/Time */
struct ros2_time {
	int32_t sec;
	uint32_t nanosec;
};

/* One received image message, borrowed for the callback's duration. */
struct ros2_frame {
	struct ros2_time stamp;
	const char *frame_id;
	int compressed;			/* sensor_msgs/CompressedImage */
	/* sensor_msgs/Image */
	uint32_t width, height, step;
	const char *encoding;
	uint8_t is_bigendian;
	/* sensor_msgs/CompressedImage */
	const char *format;
	const uint8_t *data;
	size_t len;
};

enum ros2_qos {
	ROS2_QOS_SENSOR,		/* rmw_qos_profile_sensor_data: best effort, keep last 5, volatile */
	ROS2_QOS_RELIABLE,		/* rmw_qos_profile_default: reliable, keep last 10, volatile */
};

enum ros2_msg_type {
	ROS2_IMAGE,			/* sensor_msgs/msg/Image */
	ROS2_COMPRESSED,		/* sensor_msgs/msg/CompressedImage */
	ROS2_STRING,			/* std_msgs/msg/String */
	ROS2_DETECTIONS,		/* vision_msgs/msg/Detection2DArray */
	ROS2_CLASSIFICATION,		/* vision_msgs/msg/Classification */
	ROS2_MSG_TYPES
};

/* The ROS 2 type name ("sensor_msgs/msg/Image") and the DDS one
 * ("sensor_msgs::msg::dds_::Image_", as registered). */
const char *ros2_type_name(enum ros2_msg_type t);
const char *ros2_dds_type_name(enum ros2_msg_type t);

/* A ROS 2 topic name to the DDS topic: "/camera/image_raw" and
 * "camera/image_raw" -> "rt/camera/image_raw"; "~/power" -> the node's
 * private "rt/<node>/power". -EINVAL for a name ROS 2 refuses (empty
 * tokens, characters other than [A-Za-z0-9_/], a token starting with a
 * digit, a trailing '/'). */
int ros2_topic_dds_name(const char *topic, const char *node, char *out, size_t len);

/* ---- the node -------------------------------------------------------- */

/* A participant on domain_id (0..232) named node (for ~/ topics). */
int ros2_node_new(int domain_id, const char *node, struct ros2_node **out, char *err, size_t errlen);
/* Delete the participant (readers and writers with it: peers see them go at
 * once). Callbacks have returned when it returns; publishers stay valid
 * memory (publishing then fails). Idempotent. */
void ros2_node_close(struct ros2_node *n);
/* Close, then free subscriptions and publishers. NULL: no-op. */
void ros2_node_free(struct ros2_node *n);

/* Publish the node and its endpoints on ros_discovery_info (rmw_dds_common's
 * ParticipantEntitiesInfo: the participant's gid, the node's namespace "/"
 * and name, its readers' and writers' gids), as rmw does after each change
 * of its endpoints, so ROS 2's graph (ros2 node list) can name the node. */
int ros2_node_announce(struct ros2_node *n, char *err, size_t errlen);

/* The callback runs on a Cyclone DDS thread, once per message taken. */
typedef void (*ros2_frame_fn)(void *ctx, const struct ros2_frame *f);
int ros2_subscribe(struct ros2_node *n, const char *topic, enum ros2_msg_type type, enum ros2_qos qos,
		   ros2_frame_fn fn, void *ctx, struct ros2_sub **out, char *err, size_t errlen);
/* Messages the reader's history overwrote before they were taken (the
 * sample-lost and sample-rejected counts). */
uint64_t ros2_sub_lost(const struct ros2_sub *s);

int ros2_advertise(struct ros2_node *n, const char *topic, enum ros2_msg_type type, enum ros2_qos qos,
		   struct ros2_pub **out, char *err, size_t errlen);
/* Readers matched now (a test waits for its subscriber). */
int ros2_pub_matched(const struct ros2_pub *p);

/* std_msgs/String */
int ros2_publish_string(struct ros2_pub *p, const char *text);
/* vision_msgs/Detection2DArray: one Detection2D per object (bbox centre
 * and size in the image's pixels, one hypothesis: class_id the label, else
 * the class index, and the score), each with the array's header. */
int ros2_publish_detections(struct ros2_pub *p, struct ros2_time stamp, const char *frame_id,
			    const struct detections *d);
/* vision_msgs/Classification: one ObjectHypothesis per class. */
struct ros2_hypothesis {
	const char *class_id;
	double score;
};
int ros2_publish_classification(struct ros2_pub *p, struct ros2_time stamp, const char *frame_id,
				const struct ros2_hypothesis *h, size_t n);

/* ---- images (no DDS needed) ------------------------------------------- */

/* Encodings of sensor_msgs/Image we take. */
enum ros2_encoding { ROS2_ENC_RGB8, ROS2_ENC_BGR8, ROS2_ENC_MONO8, ROS2_ENC_16UC1, ROS2_ENC_32FC1 };

/* Reasons a frame is dropped, for counters and logs. */
enum ros2_drop {
	ROS2_DROP_RATE,			/* beyond max_rate_hz */
	ROS2_DROP_BUSY,			/* the previous frame still running */
	ROS2_DROP_ENCODING,		/* unknown encoding or compressed format */
	ROS2_DROP_SIZE,			/* width/height/step/data length disagree */
	ROS2_DROP_EMPTY,		/* no pixels */
	ROS2_DROP_TOO_LARGE,		/* more pixels than allowed */
	ROS2_DROP_QUEUE,		/* the inference queue was full */
	ROS2_DROP_STOPPING,		/* arrived while shutting down */
	ROS2_DROP_REASONS
};
const char *ros2_drop_name(enum ros2_drop d);	/* "rate", "busy", ... */

/* Check a raw frame before use: 0 with *enc, or -EINVAL with *why (and a
 * sentence in err). max_pixels 0 = 40 Mpx. Compressed frames: the format
 * must say jpeg or png and data be non-empty. */
int ros2_frame_check(const struct ros2_frame *f, int64_t max_pixels, enum ros2_encoding *enc,
		     enum ros2_drop *why, char *err, size_t errlen);
/* A checked raw frame as packed RGB8 (width*height*3 bytes into rgb).
 * Depth (16UC1, 32FC1) becomes grey: value * depth_scale, clamped to 0..255;
 * depth_scale 0 = 255/10000 for 16UC1 (millimetres: 10 m white) and 25.5
 * for 32FC1 (metres: 10 m white). NaN and negative depths are black. */
void ros2_frame_to_rgb8(const struct ros2_frame *f, enum ros2_encoding enc, double depth_scale, uint8_t *rgb);

#endif
