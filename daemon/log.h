/* The daemon's one logger. Lines go to stderr with a "<N>" priority prefix
 * (sd-daemon(3)) so journald keeps each line's level. The level is checked
 * before anything is formatted; errors carry file:line.
 *
 *   return log_err(-EIO, "read %s: %s", path, strerror(errno));
 */
#ifndef SPLITD_LOG_H
#define SPLITD_LOG_H

#include <stdio.h>

/* syslog(3) priorities, the numbers in the "<N>" prefix. */
enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

void log_set_level(int level);
int log_get_level(void);
/* Lines go to stderr unless redirected (tests); NULL restores stderr. */
void log_set_stream(FILE *stream);

static inline int log_enabled(int level)
{
	return level <= log_get_level();
}

/* Parse "err|warning|notice|info|debug" (also "error", "warn"). */
int log_level_parse(const char *name, int *level);
const char *log_level_name(int level);

int log_emit(int level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Logs at LOG_LEVEL_ERR with file:line and returns code. */
int log_emit_code(int code, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_err(code, ...) log_emit_code((code), __FILE__, __LINE__, __VA_ARGS__)
#define log_at(level, ...) \
	((void)(log_enabled(level) ? log_emit((level), NULL, 0, __VA_ARGS__) : 0))
#define log_warn(...)   log_at(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_notice(...) log_at(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_at(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)  log_at(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
