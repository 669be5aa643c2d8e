/* NumPy .npy files for `splitd run`: the file around the API's one npy
 * parser and writer (api_npy_parse, api_npy_write; fuzzed by fuzz_npy). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "api.h"
#include "npy_file.h"

/* The whole file at path, malloc'ed. */
static int slurp(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long sz;
	int rc = 0;

	if (!f) {
		rc = -errno;
		return err_set(rc, err, errlen, "open %s: %s", path, strerror(errno));
	}
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		rc = err_set(-EINVAL, err, errlen, "%s: cannot determine its size", path);
		goto out;
	}
	if (!(buf = malloc(sz ? (size_t)sz : 1))) {
		rc = -ENOMEM;
		goto out;
	}
	if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		rc = err_set(-EINVAL, err, errlen, "read %s: short read", path);
		goto out;
	}
	*out = buf;
	*len = (size_t)sz;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return rc;
}

int npy_read(const char *path, struct tensor_view *out, char *err, size_t errlen)
{
	struct tensor_view v;
	char *buf = NULL;
	void *copy = NULL, *data;
	size_t len = 0, bytes;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = slurp(path, &buf, &len, err, errlen)) < 0)
		return rc;
	if ((rc = api_npy_parse(buf, len, &v, &copy, err, errlen)) < 0)
		goto out;
	bytes = tensor_bytes(&v);
	if (!(data = malloc(bytes ? bytes : 1))) {
		rc = -ENOMEM;
		goto out;
	}
	if (bytes)
		memcpy(data, v.data, bytes);
	*out = v;
	out->data = data;
out:
	free(copy);
	free(buf);
	return rc;
}

int npy_write(const char *path, const struct tensor_view *v)
{
	char *b = NULL;
	size_t len = 0;
	FILE *f;
	int rc;

	if ((rc = api_npy_write(v, &b, &len)) < 0)
		return rc;
	if (!(f = fopen(path, "wb"))) {
		rc = -errno;
		goto out;
	}
	if (fwrite(b, 1, len, f) != len)
		rc = -EIO;
	if (fclose(f) && !rc)
		rc = -EIO;
out:
	free(b);
	return rc;
}
