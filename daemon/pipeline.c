/* The request pipeline of `splitd serve`: loads and profiles the models,
 * starts the power sampler, the peer link and the planner, and serves the
 * API (api/) on the shell's listening sockets. HTTP threads only enqueue:
 * workers run the inference (pipeline_infer.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "peer_proto.h"
#include "pipeline-impl.h"
#include "pipeline.h"

uint64_t pipe_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the worker queue ----------------------------------------------- */

static int enqueue(struct pipeline *p, const struct pipe_job *job)
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
		struct pipe_job job;

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

		pipe_run_job(p, index, &job);
		atomic_fetch_sub(&p->busy, 1);
	}
	return NULL;
}

/* ---- API handlers --------------------------------------------------- */

static int h_model(void *ctx, const char *name, const struct api_model **out)
{
	struct pipeline *p = ctx;

	if (p->n_models == 0)
		return -ENOENT;
	if (!name) {
		if (p->n_models != 1)
			return -ENOENT;
		*out = &p->models[0].api;
		return 0;
	}
	for (int i = 0; i < p->n_models; i++)
		if (!strcmp(p->models[i].name, name)) {
			*out = &p->models[i].api;
			return 0;
		}
	return -ENOENT;
}

static int h_ready(void *ctx, const struct api_model *model)
{
	struct pipeline *p = ctx;

	return !atomic_load(&p->quiescing) && (model || p->n_models > 0 ||
					       p->cfg->role == CONFIG_ROLE_ROBOT);
}

static void submit(struct pipeline *p, struct api_call *call, struct pipe_job *job)
{
	job->call = call;
	job->enqueued_ns = pipe_now_ns();
	if (enqueue(p, job) < 0) {
		api_call_header(call, "Retry-After", "1");
		api_call_error(call, 503, "the inference queue is full (%d waiting)", p->qcap);
	}
}

static void h_infer_v1(void *ctx, struct api_call *call, const struct api_v1_request *req)
{
	struct pipeline *p = ctx;
	struct pipe_job job = { .kind = PIPE_JOB_V1, .v1 = req, .model = req->model->user };

	submit(p, call, &job);
}

static void h_infer_v2(void *ctx, struct api_call *call, const struct api_v2_request *req)
{
	struct pipeline *p = ctx;
	struct pipe_job job = { .kind = PIPE_JOB_V2, .v2 = req, .model = req->model->user };

	submit(p, call, &job);
}

int pipe_band_reach(struct pipe_model *m, int cut)
{
	if (cut < 0 || cut >= m->n_nodes || !m->band_reach)
		return cut;
	int v = atomic_load(&m->band_reach[cut]);
	if (!v) {
		v = engine_band_reach(m->eng, cut) + 1;
		atomic_store(&m->band_reach[cut], v);
	}
	return v - 1;
}

/* A robot's banded request whose first layers here are row-local runs as
 * its bands arrive (the wavefront); any other waits for its whole body. */
static int h_stream_v2(void *ctx, const struct api_v2_request *req)
{
	struct pipeline *p = ctx;
	struct pipe_model *m = req->model->user;
	int64_t cut, bands;
	int wf = 1;

	if (api_params_bool(req->msg->params, "splitd_wavefront", &wf) == 0 && !wf)
		return 0;
	if (!p->cfg->server_wavefront || p->cfg->role != CONFIG_ROLE_PEER ||
	    api_params_int(req->msg->params, "splitd_cut", &cut) ||
	    api_params_int(req->msg->params, "splitd_bands", &bands) || bands < 2 ||
	    bands > PEER_MAX_BANDS || cut < 0 || cut >= m->n_nodes ||
	    strcmp(engine_backend_name(m->eng), "cpu"))
		return 0;
	return pipe_band_reach(m, (int)cut) > cut;
}

/* ---- models ----------------------------------------------------------- */

static int read_labels(struct pipe_model *m, const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512];
	int r = 0;

	if (!f)
		return log_err(-errno, "model %s: labels %s: %s", m->name, path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		if (m->n_labels >= 100000) {
			r = log_err(-EFBIG, "model %s: labels %s: more than 100000 lines", m->name, path);
			break;
		}
		char **nl = realloc(m->labels, sizeof(*nl) * (size_t)(m->n_labels + 1));
		if (!nl) {
			r = -ENOMEM;
			break;
		}
		m->labels = nl;
		if (!(m->labels[m->n_labels] = strdup(line))) {
			r = -ENOMEM;
			break;
		}
		m->n_labels++;
	}
	fclose(f);
	return r;
}

static void set_meta(struct api_tensor_meta *meta, const struct engine_value_info *vi)
{
	meta->name = vi->name;
	meta->dtype = vi->dtype;
	meta->ndim = vi->ndim;
	for (int d = 0; d < vi->ndim; d++)
		meta->shape[d] = vi->shape[d];
}

/* Image preprocessing when the model takes one float image [1,3,H,W] (or
 * NHWC [1,H,W,3] when configured so). */
static void setup_preprocess(struct pipe_model *m, const struct config_model *cm)
{
	const struct api_tensor_meta *in = &m->in_meta[0];
	bool nhwc = cm->layout == CONFIG_LAYOUT_NHWC;

	if (m->api.n_inputs != 1 || in->dtype != TENSOR_F32 || in->ndim != 4 ||
	    in->shape[nhwc ? 3 : 1] != 3)
		return;
	m->pp.width = cm->width ? cm->width : (int)in->shape[nhwc ? 2 : 3];
	m->pp.height = cm->height ? cm->height : (int)in->shape[nhwc ? 1 : 2];
	m->pp.resize = cm->resize == CONFIG_RESIZE_LETTERBOX ? API_RESIZE_LETTERBOX : API_RESIZE_STRETCH;
	m->pp.pad_value = 114;
	m->pp.scale = (float)cm->scale;
	for (int c = 0; c < 3; c++) {
		m->pp.mean[c] = (float)cm->mean[c];
		m->pp.std[c] = (float)cm->std[c];
	}
	m->pp.bgr = cm->channel_order == CONFIG_CHANNELS_BGR;
	m->pp.nhwc = nhwc;
	m->has_pp = true;
	m->api.preprocess = &m->pp;
	m->api.lazy_decode = 1;	/* the image may travel to the peer as is */
}

static void plan_config_from(const struct config *cfg, struct plan_config *pc)
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
	if (cfg->peer_encoding.type != CONFIG_ENC_AUTO) {
		int d = cfg->peer_encoding.type == CONFIG_ENC_F16 ? PLAN_DTYPE_F16 :
			cfg->peer_encoding.type == CONFIG_ENC_I8 ? PLAN_DTYPE_I8 : PLAN_DTYPE_F32;
		int c = cfg->peer_encoding.zip == CONFIG_ZIP_ZSTD ? PLAN_CODEC_ZSTD :
			cfg->peer_encoding.zip == CONFIG_ZIP_LZ4 ? PLAN_CODEC_LZ4 : PLAN_CODEC_NONE;
		pc->enc_mask = 1u << PLAN_ENC(d, c);
	}
}

static int setup_offload(struct pipeline *p, struct pipe_model *m)
{
	const struct config *cfg = p->cfg;
	struct peer_client_config pcc = {
		.url = cfg->peer_url,
		.model = m->name,
		.model_sha256 = engine_sha256(m->eng),
		.plain = cfg->peer_plain,
		.allow_unverified = cfg->peer_allow_unverified,
		.ca_file = cfg->peer_ca_file[0] ? cfg->peer_ca_file : NULL,
		.cert_file = cfg->peer_cert_file[0] ? cfg->peer_cert_file : NULL,
		.key_file = cfg->peer_key_file[0] ? cfg->peer_key_file : NULL,
		.connect_timeout_ms = cfg->peer_connect_timeout_ms,
		.request_timeout_ms = cfg->peer_request_timeout_ms,
		.backoff_max_ms = cfg->peer_backoff_max_ms,
		.probe_interval_ms = cfg->peer_probe_interval_ms,
	};
	char err[256];

	/* the answer holds our outputs: its JSON header (bounded by the
	 * protocol), their bytes and some slack; a peer sending more is wrong,
	 * and is cut off there instead of at the client's default */
	size_t out_bytes = 0;
	for (int i = 0; i < m->api.n_outputs && out_bytes != SIZE_MAX; i++) {
		struct tensor_view v = { .dtype = m->out_meta[i].dtype, .ndim = m->out_meta[i].ndim };
		memcpy(v.shape, m->out_meta[i].shape, sizeof(v.shape));
		for (int d = 0; d < v.ndim; d++)
			if (v.shape[d] < 0)
				out_bytes = SIZE_MAX;	/* dynamic: unknown */
		if (out_bytes != SIZE_MAX)
			out_bytes += tensor_bytes(&v);
	}
	if (out_bytes != SIZE_MAX)
		pcc.max_response_bytes = PEER_MAX_HEADER_BYTES + 2 * out_bytes + 65536;
	int r = peer_client_new(&pcc, &m->peer, err, sizeof(err));

	if (r < 0)
		return log_err(r, "model %s: peer %s: %s", m->name, cfg->peer_url, err);

	/* Until the peer reports its own times, assume it runs each node as
	 * fast as we do; the first calibration replaces this. */
	struct plan_config pc;

	plan_config_from(cfg, &pc);
	r = plan_new_from_engine(m->eng, m->local_ms, m->local_ms, &pc, &m->plan);
	if (r < 0)
		return log_err(r, "model %s: planner: %s", m->name, strerror(-r));
	pipe_plan_state_load(m);	/* what it learnt before a restart */

	pipe_replan(m, 1);
	if ((r = peer_client_probe(m->peer, err, sizeof(err))) < 0)
		log_warn("model %s: peer %s not ready yet (%s); serving locally until it is",
			 m->name, cfg->peer_url, err);
	return peer_client_start(m->peer);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median wall time of whole-model runs on zero inputs, in worker 0's context. */
static int whole_run_ms(struct pipe_model *m, double *out_ms)
{
	enum { RUNS = 5 };
	struct engine_ctx *ctx = m->wctx[0];
	void *zero[8] = { 0 };
	double t[RUNS];
	char err[256];
	int n_in = m->api.n_inputs, r = 0;

	if (!ctx || n_in < 1 || n_in > 8)
		return -EINVAL;
	for (int i = 0; i < n_in; i++) {
		struct engine_value_info vi;
		struct tensor_view v;

		if ((r = engine_input_info(m->eng, i, &vi)) < 0)
			goto out;
		if (!(zero[i] = calloc(1, vi.bytes ? vi.bytes : 1))) {
			r = -ENOMEM;
			goto out;
		}
		v.dtype = vi.dtype;
		v.ndim = vi.ndim;
		memcpy(v.shape, vi.shape, sizeof(v.shape));
		v.data = zero[i];
		if ((r = engine_ctx_set(ctx, vi.name, &v, err, sizeof(err))) < 0)
			goto out;
	}
	for (int k = 0; k < RUNS; k++) {
		uint64_t t0 = pipe_now_ns();
		if ((r = engine_run(ctx)) < 0)
			goto out;
		t[k] = (double)(pipe_now_ns() - t0) / 1e6;
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_double);
	*out_ms = t[RUNS / 2];
out:
	for (int i = 0; i < 8; i++)
		free(zero[i]);
	return r;
}

static int load_model(struct pipeline *p, struct pipe_model *m, const struct config_model *cm)
{
	const struct config *cfg = p->cfg;
	struct engine_opts eo = { .threads = cfg->threads,
				  .backend = cfg->backend == CONFIG_BACKEND_CUDA ? "cuda" : "cpu" };
	struct engine_input_shape is = { 0 };
	char err[512], hex[65];
	uint64_t t0 = pipe_now_ns();
	int r;

	m->pipe = p;
	snprintf(m->name, sizeof(m->name), "%s", cm->name);
	snprintf(m->path, sizeof(m->path), "%s", cm->path);
	pthread_mutex_init(&m->lock, NULL);
	m->duration_s.bounds = pipe_duration_bounds;
	m->energy_j.bounds = pipe_energy_bounds;
	atomic_store(&m->current_cut, -1);
	if (cm->input_rank > 0) {
		is.ndim = cm->input_rank;
		for (int d = 0; d < cm->input_rank; d++)
			is.shape[d] = cm->input_shape[d];
		eo.input_shapes = &is;
		eo.n_input_shapes = 1;
	}
	if ((r = engine_load(cm->path, &eo, &m->eng, err, sizeof(err))) < 0)
		return log_err(r, "model %s: %s", cm->name, err);
	m->n_nodes = engine_num_nodes(m->eng);
	m->api.name = m->name;
	m->api.user = m;
	m->api.n_inputs = engine_num_inputs(m->eng);
	m->api.n_outputs = engine_num_outputs(m->eng);
	m->in_meta = calloc((size_t)m->api.n_inputs, sizeof(*m->in_meta));
	m->out_meta = calloc((size_t)m->api.n_outputs, sizeof(*m->out_meta));
	m->local_ms = calloc((size_t)m->n_nodes + 1, sizeof(*m->local_ms));
	m->band_reach = calloc((size_t)m->n_nodes + 1, sizeof(*m->band_reach));
	if (!m->in_meta || !m->out_meta || !m->local_ms || !m->band_reach)
		return -ENOMEM;
	for (int i = 0; i < m->api.n_inputs; i++) {
		struct engine_value_info vi;
		engine_input_info(m->eng, i, &vi);
		set_meta(&m->in_meta[i], &vi);
	}
	for (int i = 0; i < m->api.n_outputs; i++) {
		struct engine_value_info vi;
		engine_output_info(m->eng, i, &vi);
		set_meta(&m->out_meta[i], &vi);
	}
	peer_sha256_hex(engine_sha256(m->eng), hex);
	snprintf(m->params_json, sizeof(m->params_json),
		 "{\"splitd_model_sha256\":\"%s\",\"splitd_nodes\":%d}", hex, m->n_nodes);
	m->api.params_json = m->params_json;
	m->api.inputs = m->in_meta;
	m->api.outputs = m->out_meta;
	setup_preprocess(m, cm);
	m->top_k = cm->top_k;
	if (cm->labels[0] && (r = read_labels(m, cm->labels)) < 0)
		return r;
	uint64_t t1 = pipe_now_ns();
	/* Profile first: its own context is freed before the workers' exist. */
	if ((r = engine_profile(m->eng, 5, m->local_ms)) < 0)
		return log_err(r, "model %s: profile: %s", m->name, strerror(-r));
	for (int w = 0; w < p->n_workers; w++)
		if ((r = engine_ctx_new(m->eng, &m->wctx[w])) < 0)
			return log_err(r, "model %s: engine context: %s", m->name, strerror(-r));
	double total_ms = 0, wall_ms = 0;
	for (int i = 0; i < m->n_nodes; i++)
		total_ms += m->local_ms[i];
	/* Per-node medians miss what a whole run pays (under a CPU quota short
	 * nodes run unthrottled, the throttling lands on whole runs): scale the
	 * profile so its sum is the median wall time of whole runs. */
	if (whole_run_ms(m, &wall_ms) == 0 && wall_ms > 0 && total_ms > 0) {
		double f = wall_ms / total_ms;
		for (int i = 0; i < m->n_nodes; i++)
			m->local_ms[i] *= f;
		log_info("model %s: per-node profile sums to %.2f ms, whole runs take %.2f ms: scaled by %.2f",
			 m->name, total_ms, wall_ms, f);
		total_ms = wall_ms;
	}
	log_notice("model %s: %s, %d nodes on %s, loaded in %.0f ms, profiled: %.2f ms per inference",
		   m->name, m->path, m->n_nodes, engine_backend_name(m->eng),
		   (double)(t1 - t0) / 1e6, total_ms);
	if (cfg->role == CONFIG_ROLE_ROBOT && cfg->peer_url[0])
		return setup_offload(p, m);
	return 0;
}

static void free_model(struct pipe_model *m)
{
	if (m->peer) {
		peer_client_stop(m->peer);
		peer_client_free(m->peer);
	}
	pipe_plan_state_save(m, true);	/* what it learnt, for the next start */
	plan_free(m->plan);
	for (int w = 0; w < PIPE_MAX_WORKERS; w++) {
		engine_band_free(m->wband[w]);
		m->wband[w] = NULL;
		engine_ctx_free(m->wctx[w]);
	}
	engine_free(m->eng);
	for (int i = 0; i < m->n_labels; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->in_meta);
	free(m->out_meta);
	free(m->local_ms);
	free((void *)m->band_reach);
	pthread_mutex_destroy(&m->lock);
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

static void pipeline_free(struct pipeline *p)
{
	if (!p)
		return;
	/* Workers answer what is queued, then the server stops. */
	pthread_mutex_lock(&p->qlock);
	p->stopping = true;
	pthread_cond_broadcast(&p->qcond);
	pthread_mutex_unlock(&p->qlock);
	for (int w = 0; w < p->n_workers; w++)
		pthread_join(p->workers[w], NULL);
	if (p->api && api_server_free(p->api, 2000) < 0)
		log_warn("api: calls still unanswered at stop");
	for (int i = 0; i < p->n_models; i++)
		free_model(&p->models[i]);
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
	static const struct api_handlers handlers_template = {
		.model = h_model, .ready = h_ready,
		.infer_v1 = h_infer_v1, .infer_v2 = h_infer_v2, .stream_v2 = h_stream_v2,
		.status = pipe_status, .metrics = pipe_metrics,
	};
	struct api_handlers h = handlers_template;
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
		.token = cfg->token[0] ? cfg->token : NULL,
		.server_version = SPLITD_VERSION,
	};
	if (!o.token && cfg->token_file[0]) {
		if (!(token_file = read_text_file(cfg->token_file)))
			return log_err(-EACCES, "api: token_file %s: %s", cfg->token_file, strerror(errno));
		token_file[strcspn(token_file, "\r\n")] = 0;
		o.token = token_file;
	}
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

static int pipeline_start(const struct config *cfg, struct serve_listeners *ls, void **ctx)
{
	struct pipeline *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->qlock, NULL);
	pthread_cond_init(&p->qcond, NULL);
	pthread_mutex_init(&p->cfg_lock, NULL);
	pthread_mutex_init(&p->link_lock, NULL);
	p->start_ns = pipe_now_ns();
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
		if ((r = load_model(p, &p->models[i], &p->cfg->models[i])) < 0)
			goto fail;
	}
	if (p->n_models == 0)
		log_warn("no model configured: serving status and metrics only (set [model.NAME] path or --model)");

	for (int w = 0; w < p->n_workers; w++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (!wa) {
			r = -ENOMEM;
			goto fail;
		}
		*wa = (struct worker_arg){ p, w };
		if ((r = -pthread_create(&p->workers[w], NULL, worker_main, wa)) < 0) {
			free(wa);
			p->n_workers = w;
			goto fail;
		}
	}
	/* The peer's own per-node speed, measured once it answers. */
	for (int i = 0; i < p->n_models; i++)
		if (p->models[i].peer && peer_client_state(p->models[i].peer) == PEER_UP)
			pipe_calibrate(&p->models[i], 0);
	if ((r = start_api(p, ls)) < 0)
		goto fail;
	*ctx = p;
	return 0;
fail:
	pipeline_free(p);
	return r;
}

static int pipeline_reload(void *ctx, const struct config *cfg)
{
	struct pipeline *p = ctx;
	struct plan_config pc;

	plan_config_from(cfg, &pc);
	pthread_mutex_lock(&p->cfg_lock);
	p->cfg->policy = cfg->policy;
	p->cfg->slo_ms = cfg->slo_ms;
	p->cfg->replan_threshold = cfg->replan_threshold;
	p->cfg->hysteresis = cfg->hysteresis;
	p->cfg->p_compute_w = cfg->p_compute_w;
	p->cfg->p_tx_w = cfg->p_tx_w;
	p->cfg->p_wait_w = cfg->p_wait_w;
	p->cfg->peer_request_timeout_ms = cfg->peer_request_timeout_ms;
	p->cfg->peer_encoding = cfg->peer_encoding;
	p->cfg->probe_idle_ms = cfg->probe_idle_ms;
	pthread_mutex_unlock(&p->cfg_lock);
	pthread_mutex_lock(&p->link_lock);
	linkest_set_idle_probe(p->link, (uint64_t)cfg->probe_idle_ms * 1000000ull);
	pthread_mutex_unlock(&p->link_lock);
	for (int i = 0; i < p->n_models; i++) {
		struct pipe_model *m = &p->models[i];
		if (!m->plan)
			continue;
		pthread_mutex_lock(&m->lock);
		plan_set_config(m->plan, &pc);
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

static void pipeline_status(void *ctx, char *buf, size_t len)
{
	struct pipeline *p = ctx;
	size_t off = 0;

	off += (size_t)snprintf(buf, len, "%s", config_role_name(p->cfg->role));
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
	pipeline_free(ctx);
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
