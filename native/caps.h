/* Least privilege for the container process (caps.c): the user it runs
 * as, its capability sets, no_new_privs.  See README.md, "Privileges". */
#ifndef IA_CAPS_H
#define IA_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* "chown,dac_override,..." (case-insensitive, with or without "CAP_"), or
 * "all", or "none" into a bit mask. */
int ia_caps_parse (const char *list, uint64_t *mask, struct ia_error **err);

struct ia_privs
{
  bool set_caps;     /* --caps given: bounding/permitted/effective/inheritable = caps */
  uint64_t caps;
  bool set_user;     /* --user given */
  unsigned int uid, gid;
  bool no_new_privs; /* --no-new-privs */
};

/* In the container process, after pivot_root, before the seccomp filter
 * and the exec: drop the bounding set to the kept capabilities, switch to
 * uid:gid (supplementary groups: just gid), set permitted, effective and
 * inheritable, clear the ambient set, set no_new_privs.  A capability the
 * host's bounding set does not have is silently absent. */
int ia_privs_apply (const struct ia_privs *p, struct ia_error **err);

#endif
