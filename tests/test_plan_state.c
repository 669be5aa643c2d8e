/* The planner's learnt state on disk (plan/plan_state.c): a round trip
 * gives the same predictions, every kind of bad file is refused with its
 * reason and leaves the plan as it was, and a write that stops before its
 * rename leaves the old file readable. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plan-impl.h"
#include "plan_same.h"

#define F32 PLAN_ENC(PLAN_DTYPE_F32, PLAN_CODEC_NONE)
#define F16Z PLAN_ENC(PLAN_DTYPE_F16, PLAN_CODEC_ZSTD)

/* Model A of test_plan.c: 4 nodes, a barrier before node 2 is absent
 * here (all band_ok but node 2) so banded cuts 1 and 2 exist. */
static const double a_local[4] = { 10, 20, 30, 40 };
static const double a_peer[4] = { 1, 2, 3, 4 };
static const size_t a_cut[5] = { 600000, 400000, 200000, 100000, 4000 };
static const int a_band[4] = { 1, 1, 0, 1 };
static const struct plan_state_id a_id = {
	"abcd000000000000000000000000000000000000000000000000000000000001", "http://peer:8081"
};

struct fixture {
	char dir[64], path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/splitd-state-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/m.plan.json", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	DIR *d = opendir(f->dir);
	struct dirent *e;
	char p[512];

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.' || strlen(e->d_name) > 2) {
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			unlink(p);
		}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct plan_config a_config(void)
{
	struct plan_config c;

	plan_config_defaults(&c);
	c.enc_mask = (1u << F32) | (1u << F16Z);
	c.max_bands = 8;
	return c;
}

static struct plan *a_plan(void)
{
	struct plan_config c = a_config();
	struct plan_model m = { 4, a_cut, a_band, a_local, a_peer, 0, NULL };
	struct plan *p = NULL;

	assert_int_equal(plan_new(&m, &c, &p), 0);
	return p;
}

static struct plan_inputs a_inputs(void)
{
	struct plan_inputs in = { .bandwidth_bps = 80e6, .rtt_ms = 2, .input_bytes = 30000,
				  .decode_ms = 5, .peer_decode_ms = 1 };
	return in;
}

/* A plan that has learnt a bit of everything the state keeps (not the
 * robot's own profile: each start measures it anew); k varies it. */
static struct plan *taught(double k)
{
	struct plan *p = a_plan();
	struct plan_inputs in = a_inputs();
	struct plan_run r;

	assert_int_equal(plan_calibrate_peer(p, 20 * k), 0);
	plan_note_link(p, 50e6 * k, 3 * k);
	for (int i = 0; i < 6; i++) {
		plan_run_init(&r, 2, F16Z, 1);
		r.offloaded = 1;
		r.peer_compute_ms = 9 * k;
		r.raw_bytes = 100000;
		r.wire_bytes = (size_t)(30000 * k);
		r.decode_ms = 4 * k;
		r.image_bytes = 20000;
		r.power_mw[PLAN_PHASE_COMPUTE] = 7000 * k;
		r.power_mw[PLAN_PHASE_TX] = 3000 * k;
		assert_int_equal(plan_learn(p, &in, &r), 0);
	}
	/* a banded run at cut 1 x4 that saved nothing: efficiency 0 */
	plan_run_init(&r, 1, F32, 4);
	r.offloaded = 1;
	r.banded_ms = 1000;
	assert_int_equal(plan_learn(p, &in, &r), 0);
	return p;
}

/* Every candidate of a and b predicts the same (17 significant digits
 * round-trip a double exactly). */
static void assert_same_predictions(const struct plan *a, const struct plan *b)
{
	struct plan_inputs in = a_inputs();

	plan_assert_same(a, b, &in);
}

static void test_round_trip(void **state)
{
	struct fixture *f = *state;
	struct plan *a = taught(1), *b = a_plan(), *fresh = a_plan();
	struct plan_inputs fa = { 0 }, fb = { 0 };
	double v, w;
	int la, lb, na, nb;
	char err[256] = "";

	assert_int_equal(plan_state_save(a, &a_id, f->path, err, sizeof(err)), 0);
	/* b differs before (the test would pass for nothing otherwise) */
	plan_request_facts(b, &fb);
	assert_int_equal(fb.input_bytes, 0);
	assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), 0);
	assert_same_predictions(a, b);
	assert_int_equal(plan_runs_learnt(b), 7);
	assert_true(plan_peer_speed(b) == plan_peer_speed(a));
	assert_int_equal(plan_link_bandwidth(b, &v), 0);
	assert_true(v == 50e6);
	assert_int_equal(plan_link_rtt(b, &v), 0);
	assert_true(v == 3);
	for (int ph = 0; ph < PLAN_PHASE_COUNT; ph++) {
		v = plan_power_mw(a, ph, &la);
		w = plan_power_mw(b, ph, &lb);
		assert_true(v == w);
		assert_int_equal(la, lb);
	}
	assert_true(plan_power_mw(b, PLAN_PHASE_COMPUTE, &lb) == 7000);
	assert_true(lb);
	assert_true(plan_band_efficiency(b, 4, &nb) == plan_band_efficiency(a, 4, &na));
	assert_int_equal(na, nb);
	assert_int_equal(nb, 1);
	plan_request_facts(a, &fa);
	plan_request_facts(b, &fb);
	assert_int_equal(fb.input_bytes, 20000);
	assert_true(fa.decode_ms == fb.decode_ms && fa.peer_decode_ms == fb.peer_decode_ms);
	/* the robot's own profile is measured at each start, not restored */
	{
		struct plan_inputs in = a_inputs();
		struct plan_candidate x, y;
		struct plan *c = a_plan();

		assert_int_equal(plan_observe_local(a, 0, 4, 500), 0);
		assert_int_equal(plan_state_save(a, &a_id, f->path, err, sizeof(err)), 0);
		assert_int_equal(plan_state_load(c, &a_id, f->path, err, sizeof(err)), 0);
		assert_int_equal(plan_predict(c, &in, 4, PLAN_ENC_LOCAL, 1, &x), 0);
		assert_int_equal(plan_predict(fresh, &in, 4, PLAN_ENC_LOCAL, 1, &y), 0);
		assert_true(x.total_ms == y.total_ms);
		plan_free(c);
	}
	/* and something was learnt at all: a fresh plan predicts otherwise */
	{
		struct plan_inputs in = a_inputs();
		struct plan_candidate x, y;

		assert_int_equal(plan_predict(fresh, &in, 2, F16Z, 1, &x), 0);
		assert_int_equal(plan_predict(b, &in, 2, F16Z, 1, &y), 0);
		assert_true(x.total_ms != y.total_ms && x.wire_bytes != y.wire_bytes);
	}
	plan_free(a);
	plan_free(b);
	plan_free(fresh);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	fclose(fp);
}

/* text with the first occurrence of from replaced by to */
static char *edited(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *out = malloc(strlen(text) + strlen(to) + 1);

	assert_non_null(at);
	memcpy(out, text, (size_t)(at - text));
	strcpy(out + (at - text), to);
	strcat(out, at + strlen(from));
	return out;
}

struct bad {
	const char *what, *from, *to;	/* edit of the good file; from NULL: whole text */
	int code;
	const char *reason;		/* in err */
};

static void test_bad_files(void **state)
{
	struct fixture *f = *state;
	struct plan *a = taught(1);
	char *good = NULL, err[256];
	char sha[80];
	static const struct bad bad[] = {
		{ "garbage", NULL, "\x01\x02 not json at all", -EBADMSG, "not valid JSON" },
		{ "empty", NULL, "", -EBADMSG, "not valid JSON" },
		{ "array", NULL, "[1, 2]", -EBADMSG, "not a JSON object" },
		{ "other format", "splitd-plan-state", "something-else", -EINVAL, "not a splitd plan state" },
		{ "other version", "\"version\": 1", "\"version\": 2", -EPROTO, "format version 2" },
		{ "other peer", "http://peer:8081", "http://other:8081", -ESTALE, "of peer http://other:8081" },
		{ "other node count", "\"nodes\": 4", "\"nodes\": 5", -ESTALE, "5 nodes, the model has 4" },
		{ "negative power", "\"mw\": 7000", "\"mw\": -7000", -EINVAL, "power_mw.compute.mw" },
		{ "string time", "\"decode_ms\": ", "\"decode_ms\": \"4\", \"x\": ", -EINVAL,
		  "decode_ms: not a number" },
		{ "cut beyond", "\"cut\": 2", "\"cut\": 9", -EINVAL, "cut: 9 is beyond 4" },
		{ "bad encoding", "\"f16+zstd\"", "\"f64\"", -EINVAL, "encoding: not a cut encoding" },
		{ "efficiency too high", "\"efficiency\": 0", "\"efficiency\": 7", -EINVAL, "efficiency: 7" },
		{ "short peer profile", "\"peer_ms\": [", "\"peer_ms\": [1, ", -EINVAL,
		  "peer_ms: not an array of 4" },
	};

	assert_int_equal(plan_state_dump(a, &a_id, &good), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct plan *b = a_plan(), *fresh = a_plan();
		char *text = bad[i].from ? edited(good, bad[i].from, bad[i].to) : strdup(bad[i].to);

		write_file(f->path, text, strlen(text));
		err[0] = 0;
		print_message("%s: ", bad[i].what);
		assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), bad[i].code);
		print_message("%s\n", err);
		assert_non_null(strstr(err, bad[i].reason));
		assert_same_predictions(b, fresh);	/* nothing taken */
		assert_int_equal(plan_runs_learnt(b), 0);
		free(text);
		plan_free(b);
		plan_free(fresh);
	}
	/* truncated at every tenth byte: refused, never half taken */
	for (size_t len = 0; len < strlen(good); len += 10) {
		struct plan *b = a_plan(), *fresh = a_plan();

		write_file(f->path, good, len);
		assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), -EBADMSG);
		assert_same_predictions(b, fresh);
		plan_free(b);
		plan_free(fresh);
	}
	/* a NUL inside */
	{
		struct plan *b = a_plan();
		char *text = strdup(good);

		text[5] = 0;
		write_file(f->path, text, strlen(good));
		assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), -EBADMSG);
		assert_non_null(strstr(err, "NUL"));
		free(text);
		plan_free(b);
	}
	/* another model's: the identity, not the file, says so */
	{
		struct plan *b = a_plan();
		struct plan_state_id other = a_id;

		snprintf(sha, sizeof(sha), "%s", a_id.model_sha256);
		sha[0] = '0';
		other.model_sha256 = sha;
		write_file(f->path, good, strlen(good));
		assert_int_equal(plan_state_load(b, &other, f->path, err, sizeof(err)), -ESTALE);
		assert_non_null(strstr(err, "of model abcd"));
		/* and the right one takes it */
		assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), 0);
		assert_same_predictions(a, b);
		plan_free(b);
	}
	/* none at all */
	{
		struct plan *b = a_plan();
		char none[160];

		snprintf(none, sizeof(none), "%s/none.plan.json", f->dir);
		assert_int_equal(plan_state_load(b, &a_id, none, err, sizeof(err)), -ENOENT);
		assert_int_equal(plan_state_load(b, &a_id, f->dir, err, sizeof(err)), -EINVAL);
		plan_free(b);
	}
	free(good);
	plan_free(a);
}

/* Count the files of dir whose name starts with prefix. */
static int count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)))
		n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
	if (d)
		closedir(d);
	return n;
}

static void test_atomic_write(void **state)
{
	struct fixture *f = *state;
	struct plan *old = taught(1), *newer = taught(2), *b;
	char *text = NULL, tmp[256], err[256], missing[200];
	struct stat st;

	assert_int_equal(plan_state_save(old, &a_id, f->path, err, sizeof(err)), 0);
	assert_int_equal(count_files(f->dir, "m.plan.json"), 1);	/* no temporary left */
	/* a crash after the new state is written, before the rename: the
	 * temporary file is there, complete, and the old file still reads as
	 * the old state */
	assert_int_equal(plan_state_dump(newer, &a_id, &text), 0);
	assert_int_equal(plan_state_write_temp(f->path, text, tmp, sizeof(tmp), err, sizeof(err)), 0);
	assert_int_equal(strncmp(tmp, f->path, strlen(f->path)), 0);
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal((size_t)st.st_size, strlen(text));
	assert_int_equal(count_files(f->dir, "m.plan.json"), 2);
	b = a_plan();
	assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), 0);
	assert_same_predictions(old, b);
	plan_free(b);
	/* the next write replaces the file whole */
	assert_int_equal(plan_state_write(f->path, text, err, sizeof(err)), 0);
	b = a_plan();
	assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), 0);
	assert_same_predictions(newer, b);
	plan_free(b);
	/* a write that cannot happen leaves the file as it was */
	snprintf(missing, sizeof(missing), "%s/no/such/dir/m.plan.json", f->dir);
	assert_int_equal(plan_state_save(old, &a_id, missing, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, missing));
	b = a_plan();
	assert_int_equal(plan_state_load(b, &a_id, f->path, err, sizeof(err)), 0);
	assert_same_predictions(newer, b);
	plan_free(b);
	free(text);
	plan_free(old);
	plan_free(newer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
