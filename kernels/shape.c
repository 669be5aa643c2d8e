/* Shape inference: static output shapes of every node, and the parameters
 * that ONNX passes as constant inputs (Reshape shape, Slice starts, Resize
 * scales, Pad pads, ...) folded into the node's params. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "engine-impl.h"

#define ERR(...) (eng_err(err, errlen, __VA_ARGS__), -EINVAL)
#define NERR(fmt, ...) ERR("node '%s' (%s, opset %d): " fmt, n->name, n->op, n->opset, ##__VA_ARGS__)

static const struct eng_tensor *tin(const struct engine *e, const struct eng_node *n, int i)
{
	return i < n->n_in && n->in[i] >= 0 ? &e->t[n->in[i]] : NULL;
}

/* Reads a constant integer tensor (I64 or I32) of at most max elements. */
static int const_ints(const struct eng_tensor *t, int64_t *out, int max)
{
	if (!t || !t->is_const || t->ndim > 1)
		return -1;
	int64_t cnt = t->ndim ? t->shape[0] : 1;
	if (cnt > max)
		return -2;
	for (int64_t i = 0; i < cnt; i++)
		if (t->dtype == TENSOR_I64)
			out[i] = ((const int64_t *)t->data)[i];
		else if (t->dtype == TENSOR_I32)
			out[i] = ((const int32_t *)t->data)[i];
		else
			return -1;
	return (int)cnt;
}

static int const_floats(const struct eng_tensor *t, float *out, int max)
{
	if (!t || !t->is_const || t->ndim > 1 || t->dtype != TENSOR_F32)
		return -1;
	int64_t cnt = t->ndim ? t->shape[0] : 1;
	if (cnt > max)
		return -2;
	memcpy(out, t->data, cnt * sizeof(float));
	return (int)cnt;
}

static int norm_axis(int64_t *axis, int rank)
{
	if (*axis < -rank || *axis >= rank)
		return -1;
	if (*axis < 0)
		*axis += rank;
	return 0;
}

static int set_out(struct engine *e, struct eng_node *n, int j, enum tensor_dtype dt, int ndim,
		   const int64_t *shape, char *err, size_t errlen)
{
	int64_t numel = 1;
	if (j >= n->n_out || n->out[j] < 0)
		return 0;
	if (ndim > TENSOR_MAX_DIMS)
		return NERR("output has %d dimensions (at most %d)", ndim, TENSOR_MAX_DIMS);
	for (int i = 0; i < ndim; i++) {
		if (shape[i] < 0)
			return NERR("negative output dimension %lld", (long long)shape[i]);
		if (shape[i] && numel > ENG_MAX_TENSOR_BYTES / 8 / shape[i])
			return NERR("output is absurdly large");
		numel *= shape[i];
	}
	if (numel * 8 > ENG_MAX_TENSOR_BYTES / 4)
		return NERR("output is absurdly large");
	eng_tensor_set_shape(&e->t[n->out[j]], dt, ndim, shape);
	return 0;
}

static int broadcast(const struct eng_tensor *a, const struct eng_tensor *b, int *ndim,
		     int64_t *shape)
{
	int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
	for (int i = 0; i < nd; i++) {
		int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
		int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
		if (da != db && da != 1 && db != 1)
			return -1;
		shape[i] = da == 1 ? db : da;
	}
	*ndim = nd;
	return 0;
}

/* Pads for SAME_* auto padding; also validates the output size. */
static int conv_dim(int64_t in, int64_t k, int64_t s, int64_t d, enum auto_pad ap,
		    int64_t *pb, int64_t *pe, int ceil_mode, int64_t *out)
{
	int64_t ek = (k - 1) * d + 1;
	if (ap == PAD_VALID) {
		*pb = *pe = 0;
	} else if (ap == PAD_SAME_UPPER || ap == PAD_SAME_LOWER) {
		int64_t o = (in + s - 1) / s;
		int64_t tot = (o - 1) * s + ek - in;
		if (tot < 0)
			tot = 0;
		*pb = ap == PAD_SAME_UPPER ? tot / 2 : tot - tot / 2;
		*pe = tot - *pb;
		*out = o;
		return o >= 1 ? 0 : -1;
	}
	int64_t span = in + *pb + *pe - ek;
	if (span < 0)
		return -1;
	int64_t o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
	if (ceil_mode && (o - 1) * s >= in + *pb)
		o--;
	*out = o;
	return o >= 1 ? 0 : -1;
}

static int infer_conv(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	struct conv_params *c = &n->p.conv;
	const struct eng_tensor *x = tin(e, n, 0), *w = tin(e, n, 1), *b = tin(e, n, 2);
	int tr = n->kind == OP_CONV_TRANSPOSE;
	int64_t out[TENSOR_MAX_DIMS];

	if (!x || !w)
		return NERR("needs X and W");
	if (x->ndim != 3 && x->ndim != 4)
		return NERR("only 1-D and 2-D convolutions are supported (input rank %d)", x->ndim);
	if (w->ndim != x->ndim)
		return NERR("weight rank %d does not match input rank %d", w->ndim, x->ndim);
	if (x->dtype != TENSOR_F32 || w->dtype != TENSOR_F32)
		return NERR("only float32 is supported");
	int sp = x->ndim - 2;
	if (c->spatial && c->spatial != sp)
		return NERR("kernel_shape has %d dims for a %d-D input", c->spatial, sp);
	c->spatial = sp;
	int64_t kh = sp == 2 ? w->shape[2] : 1, kw = w->shape[sp + 1];
	if ((c->kernel[0] && c->kernel[0] != kh) || (c->kernel[1] && c->kernel[1] != kw))
		return NERR("kernel_shape does not match the weight");
	c->kernel[0] = kh, c->kernel[1] = kw;
	int64_t C = x->shape[1], M;
	if (!tr) {
		M = w->shape[0];
		if (w->shape[1] * c->group != C || M % c->group)
			return NERR("weight [%lld, %lld, ...] with group %lld does not fit %lld input channels",
				    (long long)w->shape[0], (long long)w->shape[1], (long long)c->group,
				    (long long)C);
	} else {
		M = w->shape[1] * c->group;
		if (w->shape[0] != C || C % c->group)
			return NERR("weight does not fit %lld input channels", (long long)C);
	}
	if (b && (b->ndim != 1 || b->shape[0] != M || b->dtype != TENSOR_F32))
		return NERR("bias must be float32 [%lld]", (long long)M);
	out[0] = x->shape[0];
	out[1] = M;
	int64_t in_hw[2] = { sp == 2 ? x->shape[2] : 1, x->shape[sp + 1] };
	for (int i = 0; i < 2; i++) {
		int64_t *pb = &c->pads[i], *pe = &c->pads[i + 2], o;
		if (i == 0 && sp == 1) {
			*pb = *pe = 0;
			c->stride[0] = c->dil[0] = 1;
			o = 1;
		} else if (!tr) {
			if (conv_dim(in_hw[i], c->kernel[i], c->stride[i], c->dil[i], c->auto_pad, pb,
				     pe, 0, &o))
				return NERR("kernel larger than the padded input");
		} else {
			int64_t ek = (c->kernel[i] - 1) * c->dil[i] + 1;
			int64_t full = c->stride[i] * (in_hw[i] - 1) + c->out_pad[i] + ek;
			if (c->out_shape[i] > 0) {
				int64_t tot = full - c->out_shape[i];	/* < 0: extra rows of bias */
				if (c->auto_pad == PAD_SAME_LOWER)
					*pb = tot - tot / 2, *pe = tot / 2;
				else
					*pb = tot / 2, *pe = tot - tot / 2;
			} else if (c->auto_pad == PAD_SAME_UPPER || c->auto_pad == PAD_SAME_LOWER) {
				int64_t tot = full - in_hw[i] * c->stride[i];
				if (tot < 0)
					tot = 0;
				if (c->auto_pad == PAD_SAME_UPPER)
					*pb = tot / 2, *pe = tot - tot / 2;
				else
					*pb = tot - tot / 2, *pe = tot / 2;
			} else if (c->auto_pad == PAD_VALID) {
				*pb = *pe = 0;
			}
			o = full - *pb - *pe;
			if (o < 1)
				return NERR("output would be empty");
		}
		if (sp == 2 || i == 1)
			out[2 + (sp == 2 ? i : 0)] = o;
	}
	n->macs = 0;
	int rc = set_out(e, n, 0, TENSOR_F32, x->ndim, out, err, errlen);
	if (rc)
		return rc;
	const struct eng_tensor *y = &e->t[n->out[0]];
	int64_t ospat = 1;
	for (int i = 2; i < y->ndim; i++)
		ospat *= y->shape[i];
	int64_t ispat = 1;
	for (int i = 2; i < x->ndim; i++)
		ispat *= x->shape[i];
	if (!tr)
		n->macs = y->shape[0] * M * ospat * (C / c->group) * kh * kw;
	else
		n->macs = x->shape[0] * C * ispat * (M / c->group) * kh * kw;
	n->sp.kernel_h = kh, n->sp.stride_h = c->stride[0], n->sp.dil_h = c->dil[0];
	n->sp.pad_top = c->pads[0], n->sp.pad_bottom = c->pads[2];
	n->band_ok = !tr && sp == 2;
	return 0;
}

static int infer_pool(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	struct pool_params *p = &n->p.pool;
	const struct eng_tensor *x = tin(e, n, 0);
	int64_t out[4];

	if (x->ndim != 3 && x->ndim != 4)
		return NERR("only 1-D and 2-D pooling is supported");
	if (x->dtype != TENSOR_F32)
		return NERR("only float32 is supported");
	int sp = x->ndim - 2;
	if (p->spatial != sp)
		return NERR("kernel_shape has %d dims for a %d-D input", p->spatial, sp);
	out[0] = x->shape[0], out[1] = x->shape[1];
	if (sp == 1) {
		p->pads[0] = p->pads[2] = 0;
		p->stride[0] = p->dil[0] = p->kernel[0] = 1;
	}
	for (int i = 2 - sp; i < 2; i++) {
		int64_t o;
		if (conv_dim(x->shape[2 + i - (2 - sp)], p->kernel[i], p->stride[i], p->dil[i],
			     p->auto_pad, &p->pads[i], &p->pads[i + 2], p->ceil_mode, &o))
			return NERR("kernel larger than the padded input");
		out[2 + i - (2 - sp)] = o;
	}
	n->sp.kernel_h = p->kernel[0], n->sp.stride_h = p->stride[0], n->sp.dil_h = p->dil[0];
	n->sp.pad_top = p->pads[0], n->sp.pad_bottom = p->pads[2];
	n->band_ok = sp == 2 && !p->ceil_mode;
	return set_out(e, n, 0, TENSOR_F32, x->ndim, out, err, errlen);
}

static int infer_reshape(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	const struct eng_tensor *x = tin(e, n, 0);
	struct axes_params *a = &n->p.axes;
	int64_t out[TENSOR_MAX_DIMS], v[TENSOR_MAX_DIMS];
	int nd = 0, k;
	int64_t numel = 1;

	for (int i = 0; i < x->ndim; i++)
		numel *= x->shape[i];
	if (!strcmp(n->op, "Flatten")) {
		int64_t ax = a->axis, p = 1;
		if (ax < 0)
			ax += x->ndim;
		if (ax < 0 || ax > x->ndim)
			return NERR("axis out of range");
		for (int i = 0; i < ax; i++)
			p *= x->shape[i];
		out[0] = p;
		out[1] = p ? numel / p : 0;
		nd = 2;
	} else if (!strcmp(n->op, "Reshape")) {
		int allowzero = n->p.reshape.allowzero;
		k = const_ints(tin(e, n, 1), v, TENSOR_MAX_DIMS);
		if (k < 0)
			return NERR("the shape input must be a constant of at most %d values", TENSOR_MAX_DIMS);
		int neg = -1;
		int64_t p = 1;
		for (int i = 0; i < k; i++) {
			if (v[i] == 0 && !allowzero) {
				if (i >= x->ndim)
					return NERR("shape copies dimension %d the input lacks", i);
				out[i] = x->shape[i];
			} else if (v[i] == -1) {
				if (neg >= 0)
					return NERR("shape has more than one -1");
				neg = i;
				out[i] = 1;
			} else if (v[i] < 0) {
				return NERR("bad shape value %lld", (long long)v[i]);
			} else {
				out[i] = v[i];
			}
			if (out[i] && p > ENG_MAX_TENSOR_BYTES / out[i])
				return NERR("shape is absurdly large");
			p *= out[i];
		}
		if (neg >= 0) {
			if (!p || numel % p)
				return NERR("cannot infer -1 in the shape");
			out[neg] = numel / p;
			p = numel;
		}
		if (p != numel)
			return NERR("cannot reshape %lld elements into %lld", (long long)numel, (long long)p);
		nd = k;
	} else {
		int sq = !strcmp(n->op, "Squeeze");
		int na = a->naxes;
		int64_t ax[TENSOR_MAX_DIMS];
		memcpy(ax, a->axes, sizeof(ax));
		if (na < 0 && tin(e, n, 1)) {
			na = const_ints(tin(e, n, 1), ax, TENSOR_MAX_DIMS);
			if (na < 0)
				return NERR("axes must be a constant");
		}
		int orank = sq ? x->ndim : x->ndim + (na > 0 ? na : 0);
		int mark[TENSOR_MAX_DIMS * 2] = { 0 };
		if (!sq && na <= 0)
			return NERR("axes are required");
		if (orank > TENSOR_MAX_DIMS)
			return NERR("too many dimensions");
		for (int i = 0; i < (na > 0 ? na : 0); i++) {
			if (norm_axis(&ax[i], orank) || mark[ax[i]])
				return NERR("bad axis %lld", (long long)a->axes[i]);
			mark[ax[i]] = 1;
		}
		if (sq) {
			for (int i = 0; i < x->ndim; i++) {
				if ((na > 0 && mark[i]) || (na <= 0 && x->shape[i] == 1)) {
					if (x->shape[i] != 1)
						return NERR("cannot squeeze dimension %d of size %lld", i,
							    (long long)x->shape[i]);
					continue;
				}
				out[nd++] = x->shape[i];
			}
		} else {
			int j = 0;
			for (int i = 0; i < orank; i++)
				out[nd++] = mark[i] ? 1 : x->shape[j++];
		}
	}
	return set_out(e, n, 0, x->dtype, nd, out, err, errlen);
}

static int infer_slice(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	const struct eng_tensor *x = tin(e, n, 0);
	int64_t st[TENSOR_MAX_DIMS], en[TENSOR_MAX_DIMS], ax[TENSOR_MAX_DIMS], sp[TENSOR_MAX_DIMS];
	int64_t out[TENSOR_MAX_DIMS];
	int k = const_ints(tin(e, n, 1), st, TENSOR_MAX_DIMS);
	int k2 = const_ints(tin(e, n, 2), en, TENSOR_MAX_DIMS);
	int k3 = tin(e, n, 3) ? const_ints(tin(e, n, 3), ax, TENSOR_MAX_DIMS) : k;
	int k4 = tin(e, n, 4) ? const_ints(tin(e, n, 4), sp, TENSOR_MAX_DIMS) : k;

	if (k < 0 || k2 != k || k3 != k || k4 != k)
		return NERR("starts, ends, axes and steps must be constants of equal length");
	if (!tin(e, n, 3))
		for (int i = 0; i < k; i++)
			ax[i] = i;
	if (!tin(e, n, 4))
		for (int i = 0; i < k; i++)
			sp[i] = 1;
	for (int i = 0; i < x->ndim; i++) {
		n->p.slice.starts[i] = 0;
		n->p.slice.steps[i] = 1;
		out[i] = x->shape[i];
	}
	int seen[TENSOR_MAX_DIMS] = { 0 };
	for (int i = 0; i < k; i++) {
		int64_t a = ax[i], d, s, e2, step = sp[i];
		if (norm_axis(&a, x->ndim) || seen[a])
			return NERR("bad axis %lld", (long long)ax[i]);
		seen[a] = 1;
		if (!step)
			return NERR("step 0");
		d = x->shape[a];
		s = st[i], e2 = en[i];
		if (s < 0) s += d;
		if (e2 < 0) e2 += d;
		if (step > 0) {
			s = s < 0 ? 0 : s > d ? d : s;
			e2 = e2 < 0 ? 0 : e2 > d ? d : e2;
			out[a] = e2 > s ? (e2 - s + step - 1) / step : 0;
		} else {
			s = s < 0 ? -1 : s > d - 1 ? d - 1 : s;
			e2 = e2 < -1 ? -1 : e2 > d - 1 ? d - 1 : e2;
			out[a] = s > e2 ? (s - e2 + (-step) - 1) / (-step) : 0;
		}
		n->p.slice.starts[a] = s;
		n->p.slice.steps[a] = step;
	}
	n->band_ok = x->ndim == 4 && out[2] == x->shape[2];
	return set_out(e, n, 0, x->dtype, x->ndim, out, err, errlen);
}

static int infer_resize(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	struct resize_params *r = &n->p.resize;
	const struct eng_tensor *x = tin(e, n, 0), *sc, *sz;
	int64_t out[TENSOR_MAX_DIMS], sizes[TENSOR_MAX_DIMS];
	float scales[TENSOR_MAX_DIMS];
	int k;

	if (x->dtype != TENSOR_F32)
		return NERR("only float32 is supported");
	if (r->upsample || n->opset < 11) {
		sc = tin(e, n, 1);
		sz = NULL;
	} else {
		sc = tin(e, n, 2);
		sz = tin(e, n, 3);
	}
	if (sc && sc->ndim == 1 && sc->shape[0] == 0)
		sc = NULL;
	if (sz && sz->ndim == 1 && sz->shape[0] == 0)
		sz = NULL;
	if (sz) {
		k = const_ints(sz, sizes, TENSOR_MAX_DIMS);
		if (k != x->ndim)
			return NERR("sizes must be a constant of rank length");
		for (int i = 0; i < k; i++) {
			if (sizes[i] < 0 || sizes[i] > (int64_t)1 << 24)
				return NERR("bad size %lld", (long long)sizes[i]);
			out[i] = sizes[i];
			r->scales[i] = x->shape[i] ? (float)sizes[i] / (float)x->shape[i] : 1.f;
		}
	} else if (sc) {
		k = const_floats(sc, scales, TENSOR_MAX_DIMS);
		if (k != x->ndim)
			return NERR("scales must be a float constant of rank length");
		for (int i = 0; i < k; i++) {
			if (!(scales[i] > 0.f) || scales[i] > 1e4f)
				return NERR("bad scale %g", (double)scales[i]);
			r->scales[i] = scales[i];
			out[i] = (int64_t)floor((double)x->shape[i] * scales[i]);
		}
	} else {
		return NERR("needs scales or sizes");
	}
	if (r->mode == RESIZE_CUBIC && x->ndim != 4)
		return NERR("cubic mode needs a 4-D input");
	for (int i = 0; i < x->ndim; i++)
		if (r->mode != RESIZE_NEAREST && i < x->ndim - 2 && out[i] != x->shape[i])
			return NERR("linear/cubic resize only of the last two axes");
	n->band_ok = 0;
	return set_out(e, n, 0, TENSOR_F32, x->ndim, out, err, errlen);
}

static int infer_matmul(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	const struct eng_tensor *a = tin(e, n, 0), *b = tin(e, n, 1);
	int64_t out[TENSOR_MAX_DIMS];
	struct eng_tensor ba = { 0 }, bb = { 0 };
	int nd;

	if (!a || !b || a->dtype != TENSOR_F32 || b->dtype != TENSOR_F32 || !a->ndim || !b->ndim)
		return NERR("needs two float32 tensors of rank >= 1");
	int64_t M = a->ndim == 1 ? 1 : a->shape[a->ndim - 2];
	int64_t K = a->shape[a->ndim - 1];
	int64_t K2 = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
	int64_t N = b->ndim == 1 ? 1 : b->shape[b->ndim - 1];
	if (K != K2)
		return NERR("inner dimensions %lld and %lld differ", (long long)K, (long long)K2);
	ba.ndim = a->ndim > 2 ? a->ndim - 2 : 0;
	bb.ndim = b->ndim > 2 ? b->ndim - 2 : 0;
	memcpy(ba.shape, a->shape, sizeof(int64_t) * ba.ndim);
	memcpy(bb.shape, b->shape, sizeof(int64_t) * bb.ndim);
	if (broadcast(&ba, &bb, &nd, out))
		return NERR("batch dimensions do not broadcast");
	int64_t batch = 1;
	for (int i = 0; i < nd; i++)
		batch *= out[i];
	if (a->ndim > 1)
		out[nd++] = M;
	if (b->ndim > 1)
		out[nd++] = N;
	n->macs = batch * M * N * K;
	return set_out(e, n, 0, TENSOR_F32, nd, out, err, errlen);
}

static int is_float(enum tensor_dtype t)
{
	return t == TENSOR_F32 || t == TENSOR_F64 || t == TENSOR_F16;
}

/* comparisons, And/Or/Xor/Not, Where, Mod: numpy broadcasting of every input */
static int infer_logic(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	const struct eng_tensor *x = tin(e, n, 0);
	int nin = n->kind == OP_NOT ? 1 : n->kind == OP_WHERE ? 3 : 2, nd = x->ndim;
	int64_t out[TENSOR_MAX_DIMS];
	enum tensor_dtype yt = TENSOR_BOOL;
	struct eng_tensor acc = *x;

	for (int i = 1; i < nin; i++) {
		const struct eng_tensor *t = tin(e, n, i);
		if (!t)
			return NERR("needs %d inputs", nin);
		if (broadcast(&acc, t, &nd, out))
			return NERR("shapes of the inputs do not broadcast ('%s')", t->name);
		acc.ndim = nd;
		memcpy(acc.shape, out, sizeof(out));
	}
	switch (n->kind) {
	case OP_AND: case OP_OR: case OP_XOR: case OP_NOT:
		for (int i = 0; i < nin; i++)
			if (tin(e, n, i)->dtype != TENSOR_BOOL)
				return NERR("inputs must be bool");
		break;
	case OP_WHERE:
		if (x->dtype != TENSOR_BOOL)
			return NERR("condition must be bool");
		if (tin(e, n, 1)->dtype != tin(e, n, 2)->dtype || !tensor_dtype_size(tin(e, n, 1)->dtype))
			return NERR("X and Y must have one supported type");
		yt = tin(e, n, 1)->dtype;
		break;
	case OP_MOD:
		if (tin(e, n, 1)->dtype != x->dtype)
			return NERR("input types differ");
		if (x->dtype == TENSOR_BOOL || x->dtype == TENSOR_F16)
			return NERR("type %d is not supported", x->dtype);
		if (is_float(x->dtype) && !n->p.mod.fmod)
			return NERR("fmod must be 1 for floating-point inputs");
		yt = x->dtype;
		break;
	default:	/* comparisons */
		if (tin(e, n, 1)->dtype != x->dtype)
			return NERR("input types differ");
		if (x->dtype == TENSOR_F16)
			return NERR("float16 comparisons are not supported");
		break;
	}
	/* row-local like the arithmetic binary ops: every 4-D input is
	 * row-aligned with the output or broadcasts along H */
	n->band_ok = nd == 4;
	for (int i = 0; i < nin; i++) {
		const struct eng_tensor *t = tin(e, n, i);
		if (nd == 4 && t->ndim >= 2 && t->shape[t->ndim - 2] != 1 &&
		    t->shape[t->ndim - 2] != acc.shape[2])
			n->band_ok = 0;
	}
	return set_out(e, n, 0, yt, nd, acc.shape, err, errlen);
}

/* Range: the length depends on the values, so start, limit and delta must
 * be constants (they are, once the shape arithmetic before them folds) */
static int infer_range(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	const struct eng_tensor *t[3];
	double v[3];
	int64_t cnt;

	for (int i = 0; i < 3; i++) {
		t[i] = tin(e, n, i);
		if (!t[i] || !t[i]->is_const || t[i]->bytes != tensor_dtype_size(t[i]->dtype) ||
		    t[i]->ndim > 1)
			return NERR("start, limit and delta must be constant scalars (static shapes)");
		if (t[i]->dtype != t[0]->dtype)
			return NERR("start, limit and delta differ in type");
		switch (t[i]->dtype) {
		case TENSOR_F32: v[i] = *(const float *)t[i]->data; break;
		case TENSOR_F64: v[i] = *(const double *)t[i]->data; break;
		case TENSOR_I32: v[i] = *(const int32_t *)t[i]->data; break;
		case TENSOR_I64: v[i] = (double)*(const int64_t *)t[i]->data; break;
		default: return NERR("type %d is not supported", t[i]->dtype);
		}
	}
	if (v[2] == 0 || !isfinite(v[0]) || !isfinite(v[1]) || !isfinite(v[2]))
		return NERR("delta must be non-zero and every value finite");
	if (t[0]->dtype == TENSOR_I64 || t[0]->dtype == TENSOR_I32) {
		int64_t s = t[0]->dtype == TENSOR_I64 ? *(const int64_t *)t[0]->data : *(const int32_t *)t[0]->data;
		int64_t l = t[0]->dtype == TENSOR_I64 ? *(const int64_t *)t[1]->data : *(const int32_t *)t[1]->data;
		int64_t d = t[0]->dtype == TENSOR_I64 ? *(const int64_t *)t[2]->data : *(const int32_t *)t[2]->data;
		int64_t diff;
		if (__builtin_sub_overflow(l, s, &diff) || d == INT64_MIN)
			return NERR("range too large");
		cnt = d > 0 ? (diff > 0 ? (diff - 1) / d + 1 : 0) : (diff < 0 ? -(diff + 1) / -d + 1 : 0);
	} else {
		double c = ceil((v[1] - v[0]) / v[2]);
		if (c > (double)((int64_t)1 << 32))
			return NERR("range too large");
		cnt = c > 0 ? (int64_t)c : 0;
	}
	return set_out(e, n, 0, t[0]->dtype, 1, &cnt, err, errlen);
}

int eng_infer_node(struct engine *e, struct eng_node *n, char *err, size_t errlen)
{
	const struct eng_tensor *x = tin(e, n, 0);
	int64_t out[TENSOR_MAX_DIMS], v[TENSOR_MAX_DIMS * 2];
	int nd, k;

	for (int i = 0; i < n->n_in; i++)
		if (n->in[i] >= 0 && !e->t[n->in[i]].shape_known)
			return NERR("input '%s' has no known shape", e->t[n->in[i]].name);
	if (!x && n->kind != OP_CONCAT)
		return NERR("missing input");
	n->band_ok = 0;
	n->sp = (struct node_spatial){ 1, 1, 1, 0, 0 };
	switch (n->kind) {
	case OP_CONV:
	case OP_CONV_TRANSPOSE:
		return infer_conv(e, n, err, errlen);
	case OP_BATCHNORM:
		if (x->ndim < 2 || x->dtype != TENSOR_F32)
			return NERR("needs a float32 input of rank >= 2");
		for (int i = 1; i < 5; i++) {
			const struct eng_tensor *p = tin(e, n, i);
			if (!p || p->ndim != 1 || p->shape[0] != x->shape[1] || p->dtype != TENSOR_F32)
				return NERR("scale, B, mean and var must be float32 [%lld]",
					    (long long)x->shape[1]);
		}
		n->band_ok = x->ndim == 4;
		return set_out(e, n, 0, TENSOR_F32, x->ndim, x->shape, err, errlen);
	case OP_CLIP:
		if (n->opset >= 11 && x->dtype != TENSOR_F32) {
			int64_t iv;
			const struct eng_tensor *lo = tin(e, n, 1), *hi = tin(e, n, 2);
			if (x->dtype != TENSOR_I8 && x->dtype != TENSOR_U8 && x->dtype != TENSOR_I32)
				return NERR("unsupported type %d", x->dtype);
			n->p.act.alpha = x->dtype == TENSOR_I8 ? -128.f : x->dtype == TENSOR_U8 ? 0.f : -2147483648.f;
			n->p.act.beta = x->dtype == TENSOR_I8 ? 127.f : x->dtype == TENSOR_U8 ? 255.f : 2147483647.f;
			if (lo && lo->is_const && lo->bytes == tensor_dtype_size(lo->dtype) && lo->dtype == x->dtype) {
				iv = x->dtype == TENSOR_I8 ? *(const int8_t *)lo->data : x->dtype == TENSOR_U8 ?
				     *(const uint8_t *)lo->data : *(const int32_t *)lo->data;
				n->p.act.alpha = (float)iv;
			} else if (lo) {
				return NERR("min must be a constant scalar");
			}
			if (hi && hi->is_const && hi->bytes == tensor_dtype_size(hi->dtype) && hi->dtype == x->dtype) {
				iv = x->dtype == TENSOR_I8 ? *(const int8_t *)hi->data : x->dtype == TENSOR_U8 ?
				     *(const uint8_t *)hi->data : *(const int32_t *)hi->data;
				n->p.act.beta = (float)iv;
			} else if (hi) {
				return NERR("max must be a constant scalar");
			}
			return set_out(e, n, 0, x->dtype, x->ndim, x->shape, err, errlen);
		}
		if (n->opset >= 11) {
			float f;
			const struct eng_tensor *lo = tin(e, n, 1), *hi = tin(e, n, 2);
			if ((lo && const_floats(lo, &f, 1) == 1) || !lo)
				n->p.act.alpha = lo ? f : -INFINITY;
			else
				return NERR("min must be a float32 constant scalar");
			if ((hi && const_floats(hi, &f, 1) == 1) || !hi)
				n->p.act.beta = hi ? f : INFINITY;
			else
				return NERR("max must be a float32 constant scalar");
		}
		/* fall through */
	case OP_RELU: case OP_LEAKY_RELU: case OP_SIGMOID: case OP_HARD_SIGMOID:
	case OP_HARD_SWISH: case OP_SILU: case OP_TANH: case OP_EXP: case OP_SQRT: case OP_NEG:
	case OP_ABS: case OP_ERF: case OP_LOG: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL:
	case OP_GELU:
		if (x->dtype != TENSOR_F32 && !(x->dtype == TENSOR_I64 &&
						(n->kind == OP_NEG || n->kind == OP_ABS || n->kind == OP_RELU)))
			return NERR("only float32 is supported");
		n->band_ok = x->ndim == 4;
		return set_out(e, n, 0, x->dtype, x->ndim, x->shape, err, errlen);
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: {
		const struct eng_tensor *b = tin(e, n, 1);
		if (!b)
			return NERR("needs two inputs");
		if (broadcast(x, b, &nd, out))
			return NERR("shapes of '%s' and '%s' do not broadcast", x->name, b->name);
		if (n->kind != OP_POW && x->dtype != b->dtype)
			return NERR("input types differ");
		if (x->dtype != TENSOR_F32 && x->dtype != TENSOR_I64 && x->dtype != TENSOR_I32 &&
		    x->dtype != TENSOR_U8 && x->dtype != TENSOR_I8)
			return NERR("unsupported type %d", x->dtype);
		if (n->kind == OP_POW && (x->dtype != TENSOR_F32 ||
					  (b->dtype != TENSOR_F32 && b->dtype != TENSOR_I64 &&
					   b->dtype != TENSOR_I32)))
			return NERR("only float32 base is supported");
		n->band_ok = nd == 4 && x->ndim == 4 && b->ndim == 4 &&
			     x->shape[2] == b->shape[2];
		n->band_ok |= nd == 4 && (x->ndim < 2 || b->ndim < 2 ||
			      (x->ndim == 4 && x->shape[2] == 1) || (b->ndim == 4 && b->shape[2] == 1));
		return set_out(e, n, 0, x->dtype, nd, out, err, errlen);
	}
	case OP_MAXPOOL:
	case OP_AVGPOOL:
		return infer_pool(e, n, err, errlen);
	case OP_GLOBAL_AVGPOOL:
	case OP_GLOBAL_MAXPOOL:
		if (x->ndim < 3 || x->dtype != TENSOR_F32)
			return NERR("needs a float32 input of rank >= 3");
		memcpy(out, x->shape, sizeof(out));
		for (int i = 2; i < x->ndim; i++)
			out[i] = 1;
		return set_out(e, n, 0, TENSOR_F32, x->ndim, out, err, errlen);
	case OP_GEMM: {
		const struct eng_tensor *b = tin(e, n, 1), *c = tin(e, n, 2);
		struct gemm_params *g = &n->p.gemm;
		if (!b || x->ndim != 2 || b->ndim != 2 || x->dtype != TENSOR_F32 || b->dtype != TENSOR_F32)
			return NERR("A and B must be 2-D float32");
		int64_t M = g->trans_a ? x->shape[1] : x->shape[0];
		int64_t K = g->trans_a ? x->shape[0] : x->shape[1];
		int64_t K2 = g->trans_b ? b->shape[1] : b->shape[0];
		int64_t N = g->trans_b ? b->shape[0] : b->shape[1];
		if (K != K2)
			return NERR("inner dimensions %lld and %lld differ", (long long)K, (long long)K2);
		out[0] = M, out[1] = N;
		if (c) {
			struct eng_tensor y = { .ndim = 2, .shape = { M, N } };
			int64_t o2[TENSOR_MAX_DIMS];
			if (c->dtype != TENSOR_F32 || broadcast(&y, c, &nd, o2) || nd != 2 ||
			    o2[0] != M || o2[1] != N)
				return NERR("C does not broadcast to [%lld, %lld]", (long long)M, (long long)N);
		}
		n->macs = M * N * K;
		return set_out(e, n, 0, TENSOR_F32, 2, out, err, errlen);
	}
	case OP_MATMUL:
		return infer_matmul(e, n, err, errlen);
	case OP_RESHAPE:
		return infer_reshape(e, n, err, errlen);
	case OP_TRANSPOSE: {
		struct transpose_params *t = &n->p.transpose;
		int seen[TENSOR_MAX_DIMS] = { 0 };
		if (t->nperm < 0) {
			t->nperm = x->ndim;
			for (int i = 0; i < x->ndim; i++)
				t->perm[i] = x->ndim - 1 - i;
		}
		if (t->nperm != x->ndim)
			return NERR("perm has %d entries for rank %d", t->nperm, x->ndim);
		for (int i = 0; i < x->ndim; i++) {
			if (t->perm[i] < 0 || t->perm[i] >= x->ndim || seen[t->perm[i]])
				return NERR("bad perm");
			seen[t->perm[i]] = 1;
			out[i] = x->shape[t->perm[i]];
		}
		return set_out(e, n, 0, x->dtype, x->ndim, out, err, errlen);
	}
	case OP_CONCAT: {
		const struct eng_tensor *f = NULL;
		int64_t ax = n->p.axes.axis, sum = 0;
		for (int i = 0; i < n->n_in; i++) {
			const struct eng_tensor *t = tin(e, n, i);
			if (!t)
				continue;
			if (!f) {
				f = t;
				if (norm_axis(&ax, t->ndim))
					return NERR("axis out of range");
			}
			if (t->ndim != f->ndim || t->dtype != f->dtype)
				return NERR("inputs differ in rank or type");
			for (int d = 0; d < t->ndim; d++)
				if (d != ax && t->shape[d] != f->shape[d])
					return NERR("input '%s' differs in dimension %d", t->name, d);
			sum += t->shape[ax];
		}
		if (!f)
			return NERR("no inputs");
		n->p.axes.axis = ax;
		memcpy(out, f->shape, sizeof(out));
		out[ax] = sum;
		n->band_ok = f->ndim == 4 && ax != 2;
		return set_out(e, n, 0, f->dtype, f->ndim, out, err, errlen);
	}
	case OP_SPLIT: {
		struct split_params *s = &n->p.split;
		int64_t ax = s->axis, sum = 0;
		if (norm_axis(&ax, x->ndim))
			return NERR("axis out of range");
		s->axis = ax;
		if (s->sizes[0] == -1) {
			if (tin(e, n, 1)) {
				k = const_ints(tin(e, n, 1), s->sizes, ENG_MAX_IO);
				if (k != n->n_out)
					return NERR("split must be a constant with one entry per output");
			} else {
				int64_t q = (x->shape[ax] + n->n_out - 1) / n->n_out;
				for (int i = 0; i < n->n_out; i++) {
					int64_t left = x->shape[ax] - (int64_t)i * q;
					s->sizes[i] = left < 0 ? 0 : left < q ? left : q;
				}
			}
		}
		for (int i = 0; i < n->n_out; i++) {
			if (s->sizes[i] < 0)
				return NERR("negative split");
			sum += s->sizes[i];
		}
		if (sum != x->shape[ax])
			return NERR("split sizes add to %lld, the axis is %lld", (long long)sum,
				    (long long)x->shape[ax]);
		for (int i = 0; i < n->n_out; i++) {
			memcpy(out, x->shape, sizeof(out));
			out[ax] = s->sizes[i];
			int rc = set_out(e, n, i, x->dtype, x->ndim, out, err, errlen);
			if (rc)
				return rc;
		}
		n->band_ok = x->ndim == 4 && ax != 2;
		return 0;
	}
	case OP_SLICE:
		return infer_slice(e, n, err, errlen);
	case OP_GATHER: {
		const struct eng_tensor *ix = tin(e, n, 1);
		int64_t ax = n->p.axes.axis;
		if (!ix || (ix->dtype != TENSOR_I64 && ix->dtype != TENSOR_I32))
			return NERR("indices must be int64 or int32");
		if (norm_axis(&ax, x->ndim))
			return NERR("axis out of range");
		n->p.axes.axis = ax;
		nd = 0;
		if (x->ndim - 1 + ix->ndim > TENSOR_MAX_DIMS)
			return NERR("output rank too large");
		for (int i = 0; i < ax; i++)
			out[nd++] = x->shape[i];
		for (int i = 0; i < ix->ndim; i++)
			out[nd++] = ix->shape[i];
		for (int i = (int)ax + 1; i < x->ndim; i++)
			out[nd++] = x->shape[i];
		return set_out(e, n, 0, x->dtype, nd, out, err, errlen);
	}
	case OP_RESIZE:
		return infer_resize(e, n, err, errlen);
	case OP_SOFTMAX: {
		int64_t ax = n->p.softmax.axis;
		if (x->dtype != TENSOR_F32 || norm_axis(&ax, x->ndim))
			return NERR("needs float32 and a valid axis");
		n->p.softmax.axis = ax;
		return set_out(e, n, 0, TENSOR_F32, x->ndim, x->shape, err, errlen);
	}
	case OP_PAD: {
		struct pad_params *p = &n->p.pad;
		float f;
		k = const_ints(tin(e, n, 1), v, 2 * TENSOR_MAX_DIMS);
		if (k != 2 * x->ndim)
			return NERR("pads must be a constant of 2 x rank values");
		if (tin(e, n, 3))
			return NERR("the axes input is not supported");
		if (tin(e, n, 2)) {
			const struct eng_tensor *cv = tin(e, n, 2);
			int64_t iv = 0;
			if (cv->dtype == TENSOR_F32 && cv->is_const && cv->ndim <= 1 &&
			    (cv->ndim == 0 || cv->shape[0] == 1))
				p->value = *(const float *)cv->data;
			else if (const_floats(cv, &f, 1) == 1)
				p->value = f;
			else if (const_ints(cv, &iv, 1) == 1)
				p->value = (double)iv;
			else
				return NERR("constant_value must be a constant scalar");
		}
		for (int i = 0; i < x->ndim; i++) {
			p->pads[i] = v[i];
			p->pads[i + x->ndim] = v[i + x->ndim];
			out[i] = x->shape[i] + v[i] + v[i + x->ndim];
			if (v[i] < -x->shape[i] || v[i] > (1 << 20) || v[i + x->ndim] > (1 << 20) ||
			    out[i] < 0)
				return NERR("bad pads");
			if (p->mode == PADM_REFLECT && (v[i] >= x->shape[i] || v[i + x->ndim] >= x->shape[i]) &&
			    (v[i] > 0 || v[i + x->ndim] > 0))
				return NERR("reflect pads must be smaller than the input");
			if (p->mode != PADM_CONSTANT && x->shape[i] == 0 && out[i])
				return NERR("cannot pad an empty axis with this mode");
		}
		n->band_ok = x->ndim == 4 && v[2] == 0 && v[2 + 4] == 0;
		return set_out(e, n, 0, x->dtype, x->ndim, out, err, errlen);
	}
	case OP_CAST:
		return set_out(e, n, 0, n->p.cast.to, x->ndim, x->shape, err, errlen);
	case OP_IDENTITY:
		if (!strcmp(n->op, "Dropout") && tin(e, n, 2)) {	/* training_mode */
			const struct eng_tensor *tm = tin(e, n, 2);
			if (!tm->is_const || tm->dtype != TENSOR_BOOL || tm->bytes != 1)
				return NERR("training_mode must be a constant bool");
			/* training with ratio 0 (torch's F.dropout(p=0), as torchvision's
			 * Swin attention calls it) keeps every value: an identity */
			float ratio = 0.5f;
			if (*(const uint8_t *)tm->data &&
			    !(tin(e, n, 1) && const_floats(tin(e, n, 1), &ratio, 1) == 1 && ratio == 0.f))
				return NERR("training_mode=true with a non-zero ratio is not supported (inference only)");
		}
		n->band_ok = x->ndim == 4;
		return set_out(e, n, 0, x->dtype, x->ndim, x->shape, err, errlen);
	case OP_REDUCE_MEAN: case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
	case OP_REDUCE_PROD: case OP_REDUCE_L1: case OP_REDUCE_L2: case OP_REDUCE_LOG_SUM:
	case OP_REDUCE_LOG_SUM_EXP: case OP_REDUCE_SUM_SQUARE: {
		struct axes_params *a = &n->p.axes;
		int mark[TENSOR_MAX_DIMS] = { 0 };
		int na = a->naxes;
		int64_t ax[TENSOR_MAX_DIMS];
		/* integer sums, products and extrema (shape arithmetic) are exact */
		int int_ok = n->kind == OP_REDUCE_SUM || n->kind == OP_REDUCE_MAX ||
			     n->kind == OP_REDUCE_MIN || n->kind == OP_REDUCE_PROD;
		if (x->dtype != TENSOR_F32 && !(x->dtype == TENSOR_F64 && n->kind != OP_REDUCE_MEAN) &&
		    !(int_ok && (x->dtype == TENSOR_I64 || x->dtype == TENSOR_I32)))
			return NERR("type %d is not supported (float32%s)", x->dtype,
				    n->kind == OP_REDUCE_MEAN ? "" : int_ok ? ", float64, int32, int64" :
				    ", float64");
		memcpy(ax, a->axes, sizeof(ax));
		if (na < 0 && tin(e, n, 1)) {
			na = const_ints(tin(e, n, 1), ax, TENSOR_MAX_DIMS);
			if (na < 0)
				return NERR("axes must be a constant");
			memcpy(a->axes, ax, sizeof(ax));
			a->naxes = na;
		}
		if (na <= 0 && a->noop_with_empty_axes) {
			a->naxes = 0;
			return set_out(e, n, 0, x->dtype, x->ndim, x->shape, err, errlen);
		}
		nd = 0;
		for (int i = 0; i < (na > 0 ? na : 0); i++) {
			if (norm_axis(&ax[i], x->ndim))
				return NERR("axis out of range");
			mark[ax[i]] = 1;
		}
		for (int i = 0; i < x->ndim; i++) {
			int r = na > 0 ? mark[i] : 1;
			a->axes[i] = r;	/* now a per-axis mask */
			if (r && !a->keepdims)
				continue;
			out[nd++] = r ? 1 : x->shape[i];
		}
		a->naxes = x->ndim;
		/* row-local (band.c) when a 4-D tensor keeps its axes and H is
		 * not reduced: each output row reads its own input row */
		n->band_ok = x->ndim == 4 && a->keepdims && na > 0 && !mark[2];
		return set_out(e, n, 0, x->dtype, nd, out, err, errlen);
	}
	case OP_EQUAL: case OP_LESS: case OP_LESS_EQUAL: case OP_GREATER: case OP_GREATER_EQUAL:
	case OP_AND: case OP_OR: case OP_XOR: case OP_NOT: case OP_WHERE: case OP_MOD:
		return infer_logic(e, n, err, errlen);
	case OP_RANGE:
		return infer_range(e, n, err, errlen);
	case OP_SCATTER_ND: {
		const struct eng_tensor *ix = tin(e, n, 1), *up = tin(e, n, 2);
		if (!ix || !up || ix->dtype != TENSOR_I64 || ix->ndim < 1)
			return NERR("needs data, int64 indices of rank >= 1 and updates");
		int64_t q = ix->ndim, kk = ix->shape[q - 1];
		if (kk < 1 || kk > x->ndim)
			return NERR("indices address %lld axes of a rank-%d tensor", (long long)kk, x->ndim);
		if (up->dtype != x->dtype || up->ndim != q - 1 + x->ndim - kk)
			return NERR("updates must have the data's type and rank %lld",
				    (long long)(q - 1 + x->ndim - kk));
		for (int i = 0; i < up->ndim; i++)
			if (up->shape[i] != (i < q - 1 ? ix->shape[i] : x->shape[kk + i - (q - 1)]))
				return NERR("updates dimension %d does not fit the indices and data", i);
		if (n->p.scatter.reduce != SCATTER_NONE && x->dtype != TENSOR_F32 &&
		    x->dtype != TENSOR_I64 && x->dtype != TENSOR_I32)
			return NERR("reduction of type %d is not supported", x->dtype);
		return set_out(e, n, 0, x->dtype, x->ndim, x->shape, err, errlen);
	}
	case OP_ARGMAX: case OP_ARGMIN: {
		struct arg_params *p = &n->p.arg;
		if (x->dtype != TENSOR_F32 && x->dtype != TENSOR_I64 && x->dtype != TENSOR_I32)
			return NERR("type %d is not supported (float32, int32, int64)", x->dtype);
		if (norm_axis(&p->axis, x->ndim))
			return NERR("axis out of range");
		if (!x->shape[p->axis])
			return NERR("cannot take the index over an empty axis");
		nd = 0;
		for (int i = 0; i < x->ndim; i++)
			if (i != p->axis || p->keepdims)
				out[nd++] = i == p->axis ? 1 : x->shape[i];
		n->band_ok = x->ndim == 4 && p->axis != 2 && p->keepdims;
		return set_out(e, n, 0, TENSOR_I64, nd, out, err, errlen);
	}
	case OP_TILE: {
		k = const_ints(tin(e, n, 1), n->p.tile.repeats, TENSOR_MAX_DIMS);
		if (k != x->ndim)
			return NERR("repeats must be a constant of %d values", x->ndim);
		for (int i = 0; i < x->ndim; i++) {
			if (n->p.tile.repeats[i] < 0 || n->p.tile.repeats[i] > (1 << 20))
				return NERR("bad repeat %lld", (long long)n->p.tile.repeats[i]);
			out[i] = x->shape[i] * n->p.tile.repeats[i];
		}
		return set_out(e, n, 0, x->dtype, x->ndim, out, err, errlen);
	}
	case OP_GATHER_ELEMENTS: {
		const struct eng_tensor *ix = tin(e, n, 1);
		if (!ix || (ix->dtype != TENSOR_I64 && ix->dtype != TENSOR_I32) || ix->ndim != x->ndim)
			return NERR("indices must be int64 or int32 of the data's rank");
		if (norm_axis(&n->p.axes.axis, x->ndim))
			return NERR("axis out of range");
		for (int i = 0; i < x->ndim; i++)
			if (i != n->p.axes.axis && ix->shape[i] > x->shape[i])
				return NERR("indices dimension %d exceeds the data's", i);
		return set_out(e, n, 0, x->dtype, ix->ndim, ix->shape, err, errlen);
	}
	case OP_CUMSUM: {
		int64_t ax = 0;
		if (const_ints(tin(e, n, 1), &ax, 1) != 1)
			return NERR("axis must be a constant scalar");
		if (norm_axis(&ax, x->ndim))
			return NERR("axis out of range");
		if (x->dtype != TENSOR_F32 && x->dtype != TENSOR_F64 && x->dtype != TENSOR_I32 &&
		    x->dtype != TENSOR_I64)
			return NERR("type %d is not supported (float32, float64, int32, int64)", x->dtype);
		n->p.cumsum.axis = ax;
		return set_out(e, n, 0, x->dtype, x->ndim, x->shape, err, errlen);
	}
	case OP_EINSUM: {
		struct einsum_params *p = &n->p.einsum;
		int64_t terms = 1;
		for (int l = 0; l < p->nlab; l++)
			p->dims[l] = -1;
		for (int i = 0; i < p->nin; i++) {
			const struct eng_tensor *t = tin(e, n, i);
			if (!t || t->ndim != p->rank[i])
				return NERR("operand %d has rank %d, the equation %d", i, t ? t->ndim : -1,
					    p->rank[i]);
			if (t->dtype != x->dtype || (t->dtype != TENSOR_F32 && t->dtype != TENSOR_F64))
				return NERR("operands must all be float32 or all float64");
			for (int d = 0; d < t->ndim; d++) {
				int l = p->in[i][d];
				if (p->dims[l] >= 0 && p->dims[l] != t->shape[d])
					return NERR("label %d is %lld in one place, %lld in another", l,
						    (long long)p->dims[l], (long long)t->shape[d]);
				p->dims[l] = t->shape[d];
			}
		}
		for (int l = 0; l < p->nlab; l++) {
			if (p->dims[l] && terms > ENG_MAX_TENSOR_BYTES / p->dims[l])
				return NERR("too many terms");
			terms *= p->dims[l];
		}
		for (int d = 0; d < p->out_rank; d++)
			out[d] = p->dims[p->out[d]];
		n->macs = terms;
		return set_out(e, n, 0, x->dtype, p->out_rank, out, err, errlen);
	}
	case OP_TOPK: {
		struct topk_params *p = &n->p.topk;
		if (x->dtype != TENSOR_F32 && x->dtype != TENSOR_I64 && x->dtype != TENSOR_I32)
			return NERR("type %d is not supported (float32, int32, int64)", x->dtype);
		if (norm_axis(&p->axis, x->ndim))
			return NERR("axis out of range");
		if (n->opset >= 10 && const_ints(tin(e, n, 1), &p->k, 1) != 1)
			return NERR("K must be a constant");
		if (p->k < 0 || p->k > x->shape[p->axis])
			return NERR("K %lld is not within the axis' %lld", (long long)p->k,
				    (long long)x->shape[p->axis]);
		memcpy(out, x->shape, sizeof(out));
		out[p->axis] = p->k;
		int rc = set_out(e, n, 0, x->dtype, x->ndim, out, err, errlen);
		return rc ? rc : set_out(e, n, 1, TENSOR_I64, x->ndim, out, err, errlen);
	}
	case OP_LAYER_NORM: {
		struct layer_norm_params *p = &n->p.ln;
		int64_t inner = 1;
		if (x->dtype != TENSOR_F32)
			return NERR("only float32 is supported");
		if (norm_axis(&p->axis, x->ndim))
			return NERR("axis out of range");
		for (int i = (int)p->axis; i < x->ndim; i++)
			inner *= x->shape[i];
		for (int j = 1; j < 3; j++) {
			const struct eng_tensor *sb = tin(e, n, j);
			int64_t cnt = 1;
			if (!sb) {
				if (j == 1)
					return NERR("Scale is required");
				continue;
			}
			if (sb->dtype != TENSOR_F32)
				return NERR("Scale and B must be float32");
			/* the normalised shape, or a suffix of it after 1s, or one value */
			for (int i = 0; i < sb->ndim; i++)
				cnt *= sb->shape[i];
			int ok = cnt == 1;
			if (!ok && sb->ndim <= x->ndim) {
				ok = 1;
				for (int i = 0; i < sb->ndim; i++) {
					int xi = x->ndim - sb->ndim + i;
					if (sb->shape[i] != (xi >= p->axis ? x->shape[xi] : 1))
						ok = 0;
				}
				ok = ok && cnt == inner;
			}
			if (!ok)
				return NERR("%s '%s' does not match the normalised axes", j == 1 ? "Scale" : "B",
					    sb->name);
		}
		int rc = set_out(e, n, 0, TENSOR_F32, x->ndim, x->shape, err, errlen);
		memcpy(out, x->shape, sizeof(out));
		for (int i = (int)p->axis; i < x->ndim; i++)
			out[i] = 1;
		for (int j = 1; j < 3 && !rc; j++)
			rc = set_out(e, n, j, TENSOR_F32, x->ndim, out, err, errlen);
		/* row-local when it normalises over W only */
		n->band_ok = x->ndim == 4 && p->axis == 3;
		return rc;
	}
	case OP_EXPAND: {
		struct eng_tensor s = { 0 };
		k = const_ints(tin(e, n, 1), s.shape, TENSOR_MAX_DIMS);
		if (k < 0)
			return NERR("shape must be a constant");
		s.ndim = k;
		if (broadcast(x, &s, &nd, out))
			return NERR("shape does not broadcast");
		return set_out(e, n, 0, x->dtype, nd, out, err, errlen);
	}
	case OP_SHAPE: {
		int64_t st = n->p.axes.axes[0], en = n->p.axes.axes[1];
		if (st < 0) st += x->ndim;
		if (en < 0) en += x->ndim;
		st = st < 0 ? 0 : st > x->ndim ? x->ndim : st;
		en = en < 0 ? 0 : en > x->ndim ? x->ndim : en;
		n->p.axes.axes[0] = st, n->p.axes.axes[1] = en;
		out[0] = en > st ? en - st : 0;
		return set_out(e, n, 0, TENSOR_I64, 1, out, err, errlen);
	}
	case OP_CONSTANT_OF_SHAPE: {
		const struct eng_tensor *val = tin(e, n, 1);
		k = const_ints(x, v, TENSOR_MAX_DIMS);
		if (k < 0)
			return NERR("shape must be a constant");
		if (!val || val->bytes != tensor_dtype_size(val->dtype))
			return NERR("value must be a one-element tensor");
		return set_out(e, n, 0, val->dtype, k, v, err, errlen);
	}
	default:
		return NERR("no shape inference for this op");
	}
}
