/* MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool on the CPU. */
#include <float.h>

#include "cpu-impl.h"

struct pool_job {
	const struct eng_node *n;
	const float *x;
	float *y;
	int64_t H, W, OH, OW;
	int is_max;
};

static void pool_range(void *arg, int64_t b, int64_t e)
{
	struct pool_job *j = arg;
	const struct pool_params *p = &j->n->p.pool;
	int64_t kh = p->kernel[0], kw = p->kernel[1], sh = p->stride[0], sw = p->stride[1];
	int64_t dh = p->dil[0], dw = p->dil[1], pt = p->pads[0], pl = p->pads[1];
	int64_t pb = p->pads[2], pr = p->pads[3];

	for (int64_t t = b; t < e; t++) {
		const float *x = j->x + t * j->H * j->W;
		float *y = j->y + t * j->OH * j->OW;
		for (int64_t oh = 0; oh < j->OH; oh++) {
			for (int64_t ow = 0; ow < j->OW; ow++) {
				int64_t h0 = oh * sh - pt, w0 = ow * sw - pl;
				float acc = j->is_max ? -INFINITY : 0.f;
				int64_t cnt = 0;
				for (int64_t ki = 0; ki < kh; ki++) {
					int64_t ih = h0 + ki * dh;
					if (ih < 0 || ih >= j->H)
						continue;
					const float *xr = x + ih * j->W;
					for (int64_t kj = 0; kj < kw; kj++) {
						int64_t iw = w0 + kj * dw;
						if (iw < 0 || iw >= j->W)
							continue;
						float v = xr[iw];
						if (j->is_max)
							acc = v > acc || v != v ? v : acc;
						else
							acc += v;
						cnt++;
					}
				}
				if (!j->is_max) {
					if (p->count_include_pad) {
						/* window clipped to the padded input (ceil_mode
						 * may run past it) */
						int64_t he = h0 + (kh - 1) * dh + 1, we = w0 + (kw - 1) * dw + 1;
						int64_t hlim = j->H + pb, wlim = j->W + pr;
						int64_t hs = he > hlim ? hlim : he, ws = we > wlim ? wlim : we;
						int64_t nh = (hs - h0 + dh - 1) / dh, nw = (ws - w0 + dw - 1) / dw;
						cnt = nh * nw;
					}
					acc = cnt ? acc / (float)cnt : 0.f;
				}
				y[oh * j->OW + ow] = acc;
			}
		}
	}
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
	cpu_parallel(c, x->shape[0] * x->shape[1], pool_range, &j);
	return 0;
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
