/* engine_export_range: nodes [first, last) as a standalone ONNX model. */
#include <errno.h>

#include "engine-impl.h"

int engine_export_range(const struct engine *e, int first, int last, const char *path,
			char *err, size_t errlen)
{
	(void)e; (void)first; (void)last; (void)path;
	eng_err(err, errlen, "export is not implemented yet");
	return -ENOTSUP;
}
