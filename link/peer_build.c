/* Building the offload link's messages (see peer_proto.h): each side's
 * "parameters" composed here, the message framed by the API's one v2
 * builder (api_v2_build_header), the tensors' bytes handed out from where
 * they lie as an iovec list. */
#include "peer_proto.h"
#include "link-impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

void peer_msg_fini(struct peer_msg *m)
{
	if (!m)
		return;
	free(m->header);
	free(m->iov);
	free(m->prefixes);
	memset(m, 0, sizeof(*m));
}

int peer_msg_flatten(const struct peer_msg *m, uint8_t **out, size_t *len)
{
	uint8_t *b = malloc(m->total_len ? m->total_len : 1);
	size_t off = 0;

	if (!b)
		return -ENOMEM;
	for (int i = 0; i < m->n_iov; i++) {
		if (m->iov[i].iov_len)
			memcpy(b + off, m->iov[i].iov_base, m->iov[i].iov_len);
		off += m->iov[i].iov_len;
	}
	*out = b;
	*len = off;
	return 0;
}

/* A "parameters" object as the text api_v2_build_header takes; NULL (and
 * *text NULL) when it is empty. -ENOMEM. */
static int params_text(json_t *params, char **text)
{
	*text = NULL;
	if (!json_object_size(params))
		return 0;
	return (*text = json_dumps(params, JSON_COMPACT)) ? 0 : -ENOMEM;
}

/* One tensor's parameters: how its bytes are encoded, its band ends. */
static int tensor_params(const struct peer_tensor *t, char **text, char *err, size_t errlen)
{
	json_t *params = json_object(), *rows = NULL;
	int r = -ENOMEM;

	if (!params)
		goto out;
	if (!t->is_bytes && (t->enc.value != LINK_VALUE_F32 || t->enc.comp != LINK_COMP_NONE)) {
		char enc[LINK_ENCODING_STRLEN];

		if (link_encoding_format(&t->enc, enc, sizeof(enc)) < 0) {
			r = err_set(-EINVAL, err, errlen, "tensor '%s' has an invalid encoding", t->name);
			goto out;
		}
		if (json_object_set_new(params, "splitd_encoding", json_string(enc)))
			goto out;
		if (t->enc.value == LINK_VALUE_I8 &&
		    json_object_set_new(params, "splitd_scale", json_real((double)t->scale)))
			goto out;
	}
	if (t->band_ends && t->n_band_ends > 0) {
		if (!(rows = json_array()) || json_object_set(params, "splitd_band_rows", rows))
			goto out;
		for (int b = 0; b < t->n_band_ends; b++)
			if (json_array_append_new(rows, json_integer(t->band_ends[b])))
				goto out;
	}
	r = params_text(params, text);
out:
	if (r == -ENOMEM)
		err_set(r, err, errlen, "out of memory building a message");
	json_decref(rows);
	json_decref(params);
	return r;
}

/* The v2 tensors of ts (their parameters' texts in *texts, n of them:
 * free each and the array). */
static int wire_tensors(const struct peer_tensor *ts, int n, struct api_v2_tensor **out,
			char ***texts, char *err, size_t errlen)
{
	struct api_v2_tensor *v = calloc((size_t)n + 1, sizeof(*v));
	char **pt = calloc((size_t)n + 1, sizeof(*pt));
	int r = 0;

	*out = v;
	*texts = pt;
	if (!v || !pt)
		return err_set(-ENOMEM, err, errlen, "out of memory building a message");
	for (int i = 0; i < n && !r; i++) {
		const struct peer_tensor *t = &ts[i];
		const char *dt = t->is_bytes ? "BYTES" : tensor_dtype_name(t->dtype);

		if (!t->name || !*t->name || strlen(t->name) >= PEER_NAME_MAX || !dt || t->ndim < 0 ||
		    t->ndim > TENSOR_MAX_DIMS || (t->len && !t->data) || (t->is_bytes && t->len > UINT32_MAX))
			return err_set(-EINVAL, err, errlen,
					"tensor '%s' cannot be sent: bad name, dtype, rank or data",
					t->name ? t->name : "(null)");
		v[i] = (struct api_v2_tensor){ .name = t->name, .datatype = dt, .dtype = t->dtype,
					       .ndim = t->ndim, .binary = 1,
					       .data_len = t->is_bytes ? t->len + 4 : t->len };
		memcpy(v[i].shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
		r = tensor_params(t, &pt[i], err, errlen);
		v[i].params_json = pt[i];
	}
	return r;
}

static void free_texts(char **texts, int n)
{
	for (int i = 0; texts && i < n; i++)
		free(texts[i]);
	free(texts);
}

/* m's header by the API's builder, then the tensors' bytes as iovecs (a
 * BYTES element after its 4-byte little-endian length). */
static int lay_out(enum api_v2_kind kind, const struct api_v2_message *m, const struct peer_tensor *ts,
		 int n, struct peer_msg *out, char *err, size_t errlen)
{
	struct peer_msg msg = { 0 };
	int r, nb = 0;

	if ((r = api_v2_build_header(kind, m, &msg.header, &msg.header_len)) < 0)
		return err_set(r, err, errlen, "cannot build the message's v2 header");
	if (!(msg.iov = calloc((size_t)(2 * n + 1), sizeof(*msg.iov))) ||
	    !(msg.prefixes = calloc((size_t)n + 1, sizeof(*msg.prefixes)))) {
		peer_msg_fini(&msg);
		return err_set(-ENOMEM, err, errlen, "out of memory building a message");
	}
	msg.iov[msg.n_iov++] = (struct iovec){ msg.header, msg.header_len };
	msg.total_len = msg.header_len;
	for (int i = 0; i < n; i++) {
		if (ts[i].is_bytes) {
			uint32_t l = (uint32_t)ts[i].len;
			uint8_t *p = (uint8_t *)&msg.prefixes[nb++];

			p[0] = (uint8_t)l;
			p[1] = (uint8_t)(l >> 8);
			p[2] = (uint8_t)(l >> 16);
			p[3] = (uint8_t)(l >> 24);
			msg.iov[msg.n_iov++] = (struct iovec){ p, 4 };
			msg.total_len += 4;
		}
		if (ts[i].len)
			msg.iov[msg.n_iov++] = (struct iovec){ (void *)ts[i].data, ts[i].len };
		msg.total_len += ts[i].len;
	}
	*out = msg;
	return 0;
}

/* The message m (its own fields set) carrying ts as its tensors. */
static int build(enum api_v2_kind kind, struct api_v2_message *m, const struct peer_tensor *ts, int n,
		 struct peer_msg *out, char *err, size_t errlen)
{
	char **texts = NULL;
	int r;

	if ((r = wire_tensors(ts, n, &m->tensors, &texts, err, errlen)) == 0) {
		m->n_tensors = n;
		r = lay_out(kind, m, ts, n, out, err, errlen);
	}
	free(m->tensors);
	free_texts(texts, n);
	return r;
}

/* The request's own parameters: the cut, the model, bands, encodings. */
static int request_params(const struct peer_request_spec *spec, char **text, char *err, size_t errlen)
{
	json_t *p = json_object();
	char hex[65], enc[LINK_ENCODING_STRLEN];
	int r = -ENOMEM;

	peer_sha256_hex(spec->model_sha256, hex);
	if (!p || json_object_set_new(p, "splitd_cut", json_integer(spec->cut)) ||
	    json_object_set_new(p, "splitd_model_sha256", json_string(hex)) ||
	    json_object_set_new(p, "binary_data_output", json_true()))
		goto out;
	if (spec->bands > 0 && json_object_set_new(p, "splitd_bands", json_integer(spec->bands)))
		goto out;
	if (spec->bands > 1 && spec->no_wavefront &&
	    json_object_set_new(p, "splitd_wavefront", json_false()))
		goto out;
	if (spec->post && spec->post->kind[0] &&
	    (json_object_set_new(p, "splitd_postprocess", json_string(spec->post->kind)) ||
	     json_object_set_new(p, "splitd_score_threshold", json_real(spec->post->score_threshold)) ||
	     json_object_set_new(p, "splitd_iou_threshold", json_real(spec->post->iou_threshold)) ||
	     json_object_set_new(p, "splitd_max_detections", json_integer(spec->post->max_detections)) ||
	     json_object_set_new(p, "splitd_keypoints", json_integer(spec->post->keypoints))))
		goto out;
	if (spec->output_enc) {
		if (link_encoding_format(spec->output_enc, enc, sizeof(enc)) < 0) {
			r = err_set(-EINVAL, err, errlen, "invalid output encoding");
			goto out;
		}
		if (json_object_set_new(p, "splitd_output_encoding", json_string(enc)))
			goto out;
	}
	r = params_text(p, text);
out:
	if (r == -ENOMEM)
		err_set(r, err, errlen, "out of memory building a peer request");
	json_decref(p);
	return r;
}

int peer_request_build(const struct peer_request_spec *spec, struct peer_msg *out,
		       char *err, size_t errlen)
{
	struct api_v2_output_req outs[PEER_MAX_TENSORS];
	struct api_v2_message m = { 0 };
	char *params = NULL;
	int r;

	if (!spec || !out || !spec->model_sha256 || spec->cut < 0 || spec->n_inputs < 0 ||
	    spec->n_inputs > PEER_MAX_TENSORS || spec->n_outputs < 0 ||
	    spec->n_outputs > PEER_MAX_TENSORS || (spec->n_inputs && !spec->inputs) ||
	    (spec->id && strlen(spec->id) >= PEER_ID_MAX))
		return err_set(-EINVAL, err, errlen, "invalid peer request");
	for (int i = 0; i < spec->n_outputs; i++) {
		if (!spec->outputs[i] || strlen(spec->outputs[i]) >= PEER_NAME_MAX)
			return err_set(-EINVAL, err, errlen, "invalid output name");
		outs[i] = (struct api_v2_output_req){ .name = spec->outputs[i], .binary = 1 };
	}
	if ((r = request_params(spec, &params, err, errlen)) < 0)
		return r;
	m.id = spec->id;
	m.params_json = params;
	m.outputs = outs;
	m.n_outputs = spec->n_outputs;
	r = build(API_V2_REQUEST, &m, spec->inputs, spec->n_inputs, out, err, errlen);
	free(params);
	return r;
}

/* The peer's figures as response parameters (-1 / "" / no bands: left
 * out), and the size of the image it decoded. */
static int timing_params(const struct peer_response_spec *spec, char **text, char *err, size_t errlen)
{
	const struct peer_timing *t = spec->timing;
	static const char *const keys[] = { "splitd_peer_queue_ns", "splitd_peer_decode_ns",
		"splitd_peer_compute_ns", "splitd_peer_total_ns", "splitd_peer_energy_uj", "splitd_peer_post_ns" };
	const int64_t vals[] = { t->queue_ns, t->decode_ns, t->compute_ns, t->total_ns, t->energy_uj, t->post_ns };
	json_t *p = json_object(), *a = NULL;
	int r = -ENOMEM;

	if (!p)
		goto out;
	for (int i = 0; i < 6; i++)
		if (vals[i] >= 0 && json_object_set_new(p, keys[i], json_integer(vals[i])))
			goto out;
	if (t->backend[0] && json_object_set_new(p, "splitd_peer_backend", json_string(t->backend)))
		goto out;
	if (t->n_bands > 0) {
		if (!(a = json_array()) || json_object_set(p, "splitd_peer_bands_ns", a))
			goto out;
		for (int b = 0; b < t->n_bands && b < PEER_MAX_BANDS; b++)
			if (json_array_append_new(a, json_integer(t->band_arrived_ns[b])) ||
			    json_array_append_new(a, json_integer(t->band_start_ns[b])) ||
			    json_array_append_new(a, json_integer(t->band_end_ns[b])))
				goto out;
	}
	if (spec->image_width > 0 && spec->image_height > 0) {
		json_t *sz = json_pack("[ii]", spec->image_width, spec->image_height);
		if (!sz || json_object_set_new(p, "splitd_image_size", sz))
			goto out;
	}
	r = params_text(p, text);
out:
	if (r < 0)
		err_set(r, err, errlen, "out of memory building a peer response");
	json_decref(a);
	json_decref(p);
	return r;
}

int peer_response_build(const struct peer_response_spec *spec, struct peer_msg *out,
			char *err, size_t errlen)
{
	struct api_v2_message m = { 0 };
	char *params = NULL;
	int r;

	if (!spec || !out || spec->n_outputs < 0 || spec->n_outputs > PEER_MAX_TENSORS ||
	    (spec->n_outputs && !spec->outputs))
		return err_set(-EINVAL, err, errlen, "invalid peer response");
	if (spec->timing && (r = timing_params(spec, &params, err, errlen)) < 0)
		return r;
	m.id = spec->id;
	m.model_name = spec->model;
	m.params_json = params;
	r = build(API_V2_RESPONSE, &m, spec->outputs, spec->n_outputs, out, err, errlen);
	free(params);
	return r;
}
