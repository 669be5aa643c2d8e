/* The offload link's messages (see peer_proto.h): what both sides share,
 * the parameter look-ups, and reading and decoding one tensor. Building is
 * peer_build.c, a request's reading peer_request.c, a response's
 * peer_response.c, banded requests peer_band.c. */
#include "peer_proto.h"
#include "link-impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

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
	t->queue_ns = t->decode_ns = t->compute_ns = t->total_ns = t->energy_uj = t->post_ns = -1;
	t->backend[0] = '\0';
	t->n_bands = 0;
}

/* ---- parameters ----------------------------------------------------------- */

/* The API's own "parameters" objects behind the look-ups */
static int api_get_int(const void *obj, const char *key, int64_t *out)
{
	return api_params_int(obj, key, out);
}

static int api_get_number(const void *obj, const char *key, double *out)
{
	return api_params_double(obj, key, out);
}

static int api_get_string(const void *obj, const char *key, const char **out)
{
	return api_params_string(obj, key, out);
}

static int api_get_bool(const void *obj, const char *key, int *out)
{
	return api_params_bool(obj, key, out);
}

static int api_get_int_array(const void *obj, const char *key, int64_t *out, int max, int *n)
{
	return api_params_int_array(obj, key, out, max, n);
}

struct peer_params peer_params_api(const struct api_params *p)
{
	return (struct peer_params){ .obj = p, .get_int = api_get_int, .get_number = api_get_number,
				     .get_string = api_get_string, .get_bool = api_get_bool,
				     .get_int_array = api_get_int_array };
}

/* The look-ups, with no parameters (or no such getter) as absent keys. */
int peer_param_int(const struct peer_params *p, const char *key, int64_t *out)
{
	return p && p->obj && p->get_int ? p->get_int(p->obj, key, out) : -ENOENT;
}

int peer_param_number(const struct peer_params *p, const char *key, double *out)
{
	return p && p->obj && p->get_number ? p->get_number(p->obj, key, out) : -ENOENT;
}

int peer_param_string(const struct peer_params *p, const char *key, const char **out)
{
	return p && p->obj && p->get_string ? p->get_string(p->obj, key, out) : -ENOENT;
}

int peer_param_bool(const struct peer_params *p, const char *key, int *out)
{
	return p && p->obj && p->get_bool ? p->get_bool(p->obj, key, out) : -ENOENT;
}

int peer_param_int_array(const struct peer_params *p, const char *key, int64_t *out, int max, int *n)
{
	return p && p->obj && p->get_int_array ? p->get_int_array(p->obj, key, out, max, n) : -ENOENT;
}

/* ---- one tensor ------------------------------------------------------------- */

static enum tensor_dtype dtype_from_name(const char *s)
{
	static const enum tensor_dtype all[] = { TENSOR_F32, TENSOR_U8, TENSOR_I8, TENSOR_I32,
		TENSOR_I64, TENSOR_BOOL, TENSOR_F16, TENSOR_F64 };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (!strcmp(s, tensor_dtype_name(all[i])))
			return all[i];
	return TENSOR_UNDEFINED;
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
		return err_set(-EBADMSG, err, errlen, "tensor name is empty or longer than %d bytes",
			    PEER_NAME_MAX - 1);
	if (!datatype || ndim < 0 || ndim > TENSOR_MAX_DIMS || (ndim && !shape) || (len && !data))
		return err_set(-EBADMSG, err, errlen, "tensor '%.64s' lacks a datatype, shape or data", name);
	t.name = name;
	t.ndim = ndim;
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0 || shape[i] > PEER_MAX_DIM)
			return err_set(-EBADMSG, err, errlen, "tensor '%.64s' dim %d is out of range", name, i);
		t.shape[i] = shape[i];
	}
	t.scale = 1.0f;
	if (!strcmp(datatype, "BYTES")) {
		const uint8_t *p = data;
		uint32_t l;

		if (ndim != 1 || shape[0] != 1)
			return err_set(-EBADMSG, err, errlen, "BYTES tensor '%.64s' must have shape [1]", name);
		if (peer_param_string(params, "splitd_encoding", &enc) != -ENOENT)
			return err_set(-EBADMSG, err, errlen, "BYTES tensor '%.64s' takes no splitd_encoding", name);
		if (len < 4)
			return err_set(-EBADMSG, err, errlen, "BYTES tensor '%.64s' is shorter than its length prefix",
				    name);
		l = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
		if ((size_t)l != len - 4)
			return err_set(-EBADMSG, err, errlen,
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
		return err_set(-EBADMSG, err, errlen, "tensor '%.64s' has unsupported datatype '%.16s'", name,
			    datatype);
	if ((rc = peer_param_string(params, "splitd_encoding", &enc)) != -ENOENT) {
		if (rc < 0 || link_encoding_parse(enc, &t.enc) < 0)
			return err_set(-EBADMSG, err, errlen, "tensor '%.64s': splitd_encoding is not an encoding string",
				    name);
		if (t.enc.value != LINK_VALUE_F32 && t.dtype != TENSOR_F32)
			return err_set(-EBADMSG, err, errlen,
				    "tensor '%.64s' is %s; lossy encodings apply to FP32 only", name, datatype);
	}
	if ((rc = peer_param_number(params, "splitd_scale", &s)) != -ENOENT && t.enc.value != LINK_VALUE_I8)
		return err_set(-EBADMSG, err, errlen, "tensor '%.64s': splitd_scale belongs to i8 encodings only",
			    name);
	if (t.enc.value == LINK_VALUE_I8) {
		if (rc < 0)
			return err_set(-EBADMSG, err, errlen, "int8 tensor '%.64s' has no numeric splitd_scale", name);
		if (!(s >= 0.0 && s <= 3.4028234663852886e38))
			return err_set(-EBADMSG, err, errlen, "int8 tensor '%.64s' scale is not a finite float >= 0",
				    name);
		t.scale = (float)s;
	}
	t.data = data;
	t.len = len;
	*out = t;
	return 0;
}

/* t's type and shape are out's */
int peer_tensor_check_like(const struct peer_tensor *t, const struct tensor_view *out, char *err, size_t errlen)
{
	if (t->is_bytes)
		return err_set(-EBADMSG, err, errlen, "tensor '%.64s' is BYTES, a tensor of %s was expected",
			    t->name, tensor_dtype_name(out->dtype) ? tensor_dtype_name(out->dtype) : "?");
	if (t->dtype != out->dtype)
		return err_set(-EBADMSG, err, errlen, "tensor '%.64s' is %s, %s was expected", t->name,
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
		return err_set(-EBADMSG, err, errlen, "tensor '%.64s' has shape [%s], [%s] was expected", t->name,
			    got, want);
	}
	return 0;
}

int peer_tensor_decode(const struct peer_tensor *t, struct tensor_view *out, char *err, size_t errlen)
{
	int rc;

	if ((rc = peer_tensor_check_like(t, out, err, errlen)) < 0)
		return rc;
	{
		char e2[200];
		int r = link_decode(t->data, t->len, &t->enc, t->scale, out, e2, sizeof(e2));

		if (r < 0)
			return err_set(r, err, errlen, "tensor '%.64s': %s", t->name, e2);
	}
	return 0;
}

