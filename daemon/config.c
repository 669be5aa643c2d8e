/* The configuration file (Debian's libinih), command-line overrides, the
 * checks across keys once both are in, and formatting. The keys themselves
 * are the table in config_keys.c; one value's text is parsed by
 * config_value.c. */
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

#include "config-impl.h"
#include "err.h"
#include "log.h"


static bool known_section(const char *section)
{
	for (size_t i = 0; i < config_n_keys; i++)
		if (!(config_keys[i].flags & F_SECTION) && strcmp(config_keys[i].section, section) == 0)
			return true;
	return false;
}

/* The defaults of one [model.NAME] (F_MODEL) or [ros2.NAME] (F_ROS2). */
static void apply_section_defaults(void *base, unsigned kind)
{
	char why[128];

	for (size_t i = 0; i < config_n_keys; i++) {
		if (!(config_keys[i].flags & kind))
			continue;
		(void)config_parse_value(&config_keys[i], base, config_keys[i].def, why, sizeof(why));
	}
}

static void apply_model_defaults(struct config_model *m)
{
	apply_section_defaults(m, F_MODEL);
}

static bool valid_model_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= 64)
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

/* [ros2.NAME] by name; created with defaults if absent. */
static int ros2_sub_get(struct config *cfg, const char *name, struct config_ros2_sub **out, char *why,
			size_t whylen)
{
	for (int i = 0; i < cfg->n_ros2_subs; i++) {
		if (strcmp(cfg->ros2_subs[i].name, name) == 0) {
			*out = &cfg->ros2_subs[i];
			return 0;
		}
	}
	if (!valid_model_name(name)) {
		snprintf(why, whylen, "subscription name '%s' must be 1-63 letters, digits, '_', '-' or '.'", name);
		return -EINVAL;
	}
	if (cfg->n_ros2_subs == CONFIG_MAX_ROS2_SUBS) {
		snprintf(why, whylen, "more than %d [ros2.NAME] subscriptions", CONFIG_MAX_ROS2_SUBS);
		return -E2BIG;
	}
	struct config_ros2_sub *s = &cfg->ros2_subs[cfg->n_ros2_subs++];
	memset(s, 0, sizeof(*s));
	apply_section_defaults(s, F_ROS2);
	strcpy(s->name, name);
	*out = s;
	return 0;
}

int config_new_default(struct config **out)
{
	char why[128];
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (!cfg)
		return -ENOMEM;
	for (size_t i = 0; i < config_n_keys; i++) {
		if (config_keys[i].flags & F_SECTION)
			continue;
		int r = config_parse_value(&config_keys[i], cfg, config_keys[i].def, why, sizeof(why));
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
	unsigned char seen[CONFIG_MAX_KEYS];
	unsigned char model_seen[CONFIG_MAX_MODELS][CONFIG_MAX_KEYS];
	unsigned char ros2_seen[CONFIG_MAX_ROS2_SUBS][CONFIG_MAX_KEYS];
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
	return err_set(0, ctx->err, ctx->errlen, "%s:%d: %s", ctx->name, ctx->in->line, msg);
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
	bool sub = strncmp(section, "ros2.", 5) == 0;
	if (!model && !sub && !known_section(section))
		return handler_fail(ctx, -ENOENT, "unknown section [%s] (key '%s')", section, name);
	k = config_find_key(section, name);
	if (!k)
		return handler_fail(ctx, -ENOENT, "unknown key '%s' in [%s]", name, section);
	size_t idx = (size_t)(k - config_keys);
	if (model) {
		struct config_model *m;
		if (model_get(ctx->cfg, section + 6, &m, why, sizeof(why)) < 0)
			return handler_fail(ctx, -EINVAL, "[%s]: %s", section, why);
		base = m;
		seen = &ctx->model_seen[m - ctx->cfg->models][idx];
	} else if (sub) {
		struct config_ros2_sub *rs;
		if (ros2_sub_get(ctx->cfg, section + 5, &rs, why, sizeof(why)) < 0)
			return handler_fail(ctx, -EINVAL, "[%s]: %s", section, why);
		base = rs;
		seen = &ctx->ros2_seen[rs - ctx->cfg->ros2_subs][idx];
	} else {
		base = ctx->cfg;
		seen = &ctx->seen[idx];
	}
	if (*seen)
		return handler_fail(ctx, -EEXIST, "%s.%s is set twice (or continued on an indented line)", section, name);
	*seen = 1;
	int r = config_parse_value(k, base, value, why, sizeof(why));
	if (r < 0)
		return handler_fail(ctx, r, "%s.%s: %s", section, name, why);
	if (!model && !sub)
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
		r = err_set(-EINVAL, err, errlen, "%s:%d: line too long (at most 196 characters)", name, in.long_line);
		goto out;
	}
	if (line > 0 && (!ctx->err_line || line < ctx->err_line)) {
		r = err_set(-EINVAL, err, errlen, "%s:%d: not a [section] or key = value line", name, line);
		goto out;
	}
	if (ctx->err_line) {
		r = ctx->err_code;
		goto out;
	}
	if (line < 0) {
		r = err_set(-ENOMEM, err, errlen, "%s: cannot parse (out of memory)", name);
		goto out;
	}
	for (int i = 0; i < cfg->n_models; i++) {
		if (!cfg->models[i].path[0]) {
			r = err_set(-EINVAL, err, errlen, "%s: [model.%s] has no path", name, cfg->models[i].name);
			goto out;
		}
	}
	for (int i = 0; i < cfg->n_ros2_subs; i++) {
		if (!cfg->ros2_subs[i].topic[0]) {
			r = err_set(-EINVAL, err, errlen, "%s: [ros2.%s] has no topic", name, cfg->ros2_subs[i].name);
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
		return err_set(r, err, errlen, "%s: %s", path, strerror(errno));
	}
	text = malloc(1024 * 1024 + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	size_t n = fread(text, 1, 1024 * 1024 + 1, f);
	if (ferror(f)) {
		r = err_set(-EIO, err, errlen, "%s: read error", path);
		goto out;
	}
	if (n > 1024 * 1024) {
		r = err_set(-EFBIG, err, errlen, "%s: larger than 1 MiB", path);
		goto out;
	}
	if (memchr(text, 0, n)) {
		r = err_set(-EINVAL, err, errlen, "%s: contains a NUL byte (not a text file)", path);
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
	const struct key *k = config_find_key(section, key);
	void *base = cfg;

	if (!k) {
		return err_set(-ENOENT, err, errlen, "%s: unknown key %s.%s", origin, section, key);
	}
	if (k->flags & F_MODEL) {
		struct config_model *m;
		if (model_get(cfg, section + 6, &m, why, sizeof(why)) < 0) {
			return err_set(-EINVAL, err, errlen, "%s: %s", origin, why);
		}
		base = m;
	} else if (k->flags & F_ROS2) {
		struct config_ros2_sub *rs;
		if (ros2_sub_get(cfg, section + 5, &rs, why, sizeof(why)) < 0)
			return err_set(-EINVAL, err, errlen, "%s: %s", origin, why);
		base = rs;
	}
	int r = config_parse_value(k, base, value, why, sizeof(why));
	if (r < 0) {
		return err_set(r, err, errlen, "%s: %s", origin, why);
	}
	if (!(k->flags & F_SECTION))
		cfg->key_line[k - config_keys] = 0;
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
		return err_set(-EINVAL, err, errlen, "--model: '%s' has no usable file name", path);
	}
	memcpy(name, base, n);
	name[n] = 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i]))
			name[i] = '_';
	if (strlen(path) >= sizeof(cfg->models[0].path)) {
		return err_set(-ENAMETOOLONG, err, errlen, "--model: path too long");
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
	const struct key *k = config_find_key(section, name);
	return k ? (int)(k - config_keys) : 0;
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
		return err_set(-EINVAL, err, errlen, "%sapi.token_file: set either api.token or api.token_file, not both", at);
	}
	for (int i = 0; i < cfg->n_listen; i++) {
		if (config_listen_is_loopback(&cfg->listen[i]))
			continue;
		config_listen_format(&cfg->listen[i], addr, sizeof(addr));
		where(cfg, "api", "listen", at, sizeof(at));
		if (cfg->role == CONFIG_ROLE_ROBOT && !cfg->token[0] && !cfg->token_file[0]) {
			return err_set(-EINVAL, err, errlen,
				       "%sapi.listen: %s is beyond loopback: set api.token or api.token_file", at, addr);
		}
		if (cfg->role == CONFIG_ROLE_PEER && cfg->server_plain) {
			return err_set(-EINVAL, err, errlen,
				       "%speer_server.plain: plain HTTP is only allowed on loopback, not on %s", at, addr);
		}
	}
	if (cfg->role == CONFIG_ROLE_PEER && !cfg->server_plain &&
	    (!cfg->server_tls_cert[0] || !cfg->server_tls_key[0])) {
		return err_set(-EINVAL, err, errlen, "peer_server.tls_cert: the peer role needs peer_server.tls_cert and tls_key, "
			       "or peer_server.plain = true (--plain) on loopback");
	}
	/* Over TLS the peer authenticates every robot, on loopback too: by a
	 * client certificate its CA signed, or by the bearer token. */
	if (cfg->role == CONFIG_ROLE_PEER && !cfg->server_plain && !cfg->server_client_ca[0] &&
	    !cfg->token[0] && !cfg->token_file[0]) {
		return err_set(-EINVAL, err, errlen, "peer_server.client_ca: the peer must authenticate robots: set "
			       "peer_server.client_ca (client certificates) or api.token");
	}
	if (!!cfg->peer_cert_file[0] != !!cfg->peer_key_file[0]) {
		where(cfg, "peer", cfg->peer_cert_file[0] ? "cert_file" : "key_file", at, sizeof(at));
		return err_set(-EINVAL, err, errlen, "%speer.cert_file: set both peer.cert_file and peer.key_file, or neither", at);
	}
	if (cfg->peer_url[0]) {
		where(cfg, "peer", "url", at, sizeof(at));
		if (strncmp(cfg->peer_url, "http://", 7) == 0) {
			if (!cfg->peer_plain) {
				return err_set(-EINVAL, err, errlen,
					       "%speer.url: '%s' is plain http: use https, or set peer.plain = true (loopback only)",
					       at, cfg->peer_url);
			}
			if (!url_host_is_loopback(cfg->peer_url)) {
				return err_set(-EINVAL, err, errlen, "%speer.url: plain http is only allowed to a loopback peer, not '%s'", at,
					       cfg->peer_url);
			}
		} else if (strncmp(cfg->peer_url, "https://", 8) != 0) {
			return err_set(-EINVAL, err, errlen, "%speer.url: '%s' must start with https:// (or http:// with peer.plain)", at,
				       cfg->peer_url);
		}
	}
	return 0;
}

/* ---- formatting and documentation ---- */

const char *config_role_name(int role)
{
	return role >= 0 && role <= CONFIG_ROLE_PEER ? config_roles[role] : "?";
}

int config_encoding_format(const struct config_encoding *enc, char *buf, size_t len)
{
	const struct link_encoding *e = &enc->enc;

	if ((int)e->value < 0 || e->value > LINK_VALUE_I8 || (int)e->comp < 0 || e->comp > LINK_COMP_LZ4)
		return -EINVAL;
	snprintf(buf, len, "%s%s%s", enc->is_auto ? "auto" : config_enc_types[e->value], e->comp ? "+" : "",
		 config_enc_zips[e->comp]);
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
