/* ONNX ModelProto (protobuf-c, generated from Debian's onnx.proto) -> the
 * engine's graph IR: tensors, constant initializers, nodes with typed params.
 * Every allocation is bounded by the file size. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "engine-impl.h"
#include "onnx.pb-c.h"

#define ERR(...) (eng_err(err, errlen, __VA_ARGS__), -EINVAL)

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *np, const char *name)
{
	for (size_t i = 0; i < np->n_attribute; i++)
		if (np->attribute[i]->name && !strcmp(np->attribute[i]->name, name))
			return np->attribute[i];
	return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *np, const char *name, int64_t def)
{
	const Onnx__AttributeProto *a = attr(np, name);
	return a && a->has_i ? a->i : def;
}

static float attr_f(const Onnx__NodeProto *np, const char *name, float def)
{
	const Onnx__AttributeProto *a = attr(np, name);
	return a && a->has_f ? a->f : def;
}

static const char *attr_s(const Onnx__NodeProto *np, const char *name, const char *def,
			  char *buf, size_t buflen)
{
	const Onnx__AttributeProto *a = attr(np, name);
	if (!a || !a->has_s)
		return def;
	size_t n = a->s.len < buflen - 1 ? a->s.len : buflen - 1;
	memcpy(buf, a->s.data, n);
	buf[n] = 0;
	return buf;
}

/* Copies up to max ints; returns the count, -1 if absent, -2 if too many. */
static int attr_ints(const Onnx__NodeProto *np, const char *name, int64_t *out, int max)
{
	const Onnx__AttributeProto *a = attr(np, name);
	if (!a || (!a->n_ints && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS))
		return -1;
	if (a->n_ints > (size_t)max)
		return -2;
	for (size_t i = 0; i < a->n_ints; i++)
		out[i] = a->ints[i];
	return (int)a->n_ints;
}

static int dtype_ok(int dt)
{
	switch (dt) {
	case TENSOR_F32: case TENSOR_U8: case TENSOR_I8: case TENSOR_I32:
	case TENSOR_I64: case TENSOR_BOOL: case TENSOR_F64: case TENSOR_F16:
		return 1;
	default:
		return 0;
	}
}

/* Takes an array out of the unpacked message: the message's allocator is
 * malloc (msg_alloc), so the engine frees it with free(), and free_unpacked
 * skips the NULL left behind. Each weight then lives in memory once. */
#define STEAL(dst, field, count) do { (dst) = (void *)(field); (field) = NULL; (count) = 0; } while (0)

/* TensorProto -> constant tensor ti (data owned by the engine). The data
 * arrays move from the message to the engine where the types agree. */
static int load_tensor(struct engine *e, Onnx__TensorProto *tp, int ti, size_t file_len,
		       const char *what, char *err, size_t errlen)
{
	struct eng_tensor *t = &e->t[ti];
	int64_t numel = 1, shape[TENSOR_MAX_DIMS];
	int dt = tp->has_data_type ? tp->data_type : 0;

	if (tp->n_dims > TENSOR_MAX_DIMS)
		return ERR("%s '%s' has %zu dimensions (at most %d)", what, t->name, tp->n_dims,
			   TENSOR_MAX_DIMS);
	if (tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return ERR("%s '%s' uses external data, which is not supported", what, t->name);
	if (!dtype_ok(dt))
		return ERR("%s '%s' has unsupported data type %d", what, t->name, dt);
	for (size_t i = 0; i < tp->n_dims; i++) {
		if (tp->dims[i] < 0 || tp->dims[i] > ENG_MAX_TENSOR_BYTES)
			return ERR("%s '%s' has an invalid dimension %lld", what, t->name,
				   (long long)tp->dims[i]);
		shape[i] = tp->dims[i];
		if (shape[i] && numel > (int64_t)(file_len + 64) / shape[i] + 1)
			return ERR("%s '%s' claims more elements than the file holds", what, t->name);
		numel *= shape[i];
	}
	size_t esz = tensor_dtype_size(dt);
	size_t bytes = (size_t)numel * esz;
	size_t have;
	if (tp->has_raw_data)
		have = tp->raw_data.len;
	else if (dt == TENSOR_F32)
		have = tp->n_float_data * esz;
	else if (dt == TENSOR_I64)
		have = tp->n_int64_data * esz;
	else if (dt == TENSOR_F64)
		have = tp->n_double_data * esz;
	else
		have = tp->n_int32_data * esz;
	if (have != bytes)
		return ERR("%s '%s' holds %zu bytes of data, its shape needs %zu", what, t->name,
			   have, bytes);
	eng_tensor_set_shape(t, dt, (int)tp->n_dims, shape);
	t->is_const = 1;
	if (bytes && tp->has_raw_data) {
		STEAL(t->data, tp->raw_data.data, tp->raw_data.len);
		return 0;
	}
	if (bytes && dt == TENSOR_F32) {
		STEAL(t->data, tp->float_data, tp->n_float_data);
		return 0;
	}
	if (bytes && dt == TENSOR_I64) {
		STEAL(t->data, tp->int64_data, tp->n_int64_data);
		return 0;
	}
	if (bytes && dt == TENSOR_F64) {
		STEAL(t->data, tp->double_data, tp->n_double_data);
		return 0;
	}
	t->data = malloc(bytes ? bytes : 1);
	if (!t->data)
		return -ENOMEM;
	if (!bytes) {
		;	/* empty tensor: nothing to copy (the source may be NULL) */
	} else {
		for (int64_t i = 0; i < numel; i++) {
			int32_t v = tp->int32_data[i];
			if (dt == TENSOR_I32)
				((int32_t *)t->data)[i] = v;
			else if (dt == TENSOR_F16)
				((uint16_t *)t->data)[i] = (uint16_t)v;
			else
				((uint8_t *)t->data)[i] = (uint8_t)v;
		}
	}
	return 0;
}

static int make_const_from_attr(struct engine *e, const Onnx__NodeProto *np, int ti,
				size_t file_len, char *err, size_t errlen)
{
	struct eng_tensor *t = &e->t[ti];
	const Onnx__AttributeProto *a;

	if ((a = attr(np, "value")) && a->t)
		return load_tensor(e, (Onnx__TensorProto *)a->t, ti, file_len, "Constant", err, errlen);
	if ((a = attr(np, "value_float")) && a->has_f) {
		eng_tensor_set_shape(t, TENSOR_F32, 0, NULL);
		if (!(t->data = malloc(4)))
			return -ENOMEM;
		*(float *)t->data = a->f;
	} else if ((a = attr(np, "value_int")) && a->has_i) {
		eng_tensor_set_shape(t, TENSOR_I64, 0, NULL);
		if (!(t->data = malloc(8)))
			return -ENOMEM;
		*(int64_t *)t->data = a->i;
	} else if ((a = attr(np, "value_floats"))) {
		int64_t n = (int64_t)a->n_floats;
		eng_tensor_set_shape(t, TENSOR_F32, 1, &n);
		if (!(t->data = malloc(n * 4 + 1)))
			return -ENOMEM;
		if (n)
			memcpy(t->data, a->floats, n * 4);
	} else if ((a = attr(np, "value_ints"))) {
		int64_t n = (int64_t)a->n_ints;
		eng_tensor_set_shape(t, TENSOR_I64, 1, &n);
		if (!(t->data = malloc(n * 8 + 1)))
			return -ENOMEM;
		if (n)
			memcpy(t->data, a->ints, n * 8);
	} else {
		return ERR("Constant node '%s' has no supported value attribute",
			   np->name ? np->name : "");
	}
	t->is_const = 1;
	return 0;
}

static int parse_pads_common(const char *nname, const Onnx__NodeProto *np, int64_t *kernel, int64_t *stride,
			     int64_t *dil, int64_t *pads, enum auto_pad *ap, int *spatial,
			     int need_kernel, char *err, size_t errlen)
{
	int64_t v[8];
	int nk = attr_ints(np, "kernel_shape", v, 8);
	char buf[32];
	const char *s;

	if (nk == -2 || nk > 2)
		return ERR("node '%s' (%s): only 1-D and 2-D kernels are supported", nname, np->op_type);
	if (nk < 0 && need_kernel)
		return ERR("node '%s' (%s): kernel_shape is required", nname, np->op_type);
	*spatial = nk > 0 ? nk : 0;	/* 0: taken from the weight at shape inference */
	kernel[0] = kernel[1] = 0;
	if (nk == 1) {
		kernel[0] = 1, kernel[1] = v[0];
	} else if (nk == 2) {
		kernel[0] = v[0], kernel[1] = v[1];
	}
	stride[0] = stride[1] = dil[0] = dil[1] = 1;
	pads[0] = pads[1] = pads[2] = pads[3] = 0;
	int n = attr_ints(np, "strides", v, 8);
	if (n == 1) stride[1] = v[0];
	if (n == 2) stride[0] = v[0], stride[1] = v[1];
	if (n < -1 || n > 2)
		return ERR("node '%s' (%s): bad strides", nname, np->op_type);
	n = attr_ints(np, "dilations", v, 8);
	if (n == 1) dil[1] = v[0];
	if (n == 2) dil[0] = v[0], dil[1] = v[1];
	if (n < -1 || n > 2)
		return ERR("node '%s' (%s): bad dilations", nname, np->op_type);
	n = attr_ints(np, "pads", v, 8);
	if (n == 2) pads[1] = v[0], pads[3] = v[1];
	if (n == 4) pads[0] = v[0], pads[1] = v[1], pads[2] = v[2], pads[3] = v[3];
	if (n < -1 || n == 1 || n == 3 || n > 4)
		return ERR("node '%s' (%s): bad pads", nname, np->op_type);
	for (int i = 0; i < 4; i++)
		if (pads[i] < 0 || pads[i] > 1 << 20)
			return ERR("node '%s' (%s): bad pads", nname, np->op_type);
	for (int i = 0; i < 2; i++)
		if (stride[i] < 1 || dil[i] < 1 || stride[i] > 1 << 20 || dil[i] > 1 << 20 ||
		    kernel[i] < 0 || kernel[i] > 1 << 20)
			return ERR("node '%s' (%s): bad strides, dilations or kernel", nname, np->op_type);
	s = attr_s(np, "auto_pad", "NOTSET", buf, sizeof(buf));
	if (!strcmp(s, "NOTSET")) *ap = PAD_NOTSET;
	else if (!strcmp(s, "SAME_UPPER")) *ap = PAD_SAME_UPPER;
	else if (!strcmp(s, "SAME_LOWER")) *ap = PAD_SAME_LOWER;
	else if (!strcmp(s, "VALID")) *ap = PAD_VALID;
	else return ERR("node '%s' (%s): unknown auto_pad '%s'", nname, np->op_type, s);
	return 0;
}

struct opmap { const char *name; enum op_kind kind; enum act_kind act; };
static const struct opmap ops[] = {
	{ "Conv", OP_CONV, 0 }, { "ConvTranspose", OP_CONV_TRANSPOSE, 0 },
	{ "BatchNormalization", OP_BATCHNORM, 0 },
	{ "Relu", OP_RELU, ACT_RELU }, { "LeakyRelu", OP_LEAKY_RELU, ACT_LEAKY_RELU },
	{ "Clip", OP_CLIP, ACT_CLIP }, { "Sigmoid", OP_SIGMOID, ACT_SIGMOID },
	{ "HardSigmoid", OP_HARD_SIGMOID, ACT_HARD_SIGMOID },
	{ "HardSwish", OP_HARD_SWISH, ACT_HARD_SWISH }, { "Tanh", OP_TANH, ACT_TANH },
	{ "Exp", OP_EXP, ACT_EXP }, { "Sqrt", OP_SQRT, ACT_SQRT }, { "Neg", OP_NEG, ACT_NEG },
	{ "Abs", OP_ABS, ACT_ABS }, { "Erf", OP_ERF, ACT_ERF }, { "Log", OP_LOG, ACT_LOG },
	{ "Reciprocal", OP_RECIPROCAL, ACT_RECIPROCAL }, { "Floor", OP_FLOOR, ACT_FLOOR },
	{ "Ceil", OP_CEIL, ACT_CEIL }, { "Gelu", OP_GELU, ACT_GELU },
	{ "Add", OP_ADD, 0 }, { "Sub", OP_SUB, 0 }, { "Mul", OP_MUL, 0 }, { "Div", OP_DIV, 0 },
	{ "Pow", OP_POW, 0 },
	{ "MaxPool", OP_MAXPOOL, 0 }, { "AveragePool", OP_AVGPOOL, 0 },
	{ "GlobalAveragePool", OP_GLOBAL_AVGPOOL, 0 }, { "GlobalMaxPool", OP_GLOBAL_MAXPOOL, 0 },
	{ "Gemm", OP_GEMM, 0 }, { "MatMul", OP_MATMUL, 0 },
	{ "Flatten", OP_RESHAPE, 0 }, { "Reshape", OP_RESHAPE, 0 },
	{ "Squeeze", OP_RESHAPE, 0 }, { "Unsqueeze", OP_RESHAPE, 0 },
	{ "Transpose", OP_TRANSPOSE, 0 }, { "Concat", OP_CONCAT, 0 }, { "Split", OP_SPLIT, 0 },
	{ "Slice", OP_SLICE, 0 }, { "Gather", OP_GATHER, 0 },
	{ "Resize", OP_RESIZE, 0 }, { "Upsample", OP_RESIZE, 0 },
	{ "Softmax", OP_SOFTMAX, 0 }, { "LogSoftmax", OP_SOFTMAX, 0 },
	{ "Pad", OP_PAD, 0 }, { "Cast", OP_CAST, 0 }, { "Identity", OP_IDENTITY, 0 },
	{ "Dropout", OP_IDENTITY, 0 }, { "ReduceMean", OP_REDUCE_MEAN, 0 },
	{ "Expand", OP_EXPAND, 0 }, { "Shape", OP_SHAPE, 0 },
	{ "ConstantOfShape", OP_CONSTANT_OF_SHAPE, 0 },
	{ "Equal", OP_EQUAL, 0 }, { "Less", OP_LESS, 0 }, { "LessOrEqual", OP_LESS_EQUAL, 0 },
	{ "Greater", OP_GREATER, 0 }, { "GreaterOrEqual", OP_GREATER_EQUAL, 0 },
	{ "And", OP_AND, 0 }, { "Or", OP_OR, 0 }, { "Xor", OP_XOR, 0 }, { "Not", OP_NOT, 0 },
	{ "Where", OP_WHERE, 0 }, { "Mod", OP_MOD, 0 }, { "Range", OP_RANGE, 0 },
	{ "ScatterND", OP_SCATTER_ND, 0 },
	{ "ReduceSum", OP_REDUCE_SUM, 0 }, { "ReduceMax", OP_REDUCE_MAX, 0 },
	{ "ReduceMin", OP_REDUCE_MIN, 0 }, { "ReduceProd", OP_REDUCE_PROD, 0 },
	{ "ReduceL1", OP_REDUCE_L1, 0 }, { "ReduceL2", OP_REDUCE_L2, 0 },
	{ "ReduceLogSum", OP_REDUCE_LOG_SUM, 0 }, { "ReduceLogSumExp", OP_REDUCE_LOG_SUM_EXP, 0 },
	{ "ReduceSumSquare", OP_REDUCE_SUM_SQUARE, 0 },
	{ "ArgMax", OP_ARGMAX, 0 }, { "ArgMin", OP_ARGMIN, 0 },
	{ "LayerNormalization", OP_LAYER_NORM, 0 },
	{ "Tile", OP_TILE, 0 }, { "GatherElements", OP_GATHER_ELEMENTS, 0 },
	{ "CumSum", OP_CUMSUM, 0 }, { "TopK", OP_TOPK, 0 }, { "Einsum", OP_EINSUM, 0 },
};

/* "ij,jk->ik" into label numbers; no ellipsis. Without "->" the output is
 * the labels used once, in alphabetical order (numpy's implicit mode). */
static int parse_einsum(struct eng_node *n, const char *eq, char *err, size_t errlen)
{
	struct einsum_params *p = &n->p.einsum;
	int label_of[128], count[128] = { 0 }, term = 0, pos = 0;
	const char *arrow = strstr(eq, "->");

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < 128; i++)
		label_of[i] = -1;
	if (strstr(eq, "..."))
		return ERR("node '%s' (Einsum): ellipsis ('...') is not supported", n->name);
	for (const char *c = eq; *c && c != arrow; c++) {
		if (*c == ' ')
			continue;
		if (*c == ',') {
			p->rank[term++] = pos;
			pos = 0;
			if (term >= EINSUM_MAX_IN)
				return ERR("node '%s' (Einsum): more than %d operands", n->name, EINSUM_MAX_IN);
			continue;
		}
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')) || pos >= TENSOR_MAX_DIMS)
			return ERR("node '%s' (Einsum): bad equation '%s'", n->name, eq);
		if (label_of[(int)*c] < 0) {
			if (p->nlab >= EINSUM_MAX_LABELS)
				return ERR("node '%s' (Einsum): more than %d labels", n->name, EINSUM_MAX_LABELS);
			label_of[(int)*c] = p->nlab++;
		}
		count[(int)*c]++;
		p->in[term][pos++] = (signed char)label_of[(int)*c];
	}
	p->rank[term++] = pos;
	p->nin = term;
	if (arrow) {
		for (const char *c = arrow + 2; *c; c++) {
			unsigned char ch = (unsigned char)*c;
			if (ch == ' ')
				continue;
			if (ch >= 128 || label_of[ch] < 0 || p->out_rank >= TENSOR_MAX_DIMS)
				return ERR("node '%s' (Einsum): output label '%c' is not an input's", n->name, *c);
			for (int j = 0; j < p->out_rank; j++)
				if (p->out[j] == label_of[ch])
					return ERR("node '%s' (Einsum): output label '%c' repeats", n->name, *c);
			p->out[p->out_rank++] = (signed char)label_of[ch];
		}
	} else {
		for (int c = 'A'; c <= 'z'; c++)
			if (count[c] == 1 && p->out_rank < TENSOR_MAX_DIMS)
				p->out[p->out_rank++] = (signed char)label_of[c];
	}
	if (n->n_in != p->nin)
		return ERR("node '%s' (Einsum): the equation has %d operands, the node %d inputs",
			   n->name, p->nin, n->n_in);
	return 0;
}

static int parse_node(struct engine *e, struct eng_node *n, const Onnx__NodeProto *np,
		      size_t file_len, char *err, size_t errlen)
{
	const struct opmap *m = NULL;
	char buf[64];
	int opset = e->opset;
	int64_t v[ENG_MAX_IO];
	int k;

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].name, np->op_type))
			m = &ops[i];
	if (!m)
		return ERR("unsupported op '%s' (node '%s', opset %d)", np->op_type, n->name, opset);
	n->kind = m->kind;
	snprintf(n->op, sizeof(n->op), "%s", np->op_type);
	switch (m->kind) {
	case OP_CONV:
	case OP_CONV_TRANSPOSE: {
		struct conv_params *c = &n->p.conv;
		int rc = parse_pads_common(n->name, np, c->kernel, c->stride, c->dil, c->pads, &c->auto_pad,
					   &c->spatial, 0, err, errlen);
		if (rc)
			return rc;
		c->group = attr_i(np, "group", 1);
		if (c->group < 1)
			return ERR("node '%s' (%s): bad group", n->name, np->op_type);
		c->has_bias = n->n_in > 2 && n->in[2] >= 0;
		k = attr_ints(np, "output_padding", v, 2);
		if (k == 1) c->out_pad[1] = v[0];
		if (k == 2) c->out_pad[0] = v[0], c->out_pad[1] = v[1];
		k = attr_ints(np, "output_shape", v, 2);
		if (k == 1) c->out_shape[0] = 1, c->out_shape[1] = v[0];
		if (k == 2) c->out_shape[0] = v[0], c->out_shape[1] = v[1];
		break;
	}
	case OP_MAXPOOL:
	case OP_AVGPOOL: {
		struct pool_params *p = &n->p.pool;
		int rc = parse_pads_common(n->name, np, p->kernel, p->stride, p->dil, p->pads, &p->auto_pad,
					   &p->spatial, 1, err, errlen);
		if (rc)
			return rc;
		p->ceil_mode = (int)attr_i(np, "ceil_mode", 0);
		p->count_include_pad = (int)attr_i(np, "count_include_pad", 0);
		if (attr_i(np, "storage_order", 0))
			return ERR("node '%s' (MaxPool): storage_order=1 is not supported", n->name);
		if (m->kind == OP_MAXPOOL && n->n_out > 1)
			return ERR("node '%s' (MaxPool): the Indices output is not supported", n->name);
		break;
	}
	case OP_GLOBAL_AVGPOOL:
	case OP_GLOBAL_MAXPOOL:
		break;
	case OP_RELU: case OP_SIGMOID: case OP_TANH: case OP_EXP: case OP_SQRT: case OP_NEG:
	case OP_ABS: case OP_ERF: case OP_LOG: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL:
	case OP_HARD_SWISH:
		n->p.act.kind = m->act;
		break;
	case OP_GELU: {
		const char *s = attr_s(np, "approximate", "none", buf, sizeof(buf));
		if (opset < 20)
			return ERR("node '%s' (Gelu): Gelu needs opset 20, the model's is %d", n->name, opset);
		if (!strcmp(s, "none")) n->p.act.kind = ACT_GELU;
		else if (!strcmp(s, "tanh")) n->p.act.kind = ACT_GELU_TANH;
		else return ERR("node '%s' (Gelu): approximate '%s' is not supported (none or tanh)",
				n->name, s);
		break;
	}
	case OP_LEAKY_RELU:
		n->p.act.kind = ACT_LEAKY_RELU;
		n->p.act.alpha = attr_f(np, "alpha", 0.01f);
		break;
	case OP_HARD_SIGMOID:
		n->p.act.kind = ACT_HARD_SIGMOID;
		n->p.act.alpha = attr_f(np, "alpha", 0.2f);
		n->p.act.beta = attr_f(np, "beta", 0.5f);
		break;
	case OP_CLIP:
		n->p.act.kind = ACT_CLIP;
		n->p.act.alpha = attr_f(np, "min", -INFINITY);
		n->p.act.beta = attr_f(np, "max", INFINITY);
		break;
	case OP_BATCHNORM:
		n->p.bn.eps = attr_f(np, "epsilon", 1e-5f);
		if (attr_i(np, "training_mode", 0))
			return ERR("node '%s' (BatchNormalization): training_mode is not supported", n->name);
		n->n_out = 1;	/* running mean/var outputs are training-only */
		break;
	case OP_GEMM:
		n->p.gemm.alpha = attr_f(np, "alpha", 1.f);
		n->p.gemm.beta = attr_f(np, "beta", 1.f);
		n->p.gemm.trans_a = (int)attr_i(np, "transA", 0);
		n->p.gemm.trans_b = (int)attr_i(np, "transB", 0);
		break;
	case OP_RESHAPE: {
		struct axes_params *a = &n->p.axes;
		a->naxes = -1;
		if (!strcmp(np->op_type, "Flatten")) {
			a->axis = attr_i(np, "axis", 1);
		} else if (!strcmp(np->op_type, "Reshape")) {
			n->p.reshape.allowzero = (int)attr_i(np, "allowzero", 0);
		} else {
			k = attr_ints(np, "axes", a->axes, TENSOR_MAX_DIMS);
			if (k == -2)
				return ERR("node '%s' (%s): too many axes", n->name, np->op_type);
			a->naxes = k;
		}
		break;
	}
	case OP_TRANSPOSE:
		k = attr_ints(np, "perm", v, TENSOR_MAX_DIMS);
		if (k == -2)
			return ERR("node '%s' (Transpose): perm too long", n->name);
		n->p.transpose.nperm = k;
		for (int i = 0; i < k; i++)
			n->p.transpose.perm[i] = (int)v[i];
		break;
	case OP_CONCAT:
		n->p.axes.axis = attr_i(np, "axis", 1);
		if (!attr(np, "axis"))
			return ERR("node '%s' (Concat): axis is required", n->name);
		break;
	case OP_GATHER:
		n->p.axes.axis = attr_i(np, "axis", 0);
		break;
	case OP_SPLIT: {
		n->p.split.axis = attr_i(np, "axis", 0);
		k = attr_ints(np, "split", n->p.split.sizes, ENG_MAX_IO);
		if (k >= 0 && k != n->n_out)
			return ERR("node '%s' (Split): split has %d entries for %d outputs", n->name, k,
				   n->n_out);
		if (k < 0)
			n->p.split.sizes[0] = -1;	/* from input or equal */
		break;
	}
	case OP_SLICE:
		/* opset < 10: starts/ends/axes attributes; turned into inputs in
		 * shape inference through the node's attribute copy below */
		break;
	case OP_SOFTMAX:
		n->p.softmax.legacy = opset < 13;
		n->p.softmax.axis = attr_i(np, "axis", opset < 13 ? 1 : -1);
		n->p.softmax.log = !strcmp(np->op_type, "LogSoftmax");
		break;
	case OP_RESIZE: {
		struct resize_params *r = &n->p.resize;
		const char *s = attr_s(np, "mode", "nearest", buf, sizeof(buf));
		if (!strcmp(s, "nearest")) r->mode = RESIZE_NEAREST;
		else if (!strcmp(s, "linear") || !strcmp(s, "bilinear")) r->mode = RESIZE_LINEAR;
		else if (!strcmp(s, "cubic")) r->mode = RESIZE_CUBIC;
		else return ERR("node '%s' (%s): mode '%s' is not supported", n->name, np->op_type, s);
		r->upsample = !strcmp(np->op_type, "Upsample");
		r->coord = COORD_ASYMMETRIC;
		r->nearest = NEAREST_FLOOR;
		if (!r->upsample && opset >= 11) {
			s = attr_s(np, "coordinate_transformation_mode", "half_pixel", buf, sizeof(buf));
			if (!strcmp(s, "half_pixel")) r->coord = COORD_HALF_PIXEL;
			else if (!strcmp(s, "asymmetric")) r->coord = COORD_ASYMMETRIC;
			else if (!strcmp(s, "pytorch_half_pixel")) r->coord = COORD_PYTORCH_HALF_PIXEL;
			else if (!strcmp(s, "align_corners")) r->coord = COORD_ALIGN_CORNERS;
			else if (!strcmp(s, "tf_half_pixel_for_nn")) r->coord = COORD_TF_HALF_PIXEL_FOR_NN;
			else if (!strcmp(s, "tf_crop_and_resize")) r->coord = COORD_TF_CROP_AND_RESIZE;
			else return ERR("node '%s' (Resize): coordinate_transformation_mode '%s' is not supported",
					n->name, s);
			s = attr_s(np, "nearest_mode", "round_prefer_floor", buf, sizeof(buf));
			if (!strcmp(s, "round_prefer_floor")) r->nearest = NEAREST_ROUND_PREFER_FLOOR;
			else if (!strcmp(s, "round_prefer_ceil")) r->nearest = NEAREST_ROUND_PREFER_CEIL;
			else if (!strcmp(s, "floor")) r->nearest = NEAREST_FLOOR;
			else if (!strcmp(s, "ceil")) r->nearest = NEAREST_CEIL;
			else return ERR("node '%s' (Resize): nearest_mode '%s' is not supported", n->name, s);
		}
		r->cubic_a = attr_f(np, "cubic_coeff_a", -0.75f);
		r->exclude_outside = (int)attr_i(np, "exclude_outside", 0);
		r->extrapolation = attr_f(np, "extrapolation_value", 0.f);
		if (r->coord == COORD_TF_CROP_AND_RESIZE)
			return ERR("node '%s' (Resize): tf_crop_and_resize is not supported", n->name);
		if (attr(np, "antialias") && attr_i(np, "antialias", 0))
			return ERR("node '%s' (Resize): antialias is not supported", n->name);
		if (attr(np, "axes"))
			return ERR("node '%s' (Resize): the axes attribute is not supported", n->name);
		break;
	}
	case OP_PAD: {
		const char *s = attr_s(np, "mode", "constant", buf, sizeof(buf));
		if (!strcmp(s, "constant")) n->p.pad.mode = PADM_CONSTANT;
		else if (!strcmp(s, "reflect")) n->p.pad.mode = PADM_REFLECT;
		else if (!strcmp(s, "edge")) n->p.pad.mode = PADM_EDGE;
		else return ERR("node '%s' (Pad): mode '%s' is not supported", n->name, s);
		n->p.pad.value = attr_f(np, "value", 0.f);
		break;
	}
	case OP_CAST: {
		int64_t to = attr_i(np, "to", 0);
		if (!dtype_ok((int)to))
			return ERR("node '%s' (Cast): target type %lld is not supported", n->name,
				   (long long)to);
		n->p.cast.to = (enum tensor_dtype)to;
		break;
	}
	case OP_IDENTITY:
		/* Dropout's mask output (all true at inference) becomes
		 * ConstantOfShape(Shape(data)) in eng_parse_onnx; both fold */
		n->n_out = 1;
		if (!strcmp(np->op_type, "Dropout") && opset < 7 && attr_i(np, "is_test", 0) == 0)
			return ERR("node '%s' (Dropout): is_test=0 (training) is not supported", n->name);
		break;
	case OP_REDUCE_MEAN: case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
	case OP_REDUCE_PROD: case OP_REDUCE_L1: case OP_REDUCE_L2: case OP_REDUCE_LOG_SUM:
	case OP_REDUCE_LOG_SUM_EXP: case OP_REDUCE_SUM_SQUARE: {
		struct axes_params *a = &n->p.axes;
		/* axes: an attribute, an input from opset 13 (ReduceSum) or 18 (the rest) */
		int axes_input = opset >= 18 || (m->kind == OP_REDUCE_SUM && opset >= 13);
		a->keepdims = (int)attr_i(np, "keepdims", 1);
		a->noop_with_empty_axes = (int)attr_i(np, "noop_with_empty_axes", 0);
		k = attr_ints(np, "axes", a->axes, TENSOR_MAX_DIMS);
		if (k == -2)
			return ERR("node '%s' (%s): too many axes", n->name, np->op_type);
		if (m->kind != OP_REDUCE_MEAN && axes_input && k >= 0)
			return ERR("node '%s' (%s): axes is an input in opset %d, not an attribute",
				   n->name, np->op_type, opset);
		if (m->kind != OP_REDUCE_MEAN && !axes_input && n->n_in > 1)
			return ERR("node '%s' (%s): axes is an attribute in opset %d, not an input",
				   n->name, np->op_type, opset);
		a->naxes = k;
		break;
	}
	case OP_ARGMAX: case OP_ARGMIN:
		n->p.arg.axis = attr_i(np, "axis", 0);
		n->p.arg.keepdims = (int)attr_i(np, "keepdims", 1);
		n->p.arg.last = (int)attr_i(np, "select_last_index", 0);
		break;
	case OP_MOD:
		n->p.mod.fmod = (int)attr_i(np, "fmod", 0);
		if (n->p.mod.fmod != 0 && n->p.mod.fmod != 1)
			return ERR("node '%s' (Mod): fmod must be 0 or 1, not %d", n->name, n->p.mod.fmod);
		break;
	case OP_SCATTER_ND: {
		const char *s = attr_s(np, "reduction", "none", buf, sizeof(buf));
		if (!strcmp(s, "none")) n->p.scatter.reduce = SCATTER_NONE;
		else if (!strcmp(s, "add")) n->p.scatter.reduce = SCATTER_ADD;
		else if (!strcmp(s, "mul")) n->p.scatter.reduce = SCATTER_MUL;
		else return ERR("node '%s' (ScatterND): reduction '%s' is not supported", n->name, s);
		break;
	}
	case OP_GATHER_ELEMENTS:
		n->p.axes.axis = attr_i(np, "axis", 0);
		break;
	case OP_EINSUM: {
		char eq[256];
		const Onnx__AttributeProto *a = attr(np, "equation");
		if (!a || !a->has_s || a->s.len >= sizeof(eq))
			return ERR("node '%s' (Einsum): equation missing or too long", n->name);
		attr_s(np, "equation", "", eq, sizeof(eq));
		return parse_einsum(n, eq, err, errlen);
	}
	case OP_CUMSUM:
		n->p.cumsum.exclusive = (int)attr_i(np, "exclusive", 0);
		n->p.cumsum.reverse = (int)attr_i(np, "reverse", 0);
		break;
	case OP_TOPK:
		n->p.topk.axis = attr_i(np, "axis", -1);
		n->p.topk.largest = (int)attr_i(np, "largest", 1);
		n->p.topk.sorted = (int)attr_i(np, "sorted", 1);
		n->p.topk.k = opset < 10 ? attr_i(np, "k", -1) : -1;
		if (opset < 10 && n->p.topk.k < 0)
			return ERR("node '%s' (TopK): k is required", n->name);
		break;
	case OP_LAYER_NORM:
		n->p.ln.axis = attr_i(np, "axis", -1);
		n->p.ln.eps = attr_f(np, "epsilon", 1e-5f);
		if (attr_i(np, "stash_type", 1) != 1)
			return ERR("node '%s' (LayerNormalization): stash_type %lld is not supported (1, float32, is)",
				   n->name, (long long)attr_i(np, "stash_type", 1));
		break;
	case OP_SHAPE:
		n->p.axes.axes[0] = attr_i(np, "start", 0);
		n->p.axes.axes[1] = attr(np, "end") ? attr_i(np, "end", 0) : INT64_MAX;
		break;
	case OP_CONSTANT_OF_SHAPE: {
		/* the value attribute becomes input 1 (a constant tensor) */
		const Onnx__AttributeProto *a = attr(np, "value");
		int ti;
		char nm[96];
		snprintf(nm, sizeof(nm), "%s:value", n->name);
		ti = eng_tensor_add(e, nm);
		if (ti < 0)
			return ti;
		if (a && a->t) {
			int rc = load_tensor(e, (Onnx__TensorProto *)a->t, ti, file_len,
					     "ConstantOfShape value", err, errlen);
			if (rc)
				return rc;
		} else {
			int64_t one = 1;
			eng_tensor_set_shape(&e->t[ti], TENSOR_F32, 1, &one);
			if (!(e->t[ti].data = calloc(1, 4)))
				return -ENOMEM;
			e->t[ti].is_const = 1;
		}
		n->in[1] = ti;
		n->n_in = 2;
		break;
	}
	default:
		break;
	}
	/* attribute forms of what later opsets pass as inputs: stored as
	 * constant tensors appended as inputs so shape inference sees one form */
	if (m->kind == OP_SLICE && opset < 10) {
		const char *names[] = { "starts", "ends", "axes" };
		n->in[1] = n->in[2] = n->in[3] = -1;
		for (int j = 0; j < 3; j++) {
			const Onnx__AttributeProto *a = attr(np, names[j]);
			if (!a)
				continue;
			char nm[96];
			snprintf(nm, sizeof(nm), "%s:%s", n->name, names[j]);
			int ti = eng_tensor_add(e, nm);
			if (ti < 0)
				return ti;
			int64_t cnt = (int64_t)a->n_ints;
			if (cnt > TENSOR_MAX_DIMS)
				return ERR("node '%s' (Slice): too many axes", n->name);
			eng_tensor_set_shape(&e->t[ti], TENSOR_I64, 1, &cnt);
			if (!(e->t[ti].data = malloc(cnt * 8 + 1)))
				return -ENOMEM;
			if (cnt)
				memcpy(e->t[ti].data, a->ints, cnt * 8);
			e->t[ti].is_const = 1;
			n->in[1 + j] = ti;
			if (n->n_in < 2 + j)
				n->n_in = 2 + j;
		}
	}
	if ((m->kind == OP_PAD && opset < 11) || (m->kind == OP_RESIZE && n->p.resize.upsample &&
						  opset < 9)) {
		const char *an = m->kind == OP_PAD ? "pads" : "scales";
		const Onnx__AttributeProto *a = attr(np, an);
		char nm[96];
		if (!a)
			return ERR("node '%s' (%s): %s is required", n->name, np->op_type, an);
		snprintf(nm, sizeof(nm), "%s:%s", n->name, an);
		int ti = eng_tensor_add(e, nm);
		if (ti < 0)
			return ti;
		size_t cnt = m->kind == OP_PAD ? a->n_ints : a->n_floats;
		int64_t c64 = (int64_t)cnt;
		if (cnt > 2 * TENSOR_MAX_DIMS)
			return ERR("node '%s' (%s): too many %s", n->name, np->op_type, an);
		eng_tensor_set_shape(&e->t[ti], m->kind == OP_PAD ? TENSOR_I64 : TENSOR_F32, 1, &c64);
		if (!(e->t[ti].data = malloc(cnt * 8 + 1)))
			return -ENOMEM;
		if (cnt)
			memcpy(e->t[ti].data, m->kind == OP_PAD ? (void *)a->ints : (void *)a->floats,
			       cnt * (m->kind == OP_PAD ? 8 : 4));
		e->t[ti].is_const = 1;
		n->in[1] = ti;
		n->n_in = 2;
	}
	if (m->kind == OP_SPLIT && n->p.split.sizes[0] == -1 && opset < 13 && n->n_in > 1)
		return ERR("node '%s' (Split): split input needs opset 13", n->name);
	return 0;
}

static int input_shape(const Onnx__ValueInfoProto *vi, const struct engine_opts *opts,
		       int first, struct eng_tensor *t, char *err, size_t errlen)
{
	const Onnx__TypeProto *tp = vi->type;
	int64_t shape[TENSOR_MAX_DIMS];

	if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
		return ERR("model input '%s' is not a tensor", vi->name);
	const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
	int dt = tt->has_elem_type ? tt->elem_type : 0;
	if (!dtype_ok(dt))
		return ERR("model input '%s' has unsupported data type %d", vi->name, dt);
	if (!tt->shape)
		return ERR("model input '%s' has no shape", vi->name);
	if (tt->shape->n_dim > TENSOR_MAX_DIMS)
		return ERR("model input '%s' has %zu dimensions (at most %d)", vi->name,
			   tt->shape->n_dim, TENSOR_MAX_DIMS);
	const struct engine_input_shape *given = NULL;
	for (int i = 0; opts && i < opts->n_input_shapes; i++) {
		const struct engine_input_shape *s = &opts->input_shapes[i];
		if ((s->name && !strcmp(s->name, vi->name)) || (!s->name && first))
			given = s;
	}
	if (given) {
		if (given->ndim != (int)tt->shape->n_dim)
			return ERR("model input '%s' has %zu dimensions, the configured shape %d",
				   vi->name, tt->shape->n_dim, given->ndim);
		for (int i = 0; i < given->ndim; i++) {
			const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
			if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			    d->dim_value > 0 && d->dim_value != given->shape[i])
				return ERR("model input '%s' dimension %d is %lld, the configured shape says %lld",
					   vi->name, i, (long long)d->dim_value, (long long)given->shape[i]);
			shape[i] = given->shape[i];
		}
	} else {
		for (size_t i = 0; i < tt->shape->n_dim; i++) {
			const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
			if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			    d->dim_value >= 0) {
				shape[i] = d->dim_value;
			} else if (i == 0) {
				shape[i] = opts && opts->batch > 0 ? opts->batch : 1;
			} else {
				return ERR("model input '%s' has a dynamic dimension %zu ('%s'): give its shape in the options",
					   vi->name, i,
					   d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
					   d->dim_param ? d->dim_param : "?");
			}
		}
	}
	int64_t numel = 1;
	for (size_t i = 0; i < tt->shape->n_dim; i++) {
		if (shape[i] < 0 || (shape[i] && numel > ENG_MAX_TENSOR_BYTES / shape[i]))
			return ERR("model input '%s' is absurdly large", vi->name);
		numel *= shape[i];
	}
	if (numel * (int64_t)tensor_dtype_size(dt) > ENG_MAX_TENSOR_BYTES / 16)
		return ERR("model input '%s' is absurdly large", vi->name);
	eng_tensor_set_shape(t, dt, (int)tt->shape->n_dim, shape);
	return 0;
}

/* The message's allocator: malloc (big blocks 64-byte aligned, as the
 * kernels like their weights), and, when the source is a private read-only
 * mapping of the model file, drop the file's pages from this process each
 * time a weight-sized block is allocated. Dropping is always safe there (a
 * page read again comes back from the file), so the file and the message's
 * copy of the weights are never both resident: loading peaks near one copy
 * of the weights, not two. */
struct msg_alloc {
	const void *src;
	size_t src_len;
	int drop_src;
};

#define MSG_BIG_BYTES ((size_t)64 << 10)

static void *msg_alloc(void *data, size_t size)
{
	struct msg_alloc *a = data;
	void *p = NULL;

	if (size < MSG_BIG_BYTES)
		return malloc(size ? size : 1);
	if (a->drop_src)
		madvise((void *)a->src, a->src_len, MADV_DONTNEED);
	if (posix_memalign(&p, 64, size))
		return NULL;
	return p;
}

static void msg_free(void *data, void *p)
{
	(void)data;
	free(p);
}

/* One weight can be most of a model (vgg16's first Linear: 392 MB), and
 * protobuf-c copies it in one memcpy. For a big file a second thread keeps
 * dropping the mapping's pages during the unpack, so the part of the file
 * that is resident stays a few MB, not the size of the largest weight. */
#define DROPPER_MIN_BYTES ((size_t)16 << 20)

struct dropper {
	const void *src;
	size_t len;
	atomic_int stop;
	pthread_t tid;
	int running;
};

static void *dropper_main(void *arg)
{
	struct dropper *d = arg;
	const struct timespec pause = { 0, 1000000 };	/* 1 ms: a few MB of copying */

	while (!atomic_load_explicit(&d->stop, memory_order_relaxed)) {
		madvise((void *)d->src, d->len, MADV_DONTNEED);
		nanosleep(&pause, NULL);
	}
	return NULL;
}

static void dropper_start(struct dropper *d, const void *src, size_t len)
{
	d->src = src;
	d->len = len;
	atomic_init(&d->stop, 0);
	/* without the thread, only the allocator's drops bound the file's pages */
	d->running = len >= DROPPER_MIN_BYTES && !pthread_create(&d->tid, NULL, dropper_main, d);
}

static void dropper_stop(struct dropper *d)
{
	if (!d->running)
		return;
	atomic_store_explicit(&d->stop, 1, memory_order_relaxed);
	pthread_join(d->tid, NULL);
	d->running = 0;
}

/* Dropout's mask at inference is all true: out[1] of node ni becomes
 * ConstantOfShape(Shape(data), value = true), which constant folding
 * turns into a constant tensor. */
static int dropout_mask(struct engine *e, int ni, char *err, size_t errlen)
{
	char nm[96];
	int mask = e->n[ni].out[1], data = e->n[ni].in[0], shp, val, si, ci;
	const char *name = e->n[ni].name;
	int64_t one = 1;

	snprintf(nm, sizeof(nm), "%s:mask_shape", name);
	if ((shp = eng_tensor_add(e, nm)) < 0)
		return shp;
	snprintf(nm, sizeof(nm), "%s:mask_value", name);
	if ((val = eng_tensor_add(e, nm)) < 0)
		return val;
	eng_tensor_set_shape(&e->t[val], TENSOR_BOOL, 1, &one);
	if (!(e->t[val].data = calloc(1, 1)))
		return -ENOMEM;
	*(uint8_t *)e->t[val].data = 1;
	e->t[val].is_const = 1;
	if ((si = eng_node_add(e)) < 0 || (ci = eng_node_add(e)) < 0)
		return -ENOMEM;
	struct eng_node *s = &e->n[si], *c = &e->n[ci];
	name = e->n[ni].name;
	snprintf(nm, sizeof(nm), "%s:mask_shape", name);
	if (!(s->name = strdup(nm)))
		return -ENOMEM;
	snprintf(nm, sizeof(nm), "%s:mask", name);
	if (!(c->name = strdup(nm)))
		return -ENOMEM;
	s->kind = OP_SHAPE, c->kind = OP_CONSTANT_OF_SHAPE;
	snprintf(s->op, sizeof(s->op), "Shape");
	snprintf(c->op, sizeof(c->op), "ConstantOfShape");
	s->opset = c->opset = e->opset;
	s->n_in = s->n_out = c->n_out = 1;
	c->n_in = 2;
	s->in[0] = data, s->out[0] = shp;
	s->p.axes.axes[0] = 0, s->p.axes.axes[1] = INT64_MAX;
	c->in[0] = shp, c->in[1] = val, c->out[0] = mask;
	e->t[shp].producer = si;
	e->t[mask].producer = ci;
	(void)err, (void)errlen;
	return 0;
}

int eng_parse_onnx(struct engine *e, const void *data, size_t len,
		   const struct engine_opts *opts, unsigned flags, char *err, size_t errlen)
{
	struct msg_alloc ma = { data, len, !!(flags & ENG_PARSE_DROP_SOURCE) };
	ProtobufCAllocator alloc = { msg_alloc, msg_free, &ma };
	Onnx__ModelProto *mp;
	const Onnx__GraphProto *g;
	int rc = -EINVAL;

	struct dropper drop = { 0 };
	if (ma.drop_src) {	/* pages the digest read */
		madvise((void *)data, len, MADV_DONTNEED);
		dropper_start(&drop, data, len);
	}
	mp = onnx__model_proto__unpack(&alloc, len, data);
	if (ma.drop_src) {
		dropper_stop(&drop);
		madvise((void *)data, len, MADV_DONTNEED);
	}

	if (!mp)
		return ERR("not an ONNX model (protobuf parse failed; truncated or another format?)");
	if (!mp->has_ir_version || mp->ir_version < 3)
		{ rc = ERR("not an ONNX model or IR version too old (ir_version %lld)",
			   (long long)mp->ir_version); goto out; }
	e->ir_version = mp->ir_version;
	e->opset = 0;
	for (size_t i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
		if (!o->domain || !o->domain[0] || !strcmp(o->domain, "ai.onnx"))
			e->opset = (int)o->version;
	}
	if (e->opset < 1 || e->opset > 20)
		{ rc = ERR("ONNX opset %d is not supported (1 to 20 are)", e->opset); goto out; }
	g = mp->graph;
	if (!g || !g->n_node)
		{ rc = ERR("ONNX model has no graph"); goto out; }
	if (g->n_sparse_initializer)
		{ rc = ERR("sparse initializers are not supported"); goto out; }

	for (size_t i = 0; i < g->n_initializer; i++) {
		Onnx__TensorProto *tp = g->initializer[i];
		if (!tp->name || !tp->name[0])
			{ rc = ERR("initializer %zu has no name", i); goto out; }
		int ti = eng_tensor_find(e, tp->name);
		if (ti >= 0)
			{ rc = ERR("initializer '%s' appears twice", tp->name); goto out; }
		if ((ti = eng_tensor_add(e, tp->name)) < 0)
			{ rc = ti; goto out; }
		if ((rc = load_tensor(e, tp, ti, len, "initializer", err, errlen)))
			goto out;
	}
	int first = 1;
	for (size_t i = 0; i < g->n_input; i++) {
		const Onnx__ValueInfoProto *vi = g->input[i];
		if (!vi->name || !vi->name[0])
			{ rc = ERR("model input %zu has no name", i); goto out; }
		if (eng_tensor_find(e, vi->name) >= 0)
			continue;	/* an initializer (IR < 4 lists them as inputs) */
		int ti = eng_tensor_add(e, vi->name);
		if (ti < 0)
			{ rc = ti; goto out; }
		if ((rc = input_shape(vi, opts, first, &e->t[ti], err, errlen)))
			goto out;
		first = 0;
		e->t[ti].is_input = 1;
		int *ni = realloc(e->inputs, (e->n_inputs + 1) * sizeof(int));
		if (!ni)
			{ rc = -ENOMEM; goto out; }
		e->inputs = ni;
		e->inputs[e->n_inputs++] = ti;
	}

	for (size_t i = 0; i < g->n_node; i++) {
		const Onnx__NodeProto *np = g->node[i];
		char gen[32];
		if (!np->op_type)
			{ rc = ERR("node %zu has no op_type", i); goto out; }
		if (np->domain && np->domain[0] && strcmp(np->domain, "ai.onnx"))
			{ rc = ERR("unsupported op '%s' from domain '%s' (node '%s', opset %d)",
				   np->op_type, np->domain, np->name ? np->name : "", e->opset); goto out; }
		if (np->n_input > ENG_MAX_IO || np->n_output > ENG_MAX_IO || !np->n_output)
			{ rc = ERR("node '%s' (%s) has %zu inputs and %zu outputs (1..%d supported)",
				   np->name ? np->name : "", np->op_type, np->n_input, np->n_output,
				   ENG_MAX_IO); goto out; }
		for (size_t j = 0; j < np->n_output; j++) {
			if (!np->output[j][0])
				continue;
			int ti = eng_tensor_find(e, np->output[j]);
			if (ti >= 0 && (e->t[ti].is_const || e->t[ti].is_input ||
					e->t[ti].producer != -1))
				{ rc = ERR("tensor '%s' is produced twice (node '%s')", np->output[j],
					   np->name ? np->name : ""); goto out; }
		}
		if (!strcmp(np->op_type, "Constant")) {
			int ti = eng_tensor_add(e, np->output[0]);
			if (ti < 0)
				{ rc = ti; goto out; }
			if ((rc = make_const_from_attr(e, np, ti, len, err, errlen)))
				goto out;
			continue;
		}
		int ni = eng_node_add(e);
		if (ni < 0)
			{ rc = ni; goto out; }
		struct eng_node *n = &e->n[ni];
		snprintf(gen, sizeof(gen), "%s_%zu", np->op_type, i);
		n->name = strdup(np->name && np->name[0] ? np->name : gen);
		if (!n->name)
			{ rc = -ENOMEM; goto out; }
		n->opset = e->opset;
		n->n_in = (int)np->n_input;
		n->n_out = (int)np->n_output;
		for (size_t j = 0; j < np->n_input; j++) {
			if (!np->input[j][0]) {
				n->in[j] = -1;
				continue;
			}
			int ti = eng_tensor_find(e, np->input[j]);
			if (ti < 0 && (ti = eng_tensor_add(e, np->input[j])) < 0)
				{ rc = ti; goto out; }
			n = &e->n[ni];
			n->in[j] = ti;
		}
		for (size_t j = 0; j < np->n_output; j++) {
			if (!np->output[j][0]) {
				n->out[j] = -1;
				continue;
			}
			int ti = eng_tensor_find(e, np->output[j]);
			if (ti < 0 && (ti = eng_tensor_add(e, np->output[j])) < 0)
				{ rc = ti; goto out; }
			n = &e->n[ni];
			n->out[j] = ti;
			e->t[ti].producer = ni;
		}
		if ((rc = parse_node(e, n, np, len, err, errlen)))
			goto out;
		if (!strcmp(np->op_type, "Dropout") && np->n_output > 1 && np->output[1][0] &&
		    (rc = dropout_mask(e, ni, err, errlen)))
			goto out;
	}
	for (size_t i = 0; i < g->n_output; i++) {
		const char *nm = g->output[i]->name;
		int ti = nm ? eng_tensor_find(e, nm) : -1;
		if (ti < 0)
			{ rc = ERR("model output '%s' is not produced by any node", nm ? nm : ""); goto out; }
		int *no = realloc(e->outputs, (e->n_outputs + 1) * sizeof(int));
		if (!no)
			{ rc = -ENOMEM; goto out; }
		e->outputs = no;
		e->outputs[e->n_outputs++] = ti;
		e->t[ti].is_output = 1;
	}
	if (!e->n_outputs)
		{ rc = ERR("ONNX model has no outputs"); goto out; }
	rc = 0;
out:
	onnx__model_proto__free_unpacked(mp, &alloc);
	return rc;
}
