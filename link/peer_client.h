/* The robot's side of the offload link: a libcurl client for one peer.
 *
 * Persistent HTTP/1.1 connections (a small pool of reused easy handles),
 * TLS 1.3 with a client certificate, plain HTTP only to a loopback address.
 * The peer is checked before use: GET /v2/health/ready, then
 * GET /v2/models/{model}, whose "parameters" must carry
 * "splitd_model_sha256" equal to ours (a mismatch is refused by name).
 *
 * State: DOWN (not verified yet, or the identity did not match), UP, or
 * BACKOFF after a failure (min doubling to max). peer_client_infer() never
 * blocks past its deadline and sends only when UP (or, in BACKOFF, once the
 * backoff has run out: the request is the retry); otherwise it returns
 * -EAGAIN at once. Every error return counts as a fallback: the caller runs
 * the rest of the model locally.
 *
 * Blame by cause. A transport failure, a timeout, an answer too big, an
 * error status or an answer that does not parse is the peer's: counted in
 * failures, and the peer backs off. A 4xx that refuses the request's
 * content (400, 413, 415, 422) is returned as -EINVAL and counted in
 * refusals only: whose data it was decides (the client's received image at
 * cut 0 is the client's; the robot's own cut tensors are not), so the
 * caller blames the peer with peer_client_blame() when it was not the
 * client's. So does a caller that finds a parsed answer unusable (outputs
 * of the wrong shape or dtype, values the model does not produce).
 * With probe_interval_ms > 0,
 * peer_client_start() runs a thread that re-probes a down peer when its
 * backoff runs out and an idle one every probe_interval_ms.
 * All counters are atomic; every function is thread-safe. */
#ifndef SPLITD_PEER_CLIENT_H
#define SPLITD_PEER_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "peer_proto.h"

struct peer_client;

enum peer_state {
	PEER_DOWN = 0,
	PEER_UP,
	PEER_BACKOFF,
};

struct peer_client_config {
	const char *url;		/* "https://host:port" (no path) */
	const char *model;		/* name in /v2/models/{model} */
	const uint8_t *model_sha256;	/* our model's identity, 32 bytes */
	int allow_unverified;		/* accept a peer without splitd_model_sha256 (Triton) */
	int plain;			/* allow http:// - refused unless the host is loopback */
	const char *ca_file;		/* CA that signed the peer's certificate */
	const char *cert_file;		/* our client certificate (PEM) */
	const char *key_file;		/* its key (PEM) */
	int64_t connect_timeout_ms;	/* 0 = 500 */
	int64_t request_timeout_ms;	/* 0 = 2000; infer may pass a tighter one */
	int64_t backoff_min_ms;		/* 0 = 100 */
	int64_t backoff_max_ms;		/* 0 = 5000 */
	int64_t probe_interval_ms;	/* idle probe period for peer_client_start; 0 = 1000 */
	size_t max_response_bytes;	/* 0 = 64 MiB */
	int pool;			/* connections; 0 = 2 */
};

/* One request's measured transfer (curl's CURLINFO_*_T, in ns from the
 * start of the transfer). */
struct peer_transfer {
	int64_t wait_ns;	/* waiting for a free connection */
	int64_t connect_ns;	/* TCP connect done (0 when reused) */
	int64_t tls_ns;		/* TLS handshake done (0 when reused or plain) */
	int64_t upload_ns;	/* last request byte written to the socket */
	int64_t ttfb_ns;	/* first response byte */
	int64_t total_ns;	/* last response byte */
	int64_t tcp_min_rtt_ns;	/* the kernel's min RTT on the connection, 0 unknown */
	uint64_t bytes_up;	/* request body bytes */
	uint64_t bytes_down;	/* response body bytes */
	int reused;		/* ran on an existing connection */
};

/* An answer. The tensors of resp point into body. */
struct peer_reply {
	long http_status;
	uint8_t *body;
	size_t len;
	struct peer_response resp;
	struct peer_transfer xfer;
};
void peer_reply_fini(struct peer_reply *r);

struct peer_client_stats {
	enum peer_state state;
	uint64_t requests;		/* sent to the peer */
	uint64_t failures;		/* sent, and failed (transport, status, garbage,
					   blamed by the caller) */
	uint64_t refusals;		/* 4xx about the request's content (-EINVAL) */
	uint64_t bad_answers;		/* parsed answers the caller could not use */
	uint64_t fallbacks;		/* infer calls that returned an error */
	uint64_t bytes_sent;		/* request body bytes handed to the network */
	uint64_t bytes_received;
	uint64_t probes;
	uint64_t probe_failures;
	uint64_t auth_failures;		/* 401/403 or TLS refused */
	uint64_t identity_mismatches;
	int64_t backoff_ms;		/* current backoff, 0 when up */
	int64_t last_probe_rtt_ns;	/* time to first byte of the last health probe */
};

int peer_client_new(const struct peer_client_config *cfg, struct peer_client **out,
		    char *err, size_t errlen);
void peer_client_free(struct peer_client *c);

/* Health + identity check now (bounded by request_timeout_ms); updates the
 * state. 0 when the peer is up and holds our model. */
int peer_client_probe(struct peer_client *c, char *err, size_t errlen);

/* POST req to /v2/models/{model}/infer within timeout_ms (0 = the config's;
 * the wait for a free connection counts). On 0, out holds the parsed answer
 * (peer_reply_fini it); on error out holds nothing to free. */
int peer_client_infer(struct peer_client *c, const struct peer_msg *req, int64_t timeout_ms,
		      struct peer_reply *out, char *err, size_t errlen);

/* Background prober (no-op pair when already started / not started). */
int peer_client_start(struct peer_client *c);
void peer_client_stop(struct peer_client *c);

enum peer_state peer_client_state(const struct peer_client *c);
const char *peer_state_name(enum peer_state s);
void peer_client_stats(const struct peer_client *c, struct peer_client_stats *out);
/* Count a fallback decided by the caller without calling infer. */
void peer_client_count_fallback(struct peer_client *c);
/* The peer's fault found by the caller after infer: an answer it could not
 * use (bad_answer 1: counted in bad_answers too), or a refusal (-EINVAL)
 * of data that was not the client's. Counts a failure and backs the peer
 * off, as a failed transfer does; counts no fallback. */
void peer_client_blame(struct peer_client *c, int bad_answer);

/* 1 when host (an address literal, "[::1]" or "localhost") is loopback. */
int peer_host_is_loopback(const char *host);

/* Replace the deadlines and periods of peer_client_config while serving
 * (<= 0 keeps one); see peer_client.c. */
void peer_client_set_timing(struct peer_client *c, int64_t connect_timeout_ms, int64_t request_timeout_ms,
			    int64_t probe_interval_ms, int64_t backoff_max_ms);

#endif
