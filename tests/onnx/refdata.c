#include "refdata.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int known_dtype(int d)
{
	return tensor_dtype_size((enum tensor_dtype)d) != 0;
}

int ref_tensor_load(const char *dir, const json_t *entry, struct ref_tensor *t,
		    char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(entry, "name"));
	const char *file = json_string_value(json_object_get(entry, "file"));
	json_t *shape = json_object_get(entry, "shape");
	int dtype = (int)json_integer_value(json_object_get(entry, "dtype"));
	char path[4096];
	FILE *f = NULL;
	size_t bytes;
	long fsize;
	int ret = -EINVAL;

	memset(t, 0, sizeof(*t));
	if (!name || !json_is_array(shape) || json_array_size(shape) > TENSOR_MAX_DIMS) {
		snprintf(err, errlen, "bad tensor entry (name/shape)");
		goto out;
	}
	if (!file || !known_dtype(dtype)) {
		snprintf(err, errlen, "tensor '%s': dtype %d not readable", name, dtype);
		goto out;
	}
	t->name = strdup(name);
	t->v.dtype = (enum tensor_dtype)dtype;
	t->v.ndim = (int)json_array_size(shape);
	for (int i = 0; i < t->v.ndim; i++)
		t->v.shape[i] = json_integer_value(json_array_get(shape, (size_t)i));
	bytes = tensor_bytes(&t->v);
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		ret = -errno;
		goto out;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (fsize = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    (size_t)fsize != bytes) {
		snprintf(err, errlen, "%s: size does not match shape (%zu bytes expected)", path, bytes);
		goto out;
	}
	t->v.data = malloc(bytes ? bytes : 1);
	if (!t->v.data || !t->name) {
		ret = -ENOMEM;
		goto out;
	}
	if (bytes && fread(t->v.data, 1, bytes, f) != bytes) {
		snprintf(err, errlen, "read %s failed", path);
		ret = -EIO;
		goto out;
	}
	ret = 0;
out:
	if (f)
		fclose(f);
	if (ret)
		ref_tensor_fini(t);
	return ret;
}

void ref_tensor_fini(struct ref_tensor *t)
{
	if (!t)
		return;
	free(t->name);
	free(t->v.data);
	memset(t, 0, sizeof(*t));
}

static double half_to_double(uint16_t h)
{
	int e = (h >> 10) & 0x1f, m = h & 0x3ff;
	double s = (h & 0x8000) ? -1.0 : 1.0;

	if (e == 0)
		return s * ldexp(m, -24);
	if (e == 31)
		return m ? NAN : s * INFINITY;
	return s * ldexp(m + 1024, e - 25);
}

static int is_float(enum tensor_dtype d)
{
	return d == TENSOR_F32 || d == TENSOR_F64 || d == TENSOR_F16;
}

static double elem(const struct tensor_view *v, int64_t i)
{
	switch (v->dtype) {
	case TENSOR_F32: return ((const float *)v->data)[i];
	case TENSOR_F64: return ((const double *)v->data)[i];
	case TENSOR_F16: return half_to_double(((const uint16_t *)v->data)[i]);
	case TENSOR_U8: return ((const uint8_t *)v->data)[i];
	case TENSOR_I8: return ((const int8_t *)v->data)[i];
	case TENSOR_I32: return ((const int32_t *)v->data)[i];
	case TENSOR_I64: return (double)((const int64_t *)v->data)[i];
	case TENSOR_BOOL: return ((const uint8_t *)v->data)[i] != 0;
	default: return NAN;
	}
}

const char *ref_shape_str(const struct tensor_view *v, char *buf, size_t len)
{
	size_t o = 0;

	o += (size_t)snprintf(buf + o, len - o, "[");
	for (int i = 0; i < v->ndim && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "",
				      (long long)v->shape[i]);
	if (o < len)
		snprintf(buf + o, len - o, "]");
	return buf;
}

static int same_layout(const struct tensor_view *got, const struct tensor_view *want,
		       char *msg, size_t msglen)
{
	char a[128], b[128];

	if (got->dtype != want->dtype) {
		snprintf(msg, msglen, "dtype %d, want %d", got->dtype, want->dtype);
		return -EINVAL;
	}
	if (got->ndim != want->ndim ||
	    memcmp(got->shape, want->shape, sizeof(int64_t) * (size_t)want->ndim) != 0) {
		snprintf(msg, msglen, "shape %s, want %s", ref_shape_str(got, a, sizeof(a)),
			 ref_shape_str(want, b, sizeof(b)));
		return -EINVAL;
	}
	if (tensor_numel(want) > 0 && !got->data) {
		snprintf(msg, msglen, "no data");
		return -EINVAL;
	}
	return 0;
}

static void describe(const struct ref_cmp *r, int64_t n, char *msg, size_t msglen)
{
	snprintf(msg, msglen, "%lld/%lld elements off; worst at %lld: got %.9g want %.9g; "
		 "max abs err %.3g, max |ref| %.3g",
		 (long long)r->n_bad, (long long)n, (long long)r->worst, r->worst_got,
		 r->worst_want, r->max_abs_err, r->max_abs_ref);
}

int ref_compare_allclose(const struct tensor_view *got, const struct tensor_view *want,
			 double rtol, double atol, struct ref_cmp *res,
			 char *msg, size_t msglen)
{
	struct ref_cmp r = { 0 };
	double worst_excess = -1;
	int64_t n = tensor_numel(want);
	int ret;

	msg[0] = 0;
	ret = same_layout(got, want, msg, msglen);
	if (ret)
		return ret;
	for (int64_t i = 0; i < n; i++) {
		double g = elem(got, i), w = elem(want, i), d, tol;

		if (fabs(w) > r.max_abs_ref)
			r.max_abs_ref = fabs(w);
		if (isnan(g) && isnan(w))
			continue;
		if (is_float(want->dtype)) {
			if (isinf(w) || isinf(g)) {
				d = (g == w) ? 0 : INFINITY;
				tol = 0;
			} else {
				d = fabs(g - w);
				tol = atol + rtol * fabs(w);
			}
		} else {
			d = fabs(g - w);
			tol = 0;
		}
		if (isnan(d))
			d = INFINITY;
		if (d > r.max_abs_err)
			r.max_abs_err = d;
		if (d > 0 && (tol > 0 ? d / tol : INFINITY) > r.margin)
			r.margin = tol > 0 ? d / tol : INFINITY;
		if (d > tol) {
			r.n_bad++;
			if (d - tol > worst_excess) {
				worst_excess = d - tol;
				r.worst = i;
				r.worst_got = g;
				r.worst_want = w;
			}
		}
	}
	if (res)
		*res = r;
	if (r.n_bad) {
		describe(&r, n, msg, msglen);
		return 1;
	}
	return 0;
}

int ref_compare_rel(const struct tensor_view *got, const struct tensor_view *want,
		    double rel, struct ref_cmp *res, char *msg, size_t msglen)
{
	struct ref_cmp r = { 0 };
	int64_t n = tensor_numel(want);
	double tol;
	int ret;

	msg[0] = 0;
	ret = same_layout(got, want, msg, msglen);
	if (ret)
		return ret;
	for (int64_t i = 0; i < n; i++) {
		double w = elem(want, i);

		if (fabs(w) > r.max_abs_ref)
			r.max_abs_ref = fabs(w);
	}
	tol = rel * r.max_abs_ref;
	for (int64_t i = 0; i < n; i++) {
		double g = elem(got, i), w = elem(want, i), d = fabs(g - w);

		if (isnan(d))
			d = INFINITY;
		if (d > r.max_abs_err) {
			r.max_abs_err = d;
			r.worst = i;
			r.worst_got = g;
			r.worst_want = w;
		}
		if (d > tol)
			r.n_bad++;
	}
	if (res)
		*res = r;
	if (r.n_bad) {
		describe(&r, n, msg, msglen);
		return 1;
	}
	return 0;
}

int ref_read_lines(const char *path, char ***lines, int *n)
{
	FILE *f = fopen(path, "r");
	char buf[1024];
	char **v = NULL;
	int cnt = 0, cap = 0;

	*lines = NULL;
	*n = 0;
	if (!f)
		return -errno;
	while (fgets(buf, sizeof(buf), f)) {
		char *s = buf, *e, *h = strchr(buf, '#');

		if (h)
			*h = 0;
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			*--e = 0;
		if (!*s)
			continue;
		if (cnt + 2 > cap) {
			char **nv;

			cap = cap ? cap * 2 : 64;
			nv = realloc(v, sizeof(*v) * (size_t)cap);
			if (!nv)
				goto nomem;
			v = nv;
		}
		v[cnt] = strdup(s);
		if (!v[cnt])
			goto nomem;
		v[++cnt] = NULL;
	}
	fclose(f);
	if (!v) {
		v = calloc(1, sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	*lines = v;
	*n = cnt;
	return 0;
nomem:
	fclose(f);
	ref_lines_free(v);
	return -ENOMEM;
}

void ref_lines_free(char **lines)
{
	if (!lines)
		return;
	for (char **p = lines; *p; p++)
		free(*p);
	free(lines);
}
