/* sd_notify wrappers: READY, RELOADING, STOPPING, STATUS and the watchdog,
 * pinged at half of WATCHDOG_USEC as sd_watchdog_enabled(3) advises. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "notify.h"

int notify_init(struct notify *n)
{
	uint64_t usec = 0;
	int r = sd_watchdog_enabled(0, &usec);

	n->watchdog_interval_ns = 0;
	n->last_ping_ns = 0;
	if (r < 0)
		return log_err(r, "WATCHDOG_USEC: %s", strerror(-r));
	if (r > 0) {
		n->watchdog_interval_ns = usec * 1000u / 2;
		log_info("watchdog: ping every %llu ms", (unsigned long long)(n->watchdog_interval_ns / 1000000u));
	}
	return 0;
}

static int send_state(const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0)
		return log_err(r, "sd_notify(%s): %s", state, strerror(-r));
	return 0;
}

int notify_ready(struct notify *n)
{
	(void)n;
	return send_state("READY=1");
}

int notify_reloading(struct notify *n)
{
	(void)n;
	return send_state("RELOADING=1");
}

int notify_stopping(struct notify *n)
{
	(void)n;
	return send_state("STOPPING=1");
}

int notify_status(struct notify *n, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int k = snprintf(buf, sizeof(buf), "STATUS=");

	(void)n;
	va_start(ap, fmt);
	vsnprintf(buf + k, sizeof(buf) - (size_t)k, fmt, ap);
	va_end(ap);
	/* one line: the protocol separates assignments by newlines */
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	log_debug("%s", buf);
	return send_state(buf);
}

int notify_watchdog(struct notify *n, uint64_t now_ns)
{
	if (!n->watchdog_interval_ns)
		return 0;
	if (n->last_ping_ns && now_ns - n->last_ping_ns < n->watchdog_interval_ns)
		return 0;
	int r = send_state("WATCHDOG=1");
	if (r < 0)
		return r;
	n->last_ping_ns = now_ns;
	return 1;
}

uint64_t notify_watchdog_due_ns(const struct notify *n, uint64_t now_ns)
{
	if (!n->watchdog_interval_ns)
		return UINT64_MAX;
	if (!n->last_ping_ns || now_ns - n->last_ping_ns >= n->watchdog_interval_ns)
		return 0;
	return n->last_ping_ns + n->watchdog_interval_ns - now_ns;
}
