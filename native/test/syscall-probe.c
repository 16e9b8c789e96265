/* syscall-probe: calls the syscalls the container's seccomp filter denies,
 * with harmless arguments, and prints "NAME: errno text" for each (for
 * test/container/confine.test.ts, which copies it into a container).
 * Static, libc only.  Never run on the host as root: reboot is called
 * with an invalid magic number, kexec_load with no segments, init_module
 * with an empty image, so even unconfined they only fail (EINVAL...). */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void
probe (const char *name, long ret)
{
  printf ("%s: %s\n", name, ret < 0 ? strerror (errno) : "succeeded");
}

int
main (void)
{
  probe ("kexec_load", syscall (SYS_kexec_load, 0UL, 0UL, NULL, 0UL));
  probe ("kexec_file_load", syscall (SYS_kexec_file_load, -1, -1, 0UL, "", 0UL));
  probe ("init_module", syscall (SYS_init_module, "", 0UL, ""));
  probe ("finit_module", syscall (SYS_finit_module, -1, "", 0));
  probe ("reboot", syscall (SYS_reboot, 0, 0, 0, NULL));
  probe ("keyctl", syscall (SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
  probe ("bpf", syscall (SYS_bpf, 0, NULL, 0));
  probe ("mount", syscall (SYS_mount, "none", "/tmp", "tmpfs", 0UL, NULL));
  probe ("unshare(CLONE_NEWUSER)", syscall (SYS_unshare, CLONE_NEWUSER));
  fflush (stdout);
  return 0;
}
