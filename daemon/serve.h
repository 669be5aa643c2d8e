/* The boundary between the daemon shell (cmd_serve.c: config, signals,
 * systemd notification, drain) and what it serves. The shell opens the
 * listening sockets (its own, or systemd's through socket activation) and
 * hands them to a `struct serve_hooks`; wiring the inference pipeline in is
 * choosing its hooks in serve_hooks_select() (cmd_serve.c).
 *
 * Lifetime of the config: start() and reload() get a config that stays valid
 * until the next reload() returns or stop() is called; hooks copy what their
 * own threads need, or stop using the old one before reload() returns.
 */
#ifndef SPLITD_SERVE_H
#define SPLITD_SERVE_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define SERVE_MAX_LISTEN 16

struct serve_listeners {
	int fds[SERVE_MAX_LISTEN];          /* listening stream sockets, non-blocking */
	char names[SERVE_MAX_LISTEN][128];  /* bound address: "127.0.0.1:8080", "[::1]:8080", "unix:/run/x" */
	int n;
	bool activated;                     /* passed by systemd (sd_listen_fds) */
	char unix_path[512];                /* our own unix socket, unlinked on close */
};

/* Sockets from systemd when socket-activated, else bound from cfg. */
int serve_listeners_open(const struct config *cfg, struct serve_listeners *ls);
/* Closes the fds still open (those a hook took are set to -1). */
void serve_listeners_close(struct serve_listeners *ls);

struct serve_hooks {
	const char *name;
	/* Serve on ls (may take fds, setting them to -1); return once requests
	 * are answered. The shell sends READY=1 after it returns 0. */
	int (*start)(const struct config *cfg, struct serve_listeners *ls, void **ctx);
	/* Apply a new config's reloadable keys (config.h), all or none: a
	 * negative errno keeps the old and says why in err. */
	int (*reload)(void *ctx, const struct config *cfg, char *err, size_t errlen);
	/* One line for systemd's STATUS= (what it serves, models, plan). */
	void (*status)(void *ctx, char *buf, size_t len);
	/* Stop accepting new connections; requests in flight go on. */
	void (*quiesce)(void *ctx);
	/* Requests accepted and not yet answered. */
	unsigned (*inflight)(void *ctx);
	/* Stop everything and free ctx; NULL ctx is a no-op. */
	void (*stop)(void *ctx);
};

#endif
