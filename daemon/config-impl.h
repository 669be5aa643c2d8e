/* Internals of the configuration (config.c: the INI file and cross-key
 * checks; config_keys.c: the table of keys; config_value.c: one value's
 * text). Not a public header. */
#ifndef SPLITD_CONFIG_IMPL_H
#define SPLITD_CONFIG_IMPL_H

#include <stddef.h>

#include "config.h"

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

#define F_MODEL 2u    /* in [model.NAME]; offset into struct config_model */
#define F_POSITIVE 4u /* T_TRIPLE: every number > 0 */
#define F_ROS2 8u     /* in [ros2.NAME]; offset into struct config_ros2_sub */
#define F_SECTION (F_MODEL | F_ROS2) /* one of the per-NAME sections */

/* One row of the table. A key is reloadable exactly when it names the hook
 * that applies it to the running daemon (apply != CONFIG_APPLY_NONE). */
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
	enum config_apply apply;
	const char *doc;
};

extern const struct key config_keys[];
extern const size_t config_n_keys;

/* The key of [section] name (section "model.NAME" for per-model keys,
 * "ros2.NAME" for per-subscription keys). */
const struct key *config_find_key(const char *section, const char *name);
/* Parse v for key k into base (struct config, struct config_model for
 * F_MODEL keys, struct config_ros2_sub for F_ROS2 keys). On failure writes the reason (without key or line). */
int config_parse_value(const struct key *k, void *base, const char *v, char *why, size_t whylen);

/* Choice lists shared by the table and the formatters. */
extern const char *const config_roles[];
extern const char *const config_enc_types[];
extern const char *const config_enc_zips[];

#endif
