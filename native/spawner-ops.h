/* The fork server's built-in commands: kernel work done by a syscall in the forked child instead
 * of by exec'ing a tool (losetup, umount), which would load and run a whole program.  A run
 * request whose ARGV[0] starts with '@' names one; it answers like a tool: stdout, a message on
 * stderr, exit status 0 or 1. */
#ifndef IA_SPAWNER_OPS_H
#define IA_SPAWNER_OPS_H

/* Run builtin ARGV[0] ("@loop-attach", …); returns the exit status. */
int ia_builtin (int argc, char **argv);

#endif
