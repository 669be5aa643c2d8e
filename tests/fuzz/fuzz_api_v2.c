/* libFuzzer target: the KServe v2 parser (JSON and binary extension), both
 * kinds, plus the builder and view helper on what parses, and the header-only
 * parse of a streamed body. Input: 4 bytes
 * little-endian Inference-Header-Content-Length (0 = all JSON), then body.
 * With SPLITD_FUZZ_REPLAY: a main() that replays files, their prefixes and
 * single-bit flips (the regression test when fuzzing is off). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	if (size < 4)
		return 0;
	size_t hl = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
		    (size_t)data[3] << 24;
	/* a private copy so reads past the end are caught */
	uint8_t *body = malloc(size - 4 + 1);
	if (!body)
		return 0;
	memcpy(body, data + 4, size - 4);
	for (int k = 0; k < 2; k++) {
		struct api_v2_message *m = NULL;
		if (api_v2_parse(k ? API_V2_RESPONSE : API_V2_REQUEST, body, size - 4, hl, &m,
				 err, sizeof(err)))
			continue;
		for (int i = 0; i < m->n_tensors; i++) {
			struct tensor_view tv;
			if (!api_v2_tensor_view(&m->tensors[i], NULL, &tv, err, sizeof(err))) {
				volatile uint8_t sink = 0;
				size_t n = tensor_bytes(&tv);
				if (n)
					sink ^= ((uint8_t *)tv.data)[n - 1];
				(void)sink;
			}
			int64_t x;
			api_params_int(m->tensors[i].params, "binary_data_size", &x);
		}
		char *out;
		size_t len, hlen;
		if (!api_v2_build(k ? API_V2_RESPONSE : API_V2_REQUEST, m, &out, &len, &hlen))
			free(out);
		api_v2_message_free(m);
	}
	/* the streamed way: the header alone first (counting), then with the
	 * binary part it announces, when the body holds it */
	if (hl && hl <= size - 4) {
		struct api_v2_message *m = NULL;
		size_t bin = 0, bin2 = 0;
		if (!api_v2_parse_header(API_V2_REQUEST, body, hl, NULL, 1u << 24, &m, &bin, err,
					 sizeof(err))) {
			api_v2_message_free(m);
			m = NULL;
			if (bin <= size - 4 - hl &&
			    !api_v2_parse_header(API_V2_REQUEST, body, hl, body + hl, bin, &m, &bin2, err,
						 sizeof(err))) {
				for (int i = 0; i < m->n_tensors; i++) {
					volatile uint8_t sink = 0;
					if (m->tensors[i].binary && m->tensors[i].data_len)
						sink ^= ((const uint8_t *)m->tensors[i].data)[m->tensors[i].data_len - 1];
					(void)sink;
				}
				if (bin2 != bin)
					abort();
				api_v2_message_free(m);
			}
		}
	}
	free(body);
	return 0;
}

#include "replay_main.h"
