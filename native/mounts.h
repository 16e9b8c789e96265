/* The container's filesystem (mounts.c), run in the container process
 * inside its new mount namespace.  Each step logs its line first. */
#ifndef IA_MOUNTS_H
#define IA_MOUNTS_H

#include <stdbool.h>

#include "args.h"
#include "error.h"

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
