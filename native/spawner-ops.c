/* Built-in commands of the fork server (see spawner-ops.h):
 *   @loop-attach [--read-only] [--partscan] FILE   a free loop device over FILE; prints /dev/loopN
 *   @loop-detach DEV                               LOOP_CLR_FD (as `losetup --detach`: a device
 *                                                  still in use is detached when its user ends)
 *   @umount TARGET                                 umount2(TARGET, 0)
 *   @mount -t TYPE [-o OPTS] -- SOURCE TARGET      mount(2): OPTS split into the MS_* flags
 *                                                  mount(8) knows and the filesystem's data
 *                                                  (the agent sends here only new mounts of
 *                                                  types that need no helper program, without
 *                                                  userspace-only options; binds, remounts and
 *                                                  the rest go to mount(8))
 * Each runs in a child of the fork server, so a slow filesystem holds up nothing else. */
#include "spawner-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <unistd.h>

#include "error.h"
#include "utils.h"

/* Another attacher may take the free device first (EBUSY): ask for the next one. */
#define LOOP_TRIES 64

static int
configure (int lfd, int file_fd, const char *file, int readonly, int partscan, struct ia_error **err)
{
  struct loop_config cfg;
  memset (&cfg, 0, sizeof cfg);
  cfg.fd = (unsigned) file_fd;
  cfg.info.lo_flags = (readonly ? LO_FLAGS_READ_ONLY : 0) | (partscan ? LO_FLAGS_PARTSCAN : 0);
  snprintf ((char *) cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", file);
  if (ioctl (lfd, LOOP_CONFIGURE, &cfg) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOTTY)
    return ia_error_make (err, errno, "LOOP_CONFIGURE");
  /* A kernel before 5.8: the two-step form. */
  if (ioctl (lfd, LOOP_SET_FD, file_fd) < 0)
    return ia_error_make (err, errno, "LOOP_SET_FD");
  if (ioctl (lfd, LOOP_SET_STATUS64, &cfg.info) < 0)
    {
      int e = errno;
      ioctl (lfd, LOOP_CLR_FD, 0);
      return ia_error_make (err, e, "LOOP_SET_STATUS64");
    }
  return 0;
}

static int
loop_attach (const char *file, int readonly, int partscan, char *dev, size_t devlen, struct ia_error **err)
{
  cleanup_close int fd = open (file, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "opening %s", file);
  cleanup_close int ctl = open ("/dev/loop-control", O_RDWR | O_CLOEXEC);
  if (ctl < 0)
    return ia_error_make (err, errno, "opening /dev/loop-control");
  for (int i = 0; i < LOOP_TRIES; i++)
    {
      int n = ioctl (ctl, LOOP_CTL_GET_FREE);
      if (n < 0)
        return ia_error_make (err, errno, "finding a free loop device");
      snprintf (dev, devlen, "/dev/loop%d", n);
      cleanup_close int lfd = open (dev, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
      if (lfd < 0)
        {
          if (errno == ENOENT)      /* its node not made yet */
            continue;
          return ia_error_make (err, errno, "opening %s", dev);
        }
      if (configure (lfd, fd, file, readonly, partscan, err) == 0)
        return 0;
      if ((*err)->status != EBUSY)
        return ia_error_wrap (err, "%s", dev);
      ia_error_free (err);
    }
  return ia_error_make (err, EBUSY, "no free loop device after %d tries", LOOP_TRIES);
}

static int
loop_detach (const char *dev, struct ia_error **err)
{
  cleanup_close int fd = open (dev, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "opening %s", dev);
  if (ioctl (fd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO) /* ENXIO: already free */
    return ia_error_make (err, errno, "LOOP_CLR_FD");
  return 0;
}

struct mount_flag
{
  const char *name;
  unsigned long flag;
  int clear;
};

/* mount(8)'s names of the per-mount and superblock flags (libmount's table). */
static const struct mount_flag mount_flags[] = {
  { "ro", MS_RDONLY, 0 }, { "rw", MS_RDONLY, 1 },
  { "nosuid", MS_NOSUID, 0 }, { "suid", MS_NOSUID, 1 },
  { "nodev", MS_NODEV, 0 }, { "dev", MS_NODEV, 1 },
  { "noexec", MS_NOEXEC, 0 }, { "exec", MS_NOEXEC, 1 },
  { "sync", MS_SYNCHRONOUS, 0 }, { "async", MS_SYNCHRONOUS, 1 },
  { "dirsync", MS_DIRSYNC, 0 },
  { "mand", MS_MANDLOCK, 0 }, { "nomand", MS_MANDLOCK, 1 },
  { "noatime", MS_NOATIME, 0 }, { "atime", MS_NOATIME, 1 },
  { "nodiratime", MS_NODIRATIME, 0 }, { "diratime", MS_NODIRATIME, 1 },
  { "relatime", MS_RELATIME, 0 }, { "norelatime", MS_RELATIME, 1 },
  { "strictatime", MS_STRICTATIME, 0 }, { "nostrictatime", MS_STRICTATIME, 1 },
  { "lazytime", MS_LAZYTIME, 0 }, { "nolazytime", MS_LAZYTIME, 1 },
  { "silent", MS_SILENT, 0 }, { "loud", MS_SILENT, 1 },
  { "defaults", 0, 0 },
};

/* OPTS (comma-separated) into *FLAGS and DATA (what is not a flag, in order). */
static int
parse_mount_options (const char *opts, unsigned long *flags, char *data, size_t datalen, struct ia_error **err)
{
  cleanup_free char *copy = strdup (opts);
  if (copy == NULL)
    return ia_error_make (err, ENOMEM, "parsing the options");
  size_t used = 0;
  data[0] = '\0';
  char *save = NULL;
  for (char *o = strtok_r (copy, ",", &save); o; o = strtok_r (NULL, ",", &save))
    {
      size_t i;
      for (i = 0; i < sizeof mount_flags / sizeof mount_flags[0]; i++)
        if (strcmp (o, mount_flags[i].name) == 0)
          break;
      if (i < sizeof mount_flags / sizeof mount_flags[0])
        {
          if (mount_flags[i].clear)
            *flags &= ~mount_flags[i].flag;
          else
            *flags |= mount_flags[i].flag;
          continue;
        }
      int n = snprintf (data + used, datalen - used, "%s%s", used ? "," : "", o);
      if (n < 0 || (size_t) n >= datalen - used)
        return ia_error_make (err, E2BIG, "the options are longer than a page");
      used += (size_t) n;
    }
  return 0;
}

/* What a failed mount(2) means, in mount(8)'s words. */
static int
mount_error (struct ia_error **err, int e, const char *type, const char *source, const char *target)
{
  switch (e)
    {
    case EINVAL:
      return ia_error_make (err, e, "mount: %s: wrong fs type, bad option, bad superblock on %s, or other error (mount(2))", target, source);
    case ENODEV:
      return ia_error_make (err, e, "mount: %s: unknown filesystem type '%s' (mount(2))", target, type);
    case ENOTBLK:
      return ia_error_make (err, e, "mount: %s: %s is not a block device (mount(2))", target, source);
    case EBUSY:
      return ia_error_make (err, e, "mount: %s: %s already mounted or mount point busy (mount(2))", target, source);
    case EROFS:
    case EACCES:
      return ia_error_make (err, e, "mount: %s: cannot mount %s read-only (mount(2))", target, source);
    default:
      return ia_error_make (err, e, "mount: %s: mount(2) of %s", target, source);
    }
}

static int
do_mount (int argc, char **argv, struct ia_error **err)
{
  const char *type = NULL, *opts = "";
  int i = 1;
  for (; i < argc; i++)
    {
      if (strcmp (argv[i], "-t") == 0 && i + 1 < argc)
        type = argv[++i];
      else if (strcmp (argv[i], "-o") == 0 && i + 1 < argc)
        opts = argv[++i];
      else if (strcmp (argv[i], "--") == 0)
        {
          i++;
          break;
        }
      else
        break;
    }
  if (type == NULL || i != argc - 2)
    return ia_error_make (err, EINVAL, "usage: @mount -t TYPE [-o OPTIONS] -- SOURCE TARGET");
  const char *source = argv[i], *target = argv[i + 1];
  unsigned long flags = 0;
  char data[4096];
  if (parse_mount_options (opts, &flags, data, sizeof data, err) < 0)
    return -1;
  if (mount (source, target, type, flags, data[0] ? data : NULL) == 0)
    return 0;
  int e = errno;
  /* As mount(8): a write-protected device is mounted read-only, with a warning. */
  if ((e == EROFS || e == EACCES) && !(flags & MS_RDONLY))
    {
      if (mount (source, target, type, flags | MS_RDONLY, data[0] ? data : NULL) == 0)
        {
          fprintf (stderr, "mount: %s: WARNING: source write-protected, mounted read-only.\n", target);
          return 0;
        }
      e = errno;
    }
  return mount_error (err, e, type, source, target);
}

int
ia_builtin (int argc, char **argv)
{
  cleanup_error struct ia_error *err = NULL;
  const char *name = argv[0];
  int ret = -1;
  if (strcmp (name, "@loop-attach") == 0)
    {
      int readonly = 0, partscan = 0, i = 1;
      for (; i < argc && argv[i][0] == '-'; i++)
        {
          if (strcmp (argv[i], "--read-only") == 0)
            readonly = 1;
          else if (strcmp (argv[i], "--partscan") == 0)
            partscan = 1;
          else if (strcmp (argv[i], "--") == 0)
            {
              i++;
              break;
            }
          else
            break;
        }
      char dev[64];
      if (i != argc - 1)
        ret = ia_error_make (&err, EINVAL, "usage: @loop-attach [--read-only] [--partscan] FILE");
      else if ((ret = loop_attach (argv[i], readonly, partscan, dev, sizeof dev, &err)) == 0)
        printf ("%s\n", dev);
    }
  else if (strcmp (name, "@loop-detach") == 0)
    ret = argc == 2 ? loop_detach (argv[1], &err) : ia_error_make (&err, EINVAL, "usage: @loop-detach DEV");
  else if (strcmp (name, "@umount") == 0)
    {
      if (argc != 2)
        ret = ia_error_make (&err, EINVAL, "usage: @umount TARGET");
      else if ((ret = umount2 (argv[1], 0)) < 0)
        ret = ia_error_make (&err, errno, "umount2");
    }
  else if (strcmp (name, "@mount") == 0)
    ret = do_mount (argc, argv, &err);
  else
    ret = ia_error_make (&err, EINVAL, "no built-in command %s", name);
  fflush (stdout);
  if (ret < 0)
    {
      char buf[1024];
      fprintf (stderr, "%s\n", ia_error_text (err, buf, sizeof buf));
      return 1;
    }
  return 0;
}
