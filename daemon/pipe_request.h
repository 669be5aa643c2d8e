/* A request to the pipeline, free of any transport: its inputs (tensor
 * views, or the received image), the query options, and the callbacks
 * through which its answer (or error) goes back. daemon/pipe_api.c builds
 * them from the HTTP layer's calls (api/); the tests build their own.
 *
 * The link to the peer likewise goes through a small table of operations:
 * pipe_link.c wraps the peer client (peer_client.h), the tests fake it. */
#ifndef SPLITD_PIPE_REQUEST_H
#define SPLITD_PIPE_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "peer_client.h"

struct pipe_model;

/* The answer to one request. status 200 with v1, v2 or body set; any other
 * status (400: the request's fault, 500: ours, 503: try again) with error. */
struct pipe_result {
	int status;
	const char *error;
	const struct api_v1_result *v1;		/* a v1 answer (views borrowed) */
	const struct api_v2_message *v2;	/* a plain v2 answer (views borrowed) */
	/* a built v2 body (the peer's answer to a robot); respond takes it
	 * (malloc'd); header_len < len when it has a binary part */
	void *body;
	size_t len, header_len;
};

struct pipe_request_ops {
	/* The answer, exactly once per request, from the worker's thread. */
	void (*respond)(void *ctx, struct pipe_result *res);
	/* v1 with a received image kept as is (it may travel to the peer):
	 * decode it now. 0, or -errno with err set. NULL: input is set. */
	int (*decode)(void *ctx, const struct tensor_view **out, char *err, size_t errlen);
	/* v2 with a streamed body (streamed 1): wait until `bytes` of the
	 * binary part are in; wait for its end; when `bytes` were in (0: not
	 * recorded). As api_call_body_wait / _end / _arrival. */
	int (*body_wait)(void *ctx, size_t bytes, char *err, size_t errlen);
	int (*body_end)(void *ctx, char *err, size_t errlen);
	uint64_t (*body_arrival)(void *ctx, size_t bytes);
	/* v1 with a raw frame (a camera's pixels) that may travel to the peer
	 * as a lossless PNG at cut 0: make it now; the bytes stay the
	 * request's until respond. NULL: no such option. */
	int (*encode_png)(void *ctx, const void **png, size_t *len, char *err, size_t errlen);
};

/* The query options of a v1 request (?cut= ?bands= ...). */
struct pipe_query {
	int cut;			/* -1: the planner's choice */
	int bands;			/* 0: the planner's choice */
	int no_wavefront;		/* ?wavefront=0 */
	const char *encoding;		/* NULL: the planner's */
	const char *policy;		/* NULL: the configured one */
	int outputs_none;		/* ?outputs=none */
	int outputs_raw;		/* ?outputs=raw: the tensors, also of a detector */
};

enum pipe_request_kind { PIPE_REQ_V1, PIPE_REQ_V2 };

struct pipe_request {
	enum pipe_request_kind kind;
	struct pipe_model *model;
	/* v1: the input tensor (NULL until ops->decode gave it), and the body
	 * as received (an image travels to the peer as is at cut 0) */
	const struct tensor_view *input;
	const void *body;
	size_t body_len;
	int is_image;			/* body is a JPEG/PNG (not a tensor) */
	/* a raw frame ops->encode_png can send: the PNG's expected size and
	 * time to make (the last ones made; png_bytes 0: unknown, not planned) */
	size_t png_bytes;
	double png_ms;
	/* where a decoded image landed in the input (filled once decoded;
	 * NULL: not known) */
	const struct api_image_info *image;
	struct pipe_query q;
	/* v2: the parsed message (tensors point into the body) */
	const struct api_v2_message *msg;
	int streamed;
	uint64_t received_ns;		/* CLOCK_MONOTONIC: body complete */
	uint64_t decode_ns;		/* spent decoding the body so far */
	uint64_t enqueued_ns;
	const struct pipe_request_ops *ops;
	void *ctx;
};

/* Answer req with an error (status, message). */
void pipe_request_fail(const struct pipe_request *req, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- the link to the peer ---------------------------------------------- */

/* Every member but count_fallback and blame is required; the real table
 * is pipe_link_peer_client (pipe_link.c). */
struct pipe_link_ops {
	/* Send one split request and wait for the peer's answer within
	 * timeout_ms; as peer_client_infer (0, or -errno with err set; on
	 * error out holds nothing). */
	int (*send)(void *link, const struct peer_msg *msg, int64_t timeout_ms, struct peer_reply *out,
		    char *err, size_t errlen);
	/* The same with a body produced while it is sent (msg->stream: the
	 * bands, as they are computed). */
	int (*stream)(void *link, const struct peer_msg *msg, int64_t timeout_ms, struct peer_reply *out,
		      char *err, size_t errlen);
	/* The peer's state as the last probe or request left it. */
	enum peer_state (*probe)(void *link);
	void (*stats)(void *link, struct peer_client_stats *out);
	/* A fallback decided without sending; the peer's fault found after an
	 * answer (peer_client_count_fallback, peer_client_blame). */
	void (*count_fallback)(void *link);
	void (*blame)(void *link, int bad_answer);
};

struct pipe_link {
	const struct pipe_link_ops *ops;	/* NULL: no peer */
	void *ctx;
};

extern const struct pipe_link_ops pipe_link_peer_client;	/* ctx: struct peer_client * */

#endif
