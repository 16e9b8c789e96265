/* The container's seccomp filter: classic BPF programs whose tables are
 * built at compile time from the kernel headers' syscall numbers (no
 * libseccomp: the helper stays static and libc-only).  Denied syscalls
 * fail with EPERM, like the OCI/Docker default profile without extra
 * capabilities:
 *   - always: kexec, kernel modules, reboot, swap, acct, the keyring
 *     (keyctl, add_key, request_key), bpf, perf_event_open, userfaultfd,
 *     io_uring, iopl/ioperm, quotactl, setting the clock, syslog,
 *     open_by_handle_at, kcmp and obsolete ones (_sysctl, uselib, ustat,
 *     sysfs, nfsservctl, vm86...);
 *   - "default" also: mount, umount, pivot_root, the new mount API
 *     (open_tree, move_mount, fsopen, fsconfig, fsmount, fspick,
 *     mount_setattr), unshare, setns, and clone with a CLONE_NEW* flag;
 *     clone3 fails with ENOSYS (its flags are behind a pointer, so it
 *     cannot be checked; libc then falls back to clone);
 *   - "systemd" leaves that second group allowed (systemd sets up mount
 *     namespaces for its services).
 * Syscalls of another ABI (i386 or x32 on x86_64) fail with ENOSYS. */
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
# define IA_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
# define IA_AUDIT_ARCH AUDIT_ARCH_AARCH64
#elif defined(__i386__)
# define IA_AUDIT_ARCH AUDIT_ARCH_I386
#else
# error "seccomp.c: add this architecture's AUDIT_ARCH"
#endif

#define LD_NR BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr))
#define RET(v) BPF_STMT (BPF_RET | BPF_K, (v))
#define DENY(nr) BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, (nr), 0, 1), RET (SECCOMP_RET_ERRNO | EPERM)

/* The flags of clone(2) that create namespaces (CLONE_NEWTIME shares its
 * bit with the exit signal there, so it is only reachable through clone3
 * and unshare, both refused). */
#define NS_FLAGS 0x7E020000u /* NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET */

static const struct sock_filter head[] = {
  BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch)),
  BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, IA_AUDIT_ARCH, 1, 0),
  RET (SECCOMP_RET_ERRNO | ENOSYS),
  LD_NR,
#if defined(__x86_64__)
  /* x32 syscalls have bit 30 set. */
  BPF_JUMP (BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 0, 1),
  RET (SECCOMP_RET_ERRNO | ENOSYS),
#endif
#ifdef __NR_kexec_load
  DENY (__NR_kexec_load),
#endif
#ifdef __NR_kexec_file_load
  DENY (__NR_kexec_file_load),
#endif
#ifdef __NR_init_module
  DENY (__NR_init_module),
#endif
#ifdef __NR_finit_module
  DENY (__NR_finit_module),
#endif
#ifdef __NR_delete_module
  DENY (__NR_delete_module),
#endif
#ifdef __NR_create_module
  DENY (__NR_create_module),
#endif
#ifdef __NR_query_module
  DENY (__NR_query_module),
#endif
#ifdef __NR_get_kernel_syms
  DENY (__NR_get_kernel_syms),
#endif
#ifdef __NR_reboot
  DENY (__NR_reboot),
#endif
#ifdef __NR_swapon
  DENY (__NR_swapon),
#endif
#ifdef __NR_swapoff
  DENY (__NR_swapoff),
#endif
#ifdef __NR_acct
  DENY (__NR_acct),
#endif
#ifdef __NR_keyctl
  DENY (__NR_keyctl),
#endif
#ifdef __NR_add_key
  DENY (__NR_add_key),
#endif
#ifdef __NR_request_key
  DENY (__NR_request_key),
#endif
#ifdef __NR_bpf
  DENY (__NR_bpf),
#endif
#ifdef __NR_perf_event_open
  DENY (__NR_perf_event_open),
#endif
#ifdef __NR_userfaultfd
  DENY (__NR_userfaultfd),
#endif
#ifdef __NR_io_uring_setup
  DENY (__NR_io_uring_setup),
#endif
#ifdef __NR_io_uring_enter
  DENY (__NR_io_uring_enter),
#endif
#ifdef __NR_io_uring_register
  DENY (__NR_io_uring_register),
#endif
#ifdef __NR_iopl
  DENY (__NR_iopl),
#endif
#ifdef __NR_ioperm
  DENY (__NR_ioperm),
#endif
#ifdef __NR_quotactl
  DENY (__NR_quotactl),
#endif
#ifdef __NR_quotactl_fd
  DENY (__NR_quotactl_fd),
#endif
#ifdef __NR_lookup_dcookie
  DENY (__NR_lookup_dcookie),
#endif
#ifdef __NR_nfsservctl
  DENY (__NR_nfsservctl),
#endif
#ifdef __NR_uselib
  DENY (__NR_uselib),
#endif
#ifdef __NR__sysctl
  DENY (__NR__sysctl),
#endif
#ifdef __NR_ustat
  DENY (__NR_ustat),
#endif
#ifdef __NR_sysfs
  DENY (__NR_sysfs),
#endif
#ifdef __NR_settimeofday
  DENY (__NR_settimeofday),
#endif
#ifdef __NR_clock_settime
  DENY (__NR_clock_settime),
#endif
#ifdef __NR_clock_adjtime
  DENY (__NR_clock_adjtime),
#endif
#ifdef __NR_adjtimex
  DENY (__NR_adjtimex),
#endif
#ifdef __NR_stime
  DENY (__NR_stime),
#endif
#ifdef __NR_open_by_handle_at
  DENY (__NR_open_by_handle_at),
#endif
#ifdef __NR_kcmp
  DENY (__NR_kcmp),
#endif
#ifdef __NR_syslog
  DENY (__NR_syslog),
#endif
#ifdef __NR_vm86
  DENY (__NR_vm86),
#endif
#ifdef __NR_vm86old
  DENY (__NR_vm86old),
#endif
#ifdef __NR_afs_syscall
  DENY (__NR_afs_syscall),
#endif
#ifdef __NR_tuxcall
  DENY (__NR_tuxcall),
#endif
#ifdef __NR_vserver
  DENY (__NR_vserver),
#endif
#ifdef __NR_fanotify_init
  DENY (__NR_fanotify_init),
#endif
};

static const struct sock_filter ns_and_mounts[] = {
#ifdef __NR_mount
  DENY (__NR_mount),
#endif
#ifdef __NR_umount
  DENY (__NR_umount),
#endif
#ifdef __NR_umount2
  DENY (__NR_umount2),
#endif
#ifdef __NR_pivot_root
  DENY (__NR_pivot_root),
#endif
#ifdef __NR_unshare
  DENY (__NR_unshare),
#endif
#ifdef __NR_setns
  DENY (__NR_setns),
#endif
#ifdef __NR_open_tree
  DENY (__NR_open_tree),
#endif
#ifdef __NR_move_mount
  DENY (__NR_move_mount),
#endif
#ifdef __NR_fsopen
  DENY (__NR_fsopen),
#endif
#ifdef __NR_fsconfig
  DENY (__NR_fsconfig),
#endif
#ifdef __NR_fsmount
  DENY (__NR_fsmount),
#endif
#ifdef __NR_fspick
  DENY (__NR_fspick),
#endif
#ifdef __NR_mount_setattr
  DENY (__NR_mount_setattr),
#endif
#ifdef __NR_clone3
  BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
  RET (SECCOMP_RET_ERRNO | ENOSYS),
#endif
  /* Last: clone with a namespace flag; otherwise on to "allow", next. */
  BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3),
  BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, args[0])),
  BPF_JUMP (BPF_JMP | BPF_JSET | BPF_K, NS_FLAGS, 0, 1),
  RET (SECCOMP_RET_ERRNO | EPERM),
};

static const struct sock_filter allow[] = {
  RET (SECCOMP_RET_ALLOW),
};

#define N(a) (sizeof (a) / sizeof (a)[0])

int
ia_seccomp_parse (const char *name, enum ia_seccomp_profile *out, struct ia_error **err)
{
  if (strcmp (name, "default") == 0)
    *out = IA_SECCOMP_DEFAULT;
  else if (strcmp (name, "systemd") == 0)
    *out = IA_SECCOMP_SYSTEMD;
  else if (strcmp (name, "unconfined") == 0)
    *out = IA_SECCOMP_NONE;
  else
    return ia_error_make (err, 0, "--seccomp: unknown profile \"%s\" (known: default, systemd, unconfined)", name);
  return 0;
}

int
ia_seccomp_install (enum ia_seccomp_profile profile, struct ia_error **err)
{
  struct sock_filter prog[N (head) + N (ns_and_mounts) + N (allow)];
  struct sock_fprog fprog;
  size_t n = 0;

  if (profile == IA_SECCOMP_NONE)
    return 0;
  /* The parts only jump within themselves, but for the last jump of
   * ns_and_mounts, which lands on "allow" right after it. */
  memcpy (prog + n, head, sizeof head);
  n += N (head);
  if (profile == IA_SECCOMP_DEFAULT)
    {
      memcpy (prog + n, ns_and_mounts, sizeof ns_and_mounts);
      n += N (ns_and_mounts);
    }
  memcpy (prog + n, allow, sizeof allow);
  n += N (allow);
  fprog.len = (unsigned short) n;
  fprog.filter = prog;
  if (prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) < 0)
    return ia_error_make (err, errno, "installing the seccomp filter");
  return 0;
}
