/* The container's --cgroup directories.
 *
 * Moving an existing process into a cgroup by writing its pid to
 * cgroup.procs takes the kernel's global cgroup_threadgroup_rwsem for
 * writing, which waits for an RCU grace period (~5-20 ms).  So the
 * container process is created directly in its first cgroup2 group when
 * the kernel can (clone3 CLONE_INTO_CGROUP, imageapi-init.c), and joins v1
 * hierarchies itself by writing "0" to DIR/tasks: for a single-threaded
 * process that moves the whole process, but a task moving only itself
 * does not take that lock.  cgroup2 has no such per-thread move for
 * domain groups (cgroup.threads), so other cgroup2 groups, or all of them
 * after a plain clone(), are joined by the supervisor through
 * cgroup.procs. */
#include "cgroup.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
# define CGROUP2_SUPER_MAGIC 0x63677270
#endif

int
ia_cgroups_classify (struct ia_cgroups *cg, char *const *dirs, size_t n, struct ia_error **err)
{
  cg->dirs = dirs;
  cg->n = n;
  cg->born_in = -1;
  cg->is_v2 = calloc (n + 1, sizeof *cg->is_v2);
  if (cg->is_v2 == NULL)
    return ia_error_make (err, ENOMEM, "checking the cgroups");
  for (size_t i = 0; i < n; i++)
    {
      struct statfs sfs;
      cg->is_v2[i] = statfs (dirs[i], &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
    }
  return 0;
}

void
ia_cgroups_free (struct ia_cgroups *cg)
{
  free (cg->is_v2);
  cg->is_v2 = NULL;
  cg->n = 0;
}

int
ia_cgroups_open_first_v2 (const struct ia_cgroups *cg, long *index)
{
  for (size_t i = 0; i < cg->n; i++)
    if (cg->is_v2[i])
      {
        int fd = open (cg->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
          return -1;
        *index = (long) i;
        return fd;
      }
  return -1;
}

size_t
ia_cgroups_left_to_supervisor (const struct ia_cgroups *cg)
{
  size_t n = 0;

  for (size_t i = 0; i < cg->n; i++)
    if ((cg->is_v2[i] || cg->v1_by_supervisor) && (long) i != cg->born_in)
      n++;
  return n;
}

/* Write DATA to DIR/FILE for every DIR that is cgroup2 (V2) or not, but
 * the one the container process was created in. */
static int
join_cgroups (const struct ia_cgroups *cg, bool v2, const char *file, const char *data,
              struct ia_error **err)
{
  char path[PATH_MAX];
  size_t len = strlen (data);

  for (size_t i = 0; i < cg->n; i++)
    {
      cleanup_close int fd = -1;

      if (cg->is_v2[i] != v2 || (long) i == cg->born_in)
        continue;
      if ((size_t) snprintf (path, sizeof path, "%s/%s", cg->dirs[i], file) >= sizeof path)
        return ia_error_make (err, ENAMETOOLONG, "joining cgroup %s", cg->dirs[i]);
      fd = open (path, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ia_write_all (fd, data, len) < 0)
        return ia_error_make (err, errno, "joining cgroup %s", cg->dirs[i]);
    }
  return 0;
}

int
ia_cgroups_join_v2 (const struct ia_cgroups *cg, pid_t pid, struct ia_error **err)
{
  char buf[32];

  snprintf (buf, sizeof buf, "%d\n", (int) pid);
  if (join_cgroups (cg, true, "cgroup.procs", buf, err) < 0)
    return -1;
  return cg->v1_by_supervisor ? join_cgroups (cg, false, "cgroup.procs", buf, err) : 0;
}

int
ia_cgroups_join_v1_self (const struct ia_cgroups *cg, struct ia_error **err)
{
  if (cg->v1_by_supervisor)
    return 0;
  return join_cgroups (cg, false, "tasks", "0\n", err);
}
