/* splitd: one binary, several commands. main() dispatches to cmd_<name>()
 * (commands.h) and is the only place that turns their status into an exit. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
	const char *usage;
};

static const struct command commands[] = {
	{ "serve", cmd_serve, "run the daemon (robot or peer role)",
	  "usage: splitd serve [-c FILE] [--role robot|peer] [--listen ADDR:PORT[,ADDR:PORT...]]\n"
	  "                    [--model FILE.onnx] [--peer URL] [--threads N] [--sysfs-root DIR]\n"
	  "                    [--plain] [--log-level LEVEL]\n"
	  "\n"
	  "Run the daemon. The configuration is FILE (default " CONFIG_DEFAULT_FILE " when it\n"
	  "exists, else built-in defaults); the flags override its keys. The robot role serves\n"
	  "on 127.0.0.1:8080 unless told otherwise. Under systemd it speaks sd_notify (READY,\n"
	  "STATUS, WATCHDOG, STOPPING) and accepts socket activation (splitd.socket).\n"
	  "Signals: SIGHUP reloads the file (keeping the running config if the new one is\n"
	  "invalid); SIGTERM or SIGINT stop accepting, finish requests in flight (at most\n"
	  "api.drain_timeout_s) and exit.\n"
	  "The planner runs each request at planner.policy's plan, or at the plan the request's\n"
	  "?policy=latency|energy|slo chooses; what it learns is kept in daemon.state_dir\n"
	  "(NAME.plan.json, at most every 30 s and on stop) and read back at the next start.\n"
	  "\n"
	  "  -c, --config FILE    configuration file (INI; 'splitd help config' lists the keys)\n"
	  "  --role ROLE          daemon.role: robot or peer\n"
	  "  --listen LIST        api.listen: 127.0.0.1:8080, [::1]:8080, *:8080, comma-separated\n"
	  "  --model FILE.onnx    serve this model (replaces the file's [model.*] sections)\n"
	  "  --peer URL           peer.url: the peer splitd, https://host:8443\n"
	  "  --threads N          daemon.threads: CPU kernel threads (0 = all CPUs)\n"
	  "  --sysfs-root DIR     power.sysfs_root: where power sensors are looked for\n"
	  "  --plain              peer.plain and peer_server.plain: plain HTTP on loopback\n"
	  "  --log-level LEVEL    daemon.log_level: err, warning, notice, info, debug\n" },
	{ "run", cmd_run, "run one inference on a file",
	  "usage: splitd run -m MODEL.onnx -i INPUT [-o OUT.npy] [--threads N]\n"
	  "\n"
	  "Run a model on INPUT (.npy float32, or a JPEG/PNG with a preprocessing config) and\n"
	  "write the outputs as .npy; prints one line of JSON (output shapes, ms).\n" },
	{ "bench", cmd_bench, "measure a model's latency and per-node profile",
	  "usage: splitd bench -m MODEL.onnx [--runs N] [--warmup N] [--threads N] [--profile | --profile-hot]\n"
	  "                    [--json]\n"
	  "\n"
	  "Median, p10 and p90 latency in ms; --profile adds the per-node table (each node's median\n"
	  "over N runs of the model, node after node); --profile-hot runs each node twice in a row\n"
	  "and times the second, so its weights, inputs and output are in the caches.\n" },
	{ "power", cmd_power, "show the power rails, tegrastats-like",
	  "usage: splitd power [--sysfs-root DIR] [--interval-ms N] [--count N] [--json]\n"
	  "\n"
	  "Each rail's W, V, A and cumulative J; --json prints one object per sample.\n" },
	{ "plan", cmd_plan, "the split table for a model and a link",
	  "usage: splitd plan -m MODEL [--bandwidth 137M] [--rtt-ms R] [--peer-profile FILE]\n"
	  "                   [--policy latency|energy|slo] [--bands B] [--band-overhead F]\n"
	  "                   [--peer-waits] [--json]\n"
	  "\n"
	  "For every cut: bytes crossing it, local, transfer, remote and total ms, robot joules,\n"
	  "and the choice; banded options (B = 2, 4, .. up to --bands, 8 by default) beside the\n"
	  "plain ones, their robot compute F (0.25) more than unbanded, the peer running its\n"
	  "row-local layers as the bands arrive (its wavefront) unless --peer-waits.\n" },
	{ "export-tail", cmd_export_tail, "write the part after a cut as an ONNX model",
	  "usage: splitd export-tail -m MODEL --cut K -o tail.onnx\n"
	  "\n"
	  "Write the nodes after cut K as a standalone ONNX model, so any KServe v2 server\n"
	  "(Triton) can stand in for the peer.\n" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	/* export_tail is accepted for export-tail */
	if (strcmp(name, "export_tail") == 0)
		return find_command("export-tail");
	return NULL;
}

const char *cmd_usage(const char *name)
{
	const struct command *c = find_command(name);
	return c ? c->usage : NULL;
}

static void print_main_usage(FILE *f)
{
	fprintf(f, "usage: splitd COMMAND [OPTIONS]\n"
		   "       splitd --version\n"
		   "       splitd help [COMMAND|config]\n\n"
		   "Split inference for robots: run the head of a model here, the rest on a peer,\n"
		   "at the split that is best now, with joules per inference measured.\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
}

static void print_config_help(void)
{
	struct config_key_info k;
	const char *section = "";

	printf("Configuration keys (INI: [section] then key = value; '#' or ';' starts a comment line).\n"
	       "Per-model keys go in a [model.NAME] section per model, per-camera keys in [ros2.NAME].\n"
	       "(*) = applied by reload (SIGHUP):\n"
	       "a reload applies every changed (*) key or none, and logs other changed keys as needing a restart.\n");
	for (size_t i = 0; config_key_info(i, &k) == 0; i++) {
		if (strcmp(section, k.section) != 0) {
			printf("\n[%s]\n", strcmp(k.section, "model.*") == 0 ? "model.NAME" :
					    strcmp(k.section, "ros2.*") == 0 ? "ros2.NAME" : k.section);
			section = k.section;
		}
		printf("  %-22s default '%s'%s\n      %s\n", k.name, k.default_text, k.reloadable ? " (*)" : "", k.doc);
	}
}

static int help(int argc, char **argv)
{
	if (argc < 2) {
		print_main_usage(stdout);
		return 0;
	}
	if (argc > 2) {
		fprintf(stderr, "splitd help: unexpected argument '%s'\n", argv[2]);
		return 2;
	}
	if (strcmp(argv[1], "config") == 0) {
		print_config_help();
		return 0;
	}
	const char *u = cmd_usage(argv[1]);
	if (!u) {
		fprintf(stderr, "splitd help: unknown command '%s'\n", argv[1]);
		return 2;
	}
	fputs(u, stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_main_usage(stderr);
		return 2;
	}
	const char *name = argv[1];
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		printf("splitd %s\n", SPLITD_VERSION);
		return 0;
	}
	if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
		return help(argc - 1, argv + 1);
	const struct command *c = find_command(name);
	if (!c) {
		if (name[0] == '-')
			fprintf(stderr, "splitd: unknown option '%s' (see 'splitd help')\n", name);
		else
			fprintf(stderr, "splitd: unknown command '%s' (see 'splitd help')\n", name);
		return 2;
	}
	return c->fn(argc - 1, argv + 1);
}
