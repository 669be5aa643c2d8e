/* Resize / Upsample on the CPU: nearest (every axis, all rounding modes),
 * linear and cubic (the last two axes), with ONNX's coordinate transforms. */
#include <errno.h>
#include <stdlib.h>

#include "cpu-impl.h"

static float orig_coord(const struct resize_params *r, int64_t o, int64_t in, int64_t out_i,
			float scale)
{
	/* ONNX takes the resized length as in x scale, unrounded */
	float out = (float)in * scale;
	(void)out_i;
	switch (r->coord) {
	case COORD_HALF_PIXEL:
		return ((float)o + 0.5f) / scale - 0.5f;
	case COORD_PYTORCH_HALF_PIXEL:
		return out > 1.f ? ((float)o + 0.5f) / scale - 0.5f : 0.f;
	case COORD_ALIGN_CORNERS:
		return out == 1.f ? 0.f : (float)o * (float)(in - 1) / (out - 1.f);
	case COORD_TF_HALF_PIXEL_FOR_NN:
		return ((float)o + 0.5f) / scale;
	case COORD_ASYMMETRIC:
	default:
		return (float)o / scale;
	}
}

static int64_t nearest_index(const struct resize_params *r, float x, int64_t in)
{
	float f = floorf(x);
	int64_t i;
	switch (r->nearest) {
	case NEAREST_ROUND_PREFER_CEIL:
		i = (int64_t)(x - f == 0.5f ? f + 1 : roundf(x));
		break;
	case NEAREST_FLOOR:
		i = (int64_t)f;
		break;
	case NEAREST_CEIL:
		i = (int64_t)ceilf(x);
		break;
	case NEAREST_ROUND_PREFER_FLOOR:
	default:
		i = (int64_t)(x - f == 0.5f ? f : roundf(x));
		break;
	}
	return i < 0 ? 0 : i >= in ? in - 1 : i;
}

/* taps per output coordinate: idx[o*T + t], w[o*T + t] */
static void axis_taps(const struct resize_params *r, int64_t in, int64_t out, float scale, int T,
		      int64_t *idx, float *w)
{
	for (int64_t o = 0; o < out; o++) {
		float x = orig_coord(r, o, in, out, scale);
		if (T == 1) {
			idx[o] = nearest_index(r, x, in);
			w[o] = 1.f;
			continue;
		}
		float f = floorf(x), s = x - f;
		int64_t b = (int64_t)f;
		float c[4];
		if (T == 2) {
			c[0] = 1.f - s, c[1] = s;
		} else {
			float A = r->cubic_a, t;
			t = s + 1;
			c[0] = ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
			c[1] = ((A + 2) * s - (A + 3)) * s * s + 1;
			t = 1 - s;
			c[2] = ((A + 2) * t - (A + 3)) * t * t + 1;
			t = 2 - s;
			c[3] = ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
			b -= 1;
		}
		float sum = 0.f;
		for (int t = 0; t < T; t++) {
			int64_t k = b + t;
			if (r->exclude_outside && (k < 0 || k >= in))
				c[t] = 0.f;
			sum += c[t];
			idx[o * T + t] = k < 0 ? 0 : k >= in ? in - 1 : k;
		}
		for (int t = 0; t < T; t++)
			w[o * T + t] = r->exclude_outside && sum != 0.f ? c[t] / sum : c[t];
	}
}

struct resize_job {
	const struct tensor_view *x, *y;
	int T;
	int64_t *idx[TENSOR_MAX_DIMS];
	float *wt[TENSOR_MAX_DIMS];
};

/* nearest: one output row (last axis) per item */
static void nearest_range(void *arg, int64_t r0, int64_t r1)
{
	struct resize_job *j = arg;
	const struct tensor_view *x = j->x, *y = j->y;
	int nd = y->ndim;
	int64_t xs[TENSOR_MAX_DIMS], k = 1;
	for (int d = nd - 1; d >= 0; d--) {
		xs[d] = k;
		k *= x->shape[d];
	}
	int64_t row = y->shape[nd - 1];
	for (int64_t r = r0; r < r1; r++) {
		int64_t rem = r, off = 0;
		for (int d = nd - 2; d >= 0; d--) {
			off += j->idx[d][rem % y->shape[d]] * xs[d];
			rem /= y->shape[d];
		}
		const float *src = (const float *)x->data + off;
		float *dst = (float *)y->data + r * row;
		for (int64_t o = 0; o < row; o++)
			dst[o] = src[j->idx[nd - 1][o]];
	}
}

/* linear/cubic over the last two axes: one (plane, output row) per item */
static void interp_range(void *arg, int64_t r0, int64_t r1)
{
	struct resize_job *j = arg;
	const struct tensor_view *x = j->x, *y = j->y;
	int nd = y->ndim, T = j->T;
	int64_t H = nd >= 2 ? x->shape[nd - 2] : 1, W = x->shape[nd - 1];
	int64_t OH = nd >= 2 ? y->shape[nd - 2] : 1, OW = y->shape[nd - 1];
	int hd = nd >= 2 ? nd - 2 : -1;
	for (int64_t r = r0; r < r1; r++) {
		int64_t plane = r / OH, oh = r % OH;
		const float *xp = (const float *)x->data + plane * H * W;
		float *dst = (float *)y->data + plane * OH * OW + oh * OW;
		for (int64_t ow = 0; ow < OW; ow++) {
			float acc = 0.f;
			for (int th = 0; th < (hd >= 0 ? T : 1); th++) {
				int64_t ih = hd >= 0 ? j->idx[hd][oh * T + th] : 0;
				float wh = hd >= 0 ? j->wt[hd][oh * T + th] : 1.f;
				float racc = 0.f;
				for (int tw = 0; tw < T; tw++)
					racc += j->wt[nd - 1][ow * T + tw] * xp[ih * W + j->idx[nd - 1][ow * T + tw]];
				acc += wh * racc;
			}
			dst[ow] = acc;
		}
	}
}

CPU_KERNEL(cpu_resize)
{
	const struct resize_params *r = &n->p.resize;
	const struct tensor_view *x = &in[0], *y = &out[0];
	struct resize_job j = { .x = x, .y = y,
				.T = r->mode == RESIZE_NEAREST ? 1 : r->mode == RESIZE_LINEAR ? 2 : 4 };
	int nd = y->ndim, rc = 0;
	int64_t tot = 0;

	if (!view_numel(y))
		return 0;
	for (int d = 0; d < nd; d++)
		tot += y->shape[d] * j.T;
	int64_t *ib = malloc(tot * sizeof(int64_t) + 8);
	float *wb = malloc(tot * sizeof(float) + 8);
	if (!ib || !wb) {
		rc = -ENOMEM;
		goto out;
	}
	int64_t off = 0;
	for (int d = 0; d < nd; d++) {
		int T = j.T;
		if (T > 1 && d < nd - 2)
			T = 1;
		j.idx[d] = ib + off;
		j.wt[d] = wb + off;
		if (T == 1 && j.T > 1) {	/* untouched leading axes */
			for (int64_t o = 0; o < y->shape[d]; o++)
				j.idx[d][o] = o, j.wt[d][o] = 1.f;
		} else {
			axis_taps(r, x->shape[d], y->shape[d], r->scales[d], T, j.idx[d], j.wt[d]);
		}
		off += y->shape[d] * j.T;
	}
	if (j.T == 1) {
		cpu_parallel(c, view_numel(y) / y->shape[nd - 1], nearest_range, &j);
	} else {
		int64_t rows = 1;
		for (int d = 0; d < nd - 1; d++)
			rows *= y->shape[d];
		cpu_parallel(c, rows, interp_range, &j);
	}
out:
	free(ib);
	free(wb);
	return rc;
}
