/* Rounding-error tolerances for float32 runs of the engine, by Monte Carlo
 * arithmetic: see errbound.h for the model and why each rule holds.
 * White-box: reads the engine's graph (engine-impl.h) for each node's op,
 * parameters and weights. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine-impl.h"
#include "errbound.h"

#define U ERRBOUND_U
#define INV_SQRT3 0.57735026918962576

struct errbound {
	const struct engine *e;
	double *tol;		/* per tensor index */
	float **ref;		/* the plain run's results, per tensor index */
	float **sd;		/* each node's own rounding sd, per tensor index */
	float **in;		/* the model inputs */
	int samples;
	uint64_t seed;
};

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return code;
}

static int64_t numel(const struct eng_tensor *t)
{
	int64_t n = 1;
	for (int d = 0; d < t->ndim; d++)
		n *= t->shape[d];
	return n;
}

/* the float values of tensor ti at this point of the run */
static const float *vals(const struct engine *e, struct engine_ctx *c, int ti)
{
	const struct eng_tensor *t = &e->t[ti];
	struct tensor_view v;
	if (ti < 0 || t->dtype != TENSOR_F32)
		return NULL;
	if (t->is_const)
		return t->data;
	return engine_ctx_get(c, t->name, &v) ? NULL : v.data;
}

/* ---- activations: slope at the result, own rounding ------------------------ */

/* The slope of act at the point that gave y (an upper bound where y does
 * not tell), and the function's own relative rounding. */
/* fr: the relative accuracy of the implementation's exp, tanh, erf, log
 * and pow (errbound_opts.func_ulp) */
static int act_rule(const struct act_params *a, double y, double fr, double *slope, double *rho)
{
	*rho = 0;
	switch (a->kind) {
	case ACT_NONE: *slope = 1; return 0;
	case ACT_RELU: *slope = y > 0; return 0;
	case ACT_CLIP: *slope = y > a->alpha && y < a->beta; return 0;
	case ACT_NEG: case ACT_ABS: *slope = 1; return 0;
	case ACT_LEAKY_RELU: *slope = y >= 0 ? 1 : fabs(a->alpha); *rho = U; return 0;
	case ACT_SIGMOID: *slope = y * (1 - y) + U; *rho = fr + 2 * U; return 0;
	case ACT_SILU: *slope = 1.1; *rho = fr + 3 * U; return 0;	/* max |d/dz z sig(z)| = 1.0998 */
	case ACT_HARD_SIGMOID: *slope = y > 0 && y < 1 ? fabs(a->alpha) : 0; *rho = 2 * U; return 0;
	case ACT_HARD_SWISH: *slope = 1.5; *rho = 3 * U; return 0;
	case ACT_TANH: *slope = 1 - y * y + U; *rho = fr; return 0;
	case ACT_ERF: *slope = 1.1283792; *rho = fr; return 0;
	case ACT_EXP: *slope = fabs(y); *rho = fr; return 0;
	/* Gelu(x) = x Phi(x): slope Phi(x) + x phi(x), largest at x = sqrt 2:
	 * 0.9214 + 0.2076 = 1.1289 (the tanh form: 1.1290; both dip to -0.129
	 * at x = -sqrt 2). Own rounding: the kernels (CPU and CUDA alike)
	 * evaluate 0.5 x erfc(-x / sqrt 2) and x / (1 + e^-2u) in float64 and
	 * round once (U). Before that, float64 roundings of the argument move
	 * the result by its condition number |x g'(x) / g(x)| (1 + x^2 for
	 * the erf form, 1.6 |x| (1 + 0.134 x^2) for the tanh form: under 1000
	 * while the result is a normal float32, x > -14) times a few 2^-53,
	 * and erfc and exp are within 1 ulp of float64: under 2^-40 relative
	 * in all, so a second U covers it and fr (the float32 functions'
	 * accuracy) does not enter. */
	case ACT_GELU: case ACT_GELU_TANH: *slope = 1.13; *rho = 2 * U; return 0;
	default: return -ENOTSUP;
	}
}

/* ---- per-node standard deviation of the node's own rounding ----------------- */

struct node_io {
	const struct eng_node *nd;
	const struct eng_tensor *x, *y;
	const float *xv, *yv;	/* first input, first output */
	float *sd;		/* out: per element of the first output */
	double fr;		/* relative accuracy of the elementwise functions */
};

static int conv_sd(const struct engine *e, struct engine_ctx *c, struct node_io *io, double wrel)
{
	const struct eng_node *nd = io->nd;
	const struct conv_params *p = &nd->p.conv;
	const struct eng_tensor *x = io->x, *y = io->y, *wt = &e->t[nd->in[1]];
	const float *w = wt->data, *b = nd->n_in > 2 ? vals(e, c, nd->in[2]) : NULL;
	const float *sum = nd->n_in > 3 ? vals(e, c, nd->in[3]) : NULL;
	int sp = x->ndim - 2, tr = nd->kind == OP_CONV_TRANSPOSE;
	int64_t N = x->shape[0], C = x->shape[1], H = sp == 2 ? x->shape[2] : 1, W = x->shape[sp + 1];
	int64_t M = y->shape[1], OH = sp == 2 ? y->shape[2] : 1, OW = y->shape[sp + 1];
	int64_t kh = p->kernel[0], kw = p->kernel[1], sh = p->stride[0], sw = p->stride[1];
	int64_t dh = p->dil[0], dw = p->dil[1], pt = p->pads[0], pl = p->pads[1], G = p->group;
	int64_t Cg = C / G, Mg = M / G, plane = OH * OW;
	float *ax = malloc((size_t)numel(x) * sizeof(float) + 4), *acc = malloc((size_t)plane * sizeof(float) + 4);
	if (!ax || !acc || !w) {
		free(ax), free(acc);
		return -ENOMEM;
	}
	for (int64_t i = 0; i < numel(x); i++)
		ax[i] = fabsf(io->xv[i]);
	double nterms = (double)(Cg * kh * kw) + (b != NULL) + (sum != NULL);
	double k_sd = U * sqrt(nterms / 3) + wrel * INV_SQRT3;
	for (int64_t n = 0; n < N; n++)
		for (int64_t m = 0; m < M; m++) {
			int64_t gi = m / Mg, mo = m % Mg;
			memset(acc, 0, (size_t)plane * sizeof(float));
			for (int64_t ci = 0; ci < Cg; ci++) {
				int64_t ch = gi * Cg + ci;
				const float *xp = ax + (n * C + ch) * H * W;
				for (int64_t i = 0; i < kh; i++)
					for (int64_t jj = 0; jj < kw; jj++) {
						float wv = tr ? fabsf(w[((ch * Mg + mo) * kh + i) * kw + jj])
							      : fabsf(w[((m * Cg + ci) * kh + i) * kw + jj]);
						if (wv == 0)
							continue;
						if (tr) {	/* output oh = ih s - pad + i d */
							for (int64_t ih = 0; ih < H; ih++) {
								int64_t oh = ih * sh - pt + i * dh;
								if (oh < 0 || oh >= OH)
									continue;
								for (int64_t iw = 0; iw < W; iw++) {
									int64_t ow = iw * sw - pl + jj * dw;
									if (ow >= 0 && ow < OW)
										acc[oh * OW + ow] += wv * xp[ih * W + iw];
								}
							}
							continue;
						}
						/* columns ow whose iw = ow sw + off lies in [0, W) */
						int64_t off = jj * dw - pl;
						int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
						int64_t hi = W - 1 - off < 0 ? 0 : (W - 1 - off) / sw + 1;
						if (hi > OW)
							hi = OW;
						for (int64_t oh = 0; oh < OH; oh++) {
							int64_t ih = oh * sh - pt + i * dh;
							if (ih < 0 || ih >= H)
								continue;
							float *ar = acc + oh * OW;
							const float *xr = xp + ih * W + off;
							if (sw == 1)
								for (int64_t ow = lo; ow < hi; ow++)
									ar[ow] += wv * xr[ow];
							else
								for (int64_t ow = lo; ow < hi; ow++)
									ar[ow] += wv * xr[ow * sw];
						}
					}
			}
			double bv = b ? fabs((double)b[m]) : 0;
			for (int64_t o = 0; o < plane; o++) {
				int64_t yi = (n * M + m) * plane + o;
				double mag = acc[o] * (1 + 1e-3) + bv + (sum ? fabs((double)sum[yi]) : 0);
				double slope, rho;
				if (act_rule(&p->act, io->yv[yi], io->fr, &slope, &rho))
					goto unsupported;
				io->sd[yi] = (float)(slope * k_sd * mag + rho * INV_SQRT3 * fabs((double)io->yv[yi]));
			}
		}
	free(ax), free(acc);
	return 0;
unsupported:
	free(ax), free(acc);
	return -ENOTSUP;
}

static int matmul_sd(const struct engine *e, struct engine_ctx *c, struct node_io *io, double wrel)
{
	const struct eng_node *nd = io->nd;
	int gemm = nd->kind == OP_GEMM;
	const struct eng_tensor *at = io->x, *bt = &e->t[nd->in[1]], *y = io->y;
	const float *a = io->xv, *b = vals(e, c, nd->in[1]);
	const float *cv = gemm && nd->n_in > 2 ? vals(e, c, nd->in[2]) : NULL;
	int ra = at->ndim, rb = bt->ndim;
	int ta = gemm && nd->p.gemm.trans_a, tb = gemm && nd->p.gemm.trans_b;
	double alpha = gemm ? nd->p.gemm.alpha : 1, beta = gemm ? nd->p.gemm.beta : 0;
	if (!b || ra < 1 || rb < 1 || (gemm && (ra != 2 || rb != 2)))
		return -ENOTSUP;
	int64_t M = ra == 1 ? 1 : at->shape[ra - 2 + ta], K = at->shape[ra - 1 - ta];
	int64_t Nn = rb == 1 ? 1 : bt->shape[rb - 1 - tb];
	int64_t batch = numel(y) / (M * Nn);
	/* y's batch dims and each operand's step along them (0: broadcast) */
	int yb = y->ndim - (ra > 1) - (rb > 1), nba = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
	int64_t ast[TENSOR_MAX_DIMS] = { 0 }, bst[TENSOR_MAX_DIMS] = { 0 }, sa = M * K, sb = K * Nn;
	for (int d = yb - 1; d >= 0; d--) {
		int da = d - (yb - nba), db = d - (yb - nbb);
		if (da >= 0) {
			ast[d] = at->shape[da] == 1 ? 0 : sa;
			sa *= at->shape[da];
		}
		if (db >= 0) {
			bst[d] = bt->shape[db] == 1 ? 0 : sb;
			sb *= bt->shape[db];
		}
	}
	double k_sd = U * sqrt((K + 2.0) / 3) + wrel * INV_SQRT3;
	const struct eng_tensor *ct = cv ? &e->t[nd->in[2]] : NULL;
	for (int64_t t = 0; t < batch; t++) {
		int64_t oa = 0, ob = 0, rem = t;
		for (int d = yb - 1; d >= 0; d--) {
			int64_t id = rem % y->shape[d];
			rem /= y->shape[d];
			oa += id * ast[d], ob += id * bst[d];
		}
		for (int64_t m = 0; m < M; m++)
			for (int64_t n = 0; n < Nn; n++) {
				double mag = 0;
				for (int64_t k = 0; k < K; k++)
					mag += fabs((double)a[oa + (ta ? k * M + m : m * K + k)]) *
					       fabs((double)b[ob + (tb ? n * K + k : k * Nn + n)]);
				mag *= fabs(alpha);
				if (cv && beta != 0) {	/* C broadcast to [M, N] */
					int cr = ct->ndim;
					int64_t cn = cr >= 1 ? ct->shape[cr - 1] : 1, cm = cr >= 2 ? ct->shape[cr - 2] : 1;
					mag += fabs(beta) * fabs((double)cv[(cm == 1 ? 0 : m * cn) + (cn == 1 ? 0 : n)]);
				}
				io->sd[(t * M + m) * Nn + n] = (float)(k_sd * mag);
			}
	}
	return 0;
}

/* AveragePool, GlobalAveragePool: a sum of the window's n values, scaled */
static void avgpool_sd(struct node_io *io)
{
	const struct eng_node *nd = io->nd;
	const struct pool_params *p = &nd->p.pool;
	const struct eng_tensor *x = io->x, *y = io->y;
	int glob = nd->kind == OP_GLOBAL_AVGPOOL, sp = x->ndim - 2;
	int64_t NC = x->shape[0] * x->shape[1], H = 1, W = 1, OH = 1, OW = 1;
	for (int d = 2; d < x->ndim; d++)
		W *= x->shape[d];
	if (!glob && sp == 2)
		H = x->shape[2], W = x->shape[3];
	if (!glob)
		OW = y->shape[sp + 1], OH = sp == 2 ? y->shape[2] : 1;
	int64_t kh = glob ? H : p->kernel[0], kw = glob ? W : p->kernel[1];
	int64_t sh = glob ? 1 : p->stride[0], sw = glob ? 1 : p->stride[1];
	int64_t dh = glob ? 1 : p->dil[0], dw = glob ? 1 : p->dil[1];
	int64_t pt = glob ? 0 : p->pads[0], pl = glob ? 0 : p->pads[1];
	for (int64_t nc = 0; nc < NC; nc++)
		for (int64_t oh = 0; oh < OH; oh++)
			for (int64_t ow = 0; ow < OW; ow++) {
				double s = 0;
				int64_t cnt = 0;
				for (int64_t i = 0; i < kh; i++) {
					int64_t ih = oh * sh - pt + i * dh;
					if (ih < 0 || ih >= H)
						continue;
					for (int64_t j = 0; j < kw; j++) {
						int64_t iw = ow * sw - pl + j * dw;
						if (iw < 0 || iw >= W)
							continue;
						cnt++;
						s += fabs((double)io->xv[(nc * H + ih) * W + iw]);
					}
				}
				/* mean over the valid taps: a divisor counting pads is larger */
				io->sd[(nc * OH + oh) * OW + ow] =
					cnt ? (float)(U * sqrt((cnt + 1.0) / 3) * s / cnt) : 0;
			}
}

static double max_abs(const float *v, int64_t n)
{
	double m = 0;
	for (int64_t i = 0; i < n; i++)
		m = fmax(m, fabs((double)v[i]));
	return m;
}

/* The Reduce family (but ReduceMean, above): per output element, over the
 * n inputs it reduces, S1 = sum |x|. A float32 implementation sums in any
 * order, every partial sum bounded by S1:
 *  - ReduceSum: a mean without the division: sd <= u S1 sqrt(n / 3);
 *  - ReduceL1: the same with S1 = y;
 *  - ReduceSumSquare: n squares and n - 1 additions of non-negative
 *    terms, partial sums <= y: sd <= u y sqrt(2n / 3);
 *  - ReduceL2 = sqrt(SumSquare): half the sum's relative error, plus the
 *    correctly rounded sqrt: sd <= u y (sqrt(2n / 3) / 2 + 1 / sqrt 3);
 *  - ReduceLogSum = log S: the sum's absolute error divided by |S|
 *    (d log S = dS / S), plus log's own rho |y| / sqrt 3;
 *  - ReduceLogSumExp = log sum exp x_i: each exp relative rho, the sum of
 *    positive terms relative u sqrt(n / 3), both absolute errors of y once
 *    through log (subtracting the maximum first is exact), plus log's own
 *    rho |y| / sqrt 3;
 *  - ReduceProd: n - 1 multiplications, each relative u: u |y| sqrt((n - 1) / 3);
 *  - ReduceMax, ReduceMin: pick one input, exact. */
static int reduce_sd(struct node_io *io, char *err, size_t errlen)
{
	const struct eng_node *nd = io->nd;
	const struct eng_tensor *x = io->x;
	const int64_t *mask = nd->p.axes.axes;
	enum op_kind k = nd->kind;
	int64_t ny = numel(io->y), nx = numel(x), ost[TENSOR_MAX_DIMS], st = 1, cnt = 1;
	if (k == OP_REDUCE_MAX || k == OP_REDUCE_MIN || !nd->p.axes.naxes)
		return 1;
	if (nd->p.axes.naxes != x->ndim)
		return fail(err, errlen, -ENOTSUP, "%s (%s): axes not resolved", nd->name, nd->op);
	for (int d = x->ndim - 1; d >= 0; d--) {
		ost[d] = mask[d] ? 0 : st;
		if (mask[d])
			cnt *= x->shape[d];
		else
			st *= x->shape[d];
	}
	double *s1 = calloc((size_t)ny + 1, sizeof(double));
	if (!s1)
		return -ENOMEM;
	for (int64_t i = 0; i < nx; i++) {
		int64_t rem = i, o = 0;
		for (int d = x->ndim - 1; d >= 0; d--) {
			o += (rem % x->shape[d]) * ost[d];
			rem /= x->shape[d];
		}
		s1[o] += fabs((double)io->xv[i]);
	}
	double nn = (double)cnt;
	for (int64_t i = 0; i < ny; i++) {
		double y = fabs((double)io->yv[i]), sd;
		switch (k) {
		case OP_REDUCE_SUM: case OP_REDUCE_L1: sd = U * s1[i] * sqrt(nn / 3); break;
		case OP_REDUCE_SUM_SQUARE: sd = U * y * sqrt(2 * nn / 3); break;
		case OP_REDUCE_L2: sd = U * y * (sqrt(2 * nn / 3) / 2 + INV_SQRT3); break;
		case OP_REDUCE_LOG_SUM:
			sd = U * s1[i] * sqrt(nn / 3) / exp((double)io->yv[i]) + io->fr * INV_SQRT3 * y;
			break;
		case OP_REDUCE_LOG_SUM_EXP:
			sd = io->fr * INV_SQRT3 + U * sqrt(nn / 3) + io->fr * INV_SQRT3 * y;
			break;
		default:	/* ReduceProd */
			sd = U * y * sqrt((nn > 1 ? nn - 1 : 0) / 3);
			break;
		}
		io->sd[i] = (float)sd;
	}
	free(s1);
	return 0;
}

/* LayerNormalization, per row of n values, as a float32 implementation
 * computes it: the mean m (a mean of n values: error u mean|x| sqrt((n + 1)
 * / 3), which moves every y_i by that times r |s_i|, r = 1 / sqrt(var +
 * eps)); d_i = x_i - m (one rounding); var = mean d^2 (n squares and sums
 * of non-negative terms plus the division: relative u sqrt((2n + 1) / 3)),
 * r = 1 / sqrt(var + eps) (half of var's relative error, plus the sum with
 * eps, the sqrt and the division: 3u), and y_i = d_i r s_i + b_i (three
 * roundings, d_i's own included: u |d_i r s_i| sqrt(3 / 3), u |y_i|). The
 * error of m leaves var unchanged to first order (d var / d m = 0). */
static int layer_norm_sd(const struct engine *e, struct engine_ctx *c, struct node_io *io)
{
	const struct eng_node *nd = io->nd;
	const struct eng_tensor *x = io->x;
	const float *sc = vals(e, c, nd->in[1]);
	int64_t inner = 1, rows = 1, nsc = numel(&e->t[nd->in[1]]);
	if (!sc)
		return -ENOTSUP;
	for (int d = 0; d < x->ndim; d++)
		if (d < nd->p.ln.axis)
			rows *= x->shape[d];
		else
			inner *= x->shape[d];
	double nn = (double)inner;
	for (int64_t r = 0; r < rows; r++) {
		const float *xr = io->xv + r * inner;
		double m = 0, v = 0, ma = 0;
		for (int64_t i = 0; i < inner; i++)
			m += xr[i], ma += fabs((double)xr[i]);
		m /= nn, ma /= nn;
		for (int64_t i = 0; i < inner; i++)
			v += (xr[i] - m) * (xr[i] - m);
		double rs = 1 / sqrt(v / nn + nd->p.ln.eps);
		double rel_r = U * sqrt((2 * nn + 1) / 3) / 2 + 3 * U * INV_SQRT3;
		for (int64_t i = 0; i < inner; i++) {
			double s = fabs((double)sc[nsc == 1 ? 0 : i]), dn = fabs((xr[i] - m) * rs * s);
			io->sd[r * inner + i] = (float)(U * sqrt((nn + 1) / 3) * ma * rs * s + rel_r * dn +
							U * dn + U * INV_SQRT3 * fabs((double)io->yv[r * inner + i]));
		}
	}
	return 0;
}

/* sd of node j's own rounding into io->sd; 1 when the node is exact */
static int node_sd(const struct engine *e, struct engine_ctx *c, struct node_io *io, double wrel,
		   char *err, size_t errlen)
{
	const struct eng_node *nd = io->nd;
	int64_t n = numel(io->y);
	double s;
	switch (nd->kind) {
	case OP_RESHAPE: case OP_TRANSPOSE: case OP_CONCAT: case OP_SPLIT: case OP_SLICE:
	case OP_GATHER: case OP_PAD: case OP_EXPAND: case OP_IDENTITY: case OP_MAXPOOL:
	case OP_GLOBAL_MAXPOOL:
		return 1;
	case OP_RESIZE:
		if (nd->p.resize.mode == RESIZE_NEAREST)
			return 1;
		/* linear: 4 taps, cubic 16, weights summing to 1 (cubic's up to
		 * ~1.5 in |w|); and the source coordinate (d + 0.5) scale - 0.5:
		 * up to 4 roundings of values up to in + 1 per axis, moving the
		 * sample by that many pixels along a slope of at most 2 max|x| a
		 * pixel (a uniform error of that half-width) */
		{
			int nd_ = io->x->ndim;
			double in = (nd_ >= 2 ? io->x->shape[nd_ - 2] : 1) + io->x->shape[nd_ - 1] + 2.0;
			s = (U * sqrt((nd->p.resize.mode == RESIZE_LINEAR ? 5 : 17) / 3.0) * 1.5 +
			     4 * U * in * 2 * INV_SQRT3) * max_abs(io->xv, numel(io->x));
		}
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)s;
		return 0;
	case OP_CAST:	/* float to float, or integers below 2^24 to float: exact */
		return 1;
	case OP_CONV: case OP_CONV_TRANSPOSE:
		if (conv_sd(e, c, io, wrel))
			return fail(err, errlen, -ENOTSUP, "%s (%s): no rounding rule for its activation",
				    nd->name, nd->op);
		return 0;
	case OP_GEMM: case OP_MATMUL:
		if (matmul_sd(e, c, io, wrel))
			return fail(err, errlen, -ENOTSUP, "%s (%s): operands not covered", nd->name, nd->op);
		return 0;
	case OP_AVGPOOL: case OP_GLOBAL_AVGPOOL:
		avgpool_sd(io);
		return 0;
	case OP_REDUCE_MEAN: {
		int64_t cnt = numel(io->x) / (n ? n : 1);
		s = U * sqrt((cnt + 1.0) / 3) * max_abs(io->xv, numel(io->x));
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)s;
		return 0;
	}
	case OP_REDUCE_SUM: case OP_REDUCE_MAX: case OP_REDUCE_MIN: case OP_REDUCE_PROD:
	case OP_REDUCE_L1: case OP_REDUCE_L2: case OP_REDUCE_LOG_SUM: case OP_REDUCE_LOG_SUM_EXP:
	case OP_REDUCE_SUM_SQUARE:
		return reduce_sd(io, err, errlen);
	case OP_LAYER_NORM:
		return layer_norm_sd(e, c, io);
	case OP_WHERE: case OP_SCATTER_ND:
		/* Where picks one of two float values; ScatterND without a
		 * reduction replaces slices: data movement, exact. With add or
		 * mul each element is one rounding: u |y| / sqrt 3 */
		if (nd->kind == OP_WHERE || nd->p.scatter.reduce == SCATTER_NONE)
			return 1;
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)(U * INV_SQRT3 * fabs((double)io->yv[i]));
		return 0;
	case OP_MOD:	/* fmod is exact in binary floating point (IEEE 754 remainder) */
		return 1;
	case OP_TILE: case OP_GATHER_ELEMENTS: case OP_TOPK:	/* data movement, exact */
		return 1;
	case OP_EINSUM: {
		/* a sum of T products of nin factors per output element: each
		 * product nin - 1 roundings, the sum like a dot product's: sd <=
		 * u sqrt((T + nin - 1) / 3) sum |product| (the Conv/MatMul rule) */
		const struct einsum_params *p = &nd->p.einsum;
		const float *v[EINSUM_MAX_IN];
		int64_t st[EINSUM_MAX_IN + 1][EINSUM_MAX_LABELS] = { { 0 } }, idx[EINSUM_MAX_LABELS] = { 0 };
		int64_t off[EINSUM_MAX_IN + 1] = { 0 }, terms = 1;
		double *mag = calloc((size_t)n + 1, sizeof(double));
		if (!mag)
			return -ENOMEM;
		for (int i = 0; i < p->nin; i++)
			if (!(v[i] = vals(e, c, nd->in[i]))) {
				free(mag);
				return fail(err, errlen, -ENOTSUP, "%s (Einsum): operand %d not float", nd->name, i);
			}
		for (int i = 0; i <= p->nin; i++) {
			int r = i < p->nin ? p->rank[i] : p->out_rank;
			const signed char *lab = i < p->nin ? p->in[i] : p->out;
			int64_t k = 1;
			for (int d = r - 1; d >= 0; d--) {
				st[i][lab[d]] += k;
				k *= p->dims[lab[d]];
			}
		}
		for (int l = 0; l < p->nlab; l++)
			terms *= p->dims[l];
		for (int64_t t = 0; t < terms; t++) {
			double pr = 1;
			for (int i = 0; i < p->nin; i++)
				pr *= fabs((double)v[i][off[i]]);
			mag[off[p->nin]] += pr;
			for (int l = p->nlab - 1; l >= 0; l--) {
				for (int i = 0; i <= p->nin; i++)
					off[i] += st[i][l];
				if (++idx[l] < p->dims[l])
					break;
				for (int i = 0; i <= p->nin; i++)
					off[i] -= st[i][l] * p->dims[l];
				idx[l] = 0;
			}
		}
		double per = (double)terms / (double)(n ? n : 1);
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)(U * sqrt((per + p->nin - 1) / 3) * mag[i]);
		free(mag);
		return 0;
	}
	case OP_CUMSUM: {
		/* element j is a sum of the j + 1 values before it along the axis
		 * (j for exclusive), partial sums bounded by P_j = their sum of
		 * |x|: like ReduceSum, sd <= u P_j sqrt((j + 1) / 3) */
		const struct cumsum_params *p = &nd->p.cumsum;
		int64_t outer = 1, inner = 1, len = io->x->shape[p->axis];
		for (int d = 0; d < p->axis; d++)
			outer *= io->x->shape[d];
		for (int d = (int)p->axis + 1; d < io->x->ndim; d++)
			inner *= io->x->shape[d];
		for (int64_t o = 0; o < outer; o++)
			for (int64_t i = 0; i < inner; i++) {
				double acc = 0;
				for (int64_t j0 = 0; j0 < len; j0++) {
					int64_t j = p->reverse ? len - 1 - j0 : j0, el = (o * len + j) * inner + i;
					if (!p->exclusive)
						acc += fabs((double)io->xv[el]);
					io->sd[el] = (float)(U * acc * sqrt((j0 + 1.0) / 3));
					if (p->exclusive)
						acc += fabs((double)io->xv[el]);
				}
			}
		return 0;
	}
	case OP_RANGE:	/* start + i delta: a product and a sum, each one rounding */
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)(U * sqrt(2.0 / 3) * fabs((double)io->yv[i]) +
					    U * INV_SQRT3 * fabs((double)io->xv[0]));
		return 0;
	case OP_SOFTMAX: {
		int64_t len = nd->p.softmax.legacy ? n : io->x->shape[(nd->p.softmax.axis + io->x->ndim) %
									  io->x->ndim];
		s = io->fr + U * sqrt((len + 2.0) / 3);
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)(s * (nd->p.softmax.log ? 1 + fabs((double)io->yv[i]) : fabs((double)io->yv[i])));
		return 0;
	}
	case OP_BATCHNORM: {
		const float *sc = vals(e, c, nd->in[1]), *bi = vals(e, c, nd->in[2]);
		const float *mu = vals(e, c, nd->in[3]), *var = vals(e, c, nd->in[4]);
		int64_t C = io->x->shape[1], plane = n / (io->x->shape[0] * C);
		for (int64_t i = 0; i < n; i++) {
			int64_t ch = (i / plane) % C;
			double ss = sc[ch] / sqrt((double)var[ch] + nd->p.bn.eps), sh = bi[ch] - mu[ch] * ss;
			double mag = fabs(ss * io->xv[i]) + fabs(sh);
			io->sd[i] = (float)((U * sqrt(2.0 / 3) + wrel * INV_SQRT3) * mag);
		}
		return 0;
	}
	case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW:
		s = (nd->kind == OP_POW ? io->fr : U) * INV_SQRT3;
		for (int64_t i = 0; i < n; i++)
			io->sd[i] = (float)(s * fabs((double)io->yv[i]));
		return 0;
	case OP_RELU: case OP_LEAKY_RELU: case OP_CLIP: case OP_SIGMOID: case OP_HARD_SIGMOID:
	case OP_HARD_SWISH: case OP_SILU: case OP_TANH: case OP_EXP: case OP_NEG: case OP_ABS:
	case OP_ERF: case OP_LOG: case OP_SQRT: case OP_RECIPROCAL: case OP_FLOOR: case OP_CEIL:
	case OP_GELU: {
		double slope, rho = 0;
		enum act_kind k = nd->p.act.kind;
		if (k == ACT_LOG)
			rho = io->fr;
		else if (k == ACT_SQRT || k == ACT_RECIPROCAL)
			rho = U;	/* correctly rounded */
		else if (k == ACT_FLOOR || k == ACT_CEIL)
			rho = 0;	/* exact */
		for (int64_t i = 0; i < n; i++) {
			if (k != ACT_LOG && k != ACT_SQRT && k != ACT_RECIPROCAL && k != ACT_FLOOR && k != ACT_CEIL &&
			    act_rule(&nd->p.act, io->yv[i], io->fr, &slope, &rho))
				return fail(err, errlen, -ENOTSUP, "%s (%s): no rounding rule", nd->name, nd->op);
			io->sd[i] = (float)(rho * INV_SQRT3 * fabs((double)io->yv[i]));
		}
		return 0;
	}
	default:
		return fail(err, errlen, -ENOTSUP, "%s: no rounding rule for op %s", nd->name, nd->op);
	}
}

/* ---- the draws ------------------------------------------------------------------ */

/* xorshift; uniform on [-sqrt 3, sqrt 3] (variance 1) */
static double draw(uint64_t *s)
{
	*s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
	return ((double)(*s >> 11) / 9007199254740992.0 * 2 - 1) * 1.7320508075688772;
}

static int set_inputs(const struct engine *e, struct engine_ctx *c, float **in)
{
	char msg[256];
	for (int i = 0; i < e->n_inputs; i++) {
		const struct eng_tensor *t = &e->t[e->inputs[i]];
		struct tensor_view v = eng_view(t, in[i]);
		int rc = engine_ctx_set(c, t->name, &v, msg, sizeof(msg));
		if (rc)
			return rc;
	}
	return 0;
}

/* One draw: the model's inputs, then every node with its own rounding
 * added to its result; at cut `cut` (if >= 0) each float tensor also gets
 * a uniform error within rel |v| + absmax max|v| (an encoding's). Each
 * tensor's |draw - plain| raises dmax. */
static int one_draw(struct errbound *b, struct engine_ctx *c, int cut, double rel, double absmax,
		    double *dmax, char *err, size_t errlen)
{
	const struct engine *e = b->e;
	char msg[256] = "";
	int rc;
	if ((rc = set_inputs(e, c, b->in)))
		return fail(err, errlen, rc, "setting the inputs failed");
	for (int j = 0; j <= e->nn; j++) {
		if (j == cut) {
			int nc = engine_cut_count(e, cut);
			for (int q = 0; q < nc; q++) {
				struct engine_value_info vi;
				struct tensor_view v;
				if (engine_cut_tensor(e, cut, q, &vi) || vi.dtype != TENSOR_F32 ||
				    engine_ctx_get(c, vi.name, &v))
					continue;
				int64_t n = tensor_numel(&v);
				double m = max_abs(v.data, n);
				float *pv = malloc((size_t)n * sizeof(float) + 4);
				if (!pv)
					return -ENOMEM;
				for (int64_t i = 0; i < n; i++) {
					double h = rel * fabs((double)((float *)v.data)[i]) + absmax * m;
					pv[i] = (float)(((float *)v.data)[i] + h * draw(&b->seed) * INV_SQRT3);
				}
				v.data = pv;
				rc = engine_ctx_set(c, vi.name, &v, msg, sizeof(msg));
				free(pv);
				if (rc)
					return fail(err, errlen, rc, "%s: %s", vi.name, msg);
			}
		}
		if (j == e->nn)
			break;
		const struct eng_node *nd = &e->n[j];
		if ((rc = engine_run_range(c, j, j + 1)))
			return fail(err, errlen, rc, "%s: run failed", nd->name);
		for (int k = 0; k < nd->n_out; k++) {
			int ti = nd->out[k];
			const struct eng_tensor *t = &e->t[ti];
			if (t->dtype != TENSOR_F32 || !b->ref[ti])
				continue;
			float *v = (float *)vals(e, c, ti);
			if (!v)
				return -EIO;
			if (b->sd[ti]) {
				float *pv = malloc(t->bytes + 4);
				if (!pv)
					return -ENOMEM;
				for (int64_t i = 0; i < numel(t); i++)
					pv[i] = (float)(v[i] + b->sd[ti][i] * draw(&b->seed));
				struct tensor_view tv = eng_view(t, pv);
				rc = engine_ctx_set(c, t->name, &tv, msg, sizeof(msg));
				free(pv);
				if (rc || !(v = (float *)vals(e, c, ti)))
					return fail(err, errlen, rc ? rc : -EIO, "%s: %s", t->name, msg);
			}
			double d = 0;
			for (int64_t i = 0; i < numel(t); i++)
				d = fmax(d, fabs((double)v[i] - b->ref[ti][i]));
			dmax[ti] = fmax(dmax[ti], d);
		}
	}
	return 0;
}

int errbound_run(const struct engine *e, struct engine_ctx *c, const struct errbound_opts *o,
		 struct errbound **out, char *err, size_t errlen)
{
	double wrel = o ? o->weight_rel : 0;
	double fr = o && o->func_ulp > 0 ? o->func_ulp * 2 * U : ERRBOUND_ULP_RHO;
	struct errbound *b;
	int rc = 0;

	err[0] = 0;
	for (int i = 0; i < e->nt; i++)	/* the float64 reference reads every weight */
		if (e->t[i].is_const && e->t[i].bytes && !e->t[i].data)
			return fail(err, errlen, -EINVAL, "weight '%s' was packed at load and not kept: load "
				    "with engine_opts.keep_weights", e->t[i].name);
	if (!(b = calloc(1, sizeof(*b))))
		return -ENOMEM;
	b->e = e;
	b->samples = o && o->samples > 0 ? o->samples : ERRBOUND_SAMPLES;
	b->seed = 0x9e3779b97f4a7c15ull ^ (o ? o->seed : 0);
	b->ref = calloc((size_t)e->nt + 1, sizeof(float *));
	b->sd = calloc((size_t)e->nt + 1, sizeof(float *));
	b->in = calloc((size_t)e->n_inputs + 1, sizeof(float *));
	b->tol = calloc((size_t)e->nt + 1, sizeof(double));
	if (!b->ref || !b->sd || !b->in || !b->tol) {
		rc = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < e->n_inputs; i++) {
		const struct eng_tensor *t = &e->t[e->inputs[i]];
		struct tensor_view v;
		if ((rc = engine_ctx_get(c, t->name, &v)) || !(b->in[i] = malloc(t->bytes + 4))) {
			rc = fail(err, errlen, rc ? rc : -ENOMEM, "model input '%s' not set", t->name);
			goto out;
		}
		memcpy(b->in[i], v.data, t->bytes);
	}
	/* the plain run, node by node: every result kept, each node's own
	 * rounding sd from its inputs and result */
	for (int j = 0; j < e->nn && !rc; j++) {
		const struct eng_node *nd = &e->n[j];
		if ((rc = engine_run_range(c, j, j + 1))) {
			fail(err, errlen, rc, "%s: run failed", nd->name);
			break;
		}
		for (int k = 0; k < nd->n_out && !rc; k++) {
			const struct eng_tensor *t = &e->t[nd->out[k]];
			if (t->dtype != TENSOR_F32)
				continue;
			if (!(b->ref[nd->out[k]] = malloc(t->bytes + 4))) {
				rc = -ENOMEM;
				break;
			}
			memcpy(b->ref[nd->out[k]], vals(e, c, nd->out[k]), t->bytes);
		}
		const struct eng_tensor *yt = &e->t[nd->out[0]];
		if (rc || yt->dtype != TENSOR_F32)
			continue;
		struct node_io io = { .nd = nd, .x = nd->in[0] >= 0 ? &e->t[nd->in[0]] : NULL, .y = yt,
				      .xv = vals(e, c, nd->in[0]), .yv = b->ref[nd->out[0]], .fr = fr };
		if (!io.x || !io.xv) {	/* an integer first input: shape arithmetic, exact */
			if (nd->kind != OP_CAST && nd->kind != OP_GATHER && nd->kind != OP_EXPAND &&
			    nd->kind != OP_RESHAPE && nd->kind != OP_CONSTANT_OF_SHAPE &&
			    nd->kind != OP_WHERE)	/* a bool condition choosing floats: exact */
				rc = fail(err, errlen, -ENOTSUP, "%s (%s): a float result from a non-float input",
					  nd->name, nd->op);
			continue;
		}
		if (!(io.sd = calloc((size_t)numel(yt) + 1, sizeof(float)))) {
			rc = -ENOMEM;
			break;
		}
		int r = node_sd(e, c, &io, wrel, err, errlen);
		if (r < 0)
			rc = r, free(io.sd);
		else if (r == 1)
			free(io.sd);	/* exact */
		else
			b->sd[nd->out[0]] = io.sd;
	}
	/* the draws: each node's result plus its own rounding, carried on by
	 * the engine through every later node */
	for (int s = 0; s < b->samples && !rc; s++)
		rc = one_draw(b, c, -1, 0, 0, b->tol, err, errlen);
	for (int i = 0; i < e->nt; i++)
		b->tol[i] *= ERRBOUND_SAFETY;
	/* c as after a plain engine_run */
	if (!rc && !(rc = set_inputs(e, c, b->in)))
		rc = engine_run(c);
out:
	if (rc) {
		if (!err[0])
			fail(err, errlen, rc, "error model failed (%d)", rc);
		errbound_free(b);
		return rc;
	}
	*out = b;
	return 0;
}

double errbound_cut_tol(struct errbound *b, struct engine_ctx *c, int cut, double rel,
			double absmax, const char *name, char *err, size_t errlen)
{
	const struct engine *e = b->e;
	int ti = eng_tensor_find(e, name), rc = 0;
	double *dmax = calloc((size_t)e->nt + 1, sizeof(double)), t;
	err[0] = 0;
	if (!dmax)
		return -ENOMEM;
	if (ti < 0 || cut < 0 || cut > e->nn) {
		free(dmax);
		return fail(err, errlen, -EINVAL, "no tensor '%s' or cut %d", name, cut);
	}
	for (int s = 0; s < b->samples && !rc; s++)
		rc = one_draw(b, c, cut, rel, absmax, dmax, err, errlen);
	t = rc ? rc : ERRBOUND_SAFETY * dmax[ti];
	free(dmax);
	if (!rc && !(rc = set_inputs(e, c, b->in)))
		rc = engine_run(c);
	return rc ? rc : t;
}

void errbound_free(struct errbound *b)
{
	if (!b)
		return;
	for (int i = 0; b->e && i < b->e->nt; i++) {
		if (b->ref)
			free(b->ref[i]);
		if (b->sd)
			free(b->sd[i]);
	}
	for (int i = 0; b->e && b->in && i < b->e->n_inputs; i++)
		free(b->in[i]);
	free(b->ref), free(b->sd), free(b->in);
	free(b->tol);
	free(b);
}

double errbound_tol(const struct errbound *b, const char *name)
{
	int ti = eng_tensor_find(b->e, name);
	return ti < 0 ? -1 : b->tol[ti];
}
