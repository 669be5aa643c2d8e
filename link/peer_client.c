/* The robot's libcurl client for the offload link (see peer_client.h):
 * state, probe, infer and lifetime; one transfer is peer_xfer.c. */
#include "peer_client-impl.h"
#include "link-impl.h"
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <netinet/in.h>

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
	/* the prober may be asleep until an up peer's next idle probe
	 * (probe_interval_ms, minutes when so configured): wake it to probe
	 * at the end of this backoff instead */
	pthread_mutex_lock(&c->stop_lock);
	pthread_cond_signal(&c->stop_cond);
	pthread_mutex_unlock(&c->stop_lock);
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

/* A non-200 answer as a sentence (the peer's own error message if any). */
static int status_error(long status, const struct xfer *x, char *err, size_t errlen)
{
	struct peer_response pr;
	char msg[256] = "";

	if (x->len && peer_response_parse(x->body, x->len, 0, &pr, msg, sizeof(msg)) == 0)
		peer_response_fini(&pr);
	if (status == 401 || status == 403)
		return err_set(-EACCES, err, errlen,
			    "peer refused our credentials (HTTP %ld): check cert_file/key_file and the peer's CA%s%s",
			    status, msg[0] ? "; " : "", msg);
	return err_set(-EPROTO, err, errlen, "peer answered HTTP %ld%s%s", status, msg[0] ? ": " : "", msg);
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
	if ((r = peer_xfer_perform(c, "/v2/health/ready", NULL, c->request_ms, &x, &status, &t, err, errlen)) < 0)
		goto out;
	free(x.body);
	if (status != 200) {
		r = err_set(status == 401 || status == 403 ? -EACCES : -EIO, err, errlen,
			 "peer is not ready (GET /v2/health/ready: HTTP %ld)", status);
		goto out;
	}
	atomic_store(&c->last_probe_rtt_ns, t.ttfb_ns);
	snprintf(path, sizeof(path), "/v2/models/%s", c->model_esc);
	if ((r = peer_xfer_perform(c, path, NULL, c->request_ms, &x, &status, &t, err, errlen)) < 0)
		goto out;
	if (status != 200) {
		r = status_error(status, &x, err, errlen);
		if (status == 404) {
			r = err_set(-ENOENT, err, errlen, "peer does not serve model '%s' (HTTP 404)", c->model);
			down = 1;
		}
		free(x.body);
		goto out;
	}
	root = json_loadb((const char *)x.body, x.len, 0, &je);
	free(x.body);
	if (!json_is_object(root)) {
		r = err_set(-EBADMSG, err, errlen, "peer model metadata is not a JSON object");
		goto out;
	}
	p = json_object_get(root, "parameters");
	s = json_is_object(p) ? json_object_get(p, "splitd_model_sha256") : NULL;
	if (!s) {
		if (!c->allow_unverified) {
			atomic_fetch_add(&c->identity_mismatches, 1);
			down = 1;
			r = err_set(-EPERM, err, errlen,
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
		r = err_set(-EPERM, err, errlen,
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
		r = err_set(-EINVAL, err, errlen, "empty request");
		goto fallback;
	}
	if (!may_send(c)) {
		r = err_set(-EAGAIN, err, errlen, "peer is %s", peer_state_name(peer_client_state(c)));
		goto fallback;
	}
	if (timeout_ms <= 0 || timeout_ms > c->request_ms)
		timeout_ms = c->request_ms;
	snprintf(path, sizeof(path), "/v2/models/%s/infer", c->model_esc);
	atomic_fetch_add(&c->requests, 1);
	r = peer_xfer_perform(c, path, req, timeout_ms, &x, &status, &out->xfer, err, errlen);
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
		r = err_set(-EBADMSG, err, errlen, "peer answer lacks Inference-Header-Content-Length");
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
		return err_set(-EINVAL, err, errlen, "peer link over https needs %s", what);
	if (access(path, R_OK) < 0)
		return err_set(-errno, err, errlen, "peer link %s %s: %s", what, path, strerror(errno));
	return 0;
}

/* cfg->url: scheme://host:port only; https with its three files, or plain
 * http to a loopback address when cfg->plain allows it. *https: which. */
static int check_url(const struct peer_client_config *cfg, int *https, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *user = NULL;
	int r = 0;

	*https = 0;
	if (!u)
		return err_set(-ENOMEM, err, errlen, "out of memory");
	if (curl_url_set(u, CURLUPART_URL, cfg->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		r = err_set(-EINVAL, err, errlen, "peer url '%s' is not a URL", cfg->url);
		goto out;
	}
	curl_url_get(u, CURLUPART_PATH, &path, 0);
	curl_url_get(u, CURLUPART_QUERY, &query, 0);
	curl_url_get(u, CURLUPART_USER, &user, 0);
	*https = !strcmp(scheme, "https");
	if ((path && strcmp(path, "/")) || query || user)
		r = err_set(-EINVAL, err, errlen, "peer url '%s' must be scheme://host:port only", cfg->url);
	else if (*https) {
		if ((r = check_file("ca_file", cfg->ca_file, err, errlen)) == 0 &&
		    (r = check_file("cert_file", cfg->cert_file, err, errlen)) == 0)
			r = check_file("key_file", cfg->key_file, err, errlen);
	} else if (strcmp(scheme, "http"))
		r = err_set(-EINVAL, err, errlen, "peer url scheme '%s' is neither https nor http", scheme);
	else if (!cfg->plain)
		r = err_set(-EPERM, err, errlen,
			     "peer url '%s' is plain http: TLS is required unless plain is set", cfg->url);
	else if (!peer_host_is_loopback(host))
		r = err_set(-EPERM, err, errlen,
			     "plain http to %s refused: plain is allowed only to loopback addresses (127.0.0.0/8, ::1, localhost)",
			     host);
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(path);
	curl_free(query);
	curl_free(user);
	curl_url_cleanup(u);
	return r;
}

int peer_client_new(const struct peer_client_config *cfg, struct peer_client **out,
		    char *err, size_t errlen)
{
	struct peer_client *c = NULL;
	char *esc = NULL;
	int r, npool, https = 0;

	*out = NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return err_set(-EIO, err, errlen, "libcurl failed to initialise");
	if (!cfg || !cfg->url || !cfg->model || !*cfg->model || !cfg->model_sha256)
		return err_set(-EINVAL, err, errlen, "peer link needs a url, a model name and its sha256");
	if ((r = check_url(cfg, &https, err, errlen)) < 0)
		return r;
	if (!(c = calloc(1, sizeof(*c))))
		return err_set(-ENOMEM, err, errlen, "out of memory");
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->stop_lock, NULL);
	if ((r = init_monotonic_cond(&c->freed)) < 0 || (r = init_monotonic_cond(&c->stop_cond)) < 0) {
		err_set(r, err, errlen, "cannot create a condition variable");
		free(c);
		return r;
	}
	c->https = https;
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
		r = err_set(-ENOMEM, err, errlen, "out of memory");
		goto out;
	}
	if (strlen(c->model_esc) > 400) {
		r = err_set(-EINVAL, err, errlen, "model name is too long");
		goto out;
	}
	while (strlen(c->base) && c->base[strlen(c->base) - 1] == '/')
		c->base[strlen(c->base) - 1] = '\0';
	for (int i = 0; i < npool; i++) {
		if (!(c->conns[i].h = curl_easy_init())) {
			r = err_set(-ENOMEM, err, errlen, "out of memory");
			goto out;
		}
		c->n_conns++;
		peer_xfer_setup_handle(c, c->conns[i].h);
	}
	atomic_store(&c->state, PEER_DOWN);
	atomic_store(&c->last_activity_ns, link_now_ns());
	*out = c;
	c = NULL;
	r = 0;
out:
	peer_client_free(c);
	curl_free(esc);
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

/* New deadlines and periods while requests run (configuration reload):
 * a request or probe that starts after this returns uses them; a peer
 * backing off waits at most the new backoff_max_ms from now, and the prober
 * recomputes its wait at once. Values <= 0 keep the current one. */
void peer_client_set_timing(struct peer_client *c, int64_t connect_timeout_ms, int64_t request_timeout_ms,
			    int64_t probe_interval_ms, int64_t backoff_max_ms)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	if (connect_timeout_ms > 0)
		atomic_store(&c->connect_ms, connect_timeout_ms);
	if (request_timeout_ms > 0)
		atomic_store(&c->request_ms, request_timeout_ms);
	if (probe_interval_ms > 0)
		atomic_store(&c->probe_ms, probe_interval_ms);
	if (backoff_max_ms > 0) {
		c->backoff_max_ms = backoff_max_ms < c->backoff_min_ms ? c->backoff_min_ms : backoff_max_ms;
		if (c->backoff_ms > c->backoff_max_ms) {
			int64_t latest = link_now_ns() + c->backoff_max_ms * 1000000;
			c->backoff_ms = c->backoff_max_ms;
			if (c->next_try_ns > latest)
				c->next_try_ns = latest;
			atomic_store(&c->backoff_snapshot_ms, c->backoff_ms);
		}
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_lock(&c->stop_lock);
	pthread_cond_signal(&c->stop_cond);
	pthread_mutex_unlock(&c->stop_lock);
}
