/* The container's output into its log file, by a small process of its own
 * ("imageapi-log"): a size cap with rotation (FILE, FILE.1, ... FILE.N-1),
 * and optionally a timestamp and the stream on every output line:
 *   "YYYY/MM/DD HH:MM:SS.uuuuuu stdout: TEXT" (local time, like the agent's
 * and init's lines, which pass through unchanged). */
#ifndef IA_LOGWRITER_H
#define IA_LOGWRITER_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"

struct ia_logwriter
{
  pid_t pid;  /* the writer process, or -1 */
  int raw_fd; /* write end for init's own lines (passed through), O_CLOEXEC */
};

/* Start the writer for PATH: afterwards fds 1 and 2 are pipes to it (the
 * container inherits them), and init's lines go to LW->raw_fd.  MAX_SIZE
 * 0: no cap.  MAX_FILES: files kept, the current one included (>= 1). */
int ia_logwriter_start (struct ia_logwriter *lw, const char *path, long long max_size, int max_files, bool stamps,
                        struct ia_error **err);

/* Close our ends (fds 1, 2 and the raw fd) and wait up to TIMEOUT_MS for
 * the writer to drain what the container wrote; it goes on alone after
 * that (until the last writer of its pipes is gone). */
void ia_logwriter_finish (struct ia_logwriter *lw, int timeout_ms);

/* Rotation of PATH with MAX_FILES kept: PATH.(N-2) -> PATH.(N-1), ...,
 * PATH -> PATH.1 (MAX_FILES 1: PATH is emptied).  Exposed for tests. */
int ia_log_rotate (const char *path, int max_files);

#endif
