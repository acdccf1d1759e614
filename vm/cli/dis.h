/* dis.h — `gilvm dis`: a script's bytecode and where the GIL can change hands. */
#ifndef DIS_H
#define DIS_H

#include "cli.h"

/* Print o->script's functions, instruction by instruction, with the breaker's check points. Exit status. */
int dis_main(const cli_options *o);

#endif
