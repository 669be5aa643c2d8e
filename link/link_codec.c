/* The offload link's tensor codec (see link_codec.h for the error bounds). */
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

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define HAVE_NEON 1
#endif

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

/* ---- float16 ------------------------------------------------------------ */

uint16_t link_f32_to_f16_ref(float f)
{
	uint32_t x, ax, sign;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000u;
	ax = x & 0x7fffffffu;
	if (ax >= 0x7f800000u) {
		if (ax > 0x7f800000u)	/* nan: quiet it, keep the payload's top bits */
			return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
		return (uint16_t)(sign | 0x7c00u);
	}
	if (ax >= 0x477ff000u)	/* >= 65520: rounds past 65504 */
		return (uint16_t)(sign | 0x7c00u);
	if (ax >= 0x38800000u) {	/* half normal range, >= 2^-14 */
		ax += 0xfffu + ((ax >> 13) & 1u);	/* round to nearest even */
		ax -= 112u << 23;			/* rebias 127 -> 15 */
		return (uint16_t)(sign | (ax >> 13));
	}
	/* half subnormal: m = round_even(|x| * 2^24), |x| = sig * 2^(e - 150) */
	{
		uint32_t e = ax >> 23, sig, q, rem, half;
		unsigned shift;

		if (e < 102)	/* |x| < 2^-25: rounds to zero */
			return (uint16_t)sign;
		sig = (ax & 0x7fffffu) | 0x800000u;
		shift = 126u - e;	/* 14..24 */
		q = sig >> shift;
		rem = sig & ((1u << shift) - 1u);
		half = 1u << (shift - 1u);
		if (rem > half || (rem == half && (q & 1u)))
			q++;
		return (uint16_t)(sign | q);
	}
}

float link_f16_to_f32_ref(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, x;
	float f;

	if (e == 0) {
		f = (float)m * 0x1p-24f;
		return sign ? -f : f;
	}
	if (e == 31)
		x = sign | 0x7f800000u | (m << 13);
	else
		x = sign | ((e + 112u) << 23) | (m << 13);
	memcpy(&f, &x, 4);
	return f;
}

#if HAVE_X86
static int have_f16c(void)
{
	static int cached = -1;
	unsigned a, b, c, d;
	int ok = 0;

	if (cached >= 0)
		return cached;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		/* F16C (29), AVX (28), OSXSAVE (27), and the OS saves YMM state */
		if ((c & (1u << 29)) && (c & (1u << 28)) && (c & (1u << 27))) {
			unsigned lo, hi;

			__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
			ok = (lo & 6u) == 6u;
		}
	}
	cached = ok;
	return ok;
}

__attribute__((target("avx,f16c")))
static size_t f32_to_f16_f16c(const float *src, uint16_t *dst, size_t n, int *overflow)
{
	size_t i = 0;
	const __m128i expmask = _mm_set1_epi16(0x7c00);

	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(src + i);
		__m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT);

		_mm_storeu_si128((__m128i *)(void *)(dst + i), h);
		if (overflow && _mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, expmask), expmask))) {
			for (size_t j = i; j < i + 8; j++)
				if (isfinite(src[j]) && (dst[j] & 0x7fffu) == 0x7c00u)
					*overflow = 1;
		}
	}
	return i;
}

__attribute__((target("avx,f16c")))
static size_t f16_to_f32_f16c(const uint16_t *src, float *dst, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m128i h = _mm_loadu_si128((const __m128i *)(const void *)(src + i));

		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
	}
	return i;
}
#endif

#if HAVE_NEON
static size_t f32_to_f16_neon(const float *src, uint16_t *dst, size_t n, int *overflow)
{
	size_t i = 0;
	const uint16x4_t expmask = vdup_n_u16(0x7c00);

	for (; i + 4 <= n; i += 4) {
		uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i)));

		vst1_u16(dst + i, h);
		if (overflow && vmaxv_u16(vceq_u16(vand_u16(h, expmask), expmask))) {
			for (size_t j = i; j < i + 4; j++)
				if (isfinite(src[j]) && (dst[j] & 0x7fffu) == 0x7c00u)
					*overflow = 1;
		}
	}
	return i;
}

static size_t f16_to_f32_neon(const uint16_t *src, float *dst, size_t n)
{
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
	return i;
}
#endif

/* Returns 1 when a finite input overflowed to inf (only checked if asked). */
static int f32_to_f16(const float *src, uint16_t *dst, size_t n, int check)
{
	int overflow = 0;
	size_t i = 0;

#if HAVE_X86
	if (have_f16c())
		i = f32_to_f16_f16c(src, dst, n, check ? &overflow : NULL);
#elif HAVE_NEON
	i = f32_to_f16_neon(src, dst, n, check ? &overflow : NULL);
#endif
	for (; i < n; i++) {
		dst[i] = link_f32_to_f16_ref(src[i]);
		if (check && (dst[i] & 0x7fffu) == 0x7c00u && isfinite(src[i]))
			overflow = 1;
	}
	return overflow;
}

void link_f32_to_f16(const float *src, uint16_t *dst, size_t n)
{
	(void)f32_to_f16(src, dst, n, 0);
}

void link_f16_to_f32(const uint16_t *src, float *dst, size_t n)
{
	size_t i = 0;

#if HAVE_X86
	if (have_f16c())
		i = f16_to_f32_f16c(src, dst, n);
#elif HAVE_NEON
	i = f16_to_f32_neon(src, dst, n);
#endif
	for (; i < n; i++)
		dst[i] = link_f16_to_f32_ref(src[i]);
}

const char *link_f16_impl(void)
{
#if HAVE_X86
	return have_f16c() ? "f16c" : "portable";
#elif HAVE_NEON
	return "neon";
#else
	return "portable";
#endif
}

/* ---- int8 --------------------------------------------------------------- */

/* Vector paths: SSE2 (the x86-64 baseline) and NEON. Each handles a prefix
 * of whole vectors and returns its length; the scalar loops finish. The
 * conversions round to nearest even (MXCSR / FPCR default), as the scalar
 * magic-number rounding does, so both give identical bytes. */
#if defined(__SSE2__)
static size_t maxabs_vec(const float *x, size_t n, float *m, int *bad)
{
	const __m128 absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
	const __m128 big = _mm_set1_ps(3.4028235e38f);
	__m128 acc = _mm_setzero_ps(), nf = _mm_setzero_ps();
	float t[4];
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		__m128 a = _mm_and_ps(_mm_loadu_ps(x + i), absmask);

		nf = _mm_or_ps(nf, _mm_cmpnle_ps(a, big));	/* inf, or nan (unordered) */
		acc = _mm_max_ps(acc, a);
	}
	_mm_storeu_ps(t, acc);
	for (int k = 0; k < 4; k++)
		*m = t[k] > *m ? t[k] : *m;
	*bad |= _mm_movemask_ps(nf) != 0;
	return i;
}

static size_t quantize_vec(const float *x, int8_t *q, size_t n, float inv)
{
	const __m128 vi = _mm_set1_ps(inv), hi = _mm_set1_ps(127.0f), lo = _mm_set1_ps(-127.0f);
	__m128i v[4];
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		for (int k = 0; k < 4; k++) {
			__m128 r = _mm_mul_ps(_mm_loadu_ps(x + i + 4 * k), vi);

			v[k] = _mm_cvtps_epi32(_mm_max_ps(_mm_min_ps(r, hi), lo));
		}
		_mm_storeu_si128((__m128i *)(void *)(q + i),
				 _mm_packs_epi16(_mm_packs_epi32(v[0], v[1]), _mm_packs_epi32(v[2], v[3])));
	}
	return i;
}

static size_t dequantize_vec(const int8_t *q, float *x, size_t n, float scale)
{
	const __m128 s = _mm_set1_ps(scale);
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(q + i));
		__m128i l = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
		__m128i h = _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8);
		__m128i w[4] = {
			_mm_srai_epi32(_mm_unpacklo_epi16(l, l), 16), _mm_srai_epi32(_mm_unpackhi_epi16(l, l), 16),
			_mm_srai_epi32(_mm_unpacklo_epi16(h, h), 16), _mm_srai_epi32(_mm_unpackhi_epi16(h, h), 16),
		};

		for (int k = 0; k < 4; k++)
			_mm_storeu_ps(x + i + 4 * k, _mm_mul_ps(_mm_cvtepi32_ps(w[k]), s));
	}
	return i;
}
#elif HAVE_NEON
static size_t maxabs_vec(const float *x, size_t n, float *m, int *bad)
{
	const float32x4_t big = vdupq_n_f32(3.4028235e38f);
	float32x4_t acc = vdupq_n_f32(0.0f);
	uint32x4_t nf = vdupq_n_u32(0);
	size_t i = 0;

	for (; i + 4 <= n; i += 4) {
		float32x4_t a = vabsq_f32(vld1q_f32(x + i));

		nf = vorrq_u32(nf, vmvnq_u32(vcleq_f32(a, big)));	/* inf or nan */
		acc = vmaxq_f32(acc, a);
	}
	*bad |= vmaxvq_u32(nf) != 0;
	if (!*bad) {
		float t = vmaxvq_f32(acc);

		*m = t > *m ? t : *m;
	}
	return i;
}

static size_t quantize_vec(const float *x, int8_t *q, size_t n, float inv)
{
	const float32x4_t hi = vdupq_n_f32(127.0f), lo = vdupq_n_f32(-127.0f);
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		int16x4_t h[4];

		for (int k = 0; k < 4; k++) {
			float32x4_t r = vmulq_n_f32(vld1q_f32(x + i + 4 * k), inv);

			h[k] = vqmovn_s32(vcvtnq_s32_f32(vmaxq_f32(vminq_f32(r, hi), lo)));
		}
		vst1q_s8(q + i, vcombine_s8(vqmovn_s16(vcombine_s16(h[0], h[1])),
					    vqmovn_s16(vcombine_s16(h[2], h[3]))));
	}
	return i;
}

static size_t dequantize_vec(const int8_t *q, float *x, size_t n, float scale)
{
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		int8x16_t v = vld1q_s8(q + i);
		int16x8_t l = vmovl_s8(vget_low_s8(v)), h = vmovl_s8(vget_high_s8(v));
		int32x4_t w[4] = { vmovl_s16(vget_low_s16(l)), vmovl_s16(vget_high_s16(l)),
				   vmovl_s16(vget_low_s16(h)), vmovl_s16(vget_high_s16(h)) };

		for (int k = 0; k < 4; k++)
			vst1q_f32(x + i + 4 * k, vmulq_n_f32(vcvtq_f32_s32(w[k]), scale));
	}
	return i;
}
#else
static size_t maxabs_vec(const float *x, size_t n, float *m, int *bad)
{
	(void)x; (void)n; (void)m; (void)bad;
	return 0;
}

static size_t quantize_vec(const float *x, int8_t *q, size_t n, float inv)
{
	(void)x; (void)q; (void)n; (void)inv;
	return 0;
}

static size_t dequantize_vec(const int8_t *q, float *x, size_t n, float scale)
{
	(void)q; (void)x; (void)n; (void)scale;
	return 0;
}
#endif

/* Returns -EDOM on a non-finite element; else the scale in *scale. */
static int i8_scale(const float *x, size_t n, float *scale)
{
	float m = 0.0f, s;
	int bad = 0;
	size_t i = maxabs_vec(x, n, &m, &bad);

	for (; i < n; i++) {
		float a = fabsf(x[i]);

		bad |= !(a <= 3.4028235e38f);	/* inf or nan */
		m = a > m ? a : m;
	}
	if (bad)
		return -EDOM;
	s = m / 127.0f;
	/* keep m / s <= 127.5 so no element needs clamping (matters only when
	 * s lost precision as a float subnormal) */
	for (int k = 0; k < 8 && s > 0.0f && (double)m / s > 127.49; k++)
		s = nextafterf(s, INFINITY);
	*scale = s;
	return 0;
}

/* The portable rounding, exposed for the tests: q = rne(clamp(x * inv)). */
static int8_t quantize_one(float x, float inv)
{
	const float magic = 12582912.0f;	/* 1.5 * 2^23: round to nearest even */
	float r = x * inv;

	r = r > 127.0f ? 127.0f : r;
	r = r < -127.0f ? -127.0f : r;
	r = (r + magic) - magic;
	return (int8_t)(int)r;
}

static void i8_quantize(const float *x, int8_t *q, size_t n, float scale)
{
	const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
	size_t i = quantize_vec(x, q, n, inv);

	for (; i < n; i++)
		q[i] = quantize_one(x[i], inv);
}

static void i8_dequantize(const int8_t *q, float *x, size_t n, float scale)
{
	size_t i = dequantize_vec(q, x, n, scale);

	for (; i < n; i++)
		x[i] = (float)q[i] * scale;
}

void link_i8_quantize_ref(const float *x, int8_t *q, size_t n, float scale)
{
	const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;

	for (size_t i = 0; i < n; i++)
		q[i] = quantize_one(x[i], inv);
}

int link_i8_scale(const float *x, size_t n, float *scale)
{
	return i8_scale(x, n, scale);
}

void link_i8_quantize(const float *x, int8_t *q, size_t n, float scale)
{
	i8_quantize(x, q, n, scale);
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
			return link_err(-EBADMSG, err, errlen, "zstd stream of %zu bytes has no valid frame header", len);
		if (content != expect)
			return link_err(-EBADMSG, err, errlen, "zstd frame declares %llu bytes, the tensor needs %zu",
				content, expect);
		frame = ZSTD_findFrameCompressedSize(src, len);
		if (ZSTD_isError(frame) || frame != len)
			return link_err(-EBADMSG, err, errlen, "zstd stream of %zu bytes is not exactly one frame", len);
		ZSTD_DCtx *dctx = thread_dctx();

		if (!dctx)
			return -ENOMEM;
		r = ZSTD_decompressDCtx(dctx, dst, expect, src, len);
		if (ZSTD_isError(r) || r != expect)
			return link_err(-EBADMSG, err, errlen, "zstd stream does not decode: %s",
				ZSTD_isError(r) ? ZSTD_getErrorName(r) : "short output");
		return 0;
	}
	if (e->comp == LINK_COMP_LZ4) {
		int r;

		if (len > (size_t)INT_MAX || expect > (size_t)LZ4_MAX_INPUT_SIZE)
			return link_err(-EBADMSG, err, errlen, "lz4 block of %zu bytes is too large", len);
		r = LZ4_decompress_safe(src, dst, (int)len, (int)expect);
		if (r < 0 || (size_t)r != expect)
			return link_err(-EBADMSG, err, errlen, "lz4 block of %zu bytes does not decode to the %zu bytes the tensor needs",
				len, expect);
		return 0;
	}
	if (len != expect)
		return link_err(-EBADMSG, err, errlen, "tensor data is %zu bytes, its shape and encoding need %zu", len, expect);
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
			if (f32_to_f16(v->data, tmp, n, 1)) {
				r = -ERANGE;
				goto out;
			}
		} else {
			float s = 0.0f;

			if ((r = i8_scale(v->data, n, &s)) < 0)
				goto out;
			i8_quantize(v->data, tmp, n, s);
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
		return link_err(-EINVAL, err, errlen, "invalid decode arguments");
	dsz = tensor_dtype_size(out->dtype);
	if (!dsz)
		return link_err(-EINVAL, err, errlen, "tensor dtype %d is not supported on the link", (int)out->dtype);
	if (e->value != LINK_VALUE_F32 && out->dtype != TENSOR_F32)
		return link_err(-EBADMSG, err, errlen, "encoding %s applies to FP32 tensors only, this one is %s",
			value_names[e->value], tensor_dtype_name(out->dtype));
	numel = checked_numel(out, dsz);
	if (numel < 0)
		return link_err(-EBADMSG, err, errlen, "tensor shape is negative or larger than %zu bytes", MAX_DECODED_BYTES);
	n = (size_t)numel;
	if (n && !out->data)
		return link_err(-EINVAL, err, errlen, "no output buffer");
	elem = link_value_size(e->value, out->dtype);
	expect = n * elem;
	if (e->value == LINK_VALUE_I8 && !(scale >= 0.0f && scale <= 3.4028235e38f))
		return link_err(-EBADMSG, err, errlen, "int8 scale %g is not a finite non-negative number", (double)scale);
	/* Before any allocation: a stream cannot expand beyond what its
	 * compressor allows, so reject sizes that are plainly impossible. */
	if (e->comp == LINK_COMP_NONE && len != expect)
		return link_err(-EBADMSG, err, errlen, "tensor data is %zu bytes, its shape and encoding %s need %zu",
			len, value_names[e->value], expect);
	if (e->comp == LINK_COMP_LZ4 && expect / 255 > len + 16)
		return link_err(-EBADMSG, err, errlen, "lz4 block of %zu bytes cannot hold %zu bytes", len, expect);
	if (e->value == LINK_VALUE_F32)
		return decompress(e, src, len, out->data, expect, err, errlen);
	if (e->comp == LINK_COMP_NONE) {
		tmp = (void *)src;	/* read in place */
	} else {
		if (!(tmp = malloc(expect ? expect : 1)))
			return link_err(-ENOMEM, err, errlen, "out of memory decoding %zu bytes", expect);
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
		i8_dequantize(tmp, out->data, n, scale);
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
