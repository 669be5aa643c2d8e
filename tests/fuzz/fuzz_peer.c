/* libFuzzer target for the offload link's parsers that face the network,
 * as the daemon runs them:
 *   0  the peer's request path (pipe_tail.c pipe_tail, a whole
 *      body): the API's v2 parse, the one peer reader (link/peer_v2.c,
 *      peer_request.c) and peer_request_decode (banded or not) into a cut;
 *      then the same through peer_request_parse (header and binary apart);
 *   1  the robot's reading of an answer (peer_response_parse, then
 *      peer_tensor_decode of each output, as pipe_outputs.c does);
 *   2  the codec's decoder;
 *   3  a streamed banded request (tail_streamed): the header parsed first
 *      (api_v2_parse_header) into a binary buffer of exactly the size it
 *      announces, the same parser, then band by band each segment decoded
 *      where it lies (peer_request_band_end / peer_request_band_decode).
 *
 * Input layout: byte 0 picks the path (mod 4), bytes 1..4 are the JSON
 * header length (little-endian), the rest is header + binary body.
 *
 * Built with -DSPLITD_FUZZ=ON (clang, -fsanitize=fuzzer). With FUZZ_REPLAY
 * it is a plain program instead: it builds valid messages of every kind,
 * replays them and deterministic mutations of them (truncations, bit flips,
 * overwritten length fields), and files named on the command line (the
 * corpus in tests/data/link/seeds/peer); with --write-seeds DIR it writes
 * the seeds as a libFuzzer corpus. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "link_codec.h"
#include "peer_proto.h"
#include "peer_v2.h"

static const uint8_t sha[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

/* two cuts the requests are decoded into: "b" an int64 vector, or (the
 * banded seeds') a float tensor that can travel in bands */
static const struct engine_value_info cut[2] = {
	{ "a", TENSOR_F32, 4, { 1, 4, 8, 8 }, 256 * 4 },
	{ "b", TENSOR_I64, 1, { 3 }, 3 * 8 },
};
static const struct engine_value_info cut_banded[2] = {
	{ "a", TENSOR_F32, 4, { 1, 4, 8, 8 }, 256 * 4 },
	{ "b", TENSOR_F32, 4, { 1, 2, 4, 2 }, 16 * 4 },
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* run_v2_tail after the parse, a whole body */
static void decode_whole(const struct peer_request *r, const struct engine_value_info *c)
{
	struct tensor_view views[2];
	void *mem = NULL;
	const void *img;
	size_t ilen;
	char err[256];

	if (peer_cut_alloc(c, 2, views, &mem) < 0)
		return;
	(void)peer_request_decode(r, sha, c, 2, views, &img, &ilen, err, sizeof(err));
	(void)peer_request_decode(r, NULL, c, 1, views, NULL, NULL, err, sizeof(err));
	free(mem);
}

/* tail_streamed: match the cut, then band by band, each input's segment
 * once the body holds it (binary_len: the bytes that will ever come) */
static void decode_streamed(const struct peer_request *r, const struct engine_value_info *c,
			    size_t binary_len)
{
	struct tensor_view views[2];
	int which[PEER_MAX_TENSORS], slot[PEER_MAX_TENSORS];
	void *mem = NULL;
	char err[256];

	if (r->bands < 2 || peer_request_match(r, sha, c, 2, which, err, sizeof(err)) < 0 ||
	    peer_cut_alloc(c, 2, views, &mem) < 0)
		return;
	for (int j = 0; j < 2; j++)
		slot[which[j]] = j;
	for (int b = 0; b < r->bands; b++)
		for (int i = 0; i < r->n_inputs; i++) {
			if (peer_request_band_end(r, b, i) > binary_len ||	/* the body ends short */
			    peer_request_band_decode(r, b, i, &views[slot[i]], err, sizeof(err)) < 0)
				goto out;
		}
out:
	free(mem);
}

static void fuzz_request(const uint8_t *body, size_t len, size_t hlen, int streamed)
{
	struct api_v2_message *msg = NULL;
	struct peer_request r;
	uint8_t *bin = NULL;
	size_t blen = 0;
	char err[256];

	if (hlen > len)
		return;
	if (streamed) {
		/* as server.c: count the binary part, then parse into a buffer
		 * of that size (its bytes "arrive" as the body has them) */
		if (api_v2_parse_header(API_V2_REQUEST, body, hlen, NULL, len - hlen, &msg, &blen, err,
					sizeof(err)) < 0)
			return;
		api_v2_message_free(msg);
		msg = NULL;
		if (!(bin = malloc(blen ? blen : 1)))
			return;
		if (blen)
			memcpy(bin, body + hlen, blen);
		if (api_v2_parse_header(API_V2_REQUEST, body, hlen, bin, blen, &msg, &blen, err,
					sizeof(err)) < 0)
			goto out;
	} else if (api_v2_parse(API_V2_REQUEST, body, len, hlen, &msg, err, sizeof(err)) < 0) {
		return;
	}
	if (peer_v2_request_read(msg, streamed, &r, err, sizeof(err)) == 0) {
		if (streamed) {
			decode_streamed(&r, cut_banded, blen);
			decode_streamed(&r, cut, blen);
		} else {
			decode_whole(&r, cut);
			decode_whole(&r, cut_banded);
		}
	}
	if (!streamed && hlen &&	/* the same, header and binary part apart */
	    peer_request_parse(body, hlen, body + hlen, len - hlen, &r, err, sizeof(err)) == 0) {
		decode_whole(&r, cut);
		decode_whole(&r, cut_banded);
		peer_request_fini(&r);
	}
out:
	api_v2_message_free(msg);
	free(bin);
}

static void fuzz_response(const uint8_t *body, size_t len, size_t hlen)
{
	struct peer_response r;
	char err[256];

	if (peer_response_parse(body, len, hlen, &r, err, sizeof(err)) < 0)
		return;
	for (int i = 0; i < r.n_outputs; i++) {
		const struct peer_tensor *t = &r.outputs[i];
		struct tensor_view v = { t->dtype, t->ndim, { 0 }, NULL, 0 };
		size_t esz = tensor_dtype_size(t->dtype);
		int64_t n = 1;

		if (t->is_bytes || !esz)
			continue;
		memcpy(v.shape, t->shape, sizeof(v.shape));
		for (int d = 0; d < t->ndim && n <= (1 << 20); d++)
			n *= t->shape[d] ? t->shape[d] : 0;
		if (n > (1 << 20))
			continue;	/* the real caller sizes buffers from its own model */
		v.data = malloc(n ? (size_t)n * esz : 1);
		(void)peer_tensor_decode(t, &v, err, sizeof(err));
		free(v.data);
	}
	peer_response_fini(&r);
}

/* codec: h[0] picks the encoding, h[1..2] the element count */
static void fuzz_codec(const uint8_t *h, size_t hlen, const uint8_t *bin, size_t blen)
{
	static const char *const encs[] = { "f32", "f16", "i8", "f32+zstd", "f16+zstd", "i8+zstd",
					    "f32+lz4", "f16+lz4", "i8+lz4" };
	struct link_encoding e;
	struct tensor_view v = { TENSOR_F32, 1, { 0 }, NULL, 0 };
	char err[256];

	if (hlen < 3)
		return;
	link_encoding_parse(encs[h[0] % 9], &e);
	v.shape[0] = h[1] | h[2] << 8;
	v.data = malloc((size_t)v.shape[0] * 4 + 1);
	(void)link_decode(bin, blen, &e, 0.5f, &v, err, sizeof(err));
	free(v.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t hlen;

	if (size < 5)
		return 0;
	hlen = le32(data + 1);
	if (hlen > size - 5)
		return 0;
	switch (data[0] % 4) {
	case 0:
	case 3:
		fuzz_request(data + 5, size - 5, hlen, data[0] % 4 == 3);
		break;
	case 1:
		fuzz_response(data + 5, size - 5, hlen);
		break;
	default:
		fuzz_codec(data + 5, hlen, data + 5 + hlen, size - 5 - hlen);
		break;
	}
	return 0;
}

#ifdef FUZZ_REPLAY
struct seed {
	uint8_t *b;
	size_t n;
};

static struct seed seeds[64];
static int n_seeds;

static void add_seed(int kind, const struct peer_msg *m)
{
	uint8_t *flat;
	size_t len;
	struct seed *s = &seeds[n_seeds++];

	if (peer_msg_flatten(m, &flat, &len) < 0)
		exit(1);
	s->n = len + 5;
	s->b = malloc(s->n);
	s->b[0] = (uint8_t)kind;
	s->b[1] = (uint8_t)m->header_len;
	s->b[2] = (uint8_t)(m->header_len >> 8);
	s->b[3] = (uint8_t)(m->header_len >> 16);
	s->b[4] = (uint8_t)(m->header_len >> 24);
	memcpy(s->b + 5, flat, len);
	free(flat);
}

/* A banded request: "a" (1x4x8x8) in bands ending at rows 3, 5, 8, as i8,
 * and "b" (1x2x4x2) f16 in bands ending at 1, 1, 4; band-major body. */
static void banded_seed(void)
{
	static const int64_t ea[3] = { 3, 5, 8 }, eb[3] = { 1, 1, 4 };
	static uint8_t body[4 * 64 + 12 + 2 * 16];
	struct peer_tensor t[2] = {
		{ .name = "a", .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 4, 8, 8 },
		  .enc = { LINK_VALUE_I8, LINK_COMP_NONE, 0 }, .scale = 1, .data = body, .len = 4 * 64 + 12,
		  .band_ends = ea, .n_band_ends = 3 },
		{ .name = "b", .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 2, 4, 2 },
		  .enc = { LINK_VALUE_F16, LINK_COMP_NONE, 0 }, .scale = 1, .data = body + 4 * 64 + 12,
		  .len = 32, .band_ends = eb, .n_band_ends = 3 },
	};
	struct peer_request_spec spec = { .id = "b", .cut = 4, .model_sha256 = sha, .bands = 3,
					  .inputs = t, .n_inputs = 2 };
	struct peer_msg m;
	char err[256];

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 37 + 11);
	for (int b = 0, off = 0; b < 3; b++) {	/* each int8 band's scale: 0.125f */
		int rows = (int)(ea[b] - (b ? ea[b - 1] : 0));
		memcpy(body + off, &(float){ 0.125f }, 4);
		off += 4 + 4 * rows * 8 + 2 * (int)(eb[b] - (b ? eb[b - 1] : 0)) * 2 * 2;
	}
	if (peer_request_build(&spec, &m, err, sizeof(err)) < 0)
		exit(1);
	add_seed(0, &m);
	add_seed(3, &m);	/* the same, streamed */
	peer_msg_fini(&m);
}

/* header text + binary part, as a seed of the given kind */
static void add_raw(int kind, const char *header, const uint8_t *bin, size_t blen)
{
	size_t hl = strlen(header);
	struct seed *s = &seeds[n_seeds++];

	s->n = 5 + hl + blen;
	s->b = malloc(s->n);
	s->b[0] = (uint8_t)kind;
	s->b[1] = (uint8_t)hl;
	s->b[2] = (uint8_t)(hl >> 8);
	s->b[3] = (uint8_t)(hl >> 16);
	s->b[4] = (uint8_t)(hl >> 24);
	memcpy(s->b + 5, header, hl);
	if (blen)
		memcpy(s->b + 5 + hl, bin, blen);
}

/* Requests the deployed peer once took and must refuse (issue 15): a
 * streamed banded request whose first input is JSON "data" (it read every
 * band from that input's buffer), and parameters only the fuzzed parser
 * checked: splitd_bands -1, "2", 2^32+2; an int8 input with a string or no
 * splitd_scale; a non-string splitd_encoding; a BYTES input of shape [2]. */
static void crafted_seeds(void)
{
	static uint8_t bin[1024 + 64 + 24];
	static char h[4096], data[1024];
	static const char *const bands[] = { "-1", "\"2\"", "4294967298" };
	static const char *const i8[] = { "\"splitd_encoding\":\"i8\",\"splitd_scale\":\"0.5\"",
					  "\"splitd_encoding\":\"i8\"", "\"splitd_encoding\":5" };
	char hex[65], par[200];
	int n = 0;

	peer_sha256_hex(sha, hex);
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 7 + 3);
	n += snprintf(data + n, sizeof(data) - (size_t)n, "[");
	for (int i = 0; i < 256; i++)
		n += snprintf(data + n, sizeof(data) - (size_t)n, "%s%d", i ? "," : "", i % 10);
	snprintf(data + n, sizeof(data) - (size_t)n, "]");
	snprintf(par, sizeof(par), "\"parameters\":{\"splitd_cut\":4,\"splitd_model_sha256\":\"%s\"", hex);
	/* JSON "data" first, binary second; then the other way round */
	for (int k = 0; k < 2; k++) {
		char ja[1300], jb[200];

		if (!k) {	/* a JSON input: no binary_data_size */
			snprintf(ja, sizeof(ja), "{\"name\":\"a\",\"shape\":[1,4,8,8],\"datatype\":\"FP32\","
				 "\"data\":%s,\"parameters\":{\"splitd_band_rows\":[4,8]}}", data);
			snprintf(jb, sizeof(jb), "{\"name\":\"b\",\"shape\":[1,2,4,2],\"datatype\":\"FP32\","
				 "\"parameters\":{\"binary_data_size\":64,\"splitd_band_rows\":[2,4]}}");
			snprintf(h, sizeof(h), "{\"id\":\"j\",%s,\"splitd_bands\":2},\"inputs\":[%s,%s]}", par, ja, jb);
			add_raw(3, h, bin, 64);
			add_raw(0, h, bin, 64);
		} else {
			snprintf(ja, sizeof(ja), "{\"name\":\"a\",\"shape\":[1,4,8,8],\"datatype\":\"FP32\","
				 "\"parameters\":{\"binary_data_size\":1024,\"splitd_band_rows\":[4,8]}}");
			snprintf(jb, sizeof(jb), "{\"name\":\"b\",\"shape\":[1,2,4,2],\"datatype\":\"FP32\","
				 "\"data\":[%s],\"parameters\":{\"splitd_band_rows\":[2,4]}}",
				 "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16");
			snprintf(h, sizeof(h), "{\"id\":\"j\",%s,\"splitd_bands\":2},\"inputs\":[%s,%s]}", par, ja, jb);
			add_raw(3, h, bin, 1024);
		}
	}
	/* splitd_bands the deployed parser ignored or truncated */
	for (int k = 0; k < 3; k++) {
		snprintf(h, sizeof(h), "{%s,\"splitd_bands\":%s},\"inputs\":["
			 "{\"name\":\"a\",\"shape\":[1,4,8,8],\"datatype\":\"FP32\",\"parameters\":"
			 "{\"binary_data_size\":1024,\"splitd_band_rows\":[4,8]}},"
			 "{\"name\":\"b\",\"shape\":[1,2,4,2],\"datatype\":\"FP32\",\"parameters\":"
			 "{\"binary_data_size\":64,\"splitd_band_rows\":[2,4]}}]}", par, bands[k]);
		add_raw(0, h, bin, 1024 + 64);
	}
	/* int8 without a numeric scale, an encoding that is not a string */
	for (int k = 0; k < 3; k++) {
		snprintf(h, sizeof(h), "{%s},\"inputs\":["
			 "{\"name\":\"a\",\"shape\":[1,4,8,8],\"datatype\":\"FP32\",\"parameters\":"
			 "{\"binary_data_size\":256,%s}},"
			 "{\"name\":\"b\",\"shape\":[3],\"datatype\":\"INT64\",\"parameters\":"
			 "{\"binary_data_size\":24}}]}", par, i8[k]);
		add_raw(0, h, bin, 256 + 24);
	}
	/* an image input of two elements */
	{
		static const uint8_t img[] = { 8, 0, 0, 0, 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n' };

		snprintf(h, sizeof(h), "{\"parameters\":{\"splitd_cut\":0,\"splitd_model_sha256\":\"%s\"},"
			 "\"inputs\":[{\"name\":\"input\",\"shape\":[2],\"datatype\":\"BYTES\",\"parameters\":"
			 "{\"binary_data_size\":12}}]}", hex);
		add_raw(0, h, img, sizeof(img));
	}
}

static void make_seeds(void)
{
	banded_seed();
	crafted_seeds();
	static const char *const encs[] = { "f32", "f16", "i8", "f16+zstd", "i8+lz4", "f32+zstd" };
	static float a[256];
	static int64_t b[3] = { 7, -1, 1 << 30 };
	static uint8_t enc[6][4096], encb[64];
	static const uint8_t png[] = { 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13 };
	char err[256];

	for (int i = 0; i < 256; i++)
		a[i] = (i % 3) ? (float)i * 0.37f - 20.0f : 0.0f;
	for (int k = 0; k < 6; k++) {
		struct tensor_view va = { TENSOR_F32, 4, { 1, 4, 8, 8 }, a, 0 };
		struct tensor_view vb = { TENSOR_I64, 1, { 3 }, b, 0 };
		struct link_encoding e, f32;
		struct peer_tensor t[2];
		struct peer_request_spec spec = { .id = "s", .cut = 4, .model_sha256 = sha, .inputs = t,
						  .n_inputs = 2 };
		struct peer_response_spec rs = { .id = "s", .model = "m", .outputs = t, .n_outputs = 2 };
		struct peer_timing tm;
		struct peer_msg m;

		link_encoding_parse(encs[k], &e);
		link_encoding_parse("f32+lz4", &f32);
		memset(t, 0, sizeof(t));
		t[0] = (struct peer_tensor){ .name = "a", .dtype = TENSOR_F32, .ndim = 4, .shape = { 1, 4, 8, 8 },
					     .enc = link_encoding_effective(&e, TENSOR_F32), .data = enc[k] };
		t[1] = (struct peer_tensor){ .name = "b", .dtype = TENSOR_I64, .ndim = 1, .shape = { 3 },
					     .enc = link_encoding_effective(&f32, TENSOR_I64), .data = encb };
		if (link_encode(&va, &e, enc[k], sizeof(enc[k]), &t[0].len, &t[0].scale) < 0 ||
		    link_encode(&vb, &f32, encb, sizeof(encb), &t[1].len, &t[1].scale) < 0)
			exit(1);
		if (peer_request_build(&spec, &m, err, sizeof(err)) < 0)
			exit(1);
		add_seed(0, &m);
		peer_msg_fini(&m);
		peer_timing_init(&tm);
		tm.compute_ns = 5;
		rs.timing = &tm;
		if (peer_response_build(&rs, &m, err, sizeof(err)) < 0)
			exit(1);
		add_seed(1, &m);
		peer_msg_fini(&m);
		/* codec seed: header = encoding index + count, body = the stream */
		{
			struct seed *s = &seeds[n_seeds++];
			static const int idx[] = { 0, 1, 2, 4, 8, 3 };

			s->n = 5 + 3 + t[0].len;
			s->b = malloc(s->n);
			memcpy(s->b, (uint8_t[]){ 2, 3, 0, 0, 0, (uint8_t)idx[k], 0, 1 }, 8);
			memcpy(s->b + 8, enc[k], t[0].len);
		}
	}
	{
		struct peer_tensor img = { .name = "input", .is_bytes = 1, .ndim = 1, .shape = { 1 },
					   .data = png, .len = sizeof(png) };
		struct peer_request_spec spec = { .cut = 0, .model_sha256 = sha, .inputs = &img, .n_inputs = 1 };
		struct peer_msg m;

		if (peer_request_build(&spec, &m, err, sizeof(err)) < 0)
			exit(1);
		add_seed(0, &m);
		peer_msg_fini(&m);
	}
}

static uint32_t rng = 12345;

static uint32_t next(void)
{
	rng = rng * 1103515245u + 12345u;
	return rng >> 8;
}

static int replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	if (!f)
		return -errno;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc(n > 0 ? (size_t)n : 1);
	if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	fclose(f);
	LLVMFuzzerTestOneInput(b, n > 0 ? (size_t)n : 0);
	free(b);
	return 0;
}

int main(int argc, char **argv)
{
	long runs = 0;

	make_seeds();
	if (argc == 3 && !strcmp(argv[1], "--write-seeds")) {
		for (int i = 0; i < n_seeds; i++) {
			char path[512];
			FILE *f;

			snprintf(path, sizeof(path), "%s/seed-%02d", argv[2], i);
			if (!(f = fopen(path, "wb")) || fwrite(seeds[i].b, 1, seeds[i].n, f) != seeds[i].n) {
				fprintf(stderr, "cannot write %s\n", path);
				return 1;
			}
			fclose(f);
		}
		printf("%d seeds in %s\n", n_seeds, argv[2]);
		return 0;
	}
	for (int i = 1; i < argc; i++)
		if (replay_file(argv[i]) < 0) {
			fprintf(stderr, "cannot read %s\n", argv[i]);
			return 1;
		}
	for (int i = 0; i < n_seeds; i++) {
		const struct seed *s = &seeds[i];
		uint8_t *m = malloc(s->n);

		LLVMFuzzerTestOneInput(s->b, s->n);
		/* every truncation of the first 600 bytes and a sample after */
		for (size_t cut_at = 0; cut_at < s->n; cut_at += cut_at < 600 ? 1 : 1 + next() % 97) {
			LLVMFuzzerTestOneInput(s->b, cut_at);
			runs++;
		}
		for (int k = 0; k < 3000; k++) {
			memcpy(m, s->b, s->n);
			switch (k % 3) {
			case 0:	/* flip bits */
				for (int j = 0; j < 1 + k % 4; j++)
					m[5 + next() % (s->n - 5)] ^= (uint8_t)(1u << (next() % 8));
				break;
			case 1:	/* overwrite a digit of the header (sizes, dims) */
				for (size_t j = 5 + next() % (s->n - 5); j < s->n; j++)
					if (m[j] >= '0' && m[j] <= '9') {
						m[j] = (uint8_t)('0' + next() % 10);
						break;
					}
				break;
			default: /* the JSON header length */
				m[1 + next() % 4] = (uint8_t)next();
				break;
			}
			LLVMFuzzerTestOneInput(m, s->n);
			runs++;
		}
		free(m);
	}
	printf("replayed %d seeds, %ld mutations\n", n_seeds, runs);
	return 0;
}
#endif
