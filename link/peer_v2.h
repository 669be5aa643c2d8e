/* The peer's reading of a robot's request as the API parsed it: the one
 * parser of peer_proto.c (peer_request_read_params, peer_request_add_input)
 * over the API's own "parameters" objects. The peer's request path and the
 * fuzz_peer target both come through here. */
#ifndef SPLITD_PEER_V2_H
#define SPLITD_PEER_V2_H

#include <stddef.h>

#include "api.h"
#include "peer_proto.h"

/* msg: from api_v2_parse, or from api_v2_parse_header for a streamed body
 * (streamed 1: its bytes are still arriving and are not read here; such a
 * request must be banded). Tensors on the link travel in the binary part:
 * JSON "data" is refused. 0, or -EBADMSG with err set. */
int peer_v2_request_read(const struct api_v2_message *msg, int streamed, struct peer_request *out,
			 char *err, size_t errlen);

#endif
