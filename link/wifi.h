/* Wi-Fi telemetry of one interface: /proc/net/wireless (link quality,
 * signal, noise) and nl80211 station info (tx bitrate, expected throughput,
 * signal, retries, failures, bytes) through a generic-netlink dump.
 *
 * The parsers take bytes, so tests feed them recorded texts and reply
 * messages; struct wifi owns the netlink socket. An absent interface, a
 * kernel without nl80211 or an interface that is not associated is not an
 * error: wifi_read() returns 0 with available = 0. */
#ifndef SPLITD_WIFI_H
#define SPLITD_WIFI_H

#include <stddef.h>
#include <stdint.h>

struct wifi_proc_stats {
	unsigned status;
	int link_quality;		/* driver units (often out of 70) */
	int signal_dbm, noise_dbm;
	int have_signal, have_noise;	/* -256 in the file: not reported */
	uint32_t discard_nwid, discard_crypt, discard_frag, discard_retry, discard_misc;
	uint32_t missed_beacon;
};

enum wifi_sta_field {
	WIFI_STA_TX_BITRATE = 1 << 0,
	WIFI_STA_EXPECTED_TPUT = 1 << 1,
	WIFI_STA_SIGNAL = 1 << 2,
	WIFI_STA_TX_RETRIES = 1 << 3,
	WIFI_STA_TX_FAILED = 1 << 4,
	WIFI_STA_RX_BYTES = 1 << 5,
	WIFI_STA_TX_BYTES = 1 << 6,
};

struct wifi_station {
	unsigned present;		/* WIFI_STA_* bits of the fields below */
	uint32_t ifindex;
	uint8_t mac[6];
	uint64_t tx_bitrate_bps;
	uint64_t expected_throughput_bps;
	int signal_dbm;
	uint32_t tx_retries, tx_failed;
	uint64_t rx_bytes, tx_bytes;
};

struct wifi_stats {
	int available;			/* any of the two below */
	int have_proc, have_station;
	struct wifi_proc_stats proc;
	struct wifi_station sta;
};

/* Parse /proc/net/wireless text (two header lines, then one line per
 * interface) for ifname. 0 found, -ENOENT not listed, -EBADMSG malformed. */
int wifi_proc_parse(const char *text, size_t len, const char *ifname,
		    struct wifi_proc_stats *out);

/* Parse one receive buffer of an NL80211_CMD_GET_STATION dump (netlink
 * messages: nlmsghdr + genlmsghdr + attributes). Fills *sta from the first
 * station with ifindex (0: any) if not yet found (*found 0 -> 1), sets *done
 * on NLMSG_DONE. 0 ok, -EBADMSG malformed, the negative errno of an
 * NLMSG_ERROR reply. */
int wifi_station_parse(const void *buf, size_t len, uint32_t ifindex,
		       struct wifi_station *sta, int *found, int *done);

struct wifi;

/* proc_root: "" or NULL for "/", else a directory holding proc/net/wireless. */
int wifi_new(const char *ifname, const char *proc_root, struct wifi **out);
void wifi_free(struct wifi *w);
int wifi_read(struct wifi *w, struct wifi_stats *out);

#endif
