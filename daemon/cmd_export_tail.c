/* placeholder: replaced by the owner of this command */
#include <stdio.h>
#include "commands.h"

int cmd_export_tail(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "splitd: 'export_tail' is not built yet\n");
	return 1;
}
