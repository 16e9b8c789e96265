/* Small helpers of imageapi-init: scope-bound cleanup of fds and memory
 * (crun's cleanup_close / cleanup_free), taking a value out of such a
 * variable, complete writes, atomic files, closing inherited fds. */
#ifndef IA_UTILS_H
#define IA_UTILS_H

#include <stddef.h>

#include "error.h"

void ia_cleanup_freep (void *p);
void ia_cleanup_closep (int *fd);

/* free() / close() the variable when it goes out of scope, on every
 * return path.  close() keeps errno, so "return ia_error_make (err,
 * errno, ...)" and callers that read errno after a -1 see the failure's
 * errno. */
#define cleanup_free __attribute__ ((cleanup (ia_cleanup_freep)))
#define cleanup_close __attribute__ ((cleanup (ia_cleanup_closep)))

/* Take the fd out of a cleanup_close variable (which is left -1), to
 * return it or close it early. */
static inline int
steal_fd (int *fd)
{
  int ret = *fd;
  *fd = -1;
  return ret;
}

/* The same for a cleanup_free pointer (pass its address). */
static inline void *
steal_pointer (void *pp)
{
  void **p = pp;
  void *ret = *p;
  *p = NULL;
  return ret;
}

/* write(2) until done; -1 with errno on failure. */
int ia_write_all (int fd, const void *buf, size_t len);

/* Write DATA to the absolute PATH atomically and durably: temporary file,
 * fsync, rename(2), fsync of the directory. */
int ia_write_file_atomic (const char *path, const char *data, struct ia_error **err);

/* Close every fd >= 3 except KEEP (-1 for none). */
void ia_close_fds_except (int keep);
/* The same, keeping two (either may be < 3). */
void ia_close_fds_except2 (int keep, int also);

#endif
