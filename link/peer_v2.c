/* The API's v2 parse read as a robot's request (see peer_v2.h). */
#include "peer_v2.h"
#include "link-impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int peer_v2_request_read(const struct api_v2_message *msg, int streamed, struct peer_request *out,
			 char *err, size_t errlen)
{
	struct peer_params pp = peer_params_api(msg ? msg->params : NULL);
	int r;

	if (!msg || !out)
		return -EINVAL;
	if ((r = peer_request_read_params(&pp, out, err, errlen)) < 0)
		return r;
	if (streamed && out->bands < 2)
		return err_set(-EBADMSG, err, errlen, "a streamed request must be banded");
	if (msg->id) {
		if (strlen(msg->id) >= PEER_ID_MAX)
			return err_set(-EBADMSG, err, errlen, "request id is longer than %d bytes", PEER_ID_MAX - 1);
		strcpy(out->id, msg->id);
	}
	if (msg->n_tensors < 1 || msg->n_tensors > PEER_MAX_TENSORS)
		return err_set(-EBADMSG, err, errlen, "request \"inputs\" is not an array of 1 to %d tensors", PEER_MAX_TENSORS);
	for (int i = 0; i < msg->n_tensors; i++) {
		const struct api_v2_tensor *t = &msg->tensors[i];

		if (!t->binary)
			return err_set(-EBADMSG, err, errlen, "input '%.64s' carries JSON \"data\": tensors on the peer link travel "
				 "in the binary part (binary_data_size)", t->name ? t->name : "");
		pp = peer_params_api(t->params);
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
