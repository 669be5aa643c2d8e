/* link/'s one clock and one error idiom (link.h, link-impl.h). */
#include "link.h"
#include "link-impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

int link_err(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

int64_t link_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
