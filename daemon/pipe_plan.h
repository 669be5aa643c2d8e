/* The pipeline's side of the planner (pipe_plan.c): the inputs of this
 * moment, re-planning, learning from a served request, the plan of one
 * request under its own ?policy=, and when the learnt state is read and
 * written (daemon.state_dir). Callers hold no lock unless said. */
#ifndef SPLITD_PIPE_PLAN_H
#define SPLITD_PIPE_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "plan.h"

struct pipe_model;

/* At most this often a changed state is written while serving; always on
 * a clean stop. */
#define PIPE_STATE_SAVE_EVERY_S 30

/* The link estimate and the request facts of this moment (m->lock held). */
void pipe_plan_inputs(struct pipe_model *m, struct plan_inputs *in);
/* Re-plan with them (m->lock held); a change is logged with its reason and
 * shows in STATUS= and /metrics. */
void pipe_replan(struct pipe_model *m, int force);
/* Learn what one request measured, re-plan, and write the state when due. */
void pipe_plan_learn(struct pipe_model *m, const struct plan_run *run);
/* The peer ran the whole model in whole_ms (the calibration). */
void pipe_plan_calibrated(struct pipe_model *m, double whole_ms);
/* The plan of one request asking ?policy=NAME (NULL: none asked): 1 with
 * *cur set to that policy's choice (the configured policy's is the current
 * plan), which the request runs at without exploring; 0 when it is planned
 * as any other (no policy asked, or no planner: all-local); -EINVAL with
 * err set for an unknown name or an SLO policy without an SLO. image: the
 * request carries a JPEG/PNG. */
int pipe_plan_for_request(struct pipe_model *m, const char *policy, bool image,
			  struct plan_candidate *cur, char *err, size_t errlen);
/* Read the state of m from daemon.state_dir (at start, before the first
 * plan); a missing file is silence, a bad one a warning naming it and why. */
void pipe_plan_state_load(struct pipe_model *m);
/* Write it when it changed and PIPE_STATE_SAVE_EVERY_S passed (force: when
 * it changed at all, as on stop). */
void pipe_plan_state_save(struct pipe_model *m, bool force);
/* The state's part of /v1/status: its file, whether it was restored, the
 * requests learnt from (m->lock held). */
void pipe_plan_status(struct pipe_model *m, json_t *planner);

#endif
