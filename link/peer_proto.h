/* The offload link's messages: KServe v2 inference requests and responses
 * with the binary tensor extension, carrying cut tensors.
 *
 * Request (robot -> peer), POST /v2/models/{name}/infer,
 *   Content-Type: application/octet-stream,
 *   Inference-Header-Content-Length: <bytes of the JSON header>,
 * body = JSON header, then each input's bytes in input order:
 *   {"id": "...",
 *    "parameters": {"splitd_cut": K, "splitd_model_sha256": "<64 hex>",
 *                   "splitd_bands": B (optional), "binary_data_output": true,
 *                   "splitd_output_encoding": "f32" (optional)},
 *    "inputs": [{"name", "shape", "datatype": "FP32",
 *                "parameters": {"binary_data_size": N,
 *                               "splitd_encoding": "f16+zstd" (absent = f32),
 *                               "splitd_scale": S (i8 only)}}],
 *    "outputs": [{"name", "parameters": {"binary_data": true}}]}
 * The datatype is the tensor's own (what the engine holds at the cut); the
 * encoding says how its bytes travel. A request with f32 and no compression
 * is plain KServe v2, so a Triton server holding the exported tail model
 * can answer it. At cut 0 the input may instead be the received JPEG/PNG:
 * datatype "BYTES", shape [1], bytes = 4-byte little-endian length + data.
 *
 * A robot whose model has a detector head asks the peer to decode it where
 * the last node runs: "splitd_postprocess": "yolov5" | "yolov8" with
 * "splitd_score_threshold", "splitd_iou_threshold" (numbers),
 * "splitd_max_detections" and "splitd_keypoints" (integers), all required
 * then. The peer answers the detections instead of the raw outputs: boxes
 * FP32 [N, 4] (x0, y0, x1, y1 in the model input's pixels), scores FP32
 * [N], classes INT32 [N] and, with keypoints, keypoints FP32 [N, K, 3]
 * (PEER_DET_*), best first; and when it decoded the robot's image itself
 * (cut 0), that image's size, "splitd_image_size": [w, h], so the robot maps
 * the boxes to the original pixels with its own fit either way.
 *
 * Response (peer -> robot): the same layout, outputs with binary_data_size
 * (and splitd_encoding / splitd_scale when the peer encoded them), and the
 * peer's own figures as response parameters: splitd_peer_queue_ns,
 * splitd_peer_decode_ns, splitd_peer_compute_ns, splitd_peer_total_ns,
 * splitd_peer_energy_uj (absent when the peer has no energy source),
 * splitd_peer_post_ns (when it decoded detections),
 * splitd_peer_backend.
 *
 * Everything parsed here comes from the network: sizes, counts, names and
 * shapes are bounded, and a failure is -EBADMSG (or -EPROTO for a peer's
 * error answer) with err set to a sentence naming the field. */
#ifndef SPLITD_PEER_PROTO_H
#define SPLITD_PEER_PROTO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "engine.h"
#include "link_codec.h"
#include "tensor.h"

struct api_v2_message;	/* api.h: the one KServe v2 codec's message */

#define PEER_MAX_TENSORS 64	/* inputs or outputs of one message */
/* The band limit, the one definition: most bands of a banded (streamed)
 * request, whatever asks for it (?bands=, splitd_bands, the planner's
 * max_bands). 64 keeps a request's band ends (PEER_MAX_TENSORS x 64 rows)
 * and the peer's per-band timeline small, while a band stays tens of rows
 * of a robot-sized cut; more bands only add per-band overhead. */
#define PEER_MAX_BANDS 64
#define PEER_NAME_MAX 256	/* bytes of a tensor name, with the NUL */
#define PEER_ID_MAX 128
#define PEER_MAX_HEADER_BYTES (1u << 20)	/* JSON header limit */

/* One tensor on the wire, as encoded by its sender. All pointers borrowed. */
struct peer_tensor {
	const char *name;
	enum tensor_dtype dtype;	/* the tensor's own dtype */
	int is_bytes;			/* a v2 BYTES tensor of one element (an image) */
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	struct link_encoding enc;	/* effective encoding of data */
	float scale;			/* int8 scale */
	const void *data;		/* encoded bytes (for BYTES: the element) */
	size_t len;
	/* banded requests: the end row of each band along dim ndim-2 (the
	 * last is that dim's size); NULL otherwise */
	const int64_t *band_ends;
	int n_band_ends;
};

/* A message ready to send: header then the binary parts, in order, as an
 * iovec list (iov[0] is the header), so tensor bytes are never copied. */
struct peer_msg {
	char *header;
	size_t header_len;
	struct iovec *iov;
	int n_iov;
	size_t total_len;		/* header + binary */
	uint32_t *prefixes;		/* BYTES length prefixes, owned */
	struct peer_stream *stream;	/* NULL: every byte is ready; borrowed */
};
void peer_msg_fini(struct peer_msg *m);

/* A message whose bytes are produced while it is sent (banded cuts): the
 * sender hands out bytes below `ready` and waits for more; the producer
 * raises `ready` (or sets `failed`, which aborts the transfer) under mu and
 * signals cv. marks: message offsets (band ends) whose bytes were all handed
 * to the socket at marked_ns[i] (set by the sender). */
struct peer_stream {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t ready;
	int failed;
	int n_marks;
	const size_t *marks;
	uint64_t *marked_ns;
};
/* Copy the whole message into one buffer (tests, fuzz seeds). */
int peer_msg_flatten(const struct peer_msg *m, uint8_t **out, size_t *len);

/* The peer's own figures, reported in a response. -1 = not measured. */
struct peer_timing {
	int64_t queue_ns;
	int64_t decode_ns;
	int64_t compute_ns;		/* computing only: a streamed request's
					   waits for its bands are not in it */
	int64_t total_ns;
	int64_t energy_uj;
	int64_t post_ns;		/* decode + NMS of the detections asked */
	char backend[16];
	/* a streamed banded request: per band of the robot, when its bytes
	 * were all in and the peer's wavefront step after it, ns after the
	 * peer took the request (its header complete) */
	int n_bands;
	int64_t band_arrived_ns[PEER_MAX_BANDS], band_start_ns[PEER_MAX_BANDS],
		band_end_ns[PEER_MAX_BANDS];
};
void peer_timing_init(struct peer_timing *t);	/* all -1, backend "" */

/* The post-processing a robot asks of the peer (see above); kind "" none.
 * The link checks the types; what the values may be is the caller's check
 * (post/'s bounds). */
struct peer_post {
	char kind[16];
	double score_threshold, iou_threshold;
	int64_t max_detections, keypoints;
};
#define PEER_DET_BOXES "splitd_boxes"
#define PEER_DET_SCORES "splitd_scores"
#define PEER_DET_CLASSES "splitd_classes"
#define PEER_DET_KEYPOINTS "splitd_keypoints"

/* ---- robot side ---------------------------------------------------------- */

struct peer_request_spec {
	const char *id;				/* optional */
	int cut;
	const uint8_t *model_sha256;		/* 32 bytes */
	int bands;				/* 0: not banded */
	int no_wavefront;			/* ask the peer to wait for all bands */
	const struct peer_tensor *inputs;
	int n_inputs;
	const char *const *outputs;		/* requested outputs; n_outputs 0 = all */
	int n_outputs;
	const struct link_encoding *output_enc;	/* NULL: outputs as f32 */
	const struct peer_post *post;		/* NULL: the raw outputs */
};
int peer_request_build(const struct peer_request_spec *spec, struct peer_msg *out,
		       char *err, size_t errlen);

/* A parsed response; tensor data and names point into the body (kept by
 * the caller) and into msg. */
struct peer_response {
	char id[PEER_ID_MAX];
	char model[PEER_NAME_MAX];
	int n_outputs;
	struct peer_tensor outputs[PEER_MAX_TENSORS];
	struct peer_timing timing;
	int image_width, image_height;		/* splitd_image_size; 0: absent */
	struct api_v2_message *msg;		/* the API's parse of it, owned */
};
/* body: the whole response body; header_len: the value of its
 * Inference-Header-Content-Length header, or 0 when it had none (then the
 * body is JSON only, e.g. an error answer, which gives -EPROTO with the
 * peer's message in err). */
int peer_response_parse(const void *body, size_t len, size_t header_len,
			struct peer_response *out, char *err, size_t errlen);
void peer_response_fini(struct peer_response *r);

/* Decode a received tensor into out (dtype/shape/data set by the caller);
 * the shapes and dtypes must match exactly. */
int peer_tensor_decode(const struct peer_tensor *t, struct tensor_view *out,
		       char *err, size_t errlen);

/* ---- banded (streamed) requests -------------------------------------------
 * With splitd_bands = B > 1 the cut tensors leave the robot band by band, as
 * it computes them, so the binary part is band-major: for band b = 0..B-1,
 * for each input j in order, for each of its N*C planes (all dims before
 * ndim-2), rows [end[j][b-1], end[j][b]) of the plane (end[j][-1] = 0).
 * Each input says its band ends as "splitd_band_rows": [e0, .., H]; the
 * inputs' binary_data_size are their whole sizes, as unbanded. Only
 * fixed-width encodings travel banded (f32, f16 or i8, no compression), and
 * only float tensors of rank >= 2. An i8 band segment (band b, input j)
 * starts with its own scale, a little-endian float32, so binary_data_size is
 * numel + 4 * B; the peer dequantizes each band with its scale. */

/* Bytes of rows [r0, r1) of every plane of t as encoded; 0 when t cannot
 * travel banded (see above). */
size_t peer_band_bytes(const struct peer_tensor *t, int64_t r0, int64_t r1);
/* Checks t's band ends (B of them, non-decreasing, the last = rows). */
int peer_band_check(const struct peer_tensor *t, int bands, char *err, size_t errlen);
/* Decode band `band` of t (its segment of the band-major binary part: seg,
 * len = peer_band_bytes of its rows, the int8 scale included) into rows
 * band_ends[band-1]..band_ends[band] of every plane of out (float32, t's
 * shape). */
int peer_band_decode(const struct peer_tensor *t, int band, const void *seg, size_t len,
		     struct tensor_view *out, char *err, size_t errlen);
/* Reorders a band-major binary part into the usual one (each input's bytes
 * contiguous) in a new buffer *out (free() it) and points ts[j].data into
 * it. ts[j].data/len on entry: as the v2 parse split the body (each
 * input's binary_data_size bytes, in order). */
int peer_unband(struct peer_tensor *ts, int n, int bands, void **out, char *err, size_t errlen);

/* ---- peer side ----------------------------------------------------------- */

/* A "parameters" object as the one reader below reads it: typed look-ups
 * that return 0, -ENOENT (absent) or -EINVAL (present, of another type; for
 * get_int_array also longer than max). The link reads the API's own parse
 * through them (peer_v2.c), so every key is checked alike on both sides. */
struct peer_params {
	const void *obj;			/* NULL: no parameters */
	int (*get_int)(const void *obj, const char *key, int64_t *out);
	int (*get_number)(const void *obj, const char *key, double *out);
	int (*get_string)(const void *obj, const char *key, const char **out);
	int (*get_bool)(const void *obj, const char *key, int *out);
	int (*get_int_array)(const void *obj, const char *key, int64_t *out, int max, int *n);
};

/* The request as read from its JSON header and binary part. */
struct peer_request {
	char id[PEER_ID_MAX];
	int cut;
	int bands;				/* 0 or 1: not banded */
	int no_wavefront;			/* splitd_wavefront: false */
	int has_sha;
	uint8_t model_sha256[32];
	int binary_output;			/* binary_data_output or per output */
	struct link_encoding output_enc;
	struct peer_post post;			/* kind "": none asked */
	int n_inputs;
	struct peer_tensor inputs[PEER_MAX_TENSORS];
	int n_outputs;				/* 0: all */
	const char *outputs[PEER_MAX_TENSORS];
	/* banded: each input's splitd_band_rows (inputs[i].band_ends) */
	int64_t band_rows[PEER_MAX_TENSORS][PEER_MAX_BANDS];
	struct api_v2_message *msg;		/* peer_request_parse's, owned */
};
/* Read a whole v2 binary request: its JSON header (header_len bytes) and
 * the binary part after it (binary_len bytes, not copied: keep it), by the
 * API's v2 parse and peer_v2_request_read, as the deployed peer reads it. */
int peer_request_parse(const void *header, size_t header_len, const void *binary,
		       size_t binary_len, struct peer_request *out, char *err, size_t errlen);
void peer_request_fini(struct peer_request *r);
/* The same, piece by piece, for a server whose own v2 parser has already
 * split the body (peer_v2_request_read, what the deployed peer runs): the
 * request's "parameters" (obj NULL: none; this clears out first) ... */
int peer_request_read_params(const struct peer_params *params, struct peer_request *out,
			     char *err, size_t errlen);
/* ... then each input in order: peer_input_read, a name seen twice refused,
 * and for a banded request its splitd_band_rows, checked against its size
 * (peer_band_check). Its bytes are not read when the request is banded (a
 * streamed body's are still arriving). */
int peer_request_add_input(struct peer_request *r, const char *name, const char *datatype, int ndim,
			   const int64_t *shape, const struct peer_params *params, const void *data,
			   size_t len, char *err, size_t errlen);
/* ... and each requested output. */
int peer_request_add_output(struct peer_request *r, const char *name, int binary, char *err,
			    size_t errlen);
/* One tensor: its name, datatype string, shape, "parameters" and exactly its
 * bytes (the robot reads the peer's outputs with it too). */
int peer_input_read(const char *name, const char *datatype, int ndim, const int64_t *shape,
		    const struct peer_params *params, const void *data, size_t len,
		    struct peer_tensor *out, char *err, size_t errlen);

/* A banded request's segment (band, input i), where it lies: the binary part
 * is the inputs' bytes as the parse split them (inputs[k].data, .len, in
 * input order; each may lie anywhere), the segments band-major over it.
 * peer_request_band_end: the binary-part offset by which the segment is all
 * in (what a streamed reader waits for); 0 when there is none.
 * peer_request_band_decode: decode it into its rows of out (float32, the
 * input's shape), as peer_band_decode, reading across input slices when it
 * straddles them. Both need a request read as above with bands > 1. */
size_t peer_request_band_end(const struct peer_request *r, int band, int i);
int peer_request_band_decode(const struct peer_request *r, int band, int i, struct tensor_view *out,
			     char *err, size_t errlen);

/* Check a request against the engine's cut and decode its tensors (a
 * banded one band by band, peer_request_band_decode).
 * model_sha256: the peer's model identity (a request naming another one, or
 * none, is refused); cut: the n_cut tensors engine_cut_tensor(e, r->cut, j)
 * lists. views[j] receives tensor j of the cut: the caller sets data to a
 * buffer of cut[j].bytes (peer_cut_alloc does it). At cut 0 a single BYTES
 * input is accepted instead: *image and *image_len then point at it, views
 * are left alone (the caller decodes and preprocesses the image). */
int peer_request_decode(const struct peer_request *r, const uint8_t *model_sha256,
			const struct engine_value_info *cut, int n_cut,
			struct tensor_view *views, const void **image, size_t *image_len,
			char *err, size_t errlen);
/* The model check of peer_request_decode and which input is cut tensor j
 * (which[j]), by name; model_sha256 NULL: no model check. */
int peer_request_match(const struct peer_request *r, const uint8_t *model_sha256,
		       const struct engine_value_info *cut, int n_cut, int *which, char *err, size_t errlen);
/* One allocation holding every tensor of a cut; free(*mem) releases it. */
int peer_cut_alloc(const struct engine_value_info *cut, int n_cut,
		   struct tensor_view *views, void **mem);

struct peer_response_spec {
	const char *id;
	const char *model;
	const struct peer_tensor *outputs;
	int n_outputs;
	const struct peer_timing *timing;	/* NULL: none */
	int image_width, image_height;		/* the image it decoded; 0: none */
};
int peer_response_build(const struct peer_response_spec *spec, struct peer_msg *out,
			char *err, size_t errlen);

/* Lower-case hex of a sha256 (65 bytes with the NUL) and back. */
void peer_sha256_hex(const uint8_t sha[32], char hex[65]);
int peer_sha256_parse(const char *hex, uint8_t sha[32]);

#endif
