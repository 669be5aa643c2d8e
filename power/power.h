/* power/: the robot's power rails, sampled on a thread of their own, and exact
 * energy over any window still in the ring buffer.
 *
 * Sources (one ops table per kind, all under a configurable sysfs root):
 *   ina3221x  NVIDIA's iio driver on L4T R32 (rail_name_N, in_powerN_input)
 *   ina3221   mainline hwmon driver on L4T R35/R36 (inN_label; P = V x I)
 *   rapl      powercap energy counters (wrap at max_energy_range_uj)
 *   hwmon     generic hwmon powerN_input / energyN_input
 *   battery   power_supply power_now, or voltage_now x current_now
 *   nvml      libnvidia-ml, dlopen()ed on a GPU host
 *   estimate  process CPU time x watts per busy core + idle watts
 *
 * The board input (VDD_IN, 5V_IN, POM_5V_IN, or the rail named by the config)
 * is the board total; sub-rails are never added to it, and a board without an
 * input rail has no board total (power_input_rail() says -ENOENT).
 *
 * Units inside: ns, mW, mV, mA, uJ. Times are CLOCK_MONOTONIC nanoseconds
 * (or the config's clock). Functions return 0 or a negative errno. */
#ifndef SPLITD_POWER_H
#define SPLITD_POWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POWER_MAX_RAILS 32
#define POWER_NAME_MAX 32

/* Which source kinds discovery tries (power_config.sources). */
enum power_source_kind {
	POWER_SRC_INA3221X = 1u << 0,
	POWER_SRC_INA3221 = 1u << 1,
	POWER_SRC_RAPL = 1u << 2,
	POWER_SRC_HWMON = 1u << 3,
	POWER_SRC_BATTERY = 1u << 4,
	POWER_SRC_NVML = 1u << 5,
	POWER_SRC_ESTIMATE = 1u << 6,
	POWER_SRC_ALL = 0x7f,
};

/* What a rail reports (power_rail_info.caps). */
#define POWER_CAP_POWER (1u << 0)   /* instantaneous power */
#define POWER_CAP_VOLTAGE (1u << 1)
#define POWER_CAP_CURRENT (1u << 2)
#define POWER_CAP_ENERGY (1u << 3)  /* hardware (or model) energy counter */

enum power_estimate_mode {
	POWER_ESTIMATE_AUTO = 0, /* only when no measured rail is found */
	POWER_ESTIMATE_NEVER,
	POWER_ESTIMATE_ALWAYS,
};

struct power_config {
	const char *sysfs_root;     /* "" or NULL: "/" ; tests: a fake tree */
	unsigned sources;           /* enum power_source_kind mask */
	unsigned rate_hz;           /* default 100; capped by sensor updates */
	bool cap_by_sensor;         /* honour update_interval (default true) */
	size_t ring_samples;        /* ring buffer length (default 8192) */
	unsigned backoff_min_ms;    /* first retry of a failed rail (100) */
	unsigned backoff_max_ms;    /* retry back-off ceiling (5000) */
	bool keep_fds;              /* default true: pread() at 0 on kept fds
	                             * (sysfs re-reads there); false: open,
	                             * read, close each time (trees whose files
	                             * are replaced, as in tests) */
	unsigned aux_hz;            /* volts and amps beside a power file are
	                             * read at most this often (10; 0: every
	                             * sample); energy uses every sample */
	const char *input_rail;     /* board input name; NULL: VDD_IN/5V_IN/... */
	const char *request_rail;   /* rail for requests; NULL: the input rail */
	unsigned idle_tau_ms;       /* idle baseline time constant (30000) */
	int64_t idle_fixed_mw;      /* >= 0: fixed idle baseline; -1: measure */
	enum power_estimate_mode estimate;
	int64_t estimate_idle_mw;       /* default 2000 */
	int64_t estimate_busy_core_mw;  /* per fully busy core, default 1500 */
	const char *estimate_stat_path; /* NULL: CLOCK_PROCESS_CPUTIME_ID;
	                                 * else a /proc/<pid>/stat file */
	const char *nvml_lib;       /* NULL: "libnvidia-ml.so.1" */
	/* Optional clock (tests): returns monotonic ns. NULL: CLOCK_MONOTONIC. */
	int64_t (*clock_ns)(void *clock_ctx);
	void *clock_ctx;
};

/* Defaults as documented above. */
void power_config_init(struct power_config *cfg);

struct power_rail_info {
	char name[POWER_NAME_MAX];
	const char *source;   /* "ina3221x", "ina3221", "rapl", "hwmon", ... */
	const char *method;   /* "measured" or "estimate" */
	unsigned caps;        /* POWER_CAP_* */
	bool is_input;        /* the board input rail */
	int64_t update_interval_us; /* sensor's own update period; 0 unknown */
	char device[64];      /* e.g. "7-0040", "intel-rapl:0", "BAT0" */
};

struct power_sampler;

/* Discovers the sources under cfg->sysfs_root and builds the rails.
 * -ENODEV (and a sentence in err) when nothing was found and the estimate
 * is off. The config's strings are copied. */
int power_sampler_new(const struct power_config *cfg,
		      struct power_sampler **out, char *err, size_t errlen);
void power_sampler_free(struct power_sampler *s); /* stops it first */

/* The sampling thread. start: -EALREADY if running; it takes the first
 * sample itself, so a snapshot right after it has read every rail.
 * start, stop and sample_once are called from one controlling thread. */
int power_sampler_start(struct power_sampler *s);
int power_sampler_stop(struct power_sampler *s);
/* One sample now, on the caller's thread (tests, or no thread): -EBUSY
 * while the thread runs. */
int power_sampler_sample_once(struct power_sampler *s);

int power_rail_count(const struct power_sampler *s);
int power_rail_info(const struct power_sampler *s, int rail,
		    struct power_rail_info *out);
int power_rail_find(const struct power_sampler *s, const char *name);
/* Index of the board input rail, or -ENOENT: no board total exists. */
int power_input_rail(const struct power_sampler *s);
/* Changes while running, safe against every other call. set_rate: a new
 * rate (capped by the sensors as at start) from the next sample on; with
 * ring_samples > 0 the ring gets that many slots, keeping the newest
 * samples. set_estimate: the estimate source's watts (as mW) from the
 * next sample on; energy already counted stays. */
int power_sampler_set_rate(struct power_sampler *s, unsigned rate_hz, size_t ring_samples);
int power_sampler_set_estimate(struct power_sampler *s, int64_t idle_mw, int64_t busy_core_mw);
/* The effective sampling period (after the sensor cap). */
int64_t power_sample_period_ns(const struct power_sampler *s);
/* The sampler's clock (CLOCK_MONOTONIC unless the config set one). */
int64_t power_now_ns(const struct power_sampler *s);

/* Energy of one rail over [t0_ns, t1_ns], interpolated at the edges (the
 * trapezoid is split where power is sampled; counters are interpolated
 * linearly). -ERANGE when the window is not inside the buffer, -ENODATA
 * when the rail has no valid sample there. */
struct power_window {
	int64_t t0_ns, t1_ns;
	int64_t energy_uj;
	double energy_uj_exact;  /* same, unrounded */
	int64_t avg_power_mw;
	unsigned samples;        /* samples inside, plus the two at the edges */
	unsigned gaps;           /* rail-down samples bridged inside the window */
};
int power_energy(struct power_sampler *s, int rail, int64_t t0_ns,
		 int64_t t1_ns, struct power_window *out);

/* Per-request energy on the request rail (normally the board input).
 * Overlapping requests share each instant's power equally; above-idle
 * joules subtract the idle baseline (measured while no request runs,
 * updated slowly) and may be slightly negative from sensor noise.
 *
 * end: wait_ms > 0 waits (at most that long) for a sample at or after the
 * end; otherwise the last interval is extrapolated with the last power
 * (tail_extrapolated_ns says how much). -ENODATA: no request rail (see
 * power_request.reason); -ENOENT: unknown id. The id is freed either way. */
struct power_request {
	int64_t begin_ns, end_ns;
	int64_t energy_uj;
	int64_t energy_above_idle_uj;
	bool has_idle;              /* false: energy_above_idle_uj is 0 */
	int64_t idle_mw;
	unsigned samples;
	unsigned sharing_max;       /* most requests running at once */
	int64_t tail_extrapolated_ns;
	const char *method;         /* "measured" or "estimate" */
	char rail[POWER_NAME_MAX];
	double sample_hz;           /* effective sampling rate */
	const char *reason;         /* why there is no energy, else NULL */
};
int power_request_begin(struct power_sampler *s, uint64_t *id);
int power_request_begin_at(struct power_sampler *s, int64_t t_ns,
			   uint64_t *id);
int power_request_end(struct power_sampler *s, uint64_t id, int wait_ms,
		      struct power_request *out);
int power_request_end_at(struct power_sampler *s, uint64_t id, int64_t t_ns,
			 int wait_ms, struct power_request *out);

/* A consistent copy for /metrics and /v1/status. Safe from any thread. */
struct power_rail_status {
	struct power_rail_info info;
	bool up;
	int64_t power_mw, voltage_mv, current_ma; /* last valid sample; -1 n/a */
	int64_t energy_uj;         /* cumulative since start */
	uint64_t samples;          /* valid samples taken */
	uint64_t errors;           /* failed reads */
	int last_error;            /* negative errno of the last failure */
	int64_t retry_in_ms;       /* when down: next retry */
};
struct power_snapshot {
	int64_t t_ns;              /* time of the newest sample, 0 none */
	double sample_hz;          /* effective configured rate */
	double measured_hz;        /* samples over the last second */
	bool running;
	int input_rail;            /* -1: no board total */
	int request_rail;          /* -1: no per-request energy */
	bool idle_valid;
	int64_t idle_mw;
	uint64_t requests_active;
	int64_t sampler_cpu_ns;    /* CPU time of the sampler thread */
	int n_rails;
	struct power_rail_status rails[POWER_MAX_RAILS];
};
int power_snapshot(struct power_sampler *s, struct power_snapshot *out);

/* "ina3221x", ... for one enum power_source_kind bit; NULL if unknown. */
const char *power_source_name(unsigned kind);

#endif
