/* Fuzz target: the planner's state file (plan_state_apply, the parser
 * `splitd serve` runs on daemon.state_dir at start) on arbitrary bytes, for
 * a 4-node model. A file it takes must leave a plan that still predicts,
 * and dump back to a file it takes again. With SPLITD_FUZZ_REPLAY it is a
 * plain program replaying seeds (replay_main.h). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const double local_ms[4] = { 10, 20, 30, 40 };
static const double peer_ms[4] = { 1, 2, 3, 4 };
static const size_t cut_bytes[5] = { 600000, 400000, 200000, 100000, 4000 };
static const int band_ok[4] = { 1, 1, 0, 1 };
static const struct plan_state_id id = {
	"abcd000000000000000000000000000000000000000000000000000000000001", "http://peer:8081"
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct plan_model m = { 4, cut_bytes, band_ok, local_ms, peer_ms, 1, NULL };
	struct plan_inputs in = { .bandwidth_bps = 80e6, .rtt_ms = 2, .input_bytes = 30000 };
	struct plan_candidate *v = NULL;
	struct plan_config c;
	struct plan *p = NULL;
	char *text = malloc(size + 1), *again = NULL, err[256];
	int n, best;

	plan_config_defaults(&c);
	c.max_bands = 8;
	if (!text || plan_new(&m, &c, &p) < 0)
		goto out;
	memcpy(text, data, size);
	text[size] = 0;
	if (plan_state_apply(p, &id, text, err, sizeof(err)) < 0)
		goto out;
	plan_request_facts(p, &in);
	if (plan_enumerate(p, &in, &v, &n, &best) < 0 || best < 0)
		abort();	/* a state it took broke the planner */
	if (plan_state_dump(p, &id, &again) < 0 || plan_state_apply(p, &id, again, err, sizeof(err)) < 0)
		abort();	/* its own dump refused */
out:
	free(v);
	free(again);
	free(text);
	plan_free(p);
	return 0;
}

#include "replay_main.h"
