/* KServe v2 binary messages of the offload link (see peer_proto.h). */
#include "peer_proto.h"
#include "link-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM ((int64_t)1 << 31)

void peer_sha256_hex(const uint8_t sha[32], char hex[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		hex[2 * i] = digits[sha[i] >> 4];
		hex[2 * i + 1] = digits[sha[i] & 15];
	}
	hex[64] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int peer_sha256_parse(const char *hex, uint8_t sha[32])
{
	if (!hex || strlen(hex) != 64)
		return -EINVAL;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		sha[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

void peer_timing_init(struct peer_timing *t)
{
	t->queue_ns = t->decode_ns = t->compute_ns = t->total_ns = t->energy_uj = -1;
	t->backend[0] = '\0';
	t->n_bands = 0;
}

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

/* ---- building ------------------------------------------------------------ */

static const char *wire_datatype(const struct peer_tensor *t)
{
	return t->is_bytes ? "BYTES" : tensor_dtype_name(t->dtype);
}

static size_t wire_len(const struct peer_tensor *t)
{
	return t->is_bytes ? t->len + 4 : t->len;
}

/* {"name", "shape", "datatype", "parameters": {...}} of one tensor */
static json_t *tensor_json(const struct peer_tensor *t, char *err, size_t errlen)
{
	json_t *o = NULL, *shape = NULL, *params = NULL;
	const char *dt = wire_datatype(t);

	if (!t->name || !*t->name || strlen(t->name) >= PEER_NAME_MAX || !dt ||
	    t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS || (t->len && !t->data) ||
	    (t->is_bytes && t->len > UINT32_MAX)) {
		link_err(-EINVAL, err, errlen, "tensor '%s' cannot be sent: bad name, dtype, rank or data",
		     t->name ? t->name : "(null)");
		return NULL;
	}
	if (!(o = json_object()) || !(shape = json_array()) || !(params = json_object()))
		goto nomem;
	for (int i = 0; i < t->ndim; i++)
		if (json_array_append_new(shape, json_integer(t->shape[i])))
			goto nomem;
	if (json_object_set_new(params, "binary_data_size", json_integer((json_int_t)wire_len(t))))
		goto nomem;
	if (!t->is_bytes && (t->enc.value != LINK_VALUE_F32 || t->enc.comp != LINK_COMP_NONE)) {
		char enc[LINK_ENCODING_STRLEN];

		if (link_encoding_format(&t->enc, enc, sizeof(enc)) < 0) {
			link_err(-EINVAL, err, errlen, "tensor '%s' has an invalid encoding", t->name);
			goto out;
		}
		if (json_object_set_new(params, "splitd_encoding", json_string(enc)))
			goto nomem;
		if (t->enc.value == LINK_VALUE_I8 &&
		    json_object_set_new(params, "splitd_scale", json_real((double)t->scale)))
			goto nomem;
	}
	if (t->band_ends && t->n_band_ends > 0) {
		json_t *rows = json_array();

		if (!rows || json_object_set_new(params, "splitd_band_rows", rows))
			goto nomem;
		for (int b = 0; b < t->n_band_ends; b++)
			if (json_array_append_new(rows, json_integer(t->band_ends[b])))
				goto nomem;
	}
	if (json_object_set_new(o, "name", json_string(t->name)) ||
	    json_object_set_new(o, "datatype", json_string(dt)) ||
	    json_object_set(o, "shape", shape) || json_object_set(o, "parameters", params))
		goto nomem;
	json_decref(shape);
	json_decref(params);
	return o;
nomem:
	link_err(-ENOMEM, err, errlen, "out of memory building a message");
out:
	json_decref(o);
	json_decref(shape);
	json_decref(params);
	return NULL;
}

/* Serialise root and lay out header + tensors as iovecs. */
static int finish_msg(json_t *root, const struct peer_tensor *ts, int n, struct peer_msg *out,
		      char *err, size_t errlen)
{
	struct peer_msg m = { 0 };
	int r = -ENOMEM, nb = 0;

	if (!(m.header = json_dumps(root, JSON_COMPACT)))
		goto out;
	m.header_len = strlen(m.header);
	if (!(m.iov = calloc((size_t)(2 * n + 1), sizeof(*m.iov))) ||
	    !(m.prefixes = calloc((size_t)n + 1, sizeof(*m.prefixes))))
		goto out;
	m.iov[m.n_iov++] = (struct iovec){ m.header, m.header_len };
	m.total_len = m.header_len;
	for (int i = 0; i < n; i++) {
		if (ts[i].is_bytes) {
			uint32_t l = (uint32_t)ts[i].len;
			uint8_t *p = (uint8_t *)&m.prefixes[nb++];

			p[0] = (uint8_t)l;
			p[1] = (uint8_t)(l >> 8);
			p[2] = (uint8_t)(l >> 16);
			p[3] = (uint8_t)(l >> 24);
			m.iov[m.n_iov++] = (struct iovec){ p, 4 };
			m.total_len += 4;
		}
		if (ts[i].len)
			m.iov[m.n_iov++] = (struct iovec){ (void *)ts[i].data, ts[i].len };
		m.total_len += ts[i].len;
	}
	*out = m;
	return 0;
out:
	peer_msg_fini(&m);
	return link_err(r, err, errlen, "out of memory building a message");
}

int peer_request_build(const struct peer_request_spec *spec, struct peer_msg *out,
		       char *err, size_t errlen)
{
	json_t *root = NULL, *params = NULL, *inputs = NULL, *outputs = NULL;
	char hex[65];
	int r = -ENOMEM;

	if (!spec || !out || !spec->model_sha256 || spec->cut < 0 || spec->n_inputs < 0 ||
	    spec->n_inputs > PEER_MAX_TENSORS || spec->n_outputs < 0 ||
	    spec->n_outputs > PEER_MAX_TENSORS || (spec->n_inputs && !spec->inputs) ||
	    (spec->id && strlen(spec->id) >= PEER_ID_MAX))
		return link_err(-EINVAL, err, errlen, "invalid peer request");
	peer_sha256_hex(spec->model_sha256, hex);
	if (!(root = json_object()) || !(params = json_object()) || !(inputs = json_array()) ||
	    !(outputs = json_array()))
		goto nomem;
	if ((spec->id && json_object_set_new(root, "id", json_string(spec->id))) ||
	    json_object_set_new(params, "splitd_cut", json_integer(spec->cut)) ||
	    json_object_set_new(params, "splitd_model_sha256", json_string(hex)) ||
	    json_object_set_new(params, "binary_data_output", json_true()))
		goto nomem;
	if (spec->bands > 0 && json_object_set_new(params, "splitd_bands", json_integer(spec->bands)))
		goto nomem;
	if (spec->bands > 1 && spec->no_wavefront &&
	    json_object_set_new(params, "splitd_wavefront", json_false()))
		goto nomem;
	if (spec->output_enc) {
		char enc[LINK_ENCODING_STRLEN];

		if (link_encoding_format(spec->output_enc, enc, sizeof(enc)) < 0) {
			r = link_err(-EINVAL, err, errlen, "invalid output encoding");
			goto out;
		}
		if (json_object_set_new(params, "splitd_output_encoding", json_string(enc)))
			goto nomem;
	}
	for (int i = 0; i < spec->n_inputs; i++) {
		json_t *t = tensor_json(&spec->inputs[i], err, errlen);

		if (!t) {
			r = -EINVAL;
			goto out;
		}
		if (json_array_append_new(inputs, t))
			goto nomem;
	}
	for (int i = 0; i < spec->n_outputs; i++) {
		json_t *o;

		if (!spec->outputs[i] || strlen(spec->outputs[i]) >= PEER_NAME_MAX) {
			r = link_err(-EINVAL, err, errlen, "invalid output name");
			goto out;
		}
		o = json_pack("{s:s, s:{s:b}}", "name", spec->outputs[i], "parameters",
			      "binary_data", 1);
		if (!o || json_array_append_new(outputs, o))
			goto nomem;
	}
	if (json_object_set(root, "parameters", params) || json_object_set(root, "inputs", inputs) ||
	    (spec->n_outputs && json_object_set(root, "outputs", outputs)))
		goto nomem;
	r = finish_msg(root, spec->inputs, spec->n_inputs, out, err, errlen);
	goto out;
nomem:
	r = link_err(-ENOMEM, err, errlen, "out of memory building a peer request");
out:
	json_decref(root);
	json_decref(params);
	json_decref(inputs);
	json_decref(outputs);
	return r;
}

int peer_response_build(const struct peer_response_spec *spec, struct peer_msg *out,
			char *err, size_t errlen)
{
	json_t *root = NULL, *params = NULL, *outputs = NULL;
	const struct peer_timing *t;
	int r = -ENOMEM;

	if (!spec || !out || spec->n_outputs < 0 || spec->n_outputs > PEER_MAX_TENSORS ||
	    (spec->n_outputs && !spec->outputs))
		return link_err(-EINVAL, err, errlen, "invalid peer response");
	if (!(root = json_object()) || !(params = json_object()) || !(outputs = json_array()))
		goto nomem;
	if ((spec->id && json_object_set_new(root, "id", json_string(spec->id))) ||
	    (spec->model && json_object_set_new(root, "model_name", json_string(spec->model))))
		goto nomem;
	if ((t = spec->timing)) {
		static const char *const keys[] = { "splitd_peer_queue_ns", "splitd_peer_decode_ns",
			"splitd_peer_compute_ns", "splitd_peer_total_ns", "splitd_peer_energy_uj" };
		const int64_t vals[] = { t->queue_ns, t->decode_ns, t->compute_ns, t->total_ns,
					 t->energy_uj };

		for (int i = 0; i < 5; i++)
			if (vals[i] >= 0 && json_object_set_new(params, keys[i], json_integer(vals[i])))
				goto nomem;
		if (t->backend[0] &&
		    json_object_set_new(params, "splitd_peer_backend", json_string(t->backend)))
			goto nomem;
		if (t->n_bands > 0) {
			json_t *a = json_array();
			if (!a || json_object_set_new(params, "splitd_peer_bands_ns", a))
				goto nomem;
			for (int b = 0; b < t->n_bands && b < PEER_MAX_BANDS; b++)
				if (json_array_append_new(a, json_integer(t->band_arrived_ns[b])) ||
				    json_array_append_new(a, json_integer(t->band_start_ns[b])) ||
				    json_array_append_new(a, json_integer(t->band_end_ns[b])))
					goto nomem;
		}
	}
	for (int i = 0; i < spec->n_outputs; i++) {
		json_t *o = tensor_json(&spec->outputs[i], err, errlen);

		if (!o) {
			r = -EINVAL;
			goto out;
		}
		if (json_array_append_new(outputs, o))
			goto nomem;
	}
	if (json_object_set(root, "parameters", params) || json_object_set(root, "outputs", outputs))
		goto nomem;
	r = finish_msg(root, spec->outputs, spec->n_outputs, out, err, errlen);
	goto out;
nomem:
	r = link_err(-ENOMEM, err, errlen, "out of memory building a peer response");
out:
	json_decref(root);
	json_decref(params);
	json_decref(outputs);
	return r;
}

/* ---- reading ------------------------------------------------------------- */

static enum tensor_dtype dtype_from_name(const char *s)
{
	static const enum tensor_dtype all[] = { TENSOR_F32, TENSOR_U8, TENSOR_I8, TENSOR_I32,
		TENSOR_I64, TENSOR_BOOL, TENSOR_F16, TENSOR_F64 };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(s, tensor_dtype_name(all[i])))
			return all[i];
	return TENSOR_UNDEFINED;
}

/* Reads name/datatype/shape/parameters of one tensor object. */
static int read_tensor_json(const json_t *o, const char *what, int idx, const char **name,
			    const char **datatype, int *ndim, int64_t *shape,
			    const json_t **params, char *err, size_t errlen)
{
	const json_t *n = json_object_get(o, "name"), *d = json_object_get(o, "datatype");
	const json_t *s = json_object_get(o, "shape");

	if (!json_is_object(o))
		return link_err(-EBADMSG, err, errlen, "%s %d is not a JSON object", what, idx);
	if (!json_is_string(n))
		return link_err(-EBADMSG, err, errlen, "%s %d has no string \"name\"", what, idx);
	*name = json_string_value(n);
	if (!json_is_string(d))
		return link_err(-EBADMSG, err, errlen, "%s '%.64s' has no string \"datatype\"", what, *name);
	*datatype = json_string_value(d);
	if (!json_is_array(s) || json_array_size(s) > TENSOR_MAX_DIMS)
		return link_err(-EBADMSG, err, errlen, "%s '%.64s' has no \"shape\" array of at most %d dims",
			    what, *name, TENSOR_MAX_DIMS);
	*ndim = (int)json_array_size(s);
	for (int i = 0; i < *ndim; i++) {
		const json_t *v = json_array_get(s, (size_t)i);

		if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > MAX_DIM)
			return link_err(-EBADMSG, err, errlen, "%s '%.64s' dim %d is not an integer in [0, 2^31]",
				    what, *name, i);
		shape[i] = json_integer_value(v);
	}
	*params = json_object_get(o, "parameters");
	if (*params && !json_is_object(*params))
		return link_err(-EBADMSG, err, errlen, "%s '%.64s' \"parameters\" is not an object", what, *name);
	return 0;
}

/* binary_data_size of a tensor's parameters, or -1 when absent. */
static int binary_size(const json_t *params, const char *name, size_t *out, char *err, size_t errlen)
{
	const json_t *b = params ? json_object_get(params, "binary_data_size") : NULL;

	if (!b)
		return link_err(-EBADMSG, err, errlen,
			    "tensor '%.64s' carries no binary_data_size (JSON tensor data is not accepted on the peer link)",
			    name);
	if (!json_is_integer(b) || json_integer_value(b) < 0)
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s' binary_data_size is not a non-negative integer",
			    name);
	*out = (size_t)json_integer_value(b);
	return 0;
}

/* ---- parameters ---------------------------------------------------------- */

static int json_get_int(const void *obj, const char *key, int64_t *out)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return -ENOENT;
	if (!json_is_integer(v))
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

static int json_get_number(const void *obj, const char *key, double *out)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return -ENOENT;
	if (!json_is_number(v))
		return -EINVAL;
	*out = json_number_value(v);
	return 0;
}

static int json_get_string(const void *obj, const char *key, const char **out)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return -ENOENT;
	if (!json_is_string(v))
		return -EINVAL;
	*out = json_string_value(v);
	return 0;
}

static int json_get_bool(const void *obj, const char *key, int *out)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return -ENOENT;
	if (!json_is_boolean(v))
		return -EINVAL;
	*out = json_is_true(v);
	return 0;
}

static int json_get_int_array(const void *obj, const char *key, int64_t *out, int max, int *n)
{
	const json_t *v = json_object_get(obj, key);

	if (!v)
		return -ENOENT;
	if (!json_is_array(v) || json_array_size(v) > (size_t)max)
		return -EINVAL;
	for (size_t i = 0; i < json_array_size(v); i++) {
		if (!json_is_integer(json_array_get(v, i)))
			return -EINVAL;
		out[i] = json_integer_value(json_array_get(v, i));
	}
	*n = (int)json_array_size(v);
	return 0;
}

struct peer_params peer_params_json(const json_t *obj)
{
	return (struct peer_params){ .obj = obj, .get_int = json_get_int, .get_number = json_get_number,
				     .get_string = json_get_string, .get_bool = json_get_bool,
				     .get_int_array = json_get_int_array };
}

/* The look-ups, with no parameters (or no such getter) as absent keys. */
static int p_int(const struct peer_params *p, const char *key, int64_t *out)
{
	return p && p->obj && p->get_int ? p->get_int(p->obj, key, out) : -ENOENT;
}

static int p_number(const struct peer_params *p, const char *key, double *out)
{
	return p && p->obj && p->get_number ? p->get_number(p->obj, key, out) : -ENOENT;
}

static int p_string(const struct peer_params *p, const char *key, const char **out)
{
	return p && p->obj && p->get_string ? p->get_string(p->obj, key, out) : -ENOENT;
}

static int p_bool(const struct peer_params *p, const char *key, int *out)
{
	return p && p->obj && p->get_bool ? p->get_bool(p->obj, key, out) : -ENOENT;
}

static int p_int_array(const struct peer_params *p, const char *key, int64_t *out, int max, int *n)
{
	return p && p->obj && p->get_int_array ? p->get_int_array(p->obj, key, out, max, n) : -ENOENT;
}

int peer_input_read(const char *name, const char *datatype, int ndim, const int64_t *shape,
		    const struct peer_params *params, const void *data, size_t len,
		    struct peer_tensor *out, char *err, size_t errlen)
{
	struct peer_tensor t = { 0 };
	const char *enc;
	double s;
	int rc;

	if (!name || !*name || strlen(name) >= PEER_NAME_MAX)
		return link_err(-EBADMSG, err, errlen, "tensor name is empty or longer than %d bytes",
			    PEER_NAME_MAX - 1);
	if (!datatype || ndim < 0 || ndim > TENSOR_MAX_DIMS || (ndim && !shape) || (len && !data))
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s' lacks a datatype, shape or data", name);
	t.name = name;
	t.ndim = ndim;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || shape[i] > MAX_DIM)
			return link_err(-EBADMSG, err, errlen, "tensor '%.64s' dim %d is out of range", name, i);
		t.shape[i] = shape[i];
	}
	t.scale = 1.0f;
	if (!strcmp(datatype, "BYTES")) {
		const uint8_t *p = data;
		uint32_t l;

		if (ndim != 1 || shape[0] != 1)
			return link_err(-EBADMSG, err, errlen, "BYTES tensor '%.64s' must have shape [1]", name);
		if (p_string(params, "splitd_encoding", &enc) != -ENOENT)
			return link_err(-EBADMSG, err, errlen, "BYTES tensor '%.64s' takes no splitd_encoding", name);
		if (len < 4)
			return link_err(-EBADMSG, err, errlen, "BYTES tensor '%.64s' is shorter than its length prefix",
				    name);
		l = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		if ((size_t)l != len - 4)
			return link_err(-EBADMSG, err, errlen,
				    "BYTES tensor '%.64s' declares an element of %u bytes in %zu bytes of data",
				    name, l, len - 4);
		t.is_bytes = 1;
		t.dtype = TENSOR_UNDEFINED;
		t.data = p + 4;
		t.len = l;
		*out = t;
		return 0;
	}
	if ((t.dtype = dtype_from_name(datatype)) == TENSOR_UNDEFINED)
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s' has unsupported datatype '%.16s'", name,
			    datatype);
	if ((rc = p_string(params, "splitd_encoding", &enc)) != -ENOENT) {
		if (rc < 0 || link_encoding_parse(enc, &t.enc) < 0)
			return link_err(-EBADMSG, err, errlen, "tensor '%.64s': splitd_encoding is not an encoding string",
				    name);
		if (t.enc.value != LINK_VALUE_F32 && t.dtype != TENSOR_F32)
			return link_err(-EBADMSG, err, errlen,
				    "tensor '%.64s' is %s; lossy encodings apply to FP32 only", name, datatype);
	}
	if ((rc = p_number(params, "splitd_scale", &s)) != -ENOENT && t.enc.value != LINK_VALUE_I8)
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s': splitd_scale belongs to i8 encodings only",
			    name);
	if (t.enc.value == LINK_VALUE_I8) {
		if (rc < 0)
			return link_err(-EBADMSG, err, errlen, "int8 tensor '%.64s' has no numeric splitd_scale", name);
		if (!(s >= 0.0 && s <= 3.4028234663852886e38))
			return link_err(-EBADMSG, err, errlen, "int8 tensor '%.64s' scale is not a finite float >= 0",
				    name);
		t.scale = (float)s;
	}
	t.data = data;
	t.len = len;
	*out = t;
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
		return link_err(-EBADMSG, err, errlen, "request has no parameters (splitd_cut is required)");
	if (p_int(params, "splitd_cut", &v) < 0 || v < 0 || v > (1 << 24))
		return link_err(-EBADMSG, err, errlen, "request parameter splitd_cut is not a node position");
	out->cut = (int)v;
	if ((rc = p_string(params, "splitd_model_sha256", &s)) != -ENOENT) {
		if (rc < 0 || peer_sha256_parse(s, out->model_sha256) < 0)
			return link_err(-EBADMSG, err, errlen, "splitd_model_sha256 is not 64 hex digits");
		out->has_sha = 1;
	}
	if ((rc = p_int(params, "splitd_bands", &v)) != -ENOENT) {
		if (rc < 0 || v < 1 || v > PEER_MAX_BANDS)
			return link_err(-EBADMSG, err, errlen, "splitd_bands is not an integer in [1, %d]",
				    PEER_MAX_BANDS);
		out->bands = (int)v;
	}
	if ((rc = p_bool(params, "splitd_wavefront", &b)) != -ENOENT) {
		if (rc < 0)
			return link_err(-EBADMSG, err, errlen, "splitd_wavefront is not a boolean");
		out->no_wavefront = !b;
	}
	if ((rc = p_bool(params, "binary_data_output", &b)) != -ENOENT) {
		if (rc < 0)
			return link_err(-EBADMSG, err, errlen, "binary_data_output is not a boolean");
		out->binary_output = b;
	}
	if ((rc = p_string(params, "splitd_output_encoding", &s)) != -ENOENT) {
		if (rc < 0 || link_encoding_parse(s, &out->output_enc) < 0)
			return link_err(-EBADMSG, err, errlen, "splitd_output_encoding is not an encoding string");
	}
	return 0;
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
		return link_err(-EBADMSG, err, errlen, "more than %d inputs", PEER_MAX_TENSORS);
	t = &r->inputs[i];
	/* a banded body may still be arriving: nothing here reads its bytes */
	if (r->bands > 1 && datatype && !strcmp(datatype, "BYTES"))
		return link_err(-EBADMSG, err, errlen, "BYTES tensor '%.64s' cannot travel banded", name ? name : "");
	if ((rc = peer_input_read(name, datatype, ndim, shape, params, data, len, t, err, errlen)) < 0)
		return rc;
	for (int j = 0; j < i; j++)
		if (!strcmp(r->inputs[j].name, name))
			return link_err(-EBADMSG, err, errlen, "input '%.64s' appears twice", name);
	rc = p_int_array(params, "splitd_band_rows", r->band_rows[i], PEER_MAX_BANDS, &nb);
	if (r->bands > 1) {
		if (rc == -ENOENT)
			return link_err(-EBADMSG, err, errlen, "input '%.64s' of a banded request has no splitd_band_rows",
				    name);
		if (rc < 0)
			return link_err(-EBADMSG, err, errlen,
				    "input '%.64s': splitd_band_rows is not a list of at most %d integers", name,
				    PEER_MAX_BANDS);
		t->band_ends = r->band_rows[i];
		t->n_band_ends = nb;
		if ((rc = peer_band_check(t, r->bands, err, errlen)) < 0)
			return rc;
	} else if (rc != -ENOENT) {
		return link_err(-EBADMSG, err, errlen, "input '%.64s' has splitd_band_rows in a request of one band",
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
		return link_err(-EBADMSG, err, errlen, "more than %d requested outputs", PEER_MAX_TENSORS);
	if (!name || strlen(name) >= PEER_NAME_MAX)
		return link_err(-EBADMSG, err, errlen, "requested output %d has no valid name", r->n_outputs);
	r->outputs[r->n_outputs++] = name;
	if (binary)
		r->binary_output = 1;
	return 0;
}

int peer_request_parse(json_t *header, const void *binary, size_t binary_len,
		       struct peer_request *out, char *err, size_t errlen)
{
	const json_t *inputs, *outputs, *id;
	const uint8_t *b = binary;
	struct peer_params pp;
	size_t off = 0;
	int r;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->cut = -1;
	if (!json_is_object(header))
		return link_err(-EBADMSG, err, errlen, "request header is not a JSON object");
	id = json_object_get(header, "parameters");
	if (id && !json_is_object(id))
		return link_err(-EBADMSG, err, errlen, "request \"parameters\" is not an object");
	pp = peer_params_json(id);
	if ((r = peer_request_read_params(&pp, out, err, errlen)) < 0)
		return r;
	if ((id = json_object_get(header, "id"))) {
		if (!json_is_string(id) || strlen(json_string_value(id)) >= PEER_ID_MAX)
			return link_err(-EBADMSG, err, errlen, "request id is not a string under %d bytes",
				    PEER_ID_MAX);
		strcpy(out->id, json_string_value(id));
	}
	inputs = json_object_get(header, "inputs");
	if (!json_is_array(inputs) || !json_array_size(inputs) ||
	    json_array_size(inputs) > PEER_MAX_TENSORS)
		return link_err(-EBADMSG, err, errlen, "request \"inputs\" is not an array of 1 to %d tensors",
			    PEER_MAX_TENSORS);
	for (size_t i = 0; i < json_array_size(inputs); i++) {
		const char *name, *dt;
		const json_t *params;
		int64_t shape[TENSOR_MAX_DIMS];
		int ndim;
		size_t sz;

		if ((r = read_tensor_json(json_array_get(inputs, i), "input", (int)i, &name, &dt, &ndim,
					  shape, &params, err, errlen)) < 0)
			return r;
		if ((r = binary_size(params, name, &sz, err, errlen)) < 0)
			return r;
		if (sz > binary_len - off)
			return link_err(-EBADMSG, err, errlen,
				    "input '%.64s' declares %zu bytes but only %zu remain in the body", name, sz,
				    binary_len - off);
		pp = peer_params_json(params);
		if ((r = peer_request_add_input(out, name, dt, ndim, shape, &pp, sz ? b + off : NULL, sz, err,
						errlen)) < 0)
			return r;
		off += sz;
	}
	if (off != binary_len)
		return link_err(-EBADMSG, err, errlen, "%zu bytes follow the last input's data", binary_len - off);
	if ((outputs = json_object_get(header, "outputs"))) {
		if (!json_is_array(outputs) || json_array_size(outputs) > PEER_MAX_TENSORS)
			return link_err(-EBADMSG, err, errlen, "request \"outputs\" is not an array of at most %d",
				    PEER_MAX_TENSORS);
		for (size_t i = 0; i < json_array_size(outputs); i++) {
			const json_t *o = json_array_get(outputs, i), *n = json_object_get(o, "name");
			const json_t *p = json_object_get(o, "parameters");

			if ((r = peer_request_add_output(out, json_is_string(n) ? json_string_value(n) : NULL,
							 json_is_object(p) &&
							 json_is_true(json_object_get(p, "binary_data")),
							 err, errlen)) < 0)
				return r;
		}
	}
	out->root = json_incref(header);
	return 0;
}

void peer_request_fini(struct peer_request *r)
{
	if (!r)
		return;
	json_decref(r->root);
	r->root = NULL;
}

/* t's type and shape are out's */
static int check_like(const struct peer_tensor *t, const struct tensor_view *out, char *err, size_t errlen)
{
	if (t->is_bytes)
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s' is BYTES, a tensor of %s was expected",
			    t->name, tensor_dtype_name(out->dtype) ? tensor_dtype_name(out->dtype) : "?");
	if (t->dtype != out->dtype)
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s' is %s, %s was expected", t->name,
			    tensor_dtype_name(t->dtype), tensor_dtype_name(out->dtype) ?
			    tensor_dtype_name(out->dtype) : "?");
	if (t->ndim != out->ndim || memcmp(t->shape, out->shape, sizeof(int64_t) * (size_t)t->ndim)) {
		char got[160], want[160];
		int a = 0, b = 0;

		for (int i = 0; i < t->ndim && a < 140; i++)
			a += snprintf(got + a, sizeof(got) - (size_t)a, "%s%lld", i ? "," : "",
				      (long long)t->shape[i]);
		for (int i = 0; i < out->ndim && b < 140; i++)
			b += snprintf(want + b, sizeof(want) - (size_t)b, "%s%lld", i ? "," : "",
				      (long long)out->shape[i]);
		got[a] = want[b] = '\0';
		return link_err(-EBADMSG, err, errlen, "tensor '%.64s' has shape [%s], [%s] was expected", t->name,
			    got, want);
	}
	return 0;
}

int peer_tensor_decode(const struct peer_tensor *t, struct tensor_view *out, char *err, size_t errlen)
{
	int rc;

	if ((rc = check_like(t, out, err, errlen)) < 0)
		return rc;
	{
		char e2[200];
		int r = link_decode(t->data, t->len, &t->enc, t->scale, out, e2, sizeof(e2));

		if (r < 0)
			return link_err(r, err, errlen, "tensor '%.64s': %s", t->name, e2);
	}
	return 0;
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
		return link_err(-EBADMSG, err, errlen, "request does not name the model (splitd_model_sha256)");
	if (memcmp(r->model_sha256, model_sha256, 32)) {
		peer_sha256_hex(model_sha256, want);
		peer_sha256_hex(r->model_sha256, got);
		return link_err(-EBADMSG, err, errlen,
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
		return link_err(-EINVAL, err, errlen, "invalid decode arguments");
	if ((rc = check_model(r, model_sha256, err, errlen)) < 0)
		return rc;
	if (image)
		*image = NULL;
	if (image_len)
		*image_len = 0;
	if (r->n_inputs == 1 && r->inputs[0].is_bytes) {
		if (r->cut != 0)
			return link_err(-EBADMSG, err, errlen, "a BYTES (image) input is only accepted at cut 0, not %d",
				    r->cut);
		if (!image || !image_len)
			return link_err(-EBADMSG, err, errlen, "this peer does not accept images");
		*image = r->inputs[0].data;
		*image_len = r->inputs[0].len;
		return 0;
	}
	if (n_cut && (!cut || !views))
		return link_err(-EINVAL, err, errlen, "invalid decode arguments");
	if ((rc = peer_request_match(r, NULL, cut, n_cut, which, err, errlen)) < 0)
		return rc;
	for (int j = 0; j < n_cut; j++)
		if (views[j].dtype != cut[j].dtype || views[j].ndim != cut[j].ndim || !views[j].data)
			return link_err(-EINVAL, err, errlen, "view %d does not match the cut", j);
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
		return link_err(-EINVAL, err, errlen, "invalid match arguments");
	if ((rc = check_model(r, model_sha256, err, errlen)) < 0)
		return rc;
	if (r->n_inputs != n_cut)
		return link_err(-EBADMSG, err, errlen, "cut %d carries %d tensors, the request has %d", r->cut, n_cut,
			    r->n_inputs);
	for (int j = 0; j < n_cut; j++) {
		int found = -1;

		for (int i = 0; i < r->n_inputs; i++)
			if (!used[i] && !strcmp(r->inputs[i].name, cut[j].name))
				found = i;
		if (found < 0)
			return link_err(-EBADMSG, err, errlen, "cut %d tensor '%.64s' is missing from the request",
				    r->cut, cut[j].name);
		used[found] = 1;
		which[j] = found;
	}
	return 0;
}

/* ---- responses ----------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const json_t *v)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "";

	snprintf(dst, cap, "%s", s);
}

/* The message of a v2 error answer: {"error": "..."} or
 * {"error": {"code", "message"}}. */
static int error_answer(json_t *root, char *err, size_t errlen)
{
	const json_t *e = json_object_get(root, "error");

	if (json_is_string(e))
		return link_err(-EPROTO, err, errlen, "peer answered: %.200s", json_string_value(e));
	if (json_is_object(e) && json_is_string(json_object_get(e, "message")))
		return link_err(-EPROTO, err, errlen, "peer answered: %.200s",
			    json_string_value(json_object_get(e, "message")));
	return 0;
}

static int64_t opt_int(const json_t *params, const char *key)
{
	const json_t *v = params ? json_object_get(params, key) : NULL;

	return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
}

int peer_response_parse(const void *body, size_t len, size_t header_len,
			struct peer_response *out, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = NULL;
	const json_t *outputs, *params;
	const uint8_t *b = body;
	size_t jlen = header_len ? header_len : len, off;
	int r;

	if (!out || (!body && len))
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	peer_timing_init(&out->timing);
	if (jlen > len || jlen > PEER_MAX_HEADER_BYTES || !jlen)
		return link_err(-EBADMSG, err, errlen, "response header length %zu does not fit a body of %zu bytes",
			    jlen, len);
	if (!(root = json_loadb(body, jlen, JSON_REJECT_DUPLICATES, &je)))
		return link_err(-EBADMSG, err, errlen, "response header is not JSON: %s (offset %d)", je.text,
			    je.position);
	if (!json_is_object(root)) {
		r = link_err(-EBADMSG, err, errlen, "response header is not a JSON object");
		goto out;
	}
	if ((r = error_answer(root, err, errlen)) < 0)
		goto out;
	copy_str(out->id, sizeof(out->id), json_object_get(root, "id"));
	copy_str(out->model, sizeof(out->model), json_object_get(root, "model_name"));
	params = json_object_get(root, "parameters");
	if (params && !json_is_object(params)) {
		r = link_err(-EBADMSG, err, errlen, "response \"parameters\" is not an object");
		goto out;
	}
	out->timing.queue_ns = opt_int(params, "splitd_peer_queue_ns");
	out->timing.decode_ns = opt_int(params, "splitd_peer_decode_ns");
	out->timing.compute_ns = opt_int(params, "splitd_peer_compute_ns");
	out->timing.total_ns = opt_int(params, "splitd_peer_total_ns");
	out->timing.energy_uj = opt_int(params, "splitd_peer_energy_uj");
	copy_str(out->timing.backend, sizeof(out->timing.backend),
		 params ? json_object_get(params, "splitd_peer_backend") : NULL);
	{
		/* [arrived, start, end] per band, ns after the peer took the
		 * request; anything else is ignored (these are only reported) */
		const json_t *a = params ? json_object_get(params, "splitd_peer_bands_ns") : NULL;
		size_t n = json_is_array(a) ? json_array_size(a) : 0;
		if (n % 3 == 0 && n / 3 <= PEER_MAX_BANDS) {
			int ok = 1;
			for (size_t i = 0; i < n && ok; i++)
				ok = json_is_integer(json_array_get(a, i)) &&
				     json_integer_value(json_array_get(a, i)) >= 0;
			for (size_t k = 0; ok && k < n / 3; k++) {
				out->timing.band_arrived_ns[k] = json_integer_value(json_array_get(a, 3 * k));
				out->timing.band_start_ns[k] = json_integer_value(json_array_get(a, 3 * k + 1));
				out->timing.band_end_ns[k] = json_integer_value(json_array_get(a, 3 * k + 2));
			}
			out->timing.n_bands = ok ? (int)(n / 3) : 0;
		}
	}
	outputs = json_object_get(root, "outputs");
	if (!json_is_array(outputs) || json_array_size(outputs) > PEER_MAX_TENSORS) {
		r = link_err(-EBADMSG, err, errlen, "response \"outputs\" is not an array of at most %d tensors",
			 PEER_MAX_TENSORS);
		goto out;
	}
	off = jlen;
	for (size_t i = 0; i < json_array_size(outputs); i++) {
		const char *name, *dt;
		const json_t *tp;
		int64_t shape[TENSOR_MAX_DIMS];
		int ndim;
		size_t sz;

		if ((r = read_tensor_json(json_array_get(outputs, i), "output", (int)i, &name, &dt, &ndim,
					  shape, &tp, err, errlen)) < 0)
			goto out;
		if ((r = binary_size(tp, name, &sz, err, errlen)) < 0)
			goto out;
		if (sz > len - off) {
			r = link_err(-EBADMSG, err, errlen,
				 "output '%.64s' declares %zu bytes but only %zu remain in the body", name, sz,
				 len - off);
			goto out;
		}
		struct peer_params pp = peer_params_json(tp);
		if ((r = peer_input_read(name, dt, ndim, shape, &pp, sz ? b + off : NULL, sz, &out->outputs[i],
					 err, errlen)) < 0)
			goto out;
		off += sz;
		out->n_outputs++;
	}
	if (off != len) {
		r = link_err(-EBADMSG, err, errlen, "%zu bytes follow the last output's data", len - off);
		goto out;
	}
	out->root = root;
	return 0;
out:
	json_decref(root);
	out->n_outputs = 0;
	return r;
}

void peer_response_fini(struct peer_response *r)
{
	if (!r)
		return;
	json_decref(r->root);
	r->root = NULL;
	r->n_outputs = 0;
}

/* ---- banded requests ------------------------------------------------------ */

static size_t band_elem(const struct peer_tensor *t)
{
	if (t->is_bytes || t->dtype != TENSOR_F32 || t->ndim < 2 || t->enc.comp != LINK_COMP_NONE)
		return 0;
	return t->enc.value == LINK_VALUE_F32 ? 4 : t->enc.value == LINK_VALUE_F16 ? 2
	       : t->enc.value == LINK_VALUE_I8 ? 1 : 0;
}

/* int8 bands carry their own scale: a float32 (little-endian) first */
static size_t band_head(const struct peer_tensor *t)
{
	return t->enc.value == LINK_VALUE_I8 ? 4 : 0;
}

/* planes (dims before ndim-2) and row width (dims after it) of t */
static int band_geom(const struct peer_tensor *t, int64_t *planes, int64_t *rows, int64_t *width)
{
	int64_t p = 1, w = 1;

	for (int i = 0; i < t->ndim; i++)
		if (t->shape[i] < 0 || t->shape[i] > (INT64_C(1) << 40))
			return -EINVAL;
	for (int i = 0; i < t->ndim - 2; i++)
		p *= t->shape[i];
	w = t->shape[t->ndim - 1];
	if (p > (INT64_C(1) << 40) / (w ? w : 1) / (t->shape[t->ndim - 2] ? t->shape[t->ndim - 2] : 1))
		return -EINVAL;
	*planes = p;
	*rows = t->shape[t->ndim - 2];
	*width = w;
	return 0;
}

size_t peer_band_bytes(const struct peer_tensor *t, int64_t r0, int64_t r1)
{
	int64_t planes, rows, width;
	size_t es = band_elem(t);

	if (!es || band_geom(t, &planes, &rows, &width) < 0 || r0 < 0 || r1 < r0 || r1 > rows)
		return 0;
	return band_head(t) + (size_t)(planes * (r1 - r0) * width) * es;
}

int peer_band_check(const struct peer_tensor *t, int bands, char *err, size_t errlen)
{
	int64_t planes, rows, width, prev = 0;

	if (!band_elem(t))
		return link_err(-EBADMSG, err, errlen,
			    "input '%.64s' cannot travel banded: only float tensors of rank >= 2 "
			    "encoded f32, f16 or i8 without compression do", t->name);
	if (band_geom(t, &planes, &rows, &width) < 0)
		return link_err(-EBADMSG, err, errlen, "input '%.64s' has an absurd shape", t->name);
	if (!t->band_ends || t->n_band_ends != bands)
		return link_err(-EBADMSG, err, errlen, "input '%.64s': splitd_band_rows must list %d band ends",
			    t->name, bands);
	for (int b = 0; b < bands; b++) {
		if (t->band_ends[b] < prev || t->band_ends[b] > rows)
			return link_err(-EBADMSG, err, errlen,
				    "input '%.64s': splitd_band_rows must not decrease and stay within its %" PRId64
				    " rows", t->name, rows);
		prev = t->band_ends[b];
	}
	if (prev != rows)
		return link_err(-EBADMSG, err, errlen, "input '%.64s': the last band must end at row %" PRId64,
			    t->name, rows);
	if ((size_t)(planes * rows * width) * band_elem(t) + (size_t)bands * band_head(t) != t->len)
		return link_err(-EBADMSG, err, errlen, "input '%.64s': %zu bytes do not fit its shape and encoding",
			    t->name, t->len);
	return 0;
}

int peer_band_decode(const struct peer_tensor *t, int band, const void *seg, size_t len,
		     struct tensor_view *out, char *err, size_t errlen)
{
	int64_t planes, rows, width;
	int rc;

	if ((rc = check_like(t, out, err, errlen)) < 0)
		return rc;
	if (out->dtype != TENSOR_F32 || !band_elem(t) || band_geom(t, &planes, &rows, &width) < 0 ||
	    !t->band_ends || band < 0 || band >= t->n_band_ends)
		return link_err(-EBADMSG, err, errlen, "input '%.64s' band %d cannot be decoded", t->name, band);
	int64_t r0 = band ? t->band_ends[band - 1] : 0, r1 = t->band_ends[band];
	if (len != peer_band_bytes(t, r0, r1))
		return link_err(-EBADMSG, err, errlen, "input '%.64s' band %d: %zu bytes, rows %" PRId64 "..%" PRId64
			    " take %zu", t->name, band, len, r0, r1, peer_band_bytes(t, r0, r1));
	const uint8_t *src = seg;
	float scale = 1;
	if (band_head(t)) {
		uint32_t u = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
			     (uint32_t)src[3] << 24;
		memcpy(&scale, &u, 4);
		src += 4;
		if (!(scale >= 0.0f && scale <= 3.4028234663852886e38f))
			return link_err(-EBADMSG, err, errlen,
				    "input '%.64s' band %d: the int8 scale is not a finite float >= 0", t->name, band);
	}
	size_t n_el = (size_t)((r1 - r0) * width), es = band_elem(t);
	uint16_t h[256];
	for (int64_t p = 0; p < planes; p++, src += n_el * es) {
		float *x = (float *)out->data + (size_t)(p * rows + r0) * (size_t)width;
		if (t->enc.value == LINK_VALUE_I8) {
			for (size_t i = 0; i < n_el; i++)
				x[i] = (float)(int8_t)src[i] * scale;
		} else if (t->enc.value == LINK_VALUE_F16) {
			/* through an aligned buffer: the segment may start anywhere */
			for (size_t i = 0; i < n_el; i += 256) {
				size_t k = n_el - i < 256 ? n_el - i : 256;
				memcpy(h, src + 2 * i, 2 * k);
				link_f16_to_f32(h, x + i, k);
			}
		} else {
			memcpy(x, src, n_el * 4);
		}
	}
	return 0;
}

/* Segment (band, i) of a banded request: its binary-part offset and size. */
static int band_seg(const struct peer_request *r, int band, int i, size_t *at, size_t *len)
{
	size_t off = 0;

	if (!r || r->bands < 2 || band < 0 || band >= r->bands || i < 0 || i >= r->n_inputs)
		return -EINVAL;
	for (int b = 0; b <= band; b++)
		for (int k = 0; k < r->n_inputs; k++) {
			const struct peer_tensor *t = &r->inputs[k];

			if (!t->band_ends || t->n_band_ends != r->bands || !band_elem(t))
				return -EINVAL;
			size_t l = peer_band_bytes(t, b ? t->band_ends[b - 1] : 0, t->band_ends[b]);
			if (b == band && k == i) {
				*at = off;
				*len = l;
				return 0;
			}
			off += l;
		}
	return -EINVAL;
}

size_t peer_request_band_end(const struct peer_request *r, int band, int i)
{
	size_t at, len;

	return band_seg(r, band, i, &at, &len) < 0 ? 0 : at + len;
}

int peer_request_band_decode(const struct peer_request *r, int band, int i, struct tensor_view *out,
			     char *err, size_t errlen)
{
	static const uint8_t none[4];
	const uint8_t *seg = none;
	uint8_t *copy = NULL;
	size_t at, len, base = 0;
	int k = 0, rc;

	if (band_seg(r, band, i, &at, &len) < 0)
		return link_err(-EINVAL, err, errlen, "band %d of input %d is not in the request", band, i);
	/* the slice (input k's bytes) where the segment starts */
	while (k < r->n_inputs && (!r->inputs[k].len || at >= base + r->inputs[k].len)) {
		base += r->inputs[k].len;
		k++;
	}
	if (len && k == r->n_inputs)
		return link_err(-EBADMSG, err, errlen, "input '%.64s' band %d lies past the binary part",
			    r->inputs[i].name, band);
	if (len && at + len <= base + r->inputs[k].len) {
		seg = (const uint8_t *)r->inputs[k].data + (at - base);
	} else if (len) {	/* it straddles slices, which may lie apart: gather it */
		size_t got = 0, from = at - base;

		if (!(copy = malloc(len)))
			return link_err(-ENOMEM, err, errlen, "out of memory decoding a band");
		for (; k < r->n_inputs && got < len; k++, from = 0) {
			size_t n = r->inputs[k].len - from < len - got ? r->inputs[k].len - from : len - got;

			if (n)
				memcpy(copy + got, (const uint8_t *)r->inputs[k].data + from, n);
			got += n;
		}
		if (got < len) {
			free(copy);
			return link_err(-EBADMSG, err, errlen, "input '%.64s' band %d runs past the binary part",
				    r->inputs[i].name, band);
		}
		seg = copy;
	}
	rc = peer_band_decode(&r->inputs[i], band, seg, len, out, err, errlen);
	free(copy);
	return rc;
}

int peer_unband(struct peer_tensor *ts, int n, int bands, void **out, char *err, size_t errlen)
{
	size_t total = 0, off = 0, outlen = 0, base[PEER_MAX_TENSORS], obase[PEER_MAX_TENSORS];
	uint8_t *dst, *cat;
	int r;

	*out = NULL;
	if (n < 1 || n > PEER_MAX_TENSORS || bands < 1)
		return link_err(-EBADMSG, err, errlen, "a banded request needs 1 to %d inputs", PEER_MAX_TENSORS);
	for (int j = 0; j < n; j++) {
		int64_t planes, rows, width;

		if ((r = peer_band_check(&ts[j], bands, err, errlen)) < 0)
			return r;
		band_geom(&ts[j], &planes, &rows, &width);
		base[j] = total;
		total += ts[j].len;
		obase[j] = outlen;
		/* int8 bands come out as float32, each with its own scale */
		outlen += (size_t)(planes * rows * width) * (band_head(&ts[j]) ? 4 : band_elem(&ts[j]));
		outlen = (outlen + 63) & ~(size_t)63;
	}
	/* the body as sent: the inputs' slices in order (a v2 parser may have
	 * moved them apart, e.g. to align each) */
	cat = malloc(total ? total : 1);
	if (!cat || !(dst = malloc(outlen ? outlen : 1))) {
		free(cat);
		return link_err(-ENOMEM, err, errlen, "out of memory reordering a banded request");
	}
	for (int j = 0; j < n; j++)
		if (ts[j].len)
			memcpy(cat + base[j], ts[j].data, ts[j].len);
	for (int b = 0; b < bands; b++)
		for (int j = 0; j < n; j++) {
			int64_t planes, rows, width;
			int64_t r0 = b ? ts[j].band_ends[b - 1] : 0, r1 = ts[j].band_ends[b];
			size_t es = band_elem(&ts[j]);
			float scale = 1;

			band_geom(&ts[j], &planes, &rows, &width);
			if (band_head(&ts[j])) {
				uint32_t u = (uint32_t)cat[off] | (uint32_t)cat[off + 1] << 8 |
					     (uint32_t)cat[off + 2] << 16 | (uint32_t)cat[off + 3] << 24;
				memcpy(&scale, &u, 4);
				off += 4;
				if (!(scale >= 0.0f && scale <= 3.4028234663852886e38f)) {
					free(cat);
					free(dst);
					return link_err(-EBADMSG, err, errlen,
						    "input '%.64s' band %d: the int8 scale is not a finite float >= 0",
						    ts[j].name, b);
				}
				es = 1;
			}
			size_t n_el = (size_t)((r1 - r0) * width), seg = n_el * es;
			for (int64_t p = 0; p < planes; p++) {
				size_t at = (size_t)(p * rows + r0) * (size_t)width;
				if (band_head(&ts[j])) {
					const int8_t *q = (const int8_t *)(cat + off);
					float *x = (float *)(dst + obase[j]) + at;
					for (size_t i = 0; i < n_el; i++)
						x[i] = (float)q[i] * scale;
				} else {
					memcpy(dst + obase[j] + at * es, cat + off, seg);
				}
				off += seg;
			}
		}
	free(cat);
	/* peer_band_check made each input's bands cover its bytes exactly */
	if (off != total) {
		free(dst);
		return link_err(-EBADMSG, err, errlen, "banded layout does not cover the binary part");
	}
	for (int j = 0; j < n; j++) {
		if (band_head(&ts[j])) {
			int64_t planes, rows, width;
			band_geom(&ts[j], &planes, &rows, &width);
			ts[j].enc = (struct link_encoding){ LINK_VALUE_F32, LINK_COMP_NONE, 0 };
			ts[j].scale = 1;
			ts[j].len = (size_t)(planes * rows * width) * 4;
		}
		ts[j].data = dst + obase[j];
	}
	*out = dst;
	return 0;
}
