/* The backend interface (ggml-backend style): one static table of function
 * pointers per backend plus an opaque per-inference context. The engine
 * calls prepare() once per node at load, then run() node by node. Optional
 * members are NULL; the wrappers in backend.c check them. */
#ifndef SPLITD_BACKEND_IMPL_H
#define SPLITD_BACKEND_IMPL_H

#include "engine-impl.h"

struct backend_ops {
	const char *name;
	/* Can this backend run node n (its kind, params, dtypes, shapes)? */
	int (*supports)(const struct engine *e, const struct eng_node *n);
	/* Once per node at load: pack weights into n->packed, choose the
	 * algorithm, set n->work_bytes (per-thread scratch). Returns 0/-errno. */
	int (*prepare)(struct engine *e, struct eng_node *n);
	/* Free what prepare() made. */
	void (*release)(struct eng_node *n);
	/* Per-inference context (thread pool, scratch, device stream). */
	int (*ctx_new)(const struct engine *e, void **out);
	void (*ctx_free)(void *bctx);
	/* Activation memory: NULL means host malloc/free. A device backend
	 * allocates its arena on the device and copies at segment ends. */
	void *(*buf_alloc)(void *bctx, size_t bytes);
	void (*buf_free)(void *bctx, void *p);
	int (*upload)(void *bctx, void *dst, const void *src, size_t bytes);
	int (*download)(void *bctx, void *dst, const void *src, size_t bytes);
	/* Run one node: in[] / out[] follow n->in / n->out (absent inputs have
	 * data == NULL). */
	/* Optional: 1 when run() takes 4-D views with pstride set for every
	 * 4-D input and output of n (banded execution then reads and writes
	 * the full tensors in place instead of copying rows). */
	int (*strided)(const struct eng_node *n);
	int (*run)(void *bctx, const struct engine *e, const struct eng_node *n,
		   const struct tensor_view *in, struct tensor_view *out);
	/* Optional: wait for queued work (device backends). */
	int (*synchronize)(void *bctx);
	/* Optional: 0 when the backend can run here (a device answers, its
	 * libraries load), else -ENODEV with a sentence in why. NULL: always. */
	int (*available)(char *why, size_t whylen);
	/* Optional: 1 while a context is usable, 0 once it reported itself
	 * unhealthy (a sticky device error poisoned it): the engine should be
	 * reloaded on another backend. NULL: always healthy. */
	int (*healthy)(const void *bctx);
};

/* Registry (backend.c): the one place that knows which backends exist.
 * NULL for a name that is not a backend, or one built as a library of its
 * own (cuda) that did not load; backend_load_error says why for that one
 * (NULL otherwise). */
const struct backend_ops *backend_find(const char *name);
const char *backend_load_error(const char *name);
/* Add a backend beyond the built ones (tests: a fault-injecting one).
 * 0, -EEXIST (the name is taken) or -ENOSPC. Not thread-safe: register
 * before loading engines. */
int backend_register(const struct backend_ops *be);
extern const struct backend_ops backend_cpu;

/* CPU helpers usable without a prepared engine (constant folding). */
int cpu_run_node_simple(const struct engine *e, const struct eng_node *n,
			const struct tensor_view *in, struct tensor_view *out);

#endif
