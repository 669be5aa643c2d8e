/* The Jetson INA3221 monitors, found by scanning sys/bus/i2c/devices/NAME:
 *   ina3221x  NVIDIA's iio driver (L4T R32): iio:deviceN/rail_name_K,
 *             in_powerK_input (mW), in_voltageK_input (mV),
 *             in_currentK_input (mA), K = 0..2
 *   ina3221   mainline hwmon driver (L4T R35/R36): hwmon/hwmonN/inK_label,
 *             inK_input (mV), currK_input (mA), K = 1..3; P = V x I;
 *             update_interval (ms) and samples on the chip. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "power-impl.h"

/* Default INA3221 conversion time (bus and shunt each), microseconds. */
#define INA3221_CONV_US 1100

typedef int (*chip_fn)(struct power_sampler *s, const char *dev_dir,
		       const char *dev_name);

static int only_dirs_prefixed(const struct dirent *d, const char *prefix)
{
	return d->d_name[0] != '.' && !strncmp(d->d_name, prefix, strlen(prefix));
}

static int is_iio_dev(const struct dirent *d)
{
	return only_dirs_prefixed(d, "iio:device");
}

static int is_hwmon_dev(const struct dirent *d)
{
	return only_dirs_prefixed(d, "hwmon");
}

static int not_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Calls fn for each i2c device whose name file says `want`. */
static int scan_i2c(struct power_sampler *s, const char *want, chip_fn fn)
{
	char *base = power_root_path(s, "/sys/bus/i2c/devices");
	struct dirent **ents = NULL;
	int n, i, rc = 0;

	if (!base)
		return -ENOMEM;
	n = scandir(base, &ents, not_dot, alphasort);
	if (n < 0) {
		free(base);
		return 0; /* no i2c bus: nothing of this kind */
	}
	for (i = 0; i < n; i++) {
		char name[POWER_NAME_MAX];
		char *dir = path_fmt("%s/%s", base, ents[i]->d_name);
		char *name_path = dir ? path_fmt("%s/name", dir) : NULL;

		if (!dir || !name_path) {
			rc = -ENOMEM;
		} else if (path_read_label(name_path, name, sizeof(name)) == 0 &&
			   !strcmp(name, want)) {
			int r = fn(s, dir, ents[i]->d_name);

			if (r < 0)
				rc = r;
		}
		free(name_path);
		free(dir);
		if (rc < 0)
			break;
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	free(base);
	return rc;
}

/* First subdirectory of dir matching filter, as a new path. */
static char *first_subdir(const char *dir, int (*filter)(const struct dirent *))
{
	struct dirent **ents = NULL;
	char *p = NULL;
	int n = scandir(dir, &ents, filter, alphasort);

	if (n <= 0) {
		free(ents);
		return NULL;
	}
	p = path_fmt("%s/%s", dir, ents[0]->d_name);
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return p;
}

static int iio_chip(struct power_sampler *s, const char *dev_dir,
		    const char *dev_name)
{
	char *iio = first_subdir(dev_dir, is_iio_dev);
	int rc = 0;

	if (!iio)
		return 0;
	for (int k = 0; k < 3 && rc == 0; k++) {
		char label[POWER_NAME_MAX];
		char *lp = path_fmt("%s/rail_name_%d", iio, k);
		char *pp = path_fmt("%s/in_power%d_input", iio, k);
		char *vp = path_fmt("%s/in_voltage%d_input", iio, k);
		char *ip = path_fmt("%s/in_current%d_input", iio, k);
		struct power_rail_impl *r;

		if (!lp || !pp || !vp || !ip) {
			rc = -ENOMEM;
			goto next;
		}
		if (path_read_label(lp, label, sizeof(label)) < 0 ||
		    power_is_skipped_label(label) || !path_exists(pp))
			goto next;
		r = power_add_rail(s, &power_ina3221x_ops, NULL, label, dev_name);
		if (!r) {
			rc = -ENOSPC;
			goto next;
		}
		r->channel = k;
		r->info.caps = POWER_CAP_POWER;
		r->f[RAIL_FILE_POWER].path = pp;
		pp = NULL;
		if (path_exists(vp)) {
			r->f[RAIL_FILE_VOLTAGE].path = vp;
			r->info.caps |= POWER_CAP_VOLTAGE;
			vp = NULL;
		}
		if (path_exists(ip)) {
			r->f[RAIL_FILE_CURRENT].path = ip;
			r->info.caps |= POWER_CAP_CURRENT;
			ip = NULL;
		}
next:
		free(lp);
		free(pp);
		free(vp);
		free(ip);
	}
	free(iio);
	return rc;
}

static int hwmon_chip(struct power_sampler *s, const char *dev_dir,
		      const char *dev_name)
{
	char *hdir = path_fmt("%s/hwmon", dev_dir);
	char *hw = hdir ? first_subdir(hdir, is_hwmon_dev) : NULL;
	int64_t interval_ms = 0, samples = 0;
	int rc = 0, first = s->n_rails, enabled = 0;

	free(hdir);
	if (!hw)
		return 0;
	{
		char *ui = path_fmt("%s/update_interval", hw);
		char *sp = path_fmt("%s/samples", hw);

		if (ui && path_read_int64(ui, &interval_ms) < 0)
			interval_ms = 0;
		if (sp && path_read_int64(sp, &samples) < 0)
			samples = 0;
		free(ui);
		free(sp);
	}
	for (int k = 1; k <= 3 && rc == 0; k++) {
		char label[POWER_NAME_MAX];
		char *lp = path_fmt("%s/in%d_label", hw, k);
		char *vp = path_fmt("%s/in%d_input", hw, k);
		char *ip = path_fmt("%s/curr%d_input", hw, k);
		char *ep = path_fmt("%s/in%d_enable", hw, k);
		struct power_rail_impl *r;
		int64_t en = 1;

		if (!lp || !vp || !ip || !ep) {
			rc = -ENOMEM;
			goto next;
		}
		if (path_read_label(lp, label, sizeof(label)) < 0 ||
		    power_is_skipped_label(label))
			goto next;
		if (path_exists(ep) && path_read_int64(ep, &en) == 0 && en == 0)
			goto next;
		if (!path_exists(vp) || !path_exists(ip))
			goto next;
		r = power_add_rail(s, &power_ina3221_ops, NULL, label, dev_name);
		if (!r) {
			rc = -ENOSPC;
			goto next;
		}
		enabled++;
		r->channel = k;
		r->info.caps = POWER_CAP_POWER | POWER_CAP_VOLTAGE | POWER_CAP_CURRENT;
		r->f[RAIL_FILE_VOLTAGE].path = vp;
		r->f[RAIL_FILE_CURRENT].path = ip;
		vp = ip = NULL;
next:
		free(lp);
		free(vp);
		free(ip);
		free(ep);
	}
	/* update_interval already counts channels and averaging; without it,
	 * derive it from samples and the default conversion times. */
	for (int i = first; i < s->n_rails; i++) {
		if (interval_ms > 0)
			s->rails[i].info.update_interval_us = interval_ms * 1000;
		else if (samples > 0)
			s->rails[i].info.update_interval_us =
				samples * 2 * INA3221_CONV_US * enabled;
	}
	free(hw);
	return rc;
}

static int probe_iio(struct power_sampler *s, char *err, size_t errlen)
{
	int rc = scan_i2c(s, "ina3221x", iio_chip);

	if (rc < 0)
		snprintf(err, errlen, "ina3221x: scanning i2c devices failed: %s",
			 strerror(-rc));
	return rc;
}

static int probe_hwmon(struct power_sampler *s, char *err, size_t errlen)
{
	int rc = scan_i2c(s, "ina3221", hwmon_chip);

	if (rc < 0)
		snprintf(err, errlen, "ina3221: scanning i2c devices failed: %s",
			 strerror(-rc));
	return rc;
}

const struct power_source_ops power_ina3221x_ops = {
	.name = "ina3221x",
	.kind = POWER_SRC_INA3221X,
	.probe = probe_iio,
};

const struct power_source_ops power_ina3221_ops = {
	.name = "ina3221",
	.kind = POWER_SRC_INA3221,
	.probe = probe_hwmon,
};
