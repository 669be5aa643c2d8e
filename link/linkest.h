/* Link estimator: uplink goodput and RTT from the offload transfers
 * themselves, smoothed, and an idle timer that says when a small active
 * probe is due (the caller sends it and feeds its sample back).
 *
 * Per request the link client measures (all from the request start):
 * upload_ns (last body byte handed to the socket), ttfb_ns (first response
 * byte), connect_ns (TCP/TLS connect, 0 on a reused connection) and the peer
 * reports its own processing time server_ns. Then
 *   rtt      <- the minimum, over the last rtt_window_ns, of the connect
 *               times of new connections and ttfb - server of bodyless or
 *               small requests (<= rtt_probe_bytes: health probes, tiny cuts)
 *               and the kernel's own min RTT of the connection (tcp_info),
 *               which no scheduling delay of a CPU-starved robot inflates.
 *               Never derived from the goodput, so the two cannot feed each
 *               other; a minimum, since delays only add to a round trip;
 *   goodput  <- bytes / max(upload, ttfb - server - rtt, (ttfb - server) / 4,
 *               bytes / max_bandwidth) of requests with at least min_bytes,
 *               smoothed as EWMA(bytes) / EWMA(time); after idle_probe_ns
 *               without a goodput sample the average restarts with the next.
 * The planner's predicted transfer + remote + rtt then matches ttfb. */
#ifndef SPLITD_LINKEST_H
#define SPLITD_LINKEST_H

#include <stddef.h>
#include <stdint.h>

struct linkest_config {
	double alpha;			/* EWMA weight of a new sample, (0, 1] */
	size_t min_bytes;		/* smaller requests give no goodput sample */
	size_t rtt_probe_bytes;		/* requests up to this size are RTT samples */
	uint64_t rtt_window_ns;		/* RTT = minimum over this window (0: all kept) */
	uint64_t idle_probe_ns;		/* no goodput sample for this long: a probe is due */
	double max_bandwidth_bps;	/* sanity bound of one goodput sample */
	double initial_bandwidth_bps;	/* until the first sample (config or --bandwidth) */
	double initial_rtt_ms;
};
void linkest_config_defaults(struct linkest_config *c);

struct linkest_sample {
	uint64_t now_ns;		/* CLOCK_MONOTONIC at the end of the request */
	size_t bytes_up;
	uint64_t connect_ns, upload_ns, ttfb_ns, server_ns;
	uint64_t tcp_rtt_ns;		/* the kernel's min RTT of the connection, 0 unknown */
};

struct linkest_estimate {
	double bandwidth_bps;
	double rtt_ms;
	uint64_t goodput_samples, rtt_samples;
	int measured;			/* 0: still the initial values */
};

struct linkest;

int linkest_new(const struct linkest_config *c, struct linkest **out);
void linkest_free(struct linkest *l);
/* -EINVAL for an impossible sample (ttfb < upload, zero durations), ignored. */
int linkest_observe(struct linkest *l, const struct linkest_sample *s);
void linkest_get(const struct linkest *l, struct linkest_estimate *out);
/* 1 when no goodput sample came for idle_probe_ns (the link was idle, or
 * only small requests used it) and no probe was asked for since; it then
 * counts as asked (at most one per idle period). */
int linkest_probe_due(struct linkest *l, uint64_t now_ns);
void linkest_set_idle_probe(struct linkest *l, uint64_t idle_probe_ns);
uint64_t linkest_idle_probe_ns(const struct linkest *l);

#endif
