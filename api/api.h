/* splitd's HTTP API: a libmicrohttpd server, the request parsers (KServe v2
 * JSON + binary tensors, npy, JPEG/PNG with per-model preprocessing), the
 * response builders and a Prometheus exposition writer. It never runs
 * inference: daemon/ fills struct api_handlers and answers each call.
 *
 * Functions return 0 or a negative errno; parsers fill err (a sentence). */
#ifndef SPLITD_API_H
#define SPLITD_API_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"
#include "detection.h"

struct api_server;
struct api_call;	/* one HTTP request awaiting its answer */
struct api_params;	/* a parsed JSON "parameters" object */
struct api_metrics;	/* a /metrics exposition being written */

/* ---- per-model description the daemon hands out -------------------- */

enum api_resize { API_RESIZE_STRETCH, API_RESIZE_LETTERBOX };

/* Image -> float32 tensor: resize (bilinear, half-pixel centres), then
 * value = (pixel * scale - mean[c]) / std[c], channel order, layout. */
struct api_preprocess {
	int width, height;		/* model input size */
	enum api_resize resize;
	float pad_value;		/* letterbox fill, 0..255 (e.g. 114) */
	float scale;			/* e.g. 1/255.0; 0 means 1 */
	float mean[3], std[3];		/* std 0 means 1 */
	int bgr;			/* channel order BGR instead of RGB */
	int nhwc;			/* layout [1,H,W,3] instead of [1,3,H,W] */
	int64_t max_pixels;		/* refuse larger images; 0 = 40 Mpx */
};

/* Where the image landed in the input (to map boxes back): resized to
 * resized_width x resized_height (the whole input for a stretch) at
 * (pad_x, pad_y). */
struct api_image_info {
	int src_width, src_height;
	float scale;			/* input px per source px (x) */
	int pad_x, pad_y;		/* left, top padding in input px */
	int resized_width, resized_height;
};

struct api_tensor_meta {
	const char *name;
	enum tensor_dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];	/* -1 = dynamic */
};

struct api_model {
	const char *name;		/* canonical name (file name sans .onnx) */
	const char *version;		/* NULL = "1" */
	const char *platform;		/* NULL = "onnx" */
	const struct api_tensor_meta *inputs, *outputs;
	int n_inputs, n_outputs;
	/* GET /v2/models/{name} "outputs" where an infer answers other
	 * tensors than the graph's (a detector's boxes, scores, ...): NULL
	 * lists outputs */
	const struct api_tensor_meta *listed_outputs;
	int n_listed_outputs;
	const struct api_preprocess *preprocess; /* NULL: no image input */
	int lazy_decode;		/* v1: don't decode before the handler
					   (see api_call_decode) */
	const char *params_json;	/* GET /v2/models/{name} "parameters":
					   a JSON object text, or NULL */
	void *user;			/* daemon's own model pointer */
};

/* ---- requests handed to the daemon --------------------------------- */

enum api_body_kind { API_BODY_JPEG, API_BODY_PNG, API_BODY_NPY };

struct api_v1_request {
	const struct api_model *model;	/* resolved; never NULL */
	enum api_body_kind kind;
	const char *content_type;
	const void *body;		/* raw body (e.g. forward JPEG as is) */
	size_t body_len;
	const struct tensor_view *input; /* decoded, or NULL when lazy */
	struct api_image_info image;	/* for JPEG/PNG once decoded */
	int cut;			/* ?cut=K, -1 = planner's choice */
	int bands;			/* ?bands=B, 0 = planner's choice */
	int no_wavefront;		/* ?wavefront=0: the peer waits for the whole
					   banded body (an experiment's control) */
	const char *encoding;		/* ?encoding=E, NULL = planner's */
	const char *policy;		/* ?policy=P, NULL = default */
	int outputs_none;		/* ?outputs=none */
	int outputs_raw;		/* ?outputs=raw (a detector's tensors too) */
	uint64_t received_ns;		/* CLOCK_MONOTONIC: body complete */
	uint64_t decode_ns;		/* time spent decoding the body */
};

/* One tensor of a v2 request (inputs) or response (outputs). data is the raw
 * bytes as they came (binary section, or JSON data packed little-endian; for
 * BYTES 4-byte length prefixes): they may be encoded or compressed as the
 * params say, so data_len need not match the shape. */
struct api_v2_tensor {
	const char *name;
	const char *datatype;		/* "FP32", "BYTES", ... as sent */
	enum tensor_dtype dtype;	/* TENSOR_UNDEFINED for BYTES */
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	const void *data;
	size_t data_len;
	int binary;			/* parse: came binary; build: send so */
	const struct api_params *params; /* parse: its "parameters"; or NULL */
	const char *params_json;	/* build: a JSON object text, or NULL */
};

struct api_v2_output_req {		/* a request's "outputs" entry */
	const char *name;
	int binary;			/* parameters.binary_data */
	const struct api_params *params;
};

struct api_v2_message {
	const char *id;			/* may be NULL */
	const char *model_name, *model_version;	/* response only */
	const struct api_params *params;	/* parse: request/response "parameters" */
	const char *params_json;	/* build: JSON object text, or NULL */
	struct api_v2_tensor *tensors;	/* inputs (request) / outputs (response) */
	int n_tensors;
	struct api_v2_output_req *outputs;	/* request only */
	int n_outputs;
	int binary_data_output;		/* request parameters.binary_data_output */
};

enum api_v2_kind { API_V2_REQUEST, API_V2_RESPONSE };

/* Parse a v2 body. header_len: Inference-Header-Content-Length, or 0 when
 * the whole body is JSON. Binary tensor data points into body (keep it). */
int api_v2_parse(enum api_v2_kind kind, const void *body, size_t len,
		 size_t header_len, struct api_v2_message **out,
		 char *err, size_t errlen);
/* Parse only the JSON header of a v2 body whose binary part is still to
 * come: tensors' data point into `binary` at their offsets (NULL when
 * binary is NULL: only counting), not copied; *binary_len is the binary
 * part's size the header announces, refused past max_binary. */
int api_v2_parse_header(enum api_v2_kind kind, const void *header, size_t header_len,
			const void *binary, size_t max_binary, struct api_v2_message **out,
			size_t *binary_len, char *err, size_t errlen);
void api_v2_message_free(struct api_v2_message *m);
/* Build a v2 body; *header_len < *len when some tensor is binary. */
int api_v2_build(enum api_v2_kind kind, const struct api_v2_message *m,
		 char **body, size_t *len, size_t *header_len);
/* Only its JSON header (the binary tensors' bytes follow it in order, not
 * copied: a sender hands them out from where they lie). */
int api_v2_build_header(enum api_v2_kind kind, const struct api_v2_message *m,
			char **header, size_t *header_len);
/* A plain (unencoded) tensor as a view into t->data: dtype known, shape
 * bounded, data_len == numel * size; optionally checked against meta. */
int api_v2_tensor_view(const struct api_v2_tensor *t,
		       const struct api_tensor_meta *meta,
		       struct tensor_view *out, char *err, size_t errlen);

/* "parameters" accessors: 0, -ENOENT (absent) or -EINVAL (wrong type). */
int api_params_int(const struct api_params *p, const char *key, int64_t *out);
int api_params_double(const struct api_params *p, const char *key, double *out);
/* An array of at most max integers into out, its length in *n. */
int api_params_int_array(const struct api_params *p, const char *key, int64_t *out, int max, int *n);
int api_params_string(const struct api_params *p, const char *key, const char **out);
int api_params_bool(const struct api_params *p, const char *key, int *out);

struct api_v2_request {
	const struct api_model *model;
	const struct api_v2_message *msg;
	uint64_t received_ns;		/* body complete; streamed: header complete */
	int streamed;			/* the binary part is still arriving:
					   api_call_body_wait before reading it */
};

/* ---- the handler table --------------------------------------------- */

/* Every call-taking handler must answer exactly once, with api_call_respond
 * or api_call_error, from any thread, now or later (libmicrohttpd suspends
 * the connection meanwhile). req and call stay valid until it answers. */
struct api_handlers {
	void *ctx;
	/* name NULL = the default model. 0, or -ENOENT (404). Required. */
	int (*model)(void *ctx, const char *name, const struct api_model **out);
	/* 1 when ready: model NULL = server ready; may be NULL (ready) */
	int (*ready)(void *ctx, const struct api_model *model);
	void (*infer_v1)(void *ctx, struct api_call *call, const struct api_v1_request *req);
	void (*infer_v2)(void *ctx, struct api_call *call, const struct api_v2_request *req);
	/* Optional: asked on the connection's thread once a v2 request's JSON
	 * header is in while its binary part still arrives (req->msg's data
	 * not readable yet). 1: hand the call to infer_v2 now, streamed (the
	 * handler reads the bytes as they come with api_call_body_wait); 0:
	 * the usual way, once the body is complete. */
	int (*stream_v2)(void *ctx, const struct api_v2_request *req);
	void (*status)(void *ctx, struct api_call *call);	/* JSON */
	/* GET /metrics: write families into m (format chosen by Accept) */
	int (*metrics)(void *ctx, struct api_metrics *m);
};

void api_call_respond(struct api_call *call, int status, const char *content_type,
		      void *body, size_t len);	/* takes body (malloc'd) */
void api_call_error(struct api_call *call, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A streamed v2 call (api_v2_request.streamed): block until at least
 * `bytes` bytes of the binary part are in; *have (may be NULL) gets how many
 * are. 0; or, with a sentence in err: -ECONNRESET when the client went away,
 * -EPIPE when the body ended short, -EMSGSIZE when it ran past what its
 * header announced (the call must still be answered). Other calls: their
 * body is complete, so 0 when it holds `bytes`, else -EPIPE. */
int api_call_body_wait(struct api_call *call, size_t bytes, size_t *have, char *err, size_t errlen);
/* A streamed call: wait until the upload ended; 0 when the body was exactly
 * what its header announced, else as api_call_body_wait. Other calls: 0. */
int api_call_body_end(struct api_call *call, char *err, size_t errlen);
/* A streamed call: when (CLOCK_MONOTONIC ns) the binary part first held
 * `bytes` bytes; 0 when not yet, or not recorded (past the first 1024
 * pieces of the upload). */
uint64_t api_call_body_arrival(struct api_call *call, size_t bytes);
/* Extra response header, before answering (copied; up to 8). */
int api_call_header(struct api_call *call, const char *name, const char *value);
/* Any query argument (copied at request time); NULL when absent. */
const char *api_call_query(const struct api_call *call, const char *key);
/* v1 with lazy_decode: decode the body now (once). 0, or -EBADMSG with err. */
int api_call_decode(struct api_call *call, const struct tensor_view **out,
		    char *err, size_t errlen);

/* ---- the server ---------------------------------------------------- */

struct api_options {
	/* "127.0.0.1:8080", "[::1]:8080", "[::]:8080" (dual stack),
	 * "unix:/run/splitd/api.sock", "fd:3" (an already listening socket) */
	const char *const *listen;
	int n_listen;
	int threads;			/* per listener; 0 = 2 */
	int max_connections;		/* 0 = 64 */
	int timeout_s;			/* idle connection timeout; 0 = 30 */
	/* Deadlines that a byte now and then does not restart (slow clients):
	 * a request's whole header, from the connection's start or its previous
	 * answer (so a kept-alive connection idles that long at most); a body, body_timeout_ms and one more second per
	 * body_min_rate bytes in, never past body_max_ms. A connection past
	 * its deadline is closed; when a listener nears max_connections, the
	 * one furthest behind goes first. 0 = 10 s, 10 s, 64 KiB/s, 120 s. */
	int header_timeout_ms, body_timeout_ms, body_max_ms;
	int body_min_rate;		/* bytes per second */
	size_t max_body_bytes;		/* 0 = 16 MiB; beyond: 413 */
	int max_inflight;		/* infer calls whose body is in, unanswered;
					   0 = 16; beyond: 503 */
	int retry_after_s;		/* 503's Retry-After; 0 = 1 */
	const char *token;		/* bearer token; NULL = none accepted */
	int token_on_loopback;		/* require it on loopback/unix too */
	/* TLS (PEM, in memory). With tls_client_ca, a verified client
	 * certificate authenticates like the bearer token. */
	const char *tls_cert, *tls_key, *tls_client_ca;
	const char *server_version;	/* GET /v2 "version" */
};

int api_tls_supported(void);		/* 1 when libmicrohttpd has TLS */
int api_server_new(const struct api_options *opts, const struct api_handlers *h,
		   struct api_server **out, char *err, size_t errlen);
/* Port of listener i (0 when unix/fd), to use with port 0 in tests. */
int api_server_port(const struct api_server *s, int i);
/* Calls begun (headers in) and not completed, bodies still arriving
 * included: what a stop waits for. */
int api_server_inflight(const struct api_server *s);
/* Stop accepting connections (the listening sockets close); requests on
 * open connections, in flight or still arriving, are served. */
void api_server_quiesce(struct api_server *s);
/* Stop accepting; wait up to wait_ms for unanswered calls, then stop and
 * free. -EBUSY: calls remain; nothing freed (answer them, call again). */
int api_server_free(struct api_server *s, int wait_ms);
/* Replace the bearer token (NULL or "": none accepted) while serving: a
 * request whose headers arrive after this returns is checked against the
 * new one only. */
int api_server_set_token(struct api_server *s, const char *token);

/* ---- v1 ------------------------------------------------------------ */

struct api_v1_output {
	const char *name;
	const struct tensor_view *t;
};
struct api_topk { int index; const char *label; float score; };
/* One band of a banded (streamed) offload, times from the request's arrival:
 * the robot computed it over [compute_start, compute_end], its bytes were
 * ready to send at ready and all handed to the socket at sent. */
struct api_v1_band {
	int64_t row0, row1;		/* rows of the first cut tensor */
	uint64_t bytes;
	uint64_t compute_start_ns, compute_end_ns, ready_ns, sent_ns;
	/* the peer's side, when it ran the request as a wavefront: all bytes of
	 * the band in, and its step after them (peer_known 0: not reported) */
	int peer_known;
	uint64_t peer_arrived_ns, peer_start_ns, peer_end_ns;
};

struct api_v1_result {
	const char *model, *id;
	const struct api_v1_band *timeline;	/* banded offloads: one per band */
	int n_timeline;
	const struct api_v1_output *outputs;
	int n_outputs;
	int outputs_none;		/* leave "data" out */
	const struct api_topk *top_k;	/* NULL: no "top_k" key */
	int n_top_k;
	/* a model with detector post-processing (common/detection.h):
	 * has_detections 1 writes "detections" (possibly empty) */
	int has_detections;
	struct detections detections;
	struct {
		int cut, local_nodes, remote_nodes, bands;
		const char *peer, *encoding;	/* NULL -> null */
		int fallback;
		const char *fallback_reason;
		uint64_t bytes_back;	/* the peer's answer's body; 0: none */
	} placement;
	struct {
		uint64_t queue_ns, decode_ns, local_ns, transfer_ns,
			 remote_ns, total_ns;
		int64_t postprocess_ns;	/* decode + NMS, here or on the peer; -1: unknown */
	} timing;
	struct {
		int present;		/* 0: "energy": null + reason */
		const char *reason;
		double energy_uj, above_idle_uj, sample_hz;
		const char *method, *rail;
		int64_t samples;
	} energy;
};
int api_v1_response_build(const struct api_v1_result *r, char **body, size_t *len);

/* ---- standalone parsers --------------------------------------------- */

/* npy v1/v2/v3, C order. The view points into buf when the data is
 * aligned little-endian (*copy = NULL), else into *copy (free() it). */
int api_npy_parse(const void *buf, size_t len, struct tensor_view *out,
		  void **copy, char *err, size_t errlen);
int api_npy_write(const struct tensor_view *t, char **out, size_t *len);

/* JPEG/PNG -> packed RGB8 (malloc'd). Size checked before decoding. */
int api_image_decode_rgb(const void *buf, size_t len, int64_t max_pixels,
			 uint8_t **rgb, int *width, int *height,
			 char *err, size_t errlen);
/* Where a w x h image lands in p's input (what api_image_preprocess
 * records in info); -EINVAL when either size is not positive. */
int api_image_fit(int w, int h, const struct api_preprocess *p, struct api_image_info *info);
/* RGB8 -> float32 tensor per p; out->data is malloc'd (free() it). */
int api_image_preprocess(const uint8_t *rgb, int width, int height,
			 const struct api_preprocess *p, struct tensor_view *out,
			 struct api_image_info *info);
/* RGB8 -> PNG, losslessly (*png malloc'd: free() it). */
int api_image_encode_png(const uint8_t *rgb, int width, int height, void **png, size_t *len,
			 char *err, size_t errlen);
int api_image_to_tensor(const void *buf, size_t len, const struct api_preprocess *p,
			struct tensor_view *out, struct api_image_info *info,
			char *err, size_t errlen);

/* ---- Prometheus exposition writer ---------------------------------- */

enum api_metric_type { API_COUNTER, API_GAUGE, API_HISTOGRAM };
enum api_metrics_format { API_METRICS_TEXT, API_METRICS_OPENMETRICS };

int api_metrics_new(enum api_metrics_format fmt, struct api_metrics **out);
void api_metrics_free(struct api_metrics *m);
/* Start a family: HELP + TYPE. Counter names end in _total. */
int api_metrics_family(struct api_metrics *m, const char *name,
		       enum api_metric_type type, const char *help);
/* labels: NULL, or key, value, key, value, ..., NULL (values escaped) */
int api_metrics_value(struct api_metrics *m, const char *const *labels, double v);
/* bounds ascending (no +Inf); counts[i] per bucket i, counts[n] above */
int api_metrics_histogram(struct api_metrics *m, const char *const *labels,
			  const double *bounds, const uint64_t *counts, int n,
			  double sum);
/* The text so far (+ "# EOF" for OpenMetrics); borrowed. */
const char *api_metrics_text(struct api_metrics *m, size_t *len);
const char *api_metrics_content_type(enum api_metrics_format fmt);

#endif
