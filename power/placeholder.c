/* placeholder; removed when the module lands */
int splitd_power_placeholder(void);
int splitd_power_placeholder(void) { return 0; }
