/* Backend registry: the only file that knows which backends were built. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backend-impl.h"
#include "engine.h"

#ifdef SPLITD_HAVE_CUDA
/* kernels/cuda/backend_cuda.c defines this table (issue 8). */
extern const struct backend_ops backend_cuda;
#endif

/* in order of preference for backend = auto: the CPU last */
static const struct backend_ops *const backends[] = {
#ifdef SPLITD_HAVE_CUDA
	&backend_cuda,
#endif
	&backend_cpu,
};

#define N_BUILT (sizeof(backends) / sizeof(backends[0]))
#define MAX_REGISTERED 4

static const struct backend_ops *registered[MAX_REGISTERED];
static int n_registered;

const struct backend_ops *backend_find(const char *name)
{
	if (!name || !*name)
		name = "cpu";
	for (size_t i = 0; i < N_BUILT; i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	for (int i = 0; i < n_registered; i++)
		if (!strcmp(registered[i]->name, name))
			return registered[i];
	return NULL;
}

int backend_register(const struct backend_ops *be)
{
	if (!be || !be->name || !be->run || !be->ctx_new)
		return -EINVAL;
	if (backend_find(be->name))
		return -EEXIST;
	if (n_registered == MAX_REGISTERED)
		return -ENOSPC;
	registered[n_registered++] = be;
	return 0;
}

const char *engine_backend_auto(char *why, size_t whylen)
{
	char reason[160] = "";

	for (size_t i = 0; i + 1 < N_BUILT; i++) {
		const struct backend_ops *be = backends[i];
		if (!be->available || be->available(reason, sizeof(reason)) == 0) {
			if (why)
				snprintf(why, whylen, "%s: a device answers", be->name);
			return be->name;
		}
		if (why)
			snprintf(why, whylen, "cpu: %s unusable (%s)", be->name, reason);
	}
	if (why && N_BUILT == 1)
		snprintf(why, whylen, "cpu: the only backend built");
	return "cpu";
}

int engine_backend_exists(const char *name)
{
	return name && backend_find(name) != NULL;
}
