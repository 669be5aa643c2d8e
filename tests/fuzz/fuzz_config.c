/* Fuzz target: the configuration parser (daemon/config.c over libinih) on
 * arbitrary bytes, then the checks across keys and the reload merge. With
 * SPLITD_FUZZ_REPLAY it is a plain program replaying the seeds below, every
 * prefix and every single-bit flip of them (and files named on the command
 * line), so CI runs the body under the sanitizers. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	char *text = malloc(size + 1);
	struct config *cfg = NULL, *def = NULL, *next = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0; /* a NUL inside ends the text early, as a file with one is refused */
	err[0] = 0;
	if (config_load_string(text, "f.conf", &cfg, err, sizeof(err)) == 0) {
		char restart[256];
		if (config_finish(cfg, err, sizeof(err)) == 0 && config_new_default(&def) == 0 &&
		    config_finish(def, err, sizeof(err)) == 0 &&
		    config_merge_reloadable(def, cfg, &next, restart, sizeof(restart)) == 0) {
			/* not reloadable: kept from the running config */
			if (next->role != def->role || next->n_listen != def->n_listen)
				abort();
		}
	} else if (strncmp(err, "f.conf", 6) != 0) {
		abort(); /* every error names the file */
	}
	config_free(next);
	config_free(def);
	config_free(cfg);
	free(text);
	return 0;
}

#ifdef SPLITD_FUZZ_REPLAY
static const char *const seeds[] = {
	"[daemon]\nrole = peer\nlog_level = debug\n[api]\nlisten = *:8443\n[peer_server]\ntls_cert = a\ntls_key = b\n",
	"[api]\nlisten = 127.0.0.1:8080, [::1]:8081\nmax_body_bytes = 4M\n[model.r]\npath = r.onnx\n"
	"input_shape = 1,3,224,224\nmean = 0.5,0.5,0.5\n",
	"[peer]\nurl = http://127.0.0.1:8081\nplain = yes\nencoding = i8+zstd\n[planner]\npolicy = energy_slo\n",
	"[daemon]\nthreads = 4\n  continued\n; comment\n# comment\n[x]\n",
};

static void one(const char *s, size_t n)
{
	LLVMFuzzerTestOneInput((const uint8_t *)s, n);
}

int main(int argc, char **argv)
{
	char buf[1024];
	size_t runs = 0;

	for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++) {
		size_t n = strlen(seeds[i]);
		for (size_t k = 0; k <= n; k++, runs++)
			one(seeds[i], k);
		for (size_t bit = 0; bit < n * 8; bit++, runs++) {
			memcpy(buf, seeds[i], n);
			buf[bit / 8] ^= (char)(1u << (bit % 8));
			one(buf, n);
		}
	}
	for (int a = 1; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		if (!f)
			continue;
		static char file[1 << 20];
		size_t n = fread(file, 1, sizeof(file), f);
		fclose(f);
		one(file, n);
		runs++;
	}
	printf("fuzz_config: %zu inputs replayed\n", runs);
	return 0;
}
#endif
