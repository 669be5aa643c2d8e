/* placeholder; removed when the module lands */
int splitd_api_placeholder(void);
int splitd_api_placeholder(void) { return 0; }
