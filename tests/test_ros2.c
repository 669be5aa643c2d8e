/* ros2/: ROS 2's naming on DDS (topics rt/..., types pkg::msg::dds_::T_),
 * the IDL made at build time by rosidl_adapter (provenance, the fields of
 * ROS 2's published definitions in order), the wire bytes of an Image
 * against plain CDR assembled here by hand, the result messages read back
 * through DDS, and the frame checks and raw encodings. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ros2.h"
#include "ros2-impl.h"
#include <dds/ddsi/ddsi_serdata.h>

static char err[512];

/* ROS 2's documented mapping (design article "Topic and Service name
 * mapping to DDS"; rmw_cyclonedds's type names). */
static void test_names(void **state)
{
	static const struct { enum ros2_msg_type t; const char *ros, *dds; } want[] = {
		{ ROS2_IMAGE, "sensor_msgs/msg/Image", "sensor_msgs::msg::dds_::Image_" },
		{ ROS2_COMPRESSED, "sensor_msgs/msg/CompressedImage", "sensor_msgs::msg::dds_::CompressedImage_" },
		{ ROS2_STRING, "std_msgs/msg/String", "std_msgs::msg::dds_::String_" },
		{ ROS2_DETECTIONS, "vision_msgs/msg/Detection2DArray", "vision_msgs::msg::dds_::Detection2DArray_" },
		{ ROS2_CLASSIFICATION, "vision_msgs/msg/Classification", "vision_msgs::msg::dds_::Classification_" },
	};
	char out[300];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_string_equal(ros2_type_name(want[i].t), want[i].ros);
		assert_string_equal(ros2_dds_type_name(want[i].t), want[i].dds);
		/* what the generated descriptor registers on the wire */
		assert_string_equal(ros2_descriptor_type_name(want[i].t), want[i].dds);
	}
	assert_int_equal(ros2_topic_dds_name("/camera/image_raw", "splitd", out, sizeof(out)), 0);
	assert_string_equal(out, "rt/camera/image_raw");
	assert_int_equal(ros2_topic_dds_name("chatter", "splitd", out, sizeof(out)), 0);
	assert_string_equal(out, "rt/chatter");
	assert_int_equal(ros2_topic_dds_name("~/power", "splitd", out, sizeof(out)), 0);
	assert_string_equal(out, "rt/splitd/power");
	const char *bad[] = { "", "/", "/a//b", "/a/", "/1cam", "/cam-era", "/a b", "~x", NULL };
	for (int i = 0; bad[i]; i++)
		if (ros2_topic_dds_name(bad[i], "splitd", out, sizeof(out)) != -EINVAL)
			fail_msg("'%s' taken as %s", bad[i], out);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *b = calloc(1, 65536);

	assert_non_null(f);
	assert_non_null(b);
	fread(b, 1, 65535, f);
	fclose(f);
	return b;
}

/* The field lines of one struct in an IDL text, "type name;" joined by '|'. */
static void fields(const char *idl, char *out, size_t len)
{
	const char *p = strstr(idl, "struct ");
	size_t used = 0;

	assert_non_null(p);
	p = strchr(p, '{') + 1;
	out[0] = 0;
	while (*p && *p != '}') {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		while (n && (*p == ' '))
			p++, n--;
		if (n && p[n - 1] == ';' && *p != '}')
			used += (size_t)snprintf(out + used, len - used, "%s%.*s", used ? "|" : "", (int)n, p);
		p += n + (nl ? 1 : 0);
	}
}

/* The IDL is rosidl_adapter's (its banner, from our .msg), the dds_ variant
 * is that file renamed, and the fields are ROS 2 Humble's published ones. */
static void test_generated_idl(void **state)
{
	static const struct { const char *file, *fields; } want[] = {
		{ "builtin_interfaces/msg/Time", "int32 sec;|uint32 nanosec;" },
		{ "std_msgs/msg/Header", "builtin_interfaces::msg::Time stamp;|string frame_id;" },
		{ "std_msgs/msg/String", "string data;" },
		{ "sensor_msgs/msg/Image", "std_msgs::msg::Header header;|uint32 height;|uint32 width;|string encoding;|"
					   "uint8 is_bigendian;|uint32 step;|sequence<uint8> data;" },
		{ "sensor_msgs/msg/CompressedImage", "std_msgs::msg::Header header;|string format;|sequence<uint8> data;" },
		{ "vision_msgs/msg/Detection2DArray",
		  "std_msgs::msg::Header header;|sequence<vision_msgs::msg::Detection2D> detections;" },
		{ "vision_msgs/msg/Detection2D", "std_msgs::msg::Header header;|"
		  "sequence<vision_msgs::msg::ObjectHypothesisWithPose> results;|vision_msgs::msg::BoundingBox2D bbox;|"
		  "string id;" },
		{ "vision_msgs/msg/BoundingBox2D", "vision_msgs::msg::Pose2D center;|double size_x;|double size_y;" },
		{ "vision_msgs/msg/Pose2D", "vision_msgs::msg::Point2D position;|double theta;" },
		{ "vision_msgs/msg/Point2D", "double x;|double y;" },
		{ "vision_msgs/msg/ObjectHypothesisWithPose",
		  "vision_msgs::msg::ObjectHypothesis hypothesis;|geometry_msgs::msg::PoseWithCovariance pose;" },
		{ "vision_msgs/msg/ObjectHypothesis", "string class_id;|double score;" },
		{ "vision_msgs/msg/Classification",
		  "std_msgs::msg::Header header;|sequence<vision_msgs::msg::ObjectHypothesis> results;" },
		{ "geometry_msgs/msg/PoseWithCovariance", "geometry_msgs::msg::Pose pose;|double__36 covariance;" },
		{ "geometry_msgs/msg/Pose", "geometry_msgs::msg::Point position;|geometry_msgs::msg::Quaternion orientation;" },
	};
	char path[1024], got[1024];

	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		snprintf(path, sizeof(path), "%s/idl/%s.idl", SPLITD_ROS2_BUILD_DIR, want[i].file);
		char *idl = slurp(path);
		assert_non_null(strstr(idl, "// generated from rosidl_adapter/resource/msg.idl.em"));
		fields(idl, got, sizeof(got));
		if (strcmp(got, want[i].fields))
			fail_msg("%s: fields\n  %s\nwant\n  %s", want[i].file, got, want[i].fields);
		free(idl);
		snprintf(path, sizeof(path), "%s/dds/%s.idl", SPLITD_ROS2_BUILD_DIR, want[i].file);
		idl = slurp(path);
		assert_non_null(strstr(idl, "module msg { module dds_ {"));
		assert_null(strstr(idl, "@verbatim"));
		free(idl);
	}
	char *q = slurp(SPLITD_ROS2_BUILD_DIR "/dds/geometry_msgs/msg/PoseWithCovariance.idl");
	assert_non_null(strstr(q, "typedef double double__36[36];"));
	free(q);
}

/* ---- through DDS, in this process ------------------------------------------ */

static dds_entity_t pp;

static int dds_setup(void **state)
{
	setenv("CYCLONEDDS_URI", "<General><Interfaces><NetworkInterface address=\"127.0.0.1\"/></Interfaces>"
	       "<AllowMulticast>false</AllowMulticast></General>", 1);
	pp = dds_create_participant((dds_domainid_t)(200 + getpid() % 30), NULL, NULL);
	return pp < 0;
}

static int dds_teardown(void **state)
{
	dds_delete(pp);
	return 0;
}

static dds_entity_t reader_for(const dds_topic_descriptor_t *d, const char *name)
{
	dds_qos_t *q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 8);
	dds_entity_t t = dds_create_topic(pp, d, name, NULL, NULL);
	dds_entity_t r = dds_create_reader(pp, t, q, NULL);
	dds_delete_qos(q);
	assert_true(r > 0);
	return r;
}

/* Wait for one sample (loaned into *s); 1 when there is one. */
static int take_one(dds_entity_t r, void **s)
{
	dds_sample_info_t si;

	for (int i = 0; i < 500; i++) {
		if (dds_take(r, s, &si, 1, 1) > 0 && si.valid_data)
			return 1;
		usleep(10000);
	}
	return 0;
}

/* sensor_msgs/Image as plain CDR (XCDR1, little endian), assembled by hand
 * from the .msg: what rmw_cyclonedds sends for the same message. */
static void test_image_wire_bytes(void **state)
{
	static const unsigned char want[] = {
		0x00, 0x01, 0x00, 0x02,				/* CDR_LE; options: 2 bytes of end padding */
		0xe8, 0x03, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00,	/* stamp 1000 s 7 ns */
		0x04, 0x00, 0x00, 0x00, 'c', 'a', 'm', 0,	/* frame_id */
		0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,	/* height 2, width 1 */
		0x05, 0x00, 0x00, 0x00, 'r', 'g', 'b', '8', 0,	/* encoding */
		0x00, 0x00, 0x00,				/* is_bigendian, padding */
		0x03, 0x00, 0x00, 0x00,				/* step */
		0x06, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5, 6,	/* data */
	};
	unsigned char pix[6] = { 1, 2, 3, 4, 5, 6 };
	sensor_msgs_msg_dds__Image_ m = {
		.header = { .stamp = { 1000, 7 }, .frame_id = "cam" }, .height = 2, .width = 1,
		.encoding = "rgb8", .step = 3, .data = { ._length = 6, ._maximum = 6, ._buffer = pix },
	};
	dds_entity_t t = dds_create_topic(pp, &sensor_msgs_msg_dds__Image__desc, "rt/wire/image", NULL, NULL);
	dds_entity_t r = reader_for(&sensor_msgs_msg_dds__Image__desc, "rt/wire/image");
	dds_entity_t w = dds_create_writer(pp, t, NULL, NULL);
	struct ddsi_serdata *sd = NULL;
	dds_sample_info_t si;
	unsigned char got[256];

	assert_int_equal(dds_write(w, &m), 0);
	int n = 0;
	for (int i = 0; i < 500 && n <= 0; i++, usleep(10000))
		n = dds_takecdr(r, &sd, 1, &si, 0);
	assert_int_equal(n, 1);
	uint32_t size = ddsi_serdata_size(sd);
	assert_true(size >= sizeof(want) && size <= sizeof(got));
	ddsi_serdata_to_ser(sd, 0, size, got);
	ddsi_serdata_unref(sd);
	/* 54 bytes of message, padded to 4 (the options' low bits say by how many) */
	assert_int_equal(size, sizeof(want) + 2);
	assert_memory_equal(got, want, sizeof(want));
}

static void test_detections_through_dds(void **state)
{
	struct ros2_node *node;
	struct ros2_pub *pub;
	const float kp[3] = { 1, 2, 1 };
	struct detection d[2] = {
		{ .class_id = 3, .label = "robot", .score = 0.875f, .box = { 10, 20, 50, 100 } },
		{ .class_id = 7, .label = NULL, .score = 0.5f, .box = { 0, 0, 4, 2 }, .n_keypoints = 1, .keypoints = kp },
	};
	struct detections ds = { 2, d };
	void *s[1] = { NULL };

	assert_int_equal(ros2_node_new((int)(200 + getpid() % 30), "det_test", &node, err, sizeof(err)), 0);
	assert_int_equal(ros2_advertise(node, "/splitd/detections", ROS2_DETECTIONS, ROS2_QOS_RELIABLE, &pub, err,
					sizeof(err)), 0);
	dds_entity_t r = reader_for(&vision_msgs_msg_dds__Detection2DArray__desc, "rt/splitd/detections");
	for (int i = 0; i < 500 && ros2_pub_matched(pub) == 0; i++)
		usleep(10000);
	assert_int_equal(ros2_publish_detections(pub, (struct ros2_time){ 1700000000, 123456789 }, "cam_left", &ds), 0);
	assert_true(take_one(r, s));
	const vision_msgs_msg_dds__Detection2DArray_ *a = s[0];
	assert_int_equal(a->header.stamp.sec, 1700000000);
	assert_int_equal(a->header.stamp.nanosec, 123456789);
	assert_string_equal(a->header.frame_id, "cam_left");
	assert_int_equal(a->detections._length, 2);
	const vision_msgs_msg_dds__Detection2D_ *d0 = &a->detections._buffer[0], *d1 = &a->detections._buffer[1];
	assert_true(d0->bbox.center.position.x == 30 && d0->bbox.center.position.y == 60);
	assert_true(d0->bbox.size_x == 40 && d0->bbox.size_y == 80 && d0->bbox.center.theta == 0);
	assert_int_equal(d0->results._length, 1);
	assert_string_equal(d0->results._buffer[0].hypothesis.class_id, "robot");
	assert_true(d0->results._buffer[0].hypothesis.score == 0.875);
	assert_true(d0->results._buffer[0].pose.pose.orientation.w == 1.0);
	assert_string_equal(d0->header.frame_id, "cam_left");
	assert_string_equal(d1->results._buffer[0].hypothesis.class_id, "7");
	assert_true(d1->bbox.center.position.x == 2 && d1->bbox.size_y == 2);
	dds_return_loan(r, s, 1);

	/* none: an empty array, still stamped */
	struct detections none = { 0, NULL };
	s[0] = NULL;
	assert_int_equal(ros2_publish_detections(pub, (struct ros2_time){ 5, 6 }, "x", &none), 0);
	assert_true(take_one(r, s));
	a = s[0];
	assert_int_equal(a->detections._length, 0);
	assert_int_equal(a->header.stamp.sec, 5);
	dds_return_loan(r, s, 1);

	/* closed: publishing fails, nothing crashes */
	ros2_node_close(node);
	assert_int_equal(ros2_publish_detections(pub, (struct ros2_time){ 5, 6 }, "x", &none), -ESHUTDOWN);
	ros2_node_free(node);
}

static void test_classification_through_dds(void **state)
{
	struct ros2_node *node;
	struct ros2_pub *pub;
	struct ros2_hypothesis h[2] = { { "tabby", 0.75 }, { "281", 0.125 } };
	void *s[1] = { NULL };

	assert_int_equal(ros2_node_new((int)(200 + getpid() % 30), "cls_test", &node, err, sizeof(err)), 0);
	assert_int_equal(ros2_advertise(node, "~/classes", ROS2_CLASSIFICATION, ROS2_QOS_RELIABLE, &pub, err,
					sizeof(err)), 0);
	dds_entity_t r = reader_for(&vision_msgs_msg_dds__Classification__desc, "rt/cls_test/classes");
	for (int i = 0; i < 500 && ros2_pub_matched(pub) == 0; i++)
		usleep(10000);
	assert_int_equal(ros2_publish_classification(pub, (struct ros2_time){ 9, 10 }, "f", h, 2), 0);
	assert_true(take_one(r, s));
	const vision_msgs_msg_dds__Classification_ *c = s[0];
	assert_int_equal(c->results._length, 2);
	assert_string_equal(c->results._buffer[0].class_id, "tabby");
	assert_true(c->results._buffer[1].score == 0.125);
	assert_int_equal(c->header.stamp.nanosec, 10);
	dds_return_loan(r, s, 1);
	ros2_node_free(node);
}

static void on_frame_none(void *ctx, const struct ros2_frame *f)
{
}

/* The node on ros_discovery_info, as rmw_dds_common's graph reads it. */
static void test_announce(void **state)
{
	struct ros2_node *node;
	struct ros2_pub *pub;
	struct ros2_sub *sub;
	void *s[1] = { NULL };

	assert_string_equal(rmw_dds_common_msg_dds__ParticipantEntitiesInfo__desc.m_typename,
			    "rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_");
	assert_int_equal(ros2_node_new((int)(200 + getpid() % 30), "graph_test", &node, err, sizeof(err)), 0);
	assert_int_equal(ros2_advertise(node, "/out", ROS2_STRING, ROS2_QOS_RELIABLE, &pub, err, sizeof(err)), 0);
	assert_int_equal(ros2_subscribe(node, "/in", ROS2_IMAGE, ROS2_QOS_SENSOR, on_frame_none, NULL, &sub, err,
					sizeof(err)), 0);
	assert_int_equal(ros2_node_announce(node, err, sizeof(err)), 0);
	/* transient local: a reader made afterwards still gets it */
	dds_qos_t *q = dds_create_qos();
	dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
	dds_qset_durability(q, DDS_DURABILITY_TRANSIENT_LOCAL);
	dds_qset_history(q, DDS_HISTORY_KEEP_LAST, 1);
	dds_entity_t r = dds_create_reader(pp, dds_create_topic(pp, &rmw_dds_common_msg_dds__ParticipantEntitiesInfo__desc,
								 "ros_discovery_info", NULL, NULL), q, NULL);
	dds_delete_qos(q);
	int found = 0;
	for (int i = 0; i < 300 && !found; i++) {
		dds_sample_info_t si;
		while (!found && dds_take(r, s, &si, 1, 1) > 0) {
			const rmw_dds_common_msg_dds__ParticipantEntitiesInfo_ *in = s[0];
			if (si.valid_data && in->node_entities_info_seq._length == 1 &&
			    !strcmp(in->node_entities_info_seq._buffer[0].node_name, "graph_test")) {
				const rmw_dds_common_msg_dds__NodeEntitiesInfo_ *ne = &in->node_entities_info_seq._buffer[0];
				assert_string_equal(ne->node_namespace, "/");
				assert_int_equal(ne->reader_gid_seq._length, 1);
				assert_int_equal(ne->writer_gid_seq._length, 1);
				static const uint8_t zero[24];
				assert_memory_not_equal(in->gid.data, zero, 16);
				assert_memory_equal(in->gid.data + 16, zero, 8);	/* a 16-byte GUID in 24 */
				/* the participant's GUID prefix begins each endpoint's */
				assert_memory_equal(ne->writer_gid_seq._buffer[0].data, in->gid.data, 12);
				found = 1;
			}
			dds_return_loan(r, s, 1);
			s[0] = NULL;
		}
		usleep(10000);
	}
	assert_true(found);
	ros2_node_free(node);
}

/* ---- frames ------------------------------------------------------------------ */

static void test_frame_checks(void **state)
{
	uint8_t px[64] = { 0 };
	struct ros2_frame f = { .width = 4, .height = 2, .step = 12, .encoding = "rgb8", .data = px, .len = 24 };
	enum ros2_encoding enc;
	enum ros2_drop why;

	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), 0);
	assert_int_equal(enc, ROS2_ENC_RGB8);
	f.step = 16, f.len = 32;	/* padded rows */
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), 0);
	f.len = 31;
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_SIZE);
	f.step = 8, f.len = 16;		/* step shorter than a row */
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_SIZE);
	f.step = 12, f.len = 24, f.encoding = "yuv422";
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_ENCODING);
	assert_non_null(strstr(err, "yuv422"));
	f.encoding = NULL;
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	f.encoding = "rgb8", f.width = 0;
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_EMPTY);
	/* a 100-megapixel header over a small buffer: refused before any size arithmetic */
	f.width = 10000, f.height = 10000, f.step = 30000;
	assert_int_equal(ros2_frame_check(&f, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_TOO_LARGE);
	/* step x height overflowing 32 bits */
	f.width = 4, f.height = 0x40000000u, f.step = 16, f.len = 0;
	assert_int_equal(ros2_frame_check(&f, (int64_t)1 << 40, &enc, &why, err, sizeof(err)), -EINVAL);
	struct ros2_frame c = { .compressed = 1, .format = "jpeg", .data = px, .len = 10 };
	assert_int_equal(ros2_frame_check(&c, 0, &enc, &why, err, sizeof(err)), 0);
	c.format = "rgb8; jpeg compressed bgr8";
	assert_int_equal(ros2_frame_check(&c, 0, &enc, &why, err, sizeof(err)), 0);
	c.format = "png";
	assert_int_equal(ros2_frame_check(&c, 0, &enc, &why, err, sizeof(err)), 0);
	c.format = "bmp";
	assert_int_equal(ros2_frame_check(&c, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_ENCODING);
	c.format = "jpeg", c.len = 0;
	assert_int_equal(ros2_frame_check(&c, 0, &enc, &why, err, sizeof(err)), -EINVAL);
	assert_int_equal(why, ROS2_DROP_EMPTY);
	assert_string_equal(ros2_drop_name(ROS2_DROP_TOO_LARGE), "too_large");
}

static void test_encodings(void **state)
{
	uint8_t bgr[8] = { 1, 2, 3, 4, 5, 6, 0xee, 0xee };	/* 2x1, step 8 (padded) */
	uint8_t rgb[6];
	struct ros2_frame f = { .width = 2, .height = 1, .step = 8, .data = bgr, .len = 8 };

	ros2_frame_to_rgb8(&f, ROS2_ENC_BGR8, 0, rgb);
	assert_memory_equal(rgb, ((uint8_t[]){ 3, 2, 1, 6, 5, 4 }), 6);
	ros2_frame_to_rgb8(&f, ROS2_ENC_MONO8, 0, rgb);
	assert_memory_equal(rgb, ((uint8_t[]){ 1, 1, 1, 2, 2, 2 }), 6);

	/* 16UC1 millimetres: 10 m is white by default; big-endian swapped */
	uint16_t mm[2] = { 4000, 20000 };
	f = (struct ros2_frame){ .width = 2, .height = 1, .step = 4, .data = (uint8_t *)mm, .len = 4 };
	ros2_frame_to_rgb8(&f, ROS2_ENC_16UC1, 0, rgb);
	assert_memory_equal(rgb, ((uint8_t[]){ 102, 102, 102, 255, 255, 255 }), 6);
	ros2_frame_to_rgb8(&f, ROS2_ENC_16UC1, 0.01, rgb);
	assert_int_equal(rgb[0], 40);
	uint8_t be[4] = { 0x0f, 0xa0, 0x00, 0x00 };	/* 4000, 0 big-endian */
	f.data = be;
	f.is_bigendian = 1;
	ros2_frame_to_rgb8(&f, ROS2_ENC_16UC1, 0, rgb);
	assert_memory_equal(rgb, ((uint8_t[]){ 102, 102, 102, 0, 0, 0 }), 6);

	/* 32FC1 metres; NaN and negatives are black */
	float m[3] = { 2.0f, NAN, -1.0f };
	f = (struct ros2_frame){ .width = 3, .height = 1, .step = 12, .data = (uint8_t *)m, .len = 12 };
	uint8_t out[9];
	ros2_frame_to_rgb8(&f, ROS2_ENC_32FC1, 0, out);
	assert_memory_equal(out, ((uint8_t[]){ 51, 51, 51, 0, 0, 0, 0, 0, 0 }), 9);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_generated_idl),
		cmocka_unit_test(test_frame_checks),
		cmocka_unit_test(test_encodings),
		cmocka_unit_test_setup_teardown(test_image_wire_bytes, dds_setup, dds_teardown),
		cmocka_unit_test_setup_teardown(test_detections_through_dds, dds_setup, dds_teardown),
		cmocka_unit_test_setup_teardown(test_classification_through_dds, dds_setup, dds_teardown),
		cmocka_unit_test_setup_teardown(test_announce, dds_setup, dds_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
