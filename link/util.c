/* link/'s one clock (link.h); its error idiom is common/err.h's err_set. */
#include "link.h"
#include "link-impl.h"

#include <time.h>

int64_t link_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
