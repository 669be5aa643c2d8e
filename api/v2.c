/* KServe Open Inference Protocol v2: JSON + binary tensor extension parser
 * and builder (requests and responses alike), and the v2 routes. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api-impl.h"

#define MAX_JSON_BYTES (8u << 20)
#define MAX_NUMEL ((int64_t)1 << 40)

struct v2_msg {
	struct api_v2_message m;	/* first: the public part */
	json_t *root;
	struct api_params *params;	/* one per parameters object */
	int n_params, cap_params;
	void **owned;			/* data buffers we allocated */
	int n_owned;
};

/* ---- half floats ----------------------------------------------------- */

float api_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0) {
		if (man == 0) {
			bits = sign;
		} else {	/* subnormal: renormalize */
			int e = -1;
			do {
				e++;
				man <<= 1;
			} while (!(man & 0x400));
			bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
		}
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | man << 13;
	} else {
		bits = sign | (exp + 127 - 15) << 23 | man << 13;
	}
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t api_f32_to_f16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000, exp = (x >> 23) & 0xff, man = x & 0x7fffff;
	if (exp == 0xff)
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
	int e = (int)exp - 127 + 15;
	if (e >= 31)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		int shift = 14 - e;
		uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t half = (uint32_t)e << 10 | man >> 13, rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (half & 1)))
		half++;	/* may carry into the exponent: still right */
	return (uint16_t)(sign | half);
}

/* ---- datatypes ------------------------------------------------------- */

static const struct {
	const char *name;
	enum tensor_dtype dt;
	int size;
} dtypes[] = {
	{"BOOL", TENSOR_BOOL, 1}, {"UINT8", TENSOR_U8, 1}, {"INT8", TENSOR_I8, 1},
	{"INT32", TENSOR_I32, 4}, {"INT64", TENSOR_I64, 8}, {"FP16", TENSOR_F16, 2},
	{"FP32", TENSOR_F32, 4}, {"FP64", TENSOR_F64, 8},
	{"UINT16", TENSOR_UNDEFINED, 2}, {"UINT32", TENSOR_UNDEFINED, 4},
	{"UINT64", TENSOR_UNDEFINED, 8}, {"INT16", TENSOR_UNDEFINED, 2},
	{"BF16", TENSOR_UNDEFINED, 2}, {"BYTES", TENSOR_UNDEFINED, 0},
};

static int find_dtype(const char *name)
{
	for (size_t i = 0; i < sizeof(dtypes) / sizeof(dtypes[0]); i++)
		if (!strcmp(dtypes[i].name, name))
			return (int)i;
	return -1;
}

/* ---- parameters ------------------------------------------------------ */

static const json_t *param(const struct api_params *p, const char *key)
{
	return p && p->obj ? json_object_get(p->obj, key) : NULL;
}

int api_params_int(const struct api_params *p, const char *key, int64_t *out)
{
	const json_t *v = param(p, key);

	if (!v)
		return -ENOENT;
	if (!json_is_integer(v))
		return -EINVAL;
	*out = json_integer_value(v);
	return 0;
}

int api_params_int_array(const struct api_params *p, const char *key, int64_t *out, int max, int *n)
{
	const json_t *v = param(p, key);

	if (!v)
		return -ENOENT;
	if (!json_is_array(v) || json_array_size(v) > (size_t)max)
		return -EINVAL;
	for (size_t i = 0; i < json_array_size(v); i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_integer(e))
			return -EINVAL;
		out[i] = (int64_t)json_integer_value(e);
	}
	*n = (int)json_array_size(v);
	return 0;
}

int api_params_double(const struct api_params *p, const char *key, double *out)
{
	const json_t *v = param(p, key);

	if (!v)
		return -ENOENT;
	if (!json_is_number(v))
		return -EINVAL;
	*out = json_number_value(v);
	return 0;
}

int api_params_string(const struct api_params *p, const char *key, const char **out)
{
	const json_t *v = param(p, key);

	if (!v)
		return -ENOENT;
	if (!json_is_string(v))
		return -EINVAL;
	*out = json_string_value(v);
	return 0;
}

int api_params_bool(const struct api_params *p, const char *key, int *out)
{
	const json_t *v = param(p, key);

	if (!v)
		return -ENOENT;
	if (!json_is_boolean(v))
		return -EINVAL;
	*out = json_is_true(v);
	return 0;
}

/* ---- parsing --------------------------------------------------------- */

struct pctx {
	struct v2_msg *vm;
	size_t json_len;
	char *err;
	size_t errlen;
};

#define FAIL(pc, ...) (snprintf((pc)->err, (pc)->errlen, __VA_ARGS__), -EINVAL)

static int own(struct v2_msg *vm, void *p)
{
	void **n = realloc(vm->owned, (size_t)(vm->n_owned + 1) * sizeof(*n));

	if (!n) {
		free(p);
		return -ENOMEM;
	}
	vm->owned = n;
	vm->owned[vm->n_owned++] = p;
	return 0;
}

static int take_params(struct pctx *pc, json_t *obj, const char *where,
		       const struct api_params **out)
{
	struct v2_msg *vm = pc->vm;

	*out = NULL;
	if (!obj)
		return 0;
	if (!json_is_object(obj))
		return FAIL(pc, "%s \"parameters\" is not an object", where);
	*out = &vm->params[vm->n_params];
	vm->params[vm->n_params++].obj = obj;
	return 0;
}

static int check_keys(struct pctx *pc, json_t *obj, const char *const *allowed, const char *where)
{
	const char *k;
	json_t *v;

	json_object_foreach(obj, k, v) {
		int ok = 0;
		for (int i = 0; allowed[i]; i++)
			ok |= !strcmp(k, allowed[i]);
		if (!ok)
			return FAIL(pc, "%s has an unknown key \"%.40s\"", where, k);
	}
	return 0;
}

/* flatten nested data arrays into out (element size es); count elements */
static int put_value(struct pctx *pc, json_t *v, int di, char *out, int64_t idx, const char *name)
{
	int dt = dtypes[di].dt;
	const char *dn = dtypes[di].name;
	char *p = out + idx * dtypes[di].size;

	if (dt == TENSOR_BOOL) {
		if (!json_is_boolean(v))
			return FAIL(pc, "tensor '%s': BOOL data holds a non-boolean", name);
		*p = json_is_true(v);
		return 0;
	}
	if (dt == TENSOR_F32 || dt == TENSOR_F64 || dt == TENSOR_F16 || !strcmp(dn, "BF16")) {
		if (!json_is_number(v))
			return FAIL(pc, "tensor '%s': %s data holds a non-number", name, dn);
		double d = json_number_value(v);
		if (dt == TENSOR_F32) {
			float f = (float)d;
			memcpy(p, &f, 4);
		} else if (dt == TENSOR_F64) {
			memcpy(p, &d, 8);
		} else if (dt == TENSOR_F16) {
			uint16_t h = api_f32_to_f16((float)d);
			memcpy(p, &h, 2);
		} else {
			float f = (float)d;
			uint32_t u;
			memcpy(&u, &f, 4);
			uint16_t h = (uint16_t)(u >> 16);
			memcpy(p, &h, 2);
		}
		return 0;
	}
	if (!json_is_integer(v))
		return FAIL(pc, "tensor '%s': %s data holds a non-integer", name, dn);
	json_int_t x = json_integer_value(v);
	int sz = dtypes[di].size;
	int is_unsigned = dn[0] == 'U';
	long long lo = is_unsigned ? 0 : sz == 8 ? INT64_MIN : -(1ll << (sz * 8 - 1));
	long long hi = sz == 8 ? INT64_MAX : is_unsigned ? (1ll << (sz * 8)) - 1 : (1ll << (sz * 8 - 1)) - 1;
	if (x < lo || x > hi)
		return FAIL(pc, "tensor '%s': %lld is out of range for %s", name, (long long)x, dn);
	int64_t w = x;
	memcpy(p, &w, (size_t)sz);	/* little-endian hosts */
	return 0;
}

static int flatten(struct pctx *pc, json_t *a, int depth, int di, struct buf *out,
		   int64_t *count, int64_t numel, const char *name)
{
	size_t i;
	json_t *v;

	if (depth > API_V2_MAX_JSON_DEPTH)
		return FAIL(pc, "tensor '%s': data nested too deeply", name);
	json_array_foreach(a, i, v) {
		int rc;
		if (json_is_array(v)) {
			rc = flatten(pc, v, depth + 1, di, out, count, numel, name);
		} else if (*count >= numel) {
			return FAIL(pc, "tensor '%s': data has more than the %lld elements of its shape",
				    name, (long long)numel);
		} else if (dtypes[di].size == 0) {	/* BYTES: length-prefixed */
			if (!json_is_string(v))
				return FAIL(pc, "tensor '%s': BYTES data holds a non-string", name);
			uint32_t l = (uint32_t)json_string_length(v);
			buf_put(out, &l, 4);
			buf_put(out, json_string_value(v), l);
			(*count)++;
			rc = out->oom ? -ENOMEM : 0;
		} else {
			rc = put_value(pc, v, di, out->p, *count, name);
			(*count)++;
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* The binary part: tensors take their bytes from base + *off, at most cap in
 * all. Streamed (partial) parses point into bytes still to come and leave
 * them where they will land; base NULL only counts. */
struct bin_part {
	const char *base;
	size_t off, cap;
	int partial;
};

static int parse_tensor(struct pctx *pc, json_t *t, struct api_v2_tensor *o,
			struct bin_part *bp, int response)
{
	static const char *const keys[] = {"name", "shape", "datatype", "parameters", "data", NULL};
	json_t *name = json_object_get(t, "name"), *shape = json_object_get(t, "shape");
	json_t *dt = json_object_get(t, "datatype"), *data = json_object_get(t, "data");
	int rc, di;
	size_t i;
	json_t *v;

	if (!json_is_object(t))
		return FAIL(pc, "a tensor is not an object");
	if ((rc = check_keys(pc, t, keys, "a tensor")))
		return rc;
	if (!json_is_string(name) || !json_string_length(name))
		return FAIL(pc, "a tensor has no \"name\" string");
	o->name = json_string_value(name);
	if (!json_is_string(dt) || (di = find_dtype(json_string_value(dt))) < 0)
		return FAIL(pc, "tensor '%s': \"datatype\" is not a KServe v2 type", o->name);
	o->datatype = dtypes[di].name;
	o->dtype = dtypes[di].dt;
	if (!json_is_array(shape) || json_array_size(shape) > TENSOR_MAX_DIMS)
		return FAIL(pc, "tensor '%s': \"shape\" is not an array of at most %d sizes",
			    o->name, TENSOR_MAX_DIMS);
	int64_t numel = 1;
	json_array_foreach(shape, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > MAX_NUMEL)
			return FAIL(pc, "tensor '%s': shape holds a bad size", o->name);
		o->shape[i] = json_integer_value(v);
		if (o->shape[i] && numel > MAX_NUMEL / o->shape[i])
			return FAIL(pc, "tensor '%s': shape too large", o->name);
		numel *= o->shape[i];
	}
	o->ndim = (int)json_array_size(shape);
	if ((rc = take_params(pc, json_object_get(t, "parameters"), "a tensor's", &o->params)))
		return rc;
	int64_t bsize = -1;
	rc = api_params_int(o->params, "binary_data_size", &bsize);
	if (rc == -EINVAL || (!rc && bsize < 0))
		return FAIL(pc, "tensor '%s': binary_data_size is not a size", o->name);
	if (!rc) {
		if (data)
			return FAIL(pc, "tensor '%s' has both \"data\" and binary_data_size", o->name);
		if ((uint64_t)bsize > bp->cap - bp->off)
			return FAIL(pc, "tensor '%s': binary_data_size %lld runs past the body "
				    "(%zu bytes remain in the body)", o->name, (long long)bsize,
				    bp->cap - bp->off);
		o->binary = 1;
		o->data_len = (size_t)bsize;
		o->data = bp->base ? bp->base + bp->off : NULL;
		bp->off += (size_t)bsize;
		if (!bp->partial && ((uintptr_t)o->data & 7) && bsize > 0) {	/* align for views */
			void *c = malloc((size_t)bsize);
			if (!c || own(pc->vm, c))
				return -ENOMEM;
			memcpy(c, o->data, (size_t)bsize);
			o->data = c;
		}
		return 0;
	}
	if (!json_is_array(data))
		return FAIL(pc, "tensor '%s' has neither a \"data\" array nor binary_data_size", o->name);
	struct buf b = {0};
	int64_t count = 0;
	if (numel > (int64_t)pc->json_len)	/* each element takes a byte at least */
		return FAIL(pc, "tensor '%s': data has fewer elements than its shape", o->name);
	if (dtypes[di].size && buf_reserve(&b, (size_t)numel * (size_t)dtypes[di].size))
		return -ENOMEM;
	rc = flatten(pc, data, 1, di, &b, &count, numel, o->name);
	if (!rc && count != numel)
		rc = FAIL(pc, "tensor '%s': data has %lld elements, its shape %lld",
			  o->name, (long long)count, (long long)numel);
	if (!rc && b.oom)
		rc = -ENOMEM;
	if (rc) {
		free(b.p);
		return rc;
	}
	if (b.p && (rc = own(pc->vm, b.p)))
		return rc;
	o->data = b.p;
	o->data_len = dtypes[di].size ? (size_t)numel * (size_t)dtypes[di].size : b.len;
	(void)response;
	return 0;
}

static size_t count_params(json_t *root)
{
	size_t n = 1, i;
	json_t *v, *arr;

	for (int k = 0; k < 2; k++) {
		arr = json_object_get(root, k ? "outputs" : "inputs");
		if (json_is_array(arr))
			json_array_foreach(arr, i, v)
				n++;
	}
	return n;
}

static int parse(enum api_v2_kind kind, const void *body, size_t len, size_t header_len,
		 struct bin_part *bp, struct api_v2_message **out, char *err, size_t errlen)
{
	struct v2_msg *vm = NULL;
	struct pctx pc = {NULL, 0, err, errlen};
	json_error_t je;
	json_t *root = NULL, *arr, *v;
	int rc = 0;
	size_t i;

	*out = NULL;
	if (!header_len)
		header_len = len;
	if (header_len > len)
		return FAIL(&pc, "Inference-Header-Content-Length %zu exceeds the body (%zu)",
			    header_len, len);
	if (header_len > MAX_JSON_BYTES)
		return FAIL(&pc, "the JSON header is over %u bytes: use binary tensors", MAX_JSON_BYTES);
	pc.json_len = header_len;
	root = json_loadb(body, header_len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return FAIL(&pc, "malformed JSON at line %d column %d: %s", je.line, je.column, je.text);
	if (!json_is_object(root)) {
		rc = FAIL(&pc, "the body is not a JSON object");
		goto out;
	}
	static const char *const req_keys[] = {"id", "parameters", "inputs", "outputs", NULL};
	static const char *const resp_keys[] = {"id", "parameters", "outputs", "model_name",
						"model_version", NULL};
	if ((rc = check_keys(&pc, root, kind == API_V2_REQUEST ? req_keys : resp_keys,
			     kind == API_V2_REQUEST ? "the request" : "the response")))
		goto out;
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		rc = -ENOMEM;
		goto out;
	}
	pc.vm = vm;
	vm->root = root;
	vm->cap_params = (int)count_params(root);
	vm->params = calloc((size_t)vm->cap_params, sizeof(*vm->params));
	if (!vm->params) {
		rc = -ENOMEM;
		goto out;
	}
	struct api_v2_message *m = &vm->m;
	v = json_object_get(root, "id");
	if (v && !json_is_string(v)) {
		rc = FAIL(&pc, "\"id\" is not a string");
		goto out;
	}
	m->id = json_string_value(v);
	if (kind == API_V2_RESPONSE) {
		v = json_object_get(root, "model_name");
		if (!json_is_string(v)) {
			rc = FAIL(&pc, "the response has no \"model_name\"");
			goto out;
		}
		m->model_name = json_string_value(v);
		v = json_object_get(root, "model_version");
		if (v && !json_is_string(v)) {
			rc = FAIL(&pc, "\"model_version\" is not a string");
			goto out;
		}
		m->model_version = json_string_value(v);
	}
	if ((rc = take_params(&pc, json_object_get(root, "parameters"), "the", &m->params)))
		goto out;
	if (api_params_bool(m->params, "binary_data_output", &m->binary_data_output) == -EINVAL) {
		rc = FAIL(&pc, "binary_data_output is not a boolean");
		goto out;
	}
	arr = json_object_get(root, kind == API_V2_REQUEST ? "inputs" : "outputs");
	if (!json_is_array(arr) || json_array_size(arr) < 1 ||
	    json_array_size(arr) > API_V2_MAX_TENSORS) {
		rc = FAIL(&pc, "\"%s\" is not an array of 1 to %d tensors",
			  kind == API_V2_REQUEST ? "inputs" : "outputs", API_V2_MAX_TENSORS);
		goto out;
	}
	m->n_tensors = (int)json_array_size(arr);
	m->tensors = calloc((size_t)m->n_tensors, sizeof(*m->tensors));
	if (!m->tensors) {
		rc = -ENOMEM;
		goto out;
	}
	json_array_foreach(arr, i, v) {
		if ((rc = parse_tensor(&pc, v, &m->tensors[i], bp, kind)))
			goto out;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(m->tensors[j].name, m->tensors[i].name)) {
				rc = FAIL(&pc, "tensor '%s' appears twice", m->tensors[i].name);
				goto out;
			}
	}
	if (!bp->partial && bp->off != bp->cap) {
		rc = FAIL(&pc, "%zu bytes after the JSON header belong to no tensor",
			  bp->cap - bp->off);
		goto out;
	}
	arr = json_object_get(root, "outputs");
	if (kind == API_V2_REQUEST && arr) {
		static const char *const okeys[] = {"name", "parameters", NULL};
		if (!json_is_array(arr) || json_array_size(arr) > API_V2_MAX_TENSORS) {
			rc = FAIL(&pc, "\"outputs\" is not an array of at most %d entries",
				  API_V2_MAX_TENSORS);
			goto out;
		}
		m->n_outputs = (int)json_array_size(arr);
		m->outputs = calloc((size_t)m->n_outputs + 1, sizeof(*m->outputs));
		if (!m->outputs) {
			rc = -ENOMEM;
			goto out;
		}
		json_array_foreach(arr, i, v) {
			struct api_v2_output_req *o = &m->outputs[i];
			json_t *n = json_object_get(v, "name");
			if (!json_is_object(v) || (rc = check_keys(&pc, v, okeys, "an output request")))
				goto bad_out;
			if (!json_is_string(n) || !json_string_length(n))
				goto bad_out;
			o->name = json_string_value(n);
			if ((rc = take_params(&pc, json_object_get(v, "parameters"), "an output's",
					      &o->params)))
				goto out;
			o->binary = m->binary_data_output;
			if (api_params_bool(o->params, "binary_data", &o->binary) == -EINVAL) {
				rc = FAIL(&pc, "output '%s': binary_data is not a boolean", o->name);
				goto out;
			}
		}
	}
	*out = m;
	return 0;
bad_out:
	if (!rc)
		rc = FAIL(&pc, "an \"outputs\" entry is not an object with a \"name\"");
out:
	if (vm)
		api_v2_message_free(&vm->m);
	else
		json_decref(root);
	return rc;
}

int api_v2_parse(enum api_v2_kind kind, const void *body, size_t len, size_t header_len,
		 struct api_v2_message **out, char *err, size_t errlen)
{
	size_t hl = header_len ? header_len : len;
	struct bin_part bp = { (const char *)body + (hl <= len ? hl : len), 0,
			       hl <= len ? len - hl : 0, 0 };
	return parse(kind, body, len, header_len, &bp, out, err, errlen);
}

int api_v2_parse_header(enum api_v2_kind kind, const void *header, size_t header_len,
			const void *binary, size_t max_binary, struct api_v2_message **out,
			size_t *binary_len, char *err, size_t errlen)
{
	struct bin_part bp = { binary, 0, max_binary, 1 };
	int rc;

	*binary_len = 0;
	if (!header_len) {
		snprintf(err, errlen, "a streamed body needs Inference-Header-Content-Length");
		return -EBADMSG;
	}
	if ((rc = parse(kind, header, header_len, header_len, &bp, out, err, errlen)))
		return rc;
	*binary_len = bp.off;
	return 0;
}

void api_v2_message_free(struct api_v2_message *m)
{
	struct v2_msg *vm = (struct v2_msg *)m;

	if (!m)
		return;
	for (int i = 0; i < vm->n_owned; i++)
		free(vm->owned[i]);
	free(vm->owned);
	free(vm->params);
	free(m->tensors);
	free(m->outputs);
	json_decref(vm->root);
	free(vm);
}

int api_v2_tensor_view(const struct api_v2_tensor *t, const struct api_tensor_meta *meta,
		       struct tensor_view *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (t->dtype == TENSOR_UNDEFINED) {
		snprintf(err, errlen, "tensor '%s': datatype %s is not supported here", t->name,
			 t->datatype);
		return -EINVAL;
	}
	out->dtype = t->dtype;
	out->ndim = t->ndim;
	memcpy(out->shape, t->shape, sizeof(out->shape));
	size_t want = tensor_bytes(out);
	if (want != t->data_len) {
		snprintf(err, errlen, "tensor '%s': %zu data bytes, its shape and %s need %zu",
			 t->name, t->data_len, t->datatype, want);
		return -EINVAL;
	}
	if (meta) {
		int bad = meta->dtype != t->dtype || meta->ndim != t->ndim;
		for (int i = 0; !bad && i < t->ndim; i++)
			bad = meta->shape[i] >= 0 && meta->shape[i] != t->shape[i];
		if (bad) {
			snprintf(err, errlen, "tensor '%s' does not match input '%s' (%s, %d dims)",
				 t->name, meta->name, tensor_dtype_name(meta->dtype) ?
				 tensor_dtype_name(meta->dtype) : "?", meta->ndim);
			return -EINVAL;
		}
	}
	out->data = (void *)t->data;
	return 0;
}

/* ---- building -------------------------------------------------------- */

void api_json_tensor_data(struct buf *b, enum tensor_dtype dt, const void *data, size_t n)
{
	const unsigned char *p = data;

	buf_put(b, "[", 1);
	for (size_t i = 0; i < n && !b->oom; i++) {
		if (i)
			buf_put(b, ",", 1);
		switch (dt) {
		case TENSOR_F32: {
			float f;
			memcpy(&f, p + 4 * i, 4);
			buf_double(b, f);
			break;
		}
		case TENSOR_F64: {
			double d;
			memcpy(&d, p + 8 * i, 8);
			if (isfinite(d))
				buf_printf(b, "%.17g", d);
			else
				buf_puts(b, "null");
			break;
		}
		case TENSOR_F16: {
			uint16_t h;
			memcpy(&h, p + 2 * i, 2);
			buf_double(b, api_f16_to_f32(h));
			break;
		}
		case TENSOR_U8: buf_printf(b, "%u", p[i]); break;
		case TENSOR_I8: buf_printf(b, "%d", (int8_t)p[i]); break;
		case TENSOR_BOOL: buf_puts(b, p[i] ? "true" : "false"); break;
		case TENSOR_I32: {
			int32_t x;
			memcpy(&x, p + 4 * i, 4);
			buf_printf(b, "%d", x);
			break;
		}
		case TENSOR_I64: {
			int64_t x;
			memcpy(&x, p + 8 * i, 8);
			buf_printf(b, "%lld", (long long)x);
			break;
		}
		default: buf_puts(b, "null");
		}
	}
	buf_put(b, "]", 1);
}

/* params_json with binary_data_size merged in */
static int put_params(struct buf *b, const char *pj, int64_t bsize)
{
	const char *s = pj, *e;

	if (!pj && bsize < 0)
		return 0;
	buf_puts(b, ",\"parameters\":");
	if (!pj) {
		buf_printf(b, "{\"binary_data_size\":%lld}", (long long)bsize);
		return 0;
	}
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		e--;
	if (e - s < 2 || *s != '{' || e[-1] != '}')
		return -EINVAL;
	if (bsize < 0) {
		buf_put(b, s, (size_t)(e - s));
		return 0;
	}
	const char *in = s + 1;
	while (in < e - 1 && (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r'))
		in++;
	buf_put(b, s, (size_t)(e - 1 - s));
	buf_printf(b, "%s\"binary_data_size\":%lld}", in == e - 1 ? "" : ",", (long long)bsize);
	return 0;
}

/* The JSON header of m into b: binary tensors by their binary_data_size,
 * the others with their "data". *bin: the bytes of the binary part. */
static int build_header(enum api_v2_kind kind, const struct api_v2_message *m, struct buf *b,
			size_t *bin)
{
	int rc = 0, first = 1;

	*bin = 0;
	buf_put(b, "{", 1);
	if (m->id) {
		buf_puts(b, "\"id\":");
		buf_json_string(b, m->id);
		first = 0;
	}
	if (kind == API_V2_RESPONSE) {
		buf_puts(b, first ? "\"model_name\":" : ",\"model_name\":");
		buf_json_string(b, m->model_name ? m->model_name : "");
		if (m->model_version) {
			buf_puts(b, ",\"model_version\":");
			buf_json_string(b, m->model_version);
		}
		first = 0;
	}
	if (m->params_json) {
		struct buf pb = {0};
		if (put_params(&pb, m->params_json, -1)) {
			free(pb.p);
			return -EINVAL;
		}
		buf_puts(b, first ? pb.p + 1 : pb.p);
		free(pb.p);
		first = 0;
	}
	buf_puts(b, first ? "\"" : ",\"");
	buf_puts(b, kind == API_V2_REQUEST ? "inputs\":[" : "outputs\":[");
	for (int i = 0; i < m->n_tensors; i++) {
		const struct api_v2_tensor *t = &m->tensors[i];
		const char *dn = t->datatype ? t->datatype : tensor_dtype_name(t->dtype);
		if (!t->name || !dn || t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
			return -EINVAL;
		buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		buf_json_string(b, t->name);
		buf_puts(b, ",\"datatype\":");
		buf_json_string(b, dn);
		buf_puts(b, ",\"shape\":[");
		for (int d = 0; d < t->ndim; d++)
			buf_printf(b, "%s%lld", d ? "," : "", (long long)t->shape[d]);
		buf_put(b, "]", 1);
		if ((rc = put_params(b, t->params_json, t->binary ? (int64_t)t->data_len : -1)))
			return rc;
		if (t->binary) {
			*bin += t->data_len;
		} else {
			struct tensor_view tv = {.dtype = t->dtype, .ndim = t->ndim};
			memcpy(tv.shape, t->shape, sizeof(tv.shape));
			int di = find_dtype(dn);
			if (di < 0 || dtypes[di].dt == TENSOR_UNDEFINED || dtypes[di].dt != t->dtype ||
			    tensor_bytes(&tv) != t->data_len)
				return -EINVAL;	/* JSON data needs a plain, whole tensor */
			buf_puts(b, ",\"data\":");
			api_json_tensor_data(b, t->dtype, t->data, (size_t)tensor_numel(&tv));
		}
		buf_put(b, "}", 1);
	}
	buf_put(b, "]", 1);
	if (kind == API_V2_REQUEST && m->n_outputs) {
		buf_puts(b, ",\"outputs\":[");
		for (int i = 0; i < m->n_outputs; i++) {
			buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
			buf_json_string(b, m->outputs[i].name);
			buf_printf(b, ",\"parameters\":{\"binary_data\":%s}}",
				   m->outputs[i].binary ? "true" : "false");
		}
		buf_put(b, "]", 1);
	}
	buf_put(b, "}", 1);
	if (*bin)
		while (b->len % 8)	/* pad so binary data starts aligned */
			buf_put(b, " ", 1);
	return b->oom ? -ENOMEM : 0;
}

int api_v2_build_header(enum api_v2_kind kind, const struct api_v2_message *m, char **header,
			size_t *header_len)
{
	struct buf b = {0};
	size_t bin;
	int rc;

	*header = NULL;
	*header_len = 0;
	if ((rc = build_header(kind, m, &b, &bin))) {
		free(b.p);
		return rc;
	}
	*header = b.p;
	*header_len = b.len;
	return 0;
}

int api_v2_build(enum api_v2_kind kind, const struct api_v2_message *m, char **body,
		 size_t *len, size_t *header_len)
{
	struct buf b = {0};
	size_t bin;
	int rc;

	*body = NULL;
	*len = *header_len = 0;
	if ((rc = build_header(kind, m, &b, &bin)))
		goto out;
	*header_len = b.len;
	if (bin && buf_reserve(&b, bin) == 0) {
		for (int i = 0; i < m->n_tensors; i++)
			if (m->tensors[i].binary)
				buf_put(&b, m->tensors[i].data, m->tensors[i].data_len);
	}
	if (b.oom) {
		rc = -ENOMEM;
		goto out;
	}
	*body = b.p;
	*len = b.len;
	return 0;
out:
	free(b.p);
	return rc;
}

/* ---- routes ---------------------------------------------------------- */

void api_route_v2_infer(struct api_call *c)
{
	struct api_server *s = c->srv;
	char err[256];

	if (!s->h.infer_v2) {
		api_call_error(c, 404, "this server does not run v2 inference");
		return;
	}
	int rc = api_v2_parse(API_V2_REQUEST, c->body.p, c->body.len, c->header_len, &c->msg,
			      err, sizeof(err));
	if (rc) {
		api_call_error(c, rc == -ENOMEM ? 500 : 400, "%s", rc == -ENOMEM ? "out of memory" : err);
		return;
	}
	c->v2.model = c->model;
	c->v2.msg = c->msg;
	c->v2.received_ns = api_now_ns();
	s->h.infer_v2(s->h.ctx, c, &c->v2);
}

static void meta_list(struct buf *b, const struct api_tensor_meta *t, int n)
{
	buf_put(b, "[", 1);
	for (int i = 0; i < n; i++) {
		const char *dn = tensor_dtype_name(t[i].dtype);
		buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		buf_json_string(b, t[i].name);
		buf_puts(b, ",\"datatype\":");
		buf_json_string(b, dn ? dn : "BYTES");
		buf_puts(b, ",\"shape\":[");
		for (int d = 0; d < t[i].ndim; d++)
			buf_printf(b, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
		buf_puts(b, "]}");
	}
	buf_put(b, "]", 1);
}

void api_route_v2_model(struct api_call *c, int ready_only)
{
	struct api_server *s = c->srv;
	const struct api_model *m = c->model;
	struct buf b = {0};
	int ready = !s->h.ready || s->h.ready(s->h.ctx, m) == 1;

	if (ready_only && !ready) {
		api_call_error(c, 503, "model '%s' is not ready", m->name);
		return;
	}
	buf_puts(&b, "{\"name\":");
	buf_json_string(&b, m->name);
	if (ready_only) {
		buf_puts(&b, ",\"ready\":true}\n");
	} else {
		buf_puts(&b, ",\"versions\":[");
		buf_json_string(&b, m->version ? m->version : "1");
		buf_puts(&b, "],\"platform\":");
		buf_json_string(&b, m->platform ? m->platform : "onnx");
		buf_puts(&b, ",\"inputs\":");
		meta_list(&b, m->inputs, m->n_inputs);
		buf_puts(&b, ",\"outputs\":");
		if (m->listed_outputs)
			meta_list(&b, m->listed_outputs, m->n_listed_outputs);
		else
			meta_list(&b, m->outputs, m->n_outputs);
		if (m->params_json) {
			buf_puts(&b, ",\"parameters\":");
			buf_puts(&b, m->params_json);
		}
		buf_puts(&b, "}\n");
	}
	if (b.oom) {
		free(b.p);
		api_call_error(c, 500, "out of memory");
		return;
	}
	api_call_respond(c, 200, "application/json", b.p, b.len);
}

void api_route_v2_server(struct api_call *c)
{
	struct buf b = {0};

	buf_puts(&b, "{\"name\":\"splitd\",\"version\":");
	buf_json_string(&b, c->srv->version);
	buf_puts(&b, ",\"extensions\":[\"binary_tensor_data\"]}\n");
	if (b.oom) {
		free(b.p);
		api_call_error(c, 500, "out of memory");
		return;
	}
	api_call_respond(c, 200, "application/json", b.p, b.len);
}
