/* MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on the CPU. */
#include <errno.h>
#include <float.h>
#include <stdlib.h>

#include "cpu-impl.h"

struct pool_job {
	const struct eng_node *n;
	const float *x;
	float *y;
	int64_t H, W, OH, OW;
	int64_t sx, sy;		/* plane strides (elements) */
	int is_max;
	_Atomic int failed;	/* a worker could not allocate */
};

static inline float max_nan(float m, float v)	/* NaN wins, as the taps in order give */
{
	return v > m || v != v ? v : m;
}

/* One MaxPool plane, separably: per output row, the column-wise max of
 * its window's valid input rows into a row padded with -inf (rm, `span`
 * floats: input column iw at pl + iw), then each output the max of its
 * kw taps along that row; with stride 2, the row split into its even and
 * odd columns first (ev, od), so every loop is unit-stride and vectorises.
 * NaN anywhere in a window gives NaN, as the definition's order does. */
CPU_CLONES
static void max_plane(const struct pool_job *j, const float *x, float *y, float *rm, int64_t span)
{
	const struct pool_params *p = &j->n->p.pool;
	int64_t kh = p->kernel[0], kw = p->kernel[1], sh = p->stride[0], sw = p->stride[1];
	int64_t dh = p->dil[0], dw = p->dil[1], pt = p->pads[0], pl = p->pads[1];
	int64_t H = j->H, W = j->W, OW = j->OW, half = (span + 1) / 2;
	int64_t n = pl + W < span ? W : span - pl;	/* input columns any window reads */
	float *ev = rm + span, *od = ev + half;

	for (int64_t oh = 0; oh < j->OH; oh++) {
		float *yr = y + oh * OW;
		int first = 1;
		for (int64_t i = 0; i < span; i++)
			rm[i] = -INFINITY;
		for (int64_t ki = 0; ki < kh; ki++) {
			int64_t ih = oh * sh - pt + ki * dh;
			if (ih < 0 || ih >= H || n <= 0)
				continue;
			const float *xr = x + ih * W;
			float *d = rm + pl;
			if (first)
				for (int64_t i = 0; i < n; i++)
					d[i] = xr[i];
			else
				for (int64_t i = 0; i < n; i++)
					d[i] = max_nan(d[i], xr[i]);
			first = 0;
		}
		for (int64_t ow = 0; ow < OW; ow++)
			yr[ow] = -INFINITY;
		if (sw == 2) {
			for (int64_t i = 0; i < half; i++)
				ev[i] = rm[2 * i];
			for (int64_t i = 0; i < span / 2; i++)
				od[i] = rm[2 * i + 1];
			for (int64_t kj = 0; kj < kw; kj++) {
				int64_t t = kj * dw;
				const float *r = (t % 2 ? od : ev) + t / 2;
				for (int64_t ow = 0; ow < OW; ow++)
					yr[ow] = max_nan(yr[ow], r[ow]);
			}
		} else {
			for (int64_t kj = 0; kj < kw; kj++) {
				const float *r = rm + kj * dw;
				if (sw == 1)
					for (int64_t ow = 0; ow < OW; ow++)
						yr[ow] = max_nan(yr[ow], r[ow]);
				else
					for (int64_t ow = 0; ow < OW; ow++)
						yr[ow] = max_nan(yr[ow], r[ow * sw]);
			}
		}
	}
}

/* One AveragePool plane. Row by row: every valid (ki, kj) tap is applied to
 * the whole range of output columns where it lands inside the input, so the
 * inner loop has no bounds checks and vectorises; each output still sees
 * its taps in the order ki, kj, as the definition sums them. */
CPU_CLONES
static void avg_plane(const struct pool_job *j, const float *x, float *y, int64_t *ncol)
{
	const struct pool_params *p = &j->n->p.pool;
	int64_t kh = p->kernel[0], kw = p->kernel[1], sh = p->stride[0], sw = p->stride[1];
	int64_t dh = p->dil[0], dw = p->dil[1], pt = p->pads[0], pl = p->pads[1];
	int64_t pb = p->pads[2], pr = p->pads[3], H = j->H, W = j->W, OW = j->OW;

	/* valid columns of each output column's window */
	for (int64_t ow = 0; ow < OW; ow++)
		ncol[ow] = 0;
	for (int64_t kj = 0; kj < kw; kj++) {
		int64_t off = kj * dw - pl;	/* iw = ow * sw + off */
		int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
		int64_t hi = W - 1 - off < 0 ? 0 : (W - 1 - off) / sw + 1;
		for (int64_t ow = lo; ow < hi && ow < OW; ow++)
			ncol[ow]++;
	}
	for (int64_t oh = 0; oh < j->OH; oh++) {
		float *yr = y + oh * OW;
		int64_t h0 = oh * sh - pt, nrow = 0;
		for (int64_t ow = 0; ow < OW; ow++)
			yr[ow] = 0.f;
		for (int64_t ki = 0; ki < kh; ki++) {
			int64_t ih = h0 + ki * dh;
			if (ih < 0 || ih >= H)
				continue;
			nrow++;
			const float *xr = x + ih * W;
			for (int64_t kj = 0; kj < kw; kj++) {
				int64_t off = kj * dw - pl;
				int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
				int64_t hi = W - 1 - off < 0 ? 0 : (W - 1 - off) / sw + 1;
				if (hi > OW)
					hi = OW;
				const float *xo = xr + off;
				for (int64_t ow = lo; ow < hi; ow++)
					yr[ow] += xo[ow * sw];
			}
		}
		for (int64_t ow = 0; ow < OW; ow++) {
			int64_t cnt = nrow * ncol[ow];
			if (p->count_include_pad) {
				/* window clipped to the padded input (ceil_mode may
				 * run past it) */
				int64_t w0 = ow * sw - pl;
				int64_t he = h0 + (kh - 1) * dh + 1, we = w0 + (kw - 1) * dw + 1;
				int64_t hlim = H + pb, wlim = W + pr;
				int64_t hs = he > hlim ? hlim : he, ws = we > wlim ? wlim : we;
				cnt = ((hs - h0 + dh - 1) / dh) * ((ws - w0 + dw - 1) / dw);
			}
			yr[ow] = cnt ? yr[ow] / (float)cnt : 0.f;
		}
	}
}

static void pool_range(void *arg, int64_t b, int64_t e)
{
	struct pool_job *j = arg;
	const struct pool_params *p = &j->n->p.pool;
	/* MaxPool: the padded row max_plane reads (every tap of every output)
	 * and its even and odd halves; AveragePool: each column's tap count */
	int64_t span = (j->OW - 1) * p->stride[1] + (p->kernel[1] - 1) * p->dil[1] + 1;
	size_t need = j->is_max ? (size_t)(2 * span + 2) * sizeof(float) : (size_t)j->OW * sizeof(int64_t);
	int64_t stack[512];
	void *buf = need <= sizeof(stack) ? stack : malloc(need);

	if (!buf) {
		j->failed = 1;
		return;
	}
	for (int64_t t = b; t < e; t++)
		if (j->is_max)
			max_plane(j, j->x + t * j->sx, j->y + t * j->sy, buf, span);
		else
			avg_plane(j, j->x + t * j->sx, j->y + t * j->sy, buf);
	if (buf != stack)
		free(buf);
}

CPU_KERNEL(cpu_pool)
{
	const struct tensor_view *x = &in[0], *yv = &out[0];
	int sp = x->ndim - 2;
	struct pool_job j = {
		.n = n, .x = x->data, .y = yv->data,
		.H = sp == 2 ? x->shape[2] : 1, .W = x->shape[x->ndim - 1],
		.OH = sp == 2 ? yv->shape[2] : 1, .OW = yv->shape[yv->ndim - 1],
		.is_max = n->kind == OP_MAXPOOL,
	};
	j.sx = x->pstride ? x->pstride : j.H * j.W;
	j.sy = yv->pstride ? yv->pstride : j.OH * j.OW;
	cpu_parallel(c, x->shape[0] * x->shape[1], pool_range, &j);
	return j.failed ? -ENOMEM : 0;
}

struct gpool_job { const float *x; float *y; int64_t plane; int is_max; };

static void gpool_range(void *arg, int64_t b, int64_t e)
{
	struct gpool_job *j = arg;
	for (int64_t t = b; t < e; t++) {
		const float *x = j->x + t * j->plane;
		if (j->is_max) {
			float m = -INFINITY;
			for (int64_t i = 0; i < j->plane; i++)
				m = x[i] > m ? x[i] : m;
			j->y[t] = m;
		} else {
			float s = 0.f;
			for (int64_t i = 0; i < j->plane; i++)
				s += x[i];
			j->y[t] = j->plane ? s / (float)j->plane : 0.f;
		}
	}
}

CPU_KERNEL(cpu_global_pool)
{
	const struct tensor_view *x = &in[0];
	struct gpool_job j = { x->data, out[0].data, 1, n->kind == OP_GLOBAL_MAXPOOL };
	for (int i = 2; i < x->ndim; i++)
		j.plane *= x->shape[i];
	cpu_parallel(c, x->shape[0] * x->shape[1], gpool_range, &j);
	return 0;
}
