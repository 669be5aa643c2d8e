/* The plain-program form of a libFuzzer target (SPLITD_FUZZ_REPLAY): replay
 * each file given, every prefix of it (in steps of 1 + len/PREFIX_DIV) and up
 * to FLIPS single-bit flips (every FLIP_STEP-th bit), so CI runs the target's
 * body under the sanitizers. Define the three knobs before including it to
 * make a slow target's replay lighter. */
#ifdef SPLITD_FUZZ_REPLAY
#include <stdint.h>
#include <stdio.h>

#ifndef REPLAY_PREFIX_DIV
#define REPLAY_PREFIX_DIV 0	/* 0: every prefix */
#endif
#ifndef REPLAY_FLIPS
#define REPLAY_FLIPS 4096
#endif
#ifndef REPLAY_FLIP_STEP
#define REPLAY_FLIP_STEP 1
#endif

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 20];

	for (int a = 1; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		if (!f) {
			fprintf(stderr, "%s: cannot open\n", argv[a]);
			return 1;
		}
		size_t n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		for (size_t l = 0; l <= n; l += 1 + (REPLAY_PREFIX_DIV ? l / REPLAY_PREFIX_DIV : 0))
			LLVMFuzzerTestOneInput(buf, l);
		for (size_t i = 0; i < n * 8 && i < REPLAY_FLIPS; i += REPLAY_FLIP_STEP) {
			buf[i / 8] ^= (uint8_t)(1u << (i % 8));
			LLVMFuzzerTestOneInput(buf, n);
			buf[i / 8] ^= (uint8_t)(1u << (i % 8));
		}
	}
	printf("replayed %d files\n", argc - 1);
	return 0;
}
#endif
