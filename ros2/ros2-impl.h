/* Internals of ros2/ (node.c: the participant, readers and writers;
 * publish.c: the result messages). Not a public header. */
#ifndef SPLITD_ROS2_IMPL_H
#define SPLITD_ROS2_IMPL_H

#include <dds/dds.h>

#include "ros2.h"
/* idlc's output for the IDL rosidl_adapter made (build directory) */
#include "sensor_msgs/msg/CompressedImage.h"
#include "sensor_msgs/msg/Image.h"
#include "std_msgs/msg/String.h"
#include "vision_msgs/msg/Classification.h"
#include "vision_msgs/msg/Detection2DArray.h"
#include "rmw_dds_common/msg/ParticipantEntitiesInfo.h"

struct ros2_pub {
	struct ros2_node *node;
	dds_entity_t writer;
	enum ros2_msg_type type;
};

/* dds_write of one sample of p's type: 0, -EIO, or -ESHUTDOWN once the
 * node is closed. */
int ros2_pub_write(struct ros2_pub *p, const void *sample);
/* The type name the generated descriptor registers (tests compare it with
 * ros2_dds_type_name). */
const char *ros2_descriptor_type_name(enum ros2_msg_type t);

#endif
