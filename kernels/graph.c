/* The graph IR: tensor table, topological order, constant folding, fusion
 * passes (BatchNormalization into Conv, activations into Conv), liveness and
 * the activation arena plan. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend-impl.h"
#include "engine-impl.h"

#define ERR(...) (eng_err(err, errlen, __VA_ARGS__), -EINVAL)

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

int eng_tensor_find(const struct engine *e, const char *name)
{
	if (!e->hash_cap)
		return -1;
	for (uint64_t i = hash_str(name) & (e->hash_cap - 1);; i = (i + 1) & (e->hash_cap - 1)) {
		int ti = e->hash[i];
		if (ti < 0)
			return -1;
		if (!strcmp(e->t[ti].name, name))
			return ti;
	}
}

static int rehash(struct engine *e, int cap)
{
	int *h = malloc(cap * sizeof(int));
	if (!h)
		return -ENOMEM;
	for (int i = 0; i < cap; i++)
		h[i] = -1;
	for (int ti = 0; ti < e->nt; ti++) {
		uint64_t i = hash_str(e->t[ti].name) & (cap - 1);
		while (h[i] >= 0)
			i = (i + 1) & (cap - 1);
		h[i] = ti;
	}
	free(e->hash);
	e->hash = h;
	e->hash_cap = cap;
	return 0;
}

int eng_tensor_add(struct engine *e, const char *name)
{
	if (e->nt == e->cap_t) {
		int cap = e->cap_t ? e->cap_t * 2 : 64;
		struct eng_tensor *t = realloc(e->t, cap * sizeof(*t));
		if (!t)
			return -ENOMEM;
		e->t = t;
		e->cap_t = cap;
	}
	struct eng_tensor *t = &e->t[e->nt];
	memset(t, 0, sizeof(*t));
	t->name = strdup(name);
	if (!t->name)
		return -ENOMEM;
	t->producer = -1;
	t->last_use = -2;
	e->nt++;
	if (e->nt * 2 > e->hash_cap) {
		int rc = rehash(e, e->hash_cap ? e->hash_cap * 2 : 256);
		if (rc)
			return rc;
	} else {
		uint64_t i = hash_str(name) & (e->hash_cap - 1);
		while (e->hash[i] >= 0)
			i = (i + 1) & (e->hash_cap - 1);
		e->hash[i] = e->nt - 1;
	}
	return e->nt - 1;
}

int eng_node_add(struct engine *e)
{
	if (e->nn == e->cap_n) {
		int cap = e->cap_n ? e->cap_n * 2 : 64;
		struct eng_node *n = realloc(e->n, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		e->n = n;
		e->cap_n = cap;
	}
	memset(&e->n[e->nn], 0, sizeof(e->n[0]));
	e->n[e->nn].p.transpose.nperm = -1;
	return e->nn++;
}

void eng_tensor_set_shape(struct eng_tensor *t, enum tensor_dtype dt, int ndim,
			  const int64_t *shape)
{
	size_t numel = 1;
	t->dtype = dt;
	t->ndim = ndim;
	for (int i = 0; i < ndim; i++) {
		t->shape[i] = shape[i];
		numel *= (size_t)shape[i];
	}
	t->bytes = numel * tensor_dtype_size(dt);
	t->shape_known = 1;
}

static const char *const op_names[OP_COUNT] = {
	[OP_CONV] = "Conv", [OP_CONV_TRANSPOSE] = "ConvTranspose",
	[OP_BATCHNORM] = "BatchNormalization", [OP_RELU] = "Relu", [OP_LEAKY_RELU] = "LeakyRelu",
	[OP_CLIP] = "Clip", [OP_SIGMOID] = "Sigmoid", [OP_HARD_SIGMOID] = "HardSigmoid",
	[OP_HARD_SWISH] = "HardSwish", [OP_SILU] = "SiLU", [OP_TANH] = "Tanh", [OP_EXP] = "Exp",
	[OP_SQRT] = "Sqrt", [OP_NEG] = "Neg", [OP_ABS] = "Abs", [OP_ERF] = "Erf", [OP_LOG] = "Log",
	[OP_RECIPROCAL] = "Reciprocal", [OP_FLOOR] = "Floor", [OP_CEIL] = "Ceil", [OP_GELU] = "Gelu",
	[OP_ADD] = "Add", [OP_SUB] = "Sub", [OP_MUL] = "Mul", [OP_DIV] = "Div", [OP_POW] = "Pow",
	[OP_MAXPOOL] = "MaxPool", [OP_AVGPOOL] = "AveragePool",
	[OP_GLOBAL_AVGPOOL] = "GlobalAveragePool", [OP_GLOBAL_MAXPOOL] = "GlobalMaxPool",
	[OP_GEMM] = "Gemm", [OP_MATMUL] = "MatMul", [OP_RESHAPE] = "Reshape",
	[OP_TRANSPOSE] = "Transpose", [OP_CONCAT] = "Concat", [OP_SPLIT] = "Split",
	[OP_SLICE] = "Slice", [OP_GATHER] = "Gather", [OP_RESIZE] = "Resize",
	[OP_SOFTMAX] = "Softmax", [OP_PAD] = "Pad", [OP_CAST] = "Cast", [OP_IDENTITY] = "Identity",
	[OP_REDUCE_MEAN] = "ReduceMean", [OP_EXPAND] = "Expand", [OP_SHAPE] = "Shape",
	[OP_CONSTANT] = "Constant", [OP_CONSTANT_OF_SHAPE] = "ConstantOfShape",
	[OP_EQUAL] = "Equal", [OP_LESS] = "Less", [OP_LESS_EQUAL] = "LessOrEqual",
	[OP_GREATER] = "Greater", [OP_GREATER_EQUAL] = "GreaterOrEqual", [OP_AND] = "And",
	[OP_OR] = "Or", [OP_XOR] = "Xor", [OP_NOT] = "Not", [OP_WHERE] = "Where", [OP_MOD] = "Mod",
	[OP_RANGE] = "Range", [OP_SCATTER_ND] = "ScatterND", [OP_REDUCE_SUM] = "ReduceSum",
	[OP_REDUCE_MAX] = "ReduceMax", [OP_REDUCE_MIN] = "ReduceMin", [OP_REDUCE_PROD] = "ReduceProd",
	[OP_REDUCE_L1] = "ReduceL1", [OP_REDUCE_L2] = "ReduceL2", [OP_REDUCE_LOG_SUM] = "ReduceLogSum",
	[OP_REDUCE_LOG_SUM_EXP] = "ReduceLogSumExp", [OP_REDUCE_SUM_SQUARE] = "ReduceSumSquare",
	[OP_ARGMAX] = "ArgMax", [OP_ARGMIN] = "ArgMin", [OP_LAYER_NORM] = "LayerNormalization",
	[OP_TILE] = "Tile", [OP_GATHER_ELEMENTS] = "GatherElements", [OP_CUMSUM] = "CumSum",
	[OP_TOPK] = "TopK", [OP_EINSUM] = "Einsum",
};

const char *eng_op_name(enum op_kind k)
{
	return k < OP_COUNT && op_names[k] ? op_names[k] : "?";
}

/* Kahn's algorithm over producer -> consumer edges. */
static int topo_sort(struct engine *e, char *err, size_t errlen)
{
	int nn = e->nn, rc = -ENOMEM;
	int *indeg = calloc(nn + 1, sizeof(int)), *order = malloc((nn + 1) * sizeof(int));
	int *cons_start = calloc(nn + 2, sizeof(int)), *cons = NULL, *fill = NULL;
	struct eng_node *sorted = NULL;
	int nedge = 0, head = 0, tail = 0;

	if (!indeg || !order || !cons_start)
		goto out;
	for (int i = 0; i < nn; i++) {
		struct eng_node *n = &e->n[i];
		for (int j = 0; j < n->n_in; j++) {
			int ti = n->in[j];
			if (ti < 0)
				continue;
			struct eng_tensor *t = &e->t[ti];
			if (!t->is_const && !t->is_input && t->producer < 0) {
				rc = ERR("node '%s' (%s) input '%s' is missing: not an initializer, model input or node output",
					 n->name, n->op, t->name);
				goto out;
			}
			if (t->producer >= 0) {
				indeg[i]++;
				cons_start[t->producer + 1]++;
				nedge++;
			}
		}
	}
	for (int i = 0; i < nn; i++)
		cons_start[i + 1] += cons_start[i];
	cons = malloc((nedge + 1) * sizeof(int));
	fill = calloc(nn + 1, sizeof(int));
	if (!cons || !fill)
		goto out;
	for (int i = 0; i < nn; i++)
		for (int j = 0; j < e->n[i].n_in; j++) {
			int ti = e->n[i].in[j];
			if (ti >= 0 && e->t[ti].producer >= 0) {
				int p = e->t[ti].producer;
				cons[cons_start[p] + fill[p]++] = i;
			}
		}
	for (int i = 0; i < nn; i++)
		if (!indeg[i])
			order[tail++] = i;
	while (head < tail) {
		int i = order[head++];
		for (int c = cons_start[i]; c < cons_start[i + 1]; c++)
			if (--indeg[cons[c]] == 0)
				order[tail++] = cons[c];
	}
	if (tail != nn) {
		for (int i = 0; i < nn; i++)
			if (indeg[i]) {
				rc = ERR("the graph has a cycle through node '%s' (%s)", e->n[i].name,
					 e->n[i].op);
				goto out;
			}
	}
	sorted = malloc((nn + 1) * sizeof(*sorted));
	if (!sorted)
		goto out;
	for (int k = 0; k < nn; k++)
		sorted[k] = e->n[order[k]];
	free(e->n);
	e->n = sorted;
	e->cap_n = nn + 1;
	sorted = NULL;
	for (int k = 0; k < nn; k++)
		for (int j = 0; j < e->n[k].n_out; j++)
			if (e->n[k].out[j] >= 0)
				e->t[e->n[k].out[j]].producer = k;
	rc = 0;
out:
	free(indeg);
	free(order);
	free(cons_start);
	free(cons);
	free(fill);
	free(sorted);
	return rc;
}

static int all_const(const struct engine *e, const struct eng_node *n)
{
	for (int j = 0; j < n->n_in; j++)
		if (n->in[j] >= 0 && !e->t[n->in[j]].is_const)
			return 0;
	return 1;
}

static int fold_node(struct engine *e, struct eng_node *n, size_t limit, char *err, size_t errlen)
{
	struct tensor_view in[ENG_MAX_IO], out[ENG_MAX_IO];
	int rc;

	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] < 0)
			continue;
		struct eng_tensor *t = &e->t[n->out[j]];
		if (t->bytes > limit)
			return ERR("node '%s' (%s): constant output of %zu bytes is absurdly large",
				   n->name, n->op, t->bytes);
		t->data = calloc(1, t->bytes ? t->bytes : 1);
		if (!t->data)
			return -ENOMEM;
		t->is_const = 1;
		out[j] = eng_view(t, t->data);
	}
	for (int j = 0; j < n->n_in; j++) {
		memset(&in[j], 0, sizeof(in[j]));
		if (n->in[j] >= 0)
			in[j] = eng_view(&e->t[n->in[j]], e->t[n->in[j]].data);
	}
	rc = cpu_run_node_simple(e, n, in, out);
	if (rc)
		return ERR("node '%s' (%s, opset %d): constant folding failed (%d)", n->name, n->op,
			   n->opset, rc);
	n->dead = 1;
	return 0;
}

static void compact_nodes(struct engine *e)
{
	int k = 0;
	for (int i = 0; i < e->nn; i++) {
		if (e->n[i].dead) {
			free(e->n[i].name);
			continue;
		}
		e->n[k++] = e->n[i];
	}
	e->nn = k;
	for (int i = 0; i < e->nt; i++)
		if (!e->t[i].is_const && !e->t[i].is_input)
			e->t[i].producer = -1;
	for (int i = 0; i < e->nn; i++)
		for (int j = 0; j < e->n[i].n_out; j++)
			if (e->n[i].out[j] >= 0)
				e->t[e->n[i].out[j]].producer = i;
}

/* Number of live consumers of tensor ti (graph outputs count as one). */
static int use_count(const struct engine *e, int ti)
{
	int c = e->t[ti].is_output;
	for (int i = 0; i < e->nn; i++) {
		if (e->n[i].dead)
			continue;
		for (int j = 0; j < e->n[i].n_in; j++)
			c += e->n[i].in[j] == ti;
	}
	return c;
}

static int sole_consumer(const struct engine *e, int ti)
{
	if (e->t[ti].is_output)
		return -1;
	int who = -1;
	for (int i = 0; i < e->nn; i++) {
		if (e->n[i].dead)
			continue;
		for (int j = 0; j < e->n[i].n_in; j++)
			if (e->n[i].in[j] == ti) {
				if (who >= 0 && who != i)
					return -1;
				who = i;
			}
	}
	return who;
}

/* A new constant tensor named base+suffix, zero-filled, or with no data
 * yet when !alloc (the caller moves data in). */
static int new_const(struct engine *e, const char *base, const char *suffix, enum tensor_dtype dt,
		     int ndim, const int64_t *shape, int alloc)
{
	char nm[256], *b = strdup(base);
	int64_t shp[TENSOR_MAX_DIMS];

	/* base and shape may point into e->t, which eng_tensor_add reallocs */
	if (!b || ndim < 0 || ndim > TENSOR_MAX_DIMS) {
		free(b);
		return b ? -EINVAL : -ENOMEM;
	}
	memcpy(shp, shape, sizeof(*shp) * (size_t)ndim);
	snprintf(nm, sizeof(nm), "%s%s", b, suffix);
	for (int k = 0; eng_tensor_find(e, nm) >= 0; k++)
		snprintf(nm, sizeof(nm), "%s%s.%d", b, suffix, k);
	free(b);
	int ti = eng_tensor_add(e, nm);
	if (ti < 0)
		return ti;
	eng_tensor_set_shape(&e->t[ti], dt, ndim, shp);
	e->t[ti].is_const = 1;
	if (!alloc)
		return ti;
	e->t[ti].data = calloc(1, e->t[ti].bytes ? e->t[ti].bytes : 1);
	if (!e->t[ti].data)
		return -ENOMEM;
	return ti;
}

static void append_op(struct eng_node *n, const char *what)
{
	char w[sizeof(n->op)];	/* what may be another node's op, in the same array */
	size_t l = strlen(n->op);
	snprintf(w, sizeof(w), "%s", what);
	snprintf(n->op + l, sizeof(n->op) - l, "+%s", w);
}

/* Conv or ConvTranspose -> BatchNormalization: scale the weights, shift
 * the bias. Conv weights are M x (C/g kh kw); ConvTranspose's C x (M/g kh
 * kw), output channel m of group gi at (gi C/g + ci, m - gi M/g). */
static int fold_bn(struct engine *e)
{
	for (int i = 0; i < e->nn; i++) {
		struct eng_node *c = &e->n[i];
		if (c->dead || (c->kind != OP_CONV && c->kind != OP_CONV_TRANSPOSE) ||
		    c->p.conv.act.kind != ACT_NONE || c->p.conv.has_sum)
			continue;
		if (!e->t[c->in[1]].is_const || (c->p.conv.has_bias && !e->t[c->in[2]].is_const))
			continue;
		int bi = sole_consumer(e, c->out[0]);
		if (bi < 0 || e->n[bi].kind != OP_BATCHNORM || e->n[bi].in[0] != c->out[0])
			continue;
		struct eng_node *b = &e->n[bi];
		if (!all_const(e, b) && 0)
			continue;
		int ok = 1;
		for (int j = 1; j < 5; j++)
			ok &= e->t[b->in[j]].is_const;
		if (!ok)
			continue;
		struct eng_tensor *w = &e->t[c->in[1]];
		int tr = c->kind == OP_CONV_TRANSPOSE;
		int64_t G = c->p.conv.group, M = tr ? w->shape[1] * G : w->shape[0];
		int64_t rows = w->shape[0], per = w->bytes / 4 / rows;	/* tr: per = M/g kh kw */
		if (e->t[b->out[0]].ndim < 2 || e->t[b->out[0]].shape[1] != M)
			continue;
		/* a weight only this conv reads is scaled in place (it moves to
		 * the folded tensor): the model's weights are never held twice */
		int own = use_count(e, c->in[1]) == 1 && !w->is_input;
		int wi = new_const(e, w->name, ":bnfold", TENSOR_F32, w->ndim, w->shape, !own);
		if (wi < 0)
			return wi;
		int bias = new_const(e, e->t[b->out[0]].name, ":bias", TENSOR_F32, 1, &M, 1);
		if (bias < 0)
			return bias;
		c = &e->n[i];
		b = &e->n[bi];
		w = &e->t[c->in[1]];
		if (own) {
			e->t[wi].data = w->data;
			w->data = NULL;	/* freed as a dead constant below */
		}
		const float *sc = e->t[b->in[1]].data, *sh = e->t[b->in[2]].data;
		const float *mean = e->t[b->in[3]].data, *var = e->t[b->in[4]].data;
		const float *ob = c->p.conv.has_bias ? e->t[c->in[2]].data : NULL;
		float *nw = e->t[wi].data, *nb = e->t[bias].data;
		const float *ow = own ? nw : w->data;
		for (int64_t m = 0; m < M; m++) {
			float s = sc[m] / sqrtf(var[m] + b->p.bn.eps);
			if (!tr)
				for (int64_t k = 0; k < per; k++)
					nw[m * per + k] = ow[m * per + k] * s;
			nb[m] = ((ob ? ob[m] : 0.f) - mean[m]) * s + sh[m];
		}
		if (tr) {	/* row ci: the M/g output channels of its group, kh kw taps each */
			int64_t mg = M / G, taps = per / mg;
			for (int64_t ci = 0; ci < rows; ci++)
				for (int64_t k = 0; k < per; k++) {
					int64_t m = ci / (rows / G) * mg + k / taps;
					nw[ci * per + k] = ow[ci * per + k] * (sc[m] / sqrtf(var[m] + b->p.bn.eps));
				}
		}
		c->in[1] = wi;
		c->in[2] = bias;
		c->n_in = 3;
		c->p.conv.has_bias = 1;
		c->out[0] = b->out[0];
		append_op(c, "BatchNormalization");
		b->dead = 1;
	}
	return 0;
}

static int act_of(const struct eng_node *n, struct act_params *a)
{
	switch (n->kind) {
	case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
	case OP_HARD_SWISH: case OP_SILU: case OP_TANH: case OP_GELU:
		*a = n->p.act;
		return 1;
	default:
		return 0;
	}
}

/* The activation node that alone reads conv c's output, taken into c;
 * returns whether there was one. */
static int fuse_act(struct engine *e, struct eng_node *c)
{
	int ni = sole_consumer(e, c->out[0]);
	struct act_params act;
	if (ni < 0 || !act_of(&e->n[ni], &act))
		return 0;
	c->p.conv.act = act;
	c->out[0] = e->n[ni].out[0];
	append_op(c, e->n[ni].op);
	e->n[ni].dead = 1;
	return 1;
}

/* Conv -> activation (and x * Sigmoid(x) = SiLU; conv + residual add);
 * ConvTranspose -> activation (its kernel applies one; no residual). */
static void fuse_conv(struct engine *e)
{
	for (int i = 0; i < e->nn; i++) {
		struct eng_node *c = &e->n[i];
		if (!c->dead && c->kind == OP_CONV_TRANSPOSE && c->p.conv.act.kind == ACT_NONE) {
			fuse_act(e, c);
			continue;
		}
		if (c->dead || c->kind != OP_CONV)
			continue;
		int y = c->out[0];
		/* residual: Add(conv, other) with other computed earlier */
		int ai = sole_consumer(e, y);
		if (!c->p.conv.has_sum && c->p.conv.act.kind == ACT_NONE && ai >= 0 &&
		    e->n[ai].kind == OP_ADD) {
			struct eng_node *a = &e->n[ai];
			int other = a->in[0] == y ? a->in[1] : a->in[0];
			const struct eng_tensor *ot = &e->t[other], *yt = &e->t[y];
			int same = ot->ndim == yt->ndim && ot->dtype == TENSOR_F32 && other != y;
			for (int d = 0; same && d < yt->ndim; d++)
				same = ot->shape[d] == yt->shape[d];
			if (same && (ot->is_const || ot->is_input || ot->producer < i)) {
				if (!c->p.conv.has_bias)
					c->in[2] = -1;
				c->in[3] = other;
				c->n_in = 4;
				c->p.conv.has_sum = 1;
				c->out[0] = a->out[0];
				append_op(c, "Add");
				a->dead = 1;
				y = c->out[0];
			}
		}
		if (c->p.conv.act.kind != ACT_NONE || fuse_act(e, c))
			continue;
		/* SiLU: y used by exactly Sigmoid(y) and Mul(y, sig) */
		if (use_count(e, y) != 2 || e->t[y].is_output)
			continue;
		int si = -1, mi = -1;
		for (int k = i + 1; k < e->nn; k++) {
			if (e->n[k].dead)
				continue;
			for (int j = 0; j < e->n[k].n_in; j++)
				if (e->n[k].in[j] == y) {
					if (e->n[k].kind == OP_SIGMOID)
						si = k;
					else if (e->n[k].kind == OP_MUL)
						mi = k;
				}
		}
		if (si < 0 || mi < 0)
			continue;
		int s = e->n[si].out[0];
		struct eng_node *m = &e->n[mi];
		if (!((m->in[0] == y && m->in[1] == s) || (m->in[1] == y && m->in[0] == s)) ||
		    sole_consumer(e, s) != mi)
			continue;
		c->p.conv.act.kind = ACT_SILU;
		c->out[0] = m->out[0];
		append_op(c, "SiLU");
		e->n[si].dead = 1;
		m->dead = 1;
	}
}

/* Sigmoid(x) * x elsewhere -> one SiLU node. */
static void fuse_silu(struct engine *e)
{
	for (int i = 0; i < e->nn; i++) {
		struct eng_node *s = &e->n[i];
		if (s->dead || s->kind != OP_SIGMOID)
			continue;
		int x = s->in[0], so = s->out[0];
		int mi = sole_consumer(e, so);
		if (mi < 0 || e->n[mi].kind != OP_MUL)
			continue;
		struct eng_node *m = &e->n[mi];
		if (!((m->in[0] == x && m->in[1] == so) || (m->in[1] == x && m->in[0] == so)))
			continue;
		s->kind = OP_SILU;
		s->p.act.kind = ACT_SILU;
		snprintf(s->op, sizeof(s->op), "SiLU");
		s->out[0] = m->out[0];
		m->dead = 1;
	}
}

/* Identity / no-op nodes: rewire consumers unless the output is a model
 * output (then the copy stays). */
static void drop_identity(struct engine *e)
{
	for (int i = 0; i < e->nn; i++) {
		struct eng_node *n = &e->n[i];
		if (n->dead || n->kind != OP_IDENTITY || e->t[n->out[0]].is_output)
			continue;
		int from = n->in[0], to = n->out[0];
		for (int k = 0; k < e->nn; k++)
			for (int j = 0; j < e->n[k].n_in; j++)
				if (e->n[k].in[j] == to)
					e->n[k].in[j] = from;
		n->dead = 1;
	}
}

static void drop_unused(struct engine *e)
{
	for (int again = 1; again;) {
		again = 0;
		for (int i = e->nn - 1; i >= 0; i--) {
			struct eng_node *n = &e->n[i];
			if (n->dead)
				continue;
			int used = 0;
			for (int j = 0; j < n->n_out && !used; j++)
				used = n->out[j] >= 0 && use_count(e, n->out[j]) > 0;
			if (!used) {
				n->dead = 1;
				again = 1;
			}
		}
	}
}

/* Liveness over the final order and a best-fit-by-size arena plan. */
static int plan_memory(struct engine *e)
{
	int N = e->nn;
	int *ord = NULL, np = 0;
	size_t top = 0;

	for (int i = 0; i < e->nt; i++) {
		struct eng_tensor *t = &e->t[i];
		t->last_use = -2;
		if (t->is_const)
			continue;
		if (t->is_input)
			t->producer = -1;
	}
	for (int i = 0; i < N; i++)
		for (int j = 0; j < e->n[i].n_in; j++)
			if (e->n[i].in[j] >= 0)
				e->t[e->n[i].in[j]].last_use = i;
	for (int i = 0; i < e->n_outputs; i++)
		e->t[e->outputs[i]].last_use = N;
	for (int i = 0; i < N; i++)
		for (int j = 0; j < e->n[i].n_out; j++) {
			int ti = e->n[i].out[j];
			if (ti >= 0 && e->t[ti].last_use < i)
				e->t[ti].last_use = i;	/* unused extra output: live for the node */
		}
	ord = malloc((e->nt + 1) * sizeof(int));
	if (!ord)
		return -ENOMEM;
	for (int i = 0; i < e->nt; i++) {
		struct eng_tensor *t = &e->t[i];
		if (t->is_const || (t->producer < 0 && !t->is_input))
			continue;
		if (t->is_input && t->last_use < 0)
			t->last_use = 0;
		ord[np++] = i;
	}
	/* largest first */
	for (int a = 1; a < np; a++) {
		int v = ord[a], b = a - 1;
		while (b >= 0 && e->t[ord[b]].bytes < e->t[v].bytes) {
			ord[b + 1] = ord[b];
			b--;
		}
		ord[b + 1] = v;
	}
	for (int a = 0; a < np; a++) {
		struct eng_tensor *t = &e->t[ord[a]];
		size_t sz = (t->bytes + 63) & ~(size_t)63, off = 0;
		int lo = t->producer, hi = t->last_use;
		/* place at the lowest offset free of every overlapping tensor */
		for (int moved = 1; moved;) {
			moved = 0;
			for (int b = 0; b < a; b++) {
				struct eng_tensor *u = &e->t[ord[b]];
				size_t usz = (u->bytes + 63) & ~(size_t)63;
				if (u->last_use < lo || hi < u->producer)
					continue;
				if (off < u->offset + usz && u->offset < off + sz) {
					off = u->offset + usz;
					moved = 1;
				}
			}
		}
		t->offset = off;
		if (off + sz > top)
			top = off + sz;
	}
	free(ord);
	e->arena_bytes = top;
	return 0;
}

/* Constants no node reads any more (weights before BN folding, folded
 * shape chains) are freed so memory holds each weight once. */
static void free_dead_constants(struct engine *e)
{
	char *used = calloc(e->nt + 1, 1);
	if (!used)
		return;
	for (int i = 0; i < e->nn; i++)
		for (int j = 0; j < e->n[i].n_in; j++)
			if (e->n[i].in[j] >= 0)
				used[e->n[i].in[j]] = 1;
	for (int i = 0; i < e->n_outputs; i++)
		used[e->outputs[i]] = 1;
	e->weight_bytes = 0;
	for (int i = 0; i < e->nt; i++) {
		struct eng_tensor *t = &e->t[i];
		if (!t->is_const)
			continue;
		if (used[i]) {
			e->weight_bytes += t->bytes;
			continue;
		}
		free(t->data);
		t->data = NULL;
		t->is_const = 0;	/* gone: no longer a value of this engine */
		t->producer = -1;
	}
	free(used);
}

/* Constants that every reader packed at prepare (n->packed_inputs) would
 * be in memory twice: the model's copy goes as soon as its last reader has
 * packed it, so that loading never holds both copies of all the weights
 * (engine_export_range then refuses: engine_opts.keep_weights keeps them).
 * readers[t]: the (node, input) pairs reading t, plus one for a model output
 * (never dropped); NULL: nothing is dropped. */
static int *count_readers(const struct engine *e, const struct engine_opts *opts)
{
	int *readers;

	if ((opts && opts->keep_weights) || !(readers = calloc((size_t)e->nt + 1, sizeof(int))))
		return NULL;	/* both copies stay: correct, only larger */
	for (int i = 0; i < e->n_outputs; i++)
		readers[e->outputs[i]]++;
	for (int i = 0; i < e->nn; i++)
		for (int j = 0; j < e->n[i].n_in; j++)
			if (e->n[i].in[j] >= 0)
				readers[e->n[i].in[j]]++;
	return readers;
}

static void drop_packed_inputs(struct engine *e, const struct eng_node *n, int *readers)
{
	if (!readers)
		return;
	for (int j = 0; j < n->n_in && j < 32; j++) {
		int ti = n->in[j];
		if (ti < 0 || !(n->packed_inputs >> j & 1u) || --readers[ti] > 0)
			continue;
		struct eng_tensor *t = &e->t[ti];
		if (!t->is_const || !t->data)
			continue;
		free(t->data);
		t->data = NULL;
		e->weight_bytes -= t->bytes;
	}
}

int eng_finalize(struct engine *e, const struct engine_opts *opts, char *err, size_t errlen)
{
	int rc;
	size_t limit;

	if ((rc = topo_sort(e, err, errlen)))
		return rc;
	limit = e->weight_bytes * 4 + ((size_t)64 << 20);
	for (int i = 0; i < e->nn; i++) {
		struct eng_node *n = &e->n[i];
		if ((rc = eng_infer_node(e, n, err, errlen)))
			return rc;
		if (all_const(e, n) || n->kind == OP_SHAPE) {
			if ((rc = fold_node(e, n, limit, err, errlen)))
				return rc;
		}
	}
	drop_identity(e);
	if ((rc = fold_bn(e)))
		return rc;
	fuse_conv(e);
	fuse_silu(e);
	drop_unused(e);
	compact_nodes(e);
	free_dead_constants(e);
	int *readers = count_readers(e, opts);
	for (int i = 0; i < e->nn; i++) {
		struct eng_node *n = &e->n[i];
		if (n->kind == OP_SHAPE || n->kind == OP_CONSTANT || n->kind == OP_CONSTANT_OF_SHAPE)
			rc = ERR("node '%s' (%s) could not be constant-folded", n->name, n->op);
		else if (!e->be->supports(e, n))
			rc = ERR("node '%s' (%s, opset %d) is not supported by the %s backend", n->name,
				 n->op, n->opset, e->be->name);
		else if ((rc = e->be->prepare(e, n)))
			rc = ERR("node '%s' (%s): backend prepare failed (%d)", n->name, n->op, rc);
		if (rc) {
			free(readers);
			return rc;
		}
		drop_packed_inputs(e, n, readers);
		if (n->work_bytes > e->work_bytes)
			e->work_bytes = n->work_bytes;
		if (n->kind == OP_CONV) {	/* keep spatial metadata in sync */
			n->sp.pad_top = n->p.conv.pads[0];
			n->sp.pad_bottom = n->p.conv.pads[2];
		}
	}
	free(readers);
	return plan_memory(e);
}
