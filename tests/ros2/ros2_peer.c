/* A ROS 2 camera and result listener of the tests' own, in its own process,
 * speaking to splitd over DDS as ROS 2 nodes on rmw_cyclonedds do: it uses
 * Cyclone DDS directly with the types idlc made from rosidl_adapter's IDL
 * (never splitd's ros2/ code), and maps ROS names to DDS names itself
 * (topic /a/b is rt/a/b).
 *
 *   ros2_peer run DOMAIN [options]    publish frames, print the results
 *     --topic T --type image|compressed --encoding E --width W --height H
 *     --count N --rate HZ --qos sensor|reliable --file IMAGE (compressed)
 *     --bad encoding|size|empty|huge|format   (every frame malformed so)
 *     --json T --detections T --classification T   (listen; print each)
 *     --expect N (stop once N JSON results are in) --wait S (then stop)
 *   ros2_peer gone DOMAIN --json T --wait S   wait up to S s until a writer
 *     of T is matched ("matched N"), then until none is ("gone_at T", on
 *     CLOCK_MONOTONIC)
 *
 * Output lines: "json <text>", "det <sec> <nanosec> <frame_id> <n> ...",
 * "cls <sec> <nanosec> <frame_id> <n> ...", "sent <n> span <seconds>", "matched <n>". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dds/dds.h>

#include "sensor_msgs/msg/CompressedImage.h"
#include "sensor_msgs/msg/Image.h"
#include "std_msgs/msg/String.h"
#include "vision_msgs/msg/Classification.h"
#include "vision_msgs/msg/Detection2DArray.h"

struct opts {
	const char *topic, *type, *encoding, *qos, *file, *bad;
	const char *json, *detections, *classification;
	int width, height, count, expect;
	double rate, wait;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void dds_name(const char *ros, char *out, size_t len)
{
	snprintf(out, len, "rt/%s", ros[0] == '/' ? ros + 1 : ros);
}

static dds_entity_t topic(dds_entity_t pp, const dds_topic_descriptor_t *d, const char *ros)
{
	char name[256];
	dds_name(ros, name, sizeof(name));
	dds_entity_t t = dds_create_topic(pp, d, name, NULL, NULL);
	if (t < 0) {
		fprintf(stderr, "topic %s: %s\n", name, dds_strretcode(t));
		exit(1);
	}
	return t;
}

static dds_qos_t *qos_of(const char *q)
{
	dds_qos_t *qos = dds_create_qos();
	if (q && !strcmp(q, "sensor"))
		dds_qset_reliability(qos, DDS_RELIABILITY_BEST_EFFORT, 0);
	else
		dds_qset_reliability(qos, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	/* deep enough that a burst reaches splitd whole: splitd decides what to drop */
	dds_qset_history(qos, DDS_HISTORY_KEEP_LAST, 64);
	return qos;
}

static unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *b = malloc(64 << 20);
	if (!f || !b) {
		fprintf(stderr, "cannot read %s\n", path);
		exit(1);
	}
	*len = fread(b, 1, 64 << 20, f);
	fclose(f);
	return b;
}

/* Frame i: stamp {1000 + i, 1000 * i + 7}, frame_id "cam_i", pixels i-dependent. */
static void fill_image(const struct opts *o, int i, sensor_msgs_msg_dds__Image_ *m, unsigned char *pix, char *fid)
{
	int bpp = !strcmp(o->encoding, "mono8") ? 1 : !strcmp(o->encoding, "16UC1") ? 2 :
		  !strcmp(o->encoding, "32FC1") ? 4 : 3;
	uint32_t step = (uint32_t)(o->width * bpp);
	size_t len = (size_t)step * (size_t)o->height;

	for (size_t k = 0; k < len; k++)
		pix[k] = (unsigned char)(k * 7 + (size_t)i * 13);
	sprintf(fid, "cam_%d", i);
	*m = (sensor_msgs_msg_dds__Image_){
		.header = { .stamp = { 1000 + i, (uint32_t)(1000 * i + 7) }, .frame_id = fid },
		.height = (uint32_t)o->height, .width = (uint32_t)o->width, .encoding = (char *)o->encoding,
		.step = step, .data = { ._length = (uint32_t)len, ._maximum = (uint32_t)len, ._buffer = pix },
	};
	if (!o->bad)
		return;
	if (!strcmp(o->bad, "encoding"))
		m->encoding = "yuv422_weird";
	else if (!strcmp(o->bad, "size"))
		m->step += 1;
	else if (!strcmp(o->bad, "empty"))
		m->width = m->height = m->step = 0, m->data._length = 0;
	else if (!strcmp(o->bad, "huge"))	/* a 100-megapixel header over a small frame */
		m->width = 10000, m->height = 10000, m->step = 30000;
}

static int print_results(dds_entity_t rj, dds_entity_t rd, dds_entity_t rc)
{
	void *s[1] = { NULL };
	dds_sample_info_t si;
	int got = 0;

	while (rj > 0 && dds_take(rj, s, &si, 1, 1) > 0) {
		if (si.valid_data) {
			printf("json %s\n", ((std_msgs_msg_dds__String_ *)s[0])->data);
			got++;
		}
		dds_return_loan(rj, s, 1);
		s[0] = NULL;
	}
	while (rd > 0 && dds_take(rd, s, &si, 1, 1) > 0) {
		const vision_msgs_msg_dds__Detection2DArray_ *a = s[0];
		if (si.valid_data) {
			printf("det %d %u %s %u", a->header.stamp.sec, a->header.stamp.nanosec, a->header.frame_id,
			       a->detections._length);
			for (uint32_t k = 0; k < a->detections._length; k++) {
				const vision_msgs_msg_dds__Detection2D_ *d = &a->detections._buffer[k];
				printf(" %.2f %.2f %.2f %.2f %s %.4f", d->bbox.center.position.x, d->bbox.center.position.y,
				       d->bbox.size_x, d->bbox.size_y,
				       d->results._length ? d->results._buffer[0].hypothesis.class_id : "-",
				       d->results._length ? d->results._buffer[0].hypothesis.score : 0.0);
			}
			printf("\n");
		}
		dds_return_loan(rd, s, 1);
		s[0] = NULL;
	}
	while (rc > 0 && dds_take(rc, s, &si, 1, 1) > 0) {
		const vision_msgs_msg_dds__Classification_ *c = s[0];
		if (si.valid_data) {
			printf("cls %d %u %s %u", c->header.stamp.sec, c->header.stamp.nanosec, c->header.frame_id,
			       c->results._length);
			for (uint32_t k = 0; k < c->results._length; k++)
				printf(" %s %.4f", c->results._buffer[k].class_id, c->results._buffer[k].score);
			printf("\n");
		}
		dds_return_loan(rc, s, 1);
		s[0] = NULL;
	}
	fflush(stdout);
	return got;
}

static dds_entity_t listen_on(dds_entity_t pp, const dds_topic_descriptor_t *d, const char *ros)
{
	if (!ros)
		return 0;
	dds_qos_t *q = qos_of("reliable");
	dds_entity_t r = dds_create_reader(pp, topic(pp, d, ros), q, NULL);
	dds_delete_qos(q);
	return r;
}

static int wait_matched(dds_entity_t w, double timeout)
{
	dds_publication_matched_status_t st = { 0 };
	double t0 = now_s();
	while (now_s() - t0 < timeout) {
		dds_get_publication_matched_status(w, &st);
		if (st.current_count > 0)
			return 1;
		usleep(10000);
	}
	return 0;
}

static int run(dds_entity_t pp, const struct opts *o)
{
	dds_entity_t rj = listen_on(pp, &std_msgs_msg_dds__String__desc, o->json);
	dds_entity_t rd = listen_on(pp, &vision_msgs_msg_dds__Detection2DArray__desc, o->detections);
	dds_entity_t rc = listen_on(pp, &vision_msgs_msg_dds__Classification__desc, o->classification);
	int compressed = o->type && !strcmp(o->type, "compressed");
	dds_qos_t *q = qos_of(o->qos);
	dds_entity_t w = dds_create_writer(pp, topic(pp, compressed ? &sensor_msgs_msg_dds__CompressedImage__desc :
						      &sensor_msgs_msg_dds__Image__desc, o->topic), q, NULL);
	dds_delete_qos(q);
	unsigned char *pix = malloc((size_t)o->width * (size_t)o->height * 4 + 16);
	size_t flen = 0;
	unsigned char *file = compressed ? read_file(o->file, &flen) : NULL;
	char fid[32];
	int got = 0;

	printf("matched %d\n", wait_matched(w, 10.0));
	/* and splitd's result writers to us */
	usleep(300000);
	double first = now_s(), last = first;
	for (int i = 0; i < o->count; i++) {
		double t = now_s();
		if (compressed) {
			sprintf(fid, "cam_%d", i);
			sensor_msgs_msg_dds__CompressedImage_ m = {
				.header = { .stamp = { 1000 + i, (uint32_t)(1000 * i + 7) }, .frame_id = fid },
				.format = (char *)(o->bad && !strcmp(o->bad, "format") ? "bmp" : "jpeg"),
				.data = { ._length = (uint32_t)flen, ._maximum = (uint32_t)flen, ._buffer = file },
			};
			dds_write(w, &m);
		} else {
			sensor_msgs_msg_dds__Image_ m;
			fill_image(o, i, &m, pix, fid);
			dds_write(w, &m);
		}
		last = now_s();
		got += print_results(rj, rd, rc);
		while (o->rate > 0 && now_s() - t < 1.0 / o->rate)
			usleep(200);
	}
	/* the frames went out over this span (the first write to the last) */
	printf("sent %d span %.6f\n", o->count, o->count > 0 ? last - first : 0.0);
	fflush(stdout);
	double t0 = now_s();
	while (now_s() - t0 < o->wait && (o->expect <= 0 || got < o->expect)) {
		got += print_results(rj, rd, rc);
		usleep(5000);
	}
	/* anything that came with the last */
	usleep(100000);
	print_results(rj, rd, rc);
	free(pix);
	free(file);
	return 0;
}

static int gone(dds_entity_t pp, const struct opts *o)
{
	dds_entity_t r = listen_on(pp, &std_msgs_msg_dds__String__desc, o->json);
	dds_subscription_matched_status_t st = { 0 };
	double t0 = now_s(), t1;

	while (now_s() - t0 < o->wait && (dds_get_subscription_matched_status(r, &st), st.current_count == 0))
		usleep(10000);
	printf("matched %u\n", st.current_count);
	fflush(stdout);
	if (st.current_count == 0)
		return 1;
	while (dds_get_subscription_matched_status(r, &st), st.current_count > 0)
		usleep(5000);
	t1 = now_s();
	printf("gone_at %.3f\n", t1);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .topic = "/camera/image_raw", .type = "image", .encoding = "rgb8", .qos = "reliable",
			  .width = 64, .height = 48, .count = 1, .wait = 5 };

	if (argc < 3) {
		fprintf(stderr, "usage: ros2_peer run|gone DOMAIN [options]\n");
		return 2;
	}
	for (int i = 3; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--topic")) o.topic = v;
		else if (!strcmp(k, "--type")) o.type = v;
		else if (!strcmp(k, "--encoding")) o.encoding = v;
		else if (!strcmp(k, "--qos")) o.qos = v;
		else if (!strcmp(k, "--file")) o.file = v;
		else if (!strcmp(k, "--bad")) o.bad = v;
		else if (!strcmp(k, "--json")) o.json = v;
		else if (!strcmp(k, "--detections")) o.detections = v;
		else if (!strcmp(k, "--classification")) o.classification = v;
		else if (!strcmp(k, "--width")) o.width = atoi(v);
		else if (!strcmp(k, "--height")) o.height = atoi(v);
		else if (!strcmp(k, "--count")) o.count = atoi(v);
		else if (!strcmp(k, "--expect")) o.expect = atoi(v);
		else if (!strcmp(k, "--rate")) o.rate = atof(v);
		else if (!strcmp(k, "--wait")) o.wait = atof(v);
		else {
			fprintf(stderr, "unknown option %s\n", k);
			return 2;
		}
	}
	dds_entity_t pp = dds_create_participant((dds_domainid_t)atoi(argv[2]), NULL, NULL);
	if (pp < 0) {
		fprintf(stderr, "participant: %s\n", dds_strretcode(pp));
		return 1;
	}
	int r = !strcmp(argv[1], "gone") ? gone(pp, &o) : run(pp, &o);
	dds_delete(pp);
	return r;
}
