/* Conv and ConvTranspose on the CPU.
 *
 * Conv picks one of three algorithms once per node (cpu_conv_prepare):
 *  - depthwise (one input and one output channel per group): a direct kernel
 *    vectorised along the output row;
 *  - 1x1, stride 1, no padding: the input already is the GEMM's B matrix;
 *  - otherwise im2col of a tile of output columns into per-thread scratch,
 *    then OpenBLAS sgemm.
 * Bias, the residual sum and the activation are applied to each tile while
 * it is in cache. */
#include <errno.h>
#include <stdlib.h>

#include <cblas.h>

#include "cpu-impl.h"

enum conv_algo { CONV_GEMM, CONV_1X1, CONV_DEPTHWISE };

struct conv_plan {
	enum conv_algo algo;
};

struct conv_geom {
	int64_t N, C, H, W, M, OH, OW, G, Cg, Mg, K, kh, kw, sh, sw, dh, dw, pt, pl;
	int64_t sx, sy, ss;	/* plane strides of x, y and the fused sum (elements) */
};

static void geom(const struct eng_node *n, const struct tensor_view *x, const struct tensor_view *y,
		 struct conv_geom *g)
{
	const struct conv_params *p = &n->p.conv;
	int sp = x->ndim - 2;
	g->N = x->shape[0];
	g->C = x->shape[1];
	g->H = sp == 2 ? x->shape[2] : 1;
	g->W = x->shape[x->ndim - 1];
	g->M = y->shape[1];
	g->OH = sp == 2 ? y->shape[2] : 1;
	g->OW = y->shape[y->ndim - 1];
	g->G = p->group;
	g->Cg = g->C / g->G;
	g->Mg = g->M / g->G;
	g->kh = p->kernel[0], g->kw = p->kernel[1];
	g->sh = p->stride[0], g->sw = p->stride[1];
	g->dh = p->dil[0], g->dw = p->dil[1];
	g->pt = p->pads[0], g->pl = p->pads[1];
	g->K = g->Cg * g->kh * g->kw;
	g->sx = x->pstride ? x->pstride : g->H * g->W;
	g->sy = y->pstride ? y->pstride : g->OH * g->OW;
	g->ss = g->sy;
}

static enum conv_algo choose(const struct conv_params *p, const struct conv_geom *g)
{
	if (g->Cg == 1 && g->Mg == 1)
		return CONV_DEPTHWISE;
	if (g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && !p->pads[0] && !p->pads[1] &&
	    !p->pads[2] && !p->pads[3])
		return CONV_1X1;
	return CONV_GEMM;
}

/* Output columns per GEMM tile: keep the im2col block near L2 size. */
static int64_t tile_cols(const struct conv_geom *g)
{
	int64_t nt = (384 * 1024) / (g->K * 4);
	nt = nt < 64 ? 64 : nt;
	nt = (nt + 15) & ~(int64_t)15;
	int64_t ohw = g->OH * g->OW;
	return nt > ohw ? ohw : nt;
}

/* How a GEMM conv splits over threads: tiles of output columns, or, for one
 * image with few columns (late layers), the output channels (msplit). */
struct conv_tiling {
	int64_t tile, tiles_per_img, ntasks;
	int msplit;
	const float *cols;	/* msplit: the image's im2col, shared */
};

static void tiling(const struct conv_geom *g, int threads, struct conv_tiling *t)
{
	int64_t ohw = g->OH * g->OW, imgs = g->N * g->G;
	t->tile = tile_cols(g);
	t->tiles_per_img = (ohw + t->tile - 1) / t->tile;
	if (imgs * t->tiles_per_img < threads) {
		t->tiles_per_img = (threads + imgs - 1) / imgs;
		t->tile = (ohw + t->tiles_per_img - 1) / t->tiles_per_img;
		t->tiles_per_img = (ohw + t->tile - 1) / t->tile;
	}
	t->ntasks = imgs * t->tiles_per_img;
	t->msplit = threads > 1 && imgs == 1 && t->tile < 48 && g->Mg >= 16 * threads;
}

/* im2col scratch of a GEMM conv: a tile of columns per thread, or with M
 * split the whole image once, in thread 0's buffer, read by every thread. */
static size_t scratch_bytes(const struct conv_geom *g, const struct conv_tiling *t)
{
	return (size_t)(g->K * (t->msplit ? g->OH * g->OW : t->tile)) * 4;
}

int cpu_conv_prepare(struct engine *e, struct eng_node *n)
{
	struct conv_plan *pl = calloc(1, sizeof(*pl));
	const struct eng_tensor *xt = &e->t[n->in[0]], *yt = &e->t[n->out[0]];
	struct tensor_view x = eng_view(xt, NULL), y = eng_view(yt, NULL);
	struct conv_geom g;

	if (!pl)
		return -ENOMEM;
	geom(n, &x, &y, &g);
	pl->algo = choose(&n->p.conv, &g);
	n->packed = pl;
	n->work_bytes = 0;
	if (pl->algo == CONV_GEMM) {
		struct conv_tiling t;
		tiling(&g, e->threads, &t);
		n->work_bytes = scratch_bytes(&g, &t);
	}
	return 0;
}

void cpu_conv_release(struct eng_node *n)
{
	free(n->packed);
	n->packed = NULL;
}

/* im2col of output columns [c0, c1) of image plane x (Cg channels). */
static void im2col(const struct conv_geom *g, const float *x, int64_t c0, int64_t c1, float *dst)
{
	int64_t nt = c1 - c0;
	for (int64_t ci = 0; ci < g->Cg; ci++)
		for (int64_t ki = 0; ki < g->kh; ki++)
			for (int64_t kj = 0; kj < g->kw; kj++) {
				float *d = dst + ((ci * g->kh + ki) * g->kw + kj) * nt;
				const float *src = x + ci * g->sx;
				int64_t off = kj * g->dw - g->pl;
				for (int64_t p = c0; p < c1;) {
					int64_t oh = p / g->OW, ow0 = p % g->OW;
					int64_t ow1 = g->OW < ow0 + (c1 - p) ? g->OW : ow0 + (c1 - p);
					int64_t ih = oh * g->sh - g->pt + ki * g->dh;
					if (ih < 0 || ih >= g->H) {
						memset(d, 0, (ow1 - ow0) * sizeof(float));
					} else {
						const float *row = src + ih * g->W;
						if (g->sw == 1) {
							int64_t lo = -off > ow0 ? -off : ow0;
							int64_t hi = g->W - off < ow1 ? g->W - off : ow1;
							lo = lo > ow1 ? ow1 : lo;
							hi = hi < lo ? lo : hi;
							memset(d, 0, (lo - ow0) * sizeof(float));
							memcpy(d + (lo - ow0), row + lo + off, (hi - lo) * sizeof(float));
							memset(d + (hi - ow0), 0, (ow1 - hi) * sizeof(float));
						} else {
							for (int64_t ow = ow0; ow < ow1; ow++) {
								int64_t iw = ow * g->sw + off;
								d[ow - ow0] = iw >= 0 && iw < g->W ? row[iw] : 0.f;
							}
						}
					}
					d += ow1 - ow0;
					p += ow1 - ow0;
				}
			}
}

struct conv_job {
	struct cpu_ctx *c;
	const struct eng_node *n;
	struct conv_geom g;
	const float *x, *w, *b, *sum;
	float *y;
	enum conv_algo algo;
	const float *zero;	/* a zero input row (depthwise 3x3) */
	int64_t tile, tiles_per_img, ntasks;
	int msplit;
	const float *cols;	/* msplit: the image's im2col, shared */
};

/* Bias, fused sum and activation over rows (channels) x cols of y; y and
 * the sum may have different plane strides. */
static void conv_bias_act(const struct conv_job *j, float *y, const float *sum, const float *bias,
			  int64_t rows, int64_t cols)
{
	const struct conv_geom *g = &j->g;

	if (!sum || g->ss == g->sy) {
		cpu_bias_act(y, rows, cols, g->sy, bias, sum, &j->n->p.conv.act);
		return;
	}
	for (int64_t r = 0; r < rows; r++)
		cpu_bias_act(y + r * g->sy, 1, cols, g->sy, bias ? bias + r : NULL, sum + r * g->ss,
			     &j->n->p.conv.act);
}

static void conv_gemm_task(void *arg, int index, int count)
{
	struct conv_job *j = arg;
	const struct conv_geom *g = &j->g;
	int64_t ohw = g->OH * g->OW;
	float *scratch = j->c ? j->c->scratch[index] : NULL;

	if (j->msplit) {	/* one image, one group, few columns: split M */
		int64_t m0, m1;
		tpool_slice(g->Mg, index, count, &m0, &m1);
		if (m0 >= m1)
			return;
		const float *B = j->algo == CONV_GEMM ? j->cols : j->x;
		int64_t ldb = j->algo == CONV_GEMM ? ohw : g->sx;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(m1 - m0), (int)ohw,
			    (int)g->K, 1.f, j->w + m0 * g->K, (int)g->K, B, (int)ldb, 0.f,
			    j->y + m0 * g->sy, (int)g->sy);
		conv_bias_act(j, j->y + m0 * g->sy, j->sum ? j->sum + m0 * g->ss : NULL, j->b ? j->b + m0 : NULL,
			      m1 - m0, ohw);
		return;
	}
	int64_t t0, t1;
	tpool_slice(j->ntasks, index, count, &t0, &t1);
	for (int64_t t = t0; t < t1; t++) {
		int64_t img = t / j->tiles_per_img, tile = t % j->tiles_per_img;
		int64_t ni = img / g->G, gi = img % g->G;
		int64_t c0 = tile * j->tile, c1 = c0 + j->tile < ohw ? c0 + j->tile : ohw;
		const float *xin = j->x + (ni * g->C + gi * g->Cg) * g->sx;
		int64_t yoff = (ni * g->M + gi * g->Mg) * g->sy + c0;
		int64_t soff = (ni * g->M + gi * g->Mg) * g->ss + c0;
		const float *B;
		int64_t ldb;
		if (j->algo == CONV_GEMM) {
			im2col(g, xin, c0, c1, scratch);
			B = scratch;
			ldb = c1 - c0;
		} else {
			B = xin + c0;
			ldb = g->sx;
		}
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)g->Mg, (int)(c1 - c0),
			    (int)g->K, 1.f, j->w + gi * g->Mg * g->K, (int)g->K, B, (int)ldb, 0.f,
			    j->y + yoff, (int)g->sy);
		conv_bias_act(j, j->y + yoff, j->sum ? j->sum + soff : NULL, j->b ? j->b + gi * g->Mg : NULL,
			      g->Mg, c1 - c0);
	}
}

/* Depthwise 3x3: all nine taps in one pass over the interior of a row
 * (out-of-range input rows read a zero row); edge columns checked. */
CPU_CLONES
static void dw3x3_plane(const struct conv_geom *g, const float *x, const float *w, float bias,
			float *y, const float *zero)
{
	int64_t sw = g->sw, W = g->W, dw = g->dw, pl = g->pl;
	/* interior: 0 <= ow*sw - pl and ow*sw - pl + 2*dw < W */
	int64_t lo = (pl + sw - 1) / sw;
	int64_t hi = W - 2 * dw + pl - 1 < 0 ? 0 : (W - 2 * dw + pl - 1) / sw + 1;
	if (hi > g->OW)
		hi = g->OW;
	if (lo > hi)
		lo = hi;
	for (int64_t oh = 0; oh < g->OH; oh++) {
		const float *r[3];
		for (int k = 0; k < 3; k++) {
			int64_t ih = oh * g->sh - g->pt + k * g->dh;
			r[k] = ih >= 0 && ih < g->H ? x + ih * W : zero;
		}
		float *yr = y + oh * g->OW;
		for (int64_t ow = 0; ow < g->OW; ow++) {
			if (ow == lo && lo < hi) {
				ow = hi - 1;	/* the interior is done below */
				continue;
			}
			float acc = bias;
			for (int ki = 0; ki < 3; ki++)
				for (int kj = 0; kj < 3; kj++) {
					int64_t iw = ow * sw - pl + kj * dw;
					if (iw >= 0 && iw < W)
						acc += w[ki * 3 + kj] * r[ki][iw];
				}
			yr[ow] = acc;
		}
		const float *a0 = r[0] - pl, *a1 = r[1] - pl, *a2 = r[2] - pl;
		float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5];
		float w6 = w[6], w7 = w[7], w8 = w[8];
		if (sw == 1 && dw == 1) {
			for (int64_t ow = lo; ow < hi; ow++)
				yr[ow] = bias + w0 * a0[ow] + w1 * a0[ow + 1] + w2 * a0[ow + 2] +
					 w3 * a1[ow] + w4 * a1[ow + 1] + w5 * a1[ow + 2] +
					 w6 * a2[ow] + w7 * a2[ow + 1] + w8 * a2[ow + 2];
		} else if (sw == 2 && dw == 1) {
			for (int64_t ow = lo; ow < hi; ow++)
				yr[ow] = bias + w0 * a0[2 * ow] + w1 * a0[2 * ow + 1] + w2 * a0[2 * ow + 2] +
					 w3 * a1[2 * ow] + w4 * a1[2 * ow + 1] + w5 * a1[2 * ow + 2] +
					 w6 * a2[2 * ow] + w7 * a2[2 * ow + 1] + w8 * a2[2 * ow + 2];
		} else {
			for (int64_t ow = lo; ow < hi; ow++) {
				int64_t b = ow * sw;
				yr[ow] = bias + w0 * a0[b] + w1 * a0[b + dw] + w2 * a0[b + 2 * dw] +
					 w3 * a1[b] + w4 * a1[b + dw] + w5 * a1[b + 2 * dw] +
					 w6 * a2[b] + w7 * a2[b + dw] + w8 * a2[b + 2 * dw];
			}
		}
	}
}

/* One depthwise output plane. */
CPU_CLONES
static void dw_plane(const struct conv_geom *g, const float *x, const float *w, float bias,
		     float *y)
{
	for (int64_t oh = 0; oh < g->OH; oh++) {
		float *yr = y + oh * g->OW;
		for (int64_t ow = 0; ow < g->OW; ow++)
			yr[ow] = bias;
		for (int64_t ki = 0; ki < g->kh; ki++) {
			int64_t ih = oh * g->sh - g->pt + ki * g->dh;
			if (ih < 0 || ih >= g->H)
				continue;
			const float *xr = x + ih * g->W;
			for (int64_t kj = 0; kj < g->kw; kj++) {
				float wv = w[ki * g->kw + kj];
				int64_t off = kj * g->dw - g->pl;
				/* valid ow: 0 <= ow*sw + off < W */
				int64_t lo = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
				int64_t hi = g->W - off <= 0 ? 0 : (g->W - off - 1) / g->sw + 1;
				if (hi > g->OW)
					hi = g->OW;
				if (g->sw == 1) {
					const float *xs = xr + off;
					for (int64_t ow = lo; ow < hi; ow++)
						yr[ow] += wv * xs[ow];
				} else if (g->sw == 2) {
					const float *xs = xr + off;
					for (int64_t ow = lo; ow < hi; ow++)
						yr[ow] += wv * xs[2 * ow];
				} else {
					for (int64_t ow = lo; ow < hi; ow++)
						yr[ow] += wv * xr[ow * g->sw + off];
				}
			}
		}
	}
}

static void dw_range(void *arg, int64_t b, int64_t e)
{
	struct conv_job *j = arg;
	const struct conv_geom *g = &j->g;
	int64_t plane = g->OH * g->OW;
	for (int64_t t = b; t < e; t++) {
		int64_t ch = t % g->M;
		float *y = j->y + t * g->sy;
		if (g->kh == 3 && g->kw == 3 && j->zero)
			dw3x3_plane(g, j->x + t * g->sx, j->w + ch * 9, j->b ? j->b[ch] : 0.f, y,
				    j->zero);
		else
			dw_plane(g, j->x + t * g->sx, j->w + ch * g->kh * g->kw,
				 j->b ? j->b[ch] : 0.f, y);
		cpu_bias_act(y, 1, plane, plane, NULL, j->sum ? j->sum + t * g->ss : NULL,
			     &j->n->p.conv.act);
	}
}

CPU_KERNEL(cpu_conv)
{
	struct conv_job j = { .c = c, .n = n };
	const struct conv_plan *pl = n->packed;
	struct conv_geom *g = &j.g;
	int rc;

	geom(n, &in[0], &out[0], g);
	j.x = in[0].data;
	j.w = in[1].data;
	j.b = n->n_in > 2 && in[2].data ? in[2].data : NULL;
	j.sum = n->p.conv.has_sum ? in[3].data : NULL;
	if (j.sum && in[3].pstride)
		g->ss = in[3].pstride;
	else if (j.sum)
		g->ss = g->OH * g->OW;
	j.y = out[0].data;
	j.algo = pl ? pl->algo : choose(&n->p.conv, g);
	if (j.algo == CONV_DEPTHWISE) {
		float *zero = g->kh == 3 && g->kw == 3 ? calloc(g->W + 1, sizeof(float)) : NULL;
		j.zero = zero;
		cpu_parallel(c, g->N * g->M, dw_range, &j);
		free(zero);
		return 0;
	}
	struct conv_tiling t;
	tiling(g, c ? c->threads : 1, &t);
	j.tile = t.tile;
	j.tiles_per_img = t.tiles_per_img;
	j.ntasks = t.ntasks;
	j.msplit = t.msplit;
	if (j.algo == CONV_GEMM && j.msplit) {
		/* one im2col of the image, not one per thread */
		if ((rc = cpu_scratch_reserve_n(c, 1, scratch_bytes(g, &t))))
			return rc;
		im2col(g, j.x, 0, g->OH * g->OW, c->scratch[0]);
		j.cols = c->scratch[0];
	} else if (j.algo == CONV_GEMM) {
		if ((rc = cpu_scratch_reserve(c, scratch_bytes(g, &t))))
			return rc;
	}
	if (c && c->pool)
		tpool_run(c->pool, conv_gemm_task, &j);
	else
		conv_gemm_task(&j, 0, 1);
	return 0;
}

/* ConvTranspose: cols = W_g^T x X_g, then col2im scatter-add. */
struct convt_job {
	struct cpu_ctx *c;
	const struct eng_node *n;
	struct conv_geom g;
	const float *x, *w, *b;
	float *y;
};

static void convt_task(void *arg, int index, int count)
{
	struct convt_job *j = arg;
	const struct conv_geom *g = &j->g;	/* H,W input; OH,OW output */
	int64_t t0, t1, hw = g->H * g->W, kk = g->kh * g->kw;
	float *cols = j->c->scratch[index];

	tpool_slice(g->N * g->G, index, count, &t0, &t1);
	for (int64_t t = t0; t < t1; t++) {
		int64_t ni = t / g->G, gi = t % g->G;
		const float *xg = j->x + (ni * g->C + gi * g->Cg) * hw;
		const float *wg = j->w + gi * g->Cg * g->Mg * kk;
		float *yg = j->y + (ni * g->M + gi * g->Mg) * g->OH * g->OW;
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(g->Mg * kk), (int)hw,
			    (int)g->Cg, 1.f, wg, (int)(g->Mg * kk), xg, (int)hw, 0.f, cols, (int)hw);
		for (int64_t m = 0; m < g->Mg; m++) {
			float *yp = yg + m * g->OH * g->OW;
			float bv = j->b ? j->b[gi * g->Mg + m] : 0.f;
			for (int64_t i = 0; i < g->OH * g->OW; i++)
				yp[i] = bv;
			for (int64_t ki = 0; ki < g->kh; ki++)
				for (int64_t kj = 0; kj < g->kw; kj++) {
					const float *cr = cols + ((m * g->kh + ki) * g->kw + kj) * hw;
					for (int64_t ih = 0; ih < g->H; ih++) {
						int64_t oh = ih * g->sh - g->pt + ki * g->dh;
						if (oh < 0 || oh >= g->OH)
							continue;
						for (int64_t iw = 0; iw < g->W; iw++) {
							int64_t ow = iw * g->sw - g->pl + kj * g->dw;
							if (ow >= 0 && ow < g->OW)
								yp[oh * g->OW + ow] += cr[ih * g->W + iw];
						}
					}
				}
			cpu_bias_act(yp, 1, g->OH * g->OW, g->OH * g->OW, NULL, NULL, &j->n->p.conv.act);
		}
	}
}

CPU_KERNEL(cpu_conv_transpose)
{
	struct convt_job j = { .c = c, .n = n };
	struct conv_geom *g = &j.g;
	const struct conv_params *p = &n->p.conv;
	int sp = in[0].ndim - 2;
	int rc;

	g->N = in[0].shape[0];
	g->C = in[0].shape[1];
	g->H = sp == 2 ? in[0].shape[2] : 1;
	g->W = in[0].shape[in[0].ndim - 1];
	g->M = out[0].shape[1];
	g->OH = sp == 2 ? out[0].shape[2] : 1;
	g->OW = out[0].shape[out[0].ndim - 1];
	g->G = p->group;
	g->Cg = g->C / g->G;
	g->Mg = g->M / g->G;
	g->kh = p->kernel[0], g->kw = p->kernel[1];
	g->sh = p->stride[0], g->sw = p->stride[1];
	g->dh = p->dil[0], g->dw = p->dil[1];
	g->pt = p->pads[0], g->pl = p->pads[1];
	j.x = in[0].data;
	j.w = in[1].data;
	j.b = n->n_in > 2 && in[2].data ? in[2].data : NULL;
	j.y = out[0].data;
	if ((rc = cpu_scratch_reserve(c, (size_t)(g->Mg * g->kh * g->kw * g->H * g->W) * 4 + 4)))
		return rc;
	if (c->pool)
		tpool_run(c->pool, convt_task, &j);
	else
		convt_task(&j, 0, 1);
	return 0;
}
