/* The container's --cgroup directories: which are cgroup2, and joining
 * them (see README.md, "Joining the cgroups"). */
#ifndef IA_CGROUP_H
#define IA_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "error.h"

struct ia_cgroups
{
  char *const *dirs;  /* the --cgroup DIRs (absolute) */
  size_t n;
  bool *is_v2;        /* per DIR: a cgroup2 directory */
  long born_in;       /* index of the DIR the container process was created
                         in (clone3 CLONE_INTO_CGROUP), -1 if none */
  bool v1_by_supervisor; /* the supervisor joins the v1 DIRs too (through
                            cgroup.procs): in a user namespace the container
                            process may not write to them */
};

/* Fill *CG for DIRS: a directory that cannot be checked counts as v1
 * (joining it then reports the error). */
int ia_cgroups_classify (struct ia_cgroups *cg, char *const *dirs, size_t n, struct ia_error **err);
void ia_cgroups_free (struct ia_cgroups *cg);

/* An O_DIRECTORY fd of the first cgroup2 DIR (for clone3
 * CLONE_INTO_CGROUP) and its index in *INDEX; -1 if there is none or it
 * cannot be opened (writing cgroup.procs then reports the error). */
int ia_cgroups_open_first_v2 (const struct ia_cgroups *cg, long *index);

/* How many DIRs the supervisor joins the container process to (cgroup2
 * ones it was not created in) before releasing it. */
size_t ia_cgroups_left_to_supervisor (const struct ia_cgroups *cg);

/* Supervisor: write PID to DIR/cgroup.procs of those DIRs (and of the v1
 * DIRs with v1_by_supervisor). */
int ia_cgroups_join_v2 (const struct ia_cgroups *cg, pid_t pid, struct ia_error **err);

/* Container process: join every other DIR itself by writing "0" to
 * DIR/tasks. */
int ia_cgroups_join_v1_self (const struct ia_cgroups *cg, struct ia_error **err);

#endif
