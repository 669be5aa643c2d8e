/* Per-frame overhead of the ROS 2 (DDS) path against the HTTP path, for the
 * same frames, against a running splitd (bench/ros2_overhead.sh starts it):
 *
 *   dds_raw    sensor_msgs/Image rgb8 on /bench/image_raw -> JSON on /bench/result
 *   dds_jpeg   sensor_msgs/CompressedImage (the JPEG below) -> /bench/jpeg_result
 *   http_png   POST /v1/infer, the same pixels as PNG (lossless)
 *   http_jpeg  POST /v1/infer, the same JPEG
 *
 * One frame at a time (the next after the answer), the four paths in turn.
 * Per frame: the round trip as the client sees it (send to answer), the
 * daemon's own timing_ms.total, and their difference, the overhead of the
 * transport (serialization, DDS or HTTP, the copy into the daemon, the
 * answer back). Prints the medians.
 *
 * Usage: bench_ros2_overhead DOMAIN PORT RGB_FILE WIDTH HEIGHT PNG JPEG N */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <dds/dds.h>
#include <jansson.h>

#include "sensor_msgs/msg/CompressedImage.h"
#include "sensor_msgs/msg/Image.h"
#include "std_msgs/msg/String.h"

enum { DDS_RAW, DDS_JPEG, HTTP_PNG, HTTP_JPEG, PATHS };
static const char *const names[PATHS] = { "dds_raw (Image rgb8)", "dds_jpeg (CompressedImage)",
					  "http_png (same pixels)", "http_jpeg (same JPEG)" };

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = malloc(16 << 20);
	if (!f || !b) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	*len = fread(b, 1, 16 << 20, f);
	fclose(f);
	return b;
}

/* timing_ms.total of an answer; -1 when absent */
static double total_of(const char *text, size_t len)
{
	json_t *j = json_loadb(text, len, 0, NULL);
	json_t *t = j ? json_object_get(json_object_get(j, "timing_ms"), "total") : NULL;
	double v = t ? json_number_value(t) : -1;
	json_decref(j);
	return v;
}

struct dds_path {
	dds_entity_t writer, reader, ws;
};

static struct dds_path dds_path(dds_entity_t pp, const dds_topic_descriptor_t *d, const char *in, const char *out)
{
	struct dds_path p;
	dds_qos_t *q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 4);
	p.writer = dds_create_writer(pp, dds_create_topic(pp, d, in, NULL, NULL), q, NULL);
	p.reader = dds_create_reader(pp, dds_create_topic(pp, &std_msgs_msg_dds__String__desc, out, NULL, NULL), q,
				     NULL);
	dds_delete_qos(q);
	p.ws = dds_create_waitset(pp);
	dds_waitset_attach(p.ws, dds_create_readcondition(p.reader, DDS_ANY_STATE), 0);
	return p;
}

/* Wait for the answer to the frame just written; its total into *total. */
static int dds_answer(const struct dds_path *p, double *total)
{
	void *s[1] = { NULL };
	dds_sample_info_t si;

	for (;;) {
		if (dds_waitset_wait(p->ws, NULL, 0, DDS_SECS(10)) <= 0)
			return -1;
		if (dds_take(p->reader, s, &si, 1, 1) > 0) {
			const char *text = ((std_msgs_msg_dds__String_ *)s[0])->data;
			*total = total_of(text, strlen(text));
			dds_return_loan(p->reader, s, 1);
			return 0;
		}
	}
}

struct sink {
	char buf[1 << 16];
	size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t k = sz * n;
	if (s->len + k < sizeof(s->buf)) {
		memcpy(s->buf + s->len, p, k);
		s->len += k;
	}
	return k;
}

static int http_post(CURL *c, struct curl_slist *h, const unsigned char *body, size_t len, double *total)
{
	struct sink s = { .len = 0 };
	long code = 0;

	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	if (curl_easy_perform(c) != CURLE_OK || curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK ||
	    code != 200)
		return -1;
	*total = total_of(s.buf, s.len);
	return 0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: bench_ros2_overhead DOMAIN PORT RGB W H PNG JPEG N\n");
		return 2;
	}
	int w = atoi(argv[4]), h = atoi(argv[5]), n = atoi(argv[8]);
	size_t rgb_len, png_len, jpg_len;
	unsigned char *rgb = slurp(argv[3], &rgb_len), *png = slurp(argv[6], &png_len), *jpg = slurp(argv[7], &jpg_len);
	char url[128];
	double *rtt[PATHS], *tot[PATHS], *ovh[PATHS];

	if (rgb_len != (size_t)w * h * 3 || n < 1)
		return fprintf(stderr, "%s: not %dx%d rgb8\n", argv[3], w, h), 1;
	for (int k = 0; k < PATHS; k++) {
		rtt[k] = calloc((size_t)n, sizeof(double));
		tot[k] = calloc((size_t)n, sizeof(double));
		ovh[k] = calloc((size_t)n, sizeof(double));
	}
	dds_entity_t pp = dds_create_participant((dds_domainid_t)atoi(argv[1]), NULL, NULL);
	struct dds_path raw = dds_path(pp, &sensor_msgs_msg_dds__Image__desc, "rt/bench/image_raw", "rt/bench/result");
	struct dds_path cj = dds_path(pp, &sensor_msgs_msg_dds__CompressedImage__desc, "rt/bench/compressed",
				      "rt/bench/jpeg_result");
	CURL *c = curl_easy_init();
	struct curl_slist *hpng = curl_slist_append(NULL, "Content-Type: image/png");
	struct curl_slist *hjpg = curl_slist_append(NULL, "Content-Type: image/jpeg");
	snprintf(url, sizeof(url), "http://127.0.0.1:%s/v1/infer?outputs=none", argv[2]);
	curl_easy_setopt(c, CURLOPT_URL, url);

	/* discovery, and warm every path */
	dds_sleepfor(DDS_SECS(2));
	for (int i = -5; i < n; i++) {
		for (int k = 0; k < PATHS; k++) {
			double t0 = now_ms(), total = -1;
			int r;
			char fid[32];
			snprintf(fid, sizeof(fid), "f%d", i);
			if (k == DDS_RAW) {
				sensor_msgs_msg_dds__Image_ m = {
					.header = { .stamp = { i, 0 }, .frame_id = fid }, .height = (uint32_t)h,
					.width = (uint32_t)w, .encoding = "rgb8", .step = (uint32_t)w * 3,
					.data = { ._length = (uint32_t)rgb_len, ._maximum = (uint32_t)rgb_len, ._buffer = rgb },
				};
				r = dds_write(raw.writer, &m) < 0 ? -1 : dds_answer(&raw, &total);
			} else if (k == DDS_JPEG) {
				sensor_msgs_msg_dds__CompressedImage_ m = {
					.header = { .stamp = { i, 0 }, .frame_id = fid }, .format = "jpeg",
					.data = { ._length = (uint32_t)jpg_len, ._maximum = (uint32_t)jpg_len, ._buffer = jpg },
				};
				r = dds_write(cj.writer, &m) < 0 ? -1 : dds_answer(&cj, &total);
			} else {
				r = k == HTTP_PNG ? http_post(c, hpng, png, png_len, &total) :
						    http_post(c, hjpg, jpg, jpg_len, &total);
			}
			double dt = now_ms() - t0;
			if (r < 0 || total < 0)
				return fprintf(stderr, "%s: frame %d: no answer\n", names[k], i), 1;
			if (i >= 0) {
				rtt[k][i] = dt;
				tot[k][i] = total;
				ovh[k][i] = dt - total;
			}
		}
	}
	printf("%-28s %10s %12s %12s %12s\n", "path", "bytes", "rtt_ms", "daemon_ms", "overhead_ms");
	size_t bytes[PATHS] = { rgb_len, jpg_len, png_len, jpg_len };
	for (int k = 0; k < PATHS; k++)
		printf("%-28s %10zu %12.3f %12.3f %12.3f\n", names[k], bytes[k], median(rtt[k], n), median(tot[k], n),
		       median(ovh[k], n));
	curl_slist_free_all(hpng);
	curl_slist_free_all(hjpg);
	curl_easy_cleanup(c);
	dds_delete(pp);
	return 0;
}
