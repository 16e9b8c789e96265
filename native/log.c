#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_fd = STDERR_FILENO;

void
ia_log_set_fd (int fd)
{
  log_fd = fd;
}

int
ia_log_get_fd (void)
{
  return log_fd;
}

void
ia_vlog (const char *fmt, va_list ap)
{
  char buf[4096];
  struct tm tm;
  time_t now = time (NULL);
  size_t len, start;
  int n;

  if (localtime_r (&now, &tm) == NULL)
    memset (&tm, 0, sizeof tm);
  len = strftime (buf, sizeof buf, "%Y/%m/%d %H:%M:%S init: ", &tm);
  start = len;
  /* Leave one byte for the newline. */
  n = vsnprintf (buf + len, sizeof buf - len - 1, fmt, ap);
  if (n < 0)
    n = 0;
  len += (size_t) n < sizeof buf - len - 1 ? (size_t) n : sizeof buf - len - 2;
  for (size_t i = start; i < len; i++)
    if (buf[i] == '\n' || buf[i] == '\r')
      buf[i] = ' ';
  buf[len++] = '\n';

  while (write (log_fd, buf, len) < 0 && errno == EINTR)
    ;
}

void
ia_log (const char *fmt, ...)
{
  va_list ap;
  int saved = errno;

  va_start (ap, fmt);
  ia_vlog (fmt, ap);
  va_end (ap);
  errno = saved;
}
