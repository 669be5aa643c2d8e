/* placeholder: replaced by the owner of this command */
#include <stdio.h>
#include "commands.h"

int cmd_plan(int argc, char **argv)
{
	(void)argc; (void)argv;
	fprintf(stderr, "splitd: 'plan' is not built yet\n");
	return 1;
}
