/* Thread pool: workers spin briefly on a generation counter, then sleep on
 * a condition variable, so back-to-back small ops cost no syscalls. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "threadpool.h"

#define SPIN_ITERS 20000

struct tpool {
	int n;			/* threads including the caller */
	pthread_t *tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic unsigned gen;
	_Atomic int pending;
	_Atomic int stop;
	_Atomic int sleepers;
	tpool_fn fn;
	void *arg;
	struct worker { struct tpool *p; int index; } *w;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static void *worker_main(void *a)
{
	struct worker *w = a;
	struct tpool *p = w->p;
	unsigned seen = 0;

	for (;;) {
		unsigned g;
		int spins = 0;
		while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
		       !atomic_load(&p->stop)) {
			if (++spins < SPIN_ITERS) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->sleepers, 1);
			while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop))
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->sleepers, 1);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->stop))
			return NULL;
		seen = g;
		p->fn(p->arg, w->index, p->n);
		atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel);
	}
}

int tpool_new(int threads, struct tpool **out)
{
	struct tpool *p = calloc(1, sizeof(*p));
	int rc = -ENOMEM;

	if (!p)
		return -ENOMEM;
	if (threads < 1)
		threads = 1;
	if (threads > 256)
		threads = 256;
	p->n = threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->tid = calloc((size_t)threads, sizeof(*p->tid));
	p->w = calloc((size_t)threads, sizeof(*p->w));
	if (!p->tid || !p->w)
		goto out;
	for (int i = 1; i < threads; i++) {
		p->w[i].p = p;
		p->w[i].index = i;
		if (pthread_create(&p->tid[i], NULL, worker_main, &p->w[i])) {
			p->n = i;	/* join what started */
			rc = -EAGAIN;
			goto out;
		}
	}
	*out = p;
	return 0;
out:
	tpool_free(p);
	return rc;
}

void tpool_free(struct tpool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n; i++)
		if (p->tid && p->tid[i])
			pthread_join(p->tid[i], NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->tid);
	free(p->w);
	free(p);
}

int tpool_threads(const struct tpool *p)
{
	return p ? p->n : 1;
}

void tpool_run(struct tpool *p, tpool_fn fn, void *arg)
{
	if (!p || p->n == 1) {
		fn(arg, 0, 1);
		return;
	}
	p->fn = fn;
	p->arg = arg;
	atomic_store(&p->pending, p->n - 1);
	atomic_fetch_add(&p->gen, 1);
	if (atomic_load(&p->sleepers)) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	fn(arg, 0, p->n);
	int spins = 0;
	while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
		if (++spins > SPIN_ITERS)
			sched_yield();
		else
			cpu_relax();
}
