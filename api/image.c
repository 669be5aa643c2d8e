/* JPEG (TurboJPEG) and PNG (libspng) decoding with size limits checked
 * before any pixel is decoded, and per-model preprocessing into float32. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>
#include <turbojpeg.h>

#include "api-impl.h"
#include "err.h"

#define DEFAULT_MAX_PIXELS (40ll * 1000 * 1000)
#define MAX_SIDE 32768

static pthread_key_t tj_key;
static pthread_once_t tj_once = PTHREAD_ONCE_INIT;

static void tj_destroy(void *h)
{
	tjDestroy(h);
}

static void tj_key_init(void)
{
	pthread_key_create(&tj_key, tj_destroy);
}

/* One decompressor per thread, freed when the thread ends. */
static tjhandle tj_handle(void)
{
	pthread_once(&tj_once, tj_key_init);
	tjhandle h = pthread_getspecific(tj_key);
	if (!h) {
		h = tjInitDecompress();
		if (h)
			pthread_setspecific(tj_key, h);
	}
	return h;
}

/* Throw this thread's decompressor away after any error or warning: an error
 * that longjmps out of jpeg_read_header() (tjDecompressHeader3 does not abort
 * the decompressor then) leaves it mid-header, and the next image on the
 * thread, however valid, would be read as the rest of that header ("Unsupported
 * marker type"). A fresh handle is the only reset TurboJPEG offers. */
static void tj_drop(void)
{
	tjhandle h = pthread_getspecific(tj_key);

	if (h) {
		pthread_setspecific(tj_key, NULL);
		tjDestroy(h);
	}
}

static int decode_jpeg(const void *buf, size_t len, int64_t max_pixels, uint8_t **rgb,
		       int *w, int *h, char *err, size_t errlen)
{
	tjhandle tj = tj_handle();
	int sub = -1, cs = -1, width = 0, height = 0, rc = -EINVAL;
	uint8_t *p = NULL;

	if (!tj)
		return -ENOMEM;
	if (len > 0xffffffffu) {
		snprintf(err, errlen, "JPEG of %zu bytes is too large", len);
		return -EINVAL;
	}
	if (tjDecompressHeader3(tj, buf, (unsigned long)len, &width, &height, &sub, &cs)) {
		snprintf(err, errlen, "JPEG header does not decode: %s", tjGetErrorStr2(tj));
		goto out;
	}
	/* a tables-only stream (or one cut short after its SOI, where the
	 * source manager inserts an EOI) "succeeds" without an image: the
	 * outputs are left as they were, so they start at 0 above */
	if (width <= 0 || height <= 0) {
		snprintf(err, errlen, "JPEG has no image (a tables-only or truncated stream)");
		goto out;
	}
	if (width > MAX_SIDE || height > MAX_SIDE || (int64_t)width * height > max_pixels) {
		snprintf(err, errlen, "JPEG of %dx%d exceeds the limit of %lld pixels", width, height,
			 (long long)max_pixels);
		goto out;
	}
	p = malloc((size_t)width * (size_t)height * 3);
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	if (tjDecompress2(tj, buf, (unsigned long)len, p, width, 0, height, TJPF_RGB, 0)) {
		/* warnings (e.g. premature end) still give an image; errors do not */
		if (tjGetErrorCode(tj) != TJERR_WARNING) {
			snprintf(err, errlen, "JPEG does not decode: %s", tjGetErrorStr2(tj));
			free(p);
			p = NULL;
			goto out;
		}
		tj_drop();	/* the image is complete; the handle starts afresh */
		tj = NULL;
	}
	*w = width;
	*h = height;
	*rgb = p;
	return 0;
out:
	if (tj)
		tj_drop();
	return rc;
}

/* libspng keeps no state between images: a context per call. */
static int decode_png(const void *buf, size_t len, int64_t max_pixels, uint8_t **rgb,
		      int *w, int *h, char *err, size_t errlen)
{
	spng_ctx *ctx = spng_ctx_new(0);
	struct spng_ihdr ihdr;
	uint8_t *p = NULL;
	size_t n;
	int rc = -EINVAL, e;

	if (!ctx)
		return -ENOMEM;
	spng_set_image_limits(ctx, MAX_SIDE, MAX_SIDE);
	spng_set_chunk_limits(ctx, 1u << 20, 64u << 20);
	if ((e = spng_set_png_buffer(ctx, buf, len)) || (e = spng_get_ihdr(ctx, &ihdr))) {
		snprintf(err, errlen, "PNG header does not decode: %s", spng_strerror(e));
		goto out;
	}
	if ((int64_t)ihdr.width * ihdr.height > max_pixels) {
		snprintf(err, errlen, "PNG of %ux%u exceeds the limit of %lld pixels", ihdr.width,
			 ihdr.height, (long long)max_pixels);
		goto out;
	}
	if ((e = spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &n))) {
		snprintf(err, errlen, "PNG does not decode: %s", spng_strerror(e));
		goto out;
	}
	p = malloc(n);
	if (!p) {
		rc = -ENOMEM;
		goto out;
	}
	if ((e = spng_decode_image(ctx, p, n, SPNG_FMT_RGB8, 0))) {
		snprintf(err, errlen, "PNG does not decode: %s", spng_strerror(e));
		goto out;
	}
	*w = (int)ihdr.width;
	*h = (int)ihdr.height;
	*rgb = p;
	p = NULL;
	rc = 0;
out:
	free(p);
	spng_ctx_free(ctx);
	return rc;
}

int api_image_decode_rgb(const void *buf, size_t len, int64_t max_pixels, uint8_t **rgb,
			 int *width, int *height, char *err, size_t errlen)
{
	const unsigned char *b = buf;

	*rgb = NULL;
	*width = *height = 0;
	if (max_pixels <= 0)
		max_pixels = DEFAULT_MAX_PIXELS;
	if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
		return decode_jpeg(buf, len, max_pixels, rgb, width, height, err, errlen);
	if (len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8))
		return decode_png(buf, len, max_pixels, rgb, width, height, err, errlen);
	snprintf(err, errlen, "the body is neither a JPEG nor a PNG image");
	return -EINVAL;
}

/* source index and weight per destination index, half-pixel centres */
static void axis(int in, int out, int *i0, int *i1, float *lam)
{
	float scale = (float)in / (float)out;

	for (int d = 0; d < out; d++) {
		float s = scale * ((float)d + 0.5f) - 0.5f;
		if (s < 0)
			s = 0;
		int x = (int)s;
		if (x > in - 1)
			x = in - 1;
		i0[d] = x;
		i1[d] = x + (x < in - 1);
		lam[d] = s - (float)x;
	}
}

int api_image_fit(int w, int h, const struct api_preprocess *p, struct api_image_info *info)
{
	int W = p->width, H = p->height;
	int nw = W, nh = H, px = 0, py = 0;

	if (w <= 0 || h <= 0 || W <= 0 || H <= 0 || W > MAX_SIDE || H > MAX_SIDE)
		return -EINVAL;
	if (p->resize == API_RESIZE_LETTERBOX) {
		double r = fmin((double)W / w, (double)H / h);
		nw = (int)lround(w * r);
		nh = (int)lround(h * r);
		nw = nw < 1 ? 1 : nw > W ? W : nw;
		nh = nh < 1 ? 1 : nh > H ? H : nh;
		px = (W - nw) / 2;
		py = (H - nh) / 2;
	}
	*info = (struct api_image_info){ .src_width = w, .src_height = h, .scale = (float)nw / (float)w,
					 .pad_x = px, .pad_y = py, .resized_width = nw, .resized_height = nh };
	return 0;
}

int api_image_preprocess(const uint8_t *rgb, int w, int h, const struct api_preprocess *p,
			 struct tensor_view *out, struct api_image_info *info)
{
	int W = p->width, H = p->height;
	struct api_image_info fit;
	float a[3], b[3], sc = p->scale ? p->scale : 1.0f;

	memset(out, 0, sizeof(*out));
	if (api_image_fit(w, h, p, &fit) < 0)
		return -EINVAL;
	int nw = fit.resized_width, nh = fit.resized_height, px = fit.pad_x, py = fit.pad_y;
	if (info)
		*info = fit;
	for (int c = 0; c < 3; c++) {
		float sd = p->std[c] ? p->std[c] : 1.0f;
		a[c] = sc / sd;
		b[c] = -p->mean[c] / sd;
	}
	size_t plane = (size_t)W * H;
	float *t = malloc(plane * 3 * sizeof(float));
	int *x0 = malloc(sizeof(int) * (size_t)(nw + nh) * 2);
	float *lx = malloc(sizeof(float) * (size_t)(nw + nh));
	if (!t || !x0 || !lx) {
		free(t);
		free(x0);
		free(lx);
		return -ENOMEM;
	}
	int *x1 = x0 + nw, *y0 = x1 + nw, *y1 = y0 + nh;
	float *ly = lx + nw;
	axis(w, nw, x0, x1, lx);
	axis(h, nh, y0, y1, ly);
	/* channel c of the output reads source channel src[c] */
	int src[3] = {0, 1, 2};
	if (p->bgr) {
		src[0] = 2;
		src[2] = 0;
	}
	if (p->resize == API_RESIZE_LETTERBOX) {
		for (int c = 0; c < 3; c++) {
			float v = p->pad_value * a[c] + b[c];
			for (size_t i = 0; i < plane; i++)
				t[p->nhwc ? i * 3 + (size_t)c : (size_t)c * plane + i] = v;
		}
	}
	for (int y = 0; y < nh; y++) {
		const uint8_t *r0 = rgb + (size_t)y0[y] * w * 3, *r1 = rgb + (size_t)y1[y] * w * 3;
		float wy = ly[y];
		size_t row = (size_t)(y + py) * W + px;
		for (int x = 0; x < nw; x++) {
			float wx = lx[x];
			const uint8_t *p00 = r0 + x0[x] * 3, *p01 = r0 + x1[x] * 3;
			const uint8_t *p10 = r1 + x0[x] * 3, *p11 = r1 + x1[x] * 3;
			for (int c = 0; c < 3; c++) {
				int s = src[c];
				float top = p00[s] + wx * (p01[s] - p00[s]);
				float bot = p10[s] + wx * (p11[s] - p10[s]);
				float v = (top + wy * (bot - top)) * a[c] + b[c];
				size_t i = row + (size_t)x;
				t[p->nhwc ? i * 3 + (size_t)c : (size_t)c * plane + i] = v;
			}
		}
	}
	free(x0);
	free(lx);
	out->dtype = TENSOR_F32;
	out->ndim = 4;
	out->shape[0] = 1;
	out->shape[1] = p->nhwc ? H : 3;
	out->shape[2] = p->nhwc ? W : H;
	out->shape[3] = p->nhwc ? 3 : W;
	out->data = t;
	return 0;
}

int api_image_to_tensor(const void *buf, size_t len, const struct api_preprocess *p,
			struct tensor_view *out, struct api_image_info *info,
			char *err, size_t errlen)
{
	uint8_t *rgb = NULL;
	int w = 0, h = 0, rc;

	memset(out, 0, sizeof(*out));
	rc = api_image_decode_rgb(buf, len, p->max_pixels, &rgb, &w, &h, err, errlen);
	if (rc)
		return rc;
	rc = api_image_preprocess(rgb, w, h, p, out, info);
	if (rc == -EINVAL)
		snprintf(err, errlen, "the model's preprocessing has no valid input size");
	free(rgb);
	return rc;
}

/* Packed RGB8 -> PNG (lossless: api_image_decode_rgb gives the same
 * pixels back). zlib level 1 with the up filter: a camera frame is sent
 * once, so encoding time counts more than the last percent of size. */
int api_image_encode_png(const uint8_t *rgb, int width, int height, void **png, size_t *len,
			 char *err, size_t errlen)
{
	struct spng_ihdr ihdr = { .width = (uint32_t)width, .height = (uint32_t)height, .bit_depth = 8,
				  .color_type = SPNG_COLOR_TYPE_TRUECOLOR };
	spng_ctx *ctx;
	size_t n;
	void *buf;
	int e;

	if (!rgb || width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE)
		return err_set(-EINVAL, err, errlen, "PNG of %dx%d: not an image size", width, height);
	if (!(ctx = spng_ctx_new(SPNG_CTX_ENCODER)))
		return -ENOMEM;
	n = (size_t)width * (size_t)height * 3;
	if ((e = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1)) ||
	    (e = spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 1)) ||
	    (e = spng_set_option(ctx, SPNG_FILTER_CHOICE, SPNG_FILTER_CHOICE_UP)) ||
	    (e = spng_set_ihdr(ctx, &ihdr)) ||
	    (e = spng_encode_image(ctx, rgb, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE)) ||
	    !(buf = spng_get_png_buffer(ctx, &n, &e))) {
		spng_ctx_free(ctx);
		return err_set(e == SPNG_EMEM ? -ENOMEM : -EIO, err, errlen, "PNG encode: %s", spng_strerror(e));
	}
	spng_ctx_free(ctx);
	*png = buf;
	*len = n;
	return 0;
}
