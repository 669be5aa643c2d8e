/* The robot's reading of a peer's answer (see peer_proto.h): the API's one
 * v2 parse, then each output read as a tensor of the link and the peer's
 * figures from the response's parameters. */
#include "peer_proto.h"
#include "link-impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"

/* The message of a v2 error answer, {"error": "..."} or
 * {"error": {"code", "message"}}: -EPROTO with it in err; 0 when body is
 * not one (it is no v2 message either: the caller's error stands). */
static int error_answer(const void *body, size_t len, char *err, size_t errlen)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const json_t *e = json_object_get(root, "error");
	int r = 0;

	if (json_is_object(e))
		e = json_object_get(e, "message");
	if (json_is_string(e))
		r = err_set(-EPROTO, err, errlen, "peer answered: %.200s", json_string_value(e));
	json_decref(root);
	return r;
}

static int64_t opt_int(const struct peer_params *pp, const char *key)
{
	int64_t v;

	return peer_param_int(pp, key, &v) == 0 && v >= 0 ? v : -1;
}

/* The peer's figures; what is absent or malformed is "not measured" (they
 * are only reported, nothing is computed from a peer's word for it). */
static void read_timing(const struct peer_params *pp, struct peer_timing *t)
{
	int64_t bands[3 * PEER_MAX_BANDS];
	const char *backend;
	int n = 0, ok;

	t->queue_ns = opt_int(pp, "splitd_peer_queue_ns");
	t->decode_ns = opt_int(pp, "splitd_peer_decode_ns");
	t->compute_ns = opt_int(pp, "splitd_peer_compute_ns");
	t->total_ns = opt_int(pp, "splitd_peer_total_ns");
	t->energy_uj = opt_int(pp, "splitd_peer_energy_uj");
	t->post_ns = opt_int(pp, "splitd_peer_post_ns");
	if (peer_param_string(pp, "splitd_peer_backend", &backend) == 0)
		snprintf(t->backend, sizeof(t->backend), "%s", backend);
	/* [arrived, start, end] per band, ns after the peer took the request */
	if (peer_param_int_array(pp, "splitd_peer_bands_ns", bands, 3 * PEER_MAX_BANDS, &n) < 0 ||
	    n % 3)
		return;
	ok = 1;
	for (int i = 0; i < n && ok; i++)
		ok = bands[i] >= 0;
	for (int k = 0; ok && k < n / 3; k++) {
		t->band_arrived_ns[k] = bands[3 * k];
		t->band_start_ns[k] = bands[3 * k + 1];
		t->band_end_ns[k] = bands[3 * k + 2];
	}
	t->n_bands = ok ? n / 3 : 0;
}

/* Each output of msg, read as the link's tensors are. */
static int read_outputs(const struct api_v2_message *msg, struct peer_response *out, char *err,
			size_t errlen)
{
	int r;

	if (msg->n_tensors > PEER_MAX_TENSORS)
		return err_set(-EBADMSG, err, errlen, "response \"outputs\" is not an array of at most %d tensors",
				PEER_MAX_TENSORS);
	for (int i = 0; i < msg->n_tensors; i++) {
		const struct api_v2_tensor *t = &msg->tensors[i];
		struct peer_params pp = peer_params_api(t->params);

		if (!t->binary)
			return err_set(-EBADMSG, err, errlen,
					"tensor '%.64s' carries no binary_data_size (JSON tensor data is not accepted on the peer link)",
					t->name);
		if ((r = peer_input_read(t->name, t->datatype, t->ndim, t->shape, &pp,
					 t->data_len ? t->data : NULL, t->data_len, &out->outputs[i], err,
					 errlen)) < 0)
			return r;
		out->n_outputs++;
	}
	return 0;
}

int peer_response_parse(const void *body, size_t len, size_t header_len,
			struct peer_response *out, char *err, size_t errlen)
{
	struct api_v2_message *msg = NULL;
	struct peer_params pp;
	size_t jlen = header_len ? header_len : len;
	int r;

	if (!out || (!body && len))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	peer_timing_init(&out->timing);
	if (jlen > len || jlen > PEER_MAX_HEADER_BYTES || !jlen)
		return err_set(-EBADMSG, err, errlen,
				"response header length %zu does not fit a body of %zu bytes", jlen, len);
	if ((r = api_v2_parse(API_V2_RESPONSE, body, len, header_len, &msg, err, errlen)) < 0) {
		if (r == -ENOMEM)
			return r;
		r = error_answer(body, jlen, err, errlen);
		return r < 0 ? r : -EBADMSG;
	}
	snprintf(out->id, sizeof(out->id), "%s", msg->id ? msg->id : "");
	snprintf(out->model, sizeof(out->model), "%s", msg->model_name ? msg->model_name : "");
	pp = peer_params_api(msg->params);
	read_timing(&pp, &out->timing);
	int64_t sz[2];
	int nsz = 0;
	if (peer_param_int_array(&pp, "splitd_image_size", sz, 2, &nsz) == 0 && nsz == 2 && sz[0] > 0 &&
	    sz[1] > 0 && sz[0] <= 1 << 20 && sz[1] <= 1 << 20) {
		out->image_width = (int)sz[0];
		out->image_height = (int)sz[1];
	}
	if ((r = read_outputs(msg, out, err, errlen)) < 0) {
		api_v2_message_free(msg);
		out->n_outputs = 0;
		return r;
	}
	out->msg = msg;
	return 0;
}

void peer_response_fini(struct peer_response *r)
{
	if (!r)
		return;
	api_v2_message_free(r->msg);
	r->msg = NULL;
	r->n_outputs = 0;
}
