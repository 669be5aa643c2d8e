/* POST /v1/infer: query and body checks, decoding, and the v1 response. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "api-impl.h"

static int parse_int(const char *s, long lo, long hi, int *out)
{
	char *end;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int word_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 32)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '+' || ch == '.'))
			return 0;
	}
	return 1;
}

static int check_input(const struct api_model *m, const struct tensor_view *t,
		       char *err, size_t errlen)
{
	if (m->n_inputs < 1)
		return 0;
	const struct api_tensor_meta *in = &m->inputs[0];
	if (t->dtype != in->dtype) {
		snprintf(err, errlen, "input '%s' takes %s, not %s", in->name,
			 tensor_dtype_name(in->dtype) ? tensor_dtype_name(in->dtype) : "?",
			 tensor_dtype_name(t->dtype) ? tensor_dtype_name(t->dtype) : "?");
		return -EINVAL;
	}
	int bad = t->ndim != in->ndim;
	for (int i = 0; !bad && i < t->ndim; i++)
		bad = in->shape[i] >= 0 && in->shape[i] != t->shape[i];
	if (bad) {
		char want[160] = "", got[160] = "";
		size_t o = 0;
		for (int i = 0; i < in->ndim && o < sizeof(want); i++)
			o += (size_t)snprintf(want + o, sizeof(want) - o, "%s%lld", i ? "," : "",
					      (long long)in->shape[i]);
		o = 0;
		for (int i = 0; i < t->ndim && o < sizeof(got); i++)
			o += (size_t)snprintf(got + o, sizeof(got) - o, "%s%lld", i ? "," : "",
					      (long long)t->shape[i]);
		snprintf(err, errlen, "input '%s' has shape [%s], not [%s]", in->name, want, got);
		return -EINVAL;
	}
	return 0;
}

int api_call_decode(struct api_call *c, const struct tensor_view **out,
		    char *err, size_t errlen)
{
	const struct api_model *m = c->model;
	uint64_t t0 = api_now_ns();
	int rc;

	if (c->decoded) {
		*out = &c->input;
		return 0;
	}
	*out = NULL;
	if (c->route != ROUTE_V1_INFER)
		return -EINVAL;
	if (c->body.len == 0) {
		snprintf(err, errlen, "the body is empty");
		return -EBADMSG;
	}
	if (c->v1.kind == API_BODY_NPY) {
		rc = api_npy_parse(c->body.p, c->body.len, &c->input, &c->input_mem, err, errlen);
	} else {
		const unsigned char *b = (const unsigned char *)c->body.p;
		int jpeg = c->body.len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff;
		int png = c->body.len >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8);
		if ((c->v1.kind == API_BODY_JPEG && !jpeg) || (c->v1.kind == API_BODY_PNG && !png)) {
			snprintf(err, errlen, "the body is not %s as its Content-Type says",
				 c->v1.kind == API_BODY_JPEG ? "a JPEG" : "a PNG");
			return -EBADMSG;
		}
		if (!m->preprocess) {
			snprintf(err, errlen, "model '%s' takes no images (send application/x-npy)",
				 m->name);
			return -ENOTSUP;
		}
		rc = api_image_to_tensor(c->body.p, c->body.len, m->preprocess, &c->input,
					 &c->v1.image, err, errlen);
		c->input_mem = c->input.data;
	}
	if (rc == -ENOMEM)
		return rc;
	if (rc)
		return -EBADMSG;
	rc = check_input(m, &c->input, err, errlen);
	if (rc)
		return -EBADMSG;
	c->decoded = 1;
	c->v1.input = &c->input;
	c->v1.decode_ns = api_now_ns() - t0;
	*out = &c->input;
	return 0;
}

void api_route_v1_infer(struct api_call *c)
{
	struct api_server *s = c->srv;
	struct api_v1_request *r = &c->v1;
	const char *v;
	char err[256];

	if (!s->h.infer_v1) {
		api_call_error(c, 404, "this server does not run /v1/infer");
		return;
	}
	r->model = c->model;
	r->content_type = c->content_type;
	r->body = c->body.p;
	r->body_len = c->body.len;
	r->cut = -1;
	if ((v = api_call_query(c, "cut")) && parse_int(v, 0, 1000000, &r->cut)) {
		api_call_error(c, 400, "cut must be a node index >= 0, not '%.40s'", v);
		return;
	}
	/* only the syntax here: how many bands the link carries is the
	 * daemon's check (PEER_MAX_BANDS, link/peer_proto.h), one limit */
	if ((v = api_call_query(c, "bands")) && parse_int(v, 1, INT_MAX, &r->bands)) {
		api_call_error(c, 400, "bands must be a positive integer, not '%.40s'", v);
		return;
	}
	int wf = 1;
	if ((v = api_call_query(c, "wavefront")) && parse_int(v, 0, 1, &wf)) {
		api_call_error(c, 400, "wavefront must be 0 or 1, not '%.40s'", v);
		return;
	}
	r->no_wavefront = !wf;
	if ((v = api_call_query(c, "encoding"))) {
		if (!word_ok(v)) {
			api_call_error(c, 400, "encoding '%.40s' is not a plain name", v);
			return;
		}
		r->encoding = v;
	}
	if ((v = api_call_query(c, "policy"))) {
		if (!word_ok(v)) {
			api_call_error(c, 400, "policy '%.40s' is not a plain name", v);
			return;
		}
		r->policy = v;
	}
	if ((v = api_call_query(c, "outputs"))) {
		if (!strcmp(v, "none"))
			r->outputs_none = 1;
		else if (!strcmp(v, "raw"))
			r->outputs_raw = 1;
		else if (strcmp(v, "all")) {
			api_call_error(c, 400, "outputs must be 'none', 'all' or 'raw', not '%.40s'", v);
			return;
		}
	}
	r->received_ns = api_now_ns();
	if (!c->model->lazy_decode) {
		const struct tensor_view *t;
		int rc = api_call_decode(c, &t, err, sizeof(err));
		if (rc == -ENOTSUP) {
			api_call_error(c, 415, "%s", err);
			return;
		}
		if (rc) {
			api_call_error(c, rc == -ENOMEM ? 500 : 400, "%s", rc == -ENOMEM ? "out of memory" : err);
			return;
		}
	}
	s->h.infer_v1(s->h.ctx, c, r);
}

/* ---- the v1 response ------------------------------------------------- */

static void shape_json(struct buf *b, const struct tensor_view *t)
{
	buf_put(b, "[", 1);
	for (int i = 0; i < t->ndim; i++)
		buf_printf(b, "%s%lld", i ? "," : "", (long long)t->shape[i]);
	buf_put(b, "]", 1);
}

/* "detections": [{label, class_id, score, box, keypoints}], floats as
 * float32 round-trips them (%.9g). */
static void detections_json(struct buf *b, const struct detections *ds)
{
	buf_puts(b, ",\"detections\":[");
	for (size_t i = 0; i < ds->n; i++) {
		const struct detection *d = &ds->d[i];
		buf_puts(b, i ? ",{\"label\":" : "{\"label\":");
		buf_json_string(b, d->label);
		buf_printf(b, ",\"class_id\":%d,\"score\":", d->class_id);
		buf_double(b, d->score);
		buf_puts(b, ",\"box\":[");
		for (int q = 0; q < 4; q++) {
			buf_puts(b, q ? "," : "");
			buf_double(b, d->box[q]);
		}
		buf_puts(b, "]");
		if (d->n_keypoints > 0 && d->keypoints) {
			buf_puts(b, ",\"keypoints\":[");
			for (int k = 0; k < d->n_keypoints; k++) {
				const float *kp = d->keypoints + 3 * k;
				buf_puts(b, k ? ",[" : "[");
				buf_double(b, kp[0]);
				buf_puts(b, ",");
				buf_double(b, kp[1]);
				buf_puts(b, ",");
				buf_double(b, kp[2]);
				buf_puts(b, "]");
			}
			buf_puts(b, "]");
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "]");
}

/* "timeline": one entry per band of a banded offload. */
static void timeline_json(struct buf *b, const struct api_v1_band *tl, int n)
{
	buf_puts(b, ",\"timeline\":[");
	for (int i = 0; i < n; i++) {
		const struct api_v1_band *t = &tl[i];
		buf_printf(b, "%s{\"band\":%d,\"rows\":[%" PRId64 ",%" PRId64 "],\"bytes\":%" PRIu64
			   ",\"compute_start_ms\":", i ? "," : "", i, t->row0, t->row1, t->bytes);
		buf_ms(b, t->compute_start_ns);
		buf_key_ms(b, ",\"compute_end_ms\":", t->compute_end_ns);
		buf_key_ms(b, ",\"ready_ms\":", t->ready_ns);
		buf_key_ms(b, ",\"sent_ms\":", t->sent_ns);
		if (t->peer_known) {
			buf_key_ms(b, ",\"peer_arrived_ms\":", t->peer_arrived_ns);
			buf_key_ms(b, ",\"peer_compute_start_ms\":", t->peer_start_ns);
			buf_key_ms(b, ",\"peer_compute_end_ms\":", t->peer_end_ns);
		}
		buf_puts(b, "}");
	}
	buf_puts(b, "]");
}

int api_v1_response_build(const struct api_v1_result *r, char **body, size_t *len)
{
	struct buf b = {0};

	*body = NULL;
	*len = 0;
	buf_puts(&b, "{\"model\":");
	buf_json_string(&b, r->model);
	buf_puts(&b, ",\"id\":");
	buf_json_string(&b, r->id);
	buf_puts(&b, ",\"outputs\":[");
	for (int i = 0; i < r->n_outputs; i++) {
		const struct tensor_view *t = r->outputs[i].t;
		const char *dn = tensor_dtype_name(t->dtype);
		buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
		buf_json_string(&b, r->outputs[i].name);
		buf_puts(&b, ",\"shape\":");
		shape_json(&b, t);
		buf_puts(&b, ",\"datatype\":");
		buf_json_string(&b, dn ? dn : "BYTES");
		if (!r->outputs_none && dn) {
			buf_puts(&b, ",\"data\":");
			api_json_tensor_data(&b, t->dtype, t->data, (size_t)tensor_numel(t));
		}
		buf_put(&b, "}", 1);
	}
	buf_put(&b, "]", 1);
	if (r->top_k) {
		buf_puts(&b, ",\"top_k\":[");
		for (int i = 0; i < r->n_top_k; i++) {
			buf_printf(&b, "%s{\"index\":%d,\"label\":", i ? "," : "", r->top_k[i].index);
			buf_json_string(&b, r->top_k[i].label);
			buf_puts(&b, ",\"score\":");
			buf_double(&b, r->top_k[i].score);
			buf_put(&b, "}", 1);
		}
		buf_put(&b, "]", 1);
	}
	if (r->has_detections)
		detections_json(&b, &r->detections);
	buf_printf(&b, ",\"placement\":{\"cut\":%d,\"local_nodes\":%d,\"remote_nodes\":%d,\"bands\":%d,\"peer\":",
		   r->placement.cut, r->placement.local_nodes, r->placement.remote_nodes,
		   r->placement.bands ? r->placement.bands : 1);
	buf_json_string(&b, r->placement.peer);
	buf_puts(&b, ",\"encoding\":");
	buf_json_string(&b, r->placement.encoding);
	buf_printf(&b, ",\"fallback\":%s", r->placement.fallback ? "true" : "false");
	if (r->placement.fallback_reason) {
		buf_puts(&b, ",\"fallback_reason\":");
		buf_json_string(&b, r->placement.fallback_reason);
	}
	if (r->placement.bytes_back)
		buf_printf(&b, ",\"bytes_back\":%" PRIu64, r->placement.bytes_back);
	buf_puts(&b, "}");
	if (r->timeline && r->n_timeline > 0)
		timeline_json(&b, r->timeline, r->n_timeline);
	buf_key_ms(&b, ",\"timing_ms\":{\"queue\":", r->timing.queue_ns);
	buf_key_ms(&b, ",\"decode\":", r->timing.decode_ns);
	buf_key_ms(&b, ",\"local\":", r->timing.local_ns);
	buf_key_ms(&b, ",\"transfer\":", r->timing.transfer_ns);
	buf_key_ms(&b, ",\"remote\":", r->timing.remote_ns);
	buf_key_ms(&b, ",\"total\":", r->timing.total_ns);
	if (r->has_detections) {
		buf_puts(&b, ",\"postprocess\":");
		if (r->timing.postprocess_ns >= 0)
			buf_ms(&b, (uint64_t)r->timing.postprocess_ns);
		else
			buf_puts(&b, "null");
	}
	buf_puts(&b, "},\"energy\":");
	if (!r->energy.present) {
		buf_puts(&b, "null,\"energy_reason\":");
		buf_json_string(&b, r->energy.reason ? r->energy.reason : "no power source");
	} else {
		buf_puts(&b, "{\"joules\":");
		buf_double(&b, r->energy.energy_uj / 1e6);
		buf_puts(&b, ",\"joules_above_idle\":");
		buf_double(&b, r->energy.above_idle_uj / 1e6);
		buf_puts(&b, ",\"method\":");
		buf_json_string(&b, r->energy.method);
		buf_puts(&b, ",\"rail\":");
		buf_json_string(&b, r->energy.rail);
		buf_puts(&b, ",\"sample_hz\":");
		buf_double(&b, r->energy.sample_hz);
		buf_printf(&b, ",\"samples\":%lld}", (long long)r->energy.samples);
	}
	buf_puts(&b, "}\n");
	if (b.oom) {
		free(b.p);
		return -ENOMEM;
	}
	*body = b.p;
	*len = b.len;
	return 0;
}
