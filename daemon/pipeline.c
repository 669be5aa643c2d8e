/* The request pipeline of `splitd serve`: loads and profiles the models,
 * starts the power sampler, the peer link and the planner, and serves the
 * API (api/) on the shell's listening sockets. HTTP threads only enqueue
 * (pipe_api.c): workers run the inference (pipe_run.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "peer_proto.h"
#include "pipeline-impl.h"
#include "pipeline.h"

/* ---- the worker queue ----------------------------------------------- */

int pipe_enqueue(struct pipeline *p, const struct pipe_request *job)
{
	int r = 0;

	pthread_mutex_lock(&p->qlock);
	if (p->stopping || p->qlen == p->qcap) {
		r = -EAGAIN;
	} else {
		p->queue[(p->qhead + p->qlen) % p->qcap] = *job;
		p->qlen++;
		pthread_cond_signal(&p->qcond);
	}
	pthread_mutex_unlock(&p->qlock);
	return r;
}

struct worker_arg {
	struct pipeline *p;
	int index;
};

static void *worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	struct pipeline *p = wa->p;
	int index = wa->index;

	free(wa);
	for (;;) {
		struct pipe_request job;

		pthread_mutex_lock(&p->qlock);
		while (!p->stopping && p->qlen == 0)
			pthread_cond_wait(&p->qcond, &p->qlock);
		if (p->qlen == 0) {	/* stopping and drained */
			pthread_mutex_unlock(&p->qlock);
			break;
		}
		job = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		atomic_fetch_add(&p->busy, 1);
		pthread_mutex_unlock(&p->qlock);

		pipe_run(p, index, &job);
		atomic_fetch_sub(&p->busy, 1);
	}
	return NULL;
}

void pipe_plan_config_from(const struct config *cfg, struct plan_config *pc)
{
	plan_config_defaults(pc);
	pc->policy = cfg->policy == CONFIG_POLICY_ENERGY ? PLAN_POLICY_ENERGY :
		     cfg->policy == CONFIG_POLICY_ENERGY_SLO ? PLAN_POLICY_ENERGY_SLO :
		     PLAN_POLICY_LATENCY;
	pc->slo_ms = cfg->slo_ms;
	pc->threshold = cfg->replan_threshold;
	pc->hysteresis = cfg->hysteresis;
	pc->power_default_mw[PLAN_PHASE_COMPUTE] = cfg->p_compute_w * 1000.0;
	pc->power_default_mw[PLAN_PHASE_TX] = cfg->p_tx_w * 1000.0;
	pc->power_default_mw[PLAN_PHASE_WAIT] = cfg->p_wait_w * 1000.0;
	/* Banded cuts: a splitd peer runs its row-local layers as the bands
	 * arrive (peer_server.wavefront; one that does not shows as a lower
	 * learnt efficiency). A peer that may not be a splitd (allow_unverified:
	 * Triton with an exported tail) cannot read banded bodies. */
	pc->max_bands = cfg->peer_allow_unverified ? 1 : cfg->max_bands;
	pc->peer_streams = 1;
	pc->band_overhead_frac = cfg->band_overhead;
	if (!cfg->peer_encoding.is_auto)
		pc->enc_mask = 1u << pipe_enc_plan(&cfg->peer_encoding.enc);
}

/* ---- power ------------------------------------------------------------ */

static void setup_power(struct pipeline *p)
{
	const struct config *cfg = p->cfg;
	struct power_config pc;
	char err[256];
	int r;

	if (!cfg->power_enabled) {
		snprintf(p->power_reason, sizeof(p->power_reason), "power sampling is disabled in the configuration");
		return;
	}
	power_config_init(&pc);
	pc.sysfs_root = cfg->sysfs_root[0] ? cfg->sysfs_root : NULL;
	pc.rate_hz = (unsigned)cfg->power_rate_hz;
	pc.ring_samples = (size_t)cfg->power_rate_hz * (size_t)cfg->power_ring_seconds;
	pc.estimate_idle_mw = (int64_t)(cfg->estimate_idle_watts * 1000.0);
	pc.estimate_busy_core_mw = (int64_t)(cfg->estimate_core_watts * 1000.0);
	pc.input_rail = cfg->input_rail[0] ? cfg->input_rail : NULL;
	pc.keep_fds = true;
	r = power_sampler_new(&pc, &p->power, err, sizeof(err));
	if (r < 0) {
		snprintf(p->power_reason, sizeof(p->power_reason), "no power source: %s", err);
		log_warn("power: %s; energy is not reported", err);
		return;
	}
	if ((r = power_sampler_start(p->power)) < 0) {
		snprintf(p->power_reason, sizeof(p->power_reason), "power sampler failed to start: %s", strerror(-r));
		log_warn("power: sampler: %s", strerror(-r));
		power_sampler_free(p->power);
		p->power = NULL;
		return;
	}
	int n = power_rail_count(p->power);
	for (int i = 0; i < n; i++) {
		struct power_rail_info ri;
		if (power_rail_info(p->power, i, &ri) == 0)
			log_info("power: rail %s (%s, %s)%s", ri.name, ri.source, ri.method,
				 ri.is_input ? ", board input" : "");
	}
}

/* ---- the hooks ---------------------------------------------------------- */

void pipe_free(struct pipeline *p)
{
	if (!p)
		return;
	/* Workers answer what is queued, then the server stops. */
	pthread_mutex_lock(&p->qlock);
	p->stopping = true;
	pthread_cond_broadcast(&p->qcond);
	pthread_mutex_unlock(&p->qlock);
	for (int w = 0; w < p->n_started; w++)
		pthread_join(p->workers[w], NULL);
	/* every frame answered: the DDS participant goes now */
	pipe_ros2_free(p->ros2);
	if (p->api && api_server_free(p->api, 2000) < 0)
		log_warn("api: calls still unanswered at stop");
	for (int i = 0; i < p->n_models; i++)
		pipe_model_free(&p->models[i]);
	free(p->models);
	free(p->queue);
	power_sampler_free(p->power);
	linkest_free(p->link);
	wifi_free(p->wifi);
	config_free(p->cfg);
	pthread_mutex_destroy(&p->qlock);
	pthread_cond_destroy(&p->qcond);
	pthread_mutex_destroy(&p->cfg_lock);
	pthread_mutex_destroy(&p->link_lock);
	free(p);
}

static char *read_text_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && n < (1 << 20) &&
	    fseek(f, 0, SEEK_SET) == 0 && (s = malloc((size_t)n + 1))) {
		size_t got = fread(s, 1, (size_t)n, f);
		s[got] = 0;
	}
	fclose(f);
	return s;
}

static int start_api(struct pipeline *p, struct serve_listeners *ls)
{
	const struct config *cfg = p->cfg;
	struct api_handlers h = pipe_api_handlers;
	char names[SERVE_MAX_LISTEN][24];
	const char *listen[SERVE_MAX_LISTEN];
	char *token_file = NULL, *cert = NULL, *key = NULL, *ca = NULL;
	char err[256];
	int n = 0, r;

	h.ctx = p;
	for (int i = 0; i < ls->n; i++) {
		if (ls->fds[i] < 0)
			continue;
		snprintf(names[n], sizeof(names[n]), "fd:%d", ls->fds[i]);
		listen[n] = names[n];
		n++;
	}
	struct api_options o = {
		.listen = listen, .n_listen = n,
		.threads = 2,
		.max_connections = cfg->max_connections,
		.timeout_s = cfg->connection_timeout_s,
		.max_body_bytes = (size_t)cfg->max_body_bytes,
		.max_inflight = p->qcap + p->n_workers,
		.server_version = SPLITD_VERSION,
	};
	if ((r = pipe_token_read(cfg, &token_file, err, sizeof(err))) < 0)
		return log_err(r, "api: %s", err);
	o.token = token_file;
	if (cfg->role == CONFIG_ROLE_PEER && !cfg->server_plain) {
		cert = read_text_file(cfg->server_tls_cert);
		key = read_text_file(cfg->server_tls_key);
		ca = cfg->server_client_ca[0] ? read_text_file(cfg->server_client_ca) : NULL;
		if (!cert || !key || (cfg->server_client_ca[0] && !ca)) {
			r = log_err(-EACCES, "peer: cannot read the TLS certificate, key or client CA (%s, %s, %s)",
				    cfg->server_tls_cert, cfg->server_tls_key, cfg->server_client_ca);
			goto out;
		}
		o.tls_cert = cert;
		o.tls_key = key;
		o.tls_client_ca = ca;
		o.token_on_loopback = 1;	/* robots authenticate, wherever they are */
	}
	r = api_server_new(&o, &h, &p->api, err, sizeof(err));
	if (r < 0) {
		r = log_err(r, "api: %s", err);
		goto out;
	}
	for (int i = 0; i < ls->n; i++)
		ls->fds[i] = -1;	/* the API owns them now */
out:
	free(token_file);
	free(cert);
	free(key);
	free(ca);
	return r;
}

/* The compute backend: as configured, or what `auto` finds here. */
static void pick_backend(struct pipeline *p, const char *backend)
{
	const char *b = backend;

	if (!b && p->cfg->backend == CONFIG_BACKEND_AUTO) {
		b = engine_backend_auto(p->backend_why, sizeof(p->backend_why));
	} else {
		b = b ? b : p->cfg->backend == CONFIG_BACKEND_CUDA ? "cuda" : "cpu";
		snprintf(p->backend_why, sizeof(p->backend_why), "%s: configured", b);
	}
	snprintf(p->backend, sizeof(p->backend), "%s", b);
	log_notice("backend: %s", p->backend_why);
}

int pipe_new(const struct config *cfg, const char *backend, struct pipeline **out)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->qlock, NULL);
	pthread_cond_init(&p->qcond, NULL);
	pthread_mutex_init(&p->cfg_lock, NULL);
	pthread_mutex_init(&p->link_lock, NULL);
	p->start_ns = link_now_ns();
	if ((r = config_dup(cfg, &p->cfg)) < 0)
		goto fail;
	/* Two workers: one computes while the other waits for the peer. */
	p->n_workers = p->cfg->role == CONFIG_ROLE_ROBOT && p->cfg->peer_url[0] ? 2 : 1;
	p->qcap = p->cfg->queue_depth > 0 ? p->cfg->queue_depth : 16;
	if (!(p->queue = calloc((size_t)p->qcap, sizeof(*p->queue)))) {
		r = -ENOMEM;
		goto fail;
	}
	setup_power(p);
	pick_backend(p, backend);

	struct linkest_config lc;
	linkest_config_defaults(&lc);
	lc.idle_probe_ns = (uint64_t)p->cfg->probe_idle_ms * 1000000ull;
	if ((r = linkest_new(&lc, &p->link)) < 0)
		goto fail;
	if (p->cfg->wifi_interface[0] && wifi_new(p->cfg->wifi_interface, NULL, &p->wifi) < 0)
		p->wifi = NULL;

	if (p->cfg->n_models > 0 &&
	    !(p->models = calloc((size_t)p->cfg->n_models, sizeof(*p->models)))) {
		r = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < p->cfg->n_models; i++) {
		p->n_models = i + 1;
		if ((r = pipe_model_load(p, &p->models[i], &p->cfg->models[i])) < 0)
			goto fail;
	}
	if (p->n_models == 0)
		log_warn("no model configured: serving status and metrics only (set [model.NAME] path or --model)");
	*out = p;
	return 0;
fail:
	pipe_free(p);
	return r;
}

static int pipeline_start(const struct config *cfg, struct serve_listeners *ls, void **ctx)
{
	struct pipeline *p = NULL;
	char err[256];
	int r;

	if ((r = pipeline_reload_check(err, sizeof(err))) < 0)
		return log_err(r, "config: %s", err);
	if ((r = pipe_new(cfg, NULL, &p)) < 0)
		return r;
	for (int w = 0; w < p->n_workers; w++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (!wa) {
			r = -ENOMEM;
			goto fail;
		}
		*wa = (struct worker_arg){ p, w };
		if ((r = -pthread_create(&p->workers[w], NULL, worker_main, wa)) < 0) {
			free(wa);
			goto fail;
		}
		p->n_started = w + 1;
	}
	/* The peer's own per-node speed, measured once it answers. */
	for (int i = 0; i < p->n_models; i++)
		if (p->models[i].peer && peer_client_state(p->models[i].peer) == PEER_UP)
			pipe_calibrate(&p->models[i], 0);
	if ((r = start_api(p, ls)) < 0)
		goto fail;
	if ((r = pipe_ros2_start(p, &p->ros2)) < 0)
		goto fail;
	*ctx = p;
	return 0;
fail:
	pipe_free(p);
	return r;
}

static void pipeline_status(void *ctx, char *buf, size_t len)
{
	struct pipeline *p = ctx;
	size_t off = 0;

	off += (size_t)snprintf(buf, len, "%s", config_role_name(p->cfg->role));
	pthread_mutex_lock(&p->cfg_lock);
	if (off < len && p->backend_down[0])
		off += (size_t)snprintf(buf + off, len - off, ", backend %s out of service (unhealthy): on %s",
					p->backend_down, p->backend);
	else if (off < len)
		off += (size_t)snprintf(buf + off, len - off, ", backend %s", p->backend);
	pthread_mutex_unlock(&p->cfg_lock);
	if (p->n_models == 0 && off < len)
		off += (size_t)snprintf(buf + off, len - off, ", no model");
	for (int i = 0; i < p->n_models && off < len; i++) {
		struct pipe_model *m = &p->models[i];
		uint64_t served = 0;

		for (int k = 0; k < PIPE_PLACEMENTS; k++)
			served += atomic_load(&m->requests[k]);
		pthread_mutex_lock(&m->lock);
		if (m->peer)
			off += (size_t)snprintf(buf + off, len - off, "; %s: %s, peer %s, %llu served",
						m->name, m->plan_text,
						peer_state_name(peer_client_state(m->peer)),
						(unsigned long long)served);
		else
			off += (size_t)snprintf(buf + off, len - off, "; %s: %s, %llu served", m->name,
						p->cfg->role == CONFIG_ROLE_PEER ? "serving tails" : "all-local",
						(unsigned long long)served);
		pthread_mutex_unlock(&m->lock);
	}
	char ros[96];
	pipe_ros2_status(p->ros2, ros, sizeof(ros));
	if (ros[0] && off < len)
		off += (size_t)snprintf(buf + off, len - off, "; %s", ros);
	if (!p->power && off < len)
		snprintf(buf + off, len - off, "; no energy source");
}

static void pipeline_quiesce(void *ctx)
{
	struct pipeline *p = ctx;

	/* New connections are refused; requests already arriving finish. */
	atomic_store(&p->quiescing, true);
	api_server_quiesce(p->api);
}

static unsigned pipeline_inflight(void *ctx)
{
	struct pipeline *p = ctx;
	unsigned n;

	pthread_mutex_lock(&p->qlock);
	n = (unsigned)p->qlen;
	pthread_mutex_unlock(&p->qlock);
	n += atomic_load(&p->busy);
	/* accepted by the API and not answered yet, bodies still arriving too */
	unsigned api = p->api ? (unsigned)api_server_inflight(p->api) : 0;
	return api > n ? api : n;
}

static void pipeline_stop(void *ctx)
{
	pipe_free(ctx);
}

const struct serve_hooks serve_pipeline_hooks = {
	.name = "pipeline",
	.start = pipeline_start,
	.reload = pipeline_reload,
	.status = pipeline_status,
	.quiesce = pipeline_quiesce,
	.inflight = pipeline_inflight,
	.stop = pipeline_stop,
};
