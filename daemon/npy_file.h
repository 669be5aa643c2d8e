/* NumPy .npy files (format 1.0-3.0, C order, little-endian) <-> tensor
 * views, by the API's npy parser and writer (api.h). */
#ifndef SPLITD_NPY_FILE_H
#define SPLITD_NPY_FILE_H

#include <stddef.h>

#include "tensor.h"

/* Reads path; out->data is malloc'ed (free() it). err gets a sentence. */
int npy_read(const char *path, struct tensor_view *out, char *err, size_t errlen);
int npy_write(const char *path, const struct tensor_view *v);

#endif
