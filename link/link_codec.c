/* The offload link's tensor codec (see link_codec.h for the error bounds):
 * encoding names, compression and the whole-tensor encode / decode; the
 * value conversions are link_values.c. */
#include "link_codec.h"
#include "link-impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lz4.h>
#include <zstd.h>
#include <zstd_errors.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the link's wire format is little-endian; add byte swapping for this target"
#endif

/* Largest tensor the codec accepts: 2^31 bytes decoded (LZ4's own limit is
 * just below that; no cut tensor of a robot model comes near). */
#define MAX_DECODED_BYTES ((size_t)LZ4_MAX_INPUT_SIZE)

/* ---- encoding descriptor ------------------------------------------------ */

static const char *const value_names[] = {
	[LINK_VALUE_F32] = "f32", [LINK_VALUE_F16] = "f16", [LINK_VALUE_I8] = "i8",
};
static const char *const comp_names[] = {
	[LINK_COMP_NONE] = "", [LINK_COMP_ZSTD] = "zstd", [LINK_COMP_LZ4] = "lz4",
};

int link_encoding_parse(const char *s, struct link_encoding *out)
{
	struct link_encoding e = { 0 };
	const char *plus, *colon;
	size_t vlen;
	int i, found = 0;

	if (!s || !out)
		return -EINVAL;
	plus = strchr(s, '+');
	vlen = plus ? (size_t)(plus - s) : strlen(s);
	for (i = 0; i <= LINK_VALUE_I8; i++) {
		if (strlen(value_names[i]) == vlen && !strncmp(s, value_names[i], vlen)) {
			e.value = (enum link_value)i;
			found = 1;
		}
	}
	if (!found)
		return -EINVAL;
	if (plus) {
		const char *c = plus + 1;
		size_t clen;

		colon = strchr(c, ':');
		clen = colon ? (size_t)(colon - c) : strlen(c);
		found = 0;
		for (i = LINK_COMP_ZSTD; i <= LINK_COMP_LZ4; i++) {
			if (strlen(comp_names[i]) == clen && !strncmp(c, comp_names[i], clen)) {
				e.comp = (enum link_comp)i;
				found = 1;
			}
		}
		if (!found)
			return -EINVAL;
		if (colon) {
			char *end;
			long lv;

			errno = 0;
			lv = strtol(colon + 1, &end, 10);
			if (errno || end == colon + 1 || *end || lv < 1 ||
			    lv > (e.comp == LINK_COMP_ZSTD ? 19 : 65537))
				return -EINVAL;
			e.level = (int)lv;
		}
	}
	*out = e;
	return 0;
}

int link_encoding_format(const struct link_encoding *e, char *buf, size_t len)
{
	int n;

	if (!e || !buf || (unsigned)e->value > LINK_VALUE_I8 || (unsigned)e->comp > LINK_COMP_LZ4)
		return -EINVAL;
	if (e->comp == LINK_COMP_NONE)
		n = snprintf(buf, len, "%s", value_names[e->value]);
	else if (e->level > 1)
		n = snprintf(buf, len, "%s+%s:%d", value_names[e->value], comp_names[e->comp], e->level);
	else
		n = snprintf(buf, len, "%s+%s", value_names[e->value], comp_names[e->comp]);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

struct link_encoding link_encoding_effective(const struct link_encoding *e,
					     enum tensor_dtype dtype)
{
	struct link_encoding r = *e;

	if (dtype != TENSOR_F32)
		r.value = LINK_VALUE_F32;
	return r;
}

size_t link_value_size(enum link_value v, enum tensor_dtype dtype)
{
	if (dtype != TENSOR_F32)
		return tensor_dtype_size(dtype);
	switch (v) {
	case LINK_VALUE_F16: return 2;
	case LINK_VALUE_I8: return 1;
	default: return 4;
	}
}

/* numel of a shape, or -1 when a dim is negative or the bytes overflow the
 * codec's limit. */
static int64_t checked_numel(const struct tensor_view *v, size_t elem)
{
	int64_t n = 1;

	if (v->ndim < 0 || v->ndim > TENSOR_MAX_DIMS || !elem)
		return -1;
	for (int i = 0; i < v->ndim; i++) {
		if (v->shape[i] < 0)
			return -1;
		if (v->shape[i] && n > (int64_t)(MAX_DECODED_BYTES / elem) / v->shape[i])
			return -1;
		n *= v->shape[i];
	}
	return n;
}

/* ---- compression contexts (one per thread, kept) ------------------------- */

/* Kept per thread, freed when the thread ends (libmicrohttpd may run a
 * thread per connection). */
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static pthread_key_t cctx_key, dctx_key;
static int ctx_keys_ok;

static void free_cctx(void *p) { ZSTD_freeCCtx(p); }
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }

static void make_ctx_keys(void)
{
	ctx_keys_ok = !pthread_key_create(&cctx_key, free_cctx) &&
		      !pthread_key_create(&dctx_key, free_dctx);
}

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *c;

	pthread_once(&ctx_once, make_ctx_keys);
	if (!ctx_keys_ok)
		return NULL;
	if (!(c = pthread_getspecific(cctx_key)) && (c = ZSTD_createCCtx()) &&
	    pthread_setspecific(cctx_key, c)) {
		ZSTD_freeCCtx(c);
		c = NULL;
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *d;

	pthread_once(&ctx_once, make_ctx_keys);
	if (!ctx_keys_ok)
		return NULL;
	if (!(d = pthread_getspecific(dctx_key)) && (d = ZSTD_createDCtx()) &&
	    pthread_setspecific(dctx_key, d)) {
		ZSTD_freeDCtx(d);
		d = NULL;
	}
	return d;
}

static int compress(const struct link_encoding *e, const void *src, size_t n,
		    void *dst, size_t cap, size_t *len)
{
	if (e->comp == LINK_COMP_ZSTD) {
		ZSTD_CCtx *cctx = thread_cctx();
		size_t r;

		if (!cctx)
			return -ENOMEM;
		r = ZSTD_compressCCtx(cctx, dst, cap, src, n, e->level > 0 ? e->level : 1);
		if (ZSTD_isError(r))
			return ZSTD_getErrorCode(r) == ZSTD_error_dstSize_tooSmall ? -ENOSPC : -EIO;
		*len = r;
		return 0;
	}
	if (e->comp == LINK_COMP_LZ4) {
		int r;

		if (n > (size_t)LZ4_MAX_INPUT_SIZE)
			return -EINVAL;
		r = LZ4_compress_fast(src, dst, (int)n, cap > INT_MAX ? INT_MAX : (int)cap,
				      e->level > 0 ? e->level : 1);
		if (r <= 0 && n)
			return -ENOSPC;
		*len = (size_t)r;
		return 0;
	}
	if (cap < n)
		return -ENOSPC;
	if (n)
		memcpy(dst, src, n);
	*len = n;
	return 0;
}

static int decompress(const struct link_encoding *e, const void *src, size_t len,
		      void *dst, size_t expect, char *err, size_t errlen)
{
	if (e->comp == LINK_COMP_ZSTD) {
		unsigned long long content;
		size_t frame, r;

		content = ZSTD_getFrameContentSize(src, len);
		if (content == ZSTD_CONTENTSIZE_ERROR || content == ZSTD_CONTENTSIZE_UNKNOWN)
			return err_set(-EBADMSG, err, errlen, "zstd stream of %zu bytes has no valid frame header", len);
		if (content != expect)
			return err_set(-EBADMSG, err, errlen, "zstd frame declares %llu bytes, the tensor needs %zu",
				content, expect);
		frame = ZSTD_findFrameCompressedSize(src, len);
		if (ZSTD_isError(frame) || frame != len)
			return err_set(-EBADMSG, err, errlen, "zstd stream of %zu bytes is not exactly one frame", len);
		ZSTD_DCtx *dctx = thread_dctx();

		if (!dctx)
			return -ENOMEM;
		r = ZSTD_decompressDCtx(dctx, dst, expect, src, len);
		if (ZSTD_isError(r) || r != expect)
			return err_set(-EBADMSG, err, errlen, "zstd stream does not decode: %s",
				ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short output");
		return 0;
	}
	if (e->comp == LINK_COMP_LZ4) {
		int r;

		if (len > (size_t)INT_MAX || expect > (size_t)LZ4_MAX_INPUT_SIZE)
			return err_set(-EBADMSG, err, errlen, "lz4 block of %zu bytes is too large", len);
		r = LZ4_decompress_safe(src, dst, (int)len, (int)expect);
		if (r < 0 || (size_t)r != expect)
			return err_set(-EBADMSG, err, errlen, "lz4 block of %zu bytes does not decode to the %zu bytes the tensor needs",
				len, expect);
		return 0;
	}
	if (len != expect)
		return err_set(-EBADMSG, err, errlen, "tensor data is %zu bytes, its shape and encoding need %zu", len, expect);
	if (expect)
		memcpy(dst, src, expect);
	return 0;
}

/* ---- encode / decode ---------------------------------------------------- */

size_t link_encode_bound(const struct tensor_view *v, const struct link_encoding *e)
{
	struct link_encoding eff = link_encoding_effective(e, v->dtype);
	size_t elem = link_value_size(eff.value, v->dtype);
	int64_t n = checked_numel(v, elem ? elem : 1);
	size_t raw;

	if (n < 0 || !elem)
		return 0;
	raw = (size_t)n * elem;
	if (eff.comp == LINK_COMP_ZSTD)
		return ZSTD_compressBound(raw);
	if (eff.comp == LINK_COMP_LZ4)
		return (size_t)LZ4_compressBound((int)raw);
	return raw;
}

int link_encode(const struct tensor_view *v, const struct link_encoding *e,
		void *dst, size_t cap, size_t *len, float *scale)
{
	struct link_encoding eff;
	size_t elem, n;
	int64_t numel;
	void *tmp = NULL;
	const void *payload;
	int r;

	if (!v || !e || !len || (!dst && cap) || (unsigned)e->value > LINK_VALUE_I8 ||
	    (unsigned)e->comp > LINK_COMP_LZ4 || !tensor_dtype_size(v->dtype))
		return -EINVAL;
	eff = link_encoding_effective(e, v->dtype);
	elem = link_value_size(eff.value, v->dtype);
	numel = checked_numel(v, tensor_dtype_size(v->dtype));
	if (numel < 0 || (numel && !v->data))
		return -EINVAL;
	n = (size_t)numel;
	if (scale)
		*scale = 1.0f;
	if (eff.value == LINK_VALUE_F32) {
		payload = v->data;
	} else {
		/* convert straight into dst when it is not compressed afterwards */
		if (eff.comp == LINK_COMP_NONE) {
			if (cap < n * elem)
				return -ENOSPC;
			tmp = dst;
		} else if (!(tmp = malloc(n ? n * elem : 1))) {
			return -ENOMEM;
		}
		if (eff.value == LINK_VALUE_F16) {
			if (link_f16_encode(v->data, tmp, n, 1)) {
				r = -ERANGE;
				goto out;
			}
		} else {
			float s = 0.0f;

			if ((r = link_i8_scale_of(v->data, n, &s)) < 0)
				goto out;
			link_i8_encode(v->data, tmp, n, s);
			if (scale)
				*scale = s;
		}
		payload = tmp;
		if (eff.comp == LINK_COMP_NONE) {
			*len = n * elem;
			r = 0;
			goto out;
		}
	}
	r = compress(&eff, payload, n * elem, dst, cap, len);
out:
	if (tmp != dst)
		free(tmp);
	return r;
}

int link_decode(const void *src, size_t len, const struct link_encoding *e,
		float scale, struct tensor_view *out, char *err, size_t errlen)
{
	size_t dsz, elem, n, expect;
	int64_t numel;
	void *tmp = NULL;
	int r;

	if (!e || !out || (!src && len) || (unsigned)e->value > LINK_VALUE_I8 ||
	    (unsigned)e->comp > LINK_COMP_LZ4)
		return err_set(-EINVAL, err, errlen, "invalid decode arguments");
	dsz = tensor_dtype_size(out->dtype);
	if (!dsz)
		return err_set(-EINVAL, err, errlen, "tensor dtype %d is not supported on the link", (int)out->dtype);
	if (e->value != LINK_VALUE_F32 && out->dtype != TENSOR_F32)
		return err_set(-EBADMSG, err, errlen, "encoding %s applies to FP32 tensors only, this one is %s",
			value_names[e->value], tensor_dtype_name(out->dtype));
	numel = checked_numel(out, dsz);
	if (numel < 0)
		return err_set(-EBADMSG, err, errlen, "tensor shape is negative or larger than %zu bytes", MAX_DECODED_BYTES);
	n = (size_t)numel;
	if (n && !out->data)
		return err_set(-EINVAL, err, errlen, "no output buffer");
	elem = link_value_size(e->value, out->dtype);
	expect = n * elem;
	if (e->value == LINK_VALUE_I8 && !(scale >= 0.0f && scale <= 3.4028235e38f))
		return err_set(-EBADMSG, err, errlen, "int8 scale %g is not a finite non-negative number", (double)scale);
	/* Before any allocation: a stream cannot expand beyond what its
	 * compressor allows, so reject sizes that are plainly impossible. */
	if (e->comp == LINK_COMP_NONE && len != expect)
		return err_set(-EBADMSG, err, errlen, "tensor data is %zu bytes, its shape and encoding %s need %zu",
			len, value_names[e->value], expect);
	if (e->comp == LINK_COMP_LZ4 && expect / 255 > len + 16)
		return err_set(-EBADMSG, err, errlen, "lz4 block of %zu bytes cannot hold %zu bytes", len, expect);
	if (e->value == LINK_VALUE_F32)
		return decompress(e, src, len, out->data, expect, err, errlen);
	if (e->comp == LINK_COMP_NONE) {
		tmp = (void *)src;	/* read in place */
	} else {
		if (!(tmp = malloc(expect ? expect : 1)))
			return err_set(-ENOMEM, err, errlen, "out of memory decoding %zu bytes", expect);
		if ((r = decompress(e, src, len, tmp, expect, err, errlen)) < 0)
			goto out;
	}
	if (e->value == LINK_VALUE_F16) {
		if (((uintptr_t)tmp & 1u) == 0) {
			link_f16_to_f32(tmp, out->data, n);
		} else {
			/* unaligned in the body: convert through a small aligned window */
			uint16_t win[512];
			float *o = out->data;

			for (size_t i = 0; i < n; i += 512) {
				size_t m = n - i < 512 ? n - i : 512;

				memcpy(win, (const uint8_t *)tmp + 2 * i, 2 * m);
				link_f16_to_f32(win, o + i, m);
			}
		}
	} else {
		link_i8_decode(tmp, out->data, n, scale);
	}
	r = 0;
out:
	if (tmp != src)
		free(tmp);
	return r;
}

/* ---- measured error ----------------------------------------------------- */

int link_codec_error(const struct tensor_view *v, const struct link_encoding *e,
		     struct link_error *out)
{
	struct link_encoding eff;
	struct tensor_view d;
	size_t cap, len = 0, n;
	void *buf = NULL;
	float *y = NULL, scale = 1.0f;
	double sum2 = 0.0, maxx = 0.0, maxe = 0.0;
	int64_t nfin = 0, bad = 0;
	int r;

	if (!v || !e || !out || v->dtype != TENSOR_F32)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	eff = link_encoding_effective(e, v->dtype);
	cap = link_encode_bound(v, e);
	n = (size_t)tensor_numel(v);
	if (!(buf = malloc(cap ? cap : 1)) || !(y = malloc(n ? n * 4 : 4))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = link_encode(v, e, buf, cap, &len, &scale)) < 0)
		goto out;
	d = *v;
	d.data = y;
	if ((r = link_decode(buf, len, &eff, scale, &d, NULL, 0)) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		float x = ((const float *)v->data)[i], z = y[i];

		if (!isfinite(x)) {
			if (isnan(x) ? !isnan(z) : z != x)
				bad++;
			continue;
		}
		if (!isfinite(z)) {
			bad++;
			continue;
		}
		double diff = fabs((double)z - (double)x);

		maxe = diff > maxe ? diff : maxe;
		maxx = fabs((double)x) > maxx ? fabs((double)x) : maxx;
		sum2 += diff * diff;
		nfin++;
	}
	out->max_abs = maxe;
	out->max_abs_x = maxx;
	out->max_rel = maxx > 0.0 ? maxe / maxx : 0.0;
	out->rms = nfin ? sqrt(sum2 / (double)nfin) : 0.0;
	out->nonfinite_mismatch = bad;
	out->encoded_bytes = len;
	out->raw_bytes = n * 4;
	out->scale = scale;
	switch (eff.value) {
	case LINK_VALUE_F16:
		out->bound_abs = maxx * 0x1p-11 > 0x1p-25 ? maxx * 0x1p-11 : 0x1p-25;
		break;
	case LINK_VALUE_I8:
		out->bound_abs = (double)scale * (0.5 + 0x1p-15);
		break;
	default:
		out->bound_abs = 0.0;
	}
	r = 0;
out:
	free(buf);
	free(y);
	return r;
}
