/* The CUDA/cuDNN backend beyond its struct backend_ops table (issue 8).
 *
 * The table itself is `backend_cuda`, in libsplitd_cuda.so, which backend.c
 * opens when the build has SPLITD_HAVE_CUDA and a cuda backend is asked
 * for; everything else reaches the backend through the registry. These
 * functions are for code linked with libsplitd_cuda.so (tests/test_cuda.c). These few functions take the opaque per-inference context the
 * table's ctx_new() returned. All return 0 or a negative errno. */
#ifndef SPLITD_CUDA_H
#define SPLITD_CUDA_H

#include <stddef.h>
#include <stdint.h>

/* Number of usable CUDA devices, or -ENODEV when the driver or runtime
 * reports none (no GPU, no driver, CUDA_VISIBLE_DEVICES empty). */
int backend_cuda_device_count(void);

/* 1 while the context is usable; 0 once a sticky CUDA error (illegal
 * address, launch failure, ECC, lost device) has poisoned it: the caller
 * should free it and fall back to the CPU backend. */
int backend_cuda_healthy(const void *bctx);
/* The last failure recorded on the context ("cudnnConvolutionForward(...)
 * at conv_cuda.c:123: CUDNN_STATUS_BAD_PARAM"), "" when none. */
const char *backend_cuda_last_error(const void *bctx);

/* Pack n float32 of device memory for the link, writing host memory (see
 * link/link_codec.h for the encodings and their error bounds):
 *   f16: -ERANGE when a finite |x| >= 65520 (would become inf);
 *   i8:  *scale = max|x| / 127 (nudged up so no value clamps); -EDOM on a
 *        non-finite element.
 * Synchronous: on return the host bytes are complete. */
int backend_cuda_pack_f16(void *bctx, const float *dev_src, size_t n, uint16_t *host_dst);
int backend_cuda_pack_i8(void *bctx, const float *dev_src, size_t n, int8_t *host_dst,
			 float *scale);
/* The reverse, on the peer: host packed bytes -> device float32. */
int backend_cuda_unpack_f16(void *bctx, const uint16_t *host_src, size_t n, float *dev_dst);
int backend_cuda_unpack_i8(void *bctx, const int8_t *host_src, size_t n, float scale,
			   float *dev_dst);

#endif
