/* NVML on a GPU host (the peer): libnvidia-ml is dlopen()ed, so splitd
 * neither links nor needs it; where it is absent the source finds nothing.
 * Each GPU is a rail: its total energy counter (mJ since the driver
 * loaded) where supported, else its power usage (mW). */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "power-impl.h"

#define NVML_SUCCESS 0
#define NVML_MAX_GPUS 8

typedef struct nvml_device_st *nvml_device;

struct nvml_ctx {
	void *lib;
	int (*init)(void);
	int (*shutdown)(void);
	int (*count)(unsigned int *);
	int (*handle)(unsigned int, nvml_device *);
	int (*name)(nvml_device, char *, unsigned int);
	int (*energy)(nvml_device, unsigned long long *);
	int (*power)(nvml_device, unsigned int *);
	nvml_device dev[NVML_MAX_GPUS];
	bool initialised;
};

static void *sym(void *lib, const char *a, const char *b)
{
	void *p = dlsym(lib, a);

	return p || !b ? p : dlsym(lib, b);
}

static void nvml_destroy(void *p)
{
	struct nvml_ctx *c = p;

	if (!c)
		return;
	if (c->initialised && c->shutdown)
		c->shutdown();
	if (c->lib)
		dlclose(c->lib);
	free(c);
}

static int nvml_probe(struct power_sampler *s, char *err, size_t errlen)
{
	const struct power_config *cfg = power_sampler_config(s);
	struct nvml_ctx *c = calloc(1, sizeof(*c));
	unsigned int n = 0;
	int rc;

	if (!c)
		return -ENOMEM;
	c->lib = dlopen(cfg->nvml_lib ? cfg->nvml_lib : "libnvidia-ml.so.1",
			RTLD_NOW | RTLD_LOCAL);
	if (!c->lib)
		goto none; /* no NVIDIA driver: not an error */
	c->init = (int (*)(void))sym(c->lib, "nvmlInit_v2", "nvmlInit");
	c->shutdown = (int (*)(void))sym(c->lib, "nvmlShutdown", NULL);
	c->count = (int (*)(unsigned int *))sym(c->lib, "nvmlDeviceGetCount_v2",
						"nvmlDeviceGetCount");
	c->handle = (int (*)(unsigned int, nvml_device *))sym(
		c->lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
	c->name = (int (*)(nvml_device, char *, unsigned int))sym(
		c->lib, "nvmlDeviceGetName", NULL);
	c->energy = (int (*)(nvml_device, unsigned long long *))sym(
		c->lib, "nvmlDeviceGetTotalEnergyConsumption", NULL);
	c->power = (int (*)(nvml_device, unsigned int *))sym(
		c->lib, "nvmlDeviceGetPowerUsage", NULL);
	if (!c->init || !c->count || !c->handle || (!c->energy && !c->power))
		goto none;
	if (c->init() != NVML_SUCCESS)
		goto none;
	c->initialised = true;
	/* the sampler owns c from here: its rails point at it */
	rc = power_add_source(s, &power_nvml_ops, c);
	if (rc < 0) {
		nvml_destroy(c);
		snprintf(err, errlen, "nvml: too many sources");
		return rc;
	}
	if (c->count(&n) != NVML_SUCCESS)
		n = 0;
	if (n > NVML_MAX_GPUS)
		n = NVML_MAX_GPUS;
	for (unsigned int i = 0; i < n; i++) {
		struct power_rail_impl *r;
		unsigned long long mj;
		unsigned int mw;
		char name[POWER_NAME_MAX], dev[64];

		if (c->handle(i, &c->dev[i]) != NVML_SUCCESS)
			continue;
		snprintf(name, sizeof(name), "GPU%u", i);
		snprintf(dev, sizeof(dev), "nvml:%u", i);
		if (c->name) {
			char model[64];

			if (c->name(c->dev[i], model, sizeof(model)) == NVML_SUCCESS) {
				model[sizeof(model) - 1] = '\0';
				snprintf(dev, sizeof(dev), "nvml:%u %.40s", i, model);
			}
		}
		r = power_add_rail(s, &power_nvml_ops, c, name, dev);
		if (!r) {
			snprintf(err, errlen, "nvml: too many rails");
			return -ENOSPC;
		}
		r->channel = (int)i;
		if (c->energy && c->energy(c->dev[i], &mj) == NVML_SUCCESS)
			r->info.caps = POWER_CAP_ENERGY | POWER_CAP_POWER;
		else if (c->power && c->power(c->dev[i], &mw) == NVML_SUCCESS)
			r->info.caps = POWER_CAP_POWER;
		else
			r->info.caps = POWER_CAP_POWER; /* down until it answers */
	}
	return 0;
none:
	nvml_destroy(c);
	return 0;
}

static int nvml_read(struct power_sampler *s, struct power_rail_impl *r,
		     int64_t now_ns, struct power_reading *out)
{
	struct nvml_ctx *c = r->src;
	nvml_device d = c->dev[r->channel];

	if (r->info.caps & POWER_CAP_ENERGY) {
		unsigned long long mj;

		if (c->energy(d, &mj) != NVML_SUCCESS)
			return -EIO;
		out->counter_uj = (double)mj * 1000.0;
		return 0;
	}
	{
		unsigned int mw;

		if (!c->power || c->power(d, &mw) != NVML_SUCCESS)
			return -EIO;
		out->power_mw = mw;
	}
	return 0;
}

const struct power_source_ops power_nvml_ops = {
	.name = "nvml",
	.kind = POWER_SRC_NVML,
	.probe = nvml_probe,
	.read = nvml_read,
	.destroy = nvml_destroy,
};
