/* Shared by the planner's tests: two plans predict the same for every
 * candidate (same list, same order, same best; times and energies equal
 * to the bit: both compute the same doubles from the same inputs). */
#ifndef SPLITD_TEST_PLAN_SAME_H
#define SPLITD_TEST_PLAN_SAME_H

#include <stdlib.h>

#include "plan.h"

static inline void plan_assert_same(const struct plan *a, const struct plan *b, const struct plan_inputs *in)
{
	struct plan_candidate *va, *vb;
	int na, nb, ba, bb;

	assert_int_equal(plan_enumerate(a, in, &va, &na, &ba), 0);
	assert_int_equal(plan_enumerate(b, in, &vb, &nb, &bb), 0);
	assert_int_equal(na, nb);
	assert_int_equal(ba, bb);
	for (int i = 0; i < na; i++) {
		assert_int_equal(va[i].cut, vb[i].cut);
		assert_int_equal(va[i].enc, vb[i].enc);
		assert_int_equal(va[i].bands, vb[i].bands);
		assert_int_equal(va[i].wire_bytes, vb[i].wire_bytes);
		assert_true(va[i].total_ms == vb[i].total_ms);
		assert_true(va[i].energy_uj == vb[i].energy_uj);
	}
	free(va);
	free(vb);
}

#endif
