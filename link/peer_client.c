/* The robot's libcurl client for the offload link (see peer_client.h). */
#include "peer_client.h"
#include "link-impl.h"
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

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
	int64_t connect_ms, request_ms, backoff_min_ms, backoff_max_ms, probe_ms;
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


/* The kernel's smallest RTT on the connection (tcp_info.tcpi_min_rtt, from
 * ACK timing in the network stack): unlike a round trip timed in user space
 * it carries no scheduling delay of a busy or CPU-throttled robot. 0 when the
 * connection is gone or the kernel does not say. */
static int64_t tcp_min_rtt_ns(CURL *h)
{
	curl_socket_t fd = CURL_SOCKET_BAD;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK || fd == CURL_SOCKET_BAD)
		return 0;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
		return 0;
	if (len >= offsetof(struct tcp_info, tcpi_min_rtt) + sizeof(ti.tcpi_min_rtt) && ti.tcpi_min_rtt &&
	    ti.tcpi_min_rtt != ~0u)
		return (int64_t)ti.tcpi_min_rtt * 1000;
	return (int64_t)ti.tcpi_rtt * 1000;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int peer_host_is_loopback(const char *host)
{
	char buf[64];
	struct in_addr a4;
	struct in6_addr a6;
	size_t n;

	if (!host)
		return 0;
	if (!strcasecmp(host, "localhost"))
		return 1;
	n = strlen(host);
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(buf)) {
		memcpy(buf, host + 1, n - 2);
		buf[n - 2] = '\0';
		host = buf;
	}
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return 0;
}

const char *peer_state_name(enum peer_state s)
{
	switch (s) {
	case PEER_UP: return "up";
	case PEER_BACKOFF: return "backoff";
	default: return "down";
	}
}

enum peer_state peer_client_state(const struct peer_client *c)
{
	return (enum peer_state)atomic_load(&((struct peer_client *)c)->state);
}

void peer_client_count_fallback(struct peer_client *c)
{
	atomic_fetch_add(&c->fallbacks, 1);
}

void peer_client_stats(const struct peer_client *cc, struct peer_client_stats *o)
{
	struct peer_client *c = (struct peer_client *)cc;

	o->state = (enum peer_state)atomic_load(&c->state);
	o->requests = atomic_load(&c->requests);
	o->failures = atomic_load(&c->failures);
	o->refusals = atomic_load(&c->refusals);
	o->bad_answers = atomic_load(&c->bad_answers);
	o->fallbacks = atomic_load(&c->fallbacks);
	o->bytes_sent = atomic_load(&c->bytes_sent);
	o->bytes_received = atomic_load(&c->bytes_received);
	o->probes = atomic_load(&c->probes);
	o->probe_failures = atomic_load(&c->probe_failures);
	o->auth_failures = atomic_load(&c->auth_failures);
	o->identity_mismatches = atomic_load(&c->identity_mismatches);
	o->backoff_ms = atomic_load(&c->backoff_snapshot_ms);
	o->last_probe_rtt_ns = atomic_load(&c->last_probe_rtt_ns);
}

/* ---- state machine ------------------------------------------------------- */

static void mark_up(struct peer_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->backoff_ms = 0;
	c->next_try_ns = 0;
	atomic_store(&c->backoff_snapshot_ms, 0);
	atomic_store(&c->state, PEER_UP);
	pthread_mutex_unlock(&c->lock);
}

/* A failure: back off (down = identity not verified: stays DOWN). */
static void mark_failed(struct peer_client *c, int down)
{
	pthread_mutex_lock(&c->lock);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : c->backoff_min_ms;
	if (c->backoff_ms > c->backoff_max_ms)
		c->backoff_ms = c->backoff_max_ms;
	c->next_try_ns = link_now_ns() + c->backoff_ms * 1000000;
	atomic_store(&c->backoff_snapshot_ms, c->backoff_ms);
	atomic_store(&c->state, down ? PEER_DOWN : PEER_BACKOFF);
	pthread_mutex_unlock(&c->lock);
}

/* May a request go to the peer now? */
static int may_send(struct peer_client *c)
{
	int s = atomic_load(&c->state), ok;

	if (s == PEER_UP)
		return 1;
	if (s == PEER_DOWN)
		return 0;
	pthread_mutex_lock(&c->lock);
	ok = link_now_ns() >= c->next_try_ns;
	if (ok)	/* one request retries; the others wait for its outcome */
		c->next_try_ns = link_now_ns() + c->backoff_ms * 1000000;
	pthread_mutex_unlock(&c->lock);
	return ok;
}

/* ---- connections ---------------------------------------------------------- */

static int conn_acquire(struct peer_client *c, int64_t deadline_ns, struct conn **out)
{
	struct timespec ts;
	int r = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		for (int i = 0; i < c->n_conns; i++) {
			if (!c->conns[i].busy) {
				c->conns[i].busy = 1;
				*out = &c->conns[i];
				goto out;
			}
		}
		if (link_now_ns() >= deadline_ns) {
			r = -ETIMEDOUT;
			goto out;
		}
		ts.tv_sec = deadline_ns / 1000000000;
		ts.tv_nsec = deadline_ns % 1000000000;
		pthread_cond_timedwait(&c->freed, &c->lock, &ts);
	}
out:
	pthread_mutex_unlock(&c->lock);
	return r;
}

static void conn_release(struct peer_client *c, struct conn *k, int failed)
{
	pthread_mutex_lock(&c->lock);
	k->busy = 0;
	if (failed)
		k->fresh = 1;
	pthread_cond_signal(&c->freed);
	pthread_mutex_unlock(&c->lock);
}

/* ---- one transfer ---------------------------------------------------------- */

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

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t want = size * nmemb, got = 0;
	struct peer_stream *st = x->msg->stream;

	if (st && x->pos < x->msg->total_len) {
		/* bytes still being computed: wait for them (the producer always
		 * ends with everything ready or failed) */
		pthread_mutex_lock(&st->mu);
		while (!st->failed && st->ready <= x->pos)
			pthread_cond_wait(&st->cv, &st->mu);
		int failed = st->failed;
		size_t avail = st->ready - x->pos;
		pthread_mutex_unlock(&st->mu);
		if (failed)
			return CURL_READFUNC_ABORT;
		if (want > avail)
			want = avail;
	}
	while (got < want && x->iov < x->msg->n_iov) {
		const struct iovec *v = &x->msg->iov[x->iov];
		size_t n = v->iov_len - x->iov_off;

		if (n > want - got)
			n = want - got;
		memcpy(dst + got, (const uint8_t *)v->iov_base + x->iov_off, n);
		got += n;
		x->iov_off += n;
		if (x->iov_off == v->iov_len) {
			x->iov++;
			x->iov_off = 0;
		}
	}
	x->pos += got;
	if (st && got) {
		uint64_t t = (uint64_t)link_now_ns();
		for (int i = 0; i < st->n_marks; i++)
			if (!st->marked_ns[i] && x->pos >= st->marks[i])
				st->marked_ns[i] = t;
	}
	return got;
}

static int xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct xfer *x = ud;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	if (!x->upload_done_ns && x->up_total > 0 && ulnow >= x->up_total)
		x->upload_done_ns = link_now_ns();
	return 0;
}

static size_t write_cb(char *src, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	if (n > x->limit - x->len) {
		x->too_big = 1;
		return 0;	/* aborts the transfer */
	}
	if (x->len + n > x->cap) {
		size_t cap = x->cap ? x->cap : 16384;
		uint8_t *b;

		while (cap < x->len + n)
			cap = cap > x->limit / 2 ? x->limit : cap * 2;
		if (!(b = realloc(x->body, cap)))
			return 0;
		x->body = b;
		x->cap = cap;
	}
	memcpy(x->body + x->len, src, n);
	x->len += n;
	return n;
}

static size_t header_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
	static const char key[] = "inference-header-content-length:";
	struct xfer *x = ud;
	size_t n = size * nmemb;

	/* curl's STARTTRANSFER time of a POST can be set when the upload
	 * starts; the first header line is the first byte of the answer. */
	if (!x->first_byte_ns)
		x->first_byte_ns = link_now_ns();
	if (n > sizeof(key) - 1 && !strncasecmp(buf, key, sizeof(key) - 1)) {
		char tmp[32];
		size_t m = n - (sizeof(key) - 1);
		char *end;
		unsigned long long v;

		if (m >= sizeof(tmp))
			m = sizeof(tmp) - 1;
		memcpy(tmp, buf + sizeof(key) - 1, m);
		tmp[m] = '\0';
		errno = 0;
		v = strtoull(tmp, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (!errno && end != tmp && !*end && v <= SIZE_MAX) {
			x->header_len = (size_t)v;
			x->has_header_len = 1;
		} else {
			x->header_len = (size_t)-1;	/* garbage: fails the parse */
			x->has_header_len = 1;
		}
	}
	return n;
}

/* Options common to every request on a handle. */
static void setup_handle(struct peer_client *c, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, c->https ? "https" : "http");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
	curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
	if (c->https) {
		curl_easy_setopt(h, CURLOPT_SSLVERSION,
				 (long)(CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_DEFAULT));
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->key);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

static int64_t info_ns(CURL *h, CURLINFO what)
{
	curl_off_t us = 0;

	if (curl_easy_getinfo(h, what, &us) != CURLE_OK)
		return 0;
	return (int64_t)us * 1000;
}

/* Runs one request (GET when msg is NULL) on a pooled connection. On 0 the
 * caller owns x->body. err gets a sentence on failure; *status the HTTP code. */
static int perform(struct peer_client *c, const char *path, const struct peer_msg *msg,
		   int64_t timeout_ms, struct xfer *x, long *status, struct peer_transfer *t,
		   char *err, size_t errlen)
{
	char url[1024], ilen[80];
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct conn *k = NULL;
	int64_t start = link_now_ns(), deadline = start + timeout_ms * 1000000, left_ms;
	CURLcode rc;
	CURL *h;
	long reused_conns = 0;
	int64_t t1_ns;
	int r;

	memset(x, 0, sizeof(*x));
	x->c = c;
	x->msg = msg;
	x->limit = c->max_resp;
	*status = 0;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->base, path) >= sizeof(url))
		return link_err(-ENAMETOOLONG, err, errlen, "peer URL is too long");
	if ((r = conn_acquire(c, deadline, &k)) < 0)
		return link_err(r, err, errlen, "no free connection to the peer within %lld ms",
			    (long long)timeout_ms);
	t->wait_ns = link_now_ns() - start;
	left_ms = (deadline - link_now_ns()) / 1000000;
	if (left_ms < 1) {
		r = link_err(-ETIMEDOUT, err, errlen, "deadline of %lld ms passed before sending",
			 (long long)timeout_ms);
		goto out;
	}
	h = k->h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)left_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(c->connect_ms < left_ms ? c->connect_ms : left_ms));
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, (long)k->fresh);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	if (msg) {
		if (snprintf(ilen, sizeof(ilen), "Inference-Header-Content-Length: %zu", msg->header_len) < 0 ||
		    !(hdrs = curl_slist_append(hdrs, "Content-Type: application/octet-stream")) ||
		    !curl_slist_append(hdrs, ilen) || !curl_slist_append(hdrs, "Expect:")) {
			r = link_err(-ENOMEM, err, errlen, "out of memory");
			goto out;
		}
		x->up_total = (curl_off_t)msg->total_len;
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, NULL);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)msg->total_len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(h, CURLOPT_READDATA, x);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
		curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
	} else {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 1L);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	x->t0_ns = link_now_ns();
	rc = curl_easy_perform(h);
	t1_ns = link_now_ns();
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	t->connect_ns = info_ns(h, CURLINFO_CONNECT_TIME_T);
	t->tls_ns = c->https ? info_ns(h, CURLINFO_APPCONNECT_TIME_T) : 0;
	t->ttfb_ns = x->first_byte_ns ? x->first_byte_ns - x->t0_ns : info_ns(h, CURLINFO_STARTTRANSFER_TIME_T);
	/* one clock for all three: curl's own clock starts inside perform, a few
	 * microseconds after t0, so mixing them could order ttfb after total */
	t->total_ns = t1_ns - x->t0_ns;
	if (t->ttfb_ns > t->total_ns)
		t->ttfb_ns = t->total_ns;
	t->tcp_min_rtt_ns = tcp_min_rtt_ns(h);
	t->upload_ns = x->upload_done_ns ? x->upload_done_ns - x->t0_ns : 0;
	if (t->upload_ns > t->ttfb_ns && t->ttfb_ns)
		t->upload_ns = t->ttfb_ns;
	{
		curl_off_t up = 0, down = 0;

		curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
		curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
		t->bytes_up = (uint64_t)up;
		t->bytes_down = (uint64_t)down;
		atomic_fetch_add(&c->bytes_sent, (uint64_t)up);
		atomic_fetch_add(&c->bytes_received, (uint64_t)down);
	}
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &reused_conns);
	t->reused = reused_conns == 0;
	if (rc != CURLE_OK) {
		if (rc == CURLE_OPERATION_TIMEDOUT)
			r = link_err(-ETIMEDOUT, err, errlen, "peer did not answer within %lld ms: %s",
				 (long long)timeout_ms, cerr[0] ? cerr : curl_easy_strerror(rc));
		else if (x->too_big)
			r = link_err(-EMSGSIZE, err, errlen, "peer answer exceeds %zu bytes", c->max_resp);
		else if (rc == CURLE_ABORTED_BY_CALLBACK && x->msg && x->msg->stream && x->msg->stream->failed)
			/* the robot stopped producing the body: not the peer's fault */
			r = link_err(-ECANCELED, err, errlen, "the robot stopped sending the request");
		else if (rc == CURLE_COULDNT_CONNECT)
			r = link_err(-ECONNREFUSED, err, errlen, "cannot connect to the peer: %s",
				 cerr[0] ? cerr : curl_easy_strerror(rc));
		else if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
			 rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE) {
			atomic_fetch_add(&c->auth_failures, 1);
			r = link_err(-EACCES, err, errlen, "TLS with the peer failed: %s",
				 cerr[0] ? cerr : curl_easy_strerror(rc));
		} else
			r = link_err(-EIO, err, errlen, "peer transfer failed: %s",
				 cerr[0] ? cerr : curl_easy_strerror(rc));
		goto out;
	}
	if (*status == 401 || *status == 403)
		atomic_fetch_add(&c->auth_failures, 1);
	r = 0;
out:
	curl_slist_free_all(hdrs);
	if (k) {
		if (r == 0)
			k->fresh = 0;
		conn_release(c, k, r < 0);
	}
	if (r < 0) {
		free(x->body);
		x->body = NULL;
	}
	return r;
}

/* A non-200 answer as a sentence (the peer's own error message if any). */
static int status_error(long status, const struct xfer *x, char *err, size_t errlen)
{
	struct peer_response pr;
	char msg[256] = "";

	if (x->len && peer_response_parse(x->body, x->len, 0, &pr, msg, sizeof(msg)) == 0)
		peer_response_fini(&pr);
	if (status == 401 || status == 403)
		return link_err(-EACCES, err, errlen,
			    "peer refused our credentials (HTTP %ld): check cert_file/key_file and the peer's CA%s%s",
			    status, msg[0] ? "; " : "", msg);
	return link_err(-EPROTO, err, errlen, "peer answered HTTP %ld%s%s", status, msg[0] ? ": " : "", msg);
}

/* ---- probe ----------------------------------------------------------------- */

int peer_client_probe(struct peer_client *c, char *err, size_t errlen)
{
	struct peer_transfer t = { 0 };
	struct xfer x;
	char path[600];
	long status;
	json_t *root = NULL;
	json_error_t je;
	const json_t *p, *s;
	uint8_t sha[32];
	int r, down = 0;

	atomic_fetch_add(&c->probes, 1);
	if ((r = perform(c, "/v2/health/ready", NULL, c->request_ms, &x, &status, &t, err, errlen)) < 0)
		goto out;
	free(x.body);
	if (status != 200) {
		r = link_err(status == 401 || status == 403 ? -EACCES : -EIO, err, errlen,
			 "peer is not ready (GET /v2/health/ready: HTTP %ld)", status);
		goto out;
	}
	atomic_store(&c->last_probe_rtt_ns, t.ttfb_ns);
	snprintf(path, sizeof(path), "/v2/models/%s", c->model_esc);
	if ((r = perform(c, path, NULL, c->request_ms, &x, &status, &t, err, errlen)) < 0)
		goto out;
	if (status != 200) {
		r = status_error(status, &x, err, errlen);
		if (status == 404) {
			r = link_err(-ENOENT, err, errlen, "peer does not serve model '%s' (HTTP 404)", c->model);
			down = 1;
		}
		free(x.body);
		goto out;
	}
	root = json_loadb((const char *)x.body, x.len, 0, &je);
	free(x.body);
	if (!json_is_object(root)) {
		r = link_err(-EBADMSG, err, errlen, "peer model metadata is not a JSON object");
		goto out;
	}
	p = json_object_get(root, "parameters");
	s = json_is_object(p) ? json_object_get(p, "splitd_model_sha256") : NULL;
	if (!s) {
		if (!c->allow_unverified) {
			atomic_fetch_add(&c->identity_mismatches, 1);
			down = 1;
			r = link_err(-EPERM, err, errlen,
				 "peer model '%s' carries no splitd_model_sha256: not a splitd peer? (allow_unverified accepts it)",
				 c->model);
			goto out;
		}
	} else if (!json_is_string(s) || peer_sha256_parse(json_string_value(s), sha) < 0 ||
		   memcmp(sha, c->sha, 32)) {
		char want[65];

		peer_sha256_hex(c->sha, want);
		atomic_fetch_add(&c->identity_mismatches, 1);
		down = 1;
		r = link_err(-EPERM, err, errlen,
			 "peer serves another model as '%s': its sha256 is %.64s, ours is %s; refusing to offload",
			 c->model, json_is_string(s) ? json_string_value(s) : "(not a string)", want);
		goto out;
	}
	r = 0;
out:
	json_decref(root);
	if (r < 0) {
		atomic_fetch_add(&c->probe_failures, 1);
		mark_failed(c, down);
	} else {
		mark_up(c);
	}
	atomic_store(&c->last_activity_ns, link_now_ns());
	return r;
}

/* ---- infer ------------------------------------------------------------------ */

/* A 4xx about what the request carries (not about us, the path or the
 * peer's own state): the sender's data may be at fault. */
static int refuses_content(long status)
{
	return status == 400 || status == 413 || status == 415 || status == 422;
}

void peer_client_blame(struct peer_client *c, int bad_answer)
{
	atomic_fetch_add(&c->failures, 1);
	if (bad_answer)
		atomic_fetch_add(&c->bad_answers, 1);
	mark_failed(c, 0);
}

void peer_reply_fini(struct peer_reply *r)
{
	if (!r)
		return;
	peer_response_fini(&r->resp);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int peer_client_infer(struct peer_client *c, const struct peer_msg *req, int64_t timeout_ms,
		      struct peer_reply *out, char *err, size_t errlen)
{
	struct xfer x;
	char path[600];
	long status = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (!req || !req->n_iov) {
		r = link_err(-EINVAL, err, errlen, "empty request");
		goto fallback;
	}
	if (!may_send(c)) {
		r = link_err(-EAGAIN, err, errlen, "peer is %s", peer_state_name(peer_client_state(c)));
		goto fallback;
	}
	if (timeout_ms <= 0 || timeout_ms > c->request_ms)
		timeout_ms = c->request_ms;
	snprintf(path, sizeof(path), "/v2/models/%s/infer", c->model_esc);
	atomic_fetch_add(&c->requests, 1);
	r = perform(c, path, req, timeout_ms, &x, &status, &out->xfer, err, errlen);
	atomic_store(&c->last_activity_ns, link_now_ns());
	if (r == -ECANCELED)
		goto fallback;
	if (r < 0)
		goto failed;
	out->http_status = status;
	if (status != 200) {
		r = status_error(status, &x, err, errlen);
		free(x.body);
		if (refuses_content(status)) {
			/* the peer is there and read the request; what it
			 * refused decides the blame, which the caller knows */
			atomic_fetch_add(&c->refusals, 1);
			mark_up(c);
			r = -EINVAL;
			goto fallback;
		}
		goto failed;
	}
	if (!x.has_header_len) {
		r = link_err(-EBADMSG, err, errlen, "peer answer lacks Inference-Header-Content-Length");
		free(x.body);
		goto failed;
	}
	out->body = x.body;
	out->len = x.len;
	if ((r = peer_response_parse(out->body, out->len, x.header_len, &out->resp, err, errlen)) < 0) {
		free(out->body);
		out->body = NULL;
		goto failed;
	}
	mark_up(c);
	return 0;
failed:
	atomic_fetch_add(&c->failures, 1);
	mark_failed(c, r == -EPERM);
fallback:
	atomic_fetch_add(&c->fallbacks, 1);
	{
		struct peer_transfer keep = out->xfer;

		memset(out, 0, sizeof(*out));
		out->xfer = keep;
		out->http_status = status;
	}
	return r;
}

/* ---- prober ------------------------------------------------------------------ */

static void *prober_main(void *arg)
{
	struct peer_client *c = arg;

	pthread_mutex_lock(&c->stop_lock);
	while (!c->stop) {
		int64_t now = link_now_ns(), wake_ns, next;
		int s = atomic_load(&c->state);
		struct timespec ts;

		pthread_mutex_lock(&c->lock);
		next = c->next_try_ns;
		pthread_mutex_unlock(&c->lock);
		if ((s != PEER_UP && now >= next) ||
		    (s == PEER_UP && now - atomic_load(&c->last_activity_ns) >= c->probe_ms * 1000000)) {
			pthread_mutex_unlock(&c->stop_lock);
			peer_client_probe(c, NULL, 0);
			pthread_mutex_lock(&c->stop_lock);
			continue;
		}
		wake_ns = s == PEER_UP ? atomic_load(&c->last_activity_ns) + c->probe_ms * 1000000 : next;
		if (wake_ns < now + 5000000)
			wake_ns = now + 5000000;
		{
			/* the condvar runs on CLOCK_MONOTONIC */
			ts.tv_sec = wake_ns / 1000000000;
			ts.tv_nsec = wake_ns % 1000000000;
		}
		pthread_cond_timedwait(&c->stop_cond, &c->stop_lock, &ts);
	}
	pthread_mutex_unlock(&c->stop_lock);
	return NULL;
}

int peer_client_start(struct peer_client *c)
{
	int r;

	if (c->prober_running)
		return 0;
	c->stop = 0;
	if ((r = pthread_create(&c->prober, NULL, prober_main, c)) != 0)
		return -r;
	c->prober_running = 1;
	return 0;
}

void peer_client_stop(struct peer_client *c)
{
	if (!c || !c->prober_running)
		return;
	pthread_mutex_lock(&c->stop_lock);
	c->stop = 1;
	pthread_cond_signal(&c->stop_cond);
	pthread_mutex_unlock(&c->stop_lock);
	pthread_join(c->prober, NULL);
	c->prober_running = 0;
}

/* ---- lifetime ---------------------------------------------------------------- */

static int init_monotonic_cond(pthread_cond_t *cv)
{
	pthread_condattr_t a;
	int r;

	if ((r = pthread_condattr_init(&a)))
		return -r;
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	r = pthread_cond_init(cv, &a);
	pthread_condattr_destroy(&a);
	return -r;
}

static int check_file(const char *what, const char *path, char *err, size_t errlen)
{
	if (!path || !*path)
		return link_err(-EINVAL, err, errlen, "peer link over https needs %s", what);
	if (access(path, R_OK) < 0)
		return link_err(-errno, err, errlen, "peer link %s %s: %s", what, path, strerror(errno));
	return 0;
}

int peer_client_new(const struct peer_client_config *cfg, struct peer_client **out,
		    char *err, size_t errlen)
{
	struct peer_client *c = NULL;
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *user = NULL;
	char *esc = NULL;
	int r, npool;

	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return link_err(-EIO, err, errlen, "libcurl failed to initialise");
	if (!cfg || !cfg->url || !cfg->model || !*cfg->model || !cfg->model_sha256)
		return link_err(-EINVAL, err, errlen, "peer link needs a url, a model name and its sha256");
	if (!(u = curl_url()))
		return link_err(-ENOMEM, err, errlen, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, cfg->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		r = link_err(-EINVAL, err, errlen, "peer url '%s' is not a URL", cfg->url);
		goto out;
	}
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	if ((path && strcmp(path, "/")) || query || user) {
		r = link_err(-EINVAL, err, errlen, "peer url '%s' must be scheme://host:port only", cfg->url);
		goto out;
	}
	if (!(c = calloc(1, sizeof(*c)))) {
		r = link_err(-ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->stop_lock, NULL);
	if ((r = init_monotonic_cond(&c->freed)) < 0 || (r = init_monotonic_cond(&c->stop_cond)) < 0) {
		link_err(r, err, errlen, "cannot create a condition variable");
		free(c);
		c = NULL;
		goto out;
	}
	if (!strcmp(scheme, "https")) {
		c->https = 1;
		if ((r = check_file("ca_file", cfg->ca_file, err, errlen)) < 0 ||
		    (r = check_file("cert_file", cfg->cert_file, err, errlen)) < 0 ||
		    (r = check_file("key_file", cfg->key_file, err, errlen)) < 0)
			goto out;
	} else if (!strcmp(scheme, "http")) {
		if (!cfg->plain) {
			r = link_err(-EPERM, err, errlen,
				 "peer url '%s' is plain http: TLS is required unless plain is set", cfg->url);
			goto out;
		}
		if (!peer_host_is_loopback(host)) {
			r = link_err(-EPERM, err, errlen,
				 "plain http to %s refused: plain is allowed only to loopback addresses (127.0.0.0/8, ::1, localhost)",
				 host);
			goto out;
		}
	} else {
		r = link_err(-EINVAL, err, errlen, "peer url scheme '%s' is neither https nor http", scheme);
		goto out;
	}
	memcpy(c->sha, cfg->model_sha256, 32);
	c->allow_unverified = cfg->allow_unverified;
	c->connect_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 500;
	c->request_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : 2000;
	c->backoff_min_ms = cfg->backoff_min_ms > 0 ? cfg->backoff_min_ms : 100;
	c->backoff_max_ms = cfg->backoff_max_ms > 0 ? cfg->backoff_max_ms : 5000;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	c->probe_ms = cfg->probe_interval_ms > 0 ? cfg->probe_interval_ms : 1000;
	c->max_resp = cfg->max_response_bytes ? cfg->max_response_bytes : (size_t)64 << 20;
	npool = cfg->pool > 0 ? (cfg->pool < MAX_POOL ? cfg->pool : MAX_POOL) : 2;
	esc = curl_easy_escape(NULL, cfg->model, 0);
	c->base = strdup(cfg->url);
	c->model = strdup(cfg->model);
	c->model_esc = esc ? strdup(esc) : NULL;
	if (c->https) {
		c->ca = strdup(cfg->ca_file);
		c->cert = strdup(cfg->cert_file);
		c->key = strdup(cfg->key_file);
	}
	if (!c->base || !c->model || !c->model_esc || (c->https && (!c->ca || !c->cert || !c->key))) {
		r = link_err(-ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	if (strlen(c->model_esc) > 400) {
		r = link_err(-EINVAL, err, errlen, "model name is too long");
		goto out;
	}
	while (strlen(c->base) && c->base[strlen(c->base) - 1] == '/')
		c->base[strlen(c->base) - 1] = '\0';
	for (int i = 0; i < npool; i++) {
		if (!(c->conns[i].h = curl_easy_init())) {
			r = link_err(-ENOMEM, err, errlen, "out of memory");
			goto out;
		}
		c->n_conns++;
		setup_handle(c, c->conns[i].h);
	}
	atomic_store(&c->state, PEER_DOWN);
	atomic_store(&c->last_activity_ns, link_now_ns());
	*out = c;
	c = NULL;
	r = 0;
out:
	peer_client_free(c);
	curl_free(esc);
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(u);
	return r;
}

void peer_client_free(struct peer_client *c)
{
	if (!c)
		return;
	peer_client_stop(c);
	for (int i = 0; i < c->n_conns; i++)
		curl_easy_cleanup(c->conns[i].h);
	pthread_cond_destroy(&c->freed);
	pthread_cond_destroy(&c->stop_cond);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->stop_lock);
	free(c->base);
	free(c->model);
	free(c->model_esc);
	free(c->ca);
	free(c->cert);
	free(c->key);
	free(c);
}
