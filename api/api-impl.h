/* api/ internals shared by its .c files; not part of the front door. */
#ifndef SPLITD_API_IMPL_H
#define SPLITD_API_IMPL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include <jansson.h>
#include <microhttpd.h>

#include "api.h"

#define API_MAX_LISTEN 8
#define API_MAX_HEADERS 8
#define API_MAX_QUERY 16
#define API_V2_MAX_TENSORS 64
#define API_V2_MAX_JSON_DEPTH 16
#define API_STREAM_MARKS 1024

/* growable byte buffer */
struct buf {
	char *p;
	size_t len, cap;
	int oom;
};
int buf_reserve(struct buf *b, size_t extra);
void buf_put(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_json_string(struct buf *b, const char *s);	/* quoted, escaped */
void buf_double(struct buf *b, double v);		/* JSON number or null */
void buf_ms(struct buf *b, uint64_t ns);		/* ns as ms number */
void buf_key_ms(struct buf *b, const char *key, uint64_t ns);	/* key (",\"x\":") then buf_ms */

struct api_params {
	json_t *obj;	/* borrowed from the owning message's document */
};

enum route {
	ROUTE_NONE,
	ROUTE_V1_INFER,
	ROUTE_V1_STATUS,
	ROUTE_METRICS,
	ROUTE_V2_LIVE,
	ROUTE_V2_READY,
	ROUTE_V2_SERVER,
	ROUTE_V2_MODEL,
	ROUTE_V2_MODEL_READY,
	ROUTE_V2_INFER,
};

/* Where a connection is, for its deadlines (server.c) */
enum conn_phase { CONN_HEADER, CONN_BODY, CONN_HANDLING };

/* One TCP (or unix) connection, from libmicrohttpd's start notice to its
 * close notice (its socket context); on the server's list under conn_lock. */
struct api_conn {
	struct api_conn *prev, *next;
	struct api_server *srv;
	int listener;
	int fd;
	int shut;			/* shut down by the server (conn_lock) */
	int many_args;			/* the request line had too many arguments */
	atomic_int idle;		/* answered, no next request line yet */
	atomic_int phase;		/* enum conn_phase */
	atomic_ullong phase_ns;		/* when the phase began */
	atomic_ullong body_bytes;	/* of the request's body, so far */
};

/* what libmicrohttpd's per-listener callbacks get */
struct api_listener {
	struct api_server *srv;
	int i;
};

enum call_state { CALL_RECEIVING, CALL_HANDLING, CALL_SUSPENDED, CALL_ANSWERED, CALL_SENT };

struct api_call {
	struct api_server *srv;
	struct MHD_Connection *conn;
	enum route route;
	char *model_name;		/* from the path or ?model= */
	const struct api_model *model;
	struct api_conn *cx;		/* its connection; NULL once completed */
	int slot;			/* holds an in-flight slot */
	int early_status;		/* answered without using the body */
	int discarding;			/* early: reading the body to drop it */
	size_t received;		/* body bytes in, kept or dropped */
	char early_msg[160];
	uint64_t start_ns;

	struct buf body;
	size_t header_len;		/* Inference-Header-Content-Length */
	char content_type[64];
	int accept_openmetrics;

	char *query[API_MAX_QUERY][2];
	int n_query;

	struct api_v1_request v1;
	struct tensor_view input;	/* decoded v1 input */
	void *input_mem;		/* what input.data points into, if owned */
	int decoded;
	int dispatched;			/* counted in srv->pending */
	struct api_v2_request v2;
	struct api_v2_message *msg;

	/* streamed v2 body (api_handlers.stream_v2): the header and binary
	 * part land in stream_buf, the binary part 64-byte aligned */
	int stream_tried, streaming, stream_done, gone;
	void *stream_mem;		/* the allocation */
	char *stream_buf;
	size_t stream_len, stream_total;	/* bytes in / announced, header included */
	int stream_err;
	int stream_fd;			/* the connection's socket, to see a close */
	/* when the body reached each length (the first API_STREAM_MARKS pieces) */
	size_t arr_len[API_STREAM_MARKS];
	uint64_t arr_ns[API_STREAM_MARKS];
	int n_arr;
	char stream_msg[160];
	pthread_cond_t cond;		/* stream_len, stream_err, stream_done */

	pthread_mutex_t lock;
	enum call_state state;
	int status;
	char *resp_type;
	void *resp_body;
	size_t resp_len;
	char *hdr[API_MAX_HEADERS][2];
	int n_hdr;
};

struct api_server {
	struct api_options opts;	/* strings copied below */
	struct api_handlers h;
	struct MHD_Daemon *d[API_MAX_LISTEN];
	int port[API_MAX_LISTEN];
	char *unix_path[API_MAX_LISTEN];
	int nd;
	int quiesced[API_MAX_LISTEN];
	char *token, *cert, *key, *ca, *version;
	pthread_mutex_t token_lock;	/* token: replaced at run time */
	struct api_listener lst[API_MAX_LISTEN];
	/* connections and their deadlines: a reaper thread closes those past
	 * them (shutdown(2): libmicrohttpd then sees the end and closes) */
	pthread_mutex_t conn_lock;
	pthread_cond_t conn_cond;
	struct api_conn *conns;
	pthread_t reaper;
	int reaper_started, reaper_stop;
	uint64_t header_ns, body_ns, body_max_ns;
	atomic_ullong closed_slow;	/* connections closed for their deadline */
	atomic_int inflight;		/* infer calls holding a slot */
	atomic_int open_calls;		/* calls begun (headers in), not completed */
	atomic_int pending;		/* calls handed to a handler, unanswered */
	atomic_int stopping;
	atomic_ullong responses[6];	/* by status class: 1xx..5xx, other */
	atomic_ullong rejected_busy, rejected_size, rejected_auth;
};

uint64_t api_now_ns(void);
int api_addr_is_local(const struct sockaddr *sa);
const char *api_status_code_name(int status);
/* {"error":{"code","message"}} body (malloc'd) */
char *api_error_body(int status, const char *msg, size_t *len);

/* server.c -> v1.c / v2.c: route handling once the body is complete */
void api_route_v1_infer(struct api_call *c);
void api_route_v2_infer(struct api_call *c);
void api_route_v2_model(struct api_call *c, int ready_only);
void api_route_v2_server(struct api_call *c);
void api_route_metrics(struct api_call *c);

/* a flat JSON array of n elements of dtype */
void api_json_tensor_data(struct buf *b, enum tensor_dtype dt, const void *data, size_t n);
float api_f16_to_f32(uint16_t h);
uint16_t api_f32_to_f16(float f);

#endif
