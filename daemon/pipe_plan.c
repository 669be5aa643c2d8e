/* The pipeline's side of the planner: see pipe_plan.h. What the planner
 * computes and learns is plan/'s; this file says when, under which lock,
 * with which link estimate, and where its state lives on disk. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pipe_plan.h"
#include "pipeline-impl.h"

void pipe_plan_inputs(struct pipe_model *m, struct plan_inputs *in)
{
	struct pipeline *p = m->pipe;
	struct linkest_estimate le;
	double v;

	pthread_mutex_lock(&p->link_lock);
	linkest_get(p->link, &le);
	pthread_mutex_unlock(&p->link_lock);
	*in = (struct plan_inputs){ .bandwidth_bps = le.bandwidth_bps, .rtt_ms = le.rtt_ms };
	/* what this run measured is remembered (and kept across a restart);
	 * until it measures, what an earlier run did */
	plan_note_link(m->plan, le.goodput_samples ? le.bandwidth_bps : 0, le.rtt_samples ? le.rtt_ms : -1);
	if (!le.goodput_samples && plan_link_bandwidth(m->plan, &v) == 0)
		in->bandwidth_bps = v;
	if (!le.rtt_samples && plan_link_rtt(m->plan, &v) == 0)
		in->rtt_ms = v;
	/* the way back as predicted; what came back replaces it */
	in->output_bytes = pipe_post_return_bytes(m);
	plan_request_facts(m->plan, in);
}

void pipe_replan(struct pipe_model *m, int force)
{
	struct plan_inputs in;
	struct plan_candidate cur;
	char reason[256] = "";
	int changed;

	pipe_plan_inputs(m, &in);
	changed = plan_update(m->plan, &in, force, reason, sizeof(reason));
	if (plan_current(m->plan, &cur) == 0) {
		plan_describe(&cur, m->n_nodes, m->plan_text, sizeof(m->plan_text));
		atomic_store(&m->current_cut, cur.cut);
	}
	if (changed == 1) {
		atomic_fetch_add(&m->plan_changes, 1);
		log_notice("model %s: %s", m->name, reason);
	}
}

void pipe_plan_learn(struct pipe_model *m, const struct plan_run *run)
{
	struct plan_inputs in;

	pthread_mutex_lock(&m->lock);
	pipe_plan_inputs(m, &in);
	plan_learn(m->plan, &in, run);
	if (run->offloaded)
		m->calibrated = true;
	pipe_replan(m, 0);
	pthread_mutex_unlock(&m->lock);
	pipe_plan_state_save(m, false);
}

void pipe_plan_calibrated(struct pipe_model *m, double whole_ms)
{
	double here = 0;

	for (int i = 0; i < m->n_nodes; i++)
		here += m->local_ms[i];
	pthread_mutex_lock(&m->lock);
	if (plan_calibrate_peer(m->plan, whole_ms) == 0) {
		m->calibrated = true;
		log_notice("model %s: peer runs the whole model in %.2f ms (here %.2f ms)", m->name,
			   whole_ms, here);
		pipe_replan(m, 1);
	}
	pthread_mutex_unlock(&m->lock);
}

int pipe_plan_for_request(struct pipe_model *m, const char *policy, bool image,
			  struct plan_candidate *cur, char *err, size_t errlen)
{
	struct plan_config pc;
	struct plan_inputs in;
	enum plan_policy pol;
	int r;

	if (!policy)
		return 0;
	if (plan_policy_parse(policy, &pol) < 0) {
		return err_set(-EINVAL, err, errlen, "policy=%.40s: not one of %s", policy, PLAN_POLICY_NAMES);
	}
	if (!m->plan)
		return 0;	/* no peer: every policy runs here */
	pthread_mutex_lock(&m->lock);
	plan_get_config(m->plan, &pc);
	/* the configured policy's choice is the current plan (with its
	 * hysteresis), unless that sends an image this request does not have */
	r = pol == pc.policy ? plan_current(m->plan, cur) : -ENOENT;
	if (r < 0 || (!image && cur->enc == PLAN_ENC_INPUT)) {
		pipe_plan_inputs(m, &in);
		if (!image)
			in.input_bytes = 0;	/* a tensor: no "cut 0 input" */
		r = plan_choose(m->plan, &in, pol, pc.slo_ms, cur);
	}
	pthread_mutex_unlock(&m->lock);
	if (r == -EINVAL) {
		return err_set(r, err, errlen, "policy=%.40s needs a latency bound: set planner.slo_ms", policy);
	}
	if (r < 0) {
		/* nothing legal to choose from: as a request without ?policy= */
		log_warn("model %s: policy=%s: no plan (%s); the current one runs", m->name, policy,
			 strerror(-r));
		return 0;
	}
	return 1;
}

/* ---- daemon.state_dir -------------------------------------------------------- */

static bool state_path(struct pipe_model *m, char *path, size_t len, char *hex)
{
	const struct config *cfg;

	if (!m->plan || !m->pipe)
		return false;
	cfg = m->pipe->cfg;
	if (!cfg->state_dir[0])
		return false;
	peer_sha256_hex(engine_sha256(m->eng), hex);
	return (size_t)snprintf(path, len, "%s/%s.plan.json", cfg->state_dir, m->name) < len;
}

void pipe_plan_state_load(struct pipe_model *m)
{
	char path[CONFIG_PATH_MAX + 96], hex[65], err[320];
	struct plan_state_id id = { hex, m->pipe->cfg->peer_url };
	double bw = 0, rtt = -1;
	int r;

	if (!state_path(m, path, sizeof(path), hex))
		return;
	pthread_mutex_lock(&m->lock);
	r = plan_state_load(m->plan, &id, path, err, sizeof(err));
	m->state_gen = plan_generation(m->plan);
	m->state_restored = r == 0;
	pthread_mutex_unlock(&m->lock);
	if (r == -ENOENT) {
		log_info("model %s: no planner state in %s yet: learning from scratch", m->name, path);
		return;
	}
	if (r < 0) {
		log_warn("model %s: planner state %s ignored: %s", m->name, path, err);
		return;
	}
	plan_link_bandwidth(m->plan, &bw);
	plan_link_rtt(m->plan, &rtt);
	log_notice("model %s: planner state from %s: %" PRIu64 " requests learnt, peer speed %.3f, "
		   "link %.1f Mbit/s, rtt %.2f ms", m->name, path, plan_runs_learnt(m->plan),
		   plan_peer_speed(m->plan), bw / 1e6, rtt);
}

void pipe_plan_state_save(struct pipe_model *m, bool force)
{
	char path[CONFIG_PATH_MAX + 96], hex[65], err[320];
	struct plan_state_id id = { hex, m->pipe->cfg->peer_url };
	uint64_t now = link_now_ns(), gen;
	char *text = NULL;
	int r;

	if (!state_path(m, path, sizeof(path), hex) || atomic_exchange(&m->state_busy, true))
		return;		/* another worker is writing it */
	pthread_mutex_lock(&m->lock);
	gen = plan_generation(m->plan);
	if (gen == m->state_gen ||
	    (!force && now - m->state_saved_ns < (uint64_t)PIPE_STATE_SAVE_EVERY_S * 1000000000ull)) {
		pthread_mutex_unlock(&m->lock);
		goto out;
	}
	r = plan_state_dump(m->plan, &id, &text);
	m->state_saved_ns = now;
	pthread_mutex_unlock(&m->lock);
	if (r == 0)
		r = plan_state_write(path, text, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "%s", strerror(-r));
	if (r == 0) {
		pthread_mutex_lock(&m->lock);
		m->state_gen = gen;
		pthread_mutex_unlock(&m->lock);
		if (m->state_errno)
			log_notice("model %s: planner state written to %s again", m->name, path);
		m->state_errno = 0;
	} else if (r != m->state_errno) {	/* once per kind of failure */
		log_warn("model %s: planner state not written: %s", m->name, err);
		m->state_errno = r;
	}
	free(text);
out:
	atomic_store(&m->state_busy, false);
}

void pipe_plan_status(struct pipe_model *m, json_t *planner)
{
	char path[CONFIG_PATH_MAX + 96], hex[65];
	json_t *st = json_object();

	json_object_set_new(st, "runs_learnt", json_integer((json_int_t)plan_runs_learnt(m->plan)));
	json_object_set_new(st, "restored", json_boolean(m->state_restored));
	if (state_path(m, path, sizeof(path), hex))
		json_object_set_new(st, "file", json_string(path));
	json_object_set_new(planner, "state", st);
}
