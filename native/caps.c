/* Least privilege for the container process: uid/gid, capability sets
 * (bounding, permitted, effective, inheritable; ambient cleared) and
 * no_new_privs, with raw syscalls (no libcap: the helper stays static
 * and libc-only). */
#include "caps.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PR_CAP_AMBIENT
# define PR_CAP_AMBIENT 47
# define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

/* Index = capability number (linux/capability.h). */
static const char *const cap_names[] = {
  "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
  "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
  "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
  "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
  "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
  "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore",
};
#define N_CAP_NAMES (sizeof cap_names / sizeof cap_names[0])

int
ia_caps_parse (const char *list, uint64_t *mask, struct ia_error **err)
{
  char *copy = strdup (list), *save = NULL, *name;
  int ret = 0;

  if (copy == NULL)
    return ia_error_make (err, ENOMEM, "--caps");
  *mask = 0;
  for (name = strtok_r (copy, ",", &save); name != NULL; name = strtok_r (NULL, ",", &save))
    {
      size_t i;
      if (strncasecmp (name, "cap_", 4) == 0)
        name += 4;
      if (strcasecmp (name, "all") == 0)
        {
          *mask = ~(uint64_t) 0;
          continue;
        }
      if (strcasecmp (name, "none") == 0)
        continue;
      for (i = 0; i < N_CAP_NAMES; i++)
        if (strcasecmp (name, cap_names[i]) == 0)
          break;
      if (i == N_CAP_NAMES)
        {
          ret = ia_error_make (err, 0, "--caps: unknown capability \"%s\"", name);
          break;
        }
      *mask |= (uint64_t) 1 << i;
    }
  free (copy);
  return ret;
}

static int
set_caps (uint64_t mask, struct ia_error **err)
{
  struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct data[2];

  /* Only what we have: capset refuses to raise permitted. */
  memset (data, 0, sizeof data);
  if (syscall (SYS_capget, &hdr, data) < 0)
    return ia_error_make (err, errno, "reading the capabilities");
  {
    uint64_t have = (uint64_t) data[0].permitted | ((uint64_t) data[1].permitted << 32);
    mask &= have;
  }
  for (int i = 0; i < 2; i++)
    {
      uint32_t v = (uint32_t) (mask >> (32 * i));
      data[i].permitted = data[i].effective = data[i].inheritable = v;
    }
  if (syscall (SYS_capset, &hdr, data) < 0)
    return ia_error_make (err, errno, "setting the capabilities");
  return 0;
}

int
ia_privs_apply (const struct ia_privs *p, struct ia_error **err)
{
  if (p->set_caps)
    {
      /* The bounding set first: dropping from it needs CAP_SETPCAP, which
       * we still have. */
      for (int cap = 0; cap < 64; cap++)
        {
          int r = prctl (PR_CAPBSET_READ, cap, 0, 0, 0);
          if (r < 0)
            break; /* EINVAL: past the kernel's last capability */
          if (r == 1 && !(p->caps & ((uint64_t) 1 << cap)) && prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return ia_error_make (err, errno, "dropping capability %d from the bounding set", cap);
        }
    }
  if (p->set_user)
    {
      gid_t gid = (gid_t) p->gid;
      /* Keep the permitted set across setuid so that capset below can
       * still set it (an exec by a non-root uid then drops it, as usual). */
      if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return ia_error_make (err, errno, "switching to user %u:%u", p->uid, p->gid);
      if (setgroups (1, &gid) < 0)
        return ia_error_make (err, errno, "switching to user %u:%u: setting the groups", p->uid, p->gid);
      if (setresgid (gid, gid, gid) < 0)
        return ia_error_make (err, errno, "switching to user %u:%u: setting the gid", p->uid, p->gid);
      if (setresuid ((uid_t) p->uid, (uid_t) p->uid, (uid_t) p->uid) < 0)
        return ia_error_make (err, errno, "switching to user %u:%u: setting the uid", p->uid, p->gid);
      if (prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return ia_error_make (err, errno, "switching to user %u:%u", p->uid, p->gid);
    }
  if (p->set_caps)
    {
      if (set_caps (p->caps, err) < 0)
        return -1;
      if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return ia_error_make (err, errno, "clearing the ambient capabilities");
    }
  if (p->no_new_privs && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    return ia_error_make (err, errno, "setting no_new_privs");
  return 0;
}
