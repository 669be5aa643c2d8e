/* NumPy .npy (format 1.0, 2.0, 3.0) reader and writer, C order only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api-impl.h"

#define NPY_MAX_HEADER 65536
#define NPY_MAX_NUMEL ((int64_t)1 << 40)

static const struct {
	char kind;
	int size;
	enum tensor_dtype dt;
} npy_types[] = {
	{'f', 4, TENSOR_F32}, {'f', 2, TENSOR_F16}, {'f', 8, TENSOR_F64},
	{'u', 1, TENSOR_U8}, {'i', 1, TENSOR_I8}, {'b', 1, TENSOR_BOOL},
	{'i', 4, TENSOR_I32}, {'i', 8, TENSOR_I64},
};

struct hp {
	const char *p, *e;
};

static void ws(struct hp *h)
{
	while (h->p < h->e && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n'))
		h->p++;
}

static int eat(struct hp *h, char ch)
{
	ws(h);
	if (h->p < h->e && *h->p == ch) {
		h->p++;
		return 1;
	}
	return 0;
}

/* a quoted python string into out */
static int str(struct hp *h, char *out, size_t n)
{
	ws(h);
	if (h->p >= h->e || (*h->p != '\'' && *h->p != '"'))
		return -1;
	char q = *h->p++;
	size_t l = 0;
	while (h->p < h->e && *h->p != q) {
		if (*h->p == '\\' || l + 1 >= n)
			return -1;
		out[l++] = *h->p++;
	}
	if (h->p >= h->e)
		return -1;
	h->p++;
	out[l] = 0;
	return 0;
}

static int word(struct hp *h, const char *w)
{
	size_t l = strlen(w);

	ws(h);
	if ((size_t)(h->e - h->p) >= l && !memcmp(h->p, w, l)) {
		h->p += l;
		return 1;
	}
	return 0;
}

static int shape_tuple(struct hp *h, struct tensor_view *t)
{
	if (!eat(h, '('))
		return -1;
	t->ndim = 0;
	for (;;) {
		if (eat(h, ')'))
			return 0;
		if (t->ndim == TENSOR_MAX_DIMS)
			return -1;
		ws(h);
		int64_t v = 0;
		const char *s = h->p;
		while (h->p < h->e && *h->p >= '0' && *h->p <= '9') {
			v = v * 10 + (*h->p++ - '0');
			if (v > NPY_MAX_NUMEL)
				return -1;
		}
		if (h->p == s)
			return -1;
		word(h, "L");	/* python 2 longs */
		t->shape[t->ndim++] = v;
		if (eat(h, ','))
			continue;
		if (eat(h, ')'))
			return 0;
		return -1;
	}
}

int api_npy_parse(const void *buf, size_t len, struct tensor_view *out, void **copy,
		  char *err, size_t errlen)
{
	const unsigned char *b = buf;
	size_t hlen, off;
	char descr[16] = "";
	int have_descr = 0, have_order = 0, have_shape = 0, fortran = 0, swap = 0, ti = -1;

	memset(out, 0, sizeof(*out));
	*copy = NULL;
	if (len < 10 || memcmp(b, "\x93NUMPY", 6)) {
		snprintf(err, errlen, "not an npy file (no \\x93NUMPY magic)");
		return -EINVAL;
	}
	if (b[6] == 1) {
		hlen = (size_t)b[8] | (size_t)b[9] << 8;
		off = 10;
	} else if (b[6] == 2 || b[6] == 3) {
		if (len < 12)
			goto short_file;
		hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
		off = 12;
	} else {
		snprintf(err, errlen, "npy format version %d.%d is not 1, 2 or 3", b[6], b[7]);
		return -EINVAL;
	}
	if (hlen > NPY_MAX_HEADER) {
		snprintf(err, errlen, "npy header of %zu bytes is too long", hlen);
		return -EINVAL;
	}
	if (len - off < hlen)
		goto short_file;
	struct hp h = {(const char *)b + off, (const char *)b + off + hlen};
	if (!eat(&h, '{'))
		goto bad_header;
	while (!eat(&h, '}')) {
		char key[32];
		if (str(&h, key, sizeof(key)) || !eat(&h, ':'))
			goto bad_header;
		if (!strcmp(key, "descr") && !have_descr++) {
			if (str(&h, descr, sizeof(descr)))
				goto bad_header;
		} else if (!strcmp(key, "fortran_order") && !have_order++) {
			if (word(&h, "True"))
				fortran = 1;
			else if (!word(&h, "False"))
				goto bad_header;
		} else if (!strcmp(key, "shape") && !have_shape++) {
			if (shape_tuple(&h, out))
				goto bad_header;
		} else {
			goto bad_header;
		}
		if (!eat(&h, ',')) {
			if (!eat(&h, '}'))
				goto bad_header;
			break;
		}
	}
	ws(&h);
	if (h.p != h.e || !have_descr || !have_order || !have_shape)
		goto bad_header;
	if (fortran) {
		snprintf(err, errlen, "npy in Fortran order is not supported (save C order)");
		return -EINVAL;
	}
	if (strlen(descr) == 3 && (descr[0] == '<' || descr[0] == '>' || descr[0] == '|' ||
				   descr[0] == '=') && descr[2] >= '1' && descr[2] <= '8') {
		for (size_t i = 0; i < sizeof(npy_types) / sizeof(npy_types[0]); i++)
			if (npy_types[i].kind == descr[1] && npy_types[i].size == descr[2] - '0')
				ti = (int)i;
	}
	if (ti < 0 || (descr[0] == '|' && npy_types[ti].size != 1)) {
		snprintf(err, errlen, "npy dtype '%s' is not supported (f2 f4 f8 i1 u1 b1 i4 i8)", descr);
		return -EINVAL;
	}
	swap = descr[0] == '>' && npy_types[ti].size > 1;
	out->dtype = npy_types[ti].dt;
	int64_t numel = 1;
	for (int i = 0; i < out->ndim; i++) {
		if (out->shape[i] && numel > NPY_MAX_NUMEL / out->shape[i]) {
			snprintf(err, errlen, "npy shape is too large");
			return -EINVAL;
		}
		numel *= out->shape[i];
	}
	size_t es = (size_t)npy_types[ti].size, need = (size_t)numel * es;
	off += hlen;
	if (len - off != need) {
		snprintf(err, errlen, "npy data is %zu bytes, its shape and dtype need %zu",
			 len - off, need);
		return -EINVAL;
	}
	const unsigned char *d = b + off;
	if (!swap && ((uintptr_t)d % es) == 0) {
		out->data = (void *)d;
		return 0;
	}
	unsigned char *c = malloc(need ? need : 1);
	if (!c)
		return -ENOMEM;
	if (swap) {
		for (size_t i = 0; i < need; i += es)
			for (size_t k = 0; k < es; k++)
				c[i + k] = d[i + es - 1 - k];
	} else {
		memcpy(c, d, need);
	}
	*copy = c;
	out->data = c;
	return 0;
short_file:
	snprintf(err, errlen, "npy file is truncated");
	return -EINVAL;
bad_header:
	snprintf(err, errlen, "npy header is not a {'descr', 'fortran_order', 'shape'} dict");
	return -EINVAL;
}

int api_npy_write(const struct tensor_view *t, char **out, size_t *len)
{
	char dict[512];
	const char *descr = NULL;
	int n;

	*out = NULL;
	*len = 0;
	switch (t->dtype) {
	case TENSOR_F32: descr = "<f4"; break;
	case TENSOR_F16: descr = "<f2"; break;
	case TENSOR_F64: descr = "<f8"; break;
	case TENSOR_U8: descr = "|u1"; break;
	case TENSOR_I8: descr = "|i1"; break;
	case TENSOR_BOOL: descr = "|b1"; break;
	case TENSOR_I32: descr = "<i4"; break;
	case TENSOR_I64: descr = "<i8"; break;
	default: return -EINVAL;
	}
	if (t->ndim < 0 || t->ndim > TENSOR_MAX_DIMS)
		return -EINVAL;
	n = snprintf(dict, sizeof(dict), "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
	for (int i = 0; i < t->ndim; i++)
		n += snprintf(dict + n, sizeof(dict) - (size_t)n, "%lld,%s", (long long)t->shape[i],
			      i + 1 < t->ndim ? " " : "");
	if (t->ndim > 1)	/* "(3,)" for one dim, "(1, 3)" for more */
		n--;
	n += snprintf(dict + n, sizeof(dict) - (size_t)n, "), }");
	size_t hl = (size_t)n + 1;	/* + '\n' */
	size_t total_h = (10 + hl + 63) / 64 * 64;
	size_t data = tensor_bytes(t);
	char *b = malloc(total_h + data);
	if (!b)
		return -ENOMEM;
	memcpy(b, "\x93NUMPY\x01\x00", 8);
	size_t field = total_h - 10;
	b[8] = (char)(field & 0xff);
	b[9] = (char)(field >> 8);
	memcpy(b + 10, dict, (size_t)n);
	memset(b + 10 + n, ' ', total_h - 10 - (size_t)n - 1);
	b[total_h - 1] = '\n';
	if (data)
		memcpy(b + total_h, t->data, data);
	*out = b;
	*len = total_h + data;
	return 0;
}
