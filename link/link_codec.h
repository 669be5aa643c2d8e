/* The offload link's tensor codec: how a cut tensor travels.
 *
 * A float32 tensor leaves the robot as
 *   f32  the bytes as they are (exact);
 *   f16  IEEE 754 binary16, round to nearest even (F16C on x86-64, NEON on
 *        aarch64, a portable routine elsewhere);
 *   i8   symmetric int8 with one scale per tensor: scale = max|x| / 127,
 *        q = round_half_even(x / scale) in [-127, 127], x' = q * scale;
 * each optionally compressed with zstd or lz4 ("f16+zstd", "i8+lz4", ...).
 * Tensors of other dtypes travel raw ("f32" means "the tensor's own bytes").
 *
 * Error each encoding adds (x finite, x' = decode(encode(x)), per element):
 *   f32  0.
 *   f16  |x' - x| <= 2^-11 |x|  for 2^-14 <= |x| <= 65504 (half normals),
 *        |x' - x| <= 2^-25      for |x| < 2^-14 (half subnormals);
 *        inf and nan pass through (nan stays a nan). A finite |x| >= 65520
 *        would become inf: link_encode() refuses it with -ERANGE instead.
 *   i8   |x' - x| <= scale * (1/2 + 2^-15): scale/2 from rounding x / scale
 *        to an integer, plus float32 rounding of x * (1/scale) and of
 *        q * scale (together < 2.3e-5 scale); a non-finite x is refused
 *        with -EDOM.
 * Compression is lossless. link_codec_error() measures the error of a round
 * trip on real data and returns the analytical bound beside it.
 *
 * Decoding faces the network: every size is checked against the size the
 * shape implies, decompression never writes past it, and a stream that
 * decodes to any other size is -EBADMSG with err set. */
#ifndef SPLITD_LINK_CODEC_H
#define SPLITD_LINK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

enum link_value {
	LINK_VALUE_F32 = 0,
	LINK_VALUE_F16,
	LINK_VALUE_I8,
};

enum link_comp {
	LINK_COMP_NONE = 0,
	LINK_COMP_ZSTD,
	LINK_COMP_LZ4,
};

struct link_encoding {
	enum link_value value;
	enum link_comp comp;
	int level;		/* zstd level (0 = 1, fast); lz4: acceleration (0 = 1) */
};

#define LINK_ENCODING_STRLEN 24

/* "f32", "f16", "i8", optionally "+zstd" or "+lz4", optionally ":LEVEL"
 * after the compressor ("f16+zstd:3"). Returns 0 or -EINVAL. */
int link_encoding_parse(const char *s, struct link_encoding *out);
/* Canonical form; returns the length or -ENOSPC. */
int link_encoding_format(const struct link_encoding *e, char *buf, size_t len);
/* Bytes per element of the value encoding for a tensor of dtype (after the
 * raw rule for non-float tensors): 4, 2 or 1. */
size_t link_value_size(enum link_value v, enum tensor_dtype dtype);
/* The encoding actually used for a tensor of dtype: lossy value encodings
 * apply to TENSOR_F32 only, others fall back to LINK_VALUE_F32 (raw). */
struct link_encoding link_encoding_effective(const struct link_encoding *e,
					     enum tensor_dtype dtype);

/* Worst-case encoded size of v (for sizing dst). */
size_t link_encode_bound(const struct tensor_view *v, const struct link_encoding *e);

/* Encode v with the effective encoding into dst (capacity cap, at least
 * link_encode_bound()). *len gets the encoded size, *scale the int8 scale
 * (1 otherwise). Returns 0, -ENOSPC, -ERANGE (f16 overflow), -EDOM (i8 of a
 * non-finite value), -EINVAL, -ENOMEM or -EIO (compressor). */
int link_encode(const struct tensor_view *v, const struct link_encoding *e,
		void *dst, size_t cap, size_t *len, float *scale);

/* Decode src (len bytes, as received) into out, whose dtype, shape and data
 * the caller sets: it receives exactly tensor_bytes(out) bytes. e is the
 * encoding the sender declared (the effective one), scale its int8 scale.
 * Returns 0, or -EBADMSG / -EINVAL / -ENOMEM with err set. */
int link_decode(const void *src, size_t len, const struct link_encoding *e,
		float scale, struct tensor_view *out, char *err, size_t errlen);

/* The error of one round trip of v through e, measured and bounded. */
struct link_error {
	double max_abs;		/* max |x' - x| over finite elements */
	double max_rel;		/* max |x' - x| / max|x| (0 when x is all zero) */
	double rms;		/* sqrt(mean (x' - x)^2) over finite elements */
	double bound_abs;	/* the analytical bound on max_abs for this tensor */
	double max_abs_x;	/* max |x| over finite elements */
	int64_t nonfinite_mismatch;	/* inf/nan not reproduced */
	size_t encoded_bytes;
	size_t raw_bytes;	/* bytes of the float32 tensor */
	float scale;
};
int link_codec_error(const struct tensor_view *v, const struct link_encoding *e,
		     struct link_error *out);

/* Bulk conversions (exposed for tests and benchmarks). The _ref variants are
 * the portable routines; the others pick F16C / NEON when present. */
void link_f32_to_f16(const float *src, uint16_t *dst, size_t n);
void link_f16_to_f32(const uint16_t *src, float *dst, size_t n);
uint16_t link_f32_to_f16_ref(float f);
float link_f16_to_f32_ref(uint16_t h);
/* int8 with a given scale (SSE2 / NEON, and the portable reference). */
/* The int8 scale of x (max|x| / 127, nudged so nothing clamps); -EDOM when
 * some element is not finite. */
int link_i8_scale(const float *x, size_t n, float *scale);
void link_i8_quantize(const float *x, int8_t *q, size_t n, float scale);
void link_i8_quantize_ref(const float *x, int8_t *q, size_t n, float scale);
/* Which routine link_f32_to_f16() uses: "f16c", "neon" or "portable". */
const char *link_f16_impl(void);

#endif
