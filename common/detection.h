/* A detector's answer, as every floor passes it on: post/ (the decode and
 * NMS) fills it, api/ writes it as JSON and as KServe v2 tensors, the
 * ROS 2 side publishes it as vision_msgs/Detection2DArray. Header-only. */
#ifndef SPLITD_DETECTION_H
#define SPLITD_DETECTION_H

#include <stddef.h>

/* One object, in the original image's pixels. */
struct detection {
	int class_id;
	const char *label;		/* NULL: no label for this class */
	float score;
	float box[4];			/* x0, y0, x1, y1 */
	int n_keypoints;		/* 0, or K: keypoints holds K x (x, y, visibility) */
	const float *keypoints;
};

struct detections {
	size_t n;
	const struct detection *d;	/* n objects, best score first */
};

#endif
