/* The planner's learnt state on disk: one JSON document per model and peer
 * (see plan.h). dump and apply are pure; write and load do the file I/O. */
#include "plan-impl.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#define STATE_FORMAT "splitd-plan-state"
#define STATE_MAX_BYTES (64u << 20)
#define EFF_MAX 1.5		/* plan_observe_banded's clamp */

static const char *const phase_names[PLAN_PHASE_COUNT] = { "compute", "tx", "wait" };

/* ---- dump ------------------------------------------------------------------ */

static json_t *learnt_json(const struct plan *p)
{
	json_t *ratios = json_array(), *bands = json_array(), *cuts = json_array();
	json_t *o = json_object();

	for (int k = 0; k <= p->n; k++)
		for (int e = 0; e < PLAN_ENC_COUNT; e++) {
			double r = p->ratio[(size_t)k * PLAN_ENC_COUNT + (size_t)e];

			if (r >= 0)
				json_array_append_new(ratios, json_pack("{s:i, s:s, s:f}", "cut", k,
					"encoding", plan_enc_name(e), "ratio", r));
		}
	for (int b = 2; b <= PLAN_MAX_BANDS; b++)
		if (p->band_eff_n[b])
			json_array_append_new(bands, json_pack("{s:i, s:f, s:i}", "bands", b,
				"efficiency", p->band_eff[b], "samples", p->band_eff_n[b]));
	for (int k = 0; k <= p->n; k++)
		for (int b = 2; b <= PLAN_MAX_BANDS; b++) {
			size_t i = (size_t)k * (PLAN_MAX_BANDS + 1) + (size_t)b;

			if (p->cut_eff_n[i])
				json_array_append_new(cuts, json_pack("{s:i, s:i, s:f, s:i}", "cut", k,
					"bands", b, "efficiency", p->cut_eff[i], "samples", p->cut_eff_n[i]));
		}
	json_object_set_new(o, "ratios", ratios);
	json_object_set_new(o, "bands", bands);
	json_object_set_new(o, "cut_bands", cuts);
	return o;
}

int plan_state_dump(const struct plan *p, const struct plan_state_id *id, char **out)
{
	json_t *root, *pw = json_object(), *peer = json_array();
	int rc = -ENOMEM;

	*out = NULL;
	if (!id || !id->model_sha256 || !id->peer)
		return -EINVAL;
	root = json_pack("{s:s, s:i, s:s, s:s, s:i, s:I}", "format", STATE_FORMAT,
			 "version", PLAN_STATE_VERSION, "model_sha256", id->model_sha256,
			 "peer", id->peer, "nodes", p->n, "runs", (json_int_t)p->runs);
	if (!root || !pw || !peer)
		goto out;
	for (int i = 0; p->peer_known && i < p->n; i++)
		json_array_append_new(peer, json_real(p->peer_ms[i]));
	if (p->peer_known)
		json_object_set(root, "peer_ms", peer);
	json_object_set_new(root, "peer_speed", json_real(p->peer_speed));
	json_object_set_new(root, "link", json_pack("{s:o, s:o}",
		"bandwidth_bps", p->link_bandwidth_bps > 0 ? json_real(p->link_bandwidth_bps) : json_null(),
		"rtt_ms", p->link_rtt_ms >= 0 ? json_real(p->link_rtt_ms) : json_null()));
	for (int i = 0; i < PLAN_PHASE_COUNT; i++)
		json_object_set_new(pw, phase_names[i], json_pack("{s:f, s:i}", "mw", p->power_mw[i],
								 "samples", p->power_n[i]));
	json_object_set(root, "power_mw", pw);
	json_object_update_new(root, learnt_json(p));
	json_object_set_new(root, "decode_ms", json_real(p->decode_ms));
	json_object_set_new(root, "peer_decode_ms", json_real(p->peer_decode_ms));
	json_object_set_new(root, "input_bytes", json_integer((json_int_t)p->input_bytes));
	*out = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
	rc = *out ? 0 : -ENOMEM;
out:
	json_decref(root);
	json_decref(pw);
	json_decref(peer);
	return rc;
}

/* ---- apply ----------------------------------------------------------------- */

/* What a file holds, checked whole before any of it reaches the plan. */
struct staged {
	int n;
	uint64_t runs;
	int peer_known;
	double *peer_ms;
	double peer_speed, bw, rtt, decode_ms, peer_decode_ms;
	size_t input_bytes;
	double power_mw[PLAN_PHASE_COUNT];
	int power_n[PLAN_PHASE_COUNT];
	double *ratio;			/* (n + 1) * PLAN_ENC_COUNT, < 0 unknown */
	double band_eff[PLAN_MAX_BANDS + 1];
	int band_eff_n[PLAN_MAX_BANDS + 1];
	double *cut_eff;
	int *cut_eff_n;
	char *err;
	size_t errlen;
};

/* A number of obj[key] in [lo, hi]; null allowed (→ *out untouched) when
 * nullable. */
static int num(struct staged *s, const json_t *obj, const char *where, const char *key,
	       double lo, double hi, int nullable, double *out)
{
	const json_t *v = json_object_get(obj, key);

	if (nullable && (!v || json_is_null(v)))
		return 0;
	if (!json_is_number(v))
		return err_set(-EINVAL, s->err, s->errlen, "%s%s: %s", where, key,
				 v ? "not a number" : "missing");
	*out = json_number_value(v);
	if (!isfinite(*out) || *out < lo || *out > hi)
		return err_set(-EINVAL, s->err, s->errlen, "%s%s: %g is out of range [%g, %g]",
				 where, key, *out, lo, hi);
	return 0;
}

static int count(struct staged *s, const json_t *obj, const char *where, const char *key, int *out)
{
	double d;
	int rc = num(s, obj, where, key, 0, INT_MAX, 0, &d);

	if (rc < 0)
		return rc;
	if (d != floor(d))
		return err_set(-EINVAL, s->err, s->errlen, "%s%s: %g is not a count", where, key, d);
	*out = (int)d;
	return 0;
}

static int identity(struct staged *s, const json_t *root, const struct plan_state_id *id)
{
	const char *fmt = json_string_value(json_object_get(root, "format"));
	const char *sha = json_string_value(json_object_get(root, "model_sha256"));
	const char *peer = json_string_value(json_object_get(root, "peer"));
	double ver, nodes;
	int rc;

	if (!fmt || strcmp(fmt, STATE_FORMAT))
		return err_set(-EINVAL, s->err, s->errlen, "not a splitd plan state (format %s)",
				 fmt ? fmt : "missing");
	if ((rc = num(s, root, "", "version", 0, INT_MAX, 0, &ver)) < 0)
		return rc;
	if (ver != PLAN_STATE_VERSION)
		return err_set(-EPROTO, s->err, s->errlen, "format version %g, this splitd reads %d",
				 ver, PLAN_STATE_VERSION);
	if (!sha || strcasecmp(sha, id->model_sha256))
		return err_set(-ESTALE, s->err, s->errlen, "of model %.64s, this model is %.64s",
				 sha ? sha : "(none)", id->model_sha256);
	if (!peer || strcmp(peer, id->peer))
		return err_set(-ESTALE, s->err, s->errlen, "of peer %.200s, this peer is %.200s",
				 peer ? peer : "(none)", id->peer);
	if ((rc = num(s, root, "", "nodes", 0, INT_MAX, 0, &nodes)) < 0)
		return rc;
	if (nodes != s->n)
		return err_set(-ESTALE, s->err, s->errlen, "%g nodes, the model has %d", nodes, s->n);
	return 0;
}

static int scalars(struct staged *s, const json_t *root)
{
	const json_t *link = json_object_get(root, "link"), *pw = json_object_get(root, "power_mw");
	const json_t *peer = json_object_get(root, "peer_ms");
	double runs, ib;
	int rc;

	if (!json_is_object(link) || !json_is_object(pw))
		return err_set(-EINVAL, s->err, s->errlen, "%s: not an object",
				 json_is_object(link) ? "power_mw" : "link");
	if ((rc = num(s, root, "", "runs", 0, 1e18, 0, &runs)) < 0 ||
	    (rc = num(s, root, "", "peer_speed", 0, 1e6, 0, &s->peer_speed)) < 0 ||
	    (rc = num(s, link, "link.", "bandwidth_bps", 1, 1e15, 1, &s->bw)) < 0 ||
	    (rc = num(s, link, "link.", "rtt_ms", 0, 1e7, 1, &s->rtt)) < 0 ||
	    (rc = num(s, root, "", "decode_ms", 0, 1e7, 0, &s->decode_ms)) < 0 ||
	    (rc = num(s, root, "", "peer_decode_ms", 0, 1e7, 0, &s->peer_decode_ms)) < 0 ||
	    (rc = num(s, root, "", "input_bytes", 0, 1e15, 0, &ib)) < 0)
		return rc;
	s->runs = (uint64_t)runs;
	s->input_bytes = (size_t)ib;
	for (int i = 0; i < PLAN_PHASE_COUNT; i++) {
		const json_t *ph = json_object_get(pw, phase_names[i]);
		char where[32];

		snprintf(where, sizeof(where), "power_mw.%s.", phase_names[i]);
		if (!json_is_object(ph))
			return err_set(-EINVAL, s->err, s->errlen, "%s: not an object", where);
		if ((rc = num(s, ph, where, "mw", 0, 1e9, 0, &s->power_mw[i])) < 0 ||
		    (rc = count(s, ph, where, "samples", &s->power_n[i])) < 0)
			return rc;
	}
	if (!peer)
		return 0;
	if (!json_is_array(peer) || (int)json_array_size(peer) != s->n)
		return err_set(-EINVAL, s->err, s->errlen, "peer_ms: not an array of %d times", s->n);
	for (int i = 0; i < s->n; i++) {
		const json_t *v = json_array_get(peer, (size_t)i);

		s->peer_ms[i] = json_is_number(v) ? json_number_value(v) : -1;
		if (!(s->peer_ms[i] >= 0) || !isfinite(s->peer_ms[i]))
			return err_set(-EINVAL, s->err, s->errlen, "peer_ms[%d]: not a time", i);
	}
	s->peer_known = 1;
	return 0;
}

/* Each element of root[key] an object with a cut (when has_cut), an
 * encoding or a band count, and its value. */
static int learnt_list(struct staged *s, const json_t *root, const char *key)
{
	const json_t *a = json_object_get(root, key), *e;
	int ratios = !strcmp(key, "ratios"), has_cut = strcmp(key, "bands") != 0;
	char where[48];
	size_t i;

	if (!json_is_array(a))
		return err_set(-EINVAL, s->err, s->errlen, "%s: not an array", key);
	json_array_foreach(a, i, e) {
		double v;
		int cut = 0, b = 0, enc, n = 0, rc;

		snprintf(where, sizeof(where), "%s[%zu].", key, i);
		if (!json_is_object(e))
			return err_set(-EINVAL, s->err, s->errlen, "%s: not an object", where);
		if (has_cut && (rc = count(s, e, where, "cut", &cut)) < 0)
			return rc;
		if (cut > s->n)
			return err_set(-EINVAL, s->err, s->errlen, "%scut: %d is beyond %d", where, cut, s->n);
		if (ratios) {
			const char *nm = json_string_value(json_object_get(e, "encoding"));

			if (!nm || plan_enc_parse(nm, &enc) < 0 || enc >= PLAN_ENC_COUNT)
				return err_set(-EINVAL, s->err, s->errlen, "%sencoding: not a cut encoding", where);
			if ((rc = num(s, e, where, "ratio", 0, 16, 0, &v)) < 0)
				return rc;
			s->ratio[(size_t)cut * PLAN_ENC_COUNT + (size_t)enc] = v;
			continue;
		}
		if ((rc = count(s, e, where, "bands", &b)) < 0 ||
		    (rc = num(s, e, where, "efficiency", 0, EFF_MAX, 0, &v)) < 0 ||
		    (rc = count(s, e, where, "samples", &n)) < 0)
			return rc;
		if (b < 2 || b > PLAN_MAX_BANDS || n < 1)
			return err_set(-EINVAL, s->err, s->errlen, "%s: %d bands, %d samples", where, b, n);
		if (has_cut) {
			s->cut_eff[(size_t)cut * (PLAN_MAX_BANDS + 1) + (size_t)b] = v;
			s->cut_eff_n[(size_t)cut * (PLAN_MAX_BANDS + 1) + (size_t)b] = n;
		} else {
			s->band_eff[b] = v;
			s->band_eff_n[b] = n;
		}
	}
	return 0;
}

static void take(struct plan *p, const struct staged *s)
{
	size_t n1 = (size_t)p->n + 1;

	if (s->peer_known) {
		memcpy(p->peer_ms, s->peer_ms, (size_t)p->n * sizeof(double));
		p->peer_known = 1;
	}
	p->peer_speed = s->peer_speed;
	p->link_bandwidth_bps = s->bw;
	p->link_rtt_ms = s->rtt;
	p->decode_ms = s->decode_ms;
	p->peer_decode_ms = s->peer_decode_ms;
	p->input_bytes = s->input_bytes;
	p->runs = s->runs;
	memcpy(p->power_mw, s->power_mw, sizeof(p->power_mw));
	memcpy(p->power_n, s->power_n, sizeof(p->power_n));
	memcpy(p->ratio, s->ratio, n1 * PLAN_ENC_COUNT * sizeof(double));
	memcpy(p->band_eff, s->band_eff, sizeof(p->band_eff));
	memcpy(p->band_eff_n, s->band_eff_n, sizeof(p->band_eff_n));
	memcpy(p->cut_eff, s->cut_eff, n1 * (PLAN_MAX_BANDS + 1) * sizeof(double));
	memcpy(p->cut_eff_n, s->cut_eff_n, n1 * (PLAN_MAX_BANDS + 1) * sizeof(int));
	plan_refresh(p);
	p->dirty = 1;		/* the next plan_update weighs it all */
}

int plan_state_apply(struct plan *p, const struct plan_state_id *id, const char *text,
		     char *err, size_t errlen)
{
	size_t n1 = (size_t)p->n + 1, ncut = n1 * (PLAN_MAX_BANDS + 1);
	struct staged s = { .n = p->n, .bw = 0, .rtt = -1, .err = err, .errlen = errlen };
	json_error_t je;
	json_t *root = NULL;
	int rc = -ENOMEM;

	if (!id || !id->model_sha256 || !id->peer || !text)
		return err_set(-EINVAL, err, errlen, "no identity or text");
	s.peer_ms = calloc(n1, sizeof(double));
	s.ratio = malloc(n1 * PLAN_ENC_COUNT * sizeof(double));
	s.cut_eff = calloc(ncut, sizeof(double));
	s.cut_eff_n = calloc(ncut, sizeof(int));
	if (!s.peer_ms || !s.ratio || !s.cut_eff || !s.cut_eff_n)
		goto out;
	for (size_t i = 0; i < n1 * PLAN_ENC_COUNT; i++)
		s.ratio[i] = -1;
	for (int b = 0; b <= PLAN_MAX_BANDS; b++)
		s.band_eff[b] = 1.0;
	if (!(root = json_loads(text, JSON_REJECT_DUPLICATES, &je))) {
		rc = err_set(-EBADMSG, err, errlen, "not valid JSON (line %d: %s)", je.line, je.text);
		goto out;
	}
	if (!json_is_object(root)) {
		rc = err_set(-EBADMSG, err, errlen, "not a JSON object");
		goto out;
	}
	if ((rc = identity(&s, root, id)) < 0 || (rc = scalars(&s, root)) < 0 ||
	    (rc = learnt_list(&s, root, "ratios")) < 0 || (rc = learnt_list(&s, root, "bands")) < 0 ||
	    (rc = learnt_list(&s, root, "cut_bands")) < 0)
		goto out;
	take(p, &s);
	rc = 0;
out:
	json_decref(root);
	free(s.peer_ms);
	free(s.ratio);
	free(s.cut_eff);
	free(s.cut_eff_n);
	return rc;
}

/* ---- the file -------------------------------------------------------------- */

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

int plan_state_write_temp(const char *path, const char *text, char *tmp, size_t tmplen,
			  char *err, size_t errlen)
{
	int fd, rc;

	if ((size_t)snprintf(tmp, tmplen, "%s.tmp.XXXXXX", path) >= tmplen)
		return err_set(-ENAMETOOLONG, err, errlen, "%s: path too long", path);
	if ((fd = mkstemp(tmp)) < 0)
		return err_set(-errno, err, errlen, "%s: %s", tmp, strerror(errno));
	rc = write_all(fd, text, strlen(text));
	if (rc == 0 && fchmod(fd, 0644) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		return err_set(rc, err, errlen, "%s: %s", tmp, strerror(-rc));
	}
	return 0;
}

int plan_state_write(const char *path, const char *text, char *err, size_t errlen)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int rc, dfd;

	if ((rc = plan_state_write_temp(path, text, tmp, sizeof(tmp), err, errlen)) < 0)
		return rc;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
		return err_set(rc, err, errlen, "%s: rename: %s", path, strerror(-rc));
	}
	/* the rename itself is durable once the directory is */
	snprintf(dir, sizeof(dir), "%s", path);
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int plan_state_save(const struct plan *p, const struct plan_state_id *id, const char *path,
		    char *err, size_t errlen)
{
	char *text = NULL;
	int rc = plan_state_dump(p, id, &text);

	if (rc < 0)
		return err_set(rc, err, errlen, "%s: %s", path, strerror(-rc));
	rc = plan_state_write(path, text, err, errlen);
	free(text);
	return rc;
}

static int read_text(const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_set(-errno, err, errlen, "%s", strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > STATE_MAX_BYTES) {
		rc = err_set(-EINVAL, err, errlen, "not a regular file of at most %u bytes",
			       STATE_MAX_BYTES);
		goto out;
	}
	if (!(buf = malloc((size_t)st.st_size + 1))) {
		rc = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = err_set(r < 0 ? -errno : -EIO, err, errlen, "read: %s",
				       r < 0 ? strerror(errno) : "short");
			goto out;
		}
		got += (size_t)r;
	}
	buf[got] = 0;
	if (strlen(buf) != got) {
		rc = err_set(-EBADMSG, err, errlen, "holds a NUL byte: not text");
		goto out;
	}
	*out = buf;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return rc;
}

int plan_state_load(struct plan *p, const struct plan_state_id *id, const char *path,
		    char *err, size_t errlen)
{
	char *text = NULL;
	int rc = read_text(path, &text, err, errlen);

	if (rc == 0)
		rc = plan_state_apply(p, id, text, err, errlen);
	free(text);
	return rc;
}
