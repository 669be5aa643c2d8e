/* The inference pipeline served by `splitd serve` (pipeline.c): models,
 * power, planner, peer link and the HTTP API behind the shell's hooks. */
#ifndef SPLITD_PIPELINE_H
#define SPLITD_PIPELINE_H

#include "serve.h"

extern const struct serve_hooks serve_pipeline_hooks;

/* pipeline_reload.c: the serve hook applying a new config's reloadable keys
 * (all or none), and the start-up check that every key the table marks
 * reloadable has its hook here (-ENOSYS naming the key otherwise). */
int pipeline_reload(void *ctx, const struct config *cfg, char *err, size_t errlen);
int pipeline_reload_check(char *err, size_t errlen);

#endif
