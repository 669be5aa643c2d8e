/* placeholder; replaced by the daemon shell */
#include "commands.h"
int cmd_serve(int argc, char **argv) { (void)argc; (void)argv; return 1; }
const char *cmd_usage(const char *name) { (void)name; return 0; }
