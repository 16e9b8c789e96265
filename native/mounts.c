/* The container's filesystem: private propagation, the root bind mount,
 * the API filesystems, device nodes, /dev links and pivot_root.
 * Runs in the container process, inside its new mount namespace. */
#include "mounts.h"
#include "log.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define FD_PATH_MAX 64

static void
fd_path (char *buf, size_t len, int fd)
{
  snprintf (buf, len, "/proc/self/fd/%d", fd);
}

int
ia_open_dir_beneath (int dirfd, const char *rel, bool create, int *out, struct ia_error **err)
{
  char path[PATH_MAX];
  char *comp, *save = NULL;
  cleanup_close int fd = -1;

  if (strlen (rel) >= sizeof path)
    return ia_error_make (err, ENAMETOOLONG, "opening /%s", rel);
  strcpy (path, rel);

  fd = openat (dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "opening the root directory");

  for (comp = strtok_r (path, "/", &save); comp != NULL; comp = strtok_r (NULL, "/", &save))
    {
      /* Path shown in messages: everything up to this component. */
      const char *shown = rel;
      int shown_len = (int) (comp - path + strlen (comp));
      struct stat st;
      int next;

      if (strcmp (comp, ".") == 0)
        continue;
      if (strcmp (comp, "..") == 0)
        return ia_error_make (err, EINVAL, "path /%s contains \"..\"", rel);

      next = openat (fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0 && errno == ENOENT && create)
        {
          if (mkdirat (fd, comp, 0755) < 0 && errno != EEXIST)
            return ia_error_make (err, errno, "creating directory /%.*s", shown_len, shown);
          next = openat (fd, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
      if (next < 0)
        {
          int saved = errno;
          if ((saved == ENOTDIR || saved == ELOOP)
              && fstatat (fd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK (st.st_mode))
            return ia_error_make (err, ELOOP, "/%.*s is a symbolic link", shown_len, shown);
          return ia_error_make (err, saved, "opening /%.*s", shown_len, shown);
        }
      close (fd);
      fd = next;
    }
  *out = steal_fd (&fd);
  return 0;
}

int
ia_make_mounts_private (struct ia_error **err)
{
  ia_log ("making all mounts private");
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return ia_error_make (err, errno, "making all mounts private");
  return 0;
}

int
ia_prepare_root (const char *root, int *rootfd, struct ia_error **err)
{
  struct stat st;
  int fd;

  ia_log ("preparing image");
  if (stat (root, &st) < 0)
    return ia_error_make (err, errno, "preparing image: %s", root);
  if (!S_ISDIR (st.st_mode))
    return ia_error_make (err, ENOTDIR, "preparing image: %s", root);
  if (mount (root, root, NULL, MS_BIND | MS_REC, NULL) < 0)
    return ia_error_make (err, errno, "preparing image: bind-mounting %s", root);
  /* Resolve the path again so that we land on the new bind mount. */
  if (chdir (root) < 0)
    return ia_error_make (err, errno, "preparing image: changing into %s", root);
  fd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "preparing image: opening %s", root);
  *rootfd = fd;
  return 0;
}

/* Mount SOURCE (type FSTYPE, or a bind mount if FSTYPE is NULL) on
 * /TARGET below ROOTFD, creating the mountpoint if needed.  LABEL names
 * the step in error messages. */
static int
mount_beneath (int rootfd, const char *label, const char *source, const char *target,
               const char *fstype, unsigned long flags, const char *data, struct ia_error **err)
{
  char where[FD_PATH_MAX];
  cleanup_close int fd = -1;

  if (ia_open_dir_beneath (rootfd, target, true, &fd, err) < 0)
    return ia_error_wrap (err, "%s", label);
  fd_path (where, sizeof where, fd);
  if (mount (source, where, fstype, flags, data) < 0)
    return ia_error_make (err, errno, "%s", label);
  return 0;
}

static int
mount_sysfs (int rootfd, const struct ia_config *cfg, struct ia_error **err)
{
  const unsigned long flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
  struct mount_attr attr = {
    .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
  };
  cleanup_close int fd = -1;

  if (mount_beneath (rootfd, "mounting /sys", "sysfs", "sys", "sysfs", flags, NULL, err) == 0)
    return 0;
  /* sysfs is refused without a net namespace of our own (e.g. when run in
   * a user namespace): fall back to the host's /sys, read-only. */
  if ((*err)->status != EPERM || cfg->ns_net)
    return -1;
  ia_error_free (err);
  if (mount_beneath (rootfd, "mounting /sys: binding the host /sys", "/sys", "sys", NULL,
                     MS_BIND | MS_REC, NULL, err) < 0)
    return -1;
  fd = openat (rootfd, "sys", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "mounting /sys: opening /sys");
  if (mount_setattr (fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
    {
      /* Old kernel: at least the top mount read-only. */
      char where[FD_PATH_MAX];
      fd_path (where, sizeof where, fd);
      if (errno != ENOSYS
          || mount (NULL, where, NULL, MS_BIND | MS_REMOUNT | flags, NULL) < 0)
        return ia_error_make (err, errno, "mounting /sys: making /sys read-only");
    }
  return 0;
}

int
ia_mount_filesystems (int rootfd, const struct ia_config *cfg, struct ia_error **err)
{
  struct simple_mount
  {
    const char *target, *source, *fstype;
    unsigned long flags;
    const char *data;
  };
  static const struct simple_mount dev_mounts[] = {
    { "dev/shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777" },
    { "dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL },
  };
  static const struct simple_mount systemd_mounts[] = {
    { "run", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=755" },
    { "tmp", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV | MS_STRICTATIME, "mode=1777" },
    { "sys/fs/cgroup", "cgroup2", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME, NULL },
    { "var/lib/journal", "tmpfs", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755" },
  };
  const unsigned long pts_flags = MS_NOSUID | MS_NOEXEC;
  size_t i;

  ia_log ("mounting /proc");
  if (mount_beneath (rootfd, "mounting /proc", "proc", "proc", "proc",
                     MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) < 0)
    return -1;

  ia_log ("mounting /dev");
  if (mount_beneath (rootfd, "mounting /dev", "tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME,
                     "mode=755,size=64k", err) < 0)
    return -1;

  for (i = 0; i < sizeof dev_mounts / sizeof dev_mounts[0]; i++)
    {
      const struct simple_mount *m = &dev_mounts[i];
      char label[64];
      snprintf (label, sizeof label, "mounting /%s", m->target);
      ia_log ("%s", label);
      if (mount_beneath (rootfd, label, m->source, m->target, m->fstype, m->flags, m->data, err) < 0)
        return -1;
    }

  ia_log ("mounting /dev/pts");
  if (mount_beneath (rootfd, "mounting /dev/pts", "devpts", "dev/pts", "devpts", pts_flags,
                     "newinstance,ptmxmode=0666,mode=0620,gid=5", err) < 0)
    {
      /* gid=5 is refused (EINVAL) when that group is not mapped, in a user
       * namespace; any other error is not about the gid. */
      if ((*err)->status != EINVAL)
        return -1;
      ia_error_free (err);
      if (mount_beneath (rootfd, "mounting /dev/pts", "devpts", "dev/pts", "devpts", pts_flags,
                         "newinstance,ptmxmode=0666,mode=0620", err) < 0)
        return -1;
    }

  ia_log ("mounting /sys");
  if (mount_sysfs (rootfd, cfg, err) < 0)
    return -1;

  if (!cfg->systemd)
    return 0;
  for (i = 0; i < sizeof systemd_mounts / sizeof systemd_mounts[0]; i++)
    {
      const struct simple_mount *m = &systemd_mounts[i];
      char label[64];
      snprintf (label, sizeof label, "mounting /%s", m->target);
      ia_log ("%s", label);
      if (mount_beneath (rootfd, label, m->source, m->target, m->fstype, m->flags, m->data, err) < 0)
        return -1;
    }
  return 0;
}

/* /dev/NAME below DEVFD: a new device node, or a bind mount of the
 * host's when creating device nodes is not allowed. */
static int
make_device (int devfd, const char *name, unsigned int major, unsigned int minor, struct ia_error **err)
{
  char host[32], where[FD_PATH_MAX];
  cleanup_close int fd = -1;

  ia_log ("making device file /dev/%s", name);
  if (mknodat (devfd, name, S_IFCHR | 0666, makedev (major, minor)) == 0)
    {
      /* Exact mode whatever the umask. */
      if (fchmodat (devfd, name, 0666, 0) < 0)
        return ia_error_make (err, errno, "making device file /dev/%s", name);
      return 0;
    }
  if (errno != EPERM)
    return ia_error_make (err, errno, "making device file /dev/%s", name);
  fd = openat (devfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0666);
  if (fd < 0)
    return ia_error_make (err, errno, "making device file /dev/%s", name);
  close (fd);
  fd = openat (devfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "making device file /dev/%s", name);
  snprintf (host, sizeof host, "/dev/%s", name);
  fd_path (where, sizeof where, fd);
  if (mount (host, where, NULL, MS_BIND, NULL) < 0)
    return ia_error_make (err, errno, "making device file /dev/%s", name);
  return 0;
}

int
ia_make_devices (int rootfd, struct ia_error **err)
{
  static const struct
  {
    const char *name;
    unsigned int major, minor;
  } devices[] = {
    { "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 },
    { "tty", 5, 0 }, { "random", 1, 8 }, { "urandom", 1, 9 },
  };
  cleanup_close int devfd = -1;

  if (ia_open_dir_beneath (rootfd, "dev", false, &devfd, err) < 0)
    return ia_error_wrap (err, "making device files");
  for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++)
    if (make_device (devfd, devices[i].name, devices[i].major, devices[i].minor, err) < 0)
      return -1;
  return 0;
}

int
ia_make_dev_links (int rootfd, struct ia_error **err)
{
  static const struct
  {
    const char *name, *target;
  } links[] = {
    { "ptmx", "pts/ptmx" },
    { "fd", "/proc/self/fd" },
    { "stdin", "/proc/self/fd/0" },
    { "stdout", "/proc/self/fd/1" },
    { "stderr", "/proc/self/fd/2" },
  };
  cleanup_close int devfd = -1;

  ia_log ("creating the /dev links");
  if (ia_open_dir_beneath (rootfd, "dev", false, &devfd, err) < 0)
    return ia_error_wrap (err, "creating the /dev links");
  for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
    if (symlinkat (links[i].target, devfd, links[i].name) < 0)
      return ia_error_make (err, errno, "creating the /dev links: /dev/%s", links[i].name);
  return 0;
}

int
ia_pivot_root (int rootfd, struct ia_error **err)
{
  if (fchdir (rootfd) < 0)
    return ia_error_make (err, errno, "pivoting root: changing into the root");
  /* Stack the old root on top of the new one, then detach it: no
   * directory for the old root is needed inside the image. */
  if (syscall (SYS_pivot_root, ".", ".") < 0)
    return ia_error_make (err, errno, "pivoting root");
  if (umount2 (".", MNT_DETACH) < 0)
    return ia_error_make (err, errno, "pivoting root: detaching the old root");
  if (chdir ("/") < 0)
    return ia_error_make (err, errno, "pivoting root: changing into /");
  return 0;
}
