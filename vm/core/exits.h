/* exits.h — gilvm's exit statuses, documented in README.md (Exit status). */
#ifndef EXITS_H
#define EXITS_H

#define EXIT_SCRIPT_ERROR 1 /* the script raised an error (main or a worker) */
#define EXIT_USAGE 2 /* bad command line */
#define EXIT_LOAD 3 /* the script could not be loaded: missing file, syntax error */
#define EXIT_DEADLOCK 4 /* threads waited for each other in a cycle, none with a timeout */
#define EXIT_TIMEOUT 124 /* --timeout expired */
#define EXIT_INTERRUPTED 130 /* Ctrl-C */
#define EXIT_TERMINATED 143 /* SIGTERM */

#endif
