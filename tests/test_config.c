/* Configuration: good files, every kind of bad key and value (each error
 * names the file, the line and the key), checks across keys, the reload
 * merge, and the shipped etc/ files documenting every key with its default. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "pipeline.h"

static char err[1024];

static struct config *load_ok(const char *text)
{
	struct config *cfg = NULL;
	int r = config_load_string(text, "t.conf", &cfg, err, sizeof(err));
	if (r != 0)
		fail_msg("unexpected error %d: %s", r, err);
	r = config_finish(cfg, err, sizeof(err));
	if (r != 0)
		fail_msg("unexpected finish error %d: %s", r, err);
	return cfg;
}

/* Loading fails (at parse or finish) and the message holds every needle. */
static void expect_error(const char *text, const char *needle1, const char *needle2)
{
	struct config *cfg = NULL;

	err[0] = 0;
	int r = config_load_string(text, "t.conf", &cfg, err, sizeof(err));
	if (r == 0) {
		r = config_finish(cfg, err, sizeof(err));
		config_free(cfg);
	}
	if (r >= 0)
		fail_msg("accepted:\n%s", text);
	if (!strstr(err, needle1) || (needle2 && !strstr(err, needle2)))
		fail_msg("error '%s' lacks '%s'/'%s'", err, needle1, needle2 ? needle2 : "");
}

static void test_defaults(void **state)
{
	struct config *cfg = NULL;

	assert_int_equal(config_new_default(&cfg), 0);
	assert_int_equal(config_finish(cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->role, CONFIG_ROLE_ROBOT);
	assert_int_equal(cfg->log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg->threads, 0);
	assert_int_equal(cfg->n_listen, 1);
	assert_string_equal(cfg->listen[0].host, "127.0.0.1");
	assert_int_equal(cfg->listen[0].port, 8080);
	assert_int_equal(cfg->max_body_bytes, 16 * 1024 * 1024);
	assert_int_equal(cfg->queue_depth, 32);
	assert_int_equal(cfg->drain_timeout_s, 20);
	assert_true(cfg->power_enabled);
	assert_int_equal(cfg->power_rate_hz, 100);
	assert_string_equal(cfg->sysfs_root, "/");
	assert_true(cfg->peer_encoding.is_auto);
	assert_int_equal(cfg->peer_encoding.enc.comp, LINK_COMP_NONE);
	assert_int_equal(cfg->policy, CONFIG_POLICY_LATENCY);
	assert_true(cfg->slo_ms == 100.0);
	assert_int_equal(cfg->n_models, 0);
	config_free(cfg);
}

static const char good[] =
	"# a full robot config\n"
	"[daemon]\n"
	"role = robot\n"
	"log_level = debug\n"
	"threads = 6\n"
	"backend = cpu\n"
	"\n"
	"[api]\n"
	"listen = 127.0.0.1:9000, [::1]:9001 ,*:9002\n"
	"listen_unix = /run/splitd/api.sock\n"
	"token = s3cret\n"
	"max_body_bytes = 4M\n"
	"queue_depth = 8\n"
	"drain_timeout_s = 3\n"
	"; semicolon comment\n"
	"[model.resnet18]\n"
	"path = /m/resnet18.onnx\n"
	"input_shape = 1,3,224,224\n"
	"resize = letterbox\n"
	"mean = 0.5, 0.5,0.5\n"
	"std = 0.25,0.25,0.25\n"
	"channel_order = bgr\n"
	"layout = nhwc\n"
	"top_k = 3\n"
	"[model.yolo-v5s]\n"
	"path = /m/yolo.onnx\n"
	"width = 640\n"
	"height = 640\n"
	"postprocess = yolov5\n"
	"score_threshold = 0.4\n"
	"iou_threshold = 0.6\n"
	"max_detections = 100\n"
	"keypoints = 17\n"
	"output_encoding = f16+zstd\n"
	"[power]\n"
	"enabled = no\n"
	"rate_hz = 1000\n"
	"sysfs_root = /tmp/fake\n"
	"estimate_idle_watts = 3.5\n"
	"[peer]\n"
	"url = https://gpu.example:8443\n"
	"cert_file = /etc/splitd/tls/robot.crt\n"
	"key_file = /etc/splitd/tls/robot.key\n"
	"request_timeout_ms = 750\n"
	"encoding = f16+lz4\n"
	"[planner]\n"
	"policy = energy_slo\n"
	"slo_ms = 45.5\n"
	"wifi_interface = wlan0\n"
	"max_bands = 4\n";

static void test_good_file(void **state)
{
	struct config *cfg = load_ok(good);

	assert_int_equal(cfg->log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(cfg->threads, 6);
	assert_int_equal(cfg->backend, CONFIG_BACKEND_CPU);
	assert_int_equal(cfg->n_listen, 3);
	assert_string_equal(cfg->listen[0].host, "127.0.0.1");
	assert_int_equal(cfg->listen[0].port, 9000);
	assert_string_equal(cfg->listen[1].host, "::1");
	assert_int_equal(cfg->listen[1].port, 9001);
	assert_string_equal(cfg->listen[2].host, "*");
	assert_string_equal(cfg->listen_unix, "/run/splitd/api.sock");
	assert_string_equal(cfg->token, "s3cret");
	assert_int_equal(cfg->max_body_bytes, 4 * 1024 * 1024);
	assert_int_equal(cfg->n_models, 2);
	assert_string_equal(cfg->models[0].name, "resnet18");
	assert_int_equal(cfg->models[0].input_rank, 4);
	assert_int_equal(cfg->models[0].input_shape[3], 224);
	assert_int_equal(cfg->models[0].resize, CONFIG_RESIZE_LETTERBOX);
	assert_true(cfg->models[0].std[2] == 0.25);
	assert_int_equal(cfg->models[0].channel_order, CONFIG_CHANNELS_BGR);
	assert_int_equal(cfg->models[0].layout, CONFIG_LAYOUT_NHWC);
	assert_int_equal(cfg->models[0].top_k, 3);
	/* the second model keeps the per-model defaults */
	assert_string_equal(cfg->models[1].name, "yolo-v5s");
	assert_int_equal(cfg->models[1].width, 640);
	assert_int_equal(cfg->models[1].top_k, 5);
	assert_int_equal(cfg->models[1].postprocess, CONFIG_POST_YOLOV5);
	assert_true(cfg->models[1].score_threshold == 0.4 && cfg->models[1].iou_threshold == 0.6);
	assert_int_equal(cfg->models[1].max_detections, 100);
	assert_int_equal(cfg->models[1].keypoints, 17);
	assert_int_equal(cfg->models[1].output_encoding.enc.value, LINK_VALUE_F16);
	assert_int_equal(cfg->models[1].output_encoding.enc.comp, LINK_COMP_ZSTD);
	assert_int_equal(cfg->models[0].postprocess, CONFIG_POST_NONE);
	assert_int_equal(cfg->models[0].max_detections, 300);
	assert_true(cfg->models[1].mean[0] == 0.485);
	assert_int_equal(cfg->models[1].resize, CONFIG_RESIZE_STRETCH);
	assert_false(cfg->power_enabled);
	assert_int_equal(cfg->power_rate_hz, 1000);
	assert_true(cfg->estimate_idle_watts == 3.5);
	assert_int_equal(cfg->peer_request_timeout_ms, 750);
	assert_false(cfg->peer_encoding.is_auto);
	assert_int_equal(cfg->peer_encoding.enc.value, LINK_VALUE_F16);
	assert_int_equal(cfg->peer_encoding.enc.comp, LINK_COMP_LZ4);
	assert_int_equal(cfg->policy, CONFIG_POLICY_ENERGY_SLO);
	assert_true(cfg->slo_ms == 45.5);
	assert_int_equal(cfg->max_bands, 4);
	/* lines are remembered for later messages */
	assert_int_equal(cfg->key_line[3], 6); /* daemon.backend, the 4th key */

	char buf[64];
	assert_int_equal(config_encoding_format(&cfg->peer_encoding, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "f16+lz4");
	config_listen_format(&cfg->listen[1], buf, sizeof(buf));
	assert_string_equal(buf, "[::1]:9001");
	config_free(cfg);
}

static void test_bad_values(void **state)
{
	/* each: text, then what the message must name */
	expect_error("[daemon]\nthreads = 4\nthread = 4\n", "t.conf:3:", "'thread'");
	expect_error("[deamon]\nthreads = 4\n", "t.conf:2:", "[deamon]");
	expect_error("threads = 4\n", "t.conf:1:", "'threads'");
	expect_error("[daemon]\n\nthreads = four\n", "t.conf:3:", "daemon.threads");
	expect_error("[daemon]\nthreads = 4x\n", "t.conf:2:", "not an integer");
	expect_error("[daemon]\nthreads = 5000\n", "t.conf:2:", "out of range 0..1024");
	expect_error("[daemon]\nthreads = -1\n", "t.conf:2:", "daemon.threads");
	expect_error("[daemon]\nrole = robo\n", "t.conf:2:", "robot, peer");
	expect_error("[daemon]\nlog_level = loud\n", "t.conf:2:", "daemon.log_level");
	expect_error("[daemon]\nbackend = tpu\n", "t.conf:2:", "daemon.backend");
	expect_error("[power]\nenabled = maybe\n", "t.conf:2:", "power.enabled");
	expect_error("[power]\nrate_hz = 0\n", "t.conf:2:", "power.rate_hz");
	expect_error("[power]\nestimate_idle_watts = lots\n", "t.conf:2:", "power.estimate_idle_watts");
	expect_error("[power]\nestimate_idle_watts = nan\n", "t.conf:2:", "not a number");
	expect_error("[api]\nlisten = 127.0.0.1\n", "t.conf:2:", "api.listen");
	expect_error("[api]\nlisten = 127.0.0.1:99999\n", "t.conf:2:", "port");
	expect_error("[api]\nlisten = ::1:80\n", "t.conf:2:", "api.listen");
	expect_error("[api]\nlisten = [::g]:80\n", "t.conf:2:", "IPv6");
	expect_error("[api]\nlisten = example.org:80\n", "t.conf:2:", "numeric");
	expect_error("[api]\nmax_body_bytes = 12Q\n", "t.conf:2:", "api.max_body_bytes");
	expect_error("[api]\nmax_body_bytes = 2G\n", "t.conf:2:", "out of range");
	expect_error("[api]\nqueue_depth =\n", "t.conf:2:", "api.queue_depth");
	expect_error("[peer]\nencoding = f8\n", "t.conf:2:", "peer.encoding");
	expect_error("[model.m]\npath = /m.onnx\npostprocess = yolov9\n", "t.conf:3:", "yolov8");
	expect_error("[model.m]\npath = /m.onnx\nscore_threshold = 1.5\n", "t.conf:3:", "score_threshold");
	expect_error("[model.m]\npath = /m.onnx\nmax_detections = 0\n", "t.conf:3:", "max_detections");
	expect_error("[model.m]\npath = /m.onnx\noutput_encoding = f8\n", "t.conf:3:", "output_encoding");
	expect_error("[peer]\nencoding = f16+gzip\n", "t.conf:2:", "peer.encoding");
	expect_error("[planner]\npolicy = fastest\n", "t.conf:2:", "latency, energy, energy_slo");
	expect_error("[planner]\nhysteresis = 1.5\n", "t.conf:2:", "planner.hysteresis");
	/* no interface name is longer than IFNAMSIZ - 1 */
	expect_error("[planner]\nwifi_interface = wlan-much-too-long\n", "t.conf:2:", "at most 15");
	expect_error("[daemon]\nthreads = 1\nthreads = 2\n", "t.conf:3:", "set twice");
	expect_error("[daemon]\nthreads = 1\n  2\n", "t.conf:3:", "daemon.threads");
	expect_error("[daemon]\nthis line has no equals sign\n", "t.conf:2:", "not a [section]");
	expect_error("[daemon\nthreads = 1\n", "t.conf:1:", "not a [section]");
	expect_error("[model.r18]\npath = a.onnx\ninput_shape = 1,3,0,224\n", "t.conf:3:", "input_shape");
	expect_error("[model.r18]\npath = a.onnx\nmean = 1,2\n", "t.conf:3:", "model.r18.mean");
	expect_error("[model.r18]\npath = a.onnx\nstd = 1,0,1\n", "t.conf:3:", "greater than 0");
	expect_error("[model.r18]\npath = a.onnx\nresize = crop\n", "t.conf:3:", "stretch, letterbox");
	expect_error("[model.r18]\npath = a.onnx\nthreads = 2\n", "t.conf:3:", "'threads'");
	expect_error("[model.r18]\ntop_k = 2\n", "[model.r18] has no path", NULL);
	expect_error("[model.a b]\npath = x.onnx\n", "t.conf:2:", "model name");

	/* a line longer than the parser's buffer */
	char text[400];
	snprintf(text, sizeof(text), "[daemon]\nstate_dir = /%0300d\n", 0);
	expect_error(text, "t.conf:2:", "too long");
}

static void test_cross_checks(void **state)
{
	expect_error("[api]\nlisten = 0.0.0.0:8080\n", "t.conf:2:", "api.token");
	expect_error("[api]\nlisten = 127.0.0.1:80, *:8080\n", "beyond loopback", NULL);
	expect_error("[api]\ntoken = a\ntoken_file = /x\n", "t.conf:3:", "not both");
	expect_error("[daemon]\nrole = peer\n", "peer_server.tls_cert", NULL);
	expect_error("[daemon]\nrole = peer\n[api]\nlisten = *:8443\n[peer_server]\nplain = true\n", "t.conf:4:",
		     "only allowed on loopback");
	expect_error("[peer]\nurl = http://127.0.0.1:8081\n", "t.conf:2:", "peer.plain");
	expect_error("[peer]\nurl = http://10.0.0.2:8081\nplain = true\n", "t.conf:2:", "loopback");
	expect_error("[peer]\nurl = ftp://h\n", "t.conf:2:", "https://");
	expect_error("[peer]\ncert_file = /a.crt\n", "peer.key_file", NULL);

	/* the legal forms of the same */
	struct config *cfg = load_ok("[api]\nlisten = *:8080\ntoken_file = /etc/splitd/token\n");
	config_free(cfg);
	cfg = load_ok("[daemon]\nrole = peer\n[peer_server]\nplain = true\n");
	assert_int_equal(cfg->listen[0].port, 8081);
	config_free(cfg);
	cfg = load_ok("[peer]\nurl = http://[::1]:8081\nplain = yes\n");
	config_free(cfg);
}

static void test_flags_override(void **state)
{
	struct config *cfg = NULL;

	assert_int_equal(config_load_string("[daemon]\nthreads = 2\n", "t.conf", &cfg, err, sizeof(err)), 0);
	assert_int_equal(config_set(cfg, "daemon", "threads", "7", "--threads", err, sizeof(err)), 0);
	assert_int_equal(cfg->threads, 7);
	assert_int_equal(cfg->key_line[2], 0); /* no longer from the file */
	assert_true(config_set(cfg, "daemon", "threads", "x", "--threads", err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "--threads"));
	assert_int_equal(config_set(cfg, "api", "listen", "[::1]:0", "--listen", err, sizeof(err)), 0);
	assert_int_equal(cfg->n_listen, 1);
	assert_int_equal(cfg->listen[0].port, 0);
	assert_int_equal(config_set_model_path(cfg, "/models/mobilenet_v2.onnx", err, sizeof(err)), 0);
	assert_int_equal(cfg->n_models, 1);
	assert_string_equal(cfg->models[0].name, "mobilenet_v2");
	assert_string_equal(cfg->models[0].path, "/models/mobilenet_v2.onnx");
	assert_int_equal(cfg->models[0].top_k, 5);
	assert_int_equal(config_finish(cfg, err, sizeof(err)), 0);
	config_free(cfg);
}

static void test_reload_merge(void **state)
{
	struct config *cur = load_ok("[daemon]\nlog_level = info\nthreads = 2\n[api]\nlisten = 127.0.0.1:8080\n"
				     "token = old\n[planner]\npolicy = latency\n[model.a]\npath = a.onnx\n");
	struct config *fresh = load_ok("[daemon]\nlog_level = debug\nthreads = 4\n[api]\nlisten = 127.0.0.1:9090\n"
				       "token = new\n[planner]\npolicy = energy\n[peer]\nrequest_timeout_ms = 900\n"
				       "[model.a]\npath = b.onnx\n");
	struct config *next = NULL;
	char restart[256];

	assert_int_equal(config_merge_reloadable(cur, fresh, &next, restart, sizeof(restart)), 0);
	/* reloadable: taken */
	assert_int_equal(next->log_level, LOG_LEVEL_DEBUG);
	assert_string_equal(next->token, "new");
	assert_int_equal(next->policy, CONFIG_POLICY_ENERGY);
	assert_int_equal(next->peer_request_timeout_ms, 900);
	/* not reloadable: kept, and named */
	assert_int_equal(next->threads, 2);
	assert_int_equal(next->listen[0].port, 8080);
	assert_string_equal(next->models[0].path, "a.onnx");
	assert_non_null(strstr(restart, "daemon.threads"));
	assert_non_null(strstr(restart, "api.listen"));
	assert_non_null(strstr(restart, "models"));
	assert_null(strstr(restart, "log_level"));
	config_free(next);

	/* nothing changed: nothing to restart */
	assert_int_equal(config_merge_reloadable(cur, cur, &next, restart, sizeof(restart)), 0);
	assert_string_equal(restart, "");
	assert_memory_equal(&next->listen, &cur->listen, sizeof(cur->listen));
	config_free(next);
	config_free(cur);
	config_free(fresh);
}

/* Every row of the table: reloadable exactly when it names a hook, every
 * hook it names applied by the running daemon (the start-up check passes),
 * every hook used by some key, and the keys the documentation has long
 * called reloadable still are, through the hook that applies them. */
static void test_reload_hooks(void **state)
{
	struct config_key_info k;
	bool used[CONFIG_APPLY_COUNT] = { false };
	size_t n_reload = 0;

	for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
		assert_int_equal(k.reloadable, k.apply != CONFIG_APPLY_NONE);
		assert_true(k.apply >= CONFIG_APPLY_NONE && k.apply < CONFIG_APPLY_COUNT);
		assert_string_not_equal(config_apply_name(k.apply), "?");
		if (strcmp(k.section, "model.*") == 0)
			assert_false(k.reloadable);	/* models are loaded at start */
		used[k.apply] = true;
		n_reload += k.reloadable;
	}
	assert_int_equal(pipeline_reload_check(err, sizeof(err)), 0);
	for (int a = CONFIG_APPLY_NONE + 1; a < CONFIG_APPLY_COUNT; a++)
		if (!used[a])
			fail_msg("hook %s is named by no key", config_apply_name(a));
	static const struct {
		const char *section, *name;
		enum config_apply apply;
	} want[] = {
		{ "daemon", "log_level", CONFIG_APPLY_LOG_LEVEL },
		{ "api", "token", CONFIG_APPLY_API_TOKEN },
		{ "api", "token_file", CONFIG_APPLY_API_TOKEN },
		{ "power", "rate_hz", CONFIG_APPLY_POWER_RATE },
		{ "power", "estimate_idle_watts", CONFIG_APPLY_POWER_ESTIMATE },
		{ "power", "estimate_core_watts", CONFIG_APPLY_POWER_ESTIMATE },
		{ "peer", "connect_timeout_ms", CONFIG_APPLY_PEER_TIMING },
		{ "peer", "request_timeout_ms", CONFIG_APPLY_PEER_TIMING },
		{ "peer", "probe_interval_ms", CONFIG_APPLY_PEER_TIMING },
		{ "peer", "backoff_max_ms", CONFIG_APPLY_PEER_TIMING },
		{ "peer", "encoding", CONFIG_APPLY_PLANNER },
		{ "planner", "policy", CONFIG_APPLY_PLANNER },
		{ "planner", "slo_ms", CONFIG_APPLY_PLANNER },
		{ "planner", "replan_threshold", CONFIG_APPLY_PLANNER },
		{ "planner", "hysteresis", CONFIG_APPLY_PLANNER },
		{ "planner", "p_compute_w", CONFIG_APPLY_PLANNER },
		{ "planner", "p_tx_w", CONFIG_APPLY_PLANNER },
		{ "planner", "p_wait_w", CONFIG_APPLY_PLANNER },
		{ "planner", "wifi_interface", CONFIG_APPLY_WIFI },
		{ "planner", "probe_idle_ms", CONFIG_APPLY_LINK_PROBE },
		{ "planner", "max_bands", CONFIG_APPLY_PLANNER },
		{ "planner", "band_overhead", CONFIG_APPLY_PLANNER },
	};
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
			if (strcmp(k.section, want[w].section) || strcmp(k.name, want[w].name))
				continue;
			found = true;
			if (k.apply != want[w].apply)
				fail_msg("%s.%s: hook %s, want %s", k.section, k.name, config_apply_name(k.apply),
					 config_apply_name(want[w].apply));
		}
		if (!found)
			fail_msg("no key %s.%s", want[w].section, want[w].name);
	}
	/* and no other key claims a reload */
	assert_int_equal(n_reload, sizeof(want) / sizeof(want[0]));
}

/* Which hooks a change calls, and what is copied. */
static void test_apply_changed(void **state)
{
	struct config *cur = load_ok("[api]\ntoken = old\n[power]\nrate_hz = 50\n[daemon]\nthreads = 2\n");
	struct config *fresh = load_ok("[api]\ntoken = new\n[power]\nrate_hz = 200\nestimate_idle_watts = 3\n"
				       "[daemon]\nthreads = 4\n[planner]\nwifi_interface = wlan1\n");
	bool changed[CONFIG_APPLY_COUNT];
	char keys[256];

	assert_int_equal(config_apply_changed(cur, fresh, changed, keys, sizeof(keys)), 4);
	assert_string_equal(keys, "api.token, power.rate_hz, power.estimate_idle_watts, planner.wifi_interface");
	for (int a = 0; a < CONFIG_APPLY_COUNT; a++)
		assert_int_equal(changed[a], a == CONFIG_APPLY_API_TOKEN || a == CONFIG_APPLY_POWER_RATE ||
					     a == CONFIG_APPLY_POWER_ESTIMATE || a == CONFIG_APPLY_WIFI);
	/* a restart key is not a hook's business */
	assert_int_equal(config_apply_changed(cur, cur, changed, keys, sizeof(keys)), 0);
	assert_string_equal(keys, "");
	for (int a = 0; a < CONFIG_APPLY_COUNT; a++)
		assert_false(changed[a]);

	config_copy_reloadable(cur, fresh);
	assert_string_equal(cur->token, "new");
	assert_int_equal(cur->power_rate_hz, 200);
	assert_true(cur->estimate_idle_watts == 3.0);
	assert_string_equal(cur->wifi_interface, "wlan1");
	assert_int_equal(cur->threads, 2);
	assert_int_equal(config_apply_changed(cur, fresh, changed, keys, sizeof(keys)), 0);
	config_free(cur);
	config_free(fresh);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	static char buf[65536];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* "#name = ..." (a key shown commented out), not a comment sentence. */
static bool is_key_line(const char *line)
{
	size_t n = strspn(line + 1, "abcdefghijklmnopqrstuvwxyz_0123456789");
	return line[0] == '#' && n > 0 && strncmp(line + 1 + n, " =", 2) == 0;
}

/* Whether the comment above the key line at `at` (a "\n#key = ..." inside
 * the section starting at sec) marks it "(reload)": its own comment lines,
 * those of the key it is grouped with (no comment between them), or the
 * section's comment saying every key there is. */
static bool says_reload(const char *sec, const char *at)
{
	const char *all = strstr(sec, "every key here is applied on reload");
	const char *end = at;	/* the '\n' ending the line above */
	bool commented = false;

	if (all && all < at)
		return true;
	while (end > sec) {
		const char *start = end;
		while (start > sec && start[-1] != '\n')
			start--;
		if (start[0] != '#' || (is_key_line(start) && commented))
			return false;
		if (!is_key_line(start)) {
			commented = true;
			if (memmem(start, (size_t)(end - start), "(reload)", 8))
				return true;
		}
		end = start - 1;
	}
	return false;
}

/* etc/splitd.conf is valid, equals the defaults, and shows every key with its
 * default as "#key = default" under its section. */
static void test_shipped_robot_conf(void **state)
{
	struct config *cfg = NULL, *def = NULL;
	const char *path = SPLITD_SOURCE_DIR "/etc/splitd.conf";

	if (config_load(path, &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(config_finish(cfg, err, sizeof(err)), 0);
	assert_int_equal(config_new_default(&def), 0);
	assert_int_equal(config_finish(def, err, sizeof(err)), 0);
	memcpy(def->source, cfg->source, sizeof(def->source));
	assert_memory_equal(cfg, def, sizeof(*cfg));
	config_free(cfg);
	config_free(def);

	const char *text = read_file(path);
	struct config_key_info k;
	for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
		char header[64], line[256];
		if (strcmp(k.section, "model.*") == 0)
			snprintf(header, sizeof(header), "#[model.");
		else if (strcmp(k.section, "ros2.*") == 0)
			snprintf(header, sizeof(header), "#[ros2.");
		else
			snprintf(header, sizeof(header), "\n[%s]\n", k.section);
		const char *sec = strstr(text, header);
		if (!sec)
			fail_msg("etc/splitd.conf has no section %s", header);
		snprintf(line, sizeof(line), "\n#%s =%s%s\n", k.name, k.default_text[0] ? " " : "", k.default_text);
		if (strcmp(k.section, "model.*") == 0 && strcmp(k.name, "path") == 0)
			snprintf(line, sizeof(line), "\n#path = "); /* required: shown with an example */
		if (strcmp(k.section, "ros2.*") == 0 && strcmp(k.name, "topic") == 0)
			snprintf(line, sizeof(line), "\n#topic = "); /* likewise */
		const char *at = strstr(sec, line);
		const char *next_sec = strstr(sec + 2, "\n[");
		if (!at || (next_sec && at > next_sec))
			fail_msg("etc/splitd.conf does not show '%s' in [%s]", line + 1, k.section);
		assert_non_null(k.doc);
		if (strcmp(k.section, "model.*") != 0 && strcmp(k.section, "ros2.*") != 0 &&
		    says_reload(sec, at) != k.reloadable)
			fail_msg("etc/splitd.conf: %s.%s is%s reloadable, its comment says otherwise", k.section, k.name,
				 k.reloadable ? "" : " not");
	}
}

static void test_shipped_peer_conf(void **state)
{
	struct config *cfg = NULL;

	if (config_load(SPLITD_SOURCE_DIR "/etc/splitd-peer.conf", &cfg, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(config_finish(cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->role, CONFIG_ROLE_PEER);
	assert_int_equal(cfg->listen[0].port, 8443);
	assert_string_not_equal(cfg->server_client_ca, "");
	config_free(cfg);
}

static void test_missing_file(void **state)
{
	struct config *cfg = NULL;

	assert_int_equal(config_load("/nonexistent/splitd.conf", &cfg, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/splitd.conf"));
}

/* Garbage never crashes the parser, and is either accepted or explained. */
/* [ros2] and [ros2.NAME] (issue 19): parsed per section, defaults per
 * section, a topic required, unknown keys named, and a changed subscription
 * is a restart, never applied by reload. */
static void test_ros2_sections(void **state)
{
	struct config *cfg = NULL, *fresh = NULL, *next = NULL;
	char restart[256];

	assert_int_equal(config_load_string("[ros2]\ndomain_id = 42\n[ros2.cam]\ntopic = /camera/image_raw\n"
					    "qos = reliable\nmax_rate_hz = 7.5\njson = /splitd/result\n"
					    "[ros2.depth]\ntopic = depth\ntype = image\n",
					    "t", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg->ros2_domain_id, 42);
	assert_string_equal(cfg->ros2_node, "splitd");
	assert_int_equal(cfg->n_ros2_subs, 2);
	assert_string_equal(cfg->ros2_subs[0].name, "cam");
	assert_int_equal(cfg->ros2_subs[0].qos, CONFIG_ROS2_QOS_RELIABLE);
	assert_true(cfg->ros2_subs[0].max_rate_hz == 7.5);
	assert_string_equal(cfg->ros2_subs[0].json, "/splitd/result");
	assert_int_equal(cfg->ros2_subs[1].qos, CONFIG_ROS2_QOS_SENSOR);
	assert_true(cfg->ros2_subs[1].max_rate_hz == 0);
	assert_string_equal(cfg->ros2_subs[1].detections, "");

	assert_int_equal(config_load_string("[ros2.cam]\ntopic = /c\nqos = loud\n", "t", &fresh, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "ros2.cam.qos"));
	assert_int_equal(config_load_string("[ros2.cam]\ntopik = /c\n", "t", &fresh, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "topik"));
	assert_int_equal(config_load_string("[ros2.cam]\ntype = compressed\n", "t", &fresh, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "[ros2.cam] has no topic"));

	assert_int_equal(config_load_string("[ros2]\ndomain_id = 42\n[ros2.cam]\ntopic = /camera/image_raw\n"
					    "qos = reliable\nmax_rate_hz = 10\njson = /splitd/result\n"
					    "[ros2.depth]\ntopic = depth\ntype = image\n",
					    "t", &fresh, err, sizeof(err)), 0);
	assert_int_equal(config_merge_reloadable(cfg, fresh, &next, restart, sizeof(restart)), 0);
	assert_non_null(strstr(restart, "ros2 subscriptions"));
	assert_true(next->ros2_subs[0].max_rate_hz == 7.5);	/* kept until a restart */
	config_free(next);
	config_free(fresh);
	config_free(cfg);
}

static void test_garbage(void **state)
{
	uint32_t seed = 12345;
	char text[512];
	const char alphabet[] = "[]=;#\n \t.:,abcdefghijklmnopqrstuvwxyz0123456789_-+*";

	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(round % 500);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1664525u + 1013904223u;
			text[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		text[n] = 0;
		struct config *cfg = NULL;
		err[0] = 0;
		int r = config_load_string(text, "g.conf", &cfg, err, sizeof(err));
		if (r == 0) {
			config_finish(cfg, err, sizeof(err));
			config_free(cfg);
		} else {
			assert_true(strncmp(err, "g.conf", 6) == 0);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_ros2_sections),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_cross_checks),
		cmocka_unit_test(test_flags_override),
		cmocka_unit_test(test_reload_merge),
		cmocka_unit_test(test_reload_hooks),
		cmocka_unit_test(test_apply_changed),
		cmocka_unit_test(test_shipped_robot_conf),
		cmocka_unit_test(test_shipped_peer_conf),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
