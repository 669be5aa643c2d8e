/* Tests of the offload link: the tensor codec (link/link_codec.c, link_values.c), the
 * KServe v2 messages (link/peer_*.c) and the robot's client
 * (link/peer_client.c) against a real libmicrohttpd server on loopback,
 * plain and TLS 1.3 with client certificates (tools/mkcerts.sh).
 *
 * References are independent of the code under test: numpy's float16
 * conversion (a table generated once with Debian's python3-numpy), the
 * IEEE 754 binary16 definition evaluated with ldexp() for all 65536 halves
 * and every rounding boundary between them, and plain double arithmetic for
 * the int8 scheme. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "api.h"
#include "link_codec.h"
#include "peer_client.h"
#include "peer_proto.h"
#include "peer_v2.h"

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd32(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

static float rndf(float lo, float hi)
{
	return lo + (hi - lo) * (float)(rnd32() & 0xffffff) / 16777216.0f;
}

static float bits_f(uint32_t b)
{
	float f;

	memcpy(&f, &b, 4);
	return f;
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The binary16 value of h from its definition. */
static double half_value(uint16_t h)
{
	int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;

	if (e == 31)
		v = m ? NAN : INFINITY;
	else if (e == 0)
		v = ldexp((double)m, -24);
	else
		v = ldexp(1.0 + m / 1024.0, e - 15);
	return s ? -v : v;
}

/* A ReLU-like activation: half zeros, the rest in [0, amp). */
static void fill_activation(float *x, size_t n, float amp)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (rnd32() & 1) ? rndf(0.0f, amp) : 0.0f;
}

/* ---- float16 ---------------------------------------------------------------- */

/* (float32 bits, numpy.float16(f).view(uint16)) from
 * /usr/bin/python3 with numpy: tricky values (boundaries, ties, subnormals,
 * overflow, inf, nan) and random patterns over exponents 95..144. */
static const uint32_t numpy_f16[][2] = {
	{0x00000000u, 0x0000}, {0x80000000u, 0x8000}, {0x3f800000u, 0x3c00}, {0xbf800000u, 0xbc00},
	{0x477fe000u, 0x7bff}, {0x477feffdu, 0x7bff}, {0x477ff000u, 0x7c00}, {0xc77ff000u, 0xfc00},
	{0x47800000u, 0x7c00}, {0x501502f9u, 0x7c00}, {0x7f800000u, 0x7c00}, {0xff800000u, 0xfc00},
	{0x38800000u, 0x0400}, {0x33800000u, 0x0001}, {0x33000000u, 0x0000}, {0x33000001u, 0x0001},
	{0x32800000u, 0x0000}, {0x33c00000u, 0x0002}, {0x387fe000u, 0x0400}, {0x387fc000u, 0x03ff},
	{0x3f801000u, 0x3c00}, {0x3f803000u, 0x3c02}, {0x3f801001u, 0x3c01}, {0x3dcccccdu, 0x2e66},
	{0x3e4ccccdu, 0x3266}, {0x3e99999au, 0x34cd}, {0x3eaaaaabu, 0x3555}, {0x40490fdbu, 0x4248},
	{0x322bcc77u, 0x0000}, {0x3380d959u, 0x0001}, {0x387fda40u, 0x03ff}, {0x337ffae5u, 0x0001},
	{0x45001000u, 0x6800}, {0x45003000u, 0x6802}, {0x45800800u, 0x6c00}, {0x00000001u, 0x0000},
	{0x80000001u, 0x8000}, {0x00800000u, 0x0000}, {0x47c35000u, 0x7c00}, {0x3f000000u, 0x3800},
	{0x3eaaa000u, 0x3555}, {0x3eaac000u, 0x3556}, {0x7fc00000u, 0x7e00}, {0xffc00001u, 0xfe00},
	{0xafb8f741u, 0x8000}, {0x2fc24608u, 0x0000}, {0x2ff91b19u, 0x0000}, {0x2fd43099u, 0x0000},
	{0xb03996d0u, 0x8000}, {0xb017e0fau, 0x8000}, {0xb036a72eu, 0x8000}, {0x3060babfu, 0x0000},
	{0xb0d60d70u, 0x8000}, {0x30b9d8f1u, 0x0000}, {0x30cf0aa3u, 0x0000}, {0xb0f1664eu, 0x8000},
	{0x316c5281u, 0x0000}, {0xb17c59fau, 0x8000}, {0xb14afe15u, 0x8000}, {0xb1623f20u, 0x8000},
	{0x3193a874u, 0x0000}, {0x31a1f1e4u, 0x0000}, {0xb1c62fdcu, 0x8000}, {0x31dfbfacu, 0x0000},
	{0xb2458e14u, 0x8000}, {0x32627f9bu, 0x0000}, {0x32639fb9u, 0x0000}, {0x3249936bu, 0x0000},
	{0xb2edb235u, 0x8000}, {0xb295ad02u, 0x8000}, {0x3286232au, 0x0000}, {0xb2bc6696u, 0x8000},
	{0x331ba59eu, 0x0001}, {0x3379577du, 0x0001}, {0xb30f349eu, 0x8001}, {0x3329e34eu, 0x0001},
	{0x33b6c458u, 0x0001}, {0xb3e8251cu, 0x8002}, {0x33a11449u, 0x0001}, {0xb3d60d7fu, 0x8002},
	{0xb448a57bu, 0x8003}, {0x341d6a0fu, 0x0002}, {0xb4613ed0u, 0x8004}, {0x3434efecu, 0x0003},
	{0x34e44ea1u, 0x0007}, {0xb4bcf9f6u, 0x8006}, {0x34b174a5u, 0x0006}, {0xb4c256abu, 0x8006},
	{0xb56a501au, 0x800f}, {0xb562e81cu, 0x800e}, {0x35279e05u, 0x000a}, {0x355b431au, 0x000e},
	{0xb5d9f4eeu, 0x801b}, {0x35bda66fu, 0x0018}, {0x35c5a5eeu, 0x0019}, {0xb5f1dacfu, 0x801e},
	{0xb6022e5eu, 0x8021}, {0xb66fbfb2u, 0x803c}, {0x363eb5deu, 0x0030}, {0x3630a690u, 0x002c},
	{0xb6f84e77u, 0x807c}, {0x36bb183cu, 0x005e}, {0x36976434u, 0x004c}, {0x36dce9deu, 0x006e},
	{0x3719bf00u, 0x009a}, {0xb711d7c1u, 0x8092}, {0xb71fca19u, 0x80a0}, {0xb74372ecu, 0x80c3},
	{0xb7fe194du, 0x81fc}, {0xb7a7c41eu, 0x8150}, {0x378a7926u, 0x0115}, {0x37a6bb7bu, 0x014d},
	{0xb84edbc7u, 0x833b}, {0xb8168f10u, 0x825a}, {0xb8129f6fu, 0x824a}, {0xb876345cu, 0x83d9},
	{0xb8bf102eu, 0x85f9}, {0xb88bd3a2u, 0x845f}, {0x38f21aa4u, 0x0791}, {0xb8a400c1u, 0x8520},
	{0x3907945cu, 0x083d}, {0xb9379717u, 0x89bd}, {0x39509ab6u, 0x0a85}, {0xb918b872u, 0x88c6},
	{0xb985f398u, 0x8c30}, {0xb990869au, 0x8c84}, {0xb9b5abedu, 0x8dad}, {0x399b5f34u, 0x0cdb},
	{0xba49427au, 0x924a}, {0xba30fb50u, 0x9188}, {0xba27a126u, 0x913d}, {0x3a0c40e2u, 0x1062},
	{0x3ae4fe5bu, 0x1728}, {0xbadb13c6u, 0x96d9}, {0x3aaf636bu, 0x157b}, {0xbaea012du, 0x9750},
	{0xbb36f85au, 0x99b8}, {0x3b03e771u, 0x181f}, {0xbb4adc1au, 0x9a57}, {0x3b4525c6u, 0x1a29},
	{0x3ba58c36u, 0x1d2c}, {0xbbe6cc41u, 0x9f36}, {0xbbfc2584u, 0x9fe1}, {0x3b846e3du, 0x1c23},
	{0xbc57f8d1u, 0xa2c0}, {0x3c580e32u, 0x22c0}, {0x3c5d0bb5u, 0x22e8}, {0x3c680a46u, 0x2340},
	{0x3cd96509u, 0x26cb}, {0xbcdd4861u, 0xa6ea}, {0x3cf1d9e1u, 0x278f}, {0xbce37b8fu, 0xa71c},
	{0x3d4f69c1u, 0x2a7b}, {0x3d403bb3u, 0x2a02}, {0xbd2fc5c0u, 0xa97e}, {0xbd1fd33eu, 0xa8ff},
	{0x3dbccf66u, 0x2de6}, {0xbdfba411u, 0xafdd}, {0x3dba929fu, 0x2dd5}, {0xbd9210c5u, 0xac91},
	{0x3e1c55bbu, 0x30e3}, {0xbe739f4cu, 0xb39d}, {0xbe73b57du, 0xb39e}, {0xbe0dfdf1u, 0xb070},
	{0xbeb759f8u, 0xb5bb}, {0x3ebaa5bbu, 0x35d5}, {0x3ee5bb55u, 0x372e}, {0xbeb5cf7bu, 0xb5ae},
	{0xbf22161au, 0xb911}, {0xbf6a4c93u, 0xbb52}, {0xbf220bc5u, 0xb910}, {0x3f06665bu, 0x3833},
	{0x3f8ebfbfu, 0x3c76}, {0xbfce53f8u, 0xbe73}, {0x3fb53ca0u, 0x3daa}, {0xbfaaea44u, 0xbd57},
	{0xc076095du, 0xc3b0}, {0x401d3137u, 0x40ea}, {0xc0285e04u, 0xc143}, {0x402015cfu, 0x4101},
	{0xc0ea8a14u, 0xc754}, {0xc0de4112u, 0xc6f2}, {0xc0e02aadu, 0xc701}, {0x40a98d41u, 0x454c},
	{0x4122990au, 0x4915}, {0x4124e78du, 0x4927}, {0xc11296eau, 0xc895}, {0xc173b544u, 0xcb9e},
	{0xc1c02e58u, 0xce01}, {0xc1a8b175u, 0xcd46}, {0x41b12c3eu, 0x4d89}, {0xc195fee8u, 0xccb0},
	{0x4242eb8au, 0x5217}, {0xc22f9125u, 0xd17d}, {0x42161991u, 0x50b1}, {0x42181072u, 0x50c1},
	{0x42a23897u, 0x5512}, {0x42b576e0u, 0x55ac}, {0x42b19748u, 0x558d}, {0xc289965du, 0xd44d},
	{0x437614ebu, 0x5bb1}, {0x430bead3u, 0x585f}, {0xc3163168u, 0xd8b2}, {0xc35e4d19u, 0xdaf2},
	{0x43e42e5du, 0x5f21}, {0xc3a57899u, 0xdd2c}, {0xc3ef2ce4u, 0xdf79}, {0xc3b7597fu, 0xddbb},
	{0xc41aa929u, 0xe0d5}, {0xc428b0c9u, 0xe146}, {0xc42ed145u, 0xe177}, {0x441867e3u, 0x60c3},
	{0xc4e81a8eu, 0xe741}, {0xc4e852feu, 0xe743}, {0xc4ef07acu, 0xe778}, {0xc4cf6d32u, 0xe67b},
	{0x45458f71u, 0x6a2c}, {0xc51eb61bu, 0xe8f6}, {0xc50cfdefu, 0xe868}, {0x45096dc3u, 0x684b},
	{0xc5d1583eu, 0xee8b}, {0x458ea51eu, 0x6c75}, {0xc5b86ba5u, 0xedc3}, {0x45babb8du, 0x6dd6},
	{0x461400eeu, 0x70a0}, {0x4630b75bu, 0x7186}, {0x4666a0d8u, 0x7335}, {0xc658ad24u, 0xf2c5},
	{0xc6b765ffu, 0xf5bb}, {0x46a40997u, 0x7520}, {0x46a88292u, 0x7544}, {0x4680b5c3u, 0x7406},
	{0x4703654eu, 0x781b}, {0xc77d6d07u, 0xfbeb}, {0x4762e2e7u, 0x7b17}, {0xc77fb90fu, 0xfbfe},
	{0xc79444ccu, 0xfc00}, {0x47fbb63eu, 0x7c00}, {0x47b7fd42u, 0x7c00}, {0x47ea0600u, 0x7c00},
	{0x4878283cu, 0x7c00}, {0x486c586au, 0x7c00}, {0xc843cbb0u, 0xfc00}, {0xc85cbbefu, 0xfc00},
	{0x878a5695u, 0x8000}, {0xf3df61fbu, 0xfc00}, {0x9f23bc9bu, 0x8000}, {0xbc90281fu, 0xa481},
	{0xed7692c6u, 0xfc00}, {0x687dc4d9u, 0x7c00}, {0xe5a47aadu, 0xfc00}, {0x261a2224u, 0x0000},
	{0x95f716d3u, 0x8000}, {0xaee0e32bu, 0x8000}, {0x1dc60c11u, 0x0000}, {0x92b6c90cu, 0x8000},
	{0xce407152u, 0xfc00}, {0xdc75dc3cu, 0xfc00}, {0x767cf56du, 0x7c00}, {0x419190d5u, 0x4c8d},
	{0x1ce7de05u, 0x0000}, {0xa82a6787u, 0x8000}, {0x8a47cfabu, 0x8000}, {0x17eed190u, 0x0000},
	{0x6f1ad23fu, 0x7c00}, {0x4f3ea0eau, 0x7c00}, {0x0eaa9f6au, 0x0000}, {0x6e5ee51au, 0x7c00},
	{0x63fc26b7u, 0x7c00}, {0xce2bc6c2u, 0xfc00}, {0xa6ebdf9fu, 0x8000}, {0x59034f82u, 0x7c00},
	{0xb864db21u, 0x8393}, {0x9e6f9010u, 0x8000}, {0x8c06b97cu, 0x8000}, {0xfc6c374bu, 0xfc00},
	{0x023da4e4u, 0x0000}, {0xf23f086eu, 0xfc00}, {0xde051697u, 0xfc00}, {0x7a44ca10u, 0x7c00},
	{0x059d64ddu, 0x0000}, {0x3594dab4u, 0x0013}, {0xe3d9e89bu, 0xfc00}, {0x9d909b7cu, 0x8000},
};

static void test_f16_numpy_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(numpy_f16) / sizeof(numpy_f16[0]); i++) {
		float f = bits_f(numpy_f16[i][0]);
		uint16_t want = (uint16_t)numpy_f16[i][1], got_ref = link_f32_to_f16_ref(f), got_simd;

		link_f32_to_f16(&f, &got_simd, 1);
		if (isnan(f)) {
			assert_true((got_ref & 0x7c00) == 0x7c00 && (got_ref & 0x3ff));
			assert_int_equal(got_ref & 0x8000, want & 0x8000);
			continue;
		}
		if (got_ref != want)
			fail_msg("f32 0x%08x: portable gives 0x%04x, numpy 0x%04x", numpy_f16[i][0], got_ref, want);
		assert_int_equal(got_simd, want);
	}
}

/* Every half decodes to its defined value, by both routines. */
static void test_f16_decode_exhaustive(void **state)
{
	static uint16_t h[65536];
	static float f[65536];

	(void)state;
	for (uint32_t i = 0; i < 65536; i++)
		h[i] = (uint16_t)i;
	link_f16_to_f32(h, f, 65536);
	for (uint32_t i = 0; i < 65536; i++) {
		double want = half_value((uint16_t)i);
		float r = link_f16_to_f32_ref((uint16_t)i);

		if (isnan(want)) {
			assert_true(isnan(f[i]) && isnan(r));
			continue;
		}
		if ((double)r != want || (double)f[i] != want || !!signbit(r) != !!signbit(want) || !!signbit(f[i]) != !!signbit(want))
			fail_msg("half 0x%04x: want %.9g, portable %.9g, fast %.9g", i, want, (double)r,
				 (double)f[i]);
	}
}

/* Round to nearest even at every boundary: for each pair of adjacent
 * finite halves (a, b) the float midpoint goes to the even one, and the
 * floats just below / above it to a / b. Both routines, both signs. */
static void test_f16_encode_boundaries(void **state)
{
	enum { N = 0x7c00 * 8 };
	float *in = malloc(N * sizeof(float));
	uint16_t *want = malloc(N * sizeof(uint16_t)), *got = malloc(N * sizeof(uint16_t));
	size_t n = 0;

	(void)state;
	for (uint32_t a = 0; a < 0x7c00; a++) {
		double va = half_value((uint16_t)a);
		double vb = a == 0x7bff ? 65536.0 : half_value((uint16_t)(a + 1));
		float mid = (float)((va + vb) / 2);	/* exact: 12 significant bits */
		uint16_t even = (a & 1) ? (uint16_t)(a + 1) : (uint16_t)a;

		assert_true((double)mid == (va + vb) / 2);
		for (int s = 0; s < 2; s++) {
			uint16_t sg = s ? 0x8000 : 0;
			float sign = s ? -1.0f : 1.0f;

			in[n] = sign * (float)va;
			want[n++] = (uint16_t)(sg | a);
			in[n] = sign * mid;
			want[n++] = (uint16_t)(sg | even);
			in[n] = sign * nextafterf(mid, 0.0f);
			want[n++] = (uint16_t)(sg | a);
			/* above the midpoint: the next half (inf past 65504) */
			in[n] = sign * nextafterf(mid, INFINITY);
			want[n++] = (uint16_t)(sg | (a + 1));
		}
	}
	assert_true(n <= N);
	link_f32_to_f16(in, got, n);
	for (size_t i = 0; i < n; i++) {
		uint16_t r = link_f32_to_f16_ref(in[i]);

		if (r != want[i] || got[i] != want[i])
			fail_msg("f32 %.9g (0x%08x): want 0x%04x, portable 0x%04x, fast 0x%04x", (double)in[i],
				 *(uint32_t *)(void *)&in[i], want[i], r, got[i]);
	}
	free(in);
	free(want);
	free(got);
}

/* The fast path (F16C / NEON) agrees bit for bit with the portable one. */
static void test_f16_fast_equals_portable(void **state)
{
	enum { N = 1 << 20 };
	float *in = malloc(N * sizeof(float));
	uint16_t *h = malloc(N * sizeof(uint16_t));
	float *back = malloc(N * sizeof(float));

	(void)state;
	for (size_t i = 0; i < N; i++)
		in[i] = bits_f(rnd32() ^ (rnd32() << 16));
	link_f32_to_f16(in, h, N);
	link_f16_to_f32(h, back, N);
	for (size_t i = 0; i < N; i++) {
		uint16_t r = link_f32_to_f16_ref(in[i]);
		float b = link_f16_to_f32_ref(r);

		if (isnan(in[i])) {
			assert_true(isnan(back[i]) && (h[i] & 0x7c00) == 0x7c00 && (h[i] & 0x3ff));
			continue;
		}
		if (h[i] != r || memcmp(&b, &back[i], 4))
			fail_msg("f32 0x%08x: fast 0x%04x, portable 0x%04x", *(uint32_t *)(void *)&in[i], h[i], r);
	}
	print_message("f16 conversion: %s\n", link_f16_impl());
	free(in);
	free(h);
	free(back);
}

/* ---- codec ------------------------------------------------------------------- */

static void test_encoding_strings(void **state)
{
	static const char *const ok[] = { "f32", "f16", "i8", "f32+zstd", "f16+zstd", "i8+zstd",
					  "f32+lz4", "f16+lz4", "i8+lz4", "f16+zstd:3" };
	static const char *const bad[] = { "", "f64", "F16", "f16+", "f16+gzip", "f16+zstd:0",
					   "f16+zstd:99", "f16+zstd:", "f16+zstd:3x", "f16 ", "+zstd",
					   "i8+lz4+zstd", "f16zstd" };
	struct link_encoding e;
	char buf[LINK_ENCODING_STRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(link_encoding_parse(ok[i], &e), 0);
		assert_true(link_encoding_format(&e, buf, sizeof(buf)) > 0);
		assert_string_equal(buf, ok[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (link_encoding_parse(bad[i], &e) != -EINVAL)
			fail_msg("'%s' parsed", bad[i]);
	assert_int_equal(link_encoding_parse("i8+lz4", &e), 0);
	assert_int_equal(e.value, LINK_VALUE_I8);
	assert_int_equal(e.comp, LINK_COMP_LZ4);
	assert_int_equal(link_encoding_format(&e, buf, 4), -ENOSPC);
}

static const char *const all_encodings[] = { "f32", "f16", "i8", "f32+zstd", "f16+zstd",
					     "i8+zstd", "f32+lz4", "f16+lz4", "i8+lz4" };

static int roundtrip(const struct tensor_view *v, const char *encs, float *y, size_t *enc_len,
		     float *scale)
{
	struct link_encoding e;
	size_t cap = 0;
	void *buf;
	struct tensor_view d = *v;
	char err[200] = "";
	int r;

	assert_int_equal(link_encoding_parse(encs, &e), 0);
	cap = link_encode_bound(v, &e);
	buf = malloc(cap + 1);
	r = link_encode(v, &e, buf, cap, enc_len, scale);
	if (r == 0) {
		d.data = y;
		r = link_decode(buf, *enc_len, &e, *scale, &d, err, sizeof(err));
		if (r)
			fail_msg("decode %s: %s", encs, err);
	}
	free(buf);
	return r;
}

/* int8: the vector quantizer gives the portable routine's bytes, ties
 * included, and decoding is q * scale. */
static void test_i8_fast_equals_portable(void **state)
{
	enum { N = 100003 };
	float *x = malloc(N * 4), *y = malloc(N * 4);
	int8_t *a = malloc(N), *b = malloc(N);
	struct tensor_view v = { TENSOR_F32, 1, { N }, x, 0 };
	struct link_encoding e;
	size_t len;
	float scale = 0.25f;

	(void)state;
	for (size_t i = 0; i < N; i++)	/* half of them exact ties k/2 * scale */
		x[i] = (i & 1) ? rndf(-40.0f, 40.0f) : (float)((int)(rnd32() % 509) - 254) * 0.5f * scale;
	link_i8_quantize(x, a, N, scale);
	link_i8_quantize_ref(x, b, N, scale);
	assert_memory_equal(a, b, N);
	for (size_t i = 0; i < N; i += 2) {	/* ties go to even */
		double t = (double)x[i] / scale, want = nearbyint(t);

		want = want > 127 ? 127 : want < -127 ? -127 : want;
		if (a[i] != (int8_t)want)
			fail_msg("x/scale = %.2f quantized to %d", t, a[i]);
	}
	link_encoding_parse("i8", &e);
	assert_int_equal(link_encode(&v, &e, a, N, &len, &scale), 0);
	assert_int_equal(roundtrip(&v, "i8", y, &len, &scale), 0);
	for (size_t i = 0; i < N; i++)
		if (y[i] != (float)a[i] * scale)
			fail_msg("element %zu decodes to %.9g, not %d * %.9g", i, (double)y[i], a[i],
				 (double)scale);
	free(x);
	free(y);
	free(a);
	free(b);
}

/* Every encoding: error within its analytical bound, computed here in double
 * from the definitions; f32 exact; compression shrinks a sparse tensor. */
static void test_codec_roundtrip_bounds(void **state)
{
	enum { N = 64 * 28 * 28 };
	struct tensor_view v = { TENSOR_F32, 4, { 1, 64, 28, 28 }, NULL, 0 };
	float *x = malloc(N * 4), *y = malloc(N * 4);

	(void)state;
	fill_activation(x, N, 6.0f);
	x[17] = 1e-6f;	/* a half subnormal */
	x[18] = -3.5f;
	v.data = x;
	for (size_t k = 0; k < sizeof(all_encodings) / sizeof(all_encodings[0]); k++) {
		struct link_encoding e;
		struct link_error le;
		size_t len = 0;
		float scale = 0;
		double maxx = 0, maxe = 0;

		assert_int_equal(roundtrip(&v, all_encodings[k], y, &len, &scale), 0);
		link_encoding_parse(all_encodings[k], &e);
		for (size_t i = 0; i < N; i++) {
			double ax = fabs((double)x[i]), d = fabs((double)y[i] - (double)x[i]), b;

			maxx = ax > maxx ? ax : maxx;
			maxe = d > maxe ? d : maxe;
			if (e.value == LINK_VALUE_F16)
				b = ax >= 0x1p-14 ? ax * 0x1p-11 : 0x1p-25;
			else if (e.value == LINK_VALUE_I8)
				b = scale * (0.5 + 0x1p-15);
			else
				b = 0;
			if (d > b)
				fail_msg("%s: x=%.9g decoded %.9g, error %.3g > bound %.3g", all_encodings[k],
					 (double)x[i], (double)y[i], d, b);
		}
		if (e.value == LINK_VALUE_I8) {
			/* the scale is max|x| / 127 in float: one rounded division (u
			 * relative) and at most 8 one-ulp steps up (2u each) that keep
			 * max|x| / scale <= 127.49 (link_values.c, link_i8_scale_of) */
			assert_true(fabs((double)scale - maxx / 127.0) <= maxx / 127.0 * 17 * 0x1p-24);
			/* and the round-off really is up to scale/2 (not far below) */
			assert_true(maxe > 0.45 * scale);
		}
		if (e.value == LINK_VALUE_F32)
			assert_memory_equal(x, y, N * 4);
		if (e.comp == LINK_COMP_ZSTD)	/* half the values are zero: entropy < 0.8 */
			assert_true(len < (size_t)N * link_value_size(e.value, TENSOR_F32) * 4 / 5);
		else if (e.comp == LINK_COMP_LZ4)
			assert_true(len <= link_encode_bound(&v, &e));
		else
			assert_int_equal(len, (size_t)N * link_value_size(e.value, TENSOR_F32));
		/* the measuring function agrees with this computation */
		assert_int_equal(link_codec_error(&v, &e, &le), 0);
		assert_true(le.max_abs == maxe);	/* both the largest |x - y| of floats, exact in double */
		assert_true(le.max_abs <= le.bound_abs);
		assert_int_equal(le.encoded_bytes, len);
		assert_int_equal(le.raw_bytes, (size_t)N * 4);
		print_message("%-9s bytes %7zu (%.3f of f32)  max_abs %.3g  max_rel %.3g  bound %.3g\n",
			      all_encodings[k], len, (double)len / (N * 4.0), le.max_abs, le.max_rel,
			      le.bound_abs);
	}
	free(x);
	free(y);
}

static void test_codec_special_values(void **state)
{
	float x[8] = { 1.0f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f, 65504.0f, 2.0f }, y[8];
	struct tensor_view v = { TENSOR_F32, 1, { 8 }, x, 0 };
	struct link_encoding e;
	size_t len;
	float scale;
	uint8_t buf[64];

	(void)state;
	/* f16 keeps inf, nan and signed zero */
	assert_int_equal(roundtrip(&v, "f16", y, &len, &scale), 0);
	assert_true(isinf(y[1]) && y[1] > 0 && isinf(y[2]) && y[2] < 0 && isnan(y[3]));
	assert_true(y[5] == 0.0f && signbit(y[5]));
	assert_true(y[6] == 65504.0f);
	/* int8 refuses non-finite values */
	link_encoding_parse("i8", &e);
	assert_int_equal(link_encode(&v, &e, buf, sizeof(buf), &len, &scale), -EDOM);
	/* f16 refuses a finite value it would turn into inf */
	x[1] = 70000.0f;
	x[2] = 1.0f;
	x[3] = 1.0f;
	link_encoding_parse("f16+zstd", &e);
	{
		uint8_t big[256];

		assert_int_equal(link_encode(&v, &e, big, sizeof(big), &len, &scale), -ERANGE);
	}
	/* an all-zero tensor: scale 0, decodes to zeros */
	memset(x, 0, sizeof(x));
	assert_int_equal(roundtrip(&v, "i8", y, &len, &scale), 0);
	assert_true(scale == 0.0f);
	for (int i = 0; i < 8; i++)
		assert_true(y[i] == 0.0f);
	/* dst too small */
	link_encoding_parse("f32", &e);
	assert_int_equal(link_encode(&v, &e, buf, 16, &len, &scale), -ENOSPC);
}

/* Non-float tensors travel raw (with compression) whatever was asked. */
static void test_codec_raw_dtypes(void **state)
{
	int64_t a[300], b[300];
	struct tensor_view v = { TENSOR_I64, 2, { 3, 100 }, a, 0 }, d = v;
	struct link_encoding e, eff;
	uint8_t buf[4096];
	size_t len;
	float scale;
	char err[128];

	(void)state;
	for (int i = 0; i < 300; i++)
		a[i] = (int64_t)i * 1000003 - 7;
	link_encoding_parse("i8+zstd", &e);
	eff = link_encoding_effective(&e, TENSOR_I64);
	assert_int_equal(eff.value, LINK_VALUE_F32);
	assert_int_equal(eff.comp, LINK_COMP_ZSTD);
	assert_int_equal(link_encode(&v, &e, buf, sizeof(buf), &len, &scale), 0);
	d.data = b;
	assert_int_equal(link_decode(buf, len, &eff, 1.0f, &d, err, sizeof(err)), 0);
	assert_memory_equal(a, b, sizeof(a));
	/* a lossy encoding declared for a non-float tensor is refused */
	assert_int_equal(link_decode(buf, len, &e, 1.0f, &d, err, sizeof(err)), -EBADMSG);
}

/* Malformed encoded data is refused with a sentence, never overruns. */
static void test_codec_malformed(void **state)
{
	enum { N = 4096 };
	float *x = malloc(N * 4), *y = malloc((N + 64) * 4);
	struct tensor_view v = { TENSOR_F32, 2, { 64, 64 }, NULL, 0 }, d;
	struct link_encoding e;
	uint8_t *buf = malloc(N * 8);
	size_t len;
	float scale;
	char err[200];

	(void)state;
	fill_activation(x, N, 3.0f);
	v.data = x;
	d = v;
	d.data = y;
	for (size_t k = 0; k < sizeof(all_encodings) / sizeof(all_encodings[0]); k++) {
		link_encoding_parse(all_encodings[k], &e);
		assert_int_equal(link_encode(&v, &e, buf, N * 8, &len, &scale), 0);
		/* truncated, extended */
		err[0] = '\0';
		assert_int_equal(link_decode(buf, len - 1, &e, scale, &d, err, sizeof(err)), -EBADMSG);
		assert_true(strlen(err) > 10);
		buf[len] = 0;
		assert_int_equal(link_decode(buf, len + 1, &e, scale, &d, err, sizeof(err)), -EBADMSG);
		/* a shape that does not match the stream */
		d.shape[0] = 65;
		y[N + 63] = 12345.0f;
		assert_int_equal(link_decode(buf, len, &e, scale, &d, err, sizeof(err)), -EBADMSG);
		assert_true(y[N + 63] == 12345.0f);
		d.shape[0] = 64;
		/* garbage of the right length never crashes nor overruns */
		for (int t = 0; t < 20; t++) {
			uint8_t *g = malloc(len);

			for (size_t i = 0; i < len; i++)
				g[i] = (uint8_t)rnd32();
			if (t & 1)
				memcpy(g, buf, len / 2);
			(void)link_decode(g, len, &e, scale, &d, err, sizeof(err));
			free(g);
		}
	}
	/* int8 scale must be finite and >= 0 */
	link_encoding_parse("i8", &e);
	assert_int_equal(link_encode(&v, &e, buf, N * 8, &len, &scale), 0);
	assert_int_equal(link_decode(buf, len, &e, NAN, &d, err, sizeof(err)), -EBADMSG);
	assert_int_equal(link_decode(buf, len, &e, -1.0f, &d, err, sizeof(err)), -EBADMSG);
	assert_int_equal(link_decode(buf, len, &e, INFINITY, &d, err, sizeof(err)), -EBADMSG);
	/* a zstd frame that declares more than the tensor holds (a bomb) */
	{
		struct tensor_view big = { TENSOR_F32, 1, { 1 << 20 }, NULL, 0 };
		float *z = calloc(1 << 20, 4);
		size_t cap;

		big.data = z;
		link_encoding_parse("f32+zstd", &e);
		cap = link_encode_bound(&big, &e);
		free(buf);
		buf = malloc(cap);
		assert_int_equal(link_encode(&big, &e, buf, cap, &len, &scale), 0);
		assert_true(len < 1000);
		assert_int_equal(link_decode(buf, len, &e, 1.0f, &d, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "declares"));
		link_encoding_parse("f32+lz4", &e);
		cap = link_encode_bound(&big, &e);
		free(buf);
		buf = malloc(cap);
		assert_int_equal(link_encode(&big, &e, buf, cap, &len, &scale), 0);
		assert_int_equal(link_decode(buf, len, &e, 1.0f, &d, err, sizeof(err)), -EBADMSG);
		free(z);
	}
	/* shapes that overflow */
	d.ndim = 3;
	d.shape[0] = (int64_t)1 << 31;
	d.shape[1] = (int64_t)1 << 31;
	d.shape[2] = 4;
	link_encoding_parse("f32", &e);
	assert_int_equal(link_decode(buf, 16, &e, 1.0f, &d, err, sizeof(err)), -EBADMSG);
	d.shape[0] = -1;
	assert_int_equal(link_decode(buf, 16, &e, 1.0f, &d, err, sizeof(err)), -EBADMSG);
	free(x);
	free(y);
	free(buf);
}

/* ---- peer protocol ---------------------------------------------------------------- */

static const uint8_t test_sha[32] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
				      13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28 };

/* the test model's cut 3: two tensors (a residual block) */
static const struct engine_value_info test_cut[2] = {
	{ "conv3_out", TENSOR_F32, 4, { 1, 8, 16, 16 }, 8 * 16 * 16 * 4 },
	{ "skip", TENSOR_F32, 4, { 1, 8, 16, 16 }, 8 * 16 * 16 * 4 },
};

struct encoded {
	uint8_t *buf;
	size_t len;
	float scale;
	struct link_encoding enc;
};

static void encode_as(const struct tensor_view *v, const char *encs, struct encoded *o)
{
	struct link_encoding e;
	size_t cap;

	assert_int_equal(link_encoding_parse(encs, &e), 0);
	cap = link_encode_bound(v, &e);
	o->buf = malloc(cap);
	assert_int_equal(link_encode(v, &e, o->buf, cap, &o->len, &o->scale), 0);
	o->enc = link_encoding_effective(&e, v->dtype);
}

static void fill_peer_tensor(struct peer_tensor *t, const struct engine_value_info *vi,
			     const struct encoded *e)
{
	memset(t, 0, sizeof(*t));
	t->name = vi->name;
	t->dtype = vi->dtype;
	t->ndim = vi->ndim;
	memcpy(t->shape, vi->shape, sizeof(t->shape));
	t->enc = e->enc;
	t->scale = e->scale;
	t->data = e->buf;
	t->len = e->len;
}

/* Splits a flat v2 binary body the way a server does. */
static int parse_flat(const uint8_t *body, size_t len, size_t hlen, struct peer_request *r,
		      char *err, size_t errlen)
{
	return peer_request_parse(body, hlen, body + hlen, len - hlen, r, err, errlen);
}

static void test_proto_request_roundtrip(void **state)
{
	static const char *const encs[] = { "f32", "f16+zstd", "i8+lz4", "i8" };
	float *a = malloc(test_cut[0].bytes), *b = malloc(test_cut[1].bytes);
	struct tensor_view va = { TENSOR_F32, 4, { 1, 8, 16, 16 }, a, 0 }, vb = va;

	(void)state;
	vb.data = b;
	fill_activation(a, 2048, 4.0f);
	for (int i = 0; i < 2048; i++)
		b[i] = rndf(-2.0f, 2.0f);
	for (size_t k = 0; k < sizeof(encs) / sizeof(encs[0]); k++) {
		struct encoded ea, eb;
		struct peer_tensor in[2];
		struct peer_request_spec spec = { 0 };
		struct peer_msg m;
		struct peer_request pr;
		struct tensor_view views[2];
		uint8_t *flat;
		size_t flen;
		void *mem;
		char err[256] = "";
		const char *outs[1] = { "logits" };
		json_t *hdr;
		json_error_t je;

		encode_as(&va, encs[k], &ea);
		encode_as(&vb, "f32+zstd", &eb);
		/* inputs in the other order than the cut lists them */
		fill_peer_tensor(&in[0], &test_cut[1], &eb);
		fill_peer_tensor(&in[1], &test_cut[0], &ea);
		spec.id = "req-7";
		spec.cut = 3;
		spec.model_sha256 = test_sha;
		spec.inputs = in;
		spec.n_inputs = 2;
		spec.outputs = outs;
		spec.n_outputs = 1;
		assert_int_equal(peer_request_build(&spec, &m, err, sizeof(err)), 0);
		assert_int_equal(m.total_len, m.header_len + ea.len + eb.len);
		/* the header is KServe v2 as documented */
		hdr = json_loadb(m.header, m.header_len, 0, &je);
		assert_non_null(hdr);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(hdr, "parameters"),
								    "splitd_cut")), 3);
		{
			json_t *i1 = json_array_get(json_object_get(hdr, "inputs"), 1);
			json_t *p = json_object_get(i1, "parameters");

			assert_string_equal(json_string_value(json_object_get(i1, "datatype")), "FP32");
			assert_int_equal(json_integer_value(json_object_get(p, "binary_data_size")), ea.len);
			if (!strcmp(encs[k], "f32"))
				assert_null(json_object_get(p, "splitd_encoding"));
			else
				assert_string_equal(json_string_value(json_object_get(p, "splitd_encoding")),
						    encs[k]);
		}
		json_decref(hdr);
		assert_int_equal(peer_msg_flatten(&m, &flat, &flen), 0);
		assert_int_equal(parse_flat(flat, flen, m.header_len, &pr, err, sizeof(err)), 0);
		assert_string_equal(pr.id, "req-7");
		assert_int_equal(pr.cut, 3);
		assert_int_equal(pr.n_outputs, 1);
		assert_string_equal(pr.outputs[0], "logits");
		assert_true(pr.binary_output);
		assert_int_equal(peer_cut_alloc(test_cut, 2, views, &mem), 0);
		if (peer_request_decode(&pr, test_sha, test_cut, 2, views, NULL, NULL, err, sizeof(err)))
			fail_msg("%s: %s", encs[k], err);
		/* decoded = what the codec alone gives */
		{
			float *ref = malloc(test_cut[0].bytes);
			struct tensor_view d = va;

			d.data = ref;
			assert_int_equal(link_decode(ea.buf, ea.len, &ea.enc, ea.scale, &d, err, sizeof(err)), 0);
			assert_memory_equal(views[0].data, ref, test_cut[0].bytes);
			assert_memory_equal(views[1].data, b, test_cut[1].bytes);
			free(ref);
		}
		/* another model's request is refused by name */
		{
			uint8_t other[32];

			memcpy(other, test_sha, 32);
			other[31] ^= 1;
			assert_int_equal(peer_request_decode(&pr, other, test_cut, 2, views, NULL, NULL, err,
							     sizeof(err)), -EBADMSG);
			assert_non_null(strstr(err, "model sha256"));
		}
		/* the cut must match: a missing tensor, another shape */
		{
			struct engine_value_info c2[2];
			struct tensor_view v2[2];
			void *mem2;

			memcpy(c2, test_cut, sizeof(c2));
			c2[1].name = "other";
			assert_int_equal(peer_request_decode(&pr, test_sha, c2, 2, views, NULL, NULL, err,
							     sizeof(err)), -EBADMSG);
			assert_non_null(strstr(err, "'other' is missing"));
			memcpy(c2, test_cut, sizeof(c2));
			c2[0].shape[2] = 8;
			c2[0].bytes /= 2;
			assert_int_equal(peer_cut_alloc(c2, 2, v2, &mem2), 0);
			assert_int_equal(peer_request_decode(&pr, test_sha, c2, 2, v2, NULL, NULL, err,
							     sizeof(err)), -EBADMSG);
			assert_non_null(strstr(err, "shape [1,8,16,16], [1,8,8,16] was expected"));
			assert_int_equal(peer_request_decode(&pr, test_sha, c2, 1, v2, NULL, NULL, err,
							     sizeof(err)), -EBADMSG);
			free(mem2);
		}
		/* a body with one byte too many or too few */
		peer_request_fini(&pr);
		flat = realloc(flat, flen + 1);
		flat[flen] = 0;
		assert_int_equal(parse_flat(flat, flen + 1, m.header_len, &pr, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "follow the last input"));
		assert_int_equal(parse_flat(flat, flen - 1, m.header_len, &pr, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "remain in the body"));
		free(flat);
		free(mem);
		peer_msg_fini(&m);
		free(ea.buf);
		free(eb.buf);
	}
	free(a);
	free(b);
}

static void test_proto_image_request(void **state)
{
	static const uint8_t jpeg[] = { 0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 2, 3, 0xff, 0xd9 };
	struct peer_tensor t = { .name = "input", .is_bytes = 1, .ndim = 1, .shape = { 1 },
				 .data = jpeg, .len = sizeof(jpeg) };
	struct peer_request_spec spec = { .cut = 0, .model_sha256 = test_sha, .inputs = &t, .n_inputs = 1 };
	struct peer_msg m;
	struct peer_request pr;
	uint8_t *flat;
	size_t flen, ilen;
	const void *img;
	char err[256];
	struct engine_value_info in0 = { "input", TENSOR_F32, 4, { 1, 3, 224, 224 }, 3 * 224 * 224 * 4 };

	(void)state;
	assert_int_equal(peer_request_build(&spec, &m, err, sizeof(err)), 0);
	assert_int_equal(m.total_len, m.header_len + 4 + sizeof(jpeg));
	assert_non_null(strstr(m.header, "\"BYTES\""));
	assert_int_equal(peer_msg_flatten(&m, &flat, &flen), 0);
	/* the v2 BYTES layout: 4-byte little-endian length, then the bytes */
	assert_int_equal(flat[m.header_len], sizeof(jpeg));
	assert_int_equal(flat[m.header_len + 1], 0);
	assert_int_equal(parse_flat(flat, flen, m.header_len, &pr, err, sizeof(err)), 0);
	assert_int_equal(peer_request_decode(&pr, test_sha, &in0, 1, NULL, &img, &ilen, err, sizeof(err)), 0);
	assert_int_equal(ilen, sizeof(jpeg));
	assert_memory_equal(img, jpeg, sizeof(jpeg));
	/* an image is not a cut-3 tensor */
	pr.cut = 3;
	assert_int_equal(peer_request_decode(&pr, test_sha, &in0, 1, NULL, &img, &ilen, err, sizeof(err)),
			 -EBADMSG);
	peer_request_fini(&pr);
	/* a length prefix that lies */
	flat[m.header_len] = sizeof(jpeg) + 1;
	assert_int_equal(parse_flat(flat, flen, m.header_len, &pr, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "declares an element"));
	free(flat);
	peer_msg_fini(&m);
}

/* Hand-written headers a hostile robot could send. */
static void test_proto_bad_headers(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"inputs\": []}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": []}",
		"{\"parameters\": {\"splitd_cut\": -1}, \"inputs\": [{}]}",
		"{\"parameters\": {\"splitd_cut\": \"3\"}, \"inputs\": [{}]}",
		"{\"parameters\": {\"splitd_cut\": 3, \"splitd_model_sha256\": \"abc\"}, \"inputs\": [{}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [4], \"data\": [1,2,3,4]}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [-4], \"parameters\": {\"binary_data_size\": 16}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [1,1,1,1,1,1,1,1,4], \"parameters\": {\"binary_data_size\": 16}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP99\", \"shape\": [4], \"parameters\": {\"binary_data_size\": 16}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [4], \"parameters\": {\"binary_data_size\": 17}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [4], \"parameters\": {\"binary_data_size\": -16}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [4], \"parameters\": {\"binary_data_size\": 16, \"splitd_encoding\": \"f17\"}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [4], \"parameters\": {\"binary_data_size\": 16, \"splitd_encoding\": \"i8\"}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"INT64\", \"shape\": [2], \"parameters\": {\"binary_data_size\": 16, \"splitd_encoding\": \"f16\"}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [4], \"parameters\": {\"binary_data_size\": 8}}, {\"name\": \"x\", \"datatype\": \"FP32\", \"shape\": [2], \"parameters\": {\"binary_data_size\": 8}}]}",
		"{\"parameters\": {\"splitd_cut\": 3}, \"inputs\": [{\"name\": \"\", \"datatype\": \"FP32\", \"shape\": [4], \"parameters\": {\"binary_data_size\": 16}}]}",
	};
	uint8_t bin[16] = { 0 };
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct peer_request pr;
		int r;

		err[0] = '\0';
		r = peer_request_parse(bad[i], strlen(bad[i]), bin, sizeof(bin), &pr, err, sizeof(err));
		if (r != -EBADMSG || strlen(err) < 10)
			fail_msg("header %zu accepted (%d): %s", i, r, bad[i]);
	}
}

/* One codec: an answer the API's own v2 builder writes (as the HTTP server
 * answers a client) is read by the robot, outputs and the peer's figures;
 * the same answer with JSON "data" is refused by name. */
static void test_proto_response_from_api_builder(void **state)
{
	static const float y[6] = { 1.5f, -2.25f, 0.0f, 1e-3f, 65504.0f, -7.0f };
	struct api_v2_tensor o = { .name = "logits", .datatype = "FP32", .dtype = TENSOR_F32, .ndim = 2,
				   .shape = { 2, 3 }, .data = y, .data_len = sizeof(y), .binary = 1 };
	struct api_v2_message m = { .id = "a1", .model_name = "m", .tensors = &o, .n_tensors = 1,
				    .params_json = "{\"splitd_peer_compute_ns\": 77, \"splitd_peer_backend\": \"cpu\"}" };
	struct peer_response pr;
	float z[6];
	struct tensor_view v = { TENSOR_F32, 2, { 2, 3 }, z, 0 };
	char *body, err[256];
	size_t len, hlen;

	(void)state;
	assert_int_equal(api_v2_build(API_V2_RESPONSE, &m, &body, &len, &hlen), 0);
	assert_true(hlen < len);
	assert_int_equal(peer_response_parse(body, len, hlen, &pr, err, sizeof(err)), 0);
	assert_string_equal(pr.id, "a1");
	assert_string_equal(pr.model, "m");
	assert_int_equal(pr.timing.compute_ns, 77);
	assert_int_equal(pr.timing.total_ns, -1);
	assert_string_equal(pr.timing.backend, "cpu");
	assert_int_equal(pr.n_outputs, 1);
	assert_int_equal(peer_tensor_decode(&pr.outputs[0], &v, err, sizeof(err)), 0);
	assert_memory_equal(z, y, sizeof(y));
	peer_response_fini(&pr);
	free(body);
	o.binary = 0;	/* the same output as JSON "data" */
	assert_int_equal(api_v2_build(API_V2_RESPONSE, &m, &body, &len, &hlen), 0);
	assert_int_equal(peer_response_parse(body, len, 0, &pr, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "binary_data_size"));
	free(body);
}

static void test_proto_response_roundtrip(void **state)
{
	float y[10], z[10];
	struct peer_tensor out = { .name = "logits", .dtype = TENSOR_F32, .ndim = 2, .shape = { 1, 10 },
				   .data = y, .len = sizeof(y), .scale = 1.0f };
	struct peer_timing t;
	struct peer_response_spec spec = { .id = "r1", .model = "resnet18", .outputs = &out, .n_outputs = 1,
					   .timing = &t };
	struct peer_msg m;
	struct peer_response pr;
	struct tensor_view v = { TENSOR_F32, 2, { 1, 10 }, z, 0 };
	uint8_t *flat;
	size_t flen;
	char err[256];
	static const char e1[] = "{\"error\": \"model is loading\"}";
	static const char e2[] = "{\"error\": {\"code\": 409, \"message\": \"wrong model\"}}";

	(void)state;
	for (int i = 0; i < 10; i++)
		y[i] = (float)i * 0.25f - 1.0f;
	peer_timing_init(&t);
	t.compute_ns = 1234567;
	t.total_ns = 2000000;
	t.energy_uj = 420;
	strcpy(t.backend, "cuda");
	assert_int_equal(peer_response_build(&spec, &m, err, sizeof(err)), 0);
	assert_int_equal(peer_msg_flatten(&m, &flat, &flen), 0);
	assert_int_equal(peer_response_parse(flat, flen, m.header_len, &pr, err, sizeof(err)), 0);
	assert_string_equal(pr.id, "r1");
	assert_string_equal(pr.model, "resnet18");
	assert_int_equal(pr.n_outputs, 1);
	assert_int_equal(pr.timing.compute_ns, 1234567);
	assert_int_equal(pr.timing.total_ns, 2000000);
	assert_int_equal(pr.timing.energy_uj, 420);
	assert_int_equal(pr.timing.queue_ns, -1);
	assert_string_equal(pr.timing.backend, "cuda");
	assert_int_equal(peer_tensor_decode(&pr.outputs[0], &v, err, sizeof(err)), 0);
	assert_memory_equal(y, z, sizeof(y));
	v.shape[1] = 11;
	assert_int_equal(peer_tensor_decode(&pr.outputs[0], &v, err, sizeof(err)), -EBADMSG);
	peer_response_fini(&pr);
	/* header length beyond the body; trailing bytes */
	assert_int_equal(peer_response_parse(flat, flen, flen + 1, &pr, err, sizeof(err)), -EBADMSG);
	assert_int_equal(peer_response_parse(flat, flen - 1, m.header_len, &pr, err, sizeof(err)), -EBADMSG);
	/* error answers, both v2 forms */
	assert_int_equal(peer_response_parse(e1, strlen(e1), 0, &pr, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "model is loading"));
	assert_int_equal(peer_response_parse(e2, strlen(e2), 0, &pr, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "wrong model"));
	assert_int_equal(peer_response_parse("<html>", 6, 0, &pr, err, sizeof(err)), -EBADMSG);
	free(flat);
	peer_msg_fini(&m);
}

/* ---- a v2 peer on loopback (libmicrohttpd), for the client ---------------------- */

#ifndef SPLITD_SOURCE_DIR
#error "SPLITD_SOURCE_DIR must name the source tree (for tools/mkcerts.sh)"
#endif

enum srv_mode { SRV_OK = 0, SRV_STALL, SRV_GARBAGE, SRV_500 };

struct srv {
	struct MHD_Daemon *d;
	uint16_t port;
	int tls;
	_Atomic int mode;
	_Atomic int stopping;
	uint8_t sha[32];
	_Atomic int infers, unauthorized, tls13, cert_ok;
};

struct srv_req {
	uint8_t *body;
	size_t len, cap;
	int unauthorized;
};

static const struct engine_value_info srv_cut[1] = {
	{ "x", TENSOR_F32, 4, { 1, 4, 8, 8 }, 256 * 4 },
};

static char certs_dir[64];
static char *pem_peer_cert, *pem_peer_key, *pem_ca;

static char *slurp(const char *dir, const char *name)
{
	char path[256];
	FILE *f;
	char *b = calloc(1, 65536);
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_non_null(f = fopen(path, "rb"));
	n = fread(b, 1, 65535, f);
	fclose(f);
	assert_true(n > 0);
	return b;
}

static enum MHD_Result srv_reply(struct MHD_Connection *c, unsigned status, const void *body,
				 size_t len, size_t header_len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;
	char hl[32];

	if (header_len) {
		snprintf(hl, sizeof(hl), "%zu", header_len);
		MHD_add_response_header(r, "Inference-Header-Content-Length", hl);
		MHD_add_response_header(r, "Content-Type", "application/octet-stream");
	} else {
		MHD_add_response_header(r, "Content-Type", "application/json");
	}
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result srv_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
	json_t *o = json_pack("{s:s}", "error", msg);
	char *s = json_dumps(o, 0);
	enum MHD_Result r = srv_reply(c, status, s, strlen(s), 0);

	free(s);
	json_decref(o);
	return r;
}

/* The peer's work for the test model: y = 2 x + 1. */
static enum MHD_Result srv_infer(struct srv *s, struct MHD_Connection *c, struct srv_req *q)
{
	const char *hl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Inference-Header-Content-Length");
	size_t hlen = hl ? strtoul(hl, NULL, 10) : 0;
	struct peer_request pr;
	struct tensor_view view;
	void *mem = NULL;
	char err[256];
	enum MHD_Result ret;

	if (!hlen || hlen > q->len)
		return srv_error(c, 400, "bad inference header");
	if (peer_request_parse(q->body, hlen, q->body + hlen, q->len - hlen, &pr, err, sizeof(err)) < 0)
		return srv_error(c, 400, err);
	assert_int_equal(peer_cut_alloc(srv_cut, 1, &view, &mem), 0);
	if (peer_request_decode(&pr, s->sha, srv_cut, 1, &view, NULL, NULL, err, sizeof(err)) < 0) {
		peer_request_fini(&pr);
		free(mem);
		return srv_error(c, 400, err);
	}
	{
		float *x = view.data, y[256];
		uint8_t enc[2048];
		struct peer_tensor out = { .name = "y", .dtype = TENSOR_F32, .ndim = 2, .shape = { 1, 256 } };
		struct peer_timing t;
		struct peer_response_spec spec = { .id = pr.id, .model = "m", .outputs = &out, .n_outputs = 1,
						   .timing = &t };
		struct tensor_view yv = { TENSOR_F32, 2, { 1, 256 }, y, 0 };
		struct peer_msg m;
		uint8_t *flat;
		size_t flen;

		for (int i = 0; i < 256; i++)
			y[i] = 2.0f * x[i] + 1.0f;
		out.enc = pr.output_enc;
		assert_int_equal(link_encode(&yv, &out.enc, enc, sizeof(enc), &out.len, &out.scale), 0);
		out.data = enc;
		peer_timing_init(&t);
		t.compute_ns = 12345;
		t.total_ns = 23456;
		strcpy(t.backend, "cpu");
		assert_int_equal(peer_response_build(&spec, &m, err, sizeof(err)), 0);
		assert_int_equal(peer_msg_flatten(&m, &flat, &flen), 0);
		ret = srv_reply(c, 200, flat, flen, m.header_len);
		free(flat);
		peer_msg_fini(&m);
	}
	atomic_fetch_add(&s->infers, 1);
	peer_request_fini(&pr);
	free(mem);
	return ret;
}

static enum MHD_Result srv_handler(void *cls, struct MHD_Connection *c, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_len, void **ptr)
{
	struct srv *s = cls;
	struct srv_req *q = *ptr;

	(void)version;
	if (!q) {
		q = calloc(1, sizeof(*q));
		*ptr = q;
		if (s->tls) {
			const union MHD_ConnectionInfo *ci =
				MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
			gnutls_session_t ts = ci ? (gnutls_session_t)ci->tls_session : NULL;
			unsigned status = 1;

			if (ts && gnutls_protocol_get_version(ts) == GNUTLS_TLS1_3)
				atomic_fetch_add(&s->tls13, 1);
			if (!ts || gnutls_certificate_verify_peers2(ts, &status) != 0 || status != 0) {
				q->unauthorized = 1;
				atomic_fetch_add(&s->unauthorized, 1);
			} else {
				atomic_fetch_add(&s->cert_ok, 1);
			}
		}
		return MHD_YES;
	}
	if (*upload_len) {
		if (!q->unauthorized) {
			if (q->len + *upload_len > q->cap) {
				q->cap = (q->len + *upload_len) * 2;
				q->body = realloc(q->body, q->cap);
			}
			memcpy(q->body + q->len, upload, *upload_len);
			q->len += *upload_len;
		}
		*upload_len = 0;
		return MHD_YES;
	}
	if (q->unauthorized)
		return srv_error(c, 401, "client certificate required");
	if (!strcmp(method, "GET") && !strcmp(url, "/v2/health/ready"))
		return srv_reply(c, 200, "", 0, 0);
	if (!strcmp(method, "GET") && !strcmp(url, "/v2/models/m")) {
		char hex[65], body[256];

		peer_sha256_hex(s->sha, hex);
		snprintf(body, sizeof(body),
			 "{\"name\":\"m\",\"versions\":[\"1\"],\"platform\":\"splitd\",\"parameters\":{\"splitd_model_sha256\":\"%s\"}}",
			 hex);
		return srv_reply(c, 200, body, strlen(body), 0);
	}
	if (!strcmp(method, "POST") && !strcmp(url, "/v2/models/m/infer")) {
		switch (atomic_load(&s->mode)) {
		case SRV_STALL:
			for (int i = 0; i < 300 && !atomic_load(&s->stopping); i++)
				usleep(10000);
			break;
		case SRV_GARBAGE:
			return srv_reply(c, 200, "garbage, not a v2 answer", 24, 7);
		case SRV_500:
			return srv_error(c, 500, "backend is unhealthy");
		default:
			break;
		}
		return srv_infer(s, c, q);
	}
	return srv_error(c, 404, "not found");
}

static void srv_done(void *cls, struct MHD_Connection *c, void **ptr, enum MHD_RequestTerminationCode t)
{
	struct srv_req *q = *ptr;

	(void)cls;
	(void)c;
	(void)t;
	if (q) {
		free(q->body);
		free(q);
	}
	*ptr = NULL;
}

static void srv_start(struct srv *s, int tls, uint16_t port)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	s->tls = tls;
	atomic_store(&s->stopping, 0);
	if (tls)
		s->d = MHD_start_daemon(flags | MHD_USE_TLS, port, NULL, NULL, srv_handler, s,
					MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, srv_done, s,
					MHD_OPTION_HTTPS_MEM_KEY, pem_peer_key, MHD_OPTION_HTTPS_MEM_CERT,
					pem_peer_cert, MHD_OPTION_HTTPS_MEM_TRUST, pem_ca, MHD_OPTION_END);
	else
		s->d = MHD_start_daemon(flags, port, NULL, NULL, srv_handler, s, MHD_OPTION_SOCK_ADDR, &sa,
					MHD_OPTION_NOTIFY_COMPLETED, srv_done, s, MHD_OPTION_END);
	assert_non_null(s->d);
	s->port = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT)->port;
}

static void srv_stop(struct srv *s)
{
	atomic_store(&s->stopping, 1);
	if (s->d)
		MHD_stop_daemon(s->d);
	s->d = NULL;
}

static int client_group_setup(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(certs_dir, sizeof(certs_dir), "/tmp/splitd-link-XXXXXX");
	if (!mkdtemp(certs_dir))
		return -1;
	snprintf(cmd, sizeof(cmd), "sh %s/tools/mkcerts.sh %s/good >/dev/null && sh %s/tools/mkcerts.sh %s/rogue >/dev/null",
		 SPLITD_SOURCE_DIR, certs_dir, SPLITD_SOURCE_DIR, certs_dir);
	if (system(cmd) != 0)
		return -1;
	snprintf(cmd, sizeof(cmd), "%s/good", certs_dir);
	pem_peer_cert = slurp(cmd, "peer.pem");
	pem_peer_key = slurp(cmd, "peer.key");
	pem_ca = slurp(cmd, "ca.pem");
	return 0;
}

static int client_group_teardown(void **state)
{
	char cmd[128];

	(void)state;
	free(pem_peer_cert);
	free(pem_peer_key);
	free(pem_ca);
	if (certs_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", certs_dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* A client config: plain to port, or TLS with a set ("good"/"rogue") of
 * credentials and a CA. */
struct cfgbuf {
	struct peer_client_config cfg;
	char url[64], ca[128], cert[128], key[128];
};

static void make_cfg(struct cfgbuf *b, int tls, uint16_t port, const char *cred, const char *ca)
{
	memset(b, 0, sizeof(*b));
	snprintf(b->url, sizeof(b->url), "%s://127.0.0.1:%u", tls ? "https" : "http", port);
	b->cfg.url = b->url;
	b->cfg.model = "m";
	b->cfg.model_sha256 = test_sha;
	b->cfg.plain = !tls;
	b->cfg.connect_timeout_ms = 500;
	b->cfg.request_timeout_ms = 3000;
	b->cfg.backoff_min_ms = 50;
	b->cfg.backoff_max_ms = 400;
	if (tls) {
		snprintf(b->ca, sizeof(b->ca), "%s/%s/ca.pem", certs_dir, ca);
		snprintf(b->cert, sizeof(b->cert), "%s/%s/robot.pem", certs_dir, cred);
		snprintf(b->key, sizeof(b->key), "%s/%s/robot.key", certs_dir, cred);
		b->cfg.ca_file = b->ca;
		b->cfg.cert_file = b->cert;
		b->cfg.key_file = b->key;
	}
}

/* A request for srv_cut with x = i/64 - 2, encoded as encs. */
struct testreq {
	float x[256], xdec[256];
	struct encoded e;
	struct peer_tensor t;
	struct peer_msg m;
};

static void make_req(struct testreq *r, const char *encs, const struct link_encoding *out_enc)
{
	struct tensor_view v = { TENSOR_F32, 4, { 1, 4, 8, 8 }, r->x, 0 }, d = v;
	struct peer_request_spec spec = { .id = "t", .cut = 5, .model_sha256 = test_sha, .n_inputs = 1 };
	char err[200];

	for (int i = 0; i < 256; i++)
		r->x[i] = (float)i / 64.0f - 2.0f + 0.001f * (float)(i % 7);
	encode_as(&v, encs, &r->e);
	d.data = r->xdec;
	assert_int_equal(link_decode(r->e.buf, r->e.len, &r->e.enc, r->e.scale, &d, err, sizeof(err)), 0);
	fill_peer_tensor(&r->t, &srv_cut[0], &r->e);
	spec.inputs = &r->t;
	spec.output_enc = out_enc;
	assert_int_equal(peer_request_build(&spec, &r->m, err, sizeof(err)), 0);
}

static void free_req(struct testreq *r)
{
	peer_msg_fini(&r->m);
	free(r->e.buf);
}

/* The answer is 2 x' + 1 of what the peer decoded, within the output
 * encoding's bound. */
/* The test peer answers y = 2x + 1 in float: 2x is exact, the add rounds
 * once, so y is within u = 2^-24 of 2x + 1, relatively; an answer encoded
 * f16 adds f16's rounding: enc_rel = 2^-11 relative, or half of f16's
 * smallest subnormal (2^-25) near 0. */
static void check_reply(struct peer_reply *rep, const struct testreq *r, double enc_rel)
{
	float y[256];
	struct tensor_view v = { TENSOR_F32, 2, { 1, 256 }, y, 0 };
	char err[200];

	assert_int_equal(rep->http_status, 200);
	assert_int_equal(rep->resp.n_outputs, 1);
	assert_string_equal(rep->resp.outputs[0].name, "y");
	if (peer_tensor_decode(&rep->resp.outputs[0], &v, err, sizeof(err)))
		fail_msg("%s", err);
	for (int i = 0; i < 256; i++) {
		double want = 2.0 * (double)r->xdec[i] + 1.0;

		if (fabs((double)y[i] - want) > (0x1p-24 + enc_rel) * fabs(want) + (enc_rel > 0 ? 0x1p-25 : 0))
			fail_msg("y[%d] = %.9g, want %.9g", i, (double)y[i], want);
	}
	assert_int_equal(rep->resp.timing.compute_ns, 12345);
	assert_string_equal(rep->resp.timing.backend, "cpu");
}

/* Does getsockopt(TCP_INFO) report an RTT here? A loopback connection,
 * checked directly (emulators may not pass the option through). */
static int tcp_info_works(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int l = socket(AF_INET, SOCK_STREAM, 0), c = socket(AF_INET, SOCK_STREAM, 0), s = -1, ok = 0;

	if (l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0 &&
	    getsockname(l, (struct sockaddr *)&a, &al) == 0 && connect(c, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    (s = accept(l, NULL, NULL)) >= 0) {
		struct tcp_info ti;
		socklen_t len = sizeof(ti);
		memset(&ti, 0, sizeof(ti));
		ok = getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && (ti.tcpi_rtt > 0 || ti.tcpi_min_rtt > 0);
	}
	if (s >= 0)
		close(s);
	if (c >= 0)
		close(c);
	if (l >= 0)
		close(l);
	return ok;
}

static void test_client_plain(void **state)
{
	struct srv s = { 0 };
	struct cfgbuf b;
	struct peer_client *c;
	struct peer_client_stats st;
	struct peer_reply rep;
	struct testreq r;
	struct link_encoding f16;
	char err[256];

	(void)state;
	memcpy(s.sha, test_sha, 32);
	srv_start(&s, 0, 0);
	make_cfg(&b, 0, s.port, NULL, NULL);
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	make_req(&r, "f16+zstd", NULL);
	/* not verified yet: no traffic, a fallback */
	assert_int_equal(peer_client_state(c), PEER_DOWN);
	assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), -EAGAIN);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_state(c), PEER_UP);
	for (int k = 0; k < 3; k++) {
		if (peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)))
			fail_msg("infer: %s", err);
		check_reply(&rep, &r, 0);
		assert_int_equal(rep.xfer.bytes_up, r.m.total_len);
		assert_true(rep.xfer.upload_ns > 0 && rep.xfer.upload_ns <= rep.xfer.ttfb_ns);
		assert_true(rep.xfer.ttfb_ns <= rep.xfer.total_ns && rep.xfer.total_ns < 1000000000);
		/* the kernel's RTT of a loopback connection: positive, and below
		 * the whole round trip timed in user space (where the kernel
		 * answers TCP_INFO at all: qemu's user mode does not) */
		if (tcp_info_works())
			assert_true(rep.xfer.tcp_min_rtt_ns > 0 && rep.xfer.tcp_min_rtt_ns <= rep.xfer.ttfb_ns);
		else
			assert_int_equal(rep.xfer.tcp_min_rtt_ns, 0);
		assert_true(rep.xfer.reused);	/* the probe opened the connection */
		assert_int_equal(rep.xfer.connect_ns, 0);
		peer_reply_fini(&rep);
	}
	free_req(&r);
	/* outputs encoded by the peer on request */
	link_encoding_parse("f16", &f16);
	make_req(&r, "i8+lz4", &f16);
	assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep.resp.outputs[0].enc.value, LINK_VALUE_F16);
	check_reply(&rep, &r, 0x1p-11);
	peer_reply_fini(&rep);
	peer_client_stats(c, &st);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.failures, 0);
	assert_int_equal(st.fallbacks, 1);
	assert_true(st.bytes_sent >= 4 * r.m.total_len - 1000);
	assert_int_equal(st.probes, 1);
	assert_int_equal(atomic_load(&s.infers), 4);
	free_req(&r);
	peer_client_free(c);
	srv_stop(&s);
}

static void test_client_config_refusals(void **state)
{
	static const struct { const char *host; int loop; } hosts[] = {
		{ "127.0.0.1", 1 }, { "127.200.3.4", 1 }, { "::1", 1 }, { "[::1]", 1 }, { "localhost", 1 },
		{ "::ffff:127.0.0.1", 1 }, { "128.0.0.1", 0 }, { "10.0.0.1", 0 }, { "[::2]", 0 },
		{ "example.com", 0 }, { "", 0 }, { "127.0.0.1.example.com", 0 },
	};
	struct cfgbuf b;
	struct peer_client *c;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (peer_host_is_loopback(hosts[i].host) != hosts[i].loop)
			fail_msg("%s", hosts[i].host);
	make_cfg(&b, 0, 8080, NULL, NULL);
	b.cfg.url = "http://192.0.2.7:8080";
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "loopback"));
	b.cfg.url = "http://127.0.0.1:8080";
	b.cfg.plain = 0;
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "TLS is required"));
	b.cfg.url = "https://192.0.2.7:8443";
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ca_file"));
	b.cfg.url = "https://192.0.2.7:8443/v2";
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), -EINVAL);
	b.cfg.url = "ftp://127.0.0.1";
	b.cfg.plain = 1;
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), -EINVAL);
}

static void test_client_tls(void **state)
{
	struct srv s = { 0 };
	struct cfgbuf b;
	struct peer_client *c;
	struct peer_client_stats st;
	struct peer_reply rep;
	struct testreq r;
	char err[256];

	(void)state;
	memcpy(s.sha, test_sha, 32);
	srv_start(&s, 1, 0);
	/* the robot with its certificate: TLS 1.3, verified both ways */
	make_cfg(&b, 1, s.port, "good", "good");
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	if (peer_client_probe(c, err, sizeof(err)))
		fail_msg("probe: %s", err);
	make_req(&r, "f32", NULL);
	assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), 0);
	check_reply(&rep, &r, 0);
	assert_true(rep.xfer.reused);
	peer_reply_fini(&rep);
	assert_true(atomic_load(&s.tls13) >= 1);
	assert_true(atomic_load(&s.cert_ok) >= 1);
	assert_int_equal(atomic_load(&s.unauthorized), 0);
	peer_client_free(c);
	/* a client certificate from another CA: 401, counted, state backoff */
	make_cfg(&b, 1, s.port, "rogue", "good");
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "401"));
	peer_client_stats(c, &st);
	assert_int_equal(st.auth_failures, 1);
	assert_int_not_equal(st.state, PEER_UP);
	assert_true(atomic_load(&s.unauthorized) >= 1);
	peer_client_free(c);
	/* a peer whose certificate our CA did not sign: refused by the robot */
	make_cfg(&b, 1, s.port, "good", "rogue");
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), -EACCES);
	assert_non_null(strstr(err, "TLS"));
	peer_client_free(c);
	/* a client with no certificate at all (plain libcurl): 401 */
	{
		CURL *h = curl_easy_init();
		char url[96];
		long code = 0;

		snprintf(url, sizeof(url), "https://127.0.0.1:%u/v2/health/ready", s.port);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_CAINFO, b.ca);
		snprintf(b.ca, sizeof(b.ca), "%s/good/ca.pem", certs_dir);
		curl_easy_setopt(h, CURLOPT_CAINFO, b.ca);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fwrite);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, stderr);
		assert_int_equal(curl_easy_perform(h), CURLE_OK);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		assert_int_equal(code, 401);
		curl_easy_cleanup(h);
		fputc('\n', stderr);
	}
	free_req(&r);
	srv_stop(&s);
}

static void test_client_identity_mismatch(void **state)
{
	struct srv s = { 0 };
	struct cfgbuf b;
	struct peer_client *c;
	struct peer_reply rep;
	struct peer_client_stats st;
	struct testreq r;
	char err[256];

	(void)state;
	memcpy(s.sha, test_sha, 32);
	s.sha[0] ^= 0xff;
	srv_start(&s, 0, 0);
	make_cfg(&b, 0, s.port, NULL, NULL);
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "another model"));
	assert_non_null(strstr(err, "21adbeef"));
	assert_int_equal(peer_client_state(c), PEER_DOWN);
	make_req(&r, "f32", NULL);
	assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), -EAGAIN);
	peer_client_stats(c, &st);
	assert_int_equal(st.identity_mismatches, 1);
	assert_int_equal(st.requests, 0);
	assert_int_equal(atomic_load(&s.infers), 0);
	free_req(&r);
	peer_client_free(c);
	srv_stop(&s);
}

static void test_client_stall_and_garbage(void **state)
{
	struct srv s = { 0 };
	struct cfgbuf b;
	struct peer_client *c;
	struct peer_reply rep;
	struct peer_client_stats st;
	struct testreq r;
	char err[256];
	int64_t t0, dt;

	(void)state;
	memcpy(s.sha, test_sha, 32);
	srv_start(&s, 0, 0);
	make_cfg(&b, 0, s.port, NULL, NULL);
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), 0);
	make_req(&r, "f16", NULL);
	/* a stalling peer: the deadline holds */
	atomic_store(&s.mode, SRV_STALL);
	t0 = mono_ns();
	assert_int_equal(peer_client_infer(c, &r.m, 300, &rep, err, sizeof(err)), -ETIMEDOUT);
	dt = mono_ns() - t0;
	print_message("stalled request returned after %.1f ms (deadline 300 ms)\n", dt / 1e6);
	assert_true(dt >= 290000000 && dt < 800000000);	/* 300 ms deadline; the peer stalls 3 s */
	assert_int_equal(peer_client_state(c), PEER_BACKOFF);
	/* in backoff nothing is sent: an immediate fallback */
	t0 = mono_ns();
	assert_int_equal(peer_client_infer(c, &r.m, 300, &rep, err, sizeof(err)), -EAGAIN);
	assert_true(mono_ns() - t0 < 5000000);
	/* garbage, then an error status */
	atomic_store(&s.mode, SRV_GARBAGE);
	usleep(60000);
	assert_int_equal(peer_client_infer(c, &r.m, 1000, &rep, err, sizeof(err)), -EBADMSG);
	atomic_store(&s.mode, SRV_500);
	usleep(110000);
	assert_int_equal(peer_client_infer(c, &r.m, 1000, &rep, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "500"));
	assert_non_null(strstr(err, "backend is unhealthy"));
	/* healthy again after the backoff: the next request is the retry */
	atomic_store(&s.mode, SRV_OK);
	usleep(210000);
	assert_int_equal(peer_client_infer(c, &r.m, 1000, &rep, err, sizeof(err)), 0);
	assert_int_equal(peer_client_state(c), PEER_UP);
	check_reply(&rep, &r, 0);
	peer_reply_fini(&rep);
	peer_client_stats(c, &st);
	assert_int_equal(st.requests, 4);
	assert_int_equal(st.failures, 3);
	assert_int_equal(st.fallbacks, 4);
	assert_int_equal(st.backoff_ms, 0);
	free_req(&r);
	peer_client_free(c);
	srv_stop(&s);
}

static void test_client_refused_backoff_recovery(void **state)
{
	struct srv s = { 0 };
	struct cfgbuf b;
	struct peer_client *c;
	struct peer_reply rep;
	struct peer_client_stats st;
	struct testreq r;
	char err[256];
	uint16_t port;
	int64_t t0;
	int up = 0;

	(void)state;
	memcpy(s.sha, test_sha, 32);
	srv_start(&s, 0, 0);
	port = s.port;
	srv_stop(&s);	/* nothing listens on port now */
	make_cfg(&b, 0, port, NULL, NULL);
	assert_int_equal(peer_client_new(&b.cfg, &c, err, sizeof(err)), 0);
	assert_int_equal(peer_client_probe(c, err, sizeof(err)), -ECONNREFUSED);
	peer_client_stats(c, &st);
	assert_int_equal(st.backoff_ms, 50);
	assert_int_equal(st.state, PEER_BACKOFF);
	make_req(&r, "i8", NULL);
	/* each failed retry doubles the backoff, up to the maximum */
	for (int64_t want = 100; want <= 800; want *= 2) {
		usleep((useconds_t)(st.backoff_ms * 1000 + 5000));
		assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), -ECONNREFUSED);
		peer_client_stats(c, &st);
		assert_int_equal(st.backoff_ms, want > 400 ? 400 : want);
		assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), -EAGAIN);
	}
	/* the peer comes back on the same port: the prober finds it */
	srv_start(&s, 0, port);
	assert_int_equal(peer_client_start(c), 0);
	t0 = mono_ns();
	while (mono_ns() - t0 < 3000000000ll) {
		if (peer_client_state(c) == PEER_UP) {
			up = 1;
			break;
		}
		usleep(10000);
	}
	assert_true(up);
	print_message("peer back up %.0f ms after restart\n", (mono_ns() - t0) / 1e6);
	assert_int_equal(peer_client_infer(c, &r.m, 0, &rep, err, sizeof(err)), 0);
	check_reply(&rep, &r, 0);
	peer_reply_fini(&rep);
	peer_client_stop(c);
	peer_client_stats(c, &st);
	assert_int_equal(st.fallbacks, 8);
	assert_int_equal(st.failures, 4);
	assert_true(st.probe_failures >= 1);
	free_req(&r);
	peer_client_free(c);
	srv_stop(&s);
}

#define CLIENT_TESTS \
	cmocka_unit_test(test_client_config_refusals), \
	cmocka_unit_test(test_client_plain), \
	cmocka_unit_test(test_client_tls), \
	cmocka_unit_test(test_client_identity_mismatch), \
	cmocka_unit_test(test_client_stall_and_garbage), \
	cmocka_unit_test(test_client_refused_backoff_recovery),

/* Banded bodies (peer_proto.h): two inputs, f32 1x3x5x4 and i8 1x2x6x3,
 * three bands with uneven ends (one empty for the second input), laid out
 * band-major by hand; peer_unband gives each input back whole, the int8 one
 * dequantized with each band's own scale. Then malformed ends, sizes and
 * scales are refused. */
static void test_unband(void **state)
{
	float a[60], want_b[36];
	int8_t qb[36];
	const int64_t ea[3] = { 1, 3, 5 }, eb[3] = { 2, 2, 6 };
	const float sc[3] = { 0.5f, 1.0f, 0.25f };
	uint8_t body[60 * 4 + 36 + 12];
	size_t off = 0;

	(void)state;
	for (int i = 0; i < 60; i++)
		a[i] = (float)i * 1.5f - 7;
	for (int i = 0; i < 36; i++)
		qb[i] = (int8_t)(i * 7 % 255 - 127);
	for (int b = 0; b < 3; b++) {
		int64_t a0 = b ? ea[b - 1] : 0, b0 = b ? eb[b - 1] : 0;
		for (int p = 0; p < 3; p++)	/* f32: planes x rows [a0, ea[b]) x 4 */
			for (int64_t r = a0; r < ea[b]; r++, off += 16)
				memcpy(body + off, a + (p * 5 + r) * 4, 16);
		uint32_t u;
		memcpy(&u, &sc[b], 4);
		for (int k = 0; k < 4; k++)
			body[off++] = (uint8_t)(u >> (8 * k));
		for (int p = 0; p < 2; p++)
			for (int64_t r = b0; r < eb[b]; r++)
				for (int c = 0; c < 3; c++) {
					int i = (p * 6 + (int)r) * 3 + c;
					body[off++] = (uint8_t)qb[i];
					want_b[i] = (float)qb[i] * sc[b];
				}
	}
	assert_int_equal(off, sizeof(body));
	for (int bad = 0; bad < 5; bad++) {
		int64_t ea2[3] = { 1, 3, 5 }, eb2[3] = { 2, 2, 6 };
		uint8_t copy[sizeof(body)];
		memcpy(copy, body, sizeof(body));
		struct peer_tensor ts[2] = {
			{ .name = "a", .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 3, 5, 4 },
			  .enc = { LINK_VALUE_F32, LINK_COMP_NONE, 0 }, .data = copy, .len = 240,
			  .band_ends = ea2, .n_band_ends = 3 },
			{ .name = "b", .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 2, 6, 3 },
			  .enc = { LINK_VALUE_I8, LINK_COMP_NONE, 0 }, .data = copy + 240, .len = 48,
			  .band_ends = eb2, .n_band_ends = 3 },
		};
		void *buf = NULL;
		char err[256] = "";
		if (bad == 1)
			ea2[1] = 0;		/* decreasing */
		if (bad == 2)
			eb2[2] = 5;		/* does not end at H */
		if (bad == 3)
			ts[1].len = 47;		/* size off by one */
		if (bad == 4)
			memset(copy + 48, 0xff, 4);	/* band 0's scale (after a's 3 x 1 x 4 floats): a NaN */
		int r = peer_unband(ts, 2, 3, &buf, err, sizeof(err));
		if (bad) {
			assert_int_equal(r, -EBADMSG);
			assert_null(buf);
			assert_true(strlen(err) > 10);
			continue;
		}
		if (r)
			print_message("%s\n", err);
		assert_int_equal(r, 0);
		assert_memory_equal(ts[0].data, a, sizeof(a));
		assert_int_equal(ts[1].enc.value, LINK_VALUE_F32);
		assert_int_equal(ts[1].len, sizeof(want_b));
		assert_memory_equal(ts[1].data, want_b, sizeof(want_b));
		free(buf);
	}
}

/* ---- the deployed peer's parser (issue 15) ----------------------------------- */

/* A robot's request as the deployed peer reads it: the API's v2 parse of
 * header + binary (whole; or streamed: the header first, into a binary
 * buffer of the size it announces, as api/server.c does), then
 * peer_v2_request_read. *msg and *buf stay alive as long as pr is used. */
static int v2_read(const char *header, const void *bin, size_t blen, int streamed, struct peer_request *pr,
		   struct api_v2_message **msg, uint8_t **buf, char *err, size_t errlen)
{
	size_t hl = strlen(header), announced = 0, at;
	int r;

	*msg = NULL;
	/* a byte of slack in front so that the binary part starts at an odd
	 * address: the whole-body parse copies each input apart to align it */
	assert_non_null(*buf = malloc(hl + blen + 2));
	at = ((uintptr_t)(*buf + hl) & 1) ? 0 : 1;
	memcpy(*buf + at, header, hl);
	if (blen)
		memcpy(*buf + at + hl, bin, blen);
	if (!streamed) {
		r = api_v2_parse(API_V2_REQUEST, *buf + at, hl + blen, hl, msg, err, errlen);
	} else {
		r = api_v2_parse_header(API_V2_REQUEST, *buf + at, hl, *buf + at + hl, blen, msg, &announced,
					err, errlen);
		if (r == 0 && announced != blen)
			r = -EPIPE;
	}
	if (r < 0)
		return r;
	return peer_v2_request_read(*msg, streamed, pr, err, errlen);
}

static void v2_done(struct api_v2_message *msg, uint8_t *buf)
{
	api_v2_message_free(msg);
	free(buf);
}

/* Each parameter the deployed peer once ignored or took wrong is refused,
 * through the path it runs and through the JSON form of the same parser,
 * with a sentence naming the key; a good request is read as it was sent. */
static void test_peer_v2_param_refusals(void **state)
{
	static const struct {
		const char *what, *params, *input, *want;
	} cases[] = {
		{ "i8 with a string scale", "", "\"splitd_encoding\":\"i8\",\"splitd_scale\":\"0.5\"",
		  "no numeric splitd_scale" },
		{ "i8 without a scale", "", "\"splitd_encoding\":\"i8\"", "no numeric splitd_scale" },
		{ "a non-string encoding", "", "\"splitd_encoding\":5", "splitd_encoding is not an encoding" },
		{ "an unknown encoding", "", "\"splitd_encoding\":\"f8\"", "splitd_encoding is not an encoding" },
		{ "bands -1", ",\"splitd_bands\":-1", "", "splitd_bands is not an integer in [1, 64]" },
		{ "bands \"2\"", ",\"splitd_bands\":\"2\"", "", "splitd_bands is not an integer in [1, 64]" },
		{ "bands 2^32+2", ",\"splitd_bands\":4294967298", "", "splitd_bands is not an integer in [1, 64]" },
		{ "bands 65", ",\"splitd_bands\":65", "", "splitd_bands is not an integer in [1, 64]" },
		{ "a non-string output encoding", ",\"splitd_output_encoding\":1", "",
		  "splitd_output_encoding is not an encoding" },
		{ "a wavefront flag that is no boolean", ",\"splitd_wavefront\":0", "",
		  "splitd_wavefront is not a boolean" },
		{ "band rows in an unbanded request", "", "\"splitd_band_rows\":[8]", "splitd_band_rows" },
	};
	uint8_t bin[256 + 24] = { 0 };
	char hex[65];
	static const uint8_t sha[32] = { 7 };

	(void)state;
	peer_sha256_hex(sha, hex);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char h[1024], err[256] = "", err2[256] = "";
		struct peer_request pr;
		struct api_v2_message *msg;
		uint8_t *buf;
		/* "a" is 1x4x8x8 FP32: 256 bytes is its i8 size (other cases are
		 * refused before its size matters) */
		snprintf(h, sizeof(h), "{\"parameters\":{\"splitd_cut\":4,\"splitd_model_sha256\":\"%s\"%s},"
			 "\"inputs\":[{\"name\":\"a\",\"shape\":[1,4,8,8],\"datatype\":\"FP32\",\"parameters\":"
			 "{\"binary_data_size\":256%s%s}},{\"name\":\"b\",\"shape\":[3],\"datatype\":\"INT64\","
			 "\"parameters\":{\"binary_data_size\":24}}]}", hex, cases[k].params,
			 cases[k].input[0] ? "," : "", cases[k].input);
		int r = v2_read(h, bin, sizeof(bin), 0, &pr, &msg, &buf, err, sizeof(err));
		if (r != -EBADMSG || !strstr(err, cases[k].want))
			print_message("%s: %d '%s'\n", cases[k].what, r, err);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(strstr(err, cases[k].want));
		v2_done(msg, buf);
		/* the whole-body form agrees */
		assert_int_equal(peer_request_parse(h, strlen(h), bin, sizeof(bin), &pr, err2, sizeof(err2)),
				 -EBADMSG);
		assert_string_equal(err2, err);
	}
	/* a BYTES input of shape [2]; a lossy encoding on an INT64 tensor;
	 * JSON "data" on the link */
	{
		static const char *const hs[] = {
			"{\"parameters\":{\"splitd_cut\":0},\"inputs\":[{\"name\":\"img\",\"shape\":[2],"
			"\"datatype\":\"BYTES\",\"parameters\":{\"binary_data_size\":12}}]}",
			"{\"parameters\":{\"splitd_cut\":4},\"inputs\":[{\"name\":\"b\",\"shape\":[3],"
			"\"datatype\":\"INT64\",\"parameters\":{\"binary_data_size\":12,\"splitd_encoding\":\"f16\"}}]}",
			"{\"parameters\":{\"splitd_cut\":4},\"inputs\":[{\"name\":\"b\",\"shape\":[3],"
			"\"datatype\":\"INT64\",\"data\":[1,2,3]}]}",
		};
		static const char *const want[] = { "must have shape [1]", "lossy encodings apply to FP32 only",
						    "carries JSON \"data\"" };
		static const uint8_t img[12] = { 8, 0, 0, 0, 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };
		for (int k = 0; k < 3; k++) {
			char err[256] = "";
			struct peer_request pr;
			struct api_v2_message *msg;
			uint8_t *buf;
			int r = v2_read(hs[k], img, k == 2 ? 0 : 12, 0, &pr, &msg, &buf, err, sizeof(err));
			if (r != -EBADMSG || !strstr(err, want[k]))
				print_message("case %d: %d '%s'\n", k, r, err);
			assert_int_equal(r, -EBADMSG);
			assert_non_null(strstr(err, want[k]));
			v2_done(msg, buf);
		}
	}
	/* the control: the same request, well formed, read as sent */
	{
		char h[1024], err[256] = "";
		struct peer_request pr;
		struct api_v2_message *msg;
		uint8_t *buf;
		snprintf(h, sizeof(h), "{\"id\":\"r1\",\"parameters\":{\"splitd_cut\":4,\"splitd_model_sha256\":\"%s\","
			 "\"splitd_output_encoding\":\"f16\",\"binary_data_output\":true},"
			 "\"inputs\":[{\"name\":\"a\",\"shape\":[1,4,8,8],\"datatype\":\"FP32\",\"parameters\":"
			 "{\"binary_data_size\":256,\"splitd_encoding\":\"i8\",\"splitd_scale\":0.5}},"
			 "{\"name\":\"b\",\"shape\":[3],\"datatype\":\"INT64\",\"parameters\":{\"binary_data_size\":24}}],"
			 "\"outputs\":[{\"name\":\"y\",\"parameters\":{\"binary_data\":true}}]}", hex);
		int r = v2_read(h, bin, sizeof(bin), 0, &pr, &msg, &buf, err, sizeof(err));
		if (r)
			print_message("%s\n", err);
		assert_int_equal(r, 0);
		assert_string_equal(pr.id, "r1");
		assert_int_equal(pr.cut, 4);
		assert_int_equal(pr.has_sha, 1);
		assert_memory_equal(pr.model_sha256, sha, 32);
		assert_int_equal(pr.output_enc.value, LINK_VALUE_F16);
		assert_int_equal(pr.n_inputs, 2);
		assert_int_equal(pr.inputs[0].enc.value, LINK_VALUE_I8);
		assert_true(pr.inputs[0].scale == 0.5f);
		assert_int_equal(pr.inputs[0].len, 256);
		assert_int_equal(pr.inputs[1].dtype, TENSOR_I64);
		assert_int_equal(pr.n_outputs, 1);
		assert_string_equal(pr.outputs[0], "y");
		assert_int_equal(pr.binary_output, 1);
		v2_done(msg, buf);
	}
}

/* The band-major body of test_unband: f32 1x3x5x4 ("a") and i8 1x2x6x3
 * ("b") in three uneven bands; want_b is b dequantized. */
static void banded_body(uint8_t body[288], float a[60], float want_b[36])
{
	const int64_t ea[3] = { 1, 3, 5 }, eb[3] = { 2, 2, 6 };
	const float sc[3] = { 0.5f, 1.0f, 0.25f };
	size_t off = 0;

	for (int i = 0; i < 60; i++)
		a[i] = (float)i * 1.5f - 7;
	for (int b = 0; b < 3; b++) {
		int64_t a0 = b ? ea[b - 1] : 0, b0 = b ? eb[b - 1] : 0;
		for (int p = 0; p < 3; p++)
			for (int64_t r = a0; r < ea[b]; r++, off += 16)
				memcpy(body + off, a + (p * 5 + r) * 4, 16);
		uint32_t u;
		memcpy(&u, &sc[b], 4);
		for (int k = 0; k < 4; k++)
			body[off++] = (uint8_t)(u >> (8 * k));
		for (int p = 0; p < 2; p++)
			for (int64_t r = b0; r < eb[b]; r++)
				for (int c = 0; c < 3; c++) {
					int i = (p * 6 + (int)r) * 3 + c;
					int8_t q = (int8_t)(i * 7 % 255 - 127);
					body[off++] = (uint8_t)q;
					want_b[i] = (float)q * sc[b];
				}
	}
	assert_int_equal(off, 288);
}

/* Band decoding reads each input where it lies. Whole body: the API copies
 * each binary input apart (to align it), so band 2 of "a" (bytes 164..260)
 * straddles two slices far apart in memory. Streamed: the header first, then
 * band by band as tail_streamed does, the waits at the segments' ends. A
 * streamed request whose first input is JSON "data" (the crash of issue 15,
 * which read every band from that input's buffer) is refused. */
static void test_peer_v2_band_decode(void **state)
{
	uint8_t body[288];
	float a[60], want_b[36], got_a[60], got_b[36];
	char h[1024];
	static const uint8_t sha[32] = { 9 };
	static const struct engine_value_info cut[2] = {
		{ "a", TENSOR_F32, 4, { 1, 3, 5, 4 }, 240 },
		{ "b", TENSOR_F32, 4, { 1, 2, 6, 3 }, 144 },
	};
	/* segment ends in the binary part: (band, input) band-major */
	static const size_t ends[3][2] = { { 48, 64 }, { 160, 164 }, { 260, 288 } };
	char hex[65];

	(void)state;
	banded_body(body, a, want_b);
	peer_sha256_hex(sha, hex);
	snprintf(h, sizeof(h), "{\"parameters\":{\"splitd_cut\":2,\"splitd_model_sha256\":\"%s\",\"splitd_bands\":3},"
		 "\"inputs\":[{\"name\":\"a\",\"shape\":[1,3,5,4],\"datatype\":\"FP32\",\"parameters\":"
		 "{\"binary_data_size\":240,\"splitd_band_rows\":[1,3,5]}},"
		 "{\"name\":\"b\",\"shape\":[1,2,6,3],\"datatype\":\"FP32\",\"parameters\":"
		 "{\"binary_data_size\":48,\"splitd_encoding\":\"i8\",\"splitd_scale\":1,"
		 "\"splitd_band_rows\":[2,2,6]}}]}", hex);
	for (int streamed = 0; streamed < 2; streamed++) {
		struct peer_request pr;
		struct api_v2_message *msg;
		struct tensor_view v[2] = {
			{ TENSOR_F32, 4, { 1, 3, 5, 4 }, got_a, 0 },
			{ TENSOR_F32, 4, { 1, 2, 6, 3 }, got_b, 0 },
		};
		uint8_t *buf;
		char err[256] = "";

		memset(got_a, 0xff, sizeof(got_a));
		memset(got_b, 0xff, sizeof(got_b));
		int r = v2_read(h, body, sizeof(body), streamed, &pr, &msg, &buf, err, sizeof(err));
		if (r)
			print_message("%s\n", err);
		assert_int_equal(r, 0);
		assert_int_equal(pr.bands, 3);
		if (!streamed) {
			/* the API moved the inputs apart: the decode must not assume
			 * one contiguous block after the first */
			assert_true((const uint8_t *)pr.inputs[0].data + 240 != pr.inputs[1].data);
			assert_int_equal(peer_request_decode(&pr, sha, cut, 2, v, NULL, NULL, err, sizeof(err)), 0);
		} else {
			for (int b = 0; b < 3; b++)
				for (int i = 0; i < 2; i++) {
					assert_int_equal(peer_request_band_end(&pr, b, i), ends[b][i]);
					assert_int_equal(peer_request_band_decode(&pr, b, i, &v[i], err, sizeof(err)), 0);
				}
		}
		assert_memory_equal(got_a, a, sizeof(a));
		assert_memory_equal(got_b, want_b, sizeof(want_b));
		v2_done(msg, buf);
	}
	/* JSON data first, binary second (and the other way round): refused
	 * before any band is read */
	for (int k = 0; k < 2; k++) {
		char h2[4096], data[400];
		int n = snprintf(data, sizeof(data), "[");
		for (int i = 0; i < (k ? 36 : 60); i++)
			n += snprintf(data + n, sizeof(data) - (size_t)n, "%s%d", i ? "," : "", i);
		snprintf(data + n, sizeof(data) - (size_t)n, "]");
		snprintf(h2, sizeof(h2), "{\"parameters\":{\"splitd_cut\":2,\"splitd_model_sha256\":\"%s\",\"splitd_bands\":3},"
			 "\"inputs\":[{\"name\":\"a\",\"shape\":[1,3,5,4],\"datatype\":\"FP32\",%s%s%s"
			 "\"parameters\":{%s\"splitd_band_rows\":[1,3,5]}},"
			 "{\"name\":\"b\",\"shape\":[1,2,6,3],\"datatype\":\"FP32\",%s%s%s\"parameters\":"
			 "{%s\"splitd_band_rows\":[2,2,6]}}]}", hex,
			 k ? "" : "\"data\":", k ? "" : data, k ? "" : ",", k ? "\"binary_data_size\":240," : "",
			 k ? "\"data\":" : "", k ? data : "", k ? "," : "", k ? "" : "\"binary_data_size\":144,");
		struct peer_request pr;
		struct api_v2_message *msg;
		uint8_t *buf, bin[240] = { 0 };
		char err[256] = "";
		int r = v2_read(h2, bin, k ? 240 : 144, 1, &pr, &msg, &buf, err, sizeof(err));
		if (r != -EBADMSG)
			print_message("%d %s\n", r, err);
		assert_int_equal(r, -EBADMSG);
		assert_non_null(strstr(err, "carries JSON \"data\""));
		v2_done(msg, buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_v2_param_refusals),
		cmocka_unit_test(test_peer_v2_band_decode),
		cmocka_unit_test(test_f16_numpy_table),
		cmocka_unit_test(test_unband),
		cmocka_unit_test(test_f16_decode_exhaustive),
		cmocka_unit_test(test_f16_encode_boundaries),
		cmocka_unit_test(test_f16_fast_equals_portable),
		cmocka_unit_test(test_encoding_strings),
		cmocka_unit_test(test_i8_fast_equals_portable),
		cmocka_unit_test(test_codec_roundtrip_bounds),
		cmocka_unit_test(test_codec_special_values),
		cmocka_unit_test(test_codec_raw_dtypes),
		cmocka_unit_test(test_codec_malformed),
		cmocka_unit_test(test_proto_request_roundtrip),
		cmocka_unit_test(test_proto_image_request),
		cmocka_unit_test(test_proto_bad_headers),
		cmocka_unit_test(test_proto_response_roundtrip),
		cmocka_unit_test(test_proto_response_from_api_builder),
		CLIENT_TESTS
	};

	return cmocka_run_group_tests(tests, client_group_setup, client_group_teardown);
}
