/* Shared declarations of imageapi-init. */
#ifndef IA_INIT_H
#define IA_INIT_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

struct ia_config
{
  const char *root;      /* --root (absolute) */
  const char *log;       /* --log (absolute) */
  int ready_fd;          /* --ready-fd, -1 if none */
  const char *pidfile;   /* --pidfile (absolute) or NULL */
  const char *status;    /* --status (absolute) or NULL */
  int clone_flags;       /* CLONE_NEW{NS,PID,UTS,IPC,NET} for clone() */
  bool ns_cgroup;        /* unshare the cgroup ns in the container */
  bool ns_time;          /* unshare the time ns in the supervisor */
  bool ns_net;
  const char *hostname;  /* --hostname or NULL */
  bool systemd;          /* --systemd */
  char **cgroups;        /* --cgroup DIR... (absolute) */
  size_t n_cgroups;
  char **env;            /* --env K=V... */
  size_t n_env;
  const char *workdir;   /* --workdir, default "/" */
  char **argv;           /* command after "--", NULL terminated */
};

/* mounts.c: the container's filesystem, run in the container process
 * (new mount namespace).  Each step logs its line first. */
int ia_make_mounts_private (struct ia_error **err);
/* Bind ROOT onto itself, chdir into it, return an O_PATH fd of it. */
int ia_prepare_root (const char *root, int *rootfd, struct ia_error **err);
int ia_mount_filesystems (int rootfd, const struct ia_config *cfg, struct ia_error **err);
int ia_make_devices (int rootfd, struct ia_error **err);
int ia_make_dev_links (int rootfd, struct ia_error **err);
/* pivot_root into ROOTFD; afterwards cwd and root are the new root. */
int ia_pivot_root (int rootfd, struct ia_error **err);

/* Open the directory REL (relative, no "..") below DIRFD without following
 * symlinks, creating missing components with mode 0755 if CREATE.
 * Returns 0 and an O_PATH fd in *OUT. */
int ia_open_dir_beneath (int dirfd, const char *rel, bool create, int *out, struct ia_error **err);

#endif
