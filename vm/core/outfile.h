/*
 * outfile.h — gilvm's output files (--json, --trace, --svg), written whole
 * or not at all, and the check that stdout took everything.
 *
 * A regular file (or a new path) is written to a temporary file in the same
 * directory and renamed over the target when complete, so a gilvm killed or
 * failing mid-write never leaves half a file where a valid one was. Devices,
 * FIFOs and /proc paths are written in place: a rename would replace the
 * device node itself (as root: /dev/full) or is impossible (/dev/fd/N).
 *
 * "-" is stdout, as gilvm found it (written in place, as it goes: a stream
 * cannot be replaced whole). outfile_claim_stdout keeps that descriptor for
 * "-" alone and points descriptor 1 at stderr, so that whatever else would
 * go to stdout (the script's output, its children's) goes to stderr instead.
 */
#ifndef OUTFILE_H
#define OUTFILE_H

#include <stdio.h>

typedef struct outfile { /* must stay where it is from outfile_open to outfile_close */
  FILE *f;
  int fd;
  int err; /* the first write error (errno), kept for the message */
  char *tmp; /* the temporary beside the target; NULL when written in place */
  char *target; /* what tmp is renamed to (symlinks resolved) */
} outfile;

/* Before a run: can path be written? 0, or -1 with errno set. Leaves nothing behind. */
int outfile_check(const char *path);
/* Check path for option opt ("--json"); prints a message and returns nonzero if it cannot be written. */
int outfile_check_option(const char *opt, const char *path);
/* Open path for writing; NULL with errno set on failure. */
FILE *outfile_open(outfile *o, const char *path);
/* Flush, close and put the file in place. 0, or -1 with errno set (the target is
   then untouched and no temporary is left). */
int outfile_close(outfile *o);
/* The writer failed (err, an errno): close, leave the target untouched and no
   temporary (a file written in place keeps what it got). Returns -1, errno = err. */
int outfile_abort(outfile *o, int err);

/* Is path "-", stdout? */
int outfile_is_stdout(const char *path);
/* path as a message names it: "stdout" for "-". */
const char *outfile_name(const char *path);
/* Keep stdout for "-" alone: descriptor 1 becomes a copy of stderr. 0, or -1 with errno set
   (nothing changed). */
int outfile_claim_stdout(void);

/* At exit: flush stdout; if any write to it failed, say so on stderr and
   return rc, or 1 if rc is 0. */
int outfile_finish_stdout(int rc);

#endif
