/* The error idiom every floor shares: a sentence into the caller's err
 * buffer and the code it was given back, so an error path is one line:
 *   return err_set(-EBADMSG, err, errlen, "tensor '%s' ...", name);
 *
 * Header-only and dependency-free on purpose: link/ and plan/ are ground-
 * floor libraries that may not include each other's internals, and this
 * helper belongs to neither of them. A folder of its own (an INTERFACE
 * target, splitd_common) lets every floor include it without any floor
 * reaching into another. */
#ifndef SPLITD_COMMON_ERR_H
#define SPLITD_COMMON_ERR_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* Formats into err (err NULL or errlen 0: nothing written); returns code. */
static inline int err_set(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline int err_set(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

#endif
