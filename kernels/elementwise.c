/* Elementwise ops on the CPU: activations, numpy-broadcast binary ops,
 * BatchNormalization, Softmax, ReduceMean, Cast. */
#include <errno.h>
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "cpu-impl.h"

/* exp(x) in float: range reduction by ln2 and a degree-6 polynomial; about
 * 1 ulp, branch-free so the loops around it vectorise. NaN in, NaN out: the
 * exponent's integer path gets a number (a NaN converted to int is
 * undefined behaviour). */
/* exp's polynomial on the reduced argument r (r2 = r r), a float or a
 * v16sf: one expression, so exp_ps and exp16 evaluate it alike. */
#define EXP_POLY(r, r2)                                                                          \
	((((((1.9875691500e-4f * (r) + 1.3981999507e-3f) * (r) + 8.3334519073e-3f) * (r) +    \
	     4.1665795894e-2f) * (r) + 1.6666665459e-1f) * (r) + 5.0000001201e-1f) * (r2) + (r) + 1.f)

static inline float exp_ps(float x)
{
	const float in = x;
	x = x > 88.3762626647949f ? 88.3762626647949f : x;
	x = x < -87.336f ? -87.336f : x;	/* just above ln(FLT_MIN): no subnormal */
	x = x == x ? x : 0.f;
	float fx = x * 1.44269504088896341f + 0.5f;
	/* floor(fx) as truncation, one down for a negative fraction: equal
	 * to floorf on |fx| < 2^31 (here |fx| < 128.5), and unlike a floorf
	 * call (which GCC keeps as a libm call without -ffast-math) it
	 * vectorises: a SiLU epilogue was 3/4 of yolo_640's time */
	float tr = (float)(int32_t)fx;
	fx = tr > fx ? tr - 1.f : tr;
	float r = x - fx * 0.693359375f;
	r = r + fx * 2.12194440e-4f;
	float r2 = r * r;
	float y = EXP_POLY(r, r2);
	union { int32_t i; float f; } u = { .i = ((int32_t)fx + 127) << 23 };
	return in == in ? y * u.f : in;
}

/* e^-x capped at 2^126 keeps 1 / (1 + e) at FLT_MIN or above: below x =
 * -87.3 the exact sigmoid is subnormal, and subnormal results cost a
 * microcode assist each (random-weight yolo_640's SiLU epilogues spent a
 * third of its time there); FLT_MIN is within FLT_MIN of the exact value. */
#define SIGMOID_EXP_MAX 0x1p126f

static inline float sigmoid_ps(float x)
{
	float e = exp_ps(-x);
	return 1.f / (1.f + (e > SIGMOID_EXP_MAX ? SIGMOID_EXP_MAX : e));
}

/* exp_ps on 16 lanes (v16sf), the same operations in the same order (C11:
 * no FMA contraction), so every lane equals exp_ps of it: the compiler
 * keeps the scalar loop's selects as branches and does not vectorise it. */

/* m ? a : b, m all-ones or 0 per lane */
#define SEL16(m, a, b) ((v16sf)(((m) & (v16si)(a)) | (~(m) & (v16si)(b))))

/* *xp = exp_ps of each lane of *xp */
static inline __attribute__((always_inline)) void exp16(v16sf *xp)
{
	const v16sf zero = { 0 };
	v16sf x = *xp, in = x;
	x = SEL16(x > 88.3762626647949f, zero + 88.3762626647949f, x);
	x = SEL16(x < -87.336f, zero - 87.336f, x);
	x = SEL16(x == x, x, zero);
	v16sf fx = x * 1.44269504088896341f + 0.5f;
	v16sf tr = __builtin_convertvector(__builtin_convertvector(fx, v16si), v16sf);
	fx = SEL16(tr > fx, tr - 1.f, tr);
	v16sf r = x - fx * 0.693359375f;
	r = r + fx * 2.12194440e-4f;
	v16sf r2 = r * r;
	v16sf y = EXP_POLY(r, r2);
	v16si e = (__builtin_convertvector(fx, v16si) + 127) << 23;
	*xp = SEL16(in == in, y * (v16sf)e, in);
}

/* x[0, n) = sigmoid(x) (silu 0) or x sigmoid(x) (silu 1): 16 at a time,
 * the tail by the scalar functions; every element as sigmoid_ps gives. */
static inline __attribute__((always_inline)) void sigmoid_loop(float *x, int64_t n, int silu)
{
	const v16sf zero = { 0 };
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		v16sf v, e;
		memcpy(&v, x + i, sizeof(v));
		e = -v;
		exp16(&e);
		e = SEL16(e > SIGMOID_EXP_MAX, zero + SIGMOID_EXP_MAX, e);
		v16sf s = 1.f / (1.f + e);
		v = silu ? v * s : s;
		memcpy(x + i, &v, sizeof(v));
	}
	for (; i < n; i++)
		x[i] = silu ? x[i] * sigmoid_ps(x[i]) : sigmoid_ps(x[i]);
}

/* ---- integer element access ---- */

static int64_t ld_int(const void *p, enum tensor_dtype t, int64_t i)
{
	switch (t) {
	case TENSOR_I64: return ((const int64_t *)p)[i];
	case TENSOR_I32: return ((const int32_t *)p)[i];
	case TENSOR_I8: return ((const int8_t *)p)[i];
	default: return ((const uint8_t *)p)[i];
	}
}

static void st_int(void *p, enum tensor_dtype t, int64_t i, int64_t v)
{
	switch (t) {
	case TENSOR_I64: ((int64_t *)p)[i] = v; break;
	case TENSOR_I32: ((int32_t *)p)[i] = (int32_t)v; break;
	case TENSOR_I8: ((int8_t *)p)[i] = (int8_t)v; break;
	default: ((uint8_t *)p)[i] = (uint8_t)v; break;
	}
}

CPU_CLONES
static void act_loop(float *x, int64_t n, enum act_kind k, float a, float b)
{
	switch (k) {
	case ACT_NONE:
		break;
	case ACT_RELU:
		for (int64_t i = 0; i < n; i++)
			x[i] = x[i] > 0.f ? x[i] : 0.f;
		break;
	case ACT_LEAKY_RELU:
		for (int64_t i = 0; i < n; i++)
			x[i] = x[i] >= 0.f ? x[i] : x[i] * a;
		break;
	case ACT_CLIP:
		for (int64_t i = 0; i < n; i++) {
			float v = x[i] < a ? a : x[i];
			x[i] = v > b ? b : v;
		}
		break;
	case ACT_SIGMOID:
		sigmoid_loop(x, n, 0);
		break;
	case ACT_HARD_SIGMOID:
		for (int64_t i = 0; i < n; i++) {
			float v = a * x[i] + b;
			v = v < 0.f ? 0.f : v;
			x[i] = v > 1.f ? 1.f : v;
		}
		break;
	case ACT_HARD_SWISH:
		for (int64_t i = 0; i < n; i++) {
			float v = x[i] * (1.f / 6.f) + 0.5f;
			v = v < 0.f ? 0.f : v;
			v = v > 1.f ? 1.f : v;
			x[i] = x[i] * v;
		}
		break;
	case ACT_SILU:
		sigmoid_loop(x, n, 1);
		break;
	case ACT_EXP:
		for (int64_t i = 0; i < n; i++)
			x[i] = expf(x[i]);
		break;
	case ACT_TANH:
		for (int64_t i = 0; i < n; i++)
			x[i] = tanhf(x[i]);
		break;
	case ACT_SQRT:
		for (int64_t i = 0; i < n; i++)
			x[i] = sqrtf(x[i]);
		break;
	case ACT_NEG:
		for (int64_t i = 0; i < n; i++)
			x[i] = -x[i];
		break;
	case ACT_ABS:
		for (int64_t i = 0; i < n; i++)
			x[i] = fabsf(x[i]);
		break;
	case ACT_ERF:
		for (int64_t i = 0; i < n; i++)
			x[i] = erff(x[i]);
		break;
	case ACT_LOG:
		for (int64_t i = 0; i < n; i++)
			x[i] = logf(x[i]);
		break;
	case ACT_RECIPROCAL:
		for (int64_t i = 0; i < n; i++)
			x[i] = 1.f / x[i];
		break;
	case ACT_FLOOR:
		for (int64_t i = 0; i < n; i++)
			x[i] = floorf(x[i]);
		break;
	case ACT_CEIL:
		for (int64_t i = 0; i < n; i++)
			x[i] = ceilf(x[i]);
		break;
	/* Gelu in float64, rounded once: 0.5 x (1 + erf(x / sqrt 2)) as
	 * 0.5 x erfc(-x / sqrt 2), and 0.5 x (1 + tanh u) as x / (1 + e^-2u),
	 * u = sqrt(2/pi) (x + 0.044715 x^3): forms without the cancellation of
	 * 1 + erf and 1 + tanh for negative x, so the result keeps its relative
	 * accuracy down to the underflow (tests/errbound.c: ACT_GELU). -inf
	 * gives NaN (-inf * 0), as the formula does in ONNX's reference and
	 * PyTorch. */
	case ACT_GELU:
		for (int64_t i = 0; i < n; i++) {
			double v = x[i];
			x[i] = (float)(0.5 * v * erfc(-v * 0.70710678118654752440));
		}
		break;
	case ACT_GELU_TANH:
		for (int64_t i = 0; i < n; i++) {
			double v = x[i], u = 0.79788456080286535588 * (v + 0.044715 * v * v * v);
			x[i] = (float)(v / (1 + exp(-2 * u)));
		}
		break;
	}
}

void cpu_act(float *x, int64_t n, const struct act_params *a)
{
	act_loop(x, n, a->kind, a->alpha, a->beta);
}

CPU_CLONES
static void add_row(float *y, const float *s, float b, int64_t n)
{
	if (s)
		for (int64_t i = 0; i < n; i++)
			y[i] += s[i] + b;
	else
		for (int64_t i = 0; i < n; i++)
			y[i] += b;
}

void cpu_bias_act(float *y, int64_t rows, int64_t cols, int64_t ld, const float *bias,
		  const float *sum, const struct act_params *a)
{
	for (int64_t r = 0; r < rows; r++) {
		float *yr = y + r * ld;
		if (bias || sum)
			add_row(yr, sum ? sum + r * ld : NULL, bias ? bias[r] : 0.f, cols);
		if (a->kind != ACT_NONE)
			act_loop(yr, cols, a->kind, a->alpha, a->beta);
	}
}

struct unary_job { const struct tensor_view *in; struct tensor_view *out; const struct act_params *a; };

static void unary_range(void *arg, int64_t b, int64_t e)
{
	struct unary_job *j = arg;
	float *y = (float *)j->out->data + b;
	if (j->in->data != j->out->data)
		memcpy(y, (const float *)j->in->data + b, (e - b) * sizeof(float));
	act_loop(y, e - b, j->a->kind, j->a->alpha, j->a->beta);
}

CPU_KERNEL(cpu_unary)
{
	int64_t cnt = view_numel(&in[0]);
	if (in[0].dtype != TENSOR_F32) {
		for (int64_t i = 0; i < cnt; i++) {
			int64_t v = ld_int(in[0].data, in[0].dtype, i);
			if (n->kind == OP_NEG)
				v = -v;
			else if (n->kind == OP_ABS)
				v = v < 0 ? -v : v;
			else if (n->kind == OP_CLIP)
				v = v < n->p.act.alpha ? (int64_t)n->p.act.alpha :
				    v > n->p.act.beta ? (int64_t)n->p.act.beta : v;
			else
				v = v > 0 ? v : 0;
			st_int(out[0].data, in[0].dtype, i, v);
		}
		return 0;
	}
	struct unary_job j = { &in[0], &out[0], &n->p.act };
	/* chunks of 4096 so threads stay balanced and the tail is small */
	int64_t chunks = (cnt + 4095) / 4096;
	if (chunks <= 1 || !c || c->threads == 1) {
		unary_range(&j, 0, cnt);
		return 0;
	}
	cpu_parallel(c, cnt, unary_range, &j);
	return 0;
}

/* ---- binary ops with numpy broadcasting ---- */

struct bin_job {
	enum op_kind op;
	enum tensor_dtype dt, dtb;
	int nd;			/* coalesced rank, last dim is the row */
	int64_t shape[TENSOR_MAX_DIMS], sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
	const void *a, *b;
	void *y;
	int64_t rows, row;
};

CPU_CLONES
static void bin_row_f32(enum op_kind op, const float *a, int64_t sa, const float *b, int64_t sb,
			float *y, int64_t n)
{
#define LOOP(expr) do { \
	if (sa && sb) for (int64_t i = 0; i < n; i++) { float x = a[i], z = b[i]; y[i] = expr; } \
	else if (sa) { float z = b[0]; for (int64_t i = 0; i < n; i++) { float x = a[i]; y[i] = expr; } } \
	else if (sb) { float x = a[0]; for (int64_t i = 0; i < n; i++) { float z = b[i]; y[i] = expr; } } \
	else { float x = a[0], z = b[0]; for (int64_t i = 0; i < n; i++) y[i] = expr; } \
} while (0)
	switch (op) {
	case OP_ADD: LOOP(x + z); break;
	case OP_SUB: LOOP(x - z); break;
	case OP_MUL: LOOP(x * z); break;
	case OP_DIV: LOOP(x / z); break;
	case OP_POW: LOOP(powf(x, z)); break;
	default: break;
	}
#undef LOOP
}

static int64_t ipow(int64_t b, int64_t e)
{
	int64_t r = 1;
	if (e < 0)
		return b == 1 ? 1 : b == -1 ? (e % 2 ? -1 : 1) : 0;
	while (e) {
		if (e & 1)
			r *= b;
		b *= b;
		e >>= 1;
	}
	return r;
}

static void bin_row_int(const struct bin_job *j, const void *a, int64_t sa, const void *b,
			int64_t sb, void *y, int64_t n)
{
	for (int64_t i = 0; i < n; i++) {
		int64_t x = ld_int(a, j->dt, i * sa);
		int64_t z = ld_int(b, j->dtb, i * sb);
		int64_t r = 0;
		switch (j->op) {
		case OP_ADD: r = (int64_t)((uint64_t)x + (uint64_t)z); break;
		case OP_SUB: r = (int64_t)((uint64_t)x - (uint64_t)z); break;
		case OP_MUL: r = (int64_t)((uint64_t)x * (uint64_t)z); break;
		case OP_DIV:	/* ONNX integer Div truncates like C */
			r = z == 0 ? 0 : (x == INT64_MIN && z == -1) ? x : x / z;
			break;
		case OP_POW: r = ipow(x, z); break;
		default: break;
		}
		if (j->dt == TENSOR_U8 && j->op == OP_DIV)
			r = z == 0 ? 0 : (int64_t)((uint64_t)x / (uint64_t)z);
		st_int(y, j->dt, i, r);
	}
}

static void bin_range(void *arg, int64_t r0, int64_t r1)
{
	struct bin_job *j = arg;
	size_t ea = tensor_dtype_size(j->dt), eb = tensor_dtype_size(j->dtb);
	int last = j->nd - 1;
	for (int64_t r = r0; r < r1; r++) {
		int64_t oa = 0, ob = 0, rem = r;
		for (int d = last - 1; d >= 0; d--) {
			int64_t i = rem % j->shape[d];
			rem /= j->shape[d];
			oa += i * j->sa[d];
			ob += i * j->sb[d];
		}
		const char *pa = (const char *)j->a + oa * ea, *pb = (const char *)j->b + ob * eb;
		char *py = (char *)j->y + r * j->row * ea;
		if (j->dt == TENSOR_F32 && j->dtb == TENSOR_F32)
			bin_row_f32(j->op, (const float *)pa, j->sa[last], (const float *)pb,
				    j->sb[last], (float *)py, j->row);
		else if (j->dt == TENSOR_F32) {	/* Pow with an integer exponent */
			for (int64_t i = 0; i < j->row; i++) {
				int64_t z = j->dtb == TENSOR_I64 ? ((const int64_t *)pb)[i * j->sb[last]] :
					    ((const int32_t *)pb)[i * j->sb[last]];
				((float *)py)[i] = powf(((const float *)pa)[i * j->sa[last]], (float)z);
			}
		} else
			bin_row_int(j, pa, j->sa[last], pb, j->sb[last], py, j->row);
	}
}

CPU_KERNEL(cpu_binary)
{
	const struct tensor_view *A = &in[0], *B = &in[1], *Y = &out[0];
	struct bin_job j = { .op = n->kind, .dt = A->dtype, .dtb = B->dtype, .a = A->data,
			     .b = B->data, .y = Y->data };
	int nd = Y->ndim;
	int64_t sa[TENSOR_MAX_DIMS + 1], sb[TENSOR_MAX_DIMS + 1], sh[TENSOR_MAX_DIMS + 1];
	int64_t ka = 1, kb = 1;

	if (view_numel(Y) == 0)
		return 0;
	/* strides in elements, 0 where broadcast */
	for (int d = nd - 1; d >= 0; d--) {
		int ia = d - (nd - A->ndim), ib = d - (nd - B->ndim);
		int64_t da = ia >= 0 ? A->shape[ia] : 1, db = ib >= 0 ? B->shape[ib] : 1;
		sa[d] = da == 1 ? 0 : ka;
		sb[d] = db == 1 ? 0 : kb;
		ka *= da;
		kb *= db;
		sh[d] = Y->shape[d];
	}
	if (nd == 0) {
		sh[0] = 1, sa[0] = sb[0] = 0;
		nd = 1;
	}
	/* coalesce dims of size 1 away and merge neighbours with the same pattern */
	int k = 0;
	for (int d = 0; d < nd; d++) {
		if (sh[d] == 1)
			continue;
		if (k && ((sa[d] == 0) == (j.sa[k - 1] == 0)) && ((sb[d] == 0) == (j.sb[k - 1] == 0)) &&
		    (!sa[d] || j.sa[k - 1] == sa[d] * sh[d]) && (!sb[d] || j.sb[k - 1] == sb[d] * sh[d])) {
			j.shape[k - 1] *= sh[d];
			j.sa[k - 1] = sa[d];
			j.sb[k - 1] = sb[d];
			continue;
		}
		j.shape[k] = sh[d], j.sa[k] = sa[d], j.sb[k] = sb[d];
		k++;
	}
	if (!k) {
		j.shape[0] = 1, j.sa[0] = j.sb[0] = 0;
		k = 1;
	}
	j.nd = k;
	j.row = j.shape[k - 1];
	j.rows = view_numel(Y) / j.row;
	if (j.rows == 1 && j.row >= 8192 && c && c->threads > 1 && j.sa[0] <= 1 && j.sb[0] <= 1) {
		/* one long row: split it into pseudo-rows */
		int64_t parts = 64;
		while (j.row % parts)
			parts /= 2;
		j.row /= parts;
		j.rows = parts;
		j.nd = 2;
		j.shape[1] = j.row;
		j.shape[0] = parts;
		j.sa[1] = j.sa[0];
		j.sb[1] = j.sb[0];
		j.sa[0] *= j.row;
		j.sb[0] *= j.row;
	}
	cpu_parallel(c, j.rows, bin_range, &j);
	return 0;
}

/* ---- BatchNormalization (when not folded into a conv) ---- */

struct bn_job { const struct tensor_view *x; float *y; const float *scale, *shift; int64_t C, plane; };

static void bn_range(void *arg, int64_t b, int64_t e)
{
	struct bn_job *j = arg;
	const float *x = j->x->data;
	for (int64_t t = b; t < e; t++) {
		int64_t ch = t % j->C;
		const float *xp = x + t * j->plane;
		float *yp = j->y + t * j->plane;
		float s = j->scale[ch], h = j->shift[ch];
		for (int64_t i = 0; i < j->plane; i++)
			yp[i] = xp[i] * s + h;
	}
}

CPU_KERNEL(cpu_batchnorm)
{
	const struct tensor_view *x = &in[0];
	int64_t C = x->shape[1], plane = 1;
	float *ss = malloc(2 * C * sizeof(float) + 4);
	if (!ss)
		return -ENOMEM;
	for (int i = 2; i < x->ndim; i++)
		plane *= x->shape[i];
	const float *sc = in[1].data, *bi = in[2].data, *mu = in[3].data, *var = in[4].data;
	for (int64_t i = 0; i < C; i++) {
		ss[i] = sc[i] / sqrtf(var[i] + n->p.bn.eps);
		ss[C + i] = bi[i] - mu[i] * ss[i];
	}
	struct bn_job j = { x, out[0].data, ss, ss + C, C, plane };
	cpu_parallel(c, x->shape[0] * C, bn_range, &j);
	free(ss);
	return 0;
}

/* ---- Softmax / LogSoftmax ---- */

struct sm_job { const float *x; float *y; int64_t inner, axis_n, outer_n; int log; };

static void sm_range(void *arg, int64_t b, int64_t e)
{
	struct sm_job *j = arg;
	/* a "row" = one (outer, inner) pair; elements axis_n apart by inner */
	for (int64_t r = b; r < e; r++) {
		int64_t o = r / j->inner, in_i = r % j->inner;
		const float *x = j->x + o * j->axis_n * j->inner + in_i;
		float *y = j->y + o * j->axis_n * j->inner + in_i;
		float m = -INFINITY, s = 0.f;
		for (int64_t i = 0; i < j->axis_n; i++)
			m = x[i * j->inner] > m ? x[i * j->inner] : m;
		for (int64_t i = 0; i < j->axis_n; i++) {
			float v = expf(x[i * j->inner] - m);
			y[i * j->inner] = v;
			s += v;
		}
		if (j->log) {
			float ls = logf(s);
			for (int64_t i = 0; i < j->axis_n; i++)
				y[i * j->inner] = x[i * j->inner] - m - ls;
		} else {
			for (int64_t i = 0; i < j->axis_n; i++)
				y[i * j->inner] /= s;
		}
	}
}

CPU_KERNEL(cpu_softmax)
{
	const struct tensor_view *x = &in[0];
	const struct softmax_params *p = &n->p.softmax;
	struct sm_job j = { x->data, out[0].data, 1, 1, 1, p->log };
	int64_t ax = p->axis;

	if (p->legacy) {	/* opset < 13: flatten to [prod(:axis), prod(axis:)] */
		for (int i = 0; i < ax; i++)
			j.outer_n *= x->shape[i];
		for (int i = (int)ax; i < x->ndim; i++)
			j.axis_n *= x->shape[i];
	} else {
		for (int i = 0; i < ax; i++)
			j.outer_n *= x->shape[i];
		j.axis_n = x->shape[ax];
		for (int i = (int)ax + 1; i < x->ndim; i++)
			j.inner *= x->shape[i];
	}
	if (!j.axis_n)
		return 0;
	cpu_parallel(c, j.outer_n * j.inner, sm_range, &j);
	return 0;
}

/* ---- ReduceMean (params: per-axis mask in axes[]) ---- */

CPU_KERNEL(cpu_reduce_mean)
{
	const struct tensor_view *x = &in[0];
	const struct axes_params *a = &n->p.axes;
	const float *xd = x->data;
	float *y = out[0].data;
	int64_t ycnt = view_numel(&out[0]), xcnt = view_numel(x);
	int64_t st[TENSOR_MAX_DIMS], ost[TENSOR_MAX_DIMS], k = 1, cnt = 1;

	if (!a->naxes) {
		memcpy(y, xd, xcnt * sizeof(float));
		return 0;
	}
	/* output strides over the kept-dims layout (keepdims does not change
	 * the element order) */
	for (int d = x->ndim - 1; d >= 0; d--) {
		st[d] = k;
		if (!a->axes[d])
			k *= x->shape[d];
		else
			cnt *= x->shape[d];
	}
	for (int d = 0; d < x->ndim; d++)
		ost[d] = a->axes[d] ? 0 : st[d];
	double *acc = calloc(ycnt + 1, sizeof(double));
	if (!acc)
		return -ENOMEM;
	for (int64_t i = 0; i < xcnt; i++) {
		int64_t rem = i, o = 0;
		for (int d = x->ndim - 1; d >= 0; d--) {
			o += (rem % x->shape[d]) * ost[d];
			rem /= x->shape[d];
		}
		acc[o] += xd[i];
	}
	for (int64_t i = 0; i < ycnt; i++)
		y[i] = cnt ? (float)(acc[i] / cnt) : NAN;
	free(acc);
	return 0;
}

/* ---- Cast ---- */

static float half_to_float(uint16_t h)
{
	uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
	union { uint32_t u; float f; } v;
	if (e == 0x1f) {
		v.u = s | 0x7f800000u | (m << 13);
	} else if (e) {
		v.u = s | ((e + 112) << 23) | (m << 13);
	} else {
		v.f = (float)m * 5.9604644775390625e-8f;	/* subnormal: m x 2^-24 */
		v.u |= s;
	}
	return v.f;
}

static uint16_t float_to_half(float f)
{
	union { float f; uint32_t u; } v = { f };
	uint32_t s = (v.u >> 16) & 0x8000, a = v.u & 0x7fffffffu;
	if (a >= 0x7f800000u)	/* inf / nan */
		return (uint16_t)(s | 0x7c00 | (a > 0x7f800000u ? 0x200 : 0));
	if (a >= 0x477ff000u)	/* rounds to >= 65520: inf */
		return (uint16_t)(s | 0x7c00);
	if (a < 0x38800000u) {	/* subnormal half */
		float x = fabsf(f) * 16777216.f;	/* / 2^-24 */
		return (uint16_t)(s | (uint32_t)nearbyintf(x));
	}
	uint32_t r = a + 0xfff + ((a >> 13) & 1);	/* round to nearest even */
	return (uint16_t)(s | ((r - 0x38000000u) >> 13));
}

static double get_d(const void *p, enum tensor_dtype t, int64_t i)
{
	switch (t) {
	case TENSOR_F16: return half_to_float(((const uint16_t *)p)[i]);
	case TENSOR_F32: return ((const float *)p)[i];
	case TENSOR_F64: return ((const double *)p)[i];
	case TENSOR_I32: return ((const int32_t *)p)[i];
	case TENSOR_I64: return (double)((const int64_t *)p)[i];
	case TENSOR_U8: case TENSOR_BOOL: return ((const uint8_t *)p)[i];
	case TENSOR_I8: return ((const int8_t *)p)[i];
	default: return 0;
	}
}

static int64_t get_i(const void *p, enum tensor_dtype t, int64_t i)
{
	switch (t) {
	case TENSOR_I64: return ((const int64_t *)p)[i];
	case TENSOR_I32: return ((const int32_t *)p)[i];
	case TENSOR_U8: case TENSOR_BOOL: return ((const uint8_t *)p)[i];
	case TENSOR_I8: return ((const int8_t *)p)[i];
	default: {
		double d = get_d(p, t, i);
		if (d != d)
			return INT64_MIN;
		if (d >= 9.2233720368547758e18)
			return INT64_MAX;
		if (d <= -9.2233720368547758e18)
			return INT64_MIN;
		return (int64_t)d;
	}
	}
}

CPU_KERNEL(cpu_cast)
{
	const struct tensor_view *x = &in[0];
	int64_t cnt = view_numel(x);
	void *y = out[0].data;
	enum tensor_dtype to = out[0].dtype;

	for (int64_t i = 0; i < cnt; i++) {
		switch (to) {
		case TENSOR_F32: ((float *)y)[i] = (float)get_d(x->data, x->dtype, i); break;
		case TENSOR_F64: ((double *)y)[i] = get_d(x->data, x->dtype, i); break;
		case TENSOR_I64: ((int64_t *)y)[i] = get_i(x->data, x->dtype, i); break;
		case TENSOR_I32: ((int32_t *)y)[i] = (int32_t)get_i(x->data, x->dtype, i); break;
		case TENSOR_U8: ((uint8_t *)y)[i] = (uint8_t)get_i(x->data, x->dtype, i); break;
		case TENSOR_I8: ((int8_t *)y)[i] = (int8_t)get_i(x->data, x->dtype, i); break;
		case TENSOR_BOOL: ((uint8_t *)y)[i] = get_d(x->data, x->dtype, i) != 0; break;
		case TENSOR_F16: ((uint16_t *)y)[i] = float_to_half((float)get_d(x->data, x->dtype, i)); break;
		default: return -ENOTSUP;
		}
	}
	return 0;
}
