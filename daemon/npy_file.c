/* NumPy .npy reader and writer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy_file.h"

#define ERR(...) (snprintf(err, errlen, __VA_ARGS__), -EINVAL)

static const struct { const char *descr; enum tensor_dtype dt; } types[] = {
	{ "<f4", TENSOR_F32 }, { "<f8", TENSOR_F64 }, { "<i8", TENSOR_I64 }, { "<i4", TENSOR_I32 },
	{ "|u1", TENSOR_U8 }, { "|i1", TENSOR_I8 }, { "|b1", TENSOR_BOOL }, { "<f2", TENSOR_F16 },
};

static const char *dict_value(const char *h, const char *key)
{
	const char *p = strstr(h, key);
	if (!p)
		return NULL;
	p += strlen(key);
	while (*p == ' ' || *p == ':')
		p++;
	return p;
}

int npy_parse(const void *data, size_t len, struct tensor_view *out, char *err, size_t errlen)
{
	const unsigned char *b = data;
	char hdr[4096];
	size_t hlen, hoff;
	const char *v;

	memset(out, 0, sizeof(*out));
	if (len < 10 || memcmp(b, "\x93NUMPY", 6))
		return ERR("not a .npy file (bad magic)");
	if (b[6] == 1) {
		hlen = b[8] | (size_t)b[9] << 8;
		hoff = 10;
	} else if (b[6] == 2 || b[6] == 3) {
		if (len < 12)
			return ERR("truncated .npy header");
		hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
		hoff = 12;
	} else {
		return ERR(".npy format version %d is not supported", b[6]);
	}
	if (hlen >= sizeof(hdr) || hoff + hlen > len)
		return ERR("truncated or oversized .npy header");
	memcpy(hdr, b + hoff, hlen);
	hdr[hlen] = 0;
	if (!(v = dict_value(hdr, "'descr'")) || *v != '\'')
		return ERR(".npy header has no descr");
	int found = 0;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (!strncmp(v + 1, types[i].descr, 3) && v[4] == '\'') {
			out->dtype = types[i].dt;
			found = 1;
		}
	if (!found)
		return ERR(".npy dtype %.6s is not supported (little-endian f4, f8, i8, i4, u1, i1, b1)", v);
	if (!(v = dict_value(hdr, "'fortran_order'")) || strncmp(v, "False", 5))
		return ERR(".npy arrays must be in C order (fortran_order False)");
	if (!(v = dict_value(hdr, "'shape'")) || *v != '(')
		return ERR(".npy header has no shape");
	v++;
	size_t numel = 1;
	while (*v && *v != ')') {
		char *end;
		while (*v == ' ' || *v == ',')
			v++;
		if (*v == ')')
			break;
		long long d = strtoll(v, &end, 10);
		if (end == v || d < 0)
			return ERR(".npy shape is malformed");
		if (out->ndim == TENSOR_MAX_DIMS)
			return ERR(".npy array has more than %d dimensions", TENSOR_MAX_DIMS);
		out->shape[out->ndim++] = d;
		if (d && numel > len / (size_t)d)
			return ERR(".npy shape is larger than the file");
		numel *= (size_t)d;
		v = end;
	}
	size_t bytes = numel * tensor_dtype_size(out->dtype);
	if (len - hoff - hlen < bytes)
		return ERR(".npy data is truncated: %zu bytes for %zu needed", len - hoff - hlen, bytes);
	out->data = malloc(bytes ? bytes : 1);
	if (!out->data)
		return -ENOMEM;
	memcpy(out->data, b + hoff + hlen, bytes);
	return 0;
}

int npy_read(const char *path, struct tensor_view *out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long sz;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!f) {
		rc = -errno;
		snprintf(err, errlen, "open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		rc = ERR("%s: cannot determine its size", path);
		goto out;
	}
	buf = malloc(sz ? sz : 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	if (fread(buf, 1, sz, f) != (size_t)sz) {
		rc = ERR("read %s: short read", path);
		goto out;
	}
	rc = npy_parse(buf, sz, out, err, errlen);
out:
	free(buf);
	fclose(f);
	return rc;
}

int npy_write(const char *path, const struct tensor_view *v)
{
	const char *descr = NULL;
	char hdr[512], shape[256] = "";
	size_t off = 0;
	FILE *f;
	int rc = 0;

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].dt == v->dtype)
			descr = types[i].descr;
	if (!descr)
		return -EINVAL;
	for (int i = 0; i < v->ndim; i++)
		off += snprintf(shape + off, sizeof(shape) - off, "%lld,%s", (long long)v->shape[i],
				i + 1 < v->ndim ? " " : "");
	if (v->ndim > 1)	/* "(3,)" for one dim, "(1, 3)" otherwise */
		shape[off - 1] = 0;
	int n = snprintf(hdr, sizeof(hdr), "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
			 descr, shape);
	int total = 10 + n + 1;
	int pad = (64 - total % 64) % 64;
	f = fopen(path, "wb");
	if (!f)
		return -errno;
	unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
				  (unsigned char)((n + pad + 1) & 0xff), (unsigned char)((n + pad + 1) >> 8) };
	if (fwrite(pre, 1, 10, f) != 10 || fwrite(hdr, 1, n, f) != (size_t)n)
		rc = -EIO;
	for (int i = 0; i < pad && !rc; i++)
		if (fputc(' ', f) == EOF)
			rc = -EIO;
	if (!rc && fputc('\n', f) == EOF)
		rc = -EIO;
	size_t bytes = tensor_bytes(v);
	if (!rc && bytes && fwrite(v->data, 1, bytes, f) != bytes)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -EIO;
	return rc;
}
