/* What the files of link/ share and nobody else sees: the error idiom and
 * the parameter look-ups of the v2 codec. */
#ifndef SPLITD_LINK_IMPL_H
#define SPLITD_LINK_IMPL_H

#include <stddef.h>

/* Formats a sentence into the caller's err buffer (err NULL or errlen 0:
 * none) and returns code, so that an error path is one line:
 *   return link_err(-EBADMSG, err, errlen, "tensor '%s' ...", name); */
int link_err(int code, char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
