/* User namespaces (userns.c): id maps and the id-mapped root.  See
 * README.md, "User namespace". */
#ifndef IA_USERNS_H
#define IA_USERNS_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Append "C:H:N" (container id, host id, count) as the line "C H N\n" to
 * the map text *MAP (malloc'd).  OPT names the option in errors. */
int ia_userns_add_map (char **map, const char *opt, const char *value, struct ia_error **err);

/* Supervisor, once the container process PID exists in its new user
 * namespace (it waits on SOCK): write its uid_map and gid_map, make an
 * id-mapped copy of the mount tree at ROOT for that namespace
 * (open_tree + mount_setattr MOUNT_ATTR_IDMAP) and send it over SOCK
 * (SCM_RIGHTS). */
int ia_userns_setup (pid_t pid, const char *uid_map, const char *gid_map, const char *root, int sock,
                     struct ia_error **err);

/* Container process: receive the id-mapped root from SOCK into *TREEFD. */
int ia_userns_receive_root (int sock, int *treefd, struct ia_error **err);

/* Container process, once its maps are written: become uid/gid 0 of the
 * namespace (it still has the host's ids, which the maps do not cover). */
int ia_userns_become_root (struct ia_error **err);

/* Container process: attach TREEFD on ROOT (move_mount), chdir into it,
 * return an O_PATH fd of it (what ia_prepare_root does without a user
 * namespace). */
int ia_userns_prepare_root (const char *root, int treefd, int *rootfd, struct ia_error **err);

#endif
