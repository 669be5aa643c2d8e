/* One HTTP transfer of the robot's peer client (see peer_client-impl.h):
 * a pooled libcurl handle, the request's iovecs (or a streamed body) sent,
 * the answer collected and timed. */
#include "peer_client-impl.h"
#include "link-impl.h"
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

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

void peer_xfer_setup_handle(struct peer_client *c, CURL *h)
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

/* The request's options on handle h: url, deadlines, callbacks, and for a
 * POST the body's headers (in *hdrs: free them) and reader. */
static int prepare(struct peer_client *c, struct conn *k, const char *url, char *cerr, long left_ms,
		   const struct peer_msg *msg, struct xfer *x, struct curl_slist **hdrs)
{
	CURL *h = k->h;
	char ilen[80];

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)(c->connect_ms < left_ms ? c->connect_ms : left_ms));
	curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, (long)k->fresh);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	if (msg) {
		if (snprintf(ilen, sizeof(ilen), "Inference-Header-Content-Length: %zu", msg->header_len) < 0 ||
		    !(*hdrs = curl_slist_append(*hdrs, "Content-Type: application/octet-stream")) ||
		    !curl_slist_append(*hdrs, ilen) || !curl_slist_append(*hdrs, "Expect:"))
			return -ENOMEM;
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
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	return 0;
}

/* The transfer's phases and sizes, once curl_easy_perform returned at t1_ns. */
static void measure(struct peer_client *c, CURL *h, const struct xfer *x, int64_t t1_ns,
		    struct peer_transfer *t)
{
	curl_off_t up = 0, down = 0;
	long new_conns = 0;

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
	curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
	curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
	t->bytes_up = (uint64_t)up;
	t->bytes_down = (uint64_t)down;
	atomic_fetch_add(&c->bytes_sent, (uint64_t)up);
	atomic_fetch_add(&c->bytes_received, (uint64_t)down);
	curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &new_conns);
	t->reused = new_conns == 0;
}

/* A failed transfer as an errno and a sentence, by its cause. */
static int failure(struct peer_client *c, CURLcode rc, const struct xfer *x, const char *cerr,
		   int64_t timeout_ms, char *err, size_t errlen)
{
	const char *why = cerr[0] ? cerr : curl_easy_strerror(rc);

	if (rc == CURLE_OPERATION_TIMEDOUT)
		return err_set(-ETIMEDOUT, err, errlen, "peer did not answer within %lld ms: %s",
				(long long)timeout_ms, why);
	if (x->too_big)
		return err_set(-EMSGSIZE, err, errlen, "peer answer exceeds %zu bytes", c->max_resp);
	if (rc == CURLE_ABORTED_BY_CALLBACK && x->msg && x->msg->stream && x->msg->stream->failed)
		/* the robot stopped producing the body: not the peer's fault */
		return err_set(-ECANCELED, err, errlen, "the robot stopped sending the request");
	if (rc == CURLE_COULDNT_CONNECT)
		return err_set(-ECONNREFUSED, err, errlen, "cannot connect to the peer: %s", why);
	if (rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION ||
	    rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_CACERT_BADFILE) {
		atomic_fetch_add(&c->auth_failures, 1);
		return err_set(-EACCES, err, errlen, "TLS with the peer failed: %s", why);
	}
	return err_set(-EIO, err, errlen, "peer transfer failed: %s", why);
}

int peer_xfer_perform(struct peer_client *c, const char *path, const struct peer_msg *msg,
		      int64_t timeout_ms, struct xfer *x, long *status, struct peer_transfer *t,
		      char *err, size_t errlen)
{
	char url[1024];
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct conn *k = NULL;
	int64_t start = link_now_ns(), deadline = start + timeout_ms * 1000000, left_ms;
	CURLcode rc;
	int r;

	memset(x, 0, sizeof(*x));
	x->c = c;
	x->msg = msg;
	x->limit = c->max_resp;
	*status = 0;
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->base, path) >= sizeof(url))
		return err_set(-ENAMETOOLONG, err, errlen, "peer URL is too long");
	if ((r = conn_acquire(c, deadline, &k)) < 0)
		return err_set(r, err, errlen, "no free connection to the peer within %lld ms",
				(long long)timeout_ms);
	t->wait_ns = link_now_ns() - start;
	left_ms = (deadline - link_now_ns()) / 1000000;
	if (left_ms < 1) {
		r = err_set(-ETIMEDOUT, err, errlen, "deadline of %lld ms passed before sending",
			     (long long)timeout_ms);
		goto out;
	}
	if ((r = prepare(c, k, url, cerr, (long)left_ms, msg, x, &hdrs)) < 0) {
		err_set(r, err, errlen, "out of memory");
		goto out;
	}
	x->t0_ns = link_now_ns();
	rc = curl_easy_perform(k->h);
	measure(c, k->h, x, link_now_ns(), t);
	curl_easy_setopt(k->h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(k->h, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_getinfo(k->h, CURLINFO_RESPONSE_CODE, status);
	if (rc != CURLE_OK) {
		r = failure(c, rc, x, cerr, timeout_ms, err, errlen);
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
