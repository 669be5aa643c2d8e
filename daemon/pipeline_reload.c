/* Reload (SIGHUP): the hooks that apply each reloadable key of the table
 * (config_keys.c names one per key) to the running pipeline, and the
 * all-or-nothing step that calls them.
 *
 * A hook reads its keys from the new config and hands them to the part that
 * uses them, through that part's thread-safe setter: the API's bearer token,
 * the power sampler's rate and estimate watts, each peer client's deadlines
 * and periods, the planners' costs and policy, the link estimator's idle
 * probe, the Wi-Fi telemetry's interface. Requests in flight finish with
 * what they started with; the next ones see the new values. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pipeline-impl.h"
#include "pipeline.h"

typedef int (*pipe_apply_fn)(struct pipeline *p, const struct config *cfg, char *err, size_t errlen);

int pipe_token_read(const struct config *cfg, char **out, char *err, size_t errlen)
{
	char buf[CONFIG_STR_MAX + 2];
	FILE *f;
	size_t n;

	*out = NULL;
	if (cfg->token[0])
		return (*out = strdup(cfg->token)) ? 0 : -ENOMEM;
	if (!cfg->token_file[0])
		return 0;
	if (!(f = fopen(cfg->token_file, "re"))) {
		int r = -errno;
		return err_set(r, err, errlen, "api.token_file %s: %s", cfg->token_file, strerror(errno));
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	buf[strcspn(buf, "\r\n")] = 0;
	if (!buf[0] || strlen(buf) > CONFIG_STR_MAX - 1) {
		return err_set(-EINVAL, err, errlen, "api.token_file %s: %s", cfg->token_file,
			       buf[0] ? "the token is longer than 255 characters" : "holds no token on its first line");
	}
	return (*out = strdup(buf)) ? 0 : -ENOMEM;
}

static int apply_api_token(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	char *token;
	int r;

	if (!p->api)
		return 0;
	if ((r = pipe_token_read(cfg, &token, err, errlen)) < 0)
		return r;
	r = api_server_set_token(p->api, token);
	free(token);
	if (r < 0)
		snprintf(err, errlen, "api: cannot replace the token: %s", strerror(-r));
	return r;
}

static int apply_wifi(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	struct wifi *w = NULL, *old;
	int r;

	if (cfg->wifi_interface[0] && (r = wifi_new(cfg->wifi_interface, NULL, &w)) < 0) {
		return err_set(r, err, errlen, "planner.wifi_interface %s: %s", cfg->wifi_interface, strerror(-r));
	}
	pthread_mutex_lock(&p->link_lock);
	old = p->wifi;
	p->wifi = w;
	memset(&p->wifi_last, 0, sizeof(p->wifi_last));
	p->wifi_read_ns = 0;
	pthread_mutex_unlock(&p->link_lock);
	wifi_free(old);
	return 0;
}

static int apply_power_rate(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	size_t ring = (size_t)cfg->power_rate_hz * (size_t)cfg->power_ring_seconds;
	int r;

	if (!p->power)
		return 0;	/* no sampler: nothing samples (the reason is in /v1/status) */
	if ((r = power_sampler_set_rate(p->power, (unsigned)cfg->power_rate_hz, ring)) < 0)
		snprintf(err, errlen, "power.rate_hz %d: %s", cfg->power_rate_hz, strerror(-r));
	return r;
}

static int apply_log_level(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	log_set_level(cfg->log_level);
	return 0;
}

static int apply_power_estimate(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	if (!p->power)
		return 0;
	return power_sampler_set_estimate(p->power, (int64_t)(cfg->estimate_idle_watts * 1000.0),
					  (int64_t)(cfg->estimate_core_watts * 1000.0));
}

static int apply_peer_timing(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	for (int i = 0; i < p->n_models; i++)
		peer_client_set_timing(p->models[i].peer, cfg->peer_connect_timeout_ms, cfg->peer_request_timeout_ms,
				       cfg->peer_probe_interval_ms, cfg->peer_backoff_max_ms);
	return 0;
}

static int apply_planner(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	struct plan_config pc;

	pipe_plan_config_from(cfg, &pc);
	for (int i = 0; i < p->n_models; i++) {
		struct pipe_model *m = &p->models[i];
		if (!m->plan)
			continue;
		pthread_mutex_lock(&m->lock);
		plan_set_config(m->plan, &pc);
		pthread_mutex_unlock(&m->lock);
	}
	return 0;
}

static int apply_link_probe(struct pipeline *p, const struct config *cfg, char *err, size_t errlen)
{
	pthread_mutex_lock(&p->link_lock);
	linkest_set_idle_probe(p->link, (uint64_t)cfg->probe_idle_ms * 1000000ull);
	pthread_mutex_unlock(&p->link_lock);
	return 0;
}

/* One function per hook the table names; pipe_reload_check() proves the
 * list complete before the daemon starts. */
static const pipe_apply_fn hooks[CONFIG_APPLY_COUNT] = {
	[CONFIG_APPLY_API_TOKEN] = apply_api_token,
	[CONFIG_APPLY_WIFI] = apply_wifi,
	[CONFIG_APPLY_POWER_RATE] = apply_power_rate,
	[CONFIG_APPLY_LOG_LEVEL] = apply_log_level,
	[CONFIG_APPLY_POWER_ESTIMATE] = apply_power_estimate,
	[CONFIG_APPLY_PEER_TIMING] = apply_peer_timing,
	[CONFIG_APPLY_PLANNER] = apply_planner,
	[CONFIG_APPLY_LINK_PROBE] = apply_link_probe,
};

int pipeline_reload_check(char *err, size_t errlen)
{
	struct config_key_info k;

	for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
		if (!k.reloadable)
			continue;
		if (k.apply <= CONFIG_APPLY_NONE || k.apply >= CONFIG_APPLY_COUNT || !hooks[k.apply]) {
			return err_set(-ENOSYS, err, errlen, "%s.%s is reloadable but hook %d (%s) applies nothing", k.section,
				       k.name, (int)k.apply, config_apply_name(k.apply));
		}
	}
	return 0;
}

int pipeline_reload(void *ctx, const struct config *cfg, char *err, size_t errlen)
{
	struct pipeline *p = ctx;
	bool changed[CONFIG_APPLY_COUNT];
	char keys[768];
	int applied = CONFIG_APPLY_NONE + 1, r = 0;

	int n = config_apply_changed(p->cfg, cfg, changed, keys, sizeof(keys));
	/* the token file may hold a new token under the same name */
	if (cfg->token_file[0])
		changed[CONFIG_APPLY_API_TOKEN] = true;
	for (; applied < CONFIG_APPLY_COUNT; applied++) {
		if (changed[applied] && (r = hooks[applied](p, cfg, err, errlen)) < 0)
			break;
	}
	if (r < 0) {
		/* all or nothing: what was applied goes back to the running config */
		char why[256];
		for (int a = CONFIG_APPLY_NONE + 1; a < applied; a++)
			if (changed[a] && hooks[a](p, p->cfg, why, sizeof(why)) < 0)
				log_warn("reload: undoing %s: %s", config_apply_name(a), why);
		return r;
	}
	pthread_mutex_lock(&p->cfg_lock);
	config_copy_reloadable(p->cfg, cfg);
	pthread_mutex_unlock(&p->cfg_lock);
	if (n)
		log_info("reload: applied %s", keys);
	return 0;
}
