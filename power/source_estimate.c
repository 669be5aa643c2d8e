/* The estimate, where no sensor exists (VMs, CI): a model energy counter
 *   E = idle_mw x elapsed + busy_core_mw x process CPU time
 * from CLOCK_PROCESS_CPUTIME_ID or a /proc/<pid>/stat file. It is always
 * labelled method "estimate", never passed off as a measurement. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "power-impl.h"

/* The counter grows sample by sample at the watts of the moment, so new
 * watts (power_sampler_set_estimate) count from the next sample on. */
struct est_ctx {
	int64_t last_ns;
	double last_cpu_ns, counter_uj;
	bool have_last;
	long ticks_per_s;
};

static int est_probe(struct power_sampler *s, char *err, size_t errlen)
{
	const struct power_config *cfg = power_sampler_config(s);
	struct est_ctx *c;
	struct power_rail_impl *r;
	int rc;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->ticks_per_s = sysconf(_SC_CLK_TCK);
	if (c->ticks_per_s <= 0)
		c->ticks_per_s = 100;
	rc = power_add_source(s, &power_estimate_ops, c);
	if (rc < 0) {
		free(c);
		snprintf(err, errlen, "estimate: too many sources");
		return rc;
	}
	r = power_add_rail(s, &power_estimate_ops, c, "estimate",
			   cfg->estimate_stat_path ? cfg->estimate_stat_path
						   : "process-cputime");
	if (!r) {
		snprintf(err, errlen, "estimate: too many rails");
		return -ENOSPC;
	}
	r->info.caps = POWER_CAP_ENERGY | POWER_CAP_POWER;
	r->info.method = "estimate";
	if (cfg->estimate_stat_path) {
		r->f[RAIL_FILE_ENERGY].path = strdup(cfg->estimate_stat_path);
		if (!r->f[RAIL_FILE_ENERGY].path)
			return -ENOMEM;
	}
	return 0;
}

static int est_read(struct power_sampler *s, struct power_rail_impl *r,
		    int64_t now_ns, struct power_reading *out)
{
	const struct power_config *cfg = power_sampler_config(s);
	struct est_ctx *c = r->src;
	double cpu_ns;

	if (r->f[RAIL_FILE_ENERGY].path) {
		char buf[1024];
		size_t len;
		uint64_t ticks;
		int rc = sysfs_read(&r->f[RAIL_FILE_ENERGY], false, buf,
				    sizeof(buf), &len);

		if (rc < 0)
			return rc;
		rc = power_parse_proc_stat(buf, len, &ticks);
		if (rc < 0)
			return rc;
		cpu_ns = (double)ticks * 1e9 / (double)c->ticks_per_s;
	} else {
		struct timespec ts;

		if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) < 0)
			return -errno;
		cpu_ns = (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
	}
	pthread_mutex_lock(&s->mu);
	double idle_mw = (double)cfg->estimate_idle_mw, core_mw = (double)cfg->estimate_busy_core_mw;
	pthread_mutex_unlock(&s->mu);
	/* mW x ns / 1e6 = uJ; the CPU time before the first sample counts
	 * at the first sample */
	if (!c->have_last)
		c->counter_uj = core_mw * cpu_ns / 1e6;
	else
		c->counter_uj += (idle_mw * (double)(now_ns - c->last_ns) + core_mw * (cpu_ns - c->last_cpu_ns)) / 1e6;
	c->last_ns = now_ns;
	c->last_cpu_ns = cpu_ns;
	c->have_last = true;
	out->counter_uj = c->counter_uj;
	return 0;
}

const struct power_source_ops power_estimate_ops = {
	.name = "estimate",
	.kind = POWER_SRC_ESTIMATE,
	.probe = est_probe,
	.read = est_read,
	.destroy = free,
};
