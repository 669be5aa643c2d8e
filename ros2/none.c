/* ros2/ without Cyclone DDS (-DSPLITD_ROS2=OFF, or AUTO where it is not
 * installed): the node cannot be created, and says so. */
#include <errno.h>

#include "err.h"
#include "ros2.h"

int ros2_supported(void)
{
	return 0;
}

int ros2_node_new(int domain_id, const char *node, struct ros2_node **out, char *err, size_t errlen)
{
	return err_set(-ENOTSUP, err, errlen, "splitd was built without ROS 2 (Cyclone DDS, -DSPLITD_ROS2)");
}

int ros2_node_announce(struct ros2_node *n, char *err, size_t errlen)
{
	return -ENOTSUP;
}

void ros2_node_close(struct ros2_node *n)
{
}

void ros2_node_free(struct ros2_node *n)
{
}

int ros2_subscribe(struct ros2_node *n, const char *topic, enum ros2_msg_type type, enum ros2_qos qos,
		   ros2_frame_fn fn, void *ctx, struct ros2_sub **out, char *err, size_t errlen)
{
	return -ENOTSUP;
}

uint64_t ros2_sub_lost(const struct ros2_sub *s)
{
	return 0;
}

int ros2_advertise(struct ros2_node *n, const char *topic, enum ros2_msg_type type, enum ros2_qos qos,
		   struct ros2_pub **out, char *err, size_t errlen)
{
	return -ENOTSUP;
}

int ros2_pub_matched(const struct ros2_pub *p)
{
	return 0;
}

int ros2_publish_string(struct ros2_pub *p, const char *text)
{
	return -ENOTSUP;
}

int ros2_publish_detections(struct ros2_pub *p, struct ros2_time stamp, const char *frame_id,
			    const struct detections *d)
{
	return -ENOTSUP;
}

int ros2_publish_classification(struct ros2_pub *p, struct ros2_time stamp, const char *frame_id,
				const struct ros2_hypothesis *h, size_t n)
{
	return -ENOTSUP;
}
