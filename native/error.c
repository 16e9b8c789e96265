#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Used when even the error cannot be allocated. */
static char oom_msg[] = "out of memory";
static struct ia_error oom_error = { ENOMEM, oom_msg };

static void
set_error (struct ia_error **err, int status, char *msg)
{
  struct ia_error *e;

  if (err == NULL)
    {
      free (msg);
      return;
    }
  ia_error_free (err);
  e = calloc (1, sizeof *e);
  if (e == NULL || msg == NULL)
    {
      free (e);
      free (msg);
      *err = &oom_error;
      return;
    }
  e->status = status;
  e->msg = msg;
  *err = e;
}

int
ia_error_make (struct ia_error **err, int status, const char *fmt, ...)
{
  va_list ap;
  char *msg = NULL;

  va_start (ap, fmt);
  if (vasprintf (&msg, fmt, ap) < 0)
    msg = NULL;
  va_end (ap);
  set_error (err, status, msg);
  return -1;
}

int
ia_error_wrap (struct ia_error **err, const char *fmt, ...)
{
  va_list ap;
  char *prefix = NULL, *msg = NULL;

  if (err == NULL || *err == NULL || *err == &oom_error)
    return -1;
  va_start (ap, fmt);
  if (vasprintf (&prefix, fmt, ap) < 0)
    prefix = NULL;
  va_end (ap);
  if (prefix == NULL)
    return -1;
  if (asprintf (&msg, "%s: %s", prefix, (*err)->msg) < 0)
    msg = NULL;
  free (prefix);
  if (msg == NULL)
    return -1;
  free ((*err)->msg);
  (*err)->msg = msg;
  return -1;
}

const char *
ia_error_text (const struct ia_error *err, char *buf, size_t len)
{
  if (err == NULL)
    snprintf (buf, len, "unknown error");
  else if (err->status > 0)
    snprintf (buf, len, "%s: %s", err->msg, strerror (err->status));
  else
    snprintf (buf, len, "%s", err->msg);
  /* The text goes into single-line records (log, ready fd, status file). */
  for (char *p = buf; *p; p++)
    if (*p == '\n' || *p == '\r')
      *p = ' ';
  return buf;
}

void
ia_error_free (struct ia_error **err)
{
  if (err == NULL || *err == NULL)
    return;
  if (*err != &oom_error)
    {
      free ((*err)->msg);
      free (*err);
    }
  *err = NULL;
}
