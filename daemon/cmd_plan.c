/* splitd plan: the split table ("dilemma" table) of a model on a link.
 * Loads and profiles the model locally, takes the peer's profile from a file
 * (or assumes a speed-up), and prints every cut with its bytes, local,
 * transfer and remote time, total, robot energy, the banded options, and the
 * choice of the planner for the policy. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "err.h"
#include "commands.h"
#include "engine.h"
#include "plan.h"

struct plan_cli {
	const char *model, *peer_profile, *image;
	double bandwidth_bps, rtt_ms, peer_speedup, slo_ms, decode_ms, peer_decode_ms;
	double power_mw[PLAN_PHASE_COUNT];
	int have_power;
	long input_bytes;
	int bands, threads, runs, json, peer_streams;
	double band_overhead;
	enum plan_policy policy;
	unsigned enc_mask;
};

/* "137M", "400Mbit", "20Mbps", "1.5G", "800k", "12.5MB/s" (bytes): bits/s */
static int parse_rate(const char *s, double *bps)
{
	char *end;
	double v, mult = 1;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v > 0) || !isfinite(v))
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': mult = 1e3; end++; break;
	case 'm': case 'M': mult = 1e6; end++; break;
	case 'g': case 'G': mult = 1e9; end++; break;
	default: break;
	}
	if (!strcmp(end, "B/s") || !strcmp(end, "Bps"))
		mult *= 8;
	else if (*end && strcasecmp(end, "bit") && strcasecmp(end, "bps") &&
		 strcasecmp(end, "bit/s") && strcasecmp(end, "b/s"))
		return -EINVAL;
	*bps = v * mult;
	return 0;
}

static int parse_double(const char *s, double lo, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo) || !isfinite(v))
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_encodings(const char *s, unsigned *mask)
{
	char buf[256], *tok, *save = NULL;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	*mask = 0;
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int e;

		if (plan_enc_parse(tok, &e) < 0 || e >= PLAN_ENC_COUNT)
			return -EINVAL;
		*mask |= 1u << e;
	}
	return *mask ? 0 : -EINVAL;
}

/* A number macro as text, for messages that quote a limit. */
#define BANDS_TEXT(n) BANDS_TEXT_(n)
#define BANDS_TEXT_(n) #n

static int usage_error(const char *what, const char *arg)
{
	fprintf(stderr, "splitd plan: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
	return 2;
}

static int load_peer_profile(const char *path, const struct engine *e, double *node_ms,
			     int n, char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je), *sha, *arr;
	char hex[65];
	const uint8_t *mine = engine_sha256(e);
	int rc = -EINVAL;

	if (!root) {
		return err_set(-EINVAL, err, errlen, "%s:%d: %s", path, je.line, je.text);
	}
	sha = json_object_get(root, "model_sha256");
	arr = json_object_get(root, "node_ms");
	if (!json_is_array(arr)) {
		snprintf(err, errlen, "%s: no \"node_ms\" array", path);
		goto out;
	}
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mine[i]);
	if (sha && (!json_is_string(sha) || strcasecmp(json_string_value(sha), hex))) {
		snprintf(err, errlen, "%s: profile of model %s, this model is %s", path,
			 json_is_string(sha) ? json_string_value(sha) : "?", hex);
		goto out;
	}
	if ((int)json_array_size(arr) != n) {
		snprintf(err, errlen, "%s: %zu node times, the model has %d nodes", path,
			 json_array_size(arr), n);
		goto out;
	}
	for (int i = 0; i < n; i++) {
		json_t *v = json_array_get(arr, (size_t)i);

		if (!json_is_number(v) || !(json_number_value(v) >= 0)) {
			snprintf(err, errlen, "%s: node_ms[%d] is not a non-negative number", path, i);
			goto out;
		}
		node_ms[i] = json_number_value(v);
	}
	rc = 0;
out:
	json_decref(root);
	return rc;
}

/* An integer in [lo, hi], written as a number (1e3 and 64.0 pass, as
 * they did when these were read as doubles). */
static int parse_whole(const char *s, double lo, double hi, int *out)
{
	double d;

	if (parse_double(s, lo, &d) < 0 || d > hi || d != floor(d))
		return -EINVAL;
	*out = (int)d;
	return 0;
}

/* The long options without a short letter. */
enum plan_cli_opt {
	O_BW = 256, O_RTT, O_PEER, O_SPEEDUP, O_POLICY, O_SLO, O_BANDS, O_THREADS, O_JSON, O_RUNS, O_IMAGE,
	O_INPUT_BYTES, O_ENC, O_DECODE, O_PEER_DECODE, O_POWER, O_BAND_OVERHEAD, O_PEER_STREAMS, O_PEER_WAITS
};

/* One option c with its value arg (NULL for flags): 0, or the exit status
 * (2) after one line. */
static int one_option(int c, const char *arg, struct plan_cli *o)
{
	double d;

	switch (c) {
	case 'm': o->model = arg; break;
	case O_BW:
		if (parse_rate(arg, &o->bandwidth_bps) < 0)
			return usage_error("--bandwidth wants a rate like 137M, 400Mbit or 12.5MB/s", arg);
		break;
	case O_RTT:
		if (parse_double(arg, 0, &o->rtt_ms) < 0)
			return usage_error("--rtt-ms wants milliseconds >= 0", arg);
		break;
	case O_PEER: o->peer_profile = arg; break;
	case O_SPEEDUP:
		if (parse_double(arg, 1e-6, &o->peer_speedup) < 0)
			return usage_error("--peer-speedup wants a factor > 0", arg);
		break;
	case O_POLICY:
		if (plan_policy_parse(arg, &o->policy) < 0)
			return usage_error("--policy is one of " PLAN_POLICY_NAMES, arg);
		break;
	case O_SLO:
		if (parse_double(arg, 1e-6, &o->slo_ms) < 0)
			return usage_error("--slo-ms wants milliseconds > 0", arg);
		break;
	case O_BANDS:
		if (parse_whole(arg, 1, PLAN_MAX_BANDS, &o->bands) < 0)
			return usage_error("--bands wants an integer 1.." BANDS_TEXT(PLAN_MAX_BANDS), arg);
		break;
	case O_BAND_OVERHEAD:
		if (parse_double(arg, 0, &o->band_overhead) < 0 || o->band_overhead > 10)
			return usage_error("--band-overhead wants a fraction 0..10 of the compute", arg);
		break;
	case O_PEER_STREAMS:
		o->peer_streams = 1;
		break;
	case O_PEER_WAITS:
		o->peer_streams = 0;
		break;
	case O_THREADS:
		if (parse_whole(arg, 0, 1024, &o->threads) < 0)
			return usage_error("--threads wants an integer >= 0", arg);
		break;
	case O_RUNS:
		if (parse_whole(arg, 1, 1000, &o->runs) < 0)
			return usage_error("--runs wants an integer 1..1000", arg);
		break;
	case O_IMAGE: o->image = arg; break;
	case O_INPUT_BYTES:
		if (parse_double(arg, 0, &d) < 0 || d != floor(d))
			return usage_error("--input-bytes wants a byte count", arg);
		o->input_bytes = (long)d;
		break;
	case O_ENC:
		if (parse_encodings(arg, &o->enc_mask) < 0)
			return usage_error("--encodings wants a list like f32,f16,i8,f16+zstd", arg);
		break;
	case O_DECODE:
		if (parse_double(arg, 0, &o->decode_ms) < 0)
			return usage_error("--decode-ms wants milliseconds >= 0", arg);
		break;
	case O_PEER_DECODE:
		if (parse_double(arg, 0, &o->peer_decode_ms) < 0)
			return usage_error("--peer-decode-ms wants milliseconds >= 0", arg);
		break;
	case O_POWER:
		if (sscanf(arg, "%lf,%lf,%lf", &o->power_mw[0], &o->power_mw[1],
			   &o->power_mw[2]) != 3 || !(o->power_mw[0] >= 0) ||
		    !(o->power_mw[1] >= 0) || !(o->power_mw[2] >= 0))
			return usage_error("--power-mw wants COMPUTE,TX,WAIT in mW", arg);
		o->have_power = 1;
		break;
	case O_JSON: o->json = 1; break;
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct plan_cli *o)
{
	static const struct option opts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "bandwidth", required_argument, NULL, O_BW },
		{ "rtt-ms", required_argument, NULL, O_RTT },
		{ "peer-profile", required_argument, NULL, O_PEER },
		{ "peer-speedup", required_argument, NULL, O_SPEEDUP },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "slo-ms", required_argument, NULL, O_SLO },
		{ "bands", required_argument, NULL, O_BANDS },
		{ "band-overhead", required_argument, NULL, O_BAND_OVERHEAD },
		{ "peer-streams", no_argument, NULL, O_PEER_STREAMS },	/* the default */
		{ "peer-waits", no_argument, NULL, O_PEER_WAITS },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "runs", required_argument, NULL, O_RUNS },
		{ "image", required_argument, NULL, O_IMAGE },
		{ "input-bytes", required_argument, NULL, O_INPUT_BYTES },
		{ "encodings", required_argument, NULL, O_ENC },
		{ "decode-ms", required_argument, NULL, O_DECODE },
		{ "peer-decode-ms", required_argument, NULL, O_PEER_DECODE },
		{ "power-mw", required_argument, NULL, O_POWER },
		{ "json", no_argument, NULL, O_JSON },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:", opts, NULL)) != -1) {
		if (c == ':')
			return usage_error("option needs a value", argv[optind - 1]);
		if (c == '?')
			return usage_error("unknown option", argv[optind - 1]);
		if ((r = one_option(c, optarg, o)) != 0)
			return r;
	}
	if (optind < argc)
		return usage_error("unexpected argument", argv[optind]);
	if (!o->model)
		return usage_error("-m MODEL is required", NULL);
	if (o->policy == PLAN_POLICY_ENERGY_SLO && !(o->slo_ms > 0))
		return usage_error("--policy energy-slo needs --slo-ms", NULL);
	if (o->slo_ms > 0 && o->policy == PLAN_POLICY_LATENCY && o->slo_ms > 0)
		o->policy = PLAN_POLICY_ENERGY_SLO;	/* --slo-ms alone means energy under it */
	return 0;
}

static int same(const struct plan_candidate *a, const struct plan_candidate *b)
{
	return a->cut == b->cut && a->enc == b->enc && a->bands == b->bands;
}

static double objective(enum plan_policy pol, const struct plan_candidate *c)
{
	if (pol == PLAN_POLICY_LATENCY)
		return c->total_ms;
	if (pol == PLAN_POLICY_ENERGY_SLO && !c->meets_slo)
		return 1e30 + c->total_ms;
	return c->energy_uj;
}

/* Best plain and best banded candidate of each cut, by the policy. */
static void per_cut_best(const struct plan_candidate *v, int n, int cut, enum plan_policy pol,
			 int *plain, int *banded)
{
	*plain = *banded = -1;
	for (int i = 0; i < n; i++) {
		int *slot;

		if (v[i].cut != cut)
			continue;
		slot = v[i].bands > 1 ? banded : plain;
		if (*slot < 0 || objective(pol, &v[i]) < objective(pol, &v[*slot]))
			*slot = i;
	}
}

static json_t *cand_json(const struct plan_candidate *c, const struct engine *e)
{
	json_t *o = json_pack("{s:i, s:s, s:i, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:b}",
			      "cut", c->cut, "encoding", plan_enc_name(c->enc), "bands", c->bands,
			      "bytes", (json_int_t)c->raw_bytes, "wire_bytes", (json_int_t)c->wire_bytes,
			      "local_ms", c->local_ms, "transfer_ms", c->transfer_ms,
			      "remote_ms", c->remote_ms, "net_ms", c->net_ms,
			      "total_ms", c->total_ms, "robot_j", c->energy_uj / 1e6,
			      "meets_slo", c->meets_slo);

	if (o && c->enc != PLAN_ENC_LOCAL)
		json_object_set_new(o, "return_bytes", json_integer((json_int_t)c->return_bytes));
	if (o && c->bands > 1) {
		json_object_set_new(o, "overlap_saving_ms", json_real(c->overlap_saving_ms));
		json_object_set_new(o, "overlap_bound_ms", json_real(c->overlap_bound_ms));
	}
	if (o && c->ratio_assumed)
		json_object_set_new(o, "compression_ratio", json_string("assumed 1"));
	(void)e;
	return o;
}

static void print_row(const struct plan_candidate *c, int mark, const char *label)
{
	printf("%c %-22s %-6s %10zu %10zu %8.2f %8.2f %8.2f %8.2f %7.3f",
	       mark ? '*' : ' ', label, plan_enc_name(c->enc), c->raw_bytes, c->wire_bytes,
	       c->local_ms, c->transfer_ms, c->remote_ms, c->total_ms, c->energy_uj / 1e6);
}

/* What the table is printed from. */
struct table {
	const struct plan_cli *o;
	const struct engine *e;
	const struct plan *p;
	const struct plan_config *pc;
	const struct plan_inputs *in;
	const struct plan_candidate *v;
	int n, nc, best;
	const char *peer_src, *input_src;
};

static int print_json(const struct table *t)
{
	const struct plan_cli *o = t->o;
	const struct engine *e = t->e;
	const struct plan_candidate *v = t->v;
	int n = t->n, nc = t->nc, best = t->best, k;
	const struct plan_config *pc = t->pc;
	const struct plan_inputs *in = t->in;
	const char *peer_src = t->peer_src, *input_src = t->input_src;
	int rc;

	json_t *root = json_object(), *cuts = json_array();

	json_object_set_new(root, "model", json_string(o->model));
	json_object_set_new(root, "policy", json_string(plan_policy_name(o->policy)));
	if (o->slo_ms > 0)
		json_object_set_new(root, "slo_ms", json_real(o->slo_ms));
	json_object_set_new(root, "bandwidth_bps", json_real(o->bandwidth_bps));
	json_object_set_new(root, "rtt_ms", json_real(o->rtt_ms));
	json_object_set_new(root, "peer_profile", json_string(peer_src));
	json_object_set_new(root, "input_bytes", json_integer((json_int_t)in->input_bytes));
	json_object_set_new(root, "input_bytes_source", json_string(input_src));
	json_object_set_new(root, "power_mw", json_pack("{s:f, s:f, s:f, s:s}",
		"compute", pc->power_default_mw[0], "tx", pc->power_default_mw[1],
		"wait", pc->power_default_mw[2], "source", o->have_power ? "given" : "default"));
	for (k = 0; k <= n; k++) {
		json_t *row, *all = json_array(), *tens = json_array();
		int pl, bd;

		per_cut_best(v, nc, k, o->policy, &pl, &bd);
		if (pl < 0)
			continue;
		row = cand_json(&v[pl], e);
		for (int j = 0; j < engine_cut_count(e, k); j++) {
			struct engine_value_info vi;

			if (engine_cut_tensor(e, k, j, &vi) == 0)
				json_array_append_new(tens, json_string(vi.name));
		}
		json_object_set_new(row, "tensors", tens);
		if (k < n) {
			struct engine_node_info ni;

			if (engine_node_info(e, k, &ni) == 0)
				json_object_set_new(row, "before", json_pack("{s:s, s:s}",
					"node", ni.name, "op", ni.op));
		}
		for (int i = 0; i < nc; i++)
			if (v[i].cut == k)
				json_array_append_new(all, cand_json(&v[i], e));
		json_object_set_new(row, "options", all);
		if (bd >= 0)
			json_object_set_new(row, "banded", cand_json(&v[bd], e));
		json_array_append_new(cuts, row);
	}
	json_object_set_new(root, "cuts", cuts);
	json_object_set_new(root, "choice", cand_json(&v[best], e));
	rc = json_dumpf(root, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(6)) < 0 ? -EIO : 0;
	if (rc == 0)
		putchar('\n');
	json_decref(root);
	return rc;
}

/* Cut 0's row of the image as received, first; when it is cut 0's best,
 * the best tensor row of cut 0 is shown after it: that one's index. */
static int image_rows(const struct table *t, int pl)
{
	const struct plan_candidate *v = t->v;

	for (int i = 0; i < t->nc; i++) {
		int tr = -1;

		if (v[i].cut != 0 || v[i].enc != PLAN_ENC_INPUT)
			continue;
		print_row(&v[i], same(&v[i], &v[t->best]), "0 image as received");
		printf(" |\n");
		if (pl != i)
			continue;
		for (int j = 0; j < t->nc; j++)
			if (v[j].cut == 0 && v[j].enc != PLAN_ENC_INPUT && v[j].bands == 1 &&
			    (tr < 0 || objective(t->o->policy, &v[j]) < objective(t->o->policy, &v[tr])))
				tr = j;
		pl = tr;
	}
	return pl;
}

static void print_text(const struct table *t)
{
	const struct plan_cli *o = t->o;
	const struct engine *e = t->e;
	const struct plan_candidate *v = t->v;
	int n = t->n, nc = t->nc, best = t->best, k;
	const struct plan *p = t->p;
	const struct plan_inputs *in = t->in;
	const char *peer_src = t->peer_src, *input_src = t->input_src;
	int lp, tp, wp;

	printf("model %s: %d nodes, profiled here (%d runs, median per node)\n",
	       o->model, n, o->runs);
	printf("link %.1f Mbit/s, rtt %.2f ms; peer %s; policy %s", o->bandwidth_bps / 1e6,
	       o->rtt_ms, peer_src, plan_policy_name(o->policy));
	if (o->slo_ms > 0)
		printf(" (slo %.1f ms)", o->slo_ms);
	printf("\npower compute %.1f W, tx %.1f W, wait %.1f W (%s); image %zu B (%s)\n",
	       plan_power_mw(p, PLAN_PHASE_COMPUTE, &lp) / 1e3,
	       plan_power_mw(p, PLAN_PHASE_TX, &tp) / 1e3,
	       plan_power_mw(p, PLAN_PHASE_WAIT, &wp) / 1e3,
	       o->have_power ? "given" : "default", in->input_bytes, input_src);
	printf("\n  %-22s %-6s %10s %10s %8s %8s %8s %8s %7s | %s\n", "cut (before node)",
	       "enc", "bytes", "wire", "local", "xfer", "remote", "total", "J",
	       "banded: B  total  saving/bound ms");
	for (k = 0; k <= n; k++) {
		int pl, bd;
		char label[64];

		per_cut_best(v, nc, k, o->policy, &pl, &bd);
		if (k == 0)
			pl = image_rows(t, pl);
		if (pl < 0)
			continue;
		if (k == n) {
			snprintf(label, sizeof(label), "%d all-local", k);
		} else {
			struct engine_node_info ni;

			if (engine_node_info(e, k, &ni) == 0)
				snprintf(label, sizeof(label), "%d %.18s", k, ni.op);
			else
				snprintf(label, sizeof(label), "%d", k);
		}
		print_row(&v[pl], same(&v[pl], &v[best]), label);
		if (bd >= 0)
			printf(" |%c%2d %7.2f %6.2f/%.2f\n", same(&v[bd], &v[best]) ? '*' : ' ',
			       v[bd].bands, v[bd].total_ms, v[bd].overlap_saving_ms,
			       v[bd].overlap_bound_ms);
		else
			printf(" |\n");
	}
	{
		char what[96];
		const struct plan_candidate *b = &v[best];

		if (b->cut == n)
			snprintf(what, sizeof(what), "all-local");
		else if (b->enc == PLAN_ENC_INPUT)
			snprintf(what, sizeof(what), "send the image as received (cut 0)");
		else
			snprintf(what, sizeof(what), "cut %d, %s%s%.0d%s", b->cut,
				 plan_enc_name(b->enc), b->bands > 1 ? ", " : "",
				 b->bands > 1 ? b->bands : 0, b->bands > 1 ? " bands" : "");
		printf("\nchoice (%s): %s: %.2f ms, %.3f J per inference%s\n",
		       plan_policy_name(o->policy), what, b->total_ms, b->energy_uj / 1e6,
		       b->ratio_assumed ? " (compression ratio assumed 1)" : "");
		printf("rows show each cut's best encoding; J = robot joules; * = choice\n");
	}
}

/* The received image's size the table assumes, and where it comes from. */
static int input_size(const struct plan_cli *o, const struct engine *e, struct plan_inputs *in,
		      char *src, size_t srclen)
{
	struct stat st;

	if (o->image) {
		if (stat(o->image, &st) < 0) {
			fprintf(stderr, "splitd plan: --image %s: %s\n", o->image, strerror(errno));
			return -errno;
		}
		in->input_bytes = (size_t)st.st_size;
		snprintf(src, srclen, "size of %s", o->image);
	} else if (o->input_bytes >= 0) {
		in->input_bytes = (size_t)o->input_bytes;
		snprintf(src, srclen, "given");
	} else {
		/* a JPEG of a camera frame is about 1/20 of its float32 tensor */
		in->input_bytes = engine_cut_bytes(e, 0) / 20;
		snprintf(src, srclen, "assumed 1/20 of the float32 input");
	}
	return 0;
}

int cmd_plan(int argc, char **argv)
{
	struct plan_cli o = {
		.bandwidth_bps = 137e6, .rtt_ms = 2, .peer_speedup = 10, .bands = 8, .band_overhead = 0.25,
		.runs = 5, .input_bytes = -1, .policy = PLAN_POLICY_LATENCY, .peer_streams = 1,
	};
	struct engine_opts eo = { 0 };
	struct engine *e = NULL;
	struct plan *p = NULL;
	struct plan_config pc;
	struct plan_inputs in = { 0 };
	struct plan_candidate *v = NULL;
	double *local = NULL, *peer = NULL;
	char err[512] = "", peer_src[128], input_src[64];
	int rc, n, nc = 0, best = -1, ret = 1;

	rc = parse_args(argc, argv, &o);
	if (rc)
		return rc;
	eo.threads = o.threads;
	rc = engine_load(o.model, &eo, &e, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "splitd plan: %s: %s\n", o.model, err[0] ? err : strerror(-rc));
		goto out;
	}
	n = engine_num_nodes(e);
	local = calloc((size_t)n + 1, sizeof(double));
	peer = calloc((size_t)n + 1, sizeof(double));
	if (n < 1 || !local || !peer) {
		fprintf(stderr, "splitd plan: %s\n", n < 1 ? "model has no nodes" : strerror(ENOMEM));
		goto out;
	}
	rc = engine_profile(e, o.runs, local);
	if (rc < 0) {
		fprintf(stderr, "splitd plan: profiling %s: %s\n", o.model, strerror(-rc));
		goto out;
	}
	if (o.peer_profile) {
		if (load_peer_profile(o.peer_profile, e, peer, n, err, sizeof(err)) < 0) {
			fprintf(stderr, "splitd plan: %s\n", err);
			goto out;
		}
		snprintf(peer_src, sizeof(peer_src), "measured (%s)", o.peer_profile);
	} else {
		for (int i = 0; i < n; i++)
			peer[i] = local[i] / o.peer_speedup;
		snprintf(peer_src, sizeof(peer_src), "assumed %gx faster than this machine",
			 o.peer_speedup);
	}
	if (input_size(&o, e, &in, input_src, sizeof(input_src)) < 0)
		goto out;
	plan_config_defaults(&pc);
	pc.policy = o.policy;
	pc.slo_ms = o.slo_ms;
	pc.max_bands = o.bands;
	/* as the daemon plans them (planner.band_overhead; the peer's
	 * wavefront) unless told otherwise */
	pc.peer_streams = o.peer_streams;
	pc.band_overhead_frac = o.band_overhead;
	pc.enc_mask = o.enc_mask;
	if (o.have_power)
		for (int i = 0; i < PLAN_PHASE_COUNT; i++)
			pc.power_default_mw[i] = o.power_mw[i];
	rc = plan_new_from_engine(e, local, peer, &pc, &p);
	if (rc < 0) {
		fprintf(stderr, "splitd plan: planner: %s\n", strerror(-rc));
		goto out;
	}
	in.bandwidth_bps = o.bandwidth_bps;
	in.rtt_ms = o.rtt_ms;
	in.decode_ms = o.decode_ms;
	in.peer_decode_ms = o.peer_decode_ms;
	rc = plan_enumerate(p, &in, &v, &nc, &best);
	if (rc < 0 || best < 0) {
		fprintf(stderr, "splitd plan: no candidate: %s\n", strerror(rc < 0 ? -rc : ENOENT));
		goto out;
	}

	struct table t = { &o, e, p, &pc, &in, v, n, nc, best, peer_src, input_src };

	if (o.json && print_json(&t) < 0)
		goto out;
	if (!o.json)
		print_text(&t);
	ret = 0;
out:
	free(v);
	plan_free(p);
	engine_free(e);
	free(local);
	free(peer);
	return ret;
}
