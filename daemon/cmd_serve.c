/* `splitd serve`: the daemon's shell. Loads the configuration (file, then
 * command-line flags), opens the listeners, starts what it serves through
 * struct serve_hooks (serve.h), tells systemd READY=1, and then owns the main
 * loop: SIGHUP reloads, SIGTERM/SIGINT drain and stop, the watchdog is pinged
 * at half its interval, STATUS= follows what is served. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "link.h"
#include "log.h"
#include "notify.h"
#include "serve.h"
#include "pipeline.h"

#define MAX_OVERRIDES 16
#define STATUS_PERIOD_NS 1000000000ull

/* A command-line flag that overrides a key of the file. */
struct override {
	const char *section, *key, *value, *origin;
};

struct serve_opts {
	const char *config_path; /* NULL: CONFIG_DEFAULT_FILE if it exists */
	bool config_given;
	struct override ov[MAX_OVERRIDES];
	int n_ov;
	const char *model_path;
	bool plain;
};

struct serve_state {
	struct serve_opts opts;
	struct config *cfg; /* the running configuration */
	struct serve_listeners listeners;
	const struct serve_hooks *hooks;
	void *ctx;
	struct notify notify;
	int sigfd; /* read end of the signal pipe */
	char status[640];
	uint64_t status_ns;
};

/* Signals arrive as bytes on a pipe. A handler (not signalfd) because
 * libraries start threads before main() (OpenBLAS's thread server) whose
 * signal mask we cannot set; whichever thread takes the signal, the main
 * loop reads it here. The write end is the one file-static: a handler has no
 * other way to reach it. */
static int signal_pipe_w = -1;

static void on_signal(int signo)
{
	int saved = errno;
	unsigned char b = (unsigned char)signo;
	ssize_t w = write(signal_pipe_w, &b, 1);
	(void)w;
	errno = saved;
}

static int signals_open(int *read_fd)
{
	static const int signos[] = { SIGTERM, SIGINT, SIGHUP };
	struct sigaction sa;
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
		return log_err(-errno, "pipe: %s", strerror(errno));
	signal_pipe_w = p[1];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(signos) / sizeof(signos[0]); i++)
		if (sigaction(signos[i], &sa, NULL) < 0)
			return log_err(-errno, "sigaction: %s", strerror(errno));
	signal(SIGPIPE, SIG_IGN);
	*read_fd = p[0];
	return 0;
}

static void signals_close(int read_fd)
{
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (signal_pipe_w >= 0)
		close(signal_pipe_w);
	signal_pipe_w = -1;
	if (read_fd >= 0)
		close(read_fd);
}

/* Next signal number from the pipe, 0 if none. */
static int signal_next(int read_fd)
{
	unsigned char b;

	return read(read_fd, &b, 1) == 1 ? b : 0;
}

/* Wiring point: the hooks `splitd serve` serves with. */
static const struct serve_hooks *serve_hooks_select(const struct config *cfg)
{
	(void)cfg;
	return &serve_pipeline_hooks;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("splitd serve: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see 'splitd help serve')\n", stderr);
	return 2;
}

static int add_override(struct serve_opts *o, const char *section, const char *key, const char *value,
			const char *origin)
{
	if (o->n_ov == MAX_OVERRIDES)
		return usage_error("too many options");
	o->ov[o->n_ov++] = (struct override){ section, key, value, origin };
	return 0;
}

/* Returns 0, or the exit status (2) after printing one line. */
static int parse_args(int argc, char **argv, struct serve_opts *o)
{
	/* the options that set one config key, in key_options' order first */
	enum { O_ROLE = 256, O_LISTEN, O_PEER, O_THREADS, O_SYSFS, O_LOG, O_MODEL, O_PLAIN };
	static const struct key_option {
		const char *section, *key, *option;
	} key_options[] = {
		[O_ROLE - O_ROLE] = { "daemon", "role", "--role" },
		[O_LISTEN - O_ROLE] = { "api", "listen", "--listen" },
		[O_PEER - O_ROLE] = { "peer", "url", "--peer" },
		[O_THREADS - O_ROLE] = { "daemon", "threads", "--threads" },
		[O_SYSFS - O_ROLE] = { "power", "sysfs_root", "--sysfs-root" },
		[O_LOG - O_ROLE] = { "daemon", "log_level", "--log-level" },
	};
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "role", required_argument, NULL, O_ROLE },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "model", required_argument, NULL, O_MODEL },
		{ "peer", required_argument, NULL, O_PEER },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "sysfs-root", required_argument, NULL, O_SYSFS },
		{ "plain", no_argument, NULL, O_PLAIN },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r = 0;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			o->config_given = true;
			break;
		case O_ROLE:
		case O_LISTEN:
		case O_PEER:
		case O_THREADS:
		case O_SYSFS:
		case O_LOG: {
			const struct key_option *k = &key_options[c - O_ROLE];
			r = add_override(o, k->section, k->key, optarg, k->option);
			break;
		}
		case O_MODEL:
			o->model_path = optarg;
			break;
		case O_PLAIN:
			o->plain = true;
			break;
		case 'h':
			fputs(cmd_usage("serve"), stdout);
			return -1;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
		if (r)
			return r;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* File (or defaults), then flags, then the checks across keys.
 * *flag_error is set when a flag's value was the problem (exit status 2). */
static int build_config(const struct serve_opts *o, struct config **out, bool *flag_error, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	const char *path = o->config_path;
	int r;

	*flag_error = false;
	if (!path && access(CONFIG_DEFAULT_FILE, F_OK) == 0)
		path = CONFIG_DEFAULT_FILE;
	r = path ? config_load(path, &cfg, err, errlen) : config_new_default(&cfg);
	if (r < 0)
		goto out;
	for (int i = 0; i < o->n_ov; i++) {
		r = config_set(cfg, o->ov[i].section, o->ov[i].key, o->ov[i].value, o->ov[i].origin, err, errlen);
		if (r < 0) {
			*flag_error = true;
			goto out;
		}
	}
	if (o->model_path) {
		r = config_set_model_path(cfg, o->model_path, err, errlen);
		if (r < 0) {
			*flag_error = true;
			goto out;
		}
	}
	if (o->plain) {
		cfg->peer_plain = true;
		cfg->server_plain = true;
	}
	r = config_finish(cfg, err, errlen);
	if (r < 0)
		goto out;
	*out = cfg;
	cfg = NULL;
out:
	config_free(cfg);
	return r;
}

static void update_status(struct serve_state *s, const char *prefix, uint64_t now_ns)
{
	char text[512];

	text[0] = 0;
	if (s->ctx)
		s->hooks->status(s->ctx, text, sizeof(text));
	char line[sizeof(s->status)];
	snprintf(line, sizeof(line), "%s%s", prefix ? prefix : "", text);
	if (strcmp(line, s->status) != 0) {
		snprintf(s->status, sizeof(s->status), "%s", line);
		notify_status(&s->notify, "%s", line);
	}
	s->status_ns = now_ns;
}

static void reload(struct serve_state *s)
{
	struct config *fresh = NULL, *next = NULL;
	char err[768], restart[512];
	bool flag_error;
	int r;

	notify_reloading(&s->notify);
	if (s->opts.config_path || access(CONFIG_DEFAULT_FILE, F_OK) == 0)
		log_info("reload: reading %s", s->opts.config_path ? s->opts.config_path : CONFIG_DEFAULT_FILE);
	else
		log_info("reload: no configuration file; defaults and flags");
	r = build_config(&s->opts, &fresh, &flag_error, err, sizeof(err));
	if (r < 0) {
		log_err(r, "reload: %s; keeping the running configuration", err);
		goto out;
	}
	r = config_merge_reloadable(s->cfg, fresh, &next, restart, sizeof(restart));
	if (r < 0) {
		log_err(r, "reload: %s", strerror(-r));
		goto out;
	}
	/* the running values of the restart keys with the new reloadable ones
	 * must pass the checks across keys too (a token dropped while still
	 * listening beyond loopback) */
	r = config_finish(next, err, sizeof(err));
	if (r == 0)
		r = s->hooks->reload(s->ctx, next, err, sizeof(err));
	if (r < 0) {
		log_err(r, "reload: %s; keeping the running configuration", err);
		goto out;
	}
	if (restart[0])
		log_notice("reload: %s changed: needs restart (the running value stays until then)", restart);
	config_free(s->cfg);
	s->cfg = next;
	next = NULL;
	log_info("reload: done (log_level %s)", log_level_name(s->cfg->log_level));
out:
	config_free(fresh);
	config_free(next);
	s->status[0] = 0; /* resend */
	update_status(s, r < 0 ? "reload failed, old config kept; " : NULL, link_now_ns());
	notify_ready(&s->notify);
}

/* Stop accepting, wait for requests in flight up to drain_timeout_s. */
static void drain(struct serve_state *s)
{
	uint64_t start = link_now_ns();
	uint64_t deadline = start + (uint64_t)s->cfg->drain_timeout_s * 1000000000ull;
	char prefix[96];

	notify_stopping(&s->notify);
	s->hooks->quiesce(s->ctx);
	for (;;) {
		uint64_t now = link_now_ns();
		unsigned n = s->hooks->inflight(s->ctx);
		if (n == 0) {
			log_info("stop: drained in %.0f ms", (double)(now - start) / 1e6);
			return;
		}
		if (now >= deadline) {
			log_warn("stop: drain timeout (%d s) with %u request%s in flight", s->cfg->drain_timeout_s, n,
				 n == 1 ? "" : "s");
			return;
		}
		snprintf(prefix, sizeof(prefix), "stopping: draining %u request%s; ", n, n == 1 ? "" : "s");
		update_status(s, prefix, now);
		notify_watchdog(&s->notify, now);
		struct pollfd p = { .fd = s->sigfd, .events = POLLIN };
		int signo = poll(&p, 1, 20) > 0 ? signal_next(s->sigfd) : 0;
		if (signo == SIGTERM || signo == SIGINT) {
			log_warn("stop: second signal, not waiting for %u request%s", n, n == 1 ? "" : "s");
			return;
		}
	}
}

static int main_loop(struct serve_state *s)
{
	for (;;) {
		uint64_t now = link_now_ns();
		uint64_t wait_ns = notify_watchdog_due_ns(&s->notify, now);
		uint64_t status_due = s->status_ns + STATUS_PERIOD_NS;
		uint64_t to_status = status_due > now ? status_due - now : 0;
		if (to_status < wait_ns)
			wait_ns = to_status;
		struct pollfd p = { .fd = s->sigfd, .events = POLLIN };
		int timeout_ms = (int)((wait_ns + 999999) / 1000000);
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno != EINTR)
			return log_err(-errno, "poll: %s", strerror(errno));
		now = link_now_ns();
		notify_watchdog(&s->notify, now);
		if (now >= status_due)
			update_status(s, NULL, now);
		if (r <= 0 || !(p.revents & POLLIN))
			continue;
		int signo = signal_next(s->sigfd);
		if (signo == SIGHUP) {
			reload(s);
		} else if (signo == SIGTERM || signo == SIGINT) {
			log_info("stop: %s", strsignal(signo));
			drain(s);
			return 0;
		}
	}
}

int cmd_serve(int argc, char **argv)
{
	struct serve_state s;
	char err[768];
	bool flag_error;
	int r, status = 1;

	memset(&s, 0, sizeof(s));
	s.sigfd = -1;
	r = parse_args(argc, argv, &s.opts);
	if (r)
		return r < 0 ? 0 : r;

	r = build_config(&s.opts, &s.cfg, &flag_error, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "splitd serve: %s\n", err);
		return flag_error ? 2 : 1;
	}
	log_set_level(s.cfg->log_level);
	log_info("splitd %s: %s role, config %s", SPLITD_VERSION, config_role_name(s.cfg->role),
		 s.cfg->source[0] ? s.cfg->source : "(built-in defaults)");

	if (signals_open(&s.sigfd) < 0)
		goto out;
	if (notify_init(&s.notify) < 0)
		goto out;
	notify_status(&s.notify, "starting");

	r = serve_listeners_open(s.cfg, &s.listeners);
	if (r < 0)
		goto out;
	s.hooks = serve_hooks_select(s.cfg);
	r = s.hooks->start(s.cfg, &s.listeners, &s.ctx);
	if (r < 0) {
		log_err(r, "serve: cannot start (%s)", strerror(-r));
		goto out;
	}
	for (int i = 0; i < s.listeners.n; i++)
		log_info("serving on %s", s.listeners.names[i]);
	update_status(&s, NULL, link_now_ns());
	notify_ready(&s.notify);
	notify_watchdog(&s.notify, link_now_ns());

	if (main_loop(&s) == 0)
		status = 0;
	notify_status(&s.notify, "stopped");
out:
	if (s.hooks)
		s.hooks->stop(s.ctx);
	serve_listeners_close(&s.listeners);
	signals_close(s.sigfd);
	config_free(s.cfg);
	return status;
}
