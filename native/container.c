/* The container process: signal dispositions, v1 cgroups, cgroup
 * namespace, the filesystem (mounts.c), hostname, lo, environment,
 * working directory, exec.  The first failed step is sent to the
 * supervisor on the exec pipe; the supervisor logs and reports it. */
#include "container.h"
#include "log.h"
#include "masks.h"
#include "mounts.h"
#include "seccomp.h"
#include "userns.h"
#include "utils.h"

#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The supervisor ignores SIGHUP, SIGTERM...; the container must not
 * inherit that. */
static int
reset_signals (struct ia_error **err)
{
  sigset_t none;

  for (int sig = 1; sig < NSIG; sig++)
    /* EINVAL: the signals glibc reserves for itself (32, 33). */
    if (sig != SIGKILL && sig != SIGSTOP && signal (sig, SIG_DFL) == SIG_ERR && errno != EINVAL)
      return ia_error_make (err, errno, "resetting the signal handlers");
  sigemptyset (&none);
  if (sigprocmask (SIG_SETMASK, &none, NULL) < 0)
    return ia_error_make (err, errno, "resetting the signal mask");
  return 0;
}

static int
bring_up_loopback (struct ia_error **err)
{
  struct ifreq ifr;
  cleanup_close int s = -1;

  s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return ia_error_make (err, errno, "bringing up lo");
  memset (&ifr, 0, sizeof ifr);
  memcpy (ifr.ifr_name, "lo", sizeof "lo");
  if (ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    return ia_error_make (err, errno, "bringing up lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    return ia_error_make (err, errno, "bringing up lo");
  return 0;
}

static int
set_environment (const struct ia_config *cfg, struct ia_error **err)
{
  if (clearenv () != 0)
    return ia_error_make (err, ENOMEM, "setting the environment");
  if (setenv ("PATH", DEFAULT_PATH, 1) < 0 || setenv ("HOME", "/", 1) < 0
      || setenv ("TERM", "xterm", 1) < 0)
    return ia_error_make (err, errno, "setting the environment");
  if (cfg->systemd && setenv ("container", "imageapi", 1) < 0)
    return ia_error_make (err, errno, "setting the environment");
  for (size_t i = 0; i < cfg->n_env; i++)
    {
      char *kv = cfg->env[i], *eq = strchr (kv, '=');
      int ret;
      *eq = '\0';
      ret = setenv (kv, eq + 1, 1);
      *eq = '=';
      if (ret < 0)
        return ia_error_make (err, errno, "setting the environment: %s", kv);
    }
  return 0;
}

/* All steps up to the exec.  Returns only on failure, with *code set to
 * the exit code to use. */
static int
setup_container (const struct ia_config *cfg, const struct ia_cgroups *cg, int exec_fd, int treefd, int *code,
                 struct ia_error **err)
{
  const char reached = IA_EXEC_REACHED;
  cleanup_close int rootfd = -1;

  *code = IA_CODE_SETUP_FAILED;

  /* The supervisor has put us into our cgroup2 group(s); v1 ones we join
   * ourselves, first thing. */
  if (ia_cgroups_join_v1_self (cg, err) < 0)
    return -1;
  /* We are in our cgroups now: our cgroup root becomes our cgroup. */
  if (cfg->ns_cgroup && unshare (CLONE_NEWCGROUP) < 0)
    return ia_error_make (err, errno, "creating the cgroup namespace");

  umask (0);
  if (ia_make_mounts_private (err) < 0)
    return -1;
  if (treefd >= 0 ? ia_userns_prepare_root (cfg->root, treefd, &rootfd, err) < 0
                   : ia_prepare_root (cfg->root, &rootfd, err) < 0)
    return -1;
  /* Only now: with the host's uid 0 we could still reach the root through
   * the agent's run-dir (mode 0700); what follows is below the root, in
   * filesystems of our namespace, where files must get our ids. */
  if (cfg->userns && ia_userns_become_root (err) < 0)
    return -1;
  if (ia_mount_filesystems (rootfd, cfg, err) < 0)
    return -1;
  if (ia_make_devices (rootfd, err) < 0)
    return -1;
  if (ia_make_dev_links (rootfd, err) < 0)
    return -1;
  if (cfg->mask_paths && ia_mask_paths (rootfd, err) < 0)
    return -1;
  if (ia_pivot_root (rootfd, err) < 0)
    return -1;
  close (steal_fd (&rootfd));

  if (cfg->hostname != NULL && sethostname (cfg->hostname, strlen (cfg->hostname)) < 0)
    return ia_error_make (err, errno, "setting the hostname");
  if (cfg->ns_net && bring_up_loopback (err) < 0)
    return -1;
  if (set_environment (cfg, err) < 0)
    return -1;
  /* The filter first, while we still have CAP_SYS_ADMIN (it needs that
   * or no_new_privs); it allows everything that follows. */
  if (ia_seccomp_install (cfg->seccomp, err) < 0)
    return -1;
  if (ia_privs_apply (&cfg->privs, err) < 0)
    return -1;
  if (chdir (cfg->workdir) < 0)
    return ia_error_make (err, errno, "changing to the working directory %s", cfg->workdir);
  umask (022);
  /* The log's fd too (the log writer's pipe, O_CLOEXEC): the next line goes there. */
  ia_close_fds_except2 (exec_fd, ia_log_get_fd ());

  ia_log ("executing init %s", cfg->argv[0]);
  /* Tell the supervisor we got this far: EOF after this byte (the pipe
   * is O_CLOEXEC) means the exec succeeded. */
  if (ia_write_all (exec_fd, &reached, 1) < 0)
    return ia_error_make (err, errno, "executing %s: reporting to the supervisor", cfg->argv[0]);
  execvp (cfg->argv[0], cfg->argv);
  *code = IA_CODE_EXEC_FAILED;
  return ia_error_make (err, errno, "executing %s", cfg->argv[0]);
}

void
ia_container_main (const struct ia_config *cfg, const struct ia_cgroups *cg, int sync_fd, int exec_fd)
{
  struct ia_error *err = NULL;
  char text[4096];
  int code = IA_CODE_SETUP_FAILED, ret;
  ssize_t n;
  char go = 0;
  int treefd = -1;

  ret = reset_signals (&err);
  if (ret == 0 && prctl (PR_SET_NAME, "imageapi-init", 0, 0, 0) < 0)
    ret = ia_error_make (&err, errno, "naming the container process");

  /* In a user namespace: the supervisor writes our id maps, then sends
   * the id-mapped root (EOF instead: it failed and reports why). */
  if (cfg->userns && ia_userns_receive_root (sync_fd, &treefd, ret == 0 ? &err : NULL) < 0)
    _exit (IA_CODE_SETUP_FAILED);

  /* Wait until the supervisor has put us into our cgroup2 group(s)
   * (nothing to wait for when we were created in our only one), also
   * after a failure above: the supervisor would otherwise report its
   * write to cgroup.procs failing rather than our error. */
  if (ia_cgroups_left_to_supervisor (cg) > 0 || cfg->userns)
    {
      do
        n = read (sync_fd, &go, 1);
      while (n < 0 && errno == EINTR);
      if (n != 1 || go != 'g')
        _exit (IA_CODE_SETUP_FAILED);
    }
  close (sync_fd);

  if (ret == 0)
    setup_container (cfg, cg, exec_fd, treefd, &code, &err);

  /* The supervisor logs the error and reports it. */
  text[0] = IA_EXEC_FAILED;
  ia_error_text (err, text + 1, sizeof text - 1);
  (void) ia_write_all (exec_fd, text, strlen (text));
  _exit (code);
}
