/* imageapi-init: starts one container for the imageapi node agent and
 * stays around as its supervisor ("imageapi-shim").  See README.md for
 * the command line and the ready/pidfile/status protocol.
 *
 * Process model:
 *   supervisor (host namespaces, outside the container's cgroups)
 *     - clone3(CLONE_NEWNS|CLONE_NEWPID|...|CLONE_INTO_CGROUP) -> container
 *       process (PID 1), born in the first cgroup2 --cgroup DIR (no
 *       migration, see cgroup.c); without a cgroup2 DIR, or when clone3
 *       fails (old kernel), plain clone()
 *     - writes the child's pid into DIR/cgroup.procs of the other cgroup2
 *       --cgroup DIRs (all of them after a plain clone), then lets the
 *       child go (sync pipe); with nothing to write the child does not
 *       wait
 *     - the child (container.c) joins its v1 cgroups, sets up its root,
 *       pivots and execs the command; an O_CLOEXEC pipe tells the
 *       supervisor whether the exec happened (EOF after the "about to
 *       exec" byte) or what failed (the error text); EOF without any data
 *       means the child died during setup
 *     - reports on --ready-fd, then writes --pidfile, waits for PID 1,
 *       writes --status and exits.
 *
 * Functions return < 0 and fill a struct ia_error; only main() ends the
 * process on an error (die()).  Once the container process exists,
 * failures are reported through the ready fd and the status file
 * instead. */
#include "args.h"
#include "cgroup.h"
#include "container.h"
#include "log.h"
#include "logwriter.h"
#include "userns.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
# define CLONE_NEWTIME 0x00000080
#endif
#ifndef CLONE_INTO_CGROUP
# define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef SYS_clone3
# define SYS_clone3 435
#endif

/* struct clone_args of linux/sched.h up to the cgroup field (CLONE_ARGS_SIZE_VER2). */
struct ia_clone_args
{
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

#define EXIT_USAGE 2
/* The start failed, or the container's exit status could not be known. */
#define EXIT_FAILED 1

static struct ia_config cfg = { .ready_fd = -1, .workdir = "/" };
static struct ia_cgroups cgroups = { .born_in = -1 };
static bool log_is_set_up;
static struct ia_logwriter logw = { .pid = -1, .raw_fd = -1 };
/* How long the supervisor waits, at its end, for the log writer to write what is left. */
#define LOG_DRAIN_MS 2000

/* ------------------------------------------------------ test hooks */

#ifdef IMAGEAPI_TEST_HOOKS
/* Only in the test build (native/build/test/imageapi-init, see the
 * Makefile), for test/native/init-helper.sh:
 *  - clone3 fails as on a kernel before 5.3, so that the clone() +
 *    cgroup.procs fallback runs;
 *  - SIGCHLD keeps the disposition it was started with, so that a test can
 *    have the kernel reap the container process (SIG_IGN) and check the
 *    path where its exit status is lost. */
# define TEST_KEEP_SIGCHLD 1

static long
sys_clone3 (struct ia_clone_args *args, size_t size)
{
  errno = ENOSYS;
  return -1;
}
#else
# define TEST_KEEP_SIGCHLD 0

static long
sys_clone3 (struct ia_clone_args *args, size_t size)
{
  return syscall (SYS_clone3, args, size);
}
#endif

/* ------------------------------------------------------ reporting */

static void
report_ready (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

/* Write the one line of the ready protocol and close the fd. */
static void
report_ready (const char *fmt, ...)
{
  char line[4200];
  va_list ap;
  int n;

  if (cfg.ready_fd < 0)
    return;
  va_start (ap, fmt);
  n = vsnprintf (line, sizeof line - 1, fmt, ap);
  va_end (ap);
  if (n < 0)
    n = 0;
  if ((size_t) n > sizeof line - 2)
    n = (int) sizeof line - 2;
  line[n++] = '\n';
  /* EPIPE is fine: the agent may be gone (SIGPIPE is ignored). */
  (void) ia_write_all (cfg.ready_fd, line, (size_t) n);
  close (cfg.ready_fd);
  cfg.ready_fd = -1;
}

static int
write_status (int exit_code, int sig, const char *start_error, struct ia_error **err)
{
  char buf[4400];

  if (cfg.status == NULL)
    return 0;
  /* One snprintf: a (truncated) text cannot overrun the buffer. */
  snprintf (buf, sizeof buf, "exit_code=%d\nsignal=%d\n%s%s%sfinished_at=%lld\n", exit_code, sig,
            start_error ? "start_error=" : "", start_error ? start_error : "", start_error ? "\n" : "",
            (long long) time (NULL));
  return ia_write_file_atomic (cfg.status, buf, err);
}

/* Log ERR (one line), then free it. */
static void
log_error (struct ia_error **err)
{
  char text[4096];

  ia_log ("%s", ia_error_text (*err, text, sizeof text));
  ia_error_free (err);
}

/* The container could not be started: one log line, the ready fd, the
 * status file, exit. */
static void __attribute__ ((noreturn))
die (int exit_status, struct ia_error *err)
{
  char text[4096];

  ia_error_text (err, text, sizeof text);
  if (log_is_set_up)
    ia_log ("%s", text);
  else
    {
      fprintf (stderr, "imageapi-init: %s\n", text);
      if (cfg.log != NULL)
        {
          cleanup_close int fd = open (cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
          if (fd >= 0)
            {
              ia_log_set_fd (fd);
              ia_log ("%s", text);
            }
        }
    }
  report_ready ("error %s", text);
  (void) write_status (IA_CODE_SETUP_FAILED, 0, text, NULL);
  ia_logwriter_finish (&logw, LOG_DRAIN_MS);
  exit (exit_status);
}

/* ------------------------------------------------------ supervisor */

static int
setup_stdio (struct ia_error **err)
{
  cleanup_close int nullfd = -1;
  cleanup_close int logfd = -1;
  int fd;

  /* Make sure 0, 1 and 2 are taken, so that no file we open lands there. */
  while ((fd = open ("/dev/null", O_RDWR)) >= 0 && fd < 3)
    ;
  if (fd < 0)
    return ia_error_make (err, errno, "opening /dev/null");
  nullfd = fd;
  logfd = open (cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (logfd < 0)
    return ia_error_make (err, errno, "opening the log file %s", cfg.log);
  if (dup2 (nullfd, STDIN_FILENO) < 0 || dup2 (logfd, STDOUT_FILENO) < 0 || dup2 (logfd, STDERR_FILENO) < 0)
    return ia_error_make (err, errno, "redirecting stdio to the log file");
  ia_log_set_fd (STDERR_FILENO);
  log_is_set_up = true;
  return 0;
}

/* Everything before the container process: stdio, session, signals,
 * subreaper, name, time namespace, the cgroups' kinds. */
static int
become_supervisor (struct ia_error **err)
{
  ia_close_fds_except (cfg.ready_fd);
  if (setup_stdio (err) < 0)
    return -1;

  if (getsid (0) != getpid ())
    (void) setsid (); /* fails only for a process group leader: keep going */
  /* The agent may go away (or be restarted) while the container runs. */
  if (signal (SIGHUP, SIG_IGN) == SIG_ERR || signal (SIGINT, SIG_IGN) == SIG_ERR
      || signal (SIGTERM, SIG_IGN) == SIG_ERR || signal (SIGPIPE, SIG_IGN) == SIG_ERR)
    return ia_error_make (err, errno, "ignoring SIGHUP, SIGINT, SIGTERM and SIGPIPE");
  /* An inherited SIG_IGN would have the kernel reap the container process
   * and take its exit status with it. */
  if (!TEST_KEEP_SIGCHLD && signal (SIGCHLD, SIG_DFL) == SIG_ERR)
    return ia_error_make (err, errno, "resetting SIGCHLD");
  if (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    return ia_error_make (err, errno, "becoming a child subreaper");
  if (prctl (PR_SET_NAME, "imageapi-shim", 0, 0, 0) < 0)
    return ia_error_make (err, errno, "naming the supervisor");
  /* Do not keep the agent's working directory busy. */
  if (chdir ("/") < 0)
    return ia_error_make (err, errno, "changing into /");
  /* The output through the log writer (size cap, rotation, stamps), in our session. */
  if (cfg.log_writer
      && ia_logwriter_start (&logw, cfg.log, cfg.log_max_size, cfg.log_max_files, cfg.log_stamps, err) < 0)
    return -1;
  /* A new time namespace applies to our children only. */
  if (cfg.ns_time && unshare (CLONE_NEWTIME) < 0)
    return ia_error_make (err, errno, "creating the time namespace");
  if (ia_cgroups_classify (&cgroups, cfg.cgroups, cfg.n_cgroups, err) < 0)
    return -1;
  cgroups.v1_by_supervisor = cfg.userns;
  return 0;
}

/* Create the container process: fork-like (no new stack), the child
 * returns 0 and continues in the caller.  Into the first cgroup2
 * directory directly when the kernel can (clone3 CLONE_INTO_CGROUP,
 * Linux >= 5.7); otherwise plain clone(), and the supervisor joins it to
 * every cgroup2 --cgroup through cgroup.procs.  -1 with errno. */
static pid_t
clone_container (void)
{
  long index = -1;
  cleanup_close int cgfd = ia_cgroups_open_first_v2 (&cgroups, &index);

  if (cgfd >= 0)
    {
      struct ia_clone_args args;
      long ret;

      memset (&args, 0, sizeof args);
      args.flags = (uint64_t) (unsigned) cfg.clone_flags | CLONE_INTO_CGROUP;
      args.exit_signal = SIGCHLD;
      args.cgroup = (uint64_t) cgfd;
      /* Set before the clone: the child sees the value of its attempt. */
      cgroups.born_in = index;
      ret = sys_clone3 (&args, sizeof args);
      if (ret >= 0)
        return (pid_t) ret;
      cgroups.born_in = -1;
      /* ENOSYS (< 5.3), E2BIG/EINVAL (< 5.7, no CLONE_INTO_CGROUP), or
       * the cgroup refused (EBUSY, EPERM, ...): the old path reports
       * such errors as "joining cgroup DIR: ...". */
    }
  return (pid_t) syscall (SYS_clone, (unsigned long) cfg.clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* Start the container process; returns its pid with the supervisor's
 * ends of the sync pipe (*SYNC_FD, write) and of the exec pipe (*EXEC_FD,
 * read). */
static pid_t
spawn_container (int *sync_fd, int *exec_fd, struct ia_error **err)
{
  cleanup_close int sync_r = -1, sync_w = -1, exec_r = -1, exec_w = -1;
  int p[2];
  pid_t pid;

  /* With a user namespace the sync channel also carries the id-mapped
   * root (SCM_RIGHTS): a socket pair. */
  if (cfg.userns ? socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0 : pipe2 (p, O_CLOEXEC) < 0)
    return ia_error_make (err, errno, "creating pipes");
  sync_r = p[0];
  sync_w = p[1];
  if (pipe2 (p, O_CLOEXEC) < 0)
    return ia_error_make (err, errno, "creating pipes");
  exec_r = p[0];
  exec_w = p[1];

  pid = clone_container ();
  if (pid < 0)
    return ia_error_make (err, errno, "creating the container process");
  if (pid == 0)
    {
      close (steal_fd (&sync_w));
      close (steal_fd (&exec_r));
      ia_container_main (&cfg, &cgroups, sync_r, exec_w);
    }
  /* Our copy of the child's ends goes (cleanup): EOF on the exec pipe
   * then means the child is done with it. */
  *sync_fd = steal_fd (&sync_w);
  *exec_fd = steal_fd (&exec_r);
  return pid;
}

/* Read what the container process reports about its exec: IA_EXEC_REACHED
 * then EOF when the exec succeeded, IA_EXEC_FAILED + text when a step
 * failed.  Leaves the error text (or "") in BUF. */
static void
read_exec_result (int fd, char *buf, size_t len)
{
  char data[4200];
  const char *p = data;
  size_t have = 0;
  bool reached = false;

  for (;;)
    {
      ssize_t n = read (fd, data + have, sizeof data - 1 - have);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      have += (size_t) n;
      if (have == sizeof data - 1)
        break;
    }
  data[have] = '\0';

  if (*p == IA_EXEC_REACHED)
    {
      reached = true;
      p++;
    }
  if (*p == IA_EXEC_FAILED)
    snprintf (buf, len, "%s", p + 1);
  else if (reached)
    buf[0] = '\0';
  else
    /* Killed (or crashed) before it could tell us anything. */
    snprintf (buf, len, "the container process died before executing %s", cfg.argv[0]);
}

/* Wait for PID, reaping whatever else gets reparented to us.  < 0 when
 * its wait status cannot be known. */
static int
wait_container (pid_t pid, int *wstatus, struct ia_error **err)
{
  for (;;)
    {
      int st;
      pid_t w = waitpid (-1, &st, __WALL);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          /* ECHILD: it was reaped without us (SIGCHLD ignored). */
          return ia_error_make (err, errno, "waiting for the container process %d", (int) pid);
        }
      if (w == pid)
        {
          *wstatus = st;
          return 0;
        }
    }
}

/* From the container process's creation to its end: release it, report
 * its exec, write the pidfile, wait, write the status.  Returns the
 * supervisor's exit status. */
static int
supervise (pid_t pid, int sync_fd, int exec_fd)
{
  cleanup_error struct ia_error *err = NULL;
  char start_error[4096] = "";
  int wstatus = 0, exit_code, sig;

  /* The user namespace's id maps and root, then into the (other)
   * cgroups before the container does anything; closing the pipe
   * without "g" makes the child exit. */
  if ((cfg.userns && ia_userns_setup (pid, cfg.uid_map, cfg.gid_map, cfg.root, sync_fd, &err) < 0)
      || ia_cgroups_join_v2 (&cgroups, pid, &err) < 0)
    {
      ia_error_text (err, start_error, sizeof start_error);
      ia_error_free (&err);
    }
  else if (ia_cgroups_left_to_supervisor (&cgroups) > 0 || cfg.userns)
    (void) ia_write_all (sync_fd, "g", 1);
  close (sync_fd);

  if (start_error[0] == '\0')
    read_exec_result (exec_fd, start_error, sizeof start_error);
  close (exec_fd);

  if (start_error[0] != '\0')
    {
      ia_log ("%s", start_error);
      report_ready ("error %s", start_error);
    }
  else
    {
      char buf[32];
      /* The agent takes the pid from the ready line; the pidfile (for
       * restarts of the agent) follows. */
      report_ready ("ok %d", (int) pid);
      snprintf (buf, sizeof buf, "%d\n", (int) pid);
      if (cfg.pidfile != NULL && ia_write_file_atomic (cfg.pidfile, buf, &err) < 0)
        log_error (&err);
    }

  if (wait_container (pid, &wstatus, &err) < 0)
    {
      /* No status file rather than one with a made-up exit code: the
       * agent then records that the exit status is unknown. */
      log_error (&err);
      return EXIT_FAILED;
    }
  if (WIFSIGNALED (wstatus))
    {
      sig = WTERMSIG (wstatus);
      exit_code = 128 + sig;
    }
  else
    {
      sig = 0;
      exit_code = WEXITSTATUS (wstatus);
    }
  if (write_status (exit_code, sig, start_error[0] ? start_error : NULL, &err) < 0)
    log_error (&err);

  /* Reap what is already gone; the rest is left to the host's init. */
  while (waitpid (-1, NULL, WNOHANG | __WALL) > 0)
    ;
  return start_error[0] ? EXIT_FAILED : 0;
}

int
main (int argc, char **argv)
{
  struct ia_error *err = NULL;
  int sync_fd = -1, exec_fd = -1, ret;
  pid_t pid;

  /* Before anything can write to the ready fd: the agent may be gone. */
  signal (SIGPIPE, SIG_IGN);
  tzset ();
  ret = ia_parse_args (argc, argv, &cfg, &err);
  if (ret < 0)
    die (EXIT_USAGE, err);
  if (ret == IA_ARGS_HELP)
    {
      fputs (ia_usage_text, stdout);
      return 0;
    }
  if (become_supervisor (&err) < 0)
    die (EXIT_FAILED, err);
  pid = spawn_container (&sync_fd, &exec_fd, &err);
  if (pid < 0)
    die (EXIT_FAILED, err);
  ret = supervise (pid, sync_fd, exec_fd);
  ia_logwriter_finish (&logw, LOG_DRAIN_MS);
  ia_cgroups_free (&cgroups);
  ia_config_free (&cfg);
  return ret;
}
