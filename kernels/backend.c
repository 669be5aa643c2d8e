/* Backend registry: the only file that knows which backends were built. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend-impl.h"
#include "engine.h"

#ifdef SPLITD_HAVE_CUDA
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <unistd.h>

/* The CUDA backend (kernels/cuda/, issue 8) is a library of its own,
 * opened the first time it is asked for: cuDNN, cuBLAS and the CUDA
 * runtime, which it links, are then mapped only in a process that wants
 * them (linked into splitd they cost every process ~200 MB of RSS at
 * start). Its table is `backend_cuda`; `backend_cuda_version` must be
 * this build's version and `backend_cuda_ops_size` our struct's size, or
 * it is another build's and is refused. */
static const struct backend_ops *cuda_ops;
static char cuda_error[512];
static pthread_once_t cuda_once = PTHREAD_ONCE_INIT;

static int cuda_try(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		snprintf(cuda_error, sizeof(cuda_error), "%s", dlerror());
		return -1;
	}
	const struct backend_ops *be = dlsym(h, "backend_cuda");
	const char *const *ver = dlsym(h, "backend_cuda_version");
	const size_t *size = dlsym(h, "backend_cuda_ops_size");
	if (!be || !ver || !size || strcmp(*ver, SPLITD_VERSION) || *size != sizeof(*be)) {
		snprintf(cuda_error, sizeof(cuda_error), "%s: not this build's CUDA backend (version %s, want %s)",
			 path, ver ? *ver : "?", SPLITD_VERSION);
		dlclose(h);
		return -1;
	}
	cuda_ops = be;	/* never closed: its contexts may outlive any one engine */
	return 0;
}

static void cuda_open(void)
{
	const char *env = getenv("SPLITD_CUDA_MODULE");
	char exe[PATH_MAX], path[PATH_MAX + 64] = "";
	ssize_t n;

	if (env && *env) {	/* named: that one or none */
		cuda_try(env);
		return;
	}
	/* installed: PREFIX/lib/splitd/ beside PREFIX/bin/splitd; where it is
	 * there, it is the one (its error, not the build tree's, says why) */
	if ((n = readlink("/proc/self/exe", exe, sizeof(exe) - 1)) > 0) {
		exe[n] = 0;
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = 0;
			snprintf(path, sizeof(path), "%s/../lib/splitd/%s", exe, SPLITD_CUDA_MODULE_NAME);
			if (access(path, F_OK) == 0) {
				cuda_try(path);
				return;
			}
		}
	}
	if (access(SPLITD_CUDA_MODULE_BUILD, F_OK) == 0)	/* run from the build tree */
		cuda_try(SPLITD_CUDA_MODULE_BUILD);
	else
		snprintf(cuda_error, sizeof(cuda_error), "no %s, not at %s nor at %s (SPLITD_CUDA_MODULE names another)",
			 SPLITD_CUDA_MODULE_NAME, *path ? path : "PREFIX/lib/splitd/", SPLITD_CUDA_MODULE_BUILD);
}

static const struct backend_ops *backend_cuda_module(void)
{
	pthread_once(&cuda_once, cuda_open);
	return cuda_ops;
}
#endif

/* The built backends in order of preference for backend = auto, the CPU
 * last; NULL for one built but not loadable here (backend_load_error). */
static const char *const built_names[] = {
#ifdef SPLITD_HAVE_CUDA
	"cuda",
#endif
	"cpu",
};

#define N_BUILT (sizeof(built_names) / sizeof(built_names[0]))
#define MAX_REGISTERED 4

static const struct backend_ops *built(size_t i)
{
#ifdef SPLITD_HAVE_CUDA
	if (!strcmp(built_names[i], "cuda"))
		return backend_cuda_module();
#endif
	(void)i;
	return &backend_cpu;
}

const char *backend_load_error(const char *name)
{
#ifdef SPLITD_HAVE_CUDA
	if (name && !strcmp(name, "cuda") && !backend_cuda_module())
		return cuda_error;
#endif
	(void)name;
	return NULL;
}

static const struct backend_ops *registered[MAX_REGISTERED];
static int n_registered;

const struct backend_ops *backend_find(const char *name)
{
	if (!name || !*name)
		name = "cpu";
	for (size_t i = 0; i < N_BUILT; i++)
		if (!strcmp(built_names[i], name))
			return built(i);
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
		const struct backend_ops *be = built(i);
		if (!be) {
			if (why)
				snprintf(why, whylen, "cpu: %s did not load (%s)", built_names[i],
					 backend_load_error(built_names[i]));
			continue;
		}
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
