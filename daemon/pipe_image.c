/* Image offload: at cut 0 with encoding "input", the JPEG/PNG travels to
 * the peer as it was received (one BYTES tensor) and the peer decodes and
 * preprocesses it itself (pipe_tail.c). */
#include "link_codec.h"
#include "peer_proto.h"
#include "pipeline-impl.h"

int pipe_image_send(struct pipe_model *m, const struct pipe_request *rq, const char *id,
		    struct pipe_offload *of, char *err, size_t errlen)
{
	struct peer_tensor pt = { .name = m->in_meta[0].name, .is_bytes = 1, .ndim = 1,
				  .shape = { 1 }, .data = rq->body, .len = rq->body_len,
				  .enc = { LINK_VALUE_F32, LINK_COMP_NONE, 0 }, .scale = 1 };

	of->raw_bytes = of->wire_bytes = rq->body_len;
	return pipe_link_request(m, 0, id, &pt, 1, of, err, errlen);
}
