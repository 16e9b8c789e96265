/* The command line of imageapi-init (see README.md, "Command line"). */
#ifndef IA_ARGS_H
#define IA_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "caps.h"
#include "error.h"
#include "seccomp.h"

struct ia_config
{
  char *root;            /* --root (absolute) */
  char *log;             /* --log (absolute) */
  int ready_fd;          /* --ready-fd, -1 if none */
  char *pidfile;         /* --pidfile (absolute) or NULL */
  char *status;          /* --status (absolute) or NULL */
  int clone_flags;       /* CLONE_NEW{NS,PID,UTS,IPC,NET} for clone() */
  bool ns_cgroup;        /* unshare the cgroup ns in the container */
  bool ns_time;          /* unshare the time ns in the supervisor */
  bool ns_net;
  const char *hostname;  /* --hostname or NULL (points into argv) */
  bool systemd;          /* --systemd */
  char **cgroups;        /* --cgroup DIR... (absolute), NULL terminated */
  size_t n_cgroups;
  char **env;            /* --env K=V..., NULL terminated */
  size_t n_env;
  const char *workdir;   /* --workdir (points into argv), default "/" */
  /* Confinement (caps.c, seccomp.c, masks.c, userns.c); all off by default. */
  struct ia_privs privs; /* --caps, --user, --no-new-privs */
  enum ia_seccomp_profile seccomp; /* --seccomp */
  bool mask_paths;       /* --mask-paths */
  bool userns;           /* "user" in --ns */
  char *uid_map;         /* --uid-map C:H:N..., as uid_map lines, or NULL */
  char *gid_map;         /* --gid-map C:H:N... */
  /* The log writer (logwriter.c): with --log-max-size (0: no cap) the output goes through it. */
  bool log_writer;
  long long log_max_size; /* --log-max-size BYTES */
  int log_max_files;     /* --log-max-files N (default 1: the file is emptied when full) */
  bool log_stamps;       /* --log-stamps: a timestamp and the stream on every output line */
  char **argv;           /* command after "--" (points into argv), NULL terminated */
};

/* ia_parse_args() result when --help was given (nothing else is parsed). */
#define IA_ARGS_HELP 1

extern const char ia_usage_text[];

/* Fill *CFG from the command line.  Returns 0, IA_ARGS_HELP, or < 0 with
 * *err set; *CFG holds what was parsed up to the error either way (the
 * log, status and ready fd to report it to) and is released with
 * ia_config_free().  Side effect: --ready-fd N is made close-on-exec,
 * which also checks that it is open. */
int ia_parse_args (int argc, char **argv, struct ia_config *cfg, struct ia_error **err);

void ia_config_free (struct ia_config *cfg);

#endif
