/* What the subcommands share: number parsing of option values. */
#include <errno.h>
#include <stdlib.h>

#include "commands.h"

int cmd_parse_long(const char *s, long lo, long hi, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int cmd_parse_int(const char *s, int lo, int hi, int *out)
{
	long v;
	int r = cmd_parse_long(s, lo, hi, &v);

	if (r == 0)
		*out = (int)v;
	return r;
}
