/* The N-API alternative to the fork server, for bench/spawn-ways.ts only (never shipped): run a
 * program from an addon in the agent's own process.  posix_spawn (glibc: clone(CLONE_VM |
 * CLONE_VFORK), no page-table copy) and waitpid run on a libuv thread-pool thread (napi async
 * work), so the main thread pays only the hand-over, as a real addon would.
 *   cc -shared -fPIC -O2 -I/usr/include/node -o napi-spawn.node napi-spawn.c */
#include <node_api.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;

struct job
{
  napi_async_work work;
  napi_deferred deferred;
  char path[4096];
  int result;
};

static void
execute (napi_env env, void *data)
{
  (void) env;
  struct job *j = data;
  char *argv[] = { j->path, NULL };
  pid_t pid;
  int rc = posix_spawnp (&pid, j->path, NULL, NULL, argv, environ);
  if (rc != 0)
    {
      j->result = -rc;
      return;
    }
  int status = 0;
  while (waitpid (pid, &status, 0) < 0)
    ;
  j->result = WIFEXITED (status) ? WEXITSTATUS (status) : 128 + WTERMSIG (status);
}

static void
complete (napi_env env, napi_status status, void *data)
{
  (void) status;
  struct job *j = data;
  napi_value v;
  napi_create_int32 (env, j->result, &v);
  napi_resolve_deferred (env, j->deferred, v);
  napi_delete_async_work (env, j->work);
  free (j);
}

/* run(path) → Promise<exit code> */
static napi_value
run (napi_env env, napi_callback_info info)
{
  size_t argc = 1;
  napi_value argv[1], promise, name;
  napi_get_cb_info (env, info, &argc, argv, NULL, NULL);
  struct job *j = calloc (1, sizeof *j);
  size_t len;
  napi_get_value_string_utf8 (env, argv[0], j->path, sizeof j->path, &len);
  napi_create_promise (env, &j->deferred, &promise);
  napi_create_string_utf8 (env, "napi-spawn", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work (env, NULL, name, execute, complete, j, &j->work);
  napi_queue_async_work (env, j->work);
  return promise;
}

NAPI_MODULE_INIT ()
{
  napi_value fn;
  napi_create_function (env, "run", NAPI_AUTO_LENGTH, run, NULL, &fn);
  napi_set_named_property (env, exports, "run", fn);
  return exports;
}
