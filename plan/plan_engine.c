/* The one adapter from an engine to the planner's input (struct plan_model):
 * what `splitd serve` and `splitd plan` both plan with. */
#include "plan-impl.h"

#include <errno.h>
#include <stdlib.h>

#include "engine.h"

int plan_new_from_engine(const struct engine *e, const double *local_ms, const double *peer_ms,
			 const struct plan_config *c, struct plan **out)
{
	int n = e ? engine_num_nodes(e) : 0;
	size_t n1 = (size_t)n + 1;
	size_t *cut_bytes = NULL;
	int *band_ok = NULL;
	double *wave = NULL;
	int rc = -ENOMEM;

	*out = NULL;
	if (n < 1 || !local_ms || !peer_ms)
		return -EINVAL;
	cut_bytes = calloc(n1, sizeof(*cut_bytes));
	band_ok = calloc(n1, sizeof(*band_ok));
	wave = malloc(n1 * (PLAN_WAVE_STEPS + 1) * sizeof(*wave));
	if (!cut_bytes || !band_ok || !wave)
		goto out;
	for (int k = 0; k <= n; k++)
		cut_bytes[k] = engine_cut_bytes(e, k);
	for (int i = 0; i < n; i++) {
		struct engine_node_info ni;

		if (engine_node_info(e, i, &ni) == 0)
			band_ok[i] = ni.band_ok;
	}
	struct plan_model m = {
		.n_nodes = n, .cut_bytes = cut_bytes, .band_ok = band_ok,
		.local_node_ms = local_ms, .peer_node_ms = peer_ms,
		/* cut 0 in bands: the inputs themselves travel row by row */
		.input_band_ok = engine_band_inputs_check(e, NULL, 0) == 0,
		/* how far the peer's wavefront gets as the rows of each cut
		 * arrive; without the table, as if linear */
		.peer_wave = engine_band_wave_table(e, PLAN_WAVE_STEPS, wave) == 0 ? wave : NULL,
	};
	rc = plan_new(&m, c, out);
out:
	free(cut_bytes);
	free(band_ok);
	free(wave);
	return rc;
}
