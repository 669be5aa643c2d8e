/* `splitd serve` against systemd's notification protocol, without systemd:
 * the test makes the NOTIFY_SOCKET datagram socket itself, spawns the built
 * binary and checks what it says and when: READY=1 only once the listener
 * answers, STATUS= lines, WATCHDOG=1 at half of WATCHDOG_USEC, RELOADING and
 * a reload that keeps the old config when the new file is bad, STOPPING=1 on
 * SIGTERM with the request in flight finished. Also the command line's exit
 * statuses. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_MSGS 512

struct msg {
	uint64_t t_ns;
	char text[512];
};

struct daemon {
	pid_t pid;
	int notify_fd;
	char dir[64];
	char conf[128];
	char log[128];
	int port;
	struct msg msgs[MAX_MSGS];
	int n_msgs;
};

/* The daemon of the running test, killed by teardown if an assertion fails. */
static struct daemon *current;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void start_daemon(struct daemon *d, const char *conf_text, unsigned watchdog_usec)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char sock[128];

	memset(d, 0, sizeof(*d));
	current = d;
	strcpy(d->dir, "/tmp/splitd-notify-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(sock, sizeof(sock), "%s/notify", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/splitd.conf", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/stderr", d->dir);
	write_text(d->conf, conf_text);

	d->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(d->notify_fd >= 0);
	strcpy(a.sun_path, sock);
	assert_int_equal(bind(d->notify_fd, (struct sockaddr *)&a, sizeof(a)), 0);

	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		char wd[32];
		setenv("NOTIFY_SOCKET", sock, 1);
		if (watchdog_usec) {
			snprintf(wd, sizeof(wd), "%u", watchdog_usec);
			setenv("WATCHDOG_USEC", wd, 1);
		} else {
			unsetenv("WATCHDOG_USEC");
		}
		unsetenv("WATCHDOG_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		int fd = open(d->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0)
			dup2(fd, 2);
		int devnull = open("/dev/null", O_RDWR);
		if (devnull >= 0) {
			dup2(devnull, 0);
			dup2(devnull, 1);
		}
		execl(SPLITD_BIN, SPLITD_BIN, "serve", "-c", d->conf, (char *)NULL);
		_exit(127);
	}
}

/* Next datagram within timeout_ms, appended to d->msgs; NULL on timeout. */
static struct msg *next_msg(struct daemon *d, int timeout_ms)
{
	struct pollfd p = { .fd = d->notify_fd, .events = POLLIN };

	if (d->n_msgs == MAX_MSGS || poll(&p, 1, timeout_ms) <= 0)
		return NULL;
	struct msg *m = &d->msgs[d->n_msgs];
	ssize_t n = recv(d->notify_fd, m->text, sizeof(m->text) - 1, 0);
	if (n < 0)
		return NULL;
	m->text[n] = 0;
	m->t_ns = now_ns();
	d->n_msgs++;
	return m;
}

/* Waits for a datagram containing `what`; fails the test after timeout_ms. */
static struct msg *wait_msg(struct daemon *d, const char *what, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;

	for (;;) {
		uint64_t now = now_ns();
		if (now >= deadline)
			break;
		struct msg *m = next_msg(d, (int)((deadline - now) / 1000000u) + 1);
		if (m && strstr(m->text, what))
			return m;
	}
	fail_msg("no '%s' from splitd within %d ms (%d messages so far)", what, timeout_ms, d->n_msgs);
	return NULL;
}

static bool file_contains(const char *path, const char *needle);

/* The bound port, from the daemon's "serving on 127.0.0.1:PORT" log line. */
static int port_from_log(struct daemon *d)
{
	static char buf[65536];
	FILE *f = fopen(d->log, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	const char *p = strstr(buf, "serving on 127.0.0.1:");
	return p ? atoi(p + 21) : 0;
}

static int connect_port(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Reads a whole response (the server closes); returns the HTTP status. */
static int read_response(int fd, char *body, size_t len)
{
	size_t n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (n < len - 1 && poll(&p, 1, 5000) > 0) {
		ssize_t k = read(fd, body + n, len - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	body[n] = 0;
	int status = 0;
	sscanf(body, "HTTP/1.%*d %d", &status);
	return status;
}

static int http_get(int port, const char *path, char *body, size_t len)
{
	char req[256];
	int fd = connect_port(port);

	if (fd < 0)
		return -errno;
	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
	assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	int status = read_response(fd, body, len);
	close(fd);
	return status;
}

/* Waits for the process; returns its exit status, or -1 if still running. */
static int wait_exit(struct daemon *d, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	int st;

	while (now_ns() < deadline) {
		pid_t r = waitpid(d->pid, &st, WNOHANG);
		if (r == d->pid) {
			d->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	return -1;
}

static void stop_daemon(struct daemon *d)
{
	char path[192];

	if (d->pid > 0) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, NULL, 0);
	}
	close(d->notify_fd);
	snprintf(path, sizeof(path), "%s/notify", d->dir);
	unlink(path);
	unlink(d->conf);
	unlink(d->log);
	rmdir(d->dir);
	if (current == d)
		current = NULL;
}

static int teardown(void **state)
{
	if (current) {
		stop_daemon(current);
		free(current);
	}
	return 0;
}

static const char base_conf[] = "[daemon]\nlog_level = info\n[api]\nlisten = 127.0.0.1:0\ndrain_timeout_s = 5\n";

static int ready(struct daemon *d)
{
	wait_msg(d, "READY=1", 60000);
	d->port = port_from_log(d);
	assert_true(d->port > 0);
	return d->port;
}

static void test_ready_after_listener(void **state)
{
	struct daemon *d = calloc(1, sizeof(*d));
	char body[4096];

	start_daemon(d, base_conf, 0);
	ready(d);
	/* READY came after a STATUS line, and the listener answers at once */
	assert_true(d->n_msgs >= 2);
	assert_string_equal(d->msgs[0].text, "STATUS=starting");
	assert_non_null(strstr(d->msgs[d->n_msgs - 2].text, "STATUS="));
	assert_int_equal(http_get(d->port, "/v1/status", body, sizeof(body)), 200);
	assert_non_null(strstr(body, "\"role\""));
	assert_non_null(strstr(body, "robot"));
	assert_int_equal(http_get(d->port, "/nope", body, sizeof(body)), 404);
	assert_non_null(strstr(body, "\"error\""));
	/* no watchdog asked for: none sent */
	for (int i = 0; i < d->n_msgs; i++)
		assert_null(strstr(d->msgs[i].text, "WATCHDOG=1"));
	kill(d->pid, SIGTERM);
	wait_msg(d, "STOPPING=1", 5000);
	assert_int_equal(wait_exit(d, 5000), 0);
	stop_daemon(d);
	free(d);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_watchdog_period(void **state)
{
	struct daemon *d = calloc(1, sizeof(*d));
	uint64_t t[64], gaps[64];
	int n = 0;

	start_daemon(d, base_conf, 200000); /* WATCHDOG_USEC = 200 ms: ping every 100 ms */
	ready(d);
	uint64_t end = now_ns() + 1500000000u;
	while (now_ns() < end && n < 64) {
		struct msg *m = next_msg(d, 50);
		if (m && strstr(m->text, "WATCHDOG=1"))
			t[n++] = m->t_ns;
	}
	/* 1.5 s at 100 ms: about 15 */
	if (n < 10 || n > 20)
		fail_msg("%d watchdog pings in 1.5 s, expected about 15", n);
	for (int i = 1; i < n; i++) {
		gaps[i - 1] = t[i] - t[i - 1];
		if (gaps[i - 1] >= 200000000u)
			fail_msg("watchdog gap %.1f ms reaches WATCHDOG_USEC", (double)gaps[i - 1] / 1e6);
	}
	qsort(gaps, (size_t)(n - 1), sizeof(gaps[0]), cmp_u64);
	double median_ms = (double)gaps[(n - 1) / 2] / 1e6;
	if (median_ms < 90 || median_ms > 130)
		fail_msg("median watchdog period %.1f ms, expected 100", median_ms);
	kill(d->pid, SIGTERM);
	assert_int_equal(wait_exit(d, 5000), 0);
	stop_daemon(d);
	free(d);
}

/* Needs a model so that a request is real work in flight: the directory of
 * a reference model (model.onnx, input_0.npy) in SPLITD_TEST_MODEL_DIR. */
static void test_stop_drains_inflight(void **state)
{
	const char *dir = getenv("SPLITD_TEST_MODEL_DIR");
	if (!dir || !*dir) {
		print_message("SPLITD_TEST_MODEL_DIR not set: no model to keep a request in flight\n");
		skip();
	}
	char path[512], conf[1024], head[512];
	static char input[1 << 22], body[65536];
	snprintf(path, sizeof(path), "%s/input_0.npy", dir);
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	size_t n_input = fread(input, 1, sizeof(input), f);
	fclose(f);
	assert_true(n_input > 64 && n_input < sizeof(input));
	snprintf(conf, sizeof(conf), "%s[model.m]\npath = %s/model.onnx\n", base_conf, dir);
	snprintf(head, sizeof(head),
		 "POST /v1/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-npy\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", n_input);

	struct daemon *d = calloc(1, sizeof(*d));
	start_daemon(d, conf, 200000);
	ready(d);
	/* a request in flight: headers and half of the body */
	int fd = connect_port(d->port);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	assert_int_equal(write(fd, input, n_input / 2), (ssize_t)(n_input / 2));
	usleep(300000);

	kill(d->pid, SIGTERM);
	wait_msg(d, "STOPPING=1", 5000);
	usleep(300000);
	/* a new request is refused, or answered 503: no new work is taken on */
	int fd2 = connect_port(d->port);
	if (fd2 >= 0) {
		assert_int_equal(write(fd2, head, strlen(head)), (ssize_t)strlen(head));
		ssize_t w = write(fd2, input, n_input);
		(void)w;
		int st2 = read_response(fd2, body, sizeof(body));
		close(fd2);
		if (st2 != 503 && st2 != 0)
			fail_msg("a request after STOPPING=1 got %d", st2);
	} else {
		assert_int_equal(errno, ECONNREFUSED);
	}
	/* and it has not exited: a request is still in flight */
	assert_int_equal(wait_exit(d, 1), -1);

	/* the rest of the body: the request is answered, then the daemon exits */
	assert_int_equal(write(fd, input + n_input / 2, n_input - n_input / 2), (ssize_t)(n_input - n_input / 2));
	int status = read_response(fd, body, sizeof(body));
	close(fd);
	if (status != 200 || !strstr(body, "\"outputs\""))
		fail_msg("in-flight request got %d: %.300s", status, body);
	assert_int_equal(wait_exit(d, 5000), 0);

	/* while draining it kept the watchdog alive */
	while (next_msg(d, 0))
		;
	bool seen_stopping = false, ping_after_stopping = false;
	for (int i = 0; i < d->n_msgs; i++) {
		if (strstr(d->msgs[i].text, "STOPPING=1"))
			seen_stopping = true;
		else if (seen_stopping && strstr(d->msgs[i].text, "WATCHDOG=1"))
			ping_after_stopping = true;
	}
	assert_true(ping_after_stopping);
	stop_daemon(d);
	free(d);
}

static bool file_contains(const char *path, const char *needle)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	fclose(f);
	return strstr(buf, needle) != NULL;
}

static void test_reload_keeps_old_on_error(void **state)
{
	struct daemon *d = calloc(1, sizeof(*d));
	char body[4096];

	start_daemon(d, base_conf, 0);
	ready(d);

	/* a bad file: the reload is refused, the old config stays */
	write_text(d->conf, "[daemon]\nlog_level = debug\nthreads = many\n[api]\nlisten = 127.0.0.1:0\n");
	kill(d->pid, SIGHUP);
	wait_msg(d, "RELOADING=1", 5000);
	wait_msg(d, "READY=1", 5000);
	assert_int_equal(http_get(d->port, "/v1/status", body, sizeof(body)), 200);
	assert_true(file_contains(d->log, "<3>reload: "));
	assert_true(file_contains(d->log, "splitd.conf:3: daemon.threads: 'many' is not an integer"));
	assert_true(file_contains(d->log, "keeping the running configuration"));
	assert_false(file_contains(d->log, "reload: done"));
	assert_false(file_contains(d->log, "<7>"));

	/* a good one: applied (debug lines follow) */
	write_text(d->conf, "[daemon]\nlog_level = debug\n[api]\nlisten = 127.0.0.1:0\ndrain_timeout_s = 5\n");
	kill(d->pid, SIGHUP);
	wait_msg(d, "RELOADING=1", 5000);
	wait_msg(d, "READY=1", 5000);
	assert_int_equal(http_get(d->port, "/v1/status", body, sizeof(body)), 200);
	assert_true(file_contains(d->log, "reload: done (log_level debug)"));
	assert_true(file_contains(d->log, "<7>"));

	kill(d->pid, SIGTERM);
	assert_int_equal(wait_exit(d, 5000), 0);
	stop_daemon(d);
	free(d);
}

/* Runs splitd with args; returns the exit status and its stderr. */
static int run_cli(char *out, size_t len, const char *const *args)
{
	char path[] = "/tmp/splitd-cli-XXXXXX";
	int fd = mkstemp(path);
	pid_t pid = fork();

	if (pid == 0) {
		dup2(fd, 2);
		int devnull = open("/dev/null", O_WRONLY);
		dup2(devnull, 1);
		char *argv[16];
		int n = 0;
		argv[n++] = (char *)SPLITD_BIN;
		for (int i = 0; args[i] && n < 15; i++)
			argv[n++] = (char *)args[i];
		argv[n] = NULL;
		execv(SPLITD_BIN, argv);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	ssize_t k = pread(fd, out, len - 1, 0);
	out[k > 0 ? k : 0] = 0;
	close(fd);
	unlink(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_cli_exit_status(void **state)
{
	char out[4096];
	static const struct {
		const char *args[6];
		int status;
		const char *needle;
	} cases[] = {
		{ { "serve", "--bogus" }, 2, "--bogus" },
		{ { "serve", "--threads", "many" }, 2, "--threads" },
		{ { "serve", "--threads", "99999" }, 2, "--threads" },
		{ { "serve", "--role", "cook" }, 2, "--role" },
		{ { "serve", "--listen", "localhost" }, 2, "--listen" },
		{ { "serve", "--model" }, 2, "--model" },
		{ { "serve", "stray" }, 2, "stray" },
		{ { "frobnicate" }, 2, "frobnicate" },
		{ { "--frobnicate" }, 2, "--frobnicate" },
		{ { "help", "nope" }, 2, "nope" },
		{ { "serve", "-c", "/nonexistent/x.conf" }, 1, "/nonexistent/x.conf" },
		{ { "--version" }, 0, "" },
		{ { "help", "serve" }, 0, "" },
		{ { "help", "config" }, 0, "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = run_cli(out, sizeof(out), cases[i].args);
		if (st != cases[i].status)
			fail_msg("splitd %s %s: exit %d, expected %d (%s)", cases[i].args[0],
				 cases[i].args[1] ? cases[i].args[1] : "", st, cases[i].status, out);
		if (cases[i].status == 0) {
			assert_string_equal(out, "");
			continue;
		}
		if (!strstr(out, cases[i].needle) || count_lines(out) != 1)
			fail_msg("splitd %s: stderr should be one line naming '%s': %s", cases[i].args[0],
				 cases[i].needle, out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cli_exit_status),
		cmocka_unit_test_teardown(test_ready_after_listener, teardown),
		cmocka_unit_test_teardown(test_watchdog_period, teardown),
		cmocka_unit_test_teardown(test_stop_drains_inflight, teardown),
		cmocka_unit_test_teardown(test_reload_keeps_old_on_error, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
