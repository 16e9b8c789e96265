/* Unit tests of the command line parser (args.c).
 *   make -C native test      (or build/test/args-test, run by
 *                             test/native/init-helper.sh)
 * One "ok   NAME" / "FAIL NAME: why" line per check, then
 * "N passed, M failed"; exit status 1 if M > 0. */
#include "args.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int passed, failed;

static void check (const char *name, bool ok, const char *fmt, ...) __attribute__ ((format (printf, 3, 4)));

static void
check (const char *name, bool ok, const char *fmt, ...)
{
  va_list ap;

  if (ok)
    {
      passed++;
      printf ("ok   %s\n", name);
      return;
    }
  failed++;
  printf ("FAIL %s: ", name);
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
}

static void
check_str (const char *name, const char *want, const char *got)
{
  bool same = (want == NULL && got == NULL) || (want != NULL && got != NULL && strcmp (want, got) == 0);
  check (name, same, "want [%s], got [%s]", want ? want : "(null)", got ? got : "(null)");
}

static void
check_int (const char *name, long want, long got)
{
  check (name, want == got, "want %ld, got %ld", want, got);
}

/* Parse the NULL-terminated arguments (argv[0] is added). */
static int
parse (struct ia_config *cfg, struct ia_error **err, ...)
{
  static char *argv[64];
  va_list ap;
  int argc = 0;
  char *a;

  argv[argc++] = (char *) "imageapi-init";
  va_start (ap, err);
  while ((a = va_arg (ap, char *)) != NULL && argc < 63)
    argv[argc++] = a;
  va_end (ap);
  argv[argc] = NULL;
  ia_error_free (err);
  return ia_parse_args (argc, argv, cfg, err);
}

/* The parse fails with exactly the message WANT. */
static void
check_error (const char *name, const char *want, int ret, struct ia_error *err)
{
  char text[4096];

  if (ret >= 0)
    {
      check (name, false, "parsed (%d), want the error [%s]", ret, want);
      return;
    }
  check_str (name, want, ia_error_text (err, text, sizeof text));
}

#define DEFAULT_NS (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC)

int
main (void)
{
  struct ia_config cfg;
  struct ia_error *err = NULL;
  char cwd[PATH_MAX], want[PATH_MAX + 16];
  int ret, p[2];

  if (getcwd (cwd, sizeof cwd) == NULL)
    {
      perror ("getcwd");
      return 1;
    }

  /* ---- the minimal command line */
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--", "/bin/true", NULL);
  check_int ("minimal: parses", 0, ret);
  check_str ("minimal: root", "/r", cfg.root);
  check_str ("minimal: log", "/l", cfg.log);
  check_int ("minimal: no ready fd", -1, cfg.ready_fd);
  check ("minimal: no pidfile, status, hostname", cfg.pidfile == NULL && cfg.status == NULL && cfg.hostname == NULL,
         "one is set");
  check_int ("minimal: default namespaces mnt,pid,uts,ipc", DEFAULT_NS, cfg.clone_flags);
  check ("minimal: no cgroup/time/net ns, not systemd",
         !cfg.ns_cgroup && !cfg.ns_time && !cfg.ns_net && !cfg.systemd, "one is set");
  check_str ("minimal: workdir /", "/", cfg.workdir);
  check ("minimal: no cgroups, no env", cfg.n_cgroups == 0 && cfg.cgroups == NULL && cfg.n_env == 0,
         "%zu cgroups, %zu env", cfg.n_cgroups, cfg.n_env);
  check_str ("minimal: command", "/bin/true", cfg.argv ? cfg.argv[0] : NULL);
  check ("minimal: command is NULL-terminated", cfg.argv && cfg.argv[1] == NULL, "not");
  ia_config_free (&cfg);

  /* ---- every option */
  ret = parse (&cfg, &err, "--root=rel/root", "--log", "log.txt", "--pidfile", "/run/p", "--status=st",
               "--ns", "mnt,net,cgroup,time", "--systemd", "--cgroup", "/sys/fs/cgroup/a", "--cgroup=b",
               "--env", "A=1", "--env=B==2", "--workdir", "/w", "--", "sh", "-c", "--root x", NULL);
  check_int ("all options: parses", 0, ret);
  snprintf (want, sizeof want, "%s/rel/root", cwd);
  check_str ("relative --root made absolute (--name=value form)", want, cfg.root);
  snprintf (want, sizeof want, "%s/log.txt", cwd);
  check_str ("relative --log made absolute", want, cfg.log);
  check_str ("absolute --pidfile kept", "/run/p", cfg.pidfile);
  snprintf (want, sizeof want, "%s/st", cwd);
  check_str ("--status=st made absolute", want, cfg.status);
  check_int ("--ns mnt,net,cgroup,time: clone flags", CLONE_NEWNS | CLONE_NEWNET, cfg.clone_flags);
  check ("--ns net/cgroup/time flags", cfg.ns_net && cfg.ns_cgroup && cfg.ns_time, "not all set");
  check ("--systemd", cfg.systemd, "not set");
  check_int ("--cgroup repeatable", 2, (long) cfg.n_cgroups);
  check_str ("--cgroup 1 absolute, in order", "/sys/fs/cgroup/a", cfg.n_cgroups > 0 ? cfg.cgroups[0] : NULL);
  snprintf (want, sizeof want, "%s/b", cwd);
  check_str ("--cgroup 2 made absolute", want, cfg.n_cgroups > 1 ? cfg.cgroups[1] : NULL);
  check ("--cgroup list NULL-terminated", cfg.n_cgroups == 2 && cfg.cgroups[2] == NULL, "not");
  check_int ("--env repeatable", 2, (long) cfg.n_env);
  check_str ("--env 1", "A=1", cfg.n_env > 0 ? cfg.env[0] : NULL);
  check_str ("--env 2 keeps later '='", "B==2", cfg.n_env > 1 ? cfg.env[1] : NULL);
  check_str ("--workdir", "/w", cfg.workdir);
  check_str ("command", "sh", ret == 0 ? cfg.argv[0] : NULL);
  check_str ("command args after -- are not options", "--root x", ret == 0 ? cfg.argv[2] : NULL);
  check ("command argv ends", ret == 0 && cfg.argv[3] == NULL, "not");
  ia_config_free (&cfg);

  /* ---- namespaces */
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt", "--", "x", NULL);
  check_int ("--ns mnt alone: only CLONE_NEWNS", CLONE_NEWNS, ret == 0 ? cfg.clone_flags : -1);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--systemd", "--", "x", NULL);
  check ("--systemd implies the cgroup ns", ret == 0 && cfg.ns_cgroup, "ret %d, ns_cgroup %d", ret,
         cfg.ns_cgroup);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt,uts", "--hostname", "c1", "--", "x", NULL);
  check_str ("--hostname with uts", "c1", ret == 0 ? cfg.hostname : NULL);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--ns", "pid,uts", "--root", "/r", "--log", "/l", "--", "x", NULL);
  check_error ("--ns without mnt", "--ns: the mnt namespace is required", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt,user", "--", "x", NULL);
  check_error ("--ns user needs the maps",
               "the user namespace (--ns ...,user) needs --uid-map and --gid-map, and they need it", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--uid-map", "0:100000:65536", "--", "x", NULL);
  check_error ("--uid-map needs the user ns",
               "the user namespace (--ns ...,user) needs --uid-map and --gid-map, and they need it", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt,user", "--uid-map", "0:100000:65536",
               "--uid-map", "65536:1000:1", "--gid-map", "0:100000:65536", "--", "x", NULL);
  check_str ("--uid-map lines", "0 100000 65536\n65536 1000 1\n", ret == 0 ? cfg.uid_map : NULL);
  check ("--ns user sets CLONE_NEWUSER", ret == 0 && cfg.userns && (cfg.clone_flags & CLONE_NEWUSER), "ret %d", ret);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt,user", "--uid-map", "0:100000",
               "--gid-map", "0:100000:65536", "--", "x", NULL);
  check_error ("--uid-map malformed", "--uid-map: \"0:100000\" is not CONTAINER_ID:HOST_ID:COUNT", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--caps", "CAP_CHOWN,kill,sys_admin", "--user", "1000:100",
               "--no-new-privs", "--seccomp", "default", "--mask-paths", "--", "x", NULL);
  check ("--caps, --user, --no-new-privs, --seccomp, --mask-paths",
         ret == 0 && cfg.privs.set_caps && cfg.privs.caps == ((1ull << 0) | (1ull << 5) | (1ull << 21))
           && cfg.privs.set_user && cfg.privs.uid == 1000 && cfg.privs.gid == 100 && cfg.privs.no_new_privs
           && cfg.seccomp == IA_SECCOMP_DEFAULT && cfg.mask_paths,
         "ret %d caps %llx", ret, (unsigned long long) cfg.privs.caps);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--caps", "chown,bogus", "--", "x", NULL);
  check_error ("--caps unknown", "--caps: unknown capability \"bogus\"", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--seccomp", "strict", "--", "x", NULL);
  check_error ("--seccomp unknown",
               "--seccomp: unknown profile \"strict\" (known: default, systemd, unconfined)", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--user", "0", "--", "x", NULL);
  check_error ("--user malformed", "--user: \"0\" is not UID:GID", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt,bogus", "--", "x", NULL);
  check_error ("--ns unknown name",
               "--ns: unknown namespace \"bogus\" (known: mnt,pid,uts,ipc,net,cgroup,time,user)", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ns", "mnt", "--hostname", "x", "--", "x", NULL);
  check_error ("--hostname needs uts", "--hostname needs the uts namespace (--ns ...,uts)", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--hostname",
               "12345678901234567890123456789012345678901234567890123456789012345", "--", "x", NULL);
  check_error ("--hostname longer than 64",
               "--hostname: \"12345678901234567890123456789012345678901234567890123456789012345\" is longer "
               "than 64 characters",
               ret, err);
  ia_config_free (&cfg);

  /* ---- required parts */
  ret = parse (&cfg, &err, "--log", "/l", "--", "x", NULL);
  check_error ("--root required", "--root is required", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--", "x", NULL);
  check_error ("--log required", "--log is required", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", NULL);
  check_error ("command required", "no command given (expected \"-- COMMAND [ARG...]\")", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--", NULL);
  check_error ("empty command after --", "no command given (expected \"-- COMMAND [ARG...]\")", ret, err);
  ia_config_free (&cfg);

  /* ---- malformed options */
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "x", NULL);
  check_error ("positional argument before --",
               "unexpected argument \"x\" (the command goes after \"--\")", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root", "/r", "--bogus=1", NULL);
  check_error ("unknown option (name without =value)", "unknown option --bogus", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--rootx", "/r", NULL);
  check_error ("option names match exactly", "unknown option --rootx", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--systemd=yes", NULL);
  check_error ("flag with a value", "--systemd takes no value", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--log", "/l", "--cgroup", NULL);
  check_error ("value missing at the end", "--cgroup needs a value", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--log", "/l", "--root", "--", "x", NULL);
  check_error ("-- is not a value", "--root needs a value", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--root=", NULL);
  check_error ("empty value", "--root needs a non-empty value", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--env", "NOEQ", NULL);
  check_error ("--env without =", "--env: \"NOEQ\" is not K=V", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--env", "=v", NULL);
  check_error ("--env without a name", "--env: \"=v\" is not K=V", ret, err);
  ia_config_free (&cfg);

  /* ---- --ready-fd */
  ret = parse (&cfg, &err, "--ready-fd", "2", NULL);
  check_error ("--ready-fd below 3", "--ready-fd: \"2\" is not a file descriptor number >= 3", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--ready-fd", "3x", NULL);
  check_error ("--ready-fd not a number", "--ready-fd: \"3x\" is not a file descriptor number >= 3", ret, err);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "--ready-fd", "99999999999999999999", NULL);
  check_error ("--ready-fd out of range",
               "--ready-fd: \"99999999999999999999\" is not a file descriptor number >= 3", ret, err);
  ia_config_free (&cfg);
  {
    /* A number that is surely not an open fd: one just closed. */
    char closed[16], msg[64];
    int fd = dup (1);
    close (fd);
    snprintf (closed, sizeof closed, "%d", fd);
    snprintf (msg, sizeof msg, "--ready-fd %d: Bad file descriptor", fd);
    ret = parse (&cfg, &err, "--ready-fd", closed, NULL);
    check_error ("--ready-fd not open", msg, ret, err);
    ia_config_free (&cfg);
  }
  if (pipe (p) == 0)
    {
      char fd[16];
      snprintf (fd, sizeof fd, "%d", p[1]);
      ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--ready-fd", fd, "--", "x", NULL);
      check_int ("--ready-fd N", p[1], ret == 0 ? cfg.ready_fd : -1);
      check ("--ready-fd made close-on-exec", fcntl (p[1], F_GETFD) == FD_CLOEXEC, "flags %d",
             fcntl (p[1], F_GETFD));
      ia_config_free (&cfg);
      /* Parsed before a later error: the error is reported on it. */
      ret = parse (&cfg, &err, "--ready-fd", fd, "--ns", "mnt,user", "--", "x", NULL);
      check ("--ready-fd kept when a later option fails", ret < 0 && cfg.ready_fd == p[1], "ret %d, fd %d", ret,
             cfg.ready_fd);
      ia_config_free (&cfg);
      close (p[0]);
      close (p[1]);
    }
  else
    check ("--ready-fd N", false, "pipe: %s", strerror (errno));

  /* ---- what was parsed before an error stays (die() reports there) */
  ret = parse (&cfg, &err, "--log", "/l", "--status", "/s", "--bogus", NULL);
  check ("log and status kept when a later option fails",
         ret < 0 && cfg.log && strcmp (cfg.log, "/l") == 0 && cfg.status && strcmp (cfg.status, "/s") == 0,
         "ret %d, log %s, status %s", ret, cfg.log ? cfg.log : "(null)", cfg.status ? cfg.status : "(null)");
  ia_config_free (&cfg);

  /* ---- repeated options: the last one wins */
  ret = parse (&cfg, &err, "--root", "/a", "--root", "/b", "--log", "/l", "--workdir", "/x", "--workdir", "/y",
               "--", "x", NULL);
  check_str ("repeated --root: the last", "/b", ret == 0 ? cfg.root : NULL);
  check_str ("repeated --workdir: the last", "/y", ret == 0 ? cfg.workdir : NULL);
  ia_config_free (&cfg);

  /* ---- --help */
  ret = parse (&cfg, &err, "--help", NULL);
  check_int ("--help", IA_ARGS_HELP, ret);
  ia_config_free (&cfg);
  ret = parse (&cfg, &err, "-h", "--bogus", NULL);
  check_int ("-h before anything else", IA_ARGS_HELP, ret);
  ia_config_free (&cfg);
  check ("usage text names every option",
         strstr (ia_usage_text, "--root DIR") && strstr (ia_usage_text, "--cgroup DIR")
           && strstr (ia_usage_text, "-- COMMAND"),
         "%s", ia_usage_text);

  /* ---- ia_config_free resets */
  ret = parse (&cfg, &err, "--root", "/r", "--log", "/l", "--cgroup", "/c", "--env", "A=1", "--", "x", NULL);
  ia_config_free (&cfg);
  check ("ia_config_free resets the config",
         cfg.root == NULL && cfg.log == NULL && cfg.cgroups == NULL && cfg.env == NULL && cfg.n_cgroups == 0
           && cfg.n_env == 0 && cfg.ready_fd == -1 && strcmp (cfg.workdir, "/") == 0,
         "not reset");
  ia_error_free (&err);

  printf ("%d passed, %d failed\n", passed, failed);
  return failed > 0;
}
