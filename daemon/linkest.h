/* Link estimator: uplink goodput and RTT from the offload transfers
 * themselves, smoothed, and an idle timer that says when a small active
 * probe is due (the caller sends it and feeds its sample back).
 *
 * Per request the link client measures (all from the request start):
 * upload_ns (last body byte handed to the socket), ttfb_ns (first response
 * byte), connect_ns (TCP/TLS connect, 0 on a reused connection) and the peer
 * reports its own processing time server_ns. Then
 *   rtt      <- connect time of new connections, and ttfb - server - body
 *               time of small requests (probes);
 *   goodput  <- bytes / max(upload, ttfb - server - rtt) of requests with at
 *               least min_bytes, smoothed as EWMA(bytes) / EWMA(time).
 * The planner's predicted transfer + remote + rtt then matches ttfb. */
#ifndef SPLITD_LINKEST_H
#define SPLITD_LINKEST_H

#include <stddef.h>
#include <stdint.h>

struct linkest_config {
	double alpha;			/* EWMA weight of a new sample, (0, 1] */
	size_t min_bytes;		/* smaller requests feed only the RTT */
	uint64_t idle_probe_ns;		/* no sample for this long: a probe is due */
	double initial_bandwidth_bps;	/* until the first sample (config or --bandwidth) */
	double initial_rtt_ms;
};
void linkest_config_defaults(struct linkest_config *c);

struct linkest_sample {
	uint64_t now_ns;		/* CLOCK_MONOTONIC at the end of the request */
	size_t bytes_up;
	uint64_t connect_ns, upload_ns, ttfb_ns, server_ns;
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
/* 1 when the link has been idle for idle_probe_ns and no probe was asked for
 * since; it then counts as asked (at most one per idle period). */
int linkest_probe_due(struct linkest *l, uint64_t now_ns);

#endif
