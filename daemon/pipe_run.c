/* A worker runs one request: a robot's v1 request (pipe_v1.c), a robot's
 * split request on the peer (pipe_tail.c) or a plain v2 request
 * (pipe_local.c). A backend that reports itself unhealthy (a sticky device
 * error) is taken out of service: the model is reloaded on the CPU and the
 * request runs again there, as every one after it does. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "pipeline-impl.h"

void pipe_request_fail(const struct pipe_request *req, int status, const char *fmt, ...)
{
	char msg[PIPE_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	struct pipe_result res = { .status = status, .error = msg };
	req->ops->respond(req->ctx, &res);
}

/* One try; 0 when answered, else -errno with *status and err. */
static int run_once(struct pipe_model *m, int worker, struct pipe_request *req, int *status, char *err,
		    size_t errlen)
{
	int64_t cut;
	int r;

	if (req->kind == PIPE_REQ_V1) {
		struct pipe_v1 v = { .m = m, .worker = worker, .ctx = m->wctx[worker], .req = req };
		r = pipe_v1_run(&v);
		if (r < 0) {
			*status = v.status;
			snprintf(err, errlen, "%s", v.err[0] ? v.err : strerror(-r));
		}
		pipe_v1_fini(&v);
		return r;
	}
	r = api_params_int(req->msg->params, "splitd_cut", &cut);
	if (r == 0)
		return pipe_tail(m, worker, req, cut, status, err, errlen);
	if (r == -EINVAL) {
		*status = 400;
		return err_set(-EINVAL, err, errlen, "splitd_cut must be an integer");
	}
	return pipe_local_v2(m, worker, req, status, err, errlen);
}

/* After a failure: is the worker's context poisoned? Then the model moves
 * to the CPU (once, whichever worker sees it first). */
static bool failed_over(struct pipe_model *m, int worker, const char *err)
{
	struct engine_ctx *ctx = m->wctx[worker];

	if (!ctx || engine_ctx_healthy(ctx))
		return false;
	pthread_rwlock_unlock(&m->eng_lock);
	int r = pipe_model_failover(m, err);
	pthread_rwlock_rdlock(&m->eng_lock);
	return r == 0 && engine_ctx_healthy(m->wctx[worker]);
}

void pipe_run(struct pipeline *p, int worker, struct pipe_request *req)
{
	struct pipe_model *m = req->model;
	char err[PIPE_ERRLEN] = "";
	int status = 500, r;

	(void)p;
	pthread_rwlock_rdlock(&m->eng_lock);
	r = run_once(m, worker, req, &status, err, sizeof(err));
	/* the request in flight runs again on the CPU (a streamed body was
	 * consumed: it cannot, and is answered with the error) */
	if (r < 0 && !req->streamed && failed_over(m, worker, err)) {
		err[0] = 0;
		status = 500;
		r = run_once(m, worker, req, &status, err, sizeof(err));
	}
	pthread_rwlock_unlock(&m->eng_lock);
	if (r < 0) {
		atomic_fetch_add(&m->failures, 1);
		pipe_request_fail(req, status, "%s", err[0] ? err : strerror(-r));
	}
}
