/* Post-processing in the pipeline (post/post.h): a model's detector head
 * checked against its output at load; decoded where the model's last node
 * runs: here, or on the peer, which the robot asks with the request's
 * parameters (peer_proto.h) and which answers only the detections, in the
 * model input's pixels. The robot maps them to the original image's pixels
 * with its own fit in both cases, so its answer is the same whichever side
 * decoded. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

_Static_assert((int)CONFIG_POST_NONE == (int)POST_NONE && (int)CONFIG_POST_CLASSIFY == (int)POST_CLASSIFY &&
		       (int)CONFIG_POST_YOLOV5 == (int)POST_YOLOV5 && (int)CONFIG_POST_YOLOV8 == (int)POST_YOLOV8,
	       "config's postprocess names are post/'s kinds");

/* What a v2 infer of a detector answers (pipe_local.c's v2_detections):
 * N detections, so the first dimension is dynamic. */
static int list_detections(struct pipe_model *m)
{
	const int n_det = m->post.keypoints ? 4 : 3;
	struct api_tensor_meta *t = calloc((size_t)(n_det + m->api.n_outputs), sizeof(*t));

	if (!t)
		return -ENOMEM;
	t[0] = (struct api_tensor_meta){ .name = "boxes", .dtype = TENSOR_F32, .ndim = 2, .shape = { -1, 4 } };
	t[1] = (struct api_tensor_meta){ .name = "scores", .dtype = TENSOR_F32, .ndim = 1, .shape = { -1 } };
	t[2] = (struct api_tensor_meta){ .name = "classes", .dtype = TENSOR_I32, .ndim = 1, .shape = { -1 } };
	if (m->post.keypoints)
		t[3] = (struct api_tensor_meta){ .name = "keypoints", .dtype = TENSOR_F32, .ndim = 3,
						 .shape = { -1, m->post.keypoints, 3 } };
	memcpy(&t[n_det], m->out_meta, (size_t)m->api.n_outputs * sizeof(*t));
	free(m->listed_meta);
	m->listed_meta = t;
	m->api.listed_outputs = t;
	m->api.n_listed_outputs = n_det + m->api.n_outputs;
	return 0;
}

int pipe_post_setup(struct pipe_model *m, const struct config_model *cm)
{
	struct post_layout L;
	char err[512];
	int r;

	m->post = (struct post_params){ .kind = (enum post_kind)cm->postprocess,
					.score_threshold = (float)cm->score_threshold,
					.iou_threshold = (float)cm->iou_threshold,
					.max_detections = cm->max_detections, .keypoints = cm->keypoints };
	if (cm->output_encoding.is_auto)
		m->output_enc = (struct link_encoding){ LINK_VALUE_F32, LINK_COMP_NONE, 0 };
	else
		m->output_enc = cm->output_encoding.enc;
	if (m->post.kind == POST_CLASSIFY) {
		if (m->api.n_outputs < 1 || m->out_meta[0].dtype != TENSOR_F32)
			return log_err(-EINVAL, "model %s: postprocess = classify needs a float32 output; '%s' is not",
				       m->name, m->api.n_outputs ? m->out_meta[0].name : "(none)");
		return 0;
	}
	if (!post_kind_detects(m->post.kind))
		return 0;
	if (m->api.n_outputs < 1)
		return log_err(-EINVAL, "model %s: postprocess = %s needs an output", m->name,
			       post_kind_name(m->post.kind));
	const struct api_tensor_meta *o = &m->out_meta[0];
	if ((r = post_check(&m->post, o->dtype, o->ndim, o->shape, m->n_labels, &L, err, sizeof(err))) < 0)
		return log_err(r, "model %s: postprocess = %s does not fit output '%s': %s", m->name,
			       post_kind_name(m->post.kind), o->name, err);
	m->post_classes = L.classes;
	m->detects = true;
	if ((r = list_detections(m)) < 0)
		return log_err(r, "model %s: out of memory", m->name);
	log_info("model %s: %s head, %lld candidates of %d classes and %d keypoints, decoded where the last "
		 "node runs", m->name, post_kind_name(m->post.kind), (long long)L.n, L.classes, m->post.keypoints);
	return 0;
}

void pipe_post_ask(const struct pipe_model *m, struct peer_post *out)
{
	*out = (struct peer_post){ .score_threshold = m->post.score_threshold,
				   .iou_threshold = m->post.iou_threshold,
				   .max_detections = m->post.max_detections, .keypoints = m->post.keypoints };
	snprintf(out->kind, sizeof(out->kind), "%s", post_kind_name(m->post.kind));
}

int pipe_post_asked(const struct pipe_model *m, const struct peer_post *pp, struct post_params *out,
		    char *err, size_t errlen)
{
	struct post_layout L;
	int r;

	*out = (struct post_params){ 0 };
	if (!pp->kind[0])
		return 0;
	if (post_kind_parse(pp->kind, &out->kind) < 0 || !post_kind_detects(out->kind))
		return err_set(-EINVAL, err, errlen, "splitd_postprocess '%s' is not a detector head (yolov5, yolov8)",
			       pp->kind);
	if (pp->max_detections < 1 || pp->max_detections > POST_MAX_DETECTIONS || pp->keypoints < 0 ||
	    pp->keypoints > POST_MAX_KEYPOINTS)
		return err_set(-EINVAL, err, errlen, "splitd_max_detections %lld or splitd_keypoints %lld out of range",
			       (long long)pp->max_detections, (long long)pp->keypoints);
	out->score_threshold = (float)pp->score_threshold;
	out->iou_threshold = (float)pp->iou_threshold;
	out->max_detections = (int)pp->max_detections;
	out->keypoints = (int)pp->keypoints;
	const struct api_tensor_meta *o = &m->out_meta[0];
	if (m->api.n_outputs < 1)
		return err_set(-EINVAL, err, errlen, "model '%s' has no output to decode", m->name);
	if ((r = post_check(out, o->dtype, o->ndim, o->shape, 0, &L, err, errlen)) < 0)
		return r;
	return 0;
}

void pipe_post_wire_fini(struct pipe_post_wire *w)
{
	free(w->boxes);
	free(w->scores);
	free(w->classes);
	*w = (struct pipe_post_wire){ 0 };
}

int pipe_post_wire(const struct post_result *r, struct pipe_post_wire *w, struct peer_tensor *outs, int *n)
{
	size_t N = r->n, K = (size_t)r->keypoints;

	*w = (struct pipe_post_wire){ 0 };
	w->boxes = malloc(sizeof(float) * (4 * N + 1));
	w->scores = malloc(sizeof(float) * (N + 1));
	w->classes = malloc(sizeof(int32_t) * (N + 1));
	if (!w->boxes || !w->scores || !w->classes) {
		pipe_post_wire_fini(w);
		return -ENOMEM;
	}
	for (size_t i = 0; i < N; i++) {
		memcpy(w->boxes + 4 * i, r->d[i].box, sizeof(r->d[i].box));
		w->scores[i] = r->d[i].score;
		w->classes[i] = r->d[i].class_id;
	}
	const struct link_encoding f32 = { LINK_VALUE_F32, LINK_COMP_NONE, 0 };
	outs[0] = (struct peer_tensor){ .name = PEER_DET_BOXES, .dtype = TENSOR_F32, .ndim = 2, .shape = { (int64_t)N, 4 },
					.enc = f32, .scale = 1, .data = w->boxes, .len = sizeof(float) * 4 * N };
	outs[1] = (struct peer_tensor){ .name = PEER_DET_SCORES, .dtype = TENSOR_F32, .ndim = 1, .shape = { (int64_t)N },
					.enc = f32, .scale = 1, .data = w->scores, .len = sizeof(float) * N };
	outs[2] = (struct peer_tensor){ .name = PEER_DET_CLASSES, .dtype = TENSOR_I32, .ndim = 1, .shape = { (int64_t)N },
					.enc = f32, .scale = 1, .data = w->classes, .len = sizeof(int32_t) * N };
	*n = 3;
	if (K) {
		outs[3] = (struct peer_tensor){ .name = PEER_DET_KEYPOINTS, .dtype = TENSOR_F32, .ndim = 3,
						.shape = { (int64_t)N, (int64_t)K, 3 }, .enc = f32, .scale = 1,
						.data = r->kpts, .len = sizeof(float) * 3 * K * N };
		*n = 4;
	}
	return 0;
}

/* The peer's tensor `name` of n x per values of dtype, decoded into a new
 * buffer (*out, free() it); NULL data for n 0. */
static int det_tensor(const struct peer_reply *rep, const char *name, enum tensor_dtype dt, int ndim,
		      const int64_t *shape, void **out, char *err, size_t errlen)
{
	const struct peer_tensor *t = NULL;

	*out = NULL;
	for (int j = 0; j < rep->resp.n_outputs; j++)
		if (!strcmp(rep->resp.outputs[j].name, name))
			t = &rep->resp.outputs[j];
	if (!t)
		return err_set(-EBADMSG, err, errlen, "the peer's detections lack '%s'", name);
	struct tensor_view v = { .dtype = dt, .ndim = ndim };
	memcpy(v.shape, shape, sizeof(int64_t) * (size_t)ndim);
	if (!(v.data = *out = malloc(tensor_bytes(&v) + 1)))
		return -ENOMEM;
	return peer_tensor_decode(t, &v, err, errlen);
}

int pipe_post_from_reply(const struct pipe_model *m, const struct peer_reply *rep, struct post_result *r,
			 char *err, size_t errlen)
{
	const struct peer_tensor *sc = NULL;
	void *boxes = NULL, *scores = NULL, *classes = NULL, *kpts = NULL;
	int K = m->post.keypoints, rc;

	for (int j = 0; j < rep->resp.n_outputs; j++)
		if (!strcmp(rep->resp.outputs[j].name, PEER_DET_SCORES))
			sc = &rep->resp.outputs[j];
	if (!sc || sc->ndim != 1 || sc->shape[0] > m->post.max_detections)
		return err_set(-EBADMSG, err, errlen, "the peer's answer holds no detections of at most %d objects",
			       m->post.max_detections);
	int64_t N = sc->shape[0];
	const int64_t sb[2] = { N, 4 }, sn[1] = { N }, sk[3] = { N, K, 3 };
	if ((rc = det_tensor(rep, PEER_DET_BOXES, TENSOR_F32, 2, sb, &boxes, err, errlen)) < 0 ||
	    (rc = det_tensor(rep, PEER_DET_SCORES, TENSOR_F32, 1, sn, &scores, err, errlen)) < 0 ||
	    (rc = det_tensor(rep, PEER_DET_CLASSES, TENSOR_I32, 1, sn, &classes, err, errlen)) < 0 ||
	    (K && (rc = det_tensor(rep, PEER_DET_KEYPOINTS, TENSOR_F32, 3, sk, &kpts, err, errlen)) < 0))
		goto out;
	rc = post_result_from(r, (size_t)N, boxes, scores, classes, kpts, K, m->post_classes, m->post.max_detections,
			      err, errlen);
out:
	free(boxes);
	free(scores);
	free(classes);
	free(kpts);
	return rc;
}

void pipe_post_fit(const struct pipe_model *m, int src_width, int src_height, struct post_fit *fit)
{
	struct api_image_info info;

	*fit = (struct post_fit){ 0 };
	if (!m->has_pp || api_image_fit(src_width, src_height, &m->pp, &info) < 0)
		return;
	*fit = (struct post_fit){ info.src_width, info.src_height, info.resized_width, info.resized_height,
				  info.pad_x, info.pad_y };
}

void pipe_post_finish(const struct pipe_model *m, struct post_result *r, const struct post_fit *fit)
{
	post_map(r, fit);
	post_label(r, (const char *const *)m->labels, m->n_labels);
}

int pipe_post_v1(struct pipe_v1 *v)
{
	struct pipe_model *m = v->m;
	const struct pipe_request *rq = v->req;
	struct post_fit fit = { 0 };
	int r;

	if (!m->detects)
		return 0;
	if (!v->have_det) {
		uint64_t t0 = link_now_ns();
		if (v->outs.n < 1) {
			v->status = 500;
			snprintf(v->err, sizeof(v->err), "the detector's output is missing");
			return -EINVAL;
		}
		if ((r = post_decode(&m->post, &v->outs.views[0], &v->det, v->err, sizeof(v->err))) < 0) {
			v->status = 500;
			return r;
		}
		v->post_ns = link_now_ns() - t0;
		v->have_det = true;
	}
	/* the image's size: as decoded here (or a raw frame's, known from its
	 * header), or as the peer decoded it */
	if (rq->image && rq->image->src_width > 0)
		pipe_post_fit(m, rq->image->src_width, rq->image->src_height, &fit);
	else if (v->offloaded && v->of.reply.resp.image_width > 0)
		pipe_post_fit(m, v->of.reply.resp.image_width, v->of.reply.resp.image_height, &fit);
	pipe_post_finish(m, &v->det, &fit);
	return 0;
}

size_t pipe_post_return_bytes(const struct pipe_model *m)
{
	const size_t header = 1024;
	size_t raw = 0;

	if (m->detects)
		return header + (size_t)m->post.max_detections * (16 + 4 + 4 + 12 * (size_t)m->post.keypoints);
	for (int i = 0; i < m->api.n_outputs; i++) {
		struct tensor_view v = { .dtype = m->out_meta[i].dtype, .ndim = m->out_meta[i].ndim };
		memcpy(v.shape, m->out_meta[i].shape, sizeof(v.shape));
		for (int d = 0; d < v.ndim; d++)
			if (v.shape[d] < 0)
				return 0;	/* dynamic: the planner's own guess */
		size_t b = tensor_bytes(&v);
		if (v.dtype == TENSOR_F32 && m->output_enc.value == LINK_VALUE_F16)
			b /= 2;
		else if (v.dtype == TENSOR_F32 && m->output_enc.value == LINK_VALUE_I8)
			b /= 4;
		raw += b;
	}
	return header + raw;
}
