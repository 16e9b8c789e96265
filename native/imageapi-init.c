/* imageapi-init: starts one container for the imageapi node agent and
 * stays around as its supervisor ("imageapi-shim").  See README.md for
 * the command line and the ready/pidfile/status protocol.
 *
 * Process model:
 *   supervisor (host namespaces, outside the container's cgroups)
 *     - clone3(CLONE_NEWNS|CLONE_NEWPID|...|CLONE_INTO_CGROUP) -> container
 *       process (PID 1), born in the first cgroup2 --cgroup DIR (no
 *       migration: writing cgroup.procs makes the kernel wait for an RCU
 *       grace period, ~5-20 ms); without a cgroup2 DIR, or when clone3
 *       fails (old kernel), plain clone()
 *     - writes the child's pid into every other --cgroup DIR/cgroup.procs
 *       (v1 controllers, or all of them after a plain clone), then lets
 *       the child go (sync pipe); with nothing to write the child does
 *       not wait
 *     - the child sets up its root, pivots and execs the command; an
 *       O_CLOEXEC pipe tells the supervisor whether the exec happened
 *       (EOF after the "about to exec" byte) or what failed (the error
 *       text); EOF without any data means the child died during setup
 *     - reports on --ready-fd, then writes --pidfile, waits for PID 1,
 *       writes --status and exits. */
#include "init.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
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
#ifndef CGROUP2_SUPER_MAGIC
# define CGROUP2_SUPER_MAGIC 0x63677270
#endif

/* struct clone_args of linux/sched.h up to the cgroup field (CLONE_ARGS_SIZE_VER2). */
struct ia_clone_args
{
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
  uint64_t set_tid, set_tid_size, cgroup;
};

/* Set (to anything) only by test/native/init-helper.sh: no clone3, every
 * --cgroup is joined by writing cgroup.procs, as on kernels before 5.7. */
#define ENV_NO_CLONE3 "IMAGEAPI_INIT_NO_CLONE3"

#define EXIT_USAGE 2
#define EXIT_START_FAILED 1
/* Status file exit_code when the container failed before exec. */
#define CODE_SETUP_FAILED 125
#define CODE_EXEC_FAILED 127

/* Records on the exec pipe (container -> supervisor). */
#define EXEC_REACHED "X"  /* about to exec */
#define EXEC_FAILED "E"   /* followed by the error text, then EOF */

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static struct ia_config cfg = { .ready_fd = -1, .workdir = "/" };
static bool log_is_set_up;
/* Per --cgroup DIR: true for a cgroup2 directory (the container process
 * is created in it or the supervisor writes its pid to cgroup.procs),
 * false otherwise (a v1 hierarchy, or not a cgroup at all: the container
 * process joins it itself, see join_v1_cgroups()).  Set before the clone. */
static bool *cgroup_is_v2;
/* Index in cfg.cgroups of the group the container process was created in
 * (clone3 CLONE_INTO_CGROUP), -1 if none.  Set before the clone: the child
 * sees the value of its clone attempt. */
static long born_in_cgroup = -1;

static const char usage_text[] =
  "usage: imageapi-init --root DIR --log FILE [--ready-fd N] [--pidfile FILE] [--status FILE]\n"
  "                     [--ns LIST] [--hostname NAME] [--systemd] [--cgroup DIR]... [--env K=V]...\n"
  "                     [--workdir DIR] -- COMMAND [ARG...]\n"
  "  --ns LIST: comma-separated subset of mnt,pid,uts,ipc,net,cgroup,time (default mnt,pid,uts,ipc)\n";

/* ---------------------------------------------------------------- utils */

static int
write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;

  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      p += n;
      len -= (size_t) n;
    }
  return 0;
}

/* Write DATA to PATH through a temporary file and rename(2). */
static int
write_file_atomic (const char *path, const char *data, struct ia_error **err)
{
  char tmp[PATH_MAX];
  int fd;

  if ((size_t) snprintf (tmp, sizeof tmp, "%s.XXXXXX", path) >= sizeof tmp)
    return ia_error_make (err, ENAMETOOLONG, "writing %s", path);
  fd = mkostemp (tmp, O_CLOEXEC);
  if (fd < 0)
    return ia_error_make (err, errno, "writing %s", path);
  if (write_all (fd, data, strlen (data)) < 0 || fchmod (fd, 0644) < 0 || fsync (fd) < 0)
    {
      int saved = errno;
      close (fd);
      unlink (tmp);
      return ia_error_make (err, saved, "writing %s", path);
    }
  if (close (fd) < 0 || rename (tmp, path) < 0)
    {
      int saved = errno;
      unlink (tmp);
      return ia_error_make (err, saved, "writing %s", path);
    }
  return 0;
}

/* Close every fd >= 3 except KEEP (-1 for none). */
static void
close_fds_except (int keep)
{
  if (keep < 3)
    {
      if (close_range (3, ~0U, 0) == 0)
        return;
    }
  else if ((keep == 3 || close_range (3, (unsigned) keep - 1, 0) == 0)
           && close_range ((unsigned) keep + 1, ~0U, 0) == 0)
    return;

  /* No close_range(2): the slow way. */
  {
    struct rlimit rl;
    int max = 1024;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX)
      max = (int) rl.rlim_cur;
    for (int fd = 3; fd < max; fd++)
      if (fd != keep)
        close (fd);
  }
}

static char *
absolute_path (const char *path)
{
  char cwd[PATH_MAX];
  char *out = NULL;

  if (path[0] == '/')
    return strdup (path);
  if (getcwd (cwd, sizeof cwd) == NULL)
    return NULL;
  if (asprintf (&out, "%s/%s", cwd, path) < 0)
    return NULL;
  return out;
}

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
  (void) write_all (cfg.ready_fd, line, (size_t) n);
  close (cfg.ready_fd);
  cfg.ready_fd = -1;
}

static int
write_status (int exit_code, int sig, const char *start_error, struct ia_error **err)
{
  char buf[4400];
  int n;

  if (cfg.status == NULL)
    return 0;
  n = snprintf (buf, sizeof buf, "exit_code=%d\nsignal=%d\n", exit_code, sig);
  if (start_error != NULL)
    n += snprintf (buf + n, sizeof buf - (size_t) n, "start_error=%s\n", start_error);
  snprintf (buf + n, sizeof buf - (size_t) n, "finished_at=%lld\n", (long long) time (NULL));
  return write_file_atomic (cfg.status, buf, err);
}

/* The container could not be started: one log line, the ready fd, the
 * status file, exit. */
static void __attribute__ ((noreturn))
die (int exit_status, int status_code, struct ia_error *err)
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
          int fd = open (cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
          if (fd >= 0)
            {
              ia_log_set_fd (fd);
              ia_log ("%s", text);
              close (fd);
            }
        }
    }
  report_ready ("error %s", text);
  (void) write_status (status_code, 0, text, NULL);
  exit (exit_status);
}

/* ------------------------------------------------------ command line */

static int
parse_ns (const char *list, struct ia_error **err)
{
  char *copy = strdup (list), *save = NULL, *name;
  bool mnt = false;

  if (copy == NULL)
    return ia_error_make (err, ENOMEM, "--ns");
  cfg.clone_flags = 0;
  cfg.ns_cgroup = cfg.ns_time = cfg.ns_net = false;
  for (name = strtok_r (copy, ",", &save); name != NULL; name = strtok_r (NULL, ",", &save))
    {
      if (strcmp (name, "mnt") == 0)
        mnt = true;
      else if (strcmp (name, "pid") == 0)
        cfg.clone_flags |= CLONE_NEWPID;
      else if (strcmp (name, "uts") == 0)
        cfg.clone_flags |= CLONE_NEWUTS;
      else if (strcmp (name, "ipc") == 0)
        cfg.clone_flags |= CLONE_NEWIPC;
      else if (strcmp (name, "net") == 0)
        {
          cfg.clone_flags |= CLONE_NEWNET;
          cfg.ns_net = true;
        }
      else if (strcmp (name, "cgroup") == 0)
        cfg.ns_cgroup = true;
      else if (strcmp (name, "time") == 0)
        cfg.ns_time = true;
      else if (strcmp (name, "user") == 0)
        {
          free (copy);
          return ia_error_make (err, 0, "--ns: user namespaces are not supported");
        }
      else
        {
          ia_error_make (err, 0, "--ns: unknown namespace \"%s\" (known: mnt,pid,uts,ipc,net,cgroup,time)",
                         name);
          free (copy);
          return -1;
        }
    }
  free (copy);
  if (!mnt)
    return ia_error_make (err, 0, "--ns: the mnt namespace is required");
  cfg.clone_flags |= CLONE_NEWNS;
  return 0;
}

static int
append (char ***list, size_t *n, char *item, struct ia_error **err)
{
  char **l = realloc (*list, (*n + 2) * sizeof **list);
  if (l == NULL || item == NULL)
    {
      if (l != NULL)
        *list = l;
      return ia_error_make (err, ENOMEM, "parsing the command line");
    }
  l[(*n)++] = item;
  l[*n] = NULL;
  *list = l;
  return 0;
}

enum option_id
{
  OPT_ROOT, OPT_LOG, OPT_READY_FD, OPT_PIDFILE, OPT_STATUS, OPT_NS, OPT_HOSTNAME,
  OPT_SYSTEMD, OPT_CGROUP, OPT_ENV, OPT_WORKDIR,
};

static const struct
{
  const char *name;
  enum option_id id;
  bool has_value;
} options[] = {
  { "--root", OPT_ROOT, true },       { "--log", OPT_LOG, true },
  { "--ready-fd", OPT_READY_FD, true }, { "--pidfile", OPT_PIDFILE, true },
  { "--status", OPT_STATUS, true },   { "--ns", OPT_NS, true },
  { "--hostname", OPT_HOSTNAME, true }, { "--systemd", OPT_SYSTEMD, false },
  { "--cgroup", OPT_CGROUP, true },   { "--env", OPT_ENV, true },
  { "--workdir", OPT_WORKDIR, true },
};

static int
set_path (const char **dst, const char *name, const char *val, struct ia_error **err)
{
  char *p = absolute_path (val);
  if (p == NULL)
    return ia_error_make (err, errno, "%s %s", name, val);
  *dst = p;
  return 0;
}

static int
parse_args (int argc, char **argv, struct ia_error **err)
{
  const char *ns = "mnt,pid,uts,ipc";
  int i;

  for (i = 1; i < argc; i++)
    {
      const char *arg = argv[i], *val = NULL, *name;
      size_t name_len, k;
      long fd;
      char *end;

      if (strcmp (arg, "--") == 0)
        {
          i++;
          break;
        }
      if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0)
        {
          fputs (usage_text, stdout);
          exit (0);
        }
      if (strncmp (arg, "--", 2) != 0)
        return ia_error_make (err, 0, "unexpected argument \"%s\" (the command goes after \"--\")", arg);

      /* --name VALUE or --name=VALUE */
      name_len = strcspn (arg, "=");
      for (k = 0; k < sizeof options / sizeof options[0]; k++)
        if (strlen (options[k].name) == name_len && strncmp (options[k].name, arg, name_len) == 0)
          break;
      if (k == sizeof options / sizeof options[0])
        return ia_error_make (err, 0, "unknown option %.*s", (int) name_len, arg);
      name = options[k].name;
      if (arg[name_len] == '=')
        val = arg + name_len + 1;
      if (!options[k].has_value)
        {
          if (val != NULL)
            return ia_error_make (err, 0, "%s takes no value", name);
        }
      else if (val == NULL)
        {
          if (i + 1 >= argc || strcmp (argv[i + 1], "--") == 0)
            return ia_error_make (err, 0, "%s needs a value", name);
          val = argv[++i];
        }
      if (val != NULL && *val == '\0')
        return ia_error_make (err, 0, "%s needs a non-empty value", name);

      switch (options[k].id)
        {
        case OPT_ROOT:
          if (set_path (&cfg.root, name, val, err) < 0)
            return -1;
          break;
        case OPT_LOG:
          if (set_path (&cfg.log, name, val, err) < 0)
            return -1;
          break;
        case OPT_PIDFILE:
          if (set_path (&cfg.pidfile, name, val, err) < 0)
            return -1;
          break;
        case OPT_STATUS:
          if (set_path (&cfg.status, name, val, err) < 0)
            return -1;
          break;
        case OPT_READY_FD:
          errno = 0;
          fd = strtol (val, &end, 10);
          if (errno != 0 || *end != '\0' || fd < 3 || fd > INT_MAX)
            return ia_error_make (err, 0, "--ready-fd: \"%s\" is not a file descriptor number >= 3", val);
          /* Checks that it is open; the container must not inherit it. */
          if (fcntl ((int) fd, F_SETFD, FD_CLOEXEC) < 0)
            return ia_error_make (err, errno, "--ready-fd %ld", fd);
          cfg.ready_fd = (int) fd;
          break;
        case OPT_NS:
          ns = val;
          break;
        case OPT_HOSTNAME:
          if (strlen (val) > 64)
            return ia_error_make (err, 0, "--hostname: \"%s\" is longer than 64 characters", val);
          cfg.hostname = val;
          break;
        case OPT_SYSTEMD:
          cfg.systemd = true;
          break;
        case OPT_CGROUP:
          if (append (&cfg.cgroups, &cfg.n_cgroups, absolute_path (val), err) < 0)
            return -1;
          break;
        case OPT_ENV:
          if (val[0] == '=' || strchr (val, '=') == NULL)
            return ia_error_make (err, 0, "--env: \"%s\" is not K=V", val);
          if (append (&cfg.env, &cfg.n_env, strdup (val), err) < 0)
            return -1;
          break;
        case OPT_WORKDIR:
          cfg.workdir = val;
          break;
        }
    }

  if (parse_ns (ns, err) < 0)
    return -1;
  if (cfg.systemd)
    cfg.ns_cgroup = true;
  if (cfg.hostname != NULL && !(cfg.clone_flags & CLONE_NEWUTS))
    return ia_error_make (err, 0, "--hostname needs the uts namespace (--ns ...,uts)");
  if (cfg.root == NULL)
    return ia_error_make (err, 0, "--root is required");
  if (cfg.log == NULL)
    return ia_error_make (err, 0, "--log is required");
  if (i >= argc)
    return ia_error_make (err, 0, "no command given (expected \"-- COMMAND [ARG...]\")");
  cfg.argv = &argv[i];
  return 0;
}

/* ------------------------------------------------------ cgroups */

/* How many --cgroup DIRs the supervisor joins the container process to
 * (by writing cgroup.procs) before releasing it. */
static size_t
supervisor_joins (void)
{
  size_t n = 0;

  for (size_t i = 0; i < cfg.n_cgroups; i++)
    if (cgroup_is_v2[i] && (long) i != born_in_cgroup)
      n++;
  return n;
}

/* In the container process: join every v1 --cgroup DIR by writing "0"
 * to DIR/tasks.  For a single-threaded process that moves the whole
 * process, like writing its pid to cgroup.procs, but a task moving only
 * itself spares the kernel the global cgroup_threadgroup_rwsem (whose
 * write lock waits for an RCU grace period, ~5-20 ms); cgroup2 has no
 * such per-thread move for domain groups (cgroup.threads). */
static int
join_v1_cgroups (struct ia_error **err)
{
  char path[PATH_MAX];

  for (size_t i = 0; i < cfg.n_cgroups; i++)
    {
      int fd;
      if (cgroup_is_v2[i])
        continue;
      if ((size_t) snprintf (path, sizeof path, "%s/tasks", cfg.cgroups[i]) >= sizeof path)
        return ia_error_make (err, ENAMETOOLONG, "joining cgroup %s", cfg.cgroups[i]);
      fd = open (path, O_WRONLY | O_CLOEXEC);
      if (fd < 0)
        return ia_error_make (err, errno, "joining cgroup %s", cfg.cgroups[i]);
      if (write_all (fd, "0\n", 2) < 0)
        {
          int saved = errno;
          close (fd);
          return ia_error_make (err, saved, "joining cgroup %s", cfg.cgroups[i]);
        }
      close (fd);
    }
  return 0;
}

/* ------------------------------------------------------ container side */

static void
reset_signals (void)
{
  sigset_t all;

  /* The supervisor ignores SIGHUP, SIGTERM...; the container must not
   * inherit that. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal (sig, SIG_DFL);
  sigemptyset (&all);
  sigprocmask (SIG_SETMASK, &all, NULL);
}

static int
bring_up_loopback (struct ia_error **err)
{
  struct ifreq ifr;
  int s;

  s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return ia_error_make (err, errno, "bringing up lo");
  memset (&ifr, 0, sizeof ifr);
  memcpy (ifr.ifr_name, "lo", sizeof "lo");
  if (ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    goto fail;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    goto fail;
  close (s);
  return 0;

fail:
  {
    int saved = errno;
    close (s);
    return ia_error_make (err, saved, "bringing up lo");
  }
}

static int
set_environment (struct ia_error **err)
{
  if (clearenv () != 0)
    return ia_error_make (err, ENOMEM, "setting the environment");
  if (setenv ("PATH", DEFAULT_PATH, 1) < 0 || setenv ("HOME", "/", 1) < 0
      || setenv ("TERM", "xterm", 1) < 0)
    return ia_error_make (err, errno, "setting the environment");
  if (cfg.systemd && setenv ("container", "imageapi", 1) < 0)
    return ia_error_make (err, errno, "setting the environment");
  for (size_t i = 0; i < cfg.n_env; i++)
    {
      char *kv = cfg.env[i], *eq = strchr (kv, '=');
      int ret;
      *eq = '\0';
      ret = setenv (kv, eq + 1, 1);
      *eq = '=';
      if (ret < 0)
        return ia_error_make (err, errno, "setting the environment: %s", kv);
    }
  return 0;
}

/* All steps of the container process up to the exec.  Returns only on
 * failure, with *code set to the exit code to use. */
static int
setup_container (int exec_fd, int *code, struct ia_error **err)
{
  int rootfd = -1;

  *code = CODE_SETUP_FAILED;

  /* The supervisor has put us into our cgroup2 group(s); v1 ones we join
   * ourselves, first thing. */
  if (join_v1_cgroups (err) < 0)
    return -1;
  /* We are in our cgroups now: our cgroup root becomes our cgroup. */
  if (cfg.ns_cgroup && unshare (CLONE_NEWCGROUP) < 0)
    return ia_error_make (err, errno, "creating the cgroup namespace");

  umask (0);
  if (ia_make_mounts_private (err) < 0)
    return -1;
  if (ia_prepare_root (cfg.root, &rootfd, err) < 0)
    return -1;
  if (ia_mount_filesystems (rootfd, &cfg, err) < 0)
    return -1;
  if (ia_make_devices (rootfd, err) < 0)
    return -1;
  if (ia_make_dev_links (rootfd, err) < 0)
    return -1;
  if (ia_pivot_root (rootfd, err) < 0)
    return -1;
  close (rootfd);

  if (cfg.hostname != NULL && sethostname (cfg.hostname, strlen (cfg.hostname)) < 0)
    return ia_error_make (err, errno, "setting the hostname");
  if (cfg.ns_net && bring_up_loopback (err) < 0)
    return -1;
  if (set_environment (err) < 0)
    return -1;
  if (chdir (cfg.workdir) < 0)
    return ia_error_make (err, errno, "changing to the working directory %s", cfg.workdir);
  umask (022);
  close_fds_except (exec_fd);

  ia_log ("executing init %s", cfg.argv[0]);
  /* Tell the supervisor we got this far: EOF after this byte (the pipe
   * is O_CLOEXEC) means the exec succeeded. */
  if (write_all (exec_fd, EXEC_REACHED, 1) < 0)
    return ia_error_make (err, errno, "executing %s: reporting to the supervisor", cfg.argv[0]);
  execvp (cfg.argv[0], cfg.argv);
  *code = CODE_EXEC_FAILED;
  return ia_error_make (err, errno, "executing %s", cfg.argv[0]);
}

static void __attribute__ ((noreturn))
container_main (int sync_fd, int exec_fd)
{
  struct ia_error *err = NULL;
  char text[4096];
  int code;
  ssize_t n;
  char go = 0;

  reset_signals ();
  prctl (PR_SET_NAME, "imageapi-init", 0, 0, 0);

  /* Wait until the supervisor has put us into our cgroup2 group(s)
   * (nothing to wait for when we were created in our only one). */
  if (supervisor_joins () > 0)
    {
      do
        n = read (sync_fd, &go, 1);
      while (n < 0 && errno == EINTR);
      if (n != 1 || go != 'g')
        _exit (CODE_SETUP_FAILED);
    }
  close (sync_fd);

  setup_container (exec_fd, &code, &err);

  /* The supervisor logs the error and reports it. */
  text[0] = EXEC_FAILED[0];
  ia_error_text (err, text + 1, sizeof text - 1);
  (void) write_all (exec_fd, text, strlen (text));
  _exit (code);
}

/* ------------------------------------------------------ supervisor side */

static int
setup_stdio (struct ia_error **err)
{
  int fd, logfd;

  /* Make sure 0, 1 and 2 are taken, so that no file we open lands there. */
  while ((fd = open ("/dev/null", O_RDWR)) >= 0 && fd < 3)
    ;
  if (fd < 0)
    return ia_error_make (err, errno, "opening /dev/null");
  logfd = open (cfg.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (logfd < 0)
    {
      int saved = errno;
      close (fd);
      return ia_error_make (err, saved, "opening the log file %s", cfg.log);
    }
  if (dup2 (fd, STDIN_FILENO) < 0 || dup2 (logfd, STDOUT_FILENO) < 0 || dup2 (logfd, STDERR_FILENO) < 0)
    return ia_error_make (err, errno, "redirecting stdio to the log file");
  close (fd);
  close (logfd);
  ia_log_set_fd (STDERR_FILENO);
  log_is_set_up = true;
  return 0;
}

/* Write PID into DIR/cgroup.procs of the cgroup2 --cgroup DIRs it was
 * not created in. */
static int
join_cgroups (pid_t pid, struct ia_error **err)
{
  char path[PATH_MAX], buf[32];
  int n = snprintf (buf, sizeof buf, "%d\n", (int) pid);

  for (size_t i = 0; i < cfg.n_cgroups; i++)
    {
      int fd;
      if (!cgroup_is_v2[i] || (long) i == born_in_cgroup)
        continue;
      if ((size_t) snprintf (path, sizeof path, "%s/cgroup.procs", cfg.cgroups[i]) >= sizeof path)
        return ia_error_make (err, ENAMETOOLONG, "joining cgroup %s", cfg.cgroups[i]);
      fd = open (path, O_WRONLY | O_CLOEXEC);
      if (fd < 0)
        return ia_error_make (err, errno, "joining cgroup %s", cfg.cgroups[i]);
      if (write_all (fd, buf, (size_t) n) < 0)
        {
          int saved = errno;
          close (fd);
          return ia_error_make (err, saved, "joining cgroup %s", cfg.cgroups[i]);
        }
      close (fd);
    }
  return 0;
}

/* Fill cgroup_is_v2 (a directory that cannot be checked counts as v1:
 * joining it then reports the error). */
static int
classify_cgroups (struct ia_error **err)
{
  cgroup_is_v2 = calloc (cfg.n_cgroups + 1, sizeof *cgroup_is_v2);
  if (cgroup_is_v2 == NULL)
    return ia_error_make (err, ENOMEM, "checking the cgroups");
  for (size_t i = 0; i < cfg.n_cgroups; i++)
    {
      struct statfs sfs;
      cgroup_is_v2[i] = statfs (cfg.cgroups[i], &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
    }
  return 0;
}

/* An fd of the first cgroup2 --cgroup DIR and its index in *INDEX; -1 if
 * there is none (or it cannot be opened: writing cgroup.procs then
 * reports the error). */
static int
open_v2_cgroup (long *index)
{
  for (size_t i = 0; i < cfg.n_cgroups; i++)
    if (cgroup_is_v2[i])
      {
        int fd = open (cfg.cgroups[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
          return -1;
        *index = (long) i;
        return fd;
      }
  return -1;
}

/* Create the container process: fork-like (no new stack), the child
 * returns 0 and continues in the caller.  Into the first cgroup2
 * directory directly when the kernel can (clone3 CLONE_INTO_CGROUP,
 * Linux >= 5.7); otherwise plain clone(), and the supervisor joins it to
 * every cgroup2 --cgroup through cgroup.procs. */
static pid_t
clone_container (void)
{
  long index = -1;
  int cgfd = getenv (ENV_NO_CLONE3) == NULL ? open_v2_cgroup (&index) : -1;

  if (cgfd >= 0)
    {
      struct ia_clone_args args;
      long ret;

      memset (&args, 0, sizeof args);
      args.flags = (uint64_t) (unsigned) cfg.clone_flags | CLONE_INTO_CGROUP;
      args.exit_signal = SIGCHLD;
      args.cgroup = (uint64_t) cgfd;
      born_in_cgroup = index;
      ret = syscall (SYS_clone3, &args, sizeof args);
      if (ret == 0)
        return 0;
      close (cgfd);
      if (ret > 0)
        return (pid_t) ret;
      born_in_cgroup = -1;
      /* ENOSYS (< 5.3), E2BIG/EINVAL (< 5.7, no CLONE_INTO_CGROUP), or
       * the cgroup refused (EBUSY, EPERM, ...): the old path reports
       * such errors as "joining cgroup DIR: ...". */
    }
  return (pid_t) syscall (SYS_clone, (unsigned long) cfg.clone_flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* Read what the container process reports about its exec: EXEC_REACHED
 * then EOF when the exec succeeded, EXEC_FAILED + text when a step
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

  if (*p == EXEC_REACHED[0])
    {
      reached = true;
      p++;
    }
  if (*p == EXEC_FAILED[0])
    snprintf (buf, len, "%s", p + 1);
  else if (reached)
    buf[0] = '\0';
  else
    /* Killed (or crashed) before it could tell us anything. */
    snprintf (buf, len, "the container process died before executing %s", cfg.argv[0]);
}

static int
supervise (void)
{
  struct ia_error *err = NULL;
  int sync_pipe[2], exec_pipe[2];
  char start_error[4096] = "";
  int wstatus = 0, exit_code, sig;
  pid_t pid, w;

  close_fds_except (cfg.ready_fd);
  if (setup_stdio (&err) < 0)
    die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);

  if (getsid (0) != getpid ())
    (void) setsid (); /* fails only for a process group leader: keep going */
  signal (SIGHUP, SIG_IGN);
  signal (SIGINT, SIG_IGN);
  signal (SIGTERM, SIG_IGN);
  signal (SIGPIPE, SIG_IGN);
  if (prctl (PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
    {
      ia_error_make (&err, errno, "becoming a child subreaper");
      die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);
    }
  prctl (PR_SET_NAME, "imageapi-shim", 0, 0, 0);
  /* Do not keep the agent's working directory busy. */
  if (chdir ("/") < 0)
    {
      ia_error_make (&err, errno, "changing into /");
      die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);
    }

  /* A new time namespace applies to our children only. */
  if (cfg.ns_time && unshare (CLONE_NEWTIME) < 0)
    {
      ia_error_make (&err, errno, "creating the time namespace");
      die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);
    }

  if (classify_cgroups (&err) < 0)
    die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);
  if (pipe2 (sync_pipe, O_CLOEXEC) < 0 || pipe2 (exec_pipe, O_CLOEXEC) < 0)
    {
      ia_error_make (&err, errno, "creating pipes");
      die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);
    }

  pid = clone_container ();
  if (pid < 0)
    {
      ia_error_make (&err, errno, "creating the container process");
      die (EXIT_START_FAILED, CODE_SETUP_FAILED, err);
    }
  if (pid == 0)
    {
      close (sync_pipe[1]);
      close (exec_pipe[0]);
      container_main (sync_pipe[0], exec_pipe[1]);
    }
  close (sync_pipe[0]);
  close (exec_pipe[1]);

  /* Into the (other) cgroups before the container does anything; closing
   * the pipe without "g" makes the child exit. */
  if (join_cgroups (pid, &err) < 0)
    ia_error_text (err, start_error, sizeof start_error);
  else if (supervisor_joins () > 0)
    (void) write_all (sync_pipe[1], "g", 1);
  close (sync_pipe[1]);

  if (start_error[0] == '\0')
    read_exec_result (exec_pipe[0], start_error, sizeof start_error);
  close (exec_pipe[0]);

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
      if (cfg.pidfile != NULL && write_file_atomic (cfg.pidfile, buf, &err) < 0)
        {
          char text[4096];
          ia_log ("%s", ia_error_text (err, text, sizeof text));
          ia_error_free (&err);
        }
    }

  /* Wait for PID 1, reaping whatever else gets reparented to us. */
  for (;;)
    {
      int st;
      w = waitpid (-1, &st, __WALL);
      if (w < 0)
        {
          if (errno == EINTR)
            continue;
          /* ECHILD: cannot happen while PID 1 is our child. */
          wstatus = 0;
          break;
        }
      if (w == pid)
        {
          wstatus = st;
          break;
        }
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
  ia_error_free (&err);
  if (write_status (exit_code, sig, start_error[0] ? start_error : NULL, &err) < 0)
    {
      char text[4096];
      ia_log ("%s", ia_error_text (err, text, sizeof text));
      ia_error_free (&err);
    }

  /* Reap what is already gone; the rest is left to the host's init. */
  while (waitpid (-1, NULL, WNOHANG | __WALL) > 0)
    ;
  return start_error[0] ? EXIT_START_FAILED : 0;
}

int
main (int argc, char **argv)
{
  struct ia_error *err = NULL;

  signal (SIGPIPE, SIG_IGN);
  tzset ();
  if (parse_args (argc, argv, &err) < 0)
    die (EXIT_USAGE, CODE_SETUP_FAILED, err);
  return supervise ();
}
