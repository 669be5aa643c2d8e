/* Wi-Fi telemetry parsers against recorded /proc/net/wireless texts and
 * nl80211 station-dump replies (tests/data/wifi, see its README). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wifi.h"

static size_t slurp(const char *name, char *buf, size_t cap)
{
	char path[1024];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", WIFI_DATA_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(buf, 1, cap, f);
	fclose(f);
	return n;
}

static void test_proc_one(void **state)
{
	char buf[4096];
	size_t n = slurp("proc_wireless_wlan0.txt", buf, sizeof(buf));
	struct wifi_proc_stats s;

	assert_int_equal(wifi_proc_parse(buf, n, "wlan0", &s), 0);
	assert_int_equal(s.link_quality, 58);
	assert_int_equal(s.signal_dbm, -52);
	assert_true(s.have_signal);
	assert_false(s.have_noise);	/* -256: the driver gives none */
	assert_int_equal(s.discard_misc, 17);
	assert_int_equal(s.missed_beacon, 0);
	assert_int_equal(wifi_proc_parse(buf, n, "wlan1", &s), -ENOENT);
	assert_int_equal(wifi_proc_parse(buf, n, "wlan", &s), -ENOENT);
}

static void test_proc_two(void **state)
{
	char buf[4096];
	size_t n = slurp("proc_wireless_two.txt", buf, sizeof(buf));
	struct wifi_proc_stats s;

	assert_int_equal(wifi_proc_parse(buf, n, "wlp2s0", &s), 0);
	assert_int_equal(s.link_quality, 41);
	assert_int_equal(s.signal_dbm, -69);
	assert_int_equal(s.noise_dbm, -95);
	assert_true(s.have_noise);
	assert_int_equal(s.discard_crypt, 3);
	assert_int_equal(s.discard_retry, 12);
	assert_int_equal(s.discard_misc, 204);
	assert_int_equal(s.missed_beacon, 5);
	assert_int_equal(wifi_proc_parse(buf, n, "wlan1", &s), 0);
	assert_int_equal(s.link_quality, 70);
	assert_int_equal(s.signal_dbm, -38);
}

static void test_proc_bad(void **state)
{
	char buf[4096];
	struct wifi_proc_stats s;
	size_t n;

	n = slurp("proc_wireless_none.txt", buf, sizeof(buf));
	assert_int_equal(wifi_proc_parse(buf, n, "wlan0", &s), -ENOENT);
	n = slurp("proc_wireless_bad.txt", buf, sizeof(buf));
	assert_int_equal(wifi_proc_parse(buf, n, "wlan0", &s), -EBADMSG);
	n = slurp("proc_wireless_noheader.txt", buf, sizeof(buf));
	assert_int_equal(wifi_proc_parse(buf, n, "wlan0", &s), -EBADMSG);
	n = slurp("proc_wireless_wlan0.txt", buf, sizeof(buf));
	/* a line cut short loses fields */
	assert_int_equal(wifi_proc_parse(buf, n - 20, "wlan0", &s), -EBADMSG);
	assert_int_equal(wifi_proc_parse(buf, 10, "wlan0", &s), -EBADMSG);
	assert_int_equal(wifi_proc_parse("", 0, "wlan0", &s), -EBADMSG);
}

static int parse_file(const char *name, uint32_t ifindex, struct wifi_station *sta,
		      int *found, int *done)
{
	char buf[4096];
	size_t n = slurp(name, buf, sizeof(buf));

	*found = *done = 0;
	memset(sta, 0, sizeof(*sta));
	return wifi_station_parse(buf, n, ifindex, sta, found, done);
}

static void test_station_ac(void **state)
{
	struct wifi_station s;
	int found, done;
	static const uint8_t mac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };

	assert_int_equal(parse_file("station_ac.bin", 3, &s, &found, &done), 0);
	assert_true(found);
	assert_true(done);
	assert_int_equal(s.ifindex, 3);
	assert_memory_equal(s.mac, mac, 6);
	assert_int_equal(s.present, WIFI_STA_TX_BITRATE | WIFI_STA_EXPECTED_TPUT | WIFI_STA_SIGNAL |
			 WIFI_STA_TX_RETRIES | WIFI_STA_TX_FAILED | WIFI_STA_RX_BYTES |
			 WIFI_STA_TX_BYTES);
	assert_int_equal(s.tx_bitrate_bps, 866700000ull);	/* 8667 x 100 kbit/s */
	assert_int_equal(s.expected_throughput_bps, 433000000ull);
	assert_int_equal(s.signal_dbm, -52);
	assert_int_equal(s.tx_retries, 1234);
	assert_int_equal(s.tx_failed, 7);
	assert_int_equal(s.rx_bytes, 5000000000ull);	/* the 64-bit counter, not the wrapped u32 */
	assert_int_equal(s.tx_bytes, 123456789012ull);
	/* another interface's dump finds nothing */
	assert_int_equal(parse_file("station_ac.bin", 4, &s, &found, &done), 0);
	assert_false(found);
}

static void test_station_legacy(void **state)
{
	struct wifi_station s;
	int found, done;

	assert_int_equal(parse_file("station_legacy.bin", 0, &s, &found, &done), 0);
	assert_true(found);
	assert_int_equal(s.tx_bitrate_bps, 72000000ull);	/* u16 BITRATE only */
	assert_false(s.present & WIFI_STA_EXPECTED_TPUT);
	assert_int_equal(s.signal_dbm, -71);
	assert_int_equal(s.rx_bytes, 3000000);
	assert_int_equal(s.tx_bytes, 1500000);
	assert_int_equal(s.tx_retries, 90);
	assert_int_equal(s.tx_failed, 2);
}

static void test_station_two(void **state)
{
	struct wifi_station s;
	int found, done;

	assert_int_equal(parse_file("station_two.bin", 3, &s, &found, &done), 0);
	assert_true(found);
	assert_int_equal(s.signal_dbm, -52);
	assert_int_equal(parse_file("station_two.bin", 5, &s, &found, &done), 0);
	assert_int_equal(s.signal_dbm, -80);
	assert_int_equal(s.tx_bitrate_bps, 130000000ull);
	assert_int_equal(parse_file("station_two.bin", 0, &s, &found, &done), 0);
	assert_int_equal(s.ifindex, 5);	/* the first */
}

static void test_station_ends(void **state)
{
	struct wifi_station s;
	int found, done;

	assert_int_equal(parse_file("station_none.bin", 3, &s, &found, &done), 0);
	assert_false(found);
	assert_true(done);
	assert_int_equal(parse_file("station_eopnotsupp.bin", 3, &s, &found, &done), -EOPNOTSUPP);
	assert_int_equal(parse_file("station_truncated.bin", 3, &s, &found, &done), -EBADMSG);
	assert_false(found);
}

/* Every prefix of a good reply is either incomplete-but-clean or refused;
 * none reads out of bounds (ASan builds check that). */
static void test_station_prefixes(void **state)
{
	char buf[4096];
	size_t n = slurp("station_two.bin", buf, sizeof(buf));

	for (size_t len = 0; len < n; len++) {
		char *copy = malloc(len ? len : 1);
		struct wifi_station s;
		int found = 0, done = 0, rc;

		memcpy(copy, buf, len);
		rc = wifi_station_parse(copy, len, 0, &s, &found, &done);
		assert_true(rc == 0 || rc == -EBADMSG);
		assert_false(done);	/* DONE is the last message: cut off */
		free(copy);
	}
}

static void test_live_absent(void **state)
{
	char dir[] = "/tmp/splitd-wifi-XXXXXX", path[256], buf[4096];
	struct wifi *w;
	struct wifi_stats st;
	size_t n = slurp("proc_wireless_wlan0.txt", buf, sizeof(buf));
	FILE *f;

	assert_non_null(mkdtemp(dir));
	/* no interface, no file: unavailable, not an error */
	assert_int_equal(wifi_new("splitdnone0", dir, &w), 0);
	assert_int_equal(wifi_read(w, &st), 0);
	assert_false(st.available);
	wifi_free(w);
	/* a fake proc tree: the proc half reports */
	snprintf(path, sizeof(path), "%s/proc", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/proc/net", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/proc/net/wireless", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(buf, 1, n, f);
	fclose(f);
	assert_int_equal(wifi_new("wlan0", dir, &w), 0);
	assert_int_equal(wifi_read(w, &st), 0);
	assert_true(st.available);
	assert_true(st.have_proc);
	assert_int_equal(st.proc.signal_dbm, -52);
	wifi_free(w);
	unlink(path);
	snprintf(path, sizeof(path), "%s/proc/net", dir);
	rmdir(path);
	snprintf(path, sizeof(path), "%s/proc", dir);
	rmdir(path);
	rmdir(dir);
	/* "lo" exists but is not wireless: the station half says nothing */
	assert_int_equal(wifi_new("lo", "/nonexistent", &w), 0);
	assert_int_equal(wifi_read(w, &st), 0);
	assert_false(st.have_station);
	wifi_free(w);
	assert_int_equal(wifi_new("", NULL, &w), -EINVAL);
	wifi_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proc_one),
		cmocka_unit_test(test_proc_two),
		cmocka_unit_test(test_proc_bad),
		cmocka_unit_test(test_station_ac),
		cmocka_unit_test(test_station_legacy),
		cmocka_unit_test(test_station_two),
		cmocka_unit_test(test_station_ends),
		cmocka_unit_test(test_station_prefixes),
		cmocka_unit_test(test_live_absent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
