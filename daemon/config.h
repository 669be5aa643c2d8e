/* splitd's configuration: one INI file (/etc/splitd/splitd.conf), one table
 * of keys in config_keys.c (name, type, bounds, default, apply hook),
 * command-line overrides on top. A loaded config is immutable; pass it as
 * `const struct config *`. Reload builds a new one and keeps the old one
 * when the new file is invalid.
 *
 * Errors fill err[errlen] with one sentence naming the file, line and key.
 */
#ifndef SPLITD_CONFIG_H
#define SPLITD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "link_codec.h"

#define CONFIG_STR_MAX 256
#define CONFIG_PATH_MAX 512
#define CONFIG_MAX_LISTEN 8
#define CONFIG_MAX_MODELS 8
#define CONFIG_MAX_DIMS 8
#define CONFIG_DEFAULT_FILE "/etc/splitd/splitd.conf"

enum config_role { CONFIG_ROLE_ROBOT, CONFIG_ROLE_PEER };
enum config_backend { CONFIG_BACKEND_AUTO, CONFIG_BACKEND_CPU, CONFIG_BACKEND_CUDA };
enum config_resize { CONFIG_RESIZE_STRETCH, CONFIG_RESIZE_LETTERBOX };
enum config_channels { CONFIG_CHANNELS_RGB, CONFIG_CHANNELS_BGR };
enum config_layout { CONFIG_LAYOUT_NCHW, CONFIG_LAYOUT_NHWC };
/* indexed like post/'s enum post_kind (pipe_post.c checks it) */
enum config_postprocess { CONFIG_POST_NONE, CONFIG_POST_CLASSIFY, CONFIG_POST_YOLOV5, CONFIG_POST_YOLOV8 };
enum config_policy { CONFIG_POLICY_LATENCY, CONFIG_POLICY_ENERGY, CONFIG_POLICY_ENERGY_SLO };
/* Cut-tensor encoding (peer.encoding): "auto" (the planner chooses), or
 * one encoding of the wire's own type, struct link_encoding (link/'s
 * front door: the one encoding type; plan/'s index of it is converted in
 * one place, daemon/pipe_split.c). With auto, enc.comp still holds a
 * "+zstd"/"+lz4" that was written, as the text had it. */
struct config_encoding {
	bool is_auto;
	struct link_encoding enc; /* level always 0: the key has no ":LEVEL" */
};

/* "127.0.0.1:8080", "[::1]:8080", "*:8080" (all IPv4+IPv6). */
struct config_listen {
	char host[64]; /* numeric address, without brackets; "*" for any */
	int port;
};

struct config_model {
	char name[64];
	char path[CONFIG_PATH_MAX];
	long long input_shape[CONFIG_MAX_DIMS]; /* empty: from the model */
	int input_rank;
	int resize; /* enum config_resize */
	int width, height; /* 0: from the model's input shape */
	double mean[3], std[3];
	double scale; /* pixel value x scale, then (x - mean) / std */
	int channel_order; /* enum config_channels */
	int layout;        /* enum config_layout */
	char labels[CONFIG_PATH_MAX];
	int top_k;
	/* post-processing (post/post.h): enum config_postprocess, and for the
	 * detector heads their parameters; checked against the model's output
	 * at load */
	int postprocess;
	double score_threshold, iou_threshold;
	int max_detections;
	int keypoints;
	/* raw outputs coming back from the peer (postprocess none or classify,
	 * or ?outputs=raw): "auto" = f32 */
	struct config_encoding output_encoding;
};

/* [ros2.NAME]: one ROS 2 camera subscription (README "ROS 2"). */
#define CONFIG_MAX_ROS2_SUBS 8
enum config_ros2_type { CONFIG_ROS2_IMAGE, CONFIG_ROS2_COMPRESSED };
enum config_ros2_qos { CONFIG_ROS2_QOS_SENSOR, CONFIG_ROS2_QOS_RELIABLE };
struct config_ros2_sub {
	char name[64];
	char topic[CONFIG_STR_MAX];
	int type; /* enum config_ros2_type */
	char model[64]; /* "": the only model */
	char json[CONFIG_STR_MAX], detections[CONFIG_STR_MAX], classification[CONFIG_STR_MAX];
	int qos; /* enum config_ros2_qos */
	double max_rate_hz; /* 0: no limit */
	double depth_scale; /* 0: per encoding */
};

#define CONFIG_MAX_KEYS 112

/* The hooks that apply reloadable keys to the running daemon. Each row of
 * the table names one (several keys may share one); a key is reloadable
 * exactly when it has one, so the documentation cannot promise a reload the
 * daemon does not do. The running daemon implements every hook
 * (pipeline_reload.c) and refuses to start when one is missing. */
enum config_apply {
	CONFIG_APPLY_NONE = 0,		/* needs a restart */
	/* applied in this order, those that can fail first */
	CONFIG_APPLY_API_TOKEN,		/* api.token, api.token_file */
	CONFIG_APPLY_WIFI,		/* planner.wifi_interface */
	CONFIG_APPLY_POWER_RATE,	/* power.rate_hz */
	CONFIG_APPLY_LOG_LEVEL,		/* daemon.log_level */
	CONFIG_APPLY_POWER_ESTIMATE,	/* power.estimate_idle_watts, estimate_core_watts */
	CONFIG_APPLY_PEER_TIMING,	/* peer.connect/request_timeout_ms, probe_interval_ms, backoff_max_ms */
	CONFIG_APPLY_PLANNER,		/* planner.* costs and policy, peer.encoding */
	CONFIG_APPLY_LINK_PROBE,	/* planner.probe_idle_ms */
	CONFIG_APPLY_COUNT
};

struct config {
	char source[CONFIG_PATH_MAX]; /* file it came from; "" for built-in defaults */
	/* line of the file each key of the table was set on; 0: default or flag */
	int key_line[CONFIG_MAX_KEYS];

	/* [daemon] */
	int role; /* enum config_role */
	int log_level;
	int threads; /* 0: one per online CPU */
	int backend; /* enum config_backend */
	char state_dir[CONFIG_PATH_MAX];

	/* [api] */
	struct config_listen listen[CONFIG_MAX_LISTEN];
	int n_listen;
	char listen_unix[CONFIG_PATH_MAX];
	char token[CONFIG_STR_MAX];
	char token_file[CONFIG_PATH_MAX];
	long long max_body_bytes;
	int queue_depth;
	int max_connections;
	int connection_timeout_s;
	int drain_timeout_s;

	/* [model.NAME], one section per model */
	struct config_model models[CONFIG_MAX_MODELS];
	int n_models;

	/* [power] */
	bool power_enabled;
	int power_rate_hz;
	int power_ring_seconds;
	char sysfs_root[CONFIG_PATH_MAX];
	double estimate_idle_watts;
	double estimate_core_watts;
	char input_rail[64]; /* "": found automatically */

	/* [peer]: the robot's link to its peer */
	char peer_url[CONFIG_STR_MAX];
	bool peer_plain;
	bool peer_allow_unverified;
	char peer_ca_file[CONFIG_PATH_MAX];
	char peer_cert_file[CONFIG_PATH_MAX];
	char peer_key_file[CONFIG_PATH_MAX];
	int peer_connect_timeout_ms;
	int peer_request_timeout_ms;
	int peer_probe_interval_ms;
	int peer_backoff_max_ms;
	struct config_encoding peer_encoding;

	/* [peer_server]: the peer role's listener */
	char server_tls_cert[CONFIG_PATH_MAX];
	char server_tls_key[CONFIG_PATH_MAX];
	char server_client_ca[CONFIG_PATH_MAX];
	bool server_plain;
	bool server_wavefront;

	/* [planner] */
	int policy; /* enum config_policy */
	double slo_ms;
	double replan_threshold;
	double hysteresis;
	double p_compute_w, p_tx_w, p_wait_w;
	char wifi_interface[16]; /* IFNAMSIZ: longer is no interface name */
	int probe_idle_ms;
	int max_bands;
	double band_overhead;

	/* [ros2] and [ros2.NAME]: read at start only */
	int ros2_domain_id; /* -1: ROS_DOMAIN_ID, else 0 */
	char ros2_node[64];
	double ros2_power_rate_hz;
	struct config_ros2_sub ros2_subs[CONFIG_MAX_ROS2_SUBS];
	int n_ros2_subs;
};

/* Built-in defaults, no file. */
int config_new_default(struct config **out);
/* Defaults, then the file. */
int config_load(const char *path, struct config **out, char *err, size_t errlen);
/* Parse text as if it were a file named `name` (tests, embedded defaults). */
int config_load_string(const char *text, const char *name, struct config **out, char *err, size_t errlen);
void config_free(struct config *cfg);
int config_dup(const struct config *cfg, struct config **out);

/* Set one key ("section.key", "model.NAME.key" or "ros2.NAME.key") from text, as the command
 * line does; `origin` names the source in errors ("--threads"). */
int config_set(struct config *cfg, const char *section, const char *key, const char *value,
	       const char *origin, char *err, size_t errlen);
/* Replace the model list with one model at `path` (the --model flag). */
int config_set_model_path(struct config *cfg, const char *path, char *err, size_t errlen);
/* Checks across keys (TLS for a peer beyond loopback, token for an API beyond
 * loopback, role defaults) once file and flags are applied. */
int config_finish(struct config *cfg, char *err, size_t errlen);

/* For reload: `next` becomes `cur` with every reloadable key taken from
 * `fresh`. Keys that changed but need a restart are listed in
 * restart_keys ("api.listen, daemon.role"), or "" if none. */
int config_merge_reloadable(const struct config *cur, const struct config *fresh, struct config **next,
			    char *restart_keys, size_t restart_len);

/* Which hooks have a key that differs between old and fresh (changed[hook]),
 * and those keys' "section.key" names, ", "-separated, into keys. Returns
 * how many reloadable keys differ. */
int config_apply_changed(const struct config *old, const struct config *fresh, bool changed[CONFIG_APPLY_COUNT],
			 char *keys, size_t keys_len);
/* Copy every reloadable key of src into dst. */
void config_copy_reloadable(struct config *dst, const struct config *src);
/* "api_token", ... for logs; "?" when out of range. */
const char *config_apply_name(enum config_apply a);

/* The documentation table, for `splitd help config` and the tests. */
struct config_key_info {
	const char *section; /* "model.*" for per-model keys */
	const char *name;
	const char *default_text;
	bool reloadable;	/* apply != CONFIG_APPLY_NONE */
	enum config_apply apply;
	const char *doc;
};
size_t config_key_count(void);
int config_key_info(size_t i, struct config_key_info *out);

const char *config_role_name(int role);
int config_encoding_format(const struct config_encoding *enc, char *buf, size_t len);
int config_listen_format(const struct config_listen *l, char *buf, size_t len);
/* True for 127.0.0.0/8, ::1 and unix sockets. */
bool config_listen_is_loopback(const struct config_listen *l);

#endif
