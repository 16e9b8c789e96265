/* Error propagation for imageapi-init, in the style of crun's libcrun_error_t.
 *
 * A function that can fail returns an int (< 0 on failure) and fills
 * *err with the errno value (status, 0 if there is none) and a message
 * naming the step that failed ("mounting /dev/pts").  Callers may add
 * context with ia_error_wrap().  Only main() turns an error into text. */
#ifndef IA_ERROR_H
#define IA_ERROR_H

#include <stddef.h>

struct ia_error {
  int status;   /* errno value, 0 when the failure has no errno */
  char *msg;    /* what was being done */
};

/* Set *err (if err is not NULL) and return -1. */
int ia_error_make (struct ia_error **err, int status, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

/* Prefix the message of *err with "FMT: ", return -1. */
int ia_error_wrap (struct ia_error **err, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

/* "MSG: strerror(status)" (or just "MSG" when status is 0) into buf. */
const char *ia_error_text (const struct ia_error *err, char *buf, size_t len);

void ia_error_free (struct ia_error **err);

/* ia_error_free() when the variable goes out of scope. */
#define cleanup_error __attribute__ ((cleanup (ia_error_free)))

#endif
