/* Built-in commands of the fork server (see spawner-ops.h):
 *   @loop-attach [--read-only] [--partscan] FILE   a free loop device over FILE; prints /dev/loopN
 *   @loop-detach DEV                               LOOP_CLR_FD (as `losetup --detach`: a device
 *                                                  still in use is detached when its user ends)
 *   @umount TARGET                                 umount2(TARGET, 0)
 * Each runs in a child of the fork server, so a slow filesystem holds up nothing else. */
#include "spawner-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
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
