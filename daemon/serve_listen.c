/* Listening sockets for `splitd serve`: systemd's (socket activation) when
 * there are any, else bound from api.listen and api.listen_unix. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "config.h"
#include "log.h"
#include "serve.h"

static void sockname(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];

	snprintf(buf, len, "fd:%d", fd);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_UNIX) {
		struct sockaddr_un *a = (struct sockaddr_un *)&ss;
		snprintf(buf, len, "unix:%.*s", (int)sizeof(a->sun_path), a->sun_path);
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int bind_inet(const struct config_listen *l, int *out)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int one = 1, zero = 0;
	bool any = strcmp(l->host, "*") == 0;
	bool v6 = any || strchr(l->host, ':');
	char name[96];
	int fd, r;

	config_listen_format(l, name, sizeof(name));
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)l->port);
		a->sin6_addr = in6addr_any;
		if (!any && inet_pton(AF_INET6, l->host, &a->sin6_addr) != 1)
			return log_err(-EINVAL, "listen %s: bad address", name);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)l->port);
		if (inet_pton(AF_INET, l->host, &a->sin_addr) != 1)
			return log_err(-EINVAL, "listen %s: bad address", name);
		sl = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_err(-errno, "listen %s: socket: %s", name, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* "*" is dual-stack; an explicit IPv6 address is IPv6 only */
	if (v6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, any ? &zero : &one, sizeof(int));
	if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return log_err(r, "listen %s: %s", name, strerror(-r));
	}
	*out = fd;
	return 0;
}

static int bind_unix(const char *path, int *out)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, r;

	if (strlen(path) >= sizeof(a.sun_path))
		return log_err(-ENAMETOOLONG, "listen_unix %s: path too long", path);
	strcpy(a.sun_path, path);
	/* a socket left by an earlier run; never remove anything else */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return log_err(-errno, "listen_unix %s: socket: %s", path, strerror(errno));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(path, 0660) < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return log_err(r, "listen_unix %s: %s", path, strerror(-r));
	}
	*out = fd;
	return 0;
}

int serve_listeners_open(const struct config *cfg, struct serve_listeners *ls)
{
	int n, r;

	memset(ls, 0, sizeof(*ls));
	for (int i = 0; i < SERVE_MAX_LISTEN; i++)
		ls->fds[i] = -1;

	n = sd_listen_fds(1);
	if (n < 0)
		return log_err(n, "LISTEN_FDS: %s", strerror(-n));
	if (n > 0) {
		if (n > SERVE_MAX_LISTEN)
			return log_err(-E2BIG, "socket activation passed %d sockets, at most %d", n, SERVE_MAX_LISTEN);
		for (int i = 0; i < n; i++) {
			int fd = SD_LISTEN_FDS_START + i;
			if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0) {
				r = log_err(-ENOTSOCK, "socket activation: fd %d is not a listening stream socket", fd);
				goto fail;
			}
			set_nonblock(fd);
			ls->fds[ls->n] = fd;
			sockname(fd, ls->names[ls->n], sizeof(ls->names[0]));
			ls->n++;
		}
		ls->activated = true;
		log_info("socket activation: %d socket%s from systemd (api.listen is not used)", n, n > 1 ? "s" : "");
		return 0;
	}

	for (int i = 0; i < cfg->n_listen; i++) {
		r = bind_inet(&cfg->listen[i], &ls->fds[ls->n]);
		if (r < 0)
			goto fail;
		sockname(ls->fds[ls->n], ls->names[ls->n], sizeof(ls->names[0]));
		ls->n++;
	}
	if (cfg->listen_unix[0]) {
		r = bind_unix(cfg->listen_unix, &ls->fds[ls->n]);
		if (r < 0)
			goto fail;
		snprintf(ls->unix_path, sizeof(ls->unix_path), "%s", cfg->listen_unix);
		snprintf(ls->names[ls->n], sizeof(ls->names[0]), "unix:%.120s", cfg->listen_unix);
		ls->n++;
	}
	return 0;
fail:
	serve_listeners_close(ls);
	return r;
}

void serve_listeners_close(struct serve_listeners *ls)
{
	for (int i = 0; i < ls->n; i++) {
		if (ls->fds[i] >= 0)
			close(ls->fds[i]);
		ls->fds[i] = -1;
	}
	if (ls->unix_path[0]) {
		unlink(ls->unix_path);
		ls->unix_path[0] = 0;
	}
	ls->n = 0;
}
