/* Rounding-error tolerances for float32 runs of the engine (issue 14): the
 * tolerance of every comparison between two float32 evaluations of a model
 * (banded and unbanded, one OpenBLAS kernel and another, 1 and 3 threads,
 * the engine and torch) comes from here, not from a constant tuned on one
 * machine.
 *
 * Why not the worst-case bound. A sum of n products in any order has
 * |err| <= gamma(n) sum |a_i||b_i| (Higham, "Accuracy and Stability of
 * Numerical Algorithms", 2nd ed., eq. 3.5), but carried through a network
 * the worst case multiplies by sum |w| per layer: on mobilenet_v2 the
 * rigorous bound reaches 1e41 at the last conv (tests/errbound.c once
 * computed it), a tolerance that can never fail. Worst cases need every
 * rounding error aligned with the sign of every weight; they are not.
 *
 * The model (Monte Carlo arithmetic, Parker 1997; the probabilistic rounding
 * analysis of Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019): each
 * rounding is x(1 + d) with d independent, mean zero, |d| <= u = 2^-24.
 * A node's own rounding error is then a sum of such terms, with a standard
 * deviation bounded by:
 *  - a sum of n products (Conv, Gemm, MatMul; n counts the bias and a
 *    fused residual), any order, FMA or not: every partial sum is at most
 *    m = sum |a_i||b_i| + |bias|, so sd <= u m sqrt(n / 3);
 *  - a mean of n values (AveragePool, GlobalAveragePool, ReduceMean):
 *    u mean|x| sqrt((n + 1) / 3); BatchNormalization: u (|s x| + |t|) sqrt(2/3);
 *  - one rounding (Add, Sub, Mul, Div): u |y| / sqrt(3); the elementwise
 *    functions: their accuracy rho |y| / sqrt(3), rho = 2 ulp = 4u for
 *    glibc's expf, tanhf, erff, logf, powf (glibc manual, "Known Maximum
 *    Errors in Math Functions") and for the engine's own exp polynomial
 *    (exp_ps, held to it by test_kernels' sweep);
 *  - fused activations scale the conv's error by their slope at the
 *    result (ReLU/Clip 0 or 1, sigmoid y(1 - y), ...), then add their own;
 *  - data movement, MaxPool, Resize nearest, ReLU: exact.
 * errbound_run() draws `samples` realisations of that model: it runs the
 * engine node by node and adds to each node's result an independent error
 * of that standard deviation (uniform, so bounded by sqrt(3) sd, like a
 * rounding), so the engine itself carries each error through the rest of
 * the graph, non-linearities included. Each draw differs from the plain
 * run by D_s(t) = max |draw - plain| over tensor t. Two evaluations of the
 * model are two such draws; the tolerance of tensor t is
 *     tol(t) = ERRBOUND_SAFETY * max_s D_s(t),
 * the safety factor covering the spread of the maximum between draws (the
 * maximum over many elements varies little, ~10% between draws here) and
 * the plain run being a draw itself. The margins the tests print (observed
 * / tol) show how far inside the model the engine is.
 * An op with no rounding rule here makes errbound_run fail with a message
 * naming the node: never a silent pass.
 *
 * weight_rel adds a relative error of the weights (Conv/Gemm/BatchNorm
 * constants, per term) for comparisons with an implementation that did not
 * fold BatchNorm into the conv as the engine did (torch): test_models.c. */
#ifndef SPLITD_TEST_ERRBOUND_H
#define SPLITD_TEST_ERRBOUND_H

#include <stddef.h>

#include "engine.h"

#define ERRBOUND_U 0x1p-24		/* float32's unit roundoff */
#define ERRBOUND_ULP_RHO (4 * ERRBOUND_U)	/* 2 ulp, relative */
#define ERRBOUND_SAFETY 3.0
#define ERRBOUND_SAMPLES 4

struct errbound;

struct errbound_opts {
	double weight_rel;	/* relative error of the weights (0: exact) */
	double func_ulp;	/* max error of exp, tanh, erf, log, pow in ulp
				 * (0: 2, glibc's and exp_ps's) */
	int samples;		/* draws; 0 = ERRBOUND_SAMPLES */
	unsigned seed;
};

/* Runs nodes [0, N) of e on c, whose model inputs must be set (they count
 * as exact: both evaluations start from the same bits), and derives the
 * tolerance of every float tensor. Afterwards c holds the plain run's
 * results, as after engine_run(). */
int errbound_run(const struct engine *e, struct engine_ctx *c, const struct errbound_opts *o,
		 struct errbound **out, char *err, size_t errlen);
void errbound_free(struct errbound *b);
/* The largest |a - b| allowed between two evaluations for tensor `name`;
 * 0 when it is exact (a model input, a constant, data moved from those,
 * an integer result): bit equality; negative when name is unknown. */
double errbound_tol(const struct errbound *b, const char *name);

/* The tolerance of tensor `name` when, besides the rounding, every float
 * tensor of cut `cut` travels through an encoding whose error is within
 * rel |v| + absmax max|v| (float16: rel 2^-11; int8 with scale max|v|/127:
 * absmax 1/254): the same draws with a uniform error of that width added at
 * the cut. Leaves c as after engine_run(). Negative errno on failure. */
double errbound_cut_tol(struct errbound *b, struct engine_ctx *c, int cut, double rel,
			double absmax, const char *name, char *err, size_t errlen);

#endif
