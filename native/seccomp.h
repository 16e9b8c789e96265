/* The container's seccomp filter (seccomp.c): classic BPF tables built at
 * compile time, no libseccomp.  See README.md, "seccomp". */
#ifndef IA_SECCOMP_H
#define IA_SECCOMP_H

#include "error.h"

enum ia_seccomp_profile
{
  IA_SECCOMP_NONE = 0,    /* no filter (--seccomp absent or "unconfined") */
  IA_SECCOMP_DEFAULT,     /* --seccomp default */
  IA_SECCOMP_SYSTEMD,     /* --seccomp systemd: default, but namespaces and mounts allowed */
};

/* "default", "systemd" or "unconfined". */
int ia_seccomp_parse (const char *name, enum ia_seccomp_profile *out, struct ia_error **err);

/* Install the filter for PROFILE on the calling thread (nothing for
 * IA_SECCOMP_NONE).  Needs no_new_privs or CAP_SYS_ADMIN. */
int ia_seccomp_install (enum ia_seccomp_profile profile, struct ia_error **err);

#endif
