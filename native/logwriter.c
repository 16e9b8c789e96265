/* The log writer process: see logwriter.h. */
#include "logwriter.h"

#include "log.h"
#include "utils.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* A longer line is written in pieces of this size (each a line of its own). */
#define LINE_MAX_BYTES (16 * 1024)

enum { IN_RAW, IN_OUT, IN_ERR, N_IN };
static const char *const stream_name[N_IN] = { NULL, "stdout", "stderr" };

struct input
{
  int fd;
  char buf[LINE_MAX_BYTES];
  size_t len;
};

struct sink
{
  const char *path;
  int fd;
  long long size;
  long long max_size;
  int max_files;
  bool stamps;
};

int
ia_log_rotate (const char *path, int max_files)
{
  char from[PATH_MAX], to[PATH_MAX];

  if (max_files <= 1)
    return truncate (path, 0);
  snprintf (to, sizeof to, "%s.%d", path, max_files - 1);
  (void) unlink (to);
  for (int i = max_files - 2; i >= 1; i--)
    {
      snprintf (from, sizeof from, "%s.%d", path, i);
      snprintf (to, sizeof to, "%s.%d", path, i + 1);
      if (rename (from, to) < 0 && errno != ENOENT)
        return -1;
    }
  snprintf (to, sizeof to, "%s.1", path);
  return rename (path, to);
}

static int
sink_open (struct sink *s)
{
  struct stat st;

  s->fd = open (s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (s->fd < 0)
    return -1;
  s->size = fstat (s->fd, &st) == 0 ? (long long) st.st_size : 0;
  return 0;
}

/* Write one line (LEN bytes, with its newline), rotating first when it would pass the cap. */
static void
sink_write (struct sink *s, const char *line, size_t len)
{
  if (s->max_size > 0)
    {
      struct stat st;
      /* The agent appends its own lines by name: count them too. */
      if (fstat (s->fd, &st) == 0)
        s->size = (long long) st.st_size;
      if (s->size > 0 && s->size + (long long) len > s->max_size)
        {
          close (s->fd);
          if (ia_log_rotate (s->path, s->max_files) < 0 || sink_open (s) < 0)
            {
              /* Keep writing where we can rather than lose the output. */
              s->fd = open (s->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
              if (s->fd < 0)
                return;
            }
          s->size = 0;
        }
    }
  if (ia_write_all (s->fd, line, len) == 0)
    s->size += (long long) len;
}

static void
emit (struct sink *s, int which, const char *text, size_t len)
{
  char line[LINE_MAX_BYTES + 64];
  size_t n = 0;

  if (which != IN_RAW && s->stamps)
    {
      struct timeval tv;
      struct tm tm;
      gettimeofday (&tv, NULL);
      if (localtime_r (&tv.tv_sec, &tm) == NULL)
        memset (&tm, 0, sizeof tm);
      n = strftime (line, sizeof line, "%Y/%m/%d %H:%M:%S", &tm);
      n += (size_t) snprintf (line + n, sizeof line - n, ".%06ld %s: ", (long) tv.tv_usec, stream_name[which]);
    }
  memcpy (line + n, text, len);
  n += len;
  line[n++] = '\n';
  sink_write (s, line, n);
}

/* Split what came into lines; a line that fills the buffer is written as it is. */
static void
drain (struct sink *s, int which, struct input *in, bool eof)
{
  size_t start = 0;

  for (size_t i = 0; i < in->len; i++)
    if (in->buf[i] == '\n')
      {
        emit (s, which, in->buf + start, i - start);
        start = i + 1;
      }
  if (start < in->len && (eof || (start == 0 && in->len == sizeof in->buf)))
    {
      emit (s, which, in->buf + start, in->len - start);
      start = in->len;
    }
  memmove (in->buf, in->buf + start, in->len - start);
  in->len -= start;
}

static void __attribute__ ((noreturn))
writer_main (struct sink *s, struct input *in)
{
  struct pollfd pfd[N_IN];
  int open_inputs = N_IN;

  (void) prctl (PR_SET_NAME, "imageapi-log", 0, 0, 0);
  /* Like the supervisor: the agent's signals and its going away do not concern us. */
  signal (SIGHUP, SIG_IGN);
  signal (SIGINT, SIG_IGN);
  signal (SIGTERM, SIG_IGN);
  signal (SIGPIPE, SIG_IGN);
  if (sink_open (s) < 0)
    _exit (1);
  while (open_inputs > 0)
    {
      for (int i = 0; i < N_IN; i++)
        {
          pfd[i].fd = in[i].fd;
          pfd[i].events = POLLIN;
          pfd[i].revents = 0;
        }
      if (poll (pfd, N_IN, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          _exit (1);
        }
      /* In order: init's lines before the output they precede. */
      for (int i = 0; i < N_IN; i++)
        {
          if (in[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
          ssize_t n = read (in[i].fd, in[i].buf + in[i].len, sizeof in[i].buf - in[i].len);
          if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
          if (n <= 0)
            {
              drain (s, i, &in[i], true);
              close (in[i].fd);
              in[i].fd = -1;
              open_inputs--;
              continue;
            }
          in[i].len += (size_t) n;
          drain (s, i, &in[i], false);
        }
    }
  _exit (0);
}

int
ia_logwriter_start (struct ia_logwriter *lw, const char *path, long long max_size, int max_files, bool stamps,
                    struct ia_error **err)
{
  static struct input in[N_IN];
  static struct sink s;
  int p[N_IN][2];
  pid_t pid;

  lw->pid = -1;
  lw->raw_fd = -1;
  for (int i = 0; i < N_IN; i++)
    if (pipe2 (p[i], O_CLOEXEC) < 0)
      return ia_error_make (err, errno, "creating the log pipes");
  s = (struct sink){ .path = path, .fd = -1, .max_size = max_size, .max_files = max_files < 1 ? 1 : max_files, .stamps = stamps };
  pid = fork ();
  if (pid < 0)
    return ia_error_make (err, errno, "starting the log writer");
  if (pid == 0)
    {
      long max = sysconf (_SC_OPEN_MAX);
      int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
      for (int i = 0; i < N_IN; i++)
        {
          close (p[i][1]);
          in[i].fd = p[i][0];
          in[i].len = 0;
        }
      /* Nothing of the supervisor's: the ready fd (the agent waits on it), the log file. */
      if (null >= 0)
        {
          (void) dup2 (null, STDOUT_FILENO);
          (void) dup2 (null, STDERR_FILENO);
        }
      DIR *d = opendir ("/proc/self/fd");
      if (d != NULL)
        {
          struct dirent *e;
          int dfd = dirfd (d);
          while ((e = readdir (d)) != NULL)
            {
              int fd = atoi (e->d_name);
              if (fd >= 3 && fd != dfd && fd != in[IN_RAW].fd && fd != in[IN_OUT].fd && fd != in[IN_ERR].fd)
                (void) close (fd);
            }
          closedir (d);
        }
      else
        for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
          if (fd != in[IN_RAW].fd && fd != in[IN_OUT].fd && fd != in[IN_ERR].fd)
            (void) close (fd);
      writer_main (&s, in);
    }
  for (int i = 0; i < N_IN; i++)
    close (p[i][0]);
  /* The container's stdout and stderr (inherited through exec: no O_CLOEXEC on 1 and 2). */
  if (dup2 (p[IN_OUT][1], STDOUT_FILENO) < 0 || dup2 (p[IN_ERR][1], STDERR_FILENO) < 0)
    return ia_error_make (err, errno, "redirecting stdio to the log writer");
  close (p[IN_OUT][1]);
  close (p[IN_ERR][1]);
  lw->raw_fd = p[IN_RAW][1];
  lw->pid = pid;
  ia_log_set_fd (lw->raw_fd);
  return 0;
}

void
ia_logwriter_finish (struct ia_logwriter *lw, int timeout_ms)
{
  int fd = open ("/dev/null", O_WRONLY | O_CLOEXEC);

  if (lw->pid < 0)
    return;
  /* Our copies of the write ends go: EOF once the container's are gone too. */
  if (fd >= 0)
    {
      (void) dup2 (fd, STDOUT_FILENO);
      (void) dup2 (fd, STDERR_FILENO);
      close (fd);
    }
  ia_log_set_fd (STDERR_FILENO);
  if (lw->raw_fd >= 0)
    close (lw->raw_fd);
  lw->raw_fd = -1;
  for (int waited = 0; waited < timeout_ms; waited += 10)
    {
      pid_t w = waitpid (lw->pid, NULL, WNOHANG);
      if (w == lw->pid || (w < 0 && errno != EINTR))
        break;
      struct timespec ts = { 0, 10 * 1000 * 1000 };
      nanosleep (&ts, NULL);
    }
  lw->pid = -1;
}
