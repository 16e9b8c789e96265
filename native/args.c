/* The command line of imageapi-init: options into a struct ia_config.
 * Relative paths are made absolute here, the supervisor changes to "/". */
#include "args.h"
#include "userns.h"
#include "utils.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char ia_usage_text[] =
  "usage: imageapi-init --root DIR --log FILE [--ready-fd N] [--pidfile FILE] [--status FILE]\n"
  "                     [--ns LIST] [--hostname NAME] [--systemd] [--cgroup DIR]... [--env K=V]...\n"
  "                     [--workdir DIR] [--user UID:GID] [--caps LIST] [--no-new-privs]\n"
  "                     [--seccomp default|systemd|unconfined] [--mask-paths]\n"
  "                     [--uid-map C:H:N]... [--gid-map C:H:N]...\n"
  "                     [--log-max-size BYTES [--log-max-files N] [--log-stamps]] -- COMMAND [ARG...]\n"
  "  --ns LIST: comma-separated subset of mnt,pid,uts,ipc,net,cgroup,time,user (default mnt,pid,uts,ipc)\n";

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

static int
parse_ns (struct ia_config *cfg, const char *list, struct ia_error **err)
{
  cleanup_free char *copy = strdup (list);
  char *save = NULL, *name;
  bool mnt = false;

  if (copy == NULL)
    return ia_error_make (err, ENOMEM, "--ns");
  cfg->clone_flags = 0;
  cfg->ns_cgroup = cfg->ns_time = cfg->ns_net = cfg->userns = false;
  for (name = strtok_r (copy, ",", &save); name != NULL; name = strtok_r (NULL, ",", &save))
    {
      if (strcmp (name, "mnt") == 0)
        mnt = true;
      else if (strcmp (name, "pid") == 0)
        cfg->clone_flags |= CLONE_NEWPID;
      else if (strcmp (name, "uts") == 0)
        cfg->clone_flags |= CLONE_NEWUTS;
      else if (strcmp (name, "ipc") == 0)
        cfg->clone_flags |= CLONE_NEWIPC;
      else if (strcmp (name, "net") == 0)
        {
          cfg->clone_flags |= CLONE_NEWNET;
          cfg->ns_net = true;
        }
      else if (strcmp (name, "cgroup") == 0)
        cfg->ns_cgroup = true;
      else if (strcmp (name, "time") == 0)
        cfg->ns_time = true;
      else if (strcmp (name, "user") == 0)
        {
          cfg->clone_flags |= CLONE_NEWUSER;
          cfg->userns = true;
        }
      else
        return ia_error_make (err, 0, "--ns: unknown namespace \"%s\" (known: mnt,pid,uts,ipc,net,cgroup,time,user)",
                              name);
    }
  if (!mnt)
    return ia_error_make (err, 0, "--ns: the mnt namespace is required");
  cfg->clone_flags |= CLONE_NEWNS;
  return 0;
}

/* Append ITEM (NULL: out of memory) to the NULL-terminated *LIST; ITEM
 * belongs to the list, or is freed on failure. */
static int
append (char ***list, size_t *n, char *item, struct ia_error **err)
{
  cleanup_free char *owned = item;
  char **l;

  if (owned == NULL)
    return ia_error_make (err, ENOMEM, "parsing the command line");
  l = realloc (*list, (*n + 2) * sizeof **list);
  if (l == NULL)
    return ia_error_make (err, ENOMEM, "parsing the command line");
  l[(*n)++] = steal_pointer (&owned);
  l[*n] = NULL;
  *list = l;
  return 0;
}

enum option_id
{
  OPT_ROOT, OPT_LOG, OPT_READY_FD, OPT_PIDFILE, OPT_STATUS, OPT_NS, OPT_HOSTNAME,
  OPT_SYSTEMD, OPT_CGROUP, OPT_ENV, OPT_WORKDIR,
  OPT_USER, OPT_CAPS, OPT_NO_NEW_PRIVS, OPT_SECCOMP, OPT_MASK_PATHS, OPT_UID_MAP, OPT_GID_MAP,
  OPT_LOG_MAX_SIZE, OPT_LOG_MAX_FILES, OPT_LOG_STAMPS,
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
  { "--user", OPT_USER, true },       { "--caps", OPT_CAPS, true },
  { "--no-new-privs", OPT_NO_NEW_PRIVS, false }, { "--seccomp", OPT_SECCOMP, true },
  { "--mask-paths", OPT_MASK_PATHS, false }, { "--uid-map", OPT_UID_MAP, true },
  { "--gid-map", OPT_GID_MAP, true },
  { "--log-max-size", OPT_LOG_MAX_SIZE, true }, { "--log-max-files", OPT_LOG_MAX_FILES, true },
  { "--log-stamps", OPT_LOG_STAMPS, false },
};

/* *DST = VAL made absolute (a repeated option replaces the earlier value). */
static int
set_path (char **dst, const char *name, const char *val, struct ia_error **err)
{
  char *p = absolute_path (val);
  if (p == NULL)
    return ia_error_make (err, errno, "%s %s", name, val);
  free (*dst);
  *dst = p;
  return 0;
}

static int
set_option (struct ia_config *cfg, enum option_id id, const char *name, const char *val, const char **ns,
            struct ia_error **err)
{
  char *end, *p;
  long fd;

  switch (id)
    {
    case OPT_ROOT:
      return set_path (&cfg->root, name, val, err);
    case OPT_LOG:
      return set_path (&cfg->log, name, val, err);
    case OPT_PIDFILE:
      return set_path (&cfg->pidfile, name, val, err);
    case OPT_STATUS:
      return set_path (&cfg->status, name, val, err);
    case OPT_READY_FD:
      errno = 0;
      fd = strtol (val, &end, 10);
      if (errno != 0 || *end != '\0' || fd < 3 || fd > INT_MAX)
        return ia_error_make (err, 0, "--ready-fd: \"%s\" is not a file descriptor number >= 3", val);
      /* Checks that it is open; the container must not inherit it. */
      if (fcntl ((int) fd, F_SETFD, FD_CLOEXEC) < 0)
        return ia_error_make (err, errno, "--ready-fd %ld", fd);
      cfg->ready_fd = (int) fd;
      return 0;
    case OPT_NS:
      *ns = val;
      return 0;
    case OPT_HOSTNAME:
      if (strlen (val) > 64)
        return ia_error_make (err, 0, "--hostname: \"%s\" is longer than 64 characters", val);
      cfg->hostname = val;
      return 0;
    case OPT_SYSTEMD:
      cfg->systemd = true;
      return 0;
    case OPT_CGROUP:
      p = absolute_path (val);
      if (p == NULL)
        return ia_error_make (err, errno, "--cgroup %s", val);
      return append (&cfg->cgroups, &cfg->n_cgroups, p, err);
    case OPT_ENV:
      if (val[0] == '=' || strchr (val, '=') == NULL)
        return ia_error_make (err, 0, "--env: \"%s\" is not K=V", val);
      return append (&cfg->env, &cfg->n_env, strdup (val), err);
    case OPT_WORKDIR:
      cfg->workdir = val;
      return 0;
    case OPT_USER:
      {
        unsigned long uid, gid;
        char extra;
        if (sscanf (val, "%lu:%lu%c", &uid, &gid, &extra) != 2 || uid > 0xfffffffeul || gid > 0xfffffffeul)
          return ia_error_make (err, 0, "--user: \"%s\" is not UID:GID", val);
        cfg->privs.set_user = true;
        cfg->privs.uid = (unsigned int) uid;
        cfg->privs.gid = (unsigned int) gid;
        return 0;
      }
    case OPT_CAPS:
      cfg->privs.set_caps = true;
      return ia_caps_parse (val, &cfg->privs.caps, err);
    case OPT_NO_NEW_PRIVS:
      cfg->privs.no_new_privs = true;
      return 0;
    case OPT_SECCOMP:
      return ia_seccomp_parse (val, &cfg->seccomp, err);
    case OPT_MASK_PATHS:
      cfg->mask_paths = true;
      return 0;
    case OPT_UID_MAP:
      return ia_userns_add_map (&cfg->uid_map, name, val, err);
    case OPT_GID_MAP:
      return ia_userns_add_map (&cfg->gid_map, name, val, err);
    case OPT_LOG_MAX_SIZE:
      {
        long long n;
        errno = 0;
        n = strtoll (val, &end, 10);
        if (errno != 0 || *end != '\0' || n < 0)
          return ia_error_make (err, 0, "--log-max-size: \"%s\" is not a number of bytes", val);
        cfg->log_writer = true;
        cfg->log_max_size = n;
        return 0;
      }
    case OPT_LOG_MAX_FILES:
      errno = 0;
      fd = strtol (val, &end, 10);
      if (errno != 0 || *end != '\0' || fd < 1 || fd > 1000)
        return ia_error_make (err, 0, "--log-max-files: \"%s\" is not a number from 1 to 1000", val);
      cfg->log_max_files = (int) fd;
      return 0;
    case OPT_LOG_STAMPS:
      cfg->log_stamps = true;
      return 0;
    }
  return ia_error_make (err, 0, "%s: not handled", name);
}

int
ia_parse_args (int argc, char **argv, struct ia_config *cfg, struct ia_error **err)
{
  const char *ns = "mnt,pid,uts,ipc";
  int i;

  *cfg = (struct ia_config) { .ready_fd = -1, .workdir = "/" };
  for (i = 1; i < argc; i++)
    {
      const char *arg = argv[i], *val = NULL, *name;
      size_t name_len, k;

      if (strcmp (arg, "--") == 0)
        {
          i++;
          break;
        }
      if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0)
        return IA_ARGS_HELP;
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
      if (set_option (cfg, options[k].id, name, val, &ns, err) < 0)
        return -1;
    }

  if (parse_ns (cfg, ns, err) < 0)
    return -1;
  if (cfg->systemd)
    cfg->ns_cgroup = true;
  if (cfg->hostname != NULL && !(cfg->clone_flags & CLONE_NEWUTS))
    return ia_error_make (err, 0, "--hostname needs the uts namespace (--ns ...,uts)");
  if (cfg->userns != (cfg->uid_map != NULL) || cfg->userns != (cfg->gid_map != NULL))
    return ia_error_make (err, 0, "the user namespace (--ns ...,user) needs --uid-map and --gid-map, and they need it");
  if (cfg->root == NULL)
    return ia_error_make (err, 0, "--root is required");
  if (cfg->log == NULL)
    return ia_error_make (err, 0, "--log is required");
  if (i >= argc)
    return ia_error_make (err, 0, "no command given (expected \"-- COMMAND [ARG...]\")");
  cfg->argv = &argv[i];
  return 0;
}

static void
free_list (char **list)
{
  for (char **p = list; p != NULL && *p != NULL; p++)
    free (*p);
  free (list);
}

void
ia_config_free (struct ia_config *cfg)
{
  free (cfg->root);
  free (cfg->log);
  free (cfg->pidfile);
  free (cfg->status);
  free_list (cfg->cgroups);
  free_list (cfg->env);
  free (cfg->uid_map);
  free (cfg->gid_map);
  *cfg = (struct ia_config) { .ready_fd = -1, .workdir = "/" };
}
