/* The table of configuration keys (redis's config.c): one row per key with
 * its section, name, type, offset, bounds, default (as text, parsed by the
 * same code as the file), the hook that applies it to the running daemon,
 * and one line of documentation. A row with a hook is reloadable (SIGHUP);
 * RESTART rows are read at start only. Per-model keys live in
 * [model.NAME] sections and have offsets into struct config_model.
 *
 * Also here: what reload compares and copies, key by key. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config-impl.h"
#include "plan.h" /* PLAN_MAX_BANDS, the bound of planner.max_bands */

const char *const config_roles[] = { "robot", "peer", NULL };
static const char *const backends[] = { "auto", "cpu", "cuda", NULL };
static const char *const resizes[] = { "stretch", "letterbox", NULL };
static const char *const channels[] = { "rgb", "bgr", NULL };
static const char *const layouts[] = { "nchw", "nhwc", NULL };
static const char *const ros2_types[] = { "image", "compressed", NULL };
static const char *const ros2_qos[] = { "sensor", "reliable", NULL };
static const char *const postprocesses[] = { "none", "classify", "yolov5", "yolov8", NULL };
static const char *const policies[] = { "latency", "energy", "energy_slo", NULL };
/* indexed by enum link_value and enum link_comp */
const char *const config_enc_types[] = { "f32", "f16", "i8", NULL };
const char *const config_enc_zips[] = { "", "zstd", "lz4", NULL };

#define G(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define M(f) offsetof(struct config_model, f), sizeof(((struct config_model *)0)->f)
#define S(f) offsetof(struct config_ros2_sub, f), sizeof(((struct config_ros2_sub *)0)->f)
#define BIG 1e300
#define RESTART CONFIG_APPLY_NONE /* no hook: read at start only */

const struct key config_keys[] = {
	{ "daemon", "role", T_ENUM, G(role), 0, 0, "robot", config_roles, 0, RESTART,
	  "robot (serves the API, runs the head of a model) or peer (runs tails for robots)" },
	{ "daemon", "log_level", T_LOGLEVEL, G(log_level), 0, 0, "info", NULL, 0, CONFIG_APPLY_LOG_LEVEL,
	  "err, warning, notice, info or debug" },
	{ "daemon", "threads", T_INT, G(threads), 0, 1024, "0", NULL, 0, RESTART,
	  "CPU kernel threads; 0 = one per online CPU" },
	{ "daemon", "backend", T_ENUM, G(backend), 0, 0, "auto", backends, 0, RESTART,
	  "cpu, cuda, or auto (cuda when a GPU is usable and runs the model, else cpu)" },
	{ "daemon", "state_dir", T_STR, G(state_dir), 0, 0, "/var/lib/splitd", NULL, 0, RESTART,
	  "where profiles and link estimates persist between runs" },

	{ "api", "listen", T_LISTEN, G(listen), 0, 0, "", NULL, 0, RESTART,
	  "addresses to serve, comma-separated: 127.0.0.1:8080, [::1]:8080, *:8080; "
	  "empty = 127.0.0.1:8080 (robot) or 127.0.0.1:8081 (peer)" },
	{ "api", "listen_unix", T_STR, G(listen_unix), 0, 0, "", NULL, 0, RESTART,
	  "also serve on this unix socket path; empty = none" },
	{ "api", "token", T_STR, G(token), 0, 0, "", NULL, 0, CONFIG_APPLY_API_TOKEN,
	  "bearer token required from clients (required when listening beyond loopback)" },
	{ "api", "token_file", T_STR, G(token_file), 0, 0, "", NULL, 0, CONFIG_APPLY_API_TOKEN,
	  "file holding the bearer token (instead of token); re-read on reload" },
	{ "api", "max_body_bytes", T_SIZE, G(max_body_bytes), 1024, 1024.0 * 1024 * 1024, "16M", NULL, 0, RESTART,
	  "largest request body; larger ones get 413 (suffixes K, M, G)" },
	{ "api", "queue_depth", T_INT, G(queue_depth), 1, 4096, "32", NULL, 0, RESTART,
	  "requests waiting for the engine; beyond it 503 with Retry-After" },
	{ "api", "max_connections", T_INT, G(max_connections), 1, 65535, "64", NULL, 0, RESTART,
	  "open HTTP connections at most" },
	{ "api", "connection_timeout_s", T_INT, G(connection_timeout_s), 1, 3600, "30", NULL, 0, RESTART,
	  "idle HTTP connections are closed after this" },
	{ "api", "drain_timeout_s", T_INT, G(drain_timeout_s), 0, 3600, "20", NULL, 0, RESTART,
	  "on stop, wait this long for requests in flight (keep below TimeoutStopSec)" },

	{ "model.*", "path", T_STR, M(path), 0, 0, "", NULL, F_MODEL, RESTART,
	  "the ONNX file (required)" },
	{ "model.*", "input_shape", T_SHAPE, M(input_shape), 0, 0, "", NULL, F_MODEL, RESTART,
	  "input shape, e.g. 1,3,224,224; empty = from the model" },
	{ "model.*", "resize", T_ENUM, M(resize), 0, 0, "stretch", resizes, F_MODEL, RESTART,
	  "how images are fitted to the input: stretch or letterbox" },
	{ "model.*", "width", T_INT, M(width), 0, 16384, "0", NULL, F_MODEL, RESTART,
	  "input width in pixels; 0 = from the input shape" },
	{ "model.*", "height", T_INT, M(height), 0, 16384, "0", NULL, F_MODEL, RESTART,
	  "input height in pixels; 0 = from the input shape" },
	{ "model.*", "mean", T_TRIPLE, M(mean), -BIG, BIG, "0.485,0.456,0.406", NULL, F_MODEL, RESTART,
	  "per-channel mean subtracted after scaling (R,G,B)" },
	{ "model.*", "std", T_TRIPLE, M(std), 0, BIG, "0.229,0.224,0.225", NULL, F_MODEL | F_POSITIVE, RESTART,
	  "per-channel standard deviation divided by (R,G,B)" },
	{ "model.*", "scale", T_DOUBLE, M(scale), 0, 1e6, "0.00392156862745098", NULL, F_MODEL, RESTART,
	  "pixel values are multiplied by this first (1/255)" },
	{ "model.*", "channel_order", T_ENUM, M(channel_order), 0, 0, "rgb", channels, F_MODEL, RESTART,
	  "rgb or bgr" },
	{ "model.*", "layout", T_ENUM, M(layout), 0, 0, "nchw", layouts, F_MODEL, RESTART,
	  "nchw or nhwc" },
	{ "model.*", "labels", T_STR, M(labels), 0, 0, "", NULL, F_MODEL, RESTART,
	  "text file with one class label per line; enables top_k in responses" },
	{ "model.*", "top_k", T_INT, M(top_k), 0, 1000, "5", NULL, F_MODEL, RESTART,
	  "classes listed in responses when labels are set" },
	{ "model.*", "postprocess", T_ENUM, M(postprocess), 0, 0, "none", postprocesses, F_MODEL, RESTART,
	  "none, classify (top_k of output 0), yolov5 ([1, N, 5+C+3K]) or yolov8 ([1, 4+C+3K, N]) detector "
	  "heads: decoded and NMSed where the model's last node runs, answered as detections" },
	{ "model.*", "score_threshold", T_DOUBLE, M(score_threshold), 0, 1, "0.25", NULL, F_MODEL, RESTART,
	  "detectors: a candidate stays when its score (yolov5: objectness x class) is above this" },
	{ "model.*", "iou_threshold", T_DOUBLE, M(iou_threshold), 0, 1, "0.45", NULL, F_MODEL, RESTART,
	  "detectors: class-aware NMS drops a box overlapping a better one of its class above this IoU" },
	{ "model.*", "max_detections", T_INT, M(max_detections), 1, 10000, "300", NULL, F_MODEL, RESTART,
	  "detectors: the best this many objects are answered" },
	{ "model.*", "keypoints", T_INT, M(keypoints), 0, 1000, "0", NULL, F_MODEL, RESTART,
	  "pose heads: keypoints (x, y, visibility) per object after the class scores, e.g. 17" },
	{ "model.*", "output_encoding", T_ENCODING, M(output_encoding), 0, 0, "auto", NULL, F_MODEL, RESTART,
	  "raw outputs coming back from the peer: f32, f16 or i8, optionally +zstd or +lz4; auto = f32" },

	{ "power", "enabled", T_BOOL, G(power_enabled), 0, 0, "true", NULL, 0, RESTART,
	  "sample the power rails" },
	{ "power", "rate_hz", T_INT, G(power_rate_hz), 1, 10000, "100", NULL, 0, CONFIG_APPLY_POWER_RATE,
	  "sampling rate (capped by the sensor's own update interval)" },
	{ "power", "ring_seconds", T_INT, G(power_ring_seconds), 1, 3600, "60", NULL, 0, RESTART,
	  "seconds of samples kept for energy windows" },
	{ "power", "sysfs_root", T_STR, G(sysfs_root), 0, 0, "/", NULL, 0, RESTART,
	  "root of the sysfs tree searched for sensors (tests use a fake tree)" },
	{ "power", "estimate_idle_watts", T_DOUBLE, G(estimate_idle_watts), 0, 10000, "2.0", NULL, 0, CONFIG_APPLY_POWER_ESTIMATE,
	  "estimate source (no sensor): board power when idle" },
	{ "power", "estimate_core_watts", T_DOUBLE, G(estimate_core_watts), 0, 10000, "1.5", NULL, 0, CONFIG_APPLY_POWER_ESTIMATE,
	  "estimate source: added watts per fully busy core" },
	{ "power", "input_rail", T_STR, G(input_rail), 0, 0, "", NULL, 0, RESTART,
	  "rail that is the board's input; empty = found (VDD_IN, 5V_IN, POM_5V_IN)" },

	{ "peer", "url", T_STR, G(peer_url), 0, 0, "", NULL, 0, RESTART,
	  "the peer splitd (https://host:8443); empty = run everything locally" },
	{ "peer", "plain", T_BOOL, G(peer_plain), 0, 0, "false", NULL, 0, RESTART,
	  "allow an http:// peer url (loopback only)" },
	{ "peer", "allow_unverified", T_BOOL, G(peer_allow_unverified), 0, 0, "false", NULL, 0, RESTART,
	  "accept a peer that does not state its model's sha256 (a Triton server holding an exported tail)" },
	{ "peer", "ca_file", T_STR, G(peer_ca_file), 0, 0, "", NULL, 0, RESTART,
	  "CA bundle that signed the peer's certificate; empty = system store" },
	{ "peer", "cert_file", T_STR, G(peer_cert_file), 0, 0, "", NULL, 0, RESTART,
	  "this robot's client certificate (PEM)" },
	{ "peer", "key_file", T_STR, G(peer_key_file), 0, 0, "", NULL, 0, RESTART,
	  "this robot's client key (PEM)" },
	{ "peer", "connect_timeout_ms", T_INT, G(peer_connect_timeout_ms), 1, 60000, "500", NULL, 0, CONFIG_APPLY_PEER_TIMING,
	  "connect deadline; past it the request runs locally" },
	{ "peer", "request_timeout_ms", T_INT, G(peer_request_timeout_ms), 1, 600000, "2000", NULL, 0, CONFIG_APPLY_PEER_TIMING,
	  "whole-request deadline; past it the request runs locally" },
	{ "peer", "probe_interval_ms", T_INT, G(peer_probe_interval_ms), 10, 600000, "1000", NULL, 0, CONFIG_APPLY_PEER_TIMING,
	  "health probe period of an idle peer (a down one is re-probed as its backoff runs out)" },
	{ "peer", "backoff_max_ms", T_INT, G(peer_backoff_max_ms), 10, 3600000, "30000", NULL, 0, CONFIG_APPLY_PEER_TIMING,
	  "longest wait between reconnects" },
	{ "peer", "encoding", T_ENCODING, G(peer_encoding), 0, 0, "auto", NULL, 0, CONFIG_APPLY_PLANNER,
	  "cut tensors as auto, f32, f16 or i8, optionally +zstd or +lz4 (f16+lz4)" },

	{ "peer_server", "tls_cert", T_STR, G(server_tls_cert), 0, 0, "", NULL, 0, RESTART,
	  "peer role: server certificate (PEM)" },
	{ "peer_server", "tls_key", T_STR, G(server_tls_key), 0, 0, "", NULL, 0, RESTART,
	  "peer role: server key (PEM)" },
	{ "peer_server", "client_ca", T_STR, G(server_client_ca), 0, 0, "", NULL, 0, RESTART,
	  "peer role: CA whose client certificates robots must present" },
	{ "peer_server", "plain", T_BOOL, G(server_plain), 0, 0, "false", NULL, 0, RESTART,
	  "peer role: serve plain HTTP without TLS (loopback listen only)" },
	{ "peer_server", "wavefront", T_BOOL, G(server_wavefront), 0, 0, "true", NULL, 0, RESTART,
	  "peer role: run a banded request's row-local layers as its bands arrive (false: wait for all)" },

	{ "planner", "policy", T_ENUM, G(policy), 0, 0, "latency", policies, 0, CONFIG_APPLY_PLANNER,
	  "latency, energy, or energy_slo (least energy within slo_ms)" },
	{ "planner", "slo_ms", T_DOUBLE, G(slo_ms), 0.001, 3600000, "100", NULL, 0, CONFIG_APPLY_PLANNER,
	  "latency bound for energy_slo" },
	{ "planner", "replan_threshold", T_DOUBLE, G(replan_threshold), 0, 10, "0.2", NULL, 0, CONFIG_APPLY_PLANNER,
	  "re-plan when a link or profile estimate moves by this fraction" },
	{ "planner", "hysteresis", T_DOUBLE, G(hysteresis), 0, 1, "0.1", NULL, 0, CONFIG_APPLY_PLANNER,
	  "a new plan must be this fraction better to replace the current one" },
	{ "planner", "p_compute_w", T_DOUBLE, G(p_compute_w), 0, 10000, "10.0", NULL, 0, CONFIG_APPLY_PLANNER,
	  "robot power while computing, until measured" },
	{ "planner", "p_tx_w", T_DOUBLE, G(p_tx_w), 0, 10000, "6.0", NULL, 0, CONFIG_APPLY_PLANNER,
	  "robot power while transmitting, until measured" },
	{ "planner", "p_wait_w", T_DOUBLE, G(p_wait_w), 0, 10000, "4.0", NULL, 0, CONFIG_APPLY_PLANNER,
	  "robot power while waiting for the peer, until measured" },
	{ "planner", "wifi_interface", T_STR, G(wifi_interface), 0, 0, "", NULL, 0, CONFIG_APPLY_WIFI,
	  "Wi-Fi interface for link telemetry (wlan0, at most 15 characters); empty = none" },
	{ "planner", "probe_idle_ms", T_INT, G(probe_idle_ms), 10, 3600000, "2000", NULL, 0, CONFIG_APPLY_LINK_PROBE,
	  "send a small probe when the link has been idle this long" },
	{ "planner", "max_bands", T_INT, G(max_bands), 1, PLAN_MAX_BANDS, "1", NULL, 0, CONFIG_APPLY_PLANNER,
	  "most bands the planner may choose for a banded (streamed) cut; 1 = layer splits only" },
	{ "planner", "band_overhead", T_DOUBLE, G(band_overhead), 0, 10, "0.25", NULL, 0, CONFIG_APPLY_PLANNER,
	  "extra robot compute of a banded run, as a fraction of the unbanded one" },

	{ "ros2", "domain_id", T_INT, G(ros2_domain_id), -1, 232, "-1", NULL, 0, RESTART,
	  "DDS domain of the ROS 2 topics; -1 = ROS_DOMAIN_ID from the environment, else 0" },
	{ "ros2", "node_name", T_STR, G(ros2_node), 0, 0, "splitd", NULL, 0, RESTART,
	  "the ROS 2 node name: private topics (~/power) are /NAME/..." },
	{ "ros2", "power_rate_hz", T_DOUBLE, G(ros2_power_rate_hz), 0, 100, "0", NULL, 0, RESTART,
	  "publish the power rails as JSON (std_msgs/String) on ~/power this often; 0 = not" },
	{ "ros2.*", "topic", T_STR, S(topic), 0, 0, "", NULL, F_ROS2, RESTART,
	  "the camera's ROS 2 topic, e.g. /camera/image_raw (required)" },
	{ "ros2.*", "type", T_ENUM, S(type), 0, 0, "image", ros2_types, F_ROS2, RESTART,
	  "image (sensor_msgs/Image: rgb8, bgr8, mono8, 16UC1, 32FC1) or compressed (CompressedImage: jpeg, png)" },
	{ "ros2.*", "model", T_STR, S(model), 0, 0, "", NULL, F_ROS2, RESTART,
	  "the [model.NAME] that runs the frames; empty = the only model" },
	{ "ros2.*", "json", T_STR, S(json), 0, 0, "", NULL, F_ROS2, RESTART,
	  "topic for one std_msgs/String JSON answer per frame (the HTTP answer + stamp, frame_id); empty = none" },
	{ "ros2.*", "detections", T_STR, S(detections), 0, 0, "", NULL, F_ROS2, RESTART,
	  "topic for vision_msgs/Detection2DArray (models with detector post-processing); empty = none" },
	{ "ros2.*", "classification", T_STR, S(classification), 0, 0, "", NULL, F_ROS2, RESTART,
	  "topic for vision_msgs/Classification, the top_k classes (models with labels); empty = none" },
	{ "ros2.*", "qos", T_ENUM, S(qos), 0, 0, "sensor", ros2_qos, F_ROS2, RESTART,
	  "sensor (best effort, keep last: ROS 2's sensor data profile) or reliable (ROS 2's default)" },
	{ "ros2.*", "max_rate_hz", T_DOUBLE, S(max_rate_hz), 0, 10000, "0", NULL, F_ROS2, RESTART,
	  "frames closer together than this are dropped and counted; 0 = no limit (a frame arriving "
	  "while the previous one runs is always dropped)" },
	{ "ros2.*", "depth_scale", T_DOUBLE, S(depth_scale), 0, 1e9, "0", NULL, F_ROS2, RESTART,
	  "16UC1/32FC1 depth to grey: value x this, clamped to 0..255; 0 = 10 m white (0.0255/mm, 25.5/m)" },
};

const size_t config_n_keys = sizeof(config_keys) / sizeof(config_keys[0]);
_Static_assert(sizeof(config_keys) / sizeof(config_keys[0]) <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

const struct key *config_find_key(const char *section, const char *name)
{
	unsigned kind = strncmp(section, "model.", 6) == 0 ? F_MODEL :
			strncmp(section, "ros2.", 5) == 0 ? F_ROS2 : 0;

	for (size_t i = 0; i < config_n_keys; i++) {
		const struct key *k = &config_keys[i];
		if (kind != (k->flags & F_SECTION))
			continue;
		if (!kind && strcmp(k->section, section) != 0)
			continue;
		if (strcmp(k->name, name) == 0)
			return k;
	}
	return NULL;
}

/* ---- reload ---- */

static const char *const apply_names[CONFIG_APPLY_COUNT] = {
	[CONFIG_APPLY_NONE] = "restart",
	[CONFIG_APPLY_LOG_LEVEL] = "log_level",
	[CONFIG_APPLY_API_TOKEN] = "api_token",
	[CONFIG_APPLY_POWER_RATE] = "power_rate",
	[CONFIG_APPLY_POWER_ESTIMATE] = "power_estimate",
	[CONFIG_APPLY_PEER_TIMING] = "peer_timing",
	[CONFIG_APPLY_PLANNER] = "planner",
	[CONFIG_APPLY_LINK_PROBE] = "link_probe",
	[CONFIG_APPLY_WIFI] = "wifi",
};

const char *config_apply_name(enum config_apply a)
{
	return a >= 0 && a < CONFIG_APPLY_COUNT && apply_names[a] ? apply_names[a] : "?";
}

/* Bytes of a global key's value (the listen list: all of it, n_listen apart). */
static size_t key_size(const struct key *k)
{
	return k->type == T_LISTEN ? sizeof(((struct config *)0)->listen) : k->size;
}

static bool key_differs(const struct key *k, const struct config *a, const struct config *b)
{
	if (memcmp((const char *)a + k->offset, (const char *)b + k->offset, key_size(k)) != 0)
		return true;
	return k->type == T_LISTEN && a->n_listen != b->n_listen;
}

static size_t list_add(char *buf, size_t len, size_t used, const char *section, const char *name)
{
	if (used >= len)
		return used;
	int n = snprintf(buf + used, len - used, "%s%s%s%s", used ? ", " : "", section, name[0] ? "." : "", name);
	return n < 0 ? used : used + (size_t)n;
}

int config_apply_changed(const struct config *old, const struct config *fresh, bool changed[CONFIG_APPLY_COUNT],
			 char *keys, size_t keys_len)
{
	size_t used = 0;
	int n = 0;

	memset(changed, 0, sizeof(bool) * CONFIG_APPLY_COUNT);
	if (keys_len)
		keys[0] = 0;
	for (size_t i = 0; i < config_n_keys; i++) {
		const struct key *k = &config_keys[i];
		if (k->apply == CONFIG_APPLY_NONE || (k->flags & F_SECTION) || !key_differs(k, old, fresh))
			continue;
		changed[k->apply] = true;
		used = list_add(keys, keys_len, used, k->section, k->name);
		n++;
	}
	return n;
}

void config_copy_reloadable(struct config *dst, const struct config *src)
{
	for (size_t i = 0; i < config_n_keys; i++) {
		const struct key *k = &config_keys[i];
		if (k->apply == CONFIG_APPLY_NONE || (k->flags & F_SECTION))
			continue;
		memcpy((char *)dst + k->offset, (const char *)src + k->offset, key_size(k));
		dst->key_line[i] = src->key_line[i];
	}
}

int config_merge_reloadable(const struct config *cur, const struct config *fresh, struct config **next,
			    char *restart_keys, size_t restart_len)
{
	struct config *n;
	size_t used = 0;
	int r = config_dup(cur, &n);

	if (r < 0)
		return r;
	if (restart_len)
		restart_keys[0] = 0;
	for (size_t i = 0; i < config_n_keys; i++) {
		const struct key *k = &config_keys[i];
		if (k->apply == CONFIG_APPLY_NONE && !(k->flags & F_SECTION) && key_differs(k, cur, fresh))
			used = list_add(restart_keys, restart_len, used, k->section, k->name);
	}
	if (cur->n_models != fresh->n_models ||
	    memcmp(cur->models, fresh->models, sizeof(cur->models[0]) * (size_t)cur->n_models) != 0)
		used = list_add(restart_keys, restart_len, used, "models", "");
	/* ROS 2 subscriptions are made at start: a changed [ros2.NAME] needs a restart */
	if (cur->n_ros2_subs != fresh->n_ros2_subs ||
	    memcmp(cur->ros2_subs, fresh->ros2_subs, sizeof(cur->ros2_subs[0]) * (size_t)cur->n_ros2_subs) != 0)
		used = list_add(restart_keys, restart_len, used, "ros2 subscriptions", "");
	config_copy_reloadable(n, fresh);
	memcpy(n->source, fresh->source, sizeof(n->source));
	*next = n;
	return 0;
}

/* ---- documentation ---- */

size_t config_key_count(void)
{
	return config_n_keys;
}

int config_key_info(size_t i, struct config_key_info *out)
{
	if (i >= config_n_keys)
		return -ENOENT;
	const struct key *k = &config_keys[i];
	*out = (struct config_key_info){ k->section, k->name, k->def, k->apply != CONFIG_APPLY_NONE, k->apply, k->doc };
	return 0;
}
