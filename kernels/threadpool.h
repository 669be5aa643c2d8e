/* A small explicit thread pool: tpool_run() calls fn(arg, index, count) on
 * every thread (the caller is index 0) and returns when all are done. */
#ifndef SPLITD_THREADPOOL_H
#define SPLITD_THREADPOOL_H

#include <stdint.h>

struct tpool;

/* Threads of a pool at most (the caller included): one bit each in the job
 * word, beside its 24-bit generation. */
#define TPOOL_MAX_THREADS 40

typedef void (*tpool_fn)(void *arg, int index, int count);

int tpool_new(int threads, struct tpool **out);
void tpool_free(struct tpool *p);
int tpool_threads(const struct tpool *p);
void tpool_run(struct tpool *p, tpool_fn fn, void *arg);

/* [*begin, *end) of n items for slice index of count. */
static inline void tpool_slice(int64_t n, int index, int count, int64_t *begin, int64_t *end)
{
	int64_t q = n / count, r = n % count;
	*begin = index * q + (index < r ? index : r);
	*end = *begin + q + (index < r);
}

#endif
