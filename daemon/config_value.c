/* One configuration value from its text: the parser for each key type of
 * the table (config_keys.c), shared by the file, the command line and the
 * built-in defaults. Each writes its reason, without key or line, into
 * why[whylen] on failure and leaves the destination as it was. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config-impl.h"
#include "log.h"

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

static int parse_bool(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
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

static int parse_int(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
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

static int parse_size(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
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

static int parse_number(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
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

static int parse_enum(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
	char tmp[256];
	int i = find_choice(k->choices, v);

	if (i < 0) {
		choices_text(k->choices, tmp, sizeof(tmp));
		snprintf(why, whylen, "'%s' is not one of: %s", v, tmp);
		return -EINVAL;
	}
	memcpy(dst, &i, sizeof(i));
	return 0;
}

static int parse_loglevel(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
	int level;

	if (log_level_parse(v, &level) < 0) {
		snprintf(why, whylen, "'%s' is not one of: err, warning, notice, info, debug", v);
		return -EINVAL;
	}
	memcpy(dst, &level, sizeof(level));
	return 0;
}

static int parse_str(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
	size_t n = strlen(v);

	if (n >= k->size) {
		snprintf(why, whylen, "value is %zu characters, at most %zu allowed", n, k->size - 1);
		return -ENAMETOOLONG;
	}
	memset(dst, 0, k->size);
	memcpy(dst, v, n);
	return 0;
}

static int parse_listen(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	struct config *cfg = base;
	struct config_listen list[CONFIG_MAX_LISTEN];
	char tmp[256];
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

static int parse_shape(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
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

static int parse_triple(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
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

static int parse_encoding(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	char *dst = (char *)base + k->offset;
	char tmp[256];
	struct config_encoding e;
	const char *plus = strchr(v, '+');
	size_t n = plus ? (size_t)(plus - v) : strlen(v);
	int type, zip = 0;

	memset(&e, 0, sizeof(e)); /* padding too: reload compares keys with memcmp */
	if (n >= sizeof(tmp))
		n = sizeof(tmp) - 1;
	memcpy(tmp, v, n);
	tmp[n] = 0;
	e.is_auto = strcasecmp(tmp, "auto") == 0;
	type = e.is_auto ? LINK_VALUE_F32 : find_choice(config_enc_types, tmp);
	if (plus) {
		zip = find_choice(config_enc_zips, plus + 1);
		if (zip <= 0)
			type = -1;
	}
	if (type < 0) {
		snprintf(why, whylen, "'%s' is not auto, f32, f16 or i8, optionally with +zstd or +lz4", v);
		return -EINVAL;
	}
	e.enc.value = (enum link_value)type;
	e.enc.comp = (enum link_comp)zip;
	memcpy(dst, &e, sizeof(e));
	return 0;
}

typedef int (*parse_fn)(const struct key *k, void *base, const char *v, char *why, size_t whylen);

static const parse_fn parsers[] = {
	[T_BOOL] = parse_bool,
	[T_INT] = parse_int,
	[T_SIZE] = parse_size,
	[T_DOUBLE] = parse_number,
	[T_ENUM] = parse_enum,
	[T_LOGLEVEL] = parse_loglevel,
	[T_STR] = parse_str,
	[T_LISTEN] = parse_listen,
	[T_SHAPE] = parse_shape,
	[T_TRIPLE] = parse_triple,
	[T_ENCODING] = parse_encoding,
};

int config_parse_value(const struct key *k, void *base, const char *v, char *why, size_t whylen)
{
	if ((size_t)k->type >= sizeof(parsers) / sizeof(parsers[0]) || !parsers[k->type]) {
		snprintf(why, whylen, "internal: unknown key type");
		return -EINVAL;
	}
	return parsers[k->type](k, base, v, why, whylen);
}
