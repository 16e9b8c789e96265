#include "utils.h"

#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

void
ia_cleanup_freep (void *p)
{
  free (*(void **) p);
}

void
ia_cleanup_closep (int *fd)
{
  if (*fd >= 0)
    {
      int saved = errno;
      close (*fd);
      errno = saved;
    }
}

int
ia_write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

/* fsync the directory holding PATH: a rename(2) is on disk only then. */
static int
sync_parent_dir (const char *path)
{
  char dir[PATH_MAX];
  const char *slash = strrchr (path, '/');
  cleanup_close int fd = -1;

  if (slash == NULL)
    strcpy (dir, ".");
  else if (slash == path)
    strcpy (dir, "/");
  else if ((size_t) (slash - path) >= sizeof dir)
    {
      errno = ENAMETOOLONG;
      return -1;
    }
  else
    {
      memcpy (dir, path, (size_t) (slash - path));
      dir[slash - path] = '\0';
    }
  fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync (fd) < 0)
    return -1;
  return 0;
}

int
ia_write_file_atomic (const char *path, const char *data, struct ia_error **err)
{
  char tmp[PATH_MAX];
  cleanup_close int fd = -1;

  if ((size_t) snprintf (tmp, sizeof tmp, "%s.XXXXXX", path) >= sizeof tmp)
    return ia_error_make (err, ENAMETOOLONG, "writing %s", path);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "writing %s", path);
  if (ia_write_all (fd, data, strlen (data)) < 0 || fchmod (fd, 0644) < 0 || fsync (fd) < 0
      || close (steal_fd (&fd)) < 0 || rename (tmp, path) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return ia_error_make (err, saved, "writing %s", path);
    }
  if (sync_parent_dir (path) < 0)
    return ia_error_make (err, errno, "writing %s: syncing its directory", path);
  return 0;
}

void
ia_close_fds_except2 (int keep, int also)
{
  /* The fds to keep, ascending; below 3 (stdio) or twice the same counts once or not at all. */
  int lo = keep < also ? keep : also, hi = keep < also ? also : keep;
  int kept[2], n = 0;
  if (lo >= 3)
    kept[n++] = lo;
  if (hi >= 3 && hi != lo)
    kept[n++] = hi;

  bool ok = true;
  unsigned from = 3;
  for (int i = 0; i < n && ok; i++)
    {
      if ((unsigned) kept[i] > from)
        ok = close_range (from, (unsigned) kept[i] - 1, 0) == 0;
      from = (unsigned) kept[i] + 1;
    }
  if (ok && close_range (from, ~0U, 0) == 0)
    return;

  /* No close_range(2): the slow way. */
  struct rlimit rl;
  int max = 1024;
  if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX)
    max = (int) rl.rlim_cur;
  for (int fd = 3; fd < max; fd++)
    if (fd != keep && fd != also)
      close (fd);
}

void
ia_close_fds_except (int keep)
{
  ia_close_fds_except2 (keep, keep);
}
