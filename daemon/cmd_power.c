/* `splitd power`: the rails, tegrastats-like, or one JSON object per sample.
 *
 *   splitd power [--sysfs-root DIR] [--interval-ms N] [--count N] [--json]
 *
 * Each line: every rail's watts, volts, amps and joules since the first
 * sample; the time is from that sample too. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "commands.h"
#include "power.h"

static volatile sig_atomic_t power_cmd_stop;

static void on_signal(int sig)
{
	(void)sig;
	power_cmd_stop = 1;
}

/* The first sample the command saw: t_s and joules count from it. */
struct power_cmd_origin {
	int64_t t_ns;
	int64_t energy_uj[POWER_MAX_RAILS];
};

static void print_text(const struct power_snapshot *snap,
		       const struct power_cmd_origin *o0)
{
	printf("%8.3fs", (double)(snap->t_ns - o0->t_ns) / 1e9);
	for (int i = 0; i < snap->n_rails; i++) {
		const struct power_rail_status *r = &snap->rails[i];

		printf("  %s", r->info.name);
		if (!r->up) {
			printf(" down(%s, retry %" PRId64 "ms)",
			       strerror(-r->last_error), r->retry_in_ms);
			continue;
		}
		if (r->power_mw >= 0)
			printf(" %.3fW", r->power_mw / 1000.0);
		else
			printf(" -W");
		if (r->voltage_mv >= 0)
			printf(" %.3fV", r->voltage_mv / 1000.0);
		if (r->current_ma >= 0)
			printf(" %.3fA", r->current_ma / 1000.0);
		printf(" %.3fJ", (r->energy_uj - o0->energy_uj[i]) / 1e6);
	}
	if (snap->input_rail < 0)
		printf("  (no board input rail: no board total)");
	else if (!strcmp(snap->rails[snap->input_rail].info.method, "estimate"))
		printf("  (estimate)");
	printf("\n");
}

static int print_json(const struct power_snapshot *snap,
		      const struct power_cmd_origin *o0)
{
	json_t *o = json_object(), *rails = json_array();
	char *txt;
	int rc = -ENOMEM;

	if (!o || !rails)
		goto out;
	json_object_set_new(o, "t_s", json_real((double)(snap->t_ns - o0->t_ns) / 1e9));
	json_object_set_new(o, "sample_hz", json_real(snap->sample_hz));
	json_object_set_new(o, "board_rail", snap->input_rail >= 0 ?
			    json_string(snap->rails[snap->input_rail].info.name) :
			    json_null());
	for (int i = 0; i < snap->n_rails; i++) {
		const struct power_rail_status *r = &snap->rails[i];
		json_t *j = json_object();

		if (!j)
			goto out;
		json_object_set_new(j, "rail", json_string(r->info.name));
		json_object_set_new(j, "source", json_string(r->info.source));
		json_object_set_new(j, "method", json_string(r->info.method));
		json_object_set_new(j, "up", json_boolean(r->up));
		json_object_set_new(j, "watts", r->up && r->power_mw >= 0 ?
				    json_real(r->power_mw / 1000.0) : json_null());
		json_object_set_new(j, "volts", r->up && r->voltage_mv >= 0 ?
				    json_real(r->voltage_mv / 1000.0) : json_null());
		json_object_set_new(j, "amps", r->up && r->current_ma >= 0 ?
				    json_real(r->current_ma / 1000.0) : json_null());
		json_object_set_new(j, "joules",
				    json_real((r->energy_uj - o0->energy_uj[i]) / 1e6));
		json_object_set_new(j, "board_input", json_boolean(r->info.is_input));
		if (!r->up && r->last_error)
			json_object_set_new(j, "error", json_string(strerror(-r->last_error)));
		json_array_append_new(rails, j);
	}
	json_object_set(o, "rails", rails);
	txt = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
	if (!txt)
		goto out;
	puts(txt);
	free(txt);
	rc = 0;
out:
	json_decref(rails);
	json_decref(o);
	return rc;
}

static void sleep_until(int64_t t_ns)
{
	struct timespec ts = { .tv_sec = t_ns / 1000000000LL,
			       .tv_nsec = t_ns % 1000000000LL };

	while (!power_cmd_stop &&
	       clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

struct power_cli {
	struct power_config cfg;
	long interval_ms, count;
	bool json;
};

/* A number option's value in [lo, hi]; false after printing why not. */
static bool num_option(const char *opt, const char *s, long lo, long hi, const char *what, long *out)
{
	if (cmd_parse_long(s, lo, hi, out) == 0)
		return true;
	fprintf(stderr, "splitd power: %s '%s' is not %s\n", opt, s, what);
	return false;
}

/* -1 to go on, else the exit status (0 after --help, 2 after one line). */
static int parse_args(int argc, char **argv, struct power_cli *o)
{
	static const struct option opts[] = {
		{ "sysfs-root", required_argument, NULL, 'r' },
		{ "interval-ms", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	optind = 0; /* glibc: a full restart, so the command can run twice */
	while ((c = getopt_long(argc, argv, ":r:i:c:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			o->cfg.sysfs_root = optarg;
			break;
		case 'i':
			if (!num_option("--interval-ms", optarg, 1, 3600000,
					"a number of milliseconds in 1..3600000", &o->interval_ms))
				return 2;
			break;
		case 'c':
			if (!num_option("--count", optarg, 1, 1000000000, "a positive number", &o->count))
				return 2;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			printf("usage: splitd power [--sysfs-root DIR] [--interval-ms N] "
			       "[--count N] [--json]\n");
			return 0;
		case ':':
			fprintf(stderr, "splitd power: option '%s' needs a value\n",
				argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "splitd power: unknown option '%s'\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "splitd power: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	return -1;
}

int cmd_power(int argc, char **argv)
{
	struct power_cli o = { .interval_ms = 1000 };
	struct power_config cfg;
	struct power_sampler *s = NULL;
	struct power_snapshot *snap = NULL;
	struct sigaction sa;
	char err[256];
	long interval_ms, count;
	bool json;
	struct power_cmd_origin o0 = { 0 };
	int64_t next;
	int rc;

	power_config_init(&o.cfg);
	if ((rc = parse_args(argc, argv, &o)) >= 0)
		return rc;
	cfg = o.cfg;
	interval_ms = o.interval_ms;
	count = o.count;
	json = o.json;

	rc = power_sampler_new(&cfg, &s, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "splitd power: %s\n", err);
		return 1;
	}
	snap = malloc(sizeof(*snap));
	if (!snap) {
		fprintf(stderr, "splitd power: out of memory\n");
		rc = 1;
		goto out;
	}
	if (power_input_rail(s) >= 0) {
		struct power_rail_info info;

		power_rail_info(s, power_input_rail(s), &info);
		if (!strcmp(info.method, "estimate"))
			fprintf(stderr, "splitd power: no power sensor found; showing "
				"an estimate from CPU time, not a measurement\n");
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* start reads every rail once before it returns: the first line
	 * shows values (or a rail's error), never a rail not yet read */
	rc = power_sampler_start(s);
	if (rc < 0) {
		fprintf(stderr, "splitd power: starting the sampler: %s\n", strerror(-rc));
		rc = 1;
		goto out;
	}
	/* time and joules from one sample, whichever the thread has reached */
	power_snapshot(s, snap);
	o0.t_ns = snap->t_ns ? snap->t_ns : power_now_ns(s);
	for (int i = 0; i < snap->n_rails; i++)
		o0.energy_uj[i] = snap->rails[i].energy_uj;
	next = o0.t_ns;
	for (long n = 0; !power_cmd_stop && (count == 0 || n < count); n++) {
		next += (int64_t)interval_ms * 1000000;
		sleep_until(next);
		if (power_cmd_stop)
			break;
		power_snapshot(s, snap);
		if (json) {
			if (print_json(snap, &o0) < 0) {
				fprintf(stderr, "splitd power: out of memory\n");
				rc = 1;
				goto out;
			}
		} else {
			print_text(snap, &o0);
		}
		fflush(stdout);
	}
	rc = 0;
out:
	free(snap);
	power_sampler_free(s);
	return rc;
}
