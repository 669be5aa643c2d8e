/* Wi-Fi telemetry: /proc/net/wireless and nl80211 station info. The parsers
 * below check every length against the buffer: they face kernel bytes and
 * recorded files, and are fuzzed (tests/fuzz/fuzz_wifi.c). */
#include "wifi.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/nl80211.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/netlink.h>

#define PROC_MAX_BYTES (64 * 1024)

/* ---- /proc/net/wireless ---- */

static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));

	return nl ? nl : end;
}

/* One integer token of [p, e): optional sign, digits, optional trailing '.'
 * (the "updated" flag). base 16 for the status word. */
static int parse_num(const char *p, const char *e, int base, long long lo, long long hi,
		     long long *out)
{
	char tmp[24];
	char *end;
	size_t n = (size_t)(e - p);
	long long v;

	if (n > 0 && p[n - 1] == '.' && base == 10)
		n--;
	if (n == 0 || n >= sizeof(tmp))
		return -EBADMSG;
	memcpy(tmp, p, n);
	tmp[n] = 0;
	if (!((tmp[0] >= '0' && tmp[0] <= '9') || (tmp[0] == '-' && base == 10) ||
	      (base == 16 && ((tmp[0] >= 'a' && tmp[0] <= 'f') || (tmp[0] >= 'A' && tmp[0] <= 'F')))))
		return -EBADMSG;
	errno = 0;
	v = strtoll(tmp, &end, base);
	if (errno || *end || v < lo || v > hi)
		return -EBADMSG;
	*out = v;
	return 0;
}

static int parse_proc_line(const char *p, const char *e, char *name, size_t namelen,
			   struct wifi_proc_stats *o)
{
	const char *colon, *q;
	long long v[10];
	int nt = 0;

	while (p < e && *p == ' ')
		p++;
	colon = memchr(p, ':', (size_t)(e - p));
	if (!colon || colon == p || (size_t)(colon - p) >= namelen)
		return -EBADMSG;
	for (q = p; q < colon; q++)
		if (*q <= ' ' || *q > '~')
			return -EBADMSG;
	memcpy(name, p, (size_t)(colon - p));
	name[colon - p] = 0;
	q = colon + 1;
	while (q < e) {
		const char *t;

		while (q < e && *q == ' ')
			q++;
		if (q == e)
			break;
		t = q;
		while (q < e && *q != ' ')
			q++;
		if (nt >= 10)
			return -EBADMSG;
		if (parse_num(t, q, nt == 0 ? 16 : 10,
			      nt == 0 ? 0 : nt <= 3 ? -256 : 0,
			      nt == 0 ? 0xffff : nt <= 3 ? 255 : UINT32_MAX, &v[nt]) < 0)
			return -EBADMSG;
		nt++;
	}
	if (nt != 10)
		return -EBADMSG;
	memset(o, 0, sizeof(*o));
	o->status = (unsigned)v[0];
	o->link_quality = (int)v[1];
	o->signal_dbm = (int)v[2];
	o->noise_dbm = (int)v[3];
	o->have_signal = v[2] != -256;
	o->have_noise = v[3] != -256;
	o->discard_nwid = (uint32_t)v[4];
	o->discard_crypt = (uint32_t)v[5];
	o->discard_frag = (uint32_t)v[6];
	o->discard_retry = (uint32_t)v[7];
	o->discard_misc = (uint32_t)v[8];
	o->missed_beacon = (uint32_t)v[9];
	return 0;
}

int wifi_proc_parse(const char *text, size_t len, const char *ifname,
		    struct wifi_proc_stats *out)
{
	const char *p = text, *end = text + len, *e;
	int found = 0;

	if (!text || !ifname || len > PROC_MAX_BYTES)
		return -EBADMSG;
	/* two header lines: "Inter-| sta-|   Quality ..." and " face | tus | ..." */
	e = line_end(p, end);
	if (e == end || (size_t)(e - p) < 7 || memcmp(p, "Inter-|", 7))
		return -EBADMSG;
	p = e + 1;
	e = line_end(p, end);
	if (e == end || (size_t)(e - p) < 7 || memcmp(p, " face |", 7))
		return -EBADMSG;
	p = e + 1;
	while (p < end) {
		struct wifi_proc_stats s;
		char name[IFNAMSIZ + 1];

		e = line_end(p, end);
		if (e == p)	/* an empty line ends nothing well */
			return -EBADMSG;
		if (memchr(p, 0, (size_t)(e - p)))
			return -EBADMSG;
		if (parse_proc_line(p, e, name, sizeof(name), &s) < 0)
			return -EBADMSG;
		if (!found && !strcmp(name, ifname)) {
			*out = s;
			found = 1;
		}
		p = e < end ? e + 1 : end;
	}
	return found ? 0 : -ENOENT;
}

/* ---- nl80211 station dump replies ---- */

struct attr {
	uint16_t type;
	const uint8_t *data;
	size_t len;
};

/* Next attribute of [*p, end); 1 got one, 0 end, -EBADMSG malformed. */
static int next_attr(const uint8_t **p, const uint8_t *end, struct attr *a)
{
	struct nlattr h;
	size_t left = (size_t)(end - *p), adv;

	if (left == 0)
		return 0;
	if (left < NLA_HDRLEN)
		return -EBADMSG;
	memcpy(&h, *p, sizeof(h));
	if (h.nla_len < NLA_HDRLEN || h.nla_len > left)
		return -EBADMSG;
	a->type = h.nla_type & NLA_TYPE_MASK;
	a->data = *p + NLA_HDRLEN;
	a->len = h.nla_len - NLA_HDRLEN;
	adv = NLA_ALIGN((size_t)h.nla_len);
	*p = adv >= left ? end : *p + adv;
	return 1;
}

static int get_u8(const struct attr *a, uint8_t *v)
{
	if (a->len != 1)
		return -EBADMSG;
	*v = a->data[0];
	return 0;
}

static int get_u16(const struct attr *a, uint16_t *v)
{
	if (a->len != 2)
		return -EBADMSG;
	memcpy(v, a->data, 2);
	return 0;
}

static int get_u32(const struct attr *a, uint32_t *v)
{
	if (a->len != 4)
		return -EBADMSG;
	memcpy(v, a->data, 4);
	return 0;
}

static int get_u64(const struct attr *a, uint64_t *v)
{
	if (a->len != 8)
		return -EBADMSG;
	memcpy(v, a->data, 8);
	return 0;
}

static int parse_rate(const struct attr *nest, uint64_t *bps)
{
	const uint8_t *p = nest->data, *end = nest->data + nest->len;
	struct attr a;
	uint32_t b32 = 0;
	uint16_t b16 = 0;
	int rc, have32 = 0, have16 = 0;

	while ((rc = next_attr(&p, end, &a)) > 0) {
		if (a.type == NL80211_RATE_INFO_BITRATE32) {
			if (get_u32(&a, &b32) < 0)
				return -EBADMSG;
			have32 = 1;
		} else if (a.type == NL80211_RATE_INFO_BITRATE) {
			if (get_u16(&a, &b16) < 0)
				return -EBADMSG;
			have16 = 1;
		}
	}
	if (rc < 0)
		return rc;
	if (!have32 && !have16)
		return 0;
	*bps = (uint64_t)(have32 ? b32 : b16) * 100000u;	/* units of 100 kbit/s */
	return 1;
}

static int parse_sta_info(const struct attr *nest, struct wifi_station *s)
{
	const uint8_t *p = nest->data, *end = nest->data + nest->len;
	struct attr a;
	uint32_t u32;
	uint64_t u64;
	uint8_t u8;
	int rc, have_rx64 = 0, have_tx64 = 0;

	while ((rc = next_attr(&p, end, &a)) > 0) {
		switch (a.type) {
		case NL80211_STA_INFO_TX_BITRATE:
			rc = parse_rate(&a, &u64);
			if (rc < 0)
				return rc;
			if (rc) {
				s->tx_bitrate_bps = u64;
				s->present |= WIFI_STA_TX_BITRATE;
			}
			break;
		case NL80211_STA_INFO_EXPECTED_THROUGHPUT:	/* u32, kbit/s */
			if (get_u32(&a, &u32) < 0)
				return -EBADMSG;
			s->expected_throughput_bps = (uint64_t)u32 * 1000u;
			s->present |= WIFI_STA_EXPECTED_TPUT;
			break;
		case NL80211_STA_INFO_SIGNAL:			/* s8, dBm */
			if (get_u8(&a, &u8) < 0)
				return -EBADMSG;
			s->signal_dbm = (int8_t)u8;
			s->present |= WIFI_STA_SIGNAL;
			break;
		case NL80211_STA_INFO_TX_RETRIES:
			if (get_u32(&a, &s->tx_retries) < 0)
				return -EBADMSG;
			s->present |= WIFI_STA_TX_RETRIES;
			break;
		case NL80211_STA_INFO_TX_FAILED:
			if (get_u32(&a, &s->tx_failed) < 0)
				return -EBADMSG;
			s->present |= WIFI_STA_TX_FAILED;
			break;
		case NL80211_STA_INFO_RX_BYTES:
			if (get_u32(&a, &u32) < 0)
				return -EBADMSG;
			if (!have_rx64)
				s->rx_bytes = u32;
			s->present |= WIFI_STA_RX_BYTES;
			break;
		case NL80211_STA_INFO_TX_BYTES:
			if (get_u32(&a, &u32) < 0)
				return -EBADMSG;
			if (!have_tx64)
				s->tx_bytes = u32;
			s->present |= WIFI_STA_TX_BYTES;
			break;
		case NL80211_STA_INFO_RX_BYTES64:
			if (get_u64(&a, &s->rx_bytes) < 0)
				return -EBADMSG;
			have_rx64 = 1;
			s->present |= WIFI_STA_RX_BYTES;
			break;
		case NL80211_STA_INFO_TX_BYTES64:
			if (get_u64(&a, &s->tx_bytes) < 0)
				return -EBADMSG;
			have_tx64 = 1;
			s->present |= WIFI_STA_TX_BYTES;
			break;
		default:
			break;	/* many more; newer kernels add more */
		}
	}
	return rc;
}

/* One NL80211_CMD_NEW_STATION message body (after the genl header). */
static int parse_station_msg(const uint8_t *p, const uint8_t *end, uint32_t ifindex,
			     struct wifi_station *out, int *found)
{
	struct wifi_station s;
	struct attr a, info = { 0 };
	int rc, have_info = 0, have_if = 0;

	memset(&s, 0, sizeof(s));
	while ((rc = next_attr(&p, end, &a)) > 0) {
		if (a.type == NL80211_ATTR_IFINDEX) {
			if (get_u32(&a, &s.ifindex) < 0)
				return -EBADMSG;
			have_if = 1;
		} else if (a.type == NL80211_ATTR_MAC) {
			if (a.len != 6)
				return -EBADMSG;
			memcpy(s.mac, a.data, 6);
		} else if (a.type == NL80211_ATTR_STA_INFO) {
			info = a;
			have_info = 1;
		}
	}
	if (rc < 0)
		return rc;
	if (!have_info)
		return -EBADMSG;
	rc = parse_sta_info(&info, &s);
	if (rc < 0)
		return rc;
	if (*found || (ifindex && (!have_if || s.ifindex != ifindex)))
		return 0;
	*out = s;
	*found = 1;
	return 0;
}

int wifi_station_parse(const void *buf, size_t len, uint32_t ifindex,
		       struct wifi_station *sta, int *found, int *done)
{
	const uint8_t *p = buf, *end = (const uint8_t *)buf + len;

	while (p < end) {
		struct nlmsghdr h;
		size_t left = (size_t)(end - p), adv;
		const uint8_t *body, *mend;

		if (left < NLMSG_HDRLEN)
			return -EBADMSG;
		memcpy(&h, p, sizeof(h));
		if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > left)
			return -EBADMSG;
		body = p + NLMSG_HDRLEN;
		mend = p + h.nlmsg_len;
		if (h.nlmsg_type == NLMSG_DONE) {
			*done = 1;
			return 0;
		} else if (h.nlmsg_type == NLMSG_ERROR) {
			int32_t err;

			if ((size_t)(mend - body) < sizeof(err))
				return -EBADMSG;
			memcpy(&err, body, sizeof(err));
			if (err > 0 || err < -4095)
				return -EBADMSG;
			if (err == 0) {	/* an ack ends the exchange too */
				*done = 1;
				return 0;
			}
			return err;
		} else if (h.nlmsg_type == NLMSG_NOOP) {
			/* nothing */
		} else if (h.nlmsg_type >= NLMSG_MIN_TYPE) {
			struct genlmsghdr g;

			if ((size_t)(mend - body) < GENL_HDRLEN)
				return -EBADMSG;
			memcpy(&g, body, sizeof(g));
			if (g.cmd == NL80211_CMD_NEW_STATION) {
				int rc = parse_station_msg(body + GENL_HDRLEN, mend, ifindex, sta, found);

				if (rc < 0)
					return rc;
			}
		} else {
			return -EBADMSG;
		}
		adv = NLMSG_ALIGN((size_t)h.nlmsg_len);
		p = adv >= left ? end : p + adv;
	}
	return 0;
}

/* ---- the live side ---- */

struct wifi {
	char ifname[IFNAMSIZ];
	char proc_path[PATH_MAX];
	struct nl_sock *sk;
	int family;
};

int wifi_new(const char *ifname, const char *proc_root, struct wifi **out)
{
	struct wifi *w;

	*out = NULL;
	if (!ifname || !*ifname || strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	strcpy(w->ifname, ifname);
	if (snprintf(w->proc_path, sizeof(w->proc_path), "%s/proc/net/wireless",
		     proc_root && *proc_root ? proc_root : "") >= (int)sizeof(w->proc_path)) {
		free(w);
		return -ENAMETOOLONG;
	}
	*out = w;
	return 0;
}

void wifi_free(struct wifi *w)
{
	if (!w)
		return;
	if (w->sk)
		nl_socket_free(w->sk);
	free(w);
}

static int read_proc(const struct wifi *w, struct wifi_proc_stats *o)
{
	char *buf = malloc(PROC_MAX_BYTES + 1);
	size_t len = 0;
	ssize_t n;
	int fd, rc;

	if (!buf)
		return -ENOMEM;
	fd = open(w->proc_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (len <= PROC_MAX_BYTES && (n = read(fd, buf + len, PROC_MAX_BYTES + 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	rc = wifi_proc_parse(buf, len, w->ifname, o);
out:
	free(buf);
	return rc;
}

static int open_nl(struct wifi *w)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };

	if (w->sk)
		return 0;
	w->sk = nl_socket_alloc();
	if (!w->sk)
		return -ENOMEM;
	if (genl_connect(w->sk) < 0)
		goto fail;
	w->family = genl_ctrl_resolve(w->sk, "nl80211");
	if (w->family < 0)
		goto fail;
	setsockopt(nl_socket_get_fd(w->sk), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return 0;
fail:
	nl_socket_free(w->sk);
	w->sk = NULL;
	return -ENODEV;
}

static int read_station(struct wifi *w, uint32_t ifindex, struct wifi_station *sta)
{
	struct nl_msg *msg;
	int rc, found = 0, done = 0;

	rc = open_nl(w);
	if (rc < 0)
		return rc;
	msg = nlmsg_alloc();
	if (!msg)
		return -ENOMEM;
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, w->family, 0, NLM_F_DUMP,
			 NL80211_CMD_GET_STATION, 0) ||
	    nla_put_u32(msg, NL80211_ATTR_IFINDEX, ifindex) < 0) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	rc = nl_send_auto(w->sk, msg);
	nlmsg_free(msg);
	if (rc < 0)
		goto broken;
	for (int i = 0; i < 64 && !done; i++) {	/* bounded: a dump is a few messages */
		struct sockaddr_nl from;
		unsigned char *buf = NULL;
		int n = nl_recv(w->sk, &from, &buf, NULL);

		if (n <= 0) {
			free(buf);
			goto broken;
		}
		rc = wifi_station_parse(buf, (size_t)n, ifindex, sta, &found, &done);
		free(buf);
		if (rc < 0)
			return rc;	/* e.g. -EOPNOTSUPP: not a wireless interface */
	}
	return found ? 0 : -ENOENT;
broken:
	/* resynchronise next time on a fresh socket */
	nl_socket_free(w->sk);
	w->sk = NULL;
	return -EIO;
}

int wifi_read(struct wifi *w, struct wifi_stats *out)
{
	unsigned idx;

	memset(out, 0, sizeof(*out));
	out->have_proc = read_proc(w, &out->proc) == 0;
	idx = if_nametoindex(w->ifname);
	if (idx)
		out->have_station = read_station(w, idx, &out->sta) == 0;
	out->available = out->have_proc || out->have_station;
	return 0;
}
