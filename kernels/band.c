/* Banded execution of a node range (issue 9): a wavefront over horizontal
 * bands of rows, each output row of each node computed exactly once.
 *
 * For band b the rows every tensor must reach are found backwards from the
 * cut: band b of a cut tensor of H rows ends at (b+1)*H/B; a consumer that
 * must reach output row o needs rows [0, o) of a row-aligned input and
 * [0, (o-1)*s - pad_top + (k-1)*d + 1) of a windowed (conv, pool) one; the
 * last band reaches every row. Going forwards, each node then computes only
 * its new output rows [done, need).
 *
 * The existing kernels run unchanged on sub-tensors: the input rows a call
 * reads are gathered (all channels) into a contiguous scratch tensor, the
 * node's top pad is shifted so the window lands where it would in the full
 * tensor (the kernels read pads[0] and pads[1], the shapes of the views they
 * are given and, for Conv, an algorithm chosen at prepare that does not
 * depend on H), and the rows produced are scattered into the full output.
 * A slice that is the whole tensor, or one image plane (N*C == 1), is used in
 * place.
 *
 * Tensor lifetimes stretch: a tensor read by band B-1 must survive band 0 of
 * every later node, so a tensor produced in the range whose arena slot is
 * shared with another tensor the range touches gets a private buffer; the
 * private ones of the cut are copied into the arena after the last band. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend-impl.h"
#include "engine-impl.h"

#define ERR(...) (eng_err(err, errlen, __VA_ARGS__), -ENOTSUP)

enum in_mode { IN_WHOLE, IN_ALIGNED, IN_WINDOW };

struct band_node {
	int node;			/* engine node index */
	int64_t oh;			/* output rows */
	int64_t k, s, d, pt, pb;	/* window of input 0 (IN_WINDOW) */
	unsigned char mode[ENG_MAX_IO];
	int64_t done, need;		/* output rows computed / wanted */
	int64_t rows;			/* output rows computed this run */
};

struct band_tensor {
	void *data;			/* full tensor: arena or private */
	void *priv;			/* private buffer, or NULL */
	void *arena;			/* its place in the engine_ctx */
	int64_t need;			/* rows wanted by the current band */
	int64_t fed;			/* wavefront: rows of a cut-`first` tensor that are final */
	int in_range;			/* produced by a node of the range */
	int is_input;			/* a tensor of cut `first` */
};

struct engine_band {
	const struct engine *e;
	struct engine_ctx *c;
	void *bctx;
	int first, last, bands, next;
	int force_copy;			/* SPLITD_BAND_COPY=1: copy rows even for strided kernels */
	struct band_node *nodes;	/* last - first */
	struct band_tensor *t;		/* e->nt, indexed like e->t */
	int *cut, n_cut;		/* tensors of cut `last` */
	void *scratch;
	size_t scratch_bytes;
	struct engine_band_stats st;
	struct engine_band_time *tl;	/* bands */
	int advances;			/* wavefront: engine_band_advance calls this run */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int is_activation(const struct eng_tensor *t)
{
	return !t->is_const && (t->producer >= 0 || t->is_input);
}

static int is_unary(enum op_kind k)
{
	return (k >= OP_RELU && k <= OP_GELU) || k == OP_IDENTITY || k == OP_CAST;
}

/* numpy-broadcast elementwise ops: the arithmetic ones, comparisons,
 * logic, Where (three inputs) and Mod */
static int is_binary(enum op_kind k)
{
	return (k >= OP_ADD && k <= OP_POW) || (k >= OP_EQUAL && k <= OP_MOD);
}

static int is_reduce(enum op_kind k)
{
	return k == OP_REDUCE_MEAN || (k >= OP_REDUCE_SUM && k <= OP_REDUCE_SUM_SQUARE);
}

/* Is node i row-local? Fills the per-input modes and the window; on refusal
 * writes why into err. */
static int classify(const struct engine *e, int i, struct band_node *bn, char *err, size_t errlen)
{
	const struct eng_node *n = &e->n[i];
	const struct eng_tensor *y0 = n->n_out > 0 && n->out[0] >= 0 ? &e->t[n->out[0]] : NULL;

	memset(bn, 0, sizeof(*bn));
	bn->node = i;
	if (!y0 || y0->ndim != 4)
		return ERR("node %d '%s' (%s) does not produce a 4-D tensor", i, n->name, n->op);
	bn->oh = y0->shape[2];
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] < 0)
			continue;
		const struct eng_tensor *y = &e->t[n->out[j]];
		if (y->ndim != 4 || y->shape[2] != bn->oh)
			return ERR("node %d '%s' (%s): outputs differ in height", i, n->name, n->op);
	}
	for (int j = 0; j < n->n_in; j++)
		bn->mode[j] = IN_WHOLE;

	switch (n->kind) {
	case OP_CONV: {
		const struct conv_params *p = &n->p.conv;
		if (p->spatial != 2)
			return ERR("node %d '%s' (%s) is a 1-D convolution", i, n->name, n->op);
		bn->k = p->kernel[0], bn->s = p->stride[0], bn->d = p->dil[0];
		bn->pt = p->pads[0], bn->pb = p->pads[2];
		bn->mode[0] = IN_WINDOW;
		if (p->has_sum)
			bn->mode[3] = IN_ALIGNED;
		break;
	}
	case OP_MAXPOOL: case OP_AVGPOOL: {
		const struct pool_params *p = &n->p.pool;
		if (p->spatial != 2 || n->n_out != 1)
			return ERR("node %d '%s' (%s): only 2-D pooling without indices runs banded",
				   i, n->name, n->op);
		bn->k = p->kernel[0], bn->s = p->stride[0], bn->d = p->dil[0];
		bn->pt = p->pads[0], bn->pb = p->pads[2];
		bn->mode[0] = IN_WINDOW;
		break;
	}
	case OP_CONCAT:
		if (n->p.axes.axis == 2)
			return ERR("node %d '%s' (Concat) joins along H", i, n->name);
		for (int j = 0; j < n->n_in; j++)
			bn->mode[j] = IN_ALIGNED;
		break;
	case OP_SPLIT:
		if (n->p.split.axis == 2)
			return ERR("node %d '%s' (Split) cuts along H", i, n->name);
		bn->mode[0] = IN_ALIGNED;
		break;
	case OP_SLICE:
		if (n->p.slice.starts[2] != 0 || n->p.slice.steps[2] != 1)
			return ERR("node %d '%s' (Slice) moves rows", i, n->name);
		bn->mode[0] = IN_ALIGNED;
		break;
	case OP_PAD:
		if (n->p.pad.pads[2] || n->p.pad.pads[2 + 4])
			return ERR("node %d '%s' (Pad) pads along H", i, n->name);
		bn->mode[0] = IN_ALIGNED;
		break;
	case OP_BATCHNORM:
		bn->mode[0] = IN_ALIGNED;
		break;
	case OP_ARGMAX: case OP_ARGMIN:
		/* an output row reads its own input row unless the index runs along H */
		if (n->p.arg.axis == 2 || !n->p.arg.keepdims)
			return ERR("node %d '%s' (%s) reduces along H or drops an axis: a barrier", i,
				   n->name, n->op);
		bn->mode[0] = IN_ALIGNED;
		break;
	case OP_LAYER_NORM:
		/* normalising over W alone keeps rows apart; over C, H or more
		 * every output row needs every input row */
		if (n->p.ln.axis != 3)
			return ERR("node %d '%s' (LayerNormalization) normalises across rows: a barrier",
				   i, n->name);
		bn->mode[0] = IN_ALIGNED;
		break;
	default:
		if (is_reduce(n->kind)) {
			/* shape.c left the axes as a per-axis mask */
			const struct axes_params *a = &n->p.axes;
			if (a->naxes != 4 || !a->keepdims || a->axes[2])
				return ERR("node %d '%s' (%s) reduces along H or drops an axis: a barrier",
					   i, n->name, n->op);
			bn->mode[0] = IN_ALIGNED;
			break;
		}
		if (is_unary(n->kind)) {
			bn->mode[0] = IN_ALIGNED;
			break;
		}
		if (is_binary(n->kind)) {
			/* numpy broadcasting: an input's H axis is its second to
			 * last; it either is the output's H or broadcasts (1) */
			for (int j = 0; j < n->n_in; j++) {
				if (n->in[j] < 0)
					continue;
				const struct eng_tensor *x = &e->t[n->in[j]];
				if (x->ndim < 2 || x->shape[x->ndim - 2] == 1)
					continue;
				if (x->shape[x->ndim - 2] != bn->oh)
					return ERR("node %d '%s' (%s): input '%s' is not row-aligned", i,
						   n->name, n->op, x->name);
				bn->mode[j] = IN_ALIGNED;
			}
			break;
		}
		return ERR("node %d '%s' (%s) is not row-local: a barrier", i, n->name, n->op);
	}

	for (int j = 0; j < n->n_in; j++) {
		if (n->in[j] < 0)
			continue;
		const struct eng_tensor *x = &e->t[n->in[j]];
		if (bn->mode[j] == IN_WHOLE) {
			/* parameters (weights, Clip bounds, broadcast operands) */
			if (is_activation(x) && x->ndim >= 2 && x->shape[x->ndim - 2] != 1 &&
			    !is_binary(n->kind))
				return ERR("node %d '%s' (%s): input '%s' is not a parameter", i, n->name,
					   n->op, x->name);
			continue;
		}
		if (x->ndim != 4 && !(is_binary(n->kind) && x->ndim >= 2))
			return ERR("node %d '%s' (%s): input '%s' is not 4-D", i, n->name, n->op, x->name);
		if (bn->mode[j] == IN_ALIGNED && x->shape[x->ndim - 2] != bn->oh)
			return ERR("node %d '%s' (%s): input '%s' has %lld rows for %lld output rows", i,
				   n->name, n->op, x->name, (long long)x->shape[x->ndim - 2],
				   (long long)bn->oh);
		if (bn->mode[j] == IN_WINDOW && (bn->k < 1 || bn->s < 1 || bn->d < 1 || bn->pt < 0))
			return ERR("node %d '%s' (%s): bad window", i, n->name, n->op);
	}
	return 0;
}

static int in_cut(const struct eng_tensor *t, int k)
{
	return is_activation(t) && t->producer < k && t->last_use >= k;
}

int engine_band_check(const struct engine *e, int first, int last, char *err, size_t errlen)
{
	struct band_node bn;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (first < 0 || last > e->nn || first >= last) {
		eng_err(err, errlen, "bad node range [%d, %d)", first, last);
		return -EINVAL;
	}
	for (int i = first; i < last; i++)
		if ((rc = classify(e, i, &bn, err, errlen)))
			return rc;
	for (int i = 0; i < e->nt; i++) {
		const struct eng_tensor *t = &e->t[i];
		if (in_cut(t, last) && t->ndim != 4)
			return ERR("tensor '%s' of cut %d is not 4-D", t->name, last);
	}
	return 0;
}

int engine_band_reach(const struct engine *e, int first)
{
	struct band_node bn;
	int best = first;

	if (first < 0 || first >= e->nn)
		return first;
	for (int j = first + 1; j <= e->nn; j++) {
		if (classify(e, j - 1, &bn, NULL, 0))
			break;
		int ok = 1;
		for (int i = 0; i < e->nt && ok; i++)
			ok = !(in_cut(&e->t[i], j) && e->t[i].ndim != 4);
		if (ok)
			best = j;
	}
	return best;
}

int engine_band_inputs_check(const struct engine *e, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = 0;
	for (int i = 0; i < e->nt; i++) {
		const struct eng_tensor *t = &e->t[i];
		if (in_cut(t, 0) && (t->dtype != TENSOR_F32 || t->ndim != 4))
			return ERR("input '%s' is not a float NCHW tensor", t->name);
	}
	return 0;
}

/* Rows [*r0, *r1) of band `band` of a tensor of h rows. */
static void band_rows(int64_t h, int band, int bands, int64_t *r0, int64_t *r1)
{
	*r0 = h * band / bands;
	*r1 = h * (band + 1) / bands;
}

static int overlaps(const struct eng_tensor *a, const struct eng_tensor *b)
{
	size_t as = (a->bytes + 63) & ~(size_t)63, bs = (b->bytes + 63) & ~(size_t)63;
	return a->offset < b->offset + bs && b->offset < a->offset + as;
}

void engine_band_free(struct engine_band *b)
{
	if (!b)
		return;
	if (b->bctx)
		b->e->be->ctx_free(b->bctx);
	for (int i = 0; b->t && i < b->e->nt; i++)
		free(b->t[i].priv);
	free(b->t);
	free(b->nodes);
	free(b->cut);
	free(b->scratch);
	free(b->tl);
	free(b);
}

int engine_band_new(const struct engine *e, struct engine_ctx *c, int first, int last, int bands,
		    struct engine_band **out, char *err, size_t errlen)
{
	struct engine_band *b = NULL;
	struct tensor_view v;
	int rc;

	*out = NULL;
	if (!e || !c || bands < 1)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->c = c;
	b->e = e;
	if ((rc = engine_band_check(e, first, last, err, errlen)))
		goto out;
	if (e->be->buf_alloc) {
		rc = ERR("the %s backend keeps activations off the host; banded runs need the CPU",
			 e->be->name);
		goto out;
	}
	b->first = first, b->last = last, b->bands = bands;
	b->force_copy = getenv("SPLITD_BAND_COPY") && atoi(getenv("SPLITD_BAND_COPY")) == 1;
	b->nodes = calloc(last - first, sizeof(*b->nodes));
	b->t = calloc(e->nt, sizeof(*b->t));
	b->cut = calloc(e->nt + 1, sizeof(int));
	b->tl = calloc(bands, sizeof(*b->tl));
	if (!b->nodes || !b->t || !b->cut || !b->tl) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = first; i < last; i++)
		if ((rc = classify(e, i, &b->nodes[i - first], err, errlen)))
			goto out;
	for (int i = 0; i < e->nt; i++) {
		const struct eng_tensor *t = &e->t[i];
		struct band_tensor *bt = &b->t[i];
		if (!is_activation(t))
			continue;
		if ((rc = engine_ctx_get(c, t->name, &v)))
			goto out;
		bt->arena = bt->data = v.data;
		bt->in_range = t->producer >= first && t->producer < last;
		bt->is_input = in_cut(t, first);
		if (in_cut(t, last))
			b->cut[b->n_cut++] = i;
	}
	/* private buffers where the arena shares a slot within the range */
	for (int i = 0; i < e->nt; i++) {
		const struct eng_tensor *t = &e->t[i];
		if (!b->t[i].in_range)
			continue;
		int shared = 0;
		for (int j = 0; j < e->nt && !shared; j++) {
			const struct eng_tensor *u = &e->t[j];
			if (j == i || !is_activation(u))
				continue;
			int touched = b->t[j].in_range || in_cut(u, first) || in_cut(u, last);
			shared = touched && overlaps(t, u);
		}
		if (!shared)
			continue;
		if (posix_memalign(&b->t[i].priv, 64, t->bytes ? t->bytes : 64)) {
			b->t[i].priv = NULL;
			rc = -ENOMEM;
			goto out;
		}
		b->t[i].data = b->t[i].priv;
		b->st.private_bytes += (int64_t)t->bytes;
	}
	if ((rc = e->be->ctx_new(e, &b->bctx)))
		goto out;
	*out = b;
	return 0;
out:
	engine_band_free(b);
	return rc;
}

/* View of rows [r0, r1) of tensor x along axis h, with stride-free data:
 * in place when possible, else gathered into *scr (advanced). */
static struct tensor_view rows_view(const struct eng_tensor *x, void *data, int h, int64_t r0,
				    int64_t r1)
{
	struct tensor_view v = eng_view(x, data);
	v.shape[h] = r1 - r0;
	return v;
}

static void plane_dims(const struct eng_tensor *x, int h, int64_t *outer, size_t *inner)
{
	*outer = 1;
	*inner = tensor_dtype_size(x->dtype);
	for (int d = 0; d < h; d++)
		*outer *= x->shape[d];
	for (int d = h + 1; d < x->ndim; d++)
		*inner *= (size_t)x->shape[d];
}

/* Does rows [r0, r1) along h need a copy to be contiguous? */
static int needs_copy(const struct eng_tensor *x, int h, int64_t r0, int64_t r1)
{
	int64_t outer;
	size_t inner;
	if (r0 == 0 && r1 == x->shape[h])
		return 0;
	plane_dims(x, h, &outer, &inner);
	return outer > 1;
}

static void *slice_ptr(const struct eng_tensor *x, void *data, int h, int64_t r0)
{
	int64_t outer;
	size_t inner;
	plane_dims(x, h, &outer, &inner);
	return (char *)data + (size_t)r0 * inner;
}

static size_t slice_bytes(const struct eng_tensor *x, int h, int64_t r0, int64_t r1)
{
	int64_t outer;
	size_t inner;
	plane_dims(x, h, &outer, &inner);
	return ((size_t)outer * (size_t)(r1 - r0) * inner + 63) & ~(size_t)63;
}

static int64_t copy_rows(const struct eng_tensor *x, int h, void *full, void *part, int64_t r0,
			 int64_t r1, int gather)
{
	int64_t outer;
	size_t inner;
	plane_dims(x, h, &outer, &inner);
	size_t fs = (size_t)x->shape[h] * inner, ps = (size_t)(r1 - r0) * inner;
	char *f = (char *)full + (size_t)r0 * inner, *p = part;
	for (int64_t o = 0; o < outer; o++, f += fs, p += ps) {
		if (gather)
			memcpy(p, f, ps);
		else
			memcpy(f, p, ps);
	}
	return (int64_t)(outer * ps);
}

static int reserve(struct engine_band *b, size_t bytes)
{
	if (bytes <= b->scratch_bytes)
		return 0;
	void *p = NULL;
	if (posix_memalign(&p, 64, bytes))
		return -ENOMEM;
	free(b->scratch);
	b->scratch = p;
	b->scratch_bytes = bytes;
	return 0;
}

/* Input rows a windowed input must hold for output rows [0, o). */
static int64_t window_end(const struct band_node *bn, int64_t o, int64_t h)
{
	if (o <= 0)
		return 0;
	int64_t z = (o - 1) * bn->s - bn->pt + (bn->k - 1) * bn->d + 1;
	return z < 0 ? 0 : z > h ? h : z;
}

/* The rows of input j that output rows [o0, o1) read. */
static void input_rows(const struct band_node *bn, int j, const struct eng_tensor *x,
		       int64_t o0, int64_t o1, int64_t *r0, int64_t *r1)
{
	int h = x->ndim - 2;
	switch (bn->mode[j]) {
	case IN_ALIGNED:
		*r0 = o0, *r1 = o1;
		return;
	case IN_WINDOW: {
		int64_t a = o0 * bn->s - bn->pt;
		*r0 = a < 0 ? 0 : a > x->shape[h] ? x->shape[h] : a;
		*r1 = window_end(bn, o1, x->shape[h]);
		if (*r1 < *r0)
			*r1 = *r0;
		return;
	}
	default:
		*r0 = 0, *r1 = x->ndim >= 2 ? x->shape[h] : 1;
		return;
	}
}

static int run_rows(struct engine_band *b, struct band_node *bn, int64_t o0, int64_t o1)
{
	const struct engine *e = b->e;
	const struct eng_node *n = &e->n[bn->node];
	struct tensor_view in[ENG_MAX_IO], out[ENG_MAX_IO];
	int64_t ir0[ENG_MAX_IO], ir1[ENG_MAX_IO];
	size_t need = 0, off = 0;
	struct eng_node sub;
	int rc;
	/* a kernel that takes plane strides reads and writes the full
	 * tensors in place (4-D ones); the others get copied rows */
	int strided = !b->force_copy && e->be->strided && e->be->strided(n);
#define COPY(t, h, r0, r1) (needs_copy(t, h, r0, r1) && !(strided && (t)->ndim == 4))

	/* scratch for the slices that need a copy */
	for (int j = 0; j < n->n_in; j++) {
		if (n->in[j] < 0)
			continue;
		const struct eng_tensor *x = &e->t[n->in[j]];
		input_rows(bn, j, x, o0, o1, &ir0[j], &ir1[j]);
		if (bn->mode[j] != IN_WHOLE && COPY(x, x->ndim - 2, ir0[j], ir1[j]))
			need += slice_bytes(x, x->ndim - 2, ir0[j], ir1[j]);
	}
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] >= 0 && COPY(&e->t[n->out[j]], 2, o0, o1))
			need += slice_bytes(&e->t[n->out[j]], 2, o0, o1);
	if ((rc = reserve(b, need)))
		return rc;

	for (int j = 0; j < n->n_in; j++) {
		if (n->in[j] < 0) {
			memset(&in[j], 0, sizeof(in[j]));
			continue;
		}
		const struct eng_tensor *x = &e->t[n->in[j]];
		void *data = x->is_const ? x->data : b->t[n->in[j]].data;
		int h = x->ndim - 2;
		if (bn->mode[j] == IN_WHOLE) {
			in[j] = eng_view(x, data);
			continue;
		}
		in[j] = rows_view(x, data, h, ir0[j], ir1[j]);
		if (COPY(x, h, ir0[j], ir1[j])) {
			in[j].data = (char *)b->scratch + off;
			off += slice_bytes(x, h, ir0[j], ir1[j]);
			b->st.copy_bytes += copy_rows(x, h, data, in[j].data, ir0[j], ir1[j], 1);
		} else {
			in[j].data = slice_ptr(x, data, h, ir0[j]);
			if (needs_copy(x, h, ir0[j], ir1[j]))
				in[j].pstride = x->shape[2] * x->shape[3];
		}
	}
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] < 0) {
			memset(&out[j], 0, sizeof(out[j]));
			continue;
		}
		const struct eng_tensor *y = &e->t[n->out[j]];
		void *data = b->t[n->out[j]].data;
		out[j] = rows_view(y, data, 2, o0, o1);
		if (COPY(y, 2, o0, o1)) {
			out[j].data = (char *)b->scratch + off;
			off += slice_bytes(y, 2, o0, o1);
		} else {
			out[j].data = slice_ptr(y, data, 2, o0);
			if (needs_copy(y, 2, o0, o1))
				out[j].pstride = y->shape[2] * y->shape[3];
		}
	}

	/* shift the window so it lands where it does in the full tensor */
	sub = *n;
	if (n->kind == OP_CONV || n->kind == OP_MAXPOOL || n->kind == OP_AVGPOOL) {
		int64_t *pads = n->kind == OP_CONV ? sub.p.conv.pads : sub.p.pool.pads;
		int64_t hin = e->t[n->in[0]].shape[2], sub_h = ir1[0] - ir0[0];
		int64_t pt = bn->pt + ir0[0] - o0 * bn->s;
		int64_t pb = (o1 - o0 - 1) * bn->s - pt + (bn->k - 1) * bn->d + 1 - sub_h;
		pads[0] = pt;
		/* the bottom pad only matters where the window passes the last
		 * row (AveragePool's count_include_pad clips to it) */
		pads[2] = ir1[0] == hin ? bn->pb : pb > 0 ? pb : 0;
	}
	if ((rc = e->be->run(b->bctx, e, &sub, in, out)))
		return rc;

	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] < 0)
			continue;
		const struct eng_tensor *y = &e->t[n->out[j]];
		if (COPY(y, 2, o0, o1))
			b->st.copy_bytes += copy_rows(y, 2, b->t[n->out[j]].data, out[j].data, o0, o1, 0);
	}
#undef COPY
	if (n->kind == OP_CONV) {
		/* counted from the views the kernel was given */
		const struct tensor_view *x = &in[0], *y = &out[0];
		int64_t cg = x->shape[1] / n->p.conv.group;
		b->st.macs += y->shape[0] * y->shape[1] * y->shape[2] * y->shape[3] * cg *
			      n->p.conv.kernel[0] * n->p.conv.kernel[1];
	} else if (bn->oh) {
		b->st.macs += n->macs * o1 / bn->oh - n->macs * o0 / bn->oh;
	}
	b->st.calls++;
	b->st.rows += o1 - o0;
	bn->rows += o1 - o0;
	bn->done = o1;
	return 0;
}

int engine_band_begin(struct engine_band *b)
{
	int64_t pb = b->st.private_bytes;
	memset(&b->st, 0, sizeof(b->st));
	b->st.private_bytes = pb;
	b->st.start_ns = now_ns();
	for (int i = 0; i < b->last - b->first; i++)
		b->nodes[i].done = b->nodes[i].rows = 0;
	for (int i = 0; i < b->e->nt; i++)
		b->t[i].fed = 0;
	b->next = 0;
	b->advances = 0;
	return 0;
}

/* The run's end: every row of every node computed exactly once, and the
 * cut's private buffers copied into the arena. */
static int finish_run(struct engine_band *b)
{
	for (int i = 0; i < b->last - b->first; i++)
		if (b->nodes[i].rows != b->nodes[i].oh)
			return -EIO;
	for (int j = 0; j < b->n_cut; j++) {
		struct band_tensor *bt = &b->t[b->cut[j]];
		if (bt->priv)
			memcpy(bt->arena, bt->priv, b->e->t[b->cut[j]].bytes);
	}
	return 0;
}

int engine_band_step(struct engine_band *b, int band)
{
	const struct engine *e = b->e;
	int nn = b->last - b->first, rc;

	if (band < 0 || band >= b->bands || (band != 0 && band != b->next))
		return -EINVAL;
	int64_t t0 = now_ns();
	int64_t macs0 = b->st.macs;
	if (band == 0) {
		engine_band_begin(b);
		b->st.start_ns = t0;
		macs0 = 0;
	}
	/* backwards: the rows each tensor must reach by the end of this band */
	for (int i = 0; i < e->nt; i++)
		if (b->t[i].in_range)
			b->t[i].need = band == b->bands - 1 ? e->t[i].shape[2] : 0;
	for (int j = 0; j < b->n_cut; j++) {
		int ti = b->cut[j];
		int64_t r0, r1;
		band_rows(e->t[ti].shape[2], band, b->bands, &r0, &r1);
		if (b->t[ti].in_range && b->t[ti].need < r1)
			b->t[ti].need = r1;
	}
	for (int i = nn - 1; i >= 0; i--) {
		struct band_node *bn = &b->nodes[i];
		const struct eng_node *n = &e->n[bn->node];
		int64_t o = 0;
		for (int j = 0; j < n->n_out; j++)
			if (n->out[j] >= 0 && b->t[n->out[j]].need > o)
				o = b->t[n->out[j]].need;
		bn->need = o > bn->oh ? bn->oh : o;
		if (bn->need <= bn->done)
			continue;
		for (int j = 0; j < n->n_in; j++) {
			if (n->in[j] < 0 || !b->t[n->in[j]].in_range)
				continue;
			const struct eng_tensor *x = &e->t[n->in[j]];
			int64_t r0, r1;
			input_rows(bn, j, x, 0, bn->need, &r0, &r1);
			if (b->t[n->in[j]].need < r1)
				b->t[n->in[j]].need = r1;
		}
	}
	/* forwards: each node's new rows, its inputs complete by then */
	for (int i = 0; i < nn; i++) {
		struct band_node *bn = &b->nodes[i];
		const struct eng_node *n = &e->n[bn->node];
		if (bn->need <= bn->done)
			continue;
		for (int j = 0; j < n->n_in; j++) {
			if (n->in[j] < 0 || !b->t[n->in[j]].in_range)
				continue;
			const struct eng_tensor *x = &e->t[n->in[j]];
			int64_t r0, r1;
			input_rows(bn, j, x, bn->done, bn->need, &r0, &r1);
			if (b->nodes[x->producer - b->first].done < r1)
				return -EIO;	/* the wavefront is wrong: never expected */
		}
		if ((rc = run_rows(b, bn, bn->done, bn->need)))
			return rc;
	}
	if (e->be->synchronize && (rc = e->be->synchronize(b->bctx)))
		return rc;
	b->next = band + 1;
	if (band == b->bands - 1) {
		if ((rc = finish_run(b)))
			return rc;
		b->next = 0;
	}
	b->tl[band].start_ns = t0;
	b->tl[band].end_ns = now_ns();
	b->tl[band].macs = b->st.macs - macs0;
	b->st.end_ns = b->tl[band].end_ns;
	return 0;
}

int engine_band_run(struct engine_band *b, engine_band_fn on_band, void *ud)
{
	int rc;
	for (int band = 0; band < b->bands; band++) {
		if ((rc = engine_band_step(b, band)))
			return rc;
		if (on_band) {
			int r0 = 0, r1 = 0;
			if (b->n_cut)
				engine_band_rows(b, band, 0, &r0, &r1);
			if ((rc = on_band(ud, band, r0, r1))) {
				b->next = 0;
				return rc;
			}
		}
	}
	return 0;
}

/* Output rows [0, o) of bn a wavefront reaches from input j's rows [0, avail)
 * (the largest o whose window ends within them; closed form). */
static int64_t reach_rows(const struct band_node *bn, int j, const struct eng_tensor *x, int64_t avail)
{
	int64_t h = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1, o;
	if (avail >= h)
		return bn->oh;
	switch (bn->mode[j]) {
	case IN_ALIGNED:
		return avail < bn->oh ? avail : bn->oh;
	case IN_WINDOW: {
		/* window_end(o) = (o-1)s - pt + (k-1)d + 1 <= avail */
		int64_t num = avail - 1 + bn->pt - (bn->k - 1) * bn->d;
		o = num < 0 ? -((-num + bn->s - 1) / bn->s) + 1 : num / bn->s + 1;
		return o < 0 ? 0 : o > bn->oh ? bn->oh : o;
	}
	default:
		return 0;
	}
}

double engine_band_wave_frac(const struct engine *e, int first, int last, double q)
{
	struct band_node bn;
	int64_t *rows;
	double done = 0, total = 0;

	if (first < 0 || last > e->nn || first >= last || !(q >= 0))
		return -1;
	if (q >= 1)
		return 1;
	if (!(rows = calloc((size_t)(last - first), sizeof(*rows))))
		return -1;
	for (int i = first; i < last; i++) {
		const struct eng_node *n = &e->n[i];
		if (classify(e, i, &bn, NULL, 0)) {
			free(rows);
			return -1;
		}
		int64_t o = bn.oh;
		for (int j = 0; j < n->n_in && o > 0; j++) {
			if (n->in[j] < 0 || !is_activation(&e->t[n->in[j]]))
				continue;
			const struct eng_tensor *x = &e->t[n->in[j]];
			int64_t h = x->ndim >= 2 ? x->shape[x->ndim - 2] : 1;
			int64_t avail = x->producer >= first && x->producer < last ? rows[x->producer - first]
				      : in_cut(x, first) ? (int64_t)(q * (double)h + 1e-9) : INT64_MAX;
			int64_t oj = reach_rows(&bn, j, x, avail);
			if (oj < o)
				o = oj;
		}
		rows[i - first] = o;
		total += (double)n->macs;
		if (bn.oh)
			done += (double)n->macs * (double)o / (double)bn.oh;
	}
	free(rows);
	return total > 0 ? done / total : q;
}

int engine_band_wave_table(const struct engine *e, int steps, double *out)
{
	if (steps < 1 || !out)
		return -EINVAL;
	for (int k = 0; k <= e->nn; k++) {
		double *row = out + (size_t)k * (size_t)(steps + 1);
		int to = k < e->nn ? engine_band_reach(e, k) : k;
		for (int i = 0; i <= steps; i++) {
			double f = to > k ? engine_band_wave_frac(e, k, to, (double)i / steps) : -1;
			row[i] = f >= 0 ? f : i == steps;
		}
	}
	return 0;
}

/* ---- wavefront driven by arriving input rows ------------------------------ */

int engine_band_feed(struct engine_band *b, const char *name, int64_t rows)
{
	int ti = eng_tensor_find(b->e, name);
	if (ti < 0 || !b->t[ti].is_input)
		return -ENOENT;
	const struct eng_tensor *t = &b->e->t[ti];
	int64_t h = t->ndim >= 2 ? t->shape[t->ndim - 2] : 1;
	if (rows < b->t[ti].fed || rows > h)
		return -EINVAL;
	b->t[ti].fed = rows;
	return 0;
}

int engine_band_advance(struct engine_band *b)
{
	const struct engine *e = b->e;
	int nn = b->last - b->first, complete = 1, rc;
	int64_t t0 = now_ns(), macs0 = b->st.macs;

	for (int i = 0; i < nn; i++) {
		struct band_node *bn = &b->nodes[i];
		const struct eng_node *n = &e->n[bn->node];
		int64_t o = bn->oh;
		for (int j = 0; j < n->n_in && o > bn->done; j++) {
			if (n->in[j] < 0 || !is_activation(&e->t[n->in[j]]))
				continue;
			const struct eng_tensor *x = &e->t[n->in[j]];
			const struct band_tensor *bt = &b->t[n->in[j]];
			int64_t avail = bt->in_range ? b->nodes[x->producer - b->first].done
				      : bt->is_input ? bt->fed : INT64_MAX;
			int64_t oj = reach_rows(bn, j, x, avail);
			if (oj < bn->done)	/* rows fed never shrink */
				oj = bn->done;
			if (oj < o)
				o = oj;
		}
		if (o > bn->done && (rc = run_rows(b, bn, bn->done, o)))
			return rc;
		complete &= bn->done == bn->oh;
	}
	if (e->be->synchronize && (rc = e->be->synchronize(b->bctx)))
		return rc;
	int64_t t1 = now_ns();
	if (b->advances < b->bands) {
		b->tl[b->advances].start_ns = t0;
		b->tl[b->advances].end_ns = t1;
		b->tl[b->advances].macs = b->st.macs - macs0;
	}
	b->advances++;
	b->st.end_ns = t1;
	if (!complete)
		return 0;
	return (rc = finish_run(b)) ? rc : 1;
}

int engine_band_count(const struct engine_band *b)
{
	return b->bands;
}

int engine_band_rows(const struct engine_band *b, int band, int j, int *row0, int *row1)
{
	int64_t r0, r1;
	if (band < 0 || band >= b->bands || j < 0 || j >= b->n_cut)
		return -EINVAL;
	band_rows(b->e->t[b->cut[j]].shape[2], band, b->bands, &r0, &r1);
	*row0 = (int)r0;
	*row1 = (int)r1;
	return 0;
}

int engine_band_cut_view(const struct engine_band *b, int j, struct tensor_view *out)
{
	if (j < 0 || j >= b->n_cut)
		return -EINVAL;
	*out = eng_view(&b->e->t[b->cut[j]], b->t[b->cut[j]].data);
	return 0;
}

int engine_band_stats(const struct engine_band *b, struct engine_band_stats *out)
{
	*out = b->st;
	return 0;
}

int engine_band_time(const struct engine_band *b, int band, struct engine_band_time *out)
{
	if (band < 0 || band >= b->bands)
		return -EINVAL;
	*out = b->tl[band];
	return 0;
}
