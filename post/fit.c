/* Boxes and keypoints from the model input's pixels back to the original
 * image's, through the fit the preprocessing recorded; and a classifier's
 * top k. */
#include <stdlib.h>

#include "post-impl.h"

static inline float clampf(float v, float lo, float hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void post_map(struct post_result *r, const struct post_fit *fit)
{
	if (!fit || fit->src_width <= 0 || fit->src_height <= 0 || fit->width <= 0 || fit->height <= 0)
		return;
	/* source pixels per input pixel, per axis: a letterbox keeps the
	 * aspect (up to the rounding of the resized size), a stretch does not */
	float sx = (float)fit->src_width / (float)fit->width, sy = (float)fit->src_height / (float)fit->height;
	float px = (float)fit->pad_x, py = (float)fit->pad_y;
	float W = (float)fit->src_width, H = (float)fit->src_height;

	for (size_t i = 0; i < r->n; i++) {
		struct detection *d = &r->d[i];
		d->box[0] = clampf((d->box[0] - px) * sx, 0, W);
		d->box[1] = clampf((d->box[1] - py) * sy, 0, H);
		d->box[2] = clampf((d->box[2] - px) * sx, 0, W);
		d->box[3] = clampf((d->box[3] - py) * sy, 0, H);
		float *kp = r->kpts ? r->kpts + 3 * (size_t)r->keypoints * i : NULL;
		for (int k = 0; kp && k < r->keypoints; k++) {
			kp[3 * k] = (kp[3 * k] - px) * sx;
			kp[3 * k + 1] = (kp[3 * k + 1] - py) * sy;
		}
	}
}

int post_topk(const float *x, int64_t n, int k, int64_t *idx)
{
	int got = 0;

	if (k > n)
		k = (int)n;
	for (int j = 0; j < k; j++) {
		int64_t best = -1;
		for (int64_t i = 0; i < n; i++) {
			bool taken = false;
			for (int q = 0; q < got && !taken; q++)
				taken = idx[q] == i;
			if (!taken && (best < 0 || x[i] > x[best]))
				best = i;
		}
		idx[got++] = best;
	}
	return got;
}
