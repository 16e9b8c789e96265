/* Masked and read-only paths, the list of the OCI runtime spec's defaults
 * (runc, crun): what a container must not read about the host or change
 * in it.  Runs in the container process before pivot_root; every path is
 * opened below the root without following symlinks (mounts.c). */
#include "masks.h"
#include "log.h"
#include "mounts.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const masked[] = {
  "proc/acpi", "proc/asound", "proc/kcore", "proc/keys", "proc/latency_stats", "proc/timer_list",
  "proc/timer_stats", "proc/sched_debug", "proc/scsi", "sys/firmware", "sys/devices/virtual/powercap",
};

static const char *const read_only[] = {
  "proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger",
};

/* O_PATH fd of REL below ROOTFD (its last component not followed), -1
 * with errno ENOENT when it does not exist. */
static int
open_beneath (int rootfd, const char *rel, int *out, struct ia_error **err)
{
  char parent[PATH_MAX];
  const char *slash = strrchr (rel, '/');
  cleanup_close int pfd = -1;
  int fd;

  snprintf (parent, sizeof parent, "%.*s", (int) (slash - rel), rel);
  if (ia_open_dir_beneath (rootfd, parent, false, &pfd, err) < 0)
    {
      if ((*err)->status != ENOENT)
        return -1;
      ia_error_free (err);
      *out = -1;
      return 0;
    }
  fd = openat (pfd, slash + 1, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT)
    return ia_error_make (err, errno, "opening /%s", rel);
  *out = fd;
  return 0;
}

static void
fd_path (char *buf, size_t len, int fd)
{
  snprintf (buf, len, "/proc/self/fd/%d", fd);
}

static int
mask (int rootfd, int nullfd, const char *rel, struct ia_error **err)
{
  char where[64], null_path[64];
  cleanup_close int fd = -1;
  struct stat st;

  if (open_beneath (rootfd, rel, &fd, err) < 0)
    return ia_error_wrap (err, "masking /%s", rel);
  if (fd < 0)
    return 0;
  if (fstat (fd, &st) < 0)
    return ia_error_make (err, errno, "masking /%s", rel);
  fd_path (where, sizeof where, fd);
  if (S_ISDIR (st.st_mode))
    {
      if (mount ("tmpfs", where, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,nr_inodes=1") < 0)
        return ia_error_make (err, errno, "masking /%s", rel);
      return 0;
    }
  if (S_ISLNK (st.st_mode))
    return 0; /* nothing to read through it that its target does not show */
  fd_path (null_path, sizeof null_path, nullfd);
  if (mount (null_path, where, NULL, MS_BIND, NULL) < 0)
    return ia_error_make (err, errno, "masking /%s", rel);
  return 0;
}

static int
make_read_only (int rootfd, const char *rel, struct ia_error **err)
{
  char where[64];
  cleanup_close int fd = -1;
  cleanup_close int top = -1;

  if (open_beneath (rootfd, rel, &fd, err) < 0)
    return ia_error_wrap (err, "making /%s read-only", rel);
  if (fd < 0)
    return 0;
  fd_path (where, sizeof where, fd);
  if (mount (where, where, NULL, MS_BIND | MS_REC, NULL) < 0)
    return ia_error_make (err, errno, "making /%s read-only", rel);
  /* The fd still names what is under the new bind mount: open it again. */
  if (open_beneath (rootfd, rel, &top, err) < 0)
    return ia_error_wrap (err, "making /%s read-only", rel);
  if (top < 0)
    return ia_error_make (err, ENOENT, "making /%s read-only", rel);
  fd_path (where, sizeof where, top);
  /* nosuid, nodev, noexec as /proc has them (a remount in a user
   * namespace must keep them). */
  if (mount (NULL, where, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
    return ia_error_make (err, errno, "making /%s read-only", rel);
  return 0;
}

int
ia_mask_paths (int rootfd, struct ia_error **err)
{
  cleanup_close int nullfd = -1;
  size_t i;

  ia_log ("masking /proc and /sys paths");
  nullfd = openat (rootfd, "dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (nullfd < 0)
    return ia_error_make (err, errno, "masking paths: opening /dev/null");
  for (i = 0; i < sizeof masked / sizeof masked[0]; i++)
    if (mask (rootfd, nullfd, masked[i], err) < 0)
      return -1;
  for (i = 0; i < sizeof read_only / sizeof read_only[0]; i++)
    if (make_read_only (rootfd, read_only[i], err) < 0)
      return -1;
  return 0;
}
