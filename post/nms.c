/* Class-aware greedy NMS, as torchvision.ops.batched_nms defines it: in
 * score order, a box survives unless its IoU with a box of its class that
 * survived before it is above the threshold. The IoU is computed as
 * torchvision's kernel does, in float: inter / (area_a + area_b - inter),
 * with the intersection's sides clamped at 0 (a degenerate pair gives NaN,
 * which suppresses nothing). Once cap boxes survive the rest cannot enter
 * the best cap, so the walk stops there. */
#include <stdlib.h>

#include "post-impl.h"

static inline float area(const float *b)
{
	return (b[2] - b[0]) * (b[3] - b[1]);
}

static inline float iou(const float *a, float area_a, const float *b, float area_b)
{
	float x0 = a[0] > b[0] ? a[0] : b[0], y0 = a[1] > b[1] ? a[1] : b[1];
	float x1 = a[2] < b[2] ? a[2] : b[2], y1 = a[3] < b[3] ? a[3] : b[3];
	float w = x1 - x0 > 0 ? x1 - x0 : 0, h = y1 - y0 > 0 ? y1 - y0 : 0;
	float inter = w * h;

	return inter / (area_a + area_b - inter);
}

size_t post_nms(const struct post_cand *c, size_t n, float iou_threshold, size_t *keep, size_t cap)
{
	size_t kept = 0;

	for (size_t i = 0; i < n && kept < cap; i++) {
		float ai = area(c[i].box);
		bool drop = false;
		for (size_t k = 0; k < kept && !drop; k++) {
			const struct post_cand *o = &c[keep[k]];
			drop = o->cls == c[i].cls && iou(c[i].box, ai, o->box, area(o->box)) > iou_threshold;
		}
		if (!drop)
			keep[kept++] = i;
	}
	return kept;
}
