/* Start-latency harness for imageapi-init, used by start-bench.sh.
 *
 *   start-bench N WARMUP GAP_MS ROOT WORKDIR V2PARENT V1PARENT HELPER...
 *
 * Per round, for every HELPER and every cgroup mode (none, v2, v2+v1 pids),
 * in an order rotating from round to round: fresh cgroup directories are
 * made (untimed), the helper is spawned the way the agent does (--log,
 * --pidfile, --status, --ready-fd 3, --ns mnt,pid,uts,ipc, --hostname,
 * --cgroup DIR..., -- /bin/true) and the time from just before fork() to
 * the ready line is taken; then (untimed) the helper is waited for and the
 * cgroups are removed, and GAP_MS pass before the next start (the kernel's
 * cgroup migration lock is cheap only right after another migration: an
 * agent starts containers now and then, not back to back).  Prints median,
 * p90 and min per helper and mode.  A helper given as PATH@confined also
 * gets the confinement the agent passes by default (--caps with the OCI
 * set, --no-new-privs, --seccomp default, --mask-paths), so that the cost
 * of those defaults shows next to PATH alone. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MODES 3
static const char *mode_names[MODES] = { "no --cgroup", "--cgroup v2", "--cgroup v2 + v1 pids" };

static double
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int
cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static void
remove_cgroup (const char *dir)
{
  for (int i = 0; i < 1000; i++)
    {
      if (rmdir (dir) == 0 || errno == ENOENT)
        return;
      usleep (1000);
    }
  fprintf (stderr, "start-bench: rmdir %s: %s\n", dir, strerror (errno));
}

/* One start; returns the time in ms to the ready line, < 0 on failure. */
static double
one (const char *helper, int mode, const char *root, const char *work, const char *v2p, const char *v1p, int seq)
{
  char v2[4096], v1[4096], log[4096], pidf[4096], status[4096], line[256];
  const char *argv[40];
  int n = 0, p[2], st;
  double t0, t1;
  ssize_t got = 0, r;
  pid_t pid;

  snprintf (v2, sizeof v2, "%s/b%d", v2p, seq);
  snprintf (v1, sizeof v1, "%s/b%d", v1p, seq);
  snprintf (log, sizeof log, "%s/log", work);
  snprintf (pidf, sizeof pidf, "%s/pid", work);
  snprintf (status, sizeof status, "%s/status", work);
  unlink (pidf);
  unlink (status);
  if (mode >= 1 && mkdir (v2, 0755) < 0)
    return -1;
  if (mode >= 2 && mkdir (v1, 0755) < 0)
    return -1;

  /* "PATH@confined": the agent's default confinement too (see the top). */
  const char *suffix = strstr (helper, "@confined");
  char path[4096];
  snprintf (path, sizeof path, "%.*s", suffix ? (int) (suffix - helper) : (int) strlen (helper), helper);

  argv[n++] = path;
  argv[n++] = "--root"; argv[n++] = root;
  argv[n++] = "--log"; argv[n++] = log;
  argv[n++] = "--ready-fd"; argv[n++] = "3";
  argv[n++] = "--pidfile"; argv[n++] = pidf;
  argv[n++] = "--status"; argv[n++] = status;
  argv[n++] = "--ns"; argv[n++] = "mnt,pid,uts,ipc";
  argv[n++] = "--hostname"; argv[n++] = "bench";
  if (mode >= 1)
    {
      argv[n++] = "--cgroup"; argv[n++] = v2;
    }
  if (mode >= 2)
    {
      argv[n++] = "--cgroup"; argv[n++] = v1;
    }
  if (suffix)
    {
      argv[n++] = "--caps";
      argv[n++] = "chown,dac_override,fsetid,fowner,mknod,net_raw,setgid,setuid,setfcap,setpcap,"
                  "net_bind_service,sys_chroot,kill,audit_write";
      argv[n++] = "--no-new-privs";
      argv[n++] = "--seccomp"; argv[n++] = "default";
      argv[n++] = "--mask-paths";
    }
  argv[n++] = "--"; argv[n++] = "/bin/true";
  argv[n] = NULL;

  if (pipe2 (p, O_CLOEXEC) < 0)
    return -1;
  t0 = now_ms ();
  pid = fork ();
  if (pid < 0)
    return -1;
  if (pid == 0)
    {
      int nul = open ("/dev/null", O_RDWR);
      dup2 (nul, 0);
      dup2 (nul, 1);
      dup2 (nul, 2);
      dup2 (p[1], 3);
      execv (path, (char **) argv);
      _exit (127);
    }
  close (p[1]);
  while ((r = read (p[0], line + got, sizeof line - 1 - (size_t) got)) > 0)
    {
      got += r;
      if (memchr (line, '\n', (size_t) got) != NULL || (size_t) got == sizeof line - 1)
        break;
    }
  t1 = now_ms ();
  line[got] = '\0';
  close (p[0]);
  waitpid (pid, &st, 0);
  if (mode >= 2)
    remove_cgroup (v1);
  if (mode >= 1)
    remove_cgroup (v2);
  if (strncmp (line, "ok ", 3) != 0)
    {
      fprintf (stderr, "start-bench: %s: ready line [%s]\n", helper, line);
      return -1;
    }
  return t1 - t0;
}

int
main (int argc, char **argv)
{
  int n, warm, gap, nh, seq = 0;
  const char *root, *work, *v2p, *v1p;
  double *samples;

  if (argc < 9)
    {
      fprintf (stderr, "usage: start-bench N WARMUP GAP_MS ROOT WORKDIR V2PARENT V1PARENT HELPER...\n");
      return 2;
    }
  n = atoi (argv[1]);
  warm = atoi (argv[2]);
  gap = atoi (argv[3]);
  root = argv[4];
  work = argv[5];
  v2p = argv[6];
  v1p = argv[7];
  nh = argc - 8;
  if (n < 1 || warm < 0 || gap < 0 || nh < 1)
    return 2;
  samples = calloc ((size_t) (nh * MODES * n), sizeof *samples);
  if (samples == NULL)
    return 1;

  for (int round = 0; round < warm + n; round++)
    for (int k = 0; k < nh * MODES; k++)
      {
        int c = (k + round) % (nh * MODES), h = c / MODES, m = c % MODES;
        double t = one (argv[8 + h], m, root, work, v2p, v1p, seq++);
        if (t < 0)
          return 1;
        usleep ((useconds_t) gap * 1000);
        if (round >= warm)
          samples[(h * MODES + m) * n + (round - warm)] = t;
      }

  printf ("%-44s %-22s %8s %8s %8s\n", "helper", "cgroups", "median", "p90", "min");
  for (int h = 0; h < nh; h++)
    for (int m = 0; m < MODES; m++)
      {
        double *s = samples + (h * MODES + m) * n;
        qsort (s, (size_t) n, sizeof *s, cmp);
        printf ("%-44s %-22s %8.2f %8.2f %8.2f\n", argv[8 + h], mode_names[m], s[n / 2], s[(n * 9) / 10], s[0]);
      }
  return 0;
}
