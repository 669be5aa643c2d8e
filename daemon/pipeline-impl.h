/* Internals of the request pipeline (pipeline.c, pipeline_infer.c,
 * pipeline_report.c): the models, the worker queue, the peer link and the
 * planner state of one running `splitd serve`. Not a public header. */
#ifndef SPLITD_PIPELINE_IMPL_H
#define SPLITD_PIPELINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "api.h"
#include "config.h"
#include "engine.h"
#include "linkest.h"
#include "peer_client.h"
#include "pipe_plan.h"
#include "plan.h"
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
	struct engine *eng;
	int n_nodes;
	struct api_model api;
	struct api_tensor_meta *in_meta, *out_meta;
	struct api_preprocess pp;
	char params_json[160];		/* v2 metadata: our model identity */
	bool has_pp;
	char **labels;
	int n_labels, top_k;
	double *local_ms;		/* start-up profile, n_nodes */

	/* offload (robot role with a peer) */
	struct peer_client *peer;
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
	struct pipe_hist duration_s, energy_j;

	_Atomic uint64_t requests[PIPE_PLACEMENTS];
	_Atomic uint64_t failures;
	_Atomic uint64_t fallbacks;
	_Atomic uint64_t plan_changes;
	_Atomic int current_cut;
};

enum pipe_job_kind { PIPE_JOB_V1, PIPE_JOB_V2 };

struct pipe_job {
	enum pipe_job_kind kind;
	struct api_call *call;
	const struct api_v1_request *v1;
	const struct api_v2_request *v2;
	struct pipe_model *model;
	uint64_t enqueued_ns;
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

	/* the worker queue */
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct pipe_job *queue;
	int qcap, qhead, qlen;
	bool stopping;
	pthread_t workers[PIPE_MAX_WORKERS];
	int n_workers;
	_Atomic unsigned busy;

	_Atomic uint64_t peer_requests_served;
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

/* pipeline_infer.c */
void pipe_run_job(struct pipeline *p, int worker, struct pipe_job *job);
int pipe_calibrate(struct pipe_model *m, int worker);
/* The end of the row-local range from cut (engine_band_reach), cached. */
int pipe_band_reach(struct pipe_model *m, int cut);

/* pipeline_report.c */
int pipe_metrics(void *ctx, struct api_metrics *mx);
void pipe_status(void *ctx, struct api_call *call);
void pipe_hist_observe(struct pipe_hist *h, double v);
extern const double pipe_duration_bounds[PIPE_HIST_BUCKETS];
extern const double pipe_energy_bounds[PIPE_HIST_BUCKETS];

uint64_t pipe_now_ns(void);

#endif
