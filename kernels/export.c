/* engine_export_range: nodes [first, last) of the engine's graph (after
 * constant folding and fusion) as a standalone ONNX model.
 *
 * Ops are written in the model's own opset, so every attribute keeps the
 * meaning it had when the model was loaded. Fused nodes are written back as
 * their ONNX parts (Conv, Add, the activation) joined by fresh tensor names;
 * parameters the loader turned into constant inputs (Slice before opset 10,
 * Pad before 11, Upsample before 9) go back to attributes; Squeeze,
 * Unsqueeze and Reshape become Reshape to the static output shape; resolved
 * pads, axes and split sizes are written explicitly. Weights are written as
 * raw initializers straight from the engine's buffers: the message borrows
 * them and protobuf-c packs it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-impl.h"
#include "onnx.pb-c.h"

#define ERR(...) (eng_err(b->err, b->errlen, __VA_ARGS__), -EINVAL)
#define MAX_ATTRS 12

/* The model being built. Every allocation is recorded in blocks and freed
 * at the end; a failed allocation sets rc (sticky) and later calls return
 * early, so the emitters check once at the end of a node. */
struct builder {
	const struct engine *e;
	int opset;
	void **blocks;
	size_t n_blocks, cap_blocks;
	Onnx__NodeProto **node;
	size_t n_node, cap_node;
	Onnx__TensorProto **init;
	size_t n_init, cap_init;
	char *init_done;	/* per engine tensor: written as an initializer */
	const char *dropped;	/* a weight packed at load and not kept */
	unsigned fresh;		/* counter of generated names */
	int rc;
	char *err;
	size_t errlen;
};

static void *xalloc(struct builder *b, size_t size)
{
	void *p;
	if (b->rc)
		return NULL;
	if (b->n_blocks == b->cap_blocks) {
		size_t cap = b->cap_blocks ? b->cap_blocks * 2 : 256;
		void **nb = realloc(b->blocks, cap * sizeof(*nb));
		if (!nb)
			goto oom;
		b->blocks = nb;
		b->cap_blocks = cap;
	}
	if (!(p = calloc(1, size ? size : 1)))
		goto oom;
	b->blocks[b->n_blocks++] = p;
	return p;
oom:
	b->rc = -ENOMEM;
	return NULL;
}

static char *xprintf(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *xprintf(struct builder *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n >= 0 ? xalloc(b, (size_t)n + 1) : NULL;
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* A tensor name no engine tensor and no other generated name has: the
 * counter after the last '_' is unique, and `what` holds no digits. */
static char *fresh_name(struct builder *b, const char *base, const char *what)
{
	for (;;) {
		char *s = xprintf(b, "%s/%s_%u", base, what, b->fresh++);
		if (!s || eng_tensor_find(b->e, s) < 0)
			return s;
	}
}

static int grow(struct builder *b, void *arrp, size_t n, size_t *cap)
{
	void ***arr = arrp;
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 64;
	void **na = realloc(*arr, c * sizeof(void *));
	if (!na) {
		b->rc = -ENOMEM;
		return -ENOMEM;
	}
	*arr = na;
	*cap = c;
	return 0;
}

/* ---- initializers ---- */

static Onnx__TensorProto *tensor_proto(struct builder *b, const char *name, enum tensor_dtype dt,
				       int ndim, const int64_t *shape, const void *data, size_t bytes)
{
	Onnx__TensorProto *tp = xalloc(b, sizeof(*tp));
	int64_t *dims = xalloc(b, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
	if (!tp || !dims || grow(b, &b->init, b->n_init, &b->cap_init))
		return NULL;
	onnx__tensor_proto__init(tp);
	tp->name = (char *)name;
	tp->has_data_type = 1;
	tp->data_type = dt;
	tp->n_dims = (size_t)ndim;
	if (ndim)
		memcpy(dims, shape, sizeof(int64_t) * (size_t)ndim);
	tp->dims = dims;
	tp->has_raw_data = 1;
	tp->raw_data.len = bytes;
	tp->raw_data.data = (uint8_t *)data;	/* borrowed: packing only reads */
	b->init[b->n_init++] = tp;
	return tp;
}

/* A new constant (copied), named after base; returns its name. */
static char *new_init(struct builder *b, const char *base, const char *what, enum tensor_dtype dt,
		      int ndim, const int64_t *shape, const void *data)
{
	size_t bytes = tensor_dtype_size(dt);
	for (int i = 0; i < ndim; i++)
		bytes *= (size_t)shape[i];
	char *name = fresh_name(b, base, what);
	void *copy = xalloc(b, bytes);
	if (!name || !copy)
		return NULL;
	if (bytes)
		memcpy(copy, data, bytes);
	return tensor_proto(b, name, dt, ndim, shape, copy, bytes) ? name : NULL;
}

static char *ints_init(struct builder *b, const char *base, const char *what, const int64_t *v, int n)
{
	int64_t len = n;
	return new_init(b, base, what, TENSOR_I64, 1, &len, v);
}

/* The ONNX name of engine tensor ti as a node input ("" when absent);
 * constants become initializers the first time they are read. */
static char *in_name(struct builder *b, int ti)
{
	if (ti < 0)
		return "";
	const struct eng_tensor *t = &b->e->t[ti];
	if (t->is_const && !b->init_done[ti]) {
		b->init_done[ti] = 1;
		if (!t->data && t->bytes) {	/* packed at load and dropped */
			b->dropped = t->name;
			return "";
		}
		tensor_proto(b, t->name, t->dtype, t->ndim, t->shape, t->data, t->bytes);
	}
	return t->name;
}

/* ---- nodes and attributes ---- */

static Onnx__NodeProto *add_node(struct builder *b, const char *op, const char *name, int nin,
				 int nout)
{
	Onnx__NodeProto *np = xalloc(b, sizeof(*np));
	char **in = xalloc(b, sizeof(char *) * (size_t)(nin ? nin : 1));
	char **out = xalloc(b, sizeof(char *) * (size_t)(nout ? nout : 1));
	Onnx__AttributeProto **at = xalloc(b, sizeof(*at) * MAX_ATTRS);
	if (!np || !in || !out || !at || grow(b, &b->node, b->n_node, &b->cap_node))
		return NULL;
	onnx__node_proto__init(np);
	np->op_type = (char *)op;
	np->name = (char *)name;
	np->input = in;
	np->n_input = (size_t)nin;
	np->output = out;
	np->n_output = (size_t)nout;
	np->attribute = at;
	b->node[b->n_node++] = np;
	return np;
}

/* One-in one-out node, the shape of every activation part. */
static Onnx__NodeProto *node1(struct builder *b, const char *op, const char *name, const char *x,
			      const char *y)
{
	Onnx__NodeProto *np = add_node(b, op, name, 1, 1);
	if (np) {
		np->input[0] = (char *)x;
		np->output[0] = (char *)y;
	}
	return np;
}

static Onnx__NodeProto *node2(struct builder *b, const char *op, const char *name, const char *x0,
			      const char *x1, const char *y)
{
	Onnx__NodeProto *np = add_node(b, op, name, 2, 1);
	if (np) {
		np->input[0] = (char *)x0;
		np->input[1] = (char *)x1;
		np->output[0] = (char *)y;
	}
	return np;
}

static Onnx__AttributeProto *add_attr(struct builder *b, Onnx__NodeProto *np, const char *name,
				      Onnx__AttributeProto__AttributeType type)
{
	if (!np)
		return NULL;
	if (np->n_attribute >= MAX_ATTRS) {
		b->rc = b->rc ? b->rc : -E2BIG;
		return NULL;
	}
	Onnx__AttributeProto *a = xalloc(b, sizeof(*a));
	if (!a)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = (char *)name;
	a->has_type = 1;
	a->type = type;
	np->attribute[np->n_attribute++] = a;
	return a;
}

static void attr_int(struct builder *b, Onnx__NodeProto *np, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = add_attr(b, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	if (a)
		a->has_i = 1, a->i = v;
}

static void attr_float(struct builder *b, Onnx__NodeProto *np, const char *name, float v)
{
	Onnx__AttributeProto *a = add_attr(b, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	if (a)
		a->has_f = 1, a->f = v;
}

static void attr_str(struct builder *b, Onnx__NodeProto *np, const char *name, const char *s)
{
	Onnx__AttributeProto *a = add_attr(b, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	if (a) {
		a->has_s = 1;
		a->s.len = strlen(s);
		a->s.data = (uint8_t *)s;
	}
}

static void attr_ints(struct builder *b, Onnx__NodeProto *np, const char *name, const int64_t *v,
		      int n)
{
	Onnx__AttributeProto *a = add_attr(b, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	int64_t *c = xalloc(b, sizeof(int64_t) * (size_t)(n ? n : 1));
	if (!a || !c)
		return;
	memcpy(c, v, sizeof(int64_t) * (size_t)n);
	a->n_ints = (size_t)n;
	a->ints = c;
}

static void attr_floats(struct builder *b, Onnx__NodeProto *np, const char *name, const float *v,
			int n)
{
	Onnx__AttributeProto *a = add_attr(b, np, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
	float *c = xalloc(b, sizeof(float) * (size_t)(n ? n : 1));
	if (!a || !c)
		return;
	memcpy(c, v, sizeof(float) * (size_t)n);
	a->n_floats = (size_t)n;
	a->floats = c;
}

/* ---- op families ---- */

static const char *act_op(enum act_kind k)
{
	switch (k) {
	case ACT_RELU: return "Relu";
	case ACT_LEAKY_RELU: return "LeakyRelu";
	case ACT_CLIP: return "Clip";
	case ACT_SIGMOID: return "Sigmoid";
	case ACT_HARD_SIGMOID: return "HardSigmoid";
	case ACT_HARD_SWISH: return "HardSwish";
	case ACT_TANH: return "Tanh";
	case ACT_EXP: return "Exp";
	case ACT_SQRT: return "Sqrt";
	case ACT_NEG: return "Neg";
	case ACT_ABS: return "Abs";
	case ACT_ERF: return "Erf";
	case ACT_LOG: return "Log";
	case ACT_RECIPROCAL: return "Reciprocal";
	case ACT_FLOOR: return "Floor";
	case ACT_CEIL: return "Ceil";
	case ACT_GELU: case ACT_GELU_TANH: return "Gelu";
	default: return NULL;	/* ACT_NONE; ACT_SILU has two parts */
	}
}

/* y = act(x) as ONNX nodes named after `name`. */
static int emit_act(struct builder *b, const char *name, const struct act_params *a, const char *x,
		    const char *y)
{
	Onnx__NodeProto *np;

	if (a->kind == ACT_SILU || (a->kind == ACT_HARD_SWISH && b->opset < 14)) {
		/* x * Sigmoid(x); x * HardSigmoid(x; 1/6, 1/2) before opset 14 */
		int silu = a->kind == ACT_SILU;
		char *g = fresh_name(b, y, silu ? "sigmoid" : "hardsigmoid");
		np = node1(b, silu ? "Sigmoid" : "HardSigmoid",
			   xprintf(b, "%s/%s", name, silu ? "Sigmoid" : "HardSigmoid"), x, g);
		if (!silu) {
			attr_float(b, np, "alpha", 1.f / 6.f);
			attr_float(b, np, "beta", 0.5f);
		}
		node2(b, "Mul", xprintf(b, "%s/Mul", name), x, g, y);
		return b->rc;
	}
	const char *op = act_op(a->kind);
	if (!op)
		return ERR("node '%s': activation %d cannot be exported", name, (int)a->kind);
	if ((a->kind == ACT_GELU || a->kind == ACT_GELU_TANH) && b->opset < 20)
		return ERR("node '%s': Gelu cannot be written in opset %d (it needs 20)", name, b->opset);
	np = node1(b, op, xprintf(b, "%s/%s", name, op), x, y);
	switch (a->kind) {
	case ACT_LEAKY_RELU:
		attr_float(b, np, "alpha", a->alpha);
		break;
	case ACT_HARD_SIGMOID:
		attr_float(b, np, "alpha", a->alpha);
		attr_float(b, np, "beta", a->beta);
		break;
	case ACT_GELU_TANH:
		attr_str(b, np, "approximate", "tanh");
		break;
	case ACT_CLIP:
		if (b->opset < 11) {
			if (isfinite(a->alpha))
				attr_float(b, np, "min", a->alpha);
			if (isfinite(a->beta))
				attr_float(b, np, "max", a->beta);
		} else if (np && (isfinite(a->alpha) || isfinite(a->beta))) {
			/* min and max are inputs from opset 11: scalar initializers */
			char **in = xalloc(b, sizeof(char *) * 3);
			if (!in)
				break;
			in[0] = (char *)x;
			in[1] = isfinite(a->alpha) ? new_init(b, y, "min", TENSOR_F32, 0, NULL, &a->alpha) : "";
			in[2] = isfinite(a->beta) ? new_init(b, y, "max", TENSOR_F32, 0, NULL, &a->beta) : "";
			np->input = in;
			np->n_input = isfinite(a->beta) ? 3 : 2;
		}
		break;
	default:
		break;
	}
	return b->rc;
}

/* The kernel/stride/dilation/pads attributes of a conv or pool, in the
 * model's rank (1-D ops keep their single spatial axis). */
static void spatial_attrs(struct builder *b, Onnx__NodeProto *np, int spatial, const int64_t *kernel,
			  const int64_t *stride, const int64_t *dil, const int64_t *pads, int want_dil,
			  int want_pads)
{
	int o = spatial == 1;	/* 1-D: only index 1 of the 2-D params */
	int64_t p[4] = { pads[0], pads[1], pads[2], pads[3] };
	if (o)
		p[0] = pads[1], p[1] = pads[3];
	attr_ints(b, np, "kernel_shape", kernel + o, spatial);
	attr_ints(b, np, "strides", stride + o, spatial);
	if (want_dil)
		attr_ints(b, np, "dilations", dil + o, spatial);
	if (want_pads)
		attr_ints(b, np, "pads", p, 2 * spatial);
}

static int emit_conv(struct builder *b, const struct eng_node *n)
{
	const struct engine *e = b->e;
	const struct conv_params *c = &n->p.conv;
	int tr = n->kind == OP_CONV_TRANSPOSE;
	int act = c->act.kind != ACT_NONE;
	const char *y = e->t[n->out[0]].name;
	char *conv_out = (c->has_sum || act) ? fresh_name(b, y, tr ? "convtranspose" : "conv") : (char *)y;
	int nin = c->has_bias ? 3 : 2;
	Onnx__NodeProto *np = add_node(b, tr ? "ConvTranspose" : "Conv", n->name, nin, 1);

	if (!np)
		return b->rc;
	for (int j = 0; j < nin; j++)
		np->input[j] = in_name(b, n->in[j]);
	np->output[0] = conv_out;
	int want_pads = !(tr && c->out_shape[1] > 0);
	spatial_attrs(b, np, c->spatial, c->kernel, c->stride, c->dil, c->pads, 1, want_pads);
	attr_int(b, np, "group", c->group);
	if (tr) {
		int o = c->spatial == 1;
		if (c->out_pad[0] || c->out_pad[1])
			attr_ints(b, np, "output_padding", c->out_pad + o, c->spatial);
		if (!want_pads) {
			attr_ints(b, np, "output_shape", c->out_shape + o, c->spatial);
			if (c->auto_pad == PAD_SAME_LOWER || c->auto_pad == PAD_SAME_UPPER)
				attr_str(b, np, "auto_pad", c->auto_pad == PAD_SAME_LOWER ?
					 "SAME_LOWER" : "SAME_UPPER");
		}
	}
	const char *x = conv_out;
	if (c->has_sum) {
		char *sum_out = act ? fresh_name(b, y, "add") : (char *)y;
		node2(b, "Add", xprintf(b, "%s/Add", n->name), conv_out, in_name(b, n->in[3]), sum_out);
		x = sum_out;
	}
	if (act)
		return emit_act(b, n->name, &c->act, x, y);
	return b->rc;
}

static int emit_pool(struct builder *b, const struct eng_node *n, Onnx__NodeProto *np)
{
	const struct pool_params *p = &n->p.pool;
	int max = n->kind == OP_MAXPOOL;
	int dil = p->dil[0] != 1 || p->dil[1] != 1;
	if (dil && (!max || b->opset < 10))
		return ERR("node '%s' (%s): dilations cannot be written in opset %d", n->name, n->op,
			   b->opset);
	spatial_attrs(b, np, p->spatial, p->kernel, p->stride, p->dil, p->pads, dil, 1);
	if (p->ceil_mode)
		attr_int(b, np, "ceil_mode", 1);
	if (!max && p->count_include_pad)
		attr_int(b, np, "count_include_pad", 1);
	return b->rc;
}

static const char *coord_name(enum resize_coord c)
{
	switch (c) {
	case COORD_HALF_PIXEL: return "half_pixel";
	case COORD_ASYMMETRIC: return "asymmetric";
	case COORD_PYTORCH_HALF_PIXEL: return "pytorch_half_pixel";
	case COORD_ALIGN_CORNERS: return "align_corners";
	case COORD_TF_HALF_PIXEL_FOR_NN: return "tf_half_pixel_for_nn";
	default: return "tf_crop_and_resize";
	}
}

static const char *nearest_name(enum resize_nearest m)
{
	switch (m) {
	case NEAREST_ROUND_PREFER_FLOOR: return "round_prefer_floor";
	case NEAREST_ROUND_PREFER_CEIL: return "round_prefer_ceil";
	case NEAREST_FLOOR: return "floor";
	default: return "ceil";
	}
}

static void emit_resize_attrs(struct builder *b, const struct eng_node *n, Onnx__NodeProto *np)
{
	const struct resize_params *r = &n->p.resize;
	const char *mode = r->mode == RESIZE_NEAREST ? "nearest" : r->mode == RESIZE_LINEAR ?
			   "linear" : "cubic";
	attr_str(b, np, "mode", mode);
	if (r->upsample || b->opset < 11)
		return;
	attr_str(b, np, "coordinate_transformation_mode", coord_name(r->coord));
	if (r->mode == RESIZE_NEAREST)
		attr_str(b, np, "nearest_mode", nearest_name(r->nearest));
	if (r->mode == RESIZE_CUBIC) {
		attr_float(b, np, "cubic_coeff_a", r->cubic_a);
		if (r->exclude_outside)
			attr_int(b, np, "exclude_outside", 1);
	}
	if (r->extrapolation != 0.f)
		attr_float(b, np, "extrapolation_value", r->extrapolation);
}

/* Reads a constant 1-D int tensor (the loader's attribute copies). */
static int const_ints(const struct eng_tensor *t, int64_t *v, int max)
{
	if (!t->is_const || t->ndim != 1 || t->shape[0] > max)
		return -1;
	for (int64_t i = 0; i < t->shape[0]; i++)
		v[i] = t->dtype == TENSOR_I64 ? ((const int64_t *)t->data)[i] :
		       t->dtype == TENSOR_I32 ? ((const int32_t *)t->data)[i] : 0;
	return (int)t->shape[0];
}

/* Reductions take axes as an input from opset 13 (ReduceSum) or 18 */
static int reduce_axes_input(enum op_kind k, int opset)
{
	if (k == OP_REDUCE_SUM)
		return opset >= 13;
	return opset >= 18 && (k == OP_REDUCE_MEAN || (k >= OP_REDUCE_MAX && k <= OP_REDUCE_SUM_SQUARE));
}

/* Every node that is not a fused conv: one ONNX node, except SiLU. */
static int emit_node(struct builder *b, const struct eng_node *n)
{
	const struct engine *e = b->e;
	const char *op = eng_op_name(n->kind);
	const char *y = n->out[0] >= 0 ? e->t[n->out[0]].name : NULL;
	int nin = n->n_in, nout = n->n_out;
	Onnx__NodeProto *np;
	int64_t v[2 * TENSOR_MAX_DIMS];

	switch (n->kind) {
	case OP_CONV:
	case OP_CONV_TRANSPOSE:
		return emit_conv(b, n);
	case OP_SILU:
		return emit_act(b, n->name, &n->p.act, in_name(b, n->in[0]), y);
	case OP_RELU: case OP_LEAKY_RELU: case OP_SIGMOID: case OP_HARD_SIGMOID:
	case OP_HARD_SWISH: case OP_TANH: case OP_EXP: case OP_SQRT: case OP_NEG: case OP_ABS:
	case OP_ERF: case OP_LOG: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL:
	case OP_GELU:
		if (n->kind == OP_GELU && b->opset < 20)
			return ERR("node '%s' (Gelu): cannot be written in opset %d (it needs 20)", n->name,
				   b->opset);
		np = node1(b, act_op(n->p.act.kind), n->name, in_name(b, n->in[0]), y);
		if (n->kind == OP_LEAKY_RELU)
			attr_float(b, np, "alpha", n->p.act.alpha);
		if (n->p.act.kind == ACT_GELU_TANH)
			attr_str(b, np, "approximate", "tanh");
		if (n->kind == OP_HARD_SIGMOID) {
			attr_float(b, np, "alpha", n->p.act.alpha);
			attr_float(b, np, "beta", n->p.act.beta);
		}
		return b->rc;
	case OP_CLIP:
		if (b->opset < 11) {
			np = node1(b, "Clip", n->name, in_name(b, n->in[0]), y);
			if (isfinite(n->p.act.alpha))
				attr_float(b, np, "min", n->p.act.alpha);
			if (isfinite(n->p.act.beta))
				attr_float(b, np, "max", n->p.act.beta);
			return b->rc;
		}
		break;	/* min and max stay the model's constant inputs */
	case OP_RESHAPE:
		if (!strcmp(n->op, "Flatten")) {
			op = "Flatten";
			nin = 1;
			break;
		}
		{	/* Reshape, Squeeze, Unsqueeze: Reshape to the static shape */
			const struct eng_tensor *t = &e->t[n->out[0]];
			int zero = 0;
			for (int i = 0; i < t->ndim; i++)
				zero |= !t->shape[i];
			if (zero && b->opset < 14)
				return ERR("node '%s' (%s): a zero-sized shape needs opset 14 to export",
					   n->name, n->op);
			np = node2(b, "Reshape", n->name, in_name(b, n->in[0]),
				   ints_init(b, y, "shape", t->shape, t->ndim), y);
			if (zero)
				attr_int(b, np, "allowzero", 1);
			return b->rc;
		}
	case OP_IDENTITY:
		op = "Identity";	/* also Dropout at inference */
		nin = 1;
		break;
	case OP_BATCHNORM:
		nin = 5;
		break;
	case OP_SLICE:
		if (b->opset < 10)
			nin = 1;	/* starts/ends/axes go back to attributes */
		break;
	case OP_PAD:
		if (b->opset < 11)
			nin = 1;
		break;
	case OP_RESIZE:
		if (n->p.resize.upsample) {
			op = "Upsample";
			if (b->opset < 9)
				nin = 1;
		} else {
			op = "Resize";
		}
		break;
	case OP_SOFTMAX:
		op = n->p.softmax.log ? "LogSoftmax" : "Softmax";
		break;
	case OP_SPLIT:
		nin = 1;	/* sizes written from the resolved split below */
		break;
	case OP_REDUCE_MEAN: case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
	case OP_REDUCE_PROD: case OP_REDUCE_L1: case OP_REDUCE_L2: case OP_REDUCE_LOG_SUM:
	case OP_REDUCE_LOG_SUM_EXP: case OP_REDUCE_SUM_SQUARE:
		if (n->p.axes.naxes == 0) {	/* noop_with_empty_axes */
			node1(b, "Identity", n->name, in_name(b, n->in[0]), y);
			return b->rc;
		}
		nin = 1;	/* axes written from the resolved mask below */
		break;
	case OP_SHAPE: case OP_CONSTANT: case OP_CONSTANT_OF_SHAPE:
		return ERR("node '%s' (%s) should have been constant-folded", n->name, n->op);
	default:
		break;
	}
	while (nin > 0 && n->in[nin - 1] < 0)
		nin--;
	if (n->kind == OP_SPLIT && b->opset >= 13)
		nin = 2;
	if (reduce_axes_input(n->kind, b->opset))
		nin = 2;
	if (n->kind != OP_SPLIT)
		while (nout > 1 && n->out[nout - 1] < 0)
			nout--;
	if (!(np = add_node(b, op, n->name, nin, nout)))
		return b->rc;
	for (int j = 0; j < nin; j++)
		np->input[j] = j < n->n_in ? in_name(b, n->in[j]) : "";
	for (int j = 0; j < nout; j++)
		np->output[j] = n->out[j] >= 0 ? e->t[n->out[j]].name :
				fresh_name(b, n->name, "unused");

	switch (n->kind) {
	case OP_BATCHNORM:
		attr_float(b, np, "epsilon", n->p.bn.eps);
		break;
	case OP_MAXPOOL:
	case OP_AVGPOOL:
		return emit_pool(b, n, np);
	case OP_GEMM:
		attr_float(b, np, "alpha", n->p.gemm.alpha);
		attr_float(b, np, "beta", n->p.gemm.beta);
		attr_int(b, np, "transA", n->p.gemm.trans_a);
		attr_int(b, np, "transB", n->p.gemm.trans_b);
		break;
	case OP_RESHAPE:	/* Flatten */
		attr_int(b, np, "axis", n->p.axes.axis);
		break;
	case OP_TRANSPOSE:
		for (int i = 0; i < n->p.transpose.nperm; i++)
			v[i] = n->p.transpose.perm[i];
		attr_ints(b, np, "perm", v, n->p.transpose.nperm);
		break;
	case OP_CONCAT:
	case OP_GATHER:
		attr_int(b, np, "axis", n->p.axes.axis);
		break;
	case OP_SPLIT:
		attr_int(b, np, "axis", n->p.split.axis);
		if (b->opset >= 13)
			np->input[1] = ints_init(b, y ? y : n->name, "split", n->p.split.sizes, nout);
		else
			attr_ints(b, np, "split", n->p.split.sizes, nout);
		break;
	case OP_SLICE:
		if (b->opset < 10) {
			static const char *const names[] = { "starts", "ends", "axes" };
			for (int j = 1; j < 4 && j < n->n_in; j++) {
				int k;
				if (n->in[j] < 0)
					continue;
				if ((k = const_ints(&e->t[n->in[j]], v, TENSOR_MAX_DIMS)) < 0)
					return ERR("node '%s' (Slice): %s is not a constant", n->name,
						   names[j - 1]);
				attr_ints(b, np, names[j - 1], v, k);
			}
		}
		break;
	case OP_RESIZE:
		emit_resize_attrs(b, n, np);
		if (n->p.resize.upsample && b->opset < 9) {
			const struct eng_tensor *s = &e->t[n->in[1]];
			if (!s->is_const || s->dtype != TENSOR_F32 || s->ndim != 1)
				return ERR("node '%s' (Upsample): scales are not a constant", n->name);
			attr_floats(b, np, "scales", s->data, (int)s->shape[0]);
		}
		break;
	case OP_SOFTMAX:
		attr_int(b, np, "axis", n->p.softmax.axis);
		break;
	case OP_PAD: {
		static const char *const modes[] = { "constant", "reflect", "edge" };
		attr_str(b, np, "mode", modes[n->p.pad.mode]);
		if (b->opset < 11) {
			int r = e->t[n->in[0]].ndim;
			attr_ints(b, np, "pads", n->p.pad.pads, 2 * r);
			if (n->p.pad.value != 0.)
				attr_float(b, np, "value", (float)n->p.pad.value);
		}
		break;
	}
	case OP_CAST:
		attr_int(b, np, "to", n->p.cast.to);
		break;
	case OP_REDUCE_MEAN: case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
	case OP_REDUCE_PROD: case OP_REDUCE_L1: case OP_REDUCE_L2: case OP_REDUCE_LOG_SUM:
	case OP_REDUCE_LOG_SUM_EXP: case OP_REDUCE_SUM_SQUARE: {
		const struct axes_params *a = &n->p.axes;
		int k = 0;
		for (int i = 0; i < a->naxes; i++)	/* a per-axis mask after inference */
			if (a->axes[i])
				v[k++] = i;
		attr_int(b, np, "keepdims", a->keepdims);
		if (reduce_axes_input(n->kind, b->opset))
			np->input[1] = ints_init(b, y, "axes", v, k);
		else
			attr_ints(b, np, "axes", v, k);
		break;
	}
	case OP_ARGMAX: case OP_ARGMIN:
		attr_int(b, np, "axis", n->p.arg.axis);
		attr_int(b, np, "keepdims", n->p.arg.keepdims);
		if (n->p.arg.last)
			attr_int(b, np, "select_last_index", 1);
		break;
	case OP_MOD:
		attr_int(b, np, "fmod", n->p.mod.fmod);
		break;
	case OP_SCATTER_ND:
		if (n->p.scatter.reduce != SCATTER_NONE)
			attr_str(b, np, "reduction", n->p.scatter.reduce == SCATTER_ADD ? "add" : "mul");
		break;
	case OP_LAYER_NORM:
		attr_int(b, np, "axis", n->p.ln.axis);
		attr_float(b, np, "epsilon", n->p.ln.eps);
		break;
	case OP_GATHER_ELEMENTS:
		attr_int(b, np, "axis", n->p.axes.axis);
		break;
	case OP_EINSUM: {	/* the equation again, labels renamed a, b, ... */
		const struct einsum_params *p = &n->p.einsum;
		char eq[EINSUM_MAX_IN * (TENSOR_MAX_DIMS + 1) + TENSOR_MAX_DIMS + 4];
		size_t k = 0;
		for (int i = 0; i < p->nin; i++) {
			for (int d = 0; d < p->rank[i]; d++)
				eq[k++] = (char)('a' + p->in[i][d]);
			eq[k++] = i + 1 < p->nin ? ',' : '-';
		}
		eq[k++] = '>';
		for (int d = 0; d < p->out_rank; d++)
			eq[k++] = (char)('a' + p->out[d]);
		eq[k] = 0;
		attr_str(b, np, "equation", eq);
		break;
	}
	case OP_CUMSUM:
		attr_int(b, np, "exclusive", n->p.cumsum.exclusive);
		attr_int(b, np, "reverse", n->p.cumsum.reverse);
		break;
	case OP_TOPK:
		attr_int(b, np, "axis", n->p.topk.axis);
		if (b->opset < 10)
			attr_int(b, np, "k", n->p.topk.k);
		else if (b->opset >= 11)
			attr_int(b, np, "largest", n->p.topk.largest);
		break;
	default:
		break;
	}
	return b->rc;
}

/* ---- graph inputs and outputs ---- */

static Onnx__ValueInfoProto *value_info(struct builder *b, const struct engine_value_info *vi)
{
	Onnx__ValueInfoProto *v = xalloc(b, sizeof(*v));
	Onnx__TypeProto *tp = xalloc(b, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = xalloc(b, sizeof(*tt));
	Onnx__TensorShapeProto *sh = xalloc(b, sizeof(*sh));
	Onnx__TensorShapeProto__Dimension **dims = xalloc(b, sizeof(*dims) * (size_t)(vi->ndim + 1));
	if (!v || !tp || !tt || !sh || !dims)
		return NULL;
	onnx__value_info_proto__init(v);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	for (int i = 0; i < vi->ndim; i++) {
		Onnx__TensorShapeProto__Dimension *d = xalloc(b, sizeof(*d));
		if (!d)
			return NULL;
		onnx__tensor_shape_proto__dimension__init(d);
		d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
		d->dim_value = vi->shape[i];
		dims[i] = d;
	}
	sh->n_dim = (size_t)vi->ndim;
	sh->dim = dims;
	tt->has_elem_type = 1;
	tt->elem_type = vi->dtype;
	tt->shape = sh;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	v->name = (char *)vi->name;
	v->type = tp;
	return v;
}

static int cut_values(struct builder *b, int k, Onnx__ValueInfoProto ***out, size_t *n)
{
	int c = engine_cut_count(b->e, k);
	if (c < 0)
		return c;
	Onnx__ValueInfoProto **arr = xalloc(b, sizeof(*arr) * (size_t)(c + 1));
	for (int j = 0; arr && j < c; j++) {
		struct engine_value_info vi;
		int rc = engine_cut_tensor(b->e, k, j, &vi);
		if (rc)
			return rc;
		arr[j] = value_info(b, &vi);
	}
	*out = arr;
	*n = (size_t)c;
	return b->rc;
}

static int write_file(struct builder *b, const Onnx__ModelProto *mp, const char *path)
{
	size_t len = onnx__model_proto__get_packed_size(mp);
	uint8_t *buf = malloc(len ? len : 1);
	FILE *f = NULL;
	int rc = -ENOMEM;

	if (!buf)
		goto out;
	if (onnx__model_proto__pack(mp, buf) != len) {
		rc = ERR("packing the ONNX model gave an unexpected size");
		goto out;
	}
	if (!(f = fopen(path, "wb"))) {
		rc = -errno;
		eng_err(b->err, b->errlen, "cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	if (fwrite(buf, 1, len, f) != len || fflush(f)) {
		rc = errno ? -errno : -EIO;
		eng_err(b->err, b->errlen, "cannot write %s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (f && fclose(f) && !rc) {
		rc = -EIO;
		eng_err(b->err, b->errlen, "cannot write %s: %s", path, strerror(errno));
	}
	free(buf);
	return rc;
}

int engine_export_range(const struct engine *e, int first, int last, const char *path,
			char *err, size_t errlen)
{
	struct builder bs = { .e = e, .err = err, .errlen = errlen }, *b = &bs;
	Onnx__ModelProto mp;
	Onnx__GraphProto g;
	Onnx__OperatorSetIdProto op;
	Onnx__OperatorSetIdProto *ops[1] = { &op };
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!e || !path)
		return -EINVAL;
	if (first < 0 || last > e->nn || first > last)
		return ERR("export range [%d, %d) is not within the model's %d nodes", first, last, e->nn);
	b->opset = e->opset;
	if (b->opset < 7)
		return ERR("exporting opset %d models is not supported (7 and later are)", b->opset);
	if (!(b->init_done = calloc((size_t)e->nt + 1, 1)))
		return -ENOMEM;

	onnx__graph_proto__init(&g);
	g.name = xprintf(b, "splitd_nodes_%d_%d", first, last);
	if ((rc = cut_values(b, first, &g.input, &g.n_input)) ||
	    (rc = cut_values(b, last, &g.output, &g.n_output)))
		goto out;
	for (int i = first; i < last; i++)
		if ((rc = emit_node(b, &e->n[i])))
			goto out;
	if (b->dropped) {
		rc = ERR("weight '%s' was packed at load and not kept (load with engine_opts.keep_weights)",
			 b->dropped);
		goto out;
	}
	g.node = b->node;
	g.n_node = b->n_node;
	g.initializer = b->init;
	g.n_initializer = b->n_init;

	onnx__operator_set_id_proto__init(&op);
	op.domain = "";
	op.has_version = 1;
	op.version = b->opset;
	onnx__model_proto__init(&mp);
	mp.has_ir_version = 1;
	mp.ir_version = b->opset >= 14 ? 8 : 7;
	mp.producer_name = "splitd";
	mp.n_opset_import = 1;
	mp.opset_import = ops;
	mp.graph = &g;
	rc = write_file(b, &mp, path);
out:
	if (rc == -ENOMEM && err && errlen && !err[0])
		eng_err(err, errlen, "out of memory while exporting nodes [%d, %d)", first, last);
	if (rc == -E2BIG && err && errlen && !err[0])
		eng_err(err, errlen, "a node has more attributes than the exporter writes");
	for (size_t i = 0; i < b->n_blocks; i++)
		free(b->blocks[i]);
	free(b->blocks);
	free(b->node);
	free(b->init);
	free(b->init_done);
	return rc;
}
