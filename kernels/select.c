/* Tile, GatherElements, CumSum and TopK: shapes resolved by shape.c from
 * constant repeats, axis and K; any dtype where only data moves. */
#include <errno.h>
#include <stdlib.h>

#include "cpu-impl.h"

/* ---- Tile: output index i_d reads input index i_d mod dim_d ---- */

CPU_KERNEL(cpu_tile)
{
	const struct tensor_view *x = &in[0], *y = &out[0];
	size_t es = tensor_dtype_size(x->dtype);
	int64_t cnt = view_numel(y), idx[TENSOR_MAX_DIMS] = { 0 }, xst[TENSOR_MAX_DIMS];

	if (!cnt)
		return 0;
	view_strides(x, xst);
	for (int64_t i = 0; i < cnt; i++) {
		int64_t o = 0;
		for (int d = 0; d < x->ndim; d++)
			o += (idx[d] % x->shape[d]) * xst[d];
		memcpy((char *)y->data + i * es, (const char *)x->data + o * es, es);
		view_index_next(idx, y);
	}
	return 0;
}

/* ---- GatherElements: y[i] = x[i with i_axis replaced by indices[i]] ---- */

CPU_KERNEL(cpu_gather_elements)
{
	const struct tensor_view *x = &in[0], *ix = &in[1], *y = &out[0];
	size_t es = tensor_dtype_size(x->dtype);
	int64_t ax = n->p.axes.axis, cnt = view_numel(y), idx[TENSOR_MAX_DIMS] = { 0 };
	int64_t xst[TENSOR_MAX_DIMS];

	view_strides(x, xst);
	for (int64_t i = 0; i < cnt; i++) {
		int64_t v = ix->dtype == TENSOR_I64 ? ((const int64_t *)ix->data)[i] :
			    ((const int32_t *)ix->data)[i], o = 0;
		if (v < 0)
			v += x->shape[ax];
		if (v < 0 || v >= x->shape[ax])
			return -EINVAL;
		for (int d = 0; d < x->ndim; d++)
			o += (d == ax ? v : idx[d]) * xst[d];
		memcpy((char *)y->data + i * es, (const char *)x->data + o * es, es);
		view_index_next(idx, y);
	}
	return 0;
}

/* ---- CumSum along one axis, inclusive or exclusive, either direction;
 * float sums in double ---- */

CPU_KERNEL(cpu_cumsum)
{
	const struct tensor_view *x = &in[0];
	const struct cumsum_params *p = &n->p.cumsum;
	int64_t outer = 1, inner = 1, len = x->shape[p->axis];
	enum tensor_dtype t = x->dtype;

	view_axis_split(x, (int)p->axis, &outer, &inner);
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			double s = 0;
			int64_t si = 0;
			for (int64_t j0 = 0; j0 < len; j0++) {
				int64_t j = p->reverse ? len - 1 - j0 : j0, e = (o * len + j) * inner + i;
				double v = 0;
				int64_t iv = 0;
				switch (t) {
				case TENSOR_F32: v = ((const float *)x->data)[e]; break;
				case TENSOR_F64: v = ((const double *)x->data)[e]; break;
				case TENSOR_I32: iv = ((const int32_t *)x->data)[e]; break;
				default: iv = ((const int64_t *)x->data)[e]; break;
				}
				if (!p->exclusive)
					s += v, si = (int64_t)((uint64_t)si + (uint64_t)iv);
				switch (t) {
				case TENSOR_F32: ((float *)out[0].data)[e] = (float)s; break;
				case TENSOR_F64: ((double *)out[0].data)[e] = s; break;
				case TENSOR_I32: ((int32_t *)out[0].data)[e] = (int32_t)si; break;
				default: ((int64_t *)out[0].data)[e] = si; break;
				}
				if (p->exclusive)
					s += v, si = (int64_t)((uint64_t)si + (uint64_t)iv);
			}
		}
	return 0;
}

/* ---- TopK: the k largest (smallest) along the axis, sorted, ties by the
 * lower index ---- */

struct topk_item { double v; int64_t iv, idx; };

static int better(const struct topk_item *a, const struct topk_item *b, int largest, int isint)
{
	if (isint ? a->iv != b->iv : a->v != b->v)
		return isint ? (largest ? a->iv > b->iv : a->iv < b->iv) :
			       (largest ? a->v > b->v : a->v < b->v);
	return a->idx < b->idx;
}

CPU_KERNEL(cpu_topk)
{
	const struct tensor_view *x = &in[0];
	const struct topk_params *p = &n->p.topk;
	int64_t outer = 1, inner = 1, len = x->shape[p->axis], k = p->k;
	int isint = x->dtype != TENSOR_F32;
	struct topk_item *it = malloc((len + 1) * sizeof(*it));

	if (!it)
		return -ENOMEM;
	view_axis_split(x, (int)p->axis, &outer, &inner);
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < inner; i++) {
			for (int64_t j = 0; j < len; j++) {
				int64_t e = (o * len + j) * inner + i;
				it[j].idx = j;
				if (x->dtype == TENSOR_F32)
					it[j].v = ((const float *)x->data)[e];
				else
					it[j].iv = x->dtype == TENSOR_I64 ? ((const int64_t *)x->data)[e] :
						   ((const int32_t *)x->data)[e];
			}
			/* selection of the first k by repeated minimum search:
			 * k is small next to len in detection heads */
			for (int64_t q = 0; q < k; q++) {
				int64_t b = q;
				for (int64_t j = q + 1; j < len; j++)
					if (better(&it[j], &it[b], p->largest, isint))
						b = j;
				struct topk_item tmp = it[q];
				it[q] = it[b], it[b] = tmp;
				int64_t e = (o * k + q) * inner + i;
				switch (x->dtype) {
				case TENSOR_F32: ((float *)out[0].data)[e] = (float)it[q].v; break;
				case TENSOR_I64: ((int64_t *)out[0].data)[e] = it[q].iv; break;
				default: ((int32_t *)out[0].data)[e] = (int32_t)it[q].iv; break;
				}
				if (n->n_out > 1 && n->out[1] >= 0)
					((int64_t *)out[1].data)[e] = it[q].idx;
			}
		}
	free(it);
	return 0;
}
