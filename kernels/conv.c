/* Conv and ConvTranspose on the CPU.
 *
 * Conv picks one of three algorithms once per node (cpu_conv_prepare):
 *  - depthwise (one input and one output channel per group): a direct kernel
 *    vectorised along the output row (3x3: over a zero-padded copy);
 *  - 1x1, stride 1, no padding: the input already is the GEMM's B matrix;
 *  - otherwise im2col.
 * The last two are a packed GEMM (sgemm.c): the weights are packed once at
 * prepare into the micro-kernel's panels (per group), and each block of
 * output columns packs its B per call (im2col row by row, cut into panels)
 * (1x1: copied from the input planes); planes of few pixels (7x7, 14x14)
 * use the transposed tiles (sgemm_packed_t). With AVX-512, a conv of
 * stride 1 that keeps its row width reads B from the input itself
 * (conv_direct_avx512). Bias, the residual sum and the activation are
 * applied to each block while it is in cache.
 *
 * ConvTranspose whose taps never overlap is made row by row
 * (convt_rows); otherwise cols = W^T X, then col2im. */
#include <errno.h>
#include <stdlib.h>

#include <cblas.h>

#include "conv-impl.h"
#include "cpu-impl.h"
#include "sgemm-impl.h"

enum conv_algo { CONV_GEMM, CONV_1X1, CONV_DEPTHWISE };

struct conv_plan {
	enum conv_algo algo;
	const struct sgemm_kernel *k;
	int trans;		/* sgemm_packed_t: few output pixels */
	float *wp;		/* packed weights (NULL: not constant) */
	int64_t wp_group;	/* floats per group */
	int vec;		/* conv_x86.c's AVX-512 im2col or depthwise kernel */
	int direct;		/* conv_x86.c's direct kernel: B read from the input */
	uint32_t *dmask;	/* its lane masks (conv_direct_masks) for */
	int64_t dm_h, dm_oh, dm_pt;	/* the whole plane (a row band has others) */
	int chsplit;		/* threads split the output channels (feeds_depthwise) */
};

/* Whether a node runs conv_x86.c: where the GEMM's micro-kernel is
 * AVX-512 (SPLITD_CPU_ISA forces the other ISAs' paths too), its im2col;
 * for depthwise, its 3x3 kernel wherever it applies: measured on one layer
 * alone (one thread, bench/conv_layer.sh), as fast as the padded copy or
 * faster on every width (576 planes of 14x14 0.045-0.068 ms against
 * 0.106-0.195, 192 of 28x28 0.055-0.071 against 0.096-0.121, 144 of 56x56
 * and 32 of 112x112 within noise of it or better).
 * SPLITD_CONV_IM2COL_SCALAR=1 and SPLITD_CONV_DW_SCALAR=1 turn them off
 * for measurements. Decided once per node, at prepare. */
static int use_vec(enum conv_algo algo, const struct conv_geom *g, const struct sgemm_kernel *k)
{
	if (k->isa != SGEMM_AVX512)
		return 0;
	if (algo == CONV_DEPTHWISE)
		return conv_dw3x3_avx512_applies(g) && !getenv("SPLITD_CONV_DW_SCALAR");
	return algo == CONV_GEMM && !getenv("SPLITD_CONV_IM2COL_SCALAR");
}

/* Whether a GEMM conv reads its B straight from the input planes
 * (conv_direct_avx512: stride 1, rows kept whole; not for the transposed
 * tiles): the AVX-512 kernel only. SPLITD_CONV_DIRECT=0 turns it off for
 * measurements. */
static int use_direct(const struct conv_geom *g, const struct sgemm_kernel *k, int trans)
{
	const char *e = getenv("SPLITD_CONV_DIRECT");
	return k->isa == SGEMM_AVX512 && k->mr == 8 && k->nr == 32 && !trans &&
	       conv_direct_avx512_applies(g) && !(e && *e == '0');
}

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

/* How a packed GEMM conv splits over threads. Units are (image and group,
 * block of output columns, slice of output channels), cut evenly over the
 * threads in that order. A block's columns are `pmax` or fewer panels of
 * NR, kept so that its slice of B (one K block) and its C (all channels)
 * stay in L2. With many panels, blocks only (a multiple of the threads);
 * with a few panels per thread (14x14 layers), blocks of one panel, each
 * split over the threads' channel slices: every unit the same work; with no
 * more panels than threads (7x7 layers), one block whose channels are
 * split: each thread streams its share of the weights once. A 1x1 conv
 * that feeds a depthwise conv (feeds_depthwise) is cut the other way
 * round, channel slice first: thread i computes slice i of every block. */
struct conv_tiling {
	int64_t nb, ms, pmax, panels;
	int64_t colw, chw;	/* columns per panel, channels per slice step */
	int chmajor;		/* units ordered by channel slice first: thread i the ith slice */
};

/* Transposed (sgemm_packed_t) when NR-column panels would waste more than
 * 8 % of the work on a plane and MR-column ones less: 7x7 and 14x14. */
static int use_trans(const struct conv_geom *g, const struct sgemm_kernel *k)
{
	int64_t ohw = g->OH * g->OW;
	const char *force = getenv("SPLITD_CONV_TRANS");	/* measurements: 0 never, 1 always */
	if (force && (*force == '0' || *force == '1'))
		return *force == '1' && g->Mg % k->nr == 0;
	return g->Mg % k->nr == 0 && sgemm_round_up(ohw, k->nr) * 100 > ohw * 108 &&
	       sgemm_round_up(ohw, k->mr) < sgemm_round_up(ohw, k->nr);
}

static void tiling(const struct conv_geom *g, const struct sgemm_kernel *k, int trans, int threads,
		   int chsplit, struct conv_tiling *t)
{
	int64_t ohw = g->OH * g->OW, imgs = g->N * g->G, kc = sgemm_kc(g->K);
	int64_t big = g->Mg > kc ? g->Mg : kc;

	t->colw = trans ? k->mr : k->nr;
	t->chw = trans ? k->nr : k->mr;
	t->panels = (ohw + t->colw - 1) / t->colw;
	/* transposed: every channel panel reads the block's whole B (up to
	 * 1 MB); else one K block of it and its C stay in L2 */
	int64_t pb = trans ? (256 * 1024) / (g->K * t->colw) : (48 * 1024) / (big * t->colw);
	pb = pb < 1 ? 1 : pb > CONV_BLOCK_MAX / t->colw ? CONV_BLOCK_MAX / t->colw : pb;
	t->nb = (t->panels + pb - 1) / pb;
	t->ms = 1;
	/* transposed tiles with few channels: split the pixel panels, so each
	 * thread packs only its own B (split by channels, both packed all of
	 * it); reading all the weights twice costs less there */
	int pix = trans && g->Mg < 2 * ohw && t->panels >= 2 * threads;
	t->chmajor = chsplit && threads > 1;
	if (t->chmajor) {	/* thread i: channel slice i of every block */
		t->ms = threads;
	} else if (threads > 1 && !pix &&
	    (trans ? imgs * t->nb < 2 * threads : imgs * t->panels < 4 * threads)) {
		t->ms = threads;
		if (!trans && t->panels > threads)
			t->nb = t->panels;
	} else if (threads > 1 && imgs == 1) {
		t->nb = sgemm_round_up(t->nb, threads);
	}
	if (t->nb > t->panels)
		t->nb = t->panels;
	t->pmax = t->nb ? (t->panels + t->nb - 1) / t->nb : 0;
}

/* Per-thread scratch: the packed B of one block of columns. */
static size_t scratch_bytes(const struct conv_geom *g, const struct conv_tiling *t, int direct)
{
	return direct ? 64 : (size_t)(g->K * t->pmax * t->colw) * 4 + 64;
}

/* Weights as the packed A of each group (K = Cg kh kw, rows Mg), or for
 * the transposed use as NR-row panels (sgemm_pack_bt). */
static float *pack_weights(const struct conv_geom *g, const struct sgemm_kernel *k, int trans,
			   const float *w, int64_t *group_floats)
{
	size_t per = trans ? (size_t)(sgemm_round_up(g->Mg, k->nr) * g->K) :
			     sgemm_packed_a_floats(k, g->Mg, g->K);
	float *wp = NULL;

	if (posix_memalign((void **)&wp, 64, per * g->G * sizeof(float) + 64))
		return NULL;
	for (int64_t gi = 0; gi < g->G; gi++)
		if (trans)
			sgemm_pack_bt(k, g->Mg, g->K, w + gi * g->Mg * g->K, g->K, wp + gi * per);
		else
			sgemm_pack_a(k, g->Mg, g->K, w + gi * g->Mg * g->K, g->K, wp + gi * per);
	*group_floats = (int64_t)per;
	return wp;
}

static size_t dw_scratch_floats(const struct conv_geom *g, int vec);

/* Whether a depthwise conv reads n's output. The depthwise conv's threads
 * take whole planes, so a 1x1 conv before it (mobilenet_v2's expand
 * convs) splits its output channels over the threads instead of its
 * pixels, in the same order: each thread writes the planes its own
 * depthwise slice reads, rather than a band of every plane, half of which
 * the other core would then fetch. Each thread packs all of B (for a 1x1
 * conv a copy of the input); an im2col conv (the stem) repacks too much
 * for it. Measured on mobilenet_v2, two threads, ten interleaved rounds
 * (per-node minima): depthwise convs 1.447 -> 1.289 ms, expand convs
 * 1.292 -> 1.270, the model's run medians 4.71 -> 4.54 ms.
 * SPLITD_CONV_CHSPLIT=0 turns it off for measurements. */
static int feeds_depthwise(const struct engine *e, const struct eng_node *n)
{
	const char *env = getenv("SPLITD_CONV_CHSPLIT");
	if (env && *env == '0')
		return 0;
	for (int i = 0; i < e->nn; i++) {
		const struct eng_node *d = &e->n[i];
		if (d->kind != OP_CONV || d->n_in < 2 || d->in[0] != n->out[0])
			continue;
		const struct eng_tensor *x = &e->t[d->in[0]], *w = &e->t[d->in[1]];
		if (x->ndim == 4 && w->ndim == 4 && d->p.conv.group > 1 && d->p.conv.group == x->shape[1] &&
		    w->shape[0] == x->shape[1])
			return 1;
	}
	return 0;
}

int cpu_conv_prepare(struct engine *e, struct eng_node *n)
{
	struct conv_plan *pl = calloc(1, sizeof(*pl));
	const struct eng_tensor *xt = &e->t[n->in[0]], *yt = &e->t[n->out[0]], *wt = &e->t[n->in[1]];
	struct tensor_view x = eng_view(xt, NULL), y = eng_view(yt, NULL);
	struct conv_geom g;

	if (!pl)
		return -ENOMEM;
	geom(n, &x, &y, &g);
	pl->algo = choose(&n->p.conv, &g);
	n->packed = pl;
	pl->k = sgemm_kernel_pick();
	pl->vec = use_vec(pl->algo, &g, pl->k);
	if (pl->algo == CONV_DEPTHWISE) {
		n->work_bytes = dw_scratch_floats(&g, pl->vec) * sizeof(float) + 64;
		return 0;
	}
	pl->trans = use_trans(&g, pl->k);
	pl->direct = use_direct(&g, pl->k, pl->trans);
	if (pl->direct) {
		if (!(pl->dmask = malloc(conv_direct_mask_count(&g) * sizeof(uint32_t))))
			return -ENOMEM;
		conv_direct_masks(&g, pl->dmask);
		pl->dm_h = g.H, pl->dm_oh = g.OH, pl->dm_pt = g.pt;
	}
	if (wt->is_const && wt->data && wt->dtype == TENSOR_F32) {
		if (!(pl->wp = pack_weights(&g, pl->k, pl->trans, wt->data, &pl->wp_group)))
			return -ENOMEM;
		n->packed_inputs |= 1u << 1;
		e->weight_bytes += (size_t)pl->wp_group * (size_t)g.G * sizeof(float);
	}
	struct conv_tiling t;
	pl->chsplit = pl->algo == CONV_1X1 && feeds_depthwise(e, n);
	tiling(&g, pl->k, pl->trans, e->threads, pl->chsplit, &t);
	n->work_bytes = scratch_bytes(&g, &t, pl->direct);
	return 0;
}

void cpu_conv_release(struct eng_node *n)
{
	struct conv_plan *pl = n->packed;
	if (pl) {
		free(pl->wp);
		free(pl->dmask);
	}
	free(pl);
	n->packed = NULL;
}

const char *cpu_conv_path(const struct eng_node *n)
{
	const struct conv_plan *pl = n->packed;
	if (!pl)
		return "?";
	if (pl->algo == CONV_DEPTHWISE)
		return "depthwise";
	if (pl->direct)
		return "direct";
	if (pl->algo == CONV_1X1)
		return pl->trans ? "1x1-t" : "1x1";
	return pl->trans ? "im2col-t" : "im2col";
}

/* Row k = (ci, ki, kj) of the im2col of output columns [c0, c1) of image
 * plane x into row[0, c1 - c0): one run per output row. */
static inline void im2col_row(const struct conv_geom *g, const float *src, int64_t ki, int64_t kj,
			      int64_t c0, int64_t c1, float *row)
{
	int64_t off = kj * g->dw - g->pl, oh = c0 / g->OW, ow = c0 % g->OW;
	for (int64_t p = c0; p < c1; oh++, ow = 0) {
		int64_t len = g->OW - ow < c1 - p ? g->OW - ow : c1 - p;
		int64_t ih = oh * g->sh - g->pt + ki * g->dh;
		float *d = row + (p - c0);
		p += len;
		if (ih < 0 || ih >= g->H) {
			memset(d, 0, (size_t)len * sizeof(float));
			continue;
		}
		const float *r = src + ih * g->W;
		if (g->sw == 1) {
			/* valid: 0 <= ow + off < W */
			int64_t lo = -off > ow ? -off : ow, hi = g->W - off < ow + len ? g->W - off : ow + len;
			lo = lo > ow + len ? ow + len : lo;
			hi = hi < lo ? lo : hi;
			if (lo > ow)
				memset(d, 0, (size_t)(lo - ow) * sizeof(float));
			memcpy(d + (lo - ow), r + lo + off, (size_t)(hi - lo) * sizeof(float));
			if (ow + len > hi)
				memset(d + (hi - ow), 0, (size_t)(ow + len - hi) * sizeof(float));
		} else {
			/* valid: 0 <= o sw + off < W, o in [ow, ow + len) */
			int64_t sw = g->sw, lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
			int64_t hi = g->W - off <= 0 ? 0 : (g->W - off - 1) / sw + 1;
			lo = lo < ow ? ow : lo > ow + len ? ow + len : lo;
			hi = hi > ow + len ? ow + len : hi < lo ? lo : hi;
			if (lo > ow)
				memset(d, 0, (size_t)(lo - ow) * sizeof(float));
			const float *s = r + off;
			float *dd = d - ow;
			if (sw == 2)
				for (int64_t o = lo; o < hi; o++)
					dd[o] = s[2 * o];
			else
				for (int64_t o = lo; o < hi; o++)
					dd[o] = s[o * sw];
			if (ow + len > hi)
				memset(d + (hi - ow), 0, (size_t)(ow + len - hi) * sizeof(float));
		}
	}
}

/* Row k of n columns into the panels of NR columns at dst (row k of panel
 * j at dst + (j K + k) NR); the last panel's tail zero. */
static inline __attribute__((always_inline)) void scatter_row(const float *row, int64_t n, int64_t K,
							     int64_t k, int64_t NR, float *dst)
{
	float *d = dst + k * NR;
	int64_t j = 0;
	for (; j + NR <= n; j += NR, d += K * NR)
		memcpy(d, row + j, (size_t)NR * sizeof(float));
	if (j < n) {
		memcpy(d, row + j, (size_t)(n - j) * sizeof(float));
		memset(d + (n - j), 0, (size_t)(NR - (n - j)) * sizeof(float));
	}
}

/* im2col of output columns [c0, c1) of image plane x (Cg channels) into
 * packed B panels of nr columns: row by row through an L1 buffer, each row
 * then cut into the panels (fixed-size copies for the kernels' NR). */
CPU_CLONES
static void im2col_pack(const struct conv_geom *g, const float *x, int64_t c0, int64_t c1, int64_t nr,
			float *dst)
{
	float row[CONV_BLOCK_MAX] __attribute__((aligned(64)));
	int64_t K = g->K, n = c1 - c0;
	for (int64_t ci = 0; ci < g->Cg; ci++)
		for (int64_t ki = 0; ki < g->kh; ki++)
			for (int64_t kj = 0; kj < g->kw; kj++) {
				int64_t k = (ci * g->kh + ki) * g->kw + kj;
				im2col_row(g, x + ci * g->sx, ki, kj, c0, c1, row);
				if (nr == 32)
					scatter_row(row, n, K, k, 32, dst);
				else if (nr == 16)
					scatter_row(row, n, K, k, 16, dst);
				else
					scatter_row(row, n, K, k, nr, dst);
			}
}

struct conv_job {
	struct cpu_ctx *c;
	const struct eng_node *n;
	struct conv_geom g;
	const float *x, *w, *b, *sum;
	float *y;
	enum conv_algo algo;
	const struct sgemm_kernel *k;
	const float *wp;	/* packed weights */
	int64_t wp_group;
	int trans;
	int vec;		/* conv_plan.vec */
	int direct;		/* conv_plan.direct */
	const uint32_t *dmask;	/* conv_plan.dmask */
	struct conv_tiling t;
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

/* The GEMM's epilogue: rows [m, m + rows) of a group's block, while in L1. */
struct epi_arg { const struct conv_job *j; const float *sum, *bias; };

static void conv_epi(void *arg, float *c, int64_t ldc, int64_t m, int64_t rows, int64_t n)
{
	const struct epi_arg *e = arg;
	(void)ldc;
	conv_bias_act(e->j, c, e->sum ? e->sum + m * e->j->g.ss : NULL, e->bias ? e->bias + m : NULL,
		      rows, n);
}

static void conv_gemm_task(void *arg, int index, int count)
{
	struct conv_job *j = arg;
	const struct conv_geom *g = &j->g;
	const struct conv_tiling *t = &j->t;
	int64_t ohw = g->OH * g->OW, cw = t->colw, mw = t->chw, mp = (g->Mg + mw - 1) / mw;
	int64_t u0, u1, packed = -1;
	float *bp = j->c->scratch[index];

	tpool_slice(g->N * g->G * t->nb * t->ms, index, count, &u0, &u1);
	for (int64_t u = u0; u < u1; u++) {
		int64_t nblk = g->N * g->G * t->nb;
		int64_t mi = t->chmajor ? u / nblk : u % t->ms, blk = t->chmajor ? u % nblk : u / t->ms;
		int64_t img = blk / t->nb, bi = blk % t->nb;
		int64_t ni = img / g->G, gi = img % g->G;
		int64_t c0 = bi * t->panels / t->nb * cw, c1 = (bi + 1) * t->panels / t->nb * cw;
		int64_t m0 = mi * mp / t->ms * mw, m1 = (mi + 1) * mp / t->ms * mw;
		c1 = c1 < ohw ? c1 : ohw;
		m1 = m1 < g->Mg ? m1 : g->Mg;
		if (c0 >= c1 || m0 >= m1)
			continue;
		const float *xin = j->x + (ni * g->C + gi * g->Cg) * g->sx;
		if (blk != packed && !j->direct) {
			if (j->algo == CONV_1X1)
				sgemm_pack_b(cw, g->K, c1 - c0, xin + c0, g->sx, bp);
			else if (!j->vec || conv_im2col_avx512(g, xin, c0, c1, cw, bp))
				im2col_pack(g, xin, c0, c1, cw, bp);
			packed = blk;
		}
		int64_t yoff = (ni * g->M + gi * g->Mg) * g->sy + c0;
		const float *w = j->wp + gi * j->wp_group;
		struct epi_arg ea = { j, j->sum ? j->sum + (ni * g->M + gi * g->Mg) * g->ss + c0 : NULL,
				      j->b ? j->b + gi * g->Mg : NULL };
		struct sgemm_epi ep = { conv_epi, &ea };
		const struct sgemm_epi *epp = j->b || j->sum || j->n->p.conv.act.kind != ACT_NONE ? &ep : NULL;
		if (j->direct)
			conv_direct_avx512(g, w, xin, c0, c1, m0, m1, j->y + yoff, g->sy, epp, j->dmask);
		else if (j->trans)
			sgemm_packed_t(j->k, g->Mg, c1 - c0, g->K, bp, w, m0, m1, j->y + yoff, g->sy, epp);
		else
			sgemm_packed(j->k, g->Mg, c1 - c0, g->K, w, bp, m0, m1, j->y + yoff, g->sy, epp);
	}
}

/* Depthwise 3x3 on a zero-padded copy of the plane (pad: ph x pw floats,
 * the input row ih at row ih + pt, column iw at iw + pl): every output has
 * its nine taps in range, so each row is one vectorised pass, edges too. */
struct dw_pad { float *buf, *z; int64_t ph, pw; };

static void dw_pad_dims(const struct conv_geom *g, struct dw_pad *p)
{
	p->ph = (g->OH - 1) * g->sh + 2 * g->dh + 1;
	p->pw = (g->OW - 1) * g->sw + 2 * g->dw + 1;
}

/* Copies and zeroing of a few floats inline (vectors of 16, then the
 * rest): a 14x14 or 7x7 plane's rows are too short for a libc call per
 * row, which cost more than the taps (576 such planes in a layer). */
static inline __attribute__((always_inline)) void dw_copy(float *d, const float *s, int64_t n)
{
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		*(v16sf_u *)(d + i) = *(const v16sf_u *)(s + i);
	for (; i < n; i++)
		d[i] = s[i];
}

static inline __attribute__((always_inline)) void dw_zero(float *d, int64_t n)
{
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		*(v16sf_u *)(d + i) = (v16sf_u){ 0 };
	for (; i < n; i++)
		d[i] = 0.f;
}

CPU_CLONES
static void dw3x3_plane(const struct conv_geom *g, const float *x, const float *w, float bias,
			float *y, const struct dw_pad *p)
{
	int64_t sw = g->sw, dw = g->dw, pw = p->pw;
	for (int64_t r = 0; r < p->ph; r++) {
		float *d = p->buf + r * pw;
		int64_t ih = r - g->pt, lo = g->pl < 0 ? 0 : g->pl;
		int64_t hi = g->pl + g->W < pw ? g->pl + g->W : pw;
		if (ih < 0 || ih >= g->H || hi <= lo) {
			dw_zero(d, pw);
			continue;
		}
		dw_zero(d, lo);
		dw_copy(d + lo, x + ih * g->W + (lo - g->pl), hi - lo);
		dw_zero(d + hi, pw - hi);
	}
	float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5];
	float w6 = w[6], w7 = w[7], w8 = w[8];
	if (sw == 1 && dw == 1 && g->sh == 1) {
		/* the rows as one run over the padded plane (pw - OW results
		 * per row thrown away): long vectors on 7x7 and 14x14 planes */
		const float *a0 = p->buf, *a1 = a0 + g->dh * pw, *a2 = a1 + g->dh * pw;
		float *z = p->z;
		int64_t n = (g->OH - 1) * pw + g->OW;
		for (int64_t i = 0; i < n; i++)
			z[i] = bias + w0 * a0[i] + w1 * a0[i + 1] + w2 * a0[i + 2] +
			       w3 * a1[i] + w4 * a1[i + 1] + w5 * a1[i + 2] +
			       w6 * a2[i] + w7 * a2[i + 1] + w8 * a2[i + 2];
		for (int64_t oh = 0; oh < g->OH; oh++)
			dw_copy(y + oh * g->OW, z + oh * pw, g->OW);
		return;
	}
	for (int64_t oh = 0; oh < g->OH; oh++) {
		const float *a0 = p->buf + oh * g->sh * pw, *a1 = a0 + g->dh * pw, *a2 = a1 + g->dh * pw;
		float *yr = y + oh * g->OW;
		if (sw == 1 && dw == 1) {
			for (int64_t ow = 0; ow < g->OW; ow++)
				yr[ow] = bias + w0 * a0[ow] + w1 * a0[ow + 1] + w2 * a0[ow + 2] +
					 w3 * a1[ow] + w4 * a1[ow + 1] + w5 * a1[ow + 2] +
					 w6 * a2[ow] + w7 * a2[ow + 1] + w8 * a2[ow + 2];
		} else if (sw == 2 && dw == 1) {
			for (int64_t ow = 0; ow < g->OW; ow++)
				yr[ow] = bias + w0 * a0[2 * ow] + w1 * a0[2 * ow + 1] + w2 * a0[2 * ow + 2] +
					 w3 * a1[2 * ow] + w4 * a1[2 * ow + 1] + w5 * a1[2 * ow + 2] +
					 w6 * a2[2 * ow] + w7 * a2[2 * ow + 1] + w8 * a2[2 * ow + 2];
		} else {
			for (int64_t ow = 0; ow < g->OW; ow++) {
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

/* Floats of a thread's depthwise scratch: for conv_dw3x3_avx512 (vec), a
 * row of W zeros; for dw3x3_plane, the padded plane and the run below it
 * (3x3 only; 0 otherwise). */
static size_t dw_scratch_floats(const struct conv_geom *g, int vec)
{
	struct dw_pad pad;
	if (vec)
		return (size_t)g->W;
	if (g->kh != 3 || g->kw != 3)
		return 0;
	dw_pad_dims(g, &pad);
	return (size_t)(pad.ph * pad.pw + g->OH * pad.pw + 16);
}

/* The AVX-512 kernel's share of a thread: whole planes. (Split by output
 * rows instead, so that each thread would read the pixels the convs
 * around it wrote, mobilenet_v2's depthwise convs took longer on two
 * threads: 2.42 against 2.10 ms for the 17 of them, interleaved. Measured
 * again once the pool gave slice i to thread i, rows where each thread
 * gets 8 or more: the depthwise convs at 56x56 and 28x28 0.512 -> 0.570
 * ms, the 1x1 convs around them 0.716 -> 0.661, the model unchanged.) */
static void dw_vec_task(struct conv_job *j, float *zero, int index, int count)
{
	const struct conv_geom *g = &j->g;
	const struct act_params *act = &j->n->p.conv.act;
	enum dw_act a = act->kind == ACT_RELU ? DW_ACT_RELU : act->kind == ACT_CLIP ? DW_ACT_CLIP : DW_ACT_NONE;
	struct dw_epi ep = { NULL, a, act->alpha, act->beta };
	int64_t t0, t1;

	tpool_slice(g->N * g->M, index, count, &t0, &t1);
	memset(zero, 0, (size_t)g->W * sizeof(float));
	for (int64_t t = t0; t < t1; t++) {
		int64_t ch = t % g->M;
		float *y = j->y + t * g->sy;
		ep.sum = j->sum ? j->sum + t * g->ss : NULL;
		conv_dw3x3_avx512(g, j->x + t * g->sx, j->w + ch * 9, j->b ? j->b[ch] : 0.f, y, zero, &ep);
		if (ep.act == DW_ACT_NONE && act->kind != ACT_NONE)
			cpu_act(y, g->OH * g->OW, act);
	}
}

/* A thread's share of the planes; the padded copy in the thread's scratch
 * (a malloc per call was a fresh mapping in a worker's arena each time:
 * page faults that kept depthwise convs from gaining on two threads) */
static void dw_task(void *arg, int index, int count)
{
	struct conv_job *j = arg;
	const struct conv_geom *g = &j->g;
	int64_t plane = g->OH * g->OW, b, e;
	struct dw_pad pad = { NULL, NULL, 0, 0 };

	float *scratch = j->c->scratch[index];

	if (j->vec) {
		dw_vec_task(j, scratch, index, count);
		return;
	}
	tpool_slice(g->N * g->M, index, count, &b, &e);
	if (g->kh == 3 && g->kw == 3) {
		dw_pad_dims(g, &pad);
		pad.buf = scratch;
		pad.z = pad.buf + pad.ph * pad.pw;
	}
	for (int64_t t = b; t < e; t++) {
		int64_t ch = t % g->M;
		const float *x = j->x + t * g->sx, *w = j->w + ch * g->kh * g->kw;
		float *y = j->y + t * g->sy, bias = j->b ? j->b[ch] : 0.f;
		if (pad.buf)
			dw3x3_plane(g, x, w, bias, y, &pad);
		else
			dw_plane(g, x, w, bias, y);
		cpu_bias_act(y, 1, plane, plane, NULL, j->sum ? j->sum + t * g->ss : NULL, &j->n->p.conv.act);
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
	j.k = pl ? pl->k : sgemm_kernel_pick();
	j.vec = pl ? pl->vec : use_vec(j.algo, g, j.k);
	if (j.algo == CONV_DEPTHWISE) {
		if ((rc = cpu_scratch_reserve(c, dw_scratch_floats(g, j.vec) * sizeof(float) + 64)))
			return rc;
		if (c->pool)
			tpool_run(c->pool, dw_task, &j);
		else
			dw_task(&j, 0, 1);
		return 0;
	}
	float *wtmp = NULL;	/* weights that are not constants: packed per call */
	j.trans = pl ? pl->trans : use_trans(g, j.k);
	j.wp = pl ? pl->wp : NULL;
	j.wp_group = pl ? pl->wp_group : 0;
	if (!j.wp && !(j.wp = wtmp = pack_weights(g, j.k, j.trans, j.w, &j.wp_group)))
		return -ENOMEM;
	j.direct = pl ? pl->direct : use_direct(g, j.k, j.trans);
	/* a row band (band.c) runs the node on fewer rows, pads shifted */
	j.dmask = pl && g->H == pl->dm_h && g->OH == pl->dm_oh && g->pt == pl->dm_pt ? pl->dmask : NULL;
	tiling(g, j.k, j.trans, c->threads, pl && pl->chsplit, &j.t);
	if ((rc = cpu_scratch_reserve(c, scratch_bytes(g, &j.t, j.direct))))
		goto out;
	if (c->pool)
		tpool_run(c->pool, conv_gemm_task, &j);
	else
		conv_gemm_task(&j, 0, 1);
out:
	free(wtmp);
	return rc;
}

/* ConvTranspose, per image and group in two passes over the threads:
 * cols = W_g^T X_g (rows: output channel and tap, columns: input pixels),
 * each thread a slice of the columns (OpenBLAS, single-threaded inside
 * the pool); then col2im, each thread a slice of the output channels:
 * bias, then every tap's rows added where they land (ranges computed, no
 * per-element test), then the activation. The cols buffer is shared (the
 * first thread's scratch). */
struct convt_job {
	struct cpu_ctx *c;
	const struct eng_node *n;
	struct conv_geom g;
	const float *x, *w, *b;
	float *y, *cols;
	int64_t ni, gi;		/* the image and group of this pass */
};

static void convt_gemm(void *arg, int64_t n0, int64_t n1)
{
	const struct convt_job *j = arg;
	const struct conv_geom *g = &j->g;	/* H,W input; OH,OW output */
	int64_t hw = g->H * g->W, mk = g->Mg * g->kh * g->kw;
	const float *xg = j->x + (j->ni * g->C + j->gi * g->Cg) * hw;
	const float *wg = j->w + j->gi * g->Cg * mk;

	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)mk, (int)(n1 - n0), (int)g->Cg, 1.f,
		    wg, (int)mk, xg + n0, (int)hw, 0.f, j->cols + n0, (int)hw);
}

CPU_CLONES
static void convt_col2im(void *arg, int64_t m0, int64_t m1)
{
	const struct convt_job *j = arg;
	const struct conv_geom *g = &j->g;
	int64_t hw = g->H * g->W, ohw = g->OH * g->OW;

	for (int64_t m = m0; m < m1; m++) {
		float *yp = j->y + (j->ni * g->M + j->gi * g->Mg + m) * ohw;
		float bv = j->b ? j->b[j->gi * g->Mg + m] : 0.f;
		for (int64_t i = 0; i < ohw; i++)
			yp[i] = bv;
		for (int64_t ki = 0; ki < g->kh; ki++)
			for (int64_t kj = 0; kj < g->kw; kj++) {
				const float *cr = j->cols + ((m * g->kh + ki) * g->kw + kj) * hw;
				/* ow = iw sw + off in [0, OW): iw in [lo, hi) */
				int64_t off = kj * g->dw - g->pl;
				int64_t lo = off >= 0 ? 0 : (-off + g->sw - 1) / g->sw;
				int64_t hi = g->OW - 1 - off < 0 ? 0 : (g->OW - 1 - off) / g->sw + 1;
				hi = hi > g->W ? g->W : hi;
				for (int64_t ih = 0; ih < g->H; ih++) {
					int64_t oh = ih * g->sh - g->pt + ki * g->dh;
					if (oh < 0 || oh >= g->OH)
						continue;
					float *yr = yp + oh * g->OW + off;
					const float *c = cr + ih * g->W;
					if (g->sw == 1)
						for (int64_t iw = lo; iw < hi; iw++)
							yr[iw] += c[iw];
					else if (g->sw == 2)
						for (int64_t iw = lo; iw < hi; iw++)
							yr[2 * iw] += c[iw];
					else
						for (int64_t iw = lo; iw < hi; iw++)
							yr[iw * g->sw] += c[iw];
				}
			}
		cpu_bias_act(yp, 1, ohw, ohw, NULL, NULL, &j->n->p.conv.act);
	}
}

/* ConvTranspose whose taps never overlap (strides equal to the kernel, no
 * dilation, no pads, the output exactly H sh x W sw: the 2x2 stride-2
 * upsampling of U-Net and DBNet heads): y[m][ih sh + ki][iw sw + kj] =
 * b[m] + sum over ci of w[ci][m][ki][kj] x[ci][ih][iw], each output row
 * summed in registers from the input row and written once, then its
 * activation (kw = 2 vectorised; other widths one column at a time). (Through cols and col2im, dbnet_640's 16-channel 2x2
 * layers ran at 10-13 % of peak: K = 16 moves data more than it computes,
 * and cols and y each took a pass over 6.5 MB.) */

static int convt_direct(const struct conv_geom *g)
{
	const char *e = getenv("SPLITD_CONVT_DIRECT");	/* measurements: 0 = cols + col2im */
	return g->sh == g->kh && g->sw == g->kw && g->dh == 1 && g->dw == 1 && !g->pt && !g->pl &&
	       g->OH == g->H * g->sh && g->OW == g->W * g->sw && !(e && *e == '0');
}

/* A ConvTranspose's geometry: input x (C x H x W), output y (M x OH x OW). */
static void convt_geom(const struct eng_node *n, const struct tensor_view *x,
		       const struct tensor_view *y, struct conv_geom *g)
{
	const struct conv_params *p = &n->p.conv;
	int sp = x->ndim - 2;
	*g = (struct conv_geom){ .N = x->shape[0], .C = x->shape[1], .H = sp == 2 ? x->shape[2] : 1,
				 .W = x->shape[x->ndim - 1], .M = y->shape[1],
				 .OH = sp == 2 ? y->shape[2] : 1, .OW = y->shape[y->ndim - 1],
				 .G = p->group, .kh = p->kernel[0], .kw = p->kernel[1],
				 .sh = p->stride[0], .sw = p->stride[1], .dh = p->dil[0], .dw = p->dil[1],
				 .pt = p->pads[0], .pl = p->pads[1] };
	g->Cg = g->C / g->G;
	g->Mg = g->M / g->G;
}

/* Once per node: which path, and the cols buffer only the general one
 * needs (one image and group: Mg kh kw x H W floats). */
int cpu_conv_transpose_prepare(struct engine *e, struct eng_node *n)
{
	struct conv_plan *pl = calloc(1, sizeof(*pl));
	struct tensor_view x = eng_view(&e->t[n->in[0]], NULL), y = eng_view(&e->t[n->out[0]], NULL);
	struct conv_geom g;

	if (!pl)
		return -ENOMEM;
	convt_geom(n, &x, &y, &g);
	n->packed = pl;
	pl->direct = convt_direct(&g);
	n->work_bytes = pl->direct ? 0 : (size_t)(g.Mg * g.kh * g.kw * g.H * g.W) * 4 + 4;
	return 0;
}

/* Output row ih sh + ki of channels [m, m + MB): input columns [c, c + 16 CB)
 * summed over the input channels in registers (MB x CB x kw chains, each
 * input vector loaded once for all of them), then 2 kw = 2 interleaved into
 * the row as it is stored; the bias added here, the activation after. */
static inline __attribute__((always_inline)) void
convt_block(const struct convt_job *j, int64_t m, int64_t ih, int64_t ki, int64_t c, const int MB,
	    const int CB)
{
	const struct conv_geom *g = &j->g;
	int64_t hw = g->H * g->W, ohw = g->OH * g->OW, taps = g->kh * g->kw;
	const float *xg = j->x + (j->ni * g->C + j->gi * g->Cg) * hw + ih * g->W + c;
	const float *wm = j->w + (j->gi * g->Cg * g->Mg + m) * taps + ki * 2;
	v16sf acc[4][4][2];

	for (int a = 0; a < MB; a++)
		for (int q = 0; q < CB; q++)
			acc[a][q][0] = acc[a][q][1] = (v16sf){ 0 };
	for (int64_t ci = 0; ci < g->Cg; ci++) {
		v16sf x[4];
		for (int q = 0; q < CB; q++)
			x[q] = *(const v16sf_u *)(xg + ci * hw + 16 * q);
		for (int a = 0; a < MB; a++) {
			const float *w = wm + (ci * g->Mg + a) * taps;
			float w0 = w[0], w1 = w[1];
			for (int q = 0; q < CB; q++) {
				acc[a][q][0] += w0 * x[q];
				acc[a][q][1] += w1 * x[q];
			}
		}
	}
	for (int a = 0; a < MB; a++) {
		int64_t mo = j->gi * g->Mg + m + a;
		float bv = j->b ? j->b[mo] : 0.f;
		float *yr = j->y + (j->ni * g->M + mo) * ohw + (ih * g->sh + ki) * g->OW + 2 * c;
		for (int q = 0; q < CB; q++) {
			v16sf lo = __builtin_shufflevector(acc[a][q][0], acc[a][q][1], 0, 16, 1, 17, 2, 18, 3,
							   19, 4, 20, 5, 21, 6, 22, 7, 23);
			v16sf hi = __builtin_shufflevector(acc[a][q][0], acc[a][q][1], 8, 24, 9, 25, 10, 26,
							   11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
			*(v16sf_u *)(yr + 32 * q) = bv + lo;
			*(v16sf_u *)(yr + 32 * q + 16) = bv + hi;
		}
	}
}

/* Output channel m's row ih sh + ki, input columns [c0, W), one at a time. */
static void convt_tail(const struct convt_job *j, int64_t m, int64_t ih, int64_t ki, int64_t c0)
{
	const struct conv_geom *g = &j->g;
	int64_t hw = g->H * g->W, ohw = g->OH * g->OW, taps = g->kh * g->kw, mo = j->gi * g->Mg + m;
	const float *xg = j->x + (j->ni * g->C + j->gi * g->Cg) * hw + ih * g->W;
	const float *wm = j->w + (j->gi * g->Cg * g->Mg + m) * taps + ki * g->kw;
	float *yr = j->y + (j->ni * g->M + mo) * ohw + (ih * g->sh + ki) * g->OW;
	float bv = j->b ? j->b[mo] : 0.f;

	for (int64_t c = c0; c < g->W; c++)
		for (int64_t kj = 0; kj < g->kw; kj++) {
			float acc = 0.f;
			for (int64_t ci = 0; ci < g->Cg; ci++)
				acc += wm[ci * g->Mg * taps + kj] * xg[ci * hw + c];
			yr[c * g->sw + kj] = bv + acc;
		}
}

/* Units [u0, u1) of (block of 4 output channels, input row) of image ni,
 * group gi: every output row they make, bias and activation included. */
CPU_CLONES
static void convt_rows(void *arg, int64_t u0, int64_t u1)
{
	const struct convt_job *j = arg;
	const struct conv_geom *g = &j->g;
	int64_t ohw = g->OH * g->OW;

	for (int64_t u = u0; u < u1; u++) {
		int64_t m0 = u / g->H * 4, ih = u % g->H, m1 = m0 + 4 < g->Mg ? m0 + 4 : g->Mg;
		for (int64_t ki = 0; ki < g->kh; ki++) {
			if (g->kw == 2 && m1 - m0 == 4) {	/* 4 channels x 16 columns */
				int64_t c = 0;
				for (; c + 16 <= g->W; c += 16)
					convt_block(j, m0, ih, ki, c, 4, 1);
				for (int64_t m = m0; m < m1; m++)
					convt_tail(j, m, ih, ki, c);
			} else if (g->kw == 2) {	/* fewer channels: 64 columns, then 16 */
				for (int64_t m = m0; m < m1; m++) {
					int64_t c = 0;
					for (; c + 64 <= g->W; c += 64)
						convt_block(j, m, ih, ki, c, 1, 4);
					for (; c + 16 <= g->W; c += 16)
						convt_block(j, m, ih, ki, c, 1, 1);
					convt_tail(j, m, ih, ki, c);
				}
			} else {
				for (int64_t m = m0; m < m1; m++)
					convt_tail(j, m, ih, ki, 0);
			}
			for (int64_t m = m0; m < m1; m++)
				cpu_bias_act(j->y + (j->ni * g->M + j->gi * g->Mg + m) * ohw +
						     (ih * g->sh + ki) * g->OW,
					     1, g->OW, g->OW, NULL, NULL, &j->n->p.conv.act);
		}
	}
}

CPU_KERNEL(cpu_conv_transpose)
{
	struct convt_job j = { .c = c, .n = n };
	struct conv_geom *g = &j.g;
	const struct conv_plan *pl = n->packed;
	int rc;

	convt_geom(n, &in[0], &out[0], g);
	j.x = in[0].data;
	j.w = in[1].data;
	j.b = n->n_in > 2 && in[2].data ? in[2].data : NULL;
	j.y = out[0].data;
	if (pl ? pl->direct : convt_direct(g)) {
		for (j.ni = 0; j.ni < g->N; j.ni++)
			for (j.gi = 0; j.gi < g->G; j.gi++)
				cpu_parallel(c, (g->Mg + 3) / 4 * g->H, convt_rows, &j);
		return 0;
	}
	if ((rc = cpu_scratch_reserve_n(c, 1, (size_t)(g->Mg * g->kh * g->kw * g->H * g->W) * 4 + 4)))
		return rc;
	j.cols = c->scratch[0];
	for (j.ni = 0; j.ni < g->N; j.ni++)
		for (j.gi = 0; j.gi < g->G; j.gi++) {
			cpu_parallel(c, g->H * g->W, convt_gemm, &j);
			cpu_parallel(c, g->Mg, convt_col2im, &j);
		}
	return 0;
}
