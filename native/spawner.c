/* imageapi-spawner: the agent's fork server.
 *
 * Every external tool the agent runs (losetup, mount, umount, nft, rbd, …) and every container
 * supervisor it starts would otherwise be a fork of the agent's ~110 MB node process, on its main
 * thread (3-10 ms each).  This small process is started once; it forks itself instead (~0.1 ms)
 * and reports back.  One request at a time is read from stdin, answers are written to stdout;
 * any number of children run at once, watched by one poll loop.
 *
 * Wire format, both ways: a frame is a little-endian u32 byte count, then fields, each a
 * little-endian u32 length and that many bytes (binary-safe: a tool's output may be anything).
 *
 * Requests:
 *   run  ID MODE CWD HAS_INPUT INPUT NENV ENV… ARGV…
 *        MODE "tool": stdin is INPUT (when HAS_INPUT is "1") or /dev/null, stdout and stderr are
 *        kept (up to 1 MiB each) and sent with the exit.  MODE "detached": its own session,
 *        stdin/stdout /dev/null, stderr kept (4 KiB), fd 3 a pipe whose first line is sent as
 *        "ready" (the container supervisor's protocol).  CWD "" is the spawner's own.  ENV are
 *        "K=V" added to the spawner's environment.  ARGV[0] is looked up in PATH.
 *   kill ID SIGNO
 *        ARGV[0] "@name" is a built-in command run in the forked child (spawner-ops.c).
 * Answers:
 *   started ID PID                  the exec succeeded
 *   failed  ID ERRNO MESSAGE        it did not (fork, chdir or exec); nothing runs
 *   ready   ID GOT LINE             detached only: GOT "1" and the line, or "0" (fd 3 closed first)
 *   exit    ID CODE SIGNAL OVERFLOW STDOUT STDERR
 *
 * The spawner ends when its stdin closes (the agent is gone): the children it started keep
 * running (a supervisor outlives the agent by design), reparented like any orphan. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawner-ops.h"
#include "utils.h"

#define TOOL_MAX (1u << 20)
#define DETACHED_ERR_MAX 4096u
#define READY_MAX 4096u
#define FRAME_MAX (8u << 20)

struct buf
{
  char *data;
  size_t len, cap;
};

struct job
{
  char *id;
  pid_t pid;
  int detached;
  int out, err, ready, in;      /* our ends, -1 once closed */
  struct buf outb, errb, readyb;
  const char *input;            /* into the request's frame copy */
  size_t input_len, input_off;
  char *frame;                  /* the request, kept while input is written */
  int overflow;
  int ready_sent;
  int reaped, status;
  struct job *next;
};

static struct job *jobs;
static struct rlimit original_nofile;

static void
die (const char *what)
{
  fprintf (stderr, "imageapi-spawner: %s: %s\n", what, strerror (errno));
  exit (1);
}

/* ---- frames (an answer is built in a struct buf) ---- */

/* Room for MORE bytes in B (doubling). */
static void
buf_reserve (struct buf *b, size_t more)
{
  if (b->len + more <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->len + more)
    cap *= 2;
  char *d = realloc (b->data, cap);
  if (d == NULL)
    die ("allocating memory");
  b->data = d;
  b->cap = cap;
}

static void
fo_u32 (struct buf *f, uint32_t v)
{
  buf_reserve (f, 4);
  for (int i = 0; i < 4; i++)
    f->data[f->len++] = (char) ((v >> (8 * i)) & 0xff);
}

static void
fo_field (struct buf *f, const void *p, size_t n)
{
  fo_u32 (f, (uint32_t) n);
  buf_reserve (f, n);
  if (n)
    memcpy (f->data + f->len, p, n);
  f->len += n;
}

static void
fo_str (struct buf *f, const char *s)
{
  fo_field (f, s, strlen (s));
}

static void
fo_int (struct buf *f, long v)
{
  char b[32];
  snprintf (b, sizeof b, "%ld", v);
  fo_str (f, b);
}

/* Send the answer built in F (its first 4 bytes are the frame's length, filled here). */
static void
fo_send (struct buf *f)
{
  uint32_t n = (uint32_t) (f->len - 4);
  for (int i = 0; i < 4; i++)
    f->data[i] = (char) ((n >> (8 * i)) & 0xff);
  if (ia_write_all (STDOUT_FILENO, f->data, f->len) < 0)
    exit (errno == EPIPE ? 0 : 1);      /* the agent is gone */
  free (f->data);
  f->data = NULL;
  f->len = f->cap = 0;
}

static void
fo_begin (struct buf *f, const char *type, const char *id)
{
  fo_u32 (f, 0);
  fo_str (f, type);
  fo_str (f, id);
}

static uint32_t
get_u32 (const char *p)
{
  const unsigned char *u = (const unsigned char *) p;
  return (uint32_t) u[0] | ((uint32_t) u[1] << 8) | ((uint32_t) u[2] << 16) | ((uint32_t) u[3] << 24);
}

/* The fields of a frame, NUL-terminated in place: each length word is overwritten by the
 * previous field's terminator, so the frame is copied one byte longer.  Returns the count. */
static size_t
split_fields (char *frame, size_t len, char **fields, size_t max)
{
  size_t n = 0, off = 0;
  while (off + 4 <= len && n < max)
    {
      uint32_t l = get_u32 (frame + off);
      if (l > len - off - 4)
        return (size_t) -1;
      /* Move the field 4 bytes left into the length word's place, then terminate it. */
      memmove (frame + off, frame + off + 4, l);
      frame[off + l] = '\0';
      fields[n++] = frame + off;
      off += 4 + l;
    }
  return off == len ? n : (size_t) -1;
}

/* ---- jobs ---- */

static void
buf_add (struct buf *b, const char *p, size_t n, size_t max, int *overflow)
{
  if (b->len + n > max)
    {
      if (overflow)
        *overflow = 1;
      n = b->len < max ? max - b->len : 0;
    }
  if (n == 0)
    return;
  buf_reserve (b, n);
  memcpy (b->data + b->len, p, n);
  b->len += n;
}

static void
job_free (struct job *j)
{
  for (struct job **p = &jobs; *p; p = &(*p)->next)
    if (*p == j)
      {
        *p = j->next;
        break;
      }
  int fds[] = { j->out, j->err, j->ready, j->in };
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    if (fds[i] >= 0)
      close (fds[i]);
  free (j->outb.data);
  free (j->errb.data);
  free (j->readyb.data);
  free (j->frame);
  free (j->id);
  free (j);
}

static void
send_simple (const char *type, const char *id, const char *a, const char *b)
{
  struct buf f = { 0 };
  fo_begin (&f, type, id);
  if (a)
    fo_str (&f, a);
  if (b)
    fo_str (&f, b);
  fo_send (&f);
}

static void
send_failed (const char *id, int err, const char *what)
{
  char code[16], msg[512];
  snprintf (code, sizeof code, "%d", err);
  snprintf (msg, sizeof msg, "%s: %s", what, strerror (err));
  send_simple ("failed", id, code, msg);
}

static void
send_ready (struct job *j, int got)
{
  if (j->ready_sent)
    return;
  j->ready_sent = 1;
  struct buf f = { 0 };
  fo_begin (&f, "ready", j->id);
  fo_str (&f, got ? "1" : "0");
  fo_field (&f, j->readyb.data, got ? (size_t) ((const char *) memchr (j->readyb.data, '\n', j->readyb.len) - j->readyb.data) : 0);
  fo_send (&f);
}

/* A job is over once it is reaped and its output pipes are closed. */
static void
maybe_finish (struct job *j)
{
  if (!j->reaped || j->out >= 0 || j->err >= 0 || j->ready >= 0)
    return;
  if (j->detached)
    send_ready (j, 0);
  struct buf f = { 0 };
  fo_begin (&f, "exit", j->id);
  fo_int (&f, WIFEXITED (j->status) ? WEXITSTATUS (j->status) : -1);
  fo_int (&f, WIFSIGNALED (j->status) ? WTERMSIG (j->status) : 0);
  fo_str (&f, j->overflow ? "1" : "0");
  fo_field (&f, j->outb.data, j->outb.len);
  fo_field (&f, j->errb.data, j->errb.len);
  fo_send (&f);
  job_free (j);
}

static int
devnull (int flags)
{
  int fd = open ("/dev/null", flags | O_CLOEXEC);
  if (fd < 0)
    die ("opening /dev/null");
  return fd;
}

/* In the child: the fds it gets, default signals, the original fd limit; then exec.  Any
 * failure is written to ERRFD (close-on-exec, so silence means the exec succeeded). */
static void __attribute__ ((noreturn))
child_exec (int errfd, int in, int out, int err, int ready, const char *cwd, char **env, size_t nenv, char **argv)
{
  sigset_t none;
  sigemptyset (&none);
  for (int s = 1; s < NSIG; s++)
    signal (s, SIG_DFL);
  sigprocmask (SIG_SETMASK, &none, NULL);
  setrlimit (RLIMIT_NOFILE, &original_nofile);
  const char *step = "dup2";
  if (dup2 (in, 0) < 0 || dup2 (out, 1) < 0 || dup2 (err, 2) < 0)
    goto fail;
  if (ready >= 0)
    {
      if (dup2 (ready, 3) < 0)
        goto fail;
      if (setsid () < 0)
        {
          step = "setsid";
          goto fail;
        }
    }
  /* errfd must survive the sweep: it is moved above everything else first. */
  {
    int high = fcntl (errfd, F_DUPFD_CLOEXEC, 100);
    if (high < 0)
      goto fail;
    errfd = high;
  }
  ia_close_fds_except2 (ready >= 0 ? 3 : -1, errfd);
  if (cwd[0] && chdir (cwd) < 0)
    {
      step = "chdir";
      goto fail;
    }
  for (size_t i = 0; i < nenv; i++)
    if (putenv (env[i]) != 0)
      {
        step = "putenv";
        goto fail;
      }
  if (argv[0][0] == '@')
    {
      size_t argc = 0;
      while (argv[argc])
        argc++;
      close (errfd);            /* it started: what follows is its own output and status */
      _exit (ia_builtin ((int) argc, argv));
    }
  execvp (argv[0], argv);
  step = "exec";
fail:
  {
    int e = errno;
    char msg[300];
    int n = snprintf (msg, sizeof msg, "%d %s", e, step);
    if (n > 0)
      ia_write_all (errfd, msg, (size_t) n);
    _exit (127);
  }
}

static int
pipe_pair (int p[2])
{
  return pipe2 (p, O_CLOEXEC);
}

static void
set_nonblock (int fd)
{
  int fl = fcntl (fd, F_GETFL);
  if (fl >= 0)
    fcntl (fd, F_SETFL, fl | O_NONBLOCK);
}

/* fields: run ID MODE CWD HAS_INPUT INPUT NENV ENV… ARGV…; FRAME owns them. */
static void
start_run (char **fields, size_t n, char *frame)
{
  char *id = fields[1];
  if (n < 8)
    {
      send_failed (id, EINVAL, "a run request needs a command");
      free (frame);
      return;
    }
  int detached = strcmp (fields[2], "detached") == 0;
  const char *cwd = fields[3];
  int has_input = strcmp (fields[4], "1") == 0;
  size_t nenv = strtoul (fields[6], NULL, 10);
  if (7 + nenv >= n)
    {
      send_failed (id, EINVAL, "a run request needs a command");
      free (frame);
      return;
    }
  char **env = fields + 7;
  size_t argc = n - 7 - nenv;
  char **argv = calloc (argc + 1, sizeof *argv);
  if (argv == NULL)
    die ("allocating argv");
  memcpy (argv, fields + 7 + nenv, argc * sizeof *argv);

  int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2], ready[2] = { -1, -1 }, errp[2];
  int ok = pipe_pair (err) == 0 && pipe_pair (errp) == 0;
  if (ok && !detached)
    ok = pipe_pair (out) == 0 && (!has_input || pipe_pair (in) == 0);
  if (ok && detached)
    ok = pipe_pair (ready) == 0;
  if (!ok)
    die ("creating pipes");     /* out of fds: nothing sensible is left to do */
  if (in[0] < 0)
    in[0] = devnull (O_RDONLY);
  if (out[1] < 0)
    out[1] = devnull (O_WRONLY);

  pid_t pid = fork ();
  if (pid < 0)
    die ("fork");
  if (pid == 0)
    child_exec (errp[1], in[0], out[1], err[1], ready[1], cwd, env, nenv, argv);
  free (argv);
  close (errp[1]);
  close (in[0]);
  close (out[1]);
  close (err[1]);
  if (ready[1] >= 0)
    close (ready[1]);

  char msg[300];
  ssize_t got;
  do
    got = read (errp[0], msg, sizeof msg - 1);
  while (got < 0 && errno == EINTR);
  close (errp[0]);

  if (got > 0)
    {
      /* The child failed before its exec: say why, and reap it here (it has exited or is about
       * to, within microseconds).  Nothing of it is left. */
      msg[got] = '\0';
      const char *step = strchr (msg, ' ');
      send_failed (id, atoi (msg), step ? step + 1 : "exec");
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
      int fds[] = { out[0], err[0], ready[0], in[1] };
      for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
          close (fds[i]);
      free (frame);
      return;
    }

  struct job *j = calloc (1, sizeof *j);
  if (j == NULL || (j->id = strdup (id)) == NULL)
    die ("allocating a job");
  j->pid = pid;
  j->detached = detached;
  j->out = out[0];
  j->err = err[0];
  j->ready = ready[0];
  j->in = in[1];
  j->next = jobs;
  jobs = j;
  set_nonblock (j->err);
  if (j->out >= 0)
    set_nonblock (j->out);
  if (j->ready >= 0)
    set_nonblock (j->ready);
  if (j->in >= 0)
    {
      j->frame = frame;
      j->input = fields[5];
      j->input_len = strlen (fields[5]);
      set_nonblock (j->in);
    }
  else
    free (frame);
  char pidtext[32];
  snprintf (pidtext, sizeof pidtext, "%d", (int) pid);
  send_simple ("started", j->id, pidtext, NULL);
}

static void
kill_job (char **fields, size_t n)
{
  if (n < 3)
    return;
  for (struct job *j = jobs; j; j = j->next)
    if (strcmp (j->id, fields[1]) == 0 && !j->reaped)
      kill (j->pid, atoi (fields[2]));
}

/* Read exactly LEN bytes from stdin; 0 at EOF. */
static int
read_full (char *buf, size_t len)
{
  size_t have = 0;
  while (have < len)
    {
      ssize_t r = read (STDIN_FILENO, buf + have, len - have);
      if (r == 0)
        return 0;
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          die ("reading a request");
        }
      have += (size_t) r;
    }
  return 1;
}

/* Read one request from stdin (blocking: the agent writes whole frames). 0 at EOF. */
static int
read_request (void)
{
  char hdr[4];
  if (!read_full (hdr, sizeof hdr))
    return 0;
  uint32_t len = get_u32 (hdr);
  if (len > FRAME_MAX)
    {
      errno = EMSGSIZE;
      die ("reading a request");
    }
  char *frame = malloc (len + 1);
  if (frame == NULL)
    die ("allocating a request");
  if (!read_full (frame, len))
    {
      free (frame);
      return 0;
    }
  char *fields[4096];
  size_t n = split_fields (frame, len, fields, sizeof fields / sizeof fields[0]);
  if (n == (size_t) -1 || n < 2)
    {
      errno = EPROTO;
      die ("a request is malformed");
    }
  if (strcmp (fields[0], "run") == 0)
    start_run (fields, n, frame);       /* takes the frame */
  else
    {
      if (strcmp (fields[0], "kill") == 0)
        kill_job (fields, n);
      free (frame);
    }
  return 1;
}

/* Read what *FD has (it is non-blocking) into B; at EOF, or with ALL once nothing is left, close
 * it (-1). */
static void
drain (int *fd, struct buf *b, size_t max, int *overflow, int all)
{
  char chunk[65536];
  for (;;)
    {
      ssize_t r = read (*fd, chunk, sizeof chunk);
      if (r > 0)
        {
          buf_add (b, chunk, (size_t) r, max, overflow);
          continue;
        }
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0 && errno == EAGAIN && !all)
        return;
      close (*fd);
      *fd = -1;
      return;
    }
}

/* A supervisor's ready line, once it is whole.  (The pipe stays open after it: a supervisor must
 * never meet EPIPE.) */
static void
check_ready (struct job *j)
{
  if (j->readyb.len && memchr (j->readyb.data, '\n', j->readyb.len))
    send_ready (j, 1);
}

static void
reap (void)
{
  for (;;)
    {
      int status;
      pid_t pid = waitpid (-1, &status, WNOHANG);
      if (pid <= 0)
        return;
      for (struct job *j = jobs; j; j = j->next)
        if (j->pid == pid)
          {
            j->reaped = 1;
            j->status = status;
            /* What it wrote before it ended is in the pipes: read that, then close them.  A
             * process it left behind (a daemon, or a container that kept the supervisor's
             * stderr) cannot hold its answer up. */
            if (j->in >= 0)
              {
                close (j->in);
                j->in = -1;
              }
            if (j->out >= 0)
              drain (&j->out, &j->outb, TOOL_MAX, &j->overflow, 1);
            if (j->err >= 0)
              drain (&j->err, &j->errb, j->detached ? DETACHED_ERR_MAX : TOOL_MAX, j->detached ? NULL : &j->overflow, 1);
            if (j->ready >= 0)
              {
                drain (&j->ready, &j->readyb, READY_MAX, NULL, 1);
                check_ready (j);
              }
            maybe_finish (j);
            break;
          }
    }
}

int
main (void)
{
  prctl (PR_SET_NAME, "imageapi-spawn", 0, 0, 0);
  signal (SIGPIPE, SIG_IGN);
  /* A node holds a pipe per running supervisor: lift the soft fd limit (children get it back). */
  getrlimit (RLIMIT_NOFILE, &original_nofile);
  struct rlimit high = original_nofile;
  high.rlim_cur = high.rlim_max;
  setrlimit (RLIMIT_NOFILE, &high);

  sigset_t chld;
  sigemptyset (&chld);
  sigaddset (&chld, SIGCHLD);
  sigprocmask (SIG_BLOCK, &chld, NULL);
  int sfd = signalfd (-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0)
    die ("signalfd");

  struct pollfd *pfd = NULL;
  struct job **who = NULL;
  size_t cap = 0;
  for (;;)
    {
      size_t n = 2;
      for (struct job *j = jobs; j; j = j->next)
        n += 4;
      if (n > cap)
        {
          cap = n * 2;
          pfd = realloc (pfd, cap * sizeof *pfd);
          who = realloc (who, cap * sizeof *who);
          if (pfd == NULL || who == NULL)
            die ("allocating the poll set");
        }
      size_t k = 0;
      pfd[k++] = (struct pollfd) { .fd = STDIN_FILENO, .events = POLLIN };
      pfd[k++] = (struct pollfd) { .fd = sfd, .events = POLLIN };
      for (struct job *j = jobs; j; j = j->next)
        {
          int fds[] = { j->out, j->err, j->ready };
          for (size_t i = 0; i < 3; i++)
            if (fds[i] >= 0)
              {
                who[k] = j;
                pfd[k++] = (struct pollfd) { .fd = fds[i], .events = POLLIN };
              }
          if (j->in >= 0)
            {
              who[k] = j;
              pfd[k++] = (struct pollfd) { .fd = j->in, .events = POLLOUT };
            }
        }
      if (poll (pfd, k, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          die ("poll");
        }
      /* Output first, then exits: a job's last bytes are read before it is reported. */
      for (size_t i = 2; i < k; i++)
        {
          if (!pfd[i].revents)
            continue;
          struct job *j = who[i];
          int fd = pfd[i].fd;
          if (fd == j->out)
            drain (&j->out, &j->outb, TOOL_MAX, &j->overflow, 0);
          else if (fd == j->err)
            drain (&j->err, &j->errb, j->detached ? DETACHED_ERR_MAX : TOOL_MAX, j->detached ? NULL : &j->overflow, 0);
          else if (fd == j->ready)
            {
              drain (&j->ready, &j->readyb, READY_MAX, NULL, 0);
              check_ready (j);
            }
          else if (fd == j->in)
            {
              ssize_t w = write (j->in, j->input + j->input_off, j->input_len - j->input_off);
              if (w > 0)
                j->input_off += (size_t) w;
              if ((w < 0 && errno != EAGAIN && errno != EINTR) || j->input_off >= j->input_len)
                {
                  close (j->in);
                  j->in = -1;
                  free (j->frame);
                  j->frame = NULL;
                }
            }
        }
      /* Jobs whose last pipe just closed (reaped earlier). */
      for (struct job *j = jobs, *next; j; j = next)
        {
          next = j->next;
          maybe_finish (j);
        }
      if (pfd[1].revents)
        {
          struct signalfd_siginfo si;
          while (read (sfd, &si, sizeof si) > 0)
            ;
          reap ();
        }
      if (pfd[0].revents && !read_request ())
        return 0;
    }
}
