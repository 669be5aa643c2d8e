/* NumPy .npy files (format 1.0-3.0, C order, little-endian) <-> tensor views. */
#ifndef SPLITD_NPY_FILE_H
#define SPLITD_NPY_FILE_H

#include <stddef.h>

#include "tensor.h"

/* Reads path; out->data is malloc'ed (free() it). err gets a sentence. */
int npy_read(const char *path, struct tensor_view *out, char *err, size_t errlen);
/* Parses an in-memory .npy; out->data is malloc'ed. */
int npy_parse(const void *buf, size_t len, struct tensor_view *out, char *err, size_t errlen);
int npy_write(const char *path, const struct tensor_view *v);

#endif
