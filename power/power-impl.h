/* Internals of power/: the source ops tables, the rails, the ring buffer and
 * the sysfs text parsers. Not for use outside power/ (tests excepted). */
#ifndef SPLITD_POWER_IMPL_H
#define SPLITD_POWER_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "power.h"

#define POWER_MAX_SOURCES 16
#define POWER_FILE_BUF 64   /* a sysfs number or label never needs more */

/* ---- sysfs text parsers (strict, bounded; fuzzed by fuzz_sysfs.c) ---- */

/* A decimal integer as the kernel prints it: optional '-', 1..19 digits,
 * at most one trailing '\n'. Nothing else (no spaces, no '+', no 0x).
 * -EINVAL on garbage, -ERANGE on overflow. */
int power_parse_int64(const char *buf, size_t len, int64_t *out);
/* A label or name: printable ASCII, one trailing '\n' dropped, 1 ..
 * outlen-1 bytes. -EINVAL otherwise. */
int power_parse_label(const char *buf, size_t len, char *out, size_t outlen);
/* /proc/<pid>/stat: utime + stime in clock ticks (fields 14 and 15; the
 * comm field may hold spaces and ')'). */
int power_parse_proc_stat(const char *buf, size_t len, uint64_t *ticks);
/* "VDD_IN", "5V_IN", "POM_5V_IN" (any case): the board input. */
bool power_is_input_name(const char *name);
/* "NC" or a sum channel ("sum of shunt voltages"): not a rail. */
bool power_is_skipped_label(const char *label);

/* ---- files ---- */

struct sysfs_file {
	char *path;  /* NULL: absent */
	int fd;      /* kept open with power_config.keep_fds; else -1 */
};

/* Reads a whole small file into buf (NUL-terminated); -EOVERFLOW if it
 * does not fit. keep: pread() at 0 on a kept fd (sysfs re-reads there). */
int sysfs_read(struct sysfs_file *f, bool keep, char *buf, size_t cap,
	       size_t *len);
int sysfs_read_int64(struct sysfs_file *f, bool keep, int64_t *out);
void sysfs_close(struct sysfs_file *f);
/* One-off reads by path (discovery). */
int path_read_int64(const char *path, int64_t *out);
int path_read_label(const char *path, char *out, size_t outlen);
bool path_exists(const char *path);
/* snprintf into a malloc'ed string; NULL on failure. */
char *path_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- sources ---- */

/* One reading of one rail; NAN where a quantity is not read. */
struct power_reading {
	double power_mw, voltage_mv, current_ma;
	double counter_uj;  /* raw energy counter (POWER_CAP_ENERGY rails) */
};

enum { RAIL_FILE_POWER, RAIL_FILE_VOLTAGE, RAIL_FILE_CURRENT,
       RAIL_FILE_ENERGY, RAIL_FILES };

struct power_rail_impl;

struct power_source_ops {
	const char *name;
	unsigned kind;   /* enum power_source_kind bit */
	/* Adds this kind's rails found under the root (power_add_rail);
	 * finding nothing is 0, not an error. */
	int (*probe)(struct power_sampler *s, char *err, size_t errlen);
	/* Reads one rail. NULL: power_read_files(). */
	int (*read)(struct power_sampler *s, struct power_rail_impl *r,
		    int64_t now_ns, struct power_reading *out);
	/* Frees a source context given to power_add_source(); may be NULL. */
	void (*destroy)(void *ctx);
};

extern const struct power_source_ops power_ina3221x_ops;
extern const struct power_source_ops power_ina3221_ops;
extern const struct power_source_ops power_rapl_ops;
extern const struct power_source_ops power_hwmon_ops;
extern const struct power_source_ops power_battery_ops;
extern const struct power_source_ops power_nvml_ops;
extern const struct power_source_ops power_estimate_ops;

struct power_rail_impl {
	struct power_rail_info info;
	const struct power_source_ops *ops;
	void *src;          /* source context (shared by its rails), or NULL */
	int channel;
	struct sysfs_file f[RAIL_FILES];
	double scale[RAIL_FILES]; /* file units -> mW, mV, mA, uJ */
	double wrap_uj;     /* counter range; 0: none known */

	/* sampler state, under s->mu */
	bool up;
	bool have_prev;
	int64_t prev_t_ns;  /* last valid sample */
	double prev_power_mw, prev_counter_uj;
	double cum_uj;
	double last_power_mw, last_voltage_mv, last_current_ma;
	int64_t retry_at_ns, backoff_ns;
	uint64_t samples, errors;
	int last_error;
};

/* The file-backed read shared by the sysfs kinds: energy counter, or
 * power, or voltage x current; voltage and current where present. */
int power_read_files(struct power_sampler *s, struct power_rail_impl *r,
		     int64_t now_ns, struct power_reading *out);

/* Adds a rail (name, caps, files set by the caller afterwards through the
 * returned pointer); NULL when POWER_MAX_RAILS are in use. */
struct power_rail_impl *power_add_rail(struct power_sampler *s,
				       const struct power_source_ops *ops,
				       void *src, const char *name,
				       const char *device);
/* Registers a source context to be destroyed with the sampler. */
int power_add_source(struct power_sampler *s,
		     const struct power_source_ops *ops, void *ctx);
/* Joins the sysfs root and a path starting with '/'. */
char *power_root_path(const struct power_sampler *s, const char *rel);
/* Config of the sampler (sources read their settings here). */
const struct power_config *power_sampler_config(const struct power_sampler *s);
unsigned power_sampler_rail_total(const struct power_sampler *s);

/* ---- the sampler ---- */

struct sample_rec {
	double power_mw, voltage_mv, current_ma;
	double energy_uj;   /* cumulative; carried over while down */
	uint8_t valid;
};

struct req_slot {
	uint64_t id;
	int64_t begin_ns, end_ns;
	bool ended;
};

struct power_sampler {
	struct power_config cfg;
	char *root, *input_name, *request_name, *stat_path, *nvml_lib;

	struct power_rail_impl rails[POWER_MAX_RAILS];
	int n_rails;
	struct {
		const struct power_source_ops *ops;
		void *ctx;
	} sources[POWER_MAX_SOURCES];
	int n_sources;
	int input_rail, request_rail;
	_Atomic int64_t period_ns; /* changed by power_sampler_set_rate() */
	int64_t start_ns;
	uint64_t sample_no;      /* samples taken (the sampling thread's) */
	_Atomic unsigned aux_every; /* read volts/amps every Nth sample */
	bool aux_due;            /* ... and this one is such a sample */

	pthread_mutex_t mu;
	pthread_cond_t wake;     /* the thread sleeps here; stop signals */
	pthread_cond_t sampled;  /* each new sample is broadcast */
	pthread_t thread;
	bool running;
	atomic_bool stop;
	int64_t first_sample_ns; /* mono_ns() of start's own sample */
	int64_t thread_cpu_ns;   /* final, once stopped */

	/* ring: time of each sample and n_rails records per sample */
	size_t cap, head, count;  /* head: next slot to write */
	int64_t *t_ns;
	struct sample_rec *rec;

	/* requests */
	struct req_slot *reqs;
	size_t n_reqs, cap_reqs;
	uint64_t next_id;
	int64_t last_req_end_ns;

	/* idle baseline of the request rail */
	double idle_mw, idle_weight_s;
	bool idle_valid;
};

/* Ring access (caller holds s->mu). Logical index 0 is the oldest. */
size_t ring_slot(const struct power_sampler *s, size_t logical);
/* Cumulative energy of a rail at time t (interpolated); extrapolate:
 * beyond the newest sample, continue at the last power. */
int ring_energy_at(struct power_sampler *s, int rail, int64_t t_ns,
		   bool extrapolate, double *e_uj, int64_t *extra_ns);
/* Valid samples and gaps a window [t0, t1] rests on. */
void ring_count(struct power_sampler *s, int rail, int64_t t0_ns,
		int64_t t1_ns, unsigned *samples, unsigned *gaps);

/* request.c: idle baseline update after each sample (s->mu held). */
void power_idle_update(struct power_sampler *s, int64_t t0_ns, int64_t t1_ns,
		       double e_uj);
bool power_requests_active_since(struct power_sampler *s, int64_t t_ns);

#endif
