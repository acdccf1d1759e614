/*
 * outfile.c — output files written whole or not at all (see outfile.h).
 *
 * The temporary is a hidden ".gilvm-XXXXXX" in the target's directory, so
 * the rename stays on one file system and is atomic; it gets the mode the
 * target had (a new file: 0666 less the umask) just before the rename. No
 * fsync: this protects against a gilvm that is killed or fails, not against
 * the machine losing power. Writes go through fopencookie so that the
 * message can name the first error (stdio keeps only a flag).
 */
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "exits.h"

/* The directory part of path ("." for a bare name), malloc'd. */
static char *dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

/* Written in place: whatever exists and is not a regular file, anything in
   /proc, and /dev names such as /dev/stdout or /dev/fd/N, which stand for a
   descriptor of ours: a rename over the file behind them would detach it
   from that descriptor, and what else was written there would be lost. */
static int in_place(const char *path) {
  if (strncmp(path, "/dev/", 5) == 0 || strncmp(path, "/proc/", 6) == 0) return 1;
  char target[PATH_MAX];
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n > 0) {
    target[n] = '\0';
    if (strncmp(target, "/proc/", 6) == 0 || strncmp(target, "/dev/", 5) == 0) return 1;
  }
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) return 1;
  char *dir = dir_of(path);
  struct statfs fs;
  int proc = dir && statfs(dir, &fs) == 0 && fs.f_type == PROC_SUPER_MAGIC;
  free(dir);
  return proc;
}

/* Writes go through here so that the first error's errno is kept: stdio keeps only a flag. */
static ssize_t cookie_write(void *cookie, const char *buf, size_t n) {
  outfile *o = cookie;
  size_t done = 0;
  while (done < n) {
    ssize_t k = write(o->fd, buf + done, n - done);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      if (!o->err) o->err = k < 0 ? errno : EIO;
      return (ssize_t)done; /* short: stdio sets its error flag */
    }
    done += (size_t)k;
  }
  return (ssize_t)n;
}

static int cookie_close(void *cookie) {
  outfile *o = cookie;
  if (close(o->fd) != 0 && !o->err) o->err = errno;
  return o->err ? -1 : 0;
}

/* The FILE over fd; NULL (fd closed) if it cannot be made. */
static FILE *stream(outfile *o, int fd) {
  o->fd = fd;
  o->err = 0;
  cookie_io_functions_t io = { .write = cookie_write, .close = cookie_close };
  if (fd >= 0 && !(o->f = fopencookie(o, "w", io))) close(fd);
  return o->f;
}

static void forget(outfile *o) {
  free(o->tmp);
  free(o->target);
  memset(o, 0, sizeof *o);
}

static int stdout_fd = STDOUT_FILENO; /* what "-" writes to: stdout as gilvm found it (outfile_claim_stdout) */

int outfile_is_stdout(const char *path) { return strcmp(path, "-") == 0; }

const char *outfile_name(const char *path) { return outfile_is_stdout(path) ? "stdout" : path; }

int outfile_claim_stdout(void) {
  fflush(stdout);
  int fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) return -1;
  if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  stdout_fd = fd;
  return 0;
}

/* "-", /dev/stdout, /dev/stderr, /dev/fd/N: one of our descriptors (-1: another path).
   Writing through a copy of it shares its offset, as `cmd >f 2>&1` does;
   reopening the file would truncate it or overwrite what was written. */
static int own_descriptor(const char *path) {
  if (outfile_is_stdout(path)) return stdout_fd;
  if (strcmp(path, "/dev/stdout") == 0) return STDOUT_FILENO;
  if (strcmp(path, "/dev/stderr") == 0) return STDERR_FILENO;
  if (strncmp(path, "/dev/fd/", 8) != 0 || !path[8] || strspn(path + 8, "0123456789") != strlen(path + 8)) return -1;
  return atoi(path + 8);
}

FILE *outfile_open(outfile *o, const char *path) {
  memset(o, 0, sizeof *o);
  int own = own_descriptor(path);
  if (own >= 0) {
    fflush(stdout); /* what the script printed first stays first */
    return stream(o, fcntl(own, F_DUPFD_CLOEXEC, 3));
  }
  if (in_place(path)) return stream(o, open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  o->target = realpath(path, NULL); /* a symlink keeps pointing at the file it names */
  if (!o->target) o->target = strdup(path);
  char *dir = o->target ? dir_of(o->target) : NULL;
  if (!dir || asprintf(&o->tmp, "%s/.gilvm-XXXXXX", dir) < 0) o->tmp = NULL;
  free(dir);
  int fd = o->tmp ? mkostemp(o->tmp, O_CLOEXEC) : -1;
  if (fd < 0) {
    int e = o->tmp ? errno : ENOMEM;
    forget(o);
    errno = e;
    return NULL;
  }
  if (!stream(o, fd)) {
    int e = errno;
    unlink(o->tmp);
    forget(o);
    errno = e;
  }
  return o->f;
}

/* The mode the file should end with: the target's, or a new file's. */
static mode_t final_mode(const char *target) {
  struct stat st;
  if (stat(target, &st) == 0) return st.st_mode & 07777;
  mode_t mask = umask(0); /* no way to read it without setting it; nothing else creates files now */
  umask(mask);
  return 0666 & ~mask;
}

int outfile_close(outfile *o) {
  int e = o->err; /* a failed write, or outfile_abort's reason */
  if (fflush(o->f) != 0 || ferror(o->f)) e = o->err ? o->err : EIO;
  if (!e && o->tmp && fchmod(o->fd, final_mode(o->target)) != 0) e = errno;
  if (fclose(o->f) != 0 && !e) e = o->err ? o->err : EIO;
  if (o->tmp && !e && rename(o->tmp, o->target) != 0) e = errno;
  if (o->tmp && e) unlink(o->tmp);
  forget(o);
  errno = e;
  return e ? -1 : 0;
}

int outfile_abort(outfile *o, int err) {
  if (!o->err) o->err = err;
  return outfile_close(o);
}

int outfile_check(const char *path) {
  if (outfile_is_stdout(path)) { /* open, and for writing */
    int flags = fcntl(stdout_fd, F_GETFL);
    if (flags >= 0 && (flags & O_ACCMODE) != O_RDONLY) return 0;
    errno = EBADF;
    return -1;
  }
  struct stat st;
  int exists = stat(path, &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    return -1;
  }
  if (!exists && errno != ENOENT) return -1;
  if (exists && access(path, W_OK) != 0) return -1; /* a read-only file stays read-only */
  if (in_place(path)) {
    errno = ENOENT; /* nothing can be created in /proc */
    return exists ? 0 : -1;
  }
  outfile o;
  if (!outfile_open(&o, path)) return -1;
  fclose(o.f); /* a trial: the directory takes a file */
  unlink(o.tmp);
  forget(&o);
  return 0;
}

int outfile_check_option(const char *opt, const char *path) {
  if (outfile_check(path) == 0) return 0;
  if (outfile_is_stdout(path))
    fprintf(stderr, "gilvm: cannot write %s to stdout ('-'): %s\n", opt, strerror(errno));
  else
    fprintf(stderr, "gilvm: cannot write %s file '%s': %s\n", opt, path, strerror(errno));
  return EXIT_USAGE;
}

int outfile_finish_stdout(int rc) {
  errno = 0;
  if (fflush(stdout) == 0 && !ferror(stdout)) return rc;
  int cause = errno;
  /* The write that failed was earlier (Lua's print flushes each line, and
     stdio drops what it could not write), and its errno is long gone: ask
     the descriptor again with a write of nothing, which a device that
     refuses every write (/dev/full: ENOSPC) or a closed descriptor answers
     with the same error, and a file or a pipe with 0 (then no cause is named). */
  if (!cause && write(fileno(stdout), "", 0) < 0) cause = errno;
  if (cause)
    fprintf(stderr, "gilvm: error writing to stdout: %s\n", strerror(cause));
  else
    fprintf(stderr, "gilvm: error writing to stdout\n");
  return rc ? rc : EXIT_SCRIPT_ERROR;
}
