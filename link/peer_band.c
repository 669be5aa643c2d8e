/* Banded (streamed) requests of the offload link (see peer_proto.h): band
 * geometry, checks and decoding, band by band or reordered whole. */
#include "peer_proto.h"
#include "link-impl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
		return err_set(-EBADMSG, err, errlen,
			    "input '%.64s' cannot travel banded: only float tensors of rank >= 2 "
			    "encoded f32, f16 or i8 without compression do", t->name);
	if (band_geom(t, &planes, &rows, &width) < 0)
		return err_set(-EBADMSG, err, errlen, "input '%.64s' has an absurd shape", t->name);
	if (!t->band_ends || t->n_band_ends != bands)
		return err_set(-EBADMSG, err, errlen, "input '%.64s': splitd_band_rows must list %d band ends",
			    t->name, bands);
	for (int b = 0; b < bands; b++) {
		if (t->band_ends[b] < prev || t->band_ends[b] > rows)
			return err_set(-EBADMSG, err, errlen,
				    "input '%.64s': splitd_band_rows must not decrease and stay within its %" PRId64
				    " rows", t->name, rows);
		prev = t->band_ends[b];
	}
	if (prev != rows)
		return err_set(-EBADMSG, err, errlen, "input '%.64s': the last band must end at row %" PRId64,
			    t->name, rows);
	if ((size_t)(planes * rows * width) * band_elem(t) + (size_t)bands * band_head(t) != t->len)
		return err_set(-EBADMSG, err, errlen, "input '%.64s': %zu bytes do not fit its shape and encoding",
			    t->name, t->len);
	return 0;
}

int peer_band_decode(const struct peer_tensor *t, int band, const void *seg, size_t len,
		     struct tensor_view *out, char *err, size_t errlen)
{
	int64_t planes, rows, width;
	int rc;

	if ((rc = peer_tensor_check_like(t, out, err, errlen)) < 0)
		return rc;
	if (out->dtype != TENSOR_F32 || !band_elem(t) || band_geom(t, &planes, &rows, &width) < 0 ||
	    !t->band_ends || band < 0 || band >= t->n_band_ends)
		return err_set(-EBADMSG, err, errlen, "input '%.64s' band %d cannot be decoded", t->name, band);
	int64_t r0 = band ? t->band_ends[band - 1] : 0, r1 = t->band_ends[band];
	if (len != peer_band_bytes(t, r0, r1))
		return err_set(-EBADMSG, err, errlen, "input '%.64s' band %d: %zu bytes, rows %" PRId64 "..%" PRId64
			    " take %zu", t->name, band, len, r0, r1, peer_band_bytes(t, r0, r1));
	const uint8_t *src = seg;
	float scale = 1;
	if (band_head(t)) {
		uint32_t u = (uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
			     (uint32_t)src[3] << 24;
		memcpy(&scale, &u, 4);
		src += 4;
		if (!(scale >= 0.0f && scale <= 3.4028234663852886e38f))
			return err_set(-EBADMSG, err, errlen,
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
		return err_set(-EINVAL, err, errlen, "band %d of input %d is not in the request", band, i);
	/* the slice (input k's bytes) where the segment starts */
	while (k < r->n_inputs && (!r->inputs[k].len || at >= base + r->inputs[k].len)) {
		base += r->inputs[k].len;
		k++;
	}
	if (len && k == r->n_inputs)
		return err_set(-EBADMSG, err, errlen, "input '%.64s' band %d lies past the binary part",
			    r->inputs[i].name, band);
	if (len && at + len <= base + r->inputs[k].len) {
		seg = (const uint8_t *)r->inputs[k].data + (at - base);
	} else if (len) {	/* it straddles slices, which may lie apart: gather it */
		size_t got = 0, from = at - base;

		if (!(copy = malloc(len)))
			return err_set(-ENOMEM, err, errlen, "out of memory decoding a band");
		for (; k < r->n_inputs && got < len; k++, from = 0) {
			size_t n = r->inputs[k].len - from < len - got ? r->inputs[k].len - from : len - got;

			if (n)
				memcpy(copy + got, (const uint8_t *)r->inputs[k].data + from, n);
			got += n;
		}
		if (got < len) {
			free(copy);
			return err_set(-EBADMSG, err, errlen, "input '%.64s' band %d runs past the binary part",
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
		return err_set(-EBADMSG, err, errlen, "a banded request needs 1 to %d inputs", PEER_MAX_TENSORS);
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
		return err_set(-ENOMEM, err, errlen, "out of memory reordering a banded request");
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
					return err_set(-EBADMSG, err, errlen,
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
		return err_set(-EBADMSG, err, errlen, "banded layout does not cover the binary part");
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
