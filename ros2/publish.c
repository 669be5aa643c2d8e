/* The result messages: std_msgs/String, vision_msgs/Detection2DArray and
 * vision_msgs/Classification, filled from splitd's own types. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ros2-impl.h"

int ros2_publish_string(struct ros2_pub *p, const char *text)
{
	std_msgs_msg_dds__String_ m = { .data = (char *)text };

	if (p->type != ROS2_STRING)
		return -EINVAL;
	return ros2_pub_write(p, &m);
}

static void header_set(struct std_msgs_msg_dds__Header_ *h, struct ros2_time stamp, const char *frame_id)
{
	h->stamp.sec = stamp.sec;
	h->stamp.nanosec = stamp.nanosec;
	h->frame_id = (char *)(frame_id ? frame_id : "");
}

/* class_id: the label, else the class index as text (into buf). */
static char *class_text(const struct detection *d, char *buf, size_t len)
{
	if (d->label)
		return (char *)d->label;
	snprintf(buf, len, "%d", d->class_id);
	return buf;
}

int ros2_publish_detections(struct ros2_pub *p, struct ros2_time stamp, const char *frame_id,
			    const struct detections *d)
{
	vision_msgs_msg_dds__Detection2DArray_ m = { 0 };
	vision_msgs_msg_dds__Detection2D_ *det = NULL;
	vision_msgs_msg_dds__ObjectHypothesisWithPose_ *hyp = NULL;
	char (*ids)[16] = NULL;
	int r;

	if (p->type != ROS2_DETECTIONS)
		return -EINVAL;
	header_set(&m.header, stamp, frame_id);
	if (d->n > 0) {
		det = calloc(d->n, sizeof(*det));
		hyp = calloc(d->n, sizeof(*hyp));
		ids = calloc(d->n, sizeof(*ids));
		if (!det || !hyp || !ids) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < d->n; i++) {
		const struct detection *o = &d->d[i];
		hyp[i].hypothesis.class_id = class_text(o, ids[i], sizeof(ids[i]));
		hyp[i].hypothesis.score = o->score;
		hyp[i].pose.pose.orientation.w = 1.0;	/* the .msg default idlc's C leaves out */
		header_set(&det[i].header, stamp, frame_id);
		det[i].results._length = det[i].results._maximum = 1;
		det[i].results._buffer = &hyp[i];
		det[i].bbox.center.position.x = 0.5 * ((double)o->box[0] + o->box[2]);
		det[i].bbox.center.position.y = 0.5 * ((double)o->box[1] + o->box[3]);
		det[i].bbox.size_x = (double)o->box[2] - o->box[0];
		det[i].bbox.size_y = (double)o->box[3] - o->box[1];
		det[i].id = "";
	}
	m.detections._length = m.detections._maximum = (uint32_t)d->n;
	m.detections._buffer = det;
	r = ros2_pub_write(p, &m);
out:
	free(det);
	free(hyp);
	free(ids);
	return r;
}

int ros2_publish_classification(struct ros2_pub *p, struct ros2_time stamp, const char *frame_id,
				const struct ros2_hypothesis *h, size_t n)
{
	vision_msgs_msg_dds__Classification_ m = { 0 };
	vision_msgs_msg_dds__ObjectHypothesis_ *res = NULL;
	int r;

	if (p->type != ROS2_CLASSIFICATION)
		return -EINVAL;
	header_set(&m.header, stamp, frame_id);
	if (n > 0 && !(res = calloc(n, sizeof(*res))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		res[i].class_id = (char *)(h[i].class_id ? h[i].class_id : "");
		res[i].score = h[i].score;
	}
	m.results._length = m.results._maximum = (uint32_t)n;
	m.results._buffer = res;
	r = ros2_pub_write(p, &m);
	free(res);
	return r;
}
