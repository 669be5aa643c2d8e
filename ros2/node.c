/* The DDS participant, its readers and writers (Cyclone DDS's C API). The
 * message types are idlc's output for the IDL that rosidl_adapter made from
 * ros2/msg/ (build directory, ros2/gen/), under rmw_cyclonedds's names. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dds/dds.h>

#include "err.h"
#include "ros2-impl.h"

int ros2_supported(void)
{
	return 1;
}

static const dds_topic_descriptor_t *const descs[ROS2_MSG_TYPES] = {
	[ROS2_IMAGE] = &sensor_msgs_msg_dds__Image__desc,
	[ROS2_COMPRESSED] = &sensor_msgs_msg_dds__CompressedImage__desc,
	[ROS2_STRING] = &std_msgs_msg_dds__String__desc,
	[ROS2_DETECTIONS] = &vision_msgs_msg_dds__Detection2DArray__desc,
	[ROS2_CLASSIFICATION] = &vision_msgs_msg_dds__Classification__desc,
};

const char *ros2_descriptor_type_name(enum ros2_msg_type t)
{
	return (unsigned)t < ROS2_MSG_TYPES ? descs[t]->m_typename : "?";
}

#define MAX_ENDPOINTS 64

struct ros2_sub {
	struct ros2_node *node;
	dds_entity_t reader;
	enum ros2_msg_type type;
	ros2_frame_fn fn;
	void *ctx;
};

struct ros2_node {
	_Atomic dds_entity_t participant;
	dds_entity_t info_writer;	/* ros_discovery_info, once announced */
	char name[64];
	pthread_mutex_t lock;		/* the lists */
	struct ros2_sub *subs[MAX_ENDPOINTS];
	struct ros2_pub *pubs[MAX_ENDPOINTS];
	int n_subs, n_pubs;
};

static int dds_fail(dds_return_t rc, char *err, size_t errlen, const char *what, const char *name)
{
	return err_set(-EIO, err, errlen, "%s %s: %s", what, name, dds_strretcode(rc));
}

int ros2_node_new(int domain_id, const char *node, struct ros2_node **out, char *err, size_t errlen)
{
	struct ros2_node *n;
	char dds[300];

	if (domain_id < 0 || domain_id > 232)
		return err_set(-EINVAL, err, errlen, "domain id %d is not 0..232", domain_id);
	if (ros2_topic_dds_name("~", node, dds, sizeof(dds)) < 0)
		return err_set(-EINVAL, err, errlen, "'%s' is not a ROS 2 node name", node ? node : "");
	if (!(n = calloc(1, sizeof(*n))))
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	snprintf(n->name, sizeof(n->name), "%s", node);
	dds_qos_t *q = dds_create_qos();
	/* what rmw_cyclonedds puts there: the security enclave */
	dds_qset_userdata(q, "enclave=/;", strlen("enclave=/;"));
	dds_entity_t pp = dds_create_participant((dds_domainid_t)domain_id, q, NULL);
	dds_delete_qos(q);
	if (pp < 0) {
		int r = dds_fail(pp, err, errlen, "participant for node", node);
		pthread_mutex_destroy(&n->lock);
		free(n);
		return r;
	}
	atomic_store(&n->participant, pp);
	*out = n;
	return 0;
}

void ros2_node_close(struct ros2_node *n)
{
	dds_entity_t pp = n ? atomic_exchange(&n->participant, 0) : 0;

	/* waits for listeners in progress; readers and writers go with it */
	if (pp > 0)
		dds_delete(pp);
}

void ros2_node_free(struct ros2_node *n)
{
	if (!n)
		return;
	ros2_node_close(n);
	for (int i = 0; i < n->n_subs; i++)
		free(n->subs[i]);
	for (int i = 0; i < n->n_pubs; i++)
		free(n->pubs[i]);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

/* rmw_qos_profile_sensor_data and rmw_qos_profile_default. */
static dds_qos_t *make_qos(enum ros2_qos qos, int depth)
{
	dds_qos_t *q = dds_create_qos();

	if (qos == ROS2_QOS_SENSOR)
		dds_qset_reliability(q, DDS_RELIABILITY_BEST_EFFORT, 0);
	else
		dds_qset_reliability(q, DDS_RELIABILITY_RELIABLE, DDS_MSECS(100));
	dds_qset_history(q, DDS_HISTORY_KEEP_LAST, depth);
	dds_qset_durability(q, DDS_DURABILITY_VOLATILE);
	return q;
}

static dds_entity_t topic_for(struct ros2_node *n, const char *topic, enum ros2_msg_type type, char *err,
			      size_t errlen)
{
	char dds[300];
	dds_entity_t t;

	if ((unsigned)type >= ROS2_MSG_TYPES)
		return err_set(-EINVAL, err, errlen, "unknown message type %d", (int)type);
	if (ros2_topic_dds_name(topic, n->name, dds, sizeof(dds)) < 0)
		return err_set(-EINVAL, err, errlen, "'%s' is not a ROS 2 topic name", topic);
	t = dds_create_topic(n->participant, descs[type], dds, NULL, NULL);
	if (t < 0)
		return dds_fail(t, err, errlen, "topic", dds);
	return t;
}

static void frame_from_image(const sensor_msgs_msg_dds__Image_ *m, struct ros2_frame *f)
{
	*f = (struct ros2_frame){
		.stamp = { m->header.stamp.sec, m->header.stamp.nanosec }, .frame_id = m->header.frame_id,
		.width = m->width, .height = m->height, .step = m->step, .encoding = m->encoding,
		.is_bigendian = m->is_bigendian, .data = m->data._buffer, .len = m->data._length,
	};
}

static void frame_from_compressed(const sensor_msgs_msg_dds__CompressedImage_ *m, struct ros2_frame *f)
{
	*f = (struct ros2_frame){
		.stamp = { m->header.stamp.sec, m->header.stamp.nanosec }, .frame_id = m->header.frame_id,
		.compressed = 1, .format = m->format, .data = m->data._buffer, .len = m->data._length,
	};
}

/* Everything the reader holds, oldest first, each to the callback. */
static void on_data(dds_entity_t reader, void *arg)
{
	struct ros2_sub *s = arg;
	void *samples[8] = { NULL };
	dds_sample_info_t infos[8];
	int k;

	while ((k = dds_take(reader, samples, infos, 8, 8)) > 0) {
		for (int i = 0; i < k; i++) {
			struct ros2_frame f;
			if (!infos[i].valid_data)
				continue;
			if (s->type == ROS2_IMAGE)
				frame_from_image(samples[i], &f);
			else
				frame_from_compressed(samples[i], &f);
			f.frame_id = f.frame_id ? f.frame_id : "";
			s->fn(s->ctx, &f);
		}
		dds_return_loan(reader, samples, k);
		memset(samples, 0, sizeof(samples));
	}
}

int ros2_subscribe(struct ros2_node *n, const char *topic, enum ros2_msg_type type, enum ros2_qos qos,
		   ros2_frame_fn fn, void *ctx, struct ros2_sub **out, char *err, size_t errlen)
{
	struct ros2_sub *s;
	dds_entity_t t;
	int r = 0;

	if (type != ROS2_IMAGE && type != ROS2_COMPRESSED)
		return err_set(-EINVAL, err, errlen, "subscriptions take Image or CompressedImage");
	if (n->n_subs == MAX_ENDPOINTS)
		return err_set(-E2BIG, err, errlen, "more than %d subscriptions", MAX_ENDPOINTS);
	if ((t = topic_for(n, topic, type, err, errlen)) < 0)
		return t;
	if (!(s = calloc(1, sizeof(*s))))
		return -ENOMEM;
	*s = (struct ros2_sub){ .node = n, .type = type, .fn = fn, .ctx = ctx };
	dds_listener_t *l = dds_create_listener(s);
	dds_lset_data_available(l, on_data);
	/* the newest frame is what counts: a short history */
	dds_qos_t *q = make_qos(qos, 2);
	s->reader = dds_create_reader(n->participant, t, q, l);
	dds_delete_qos(q);
	dds_delete_listener(l);
	if (s->reader < 0) {
		r = dds_fail(s->reader, err, errlen, "reader on", topic);
		free(s);
		return r;
	}
	pthread_mutex_lock(&n->lock);
	n->subs[n->n_subs++] = s;
	pthread_mutex_unlock(&n->lock);
	*out = s;
	return 0;
}

uint64_t ros2_sub_lost(const struct ros2_sub *s)
{
	dds_sample_lost_status_t lost = { 0 };
	dds_sample_rejected_status_t rej = { 0 };

	if (s->node->participant <= 0)
		return 0;
	dds_get_sample_lost_status(s->reader, &lost);
	dds_get_sample_rejected_status(s->reader, &rej);
	return lost.total_count + rej.total_count;
}

int ros2_advertise(struct ros2_node *n, const char *topic, enum ros2_msg_type type, enum ros2_qos qos,
		   struct ros2_pub **out, char *err, size_t errlen)
{
	struct ros2_pub *p;
	dds_entity_t t;

	if (n->n_pubs == MAX_ENDPOINTS)
		return err_set(-E2BIG, err, errlen, "more than %d publishers", MAX_ENDPOINTS);
	if ((t = topic_for(n, topic, type, err, errlen)) < 0)
		return t;
	if (!(p = calloc(1, sizeof(*p))))
		return -ENOMEM;
	p->type = type;
	p->node = n;
	dds_qos_t *q = make_qos(qos, 10);
	p->writer = dds_create_writer(n->participant, t, q, NULL);
	dds_delete_qos(q);
	if (p->writer < 0) {
		int r = dds_fail(p->writer, err, errlen, "writer on", topic);
		free(p);
		return r;
	}
	pthread_mutex_lock(&n->lock);
	n->pubs[n->n_pubs++] = p;
	pthread_mutex_unlock(&n->lock);
	*out = p;
	return 0;
}

int ros2_pub_matched(const struct ros2_pub *p)
{
	dds_publication_matched_status_t st;

	if (p->node->participant <= 0 || dds_get_publication_matched_status(p->writer, &st) < 0)
		return 0;
	return (int)st.current_count;
}

int ros2_pub_write(struct ros2_pub *p, const void *sample)
{
	if (p->node->participant <= 0)
		return -ESHUTDOWN;
	dds_return_t rc = dds_write(p->writer, sample);
	return rc < 0 ? -EIO : 0;
}

/* ---- the ROS 2 graph ------------------------------------------------------ */

static void gid_of(dds_entity_t e, rmw_dds_common_msg_dds__Gid_ *g)
{
	dds_guid_t guid;

	memset(g, 0, sizeof(*g));
	if (dds_get_guid(e, &guid) == 0)
		memcpy(g->data, guid.v, sizeof(guid.v));
}

int ros2_node_announce(struct ros2_node *n, char *err, size_t errlen)
{
	rmw_dds_common_msg_dds__ParticipantEntitiesInfo_ info = { 0 };
	rmw_dds_common_msg_dds__NodeEntitiesInfo_ node = { 0 };
	rmw_dds_common_msg_dds__Gid_ readers[MAX_ENDPOINTS], writers[MAX_ENDPOINTS];
	int r = 0;

	if (!n->info_writer) {
		dds_entity_t t = dds_create_topic(n->participant, &rmw_dds_common_msg_dds__ParticipantEntitiesInfo__desc,
						  "ros_discovery_info", NULL, NULL);
		if (t < 0)
			return dds_fail(t, err, errlen, "topic", "ros_discovery_info");
		/* as rmw_dds_common's graph cache: reliable, transient local, keep last 1 */
		dds_qos_t *q = make_qos(ROS2_QOS_RELIABLE, 1);
		dds_qset_durability(q, DDS_DURABILITY_TRANSIENT_LOCAL);
		n->info_writer = dds_create_writer(n->participant, t, q, NULL);
		dds_delete_qos(q);
		if (n->info_writer < 0) {
			r = dds_fail(n->info_writer, err, errlen, "writer on", "ros_discovery_info");
			n->info_writer = 0;
			return r;
		}
	}
	pthread_mutex_lock(&n->lock);
	gid_of(n->participant, &info.gid);
	snprintf(node.node_namespace, sizeof(node.node_namespace), "/");
	snprintf(node.node_name, sizeof(node.node_name), "%s", n->name);
	for (int i = 0; i < n->n_subs; i++)
		gid_of(n->subs[i]->reader, &readers[i]);
	for (int i = 0; i < n->n_pubs; i++)
		gid_of(n->pubs[i]->writer, &writers[i]);
	node.reader_gid_seq = (dds_sequence_rmw_dds_common_msg_dds__Gid_){
		._length = (uint32_t)n->n_subs, ._maximum = (uint32_t)n->n_subs, ._buffer = readers };
	node.writer_gid_seq = (dds_sequence_rmw_dds_common_msg_dds__Gid_){
		._length = (uint32_t)n->n_pubs, ._maximum = (uint32_t)n->n_pubs, ._buffer = writers };
	pthread_mutex_unlock(&n->lock);
	info.node_entities_info_seq._length = info.node_entities_info_seq._maximum = 1;
	info.node_entities_info_seq._buffer = &node;
	dds_return_t rc = dds_write(n->info_writer, &info);
	return rc < 0 ? dds_fail(rc, err, errlen, "writing", "ros_discovery_info") : 0;
}
