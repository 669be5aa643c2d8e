/* Backend registry: the only file that knows which backends were built. */
#include <string.h>

#include "backend-impl.h"

#ifdef SPLITD_HAVE_CUDA
/* kernels/cuda/backend_cuda.c defines this table (issue 8). */
extern const struct backend_ops backend_cuda;
#endif

static const struct backend_ops *const backends[] = {
	&backend_cpu,
#ifdef SPLITD_HAVE_CUDA
	&backend_cuda,
#endif
};

const struct backend_ops *backend_find(const char *name)
{
	if (!name || !*name)
		name = "cpu";
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (!strcmp(backends[i]->name, name))
			return backends[i];
	return NULL;
}
