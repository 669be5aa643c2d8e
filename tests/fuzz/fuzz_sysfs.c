/* Fuzz target: the sysfs text parsers of power/ (numbers, labels, the
 * /proc/<pid>/stat line) on arbitrary bytes. With SPLITD_FUZZ_REPLAY it is
 * a plain program: it checks the parsers against known answers on the seeds
 * below, then replays each seed, every prefix and every single-bit flip
 * (and any files named on the command line), so CI runs the body under the
 * sanitizers. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "power-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* copies sized exactly, so an overread is an ASan report */
	char *copy = malloc(size ? size : 1);
	char label[POWER_NAME_MAX] = "";
	int64_t v;
	uint64_t ticks;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (power_parse_int64(copy, size, &v) == 0) {
		/* what parses must print back the same (minus the newline) */
		char back[32];
		size_t n = size && copy[size - 1] == '\n' ? size - 1 : size;
		int len = snprintf(back, sizeof(back), "%lld", (long long)v);

		if ((size_t)len != n || memcmp(back, copy, n)) {
			/* leading zeros and "-0" are the only other spellings */
			if (!(n > 1 && (copy[0] == '0' || (copy[0] == '-' && copy[1] == '0'))))
				abort();
		}
	}
	if (power_parse_label(copy, size, label, sizeof(label)) == 0 &&
	    strlen(label) >= sizeof(label))
		abort();
	(void)power_parse_proc_stat(copy, size, &ticks);
	(void)power_is_skipped_label(label);
	free(copy);
	return 0;
}

#ifdef SPLITD_FUZZ_REPLAY
static const char *const seeds[] = {
	"4912\n", "0\n", "-1500000\n", "9223372036854775807\n",
	"VDD_IN\n", "sum of shunt voltages\n", "NC\n",
	"4242 (splitd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 "
	"3 0 100 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1\n",
	"1 (a) b) R 1 1 1 0 -1 0 0 0 0 0 7 8 0 0\n",
};

static int failures;

static void expect(int cond, const char *what)
{
	if (!cond) {
		fprintf(stderr, "fuzz_sysfs_replay: FAILED: %s\n", what);
		failures++;
	}
}

/* Known answers: the parsers must accept what the kernel prints and
 * reject everything else. */
static void check_known(void)
{
	int64_t v = 0;
	uint64_t t = 0;
	char l[POWER_NAME_MAX];
	const char *stat1 = seeds[7], *stat2 = seeds[8];

	expect(power_parse_int64("4912\n", 5, &v) == 0 && v == 4912, "4912");
	expect(power_parse_int64("-1500000\n", 9, &v) == 0 && v == -1500000, "negative");
	expect(power_parse_int64("9223372036854775807", 19, &v) == 0 &&
	       v == INT64_MAX, "INT64_MAX");
	expect(power_parse_int64("-9223372036854775808", 20, &v) == 0 &&
	       v == INT64_MIN, "INT64_MIN");
	expect(power_parse_int64("9223372036854775808", 19, &v) == -ERANGE, "overflow");
	expect(power_parse_int64("99999999999999999999", 20, &v) == -EINVAL, "20 digits");
	expect(power_parse_int64("", 0, &v) == -EINVAL, "empty");
	expect(power_parse_int64("\n", 1, &v) == -EINVAL, "newline only");
	expect(power_parse_int64("-", 1, &v) == -EINVAL, "sign only");
	expect(power_parse_int64("12x4\n", 5, &v) == -EINVAL, "garbage");
	expect(power_parse_int64(" 12", 3, &v) == -EINVAL, "space");
	expect(power_parse_int64("+12", 3, &v) == -EINVAL, "plus");
	expect(power_parse_int64("12\n\n", 4, &v) == -EINVAL, "two newlines");
	expect(power_parse_int64("12\0" "3", 4, &v) == -EINVAL, "NUL inside");
	expect(power_parse_label("VDD_IN\n", 7, l, sizeof(l)) == 0 &&
	       !strcmp(l, "VDD_IN"), "label");
	expect(power_parse_label("a\tb", 3, l, sizeof(l)) == -EINVAL, "tab");
	expect(power_parse_label("\n", 1, l, sizeof(l)) == -EINVAL, "empty label");
	expect(power_parse_label("0123456789012345678901234567890123", 34, l,
				 sizeof(l)) == -EINVAL, "long label");
	expect(power_parse_proc_stat(stat1, strlen(stat1), &t) == 0 && t == 325,
	       "stat utime+stime");
	expect(power_parse_proc_stat(stat2, strlen(stat2), &t) == 0 && t == 15,
	       "stat comm with ')'");
	expect(power_parse_proc_stat("1 (a) R 1 2", 11, &t) == -EINVAL, "stat short");
	expect(power_is_skipped_label("NC") && power_is_skipped_label("Sum of shunt voltages") &&
	       !power_is_skipped_label("VDD_IN"), "skipped labels");
	expect(power_is_input_name("VDD_IN") && power_is_input_name("pom_5v_in") &&
	       power_is_input_name("5V_IN") && !power_is_input_name("VDD_SOC"),
	       "input names");
}

static long replay(uint8_t *buf, size_t n)
{
	long runs = 0;

	for (size_t len = 0; len <= n; len++, runs++)
		LLVMFuzzerTestOneInput(buf, len);
	for (size_t bit = 0; bit < n * 8; bit++, runs++) {
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		LLVMFuzzerTestOneInput(buf, n);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	return runs;
}

int main(int argc, char **argv)
{
	static uint8_t buf[1 << 16];
	long runs = 0;

	check_known();
	for (size_t i = 0; i < sizeof(seeds) / sizeof(*seeds); i++) {
		size_t n = strlen(seeds[i]);

		memcpy(buf, seeds[i], n);
		runs += replay(buf, n);
	}
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			fprintf(stderr, "fuzz_sysfs_replay: cannot open %s\n", argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		runs += replay(buf, n);
	}
	printf("fuzz_sysfs_replay: %ld inputs, %d known-answer failures\n", runs,
	       failures);
	return failures ? 1 : 0;
}
#endif
