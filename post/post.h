/* post/: what a model's raw output becomes before anyone reads it. The
 * detector heads (YOLOv5 and YOLOv8 layouts, with or without pose
 * keypoints) decoded, class-aware NMS, boxes mapped back through the
 * image's fit (letterbox or stretch) to the original pixels; and the top-k
 * of a classifier. A ground-floor library: it reads kernels/tensor.h (the
 * plain view) and fills common/detection.h, nothing else.
 *
 * The heads, as exported (boxes already decoded to input pixels):
 *   yolov5: [1, N, 5 + C + 3K]: cx, cy, w, h, objectness, C class scores,
 *           then K keypoints (x, y, visibility); score = obj * max class.
 *   yolov8: [1, 4 + C + 3K, N]: cx, cy, w, h, C class scores, K keypoints;
 *           score = max class.
 * Either head may come transposed (the other one's order): the attributes
 * lie along the shorter of the last two dimensions, ties read as the head's
 * own order. A rank-2 output ([N, F] or [F, N]) reads the same without the
 * batch. Only float32 outputs. */
#ifndef SPLITD_POST_H
#define SPLITD_POST_H

#include <stddef.h>
#include <stdint.h>

#include "detection.h"
#include "tensor.h"

enum post_kind { POST_NONE, POST_CLASSIFY, POST_YOLOV5, POST_YOLOV8, POST_KINDS };

/* "none", "classify", "yolov5", "yolov8"; NULL when out of range. */
const char *post_kind_name(enum post_kind k);
/* The kind named s; -EINVAL when none is. */
int post_kind_parse(const char *s, enum post_kind *out);
static inline int post_kind_detects(enum post_kind k)
{
	return k == POST_YOLOV5 || k == POST_YOLOV8;
}

#define POST_MAX_DETECTIONS 10000
#define POST_MAX_KEYPOINTS 1000

struct post_params {
	enum post_kind kind;
	float score_threshold;	/* a candidate stays when its score > this */
	float iou_threshold;	/* NMS drops a box whose IoU with a kept box of its class > this */
	int max_detections;	/* 1..POST_MAX_DETECTIONS: the best this many */
	int keypoints;		/* K (pose heads); 0 none */
};
/* Bounds of every field (kind a detector; thresholds in [0, 1], finite);
 * 0 or -EINVAL with err set. */
int post_params_check(const struct post_params *p, char *err, size_t errlen);

/* How a head's output lies (post_check). */
struct post_layout {
	int64_t n;		/* candidates */
	int64_t attrs;		/* values per candidate */
	int classes;		/* C */
	int transposed;		/* 1: attributes along dim -2, candidates along the last */
};
/* Does an output of this dtype and shape fit p's head (and n_labels
 * classes, when n_labels > 0)? 0 with *out set, or -EINVAL with a sentence
 * naming the shape and what was expected. */
int post_check(const struct post_params *p, enum tensor_dtype dtype, int ndim, const int64_t *shape,
	       int n_labels, struct post_layout *out, char *err, size_t errlen);

/* Detections being built: d[i].keypoints point into kpts. */
struct post_result {
	size_t n;
	struct detection *d;
	float *kpts;		/* n x K x 3 */
	int keypoints;		/* K */
};
void post_result_fini(struct post_result *r);
/* The result as the floors pass it on (borrowed from r). */
static inline struct detections post_detections(const struct post_result *r)
{
	return (struct detections){ r->n, r->d };
}
/* Set each detection's label from labels (n_labels; NULL or out of range:
 * no label). */
void post_label(struct post_result *r, const char *const *labels, int n_labels);

/* Decode p's head from out (float32, post_check's shape), then NMS: at most
 * max_detections objects, best score first, boxes and keypoints in the
 * model input's pixels. r is replaced (post_result_fini first). 0, or
 * -errno with err set. */
int post_decode(const struct post_params *p, const struct tensor_view *out, struct post_result *r,
		char *err, size_t errlen);

/* Detections that arrived built (the peer's answer): n boxes [n, 4], scores
 * [n], classes [n], keypoints [n, K, 3] (NULL when K is 0), copied into r.
 * Checked as the peer's word: finite, classes in [0, classes), n within
 * max_detections; -EBADMSG with err otherwise. */
int post_result_from(struct post_result *r, size_t n, const float *boxes, const float *scores,
		     const int32_t *classes, const float *kpts, int keypoints, int classes_count,
		     int max_detections, char *err, size_t errlen);

/* How an image became the model's input: resized to width x height and
 * placed at (pad_x, pad_y) (a stretch fills the input: no padding). */
struct post_fit {
	int src_width, src_height;
	int width, height;
	int pad_x, pad_y;
};
/* Boxes and keypoints from input pixels to the original image's, boxes
 * clipped to it. A fit with no source size leaves r alone. */
void post_map(struct post_result *r, const struct post_fit *fit);

/* The k best of n scores (k <= n), best first, ties by lower index. */
int post_topk(const float *x, int64_t n, int k, int64_t *idx);

#endif
