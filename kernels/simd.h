/* Vector helpers shared by the CPU kernels and the packed GEMM: run-time
 * clones of hot loops, and GCC vector types for loops the compiler would
 * not vectorise as written. */
#ifndef SPLITD_SIMD_H
#define SPLITD_SIMD_H

#include <stdint.h>

/* Hot loops are compiled for AVX-512, AVX2+FMA and baseline x86-64 and
 * picked at run time; aarch64 builds get NEON from plain -O3. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SPLITD_NO_CLONES)
#define CPU_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CPU_CLONES
#endif

/* 16 lanes as one GCC vector, for loops the compiler would not vectorise
 * as written: one zmm in an AVX-512 clone, two ymm in AVX2's, four xmm or
 * NEON registers elsewhere. v16sf_u: the same for unaligned loads and
 * stores through a pointer. (Passed by pointer or in macros only: a
 * function taking or returning them would have an ABI that depends on the
 * clone.) */
typedef float v16sf __attribute__((vector_size(64)));
typedef float v16sf_u __attribute__((vector_size(64), aligned(4)));
typedef int32_t v16si __attribute__((vector_size(64)));

/* 8 lanes: one ymm with AVX2 or AVX-512, two xmm or NEON registers
 * elsewhere (the 8 x 8 transposes of sgemm_packed_t's tiles). */
typedef float v8sf __attribute__((vector_size(32)));
typedef float v8sf_u __attribute__((vector_size(32), aligned(4)));

#endif
