/* The models of the pipeline: loaded, profiled and given a context per
 * worker; a robot's model with a peer gets its link and its planner; a
 * model whose backend reports itself unhealthy is reloaded on the CPU. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

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

int pipe_model_offload_init(struct pipe_model *m, struct pipe_link link)
{
	/* Until the peer reports its own times, assume it runs each node as
	 * fast as we do; the first calibration replaces this. */
	struct plan_config pc;
	int r;

	pipe_plan_config_from(m->pipe->cfg, &pc);
	r = plan_new_from_engine(m->eng, m->local_ms, m->local_ms, &pc, &m->plan);
	if (r < 0)
		return log_err(r, "model %s: planner: %s", m->name, strerror(-r));
	pipe_plan_state_load(m);	/* what it learnt before a restart */

	m->link = link;
	pipe_replan(m, 1);
	return 0;
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

	if ((r = pipe_model_offload_init(m, (struct pipe_link){ &pipe_link_peer_client, m->peer })) < 0)
		return r;
	if ((r = peer_client_probe(m->peer, err, sizeof(err))) < 0)
		log_warn("model %s: peer %s not ready yet (%s); serving locally until it is",
			 m->name, cfg->peer_url, err);
	return peer_client_start(m->peer);
}

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
		uint64_t t0 = link_now_ns();
		if ((r = engine_run(ctx)) < 0)
			goto out;
		t[k] = (double)(link_now_ns() - t0) / 1e6;
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_double);
	*out_ms = t[RUNS / 2];
out:
	for (int i = 0; i < 8; i++)
		free(zero[i]);
	return r;
}

/* The model's engine on a backend, as configured. */
static int open_engine(struct pipe_model *m, const char *backend, struct engine **out)
{
	const struct config_model *cm = &m->conf;
	struct engine_opts eo = { .threads = m->pipe->cfg->threads, .backend = backend };
	struct engine_input_shape is = { 0 };
	char err[512];
	int r;

	if (cm->input_rank > 0) {
		is.ndim = cm->input_rank;
		for (int d = 0; d < cm->input_rank; d++)
			is.shape[d] = cm->input_shape[d];
		eo.input_shapes = &is;
		eo.n_input_shapes = 1;
	}
	if ((r = engine_load(cm->path, &eo, out, err, sizeof(err))) < 0)
		return log_err(r, "model %s: %s", cm->name, err);
	return 0;
}

/* The model as the API describes it: inputs, outputs, identity. */
static int describe(struct pipe_model *m)
{
	char hex[65];

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
	return 0;
}

/* Per-node times, scaled to whole runs, and a context per worker. */
static int profile(struct pipeline *p, struct pipe_model *m, uint64_t t0, uint64_t t1)
{
	int r;

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
	return 0;
}

int pipe_model_load(struct pipeline *p, struct pipe_model *m, const struct config_model *cm)
{
	const struct config *cfg = p->cfg;
	uint64_t t0 = link_now_ns();
	pthread_rwlockattr_t ra;
	int r;

	m->pipe = p;
	m->conf = *cm;
	snprintf(m->name, sizeof(m->name), "%s", cm->name);
	snprintf(m->path, sizeof(m->path), "%s", cm->path);
	pthread_mutex_init(&m->lock, NULL);
	/* a failover waits for the requests running, not for the ones queued */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->eng_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	m->duration_s.bounds = pipe_duration_bounds;
	m->energy_j.bounds = pipe_energy_bounds;
	m->detections.bounds = pipe_detections_bounds;
	atomic_store(&m->current_cut, -1);
	struct engine *e = NULL;
	r = open_engine(m, p->backend, &e);
	/* backend = auto: a model the GPU backend cannot run (an op it lacks)
	 * runs on the CPU instead of not at all */
	if (r < 0 && p->cfg->backend == CONFIG_BACKEND_AUTO && strcmp(p->backend, "cpu")) {
		log_notice("model %s: not on %s (above): on cpu (backend = auto)", cm->name, p->backend);
		r = open_engine(m, "cpu", &e);
	}
	if (r < 0)
		return r;
	m->eng = e;
	if ((r = describe(m)) < 0)
		return r;
	setup_preprocess(m, cm);
	m->top_k = cm->top_k;
	if (cm->labels[0] && (r = read_labels(m, cm->labels)) < 0)
		return r;
	if ((r = pipe_post_setup(m, cm)) < 0)
		return r;
	if ((r = profile(p, m, t0, link_now_ns())) < 0)
		return r;
	if (cfg->role == CONFIG_ROLE_ROBOT && cfg->peer_url[0])
		return setup_offload(p, m);
	return 0;
}

/* The workers' contexts and band states, freed. */
static void free_contexts(struct pipe_model *m)
{
	for (int w = 0; w < PIPE_MAX_WORKERS; w++) {
		engine_band_free(m->wband[w]);
		m->wband[w] = NULL;
		engine_ctx_free(m->wctx[w]);
		m->wctx[w] = NULL;
	}
}

void pipe_model_free(struct pipe_model *m)
{
	if (m->peer) {
		peer_client_stop(m->peer);
		peer_client_free(m->peer);
	}
	pipe_plan_state_save(m, true);	/* what it learnt, for the next start */
	plan_free(m->plan);
	free_contexts(m);
	engine_free(m->eng);
	engine_free(m->eng_retired);
	for (int i = 0; i < m->n_labels; i++)
		free(m->labels[i]);
	free(m->labels);
	free(m->in_meta);
	free(m->out_meta);
	free(m->listed_meta);
	free(m->local_ms);
	free((void *)m->band_reach);
	pthread_mutex_destroy(&m->lock);
	if (m->pipe)
		pthread_rwlock_destroy(&m->eng_lock);
}

/* The contexts of the workers on the model's engine of now. */
static int new_contexts(struct pipe_model *m)
{
	int r;

	free_contexts(m);
	for (int w = 0; w < m->pipe->n_workers; w++)
		if ((r = engine_ctx_new(m->eng, &m->wctx[w])) < 0)
			return r;
	return 0;
}

int pipe_model_failover(struct pipe_model *m, const char *why)
{
	struct pipeline *p = m->pipe;
	struct engine *cpu = NULL;
	char was[16];
	int r = 0;

	pthread_rwlock_wrlock(&m->eng_lock);
	snprintf(was, sizeof(was), "%s", engine_backend_name(m->eng));
	if (!strcmp(was, "cpu"))
		goto out;	/* another worker saw it first */
	if ((r = open_engine(m, "cpu", &cpu)) < 0)
		goto out;
	/* the old engine stays allocated: in_meta/out_meta name its values */
	engine_free(m->eng_retired);
	m->eng_retired = m->eng;
	m->eng = cpu;
	if ((r = new_contexts(m)) < 0) {
		log_err(r, "model %s: engine context on the cpu: %s", m->name, strerror(-r));
		goto out;
	}
	pthread_mutex_lock(&p->cfg_lock);
	snprintf(p->backend_down, sizeof(p->backend_down), "%s", was);
	snprintf(p->backend, sizeof(p->backend), "cpu");
	pthread_mutex_unlock(&p->cfg_lock);
	atomic_fetch_add(&p->backend_failovers, 1);
	log_err(-EIO, "model %s: backend %s reports itself unhealthy (%s): out of service, the model runs on "
		"the cpu from now on", m->name, was, why && *why ? why : "a sticky device error");
out:
	pthread_rwlock_unlock(&m->eng_lock);
	return r;
}
