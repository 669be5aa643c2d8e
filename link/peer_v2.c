/* The API's v2 parse read as a robot's request (see peer_v2.h). */
#include "peer_v2.h"
#include "link-impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int get_int(const void *obj, const char *key, int64_t *out)
{
	return api_params_int(obj, key, out);
}

static int get_number(const void *obj, const char *key, double *out)
{
	return api_params_double(obj, key, out);
}

static int get_string(const void *obj, const char *key, const char **out)
{
	return api_params_string(obj, key, out);
}

static int get_bool(const void *obj, const char *key, int *out)
{
	return api_params_bool(obj, key, out);
}

static int get_int_array(const void *obj, const char *key, int64_t *out, int max, int *n)
{
	return api_params_int_array(obj, key, out, max, n);
}

static struct peer_params params_of(const struct api_params *p)
{
	return (struct peer_params){ .obj = p, .get_int = get_int, .get_number = get_number,
				     .get_string = get_string, .get_bool = get_bool,
				     .get_int_array = get_int_array };
}

int peer_v2_request_read(const struct api_v2_message *msg, int streamed, struct peer_request *out,
			 char *err, size_t errlen)
{
	struct peer_params pp = params_of(msg ? msg->params : NULL);
	int r;

	if (!msg || !out)
		return -EINVAL;
	if ((r = peer_request_read_params(&pp, out, err, errlen)) < 0)
		return r;
	if (streamed && out->bands < 2)
		return link_err(-EBADMSG, err, errlen, "a streamed request must be banded");
	if (msg->id) {
		if (strlen(msg->id) >= PEER_ID_MAX)
			return link_err(-EBADMSG, err, errlen, "request id is longer than %d bytes", PEER_ID_MAX - 1);
		strcpy(out->id, msg->id);
	}
	if (msg->n_tensors < 1 || msg->n_tensors > PEER_MAX_TENSORS)
		return link_err(-EBADMSG, err, errlen, "request \"inputs\" is not an array of 1 to %d tensors", PEER_MAX_TENSORS);
	for (int i = 0; i < msg->n_tensors; i++) {
		const struct api_v2_tensor *t = &msg->tensors[i];

		if (!t->binary)
			return link_err(-EBADMSG, err, errlen, "input '%.64s' carries JSON \"data\": tensors on the peer link travel "
				 "in the binary part (binary_data_size)", t->name ? t->name : "");
		pp = params_of(t->params);
		if ((r = peer_request_add_input(out, t->name, t->datatype, t->ndim, t->shape, &pp,
						t->data_len ? t->data : NULL, t->data_len, err, errlen)) < 0)
			return r;
	}
	for (int i = 0; i < msg->n_outputs; i++)
		if ((r = peer_request_add_output(out, msg->outputs[i].name, msg->outputs[i].binary, err,
						 errlen)) < 0)
			return r;
	if (msg->binary_data_output)
		out->binary_output = 1;
	return 0;
}
