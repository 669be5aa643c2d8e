/* The sources under sys/class:
 *   rapl     powercap/intel-rapl:Z[:S]/{name,energy_uj,max_energy_range_uj}
 *   hwmon    hwmon/hwmonN/{powerK_input (uW), energyK_input (uJ)}
 *   battery  power_supply/X/{type=Battery, power_now (uW) or
 *            voltage_now (uV) x current_now (uA)} */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "power-impl.h"

static int not_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

typedef int (*entry_fn)(struct power_sampler *s, const char *dir,
			const char *entry);

static int scan_class(struct power_sampler *s, const char *rel, entry_fn fn)
{
	char *base = power_root_path(s, rel);
	struct dirent **ents = NULL;
	int n, i, rc = 0;

	if (!base)
		return -ENOMEM;
	n = scandir(base, &ents, not_dot, alphasort);
	for (i = 0; i < n; i++) {
		char *dir = rc == 0 ? path_fmt("%s/%s", base, ents[i]->d_name) : NULL;

		if (rc == 0 && !dir)
			rc = -ENOMEM;
		if (rc == 0)
			rc = fn(s, dir, ents[i]->d_name);
		free(dir);
	}
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	free(base);
	return rc;
}

/* ---- RAPL ---- */

static int rapl_zone(struct power_sampler *s, const char *dir, const char *entry)
{
	char zname[POWER_NAME_MAX], name[POWER_NAME_MAX];
	char *np = NULL, *ep = NULL, *mp = NULL, *pp = NULL;
	int64_t range = 0;
	struct power_rail_impl *r;
	const char *sub;
	int rc = 0;

	if (strncmp(entry, "intel-rapl:", 11))
		return 0;
	np = path_fmt("%s/name", dir);
	ep = path_fmt("%s/energy_uj", dir);
	mp = path_fmt("%s/max_energy_range_uj", dir);
	if (!np || !ep || !mp) {
		rc = -ENOMEM;
		goto out;
	}
	if (path_read_label(np, zname, sizeof(zname)) < 0 || !path_exists(ep))
		goto out;
	if (path_read_int64(mp, &range) < 0 || range <= 0)
		range = 0;
	/* a sub-zone (intel-rapl:0:1) lives in its parent's directory and is
	 * named after it */
	sub = strchr(entry + 11, ':');
	if (sub) {
		char parent[POWER_NAME_MAX];
		int plen = (int)(sub - entry);

		pp = path_fmt("%s/../name", dir);
		if (!pp) {
			rc = -ENOMEM;
			goto out;
		}
		if (path_read_label(pp, parent, sizeof(parent)) < 0)
			snprintf(parent, sizeof(parent), "%.*s", plen, entry);
		snprintf(name, sizeof(name), "%.14s/%.15s", parent, zname);
	} else {
		snprintf(name, sizeof(name), "%s", zname);
	}
	r = power_add_rail(s, &power_rapl_ops, NULL, name, entry);
	if (!r) {
		rc = -ENOSPC;
		goto out;
	}
	r->info.caps = POWER_CAP_ENERGY | POWER_CAP_POWER;
	r->f[RAIL_FILE_ENERGY].path = ep;
	ep = NULL;
	r->wrap_uj = (double)range;
	/* psys is the platform's total; packages and their sub-zones are not */
	if (!s->input_name && !strcmp(zname, "psys"))
		r->info.is_input = true;
out:
	free(np);
	free(ep);
	free(mp);
	free(pp);
	return rc;
}

static int probe_rapl(struct power_sampler *s, char *err, size_t errlen)
{
	int rc = scan_class(s, "/sys/class/powercap", rapl_zone);

	if (rc < 0)
		snprintf(err, errlen, "rapl: scanning powercap failed: %s",
			 strerror(-rc));
	return rc;
}

const struct power_source_ops power_rapl_ops = {
	.name = "rapl",
	.kind = POWER_SRC_RAPL,
	.probe = probe_rapl,
};

/* ---- generic hwmon ---- */

static int hwmon_dev(struct power_sampler *s, const char *dir, const char *entry)
{
	char dname[POWER_NAME_MAX];
	char *np = path_fmt("%s/name", dir);
	int rc = 0;

	if (!np)
		return -ENOMEM;
	if (path_read_label(np, dname, sizeof(dname)) < 0)
		snprintf(dname, sizeof(dname), "%s", entry);
	free(np);
	/* the INA3221 is read through its i2c device, with its labels */
	if (!strcmp(dname, "ina3221"))
		return 0;
	for (int kind = 0; kind < 2 && rc == 0; kind++) {
		const char *what = kind ? "energy" : "power";

		for (int k = 1; k <= 8 && rc == 0; k++) {
			char label[POWER_NAME_MAX], name[POWER_NAME_MAX];
			char *ip = path_fmt("%s/%s%d_input", dir, what, k);
			char *lp = path_fmt("%s/%s%d_label", dir, what, k);
			struct power_rail_impl *r;

			if (!ip || !lp) {
				rc = -ENOMEM;
			} else if (!path_exists(ip) && !kind) {
				/* some drivers offer only the average */
				free(ip);
				ip = path_fmt("%s/power%d_average", dir, k);
			}
			if (rc == 0 && ip && path_exists(ip)) {
				if (path_read_label(lp, label, sizeof(label)) == 0)
					snprintf(name, sizeof(name), "%s", label);
				else
					snprintf(name, sizeof(name), "%.16s/%s%d",
						 dname, what, k);
				r = power_add_rail(s, &power_hwmon_ops, NULL,
						   name, entry);
				if (!r) {
					rc = -ENOSPC;
				} else if (kind) {
					r->info.caps = POWER_CAP_ENERGY | POWER_CAP_POWER;
					r->f[RAIL_FILE_ENERGY].path = ip;
					ip = NULL;
				} else {
					r->info.caps = POWER_CAP_POWER;
					r->f[RAIL_FILE_POWER].path = ip;
					r->scale[RAIL_FILE_POWER] = 1e-3; /* uW */
					ip = NULL;
				}
			} else if (!ip && rc == 0) {
				rc = -ENOMEM;
			}
			free(ip);
			free(lp);
		}
	}
	return rc;
}

static int probe_hwmon(struct power_sampler *s, char *err, size_t errlen)
{
	int rc = scan_class(s, "/sys/class/hwmon", hwmon_dev);

	if (rc < 0)
		snprintf(err, errlen, "hwmon: scanning sensors failed: %s",
			 strerror(-rc));
	return rc;
}

const struct power_source_ops power_hwmon_ops = {
	.name = "hwmon",
	.kind = POWER_SRC_HWMON,
	.probe = probe_hwmon,
};

/* ---- battery ---- */

static int battery_dev(struct power_sampler *s, const char *dir, const char *entry)
{
	char type[POWER_NAME_MAX];
	char *tp = path_fmt("%s/type", dir);
	char *pp = path_fmt("%s/power_now", dir);
	char *vp = path_fmt("%s/voltage_now", dir);
	char *ip = path_fmt("%s/current_now", dir);
	struct power_rail_impl *r;
	int rc = 0;

	if (!tp || !pp || !vp || !ip) {
		rc = -ENOMEM;
		goto out;
	}
	if (path_read_label(tp, type, sizeof(type)) < 0 || strcmp(type, "Battery"))
		goto out;
	if (!path_exists(pp) && !(path_exists(vp) && path_exists(ip)))
		goto out;
	r = power_add_rail(s, &power_battery_ops, NULL, entry, entry);
	if (!r) {
		rc = -ENOSPC;
		goto out;
	}
	if (path_exists(pp)) {
		r->f[RAIL_FILE_POWER].path = pp;
		r->scale[RAIL_FILE_POWER] = 1e-3;
		r->info.caps |= POWER_CAP_POWER;
		pp = NULL;
	}
	if (path_exists(vp)) {
		r->f[RAIL_FILE_VOLTAGE].path = vp;
		r->scale[RAIL_FILE_VOLTAGE] = 1e-3;
		r->info.caps |= POWER_CAP_VOLTAGE;
		vp = NULL;
	}
	if (path_exists(ip)) {
		r->f[RAIL_FILE_CURRENT].path = ip;
		r->scale[RAIL_FILE_CURRENT] = 1e-3;
		r->info.caps |= POWER_CAP_CURRENT;
		ip = NULL;
	}
	r->info.caps |= POWER_CAP_POWER;
out:
	free(tp);
	free(pp);
	free(vp);
	free(ip);
	return rc;
}

static int probe_battery(struct power_sampler *s, char *err, size_t errlen)
{
	int rc = scan_class(s, "/sys/class/power_supply", battery_dev);

	if (rc < 0)
		snprintf(err, errlen, "battery: scanning power_supply failed: %s",
			 strerror(-rc));
	return rc;
}

const struct power_source_ops power_battery_ops = {
	.name = "battery",
	.kind = POWER_SRC_BATTERY,
	.probe = probe_battery,
};
