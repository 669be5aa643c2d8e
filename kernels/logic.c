/* Comparisons (Equal, Less, LessOrEqual, Greater, GreaterOrEqual), logic
 * (And, Or, Xor, Not), Where and Mod with numpy broadcasting over any
 * number of inputs; Range and ScatterND. Any dtype tensor.h carries
 * (float16 only where Where moves it); bool is one byte, 0 or 1. These ops
 * mostly build masks and shape arithmetic, which constant folding runs at
 * load, so the loops are plain: one output row (last axis) per step. */
#include <errno.h>
#include <math.h>

#include "cpu-impl.h"

/* Broadcast geometry: output shape and each input's element strides (0
 * along broadcast axes). */
struct bcast {
	int nd, nin;
	int64_t shape[TENSOR_MAX_DIMS];
	int64_t st[3][TENSOR_MAX_DIMS];
};

static void bcast_init(struct bcast *b, const struct tensor_view *y, const struct tensor_view *in,
		       int nin)
{
	b->nd = y->ndim;
	b->nin = nin;
	for (int d = 0; d < y->ndim; d++)
		b->shape[d] = y->shape[d];
	for (int i = 0; i < nin; i++) {
		int64_t k = 1;
		for (int d = y->ndim - 1; d >= 0; d--) {
			int id = d - (y->ndim - in[i].ndim);
			int64_t dim = id >= 0 ? in[i].shape[id] : 1;
			b->st[i][d] = dim == 1 ? 0 : k;
			k *= dim;
		}
	}
}

/* element offsets of the start of output row r (rows along the last axis) */
static void bcast_row(const struct bcast *b, int64_t r, int64_t *off)
{
	for (int i = 0; i < b->nin; i++)
		off[i] = 0;
	for (int d = b->nd - 2; d >= 0; d--) {
		int64_t id = r % b->shape[d];
		r /= b->shape[d];
		for (int i = 0; i < b->nin; i++)
			off[i] += id * b->st[i][d];
	}
}

static int is_float(enum tensor_dtype t)
{
	return t == TENSOR_F32 || t == TENSOR_F64;
}

static double ld_f(const void *p, enum tensor_dtype t, int64_t i)
{
	return t == TENSOR_F64 ? ((const double *)p)[i] : ((const float *)p)[i];
}

static int64_t ld_i(const void *p, enum tensor_dtype t, int64_t i)
{
	switch (t) {
	case TENSOR_I64: return ((const int64_t *)p)[i];
	case TENSOR_I32: return ((const int32_t *)p)[i];
	case TENSOR_I8: return ((const int8_t *)p)[i];
	default: return ((const uint8_t *)p)[i];	/* U8, BOOL */
	}
}

static void st_i(void *p, enum tensor_dtype t, int64_t i, int64_t v)
{
	switch (t) {
	case TENSOR_I64: ((int64_t *)p)[i] = v; break;
	case TENSOR_I32: ((int32_t *)p)[i] = (int32_t)v; break;
	case TENSOR_I8: ((int8_t *)p)[i] = (int8_t)v; break;
	default: ((uint8_t *)p)[i] = (uint8_t)v; break;
	}
}

static int cmp_holds(enum op_kind k, int c)	/* c: -1, 0, 1; 2 = unordered (NaN) */
{
	if (c == 2)
		return 0;
	switch (k) {
	case OP_EQUAL: return c == 0;
	case OP_LESS: return c < 0;
	case OP_LESS_EQUAL: return c <= 0;
	case OP_GREATER: return c > 0;
	case OP_GREATER_EQUAL: return c >= 0;
	default: return 0;
	}
}

/* Mod: fmod = 1 is C's fmod (sign of the dividend), fmod = 0 the sign of
 * the divisor (Python's %). An integer division by zero gives 0: the
 * standard leaves it undefined, and the daemon must not trap. */
static int64_t imod(int64_t a, int64_t b, int fmod_, enum tensor_dtype t)
{
	if (b == 0)
		return 0;
	if (b == -1)
		return 0;	/* also INT64_MIN % -1, which traps */
	if (t == TENSOR_U8)
		return (int64_t)((uint64_t)a % (uint64_t)b);
	int64_t r = a % b;
	if (!fmod_ && r != 0 && ((r < 0) != (b < 0)))
		r += b;
	return r;
}

struct logic_job {
	const struct eng_node *n;
	const struct tensor_view *in, *out;
	struct bcast b;
	int64_t row;
};

static void logic_range(void *arg, int64_t r0, int64_t r1)
{
	const struct logic_job *j = arg;
	const struct tensor_view *in = j->in, *y = j->out;
	enum op_kind k = j->n->kind;
	int last = j->b.nd - 1;
	int64_t s0 = last >= 0 ? j->b.st[0][last] : 0, s1 = last >= 0 ? j->b.st[1][last] : 0;
	int64_t s2 = last >= 0 ? j->b.st[2][last] : 0;
	size_t es = tensor_dtype_size(y->dtype);
	int64_t off[3];

	for (int64_t r = r0; r < r1; r++) {
		bcast_row(&j->b, r, off);
		int64_t o = r * j->row;
		for (int64_t i = 0; i < j->row; i++) {
			int64_t a = off[0] + i * s0, bb = off[1] + i * s1;
			switch (k) {
			case OP_WHERE: {
				int c = ((const uint8_t *)in[0].data)[a] != 0;
				const struct tensor_view *src = c ? &in[1] : &in[2];
				int64_t si = c ? bb : off[2] + i * s2;
				memcpy((char *)y->data + (o + i) * es, (const char *)src->data + si * es, es);
				break;
			}
			case OP_NOT:
				((uint8_t *)y->data)[o + i] = !((const uint8_t *)in[0].data)[a];
				break;
			case OP_AND: case OP_OR: case OP_XOR: {
				int p = ((const uint8_t *)in[0].data)[a] != 0;
				int q = ((const uint8_t *)in[1].data)[bb] != 0;
				((uint8_t *)y->data)[o + i] = k == OP_AND ? p && q : k == OP_OR ? p || q : p != q;
				break;
			}
			case OP_MOD:
				if (is_float(y->dtype)) {
					double v = fmod(ld_f(in[0].data, y->dtype, a), ld_f(in[1].data, y->dtype, bb));
					if (y->dtype == TENSOR_F64)
						((double *)y->data)[o + i] = v;
					else
						((float *)y->data)[o + i] = (float)v;
				} else {
					st_i(y->data, y->dtype, o + i,
					     imod(ld_i(in[0].data, y->dtype, a), ld_i(in[1].data, y->dtype, bb),
						  j->n->p.mod.fmod, y->dtype));
				}
				break;
			default: {	/* comparisons */
				enum tensor_dtype t = in[0].dtype;
				int c;
				if (is_float(t)) {
					double p = ld_f(in[0].data, t, a), q = ld_f(in[1].data, t, bb);
					c = p < q ? -1 : p > q ? 1 : p == q ? 0 : 2;
				} else {
					int64_t p = ld_i(in[0].data, t, a), q = ld_i(in[1].data, t, bb);
					c = p < q ? -1 : p > q;
				}
				((uint8_t *)y->data)[o + i] = (uint8_t)cmp_holds(k, c);
				break;
			}
			}
		}
	}
}

CPU_KERNEL(cpu_logic)
{
	struct logic_job j = { n, in, &out[0], { 0 }, 1 };
	int nin = n->kind == OP_NOT ? 1 : n->kind == OP_WHERE ? 3 : 2;
	int64_t cnt = view_numel(&out[0]);

	if (!cnt)
		return 0;
	bcast_init(&j.b, &out[0], in, nin);
	if (out[0].ndim)
		j.row = out[0].shape[out[0].ndim - 1];
	cpu_parallel(c, cnt / j.row, logic_range, &j);
	return 0;
}

/* ---- Range: start + i delta, in the inputs' type ---- */

CPU_KERNEL(cpu_range)
{
	enum tensor_dtype t = out[0].dtype;
	int64_t cnt = view_numel(&out[0]);

	for (int64_t i = 0; i < cnt; i++) {
		switch (t) {
		case TENSOR_F32:
			((float *)out[0].data)[i] = *(const float *)in[0].data +
						    (float)i * *(const float *)in[2].data;
			break;
		case TENSOR_F64:
			((double *)out[0].data)[i] = *(const double *)in[0].data +
						     (double)i * *(const double *)in[2].data;
			break;
		default:
			st_i(out[0].data, t, i, ld_i(in[0].data, t, 0) + i * ld_i(in[2].data, t, 0));
			break;
		}
	}
	return 0;
}

/* ---- ScatterND: data with slices replaced (or added, multiplied) ---- */

CPU_KERNEL(cpu_scatter_nd)
{
	const struct tensor_view *x = &in[0], *ix = &in[1], *up = &in[2];
	enum scatter_reduce red = n->p.scatter.reduce;
	size_t es = tensor_dtype_size(x->dtype);
	int64_t k = ix->shape[ix->ndim - 1], slice = 1, nidx = 1;
	const int64_t *idx = ix->data;

	if (out[0].data != x->data)
		memcpy(out[0].data, x->data, tensor_bytes(x));
	for (int d = (int)k; d < x->ndim; d++)
		slice *= x->shape[d];
	for (int d = 0; d < ix->ndim - 1; d++)
		nidx *= ix->shape[d];
	for (int64_t q = 0; q < nidx; q++) {
		int64_t o = 0;
		for (int d = 0; d < k; d++) {
			int64_t v = idx[q * k + d];
			if (v < 0)
				v += x->shape[d];
			if (v < 0 || v >= x->shape[d])
				return -EINVAL;
			o = o * x->shape[d] + v;
		}
		o *= slice;
		char *y = (char *)out[0].data + o * es;
		const char *u = (const char *)up->data + q * slice * es;
		if (red == SCATTER_NONE) {
			memcpy(y, u, slice * es);
			continue;
		}
		for (int64_t i = 0; i < slice; i++) {
			if (x->dtype == TENSOR_F32) {
				float *p = (float *)y + i, v = ((const float *)u)[i];
				*p = red == SCATTER_ADD ? *p + v : *p * v;
			} else {
				int64_t p = ld_i(y, x->dtype, i), v = ld_i(u, x->dtype, i);
				st_i(y, x->dtype, i, red == SCATTER_ADD ? (int64_t)((uint64_t)p + (uint64_t)v) :
						     (int64_t)((uint64_t)p * (uint64_t)v));
			}
		}
	}
	return 0;
}
