/* power/: discovery on fake sysfs trees laid out as the kernels do, energy
 * against analytic integrals, per-request shares, faults, the command.
 *
 * Built a second time with SPLITD_FAKE_NVML as a small libnvidia-ml
 * stand-in (a shared object), so the NVML source is exercised too. */
#ifdef SPLITD_FAKE_NVML
/* ---- the fake libnvidia-ml: GPU0 has an energy counter that advances
 * 1000 mJ per read; GPU1 only reports power usage (75 W). ---- */
typedef struct fake_dev *nvmlDevice_t;
static struct fake_dev { int i; } fake_devs[2];
static unsigned long long fake_mj;
int nvmlInit_v2(void);
int nvmlShutdown(void);
int nvmlDeviceGetCount_v2(unsigned int *n);
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d);
int nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len);
int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj);
int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw);
int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 2; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, nvmlDevice_t *d)
{
	if (i > 1)
		return 2;
	fake_devs[i].i = (int)i;
	*d = &fake_devs[i];
	return 0;
}
int nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int len)
{
	const char *n = d->i ? "Fake GPU B" : "Fake GPU A";
	unsigned int k;

	for (k = 0; n[k] && k + 1 < len; k++)
		name[k] = n[k];
	name[k] = '\0';
	return 0;
}
int nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t d, unsigned long long *mj)
{
	if (d->i)
		return 3; /* NVML_ERROR_NOT_SUPPORTED */
	fake_mj += 1000;
	*mj = fake_mj;
	return 0;
}
int nvmlDeviceGetPowerUsage(nvmlDevice_t d, unsigned int *mw)
{
	*mw = d->i ? 75000 : 100000;
	return 0;
}
#else

#include <errno.h>
#include <float.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "commands.h"
#include "power-impl.h"
#include "power.h"

/* The energy of a linear ramp over a window: the sampler's trapezoids are
 * exact for it, so only rounding is left: a sum of at most 128 (the ring)
 * products of exact integers in double, and ramp_uj's own few operations:
 * gamma(136) |E| with u = DBL_EPSILON / 2, taken as 136 DBL_EPSILON |E|. */
#define RAMP_TOL(e) (136 * DBL_EPSILON * fabs(e))

#define MS 1000000LL
#define SEC 1000000000LL

/* ---- fake trees ---- */

static char root[256];
static int64_t fake_t;

static int64_t fake_clock(void *ctx)
{
	return *(int64_t *)ctx;
}

static void mkdirs(const char *path)
{
	char tmp[512];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(tmp, 0755);
			*p = '/';
		}
	}
	mkdir(tmp, 0755);
}

static void parent_dirs(const char *path)
{
	char dir[512];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0';
		mkdirs(dir);
	}
}

/* Replaces root/rel atomically (write a temporary, rename over). */
static void put_raw(const char *rel, const char *buf, size_t len)
{
	char path[512], tmp[520];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	parent_dirs(path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
	assert_int_equal(rename(tmp, path), 0);
}

__attribute__((format(printf, 2, 3)))
static void put(const char *rel, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	put_raw(rel, buf, (size_t)n);
}

static void put_num(const char *rel, long long v)
{
	put(rel, "%lld\n", v);
}

/* root/rel -> target (relative, as the kernel's links are) */
static void link_rel(const char *rel, const char *target)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	parent_dirs(path);
	assert_int_equal(symlink(target, path), 0);
}

static void unlink_rel(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	unlink(path);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st; (void)flag; (void)f;
	chmod(p, 0755);
	return remove(p);
}

static int setup_tree(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/splitd-power-XXXXXX");
	if (!mkdtemp(root))
		return -1;
	fake_t = 1000 * SEC;
	return 0;
}

static int teardown_tree(void **state)
{
	(void)state;
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

#define NX_DEV "sys/devices/c240000.i2c/i2c-7/7-0040"
#define NX_IIO NX_DEV "/iio:device0"

/* Jetson Xavier NX, L4T R32: NVIDIA's ina3221x iio driver on bus 7. */
static void make_xavier_nx_r32(void)
{
	static const char *names[] = { "VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC" };
	static const int p[] = { 4912, 1204, 1450 }, v[] = { 5072, 5048, 5056 },
			 i[] = { 968, 238, 286 };
	char rel[256];

	put(NX_DEV "/name", "ina3221x\n");
	for (int k = 0; k < 3; k++) {
		snprintf(rel, sizeof(rel), NX_IIO "/rail_name_%d", k);
		put(rel, "%s\n", names[k]);
		snprintf(rel, sizeof(rel), NX_IIO "/in_power%d_input", k);
		put_num(rel, p[k]);
		snprintf(rel, sizeof(rel), NX_IIO "/in_voltage%d_input", k);
		put_num(rel, v[k]);
		snprintf(rel, sizeof(rel), NX_IIO "/in_current%d_input", k);
		put_num(rel, i[k]);
		snprintf(rel, sizeof(rel), NX_IIO "/crit_current_limit_%d", k);
		put_num(rel, 3000);
	}
	put(NX_IIO "/name", "ina3221x\n");
	link_rel("sys/bus/i2c/devices/7-0040", "../../../devices/c240000.i2c/i2c-7/7-0040");
	link_rel("sys/bus/i2c/drivers/ina3221x/7-0040",
		 "../../../../devices/c240000.i2c/i2c-7/7-0040");
	/* another chip on the bus: not a power monitor */
	put("sys/devices/c240000.i2c/i2c-7/7-0050/name", "eeprom\n");
	link_rel("sys/bus/i2c/devices/7-0050", "../../../devices/c240000.i2c/i2c-7/7-0050");
}

/* The mainline ina3221 hwmon driver (L4T R35/R36) at bus-addr. */
static void make_ina3221_hwmon(const char *busaddr, int hwmon, const char *labels[3],
			       const int mv[3], const int ma[3], int update_ms,
			       int samples, const int enable[3])
{
	char dev[256], hw[300], rel[400], target[400];
	int bus = atoi(busaddr);

	snprintf(dev, sizeof(dev), "sys/devices/platform/bus@0/c240000.i2c/i2c-%d/%s",
		 bus, busaddr);
	snprintf(hw, sizeof(hw), "%s/hwmon/hwmon%d", dev, hwmon);
	snprintf(rel, sizeof(rel), "%s/name", dev);
	put(rel, "ina3221\n");
	snprintf(rel, sizeof(rel), "%s/name", hw);
	put(rel, "ina3221\n");
	for (int k = 1; k <= 3; k++) {
		snprintf(rel, sizeof(rel), "%s/in%d_label", hw, k);
		put(rel, "%s\n", labels[k - 1]);
		snprintf(rel, sizeof(rel), "%s/in%d_input", hw, k);
		put_num(rel, mv[k - 1]);
		snprintf(rel, sizeof(rel), "%s/curr%d_input", hw, k);
		put_num(rel, ma[k - 1]);
		snprintf(rel, sizeof(rel), "%s/in%d_input", hw, k + 3); /* shunt */
		put_num(rel, 12);
		if (enable) {
			snprintf(rel, sizeof(rel), "%s/in%d_enable", hw, k);
			put_num(rel, enable[k - 1]);
		}
	}
	snprintf(rel, sizeof(rel), "%s/in7_label", hw);
	put(rel, "sum of shunt voltages\n");
	snprintf(rel, sizeof(rel), "%s/in7_input", hw);
	put_num(rel, 36);
	snprintf(rel, sizeof(rel), "%s/curr4_input", hw);
	put_num(rel, ma[0] + ma[1] + ma[2]);
	if (update_ms) {
		snprintf(rel, sizeof(rel), "%s/update_interval", hw);
		put_num(rel, update_ms);
	}
	if (samples) {
		snprintf(rel, sizeof(rel), "%s/samples", hw);
		put_num(rel, samples);
	}
	snprintf(rel, sizeof(rel), "sys/bus/i2c/devices/%s", busaddr);
	snprintf(target, sizeof(target), "../../../%s", dev + 4);
	link_rel(rel, target);
	snprintf(rel, sizeof(rel), "sys/bus/i2c/drivers/ina3221/%s", busaddr);
	snprintf(target, sizeof(target), "../../../../%s", dev + 4);
	link_rel(rel, target);
	/* the class link the generic hwmon source sees (and must skip) */
	snprintf(rel, sizeof(rel), "sys/class/hwmon/hwmon%d", hwmon);
	snprintf(target, sizeof(target), "../../%s", hw + 4);
	link_rel(rel, target);
}

static struct power_sampler *new_sampler(struct power_config *cfg)
{
	struct power_sampler *s = NULL;
	char err[256] = "";
	int rc = power_sampler_new(cfg, &s, err, sizeof(err));

	if (rc < 0)
		fprintf(stderr, "power_sampler_new: %d %s\n", rc, err);
	assert_int_equal(rc, 0);
	return s;
}

static void base_config(struct power_config *cfg, bool fake_clock_on)
{
	power_config_init(cfg);
	cfg->sysfs_root = root;
	cfg->estimate = POWER_ESTIMATE_NEVER;
	cfg->nvml_lib = "/nonexistent/libnvidia-ml.so.1";
	cfg->keep_fds = false; /* the fakes replace files by rename */
	if (fake_clock_on) {
		cfg->clock_ns = fake_clock;
		cfg->clock_ctx = &fake_t;
	}
}

/* ---- discovery ---- */

static void test_xavier_nx_r32(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_rail_info info;
	struct power_snapshot *snap = malloc(sizeof(*snap));

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	assert_int_equal(power_rail_count(s), 3);
	assert_int_equal(power_rail_info(s, 0, &info), 0);
	assert_string_equal(info.name, "VDD_IN");
	assert_string_equal(info.source, "ina3221x");
	assert_string_equal(info.method, "measured");
	assert_string_equal(info.device, "7-0040");
	assert_true(info.is_input);
	assert_int_equal(info.caps, POWER_CAP_POWER | POWER_CAP_VOLTAGE | POWER_CAP_CURRENT);
	assert_int_equal(power_rail_info(s, 1, &info), 0);
	assert_string_equal(info.name, "VDD_CPU_GPU_CV");
	assert_false(info.is_input);
	assert_int_equal(power_rail_find(s, "VDD_SOC"), 2);
	assert_int_equal(power_input_rail(s), 0);
	assert_int_equal(power_sample_period_ns(s), 10 * MS); /* 100 Hz default */

	assert_int_equal(power_sampler_sample_once(s), 0);
	fake_t += 10 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_int_equal(snap->n_rails, 3);
	assert_int_equal(snap->input_rail, 0);
	assert_true(snap->rails[0].up);
	assert_int_equal(snap->rails[0].power_mw, 4912);
	assert_int_equal(snap->rails[0].voltage_mv, 5072);
	assert_int_equal(snap->rails[0].current_ma, 968);
	assert_int_equal(snap->rails[2].power_mw, 1450);
	/* 10 ms at 4912 mW = 49120 uJ; sub-rails are never added to it */
	assert_int_equal(snap->rails[0].energy_uj, 49120);
	assert_int_equal(snap->rails[1].energy_uj, 12040);
	assert_int_equal(snap->rails[0].samples, 2);
	power_sampler_free(s);
	free(snap);
}

static void test_orin_nx_r35(void **state)
{
	static const char *labels[] = { "VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC" };
	static const int mv[] = { 5080, 5064, 5072 }, ma[] = { 1120, 320, 400 };
	struct power_config cfg;
	struct power_sampler *s;
	struct power_rail_info info;
	struct power_snapshot *snap = malloc(sizeof(*snap));

	(void)state;
	make_ina3221_hwmon("1-0040", 3, labels, mv, ma, 20, 4, NULL);
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	/* three rails: the sum channel is skipped, the hwmon class link too */
	assert_int_equal(power_rail_count(s), 3);
	assert_int_equal(power_rail_info(s, 0, &info), 0);
	assert_string_equal(info.name, "VDD_IN");
	assert_string_equal(info.source, "ina3221");
	assert_string_equal(info.device, "1-0040");
	assert_true(info.is_input);
	assert_int_equal(info.update_interval_us, 20000);
	/* sampling faster than the sensor updates only repeats values */
	assert_int_equal(power_sample_period_ns(s), 20 * MS);
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	/* P = V x I: 5080 mV x 1120 mA = 5689.6 mW */
	assert_int_equal(snap->rails[0].power_mw, 5690);
	assert_int_equal(snap->rails[0].voltage_mv, 5080);
	assert_int_equal(snap->rails[0].current_ma, 1120);
	assert_int_equal(snap->rails[2].power_mw, 2029); /* 5072 x 400 */
	power_sampler_free(s);

	/* without the cap, the configured rate stands */
	cfg.cap_by_sensor = false;
	s = new_sampler(&cfg);
	assert_int_equal(power_sample_period_ns(s), 10 * MS);
	power_sampler_free(s);
	free(snap);
}

static void test_orin_r36_samples(void **state)
{
	static const char *labels[] = { "VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC" };
	static const int mv[] = { 5000, 5000, 5000 }, ma[] = { 1000, 200, 300 };
	static const int enable[] = { 1, 1, 0 };
	struct power_config cfg;
	struct power_sampler *s;
	struct power_rail_info info;

	(void)state;
	/* no update_interval: 4 samples x (bus + shunt) x 1.1 ms x 2 channels */
	make_ina3221_hwmon("1-0040", 1, labels, mv, ma, 0, 4, enable);
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	assert_int_equal(power_rail_count(s), 2); /* VDD_SOC disabled */
	assert_int_equal(power_rail_find(s, "VDD_SOC"), -ENOENT);
	assert_int_equal(power_rail_info(s, 1, &info), 0);
	assert_int_equal(info.update_interval_us, 4 * 2 * 1100 * 2);
	assert_int_equal(power_sample_period_ns(s), 17600000);
	power_sampler_free(s);
}

static void test_agx_orin_no_input(void **state)
{
	static const char *l0[] = { "VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0" };
	static const char *l1[] = { "NC", "VDDQ_VDD2_1V8AO", "NC" };
	static const int mv[] = { 5000, 5000, 5000 }, ma[] = { 800, 400, 600 };
	struct power_config cfg;
	struct power_sampler *s;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	struct power_request req;
	uint64_t id;

	(void)state;
	make_ina3221_hwmon("1-0040", 1, l0, mv, ma, 0, 0, NULL);
	make_ina3221_hwmon("1-0041", 2, l1, mv, ma, 0, 0, NULL);
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	assert_int_equal(power_rail_count(s), 4); /* NC channels skipped */
	assert_int_equal(power_rail_find(s, "VDDQ_VDD2_1V8AO"), 3);
	/* no VDD_IN: no board total, and nothing is summed to make one */
	assert_int_equal(power_input_rail(s), -ENOENT);
	assert_int_equal(power_sampler_sample_once(s), 0);
	fake_t += 10 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_int_equal(snap->input_rail, -1);
	assert_int_equal(snap->request_rail, -1);
	for (int i = 0; i < snap->n_rails; i++)
		assert_false(snap->rails[i].info.is_input);
	assert_int_equal(power_request_begin(s, &id), 0);
	assert_int_equal(power_request_end(s, id, 0, &req), -ENODATA);
	assert_non_null(req.reason);
	power_sampler_free(s);

	/* a configured request rail gives per-request energy again */
	cfg.request_rail = "VIN_SYS_5V0";
	s = new_sampler(&cfg);
	assert_int_equal(power_input_rail(s), -ENOENT);
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_request_begin(s, &id), 0);
	fake_t += 10 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_request_end(s, id, 0, &req), 0);
	assert_string_equal(req.rail, "VIN_SYS_5V0");
	assert_int_equal(req.energy_uj, 30000); /* 3000 mW x 10 ms */
	power_sampler_free(s);

	/* a named input rail that does not exist is a load error */
	cfg.request_rail = NULL;
	cfg.input_rail = "VDD_IN";
	{
		char err[128] = "";

		assert_int_equal(power_sampler_new(&cfg, &s, err, sizeof(err)), -ENOENT);
		assert_non_null(strstr(err, "VDD_IN"));
	}
	free(snap);
}

#define RAPL_DEV "sys/devices/virtual/powercap/intel-rapl/intel-rapl:0"

/* RAPL: package-0 wraps at 1 J; 20 W is 200 mJ per 10 ms sample. */
static void test_rapl_wraparound(void **state)
{
	const int64_t range = 1000000, pkg_mw = 20000, core_mw = 7000;
	struct power_config cfg;
	struct power_sampler *s;
	struct power_rail_info info;
	struct power_window w;
	int64_t t_start = fake_t, pkg = 999000, core = 0;

	(void)state;
	put(RAPL_DEV "/name", "package-0\n");
	put_num(RAPL_DEV "/max_energy_range_uj", range);
	put_num(RAPL_DEV "/energy_uj", pkg);
	put(RAPL_DEV "/intel-rapl:0:0/name", "core\n");
	put_num(RAPL_DEV "/intel-rapl:0:0/max_energy_range_uj", range);
	put_num(RAPL_DEV "/intel-rapl:0:0/energy_uj", core);
	link_rel("sys/class/powercap/intel-rapl", "../../devices/virtual/powercap/intel-rapl");
	link_rel("sys/class/powercap/intel-rapl:0",
		 "../../devices/virtual/powercap/intel-rapl/intel-rapl:0");
	link_rel("sys/class/powercap/intel-rapl:0:0",
		 "../../devices/virtual/powercap/intel-rapl/intel-rapl:0/intel-rapl:0:0");
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	assert_int_equal(power_rail_count(s), 2);
	assert_int_equal(power_rail_info(s, 0, &info), 0);
	assert_string_equal(info.name, "package-0");
	assert_string_equal(info.source, "rapl");
	assert_true(info.caps & POWER_CAP_ENERGY);
	assert_false(info.is_input); /* a package is not the board */
	assert_int_equal(power_rail_info(s, 1, &info), 0);
	assert_string_equal(info.name, "package-0/core");
	assert_int_equal(power_input_rail(s), -ENOENT);

	for (int k = 0; k <= 100; k++) {
		if (k) {
			fake_t += 10 * MS;
			pkg = (pkg + pkg_mw * 10) % range;   /* mW x ms = uJ */
			core = (core + core_mw * 10) % range;
			put_num(RAPL_DEV "/energy_uj", pkg);
			put_num(RAPL_DEV "/intel-rapl:0:0/energy_uj", core);
		}
		assert_int_equal(power_sampler_sample_once(s), 0);
	}
	/* one second, the counter wrapped 20 times: 20 J exactly */
	assert_int_equal(power_energy(s, 0, t_start, t_start + SEC, &w), 0);
	assert_int_equal(w.energy_uj, 20000000);
	assert_int_equal(w.samples, 101);
	/* edges between samples are interpolated */
	assert_int_equal(power_energy(s, 0, t_start + 123 * MS, t_start + 789 * MS, &w), 0);
	assert_int_equal(w.energy_uj, 20 * 666000);
	assert_int_equal(w.avg_power_mw, 20000);
	assert_int_equal(power_energy(s, 1, t_start + 5 * MS, t_start + 995 * MS, &w), 0);
	assert_int_equal(w.energy_uj, 7 * 990000);
	power_sampler_free(s);
}

static void test_battery(void **state)
{
	const char *bat = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0A:00/power_supply/BAT0";
	const char *adp = "sys/devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0003:00/power_supply/ADP1";
	struct power_config cfg;
	struct power_sampler *s;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	char rel[256];

	(void)state;
	snprintf(rel, sizeof(rel), "%s/type", bat);
	put(rel, "Battery\n");
	snprintf(rel, sizeof(rel), "%s/voltage_now", bat);
	put_num(rel, 12000000);   /* uV */
	snprintf(rel, sizeof(rel), "%s/current_now", bat);
	put_num(rel, -1500000);   /* uA, discharging */
	snprintf(rel, sizeof(rel), "%s/type", adp);
	put(rel, "Mains\n");
	snprintf(rel, sizeof(rel), "%s/online", adp);
	put_num(rel, 0);
	link_rel("sys/class/power_supply/BAT0",
		 "../../devices/LNXSYSTM:00/LNXSYBUS:00/PNP0C0A:00/power_supply/BAT0");
	link_rel("sys/class/power_supply/ADP1",
		 "../../devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0003:00/power_supply/ADP1");
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	assert_int_equal(power_rail_count(s), 1);
	assert_int_equal(power_sampler_sample_once(s), 0);
	fake_t += 100 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_string_equal(snap->rails[0].info.name, "BAT0");
	assert_string_equal(snap->rails[0].info.source, "battery");
	assert_int_equal(snap->rails[0].power_mw, 18000); /* 12 V x 1.5 A */
	assert_int_equal(snap->rails[0].voltage_mv, 12000);
	assert_int_equal(snap->rails[0].current_ma, 1500);
	assert_int_equal(snap->rails[0].energy_uj, 1800000);
	power_sampler_free(s);

	/* power_now, where the driver has it, is used as is; and a battery
	 * named as the input rail is the board total */
	snprintf(rel, sizeof(rel), "%s/power_now", bat);
	put_num(rel, 9500000);
	cfg.input_rail = "BAT0";
	s = new_sampler(&cfg);
	assert_int_equal(power_input_rail(s), 0);
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_int_equal(snap->rails[0].power_mw, 9500);
	power_sampler_free(s);
	free(snap);
}

/* Reload's setters: new estimate watts count from the next sample on (the
 * energy already counted stays); a new rate changes the period and a new
 * ring length keeps the newest samples. */
static void test_setters(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_window w;
	char path[512];
	int64_t t0;

	(void)state;
	base_config(&cfg, true);
	put("proc/self/stat", "77 (splitd) R 1 77 77 0 -1 0 0 0 0 0 30 10 0 0 20 0 1 0\n");
	cfg.estimate = POWER_ESTIMATE_AUTO;
	cfg.estimate_idle_mw = 2000;
	cfg.estimate_busy_core_mw = 1500;
	cfg.rate_hz = 100;
	cfg.ring_samples = 16;
	snprintf(path, sizeof(path), "%s/proc/self/stat", root);
	cfg.estimate_stat_path = path;	/* CPU time stays 40 ticks */
	s = new_sampler(&cfg);
	t0 = fake_t;
	assert_int_equal(power_sampler_sample_once(s), 0);
	fake_t += 200 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_sampler_set_estimate(s, 10000, 0), 0);
	fake_t += 100 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	/* 2 W x 0.2 s, then 10 W x 0.1 s */
	assert_int_equal(power_energy(s, 0, t0, t0 + 200 * MS, &w), 0);
	assert_int_equal(w.energy_uj, 400000);
	assert_int_equal(power_energy(s, 0, t0 + 200 * MS, t0 + 300 * MS, &w), 0);
	assert_int_equal(w.energy_uj, 1000000);
	assert_int_equal(power_sampler_set_estimate(s, -1, 0), -EINVAL);

	assert_int_equal(power_sample_period_ns(s), 10 * MS);
	assert_int_equal(power_sampler_set_rate(s, 250, 0), 0);
	assert_int_equal(power_sample_period_ns(s), 4 * MS);
	for (int i = 0; i < 4; i++) {
		fake_t += 100 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
	}
	/* 7 samples; a ring of 3 keeps the newest three (t0 + 500..700 ms) */
	assert_int_equal(power_sampler_set_rate(s, 250, 3), 0);
	assert_int_equal(power_energy(s, 0, t0 + 500 * MS, t0 + 700 * MS, &w), 0);
	assert_int_equal(w.energy_uj, 2000000);
	assert_int_equal(power_energy(s, 0, t0 + 300 * MS, t0 + 700 * MS, &w), -ERANGE);
	fake_t += 100 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_energy(s, 0, t0 + 600 * MS, t0 + 800 * MS, &w), 0);
	assert_int_equal(w.energy_uj, 2000000);
	assert_int_equal(power_sampler_set_rate(s, 0, 0), -EINVAL);
	power_sampler_free(s);
}

static void test_estimate(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_rail_info info;
	struct power_request req;
	uint64_t id;
	char err[256];
	int64_t t_start;

	(void)state;
	/* an empty tree with the estimate off: a clear error */
	base_config(&cfg, true);
	assert_int_equal(power_sampler_new(&cfg, &s, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no power sensor"));

	/* CPU time from a stat file: utime + stime = 40 ticks */
	put("proc/self/stat", "77 (splitd worker) R 1 77 77 0 -1 0 0 0 0 0 30 10 0 0 20 0 1 0\n");
	cfg.estimate = POWER_ESTIMATE_AUTO;
	cfg.estimate_idle_mw = 2000;
	cfg.estimate_busy_core_mw = 1500;
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/proc/self/stat", root);
		cfg.estimate_stat_path = path;
		s = new_sampler(&cfg);
	}
	assert_int_equal(power_rail_count(s), 1);
	assert_int_equal(power_rail_info(s, 0, &info), 0);
	assert_string_equal(info.method, "estimate");
	assert_string_equal(info.source, "estimate");
	assert_true(info.is_input); /* stands in for the board: nothing measured */
	t_start = fake_t;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_request_begin(s, &id), 0);
	/* 200 ms wall, 0.1 s CPU (10 ticks at 100 Hz... or whatever CLK_TCK is) */
	fake_t += 200 * MS;
	{
		long tck = sysconf(_SC_CLK_TCK);
		long ticks = 40 + tck / 10;
		char line[128];

		snprintf(line, sizeof(line), "77 (splitd worker) R 1 77 77 0 -1 0 0 0 0 0 %ld 10 0 0\n",
			 ticks - 10);
		put("proc/self/stat", "%s", line);
	}
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_request_end(s, id, 0, &req), 0);
	assert_string_equal(req.method, "estimate");
	assert_string_equal(req.rail, "estimate");
	/* 2000 mW x 0.2 s + 1500 mW x 0.1 s = 400 mJ + 150 mJ */
	assert_int_equal(req.energy_uj, 550000);
	assert_int_equal(t_start + 200 * MS, req.end_ns);
	power_sampler_free(s);

	/* CLOCK_PROCESS_CPUTIME_ID: at least the idle part, at most idle plus
	 * every core busy */
	cfg.estimate_stat_path = NULL;
	cfg.clock_ns = NULL;
	s = new_sampler(&cfg);
	{
		struct power_snapshot *snap = malloc(sizeof(*snap));
		struct timespec d = { 0, 50 * MS };
		int64_t t0 = power_now_ns(s), t1;

		assert_int_equal(power_sampler_sample_once(s), 0);
		nanosleep(&d, NULL);
		assert_int_equal(power_sampler_sample_once(s), 0);
		t1 = power_now_ns(s);
		assert_int_equal(power_snapshot(s, snap), 0);
		assert_true(snap->rails[0].energy_uj >= (int64_t)(2000.0 * 0.045 * 1000));
		assert_true(snap->rails[0].energy_uj <=
			    (int64_t)((2000.0 + 1500.0 * 2) * (double)(t1 - t0) / 1e6) + 1);
		free(snap);
	}
	power_sampler_free(s);
}

static void test_nvml(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_rail_info info;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	char err[256];

	(void)state;
	/* absent (as on these machines): simply not found */
	base_config(&cfg, true);
	cfg.sources = POWER_SRC_NVML;
	cfg.nvml_lib = NULL; /* the real name, libnvidia-ml.so.1 */
	if (power_sampler_new(&cfg, &s, err, sizeof(err)) == 0) {
		/* a machine with a driver: GPUs are found */
		assert_true(power_rail_count(s) > 0);
		power_sampler_free(s);
	} else {
		assert_non_null(strstr(err, "no power sensor"));
	}
	cfg.nvml_lib = "/nonexistent/libnvidia-ml.so.1";
	assert_int_equal(power_sampler_new(&cfg, &s, err, sizeof(err)), -ENODEV);

	/* a stand-in library: GPU0 energy counter, GPU1 power only */
	cfg.nvml_lib = FAKE_NVML_PATH;
	s = new_sampler(&cfg);
	assert_int_equal(power_rail_count(s), 2);
	assert_int_equal(power_rail_info(s, 0, &info), 0);
	assert_string_equal(info.name, "GPU0");
	assert_string_equal(info.source, "nvml");
	assert_string_equal(info.device, "nvml:0 Fake GPU A");
	assert_true(info.caps & POWER_CAP_ENERGY);
	assert_int_equal(power_rail_info(s, 1, &info), 0);
	assert_false(info.caps & POWER_CAP_ENERGY);
	for (int k = 0; k < 5; k++) {
		assert_int_equal(power_sampler_sample_once(s), 0);
		fake_t += 10 * MS;
	}
	assert_int_equal(power_snapshot(s, snap), 0);
	/* 4 intervals of 1 J each (1000 mJ per read), 100 W */
	assert_int_equal(snap->rails[0].energy_uj, 4000000);
	assert_int_equal(snap->rails[0].power_mw, 100000);
	assert_int_equal(snap->rails[1].power_mw, 75000);
	assert_int_equal(snap->rails[1].energy_uj, 3000000); /* 75 W x 40 ms */
	power_sampler_free(s);
	free(snap);
}

/* ---- energy over windows, requests ---- */

/* VDD_IN follows P(t) = 4000 + 2000 t mW (t in s from t_start), written
 * before each 10 ms sample: the trapezoid is exact on a line. */
static int64_t ramp_start;

static double ramp_mw(int64_t t)
{
	return 4000.0 + 2000.0 * (double)(t - ramp_start) / 1e9;
}

/* exact integral of the ramp over [a, b], uJ */
static double ramp_uj(int64_t a, int64_t b)
{
	double x = (double)(a - ramp_start) / 1e9, y = (double)(b - ramp_start) / 1e9;

	return (4000.0 * (y - x) + 1000.0 * (y * y - x * x)) * 1000.0;
}

static void ramp_samples(struct power_sampler *s, int n)
{
	for (int k = 0; k < n; k++) {
		if (k)
			fake_t += 10 * MS;
		put_num(NX_IIO "/in_power0_input", llround(ramp_mw(fake_t)));
		assert_int_equal(power_sampler_sample_once(s), 0);
	}
}

static void test_energy_windows(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_window w;
	static const int64_t win[][2] = { { 0, 1000 }, { 123, 789 }, { 5, 6 },
					  { 995, 1000 }, { 400, 400 } };

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, true);
	cfg.ring_samples = 128;
	s = new_sampler(&cfg);
	ramp_start = fake_t;
	ramp_samples(s, 101);
	for (size_t i = 0; i < sizeof(win) / sizeof(*win); i++) {
		int64_t a = ramp_start + win[i][0] * MS, b = ramp_start + win[i][1] * MS;

		assert_int_equal(power_energy(s, 0, a, b, &w), 0);
		assert_true(fabs(w.energy_uj_exact - ramp_uj(a, b)) <= RAMP_TOL(ramp_uj(a, b)));
	}
	assert_int_equal(power_energy(s, 0, ramp_start, ramp_start + SEC, &w), 0);
	assert_int_equal(w.energy_uj, 5000000);
	assert_int_equal(w.samples, 101);
	assert_int_equal(power_energy(s, 0, ramp_start + 101 * MS, ramp_start + 109 * MS, &w), 0);
	assert_int_equal(w.samples, 2); /* the two it is interpolated from */
	/* outside the buffer, or reversed */
	assert_int_equal(power_energy(s, 0, ramp_start - 1, ramp_start + MS, &w), -ERANGE);
	assert_int_equal(power_energy(s, 0, ramp_start, ramp_start + SEC + 1, &w), -ERANGE);
	assert_int_equal(power_energy(s, 0, ramp_start + 2, ramp_start + 1, &w), -EINVAL);

	/* the ring keeps the newest 128 samples: older windows are gone */
	ramp_samples(s, 100);
	assert_int_equal(power_energy(s, 0, ramp_start, ramp_start + SEC, &w), -ERANGE);
	{
		int64_t a = fake_t - 1000 * MS, b = fake_t - 10 * MS;

		assert_int_equal(power_energy(s, 0, a, b, &w), 0);
		assert_true(fabs(w.energy_uj_exact - ramp_uj(a, b)) <= RAMP_TOL(ramp_uj(a, b)));
	}
	power_sampler_free(s);
}

static void test_request_sharing(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_request ra, rb, rc_;
	uint64_t a, b, c;
	int64_t T;
	double idle, ea, eb, ec;

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	ramp_start = fake_t;
	ramp_samples(s, 101); /* no request yet: all of it is idle */
	T = ramp_start;
	/* the running mean of the idle ramp: 5000 mW */
	idle = 5000.0;
	/* A [100, 500] ms, B [300, 700], C [350, 400]; ends come in order */
	assert_int_equal(power_request_begin_at(s, T + 100 * MS, &a), 0);
	assert_int_equal(power_request_begin_at(s, T + 300 * MS, &b), 0);
	assert_int_equal(power_request_begin_at(s, T + 350 * MS, &c), 0);
	assert_int_equal(power_request_end_at(s, c, T + 400 * MS, 0, &rc_), 0);
	assert_int_equal(power_request_end_at(s, a, T + 500 * MS, 0, &ra), 0);
	assert_int_equal(power_request_end_at(s, b, T + 700 * MS, 0, &rb), 0);
	{
		struct power_request again;

		assert_int_equal(power_request_end_at(s, b, T + 700 * MS, 0, &again), -ENOENT);
	}
#define R(x, y) ramp_uj(T + (x) * MS, T + (y) * MS)
	ec = R(350, 400) / 3;
	ea = R(100, 300) + R(300, 350) / 2 + R(350, 400) / 3 + R(400, 500) / 2;
	eb = R(300, 350) / 2 + R(350, 400) / 3 + R(400, 500) / 2 + R(500, 700);
	assert_true(llabs(rc_.energy_uj - llround(ec)) <= 1);
	assert_true(llabs(ra.energy_uj - llround(ea)) <= 1);
	assert_true(llabs(rb.energy_uj - llround(eb)) <= 1);
	/* the shares add up to the rail's energy over the union */
	assert_true(fabs((double)(ra.energy_uj + rb.energy_uj + rc_.energy_uj) - R(100, 700)) <= 3);
	assert_int_equal(ra.sharing_max, 3);
	assert_int_equal(rc_.sharing_max, 3);
	assert_true(ra.has_idle);
	assert_int_equal(ra.idle_mw, 5000);
	/* above idle: each share less its part of the idle power */
	{
		double above_a = ea - idle * (200 + 50.0 / 2 + 50.0 / 3 + 100.0 / 2); /* mW ms = uJ */

		assert_true(llabs(ra.energy_above_idle_uj - llround(above_a)) <= 1);
	}
	assert_int_equal(ra.samples, 41);
	assert_string_equal(ra.rail, "VDD_IN");
	assert_string_equal(ra.method, "measured");
	assert_int_equal(ra.tail_extrapolated_ns, 0);
	assert_true(fabs(ra.sample_hz - 100.0) <= 4 * DBL_EPSILON * 100.0);	/* a count over a time: a few roundings */
#undef R
	power_sampler_free(s);
}

static void test_request_idle(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_request r;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	uint64_t id;
	int64_t t_begin;

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, true);
	s = new_sampler(&cfg);
	/* 3 W while nothing runs: the baseline */
	put_num(NX_IIO "/in_power0_input", 3000);
	for (int k = 0; k < 101; k++, fake_t += 10 * MS)
		assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_true(snap->idle_valid);
	assert_int_equal(snap->idle_mw, 3000);
	/* a request at 5 W: 2 W above idle; the baseline does not move */
	put_num(NX_IIO "/in_power0_input", 5000);
	t_begin = fake_t + 50 * MS;
	assert_int_equal(power_request_begin_at(s, t_begin, &id), 0);
	for (int k = 0; k < 21; k++, fake_t += 10 * MS)
		assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_request_end_at(s, id, t_begin + 150 * MS, 0, &r), 0);
	assert_int_equal(r.energy_uj, 750000);
	assert_int_equal(r.energy_above_idle_uj, 300000);
	assert_int_equal(r.idle_mw, 3000);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_int_equal(snap->idle_mw, 3000);
	assert_int_equal(snap->requests_active, 0);

	/* past the newest sample: the tail is extrapolated with the last power */
	assert_int_equal(power_request_begin_at(s, fake_t - 20 * MS, &id), 0);
	assert_int_equal(power_request_end_at(s, id, fake_t + 30 * MS, 0, &r), 0);
	assert_int_equal(r.tail_extrapolated_ns, 40 * MS);
	assert_int_equal(r.energy_uj, 250000);
	/* a request that began before the buffer has no energy */
	assert_int_equal(power_request_begin_at(s, 1, &id), 0);
	assert_int_equal(power_request_end_at(s, id, fake_t, 0, &r), -ERANGE);
	assert_non_null(r.reason);
	/* a fixed baseline from the config */
	power_sampler_free(s);
	cfg.idle_fixed_mw = 2500;
	s = new_sampler(&cfg);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_true(snap->idle_valid);
	assert_int_equal(snap->idle_mw, 2500);
	power_sampler_free(s);
	free(snap);
}

/* ---- faults ---- */

static void test_faults(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	struct power_window w;
	int64_t t_start;
	char path[512];

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, true);
	cfg.backoff_min_ms = 100;
	cfg.backoff_max_ms = 400;
	s = new_sampler(&cfg);
	t_start = fake_t;
	for (int k = 0; k < 20; k++, fake_t += 10 * MS)
		assert_int_equal(power_sampler_sample_once(s), 0);
	/* VDD_SOC's power file vanishes (driver unbound, I2C gone) */
	unlink_rel(NX_IIO "/in_power2_input");
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_false(snap->rails[2].up);
	assert_int_equal(snap->rails[2].last_error, -ENOENT);
	assert_int_equal(snap->rails[2].retry_in_ms, 100);
	assert_true(snap->rails[0].up && snap->rails[1].up);
	/* retried after 100 ms (at 300 ms), then next at 500 ms */
	for (int k = 0; k < 29; k++) {
		fake_t += 10 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
	}
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_int_equal(snap->rails[2].errors, 2);
	assert_false(snap->rails[2].up);
	/* it comes back: up at the next retry */
	put_num(NX_IIO "/in_power2_input", 1450);
	for (int k = 0; k < 20; k++) {
		fake_t += 10 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
	}
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_true(snap->rails[2].up);
	assert_int_equal(snap->rails[2].errors, 2);
	assert_int_equal(snap->rails[2].power_mw, 1450);
	/* the gap is bridged; constant power makes the bridge exact */
	assert_int_equal(power_energy(s, 2, t_start, fake_t, &w), 0);
	assert_int_equal(w.energy_uj, 1450 * (fake_t - t_start) / MS);
	assert_true(w.gaps > 20);
	assert_int_equal(power_energy(s, 0, t_start, fake_t, &w), 0);
	assert_int_equal(w.gaps, 0);

	/* garbage, an oversized file, a directory (unreadable): down, then up */
	static const char *bad[] = { "12x4\n", "", "-\n", " 5\n",
				     ("123456789012345678901234567890123456789012345678901234567890"
				      "123456789012345678901234567890\n") };
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad) + 1; i++) {
		int want;

		if (i < sizeof(bad) / sizeof(*bad)) {
			put_raw(NX_IIO "/in_power0_input", bad[i], strlen(bad[i]));
			want = strlen(bad[i]) > 64 ? -EOVERFLOW : -EINVAL;
		} else {
			unlink_rel(NX_IIO "/in_power0_input");
			snprintf(path, sizeof(path), "%s/" NX_IIO "/in_power0_input", root);
			assert_int_equal(mkdir(path, 0755), 0);
			want = -EISDIR;
		}
		fake_t += 10 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
		assert_int_equal(power_snapshot(s, snap), 0);
		assert_false(snap->rails[0].up);
		assert_int_equal(snap->rails[0].last_error, want);
		assert_true(snap->rails[1].up);
		if (i == sizeof(bad) / sizeof(*bad))
			rmdir(path);
		put_num(NX_IIO "/in_power0_input", 4912);
		fake_t += 500 * MS; /* past any back-off */
		assert_int_equal(power_sampler_sample_once(s), 0);
		assert_int_equal(power_snapshot(s, snap), 0);
		assert_true(snap->rails[0].up);
		assert_int_equal(snap->rails[0].power_mw, 4912);
	}
	/* without root, a file without read permission */
	if (geteuid() != 0) {
		snprintf(path, sizeof(path), "%s/" NX_IIO "/in_power1_input", root);
		chmod(path, 0);
		fake_t += 10 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
		assert_int_equal(power_snapshot(s, snap), 0);
		assert_int_equal(snap->rails[1].last_error, -EACCES);
		chmod(path, 0644);
	}
	/* the whole chip disappears: every rail down, the sampler goes on */
	snprintf(path, sizeof(path), "%s/" NX_DEV, root);
	{
		char moved[600];

		snprintf(moved, sizeof(moved), "%s.gone", path);
		assert_int_equal(rename(path, moved), 0);
		fake_t += 10 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
		assert_int_equal(power_snapshot(s, snap), 0);
		for (int i = 0; i < 3; i++)
			assert_false(snap->rails[i].up);
		assert_int_equal(rename(moved, path), 0);
		fake_t += 500 * MS;
		assert_int_equal(power_sampler_sample_once(s), 0);
		assert_int_equal(power_snapshot(s, snap), 0);
		for (int i = 0; i < 3; i++)
			assert_true(snap->rails[i].up);
	}
	power_sampler_free(s);
	free(snap);
}

/* keep_fds: pread() at 0 on kept descriptors, as on real sysfs; the file
 * is rewritten in place here (rename would leave the old inode open). */
static void test_keep_fds(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	char path[512];
	int fd;

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, true);
	cfg.keep_fds = true;
	s = new_sampler(&cfg);
	assert_int_equal(power_sampler_sample_once(s), 0);
	snprintf(path, sizeof(path), "%s/" NX_IIO "/in_power0_input", root);
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "6100\n", 5), 5);
	close(fd);
	fake_t += 10 * MS;
	assert_int_equal(power_sampler_sample_once(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_int_equal(snap->rails[0].power_mw, 6100);
	assert_int_equal(snap->rails[0].energy_uj, (4912 + 6100) * 10 / 2);
	power_sampler_free(s);
	free(snap);
}

/* ---- the sampler thread against a replayed trace ---- */

/* Piecewise-linear pieces of the traces, and their exact integrals. */
struct knot { double t, y; };

static double pwl_at(const struct knot *k, int n, double t)
{
	if (t <= k[0].t)
		return k[0].y;
	for (int i = 0; i + 1 < n; i++)
		if (t <= k[i + 1].t)
			return k[i].y + (k[i + 1].y - k[i].y) * (t - k[i].t) / (k[i + 1].t - k[i].t);
	return k[n - 1].y;
}

static double pwl_integral(const struct knot *k, int n, double a, double b)
{
	double sum = 0;

	/* flat before the first knot and after the last */
	if (a < k[0].t)
		sum += k[0].y * (fmin(b, k[0].t) - a);
	if (b > k[n - 1].t)
		sum += k[n - 1].y * (b - fmax(a, k[n - 1].t));
	for (int i = 0; i + 1 < n; i++) {
		double x0 = fmax(a, k[i].t), x1 = fmin(b, k[i + 1].t);

		if (x1 > x0)
			sum += (pwl_at(k, n, x0) + pwl_at(k, n, x1)) / 2 * (x1 - x0);
	}
	return sum;
}

/* VDD_IN: 5 W + 1.5 W sine (1.2 s) + an inference burst of 2.5 W with
 * 80 ms ramps; VDD_CPU_GPU_CV: a ramp; VDD_SOC: steps of 40 ms ramps. */
static const struct knot burst[] = { { 0.70, 0 }, { 0.78, 2500 }, { 0.92, 2500 }, { 1.00, 0 } };
static const struct knot cpu[] = { { 0.0, 800 }, { 1.5, 2300 } };
static const struct knot soc[] = { { 0.30, 1400 }, { 0.34, 1900 }, { 0.60, 1900 }, { 0.64, 1200 } };
#define NB (int)(sizeof(burst) / sizeof(*burst))
#define NC_ (int)(sizeof(cpu) / sizeof(*cpu))
#define NS_ (int)(sizeof(soc) / sizeof(*soc))
#define TRACE_S 1.45

static double trace_mw(int rail, double t)
{
	switch (rail) {
	case 0:
		return 5000 + 1500 * sin(2 * M_PI * t / 1.2) + pwl_at(burst, NB, t);
	case 1:
		return pwl_at(cpu, NC_, t);
	default:
		return pwl_at(soc, NS_, t);
	}
}

/* the analytic integral of the smooth trace, mW s */
static double trace_integral(int rail, double a, double b)
{
	switch (rail) {
	case 0:
		return 5000 * (b - a) +
		       1500 * 1.2 / (2 * M_PI) * (cos(2 * M_PI * a / 1.2) - cos(2 * M_PI * b / 1.2)) +
		       pwl_integral(burst, NB, a, b);
	case 1:
		return pwl_integral(cpu, NC_, a, b);
	default:
		return pwl_integral(soc, NS_, a, b);
	}
}

/* One write of the three files: each value became visible between lo and
 * hi (the rename is inside; a writer preempted there widens the bracket). */
struct written { double lo[3], hi[3]; long v[3]; };

struct writer {
	int64_t t0;
	struct written *log;
	size_t n, cap;
};

static int64_t mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * SEC + ts.tv_nsec;
}

static void write_rails(struct writer *w, double t_plan)
{
	static const char *files[] = { NX_IIO "/in_power0_input", NX_IIO "/in_power1_input",
				       NX_IIO "/in_power2_input" };
	struct written e;

	for (int r = 0; r < 3; r++) {
		e.v[r] = lround(trace_mw(r, t_plan));
		e.lo[r] = (double)(mono() - w->t0) / 1e9;
		put_num(files[r], e.v[r]);
		e.hi[r] = (double)(mono() - w->t0) / 1e9;
	}
	if (w->n < w->cap)
		w->log[w->n++] = e;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct timespec d = { 0, 1 * MS };
	double t;

	while ((t = (double)(mono() - w->t0) / 1e9) < TRACE_S) {
		write_rails(w, t);
		nanosleep(&d, NULL);
	}
	return NULL;
}

/* What the files held over [a, b]: each written value from its write on. */
/* What the file held over [a, b], each value visible from the middle of
 * its bracket on; *unc: how far the bracket widths alone could move that
 * (each change of value times half its bracket), mW s. */
static double written_integral(const struct writer *w, int rail, double a, double b,
			       double *unc)
{
	double sum = 0;

	*unc = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct written *e = &w->log[i];
		double from = (e->lo[rail] + e->hi[rail]) / 2;
		double to = i + 1 < w->n ? (w->log[i + 1].lo[rail] + w->log[i + 1].hi[rail]) / 2 : b;
		double x0 = fmax(a, from), x1 = fmin(b, to);

		if (x1 > x0)
			sum += (double)e->v[rail] * (x1 - x0);
		if (i > 0 && e->hi[rail] > a && e->lo[rail] < b)
			*unc += fabs((double)(e->v[rail] - w->log[i - 1].v[rail])) *
				(e->hi[rail] - e->lo[rail]) / 2;
	}
	return sum;
}

static void test_trace_integral(void **state)
{
	static const double win[][2] = { { 0.15, 0.55 }, { 0.40, 1.10 }, { 0.20, 1.30 },
					 { 0.65, 1.05 }, { 0.25, 0.70 } };
	struct power_config cfg;
	struct power_sampler *s;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	struct writer w = { 0 };
	pthread_t th;
	double worst = 0, worst_smooth = 0;

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, false);
	s = new_sampler(&cfg);
	w.cap = 20000;
	w.log = calloc(w.cap, sizeof(*w.log));
	assert_non_null(w.log);
	w.t0 = mono();
	write_rails(&w, 0); /* the value before the trace starts */
	for (int r = 0; r < 3; r++)
		w.log[0].lo[r] = w.log[0].hi[r] = -10;
	assert_int_equal(power_sampler_start(s), 0);
	assert_int_equal(power_sampler_start(s), -EALREADY);
	assert_int_equal(power_sampler_sample_once(s), -EBUSY);
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	pthread_join(th, NULL);
	{
		struct timespec d = { 0, 30 * MS };

		nanosleep(&d, NULL); /* a sample past the last window */
	}
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_true(snap->running);
	printf("# sampler: %.1f Hz measured (100 configured), %zu writes, "
	       "sampler CPU %.3f ms\n", snap->measured_hz, w.n, snap->sampler_cpu_ns / 1e6);
	assert_true(snap->measured_hz > 20); /* even on a loaded machine */
	for (size_t i = 0; i < sizeof(win) / sizeof(*win); i++) {
		for (int r = 0; r < 3; r++) {
			struct power_window pw;
			double a = win[i][0], b = win[i][1];
			double unc;
			double truth = written_integral(&w, r, a, b, &unc) * 1000; /* uJ */
			double smooth = trace_integral(r, a, b) * 1000;
			double err, err_smooth;

			assert_int_equal(power_energy(s, r, w.t0 + (int64_t)(a * 1e9),
						      w.t0 + (int64_t)(b * 1e9), &pw), 0);
			err = fabs(pw.energy_uj_exact - truth) / truth;
			err_smooth = fabs(pw.energy_uj_exact - smooth) / smooth;
			unc *= 1000;
			printf("# rail %d [%.2f, %.2f] s: %.6f J sampled, %.6f J written "
			       "(error %.4f%%, write-time bracket %.4f%%), %.6f J analytic "
			       "(%.4f%%), %u samples\n",
			       r, a, b, pw.energy_uj_exact / 1e6, truth / 1e6, err * 100,
			       unc / truth * 100, smooth / 1e6, err_smooth * 100, pw.samples);
			if (err > worst)
				worst = err;
			if (err_smooth > worst_smooth)
				worst_smooth = err_smooth;
			/* 1%: the accuracy the sampler's integral must reach
			 * on this trace (a specification, not a rounding
			 * tolerance: the integration's float error is ~1e-12
			 * relative), widened only by the measured write-time
			 * brackets (microseconds unless the writer was
			 * preempted) */
			assert_true(fabs(pw.energy_uj_exact - truth) < 0.01 * truth + unc);
			assert_true(pw.samples >= 2);
		}
	}
	printf("# worst error against the written trace: %.4f%% (analytic trace: %.4f%%)\n",
	       worst * 100, worst_smooth * 100);
	assert_int_equal(power_sampler_stop(s), 0);
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_false(snap->running);
	assert_true(snap->sampler_cpu_ns > 0);
	power_sampler_free(s);
	free(w.log);
	free(snap);
}

static void test_request_threaded(void **state)
{
	struct power_config cfg;
	struct power_sampler *s;
	struct power_request r;
	struct power_snapshot *snap;
	struct timespec d = { 0, 60 * MS };
	uint64_t id;

	(void)state;
	make_xavier_nx_r32();
	base_config(&cfg, false);
	s = new_sampler(&cfg);
	snap = malloc(sizeof(*snap));
	assert_non_null(snap);
	assert_int_equal(power_sampler_start(s), 0);
	/* start has read every rail, however late the thread first runs */
	assert_int_equal(power_snapshot(s, snap), 0);
	assert_true(snap->t_ns > 0);
	assert_true(snap->rails[0].up);
	assert_true(snap->rails[0].samples >= 1);
	assert_int_equal(snap->rails[0].power_mw, 4912);
	assert_int_equal(snap->rails[0].voltage_mv, 5072);
	free(snap);
	nanosleep(&d, NULL);
	assert_int_equal(power_request_begin(s, &id), 0);
	nanosleep(&d, NULL);
	/* waiting for the sample after the end: nothing extrapolated */
	assert_int_equal(power_request_end(s, id, 500, &r), 0);
	assert_int_equal(r.tail_extrapolated_ns, 0);
	assert_true(r.samples >= 2);
	/* a constant 4912 mW: exact, whatever the timing */
	assert_true(llabs(r.energy_uj - 4912 * (r.end_ns - r.begin_ns) / MS) <= 2);
	power_sampler_free(s); /* stops it */
}

/* ---- the command ---- */

static int run_cmd(char *out, size_t cap, int argc, char **argv)
{
	char path[512];
	int saved, fd, rc;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/cmd.out", root);
	fflush(stdout);
	saved = dup(1);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 1);
	close(fd);
	rc = cmd_power(argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	fd = open(path, O_RDONLY);
	n = read(fd, out, cap - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	return rc;
}

static void test_cmd_power(void **state)
{
	static char out[1 << 16];
	char *argv[12];
	json_error_t jerr;
	int lines = 0;

	(void)state;
	make_xavier_nx_r32();
	{
		char *a[] = { "power", "--sysfs-root", root, "--interval-ms", "30",
			      "--count", "3", "--json", NULL };

		memcpy(argv, a, sizeof(a));
	}
	assert_int_equal(run_cmd(out, sizeof(out), 8, argv), 0);
	for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, &jerr), *rails, *r0;

		printf("# %s\n", line); /* shown when a check below fails */
		assert_non_null(o);
		rails = json_object_get(o, "rails");
		assert_int_equal(json_array_size(rails), 3);
		r0 = json_array_get(rails, 0);
		assert_string_equal(json_string_value(json_object_get(r0, "rail")), "VDD_IN");
		assert_string_equal(json_string_value(json_object_get(r0, "source")), "ina3221x");
		/* integer mW, mV, mA over 1000: one rounding, and jansson prints
		 * doubles so that they read back exactly */
		assert_true(fabs(json_real_value(json_object_get(r0, "watts")) - 4.912) <= DBL_EPSILON * 4.912);
		assert_true(fabs(json_real_value(json_object_get(r0, "volts")) - 5.072) <= DBL_EPSILON * 5.072);
		assert_true(fabs(json_real_value(json_object_get(r0, "amps")) - 0.968) <= DBL_EPSILON * 0.968);
		/* joules and t_s both from the first sample, at a constant
		 * 4.912 W: equal up to the printed digits, however late the
		 * sampler thread ran */
		assert_true(json_real_value(json_object_get(o, "t_s")) >= 0);
		/* energy is kept in whole microjoules: at most 1 uJ of rounding
		 * per sample interval (t_s x sample_hz of them, and the ends) */
		double t_s = json_real_value(json_object_get(o, "t_s"));
		double hz = json_real_value(json_object_get(o, "sample_hz"));
		assert_true(fabs(json_real_value(json_object_get(r0, "joules")) - 4.912 * t_s) <=
			    (t_s * hz + 2) * 1e-6);
		assert_string_equal(json_string_value(json_object_get(o, "board_rail")), "VDD_IN");
		json_decref(o);
		lines++;
	}
	assert_int_equal(lines, 3);

	{
		char *a[] = { "power", "--sysfs-root", root, "--interval-ms", "20",
			      "--count", "1", NULL };

		memcpy(argv, a, sizeof(a));
	}
	assert_int_equal(run_cmd(out, sizeof(out), 7, argv), 0);
	printf("# %s", out);
	assert_non_null(strstr(out, "VDD_IN 4.912W 5.072V 0.968A"));
	assert_non_null(strstr(out, "VDD_SOC 1.450W"));

	/* bad options: one line naming it, status 2 */
	{
		char *bad[][4] = { { "power", "--bogus", NULL, NULL },
				   { "power", "--interval-ms", "0", NULL },
				   { "power", "--count", "x", NULL },
				   { "power", "--interval-ms", NULL, NULL },
				   { "power", "stray", NULL, NULL } };
		int argcs[] = { 2, 3, 3, 2, 2 };

		for (size_t i = 0; i < sizeof(argcs) / sizeof(*argcs); i++)
			assert_int_equal(run_cmd(out, sizeof(out), argcs[i], bad[i]), 2);
	}
	/* no sensor and the estimate is on by default: it says so */
	{
		char empty[600];
		char *a[] = { "power", "--sysfs-root", empty, "--interval-ms", "10",
			      "--count", "1", "--json", NULL };

		snprintf(empty, sizeof(empty), "%s/empty", root);
		mkdirs(empty);
		memcpy(argv, a, sizeof(a));
		assert_int_equal(run_cmd(out, sizeof(out), 8, argv), 0);
		assert_non_null(strstr(out, "\"method\":\"estimate\""));
	}
}

/* ---- parsers (the fuzz target replays many more) ---- */

static void test_parsers(void **state)
{
	int64_t v;
	uint64_t t;
	char l[POWER_NAME_MAX];

	(void)state;
	assert_int_equal(power_parse_int64("4912\n", 5, &v), 0);
	assert_int_equal(v, 4912);
	assert_int_equal(power_parse_int64("-42", 3, &v), 0);
	assert_int_equal(v, -42);
	assert_int_equal(power_parse_int64("4912 \n", 6, &v), -EINVAL);
	assert_int_equal(power_parse_int64("0x10", 4, &v), -EINVAL);
	assert_int_equal(power_parse_int64("9223372036854775808\n", 20, &v), -ERANGE);
	assert_int_equal(power_parse_label("VDD_CPU_GPU_CV\n", 15, l, sizeof(l)), 0);
	assert_string_equal(l, "VDD_CPU_GPU_CV");
	assert_int_equal(power_parse_label("VDD\x01IN", 6, l, sizeof(l)), -EINVAL);
	assert_int_equal(power_parse_proc_stat("9 (x) S 1 1 1 0 -1 0 0 0 0 0 3 4 0", 34, &t), 0);
	assert_int_equal(t, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parsers),
		cmocka_unit_test_setup_teardown(test_xavier_nx_r32, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_orin_nx_r35, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_orin_r36_samples, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_agx_orin_no_input, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_rapl_wraparound, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_battery, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_estimate, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_setters, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_nvml, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_energy_windows, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_request_sharing, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_request_idle, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_faults, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_keep_fds, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_trace_integral, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_request_threaded, setup_tree, teardown_tree),
		cmocka_unit_test_setup_teardown(test_cmd_power, setup_tree, teardown_tree),
	};

	return cmocka_run_group_tests_name("power", tests, NULL, NULL);
}
#endif
