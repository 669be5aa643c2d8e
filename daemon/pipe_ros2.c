/* ROS 2 topics in and out (ros2/ does the DDS): each [ros2.NAME] camera
 * frame becomes a transport-free pipe_request on the worker queue, as an
 * HTTP image does (pipe_api.c), and its answer goes out as topics: the v1
 * JSON (plus the frame's stamp and frame_id) on `json`, detections as
 * vision_msgs/Detection2DArray, the top_k classes as
 * vision_msgs/Classification; the power rails on ~/power.
 *
 * A robot wants the newest frame, not a backlog: one frame per subscription
 * is in flight at a time; a frame arriving meanwhile, or sooner than
 * max_rate_hz allows, is dropped and counted by reason, as are frames that
 * fail the checks (encoding, sizes, empty, too many pixels). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "err.h"
#include "log.h"
#include "pipeline-impl.h"
#include "ros2.h"

struct ros2_slot {
	struct pipe_ros2 *br;
	struct config_ros2_sub conf;
	struct pipe_model *m;
	struct ros2_sub *sub;
	struct ros2_pub *json, *dets, *cls;
	pthread_mutex_t lock;		/* admission: busy, last_ns */
	bool busy;			/* a frame in flight (its buffers below) */
	uint64_t last_ns;		/* when the last frame was taken */
	/* the frame in flight */
	struct ros2_frame f;
	enum ros2_encoding enc;
	uint8_t *buf;
	size_t cap;
	char frame_id[256], encoding[32], format[64];
	struct tensor_view input;
	void *input_data;
	struct api_image_info info;	/* the frame's size; where it landed once preprocessed */
	/* a raw frame as a PNG for the peer at cut 0 (made when the plan
	 * sends it, and every PNG_SAMPLE_EVERY frames otherwise so that the
	 * planner knows its size and cost): the last one's figures */
	void *png;
	size_t png_len, png_bytes;
	double png_ms;
	unsigned frames_since_png;
	_Atomic uint64_t received, inferred, failed, publish_errors;
	_Atomic uint64_t dropped[ROS2_DROP_REASONS];
};

struct pipe_ros2 {
	struct pipeline *p;
	struct ros2_node *node;
	struct ros2_slot slots[CONFIG_MAX_ROS2_SUBS];
	int n;
	struct ros2_pub *power;
	double power_hz;
	pthread_t power_thread;
	bool power_started;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stopping;
};

static struct ros2_time wall_time(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (struct ros2_time){ (int32_t)ts.tv_sec, (uint32_t)ts.tv_nsec };
}

/* Bad data is logged: the first few of each subscription, then every 1000th. */
static void drop(struct ros2_slot *s, enum ros2_drop why, const char *detail)
{
	uint64_t n = atomic_fetch_add(&s->dropped[why], 1) + 1;

	if (why == ROS2_DROP_RATE || why == ROS2_DROP_BUSY || why == ROS2_DROP_STOPPING)
		return;
	if (n <= 5 || n % 1000 == 0)
		log_warn("ros2: %s (%s): frame dropped (%s, %" PRIu64 " so far): %s", s->conf.name, s->conf.topic,
			 ros2_drop_name(why), n, detail);
}

/* ---- the answer --------------------------------------------------------- */

static void release(struct ros2_slot *s)
{
	free(s->input_data);
	s->input_data = NULL;
	free(s->png);
	s->png = NULL;
	pthread_mutex_lock(&s->lock);
	s->busy = false;
	pthread_mutex_unlock(&s->lock);
}

/* body ("{...}") with "stamp" and "frame_id" first; malloc'd, NULL: no memory. */
static char *with_stamp(const char *body, struct ros2_time stamp, const char *frame_id)
{
	json_t *id = json_string(frame_id);
	char *idtext = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL;
	char *out = NULL;

	json_decref(id);
	if (idtext && body[0] == '{' &&
	    asprintf(&out, "{\"stamp\":{\"sec\":%" PRId32 ",\"nanosec\":%" PRIu32 "},\"frame_id\":%s%s%s", stamp.sec,
		     stamp.nanosec, idtext, body[1] == '}' ? "" : ",", body + 1) < 0)
		out = NULL;
	free(idtext);
	return out;
}

static void publish_json(struct ros2_slot *s, const char *body)
{
	char *text = with_stamp(body, s->f.stamp, s->f.frame_id);

	if (!text || ros2_publish_string(s->json, text) < 0)
		atomic_fetch_add(&s->publish_errors, 1);
	free(text);
}

static void publish_error(struct ros2_slot *s, int status, const char *error)
{
	json_t *o = json_pack("{s:i, s:s}", "status", status, "error", error ? error : "failed");
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

	if (body)
		publish_json(s, body);
	else
		atomic_fetch_add(&s->publish_errors, 1);
	free(body);
	json_decref(o);
}

static void publish_classes(struct ros2_slot *s, const struct api_v1_result *v1)
{
	struct ros2_hypothesis h[64];
	char ids[64][16];
	int n = v1->n_top_k < 64 ? v1->n_top_k : 64;

	for (int i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%d", v1->top_k[i].index);
		h[i].class_id = v1->top_k[i].label ? v1->top_k[i].label : ids[i];
		h[i].score = v1->top_k[i].score;
	}
	if (ros2_publish_classification(s->cls, s->f.stamp, s->f.frame_id, h, (size_t)n) < 0)
		atomic_fetch_add(&s->publish_errors, 1);
}

static void slot_respond(void *ctx, struct pipe_result *res)
{
	struct ros2_slot *s = ctx;
	const struct api_v1_result *v1 = res->v1;

	if (res->status == 200 && v1) {
		atomic_fetch_add(&s->inferred, 1);
		char *body = NULL;
		size_t len = 0;
		if (s->json) {
			if (api_v1_response_build(v1, &body, &len) == 0)
				publish_json(s, body);
			else
				atomic_fetch_add(&s->publish_errors, 1);
		}
		if (s->dets && v1->has_detections &&
		    ros2_publish_detections(s->dets, s->f.stamp, s->f.frame_id, &v1->detections) < 0)
			atomic_fetch_add(&s->publish_errors, 1);
		if (s->cls && v1->n_top_k > 0)
			publish_classes(s, v1);
		free(body);
	} else {
		atomic_fetch_add(&s->failed, 1);
		log_warn("ros2: %s: frame %" PRId32 ".%09" PRIu32 " failed (%d): %s", s->conf.name, s->f.stamp.sec,
			 s->f.stamp.nanosec, res->status, res->error ? res->error : "?");
		if (s->json)
			publish_error(s, res->status, res->error);
	}
	free(res->body);	/* only a v2 answer has one */
	release(s);
}

/* The PNG of a raw frame (rgb: the frame as RGB8, what the model's
 * preprocessing reads, so the peer decodes exactly these pixels), its size
 * and time remembered for the next frames' plans. */
static int make_png(struct ros2_slot *s, const uint8_t *rgb, char *err, size_t errlen)
{
	uint64_t t = link_now_ns();
	int r;

	free(s->png);
	s->png = NULL;
	r = api_image_encode_png(rgb, (int)s->f.width, (int)s->f.height, &s->png, &s->png_len, err, errlen);
	if (r < 0)
		return r;
	s->png_bytes = s->png_len;
	s->png_ms = (double)(link_now_ns() - t) / 1e6;
	s->frames_since_png = 0;
	return 0;
}

static int slot_encode_png(void *ctx, const void **png, size_t *len, char *err, size_t errlen)
{
	struct ros2_slot *s = ctx;
	uint8_t *rgb;
	int r;

	if (!s->png) {
		if (!(rgb = malloc((size_t)s->f.width * s->f.height * 3)))
			return err_set(-ENOMEM, err, errlen, "out of memory");
		ros2_frame_to_rgb8(&s->f, s->enc, s->conf.depth_scale, rgb);
		r = make_png(s, rgb, err, errlen);
		free(rgb);
		if (r < 0)
			return r;
	}
	*png = s->png;
	*len = s->png_len;
	return 0;
}

/* With a peer, a frame decoded here refreshes the PNG figures now and then
 * (the first frame, then every PNG_SAMPLE_EVERY): a failure only leaves
 * the option out. */
#define PNG_SAMPLE_EVERY 32
static void sample_png(struct ros2_slot *s, const uint8_t *rgb)
{
	char err[128];

	if (!s->m->link.ops || (s->png_bytes && ++s->frames_since_png < PNG_SAMPLE_EVERY))
		return;
	if (make_png(s, rgb, err, sizeof(err)) < 0) {
		s->png_bytes = 0;
		log_warn("ros2: %s: the frame as PNG: %s", s->conf.name, err);
	}
	free(s->png);
	s->png = NULL;
}

/* A raw frame to RGB8 then the model's preprocessing; a compressed one as
 * an HTTP JPEG/PNG body is (the same decoder and preprocessing). */
static int slot_decode(void *ctx, const struct tensor_view **out, char *err, size_t errlen)
{
	struct ros2_slot *s = ctx;
	const struct api_preprocess *pp = s->m->api.preprocess;
	struct api_image_info *info = &s->info;
	int r;

	if (!pp)
		return snprintf(err, errlen, "model '%s' has no image input", s->m->name), -EINVAL;
	if (s->f.compressed) {
		r = api_image_to_tensor(s->f.data, s->f.len, pp, &s->input, info, err, errlen);
	} else {
		uint8_t *rgb = malloc((size_t)s->f.width * s->f.height * 3);
		if (!rgb)
			return snprintf(err, errlen, "out of memory"), -ENOMEM;
		ros2_frame_to_rgb8(&s->f, s->enc, s->conf.depth_scale, rgb);
		r = api_image_preprocess(rgb, (int)s->f.width, (int)s->f.height, pp, &s->input, info);
		if (r == 0)
			sample_png(s, rgb);
		free(rgb);
		if (r < 0)
			snprintf(err, errlen, "preprocessing the frame: %s", strerror(-r));
	}
	if (r < 0)
		return r;
	s->input_data = s->input.data;
	*out = &s->input;
	return 0;
}

static const struct pipe_request_ops slot_ops = { .respond = slot_respond, .decode = slot_decode };
static const struct pipe_request_ops slot_raw_ops = { .respond = slot_respond, .decode = slot_decode,
						      .encode_png = slot_encode_png };

/* ---- frames in ------------------------------------------------------------ */

/* The frame into the slot's own buffers (DDS lends its sample only for the
 * callback). Under s->lock. */
static int keep(struct ros2_slot *s, const struct ros2_frame *f)
{
	if (f->len > s->cap) {
		uint8_t *b = realloc(s->buf, f->len);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		s->cap = f->len;
	}
	memcpy(s->buf, f->data, f->len);
	s->f = *f;
	s->f.data = s->buf;
	snprintf(s->frame_id, sizeof(s->frame_id), "%s", f->frame_id ? f->frame_id : "");
	snprintf(s->encoding, sizeof(s->encoding), "%s", f->encoding ? f->encoding : "");
	snprintf(s->format, sizeof(s->format), "%s", f->format ? f->format : "");
	s->f.frame_id = s->frame_id;
	s->f.encoding = s->encoding;
	s->f.format = s->format;
	return 0;
}

/* Admission under s->lock: -1 dropped (counted), 0 taken (busy set). */
static int admit(struct ros2_slot *s, const struct ros2_frame *f, uint64_t now)
{
	struct pipeline *p = s->br->p;
	enum ros2_drop why;
	char err[256];

	if (atomic_load(&p->quiescing))
		return drop(s, ROS2_DROP_STOPPING, "stopping"), -1;
	if (s->busy)
		return drop(s, ROS2_DROP_BUSY, "busy"), -1;
	if (s->conf.max_rate_hz > 0 && s->last_ns && (double)(now - s->last_ns) < 1e9 / s->conf.max_rate_hz)
		return drop(s, ROS2_DROP_RATE, "rate"), -1;
	if (ros2_frame_check(f, s->m->pp.max_pixels, &s->enc, &why, err, sizeof(err)) < 0)
		return drop(s, why, err), -1;
	if (keep(s, f) < 0)
		return drop(s, ROS2_DROP_QUEUE, "out of memory"), -1;
	s->busy = true;
	s->last_ns = now;
	return 0;
}

static void on_frame(void *ctx, const struct ros2_frame *f)
{
	struct ros2_slot *s = ctx;
	uint64_t now = link_now_ns();
	int r;

	atomic_fetch_add(&s->received, 1);
	pthread_mutex_lock(&s->lock);
	r = admit(s, f, now);
	pthread_mutex_unlock(&s->lock);
	if (r < 0)
		return;
	/* a raw frame's size is known now (a detector's boxes are mapped back
	 * with it, wherever it was preprocessed); a compressed one's once decoded */
	s->info = (struct api_image_info){ .src_width = s->f.compressed ? 0 : (int)s->f.width,
					   .src_height = s->f.compressed ? 0 : (int)s->f.height };
	struct pipe_request rq = {
		.kind = PIPE_REQ_V1, .model = s->m,
		.body = s->f.compressed ? s->f.data : NULL, .body_len = s->f.compressed ? s->f.len : 0,
		.is_image = s->f.compressed,
		.png_bytes = s->f.compressed ? 0 : s->png_bytes, .png_ms = s->png_ms, .image = &s->info,
		.q = { .cut = -1 },
		.received_ns = now, .decode_ns = link_now_ns() - now, .enqueued_ns = link_now_ns(),
		.ops = s->f.compressed ? &slot_ops : &slot_raw_ops, .ctx = s,
	};
	if (pipe_enqueue(s->br->p, &rq) < 0) {
		drop(s, atomic_load(&s->br->p->quiescing) ? ROS2_DROP_STOPPING : ROS2_DROP_QUEUE,
		     "the inference queue is full");
		release(s);
	}
}

/* ---- power --------------------------------------------------------------- */

static char *power_json(struct pipeline *p)
{
	struct power_snapshot snap;
	struct ros2_time t = wall_time();
	json_t *o = json_pack("{s:{s:i, s:I}}", "stamp", "sec", (int)t.sec, "nanosec", (json_int_t)t.nanosec);
	json_t *rails = json_array();
	char *text = NULL;

	if (!o || !rails || !p->power || power_snapshot(p->power, &snap) < 0)
		goto out;
	for (int i = 0; i < snap.n_rails; i++) {
		const struct power_rail_status *rs = &snap.rails[i];
		json_t *j = json_pack("{s:s, s:b, s:o, s:f}", "name", rs->info.name, "input", i == snap.input_rail,
				      "power_w", rs->power_mw >= 0 ? json_real(rs->power_mw / 1e3) : json_null(),
				      "energy_j", rs->energy_uj / 1e6);
		if (!j || json_array_append_new(rails, j) < 0)
			goto out;
	}
	json_object_set(o, "rails", rails);
	text = json_dumps(o, JSON_COMPACT);
out:
	json_decref(rails);
	json_decref(o);
	return text;
}

static void *power_main(void *arg)
{
	struct pipe_ros2 *br = arg;
	uint64_t period_ns = (uint64_t)(1e9 / br->power_hz);
	struct timespec next;

	clock_gettime(CLOCK_MONOTONIC, &next);
	pthread_mutex_lock(&br->stop_lock);
	while (!br->stopping) {
		uint64_t ns = (uint64_t)next.tv_nsec + period_ns;
		next.tv_sec += (time_t)(ns / 1000000000u);
		next.tv_nsec = (long)(ns % 1000000000u);
		if (pthread_cond_timedwait(&br->stop_cond, &br->stop_lock, &next) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&br->stop_lock);
		char *text = power_json(br->p);
		if (text)
			(void)ros2_publish_string(br->power, text);
		free(text);
		pthread_mutex_lock(&br->stop_lock);
	}
	pthread_mutex_unlock(&br->stop_lock);
	return NULL;
}

/* ---- start and stop ------------------------------------------------------- */

static struct pipe_model *model_for(struct pipeline *p, const char *name)
{
	if (!name[0])
		return p->n_models == 1 ? &p->models[0] : NULL;
	for (int i = 0; i < p->n_models; i++)
		if (!strcmp(p->models[i].name, name))
			return &p->models[i];
	return NULL;
}

static int advertise(struct pipe_ros2 *br, const char *topic, enum ros2_msg_type t, struct ros2_pub **out)
{
	char err[256];
	int r;

	if (!topic[0])
		return 0;
	if ((r = ros2_advertise(br->node, topic, t, ROS2_QOS_RELIABLE, out, err, sizeof(err))) < 0)
		return log_err(r, "ros2: %s", err);
	log_info("ros2: publishing %s on %s", ros2_type_name(t), topic);
	return 0;
}

static int slot_start(struct pipe_ros2 *br, struct ros2_slot *s, const struct config_ros2_sub *c)
{
	enum ros2_msg_type t = c->type == CONFIG_ROS2_COMPRESSED ? ROS2_COMPRESSED : ROS2_IMAGE;
	char err[256];
	int r;

	s->br = br;
	s->conf = *c;
	pthread_mutex_init(&s->lock, NULL);
	if (!(s->m = model_for(br->p, c->model)))
		return log_err(-ENOENT, "ros2: [ros2.%s] model '%s': %s", c->name, c->model,
			       c->model[0] ? "no such [model.NAME]" : "name one (there is not exactly one model)");
	if ((r = advertise(br, c->json, ROS2_STRING, &s->json)) < 0 ||
	    (r = advertise(br, c->detections, ROS2_DETECTIONS, &s->dets)) < 0 ||
	    (r = advertise(br, c->classification, ROS2_CLASSIFICATION, &s->cls)) < 0)
		return r;
	r = ros2_subscribe(br->node, c->topic, t, c->qos == CONFIG_ROS2_QOS_RELIABLE ? ROS2_QOS_RELIABLE : ROS2_QOS_SENSOR,
			   on_frame, s, &s->sub, err, sizeof(err));
	if (r < 0)
		return log_err(r, "ros2: [ros2.%s]: %s", c->name, err);
	log_info("ros2: [ros2.%s] %s (%s, %s QoS) -> model %s", c->name, c->topic, ros2_type_name(t),
		 c->qos == CONFIG_ROS2_QOS_RELIABLE ? "reliable" : "sensor", s->m->name);
	return 0;
}

static int domain_id(const struct config *cfg)
{
	const char *env = getenv("ROS_DOMAIN_ID");
	char *end;

	if (cfg->ros2_domain_id >= 0)
		return cfg->ros2_domain_id;
	if (!env || !*env)
		return 0;
	long v = strtol(env, &end, 10);
	if (*end || v < 0 || v > 232) {
		log_warn("ros2: ROS_DOMAIN_ID '%s' is not 0..232: domain 0", env);
		return 0;
	}
	return (int)v;
}

int pipe_ros2_start(struct pipeline *p, struct pipe_ros2 **out)
{
	const struct config *cfg = p->cfg;
	struct pipe_ros2 *br;
	char err[256];
	int r, dom = domain_id(cfg);

	*out = NULL;
	if (cfg->n_ros2_subs == 0 && cfg->ros2_power_rate_hz <= 0)
		return 0;
	if (!(br = calloc(1, sizeof(*br))))
		return -ENOMEM;
	br->p = p;
	pthread_mutex_init(&br->stop_lock, NULL);
	pthread_cond_init(&br->stop_cond, NULL);
	*out = br;
	if ((r = ros2_node_new(dom, cfg->ros2_node, &br->node, err, sizeof(err))) < 0)
		return log_err(r, "ros2: %s", err);
	log_notice("ros2: node %s on DDS domain %d", cfg->ros2_node, dom);
	for (int i = 0; i < cfg->n_ros2_subs; i++) {
		br->n = i + 1;
		if ((r = slot_start(br, &br->slots[i], &cfg->ros2_subs[i])) < 0)
			return r;
	}
	if (cfg->ros2_power_rate_hz > 0 && (r = advertise(br, "~/power", ROS2_STRING, &br->power)) < 0)
		return r;
	if ((r = ros2_node_announce(br->node, err, sizeof(err))) < 0)
		log_warn("ros2: %s (the ROS 2 graph will not name the node)", err);
	if (cfg->ros2_power_rate_hz > 0) {
		br->power_hz = cfg->ros2_power_rate_hz;
		if ((r = -pthread_create(&br->power_thread, NULL, power_main, br)) < 0)
			return log_err(r, "ros2: power thread: %s", strerror(-r));
		br->power_started = true;
	}
	return 0;
}

/* After the workers stopped (no answer is pending): the participant goes
 * (peers see its readers and writers leave at once), then the memory. */
void pipe_ros2_free(struct pipe_ros2 *br)
{
	if (!br)
		return;
	pthread_mutex_lock(&br->stop_lock);
	br->stopping = true;
	pthread_cond_broadcast(&br->stop_cond);
	pthread_mutex_unlock(&br->stop_lock);
	if (br->power_started)
		pthread_join(br->power_thread, NULL);
	ros2_node_free(br->node);
	for (int i = 0; i < br->n; i++) {
		free(br->slots[i].buf);
		free(br->slots[i].input_data);
		pthread_mutex_destroy(&br->slots[i].lock);
	}
	pthread_mutex_destroy(&br->stop_lock);
	pthread_cond_destroy(&br->stop_cond);
	free(br);
}

void pipe_ros2_status(const struct pipe_ros2 *br, char *buf, size_t len)
{
	uint64_t in = 0, done = 0;

	buf[0] = 0;
	if (!br || br->n == 0)
		return;
	for (int i = 0; i < br->n; i++) {
		in += atomic_load(&br->slots[i].received);
		done += atomic_load(&br->slots[i].inferred);
	}
	snprintf(buf, len, "ros2 %d topic%s, %" PRIu64 " frames, %" PRIu64 " answered", br->n, br->n == 1 ? "" : "s",
		 in, done);
}

/* ---- /metrics --------------------------------------------------------------- */

#define FAM(name, type, help) if ((r = api_metrics_family(mx, name, type, help)) < 0) return r
#define VAL(labels, v) if ((r = api_metrics_value(mx, labels, (double)(v))) < 0) return r

int pipe_ros2_metrics(const struct pipe_ros2 *br, struct api_metrics *mx)
{
	int r = 0;

	if (!br || br->n == 0)
		return 0;
	FAM("splitd_ros2_frames_received_total", API_COUNTER, "ROS 2 frames taken from the subscription's topic.");
	for (int i = 0; i < br->n; i++) {
		const char *l[] = { "subscription", br->slots[i].conf.name, "topic", br->slots[i].conf.topic, NULL };
		VAL(l, atomic_load(&br->slots[i].received));
	}
	FAM("splitd_ros2_frames_dropped_total", API_COUNTER,
	    "ROS 2 frames dropped, by reason: rate, busy, encoding, size, empty, too_large, queue, stopping.");
	for (int i = 0; i < br->n; i++)
		for (int d = 0; d < ROS2_DROP_REASONS; d++) {
			const char *l[] = { "subscription", br->slots[i].conf.name, "reason", ros2_drop_name(d), NULL };
			VAL(l, atomic_load(&br->slots[i].dropped[d]));
		}
	FAM("splitd_ros2_frames_lost_total", API_COUNTER,
	    "ROS 2 frames DDS overwrote or rejected before splitd could take them.");
	for (int i = 0; i < br->n; i++) {
		const char *l[] = { "subscription", br->slots[i].conf.name, NULL };
		VAL(l, br->slots[i].sub ? ros2_sub_lost(br->slots[i].sub) : 0);
	}
	FAM("splitd_ros2_frames_inferred_total", API_COUNTER, "ROS 2 frames answered (results published).");
	for (int i = 0; i < br->n; i++) {
		const char *l[] = { "subscription", br->slots[i].conf.name, NULL };
		VAL(l, atomic_load(&br->slots[i].inferred));
	}
	FAM("splitd_ros2_frames_failed_total", API_COUNTER, "ROS 2 frames whose inference failed.");
	for (int i = 0; i < br->n; i++) {
		const char *l[] = { "subscription", br->slots[i].conf.name, NULL };
		VAL(l, atomic_load(&br->slots[i].failed));
	}
	FAM("splitd_ros2_publish_errors_total", API_COUNTER, "Result messages that could not be published.");
	for (int i = 0; i < br->n; i++) {
		const char *l[] = { "subscription", br->slots[i].conf.name, NULL };
		VAL(l, atomic_load(&br->slots[i].publish_errors));
	}
	return 0;
}
