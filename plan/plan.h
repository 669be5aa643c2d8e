/* The planner: predict latency and robot energy of every way to run one
 * inference — all-local, the received image (k = 0), every cut k with every
 * encoding, and banded (overlapped) cuts with B bands — and choose by policy,
 * with a re-plan threshold and hysteresis so the choice does not flap.
 *
 * Model (per candidate, all times ms):
 *   plain:  T = decode + L(k) + X + R(k) + net,  X = wire_bytes * 8 / bandwidth,
 *           net = rtt + return_bytes * 8 / bandwidth (the way back: the raw
 *           outputs, encoded, or a detector's detections; learnt from the
 *           answers, until then the caller's prediction)
 *   banded: the local part, the upload and the peer's row-local part up to its
 *           first barrier run as a 3-stage pipeline over B bands:
 *           T = decode + c + x + r + (B-1) * max(c, x, r) + R_rest + net
 *           with c = L/B + band overhead, x = X/B, r = R_band/B.
 *   energy: E = P_wait * T + (P_compute - P_wait) * local + (P_tx - P_wait) * X
 *           (= P_compute*local + P_tx*X + P_wait*(remote + net) when plain).
 * The overlap saving is bounded by (C + X + R_band - max(C, X, R_band)) *
 * (1 - 1/B), which is min(C, X) * (1 - 1/B) when the peer does not stream.
 *
 * plan_new takes arrays, not an engine (struct plan_model); plan_new_from_engine
 * is the one adapter from an engine to them, used by `splitd serve` and
 * `splitd plan` alike. plan/README.md says what lives where. */
#ifndef SPLITD_PLAN_H
#define SPLITD_PLAN_H

#include <stddef.h>
#include <stdint.h>

struct engine;

enum plan_policy { PLAN_POLICY_LATENCY, PLAN_POLICY_ENERGY, PLAN_POLICY_ENERGY_SLO };

/* Encodings of the cut tensors: dtype x codec, plus the received image. */
enum plan_dtype { PLAN_DTYPE_F32, PLAN_DTYPE_F16, PLAN_DTYPE_I8, PLAN_DTYPE_COUNT };
enum plan_codec { PLAN_CODEC_NONE, PLAN_CODEC_ZSTD, PLAN_CODEC_LZ4, PLAN_CODEC_COUNT };
#define PLAN_ENC_COUNT (PLAN_DTYPE_COUNT * PLAN_CODEC_COUNT)
#define PLAN_ENC_INPUT PLAN_ENC_COUNT	/* k = 0: the JPEG/PNG as received */
#define PLAN_ENC_LOCAL (PLAN_ENC_COUNT + 1)	/* all-local: nothing sent */
#define PLAN_ENC(dtype, codec) ((int)(dtype) * PLAN_CODEC_COUNT + (int)(codec))
#define PLAN_MAX_BANDS 64

enum plan_power_phase { PLAN_PHASE_COMPUTE, PLAN_PHASE_TX, PLAN_PHASE_WAIT, PLAN_PHASE_COUNT };

struct plan_model {		/* borrowed arrays; copied by plan_new */
	int n_nodes;
	const size_t *cut_bytes;	/* n_nodes + 1: float32 bytes live at cut k */
	const int *band_ok;		/* n_nodes: row-local node (NULL: none) */
	const double *local_node_ms;	/* n_nodes: robot profile */
	const double *peer_node_ms;	/* n_nodes: peer profile */
	int input_band_ok;		/* the inputs may travel in bands (cut 0) */
	/* (n_nodes + 1) x (PLAN_WAVE_STEPS + 1), or NULL: the share of the
	 * peer's row-local work after cut k it can do once i/PLAN_WAVE_STEPS
	 * of the cut's rows are in (engine_band_wave_frac); NULL assumes i/STEPS */
	const double *peer_wave;
};
#define PLAN_WAVE_STEPS 64

struct plan_config {
	enum plan_policy policy;
	double slo_ms;			/* PLAN_POLICY_ENERGY_SLO bound */
	unsigned enc_mask;		/* bit PLAN_ENC(d,c) allowed; 0 = f32/f16/i8 uncompressed */
	int max_bands;			/* banded candidates B = 2,4,.. <= this; <= 1 = off */
	int peer_streams;		/* peer computes bands as they arrive */
	double band_overhead_ms;	/* robot cost per extra band (framing, smaller kernels) */
	double band_overhead_frac;	/* and in proportion to the compute (row bookkeeping) */
	double codec_ns_per_byte[PLAN_CODEC_COUNT]; /* robot compression cost per raw byte */
	double power_default_mw[PLAN_PHASE_COUNT];
	double threshold;		/* re-plan when an input moved by more than this fraction */
	double hysteresis;		/* switch only if the new best is better by more than this */
	double ewma_alpha;		/* profile/power/ratio smoothing of observations */
	int power_min_samples;		/* before a learnt phase power replaces the default */
};
void plan_config_defaults(struct plan_config *c);

struct plan_inputs {		/* the link and request facts of this moment */
	double bandwidth_bps;		/* uplink goodput, bits/s */
	double rtt_ms;
	size_t input_bytes;		/* received JPEG/PNG size; 0 = no such option */
	double input_encode_ms;		/* robot: making that image (a raw frame as PNG); 0: received */
	size_t output_bytes;		/* reply size predicted by the caller (raw
					   outputs, encoded, or detections); 0: the
					   model's outputs at float32. A learnt
					   size replaces it (plan_request_facts). */
	double decode_ms;		/* robot: image decode + preprocessing (k > 0 only) */
	double peer_decode_ms;		/* peer: same, for k = 0 image */
};

struct plan_candidate {
	int cut;		/* 0..n_nodes; n_nodes = all-local */
	int enc;		/* PLAN_ENC(), PLAN_ENC_INPUT or PLAN_ENC_LOCAL */
	int bands;		/* 1 = layer split */
	size_t raw_bytes, wire_bytes;
	size_t return_bytes;	/* the peer's answer (0: all-local) */
	double local_ms, transfer_ms, remote_ms, net_ms, total_ms;
	double energy_uj;
	double overlap_saving_ms, overlap_bound_ms;	/* banded: vs B = 1 */
	int ratio_assumed;	/* compressed size is not learnt yet */
	int meets_slo;
};

struct plan;

int plan_new(const struct plan_model *m, const struct plan_config *c, struct plan **out);
/* The adapter (plan_engine.c): the model's facts from the engine — node
 * count, cut sizes, row-local nodes, whether the inputs may travel in
 * bands, the peer's wavefront table — and the two profiles from the caller
 * (engine_num_nodes entries each: local_ms as profiled here, peer_ms
 * measured or assumed). */
int plan_new_from_engine(const struct engine *e, const double *local_ms, const double *peer_ms,
			 const struct plan_config *c, struct plan **out);
void plan_free(struct plan *p);
int plan_set_config(struct plan *p, const struct plan_config *c);
void plan_get_config(const struct plan *p, struct plan_config *out);
int plan_n_nodes(const struct plan *p);

/* What one served request measured, for plan_learn: times in ms, < 0 where
 * not measured (plan_run_init sets every one so), sizes 0 where none. */
struct plan_run {
	int cut, enc, bands;
	int offloaded;			/* the peer's answer was used */
	double local_ms;		/* plain runs: nodes [0, cut) here */
	double banded_ms;		/* banded runs: decode to answer */
	double peer_compute_ms;		/* the peer's compute of [cut, n) */
	double peer_decode_ms;		/* the peer's decode of the image (cut 0 input) */
	size_t raw_bytes, wire_bytes;	/* the cut tensors before and after encoding */
	double decode_ms;		/* the robot's decode + preprocessing */
	size_t image_bytes;		/* the received JPEG/PNG; 0 for a tensor */
	size_t reply_bytes;		/* the peer's answer as it came back; 0: none */
	double power_mw[PLAN_PHASE_COUNT];	/* the robot's power in each phase */
};
void plan_run_init(struct plan_run *r, int cut, int enc, int bands);
/* Learn everything r measured (the observe_* calls below, the decode
 * times and the image size); in: the inputs the request was planned
 * with (a banded run is judged against the plain cut under them). */
int plan_learn(struct plan *p, const struct plan_inputs *in, const struct plan_run *r);
/* The request facts learnt so far into in: input_bytes, output_bytes (once
 * an answer came back; the caller's prediction stands until then), decode_ms,
 * peer_decode_ms (until the peer's own is known, ours scaled by its speed);
 * the link fields are the caller's. */
void plan_request_facts(const struct plan *p, struct plan_inputs *in);
/* The peer ran the whole model in whole_ms: its per-node profile becomes
 * plan_new's local profile scaled to that total, the ratio is its speed. */
int plan_calibrate_peer(struct plan *p, double whole_ms);
double plan_peer_speed(const struct plan *p);
/* The link as last measured (bandwidth_bps <= 0 or rtt_ms < 0: not that
 * one), remembered so a restart plans with it until it measures again;
 * plan_link: -ENOENT for what was never noted. */
void plan_note_link(struct plan *p, double bandwidth_bps, double rtt_ms);
int plan_link_bandwidth(const struct plan *p, double *bandwidth_bps);
int plan_link_rtt(const struct plan *p, double *rtt_ms);
/* Bumped by everything learnt: a saver compares it with what it wrote. */
uint64_t plan_generation(const struct plan *p);
uint64_t plan_runs_learnt(const struct plan *p);

/* Learning from live requests (EWMA with config.ewma_alpha). */
int plan_observe_local(struct plan *p, int first, int last, double measured_ms);
int plan_observe_remote(struct plan *p, int first, int last, double measured_ms);
int plan_set_peer_profile(struct plan *p, const double *node_ms, int n);
int plan_observe_power(struct plan *p, enum plan_power_phase ph, double power_mw);
int plan_observe_ratio(struct plan *p, int cut, int enc, size_t raw_bytes, size_t wire_bytes);
/* A banded request took measured_ms (decode to answer): the share of the
 * modelled overlap saving it achieved, against the plain cut under in,
 * updates the efficiency that predictions of this (cut, B) are scaled by,
 * and the one of B that pairs not yet run use (clamped to [0, 1.5]; 1
 * until the first). A robot that cannot send
 * while computing (one throttled core), or whose kernels lose too much on
 * B small bands, learns a low one, and the plan leaves those cuts. */
int plan_observe_banded(struct plan *p, const struct plan_inputs *in, int cut, int enc, int bands,
			double measured_ms);
/* B's efficiency (what (cut, B) pairs not yet run use). */
double plan_band_efficiency(const struct plan *p, int bands, int *samples);
/* Phase power in use; *learnt 0 = the configured default. */
double plan_power_mw(const struct plan *p, enum plan_power_phase ph, int *learnt);

/* Predict one candidate (bands >= 1). -EINVAL if not legal (banded across a
 * barrier, encoding masked, k = 0 image without input_bytes, ...). */
int plan_predict(const struct plan *p, const struct plan_inputs *in, int cut, int enc,
		 int bands, struct plan_candidate *out);
/* Every legal candidate; *out is malloc'ed, caller frees. best = index chosen
 * by the policy (stateless, no hysteresis). */
int plan_enumerate(const struct plan *p, const struct plan_inputs *in,
		   struct plan_candidate **out, int *n, int *best);
/* A banded cut is legal only if nodes [0, k) are all band_ok. */
int plan_band_legal(const struct plan *p, int cut);

/* The stateful decision: re-evaluates when the inputs or profiles moved
 * beyond config.threshold since the last decision (or force), and switches
 * only when the new best beats the current by more than config.hysteresis
 * (or the current breaks the SLO). Returns 1 when the plan changed (reason,
 * one line, filled), 0 when kept, negative errno on error. */
int plan_update(struct plan *p, const struct plan_inputs *in, int force,
		char *reason, size_t reasonlen);
/* The current choice; -ENOENT before the first plan_update. */
int plan_current(const struct plan *p, struct plan_candidate *out);
/* One request's choice under pol (stateless, no hysteresis: what
 * plan_enumerate's best would be under that policy); slo_ms bounds
 * PLAN_POLICY_ENERGY_SLO (-EINVAL when it is not > 0); when no candidate
 * meets it, the fastest. -ENOENT when no candidate is legal. */
int plan_choose(const struct plan *p, const struct plan_inputs *in, enum plan_policy pol,
		double slo_ms, struct plan_candidate *out);
/* "cut 12 f16 x4 bands", "cut 0 input", "all-local": for STATUS= and logs. */
void plan_describe(const struct plan_candidate *c, int n_nodes, char *buf, size_t len);

/* "latency", "energy", "energy-slo"; plan_policy_parse also takes
 * "energy_slo" (the config's spelling) and "slo" (?policy=slo). */
#define PLAN_POLICY_NAMES "latency, energy, slo (also energy_slo or energy-slo)"
const char *plan_policy_name(enum plan_policy pol);
int plan_policy_parse(const char *s, enum plan_policy *out);

/* The learnt state on disk (plan_state.c), per model and peer: the peer's
 * profile and speed, the link, phase powers, compression ratios, banded
 * efficiencies and request facts, as one JSON document. Written whole to
 * a temporary file in the same directory, fsync'ed and renamed over the
 * old one, so a crash leaves the old file or the new, never a mix. Read
 * back with validation: a file that is not JSON, is cut short, or belongs
 * to another model, peer or format version is refused whole (err names
 * the reason), and the plan is left as it was. */
struct plan_state_id {
	const char *model_sha256;	/* hex */
	const char *peer;		/* the peer's URL */
};
#define PLAN_STATE_VERSION 1
/* The state as JSON text (malloc'ed); cheap, for under the caller's lock. */
int plan_state_dump(const struct plan *p, const struct plan_state_id *id, char **out);
/* Write text to path atomically (temporary file, fsync, rename, fsync of
 * the directory). */
int plan_state_write(const char *path, const char *text, char *err, size_t errlen);
/* Validate text and take what it holds into p; nothing taken on error. */
int plan_state_apply(struct plan *p, const struct plan_state_id *id, const char *text,
		     char *err, size_t errlen);
/* dump + write, and read + apply: -ENOENT when path does not exist. */
int plan_state_save(const struct plan *p, const struct plan_state_id *id, const char *path,
		    char *err, size_t errlen);
int plan_state_load(struct plan *p, const struct plan_state_id *id, const char *path,
		    char *err, size_t errlen);
/* "f32", "f16+zstd", "input", "local"; plan_enc_parse is its inverse. */
const char *plan_enc_name(int enc);
int plan_enc_parse(const char *s, int *enc);

#endif
