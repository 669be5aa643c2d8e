/* Class-aware greedy NMS, as torchvision.ops.batched_nms defines it: in
 * score order, a box survives unless its IoU with a box of its class that
 * survived before it is above the threshold. The IoU is computed as
 * torchvision's kernel does, in float: inter / (area_a + area_b - inter),
 * with the intersection's sides clamped at 0 (a degenerate pair gives NaN,
 * which suppresses nothing). Once cap boxes survive the rest cannot enter
 * the best cap, so the walk stops there. A candidate is compared with the
 * survivors of its own class only (a list per class): with C classes that
 * is about C times fewer IoUs than a walk over all of them. */
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

/* Without the memory for the lists: every survivor is looked at. */
static size_t nms_flat(const struct post_cand *c, size_t n, float thr, size_t *keep, size_t cap)
{
	size_t kept = 0;

	for (size_t i = 0; i < n && kept < cap; i++) {
		float ai = area(c[i].box);
		bool drop = false;
		for (size_t k = 0; k < kept && !drop; k++) {
			const struct post_cand *o = &c[keep[k]];
			drop = o->cls == c[i].cls && iou(c[i].box, ai, o->box, area(o->box)) > thr;
		}
		if (!drop)
			keep[kept++] = i;
	}
	return kept;
}

size_t post_nms(const struct post_cand *c, size_t n, float iou_threshold, size_t *keep, size_t cap)
{
	int classes = 0;

	for (size_t i = 0; i < n; i++)
		if (c[i].cls >= classes)
			classes = c[i].cls + 1;
	/* per class, its survivors: first[cls], then next[k] (indices into
	 * keep, -1 ends), and each survivor's area */
	long *first = malloc(sizeof(long) * ((size_t)classes + 1));
	long *next = malloc(sizeof(long) * (cap + 1));
	float *areas = malloc(sizeof(float) * (cap + 1));
	size_t kept = 0;

	if (!first || !next || !areas) {
		free(first);
		free(next);
		free(areas);
		return nms_flat(c, n, iou_threshold, keep, cap);
	}
	for (int k = 0; k < classes; k++)
		first[k] = -1;
	long *last = NULL;
	for (size_t i = 0; i < n && kept < cap; i++) {
		float ai = area(c[i].box);
		bool drop = false;
		for (long k = first[c[i].cls]; k >= 0 && !drop; k = next[k])
			drop = iou(c[i].box, ai, c[keep[k]].box, areas[k]) > iou_threshold;
		if (drop)
			continue;
		/* append to its class's list, keeping survivors in score order */
		next[kept] = -1;
		areas[kept] = ai;
		keep[kept] = i;
		for (last = &first[c[i].cls]; *last >= 0; last = &next[*last])
			;
		*last = (long)kept++;
	}
	free(first);
	free(next);
	free(areas);
	return kept;
}
