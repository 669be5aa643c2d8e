/* systemd's service notification protocol (sd_notify(3)) through libsystemd.
 * Every call is a no-op when NOTIFY_SOCKET is unset (run by hand). */
#ifndef SPLITD_NOTIFY_H
#define SPLITD_NOTIFY_H

#include <stdint.h>

struct notify {
	uint64_t watchdog_interval_ns; /* 0: no watchdog; else half of WATCHDOG_USEC */
	uint64_t last_ping_ns;         /* CLOCK_MONOTONIC of the last WATCHDOG=1 */
};

/* Reads WATCHDOG_USEC/WATCHDOG_PID. */
int notify_init(struct notify *n);
int notify_ready(struct notify *n);
int notify_reloading(struct notify *n);
int notify_stopping(struct notify *n);
int notify_status(struct notify *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends WATCHDOG=1 if half the interval has passed since the last one;
 * returns 1 when a ping was sent, 0 when not due, <0 on error. */
int notify_watchdog(struct notify *n, uint64_t now_ns); /* now_ns: link_now_ns() */
/* Nanoseconds until the next ping is due (UINT64_MAX without watchdog). */
uint64_t notify_watchdog_due_ns(const struct notify *n, uint64_t now_ns);

#endif
