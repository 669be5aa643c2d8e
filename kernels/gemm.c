/* Gemm and MatMul on the CPU through OpenBLAS sgemm, split over threads by
 * batch item or by output columns; Einsum by loops. */
#include <errno.h>
#include <stdlib.h>

#include <cblas.h>

#include "cpu-impl.h"

struct mm_job {
	const float *a, *b;
	float *y;
	int64_t M, N, K, batch;
	int64_t abatch[TENSOR_MAX_DIMS], bbatch[TENSOR_MAX_DIMS], ybatch[TENSOR_MAX_DIMS];
	int nb;
	int ta, tb;
	float alpha, beta;
	int split_n;
};

/* Dot products of 4 rows of w (row stride ldw) with x, 16 lanes at a time,
 * each row prefetched 2 KB ahead: four streams from memory (vgg16's fc6 is
 * 411 MB) kept the hardware prefetchers behind; vgg16's classifier on two
 * threads 18.3 -> 14.8 ms, fc6 on one 22-26 -> 18 (interleaved; 1 KB and
 * 4 KB ahead measured no better). The address is formed as an integer:
 * near a row's end it lies past the weights, where a prefetch is harmless
 * but C pointer arithmetic is not. */
#define GEMV_AHEAD 2048
static inline void dot4(const float *w, int64_t ldw, const float *x, int64_t K, float out[4])
{
	v16sf s[4] = { 0 };
	int64_t k = 0;
	for (; k + 16 <= K; k += 16) {
		v16sf xv = *(const v16sf_u *)(x + k);
		for (int r = 0; r < 4; r++) {
			__builtin_prefetch((const void *)((uintptr_t)(w + r * ldw + k) + GEMV_AHEAD));
			s[r] += *(const v16sf_u *)(w + r * ldw + k) * xv;
		}
	}
	for (int r = 0; r < 4; r++) {
		float t = 0.f;
		for (int l = 0; l < 16; l++)
			t += s[r][l];
		for (int64_t q = k; q < K; q++)
			t += w[r * ldw + q] * x[q];
		out[r] = t;
	}
}

/* y[0, n) = alpha op(B) a + beta y for one row a (a classifier's Linear at
 * batch 1): B's n columns streamed once, no packing. sgemm packed them
 * first (OpenBLAS: 0.51 ms for mobilenet_v2's 1000 x 1280 on one thread;
 * 0.07 for two halves, which fall under its small-matrix path). Transposed
 * B (rows of K, the ONNX export's Linear): dot products; else rows of B
 * scaled and added into y. A's one row is contiguous transposed or not
 * (its stride as a column is M = 1). */
CPU_CLONES
static void gemv(const struct mm_job *j, const float *a, const float *b, int64_t ldb, int64_t n,
		 float *y)
{
	int64_t K = j->K;
	if (j->tb) {
		int64_t i = 0;
		float d[4];
		for (; i + 4 <= n; i += 4) {
			dot4(b + i * ldb, ldb, a, K, d);
			for (int r = 0; r < 4; r++)
				y[i + r] = j->alpha * d[r] + (j->beta != 0.f ? j->beta * y[i + r] : 0.f);
		}
		for (; i < n; i++) {
			float t = 0.f;
			for (int64_t k = 0; k < K; k++)
				t += b[i * ldb + k] * a[k];
			y[i] = j->alpha * t + (j->beta != 0.f ? j->beta * y[i] : 0.f);
		}
	} else {
		for (int64_t i = 0; i < n; i++)
			y[i] = j->beta != 0.f ? j->beta * y[i] : 0.f;
		for (int64_t k = 0; k < K; k++) {
			float s = j->alpha * a[k];
			const float *br = b + k * ldb;
			for (int64_t i = 0; i < n; i++)
				y[i] += s * br[i];
		}
	}
}

static void mm_one(const struct mm_job *j, int64_t bi, int64_t n0, int64_t n1)
{
	/* broadcast batch index -> a/b offsets */
	int64_t rem = bi, ia = 0, ib = 0, ka = 1, kb = 1;
	for (int d = j->nb - 1; d >= 0; d--) {
		int64_t i = rem % j->ybatch[d];
		rem /= j->ybatch[d];
		ia += (j->abatch[d] == 1 ? 0 : i) * ka;
		ib += (j->bbatch[d] == 1 ? 0 : i) * kb;
		ka *= j->abatch[d];
		kb *= j->bbatch[d];
	}
	const float *a = j->a + ia * j->M * j->K;
	const float *b = j->b + ib * j->K * j->N;
	float *y = j->y + bi * j->M * j->N;
	int lda = (int)(j->ta ? j->M : j->K), ldb = (int)(j->tb ? j->K : j->N);
	const float *bcol = j->tb ? b + n0 * j->K : b + n0;
	if (j->M == 1) {
		gemv(j, a, bcol, ldb, n1 - n0, y + n0);
		return;
	}
	cblas_sgemm(CblasRowMajor, j->ta ? CblasTrans : CblasNoTrans, j->tb ? CblasTrans : CblasNoTrans,
		    (int)j->M, (int)(n1 - n0), (int)j->K, j->alpha, a, lda, bcol, ldb, j->beta, y + n0,
		    (int)j->N);
}

static void mm_range(void *arg, int64_t b, int64_t e)
{
	struct mm_job *j = arg;
	if (j->split_n)
		mm_one(j, 0, b, e);
	else
		for (int64_t i = b; i < e; i++)
			mm_one(j, i, 0, j->N);
}

static void mm_run(struct cpu_ctx *c, struct mm_job *j)
{
	int threads = c ? c->threads : 1;
	if (j->M == 0 || j->N == 0)
		return;
	if (j->K == 0) {
		for (int64_t i = 0; i < j->batch * j->M * j->N; i++)
			j->y[i] = j->beta ? j->y[i] * j->beta : 0.f;
		return;
	}
	j->split_n = j->batch < threads && j->M * j->N * j->K >= 1 << 18;
	cpu_parallel(c, j->split_n ? j->N : j->batch, mm_range, j);
}

CPU_KERNEL(cpu_gemm)
{
	const struct gemm_params *p = &n->p.gemm;
	const struct tensor_view *A = &in[0], *B = &in[1], *C = n->n_in > 2 && in[2].data ? &in[2] : NULL;
	struct mm_job j = { .a = A->data, .b = B->data, .y = out[0].data, .batch = 1, .nb = 0,
			    .ta = p->trans_a, .tb = p->trans_b, .alpha = p->alpha };
	j.M = out[0].shape[0];
	j.N = out[0].shape[1];
	j.K = p->trans_a ? A->shape[0] : A->shape[1];
	float *y = out[0].data;
	if (C && p->beta != 0.f) {
		int64_t sm = C->ndim == 2 && C->shape[0] != 1 ? 1 : 0;
		int64_t sn = (C->ndim >= 1 && C->shape[C->ndim - 1] != 1) ? 1 : 0;
		const float *cd = C->data;
		int64_t cn = C->ndim >= 1 ? C->shape[C->ndim - 1] : 1;
		for (int64_t m = 0; m < j.M; m++)
			for (int64_t k = 0; k < j.N; k++)
				y[m * j.N + k] = p->beta * cd[m * sm * cn + k * sn];
		j.beta = 1.f;
	} else {
		j.beta = 0.f;
	}
	mm_run(c, &j);
	return 0;
}

CPU_KERNEL(cpu_matmul)
{
	const struct tensor_view *A = &in[0], *B = &in[1], *Y = &out[0];
	struct mm_job j = { .a = A->data, .b = B->data, .y = Y->data, .alpha = 1.f, .beta = 0.f };
	j.M = A->ndim == 1 ? 1 : A->shape[A->ndim - 2];
	j.K = A->shape[A->ndim - 1];
	j.N = B->ndim == 1 ? 1 : B->shape[B->ndim - 1];
	int ab = A->ndim > 2 ? A->ndim - 2 : 0, bb = B->ndim > 2 ? B->ndim - 2 : 0;
	j.nb = ab > bb ? ab : bb;
	j.batch = 1;
	for (int d = 0; d < j.nb; d++) {
		int ia = d - (j.nb - ab), ib = d - (j.nb - bb);
		j.abatch[d] = ia >= 0 ? A->shape[ia] : 1;
		j.bbatch[d] = ib >= 0 ? B->shape[ib] : 1;
		j.ybatch[d] = j.abatch[d] > j.bbatch[d] ? j.abatch[d] : j.bbatch[d];
		j.batch *= j.ybatch[d];
	}
	/* a batch of rows against one matrix (a transformer's Linear on
	 * [tokens, 1, C] or [1, tokens, C]): A and Y are contiguous
	 * [batch * M, K] and [batch * M, N], so one GEMM instead of batch GEMVs
	 * streaming the weights batch times */
	if (B->ndim == 2 && j.nb > 0) {
		j.M *= j.batch;
		j.batch = 1;
		j.nb = 0;
	}
	mm_run(c, &j);
	return 0;
}

/* ---- Einsum. Two float32 operands whose every label is a batch label (in
 * both and the output), a row (first operand and output), a column (second
 * and output) or a contraction (both, not the output), none repeated within
 * an operand — attention's "BGHID,BGHJD->BGHIJ" — are packed into
 * [batch][M][K] and [batch][K][N], multiplied by sgemm per batch item, and
 * the product scattered into the output's order. Everything else: every
 * combination of the labels' indices, its product of operand elements added
 * to its output element (in double), at loop speed. ---- */

enum { ES_BATCH, ES_ROW, ES_COL, ES_SUM };

struct es_gemm {
	int nl[4];			/* labels per role */
	int lab[4][EINSUM_MAX_LABELS];
	int64_t dim[4];			/* product of the role's dims */
	int64_t st[3][EINSUM_MAX_LABELS];	/* per label: A's, B's, Y's stride */
	const struct einsum_params *p;
	const float *a, *b;
	float *ap, *bp, *cp, *y;
};

/* offset in operand q of the index whose role-r part is flat index i */
static int64_t es_off(const struct es_gemm *g, int q, int r, int64_t i)
{
	int64_t o = 0;
	for (int j = g->nl[r] - 1; j >= 0; j--) {
		int l = g->lab[r][j];
		o += (i % g->p->dims[l]) * g->st[q][l];
		i /= g->p->dims[l];
	}
	return o;
}

static void es_range(void *arg, int64_t b0, int64_t b1)
{
	struct es_gemm *g = arg;
	int64_t M = g->dim[ES_ROW], N = g->dim[ES_COL], K = g->dim[ES_SUM];
	for (int64_t b = b0; b < b1; b++) {
		float *ap = g->ap + b * M * K, *bp = g->bp + b * K * N, *cp = g->cp + b * M * N;
		int64_t oa = es_off(g, 0, ES_BATCH, b), ob = es_off(g, 1, ES_BATCH, b);
		int64_t oy = es_off(g, 2, ES_BATCH, b);
		for (int64_t i = 0; i < M; i++)
			for (int64_t k = 0; k < K; k++)
				ap[i * K + k] = g->a[oa + es_off(g, 0, ES_ROW, i) + es_off(g, 0, ES_SUM, k)];
		for (int64_t k = 0; k < K; k++)
			for (int64_t j = 0; j < N; j++)
				bp[k * N + j] = g->b[ob + es_off(g, 1, ES_SUM, k) + es_off(g, 1, ES_COL, j)];
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)M, (int)N, (int)K, 1.f, ap,
			    (int)K, bp, (int)N, 0.f, cp, (int)N);
		for (int64_t i = 0; i < M; i++)
			for (int64_t j = 0; j < N; j++)
				g->y[oy + es_off(g, 2, ES_ROW, i) + es_off(g, 2, ES_COL, j)] = cp[i * N + j];
	}
}

/* 0: done by sgemm; 1: not that shape (take the loops); <0: error */
static int einsum_gemm(struct cpu_ctx *c, const struct einsum_params *p,
		       const struct tensor_view *in, struct tensor_view *out)
{
	struct es_gemm g = { .p = p, .a = in[0].data, .b = in[1].data, .y = out[0].data };
	int where[EINSUM_MAX_LABELS] = { 0 };	/* bit 0: A, 1: B, 2: Y */

	if (p->nin != 2 || out[0].dtype != TENSOR_F32)
		return 1;
	for (int q = 0; q < 3; q++) {
		int r = q < 2 ? p->rank[q] : p->out_rank;
		const signed char *lab = q < 2 ? p->in[q] : p->out;
		int64_t k = 1;
		for (int d = r - 1; d >= 0; d--) {
			if (where[lab[d]] & (1 << q))
				return 1;	/* a diagonal */
			where[lab[d]] |= 1 << q;
			g.st[q][lab[d]] = k;
			k *= p->dims[lab[d]];
		}
	}
	for (int r = 0; r < 4; r++)
		g.dim[r] = 1;
	for (int l = 0; l < p->nlab; l++) {
		int r = where[l] == 7 ? ES_BATCH : where[l] == 5 ? ES_ROW : where[l] == 6 ? ES_COL :
			where[l] == 3 ? ES_SUM : -1;
		if (r < 0)
			return 1;	/* summed within one operand */
		g.lab[r][g.nl[r]++] = l;
		g.dim[r] *= p->dims[l];
	}
	int64_t B = g.dim[ES_BATCH], M = g.dim[ES_ROW], N = g.dim[ES_COL], K = g.dim[ES_SUM];
	if (!K || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
		return 1;	/* an empty contraction: the loops write its zeros */
	g.ap = malloc((size_t)(B * M * K + 1) * sizeof(float));
	g.bp = malloc((size_t)(B * K * N + 1) * sizeof(float));
	g.cp = malloc((size_t)(B * M * N + 1) * sizeof(float));
	int rc = 0;
	if (!g.ap || !g.bp || !g.cp)
		rc = -ENOMEM;
	else if (B > 0 && M > 0 && N > 0)
		cpu_parallel(c, B, es_range, &g);
	free(g.ap), free(g.bp), free(g.cp);
	return rc;
}

CPU_KERNEL(cpu_einsum)
{
	const struct einsum_params *p = &n->p.einsum;
	int grc = einsum_gemm(c, p, in, out);
	if (grc <= 0)
		return grc;
	int64_t idx[EINSUM_MAX_LABELS] = { 0 }, st[EINSUM_MAX_IN + 1][EINSUM_MAX_LABELS] = { { 0 } };
	int64_t ycnt = view_numel(&out[0]), terms = 1;
	int f64 = out[0].dtype == TENSOR_F64;
	double *acc = calloc(ycnt + 1, sizeof(double));

	if (!acc)
		return -ENOMEM;
	/* per label, each operand's (and the output's) element stride */
	for (int i = 0; i <= p->nin; i++) {
		int r = i < p->nin ? p->rank[i] : p->out_rank;
		const signed char *lab = i < p->nin ? p->in[i] : p->out;
		int64_t k = 1;
		for (int d = r - 1; d >= 0; d--) {
			st[i][lab[d]] += k;	/* a repeated label (diagonal) adds its strides */
			k *= p->dims[lab[d]];
		}
	}
	for (int l = 0; l < p->nlab; l++)
		terms *= p->dims[l];
	int64_t off[EINSUM_MAX_IN + 1] = { 0 };
	for (int64_t t = 0; t < terms; t++) {
		double v = 1;
		for (int i = 0; i < p->nin; i++)
			v *= f64 ? ((const double *)in[i].data)[off[i]] : ((const float *)in[i].data)[off[i]];
		acc[off[p->nin]] += v;
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
	for (int64_t i = 0; i < ycnt; i++)
		if (f64)
			((double *)out[0].data)[i] = acc[i];
		else
			((float *)out[0].data)[i] = (float)acc[i];
	free(acc);
	return 0;
}
