/* placeholder; replaced by the daemon shell */
#include <stdio.h>
#include "commands.h"
int main(int argc, char **argv) { (void)argc; (void)argv; return cmd_serve(argc, argv); }
