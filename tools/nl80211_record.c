/* nl80211_record: write the nl80211 station-dump replies that
 * tests/test_wifi.c parses (tests/data/wifi/station_*.bin).
 *
 * The build machines have no Wi-Fi, so these replies are synthesized, byte
 * for byte in the layout the kernel sends for NL80211_CMD_GET_STATION with
 * NLM_F_DUMP (see <linux/netlink.h>, <linux/genetlink.h>, <linux/nl80211.h>
 * and net/wireless/nl80211.c nl80211_send_station()): one nlmsghdr
 * (type = the nl80211 family id, NLM_F_MULTI) + genlmsghdr (cmd
 * NL80211_CMD_NEW_STATION) + NL80211_ATTR_IFINDEX, NL80211_ATTR_MAC,
 * NL80211_ATTR_GENERATION, and the nested NL80211_ATTR_STA_INFO; 64-bit
 * counters are preceded by an NL80211_STA_INFO_PAD attribute when needed
 * to 8-align their payload (nla_put_u64_64bit); the dump ends with
 * NLMSG_DONE. Values are those of a 2x2 802.11ac client 3 m from its AP.
 *
 * usage: nl80211_record OUTDIR */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/nl80211.h>

#define FAMILY_ID 0x1c		/* dynamic; 28 is typical */
#define PORT_ID 4242u

struct buf {
	uint8_t b[8192];
	size_t len;
};

static size_t put(struct buf *m, const void *data, size_t len)
{
	size_t at = m->len;

	memcpy(m->b + m->len, data, len);
	m->len += len;
	while (m->len % 4)
		m->b[m->len++] = 0;
	return at;
}

static size_t attr(struct buf *m, uint16_t type, const void *data, size_t len)
{
	struct nlattr h = { .nla_len = (uint16_t)(NLA_HDRLEN + len), .nla_type = type };
	size_t at = put(m, &h, sizeof(h));

	if (len)
		put(m, data, len);
	return at;
}

static void u8a(struct buf *m, uint16_t t, uint8_t v) { attr(m, t, &v, 1); }
static void u16a(struct buf *m, uint16_t t, uint16_t v) { attr(m, t, &v, 2); }
static void u32a(struct buf *m, uint16_t t, uint32_t v) { attr(m, t, &v, 4); }

/* nla_put_u64_64bit: pad so the u64 payload lands 8-aligned. msg_start is
 * where the netlink message begins (the kernel aligns within the skb). */
static void u64a(struct buf *m, size_t msg_start, uint16_t t, uint16_t pad, uint64_t v)
{
	if ((m->len - msg_start + NLA_HDRLEN) % 8)
		attr(m, pad, NULL, 0);
	attr(m, t, &v, 8);
}

static size_t nest_start(struct buf *m, uint16_t type, int flag)
{
	return attr(m, (uint16_t)(type | (flag ? NLA_F_NESTED : 0)), NULL, 0);
}

static void nest_end(struct buf *m, size_t at)
{
	struct nlattr h;

	memcpy(&h, m->b + at, sizeof(h));
	h.nla_len = (uint16_t)(m->len - at);
	memcpy(m->b + at, &h, sizeof(h));
}

static size_t msg_start(struct buf *m, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr h = { .nlmsg_len = 0, .nlmsg_type = type, .nlmsg_flags = flags,
			      .nlmsg_seq = seq, .nlmsg_pid = PORT_ID };

	return put(m, &h, sizeof(h));
}

static void msg_end(struct buf *m, size_t at)
{
	struct nlmsghdr h;

	memcpy(&h, m->b + at, sizeof(h));
	h.nlmsg_len = (uint32_t)(m->len - at);
	memcpy(m->b + at, &h, sizeof(h));
}

struct sta {
	uint32_t ifindex;
	uint8_t mac[6];
	int modern;		/* BITRATE32, expected throughput, 64-bit counters, NLA_F_NESTED */
	uint16_t bitrate16;	/* 100 kbit/s */
	uint32_t bitrate32;
	uint32_t expected_kbps;
	int8_t signal_dbm;
	uint32_t retries, failed;
	uint64_t rx_bytes, tx_bytes;
};

static void station(struct buf *m, const struct sta *s, uint32_t seq)
{
	struct genlmsghdr g = { .cmd = NL80211_CMD_NEW_STATION, .version = 1 };
	size_t ms = msg_start(m, FAMILY_ID, NLM_F_MULTI, seq), info, rate;

	put(m, &g, sizeof(g));
	u32a(m, NL80211_ATTR_IFINDEX, s->ifindex);
	attr(m, NL80211_ATTR_MAC, s->mac, 6);
	u32a(m, NL80211_ATTR_GENERATION, 17);
	info = nest_start(m, NL80211_ATTR_STA_INFO, s->modern);
	u32a(m, NL80211_STA_INFO_INACTIVE_TIME, 40);
	u32a(m, NL80211_STA_INFO_RX_BYTES, (uint32_t)s->rx_bytes);
	if (s->modern)
		u64a(m, ms, NL80211_STA_INFO_RX_BYTES64, NL80211_STA_INFO_PAD, s->rx_bytes);
	u32a(m, NL80211_STA_INFO_TX_BYTES, (uint32_t)s->tx_bytes);
	if (s->modern)
		u64a(m, ms, NL80211_STA_INFO_TX_BYTES64, NL80211_STA_INFO_PAD, s->tx_bytes);
	u32a(m, NL80211_STA_INFO_RX_PACKETS, 812345);
	u32a(m, NL80211_STA_INFO_TX_PACKETS, 523456);
	u32a(m, NL80211_STA_INFO_TX_RETRIES, s->retries);
	u32a(m, NL80211_STA_INFO_TX_FAILED, s->failed);
	u8a(m, NL80211_STA_INFO_SIGNAL, (uint8_t)s->signal_dbm);
	u8a(m, NL80211_STA_INFO_SIGNAL_AVG, (uint8_t)(s->signal_dbm - 1));
	rate = nest_start(m, NL80211_STA_INFO_TX_BITRATE, s->modern);
	if (s->modern) {
		u32a(m, NL80211_RATE_INFO_BITRATE32, s->bitrate32);
		u16a(m, NL80211_RATE_INFO_BITRATE, s->bitrate16);
		u8a(m, NL80211_RATE_INFO_VHT_MCS, 9);
		u8a(m, NL80211_RATE_INFO_VHT_NSS, 2);
		attr(m, NL80211_RATE_INFO_80_MHZ_WIDTH, NULL, 0);
		attr(m, NL80211_RATE_INFO_SHORT_GI, NULL, 0);
	} else {
		u16a(m, NL80211_RATE_INFO_BITRATE, s->bitrate16);
		u8a(m, NL80211_RATE_INFO_MCS, 7);
		attr(m, NL80211_RATE_INFO_40_MHZ_WIDTH, NULL, 0);
	}
	nest_end(m, rate);
	rate = nest_start(m, NL80211_STA_INFO_RX_BITRATE, s->modern);
	u16a(m, NL80211_RATE_INFO_BITRATE, 6500);
	nest_end(m, rate);
	if (s->modern)
		u32a(m, NL80211_STA_INFO_EXPECTED_THROUGHPUT, s->expected_kbps);
	{
		struct nl80211_sta_flag_update f = { .mask = 0x6e, .set = 0x6e };

		attr(m, NL80211_STA_INFO_STA_FLAGS, &f, sizeof(f));
	}
	nest_end(m, info);
	msg_end(m, ms);
}

static void done(struct buf *m, uint32_t seq)
{
	int32_t zero = 0;
	size_t ms = msg_start(m, NLMSG_DONE, NLM_F_MULTI, seq);

	put(m, &zero, sizeof(zero));
	msg_end(m, ms);
}

static void error_reply(struct buf *m, int err, uint32_t seq)
{
	struct nlmsgerr e = { .error = -err };
	size_t ms = msg_start(m, NLMSG_ERROR, 0, seq);

	/* the echoed request header: GET_STATION dump */
	e.msg.nlmsg_len = NLMSG_HDRLEN + GENL_HDRLEN + NLA_HDRLEN + 4;
	e.msg.nlmsg_type = FAMILY_ID;
	e.msg.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	e.msg.nlmsg_seq = seq;
	e.msg.nlmsg_pid = PORT_ID;
	put(m, &e, sizeof(e));
	msg_end(m, ms);
}

static int write_file(const char *dir, const char *name, const struct buf *m, size_t len)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(m->b, 1, len, f) != len) {
		fprintf(stderr, "nl80211_record: %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct sta ac = {
		.ifindex = 3, .mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 }, .modern = 1,
		.bitrate16 = 8667, .bitrate32 = 8667, .expected_kbps = 433000,
		.signal_dbm = -52, .retries = 1234, .failed = 7,
		.rx_bytes = 5000000000ull, .tx_bytes = 123456789012ull,
	};
	static const struct sta old = {
		.ifindex = 3, .mac = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee }, .modern = 0,
		.bitrate16 = 720, .signal_dbm = -71, .retries = 90, .failed = 2,
		.rx_bytes = 3000000, .tx_bytes = 1500000,
	};
	struct sta other = ac;
	static struct buf m;
	int rc = 0;

	if (argc != 2) {
		fprintf(stderr, "usage: nl80211_record OUTDIR\n");
		return 2;
	}
	other.ifindex = 5;
	other.mac[5] = 0x66;
	other.signal_dbm = -80;
	other.bitrate32 = 1300;
	other.bitrate16 = 1300;

	m.len = 0;
	station(&m, &ac, 7);
	done(&m, 7);
	rc |= write_file(argv[1], "station_ac.bin", &m, m.len);
	rc |= write_file(argv[1], "station_truncated.bin", &m, m.len - 37);

	m.len = 0;
	station(&m, &old, 8);
	done(&m, 8);
	rc |= write_file(argv[1], "station_legacy.bin", &m, m.len);

	m.len = 0;
	station(&m, &other, 9);
	station(&m, &ac, 9);
	done(&m, 9);
	rc |= write_file(argv[1], "station_two.bin", &m, m.len);

	m.len = 0;
	done(&m, 10);
	rc |= write_file(argv[1], "station_none.bin", &m, m.len);

	m.len = 0;
	error_reply(&m, EOPNOTSUPP, 11);
	rc |= write_file(argv[1], "station_eopnotsupp.bin", &m, m.len);
	return rc ? 1 : 0;
}
