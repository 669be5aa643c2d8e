/* placeholder; removed when the module lands */
int splitd_kernels_placeholder(void);
int splitd_kernels_placeholder(void) { return 0; }
