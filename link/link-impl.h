/* What the files of link/ share and nobody else sees: the error idiom and
 * the parameter look-ups of the v2 codec. */
#ifndef SPLITD_LINK_IMPL_H
#define SPLITD_LINK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "peer_proto.h"

struct api_params;

/* Largest size of one tensor dimension on the wire. */
#define PEER_MAX_DIM ((int64_t)1 << 31)

/* The error idiom: err_set (common/err.h), the one every floor shares. */

/* The value encodings' bulk routines (link_values.c) the codec runs:
 * f32 -> f16 (check: -ERANGE on a finite value that would overflow), the
 * int8 scale (-EDOM on a non-finite value), quantize and dequantize. */
int link_f16_encode(const float *src, uint16_t *dst, size_t n, int check);
int link_i8_scale_of(const float *x, size_t n, float *scale);
void link_i8_encode(const float *x, int8_t *q, size_t n, float scale);
void link_i8_decode(const int8_t *q, float *x, size_t n, float scale);

/* The API's parse of a "parameters" object behind the look-ups. */
struct peer_params peer_params_api(const struct api_params *p);
/* The look-ups, with no parameters (or no such getter) as absent keys:
 * 0, -ENOENT or -EINVAL (see struct peer_params). */
int peer_param_int(const struct peer_params *p, const char *key, int64_t *out);
int peer_param_number(const struct peer_params *p, const char *key, double *out);
int peer_param_string(const struct peer_params *p, const char *key, const char **out);
int peer_param_bool(const struct peer_params *p, const char *key, int *out);
int peer_param_int_array(const struct peer_params *p, const char *key, int64_t *out, int max, int *n);
/* t's dtype and shape are out's: 0 or -EBADMSG naming both. */
int peer_tensor_check_like(const struct peer_tensor *t, const struct tensor_view *out, char *err,
			   size_t errlen);

#endif
