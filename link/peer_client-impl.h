/* The robot's peer client inside (see peer_client.h): what peer_client.c
 * (state, probe, infer, lifetime) and peer_xfer.c (one HTTP transfer on a
 * pooled libcurl handle) share. */
#ifndef SPLITD_PEER_CLIENT_IMPL_H
#define SPLITD_PEER_CLIENT_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "peer_client.h"

#define MAX_POOL 16

struct conn {
	CURL *h;
	int busy;
	int fresh;		/* open a new connection next time (after a failure) */
};

struct peer_client {
	char *base;		/* url without a trailing slash */
	char *model;		/* as given */
	char *model_esc;	/* URL-escaped */
	uint8_t sha[32];
	int allow_unverified;
	int https;
	char *ca, *cert, *key;
	/* set again by peer_client_set_timing (reload) while requests read them */
	_Atomic int64_t connect_ms, request_ms, probe_ms;
	int64_t backoff_min_ms, backoff_max_ms;	/* under lock */
	size_t max_resp;

	pthread_mutex_t lock;	/* pool, backoff fields */
	pthread_cond_t freed;
	struct conn conns[MAX_POOL];
	int n_conns;

	_Atomic int state;
	int64_t backoff_ms;		/* under lock */
	int64_t next_try_ns;		/* under lock: monotonic time of the next attempt */
	_Atomic int64_t last_activity_ns;

	_Atomic uint64_t requests, failures, fallbacks, bytes_sent, bytes_received, probes,
		probe_failures, auth_failures, identity_mismatches, refusals, bad_answers;
	_Atomic int64_t backoff_snapshot_ms, last_probe_rtt_ns;

	pthread_t prober;
	int prober_running;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	int stop;
};

struct xfer {
	struct peer_client *c;
	/* upload */
	const struct peer_msg *msg;
	int iov;
	size_t iov_off, pos;
	curl_off_t up_total;
	int64_t t0_ns, upload_done_ns;
	int64_t first_byte_ns;		/* first response header line */
	/* download */
	uint8_t *body;
	size_t len, cap, limit;
	int too_big;
	size_t header_len;
	int has_header_len;
};

/* Runs one request (GET when msg is NULL) on a pooled connection. On 0 the
 * caller owns x->body. err gets a sentence on failure; *status the HTTP code. */
int peer_xfer_perform(struct peer_client *c, const char *path, const struct peer_msg *msg,
		      int64_t timeout_ms, struct xfer *x, long *status, struct peer_transfer *t,
		      char *err, size_t errlen);
/* Options common to every request on a handle. */
void peer_xfer_setup_handle(struct peer_client *c, CURL *h);

#endif
