/* Log lines of imageapi-init: "YYYY/MM/DD HH:MM:SS init: MESSAGE\n",
 * local time, each written with a single write(2) so that lines from
 * the supervisor and the container process do not interleave. */
#ifndef IA_LOG_H
#define IA_LOG_H

#include <stdarg.h>

/* Where lines go (default: 2). */
void ia_log_set_fd (int fd);
int ia_log_get_fd (void);

void ia_log (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void ia_vlog (const char *fmt, va_list ap) __attribute__ ((format (printf, 1, 0)));

#endif
