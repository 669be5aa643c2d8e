/* Sampler overhead: CPU time of the sampler thread over wall time, as % of
 * one core, on a fake Jetson Xavier NX tree (ina3221x iio, three rails: nine
 * files read per sample).
 *
 *   power_overhead [--hz N] [--seconds S] [--reopen] [--aux-hz N]
 *
 * --reopen: open/read/close each file each time instead of pread() on kept
 * descriptors (the default); --aux-hz: volts/amps rate (default 10);
 * --floor: no sampler, a thread that only sleeps at the same rate (what
 * the kernel charges a thread for each timer wake-up on this machine).
 *
 * Prints one line: hz, measured_hz, seconds, sampler_cpu_ms, cpu_pct. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdbool.h>

#include "power.h"

static char root[256];

static int put(const char *rel, const char *text)
{
	char path[512], *p;
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	for (p = path + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static int make_tree(void)
{
	static const char *names[] = { "VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC" };
	const char *dev = "sys/devices/c240000.i2c/i2c-7/7-0040";
	char rel[256], link[512];
	int rc = 0;

	snprintf(rel, sizeof(rel), "%s/name", dev);
	rc |= put(rel, "ina3221x\n");
	for (int k = 0; k < 3; k++) {
		char v[32];

		snprintf(rel, sizeof(rel), "%s/iio:device0/rail_name_%d", dev, k);
		snprintf(v, sizeof(v), "%s\n", names[k]);
		rc |= put(rel, v);
		snprintf(rel, sizeof(rel), "%s/iio:device0/in_power%d_input", dev, k);
		rc |= put(rel, "4912\n");
		snprintf(rel, sizeof(rel), "%s/iio:device0/in_voltage%d_input", dev, k);
		rc |= put(rel, "5072\n");
		snprintf(rel, sizeof(rel), "%s/iio:device0/in_current%d_input", dev, k);
		rc |= put(rel, "968\n");
	}
	rc |= put("sys/bus/i2c/devices/.keep", "");
	snprintf(link, sizeof(link), "%s/sys/bus/i2c/devices/7-0040", root);
	if (symlink("../../../devices/c240000.i2c/i2c-7/7-0040", link) < 0)
		rc = -errno;
	return rc;
}

struct floor_arg {
	int64_t period_ns, until_ns, cpu_ns, wakes;
};

static int64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void *floor_main(void *p)
{
	struct floor_arg *a = p;
	int64_t next = mono_ns();
	struct timespec t;

	while (next < a->until_ns) {
		next += a->period_ns;
		t.tv_sec = next / 1000000000LL;
		t.tv_nsec = next % 1000000000LL;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
		a->wakes++;
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	a->cpu_ns = (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
	return NULL;
}

static int run_floor(unsigned hz, double seconds)
{
	struct floor_arg a = { .period_ns = 1000000000LL / hz };
	pthread_t th;
	int64_t t0 = mono_ns();

	a.until_ns = t0 + (int64_t)(seconds * 1e9);
	if (pthread_create(&th, NULL, floor_main, &a) != 0)
		return 1;
	pthread_join(th, NULL);
	printf("hz=%u floor (sleep only) wakes=%lld cpu_ms=%.2f cpu_pct=%.3f us_per_wake=%.1f\n",
	       hz, (long long)a.wakes, a.cpu_ns / 1e6,
	       a.cpu_ns / ((double)(mono_ns() - t0)) * 100,
	       a.wakes ? a.cpu_ns / 1e3 / (double)a.wakes : 0);
	return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	return remove(p);
}

int main(int argc, char **argv)
{
	struct power_config cfg;
	struct power_sampler *s = NULL;
	struct power_snapshot *snap = NULL;
	struct timespec t0, t1, d;
	double seconds = 5, wall;
	unsigned hz = 100;
	char err[256];
	int rc = 1;
	bool floor_only = false;

	power_config_init(&cfg);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--hz") && i + 1 < argc) {
			hz = (unsigned)atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (!strcmp(argv[i], "--floor")) {
			floor_only = true;
		} else if (!strcmp(argv[i], "--reopen")) {
			cfg.keep_fds = false;
		} else if (!strcmp(argv[i], "--aux-hz") && i + 1 < argc) {
			cfg.aux_hz = (unsigned)atoi(argv[++i]);
		} else {
			fprintf(stderr, "power_overhead: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	if (hz < 1 || hz > 10000 || !(seconds > 0 && seconds <= 600)) {
		fprintf(stderr, "power_overhead: --hz 1..10000, --seconds 0..600\n");
		return 2;
	}
	if (floor_only)
		return run_floor(hz, seconds);
	snprintf(root, sizeof(root), "/tmp/splitd-power-bench-XXXXXX");
	if (!mkdtemp(root) || make_tree() < 0) {
		fprintf(stderr, "power_overhead: cannot build the fake tree in %s\n", root);
		goto out;
	}
	cfg.sysfs_root = root;
	cfg.rate_hz = hz;
	cfg.sources = POWER_SRC_INA3221X;
	cfg.estimate = POWER_ESTIMATE_NEVER;
	if (power_sampler_new(&cfg, &s, err, sizeof(err)) < 0) {
		fprintf(stderr, "power_overhead: %s\n", err);
		goto out;
	}
	snap = malloc(sizeof(*snap));
	if (!snap)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (power_sampler_start(s) < 0)
		goto out;
	d.tv_sec = (time_t)seconds;
	d.tv_nsec = (long)((seconds - (double)d.tv_sec) * 1e9);
	nanosleep(&d, NULL);
	power_snapshot(s, snap);
	power_sampler_stop(s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	{
		double measured = snap->measured_hz;

		power_snapshot(s, snap); /* final CPU time, after the join */
		printf("hz=%u keep_fds=%d aux_hz=%u measured_hz=%.1f seconds=%.2f samples=%llu "
		       "sampler_cpu_ms=%.2f cpu_pct=%.3f us_per_sample=%.1f\n",
		       hz, cfg.keep_fds, cfg.aux_hz, measured, wall,
		       (unsigned long long)snap->rails[0].samples,
		       snap->sampler_cpu_ns / 1e6, snap->sampler_cpu_ns / 1e9 / wall * 100,
		       snap->rails[0].samples ?
		       snap->sampler_cpu_ns / 1e3 / (double)snap->rails[0].samples : 0);
	}
	rc = 0;
out:
	free(snap);
	power_sampler_free(s);
	if (root[0])
		nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}
