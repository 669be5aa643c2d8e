/* The link to the peer behind the pipeline's table of operations
 * (pipe_request.h): the real one wraps the peer client (peer_client.h). */
#include "pipe_request.h"

static int pc_send(void *link, const struct peer_msg *msg, int64_t timeout_ms, struct peer_reply *out,
		   char *err, size_t errlen)
{
	return peer_client_infer(link, msg, timeout_ms, out, err, errlen);
}

static enum peer_state pc_probe(void *link)
{
	return peer_client_state(link);
}

static void pc_stats(void *link, struct peer_client_stats *out)
{
	peer_client_stats(link, out);
}

static void pc_count_fallback(void *link)
{
	peer_client_count_fallback(link);
}

static void pc_blame(void *link, int bad_answer)
{
	peer_client_blame(link, bad_answer);
}

/* The client streams a message whose stream is set as it sends any other. */
const struct pipe_link_ops pipe_link_peer_client = {
	.send = pc_send,
	.stream = pc_send,
	.probe = pc_probe,
	.stats = pc_stats,
	.count_fallback = pc_count_fallback,
	.blame = pc_blame,
};
