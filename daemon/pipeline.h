/* The inference pipeline served by `splitd serve` (pipeline.c): models,
 * power, planner, peer link and the HTTP API behind the shell's hooks. */
#ifndef SPLITD_PIPELINE_H
#define SPLITD_PIPELINE_H

#include "serve.h"

extern const struct serve_hooks serve_pipeline_hooks;

#endif
