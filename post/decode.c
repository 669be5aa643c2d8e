/* The detector heads decoded (post.h has their layouts): the candidates
 * whose score passes the threshold, best first, then class-aware NMS
 * (nms.c) down to max_detections. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "post-impl.h"

static const char *const kind_names[POST_KINDS] = { "none", "classify", "yolov5", "yolov8" };

const char *post_kind_name(enum post_kind k)
{
	return k >= 0 && k < POST_KINDS ? kind_names[k] : NULL;
}

int post_kind_parse(const char *s, enum post_kind *out)
{
	for (int k = 0; s && k < POST_KINDS; k++)
		if (!strcmp(s, kind_names[k])) {
			*out = (enum post_kind)k;
			return 0;
		}
	return -EINVAL;
}

int post_params_check(const struct post_params *p, char *err, size_t errlen)
{
	if (!post_kind_detects(p->kind))
		return err_set(-EINVAL, err, errlen, "postprocess '%s' is not a detector head",
			       post_kind_name(p->kind) ? post_kind_name(p->kind) : "?");
	if (!(p->score_threshold >= 0 && p->score_threshold <= 1))
		return err_set(-EINVAL, err, errlen, "score_threshold %g is outside [0, 1]", (double)p->score_threshold);
	if (!(p->iou_threshold >= 0 && p->iou_threshold <= 1))
		return err_set(-EINVAL, err, errlen, "iou_threshold %g is outside [0, 1]", (double)p->iou_threshold);
	if (p->max_detections < 1 || p->max_detections > POST_MAX_DETECTIONS)
		return err_set(-EINVAL, err, errlen, "max_detections %d is outside 1..%d", p->max_detections,
			       POST_MAX_DETECTIONS);
	if (p->keypoints < 0 || p->keypoints > POST_MAX_KEYPOINTS)
		return err_set(-EINVAL, err, errlen, "keypoints %d is outside 0..%d", p->keypoints, POST_MAX_KEYPOINTS);
	return 0;
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t len)
{
	size_t o = 0;

	buf[0] = 0;
	o += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < ndim && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%" PRId64, i ? "," : "", shape[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
}

int post_check(const struct post_params *p, enum tensor_dtype dtype, int ndim, const int64_t *shape,
	       int n_labels, struct post_layout *out, char *err, size_t errlen)
{
	bool v5 = p->kind == POST_YOLOV5;
	int base = v5 ? 5 : 4, K = p->keypoints;
	char got[96], want[128];
	int r;

	if ((r = post_params_check(p, err, errlen)) < 0)
		return r;
	shape_text(ndim, shape, got, sizeof(got));
	snprintf(want, sizeof(want), v5 ? "[1, N, %d + C%s] (or its transpose)" : "[1, %d + C%s, N] (or its transpose)",
		 base, K ? (v5 ? " + 3K" : " + 3K") : "");
	if (K)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), ", K = %d", K);
	if (dtype != TENSOR_F32)
		return err_set(-EINVAL, err, errlen, "a %s head needs a float32 output %s; the model's is %s %s",
			       post_kind_name(p->kind), want, tensor_dtype_name(dtype) ? tensor_dtype_name(dtype) : "?", got);
	if (!(ndim == 2 || (ndim == 3 && shape[0] == 1)) || shape[ndim - 2] < 1 || shape[ndim - 1] < 1)
		return err_set(-EINVAL, err, errlen, "a %s head needs an output %s; the model's is %s",
			       post_kind_name(p->kind), want, got);
	int64_t a = shape[ndim - 2], b = shape[ndim - 1];
	bool t = a < b || (a == b && !v5);
	struct post_layout L = { .n = t ? b : a, .attrs = t ? a : b, .transposed = t };
	int64_t c = L.attrs - base - 3 * (int64_t)K;
	if (c < 1 || c > 1000000)
		return err_set(-EINVAL, err, errlen,
			       "a %s head needs an output %s with C >= 1 classes; the model's is %s (%" PRId64
			       " values per candidate)", post_kind_name(p->kind), want, got, L.attrs);
	L.classes = (int)c;
	if (n_labels > 0 && n_labels != L.classes)
		return err_set(-EINVAL, err, errlen,
			       "the %s head's output %s holds %d classes (%s), but the labels list %d",
			       post_kind_name(p->kind), got, L.classes, want, n_labels);
	*out = L;
	return 0;
}

void post_result_fini(struct post_result *r)
{
	free(r->d);
	free(r->kpts);
	*r = (struct post_result){ 0 };
}

void post_label(struct post_result *r, const char *const *labels, int n_labels)
{
	for (size_t i = 0; i < r->n; i++) {
		int c = r->d[i].class_id;
		r->d[i].label = labels && c >= 0 && c < n_labels ? labels[c] : NULL;
	}
}

/* Value a of candidate i. */
static inline float at(const float *x, const struct post_layout *L, int64_t i, int64_t a)
{
	return L->transposed ? x[a * L->n + i] : x[i * L->attrs + a];
}

/* Each candidate's best class and score (score = obj * class for yolov5),
 * into best[] and cls[] (n each). */
static void class_scores(const float *x, const struct post_layout *L, bool v5, float *best, int *cls)
{
	int base = v5 ? 5 : 4;

	if (L->transposed) {	/* one row per attribute: walk them in order */
		for (int64_t i = 0; i < L->n; i++) {
			best[i] = x[base * L->n + i];
			cls[i] = 0;
		}
		for (int c = 1; c < L->classes; c++) {
			const float *row = x + (base + c) * L->n;
			for (int64_t i = 0; i < L->n; i++)
				if (row[i] > best[i]) {
					best[i] = row[i];
					cls[i] = c;
				}
		}
	} else {
		for (int64_t i = 0; i < L->n; i++) {
			const float *row = x + i * L->attrs + base;
			float b = row[0];
			int bc = 0;
			for (int c = 1; c < L->classes; c++)
				if (row[c] > b) {
					b = row[c];
					bc = c;
				}
			best[i] = b;
			cls[i] = bc;
		}
	}
	if (v5)
		for (int64_t i = 0; i < L->n; i++)
			best[i] *= at(x, L, i, 4);
}

/* The candidates best first, ties by lower index: an LSD radix sort of
 * 64-bit keys, the score's bits inverted above the position. A score here
 * is > threshold >= 0 and finite, so its float bits order as the value. */
static int sort_cands(struct post_cand **c, size_t n)
{
	uint64_t *k = malloc(sizeof(uint64_t) * (2 * n + 1));
	struct post_cand *out = malloc(sizeof(*out) * (n + 1));
	size_t count[256];

	if (!k || !out) {
		free(k);
		free(out);
		return -ENOMEM;
	}
	uint64_t *a = k, *b = k + n;
	for (size_t i = 0; i < n; i++) {
		uint32_t bits;
		memcpy(&bits, &(*c)[i].score, sizeof(bits));
		a[i] = (uint64_t)(0xffffffffu - bits) << 32 | (uint64_t)i;
	}
	for (int shift = 0; shift < 64; shift += 8) {
		if (shift < 32 && (n >> shift) == 0)
			continue;	/* the position's high bytes are all 0 */
		memset(count, 0, sizeof(count));
		for (size_t i = 0; i < n; i++)
			count[(a[i] >> shift) & 0xff]++;
		for (size_t d = 0, sum = 0; d < 256; d++) {
			size_t t = count[d];
			count[d] = sum;
			sum += t;
		}
		for (size_t i = 0; i < n; i++)
			b[count[(a[i] >> shift) & 0xff]++] = a[i];
		uint64_t *t = a;
		a = b;
		b = t;
	}
	for (size_t i = 0; i < n; i++)
		out[i] = (*c)[a[i] & 0xffffffffu];
	free(k);
	free(*c);
	*c = out;
	return 0;
}

/* The candidates over the threshold, boxes as corners, best first. */
static int candidates(const struct post_params *p, const float *x, const struct post_layout *L,
		      struct post_cand **out, size_t *n_out)
{
	float *best = malloc(sizeof(float) * (size_t)L->n);
	int *cls = malloc(sizeof(int) * (size_t)L->n);
	struct post_cand *c = NULL;
	size_t n = 0;
	int r = -ENOMEM;

	if (!best || !cls)
		goto out;
	class_scores(x, L, p->kind == POST_YOLOV5, best, cls);
	for (int64_t i = 0; i < L->n; i++)
		n += best[i] > p->score_threshold;
	if (!(c = malloc(sizeof(*c) * (n ? n : 1))))
		goto out;
	n = 0;
	for (int64_t i = 0; i < L->n; i++) {
		if (!(best[i] > p->score_threshold))
			continue;
		float cx = at(x, L, i, 0), cy = at(x, L, i, 1), w = at(x, L, i, 2), h = at(x, L, i, 3);
		struct post_cand *k = &c[n];
		k->box[0] = cx - w / 2;
		k->box[1] = cy - h / 2;
		k->box[2] = cx + w / 2;
		k->box[3] = cy + h / 2;
		if (!isfinite(k->box[0]) || !isfinite(k->box[1]) || !isfinite(k->box[2]) || !isfinite(k->box[3]) ||
		    !isfinite(best[i]))
			continue;
		k->score = best[i];
		k->cls = cls[i];
		k->i = i;
		n++;
	}
	if (n > 0xffffffffu || (r = sort_cands(&c, n)) < 0) {
		r = -ENOMEM;
		goto out;
	}
	*out = c;
	*n_out = n;
	c = NULL;
	r = 0;
out:
	free(c);
	free(best);
	free(cls);
	return r;
}

int post_decode(const struct post_params *p, const struct tensor_view *out, struct post_result *r,
		char *err, size_t errlen)
{
	struct post_layout L;
	struct post_cand *c = NULL;
	size_t n = 0, *keep = NULL, kept = 0;
	int rc;

	post_result_fini(r);
	if ((rc = post_check(p, out->dtype, out->ndim, out->shape, 0, &L, err, errlen)) < 0)
		return rc;
	if (!out->data)
		return err_set(-EINVAL, err, errlen, "the head's output holds no data");
	const float *x = out->data;
	if ((rc = candidates(p, x, &L, &c, &n)) < 0)
		goto out;
	rc = -ENOMEM;
	size_t cap = n < (size_t)p->max_detections ? n : (size_t)p->max_detections;
	if (!(keep = malloc(sizeof(*keep) * (cap ? cap : 1))))
		goto out;
	kept = post_nms(c, n, p->iou_threshold, keep, cap);
	int K = p->keypoints;
	r->d = calloc(kept ? kept : 1, sizeof(*r->d));
	r->kpts = K ? malloc(sizeof(float) * 3 * (size_t)K * (kept ? kept : 1)) : NULL;
	if (!r->d || (K && !r->kpts))
		goto out;
	r->keypoints = K;
	for (size_t j = 0; j < kept; j++) {
		const struct post_cand *k = &c[keep[j]];
		struct detection *d = &r->d[j];
		d->class_id = k->cls;
		d->score = k->score;
		memcpy(d->box, k->box, sizeof(d->box));
		if (K) {
			float *kp = r->kpts + 3 * (size_t)K * j;
			int64_t a0 = (p->kind == POST_YOLOV5 ? 5 : 4) + L.classes;
			for (int64_t q = 0; q < 3 * (int64_t)K; q++)
				kp[q] = at(x, &L, k->i, a0 + q);
			d->n_keypoints = K;
			d->keypoints = kp;
		}
	}
	r->n = kept;
	rc = 0;
out:
	if (rc < 0) {
		post_result_fini(r);
		if (rc == -ENOMEM)
			err_set(rc, err, errlen, "out of memory decoding the detector head");
	}
	free(keep);
	free(c);
	return rc;
}

int post_result_from(struct post_result *r, size_t n, const float *boxes, const float *scores,
		     const int32_t *classes, const float *kpts, int keypoints, int classes_count,
		     int max_detections, char *err, size_t errlen)
{
	post_result_fini(r);
	if (n > (size_t)max_detections)
		return err_set(-EBADMSG, err, errlen, "%zu detections, more than the %d asked for", n, max_detections);
	if (keypoints < 0 || keypoints > POST_MAX_KEYPOINTS || (keypoints && n && !kpts))
		return err_set(-EBADMSG, err, errlen, "the detections' keypoints are missing");
	for (size_t i = 0; i < n; i++) {
		if (classes[i] < 0 || classes[i] >= classes_count)
			return err_set(-EBADMSG, err, errlen, "detection %zu has class %d, outside 0..%d", i,
				       (int)classes[i], classes_count - 1);
		bool ok = isfinite(scores[i]);
		for (int q = 0; q < 4; q++)
			ok &= isfinite(boxes[4 * i + (size_t)q]) != 0;
		for (size_t q = 0; keypoints && q < 3 * (size_t)keypoints; q++)
			ok &= isfinite(kpts[3 * (size_t)keypoints * i + q]) != 0;
		if (!ok)
			return err_set(-EBADMSG, err, errlen, "detection %zu holds a non-finite value", i);
	}
	r->d = calloc(n ? n : 1, sizeof(*r->d));
	r->kpts = keypoints ? malloc(sizeof(float) * 3 * (size_t)keypoints * (n ? n : 1)) : NULL;
	if (!r->d || (keypoints && !r->kpts)) {
		post_result_fini(r);
		return err_set(-ENOMEM, err, errlen, "out of memory");
	}
	r->keypoints = keypoints;
	for (size_t i = 0; i < n; i++) {
		struct detection *d = &r->d[i];
		d->class_id = classes[i];
		d->score = scores[i];
		memcpy(d->box, boxes + 4 * i, sizeof(d->box));
		if (keypoints) {
			float *kp = r->kpts + 3 * (size_t)keypoints * i;
			memcpy(kp, kpts + 3 * (size_t)keypoints * i, sizeof(float) * 3 * (size_t)keypoints);
			d->n_keypoints = keypoints;
			d->keypoints = kp;
		}
	}
	r->n = n;
	return 0;
}
