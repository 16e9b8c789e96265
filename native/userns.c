/* User namespaces: the container process is cloned with CLONE_NEWUSER
 * (so every other namespace it creates belongs to it) and waits; the
 * supervisor, still root on the host, writes its uid_map and gid_map,
 * makes an id-mapped copy of the root filesystem's mount tree for that
 * namespace and hands it over a socket.  The container attaches it as its
 * root: files owned by host uid 0 in the image appear owned by the
 * container's root, and what the container's root creates is stored as
 * uid 0 in the image, while on the host, through the container's mounts
 * (/proc/PID/root), it shows as the mapped uid.  An id-mapped mount needs
 * a filesystem that supports it (ext4, xfs, btrfs, tmpfs, overlayfs on
 * Linux >= 6.x ...): otherwise mount_setattr fails with EINVAL and the
 * start fails with "id-mapping the root filesystem: ...". */
#include "userns.h"
#include "log.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

int
ia_userns_add_map (char **map, const char *opt, const char *value, struct ia_error **err)
{
  unsigned long c, h, n;
  char extra;
  char *line = NULL, *joined = NULL;

  if (sscanf (value, "%lu:%lu:%lu%c", &c, &h, &n, &extra) != 3 || n == 0 || c > 0xfffffffful
      || h > 0xfffffffful || n > 0xfffffffful)
    return ia_error_make (err, 0, "%s: \"%s\" is not CONTAINER_ID:HOST_ID:COUNT", opt, value);
  if (asprintf (&line, "%lu %lu %lu\n", c, h, n) < 0)
    return ia_error_make (err, ENOMEM, "%s", opt);
  if (asprintf (&joined, "%s%s", *map ? *map : "", line) < 0)
    {
      free (line);
      return ia_error_make (err, ENOMEM, "%s", opt);
    }
  free (line);
  free (*map);
  *map = joined;
  return 0;
}

static int
write_proc_file (pid_t pid, const char *file, const char *data, struct ia_error **err)
{
  char path[64];
  cleanup_close int fd = -1;

  snprintf (path, sizeof path, "/proc/%d/%s", (int) pid, file);
  fd = open (path, O_WRONLY | O_CLOEXEC);
  /* One write: the kernel takes a map only whole. */
  if (fd < 0 || write (fd, data, strlen (data)) != (ssize_t) strlen (data))
    return ia_error_make (err, errno, "writing the %s of the user namespace", file);
  return 0;
}

static int
send_fd (int sock, int fd, struct ia_error **err)
{
  char byte = 'r';
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *cmsg;

  memset (u.buf, 0, sizeof u.buf);
  cmsg = CMSG_FIRSTHDR (&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (cmsg), &fd, sizeof fd);
  if (sendmsg (sock, &msg, MSG_NOSIGNAL) < 0)
    return ia_error_make (err, errno, "handing the id-mapped root to the container process");
  return 0;
}

int
ia_userns_setup (pid_t pid, const char *uid_map, const char *gid_map, const char *root, int sock,
                 struct ia_error **err)
{
  char path[64];
  cleanup_close int userns = -1;
  cleanup_close int tree = -1;
  struct mount_attr attr = { .attr_set = MOUNT_ATTR_IDMAP };

  if (write_proc_file (pid, "uid_map", uid_map, err) < 0 || write_proc_file (pid, "gid_map", gid_map, err) < 0)
    return -1;
  snprintf (path, sizeof path, "/proc/%d/ns/user", (int) pid);
  userns = open (path, O_RDONLY | O_CLOEXEC);
  if (userns < 0)
    return ia_error_make (err, errno, "opening the user namespace of the container");
  tree = (int) open_tree (AT_FDCWD, root, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0)
    return ia_error_make (err, errno, "id-mapping the root filesystem: cloning %s", root);
  attr.userns_fd = (uint64_t) userns;
  if (mount_setattr (tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) < 0)
    {
      int saved = errno;
      struct statfs sfs;
      if (saved == EINVAL && statfs (root, &sfs) == 0)
        return ia_error_make (err, saved,
                              "id-mapping the root filesystem: this kernel cannot id-map %s (filesystem type 0x%lx)",
                              root, (unsigned long) sfs.f_type);
      return ia_error_make (err, saved, "id-mapping the root filesystem %s", root);
    }
  return send_fd (sock, tree, err);
}

int
ia_userns_receive_root (int sock, int *treefd, struct ia_error **err)
{
  char byte = 0;
  struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *cmsg;
  ssize_t n;

  do
    n = recvmsg (sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != 1 || byte != 'r')
    return ia_error_make (err, n < 0 ? errno : 0, "receiving the id-mapped root");
  cmsg = CMSG_FIRSTHDR (&msg);
  if (cmsg == NULL || cmsg->cmsg_type != SCM_RIGHTS || cmsg->cmsg_len != CMSG_LEN (sizeof (int)))
    return ia_error_make (err, 0, "receiving the id-mapped root: no file descriptor");
  memcpy (treefd, CMSG_DATA (cmsg), sizeof *treefd);
  return 0;
}

int
ia_userns_become_root (struct ia_error **err)
{
  if (setresgid (0, 0, 0) < 0)
    return ia_error_make (err, errno, "becoming root in the user namespace: setting the gid");
  if (setgroups (0, NULL) < 0)
    return ia_error_make (err, errno, "becoming root in the user namespace: setting the groups");
  if (setresuid (0, 0, 0) < 0)
    return ia_error_make (err, errno, "becoming root in the user namespace: setting the uid");
  return 0;
}

int
ia_userns_prepare_root (const char *root, int treefd, int *rootfd, struct ia_error **err)
{
  struct stat st;
  int fd;

  ia_log ("preparing image (id-mapped)");
  if (stat (root, &st) < 0)
    return ia_error_make (err, errno, "preparing image: %s", root);
  if (!S_ISDIR (st.st_mode))
    return ia_error_make (err, ENOTDIR, "preparing image: %s", root);
  if (move_mount (treefd, "", AT_FDCWD, root, MOVE_MOUNT_F_EMPTY_PATH) < 0)
    return ia_error_make (err, errno, "preparing image: attaching the id-mapped root on %s", root);
  if (chdir (root) < 0)
    return ia_error_make (err, errno, "preparing image: changing into %s", root);
  fd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "preparing image: opening %s", root);
  *rootfd = fd;
  return 0;
}
