/* Thread pool. tpool_run() publishes a job of `count` slices (one per
 * thread); every thread, the caller included, claims slices in one atomic
 * word until none are left: first its own (thread i, slice i), then any
 * left. A worker the scheduler has not woken yet thus never delays the
 * job: the caller runs its slice. Workers spin briefly for the next job,
 * then sleep on a condition variable.
 *
 * Own slice first: a node's slice i works on the part of the tensors that
 * slice i of the node before it wrote (the same rows of the same planes,
 * for convs split alike), so each thread reads what its own cache holds.
 * Slices handed out in claim order instead landed on either thread at
 * random, node after node, and here a line written by the other core
 * comes back in 400-900 ns (bench/cpu_peak --xcore).
 *
 * The job word packs generation (24 bits) and the claimed slices (one bit
 * each, TPOOL_MAX_THREADS of them), so a late worker can never claim a
 * slice of a newer job by mistake. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "threadpool.h"

#define SPIN_ITERS 4000
#define WAIT_SPINS 4000		/* about 80 us of PAUSE (20 ns each on Zen 5) */
#define GEN_SHIFT TPOOL_MAX_THREADS
#define CLAIM_MASK ((UINT64_C(1) << TPOOL_MAX_THREADS) - 1)
#define GEN_MASK ((UINT64_C(1) << (64 - GEN_SHIFT)) - 1)

struct tpool {
	int n;			/* threads including the caller */
	pthread_t *tid;
	struct worker *w;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic uint64_t job;	/* gen | claimed slices (bit i: slice i) */
	_Atomic int done;
	_Atomic int stop;
	_Atomic int sleepers;
	tpool_fn fn;
	void *arg;
	unsigned gen;
	int started;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

/* Claims and runs slices of the current job, thread `self`'s own first;
 * returns when none are left. */
static void work(struct tpool *p, uint64_t gen, int self)
{
	uint64_t all = (UINT64_C(1) << p->n) - 1;
	uint64_t v = atomic_load_explicit(&p->job, memory_order_acquire);
	for (;;) {
		uint64_t free_ = ~v & all;
		if ((v >> GEN_SHIFT) != gen || !free_)
			return;
		int s = free_ >> self & 1 ? self : __builtin_ctzll(free_);
		if (!atomic_compare_exchange_weak_explicit(&p->job, &v, v | UINT64_C(1) << s,
							   memory_order_acq_rel, memory_order_acquire))
			continue;
		p->fn(p->arg, s, p->n);
		atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
		v = atomic_load_explicit(&p->job, memory_order_acquire);
	}
}

struct worker {
	struct tpool *p;
	int self;
};

static void *worker_main(void *a)
{
	struct tpool *p = ((struct worker *)a)->p;
	int self = ((struct worker *)a)->self;
	uint64_t seen = 0;

	for (;;) {
		uint64_t g;
		int spins = 0;
		while ((g = atomic_load_explicit(&p->job, memory_order_acquire) >> GEN_SHIFT) == seen &&
		       !atomic_load(&p->stop)) {
			if (++spins < SPIN_ITERS) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->sleepers, 1);
			while ((atomic_load(&p->job) >> GEN_SHIFT) == seen && !atomic_load(&p->stop))
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->sleepers, 1);
			pthread_mutex_unlock(&p->mu);
		}
		if (atomic_load(&p->stop))
			return NULL;
		seen = g;
		work(p, g, self);
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
	if (threads > TPOOL_MAX_THREADS)
		threads = TPOOL_MAX_THREADS;
	p->n = threads;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->tid = calloc((size_t)threads, sizeof(*p->tid));
	p->w = calloc((size_t)threads, sizeof(*p->w));
	if (!p->tid || !p->w)
		goto out;
	for (int i = 1; i < threads; i++) {
		p->w[i] = (struct worker){ p, i };
		if (pthread_create(&p->tid[i], NULL, worker_main, &p->w[i])) {
			rc = -EAGAIN;
			goto out;
		}
		p->started = i;
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
	for (int i = 1; i <= p->started; i++)
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
	uint64_t gen = (++p->gen) & GEN_MASK;
	if (!gen)
		gen = ++p->gen & GEN_MASK;
	p->fn = fn;
	p->arg = arg;
	atomic_store_explicit(&p->done, 0, memory_order_relaxed);
	atomic_store(&p->job, gen << GEN_SHIFT);
	if (atomic_load(&p->sleepers)) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	work(p, gen, 0);
	/* the other slices finish within microseconds on a quiet machine: a
	 * pause loop sees that at once, where a sched_yield (a syscall, slow
	 * in a VM) would see it late; yield only after WAIT_SPINS pauses */
	int spins = 0;
	while (atomic_load_explicit(&p->done, memory_order_acquire) < p->n)
		if (++spins > WAIT_SPINS)
			sched_yield();
		else
			cpu_relax();
}
