/* The inference engine: load an ONNX model, run any contiguous range of its
 * nodes on a backend, list the tensors that cross every cut, profile nodes.
 *
 * Nodes are numbered 0..N-1 in the engine's own topological order (after
 * constant folding and fusion). Cut k (0 <= k <= N) is the position before
 * node k: cut 0 crosses the model inputs, cut N the model outputs. A cut is a
 * set of live tensors (residual blocks cross more than one).
 *
 * A loaded engine is immutable and may be shared by threads; each inference
 * uses its own struct engine_ctx. All functions return 0 or a negative errno;
 * load errors also fill err (a human sentence naming op, node, opset, ...). */
#ifndef SPLITD_ENGINE_H
#define SPLITD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

struct engine;
struct engine_ctx;

struct engine_input_shape {
	const char *name;	/* model input name; NULL = the first input */
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
};

struct engine_opts {
	int threads;		/* CPU threads; 0 = online cores */
	const char *backend;	/* "cpu" (default) or "cuda" */
	int64_t batch;		/* value for a dynamic batch dim; 0 = 1 */
	/* fixed shapes for inputs with dynamic dims (other than batch) */
	const struct engine_input_shape *input_shapes;
	int n_input_shapes;
	size_t max_model_bytes;	/* refuse larger files; 0 = 2 GiB */
	/* keep the weights the backend packed at load as they were in the
	 * model (engine_export_range writes them back); 0 drops them, so
	 * that a model's weights are in memory once */
	int keep_weights;
};

struct engine_value_info {
	const char *name;	/* ONNX value name; borrowed from the engine */
	enum tensor_dtype dtype;
	int ndim;
	int64_t shape[TENSOR_MAX_DIMS];
	size_t bytes;
};

struct engine_node_info {
	const char *name;	/* ONNX node name (or a generated one) */
	const char *op;		/* ONNX op type; "Conv+Relu" etc. after fusion */
	int64_t macs;		/* multiply-adds of one run */
	size_t out_bytes;	/* bytes of the node's outputs */
	int band_ok;		/* row-local: may run band-wise (overlap issue) */
};

int engine_load(const char *path, const struct engine_opts *opts,
		struct engine **out, char *err, size_t errlen);
int engine_load_buffer(const void *data, size_t len,
		       const struct engine_opts *opts, struct engine **out,
		       char *err, size_t errlen);
void engine_free(struct engine *e);

/* sha256 of the model file bytes: the model's identity for the peer link. */
const uint8_t *engine_sha256(const struct engine *e);
const char *engine_backend_name(const struct engine *e);
/* What `backend = auto` means here: the first backend built beyond the CPU
 * that is available (a device answers and its libraries load), else "cpu".
 * why (may be NULL) gets which and why, for the log. */
const char *engine_backend_auto(char *why, size_t whylen);
/* 1 when a backend of that name is built in (or registered). */
int engine_backend_exists(const char *name);

int engine_num_nodes(const struct engine *e);
int engine_node_info(const struct engine *e, int i, struct engine_node_info *out);
int engine_num_inputs(const struct engine *e);
int engine_num_outputs(const struct engine *e);
int engine_input_info(const struct engine *e, int i, struct engine_value_info *out);
int engine_output_info(const struct engine *e, int i, struct engine_value_info *out);

/* The tensors live at cut k: needed by a node >= k (or a model output) and
 * produced before k (or a model input). */
int engine_cut_count(const struct engine *e, int k);	/* tensors crossing k, or <0 */
int engine_cut_tensor(const struct engine *e, int k, int j, struct engine_value_info *out);
size_t engine_cut_bytes(const struct engine *e, int k);

/* Per-inference state (activation buffers). */
int engine_ctx_new(const struct engine *e, struct engine_ctx **out);
void engine_ctx_free(struct engine_ctx *c);
/* Copy a tensor in by value name (a model input, or a tensor of a cut). Shape
 * and dtype must match the engine's; a mismatch is -EINVAL with err set. */
int engine_ctx_set(struct engine_ctx *c, const char *name, const struct tensor_view *v,
		   char *err, size_t errlen);
/* Borrow a computed tensor; valid until the next run on c or engine_ctx_free. */
int engine_ctx_get(struct engine_ctx *c, const char *name, struct tensor_view *out);
/* Run nodes [first, last). Every tensor of cut `first` must have been set or
 * computed. Afterwards every tensor of cut `last` can be got. */
int engine_run_range(struct engine_ctx *c, int first, int last);
int engine_run(struct engine_ctx *c);	/* [0, N) */
/* 1 while the context's backend reports it usable; 0 once it reported
 * itself unhealthy (a sticky device error): every run on it fails, and the
 * engine should be reloaded on the CPU backend. */
int engine_ctx_healthy(const struct engine_ctx *c);

/* Row geometry of node i along H, for banded execution (overlap issue):
 * output row r reads input rows [r*stride_h - pad_top, ... + (kernel_h-1)*dil_h];
 * 1/1/1/0/0 for row-aligned elementwise nodes. inputs/outputs name the node's
 * activation tensors (constants left out), borrowed from the engine. */
#define ENGINE_NODE_MAX_IO 8
struct engine_node_rows {
	int64_t kernel_h, stride_h, dil_h, pad_top, pad_bottom;
	int n_inputs, n_outputs;
	const char *inputs[ENGINE_NODE_MAX_IO];
	const char *outputs[ENGINE_NODE_MAX_IO];
};
int engine_node_rows(const struct engine *e, int i, struct engine_node_rows *out);

/* Bytes of the activation arena one engine_ctx allocates, and of the
 * constant tensors (weights) the engine holds. */
size_t engine_arena_bytes(const struct engine *e);
size_t engine_weight_bytes(const struct engine *e);

/* Write nodes [first, last) as a standalone ONNX model: its inputs are the
 * tensors of cut `first`, its outputs those of cut `last`, with the
 * initializers the nodes need (after folding and fusion, so fused nodes are
 * written back as their ONNX parts). */
int engine_export_range(const struct engine *e, int first, int last, const char *path,
			char *err, size_t errlen);

/* Per-node profile: median ms over `runs` runs (after one warm-up) of each
 * node on a zero-filled input; node_ms has engine_num_nodes() entries. */
int engine_profile(const struct engine *e, int runs, double *node_ms);

/* The same with every node run twice in a row and the second run timed:
 * what the node costs with its weights, inputs and output already in the
 * caches. engine_profile's figure less this one is what bringing them in
 * costs the node as it runs in the model (kernels/README.md). */
int engine_profile_hot(const struct engine *e, int runs, double *node_ms);

/* Banded execution (band.c) ------------------------------------------------
 * Nodes [first, last) that are all row-local (Conv, MaxPool/AveragePool with
 * any pads and ceil_mode, BatchNorm, activations, Cast, elementwise ops whose
 * inputs are row-aligned or broadcast along H, Concat/Split off the H axis,
 * Pad and Slice that leave H alone) run as a wavefront of B horizontal bands:
 * after band b, rows [b*H/B, (b+1)*H/B) of every tensor of cut `last` are
 * final (H: that tensor's height; the cut's tensors must be 4-D NCHW and may
 * differ in height). Each output row of each node is computed exactly once,
 * so the work is engine_run_range's. Activations must live on the host (the
 * CPU backend). */
struct engine_band;

/* 0 when [first, last) can run banded; -ENOTSUP with err naming the barrier
 * node or the cut tensor that is not 4-D; -EINVAL for a bad range. */
int engine_band_check(const struct engine *e, int first, int last, char *err, size_t errlen);
/* The largest last for which [first, last) can run banded (the first
 * barrier's index, or before it when a cut there is not 4-D); first when
 * none. */
int engine_band_reach(const struct engine *e, int first);
/* 0 when the model's inputs can travel in bands themselves (cut 0: every
 * input a float NCHW tensor); -ENOTSUP with err naming one that cannot. */
int engine_band_inputs_check(const struct engine *e, char *err, size_t errlen);

/* Band state for one range on one ctx of engine e (borrowed; free the band
 * first). The tensors of cut `first` must be set in c before each run. */
int engine_band_new(const struct engine *e, struct engine_ctx *c, int first, int last,
		    int bands, struct engine_band **out, char *err, size_t errlen);
void engine_band_free(struct engine_band *b);

/* Called after band `band`: rows [row0, row1) of the first cut tensor (see
 * engine_band_rows for the others) are final. Nonzero stops the run. */
typedef int (*engine_band_fn)(void *ud, int band, int row0, int row1);
/* All bands in order. Afterwards cut `last` is in c as after
 * engine_run_range(c, first, last). */
int engine_band_run(struct engine_band *b, engine_band_fn on_band, void *ud);
/* One band: 0 starts a run, then 1, 2, ... B-1 (which completes it). */
int engine_band_step(struct engine_band *b, int band);
int engine_band_count(const struct engine_band *b);
/* Rows of cut tensor j (engine_cut_tensor(e, last, j) order) in band `band`. */
int engine_band_rows(const struct engine_band *b, int band, int j, int *row0, int *row1);
/* Where cut tensor j is written during the run (valid until engine_band_free):
 * its final rows can be sent before the run ends. */
int engine_band_cut_view(const struct engine_band *b, int j, struct tensor_view *out);

/* The wavefront driven by arriving input rows (the peer's side of a banded
 * offload): engine_band_begin starts a run; engine_band_feed says rows
 * [0, rows) of tensor `name` of cut `first` are final (never fewer than
 * before); engine_band_advance then computes every row of every node those
 * rows allow, and returns 1 once cut `last` is complete (every input fed
 * whole), 0 while rows are still missing. Each row of each node is computed
 * once, as in engine_band_run; the first `bands` advances are timed
 * (engine_band_time). -ENOENT: name is not a tensor of cut `first`. */
/* The share of [first, last)'s multiply-adds such a wavefront can run once
 * rows [0, floor(q*H)) of every tensor of cut `first` are in (H its height):
 * 1 at q = 1; less than q where windows reach below (a planner's model of
 * how much of the peer's work overlaps the upload). -1 for a range that
 * cannot run banded. */
double engine_band_wave_frac(const struct engine *e, int first, int last, double q);
/* That share for every cut k (its range [k, engine_band_reach(k))) at
 * q = i/steps: out[k * (steps + 1) + i], (num_nodes + 1) x (steps + 1); a
 * cut with no row-local node after it gets 0 until q = 1. */
int engine_band_wave_table(const struct engine *e, int steps, double *out);
int engine_band_begin(struct engine_band *b);
int engine_band_feed(struct engine_band *b, const char *name, int64_t rows);
int engine_band_advance(struct engine_band *b);

struct engine_band_stats {
	int64_t macs;		/* multiply-adds run: Conv counted from the row
				 * ranges each kernel call got */
	int64_t calls;		/* backend kernel calls */
	int64_t rows;		/* output rows computed, summed over nodes */
	int64_t copy_bytes;	/* gathered into and scattered from band scratch */
	int64_t private_bytes;	/* buffers for tensors whose arena slot is shared */
	int64_t start_ns, end_ns;	/* CLOCK_MONOTONIC, the last run */
};
int engine_band_stats(const struct engine_band *b, struct engine_band_stats *out);

/* Per-band timeline of the last run (CLOCK_MONOTONIC). */
struct engine_band_time {
	int64_t start_ns, end_ns;
	int64_t macs;
};
int engine_band_time(const struct engine_band *b, int band, struct engine_band_time *out);

#endif
