/* Data movement ops on the CPU, any element type: Reshape/Flatten/Squeeze/
 * Unsqueeze/Identity (copies), Transpose, Concat, Split, Slice, Gather, Pad,
 * Expand, Shape, ConstantOfShape. */
#include <errno.h>

#include "cpu-impl.h"

CPU_KERNEL(cpu_copy)
{
	if (out[0].data != in[0].data)
		memcpy(out[0].data, in[0].data, tensor_bytes(&in[0]));
	return 0;
}

/* Generic strided copy: y (contiguous, shape ys) <- x at base + sum(i_d * xs_d). */
static void strided_copy(char *y, const char *x, int nd, const int64_t *shape,
			 const int64_t *xstride, size_t es)
{
	int64_t idx[TENSOR_MAX_DIMS] = { 0 };
	int64_t total = 1;
	for (int d = 0; d < nd; d++)
		total *= shape[d];
	if (!total)
		return;
	if (nd == 0) {
		memcpy(y, x, es);
		return;
	}
	int64_t row = shape[nd - 1], rs = xstride[nd - 1];
	for (int64_t done = 0; done < total; done += row) {
		int64_t off = 0;
		for (int d = 0; d < nd - 1; d++)
			off += idx[d] * xstride[d];
		const char *src = x + off * (int64_t)es;
		if (rs == 1) {
			memcpy(y, src, row * es);
		} else if (es == 4) {
			for (int64_t i = 0; i < row; i++)
				((uint32_t *)y)[i] = *(const uint32_t *)(src + i * rs * 4);
		} else {
			for (int64_t i = 0; i < row; i++)
				memcpy(y + i * es, src + i * rs * (int64_t)es, es);
		}
		y += row * es;
		for (int d = nd - 2; d >= 0; d--) {
			if (++idx[d] < shape[d])
				break;
			idx[d] = 0;
		}
	}
}

static void strides_of(const struct tensor_view *v, int64_t *st)
{
	int64_t k = 1;
	for (int d = v->ndim - 1; d >= 0; d--) {
		st[d] = k;
		k *= v->shape[d];
	}
}

CPU_KERNEL(cpu_transpose)
{
	const struct tensor_view *x = &in[0];
	int64_t xs[TENSOR_MAX_DIMS], ps[TENSOR_MAX_DIMS];
	strides_of(x, xs);
	for (int d = 0; d < x->ndim; d++)
		ps[d] = xs[n->p.transpose.perm[d]];
	strided_copy(out[0].data, x->data, out[0].ndim, out[0].shape, ps, tensor_dtype_size(x->dtype));
	return 0;
}

CPU_KERNEL(cpu_concat)
{
	const struct tensor_view *y = &out[0];
	int64_t ax = n->p.axes.axis, outer = 1, inner = 1;
	size_t es = tensor_dtype_size(y->dtype);
	for (int d = 0; d < ax; d++)
		outer *= y->shape[d];
	for (int d = (int)ax + 1; d < y->ndim; d++)
		inner *= y->shape[d];
	size_t yrow = (size_t)(y->shape[ax] * inner) * es, off = 0;
	for (int i = 0; i < n->n_in; i++) {
		if (!in[i].data)
			continue;
		size_t row = (size_t)(in[i].shape[ax] * inner) * es;
		for (int64_t o = 0; o < outer; o++)
			memcpy((char *)y->data + o * yrow + off, (const char *)in[i].data + o * row, row);
		off += row;
	}
	return 0;
}

CPU_KERNEL(cpu_split)
{
	const struct tensor_view *x = &in[0];
	int64_t ax = n->p.split.axis, outer = 1, inner = 1;
	size_t es = tensor_dtype_size(x->dtype);
	for (int d = 0; d < ax; d++)
		outer *= x->shape[d];
	for (int d = (int)ax + 1; d < x->ndim; d++)
		inner *= x->shape[d];
	size_t xrow = (size_t)(x->shape[ax] * inner) * es, off = 0;
	for (int i = 0; i < n->n_out; i++) {
		size_t row = (size_t)(n->p.split.sizes[i] * inner) * es;
		if (out[i].data)
			for (int64_t o = 0; o < outer; o++)
				memcpy((char *)out[i].data + o * row, (const char *)x->data + o * xrow + off,
				       row);
		off += row;
	}
	return 0;
}

CPU_KERNEL(cpu_slice)
{
	const struct tensor_view *x = &in[0];
	int64_t xs[TENSOR_MAX_DIMS], st[TENSOR_MAX_DIMS], base = 0;
	strides_of(x, xs);
	for (int d = 0; d < x->ndim; d++) {
		base += n->p.slice.starts[d] * xs[d];
		st[d] = n->p.slice.steps[d] * xs[d];
	}
	if (!view_numel(&out[0]))
		return 0;
	size_t es = tensor_dtype_size(x->dtype);
	strided_copy(out[0].data, (const char *)x->data + base * (int64_t)es, out[0].ndim,
		     out[0].shape, st, es);
	return 0;
}

CPU_KERNEL(cpu_gather)
{
	const struct tensor_view *x = &in[0], *ix = &in[1];
	int64_t ax = n->p.axes.axis, outer = 1, inner = 1, ni = view_numel(ix);
	size_t es = tensor_dtype_size(x->dtype);
	for (int d = 0; d < ax; d++)
		outer *= x->shape[d];
	for (int d = (int)ax + 1; d < x->ndim; d++)
		inner *= x->shape[d];
	int64_t dim = x->shape[ax];
	size_t row = (size_t)inner * es;
	char *y = out[0].data;
	for (int64_t o = 0; o < outer; o++)
		for (int64_t i = 0; i < ni; i++) {
			int64_t k = ix->dtype == TENSOR_I64 ? ((const int64_t *)ix->data)[i] :
				    ((const int32_t *)ix->data)[i];
			if (k < 0)
				k += dim;
			if (k < 0 || k >= dim)
				return -EINVAL;
			memcpy(y, (const char *)x->data + ((o * dim + k) * inner) * (int64_t)es, row);
			y += row;
		}
	return 0;
}

struct pad_job { const struct eng_node *n; const struct tensor_view *x; struct tensor_view *y; };

static int64_t pad_src(enum pad_mode m, int64_t i, int64_t dim)
{
	if (i >= 0 && i < dim)
		return i;
	if (m == PADM_CONSTANT)
		return -1;
	if (m == PADM_EDGE)
		return i < 0 ? 0 : dim - 1;
	if (dim == 1)
		return 0;
	int64_t period = 2 * (dim - 1);	/* reflect without repeating the edge */
	i %= period;
	if (i < 0)
		i += period;
	return i < dim ? i : period - i;
}

static void pad_range(void *arg, int64_t r0, int64_t r1)
{
	struct pad_job *j = arg;
	const struct pad_params *p = &j->n->p.pad;
	const struct tensor_view *x = j->x, *y = j->y;
	int nd = y->ndim;
	size_t es = tensor_dtype_size(x->dtype);
	int64_t xs[TENSOR_MAX_DIMS];
	unsigned char val[8];
	strides_of(x, xs);
	switch (x->dtype) {
	case TENSOR_F32: { float f = (float)p->value; memcpy(val, &f, 4); break; }
	case TENSOR_F64: memcpy(val, &p->value, 8); break;
	case TENSOR_I64: { int64_t v = (int64_t)p->value; memcpy(val, &v, 8); break; }
	case TENSOR_I32: { int32_t v = (int32_t)p->value; memcpy(val, &v, 4); break; }
	default: val[0] = (unsigned char)(int)p->value; break;
	}
	int64_t row = nd ? y->shape[nd - 1] : 1;
	const char *xd = x->data;
	for (int64_t r = r0; r < r1; r++) {
		char *yr = (char *)y->data + r * row * (int64_t)es;
		int64_t rem = r, off = 0, valid = 1;
		for (int d = nd - 2; d >= 0; d--) {
			int64_t i = rem % y->shape[d] - p->pads[d];
			rem /= y->shape[d];
			int64_t s = pad_src(p->mode, i, x->shape[d]);
			if (s < 0)
				valid = 0;
			off += s * xs[d];
		}
		if (nd == 0) {
			memcpy(yr, xd, es);
			continue;
		}
		int64_t W = x->shape[nd - 1], pl = p->pads[nd - 1];
		for (int64_t o = 0; o < row; o++) {
			int64_t s = valid ? pad_src(p->mode, o - pl, W) : -1;
			if (es == 4)
				*(uint32_t *)(yr + o * 4) = s < 0 ? *(const uint32_t *)val :
							   *(const uint32_t *)(xd + (off + s) * 4);
			else
				memcpy(yr + o * (int64_t)es, s < 0 ? (const char *)val : xd + (off + s) * (int64_t)es, es);
		}
	}
}

CPU_KERNEL(cpu_pad)
{
	struct pad_job j = { n, &in[0], &out[0] };
	int64_t rows = 1;
	for (int d = 0; d < out[0].ndim - 1; d++)
		rows *= out[0].shape[d];
	if (!view_numel(&out[0]))
		return 0;
	cpu_parallel(c, rows, pad_range, &j);
	return 0;
}

CPU_KERNEL(cpu_expand)
{
	const struct tensor_view *x = &in[0], *y = &out[0];
	int64_t xs[TENSOR_MAX_DIMS], bs[TENSOR_MAX_DIMS];
	strides_of(x, xs);
	for (int d = 0; d < y->ndim; d++) {
		int ix = d - (y->ndim - x->ndim);
		bs[d] = ix < 0 || x->shape[ix] == 1 ? 0 : xs[ix];
	}
	strided_copy(y->data, x->data, y->ndim, y->shape, bs, tensor_dtype_size(x->dtype));
	return 0;
}

CPU_KERNEL(cpu_shape)
{
	int64_t *y = out[0].data;
	for (int64_t i = n->p.axes.axes[0]; i < n->p.axes.axes[1]; i++)
		*y++ = in[0].shape[i];
	return 0;
}

CPU_KERNEL(cpu_constant_of_shape)
{
	size_t es = tensor_dtype_size(out[0].dtype);
	int64_t cnt = view_numel(&out[0]);
	for (int64_t i = 0; i < cnt; i++)
		memcpy((char *)out[0].data + i * es, in[1].data, es);
	return 0;
}
