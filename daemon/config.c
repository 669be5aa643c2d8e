/* The configuration table and its INI parser (Debian's libinih).
 *
 * Every key is one row of `keys[]`: section, name, type, offset, bounds,
 * default (as text, parsed by the same code as the file), reloadable flag and
 * one line of documentation. Per-model keys live in `[model.NAME]` sections
 * and have offsets into struct config_model.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "config.h"
#include "log.h"

enum key_type {
	T_BOOL,     /* bool */
	T_INT,      /* int, bounds */
	T_SIZE,     /* long long bytes, K/M/G suffixes, bounds */
	T_DOUBLE,   /* double, bounds */
	T_ENUM,     /* int index into choices */
	T_LOGLEVEL, /* int syslog priority */
	T_STR,      /* char[size] */
	T_LISTEN,   /* listen[] + n_listen */
	T_SHAPE,    /* input_shape[] + input_rank */
	T_TRIPLE,   /* double[3] */
	T_ENCODING, /* struct config_encoding */
};

#define F_RELOAD 1u /* applied by SIGHUP */
#define F_MODEL 2u  /* in [model.NAME]; offset into struct config_model */
#define F_POSITIVE 4u /* T_TRIPLE: every number > 0 */

struct key {
	const char *section;
	const char *name;
	enum key_type type;
	size_t offset;
	size_t size;
	double min, max;
	const char *def;
	const char *const *choices;
	unsigned flags;
	const char *doc;
};

static const char *const roles[] = { "robot", "peer", NULL };
static const char *const backends[] = { "auto", "cpu", "cuda", NULL };
static const char *const resizes[] = { "stretch", "letterbox", NULL };
static const char *const channels[] = { "rgb", "bgr", NULL };
static const char *const layouts[] = { "nchw", "nhwc", NULL };
static const char *const policies[] = { "latency", "energy", "energy_slo", NULL };
static const char *const enc_types[] = { "auto", "f32", "f16", "i8", NULL };
static const char *const enc_zips[] = { "", "zstd", "lz4", NULL };

#define G(f) offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define M(f) offsetof(struct config_model, f), sizeof(((struct config_model *)0)->f)
#define BIG 1e300

static const struct key keys[] = {
	{ "daemon", "role", T_ENUM, G(role), 0, 0, "robot", roles, 0,
	  "robot (serves the API, runs the head of a model) or peer (runs tails for robots)" },
	{ "daemon", "log_level", T_LOGLEVEL, G(log_level), 0, 0, "info", NULL, F_RELOAD,
	  "err, warning, notice, info or debug" },
	{ "daemon", "threads", T_INT, G(threads), 0, 1024, "0", NULL, 0,
	  "CPU kernel threads; 0 = one per online CPU" },
	{ "daemon", "backend", T_ENUM, G(backend), 0, 0, "auto", backends, 0,
	  "cpu, cuda, or auto (cuda when a GPU is usable)" },
	{ "daemon", "state_dir", T_STR, G(state_dir), 0, 0, "/var/lib/splitd", NULL, 0,
	  "where profiles and link estimates persist between runs" },

	{ "api", "listen", T_LISTEN, G(listen), 0, 0, "", NULL, 0,
	  "addresses to serve, comma-separated: 127.0.0.1:8080, [::1]:8080, *:8080; "
	  "empty = 127.0.0.1:8080 (robot) or 127.0.0.1:8081 (peer)" },
	{ "api", "listen_unix", T_STR, G(listen_unix), 0, 0, "", NULL, 0,
	  "also serve on this unix socket path; empty = none" },
	{ "api", "token", T_STR, G(token), 0, 0, "", NULL, F_RELOAD,
	  "bearer token required from clients (required when listening beyond loopback)" },
	{ "api", "token_file", T_STR, G(token_file), 0, 0, "", NULL, F_RELOAD,
	  "file holding the bearer token (instead of token)" },
	{ "api", "max_body_bytes", T_SIZE, G(max_body_bytes), 1024, 1024.0 * 1024 * 1024, "16M", NULL, 0,
	  "largest request body; larger ones get 413 (suffixes K, M, G)" },
	{ "api", "queue_depth", T_INT, G(queue_depth), 1, 4096, "32", NULL, 0,
	  "requests waiting for the engine; beyond it 503 with Retry-After" },
	{ "api", "max_connections", T_INT, G(max_connections), 1, 65535, "64", NULL, 0,
	  "open HTTP connections at most" },
	{ "api", "connection_timeout_s", T_INT, G(connection_timeout_s), 1, 3600, "30", NULL, 0,
	  "idle HTTP connections are closed after this" },
	{ "api", "drain_timeout_s", T_INT, G(drain_timeout_s), 0, 3600, "20", NULL, 0,
	  "on stop, wait this long for requests in flight (keep below TimeoutStopSec)" },

	{ "model.*", "path", T_STR, M(path), 0, 0, "", NULL, F_MODEL,
	  "the ONNX file (required)" },
	{ "model.*", "input_shape", T_SHAPE, M(input_shape), 0, 0, "", NULL, F_MODEL,
	  "input shape, e.g. 1,3,224,224; empty = from the model" },
	{ "model.*", "resize", T_ENUM, M(resize), 0, 0, "stretch", resizes, F_MODEL,
	  "how images are fitted to the input: stretch or letterbox" },
	{ "model.*", "width", T_INT, M(width), 0, 16384, "0", NULL, F_MODEL,
	  "input width in pixels; 0 = from the input shape" },
	{ "model.*", "height", T_INT, M(height), 0, 16384, "0", NULL, F_MODEL,
	  "input height in pixels; 0 = from the input shape" },
	{ "model.*", "mean", T_TRIPLE, M(mean), -BIG, BIG, "0.485,0.456,0.406", NULL, F_MODEL,
	  "per-channel mean subtracted after scaling (R,G,B)" },
	{ "model.*", "std", T_TRIPLE, M(std), 0, BIG, "0.229,0.224,0.225", NULL, F_MODEL | F_POSITIVE,
	  "per-channel standard deviation divided by (R,G,B)" },
	{ "model.*", "scale", T_DOUBLE, M(scale), 0, 1e6, "0.00392156862745098", NULL, F_MODEL,
	  "pixel values are multiplied by this first (1/255)" },
	{ "model.*", "channel_order", T_ENUM, M(channel_order), 0, 0, "rgb", channels, F_MODEL,
	  "rgb or bgr" },
	{ "model.*", "layout", T_ENUM, M(layout), 0, 0, "nchw", layouts, F_MODEL,
	  "nchw or nhwc" },
	{ "model.*", "labels", T_STR, M(labels), 0, 0, "", NULL, F_MODEL,
	  "text file with one class label per line; enables top_k in responses" },
	{ "model.*", "top_k", T_INT, M(top_k), 0, 1000, "5", NULL, F_MODEL,
	  "classes listed in responses when labels are set" },

	{ "power", "enabled", T_BOOL, G(power_enabled), 0, 0, "true", NULL, 0,
	  "sample the power rails" },
	{ "power", "rate_hz", T_INT, G(power_rate_hz), 1, 10000, "100", NULL, F_RELOAD,
	  "sampling rate (capped by the sensor's own update interval)" },
	{ "power", "ring_seconds", T_INT, G(power_ring_seconds), 1, 3600, "60", NULL, 0,
	  "seconds of samples kept for energy windows" },
	{ "power", "sysfs_root", T_STR, G(sysfs_root), 0, 0, "/", NULL, 0,
	  "root of the sysfs tree searched for sensors (tests use a fake tree)" },
	{ "power", "estimate_idle_watts", T_DOUBLE, G(estimate_idle_watts), 0, 10000, "2.0", NULL, F_RELOAD,
	  "estimate source (no sensor): board power when idle" },
	{ "power", "estimate_core_watts", T_DOUBLE, G(estimate_core_watts), 0, 10000, "1.5", NULL, F_RELOAD,
	  "estimate source: added watts per fully busy core" },
	{ "power", "input_rail", T_STR, G(input_rail), 0, 0, "", NULL, 0,
	  "rail that is the board's input; empty = found (VDD_IN, 5V_IN, POM_5V_IN)" },

	{ "peer", "url", T_STR, G(peer_url), 0, 0, "", NULL, 0,
	  "the peer splitd (https://host:8443); empty = run everything locally" },
	{ "peer", "plain", T_BOOL, G(peer_plain), 0, 0, "false", NULL, 0,
	  "allow an http:// peer url (loopback only)" },
	{ "peer", "allow_unverified", T_BOOL, G(peer_allow_unverified), 0, 0, "false", NULL, 0,
	  "accept a peer that does not state its model's sha256 (a Triton server holding an exported tail)" },
	{ "peer", "ca_file", T_STR, G(peer_ca_file), 0, 0, "", NULL, 0,
	  "CA bundle that signed the peer's certificate; empty = system store" },
	{ "peer", "cert_file", T_STR, G(peer_cert_file), 0, 0, "", NULL, 0,
	  "this robot's client certificate (PEM)" },
	{ "peer", "key_file", T_STR, G(peer_key_file), 0, 0, "", NULL, 0,
	  "this robot's client key (PEM)" },
	{ "peer", "connect_timeout_ms", T_INT, G(peer_connect_timeout_ms), 1, 60000, "500", NULL, F_RELOAD,
	  "connect deadline; past it the request runs locally" },
	{ "peer", "request_timeout_ms", T_INT, G(peer_request_timeout_ms), 1, 600000, "2000", NULL, F_RELOAD,
	  "whole-request deadline; past it the request runs locally" },
	{ "peer", "probe_interval_ms", T_INT, G(peer_probe_interval_ms), 10, 600000, "1000", NULL, F_RELOAD,
	  "health probe period while the peer is down" },
	{ "peer", "backoff_max_ms", T_INT, G(peer_backoff_max_ms), 10, 3600000, "30000", NULL, F_RELOAD,
	  "longest wait between reconnects" },
	{ "peer", "encoding", T_ENCODING, G(peer_encoding), 0, 0, "auto", NULL, F_RELOAD,
	  "cut tensors as auto, f32, f16 or i8, optionally +zstd or +lz4 (f16+lz4)" },

	{ "peer_server", "tls_cert", T_STR, G(server_tls_cert), 0, 0, "", NULL, 0,
	  "peer role: server certificate (PEM)" },
	{ "peer_server", "tls_key", T_STR, G(server_tls_key), 0, 0, "", NULL, 0,
	  "peer role: server key (PEM)" },
	{ "peer_server", "client_ca", T_STR, G(server_client_ca), 0, 0, "", NULL, 0,
	  "peer role: CA whose client certificates robots must present" },
	{ "peer_server", "plain", T_BOOL, G(server_plain), 0, 0, "false", NULL, 0,
	  "peer role: serve plain HTTP without TLS (loopback listen only)" },
	{ "peer_server", "wavefront", T_BOOL, G(server_wavefront), 0, 0, "true", NULL, 0,
	  "peer role: run a banded request's row-local layers as its bands arrive (false: wait for all)" },

	{ "planner", "policy", T_ENUM, G(policy), 0, 0, "latency", policies, F_RELOAD,
	  "latency, energy, or energy_slo (least energy within slo_ms)" },
	{ "planner", "slo_ms", T_DOUBLE, G(slo_ms), 0.001, 3600000, "100", NULL, F_RELOAD,
	  "latency bound for energy_slo" },
	{ "planner", "replan_threshold", T_DOUBLE, G(replan_threshold), 0, 10, "0.2", NULL, F_RELOAD,
	  "re-plan when a link or profile estimate moves by this fraction" },
	{ "planner", "hysteresis", T_DOUBLE, G(hysteresis), 0, 1, "0.1", NULL, F_RELOAD,
	  "a new plan must be this fraction better to replace the current one" },
	{ "planner", "p_compute_w", T_DOUBLE, G(p_compute_w), 0, 10000, "10.0", NULL, F_RELOAD,
	  "robot power while computing, until measured" },
	{ "planner", "p_tx_w", T_DOUBLE, G(p_tx_w), 0, 10000, "6.0", NULL, F_RELOAD,
	  "robot power while transmitting, until measured" },
	{ "planner", "p_wait_w", T_DOUBLE, G(p_wait_w), 0, 10000, "4.0", NULL, F_RELOAD,
	  "robot power while waiting for the peer, until measured" },
	{ "planner", "wifi_interface", T_STR, G(wifi_interface), 0, 0, "", NULL, F_RELOAD,
	  "Wi-Fi interface for link telemetry (wlan0); empty = none" },
	{ "planner", "probe_idle_ms", T_INT, G(probe_idle_ms), 10, 3600000, "2000", NULL, F_RELOAD,
	  "send a small probe when the link has been idle this long" },
	{ "planner", "max_bands", T_INT, G(max_bands), 1, 64, "1", NULL, F_RELOAD,
	  "most bands the planner may choose for a banded (streamed) cut; 1 = layer splits only" },
	{ "planner", "band_overhead", T_DOUBLE, G(band_overhead), 0, 10, "0.25", NULL, F_RELOAD,
	  "extra robot compute of a banded run, as a fraction of the unbanded one" },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(N_KEYS <= CONFIG_MAX_KEYS, "raise CONFIG_MAX_KEYS");

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int find_choice(const char *const *choices, const char *v)
{
	for (int i = 0; choices[i]; i++)
		if (strcasecmp(choices[i], v) == 0)
			return i;
	return -1;
}

static void choices_text(const char *const *choices, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = 0;
	for (int i = 0; choices[i] && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", choices[i]);
}

static int parse_ll(const char *v, long long *out)
{
	char *end;

	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (end == v || errno)
		return -EINVAL;
	while (isspace((unsigned char)*end))
		end++;
	if (*end)
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_double(const char *v, double *out, char **rest)
{
	char *end;

	errno = 0;
	double x = strtod(v, &end);
	if (end == v || errno || !isfinite(x))
		return -EINVAL;
	*out = x;
	if (rest)
		*rest = end;
	else {
		while (isspace((unsigned char)*end))
			end++;
		if (*end)
			return -EINVAL;
	}
	return 0;
}

static int parse_listen_one(const char *item, struct config_listen *l, char *why, size_t whylen)
{
	char host[64];
	const char *colon;
	long long port;

	memset(l, 0, sizeof(*l));
	if (item[0] == '[') {
		const char *close = strchr(item, ']');
		if (!close || close[1] != ':') {
			snprintf(why, whylen, "'%s': IPv6 addresses are written [addr]:port", item);
			return -EINVAL;
		}
		size_t n = (size_t)(close - item - 1);
		if (n >= sizeof(host)) {
			snprintf(why, whylen, "'%s': address too long", item);
			return -EINVAL;
		}
		memcpy(host, item + 1, n);
		host[n] = 0;
		colon = close + 1;
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1) {
			snprintf(why, whylen, "'%s': not a numeric IPv6 address", host);
			return -EINVAL;
		}
	} else {
		colon = strrchr(item, ':');
		if (!colon) {
			snprintf(why, whylen, "'%s': expected ADDRESS:PORT", item);
			return -EINVAL;
		}
		size_t n = (size_t)(colon - item);
		if (n == 0 || n >= sizeof(host)) {
			snprintf(why, whylen, "'%s': expected ADDRESS:PORT", item);
			return -EINVAL;
		}
		memcpy(host, item, n);
		host[n] = 0;
		if (strcmp(host, "localhost") == 0)
			strcpy(host, "127.0.0.1");
		struct in_addr a4;
		if (strcmp(host, "*") != 0 && inet_pton(AF_INET, host, &a4) != 1) {
			snprintf(why, whylen, "'%s': not a numeric IPv4 address (IPv6: [addr]:port, any: *:port)", host);
			return -EINVAL;
		}
	}
	if (parse_ll(colon + 1, &port) < 0 || port < 0 || port > 65535) {
		snprintf(why, whylen, "'%s': port must be 0..65535", item);
		return -EINVAL;
	}
	strcpy(l->host, host);
	l->port = (int)port;
	return 0;
}

/* Parse `v` for key `k` into `base` (struct config or struct config_model).
 * On failure writes the reason (without key or line) into why. */
static int parse_value(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
	char tmp[256];

	switch (k->type) {
	case T_BOOL: {
		bool b;
		if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") || !strcmp(v, "1"))
			b = true;
		else if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") || !strcmp(v, "0"))
			b = false;
		else {
			snprintf(why, whylen, "'%s' is not a boolean (true or false)", v);
			return -EINVAL;
		}
		memcpy(dst, &b, sizeof(b));
		return 0;
	}
	case T_INT: {
		long long x;
		if (parse_ll(v, &x) < 0) {
			snprintf(why, whylen, "'%s' is not an integer", v);
			return -EINVAL;
		}
		if (x < (long long)k->min || x > (long long)k->max) {
			snprintf(why, whylen, "%lld is out of range %lld..%lld", x, (long long)k->min, (long long)k->max);
			return -ERANGE;
		}
		int i = (int)x;
		memcpy(dst, &i, sizeof(i));
		return 0;
	}
	case T_SIZE: {
		char *end;
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (end == v || errno) {
			snprintf(why, whylen, "'%s' is not a size (bytes, or with K, M, G)", v);
			return -EINVAL;
		}
		long long mul = 1;
		if (*end == 'K' || *end == 'k')
			mul = 1024, end++;
		else if (*end == 'M' || *end == 'm')
			mul = 1024 * 1024, end++;
		else if (*end == 'G' || *end == 'g')
			mul = 1024LL * 1024 * 1024, end++;
		if (*end) {
			snprintf(why, whylen, "'%s' is not a size (bytes, or with K, M, G)", v);
			return -EINVAL;
		}
		if (x < 0 || x > LLONG_MAX / mul || (double)(x * mul) < k->min || (double)(x * mul) > k->max) {
			snprintf(why, whylen, "'%s' is out of range %.0f..%.0f bytes", v, k->min, k->max);
			return -ERANGE;
		}
		x *= mul;
		memcpy(dst, &x, sizeof(x));
		return 0;
	}
	case T_DOUBLE: {
		double x;
		if (parse_double(v, &x, NULL) < 0) {
			snprintf(why, whylen, "'%s' is not a number", v);
			return -EINVAL;
		}
		if (x < k->min || x > k->max) {
			snprintf(why, whylen, "%g is out of range %g..%g", x, k->min, k->max);
			return -ERANGE;
		}
		memcpy(dst, &x, sizeof(x));
		return 0;
	}
	case T_ENUM: {
		int i = find_choice(k->choices, v);
		if (i < 0) {
			choices_text(k->choices, tmp, sizeof(tmp));
			snprintf(why, whylen, "'%s' is not one of: %s", v, tmp);
			return -EINVAL;
		}
		memcpy(dst, &i, sizeof(i));
		return 0;
	}
	case T_LOGLEVEL: {
		int level;
		if (log_level_parse(v, &level) < 0) {
			snprintf(why, whylen, "'%s' is not one of: err, warning, notice, info, debug", v);
			return -EINVAL;
		}
		memcpy(dst, &level, sizeof(level));
		return 0;
	}
	case T_STR: {
		size_t n = strlen(v);
		if (n >= k->size) {
			snprintf(why, whylen, "value is %zu characters, at most %zu allowed", n, k->size - 1);
			return -ENAMETOOLONG;
		}
		memset(dst, 0, k->size);
		memcpy(dst, v, n);
		return 0;
	}
	case T_LISTEN: {
		struct config *cfg = base;
		struct config_listen list[CONFIG_MAX_LISTEN];
		int n = 0;
		const char *p = v;

		memset(list, 0, sizeof(list));
		while (*p) {
			while (*p == ',' || isspace((unsigned char)*p))
				p++;
			if (!*p)
				break;
			size_t len = strcspn(p, ", \t");
			if (len >= sizeof(tmp)) {
				snprintf(why, whylen, "address too long");
				return -EINVAL;
			}
			if (n == CONFIG_MAX_LISTEN) {
				snprintf(why, whylen, "more than %d addresses", CONFIG_MAX_LISTEN);
				return -E2BIG;
			}
			memcpy(tmp, p, len);
			tmp[len] = 0;
			if (parse_listen_one(tmp, &list[n], why, whylen) < 0)
				return -EINVAL;
			n++;
			p += len;
		}
		memcpy(cfg->listen, list, sizeof(list));
		cfg->n_listen = n;
		return 0;
	}
	case T_SHAPE: {
		struct config_model *m = base;
		long long dims[CONFIG_MAX_DIMS] = { 0 };
		int n = 0;
		const char *p = v;

		while (*p) {
			while (*p == ',' || isspace((unsigned char)*p))
				p++;
			if (!*p)
				break;
			char *end;
			errno = 0;
			long long d = strtoll(p, &end, 10);
			if (end == p || errno || d < 1 || d > 1000000 || (*end && *end != ',' && !isspace((unsigned char)*end))) {
				snprintf(why, whylen, "'%s' is not a list of positive dimensions (1,3,224,224)", v);
				return -EINVAL;
			}
			if (n == CONFIG_MAX_DIMS) {
				snprintf(why, whylen, "more than %d dimensions", CONFIG_MAX_DIMS);
				return -E2BIG;
			}
			dims[n++] = d;
			p = end;
		}
		memcpy(m->input_shape, dims, sizeof(dims));
		m->input_rank = n;
		return 0;
	}
	case T_TRIPLE: {
		double x[3];
		const char *p = v;
		for (int i = 0; i < 3; i++) {
			char *end;
			while (isspace((unsigned char)*p))
				p++;
			if (parse_double(p, &x[i], &end) < 0)
				goto bad_triple;
			if ((k->flags & F_POSITIVE) ? !(x[i] > 0) : (x[i] < k->min || x[i] > k->max)) {
				snprintf(why, whylen, "'%s': each value must be %s", v,
					 (k->flags & F_POSITIVE) ? "greater than 0" : "finite");
				return -ERANGE;
			}
			while (isspace((unsigned char)*end))
				end++;
			if (i < 2 && *end != ',')
				goto bad_triple;
			if (i == 2 && *end)
				goto bad_triple;
			p = end + 1;
		}
		memcpy(dst, x, sizeof(x));
		return 0;
	bad_triple:
		snprintf(why, whylen, "'%s' is not three numbers (R,G,B)", v);
		return -EINVAL;
	}
	case T_ENCODING: {
		struct config_encoding e = { 0, 0 };
		const char *plus = strchr(v, '+');
		size_t n = plus ? (size_t)(plus - v) : strlen(v);
		if (n >= sizeof(tmp))
			n = sizeof(tmp) - 1;
		memcpy(tmp, v, n);
		tmp[n] = 0;
		e.type = find_choice(enc_types, tmp);
		if (plus) {
			e.zip = find_choice(enc_zips, plus + 1);
			if (e.zip <= 0)
				e.type = -1;
		}
		if (e.type < 0) {
			snprintf(why, whylen, "'%s' is not auto, f32, f16 or i8, optionally with +zstd or +lz4", v);
			return -EINVAL;
		}
		memcpy(dst, &e, sizeof(e));
		return 0;
	}
	}
	snprintf(why, whylen, "internal: unknown key type");
	return -EINVAL;
}

static const struct key *find_key(const char *section, const char *name)
{
	bool model = strncmp(section, "model.", 6) == 0;

	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		if (model != !!(k->flags & F_MODEL))
			continue;
		if (!model && strcmp(k->section, section) != 0)
			continue;
		if (strcmp(k->name, name) == 0)
			return k;
	}
	return NULL;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!(keys[i].flags & F_MODEL) && strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

static void apply_model_defaults(struct config_model *m)
{
	char why[128];

	for (size_t i = 0; i < N_KEYS; i++) {
		if (!(keys[i].flags & F_MODEL))
			continue;
		(void)parse_value(&keys[i], m, keys[i].def, why, sizeof(why));
	}
}

static bool valid_model_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= sizeof(((struct config_model *)0)->name))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			return false;
	return true;
}

/* Model by name; created with defaults if absent. */
static int model_get(struct config *cfg, const char *name, struct config_model **out, char *why, size_t whylen)
{
	for (int i = 0; i < cfg->n_models; i++) {
		if (strcmp(cfg->models[i].name, name) == 0) {
			*out = &cfg->models[i];
			return 0;
		}
	}
	if (!valid_model_name(name)) {
		snprintf(why, whylen, "model name '%s' must be 1-63 letters, digits, '_', '-' or '.'", name);
		return -EINVAL;
	}
	if (cfg->n_models == CONFIG_MAX_MODELS) {
		snprintf(why, whylen, "more than %d models", CONFIG_MAX_MODELS);
		return -E2BIG;
	}
	struct config_model *m = &cfg->models[cfg->n_models++];
	memset(m, 0, sizeof(*m));
	apply_model_defaults(m);
	strcpy(m->name, name);
	*out = m;
	return 0;
}

int config_new_default(struct config **out)
{
	char why[128];
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return -ENOMEM;
	for (size_t i = 0; i < N_KEYS; i++) {
		if (keys[i].flags & F_MODEL)
			continue;
		int r = parse_value(&keys[i], cfg, keys[i].def, why, sizeof(why));
		if (r < 0) {
			/* a bad default in the table is a programmer error */
			free(cfg);
			return r;
		}
	}
	*out = cfg;
	return 0;
}

void config_free(struct config *cfg)
{
	free(cfg);
}

int config_dup(const struct config *cfg, struct config **out)
{
	struct config *c = malloc(sizeof(*c));

	if (!c)
		return -ENOMEM;
	memcpy(c, cfg, sizeof(*c));
	*out = c;
	return 0;
}

/* ---- the INI file ---- */

struct text_stream {
	const char *text;
	size_t pos, len;
	int line;       /* line last handed to inih */
	int long_line;  /* first line longer than inih's buffer, 0 if none */
};

struct parse_ctx {
	struct config *cfg;
	struct text_stream *in;
	const char *name; /* file name, for messages */
	unsigned char seen[N_KEYS];
	unsigned char model_seen[CONFIG_MAX_MODELS][N_KEYS];
	int err_line; /* first error found by the handler, 0 if none */
	int err_code;
	char *err;
	size_t errlen;
};

static char *stream_reader(char *str, int num, void *stream)
{
	struct text_stream *s = stream;

	if (s->pos >= s->len || s->long_line)
		return NULL;
	const char *start = s->text + s->pos;
	const char *nl = memchr(start, '\n', s->len - s->pos);
	size_t n = nl ? (size_t)(nl - start) + 1 : s->len - s->pos;
	s->line++;
	if (n >= (size_t)num) {
		s->long_line = s->line;
		return NULL;
	}
	memcpy(str, start, n);
	str[n] = 0;
	s->pos += n;
	return str;
}

static int handler_fail(struct parse_ctx *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int handler_fail(struct parse_ctx *ctx, int code, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	if (ctx->err_line)
		return 0; /* keep the first error */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ctx->err_line = ctx->in->line;
	ctx->err_code = code;
	set_err(ctx->err, ctx->errlen, "%s:%d: %s", ctx->name, ctx->in->line, msg);
	return 0;
}

static int ini_handler_fn(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *ctx = user;
	char why[384];
	const struct key *k;
	void *base;
	unsigned char *seen;

	if (ctx->err_line)
		return 0;
	if (!section[0])
		return handler_fail(ctx, -EINVAL, "key '%s' before any [section]", name);
	bool model = strncmp(section, "model.", 6) == 0;
	if (!model && !known_section(section))
		return handler_fail(ctx, -ENOENT, "unknown section [%s] (key '%s')", section, name);
	k = find_key(section, name);
	if (!k)
		return handler_fail(ctx, -ENOENT, "unknown key '%s' in [%s]", name, section);
	size_t idx = (size_t)(k - keys);
	if (model) {
		struct config_model *m;
		if (model_get(ctx->cfg, section + 6, &m, why, sizeof(why)) < 0)
			return handler_fail(ctx, -EINVAL, "[%s]: %s", section, why);
		base = m;
		seen = &ctx->model_seen[m - ctx->cfg->models][idx];
	} else {
		base = ctx->cfg;
		seen = &ctx->seen[idx];
	}
	if (*seen)
		return handler_fail(ctx, -EEXIST, "%s.%s is set twice (or continued on an indented line)", section, name);
	*seen = 1;
	int r = parse_value(k, base, value, why, sizeof(why));
	if (r < 0)
		return handler_fail(ctx, r, "%s.%s: %s", section, name, why);
	if (!model)
		ctx->cfg->key_line[idx] = ctx->in->line;
	return 1;
}

int config_load_string(const char *text, const char *name, struct config **out, char *err, size_t errlen)
{
	struct config *cfg = NULL;
	struct text_stream in = { .text = text, .len = strlen(text) };
	struct parse_ctx *ctx = NULL;
	int r = config_new_default(&cfg);

	if (r < 0)
		goto out;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		r = -ENOMEM;
		goto out;
	}
	*ctx = (struct parse_ctx){ .cfg = cfg, .in = &in, .name = name, .err = err, .errlen = errlen };
	snprintf(cfg->source, sizeof(cfg->source), "%s", name);

	int line = ini_parse_stream(stream_reader, &in, ini_handler_fn, ctx);
	if (in.long_line && (!ctx->err_line || in.long_line < ctx->err_line)) {
		set_err(err, errlen, "%s:%d: line too long (at most 196 characters)", name, in.long_line);
		r = -EINVAL;
		goto out;
	}
	if (line > 0 && (!ctx->err_line || line < ctx->err_line)) {
		set_err(err, errlen, "%s:%d: not a [section] or key = value line", name, line);
		r = -EINVAL;
		goto out;
	}
	if (ctx->err_line) {
		r = ctx->err_code;
		goto out;
	}
	if (line < 0) {
		set_err(err, errlen, "%s: cannot parse (out of memory)", name);
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < cfg->n_models; i++) {
		if (!cfg->models[i].path[0]) {
			set_err(err, errlen, "%s: [model.%s] has no path", name, cfg->models[i].name);
			r = -EINVAL;
			goto out;
		}
	}
	*out = cfg;
	cfg = NULL;
	r = 0;
out:
	free(ctx);
	config_free(cfg);
	return r;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	int r;

	if (!f) {
		r = -errno;
		set_err(err, errlen, "%s: %s", path, strerror(errno));
		return r;
	}
	text = malloc(1024 * 1024 + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	size_t n = fread(text, 1, 1024 * 1024 + 1, f);
	if (ferror(f)) {
		r = -EIO;
		set_err(err, errlen, "%s: read error", path);
		goto out;
	}
	if (n > 1024 * 1024) {
		r = -EFBIG;
		set_err(err, errlen, "%s: larger than 1 MiB", path);
		goto out;
	}
	if (memchr(text, 0, n)) {
		r = -EINVAL;
		set_err(err, errlen, "%s: contains a NUL byte (not a text file)", path);
		goto out;
	}
	text[n] = 0;
	r = config_load_string(text, path, out, err, errlen);
out:
	free(text);
	fclose(f);
	return r;
}

int config_set(struct config *cfg, const char *section, const char *key, const char *value,
	       const char *origin, char *err, size_t errlen)
{
	char why[384];
	const struct key *k = find_key(section, key);
	void *base = cfg;

	if (!k) {
		set_err(err, errlen, "%s: unknown key %s.%s", origin, section, key);
		return -ENOENT;
	}
	if (k->flags & F_MODEL) {
		struct config_model *m;
		if (model_get(cfg, section + 6, &m, why, sizeof(why)) < 0) {
			set_err(err, errlen, "%s: %s", origin, why);
			return -EINVAL;
		}
		base = m;
	}
	int r = parse_value(k, base, value, why, sizeof(why));
	if (r < 0) {
		set_err(err, errlen, "%s: %s", origin, why);
		return r;
	}
	if (!(k->flags & F_MODEL))
		cfg->key_line[k - keys] = 0;
	return 0;
}

int config_set_model_path(struct config *cfg, const char *path, char *err, size_t errlen)
{
	char name[64];
	const char *base = strrchr(path, '/');
	size_t n;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".onnx") == 0)
		n -= 5;
	if (n == 0 || n >= sizeof(name)) {
		set_err(err, errlen, "--model: '%s' has no usable file name", path);
		return -EINVAL;
	}
	memcpy(name, base, n);
	name[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			name[i] = '_';
	if (strlen(path) >= sizeof(cfg->models[0].path)) {
		set_err(err, errlen, "--model: path too long");
		return -ENAMETOOLONG;
	}
	cfg->n_models = 0;
	struct config_model *m = &cfg->models[cfg->n_models++];
	memset(m, 0, sizeof(*m));
	apply_model_defaults(m);
	strcpy(m->name, name);
	strcpy(m->path, path);
	return 0;
}

static int key_index(const char *section, const char *name)
{
	const struct key *k = find_key(section, name);
	return k ? (int)(k - keys) : 0;
}

/* "FILE:LINE: " of where a key was set, or "" */
static void where(const struct config *cfg, const char *section, const char *name, char *buf, size_t len)
{
	int line = cfg->key_line[key_index(section, name)];

	if (line && cfg->source[0])
		snprintf(buf, len, "%s:%d: ", cfg->source, line);
	else
		buf[0] = 0;
}

static bool url_host_is_loopback(const char *url)
{
	const char *p = strstr(url, "://");
	char host[128];
	size_t n;

	p = p ? p + 3 : url;
	if (*p == '[') {
		n = strcspn(p + 1, "]");
		if (n >= sizeof(host))
			return false;
		memcpy(host, p + 1, n);
	} else {
		n = strcspn(p, ":/");
		if (n >= sizeof(host))
			return false;
		memcpy(host, p, n);
	}
	host[n] = 0;
	if (strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
		return true;
	struct in_addr a4;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

bool config_listen_is_loopback(const struct config_listen *l)
{
	struct in_addr a4;

	if (strcmp(l->host, "::1") == 0)
		return true;
	return inet_pton(AF_INET, l->host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

int config_finish(struct config *cfg, char *err, size_t errlen)
{
	char at[CONFIG_PATH_MAX + 32];
	char addr[96];

	if (cfg->n_listen == 0 && !cfg->listen_unix[0]) {
		strcpy(cfg->listen[0].host, "127.0.0.1");
		cfg->listen[0].port = cfg->role == CONFIG_ROLE_PEER ? 8081 : 8080;
		cfg->n_listen = 1;
	}
	if (cfg->token[0] && cfg->token_file[0]) {
		where(cfg, "api", "token_file", at, sizeof(at));
		set_err(err, errlen, "%sapi.token_file: set either api.token or api.token_file, not both", at);
		return -EINVAL;
	}
	for (int i = 0; i < cfg->n_listen; i++) {
		if (config_listen_is_loopback(&cfg->listen[i]))
			continue;
		config_listen_format(&cfg->listen[i], addr, sizeof(addr));
		where(cfg, "api", "listen", at, sizeof(at));
		if (cfg->role == CONFIG_ROLE_ROBOT && !cfg->token[0] && !cfg->token_file[0]) {
			set_err(err, errlen, "%sapi.listen: %s is beyond loopback: set api.token or api.token_file", at, addr);
			return -EINVAL;
		}
		if (cfg->role == CONFIG_ROLE_PEER && cfg->server_plain) {
			set_err(err, errlen, "%speer_server.plain: plain HTTP is only allowed on loopback, not on %s", at, addr);
			return -EINVAL;
		}
	}
	if (cfg->role == CONFIG_ROLE_PEER && !cfg->server_plain &&
	    (!cfg->server_tls_cert[0] || !cfg->server_tls_key[0])) {
		set_err(err, errlen, "peer_server.tls_cert: the peer role needs peer_server.tls_cert and tls_key, "
			"or peer_server.plain = true (--plain) on loopback");
		return -EINVAL;
	}
	/* Over TLS the peer authenticates every robot, on loopback too: by a
	 * client certificate its CA signed, or by the bearer token. */
	if (cfg->role == CONFIG_ROLE_PEER && !cfg->server_plain && !cfg->server_client_ca[0] &&
	    !cfg->token[0] && !cfg->token_file[0]) {
		set_err(err, errlen, "peer_server.client_ca: the peer must authenticate robots: set "
			"peer_server.client_ca (client certificates) or api.token");
		return -EINVAL;
	}
	if (!!cfg->peer_cert_file[0] != !!cfg->peer_key_file[0]) {
		where(cfg, "peer", cfg->peer_cert_file[0] ? "cert_file" : "key_file", at, sizeof(at));
		set_err(err, errlen, "%speer.cert_file: set both peer.cert_file and peer.key_file, or neither", at);
		return -EINVAL;
	}
	if (cfg->peer_url[0]) {
		where(cfg, "peer", "url", at, sizeof(at));
		if (strncmp(cfg->peer_url, "http://", 7) == 0) {
			if (!cfg->peer_plain) {
				set_err(err, errlen, "%speer.url: '%s' is plain http: use https, or set peer.plain = true (loopback only)",
					at, cfg->peer_url);
				return -EINVAL;
			}
			if (!url_host_is_loopback(cfg->peer_url)) {
				set_err(err, errlen, "%speer.url: plain http is only allowed to a loopback peer, not '%s'", at,
					cfg->peer_url);
				return -EINVAL;
			}
		} else if (strncmp(cfg->peer_url, "https://", 8) != 0) {
			set_err(err, errlen, "%speer.url: '%s' must start with https:// (or http:// with peer.plain)", at,
				cfg->peer_url);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- reload ---- */

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
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key *k = &keys[i];
		size_t size = k->size;
		if (k->flags & F_MODEL)
			continue;
		if (k->type == T_LISTEN)
			size = sizeof(cur->listen) + 0;
		bool differ = memcmp((const char *)cur + k->offset, (const char *)fresh + k->offset, size) != 0;
		if (k->type == T_LISTEN)
			differ = differ || cur->n_listen != fresh->n_listen;
		if (!differ)
			continue;
		if (k->flags & F_RELOAD) {
			memcpy((char *)n + k->offset, (const char *)fresh + k->offset, size);
			n->key_line[i] = fresh->key_line[i];
		} else if (used < restart_len) {
			used += (size_t)snprintf(restart_keys + used, restart_len - used, "%s%s.%s", used ? ", " : "",
						 k->section, k->name);
		}
	}
	if ((cur->n_models != fresh->n_models ||
	     memcmp(cur->models, fresh->models, sizeof(cur->models[0]) * (size_t)cur->n_models) != 0) &&
	    used < restart_len)
		used += (size_t)snprintf(restart_keys + used, restart_len - used, "%smodels", used ? ", " : "");
	memcpy(n->source, fresh->source, sizeof(n->source));
	*next = n;
	return 0;
}

/* ---- formatting and documentation ---- */

const char *config_role_name(int role)
{
	return role >= 0 && role <= CONFIG_ROLE_PEER ? roles[role] : "?";
}

int config_encoding_format(const struct config_encoding *enc, char *buf, size_t len)
{
	if (enc->type < 0 || enc->type > CONFIG_ENC_I8 || enc->zip < 0 || enc->zip > CONFIG_ZIP_LZ4)
		return -EINVAL;
	snprintf(buf, len, "%s%s%s", enc_types[enc->type], enc->zip ? "+" : "", enc_zips[enc->zip]);
	return 0;
}

int config_listen_format(const struct config_listen *l, char *buf, size_t len)
{
	if (strchr(l->host, ':'))
		snprintf(buf, len, "[%s]:%d", l->host, l->port);
	else
		snprintf(buf, len, "%s:%d", l->host, l->port);
	return 0;
}

size_t config_key_count(void)
{
	return N_KEYS;
}

int config_key_info(size_t i, struct config_key_info *out)
{
	if (i >= N_KEYS)
		return -ENOENT;
	*out = (struct config_key_info){ keys[i].section, keys[i].name, keys[i].def, !!(keys[i].flags & F_RELOAD),
					 keys[i].doc };
	return 0;
}
