/* A minimal HTTP stand-in served by `splitd serve` until the API (api/) and
 * the pipeline (daemon/pipeline.c) land: GET /v1/status answers what the
 * daemon knows; every other request gets a JSON error once its body is read
 * (so requests in flight are real work for the drain on stop).
 * One libmicrohttpd daemon per listening socket. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "config.h"
#include "log.h"
#include "notify.h"
#include "serve.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT_T;
#else
typedef enum MHD_Result MHD_RESULT_T;
#endif

struct min_server {
	struct MHD_Daemon *mhd[SERVE_MAX_LISTEN];
	char names[SERVE_MAX_LISTEN][128];
	int n;
	bool quiesced;
	_Atomic unsigned inflight;
	_Atomic unsigned long long requests;
	uint64_t start_ns;
	long long max_body_bytes;

	pthread_mutex_t lock; /* guards the fields below, changed by reload */
	char token[CONFIG_STR_MAX];
	int role;
	int n_models;
	char model_names[CONFIG_MAX_MODELS][64];
	char source[CONFIG_PATH_MAX];
	unsigned reloads;
};

struct request {
	size_t body_bytes;
	bool too_large;
};

static int read_token(const struct config *cfg, char *token, size_t len)
{
	if (!cfg->token_file[0]) {
		snprintf(token, len, "%s", cfg->token);
		return 0;
	}
	FILE *f = fopen(cfg->token_file, "re");
	if (!f)
		return log_err(-errno, "api.token_file %s: %s", cfg->token_file, strerror(errno));
	if (!fgets(token, (int)len, f))
		token[0] = 0;
	fclose(f);
	token[strcspn(token, "\r\n")] = 0;
	if (!token[0])
		return log_err(-EINVAL, "api.token_file %s: empty", cfg->token_file);
	return 0;
}

static void take_config(struct min_server *s, const struct config *cfg, const char *token)
{
	pthread_mutex_lock(&s->lock);
	snprintf(s->token, sizeof(s->token), "%s", token);
	s->role = cfg->role;
	s->n_models = cfg->n_models;
	for (int i = 0; i < cfg->n_models; i++)
		snprintf(s->model_names[i], sizeof(s->model_names[i]), "%s", cfg->models[i].name);
	snprintf(s->source, sizeof(s->source), "%s", cfg->source);
	pthread_mutex_unlock(&s->lock);
}

static MHD_RESULT_T reply_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!text)
		return MHD_NO;
	size_t n = strlen(text);
	struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(n, text, free);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_RESULT_T r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static MHD_RESULT_T reply_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return reply_json(c, status, json_pack("{s:{s:i,s:s}}", "error", "code", (int)status, "message", msg));
}

static json_t *status_json(struct min_server *s)
{
	json_t *models = json_array(), *listen = json_array();
	uint64_t up_ns = notify_now_ns() - s->start_ns;

	for (int i = 0; i < s->n; i++)
		json_array_append_new(listen, json_string(s->names[i]));
	pthread_mutex_lock(&s->lock);
	for (int i = 0; i < s->n_models; i++)
		json_array_append_new(models, json_pack("{s:s,s:b}", "name", s->model_names[i], "loaded", 0));
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:s,s:f,s:I,s:i,s:s}",
			      "version", SPLITD_VERSION, "role", config_role_name(s->role),
			      "state", s->n_models ? "model not loaded: engine not built yet" : "no model",
			      "server", "minimal", "models", models, "listen", listen,
			      "log_level", log_level_name(log_get_level()), "uptime_s", (double)up_ns / 1e9,
			      "requests", (json_int_t)atomic_load(&s->requests), "reloads", (int)s->reloads,
			      "config", s->source[0] ? s->source : "(built-in defaults)");
	pthread_mutex_unlock(&s->lock);
	return j;
}

static bool authorized(struct min_server *s, struct MHD_Connection *c)
{
	char token[CONFIG_STR_MAX];

	pthread_mutex_lock(&s->lock);
	memcpy(token, s->token, sizeof(token));
	pthread_mutex_unlock(&s->lock);
	if (!token[0])
		return true;
	const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!auth || strncmp(auth, "Bearer ", 7) != 0)
		return false;
	/* constant time over the token's length */
	const char *got = auth + 7;
	size_t n = strlen(token), m = strlen(got);
	unsigned diff = (unsigned)(n != m);
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned)(token[i] ^ (i < m ? got[i] : 0));
	return diff == 0;
}

static MHD_RESULT_T on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			       const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct min_server *s = cls;
	struct request *req = *con_cls;

	if (!req) {
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*con_cls = req;
		atomic_fetch_add(&s->inflight, 1);
		atomic_fetch_add(&s->requests, 1);
		return MHD_YES;
	}
	if (*upload_size) {
		req->body_bytes += *upload_size;
		if ((long long)req->body_bytes > s->max_body_bytes)
			req->too_large = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!authorized(s, c))
		return reply_error(c, MHD_HTTP_UNAUTHORIZED, "missing or wrong bearer token");
	if (req->too_large)
		return reply_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "request body larger than api.max_body_bytes");
	if (strcmp(url, "/v1/status") == 0) {
		if (strcmp(method, "GET") != 0)
			return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
		return reply_json(c, MHD_HTTP_OK, status_json(s));
	}
	if (strcmp(method, "POST") == 0)
		return reply_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no model loaded: the inference engine is not built yet");
	return reply_error(c, MHD_HTTP_NOT_FOUND, "no such endpoint (this build serves GET /v1/status)");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct min_server *s = cls;

	if (*con_cls) {
		free(*con_cls);
		*con_cls = NULL;
		atomic_fetch_sub(&s->inflight, 1);
	}
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	if (!log_enabled(LOG_LEVEL_WARNING))
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = 0;
	log_warn("http: %s", buf);
}

static void min_stop(void *ctx)
{
	struct min_server *s = ctx;

	if (!s)
		return;
	for (int i = 0; i < s->n; i++)
		if (s->mhd[i])
			MHD_stop_daemon(s->mhd[i]);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static int min_start(const struct config *cfg, struct serve_listeners *ls, void **ctx)
{
	struct min_server *s = calloc(1, sizeof(*s));
	char token[CONFIG_STR_MAX];
	int r;

	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	s->start_ns = notify_now_ns();
	s->max_body_bytes = cfg->max_body_bytes;
	r = read_token(cfg, token, sizeof(token));
	if (r < 0)
		goto fail;
	take_config(s, cfg, token);
	for (int i = 0; i < ls->n; i++) {
		s->mhd[i] = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_AUTO |
						     MHD_USE_ERROR_LOG,
					     0, NULL, NULL, on_request, s,
					     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
					     MHD_OPTION_LISTEN_SOCKET, ls->fds[i],
					     MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
					     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
					     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
					     MHD_OPTION_END);
		if (!s->mhd[i]) {
			r = log_err(-EIO, "http: cannot serve on %s", ls->names[i]);
			goto fail;
		}
		ls->fds[i] = -1; /* MHD owns it now */
		snprintf(s->names[i], sizeof(s->names[i]), "%s", ls->names[i]);
		s->n++;
	}
	*ctx = s;
	return 0;
fail:
	min_stop(s);
	return r;
}

static int min_reload(void *ctx, const struct config *cfg)
{
	struct min_server *s = ctx;
	char token[CONFIG_STR_MAX];
	int r = read_token(cfg, token, sizeof(token));

	if (r < 0)
		return r;
	take_config(s, cfg, token);
	pthread_mutex_lock(&s->lock);
	s->reloads++;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static void min_status(void *ctx, char *buf, size_t len)
{
	struct min_server *s = ctx;
	size_t k;

	pthread_mutex_lock(&s->lock);
	k = (size_t)snprintf(buf, len, "%s on ", config_role_name(s->role));
	for (int i = 0; i < s->n && k < len; i++)
		k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? " " : "", s->names[i]);
	if (k < len) {
		if (s->n_models)
			k += (size_t)snprintf(buf + k, len - k, "; model %s not loaded (engine not built yet)",
					      s->model_names[0]);
		else
			k += (size_t)snprintf(buf + k, len - k, "; no model");
	}
	if (k < len)
		snprintf(buf + k, len - k, "; %llu requests", (unsigned long long)atomic_load(&s->requests));
	pthread_mutex_unlock(&s->lock);
}

static void min_quiesce(void *ctx)
{
	struct min_server *s = ctx;

	if (s->quiesced)
		return;
	for (int i = 0; i < s->n; i++) {
		MHD_socket fd = MHD_quiesce_daemon(s->mhd[i]);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
	s->quiesced = true;
}

static unsigned min_inflight(void *ctx)
{
	struct min_server *s = ctx;

	return atomic_load(&s->inflight);
}

const struct serve_hooks serve_min_hooks = {
	.name = "minimal",
	.start = min_start,
	.reload = min_reload,
	.status = min_status,
	.quiesce = min_quiesce,
	.inflight = min_inflight,
	.stop = min_stop,
};
