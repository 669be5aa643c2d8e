/* Reference tensors for the conformance tests: raw little-endian files
 * described by JSON entries {"name", "dtype", "shape", "file"} (dtype is
 * ONNX's TensorProto.DataType), written by tests/onnx/gen_node_tests.py and
 * tools/export_models.py, and comparison of engine output against them. */
#ifndef SPLITD_TESTS_REFDATA_H
#define SPLITD_TESTS_REFDATA_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor.h"

struct ref_tensor {
	char *name;
	struct tensor_view v;	/* v.data owned */
};

/* Load the tensor an entry describes from dir/entry.file. */
int ref_tensor_load(const char *dir, const json_t *entry, struct ref_tensor *t,
		    char *err, size_t errlen);
void ref_tensor_fini(struct ref_tensor *t);

struct ref_cmp {
	double max_abs_err;	/* over all elements (NaN-equal pairs count 0) */
	double max_abs_ref;	/* max |reference| */
	int64_t n_bad;		/* elements out of tolerance */
	int64_t worst;		/* flat index of the worst element */
	double worst_got, worst_want;
	double margin;		/* allclose: max |got - want| / (atol + rtol |want|) */
};

/* Element-wise |got - want| <= atol + rtol * |want| (numpy's assert_allclose,
 * NaN == NaN); integer and bool types must be equal. Returns 0 when got
 * matches, 1 when values differ, -EINVAL on dtype/shape mismatch (msg says). */
int ref_compare_allclose(const struct tensor_view *got, const struct tensor_view *want,
			 double rtol, double atol, struct ref_cmp *res,
			 char *msg, size_t msglen);

/* Model tests: max |got - want| <= rel * max |want| (float32 only). */
int ref_compare_rel(const struct tensor_view *got, const struct tensor_view *want,
		    double rel, struct ref_cmp *res, char *msg, size_t msglen);

/* Lines of a text file without '#' comments and surrounding blanks;
 * *lines is a NULL-terminated array to free with ref_lines_free. */
int ref_read_lines(const char *path, char ***lines, int *n);
void ref_lines_free(char **lines);

/* "[1, 3, 224, 224]" into buf. */
const char *ref_shape_str(const struct tensor_view *v, char *buf, size_t len);

#endif
