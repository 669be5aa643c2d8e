/* The peer is down, late or wrong, or refused what it was sent: the rest of
 * the model runs here, and the answer says so. Blame by cause: an answer
 * that came and cannot be used is the peer's; so is a refusal of data this
 * robot can read (its own cut tensors, or the client's image once it
 * decodes here); a refused image that does not decode here is the client's
 * (a 400). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pipeline-impl.h"

/* The peer read the request and refused what it carried (a 4xx): its
 * fault only if the data was not the client's (peer_client.h). */
static bool refused(const struct pipe_offload *of, int r)
{
	return of->infer_failed && r == -EINVAL && of->reply.http_status >= 400 &&
	       of->reply.http_status < 500;
}

int pipe_fallback(struct pipe_v1 *v, int r, const char *perr, int64_t peer_nonfinite)
{
	struct pipe_model *m = v->m;
	bool blame = (v->of.have_reply && r != -ENOMEM) || refused(&v->of, r);	/* (our memory: ours) */
	int peer_r = r;

	pipe_outputs_fini(&v->outs);
	snprintf(v->fb_reason, sizeof(v->fb_reason), "%s", perr[0] ? perr : strerror(-r));
	if (!v->need_input && (r = pipe_v1_input(v)) < 0)
		return r;
	v->fallback = 1;
	if (m->link.ops && !v->of.infer_failed && m->link.ops->count_fallback)	/* (send counts its own) */
		m->link.ops->count_fallback(m->link.ctx);
	atomic_fetch_add(&m->fallbacks, 1);
	uint64_t t = link_now_ns();
	if ((r = engine_run_range(v->ctx, v->cut, m->n_nodes)) < 0) {
		v->status = 500;
		snprintf(v->err, sizeof(v->err), "running nodes %d..%d: %s", v->cut, m->n_nodes, strerror(-r));
		return r;
	}
	v->tail_ns = link_now_ns() - t;
	v->local_nodes = m->n_nodes;
	if ((r = pipe_outputs_from_ctx(&v->outs, v->ctx, m->out_meta, m->api.n_outputs)) < 0) {
		v->status = 500;
		snprintf(v->err, sizeof(v->err), "reading the outputs: %s", strerror(-r));
		return r;
	}
	int64_t own = peer_nonfinite > 0 ? pipe_outputs_nonfinite(&v->outs) : 0;
	if (peer_nonfinite > 0) {
		/* the same nodes here: the peer's fault only if they give none */
		size_t l = strlen(v->fb_reason);
		snprintf(v->fb_reason + l, sizeof(v->fb_reason) - l,
			 own ? "; nodes %d..%d here give %" PRId64 " too (the model's own)"
			     : "; nodes %d..%d here give none", v->cut, m->n_nodes, own);
		blame = own == 0;
	}
	if (blame && m->link.ops && m->link.ops->blame)
		m->link.ops->blame(m->link.ctx, v->of.have_reply);
	if (peer_nonfinite > 0 && !blame)
		log_info("model %s: at cut %d %s: ran the rest locally", m->name, v->cut, v->fb_reason);
	else if (peer_r != -EAGAIN)
		log_warn("model %s: peer failed at cut %d (%s): ran the rest locally", m->name, v->cut,
			 v->fb_reason);
	return 0;
}
