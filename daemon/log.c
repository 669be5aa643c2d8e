/* The logger: one formatted line per call, written with a single write so
 * lines from several threads do not interleave. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "log.h"

static _Atomic int current_level = LOG_LEVEL_INFO;
static FILE *_Atomic current_stream;

static const struct {
	const char *name;
	int level;
} level_names[] = {
	{ "err", LOG_LEVEL_ERR },       { "error", LOG_LEVEL_ERR },
	{ "warning", LOG_LEVEL_WARNING }, { "warn", LOG_LEVEL_WARNING },
	{ "notice", LOG_LEVEL_NOTICE }, { "info", LOG_LEVEL_INFO },
	{ "debug", LOG_LEVEL_DEBUG },
};

void log_set_level(int level)
{
	if (level < LOG_LEVEL_ERR)
		level = LOG_LEVEL_ERR;
	if (level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	atomic_store(&current_level, level);
}

int log_get_level(void)
{
	return atomic_load_explicit(&current_level, memory_order_relaxed);
}

void log_set_stream(FILE *stream)
{
	atomic_store(&current_stream, stream);
}

int log_level_parse(const char *name, int *level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i].name) == 0) {
			*level = level_names[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

const char *log_level_name(int level)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (level_names[i].level == level)
			return level_names[i].name;
	return "?";
}

static void emit(int level, const char *file, int line, const char *fmt, va_list ap)
{
	char buf[2048];
	int n = snprintf(buf, sizeof(buf), "<%d>", level);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);

	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n >= sizeof(buf) - 1)
		n = (int)sizeof(buf) - 2; /* truncated: keep the start */
	if (file) {
		const char *base = strrchr(file, '/');
		int k = snprintf(buf + n, sizeof(buf) - (size_t)n, " (%s:%d)", base ? base + 1 : file, line);
		if (k > 0)
			n = ((size_t)(n + k) >= sizeof(buf) - 1) ? (int)sizeof(buf) - 2 : n + k;
	}
	buf[n++] = '\n';

	FILE *stream = atomic_load(&current_stream);
	if (stream) {
		fwrite(buf, 1, (size_t)n, stream);
		fflush(stream);
	} else {
		int saved = errno;
		ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
		(void)w;
		errno = saved;
	}
}

int log_emit(int level, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return 0;
	va_start(ap, fmt);
	emit(level, file, line, fmt, ap);
	va_end(ap);
	return 0;
}

int log_emit_code(int code, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	emit(LOG_LEVEL_ERR, file, line, fmt, ap);
	va_end(ap);
	return code;
}
