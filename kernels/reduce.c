/* Reductions other than ReduceMean (elementwise.c): ReduceSum, Max, Min,
 * Prod, L1, L2, LogSum, LogSumExp, SumSquare over a per-axis mask (shape.c
 * resolves the axes, from the attribute or the opset-13/18 input); ArgMax,
 * ArgMin; LayerNormalization.
 *
 * Every reduction is seen as [outer, red, inner]-free: the axes mask may
 * pick any set of axes, so the input is walked once in order and each
 * element lands in its output slot. Float sums accumulate in double, so
 * the order of the walk does not matter for the result's accuracy. */
#include <errno.h>
#include <float.h>
#include <stdlib.h>

#include "cpu-impl.h"

static int64_t ld_i(const void *p, enum tensor_dtype t, int64_t i)
{
	return t == TENSOR_I64 ? ((const int64_t *)p)[i] : ((const int32_t *)p)[i];
}

/* output offset of every input element: strides over the kept axes */
static void out_strides(const struct tensor_view *x, const int64_t *mask, int64_t *ost,
			int64_t *cnt)
{
	int64_t k = 1;
	*cnt = 1;
	for (int d = x->ndim - 1; d >= 0; d--) {
		if (mask[d]) {
			ost[d] = 0;
			*cnt *= x->shape[d];
		} else {
			ost[d] = k;
			k *= x->shape[d];
		}
	}
}

CPU_KERNEL(cpu_reduce)
{
	const struct tensor_view *x = &in[0];
	const struct axes_params *a = &n->p.axes;
	enum op_kind k = n->kind;
	int64_t ycnt = view_numel(&out[0]), xcnt = view_numel(x), ost[TENSOR_MAX_DIMS], cnt;
	int isint = x->dtype == TENSOR_I64 || x->dtype == TENSOR_I32, f64 = x->dtype == TENSOR_F64;
	int rc = 0;

	if (!a->naxes) {	/* noop_with_empty_axes */
		memcpy(out[0].data, x->data, tensor_bytes(x));
		return 0;
	}
	out_strides(x, a->axes, ost, &cnt);
	double *acc = malloc((ycnt + 1) * sizeof(double));
	int64_t *iacc = malloc((ycnt + 1) * sizeof(int64_t));
	double *mx = NULL;
	if (!acc || !iacc) {
		rc = -ENOMEM;
		goto out;
	}
	for (int64_t i = 0; i < ycnt; i++) {
		switch (k) {
		case OP_REDUCE_MAX: case OP_REDUCE_LOG_SUM_EXP:
			acc[i] = -INFINITY, iacc[i] = INT64_MIN;
			break;
		case OP_REDUCE_MIN:
			acc[i] = INFINITY, iacc[i] = INT64_MAX;
			break;
		case OP_REDUCE_PROD:
			acc[i] = 1, iacc[i] = 1;
			break;
		default:
			acc[i] = 0, iacc[i] = 0;
			break;
		}
	}
	/* LogSumExp: the maximum first, so exp never overflows */
	if (k == OP_REDUCE_LOG_SUM_EXP) {
		mx = acc;
		if (!(acc = calloc(ycnt + 1, sizeof(double)))) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (int pass = k == OP_REDUCE_LOG_SUM_EXP ? 0 : 1; pass < 2; pass++) {
		int64_t idx[TENSOR_MAX_DIMS] = { 0 }, o = 0;
		for (int64_t i = 0; i < xcnt; i++) {
			if (isint) {
				int64_t v = ld_i(x->data, x->dtype, i), *p = &iacc[o];
				switch (k) {
				case OP_REDUCE_SUM: *p = (int64_t)((uint64_t)*p + (uint64_t)v); break;
				case OP_REDUCE_PROD: *p = (int64_t)((uint64_t)*p * (uint64_t)v); break;
				case OP_REDUCE_MAX: *p = v > *p ? v : *p; break;
				case OP_REDUCE_MIN: *p = v < *p ? v : *p; break;
				default: break;
				}
			} else {
				double v = f64 ? ((const double *)x->data)[i] : ((const float *)x->data)[i];
				double *p = &acc[o];
				if (!pass) {	/* LogSumExp's maximum */
					mx[o] = v > mx[o] ? v : mx[o];
				} else {
					switch (k) {
					case OP_REDUCE_SUM: case OP_REDUCE_LOG_SUM: *p += v; break;
					case OP_REDUCE_PROD: *p *= v; break;
					case OP_REDUCE_MAX: *p = v > *p || v != v ? v : *p; break;
					case OP_REDUCE_MIN: *p = v < *p || v != v ? v : *p; break;
					case OP_REDUCE_L1: *p += fabs(v); break;
					case OP_REDUCE_L2: case OP_REDUCE_SUM_SQUARE: *p += v * v; break;
					case OP_REDUCE_LOG_SUM_EXP:
						*p += isinf(mx[o]) ? (v == mx[o]) : exp(v - mx[o]);
						break;
					default: break;
					}
				}
			}
			/* next element: bump the index, track the output offset */
			for (int d = x->ndim - 1; d >= 0; d--) {
				o += ost[d];
				if (++idx[d] < x->shape[d])
					break;
				o -= ost[d] * x->shape[d];
				idx[d] = 0;
			}
		}
	}
	for (int64_t i = 0; i < ycnt; i++) {
		if (isint) {
			if (x->dtype == TENSOR_I64)
				((int64_t *)out[0].data)[i] = iacc[i];
			else
				((int32_t *)out[0].data)[i] = (int32_t)iacc[i];
			continue;
		}
		double v = acc[i];
		switch (k) {
		case OP_REDUCE_L2: v = sqrt(v); break;
		case OP_REDUCE_LOG_SUM: v = log(v); break;
		case OP_REDUCE_LOG_SUM_EXP: v = isinf(mx[i]) ? mx[i] : mx[i] + log(v); break;
		default: break;
		}
		if (f64)
			((double *)out[0].data)[i] = v;
		else
			((float *)out[0].data)[i] = (float)v;
	}
out:
	free(acc);
	free(iacc);
	free(mx);
	return rc;
}

/* ---- ArgMax, ArgMin: the first (or last) index of the extreme ---- */

CPU_KERNEL(cpu_argmax)
{
	const struct tensor_view *x = &in[0];
	const struct arg_params *p = &n->p.arg;
	int64_t outer = 1, inner = 1, len = x->shape[p->axis];
	int mx = n->kind == OP_ARGMAX;
	int64_t *y = out[0].data;

	view_axis_split(x, (int)p->axis, &outer, &inner);
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			int64_t base = o * len * inner + i, best = 0;
			double bv = x->dtype == TENSOR_F32 ? ((const float *)x->data)[base] :
				    (double)ld_i(x->data, x->dtype, base);
			for (int64_t j = 1; j < len; j++) {
				int64_t e = base + j * inner;
				double v;
				if (x->dtype == TENSOR_F32) {
					v = ((const float *)x->data)[e];
				} else {	/* compare as integers: doubles lose int64 bits */
					int64_t iv = ld_i(x->data, x->dtype, e);
					int64_t ib = ld_i(x->data, x->dtype, base + best * inner);
					int better = mx ? iv > ib : iv < ib;
					if (better || (p->last && iv == ib))
						best = j;
					continue;
				}
				int better = mx ? v > bv : v < bv;
				if (better || (p->last && v == bv))
					best = j, bv = v;
			}
			y[o * inner + i] = best;
		}
	return 0;
}

/* ---- LayerNormalization over axes [axis, rank) ---- */

struct ln_job {
	const float *x, *scale, *bias;
	float *y, *mean, *inv;
	int64_t inner, nscale, nbias;
	float eps;
};

/* per row: mean and variance in double (two passes), then one rounding of
 * (x - mean) inv scale + bias */
static void ln_range(void *arg, int64_t r0, int64_t r1)
{
	const struct ln_job *j = arg;
	for (int64_t r = r0; r < r1; r++) {
		const float *x = j->x + r * j->inner;
		float *y = j->y + r * j->inner;
		double s = 0, v = 0;
		for (int64_t i = 0; i < j->inner; i++)
			s += x[i];
		double m = s / (double)j->inner;
		for (int64_t i = 0; i < j->inner; i++)
			v += (x[i] - m) * (x[i] - m);
		double inv = 1 / sqrt(v / (double)j->inner + j->eps);
		for (int64_t i = 0; i < j->inner; i++) {
			double sc = j->scale[j->nscale == 1 ? 0 : i];
			double b = j->bias ? j->bias[j->nbias == 1 ? 0 : i] : 0;
			y[i] = (float)((x[i] - m) * inv * sc + b);
		}
		if (j->mean)
			j->mean[r] = (float)m;
		if (j->inv)
			j->inv[r] = (float)inv;
	}
}

CPU_KERNEL(cpu_layer_norm)
{
	const struct tensor_view *x = &in[0];
	struct ln_job j = { .x = x->data, .scale = in[1].data, .y = out[0].data,
			    .inner = 1, .eps = n->p.ln.eps };
	int64_t rows = 1;

	for (int d = 0; d < x->ndim; d++)
		if (d < n->p.ln.axis)
			rows *= x->shape[d];
		else
			j.inner *= x->shape[d];
	j.nscale = view_numel(&in[1]);
	if (n->n_in > 2 && n->in[2] >= 0) {
		j.bias = in[2].data;
		j.nbias = view_numel(&in[2]);
	}
	if (n->n_out > 1 && n->out[1] >= 0)
		j.mean = out[1].data;
	if (n->n_out > 2 && n->out[2] >= 0)
		j.inv = out[2].data;
	if (!j.inner || !rows)
		return 0;
	cpu_parallel(c, rows, ln_range, &j);
	return 0;
}
