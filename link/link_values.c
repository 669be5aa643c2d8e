/* The link's value encodings (see link_codec.h): float16 and int8, with
 * F16C / SSE2 on x86-64, NEON on aarch64 and portable routines. */
#include "link_codec.h"
#include "link-impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
int link_f16_encode(const float *src, uint16_t *dst, size_t n, int check)
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
	(void)link_f16_encode(src, dst, n, 0);
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
int link_i8_scale_of(const float *x, size_t n, float *scale)
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

void link_i8_encode(const float *x, int8_t *q, size_t n, float scale)
{
	const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
	size_t i = quantize_vec(x, q, n, inv);

	for (; i < n; i++)
		q[i] = quantize_one(x[i], inv);
}

void link_i8_decode(const int8_t *q, float *x, size_t n, float scale)
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
	return link_i8_scale_of(x, n, scale);
}

void link_i8_quantize(const float *x, int8_t *q, size_t n, float scale)
{
	link_i8_encode(x, q, n, scale);
}

