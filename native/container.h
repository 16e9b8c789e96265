/* The container process (container.c): from its creation by the
 * supervisor to the exec of the command. */
#ifndef IA_CONTAINER_H
#define IA_CONTAINER_H

#include "args.h"
#include "cgroup.h"

/* Status file exit_code when the container failed before its exec. */
#define IA_CODE_SETUP_FAILED 125
#define IA_CODE_EXEC_FAILED 127

/* Records on the exec pipe (container -> supervisor). */
#define IA_EXEC_REACHED 'X'  /* about to exec */
#define IA_EXEC_FAILED 'E'   /* followed by the error text, then EOF */

/* Run in the new process: waits on SYNC_FD for the supervisor's "g" when
 * it has cgroups to join the process to, sets up the container and execs
 * the command.  Reports through EXEC_FD (O_CLOEXEC): IA_EXEC_REACHED just
 * before the exec, IA_EXEC_FAILED + the error text when a step failed. */
void ia_container_main (const struct ia_config *cfg, const struct ia_cgroups *cg, int sync_fd, int exec_fd)
  __attribute__ ((noreturn));

#endif
