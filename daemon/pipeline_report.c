/* What the pipeline reports: the answer to a v1 request (outputs, top-k,
 * placement, timing, energy), GET /metrics (Prometheus, base units) and
 * GET /v1/status (JSON). The last two read counters and snapshots only. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "link_codec.h"
#include "log.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

const double pipe_duration_bounds[PIPE_HIST_BUCKETS] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5,
};
const double pipe_energy_bounds[PIPE_HIST_BUCKETS] = {
	0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 50,
};
const double pipe_detections_bounds[PIPE_HIST_BUCKETS] = {
	0, 1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 300, 1000, 10000,
};

static const char *const placement_names[PIPE_PLACEMENTS] = { "local", "split", "offload", "fallback" };

void pipe_hist_observe(struct pipe_hist *h, double v)
{
	int i = 0;

	while (i < PIPE_HIST_BUCKETS && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->sum += v;
}

/* ---- the answer to a v1 request ---------------------------------------- */

/* A classifier's k best of output 0 (with labels, or postprocess =
 * classify), as probabilities (a softmax unless they are already). */
static int top_k(const struct pipe_model *m, const struct pipe_outputs *o, struct api_topk *tk)
{
	if ((!m->labels && m->post.kind != POST_CLASSIFY) || o->n < 1 || o->views[0].dtype != TENSOR_F32)
		return 0;
	const struct tensor_view *v = &o->views[0];
	int64_t n = tensor_numel(v);
	const float *x = v->data;
	int k = m->top_k > 0 ? m->top_k : 5;
	double mx = -INFINITY, sum = 0;
	bool probs = true;

	if (n < 1 || n > 1000000)
		return 0;
	if (k > n)
		k = (int)n;
	if (k > 32)
		k = 32;
	for (int64_t i = 0; i < n; i++) {
		if (x[i] > mx)
			mx = x[i];
		if (x[i] < 0 || x[i] > 1)
			probs = false;
		sum += x[i];
	}
	if (fabs(sum - 1.0) > 1e-3)
		probs = false;
	double z = 0;
	if (!probs)
		for (int64_t i = 0; i < n; i++)
			z += exp(x[i] - mx);
	int64_t idx[32];
	int got = post_topk(x, n, k, idx);
	for (int j = 0; j < got; j++) {
		int64_t best = idx[j];
		tk[j].index = (int)best;
		tk[j].label = best < m->n_labels ? m->labels[best] : NULL;
		tk[j].score = probs ? x[best] : (float)(exp(x[best] - mx) / z);
	}
	return got;
}

static const char *placement_name(int cut, int n_nodes, int fallback)
{
	return fallback ? "fallback" : cut >= n_nodes ? "local" : cut == 0 ? "offload" : "split";
}

static void result_placement(const struct pipe_v1 *v, struct api_v1_result *res, char *enc_name, size_t len)
{
	const struct pipe_model *m = v->m;

	res->placement.cut = v->cut;
	res->placement.local_nodes = v->local_nodes;
	res->placement.remote_nodes = m->n_nodes - v->local_nodes;
	res->placement.bands = v->bands;
	if (v->bands > 1) {
		res->timeline = v->bd.tl;
		res->n_timeline = v->bands;
	}
	res->placement.peer = v->cut < m->n_nodes ? m->pipe->cfg->peer_url : NULL;
	if (v->cut < m->n_nodes) {
		snprintf(enc_name, len, "%s", v->enc == PLAN_ENC_INPUT ? "input" : plan_enc_name(v->enc));
		res->placement.encoding = enc_name;
	}
	res->placement.fallback = v->fallback;
	res->placement.fallback_reason = v->fallback ? v->fb_reason : NULL;
	res->placement.bytes_back = v->offloaded ? v->of.reply.len : 0;
}

static void result_timing(const struct pipe_v1 *v, struct api_v1_result *res)
{
	const struct pipe_request *rq = v->req;

	res->timing.queue_ns = v->t_deq - rq->received_ns;
	res->timing.decode_ns = v->decode_ns;
	res->timing.local_ns = (v->t_local1 - v->t_local0) + v->tail_ns;
	if (v->offloaded) {
		const struct peer_timing *pt = &v->of.reply.resp.timing;
		uint64_t remote = pt->total_ns > 0 ? (uint64_t)pt->total_ns : 0;
		uint64_t total = v->of.reply.xfer.total_ns > 0 ? (uint64_t)v->of.reply.xfer.total_ns : 0;
		res->timing.remote_ns = remote;
		res->timing.transfer_ns = total > remote ? total - remote : 0;
	}
	res->timing.total_ns = v->t_end - rq->received_ns;
}

static void result_energy(struct pipe_v1 *v, struct api_v1_result *res)
{
	struct pipeline *p = v->m->pipe;

	if (v->have_energy) {
		v->have_energy = power_request_end_at(p->power, v->energy_id, (int64_t)v->t_end, 0, &v->pr) == 0;
		v->energy_id = 0;
	}
	if (v->have_energy) {
		res->energy.present = 1;
		res->energy.energy_uj = (double)v->pr.energy_uj;
		res->energy.above_idle_uj = (double)v->pr.energy_above_idle_uj;
		res->energy.method = v->pr.method;
		res->energy.rail = v->pr.rail;
		res->energy.sample_hz = v->pr.sample_hz;
		res->energy.samples = v->pr.samples;
	} else {
		res->energy.reason = p->power ? (v->pr.reason ? v->pr.reason : "no energy for this request")
					      : p->power_reason;
	}
}

int pipe_v1_answer(struct pipe_v1 *v)
{
	struct pipe_model *m = v->m;
	const struct pipe_request *rq = v->req;
	struct api_topk tk[32];
	char enc_name[LINK_ENCODING_STRLEN];

	v->t_end = link_now_ns();
	struct api_v1_result res = { .model = m->name, .id = v->id, .outputs = v->outs.out,
				     .n_outputs = v->outs.n, .outputs_none = rq->q.outputs_none };
	int ntk = m->detects ? 0 : top_k(m, &v->outs, tk);
	if (ntk > 0) {
		res.top_k = tk;
		res.n_top_k = ntk;
	}
	if (m->detects && v->have_det) {
		res.has_detections = 1;
		res.detections = post_detections(&v->det);
		res.timing.postprocess_ns = v->offloaded && v->of.post.kind[0] ? v->of.reply.resp.timing.post_ns
									 : (int64_t)v->post_ns;
		if (!rq->q.outputs_raw)
			res.n_outputs = 0;	/* the detections are the answer */
	}
	result_placement(v, &res, enc_name, sizeof(enc_name));
	result_timing(v, &res);
	result_energy(v, &res);
	/* the request is the caller's from its answer on: what pipe_learn
	 * reads of it is copied out first */
	size_t image_bytes = rq->is_image ? rq->body_len : 0;
	struct pipe_result out = { .status = 200, .v1 = &res };
	rq->ops->respond(rq->ctx, &out);
	v->req = NULL;

	atomic_fetch_add(&m->requests[v->fallback ? PIPE_FALLBACK
				      : v->cut >= m->n_nodes ? PIPE_LOCAL
				      : v->cut == 0 ? PIPE_OFFLOAD : PIPE_SPLIT], 1);
	pthread_mutex_lock(&m->lock);
	pipe_hist_observe(&m->duration_s, (double)res.timing.total_ns / 1e9);
	if (m->detects && v->have_det)
		pipe_hist_observe(&m->detections, (double)v->det.n);
	if (v->have_energy)
		pipe_hist_observe(&m->energy_j, (double)v->pr.energy_uj / 1e6);
	pthread_mutex_unlock(&m->lock);
	log_debug("model %s: %s, cut %d, %.2f ms", m->name, placement_name(v->cut, m->n_nodes, v->fallback),
		  v->cut, (double)res.timing.total_ns / 1e6);
	pipe_learn(v, image_bytes);
	return 0;
}

static void wifi_refresh(struct pipeline *p)
{
	uint64_t now = link_now_ns();

	if (!p->wifi || now - p->wifi_read_ns < 1000000000ull)
		return;
	struct wifi_stats ws;
	if (wifi_read(p->wifi, &ws) == 0)
		p->wifi_last = ws;
	p->wifi_read_ns = now;
}

#define FAM(name, type, help) if ((r = api_metrics_family(mx, name, type, help)) < 0) return r
#define VAL(labels, v) if ((r = api_metrics_value(mx, labels, (double)(v))) < 0) return r

/* The compute backend in service, and the failovers away from one. */
static int backend_metrics(struct pipeline *p, struct api_metrics *mx)
{
	int r;

	char backend[16], down[16];
	pthread_mutex_lock(&p->cfg_lock);
	snprintf(backend, sizeof(backend), "%s", p->backend);
	snprintf(down, sizeof(down), "%s", p->backend_down);
	pthread_mutex_unlock(&p->cfg_lock);
	FAM("splitd_backend_info", API_GAUGE,
	    "1 for the compute backend in service; out_of_service names one taken out (unhealthy).");
	const char *l[] = { "backend", backend, "out_of_service", down, NULL };
	VAL(l, 1);
	FAM("splitd_backend_failovers_total", API_COUNTER,
	    "Models moved to the CPU backend because theirs reported itself unhealthy.");
	VAL(NULL, atomic_load(&p->backend_failovers));
	return 0;
}

/* One sample per rail labelled rail, source and method: its energy in
 * joules, or (power) its last power in watts where it has one. */
static int rail_values(struct api_metrics *mx, const struct power_snapshot *snap, bool power)
{
	int r = 0;

	for (int i = 0; r == 0 && i < snap->n_rails; i++) {
		const struct power_rail_status *rs = &snap->rails[i];
		if (power && rs->power_mw < 0)
			continue;
		const char *l[] = { "rail", rs->info.name, "source", rs->info.source, "method",
				    rs->info.method, NULL };
		r = api_metrics_value(mx, l, power ? (double)rs->power_mw / 1e3 : (double)rs->energy_uj / 1e6);
	}
	return r;
}

/* Per-rail energy and power, from the sampler's snapshot. */
static int power_metrics(struct pipeline *p, struct api_metrics *mx)
{
	int r = 0;
	struct power_snapshot *snap = malloc(sizeof(*snap));
	if (!snap || power_snapshot(p->power, snap) < 0) {
		free(snap);
		return 0;
	}
	if ((r = api_metrics_family(mx, "splitd_power_sample_rate_hertz", API_GAUGE,
				    "Power samples per second (configured, after the sensor cap).")) == 0)
		r = api_metrics_value(mx, NULL, snap->sample_hz);
	if (r == 0)
		r = api_metrics_family(mx, "splitd_rail_energy_joules_total", API_COUNTER,
				       "Energy per power rail since start.");
	if (r == 0)
		r = rail_values(mx, snap, false);
	if (r == 0)
		r = api_metrics_family(mx, "splitd_rail_power_watts", API_GAUGE, "Power per rail, last sample.");
	if (r == 0)
		r = rail_values(mx, snap, true);
	if (r == 0)
		r = api_metrics_family(mx, "splitd_rail_up", API_GAUGE, "1 when the rail's last read worked.");
	for (int i = 0; r == 0 && i < snap->n_rails; i++) {
		const char *l[] = { "rail", snap->rails[i].info.name, NULL };
		r = api_metrics_value(mx, l, snap->rails[i].up);
	}
	free(snap);
	return r;
}

/* The per-model families that are one field of struct pipe_model each:
 * an _Atomic uint64_t counter, or a struct pipe_hist read under the
 * model's lock. */
static const struct model_family {
	const char *name, *help;
	enum api_metric_type type;
	size_t off;
	bool detectors;		/* only models with a detector head */
} model_families[] = {
	{ "splitd_request_failures_total", "Inference requests that failed (bad input or an engine error).",
	  API_COUNTER, offsetof(struct pipe_model, failures), false },
	{ "splitd_fallbacks_total", "Requests finished locally because the peer failed.", API_COUNTER,
	  offsetof(struct pipe_model, fallbacks), false },
	{ "splitd_plan_changes_total", "Times the planner changed the split.", API_COUNTER,
	  offsetof(struct pipe_model, plan_changes), false },
	{ "splitd_inference_duration_seconds", "Request time from body received to answer.", API_HISTOGRAM,
	  offsetof(struct pipe_model, duration_s), false },
	{ "splitd_inference_energy_joules", "Board input energy per inference.", API_HISTOGRAM,
	  offsetof(struct pipe_model, energy_j), false },
	{ "splitd_detections_per_request", "Objects a detector model answered per v1 request (after NMS).",
	  API_HISTOGRAM, offsetof(struct pipe_model, detections), true },
};

static int model_family(struct pipeline *p, struct api_metrics *mx, const struct model_family *f)
{
	int r;

	bool any = !f->detectors;
	for (int i = 0; i < p->n_models && !any; i++)
		any = p->models[i].detects;
	if (!any)
		return 0;
	FAM(f->name, f->type, f->help);
	for (int i = 0; i < p->n_models; i++) {
		struct pipe_model *m = &p->models[i];
		if (f->detectors && !m->detects)
			continue;
		const char *l[] = { "model", m->name, NULL };
		const char *field = (const char *)m + f->off;
		if (f->type != API_HISTOGRAM) {
			VAL(l, atomic_load((_Atomic uint64_t *)field));
			continue;
		}
		struct pipe_hist h;
		pthread_mutex_lock(&m->lock);
		h = *(const struct pipe_hist *)field;
		pthread_mutex_unlock(&m->lock);
		if ((r = api_metrics_histogram(mx, l, h.bounds, h.counts, PIPE_HIST_BUCKETS, h.sum)) < 0)
			return r;
	}
	return 0;
}

/* Per model: requests by placement, failures, fallbacks, plan changes,
 * the duration and energy histograms and the current cut. */
static int model_metrics(struct pipeline *p, struct api_metrics *mx)
{
	int r;

	FAM("splitd_requests_total", API_COUNTER, "Inference requests answered, by model and placement.");
	for (int i = 0; i < p->n_models; i++)
		for (int k = 0; k < PIPE_PLACEMENTS; k++) {
			const char *l[] = { "model", p->models[i].name, "placement", placement_names[k], NULL };
			VAL(l, atomic_load(&p->models[i].requests[k]));
		}
	for (size_t f = 0; f < sizeof(model_families) / sizeof(model_families[0]); f++)
		if ((r = model_family(p, mx, &model_families[f])) < 0)
			return r;
	FAM("splitd_current_cut", API_GAUGE, "The planner's cut per model (number of nodes run locally).");
	for (int i = 0; i < p->n_models; i++) {
		const char *l[] = { "model", p->models[i].name, NULL };
		int cut = atomic_load(&p->models[i].current_cut);
		VAL(l, cut < 0 ? p->models[i].n_nodes : cut);
	}
	return 0;
}

/* The link estimate and the Wi-Fi telemetry, read together under the
 * link lock (the Wi-Fi figures refreshed first when they are due). */
static void link_snapshot(struct pipeline *p, struct linkest_estimate *le, struct wifi_stats *ws)
{
	pthread_mutex_lock(&p->link_lock);
	linkest_get(p->link, le);
	wifi_refresh(p);
	*ws = p->wifi_last;
	pthread_mutex_unlock(&p->link_lock);
}

int pipe_metrics(void *ctx, struct api_metrics *mx)
{
	struct pipeline *p = ctx;
	int r = 0;


	if ((r = backend_metrics(p, mx)) < 0)
		return r;
	if ((r = model_metrics(p, mx)) < 0)
		return r;
	FAM("splitd_peer_up", API_GAUGE, "1 when the peer is verified and answering.");
	for (int i = 0; i < p->n_models; i++) {
		if (!p->models[i].peer)
			continue;
		const char *l[] = { "model", p->models[i].name, NULL };
		VAL(l, peer_client_state(p->models[i].peer) == PEER_UP);
	}
	FAM("splitd_peer_sent_bytes_total", API_COUNTER, "Request bytes sent to the peer.");
	for (int i = 0; i < p->n_models; i++) {
		if (!p->models[i].peer)
			continue;
		struct peer_client_stats st;
		peer_client_stats(p->models[i].peer, &st);
		const char *l[] = { "model", p->models[i].name, NULL };
		VAL(l, st.bytes_sent);
	}
	FAM("splitd_peer_requests_served_total", API_COUNTER, "Robots' cut requests this peer answered.");
	VAL(NULL, atomic_load(&p->peer_requests_served));

	struct linkest_estimate le;
	struct wifi_stats ws;
	link_snapshot(p, &le, &ws);
	FAM("splitd_link_bandwidth_bytes_per_second", API_GAUGE, "Estimated uplink goodput to the peer.");
	VAL(NULL, le.bandwidth_bps / 8.0);
	FAM("splitd_link_rtt_seconds", API_GAUGE, "Estimated round-trip time to the peer.");
	VAL(NULL, le.rtt_ms / 1e3);
	if (ws.have_station && (ws.sta.present & WIFI_STA_TX_BITRATE)) {
		FAM("splitd_wifi_tx_bitrate_bits_per_second", API_GAUGE, "nl80211 station tx bitrate.");
		VAL(NULL, ws.sta.tx_bitrate_bps);
	}
	if (ws.have_station && (ws.sta.present & WIFI_STA_SIGNAL)) {
		FAM("splitd_wifi_signal_dbm", API_GAUGE, "nl80211 station signal.");
		VAL(NULL, ws.sta.signal_dbm);
	}
	if (ws.have_station && (ws.sta.present & WIFI_STA_TX_RETRIES)) {
		FAM("splitd_wifi_tx_retries_total", API_COUNTER, "nl80211 station tx retries.");
		VAL(NULL, ws.sta.tx_retries);
	}
	if (ws.have_proc) {
		FAM("splitd_wifi_link_quality", API_GAUGE, "/proc/net/wireless link quality (driver units).");
		VAL(NULL, ws.proc.link_quality);
	}
	FAM("splitd_queue_depth", API_GAUGE, "Requests waiting for a worker.");
	pthread_mutex_lock(&p->qlock);
	int qlen = p->qlen;
	pthread_mutex_unlock(&p->qlock);
	VAL(NULL, qlen);

	if ((r = pipe_ros2_metrics(p->ros2, mx)) < 0)
		return r;
	if (p->power)
		r = power_metrics(p, mx);
	return r;
}
#undef FAM
#undef VAL

/* ---- /v1/status ----------------------------------------------------------- */

/* Every candidate the planner weighs now, with its prediction. */
static json_t *candidates_json(struct pipe_model *m)
{
	struct plan_candidate *v = NULL;
	struct plan_inputs in;
	json_t *a = json_array();
	int n = 0, best = -1;

	pipe_plan_inputs(m, &in);
	if (plan_enumerate(m->plan, &in, &v, &n, &best) < 0)
		return a;
	for (int i = 0; i < n; i++) {
		json_t *c = json_object();
		json_object_set_new(c, "cut", json_integer(v[i].cut));
		json_object_set_new(c, "encoding", json_string(plan_enc_name(v[i].enc)));
		json_object_set_new(c, "bands", json_integer(v[i].bands));
		json_object_set_new(c, "wire_bytes", json_integer((json_int_t)v[i].wire_bytes));
		json_object_set_new(c, "local_ms", json_real(v[i].local_ms));
		json_object_set_new(c, "transfer_ms", json_real(v[i].transfer_ms));
		json_object_set_new(c, "remote_ms", json_real(v[i].remote_ms));
		json_object_set_new(c, "net_ms", json_real(v[i].net_ms));
		json_object_set_new(c, "return_bytes", json_integer((json_int_t)v[i].return_bytes));
		json_object_set_new(c, "total_ms", json_real(v[i].total_ms));
		json_object_set_new(c, "energy_j", json_real(v[i].energy_uj / 1e6));
		json_object_set_new(c, "best", json_boolean(i == best));
		json_array_append_new(a, c);
	}
	free(v);
	return a;
}

/* The settings the planner runs with (reloadable: the planner's own copy,
 * not the configuration's). */
static json_t *planner_config_json(const struct plan *plan)
{
	struct plan_config pc;
	json_t *cf = json_object();

	plan_get_config(plan, &pc);
	json_object_set_new(cf, "policy", json_string(plan_policy_name(pc.policy)));
	json_object_set_new(cf, "slo_ms", json_real(pc.slo_ms));
	json_object_set_new(cf, "replan_threshold", json_real(pc.threshold));
	json_object_set_new(cf, "hysteresis", json_real(pc.hysteresis));
	json_object_set_new(cf, "max_bands", json_integer(pc.max_bands));
	json_object_set_new(cf, "band_overhead", json_real(pc.band_overhead_frac));
	return cf;
}

static json_t *model_json(struct pipeline *p, struct pipe_model *m, bool explain)
{
	char hex[65];
	json_t *o = json_object();
	uint64_t served = 0;

	peer_sha256_hex(engine_sha256(m->eng), hex);
	for (int k = 0; k < PIPE_PLACEMENTS; k++)
		served += atomic_load(&m->requests[k]);
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "path", json_string(m->path));
	json_object_set_new(o, "sha256", json_string(hex));
	json_object_set_new(o, "nodes", json_integer(m->n_nodes));
	json_object_set_new(o, "backend", json_string(engine_backend_name(m->eng)));
	json_object_set_new(o, "requests", json_integer((json_int_t)served));
	json_object_set_new(o, "failures", json_integer((json_int_t)atomic_load(&m->failures)));
	json_object_set_new(o, "fallbacks", json_integer((json_int_t)atomic_load(&m->fallbacks)));
	double local_total = 0;
	for (int i = 0; i < m->n_nodes; i++)
		local_total += m->local_ms[i];
	json_object_set_new(o, "profile_ms", json_real(local_total));
	if (m->plan) {
		json_t *pl = json_object();
		struct plan_candidate c;
		int learnt;

		pthread_mutex_lock(&m->lock);
		json_object_set_new(pl, "plan", json_string(m->plan_text));
		if (plan_current(m->plan, &c) == 0) {
			json_object_set_new(pl, "cut", json_integer(c.cut));
			json_object_set_new(pl, "encoding", json_string(plan_enc_name(c.enc)));
			json_object_set_new(pl, "bands", json_integer(c.bands));
			json_object_set_new(pl, "predicted_ms", json_real(c.total_ms));
			json_object_set_new(pl, "predicted_joules", json_real(c.energy_uj / 1e6));
		}
		json_t *pw = json_object();
		static const char *const ph[PLAN_PHASE_COUNT] = { "compute", "transmit", "wait" };
		for (int k = 0; k < PLAN_PHASE_COUNT; k++) {
			json_t *e = json_object();
			double mw = plan_power_mw(m->plan, (enum plan_power_phase)k, &learnt);
			json_object_set_new(e, "watts", json_real(mw / 1e3));
			json_object_set_new(e, "source", json_string(learnt ? "measured" : "default"));
			json_object_set_new(pw, ph[k], e);
		}
		json_object_set_new(pl, "phase_power", pw);
		json_object_set_new(pl, "config", planner_config_json(m->plan));
		json_object_set_new(pl, "peer_calibrated", json_boolean(m->calibrated));
		{
			/* per band count: efficiency and how many banded runs taught it */
			json_t *be = json_object();
			for (int b = 2; b <= PLAN_MAX_BANDS; b *= 2) {
				int nb = 0;
				double eff = plan_band_efficiency(m->plan, b, &nb);
				char key[16];
				json_t *e = json_object();
				snprintf(key, sizeof(key), "%d", b);
				json_object_set_new(e, "efficiency", json_real(eff));
				json_object_set_new(e, "samples", json_integer(nb));
				json_object_set_new(be, key, e);
			}
			json_object_set_new(pl, "banded_overlap", be);
		}
		json_object_set_new(pl, "explorations", json_integer((json_int_t)atomic_load(&m->explorations)));
		pipe_plan_status(m, pl);
		if (explain) {
			struct plan_inputs in;
			pipe_plan_inputs(m, &in);
			json_object_set_new(pl, "decode_ms", json_real(in.decode_ms));
			json_object_set_new(pl, "peer_decode_ms", json_real(in.peer_decode_ms));
			json_object_set_new(pl, "input_bytes", json_integer((json_int_t)in.input_bytes));
			json_object_set_new(pl, "return_bytes", json_integer((json_int_t)in.output_bytes));
			json_object_set_new(pl, "candidates", candidates_json(m));
		}
		pthread_mutex_unlock(&m->lock);
		json_object_set_new(o, "planner", pl);
	}
	if (m->link.ops) {
		struct peer_client_stats st;
		json_t *pe = json_object();
		m->link.ops->stats(m->link.ctx, &st);
		json_object_set_new(pe, "url", json_string(p->cfg->peer_url));
		json_object_set_new(pe, "state", json_string(peer_state_name(st.state)));
		json_object_set_new(pe, "requests", json_integer((json_int_t)st.requests));
		json_object_set_new(pe, "failures", json_integer((json_int_t)st.failures));
		json_object_set_new(pe, "refusals", json_integer((json_int_t)st.refusals));
		json_object_set_new(pe, "bad_answers", json_integer((json_int_t)st.bad_answers));
		json_object_set_new(pe, "bytes_sent", json_integer((json_int_t)st.bytes_sent));
		json_object_set_new(pe, "auth_failures", json_integer((json_int_t)st.auth_failures));
		json_object_set_new(pe, "identity_mismatches", json_integer((json_int_t)st.identity_mismatches));
		json_object_set_new(pe, "backoff_ms", json_integer(st.backoff_ms));
		json_object_set_new(pe, "probes", json_integer((json_int_t)st.probes));
		json_object_set_new(pe, "probe_failures", json_integer((json_int_t)st.probe_failures));
		json_object_set_new(o, "peer", pe);
	}
	return o;
}

/* The compute backend: which, how it was chosen, and one taken out. */
static json_t *backend_json(struct pipeline *p)
{
	json_t *be = json_object();
	pthread_mutex_lock(&p->cfg_lock);
	json_object_set_new(be, "name", json_string(p->backend));
	json_object_set_new(be, "chosen", json_string(p->backend_why));
	json_object_set_new(be, "out_of_service", p->backend_down[0] ? json_string(p->backend_down) : json_null());
	pthread_mutex_unlock(&p->cfg_lock);
	json_object_set_new(be, "failovers", json_integer((json_int_t)atomic_load(&p->backend_failovers)));
	return be;
}

/* The power sampler's rails, or why there is none. */
static json_t *power_json(struct pipeline *p)
{
	json_t *power = json_object();
	if (p->power) {
		struct power_snapshot *snap = malloc(sizeof(*snap));
		if (snap && power_snapshot(p->power, snap) == 0) {
			json_t *rails = json_array();
			json_object_set_new(power, "sample_hz", json_real(snap->sample_hz));
			json_object_set_new(power, "measured_hz", json_real(snap->measured_hz));
			json_object_set_new(power, "board_input",
					    snap->input_rail >= 0 ? json_string(snap->rails[snap->input_rail].info.name)
								  : json_null());
			if (snap->idle_valid)
				json_object_set_new(power, "idle_watts", json_real((double)snap->idle_mw / 1e3));
			for (int i = 0; i < snap->n_rails; i++) {
				const struct power_rail_status *rs = &snap->rails[i];
				json_t *r = json_object();
				json_object_set_new(r, "name", json_string(rs->info.name));
				json_object_set_new(r, "source", json_string(rs->info.source));
				json_object_set_new(r, "method", json_string(rs->info.method));
				json_object_set_new(r, "up", json_boolean(rs->up));
				json_object_set_new(r, "watts", rs->power_mw >= 0 ? json_real((double)rs->power_mw / 1e3)
										 : json_null());
				json_object_set_new(r, "joules", json_real((double)rs->energy_uj / 1e6));
				json_object_set_new(r, "errors", json_integer((json_int_t)rs->errors));
				json_object_set_new(r, "samples", json_integer((json_int_t)rs->samples));
				json_array_append_new(rails, r);
			}
			json_object_set_new(power, "rails", rails);
		}
		free(snap);
	} else {
		json_object_set_new(power, "reason", json_string(p->power_reason));
	}
	return power;
}

char *pipe_status_json(struct pipeline *p, bool explain)
{
	json_t *root = json_object(), *models = json_array();

	json_object_set_new(root, "version", json_string(SPLITD_VERSION));
	json_object_set_new(root, "role", json_string(config_role_name(p->cfg->role)));
	json_object_set_new(root, "uptime_seconds", json_real((double)(link_now_ns() - p->start_ns) / 1e9));
	json_object_set_new(root, "backend", backend_json(p));
	for (int i = 0; i < p->n_models; i++)
		json_array_append_new(models, model_json(p, &p->models[i], explain));
	json_object_set_new(root, "models", models);

	struct linkest_estimate le;
	struct wifi_stats ws;
	link_snapshot(p, &le, &ws);
	json_t *link = json_object();
	json_object_set_new(link, "bandwidth_bits_per_second", json_real(le.bandwidth_bps));
	json_object_set_new(link, "rtt_ms", json_real(le.rtt_ms));
	json_object_set_new(link, "measured", json_boolean(le.measured));
	json_object_set_new(link, "samples", json_integer((json_int_t)le.goodput_samples));
	json_object_set_new(link, "rtt_samples", json_integer((json_int_t)le.rtt_samples));
	char ifname[sizeof(p->cfg->wifi_interface)];
	pthread_mutex_lock(&p->cfg_lock);	/* reload replaces it */
	memcpy(ifname, p->cfg->wifi_interface, sizeof(ifname));
	pthread_mutex_unlock(&p->cfg_lock);
	if (ifname[0]) {
		json_t *w = json_object();
		json_object_set_new(w, "interface", json_string(ifname));
		json_object_set_new(w, "available", json_boolean(ws.available));
		if (ws.have_proc) {
			json_object_set_new(w, "link_quality", json_integer(ws.proc.link_quality));
			if (ws.proc.have_signal)
				json_object_set_new(w, "signal_dbm", json_integer(ws.proc.signal_dbm));
			if (ws.proc.have_noise)
				json_object_set_new(w, "noise_dbm", json_integer(ws.proc.noise_dbm));
		}
		if (ws.have_station) {
			if (ws.sta.present & WIFI_STA_TX_BITRATE)
				json_object_set_new(w, "tx_bitrate_bps", json_integer((json_int_t)ws.sta.tx_bitrate_bps));
			if (ws.sta.present & WIFI_STA_EXPECTED_TPUT)
				json_object_set_new(w, "expected_throughput_bps",
						    json_integer((json_int_t)ws.sta.expected_throughput_bps));
			if (ws.sta.present & WIFI_STA_SIGNAL)
				json_object_set_new(w, "station_signal_dbm", json_integer(ws.sta.signal_dbm));
			if (ws.sta.present & WIFI_STA_TX_RETRIES)
				json_object_set_new(w, "tx_retries", json_integer(ws.sta.tx_retries));
			if (ws.sta.present & WIFI_STA_TX_FAILED)
				json_object_set_new(w, "tx_failed", json_integer(ws.sta.tx_failed));
		}
		json_object_set_new(link, "wifi", w);
	}
	pthread_mutex_lock(&p->link_lock);
	json_object_set_new(link, "idle_probe_ms", json_real((double)linkest_idle_probe_ns(p->link) / 1e6));
	pthread_mutex_unlock(&p->link_lock);
	json_object_set_new(root, "link", link);

	json_object_set_new(root, "power", power_json(p));

	char *text = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	json_decref(root);
	return text;
}
