/* libFuzzer target for the offload link's parsers that face the network:
 * the peer's request decoder (v2 JSON header + binary body -> cut tensors),
 * the robot's response parser, and the codec's decoder.
 *
 * Input layout: byte 0 picks the parser (mod 3), bytes 1..4 are the JSON
 * header length (little-endian), the rest is header + binary body.
 *
 * Built with -DSPLITD_FUZZ=ON (clang, -fsanitize=fuzzer). With FUZZ_REPLAY
 * it is a plain program instead: it builds valid messages of every kind,
 * replays them and deterministic mutations of them (truncations, bit flips,
 * overwritten length fields), and files named on the command line; with
 * --write-seeds DIR it writes the seeds as a libFuzzer corpus. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "link_codec.h"
#include "peer_proto.h"

static const uint8_t sha[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
				 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static const struct engine_value_info cut[2] = {
	{ "a", TENSOR_F32, 4, { 1, 4, 8, 8 }, 256 * 4 },
	{ "b", TENSOR_I64, 1, { 3 }, 3 * 8 },
};

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void fuzz_request(const uint8_t *h, size_t hlen, const uint8_t *bin, size_t blen)
{
	json_error_t je;
	json_t *root = json_loadb((const char *)h, hlen, 0, &je);
	struct peer_request r;
	struct tensor_view views[2];
	void *mem = NULL;
	const void *img;
	size_t ilen;
	char err[256];

	if (!root)
		return;
	if (peer_request_parse(root, bin, blen, &r, err, sizeof(err)) == 0) {
		void *unbanded = NULL;
		static int64_t ends[PEER_MAX_TENSORS][64];
		const json_t *in = json_object_get(root, "inputs");

		/* a banded body: each input's splitd_band_rows, then the reorder
		 * the peer does (pipeline_infer.c reads the same keys) */
		if (r.bands > 1 && r.bands <= 64) {
			for (int i = 0; i < r.n_inputs; i++) {
				const json_t *rows = json_object_get(json_object_get(json_array_get(in, (size_t)i),
										     "parameters"), "splitd_band_rows");
				int nb = 0;
				for (size_t k = 0; json_is_array(rows) && k < json_array_size(rows) && k < 64; k++)
					ends[i][nb++] = json_integer_value(json_array_get(rows, k));
				r.inputs[i].band_ends = ends[i];
				r.inputs[i].n_band_ends = nb;
			}
			/* the streaming peer's way: band b of each input decoded
			 * straight into the cut tensor (pipeline_infer.c) */
			int ok = 1;
			size_t total = 0;
			for (int i = 0; i < r.n_inputs && ok; i++) {
				ok = peer_band_check(&r.inputs[i], r.bands, err, sizeof(err)) == 0;
				total += r.inputs[i].len;
			}
			if (ok && r.n_inputs > 0) {
				const uint8_t *base = r.inputs[0].data;
				size_t off = 0;
				for (int b = 0; b < r.bands && ok; b++)
					for (int i = 0; i < r.n_inputs && ok; i++) {
						struct peer_tensor *t = &r.inputs[i];
						struct tensor_view v = { .dtype = TENSOR_F32, .ndim = t->ndim };
						memcpy(v.shape, t->shape, sizeof(v.shape));
						size_t len = peer_band_bytes(t, b ? t->band_ends[b - 1] : 0, t->band_ends[b]);
						if (off + len > total || !(v.data = malloc(tensor_bytes(&v) + 1))) {
							ok = 0;
							break;
						}
						(void)peer_band_decode(t, b, base + off, len, &v, err, sizeof(err));
						free(v.data);
						off += len;
					}
			}
			if (peer_unband(r.inputs, r.n_inputs, r.bands, &unbanded, err, sizeof(err)) < 0) {
				peer_request_fini(&r);
				json_decref(root);
				return;
			}
		}
		if (peer_cut_alloc(cut, 2, views, &mem) == 0) {
			(void)peer_request_decode(&r, sha, cut, 2, views, &img, &ilen, err, sizeof(err));
			(void)peer_request_decode(&r, NULL, cut, 1, views, NULL, NULL, err, sizeof(err));
			free(mem);
		}
		free(unbanded);
		peer_request_fini(&r);
	}
	json_decref(root);
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
	switch (data[0] % 3) {
	case 0:
		fuzz_request(data + 5, hlen, data + 5 + hlen, size - 5 - hlen);
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
	peer_msg_fini(&m);
}

static void make_seeds(void)
{
	banded_seed();
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
