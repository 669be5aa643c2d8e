/* sysfs text: strict, bounded parsers and small-file reads. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "power-impl.h"

int power_parse_int64(const char *buf, size_t len, int64_t *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t v = 0;
	const uint64_t limit_pos = (uint64_t)INT64_MAX;

	if (!buf || !out)
		return -EINVAL;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[0] == '-') {
		neg = true;
		i = 1;
	}
	if (i == len || len - i > 19)
		return -EINVAL;
	for (; i < len; i++) {
		unsigned d;

		if (buf[i] < '0' || buf[i] > '9')
			return -EINVAL;
		d = (unsigned)(buf[i] - '0');
		if (v > (limit_pos + (neg ? 1 : 0) - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (neg)
		*out = v == limit_pos + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

int power_parse_label(const char *buf, size_t len, char *out, size_t outlen)
{
	size_t i;

	if (!buf || !out || outlen < 2)
		return -EINVAL;
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len == 0 || len >= outlen)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c < 0x20 || c > 0x7e)
			return -EINVAL;
	}
	/* no leading or trailing blanks: the kernel prints none */
	if (buf[0] == ' ' || buf[len - 1] == ' ')
		return -EINVAL;
	memcpy(out, buf, len);
	out[len] = '\0';
	return 0;
}

/* "pid (comm) state ppid ... utime stime ...": fields 14 and 15. */
int power_parse_proc_stat(const char *buf, size_t len, uint64_t *ticks)
{
	size_t i, close = len;
	int field = 2; /* the field the ')' closes */
	uint64_t vals[2] = { 0, 0 };

	if (!buf || !ticks || len == 0)
		return -EINVAL;
	for (i = len; i > 0; i--) {
		if (buf[i - 1] == ')') {
			close = i - 1;
			break;
		}
	}
	if (close == len)
		return -EINVAL;
	i = close + 1;
	while (i < len && field < 15) {
		size_t start, n;
		uint64_t v = 0;

		if (buf[i] != ' ')
			return -EINVAL;
		i++;
		field++;
		start = i;
		while (i < len && buf[i] != ' ' && buf[i] != '\n')
			i++;
		n = i - start;
		if (n == 0)
			return -EINVAL;
		if (field < 14)
			continue;
		if (n > 19)
			return -ERANGE;
		for (size_t k = start; k < i; k++) {
			if (buf[k] < '0' || buf[k] > '9')
				return -EINVAL;
			v = v * 10 + (uint64_t)(buf[k] - '0');
		}
		vals[field - 14] = v;
	}
	if (field < 15)
		return -EINVAL;
	if (vals[0] > UINT64_MAX - vals[1])
		return -ERANGE;
	*ticks = vals[0] + vals[1];
	return 0;
}

bool power_is_input_name(const char *name)
{
	return name && (!strcasecmp(name, "VDD_IN") || !strcasecmp(name, "5V_IN") ||
			!strcasecmp(name, "POM_5V_IN"));
}

bool power_is_skipped_label(const char *label)
{
	if (!label || !label[0] || !strcasecmp(label, "NC"))
		return true;
	return strncasecmp(label, "sum", 3) == 0;
}

int sysfs_read(struct sysfs_file *f, bool keep, char *buf, size_t cap,
	       size_t *len)
{
	ssize_t n;
	int fd, rc = 0;

	if (!f || !f->path || cap < 2)
		return -EINVAL;
	if (keep && f->fd >= 0) {
		fd = f->fd;
	} else {
		fd = open(f->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	n = pread(fd, buf, cap, 0);
	if (n < 0)
		rc = -errno;
	else if ((size_t)n >= cap)
		rc = -EOVERFLOW;
	if (keep && rc == 0) {
		f->fd = fd;
	} else {
		if (fd == f->fd)
			f->fd = -1;
		close(fd);
	}
	if (rc < 0)
		return rc;
	buf[n] = '\0';
	*len = (size_t)n;
	return 0;
}

int sysfs_read_int64(struct sysfs_file *f, bool keep, int64_t *out)
{
	char buf[POWER_FILE_BUF];
	size_t len;
	int rc = sysfs_read(f, keep, buf, sizeof(buf), &len);

	if (rc < 0)
		return rc;
	return power_parse_int64(buf, len, out);
}

void sysfs_close(struct sysfs_file *f)
{
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	free(f->path);
	f->path = NULL;
}

int path_read_int64(const char *path, int64_t *out)
{
	struct sysfs_file f = { .path = (char *)path, .fd = -1 };

	return sysfs_read_int64(&f, false, out);
}

int path_read_label(const char *path, char *out, size_t outlen)
{
	struct sysfs_file f = { .path = (char *)path, .fd = -1 };
	char buf[POWER_FILE_BUF];
	size_t len;
	int rc = sysfs_read(&f, false, buf, sizeof(buf), &len);

	if (rc < 0)
		return rc;
	return power_parse_label(buf, len, out, outlen);
}

bool path_exists(const char *path)
{
	struct stat st;

	return path && stat(path, &st) == 0;
}

char *path_fmt(const char *fmt, ...)
{
	va_list ap;
	char *p = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&p, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : p;
}
