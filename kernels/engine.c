/* Public engine API: load, introspection, cuts, contexts, range execution,
 * profiling. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "threadpool.h"

#include "backend-impl.h"
#include "engine-impl.h"

#define ERR(...) (eng_err(err, errlen, __VA_ARGS__), -EINVAL)

struct engine_ctx {
	const struct engine *e;
	void *arena;
	void *bctx;
};

void engine_free(struct engine *e)
{
	if (!e)
		return;
	for (int i = 0; i < e->nn; i++) {
		if (e->be && e->be->release)
			e->be->release(&e->n[i]);
		free(e->n[i].name);
	}
	for (int i = 0; i < e->nt; i++) {
		free(e->t[i].name);
		free(e->t[i].data);
	}
	free(e->t);
	free(e->n);
	free(e->inputs);
	free(e->outputs);
	free(e->hash);
	free(e);
}

static int load(const void *data, size_t len, const struct engine_opts *opts, unsigned flags,
		struct engine **out, char *err, size_t errlen)
{
	struct engine *e;
	size_t maxb = opts && opts->max_model_bytes ? opts->max_model_bytes : (size_t)2 << 30;
	int rc;
	unsigned int mdlen = 32;

	if (err && errlen)
		err[0] = 0;
	*out = NULL;
	if (!data || !len)
		return ERR("empty model");
	if (len > maxb)
		return ERR("model of %zu bytes exceeds the limit of %zu", len, maxb);
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	EVP_Digest(data, len, e->sha256, &mdlen, EVP_sha256(), NULL);
	e->be = backend_find(opts ? opts->backend : NULL);
	if (!e->be) {
		const char *why = backend_load_error(opts->backend);
		rc = why ? ERR("backend '%s' did not load: %s", opts->backend, why)
			 : ERR("backend '%s' is not built in", opts->backend);
		goto out;
	}
	e->threads = opts && opts->threads > 0 ? opts->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (e->threads < 1)
		e->threads = 1;
	if (e->threads > TPOOL_MAX_THREADS)	/* one inference on more is not worth it */
		e->threads = TPOOL_MAX_THREADS;
	if ((rc = eng_parse_onnx(e, data, len, opts, flags, err, errlen)))
		goto out;
	for (int i = 0; i < e->nt; i++)
		if (e->t[i].is_const)
			e->weight_bytes += e->t[i].bytes;
	if ((rc = eng_finalize(e, opts, err, errlen)))
		goto out;
	*out = e;
	rc = 0;
out:
	if (rc == -ENOMEM && err && errlen && !err[0])
		eng_err(err, errlen, "out of memory while loading the model");
	if (rc)
		engine_free(e);
#ifdef __GLIBC__
	/* the unpacked message and folded-away constants were many small
	 * blocks: hand their pages back rather than keep them for later */
	malloc_trim(0);
#endif
	return rc;
}

int engine_load_buffer(const void *data, size_t len, const struct engine_opts *opts,
		       struct engine **out, char *err, size_t errlen)
{
	return load(data, len, opts, 0, out, err, errlen);
}

/* The file is mapped, not read: the parser drops its pages as the weights
 * are copied out, so a model costs one copy of its weights while loading.
 * Replace a model file by rename, not by rewriting it in place: a mapped file
 * truncated under the loader faults. */
int engine_load(const char *path, const struct engine_opts *opts, struct engine **out,
		char *err, size_t errlen)
{
	size_t maxb = opts && opts->max_model_bytes ? opts->max_model_bytes : (size_t)2 << 30;
	struct stat st;
	void *map = MAP_FAILED;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		eng_err(err, errlen, "open %s: %s", path, strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		rc = ERR("%s is not a regular file", path);
		goto out;
	}
	if ((size_t)st.st_size > maxb) {
		rc = ERR("%s: %lld bytes exceeds the model size limit of %zu", path,
			 (long long)st.st_size, maxb);
		goto out;
	}
	if (!st.st_size) {
		rc = ERR("%s is empty", path);
		goto out;
	}
	map = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		eng_err(err, errlen, "map %s: %s", path, strerror(errno));
		goto out;
	}
	rc = load(map, st.st_size, opts, ENG_PARSE_DROP_SOURCE, out, err, errlen);
out:
	if (map != MAP_FAILED)
		munmap(map, st.st_size);
	close(fd);
	return rc;
}

const uint8_t *engine_sha256(const struct engine *e)
{
	return e->sha256;
}

const char *engine_backend_name(const struct engine *e)
{
	return e->be->name;
}

int engine_ctx_healthy(const struct engine_ctx *c)
{
	return !c->e->be->healthy || c->e->be->healthy(c->bctx);
}

int engine_num_nodes(const struct engine *e)
{
	return e->nn;
}

int engine_node_info(const struct engine *e, int i, struct engine_node_info *out)
{
	if (i < 0 || i >= e->nn)
		return -EINVAL;
	const struct eng_node *n = &e->n[i];
	out->name = n->name;
	out->op = n->op;
	out->macs = n->macs;
	out->out_bytes = 0;
	for (int j = 0; j < n->n_out; j++)
		if (n->out[j] >= 0)
			out->out_bytes += e->t[n->out[j]].bytes;
	out->band_ok = n->band_ok;
	return 0;
}

int engine_node_rows(const struct engine *e, int i, struct engine_node_rows *out)
{
	if (i < 0 || i >= e->nn)
		return -EINVAL;
	const struct eng_node *n = &e->n[i];
	out->kernel_h = n->sp.kernel_h;
	out->stride_h = n->sp.stride_h;
	out->dil_h = n->sp.dil_h;
	out->pad_top = n->sp.pad_top;
	out->pad_bottom = n->sp.pad_bottom;
	out->n_inputs = 0;
	for (int j = 0; j < n->n_in && out->n_inputs < ENGINE_NODE_MAX_IO; j++)
		if (n->in[j] >= 0 && !e->t[n->in[j]].is_const)
			out->inputs[out->n_inputs++] = e->t[n->in[j]].name;
	out->n_outputs = 0;
	for (int j = 0; j < n->n_out && out->n_outputs < ENGINE_NODE_MAX_IO; j++)
		if (n->out[j] >= 0)
			out->outputs[out->n_outputs++] = e->t[n->out[j]].name;
	return 0;
}

static void value_info(const struct eng_tensor *t, struct engine_value_info *out)
{
	out->name = t->name;
	out->dtype = t->dtype;
	out->ndim = t->ndim;
	memcpy(out->shape, t->shape, sizeof(out->shape));
	out->bytes = t->bytes;
}

int engine_num_inputs(const struct engine *e)
{
	return e->n_inputs;
}

int engine_num_outputs(const struct engine *e)
{
	return e->n_outputs;
}

int engine_input_info(const struct engine *e, int i, struct engine_value_info *out)
{
	if (i < 0 || i >= e->n_inputs)
		return -EINVAL;
	value_info(&e->t[e->inputs[i]], out);
	return 0;
}

int engine_output_info(const struct engine *e, int i, struct engine_value_info *out)
{
	if (i < 0 || i >= e->n_outputs)
		return -EINVAL;
	value_info(&e->t[e->outputs[i]], out);
	return 0;
}

static int in_cut(const struct engine *e, const struct eng_tensor *t, int k)
{
	if (t->is_const || (t->producer < 0 && !t->is_input))
		return 0;
	return t->producer < k && t->last_use >= k;
}

int engine_cut_count(const struct engine *e, int k)
{
	int c = 0;
	if (k < 0 || k > e->nn)
		return -EINVAL;
	for (int i = 0; i < e->nt; i++)
		c += in_cut(e, &e->t[i], k);
	return c;
}

int engine_cut_tensor(const struct engine *e, int k, int j, struct engine_value_info *out)
{
	if (k < 0 || k > e->nn)
		return -EINVAL;
	for (int i = 0; i < e->nt; i++)
		if (in_cut(e, &e->t[i], k) && j-- == 0) {
			value_info(&e->t[i], out);
			return 0;
		}
	return -EINVAL;
}

size_t engine_cut_bytes(const struct engine *e, int k)
{
	size_t b = 0;
	if (k < 0 || k > e->nn)
		return 0;
	for (int i = 0; i < e->nt; i++)
		if (in_cut(e, &e->t[i], k))
			b += e->t[i].bytes;
	return b;
}

size_t engine_arena_bytes(const struct engine *e)
{
	return e->arena_bytes;
}

size_t engine_weight_bytes(const struct engine *e)
{
	return e->weight_bytes;
}

int engine_ctx_new(const struct engine *e, struct engine_ctx **out)
{
	struct engine_ctx *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->e = e;
	if ((rc = e->be->ctx_new(e, &c->bctx)))
		goto out;
	size_t sz = e->arena_bytes ? e->arena_bytes : 64;
	if (e->be->buf_alloc)
		c->arena = e->be->buf_alloc(c->bctx, sz);
	else if (posix_memalign(&c->arena, 64, sz))
		c->arena = NULL;
	if (!c->arena) {
		rc = -ENOMEM;
		goto out;
	}
	*out = c;
	return 0;
out:
	engine_ctx_free(c);
	return rc;
}

void engine_ctx_free(struct engine_ctx *c)
{
	if (!c)
		return;
	if (c->arena) {
		if (c->e->be->buf_free)
			c->e->be->buf_free(c->bctx, c->arena);
		else
			free(c->arena);
	}
	if (c->bctx)
		c->e->be->ctx_free(c->bctx);
	free(c);
}

static void *tensor_data(struct engine_ctx *c, const struct eng_tensor *t)
{
	return t->is_const ? t->data : (char *)c->arena + t->offset;
}

int engine_ctx_set(struct engine_ctx *c, const char *name, const struct tensor_view *v,
		   char *err, size_t errlen)
{
	const struct engine *e = c->e;
	int ti = eng_tensor_find(e, name);

	if (ti < 0)
		return ERR("no tensor named '%s'", name);
	const struct eng_tensor *t = &e->t[ti];
	if (t->is_const || (t->producer < 0 && !t->is_input))
		return ERR("tensor '%s' is not an activation of this engine", name);
	if (v->dtype != t->dtype || v->ndim != t->ndim)
		return ERR("tensor '%s': got dtype %d rank %d, the engine expects dtype %d rank %d",
			   name, v->dtype, v->ndim, t->dtype, t->ndim);
	for (int i = 0; i < t->ndim; i++)
		if (v->shape[i] != t->shape[i])
			return ERR("tensor '%s': dimension %d is %lld, the engine expects %lld", name, i,
				   (long long)v->shape[i], (long long)t->shape[i]);
	if (e->be->upload)
		return e->be->upload(c->bctx, tensor_data(c, t), v->data, t->bytes);
	memcpy(tensor_data(c, t), v->data, t->bytes);
	return 0;
}

int engine_ctx_get(struct engine_ctx *c, const char *name, struct tensor_view *out)
{
	int ti = eng_tensor_find(c->e, name);
	if (ti < 0)
		return -ENOENT;
	const struct eng_tensor *t = &c->e->t[ti];
	if (!t->is_const && t->producer < 0 && !t->is_input)
		return -ENOENT;
	*out = eng_view(t, tensor_data(c, t));
	return 0;
}

static int run_node(struct engine_ctx *c, int i)
{
	const struct engine *e = c->e;
	const struct eng_node *n = &e->n[i];
	struct tensor_view in[ENG_MAX_IO], out[ENG_MAX_IO];

	for (int j = 0; j < n->n_in; j++) {
		if (n->in[j] < 0) {
			memset(&in[j], 0, sizeof(in[j]));
			continue;
		}
		const struct eng_tensor *t = &e->t[n->in[j]];
		in[j] = eng_view(t, tensor_data(c, t));
	}
	for (int j = 0; j < n->n_out; j++) {
		if (n->out[j] < 0) {
			memset(&out[j], 0, sizeof(out[j]));
			continue;
		}
		const struct eng_tensor *t = &e->t[n->out[j]];
		out[j] = eng_view(t, tensor_data(c, t));
	}
	return e->be->run(c->bctx, e, n, in, out);
}

int engine_run_range(struct engine_ctx *c, int first, int last)
{
	const struct engine *e = c->e;
	int rc;

	if (first < 0 || last > e->nn || first > last)
		return -EINVAL;
	for (int i = first; i < last; i++)
		if ((rc = run_node(c, i)))
			return rc;
	if (e->be->synchronize)
		return e->be->synchronize(c->bctx);
	return 0;
}

int engine_run(struct engine_ctx *c)
{
	return engine_run_range(c, 0, c->e->nn);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int profile(const struct engine *e, int runs, int hot, double *node_ms)
{
	struct engine_ctx *c = NULL;
	double *t = NULL, *col = NULL;
	int rc;

	if (runs < 1)
		runs = 1;
	if ((rc = engine_ctx_new(e, &c)))
		return rc;
	t = calloc((size_t)runs * (e->nn + 1), sizeof(double));
	col = calloc(runs + 1, sizeof(double));
	if (!t || !col) {
		rc = -ENOMEM;
		goto out;
	}
	memset(c->arena, 0, e->arena_bytes);
	if ((rc = engine_run(c)))
		goto out;
	for (int r = 0; r < runs; r++)
		for (int i = 0; i < e->nn; i++) {
			if (hot && (rc = run_node(c, i)))
				goto out;
			double t0 = now_ms();
			if ((rc = run_node(c, i)))
				goto out;
			if (e->be->synchronize && (rc = e->be->synchronize(c->bctx)))
				goto out;
			t[(size_t)i * runs + r] = now_ms() - t0;
		}
	for (int i = 0; i < e->nn; i++) {
		memcpy(col, &t[(size_t)i * runs], runs * sizeof(double));
		qsort(col, runs, sizeof(double), cmp_double);
		node_ms[i] = runs % 2 ? col[runs / 2] : (col[runs / 2 - 1] + col[runs / 2]) / 2;
	}
out:
	free(t);
	free(col);
	engine_ctx_free(c);
	return rc;
}

int engine_profile(const struct engine *e, int runs, double *node_ms)
{
	return profile(e, runs, 0, node_ms);
}

int engine_profile_hot(const struct engine *e, int runs, double *node_ms)
{
	return profile(e, runs, 1, node_ms);
}
