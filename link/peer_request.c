/* The peer's reading of a robot's request (see peer_proto.h): its
 * parameters and inputs, checked, then matched to the engine's cut and
 * decoded. */
#include "peer_proto.h"
#include "link-impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "peer_v2.h"

/* splitd_postprocess and its parameters (all required with it). */
static int read_post(const struct peer_params *params, struct peer_post *out, char *err, size_t errlen)
{
	const char *s;
	int rc;

	if ((rc = peer_param_string(params, "splitd_postprocess", &s)) == -ENOENT)
		return 0;
	if (rc < 0 || !*s || strlen(s) >= sizeof(out->kind))
		return err_set(-EBADMSG, err, errlen, "splitd_postprocess is not a post-processing name");
	snprintf(out->kind, sizeof(out->kind), "%s", s);
	if (peer_param_number(params, "splitd_score_threshold", &out->score_threshold) < 0 ||
	    peer_param_number(params, "splitd_iou_threshold", &out->iou_threshold) < 0 ||
	    peer_param_int(params, "splitd_max_detections", &out->max_detections) < 0 ||
	    peer_param_int(params, "splitd_keypoints", &out->keypoints) < 0)
		return err_set(-EBADMSG, err, errlen,
			       "splitd_postprocess needs splitd_score_threshold and splitd_iou_threshold (numbers), "
			       "splitd_max_detections and splitd_keypoints (integers)");
	return 0;
}

int peer_request_read_params(const struct peer_params *params, struct peer_request *out, char *err,
			     size_t errlen)
{
	const char *s;
	int64_t v;
	int b, rc;

	memset(out, 0, sizeof(*out));
	out->cut = -1;
	if (!params || !params->obj)
		return err_set(-EBADMSG, err, errlen, "request has no parameters (splitd_cut is required)");
	if (peer_param_int(params, "splitd_cut", &v) < 0 || v < 0 || v > (1 << 24))
		return err_set(-EBADMSG, err, errlen, "request parameter splitd_cut is not a node position");
	out->cut = (int)v;
	if ((rc = peer_param_string(params, "splitd_model_sha256", &s)) != -ENOENT) {
		if (rc < 0 || peer_sha256_parse(s, out->model_sha256) < 0)
			return err_set(-EBADMSG, err, errlen, "splitd_model_sha256 is not 64 hex digits");
		out->has_sha = 1;
	}
	if ((rc = peer_param_int(params, "splitd_bands", &v)) != -ENOENT) {
		if (rc < 0 || v < 1 || v > PEER_MAX_BANDS)
			return err_set(-EBADMSG, err, errlen, "splitd_bands is not an integer in [1, %d]",
				    PEER_MAX_BANDS);
		out->bands = (int)v;
	}
	if ((rc = peer_param_bool(params, "splitd_wavefront", &b)) != -ENOENT) {
		if (rc < 0)
			return err_set(-EBADMSG, err, errlen, "splitd_wavefront is not a boolean");
		out->no_wavefront = !b;
	}
	if ((rc = peer_param_bool(params, "binary_data_output", &b)) != -ENOENT) {
		if (rc < 0)
			return err_set(-EBADMSG, err, errlen, "binary_data_output is not a boolean");
		out->binary_output = b;
	}
	if ((rc = peer_param_string(params, "splitd_output_encoding", &s)) != -ENOENT) {
		if (rc < 0 || link_encoding_parse(s, &out->output_enc) < 0)
			return err_set(-EBADMSG, err, errlen, "splitd_output_encoding is not an encoding string");
	}
	return read_post(params, &out->post, err, errlen);
}

int peer_request_add_input(struct peer_request *r, const char *name, const char *datatype, int ndim,
			   const int64_t *shape, const struct peer_params *params, const void *data,
			   size_t len, char *err, size_t errlen)
{
	struct peer_tensor *t;
	int i, rc, nb = 0;

	if (!r)
		return -EINVAL;
	if ((i = r->n_inputs) >= PEER_MAX_TENSORS)
		return err_set(-EBADMSG, err, errlen, "more than %d inputs", PEER_MAX_TENSORS);
	t = &r->inputs[i];
	/* a banded body may still be arriving: nothing here reads its bytes */
	if (r->bands > 1 && datatype && !strcmp(datatype, "BYTES"))
		return err_set(-EBADMSG, err, errlen, "BYTES tensor '%.64s' cannot travel banded", name ? name : "");
	if ((rc = peer_input_read(name, datatype, ndim, shape, params, data, len, t, err, errlen)) < 0)
		return rc;
	for (int j = 0; j < i; j++)
		if (!strcmp(r->inputs[j].name, name))
			return err_set(-EBADMSG, err, errlen, "input '%.64s' appears twice", name);
	rc = peer_param_int_array(params, "splitd_band_rows", r->band_rows[i], PEER_MAX_BANDS, &nb);
	if (r->bands > 1) {
		if (rc == -ENOENT)
			return err_set(-EBADMSG, err, errlen, "input '%.64s' of a banded request has no splitd_band_rows",
				    name);
		if (rc < 0)
			return err_set(-EBADMSG, err, errlen,
				    "input '%.64s': splitd_band_rows is not a list of at most %d integers", name,
				    PEER_MAX_BANDS);
		t->band_ends = r->band_rows[i];
		t->n_band_ends = nb;
		if ((rc = peer_band_check(t, r->bands, err, errlen)) < 0)
			return rc;
	} else if (rc != -ENOENT) {
		return err_set(-EBADMSG, err, errlen, "input '%.64s' has splitd_band_rows in a request of one band",
			    name);
	}
	r->n_inputs++;
	return 0;
}

int peer_request_add_output(struct peer_request *r, const char *name, int binary, char *err, size_t errlen)
{
	if (!r)
		return -EINVAL;
	if (r->n_outputs >= PEER_MAX_TENSORS)
		return err_set(-EBADMSG, err, errlen, "more than %d requested outputs", PEER_MAX_TENSORS);
	if (!name || strlen(name) >= PEER_NAME_MAX)
		return err_set(-EBADMSG, err, errlen, "requested output %d has no valid name", r->n_outputs);
	r->outputs[r->n_outputs++] = name;
	if (binary)
		r->binary_output = 1;
	return 0;
}

int peer_request_parse(const void *header, size_t header_len, const void *binary,
		       size_t binary_len, struct peer_request *out, char *err, size_t errlen)
{
	struct api_v2_message *msg = NULL;
	size_t announced = 0;
	int r;

	if (!out || (!header && header_len) || (!binary && binary_len))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->cut = -1;
	if (!header_len)
		return err_set(-EBADMSG, err, errlen, "request has no JSON header");
	/* the API's one v2 parse, as the deployed peer runs it (its header
	 * first, the binary part where it lies), then the peer's reading */
	if ((r = api_v2_parse_header(API_V2_REQUEST, header, header_len, binary, binary_len, &msg,
				     &announced, err, errlen)) < 0)
		return r == -ENOMEM ? r : -EBADMSG;
	if (announced != binary_len) {
		r = err_set(-EBADMSG, err, errlen, "%zu bytes follow the last input's data",
			     binary_len - announced);
		goto out;
	}
	if ((r = peer_v2_request_read(msg, 0, out, err, errlen)) < 0)
		goto out;
	out->msg = msg;
	return 0;
out:
	api_v2_message_free(msg);
	return r;
}

void peer_request_fini(struct peer_request *r)
{
	if (!r)
		return;
	api_v2_message_free(r->msg);
	r->msg = NULL;
}

int peer_cut_alloc(const struct engine_value_info *cut, int n_cut, struct tensor_view *views,
		   void **mem)
{
	size_t total = 0, off = 0;
	uint8_t *m;

	if (n_cut < 0 || (n_cut && (!cut || !views)) || !mem)
		return -EINVAL;
	for (int j = 0; j < n_cut; j++)
		total += (cut[j].bytes + 63) & ~(size_t)63;
	if (!(m = aligned_alloc(64, total ? total : 64)))
		return -ENOMEM;
	for (int j = 0; j < n_cut; j++) {
		views[j].dtype = cut[j].dtype;
		views[j].ndim = cut[j].ndim;
		memcpy(views[j].shape, cut[j].shape, sizeof(views[j].shape));
		views[j].data = m + off;
		off += (cut[j].bytes + 63) & ~(size_t)63;
	}
	*mem = m;
	return 0;
}

/* The request names this peer's model (model_sha256 NULL: no check). */
static int check_model(const struct peer_request *r, const uint8_t *model_sha256, char *err, size_t errlen)
{
	char want[65], got[65];

	if (!model_sha256)
		return 0;
	if (!r->has_sha)
		return err_set(-EBADMSG, err, errlen, "request does not name the model (splitd_model_sha256)");
	if (memcmp(r->model_sha256, model_sha256, 32)) {
		peer_sha256_hex(model_sha256, want);
		peer_sha256_hex(r->model_sha256, got);
		return err_set(-EBADMSG, err, errlen,
			    "request is for model sha256 %.12s..., this peer holds %.12s...", got, want);
	}
	return 0;
}

int peer_request_decode(const struct peer_request *r, const uint8_t *model_sha256,
			const struct engine_value_info *cut, int n_cut,
			struct tensor_view *views, const void **image, size_t *image_len,
			char *err, size_t errlen)
{
	int which[PEER_MAX_TENSORS];
	int rc;

	if (!r || n_cut < 0 || n_cut > PEER_MAX_TENSORS)
		return err_set(-EINVAL, err, errlen, "invalid decode arguments");
	if ((rc = check_model(r, model_sha256, err, errlen)) < 0)
		return rc;
	if (image)
		*image = NULL;
	if (image_len)
		*image_len = 0;
	if (r->n_inputs == 1 && r->inputs[0].is_bytes) {
		if (r->cut != 0)
			return err_set(-EBADMSG, err, errlen, "a BYTES (image) input is only accepted at cut 0, not %d",
				    r->cut);
		if (!image || !image_len)
			return err_set(-EBADMSG, err, errlen, "this peer does not accept images");
		*image = r->inputs[0].data;
		*image_len = r->inputs[0].len;
		return 0;
	}
	if (n_cut && (!cut || !views))
		return err_set(-EINVAL, err, errlen, "invalid decode arguments");
	if ((rc = peer_request_match(r, NULL, cut, n_cut, which, err, errlen)) < 0)
		return rc;
	for (int j = 0; j < n_cut; j++)
		if (views[j].dtype != cut[j].dtype || views[j].ndim != cut[j].ndim || !views[j].data)
			return err_set(-EINVAL, err, errlen, "view %d does not match the cut", j);
	if (r->bands > 1) {	/* band-major: each band of each input where it lies */
		for (int b = 0; b < r->bands; b++)
			for (int j = 0; j < n_cut; j++)
				if ((rc = peer_request_band_decode(r, b, which[j], &views[j], err, errlen)) < 0)
					return rc;
		return 0;
	}
	for (int j = 0; j < n_cut; j++)
		if ((rc = peer_tensor_decode(&r->inputs[which[j]], &views[j], err, errlen)) < 0)
			return rc;
	return 0;
}

int peer_request_match(const struct peer_request *r, const uint8_t *model_sha256,
		       const struct engine_value_info *cut, int n_cut, int *which, char *err, size_t errlen)
{
	int used[PEER_MAX_TENSORS] = { 0 };

	int rc;

	if (!r || n_cut < 0 || n_cut > PEER_MAX_TENSORS || (n_cut && (!cut || !which)))
		return err_set(-EINVAL, err, errlen, "invalid match arguments");
	if ((rc = check_model(r, model_sha256, err, errlen)) < 0)
		return rc;
	if (r->n_inputs != n_cut)
		return err_set(-EBADMSG, err, errlen, "cut %d carries %d tensors, the request has %d", r->cut, n_cut,
			    r->n_inputs);
	for (int j = 0; j < n_cut; j++) {
		int found = -1;

		for (int i = 0; i < r->n_inputs; i++)
			if (!used[i] && !strcmp(r->inputs[i].name, cut[j].name))
				found = i;
		if (found < 0)
			return err_set(-EBADMSG, err, errlen, "cut %d tensor '%.64s' is missing from the request",
				    r->cut, cut[j].name);
		used[found] = 1;
		which[j] = found;
	}
	return 0;
}

