/* Fuzz target: the Wi-Fi telemetry parsers (/proc/net/wireless text and
 * nl80211 station-dump replies) on arbitrary bytes. With SPLITD_FUZZ_REPLAY
 * it is a plain program that replays seed files, every prefix of each and
 * every single-bit flip, so CI runs the body under the sanitizers. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wifi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wifi_proc_stats ps;
	struct wifi_station sta;
	int found = 0, done = 0;
	/* copies sized exactly, so an overread is an ASan report */
	uint8_t *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	(void)wifi_proc_parse((const char *)copy, size, "wlan0", &ps);
	(void)wifi_station_parse(copy, size, 0, &sta, &found, &done);
	(void)wifi_station_parse(copy, size, 3, &sta, &found, &done);
	free(copy);
	return 0;
}

#ifdef SPLITD_FUZZ_REPLAY
int main(int argc, char **argv)
{
	long runs = 0;

	for (int i = 1; i < argc; i++) {
		static uint8_t buf[1 << 16];
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f) {
			fprintf(stderr, "fuzz_wifi_replay: cannot open %s\n", argv[i]);
			return 1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		for (size_t len = 0; len <= n; len++, runs++)
			LLVMFuzzerTestOneInput(buf, len);
		for (size_t bit = 0; bit < n * 8; bit++, runs++) {
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
			LLVMFuzzerTestOneInput(buf, n);
			buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		}
	}
	printf("fuzz_wifi_replay: %ld inputs from %d seeds\n", runs, argc - 1);
	return argc > 1 ? 0 : 1;
}
#endif
