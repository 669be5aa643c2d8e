/* The sampler: discovery, the sampling thread, the ring buffer, energy over
 * windows and the snapshot for /metrics. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "power-impl.h"

#define NS_PER_S 1000000000LL

static const struct power_source_ops *const measured_sources[] = {
	&power_ina3221x_ops, &power_ina3221_ops, &power_rapl_ops,
	&power_hwmon_ops, &power_battery_ops, &power_nvml_ops,
};

void power_config_init(struct power_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->sysfs_root = "";
	cfg->sources = POWER_SRC_ALL;
	cfg->rate_hz = 100;
	cfg->cap_by_sensor = true;
	cfg->ring_samples = 8192;
	cfg->keep_fds = true;
	cfg->aux_hz = 10;
	cfg->backoff_min_ms = 100;
	cfg->backoff_max_ms = 5000;
	cfg->idle_tau_ms = 30000;
	cfg->idle_fixed_mw = -1;
	cfg->estimate = POWER_ESTIMATE_AUTO;
	cfg->estimate_idle_mw = 2000;
	cfg->estimate_busy_core_mw = 1500;
}

const char *power_source_name(unsigned kind)
{
	for (size_t i = 0; i < sizeof(measured_sources) / sizeof(*measured_sources); i++)
		if (measured_sources[i]->kind == kind)
			return measured_sources[i]->name;
	return kind == POWER_SRC_ESTIMATE ? power_estimate_ops.name : NULL;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

int64_t power_now_ns(const struct power_sampler *s)
{
	if (s && s->cfg.clock_ns)
		return s->cfg.clock_ns(s->cfg.clock_ctx);
	return mono_ns();
}

const struct power_config *power_sampler_config(const struct power_sampler *s)
{
	return &s->cfg;
}

unsigned power_sampler_rail_total(const struct power_sampler *s)
{
	return (unsigned)s->n_rails;
}

char *power_root_path(const struct power_sampler *s, const char *rel)
{
	return path_fmt("%s%s", s->root, rel);
}

struct power_rail_impl *power_add_rail(struct power_sampler *s,
				       const struct power_source_ops *ops,
				       void *src, const char *name,
				       const char *device)
{
	struct power_rail_impl *r;
	char unique[POWER_NAME_MAX];
	int dup = 1;

	if (s->n_rails >= POWER_MAX_RAILS)
		return NULL;
	snprintf(unique, sizeof(unique), "%s", name);
	while (power_rail_find(s, unique) >= 0)
		snprintf(unique, sizeof(unique), "%.24s_%d", name, ++dup % 100);
	r = &s->rails[s->n_rails++];
	memset(r, 0, sizeof(*r));
	snprintf(r->info.name, sizeof(r->info.name), "%s", unique);
	snprintf(r->info.device, sizeof(r->info.device), "%s", device ? device : "");
	r->info.source = ops->name;
	r->info.method = "measured";
	r->ops = ops;
	r->src = src;
	for (int i = 0; i < RAIL_FILES; i++) {
		r->f[i].fd = -1;
		r->scale[i] = 1.0;
	}
	r->retry_at_ns = INT64_MIN;
	r->last_power_mw = r->last_voltage_mv = r->last_current_ma = NAN;
	return r;
}

int power_add_source(struct power_sampler *s, const struct power_source_ops *ops,
		     void *ctx)
{
	if (s->n_sources >= POWER_MAX_SOURCES)
		return -ENOSPC;
	s->sources[s->n_sources].ops = ops;
	s->sources[s->n_sources].ctx = ctx;
	s->n_sources++;
	return 0;
}

/* One file of the rail, when it has one, scaled into *out (left as it is
 * otherwise). */
static int read_scaled(struct power_rail_impl *r, int file, bool keep, double *out)
{
	int64_t v;
	int rc;

	if (!r->f[file].path)
		return 0;
	if ((rc = sysfs_read_int64(&r->f[file], keep, &v)) < 0)
		return rc;
	*out = (double)v * r->scale[file];
	return 0;
}

int power_read_files(struct power_sampler *s, struct power_rail_impl *r,
		     int64_t now_ns, struct power_reading *out)
{
	bool keep = s->cfg.keep_fds;
	int rc;

	if ((rc = read_scaled(r, RAIL_FILE_ENERGY, keep, &out->counter_uj)) < 0 ||
	    (rc = read_scaled(r, RAIL_FILE_POWER, keep, &out->power_mw)) < 0)
		return rc;
	/* volts and amps beside a power file only display: read them at
	 * aux_hz; where power is volts x amps, every time */
	if (r->f[RAIL_FILE_POWER].path && !s->aux_due) {
		out->voltage_mv = r->last_voltage_mv;
		out->current_ma = r->last_current_ma;
		goto done;
	}
	if ((rc = read_scaled(r, RAIL_FILE_VOLTAGE, keep, &out->voltage_mv)) < 0 ||
	    (rc = read_scaled(r, RAIL_FILE_CURRENT, keep, &out->current_ma)) < 0)
		return rc;
	if (isnan(out->power_mw) && !isnan(out->voltage_mv) && !isnan(out->current_ma))
		out->power_mw = out->voltage_mv * out->current_ma / 1000.0;
done:
	if (r->ops == &power_battery_ops) {
		/* drivers differ in the sign of a discharging current */
		out->power_mw = fabs(out->power_mw);
		out->current_ma = fabs(out->current_ma);
	}
	return 0;
}

int power_rail_find(const struct power_sampler *s, const char *name)
{
	if (!s || !name)
		return -EINVAL;
	for (int i = 0; i < s->n_rails; i++)
		if (!strcasecmp(s->rails[i].info.name, name))
			return i;
	return -ENOENT;
}

static int choose_rails(struct power_sampler *s, char *err, size_t errlen)
{
	int input = -1;

	if (s->input_name) {
		input = power_rail_find(s, s->input_name);
		if (input < 0) {
			snprintf(err, errlen, "input rail '%s' not found", s->input_name);
			return -ENOENT;
		}
	} else {
		for (int i = 0; i < s->n_rails && input < 0; i++)
			if (s->rails[i].info.is_input ||
			    power_is_input_name(s->rails[i].info.name))
				input = i;
		/* the estimate stands in only where nothing is measured */
		for (int i = 0; i < s->n_rails && input < 0; i++)
			if (s->rails[i].ops == &power_estimate_ops) {
				bool measured = false;

				for (int k = 0; k < s->n_rails; k++)
					measured |= s->rails[k].ops != &power_estimate_ops;
				if (!measured)
					input = i;
			}
	}
	for (int i = 0; i < s->n_rails; i++)
		s->rails[i].info.is_input = i == input;
	s->input_rail = input;
	s->request_rail = input;
	if (s->request_name) {
		s->request_rail = power_rail_find(s, s->request_name);
		if (s->request_rail < 0) {
			snprintf(err, errlen, "request rail '%s' not found",
				 s->request_name);
			return -ENOENT;
		}
	}
	return 0;
}

/* Reads go to the device files themselves, not through bus/ and class/
 * links: path walks are most of what a sysfs read costs. */
static void resolve_paths(struct power_sampler *s)
{
	for (int i = 0; i < s->n_rails; i++)
		for (int k = 0; k < RAIL_FILES; k++) {
			struct sysfs_file *f = &s->rails[i].f[k];
			char *real = f->path ? realpath(f->path, NULL) : NULL;

			if (real) {
				free(f->path);
				f->path = real;
			}
		}
}

/* The sampling period for rate_hz, capped by the sensors' own update
 * interval, and how often volts and amps are read with it. */
static void set_period(struct power_sampler *s, unsigned rate_hz)
{
	const struct power_config *cfg = &s->cfg;
	int64_t period = NS_PER_S / (rate_hz ? rate_hz : 100);
	unsigned aux = 1;

	if (cfg->cap_by_sensor) {
		int64_t fastest = 0;

		for (int i = 0; i < s->n_rails; i++) {
			int64_t u = s->rails[i].info.update_interval_us;

			if (u > 0 && (fastest == 0 || u < fastest))
				fastest = u;
		}
		if (fastest * 1000 > period)
			period = fastest * 1000;
	}
	if (cfg->aux_hz > 0 && (int64_t)cfg->aux_hz * period < NS_PER_S)
		aux = (unsigned)(NS_PER_S / ((int64_t)cfg->aux_hz * period));
	s->period_ns = period;
	s->aux_every = aux;
}

static int copy_str(const char *in, char **out)
{
	*out = NULL;
	if (!in)
		return 0;
	*out = strdup(in);
	return *out ? 0 : -ENOMEM;
}

int power_sampler_new(const struct power_config *cfg, struct power_sampler **out,
		      char *err, size_t errlen)
{
	struct power_sampler *s = NULL;
	pthread_condattr_t ca;
	char dummy[1];
	int rc = 0;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (!cfg || !out)
		return -EINVAL;
	*out = NULL;
	if (cfg->rate_hz < 1 || cfg->rate_hz > 10000) {
		snprintf(err, errlen, "power rate %u Hz is out of range (1..10000)",
			 cfg->rate_hz);
		return -EINVAL;
	}
	if (cfg->ring_samples < 16 || cfg->ring_samples > (1u << 24)) {
		snprintf(err, errlen, "power ring of %zu samples is out of range "
			 "(16..16777216)", cfg->ring_samples);
		return -EINVAL;
	}
	if (cfg->backoff_min_ms < 1 || cfg->backoff_max_ms < cfg->backoff_min_ms) {
		snprintf(err, errlen, "power back-off %u..%u ms is not a range",
			 cfg->backoff_min_ms, cfg->backoff_max_ms);
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->input_rail = s->request_rail = -1;
	if ((rc = copy_str(cfg->sysfs_root ? cfg->sysfs_root : "", &s->root)) < 0 ||
	    (rc = copy_str(cfg->input_rail, &s->input_name)) < 0 ||
	    (rc = copy_str(cfg->request_rail, &s->request_name)) < 0 ||
	    (rc = copy_str(cfg->estimate_stat_path, &s->stat_path)) < 0 ||
	    (rc = copy_str(cfg->nvml_lib, &s->nvml_lib)) < 0)
		goto out;
	{
		size_t n = strlen(s->root);

		while (n > 0 && s->root[n - 1] == '/')
			s->root[--n] = '\0';
	}
	s->cfg.sysfs_root = s->root;
	s->cfg.input_rail = s->input_name;
	s->cfg.request_rail = s->request_name;
	s->cfg.estimate_stat_path = s->stat_path;
	s->cfg.nvml_lib = s->nvml_lib;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->wake, &ca);
	pthread_cond_init(&s->sampled, &ca);
	pthread_condattr_destroy(&ca);

	for (size_t i = 0; i < sizeof(measured_sources) / sizeof(*measured_sources); i++) {
		if (!(cfg->sources & measured_sources[i]->kind))
			continue;
		rc = measured_sources[i]->probe(s, err, errlen);
		if (rc < 0)
			goto out;
	}
	if ((cfg->sources & POWER_SRC_ESTIMATE) &&
	    (cfg->estimate == POWER_ESTIMATE_ALWAYS ||
	     (cfg->estimate == POWER_ESTIMATE_AUTO && s->n_rails == 0))) {
		rc = power_estimate_ops.probe(s, err, errlen);
		if (rc < 0)
			goto out;
	}
	if (s->n_rails == 0) {
		snprintf(err, errlen, "no power sensor found under '%s/' (ina3221x, "
			 "ina3221, rapl, hwmon, battery, nvml) and the estimate is off",
			 s->root);
		rc = -ENODEV;
		goto out;
	}
	rc = choose_rails(s, err, errlen);
	if (rc < 0)
		goto out;

	set_period(s, cfg->rate_hz);
	resolve_paths(s);
	s->cap = cfg->ring_samples;
	s->t_ns = calloc(s->cap, sizeof(*s->t_ns));
	s->rec = calloc(s->cap * (size_t)s->n_rails, sizeof(*s->rec));
	if (!s->t_ns || !s->rec) {
		rc = -ENOMEM;
		goto out;
	}
	if (cfg->idle_fixed_mw >= 0) {
		s->idle_mw = (double)cfg->idle_fixed_mw;
		s->idle_valid = true;
	}
	s->start_ns = power_now_ns(s);
	*out = s;
	s = NULL;
out:
	if (s) {
		if (rc == -ENOMEM && !err[0])
			snprintf(err, errlen, "out of memory setting up power sampling");
		power_sampler_free(s);
	}
	return rc;
}

void power_sampler_free(struct power_sampler *s)
{
	if (!s)
		return;
	power_sampler_stop(s);
	for (int i = 0; i < s->n_rails; i++)
		for (int k = 0; k < RAIL_FILES; k++)
			sysfs_close(&s->rails[i].f[k]);
	for (int i = 0; i < s->n_sources; i++)
		if (s->sources[i].ops->destroy)
			s->sources[i].ops->destroy(s->sources[i].ctx);
	if (s->root) {
		/* initialised together with the root copy */
		pthread_mutex_destroy(&s->mu);
		pthread_cond_destroy(&s->wake);
		pthread_cond_destroy(&s->sampled);
	}
	free(s->t_ns);
	free(s->rec);
	free(s->reqs);
	free(s->root);
	free(s->input_name);
	free(s->request_name);
	free(s->stat_path);
	free(s->nvml_lib);
	free(s);
}

int power_rail_count(const struct power_sampler *s)
{
	return s ? s->n_rails : -EINVAL;
}

int power_rail_info(const struct power_sampler *s, int rail,
		    struct power_rail_info *out)
{
	if (!s || !out || rail < 0 || rail >= s->n_rails)
		return -EINVAL;
	*out = s->rails[rail].info;
	return 0;
}

int power_input_rail(const struct power_sampler *s)
{
	return s && s->input_rail >= 0 ? s->input_rail : -ENOENT;
}

int64_t power_sample_period_ns(const struct power_sampler *s)
{
	return s->period_ns;
}

/* ---- ring ---- */

size_t ring_slot(const struct power_sampler *s, size_t logical)
{
	return (s->head + s->cap - s->count + logical) % s->cap;
}

static int64_t ring_t(const struct power_sampler *s, size_t logical)
{
	return s->t_ns[ring_slot(s, logical)];
}

static const struct sample_rec *ring_rec(const struct power_sampler *s,
					 size_t logical, int rail)
{
	return &s->rec[ring_slot(s, logical) * (size_t)s->n_rails + (size_t)rail];
}

/* First logical index whose time is >= t (count if none). */
static size_t ring_lower_bound(const struct power_sampler *s, int64_t t)
{
	size_t lo = 0, hi = s->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ring_t(s, mid) < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool is_counter(const struct power_sampler *s, int rail)
{
	return s->rails[rail].info.caps & POWER_CAP_ENERGY;
}

static double rec_power(const struct sample_rec *r)
{
	return isnan(r->power_mw) ? 0.0 : r->power_mw;
}

int ring_energy_at(struct power_sampler *s, int rail, int64_t t,
		   bool extrapolate, double *e_uj, int64_t *extra_ns)
{
	size_t k, a, b;
	bool have_a = false, have_b = false;
	const struct sample_rec *ra, *rb;
	int64_t ta, tb;

	if (extra_ns)
		*extra_ns = 0;
	if (s->count == 0)
		return -ENODATA;
	if (t < ring_t(s, 0))
		return -ERANGE;
	k = ring_lower_bound(s, t);
	if (k < s->count && ring_t(s, k) == t && ring_rec(s, k, rail)->valid) {
		*e_uj = ring_rec(s, k, rail)->energy_uj;
		return 0;
	}
	for (a = k; a > 0; a--)
		if (ring_rec(s, a - 1, rail)->valid) {
			have_a = true;
			a--;
			break;
		}
	for (b = k; b < s->count; b++)
		if (ring_rec(s, b, rail)->valid) {
			have_b = true;
			break;
		}
	if (!have_a)
		return have_b ? -ERANGE : -ENODATA;
	ra = ring_rec(s, a, rail);
	ta = ring_t(s, a);
	if (!have_b) {
		if (!extrapolate)
			return k >= s->count ? -ERANGE : -ENODATA;
		*e_uj = ra->energy_uj + rec_power(ra) * (double)(t - ta) / 1e6;
		if (extra_ns)
			*extra_ns = t - ta;
		return 0;
	}
	rb = ring_rec(s, b, rail);
	tb = ring_t(s, b);
	if (is_counter(s, rail)) {
		*e_uj = ra->energy_uj + (rb->energy_uj - ra->energy_uj) *
			(double)(t - ta) / (double)(tb - ta);
	} else {
		double pa = ra->power_mw, pb = rb->power_mw;
		double pt = pa + (pb - pa) * (double)(t - ta) / (double)(tb - ta);

		*e_uj = ra->energy_uj + (pa + pt) / 2.0 * (double)(t - ta) / 1e6;
	}
	return 0;
}

void ring_count(struct power_sampler *s, int rail, int64_t t0, int64_t t1,
		unsigned *samples, unsigned *gaps)
{
	size_t k0 = ring_lower_bound(s, t0), k;
	unsigned n = 0, g = 0;

	for (k = k0; k < s->count && ring_t(s, k) <= t1; k++) {
		if (ring_rec(s, k, rail)->valid)
			n++;
		else
			g++;
	}
	/* the samples the edges are interpolated from */
	if (k0 > 0 && (k0 >= s->count || ring_t(s, k0) > t0))
		for (size_t a = k0; a > 0; a--)
			if (ring_rec(s, a - 1, rail)->valid) {
				n++;
				break;
			}
	if (k > 0 && ring_t(s, k - 1) < t1)
		for (; k < s->count; k++)
			if (ring_rec(s, k, rail)->valid) {
				n++;
				break;
			}
	*samples = n;
	*gaps = g;
}

int power_energy(struct power_sampler *s, int rail, int64_t t0, int64_t t1,
		 struct power_window *out)
{
	double e0, e1;
	int rc;

	if (!s || !out || rail < 0 || rail >= s->n_rails || t1 < t0)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->t0_ns = t0;
	out->t1_ns = t1;
	pthread_mutex_lock(&s->mu);
	rc = ring_energy_at(s, rail, t0, false, &e0, NULL);
	if (rc == 0)
		rc = ring_energy_at(s, rail, t1, false, &e1, NULL);
	if (rc == 0)
		ring_count(s, rail, t0, t1, &out->samples, &out->gaps);
	pthread_mutex_unlock(&s->mu);
	if (rc < 0)
		return rc;
	out->energy_uj_exact = e1 - e0;
	out->energy_uj = llround(e1 - e0);
	out->avg_power_mw = t1 > t0 ? llround((e1 - e0) * 1e6 / (double)(t1 - t0)) : 0;
	return 0;
}

/* ---- sampling ---- */

static void rail_failed(struct power_sampler *s, struct power_rail_impl *r,
			int err, int64_t t)
{
	int64_t min_ns = (int64_t)s->cfg.backoff_min_ms * 1000000;
	int64_t max_ns = (int64_t)s->cfg.backoff_max_ms * 1000000;

	r->errors++;
	r->last_error = err;
	r->up = false;
	r->backoff_ns = r->backoff_ns ? r->backoff_ns * 2 : min_ns;
	if (r->backoff_ns > max_ns)
		r->backoff_ns = max_ns;
	r->retry_at_ns = t + r->backoff_ns;
	/* reopen every file on the next try */
	for (int k = 0; k < RAIL_FILES; k++) {
		if (r->f[k].fd >= 0)
			close(r->f[k].fd);
		r->f[k].fd = -1;
	}
}

/* Folds one reading into a rail and its ring record (s->mu held). */
static void rail_sample(struct power_sampler *s, int i, int64_t t, int rc,
			const struct power_reading *rd, struct sample_rec *rec)
{
	struct power_rail_impl *r = &s->rails[i];
	double p = rd->power_mw;
	double before = r->cum_uj;
	int64_t prev_t = r->prev_t_ns;
	bool had_prev = r->have_prev;

	if (rc == 0 && !(r->info.caps & POWER_CAP_ENERGY) && !isfinite(p))
		rc = -EINVAL;
	if (rc == 0 && (r->info.caps & POWER_CAP_ENERGY) && !isfinite(rd->counter_uj))
		rc = -EINVAL;
	if (rc < 0) {
		rail_failed(s, r, rc, t);
		goto invalid;
	}
	if (had_prev && t <= prev_t)
		goto invalid; /* clock did not move: nothing to add */
	if (r->info.caps & POWER_CAP_ENERGY) {
		p = NAN;
		if (had_prev) {
			double d = rd->counter_uj - r->prev_counter_uj;

			if (d < 0)
				d = r->wrap_uj > 0 ? d + r->wrap_uj : 0;
			r->cum_uj += d;
			p = d * 1e6 / (double)(t - prev_t);
		}
		r->prev_counter_uj = rd->counter_uj;
	} else if (had_prev) {
		r->cum_uj += (r->prev_power_mw + p) / 2.0 * (double)(t - prev_t) / 1e6;
	}
	r->prev_power_mw = p;
	r->prev_t_ns = t;
	r->have_prev = true;
	r->up = true;
	r->backoff_ns = 0;
	r->samples++;
	if (isfinite(p))
		r->last_power_mw = p;
	r->last_voltage_mv = rd->voltage_mv;
	r->last_current_ma = rd->current_ma;
	rec->power_mw = p;
	rec->voltage_mv = rd->voltage_mv;
	rec->current_ma = rd->current_ma;
	rec->energy_uj = r->cum_uj;
	rec->valid = 1;
	if (i == s->request_rail && had_prev)
		power_idle_update(s, prev_t, t, r->cum_uj - before);
	return;
invalid:
	rec->power_mw = rec->voltage_mv = rec->current_ma = NAN;
	rec->energy_uj = r->cum_uj;
	rec->valid = 0;
}

static void take_sample(struct power_sampler *s)
{
	struct power_reading rd[POWER_MAX_RAILS];
	int rc[POWER_MAX_RAILS];
	bool tried[POWER_MAX_RAILS];
	int64_t t0 = power_now_ns(s), t1, t;
	size_t slot;

	s->aux_due = s->sample_no++ % s->aux_every == 0;

	for (int i = 0; i < s->n_rails; i++) {
		struct power_rail_impl *r = &s->rails[i];

		/* up and retry_at are written only on this thread */
		tried[i] = r->up || t0 >= r->retry_at_ns;
		if (!tried[i])
			continue;
		rd[i].power_mw = rd[i].voltage_mv = rd[i].current_ma = NAN;
		rd[i].counter_uj = NAN;
		rc[i] = r->ops->read ? r->ops->read(s, r, t0, &rd[i])
				     : power_read_files(s, r, t0, &rd[i]);
	}
	t1 = power_now_ns(s);
	t = t0 + (t1 - t0) / 2;

	pthread_mutex_lock(&s->mu);
	if (s->count > 0 && t <= s->t_ns[(s->head + s->cap - 1) % s->cap]) {
		pthread_mutex_unlock(&s->mu);
		return; /* time did not move (a coarse or fake clock) */
	}
	slot = s->head;
	s->t_ns[slot] = t;
	for (int i = 0; i < s->n_rails; i++) {
		struct sample_rec *rec = &s->rec[slot * (size_t)s->n_rails + (size_t)i];

		if (tried[i]) {
			rail_sample(s, i, t, rc[i], &rd[i], rec);
		} else {
			rec->power_mw = rec->voltage_mv = rec->current_ma = NAN;
			rec->energy_uj = s->rails[i].cum_uj;
			rec->valid = 0;
		}
	}
	s->head = (s->head + 1) % s->cap;
	if (s->count < s->cap)
		s->count++;
	pthread_cond_broadcast(&s->sampled);
	pthread_mutex_unlock(&s->mu);
}

static bool is_running(struct power_sampler *s)
{
	bool running;

	pthread_mutex_lock(&s->mu);
	running = s->running;
	pthread_mutex_unlock(&s->mu);
	return running;
}

int power_sampler_sample_once(struct power_sampler *s)
{
	if (!s)
		return -EINVAL;
	if (is_running(s))
		return -EBUSY;
	take_sample(s);
	return 0;
}

static void *sampler_main(void *arg)
{
	struct power_sampler *s = arg;
	int64_t prev = s->first_sample_ns, next = prev;
	struct timespec ts;

	/* the first sample was taken by power_sampler_start() */
	while (!atomic_load(&s->stop)) {
		pthread_mutex_lock(&s->mu);
		/* a new rate (power_sampler_set_rate) wakes the wait: the next
		 * sample is one new period after the last */
		while (!atomic_load(&s->stop)) {
			int64_t period = s->period_ns, now = mono_ns();

			next = prev + period;
			if (now - next > period)
				next = now; /* fell behind: do not burst to catch up */
			if (now >= next)
				break;
			ts.tv_sec = next / NS_PER_S;
			ts.tv_nsec = next % NS_PER_S;
			pthread_cond_timedwait(&s->wake, &s->mu, &ts);
		}
		pthread_mutex_unlock(&s->mu);
		if (atomic_load(&s->stop))
			break;
		prev = next;
		take_sample(s);
	}
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
		s->thread_cpu_ns = (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
	return NULL;
}

int power_sampler_start(struct power_sampler *s)
{
	int rc;

	if (!s)
		return -EINVAL;
	if (is_running(s))
		return -EALREADY;
	/* The first sample on the caller's thread: once start returns, every
	 * rail has been read (up with a value, or down with its error), however
	 * late the new thread first runs on a loaded machine. */
	s->first_sample_ns = mono_ns();
	take_sample(s);
	pthread_mutex_lock(&s->mu);
	if (s->running) {
		pthread_mutex_unlock(&s->mu);
		return -EALREADY;
	}
	atomic_store(&s->stop, false);
	rc = -pthread_create(&s->thread, NULL, sampler_main, s);
	if (rc == 0)
		s->running = true;
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int power_sampler_stop(struct power_sampler *s)
{
	if (!s)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (!s->running) {
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	atomic_store(&s->stop, true);
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&s->mu);
	s->running = false;
	pthread_cond_broadcast(&s->sampled);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* ---- changes while running ---- */

/* Copy the newest samples into a ring of cap slots (s->mu held). */
static int ring_resize(struct power_sampler *s, size_t cap)
{
	size_t n = s->count < cap ? s->count : cap, rails = (size_t)s->n_rails;
	int64_t *t = calloc(cap, sizeof(*t));
	struct sample_rec *rec = calloc(cap * rails, sizeof(*rec));

	if (!t || !rec) {
		free(t);
		free(rec);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		size_t from = ring_slot(s, s->count - n + i);

		t[i] = s->t_ns[from];
		memcpy(&rec[i * rails], &s->rec[from * rails], rails * sizeof(*rec));
	}
	free(s->t_ns);
	free(s->rec);
	s->t_ns = t;
	s->rec = rec;
	s->cap = cap;
	s->count = n;
	s->head = n % cap;
	return 0;
}

int power_sampler_set_rate(struct power_sampler *s, unsigned rate_hz, size_t ring_samples)
{
	int rc = 0;

	if (!s || rate_hz == 0)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	if (ring_samples && ring_samples != s->cap)
		rc = ring_resize(s, ring_samples);
	if (rc == 0) {
		s->cfg.rate_hz = rate_hz;
		set_period(s, rate_hz);
		pthread_cond_broadcast(&s->wake);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

int power_sampler_set_estimate(struct power_sampler *s, int64_t idle_mw, int64_t busy_core_mw)
{
	if (!s || idle_mw < 0 || busy_core_mw < 0)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	s->cfg.estimate_idle_mw = idle_mw;
	s->cfg.estimate_busy_core_mw = busy_core_mw;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* ---- snapshot ---- */

static int64_t round_or(double v, int64_t none)
{
	return isfinite(v) ? llround(v) : none;
}

int power_snapshot(struct power_sampler *s, struct power_snapshot *out)
{
	int64_t now;

	if (!s || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	now = power_now_ns(s);
	pthread_mutex_lock(&s->mu);
	out->sample_hz = 1e9 / (double)s->period_ns;
	out->running = s->running;
	out->input_rail = s->input_rail;
	out->request_rail = s->request_rail;
	out->idle_valid = s->idle_valid;
	out->idle_mw = llround(s->idle_mw);
	for (size_t i = 0; i < s->n_reqs; i++)
		out->requests_active += !s->reqs[i].ended;
	if (s->count > 0) {
		int64_t newest = ring_t(s, s->count - 1);
		size_t k0 = ring_lower_bound(s, newest - NS_PER_S);
		size_t n = s->count - k0;

		out->t_ns = newest;
		if (n >= 2 && newest > ring_t(s, k0))
			out->measured_hz = (double)(n - 1) * 1e9 /
					   (double)(newest - ring_t(s, k0));
	}
	out->n_rails = s->n_rails;
	for (int i = 0; i < s->n_rails; i++) {
		const struct power_rail_impl *r = &s->rails[i];
		struct power_rail_status *st = &out->rails[i];

		st->info = r->info;
		st->up = r->up;
		st->power_mw = round_or(r->last_power_mw, -1);
		st->voltage_mv = round_or(r->last_voltage_mv, -1);
		st->current_ma = round_or(r->last_current_ma, -1);
		st->energy_uj = llround(r->cum_uj);
		st->samples = r->samples;
		st->errors = r->errors;
		st->last_error = r->last_error;
		if (!r->up && r->retry_at_ns != INT64_MIN)
			st->retry_in_ms = r->retry_at_ns > now ?
				(r->retry_at_ns - now) / 1000000 : 0;
	}
	if (s->running) {
		clockid_t cid;
		struct timespec ts;

		if (pthread_getcpuclockid(s->thread, &cid) == 0 &&
		    clock_gettime(cid, &ts) == 0)
			out->sampler_cpu_ns = (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
	} else {
		out->sampler_cpu_ns = s->thread_cpu_ns;
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}
