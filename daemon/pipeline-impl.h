/* Internals of the request pipeline (pipeline.c and the pipe_*.c files of
 * its strategies, pipeline_report.c): the models, the worker queue, the peer
 * link and the planner state of one running `splitd serve`. Not a public
 * header. */
#ifndef SPLITD_PIPELINE_IMPL_H
#define SPLITD_PIPELINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "config.h"
#include "engine.h"
#include "link.h"
#include "linkest.h"
#include "peer_client.h"
#include "pipe_request.h"
#include "pipe_plan.h"
#include "plan.h"
#include "post.h"
#include "power.h"
#include "wifi.h"

#define PIPE_MAX_WORKERS 8
#define PIPE_HIST_BUCKETS 14

enum pipe_placement { PIPE_LOCAL, PIPE_SPLIT, PIPE_OFFLOAD, PIPE_FALLBACK, PIPE_PLACEMENTS };

/* A Prometheus histogram with fixed bounds; updated under the model lock. */
struct pipe_hist {
	const double *bounds;		/* PIPE_HIST_BUCKETS, ascending */
	uint64_t counts[PIPE_HIST_BUCKETS + 1];
	double sum;
};

struct pipe_model {
	struct pipeline *pipe;
	char name[64];
	char path[CONFIG_PATH_MAX];
	struct config_model conf;	/* as loaded (a failover reloads it) */
	/* Workers hold eng_lock shared while they run a request; a failover
	 * to the CPU (pipe_model_failover) holds it exclusive. The engine it
	 * replaces stays allocated (eng_retired) until the model is freed:
	 * in_meta/out_meta name its values, and HTTP threads read them. */
	struct engine *_Atomic eng;
	struct engine *eng_retired;
	pthread_rwlock_t eng_lock;
	int n_nodes;
	struct api_model api;
	struct api_tensor_meta *in_meta, *out_meta;
	struct api_preprocess pp;
	char params_json[160];		/* v2 metadata: our model identity */
	bool has_pp;
	char **labels;
	int n_labels, top_k;
	/* post-processing (pipe_post.c): the configured head, checked against
	 * output 0 (detects: a detector head; post_classes its C) */
	struct post_params post;
	bool detects;
	int post_classes;
	/* a detector's v2 metadata: boxes, scores, classes (keypoints), then
	 * the raw outputs a request may still name */
	struct api_tensor_meta *listed_meta;
	struct link_encoding output_enc;	/* raw outputs from the peer */
	double *local_ms;		/* start-up profile, n_nodes */

	/* offload (robot role with a peer) */
	struct peer_client *peer;	/* the real link's client, or NULL */
	struct pipe_link link;		/* ops NULL: no peer */
	struct plan *plan;		/* under lock */
	bool calibrated;		/* the peer's whole-model time is known */
	struct engine_ctx *wctx[PIPE_MAX_WORKERS];	/* one per worker */
	/* the last banded run of each worker (its buffers stay allocated) */
	struct engine_band *wband[PIPE_MAX_WORKERS];
	int wband_first[PIPE_MAX_WORKERS], wband_cut[PIPE_MAX_WORKERS], wband_bands[PIPE_MAX_WORKERS];
	/* peer role: engine_band_reach(cut) + 1 per cut, 0 = not yet asked */
	_Atomic int *band_reach;

	pthread_mutex_t lock;		/* plan, histograms */
	uint64_t probes_seen;		/* the peer client's health probes fed to the link */
	_Atomic uint64_t explorations;	/* requests run at an offload candidate to measure the link */
	char plan_text[96];
	/* daemon.state_dir (pipe_plan.c) */
	uint64_t state_gen, state_saved_ns;	/* what was written, when; under lock */
	bool state_restored;
	atomic_bool state_busy;		/* a worker is writing it */
	int state_errno;		/* the last write's failure (warned once) */
	struct pipe_hist duration_s, energy_j, detections;

	_Atomic uint64_t requests[PIPE_PLACEMENTS];
	_Atomic uint64_t failures;
	_Atomic uint64_t fallbacks;
	_Atomic uint64_t plan_changes;
	_Atomic int current_cut;
};

struct pipeline {
	struct config *cfg;		/* own copy; reloadable keys swapped under cfg_lock */
	pthread_mutex_t cfg_lock;
	uint64_t start_ns;

	struct power_sampler *power;
	char power_reason[320];		/* why there is no energy */
	struct linkest *link;		/* under link_lock */
	pthread_mutex_t link_lock;
	struct wifi *wifi;
	struct wifi_stats wifi_last;	/* under link_lock */
	uint64_t wifi_read_ns;

	struct pipe_model *models;
	int n_models;

	struct api_server *api;
	atomic_bool quiescing;
	struct pipe_ros2 *ros2;		/* ROS 2 topics (pipe_ros2.c), or NULL */

	/* the worker queue */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct pipe_request *queue;
	int qcap, qhead, qlen;
	bool stopping;
	pthread_t workers[PIPE_MAX_WORKERS];
	int n_workers, n_started;	/* worker threads: to run, running */
	_Atomic unsigned busy;

	_Atomic uint64_t peer_requests_served;

	/* the compute backend: what backend = auto (or the name) resolved to,
	 * and once it reported itself unhealthy, the CPU in its place */
	char backend[16];
	char backend_why[160];		/* how it was chosen */
	char backend_down[16];		/* "" or the backend taken out of service */
	_Atomic uint64_t backend_failovers;
};

/* pipe_outputs.c: the outputs of one inference, views borrowed from an
 * engine context or decoded from the peer's answer into owned buffers.
 * _fini is idempotent and the _from_ functions release what the struct
 * held first and hold nothing after a failure, so any sequence of them
 * frees each buffer once. */
#define PIPE_MAX_OUTPUTS 64
struct pipe_outputs {
	int n;
	struct api_v1_output out[PIPE_MAX_OUTPUTS];
	struct tensor_view views[PIPE_MAX_OUTPUTS];
	void *owned[PIPE_MAX_OUTPUTS];	/* NULL: borrowed or unused */
};
void pipe_outputs_fini(struct pipe_outputs *o);
/* The n outputs meta names, as the context holds them. */
int pipe_outputs_from_ctx(struct pipe_outputs *o, struct engine_ctx *ctx, const struct api_tensor_meta *meta,
			  int n);
/* The n outputs meta names, decoded from the peer's answer; each must have
 * exactly meta's dtype and shape (-EBADMSG with err set otherwise). */
int pipe_outputs_from_reply(struct pipe_outputs *o, const struct peer_reply *rep,
			    const struct api_tensor_meta *meta, int n, char *err, size_t errlen);
/* NaN and infinite values in the floating outputs. */
int64_t pipe_outputs_nonfinite(const struct pipe_outputs *o);

#define PIPE_ERRLEN 256
/* The band limit is the wire's, PEER_MAX_BANDS (link/peer_proto.h); plan/
 * cannot see link/ and sizes its tables by its own PLAN_MAX_BANDS, so the
 * two meet here, the one place that includes both. */
_Static_assert(PLAN_MAX_BANDS == PEER_MAX_BANDS, "plan/ and link/ must agree on the band limit");

/* One request's trip over the link (pipe_split.c, pipe_image.c,
 * pipe_banded.c). */
struct pipe_offload {
	struct peer_reply reply;
	bool have_reply;
	bool infer_failed;		/* the link's send returned an error (it
					   counted the peer's fallback itself) */
	uint64_t send_ns;		/* when the request left */
	size_t raw_bytes, wire_bytes;
	/* set before sending: the detections asked of the peer (kind "": the
	 * raw outputs, encoded as output_enc) */
	struct peer_post post;
	struct link_encoding output_enc;
};

/* A banded offload's timeline (pipe_banded.c). */
struct pipe_banded {
	struct api_v1_band tl[PEER_MAX_BANDS];
	uint64_t local_ns;		/* the band run, encoding included */
	int computed;			/* the cut is in ctx (else run 0..cut for a fallback) */
};

/* One v1 request on the robot, from its choice of placement to its answer
 * (pipe_v1.c drives it through the strategies). */
struct pipe_v1 {
	struct pipe_model *m;
	int worker;
	struct engine_ctx *ctx;
	const struct pipe_request *req;
	const struct tensor_view *input;	/* NULL until decoded */
	char id[32];
	int cut, enc, bands;
	bool need_input, decoded, offloaded;
	int fallback, local_nodes;
	char fb_reason[PIPE_ERRLEN];
	struct pipe_outputs outs;
	/* a detector's answer (pipe_post.c): decoded here or by the peer */
	struct post_result det;
	bool have_det;
	uint64_t post_ns;		/* decode + NMS here */
	struct pipe_offload of;
	struct pipe_banded bd;
	uint64_t t_deq, decode_ns, t_local0, t_local1, tail_ns, t_end;
	bool have_energy;
	uint64_t energy_id;
	struct power_request pr;
	int status;			/* of an error */
	char err[PIPE_ERRLEN];
};

/* pipe_post.c: post-processing. The model's head checked against output 0
 * at load (-EINVAL, logged with both shapes, when it does not fit). */
int pipe_post_setup(struct pipe_model *m, const struct config_model *cm);
/* Robot: the post-processing to ask of the peer. */
void pipe_post_ask(const struct pipe_model *m, struct peer_post *out);
/* Peer: what a robot asked (kind "": none, out->kind POST_NONE), checked
 * against the model's output 0; -EINVAL with err (a 400). */
int pipe_post_asked(const struct pipe_model *m, const struct peer_post *pp, struct post_params *out,
		    char *err, size_t errlen);
/* Peer: the detections as the answer's tensors (outs: 3, or 4 with
 * keypoints, in *n), buffers in w (keypoints borrowed from r). */
struct pipe_post_wire {
	float *boxes, *scores;
	int32_t *classes;
};
int pipe_post_wire(const struct post_result *r, struct pipe_post_wire *w, struct peer_tensor *outs, int *n);
void pipe_post_wire_fini(struct pipe_post_wire *w);
/* Robot: the peer's detections, checked (-EBADMSG with err). */
int pipe_post_from_reply(const struct pipe_model *m, const struct peer_reply *rep, struct post_result *r,
			 char *err, size_t errlen);
/* Robot: the fit of a src_width x src_height image into the model's input
 * (all 0 when the model takes no image). */
void pipe_post_fit(const struct pipe_model *m, int src_width, int src_height, struct post_fit *fit);
/* Robot: a v1 request's detections (decoded here unless the peer did),
 * mapped to the original image's pixels and labelled; 0 for a model without
 * a detector head. -errno with v->status and v->err. */
int pipe_post_v1(struct pipe_v1 *v);
/* Robot: boxes to the original pixels, labels set. */
void pipe_post_finish(const struct pipe_model *m, struct post_result *r, const struct post_fit *fit);
extern const double pipe_detections_bounds[PIPE_HIST_BUCKETS];
/* The peer's answer predicted before one came: a detector's detections at
 * max_detections (an upper bound), else the outputs as output_encoding
 * sends them (compression not counted), and a JSON header. */
size_t pipe_post_return_bytes(const struct pipe_model *m);

/* pipe_run.c: a worker runs one request; a backend that reports itself
 * unhealthy is taken out of service and the request runs again on the CPU. */
void pipe_run(struct pipeline *p, int worker, struct pipe_request *req);
/* pipe_v1.c: 0 when answered, else -errno with v->status and v->err. */
int pipe_v1_run(struct pipe_v1 *v);
void pipe_v1_fini(struct pipe_v1 *v);
/* The input in ctx (decoding a received image first when needed). */
int pipe_v1_input(struct pipe_v1 *v);
/* pipe_choose.c: the request's placement (query options, else the plan). */
int pipe_choose(struct pipe_model *m, const struct pipe_request *rq, int *cut, int *enc, int *bands,
		char *err, size_t errlen);
/* pipe_local.c: nodes [0, cut) of a v1 request here; a plain v2 request
 * (the whole model). 0, or -errno with *status and err set. */
int pipe_local_head(struct pipe_v1 *v);
int pipe_local_v2(struct pipe_model *m, int worker, const struct pipe_request *rq, int *status,
		  char *err, size_t errlen);
/* pipe_split.c: the cut tensors in ctx, encoded, to the peer; and the one
 * send both it and the image offload use. */
int pipe_split_send(struct pipe_model *m, struct engine_ctx *ctx, int cut, int enc, const char *id,
		    struct pipe_offload *of, char *err, size_t errlen);
int pipe_link_request(struct pipe_model *m, int cut, const char *id, const struct peer_tensor *pts, int n,
		      struct pipe_offload *of, char *err, size_t errlen);
/* The planner's encoding index and the wire's encoding type, both ways
 * (pipe_split.c: the one place the two meet). */
struct link_encoding pipe_enc_link(int plan_enc);
int pipe_enc_plan(const struct link_encoding *e);
int64_t pipe_request_timeout_ms(struct pipeline *p);
/* The encoding to ask for the peer's raw outputs; NULL: plain f32 (or
 * detections asked). */
const struct link_encoding *pipe_output_enc(const struct pipe_offload *of);
/* pipe_image.c: the received image, as is, to the peer (cut 0). */
int pipe_image_send(struct pipe_model *m, const struct pipe_request *rq, const char *id,
		    struct pipe_offload *of, char *err, size_t errlen);
/* pipe_banded.c: nodes [0, cut) as bands, each streamed as it is done. */
int pipe_banded_send(struct pipe_model *m, int worker, int cut, int enc, int bands, int no_wavefront,
		     const char *id, uint64_t t_origin, struct pipe_offload *of, struct pipe_banded *bd,
		     char *err, size_t errlen);
/* The worker's band state for [first, last) in `bands` bands (kept). */
int pipe_worker_band(struct pipe_model *m, int worker, int first, int last, int bands,
		     struct engine_band **out, char *err, size_t errlen);
/* pipe_fallback.c: the peer failed with r (why in perr): finish here. */
int pipe_fallback(struct pipe_v1 *v, int r, const char *perr, int64_t peer_nonfinite);
/* pipe_tail.c: the peer's side of a robot's split request. */
int pipe_tail(struct pipe_model *m, int worker, const struct pipe_request *rq, int64_t cut, int *status,
	      char *err, size_t errlen);
/* pipe_learn.c: what the planner learns, and the plan of the moment. */
void pipe_learn(const struct pipe_v1 *v, size_t image_bytes);
int pipe_explore(struct pipe_model *m, bool image, struct plan_candidate *pick);
void pipe_tensor_candidate(struct pipe_model *m, size_t png_bytes, double png_ms, struct plan_candidate *pick);
int pipe_calibrate(struct pipe_model *m, int worker);
/* pipe_model.c: load, free, and the failover to the CPU. */
int pipe_model_load(struct pipeline *p, struct pipe_model *m, const struct config_model *cm);
void pipe_model_free(struct pipe_model *m);
/* The offload state of a model with a link (the planner's model of it). */
int pipe_model_offload_init(struct pipe_model *m, struct pipe_link link);
/* The model's engine reloaded on the CPU backend (eng_lock held exclusive
 * inside); 0 also when it already runs there. */
int pipe_model_failover(struct pipe_model *m, const char *why);
/* The end of the row-local range from cut (engine_band_reach), cached. */
int pipe_band_reach(struct pipe_model *m, int cut);
/* pipeline.c: the pipeline without its threads and server (the
 * configuration, power, link estimate and models; tests build one so).
 * backend: the compute backend's name, NULL: the configuration's. */
int pipe_new(const struct config *cfg, const char *backend, struct pipeline **out);
void pipe_free(struct pipeline *p);
/* pipe_api.c: the HTTP layer's handlers, building pipe_requests. */
extern const struct api_handlers pipe_api_handlers;
int pipe_enqueue(struct pipeline *p, const struct pipe_request *req);

/* pipe_ros2.c: the [ros2.NAME] subscriptions and their result topics
 * (nothing, *out NULL, when none is configured); freed once the workers
 * have stopped. */
struct pipe_ros2;
int pipe_ros2_start(struct pipeline *p, struct pipe_ros2 **out);
void pipe_ros2_free(struct pipe_ros2 *br);
int pipe_ros2_metrics(const struct pipe_ros2 *br, struct api_metrics *mx);
/* "ros2 2 topics, 40 frames, 31 answered" for STATUS=; "" when none. */
void pipe_ros2_status(const struct pipe_ros2 *br, char *buf, size_t len);

/* pipeline_report.c */
/* The answer to a v1 request that ran: outputs, placement, timing and
 * energy; counted, and observed in the histograms. */
int pipe_v1_answer(struct pipe_v1 *v);
int pipe_metrics(void *ctx, struct api_metrics *mx);
/* GET /v1/status: the JSON text (malloc'd; NULL: out of memory). */
char *pipe_status_json(struct pipeline *p, bool explain);
void pipe_hist_observe(struct pipe_hist *h, double v);
extern const double pipe_duration_bounds[PIPE_HIST_BUCKETS];
extern const double pipe_energy_bounds[PIPE_HIST_BUCKETS];

/* The pipeline's clock is link_now_ns (link.h): daemon/ has one clock,
 * the one every time the link measures is taken on. */

/* The planner's settings from the config (pipeline.c). */
void pipe_plan_config_from(const struct config *cfg, struct plan_config *pc);
/* pipeline_reload.c: the bearer token (api.token, or the first line of
 * api.token_file) as a new string, NULL when neither is set. */
int pipe_token_read(const struct config *cfg, char **out, char *err, size_t errlen);

#endif
