/* The libmicrohttpd server: listeners, routing, authentication, body
 * limits, the bounded in-flight count, and answering calls from any thread
 * through suspend/resume. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifdef SPLITD_API_HAVE_GNUTLS
#include <gnutls/gnutls.h>
#endif

#include "api-impl.h"

#define DEFAULT_BODY_BYTES (16u << 20)
#define MS_NS 1000000ull
/* a connection is closed to make room only when this far behind its
 * schedule: a client whose header comes in one packet never is */
#define EVICT_GRACE_NS (500 * MS_NS)
#define REAPER_TICK_NS (100 * MS_NS)

/* ---- connections and their deadlines ---------------------------------- */

static void conn_phase(struct api_conn *x, enum conn_phase ph)
{
	if (!x)
		return;
	if (ph == CONN_BODY)
		atomic_store(&x->body_bytes, 0);
	atomic_store(&x->phase_ns, api_now_ns());
	atomic_store(&x->phase, (int)ph);
}

/* How far past its deadline x is (> 0: overdue), and how far behind the
 * schedule of a client that keeps to the deadlines (for choosing whom to
 * close when a listener is nearly full). Under conn_lock. */
static void conn_lateness(const struct api_conn *x, uint64_t now, int64_t *overdue, int64_t *behind)
{
	const struct api_server *s = x->srv;
	int64_t age = (int64_t)(now - atomic_load(&x->phase_ns));

	switch (atomic_load(&x->phase)) {
	case CONN_HEADER:
		*overdue = age - (int64_t)s->header_ns;
		*behind = age;		/* a header takes no time at all */
		return;
	case CONN_BODY: {
		uint64_t earned = atomic_load(&x->body_bytes) * 1000000000ull /
				  (uint64_t)s->opts.body_min_rate;
		uint64_t allowed = s->body_ns + earned;
		if (allowed > s->body_max_ns)
			allowed = s->body_max_ns;
		*overdue = age - (int64_t)allowed;
		*behind = age - (int64_t)earned;
		return;
	}
	default:		/* answering: libmicrohttpd's idle timeout only */
		*overdue = *behind = INT64_MIN;
	}
}

static void conn_shut(struct api_conn *x)
{
	if (x->shut)
		return;
	x->shut = 1;
	/* a kept-alive connection with no next request is not a slow client */
	if (!atomic_load(&x->idle))
		atomic_fetch_add(&x->srv->closed_slow, 1);
	shutdown(x->fd, SHUT_RDWR);
}

/* Listener i holds more than max_connections less a quarter: close the
 * connections furthest behind (past the grace) until it does not, so that a
 * new client finds a place while slow ones fill the rest. Under conn_lock. */
static void conn_make_room(struct api_server *s, int i, uint64_t now)
{
	int keep = s->opts.max_connections - (s->opts.max_connections + 3) / 4;
	int open = 0;

	for (struct api_conn *x = s->conns; x; x = x->next)
		open += x->listener == i && !x->shut;
	while (open > keep) {
		struct api_conn *worst = NULL;
		int64_t worst_behind = (int64_t)EVICT_GRACE_NS, overdue, behind;
		for (struct api_conn *x = s->conns; x; x = x->next) {
			if (x->listener != i || x->shut)
				continue;
			conn_lateness(x, now, &overdue, &behind);
			if (behind > worst_behind) {
				worst = x;
				worst_behind = behind;
			}
		}
		if (!worst)
			return;
		conn_shut(worst);
		open--;
	}
}

static void *reaper(void *arg)
{
	struct api_server *s = arg;

	pthread_mutex_lock(&s->conn_lock);
	while (!s->reaper_stop) {
		uint64_t now = api_now_ns();
		int64_t overdue, behind;
		for (struct api_conn *x = s->conns; x; x = x->next) {
			conn_lateness(x, now, &overdue, &behind);
			if (overdue > 0)
				conn_shut(x);
		}
		for (int i = 0; i < s->nd; i++)
			conn_make_room(s, i, now);
		if (!s->conns) {
			pthread_cond_wait(&s->conn_cond, &s->conn_lock);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)REAPER_TICK_NS;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&s->conn_cond, &s->conn_lock, &ts);
	}
	pthread_mutex_unlock(&s->conn_lock);
	return NULL;
}

/* libmicrohttpd's start and close notices: the close comes before it closes
 * the socket, so the reaper never shuts down a descriptor reused since. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	struct api_listener *l = cls;
	struct api_server *s = l->srv;
	struct api_conn *x = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		x = calloc(1, sizeof(*x));
		if (!x || !ci)
			return;	/* no deadlines for it: libmicrohttpd's timeout still holds */
		x->srv = s;
		x->listener = l->i;
		x->fd = ci->connect_fd;
		conn_phase(x, CONN_HEADER);
		*socket_context = x;
		pthread_mutex_lock(&s->conn_lock);
		x->next = s->conns;
		if (s->conns)
			s->conns->prev = x;
		s->conns = x;
		conn_make_room(s, l->i, api_now_ns());
		pthread_cond_signal(&s->conn_cond);
		pthread_mutex_unlock(&s->conn_lock);
		return;
	}
	if (!x)
		return;
	pthread_mutex_lock(&s->conn_lock);
	if (x->prev)
		x->prev->next = x->next;
	else
		s->conns = x->next;
	if (x->next)
		x->next->prev = x->prev;
	pthread_mutex_unlock(&s->conn_lock);
	free(x);
	*socket_context = NULL;
}

static struct api_conn *conn_of(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* The request line is in and its arguments are not parsed yet. libmicrohttpd
 * 0.9.75 never answers a request whose arguments overflow its connection's
 * memory (its 431 is overwritten as it moves on to the headers; the client
 * waits for the idle timeout): with more than we take, the query ends here
 * (the '\0' libmicrohttpd itself writes after '?'), nothing is stored, and
 * on_headers answers 400. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct api_conn *x = conn_of(conn);
	char *q = strchr(uri, '?');
	int n = 0;

	(void)cls;
	if (x) {
		x->many_args = 0;
		atomic_store(&x->idle, 0);
	}
	if (!q)
		return NULL;
	/* the arguments libmicrohttpd would store: the non-empty pieces */
	for (const char *p = q + 1; *p; p++)
		n += *p != '&' && (p == q + 1 || p[-1] == '&');
	if (x && n >= API_MAX_QUERY) {
		q[1] = '\0';	/* the buffer libmicrohttpd parses: writable */
		x->many_args = 1;
	}
	return NULL;
}

static void call_free(struct api_call *c)
{
	if (!c)
		return;
	atomic_fetch_sub(&c->srv->open_calls, 1);
	if (c->slot)
		atomic_fetch_sub(&c->srv->inflight, 1);
	if (c->dispatched)
		atomic_fetch_sub(&c->srv->pending, 1);
	free(c->model_name);
	free(c->body.p);
	for (int i = 0; i < c->n_query; i++) {
		free(c->query[i][0]);
		free(c->query[i][1]);
	}
	for (int i = 0; i < c->n_hdr; i++) {
		free(c->hdr[i][0]);
		free(c->hdr[i][1]);
	}
	free(c->input_mem);
	api_v2_message_free(c->msg);
	free(c->resp_type);
	free(c->resp_body);
	free(c->stream_mem);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

/* Hand the stored answer to libmicrohttpd (on a connection thread). */
static enum MHD_Result send_answer(struct api_call *c)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer_with_free_callback(
		c->resp_len, c->resp_body, free);
	if (!r)
		return MHD_NO;
	c->resp_body = NULL;
	if (c->resp_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, c->resp_type);
	for (int i = 0; i < c->n_hdr; i++)
		MHD_add_response_header(r, c->hdr[i][0], c->hdr[i][1]);
	int cls = c->status / 100;
	atomic_fetch_add(&c->srv->responses[cls >= 1 && cls <= 5 ? cls - 1 : 5], 1);
	ret = MHD_queue_response(c->conn, (unsigned)c->status, r);
	MHD_destroy_response(r);
	c->state = CALL_SENT;
	return ret;
}

static void store_answer(struct api_call *c, int status, const char *type,
			 void *body, size_t len)
{
	c->status = status;
	free(c->resp_type);
	c->resp_type = type ? strdup(type) : NULL;
	free(c->resp_body);
	c->resp_body = body;
	c->resp_len = len;
}

void api_call_respond(struct api_call *c, int status, const char *content_type,
		      void *body, size_t len)
{
	pthread_mutex_lock(&c->lock);
	if (c->gone) {
		/* a streamed call whose client went away: the handler's answer
		 * was the last use of it */
		pthread_mutex_unlock(&c->lock);
		free(body);
		call_free(c);
		return;
	}
	if (c->state == CALL_ANSWERED || c->state == CALL_SENT) {
		/* answered twice: a programmer error; keep the first */
		pthread_mutex_unlock(&c->lock);
		free(body);
		return;
	}
	store_answer(c, status, content_type, body, len);
	if (c->state == CALL_SUSPENDED) {
		c->state = CALL_ANSWERED;
		MHD_resume_connection(c->conn);
	} else {
		c->state = CALL_ANSWERED;
		/* A streamed call whose client stream_wait saw go away while
		 * libmicrohttpd did not (it may read on only at its idle
		 * timeout, the call unfreed meanwhile, and a stop waits for
		 * it): end the socket so that it reads the end now and
		 * completes the call. Not completed yet (gone is 0 under the
		 * lock), so the descriptor is still this connection's. */
		if (c->streaming && c->stream_err == -ECONNRESET && c->stream_fd >= 0)
			shutdown(c->stream_fd, SHUT_RDWR);
	}
	pthread_mutex_unlock(&c->lock);
}

void api_call_error(struct api_call *c, int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t len = 0;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (status == 503) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", c->srv->opts.retry_after_s);
		api_call_header(c, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	char *body = api_error_body(status, msg, &len);
	api_call_respond(c, status, "application/json", body, body ? len : 0);
}

int api_call_header(struct api_call *c, const char *name, const char *value)
{
	if (c->n_hdr >= API_MAX_HEADERS)
		return -ENOSPC;
	if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
		return -EINVAL;
	char *n = strdup(name), *v = strdup(value);
	if (!n || !v) {
		free(n);
		free(v);
		return -ENOMEM;
	}
	c->hdr[c->n_hdr][0] = n;
	c->hdr[c->n_hdr][1] = v;
	c->n_hdr++;
	return 0;
}

/* Under c->lock: wait until the binary part holds `bytes` (to_end: until the
 * upload ended), or it failed. */
static void stream_wait(struct api_call *c, size_t bytes, int to_end)
{
	while ((to_end || c->stream_len - c->header_len < bytes) && !c->stream_err && !c->stream_done) {
		/* libmicrohttpd may notice a client that closed mid-body only at
		 * its idle timeout: look at the socket every 50 ms (a robot
		 * never half-closes a request it still sends) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != ETIMEDOUT || c->stream_fd < 0)
			continue;
		struct pollfd pf = { .fd = c->stream_fd, .events = POLLRDHUP };
		int unread = 0;
		/* closed, and nothing left unread that could still complete it */
		if (poll(&pf, 1, 0) == 1 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR)) &&
		    (ioctl(c->stream_fd, FIONREAD, &unread) != 0 || unread == 0)) {
			c->stream_err = -ECONNRESET;
			snprintf(c->stream_msg, sizeof(c->stream_msg),
				 "the client closed the connection after %zu of the %zu bytes of the body",
				 c->stream_len, c->stream_total);
		}
	}
}

int api_call_body_wait(struct api_call *c, size_t bytes, size_t *have, char *err, size_t errlen)
{
	int rc;

	if (!c->streaming) {
		size_t n = c->body.len > c->header_len ? c->body.len - c->header_len : 0;
		if (have)
			*have = n;
		if (n >= bytes)
			return 0;
		snprintf(err, errlen, "the body holds %zu bytes after its header, not %zu", n, bytes);
		return -EPIPE;
	}
	pthread_mutex_lock(&c->lock);
	stream_wait(c, bytes, 0);
	if (have)
		*have = c->stream_len - c->header_len;
	rc = c->stream_err;
	if (!rc && c->stream_len - c->header_len < bytes) {
		rc = -EPIPE;
		snprintf(c->stream_msg, sizeof(c->stream_msg),
			 "%zu bytes asked for, the header announces %zu", bytes,
			 c->stream_total - c->header_len);
	}
	if (rc)
		snprintf(err, errlen, "%s", c->stream_msg);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int api_call_body_end(struct api_call *c, char *err, size_t errlen)
{
	int rc;

	if (!c->streaming)
		return 0;
	pthread_mutex_lock(&c->lock);
	stream_wait(c, 0, 1);
	if ((rc = c->stream_err))
		snprintf(err, errlen, "%s", c->stream_msg);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

uint64_t api_call_body_arrival(struct api_call *c, size_t bytes)
{
	uint64_t t = 0;

	if (!c->streaming)
		return 0;
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->n_arr && !t; i++)
		if (c->arr_len[i] >= c->header_len + bytes)
			t = c->arr_ns[i];
	pthread_mutex_unlock(&c->lock);
	return t;
}

const char *api_call_query(const struct api_call *c, const char *key)
{
	for (int i = 0; i < c->n_query; i++)
		if (!strcmp(c->query[i][0], key))
			return c->query[i][1];
	return NULL;
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind,
				     const char *key, const char *value)
{
	struct api_call *c = cls;

	if (c->n_query >= API_MAX_QUERY)
		return MHD_NO;
	c->query[c->n_query][0] = strdup(key);
	c->query[c->n_query][1] = strdup(value ? value : "");
	if (!c->query[c->n_query][0] || !c->query[c->n_query][1]) {
		free(c->query[c->n_query][0]);
		free(c->query[c->n_query][1]);
		return MHD_NO;
	}
	c->n_query++;
	return MHD_YES;
}

/* ---- routing --------------------------------------------------------- */

static int split_path(const char *url, char parts[6][128])
{
	int n = 0;
	const char *p = url;

	while (*p == '/')
		p++;
	while (*p) {
		if (n == 6)
			return -1;
		const char *e = strchr(p, '/');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == 0 || l >= 128)
			return -1;
		memcpy(parts[n], p, l);
		parts[n][l] = 0;
		n++;
		p += l;
		while (*p == '/')
			p++;
	}
	return n;
}

/* Sets c->route and c->model_name; returns the method required or NULL
 * for an unknown path. */
static const char *route(struct api_call *c, const char *url, const char **version)
{
	char p[6][128];
	int n = split_path(url, p);

	*version = NULL;
	if (n == 2 && !strcmp(p[0], "v1") && !strcmp(p[1], "infer"))
		return c->route = ROUTE_V1_INFER, "POST";
	if (n == 2 && !strcmp(p[0], "v1") && !strcmp(p[1], "status"))
		return c->route = ROUTE_V1_STATUS, "GET";
	if (n == 1 && !strcmp(p[0], "metrics"))
		return c->route = ROUTE_METRICS, "GET";
	if (n == 1 && !strcmp(p[0], "v2"))
		return c->route = ROUTE_V2_SERVER, "GET";
	if (n == 3 && !strcmp(p[0], "v2") && !strcmp(p[1], "health")) {
		if (!strcmp(p[2], "live"))
			return c->route = ROUTE_V2_LIVE, "GET";
		if (!strcmp(p[2], "ready"))
			return c->route = ROUTE_V2_READY, "GET";
		return NULL;
	}
	if (n < 3 || strcmp(p[0], "v2") || strcmp(p[1], "models"))
		return NULL;
	c->model_name = strdup(p[2]);
	int i = 3;
	if (n >= 5 && !strcmp(p[3], "versions")) {
		static __thread char v[128];
		memcpy(v, p[4], sizeof(v));
		*version = v;
		i = 5;
	}
	if (n == i)
		return c->route = ROUTE_V2_MODEL, "GET";
	if (n == i + 1 && !strcmp(p[i], "ready"))
		return c->route = ROUTE_V2_MODEL_READY, "GET";
	if (n == i + 1 && !strcmp(p[i], "infer"))
		return c->route = ROUTE_V2_INFER, "POST";
	return NULL;
}

static void early(struct api_call *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void early(struct api_call *c, int status, const char *fmt, ...)
{
	va_list ap;

	if (c->early_status)
		return;
	c->early_status = status;
	va_start(ap, fmt);
	vsnprintf(c->early_msg, sizeof(c->early_msg), fmt, ap);
	va_end(ap);
}

static int tls_client_verified(struct api_call *c)
{
#ifdef SPLITD_API_HAVE_GNUTLS
	const union MHD_ConnectionInfo *ci;
	unsigned status = 0;

	if (!c->srv->ca)
		return 0;
	ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return 0;
	gnutls_session_t s = (gnutls_session_t)ci->tls_session;
	if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509)
		return 0;
	if (gnutls_certificate_verify_peers2(s, &status) < 0 || status)
		return 0;
	unsigned n = 0;
	return gnutls_certificate_get_peers(s, &n) != NULL && n > 0;
#else
	(void)c;
	return 0;
#endif
}

static int authorized(struct api_call *c)
{
	struct api_server *s = c->srv;
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!s->opts.token_on_loopback && ci && api_addr_is_local(ci->client_addr))
		return 1;
	if (tls_client_verified(c))
		return 1;
	const char *a = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	if (!a || strncasecmp(a, "Bearer ", 7))
		return 0;
	a += 7;
	while (*a == ' ')
		a++;
	pthread_mutex_lock(&s->token_lock);
	size_t la = strlen(a), lt = s->token ? strlen(s->token) : 0;
	unsigned char diff = la != lt;
	for (size_t i = 0; i < la && lt; i++)
		diff |= (unsigned char)(a[i] ^ s->token[i % lt]);
	pthread_mutex_unlock(&s->token_lock);
	return diff == 0 && lt > 0;
}

int api_server_set_token(struct api_server *s, const char *token)
{
	char *t = NULL, *old;

	if (!s)
		return -EINVAL;
	if (token && token[0] && !(t = strdup(token)))
		return -ENOMEM;
	pthread_mutex_lock(&s->token_lock);
	old = s->token;
	s->token = t;
	pthread_mutex_unlock(&s->token_lock);
	free(old);
	return 0;
}

static int parse_size(const char *s, size_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v > SIZE_MAX)
		return -EINVAL;
	*out = (size_t)v;
	return 0;
}

/* First call of a request: everything we can decide from the headers. */
static void on_headers(struct api_call *c, const char *url, const char *method)
{
	struct api_server *s = c->srv;
	const char *version, *want;

	want = route(c, url, &version);
	if (!want) {
		early(c, 404, "no such endpoint: %s", url);
		return;
	}
	if (c->route >= ROUTE_V2_MODEL && !c->model_name) {
		early(c, 500, "out of memory");
		return;
	}
	if (strcmp(method, want)) {
		api_call_header(c, MHD_HTTP_HEADER_ALLOW, want);
		early(c, 405, "%s needs %s, not %s", url, want, method);
		return;
	}
	if (!authorized(c)) {
		atomic_fetch_add(&s->rejected_auth, 1);
		api_call_header(c, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"splitd\"");
		early(c, 401, "a bearer token (or client certificate) is required");
		return;
	}
	if ((c->cx && c->cx->many_args) ||
	    MHD_get_connection_values(c->conn, MHD_GET_ARGUMENT_KIND, collect_query, c) < 0 ||
	    c->n_query >= API_MAX_QUERY) {
		early(c, 400, "too many query arguments (at most %d)", API_MAX_QUERY - 1);
		return;
	}
	const char *ct = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_TYPE);
	if (ct) {
		size_t l = strcspn(ct, "; \t");
		if (l >= sizeof(c->content_type))
			l = sizeof(c->content_type) - 1;
		memcpy(c->content_type, ct, l);
		c->content_type[l] = 0;
	}
	const char *acc = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_ACCEPT);
	c->accept_openmetrics = acc && strstr(acc, "application/openmetrics-text");

	if (c->route != ROUTE_V1_INFER && c->route != ROUTE_V2_INFER)
		goto model;
	const char *cl = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	size_t n;
	if (cl && !parse_size(cl, &n) && n > s->opts.max_body_bytes) {
		atomic_fetch_add(&s->rejected_size, 1);
		early(c, 413, "body of %zu bytes exceeds the limit of %zu", n,
		      s->opts.max_body_bytes);
		return;
	}
	if (c->route == ROUTE_V1_INFER) {
		if (!strcasecmp(c->content_type, "image/jpeg"))
			c->v1.kind = API_BODY_JPEG;
		else if (!strcasecmp(c->content_type, "image/png"))
			c->v1.kind = API_BODY_PNG;
		else if (!strcasecmp(c->content_type, "application/x-npy"))
			c->v1.kind = API_BODY_NPY;
		else {
			early(c, 415, "content type '%s' is not image/jpeg, image/png or application/x-npy",
			      c->content_type);
			return;
		}
		const char *m = api_call_query(c, "model");
		if (m && !(c->model_name = strdup(m))) {
			early(c, 500, "out of memory");
			return;
		}
	} else {
		if (c->content_type[0] && strcasecmp(c->content_type, "application/json") &&
		    strcasecmp(c->content_type, "application/octet-stream")) {
			early(c, 415, "content type '%s' is not application/json or application/octet-stream",
			      c->content_type);
			return;
		}
		const char *hl = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
							     "Inference-Header-Content-Length");
		if (hl && parse_size(hl, &c->header_len)) {
			early(c, 400, "Inference-Header-Content-Length is not a number");
			return;
		}
	}
	if (atomic_load(&s->stopping)) {
		early(c, 503, "the server is stopping");
		return;
	}
	/* the in-flight slot is taken once the body is in (take_slot): a
	 * client still sending, however slowly, holds none */
model:
	if (c->route == ROUTE_V1_INFER || c->route >= ROUTE_V2_MODEL) {
		if (s->h.model(s->h.ctx, c->model_name, &c->model) || !c->model) {
			if (c->model_name)
				early(c, 404, "unknown model '%s'", c->model_name);
			else
				early(c, 404, "no default model: name one with ?model=");
			return;
		}
		const char *mv = c->model->version ? c->model->version : "1";
		if (version && strcmp(version, mv))
			early(c, 404, "model '%s' has no version '%s'", c->model->name, version);
	}
}

/* An infer call whose body is in (or streams to a handler) takes one of the
 * max_inflight slots; 0, or -EBUSY with the 503 decided. */
static int take_slot(struct api_call *c)
{
	struct api_server *s = c->srv;

	if (c->slot || (c->route != ROUTE_V1_INFER && c->route != ROUTE_V2_INFER))
		return 0;
	if (atomic_load(&s->stopping)) {
		early(c, 503, "the server is stopping");
		return -EBUSY;
	}
	if (atomic_fetch_add(&s->inflight, 1) >= s->opts.max_inflight) {
		atomic_fetch_sub(&s->inflight, 1);
		atomic_fetch_add(&s->rejected_busy, 1);
		early(c, 503, "busy: %d requests in flight", s->opts.max_inflight);
		return -EBUSY;
	}
	c->slot = 1;
	return 0;
}

/* The body is complete: run the route. May answer now or later. */
static void dispatch(struct api_call *c)
{
	struct api_server *s = c->srv;
	char *body;
	size_t len;

	switch (c->route) {
	case ROUTE_V1_INFER:
		api_route_v1_infer(c);
		break;
	case ROUTE_V2_INFER:
		api_route_v2_infer(c);
		break;
	case ROUTE_V1_STATUS:
		if (!s->h.status)
			api_call_error(c, 404, "no status here");
		else
			s->h.status(s->h.ctx, c);
		break;
	case ROUTE_METRICS:
		api_route_metrics(c);
		break;
	case ROUTE_V2_LIVE:
		body = strdup("{\"live\":true}\n");
		api_call_respond(c, 200, "application/json", body, body ? strlen(body) : 0);
		break;
	case ROUTE_V2_READY:
		if (s->h.ready && s->h.ready(s->h.ctx, NULL) != 1)
			api_call_error(c, 503, "not ready");
		else {
			body = strdup("{\"ready\":true}\n");
			api_call_respond(c, 200, "application/json", body, body ? strlen(body) : 0);
		}
		break;
	case ROUTE_V2_SERVER:
		api_route_v2_server(c);
		break;
	case ROUTE_V2_MODEL:
	case ROUTE_V2_MODEL_READY:
		api_route_v2_model(c, c->route == ROUTE_V2_MODEL_READY);
		break;
	default:
		body = api_error_body(500, "no route", &len);
		api_call_respond(c, 500, "application/json", body, len);
	}
}

/* A v2 request's JSON header is in: offer the call to stream_v2; when it
 * takes it, the rest of the body lands in an aligned buffer of the size the
 * header announces and the handler runs now. Any failure here leaves the
 * call to the usual way (whose parse of the whole body reports it). */
static void try_stream(struct api_call *c)
{
	struct api_server *s = c->srv;
	struct api_v2_message *m = NULL;
	size_t bin = 0, max = s->opts.max_body_bytes - c->header_len;
	char err[256];

	c->stream_tried = 1;
	if (c->header_len > s->opts.max_body_bytes ||
	    api_v2_parse_header(API_V2_REQUEST, c->body.p, c->header_len, NULL, max, &m, &bin, err,
				sizeof(err)))
		return;
	struct api_v2_request rq = { .model = c->model, .msg = m, .received_ns = api_now_ns(),
				     .streamed = 1 };
	int want = s->h.stream_v2(s->h.ctx, &rq);
	api_v2_message_free(m);
	m = NULL;
	size_t total = c->header_len + bin, pad = (64 - c->header_len % 64) % 64;
	if (want != 1 || c->body.len > total)
		return;
	void *mem = NULL;
	if (posix_memalign(&mem, 64, pad + total + 1))
		return;
	/* the handler runs now: a slot now (none free: the usual way, whose
	 * take_slot answers 503 once the body is in) */
	int busy = atomic_load(&s->stopping);
	if (!busy && atomic_fetch_add(&s->inflight, 1) >= s->opts.max_inflight) {
		atomic_fetch_sub(&s->inflight, 1);
		busy = 1;
	}
	if (busy) {
		free(mem);
		return;
	}
	c->slot = 1;
	char *buf = (char *)mem + pad;
	memcpy(buf, c->body.p, c->body.len);
	if (api_v2_parse_header(API_V2_REQUEST, buf, c->header_len, buf + c->header_len, bin, &m, &bin,
				err, sizeof(err))) {
		free(mem);
		atomic_fetch_sub(&s->inflight, 1);
		c->slot = 0;
		return;
	}
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	c->stream_fd = ci ? ci->connect_fd : -1;
	c->stream_mem = mem;
	c->stream_buf = buf;
	c->stream_len = c->body.len;
	c->stream_total = total;
	c->arr_len[0] = c->body.len;	/* what came with the header */
	c->arr_ns[0] = rq.received_ns;
	c->n_arr = 1;
	free(c->body.p);
	c->body = (struct buf){ 0 };
	c->msg = m;
	c->v2.model = c->model;
	c->v2.msg = m;
	c->v2.received_ns = rq.received_ns;
	c->v2.streamed = 1;
	c->streaming = 1;
	c->dispatched = 1;
	atomic_fetch_add(&s->pending, 1);
	s->h.infer_v2(s->h.ctx, c, &c->v2);
}

/* More of a streamed body. */
static void stream_put(struct api_call *c, const char *data, size_t n)
{
	pthread_mutex_lock(&c->lock);
	size_t room = c->stream_total - c->stream_len;
	if (n > room && !c->stream_err) {
		c->stream_err = -EMSGSIZE;
		snprintf(c->stream_msg, sizeof(c->stream_msg),
			 "the body runs past the %zu bytes its header announces", c->stream_total);
	}
	memcpy(c->stream_buf + c->stream_len, data, n < room ? n : room);
	c->stream_len += n < room ? n : room;
	if (c->n_arr < API_STREAM_MARKS) {
		c->arr_len[c->n_arr] = c->stream_len;
		c->arr_ns[c->n_arr++] = api_now_ns();
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* The upload of a streamed body ended (or a resumed call wants its answer). */
static enum MHD_Result stream_end(struct api_call *c)
{
	enum MHD_Result ret = MHD_YES;

	pthread_mutex_lock(&c->lock);
	if (!c->stream_done) {
		c->stream_done = 1;
		if (c->stream_len < c->stream_total && !c->stream_err) {
			c->stream_err = -EPIPE;
			snprintf(c->stream_msg, sizeof(c->stream_msg),
				 "the body ended after %zu of the %zu bytes its header announces",
				 c->stream_len, c->stream_total);
		}
		pthread_cond_broadcast(&c->cond);
	}
	if (c->state == CALL_ANSWERED) {
		ret = send_answer(c);
	} else if (c->state == CALL_RECEIVING) {
		c->state = CALL_SUSPENDED;
		MHD_suspend_connection(c->conn);
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

/* What the headers say of a body: 0 none, 1 one of *len bytes, 2 one of
 * unknown length (chunked). libmicrohttpd refuses a Content-Length it cannot
 * parse before calling us. */
static int body_announced(struct api_call *c, size_t *len)
{
	const char *v;

	*len = 0;
	if (MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return 2;
	v = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!v)
		return 0;
	if (parse_size(v, len))
		*len = SIZE_MAX;
	return *len > 0;
}

/* The client waits for "100 Continue" before it sends its body. */
static int expects_continue(struct api_call *c, const char *version)
{
	const char *e = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

	return e && !strcasecmp(e, "100-continue") && version && !strcmp(version, MHD_HTTP_VERSION_1_1);
}

/* Most of a refused body we read to drop it: twice the body limit. */
static size_t discard_max(const struct api_server *s)
{
	return s->opts.max_body_bytes > SIZE_MAX / 2 ? SIZE_MAX : 2 * s->opts.max_body_bytes;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn,
				 const char *url, const char *method,
				 const char *version, const char *upload_data,
				 size_t *upload_size, void **con_cls)
{
	struct api_server *s = cls;
	struct api_call *c = *con_cls;
	enum MHD_Result ret;

	if (!c) {
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		c->srv = s;
		atomic_fetch_add(&s->open_calls, 1);
		c->conn = conn;
		c->cx = conn_of(conn);
		c->start_ns = api_now_ns();
		pthread_mutex_init(&c->lock, NULL);
		pthread_cond_init(&c->cond, NULL);
		*con_cls = c;
		on_headers(c, url, method);
		size_t len;
		int body = body_announced(c, &len);
		if (c->early_status && body &&
		    !expects_continue(c, version) && (body == 2 || len <= discard_max(s))) {
			/* Refused with a body on its way: answering now would
			 * close the connection under a client still sending,
			 * whose kernel then resets it and loses the answer. So
			 * the body is read and dropped — up to discard_max
			 * bytes and within the body's deadline (reaper) — and
			 * the answer goes once it is in. */
			c->discarding = 1;
			conn_phase(c->cx, CONN_BODY);
			return MHD_YES;
		}
		if (c->early_status) {
			/* No body; or the client waits for "100 Continue"
			 * (libmicrohttpd then sends this answer instead and the
			 * body never comes); or one larger than we read to drop
			 * (the client may see a reset if it keeps sending). */
			conn_phase(c->cx, CONN_HANDLING);
			goto answer_early;
		}
		conn_phase(c->cx, body ? CONN_BODY : CONN_HANDLING);
		return MHD_YES;
	}
	if (*upload_size) {
		c->received += *upload_size;
		if (c->cx)
			atomic_store(&c->cx->body_bytes, c->received);
	}
	if (c->streaming) {
		if (*upload_size) {
			stream_put(c, upload_data, *upload_size);
			*upload_size = 0;
			return MHD_YES;
		}
		conn_phase(c->cx, CONN_HANDLING);
		return stream_end(c);
	}
	if (*upload_size) {
		if (!c->early_status) {
			if (c->body.len + *upload_size > s->opts.max_body_bytes) {
				atomic_fetch_add(&s->rejected_size, 1);
				early(c, 413, "body exceeds the limit of %zu bytes",
				      s->opts.max_body_bytes);
				c->discarding = 1;
			} else {
				buf_put(&c->body, upload_data, *upload_size);
				if (c->body.oom)
					early(c, 500, "out of memory");
			}
		}
		*upload_size = 0;
		/* no answer can go mid-body: past the bound, close unanswered */
		if (c->discarding && c->received > discard_max(s))
			return MHD_NO;
		if (!c->early_status && !c->stream_tried && c->route == ROUTE_V2_INFER &&
		    s->h.stream_v2 && s->h.infer_v2 && c->header_len && c->body.len >= c->header_len)
			try_stream(c);	/* also when the body came whole: one way for banded requests */
		return MHD_YES;
	}
	pthread_mutex_lock(&c->lock);
	if (c->state == CALL_ANSWERED) {
		ret = send_answer(c);
		pthread_mutex_unlock(&c->lock);
		return ret;
	}
	pthread_mutex_unlock(&c->lock);
	if (c->state != CALL_RECEIVING)
		return MHD_YES;	/* spurious wake-up */
	conn_phase(c->cx, CONN_HANDLING);
	if (c->early_status || take_slot(c))
		goto answer_early;

	c->state = CALL_HANDLING;
	c->dispatched = 1;
	atomic_fetch_add(&s->pending, 1);
	dispatch(c);
	pthread_mutex_lock(&c->lock);
	if (c->state == CALL_ANSWERED) {
		ret = send_answer(c);
	} else {
		c->state = CALL_SUSPENDED;
		MHD_suspend_connection(conn);
		ret = MHD_YES;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;

answer_early:;
	size_t len = 0;
	char *body = api_error_body(c->early_status, c->early_msg, &len);
	if (c->early_status == 503) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%d", s->opts.retry_after_s);
		api_call_header(c, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	store_answer(c, c->early_status, "application/json", body, body ? len : 0);
	return send_answer(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct api_call *c = *con_cls;

	/* the connection waits for its next request: a header deadline again
	 * (also when libmicrohttpd answered it without us); kept alive and
	 * idle longer than it, it is closed */
	struct api_conn *x = c ? c->cx : conn_of(conn);
	conn_phase(x, CONN_HEADER);
	if (x)
		atomic_store(&x->idle, 1);
	if (c)
		c->cx = NULL;
	if (c && c->streaming) {
		/* a handler still reading the body: wake it; its answer frees */
		pthread_mutex_lock(&c->lock);
		if (c->state != CALL_ANSWERED && c->state != CALL_SENT) {
			c->gone = 1;
			if (!c->stream_err) {
				c->stream_err = -ECONNRESET;
				snprintf(c->stream_msg, sizeof(c->stream_msg),
					 "the client went away after %zu of the %zu bytes of the body",
					 c->stream_len, c->stream_total);
			}
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			*con_cls = NULL;
			return;
		}
		pthread_mutex_unlock(&c->lock);
	}
	call_free(*con_cls);
	*con_cls = NULL;
}

/* ---- listeners ------------------------------------------------------- */

static int parse_listen(const char *spec, struct sockaddr_storage *ss,
			int *fd, char **unix_path, char *err, size_t errlen)
{
	memset(ss, 0, sizeof(*ss));
	*fd = -1;
	*unix_path = NULL;
	if (!strncmp(spec, "fd:", 3)) {
		char *end;
		long v = strtol(spec + 3, &end, 10);
		if (end == spec + 3 || *end || v < 0 || v > INT_MAX)
			goto bad;
		*fd = (int)v;
		return 0;
	}
	if (!strncmp(spec, "unix:", 5)) {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		size_t l = strlen(spec + 5);
		if (l == 0 || l >= sizeof(un->sun_path))
			goto bad;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, spec + 5, l + 1);
		*unix_path = strdup(spec + 5);
		return *unix_path ? 0 : -ENOMEM;
	}
	char host[64];
	const char *colon;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':' || (size_t)(rb - spec - 1) >= sizeof(host))
			goto bad;
		memcpy(host, spec + 1, (size_t)(rb - spec - 1));
		host[rb - spec - 1] = 0;
		colon = rb + 1;
	} else {
		colon = strrchr(spec, ':');
		if (!colon || (size_t)(colon - spec) >= sizeof(host))
			goto bad;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = 0;
	}
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end || port < 0 || port > 65535)
		goto bad;
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		return 0;
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		return 0;
	}
bad:
	snprintf(err, errlen, "listen address '%s' is not HOST:PORT, [V6]:PORT, unix:PATH or fd:N", spec);
	return -EINVAL;
}

static int bind_unix(const struct sockaddr_storage *ss, char *err, size_t errlen)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		goto fail;
	unlink(un->sun_path);	/* a stale socket from an earlier run */
	if (bind(fd, (const struct sockaddr *)un, sizeof(*un)) || listen(fd, 128))
		goto fail;
	return fd;
fail:;
	int e = errno;
	snprintf(err, errlen, "unix socket %s: %s", un->sun_path, strerror(e));
	if (fd >= 0)
		close(fd);
	return -e;
}

int api_tls_supported(void)
{
	return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

static char *dup_opt(const char *s, int *fail)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*fail = 1;
	return d;
}

int api_server_new(const struct api_options *o, const struct api_handlers *h,
		   struct api_server **out, char *err, size_t errlen)
{
	struct api_server *s;
	int rc = 0, fail = 0;

	*out = NULL;
	if (!o || !h || !h->model || o->n_listen < 1 || o->n_listen > API_MAX_LISTEN) {
		snprintf(err, errlen, "the API needs 1 to %d listen addresses and a model handler",
			 API_MAX_LISTEN);
		return -EINVAL;
	}
	if ((o->tls_cert != NULL) != (o->tls_key != NULL) || (o->tls_client_ca && !o->tls_cert)) {
		snprintf(err, errlen, "TLS needs both a certificate and a key (and they for a client CA)");
		return -EINVAL;
	}
	if (o->tls_cert && !api_tls_supported()) {
		snprintf(err, errlen, "this libmicrohttpd was built without TLS");
		return -ENOTSUP;
	}
#ifndef SPLITD_API_HAVE_GNUTLS
	if (o->tls_client_ca) {
		snprintf(err, errlen, "client certificates need GnuTLS, which this build lacks");
		return -ENOTSUP;
	}
#endif
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->conn_lock, NULL);
	pthread_mutex_init(&s->token_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->conn_cond, &ca);
	pthread_condattr_destroy(&ca);
	s->opts = *o;
	s->h = *h;
	if (!s->opts.threads) s->opts.threads = 2;
	if (!s->opts.max_connections) s->opts.max_connections = 64;
	if (!s->opts.timeout_s) s->opts.timeout_s = 30;
	if (!s->opts.max_body_bytes) s->opts.max_body_bytes = DEFAULT_BODY_BYTES;
	if (!s->opts.max_inflight) s->opts.max_inflight = 16;
	if (!s->opts.retry_after_s) s->opts.retry_after_s = 1;
	if (s->opts.header_timeout_ms <= 0) s->opts.header_timeout_ms = 10000;
	if (s->opts.body_timeout_ms <= 0) s->opts.body_timeout_ms = 10000;
	if (s->opts.body_max_ms <= 0) s->opts.body_max_ms = 120000;
	if (s->opts.body_min_rate <= 0) s->opts.body_min_rate = 64 << 10;
	s->header_ns = (uint64_t)s->opts.header_timeout_ms * MS_NS;
	s->body_ns = (uint64_t)s->opts.body_timeout_ms * MS_NS;
	s->body_max_ns = (uint64_t)s->opts.body_max_ms * MS_NS;
	if (pthread_create(&s->reaper, NULL, reaper, s)) {
		rc = -EAGAIN;
		snprintf(err, errlen, "cannot start the API's deadline thread");
		goto out;
	}
	s->reaper_started = 1;
	s->token = dup_opt(o->token, &fail);
	s->cert = dup_opt(o->tls_cert, &fail);
	s->key = dup_opt(o->tls_key, &fail);
	s->ca = dup_opt(o->tls_client_ca, &fail);
	s->version = dup_opt(o->server_version ? o->server_version : "0", &fail);
	s->opts.listen = NULL;
	if (fail) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < o->n_listen; i++) {
		struct sockaddr_storage ss;
		int fd;
		char *up;
		/* poll(), not epoll: libmicrohttpd 0.9.75's MHD_quiesce_daemon
		 * races its epoll workers for the listen FD's removal, and the
		 * loser's epoll_ctl ENOENT is an MHD_PANIC (an abort of the
		 * daemon as it stops; seen once in CI). With poll the workers
		 * are woken through the ITC and no one removes anything. */
		unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
				 MHD_ALLOW_SUSPEND_RESUME;

		rc = parse_listen(o->listen[i], &ss, &fd, &up, err, errlen);
		if (rc)
			goto out;
		s->unix_path[i] = up;
		if (up && (fd = bind_unix(&ss, err, errlen)) < 0) {
			rc = fd;
			goto out;
		}
		if (ss.ss_family == AF_INET6) {
			const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
			flags |= IN6_IS_ADDR_UNSPECIFIED(a) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
		}
		if (s->cert)
			flags |= MHD_USE_TLS;
		struct MHD_OptionItem tls[5];
		int nt = 0;
		if (s->cert) {
			tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->cert};
			tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->key};
			/* TLS 1.3 only, as documented: GnuTLS's NORMAL still offers 1.2 */
			tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
							    "NORMAL:-VERS-ALL:+VERS-TLS1.3"};
			if (s->ca)
				tls[nt++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, s->ca};
		}
		tls[nt] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
		s->lst[i] = (struct api_listener){ .srv = s, .i = i };
		s->d[i] = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
			MHD_OPTION_NOTIFY_CONNECTION, on_connection, &s->lst[i],
			MHD_OPTION_URI_LOG_CALLBACK, on_uri, &s->lst[i],
			MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->opts.threads,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->opts.max_connections,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->opts.timeout_s,
			fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
			fd >= 0 ? (void *)(intptr_t)fd : (void *)&ss,
			MHD_OPTION_ARRAY, tls,
			MHD_OPTION_END);
		if (!s->d[i]) {
			snprintf(err, errlen, "cannot listen on %s (in use, no permission, or bad TLS material)",
				 o->listen[i]);
			if (up)
				close(fd);
			rc = -EADDRINUSE;
			goto out;
		}
		s->nd = i + 1;
		const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d[i], MHD_DAEMON_INFO_BIND_PORT);
		s->port[i] = di ? di->port : 0;
	}
out:
	if (rc) {
		api_server_free(s, 0);
		return rc;
	}
	*out = s;
	return 0;
}

int api_server_port(const struct api_server *s, int i)
{
	return i >= 0 && i < s->nd ? s->port[i] : 0;
}

int api_server_inflight(const struct api_server *s)
{
	/* what a stop drains: every begun call, bodies still arriving too (a
	 * call takes its admission slot only once its body is in) */
	return atomic_load(&((struct api_server *)s)->open_calls);
}

void api_server_quiesce(struct api_server *s)
{
	for (int i = 0; s && i < s->nd; i++) {
		if (s->d[i] && !s->quiesced[i]) {
			MHD_socket fd = MHD_quiesce_daemon(s->d[i]);
			if (fd != MHD_INVALID_SOCKET)
				close(fd);
			s->quiesced[i] = 1;
		}
	}
}

int api_server_free(struct api_server *s, int wait_ms)
{

	if (!s)
		return 0;
	atomic_store(&s->stopping, 1);
	api_server_quiesce(s);
	for (int t = 0; t < wait_ms && atomic_load(&s->pending) > 0; t += 5)
		usleep(5000);
	/* libmicrohttpd cannot stop with suspended connections: keep going */
	if (atomic_load(&s->pending) > 0)
		return -EBUSY;
	for (int i = 0; i < s->nd; i++) {
		if (s->d[i])
			MHD_stop_daemon(s->d[i]);
	}
	if (s->reaper_started) {
		pthread_mutex_lock(&s->conn_lock);
		s->reaper_stop = 1;
		pthread_cond_signal(&s->conn_cond);
		pthread_mutex_unlock(&s->conn_lock);
		pthread_join(s->reaper, NULL);
	}
	pthread_cond_destroy(&s->conn_cond);
	pthread_mutex_destroy(&s->conn_lock);
	for (int i = 0; i < API_MAX_LISTEN; i++) {
		if (s->unix_path[i]) {
			unlink(s->unix_path[i]);
			free(s->unix_path[i]);
		}
	}
	pthread_mutex_destroy(&s->token_lock);
	free(s->token);
	free(s->cert);
	free(s->key);
	free(s->ca);
	free(s->version);
	free(s);
	return 0;
}
