/* Internals of post/: the candidates between the decode and NMS. */
#ifndef SPLITD_POST_IMPL_H
#define SPLITD_POST_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "post.h"

struct post_cand {
	float box[4];		/* x0, y0, x1, y1, input pixels */
	float score;
	int cls;
	int64_t i;		/* the candidate's index in the head */
};

/* Greedy class-aware NMS over c (n, sorted best first): the indices of the
 * kept ones into keep, at most cap of them; returns how many. */
size_t post_nms(const struct post_cand *c, size_t n, float iou_threshold, size_t *keep, size_t cap);

#endif
